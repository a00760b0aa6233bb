/* test_model_io.c — loading, saving and refusing bad input.
 * Every malformed checkpoint, config or data file must give a status (never a
 * crash) and a one-line message naming the file and the tensor or line. The
 * CLI must turn those into "tuna: error: ..." and exit code 2. Also: sharded
 * loading equals single-file loading, save/load round trips, fp16/bf16
 * conversions. Tests run from the repository root. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "io/safetensors.h"
#include "tuna.h"

static const char *FIX = "tests/fixtures/parity/llama_gqa";
static char tmpdir[256];

static void sh(const char *fmt, const char *a, const char *b) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    if (system(cmd) != 0) fprintf(stderr, "command failed: %s\n", cmd);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
}

/* a fresh model folder <tmpdir>/<name> holding a copy of the fixture */
static const char *fresh(const char *name) {
    static char d[512];
    snprintf(d, sizeof d, "%s/%s", tmpdir, name);
    char cmd[2600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp %s/config.json %s/model.safetensors '%s'/", d, d, FIX, FIX, d);
    if (system(cmd) != 0) fprintf(stderr, "setup failed\n");
    return d;
}

/* writes a safetensors file whose header is the given JSON and whose data
 * block has data_len bytes */
static void write_raw_st(const char *path, const char *json, size_t data_len) {
    size_t jl = strlen(json);
    unsigned char *buf = calloc(8 + jl + data_len, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((jl >> (8 * i)) & 0xff);
    memcpy(buf + 8, json, jl);
    spit(path, buf, 8 + jl + data_len);
    free(buf);
}

static void expect_fail(const char *what, tuna_status st, tuna_status want, const char *needle1, const char *needle2) {
    const char *msg = tuna_last_error();
    CHECKF(st == want, "%s: status %d (%s), want %d; message: %s", what, st, tuna_status_str(st), want, msg);
    CHECKF(!needle1 || strstr(msg, needle1), "%s: message lacks '%s': %s", what, needle1, msg);
    CHECKF(!needle2 || strstr(msg, needle2), "%s: message lacks '%s': %s", what, needle2, msg);
    CHECKF(!strchr(msg, '\n'), "%s: message is not one line", what);
}

static void test_bad_safetensors(void) {
    char p[600];
    st_file f;
    snprintf(p, sizeof p, "%s/x.safetensors", tmpdir);
    expect_fail("missing file", st_open(&f, p), TUNA_ERR_IO, "x.safetensors", NULL);
    spit(p, "abc", 3);
    expect_fail("too short", st_open(&f, p), TUNA_ERR_FORMAT, "x.safetensors", "too short");
    write_raw_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    CHECK(st_open(&f, p) == TUNA_OK && f.n_tensors == 1);
    st_close(&f);
    /* header length larger than the file */
    unsigned char big[16] = {0xff, 0xff, 0xff, 0, 0, 0, 0, 0, '{', '}'};
    spit(p, big, 10);
    expect_fail("header past end", st_open(&f, p), TUNA_ERR_FORMAT, "header length", NULL);
    write_raw_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8);
    expect_fail("header not JSON", st_open(&f, p), TUNA_ERR_FORMAT, "not valid JSON", NULL);
    write_raw_st(p, "[1,2]", 0);
    expect_fail("header not object", st_open(&f, p), TUNA_ERR_FORMAT, "not a JSON object", NULL);
    write_raw_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
    expect_fail("overlap", st_open(&f, p), TUNA_ERR_FORMAT, "overlap", NULL);
    /* an empty tensor where another begins is no overlap, whatever the header's order */
    write_raw_st(p, "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 8);
    tuna_status est = st_open(&f, p);
    CHECKF(est == TUNA_OK && f.n_tensors == 2, "empty tensor at another's offset: %s", est ? tuna_last_error() : "");
    if (est == TUNA_OK) st_close(&f);
    write_raw_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);
    expect_fail("past end", st_open(&f, p), TUNA_ERR_FORMAT, "'a'", "past the end");
    write_raw_st(p, "{\"a\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
    expect_fail("unknown dtype", st_open(&f, p), TUNA_ERR_UNSUPPORTED, "unknown dtype 'F8'", NULL);
    write_raw_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
    expect_fail("size mismatch", st_open(&f, p), TUNA_ERR_FORMAT, "8 bytes for 3 elements", NULL);
    write_raw_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,8]}}", 8);
    expect_fail("negative dim", st_open(&f, p), TUNA_ERR_FORMAT, "invalid shape", NULL);
    write_raw_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8);
    expect_fail("reversed offsets", st_open(&f, p), TUNA_ERR_FORMAT, "invalid data_offsets", NULL);
    write_raw_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8);
    expect_fail("missing offsets", st_open(&f, p), TUNA_ERR_FORMAT, "data_offsets", NULL);
    write_raw_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8);
    CHECK(st_open(&f, p) != TUNA_OK);
}

static void test_bad_models(void) {
    tuna_model *m = NULL;
    char p[700], q[700];
    expect_fail("missing folder", tuna_model_load(&m, "/nonexistent/model"), TUNA_ERR_IO, "/nonexistent/model", NULL);
    CHECK(m == NULL);
    /* a regular file is "not a folder", not "No such file or directory" */
    snprintf(p, sizeof p, "%s/plain.txt", tmpdir);
    spit(p, "hello\n", 6);
    expect_fail("a file as the model", tuna_model_load(&m, p), TUNA_ERR_IO, "plain.txt: not a folder", NULL);
    CHECKF(!strstr(tuna_last_error(), "No such file"), "%s", tuna_last_error());
    const char *d = fresh("nost");
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    unlink(p);
    expect_fail("no weights", tuna_model_load(&m, d), TUNA_ERR_IO, "model.safetensors", NULL);

    /* truncated: drop the last 100 bytes */
    d = fresh("trunc");
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    size_t n;
    char *buf = slurp(p, &n);
    spit(p, buf, n - 100);
    expect_fail("truncated", tuna_model_load(&m, d), TUNA_ERR_FORMAT, "model.safetensors", "past the end");
    /* corrupt header byte */
    d = fresh("corrupt");
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    buf[12] = '#';
    spit(p, buf, n);
    expect_fail("corrupt", tuna_model_load(&m, d), TUNA_ERR_FORMAT, "model.safetensors", NULL);
    free(buf);

    /* unknown architecture */
    d = fresh("arch");
    snprintf(p, sizeof p, "%s/config.json", d);
    sh("sed -i 's/LlamaForCausalLM/FalconForCausalLM/' '%s'%s", p, "");
    expect_fail("architecture", tuna_model_load(&m, d), TUNA_ERR_UNSUPPORTED, "FalconForCausalLM", "config.json");
    /* config that disagrees with the tensors */
    d = fresh("shape");
    snprintf(p, sizeof p, "%s/config.json", d);
    sh("sed -i 's/\"intermediate_size\": *96/\"intermediate_size\": 97/' '%s'%s", p, "");
    expect_fail("shape", tuna_model_load(&m, d), TUNA_ERR_FORMAT, "mlp.gate_proj.weight", "[96,64]");
    /* invalid config JSON */
    d = fresh("cfgjson");
    snprintf(p, sizeof p, "%s/config.json", d);
    spit(p, "{\"architectures\": [\"LlamaForCausalLM\"", 38);
    expect_fail("config JSON", tuna_model_load(&m, d), TUNA_ERR_FORMAT, "config.json", "invalid JSON");
    /* heads that do not divide */
    d = fresh("heads");
    snprintf(p, sizeof p, "%s/config.json", d);
    sh("sed -i 's/\"num_key_value_heads\": *2/\"num_key_value_heads\": 3/' '%s'%s", p, "");
    expect_fail("kv heads", tuna_model_load(&m, d), TUNA_ERR_FORMAT, "not divisible", NULL);
    /* unsupported rope scaling */
    d = fresh("rope");
    snprintf(p, sizeof p, "%s/config.json", d);
    sh("sed -i 's/\"llama3\"/\"yarn\"/' '%s'%s", p, "");
    expect_fail("rope type", tuna_model_load(&m, d), TUNA_ERR_UNSUPPORTED, "yarn", NULL);

    /* missing tensor, extra tensor, wrong dtype: rewrite the file */
    tuna_model *ok = NULL;
    CHECK(tuna_model_load(&ok, FIX) == TUNA_OK);
    if (!ok) return;
    for (int variant = 0; variant < 3; variant++) {
        d = fresh(variant == 0 ? "missing" : variant == 1 ? "extra" : "dtype");
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        st_writer *w = st_writer_new();
        int32_t ints[64 * 96];
        memset(ints, 0, sizeof ints);
        for (int i = 0; i < tuna_model_num_params(ok); i++) {
            const tuna_param *pp = tuna_model_param(ok, i);
            if (variant == 0 && strstr(pp->name, "layers.1.mlp.up_proj")) continue;
            if (variant == 2 && strstr(pp->name, "layers.0.mlp.up_proj"))
                st_writer_add_raw(w, pp->name, ST_I32, pp->ndim, pp->shape, ints, (size_t)pp->numel * 4);
            else st_writer_add(w, pp->name, ST_F32, pp->ndim, pp->shape, pp->data);
        }
        static const float four[4] = {0}; /* must outlive st_writer_finish */
        if (variant == 1) {
            int64_t shp[1] = {4};
            st_writer_add(w, "model.layers.0.mlp.extra_proj.weight", ST_F32, 1, shp, four);
        }
        CHECK(st_writer_finish(w, p) == TUNA_OK);
        tuna_status st = tuna_model_load(&m, d);
        if (variant == 0) expect_fail("missing tensor", st, TUNA_ERR_FORMAT, "model.layers.1.mlp.up_proj.weight", "missing");
        if (variant == 1) expect_fail("extra tensor", st, TUNA_ERR_FORMAT, "extra_proj", "not part of");
        if (variant == 2) expect_fail("int weights", st, TUNA_ERR_UNSUPPORTED, "model.layers.0.mlp.up_proj.weight", "I32");
    }
    tuna_model_free(ok);
    (void)q;
}

/* config values the RoPE tables and norms divide by: refused when the config
 * is read (one line naming config.json and the fields), never a division by
 * zero or a NaN table later. The fixture uses llama3 scaling (factor 8, low 1,
 * high 4, original 16), rope_theta 10000, rms_norm_eps 1e-5. */
static void test_bad_divisors(void) {
    static const struct { const char *what, *sed, *field1, *field2; } cases[] = {
        {"low == high", "s/\"high_freq_factor\": *4.0/\"high_freq_factor\": 1.0/", "low_freq_factor", "high_freq_factor"},
        {"low > high", "s/\"low_freq_factor\": *1.0/\"low_freq_factor\": 5.0/", "low_freq_factor", "high_freq_factor"},
        {"low 0", "s/\"low_freq_factor\": *1.0/\"low_freq_factor\": 0/", "low_freq_factor", NULL},
        {"original 0", "s/\"original_max_position_embeddings\": *16/\"original_max_position_embeddings\": 0/",
         "original_max_position_embeddings", NULL},
        {"factor 0", "s/\"factor\": *8.0/\"factor\": 0/", "factor", NULL},
        {"rope_theta 0", "s/\"rope_theta\": *10000.0/\"rope_theta\": 0/", "rope_theta", NULL},
        {"rms_norm_eps < 0", "s/\"rms_norm_eps\": *1e-05/\"rms_norm_eps\": -1e-05/", "rms_norm_eps", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *d = fresh("divisor");
        char p[700];
        snprintf(p, sizeof p, "%s/config.json", d);
        sh("sed -i '%s' '%s'", cases[i].sed, p);
        tuna_config c;
        expect_fail(cases[i].what, tuna_config_load(&c, p), TUNA_ERR_FORMAT, "config.json", cases[i].field1);
        CHECKF(!cases[i].field2 || strstr(tuna_last_error(), cases[i].field2), "%s: message lacks '%s': %s", cases[i].what,
               cases[i].field2, tuna_last_error());
    }
    /* programmatic configs go through the same checks */
    tuna_config c;
    CHECK(tuna_config_load(&c, "tests/fixtures/parity/llama_gqa/config.json") == TUNA_OK);
    c.rope_high_freq_factor = c.rope_low_freq_factor;
    tuna_model *m = NULL;
    expect_fail("create, low == high", tuna_model_create(&m, &c), TUNA_ERR_FORMAT, "high_freq_factor", NULL);
    CHECK(m == NULL);
}

/* splitting the fixture into two shards with an index gives the same model */
static void test_sharded_and_roundtrip(void) {
    tuna_model *a = NULL, *b = NULL, *c = NULL;
    CHECK(tuna_model_load(&a, FIX) == TUNA_OK);
    if (!a) return;
    char d[600], p[700];
    snprintf(d, sizeof d, "%s/sharded", tmpdir);
    sh("rm -rf '%s' && mkdir -p '%s'", d, d);
    sh("cp %s/config.json '%s'/", FIX, d);
    st_writer *w1 = st_writer_new(), *w2 = st_writer_new();
    FILE *idx;
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    idx = fopen(p, "w");
    fprintf(idx, "{\"metadata\":{},\"weight_map\":{");
    for (int i = 0; i < tuna_model_num_params(a); i++) {
        const tuna_param *pp = tuna_model_param(a, i);
        int second = i >= tuna_model_num_params(a) / 2;
        st_writer_add(second ? w2 : w1, pp->name, ST_F32, pp->ndim, pp->shape, pp->data);
        fprintf(idx, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"", i ? "," : "", pp->name, second + 1);
    }
    fprintf(idx, "}}\n");
    fclose(idx);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", d);
    CHECK(st_writer_finish(w1, p) == TUNA_OK);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", d);
    CHECK(st_writer_finish(w2, p) == TUNA_OK);
    CHECKF(tuna_model_load(&b, d) == TUNA_OK, "sharded load: %s", tuna_last_error());
    if (b) {
        int same = tuna_model_param_count(a) == tuna_model_param_count(b);
        for (int i = 0; same && i < tuna_model_num_params(a); i++)
            same = !memcmp(tuna_model_param(a, i)->data, tuna_model_param(b, i)->data,
                           (size_t)tuna_model_param(a, i)->numel * 4);
        CHECK(same);
    }
    /* save F32 -> identical; save BF16 -> each weight rounded to bf16 */
    snprintf(d, sizeof d, "%s/saved", tmpdir);
    CHECK(tuna_model_save(a, d, TUNA_DTYPE_BF16) == TUNA_OK);
    CHECKF(tuna_model_load(&c, d) == TUNA_OK, "reload bf16: %s", tuna_last_error());
    if (c) {
        CHECK(tuna_model_config(c)->dtype == TUNA_DTYPE_BF16);
        int ok = 1;
        for (int i = 0; ok && i < tuna_model_num_params(a); i++) {
            const tuna_param *x = tuna_model_param(a, i), *y = tuna_model_param(c, i);
            for (int64_t j = 0; ok && j < x->numel; j++)
                ok = y->data[j] == st_bf16_to_f32(st_f32_to_bf16(x->data[j]));
        }
        CHECK(ok);
    }
    tuna_model_free(a);
    tuna_model_free(b);
    tuna_model_free(c);
}

static void test_conversions(void) {
    /* exactly representable values survive; rounding is to nearest even */
    float vals[] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f, 0.333251953125f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        CHECKF(st_f16_to_f32(st_f32_to_f16(vals[i])) == vals[i], "f16 round trip of %g", vals[i]);
    CHECK(st_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00);          /* tie -> even (down) */
    CHECK(st_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);          /* tie -> even (up) */
    CHECK(st_f32_to_f16(70000.0f) == 0x7c00);                    /* overflow -> inf */
    CHECK(st_f32_to_f16(2.9802322387695312e-08f) == 0x0000);    /* 2^-25: tie to even -> 0 */
    CHECK(st_f32_to_f16(4.470348358154297e-08f) == 0x0001);     /* 1.5 * 2^-25 -> 1 */
    CHECK(st_bf16_to_f32(st_f32_to_bf16(1.0f + 1.0f / 256)) == 1.0f); /* tie -> even */
    CHECK(st_f32_to_bf16(1.0f + 3.0f / 256) == 0x3f82);
    /* every f16 bit pattern (finite) round-trips through f32 */
    int ok = 1;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        ok &= st_f32_to_f16(st_f16_to_f32((uint16_t)h)) == h;
    }
    CHECK(ok);
}

static void test_bad_data_and_cli(void) {
    char p[600], cmd[4096];
    tuna_pretok *t;
    snprintf(p, sizeof p, "%s/bad.jsonl", tmpdir);
    struct { const char *text; const char *needle; } cases[] = {
        {"{\"input_ids\":[1,2,3]}\n{\"input_ids\":[1,2\n", "bad.jsonl:2"},
        {"{\"input_ids\":[1,2,300]}\n", "outside the vocabulary"},
        {"{\"input_ids\":[1,-2]}\n", "outside the vocabulary"},
        {"{\"input_ids\":[1,2],\"labels\":[1]}\n", "same length"},
        {"{\"input_ids\":[1,2],\"labels\":[1,-5]}\n", "neither -100"},
        {"{\"input_ids\":\"1 2\"}\n", "\"input_ids\" array"},
        {"[1,2,3]\n", "\"input_ids\" array"},
        {"{\"input_ids\":[]}\n", "empty"},
        {"{\"input_ids\":[1.5]}\n", "not an integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spit(p, cases[i].text, strlen(cases[i].text));
        tuna_status st = tuna_pretok_load(&t, p, 100);
        expect_fail("bad data", st, TUNA_ERR_FORMAT, cases[i].needle, "bad.jsonl:");
    }
    const char *good = "{\"input_ids\":[1,2,3]}\n\n{\"input_ids\":[4,5],\"labels\":[-100,5]}\n";
    spit(p, good, strlen(good));
    const int32_t *lab = NULL;
    CHECK(tuna_pretok_load(&t, p, 100) == TUNA_OK && tuna_pretok_count(t) == 2 && tuna_pretok_max_len(t) == 3 &&
          tuna_pretok_seq(t, 1, NULL, &lab, NULL) == 2 && lab[0] == -100);
    tuna_pretok_free(t);

    /* the CLI: exit code 2 and one "tuna: error:" line for bad input */
    if (!test_need_cli("tuna CLI errors")) return;
    spit(p, cases[1].text, strlen(cases[1].text));
    char err[600];
    snprintf(err, sizeof err, "%s/err.txt", tmpdir);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s 2>%s >/dev/null", test_cli, FIX, p, err);
    int rc = system(cmd);
    CHECKF(WEXITSTATUS(rc) == 2, "eval on bad data exit %d", WEXITSTATUS(rc));
    size_t n;
    char *e = slurp(err, &n);
    CHECKF(e && n > 0 && !strncmp(e, "tuna: error: ", 13) && strstr(e, "bad.jsonl:1") && strchr(e, '\n') == e + n - 1,
           "stderr: %s", e ? e : "(none)");
    free(e);
    snprintf(cmd, sizeof cmd, "%s eval --model /nonexistent --data %s 2>/dev/null >/dev/null", test_cli, p);
    CHECK(WEXITSTATUS(system(cmd)) == 2);
    snprintf(cmd, sizeof cmd, "%s eval --model %s 2>/dev/null >/dev/null", test_cli, FIX);
    CHECK(WEXITSTATUS(system(cmd)) == 2);
    snprintf(cmd, sizeof cmd, "%s frobnicate 2>/dev/null", test_cli);
    CHECK(WEXITSTATUS(system(cmd)) == 2);
    snprintf(cmd, sizeof cmd, "%s eval --help >/dev/null", test_cli);
    CHECK(WEXITSTATUS(system(cmd)) == 0);
    snprintf(cmd, sizeof cmd, "%s info --model tests/fixtures/parity/gpt2 --json >/dev/null", test_cli);
    CHECK(WEXITSTATUS(system(cmd)) == 0);
}

/* eval's loss is the token-weighted mean over the file, whatever the batch size */
static void test_eval_batching(void) {
    char cmd[4096], out[600];
    double loss[3] = {0};
    long long tok[3] = {0};
    int batches[3] = {1, 2, 8};
    snprintf(out, sizeof out, "%s/eval.json", tmpdir);
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s/data.jsonl --batch %d --json > %s", test_cli, FIX, FIX,
                 batches[i], out);
        CHECK(system(cmd) == 0);
        size_t n;
        char *s = slurp(out, &n);
        CHECK(s && sscanf(s, "{\"loss\":%lf,\"tokens\":%lld", &loss[i], &tok[i]) == 2);
        free(s);
    }
    CHECK(tok[0] == tok[1] && tok[1] == tok[2] && tok[0] > 0);
    CHECKF(fabs(loss[0] - loss[2]) < 1e-6 * loss[2] && fabs(loss[1] - loss[2]) < 1e-6 * loss[2],
           "losses %.9g %.9g %.9g", loss[0], loss[1], loss[2]);
}

static void test_sliding_window(void) {
    const char *d = fresh("mistral");
    char p[700];
    snprintf(p, sizeof p, "%s/config.json", d);
    sh("cp tests/fixtures/parity/mistral/config.json '%s'; cp tests/fixtures/parity/mistral/model.safetensors '%s'", p,
       d);
    sh("sed -i 's/\"sliding_window\": *4096/\"sliding_window\": 4/' '%s'%s", p, "");
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, d) == TUNA_OK);
    if (!m) return;
    int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    tuna_batch b = {.B = 1, .T = 8, .input_ids = ids, .labels = ids};
    CHECK(tuna_model_prepare(m, 1, 8, 0) == TUNA_OK);
    expect_fail("sliding window", tuna_model_forward(m, &b, NULL), TUNA_ERR_UNSUPPORTED, "sliding_window of 4", NULL);
    b.T = 4;
    CHECK(tuna_model_forward(m, &b, NULL) == TUNA_OK);
    ids[0] = 70;
    b.T = 4;
    expect_fail("id out of range", tuna_model_forward(m, &b, NULL), TUNA_ERR_ARG, "outside the vocabulary", NULL);
    tuna_model_free(m);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]); /* the sanitizer tier runs its own sanitized CLI */
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tuna_test_io_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_bad_safetensors();
    test_bad_models();
    test_bad_divisors();
    test_sharded_and_roundtrip();
    test_conversions();
    test_bad_data_and_cli();
    test_eval_batching();
    test_sliding_window();
    sh("rm -rf '%s'%s", tmpdir, "");
    return test_done();
}
