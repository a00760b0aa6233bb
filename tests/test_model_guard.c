/* test_model_guard.c — the model against a caller that breaks its contracts.
 * 1. The attention scratch has a slice per thread of the OpenMP team that
 *    prepared the activations: a forward and backward run later by a larger
 *    team must give the results of the original team (and stay inside the
 *    scratch: run this test under ASan to see the overflow it guards against).
 * 2. Backward and the per-row losses read what the forward kept for its batch:
 *    a batch of another shape is refused, not read or written out of bounds.
 * Tests run from the repository root. */
#include <omp.h>

#include "check.h"
#include "core/rng.h"
#include "tuna.h"

static const char *FIX = "tests/fixtures/parity/llama_gqa";

/* [B,T] ids and labels drawn from the vocabulary (seeded) */
static void fill_batch(int32_t *ids, int32_t *labels, int n, int V) {
    tuna_rng rng;
    rng_seed(&rng, 7, 1);
    for (int i = 0; i < n; i++) ids[i] = labels[i] = (int32_t)(rng_u32(&rng) % (uint32_t)V);
}

/* forward (+ backward from zeroed gradients in the training modes); logits[N*V]
 * and grads[W] copied out */
static void run_batch(tuna_model *m, const tuna_batch *bt, int mode, float *logits, float *grads) {
    tuna_loss l = {0};
    CHECK(tuna_model_forward(m, bt, &l) == TUNA_OK);
    memcpy(logits, tuna_model_logits(m), (size_t)bt->B * bt->T * tuna_model_config(m)->V * sizeof(float));
    if (mode == TUNA_MODE_EVAL) return;
    tuna_model_zero_grad(m);
    CHECK(tuna_model_backward(m, bt, 1.0f / (float)(l.tokens ? l.tokens : 1)) == TUNA_OK);
    int64_t off = 0;
    for (int i = 0; i < tuna_model_num_params(m); i++) {
        const tuna_param *p = tuna_model_param(m, i);
        memcpy(grads + off, p->grad, (size_t)p->numel * sizeof(float));
        off += p->numel;
    }
}

/* Prepared by a team of `small`, run by a team of 8. One row of T tokens: the
 * T*T floats of each missing scratch slice outweigh the other activations, so
 * without the guard the writes reach past the allocation's end (ASan) or
 * corrupt the buffers after the scratch (wrong results). The two runs differ
 * only in the order of parallel reductions (loss sums, weight-gradient sums
 * over rows): rel L2 1e-5 is far above that rounding (~1e-7), far below what
 * a corrupted buffer gives. */
static void test_larger_team(int small, int mode, int T) {
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, FIX) == TUNA_OK);
    if (!m) return;
    int B = 1, V = tuna_model_config(m)->V, saved = omp_get_max_threads();
    int64_t W = tuna_model_param_count(m);
    int32_t *ids = malloc((size_t)B * T * 4), *lab = malloc((size_t)B * T * 4);
    fill_batch(ids, lab, B * T, V);
    tuna_batch bt = {.B = B, .T = T, .input_ids = ids, .labels = lab};
    float *lg1 = malloc((size_t)B * T * V * 4), *lg2 = malloc((size_t)B * T * V * 4);
    float *g1 = calloc((size_t)W, 4), *g2 = calloc((size_t)W, 4);
    omp_set_num_threads(small);
    CHECK(tuna_model_prepare(m, B, T, mode) == TUNA_OK);
    run_batch(m, &bt, mode, lg1, g1);
    omp_set_num_threads(8);
    run_batch(m, &bt, mode, lg2, g2);
    omp_set_num_threads(saved);
    double el = rel_l2(lg2, lg1, (long)B * T * V), eg = rel_l2(g2, g1, W);
    CHECKF(el < 1e-5 && eg < 1e-5, "prepared by %d threads, run by 8 (mode %d, T %d): logits rel %.3g, grads rel %.3g", small,
           mode, T, el, eg);
    printf("prepared by %d threads, run by 8 (mode %d, T %d): logits rel %.2g, grads rel %.2g (budget 1e-5)\n", small, mode, T,
           el, eg);
    free(ids); free(lab); free(lg1); free(lg2); free(g1); free(g2);
    tuna_model_free(m);
}

static void expect_arg(const char *what, tuna_status st) {
    const char *msg = tuna_last_error();
    CHECKF(st == TUNA_ERR_ARG, "%s: status %d, want TUNA_ERR_ARG; message: %s", what, st, msg);
    CHECKF(strstr(msg, "forward") && !strchr(msg, '\n'), "%s: message: %s", what, msg);
}

/* prepared for 4 x 32, forward on 2 x 16: backward and row losses take 2 x 16 only */
static void test_batch_mismatch(void) {
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, FIX) == TUNA_OK);
    if (!m) return;
    int V = tuna_model_config(m)->V;
    int32_t ids[4 * 64], lab[4 * 64];
    fill_batch(ids, lab, 4 * 64, V);
    double rows[4];
    tuna_batch fw = {.B = 2, .T = 16, .input_ids = ids, .labels = lab};
    tuna_batch longer = fw, wider = fw, bigger = fw, packed = fw;
    longer.T = 20;
    wider.B = 3;
    bigger.B = 4;
    bigger.T = 64; /* more than prepared */
    packed.pos_ids = lab; /* the forward ran without position ids */
    CHECK(tuna_model_prepare(m, 4, 32, TUNA_MODE_TRAIN) == TUNA_OK);
    tuna_loss l;
    CHECK(tuna_model_forward(m, &fw, &l) == TUNA_OK);
    expect_arg("backward, longer rows", tuna_model_backward(m, &longer, 1.0f));
    expect_arg("backward, more rows", tuna_model_backward(m, &wider, 1.0f));
    expect_arg("backward, position ids", tuna_model_backward(m, &packed, 1.0f));
    expect_arg("row losses, longer rows", tuna_model_row_losses(m, 2, 20, rows));
    expect_arg("row losses, more rows", tuna_model_row_losses(m, 4, 16, rows));
    expect_arg("backward, larger than prepared", tuna_model_backward(m, &bigger, 1.0f));
    expect_arg("row losses, larger than prepared", tuna_model_row_losses(m, 4, 64, rows));
    /* refusals leave the forward usable */
    CHECK(tuna_model_row_losses(m, 2, 16, rows) == TUNA_OK);
    CHECKF(fabs(rows[0] + rows[1] - l.loss_sum) <= 1e-9 * fabs(l.loss_sum), "row losses %.9g + %.9g vs %.9g", rows[0], rows[1],
           l.loss_sum);
    CHECK(tuna_model_backward(m, &fw, 1.0f) == TUNA_OK);
    /* after backward the logits are gradients: no row losses until the next forward */
    expect_arg("row losses after backward", tuna_model_row_losses(m, 2, 16, rows));
    tuna_model_free(m);
}

int main(void) {
    test_larger_team(1, TUNA_MODE_TRAIN, 96);
    test_larger_team(2, TUNA_MODE_TRAIN_CHECKPOINT, 96);
    test_larger_team(1, TUNA_MODE_EVAL, 256);
    test_batch_mismatch();
    return test_done();
}
