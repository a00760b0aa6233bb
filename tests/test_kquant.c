/* test_kquant.c — llama.cpp's k-quants in tuna's GGUF files, checked against
 * what llama.cpp itself wrote (tests/fixtures/kquant, made by
 * tools/kquant-check from node-llama-cpp's prebuilt llama.cpp):
 *  - blocks: 10 rows of 512 (weights, zeros, a constant, a huge outlier,
 *    tiny values with subnormal f16 scales, negative only, uniform, zero
 *    groups inside blocks, large values, rounding ties) quantized by tuna are
 *    byte for byte ggml_quantize_chunk's (no imatrix) for Q2_K..Q6_K, Q5_0,
 *    Q5_1 (and the older Q8_0 / Q4_0);
 *  - dequantization: tuna's floats of each row hash equal to ggml's to_float
 *    (FNV-1a 64), and the round-trip error of each type is within a budget
 *    set by its bits;
 *  - mixtures: every tensor's type in every k-quant file type is the one
 *    llama_model_quantize chose, for the shipped model (tied, GQA 3, rows of
 *    192 and 512: fallbacks), an 8-layer hidden-256 Llama (untied, GQA 4)
 *    and an 8-layer width-256 GPT-2 (fused attn_qkv, position_embd, tied);
 *  - export: the shipped model in each mixture: the file's tensor types and
 *    general.file_type as the table, logits near the source's, the as-stored
 *    load equal to the fp32 load, `tuna plan` counting the k-quant tensors
 *    at the fp32 the loader keeps;
 *  - crafted files: a Q4_K tensor whose rows are not a multiple of 256, or
 *    whose data runs past the end of the file, is one clear error; a block
 *    with an infinite scale is named. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "check_model.h"
#include "io/gguf.h"
#include "io/gguf_mix.h"
#include "tuna.h"
#include "tuna_gguf.h"

#define FIX "tests/fixtures/kquant"
#define NCOLS 512
#define NROWS 10

static char tmpdir[] = "/tmp/tuna_test_kquant_XXXXXX";
static float input[NROWS * NCOLS];

static const struct { int type; const char *name; double budget; } types[] = {
    /* relative RMS error budgets on Gaussian weights (row 0): about 1.3x what
     * each type measures, which shrinks ~2x per extra bit */
    {GGML_Q2_K, "q2_K", 0.45}, {GGML_Q3_K, "q3_K", 0.25}, {GGML_Q4_K, "q4_K", 0.12}, {GGML_Q5_K, "q5_K", 0.06},
    {GGML_Q6_K, "q6_K", 0.03}, {GGML_Q5_0, "q5_0", 0.07}, {GGML_Q5_1, "q5_1", 0.06}, {GGML_Q8_0, "q8_0", 0.01},
    {GGML_Q4_0, "q4_0", 0.13},
};
#define NTYPES (int)(sizeof types / sizeof *types)

static size_t read_file(const char *path, void *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void quantize(int type, const float *x, uint8_t *out) {
    if (type == GGML_Q8_0) gguf_quantize_q8_0(x, out, NCOLS);
    else if (type == GGML_Q4_0) gguf_quantize_q4_0(x, out, NCOLS);
    else kq_quantize(type, x, out, NCOLS);
}

static uint64_t fnv1a(const void *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 1099511628211ull;
    return h;
}

/* ggml's hash of row r of type name's dequantized floats (dequant.txt) */
static uint64_t ref_hash(const char *name, int r) {
    FILE *f = fopen(FIX "/dequant.txt", "r");
    char t[16];
    int row;
    unsigned long long h, found = 0;
    while (f && fscanf(f, "%15s %d %llx", t, &row, &h) == 3)
        if (!strcmp(t, name) && row == r) found = h;
    if (f) fclose(f);
    return found;
}

static double rel_rms(const float *a, const float *b, int n) {
    double e = 0, s = 0;
    for (int i = 0; i < n; i++) e += (double)(a[i] - b[i]) * (a[i] - b[i]), s += (double)b[i] * b[i];
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

/* every row of every type: bytes and dequantized floats as llama.cpp's */
static void test_blocks(void) {
    static uint8_t ref[NROWS * 2 * 272], got[2 * 272];
    static float y[NCOLS];
    for (int k = 0; k < NTYPES; k++) {
        size_t rb = gguf_type_size(types[k].type, NCOLS);
        char path[256];
        snprintf(path, sizeof path, FIX "/%s.bin", types[k].name);
        CHECKF(rb && read_file(path, ref, sizeof ref) == rb * NROWS, "%s: %zu bytes a row", path, rb);
        int bytes_equal = 0, floats_equal = 0;
        for (int r = 0; r < NROWS; r++) {
            quantize(types[k].type, input + r * NCOLS, got);
            int same = !memcmp(got, ref + r * rb, rb);
            if (!same) {
                size_t at = 0;
                while (got[at] == ref[r * rb + at]) at++;
                printf("# %s row %d: byte %zu is %02x, llama.cpp wrote %02x\n", types[k].name, r, at, got[at], ref[r * rb + at]);
            }
            bytes_equal += same;
            gguf_dequantize(types[k].type, ref + r * rb, 0, NCOLS, y, 0);
            floats_equal += fnv1a(y, sizeof y) == ref_hash(types[k].name, r);
            if (r == 0) {
                double e = rel_rms(y, input, NCOLS);
                printf("%s: weights' relative RMS error %.4f (budget %.2f)\n", types[k].name, e, types[k].budget);
                CHECKF(e <= types[k].budget, "%s: relative RMS error %.4f > %.2f", types[k].name, e, types[k].budget);
            }
            if (r == 1) CHECKF(fabsf(y[0]) == 0 && fabsf(y[NCOLS - 1]) == 0, "%s: zeros do not stay zero", types[k].name);
        }
        CHECKF(bytes_equal == NROWS, "%s: %d of %d rows byte-identical to llama.cpp's", types[k].name, bytes_equal, NROWS);
        CHECKF(floats_equal == NROWS, "%s: %d of %d rows dequantize as llama.cpp does", types[k].name, floats_equal, NROWS);
    }
}

/* absurd rows (values of 1e30: sums of squares overflow; of 1e-40: 1/d
 * overflows) quantize without undefined behaviour (the sanitizer tier's
 * concern), and the f32-subnormal row comes back finite and tiny */
static void test_absurd(void) {
    static float huge[NCOLS], tiny[NCOLS], y[NCOLS];
    static uint8_t q[2 * 272];
    for (int j = 0; j < NCOLS; j++) huge[j] = (j % 2 ? 1e30f : -3e29f) * (float)(j % 5), tiny[j] = 1e-40f * (float)(j % 7 - 3);
    for (int k = 0; k < NTYPES; k++) {
        if (types[k].type == GGML_Q8_0 || types[k].type == GGML_Q4_0) continue;
        kq_quantize(types[k].type, huge, q, NCOLS);
        kq_quantize(types[k].type, tiny, q, NCOLS);
        gguf_dequantize(types[k].type, q, 0, NCOLS, y, 0);
        int ok = 1;
        for (int j = 0; j < NCOLS; j++) ok &= isfinite(y[j]) && fabsf(y[j]) < 1e-30f;
        CHECKF(ok, "%s: a row of 1e-40 values does not come back finite and tiny", types[k].name);
    }
}

/* lines "<mixture> <tensor> <TYPE> <ne0> <ndim>" of a fixture table, checked
 * against gguf_mix_type; "<mixture> # general.file_type N" against the
 * mixture's number */
static void test_mix_table(const char *file, gguf_mix_model model) {
    char path[256], line[512], mix[32], name[160], type[16];
    long long ne0;
    int ndim, lines = 0, equal = 0;
    snprintf(path, sizeof path, FIX "/%s", file);
    FILE *f = fopen(path, "r");
    CHECKF(f != NULL, "%s: cannot open", path);
    while (f && fgets(line, sizeof line, f)) {
        unsigned ft;
        if (sscanf(line, "%31s # general.file_type %u", mix, &ft) == 2) {
            CHECKF(gguf_mix_find(mix) && (unsigned)gguf_mix_find(mix)->ftype == ft, "%s: %s is file type %u", file, mix, ft);
            continue;
        }
        if (sscanf(line, "%31s %159s %15s %lld %d", mix, name, type, &ne0, &ndim) != 5) continue;
        const gguf_mix *x = gguf_mix_find(mix);
        const char *ours = x ? gguf_type_name(gguf_mix_type(x, &model, name, ndim, ne0)) : "?";
        lines++;
        if (!strcmp(ours, type)) equal++;
        else printf("# %s %s %s: tuna %s, llama.cpp %s\n", file, mix, name, ours, type);
    }
    if (f) fclose(f);
    printf("%s: %d of %d tensor types as llama.cpp chose\n", file, equal, lines);
    CHECKF(lines > 400 && equal == lines, "%s: %d of %d tensor types as llama.cpp's", file, equal, lines);
}

/* the type each tensor of mixture mix has in the shipped model's table */
static int table_type(const char *mix, const char *name) {
    FILE *f = fopen(FIX "/mix_stories.txt", "r");
    char line[512], m[32], n[160], t[16];
    int found = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "%31s %159s %15s", m, n, t) == 3 && !strcmp(m, mix) && !strcmp(n, name))
            for (int k = 0; k < 16; k++)
                if (!strcmp(gguf_type_name(k), t)) found = k;
    if (f) fclose(f);
    return found;
}

/* the file's tensors have the table's types; general.file_type the mixture's */
static void check_file_types(const char *path, const char *mix) {
    gguf_file f;
    if (gguf_open(&f, path) != TUNA_OK) { CHECKF(0, "%s: %s", path, tuna_last_error()); return; }
    int equal = 0;
    for (size_t i = 0; i < f.n_tensors; i++) equal += table_type(mix, f.tensors[i].name) == (int)f.tensors[i].type;
    CHECKF(equal == (int)f.n_tensors, "%s: %d of %zu tensor types as llama.cpp's", mix, equal, f.n_tensors);
    uint64_t ft = 0;
    CHECK(gguf_get_u64(&f, "general.file_type", &ft) == 0 && ft == (uint64_t)gguf_mix_find(mix)->ftype);
    gguf_close(&f);
}

/* `tuna plan generate` counts a k-quant (or Q5_0/Q5_1) tensor at fp32, as
 * the loader keeps it, the others at their bytes in the file */
static void check_plan(const char *path) {
    gguf_file f;
    if (!test_need_cli("tuna plan") || gguf_open(&f, path) != TUNA_OK) return;
    double want = 0;
    for (size_t i = 0; i < f.n_tensors; i++)
        want += kq_block_values((int)f.tensors[i].type) ? 4.0 * f.tensors[i].numel : (double)f.tensors[i].nbytes;
    gguf_close(&f);
    char cmd[1200], out[4096] = "";
    snprintf(cmd, sizeof cmd, "%s plan generate --model %s --json", test_cli, path);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    if (p) pclose(p);
    out[n] = 0;
    const char *at = strstr(out, "\"frozen_bytes\":");
    double got = at ? atof(at + 15) : -1;
    printf("plan generate: frozen %.0f bytes, %.0f expected\n", got, want);
    CHECKF(got == want, "tuna plan's frozen bytes %.0f, the loader keeps %.0f", got, want);
}

/* the shipped model in each mixture: types, logits, as-stored = fp32 load */
static void test_export(void) {
    static const char *mixes[] = {"q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k"};
    /* about 1.5x what each measures (deterministic; the shipped model's rows
     * of 192 fall back to Q4_0 / Q5_0 / Q5_1 / Q8_0, so only ffn_down, rows of
     * 512, holds the base type) */
    static const double budget[] = {0.16, 0.16, 0.1, 0.08, 0.065, 0.06, 0.06, 0.06, 0.015};
    const char *src = "models/tuna-stories";
    tuna_model *m = NULL;
    if (!test_need(src, "the shipped model")) return;
    CHECKF(tuna_model_load(&m, src) == TUNA_OK, "%s: %s", src, tuna_last_error());
    if (!m) return;
    int T = 12, V = tuna_model_config(m)->V;
    int32_t ids[12];
    for (int i = 0; i < T; i++) ids[i] = (i * 131 + 7) % V;
    float *ref = malloc((size_t)T * V * 4), *got = malloc((size_t)T * V * 4), *stored = malloc((size_t)T * V * 4);
    CHECK(test_logits(m, ids, T, ref));
    for (int k = 0; k < 9; k++) {
        char path[400];
        snprintf(path, sizeof path, "%s/stories_%s.gguf", tmpdir, mixes[k]);
        tuna_gguf_meta meta = {src, NULL, "stories", -1, -1, -1, -1, 0, 0};
        CHECKF(tuna_export_gguf(m, &meta, mixes[k], path) == TUNA_OK, "%s: %s", mixes[k], tuna_last_error());
        check_file_types(path, mixes[k]);
        if (!strcmp(mixes[k], "q4_k_m")) check_plan(path);
        tuna_model *r = NULL, *s = NULL;
        CHECKF(tuna_model_load(&r, path) == TUNA_OK, "%s: load: %s", mixes[k], tuna_last_error());
        CHECKF(tuna_model_load_quantized(&s, path, TUNA_QUANT_STORED) == TUNA_OK, "%s: stored: %s", mixes[k], tuna_last_error());
        if (r && s && test_logits(r, ids, T, got) && test_logits(s, ids, T, stored)) {
            double e = rel_l2(got, ref, (long)T * V);
            printf("stories %-6s: logits rel %.3g (budget %.2g)\n", mixes[k], e, budget[k]);
            CHECKF(e <= budget[k], "%s: logits rel %.3g > %.2g", mixes[k], e, budget[k]);
            CHECKF(!memcmp(got, stored, (size_t)T * V * 4), "%s: the as-stored load differs from the fp32 load", mixes[k]);
        } else CHECK(0);
        tuna_model_free(r);
        tuna_model_free(s);
    }
    free(ref);
    free(got);
    free(stored);
    tuna_model_free(m);
}

static void put_le(uint8_t *b, size_t *p, uint64_t v, int n) {
    memcpy(b + *p, &v, (size_t)n); /* little-endian hosts */
    *p += (size_t)n;
}

/* a GGUF with one tensor "w" of ne {ne0, 1}, type, and data_bytes of data */
static size_t craft(uint8_t *b, uint64_t ne0, uint32_t type, size_t data_bytes) {
    size_t p = 4;
    memcpy(b, "GGUF", 4);
    put_le(b, &p, 3, 4), put_le(b, &p, 1, 8), put_le(b, &p, 0, 8);     /* version, tensors, key/values */
    put_le(b, &p, 1, 8), b[p++] = 'w';                                 /* name */
    put_le(b, &p, 2, 4), put_le(b, &p, ne0, 8), put_le(b, &p, 1, 8);   /* dims */
    put_le(b, &p, type, 4), put_le(b, &p, 0, 8);                       /* type, offset */
    while (p % 32) b[p++] = 0;
    memset(b + p, 0, data_bytes);
    return p + data_bytes;
}

static void test_crafted(void) {
    static uint8_t b[4096];
    gguf_file f;
    size_t n = craft(b, 100, GGML_Q4_K, 144);
    tuna_status st = gguf_parse(&f, b, n, "bad.gguf");
    const char *e = tuna_last_error();
    printf("rows of 100: %s\n", e);
    CHECKF(st != TUNA_OK && strstr(e, "bad.gguf") && strstr(e, "tensor w") && strstr(e, "Q4_K") && strstr(e, "blocks of 256") &&
               strstr(e, "have 100"),
           "Q4_K rows of 100: %s", e);
    n = craft(b, 512, GGML_Q6_K, 300); /* two blocks need 420 bytes */
    st = gguf_parse(&f, b, n, "short.gguf");
    e = tuna_last_error();
    printf("short data: %s\n", e);
    CHECKF(st != TUNA_OK && strstr(e, "short.gguf") && strstr(e, "tensor w") && strstr(e, "420 bytes") && strstr(e, "past the end"),
           "Q6_K data past the end: %s", e);
    n = craft(b, 512, GGML_Q6_K, 420);
    st = gguf_parse(&f, b, n, "good.gguf");
    CHECKF(st == TUNA_OK && f.n_tensors == 1 && f.tensors[0].nbytes == 420, "a whole Q6_K tensor: %s", tuna_last_error());
    if (st != TUNA_OK) return;
    CHECK(gguf_check_finite(&f, &f.tensors[0]) == TUNA_OK);
    /* the second block's scale d (its last 2 bytes) made +inf, one code made nonzero */
    uint8_t *blk = b + f.tensors[0].offset + 210;
    blk[0] = 1, blk[192] = 1, blk[208] = 0x00, blk[209] = 0x7c;
    st = gguf_check_finite(&f, &f.tensors[0]);
    e = tuna_last_error();
    printf("infinite scale: %s\n", e);
    CHECKF(st != TUNA_OK && strstr(e, "tensor 'w'") && strstr(e, "block 1"), "a Q6_K block with an infinite scale: %s", e);
    static float y[512];
    CHECK(gguf_tensor_to_f32(&f, &f.tensors[0], y) != TUNA_OK);
    gguf_close(&f);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (!mkdtemp(tmpdir)) return 1;
    if (read_file(FIX "/input.f32", input, sizeof input) != sizeof input) {
        CHECKF(0, "%s/input.f32: missing or short", FIX);
        return test_done();
    }
    test_blocks();
    test_absurd();
    CHECK(gguf_mix_find("Q4_K_M") && gguf_mix_find("Q4_K_M") == gguf_mix_find("q4_k_m") && !gguf_mix_find("q4_k"));
    test_mix_table("mix_stories.txt", (gguf_mix_model){.n_layer = 6, .n_gqa = 3, .tied = 1});
    test_mix_table("mix_llama256.txt", (gguf_mix_model){.n_layer = 8, .n_gqa = 4, .tied = 0});
    test_mix_table("mix_gpt2.txt", (gguf_mix_model){.n_layer = 8, .n_gqa = 1, .tied = 1});
    test_export();
    test_crafted();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) {}
    return test_done();
}
