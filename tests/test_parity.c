/* test_parity.c — forward/backward parity of tuna's model against PyTorch.
 *
 * For each folder tests/fixtures/parity/<name>/ (written by
 * tools/make_parity_fixtures.py: a tiny HF model, data.jsonl, and the float64
 * PyTorch answer in expected.safetensors) this loads the model, builds the
 * right-padded batch from data.jsonl (pad id 0, label -100), runs forward and
 * backward and compares logits, loss and every parameter gradient. llama_gqa
 * also runs the packed row (pos_ids, block-diagonal attention); llama_tied
 * also gets a finite-difference check of its gradients, a second opinion that
 * catches a wrong fixture as well as a wrong backward. Last, when the shared
 * data is present, the llama2.c stories260K checkpoint is converted with
 * `tuna convert llama2c` and its logits compared with llama2.c run.c's.
 *
 * Tolerances (relative L2 = ||got - want|| / ||want||) and why:
 *   logits, loss  1e-5: fp32 forward of a 2-layer model with reductions of at
 *                 most a few hundred terms; the reference is float64, so the
 *                 error is tuna's fp32 rounding alone (expected ~1e-7..1e-6).
 *   gradients     1e-4: backward chains more fp32 reductions (over B*T as
 *                 well) and small gradients have larger relative rounding.
 * Each fixture prints its worst errors as "max error (% of budget)".
 * Run from the repository root. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getline, mkdtemp, nftw */
#endif
#include <ftw.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "parity_fixture.h"
#include "tuna.h"

#define TOL_LOGITS 1e-5
#define TOL_LOSS 1e-5
#define TOL_GRAD 1e-4

static const char *FIXTURES[] = {"gpt2", "gpt2_noprefix", "llama_gqa", "llama_tied", "qwen2", "mistral"};

/* ---------------- small helpers (the rest: parity_fixture.h) ---------------- */

static double pct(double err, double budget) { return 100.0 * err / budget; }

/* Compares every parameter gradient with grad.<name> (in file layout).
 * Returns the worst relative L2 error and its tensor name in *worst_name. */
static double compare_grads(const tuna_model *m, const st_file *ef, const char *fx, const char *what,
                            const char **worst_name) {
    double worst = 0;
    *worst_name = "-";
    int n = tuna_model_num_params(m), n_exp = 0;
    for (int i = 0; i < ef->n_tensors; i++) n_exp += strncmp(ef->tensors[i].name, "grad.", 5) == 0;
    CHECKF(n == n_exp, "%s: model has %d parameter tensors, fixture %d", fx, n, n_exp);
    for (int i = 0; i < n; i++) {
        const tuna_param *p = tuna_model_param(m, i);
        char key[300];
        snprintf(key, sizeof key, "grad.%s", p->name);
        float *got = grad_file_layout(p, fx);
        float *want = got ? expected_f32(ef, fx, key, p->numel) : NULL;
        if (got && want) {
            double e = rel_l2(got, want, (long)p->numel);
            CHECKF(e <= TOL_GRAD, "%s %s: grad %s rel L2 %.2e > %.0e (max abs %.2e)", fx, what, p->name, e,
                   TOL_GRAD, max_abs_diff(got, want, (long)p->numel));
            if (!(e <= worst)) {
                worst = e;
                *worst_name = p->name;
            }
        }
        free(got);
        free(want);
    }
    return worst;
}

/* ---------------- finite differences ---------------- */

static uint64_t lcg_state = 0x9E3779B97F4A7C15ull;
static uint32_t lcg_next(void) { /* local generator: the test must not depend on rand() */
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(lcg_state >> 33);
}

static int forward_loss(tuna_model *m, const tuna_batch *bt, double *loss) {
    tuna_loss l = {0, 0};
    if (tuna_model_forward(m, bt, &l) != TUNA_OK || l.tokens <= 0) return -1;
    *loss = l.loss_sum / (double)l.tokens;
    return 0;
}

/* Central differences of the mean loss for 20 entries, against the analytic
 * gradient left in the grad buffers by the caller's backward (token_weight
 * 1/tokens, so both are d(mean loss)/dw).
 *
 * Step h = 1e-3 (weights are ~0.02 or ~1 for norms): truncation error h^2/6 *
 * f''' is ~1e-7, negligible. The floor is fp32 rounding of the loss: each
 * per-token loss (~4.4) carries ~5e-7 rounding, ~1e-7 after averaging ~40
 * tokens, i.e. ~5e-5 after dividing by 2h; measured in PyTorch fp32 on this
 * fixture the differences were <= 3.3e-5. Hence |fd - g| <= 1.5e-4 + 1e-2 |g|:
 * the absolute term covers that noise with margin, the relative term the
 * curvature of larger gradients. To make each probe meaningful, the entry is
 * the largest-|g| of 16 random candidates in the tensor (typical |g| 1e-4 ..
 * 3e-2), so a wrong sign, a missing factor or a missing term fails.
 * This assumes forward reads the parameter data directly (no cached copies). */
static void finite_difference_check(tuna_model *m, const tuna_batch *bt, const char *fx) {
    const double h = 1e-3;
    double worst = 0;
    const char *worst_name = "-";
    int n = tuna_model_num_params(m), probes = 0;
    for (int k = 0; k < 20 && n > 0; k++) {
        const tuna_param *p = tuna_model_param(m, (k * 7) % n); /* walk all tensors */
        if (!p->grad) continue;
        int64_t j = 0;
        for (int c = 0; c < 16; c++) {
            int64_t cand = (int64_t)(((uint64_t)lcg_next() << 16 ^ lcg_next()) % (uint64_t)p->numel);
            if (c == 0 || fabsf(p->grad[cand]) > fabsf(p->grad[j])) j = cand;
        }
        float w0 = p->data[j];
        double lp, lm;
        p->data[j] = (float)(w0 + h);
        float wp = p->data[j];
        int bad = forward_loss(m, bt, &lp);
        p->data[j] = (float)(w0 - h);
        float wm = p->data[j];
        bad |= forward_loss(m, bt, &lm);
        p->data[j] = w0; /* exact restore */
        CHECKF(!bad, "%s: forward failed in finite differences: %s", fx, tuna_last_error());
        if (bad) return;
        double fd = (lp - lm) / ((double)wp - wm); /* actual fp32 step, not 2h */
        double g = p->grad[j];
        double tol = 1.5e-4 + 1e-2 * fabs(g);
        double r = fabs(fd - g) / tol;
        CHECKF(fabs(fd - g) <= tol, "%s: finite difference %s[%lld]: analytic %.4e, numeric %.4e", fx, p->name,
               (long long)j, g, fd);
        if (!(r <= worst)) {
            worst = r;
            worst_name = p->name;
        }
        probes++;
    }
    printf("%s: finite differences %d probes, worst %.0f%% of budget (%s)\n", fx, probes, 100 * worst,
           worst_name);
}

/* ---------------- one fixture ---------------- */

static void packed_check(tuna_model *m, const st_file *ef, const char *fx) {
    int64_t n_ids = 0, n_pos = 0, n_lab = 0;
    int32_t *ids = expected_i32(ef, fx, "packed_input_ids", &n_ids);
    int32_t *pos = expected_i32(ef, fx, "packed_pos_ids", &n_pos);
    int32_t *lab = expected_i32(ef, fx, "packed_labels", &n_lab);
    const tuna_config *cfg = tuna_model_config(m);
    int T2 = (int)n_ids, V = cfg->V;
    float *want_logits = NULL, *want_loss = NULL;
    if (!ids || !pos || !lab || n_pos != n_ids || n_lab != n_ids) {
        CHECKF(0, "%s: packed tensors missing or of different lengths", fx);
        goto done;
    }
    want_logits = expected_f32(ef, fx, "packed_logits", (int64_t)T2 * V);
    want_loss = expected_f32(ef, fx, "packed_loss", 1);
    if (!want_logits || !want_loss) goto done;
    tuna_status st = tuna_model_prepare(m, 1, T2, 1);
    CHECKF(st == TUNA_OK, "%s: prepare(1,%d): %s", fx, T2, tuna_last_error());
    if (st != TUNA_OK) goto done;
    tuna_model_zero_grad(m);
    tuna_batch bt = {.B = 1, .T = T2, .input_ids = ids, .labels = lab, .pos_ids = pos};
    tuna_loss l = {0, 0};
    st = tuna_model_forward(m, &bt, &l);
    CHECKF(st == TUNA_OK, "%s: packed forward: %s", fx, tuna_last_error());
    if (st != TUNA_OK) goto done;
    CHECKF(l.tokens == count_tokens(lab, 1, T2), "%s: packed counted %lld tokens, expected %lld", fx,
           (long long)l.tokens, (long long)count_tokens(lab, 1, T2));
    double e_log = rel_l2(tuna_model_logits(m), want_logits, (long)T2 * V);
    double a_log = max_abs_diff(tuna_model_logits(m), want_logits, (long)T2 * V);
    double loss = l.tokens ? l.loss_sum / (double)l.tokens : NAN;
    double e_loss = fabs(loss - want_loss[0]) / fabs(want_loss[0]);
    CHECKF(e_log <= TOL_LOGITS, "%s packed: logits rel L2 %.2e (max abs %.2e)", fx, e_log, a_log);
    CHECKF(e_loss <= TOL_LOSS, "%s packed: loss %.7f vs %.7f", fx, loss, want_loss[0]);
    /* Packing with restarting positions computes exactly what the padded batch
     * computed for each example, so its gradients must equal grad.* too. */
    const char *wn = "-";
    double e_grad = 1;
    if (l.tokens > 0) {
        st = tuna_model_backward(m, &bt, 1.0f / (float)l.tokens);
        CHECKF(st == TUNA_OK, "%s: packed backward: %s", fx, tuna_last_error());
        if (st == TUNA_OK) e_grad = compare_grads(m, ef, fx, "packed", &wn);
    }
    printf("%s packed: T2 %d logits rel %.1e (%.0f%% of %.0e), max abs %.1e; loss rel %.1e (%.0f%%); "
           "grads worst rel %.1e (%.0f%% of %.0e, %s)\n",
           fx, T2, e_log, pct(e_log, TOL_LOGITS), TOL_LOGITS, a_log, e_loss, pct(e_loss, TOL_LOSS), e_grad,
           pct(e_grad, TOL_GRAD), TOL_GRAD, wn);
done:
    free(ids);
    free(pos);
    free(lab);
    free(want_logits);
    free(want_loss);
}

static void run_fixture(const char *fx) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "tests/fixtures/parity/%s", fx);
    tuna_model *m = NULL;
    st_file ef;
    int ef_open = 0;
    batch_buf bb = {0, 0, NULL, NULL};
    float *want_logits = NULL, *want_loss = NULL;

    tuna_status st = tuna_model_load(&m, dir);
    CHECKF(st == TUNA_OK, "%s: load: %s", fx, tuna_last_error());
    if (st != TUNA_OK) goto done;
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    st = st_open(&ef, path);
    CHECKF(st == TUNA_OK, "%s: %s", path, tuna_last_error());
    if (st != TUNA_OK) goto done;
    ef_open = 1;
    snprintf(path, sizeof path, "%s/data.jsonl", dir);
    int rd = read_jsonl_batch(path, &bb);
    CHECKF(rd == 0, "%s: cannot read %s", fx, path);
    if (rd != 0) goto done;

    const tuna_config *cfg = tuna_model_config(m);
    int B = bb.B, T = bb.T, V = cfg->V;
    want_logits = expected_f32(&ef, fx, "logits", (int64_t)B * T * V);
    want_loss = expected_f32(&ef, fx, "loss", 1);
    if (!want_logits || !want_loss) goto done;

    st = tuna_model_prepare(m, B, T, 1);
    CHECKF(st == TUNA_OK, "%s: prepare(%d,%d): %s", fx, B, T, tuna_last_error());
    if (st != TUNA_OK) goto done;
    tuna_model_zero_grad(m);
    tuna_batch bt = {.B = B, .T = T, .input_ids = bb.ids, .labels = bb.labels};
    tuna_loss l = {0, 0};
    st = tuna_model_forward(m, &bt, &l);
    CHECKF(st == TUNA_OK, "%s: forward: %s", fx, tuna_last_error());
    if (st != TUNA_OK) goto done;
    int64_t want_tokens = count_tokens(bb.labels, B, T);
    CHECKF(l.tokens == want_tokens, "%s: counted %lld tokens, expected %lld", fx, (long long)l.tokens,
           (long long)want_tokens);
    if (l.tokens <= 0) goto done;

    const float *logits = tuna_model_logits(m);
    double e_log = rel_l2(logits, want_logits, (long)B * T * V);
    double a_log = max_abs_diff(logits, want_logits, (long)B * T * V);
    double loss = l.loss_sum / (double)l.tokens;
    double e_loss = fabs(loss - want_loss[0]) / fabs(want_loss[0]);
    CHECKF(e_log <= TOL_LOGITS, "%s: logits rel L2 %.2e > %.0e (max abs %.2e)", fx, e_log, TOL_LOGITS, a_log);
    CHECKF(e_loss <= TOL_LOSS, "%s: loss %.7f vs expected %.7f", fx, loss, want_loss[0]);

    st = tuna_model_backward(m, &bt, 1.0f / (float)l.tokens);
    CHECKF(st == TUNA_OK, "%s: backward: %s", fx, tuna_last_error());
    if (st != TUNA_OK) goto done;
    const char *wn;
    double e_grad = compare_grads(m, &ef, fx, "padded", &wn);
    printf("%s: logits rel %.1e (%.0f%% of %.0e), max abs %.1e; loss %.6f rel %.1e (%.0f%% of %.0e); "
           "grads worst rel %.1e (%.0f%% of %.0e, %s)\n",
           fx, e_log, pct(e_log, TOL_LOGITS), TOL_LOGITS, a_log, loss, e_loss, pct(e_loss, TOL_LOSS), TOL_LOSS,
           e_grad, pct(e_grad, TOL_GRAD), TOL_GRAD, wn);

    /* the finite-difference probes use the gradients just computed */
    if (strcmp(fx, "llama_tied") == 0) finite_difference_check(m, &bt, fx);
    if (strcmp(fx, "llama_gqa") == 0) packed_check(m, &ef, fx);
done:
    free(want_logits);
    free(want_loss);
    batch_buf_free(&bb);
    if (ef_open) st_close(&ef);
    tuna_model_free(m);
}

/* ---------------- stories260K via `tuna convert llama2c` ---------------- */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void stories_check(const char *tuna_bin) {
    const char *ckpt = test_shared_path("llama2c/stories260K/stories260K.bin", "stories260K parity");
    const char *tok = ckpt ? test_shared_path("llama2c/stories260K/tok512.bin", "stories260K parity") : NULL;
    if (!ckpt || !tok) return;
    const char *fx = "stories260K";
    char tmp[] = "/tmp/tuna_parity_XXXXXX";
    if (!mkdtemp(tmp)) {
        CHECKF(0, "%s: mkdtemp failed", fx);
        return;
    }
    tuna_model *m = NULL;
    st_file ref;
    int ref_open = 0;
    int32_t *tokens = NULL;
    float *want = NULL;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' convert llama2c --checkpoint '%s' --tokenizer '%s' --out '%s' >/dev/null",
             tuna_bin, ckpt, tok, tmp);
    int rc = system(cmd);
    CHECKF(rc == 0, "%s: `%s` exited with status %d", fx, cmd, rc);
    if (rc != 0) goto done;
    tuna_status st = tuna_model_load(&m, tmp);
    CHECKF(st == TUNA_OK, "%s: load converted model: %s", fx, tuna_last_error());
    if (st != TUNA_OK) goto done;
    st = st_open(&ref, "tests/fixtures/stories260K_ref.safetensors");
    CHECKF(st == TUNA_OK, "%s: %s", fx, tuna_last_error());
    if (st != TUNA_OK) goto done;
    ref_open = 1;
    int64_t T = 0;
    tokens = expected_i32(&ref, fx, "tokens", &T);
    int V = tuna_model_config(m)->V;
    CHECKF(V == 512, "%s: converted vocab %d, expected 512", fx, V);
    if (!tokens || V != 512) goto done;
    want = expected_f32(&ref, fx, "logits", T * V);
    if (!want) goto done;
    st = tuna_model_prepare(m, 1, (int)T, 0);
    CHECKF(st == TUNA_OK, "%s: prepare: %s", fx, tuna_last_error());
    if (st != TUNA_OK) goto done;
    tuna_batch bt = {.B = 1, .T = (int)T, .input_ids = tokens};
    tuna_loss l = {0, 0};
    st = tuna_model_forward(m, &bt, &l);
    CHECKF(st == TUNA_OK, "%s: forward: %s", fx, tuna_last_error());
    if (st != TUNA_OK) goto done;
    double e = rel_l2(tuna_model_logits(m), want, (long)(T * V));
    double a = max_abs_diff(tuna_model_logits(m), want, (long)(T * V));
    CHECKF(e <= TOL_LOGITS, "%s: logits rel L2 %.2e > %.0e (max abs %.2e)", fx, e, TOL_LOGITS, a);
    printf("%s: %lld tokens, logits rel %.1e (%.0f%% of %.0e), max abs %.1e\n", fx, (long long)T, e,
           pct(e, TOL_LOGITS), TOL_LOGITS, a);
done:
    free(tokens);
    free(want);
    if (ref_open) st_close(&ref);
    tuna_model_free(m);
    nftw(tmp, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv) {
    (void)argc;
    for (size_t i = 0; i < sizeof FIXTURES / sizeof *FIXTURES; i++) run_fixture(FIXTURES[i]);
    test_set_cli(argv[0]); /* the CLI of this build (build/ or build-san/) */
    if (test_need_cli("stories260K parity")) stories_check(test_cli);
    return test_done();
}
