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
 * IPO's averaged log-probabilities, as TRL logs them.
 *
 * Reference-free losses (rc, rr unused, may be NULL), on log-probabilities
 * averaged over the response tokens (a = p / n):
 *   orpo     -b log sigmoid(lo), lo = (ac - ar) - (log(1 - e^ac) - log(1 - e^ar))
 *            (TRL ORPOTrainer.odds_ratio_loss; the trainer adds the token-mean
 *            NLL of the chosen sequences, prompt included, as TRL scores it)
 *   simpo    -(1-e) log sigmoid(b g) - e log sigmoid(-b g), g = (ac - ar) - gamma/b
 *            (TRL CPOTrainer loss_type "simpo"; cpo_alpha x the chosen NLL added
 *            by the trainer)
 *   rewards  b ac, b ar.
 * KTO (tuna_kto_loss) takes unpaired items instead. */
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
    double logps_chosen, logps_rejected;   /* policy (IPO, ORPO, SimPO: averaged over tokens) */
    double nll_loss;                       /* ORPO: token-mean NLL of the chosen sequences; SimPO: of the chosen responses */
    double log_odds_ratio, log_odds_chosen;/* ORPO: mean log sigmoid(lo), mean lo */
    double kl;                             /* KTO: the (detached) KL estimate */
    double count_chosen, count_rejected;   /* KTO: desirable / undesirable items */
} tuna_dpo_stats;

/* "sigmoid", "ipo", "hinge", "orpo", "simpo" -> type; -1 when unknown. */
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

/* KTO (TRL KTOTrainer, loss_type "kto") on n unpaired items: policy and
 * reference log-probabilities pc, rc of each completion (sums over its
 * tokens), desirable[i] 1 or 0, and kl, the batch's reference point
 * (mean over its mismatched rows of policy minus reference, clamped at 0;
 * a constant here: TRL computes it without gradient). Item losses
 *   desirable    wd (1 - sigmoid(b ((pc - rc) - kl)))
 *   undesirable  wu (1 - sigmoid(b (kl - (pc - rc))))
 * and their mean over the n items; d_pc[i] the derivative of the mean
 * (NULL to skip). Stats: loss, kl, rewards (b (pc - rc)) and logps/chosen,
 * /rejected as means over the desirable / undesirable items (0 when none),
 * margins = chosen - rejected, the two counts. */
tuna_status tuna_kto_loss(const tuna_dpo_args *a, int n, const double *pc, const double *rc, const uint8_t *desirable,
                          double kl, double *d_pc, tuna_dpo_stats *stats);

/* KTO's reference point of a batch: max(0, mean_i (p[i] - r[i])) over n
 * mismatched (prompt, other completion) rows. */
double tuna_kto_kl(int n, const double *p, const double *r);
#endif
