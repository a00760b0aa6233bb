/* kernels_act.c — elementwise activations (tanh GELU, SwiGLU), forward and
 * backward. This file alone is compiled with -ffast-math (see the Makefile) so
 * that GCC calls glibc's vector tanhf/expf (libmvec) inside the OpenMP SIMD
 * loops: with scalar calls these loops took 14-24% of a GPT-2 training step
 * (bench/README.md). simdlen(16) asks for their AVX-512 versions (gcc picks
 * the 8-wide AVX2 ones otherwise): GELU's tanh took 8% of a GPT-2 --bf16 step
 * that way, about half as much now. The vector functions are accurate to a
 * few ulp, far inside the parity tolerances; nothing here relies on NaN/inf
 * ordering. */
#include <math.h>

#include "kernels/kernels.h"

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
void k_gelu_fwd(float *out, const float *x, long n) {
#pragma omp parallel for simd simdlen(16)
    for (long i = 0; i < n; i++) {
        float v = x[i];
        out[i] = 0.5f * v * (1.0f + tanhf(GELU_K * (v + 0.044715f * v * v * v)));
    }
}

void k_gelu_bwd(float *din, const float *dout, const float *x, long n) {
#pragma omp parallel for simd simdlen(16)
    for (long i = 0; i < n; i++) {
        float v = x[i];
        float u = GELU_K * (v + 0.044715f * v * v * v);
        float t = tanhf(u);
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
        din[i] = dout[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
    }
}

void k_swiglu_fwd(float *out, const float *gate, const float *up, long n) {
#pragma omp parallel for simd simdlen(16)
    for (long i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void k_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n) {
#pragma omp parallel for simd simdlen(16)
    for (long i = 0; i < n; i++) {
        float g = gate[i];
        float sg = 1.0f / (1.0f + expf(-g));
        float silu = g * sg;
        dup[i] = dout[i] * silu;
        dgate[i] = dout[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
    }
}


/* exp passes of softmax and cross-entropy rows (called per row from the
 * OpenMP loops in kernels_cpu.c, so no parallel region here). Inputs are
 * finite: x - m <= 0 for the row maximum m. */
double k_sum_exp(const float *x, float m, long n) {
    double s = 0;
#pragma omp simd simdlen(16) reduction(+ : s)
    for (long i = 0; i < n; i++) s += expf(x[i] - m);
    return s;
}

float k_exp_inplace(float *x, float m, long n) {
    float s = 0;
#pragma omp simd simdlen(16) reduction(+ : s)
    for (long i = 0; i < n; i++) {
        float e = expf(x[i] - m);
        x[i] = e;
        s += e;
    }
    return s;
}

void k_exp_scale(float *x, float m, float scale, long n) {
#pragma omp simd simdlen(16)
    for (long i = 0; i < n; i++) x[i] = expf(x[i] - m) * scale;
}
