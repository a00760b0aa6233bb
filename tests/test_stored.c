/* test_stored.c — weights kept in their stored precision (TUNA_QUANT_STORED):
 * bf16 and f16 copies of the test models (GPT-2 and Llama, tied and untied,
 * sharded), loaded as stored and in fp32, must give the same logits, loss
 * curve of a LoRA run, fingerprint and saved / merged files; the stored
 * model's own weight bytes are counted exactly, tensors used in place point
 * into the file's mapping, a share uses the base's stored tensors, a stored
 * model refuses full fine-tuning, non-finite bf16 weights are named, and bad
 * checkpoints (a dtype tuna does not compute from) fail on their headers.
 *
 * Tolerance: logits and losses are compared bit for bit. bf16 and f16 convert
 * to fp32 exactly, and a stored weight's tile is the whole weight in these
 * models (at most LINEAR_TILE values), so the GEMM runs on the same fp32
 * values with the same shapes as the fp32 load's. */
#include <jansson.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model_probe.h"
#include "train/resume_check.h"
#include "tuna.h"
#include "tuna_infer.h"
#include "tuna_peft.h"

static char tmp[512];

/* tokens 0..T-1 of a fixed pattern, labels the same ids */
static void make_batch(tuna_batch *bt, int32_t *ids, int B, int T, int V) {
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 7 + 3) % V);
    *bt = (tuna_batch){B, T, ids, ids, NULL, NULL, NULL};
}

/* logits of one eval forward into a new buffer (NULL on failure), loss in *loss */
static float *eval_logits(tuna_model *m, double *loss) {
    const tuna_config *c = tuna_model_config(m);
    int B = 2, T = 12;
    int32_t ids[24];
    tuna_batch bt;
    make_batch(&bt, ids, B, T, c->V);
    tuna_loss l;
    if (tuna_model_prepare(m, B, T, TUNA_MODE_EVAL) != TUNA_OK || tuna_model_forward(m, &bt, &l) != TUNA_OK) return NULL;
    float *out = malloc((size_t)B * T * c->V * sizeof(float));
    if (out) memcpy(out, tuna_model_logits(m), (size_t)B * T * c->V * sizeof(float));
    *loss = l.loss_sum;
    return out;
}

/* the bytes a stored load must own and map: fp32 1-D tensors owned; 2-D ones
 * in the file's dtype, owned when transposed (GPT-2's Conv1D), else mapped */
static void expected_bytes(const tuna_model *m, size_t esz, size_t *own, size_t *mapped) {
    *own = *mapped = 0;
    for (int i = 0; i < tuna_model_num_params(m); i++) {
        const tuna_param *p = tuna_model_param(m, i);
        if (p->ndim == 1) *own += (size_t)p->numel * 4;
        else if (p->transposed) *own += (size_t)p->numel * esz;
        else *mapped += (size_t)p->numel * esz;
    }
}

/* fp32 and as-stored loads of dir: same logits; exact byte counts; pointers */
static void check_folder(const char *what, const char *dir, size_t esz) {
    tuna_model *f = NULL, *s = NULL;
    CHECKF(tuna_model_load(&f, dir) == TUNA_OK, "%s: fp32 load: %s", what, tuna_last_error());
    CHECKF(tuna_model_load_quantized(&s, dir, TUNA_QUANT_STORED) == TUNA_OK, "%s: stored load: %s", what, tuna_last_error());
    if (!f || !s) { tuna_model_free(f); tuna_model_free(s); return; }
    double lf = 0, ls = 0;
    float *a = eval_logits(f, &lf), *b = eval_logits(s, &ls);
    const tuna_config *c = tuna_model_config(f);
    CHECKF(a && b && !memcmp(a, b, (size_t)24 * c->V * sizeof(float)) && lf == ls, "%s: logits of the stored load differ (loss %.9g vs %.9g)",
           what, ls, lf);
    free(a);
    free(b);
    size_t own, mapped, want_own, want_mapped, own32, mapped32;
    probe_weight_bytes(s, &own, &mapped);
    probe_weight_bytes(f, &own32, &mapped32);
    expected_bytes(s, esz, &want_own, &want_mapped);
    CHECKF(own == want_own && mapped == want_mapped && mapped32 == 0, "%s: stored bytes own %zu mapped %zu, expected %zu and %zu", what, own,
           mapped, want_own, want_mapped);
    CHECKF(own + mapped < own32 * (esz + 1) / 4 + 4096, "%s: stored %zu + %zu bytes vs fp32 %zu", what, own, mapped, own32);
    printf("%s: logits equal (loss %.6f); weights fp32 %zu bytes, as stored %zu own + %zu mapped\n", what, ls / 24, own32, own, mapped);
    int inside = 1, n2 = 0;
    for (int i = 0; i < tuna_model_num_params(s); i++) {
        const void *data;
        int owned;
        if (!probe_param_stored(s, i, &data, &owned)) continue;
        int in_map = probe_in_mapping(s, data);
        inside &= tuna_model_param(s, i)->transposed ? owned && !in_map : !owned && in_map;
        n2++;
    }
    CHECKF(inside && n2 > 0, "%s: tensors used in place point into the mapping, copies do not", what);
    tuna_model_free(f);
    tuna_model_free(s);
}

/* dst = a bf16 or f16 copy of src, sharded in about 3 files */
static int copy_as(const char *src, const char *dst, tuna_dtype dt) {
    tuna_model *m = NULL;
    if (tuna_model_load(&m, src) != TUNA_OK) return 0;
    int64_t total = (int64_t)tuna_model_weight_bytes(tuna_model_config(m)) / 2;
    tuna_status st = tuna_model_save_sharded(m, dst, dt, total / 3 + 1);
    tuna_model_free(m);
    CHECKF(st == TUNA_OK, "save %s: %s", dst, tuna_last_error());
    return st == TUNA_OK;
}

/* LoRA on q/v (or c_attn) r 4, 3 SGD steps on the adapter: the losses */
static int lora_curve(tuna_model *m, double *loss) {
    tuna_peft_config pc;
    tuna_peft_config_default(&pc, TUNA_PEFT_LORA);
    pc.r = 4;
    snprintf(pc.targets, sizeof pc.targets, "all-linear");
    if (tuna_peft_attach(m, &pc, 7) != TUNA_OK) return 0;
    const tuna_config *c = tuna_model_config(m);
    int32_t ids[24];
    tuna_batch bt;
    make_batch(&bt, ids, 2, 12, c->V);
    if (tuna_model_prepare(m, 2, 12, TUNA_MODE_TRAIN) != TUNA_OK) return 0;
    for (int step = 0; step < 3; step++) {
        tuna_loss l;
        tuna_model_zero_grad(m);
        if (tuna_model_forward(m, &bt, &l) != TUNA_OK || tuna_model_backward(m, &bt, 1.0f / (float)l.tokens) != TUNA_OK) return 0;
        loss[step] = l.loss_sum / (double)l.tokens;
        int64_t n;
        float *w = probe_trainable_weights(m, &n), *g = probe_trainable_grads(m, &n);
        for (int64_t i = 0; i < n; i++) w[i] -= 0.5f * g[i];
    }
    return 1;
}

static void check_training(const char *what, const char *dir) {
    tuna_model *f = NULL, *s = NULL;
    double a[3] = {0}, b[3] = {1};
    CHECK(tuna_model_load(&f, dir) == TUNA_OK && tuna_model_load_quantized(&s, dir, TUNA_QUANT_STORED) == TUNA_OK);
    if (!f || !s) { tuna_model_free(f); tuna_model_free(s); return; }
    CHECKF(resume_model_fingerprint(f) == resume_model_fingerprint(s), "%s: fingerprints of the fp32 and stored loads differ", what);
    /* full fine-tuning of a stored model is refused, naming the way out */
    CHECKF(tuna_model_prepare(s, 1, 4, TUNA_MODE_TRAIN) == TUNA_ERR_UNSUPPORTED && strstr(tuna_last_error(), "cannot be fully fine-tuned"),
           "%s: full fine-tuning of a stored model: %s", what, tuna_last_error());
    CHECKF(lora_curve(f, a) && lora_curve(s, b), "%s: LoRA runs: %s", what, tuna_last_error());
    CHECKF(!memcmp(a, b, sizeof a), "%s: LoRA losses fp32 %.9g %.9g %.9g vs stored %.9g %.9g %.9g", what, a[0], a[1], a[2], b[0], b[1], b[2]);
    printf("%s: LoRA losses %.6f %.6f %.6f on both bases\n", what, b[0], b[1], b[2]);
    /* merged and saved: the same file as the fp32 path */
    char p1[700], p2[700], cmd[1600];
    snprintf(p1, sizeof p1, "%s/merged_fp32", tmp);
    snprintf(p2, sizeof p2, "%s/merged_stored", tmp);
    CHECKF(tuna_peft_merge(f) == TUNA_OK && tuna_peft_merge(s) == TUNA_OK, "%s: merge: %s", what, tuna_last_error());
    CHECK(tuna_model_save(f, p1, TUNA_DTYPE_BF16) == TUNA_OK && tuna_model_save(s, p2, TUNA_DTYPE_BF16) == TUNA_OK);
    snprintf(cmd, sizeof cmd, "cmp -s '%s/model.safetensors' '%s/model.safetensors'", p1, p2);
    CHECKF(system(cmd) == 0, "%s: merged stored model saved differs from the fp32 one", what);
    tuna_model_free(f);
    tuna_model_free(s);
}

/* two shares of a stored base: they use its stored tensors, and one with a
 * LoRA gives the logits of a lone stored model with the same LoRA */
static void check_share(const char *dir) {
    tuna_model *base = NULL, *s1 = NULL, *s2 = NULL, *alone = NULL;
    CHECK(tuna_model_load_quantized(&base, dir, TUNA_QUANT_STORED) == TUNA_OK &&
          tuna_model_load_quantized(&alone, dir, TUNA_QUANT_STORED) == TUNA_OK);
    if (!base || !alone) { tuna_model_free(base); tuna_model_free(alone); return; }
    CHECK(tuna_model_share(&s1, base) == TUNA_OK && tuna_model_share(&s2, base) == TUNA_OK);
    if (!s1 || !s2) { tuna_model_free(s1); tuna_model_free(s2); tuna_model_free(base); tuna_model_free(alone); return; }
    tuna_linear *lb[64];
    int n = probe_linears(base, lb);
    int same = probe_linear_stored(s1, -1) == probe_linear_stored(base, -1) && probe_linear_stored(s1, -1);
    for (int i = 0; i < n; i++) same &= probe_linear_stored(s1, i) == probe_linear_stored(base, i);
    CHECKF(same, "shares point at the base's stored tensors");
    tuna_peft_config pc;
    tuna_peft_config_default(&pc, TUNA_PEFT_LORA);
    pc.r = 4;
    CHECK(tuna_peft_attach(s1, &pc, 3) == TUNA_OK && tuna_peft_attach(alone, &pc, 3) == TUNA_OK);
    /* B starts at zero: give it values so the adapter changes the logits */
    int64_t n1, na;
    float *w1 = probe_trainable_weights(s1, &n1), *wa = probe_trainable_weights(alone, &na);
    for (int64_t i = 0; i < n1; i++) w1[i] = wa[i] = 0.01f * (float)((i * 13) % 7 - 3);
    double x = 0, y = 0, z = 0;
    float *a = eval_logits(s1, &x), *b = eval_logits(alone, &y), *c = eval_logits(s2, &z);
    int V = tuna_model_config(base)->V;
    CHECKF(a && b && c && !memcmp(a, b, (size_t)24 * V * sizeof(float)) && x != z, "share with LoRA: logits %.9g vs alone %.9g (plain share %.9g)",
           x, y, z);
    free(a);
    free(b);
    free(c);
    tuna_model_free(s1);
    tuna_model_free(s2);
    tuna_model_free(base);
    tuna_model_free(alone);
}

/* a NaN in a bf16 weight used in place is named on load */
/* Pages of [p, p+n) (whole pages inside) present in this process's page
 * tables (/proc/self/pagemap bit 63); -1 when pagemap cannot be read. */
static long present_pages(const void *p, size_t n) {
    long pg = sysconf(_SC_PAGESIZE), count = 0;
    uintptr_t b = ((uintptr_t)p + pg - 1) / pg, e = ((uintptr_t)p + n) / pg;
    FILE *f = fopen("/proc/self/pagemap", "rb");
    if (!f) return -1;
    for (uintptr_t i = b; i < e; i++) {
        uint64_t v;
        if (fseek(f, (long)(i * 8), SEEK_SET) || fread(&v, 8, 1, f) != 1) { fclose(f); return -1; }
        count += (v >> 63) & 1;
    }
    fclose(f);
    return count;
}

/* An untied bf16 embedding used in place: after a forward (and a decode
 * step) none of its pages stays mapped; the lm_head, read whole, does. */
static void check_embed_pages(const char *dir) {
    tuna_model *m = NULL;
    CHECK(tuna_model_load_quantized(&m, dir, TUNA_QUANT_STORED) == TUNA_OK);
    if (!m) return;
    const void *emb = NULL, *head = NULL;
    int owned = 1, howned = 1;
    for (int i = 0; i < tuna_model_num_params(m); i++) {
        const char *nm = tuna_model_param(m, i)->name;
        if (!strcmp(nm, "model.embed_tokens.weight")) probe_param_stored(m, i, &emb, &owned);
        if (!strcmp(nm, "lm_head.weight")) probe_param_stored(m, i, &head, &howned);
    }
    const tuna_config *c = tuna_model_config(m);
    size_t bytes = (size_t)c->V * c->C * 2;
    CHECKF(emb && !owned && head && !howned, "%s: embedding and head used in place", dir);
    double loss;
    free(eval_logits(m, &loss));
    long e = emb ? present_pages(emb, bytes) : -1, h = head ? present_pages(head, bytes) : -1;
    CHECKF(e == 0 && h > 0, "%s: after a forward %ld of the embedding's pages are mapped (want 0), %ld of the head's",
           dir, e, h);
    tuna_decoder *d = NULL;
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (i * 37 + 5) % c->V;
    int row = 0;
    CHECK(tuna_decoder_create(&d, m, 1, 64, 64) == TUNA_OK && d);
    if (d) CHECK(tuna_decoder_step(d, &row, 1, ids, 40, NULL) == TUNA_OK);
    e = emb ? present_pages(emb, bytes) : -1;
    CHECKF(e == 0, "%s: after decoding 40 tokens %ld of the embedding's pages are mapped (want 0)", dir, e);
    tuna_decoder_free(d);
    tuna_model_free(m);
}

static void check_nonfinite(void) {
    char d[700];
    snprintf(d, sizeof d, "%s/nan_bf16", tmp);
    tuna_model *m = NULL;
    if (tuna_model_load(&m, "tests/fixtures/parity/llama_gqa") != TUNA_OK) { CHECK(0); return; }
    tuna_model_find_param(m, "lm_head.weight")->data[7] = NAN;
    CHECK(tuna_model_save(m, d, TUNA_DTYPE_BF16) == TUNA_OK);
    tuna_model_free(m);
    m = NULL;
    tuna_status st = tuna_model_load_quantized(&m, d, TUNA_QUANT_STORED);
    CHECKF(st == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "model.safetensors: tensor 'lm_head.weight' holds NaN at element 7"),
           "NaN in a stored weight: %s", tuna_last_error());
    tuna_model_free(m);
}

/* rewrites dir/model.safetensors with tensor `name` given dtype and shape
 * (the data block unchanged) */
static int retype(const char *dir, const char *name, const char *dtype, int64_t d0, int64_t d1) {
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    FILE *f = fopen(p, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)size);
    int ok = buf && fread(buf, 1, (size_t)size, f) == (size_t)size;
    fclose(f);
    uint64_t hl = 0;
    for (int i = 7; ok && i >= 0; i--) hl = hl << 8 | buf[i];
    json_t *h = ok ? json_loadb((const char *)buf + 8, (size_t)hl, 0, NULL) : NULL;
    json_t *t = h ? json_object_get(h, name) : NULL;
    if (t) {
        json_object_set_new(t, "dtype", json_string(dtype));
        json_object_set_new(t, "shape", json_pack("[I,I]", (json_int_t)d0, (json_int_t)d1));
    }
    char *js = t ? json_dumps(h, JSON_COMPACT) : NULL;
    ok = js != NULL;
    if (ok) {
        size_t jl = strlen(js), pad = (jl + 7) & ~(size_t)7;
        f = fopen(p, "wb");
        unsigned char len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(pad >> (8 * i));
        ok = f && fwrite(len8, 1, 8, f) == 8 && fwrite(js, 1, jl, f) == jl;
        for (size_t i = jl; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
        ok = ok && fwrite(buf + 8 + hl, 1, (size_t)(size - 8 - (long)hl), f) == (size_t)(size - 8 - (long)hl);
        if (f) fclose(f);
    }
    free(js);
    json_decref(h);
    free(buf);
    return ok;
}

/* dtypes tuna does not compute from: refused on the header, naming file and tensor */
static void check_dtypes(void) {
    struct { const char *dtype; int64_t d0, d1; tuna_status want; const char *msg; } cases[] = {
        {"F8_E4M3", 400, 64, TUNA_ERR_UNSUPPORTED, "tensor 'model.embed_tokens.weight': unknown dtype 'F8_E4M3'"},
        {"I32", 100, 64, TUNA_ERR_UNSUPPORTED, "tensor 'model.embed_tokens.weight' has dtype I32 (supported: F32, F16, BF16)"},
    };
    for (int k = 0; k < 2; k++) {
        char d[700];
        snprintf(d, sizeof d, "%s/dtype_%d", tmp, k);
        tuna_model *m = NULL;
        if (tuna_model_load(&m, "tests/fixtures/parity/llama_gqa") != TUNA_OK) { CHECK(0); return; }
        const tuna_param *p = tuna_model_find_param(m, "model.embed_tokens.weight");
        CHECK(p && p->shape[0] == 100 && p->shape[1] == 64); /* F32 on disk: 100*64*4 bytes */
        CHECK(tuna_model_save(m, d, TUNA_DTYPE_F32) == TUNA_OK);
        tuna_model_free(m);
        m = NULL;
        CHECK(retype(d, "model.embed_tokens.weight", cases[k].dtype, cases[k].d0, cases[k].d1));
        for (int q = 0; q < 2; q++) {
            tuna_status st = q ? tuna_model_load_quantized(&m, d, TUNA_QUANT_STORED) : tuna_model_load(&m, d);
            CHECKF(st == cases[k].want && strstr(tuna_last_error(), "model.safetensors") && strstr(tuna_last_error(), cases[k].msg),
                   "%s: %s", cases[k].dtype, tuna_last_error());
            tuna_model_free(m);
            m = NULL;
        }
    }
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (test_tmpdir(tmp, sizeof tmp, "stored") != 0) return 1;
    if (!test_need("models/tuna-stories/model.safetensors", "shipped model")) return test_done();
    char d[700];
    /* the shipped model is bf16 (Llama, tied embeddings) */
    check_folder("tuna-stories bf16", "models/tuna-stories", 2);
    struct { const char *src, *name; tuna_dtype dt; size_t esz; } cp[] = {
        {"tests/fixtures/parity/gpt2", "gpt2 bf16 sharded", TUNA_DTYPE_BF16, 2},
        {"tests/fixtures/parity/gpt2", "gpt2 f16 sharded", TUNA_DTYPE_F16, 2},
        {"tests/fixtures/parity/llama_gqa", "llama_gqa bf16 sharded", TUNA_DTYPE_BF16, 2},
        {"tests/fixtures/parity/llama_gqa", "llama_gqa f16 sharded", TUNA_DTYPE_F16, 2},
        {"tests/fixtures/parity/llama_gqa", "llama_gqa f32 sharded", TUNA_DTYPE_F32, 4},
    };
    for (size_t i = 0; i < sizeof cp / sizeof cp[0]; i++) {
        snprintf(d, sizeof d, "%s/cp%zu", tmp, i);
        if (copy_as(cp[i].src, d, cp[i].dt)) check_folder(cp[i].name, d, cp[i].esz);
    }
    snprintf(d, sizeof d, "%s/cp2", tmp);
    check_embed_pages(d);
    snprintf(d, sizeof d, "%s/cp0", tmp);
    check_training("gpt2 bf16", d);
    check_training("tuna-stories bf16", "models/tuna-stories");
    check_share("models/tuna-stories");
    const char *ck = test_shared_path("llama2c/stories260K/stories260K.bin", "stories260K as stored");
    const char *tk = ck ? test_shared_path("llama2c/stories260K/tok512.bin", "stories260K as stored") : NULL;
    if (ck && tk && test_need_cli("stories260K as stored")) {
        char cmd[3000], f32[700];
        snprintf(f32, sizeof f32, "%s/stories260K", tmp);
        snprintf(cmd, sizeof cmd, "'%s' convert llama2c --checkpoint '%s' --tokenizer '%s' --out '%s' >/dev/null", test_cli, ck, tk, f32);
        CHECK(system(cmd) == 0);
        snprintf(d, sizeof d, "%s/stories260K_bf16", tmp);
        if (copy_as(f32, d, TUNA_DTYPE_BF16)) check_folder("stories260K bf16 sharded", d, 2);
    }
    check_nonfinite();
    check_dtypes();
    test_rmdir(tmp);
    return test_done();
}
