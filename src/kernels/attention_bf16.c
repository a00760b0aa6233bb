/* attention_bf16.c — causal self-attention with its products in bf16 (see
 * kernels.h): what torch.autocast computes, for a model in bf16 mode.
 *
 * Work goes by kv unit (one batch row's kv head with its group of G query
 * heads), one unit per thread at a time, as the fp32 kernel goes by head: a
 * unit's Q, K, V (and dO) are copied, rounded, into the thread's head-major
 * bf16 buffers, and each product is one oneDNN matmul over the unit
 * (k_gemm_bf16_batched, single-threaded inside the team, primitives cached
 * and shared by the threads). The G query heads of a unit are stacked as
 * G*Tp rows: QK^T and dO V^T are single products, and so are dK and dV, sums
 * over the group (their K runs over the stacked rows); PV and dS K broadcast
 * the unit's K or V over its G heads. oneDNN writes the outputs straight
 * into the caller's strided layout.
 *
 * Why per unit and per thread (measured on GPT-2's 4 x 256, 12 heads): one
 * product over many units at once (24 per call, oneDNN threading each call)
 * ran the layer 10% slower on one thread, its scores no longer in L2 between
 * the product, the softmax and the next product; and on the 2 shared cores
 * here under load, its many short parallel regions (a dozen per chunk) each
 * waited for a descheduled thread: 10-100x slower than the fp32 kernel. One
 * region per call with a unit per thread runs like the fp32 kernel does.
 *
 * T and HD are padded with zeros to multiples of 32 (Tp, Dp) in the copies,
 * so that every product's K is one (oneDNN 2.6's AMX kernels fail on some
 * small K that are not, see gemm_bf16.c); zeros never change a sum. The
 * products are full Tp x Tp, not causal row blocks: a block would be one more
 * primitive call and shape each; P and dS are rounded only up to the
 * diagonal. The softmax runs in fp32 on the fp32 scores, through the fp32
 * kernel's k_causal_softmax_rows, and so does dS = P * (dP - rowsum(P*dP)) *
 * scale. The scratch: a unit's buffers per thread, threads held to
 * ATT_BF16_SCRATCH bytes (one unit at least: then each product has the
 * whole team). The backward recomputes the probabilities. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/prof.h"
#include "kernels/kernels.h"

/* the geometry and one thread's scratch, carved (see carve). The buffers
 * and the operand helpers below take n units; a thread runs one at a time
 * (units = 1, see the top: larger n measured slower) */
typedef struct {
    int T, Tp, HD, Dp, G, NKV, NH;
    long units;           /* kv units the buffers hold */
    uint16_t *q16, *do16; /* [units, G, Tp, Dp] Q, dO rounded, zero pads */
    uint16_t *k16, *v16;  /* [units, Tp, Dp] */
    uint16_t *p16;        /* [units, G, Tp, Tp] P (then dS) rounded */
    float *s, *dp;        /* [units, G, Tp, Tp] scores then P; dP then dS */
} att_chunk;

static long pad32(long x) { return (x + 31) / 32 * 32; }
static long al64(long bytes) { return (bytes + 63) & ~63L; }

/* bytes of scratch one kv unit needs */
static long unit_bytes(long G, long Tp, long Dp) {
    return 2 * al64(G * Tp * Dp * 2) + 2 * al64(Tp * Dp * 2) + al64(G * Tp * Tp * 2) + 2 * al64(G * Tp * Tp * 4);
}

/* threads that take units at once, each with its own unit's scratch: the
 * caller's team, held to the units there are and to ATT_BF16_SCRATCH bytes
 * (one at least; then each product is spread over the whole team) */
static int att_team(int B, int T, int NH, int NKV, int HD) {
    long per = unit_bytes(NH / NKV, pad32(T), pad32(HD)), team = omp_get_max_threads();
    if (team > (long)B * NKV) team = (long)B * NKV;
    if (team > ATT_BF16_SCRATCH / per) team = ATT_BF16_SCRATCH / per;
    return team > 1 ? (int)team : 1;
}

size_t k_attention_bf16_scratch(int B, int T, int NH, int NKV, int HD) {
    return (size_t)att_team(B, T, NH, NKV, HD) * unit_bytes(NH / NKV, pad32(T), pad32(HD));
}

/* thread i's unit of scratch */
static att_chunk carve(void *scratch, int i, int T, int NH, int NKV, int HD) {
    att_chunk c = {.T = T, .Tp = (int)pad32(T), .HD = HD, .Dp = (int)pad32(HD), .G = NH / NKV, .NKV = NKV, .NH = NH, .units = 1};
    long n = c.units, G = c.G, Tp = c.Tp, Dp = c.Dp;
    char *p = (char *)scratch + i * unit_bytes(G, Tp, Dp);
#define TAKE(ptr, count)                          \
    do {                                          \
        (ptr) = (void *)p;                        \
        p += al64((count) * (long)sizeof *(ptr)); \
    } while (0)
    TAKE(c.q16, n * G * Tp * Dp);
    TAKE(c.do16, n * G * Tp * Dp);
    TAKE(c.k16, n * Tp * Dp);
    TAKE(c.v16, n * Tp * Dp);
    TAKE(c.p16, n * G * Tp * Tp);
    TAKE(c.s, n * G * Tp * Tp);
    TAKE(c.dp, n * G * Tp * Tp);
#undef TAKE
    return c;
}

/* x [B, T, H*HD] (row stride ld), heads of units [u0, u0+n) (h = kv head *
 * hg + j, j < hg) -> dst [n, hg, Tp, Dp] in bf16, zeros in the pads */
static void gather16(uint16_t *dst, const float *x, int ld, const att_chunk *c, long u0, long n, int hg) {
    long rows = n * hg * c->Tp;
#pragma omp parallel for schedule(static) if (!omp_in_parallel())
    for (long r = 0; r < rows; r++) {
        long u = u0 + r / ((long)hg * c->Tp), j = r / c->Tp % hg, t = r % c->Tp;
        long b = u / c->NKV, h = u % c->NKV * hg + j;
        uint16_t *d = dst + r * c->Dp;
        int w = t < c->T ? c->HD : 0;
        if (w) k_f32_to_bf16_serial(d, x + (b * c->T + t) * ld + h * c->HD, w);
        memset(d + w, 0, (size_t)(c->Dp - w) * sizeof *d);
    }
}

/* d[0, n) = x[0, w) rounded to bf16, zeros after: whole groups of 32 are
 * rounded (the vector path), what they take past w is then overwritten */
static void round_row(uint16_t *d, const float *x, long w, long n) {
    long r = pad32(w) < n ? pad32(w) : n;
    k_f32_to_bf16_serial(d, x, r);
    memset(d + w, 0, (size_t)(n - w) * sizeof *d);
}

/* ---- the products ---- */

/* one operand of a batched product: [n units, g, rows, cols] with strides */
typedef struct {
    long d[4], s[4];
} opnd;

static opnd op(long n, long g, long rows, long cols, long sn, long sg, long sr, long sc) {
    return (opnd){{n, g, rows, cols}, {sn, sg, sr, sc}};
}

/* C = alpha A B + beta C per unit; nonzero when oneDNN could not */
static int bmm(float alpha, float beta, opnd a, const uint16_t *A, opnd b, const uint16_t *Bm, opnd c, float *C) {
    k_bgemm g;
    memset(&g, 0, sizeof g);
    g.ndims = 4, g.alpha = alpha, g.beta = beta;
    for (int i = 0; i < 4; i++) {
        g.a_dims[i] = a.d[i], g.a_str[i] = a.s[i];
        g.b_dims[i] = b.d[i], g.b_str[i] = b.s[i];
        g.c_dims[i] = c.d[i], g.c_str[i] = c.s[i];
    }
    return k_gemm_bf16_batched(&g, A, Bm, C);
}

/* The operands, n units each: a query-side copy as stacked rows [G*Tp, Dp],
 * or its first HD columns; a kv copy [Tp, HD], or transposed [Dp, Tp];
 * scores as stacked rows [G*Tp, Tp]; per head [G][T, Tp], or transposed
 * over the stack [T, G*Tp]; outputs in the caller's layout (row stride ld)
 * per query head [G][T, HD] or per kv head [T, HD]. */
static opnd op_stack(const att_chunk *c, long n, int hd_only) {
    long GT = (long)c->G * c->Tp;
    return op(n, 1, GT, hd_only ? c->HD : c->Dp, GT * c->Dp, GT * c->Dp, c->Dp, 1);
}
static opnd op_kv(const att_chunk *c, long n, int trans) {
    long TD = (long)c->Tp * c->Dp;
    return trans ? op(n, 1, c->Dp, c->Tp, TD, TD, 1, c->Dp) : op(n, 1, c->Tp, c->HD, TD, TD, c->Dp, 1);
}
static opnd op_scores(const att_chunk *c, long n) {
    long GT = (long)c->G * c->Tp;
    return op(n, 1, GT, c->Tp, GT * c->Tp, GT * c->Tp, c->Tp, 1);
}
static opnd op_heads(const att_chunk *c, long n, int trans) {
    long TT = (long)c->Tp * c->Tp, GT = (long)c->G * c->Tp;
    return trans ? op(n, 1, c->T, GT, GT * c->Tp, GT * c->Tp, 1, c->Tp) : op(n, c->G, c->T, c->Tp, c->G * TT, TT, c->Tp, 1);
}
static opnd op_out(const att_chunk *c, long n, long ld, int per_q) {
    long hg = per_q ? c->G : 1;
    return op(n, hg, c->T, c->HD, hg * c->HD, c->HD, ld, 1);
}
/* where unit u0's first output value is in a layout of row stride ld */
static long out_at(const att_chunk *c, long u0, long ld, int per_q) {
    return u0 / c->NKV * c->T * ld + u0 % c->NKV * (per_q ? c->G : 1) * c->HD;
}

/* The products of a unit that go per query head j (G calls): Y_j = P_j X
 * into head j's output columns (trans 0: O = P V, dQ = dS K), or
 * Y = sum_j P_j^T X_j per kv head (trans 1: dV = P^T dO, dK = dS^T Q).
 * Stacked, with X broadcast over the heads or K = G*Tp, oneDNN 2.6 takes
 * its slower gemm:jit path instead of brgemm AMX, and that one ran 5x slower
 * with two threads calling it (SmolLM2's 3 heads per kv head). */
static int per_head(const att_chunk *c, long u0, const uint16_t *X, int trans, float *y, long ld) {
    att_chunk h = *c;
    h.G = 1;
    long TT = (long)c->Tp * c->Tp, TD = (long)c->Tp * c->Dp;
    for (long j = 0; j < c->G; j++) {
        const uint16_t *P = c->p16 + j * TT;
        int bad = trans ? bmm(1.0f, j ? 1.0f : 0.0f, op_heads(&h, 1, 1), P, op_stack(&h, 1, 1), X + j * TD,
                              op_out(&h, 1, ld, 0), y + out_at(c, u0, ld, 0))
                        : bmm(1.0f, 0.0f, op_heads(&h, 1, 0), P, op_kv(&h, 1, 0), X, op_out(&h, 1, ld, 1),
                              y + out_at(c, u0, ld, 1) + j * c->HD);
        if (bad) return 1;
    }
    return 0;
}

/* ---- forward ---- */

/* S = scale Q K^T, then P = causal softmax(S) in fp32 (in s, columns up to
 * t only) and in bf16 (in p16, zeros past t and in pad rows); pos: the
 * whole batch's [B*T] or NULL */
static int probs(const att_chunk *c, long u0, long n, const int32_t *pos, float scale) {
    long Tp = c->Tp, rows = n * c->G * Tp;
    if (bmm(scale, 0.0f, op_stack(c, n, 0), c->q16, op_kv(c, n, 1), c->k16, op_scores(c, n), c->s)) return 1;
#pragma omp parallel for schedule(static) if (!omp_in_parallel())
    for (long r = 0; r < rows; r++) {
        long t = r % Tp, b = (u0 + r / (c->G * Tp)) / c->NKV, w = t < c->T ? t + 1 : 0;
        float *row = c->s + r * Tp;
        if (w) k_causal_softmax_rows(row - t * Tp, (int)Tp, (int)w, pos ? pos + b * c->T : NULL, (int)t, (int)t + 1);
        round_row(c->p16 + r * Tp, row, w, Tp);
    }
    return 0;
}

static int fwd_chunk(float *out, const att_chunk *c, long u0, long n, const float *q, const float *k, const float *v,
                     const int32_t *pos, int sq, int sk, int sv) {
    long ldo = (long)c->NH * c->HD;
    gather16(c->q16, q, sq, c, u0, n, c->G);
    gather16(c->k16, k, sk, c, u0, n, 1);
    gather16(c->v16, v, sv, c, u0, n, 1);
    if (probs(c, u0, n, pos, 1.0f / sqrtf((float)c->HD))) return 1;
    /* O = P V */
    return per_head(c, u0, c->v16, 0, out, ldo);
}

/* runs RUN(c, u) over the B x NKV units on the team (c: the thread's
 * scratch); bad: set when one failed (the rest are then skipped) */
#define FOR_UNITS(scratch, B, T, NH, NKV, HD, bad, RUN)                                     \
    do {                                                                                \
        int team_ = att_team(B, T, NH, NKV, HD);                                        \
        _Pragma("omp parallel num_threads(team_) if (team_ > 1)")                       \
        {                                                                               \
            att_chunk c_ = carve(scratch, omp_get_thread_num(), T, NH, NKV, HD);        \
            _Pragma("omp for schedule(dynamic)")                                        \
            for (long u_ = 0; u_ < (long)(B) * (NKV); u_++) {                           \
                int seen_;                                                              \
                _Pragma("omp atomic read") seen_ = (bad);                               \
                if (!seen_ && RUN(&c_, u_)) {                                           \
                    _Pragma("omp atomic write")(bad) = 1;                               \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    } while (0)

int k_attention_fwd_bf16(float *out, void *scratch, const float *q, const float *k, const float *v, const int32_t *pos,
                         int B, int T, int NH, int NKV, int HD, int sq, int sk, int sv) {
    double t0 = prof_start();
    int bad = 0;
#define RUN(c, u) fwd_chunk(out, c, u, 1, q, k, v, pos, sq, sk, sv)
    FOR_UNITS(scratch, B, T, NH, NKV, HD, bad, RUN);
#undef RUN
    prof_stop(PROF_ATTENTION, t0, 0);
    return bad;
}

/* ---- backward ---- */

/* dS = P * (dP - rowsum(P*dP)) * scale over columns [0, w) of a row, in
 * place of dP (the row sum in 16 lanes, vectorized: a serial sum's chain of
 * adds was the larger part of this pass) */
static void ds_row(float *dp, const float *p, long w, float scale) {
    float acc[16] = {0}, dot = 0;
    long s = 0;
    for (; s + 16 <= w; s += 16)
        for (int i = 0; i < 16; i++) acc[i] += p[s + i] * dp[s + i];
    for (; s < w; s++) dot += p[s] * dp[s];
    for (int i = 0; i < 16; i++) dot += acc[i];
    for (s = 0; s < w; s++) dp[s] = p[s] * (dp[s] - dot) * scale;
}

/* dS of every row into dp, rounded into p16 (P's bf16 copy is spent by
 * then); zeros past t and in pad rows */
static void softmax_grad(const att_chunk *c, long n, float scale) {
    long Tp = c->Tp, rows = n * c->G * Tp;
#pragma omp parallel for schedule(static) if (!omp_in_parallel())
    for (long r = 0; r < rows; r++) {
        long t = r % Tp, w = t < c->T ? t + 1 : 0;
        ds_row(c->dp + r * Tp, c->s + r * Tp, w, scale);
        round_row(c->p16 + r * Tp, c->dp + r * Tp, w, Tp);
    }
}

typedef struct {
    float *dq, *dk, *dv;
    const float *dout, *q, *k, *v;
    const int32_t *pos;
    int sq, sk, sv;
} att_grads;

static int bwd_chunk(const att_grads *a, const att_chunk *c, long u0, long n) {
    float scale = 1.0f / sqrtf((float)c->HD);
    gather16(c->q16, a->q, a->sq, c, u0, n, c->G);
    gather16(c->k16, a->k, a->sk, c, u0, n, 1);
    gather16(c->v16, a->v, a->sv, c, u0, n, 1);
    gather16(c->do16, a->dout, c->NH * c->HD, c, u0, n, c->G);
    if (probs(c, u0, n, a->pos, scale)) return 1;
    /* dP = dO V^T; dV = P^T dO, summed over the group's stacked rows */
    if (bmm(1.0f, 0.0f, op_stack(c, n, 0), c->do16, op_kv(c, n, 1), c->v16, op_scores(c, n), c->dp) ||
        per_head(c, u0, c->do16, 1, a->dv, a->sv))
        return 1;
    softmax_grad(c, n, scale);
    /* dQ = dS K; dK = dS^T Q */
    return per_head(c, u0, c->k16, 0, a->dq, a->sq) || per_head(c, u0, c->q16, 1, a->dk, a->sk);
}

int k_attention_bwd_bf16(float *dq, float *dk, float *dv, void *scratch, const float *dout, const float *q, const float *k,
                         const float *v, const int32_t *pos, int B, int T, int NH, int NKV, int HD, int sq, int sk, int sv) {
    double t0 = prof_start();
    att_grads a = {dq, dk, dv, dout, q, k, v, pos, sq, sk, sv};
    int bad = 0;
#define RUN(c, u) bwd_chunk(&a, c, u, 1)
    FOR_UNITS(scratch, B, T, NH, NKV, HD, bad, RUN);
#undef RUN
    prof_stop(PROF_ATTENTION, t0, 0);
    return bad;
}
