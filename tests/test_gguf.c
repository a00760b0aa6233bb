/* test_gguf.c — GGUF export and import:
 *  - ggml's block layouts on hand-made blocks whose codes are known exactly
 *    (Q4_0 nibble order and scale, Q8_0 scale and rounding);
 *  - round trip: a model exported as F32 and loaded back gives the source's
 *    logits bit for bit (Llama with GQA: the q/k permutation and its inverse;
 *    GPT-2: Conv1D layouts; the shipped model: tied embeddings), F16 / Q8_0 /
 *    Q4_0 within their rounding;
 *  - the metadata llama.cpp reads: architecture keys, vocabulary (tokens,
 *    types, merges, pre-tokenizer), special ids, chat template; a tokenizer
 *    rebuilt from the file alone encodes like the source, and generation from
 *    the .gguf equals generation from the folder;
 *  - SentencePiece-style tokenizers (../shared: Llama 2, Mistral, Phi-3) on a
 *    tiny random Llama: tokenizer.ggml.model "llama", scores ranked as the
 *    merges, byte/control/unknown types, special ids; the tokenizer rebuilt
 *    from the file encodes as tokenizer.json; the same file without tuna's
 *    keys (as llama.cpp's converter leaves one) still encodes plain text
 *    alike, with llama.cpp's space after a special token; f32 logits equal;
 *  - NaN or infinite weights refused for Q8_0 / Q4_0 (nothing written);
 *  - damaged files: one clear error, no crash; counts in the header that the
 *    file cannot hold refused before anything is allocated. */
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "check_model.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "tuna.h"
#include "tuna_gguf.h"

static char tmpdir[] = "/tmp/tuna_test_gguf_XXXXXX";

static void test_blocks(void) {
    float x[32];
    uint8_t q[34];
    /* Q4_0: values (j mod 16 - 8) / 2: the largest magnitude is -4, so d = -4 / -8 = 0.5
     * and element j codes as j mod 16: byte j = j | j << 4 */
    for (int j = 0; j < 32; j++) x[j] = (float)(j % 16 - 8) * 0.5f;
    gguf_quantize_q4_0(x, q, 32);
    CHECK(q[0] == 0x00 && q[1] == 0x38); /* f16 0.5 */
    int ok = 1;
    for (int j = 0; j < 16; j++) ok &= q[2 + j] == (uint8_t)(j | j << 4);
    CHECKF(ok, "Q4_0 nibble layout");
    /* Q8_0: values j - 16, amax 16: d = 16/127, codes round(x * 127 / 16) */
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16);
    gguf_quantize_q8_0(x, q, 32);
    uint16_t d = st_f32_to_f16(16.0f / 127.0f);
    CHECK(q[0] == (d & 0xFF) && q[1] == (d >> 8));
    ok = 1;
    for (int j = 0; j < 32; j++) ok &= (int8_t)q[2 + j] == (int8_t)lrintf((float)(j - 16) * 127.0f / 16.0f);
    CHECKF(ok && (int8_t)q[2] == -127, "Q8_0 codes");
}


/* exports src as each type and compares the reloaded logits */
static void round_trip(const char *src, const char *label, const char *tokdir) {
    tuna_model *m = NULL;
    if (!test_need(src, label)) return;
    CHECKF(tuna_model_load(&m, src) == TUNA_OK, "%s: %s", src, tuna_last_error());
    if (!m) return;
    const tuna_config *c = tuna_model_config(m);
    int T = 12, V = c->V;
    int32_t ids[12];
    for (int i = 0; i < T; i++) ids[i] = (i * 131 + 7) % V;
    float *ref = malloc((size_t)T * V * 4), *got = malloc((size_t)T * V * 4);
    CHECK(test_logits(m, ids, T, ref));
    const char *types[] = {"f32", "f16", "q8_0", "q4_0"};
    const double budget[] = {0, 2e-3, 3e-2, 0.25};
    for (int k = 0; k < 4; k++) {
        char path[400];
        snprintf(path, sizeof path, "%s/%s_%s.gguf", tmpdir, label, types[k]);
        tuna_gguf_meta meta = {tokdir, NULL, label, -1, -1, -1, -1, 0, 0};
        tuna_status st = tuna_export_gguf(m, &meta, types[k], path);
        CHECKF(st == TUNA_OK, "%s %s: %s", label, types[k], tuna_last_error());
        if (st != TUNA_OK) continue;
        tuna_model *r = NULL;
        st = tuna_model_load(&r, path);
        CHECKF(st == TUNA_OK && tuna_is_gguf(path), "%s %s: load: %s", label, types[k], tuna_last_error());
        if (st != TUNA_OK) continue;
        const tuna_config *rc = tuna_model_config(r);
        CHECK(rc->V == c->V && rc->C == c->C && rc->L == c->L && rc->NH == c->NH && rc->NKV == c->NKV && rc->FF == c->FF &&
              rc->tie_embeddings == c->tie_embeddings && rc->family == c->family);
        CHECK(test_logits(r, ids, T, got));
        double e = rel_l2(got, ref, (long)T * V);
        printf("gguf %s %-4s: logits rel %.3g\n", label, types[k], e);
        if (k == 0) CHECKF(!memcmp(got, ref, (size_t)T * V * 4), "%s f32 round trip is not exact (rel %.3g)", label, e);
        else CHECKF(e <= budget[k], "%s %s: logits rel %.3g > %.3g", label, types[k], e, budget[k]);
        tuna_model_free(r);
    }
    free(ref);
    free(got);
    tuna_model_free(m);
}

static void test_metadata(void) {
    char path[400];
    snprintf(path, sizeof path, "%s/stories_f32.gguf", tmpdir);
    gguf_file f;
    if (gguf_open(&f, path) != TUNA_OK) { CHECK(0); return; }
    size_t n = 0;
    const char *s = gguf_get_str(&f, "general.architecture", &n);
    CHECK(s && n == 5 && !memcmp(s, "llama", 5));
    uint64_t v = 0;
    CHECK(gguf_get_u64(&f, "llama.attention.head_count_kv", &v) == 0 && v == 2);
    CHECK(gguf_get_u64(&f, "llama.rope.dimension_count", &v) == 0 && v == 32);
    CHECK(gguf_get_u64(&f, "llama.context_length", &v) == 0 && v == 1024);
    s = gguf_get_str(&f, "tokenizer.ggml.pre", &n);
    CHECK(s && n == 5 && !memcmp(s, "gpt-2", 5)); /* llama.cpp's name for the GPT-2 regex */
    const gguf_kv *tok = gguf_find_kv(&f, "tokenizer.ggml.tokens"), *mg = gguf_find_kv(&f, "tokenizer.ggml.merges"),
                  *ty = gguf_find_kv(&f, "tokenizer.ggml.token_type");
    CHECK(tok && tok->arr_n == 4096 && mg && mg->arr_n == 3839 && ty && ty->arr_n == 4096);
    if (tok && ty) {
        s = gguf_arr_str(tok, 0, &n);
        int32_t t0;
        memcpy(&t0, ty->val, 4);
        CHECK(s && n == 13 && !memcmp(s, "<|endoftext|>", 13) && t0 == 3); /* special: control */
    }
    CHECK(!gguf_find_tensor(&f, "output.weight") && gguf_find_tensor(&f, "token_embd.weight") &&
          gguf_find_tensor(&f, "blk.5.ffn_down.weight"));
    const gguf_tensor *q = gguf_find_tensor(&f, "blk.0.attn_q.weight");
    CHECK(q && q->ne[0] == 192 && q->ne[1] == 192 && q->type == GGML_F32 && q->offset % 32 == 0);
    gguf_close(&f);
    snprintf(path, sizeof path, "%s/stories_q4_0.gguf", tmpdir);
    if (gguf_open(&f, path) == TUNA_OK) {
        const gguf_tensor *a = gguf_find_tensor(&f, "blk.0.attn_q.weight"), *nrm = gguf_find_tensor(&f, "blk.0.attn_norm.weight");
        CHECK(a && a->type == GGML_Q4_0 && nrm && nrm->type == GGML_F32);
        CHECK(gguf_get_u64(&f, "general.file_type", &v) == 0 && v == 2);
        gguf_close(&f);
    } else CHECK(0);
}

/* the vocabulary and template travel in the file: a tokenizer rebuilt from
 * the GGUF alone encodes and decodes as the source folder's, and tuna's
 * generate on the .gguf gives the source model's tokens */
static void test_gguf_tokenizer(void) {
    char path[400], cmd[4800], a[400], b[400];
    snprintf(path, sizeof path, "%s/stories_q8_0_cli.gguf", tmpdir);
    snprintf(a, sizeof a, "%s/export.log", tmpdir);
    snprintf(cmd, sizeof cmd, "%s export --model models/tuna-stories --format gguf --type q8_0 --out %s 2>%s && "
             "grep -q 'sample conversation: same token ids as training' %s", test_cli, path, a, a);
    CHECKF(system(cmd) == 0, "%s", cmd);
    tuna_tokenizer *src = NULL, *gg = NULL;
    CHECK(tuna_tokenizer_load(&src, "models/tuna-stories") == TUNA_OK);
    CHECKF(tuna_tokenizer_load(&gg, path) == TUNA_OK, "%s", tuna_last_error());
    if (src && gg) {
        const char *texts[] = {"Once upon a time, there was a little girl named Lily.", "  two  spaces\nand\ttabs <|endoftext|> after",
                               "caf\xc3\xa9 \xe2\x9c\x93 123456 {\"who\": \"Tom\"}", ""};
        for (int k = 0; k < 4; k++) {
            int32_t *x = NULL, *y = NULL;
            size_t nx = 0, ny = 0;
            CHECK(tuna_tokenizer_encode(src, texts[k], strlen(texts[k]), 1, &x, &nx) == TUNA_OK);
            CHECK(tuna_tokenizer_encode(gg, texts[k], strlen(texts[k]), 1, &y, &ny) == TUNA_OK);
            CHECKF(nx == ny && (nx == 0 || !memcmp(x, y, nx * 4)), "text %d: %zu vs %zu tokens", k, nx, ny);
            free(x);
            free(y);
        }
        CHECK(tuna_tokenizer_eos_id(gg) == tuna_tokenizer_eos_id(src) && tuna_tokenizer_bos_id(gg) == tuna_tokenizer_bos_id(src));
        CHECK(tuna_tokenizer_chat_template(gg) && !strcmp(tuna_tokenizer_chat_template(gg), tuna_tokenizer_chat_template(src)));
    }
    tuna_tokenizer_free(src);
    tuna_tokenizer_free(gg);
    /* greedy generation from the f32 file = from the folder */
    snprintf(path, sizeof path, "%s/stories_f32.gguf", tmpdir);
    snprintf(a, sizeof a, "%s/gen_a.txt", tmpdir);
    snprintf(b, sizeof b, "%s/gen_b.txt", tmpdir);
    snprintf(cmd, sizeof cmd, "%s generate --model models/tuna-stories --prompt 'Once upon a time' --max-new-tokens 24 --json 2>/dev/null "
             "| grep -o '\"ids\":\\[[^]]*\\]' > %s && %s generate --model %s --prompt 'Once upon a time' --max-new-tokens 24 --json 2>/dev/null "
             "| grep -o '\"ids\":\\[[^]]*\\]' > %s && test -s %s && cmp -s %s %s", test_cli, a, test_cli, path, b, a, a, b);
    CHECKF(system(cmd) == 0, "generation from the GGUF differs: %s", cmd);
}

/* ---- SentencePiece-style vocabularies ---- */

static int cmp_f32(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int str_is(const char *s, size_t n, const char *want) { return s && n == strlen(want) && !memcmp(s, want, n); }

static int32_t arr_i32(const gguf_kv *kv, uint64_t i) {
    int32_t v;
    memcpy(&v, kv->val + 4 * i, 4);
    return v;
}

static float arr_f32(const gguf_kv *kv, uint64_t i) {
    float v;
    memcpy(&v, kv->val + 4 * i, 4);
    return v;
}

/* ids of text through a and b equal (with and without the special tokens they add) */
static int same_ids(tuna_tokenizer *a, tuna_tokenizer *b, const char *text, int add_special) {
    int32_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int ok = tuna_tokenizer_encode(a, text, strlen(text), add_special, &x, &nx) == TUNA_OK &&
             tuna_tokenizer_encode(b, text, strlen(text), add_special, &y, &ny) == TUNA_OK && nx == ny &&
             (nx == 0 || !memcmp(x, y, nx * 4));
    free(x);
    free(y);
    return ok;
}

/* The export's vocabulary keys rewritten without tuna's keys, as llama.cpp's
 * converter leaves a file (tokens, scores, types, special ids): tuna then
 * encodes as llama.cpp does. */
static int write_foreign(const gguf_file *f, const char *path) {
    gguf_writer *w = gguf_writer_new();
    const gguf_kv *tok = gguf_find_kv(f, "tokenizer.ggml.tokens"), *sc = gguf_find_kv(f, "tokenizer.ggml.scores"),
                  *ty = gguf_find_kv(f, "tokenizer.ggml.token_type");
    if (!w || !tok || !sc || !ty) { gguf_writer_free(w); return 0; }
    size_t n = (size_t)tok->arr_n, l;
    const char **s = malloc(n * sizeof *s);
    char **own = calloc(n, sizeof *own);
    float *scores = malloc(n * sizeof *scores);
    int32_t *types = malloc(n * sizeof *types);
    int ok = s && own && scores && types;
    for (size_t i = 0; ok && i < n; i++) {
        const char *t = gguf_arr_str(tok, i, &l);
        ok = (own[i] = malloc(l + 1)) != NULL;
        if (ok) { memcpy(own[i], t, l); own[i][l] = 0; s[i] = own[i]; }
        scores[i] = arr_f32(sc, i);
        types[i] = arr_i32(ty, i);
    }
    if (ok) {
        gguf_kv_str(w, "general.architecture", "llama");
        gguf_kv_str(w, "tokenizer.ggml.model", "llama");
        gguf_kv_str(w, "tokenizer.ggml.pre", "default");
        gguf_kv_str_array(w, "tokenizer.ggml.tokens", s, n);
        gguf_kv_f32_array(w, "tokenizer.ggml.scores", scores, n);
        gguf_kv_i32_array(w, "tokenizer.ggml.token_type", types, n);
        const char *ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"};
        for (int k = 0; k < 3; k++) {
            uint64_t v;
            if (gguf_get_u64(f, ids[k], &v) == 0) gguf_kv_u32(w, ids[k], (uint32_t)v);
        }
        const char *flags[] = {"tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"};
        for (int k = 0; k < 2; k++) {
            uint64_t v;
            if (gguf_get_u64(f, flags[k], &v) == 0) gguf_kv_bool(w, flags[k], v != 0);
        }
        ok = gguf_writer_finish(w, path) == TUNA_OK;
    }
    for (size_t i = 0; own && i < n; i++) free(own[i]);
    free(own);
    free(s);
    free(scores);
    free(types);
    gguf_writer_free(w);
    return ok;
}

static void spm_case(const char *name, int V, int n_merges_want, int cli) {
    char rel[200], label[64], dir[600], path[700], foreign[700], cmd[3000];
    snprintf(rel, sizeof rel, "tokenizers/%s/tokenizer.json", name);
    snprintf(label, sizeof label, "gguf spm %s", name);
    const char *tj = test_shared_path(rel, label);
    if (!tj) return;
    /* a tiny random Llama with this tokenizer: V rows, hidden 32, 2 layers, tied */
    snprintf(dir, sizeof dir, "%s/spm_%s", tmpdir, name);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s %s/ && d=$(dirname %s) && cp $d/tokenizer_config.json %s/", dir, tj, dir, tj, dir);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *cf = fopen(path, "w");
    if (!cf) { CHECK(0); return; }
    fprintf(cf, "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":%d,\"hidden_size\":32,"
                "\"intermediate_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
                "\"max_position_embeddings\":256,\"rms_norm_eps\":1e-5,\"tie_word_embeddings\":true}\n", V);
    fclose(cf);
    tuna_config c;
    tuna_model *m = NULL;
    CHECK(tuna_config_load(&c, path) == TUNA_OK && tuna_model_create(&m, &c) == TUNA_OK);
    if (!m) return;
    CHECK(tuna_model_init_random(m, 11) == TUNA_OK && tuna_model_save(m, dir, TUNA_DTYPE_F32) == TUNA_OK);
    snprintf(path, sizeof path, "%s/spm_%s.gguf", tmpdir, name);
    tuna_tokenizer *src = NULL, *gg = NULL, *fo = NULL;
    CHECK(tuna_tokenizer_load(&src, dir) == TUNA_OK);
    if (cli) {
        snprintf(cmd, sizeof cmd, "%s export --model %s --format gguf --type f32 --out %s 2>/dev/null", test_cli, dir, path);
        CHECKF(system(cmd) == 0, "%s", cmd);
    } else if (src) {
        /* what `tuna export` passes: the tokenizer's special ids and whether it adds BOS / EOS */
        int32_t *e = NULL;
        size_t ne = 0;
        CHECK(tuna_tokenizer_encode(src, "", 0, 1, &e, &ne) == TUNA_OK);
        tuna_gguf_meta meta = {dir, tuna_tokenizer_chat_template(src), name, tuna_tokenizer_bos_id(src), tuna_tokenizer_eos_id(src), -1,
                               tuna_tokenizer_pad_id(src), ne == 1 && e[0] == tuna_tokenizer_bos_id(src), 0};
        free(e);
        CHECKF(tuna_export_gguf(m, &meta, "f32", path) == TUNA_OK, "%s: %s", name, tuna_last_error());
    }
    CHECKF(tuna_tokenizer_load(&gg, path) == TUNA_OK, "%s: %s", name, tuna_last_error());
    gguf_file f;
    if (!src || !gg || gguf_open(&f, path) != TUNA_OK) { CHECK(0); tuna_tokenizer_free(src); tuna_tokenizer_free(gg); tuna_model_free(m); return; }

    /* the keys llama.cpp reads */
    size_t n = 0;
    const char *s = gguf_get_str(&f, "tokenizer.ggml.model", &n);
    CHECKF(str_is(s, n, "llama"), "%s: tokenizer.ggml.model", name);
    s = gguf_get_str(&f, "tokenizer.ggml.pre", &n);
    CHECK(str_is(s, n, "default"));
    const gguf_kv *tok = gguf_find_kv(&f, "tokenizer.ggml.tokens"), *sc = gguf_find_kv(&f, "tokenizer.ggml.scores"),
                  *ty = gguf_find_kv(&f, "tokenizer.ggml.token_type"), *mg = gguf_find_kv(&f, "tuna.tokenizer.merges");
    CHECKF(tok && tok->arr_n == (uint64_t)V && sc && sc->arr_type == GGUF_T_F32 && sc->arr_n == (uint64_t)V && ty &&
           ty->arr_n == (uint64_t)V, "%s: tokens/scores/types of %d", name, V);
    CHECK(!gguf_find_kv(&f, "tokenizer.ggml.merges")); /* an SPM vocabulary has none; tuna keeps its own */
    CHECKF(mg && mg->arr_n == (uint64_t)n_merges_want, "%s: %llu merges kept", name, mg ? (unsigned long long)mg->arr_n : 0ULL);
    uint64_t v = 0;
    int32_t bos = tuna_tokenizer_bos_id(src), eos = tuna_tokenizer_eos_id(src);
    CHECK(gguf_get_u64(&f, "tokenizer.ggml.bos_token_id", &v) == 0 && (int32_t)v == bos);
    CHECK(gguf_get_u64(&f, "tokenizer.ggml.eos_token_id", &v) == 0 && (int32_t)v == eos);
    CHECK(gguf_get_u64(&f, "tokenizer.ggml.unknown_token_id", &v) == 0 && v == 0);
    CHECK(gguf_get_u64(&f, "tokenizer.ggml.add_space_prefix", &v) == 0 && v == 1);
    int32_t *pre = NULL;
    size_t npre = 0;
    CHECK(tuna_tokenizer_encode(src, "", 0, 1, &pre, &npre) == TUNA_OK);
    CHECK(gguf_get_u64(&f, "tokenizer.ggml.add_bos_token", &v) == 0 && (int)v == (npre == 1 && pre[0] == bos));
    CHECK(gguf_get_u64(&f, "tokenizer.ggml.add_eos_token", &v) == 0 && v == 0);
    free(pre);
    if (tok && sc && ty && tok->arr_n == (uint64_t)V && sc->arr_n == (uint64_t)V && ty->arr_n == (uint64_t)V) {
        int bytes = 0, bad_byte = 0, ctrl = 0, merged = 0, dup = 0;
        for (int i = 0; i < V; i++) {
            const char *t = gguf_arr_str(tok, (uint64_t)i, &n);
            int is_byte = n == 6 && !memcmp(t, "<0x", 3) && t[5] == '>';
            if (is_byte) bytes += arr_i32(ty, i) == 6;
            else bad_byte += arr_i32(ty, i) == 6;
            ctrl += arr_i32(ty, i) == 3;
            if (arr_i32(ty, i) == 1 && arr_f32(sc, i) > -(float)n_merges_want) merged++;
        }
        CHECKF(bytes == 256 && bad_byte == 0, "%s: %d byte tokens typed 6, %d others", name, bytes, bad_byte);
        CHECK(arr_i32(ty, 0) == 2);                                      /* <unk>: unknown */
        CHECK(bos >= 0 && arr_i32(ty, bos) == 3 && eos >= 0 && arr_i32(ty, eos) == 3); /* control */
        CHECK(ctrl >= 2);
        /* scores: minus the rank of the first merge making the token (the
         * first merge of all three files is "▁ t"), single characters below
         * every merged token, each merged token its own rank */
        int32_t t_id = tuna_tokenizer_token_to_id(src, "\xE2\x96\x81t"), a_id = tuna_tokenizer_token_to_id(src, "a");
        CHECK(t_id > 0 && arr_f32(sc, t_id) == 0.0f);
        CHECK(a_id > 0 && arr_f32(sc, a_id) <= -(float)n_merges_want);
        float *ss = malloc((size_t)V * sizeof *ss);
        int k = 0;
        for (int i = 0; ss && i < V; i++)
            if (arr_i32(ty, i) == 1 && arr_f32(sc, i) > -(float)n_merges_want) ss[k++] = arr_f32(sc, i);
        if (ss) qsort(ss, (size_t)k, sizeof *ss, cmp_f32);
        for (int i = 1; ss && i < k; i++) dup += ss[i] == ss[i - 1];
        free(ss);
        printf("gguf spm %s: %d tokens, %d made by merges, %d control, 256 bytes\n", name, V, merged, ctrl);
        CHECKF(merged > V / 2 && dup == 0, "%s: %d merged tokens", name, merged);
    }

    /* the rebuilt tokenizer encodes as tokenizer.json */
    const char *texts[] = {"Hello world!", " Hello", "  two  leading, then   three   spaces  ", "line one\nline two\n\n\tindented",
                           "digits 1234567890 3.14159 -42", "punctuation: (a), [b]; {c}! \xC2\xBFqu\xC3\xA9? \xC2\xABok\xC2\xBB",
                           "caf\xC3\xA9 na\xC3\xAFve Z\xC3\xBCrich", "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE \xE4\xB8\xAD\xE6\x96\x87 \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4",
                           "emoji \xF0\x9F\xA6\x99\xF0\x9F\x94\xA5 ok", "Hello</s>world", "Hello </s> world", "<s>[INST] Hi [/INST]",
                           "x<unk>y", "<|user|>\nHi<|end|>\n<|assistant|>\n", "", "                x"};
    int nt = (int)(sizeof texts / sizeof *texts), eq = 0;
    for (int i = 0; i < nt; i++) eq += same_ids(src, gg, texts[i], 0) + same_ids(src, gg, texts[i], 1);
    CHECKF(eq == 2 * nt, "%s: %d of %d encodings equal through the GGUF", name, eq, 2 * nt);
    CHECK(tuna_tokenizer_bos_id(gg) == bos && tuna_tokenizer_eos_id(gg) == eos && tuna_tokenizer_pad_id(gg) == tuna_tokenizer_pad_id(src));
    const char *ct = tuna_tokenizer_chat_template(src), *cg = tuna_tokenizer_chat_template(gg);
    CHECK((!ct && !cg) || (ct && cg && !strcmp(ct, cg)));
    int32_t ids[] = {1, 15043, 3186, 29991, 29871, 243, 162, 169, 156, 13, 2};
    char *da = NULL, *db = NULL;
    size_t la = 0, lb = 0;
    CHECK(tuna_tokenizer_decode(src, ids, 11, 0, &da, &la) == TUNA_OK && tuna_tokenizer_decode(gg, ids, 11, 0, &db, &lb) == TUNA_OK &&
          la == lb && !memcmp(da, db, la));
    free(da);
    free(db);

    /* without tuna's keys: merges made from the scores, llama.cpp's text handling */
    snprintf(foreign, sizeof foreign, "%s/spm_%s_foreign.gguf", tmpdir, name);
    CHECK(write_foreign(&f, foreign));
    CHECKF(tuna_tokenizer_load(&fo, foreign) == TUNA_OK, "%s foreign: %s", name, tuna_last_error());
    if (fo) {
        const char *plain[] = {"Hello world!", "x  two   three    four spaces  ", "line one\nline two\n\n\tindented",
                               "digits 1234567890 3.14159 -42", "caf\xC3\xA9 na\xC3\xAFve Z\xC3\xBCrich",
                               "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE \xE4\xB8\xAD\xE6\x96\x87", "emoji \xF0\x9F\xA6\x99 ok",
                               "The quick brown fox jumps over the lazy dog."};
        int pe = 0, np = (int)(sizeof plain / sizeof *plain);
        for (int i = 0; i < np; i++) pe += same_ids(src, fo, plain[i], 1);
        CHECKF(pe == np, "%s foreign: %d of %d plain texts equal", name, pe, np);
        /* llama.cpp puts a space in front of the text after a special token */
        int32_t *x = NULL, *y = NULL, end_s = tuna_tokenizer_token_to_id(src, "</s>");
        size_t nx = 0, ny = 0;
        CHECK(tuna_tokenizer_encode(fo, "</s>Hi", 6, 0, &x, &nx) == TUNA_OK && tuna_tokenizer_encode(src, "Hi", 2, 0, &y, &ny) == TUNA_OK &&
              nx == ny + 1 && x[0] == end_s && !memcmp(x + 1, y, ny * 4));
        free(x);
        free(y);
    }
    gguf_close(&f);

    /* f32 export -> import: the same logits */
    tuna_model *r = NULL;
    CHECKF(tuna_model_load(&r, path) == TUNA_OK, "%s: %s", name, tuna_last_error());
    if (r) {
        int T = 12;
        int32_t in[12];
        for (int i = 0; i < T; i++) in[i] = (i * 2719 + 5) % V;
        float *a = malloc((size_t)T * V * 4), *b = malloc((size_t)T * V * 4);
        CHECK(a && b && test_logits(m, in, T, a) && test_logits(r, in, T, b));
        CHECKF(a && b && !memcmp(a, b, (size_t)T * V * 4), "%s: f32 logits differ after export -> import", name);
        free(a);
        free(b);
        tuna_model_free(r);
    }
    tuna_tokenizer_free(src);
    tuna_tokenizer_free(gg);
    tuna_tokenizer_free(fo);
    tuna_model_free(m);
}

static void test_spm(void) {
    spm_case("llama2", 32000, 61249, 0);
    spm_case("Mistral-7B-v0.1", 32000, 58980, 0);
    /* through `tuna export` (which also encodes a sample conversation through
     * the file's vocabulary and template); Phi-3's embedding has 53 rows past
     * its 32011 ids: [PADi], unused */
    spm_case("phi-3-mini", 32064, 61249, 1);
}

/* gguf-lora: llama.cpp's adapter file. Its tensors, applied as llama.cpp
 * does (W + alpha/r * lora_b @ lora_a, both in the file's row order), must
 * give the merged model's exported weights: this checks the names, shapes,
 * alpha and B's row permutation for q and k. */
static void test_lora(void) {
    const char *base = "tests/fixtures/peft/llama_lora", *ad = "tests/fixtures/peft/llama_lora/expected";
    char lp[400], bp[400], mp[400], cmd[6000];
    snprintf(lp, sizeof lp, "%s/lora.gguf", tmpdir);
    snprintf(bp, sizeof bp, "%s/lora_base.gguf", tmpdir);
    snprintf(mp, sizeof mp, "%s/lora_merged.gguf", tmpdir);
    snprintf(cmd, sizeof cmd, "%s export --model %s --adapter %s --format gguf-lora --type f32 --out %s 2>/dev/null && "
             "%s export --model %s --format gguf --type f32 --out %s 2>/dev/null && "
             "%s export --model %s --adapter %s --format gguf --type f32 --out %s 2>/dev/null",
             test_cli, base, ad, lp, test_cli, base, bp, test_cli, base, ad, mp);
    CHECKF(system(cmd) == 0, "%s", cmd);
    gguf_file L, B, M;
    if (gguf_open(&L, lp) != TUNA_OK) { CHECK(0); return; }
    if (gguf_open(&B, bp) != TUNA_OK) { CHECK(0); gguf_close(&L); return; }
    if (gguf_open(&M, mp) != TUNA_OK) { CHECK(0); gguf_close(&L); gguf_close(&B); return; }
    size_t n;
    const char *s = gguf_get_str(&L, "general.type", &n);
    CHECK(s && n == 7 && !memcmp(s, "adapter", 7));
    s = gguf_get_str(&L, "adapter.type", &n);
    CHECK(s && n == 4 && !memcmp(s, "lora", 4));
    double alpha = 0;
    CHECK(gguf_get_f64(&L, "adapter.lora.alpha", &alpha) == 0 && alpha == 8.0);
    CHECK(L.n_tensors == 8); /* 2 layers x q,v x A,B */
    double worst = 0;
    int checked = 0;
    for (int l = 0; l < 2; l++)
        for (int w = 0; w < 2; w++) {
            char nb[128], na[128], nw[64];
            snprintf(nw, sizeof nw, "blk.%d.attn_%c.weight", l, w ? 'v' : 'q');
            snprintf(na, sizeof na, "%s.lora_a", nw);
            snprintf(nb, sizeof nb, "%s.lora_b", nw);
            const gguf_tensor *ta = gguf_find_tensor(&L, na), *tb = gguf_find_tensor(&L, nb), *tw = gguf_find_tensor(&B, nw),
                              *tm = gguf_find_tensor(&M, nw);
            CHECKF(ta && tb && tw && tm, "%s: tensors", nw);
            if (!ta || !tb || !tw || !tm) continue;
            int64_t in = tw->ne[0], out = tw->ne[1], r = ta->ne[1];
            CHECK(ta->ne[0] == in && tb->ne[0] == r && tb->ne[1] == out && r == 4);
            float *A = malloc((size_t)ta->numel * 4), *Bm = malloc((size_t)tb->numel * 4), *W = malloc((size_t)tw->numel * 4),
                  *Mm = malloc((size_t)tm->numel * 4);
            gguf_tensor_to_f32(&L, ta, A);
            gguf_tensor_to_f32(&L, tb, Bm);
            gguf_tensor_to_f32(&B, tw, W);
            gguf_tensor_to_f32(&M, tm, Mm);
            double num = 0, den = 0;
            for (int64_t o = 0; o < out; o++)
                for (int64_t i = 0; i < in; i++) {
                    double d = 0;
                    for (int64_t k = 0; k < r; k++) d += (double)Bm[o * r + k] * A[k * in + i];
                    double v = W[o * in + i] + alpha / (double)r * d, e = v - Mm[o * in + i];
                    num += e * e;
                    den += (double)Mm[o * in + i] * Mm[o * in + i];
                }
            double rel = sqrt(num / (den > 0 ? den : 1));
            if (rel > worst) worst = rel;
            checked++;
            free(A); free(Bm); free(W); free(Mm);
        }
    printf("gguf-lora: base + alpha/r B A vs the merged export, %d matrices, worst rel %.3g\n", checked, worst);
    CHECKF(checked == 4 && worst < 1e-6, "gguf-lora applied: worst rel %.3g over %d", worst, checked);
    gguf_close(&L);
    gguf_close(&B);
    gguf_close(&M);
}

static int dir_entries(const char *dir) {
    int n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* a NaN or infinite weight has no Q8_0/Q4_0 code: refused with the tensor
 * named, and nothing written (no file, no temporary) */
static void test_non_finite(void) {
    tuna_model *m = NULL;
    CHECKF(tuna_model_load(&m, "tests/fixtures/parity/llama_gqa") == TUNA_OK, "non-finite: committed fixture tests/fixtures/parity/llama_gqa loads: %s", tuna_last_error());
    if (!m) return;
    char dir[400], path[450];
    snprintf(dir, sizeof dir, "%s/nonfinite", tmpdir);
    CHECK(mkdir(dir, 0755) == 0);
    const char *types[] = {"q8_0", "q4_0"};
    const char *hf[] = {"model.layers.1.mlp.down_proj.weight", "model.layers.0.mlp.up_proj.weight"};
    const char *gg[] = {"blk.1.ffn_down.weight", "blk.0.ffn_up.weight"};
    const float bad[] = {NAN, -INFINITY};
    tuna_gguf_meta meta = {NULL, NULL, "nonfinite", -1, -1, -1, -1, 0, 0};
    for (int k = 0; k < 2; k++) {
        const tuna_param *p = tuna_model_find_param(m, hf[k]);
        CHECK(p != NULL);
        if (!p) continue;
        float keep = p->data[5];
        p->data[5] = bad[k];
        snprintf(path, sizeof path, "%s/bad_%s.gguf", dir, types[k]);
        tuna_status st = tuna_export_gguf(m, &meta, types[k], path);
        CHECKF(st == TUNA_ERR_NUMERIC && strstr(tuna_last_error(), gg[k]) && strstr(tuna_last_error(), "element 5 "),
               "%s with %g: status %d, '%s'", types[k], (double)bad[k], st, tuna_last_error());
        CHECKF(dir_entries(dir) == 0, "%s: %d files written", types[k], dir_entries(dir));
        p->data[5] = keep;
        CHECKF(tuna_export_gguf(m, &meta, types[k], path) == TUNA_OK, "%s restored: %s", types[k], tuna_last_error());
        unlink(path);
    }
    tuna_model_free(m);
}

/* a GGUF header: magic, version 3, tensor and key/value counts */
static void put_header(uint8_t *b, uint64_t n_tensors, uint64_t n_kv) {
    uint32_t ver = 3;
    memcpy(b, "GGUF", 4);
    memcpy(b + 4, &ver, 4);
    memcpy(b + 8, &n_tensors, 8);
    memcpy(b + 16, &n_kv, 8);
}

/* counts the file cannot hold are refused from the header, before any table
 * is allocated: 9 MiB of zeros claiming 10^6 tensors (each needs >= 32 bytes)
 * or 10^6 key/values (>= 13 bytes); a key longer than GGUF's 65535 bytes */
static void test_counts(void) {
    size_t size = 9u << 20;
    uint8_t *b = calloc(size, 1);
    CHECK(b != NULL);
    if (!b) return;
    gguf_file f;
    put_header(b, 1000000, 0);
    tuna_status st = gguf_parse(&f, b, size, "many_tensors.gguf");
    CHECKF(st == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "0 key/values and 1000000 tensors cannot fit"), "status %d: %s", st,
           tuna_last_error());
    put_header(b, 0, 1000000);
    st = gguf_parse(&f, b, size, "many_keys.gguf");
    CHECKF(st == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "1000000 key/values and 0 tensors cannot fit"), "status %d: %s", st,
           tuna_last_error());
    put_header(b, 0, 1);
    uint64_t key_len = 70000;
    memcpy(b + 24, &key_len, 8);
    st = gguf_parse(&f, b, size, "long_key.gguf");
    CHECKF(st == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "70000 bytes long (GGUF keys have at most 65535)"), "status %d: %s", st,
           tuna_last_error());
    free(b);
}

static void test_damaged(void) {
    char src[400], bad[400], cmd[4800];
    snprintf(src, sizeof src, "%s/stories_f32.gguf", tmpdir);
    snprintf(bad, sizeof bad, "%s/cut.gguf", tmpdir);
    snprintf(cmd, sizeof cmd, "head -c 300000 %s > %s", src, bad);
    CHECK(system(cmd) == 0);
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, bad) == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "runs past the end"));
    snprintf(cmd, sizeof cmd, "head -c 100 %s > %s", src, bad);
    CHECK(system(cmd) == 0);
    CHECK(tuna_model_load(&m, bad) == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "cut.gguf"));
    snprintf(cmd, sizeof cmd, "%s info --model %s >/dev/null 2>&1", test_cli, bad);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    /* training starts from a folder: a GGUF model is refused with one line, exit 2 */
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data tests/fixtures/sft/llama_constant/data.jsonl --out %s/nosft 2>&1 | grep -q 'is a GGUF file'",
             test_cli, src, tmpdir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s dpo --model %s --data tests/fixtures/dpo/full_sigmoid/data.jsonl --out %s/nodpo >/dev/null 2>&1", test_cli,
             src, tmpdir);
    rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (!mkdtemp(tmpdir)) return 1;
    test_blocks();
    round_trip("tests/fixtures/parity/llama_gqa", "llama_gqa", NULL);
    round_trip("tests/fixtures/parity/gpt2", "gpt2", NULL);
    round_trip("models/tuna-stories", "stories", "models/tuna-stories");
    test_metadata();
    test_gguf_tokenizer();
    test_spm();
    test_lora();
    test_non_finite();
    test_counts();
    test_damaged();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) {}
    return test_done();
}
