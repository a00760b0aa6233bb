/* bench_decode.c — generation speed with the KV cache: prompt processing
 * (prefill) and decoding tokens/s of a model shape with random weights, one
 * row and several rows decoded together.
 *   build/bench/bench_decode (--config FILE | --model DIR [--dtype auto|bf16|f32])
 *                            [--prompt N] [--new N] [--rows R] [--profile]
 * --config: random fp32 weights in memory. --model: a checkpoint (e.g. from
 * `tuna init --config FILE --dtype f32|bf16`) loaded as `tuna generate
 * --dtype` loads it: auto (default) as stored, bf16 computed in bf16 when the
 * linears are bf16; bf16 converted to bf16 at load, computed in bf16; f32 as
 * stored, computed in fp32.
 * Prefill runs the R prompts of N tokens row by row; decode steps then feed
 * one token to every row per call (the batched path of evaluation). Greedy
 * next token, so the work is the model's, not the sampler's. --profile adds
 * where a decode step's time goes (src/core/prof.h's kinds). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "core/prof.h"
#include "tuna.h"
#include "tuna_infer.h"
#include "tuna_peft.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* the model of --config (random fp32) or --model (as --dtype says); "fp32",
 * "bf16" or "bf16 weights, fp32 compute" in *how */
static tuna_status load(tuna_model **m, const char *config, const char *dir, const char *dtype, const char **how) {
    tuna_config cfg;
    tuna_status st;
    *how = "fp32";
    if (config) {
        st = tuna_config_load(&cfg, config);
        if (st == TUNA_OK) st = tuna_model_create(m, &cfg);
        return st == TUNA_OK ? tuna_model_init_random(*m, 1) : st;
    }
    int bf16 = !strcmp(dtype, "bf16");
    st = tuna_model_load_quantized(m, dir, bf16 ? TUNA_QUANT_BF16 : TUNA_QUANT_STORED);
    if (st == TUNA_OK && tuna_model_linears_bf16(*m))
        *how = strcmp(dtype, "f32") && tuna_model_set_bf16(*m, 1) ? "bf16" : "bf16 weights, fp32 compute";
    return st;
}

/* bytes of the matrices one decode step multiplies (every 2-D weight but
 * the position table and an untied token embedding, read a row at a time) */
static double matrix_bytes(const tuna_model *m, int esz) {
    double n = 0;
    for (int i = 0; i < tuna_model_num_params(m); i++) {
        const tuna_param *p = tuna_model_param(m, i);
        int lookup = strstr(p->name, "wpe.") || ((strstr(p->name, "wte.") || strstr(p->name, "embed_tokens.")) && !tuna_model_config(m)->tie_embeddings);
        if (p->ndim == 2 && !lookup) n += (double)p->numel;
    }
    return n * esz;
}

/* --profile: per decode step, the GEMMs / GEMVs (with the rate at which they
 * read the weights), attention, bf16 rounding and the rest */
static void print_profile(const tuna_model *m, int esz) {
    prof_totals t;
    prof_get(&t);
    double k = t.steps ? 1e3 / (double)t.steps : 0, g = t.seconds[PROF_GEMM];
    printf("  per decode step: gemm %.2f ms (weights %.0f MB at %.1f GB/s), attention %.2f ms, convert %.2f ms, dequant %.2f ms, rest %.2f ms\n",
           g * k, matrix_bytes(m, esz) / 1e6, g > 0 ? matrix_bytes(m, esz) * (double)t.steps / g / 1e9 : 0.0, t.seconds[PROF_ATTENTION] * k,
           t.seconds[PROF_CONVERT] * k, t.seconds[PROF_DEQUANT] * k, prof_rest_seconds(&t) * k);
}

int main(int argc, char **argv) {
    const char *config = NULL, *dir = NULL, *dtype = "auto", *how;
    int prompt = 128, gen = 64, rows = 1, profile = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dtype = argv[++i];
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--new") && i + 1 < argc) gen = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) rows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--profile")) profile = 1;
        else { fprintf(stderr, "usage: bench_decode (--config FILE | --model DIR [--dtype auto|bf16|f32]) [--prompt N] [--new N] [--rows R] [--profile]\n"); return 2; }
    }
    if (!config == !dir || prompt < 1 || gen < 1 || rows < 1 || (strcmp(dtype, "auto") && strcmp(dtype, "bf16") && strcmp(dtype, "f32"))) {
        fprintf(stderr, "bench_decode: one of --config FILE or --model DIR required; --dtype auto, bf16 or f32\n");
        return 2;
    }
    tuna_model *m = NULL;
    tuna_decoder *d = NULL;
    if (load(&m, config, dir, dtype, &how) != TUNA_OK || tuna_decoder_create(&d, m, rows, prompt + gen, prompt > rows ? prompt : rows) != TUNA_OK) {
        fprintf(stderr, "bench_decode: %s\n", tuna_last_error());
        return 1;
    }
    int V = tuna_model_config(m)->V;
    int32_t *ids = malloc((size_t)prompt * sizeof *ids), *next = malloc((size_t)rows * sizeof *next);
    float *logits = malloc((size_t)rows * V * sizeof(float));
    int *rowv = malloc((size_t)rows * sizeof *rowv);
    for (int i = 0; i < prompt; i++) ids[i] = (int32_t)((i * 7919u + 13) % (unsigned)V);
    double t0 = now_s();
    for (int r = 0; r < rows; r++) {
        rowv[r] = r;
        if (tuna_decoder_step(d, &r, 1, ids, prompt, logits + (size_t)r * V) != TUNA_OK) { fprintf(stderr, "%s\n", tuna_last_error()); return 1; }
    }
    double tp = now_s() - t0;
    if (profile) prof_enable(1);
    t0 = now_s();
    for (int s = 0; s < gen; s++) {
        for (int r = 0; r < rows; r++) {
            const float *l = logits + (size_t)r * V;
            int b = 0;
            for (int v = 1; v < V; v++) if (l[v] > l[b]) b = v;
            next[r] = b;
        }
        if (s + 1 == gen) break;
        double ts = now_s();
        prof_step_begin();
        if (tuna_decoder_step(d, rowv, rows, next, 1, logits) != TUNA_OK) { fprintf(stderr, "%s\n", tuna_last_error()); return 1; }
        prof_step_end(now_s() - ts, rows);
    }
    double td = now_s() - t0;
    const char *core = openblas_get_corename(), *env = getenv("OPENBLAS_CORETYPE");
    printf("%s (%s): prompt %d x %d rows: prefill %.0f tokens/s; decode %d steps x %d rows: %.1f tokens/s (%.1f ms/step); OpenBLAS core %s (OPENBLAS_CORETYPE %s)\n",
           config ? config : dir, how, prompt, rows, prompt * rows / tp, gen - 1, rows, (gen - 1) * rows / td, 1e3 * td / (gen - 1), core, env ? env : "unset");
    if (profile) print_profile(m, strcmp(how, "fp32") ? 2 : 4);
    tuna_decoder_free(d);
    tuna_model_free(m);
    free(ids); free(next); free(logits); free(rowv);
    return 0;
}
