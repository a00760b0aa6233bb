/* gemm_bf16.c — bf16 GEMMs (bf16 inputs, fp32 accumulation and output)
 * through oneDNN's matmul, which runs AMX tiles or AVX512-BF16 dot products
 * (what PyTorch's autocast uses on CPU; chosen by measurement, see
 * bench/bench_gemm_bf16.c and bench/README.md), and the fp32 -> bf16
 * rounding of activations.
 *
 * Dispatch happens once, at run time: bf16 GEMMs are offered only when
 * oneDNN reports a bf16 ISA (AVX512-BF16 or AMX) for this CPU, so a CPU
 * without them, or ONEDNN_MAX_CPU_ISA set below them, keeps every caller on
 * fp32. Primitives are made once per shape (with strides, transposes, alpha
 * and beta) and kept in a small cache; oneDNN makes a primitive in
 * milliseconds (it compiles its kernels), a training run uses a handful of
 * shapes. The batched entry (k_gemm_bf16_batched: up to 4-D operands with
 * any strides, attention's products) is keyed and cached the same way. A
 * 2-D primitive oneDNN cannot make or run falls back to the serial reference
 * k_gemm_bf16_ref (slower, same numbers up to summation order); a batched
 * one reports it and its caller computes in fp32.
 * oneDNN 2.6's AMX kernels die of SIGILL on some small K that are not a
 * multiple of 32 (K = 63 at M x N = 48x80, 16x112, 48x112: oneDNN issue
 * #1661; every other K from 1 to 259 ran, as do the large ones of real
 * models, e.g. GPT-2's vocabulary of 50257): on AMX a product with such a K
 * below PAD_K_BELOW runs on copies of A and B padded with zeros to the next
 * multiple of 32, the same sums; cheap at that size, where a copy of a large
 * K (an lm_head's) would cost a pass over both operands. */
#define PAD_K_BELOW 256
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX512BF16__
#include <immintrin.h>
#endif

#include "core/prof.h"
#include "kernels/kernels.h"

static pthread_once_t bf16_once = PTHREAD_ONCE_INIT;
static int bf16_ok, bf16_amx;
static dnnl_engine_t eng;
static char isa_name[96] = "fp32 only (no bf16 instructions)";

static void bf16_init(void) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    int bf = (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
    int amx = (isa & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx;
    if (!bf || dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) return;
    const dnnl_version_t *v = dnnl_version();
    snprintf(isa_name, sizeof isa_name, "oneDNN %d.%d matmul, %s", v->major, v->minor,
             amx ? "AMX-BF16" : "AVX512-BF16");
    bf16_ok = 1;
    bf16_amx = amx;
}

int k_bf16_ready(void) {
    pthread_once(&bf16_once, bf16_init);
    return bf16_ok;
}

const char *k_bf16_kernel(void) {
    pthread_once(&bf16_once, bf16_init);
    return isa_name;
}

/* ---- fp32 -> bf16, round to nearest even (NaN stays NaN) ---- */

static inline uint16_t round_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* vcvtne2ps2bf16 on whole groups of 32, the scalar rounding on the tail */
void k_f32_to_bf16_serial(uint16_t *dst, const float *src, long n) {
    long done = 0;
#ifdef __AVX512BF16__
    done = n / 32 * 32;
    for (long i = 0; i < done; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512((void *)(dst + i), (__m512i)v);
    }
#endif
    for (long i = done; i < n; i++) dst[i] = round_bf16(src[i]);
}

#define CONVERT_BLOCK 65536L /* values per task: a multiple of 32 */

void k_f32_to_bf16(uint16_t *dst, const float *src, long n) {
    double t0 = prof_start();
#pragma omp parallel for schedule(static) if (n > CONVERT_BLOCK)
    for (long b = 0; b < n; b += CONVERT_BLOCK)
        k_f32_to_bf16_serial(dst + b, src + b, n - b < CONVERT_BLOCK ? n - b : CONVERT_BLOCK);
    prof_stop(PROF_CONVERT, t0, 0);
}

/* ---- the primitive cache ---- */

/* A matmul's operand layouts and scaling: every k_gemm_bf16 call and every
 * k_gemm_bf16_batched call is one of these, all in one cache. */
typedef struct {
    k_bgemm g;  /* dims and strides of A, B, C (2-D GEMMs: ndims 2) */
    int bias;   /* a bias row [1, N] (2-D only) */
} gemm_key;

typedef struct {
    gemm_key key;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t a, b, c, bias;
    dnnl_memory_desc_t pad; /* its scratchpad (pad_bytes; 0: none) */
    size_t pad_bytes;
} gemm_entry;

#define GEMM_CACHE 64
static gemm_entry cache[GEMM_CACHE];
static int cache_used, cache_next;
/* read-held while a primitive runs (oneDNN's primitives may run on several
 * threads at once: attention's run one per thread), write-held to add one */
static pthread_rwlock_t cache_lock = PTHREAD_RWLOCK_INITIALIZER;

static int md_init(dnnl_memory_desc_t *md, int nd, const int64_t *dims, const int64_t *str, dnnl_data_type_t dt) {
    dnnl_dims_t d, s;
    for (int i = 0; i < nd; i++) d[i] = dims[i], s[i] = str[i];
    return dnnl_memory_desc_init_by_strides(md, nd, d, dt, s) != dnnl_success;
}

static dnnl_primitive_t make_prim(const gemm_key *k, gemm_entry *e) {
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t p = NULL;
    dnnl_matmul_desc_t mm;
    const k_bgemm *g = &k->g;
    int64_t bd[2] = {1, g->c_dims[1]}, bs[2] = {g->c_dims[1], 1};
    int bad = md_init(&e->a, g->ndims, g->a_dims, g->a_str, dnnl_bf16) ||
              md_init(&e->b, g->ndims, g->b_dims, g->b_str, dnnl_bf16) ||
              md_init(&e->c, g->ndims, g->c_dims, g->c_str, dnnl_f32) || (k->bias && md_init(&e->bias, 2, bd, bs, dnnl_f32)) ||
              dnnl_matmul_desc_init(&mm, &e->a, &e->b, k->bias ? &e->bias : NULL, &e->c) ||
              dnnl_primitive_attr_create(&attr);
    /* scratchpads given per call, from the calling thread's buffer: oneDNN's
     * own is shared by all primitives, not safe when threads run them at once */
    if (!bad) bad = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success;
    if (!bad && g->alpha != 1.0f) bad = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &g->alpha) != dnnl_success;
    if (!bad && g->beta != 0.0f)
        bad = dnnl_post_ops_create(&po) || dnnl_post_ops_append_sum(po, g->beta) || dnnl_primitive_attr_set_post_ops(attr, po);
    if (!bad) bad = dnnl_primitive_desc_create(&pd, &mm, attr, eng, NULL) != dnnl_success;
    const dnnl_memory_desc_t *pad = bad ? NULL : dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (pad) e->pad = *pad, e->pad_bytes = dnnl_memory_desc_get_size(pad);
    if (!bad && dnnl_primitive_create(&p, pd) != dnnl_success) p = NULL;
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return p;
}

/* the cache's entry of key k (its prim NULL: oneDNN refused it), NULL when
 * there is none. Called with cache_lock held. */
static const gemm_entry *find(const gemm_key *k) {
    for (int i = 0; i < cache_used; i++)
        if (!memcmp(&cache[i].key, k, sizeof *k)) return &cache[i];
    return NULL;
}

/* adds key k's entry, in place of the oldest when full. Called with
 * cache_lock held for writing. */
static void insert(const gemm_key *k) {
    gemm_entry *e = &cache[cache_used < GEMM_CACHE ? cache_used++ : cache_next];
    if (cache_used == GEMM_CACHE) cache_next = (cache_next + 1) % GEMM_CACHE;
    if (e->prim) dnnl_primitive_destroy(e->prim);
    memset(e, 0, sizeof *e);
    e->key = *k;
    e->prim = make_prim(k, e);
}

/* this thread's scratchpad buffer, grown to n bytes (kept for the thread's
 * life: OpenMP's threads are few and stay; a thread that ends, such as one
 * of tuna serve's connection threads, frees it through pad_key's
 * destructor); NULL: no memory */
static _Thread_local void *pad_buf;
static _Thread_local size_t pad_cap;
static pthread_key_t pad_key;
static pthread_once_t pad_once = PTHREAD_ONCE_INIT;
static int pad_key_ok;

static void pad_key_init(void) { pad_key_ok = pthread_key_create(&pad_key, free) == 0; }

static void *thread_pad(size_t n) {
    if (n > pad_cap) {
        pthread_once(&pad_once, pad_key_init);
        free(pad_buf);
        pad_buf = malloc(n);
        pad_cap = pad_buf ? n : 0;
        if (pad_key_ok) pthread_setspecific(pad_key, pad_buf);
    }
    return pad_buf;
}

static int run_prim(const gemm_entry *e, const uint16_t *A, const uint16_t *B, const float *bias, float *C) {
    dnnl_memory_t ma = NULL, mb = NULL, mc = NULL, mbias = NULL, mpad = NULL;
    dnnl_stream_t s = NULL;
    void *pad = e->pad_bytes ? thread_pad(e->pad_bytes) : NULL;
    int bad = dnnl_memory_create(&ma, &e->a, eng, (void *)A) || dnnl_memory_create(&mb, &e->b, eng, (void *)B) ||
              dnnl_memory_create(&mc, &e->c, eng, C) || (bias && dnnl_memory_create(&mbias, &e->bias, eng, (void *)bias)) ||
              (e->pad_bytes && (!pad || dnnl_memory_create(&mpad, &e->pad, eng, pad))) ||
              dnnl_stream_create(&s, eng, dnnl_stream_default_flags);
    if (!bad) {
        dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
        int n = 3;
        if (mpad) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mpad};
        if (mbias) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mbias};
        bad = dnnl_primitive_execute(e->prim, s, n, args) || dnnl_stream_wait(s);
    }
    if (s) dnnl_stream_destroy(s);
    if (ma) dnnl_memory_destroy(ma);
    if (mb) dnnl_memory_destroy(mb);
    if (mc) dnnl_memory_destroy(mc);
    if (mbias) dnnl_memory_destroy(mbias);
    if (mpad) dnnl_memory_destroy(mpad);
    return bad;
}

/* An operand with K padded to Kp by zeros (malloc'd; NULL: no memory). K is
 * its row index when kmajor ([K, other], leading ld), else its column index
 * ([other, K]); *ld_out: the copy's leading dimension. */
static uint16_t *pad_k(const uint16_t *X, int ld, int kmajor, int other, int K, int Kp, int *ld_out) {
    uint16_t *P = calloc((size_t)other * Kp, sizeof *P);
    if (!P) return NULL;
    *ld_out = kmajor ? other : Kp;
    for (long r = 0; r < (kmajor ? K : other); r++)
        memcpy(P + r * *ld_out, X + r * ld, (size_t)(kmajor ? other : K) * sizeof *P);
    return P;
}

static void gemm_padded(int ta, int tb, int M, int N, int K, float alpha, const uint16_t *A, int lda, const uint16_t *B,
                        int ldb, const float *bias, float beta, float *C, int ldc) {
    int Kp = (K + 31) / 32 * 32, la = 0, lb = 0;
    uint16_t *Ap = pad_k(A, lda, ta, M, K, Kp, &la), *Bp = pad_k(B, ldb, !tb, N, K, Kp, &lb);
    if (Ap && Bp) k_gemm_bf16(ta, tb, M, N, Kp, alpha, Ap, la, Bp, lb, bias, beta, C, ldc);
    else k_gemm_bf16_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, bias, beta, C, ldc);
    free(Ap);
    free(Bp);
}

/* the key of a 2-D GEMM: op(A) [M, K], op(B) [K, N], C [M, N], row-major,
 * an operand stored transposed ([cols, rows] with leading ld) when trans */
static void key_2d(gemm_key *k, int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc, int bias, float alpha,
                   float beta) {
    memset(k, 0, sizeof *k);
    k->g.ndims = 2;
    int64_t *d[3] = {k->g.a_dims, k->g.b_dims, k->g.c_dims}, *s[3] = {k->g.a_str, k->g.b_str, k->g.c_str};
    int rows[3] = {M, K, M}, cols[3] = {K, N, N}, tr[3] = {ta != 0, tb != 0, 0}, ld[3] = {lda, ldb, ldc};
    for (int i = 0; i < 3; i++) {
        d[i][0] = rows[i], d[i][1] = cols[i];
        s[i][0] = tr[i] ? 1 : ld[i], s[i][1] = tr[i] ? ld[i] : 1;
    }
    k->g.alpha = alpha, k->g.beta = beta, k->bias = bias;
}

/* runs key k's primitive; nonzero when oneDNN cannot */
static int run_key(const gemm_key *k, const uint16_t *A, const uint16_t *B, const float *bias, float *C) {
    if (!k_bf16_ready()) return 1;
    pthread_rwlock_rdlock(&cache_lock);
    const gemm_entry *e = find(k);
    if (!e) {
        pthread_rwlock_unlock(&cache_lock);
        pthread_rwlock_wrlock(&cache_lock);
        if (!find(k)) insert(k);
        pthread_rwlock_unlock(&cache_lock);
        pthread_rwlock_rdlock(&cache_lock);
        e = find(k); /* NULL only if 64 other shapes came in meanwhile: not run then */
    }
    int bad = !e || !e->prim || run_prim(e, A, B, bias, C);
    pthread_rwlock_unlock(&cache_lock);
    return bad;
}

void k_gemm_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha, const uint16_t *A, int lda, const uint16_t *B,
                 int ldb, const float *bias, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K % 32 && K < PAD_K_BELOW && k_bf16_ready() && bf16_amx) {
        gemm_padded(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, bias, beta, C, ldc);
        return;
    }
    double t0 = prof_start();
    gemm_key k;
    key_2d(&k, trans_a, trans_b, M, N, K, lda, ldb, ldc, bias != NULL, alpha, beta);
    if (K <= 0 || run_key(&k, A, B, bias, C))
        k_gemm_bf16_ref(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, bias, beta, C, ldc);
    prof_stop(PROF_GEMM, t0, 2.0 * M * N * K);
}

int k_gemm_bf16_batched(const k_bgemm *g, const uint16_t *A, const uint16_t *B, float *C) {
    int nd = g->ndims;
    if (nd < 2 || nd > K_BGEMM_MAX_DIMS) return 1;
    int64_t K = g->a_dims[nd - 1];
    if (K % 32 && K < PAD_K_BELOW && k_bf16_ready() && bf16_amx) return 1; /* oneDNN issue #1661, see the top */
    gemm_key k;
    memset(&k, 0, sizeof k); /* padding included: keys are compared with memcmp */
    k.g.ndims = nd;
    memcpy(k.g.a_dims, g->a_dims, sizeof k.g.a_dims), memcpy(k.g.a_str, g->a_str, sizeof k.g.a_str);
    memcpy(k.g.b_dims, g->b_dims, sizeof k.g.b_dims), memcpy(k.g.b_str, g->b_str, sizeof k.g.b_str);
    memcpy(k.g.c_dims, g->c_dims, sizeof k.g.c_dims), memcpy(k.g.c_str, g->c_str, sizeof k.g.c_str);
    k.g.alpha = g->alpha, k.g.beta = g->beta;
    return run_key(&k, A, B, NULL, C);
}
