/* test_dpo.c — the preference losses (groundwork of the DPO issue):
 *  - known values of TRL's sigmoid (with label smoothing), hinge and IPO
 *    losses and of the logged rewards;
 *  - each derivative against central differences;
 *  - the training identity: the gradient of the mean DPO loss over a model's
 *    parameters equals the model's backward with per-row weights -dL/dlogp
 *    (checked against finite differences of the whole loss). */
#include "check.h"
#include "tuna.h"
#include "tuna_dpo.h"

static double loss_of(const tuna_dpo_args *a, int n, const double *pc, const double *pr, const double *rc, const double *rr,
                      const int64_t *nc, const int64_t *nr) {
    tuna_dpo_stats s;
    if (tuna_dpo_loss(a, n, pc, pr, rc, rr, nc, nr, NULL, NULL, &s) != TUNA_OK) return NAN;
    return s.loss;
}

static void test_known_values(void) {
    double pc = -1, pr = -2, rc = -1.5, rr = -1.5; /* h = 1 */
    int64_t nc = 2, nr = 4;
    tuna_dpo_args a = {TUNA_DPO_SIGMOID, 0.1, 0};
    tuna_dpo_stats s;
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_OK);
    CHECKF(fabs(s.loss - log1p(exp(-0.1))) < 1e-15, "sigmoid %.17g", s.loss);
    CHECK(fabs(s.rewards_chosen - 0.05) < 1e-15 && fabs(s.rewards_rejected + 0.05) < 1e-15 && fabs(s.rewards_margins - 0.1) < 1e-15 &&
          s.rewards_accuracies == 1 && s.logps_chosen == -1 && s.logps_rejected == -2);
    a.label_smoothing = 0.1;
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_OK);
    CHECK(fabs(s.loss - (0.9 * log1p(exp(-0.1)) + 0.1 * log1p(exp(0.1)))) < 1e-15);
    a = (tuna_dpo_args){TUNA_DPO_HINGE, 0.1, 0};
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_OK && fabs(s.loss - 0.9) < 1e-15);
    a.beta = 2; /* 1 - 2 h < 0: no loss */
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_OK && s.loss == 0);
    /* IPO on averaged log-probabilities: h = (-1/2 + 2/4) - (-1.5/2 + 1.5/4) = 0.375 */
    a = (tuna_dpo_args){TUNA_DPO_IPO, 0.5, 0};
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_OK);
    CHECKF(fabs(s.loss - (0.375 - 1) * (0.375 - 1)) < 1e-15, "ipo %.17g", s.loss);
    CHECK(fabs(s.rewards_chosen - 0.5 * 0.25) < 1e-15 && fabs(s.logps_chosen + 0.5) < 1e-15);
    /* a rejected response the policy prefers: accuracy 0, margin negative */
    double pc2 = -3;
    a = (tuna_dpo_args){TUNA_DPO_SIGMOID, 0.1, 0};
    CHECK(tuna_dpo_loss(&a, 1, &pc2, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_OK && s.rewards_accuracies == 0 &&
          s.rewards_margins < 0 && s.loss > log(2));
    /* bad arguments */
    a.beta = 0;
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_ERR_ARG);
    a = (tuna_dpo_args){TUNA_DPO_HINGE, 0.1, 0.2};
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_ERR_ARG);
    int64_t zero = 0;
    a = (tuna_dpo_args){TUNA_DPO_IPO, 0.1, 0};
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &zero, &nr, NULL, NULL, &s) == TUNA_ERR_ARG);
    CHECK(tuna_dpo_loss_from_name("ipo") == TUNA_DPO_IPO && tuna_dpo_loss_from_name("kto") == -1);
}

static void test_derivatives(void) {
    enum { N = 3 };
    double pc[N] = {-10.5, -3.25, -7}, pr[N] = {-12, -2.5, -7.5}, rc[N] = {-11, -3, -6.75}, rr[N] = {-11.5, -3.5, -7.25};
    int64_t nc[N] = {5, 2, 7}, nr[N] = {6, 3, 4};
    tuna_dpo_args cases[4] = {{TUNA_DPO_SIGMOID, 0.1, 0}, {TUNA_DPO_SIGMOID, 0.5, 0.2}, {TUNA_DPO_IPO, 0.1, 0}, {TUNA_DPO_HINGE, 0.3, 0}};
    double worst = 0;
    for (int c = 0; c < 4; c++) {
        double dc[N], dr[N];
        tuna_dpo_stats s;
        CHECK(tuna_dpo_loss(&cases[c], N, pc, pr, rc, rr, nc, nr, dc, dr, &s) == TUNA_OK);
        for (int i = 0; i < N; i++) {
            for (int which = 0; which < 2; which++) {
                double *x = which ? pr : pc, x0 = x[i], h = 1e-6;
                x[i] = x0 + h;
                double lp = loss_of(&cases[c], N, pc, pr, rc, rr, nc, nr);
                x[i] = x0 - h;
                double lm = loss_of(&cases[c], N, pc, pr, rc, rr, nc, nr);
                x[i] = x0;
                double fd = (lp - lm) / (2 * h), an = which ? dr[i] : dc[i];
                worst = fmax(worst, fabs(fd - an) / fmax(fabs(fd), 1e-3));
            }
        }
    }
    printf("preference loss derivatives vs central differences: worst rel %.2g\n", worst);
    CHECKF(worst < 1e-6, "worst rel %.3g", worst);
}

/* mean DPO loss of a tiny model over 2 pairs (rows: chosen0, rejected0,
 * chosen1, rejected1), the reference log-probabilities fixed numbers */
static const int T = 9;
static int32_t ids[4 * 9], labels[4 * 9];
static const double ref_c[2] = {-40, -38}, ref_r[2] = {-41, -37.5};

static double model_dpo(tuna_model *m, const tuna_dpo_args *a, double *w_rows) {
    tuna_batch bt = {.B = 4, .T = T, .input_ids = ids, .labels = labels};
    tuna_loss l;
    if (tuna_model_forward(m, &bt, &l) != TUNA_OK) return NAN;
    double rows[4];
    tuna_model_row_losses(m, 4, T, rows);
    double pc[2] = {-rows[0], -rows[2]}, pr[2] = {-rows[1], -rows[3]}, dc[2], dr[2];
    int64_t nc[2] = {0, 0}, nr[2] = {0, 0};
    for (int r = 0; r < 4; r++)
        for (int t = 1; t < T; t++) (r % 2 ? nr : nc)[r / 2] += labels[r * T + t] >= 0;
    tuna_dpo_stats s;
    if (tuna_dpo_loss(a, 2, pc, pr, ref_c, ref_r, nc, nr, dc, dr, &s) != TUNA_OK) return NAN;
    if (w_rows) { /* row loss = -logp, so its weight is -dL/dlogp */
        w_rows[0] = -dc[0];
        w_rows[1] = -dr[0];
        w_rows[2] = -dc[1];
        w_rows[3] = -dr[1];
    }
    return s.loss;
}

static void test_through_model(void) {
    tuna_config c;
    memset(&c, 0, sizeof c);
    const char *cfg = "/tmp/tuna_dpo_cfg.json";
    FILE *f = fopen(cfg, "w");
    if (!f) { CHECK(!"cannot write config"); return; }
    fputs("{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":40,\"hidden_size\":16,"
          "\"intermediate_size\":24,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
          "\"max_position_embeddings\":32,\"tie_word_embeddings\":false}\n", f);
    fclose(f);
    tuna_model *m = NULL;
    CHECK(tuna_config_load(&c, cfg) == TUNA_OK && tuna_model_create(&m, &c) == TUNA_OK && tuna_model_init_random(m, 7) == TUNA_OK);
    remove(cfg);
    if (!m) return;
    /* two pairs sharing a 4-token prompt; responses of 5 tokens (prompt masked) */
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < T; t++) {
            ids[r * T + t] = t < 4 ? (int32_t)(3 + t + 5 * (r / 2)) : (int32_t)((7 * r + 3 * t + 1) % 40);
            labels[r * T + t] = t < 4 ? -100 : ids[r * T + t];
        }
    CHECK(tuna_model_prepare(m, 4, T, TUNA_MODE_TRAIN) == TUNA_OK);
    /* IPO with beta 1: a loss near 0.25 keeps the fp32 differences above their noise */
    tuna_dpo_args cases[2] = {{TUNA_DPO_SIGMOID, 0.1, 0}, {TUNA_DPO_IPO, 1.0, 0}};
    const char *names[2] = {"sigmoid", "ipo"};
    for (int k = 0; k < 2; k++) {
        double w[4] = {0, 0, 0, 0};
        tuna_model_zero_grad(m);
        double L = model_dpo(m, &cases[k], w);
        float wf[4] = {(float)w[0], (float)w[1], (float)w[2], (float)w[3]};
        tuna_batch bt = {.B = 4, .T = T, .input_ids = ids, .labels = labels, .row_weight = wf};
        CHECK(isfinite(L) && tuna_model_backward(m, &bt, 1.0f) == TUNA_OK);
        /* probes: a few entries of several tensors, double-sided differences in fp32 */
        double worst = 0;
        int probes = 0;
        /* probe each tensor where its gradient is largest: there the fp32
         * differences stand well above their rounding noise */
        for (int p = 0; p < tuna_model_num_params(m); p++) {
            const tuna_param *tp = tuna_model_param(m, p);
            if (!tp->grad) continue;
            int64_t idx = 0;
            for (int64_t q = 1; q < tp->numel; q++)
                if (fabs(tp->grad[q]) > fabs(tp->grad[idx])) idx = q;
            float x0 = tp->data[idx], h = 4e-3f;
            tp->data[idx] = x0 + h;
            double lp = model_dpo(m, &cases[k], NULL);
            tp->data[idx] = x0 - h;
            double lm = model_dpo(m, &cases[k], NULL);
            tp->data[idx] = x0;
            double fd = (lp - lm) / (2 * h), an = tp->grad[idx];
            if (fabs(an) < 1e-3) continue; /* below fp32 difference noise */
            double rel = fabs(fd - an) / fmax(fabs(fd), fabs(an));
            if (getenv("DPO_VERBOSE")) printf("  %s[%lld] fd %.6g an %.6g rel %.3g\n", tp->name, (long long)idx, fd, an, rel);
            worst = fmax(worst, rel);
            probes++;
        }
        printf("%s DPO through the model: %d finite-difference probes, worst rel %.2g\n", names[k], probes, worst);
        CHECKF(probes >= 8 && worst < 1e-2, "%s: %d probes, worst %.3g", names[k], probes, worst);
    }
    tuna_model_free(m);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    test_known_values();
    test_derivatives();
    test_through_model();
    return test_done();
}
