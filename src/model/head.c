/* head.c — the lm_head and the cross-entropy, in chunks of rows.
 *
 * The logits of a batch are [N,V]: 4 x 256 tokens of a 128,256 vocabulary
 * make 525 MB, more than a layer of a 1B model. They never exist whole in
 * training or evaluation: forward runs each chunk of R rows through lm_head
 * into one [R,V] buffer and keeps per row only what the loss, the row losses
 * and backward need (log-sum-exp, the target's logit); backward walks the
 * chunks from the last (whose logits are still in the buffer) to the first,
 * recomputing the others' logits from the kept final-norm output, turns them
 * into dlogits and runs the head's backward on those rows, so the head's
 * weight gradient accumulates chunk by chunk (the same sum in another order).
 * R is the most rows whose logits fit HEAD_CHUNK_BYTES, so one chunk covers
 * every row of a small vocabulary or batch and nothing is recomputed then
 * (training every weight in bf16, the budget is HEAD_CHUNK_BYTES_BF16).
 *
 * A frozen head (adapter training) needs no weight gradient, and the input
 * gradient of row n is tok_w[n] * ((softmax - onehot) W)[n]: linear in the
 * row's weight, which only backward is given (DPO's row weights come from
 * this forward's losses). A training forward then computes it with weight 1
 * into dtmp (free until backward) while each chunk's logits are at hand, and
 * backward only scales the rows: no logits are recomputed, and the head costs
 * the two GEMMs it cost before chunking (one wasted on a forward that no
 * backward follows, such as validation).
 *
 * A reward model (cfg.num_labels 1) has score.weight [1, C] in lm_head's place
 * and no vocabulary: head_score_forward/backward read one row of normf per
 * sequence, its last counted token, and leave the row losses minus the score. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kernels/kernels.h"
#include "model/model_internal.h"

static int rows_within(long bytes, int V, long N, int knob) {
    long r = knob > 0 ? knob : bytes / ((long)V * (long)sizeof(float));
    if (r < 1) r = 1;
    return (int)(r < N ? r : N);
}

int head_rows(int V, long N, int knob) { return rows_within(HEAD_CHUNK_BYTES, V, N, knob); }

int head_rows_bf16_full(int V, long N) { return rows_within(HEAD_CHUNK_BYTES_BF16, V, N, 0); }

/* x[0 .. n) *= s (the logit temperature's 1/T), nothing when s is 0 or 1 */
static void scale_rows(float *x, long n, float s) {
    if (s == 0.0f || s == 1.0f) return;
#pragma omp parallel for simd
    for (long i = 0; i < n; i++) x[i] *= s;
}

/* rows [r0, r0 + n) of the head: logits[n,V] = lm_head(normf rows), divided
 * by the logit temperature */
static void chunk_logits(tuna_model *m, int r0, int n) {
    linear_forward(&m->lm_head, m->acts.logits, m->acts.normf + (long)r0 * m->cfg.C, n);
    scale_rows(m->acts.logits, (long)n * m->cfg.V, m->logit_scale);
}

/* the cross-entropy's dlogits of a chunk (in its logits' place) made those of
 * the undivided logits: d(z s)/dz = s */
static void chunk_dlogits(tuna_model *m, int n) { scale_rows(m->acts.logits, (long)n * m->cfg.V, m->logit_scale); }

tuna_status tuna_model_set_logit_temperature(tuna_model *m, float temperature) {
    if (!(temperature > 0)) return core_fail(TUNA_ERR_ARG, "logit temperature must be > 0 (got %g)", temperature);
    m->logit_scale = 1.0f / temperature;
    m->acts.full_fresh = 0;
    return TUNA_OK;
}

/* rows [r0, r0 + n) of a frozen head's input gradient with weight 1 into
 * dtmp; the chunk's logits become its dlogits */
static void chunk_unit_grad(tuna_model *m, int r0, int n) {
    tuna_acts *a = &m->acts;
    long C = m->cfg.C;
    for (int i = 0; i < n; i++) a->tok_w[r0 + i] = 1.0f; /* backward sets the real weights */
    k_crossentropy_bwd(a->logits, a->lse + r0, a->targets + r0, a->tok_w + r0, n, m->cfg.V);
    chunk_dlogits(m, n);
    linear_backward(&m->lm_head, a->dtmp + r0 * C, 0, a->logits, a->normf + r0 * C, n);
}

double head_forward(tuna_model *m, int N, int64_t *count) {
    tuna_acts *a = &m->acts;
    int V = m->cfg.V, R = a->head_rows;
    a->head_fused = a->train && !m->lm_head.dw;
    double sum = 0;
    *count = 0;
    for (int r0 = 0; r0 < N; r0 += R) {
        int n = N - r0 < R ? N - r0 : R;
        int64_t cnt = 0;
        chunk_logits(m, r0, n);
        sum += k_crossentropy_fwd(a->lse + r0, &cnt, a->logits, a->targets + r0, n, V);
        *count += cnt;
        for (int i = 0; i < n; i++) {
            int t = a->targets[r0 + i];
            a->tgt_logit[r0 + i] = t >= 0 ? a->logits[(long)i * V + t] : 0.0f;
        }
        if (a->head_fused) chunk_unit_grad(m, r0, n);
    }
    a->full_fresh = 0;
    return sum;
}

void head_backward(tuna_model *m, int N) {
    tuna_acts *a = &m->acts;
    int V = m->cfg.V, C = m->cfg.C, R = a->head_rows, last = (N - 1) / R * R;
    if (a->head_fused) {
#pragma omp parallel for
        for (int r = 0; r < N; r++)
            for (int i = 0; i < C; i++) a->dtmp[(long)r * C + i] *= a->tok_w[r];
        return;
    }
    for (int r0 = last; r0 >= 0; r0 -= R) {
        int n = N - r0 < R ? N - r0 : R;
        if (r0 != last) chunk_logits(m, r0, n);
        k_crossentropy_bwd(a->logits, a->lse + r0, a->targets + r0, a->tok_w + r0, n, V);
        chunk_dlogits(m, n);
        linear_backward(&m->lm_head, a->dtmp + (long)r0 * C, 0, a->logits, a->normf + (long)r0 * C, n);
    }
}

/* ---- the score head of a sequence-classification model ---- */

/* row b's scored position (the one target >= 0 once the forward ran) */
static long score_pos(const tuna_acts *a, int b, int TT) {
    long n0 = (long)b * TT;
    for (long n = n0 + TT - 1; n >= n0; n--)
        if (a->targets[n] >= 0) return n;
    return n0 + TT - 1;
}

double head_score_forward(tuna_model *m, int B, int TT, int64_t *count) {
    tuna_acts *a = &m->acts;
    long C = m->cfg.C;
    double sum = 0;
    a->head_fused = 0;
    for (int b = 0; b < B; b++) {
        long n0 = (long)b * TT, p = n0 + TT - 1;
        for (long n = n0 + TT - 2; n >= n0; n--) /* target n scores labels[n + 1]: position n + 1 is counted */
            if (a->targets[n] >= 0) { p = n + 1; break; }
        float r = 0;
        linear_forward(&m->lm_head, &r, a->normf + p * C, 1);
        for (long n = n0; n < n0 + TT; n++) {
            a->targets[n] = n == p ? 0 : -1;
            a->lse[n] = 0;
            a->tgt_logit[n] = n == p ? r : 0;
        }
        sum -= r;
    }
    *count = B;
    a->full_fresh = 0;
    return sum;
}

void head_score_backward(tuna_model *m, int B, int TT) {
    tuna_acts *a = &m->acts;
    long C = m->cfg.C;
    memset(a->dtmp, 0, (size_t)B * TT * C * sizeof(float));
    for (int b = 0; b < B; b++) {
        long p = score_pos(a, b, TT);
        float dr = -a->tok_w[p]; /* d(-r)/dr, weighted */
        linear_backward(&m->lm_head, a->dtmp + p * C, 0, &dr, a->normf + p * C, 1);
    }
}

/* The whole [N,V] logits of the last forward: the chunk buffer when one chunk
 * held every row (and still holds logits, not a frozen head's dlogits), else
 * computed again into a buffer of their own, allocated on the first call
 * after a prepare. */
const float *tuna_model_logits(tuna_model *m) {
    tuna_acts *a = &m->acts;
    if (m->cfg.num_labels) {
        core_fail(TUNA_ERR_UNSUPPORTED, "%s has a score head, no vocabulary logits", m->cfg.architecture);
        return NULL;
    }
    long N = (long)a->fwd_B * (a->fwd_T + a->P);
    if (N <= a->head_rows && !a->head_fused) return a->logits;
    if (a->full_fresh) return a->full_logits;
    if (!a->full_logits) a->full_logits = malloc((size_t)a->B * a->T * m->cfg.V * sizeof(float));
    if (!a->full_logits) {
        core_fail(TUNA_ERR_NOMEM, "out of memory: logits of %ld rows need %.1f MiB", N,
                  (double)N * m->cfg.V * sizeof(float) / 1048576.0);
        return NULL;
    }
    linear_forward(&m->lm_head, a->full_logits, a->normf, (int)N);
    scale_rows(a->full_logits, N * m->cfg.V, m->logit_scale);
    a->full_fresh = 1;
    return a->full_logits;
}

void model_set_head_rows(tuna_model *m, int rows) {
    m->head_rows = rows;
    m->acts.B = 0; /* the next prepare rebuilds the activations with the new chunk */
}
