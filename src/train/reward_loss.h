/* reward_loss.h — the pairwise loss of a reward model (TRL's RewardTrainer),
 * one of tuna_dpo_loss's types (TUNA_DPO_REWARD). */
#ifndef TUNA_TRAIN_REWARD_LOSS_H
#define TUNA_TRAIN_REWARD_LOSS_H
#include "tuna_dpo.h"

/* n pairs of scores (rc = pc[i] chosen, rr = pr[i] rejected): mean loss
 * -log sigmoid(rc - rr) + center_rewards * mean((rc + rr)^2), its derivatives
 * in d_pc, d_pr (NULL to skip) and stats: rewards = the scores, accuracy the
 * share of rc > rr, logps = the scores too. */
tuna_status reward_pair_loss(const tuna_dpo_args *a, int n, const double *pc, const double *pr, double *d_pc, double *d_pr,
                             tuna_dpo_stats *stats);
#endif
