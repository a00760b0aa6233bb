/* gguf_kquant.c — k-quant and Q5_0/Q5_1 blocks: quantizers that give ggml's
 * reference bytes and the dequantizers llama.cpp uses (see gguf_kquant.h for
 * the layouts). The fits below search a small set of candidate scales (and
 * minimums) per sub-block and keep the one with the least weighted error; the
 * super-block then stores each sub-block's scale (and minimum) as a 4-, 6- or
 * 8-bit multiple of one f16 scale, and the values are re-rounded against the
 * scale actually stored. Float expressions keep the reference's operand
 * order: -std=c11 keeps the compiler from contracting or reordering them. */
#include <math.h>
#include <string.h>

#include "io/gguf_kquant.h"
#include "io/safetensors.h" /* fp16 conversions */

#define QK_K 256
#define TINY_GROUP 1e-15f /* a group whose largest |x| is below this is all zeros */

static void put_half(uint8_t *p, float v) {
    uint16_t h = st_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static float half_at(const uint8_t *p) { return st_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
/* round half to even, as the reference's rounding in its range (|v| <
 * 2^22); beyond it (sums overflowed by absurd weights) pinned, NaN to 0,
 * where a plain conversion would be undefined */
static int round_int(float v) {
    if (fabsf(v) < 4194304.f) return (int)rintf(v);
    return isnan(v) ? 0 : v > 0 ? 4194304 : -4194304;
}
/* the reference's truncating float-to-code conversion, min(hi, (int)v), where
 * it is defined (0 <= v < 128); NaN and values outside pinned (an id = 1/d
 * that overflowed for a subnormal maximum) */
static int trunc_code(float v, int hi) {
    if (!(v >= 0)) return 0;
    return v < 128 && (int)v < hi ? (int)v : hi;
}
static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* x[i] of largest magnitude (the first one), its magnitude in *amax */
static float signed_max(const float *x, int n, float *amax) {
    float max = 0;
    *amax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > *amax) { *amax = fabsf(x[i]); max = x[i]; }
    return max;
}

/* ---- sub-block fits ---- */

/* Symmetric codes L in [0, 2*nmax) (value (L - nmax) * scale) weighted by
 * x^2: the scale -nmax/max and 18 nearby ones tried, the least-squares scale
 * of the best kept (Q6_K's 16-value groups). Returns the scale. */
static float fit_symmetric(int n, int nmax, const float *x, int8_t *L) {
    float amax, max = signed_max(x, n, &amax);
    if (amax < TINY_GROUP) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(round_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(round_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (!(suml2 > 0 && sumlx * sumlx > best * suml2)) continue;
        for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(round_int(iscale * x[i]), -nmax, nmax - 1));
        scale = sumlx / suml2;
        best = scale * sumlx;
    }
    return scale;
}

/* Symmetric 3-bit codes (Q3_K): rounded at -nmax/max, then up to 5 passes
 * that move one code at a time when that raises the x^2-weighted fit. L ends
 * in [0, 2*nmax). Returns the least-squares scale. */
static float fit_q3(int n, int nmax, const float *x, int8_t *L) {
    float amax, max = signed_max(x, n, &amax);
    if (amax < TINY_GROUP) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(round_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i], slx = sumlx - w * x[i] * L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * L[i] * L[i];
            int nl = clampi(round_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == L[i]) continue;
            slx += w * x[i] * nl;
            sl2 += w * nl * nl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* weighted error of codes L under value scale*L + min */
static float fit_error(int n, const float *x, const float *w, const uint8_t *L, float scale, float min, int mad) {
    float err = 0;
    for (int i = 0; i < n; i++) {
        float diff = scale * L[i] + min - x[i];
        diff = mad ? fabsf(diff) : diff * diff;
        err += w[i] * diff;
    }
    return err;
}

/* Affine codes L in [0, nmax] (value scale*L - *neg_min): the min-max fit,
 * then nstep+1 scales (rmin + rdelta*is + nmax)/(max - min), each with its
 * weighted least-squares scale and minimum (a minimum above 0 clamped to 0),
 * the one of least weighted error (absolute when mad) kept. Returns the
 * scale; *neg_min = -minimum (>= 0). */
static float fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, float rmin, float rdelta,
                        int nstep, int mad) {
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)clampi(round_int(iscale * (x[i] - min)), 0, nmax);
    float best = fit_error(n, x, w, L, scale, min, mad);
    uint8_t Laux[32];
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(round_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue;
        float s = (sum_w * sum_xl - sum_x * sum_l) / D, m = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (m > 0) {
            m = 0;
            s = sum_xl / sum_l2;
        }
        float err = fit_error(n, x, w, Laux, s, m, mad);
        if (err < best) {
            memcpy(L, Laux, (size_t)n);
            best = err;
            scale = s;
            min = m;
        }
    }
    *neg_min = -min;
    return scale;
}

/* ---- Q2_K ---- */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
}

static void q2_k_block(const float *x, uint8_t *b) {
    uint8_t L[QK_K], *sc = b, *qs = b + 16;
    float w[16], scales[16], mins[16], max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
        scales[j] = fit_affine(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, 1);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    /* 4-bit scales and minimums, multiples of d = max_scale/15, dmin = max_min/15 */
    memset(sc, 0, 16);
    if (max_scale > 0) {
        float iscale = 15.f / max_scale;
        for (int j = 0; j < 16; j++) sc[j] = (uint8_t)round_int(iscale * scales[j]);
    }
    put_half(b + 80, max_scale > 0 ? max_scale / 15.f : 0.f);
    if (max_min > 0) {
        float iscale = 15.f / max_min;
        for (int j = 0; j < 16; j++) sc[j] |= (uint8_t)(round_int(iscale * mins[j]) << 4);
    }
    put_half(b + 82, max_min > 0 ? max_min / 15.f : 0.f);
    for (int j = 0; j < 16; j++) {
        float d = half_at(b + 80) * (sc[j] & 0xF);
        if (!d) continue;
        float dm = half_at(b + 82) * (sc[j] >> 4);
        for (int i = 0; i < 16; i++) L[16 * j + i] = (uint8_t)clampi(round_int((x[16 * j + i] + dm) / d), 0, 3);
    }
    pack_2bit(L, qs);
}

static void q2_k_dequant(const uint8_t *b, float *y) {
    float d = half_at(b + 80), min = half_at(b + 82);
    const uint8_t *sc = b, *q = b + 16;
    for (int n = 0, is = 0; n < QK_K; n += 128, q += 32)
        for (int shift = 0; shift < 8; shift += 2)
            for (int half = 0; half < 2; half++, is++) {
                float dl = d * (sc[is] & 0xF), ml = min * (sc[is] >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * ((q[16 * half + l] >> shift) & 3) - ml;
            }
}

/* ---- Q3_K ---- */
/* the 6-bit scale j (signed: stored + 32) of a Q3_K block's 12 scale bytes */
static int q3_scale(const uint8_t *s, int j) {
    int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4, hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | hi << 4) - 32;
}

static void q3_k_block(const float *x, uint8_t *b) {
    int8_t L[QK_K];
    uint8_t *hmask = b, *qs = b + 32, *s = b + 96;
    float scales[16], amax = 0, max_scale = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = fit_q3(16, 4, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > amax) { amax = fabsf(scales[j]); max_scale = scales[j]; }
    }
    memset(s, 0, 12);
    put_half(b + 108, 0.f);
    if (max_scale) {
        float iscale = -32.f / max_scale;
        for (int j = 0; j < 16; j++) {
            int l = clampi((int8_t)round_int(iscale * scales[j]), -32, 31) + 32;
            if (j < 8) s[j] = (uint8_t)(l & 0xF);
            else s[j - 8] |= (uint8_t)((l & 0xF) << 4);
            s[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
        }
        put_half(b + 108, 1 / iscale);
    }
    for (int j = 0; j < 16; j++) {
        float d = half_at(b + 108) * (int8_t)q3_scale(s, j);
        if (!d) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(clampi(round_int(x[16 * j + i] / d), -4, 3) + 4);
    }
    /* the third bit of value j: bit j/32 of hmask[j%32] */
    uint8_t low[QK_K];
    memset(hmask, 0, 32);
    for (int j = 0; j < QK_K; j++) {
        int l = L[j];
        if (l > 3) {
            hmask[j % 32] |= (uint8_t)(1 << (j / 32));
            l -= 4;
        }
        low[j] = (uint8_t)l;
    }
    pack_2bit(low, qs);
}

static void q3_k_dequant(const uint8_t *b, float *y) {
    float d = half_at(b + 108);
    const uint8_t *hm = b, *q = b + 32, *s = b + 96;
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < QK_K; n += 128, q += 32)
        for (int shift = 0; shift < 8; shift += 2, m <<= 1)
            for (int half = 0; half < 2; half++, is++) {
                float dl = d * q3_scale(s, is);
                for (int l = 16 * half; l < 16 * half + 16; l++) *y++ = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
            }
}

/* ---- Q4_K / Q5_K: 8 sub-blocks of 32, 6-bit scales and minimums ---- */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | (q[j - 4] >> 6) << 4);
        *m = (uint8_t)((q[j + 4] >> 4) | (q[j] >> 6) << 4);
    }
}

/* codes L[256] in [0, nmax] of a Q4_K (nmax 15) or Q5_K (31) block whose d,
 * dmin and 12 scale bytes are written at b */
static void k4_codes(const float *x, uint8_t *b, int nmax, uint8_t *L) {
    float w[32], scales[8], mins[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = nmax == 15 ? fit_affine(32, 15, x + 32 * j, w, L + 32 * j, &mins[j], -1.f, 0.1f, 20, 0)
                               : fit_affine(32, 31, x + 32 * j, w, L + 32 * j, &mins[j], -0.5f, 0.1f, 15, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    uint8_t *s = b + 4;
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f, inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)round_int(inv_scale * scales[j]), lm = (uint8_t)round_int(inv_min * mins[j]);
        if (ls > 63) ls = 63;
        if (lm > 63) lm = 63;
        if (j < 4) {
            s[j] = ls;
            s[j + 4] = lm;
        } else {
            s[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
            s[j - 4] |= (uint8_t)((ls >> 4) << 6);
            s[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    put_half(b, max_scale / 63.f);
    put_half(b + 2, max_min / 63.f);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        scale_min_k4(j, s, &sc, &m);
        float d = half_at(b) * sc;
        if (!d) continue;
        float dm = half_at(b + 2) * m;
        for (int i = 0; i < 32; i++) L[32 * j + i] = (uint8_t)clampi(round_int((x[32 * j + i] + dm) / d), 0, nmax);
    }
}

static void q4_k_block(const float *x, uint8_t *b) {
    uint8_t L[QK_K], *q = b + 16;
    k4_codes(x, b, 15, L);
    for (int j = 0; j < QK_K; j += 64, q += 32)
        for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
}

static void q5_k_block(const float *x, uint8_t *b) {
    uint8_t L[QK_K], *qh = b + 16, *ql = b + 48;
    k4_codes(x, b, 31, L);
    memset(qh, 0, 32);
    /* value n+j's fifth bit is bit n/32 of qh[j], n+j+32's the next bit */
    for (int n = 0, bit = 0; n < QK_K; n += 64, bit += 2, ql += 32)
        for (int j = 0; j < 32; j++) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) { l1 -= 16; qh[j] |= (uint8_t)(1 << bit); }
            if (l2 > 15) { l2 -= 16; qh[j] |= (uint8_t)(2 << bit); }
            ql[j] = (uint8_t)(l1 | l2 << 4);
        }
}

/* Q4_K (qh NULL) or Q5_K values from their 4 low bits in q and 5th bits in qh */
static void k4_dequant(const uint8_t *b, const uint8_t *qh, const uint8_t *q, float *y) {
    float d = half_at(b), min = half_at(b + 2);
    for (int j = 0, is = 0; j < QK_K; j += 64, q += 32, is += 2)
        for (int half = 0; half < 2; half++) {
            uint8_t sc, m;
            scale_min_k4(is + half, b + 4, &sc, &m);
            float dl = d * sc, ml = min * m;
            int shift = 4 * half, hbit = 1 << (is + half);
            for (int l = 0; l < 32; l++) *y++ = dl * (((q[l] >> shift) & 0xF) + (qh && (qh[l] & hbit) ? 16 : 0)) - ml;
        }
}
static void q4_k_dequant(const uint8_t *b, float *y) { k4_dequant(b, NULL, b + 16, y); }
static void q5_k_dequant(const uint8_t *b, float *y) { k4_dequant(b, b + 16, b + 48, y); }

/* ---- Q6_K ---- */
static void q6_k_block(const float *x, uint8_t *b) {
    int8_t L[QK_K];
    uint8_t *ql = b, *qh = b + 128;
    int8_t *sc = (int8_t *)(b + 192);
    float scales[16], amax = 0, max_scale = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = fit_symmetric(16, 32, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > amax) { amax = fabsf(scales[j]); max_scale = scales[j]; }
    }
    if (amax < TINY_GROUP) {
        memset(b, 0, 210);
        return;
    }
    float iscale = -128.f / max_scale;
    put_half(b + 208, 1 / iscale);
    for (int j = 0; j < 16; j++) {
        int v = round_int(iscale * scales[j]);
        sc[j] = (int8_t)(v < 127 ? v : 127);
    }
    for (int j = 0; j < 16; j++) {
        float d = half_at(b + 208) * sc[j];
        if (!d) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(clampi(round_int(x[16 * j + i] / d), -32, 31) + 32);
    }
    for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
        for (int l = 0; l < 32; l++) {
            const int8_t *v = L + j + l;
            ql[l] = (uint8_t)((v[0] & 0xF) | (v[64] & 0xF) << 4);
            ql[l + 32] = (uint8_t)((v[32] & 0xF) | (v[96] & 0xF) << 4);
            qh[l] = (uint8_t)((v[0] >> 4) | (v[32] >> 4) << 2 | (v[64] >> 4) << 4 | (v[96] >> 4) << 6);
        }
}

static void q6_k_dequant(const uint8_t *b, float *y) {
    float d = half_at(b + 208);
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32, q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32, q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            y[l] = d * sc[is] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
}

/* ---- Q5_0 / Q5_1 (32 values) ---- */
/* 5-bit codes q[32]: low nibbles (j, j+16 share byte j), fifth bits in qh */
static void pack_5bit(const uint8_t *q, uint8_t *qh, uint8_t *qs) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
        h |= (uint32_t)((q[j] & 0x10) >> 4) << j;
        h |= (uint32_t)((q[j + 16] & 0x10) >> 4) << (j + 16);
    }
    memcpy(qh, &h, 4); /* little-endian hosts only, as the rest of the GGUF code */
}
static int code_5bit(const uint8_t *qh, const uint8_t *qs, int j) {
    uint32_t h;
    memcpy(&h, qh, 4);
    return (j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4) | (int)((h >> j) & 1) << 4;
}

/* d = (the value of largest magnitude) / -16, code min(31, x/d + 16.5) */
static void q5_0_block(const float *x, uint8_t *b) {
    float amax, max = signed_max(x, 32, &amax), d = max / -16, id = d ? 1.0f / d : 0.0f;
    uint8_t q[32];
    put_half(b, d);
    for (int j = 0; j < 32; j++) {
        q[j] = (uint8_t)trunc_code(x[j] * id + 16.5f, 31);
    }
    pack_5bit(q, b + 2, b + 6);
}

/* d = (max - min) / 31, m = min, code (x - min)/d + 0.5 */
static void q5_1_block(const float *x, uint8_t *b) {
    float min = x[0], max = x[0];
    for (int j = 1; j < 32; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    float d = (max - min) / 31, id = d ? 1.0f / d : 0.0f;
    uint8_t q[32];
    put_half(b, d);
    put_half(b + 2, min);
    for (int j = 0; j < 32; j++) q[j] = (uint8_t)trunc_code((x[j] - min) * id + 0.5f, 255);
    pack_5bit(q, b + 4, b + 8);
}

static void q5_0_dequant(const uint8_t *b, float *y) {
    float d = half_at(b);
    for (int j = 0; j < 32; j++) y[j] = (code_5bit(b + 2, b + 6, j) - 16) * d;
}
static void q5_1_dequant(const uint8_t *b, float *y) {
    float d = half_at(b), m = half_at(b + 2);
    for (int j = 0; j < 32; j++) y[j] = code_5bit(b + 4, b + 8, j) * d + m;
}

/* ---- the table ---- */
typedef struct {
    int type, values;
    size_t bytes;
    void (*quantize)(const float *x, uint8_t *block);
    void (*dequantize)(const uint8_t *block, float *y);
} kq_traits;

static const kq_traits traits[] = {
    {GGML_Q2_K, QK_K, 84, q2_k_block, q2_k_dequant},   {GGML_Q3_K, QK_K, 110, q3_k_block, q3_k_dequant},
    {GGML_Q4_K, QK_K, 144, q4_k_block, q4_k_dequant},  {GGML_Q5_K, QK_K, 176, q5_k_block, q5_k_dequant},
    {GGML_Q6_K, QK_K, 210, q6_k_block, q6_k_dequant},  {GGML_Q5_0, 32, 22, q5_0_block, q5_0_dequant},
    {GGML_Q5_1, 32, 24, q5_1_block, q5_1_dequant},
};

static const kq_traits *find(int type) {
    for (size_t i = 0; i < sizeof traits / sizeof *traits; i++)
        if (traits[i].type == type) return &traits[i];
    return NULL;
}

int kq_block_values(int type) { return find(type) ? find(type)->values : 0; }
size_t kq_block_bytes(int type) { return find(type) ? find(type)->bytes : 0; }

void kq_quantize(int type, const float *x, uint8_t *out, int64_t n) {
    const kq_traits *t = find(type);
    for (int64_t i = 0; t && i + t->values <= n; i += t->values, out += t->bytes) t->quantize(x + i, out);
}

void kq_dequantize_block(int type, const uint8_t *block, float *y) {
    const kq_traits *t = find(type);
    if (t) t->dequantize(block, y);
}
