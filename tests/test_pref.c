/* test_pref.c — the losses beyond DPO: ORPO and SimPO (`tuna dpo --loss
 * orpo|simpo`, reference-free) and KTO (`tuna kto`):
 *  - values against the formulas written another way (odds from
 *    probabilities, the KTO sigmoid as 1 / (1 + e^z)), and each derivative
 *    against central differences;
 *  - KTO's KL rows: TRL's pairing (previous completion within chunks of the
 *    batch), labels, truncation; a conversational item encoded as the
 *    preference record's prompt and chosen response;
 *  - the CLI against the PyTorch reference (tests/fixtures/pref,
 *    tools/make_pref_fixtures.py): 3 steps of ORPO, SimPO, SimPO with
 *    cpo_alpha and label smoothing, KTO full and LoRA: final tensors within
 *    1e-4 relative L2, step losses within 1e-5 relative, two logged metrics
 *    per step within 1e-5;
 *  - ORPO's validation metrics adding up; exact resume of orpo and kto from
 *    a checkpoint, and a kto resume with changed labels refused;
 *  - bad records and options: exit 2, one line naming FILE:LINE. */
#include <jansson.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fixture_compare.h"
#include "io/safetensors.h"
#include "tuna.h"
#include "tuna_data.h"
#include "tuna_dataset.h"
#include "tuna_dpo.h"
#include "tuna_tokenizer.h"

static char tmpdir[] = "/tmp/tuna_test_pref_XXXXXX";
static const char *parity_model = "tests/fixtures/parity/llama_gqa";

static double pair_loss_of(const tuna_dpo_args *a, int n, const double *pc, const double *pr, const int64_t *nc,
                           const int64_t *nr) {
    tuna_dpo_stats s;
    if (tuna_dpo_loss(a, n, pc, pr, NULL, NULL, nc, nr, NULL, NULL, &s) != TUNA_OK) return NAN;
    return s.loss;
}

static double kto_loss_of(const tuna_dpo_args *a, int n, const double *pc, const double *rc, const uint8_t *des, double kl) {
    tuna_dpo_stats s;
    if (tuna_kto_loss(a, n, pc, rc, des, kl, NULL, &s) != TUNA_OK) return NAN;
    return s.loss;
}

/* ORPO and SimPO on two pairs, against the formulas in other terms */
static void test_paired_values(void) {
    double pc[2] = {-6.0, -3.0}, pr[2] = {-8.0, -2.0};
    int64_t nc[2] = {4, 2}, nr[2] = {5, 4};
    tuna_dpo_args orpo = {.type = TUNA_DPO_ORPO, .beta = 0.25};
    tuna_dpo_stats s;
    CHECK(tuna_dpo_loss(&orpo, 2, pc, pr, NULL, NULL, nc, nr, NULL, NULL, &s) == TUNA_OK);
    double want = 0, lo_sum = 0;
    for (int i = 0; i < 2; i++) {
        double p = exp(pc[i] / nc[i]), q = exp(pr[i] / nr[i]); /* mean per-token probabilities */
        double ratio = (p / (1 - p)) / (q / (1 - q));          /* the odds ratio */
        want += -0.25 * log(ratio / (1 + ratio)) / 2;          /* log sigmoid(log r) = log(r / (1 + r)) */
        lo_sum += log(ratio) / 2;
    }
    CHECKF(fabs(s.loss - want) < 1e-12, "orpo loss %.15g, want %.15g", s.loss, want);
    CHECKF(fabs(s.log_odds_chosen - lo_sum) < 1e-12, "orpo log odds %.15g, want %.15g", s.log_odds_chosen, lo_sum);
    CHECK(fabs(s.rewards_chosen - 0.25 * (-1.5 - 1.5) / 2) < 1e-12 && fabs(s.logps_rejected - (-1.6 - 0.5) / 2) < 1e-12);
    CHECK(s.rewards_accuracies == 0.5);
    tuna_dpo_args simpo = {.type = TUNA_DPO_SIMPO, .beta = 2.0, .simpo_gamma = 0.5, .label_smoothing = 0.1};
    CHECK(tuna_dpo_loss(&simpo, 2, pc, pr, NULL, NULL, nc, nr, NULL, NULL, &s) == TUNA_OK);
    want = 0;
    for (int i = 0; i < 2; i++) {
        double z = 2.0 * ((pc[i] / nc[i] - pr[i] / nr[i]) - 0.5 / 2.0);
        want += (0.9 * log(1 + exp(-z)) + 0.1 * log(1 + exp(z))) / 2;
    }
    CHECKF(fabs(s.loss - want) < 1e-12, "simpo loss %.15g, want %.15g", s.loss, want);
    CHECK(tuna_dpo_loss_from_name("orpo") == TUNA_DPO_ORPO && tuna_dpo_loss_from_name("simpo") == TUNA_DPO_SIMPO);
    /* ORPO needs a count per response; KTO is not a paired loss */
    CHECK(tuna_dpo_loss(&orpo, 2, pc, pr, NULL, NULL, NULL, nr, NULL, NULL, &s) == TUNA_ERR_ARG);
    tuna_dpo_args kto = {.type = TUNA_DPO_KTO, .beta = 0.1};
    CHECK(tuna_dpo_loss(&kto, 2, pc, pr, pc, pr, nc, nr, NULL, NULL, &s) == TUNA_ERR_ARG);
}

/* KTO on three items, against 1 / (1 + e^z) written out */
static void test_kto_values(void) {
    double pc[3] = {-10, -12, -7}, rc[3] = {-11, -11.5, -7.5}, pk[2] = {-9, -14}, rk[2] = {-9.5, -13};
    uint8_t des[3] = {1, 0, 1};
    tuna_dpo_args a = {.type = TUNA_DPO_KTO, .beta = 0.5, .desirable_weight = 1.25, .undesirable_weight = 0.75};
    CHECK(tuna_kto_kl(2, pk, rk) == 0); /* mean -0.25: clamped */
    double kl = 0.2;
    tuna_dpo_stats s;
    CHECK(tuna_kto_loss(&a, 3, pc, rc, des, kl, NULL, &s) == TUNA_OK);
    double want = (1.25 * (1 - 1 / (1 + exp(-0.5 * (1 - kl)))) + 0.75 * (1 - 1 / (1 + exp(-0.5 * (kl + 0.5)))) +
                   1.25 * (1 - 1 / (1 + exp(-0.5 * (0.5 - kl))))) / 3;
    CHECKF(fabs(s.loss - want) < 1e-12, "kto loss %.15g, want %.15g", s.loss, want);
    CHECK(s.count_chosen == 2 && s.count_rejected == 1 && fabs(s.rewards_chosen - 0.5 * 0.75) < 1e-12 &&
          fabs(s.rewards_rejected + 0.25) < 1e-12 && fabs(s.logps_chosen + 8.5) < 1e-12 && s.kl == kl);
    double p2[2] = {-9, -12}, r2[2] = {-9.5, -13};
    CHECK(fabs(tuna_kto_kl(2, p2, r2) - 0.75) < 1e-15);
}

/* every derivative against central differences */
static void test_derivatives(void) {
    enum { N = 3 };
    double pc[N] = {-10.5, -3.25, -7}, pr[N] = {-12, -2.5, -7.5}, rc[N] = {-11, -3, -6.75};
    int64_t nc[N] = {5, 2, 7}, nr[N] = {6, 3, 4};
    tuna_dpo_args cases[3] = {{.type = TUNA_DPO_ORPO, .beta = 0.1},
                              {.type = TUNA_DPO_SIMPO, .beta = 2.0, .simpo_gamma = 0.5},
                              {.type = TUNA_DPO_SIMPO, .beta = 0.7, .simpo_gamma = 1.0, .label_smoothing = 0.2}};
    double worst = 0, h = 1e-6;
    for (int c = 0; c < 3; c++) {
        double dc[N], dr[N];
        CHECK(tuna_dpo_loss(&cases[c], N, pc, pr, NULL, NULL, nc, nr, dc, dr, NULL) == TUNA_OK);
        for (int i = 0; i < N; i++)
            for (int which = 0; which < 2; which++) {
                double *x = which ? pr : pc, x0 = x[i];
                x[i] = x0 + h;
                double lp = pair_loss_of(&cases[c], N, pc, pr, nc, nr);
                x[i] = x0 - h;
                double lm = pair_loss_of(&cases[c], N, pc, pr, nc, nr);
                x[i] = x0;
                double fd = (lp - lm) / (2 * h), an = which ? dr[i] : dc[i];
                worst = fmax(worst, fabs(fd - an) / fmax(fabs(fd), 1e-3));
            }
    }
    uint8_t des[N] = {1, 0, 1};
    tuna_dpo_args k = {.type = TUNA_DPO_KTO, .beta = 0.8, .desirable_weight = 1, .undesirable_weight = 1.5};
    double d[N];
    CHECK(tuna_kto_loss(&k, N, pc, rc, des, 0.3, d, NULL) == TUNA_OK);
    for (int i = 0; i < N; i++) {
        double x0 = pc[i];
        pc[i] = x0 + h;
        double lp = kto_loss_of(&k, N, pc, rc, des, 0.3);
        pc[i] = x0 - h;
        double lm = kto_loss_of(&k, N, pc, rc, des, 0.3);
        pc[i] = x0;
        double fd = (lp - lm) / (2 * h);
        worst = fmax(worst, fabs(fd - d[i]) / fmax(fabs(fd), 1e-3));
    }
    printf("orpo / simpo / kto derivatives vs central differences: worst rel %.2g\n", worst);
    CHECKF(worst < 1e-6, "worst rel %.3g", worst);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) { fputs(text, f); fclose(f); }
}

/* the row's response tokens (labels != -100) */
static int response_of(const tuna_pretok *p, int64_t i, int32_t *out, int max) {
    const int32_t *ids, *lab;
    int64_t n = tuna_pretok_seq(p, i, &ids, &lab, NULL), k = 0;
    for (int64_t t = 0; t < n && k < max; t++)
        if (lab[t] != -100) out[k++] = ids[t];
    return (int)k;
}

/* TRL's KL rows: chunks of 3 over 5 items; labels; the prompt kept */
static void test_kl_rows(void) {
    char path[400];
    snprintf(path, sizeof path, "%s/kto.jsonl", tmpdir);
    write_file(path, "{\"prompt_ids\":[1,2],\"completion_ids\":[10,11],\"label\":true}\n"
                     "{\"prompt_ids\":[3],\"completion_ids\":[20],\"label\":false}\n"
                     "{\"prompt_ids\":[4,5,6],\"completion_ids\":[30,31,32],\"label\":true}\n"
                     "{\"prompt_ids\":[7],\"completion_ids\":[40,41],\"label\":false}\n"
                     "{\"prompt_ids\":[8],\"completion_ids\":[50],\"label\":true}\n");
    tuna_kto_options o = {.max_len = 5, .chunk = 3};
    tuna_data_options_init(&o.data);
    tuna_pretok *p = NULL;
    uint8_t *des = NULL;
    tuna_kto_stats s;
    CHECKF(tuna_dataset_load_kto(path, NULL, NULL, &o, &p, &des, &s) == TUNA_OK, "%s", tuna_last_error());
    if (!p || !des) return;
    CHECK(tuna_pretok_count(p) == 10 && s.items == 5 && s.desirable == 3 && s.undesirable == 2);
    /* the KL completion of each item: chunk {0,1,2} -> 2,0,1; chunk {3,4} -> 4,3 */
    const int kl_of[5] = {2, 0, 1, 4, 3};
    const int32_t first[5] = {10, 20, 30, 40, 50};
    int ok = 1;
    for (int i = 0; i < 5; i++) {
        int32_t r[8], k[8];
        int nr = response_of(p, 2 * i, r, 8), nk = response_of(p, 2 * i + 1, k, 8);
        const int32_t *ids;
        tuna_pretok_seq(p, 2 * i + 1, &ids, NULL, NULL);
        int32_t want_prompt0 = (int32_t[]){1, 3, 4, 7, 8}[i];
        ok &= nr >= 1 && r[0] == first[i] && nk >= 1 && k[0] == first[kl_of[i]] && ids[0] == want_prompt0;
    }
    CHECKF(ok, "KL rows not TRL's rolled completions");
    CHECK(des[0] == 1 && des[1] == 0 && des[2] == 1 && des[3] == 0 && des[4] == 1);
    /* item 2: prompt 3 + completion 3 > max_len 5: completion cut to 2; its KL row
     * (prompt 3 + item 1's 1 token) fits */
    int32_t r[8];
    CHECK(response_of(p, 4, r, 8) == 2 && s.completions_truncated == 1);
    tuna_pretok_free(p);
    free(des);
    o.chunk = 1;
    CHECK(tuna_dataset_load_kto(path, NULL, NULL, &o, &p, &des, &s) == TUNA_ERR_ARG);
}

/* a conversational KTO item: the same tokens as the prompt and chosen
 * response of the preference record holding it */
static void test_kto_encoding(void) {
    const char *mdir = "models/tuna-stories";
    if (!test_need(mdir, "kto encoding")) return;
    tuna_tokenizer *tok = NULL;
    tuna_template *tmpl = NULL;
    CHECKF(tuna_tokenizer_load(&tok, mdir) == TUNA_OK, "%s: %s", mdir, tuna_last_error());
    if (!tok) return;
    CHECK(tuna_dataset_template(&tmpl, tok, NULL, NULL) == TUNA_OK && tmpl);
    const char *p = "\"prompt\":[{\"role\":\"user\",\"content\":\"Name a colour.\"}]";
    const char *c = "[{\"role\":\"assistant\",\"content\":\"Red.\"}]", *o = "[{\"role\":\"assistant\",\"content\":\"Blue sky.\"}]";
    char path[400], text[1024], line[512];
    snprintf(path, sizeof path, "%s/kto_chat.jsonl", tmpdir);
    snprintf(text, sizeof text, "{%s,\"completion\":%s,\"label\":true}\n{%s,\"completion\":%s,\"label\":false}\n", p, c, p, o);
    write_file(path, text);
    tuna_kto_options ko = {.max_len = 256, .chunk = 2};
    tuna_data_options_init(&ko.data);
    tuna_pretok *items = NULL;
    uint8_t *des = NULL;
    CHECKF(tuna_dataset_load_kto(path, tok, tmpl, &ko, &items, &des, NULL) == TUNA_OK, "%s", tuna_last_error());
    snprintf(line, sizeof line, "{%s,\"chosen\":%s,\"rejected\":%s}", p, c, o);
    tuna_record rec = {0};
    tuna_bad_kind why;
    tuna_pref_tokens pt = {0};
    CHECK(tuna_record_parse(&rec, line, strlen(line), NULL, &why) == TUNA_OK);
    CHECK(tuna_dataset_encode_preference(&rec, tok, tmpl, &pt) == TUNA_OK);
    if (items && tuna_pretok_count(items) == 4 && pt.chosen) {
        const int32_t *ids, *lab;
        int64_t n = tuna_pretok_seq(items, 0, &ids, &lab, NULL);
        int same = n == (int64_t)(pt.n_prompt + pt.n_chosen) && !memcmp(ids, pt.prompt, pt.n_prompt * 4) &&
                   !memcmp(ids + pt.n_prompt, pt.chosen, pt.n_chosen * 4) && lab[pt.n_prompt - 1] == -100 &&
                   lab[pt.n_prompt] == pt.chosen[0];
        CHECKF(same, "KTO item 0 is not the preference record's prompt + chosen");
        /* item 1's KL row: its prompt with item 0's completion */
        n = tuna_pretok_seq(items, 3, &ids, NULL, NULL);
        CHECK(n == (int64_t)(pt.n_prompt + pt.n_chosen) && !memcmp(ids + pt.n_prompt, pt.chosen, pt.n_chosen * 4));
        n = tuna_pretok_seq(items, 2, &ids, NULL, NULL);
        CHECK(n == (int64_t)(pt.n_prompt + pt.n_rejected) && !memcmp(ids + pt.n_prompt, pt.rejected, pt.n_rejected * 4));
    } else CHECK(0);
    tuna_pref_tokens_free(&pt);
    tuna_record_clear(&rec);
    tuna_pretok_free(items);
    free(des);
    tuna_template_free(tmpl);
    tuna_tokenizer_free(tok);
}

/* the fixture's step values against the run's metrics */
static void check_steps(const char *name, const char *dir, const char *out, const char *loss) {
    static const struct { const char *loss, *a, *b; } logged[] = {
        {"orpo", "nll_loss", "log_odds_chosen"}, {"simpo", "rewards/margins", "nll_loss"}, {"kto", "kl", "rewards/chosen"}};
    for (size_t k = 0; k < 3; k++)
        if (!strcmp(logged[k].loss, loss)) {
            fixture_step cs[] = {{"step_loss", "loss", 0, 1e-5}, {"step_a", logged[k].a, -1, 1e-5}, {"step_b", logged[k].b, -1, 1e-5}};
            check_fixture_steps("pref", name, dir, out, cs, 3);
            return;
        }
    CHECKF(0, "%s: no logged metrics known for loss %s", name, loss);
}

/* the fixture's command line run, then compared with the reference */
static void test_fixture(const char *name) {
    char dir[300], path[600], cmd[8192], out[400];
    snprintf(dir, sizeof dir, "tests/fixtures/pref/%s", name);
    snprintf(path, sizeof path, "%s/args.json", dir);
    if (!test_need(path, name)) return;
    json_error_t je;
    json_t *args = json_load_file(path, 0, &je);
    CHECKF(args != NULL, "%s: %s", path, je.text);
    if (!args) return;
    snprintf(out, sizeof out, "%s/%s", tmpdir, name);
    const char *command = json_string_value(json_object_get(args, "command"));
    char loss[16];
    snprintf(loss, sizeof loss, "%s", json_string_value(json_object_get(args, "loss")));
    int n = snprintf(cmd, sizeof cmd, "%s %s --model %s --data %s/data.jsonl --out %s --quiet", test_cli, command, parity_model,
                     dir, out);
    json_t *cli = json_object_get(args, "cli"), *v;
    size_t i;
    int next_is_path = 0;
    json_array_foreach(cli, i, v) {
        const char *s = json_string_value(v);
        n += snprintf(cmd + n, sizeof cmd - n, next_is_path ? " %s/%s" : " %s%s", next_is_path ? dir : "", s);
        next_is_path = !strcmp(s, "--adapter");
    }
    json_decref(args);
    CHECKF(system(cmd) == 0, "%s", cmd);
    check_fixture_weights("pref", name, dir, out, 0, 1);
    check_steps(name, dir, out, loss);
}

/* ORPO's validation line: eval_loss = eval_nll_loss - beta eval_log_odds_ratio,
 * the parts as training combines them (evaluated in chunks of pairs) */
static void test_orpo_eval(void) {
    const char *data = "tests/fixtures/pref/orpo_full/data.jsonl";
    if (!test_need(data, "orpo eval")) return;
    char cmd[4096], out[400];
    snprintf(out, sizeof out, "%s/orpo_eval", tmpdir);
    snprintf(cmd, sizeof cmd, "%s dpo --model %s --data %s --out %s --loss orpo --beta 0.25 --val-split 0.3 --steps 2 --batch 2 "
             "--lr 1e-3 --eval-every 2 --quiet", test_cli, parity_model, data, out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    double loss[4], nll[4], lor[4];
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    FILE *f = fopen(path, "r");
    int n = 0;
    char line[8192];
    while (f && n < 4 && fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        json_t *a = json_object_get(o, "eval_loss"), *b = json_object_get(o, "eval_nll_loss"), *c = json_object_get(o, "eval_log_odds_ratio");
        if (json_is_number(a) && json_is_number(b) && json_is_number(c)) {
            loss[n] = json_number_value(a);
            nll[n] = json_number_value(b);
            lor[n++] = json_number_value(c);
        }
        json_decref(o);
    }
    if (f) fclose(f);
    CHECKF(n == 1 && nll[0] > 1 && lor[0] < 0 && fabs(loss[0] - (nll[0] - 0.25 * lor[0])) < 1e-6 * loss[0],
           "%d eval lines; loss %g, nll %g, log odds ratio %g", n, n ? loss[0] : 0, n ? nll[0] : 0, n ? lor[0] : 0);
}

/* --save-every 2 of 4 steps, then --resume: the same final weights, bit for bit */
static void check_resume(const char *what, const char *command, const char *fx, const char *opts, const char *file) {
    char cmd[4096], a[400], b[400], pa[600], pb[600];
    if (!test_need(fx, what)) return;
    snprintf(a, sizeof a, "%s/%s_a", tmpdir, what);
    snprintf(b, sizeof b, "%s/%s_b", tmpdir, what);
    snprintf(cmd, sizeof cmd, "%s %s --model %s --data %s/data.jsonl --out %s %s --save-every 2", test_cli, command, parity_model,
             fx, a, opts);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "%s %s --model %s --data %s/data.jsonl --out %s %s --resume %s/checkpoint-2", test_cli, command,
             parity_model, fx, b, opts, a);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(pa, sizeof pa, "%s/%s", a, file);
    snprintf(pb, sizeof pb, "%s/%s", b, file);
    int nt = 0;
    char wn[256] = "";
    double e = compare_tensors(pb, pa, &nt, wn, sizeof wn);
    printf("%s: resumed at step 2 of 4, %d tensors, worst difference %.3g\n", what, nt, e);
    CHECKF(nt > 0 && e == 0, "%s: resumed run differs: %d tensors, worst %.3g (%s)", what, nt, e, wn);
}

/* a KTO checkpoint resumed with the same items but other labels: refused */
static void kto_labels_changed(const char *fx, const char *opts) {
    char src[600], dst[600], cmd[4096];
    snprintf(src, sizeof src, "%s/data.jsonl", fx);
    snprintf(dst, sizeof dst, "%s/flipped.jsonl", tmpdir);
    FILE *in = fopen(src, "r"), *out = fopen(dst, "w");
    char line[4096];
    while (in && out && fgets(line, sizeof line, in)) {
        char *t = strstr(line, "\"label\": true"), *f = strstr(line, "\"label\": false");
        if (t) { *t = 0; fprintf(out, "%s\"label\": false}\n", line); }
        else if (f) { *f = 0; fprintf(out, "%s\"label\": true}\n", line); }
    }
    if (in) fclose(in);
    if (out) fclose(out);
    snprintf(cmd, sizeof cmd, "%s kto --model %s --data %s --out %s/kto_flip %s --resume %s/kto_resume_a/checkpoint-2 2>&1 | "
             "grep -q 'kto_labels'", test_cli, parity_model, dst, tmpdir, opts, tmpdir);
    CHECKF(system(cmd) == 0, "resume with flipped labels: %s", cmd);
}

static void test_resume(void) {
    check_resume("orpo_resume", "dpo", "tests/fixtures/pref/orpo_full",
                 "--method full --loss orpo --steps 4 --batch 2 --micro-batch 1 --lr 1e-3 --schedule cosine --seed 3 --quiet",
                 "model.safetensors");
    const char *kto = "--method lora --adapter tests/fixtures/pref/kto_lora/adapter0 --lora-targets q_proj,v_proj --beta 0.5 "
                      "--steps 4 --batch 2 --lr 1e-3 --schedule cosine --seed 3 --quiet";
    check_resume("kto_resume", "kto", "tests/fixtures/pref/kto_lora", kto, "adapter_model.safetensors");
    kto_labels_changed("tests/fixtures/pref/kto_lora", kto);
}

/* `tuna CMD ... --data FILE extra`: exit code 2 and stderr holding want */
static void expect_error(const char *command, const char *file, const char *extra, const char *want) {
    char cmd[4096], err[400], line[2048] = "";
    snprintf(err, sizeof err, "%s/err.txt", tmpdir);
    snprintf(cmd, sizeof cmd, "%s %s --model %s --data %s --out %s/err_out --steps 1 %s 2>%s", test_cli, command, parity_model,
             file, tmpdir, extra, err);
    int rc = system(cmd);
    FILE *f = fopen(err, "r");
    int lines = 0;
    if (f) {
        char buf[2048];
        while (fgets(buf, sizeof buf, f)) if (!lines++) snprintf(line, sizeof line, "%s", buf);
        fclose(f);
    }
    CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2 && lines == 1 && strstr(line, want), "'%s %s': exit %d, %d lines: %s (want '%s')",
           command, extra, WEXITSTATUS(rc), lines, line, want);
    struct stat stt;
    snprintf(cmd, sizeof cmd, "%s/err_out", tmpdir);
    CHECKF(stat(cmd, &stt) != 0, "%s: output written after an error", command);
}

static void test_bad_input(void) {
    const char *good = "{\"prompt_ids\":[5,6],\"completion_ids\":[7,8,9],\"label\":true}\n"
                       "{\"prompt_ids\":[5],\"completion_ids\":[9,8],\"label\":false}\n";
    static const struct { const char *rec, *want; } bad[] = {
        {"{\"prompt_ids\":[5,6],\"completion_ids\":[7,8]}", ":3: missing key \"label\""},
        {"{\"prompt_ids\":[5,6],\"completion_ids\":[7,8],\"label\":\"yes\"}", ":3: \"label\" is a string, expected true or false"},
        {"{\"prompt_ids\":[5,6],\"completion_ids\":[7,8],\"label\":1}", ":3: \"label\" is an integer, expected true or false"},
        {"{\"prompt_ids\":[5,6],\"label\":true}", ":3: missing key \"completion_ids\""},
        {"{\"prompt\":\"Hi\",\"label\":true}", ":3: \"prompt\" without \"completion\""},
        {"{\"prompt_ids\":[5],\"chosen_ids\":[7],\"rejected_ids\":[8]}", ":3: a preference pair"},
    };
    char path[400], text[1024];
    snprintf(path, sizeof path, "%s/bad.jsonl", tmpdir);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(text, sizeof text, "%s%s\n", good, bad[k].rec);
        write_file(path, text);
        char want[256];
        snprintf(want, sizeof want, "bad.jsonl%s", bad[k].want);
        expect_error("kto", path, "--batch 2", want);
    }
    write_file(path, good);
    expect_error("kto", path, "--batch 1", "at least 2 items");
    expect_error("kto", path, "--batch 2 --val-split 0.5", "no validation data");
    /* a KTO file given to dpo, a reference model for a reference-free loss */
    expect_error("dpo", path, "--loss orpo", "bad.jsonl:1: a KTO record");
    expect_error("dpo", "tests/fixtures/pref/orpo_full/data.jsonl", "--loss orpo --ref-model tests/fixtures/parity/llama_gqa",
                 "reference-free");
    expect_error("dpo", "tests/fixtures/pref/orpo_full/data.jsonl", "--loss orpo --label-smoothing 0.1", "--label-smoothing");
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "%s kto --help | grep -q 'completion_ids' && %s dpo --help | grep -q 'CPO-SimPO'", test_cli, test_cli);
    CHECK(system(cmd) == 0);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (!mkdtemp(tmpdir)) return 1;
    test_paired_values();
    test_kto_values();
    test_derivatives();
    test_kl_rows();
    test_kto_encoding();
    test_fixture("orpo_full");
    test_fixture("simpo_full");
    test_fixture("simpo_cpo_full");
    test_fixture("kto_full");
    test_fixture("kto_lora");
    test_orpo_eval();
    test_resume();
    test_bad_input();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_done();
}
