/* bench_gemm_bf16.c — which bf16 GEMM tuna should use (issue 22 item 3).
 *
 * For each shape M x K x N (rows x in x out, as tuna's linear layers use
 * them) it times fp32 cblas_sgemm (the baseline) and the bf16 candidates, all
 * with fp32 output: OpenBLAS cblas_sbgemm (looked up at run time: Debian's
 * 0.3.21 declares it in cblas.h but may not export it), the oneDNN matmul
 * primitive (weights as stored, and weights reordered once into oneDNN's own
 * layout, as frozen weights could be), libxsmm's bf16 JIT kernel (weights
 * packed once, see xsmm_state) and a plain AVX512-BF16 kernel of our own (see
 * own_state). --layout picks the GEMM of a training step, as cblas transposes
 * of Y[M,N] = op(X) · op(W): NT the forward (X[M,K] · W[N,K]ᵀ, weights as
 * stored; the default), NN the input gradient (dY · W), TN the weight gradient
 * (dYᵀ · X). It also times the fp32 -> bf16 conversion of X, which a training
 * step pays since tuna's activations are fp32.
 *
 * Rules: every candidate gets one warm-up call, then the best of --reps calls
 * (a candidate whose warm-up takes over 2 s is not repeated: its one call is
 * reported, marked "1 call"); GFLOP/s = 2·M·K·N / time; primitives and packed
 * weights are made once per shape, outside the timing. Every bf16 result is
 * checked against cblas_sgemm on the same bf16-rounded inputs (widened back to
 * fp32): the error is max |Y - R| / RMS(R's row); fp32 accumulation stays
 * under ~1e-5 of it at K <= 8192 (blocked sums ~2e-6, one running sum over
 * K = 4096 1.1e-5), while a bf16 rounding of the output or the accumulator
 * gives >= 1e-3, so the default tolerance is 1e-4. Exit 1
 * if any candidate exceeds it (or a bf16 conversion disagrees with the
 * scalar round-to-nearest-even), 2 for bad usage. The OpenBLAS core and
 * OPENBLAS_CORETYPE are printed, never changed here. See bench/README.md. */
#include <cblas.h>
#include <dlfcn.h>
#include <libxsmm.h>
#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif

#include "io/safetensors.h" /* st_f32_to_bf16: the scalar round-to-nearest-even */

enum { MAX_SHAPES = 32, NCAND = 6 };
static const char *const DEFAULT_SHAPES =
    "1024x768x3072,1024x3072x768,256x4096x4096,1024x2048x8192,1024x4096x16,1024x16x4096,256x4096x16";

/* Y[M,N] = op(X) · op(W), row-major, op as cblas: ta, tb 1 for transposed */
typedef struct {
    int M, K, N, ta, tb;
    float *X, *W;      /* [M,K] ([K,M] if ta), [K,N] ([N,K] if tb): the fp32 inputs */
    uint16_t *Xb, *Wb; /* the same rounded to bf16 */
    float *Xr, *Wr;    /* the bf16 values widened back to fp32 */
    float *R;          /* [M,N]: reference, sgemm(Xr, Wr) */
    float *Y;          /* [M,N]: the candidate's output */
} problem;

typedef struct candidate candidate;
struct candidate {
    const char *name;
    /* 0: ready; 1: not available (why in note) */
    int (*init)(candidate *c, problem *p);
    void (*run)(candidate *c, problem *p);
    void (*fini)(candidate *c);
    void *state;
    char note[160]; /* implementation / ISA, or why it is absent */
};

typedef struct {
    double gflops, err;
    int avail, once;
} result;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static float bf16_widen(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- fp32 -> bf16 conversion of the activations ---- */

static void to_bf16_scalar(uint16_t *out, const float *in, long n) {
    for (long i = 0; i < n; i++) out[i] = st_f32_to_bf16(in[i]);
}

/* vcvtne2ps2bf16 (round to nearest even) on 32 values a step, on all threads;
 * the scalar conversion where the CPU or the compiler lacks AVX512-BF16 */
static void to_bf16_vector(uint16_t *out, const float *in, long n) {
#if defined(__AVX512BF16__)
    long n32 = n / 32 * 32;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n32; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(in + i + 16), _mm512_loadu_ps(in + i));
        _mm512_storeu_si512((void *)(out + i), (__m512i)v);
    }
    to_bf16_scalar(out + n32, in + n32, n - n32);
#else
    to_bf16_scalar(out, in, n);
#endif
}

/* ---- the problem: random inputs, their bf16 roundings, the reference ---- */

static void fill_uniform(float *x, long n, uint64_t seed) {
    for (long i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((seed >> 40) * (1.0 / 16777216.0) * 2.0 - 1.0);
    }
}

static void round_widen(uint16_t *b, float *r, const float *x, long n) {
    to_bf16_scalar(b, x, n);
    for (long i = 0; i < n; i++) r[i] = bf16_widen(b[i]);
}

static enum CBLAS_TRANSPOSE cblas_op(int t) { return t ? CblasTrans : CblasNoTrans; }

static void sgemm_op(float *Y, const float *X, const float *W, const problem *p) {
    cblas_sgemm(CblasRowMajor, cblas_op(p->ta), cblas_op(p->tb), p->M, p->N, p->K, 1.0f, X, p->ta ? p->M : p->K, W,
                p->tb ? p->K : p->N, 0.0f, Y, p->N);
}

/* W's bf16 value at row k, column n of op(W) */
static uint16_t w_at(const problem *p, int k, int n) {
    return p->tb ? p->Wb[(long)n * p->K + k] : p->Wb[(long)k * p->N + n];
}

static void problem_free(problem *p) {
    free(p->X); free(p->W); free(p->Xb); free(p->Wb); free(p->Xr); free(p->Wr); free(p->R); free(p->Y);
}

static int problem_init(problem *p, int M, int K, int N, const int t[2]) {
    long mk = (long)M * K, nk = (long)N * K, mn = (long)M * N;
    *p = (problem){M, K, N, t[0], t[1], malloc(mk * 4), malloc(nk * 4), malloc(mk * 2), malloc(nk * 2),
                   malloc(mk * 4), malloc(nk * 4), malloc(mn * 4), malloc(mn * 4)};
    if (!p->X || !p->W || !p->Xb || !p->Wb || !p->Xr || !p->Wr || !p->R || !p->Y) { problem_free(p); return 1; }
    fill_uniform(p->X, mk, 1);
    fill_uniform(p->W, nk, 2);
    round_widen(p->Xb, p->Xr, p->X, mk);
    round_widen(p->Wb, p->Wr, p->W, nk);
    sgemm_op(p->R, p->Xr, p->Wr, p);
    return 0;
}

/* max over elements of |Y - R| / RMS of R's row */
static double max_row_err(const float *Y, const float *R, int M, int N) {
    double worst = 0;
    for (int i = 0; i < M; i++) {
        const float *y = Y + (long)i * N, *r = R + (long)i * N;
        double ss = 0, d = 0;
        for (int j = 0; j < N; j++) {
            ss += (double)r[j] * r[j];
            double e = fabs((double)y[j] - r[j]);
            if (e > d || e != e) d = e != e ? INFINITY : e;
        }
        double rms = sqrt(ss / N);
        double rel = d / (rms > 0 ? rms : 1);
        if (rel > worst) worst = rel;
    }
    return worst;
}

/* ---- candidates ---- */

static int sgemm_init(candidate *c, problem *p) {
    (void)p;
    snprintf(c->note, sizeof c->note, "OpenBLAS %s", openblas_get_corename());
    return 0;
}
static void sgemm_run(candidate *c, problem *p) { (void)c; sgemm_op(p->Y, p->X, p->W, p); }

typedef void (*sbgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint, blasint, blasint,
                          float, const bfloat16 *, blasint, const bfloat16 *, blasint, float, float *, blasint);

static int sbgemm_init(candidate *c, problem *p) {
    (void)p;
    void *f = dlsym(RTLD_DEFAULT, "cblas_sbgemm");
    if (!f) {
        snprintf(c->note, sizeof c->note, "absent: this libopenblas exports no cblas_sbgemm (built without BUILD_BFLOAT16)");
        return 1;
    }
    memcpy(&c->state, &f, sizeof f);
    snprintf(c->note, sizeof c->note, "OpenBLAS %s", openblas_get_corename());
    return 0;
}
static void sbgemm_run(candidate *c, problem *p) {
    sbgemm_fn f;
    memcpy(&f, &c->state, sizeof f);
    f(CblasRowMajor, cblas_op(p->ta), cblas_op(p->tb), p->M, p->N, p->K, 1.0f, p->Xb, p->ta ? p->M : p->K, p->Wb,
      p->tb ? p->K : p->N, 0.0f, p->Y, p->N);
}

/* oneDNN: one engine and stream for the whole run */
static dnnl_engine_t dnnl_eng;
static dnnl_stream_t dnnl_str;

typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst;
    int packed; /* weights reordered once into the primitive's layout */
} dnnl_state;

static int dnnl_state_make(dnnl_state *s, candidate *c, problem *p) {
    dnnl_memory_desc_t smd, wmd, dmd;
    dnnl_dims_t sd = {p->M, p->K}, wd = {p->K, p->N}, dd = {p->M, p->N};
    dnnl_primitive_desc_t pd = NULL;
    dnnl_matmul_desc_t mm;
    const char *impl = "?";
    /* ba: the [M,K] or [K,N] operand stored transposed */
    dnnl_format_tag_t stag = p->ta ? dnnl_ba : dnnl_ab, wtag = p->tb ? dnnl_ba : dnnl_ab;
    if (dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_bf16, stag) ||
        dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dnnl_bf16, s->packed ? dnnl_format_tag_any : wtag) ||
        dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_ab) || dnnl_matmul_desc_init(&mm, &smd, &wmd, NULL, &dmd) ||
        dnnl_primitive_desc_create(&pd, &mm, NULL, dnnl_eng, NULL) || dnnl_primitive_create(&s->prim, pd))
        goto fail;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(c->note, sizeof c->note, "%s", impl);
    const dnnl_memory_desc_t *wq = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (dnnl_memory_create(&s->src, &smd, dnnl_eng, p->Xb) || dnnl_memory_create(&s->dst, &dmd, dnnl_eng, p->Y) ||
        dnnl_memory_create(&s->wei, wq, dnnl_eng, s->packed ? DNNL_MEMORY_ALLOCATE : (void *)p->Wb))
        goto fail;
    dnnl_primitive_desc_destroy(pd);
    return 0;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    snprintf(c->note, sizeof c->note, "oneDNN refused the bf16 matmul");
    return 1;
}

/* the weights as stored, reordered once into the layout the primitive chose */
static int dnnl_pack_weights(dnnl_state *s, problem *p) {
    dnnl_memory_desc_t wplain;
    dnnl_dims_t wd = {p->K, p->N};
    const dnnl_memory_desc_t *wq;
    dnnl_memory_t from = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    int bad = dnnl_memory_desc_init_by_tag(&wplain, 2, wd, dnnl_bf16, p->tb ? dnnl_ba : dnnl_ab) ||
              dnnl_memory_get_memory_desc(s->wei, &wq) || dnnl_memory_create(&from, &wplain, dnnl_eng, p->Wb) ||
              dnnl_reorder_primitive_desc_create(&rpd, &wplain, dnnl_eng, wq, dnnl_eng, NULL) ||
              dnnl_primitive_create(&r, rpd);
    if (!bad) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, s->wei}};
        bad = dnnl_primitive_execute(r, dnnl_str, 2, a) || dnnl_stream_wait(dnnl_str);
    }
    if (r) dnnl_primitive_destroy(r);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (from) dnnl_memory_destroy(from);
    return bad;
}

static int dnnl_init_common(candidate *c, problem *p, int packed) {
    dnnl_state *s = calloc(1, sizeof *s);
    c->state = s;
    if (!s) return 1;
    s->packed = packed;
    if (dnnl_state_make(s, c, p)) return 1;
    if (packed && dnnl_pack_weights(s, p)) {
        snprintf(c->note, sizeof c->note, "oneDNN: weight reorder failed");
        return 1;
    }
    return 0;
}
static int dnnl_init_plain(candidate *c, problem *p) { return dnnl_init_common(c, p, 0); }
static int dnnl_init_packed(candidate *c, problem *p) { return dnnl_init_common(c, p, 1); }

static void dnnl_run(candidate *c, problem *p) {
    (void)p;
    dnnl_state *s = c->state;
    dnnl_exec_arg_t a[3] = {{DNNL_ARG_SRC, s->src}, {DNNL_ARG_WEIGHTS, s->wei}, {DNNL_ARG_DST, s->dst}};
    if (dnnl_primitive_execute(s->prim, dnnl_str, 3, a) || dnnl_stream_wait(dnnl_str))
        memset(p->Y, 0xff, (size_t)p->M * p->N * sizeof(float)); /* NaN: the check fails it */
}

static void dnnl_fini(candidate *c) {
    dnnl_state *s = c->state;
    if (!s) return;
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->src) dnnl_memory_destroy(s->src);
    if (s->wei) dnnl_memory_destroy(s->wei);
    if (s->dst) dnnl_memory_destroy(s->dst);
    free(s);
}

/* libxsmm 1.17 offers no bf16 GEMM for matrices of these sizes as they are:
 * libxsmm_xgemm_omp refuses bf16 ("unsupported data-type requested", Y left
 * untouched) and libxsmm_bsgemm and its JIT kernels (target cpx: AVX512-BF16;
 * no AMX in 1.17) take A only in VNNI2 layout. So this candidate packs W once
 * into that layout ([K/2][N][2]) and runs one JIT kernel per block of Y on all
 * threads: libxsmm's micro-kernel, our (plain) blocking. libxsmm is
 * column-major: Yᵀ[N,M] = W[N,K] · Xᵀ[K,M], so its m is N and its n is M. */
typedef struct {
    libxsmm_bsmmfunction kernel;
    uint16_t *Wv; /* [K/2][N][2]: W in VNNI2 layout */
    int bm, bn;   /* block of Yᵀ: bm along N, bn along M */
} xsmm_state;

static void vnni2_pack(uint16_t *Wv, const problem *p) {
    for (int n = 0; n < p->N; n++)
        for (int k = 0; k < p->K; k++) Wv[(long)(k / 2) * p->N * 2 + n * 2 + k % 2] = w_at(p, k, n);
}

static int xsmm_init(candidate *c, problem *p) {
    xsmm_state *s = calloc(1, sizeof *s);
    c->state = s;
    if (!s) return 1;
    s->bm = p->N < 64 ? p->N : 64, s->bn = p->M < 64 ? p->M : 64;
    if (p->N % s->bm || p->M % s->bn || p->K % 2 || p->ta) {
        snprintf(c->note, sizeof c->note, "libxsmm: this driver needs X untransposed, N and M multiples of 64, K even");
        return 1;
    }
    libxsmm_blasint m = s->bm, n = s->bn, k = p->K, lda = p->N, ldb = p->K, ldc = p->N;
    float alpha = 1, beta = 0;
    int flags = LIBXSMM_GEMM_FLAG_VNNI_A;
    s->kernel = libxsmm_bsmmdispatch(m, n, k, &lda, &ldb, &ldc, &alpha, &beta, &flags, NULL);
    s->Wv = malloc((size_t)p->N * p->K * sizeof *s->Wv);
    if (!s->kernel || !s->Wv) {
        snprintf(c->note, sizeof c->note, "libxsmm_bsmmdispatch gave no %dx%dx%d bf16 kernel", s->bm, s->bn, p->K);
        return 1;
    }
    vnni2_pack(s->Wv, p);
    snprintf(c->note, sizeof c->note, "libxsmm %s JIT %dx%d blocks, target %s", LIBXSMM_VERSION, s->bn, s->bm,
             libxsmm_get_target_arch());
    return 0;
}

static void xsmm_run(candidate *c, problem *p) {
    const xsmm_state *s = c->state;
    int M = p->M, N = p->N, K = p->K;
#pragma omp parallel for collapse(2) schedule(static)
    for (int m0 = 0; m0 < M; m0 += s->bn)
        for (int n0 = 0; n0 < N; n0 += s->bm)
            s->kernel(s->Wv + 2L * n0, p->Xb + (long)m0 * K, p->Y + (long)m0 * N + n0);
}

static void xsmm_fini(candidate *c) {
    xsmm_state *s = c->state;
    if (s) free(s->Wv);
    free(s);
}

/* Our own AVX512-BF16 kernel (no AMX), as a yardstick for the libraries:
 * W packed once into panels of 32 columns, [N/32][K/2][32][2] (columns past N
 * zero), so one vdpbf16ps multiplies a broadcast pair x[m][k..k+1] into 16
 * columns; a micro-tile of R rows x 32 columns keeps 2R accumulators in
 * registers over the whole K; each thread takes a run of (panel, row block)
 * tiles, panel outer, so a panel (32·K bf16, 256 KiB at K = 4096) stays in L2.
 * Needs K even. */
enum { OWN_NR = 32, OWN_MR = 8 };

typedef struct {
    uint16_t *Wp; /* [N/32][K/2][32][2]: W in panels of VNNI pairs */
} own_state;

#if defined(__AVX512BF16__)
static void own_pack(uint16_t *Wp, const problem *p) {
    int N = p->N, K = p->K, panels = (N + OWN_NR - 1) / OWN_NR;
    for (int pn = 0; pn < panels; pn++)
        for (int kp = 0; kp < K / 2; kp++)
            for (int j = 0; j < OWN_NR; j++) {
                int n = pn * OWN_NR + j;
                uint16_t *dst = Wp + (((long)pn * (K / 2) + kp) * OWN_NR + j) * 2;
                dst[0] = n < N ? w_at(p, 2 * kp, n) : 0;
                dst[1] = n < N ? w_at(p, 2 * kp + 1, n) : 0;
            }
}

/* Y[R rows, cols] = X[R rows, K] · panel; R is a constant after inlining, so
 * the accumulators stay in registers */
static inline __attribute__((always_inline)) void own_tile(float *Y, int ldy, const uint16_t *X, int K,
                                                           const uint16_t *panel, int R, __mmask16 m0, __mmask16 m1) {
    __m512 acc[OWN_MR][2];
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int kp = 0; kp < K / 2; kp++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(panel + kp * 64));
        __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(panel + kp * 64 + 32));
        for (int r = 0; r < R; r++) {
            int32_t pair;
            memcpy(&pair, X + (long)r * K + 2 * kp, sizeof pair);
            __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
        }
    }
    for (int r = 0; r < R; r++) {
        _mm512_mask_storeu_ps(Y + (long)r * ldy, m0, acc[r][0]);
        _mm512_mask_storeu_ps(Y + (long)r * ldy + 16, m1, acc[r][1]);
    }
}

static void own_run(candidate *c, problem *p) {
    const own_state *s = c->state;
    int M = p->M, N = p->N, K = p->K, panels = (N + OWN_NR - 1) / OWN_NR, blocks = (M + OWN_MR - 1) / OWN_MR;
#pragma omp parallel for collapse(2) schedule(static)
    for (int pn = 0; pn < panels; pn++)
        for (int b = 0; b < blocks; b++) {
            int n0 = pn * OWN_NR, m0 = b * OWN_MR, cols = N - n0 < OWN_NR ? N - n0 : OWN_NR;
            __mmask16 k0 = (__mmask16)(cols >= 16 ? 0xffff : (1u << cols) - 1);
            __mmask16 k1 = (__mmask16)(cols >= 32 ? 0xffff : cols > 16 ? (1u << (cols - 16)) - 1 : 0);
            const uint16_t *panel = s->Wp + (long)pn * (K / 2) * OWN_NR * 2;
            float *Y = p->Y + (long)m0 * N + n0;
            const uint16_t *X = p->Xb + (long)m0 * K;
            if (m0 + OWN_MR <= M) own_tile(Y, N, X, K, panel, OWN_MR, k0, k1);
            else
                for (int m = m0; m < M; m++) own_tile(Y + (long)(m - m0) * N, N, X + (long)(m - m0) * K, K, panel, 1, k0, k1);
        }
}
#else
static void own_run(candidate *c, problem *p) { (void)c; (void)p; }
#endif

static int own_init(candidate *c, problem *p) {
#if defined(__AVX512BF16__)
    own_state *s = calloc(1, sizeof *s);
    c->state = s;
    if (!s || p->K % 2 || p->ta) {
        snprintf(c->note, sizeof c->note, "own kernel: needs X untransposed, K even");
        return 1;
    }
    long panels = (p->N + OWN_NR - 1) / OWN_NR;
    s->Wp = malloc((size_t)panels * OWN_NR * p->K * sizeof *s->Wp);
    if (!s->Wp) return 1;
    own_pack(s->Wp, p);
    snprintf(c->note, sizeof c->note, "own vdpbf16ps %dx%d tiles", OWN_MR, OWN_NR);
    return 0;
#else
    (void)p;
    snprintf(c->note, sizeof c->note, "own kernel: not compiled (no AVX512-BF16 in -march)");
    return 1;
#endif
}

static void own_fini(candidate *c) {
    own_state *s = c->state;
    if (s) free(s->Wp);
    free(s);
}

static void no_fini(candidate *c) { (void)c; }

/* ---- timing ---- */

/* one warm-up call, then the best of reps; a warm-up over 2 s is the result */
static double time_best(candidate *c, problem *p, int reps, int *once) {
    double t0 = now_s();
    c->run(c, p);
    double best = now_s() - t0;
    *once = best > 2.0;
    for (int r = 0; r < reps && !*once; r++) {
        t0 = now_s();
        c->run(c, p);
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    return best;
}

static double time_conversion(void (*conv)(uint16_t *, const float *, long), problem *p, uint16_t *out, int reps) {
    long n = (long)p->M * p->K;
    double best = 1e30;
    conv(out, p->X, n);
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        conv(out, p->X, n);
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    return best;
}

/* ---- the run ---- */

typedef struct {
    int shapes[MAX_SHAPES][3], nshapes, reps, threads;
    int trans[2]; /* --layout: cblas transposes of X and W */
    double tol;
} options;

static int parse_shapes(options *o, const char *list) {
    const char *s = list;
    o->nshapes = 0;
    while (*s) {
        int M, K, N, used = 0;
        if (o->nshapes == MAX_SHAPES || sscanf(s, "%dx%dx%d%n", &M, &K, &N, &used) != 3 || M < 1 || K < 1 || N < 1)
            return 1;
        o->shapes[o->nshapes][0] = M, o->shapes[o->nshapes][1] = K, o->shapes[o->nshapes][2] = N;
        o->nshapes++;
        s += used;
        if (*s == ',') s++;
        else if (*s) return 1;
    }
    return o->nshapes == 0;
}

static int parse_options(options *o, int argc, char **argv) {
    *o = (options){.reps = 5, .threads = 2, .tol = 1e-4, .trans = {0, 1}};
    const char *shapes = DEFAULT_SHAPES;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!v) return 1;
        if (!strcmp(a, "--shapes")) shapes = v;
        else if (!strcmp(a, "--reps")) o->reps = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--threads")) o->threads = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--tol")) o->tol = strtod(v, &end);
        else if (!strcmp(a, "--layout") && strlen(v) == 2 && strspn(v, "NT") == 2)
            o->trans[0] = v[0] == 'T', o->trans[1] = v[1] == 'T';
        else return 1;
        if (end && *end) return 1;
        i++;
    }
    return o->reps < 1 || o->threads < 1 || !(o->tol > 0) || parse_shapes(o, shapes);
}

static candidate *candidates(void) {
    static candidate c[NCAND] = {
        {"sgemm fp32", sgemm_init, sgemm_run, no_fini, NULL, ""},
        {"OpenBLAS sbgemm", sbgemm_init, sbgemm_run, no_fini, NULL, ""},
        {"oneDNN matmul", dnnl_init_plain, dnnl_run, dnnl_fini, NULL, ""},
        {"oneDNN, W packed once", dnnl_init_packed, dnnl_run, dnnl_fini, NULL, ""},
        {"libxsmm, W packed once", xsmm_init, xsmm_run, xsmm_fini, NULL, ""},
        {"own AVX512-BF16, W packed", own_init, own_run, own_fini, NULL, ""},
    };
    return c;
}

/* one candidate on one shape: time, and for bf16 ones the error check */
static result run_candidate(candidate *c, problem *p, const options *o, int is_bf16) {
    result r = {0, 0, 0, 0};
    c->state = NULL;
    memset(p->Y, 0, (size_t)p->M * p->N * sizeof(float));
    r.avail = c->init(c, p) == 0;
    if (r.avail) {
        double t = time_best(c, p, o->reps, &r.once);
        r.gflops = 2.0 * p->M * p->K * p->N / t * 1e-9;
        if (is_bf16) r.err = max_row_err(p->Y, p->R, p->M, p->N);
    }
    c->fini(c);
    printf("  %-26s %s", c->name, c->note);
    if (r.avail) printf(": %.1f GFLOP/s%s", r.gflops, r.once ? " (1 call)" : "");
    if (r.avail && is_bf16) printf(", max err %.2e of row RMS%s", r.err, r.err <= o->tol ? "" : " -- WRONG");
    printf("\n");
    return r;
}

typedef struct {
    result r[NCAND];
    double conv_vec, conv_scalar; /* seconds to convert X[M,K] to bf16 */
} shape_result;

/* the conversions: timed, and the vector one must equal the scalar one */
static int run_conversion(shape_result *sr, problem *p, const options *o) {
    long n = (long)p->M * p->K;
    uint16_t *out = malloc(n * sizeof *out);
    if (!out) return 1;
    sr->conv_scalar = time_conversion(to_bf16_scalar, p, out, o->reps);
    sr->conv_vec = time_conversion(to_bf16_vector, p, out, o->reps);
    int bad = memcmp(out, p->Xb, n * sizeof *out) != 0;
    free(out);
    printf("  X f32->bf16 (%ld values): vector %.3f ms, scalar %.3f ms%s\n", n, sr->conv_vec * 1e3, sr->conv_scalar * 1e3,
           bad ? " -- vector result differs from the scalar one" : "");
    return bad;
}

static int run_shape(shape_result *sr, int M, int K, int N, const options *o) {
    problem p;
    if (problem_init(&p, M, K, N, o->trans)) { fprintf(stderr, "bench_gemm_bf16: out of memory at %dx%dx%d\n", M, K, N); return 1; }
    printf("%dx%dx%d (M x K x N):\n", M, K, N);
    candidate *c = candidates();
    int bad = 0;
    for (int i = 0; i < NCAND; i++) {
        sr->r[i] = run_candidate(&c[i], &p, o, i > 0);
        bad |= i > 0 && sr->r[i].avail && !(sr->r[i].err <= o->tol);
    }
    bad |= run_conversion(sr, &p, o);
    problem_free(&p);
    return bad;
}

static void print_cell(const result *r) {
    if (!r->avail) printf(" - |");
    else printf(" %.0f%s |", r->gflops, r->once ? " (1 call)" : "");
}

/* the Markdown table of bench/README.md */
static void print_table(const shape_result *sr, const options *o) {
    candidate *c = candidates();
    printf("\n| M x K x N |");
    for (int i = 0; i < NCAND; i++) printf(" %s |", c[i].name);
    printf(" best bf16 / sgemm | X to bf16 ms | best bf16 + X to bf16 / sgemm |\n|---|");
    for (int i = 0; i < NCAND + 3; i++) printf("---:|");
    printf("\n");
    for (int s = 0; s < o->nshapes; s++) {
        const int *d = o->shapes[s];
        double t_best = 0, flops = 2.0 * d[0] * d[1] * d[2];
        printf("| %dx%dx%d |", d[0], d[1], d[2]);
        for (int i = 0; i < NCAND; i++) {
            print_cell(&sr[s].r[i]);
            if (i > 0 && sr[s].r[i].avail && sr[s].r[i].err <= o->tol && (t_best == 0 || flops / sr[s].r[i].gflops < t_best))
                t_best = flops / sr[s].r[i].gflops;
        }
        double t_sgemm = flops / sr[s].r[0].gflops, t_conv = sr[s].conv_vec * 1e9;
        if (t_best > 0) printf(" %.2fx | %.3f | %.2fx |\n", t_sgemm / t_best, sr[s].conv_vec * 1e3, t_sgemm / (t_best + t_conv));
        else printf(" - | %.3f | - |\n", sr[s].conv_vec * 1e3);
    }
}

static const char *dnnl_isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2: return "avx2";
    default: return "other";
    }
}

static void print_header(const options *o) {
    const char *ct = getenv("OPENBLAS_CORETYPE"), *l2 = getenv("OPENBLAS_L2_SIZE");
    const dnnl_version_t *v = dnnl_version();
    printf("bf16 GEMM candidates, Y[M,N] = op(X) op(W), layout %c%c (X %s, W %s), %d threads, best of %d after 1 "
           "warm-up, tolerance %.0e\n", "NT"[o->trans[0]], "NT"[o->trans[1]], o->trans[0] ? "[K,M]" : "[M,K]",
           o->trans[1] ? "[N,K]" : "[K,N]", o->threads, o->reps, o->tol);
    printf("OpenBLAS core %s | %s | OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s\n", openblas_get_corename(),
           openblas_get_config(), ct ? ct : "(unset)", l2 ? l2 : "(unset)");
    printf("oneDNN %d.%d.%d (%s), effective max ISA %s; libxsmm %s, target %s; f32->bf16 vector path: %s\n",
           v->major, v->minor, v->patch, v->hash, dnnl_isa_name(dnnl_get_effective_cpu_isa()), LIBXSMM_VERSION,
           libxsmm_get_target_arch(),
#if defined(__AVX512BF16__)
           "AVX512-BF16"
#else
           "none (scalar)"
#endif
    );
}

int main(int argc, char **argv) {
    options o;
    if (parse_options(&o, argc, argv)) {
        fprintf(stderr, "usage: bench_gemm_bf16 [--shapes MxKxN,...] [--layout NT|NN|TN] [--reps N] [--threads T] [--tol X]\n");
        return 2;
    }
    omp_set_num_threads(o.threads);
    openblas_set_num_threads(o.threads);
    libxsmm_init();
    if (dnnl_engine_create(&dnnl_eng, dnnl_cpu, 0) || dnnl_stream_create(&dnnl_str, dnnl_eng, dnnl_stream_default_flags)) {
        fprintf(stderr, "bench_gemm_bf16: oneDNN has no CPU engine\n");
        return 1;
    }
    print_header(&o);
    static shape_result sr[MAX_SHAPES];
    int bad = 0;
    for (int s = 0; s < o.nshapes; s++) bad |= run_shape(&sr[s], o.shapes[s][0], o.shapes[s][1], o.shapes[s][2], &o);
    print_table(sr, &o);
    dnnl_stream_destroy(dnnl_str);
    dnnl_engine_destroy(dnnl_eng);
    libxsmm_finalize();
    if (bad) printf("bench_gemm_bf16: FAILED: a bf16 result is off by more than %.0e of its row RMS (see above)\n", o.tol);
    return bad ? 1 : 0;
}
