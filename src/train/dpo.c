/* dpo.c — TRL's preference losses (sigmoid DPO with label smoothing, IPO,
 * hinge) on sequence log-probabilities, with their derivatives, so a DPO
 * step is one forward of the chosen and rejected rows, this function, and
 * one weighted backward. Computed in double: the inputs are sums over many
 * tokens and the differences that matter are small. */
#include <math.h>
#include <string.h>

#include "tuna_dpo.h"
#include "core/error.h"
#include "train/reward_loss.h"

int tuna_dpo_loss_from_name(const char *name) {
    if (!strcmp(name, "sigmoid")) return TUNA_DPO_SIGMOID;
    if (!strcmp(name, "ipo")) return TUNA_DPO_IPO;
    if (!strcmp(name, "hinge")) return TUNA_DPO_HINGE;
    return -1;
}

/* log sigmoid(x) without overflow */
static double log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }
static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

tuna_status tuna_dpo_loss(const tuna_dpo_args *a, int n, const double *pc, const double *pr, const double *rc,
                          const double *rr, const int64_t *nc, const int64_t *nr, double *d_pc, double *d_pr,
                          tuna_dpo_stats *stats) {
    if (a->type == TUNA_DPO_REWARD) return reward_pair_loss(a, n, pc, pr, d_pc, d_pr, stats);
    if (n < 1) return core_fail(TUNA_ERR_ARG, "dpo: no pairs");
    if (!(a->beta > 0)) return core_fail(TUNA_ERR_ARG, "dpo: beta must be > 0 (got %g)", a->beta);
    if (!(a->label_smoothing >= 0 && a->label_smoothing <= 0.5))
        return core_fail(TUNA_ERR_ARG, "dpo: label smoothing must be in [0, 0.5] (got %g)", a->label_smoothing);
    if (a->label_smoothing > 0 && a->type != TUNA_DPO_SIGMOID)
        return core_fail(TUNA_ERR_ARG, "dpo: label smoothing applies to the sigmoid loss only");
    double b = a->beta, e = a->label_smoothing, sum = 0;
    tuna_dpo_stats s = {0};
    for (int i = 0; i < n; i++) {
        double sc = 1, sr = 1; /* IPO: log-probabilities averaged over the response */
        if (a->type == TUNA_DPO_IPO) {
            if (!nc || !nr || nc[i] < 1 || nr[i] < 1) return core_fail(TUNA_ERR_ARG, "dpo: pair %d has an empty response", i);
            sc = 1.0 / (double)nc[i];
            sr = 1.0 / (double)nr[i];
        }
        double h = (pc[i] * sc - pr[i] * sr) - (rc[i] * sc - rr[i] * sr), l, dh;
        switch (a->type) {
        case TUNA_DPO_IPO:
            l = (h - 1 / (2 * b)) * (h - 1 / (2 * b));
            dh = 2 * (h - 1 / (2 * b));
            break;
        case TUNA_DPO_HINGE:
            l = 1 - b * h > 0 ? 1 - b * h : 0;
            dh = 1 - b * h > 0 ? -b : 0;
            break;
        default:
            l = -(1 - e) * log_sigmoid(b * h) - e * log_sigmoid(-b * h);
            dh = b * (-(1 - e) * sigmoid(-b * h) + e * sigmoid(b * h));
        }
        sum += l;
        if (d_pc) d_pc[i] = dh * sc / n;
        if (d_pr) d_pr[i] = -dh * sr / n;
        double rwc = b * (pc[i] - rc[i]) * sc, rwr = b * (pr[i] - rr[i]) * sr;
        s.rewards_chosen += rwc;
        s.rewards_rejected += rwr;
        s.rewards_margins += rwc - rwr;
        s.rewards_accuracies += rwc > rwr;
        s.logps_chosen += pc[i] * sc;
        s.logps_rejected += pr[i] * sr;
    }
    s.loss = sum / n;
    s.rewards_chosen /= n;
    s.rewards_rejected /= n;
    s.rewards_margins /= n;
    s.rewards_accuracies /= n;
    s.logps_chosen /= n;
    s.logps_rejected /= n;
    if (stats) *stats = s;
    return TUNA_OK;
}
