/* test_kernels.c — every fast CPU kernel against its serial reference
 * (kernels_ref.c), on odd sizes that exercise the blocked loops' edges.
 * Tolerance: relative L2 1e-5 — both compute in fp32 with reductions of at most
 * a few hundred terms (the reference accumulates in double), so the expected
 * error is ~1e-7; 1e-5 leaves margin without hiding a wrong index. */
#include <omp.h>
#include <stdlib.h>

#include "check.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"

static tuna_rng rng;

static float *rnd(long n) {
    float *p = malloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) p[i] = rng_normal(&rng);
    return p;
}
static float *zeros(long n) { return calloc((size_t)n, sizeof(float)); }
static float *copy(const float *s, long n) {
    float *p = malloc((size_t)n * sizeof(float));
    memcpy(p, s, (size_t)n * sizeof(float));
    return p;
}

#define CLOSE(a, b, n, what) do { double e = rel_l2(a, b, n); CHECKF(e < 1e-5, "%s: rel L2 %.3g", what, e); } while (0)

static void test_matmul(void) {
    int N = 37, IC = 70, OC = 130;
    float *in = rnd((long)N * IC), *w = rnd((long)OC * IC), *b = rnd(OC), *dout = rnd((long)N * OC);
    float *o1 = zeros((long)N * OC), *o2 = zeros((long)N * OC);
    k_matmul_fwd(o1, in, w, b, N, IC, OC);
    k_matmul_fwd_ref(o2, in, w, b, N, IC, OC);
    CLOSE(o1, o2, (long)N * OC, "matmul fwd");
    k_matmul_fwd(o1, in, w, NULL, N, IC, OC);
    k_matmul_fwd_ref(o2, in, w, NULL, N, IC, OC);
    CLOSE(o1, o2, (long)N * OC, "matmul fwd no bias");
    /* accumulate into non-zero gradients to check += semantics */
    float *di1 = rnd((long)N * IC), *di2 = copy(di1, (long)N * IC);
    float *dw1 = rnd((long)OC * IC), *dw2 = copy(dw1, (long)OC * IC), *db1 = rnd(OC), *db2 = copy(db1, OC);
    k_matmul_bwd(di1, dw1, db1, dout, in, w, N, IC, OC, 1);
    k_matmul_bwd_ref(di2, dw2, db2, dout, in, w, N, IC, OC, 1);
    CLOSE(di1, di2, (long)N * IC, "matmul bwd din (acc)");
    CLOSE(dw1, dw2, (long)OC * IC, "matmul bwd dw");
    CLOSE(db1, db2, OC, "matmul bwd db");
    k_matmul_bwd(di1, NULL, NULL, dout, in, w, N, IC, OC, 0);
    k_matmul_bwd_ref(di2, NULL, NULL, dout, in, w, N, IC, OC, 0);
    CLOSE(di1, di2, (long)N * IC, "matmul bwd din (overwrite)");
    free(in); free(w); free(b); free(dout); free(o1); free(o2); free(di1); free(di2);
    free(dw1); free(dw2); free(db1); free(db2);
}

/* the decoding product on 16-bit weights against the reference and against
 * the fp32 GEMM of the same (exactly converted) weights, for 1..8 rows, an
 * input size that leaves a vector tail, with and without bias */
static void test_matvec_half(void) {
    int IC = 333, OC = 67;
    float *w = rnd((long)OC * IC), *b = rnd(OC), *in = rnd(8L * IC), *wf = zeros((long)OC * IC);
    float *o1 = zeros(8L * OC), *o2 = zeros(8L * OC), *o3 = zeros(8L * OC);
    uint16_t *wh = malloc((size_t)OC * IC * sizeof *wh);
    for (int bf = 0; bf < 2; bf++) {
        for (long i = 0; i < (long)OC * IC; i++) {
            wh[i] = bf ? st_f32_to_bf16(w[i]) : st_f32_to_f16(w[i]);
            wf[i] = bf ? st_bf16_to_f32(wh[i]) : st_f16_to_f32(wh[i]);
        }
        for (int N = 1; N <= K_MATVEC_HALF_MAX_ROWS; N += 3) {
            for (int hb = 0; hb < 2; hb++) {
                k_matvec_half(o1, in, wh, bf, hb ? b : NULL, N, IC, OC);
                k_matvec_half_ref(o2, in, wh, bf, hb ? b : NULL, N, IC, OC);
                k_matmul_fwd(o3, in, wf, hb ? b : NULL, N, IC, OC);
                double e = rel_l2(o1, o2, (long)N * OC), e3 = rel_l2(o1, o3, (long)N * OC);
                CHECKF(e < 1e-6 && e3 < 1e-6, "matvec %s N=%d bias=%d: rel L2 %.3g vs reference, %.3g vs fp32 GEMM",
                       bf ? "bf16" : "f16", N, hb, e, e3);
            }
        }
    }
    free(w); free(b); free(in); free(wf); free(o1); free(o2); free(o3); free(wh);
}

static void test_norms(void) {
    int N = 19, C = 150;
    float *x = rnd((long)N * C), *w = rnd(C), *b = rnd(C), *dout = rnd((long)N * C);
    float *out = zeros((long)N * C), *mean = zeros(N), *rstd = zeros(N);
    k_layernorm_fwd(out, mean, rstd, x, w, b, N, C, 1e-5f);
    /* forward against a direct formula */
    double maxerr = 0;
    for (int n = 0; n < N; n++) {
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += x[n * C + c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[n * C + c] - m) * (x[n * C + c] - m);
        v /= C;
        for (int c = 0; c < C; c++) {
            double y = (x[n * C + c] - m) / sqrt(v + 1e-5) * w[c] + b[c];
            maxerr = fmax(maxerr, fabs(y - out[n * C + c]));
        }
    }
    CHECKF(maxerr < 1e-5, "layernorm fwd max err %.3g", maxerr);
    float *d1 = rnd((long)N * C), *d2 = copy(d1, (long)N * C), *dw1 = rnd(C), *dw2 = copy(dw1, C), *db1 = rnd(C),
          *db2 = copy(db1, C);
    k_layernorm_bwd(d1, dw1, db1, dout, x, w, mean, rstd, N, C);
    k_layernorm_bwd_ref(d2, dw2, db2, dout, x, w, mean, rstd, N, C);
    CLOSE(d1, d2, (long)N * C, "layernorm bwd din");
    CLOSE(dw1, dw2, C, "layernorm bwd dw");
    CLOSE(db1, db2, C, "layernorm bwd db");
    k_rmsnorm_fwd(out, rstd, x, w, N, C, 1e-6f);
    maxerr = 0;
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[n * C + c] * x[n * C + c];
        for (int c = 0; c < C; c++) maxerr = fmax(maxerr, fabs(x[n * C + c] / sqrt(ss / C + 1e-6) * w[c] - out[n * C + c]));
    }
    CHECKF(maxerr < 1e-5, "rmsnorm fwd max err %.3g", maxerr);
    k_rmsnorm_bwd(d1, dw1, dout, x, w, rstd, N, C);
    k_rmsnorm_bwd_ref(d2, dw2, dout, x, w, rstd, N, C);
    CLOSE(d1, d2, (long)N * C, "rmsnorm bwd din");
    CLOSE(dw1, dw2, C, "rmsnorm bwd dw");
    free(x); free(w); free(b); free(dout); free(out); free(mean); free(rstd);
    free(d1); free(d2); free(dw1); free(dw2); free(db1); free(db2);
}

/* elementwise backward kernels against central finite differences in double */
static void test_activations(void) {
    long n = 257;
    float *x = rnd(n), *u = rnd(n), *dout = rnd(n), *d = zeros(n), *du = zeros(n), *y = zeros(n);
    k_gelu_bwd(d, dout, x, n);
    double maxerr = 0;
    for (long i = 0; i < n; i++) {
        double h = 1e-3, v = x[i];
        double f1 = 0.5 * (v + h) * (1 + tanh(0.7978845608028654 * ((v + h) + 0.044715 * pow(v + h, 3))));
        double f0 = 0.5 * (v - h) * (1 + tanh(0.7978845608028654 * ((v - h) + 0.044715 * pow(v - h, 3))));
        maxerr = fmax(maxerr, fabs(dout[i] * (f1 - f0) / (2 * h) - d[i]));
    }
    CHECKF(maxerr < 1e-4, "gelu bwd vs finite differences: %.3g", maxerr);
    k_gelu_fwd(y, x, n);
    maxerr = 0;
    for (long i = 0; i < n; i++) {
        double v = x[i];
        maxerr = fmax(maxerr, fabs(0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))) - y[i]));
    }
    CHECKF(maxerr < 1e-6, "gelu fwd: %.3g", maxerr);
    k_swiglu_bwd(d, du, dout, x, u, n);
    maxerr = 0;
    for (long i = 0; i < n; i++) {
        double h = 1e-3, g = x[i];
        double fp = (g + h) / (1 + exp(-(g + h))) * u[i], fm = (g - h) / (1 + exp(-(g - h))) * u[i];
        maxerr = fmax(maxerr, fabs(dout[i] * (fp - fm) / (2 * h) - d[i]));
        maxerr = fmax(maxerr, fabs(dout[i] * g / (1 + exp(-g)) - du[i]));
    }
    CHECKF(maxerr < 1e-4, "swiglu bwd vs finite differences: %.3g", maxerr);
    free(x); free(u); free(dout); free(d); free(du); free(y);
}

static void test_rope(void) {
    int N = 9, H = 3, HD = 8, ld = 30;
    float *x = rnd((long)N * ld), *x0 = copy(x, (long)N * ld), *cs = zeros(16 * HD / 2), *sn = zeros(16 * HD / 2);
    int32_t pos[9];
    for (int i = 0; i < N; i++) pos[i] = (i * 5) % 16;
    for (int t = 0; t < 16; t++)
        for (int i = 0; i < HD / 2; i++) { cs[t * HD / 2 + i] = cosf(t * 0.3f * (i + 1)); sn[t * HD / 2 + i] = sinf(t * 0.3f * (i + 1)); }
    k_rope(x, pos, cs, sn, N, H, HD, ld, 0);
    /* columns beyond H*HD are untouched; the rotation preserves norms; inverse restores */
    int untouched = 1;
    for (int n = 0; n < N; n++)
        for (int c = H * HD; c < ld; c++) untouched &= x[n * ld + c] == x0[n * ld + c];
    CHECK(untouched);
    double err = 0;
    for (int n = 0; n < N; n++) {
        int p = pos[n];
        for (int h = 0; h < H; h++)
            for (int i = 0; i < HD / 2; i++) {
                float a = x0[n * ld + h * HD + i], b = x0[n * ld + h * HD + i + HD / 2];
                float c = cs[p * HD / 2 + i], s = sn[p * HD / 2 + i];
                err = fmax(err, fabs(x[n * ld + h * HD + i] - (a * c - b * s)));
                err = fmax(err, fabs(x[n * ld + h * HD + i + HD / 2] - (b * c + a * s)));
            }
    }
    CHECKF(err < 1e-6, "rope fwd: %.3g", err);
    k_rope(x, pos, cs, sn, N, H, HD, ld, 1);
    CLOSE(x, x0, (long)N * ld, "rope inverse");
    free(x); free(x0); free(cs); free(sn);
}

static void test_attention(int packed, int T) {
    int B = 2, NH = 6, NKV = 2, HD = 8;
    int sq = 3 * NH * HD, sk = sq, sv = sq; /* q, k, v interleaved in one strided buffer */
    long rows = (long)B * T;
    float *qkv = rnd(rows * sq), *dout = rnd(rows * NH * HD);
    float *q = qkv, *k = qkv + NH * HD, *v = qkv + 2 * NH * HD;
    float *o1 = zeros(rows * NH * HD), *o2 = zeros(rows * NH * HD);
    float *a1 = zeros((long)B * NH * T * T), *a2 = zeros((long)B * NH * T * T);
    int32_t *pos = malloc((size_t)B * T * sizeof *pos);
    for (int i = 0; i < B * T; i++) pos[i] = packed ? (i % T) % 5 : i % T; /* restarts every 5 tokens */
    k_attention_fwd(o1, a1, 1, 0, q, k, v, packed ? pos : NULL, B, T, NH, NKV, HD, sq, sk, sv);
    k_attention_fwd_ref(o2, a2, q, k, v, packed ? pos : NULL, B, T, NH, NKV, HD, sq, sk, sv);
    CLOSE(o1, o2, rows * NH * HD, packed ? "attention fwd (packed)" : "attention fwd");
    CLOSE(a1, a2, (long)B * NH * T * T, "attention probabilities");
    float *g1 = rnd(rows * sq), *g2 = copy(g1, rows * sq), *g3 = copy(g1, rows * sq), *scratch = zeros(128L * T * T);
    k_attention_bwd(g1, g1 + NH * HD, g1 + 2 * NH * HD, scratch, 64, dout, a1, q, k, v, packed ? pos : NULL, B, T, NH, NKV, HD,
                    sq, sk, sv);
    k_attention_bwd_ref(g2, g2 + NH * HD, g2 + 2 * NH * HD, dout, a2, q, k, v, B, T, NH, NKV, HD, sq, sk, sv);
    CLOSE(g1, g2, rows * sq, packed ? "attention bwd dq/dk/dv (packed)" : "attention bwd dq/dk/dv");
    /* without kept probabilities: the forward's scratch form gives the same output, and
     * backward recomputes the probabilities bit for bit */
    float *o3 = zeros(rows * NH * HD);
    k_attention_fwd(o3, scratch, 0, 128, q, k, v, packed ? pos : NULL, B, T, NH, NKV, HD, sq, sk, sv);
    CHECK(memcmp(o1, o3, (size_t)rows * NH * HD * sizeof(float)) == 0);
    k_attention_bwd(g3, g3 + NH * HD, g3 + 2 * NH * HD, scratch, 64, dout, NULL, q, k, v, packed ? pos : NULL, B, T, NH, NKV, HD,
                    sq, sk, sv);
    CHECK(memcmp(g1, g3, (size_t)rows * sq * sizeof(float)) == 0);
    free(qkv); free(dout); free(o1); free(o2); free(o3); free(a1); free(a2); free(g1); free(g2); free(g3); free(scratch);
    free(pos);
}

/* Fills n floats with a sentinel; counts those that changed. */
static void fill_sentinel(float *p, long n) { for (long i = 0; i < n; i++) p[i] = 1234.5f; }
static long count_changed(const float *p, long n) {
    long c = 0;
    for (long i = 0; i < n; i++) c += p[i] != 1234.5f;
    return c;
}

/* Scratches of `slots` slices used by a team of 8: the kernels hold the team
 * to the slices they were given. The floats after each scratch must stay as
 * they were, and the results equal those of the caller's usual team (bit for
 * bit: the team size does not change the arithmetic of one (batch, head)). */
static void test_attention_slots(int slots) {
    int B = 2, T = 40, NH = 6, NKV = 2, HD = 8, n = 3, sq = 3 * NH * HD, team = omp_get_max_threads();
    long rows = (long)B * T, slice = 2L * T * T, cslice = (long)n * T, guard = 8 * slice;
    float *qkv = rnd(rows * sq), *dout = rnd(rows * NH * HD), *q = qkv, *k = qkv + NH * HD, *v = qkv + 2 * NH * HD;
    float *kc = rnd((long)T * NKV * HD), *vc = rnd((long)T * NKV * HD), *cq = rnd((long)n * NH * HD);
    float *o1 = zeros(rows * NH * HD), *o2 = zeros(rows * NH * HD), *g1 = zeros(rows * sq), *g2 = zeros(rows * sq);
    float *co1 = zeros((long)n * NH * HD), *co2 = zeros((long)n * NH * HD);
    float *ref = zeros(team * slice), *scratch = malloc((size_t)(slots * slice + guard) * sizeof(float));
    float *cscratch = malloc((size_t)(slots * cslice + guard) * sizeof(float));
    k_attention_fwd(o1, ref, 0, team, q, k, v, NULL, B, T, NH, NKV, HD, sq, sq, sq);
    k_attention_bwd(g1, g1 + NH * HD, g1 + 2 * NH * HD, ref, team, dout, NULL, q, k, v, NULL, B, T, NH, NKV, HD, sq, sq, sq);
    k_attention_cached(co1, NH * HD, cq, NH * HD, kc, vc, T - n, n, NH, NKV, HD, ref, team);
    fill_sentinel(scratch, slots * slice + guard);
    fill_sentinel(cscratch, slots * cslice + guard);
    omp_set_num_threads(8);
    k_attention_fwd(o2, scratch, 0, slots, q, k, v, NULL, B, T, NH, NKV, HD, sq, sq, sq);
    long past_fwd = count_changed(scratch + slots * slice / 2, slots * slice / 2 + guard); /* forward slices: T*T */
    k_attention_bwd(g2, g2 + NH * HD, g2 + 2 * NH * HD, scratch, slots, dout, NULL, q, k, v, NULL, B, T, NH, NKV, HD, sq, sq, sq);
    k_attention_cached(co2, NH * HD, cq, NH * HD, kc, vc, T - n, n, NH, NKV, HD, cscratch, slots);
    omp_set_num_threads(team);
    long past_bwd = count_changed(scratch + slots * slice, guard), past_cached = count_changed(cscratch + slots * cslice, guard);
    CHECKF(past_fwd == 0 && past_bwd == 0 && past_cached == 0,
           "%d scratch slots, team of 8: floats written past the scratch: forward %ld, backward %ld, cached %ld", slots,
           past_fwd, past_bwd, past_cached);
    CHECK(memcmp(o1, o2, (size_t)rows * NH * HD * sizeof(float)) == 0);
    CHECK(memcmp(g1, g2, (size_t)rows * sq * sizeof(float)) == 0);
    CHECK(memcmp(co1, co2, (size_t)n * NH * HD * sizeof(float)) == 0);
    free(qkv); free(dout); free(kc); free(vc); free(cq); free(o1); free(o2); free(g1); free(g2); free(co1); free(co2);
    free(ref); free(scratch); free(cscratch);
}

static void test_crossentropy(void) {
    int N = 11, V = 300;
    float *logits = rnd((long)N * V), *lse = zeros(N);
    int32_t tg[11];
    for (int i = 0; i < N; i++) tg[i] = i % 3 == 0 ? -1 : (i * 37) % V;
    int64_t cnt;
    double sum = k_crossentropy_fwd(lse, &cnt, logits, tg, N, V);
    double ref = 0;
    for (int n = 0; n < N; n++) {
        if (tg[n] < 0) continue;
        double s = 0;
        for (int i = 0; i < V; i++) s += exp((double)logits[n * V + i]);
        ref += log(s) - logits[n * V + tg[n]];
    }
    CHECK(cnt == 7);
    CHECKF(fabs(sum - ref) < 1e-5 * fabs(ref), "cross-entropy %.9g vs %.9g", sum, ref);
    float *g = copy(logits, (long)N * V);
    float wts[11];
    for (int n = 0; n < N; n++) wts[n] = 0.5f + 0.1f * n;
    k_crossentropy_bwd(g, lse, tg, wts, N, V);
    double maxerr = 0;
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int i = 0; i < V; i++) s += exp((double)logits[n * V + i]);
        for (int i = 0; i < V; i++) {
            double want = tg[n] < 0 ? 0 : (0.5 + 0.1 * n) * (exp((double)logits[n * V + i]) / s - (i == tg[n]));
            maxerr = fmax(maxerr, fabs(want - g[n * V + i]));
        }
    }
    /* gradients reach (p - 1) * 1.5: one fp32 ulp there is 1.2e-7, so allow two */
    CHECKF(maxerr < 2.5e-7, "cross-entropy gradient: %.3g", maxerr);
    free(logits); free(lse); free(g);
}

int main(void) {
    rng_seed(&rng, 42, 1);
    test_matmul();
    test_matvec_half();
    test_norms();
    test_activations();
    test_rope();
    test_attention(0, 13);
    test_attention(0, 150); /* several causal row blocks, the last partial */
    test_attention(1, 13);
    test_attention(1, 150);
    test_attention_slots(1);
    test_attention_slots(3);
    test_crossentropy();
    return test_done();
}
