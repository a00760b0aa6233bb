/* test_dpo.c — the preference losses (groundwork of the DPO issue):
 *  - known values of TRL's sigmoid (with label smoothing), hinge and IPO
 *    losses and of the logged rewards;
 *  - each derivative against central differences;
 *  - the training identity: the gradient of the mean DPO loss over a model's
 *    parameters equals the model's backward with per-row weights -dL/dlogp
 *    (checked against finite differences of the whole loss);
 *  - `tuna dpo` against the PyTorch reference (tests/fixtures/dpo,
 *    tools/make_dpo_fixtures.py): 3 steps, sigmoid and IPO, full (reference
 *    the start, or --ref-model) and LoRA (reference = adapter off): final
 *    tensors within 1e-4 relative L2, step losses within 1e-5 relative, and
 *    the issue's outside-check command verbatim; exact resume;
 *  - preference data: TRL's prompt/response split through the chat template,
 *    EOS rules, pre-tokenized records as given, truncation, validation split,
 *    and clear errors for wrong records and options. */
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fixture_compare.h"
#include "io/safetensors.h"
#include "tuna.h"
#include "tuna_dataset.h"
#include "tuna_dpo.h"
#include "tuna_eval.h"

static char tmpdir[] = "/tmp/tuna_test_dpo_XXXXXX";

static double loss_of(const tuna_dpo_args *a, int n, const double *pc, const double *pr, const double *rc, const double *rr,
                      const int64_t *nc, const int64_t *nr) {
    tuna_dpo_stats s;
    if (tuna_dpo_loss(a, n, pc, pr, rc, rr, nc, nr, NULL, NULL, &s) != TUNA_OK) return NAN;
    return s.loss;
}

static void test_known_values(void) {
    double pc = -1, pr = -2, rc = -1.5, rr = -1.5; /* h = 1 */
    int64_t nc = 2, nr = 4;
    tuna_dpo_args a = {.type = TUNA_DPO_SIGMOID, .beta = 0.1, .label_smoothing = 0};
    tuna_dpo_stats s;
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_OK);
    CHECKF(fabs(s.loss - log1p(exp(-0.1))) < 1e-15, "sigmoid %.17g", s.loss);
    CHECK(fabs(s.rewards_chosen - 0.05) < 1e-15 && fabs(s.rewards_rejected + 0.05) < 1e-15 && fabs(s.rewards_margins - 0.1) < 1e-15 &&
          s.rewards_accuracies == 1 && s.logps_chosen == -1 && s.logps_rejected == -2);
    a.label_smoothing = 0.1;
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_OK);
    CHECK(fabs(s.loss - (0.9 * log1p(exp(-0.1)) + 0.1 * log1p(exp(0.1)))) < 1e-15);
    a = (tuna_dpo_args){.type = TUNA_DPO_HINGE, .beta = 0.1, .label_smoothing = 0};
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_OK && fabs(s.loss - 0.9) < 1e-15);
    a.beta = 2; /* 1 - 2 h < 0: no loss */
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_OK && s.loss == 0);
    /* IPO on averaged log-probabilities: h = (-1/2 + 2/4) - (-1.5/2 + 1.5/4) = 0.375 */
    a = (tuna_dpo_args){.type = TUNA_DPO_IPO, .beta = 0.5, .label_smoothing = 0};
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_OK);
    CHECKF(fabs(s.loss - (0.375 - 1) * (0.375 - 1)) < 1e-15, "ipo %.17g", s.loss);
    CHECK(fabs(s.rewards_chosen - 0.5 * 0.25) < 1e-15 && fabs(s.logps_chosen + 0.5) < 1e-15);
    /* a rejected response the policy prefers: accuracy 0, margin negative */
    double pc2 = -3;
    a = (tuna_dpo_args){.type = TUNA_DPO_SIGMOID, .beta = 0.1, .label_smoothing = 0};
    CHECK(tuna_dpo_loss(&a, 1, &pc2, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_OK && s.rewards_accuracies == 0 &&
          s.rewards_margins < 0 && s.loss > log(2));
    /* bad arguments */
    a.beta = 0;
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_ERR_ARG);
    a = (tuna_dpo_args){.type = TUNA_DPO_HINGE, .beta = 0.1, .label_smoothing = 0.2};
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &nc, &nr, NULL, NULL, &s) == TUNA_ERR_ARG);
    int64_t zero = 0;
    a = (tuna_dpo_args){.type = TUNA_DPO_IPO, .beta = 0.1, .label_smoothing = 0};
    CHECK(tuna_dpo_loss(&a, 1, &pc, &pr, &rc, &rr, &zero, &nr, NULL, NULL, &s) == TUNA_ERR_ARG);
    CHECK(tuna_dpo_loss_from_name("ipo") == TUNA_DPO_IPO && tuna_dpo_loss_from_name("kto") == -1);
}

static void test_derivatives(void) {
    enum { N = 3 };
    double pc[N] = {-10.5, -3.25, -7}, pr[N] = {-12, -2.5, -7.5}, rc[N] = {-11, -3, -6.75}, rr[N] = {-11.5, -3.5, -7.25};
    int64_t nc[N] = {5, 2, 7}, nr[N] = {6, 3, 4};
    tuna_dpo_args cases[4] = {{.type = TUNA_DPO_SIGMOID, .beta = 0.1, .label_smoothing = 0}, {.type = TUNA_DPO_SIGMOID, .beta = 0.5, .label_smoothing = 0.2}, {.type = TUNA_DPO_IPO, .beta = 0.1, .label_smoothing = 0}, {.type = TUNA_DPO_HINGE, .beta = 0.3, .label_smoothing = 0}};
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
    if (tuna_model_row_losses(m, 4, T, rows) != TUNA_OK) return NAN;
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
    tuna_dpo_args cases[2] = {{.type = TUNA_DPO_SIGMOID, .beta = 0.1, .label_smoothing = 0}, {.type = TUNA_DPO_IPO, .beta = 1.0, .label_smoothing = 0}};
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

static const char *parity_model = "tests/fixtures/parity/llama_gqa";

/* compares the run in out with the fixture's PyTorch reference */
static void check_fixture_run(const char *name, const char *out) {
    char dir[300];
    snprintf(dir, sizeof dir, "tests/fixtures/dpo/%s", name);
    /* margins are differences of nearly equal rewards: absolute budget */
    static const fixture_step cs[] = {{"step_loss", "loss", 0, 1e-5}, {"step_margin", "rewards/margins", -1, 1e-5},
                                      {"step_accuracy", "rewards/accuracies", -1, 0}};
    check_fixture_weights("dpo", name, dir, out, 0, 1);
    check_fixture_steps("dpo", name, dir, out, cs, 3);
}

static void test_fixture(const char *name) {
    char dir[300], path[600], cmd[8192], out[400];
    snprintf(dir, sizeof dir, "tests/fixtures/dpo/%s", name);
    snprintf(path, sizeof path, "%s/args.json", dir);
    if (!test_need(path, name)) return;
    json_error_t je;
    json_t *args = json_load_file(path, 0, &je);
    CHECKF(args != NULL, "%s: %s", path, je.text);
    if (!args) return;
    snprintf(out, sizeof out, "%s/%s", tmpdir, name);
    int n = snprintf(cmd, sizeof cmd, "%s dpo --model %s --data %s/data.jsonl --out %s --quiet", test_cli, parity_model, dir, out);
    json_t *cli = json_object_get(args, "cli"), *v;
    size_t i;
    int next_is_path = 0;
    json_array_foreach(cli, i, v) {
        const char *s = json_string_value(v);
        if (next_is_path) n += snprintf(cmd + n, sizeof cmd - n, " %s/%s", dir, s);
        else n += snprintf(cmd + n, sizeof cmd - n, " %s", s);
        next_is_path = !strcmp(s, "--adapter") || !strcmp(s, "--ref-model");
    }
    json_decref(args);
    CHECKF(system(cmd) == 0, "%s", cmd);
    check_fixture_run(name, out);
}

/* the outside check of the issue, verbatim, on the fixture's records */
static void test_issue_command(void) {
    char cmd[4096], out[400];
    if (!test_need("tests/fixtures/dpo/full_sigmoid/data.jsonl", "dpo issue command")) return;
    snprintf(out, sizeof out, "%s/issue", tmpdir);
    snprintf(cmd, sizeof cmd,
             "%s dpo --model %s --data tests/fixtures/dpo/full_sigmoid/data.jsonl --method full --out %s --steps 3 --batch 2 "
             "--micro-batch 1 --seq-len 64 --lr 1e-3 --schedule constant --warmup 0 --weight-decay 0 --grad-clip 0 "
             "--no-shuffle --seed 0 --beta 0.1 2>/dev/null",
             test_cli, parity_model, out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    check_fixture_run("full_sigmoid", out);
}

/* --save-every + --resume: the resumed run ends where the uninterrupted one does */
static void test_resume(void) {
    char cmd[4096], a[400], b[400], pa[600], pb[600];
    const char *fx = "tests/fixtures/dpo/lora_ipo";
    if (!test_need(fx, "dpo resume")) return;
    snprintf(a, sizeof a, "%s/resume_a", tmpdir);
    snprintf(b, sizeof b, "%s/resume_b", tmpdir);
    const char *common = "--method lora --adapter tests/fixtures/dpo/lora_ipo/adapter0 --lora-targets q_proj,v_proj --loss ipo "
                         "--beta 0.5 --steps 4 --batch 2 --micro-batch 1 --lr 1e-3 --schedule cosine --seed 3 --quiet";
    snprintf(cmd, sizeof cmd, "%s dpo --model %s --data %s/data.jsonl --out %s %s --save-every 2", test_cli, parity_model, fx, a, common);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "%s dpo --model %s --data %s/data.jsonl --out %s %s --resume %s/checkpoint-2", test_cli,
             parity_model, fx, b, common, a);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(pa, sizeof pa, "%s/adapter_model.safetensors", a);
    snprintf(pb, sizeof pb, "%s/adapter_model.safetensors", b);
    int nt = 0;
    char wn[256] = "";
    double e = compare_tensors(pb, pa, &nt, wn, sizeof wn);
    CHECKF(nt == 8 && e == 0, "resumed DPO differs: %d tensors, worst %.3g (%s)", nt, e, wn);
}

/* Share of the pairs of a pre-tokenized preference file whose chosen response
 * the model gives the higher log-probability (summed over its tokens),
 * counted here from per-sequence losses; -1 when it cannot be computed. */
static double preference_accuracy(const char *model_dir, const char *data, int *pairs) {
    tuna_model *m = NULL;
    tuna_pretok *seqs = NULL;
    tuna_pref_options o = {0};
    tuna_pref_stats s;
    tuna_data_options_init(&o.data);
    double acc = -1;
    *pairs = 0;
    if (tuna_model_load(&m, model_dir) != TUNA_OK) return -1;
    if (tuna_dataset_load_preferences(data, NULL, NULL, &o, &seqs, NULL, &s) == TUNA_OK) {
        int64_t n = tuna_pretok_count(seqs);
        double *loss = calloc((size_t)n, sizeof *loss);
        int64_t *tokens = calloc((size_t)n, sizeof *tokens);
        if (loss && tokens && n > 0 && tuna_eval_losses(m, seqs, 2, loss, tokens, NULL, NULL) == TUNA_OK) {
            int chosen_better = 0; /* sequence 2i is prompt + chosen, 2i+1 prompt + rejected */
            for (int64_t i = 0; i + 1 < n; i += 2) chosen_better += loss[i] < loss[i + 1];
            *pairs = (int)(n / 2);
            acc = (double)chosen_better / *pairs;
        }
        free(loss);
        free(tokens);
        tuna_pretok_free(seqs);
    }
    tuna_model_free(m);
    return acc;
}

/* validation metrics of an untrained policy: it is its own reference, so the
 * loss is log 2 and every reward 0; its log-probabilities are those tuna eval
 * reports for the same pairs */
static void test_eval_consistency(void) {
    char cmd[4096], out[400], path[600], line[8192];
    /* validation pairs other than the training pairs: rows must come from the val set */
    const char *data = "tests/fixtures/dpo/lora_sigmoid/data.jsonl", *val = "tests/fixtures/dpo/lora_ipo/data.jsonl";
    if (!test_need(data, "dpo eval") || !test_need(val, "dpo eval")) return;
    snprintf(out, sizeof out, "%s/evalrun", tmpdir);
    snprintf(cmd, sizeof cmd, "%s dpo --model %s --data %s --val %s --method lora --out %s --steps 1 --batch 2 --micro-batch 1 --lr 0 --quiet",
             test_cli, parity_model, data, val, out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    FILE *f = fopen(path, "r");
    json_t *ev = NULL;
    while (f && fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        if (o && json_object_get(o, "eval_loss")) { json_decref(ev); ev = o; }
        else json_decref(o);
    }
    if (f) fclose(f);
    CHECK(ev != NULL);
    if (!ev) return;
    double el = json_number_value(json_object_get(ev, "eval_loss"));
    double rc = json_number_value(json_object_get(ev, "eval_rewards/chosen")), rr = json_number_value(json_object_get(ev, "eval_rewards/rejected"));
    double lc = json_number_value(json_object_get(ev, "eval_logps/chosen"));
    CHECKF(fabs(el - log(2.0)) < 1e-9 && fabs(rc) < 1e-9 && fabs(rr) < 1e-9, "untrained eval: loss %.9g, rewards %.3g %.3g", el, rc, rr);
    CHECK(json_integer_value(json_object_get(ev, "eval_pairs")) == 6);
    json_decref(ev);
    /* tuna eval on the same pairs: the mean log-probability of the chosen responses */
    snprintf(path, sizeof path, "%s/eval.json", tmpdir);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s --json --quiet > %s", test_cli, parity_model, val, path);
    CHECKF(system(cmd) == 0, "%s", cmd);
    json_t *e = json_load_file(path, 0, NULL);
    json_t *pref = json_object_get(e, "preference");
    double elc = json_number_value(json_object_get(pref, "mean_logp_chosen")), acc = json_number_value(json_object_get(pref, "accuracy"));
    CHECKF(pref && json_integer_value(json_object_get(pref, "pairs")) == 6 && fabs(elc - lc) <= 1e-5 * fabs(lc),
           "tuna eval mean logp chosen %.9g vs dpo eval %.9g", elc, lc);
    int pairs = 0;
    double want = preference_accuracy(parity_model, val, &pairs);
    CHECKF(pairs == 6 && fabs(acc - want) < 1e-12, "tuna eval preference accuracy %.9g, counted here %.9g of %d pairs", acc, want, pairs);
    printf("dpo eval: preference accuracy %.4f (%d pairs)\n", want, pairs);
    json_decref(e);
}

/* QLoRA: the reference is the NF4 base with the fresh adapter (identity), so
 * the first loss is log 2 exactly; training on 6 pairs lowers the loss */
static void test_qlora(void) {
    char cmd[4096], out[400];
    const char *data = "tests/fixtures/dpo/lora_ipo/data.jsonl";
    if (!test_need(data, "dpo qlora")) return;
    snprintf(out, sizeof out, "%s/qlora", tmpdir);
    snprintf(cmd, sizeof cmd, "%s dpo --model %s --data %s --method qlora --lora-targets q_proj,v_proj --out %s --steps 24 --batch 6 "
             "--micro-batch 3 --lr 3e-3 --beta 0.5 --schedule constant --quiet", test_cli, parity_model, data, out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    double loss[32], acc[32];
    int n = run_metric(out, "loss", loss, 32), na = run_metric(out, "rewards/accuracies", acc, 32);
    CHECKF(n == 24 && na == 24, "%d steps logged", n);
    if (n != 24) return;
    printf("dpo qlora: loss %.6f at step 1, %.4f at step 24 (accuracy %.2f)\n", loss[0], loss[23], acc[23]);
    CHECKF(fabs(loss[0] - log(2.0)) < 1e-6, "qlora first loss %.9g", loss[0]);
    CHECKF(loss[23] < 0.5 && acc[23] == 1.0, "qlora did not learn: loss %.4f, accuracy %.2f", loss[23], acc[23]);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) { fputs(text, f); fclose(f); }
}

static int same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || !memcmp(a, b, na * sizeof *a));
}

/* encoding through the shipped model's tokenizer and chat template */
static void test_encoding(void) {
    const char *mdir = "models/tuna-stories";
    tuna_tokenizer *tok = NULL;
    tuna_template *tmpl = NULL;
    if (!test_need(mdir, "dpo encoding")) return;
    CHECKF(tuna_tokenizer_load(&tok, mdir) == TUNA_OK, "%s: %s", mdir, tuna_last_error());
    if (!tok) return;
    CHECK(tuna_dataset_template(&tmpl, tok, NULL, NULL) == TUNA_OK && tmpl);
    int32_t eos = tuna_tokenizer_eos_id(tok);
    tuna_record rec = {0};
    tuna_bad_kind why;
    /* conversational: prompt = rendering with the generation prompt; the response
     * ends with the template's EOS, not a second one */
    const char *line = "{\"prompt\":[{\"role\":\"user\",\"content\":\"Name a colour.\"}],"
                       "\"chosen\":[{\"role\":\"assistant\",\"content\":\"Red.\"}],"
                       "\"rejected\":[{\"role\":\"assistant\",\"content\":\"I like the sea and the sky very much.\"}]}";
    CHECK(tuna_record_parse(&rec, line, strlen(line), NULL, &why) == TUNA_OK);
    tuna_pref_tokens pt;
    CHECKF(tuna_dataset_encode_preference(&rec, tok, tmpl, &pt) == TUNA_OK, "%s", tuna_last_error());
    json_t *pm = tuna_messages_to_json(rec.prompt.msgs, rec.prompt.n);
    tuna_template_vars vars = {0};
    vars.bos_token = tuna_tokenizer_bos_token(tok);
    vars.eos_token = tuna_tokenizer_eos_token(tok);
    vars.add_generation_prompt = 1;
    char *ptext = NULL;
    size_t plen = 0;
    CHECK(tuna_template_render(tmpl, pm, &vars, &ptext, &plen) == TUNA_OK);
    json_decref(pm);
    int32_t *want = NULL;
    size_t nw = 0;
    CHECK(tuna_dataset_encode_text(tok, ptext, plen, &want, &nw) == TUNA_OK);
    CHECK(same_ids(pt.prompt, pt.n_prompt, want, nw));
    free(want);
    free(ptext);
    CHECK(pt.n_chosen >= 2 && pt.chosen[pt.n_chosen - 1] == eos && pt.chosen[pt.n_chosen - 2] != eos);
    CHECK(pt.n_rejected > pt.n_chosen && pt.rejected[pt.n_rejected - 1] == eos);
    /* prompt + response = the SFT encoding of the same conversation */
    {
        tuna_record chat = {0};
        const char *cl = "{\"messages\":[{\"role\":\"user\",\"content\":\"Name a colour.\"},{\"role\":\"assistant\",\"content\":\"Red.\"}]}";
        int32_t *ids = NULL, *labels = NULL;
        size_t n = 0;
        CHECK(tuna_record_parse(&chat, cl, strlen(cl), NULL, &why) == TUNA_OK);
        CHECK(tuna_dataset_encode_record(&chat, tok, tmpl, 0, &ids, &labels, &n, NULL) == TUNA_OK);
        /* SFT's text goes on after the EOS ("\n\n" of the template), uncounted */
        int same = n > pt.n_prompt + pt.n_chosen && same_ids(ids, pt.n_prompt, pt.prompt, pt.n_prompt) &&
                   same_ids(ids + pt.n_prompt, pt.n_chosen, pt.chosen, pt.n_chosen);
        for (size_t i = 0; same && i < n; i++) same = (labels[i] != -100) == (i >= pt.n_prompt && i < pt.n_prompt + pt.n_chosen);
        CHECKF(same, "DPO prompt+chosen differs from the SFT encoding of the conversation (%zu vs %zu+%zu tokens)", n,
               pt.n_prompt, pt.n_chosen);
        free(ids);
        free(labels);
        tuna_record_clear(&chat);
    }
    tuna_pref_tokens_free(&pt);
    /* strings: no template; EOS appended; the prompt encoded as SFT encodes text */
    line = "{\"prompt\":\"Once upon a time\",\"chosen\":\" there was a cat.\",\"rejected\":\" dog dog dog\"}";
    CHECK(tuna_record_parse(&rec, line, strlen(line), NULL, &why) == TUNA_OK);
    CHECK(tuna_dataset_encode_preference(&rec, tok, tmpl, &pt) == TUNA_OK);
    CHECK(tuna_dataset_encode_text(tok, "Once upon a time", 16, &want, &nw) == TUNA_OK);
    CHECK(same_ids(pt.prompt, pt.n_prompt, want, nw) && pt.chosen[pt.n_chosen - 1] == eos && pt.rejected[pt.n_rejected - 1] == eos);
    free(want);
    {
        int32_t *body = NULL;
        size_t nb = 0;
        CHECK(tuna_tokenizer_encode(tok, " there was a cat.", 17, 0, &body, &nb) == TUNA_OK);
        CHECK(same_ids(pt.chosen, pt.n_chosen - 1, body, nb));
        free(body);
    }
    tuna_pref_tokens_free(&pt);
    /* pre-tokenized: as given, nothing added */
    line = "{\"prompt_ids\":[5,6],\"chosen_ids\":[7],\"rejected_ids\":[8,9]}";
    CHECK(tuna_record_parse(&rec, line, strlen(line), NULL, &why) == TUNA_OK);
    CHECK(tuna_dataset_encode_preference(&rec, NULL, NULL, &pt) == TUNA_OK);
    CHECK(pt.n_prompt == 2 && pt.n_chosen == 1 && pt.chosen[0] == 7 && pt.n_rejected == 2 && pt.rejected[1] == 9);
    tuna_pref_tokens_free(&pt);
    /* an SFT record is not a pair */
    line = "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"}]}";
    CHECK(tuna_record_parse(&rec, line, strlen(line), NULL, &why) == TUNA_OK);
    CHECK(tuna_dataset_encode_preference(&rec, tok, tmpl, &pt) == TUNA_ERR_FORMAT && strstr(tuna_last_error(), "chat record"));
    tuna_record_clear(&rec);
    tuna_template_free(tmpl);
    tuna_tokenizer_free(tok);
}

/* truncation, dropping and the validation split in the loader */
static void test_loader(void) {
    char path[400];
    snprintf(path, sizeof path, "%s/trunc.jsonl", tmpdir);
    write_file(path, "{\"prompt_ids\":[1,2,3,4,5,6],\"chosen_ids\":[7,8,9],\"rejected_ids\":[10]}\n"
                     "{\"prompt_ids\":[1,2],\"chosen_ids\":[7,8,9,10,11,12,13],\"rejected_ids\":[10,11]}\n"
                     "{\"prompt_ids\":[1,2,3,4,5,6,7,8,9,10],\"chosen_ids\":[7],\"rejected_ids\":[8]}\n");
    tuna_pref_options o = {0};
    o.max_len = 8;
    o.max_prompt_len = 4;
    tuna_data_options_init(&o.data);
    tuna_pretok *tr = NULL, *va = NULL;
    tuna_pref_stats s;
    CHECKF(tuna_dataset_load_preferences(path, NULL, NULL, &o, &tr, &va, &s) == TUNA_OK, "%s", tuna_last_error());
    /* record 1: prompt 3..6 (last 4), responses fit; record 2: chosen cut to 6;
     * record 3: prompt cut to 4 then fits */
    CHECK(s.pairs == 3 && s.prompts_truncated == 2 && s.responses_truncated == 1 && s.dropped == 0 && tr &&
          tuna_pretok_count(tr) == 6 && va && tuna_pretok_count(va) == 0);
    if (tr && tuna_pretok_count(tr) == 6) {
        const int32_t *ids, *lab;
        CHECK(tuna_pretok_seq(tr, 0, &ids, &lab, NULL) == 7 && ids[0] == 3 && lab[3] == -100 && lab[4] == 7);
        CHECK(tuna_pretok_seq(tr, 2, &ids, NULL, NULL) == 8 && ids[7] == 12); /* 2 prompt + 6 of 7 chosen */
        CHECK(tuna_pretok_seq(tr, 4, &ids, NULL, NULL) == 5 && ids[0] == 7);
    }
    tuna_pretok_free(tr);
    tuna_pretok_free(va);
    o.max_prompt_len = 0; /* a prompt that fills --max-len: left out, counted */
    CHECK(tuna_dataset_load_preferences(path, NULL, NULL, &o, &tr, NULL, &s) == TUNA_OK && s.pairs == 2 && s.dropped == 1);
    tuna_pretok_free(tr);
    /* hash split by record: deterministic, pairs kept whole */
    snprintf(path, sizeof path, "%s/many.jsonl", tmpdir);
    FILE *f = fopen(path, "w");
    for (int i = 0; f && i < 200; i++) fprintf(f, "{\"prompt_ids\":[1,%d],\"chosen_ids\":[%d,5],\"rejected_ids\":[6]}\n", 3 + i % 50, 7 + i);
    if (f) fclose(f);
    o.max_len = 0;
    o.val_fraction = 0.2;
    o.val_seed = 1;
    CHECK(tuna_dataset_load_preferences(path, NULL, NULL, &o, &tr, &va, &s) == TUNA_OK);
    CHECKF(s.pairs + s.val_pairs == 200 && s.val_pairs > 20 && s.val_pairs < 60 && va && tuna_pretok_count(va) == 2 * s.val_pairs &&
               tr && tuna_pretok_count(tr) == 2 * s.pairs,
           "split %ld / %ld", s.pairs, s.val_pairs);
    tuna_pretok_free(tr);
    tuna_pretok_free(va);
    /* a chat record in preference data stops loading with FILE:LINE */
    snprintf(path, sizeof path, "%s/mixed.jsonl", tmpdir);
    write_file(path, "{\"prompt_ids\":[1],\"chosen_ids\":[2],\"rejected_ids\":[3]}\n{\"input_ids\":[1,2,3]}\n");
    o.val_fraction = 0;
    CHECK(tuna_dataset_load_preferences(path, NULL, NULL, &o, &tr, NULL, &s) == TUNA_ERR_FORMAT);
    CHECKF(strstr(tuna_last_error(), "mixed.jsonl:2:") && strstr(tuna_last_error(), "pretokenized"), "%s", tuna_last_error());
}

/* usage errors: exit 2 with one line */
static void test_cli_errors(void) {
    char cmd[2048];
    const char *data = "tests/fixtures/dpo/full_sigmoid/data.jsonl";
    if (!test_need(data, "dpo cli errors")) return;
    const char *bad[] = {"--loss kto", "--loss ipo --label-smoothing 0.1", "--method ia3", "--beta 0", "--pack",
                         "--max-prompt-len 64 --seq-len 64"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(cmd, sizeof cmd, "%s dpo --model %s --data %s --out %s/err %s --steps 1 2>/dev/null", test_cli, parity_model, data,
                 tmpdir, bad[k]);
        int rc = system(cmd);
        CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "'%s' exits %d, expected 2", bad[k], WEXITSTATUS(rc));
    }
    /* SFT data given to dpo: exit 2 naming the line */
    snprintf(cmd, sizeof cmd, "%s dpo --model %s --data tests/fixtures/sft/llama_constant/data.jsonl --out %s/err2 --steps 1 2>&1 | grep -q 'data.jsonl:1: a pretokenized record in preference data'",
             test_cli, parity_model, tmpdir);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "%s dpo --help | grep -q 'chosen_ids'", test_cli);
    CHECK(system(cmd) == 0);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (!mkdtemp(tmpdir)) return 1;
    test_known_values();
    test_derivatives();
    test_through_model();
    test_fixture("full_sigmoid");
    test_fixture("full_ipo");
    test_fixture("lora_sigmoid");
    test_fixture("lora_ipo");
    test_issue_command();
    test_resume();
    test_eval_consistency();
    test_qlora();
    test_encoding();
    test_loader();
    test_cli_errors();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_done();
}
