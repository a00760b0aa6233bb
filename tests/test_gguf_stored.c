/* test_gguf_stored.c — GGUF files loaded as stored (TUNA_QUANT_STORED): the
 * shipped model (Llama, tied, GQA) and the Llama / GPT-2 fixtures exported
 * as q8_0, q4_0 and f16, loaded as stored and in fp32, must give the same
 * logits, fingerprint and saved file; the stored model's own and mapped
 * weight bytes are counted exactly (2-D tensors mapped in the file's type,
 * Llama's q/k weights with a row map of one int32 per row, 1-D tensors
 * fp32), tensors point into the file's mapping, and a non-finite Q8_0 scale
 * or F16 value is refused with the tensor named.
 *
 * Tolerance: logits are compared bit for bit. A stored tensor dequantizes
 * with the code the fp32 load uses, and a weight's tile is the whole weight
 * in these models (at most LINEAR_TILE values), so each GEMM sees the same
 * fp32 values with the same shapes as the fp32 load's. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <math.h>

#include "check.h"
#include "tuna_infer.h"
#include "check_model.h"
#include "io/gguf.h"
#include "model_probe.h"
#include "train/resume_check.h"
#include "tuna.h"
#include "tuna_gguf.h"
#include "tuna_peft.h"

static char tmpdir[600];

/* bytes of a 2-D tensor of n values whose rows hold cols values, as the
 * exporter writes type (a row that is not whole blocks falls back to F16) */
static size_t type_bytes(const char *type, int64_t n, int64_t cols) {
    if (!strcmp(type, "f16") || cols % 32) return (size_t)n * 2;
    return (size_t)(n / 32) * (!strcmp(type, "q8_0") ? 34 : 18);
}

/* Llama's attn_q / attn_k weights read through a row map */
static int has_row_map(const tuna_config *c, const char *name) {
    return c->family != TUNA_FAMILY_GPT2 && strcmp(c->model_type, "qwen2") != 0 &&
           (strstr(name, "q_proj.weight") || strstr(name, "k_proj.weight"));
}

/* the bytes a stored load of a `type` export must own and map */
static void expected_bytes(const tuna_model *m, const char *type, size_t *own, size_t *mapped) {
    *own = *mapped = 0;
    const tuna_config *c = tuna_model_config(m);
    for (int i = 0; i < tuna_model_num_params(m); i++) {
        const tuna_param *p = tuna_model_param(m, i);
        if (p->ndim == 1) { *own += (size_t)p->numel * 4; continue; }
        int64_t rows = p->transposed ? p->shape[1] : p->shape[0];
        *mapped += type_bytes(type, p->numel, p->numel / rows);
        if (has_row_map(c, p->name)) *own += (size_t)rows * 4;
    }
}

/* every stored tensor lies in the mapping, none is a copy */
static int all_in_mapping(const tuna_model *m) {
    int inside = 1, n = 0;
    for (int i = 0; i < tuna_model_num_params(m); i++) {
        const void *data;
        int owned;
        if (!probe_param_stored(m, i, &data, &owned)) continue;
        inside &= !owned && probe_in_mapping(m, data);
        n++;
    }
    return inside && n > 0;
}

/* the model.safetensors tuna_model_save writes for m (fp32), into buf */
static long saved_file(tuna_model *m, const char *dir, char **buf) {
    char p[1200];
    *buf = NULL;
    if (tuna_model_save(m, dir, TUNA_DTYPE_F32) != TUNA_OK) return -1;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    FILE *f = fopen(p, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    *buf = malloc((size_t)n);
    if (!*buf || fread(*buf, 1, (size_t)n, f) != (size_t)n) n = -1;
    fclose(f);
    return n;
}

/* the stored load and the fp32 load of the same file save the same bytes */
static void check_save(tuna_model *f, tuna_model *s, const char *what) {
    char d1[800], d2[800], *a, *b;
    snprintf(d1, sizeof d1, "%s/save_fp32", tmpdir);
    snprintf(d2, sizeof d2, "%s/save_stored", tmpdir);
    long na = saved_file(f, d1, &a), nb = saved_file(s, d2, &b);
    CHECKF(na > 0 && na == nb && !memcmp(a, b, (size_t)na), "%s: saved files differ (%ld vs %ld bytes): %s", what, na, nb,
           tuna_last_error());
    free(a);
    free(b);
}

/* exports src as type, loads it both ways and compares */
/* a decoder over each model: the prompt, then one token at a time (few rows:
 * the 16-bit decoding product, which must follow a permuted tensor's row
 * map); the last logits of each step agree within float summation order */
static void check_decode(tuna_model *f, tuna_model *s, const int32_t *ids, int T, const char *what) {
    tuna_decoder *df = NULL, *ds = NULL;
    int V = tuna_model_config(f)->V, row = 0;
    float *a = malloc((size_t)V * 4), *b = malloc((size_t)V * 4);
    int ok = a && b && tuna_decoder_create(&df, f, 1, T, T) == TUNA_OK && tuna_decoder_create(&ds, s, 1, T, T) == TUNA_OK;
    double worst = 0;
    for (int t = 0; ok && t < T; t += t < 4 ? 4 : 1) {
        int n = t < 4 ? 4 : 1;
        ok = tuna_decoder_step(df, &row, 1, ids + t, n, a) == TUNA_OK && tuna_decoder_step(ds, &row, 1, ids + t, n, b) == TUNA_OK;
        if (ok) worst = fmax(worst, rel_l2(b, a, V));
    }
    CHECKF(ok && worst < 1e-5, "%s: decoding logits of the stored load differ (rel %.3g)", what, worst);
    tuna_decoder_free(df);
    tuna_decoder_free(ds);
    free(a);
    free(b);
}

static void check_type(tuna_model *src, const char *label, const char *tokdir, const char *type) {
    char path[800], what[96];
    snprintf(path, sizeof path, "%s/%s_%s.gguf", tmpdir, label, type);
    snprintf(what, sizeof what, "%s %s", label, type);
    tuna_gguf_meta meta = {tokdir, NULL, label, -1, -1, -1, -1, 0, 0};
    CHECKF(tuna_export_gguf(src, &meta, type, path) == TUNA_OK, "%s: export: %s", what, tuna_last_error());
    tuna_model *f = NULL, *s = NULL;
    CHECKF(tuna_model_load(&f, path) == TUNA_OK, "%s: fp32 load: %s", what, tuna_last_error());
    CHECKF(tuna_model_load_quantized(&s, path, TUNA_QUANT_STORED) == TUNA_OK, "%s: stored load: %s", what, tuna_last_error());
    if (!f || !s) { tuna_model_free(f); tuna_model_free(s); return; }
    const tuna_config *c = tuna_model_config(f);
    int T = 12;
    int32_t ids[12];
    for (int i = 0; i < T; i++) ids[i] = (i * 131 + 7) % c->V;
    float *a = malloc((size_t)T * c->V * 4), *b = malloc((size_t)T * c->V * 4);
    int ran = a && b && test_logits(f, ids, T, a) && test_logits(s, ids, T, b);
    CHECKF(ran && !memcmp(a, b, (size_t)T * c->V * 4), "%s: logits of the stored load differ (rel %.3g)", what,
           ran ? rel_l2(b, a, (long)T * c->V) : -1.0);
    free(a);
    free(b);
    check_decode(f, s, ids, T, what);
    CHECKF(resume_model_fingerprint(f) == resume_model_fingerprint(s), "%s: fingerprints differ", what);
    size_t own, mapped, want_own, want_mapped, own32, mapped32;
    probe_weight_bytes(s, &own, &mapped);
    probe_weight_bytes(f, &own32, &mapped32);
    expected_bytes(s, type, &want_own, &want_mapped);
    CHECKF(own == want_own && mapped == want_mapped && mapped32 == 0, "%s: stored bytes own %zu mapped %zu, expected %zu and %zu",
           what, own, mapped, want_own, want_mapped);
    printf("%s: logits equal; weights fp32 %zu bytes, as stored %zu own + %zu mapped (%.2fx smaller)\n", what, own32, own,
           mapped, (double)own32 / (double)(own + mapped));
    CHECKF(all_in_mapping(s), "%s: stored tensors point into the file's mapping", what);
    check_save(f, s, what);
    tuna_model_free(f);
    tuna_model_free(s);
}

static void check_model(const char *dir, const char *label, const char *tokdir) {
    tuna_model *m = NULL;
    if (!test_need(dir, label)) return;
    CHECKF(tuna_model_load(&m, dir) == TUNA_OK, "%s: %s", dir, tuna_last_error());
    if (!m) return;
    const char *types[] = {"q8_0", "q4_0", "f16"};
    for (int k = 0; k < 3; k++) check_type(m, label, tokdir, types[k]);
    tuna_model_free(m);
}

/* writes the f16 bits h at byte `at` of tensor `name`'s data in path */
static int patch_half(const char *path, const char *name, uint64_t at, uint16_t h) {
    gguf_file g;
    if (gguf_open(&g, path) != TUNA_OK) return 0;
    const gguf_tensor *t = gguf_find_tensor(&g, name);
    long off = t ? (long)(t->offset + at) : -1;
    gguf_close(&g);
    FILE *f = off >= 0 ? fopen(path, "r+b") : NULL;
    if (!f) return 0;
    int ok = fseek(f, off, SEEK_SET) == 0 && fputc(h & 0xff, f) != EOF && fputc(h >> 8, f) != EOF;
    return fclose(f) == 0 && ok;
}

/* a NaN scale (Q8_0 block 3) or an f16 infinity (element 5) is refused by the
 * stored load, the tensor named */
static void check_nonfinite(void) {
    tuna_model *m = NULL;
    if (tuna_model_load(&m, "tests/fixtures/parity/llama_gqa") != TUNA_OK) { CHECK(0); return; }
    const char *types[] = {"q8_0", "f16"}, *names[] = {"blk.1.ffn_down.weight", "blk.0.attn_k.weight"};
    const uint64_t at[] = {3 * 34, 5 * 2};
    const uint16_t bits[] = {0x7e00, 0xfc00};
    const char *want[] = {"tensor 'blk.1.ffn_down.weight' has a NaN scale in block 3", "tensor 'blk.0.attn_k.weight' holds -inf at element 5"};
    for (int k = 0; k < 2; k++) {
        char path[800];
        snprintf(path, sizeof path, "%s/bad_%s.gguf", tmpdir, types[k]);
        tuna_gguf_meta meta = {NULL, NULL, "bad", -1, -1, -1, -1, 0, 0};
        CHECK(tuna_export_gguf(m, &meta, types[k], path) == TUNA_OK);
        CHECK(patch_half(path, names[k], at[k], bits[k]));
        tuna_model *s = NULL;
        tuna_status st = tuna_model_load_quantized(&s, path, TUNA_QUANT_STORED);
        CHECKF(st == TUNA_ERR_FORMAT && strstr(tuna_last_error(), path) && strstr(tuna_last_error(), want[k]),
               "%s: status %d, '%s'", types[k], st, tuna_last_error());
        tuna_model_free(s);
    }
    tuna_model_free(m);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (test_tmpdir(tmpdir, sizeof tmpdir, "gguf_stored")) return 1;
    check_model("tests/fixtures/parity/llama_gqa", "llama_gqa", NULL);
    check_model("tests/fixtures/parity/gpt2", "gpt2", NULL);
    check_model("models/tuna-stories", "stories", "models/tuna-stories");
    check_nonfinite();
    test_rmdir(tmpdir);
    return test_done();
}
