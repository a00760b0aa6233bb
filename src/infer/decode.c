/* decode.c — incremental decoding with a KV cache (see tuna_infer.h).
 *
 * The decoder runs the same blocks as model.c's forward, token rows only for
 * the new positions: linears through linear_forward (so adapters and NF4
 * bases work unchanged), RoPE at each token's absolute position, keys and
 * values appended to the row's cache, attention of the new positions against
 * the whole cache (k_attention_cached), and the final norm + lm_head only for
 * each row's last new position. The struct, caches and workspace are one
 * block, allocated once in tuna_decoder_create (see decoder_layout). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/adapter_hooks.h"
#include "model/model_internal.h"
#include "tuna_infer.h"
#include "core/error.h"

struct tuna_decoder {
    tuna_model *m;
    int max_rows, max_ctx, max_tokens;
    int nthr;                 /* threads the attention scratch has room for */
    int *len;                 /* [max_rows] positions held */
    float *kc, *vc;           /* [L][max_rows][max_ctx][NKV*HD] */
    /* workspace for up to max_tokens new positions */
    float *x, *xn, *tmp, *qkv, *att, *mlp_a, *mlp_b, *mlp_act, *mean, *rstd, *last, *scores;
    float *rope_cos, *rope_sin; /* [max_ctx, HD/2], llama only */
    int32_t *pos;
};

/* The decoder has one lifetime: everything is sized at creation and nothing
 * is resized later, so the struct, the row lengths, the caches and the
 * workspace live in one block. decoder_layout computes its size (base NULL)
 * and, given the block, carves it into d's pointers with the same code. */
static size_t decoder_layout(const tuna_config *c, int max_rows, int max_ctx, int max_tokens, int nthr,
                             tuna_decoder *d, char *base) {
    size_t off = 0;
    long N = max_tokens, KD = (long)c->NKV * c->HD, QD = (long)c->NH * c->HD, QKV = QD + 2 * KD;
    size_t cache = (size_t)c->L * max_rows * max_ctx * KD;
#define CARVE(ptr, count, type)                                       \
    do {                                                              \
        if (base) (ptr) = (type *)(base + off);                       \
        off += (((size_t)(count) * sizeof(type)) + 63) & ~(size_t)63; \
    } while (0)
    off += (sizeof *d + 63) & ~(size_t)63; /* the struct itself heads the block */
    CARVE(d->len, max_rows, int);
    CARVE(d->kc, cache, float);
    CARVE(d->vc, cache, float);
    CARVE(d->x, N * c->C, float);
    CARVE(d->xn, N * c->C, float);
    CARVE(d->tmp, N * c->C, float);
    CARVE(d->qkv, N * QKV, float);
    CARVE(d->att, N * QD, float);
    CARVE(d->mlp_a, N * c->FF, float);
    CARVE(d->mlp_b, N * c->FF, float);
    CARVE(d->mlp_act, N * c->FF, float);
    CARVE(d->mean, N, float);
    CARVE(d->rstd, N, float);
    CARVE(d->last, 2L * max_rows * c->C, float);
    CARVE(d->scores, (long)nthr * N * max_ctx, float);
    CARVE(d->pos, N, int32_t);
    if (c->family == TUNA_FAMILY_LLAMA) {
        CARVE(d->rope_cos, (long)max_ctx * (c->HD / 2), float);
        CARVE(d->rope_sin, (long)max_ctx * (c->HD / 2), float);
    }
#undef CARVE
    return off;
}

size_t tuna_decoder_bytes(const tuna_config *c, int max_rows, int max_ctx, int max_tokens) {
    if (c->learned_positions && max_ctx > c->max_positions) max_ctx = c->max_positions;
    return decoder_layout(c, max_rows, max_ctx, max_tokens, omp_get_max_threads(), NULL, NULL);
}

void tuna_decoder_free(tuna_decoder *d) { free(d); /* the one block decoder_layout carved */ }

tuna_status tuna_decoder_create(tuna_decoder **out, tuna_model *m, int max_rows, int max_ctx, int max_tokens) {
    *out = NULL;
    const tuna_config *c = &m->cfg;
    if (c->num_labels)
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s is a reward model (a score head, no vocabulary): it cannot generate",
                         c->architecture);
    if (max_rows <= 0 || max_ctx <= 0 || max_tokens <= 0)
        return core_fail(TUNA_ERR_ARG, "decoder sizes must be positive (rows %d, context %d, tokens %d)", max_rows, max_ctx,
                         max_tokens);
    if (c->learned_positions && max_ctx > c->max_positions) max_ctx = c->max_positions;
    int nthr = omp_get_max_threads();
    size_t bytes = decoder_layout(c, max_rows, max_ctx, max_tokens, nthr, NULL, NULL);
    char *base = NULL;
    if (posix_memalign((void **)&base, 64, bytes) != 0) {
        size_t cache = (size_t)c->L * max_rows * max_ctx * c->NKV * c->HD;
        return core_fail(TUNA_ERR_NOMEM, "out of memory: KV cache for %d rows x %d positions needs %.1f MiB", max_rows,
                         max_ctx, 2.0 * cache * 4 / 1048576.0);
    }
    tuna_decoder *d = (tuna_decoder *)base;
    memset(d, 0, sizeof *d);
    decoder_layout(c, max_rows, max_ctx, max_tokens, nthr, d, base);
    memset(d->len, 0, (size_t)max_rows * sizeof *d->len);
    d->m = m;
    model_bf16_begin(m); /* a trained model's bf16 copies hold its latest weights */
    d->max_rows = max_rows;
    d->max_ctx = max_ctx;
    d->max_tokens = max_tokens;
    d->nthr = nthr;
    if (c->family == TUNA_FAMILY_LLAMA) model_rope_tables(c, d->rope_cos, d->rope_sin, max_ctx);
    if (m->peft) {
        tuna_status st = adapter_prepare(m, max_tokens > max_rows ? max_tokens : max_rows);
        if (st != TUNA_OK) { tuna_decoder_free(d); return st; }
        tuna_peft_set_training(m, 0);
    }
    *out = d;
    return TUNA_OK;
}

tuna_status tuna_decoder_set_model(tuna_decoder *d, tuna_model *m) {
    const tuna_config *a = &d->m->cfg, *b = &m->cfg;
    if (a->family != b->family || a->L != b->L || a->C != b->C || a->NH != b->NH || a->NKV != b->NKV || a->HD != b->HD ||
        a->FF != b->FF || a->V != b->V)
        return core_fail(TUNA_ERR_ARG, "the decoder's caches were made for a model of another shape");
    if (m->peft) {
        tuna_status st = adapter_prepare(m, d->max_tokens > d->max_rows ? d->max_tokens : d->max_rows);
        if (st != TUNA_OK) return st;
        tuna_peft_set_training(m, 0);
    }
    d->m = m;
    return TUNA_OK;
}

void tuna_decoder_reset(tuna_decoder *d, int row) {
    if (row >= 0 && row < d->max_rows) d->len[row] = 0;
}

int tuna_decoder_vocab(const tuna_decoder *d) { return d->m->cfg.V; }

int tuna_decoder_length(const tuna_decoder *d, int row) { return row >= 0 && row < d->max_rows ? d->len[row] : 0; }

static void norm(const tuna_config *c, float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                 int N) {
    if (c->norm == TUNA_NORM_LAYERNORM) k_layernorm_fwd(out, mean, rstd, x, w, b, N, c->C, c->norm_eps);
    else k_rmsnorm_fwd(out, rstd, x, w, N, c->C, c->norm_eps);
}

static float *cache_row(const tuna_decoder *d, float *base, int layer, int row) {
    const tuna_config *c = &d->m->cfg;
    long KD = (long)c->NKV * c->HD;
    return base + (((long)layer * d->max_rows + row) * d->max_ctx) * KD;
}

/* Runs n new positions for each listed row; ids NULL: the prompt-tuning
 * virtual tokens 0..n-1. Logits of each row's last position into logits[r*V]
 * when logits is not NULL. */
static tuna_status run(tuna_decoder *d, const int *rows, int nrows, const int32_t *ids, int n, float *logits) {
    tuna_model *m = d->m;
    const tuna_config *c = &m->cfg;
    int N = nrows * n, C = c->C;
    long KD = (long)c->NKV * c->HD, QD = (long)c->NH * c->HD, QKV = QD + 2 * KD;
    const float *prompt = adapter_prompt(m);
    for (int i = 0; i < N; i++) {
        int r = i / n, t = i % n, p = d->len[rows[r]] + t;
        d->pos[i] = p;
        float *xi = d->x + (long)i * C;
        if (ids) model_embed_row(m, ids[i], xi);
        else memcpy(xi, prompt + (long)t * C, (size_t)C * sizeof(float));
        if (c->learned_positions) model_pos_add(m, p, xi);
        if (i % STORED_LOOKUP_ROWS == STORED_LOOKUP_ROWS - 1 || i == N - 1) model_embed_done(m);
    }
    /* q, k, v of all new tokens: GPT-2 interleaved [N, 3C]; Llama [N,QD] | [N,KD] | [N,KD] */
    int gpt2 = c->family == TUNA_FAMILY_GPT2;
    float *q = d->qkv, *k = gpt2 ? d->qkv + C : d->qkv + (long)N * QD, *v = gpt2 ? d->qkv + 2 * C : k + (long)N * KD;
    int sq = gpt2 ? (int)QKV : (int)QD, skv = gpt2 ? (int)QKV : (int)KD;
    for (int l = 0; l < c->L; l++) {
        tuna_block *b = &m->blocks[l];
        if (m->bf16) linear_bf16_flush(m->bf16); /* xn is rewritten */
        norm(c, d->xn, d->mean, d->rstd, d->x, b->ln1_w, b->ln1_b, N);
        if (gpt2) linear_forward(&b->qkv, d->qkv, d->xn, N);
        else {
            linear_forward(&b->q, q, d->xn, N);
            linear_forward(&b->k, k, d->xn, N);
            linear_forward(&b->v, v, d->xn, N);
            k_rope(q, d->pos, d->rope_cos, d->rope_sin, N, c->NH, c->HD, sq, 0);
            k_rope(k, d->pos, d->rope_cos, d->rope_sin, N, c->NKV, c->HD, skv, 0);
        }
        for (int i = 0; i < N; i++) {
            int row = rows[i / n];
            memcpy(cache_row(d, d->kc, l, row) + (long)d->pos[i] * KD, k + (long)i * skv, (size_t)KD * sizeof(float));
            memcpy(cache_row(d, d->vc, l, row) + (long)d->pos[i] * KD, v + (long)i * skv, (size_t)KD * sizeof(float));
        }
        for (int r = 0; r < nrows; r++)
            k_attention_cached(d->att + (long)r * n * QD, (int)QD, q + (long)r * n * sq, sq, cache_row(d, d->kc, l, rows[r]),
                               cache_row(d, d->vc, l, rows[r]), d->len[rows[r]], n, c->NH, c->NKV, c->HD, d->scores, d->nthr);
        linear_forward(&b->o, d->tmp, d->att, N);
        for (long i = 0; i < (long)N * C; i++) d->x[i] += d->tmp[i];
        norm(c, d->xn, d->mean, d->rstd, d->x, b->ln2_w, b->ln2_b, N);
        if (c->mlp == TUNA_MLP_GELU_TANH) {
            linear_forward(&b->fc, d->mlp_a, d->xn, N);
            k_gelu_fwd(d->mlp_act, d->mlp_a, (long)N * c->FF);
        } else {
            linear_forward(&b->gate, d->mlp_a, d->xn, N);
            linear_forward(&b->up, d->mlp_b, d->xn, N);
            k_swiglu_fwd(d->mlp_act, d->mlp_a, d->mlp_b, (long)N * c->FF);
        }
        linear_forward(&b->down, d->tmp, d->mlp_act, N);
        for (long i = 0; i < (long)N * C; i++) d->x[i] += d->tmp[i];
    }
    for (int r = 0; r < nrows; r++) d->len[rows[r]] += n;
    if (!logits) return TUNA_OK;
    float *lastx = d->last, *lastn = d->last + (long)nrows * C;
    for (int r = 0; r < nrows; r++) memcpy(lastx + (long)r * C, d->x + ((long)r * n + n - 1) * C, (size_t)C * sizeof(float));
    norm(c, lastn, d->mean, d->rstd, lastx, m->lnf_w, m->lnf_b, nrows);
    linear_forward(&m->lm_head, logits, lastn, nrows);
    return TUNA_OK;
}

tuna_status tuna_decoder_step(tuna_decoder *d, const int *rows, int nrows, const int32_t *ids, int n, float *logits) {
    const tuna_config *c = &d->m->cfg;
    int P = adapter_prompt_rows(d->m);
    if (nrows <= 0 || n <= 0) return core_fail(TUNA_ERR_ARG, "decode step needs rows and tokens (%d rows, %d tokens)", nrows, n);
    if ((long)nrows * n > d->max_tokens || nrows > d->max_rows)
        return core_fail(TUNA_ERR_ARG, "decode step of %d rows x %d tokens exceeds the decoder's %d tokens", nrows, n, d->max_tokens);
    for (int r = 0; r < nrows; r++) {
        int row = rows[r];
        if (row < 0 || row >= d->max_rows) return core_fail(TUNA_ERR_ARG, "row %d outside the decoder's %d rows", row, d->max_rows);
        for (int r2 = 0; r2 < r; r2++)
            if (rows[r2] == row) return core_fail(TUNA_ERR_ARG, "row %d listed twice in one decode step", row);
        int need = d->len[row] + n + (d->len[row] == 0 ? P : 0);
        if (need > d->max_ctx)
            return core_fail(TUNA_ERR_ARG, "row %d would hold %d positions; the context is %d%s", row, need, d->max_ctx,
                             c->learned_positions ? " (the model's learned positions)" : "");
        if (c->sliding_window > 0 && need > c->sliding_window)
            return core_fail(TUNA_ERR_UNSUPPORTED, "row %d would exceed the model's sliding_window of %d", row, c->sliding_window);
        for (int t = 0; t < n; t++)
            if (ids[(long)r * n + t] < 0 || ids[(long)r * n + t] >= c->V)
                return core_fail(TUNA_ERR_ARG, "token id %d outside the vocabulary (0..%d)", ids[(long)r * n + t], c->V - 1);
    }
    tuna_status st = TUNA_OK;
    /* prompt tuning: a row that starts gets the virtual tokens first */
    for (int r = 0; P && st == TUNA_OK && r < nrows; r++)
        if (d->len[rows[r]] == 0) {
            if (P > d->max_tokens) st = core_fail(TUNA_ERR_ARG, "%d virtual tokens exceed the decoder's %d tokens", P, d->max_tokens);
            else st = run(d, &rows[r], 1, NULL, P, NULL);
        }
    if (st == TUNA_OK) st = run(d, rows, nrows, ids, n, logits);
    return st;
}
