/* tuna_dpo.h — the preference losses of Direct Preference Optimisation and
 * its variants, as TRL's DPOTrainer defines them, on per-pair sequence
 * log-probabilities. Training reuses the model's backward: a sequence's
 * log-probability is minus its row loss sum, so the gradient of the mean
 * preference loss is the model backward with per-row weights -dL/dlogp
 * (tuna_batch.row_weight, token weight 1).
 *
 * With h = (pc - pr) - (rc - rr) (policy and reference log-probabilities of
 * the chosen and rejected responses, summed over response tokens):
 *   sigmoid  -(1-e) log sigmoid(b h) - e log sigmoid(-b h)   (e: label smoothing)
 *   hinge    max(0, 1 - b h)
 *   ipo      (h - 1/(2b))^2 with every log-probability divided by its
 *            response's token count (TRL averages them for IPO)
 * Rewards (reported, not differentiated): b (pc - rc), b (pr - rr), with
 * IPO's averaged log-probabilities, as TRL logs them. */
#ifndef TUNA_DPO_H
#define TUNA_DPO_H
#include "tuna.h"

typedef enum {
    TUNA_DPO_SIGMOID = 0, TUNA_DPO_IPO = 1, TUNA_DPO_HINGE = 2,
    TUNA_DPO_ORPO = 3,   /* TRL ORPOTrainer (reference-free; adds the chosen NLL) */
    TUNA_DPO_SIMPO = 4,  /* TRL CPOTrainer loss_type "simpo" (reference-free) */
    TUNA_DPO_KTO = 5,    /* TRL KTOTrainer: unpaired items (completion row, mismatched KL row) */
    TUNA_DPO_REWARD = 6  /* TRL RewardTrainer: -log sigmoid(r_chosen - r_rejected) on a scalar head */
} tuna_dpo_loss_type;

typedef struct {
    tuna_dpo_loss_type type;
    double beta;              /* TRL default 0.1 (ORPO: lambda) */
    double label_smoothing;   /* sigmoid only (conservative DPO), in [0, 0.5] */
    double simpo_gamma;       /* SimPO's target reward margin (TRL CPOConfig default 0.5) */
    double cpo_alpha;         /* SimPO: weight of the chosen NLL added (0: SimPO as published) */
    double desirable_weight, undesirable_weight; /* KTO (TRL default 1, 1) */
    double center_rewards;    /* reward model: TRL center_rewards_coefficient (0: off) */
} tuna_dpo_args;

/* Means over the pairs of one call. */
typedef struct {
    double loss;
    double rewards_chosen, rewards_rejected, rewards_margins, rewards_accuracies;
    double logps_chosen, logps_rejected;   /* policy (IPO: averaged over tokens) */
} tuna_dpo_stats;

/* "sigmoid", "ipo", "hinge" -> type; -1 when unknown. */
int tuna_dpo_loss_from_name(const char *name);

/* n pairs: policy/reference log-probabilities of chosen and rejected
 * responses (pc, pr, rc, rr) and the responses' token counts (nc, nr; used by
 * IPO). Writes the mean loss and its derivatives d_pc[i], d_pr[i] with
 * respect to the policy log-probabilities (NULL to skip), and stats (may be
 * NULL). Bad arguments (beta <= 0, smoothing outside [0, 0.5], a count < 1
 * for IPO) are TUNA_ERR_ARG. */
tuna_status tuna_dpo_loss(const tuna_dpo_args *a, int n, const double *pc, const double *pr, const double *rc,
                          const double *rr, const int64_t *nc, const int64_t *nr, double *d_pc, double *d_pr,
                          tuna_dpo_stats *stats);
#endif
