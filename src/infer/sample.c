/* sample.c — next-token choice with HF generate() semantics (see
 * tuna_sample.h). Order as HF's processors run: repetition penalty, then the
 * warpers temperature, top-k, top-p, min-p; then a softmax draw. Tokens a
 * warper removes get -inf. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "tuna_sample.h"
#include "core/error.h"

struct tuna_sampler {
    tuna_sample_args a;
    int V;
    tuna_rng rng;
    int32_t *idx;   /* [V] sort scratch */
    float *prob;    /* [V] */
    uint8_t *seen;  /* [V] repetition-penalty marks */
};

void tuna_sample_args_default(tuna_sample_args *a) {
    a->temperature = 1.0f;
    a->top_k = 50;
    a->top_p = 1.0f;
    a->min_p = 0.0f;
    a->repetition_penalty = 1.0f;
    a->seed = 0;
}

tuna_status tuna_sampler_create(tuna_sampler **out, int V, const tuna_sample_args *a) {
    *out = NULL;
    if (V <= 0) return core_fail(TUNA_ERR_ARG, "vocabulary size %d", V);
    if (!(a->temperature >= 0)) return core_fail(TUNA_ERR_ARG, "temperature must be >= 0 (got %g)", a->temperature);
    if (a->top_k < 0) return core_fail(TUNA_ERR_ARG, "top_k must be >= 0 (got %d)", a->top_k);
    if (!(a->top_p > 0 && a->top_p <= 1)) return core_fail(TUNA_ERR_ARG, "top_p must be in (0, 1] (got %g)", a->top_p);
    if (!(a->min_p >= 0 && a->min_p <= 1)) return core_fail(TUNA_ERR_ARG, "min_p must be in [0, 1] (got %g)", a->min_p);
    if (!(a->repetition_penalty > 0)) return core_fail(TUNA_ERR_ARG, "repetition_penalty must be > 0 (got %g)", a->repetition_penalty);
    tuna_sampler *s = calloc(1, sizeof *s);
    if (!s) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    s->a = *a;
    s->V = V;
    s->idx = malloc((size_t)V * sizeof *s->idx);
    s->prob = malloc((size_t)V * sizeof *s->prob);
    s->seen = calloc((size_t)V, 1);
    if (!s->idx || !s->prob || !s->seen) { tuna_sampler_free(s); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    rng_seed(&s->rng, a->seed, 0x73616d70 /* "samp" */);
    *out = s;
    return TUNA_OK;
}

void tuna_sampler_free(tuna_sampler *s) {
    if (!s) return;
    free(s->idx);
    free(s->prob);
    free(s->seen);
    free(s);
}

static int by_logit_desc(const void *x, const void *y, void *keys) {
    const float *k = keys;
    float a = k[*(const int32_t *)x], b = k[*(const int32_t *)y];
    if (a != b) return a > b ? -1 : 1;
    return *(const int32_t *)x - *(const int32_t *)y;
}

int32_t tuna_sampler_next(tuna_sampler *s, float *x, const int32_t *ctx, int n_ctx) {
    int V = s->V;
    float pen = s->a.repetition_penalty;
    if (pen != 1.0f) { /* each id of the context once */
        for (int i = 0; i < n_ctx; i++) {
            int id = ctx[i];
            if (id < 0 || id >= V || s->seen[id]) continue;
            s->seen[id] = 1;
            x[id] = x[id] < 0 ? x[id] * pen : x[id] / pen;
        }
        for (int i = 0; i < n_ctx; i++)
            if (ctx[i] >= 0 && ctx[i] < V) s->seen[ctx[i]] = 0;
    }
    if (s->a.temperature == 0) {
        int b = 0;
        for (int i = 1; i < V; i++)
            if (x[i] > x[b]) b = i;
        return b;
    }
    for (int i = 0; i < V; i++) x[i] /= s->a.temperature;
    /* candidates sorted by logit, highest first (ties: lower id first) */
    for (int i = 0; i < V; i++) s->idx[i] = i;
    qsort_r(s->idx, (size_t)V, sizeof *s->idx, by_logit_desc, x); /* no shared state: samplers may run in threads */
    int n = V;
    if (s->a.top_k > 0 && s->a.top_k < V) { /* HF keeps every logit >= the k-th */
        float kth = x[s->idx[s->a.top_k - 1]];
        n = s->a.top_k;
        while (n < V && x[s->idx[n]] >= kth) n++;
    }
    /* softmax over the kept candidates */
    float mx = x[s->idx[0]];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += s->prob[i] = expf(x[s->idx[i]] - mx);
    for (int i = 0; i < n; i++) s->prob[i] = (float)(s->prob[i] / sum);
    if (s->a.top_p < 1.0f) {
        /* HF: drop tokens whose ascending cumulative probability is <= 1 - top_p; keep at least one */
        double cum = 0, cut = 1.0 - s->a.top_p;
        int keep = n;
        for (int i = n - 1; i > 0; i--) {
            cum += s->prob[i];
            if (cum <= cut) keep = i;
            else break;
        }
        n = keep;
        double t = 0;
        for (int i = 0; i < n; i++) t += s->prob[i];
        for (int i = 0; i < n; i++) s->prob[i] = (float)(s->prob[i] / t);
    }
    if (s->a.min_p > 0) { /* keep p >= min_p * p_max */
        float th = s->a.min_p * s->prob[0];
        int keep = 1;
        while (keep < n && s->prob[keep] >= th) keep++;
        n = keep;
        double t = 0;
        for (int i = 0; i < n; i++) t += s->prob[i];
        for (int i = 0; i < n; i++) s->prob[i] = (float)(s->prob[i] / t);
    }
    double u = rng_uniform(&s->rng), c = 0;
    for (int i = 0; i < n; i++) {
        c += s->prob[i];
        if (u < c) return s->idx[i];
    }
    return s->idx[n - 1];
}
