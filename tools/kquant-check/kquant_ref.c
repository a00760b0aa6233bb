/* kquant_ref.c — asks llama.cpp itself (the prebuilt libggml-base / libllama
 * that node-llama-cpp installs, see README.md) for the bytes tuna's k-quant
 * code must reproduce. Not part of tuna's build.
 *   kquant_ref input OUT.f32                 the test rows (fixed generator)
 *   kquant_ref rows IN.f32 NCOLS OUTDIR      ggml_quantize_chunk (no imatrix:
 *                                            quantize_row_*_ref) of every row
 *                                            to OUTDIR/<type>.bin, and the
 *                                            FNV-1a 64 hash of each row's
 *                                            dequantized floats (ggml's
 *                                            to_float) to OUTDIR/dequant.txt
 *   kquant_ref quantize IN.gguf OUT.gguf FTYPE   llama_model_quantize, as
 *                                            llama-quantize IN OUT FTYPE */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "llama.h"

#define NCOLS 512
#define NROWS 10

/* a fixed xorshift generator and a sum-of-uniforms normal: the same rows on
 * every machine */
static uint64_t state = 0x9E3779B97F4A7C15ull;
static double uniform(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (double)(state >> 11) / 9007199254740992.0;
}
static float normal(void) {
    double s = 0;
    for (int i = 0; i < 12; i++) s += uniform();
    return (float)(s - 6.0);
}

/* row r of the test input: typical weights and the edge cases */
static void make_row(int r, float *x) {
    for (int j = 0; j < NCOLS; j++) {
        float g = normal();
        switch (r) {
        case 0: x[j] = 0.02f * g; break;                          /* weights */
        case 1: x[j] = 0; break;                                  /* zeros */
        case 2: x[j] = 0.5f; break;                               /* constant */
        case 3: x[j] = j == 37 ? 100.0f : 0.02f * g; break;       /* a huge outlier */
        case 4: x[j] = 1e-7f * g; break;                          /* tiny: subnormal f16 scales */
        case 5: x[j] = -fabsf(0.05f * g); break;                  /* negative only */
        case 6: x[j] = (float)(2 * uniform() - 1); break;         /* uniform */
        case 7: x[j] = (j / 16) % 3 == 0 ? 0 : 0.1f * g; break;   /* zero groups inside blocks */
        case 8: x[j] = 3000.0f * g; break;                        /* large */
        default: x[j] = 0.25f * (float)(j % 16 - 8); break;       /* rounding ties */
        }
    }
}

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) { perror(path); return 1; }
    return 0;
}

/* FNV-1a, 64 bits, of n bytes */
static uint64_t fnv1a(const void *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 1099511628211ull;
    return h;
}

/* each row of q (nrows of ncols, type t) dequantized by ggml, hashed */
static void hash_rows(FILE *out, const char *name, enum ggml_type t, const void *q, int64_t nrows, int64_t ncols) {
    float *y = malloc((size_t)ncols * sizeof *y);
    size_t rb = ggml_row_size(t, ncols);
    for (int64_t r = 0; r < nrows; r++) {
        ggml_get_type_traits(t)->to_float((const char *)q + r * rb, y, ncols);
        fprintf(out, "%s %lld %016llx\n", name, (long long)r, (unsigned long long)fnv1a(y, (size_t)ncols * sizeof *y));
    }
    free(y);
}

static int cmd_input(const char *out) {
    static float x[NROWS * NCOLS];
    for (int r = 0; r < NROWS; r++) make_row(r, x + r * NCOLS);
    return write_file(out, x, sizeof x);
}

static int cmd_rows(const char *in, int64_t ncols, const char *dir) {
    static const struct { enum ggml_type t; const char *name; } types[] = {
        {GGML_TYPE_Q2_K, "q2_K"}, {GGML_TYPE_Q3_K, "q3_K"}, {GGML_TYPE_Q4_K, "q4_K"}, {GGML_TYPE_Q5_K, "q5_K"},
        {GGML_TYPE_Q6_K, "q6_K"}, {GGML_TYPE_Q5_0, "q5_0"}, {GGML_TYPE_Q5_1, "q5_1"}, {GGML_TYPE_Q8_0, "q8_0"},
        {GGML_TYPE_Q4_0, "q4_0"}};
    FILE *f = fopen(in, "rb");
    if (!f) { perror(in); return 1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f) / 4;
    fseek(f, 0, SEEK_SET);
    float *x = malloc((size_t)n * 4);
    if (!x || fread(x, 4, (size_t)n, f) != (size_t)n) { fprintf(stderr, "%s: short read\n", in); return 1; }
    fclose(f);
    int64_t nrows = n / ncols;
    char path[4096];
    snprintf(path, sizeof path, "%s/dequant.txt", dir);
    FILE *hashes = fopen(path, "w");
    if (!hashes) { perror(path); return 1; }
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        size_t bytes = ggml_row_size(types[i].t, ncols) * (size_t)nrows;
        void *q = calloc(1, bytes);
        size_t got = ggml_quantize_chunk(types[i].t, x, q, 0, nrows, ncols, NULL);
        snprintf(path, sizeof path, "%s/%s.bin", dir, types[i].name);
        if (got != bytes || write_file(path, q, bytes)) return 1;
        hash_rows(hashes, types[i].name, types[i].t, q, nrows, ncols);
        printf("%s: %lld rows of %lld -> %zu bytes\n", path, (long long)nrows, (long long)ncols, bytes);
        free(q);
    }
    free(x);
    return fclose(hashes) ? 1 : 0;
}

static int cmd_quantize(const char *in, const char *out, int ftype) {
    llama_backend_init();
    struct llama_model_quantize_params p = llama_model_quantize_default_params();
    p.ftype = (enum llama_ftype)ftype;
    p.nthread = 1;
    uint32_t rc = llama_model_quantize(in, out, &p);
    llama_backend_free();
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "input")) return cmd_input(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "rows")) return cmd_rows(argv[2], atoll(argv[3]), argv[4]);
    if (argc == 5 && !strcmp(argv[1], "quantize")) return cmd_quantize(argv[2], argv[3], atoi(argv[4]));
    fprintf(stderr, "usage: kquant_ref input OUT.f32 | rows IN.f32 NCOLS OUTDIR | quantize IN.gguf OUT.gguf FTYPE\n");
    return 2;
}
