/* bench_decode.c — generation speed with the KV cache: prompt processing
 * (prefill) and decoding tokens/s of a model shape with random weights, one
 * row and several rows decoded together.
 *   build/bench/bench_decode --config FILE [--prompt N] [--new N] [--rows R]
 * Prefill runs the R prompts of N tokens row by row; decode steps then feed
 * one token to every row per call (the batched path of evaluation). Greedy
 * next token, so the work is the model's, not the sampler's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tuna.h"
#include "tuna_infer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *config = NULL;
    int prompt = 128, gen = 64, rows = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--new") && i + 1 < argc) gen = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) rows = atoi(argv[++i]);
        else { fprintf(stderr, "usage: bench_decode --config FILE [--prompt N] [--new N] [--rows R]\n"); return 2; }
    }
    if (!config || prompt < 1 || gen < 1 || rows < 1) { fprintf(stderr, "bench_decode: --config FILE required\n"); return 2; }
    tuna_config cfg;
    tuna_model *m = NULL;
    tuna_decoder *d = NULL;
    if (tuna_config_load(&cfg, config) != TUNA_OK || tuna_model_create(&m, &cfg) != TUNA_OK ||
        tuna_model_init_random(m, 1) != TUNA_OK || tuna_decoder_create(&d, m, rows, prompt + gen, prompt > rows ? prompt : rows) != TUNA_OK) {
        fprintf(stderr, "bench_decode: %s\n", tuna_last_error());
        return 1;
    }
    int V = cfg.V;
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
    t0 = now_s();
    for (int s = 0; s < gen; s++) {
        for (int r = 0; r < rows; r++) {
            const float *l = logits + (size_t)r * V;
            int b = 0;
            for (int v = 1; v < V; v++) if (l[v] > l[b]) b = v;
            next[r] = b;
        }
        if (s + 1 < gen && tuna_decoder_step(d, rowv, rows, next, 1, logits) != TUNA_OK) { fprintf(stderr, "%s\n", tuna_last_error()); return 1; }
    }
    double td = now_s() - t0;
    const char *core = getenv("OPENBLAS_CORETYPE");
    printf("%s: prompt %d x %d rows: prefill %.0f tokens/s; decode %d steps x %d rows: %.1f tokens/s (%.1f ms/step); OpenBLAS core %s\n",
           config, prompt, rows, prompt * rows / tp, gen - 1, rows, (gen - 1) * rows / td, 1e3 * td / (gen - 1), core ? core : "native");
    tuna_decoder_free(d);
    tuna_model_free(m);
    free(ids); free(next); free(logits); free(rowv);
    return 0;
}
