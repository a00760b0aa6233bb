/* kernels.h — the compute kernels of forward and backward, CPU backend.
 *
 * This header is the backend boundary: a CUDA backend implements the same
 * functions. Rules for every kernel:
 *  - outputs first, then const inputs, then dimensions; no hidden state;
 *  - each backward says which gradients it ADDS to (+=) and which it
 *    overwrites (=);
 *  - shapes in comments use B, T, C, V, NH, NKV, HD, FF and N = B*T rows.
 * Each fast kernel (OpenMP, BLAS) has a plain serial reference k_*_ref in
 * kernels_ref.c; tests/test_kernels.c checks fast against reference, and the
 * parity tests check the whole model against PyTorch. */
#ifndef TUNA_KERNELS_H
#define TUNA_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/* out[N,OC] = in[N,IC] @ w[OC,IC]^T (+ bias[OC]) */
void k_matmul_fwd(float *out, const float *in, const float *w, const float *bias, int N, int IC, int OC);
/* din[N,IC] = (or += when din_acc) dout @ w; dw[OC,IC] += dout^T @ in; db[OC] += colsum(dout).
 * Any of din, dw, db may be NULL (not wanted: e.g. frozen weights). */
void k_matmul_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                  int N, int IC, int OC, int din_acc);
/* out[N,OC] = in[N,IC] @ w[OC,IC]^T (+ bias[OC]) for a few rows (decoding),
 * w in 16-bit floats (bf16: is_bf16 1; f16: 0) converted in registers, never
 * into memory: one pass over the weights per call, half the bytes of fp32
 * (the stored weight of a frozen layer, see src/model/stored.h). */
#define K_MATVEC_HALF_MAX_ROWS 8
void k_matvec_half(float *out, const float *in, const uint16_t *w, int is_bf16, const float *bias, int N, int IC, int OC);
/* C[M,N] = alpha * op(A) @ op(B) + beta * C, row-major (op = transpose when
 * trans_*); the small GEMMs of adapters (LoRA's A and B) go through this. */
void k_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
            int ldb, float beta, float *C, int ldc);

/* ---- bf16 compute (gemm_bf16.c): bf16 inputs, fp32 accumulation ---- */
/* 1 when this CPU runs bf16 GEMMs (oneDNN reports AVX512-BF16 or AMX; the
 * environment's ONEDNN_MAX_CPU_ISA can lower that); callers stay on fp32
 * otherwise. k_bf16_kernel names the kernel family (or says there is none). */
int k_bf16_ready(void);
const char *k_bf16_kernel(void);
/* dst[i] = src[i] rounded to bf16, to nearest even (as torch's .bfloat16()).
 * k_f32_to_bf16_serial does it on the calling thread (inside a caller's
 * parallel loop); both give the same bits when their blocks start at the
 * same multiples of 32 values. */
void k_f32_to_bf16(uint16_t *dst, const float *src, long n);
void k_f32_to_bf16_serial(uint16_t *dst, const float *src, long n);
/* C[M,N] = alpha * (op(A) @ op(B) + bias[N] in every row, unless bias is
 * NULL) + beta * C with bf16 A and B, fp32 C and bias (the products summed in
 * fp32), row-major as k_gemm. Without bf16 instructions it runs
 * k_gemm_bf16_ref (same result up to summation order). */
void k_gemm_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha, const uint16_t *A, int lda, const uint16_t *B,
                 int ldb, const float *bias, float beta, float *C, int ldc);

/* A batch of GEMMs through one oneDNN primitive: C[i] = alpha * A[i] @ B[i]
 * + beta * C[i] over the leading ndims - 2 (batch) dimensions, with A
 * [..., M, K] and B [..., K, N] in bf16 and C [..., M, N] in fp32, each
 * operand given by its dims and strides in elements (any layout: a transpose
 * is a swap of strides). Cached with k_gemm_bf16's primitives. Returns 0 when
 * done, nonzero when not (no bf16 GEMM on this CPU, oneDNN refuses the
 * shape, or AMX with K not a multiple of 32 below 256: pad K with zeros): the
 * caller then computes another way. */
#define K_BGEMM_MAX_DIMS 4
typedef struct {
    int ndims;
    float alpha, beta;
    int64_t a_dims[K_BGEMM_MAX_DIMS], a_str[K_BGEMM_MAX_DIMS];
    int64_t b_dims[K_BGEMM_MAX_DIMS], b_str[K_BGEMM_MAX_DIMS];
    int64_t c_dims[K_BGEMM_MAX_DIMS], c_str[K_BGEMM_MAX_DIMS];
} k_bgemm;
int k_gemm_bf16_batched(const k_bgemm *g, const uint16_t *A, const uint16_t *B, float *C);

/* ---- causal attention in bf16 (attention_bf16.c) ----
 * k_attention_fwd / k_attention_bwd (same arguments, layouts and outputs;
 * probabilities never kept) with the products QK^T, PV, dO V^T, P^T dO,
 * dS K and dS^T Q taken in bf16 (Q, K, V, P, dO, dS rounded, fp32 sums), as
 * torch.autocast does; the softmax, its backward and every output in fp32.
 * scratch: k_attention_bf16_scratch(...) bytes: one kv head's group per
 * thread (768 KiB at T = 256, HD = 64; 48 MiB for Llama-3-8B's group of 4
 * heads at T = 1024), threads held to ATT_BF16_SCRATCH bytes of them (one
 * at least), sized for the caller's team as it is now. Return 0 when done,
 * nonzero when oneDNN could not (the caller then runs the fp32 kernel, which
 * rewrites every output). */
#define ATT_BF16_SCRATCH (32L << 20)
size_t k_attention_bf16_scratch(int B, int T, int NH, int NKV, int HD);
int k_attention_fwd_bf16(float *out, void *scratch, const float *q, const float *k, const float *v, const int32_t *pos,
                         int B, int T, int NH, int NKV, int HD, int sq, int sk, int sv);
int k_attention_bwd_bf16(float *dq, float *dk, float *dv, void *scratch, const float *dout, const float *q, const float *k,
                         const float *v, const int32_t *pos, int B, int T, int NH, int NKV, int HD, int sq, int sk, int sv);

/* LayerNorm: out = (x-mean)*rstd*w + b; mean/rstd [N] saved for backward. */
void k_layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                     int N, int C, float eps);
/* din += ; dw += ; db += (dw, db NULL: frozen) */
void k_layernorm_bwd(float *din, float *dw, float *db, const float *dout, const float *x, const float *w,
                     const float *mean, const float *rstd, int N, int C);
/* RMSNorm: out = x*rstd*w with rstd = 1/sqrt(mean(x^2)+eps) */
void k_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps);
/* din += ; dw += (dw NULL: frozen) */
void k_rmsnorm_bwd(float *din, float *dw, const float *dout, const float *x, const float *w, const float *rstd,
                   int N, int C);

/* tanh GELU (HF gelu_new). bwd: din = dout * gelu'(x) (overwrites) */
void k_gelu_fwd(float *out, const float *x, long n);
void k_gelu_bwd(float *din, const float *dout, const float *x, long n);
/* SwiGLU: out = silu(gate) * up. bwd: dgate =, dup = */
void k_swiglu_fwd(float *out, const float *gate, const float *up, long n);
void k_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n);

/* RoPE (HF rotate_half: pairs i and i+HD/2), in place on x [N rows of H heads
 * of HD, row stride ld]. pos[N] positions; cos/sin tables [*, HD/2].
 * inverse=1 applies the transpose rotation (backward). */
void k_rope(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int H, int HD, int ld,
            int inverse);

/* Causal self-attention with grouped KV heads.
 * q [B,T,NH,HD] row stride sq; k, v [B,T,NKV,HD] row strides sk, sv.
 * out [B,T,NH*HD]. pos [B*T] (or NULL = t): row t attends to s in [t-pos[t], t].
 * att: with keep_att, [B,NH,T,T] softmax probabilities kept for backward;
 * without, a scratch of `slots` slices of T*T floats and nothing is kept:
 * backward recomputes the probabilities (O(T) memory per row instead of
 * O(T^2) per layer).
 * Scratch slots: a kernel given a per-thread scratch of `slots` slices runs on
 * min(omp_get_max_threads(), slots) threads, so a caller whose team grew
 * since the scratch was sized (omp_set_num_threads, another pthread) cannot
 * make it write past the end. */
void k_attention_fwd(float *out, float *att, int keep_att, int slots, const float *q, const float *k, const float *v,
                     const int32_t *pos, int B, int T, int NH, int NKV, int HD, int sq, int sk, int sv);
/* dq =, dk =, dv = (same layouts/strides as q,k,v). att: the kept
 * probabilities, or NULL to recompute them from q, k and pos exactly as the
 * forward did; scratch: `slots` slices of 2*T*T floats. */
void k_attention_bwd(float *dq, float *dk, float *dv, float *scratch, int slots, const float *dout, const float *att,
                     const float *q, const float *k, const float *v, const int32_t *pos, int B, int T, int NH, int NKV,
                     int HD, int sq, int sk, int sv);

/* Attention of n new positions of one sequence against its KV cache: the new
 * positions are past..past+n-1 and their keys/values are already in the
 * cache. q [n, NH*HD] (row stride sq); kc, vc [past+n, NKV*HD]; out [n, NH*HD]
 * (row stride so). Position past+t attends to cache rows 0..past+t. scratch:
 * `slots` slices of n*(past+n) floats. */
void k_attention_cached(float *out, int so, const float *q, int sq, const float *kc, const float *vc, int past, int n,
                        int NH, int NKV, int HD, float *scratch, int slots);

/* The softmax of causal attention on rows [t0, t1) of one head's T x T
 * scores (row stride ld), shared by the fp32 and bf16 kernels: row t becomes
 * the softmax of its columns [t - pos[t], t] (pos NULL: [0, t]), in place,
 * with zeros in its other columns up to cols. */
void k_causal_softmax_rows(float *S, int ld, int cols, const int32_t *pos, int t0, int t1);

/* Cross-entropy over rows with target >= 0 (others do not count).
 * lse[N] = logsumexp of each row (saved); returns the sum of counted losses
 * and stores their count. */
double k_crossentropy_fwd(float *lse, int64_t *count, const float *logits, const int32_t *targets, int N, int V);
/* Overwrites logits[N,V] in place with d(sum_n weight[n] * loss_n)/dlogits;
 * rows that do not count become 0. */
void k_crossentropy_bwd(float *logits, const float *lse, const int32_t *targets, const float *weight, int N, int V);

/* Vectorized exp passes (kernels_act.c, libmvec): sum of exp(x - m) in
 * double; x = exp(x - m) in place returning the sum; x = exp(x - m) * scale. */
double k_sum_exp(const float *x, float m, long n);
float k_exp_inplace(float *x, float m, long n);
void k_exp_scale(float *x, float m, float scale, long n);

/* ---- serial references (kernels_ref.c) ---- */
void k_matmul_fwd_ref(float *out, const float *in, const float *w, const float *bias, int N, int IC, int OC);
void k_matvec_half_ref(float *out, const float *in, const uint16_t *w, int is_bf16, const float *bias, int N, int IC, int OC);
void k_matmul_bwd_ref(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                      int N, int IC, int OC, int din_acc);
void k_gemm_bf16_ref(int trans_a, int trans_b, int M, int N, int K, float alpha, const uint16_t *A, int lda,
                     const uint16_t *B, int ldb, const float *bias, float beta, float *C, int ldc);
void k_layernorm_bwd_ref(float *din, float *dw, float *db, const float *dout, const float *x, const float *w,
                         const float *mean, const float *rstd, int N, int C);
void k_rmsnorm_bwd_ref(float *din, float *dw, const float *dout, const float *x, const float *w, const float *rstd,
                       int N, int C);
void k_attention_fwd_ref(float *out, float *att, const float *q, const float *k, const float *v, const int32_t *pos,
                         int B, int T, int NH, int NKV, int HD, int sq, int sk, int sv);
void k_attention_bwd_ref(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                         const float *k, const float *v, int B, int T, int NH, int NKV, int HD, int sq, int sk, int sv);
#endif
