/* test_tokweight.c — per-position loss weights (tuna_batch.tok_weight) and
 * per-position log-probabilities (tuna_model_token_logps), what GRPO's
 * per-token objective is built on.
 * 1. A row's log-probabilities sum to minus its row loss (1e-9 relative:
 *    the same fp32 terms summed in double in another order).
 * 2. A weight of 1 at one position and 0 elsewhere gives the gradient of a
 *    batch whose labels count that position only (the same floats: held to
 *    1e-6 relative, measured 0); a mapping off by one position or row, or
 *    one that missed the virtual prompt positions, gives a different label's
 *    gradient (> 1e-2).
 * 3. Weights w(b,t) together: the gradient is the sum of the single-position
 *    gradients times their weights (linearity, 1e-5 relative).
 * On a Llama parity model, full, with LoRA and with prompt tuning (P > 0).
 * 4. A logit temperature t (tuna_model_set_logit_temperature, GRPO's
 *    scoring at the sampling temperature) is the model whose lm_head weight
 *    is divided by t: the same log-probabilities (1e-5 relative), the same
 *    gradients of every other weight, and lm_head's gradient 1/t times the
 *    divided head's (1e-5 relative; the same floats up to the order of one
 *    multiplication, measured ~1e-7); full and with LoRA (a frozen head,
 *    whose input gradient is formed in the forward); back at 1 the plain
 *    loss returns exactly. */
#include <math.h>

#include "check.h"
#include "model_probe.h"
#include "tuna.h"
#include "tuna_peft.h"

enum { B = 2, T = 6, N = B * T };

static const int32_t ids[N] = {3, 17, 5, 9, 22, 1, 8, 2, 30, 11, 4, 7};
static const int32_t labels[N] = {-100, -100, 5, 9, 22, 1, -100, 2, 30, 11, -100, 7};

/* zero gradients, forward and backward of labels lab with per-position weights tw */
static const float *grads(tuna_model *m, const int32_t *lab, const float *tw, int64_t *n) {
    tuna_batch bt = {.B = B, .T = T, .input_ids = ids, .labels = lab, .tok_weight = tw};
    tuna_loss l;
    tuna_model_zero_grad(m);
    CHECK(tuna_model_forward(m, &bt, &l) == TUNA_OK);
    CHECK(tuna_model_backward(m, &bt, 1.0f) == TUNA_OK);
    return probe_trainable_grads(m, n);
}

static void test_model(int peft) {
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, "tests/fixtures/parity/llama_gqa") == TUNA_OK);
    if (!m) return;
    if (peft) {
        tuna_peft_config pc;
        tuna_peft_config_default(&pc, peft);
        if (peft == TUNA_PEFT_LORA) snprintf(pc.targets, sizeof pc.targets, "all-linear");
        if (peft == TUNA_PEFT_PROMPT) pc.num_virtual_tokens = 3;
        CHECK(tuna_peft_attach(m, &pc, 5) == TUNA_OK);
        int64_t nw;
        float *w = probe_trainable_weights(m, &nw);
        for (int64_t i = 0; i < nw; i++) w[i] += 0.01f * (float)((i * 7919) % 13 - 6);
    }
    CHECK(tuna_model_prepare(m, B, T, TUNA_MODE_TRAIN) == TUNA_OK);
    /* 1. log-probabilities against row losses */
    tuna_batch bt = {.B = B, .T = T, .input_ids = ids, .labels = labels};
    tuna_loss l;
    CHECK(tuna_model_forward(m, &bt, &l) == TUNA_OK);
    double rows[B], lp[N];
    CHECK(tuna_model_row_losses(m, B, T, rows) == TUNA_OK);
    CHECK(tuna_model_token_logps(m, B, T, lp) == TUNA_OK);
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int t = 0; t < T; t++) {
            int counted = t + 1 < T && labels[b * T + t + 1] != -100;
            if (!counted) CHECKF(lp[b * T + t] == 0, "row %d position %d is not counted, log-probability %g", b, t, lp[b * T + t]);
            s += lp[b * T + t];
        }
        CHECKF(fabs(s + rows[b]) <= 1e-9 * fabs(rows[b]), "row %d: log-probabilities sum %.12g, row loss %.12g", b, s, rows[b]);
    }
    /* 2. one position at a time against a batch counting only that one */
    int64_t ng;
    probe_trainable_grads(m, &ng);
    float *acc = calloc((size_t)ng, sizeof(float)), *one = calloc((size_t)ng, sizeof(float));
    float tw[N] = {0}, all[N] = {0};
    int32_t lab1[N];
    int tried = 0;
    for (int n = 0; n < N; n++) {
        int b = n / T, t = n % T;
        if (t + 1 >= T || labels[n + 1] == -100) continue;
        for (int k = 0; k < N; k++) lab1[k] = k == n + 1 ? labels[k] : -100;
        const float *g = grads(m, lab1, NULL, &ng);
        memcpy(one, g, (size_t)ng * sizeof(float));
        memset(tw, 0, sizeof tw);
        tw[n] = 1;
        g = grads(m, labels, tw, &ng);
        double e = rel_l2(g, one, ng);
        CHECKF(e <= 1e-6, "peft %d: weight 1 at row %d position %d differs from its own label's gradient by %.2e", peft, b, t, e);
        all[n] = 0.25f + 0.5f * (float)(n % 3) - (n % 2 ? 1.0f : 0.0f);
        for (int64_t i = 0; i < ng; i++) acc[i] += all[n] * one[i];
        tried++;
    }
    CHECK(tried == 8);
    /* 3. all weights at once */
    const float *g = grads(m, labels, all, &ng);
    double e = rel_l2(g, acc, ng);
    CHECKF(e <= 1e-5, "peft %d: weighted positions differ from the weighted sum of single positions by %.2e", peft, e);
    free(acc);
    free(one);
    tuna_model_free(m);
}

/* forward + backward of the tok_weight-free batch at the model's temperature:
 * log-probabilities into lp, trainable gradients (copied) into g */
static void temp_run(tuna_model *m, double *lp, float *g, int64_t ng) {
    tuna_batch bt = {.B = B, .T = T, .input_ids = ids, .labels = labels};
    tuna_loss l;
    tuna_model_zero_grad(m);
    CHECK(tuna_model_forward(m, &bt, &l) == TUNA_OK);
    CHECK(tuna_model_token_logps(m, B, T, lp) == TUNA_OK);
    CHECK(tuna_model_backward(m, &bt, 0.1f) == TUNA_OK);
    int64_t n;
    const float *gr = probe_trainable_grads(m, &n);
    CHECK(n == ng);
    memcpy(g, gr, (size_t)ng * sizeof(float));
}

static tuna_model *temp_model(int lora, float head_div) {
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, "tests/fixtures/parity/llama_gqa") == TUNA_OK);
    if (!m) return NULL;
    const tuna_param *h = tuna_model_find_param(m, "lm_head.weight");
    CHECK(h != NULL && h->data != NULL);
    if (h && h->data)
        for (int64_t i = 0; i < h->numel; i++) h->data[i] /= head_div;
    if (lora) {
        tuna_peft_config pc;
        tuna_peft_config_default(&pc, TUNA_PEFT_LORA);
        snprintf(pc.targets, sizeof pc.targets, "all-linear");
        CHECK(tuna_peft_attach(m, &pc, 5) == TUNA_OK);
        int64_t nw;
        float *w = probe_trainable_weights(m, &nw);
        for (int64_t i = 0; i < nw; i++) w[i] += 0.01f * (float)((i * 7919) % 13 - 6);
    }
    CHECK(tuna_model_prepare(m, B, T, TUNA_MODE_TRAIN) == TUNA_OK);
    return m;
}

static double rel_d(const double *a, const double *b, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
    return sqrt(num / (den > 0 ? den : 1));
}

static void test_temperature(int lora) {
    const float t = 0.6f;
    tuna_model *a = temp_model(lora, 1.0f), *b = temp_model(lora, t);
    if (!a || !b) return;
    int64_t ng;
    probe_trainable_grads(a, &ng);
    float *ga = malloc((size_t)ng * 4), *gb = malloc((size_t)ng * 4), *g1 = malloc((size_t)ng * 4);
    double lpa[N], lpb[N], lp1[N];
    temp_run(a, lp1, g1, ng);
    CHECK(tuna_model_set_logit_temperature(a, t) == TUNA_OK);
    CHECK(tuna_model_set_logit_temperature(a, 0.0f) == TUNA_ERR_ARG);
    temp_run(a, lpa, ga, ng);
    temp_run(b, lpb, gb, ng);
    double e = rel_d(lpa, lpb, N);
    CHECKF(e <= 1e-5, "lora %d: log-probabilities at temperature %g differ from the divided head's by %.2e", lora, t, e);
    CHECKF(rel_d(lpa, lp1, N) > 1e-2, "lora %d: temperature %g left the log-probabilities as they were", lora, t);
    if (!lora) { /* lm_head's gradient: d/dW of f(W x / t) is 1/t that of the divided head */
        const tuna_param *h = tuna_model_find_param(a, "lm_head.weight");
        int64_t off = h->grad - probe_trainable_grads(a, &ng);
        for (int64_t i = 0; i < h->numel; i++) gb[off + i] /= t;
    }
    e = rel_l2(ga, gb, (long)ng);
    CHECKF(e <= 1e-5, "lora %d: gradients at temperature %g differ from the divided head's by %.2e", lora, t, e);
    CHECK(tuna_model_set_logit_temperature(a, 1.0f) == TUNA_OK);
    temp_run(a, lpa, ga, ng);
    CHECKF(memcmp(lpa, lp1, sizeof lp1) == 0 && memcmp(ga, g1, (size_t)ng * 4) == 0,
           "lora %d: back at temperature 1 the loss is not the plain one", lora);
    free(ga);
    free(gb);
    free(g1);
    tuna_model_free(a);
    tuna_model_free(b);
}

int main(void) {
    if (!test_need("tests/fixtures/parity/llama_gqa/config.json", "the parity fixtures")) return test_done();
    test_model(0);
    test_model(TUNA_PEFT_LORA);
    test_model(TUNA_PEFT_PROMPT);
    test_temperature(0);
    test_temperature(1);
    return test_done();
}
