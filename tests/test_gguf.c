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
 *  - damaged files: one clear error, no crash. */
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
    uint16_t d = tuna_f32_to_f16(16.0f / 127.0f);
    CHECK(q[0] == (d & 0xFF) && q[1] == (d >> 8));
    ok = 1;
    for (int j = 0; j < 32; j++) ok &= (int8_t)q[2 + j] == (int8_t)lrintf((float)(j - 16) * 127.0f / 16.0f);
    CHECKF(ok && (int8_t)q[2] == -127, "Q8_0 codes");
}


/* exports src as each type and compares the reloaded logits */
static void round_trip(const char *src, const char *label, const char *tokdir) {
    tuna_model *m = NULL;
    if (tuna_model_load(&m, src) != TUNA_OK) { test_skip(label, "model not present"); return; }
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
        tuna_gguf_meta meta = {tokdir, NULL, label, -1, -1, -1, -1, 0};
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
    test_lora();
    test_damaged();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) {}
    return test_done();
}
