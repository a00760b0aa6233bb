/* test_config_strict.c — config.json read strictly (issue 19, item 6): every
 * key of a wrong type or out of range is refused with one line naming the
 * file, the key and the value; valid variants (64.0, null) still load as
 * before. The GGUF metadata that carries the same values likewise. A NaN or
 * infinite weight is refused at load by every loader (safetensors folder,
 * GGUF, llama2.c), the tensor and file named; a non-finite logit during
 * generation is an error naming the step, not an empty answer with exit 0.
 * generation_config.json, adapter_config.json, tokenizer_config.json and
 * tokenizer.json are read as strictly (tuna template and tuna export too); a
 * GGUF file's Llama 3 rope keys, its embedding rows and the EOS/EOT ids that
 * generate reads likewise. Runs from the repository root
 * (models/tuna-stories, tests/fixtures; ../shared/data for a slow BPE folder). */
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "io/gguf.h"
#include "tuna.h"
#include "tuna_gguf.h"
#include "tuna_infer.h"
#include "tuna_llama2c.h"
#include "tuna_peft.h"
#include "tuna_tokenizer.h"

static const char *MODEL = "models/tuna-stories", *GPT2 = "tests/fixtures/parity/gpt2";
static char tmpdir[256];

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = calloc((size_t)n + 1, 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) b[0] = 0;
    fclose(f);
    return b;
}

static void spit(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* <tmpdir>/<name>: a copy of folder src (config.json and weights) */
static const char *copy_model(const char *src, const char *name) {
    static char d[512];
    char cmd[2600];
    snprintf(d, sizeof d, "%s/%s", tmpdir, name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp %s/config.json %s/model.safetensors '%s'/", d, d, src, src, d);
    if (system(cmd) != 0) fprintf(stderr, "setup failed: %s\n", cmd);
    return d;
}

/* writes dir/name = src's name with from replaced by to (0: from not found) */
static int edit_file(const char *src, const char *dir, const char *name, const char *from, const char *to) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", src, name);
    char *s = slurp(p), *at = s ? strstr(s, from) : NULL;
    if (!at) { free(s); return 0; }
    size_t n = strlen(s) + strlen(to) + 1;
    char *o = malloc(n);
    snprintf(o, n, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
    snprintf(p, sizeof p, "%s/%s", dir, name);
    spit(p, o);
    free(s);
    free(o);
    return 1;
}

static int edit_config(const char *src, const char *dir, const char *from, const char *to) {
    return edit_file(src, dir, "config.json", from, to);
}

static void expect_fail(const char *what, tuna_status st, tuna_status want, const char *n1, const char *n2, const char *n3) {
    const char *msg = tuna_last_error();
    CHECKF(st == want, "%s: status %d (%s), want %d; message: %s", what, st, tuna_status_str(st), want, msg);
    const char *needles[] = {n1, n2, n3};
    for (int i = 0; i < 3; i++) CHECKF(!needles[i] || strstr(msg, needles[i]), "%s: message lacks '%s': %s", what, needles[i], msg);
    CHECKF(!strchr(msg, '\n'), "%s: message is not one line", what);
}

/* each: (model, text in its config.json, replacement, status, key, value as written) */
static const struct {
    const char *model, *from, *to;
    tuna_status st;
    const char *key, *value;
} bad_cases[] = {
    {"stories", "\"hidden_size\": 192", "\"hidden_size\": 4294967488", TUNA_ERR_FORMAT, "hidden_size", "4294967488"},
    {"stories", "\"rope_theta\": 10000.0", "\"rope_theta\": \"500000.0\"", TUNA_ERR_FORMAT, "rope_theta", "\"500000.0\""},
    {"stories", "\"rms_norm_eps\": 9.99999975e-6", "\"rms_norm_eps\": \"1e-5\"", TUNA_ERR_FORMAT, "rms_norm_eps", "\"1e-5\""},
    {"stories", "\"hidden_act\": \"silu\"", "\"hidden_act\": 5", TUNA_ERR_FORMAT, "hidden_act", "5"},
    {"stories", "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", TUNA_ERR_UNSUPPORTED, "hidden_act", "\"gelu\""},
    {"stories", "\"hidden_size\": 192", "\"hidden_size\": 192.5", TUNA_ERR_FORMAT, "hidden_size", "192.5"},
    {"stories", "\"rms_norm_eps\": 9.99999975e-6", "\"rms_norm_eps\": -1", TUNA_ERR_FORMAT, "rms_norm_eps", "-1"},
    {"stories", "\"rms_norm_eps\": 9.99999975e-6", "\"rms_norm_eps\": 0", TUNA_ERR_FORMAT, "rms_norm_eps", "0"},
    {"stories", "\"rope_theta\": 10000.0", "\"rope_theta\": 0", TUNA_ERR_FORMAT, "rope_theta", "0"},
    {"stories", "\"rope_theta\": 10000.0", "\"rope_theta\": 1e39", TUNA_ERR_FORMAT, "rope_theta", "1e39"},
    {"stories", "\"num_hidden_layers\": 6", "\"num_hidden_layers\": -6", TUNA_ERR_FORMAT, "num_hidden_layers", "-6"},
    {"stories", "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": 1", TUNA_ERR_FORMAT, "tie_word_embeddings", "1"},
    {"stories", "\"eos_token_id\": 0", "\"eos_token_id\": \"0\"", TUNA_ERR_FORMAT, "eos_token_id", "\"0\""},
    {"stories", "\"torch_dtype\": \"bfloat16\"", "\"torch_dtype\": \"float8\"", TUNA_ERR_UNSUPPORTED, "torch_dtype", "\"float8\""},
    {"stories", "\"rope_scaling\": null", "\"rope_scaling\": 5", TUNA_ERR_FORMAT, "rope_scaling", "5"},
    {"stories", "\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": \"2\"}", TUNA_ERR_FORMAT,
     "rope_scaling.factor", "\"2\""},
    {"stories", "\"head_dim\": 32,\n  \"max_position_embeddings\"", "\"max_position_embeddings\"", TUNA_OK, NULL, NULL}, /* valid: 192/6 */
    {"stories", "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 4", TUNA_ERR_FORMAT, "not divisible", "4"},
    {"stories", "[\n    \"LlamaForCausalLM\"\n  ]", "\"LlamaForCausalLM\"", TUNA_ERR_FORMAT, "architectures", "\"LlamaForCausalLM\""},
    {"gpt2", "\"n_embd\": 48", "\"n_embd\": 48.5", TUNA_ERR_FORMAT, "n_embd", "48.5"},
    {"gpt2", "\"activation_function\": \"gelu_new\"", "\"activation_function\": \"relu\"", TUNA_ERR_UNSUPPORTED,
     "activation_function", "\"relu\""},
    {"gpt2", "\"layer_norm_epsilon\": 1e-05", "\"layer_norm_epsilon\": \"1e-5\"", TUNA_ERR_FORMAT, "layer_norm_epsilon", "\"1e-5\""},
};

static void test_bad_configs(void) {
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const char *src = !strcmp(bad_cases[i].model, "gpt2") ? GPT2 : MODEL;
        char name[32];
        snprintf(name, sizeof name, "bad%zu", i);
        const char *d = copy_model(src, name);
        char what[160];
        snprintf(what, sizeof what, "%s -> %s", bad_cases[i].from, bad_cases[i].to);
        int edited = edit_config(src, d, bad_cases[i].from, bad_cases[i].to);
        CHECKF(edited, "%s: not found in %s", bad_cases[i].from, src);
        if (!edited) continue;
        tuna_model *m = NULL;
        tuna_status st = tuna_model_load(&m, d);
        if (bad_cases[i].st == TUNA_OK) CHECKF(st == TUNA_OK, "%s: %s", what, tuna_last_error());
        else expect_fail(what, st, bad_cases[i].st, "config.json", bad_cases[i].key, bad_cases[i].value);
        tuna_model_free(m);
    }
}

/* spellings HF accepts load exactly as the shipped config does */
static void test_valid_variants(void) {
    static const struct { const char *from, *to; } ok[] = {
        {"\"hidden_size\": 192", "\"hidden_size\": 192.0"},
        {"\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"default\"}"},
        {"\"eos_token_id\": 0", "\"eos_token_id\": [0, 3]"},
        {"\"eos_token_id\": 0", "\"eos_token_id\": 0, \"pad_token_id\": null, \"sliding_window\": null"},
        {"\"num_key_value_heads\": 2", "\"num_key_value_heads\": 2.0"},
        {"\"rms_norm_eps\": 9.99999975e-6", "\"rms_norm_eps\": 9.99999975e-6, \"initializer_range\": null"},
    };
    tuna_config ref;
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", MODEL);
    CHECK(tuna_config_load(&ref, p) == TUNA_OK);
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        const char *d = copy_model(MODEL, "valid");
        int edited = edit_config(MODEL, d, ok[i].from, ok[i].to);
        CHECKF(edited, "%s not found", ok[i].from);
        if (!edited) continue;
        tuna_model *m = NULL;
        tuna_status st = tuna_model_load(&m, d);
        CHECKF(st == TUNA_OK, "%s: %s", ok[i].to, tuna_last_error());
        if (m) CHECKF(!memcmp(tuna_model_config(m), &ref, sizeof ref), "%s: loads as a different config", ok[i].to);
        tuna_model_free(m);
    }
}

/* GGUF metadata keys of the wrong type or out of range */
static void test_bad_gguf_metadata(void) {
    for (int k = 0; k < 4; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/meta%d.gguf", tmpdir, k);
        gguf_writer *w = gguf_writer_new();
        gguf_kv_str(w, "general.architecture", "llama");
        if (k == 0) gguf_kv_str(w, "llama.embedding_length", "64");
        if (k == 1) gguf_kv_i32(w, "llama.context_length", -1);
        if (k == 2) gguf_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", 0.0f);
        if (k == 3) gguf_kv_f32(w, "llama.rope.freq_base", INFINITY);
        CHECK(gguf_writer_finish(w, p) == TUNA_OK);
        gguf_writer_free(w);
        tuna_model *m = NULL;
        static const char *key[] = {"llama.embedding_length", "llama.context_length", "llama.attention.layer_norm_rms_epsilon",
                                    "llama.rope.freq_base"};
        static const char *val[] = {"(GGUF type", NULL, " 0:", "inf"};
        expect_fail(key[k], tuna_model_load_gguf(&m, p), TUNA_ERR_FORMAT, p, key[k], val[k]);
        tuna_model_free(m);
    }
}

/* where needle first occurs in file path (binary), or -1 */
static long find_in_file(const char *path, const char *needle) {
    FILE *f = fopen(path, "rb");
    long n = f && !fseek(f, 0, SEEK_END) ? ftell(f) : -1, at = -1;
    char *b = n > 0 ? malloc((size_t)n) : NULL;
    if (b && !fseek(f, 0, SEEK_SET) && fread(b, 1, (size_t)n, f) == (size_t)n) {
        char *p = memmem(b, (size_t)n, needle, strlen(needle));
        if (p) at = p - b;
    }
    free(b);
    if (f) fclose(f);
    return at;
}

/* writes len bytes at offset at of file path */
static void patch_file(const char *path, long at, const void *bytes, size_t len) {
    FILE *f = fopen(path, "r+b");
    CHECKF(f && at >= 0 && !fseek(f, at, SEEK_SET) && fwrite(bytes, 1, len, f) == len, "cannot patch %s at %ld", path, at);
    if (f) fclose(f);
}

/* the Llama 3 rope settings beside rope_freqs.weight: read as strictly */
static void test_bad_gguf_rope(void) {
    static const struct { int k; const char *key, *val; tuna_status st; } cases[] = {
        {0, "tuna.rope.llama3.factor", "(GGUF type 8)", TUNA_ERR_FORMAT},
        {1, "tuna.rope.llama3.low_freq_factor", " 0:", TUNA_ERR_FORMAT},
        {2, "tuna.rope.llama3.high_freq_factor", "-4:", TUNA_ERR_FORMAT},
        {3, "tuna.rope.llama3.original_context_length", " 0:", TUNA_ERR_FORMAT},
        {4, "rope_freqs without the Llama 3 settings", NULL, TUNA_ERR_UNSUPPORTED},
    };
    static const float freqs[2] = {1, 1};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/rope%zu.gguf", tmpdir, i);
        int k = cases[i].k;
        gguf_writer *w = gguf_writer_new();
        gguf_kv_str(w, "general.architecture", "llama");
        if (k == 0) gguf_kv_str(w, "tuna.rope.llama3.factor", "8");
        else gguf_kv_f32(w, "tuna.rope.llama3.factor", 8);
        gguf_kv_f32(w, "tuna.rope.llama3.low_freq_factor", k == 1 ? 0.0f : 1.0f);
        gguf_kv_f32(w, "tuna.rope.llama3.high_freq_factor", k == 2 ? -4.0f : 4.0f);
        if (k != 4) gguf_kv_u32(w, "tuna.rope.llama3.original_context_length", k == 3 ? 0 : 8192);
        CHECK(gguf_add_tensor(w, "rope_freqs.weight", 1, 1, 2, GGML_F32, freqs) == TUNA_OK);
        CHECK(gguf_writer_finish(w, p) == TUNA_OK);
        gguf_writer_free(w);
        tuna_model *m = NULL;
        expect_fail(cases[i].key, tuna_model_load_gguf(&m, p), cases[i].st, p, cases[i].key, cases[i].val);
        tuna_model_free(m);
    }
}

/* token_embd.weight with more than INT_MAX rows (a sparse file of 8 GiB):
 * the vocabulary size it implies is refused, not truncated to 64 */
static void test_gguf_huge_vocab(void) {
    char p[600];
    snprintf(p, sizeof p, "%s/vocab.gguf", tmpdir);
    static const float one = 1;
    gguf_writer *w = gguf_writer_new();
    gguf_kv_str(w, "general.architecture", "llama");
    CHECK(gguf_add_tensor(w, "token_embd.weight", 2, 1, 1, GGML_F16, &one) == TUNA_OK);
    CHECK(gguf_writer_finish(w, p) == TUNA_OK);
    gguf_writer_free(w);
    long at = find_in_file(p, "token_embd.weight");
    int64_t rows = (1LL << 32) + 64; /* ne = {1, rows} after the name and ndim */
    patch_file(p, at + 17 + 4 + 8, &rows, 8);
    CHECK(truncate(p, (off_t)(at + 4096) + 2 * rows) == 0);
    tuna_model *m = NULL;
    expect_fail("huge vocab", tuna_model_load_gguf(&m, p), TUNA_ERR_FORMAT, "token_embd.weight", "4294967360 rows", "vocabulary");
    tuna_model_free(m);
    unlink(p);
}

/* one NaN and one infinity put into two tensors of a model in memory */
static void poison(tuna_model *m, const char *nan_tensor, const char *inf_tensor) {
    float *a = tuna_model_find_param(m, nan_tensor)->data, *b = tuna_model_find_param(m, inf_tensor)->data;
    a[7] = NAN;
    b[3] = -INFINITY;
}

static void test_nonfinite_weights(void) {
    static const char *NAN_T = "model.layers.2.mlp.up_proj.weight", *INF_T = "model.norm.weight";
    tuna_model *m = NULL;
    /* safetensors, each dtype: the NaN tensor is met first, then (NaN removed) the inf one */
    static const tuna_dtype dts[] = {TUNA_DTYPE_F32, TUNA_DTYPE_BF16, TUNA_DTYPE_F16};
    for (int k = 0; k < 3; k++) {
        for (int which = 0; which < 2; which++) {
            char d[600];
            snprintf(d, sizeof d, "%s/nan_%s_%d", tmpdir, tuna_dtype_name(dts[k]), which);
            tuna_model *w = NULL;
            CHECK(tuna_model_load(&w, MODEL) == TUNA_OK);
            if (!w) return;
            poison(w, NAN_T, INF_T);
            if (which) tuna_model_find_param(w, NAN_T)->data[7] = 0;
            CHECK(tuna_model_save(w, d, dts[k]) == TUNA_OK);
            tuna_model_free(w);
            char what[80];
            snprintf(what, sizeof what, "%s %s", tuna_dtype_name(dts[k]), which ? "inf" : "NaN");
            expect_fail(what, tuna_model_load(&m, d), TUNA_ERR_FORMAT, "model.safetensors", which ? INF_T : NAN_T,
                        which ? "-inf" : "NaN");
            tuna_model_free(m);
            m = NULL;
        }
    }
    /* GGUF (F32 and F16 tensors) */
    for (int k = 0; k < 2; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/nan%d.gguf", tmpdir, k);
        tuna_model *w = NULL;
        CHECK(tuna_model_load(&w, MODEL) == TUNA_OK);
        if (!w) return;
        poison(w, NAN_T, INF_T);
        if (k) tuna_model_find_param(w, NAN_T)->data[7] = 0;
        tuna_gguf_meta meta = {NULL, NULL, "nan", -1, -1, -1, -1, 0, 0};
        CHECKF(tuna_export_gguf(w, &meta, k ? "f16" : "f32", p) == TUNA_OK, "%s", tuna_last_error());
        tuna_model_free(w);
        expect_fail(k ? "gguf inf" : "gguf NaN", tuna_model_load(&m, p), TUNA_ERR_FORMAT, p, k ? "output_norm.weight" : "blk.2.ffn_up.weight",
                    k ? "-inf" : "NaN");
        tuna_model_free(m);
        m = NULL;
    }
}

/* a tiny llama2.c checkpoint (dim 8, hidden 16, 1 layer, 2 heads, vocab 16,
 * seq_len 4, shared classifier), 0.01 everywhere but one bad value at float
 * index bad_at (counted from the first weight) */
static void write_llama2c(const char *path, long bad_at, float bad) {
    int32_t h[7] = {8, 16, 1, 2, 2, 16, 4};
    long n = 16 * 8 + 8 + 8 * 8 * 2 + 2 * 8 * 8 + 8 + 3 * 16 * 8 + 8 + 4 * 4; /* wte, ln1, wq wo, wk wv, ln2, w1 w2 w3, lnf, freqs */
    float *x = malloc((size_t)n * sizeof *x);
    for (long i = 0; i < n; i++) x[i] = 0.01f;
    if (bad_at >= 0) x[bad_at] = bad;
    FILE *f = fopen(path, "wb");
    fwrite(h, 4, 7, f);
    fwrite(x, 4, (size_t)n, f);
    fclose(f);
    free(x);
}

static void test_nonfinite_llama2c(void) {
    char p[600], out[600];
    snprintf(p, sizeof p, "%s/tiny.bin", tmpdir);
    snprintf(out, sizeof out, "%s/tiny_out", tmpdir);
    write_llama2c(p, -1, 0);
    CHECKF(tuna_llama2c_convert(p, out) == TUNA_OK, "clean llama2.c file: %s", tuna_last_error());
    write_llama2c(p, 5, NAN); /* in the token embeddings */
    expect_fail("llama2.c NaN", tuna_llama2c_convert(p, out), TUNA_ERR_FORMAT, "tiny.bin", "model.embed_tokens.weight", "NaN");
    write_llama2c(p, 16 * 8 + 8 + 3, INFINITY); /* in layer 0's q projection */
    expect_fail("llama2.c inf", tuna_llama2c_convert(p, out), TUNA_ERR_FORMAT, "tiny.bin", "model.layers.0.self_attn.q_proj.weight",
                "+inf");
}

/* finite weights whose logits overflow (final norm weight 1e38): an error
 * naming step 1, not a token drawn from NaNs */
static void test_nonfinite_logits(tuna_model *m) {
    tuna_tokenizer *tok = NULL;
    tuna_decoder *d = NULL;
    CHECK(tuna_tokenizer_load(&tok, MODEL) == TUNA_OK);
    float *w = tuna_model_find_param(m, "model.norm.weight")->data;
    for (int i = 0; i < tuna_model_config(m)->C; i++) w[i] = 1e38f;
    CHECK(tok && tuna_decoder_create(&d, m, 1, 64, 64) == TUNA_OK);
    if (!tok || !d) { tuna_tokenizer_free(tok); return; }
    int32_t prompt[3] = {0, 100, 200};
    tuna_gen_opts o;
    memset(&o, 0, sizeof o);
    o.max_new_tokens = 4;
    tuna_sample_args_default(&o.sample);
    o.sample.temperature = 0;
    for (int t = 0; t < 2; t++) { /* greedy, then sampling */
        o.sample.temperature = t ? 1.0f : 0.0f;
        tuna_gen_result r;
        expect_fail(t ? "logits, sampled" : "logits, greedy", tuna_generate(d, tok, prompt, 3, &o, &r), TUNA_ERR_NUMERIC,
                    "generation step 1", "predicting position 3", "not finite");
    }
    tuna_decoder_free(d);
    tuna_tokenizer_free(tok);
}

/* adapter_config.json: values of the wrong type are errors, not defaults */
static void test_bad_adapter_configs(void) {
    static const char *ADAPTER = "tests/fixtures/peft/llama_lora/adapter0";
    static const struct { const char *from, *to; tuna_status st; const char *key, *value; } cases[] = {
        {"\"lora_dropout\": 0.0", "\"lora_dropout\": \"0.1\"", TUNA_ERR_FORMAT, "lora_dropout", "\"0.1\""},
        {"\"lora_dropout\": 0.0", "\"lora_dropout\": 1.5", TUNA_ERR_FORMAT, "lora_dropout", "1.5"},
        {"\"use_rslora\": false", "\"use_rslora\": \"true\"", TUNA_ERR_FORMAT, "use_rslora", "\"true\""},
        {"\"r\": 4", "\"r\": 4.5", TUNA_ERR_FORMAT, "json: r 4.5", NULL},
        {"\"r\": 4", "\"r\": 4.0", TUNA_OK, NULL, NULL},
        {"\"bias\": \"none\"", "\"bias\": false", TUNA_ERR_FORMAT, "bias", "false"},
        {"\"bias\": \"none\"", "\"bias\": \"all\"", TUNA_ERR_UNSUPPORTED, "bias", "\"all\""},
        {"\"task_type\": \"CAUSAL_LM\"", "\"task_type\": 5", TUNA_ERR_FORMAT, "task_type 5: must be a string", NULL},
        {"\"peft_type\": \"LORA\"", "\"peft_type\": 5", TUNA_ERR_FORMAT, "peft_type 5: must be a string", NULL},
    };
    char d[600], cmd[1400];
    snprintf(d, sizeof d, "%s/adapter", tmpdir);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r %s '%s'", d, ADAPTER, d);
        CHECK(system(cmd) == 0);
        char p[700];
        snprintf(p, sizeof p, "%s/adapter_config.json", ADAPTER);
        char *src = slurp(p), *at = src ? strstr(src, cases[i].from) : NULL;
        CHECKF(at != NULL, "%s not in %s", cases[i].from, p);
        if (!at) { free(src); continue; }
        char out[4096];
        snprintf(out, sizeof out, "%.*s%s%s", (int)(at - src), src, cases[i].to, at + strlen(cases[i].from));
        snprintf(p, sizeof p, "%s/adapter_config.json", d);
        spit(p, out);
        free(src);
        tuna_peft_config c;
        tuna_status st = tuna_peft_read_config(&c, d);
        if (cases[i].st == TUNA_OK) CHECKF(st == TUNA_OK && c.r == 4, "%s: %s", cases[i].to, tuna_last_error());
        else expect_fail(cases[i].to, st, cases[i].st, "adapter_config.json", cases[i].key, cases[i].value);
    }
}

/* a prompt-tuning adapter's token_dim: an integer, the model's width */
static void test_prompt_token_dim(void) {
    static const struct { const char *td, *needle; } cases[] = {
        {"\"192\"", "token_dim \"192\": must be an integer"},
        {"192.5", "token_dim 192.5: must be an integer"},
        {"64", "token_dim 64 but the model's hidden size is 192"},
    };
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, MODEL) == TUNA_OK);
    if (!m) return;
    char d[600], p[700], text[400];
    snprintf(d, sizeof d, "%s/prompt", tmpdir);
    CHECK(mkdir(d, 0755) == 0);
    snprintf(p, sizeof p, "%s/adapter_config.json", d);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(text, sizeof text, "{\"peft_type\": \"PROMPT_TUNING\", \"task_type\": \"CAUSAL_LM\", \"num_virtual_tokens\": 4, "
                                    "\"token_dim\": %s}", cases[i].td);
        spit(p, text);
        expect_fail(cases[i].td, tuna_peft_load(m, d), TUNA_ERR_FORMAT, "adapter_config.json", cases[i].needle, NULL);
    }
    tuna_model_free(m);
}

/* tokenizer_config.json (and config.json's ids beside a tokenizer) read
 * strictly: a special token, chat_template, tokenizer_class or add_*_token of
 * another type is an error naming the file, the key and the value */
static void test_bad_tokenizer_configs(void) {
    static const struct { const char *from, *to; tuna_status st; const char *key, *value; } cases[] = {
        {"\"bos_token\": \"<|endoftext|>\"", "\"bos_token\": 5", TUNA_ERR_FORMAT, "bos_token", "5"},
        {"\"eos_token\": \"<|endoftext|>\"", "\"eos_token\": {\"content\": 3}", TUNA_ERR_FORMAT, "eos_token", "{\"content\":3"},
        {"\"chat_template\": \"", "\"chat_template\": 5, \"x\": \"", TUNA_ERR_FORMAT, "chat_template", "5"},
        {"\"chat_template\": \"", "\"chat_template\": [{\"name\": \"default\", \"template\": 7}], \"x\": \"", TUNA_ERR_FORMAT,
         "chat_template", "\"template\":7"},
        {"\"tokenizer_class\": \"PreTrainedTokenizerFast\"", "\"tokenizer_class\": \"LlamaTokenizerFast\", \"add_bos_token\": \"false\"",
         TUNA_ERR_FORMAT, "add_bos_token", "\"false\""},
        {"\"tokenizer_class\": \"PreTrainedTokenizerFast\"", "\"tokenizer_class\": 1", TUNA_ERR_FORMAT, "tokenizer_class", "1"},
        {"\"bos_token\": \"<|endoftext|>\"", "\"bos_token\": {\"content\": \"<|endoftext|>\", \"special\": true}", TUNA_OK, NULL, NULL},
        {"\"pad_token\": \"<|endoftext|>\"", "\"pad_token\": null", TUNA_OK, NULL, NULL},
    };
    char d[600], cmd[2000];
    snprintf(d, sizeof d, "%s/tok", tmpdir);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir '%s' && cp %s/tokenizer.json '%s'/", d, d, MODEL, d);
        CHECK(system(cmd) == 0);
        CHECKF(edit_file(MODEL, d, "tokenizer_config.json", cases[i].from, cases[i].to), "%s not found", cases[i].from);
        tuna_tokenizer *t = NULL;
        tuna_status st = tuna_tokenizer_load(&t, d);
        if (cases[i].st == TUNA_OK) CHECKF(st == TUNA_OK && tuna_tokenizer_bos_id(t) == 0, "%s: %s", cases[i].to, tuna_last_error());
        else expect_fail(cases[i].to, st, cases[i].st, "tokenizer_config.json", cases[i].key, cases[i].value);
        tuna_tokenizer_free(t);
    }
    /* config.json's eos_token_id beside a tokenizer.json without tokenizer_config.json */
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir '%s' && cp %s/tokenizer.json '%s'/", d, d, MODEL, d);
    CHECK(system(cmd) == 0);
    CHECK(edit_config(MODEL, d, "\"eos_token_id\": 0", "\"eos_token_id\": \"0\""));
    tuna_tokenizer *t = NULL;
    expect_fail("config.json eos_token_id", tuna_tokenizer_load(&t, d), TUNA_ERR_FORMAT, "config.json", "eos_token_id", "\"0\"");
    tuna_tokenizer_free(t);
}

/* tokenizer.json's flags and numbers of another type are errors naming the
 * key path and value (were: read as false, or ignored) */
static void test_bad_tokenizer_json(void) {
    static const struct { const char *from, *to, *needle; } cases[] = {
        {"\"byte_fallback\": false", "\"byte_fallback\": \"false\"", "tokenizer.json: model.byte_fallback \"false\""},
        {"\"dropout\": null", "\"dropout\": \"0.1\"", "tokenizer.json: model.dropout \"0.1\""},
        {"\"add_prefix_space\": false", "\"add_prefix_space\": \"no\"", "tokenizer.json: pre_tokenizer.add_prefix_space \"no\""},
        {"\"special\": true", "\"special\": 1", "tokenizer.json: added_tokens[0].special 1"},
    };
    char d[600], cmd[2000];
    snprintf(d, sizeof d, "%s/tokjson", tmpdir);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir '%s' && cp %s/tokenizer_config.json '%s'/", d, d, MODEL, d);
        CHECK(system(cmd) == 0);
        CHECKF(edit_file(MODEL, d, "tokenizer.json", cases[i].from, cases[i].to), "%s not found", cases[i].from);
        tuna_tokenizer *t = NULL;
        expect_fail(cases[i].to, tuna_tokenizer_load(&t, d), TUNA_ERR_FORMAT, cases[i].needle, NULL, NULL);
        tuna_tokenizer_free(t);
    }
}

/* vocab.json + merges.txt: tokenizer_config.json's added_tokens_decoder keys
 * are token ids (was: "x" read as id 0) */
static void test_bad_slow_bpe_config(void) {
    const char *g = test_shared_path("tokenizers/gpt2/vocab.json", "slow BPE tokenizer_config.json");
    const char *mg = test_shared_path("tokenizers/gpt2/merges.txt", "slow BPE tokenizer_config.json");
    if (!g || !mg) return;
    static const struct { const char *cfg, *key, *value; } cases[] = {
        {"{\"added_tokens_decoder\": {\"x\": {\"content\": \"<|endoftext|>\"}}}", "added_tokens_decoder.x", "{\"content\""},
        {"{\"added_tokens_decoder\": {\"50256\": \"<|endoftext|>\"}}", "added_tokens_decoder.50256", "\"<|endoftext|>\""},
        {"{\"add_prefix_space\": \"yes\"}", "add_prefix_space", "\"yes\""},
        {"{\"tokenizer_class\": [\"GPT2Tokenizer\"]}", "tokenizer_class", "[\"GPT2Tokenizer\"]"},
    };
    char d[600], cmd[4000], p[700];
    snprintf(d, sizeof d, "%s/slow", tmpdir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir '%s' && cp '%s' '%s' '%s'/", d, d, g, mg, d);
    CHECK(system(cmd) == 0);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", d);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        spit(p, cases[i].cfg);
        tuna_tokenizer *t = NULL;
        expect_fail(cases[i].cfg, tuna_tokenizer_load(&t, d), TUNA_ERR_FORMAT, "tokenizer_config.json", cases[i].key, cases[i].value);
        tuna_tokenizer_free(t);
    }
}

/* the CLI: exit 2 and one "tuna: error:" line naming config.json, the key and
 * the value; a NaN weight named by tensor; overflowing logits exit 1 with the step */
static int run(const char *args, char **err) {
    char cmd[2000], ep[600];
    snprintf(ep, sizeof ep, "%s/stderr.txt", tmpdir);
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>'%s'", test_cli, args, ep);
    int rc = system(cmd);
    *err = slurp(ep);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void expect_cli(const char *args, int want_rc, const char *n1, const char *n2) {
    char *e = NULL;
    int rc = run(args, &e);
    size_t n = e ? strlen(e) : 0;
    CHECKF(rc == want_rc, "%s: exit %d, want %d; stderr: %s", args, rc, want_rc, e ? e : "");
    CHECKF(e && !strncmp(e, "tuna: error: ", 13) && strchr(e, '\n') == e + n - 1, "%s: not one error line: %s", args, e ? e : "");
    CHECKF(e && strstr(e, n1) && (!n2 || strstr(e, n2)), "%s: stderr lacks '%s' / '%s': %s", args, n1, n2 ? n2 : "", e ? e : "");
    free(e);
}

/* the shipped tokenizer beside a model folder's weights, so the CLI gets to them */
static void add_tokenizer(const char *dir) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp %s/tokenizer.json %s/tokenizer_config.json '%s'/", MODEL, MODEL, dir);
    CHECK(system(cmd) == 0);
}

static void test_cli_errors(tuna_model *poisoned) {
    if (!test_need_cli("tuna CLI")) return;
    char args[1400], cmd[1400];
    const char *d = copy_model(MODEL, "cli_theta");
    edit_config(MODEL, d, "\"rope_theta\": 10000.0", "\"rope_theta\": \"500000.0\"");
    add_tokenizer(d);
    snprintf(args, sizeof args, "generate --model '%s' --prompt Once --max-new-tokens 4", d);
    expect_cli(args, 2, "config.json: rope_theta \"500000.0\"", NULL);
    d = copy_model(MODEL, "cli_hidden");
    edit_config(MODEL, d, "\"hidden_size\": 192", "\"hidden_size\": 4294967488");
    snprintf(args, sizeof args, "info --model '%s'", d);
    expect_cli(args, 2, "config.json: hidden_size 4294967488", NULL);
    /* generation_config.json: a wrong type, a range, invalid JSON */
    static const struct { const char *text, *needle; } gen[] = {
        {"{\"eos_token_id\": \"0\"}", "generation_config.json: eos_token_id \"0\""},
        {"{\"eos_token_id\": 0, \"do_sample\": true, \"top_p\": 1.5}", "generation_config.json: top_p 1.5"},
        {"{\"eos_token_id\": 0, \"do_sample\": \"yes\"}", "generation_config.json: do_sample \"yes\""},
        {"{\"eos_token_id\": 0,", "generation_config.json:1: invalid JSON"},
    };
    d = copy_model(MODEL, "cli_gen");
    add_tokenizer(d);
    for (size_t i = 0; i < sizeof gen / sizeof *gen; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/generation_config.json", d);
        spit(p, gen[i].text);
        snprintf(args, sizeof args, "generate --model '%s' --prompt Once --max-new-tokens 4", d);
        expect_cli(args, 2, gen[i].needle, NULL);
    }
    /* tuna template: tokenizer_config.json's chat_template of another type */
    d = copy_model(MODEL, "cli_tmpl");
    CHECK(edit_file(MODEL, d, "tokenizer_config.json", "\"chat_template\": \"", "\"chat_template\": 5, \"x\": \""));
    char msgs[700];
    snprintf(msgs, sizeof msgs, "%s/messages.json", d);
    spit(msgs, "[{\"role\": \"user\", \"content\": \"hi\"}]");
    snprintf(args, sizeof args, "template --model '%s' --messages '%s'", d, msgs);
    expect_cli(args, 2, "tokenizer_config.json: chat_template 5", NULL);
    /* tuna export: an invalid generation_config.json or a broken tokenizer_config.json
     * is an error, not an export without them (nothing is written) */
    static const struct { const char *file, *from, *to, *needle; } exp[] = {
        {"generation_config.json", "{", "{,", "generation_config.json:1: invalid JSON"},
        {"tokenizer_config.json", "\"bos_token\": \"<|endoftext|>\"", "\"bos_token\": 5", "tokenizer_config.json: bos_token 5"},
    };
    for (size_t i = 0; i < sizeof exp / sizeof *exp; i++) {
        d = copy_model(MODEL, "cli_export");
        add_tokenizer(d);
        snprintf(cmd, sizeof cmd, "cp %s/generation_config.json '%s'/", MODEL, d);
        CHECK(system(cmd) == 0);
        CHECK(edit_file(MODEL, d, exp[i].file, exp[i].from, exp[i].to));
        for (int gguf = 0; gguf < 2; gguf++) {
            char out[700];
            snprintf(out, sizeof out, "%s/exported%s", tmpdir, gguf ? ".gguf" : "");
            snprintf(args, sizeof args, "export --model '%s' --format %s --out '%s'", d, gguf ? "gguf" : "hf", out);
            if (gguf && i == 0) continue; /* GGUF takes no generation_config.json */
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
            CHECK(system(cmd) == 0);
            expect_cli(args, 2, exp[i].needle, NULL);
            CHECKF(access(out, F_OK) != 0, "%s: %s was written", args, out);
        }
    }
    /* a NaN weight */
    char nd[600];
    snprintf(nd, sizeof nd, "%s/nan_float32_0", tmpdir);
    add_tokenizer(nd);
    snprintf(args, sizeof args, "generate --model '%s' --prompt Once --max-new-tokens 4", nd);
    expect_cli(args, 2, "model.safetensors: tensor 'model.layers.2.mlp.up_proj.weight' holds NaN", NULL);
    /* overflowing logits (finite weights): the model of test_nonfinite_logits, saved with the tokenizer */
    char od[600];
    snprintf(od, sizeof od, "%s/overflow", tmpdir);
    CHECK(tuna_model_save(poisoned, od, TUNA_DTYPE_F32) == TUNA_OK);
    add_tokenizer(od);
    snprintf(args, sizeof args, "generate --model '%s' --prompt Once --max-new-tokens 4", od);
    expect_cli(args, 1, "generation step 1", "not finite");
}

/* The stories model as GGUF with its tokenizer and the end-of-turn id eot;
 * neg: that key rewritten in place as the int32 -1 */
static void write_gguf_eot(const tuna_model *m, const char *path, int32_t eot, int neg) {
    tuna_gguf_meta meta = {MODEL, NULL, "eot", -1, 0, eot, -1, 0, 0};
    CHECKF(tuna_export_gguf(m, &meta, "f32", path) == TUNA_OK, "%s", tuna_last_error());
    if (!neg) return;
    /* the type and value that follow the key's name: I32 -1 */
    const int32_t tv[2] = {5, -1};
    patch_file(path, find_in_file(path, "tokenizer.ggml.eot_token_id") + 27, tv, 8);
}

/* a GGUF file's EOS/EOT ids in generate: an id outside the vocabulary is
 * ignored with one warning (as llama.cpp does), a negative one is an error */
static void test_gguf_eot(void) {
    if (!test_need_cli("tuna CLI")) return;
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, MODEL) == TUNA_OK);
    if (!m) return;
    static const struct { int32_t eot; int neg, rc; const char *needle; } cases[] = {
        {1 << 30, 0, 0, "tokenizer.ggml.eot_token_id 1073741824 is not a token id"},
        {100000, 0, 0, "tokenizer.ggml.eot_token_id 100000 is not a token id"},
        {0, 1, 2, "tokenizer.ggml.eot_token_id (GGUF type 5): must be an integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char p[600], args[1400];
        snprintf(p, sizeof p, "%s/eot%zu.gguf", tmpdir, i);
        write_gguf_eot(m, p, cases[i].eot, cases[i].neg);
        snprintf(args, sizeof args, "generate --model '%s' --prompt Once --max-new-tokens 2", p);
        if (cases[i].rc) { expect_cli(args, cases[i].rc, p, cases[i].needle); continue; }
        char *e = NULL;
        int rc = run(args, &e);
        const char *w = e ? strstr(e, cases[i].needle) : NULL;
        CHECKF(rc == 0 && w && !strstr(w + 1, cases[i].needle), "%s: exit %d, want 0 and one warning '%s'; stderr: %s", args, rc,
               cases[i].needle, e ? e : "");
        CHECKF(e && !strncmp(e, "tuna: warning: ", 15), "%s: stderr: %s", args, e ? e : "");
        free(e);
    }
    tuna_model_free(m);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (test_tmpdir(tmpdir, sizeof tmpdir, "cfg") != 0) return 1;
    test_bad_configs();
    test_valid_variants();
    test_bad_gguf_metadata();
    test_bad_gguf_rope();
    test_gguf_huge_vocab();
    test_nonfinite_weights();
    test_nonfinite_llama2c();
    test_bad_adapter_configs();
    test_prompt_token_dim();
    test_bad_tokenizer_configs();
    test_bad_slow_bpe_config();
    test_bad_tokenizer_json();
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, MODEL) == TUNA_OK);
    if (m) test_nonfinite_logits(m);
    if (m) test_cli_errors(m);
    tuna_model_free(m);
    test_gguf_eot();
    test_rmdir(tmpdir);
    return test_done();
}
