/* kernels_ref.c — plain serial reference kernels: no BLAS, no OpenMP, written
 * to be read against the math. tests/test_kernels.c checks the fast kernels of
 * kernels_cpu.c against these. Accumulations run in double where a long
 * reduction would otherwise dominate the comparison error. */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"

void k_matmul_fwd_ref(float *out, const float *in, const float *w, const float *bias, int N, int IC, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double acc = bias ? bias[o] : 0.0;               /* y = b + sum_i x_i W[o,i] */
            for (int i = 0; i < IC; i++) acc += (double)in[(long)n * IC + i] * w[(long)o * IC + i];
            out[(long)n * OC + o] = (float)acc;
        }
}

/* 16-bit floats to fp32, written out bit by bit (exact) */
static double half_ref(uint16_t h, int is_bf16) {
    if (is_bf16) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return h & 0x8000 ? -v : v;
}

void k_matvec_half_ref(float *out, const float *in, const uint16_t *w, int is_bf16, const float *bias, int N, int IC, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int i = 0; i < IC; i++) {
                uint16_t h = w[(long)o * IC + i];
                acc += (double)in[(long)n * IC + i] * half_ref(h, is_bf16);
            }
            out[(long)n * OC + o] = (float)acc;
        }
}

/* C = alpha op(A) op(B) + beta C, bf16 operands widened exactly, sums in double */
void k_gemm_bf16_ref(int trans_a, int trans_b, int M, int N, int K, float alpha, const uint16_t *A, int lda,
                     const uint16_t *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                uint16_t a = trans_a ? A[(long)k * lda + i] : A[(long)i * lda + k];
                uint16_t b = trans_b ? B[(long)j * ldb + k] : B[(long)k * ldb + j];
                acc += half_ref(a, 1) * half_ref(b, 1);
            }
            float *c = &C[(long)i * ldc + j];
            *c = (float)(alpha * acc + (beta != 0.0f ? (double)beta * *c : 0.0));
        }
}

void k_matmul_bwd_ref(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                      int N, int IC, int OC, int din_acc) {
    if (din)
        for (int n = 0; n < N; n++)
            for (int i = 0; i < IC; i++) {
                double acc = 0;                              /* dx_i = sum_o dy_o W[o,i] */
                for (int o = 0; o < OC; o++) acc += (double)dout[(long)n * OC + o] * w[(long)o * IC + i];
                din[(long)n * IC + i] = (float)(din_acc ? din[(long)n * IC + i] + acc : acc);
            }
    if (dw)
        for (int o = 0; o < OC; o++)
            for (int i = 0; i < IC; i++) {
                double acc = 0;                              /* dW[o,i] = sum_n dy[n,o] x[n,i] */
                for (int n = 0; n < N; n++) acc += (double)dout[(long)n * OC + o] * in[(long)n * IC + i];
                dw[(long)o * IC + i] += (float)acc;
            }
    if (db)
        for (int o = 0; o < OC; o++) {
            double acc = 0;
            for (int n = 0; n < N; n++) acc += dout[(long)n * OC + o];
            db[o] += (float)acc;
        }
}

void k_layernorm_bwd_ref(float *din, float *dw, float *db, const float *dout, const float *x, const float *w,
                         const float *mean, const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *dy = dout + (long)n * C, *xn = x + (long)n * C;
        /* with xhat = (x-mean)*rstd and g = dy*w:
         * dx = rstd * (g - mean(g) - xhat * mean(g*xhat)) */
        double mg = 0, mgx = 0;
        for (int c = 0; c < C; c++) {
            double xhat = (xn[c] - mean[n]) * rstd[n];
            mg += dy[c] * w[c];
            mgx += dy[c] * w[c] * xhat;
            dw[c] += (float)(dy[c] * xhat);
            db[c] += dy[c];
        }
        mg /= C;
        mgx /= C;
        for (int c = 0; c < C; c++) {
            double xhat = (xn[c] - mean[n]) * rstd[n];
            din[(long)n * C + c] += (float)(rstd[n] * (dy[c] * w[c] - mg - xhat * mgx));
        }
    }
}

void k_rmsnorm_bwd_ref(float *din, float *dw, const float *dout, const float *x, const float *w, const float *rstd,
                       int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *dy = dout + (long)n * C, *xn = x + (long)n * C;
        double r = rstd[n], dot = 0;
        /* y_c = x_c r w_c, r = (mean(x^2)+eps)^-1/2, dr/dx_c = -r^3 x_c / C */
        for (int c = 0; c < C; c++) dot += (double)dy[c] * w[c] * xn[c];
        for (int c = 0; c < C; c++) {
            din[(long)n * C + c] += (float)(dy[c] * w[c] * r - xn[c] * dot * r * r * r / C);
            dw[c] += (float)(dy[c] * xn[c] * r);
        }
    }
}

void k_attention_fwd_ref(float *out, float *att, const float *q, const float *k, const float *v, const int32_t *pos,
                         int B, int T, int NH, int NKV, int HD, int sq, int sk, int sv) {
    int group = NH / NKV;
    double scale = 1.0 / sqrt((double)HD);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                int kh = h / group, lo = pos ? t - pos[(long)b * T + t] : 0;
                if (lo < 0) lo = 0;
                float *P = att + (((long)b * NH + h) * T + t) * T;
                const float *Q = q + ((long)b * T + t) * sq + (long)h * HD;
                double mx = -INFINITY, sum = 0;
                for (int s = 0; s < T; s++) P[s] = 0;
                for (int s = lo; s <= t; s++) {                 /* scores q.k / sqrt(HD) */
                    const float *K = k + ((long)b * T + s) * sk + (long)kh * HD;
                    double d = 0;
                    for (int i = 0; i < HD; i++) d += (double)Q[i] * K[i];
                    P[s] = (float)(d * scale);
                    if (P[s] > mx) mx = P[s];
                }
                for (int s = lo; s <= t; s++) { P[s] = (float)exp(P[s] - mx); sum += P[s]; }
                for (int s = lo; s <= t; s++) P[s] = (float)(P[s] / sum);
                float *O = out + ((long)b * T + t) * NH * HD + (long)h * HD;
                for (int i = 0; i < HD; i++) {                  /* o = sum_s p_s v_s */
                    double acc = 0;
                    for (int s = lo; s <= t; s++) acc += (double)P[s] * v[((long)b * T + s) * sv + (long)kh * HD + i];
                    O[i] = (float)acc;
                }
            }
}

void k_attention_bwd_ref(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                         const float *k, const float *v, int B, int T, int NH, int NKV, int HD, int sq, int sk, int sv) {
    int group = NH / NKV;
    double scale = 1.0 / sqrt((double)HD);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int kh = 0; kh < NKV; kh++)
                for (int i = 0; i < HD; i++) {
                    dk[((long)b * T + t) * sk + (long)kh * HD + i] = 0;
                    dv[((long)b * T + t) * sv + (long)kh * HD + i] = 0;
                }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                int kh = h / group;
                const float *P = att + (((long)b * NH + h) * T + t) * T;
                const float *dO = dout + ((long)b * T + t) * NH * HD + (long)h * HD;
                const float *Q = q + ((long)b * T + t) * sq + (long)h * HD;
                float *dQ = dq + ((long)b * T + t) * sq + (long)h * HD;
                for (int i = 0; i < HD; i++) dQ[i] = 0;
                /* dp_s = dO . v_s ; ds_s = p_s (dp_s - sum_r p_r dp_r) */
                double dot = 0;
                for (int s = 0; s <= t; s++) {
                    double dp = 0;
                    for (int i = 0; i < HD; i++) dp += (double)dO[i] * v[((long)b * T + s) * sv + (long)kh * HD + i];
                    dot += P[s] * dp;
                }
                for (int s = 0; s <= t; s++) {
                    if (P[s] == 0) continue;
                    const float *K = k + ((long)b * T + s) * sk + (long)kh * HD;
                    double dp = 0;
                    for (int i = 0; i < HD; i++) dp += (double)dO[i] * v[((long)b * T + s) * sv + (long)kh * HD + i];
                    double ds = P[s] * (dp - dot) * scale;
                    for (int i = 0; i < HD; i++) {
                        dQ[i] += (float)(ds * K[i]);
                        dk[((long)b * T + s) * sk + (long)kh * HD + i] += (float)(ds * Q[i]);
                        dv[((long)b * T + s) * sv + (long)kh * HD + i] += (float)(P[s] * dO[i]);
                    }
                }
            }
}
