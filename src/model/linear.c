/* linear.c — forward/backward of one linear layer (see linear.h): a GEMM on
 * the fp32 base weight or a stored one converted tile by tile, plus the
 * layer's adapter.
 *
 * LoRA keeps h = A·dropout(x) [N, r] from forward; backward needs only h, B
 * and A: dB += s dYᵀh, dh = s dY B, dA += dhᵀ dropout(x), dx += dh A (masked).
 * The dropout mask is a hash of (forward key, layer id, element), so backward
 * (and checkpointed recomputation) regenerates it instead of storing it.
 * IA3 on outputs keeps z = W x + b (the product before scaling) for ds.
 *
 * bf16 compute (l->bf16 set): the base's GEMMs take bf16 inputs and sum in
 * fp32, as torch.autocast does: x and dY are rounded once per call (x once
 * for all consecutive linears reading it), the weight is used as stored when
 * it is bf16, through its bf16 copy w16 when it is fp32, or converted tile by
 * tile from other stored types. The adapters' small GEMMs, the bias and every
 * output stay fp32. A buffer that cannot grow leaves that call on fp32. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "model/linear.h"
#include "core/mix.h"
#include "core/prof.h"
#include "kernels/kernels.h"

/* Stored base: rows [o0, o1) of W converted into the shared scratch, one tile
 * at a time (LINEAR_TILE values, see linear.h), each followed by its GEMM. */
static int tile_rows(const tuna_linear *l) {
    int r = (int)(LINEAR_TILE / l->IC);
    return r < 1 ? 1 : r > l->OC ? l->OC : r;
}

/* rows [o0, o1) of a stored W into its scratch tile, timed as dequantization */
static float *read_tile(const tuna_linear *l, int o0, int o1) {
    double t0 = prof_start();
    float *wt = l->stored->scratch;
    stored_read(l->stored, (int64_t)o0 * l->IC, (int64_t)(o1 - o0) * l->IC, wt, 0);
    prof_stop(PROF_DEQUANT, t0, 0);
    return wt;
}

/* the fp32 weight to multiply directly: w, or a stored F32 one; NULL: tiles */
static const float *direct_w(const tuna_linear *l) {
    if (!l->stored) return l->w;
    return l->stored->type == STORE_F32 && stored_in_order(l->stored) ? l->stored->data : NULL;
}

/* ---- bf16 ---- */

void linear_bf16_flush(linear_bf16 *b) { b->x_src = NULL; }

void linear_bf16_free(linear_bf16 *b) {
    free(b->x16);
    free(b->g16);
    free(b->t16);
    memset(b, 0, sizeof *b);
}

/* *buf holding at least n values (grown, contents lost); 0 when it cannot */
static int bf16_room(uint16_t **buf, size_t *cap, long n) {
    if ((size_t)n <= *cap) return 1;
    uint16_t *p = malloc((size_t)n * sizeof *p);
    if (!p) return 0;
    free(*buf);
    *buf = p;
    *cap = (size_t)n;
    return 1;
}

/* in[n] rounded to bf16: the cached copy when the last linear read the same */
static const uint16_t *bf16_input(linear_bf16 *b, const float *in, long n) {
    if (b->x_src == in && b->x_n == n) return b->x16;
    b->x_src = NULL;
    if (!bf16_room(&b->x16, &b->x_cap, n)) return NULL;
    k_f32_to_bf16(b->x16, in, n);
    b->x_src = in;
    b->x_n = n;
    return b->x16;
}

static const uint16_t *bf16_grad(linear_bf16 *b, const float *dout, long n) {
    if (!bf16_room(&b->g16, &b->g_cap, n)) return NULL;
    k_f32_to_bf16(b->g16, dout, n);
    return b->g16;
}

/* the whole weight in bf16 (the copy, or bf16 as stored); NULL: tiles */
static const uint16_t *bf16_weight(const tuna_linear *l) {
    if (l->w16) return l->w16;
    if (l->stored && l->stored->type == STORE_BF16 && stored_in_order(l->stored)) return l->stored->data;
    return NULL;
}

/* rows [o0, o1) of a stored W in bf16, in the model's tile buffer */
static const uint16_t *bf16_tile(const tuna_linear *l, int o0, int o1) {
    linear_bf16 *b = l->bf16; /* t16 exists: bf16_tiles_ok */
    k_f32_to_bf16(b->t16, read_tile(l, o0, o1), (long)(o1 - o0) * l->IC);
    return b->t16;
}

/* can a stored weight that is not whole in bf16 be tiled into bf16? */
static int bf16_tiles_ok(const tuna_linear *l) {
    return l->bf16->t16 || (l->bf16->t16 = malloc(LINEAR_TILE * sizeof *l->bf16->t16)) != NULL;
}

/* the bias in every row of out (the products are then added to it) */
static void bias_rows(float *out, const float *b, int N, int OC) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) memcpy(out + (long)n * OC, b, (size_t)OC * sizeof(float));
}

/* out = in @ W^T (+ b) in bf16; 0: not done (fp32 then) */
static int bf16_forward(const tuna_linear *l, float *out, const float *in, int N) {
    int IC = l->IC, OC = l->OC;
    const uint16_t *w = bf16_weight(l);
    if (!w && !bf16_tiles_ok(l)) return 0;
    const uint16_t *x = bf16_input(l->bf16, in, (long)N * IC);
    if (!x) return 0;
    if (w) {
        k_gemm_bf16(0, 1, N, OC, IC, 1.0f, x, IC, w, IC, l->b, 0.0f, out, OC);
        return 1;
    }
    for (int o0 = 0, R = tile_rows(l); o0 < OC; o0 += R) {
        int o1 = o0 + R < OC ? o0 + R : OC;
        k_gemm_bf16(0, 1, N, o1 - o0, IC, 1.0f, x, IC, bf16_tile(l, o0, o1), IC, l->b ? l->b + o0 : NULL, 0.0f, out + o0, OC);
    }
    return 1;
}

/* din (=, or += when acc) g @ W with g = dY rounded [N, OC] */
static void bf16_input_grad(const tuna_linear *l, float *din, int acc, const uint16_t *g, int N) {
    int IC = l->IC, OC = l->OC;
    const uint16_t *w = bf16_weight(l);
    if (w) {
        k_gemm_bf16(0, 0, N, IC, OC, 1.0f, g, OC, w, IC, NULL, acc ? 1.0f : 0.0f, din, IC);
        return;
    }
    for (int o0 = 0, R = tile_rows(l); o0 < OC; o0 += R) {
        int o1 = o0 + R < OC ? o0 + R : OC;
        k_gemm_bf16(0, 0, N, IC, o1 - o0, 1.0f, g + o0, OC, bf16_tile(l, o0, o1), IC, NULL, o0 == 0 && !acc ? 0.0f : 1.0f, din, IC);
    }
}

/* din and dw of the base in bf16 (db stays fp32 with the caller); 0: not done */
static int bf16_backward(const tuna_linear *l, float *din, int acc, float *dw, const float *dout, const float *in, int N) {
    if (!bf16_weight(l) && !bf16_tiles_ok(l)) return 0;
    const uint16_t *g = bf16_grad(l->bf16, dout, (long)N * l->OC);
    const uint16_t *x = g && dw ? bf16_input(l->bf16, in, (long)N * l->IC) : NULL;
    if (!g || (dw && !x)) return 0;
    if (din) bf16_input_grad(l, din, acc, g, N);
    if (dw) k_gemm_bf16(1, 0, l->OC, l->IC, N, 1.0f, g, l->OC, x, l->IC, NULL, 1.0f, dw, l->IC);
    return 1;
}

/* ---- fp32 (and the dispatch) ---- */

/* out[N,OC] = in @ W^T (+ b) */
static void base_forward(const tuna_linear *l, float *out, const float *in, int N) {
    if (l->bf16) {
        /* decoding a few rows: the GEMV over the bf16 weight, fp32 inputs */
        const uint16_t *w16 = bf16_weight(l);
        if (w16 && N <= K_MATVEC_HALF_MAX_ROWS) {
            k_matvec_half(out, in, w16, 1, l->b, N, l->IC, l->OC);
            return;
        }
        if (bf16_forward(l, out, in, N)) return;
    }
    const float *w = direct_w(l);
    if (w) { k_matmul_fwd(out, in, w, l->b, N, l->IC, l->OC); return; }
    store_type t = l->stored->type;
    if (N <= K_MATVEC_HALF_MAX_ROWS && (t == STORE_BF16 || t == STORE_F16) && stored_in_order(l->stored)) {
        /* decoding a few rows: one pass over the 16-bit weights, no tiles */
        k_matvec_half(out, in, l->stored->data, t == STORE_BF16, l->b, N, l->IC, l->OC);
        return;
    }
    /* the bias first and the products added to it, as k_matmul_fwd does: the
     * same roundings as the fp32 layer */
    int IC = l->IC, OC = l->OC, R = tile_rows(l);
    if (l->b) bias_rows(out, l->b, N, OC);
    for (int o0 = 0; o0 < OC; o0 += R) {
        int o1 = o0 + R < OC ? o0 + R : OC;
        const float *wt = read_tile(l, o0, o1);
        k_gemm(0, 1, N, o1 - o0, IC, 1.0f, in, IC, wt, IC, l->b ? 1.0f : 0.0f, out + o0, OC);
    }
}

/* din (=, or += when acc) dout @ W */
static void base_input_grad(const tuna_linear *l, float *din, int acc, const float *dout, int N) {
    if (l->bf16 && bf16_backward(l, din, acc, NULL, dout, NULL, N)) return;
    const float *w = direct_w(l);
    if (w) { k_matmul_bwd(din, NULL, NULL, dout, NULL, w, N, l->IC, l->OC, acc); return; }
    int IC = l->IC, OC = l->OC, R = tile_rows(l);
    for (int o0 = 0; o0 < OC; o0 += R) {
        int o1 = o0 + R < OC ? o0 + R : OC;
        const float *wt = read_tile(l, o0, o1);
        k_gemm(0, 0, N, IC, o1 - o0, 1.0f, dout + o0, OC, wt, IC, o0 == 0 && !acc ? 0.0f : 1.0f, din, IC);
    }
}

/* Backward of the base product: din (unless NULL), dw, db (when they exist).
 * A stored base is frozen: only din. */
static void base_backward(const tuna_linear *l, float *din, int acc, const float *dout, const float *in, int N) {
    float *db = l->b ? l->db : NULL;
    if (l->bf16 && (din || l->dw) && bf16_backward(l, din, acc, l->dw, dout, in, N)) {
        if (db) k_matmul_bwd(NULL, NULL, db, dout, in, NULL, N, l->IC, l->OC, 0);
        return;
    }
    if (!l->stored) {
        if (din || l->dw || db) k_matmul_bwd(din, l->dw, db, dout, in, l->w, N, l->IC, l->OC, acc);
        return;
    }
    if (din) base_input_grad(l, din, acc, dout, N);
}

/* dropout(x) into out with inverted scaling 1/(1-p), as torch.nn.Dropout.
 * The mask is a 32-bit integer hash of (stream, element): it vectorizes
 * (AVX2 has 32-bit multiplies, not 64-bit) and backward regenerates it. */
static void dropout_apply(float *out, const float *in, long n, const tuna_adapter *a) {
    const tuna_adapter_rt *rt = a->rt;
    uint64_t k64 = core_splitmix64(rt->key ^ ((uint64_t)a->id << 40));
    uint32_t key = (uint32_t)(k64 ^ (k64 >> 32));
    uint32_t thresh = (uint32_t)(rt->dropout * 4294967296.0);
    float keep = (float)(1.0 / (1.0 - rt->dropout));
#pragma omp parallel for simd
    for (long i = 0; i < n; i++) {
        uint32_t h = (uint32_t)i * 0x9E3779B1u ^ key;
        h ^= h >> 16;
        h *= 0x85EBCA6Bu;
        h ^= h >> 13;
        h *= 0xC2B2AE35u;
        h ^= h >> 16;
        out[i] = h >= thresh ? in[i] * keep : 0.0f;
    }
}

static int dropout_on(const tuna_adapter *a) { return a->rt->training && a->rt->dropout > 0; }

void linear_forward(const tuna_linear *l, float *out, const float *in, int N) {
    const tuna_adapter *a = l->adapter && !l->adapter->rt->disabled ? l->adapter : NULL;
    int IC = l->IC, OC = l->OC;
    if (a && a->kind == TUNA_ADAPTER_IA3 && a->ff) {
        float *xs = a->rt->scratch_in;
        const float *s = a->s;
#pragma omp parallel for
        for (int n = 0; n < N; n++)
            for (int i = 0; i < IC; i++) xs[(long)n * IC + i] = in[(long)n * IC + i] * s[i];
        in = xs;
    }
    base_forward(l, out, in, N);
    if (!a) return;
    if (a->kind == TUNA_ADAPTER_IA3) {
        if (a->ff) return;
        memcpy(a->z, out, (size_t)N * OC * sizeof(float));
        const float *s = a->s;
#pragma omp parallel for
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(long)n * OC + o] *= s[o];
        return;
    }
    const float *x = in;
    if (dropout_on(a)) {
        dropout_apply(a->rt->scratch_in, in, (long)N * IC, a);
        x = a->rt->scratch_in;
    }
    /* h is kept transposed, [r, N]: the skinny GEMMs of LoRA run 1.3-1.6x faster
     * in OpenBLAS with the r-row operand on the left (measured, N=1024, r=16) */
    k_gemm(0, 1, a->r, N, IC, 1.0f, a->A, IC, x, IC, 0.0f, a->h, N);
    k_gemm(1, 1, N, OC, a->r, a->scale, a->h, N, a->B, a->r, 1.0f, out, OC);
}

/* acc[c] += sum_n x[n,c] * y[n,c] over column blocks (each thread owns its columns) */
static void colsum_prod(float *acc, const float *x, const float *y, int N, int Ccols) {
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < Ccols; c0 += 64) {
        int c1 = c0 + 64 < Ccols ? c0 + 64 : Ccols;
        float t[64] = {0};
        for (int n = 0; n < N; n++) {
            const float *xr = x + (long)n * Ccols, *yr = y + (long)n * Ccols;
            for (int c = c0; c < c1; c++) t[c - c0] += xr[c] * yr[c];
        }
        for (int c = c0; c < c1; c++) acc[c] += t[c - c0];
    }
}

void linear_backward(tuna_linear *l, float *din, int din_acc, const float *dout, const float *in, int N) {
    tuna_adapter *a = l->adapter;
    int IC = l->IC, OC = l->OC;
    float *db = l->b ? l->db : NULL;
    if (!a) {
        base_backward(l, din, din_acc, dout, in, N);
        return;
    }
    if (a->kind == TUNA_ADAPTER_IA3 && !a->ff) {
        /* y = s * z: ds += colsum(dy * z); dz = dy * s */
        colsum_prod(a->ds, dout, a->z, N, OC);
        float *dz = a->rt->scratch_out;
        const float *s = a->s;
#pragma omp parallel for
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) dz[(long)n * OC + o] = dout[(long)n * OC + o] * s[o];
        base_backward(l, din, din_acc, dz, in, N);
        return;
    }
    if (a->kind == TUNA_ADAPTER_IA3) {
        /* y = W (s * x) + b: dx' = dy W; ds += colsum(dx' * x); dx = dx' * s */
        float *dxs = a->rt->scratch_in;
        if (l->dw) { /* trainable base (not used by PEFT, kept correct): needs s * x */
            float *xs = a->rt->scratch_out; /* sized for N * max(IC, OC) */
#pragma omp parallel for
            for (long i = 0; i < (long)N * IC; i++) xs[i] = in[i] * a->s[i % IC];
            k_matmul_bwd(NULL, l->dw, NULL, dout, xs, l->w, N, IC, OC, 0);
        }
        if (db) k_matmul_bwd(NULL, NULL, db, dout, in, NULL, N, IC, OC, 0);
        base_input_grad(l, dxs, 0, dout, N);
        colsum_prod(a->ds, dxs, in, N, IC);
        if (din) {
            const float *s = a->s;
#pragma omp parallel for
            for (int n = 0; n < N; n++) {
                float *d = din + (long)n * IC;
                const float *g = dxs + (long)n * IC;
                if (din_acc) for (int i = 0; i < IC; i++) d[i] += g[i] * s[i];
                else for (int i = 0; i < IC; i++) d[i] = g[i] * s[i];
            }
        }
        return;
    }
    /* LoRA */
    int r = a->r;
    base_backward(l, din, din_acc, dout, in, N);
    /* transposed temporaries: dhT [r, N] = s Bᵀ dYᵀ, dBT [r, OC] = s hT dY */
    float *dhT = a->rt->scratch_out, *dBT = dhT + (long)r * N;
    k_gemm(0, 0, r, OC, N, a->scale, a->h, N, dout, OC, 0.0f, dBT, OC);
    float *dB = a->dB;
#pragma omp parallel for
    for (int o = 0; o < OC; o++)
        for (int j = 0; j < r; j++) dB[(long)o * r + j] += dBT[(long)j * OC + o];
    k_gemm(1, 1, r, N, OC, a->scale, a->B, r, dout, OC, 0.0f, dhT, N);
    const float *x = in;
    int drop = dropout_on(a);
    if (drop) {
        dropout_apply(a->rt->scratch_in, in, (long)N * IC, a);
        x = a->rt->scratch_in;
    }
    k_gemm(0, 0, r, IC, N, 1.0f, dhT, N, x, IC, 1.0f, a->dA, IC);
    if (!din) return;
    if (!drop) {
        /* din was written (or accumulated) by the base above */
        k_gemm(1, 0, N, IC, r, 1.0f, dhT, N, a->A, IC, 1.0f, din, IC);
        return;
    }
    /* dx += mask * keep * (dh A): form dh A in scratch, then apply dropout's own mask */
    float *g = a->rt->scratch_in;
    k_gemm(1, 0, N, IC, r, 1.0f, dhT, N, a->A, IC, 0.0f, g, IC);
    dropout_apply(g, g, (long)N * IC, a);
#pragma omp parallel for simd
    for (long i = 0; i < (long)N * IC; i++) din[i] += g[i];
}
