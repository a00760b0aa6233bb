/* dpo.c — TRL's preference losses (sigmoid DPO with label smoothing, IPO,
 * hinge; the reference-free ORPO and SimPO; KTO on unpaired items) on
 * sequence log-probabilities, with their derivatives, so a DPO
 * step is one forward of the chosen and rejected rows, this function, and
 * one weighted backward. Computed in double: the inputs are sums over many
 * tokens and the differences that matter are small. */
#include <math.h>
#include <string.h>

#include "tuna_dpo.h"
#include "core/error.h"
#include "train/reward_loss.h"

int tuna_dpo_loss_from_name(const char *name) {
    static const char *const names[] = {"sigmoid", "ipo", "hinge", "orpo", "simpo"};
    for (int k = 0; k < 5; k++)
        if (!strcmp(name, names[k])) return k;
    return -1;
}

/* log sigmoid(x) without overflow */
static double log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }
static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

static int averaged(tuna_dpo_loss_type t) { return t == TUNA_DPO_IPO || t == TUNA_DPO_ORPO || t == TUNA_DPO_SIMPO; }
static int ref_free(tuna_dpo_loss_type t) { return t == TUNA_DPO_ORPO || t == TUNA_DPO_SIMPO; }

/* one pair's loss and its derivatives dc, dr with respect to the (averaged
 * for IPO, ORPO, SimPO) policy log-probabilities x = pc sc, y = pr sr; h is
 * the log-ratio margin (reference-free: x - y). ORPO's log-odds in *lo. */
static double pair_loss(const tuna_dpo_args *a, double x, double y, double h, double *dc, double *dr, double *lo) {
    double b = a->beta, e = a->label_smoothing, l, dh;
    switch (a->type) {
    case TUNA_DPO_IPO:
        l = (h - 1 / (2 * b)) * (h - 1 / (2 * b));
        dh = 2 * (h - 1 / (2 * b));
        break;
    case TUNA_DPO_HINGE:
        l = 1 - b * h > 0 ? 1 - b * h : 0;
        dh = 1 - b * h > 0 ? -b : 0;
        break;
    case TUNA_DPO_ORPO: {
        /* log odds(p) = p - log(1 - e^p); d/dp = 1 / (1 - e^p) */
        double omx = -expm1(x), omy = -expm1(y);
        *lo = (x - y) - (log(omx) - log(omy));
        l = -b * log_sigmoid(*lo);
        double dlo = -b * sigmoid(-*lo);
        *dc = dlo / omx;
        *dr = -dlo / omy;
        return l;
    }
    case TUNA_DPO_SIMPO:
        h -= a->simpo_gamma / b; /* TRL: logits = pi_logratios - gamma_beta_ratio */
        /* the sigmoid loss on it */
        __attribute__((fallthrough));
    default:
        l = -(1 - e) * log_sigmoid(b * h) - e * log_sigmoid(-b * h);
        dh = b * (-(1 - e) * sigmoid(-b * h) + e * sigmoid(b * h));
    }
    *dc = dh;
    *dr = -dh;
    return l;
}

static tuna_status check_args(const tuna_dpo_args *a, int n) {
    if (n < 1) return core_fail(TUNA_ERR_ARG, "dpo: no pairs");
    if (!(a->beta > 0)) return core_fail(TUNA_ERR_ARG, "dpo: beta must be > 0 (got %g)", a->beta);
    if (!(a->label_smoothing >= 0 && a->label_smoothing <= 0.5))
        return core_fail(TUNA_ERR_ARG, "dpo: label smoothing must be in [0, 0.5] (got %g)", a->label_smoothing);
    if (a->label_smoothing > 0 && a->type != TUNA_DPO_SIGMOID && a->type != TUNA_DPO_SIMPO)
        return core_fail(TUNA_ERR_ARG, "dpo: label smoothing applies to the sigmoid and simpo losses only");
    if ((int)a->type < 0 || a->type > TUNA_DPO_SIMPO)
        return core_fail(TUNA_ERR_ARG, "dpo: loss type %d is not a paired preference loss", (int)a->type);
    return TUNA_OK;
}

static void stats_mean(tuna_dpo_stats *s, double n) {
    s->loss /= n;
    s->rewards_chosen /= n;
    s->rewards_rejected /= n;
    s->rewards_margins /= n;
    s->rewards_accuracies /= n;
    s->logps_chosen /= n;
    s->logps_rejected /= n;
    s->log_odds_ratio /= n;
    s->log_odds_chosen /= n;
}

tuna_status tuna_dpo_loss(const tuna_dpo_args *a, int n, const double *pc, const double *pr, const double *rc,
                          const double *rr, const int64_t *nc, const int64_t *nr, double *d_pc, double *d_pr,
                          tuna_dpo_stats *stats) {
    if (a->type == TUNA_DPO_REWARD) return reward_pair_loss(a, n, pc, pr, d_pc, d_pr, stats);
    tuna_status st = check_args(a, n);
    if (st != TUNA_OK) return st;
    int free_ref = ref_free(a->type);
    if (!free_ref && (!rc || !rr)) return core_fail(TUNA_ERR_ARG, "dpo: the loss needs reference log-probabilities");
    double b = a->beta;
    tuna_dpo_stats s = {0};
    for (int i = 0; i < n; i++) {
        double sc = 1, sr = 1; /* IPO, ORPO, SimPO: log-probabilities averaged over the response */
        if (averaged(a->type)) {
            if (!nc || !nr || nc[i] < 1 || nr[i] < 1) return core_fail(TUNA_ERR_ARG, "dpo: pair %d has an empty response", i);
            sc = 1.0 / (double)nc[i];
            sr = 1.0 / (double)nr[i];
        }
        double x = pc[i] * sc, y = pr[i] * sr, xr = free_ref ? 0 : rc[i] * sc, yr = free_ref ? 0 : rr[i] * sr;
        if (a->type == TUNA_DPO_ORPO && !(x < 0 && y < 0))
            return core_fail(TUNA_ERR_NUMERIC, "orpo: pair %d has a response of probability 1 (log-odds undefined)", i);
        double dc = 0, dr = 0, lo = 0;
        s.loss += pair_loss(a, x, y, (x - y) - (xr - yr), &dc, &dr, &lo);
        if (d_pc) d_pc[i] = dc * sc / n;
        if (d_pr) d_pr[i] = dr * sr / n;
        double rwc = b * (x - xr), rwr = b * (y - yr);
        s.rewards_chosen += rwc;
        s.rewards_rejected += rwr;
        s.rewards_margins += rwc - rwr;
        s.rewards_accuracies += rwc > rwr;
        s.logps_chosen += x;
        s.logps_rejected += y;
        s.log_odds_ratio += log_sigmoid(lo);
        s.log_odds_chosen += lo;
    }
    stats_mean(&s, n);
    if (a->type != TUNA_DPO_ORPO) s.log_odds_ratio = s.log_odds_chosen = 0;
    if (stats) *stats = s;
    return TUNA_OK;
}

double tuna_kto_kl(int n, const double *p, const double *r) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += p[i] - r[i];
    double kl = n > 0 ? sum / n : 0;
    return kl > 0 ? kl : 0;
}

tuna_status tuna_kto_loss(const tuna_dpo_args *a, int n, const double *pc, const double *rc, const uint8_t *desirable,
                          double kl, double *d_pc, tuna_dpo_stats *stats) {
    if (n < 1) return core_fail(TUNA_ERR_ARG, "kto: no items");
    if (!(a->beta > 0)) return core_fail(TUNA_ERR_ARG, "kto: beta must be > 0 (got %g)", a->beta);
    if (!(a->desirable_weight >= 0) || !(a->undesirable_weight >= 0))
        return core_fail(TUNA_ERR_ARG, "kto: the desirable and undesirable weights must be >= 0 (got %g, %g)",
                         a->desirable_weight, a->undesirable_weight);
    double b = a->beta;
    tuna_dpo_stats s = {0};
    s.kl = kl;
    for (int i = 0; i < n; i++) {
        double r = pc[i] - rc[i];
        /* z: the sigmoid's argument; loss w (1 - sigmoid(z)), dz/dpc = +-b */
        double z = desirable[i] ? b * (r - kl) : b * (kl - r), w = desirable[i] ? a->desirable_weight : a->undesirable_weight;
        double sg = sigmoid(z);
        s.loss += w * (1 - sg);
        if (d_pc) d_pc[i] = -w * sg * (1 - sg) * (desirable[i] ? b : -b) / n;
        if (desirable[i]) {
            s.rewards_chosen += b * r;
            s.logps_chosen += pc[i];
            s.count_chosen++;
        } else {
            s.rewards_rejected += b * r;
            s.logps_rejected += pc[i];
            s.count_rejected++;
        }
    }
    s.loss /= n;
    if (s.count_chosen) { s.rewards_chosen /= s.count_chosen; s.logps_chosen /= s.count_chosen; }
    if (s.count_rejected) { s.rewards_rejected /= s.count_rejected; s.logps_rejected /= s.count_rejected; }
    s.rewards_margins = s.rewards_chosen - s.rewards_rejected;
    if (stats) *stats = s;
    return TUNA_OK;
}
