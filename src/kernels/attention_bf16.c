/* attention_bf16.c — causal self-attention with its products in bf16 (see
 * kernels.h): what torch.autocast computes, for a model in bf16 mode.
 *
 * A layer's heads go through oneDNN in few calls: the heads of a chunk of
 * kv units (a unit: one batch row's kv head with its group of G query heads)
 * are copied, rounded, into head-major bf16 buffers, and each product is one
 * batched matmul over the chunk's units (k_gemm_bf16_batched). The G query
 * heads of a unit are stacked as G*Tp rows, so grouped KV heads need no
 * broadcast: dK and dV, sums over the group, are single products whose K
 * runs over the stacked rows. T and HD are padded with zeros to multiples of
 * 32 (Tp, Dp) in those copies, so every product's K is one (oneDNN 2.6's AMX
 * kernels fail on some small K that are not, see gemm_bf16.c); the pads add
 * zeros, never change a sum. The products are full Tp x Tp, not causal row
 * blocks: each block would be one more primitive call and shape, and the
 * masked half is cheaper than that at the lengths trained here.
 *
 * The softmax and its backward run in fp32 on the fp32 scores through the
 * fp32 kernel's row functions (k_causal_softmax_rows, ..._bwd_rows); outputs
 * come back fp32 through a head-major temporary and are scattered to the
 * caller's strided layout. Chunks hold at most ATT_BF16_SCRATCH bytes of
 * scratch (one unit at least), the backward recomputes the probabilities. */
#include <math.h>
#include <string.h>

#include "core/prof.h"
#include "kernels/kernels.h"

/* one chunk's geometry and its scratch, carved (see carve) */
typedef struct {
    int T, Tp, HD, Dp, G, NKV, NH;
    long units;          /* kv units per chunk */
    uint16_t *q16, *do16; /* [units, G, Tp, Dp] Q, dO rounded, zero pads */
    uint16_t *k16, *v16; /* [units, Tp, Dp] */
    uint16_t *p16;       /* [units, G, Tp, Tp] P (then dS) rounded */
    float *s, *dp;       /* [units, G, Tp, Tp] scores/probabilities, dP/dS */
    float *o;            /* [units, G, Tp, Dp] a product's fp32 output */
} att_chunk;

static long pad32(long x) { return (x + 31) / 32 * 32; }
static long al64(long bytes) { return (bytes + 63) & ~63L; }

/* bytes of scratch one kv unit needs */
static long unit_bytes(long G, long Tp, long Dp) {
    return al64(2 * G * Tp * Dp * 2) + al64(2 * Tp * Dp * 2) + al64(G * Tp * Tp * 2) + al64(2 * G * Tp * Tp * 4) +
           al64(G * Tp * Dp * 4);
}

/* kv units per chunk: as many as fit the budget (one at least), spread
 * evenly over the chunks needed */
static long chunk_units(int B, int T, int NH, int NKV, int HD) {
    long U = (long)B * NKV, per = unit_bytes(NH / NKV, pad32(T), pad32(HD));
    long fit = ATT_BF16_SCRATCH / per > 0 ? ATT_BF16_SCRATCH / per : 1, chunks = (U + fit - 1) / fit;
    return (U + chunks - 1) / chunks;
}

size_t k_attention_bf16_scratch(int B, int T, int NH, int NKV, int HD) {
    return (size_t)(chunk_units(B, T, NH, NKV, HD) * unit_bytes(NH / NKV, pad32(T), pad32(HD)));
}

static att_chunk carve(void *scratch, int B, int T, int NH, int NKV, int HD) {
    att_chunk c = {.T = T, .Tp = (int)pad32(T), .HD = HD, .Dp = (int)pad32(HD), .G = NH / NKV, .NKV = NKV, .NH = NH,
                   .units = chunk_units(B, T, NH, NKV, HD)};
    long n = c.units, G = c.G, Tp = c.Tp, Dp = c.Dp;
    char *p = scratch;
#define TAKE(ptr, count)                       \
    do {                                       \
        (ptr) = (void *)p;                     \
        p += al64((count) * (long)sizeof *(ptr)); \
    } while (0)
    TAKE(c.q16, n * G * Tp * Dp);
    TAKE(c.do16, n * G * Tp * Dp);
    TAKE(c.k16, n * Tp * Dp);
    TAKE(c.v16, n * Tp * Dp);
    TAKE(c.p16, n * G * Tp * Tp);
    TAKE(c.s, n * G * Tp * Tp);
    TAKE(c.dp, n * G * Tp * Tp);
    TAKE(c.o, n * G * Tp * Dp);
#undef TAKE
    return c;
}

/* x [B, T, H*HD] (row stride ld), heads of units [u0, u0+n) (h = kv head *
 * hg + j, j < hg) -> dst [n, hg, Tp, Dp] in bf16, zeros in the pads */
static void gather16(uint16_t *dst, const float *x, int ld, const att_chunk *c, long u0, long n, int hg) {
    long rows = n * hg * c->Tp;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        long u = u0 + r / ((long)hg * c->Tp), j = r / c->Tp % hg, t = r % c->Tp;
        long b = u / c->NKV, h = u % c->NKV * hg + j;
        uint16_t *d = dst + r * c->Dp;
        int w = t < c->T ? c->HD : 0;
        if (w) k_f32_to_bf16_serial(d, x + (b * c->T + t) * ld + h * c->HD, w);
        memset(d + w, 0, (size_t)(c->Dp - w) * sizeof *d);
    }
}

/* the inverse for fp32 results: src [n, hg, Tp, Dp] -> y (rows t < T, HD columns) */
static void scatter32(float *y, int ld, const float *src, const att_chunk *c, long u0, long n, int hg) {
    long rows = n * hg * c->T;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        long u = u0 + r / ((long)hg * c->T), j = r / c->T % hg, t = r % c->T;
        long b = u / c->NKV, h = u % c->NKV * hg + j;
        memcpy(y + (b * c->T + t) * ld + h * c->HD, src + ((u - u0) * hg * c->Tp + j * c->Tp + t) * c->Dp,
               (size_t)c->HD * sizeof *y);
    }
}

/* a 3-D operand [n, rows, cols] with strides (batch, row, column) */
static void opnd(int64_t *dims, int64_t *str, long n, long rows, long cols, long sb, long sr, long sc) {
    dims[0] = n, dims[1] = rows, dims[2] = cols;
    str[0] = sb, str[1] = sr, str[2] = sc;
}

/* C[n, M, N] = alpha A B over the chunk's units, every operand given as
 * (rows, cols, row stride, column stride) of one unit's matrix, units apart
 * by sa, sb, sc; C dense */
static int bmm(long n, float alpha, const uint16_t *A, long M, long K, long ars, long acs, long sa, const uint16_t *Bm, long N,
               long brs, long bcs, long sb, float *C) {
    k_bgemm g;
    memset(&g, 0, sizeof g);
    g.ndims = 3, g.alpha = alpha, g.beta = 0.0f;
    opnd(g.a_dims, g.a_str, n, M, K, sa, ars, acs);
    opnd(g.b_dims, g.b_str, n, K, N, sb, brs, bcs);
    opnd(g.c_dims, g.c_str, n, M, N, M * N, N, 1);
    return k_gemm_bf16_batched(&g, A, Bm, C);
}

/* S = scale Q K^T, then P = causal softmax(S) in fp32 (in s) and in bf16
 * (in p16), pad rows zero; pos: the whole batch's [B*T] or NULL */
static int probs(const att_chunk *c, long u0, long n, const int32_t *pos, float scale) {
    long G = c->G, Tp = c->Tp, Dp = c->Dp;
    if (bmm(n, scale, c->q16, G * Tp, Dp, Dp, 1, G * Tp * Dp, c->k16, Tp, 1, Dp, Tp * Dp, c->s)) return 1;
    long rows = n * G * Tp;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        long t = r % Tp, b = (u0 + r / (G * Tp)) / c->NKV;
        float *row = c->s + r * Tp;
        if (t < c->T) k_causal_softmax_rows(row - t * Tp, (int)Tp, (int)Tp, pos ? pos + b * c->T : NULL, (int)t, (int)t + 1);
        else memset(row, 0, (size_t)Tp * sizeof *row);
        k_f32_to_bf16_serial(c->p16 + r * Tp, row, Tp);
    }
    return 0;
}

static int fwd_chunk(float *out, const att_chunk *c, long u0, long n, const float *q, const float *k, const float *v,
                     const int32_t *pos, int sq, int sk, int sv) {
    long G = c->G, Tp = c->Tp, Dp = c->Dp;
    gather16(c->q16, q, sq, c, u0, n, c->G);
    gather16(c->k16, k, sk, c, u0, n, 1);
    gather16(c->v16, v, sv, c, u0, n, 1);
    if (probs(c, u0, n, pos, 1.0f / sqrtf((float)c->HD))) return 1;
    /* O = P V */
    if (bmm(n, 1.0f, c->p16, G * Tp, Tp, Tp, 1, G * Tp * Tp, c->v16, Dp, Dp, 1, Tp * Dp, c->o)) return 1;
    scatter32(out, c->NH * c->HD, c->o, c, u0, n, c->G);
    return 0;
}

int k_attention_fwd_bf16(float *out, void *scratch, const float *q, const float *k, const float *v, const int32_t *pos,
                         int B, int T, int NH, int NKV, int HD, int sq, int sk, int sv) {
    double t0 = prof_start();
    att_chunk c = carve(scratch, B, T, NH, NKV, HD);
    int bad = 0;
    for (long u0 = 0, U = (long)B * NKV; u0 < U && !bad; u0 += c.units)
        bad = fwd_chunk(out, &c, u0, U - u0 < c.units ? U - u0 : c.units, q, k, v, pos, sq, sk, sv);
    prof_stop(PROF_ATTENTION, t0, 0);
    return bad;
}

/* dS = P * (dP - rowsum(P*dP)) * scale in dp, rounded into p16 (P's bf16
 * copy is spent by then); pad rows stay zero */
static void softmax_grad(const att_chunk *c, long n, float scale) {
    long Tp = c->Tp, rows = n * c->G * Tp;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        long t = r % Tp;
        float *row = c->dp + r * Tp;
        if (t < c->T) k_causal_softmax_bwd_rows(row - t * Tp, (int)Tp, (int)Tp, c->s + (r - t) * Tp, scale, (int)t, (int)t + 1);
        else memset(row, 0, (size_t)Tp * sizeof *row);
        k_f32_to_bf16_serial(c->p16 + r * Tp, row, Tp);
    }
}

typedef struct {
    float *dq, *dk, *dv;
    const float *dout, *q, *k, *v;
    const int32_t *pos;
    int sq, sk, sv;
} att_grads;

static int bwd_chunk(const att_grads *a, const att_chunk *c, long u0, long n) {
    long G = c->G, Tp = c->Tp, Dp = c->Dp, GT = G * Tp;
    float scale = 1.0f / sqrtf((float)c->HD);
    gather16(c->q16, a->q, a->sq, c, u0, n, c->G);
    gather16(c->k16, a->k, a->sk, c, u0, n, 1);
    gather16(c->v16, a->v, a->sv, c, u0, n, 1);
    gather16(c->do16, a->dout, c->NH * c->HD, c, u0, n, c->G);
    if (probs(c, u0, n, a->pos, scale)) return 1;
    /* dP = dO V^T; dV = P^T dO, summed over the group's stacked rows */
    if (bmm(n, 1.0f, c->do16, GT, Dp, Dp, 1, GT * Dp, c->v16, Tp, 1, Dp, Tp * Dp, c->dp) ||
        bmm(n, 1.0f, c->p16, Tp, GT, 1, Tp, GT * Tp, c->do16, Dp, Dp, 1, GT * Dp, c->o))
        return 1;
    scatter32(a->dv, a->sv, c->o, c, u0, n, 1);
    softmax_grad(c, n, scale);
    /* dQ = dS K; dK = dS^T Q */
    if (bmm(n, 1.0f, c->p16, GT, Tp, Tp, 1, GT * Tp, c->k16, Dp, Dp, 1, Tp * Dp, c->o)) return 1;
    scatter32(a->dq, a->sq, c->o, c, u0, n, c->G);
    if (bmm(n, 1.0f, c->p16, Tp, GT, 1, Tp, GT * Tp, c->q16, Dp, Dp, 1, GT * Dp, c->o)) return 1;
    scatter32(a->dk, a->sk, c->o, c, u0, n, 1);
    return 0;
}

int k_attention_bwd_bf16(float *dq, float *dk, float *dv, void *scratch, const float *dout, const float *q, const float *k,
                         const float *v, const int32_t *pos, int B, int T, int NH, int NKV, int HD, int sq, int sk, int sv) {
    double t0 = prof_start();
    att_chunk c = carve(scratch, B, T, NH, NKV, HD);
    att_grads a = {dq, dk, dv, dout, q, k, v, pos, sq, sk, sv};
    int bad = 0;
    for (long u0 = 0, U = (long)B * NKV; u0 < U && !bad; u0 += c.units)
        bad = bwd_chunk(&a, &c, u0, U - u0 < c.units ? U - u0 : c.units);
    prof_stop(PROF_ATTENTION, t0, 0);
    return bad;
}
