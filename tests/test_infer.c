/* test_infer.c — KV-cache decoding against full forwards:
 *  - each step's logits equal the uncached forward over the whole prefix
 *    (last position) within 1e-5 relative, for every parity model family;
 *  - greedy decoding with the cache gives exactly the argmax sequence of
 *    repeated full forwards;
 *  - rows of different lengths decoded together equal rows decoded alone;
 *  - LoRA unmerged equals the merged model; prompt tuning equals the base
 *    model with the virtual tokens' embeddings as a prefix; an NF4 base
 *    decodes like its own full forward;
 *  - bad steps (ids, context, rows) are errors, not crashes. */
#include <jansson.h>
#include <unistd.h>

#include "check.h"
#include "model_probe.h"
#include "tuna.h"
#include "tuna_infer.h"
#include "tuna_peft.h"
#include "tuna_sample.h"
#include "tuna_tokenizer.h"

static void make_ids(int32_t *ids, int n, int V, unsigned seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        ids[i] = (int)((seed >> 8) % (unsigned)V);
    }
}

/* logits of the last position of ids[0..T) by a full (uncached) forward */
static int full_last_logits(tuna_model *m, const int32_t *ids, int T, float *out) {
    if (tuna_model_prepare(m, 1, T, TUNA_MODE_EVAL) != TUNA_OK) return 0;
    tuna_batch bt = {.B = 1, .T = T, .input_ids = ids};
    if (tuna_model_forward(m, &bt, NULL) != TUNA_OK) return 0;
    int V = tuna_model_config(m)->V, TT = T + probe_virtual_tokens(m);
    memcpy(out, tuna_model_logits(m) + (size_t)(TT - 1) * V, (size_t)V * sizeof(float));
    return 1;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* prefill a prompt, then greedy steps; compare logits and tokens with full forwards */
static double check_model(tuna_model *m, const char *name, int prompt_len, int steps) {
    const tuna_config *c = tuna_model_config(m);
    int V = c->V, total = prompt_len + steps;
    int32_t *ids = malloc((size_t)total * sizeof *ids);
    float *lc = malloc((size_t)V * sizeof(float)), *lf = malloc((size_t)V * sizeof(float));
    make_ids(ids, prompt_len, V, 17);
    tuna_decoder *d = NULL;
    CHECK(tuna_decoder_create(&d, m, 2, 64, 64) == TUNA_OK);
    double worst = 0;
    int row = 1, same_tokens = 1;
    if (d) {
        CHECK(tuna_decoder_step(d, &row, 1, ids, prompt_len, lc) == TUNA_OK);
        for (int s = 0; s < steps; s++) {
            int T = prompt_len + s;
            CHECK(full_last_logits(m, ids, T, lf));
            worst = fmax(worst, rel_l2(lc, lf, V));
            int next = argmax(lc, V);
            same_tokens &= next == argmax(lf, V);
            ids[T] = next;
            if (s + 1 < steps) CHECK(tuna_decoder_step(d, &row, 1, &ids[T], 1, lc) == TUNA_OK);
        }
        CHECK(tuna_decoder_length(d, row) == prompt_len + steps - 1 + probe_virtual_tokens(m));
    }
    CHECKF(worst <= 1e-5, "%s: cached vs full logits rel %.3g", name, worst);
    CHECKF(same_tokens, "%s: greedy tokens with the cache differ from repeated full forwards", name);
    printf("%s: %d prompt + %d greedy tokens, cached vs full logits worst rel %.2g\n", name, prompt_len, steps, worst);
    tuna_decoder_free(d);
    free(ids);
    free(lc);
    free(lf);
    return worst;
}

static void test_families(void) {
    const char *names[] = {"gpt2", "gpt2_noprefix", "llama_gqa", "llama_tied", "mistral", "qwen2"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char dir[200];
        snprintf(dir, sizeof dir, "tests/fixtures/parity/%s", names[i]);
        tuna_model *m = NULL;
        CHECKF(tuna_model_load(&m, dir) == TUNA_OK, "%s: %s", dir, tuna_last_error());
        if (!m) continue;
        check_model(m, names[i], 7, 9);
        tuna_model_free(m);
    }
}

/* two rows of different lengths stepping together equal each row alone */
static void test_batched_rows(void) {
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, "tests/fixtures/parity/llama_gqa") == TUNA_OK);
    if (!m) return;
    int V = tuna_model_config(m)->V;
    int32_t a[12], b[12];
    make_ids(a, 12, V, 3);
    make_ids(b, 12, V, 4);
    float *l2 = malloc((size_t)2 * V * sizeof(float)), *l1 = malloc((size_t)V * sizeof(float));
    tuna_decoder *d = NULL, *s = NULL;
    CHECK(tuna_decoder_create(&d, m, 2, 32, 32) == TUNA_OK && tuna_decoder_create(&s, m, 1, 32, 32) == TUNA_OK);
    int rows[2] = {0, 1}, r0 = 0;
    /* prompts of 5 and 9 tokens, then 3 joint steps */
    CHECK(tuna_decoder_step(d, &rows[0], 1, a, 5, l2) == TUNA_OK);
    CHECK(tuna_decoder_step(d, &rows[1], 1, b, 9, l2) == TUNA_OK);
    double worst = 0;
    for (int t = 0; t < 3; t++) {
        int32_t next[2] = {a[5 + t], b[9 + t]};
        CHECK(tuna_decoder_step(d, rows, 2, next, 1, l2) == TUNA_OK);
        /* row 1 alone */
        tuna_decoder_reset(s, 0);
        CHECK(tuna_decoder_step(s, &r0, 1, b, 10 + t, l1) == TUNA_OK);
        worst = fmax(worst, rel_l2(l2 + V, l1, V));
        tuna_decoder_reset(s, 0);
        CHECK(tuna_decoder_step(s, &r0, 1, a, 6 + t, l1) == TUNA_OK);
        worst = fmax(worst, rel_l2(l2, l1, V));
    }
    CHECKF(worst <= 1e-5, "batched rows vs alone: rel %.3g", worst);
    printf("rows of 5 and 9 tokens decoded together vs alone: worst rel %.2g\n", worst);
    /* errors */
    int32_t bad = V;
    CHECK(tuna_decoder_step(d, rows, 1, &bad, 1, l2) == TUNA_ERR_ARG);
    int32_t many[40] = {0};
    CHECK(tuna_decoder_step(d, rows, 1, many, 25, l2) == TUNA_ERR_ARG); /* 8 + 25 > 32 positions */
    int dup[2] = {1, 1};
    CHECK(tuna_decoder_step(d, dup, 2, many, 1, l2) == TUNA_ERR_ARG);
    tuna_decoder_free(d);
    tuna_decoder_free(s);
    free(l1);
    free(l2);
    tuna_model_free(m);
}

/* LoRA unmerged through the cache equals the merged model; NF4 and prompt tuning */
static void test_adapters(void) {
    const char *dir = "tests/fixtures/peft/llama_lora";
    tuna_model *m = NULL, *merged = NULL, *q = NULL, *p = NULL, *base = NULL;
    CHECK(tuna_model_load(&m, dir) == TUNA_OK && tuna_model_load(&merged, dir) == TUNA_OK);
    if (!m || !merged) return;
    CHECK(tuna_peft_load(m, "tests/fixtures/peft/llama_lora/expected") == TUNA_OK);
    CHECK(tuna_peft_load(merged, "tests/fixtures/peft/llama_lora/expected") == TUNA_OK && tuna_peft_merge(merged) == TUNA_OK);
    check_model(m, "llama LoRA (unmerged)", 6, 8);
    int V = tuna_model_config(m)->V, row = 0;
    int32_t ids[10];
    make_ids(ids, 10, V, 5);
    float *x = malloc((size_t)V * sizeof(float)), *y = malloc((size_t)V * sizeof(float));
    tuna_decoder *d1 = NULL, *d2 = NULL;
    CHECK(tuna_decoder_create(&d1, m, 1, 32, 32) == TUNA_OK && tuna_decoder_create(&d2, merged, 1, 32, 32) == TUNA_OK);
    CHECK(tuna_decoder_step(d1, &row, 1, ids, 10, x) == TUNA_OK && tuna_decoder_step(d2, &row, 1, ids, 10, y) == TUNA_OK);
    double e = rel_l2(x, y, V);
    CHECKF(e <= 1e-5, "LoRA unmerged vs merged through the cache: rel %.3g", e);
    tuna_decoder_free(d1);
    tuna_decoder_free(d2);
    /* NF4 base */
    CHECK(tuna_model_load_quantized(&q, dir, TUNA_QUANT_NF4) == TUNA_OK);
    if (q) check_model(q, "llama NF4 base", 6, 6);
    /* prompt tuning: virtual tokens = embeddings of ids 3 1 4 -> base model on 3 1 4 + input */
    CHECK(tuna_model_load(&p, dir) == TUNA_OK && tuna_model_load(&base, dir) == TUNA_OK);
    if (p && base) {
        tuna_peft_config pc;
        tuna_peft_config_default(&pc, TUNA_PEFT_PROMPT);
        pc.num_virtual_tokens = 3;
        int32_t pre[3] = {3, 1, 4}, full[13];
        CHECK(tuna_peft_attach(p, &pc, 1) == TUNA_OK && tuna_peft_prompt_init_tokens(p, pre, 3) == TUNA_OK);
        memcpy(full, pre, sizeof pre);
        memcpy(full + 3, ids, sizeof ids);
        check_model(p, "llama prompt tuning", 5, 5);
        CHECK(tuna_decoder_create(&d1, p, 1, 32, 32) == TUNA_OK && tuna_decoder_create(&d2, base, 1, 32, 32) == TUNA_OK);
        CHECK(tuna_decoder_step(d1, &row, 1, ids, 10, x) == TUNA_OK && tuna_decoder_step(d2, &row, 1, full, 13, y) == TUNA_OK);
        double e2 = rel_l2(x, y, V);
        CHECKF(e2 <= 1e-6, "prompt tuning through the cache vs base on the prefix: rel %.3g", e2);
        CHECK(tuna_decoder_length(d1, 0) == 13);
        tuna_decoder_free(d1);
        tuna_decoder_free(d2);
    }
    free(x);
    free(y);
    tuna_model_free(m);
    tuna_model_free(merged);
    tuna_model_free(q);
    tuna_model_free(p);
    tuna_model_free(base);
}

/* `tuna generate` end to end on a small model with a trained tokenizer:
 * greedy --json ids equal the argmax of repeated full forwards; a stop
 * string cuts the text before it */
static void test_generate_cli(void) {
    char d[256], cmd[4096], path[600];
    snprintf(d, sizeof d, "/tmp/tuna_infer_%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "mkdir -p %s/model", d);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/text.txt", d);
    FILE *f = fopen(path, "w");
    const char *w[] = {"once", "upon", "a", "time", "there", "was", "a", "little", "cat", "who", "liked", "fish"};
    for (int i = 0; i < 300; i++) fprintf(f, "%s %s %s %s %s.\n", w[i % 12], w[(i + 1) % 12], w[(i * 5 + 2) % 12], w[(i * 7 + 3) % 12], w[(i + 4) % 12]);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s tokenizer train --data %s --vocab-size 300 --out %s/model >/dev/null 2>&1", test_cli, path, d);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/arch.json", d);
    f = fopen(path, "w");
    fprintf(f, "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":300,\"hidden_size\":32,"
               "\"intermediate_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
               "\"max_position_embeddings\":128,\"tie_word_embeddings\":true}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s init --config %s --out %s/model --seed 5 >/dev/null", test_cli, path, d);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s generate --model %s/model --prompt 'once upon a time' --temperature 0 --max-new-tokens 12 --json > %s/g.json",
             test_cli, d, d);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/g.json", d);
    json_t *o = json_load_file(path, 0, NULL);
    CHECK(o != NULL);
    tuna_model *m = NULL;
    tuna_tokenizer *tok = NULL;
    snprintf(path, sizeof path, "%s/model", d);
    CHECK(tuna_model_load(&m, path) == TUNA_OK && tuna_tokenizer_load(&tok, path) == TUNA_OK);
    if (o && m && tok) {
        int32_t *p = NULL, ids[64];
        size_t n = 0;
        CHECK(tuna_tokenizer_encode(tok, "once upon a time", 16, 1, &p, &n) == TUNA_OK);
        memcpy(ids, p, n * sizeof *p);
        free(p);
        int V = tuna_model_config(m)->V, want = 0, eos = tuna_tokenizer_eos_id(tok);
        float *lg = malloc((size_t)V * sizeof(float));
        int32_t expect[12];
        for (int s = 0; s < 12; s++) {
            full_last_logits(m, ids, (int)n + s, lg);
            int a = argmax(lg, V);
            if (a == eos) break;
            expect[want++] = ids[n + s] = a;
        }
        json_t *got = json_object_get(o, "ids");
        int same = (int)json_array_size(got) == want;
        for (int i = 0; same && i < want; i++) same = json_integer_value(json_array_get(got, i)) == expect[i];
        CHECKF(same, "generate --temperature 0: %zu ids, expected %d greedy ids", json_array_size(got), want);
        CHECK(json_integer_value(json_object_get(o, "prompt_tokens")) == (json_int_t)n);
        CHECK(json_integer_value(json_object_get(o, "completion_tokens")) == want);
        const char *fr = json_string_value(json_object_get(o, "finish_reason"));
        CHECK(fr && !strcmp(fr, want == 12 ? "length" : "stop"));
        /* a stop string taken from the middle of that text */
        const char *text = json_string_value(json_object_get(o, "text"));
        size_t tl = text ? strlen(text) : 0;
        CHECKF(tl >= 4, "greedy text '%s' too short to take a stop string from", text ? text : "(none)");
        if (tl >= 4) {
            char stop[3] = {text[tl / 2], text[tl / 2 + 1], 0};
            const char *first = strstr(text, stop);
            snprintf(cmd, sizeof cmd, "%s generate --model %s/model --prompt 'once upon a time' --temperature 0 --max-new-tokens 12 "
                                      "--stop '%s' --json > %s/g2.json", test_cli, d, stop, d);
            CHECK(system(cmd) == 0);
            snprintf(path, sizeof path, "%s/g2.json", d);
            json_t *o2 = json_load_file(path, 0, NULL);
            const char *t2 = o2 ? json_string_value(json_object_get(o2, "text")) : NULL;
            CHECKF(t2 && strlen(t2) == (size_t)(first - text) && !strncmp(t2, text, strlen(t2)), "stop '%s': '%s' from '%s'", stop,
                   t2 ? t2 : "(none)", text);
            CHECK(o2 && !strcmp(json_string_value(json_object_get(o2, "finish_reason")), "stop"));
            json_decref(o2);
        }
        free(lg);
    }
    json_decref(o);
    tuna_model_free(m);
    tuna_tokenizer_free(tok);
    /* tuna chat keeps the conversation: the second turn's prompt holds the first exchange; /reset forgets it */
    snprintf(cmd, sizeof cmd, "printf 'hello\\nhow are you\\n/reset\\nhello\\n' | %s chat --model %s/model --temperature 0 "
                              "--max-new-tokens 4 --json > %s/chat.jsonl", test_cli, d, d);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/chat.jsonl", d);
    FILE *cf = fopen(path, "r");
    long pt[3] = {0, 0, 0};
    char line[4096];
    int turns = 0;
    while (cf && turns < 3 && fgets(line, sizeof line, cf)) {
        json_t *t = json_loads(line, 0, NULL);
        pt[turns++] = (long)json_integer_value(json_object_get(t, "prompt_tokens"));
        json_decref(t);
    }
    if (cf) fclose(cf);
    CHECKF(turns == 3 && pt[1] > pt[0] + 4 && pt[2] == pt[0], "chat prompt tokens per turn %ld %ld %ld", pt[0], pt[1], pt[2]);
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", d);
}

/* The converted stories260K continues from BOS exactly as llama2.c's run.c
 * does at temperature 0 (256 steps; reference ids in ../shared, produced by
 * an independent re-implementation and checked by tools/make_parity_fixtures.py) */
static void test_stories260K_greedy(void) {
    const char *ckpt = test_shared_path("llama2c/stories260K/stories260K.bin", "stories260K greedy continuation");
    const char *tok = ckpt ? test_shared_path("llama2c/stories260K/tok512.bin", "stories260K greedy continuation") : NULL;
    const char *ref = tok ? test_shared_path("llama2c/stories260K/greedy_t0_steps256.json", "stories260K greedy continuation") : NULL;
    if (!ref) return;
    char dir[128], cmd[4096];
    snprintf(dir, sizeof dir, "/tmp/tuna_infer_s260_%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s convert llama2c --checkpoint '%s' --tokenizer '%s' --out %s >/dev/null", test_cli, ckpt, tok, dir);
    CHECK(system(cmd) == 0);
    json_t *o = json_load_file(ref, 0, NULL);
    json_t *ids = json_object_get(o, "token_ids_including_bos");
    tuna_model *m = NULL;
    CHECK(json_array_size(ids) > 100 && tuna_model_load(&m, dir) == TUNA_OK);
    if (m && json_array_size(ids) > 100) {
        int n = (int)json_array_size(ids), V = tuna_model_config(m)->V, row = 0, same = 0;
        float *lg = malloc((size_t)V * sizeof(float));
        tuna_decoder *d = NULL;
        CHECK(tuna_decoder_create(&d, m, 1, n, 1) == TUNA_OK);
        int32_t cur = (int32_t)json_integer_value(json_array_get(ids, 0));
        for (int t = 1; d && t < n; t++) {
            if (tuna_decoder_step(d, &row, 1, &cur, 1, lg) != TUNA_OK) break;
            cur = argmax(lg, V);
            if (cur != json_integer_value(json_array_get(ids, t))) break;
            same++;
        }
        CHECKF(same == n - 1, "stories260K greedy with the KV cache matches llama2.c for %d of %d steps", same, n - 1);
        printf("stories260K: greedy continuation from BOS equals llama2.c's for all %d of %d steps\n", same, n - 1);
        tuna_decoder_free(d);
        free(lg);
    }
    json_decref(o);
    tuna_model_free(m);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* --- sampling: known answers and distributions --- */
static int draw(const tuna_sample_args *a, const float *logits, int V, const int32_t *ctx, int nctx, int *counts, int n) {
    tuna_sampler *s = NULL;
    if (tuna_sampler_create(&s, V, a) != TUNA_OK) return 0;
    float *x = malloc((size_t)V * sizeof(float));
    for (int i = 0; i < n; i++) {
        memcpy(x, logits, (size_t)V * sizeof(float));
        counts[tuna_sampler_next(s, x, ctx, nctx)]++;
    }
    free(x);
    tuna_sampler_free(s);
    return 1;
}

static void test_sampling(void) {
    tuna_sample_args a;
    tuna_sample_args_default(&a);
    CHECK(a.temperature == 1.0f && a.top_k == 50 && a.top_p == 1.0f && a.repetition_penalty == 1.0f);
    float lg[4];
    int cnt[4];
    /* greedy: argmax, ties to the lowest id */
    float tie[4] = {1, 3, 3, 2};
    a.temperature = 0;
    memset(cnt, 0, sizeof cnt);
    CHECK(draw(&a, tie, 4, NULL, 0, cnt, 5) && cnt[1] == 5);
    /* repetition penalty: id 1 (positive, 3 -> 1.5) and id 3 (negative: -1 -> -2), each once however often repeated */
    float rp[4] = {2, 3, 0, -1};
    int32_t ctx[5] = {1, 1, 3, 1, 3};
    a.repetition_penalty = 2;
    memset(cnt, 0, sizeof cnt);
    CHECK(draw(&a, rp, 4, ctx, 5, cnt, 1) && cnt[0] == 1); /* 2 > 1.5 */
    tuna_sampler *s = NULL;
    CHECK(tuna_sampler_create(&s, 4, &a) == TUNA_OK);
    float x[4];
    memcpy(x, rp, sizeof x);
    tuna_sampler_next(s, x, ctx, 5);
    CHECK(x[0] == 2 && x[1] == 1.5f && x[2] == 0 && x[3] == -2);
    tuna_sampler_free(s);
    a.repetition_penalty = 1;
    /* distribution at temperature 1 and 0.5 */
    float p3[3] = {logf(0.7f), logf(0.2f), logf(0.1f)};
    a.temperature = 1;
    a.top_k = 0;
    a.seed = 3;
    int c3[3] = {0};
    CHECK(draw(&a, p3, 3, NULL, 0, c3, 20000));
    CHECKF(fabs(c3[0] / 20000.0 - 0.7) < 0.01 && fabs(c3[1] / 20000.0 - 0.2) < 0.01, "T=1 frequencies %d %d %d", c3[0], c3[1], c3[2]);
    a.temperature = 0.5f; /* p^2 normalised: 0.49, 0.04, 0.01 over 0.54 */
    memset(c3, 0, sizeof c3);
    CHECK(draw(&a, p3, 3, NULL, 0, c3, 20000));
    CHECKF(fabs(c3[0] / 20000.0 - 0.49 / 0.54) < 0.01, "T=0.5 frequency of id 0: %d", c3[0]);
    a.temperature = 1;
    /* top-k 1 is greedy whatever the seed; top-p 0.8 over 0.5/0.3/0.15/0.05 keeps {0,1};
     * min-p 0.3 over 0.6/0.3/0.1 keeps {0,1} */
    float p4[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    a.top_k = 1;
    memset(cnt, 0, sizeof cnt);
    CHECK(draw(&a, p4, 4, NULL, 0, cnt, 500) && cnt[0] == 500);
    a.top_k = 0;
    a.top_p = 0.8f;
    memset(cnt, 0, sizeof cnt);
    CHECK(draw(&a, p4, 4, NULL, 0, cnt, 4000) && cnt[2] == 0 && cnt[3] == 0 && cnt[0] > 0 && cnt[1] > 0);
    a.top_p = 1;
    a.min_p = 0.3f;
    float p3b[3] = {logf(0.6f), logf(0.3f), logf(0.1f)};
    memset(c3, 0, sizeof c3);
    CHECK(draw(&a, p3b, 3, NULL, 0, c3, 4000) && c3[2] == 0 && c3[1] > 0);
    a.min_p = 0;
    /* same seed, same draws; another seed, other draws */
    float flat[64];
    for (int i = 0; i < 64; i++) flat[i] = 0;
    int32_t seq[3][32];
    for (int k = 0; k < 3; k++) {
        a.seed = k == 2 ? 9 : 4;
        CHECK(tuna_sampler_create(&s, 64, &a) == TUNA_OK);
        for (int i = 0; i < 32; i++) {
            memcpy(lg, flat, sizeof lg);
            float y[64];
            memcpy(y, flat, sizeof y);
            seq[k][i] = tuna_sampler_next(s, y, NULL, 0);
        }
        tuna_sampler_free(s);
    }
    CHECK(!memcmp(seq[0], seq[1], sizeof seq[0]) && memcmp(seq[0], seq[2], sizeof seq[0]));
    /* bad arguments */
    a.top_p = 0;
    CHECK(tuna_sampler_create(&s, 4, &a) == TUNA_ERR_ARG && strstr(tuna_last_error(), "top_p"));
    a.top_p = 1;
    a.temperature = -1;
    CHECK(tuna_sampler_create(&s, 4, &a) == TUNA_ERR_ARG && strstr(tuna_last_error(), "temperature"));
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    test_families();
    test_batched_rows();
    test_adapters();
    test_sampling();
    test_stories260K_greedy();
    test_generate_cli();
    return test_done();
}
