/* grpo_step.c — GRPO's optimizer step over the model (see grpo_step.h).
 * TRL's GRPOTrainer: old log-probabilities are the policy's at generation
 * time when num_iterations > 1, else the current ones detached (ratio 1,
 * the gradient still through it); reference log-probabilities from the
 * frozen starting model, or the adapter switched off. The loss is
 * aggregated over the whole step (all micro-batches): TRL aggregates grpo
 * and bnpo per micro-batch and averages by accumulation, the same when the
 * micro-batch is the batch. Log-probabilities at temperature 1 (TRL divides
 * the logits by the sampling temperature). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "train/grpo_step.h"
#include "tuna_peft.h"

struct grpo_step {
    grpo_step_config c;
    grpo_rows rows;
    int64_t gen;                 /* generation batch in rows (-1: none) */
    double *adv, *gstd;          /* [rows], [batch] */
    double *old_lp, *ref_lp;     /* [rows * T] per completion token */
    double *roww;                /* [rows] weight of each token's loss */
    int32_t *ids, *labels;       /* [mb rows * T] */
    float *tw;                   /* [mb rows * T] */
    double *lp;                  /* [mb rows * T] */
    grpo_metrics met;
};

static void free_rows(grpo_rows *r) {
    free(r->plen); free(r->clen); free(r->eos_end); free(r->tok); free(r->reward); free(r->per_func);
}

void grpo_step_free(grpo_step *s) {
    if (!s) return;
    free_rows(&s->rows);
    free(s->adv); free(s->gstd); free(s->old_lp); free(s->ref_lp); free(s->roww);
    free(s->ids); free(s->labels); free(s->tw); free(s->lp);
    free(s->met.fmean); free(s->met.fstd);
    free(s);
}

tuna_status grpo_step_new(grpo_step **out, const grpo_step_config *c) {
    *out = NULL;
    if (c->G < 1 || c->batch < 1 || c->micro_batch < 1 || c->batch % c->micro_batch || c->T < 2 || c->num_iterations < 1 ||
        !c->fill)
        return core_fail(TUNA_ERR_ARG, "GRPO step: bad sizes (G %d, batch %d, micro-batch %d, length %d, iterations %d)", c->G,
                         c->batch, c->micro_batch, c->T, c->num_iterations);
    grpo_step *s = calloc(1, sizeof *s);
    if (!s) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    s->c = *c;
    s->gen = -1;
    size_t R = (size_t)c->batch * c->G, T = (size_t)c->T, mbr = (size_t)c->micro_batch * c->G, K = c->K > 0 ? c->K : 1;
    grpo_rows *r = &s->rows;
    r->rows = (int)R, r->K = c->K, r->T = c->T;
    r->plen = calloc(R, sizeof(int)); r->clen = calloc(R, sizeof(int)); r->eos_end = calloc(R, sizeof(int));
    r->tok = calloc(R * T, sizeof(int32_t)); r->reward = calloc(R, sizeof(double)); r->per_func = calloc(R * K, sizeof(double));
    s->adv = calloc(R, sizeof(double)); s->gstd = calloc((size_t)c->batch, sizeof(double));
    s->old_lp = calloc(R * T, sizeof(double)); s->ref_lp = calloc(R * T, sizeof(double)); s->roww = calloc(R, sizeof(double));
    s->ids = calloc(mbr * T, sizeof(int32_t)); s->labels = calloc(mbr * T, sizeof(int32_t));
    s->tw = calloc(mbr * T, sizeof(float)); s->lp = calloc(mbr * T, sizeof(double));
    s->met.fmean = calloc(K, sizeof(double)); s->met.fstd = calloc(K, sizeof(double));
    if (!r->plen || !r->clen || !r->eos_end || !r->tok || !r->reward || !r->per_func || !s->adv || !s->gstd || !s->old_lp ||
        !s->ref_lp || !s->roww || !s->ids || !s->labels || !s->tw || !s->lp || !s->met.fmean || !s->met.fstd) {
        grpo_step_free(s);
        return core_fail(TUNA_ERR_NOMEM, "out of memory for GRPO buffers (%zu rows of %zu tokens)", R, T);
    }
    *out = s;
    return TUNA_OK;
}

const grpo_metrics *grpo_step_metrics(const grpo_step *s) { return &s->met; }

/* rows [r0, r0 + nr) into the micro-batch buffers (labels: completion
 * tokens only); returns the padded length */
static int fill_batch(grpo_step *s, int r0, int nr) {
    const grpo_rows *R = &s->rows;
    int T = 2;
    for (int j = 0; j < nr; j++) {
        int len = R->plen[r0 + j] + R->clen[r0 + j];
        if (len > T) T = len;
    }
    for (int j = 0; j < nr; j++) {
        int r = r0 + j, pl = R->plen[r], len = pl + R->clen[r];
        const int32_t *src = R->tok + (size_t)r * R->T;
        for (int k = 0; k < T; k++) {
            s->ids[j * T + k] = k < len ? src[k] : 0;
            s->labels[j * T + k] = k >= pl && k < len ? src[k] : -100;
            s->tw[j * T + k] = 0;
        }
    }
    return T;
}

/* per completion token log-probabilities of rows [r0, r0 + nr) of the last
 * forward (batch length T) into dst[r * rows.T + k] */
static tuna_status take_logps(grpo_step *s, tuna_model *m, int r0, int nr, int T, double *dst) {
    tuna_status st = tuna_model_token_logps(m, nr, T, s->lp);
    for (int j = 0; st == TUNA_OK && j < nr; j++) {
        int r = r0 + j, pl = s->rows.plen[r];
        for (int k = 0; k < s->rows.clen[r]; k++) dst[(size_t)r * s->rows.T + k] = s->lp[j * T + pl + k - 1];
    }
    return st;
}

/* log-probabilities of every row's completion without gradients: the
 * policy as it is (old), or the reference into dst */
static tuna_status score_rows(grpo_step *s, tuna_model *m, int n_rows, double *dst) {
    int mbr = s->c.micro_batch * s->c.G;
    tuna_status st = TUNA_OK;
    for (int r0 = 0; st == TUNA_OK && r0 < n_rows; r0 += mbr) {
        int nr = n_rows - r0 < mbr ? n_rows - r0 : mbr;
        int T = fill_batch(s, r0, nr);
        tuna_batch bt = {.B = nr, .T = T, .input_ids = s->ids, .labels = s->labels};
        tuna_loss l;
        st = tuna_model_forward(m, &bt, &l);
        if (st == TUNA_OK) st = take_logps(s, m, r0, nr, T, dst);
    }
    return st;
}

/* reference log-probabilities: the frozen model, or the adapter off */
static tuna_status score_reference(grpo_step *s, tuna_model *m, int n_rows) {
    if (s->c.ref) return score_rows(s, s->c.ref, n_rows, s->ref_lp);
    tuna_status st = tuna_peft_set_enabled(m, 0);
    if (st == TUNA_OK) st = score_rows(s, m, n_rows, s->ref_lp);
    tuna_status st2 = tuna_peft_set_enabled(m, 1);
    return st != TUNA_OK ? st : st2;
}

/* lengths, reward metrics of a new generation batch */
static void generation_metrics(grpo_step *s, int n, int zero) {
    const grpo_rows *R = &s->rows;
    int rows = n * s->c.G, ended = 0;
    double sum = 0, mn = INFINITY, mx = 0;
    int64_t tokens = 0;
    for (int r = 0; r < rows; r++) {
        sum += R->clen[r];
        mn = R->clen[r] < mn ? R->clen[r] : mn;
        mx = R->clen[r] > mx ? R->clen[r] : mx;
        ended += R->eos_end[r];
        tokens += R->plen[r] + R->clen[r];
    }
    grpo_metrics *g = &s->met;
    g->len_mean = sum / rows, g->len_min = mn, g->len_max = mx;
    g->clipped_ratio = 1.0 - (double)ended / rows;
    g->gen_tokens = tokens;
    grpo_reward_stats_of(R->reward, R->per_func, s->c.K, n, s->c.G, s->gstd, zero, &g->rs, g->fmean, g->fstd);
}

/* a new generation batch: rows, advantages, old and reference log-probabilities */
static tuna_status new_generation(grpo_step *s, tuna_model *m, int64_t gen, const int64_t *items, int n) {
    tuna_peft_set_training(m, 0); /* sampling and scoring without dropout */
    tuna_status st = s->c.fill(s->c.fill_ctx, m, gen, items, n, &s->rows);
    int rows = n * s->c.G;
    if (st == TUNA_OK) generation_metrics(s, n, grpo_advantages(s->rows.reward, n, s->c.G, s->c.scale, s->adv, s->gstd));
    if (st == TUNA_OK && s->c.num_iterations > 1) st = score_rows(s, m, rows, s->old_lp);
    if (st == TUNA_OK && s->c.loss.beta != 0) st = score_reference(s, m, rows);
    tuna_peft_set_training(m, 1);
    if (st == TUNA_OK) s->gen = gen;
    return st;
}

/* sums of one step's per-token values */
typedef struct {
    double loss, kl;
    int64_t low, high, tokens;
} tok_sums;

/* the loss of rows [r0, r0 + nr) of the last forward and their positions' weights */
static void micro_loss(grpo_step *s, int r0, int nr, int T, tok_sums *acc) {
    const grpo_rows *R = &s->rows;
    int reuse = s->c.num_iterations > 1;
    for (int j = 0; j < nr; j++) {
        int r = r0 + j, pl = R->plen[r];
        for (int k = 0; k < R->clen[r]; k++) {
            int p = j * T + pl + k - 1;
            double lp = s->lp[p], old = reuse ? s->old_lp[(size_t)r * R->T + k] : lp;
            double ref = s->c.loss.beta != 0 ? s->ref_lp[(size_t)r * R->T + k] : lp, dl, kl;
            int low, high;
            double l = grpo_token_loss(&s->c.loss, lp, old, ref, s->adv[r], &dl, &low, &high, &kl);
            acc->loss += s->roww[r] * l;
            acc->kl += kl;
            acc->low += low, acc->high += high, acc->tokens++;
            s->tw[p] = (float)(-s->roww[r] * dl); /* the model's loss at p is -logp */
        }
    }
}

/* the step's forwards at the sampling temperature (TRL's logits / temperature), or back at 1 */
static tuna_status set_temperature(grpo_step *s, tuna_model *m, double t) {
    float f = (float)(t > 0 ? t : 1.0);
    tuna_status st = tuna_model_set_logit_temperature(m, f);
    if (st == TUNA_OK && s->c.ref) st = tuna_model_set_logit_temperature(s->c.ref, f);
    return st;
}

static tuna_status step_run(grpo_step *s, tuna_model *m, int step, const int64_t *items, int n, tuna_step_result *res);

tuna_status grpo_step_run(void *ctx, tuna_model *m, int step, const int64_t *items, int n, tuna_step_result *res) {
    grpo_step *s = ctx;
    tuna_status st = set_temperature(s, m, s->c.temperature);
    if (st == TUNA_OK) st = step_run(s, m, step, items, n, res);
    tuna_status st2 = set_temperature(s, m, 1.0);
    return st != TUNA_OK ? st : st2;
}

static tuna_status step_run(grpo_step *s, tuna_model *m, int step, const int64_t *items, int n, tuna_step_result *res) {
    int mu = s->c.num_iterations;
    int64_t gen = step / mu;
    tuna_status st = TUNA_OK;
    if (n != s->c.batch) return core_fail(TUNA_ERR_ARG, "GRPO step: %d prompts, expected %d", n, s->c.batch);
    if (gen != s->gen) {
        if (step % mu)
            return core_fail(TUNA_ERR_ARG, "step %d is inside generation batch %lld (--num-iterations %d): resume from a "
                             "checkpoint at a multiple of %d steps", step, (long long)gen, mu, mu);
        if ((st = new_generation(s, m, gen, items, n)) != TUNA_OK) return st;
        res->input_tokens = s->met.gen_tokens;
    }
    int rows = n * s->c.G, mbr = s->c.micro_batch * s->c.G;
    grpo_row_weights(&s->c.loss, s->rows.clen, rows, s->roww);
    tok_sums acc = {0, 0, 0, 0, 0};
    for (int r0 = 0; st == TUNA_OK && r0 < rows; r0 += mbr) {
        int nr = rows - r0 < mbr ? rows - r0 : mbr;
        int T = fill_batch(s, r0, nr);
        tuna_batch bt = {.B = nr, .T = T, .input_ids = s->ids, .labels = s->labels, .tok_weight = s->tw};
        tuna_loss l;
        st = tuna_model_forward(m, &bt, &l);
        if (st == TUNA_OK) st = tuna_model_token_logps(m, nr, T, s->lp);
        if (st != TUNA_OK) break;
        micro_loss(s, r0, nr, T, &acc);
        st = tuna_model_backward(m, &bt, 1.0f);
    }
    if (st != TUNA_OK) return st;
    double nt = acc.tokens > 0 ? (double)acc.tokens : 1;
    s->met.kl = acc.kl / nt;
    s->met.clip_low = acc.low / nt, s->met.clip_high = acc.high / nt, s->met.clip_region = (acc.low + acc.high) / nt;
    res->loss = acc.loss;
    res->tokens = acc.tokens;
    return TUNA_OK;
}
