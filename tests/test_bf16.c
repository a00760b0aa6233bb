/* test_bf16.c — bf16 compute below the model's fidelity tests
 * (test_parity_bf16.c): the rounding kernel against the scalar reference,
 * the oneDNN GEMM against the serial reference in every layout, with strides,
 * alpha and beta; and a model's linears in bf16 from each kind of weight
 * (fp32 copy, bf16 as stored, f16 and NF4 converted by tiles): close to fp32,
 * yet not fp32, and fp32 again, bit for bit, once switched off.
 * Without a bf16 GEMM on this CPU the GEMM and model parts are absent
 * (a failure under CI, whose machine has one). */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "model_probe.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "tuna.h"
#include "tuna_peft.h"

static float urand(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) / 16777216.0) * 2.0f - 1.0f;
}

/* k_f32_to_bf16 = st_f32_to_bf16 (round to nearest even), vector and tail */
static void test_round(void) {
    long n = 70000 + 37; /* past the threshold of the parallel loop, and a tail */
    float *x = malloc((size_t)n * sizeof *x);
    uint16_t *h = malloc((size_t)n * sizeof *h);
    uint64_t s = 1;
    for (long i = 0; i < n; i++) x[i] = urand(&s) * 1000.0f;
    const uint32_t special[] = {0x3f808000u /* tie, even below */, 0x3f818000u /* tie, odd: up */, 0x3f80ffffu,
                                0x7f7fffffu /* rounds to inf */, 0x7f800000u, 0xff800000u, 0x00000001u, 0x80000000u};
    for (int i = 0; i < 8; i++) memcpy(&x[i * 9], &special[i], 4);
    k_f32_to_bf16(h, x, n);
    long bad = 0;
    for (long i = 0; i < n; i++) bad += h[i] != st_f32_to_bf16(x[i]);
    CHECKF(bad == 0, "%ld of %ld values rounded differently from st_f32_to_bf16", bad, n);
    uint32_t qnan = 0x7fc00001u;
    memcpy(&x[5], &qnan, 4);
    k_f32_to_bf16(h + 5, x + 5, 1);
    CHECKF((h[5] & 0x7f80) == 0x7f80 && (h[5] & 0x7f), "NaN became %#x", h[5]);
    free(x);
    free(h);
}

/* one GEMM against the serial reference: max |diff| relative to max |ref| */
static double gemm_err(int ta, int tb, int M, int N, int K, float alpha, float beta, int bias, int pad, uint64_t seed) {
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    long na = (long)(ta ? K : M) * lda, nb = (long)(tb ? N : K) * ldb, nc = (long)M * ldc;
    uint16_t *A = malloc(na * 2), *B = malloc(nb * 2);
    float *C = malloc(nc * 4), *R = malloc(nc * 4), *b = bias ? malloc((size_t)N * 4) : NULL;
    for (int j = 0; b && j < N; j++) b[j] = urand(&seed);
    for (long i = 0; i < na; i++) A[i] = st_f32_to_bf16(urand(&seed));
    for (long i = 0; i < nb; i++) B[i] = st_f32_to_bf16(urand(&seed));
    for (long i = 0; i < nc; i++) C[i] = R[i] = urand(&seed);
    k_gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, b, beta, C, ldc);
    k_gemm_bf16_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, b, beta, R, ldc);
    double num = 0, den = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double d = fabs((double)C[(long)i * ldc + j] - R[(long)i * ldc + j]), r = fabs(R[(long)i * ldc + j]);
            if (d > num) num = d;
            if (r > den) den = r;
        }
    int pads_kept = 1; /* the padding between rows of C is never written */
    for (int i = 0; i < M && pad; i++)
        for (int j = N; j < ldc; j++) pads_kept &= C[(long)i * ldc + j] == R[(long)i * ldc + j];
    free(A); free(B); free(C); free(R); free(b);
    return pads_kept ? num / (den > 0 ? den : 1) : 1.0;
}

static void test_gemm(void) {
    /* 48x80x63: oneDNN 2.6's AMX kernel dies of SIGILL unless K is padded */
    const int shapes[][3] = {{64, 96, 128}, {33, 17, 250}, {1, 200, 64}, {300, 16, 192}, {16, 300, 1024}, {48, 80, 63}};
    for (int s = 0; s < 6; s++)
        for (int t = 0; t < 4; t++)
            for (int v = 0; v < 4; v++) {
                float alpha = v == 2 ? 0.5f : 1.0f, beta = v == 1 ? 1.0f : v == 2 ? 0.25f : 0.0f;
                int pad = (s + t + v) % 2 ? 3 : 0, bias = v >= 2;
                double e = gemm_err(t >> 1, t & 1, shapes[s][0], shapes[s][1], shapes[s][2], alpha, beta, bias, pad, 11 + s);
                /* both sum exact bf16 products, fp32 against double: 1e-5 covers K = 1024 */
                CHECKF(e < 1e-5, "k_gemm_bf16 %dx%dx%d ta %d tb %d alpha %g beta %g bias %d pad %d: rel err %.2g",
                       shapes[s][0], shapes[s][1], shapes[s][2], t >> 1, t & 1, alpha, beta, bias, pad, e);
            }
}

/* ---- attention with bf16 products ---- */

/* rel L2 of the hd columns of each of n rows (row stride ld) against ref */
static double rows_err(const float *x, const float *ref, long n, int ld, int hd) {
    double num = 0, den = 0;
    for (long r = 0; r < n; r++)
        for (int i = 0; i < hd; i++) {
            double d = (double)x[r * ld + i] - ref[r * ld + i];
            num += d * d;
            den += (double)ref[r * ld + i] * ref[r * ld + i];
        }
    return sqrt(num / (den > 0 ? den : 1));
}

/* k_attention_fwd_bf16 / _bwd_bf16 against the fp32 references, q, k, v
 * interleaved in one strided buffer as a model's qkv: within bf16's
 * tolerance (inputs rounded to 8 bits of mantissa, 2^-9 relative, the sums
 * in fp32: 1e-2 relative L2 for the output, 2e-2 for gradients that pass
 * through two rounded products), yet not fp32's result */
static void test_attention(int B, int T, int NH, int NKV, int HD, int packed) {
    int sq = (NH + 2 * NKV) * HD, sk = sq, sv = sq, QD = NH * HD;
    long rows = (long)B * T;
    float *qkv = malloc(rows * sq * 4), *dout = malloc(rows * QD * 4), *o = malloc(rows * QD * 4);
    float *oref = malloc(rows * QD * 4), *att = malloc((long)B * NH * T * T * 4);
    float *g = malloc(rows * sq * 4), *gref = malloc(rows * sq * 4);
    int32_t *pos = malloc(rows * 4);
    void *scratch = malloc(k_attention_bf16_scratch(B, T, NH, NKV, HD));
    uint64_t s = 3 + T;
    for (long i = 0; i < rows * sq; i++) qkv[i] = 2.0f * urand(&s), g[i] = 1e30f; /* g: every value is written */
    for (long i = 0; i < rows * QD; i++) dout[i] = urand(&s);
    for (long i = 0; i < rows; i++) pos[i] = packed ? (int32_t)(i % T % 5) : (int32_t)(i % T); /* restarts every 5 */
    const float *q = qkv, *k = qkv + QD, *v = k + NKV * HD;
    const int32_t *p = packed ? pos : NULL;
    int r1 = k_attention_fwd_bf16(o, scratch, q, k, v, p, B, T, NH, NKV, HD, sq, sk, sv);
    int r2 = k_attention_bwd_bf16(g, g + QD, g + QD + NKV * HD, scratch, dout, q, k, v, p, B, T, NH, NKV, HD, sq, sk, sv);
    k_attention_fwd_ref(oref, att, q, k, v, p, B, T, NH, NKV, HD, sq, sk, sv);
    k_attention_bwd_ref(gref, gref + QD, gref + QD + NKV * HD, dout, att, q, k, v, B, T, NH, NKV, HD, sq, sk, sv);
    double e[4] = {rows_err(o, oref, rows, QD, QD), rows_err(g, gref, rows, sq, QD),
                   rows_err(g + QD, gref + QD, rows, sq, NKV * HD), rows_err(g + QD + NKV * HD, gref + QD + NKV * HD, rows, sq, NKV * HD)};
    printf("bf16 attention B %d T %d NH %d NKV %d HD %d%s: rel L2 out %.2g dq %.2g dk %.2g dv %.2g\n", B, T, NH, NKV, HD,
           packed ? " packed" : "", e[0], e[1], e[2], e[3]);
    CHECKF(r1 == 0 && r2 == 0, "bf16 attention T %d HD %d: not run (%d %d)", T, HD, r1, r2);
    for (int i = 0; i < 4; i++)
        CHECKF(e[i] < (i ? 2e-2 : 1e-2) && e[i] > 1e-5, "bf16 attention B %d T %d NH %d NKV %d HD %d packed %d: %s rel L2 %.3g",
               B, T, NH, NKV, HD, packed, (const char *[]){"out", "dq", "dk", "dv"}[i], e[i]);
    free(qkv); free(dout); free(o); free(oref); free(att); free(g); free(gref); free(pos); free(scratch);
}

static void test_attentions(void) {
    test_attention(2, 37, 6, 2, 16, 0); /* grouped kv heads, T and HD padded to 64 and 32 */
    test_attention(2, 37, 6, 2, 16, 1); /* packed sequences */
    test_attention(3, 64, 4, 4, 64, 1);
    /* 41 units shared by the team, one per thread at a time */
    test_attention(1, 256, 41, 41, 64, 0);
}

/* ---- a model's linears in bf16 ---- */

static tuna_batch make_batch(int B, int T, int V) {
    int32_t *ids = malloc((size_t)B * T * 4), *lab = malloc((size_t)B * T * 4);
    uint64_t s = 5;
    for (int i = 0; i < B * T; i++) ids[i] = lab[i] = (int32_t)((urand(&s) + 1.0f) * 0.5f * (V - 1));
    return (tuna_batch){.B = B, .T = T, .input_ids = ids, .labels = lab};
}

/* loss and the trainable gradients of one forward/backward */
static double run(tuna_model *m, const tuna_batch *bt, float *g, int64_t ng) {
    tuna_loss l;
    tuna_model_zero_grad(m);
    if (tuna_model_forward(m, bt, &l) != TUNA_OK || tuna_model_backward(m, bt, 1.0f / l.tokens) != TUNA_OK) {
        fprintf(stderr, "forward/backward: %s\n", tuna_last_error());
        return NAN;
    }
    int64_t k = 0;
    const float *src = probe_trainable_grads(m, &k);
    if (k == ng) memcpy(g, src, (size_t)k * 4);
    return l.loss_sum / l.tokens;
}

/* LoRA on every linear of the model in dir loaded in quant mode: bf16 close
 * to fp32 (loss 1e-2, adapter gradients 2e-2 relative L2) but not equal, and
 * fp32 exactly again once bf16 is off */
static void test_model(const char *dir, tuna_quant_type quant, const char *what) {
    tuna_model *m = NULL;
    if (tuna_model_load_quantized(&m, dir, quant) != TUNA_OK) {
        CHECKF(0, "%s: load: %s", what, tuna_last_error());
        return;
    }
    tuna_peft_config pc;
    tuna_peft_config_default(&pc, TUNA_PEFT_LORA);
    snprintf(pc.targets, sizeof pc.targets, "all-linear");
    pc.r = 4;
    tuna_batch bt = make_batch(2, 24, tuna_model_config(m)->V);
    CHECKF(tuna_peft_attach(m, &pc, 3) == TUNA_OK && tuna_model_prepare(m, bt.B, bt.T, TUNA_MODE_TRAIN) == TUNA_OK, "%s: %s", what, tuna_last_error());
    int64_t n = 0;
    float *w = probe_trainable_weights(m, &n);
    uint64_t s = 9;
    for (int64_t i = 0; i < n; i++) w[i] = 0.05f * urand(&s); /* B = 0 would make A's gradients 0 */
    float *g32 = malloc((size_t)n * 4), *g16 = malloc((size_t)n * 4), *gb = malloc((size_t)n * 4);
    double l32 = run(m, &bt, g32, n);
    CHECK(tuna_model_set_bf16(m, 1) == 1 && tuna_model_bf16(m));
    double l16 = run(m, &bt, g16, n);
    CHECK(tuna_model_set_bf16(m, 0) == 0 && !tuna_model_bf16(m));
    double lb = run(m, &bt, gb, n);
    double eg = rel_l2(g16, g32, n);
    printf("%s: loss fp32 %.6f bf16 %.6f (rel %.2g); adapter gradients rel L2 %.2g\n", what, l32, l16,
           fabs(l16 - l32) / l32, eg);
    CHECKF(fabs(l16 - l32) < 1e-2 * l32 && l16 != l32, "%s: bf16 loss %.7f, fp32 %.7f", what, l16, l32);
    CHECKF(eg < 2e-2 && eg > 1e-6, "%s: gradients rel L2 %.3g from fp32", what, eg);
    CHECKF(lb == l32 && !memcmp(gb, g32, (size_t)n * 4), "%s: bf16 off again: loss %.9g, before %.9g", what, lb, l32);
    free(g32); free(g16); free(gb); free((void *)bt.input_ids); free((void *)bt.labels);
    tuna_model_free(m);
}

/* a trainable model's bf16 copies follow its weights: after a write to every
 * weight, the next forward's bf16 loss is close to the new fp32 loss */
static void test_copies_follow(void) {
    tuna_model *m = NULL;
    if (tuna_model_load(&m, "tests/fixtures/parity/llama_gqa") != TUNA_OK) {
        CHECKF(0, "load: %s", tuna_last_error());
        return;
    }
    tuna_batch bt = make_batch(2, 24, tuna_model_config(m)->V);
    CHECK(tuna_model_prepare(m, bt.B, bt.T, TUNA_MODE_TRAIN) == TUNA_OK);
    CHECK(tuna_model_set_bf16(m, 1) == 1);
    double before = run(m, &bt, NULL, 0);
    for (int i = 0; i < tuna_model_num_params(m); i++) {
        const tuna_param *p = tuna_model_param(m, i);
        for (int64_t k = 0; p->ndim == 2 && k < p->numel; k++) p->data[k] *= 10.0f;
    }
    double l16 = run(m, &bt, NULL, 0);
    tuna_model_set_bf16(m, 0);
    double l32 = run(m, &bt, NULL, 0);
    CHECKF(fabs(l16 - l32) < 1e-2 * l32 && fabs(l16 - before) > 5e-2 * before,
           "weights x10: bf16 loss %.6f, fp32 %.6f (before %.6f)", l16, l32, before);
    free((void *)bt.input_ids);
    free((void *)bt.labels);
    tuna_model_free(m);
}

int main(void) {
    test_round();
    if (!tuna_bf16_supported()) {
        test_absent("bf16 GEMM and model", tuna_kernels_info());
        return test_done();
    }
    printf("%s\n", tuna_kernels_info());
    test_gemm();
    test_attentions();
    test_copies_follow();
    test_model("tests/fixtures/parity/llama_gqa", TUNA_QUANT_NONE, "llama_gqa fp32 (bf16 copies)");
    test_model("tests/fixtures/parity/gpt2", TUNA_QUANT_STORED, "gpt2 fp32 stored in place (bf16 copies)");
    test_model("tests/fixtures/parity/llama_tied", TUNA_QUANT_STORED, "llama_tied bf16 as stored");
    test_model("tests/fixtures/parity/gpt2_noprefix", TUNA_QUANT_STORED, "gpt2 f16 stored (tiles)");
    test_model("tests/fixtures/parity/mistral", TUNA_QUANT_NF4, "mistral NF4 (tiles)");
    test_model("tests/fixtures/parity/llama_gqa", TUNA_QUANT_NF4, "llama_gqa NF4 (tiles)");
    return test_done();
}
