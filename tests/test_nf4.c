/* test_nf4.c — NF4 + double quantization (src/kernels/nf4.c) against the
 * bitsandbytes re-implementation of tools/make_peft_fixtures.py, stored in
 * tests/fixtures/peft/nf4/nf4.safetensors. Everything the fixture holds must be
 * reproduced BIT for bit (memcmp): the dynamic map, the NF4 codes, packed
 * bytes, block absmax, plain dequantization, the offset, the 8-bit codes and
 * absmax2, the dequantized absmax and the final dequantized weights. Then the
 * properties the fixture does not cover: arbitrary (start, count) ranges, odd
 * n, all-zero blocks, non-finite input, storage size, the parallel path.
 * Runs from the repository root. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "kernels/nf4.h"

static const char *FIX = "tests/fixtures/peft/nf4/nf4.safetensors";
static st_file fx;
static tuna_rng rng;

static const st_tensor *get(const char *mat, const char *what, st_dtype dt) {
    char name[128];
    snprintf(name, sizeof name, "%s%s%s", mat, *mat ? "." : "", what);
    const st_tensor *t = st_find(&fx, name);
    CHECKF(t && t->dtype == dt, "fixture tensor %s missing or wrong dtype", name);
    return t && t->dtype == dt ? t : NULL;
}

static int same(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

/* number of differing fp32 values (b may be unaligned fixture data) */
static int64_t count_diff_f32(const float *a, const void *b, int64_t n) {
    int64_t d = 0;
    for (int64_t i = 0; i < n; i++) d += memcmp(a + i, (const char *)b + 4 * i, sizeof(float)) != 0;
    return d;
}

/* distance in units in the last place between two positive floats */
static long ulps(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    return labs((long)ia - (long)ib);
}

static int q_at(const uint8_t *packed, int64_t i) { return i & 1 ? packed[i >> 1] & 15 : packed[i >> 1] >> 4; }

static void test_tables(void) {
    const st_tensor *dm = get("", "dynamic_map", ST_F32), *code = get("", "nf4_code", ST_F32);
    if (dm) CHECKF(dm->numel == 256 && same(dm->data, nf4_dynamic_map(), 256 * sizeof(float)),
                   "dynamic map differs from the fixture");
    if (code) CHECKF(code->numel == 16 && same(code->data, nf4_code(), 16 * sizeof(float)), "NF4 code table differs");
    const float *m = nf4_dynamic_map();
    int sorted = 1;
    for (int i = 1; i < 256; i++) sorted &= m[i - 1] < m[i];
    CHECK(sorted && m[127] == 0.0f && m[255] == 1.0f && m[0] < -0.99f);
}

static void test_matrix(const char *mat) {
    const st_tensor *W = get(mat, "weight", ST_F32), *P = get(mat, "packed", ST_U8), *A = get(mat, "absmax", ST_F32),
                    *DP = get(mat, "dequant_plain", ST_F32), *AQ = get(mat, "absmax_q", ST_U8),
                    *A2 = get(mat, "absmax2", ST_F32), *OFF = get(mat, "offset", ST_F32),
                    *ADQ = get(mat, "absmax_dq", ST_F32), *DQ = get(mat, "dequant", ST_F32);
    if (!W || !P || !A || !DP || !AQ || !A2 || !OFF || !ADQ || !DQ) return;
    int64_t n = W->numel, nb = (n + 63) / 64, nb2 = (nb + 255) / 256;
    CHECK(P->numel == (n + 1) / 2 && A->numel == nb && AQ->numel == nb && A2->numel == nb2 && ADQ->numel == nb);

    /* safetensors data need not be 4-byte aligned (U8 tensors precede): copy */
    float *w = malloc((size_t)n * sizeof(float)), stored;
    CHECK(st_to_f32(W, w) == TUNA_OK);
    memcpy(&stored, OFF->data, sizeof stored);

    /* stage 1: NF4 codes and block absmax */
    uint8_t *packed = malloc((size_t)(n + 1) / 2);
    float *absmax = malloc((size_t)nb * sizeof(float)), *plain = malloc((size_t)n * sizeof(float));
    nf4_quantize_blocks(packed, absmax, w, n);
    CHECKF(same(packed, P->data, (size_t)P->numel), "%s: packed bytes differ", mat);
    CHECKF(same(absmax, A->data, (size_t)nb * sizeof(float)), "%s: absmax differs", mat);
    for (int64_t i = 0; i < n; i++) plain[i] = nf4_code()[q_at(packed, i)] * absmax[i / 64];
    CHECKF(same(plain, DP->data, (size_t)n * sizeof(float)), "%s: plain dequantization differs in %lld values", mat,
           (long long)count_diff_f32(plain, DP->data, n));

    /* stage 2: offset; ours is torch's fp32 CPU mean, a double mean rounded once is not */
    float off = nf4_offset(absmax, nb);
    double dsum = 0;
    for (int64_t i = 0; i < nb; i++) dsum += absmax[i];
    float dmean = (float)(dsum / (double)nb);
    printf("%-9s offset: stored %.9g, nf4_offset %.9g (%ld ulp), double mean rounded %.9g (%ld ulp)\n", mat,
           (double)stored, (double)off, ulps(off, stored), (double)dmean, ulps(dmean, stored));
    CHECKF(ulps(off, stored) == 0, "%s: offset %.9g vs stored %.9g", mat, (double)off, (double)stored);
    CHECKF(ulps(dmean, stored) <= 1, "%s: double mean %.9g vs stored %.9g", mat, (double)dmean, (double)stored);

    /* stage 3: 8-bit codes of absmax - offset (with the stored offset) */
    uint8_t *aq = malloc((size_t)nb);
    float *a2 = malloc((size_t)nb2 * sizeof(float));
    nf4_double_quant(aq, a2, absmax, nb, stored);
    CHECKF(same(aq, AQ->data, (size_t)nb), "%s: absmax_q differs", mat);
    CHECKF(same(a2, A2->data, (size_t)nb2 * sizeof(float)), "%s: absmax2 differs", mat);

    /* the whole pipeline */
    nf4_tensor q;
    CHECK(nf4_quantize(&q, w, n) == TUNA_OK);
    CHECK(q.n == n && q.nblocks == nb);
    CHECK(same(q.packed, P->data, (size_t)P->numel) && same(q.absmax_q, AQ->data, (size_t)nb) &&
          same(q.absmax2, A2->data, (size_t)nb2 * sizeof(float)) && same(&q.offset, &stored, sizeof(float)));
    float *adq = malloc((size_t)nb * sizeof(float)), *deq = malloc((size_t)n * sizeof(float));
    for (int64_t b = 0; b < nb; b++) adq[b] = nf4_block_scale(&q, b);
    CHECKF(same(adq, ADQ->data, (size_t)nb * sizeof(float)), "%s: absmax_dq differs", mat);
    nf4_dequantize(deq, &q, 0, n);
    CHECKF(same(deq, DQ->data, (size_t)n * sizeof(float)), "%s: dequant differs in %lld values", mat,
           (long long)count_diff_f32(deq, DQ->data, n));
    CHECK(nf4_storage_bytes(&q) == (size_t)((n + 1) / 2 + nb + 4 * nb2 + 4));

    /* any (start, count) range is the matching slice */
    float *part = malloc((size_t)n * sizeof(float));
    int ok = 1;
    for (int r = 0; r < 200; r++) {
        int64_t s = rng_u32(&rng) % n, c = 1 + rng_u32(&rng) % (n - s);
        if (r < 4) s = r, c = n - r; /* whole tail from an even/odd start */
        nf4_dequantize(part, &q, s, c);
        ok &= same(part, deq + s, (size_t)c * sizeof(float));
    }
    CHECKF(ok, "%s: a (start,count) range differs from the full dequantization", mat);
    nf4_free(&q);
    CHECK(q.packed == NULL && q.n == 0);
    free(w); free(packed); free(absmax); free(plain); free(aq); free(a2); free(adq); free(deq); free(part);
}

/* Independent check of codes: xn's code is a nearest NF4 value (ties aside),
 * and the dequantized value is code * block scale. */
static int nearest_ok(const nf4_tensor *q, const float *w, int64_t n) {
    int ok = 1;
    for (int64_t b = 0; b < q->nblocks; b++) {
        int64_t lo = b * 64, hi = lo + 64 < n ? lo + 64 : n;
        float m = 0;
        for (int64_t i = lo; i < hi; i++) m = fabsf(w[i]) > m ? fabsf(w[i]) : m;
        for (int64_t i = lo; i < hi; i++) {
            int c = q_at(q->packed, i);
            if (m == 0) { ok &= c == 7; continue; }
            double xn = (double)w[i] / m, best = 1e9;
            for (int k = 0; k < 16; k++) best = fmin(best, fabs(xn - nf4_code()[k]));
            ok &= fabs(xn - nf4_code()[c]) <= best + 1e-6;
        }
    }
    return ok;
}

static float *normal(int64_t n, float scale) {
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = scale * rng_normal(&rng);
    return p;
}

static void test_odd_n(void) {
    int64_t n = 131; /* 2 full blocks + 3 values; 66 bytes, the last low nibble is padding */
    float *w = normal(n, 0.02f), *d = malloc((size_t)n * sizeof(float)), *one = malloc(sizeof(float));
    w[129] = 0.5f; /* the partial block's absmax comes from its real elements */
    nf4_tensor q;
    CHECK(nf4_quantize(&q, w, n) == TUNA_OK);
    CHECK(q.nblocks == 3 && nf4_storage_bytes(&q) == 66 + 3 + 4 + 4);
    CHECK((q.packed[65] & 15) == 7);
    CHECK(q_at(q.packed, 129) == 15);
    CHECK(nearest_ok(&q, w, n));
    nf4_dequantize(d, &q, 0, n);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) {
        ok &= d[i] == nf4_code()[q_at(q.packed, i)] * nf4_block_scale(&q, i / 64);
        nf4_dequantize(one, &q, i, 1);
        ok &= same(one, d + i, sizeof(float));
    }
    CHECK(ok);
    CHECKF(fabsf(d[129] - 0.5f) < 0.5f * 0.01f, "scale of the partial block: %g", (double)d[129]);
    nf4_free(&q);
    free(w); free(d); free(one);
}

static void test_zero_blocks(void) {
    /* block 1 of 3 all zero: codes 7, value +0 */
    int64_t n = 192;
    float *w = normal(n, 0.02f), *d = malloc((size_t)n * sizeof(float));
    memset(w + 64, 0, 64 * sizeof(float));
    nf4_tensor q;
    CHECK(nf4_quantize(&q, w, n) == TUNA_OK);
    int ok = 1;
    for (int j = 32; j < 64; j++) ok &= q.packed[j] == 0x77;
    CHECK(ok);
    nf4_dequantize(d, &q, 0, n);
    ok = 1;
    for (int64_t i = 64; i < 128; i++) ok &= d[i] == 0.0f && !signbit(d[i]);
    CHECK(ok);
    CHECK(nearest_ok(&q, w, n));
    nf4_free(&q);

    /* a whole zero tensor: absmax 0, centred values 0, absmax2 0 */
    memset(w, 0, (size_t)n * sizeof(float));
    CHECK(nf4_quantize(&q, w, n) == TUNA_OK);
    CHECK(q.offset == 0.0f && q.absmax2[0] == 0.0f && q.absmax_q[0] == 127);
    nf4_dequantize(d, &q, 0, n);
    ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= d[i] == 0.0f;
    CHECK(ok);
    nf4_free(&q);

    /* one block: offset == absmax, absmax2 == 0, scale == absmax exactly */
    float *v = normal(64, 1.0f);
    CHECK(nf4_quantize(&q, v, 64) == TUNA_OK);
    float m = 0;
    for (int i = 0; i < 64; i++) m = fabsf(v[i]) > m ? fabsf(v[i]) : m;
    CHECK(q.offset == m && q.absmax2[0] == 0.0f && nf4_block_scale(&q, 0) == m);
    nf4_free(&q);

    /* n = 0: nothing to store */
    CHECK(nf4_quantize(&q, v, 0) == TUNA_OK && q.nblocks == 0);
    nf4_dequantize(d, &q, 0, 0);
    nf4_free(&q);
    free(v); free(w); free(d);
}

static void test_bad_input(void) {
    float w[100] = {0};
    nf4_tensor q;
    w[77] = NAN;
    CHECK(nf4_quantize(&q, w, 100) == TUNA_ERR_NUMERIC && strstr(tuna_last_error(), "77") && q.packed == NULL);
    w[77] = INFINITY;
    CHECK(nf4_quantize(&q, w, 100) == TUNA_ERR_NUMERIC);
    CHECK(nf4_quantize(&q, w, -1) == TUNA_ERR_ARG);
    nf4_free(&q);
}

static void test_large(void) {
    /* 640 x 1000: 10000 blocks, 40 absmax blocks (the last partial); the
     * parallel path equals the serial one, bits per value ~4.127 */
    int64_t n = 640 * 1000;
    float *w = normal(n, 0.02f), *d = malloc((size_t)n * sizeof(float)), *d2 = malloc((size_t)n * sizeof(float));
    for (int i = 0; i < 50; i++) w[rng_u32(&rng) % n] *= 20.0f; /* outliers */
    nf4_tensor q;
    CHECK(nf4_quantize(&q, w, n) == TUNA_OK);
    double bits = 8.0 * (double)nf4_storage_bytes(&q) / (double)n;
    printf("large: %lld values, %zu bytes, %.4f bits per value\n", (long long)n, nf4_storage_bytes(&q), bits);
    CHECKF(bits > 4.12 && bits < 4.14, "bits per value %.4f", bits);
    /* serial quantization agrees with the (possibly) parallel one */
    uint8_t *packed = malloc((size_t)n / 2);
    float *absmax = malloc((size_t)q.nblocks * sizeof(float));
    nf4_quantize_blocks(packed, absmax, w, n);
    CHECK(same(packed, q.packed, (size_t)n / 2));
    CHECK(nearest_ok(&q, w, n));
    nf4_dequantize(d, &q, 0, n);
    for (int64_t s = 0; s < n; s += 1000) nf4_dequantize(d2 + s, &q, s, 1000); /* serial pieces */
    CHECK(same(d, d2, (size_t)n * sizeof(float)));
    double err = 0, rel = 0;
    for (int64_t b = 0; b < q.nblocks; b++) rel = fmax(rel, fabs(nf4_block_scale(&q, b) - absmax[b]) / absmax[b]);
    for (int64_t i = 0; i < n; i++) err = fmax(err, fabs(d[i] - w[i]) / absmax[i / 64]);
    printf("large: max |w - deq| / block absmax %.4f, double-quant absmax rel err %.2e\n", err, rel);
    /* rounding to a nearest code costs at most half the widest NF4 gap (0.304 / 2)
     * of the block absmax, plus the error of the double-quantized scale */
    CHECKF(rel < 0.05 && err <= 0.1520 + rel * 1.01 + 1e-4, "err %g rel %g", err, rel);
    nf4_free(&q);
    free(w); free(d); free(d2); free(packed); free(absmax);
}

int main(void) {
    rng_seed(&rng, 4242, 1);
    if (st_open(&fx, FIX) != TUNA_OK) {
        CHECKF(0, "cannot open %s: %s", FIX, tuna_last_error());
        return test_done();
    }
    test_tables();
    const char *mats[] = {"w96x64", "w64x64", "w100x30", "w160x128"};
    for (int i = 0; i < 4; i++) test_matrix(mats[i]);
    st_close(&fx);
    test_odd_n();
    test_zero_blocks();
    test_bad_input();
    test_large();
    return test_done();
}
