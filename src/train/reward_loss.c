/* reward_loss.c — TRL's RewardTrainer.compute_loss on a batch of pairs:
 *   loss = -logsigmoid(r_chosen - r_rejected).mean()
 *          + center_rewards_coefficient * mean((r_chosen + r_rejected)^2)
 * (no margin column), with its derivatives, so a reward model's step is the
 * preference step of dpo.c with the score head's r as the "log-probability"
 * and no reference (trainer.c's run_dpo). TRL's eval accuracy is the share
 * of pairs with r_chosen > r_rejected. */
#include <math.h>

#include "core/error.h"
#include "train/reward_loss.h"

/* log sigmoid(x) and sigmoid(x) without overflow */
static double log_sig(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }
static double sig(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

tuna_status reward_pair_loss(const tuna_dpo_args *a, int n, const double *pc, const double *pr, double *d_pc, double *d_pr,
                             tuna_dpo_stats *stats) {
    if (n < 1) return core_fail(TUNA_ERR_ARG, "reward: no pairs");
    double c = a->center_rewards;
    if (!(c >= 0) || !isfinite(c)) return core_fail(TUNA_ERR_ARG, "reward: center_rewards must be >= 0 (got %g)", c);
    tuna_dpo_stats s = {0};
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double h = pc[i] - pr[i], q = pc[i] + pr[i];
        sum += -log_sig(h) + c * q * q;
        double dh = -sig(-h), dq = 2 * c * q;
        if (d_pc) d_pc[i] = (dh + dq) / n;
        if (d_pr) d_pr[i] = (-dh + dq) / n;
        s.rewards_chosen += pc[i];
        s.rewards_rejected += pr[i];
        s.rewards_margins += h;
        s.rewards_accuracies += pc[i] > pr[i];
    }
    s.loss = sum / n;
    s.rewards_chosen /= n;
    s.rewards_rejected /= n;
    s.rewards_margins /= n;
    s.rewards_accuracies /= n;
    s.logps_chosen = s.rewards_chosen;
    s.logps_rejected = s.rewards_rejected;
    if (stats) *stats = s;
    return TUNA_OK;
}
