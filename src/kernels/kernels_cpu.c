/* kernels_cpu.c — fast CPU kernels: GEMMs through OpenBLAS (cblas), the rest
 * with OpenMP. No allocation: callers pass every buffer. Attention runs one
 * (batch, kv-head) pair per task with single-threaded BLAS calls inside the
 * parallel region (OpenBLAS's OpenMP build does not nest threads).
 * The GEMMs and attention report their time (and the GEMMs their FLOPs, 2
 * per multiply-add) to core/prof.h when profiling is on. */
#include <cblas.h>
#ifdef __F16C__
#include <immintrin.h>
#endif
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/prof.h"
#include "kernels/kernels.h"

void k_matmul_fwd(float *out, const float *in, const float *w, const float *bias, int N, int IC, int OC) {
    double t0 = prof_start();
    if (bias) {
#pragma omp parallel for
        for (int n = 0; n < N; n++) memcpy(out + (long)n * OC, bias, (size_t)OC * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, in, IC, w, IC, bias ? 1.0f : 0.0f, out, OC);
    prof_stop(PROF_GEMM, t0, 2.0 * N * IC * OC);
}

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* x . w for a row of f16 weights: F16C converts 8 at a time */
static float dot_f16(const float *x, const uint16_t *w, int IC) {
    float acc = 0.0f;
    int i = 0;
#ifdef __F16C__
    __m256 v = _mm256_setzero_ps();
    for (; i + 8 <= IC; i += 8)
        v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)))));
    float lanes[8];
    _mm256_storeu_ps(lanes, v);
    for (int k = 0; k < 8; k++) acc += lanes[k];
    for (; i < IC; i++) acc += x[i] * _cvtsh_ss(w[i]);
#else
    for (; i < IC; i++) {
        uint16_t h = w[i];
        int e = (h >> 10) & 31, m = h & 1023;
        float f = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(1024 + m), e - 25);
        acc += x[i] * (h & 0x8000 ? -f : f);
    }
#endif
    return acc;
}

/* dot products of one weight row with N input rows (bf16: the loop over i
 * vectorizes to a shift and a multiply-add) */
static void matvec_row(float *out, const float *in, const uint16_t *wr, int is_bf16, float b, int N, int IC, int OC) {
    for (int n = 0; n < N; n++) {
        const float *x = in + (long)n * IC;
        float acc = 0.0f;
        if (is_bf16) {
#pragma omp simd reduction(+ : acc)
            for (int i = 0; i < IC; i++) acc += x[i] * bf16_to_f32(wr[i]);
        } else acc = dot_f16(x, wr, IC);
        out[(long)n * OC] = b + acc;
    }
}

void k_matvec_half(float *out, const float *in, const uint16_t *w, int is_bf16, const float *bias, int N, int IC, int OC) {
    double t0 = prof_start();
#pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++) matvec_row(out + o, in, w + (long)o * IC, is_bf16, bias ? bias[o] : 0.0f, N, IC, OC);
    prof_stop(PROF_GEMM, t0, 2.0 * N * IC * OC);
}

void k_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
            int ldb, float beta, float *C, int ldc) {
    double t0 = prof_start();
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha,
                A, lda, B, ldb, beta, C, ldc);
    prof_stop(PROF_GEMM, t0, 2.0 * M * N * K);
}

void k_matmul_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                  int N, int IC, int OC, int din_acc) {
    double t0 = prof_start();
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, w, IC,
                    din_acc ? 1.0f : 0.0f, din, IC);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, in, IC, 1.0f, dw, IC);
    if (db) {
        /* column sums in blocks of 64 columns: each thread owns its columns */
#pragma omp parallel for schedule(static)
        for (int c0 = 0; c0 < OC; c0 += 64) {
            int c1 = c0 + 64 < OC ? c0 + 64 : OC;
            float acc[64] = {0};
            for (int n = 0; n < N; n++) {
                const float *row = dout + (long)n * OC;
                for (int c = c0; c < c1; c++) acc[c - c0] += row[c];
            }
            for (int c = c0; c < c1; c++) db[c] += acc[c - c0];
        }
    }
    prof_stop(PROF_GEMM, t0, 2.0 * N * IC * OC * ((din != NULL) + (dw != NULL)));
}

void k_layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                     int N, int C, float eps) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *xn = x + (long)n * C;
        float *on = out + (long)n * C;
        float m = 0;
        for (int c = 0; c < C; c++) m += xn[c];
        m /= C;
        float v = 0;
        for (int c = 0; c < C; c++) { float d = xn[c] - m; v += d * d; }
        v /= C;
        float s = 1.0f / sqrtf(v + eps);
        for (int c = 0; c < C; c++) on[c] = (xn[c] - m) * s * w[c] + b[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

void k_layernorm_bwd(float *din, float *dw, float *db, const float *dout, const float *x, const float *w,
                     const float *mean, const float *rstd, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *dn = dout + (long)n * C, *xn = x + (long)n * C;
        float m = mean[n], s = rstd[n];
        float mean_dy = 0, mean_dy_xhat = 0;
        for (int c = 0; c < C; c++) {
            float dy = dn[c] * w[c];
            mean_dy += dy;
            mean_dy_xhat += dy * (xn[c] - m) * s;
        }
        mean_dy /= C;
        mean_dy_xhat /= C;
        float *di = din + (long)n * C;
        for (int c = 0; c < C; c++) {
            float xhat = (xn[c] - m) * s;
            di[c] += (dn[c] * w[c] - mean_dy - xhat * mean_dy_xhat) * s;
        }
    }
    if (!dw) return; /* frozen norm (adapter training) */
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += 64) {
        int c1 = c0 + 64 < C ? c0 + 64 : C;
        float aw[64] = {0}, ab[64] = {0};
        for (int n = 0; n < N; n++) {
            const float *dn = dout + (long)n * C, *xn = x + (long)n * C;
            float m = mean[n], s = rstd[n];
            for (int c = c0; c < c1; c++) {
                aw[c - c0] += dn[c] * (xn[c] - m) * s;
                ab[c - c0] += dn[c];
            }
        }
        for (int c = c0; c < c1; c++) { dw[c] += aw[c - c0]; db[c] += ab[c - c0]; }
    }
}

void k_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *xn = x + (long)n * C;
        float *on = out + (long)n * C;
        float ss = 0;
        for (int c = 0; c < C; c++) ss += xn[c] * xn[c];
        float s = 1.0f / sqrtf(ss / C + eps);
        for (int c = 0; c < C; c++) on[c] = xn[c] * s * w[c];
        rstd[n] = s;
    }
}

void k_rmsnorm_bwd(float *din, float *dw, const float *dout, const float *x, const float *w, const float *rstd,
                   int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *dn = dout + (long)n * C, *xn = x + (long)n * C;
        float s = rstd[n];
        float dot = 0; /* sum dy*w*x */
        for (int c = 0; c < C; c++) dot += dn[c] * w[c] * xn[c];
        float k = dot * s * s * s / C;
        float *di = din + (long)n * C;
        for (int c = 0; c < C; c++) di[c] += dn[c] * w[c] * s - xn[c] * k;
    }
    if (!dw) return; /* frozen norm (adapter training) */
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += 64) {
        int c1 = c0 + 64 < C ? c0 + 64 : C;
        float aw[64] = {0};
        for (int n = 0; n < N; n++) {
            const float *dn = dout + (long)n * C, *xn = x + (long)n * C;
            float s = rstd[n];
            for (int c = c0; c < c1; c++) aw[c - c0] += dn[c] * xn[c] * s;
        }
        for (int c = c0; c < c1; c++) dw[c] += aw[c - c0];
    }
}

void k_rope(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int H, int HD, int ld,
            int inverse) {
    int half = HD / 2;
    float sgn = inverse ? -1.0f : 1.0f;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *cs = cos_t + (long)pos[n] * half, *sn = sin_t + (long)pos[n] * half;
        for (int h = 0; h < H; h++) {
            float *v = x + (long)n * ld + (long)h * HD;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half], s = sgn * sn[i];
                v[i] = a * cs[i] - b * s;
                v[i + half] = b * cs[i] + a * s;
            }
        }
    }
}

/* Threads for a loop that gives each thread a slice of a scratch of `slots`
 * slices (indexed by omp_get_thread_num()): the caller's team, held to the
 * slices there are, whatever team size the caller has now. */
static int scratch_team(int slots) {
    int team = omp_get_max_threads();
    return team < slots ? team : slots > 0 ? slots : 1;
}

/* max of x[0, n) in 16 lanes (vectorized: a serial vmaxss chain was most of
 * the softmax's time, and a third of the cross-entropy's over 50,257
 * logits); the same value as a serial scan, max being exact */
static float row_max(const float *x, int n) {
    float m[16], mx = -INFINITY;
    int s = 0;
    for (int i = 0; i < 16; i++) m[i] = -INFINITY;
    for (; s + 16 <= n; s += 16)
        for (int i = 0; i < 16; i++) m[i] = x[s + i] > m[i] ? x[s + i] : m[i];
    for (; s < n; s++) mx = x[s] > mx ? x[s] : mx;
    for (int i = 0; i < 16; i++) mx = m[i] > mx ? m[i] : mx;
    return mx;
}

void k_causal_softmax_rows(float *S, int ld, int cols, const int32_t *pos, int t0, int t1) {
    for (int t = t0; t < t1; t++) {
        float *row = S + (long)t * ld;
        int lo = pos ? t - pos[t] : 0;
        if (lo < 0) lo = 0;
        float mx = row_max(row + lo, t + 1 - lo);
        float inv = 1.0f / k_exp_inplace(row + lo, mx, t + 1 - lo);
        for (int s = 0; s < lo; s++) row[s] = 0;
        for (int s = lo; s <= t; s++) row[s] *= inv;
        for (int s = t + 1; s < cols; s++) row[s] = 0;
    }
}



/* Causal attention skips the blocks above the diagonal: rows are taken in
 * blocks of ATT_ROWS, and row block [r0, r1) only meets keys [0, r1). At
 * T = 256 that is 62.5% of the full T x T products. */
#define ATT_ROWS 64

/* P = causal softmax(scale Q K^T) of one (batch, head) (entries above the
 * diagonal are 0): the forward and the backward's recomputation call this one
 * function, so they agree bit for bit. */
static void attention_probs(float *S, const float *Q, int sq, const float *K, int sk, const int32_t *pos_b, int T, int HD,
                            float scale) {
    for (int r0 = 0; r0 < T; r0 += ATT_ROWS) {
        int r1 = r0 + ATT_ROWS < T ? r0 + ATT_ROWS : T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, HD, scale, Q + (long)r0 * sq, sq, K, sk, 0.0f,
                    S + (long)r0 * T, T);
    }
    k_causal_softmax_rows(S, T, T, pos_b, 0, T);
}

void k_attention_fwd(float *out, float *att, int keep_att, int slots, const float *q, const float *k, const float *v,
                     const int32_t *pos, int B, int T, int NH, int NKV, int HD, int sq, int sk, int sv) {
    int group = NH / NKV, ldo = NH * HD;
    float scale = 1.0f / sqrtf((float)HD);
    int team = keep_att ? omp_get_max_threads() : scratch_team(slots);
    double t0 = prof_start();
#pragma omp parallel for schedule(dynamic) num_threads(team)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH, kh = h / group;
        const float *Q = q + (long)b * T * sq + (long)h * HD;
        const float *K = k + (long)b * T * sk + (long)kh * HD;
        const float *Vv = v + (long)b * T * sv + (long)kh * HD;
        float *S = att + (keep_att ? (long)bh : (long)omp_get_thread_num()) * T * T;
        float *O = out + (long)b * T * ldo + (long)h * HD;
        attention_probs(S, Q, sq, K, sk, pos ? pos + (long)b * T : NULL, T, HD, scale);
        for (int r0 = 0; r0 < T; r0 += ATT_ROWS) { /* O[r0:r1] = P[r0:r1, 0:r1] V[0:r1] */
            int r1 = r0 + ATT_ROWS < T ? r0 + ATT_ROWS : T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, HD, r1, 1.0f, S + (long)r0 * T, T, Vv, sv, 0.0f,
                        O + (long)r0 * ldo, ldo);
        }
    }
    prof_stop(PROF_ATTENTION, t0, 0);
}

void k_attention_bwd(float *dq, float *dk, float *dv, float *scratch, int slots, const float *dout, const float *att,
                     const float *q, const float *k, const float *v, const int32_t *pos, int B, int T, int NH, int NKV,
                     int HD, int sq, int sk, int sv) {
    int group = NH / NKV, ldo = NH * HD;
    float scale = 1.0f / sqrtf((float)HD);
    double t0 = prof_start();
#pragma omp parallel for schedule(dynamic) num_threads(scratch_team(slots))
    for (int bk = 0; bk < B * NKV; bk++) {
        int b = bk / NKV, kh = bk % NKV;
        float *dP = scratch + (long)omp_get_thread_num() * 2 * T * T, *Pbuf = dP + (long)T * T;
        const float *K = k + (long)b * T * sk + (long)kh * HD;
        const float *Vv = v + (long)b * T * sv + (long)kh * HD;
        float *dK = dk + (long)b * T * sk + (long)kh * HD;
        float *dV = dv + (long)b * T * sv + (long)kh * HD;
        for (int t = 0; t < T; t++) {
            memset(dK + (long)t * sk, 0, (size_t)HD * sizeof(float));
            memset(dV + (long)t * sv, 0, (size_t)HD * sizeof(float));
        }
        for (int h = kh * group; h < (kh + 1) * group; h++) {
            const float *Q = q + (long)b * T * sq + (long)h * HD;
            float *dQ = dq + (long)b * T * sq + (long)h * HD;
            const float *dO = dout + (long)b * T * ldo + (long)h * HD;
            const float *P = att ? att + ((long)b * NH + h) * T * T : Pbuf;
            if (!att) attention_probs(Pbuf, Q, sq, K, sk, pos ? pos + (long)b * T : NULL, T, HD, scale);
            /* per row block [r0, r1), keys [0, r1): dP = dO V^T ; dV += P^T dO */
            for (int r0 = 0; r0 < T; r0 += ATT_ROWS) {
                int r1 = r0 + ATT_ROWS < T ? r0 + ATT_ROWS : T;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, HD, 1.0f, dO + (long)r0 * ldo, ldo, Vv, sv,
                            0.0f, dP + (long)r0 * T, T);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, HD, r1 - r0, 1.0f, P + (long)r0 * T, T,
                            dO + (long)r0 * ldo, ldo, 1.0f, dV, sv);
            }
            /* dS = P * (dP - rowsum(P*dP)) * scale (zero where P is zero) */
            for (int t = 0; t < T; t++) {
                const float *pr = P + (long)t * T;
                float *dr = dP + (long)t * T;
                float dot = 0;
                for (int s = 0; s <= t; s++) dot += pr[s] * dr[s];
                for (int s = 0; s <= t; s++) dr[s] = pr[s] * (dr[s] - dot) * scale;
                for (int s = t + 1; s < T; s++) dr[s] = 0;
            }
            /* dQ = dS K ; dK += dS^T Q, again per row block over keys [0, r1) */
            for (int r0 = 0; r0 < T; r0 += ATT_ROWS) {
                int r1 = r0 + ATT_ROWS < T ? r0 + ATT_ROWS : T;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, HD, r1, 1.0f, dP + (long)r0 * T, T, K, sk, 0.0f,
                            dQ + (long)r0 * sq, sq);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, HD, r1 - r0, 1.0f, dP + (long)r0 * T, T,
                            Q + (long)r0 * sq, sq, 1.0f, dK, sk);
            }
        }
    }
    prof_stop(PROF_ATTENTION, t0, 0);
}

void k_attention_cached(float *out, int so, const float *q, int sq, const float *kc, const float *vc, int past, int n,
                        int NH, int NKV, int HD, float *scratch, int slots) {
    int group = NH / NKV, ctx = past + n, ldk = NKV * HD;
    float scale = 1.0f / sqrtf((float)HD);
#pragma omp parallel for schedule(dynamic) num_threads(scratch_team(slots))
    for (int h = 0; h < NH; h++) {
        int kh = h / group;
        float *S = scratch + (long)omp_get_thread_num() * n * ctx;
        const float *Q = q + (long)h * HD, *K = kc + (long)kh * HD, *Vv = vc + (long)kh * HD;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, ctx, HD, scale, Q, sq, K, ldk, 0.0f, S, ctx);
        for (int t = 0; t < n; t++) {
            float *row = S + (long)t * ctx;
            int last = past + t;
            float mx = row_max(row, last + 1);
            float inv = 1.0f / k_exp_inplace(row, mx, last + 1);
            for (int s = 0; s <= last; s++) row[s] *= inv;
            for (int s = last + 1; s < ctx; s++) row[s] = 0;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, HD, ctx, 1.0f, S, ctx, Vv, ldk, 0.0f, out + (long)h * HD, so);
    }
}

double k_crossentropy_fwd(float *lse, int64_t *count, const float *logits, const int32_t *targets, int N, int V) {
    double sum = 0;
    int64_t cnt = 0;
#pragma omp parallel for reduction(+ : sum, cnt)
    for (int n = 0; n < N; n++) {
        const float *row = logits + (long)n * V;
        float mx = row_max(row, V);
        double s = k_sum_exp(row, mx, V);
        float l = mx + (float)log(s);
        lse[n] = l;
        if (targets[n] >= 0) {
            sum += (double)l - row[targets[n]];
            cnt++;
        }
    }
    *count = cnt;
    return sum;
}

void k_crossentropy_bwd(float *logits, const float *lse, const int32_t *targets, const float *weights, int N, int V) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        float *row = logits + (long)n * V;
        if (targets[n] < 0) {
            memset(row, 0, (size_t)V * sizeof(float));
            continue;
        }
        float l = lse[n], weight = weights[n];
        k_exp_scale(row, l, weight, V);
        row[targets[n]] -= weight;
    }
}
