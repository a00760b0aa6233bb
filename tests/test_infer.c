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
#include "check.h"
#include "model/model_internal.h"
#include "tuna.h"
#include "tuna_infer.h"
#include "tuna_peft.h"

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
    int V = tuna_model_config(m)->V, TT = T + m->acts.P;
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
        CHECK(tuna_decoder_length(d, row) == prompt_len + steps - 1 + (m->peft ? m->peft->P : 0));
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
        if (tuna_model_load(&m, dir) != TUNA_OK) { test_skip(names[i], "fixture not loadable"); continue; }
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

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    test_families();
    test_batched_rows();
    test_adapters();
    return test_done();
}
