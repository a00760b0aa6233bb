/* nf4.c — bitsandbytes NF4 quantization with double quantization (see nf4.h
 * for the format and the exact arithmetic). Every step is fp32 with one
 * rounding per operation in bitsandbytes' order, so a product followed by a sum
 * must not be fused into an FMA (the only FMAs are the explicit fmaf calls that
 * reproduce torch's linspace). Contraction is switched off for this file
 * whatever the flags (GCC contracts across statements in its GNU modes and with
 * -ffp-contract=fast; clang inside one expression by default), and the
 * product-then-sum sites go through mul_add_unfused, which holds even under
 * clang -ffp-contract=fast (that mode ignores the pragma). The results are
 * checked bit for bit against tests/fixtures/peft/nf4 by tests/test_nf4.c. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "kernels/nf4.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

/* dDequantizeNF4 (csrc/kernels.cu), as macros for the byte -> pair table */
#define K0 -1.0f
#define K1 -0.6961928009986877f
#define K2 -0.5250730514526367f
#define K3 -0.39491748809814453f
#define K4 -0.28444138169288635f
#define K5 -0.18477343022823334f
#define K6 -0.09105003625154495f
#define K7 0.0f
#define K8 0.07958029955625534f
#define K9 0.16093020141124725f
#define K10 0.24611230194568634f
#define K11 0.33791524171829224f
#define K12 0.44070982933044434f
#define K13 0.5626170039176941f
#define K14 0.7229568362236023f
#define K15 1.0f

static const float NF4_CODE[16] = {K0, K1, K2, K3, K4, K5, K6, K7, K8, K9, K10, K11, K12, K13, K14, K15};

/* byte -> (code of high nibble, code of low nibble) */
#define PAIR(h, l) {K##h, K##l}
#define ROW(h) PAIR(h, 0), PAIR(h, 1), PAIR(h, 2), PAIR(h, 3), PAIR(h, 4), PAIR(h, 5), PAIR(h, 6), PAIR(h, 7), \
    PAIR(h, 8), PAIR(h, 9), PAIR(h, 10), PAIR(h, 11), PAIR(h, 12), PAIR(h, 13), PAIR(h, 14), PAIR(h, 15)
static const float NF4_PAIR[256][2] = {ROW(0), ROW(1), ROW(2),  ROW(3),  ROW(4),  ROW(5),  ROW(6),  ROW(7),
                                       ROW(8), ROW(9), ROW(10), ROW(11), ROW(12), ROW(13), ROW(14), ROW(15)};

/* dQuantizeNF4's thresholds, ascending, as the CUDA source writes them (float
 * literals: decimal -> float directly). Four of them (indices 0, 8, 12, 14)
 * are 1 ulp away from numpy's float32(double literal) used by the fixture
 * script; no fixture value falls between the two. */
static const float NF4_THRESH[15] = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
    0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};

#define NF4_ZERO_CODE 7   /* NF4_CODE[7] == 0 */
#define NF4_PAR_MIN 65536 /* values below which dequantization stays serial */

const float *nf4_code(void) { return NF4_CODE; }

/* a * b + c with two roundings: the volatile product cannot be fused */
static inline float mul_add_unfused(float a, float b, float c) {
    volatile float p = a * b;
    return p + c;
}

/* ---- the 8-bit dynamic map ---- */

/* torch.linspace(start, end, steps, dtype=torch.float32) exactly as torch 1.13
 * computes it on an x86-64 CPU (ATen linspace_kernel, AVX2 build): step =
 * (end - start) / (steps - 1); element i is start + step*i below steps/2 and
 * end - step*(steps-1-i) from there, each one fused multiply-add (GCC contracts
 * that scalar lambda); but contiguous chunks of 2 x 8 elements take the
 * vectorized path: base (the same fused formula at the chunk's first index)
 * plus j*step for lane j, unfused. Checked against the fixture's map. */
static void torch_linspace_f32(float *out, float start, float end, int steps) {
    float step = (end - start) / (float)(steps - 1);
    int half = steps / 2, i = 0;
    for (; i + 16 <= steps; i += 16)
        for (int h = 0; h < 2; h++) {
            int idx = i + 8 * h;
            float base = idx < half ? fmaf(step, (float)idx, start) : fmaf(-step, (float)(steps - idx - 1), end);
            for (int j = 0; j < 8; j++) out[idx + j] = mul_add_unfused((float)j, step, base);
        }
    for (; i < steps; i++) out[i] = i < half ? fmaf(step, (float)i, start) : fmaf(-step, (float)(steps - i - 1), end);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float dyn_map[256];
static pthread_once_t dyn_once = PTHREAD_ONCE_INIT;

/* create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for
 * i = 0..6, the means of adjacent points of linspace(0.1, 1, 2^i + 1) scaled by
 * +-10^(i-6) (a float32 multiply by the scale rounded to float32), then 0 and
 * 1.0, sorted. 7 x 2 x 2^i = 254 values + 2 = 256, no zero padding needed. */
static void make_dynamic_map(void) {
    static const double scale[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
    float v[256], b[65];
    int k = 0;
    for (int i = 0; i < 7; i++) {
        int items = (1 << i) + 1;
        torch_linspace_f32(b, 0.1f, 1.0f, items);
        float s = (float)scale[i];
        for (int j = 0; j + 1 < items; j++) {
            float m = (b[j] + b[j + 1]) / 2.0f;
            v[k++] = s * m;
        }
        for (int j = 0; j + 1 < items; j++) {
            float m = (b[j] + b[j + 1]) / 2.0f;
            v[k++] = -s * m;
        }
    }
    v[k++] = 0.0f;
    v[k++] = 1.0f;
    qsort(v, 256, sizeof(float), cmp_float);
    memcpy(dyn_map, v, sizeof v);
}

const float *nf4_dynamic_map(void) {
    pthread_once(&dyn_once, make_dynamic_map);
    return dyn_map;
}

/* dQuantize<0> (csrc/kernels.cu): 7-step binary search over the sorted code,
 * then the midpoint rule between the last two pivots. */
static uint8_t quantize8(const float *code, float x) {
    int pivot = 127, upper_pivot = 255, lower_pivot = 0;
    float lower = -1.0f, upper = 1.0f, val = code[pivot];
    for (int i = 64; i > 0; i >>= 1) {
        if (x > val) {
            lower_pivot = pivot;
            lower = val;
            pivot += i;
        } else {
            upper_pivot = pivot;
            upper = val;
            pivot -= i;
        }
        val = code[pivot];
    }
    if (upper_pivot == 255) upper = code[upper_pivot];
    if (lower_pivot == 0) lower = code[lower_pivot];
    if (x > val) {
        float mid = (upper + val) * 0.5f;
        return (uint8_t)(x > mid ? upper_pivot : pivot);
    }
    float mid = (lower + val) * 0.5f;
    return (uint8_t)(x < mid ? lower_pivot : pivot);
}

/* ---- quantization ---- */

static void quantize_block(uint8_t *packed, float *absmax, const float *x, int len) {
    float m = 0.0f;
    for (int j = 0; j < len; j++) {
        float a = fabsf(x[j]);
        m = a > m ? a : m;
    }
    *absmax = m;
    uint8_t q[NF4_BLOCK + 1];
    if (m == 0.0f) {
        memset(q, NF4_ZERO_CODE, sizeof q);
    } else {
        float inv = 1.0f / m;
        /* q = #{t : xn > t}: 15 compares per element, vectorized over elements */
        for (int j = 0; j < len; j++) {
            float xn = x[j] * inv;
            int c = 0;
            for (int t = 0; t < 15; t++) c += xn > NF4_THRESH[t];
            q[j] = (uint8_t)c;
        }
        q[len] = NF4_ZERO_CODE; /* low nibble of an odd tail */
    }
    for (int j = 0; j < (len + 1) / 2; j++) packed[j] = (uint8_t)(q[2 * j] << 4 | q[2 * j + 1]);
}

void nf4_quantize_blocks(uint8_t *packed, float *absmax, const float *w, int64_t n) {
    int64_t nb = (n + NF4_BLOCK - 1) / NF4_BLOCK;
#pragma omp parallel for schedule(static) if (n >= NF4_PAR_MIN)
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = b * NF4_BLOCK;
        int len = (int)(n - lo < NF4_BLOCK ? n - lo : NF4_BLOCK);
        quantize_block(packed + lo / 2, absmax + b, w + lo, len);
    }
}

/* torch 1.13's CPU row_sum/multi_row_sum (ATen/native/cpu/SumKernel.cpp) for
 * `size` elements of W lanes each (W = 8: Vectorized<float> on AVX2; W = 1:
 * the scalar path): 4 interleaved accumulators, cascaded into 4 levels every
 * 2^level_power rows, lanes added elementwise. Result in out[0..W). */
static void torch_row_sum(float *out, const float *in, int64_t size, int W) {
    enum { ILP = 4, LEVELS = 4 };
    int64_t rows = size / ILP;
    int clog = 1;
    if (rows > 2) {
        clog = 0;
        for (uint64_t v = (uint64_t)rows - 1; v; v >>= 1) clog++;
    }
    int lp = clog / LEVELS > 4 ? clog / LEVELS : 4;
    int64_t step = (int64_t)1 << lp, mask = step - 1;
    float acc[LEVELS][ILP][8];
    memset(acc, 0, sizeof acc);
    int64_t i = 0;
    while (i + step <= rows) {
        for (int64_t j = 0; j < step; j++, i++)
            for (int k = 0; k < ILP; k++)
                for (int l = 0; l < W; l++) acc[0][k][l] += in[(i * ILP + k) * W + l];
        for (int j = 1; j < LEVELS; j++) {
            for (int k = 0; k < ILP; k++)
                for (int l = 0; l < W; l++) {
                    acc[j][k][l] += acc[j - 1][k][l];
                    acc[j - 1][k][l] = 0.0f;
                }
            if ((i & (mask << (j * lp))) != 0) break;
        }
    }
    for (; i < rows; i++)
        for (int k = 0; k < ILP; k++)
            for (int l = 0; l < W; l++) acc[0][k][l] += in[(i * ILP + k) * W + l];
    for (int j = 1; j < LEVELS; j++)
        for (int k = 0; k < ILP; k++)
            for (int l = 0; l < W; l++) acc[0][k][l] += acc[j][k][l];
    for (int64_t e = rows * ILP; e < size; e++)
        for (int l = 0; l < W; l++) acc[0][0][l] += in[e * W + l];
    for (int k = 1; k < ILP; k++)
        for (int l = 0; l < W; l++) acc[0][0][l] += acc[0][k][l];
    memcpy(out, acc[0][0], (size_t)W * sizeof(float));
}

/* torch.Tensor.mean() of a contiguous float32 vector on the CPU, one thread:
 * sum (vectorized_inner_sum for n >= 8: row_sum over 8-lane vectors, then the
 * scalar tail, then the 8 lanes in order; scalar_inner_sum below 8), then
 * sum / (float)n. */
float nf4_offset(const float *a, int64_t n) {
    if (n <= 0) return 0.0f;
    float s;
    if (n < 8) {
        torch_row_sum(&s, a, n, 1);
    } else {
        float lanes[8];
        int64_t nv = n / 8;
        torch_row_sum(lanes, a, nv, 8);
        s = 0.0f;
        for (int64_t k = nv * 8; k < n; k++) s += a[k];
        for (int l = 0; l < 8; l++) s += lanes[l];
    }
    return s / (float)n;
}

void nf4_double_quant(uint8_t *absmax_q, float *absmax2, const float *absmax, int64_t nblocks, float offset) {
    const float *code = nf4_dynamic_map();
    int64_t nb2 = (nblocks + NF4_BLOCK2 - 1) / NF4_BLOCK2;
#pragma omp parallel for schedule(static) if (nblocks >= 4 * NF4_BLOCK2)
    for (int64_t b = 0; b < nb2; b++) {
        int64_t lo = b * NF4_BLOCK2, hi = lo + NF4_BLOCK2 < nblocks ? lo + NF4_BLOCK2 : nblocks;
        float m = 0.0f;
        for (int64_t i = lo; i < hi; i++) {
            float c = absmax[i] - offset;
            float a = fabsf(c);
            m = a > m ? a : m;
        }
        absmax2[b] = m;
        if (m == 0.0f) { /* every centred value is 0: the code of 0.0 */
            memset(absmax_q + lo, 127, (size_t)(hi - lo));
            continue;
        }
        float inv = 1.0f / m;
        for (int64_t i = lo; i < hi; i++) {
            float c = absmax[i] - offset;
            absmax_q[i] = quantize8(code, c * inv);
        }
    }
}

tuna_status nf4_quantize(nf4_tensor *q, const float *w, int64_t n) {
    memset(q, 0, sizeof *q);
    if (n < 0) return core_fail(TUNA_ERR_ARG, "nf4: negative size %lld", (long long)n);
    int bad = 0;
#pragma omp parallel for reduction(| : bad) schedule(static) if (n >= NF4_PAR_MIN)
    for (int64_t i = 0; i < n; i++) bad |= !(fabsf(w[i]) <= FLT_MAX);
    if (bad) {
        for (int64_t i = 0; i < n; i++)
            if (!(fabsf(w[i]) <= FLT_MAX))
                return core_fail(TUNA_ERR_NUMERIC, "nf4: non-finite weight %g at index %lld", (double)w[i],
                                 (long long)i);
    }
    int64_t nb = (n + NF4_BLOCK - 1) / NF4_BLOCK, nb2 = (nb + NF4_BLOCK2 - 1) / NF4_BLOCK2;
    q->n = n;
    q->nblocks = nb;
    q->packed = malloc((size_t)(n + 1) / 2 + 1);
    q->absmax_q = malloc((size_t)nb + 1);
    q->absmax2 = malloc((size_t)nb2 * sizeof(float) + sizeof(float));
    float *absmax = malloc((size_t)nb * sizeof(float) + sizeof(float));
    if (!q->packed || !q->absmax_q || !q->absmax2 || !absmax) {
        free(absmax);
        nf4_free(q);
        return core_fail(TUNA_ERR_NOMEM, "nf4: out of memory quantizing %lld values", (long long)n);
    }
    nf4_quantize_blocks(q->packed, absmax, w, n);
    q->offset = nf4_offset(absmax, nb);
    nf4_double_quant(q->absmax_q, q->absmax2, absmax, nb, q->offset);
    free(absmax);
    return TUNA_OK;
}

void nf4_free(nf4_tensor *q) {
    if (!q) return;
    free(q->packed);
    free(q->absmax_q);
    free(q->absmax2);
    memset(q, 0, sizeof *q);
}

size_t nf4_storage_bytes(const nf4_tensor *q) {
    int64_t nb2 = (q->nblocks + NF4_BLOCK2 - 1) / NF4_BLOCK2;
    return (size_t)(q->n + 1) / 2 + (size_t)q->nblocks + (size_t)nb2 * sizeof(float) + sizeof(float);
}

/* ---- dequantization ---- */

float nf4_block_scale(const nf4_tensor *q, int64_t b) {
    return mul_add_unfused(nf4_dynamic_map()[q->absmax_q[b]], q->absmax2[b / NF4_BLOCK2], q->offset);
}

void nf4_dequantize(float *out, const nf4_tensor *q, int64_t start, int64_t count) {
    if (count <= 0) return;
    const float *code8 = nf4_dynamic_map();
    const uint8_t *packed = q->packed;
    int64_t end = start + count, b0 = start / NF4_BLOCK, b1 = (end - 1) / NF4_BLOCK;
#pragma omp parallel for schedule(static) if (count >= NF4_PAR_MIN)
    for (int64_t b = b0; b <= b1; b++) {
        float s = mul_add_unfused(code8[q->absmax_q[b]], q->absmax2[b / NF4_BLOCK2], q->offset);
        int64_t lo = b * NF4_BLOCK, hi = lo + NF4_BLOCK;
        if (lo < start) lo = start;
        if (hi > end) hi = end;
        float *o = out + (lo - start);
        int64_t i = lo;
        if (i & 1) { /* odd start: the low nibble of its byte */
            *o++ = NF4_CODE[packed[i >> 1] & 15] * s;
            i++;
        }
        const uint8_t *p = packed + (i >> 1);
        int64_t pairs = (hi - i) / 2;
        for (int64_t j = 0; j < pairs; j++) {
            const float *c = NF4_PAIR[p[j]];
            o[2 * j] = c[0] * s;
            o[2 * j + 1] = c[1] * s;
        }
        i += 2 * pairs;
        if (i < hi) out[i - start] = NF4_CODE[packed[i >> 1] >> 4] * s; /* odd end: a high nibble */
    }
}
