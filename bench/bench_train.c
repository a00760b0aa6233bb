/* bench_train.c — speed of one training step (forward + backward) of a model
 * shape with random weights and random token ids, next to the sgemm speed of
 * the same machine, thread count and OpenBLAS kernel.
 *
 * Rules: the model is built only from a config.json (no checkpoint); every
 * step is tuna_model_zero_grad + tuna_model_forward + tuna_model_backward with
 * token weight 1/(counted tokens), timed as one unit; the FLOP count is a
 * formula stated in the output (see flops_per_step). OpenBLAS picks its kernel
 * from the CPU unless OPENBLAS_CORETYPE forces one: the kernel that ran is
 * printed, never changed here. --bf16 turns on bf16 compute for the linear
 * layers (tuna_model_set_bf16); whether it ran and the GEMM kernels in use
 * are printed. See bench/README.md for how to run it.
 * --sgemm-only MxNxK times that one sgemm alone (no model): bench_scale.sh's
 * reference rate for the GEMM GFLOP/s that `tuna sft --profile` reports. */
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "tuna.h"

typedef struct {
    const char *config;
    int B, T, steps, warmup, threads, json, sgemm, bf16;
    int only[3]; /* --sgemm-only M, N, K (0: a model's step) */
} options;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 1-minute load average: on a shared machine a load above the thread count
 * means the timings below are slowed by other processes. */
static double loadavg1(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: bench_train --config FILE [--batch B] [--seq-len T] [--steps N] [--warmup W]\n"
            "                   [--threads K] [--bf16] [--no-sgemm] [--json]\n"
            "       bench_train --sgemm-only MxNxK [--threads K]\n"
            "  times tuna_model_zero_grad + forward + backward on random weights and token ids;\n"
            "  --bf16: the linear layers compute in bf16 (fp32 accumulation) where the CPU can\n"
            "  --sgemm-only: one sgemm C[M,N] = A[M,K] B[N,K]^T alone, best of 3, and the OpenBLAS kernel\n"
            "  defaults: B=4 T=256 N=3 W=1 K=omp_get_max_threads()\n");
}

/* Parses a positive int option value; returns 0 on success. */
static int parse_pos_int(const char *opt, const char *s, int *out) {
    char *end = NULL;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v <= 0 || v > INT_MAX) {
        fprintf(stderr, "bench_train: %s needs a positive integer, got '%s'\n", opt, s ? s : "(nothing)");
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_args(options *o, int argc, char **argv) {
    *o = (options){NULL, 4, 256, 3, 1, omp_get_max_threads(), 0, 1, 0, {0, 0, 0}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(a, "--config")) { if (!v) rc = -1; else o->config = v; i++; }
        else if (!strcmp(a, "--batch")) { rc = parse_pos_int(a, v, &o->B); i++; }
        else if (!strcmp(a, "--seq-len")) { rc = parse_pos_int(a, v, &o->T); i++; }
        else if (!strcmp(a, "--steps")) { rc = parse_pos_int(a, v, &o->steps); i++; }
        else if (!strcmp(a, "--threads")) { rc = parse_pos_int(a, v, &o->threads); i++; }
        else if (!strcmp(a, "--warmup")) {
            /* 0 warmup steps is allowed */
            if (v && !strcmp(v, "0")) o->warmup = 0;
            else rc = parse_pos_int(a, v, &o->warmup);
            i++;
        } else if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--no-sgemm")) o->sgemm = 0;
        else if (!strcmp(a, "--bf16")) o->bf16 = 1;
        else if (!strcmp(a, "--sgemm-only")) {
            if (!v || sscanf(v, "%dx%dx%d", &o->only[0], &o->only[1], &o->only[2]) != 3 || o->only[0] <= 0 || o->only[1] <= 0 || o->only[2] <= 0) {
                fprintf(stderr, "bench_train: --sgemm-only needs MxNxK, got '%s'\n", v ? v : "(nothing)");
                rc = -1;
            }
            i++;
        }
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else { fprintf(stderr, "bench_train: unknown option '%s'\n", a); rc = -1; }
        if (rc) { usage(stderr); return -1; }
    }
    if (!o->config && !o->only[0]) { fprintf(stderr, "bench_train: --config FILE is required\n"); usage(stderr); return -1; }
    return 0;
}

/* splitmix64: reproducible random token ids without touching library state */
static uint64_t mix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* FLOPs of one forward+backward, the convention used by llm.c / nanoGPT:
 *   6 * P_mm * B*T  +  L * 12 * B*NH*T^2*HD
 * P_mm = non-embedding parameters (wte, wpe and a separate lm_head left out)
 *        plus V*C for the lm_head matmul (counted once even when tied);
 * attention: forward 4*B*NH*T^2*HD (QK^T and PV over the full T x T, as tuna
 * computes it, causal mask not discounted), backward twice that. */
static double matmul_params(const tuna_model *m) {
    const tuna_config *c = tuna_model_config(m);
    double p = (double)tuna_model_param_count(m);
    p -= (double)c->V * c->C;                                  /* wte */
    if (c->learned_positions) p -= (double)c->max_positions * c->C; /* wpe */
    if (!c->tie_embeddings) p -= (double)c->V * c->C;          /* separate lm_head */
    return p + (double)c->V * c->C;                            /* lm_head matmul */
}

static double flops_per_step(const tuna_model *m, int B, int T) {
    const tuna_config *c = tuna_model_config(m);
    double attn = 12.0 * c->L * (double)B * c->NH * (double)T * T * c->HD;
    return 6.0 * matmul_params(m) * (double)B * T + attn;
}

/* An sgemm C[M,N] = A[M,K] B[N,K]^T (the layout of tuna's linear forward)
 * with its buffers, so it can be timed again and again. */
typedef struct {
    int M, N, K;
    float *a, *b, *c;
} sgemm_probe;

static void probe_free(sgemm_probe *p) {
    free(p->a);
    free(p->b);
    free(p->c);
    p->a = p->b = p->c = NULL;
}

static size_t probe_bytes(const sgemm_probe *p) {
    return ((size_t)p->M * p->K + (size_t)p->N * p->K + (size_t)p->M * p->N) * sizeof(float);
}

static int probe_init(sgemm_probe *p, int M, int N, int K) {
    *p = (sgemm_probe){M, N, K, malloc((size_t)M * K * sizeof(float)), malloc((size_t)N * K * sizeof(float)),
                       calloc((size_t)M * N, sizeof(float))};
    if (!p->a || !p->b || !p->c) { probe_free(p); return -1; }
    uint64_t s = 42;
    for (long i = 0; i < (long)M * K; i++) p->a[i] = (float)((mix64(&s) >> 40) * 0x1p-24) - 0.5f;
    for (long i = 0; i < (long)N * K; i++) p->b[i] = (float)((mix64(&s) >> 40) * 0x1p-24) - 0.5f;
    return 0;
}

/* Best-of-reps GFLOP/s. */
static double probe_run(sgemm_probe *p, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->M, p->N, p->K, 1.0f, p->a, p->K, p->b, p->K, 0.0f,
                    p->c, p->N);
        double dt = now_s() - t0;
        best = dt < best ? dt : best;
    }
    return 2.0 * p->M * p->N * p->K / best / 1e9;
}

/* Standalone best-of-reps GFLOP/s of one shape (first call warms up). */
static double sgemm_gflops(int M, int N, int K, int reps) {
    sgemm_probe p;
    if (probe_init(&p, M, N, K)) return 0;
    probe_run(&p, 1);
    double g = probe_run(&p, reps);
    probe_free(&p);
    return g;
}

/* Copies s into dst (size n) without the characters a JSON string would need
 * escaped (quotes, backslashes, control characters). */
static void json_safe(char *dst, size_t n, const char *s) {
    size_t j = 0;
    for (; s && *s && j + 1 < n; s++)
        if (*s != '"' && *s != '\\' && (unsigned char)*s >= 0x20) dst[j++] = *s;
    dst[j] = 0;
}

static double median(double *v, int n) {
    for (int i = 1; i < n; i++) /* insertion sort: n is small */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) { double t = v[j]; v[j] = v[j - 1]; v[j - 1] = t; }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* --sgemm-only: one line, the rate and the kernel that gave it */
static int sgemm_only(const options *o) {
    int M = o->only[0], N = o->only[1], K = o->only[2];
    double g = sgemm_gflops(M, N, K, 3);
    const char *env_core = getenv("OPENBLAS_CORETYPE");
    printf("sgemm %dx%dx%d: %.2f GFLOP/s (best of 3), %d threads, OpenBLAS core %s, OPENBLAS_CORETYPE=%s\n", M, N, K, g,
           o->threads, openblas_get_corename(), env_core ? env_core : "(unset)");
    return g > 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    options o;
    if (parse_args(&o, argc, argv)) return 2;
    omp_set_num_threads(o.threads);
    openblas_set_num_threads(o.threads);
    if (o.only[0]) return sgemm_only(&o);

    tuna_config cfg;
    tuna_model *m = NULL;
    tuna_status st = tuna_config_load(&cfg, o.config);
    if (st == TUNA_OK) st = tuna_model_create(&m, &cfg);
    if (st == TUNA_OK) st = tuna_model_init_random(m, 1234);
    if (st == TUNA_OK) st = tuna_model_prepare(m, o.B, o.T, 1);
    int bf16 = st == TUNA_OK && o.bf16 ? tuna_model_set_bf16(m, 1) : 0;
    if (bf16 < 0) st = TUNA_ERR_NOMEM; /* tuna_last_error says why */
    else if (o.bf16 && !bf16 && st == TUNA_OK)
        fprintf(stderr, "bench_train: --bf16: this CPU has no bf16 GEMMs (tuna_bf16_supported() = 0): the step runs in fp32\n");
    if (st != TUNA_OK) {
        fprintf(stderr, "bench_train: %s: %s\n", tuna_status_str(st), tuna_last_error());
        tuna_model_free(m);
        return tuna_status_exit_code(st);
    }
    int N = o.B * o.T;
    int32_t *ids = malloc((size_t)N * sizeof *ids);
    double *step_s = malloc((size_t)o.steps * sizeof *step_s);
    if (!ids || !step_s) { fprintf(stderr, "bench_train: out of memory\n"); return 1; }
    uint64_t s = 7;
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(mix64(&s) % (uint64_t)cfg.V);
    /* labels = input ids: position t is scored against t+1, B*(T-1) counted tokens */
    tuna_batch bt = {.B = o.B, .T = o.T, .input_ids = ids, .labels = ids};

    /* The sgemm probe runs right after every step: this machine's speed changes
     * with what else runs on it, so each step is compared with an sgemm timed
     * under the same conditions. Its buffers are left out of the peak RSS. */
    sgemm_probe probe = {0, 0, 0, NULL, NULL, NULL};
    double *probe_g = calloc((size_t)o.steps, sizeof(double)), *eff = calloc((size_t)o.steps, sizeof(double));
    double *tps_norm = calloc((size_t)o.steps, sizeof(double));
    if (!probe_g || !eff || !tps_norm || (o.sgemm && probe_init(&probe, 1024, 3072, 768))) {
        fprintf(stderr, "bench_train: out of memory\n");
        return 1;
    }
    if (o.sgemm) probe_run(&probe, 1); /* first call: OpenBLAS buffers and threads */
    double flops = flops_per_step(m, o.B, o.T), pmm = matmul_params(m);
    double loss0 = 0, load0 = loadavg1(), cpu_meas = 0, wall_meas = 0;
    for (int i = 0; i < o.warmup + o.steps; i++) {
        tuna_loss loss = {0, 0};
        double t0 = now_s(), c0 = cpu_s();
        tuna_model_zero_grad(m);
        st = tuna_model_forward(m, &bt, &loss);
        if (st == TUNA_OK) st = tuna_model_backward(m, &bt, 1.0f / (float)(loss.tokens > 0 ? loss.tokens : 1));
        double dt = now_s() - t0, dc = cpu_s() - c0;
        if (st != TUNA_OK) {
            fprintf(stderr, "bench_train: step %d: %s: %s\n", i, tuna_status_str(st), tuna_last_error());
            return tuna_status_exit_code(st);
        }
        double g = o.sgemm ? probe_run(&probe, 2) : 0;
        if (i == 0) loss0 = loss.loss_sum / (double)(loss.tokens > 0 ? loss.tokens : 1);
        if (i >= o.warmup) {
            int j = i - o.warmup;
            step_s[j] = dt;
            probe_g[j] = g;
            eff[j] = g > 0 ? flops / dt / 1e9 / g : 0;
            tps_norm[j] = g > 0 ? N / dt / g : 0;
            cpu_meas += dc;
            wall_meas += dt;
        }
        if (!o.json)
            fprintf(stderr, "  step %d%s: %.1f ms, %.1f GFLOP/s; sgemm probe after it %.1f GFLOP/s\n", i,
                    i < o.warmup ? " (warmup)" : "", dt * 1e3, flops / dt / 1e9, g);
    }
    double rss = peak_rss_mib() - (o.sgemm ? probe_bytes(&probe) / 1048576.0 : 0), load1 = loadavg1();
    probe_free(&probe);
    /* cores this process actually got (OpenMP spin-waits count as busy) */
    double cores = wall_meas > 0 ? cpu_meas / wall_meas : 0;
    double mean = 0, best = 1e30;
    for (int i = 0; i < o.steps; i++) { mean += step_s[i] / o.steps; best = step_s[i] < best ? step_s[i] : best; }
    double med = median(step_s, o.steps), frac = median(eff, o.steps), gprobe = median(probe_g, o.steps);
    double tps_per_sgemm = median(tps_norm, o.steps);
    double gflops = flops / med / 1e9, tok_s = N / med, gflops_best = flops / best / 1e9;
    int64_t nparams = tuna_model_param_count(m);
    size_t wbytes = tuna_model_weight_bytes(&cfg), abytes = tuna_model_activation_bytes(&cfg, o.B, o.T, 1);
    tuna_model_free(m);
    free(ids);
    free(step_s);
    free(probe_g);
    free(eff);
    free(tps_norm);

    /* standalone sgemm after the model is freed, best of a few reps */
    double g1 = 0, g2 = 0;
    if (o.sgemm) {
        g1 = sgemm_gflops(1024, 3072, 768, 8);
        g2 = sgemm_gflops(4096, 4096, 4096, 3);
    }
    double gbest = g1 > g2 ? g1 : g2;
    const char *core = openblas_get_corename(), *bcfg = openblas_get_config();
    const char *env_core = getenv("OPENBLAS_CORETYPE"), *env_l2 = getenv("OPENBLAS_L2_SIZE");
    char kernels[256];
    json_safe(kernels, sizeof kernels, tuna_kernels_info());

    if (o.json) {
        printf("{\"impl\":\"tuna\",\"config\":\"%s\",\"arch\":\"%s\",\"B\":%d,\"T\":%d,\"threads\":%d,\"steps\":%d,"
               "\"warmup\":%d,\"params\":%lld,\"matmul_params\":%.0f,\"flops_per_step\":%.6g,\"ms_per_step\":%.3f,"
               "\"ms_per_step_mean\":%.3f,\"ms_per_step_min\":%.3f,\"tokens_per_s\":%.2f,\"tokens_per_s_best\":%.2f,"
               "\"gflops\":%.3f,\"gflops_best\":%.3f,\"sgemm_probe_gflops\":%.3f,\"frac_of_sgemm\":%.4f,"
               "\"tokens_per_s_per_sgemm_gflops\":%.5f,\"sgemm_gflops_1024x3072x768\":%.3f,\"sgemm_gflops_4096\":%.3f,"
               "\"frac_of_best_sgemm\":%.4f,\"peak_rss_mib\":%.1f,\"weights_mib\":%.1f,\"activations_mib\":%.1f,"
               "\"loss0\":%.4f,\"openblas_core\":\"%s\",\"openblas_config\":\"%s\",\"OPENBLAS_CORETYPE\":\"%s\","
               "\"OPENBLAS_L2_SIZE\":\"%s\",\"bf16_requested\":%d,\"bf16\":%d,\"kernels\":\"%s\",\"cores_used\":%.2f,"
               "\"loadavg_start\":%.2f,\"loadavg_end\":%.2f}\n",
               o.config, cfg.architecture, o.B, o.T, o.threads, o.steps, o.warmup, (long long)nparams, pmm, flops,
               med * 1e3, mean * 1e3, best * 1e3, tok_s, N / best, gflops, gflops_best, gprobe, frac, tps_per_sgemm,
               g1, g2, gbest > 0 ? gflops_best / gbest : 0, rss, wbytes / 1048576.0, abytes / 1048576.0, loss0, core,
               bcfg, env_core ? env_core : "", env_l2 ? env_l2 : "", o.bf16, bf16, kernels, cores, load0, load1);
        return 0;
    }
    printf("tuna training-step benchmark\n");
    printf("  config        %s (%s: V=%d C=%d L=%d NH=%d NKV=%d HD=%d FF=%d)\n", o.config, cfg.architecture, cfg.V,
           cfg.C, cfg.L, cfg.NH, cfg.NKV, cfg.HD, cfg.FF);
    printf("  batch         B=%d T=%d (%d tokens/step), %d threads, %d steps after %d warmup\n", o.B, o.T, N,
           o.threads, o.steps, o.warmup);
    printf("  openblas      core %s | %s | OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s\n", core, bcfg,
           env_core ? env_core : "(unset)", env_l2 ? env_l2 : "(unset)");
    printf("  compute       %s (%s)\n", bf16 ? "bf16 linear layers, fp32 accumulation" : "fp32",
           kernels);
    printf("  params        %lld (matmul params P_mm = %.0f)\n", (long long)nparams, pmm);
    printf("  memory        peak RSS %.1f MiB (weights %.1f + grads %.1f + activations %.1f MiB planned)\n", rss,
           wbytes / 1048576.0, wbytes / 1048576.0, abytes / 1048576.0);
    printf("  initial loss  %.4f (ln V = %.4f)\n", loss0, log((double)cfg.V));
    printf("  step          %.1f ms median (mean %.1f, min %.1f)\n", med * 1e3, mean * 1e3, best * 1e3);
    printf("  machine       %.2f cores busy on average for %d threads; load average %.2f -> %.2f\n", cores,
           o.threads, load0, load1);
    printf("  throughput    %.1f tokens/s (fastest step %.1f)\n", tok_s, N / best);
    printf("  FLOPs/step    %.4g = 6*P_mm*B*T + 12*L*B*NH*T^2*HD\n", flops);
    printf("  achieved      %.2f GFLOP/s (fastest step %.2f)\n", gflops, gflops_best);
    if (o.sgemm) {
        printf("  sgemm probe   %.2f GFLOP/s (1024x3072x768 right after each step, median)\n", gprobe);
        printf("  efficiency    %.1f%% of sgemm (median over steps of step GFLOP/s / probe GFLOP/s)\n", 100.0 * frac);
        printf("  sgemm alone   %.2f GFLOP/s (1024x3072x768), %.2f GFLOP/s (4096^3); fastest step = %.1f%% of the best\n",
               g1, g2, 100.0 * (gbest > 0 ? gflops_best / gbest : 0));
    }
    return 0;
}
