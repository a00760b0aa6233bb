/* test_lmhead.c — lm_head and cross-entropy in chunks of rows (src/model/head.c).
 * 1. Chunked = unchunked: on the parity fixtures (GPT-2 tied, Llama untied,
 *    Qwen2 with biases; plain and with a LoRA adapter, whose base head is
 *    frozen), in every mode, a forward + backward with chunks of 3 and 4 rows
 *    (7 and 6 chunks of a 3 x 7 batch, the last one partial) gives the loss,
 *    the per-row losses, the logits (tuna_model_logits, rebuilt whole on
 *    demand) and every trainable gradient of one chunk covering all rows.
 *    With LoRA the frozen head's input gradient is formed in the forward
 *    (weight 1) and scaled in backward: compared, in chunks and whole, with
 *    the plain path (the head given a throwaway weight gradient).
 *    Budget 1e-5 relative: the only change is the order of fp32 sums (the
 *    head's weight gradient chunk by chunk, the loss per chunk, GEMMs of 3
 *    or 4 rows instead of 21), measured at 1e-7 (plain) to 5e-7 (the LoRA
 *    gradients, small sums with cancellation), far below what a missed,
 *    repeated or shifted chunk gives (> 1e-2).
 * 2. The activation block of a 128,256 vocabulary at B=4, T=256 holds one
 *    chunk of logits (HEAD_CHUNK_BYTES / (4V) rows), not N x V floats.
 * 3. Training every weight in bf16, a chunk may take 256 MiB: at V = 65,536
 *    and 2 x 160 rows (80 MiB of logits) fp32 takes chunks of 256 rows, bf16
 *    one chunk of all 320 (nothing computed again in backward), with the loss
 *    and gradients of bf16 in chunks of 256 within 1e-3: measured 3.1e-4,
 *    a tenth of bf16's distance to fp32 (2.9e-3); the same bf16 inputs, but
 *    oneDNN orders the fp32 sums of the 65,536-term input gradient by the
 *    rows it is given (fp32 with OpenBLAS: 1.2e-7, held to 1e-5).
 * Tests run from the repository root. */
#include <math.h>

#include "check.h"
#include "core/rng.h"
#include "model_probe.h"
#include "tuna.h"
#include "tuna_peft.h"

enum { B = 3, T = 7, N = B * T };

typedef struct {
    double loss;
    int64_t tokens;
    double rows[B];
    float *logits; /* [N,V] */
    float *grads;  /* [trainable] */
} result;

/* ids from the vocabulary; labels likewise with every fifth not counted */
static void fill_batch(int32_t *ids, int32_t *labels, int V) {
    tuna_rng rng;
    rng_seed(&rng, 21, 5);
    for (int i = 0; i < N; i++) {
        ids[i] = (int32_t)(rng_u32(&rng) % (uint32_t)V);
        labels[i] = i % 5 == 2 ? -100 : (int32_t)(rng_u32(&rng) % (uint32_t)V);
    }
}

/* forward, row losses, logits, backward from zero gradients with chunks of `rows` */
static void run(tuna_model *m, int rows, int mode, result *r) {
    int32_t ids[N], lab[N];
    int V = tuna_model_config(m)->V;
    fill_batch(ids, lab, V);
    const float rw[B] = {1.0f, 0.5f, -2.0f}; /* DPO-style row weights, one negative */
    tuna_batch bt = {.B = B, .T = T, .input_ids = ids, .labels = lab, .row_weight = rw};
    probe_set_head_rows(m, rows);
    CHECK(tuna_model_prepare(m, B, T, mode) == TUNA_OK);
    CHECKF(probe_head_rows(m) == rows, "prepared %d rows per chunk, want %d", probe_head_rows(m), rows);
    tuna_loss l = {0};
    CHECK(tuna_model_forward(m, &bt, &l) == TUNA_OK);
    r->loss = l.loss_sum;
    r->tokens = l.tokens;
    CHECK(tuna_model_row_losses(m, B, T, r->rows) == TUNA_OK);
    const float *lg = tuna_model_logits(m);
    CHECK(lg != NULL);
    if (lg) memcpy(r->logits, lg, (size_t)N * V * sizeof(float));
    if (mode == TUNA_MODE_EVAL) return;
    tuna_model_zero_grad(m);
    CHECK(tuna_model_backward(m, &bt, 1.0f / (float)l.tokens) == TUNA_OK);
    int64_t n;
    const float *g = probe_trainable_grads(m, &n);
    memcpy(r->grads, g, (size_t)n * sizeof(float));
}

static double rel(double a, double b) { return fabs(a - b) / (fabs(b) > 1e-30 ? fabs(b) : 1e-30); }

/* worst relative difference of a chunked run against the one-chunk run */
static double compare(const result *c, const result *w, long nlog, long ngrad) {
    CHECK(c->tokens == w->tokens);
    double e = rel(c->loss, w->loss);
    for (int b = 0; b < B; b++) e = fmax(e, rel(c->rows[b], w->rows[b]));
    e = fmax(e, rel_l2(c->logits, w->logits, nlog));
    if (ngrad) e = fmax(e, rel_l2(c->grads, w->grads, ngrad));
    return e;
}

static void test_chunks(const char *fix, int lora) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fixtures/parity/%s", fix);
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, dir) == TUNA_OK);
    if (!m) return;
    if (lora) {
        tuna_peft_config pc;
        tuna_peft_config_default(&pc, TUNA_PEFT_LORA);
        pc.r = 4;
        snprintf(pc.targets, sizeof pc.targets, "all-linear");
        CHECK(tuna_peft_attach(m, &pc, 3) == TUNA_OK);
        /* B starts at zero: give it values so the base's gradient flows through it */
        int64_t n;
        float *w = probe_trainable_weights(m, &n);
        for (int64_t i = 0; i < n; i++) w[i] += 0.01f * (float)((i * 7919) % 13 - 6);
    }
    int V = tuna_model_config(m)->V, C = tuna_model_config(m)->C;
    int64_t ntrain;
    probe_trainable_weights(m, &ntrain);
    long nlog = (long)N * V, ngrad = (long)ntrain;
    result whole = {.logits = calloc((size_t)nlog, 4), .grads = calloc((size_t)ngrad, 4)};
    result part = {.logits = calloc((size_t)nlog, 4), .grads = calloc((size_t)ngrad, 4)};
    /* with LoRA the base head is frozen and a training forward leaves its
     * input gradient for backward to scale (head.c); the reference gives the
     * head a throwaway weight gradient, so it takes the plain path instead */
    float *head_dw = lora ? calloc((size_t)V * C, sizeof(float)) : NULL;
    for (int mode = TUNA_MODE_EVAL; mode <= TUNA_MODE_TRAIN_CHECKPOINT; mode++) {
        if (lora) probe_set_head_grad(m, head_dw);
        run(m, N, mode, &whole);
        if (lora) probe_set_head_grad(m, NULL);
        double worst = 0;
        for (int rows = 3; rows <= (lora ? N : 4); rows += rows == 4 ? N - 4 : 1) {
            run(m, rows, mode, &part);
            worst = fmax(worst, compare(&part, &whole, nlog, mode == TUNA_MODE_EVAL ? 0 : ngrad));
        }
        CHECKF(worst <= 1e-5, "%s%s mode %d: chunks of 3 and 4 rows differ from one chunk by %.3g (budget 1e-5)", fix,
               lora ? " + LoRA" : "", mode, worst);
        printf("%s%s mode %d: chunks of 3 and 4 rows%s vs one chunk of %d%s: worst rel %.2g (%.0f%% of 1e-5)\n", fix,
               lora ? " + LoRA" : "", mode, lora ? " and 21" : "", N, lora ? " unfused" : "", worst, worst / 1e-5 * 100);
    }
    free(head_dw); free(whole.logits); free(whole.grads); free(part.logits); free(part.grads);
    tuna_model_free(m);
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* A 128,256 vocabulary at B=4, T=256: the activation block grows with V by
 * one chunk of logits only; before, by N x V floats (525 MB). The difference
 * to the same config with V=1 (whose one chunk is all N rows of 1 float) is
 * exactly that chunk, in every mode. */
static void test_activation_bytes(void) {
    tuna_config c;
    CHECK(tuna_config_load(&c, "tests/fixtures/parity/llama_gqa/config.json") == TUNA_OK);
    const long Bq = 4, Tq = 256, Nq = Bq * Tq, V = 128256;
    long R = probe_head_chunk_bytes() / (V * 4); /* 130 rows: 66.7 MB */
    CHECK(R == 130);
    for (int mode = TUNA_MODE_EVAL; mode <= TUNA_MODE_TRAIN_CHECKPOINT; mode++) {
        c.V = (int)V;
        size_t big = tuna_model_activation_bytes(&c, (int)Bq, (int)Tq, mode);
        c.V = 1;
        size_t one = tuna_model_activation_bytes(&c, (int)Bq, (int)Tq, mode);
        size_t want = align64((size_t)R * V * 4) - align64((size_t)Nq * 4);
        CHECKF(big - one == want, "mode %d: V=128256 adds %zu bytes of activations, want one chunk of %ld rows: %zu "
               "(all %ld rows would be %zu)", mode, big - one, R, want, Nq, align64((size_t)Nq * V * 4) - align64((size_t)Nq * 4));
        printf("mode %d: activations %.1f MiB at V=128256, B=4, T=256; logits chunk %ld rows, %.1f MiB (whole: %.1f MiB)\n",
               mode, big / 1048576.0, R, (double)R * V * 4 / 1048576.0, (double)Nq * V * 4 / 1048576.0);
    }
}

enum { BB = 2, TB = 160, NB = BB * TB, VB = 65536 };

/* loss and gradients of one bf16 forward + backward, the chunk as prepared */
static double bf16_step(tuna_model *m, const tuna_batch *bt, int want_rows, float *grads) {
    CHECK(tuna_model_prepare(m, BB, TB, TUNA_MODE_TRAIN) == TUNA_OK);
    CHECKF(probe_head_rows(m) == want_rows, "prepared %d rows per chunk, want %d", probe_head_rows(m), want_rows);
    tuna_loss l = {0};
    CHECK(tuna_model_forward(m, bt, &l) == TUNA_OK);
    tuna_model_zero_grad(m);
    CHECK(tuna_model_backward(m, bt, 1.0f / (float)l.tokens) == TUNA_OK);
    int64_t n;
    const float *g = probe_trainable_grads(m, &n);
    memcpy(grads, g, (size_t)n * sizeof(float));
    return l.loss_sum;
}

static void test_bf16_budget(void) {
    if (!tuna_bf16_supported()) {
        test_absent("bf16 lm_head chunk", tuna_kernels_info());
        return;
    }
    tuna_config c;
    tuna_model *m = NULL;
    CHECK(tuna_config_load(&c, "tests/fixtures/parity/llama_gqa/config.json") == TUNA_OK);
    c.V = VB;
    CHECK(tuna_model_create(&m, &c) == TUNA_OK && tuna_model_init_random(m, 7) == TUNA_OK);
    if (!m) return;
    static int32_t ids[NB], lab[NB];
    tuna_rng rng;
    rng_seed(&rng, 22, 5);
    for (int i = 0; i < NB; i++) ids[i] = (int32_t)(rng_u32(&rng) % VB), lab[i] = (int32_t)(rng_u32(&rng) % VB);
    tuna_batch bt = {.B = BB, .T = TB, .input_ids = ids, .labels = lab};
    int64_t n;
    CHECK(tuna_model_prepare(m, BB, TB, TUNA_MODE_TRAIN) == TUNA_OK && probe_trainable_grads(m, &n) && n > 0);
    float *g1 = malloc((size_t)n * sizeof(float)), *g2 = malloc((size_t)n * sizeof(float));
    long fp32_rows = probe_head_chunk_bytes() / (4L * VB);
    CHECK(fp32_rows == 256 && tuna_model_set_bf16(m, 1) == 1);
    probe_set_head_rows(m, 0); /* prepared again: with bf16 on */
    double whole = bf16_step(m, &bt, NB, g1);
    probe_set_head_rows(m, (int)fp32_rows);
    double chunked = bf16_step(m, &bt, (int)fp32_rows, g2);
    double e = fmax(rel(whole, chunked), rel_l2(g1, g2, n));
    CHECKF(e < 1e-3, "bf16, one chunk of %d rows against chunks of %ld: %.2e", NB, fp32_rows, e);
    printf("bf16 lm_head: one chunk of %d rows (%.0f MiB) vs %ld-row chunks: %.2e\n", NB, NB * 4.0 * VB / 1048576, fp32_rows, e);
    tuna_model_set_bf16(m, 0); /* fp32: the same comparison, and the chunk back at 256 rows */
    probe_set_head_rows(m, NB);
    double w32 = bf16_step(m, &bt, NB, g1);
    probe_set_head_rows(m, 256);
    double c32 = bf16_step(m, &bt, 256, g2);
    CHECKF(rel(w32, c32) < 1e-5 && rel_l2(g1, g2, n) < 1e-5, "fp32, one chunk against chunks of 256: %.2e", rel_l2(g1, g2, n));
    probe_set_head_rows(m, 0);
    CHECK(tuna_model_prepare(m, BB, TB, TUNA_MODE_TRAIN) == TUNA_OK);
    CHECKF(probe_head_rows(m) == fp32_rows, "fp32: %d rows per chunk, want %ld", probe_head_rows(m), fp32_rows);
    free(g1);
    free(g2);
    tuna_model_free(m);
}

int main(void) {
    if (!test_need("tests/fixtures/parity/llama_gqa/config.json", "the parity fixtures")) return test_done();
    test_activation_bytes();
    const char *fixes[] = {"gpt2", "llama_gqa", "qwen2"};
    for (int i = 0; i < 3; i++) test_chunks(fixes[i], 0);
    test_chunks("llama_gqa", 1);
    test_bf16_budget();
    return test_done();
}
