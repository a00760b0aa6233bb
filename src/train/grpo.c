/* grpo.c — GRPO's advantages, per-token loss and metrics (see grpo.h),
 * mirroring TRL's GRPOTrainer (_generate_and_score_completions for the
 * advantages and reward metrics, _compute_loss for the token loss, its
 * aggregation and the clip ratios). Everything in double. */
#include <math.h>
#include <string.h>

#include "train/grpo.h"

static const char *const loss_names[] = {"grpo", "bnpo", "dr_grpo", "dapo"};
static const char *const scale_names[] = {"group", "batch", "none"};

static int index_of(const char *const *names, int n, const char *s) {
    for (int i = 0; s && i < n; i++)
        if (!strcmp(names[i], s)) return i;
    return -1;
}

int grpo_loss_type_from_name(const char *s) { return index_of(loss_names, 4, s); }
const char *grpo_loss_type_name(int t) { return t >= 0 && t < 4 ? loss_names[t] : NULL; }
int grpo_scale_from_name(const char *s) { return index_of(scale_names, 3, s); }
const char *grpo_scale_name(int s) { return s >= 0 && s < 3 ? scale_names[s] : NULL; }

/* mean and unbiased std (torch.std) of x[0 .. n) with stride; n = 1: std 0 */
static void mean_std(const double *x, int n, int stride, double *mean, double *std) {
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) m += x[(long)i * stride];
    m /= n > 0 ? n : 1;
    for (int i = 0; i < n; i++) v += (x[(long)i * stride] - m) * (x[(long)i * stride] - m);
    *mean = m;
    *std = n > 1 ? sqrt(v / (n - 1)) : 0;
}

static int is_zero_std(double s) { return fabs(s) <= 1e-8; }

int grpo_advantages(const double *r, int n_groups, int G, grpo_scale scale, double *adv, double *group_std) {
    double bmean, bstd;
    mean_std(r, n_groups * G, 1, &bmean, &bstd);
    int zero = 0;
    for (int g = 0; g < n_groups; g++) {
        const double *x = r + (long)g * G;
        double m, s;
        mean_std(x, G, 1, &m, &s);
        if (group_std) group_std[g] = scale == GRPO_SCALE_BATCH ? bstd : s; /* TRL's std_rewards */
        double div = scale == GRPO_SCALE_GROUP ? s + 1e-4 : scale == GRPO_SCALE_BATCH ? bstd + 1e-4 : 1.0;
        /* TRL counts zero spread on the std the advantages are scaled by */
        zero += is_zero_std(scale == GRPO_SCALE_BATCH ? bstd : s);
        for (int i = 0; i < G; i++) adv[(long)g * G + i] = (x[i] - m) / div;
    }
    return zero;
}

void grpo_row_weights(const grpo_loss_args *a, const int *len, int n, double *w) {
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += len[i];
    for (int i = 0; i < n; i++) {
        switch (a->loss_type) {
        case GRPO_LOSS_GRPO: w[i] = 1.0 / ((double)n * (len[i] > 1 ? len[i] : 1)); break;
        case GRPO_LOSS_DR_GRPO: w[i] = 1.0 / ((double)n * (a->max_completion_length > 1 ? a->max_completion_length : 1)); break;
        default: w[i] = 1.0 / (double)(total > 1 ? total : 1); break;
        }
    }
}

double grpo_token_loss(const grpo_loss_args *a, double lp, double old, double ref, double adv, double *dl, int *low,
                       int *high, double *kl) {
    double c = exp(lp - old);
    double lo = 1 - a->epsilon, hi = 1 + a->epsilon_high;
    double cc = c < lo ? lo : c > hi ? hi : c;
    double t1 = c * adv, t2 = cc * adv;
    /* min(t1, t2) is the clamped term only where the ratio left the range
     * in the advantage's direction: there the loss does not depend on lp */
    *low = c < lo && adv < 0;
    *high = c > hi && adv > 0;
    double loss = -(t1 < t2 ? t1 : t2);
    double d = (*low || *high) ? 0.0 : -adv * c;
    *kl = 0;
    if (a->beta != 0) {
        double x = ref - lp, e = exp(x);
        *kl = e - x - 1;
        loss += a->beta * *kl;
        d += a->beta * (1 - e);
    }
    *dl = d;
    return loss;
}

void grpo_reward_stats_of(const double *total, const double *per_func, int K, int n_groups, int G, const double *group_std,
                          int zero_std, grpo_reward_stats *s, double *fmean, double *fstd) {
    int n = n_groups * G;
    double m, sd, gs = 0;
    mean_std(total, n, 1, &m, &sd);
    for (int g = 0; g < n_groups; g++) gs += group_std[g];
    s->reward = m;
    s->reward_std = n_groups ? gs / n_groups : 0;
    s->frac_zero_std = n_groups ? (double)zero_std / n_groups : 0;
    for (int k = 0; k < K; k++) mean_std(per_func + k, n, K, &fmean[k], &fstd[k]);
}
