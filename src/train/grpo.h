/* grpo.h — GRPO's arithmetic as TRL's GRPOTrainer defines it, as pure
 * functions: group-relative advantages, the weight of each token's loss in
 * the step's loss (the loss types), the per-token clipped surrogate with the
 * k3 KL penalty and its derivative, and the step's metrics. grpo_step.c
 * drives the model with them; tests/test_grpo.c checks them by hand and
 * against finite differences. */
#ifndef TUNA_TRAIN_GRPO_H
#define TUNA_TRAIN_GRPO_H
#include <stdint.h>

typedef enum { GRPO_LOSS_GRPO = 0, GRPO_LOSS_BNPO = 1, GRPO_LOSS_DR_GRPO = 2, GRPO_LOSS_DAPO = 3 } grpo_loss_type;
typedef enum { GRPO_SCALE_GROUP = 0, GRPO_SCALE_BATCH = 1, GRPO_SCALE_NONE = 2 } grpo_scale;

/* names as TRL spells them ("grpo", "bnpo", "dr_grpo", "dapo"; "group",
 * "batch", "none"); -1 / NULL when unknown */
int grpo_loss_type_from_name(const char *s);
const char *grpo_loss_type_name(int t);
int grpo_scale_from_name(const char *s);
const char *grpo_scale_name(int s);

typedef struct {
    double epsilon, epsilon_high; /* clip range [1 - epsilon, 1 + epsilon_high] */
    double beta;                  /* KL coefficient (0: no reference needed) */
    grpo_loss_type loss_type;
    int max_completion_length;    /* dr_grpo's constant denominator */
} grpo_loss_args;

/* Advantages of n_groups groups of G rewards r (group-major): r minus its
 * group's mean, divided by (std + 1e-4) with std the group's (scale group) or
 * all rewards' (scale batch) unbiased standard deviation, or not divided
 * (none). group_std[n_groups] (may be NULL) receives each group's std
 * (scale batch: the batch's std, as TRL's std_rewards).
 * Returns the number of groups whose std is 0 (torch.isclose(std, 0):
 * |std| <= 1e-8); their advantages are 0, never NaN (G = 1: std taken as 0). */
int grpo_advantages(const double *r, int n_groups, int G, grpo_scale scale, double *adv, double *group_std);

/* Weight of one token's loss in the step's loss, for each of n rows with
 * len[i] completion tokens (total their sum): grpo 1/(n max(1, len_i)),
 * bnpo and dapo 1/max(1, total), dr_grpo 1/(n max_completion_length). */
void grpo_row_weights(const grpo_loss_args *a, const int *len, int n, double *w);

/* One token: the loss -min(c A, clamp(c, 1 - eps, 1 + eps_high) A)
 * + beta (exp(ref - lp) - (ref - lp) - 1) with c = exp(lp - old), and its
 * derivative by lp into *dl. *low / *high: the token's ratio was clipped
 * below (c < 1 - eps, A < 0) or above (c > 1 + eps_high, A > 0); *kl its
 * KL estimate (0 when beta is 0). */
double grpo_token_loss(const grpo_loss_args *a, double lp, double old, double ref, double adv, double *dl, int *low,
                       int *high, double *kl);

/* Rewards of n_groups x G rows: mean and unbiased std over all rows (TRL's
 * reward, reward_std is the mean of the groups' stds), per function k of K
 * (per_func[row * K + k]) into fmean[K], fstd[K]. */
typedef struct {
    double reward, reward_std, frac_zero_std;
} grpo_reward_stats;
void grpo_reward_stats_of(const double *total, const double *per_func, int K, int n_groups, int G, const double *group_std,
                          int zero_std, grpo_reward_stats *s, double *fmean, double *fstd);
#endif
