/* test_grpo.c — GRPO (tuna grpo, TRL's GRPOTrainer):
 *  - advantages by hand (group, batch and no scaling), a group of equal
 *    rewards giving 0 (never NaN) and counted, G = 1;
 *  - the per-token loss by hand (ratio 1, clipped above and below, the k3
 *    KL) and its derivative against central differences in every region;
 *    the loss types' token weights by hand;
 *  - the adapter switch (tuna_peft_set_enabled): off gives the base's
 *    log-probabilities exactly, on again the adapter's;
 *  - `tuna grpo --completions` against the PyTorch reference
 *    (tests/fixtures/grpo, tools/make_grpo_fixtures.py): 3 steps, full with
 *    each loss type and LoRA with num_iterations 2, beta > 0: final tensors
 *    within 1e-4 relative L2, step losses within 1e-5 of |loss| + 1e-2, kl
 *    and clip ratios; the same with one prompt per forward (the loss
 *    aggregated over the whole step); exact resume at a generation boundary
 *    (LoRA, full with its reference copy, sampling); checkpoints
 *    inside a generation batch refused;
 *  - malformed --completions lines: exit 2 naming FILE:LINE;
 *  - a short sampling run on models/tuna-stories writing TRL's keys. */
#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fixture_compare.h"
#include "io/safetensors.h"
#include "model_probe.h"
#include "train/grpo.h"
#include "tuna.h"
#include "tuna_peft.h"

static char tmpdir[] = "/tmp/tuna_test_grpo_XXXXXX";
static const char *parity_model = "tests/fixtures/parity/llama_gqa";

static void test_advantages(void) {
    double r[8] = {1, 2, 3, 4, 0.5, 0.5, 0.5, 0.5}, a[8], sd[2];
    int zero = grpo_advantages(r, 2, 4, GRPO_SCALE_GROUP, a, sd);
    double s = sqrt(5.0 / 3.0); /* unbiased std of 1..4 */
    CHECKF(zero == 1, "zero-std groups %d", zero);
    CHECKF(fabs(sd[0] - s) < 1e-15 && sd[1] == 0, "stds %g %g", sd[0], sd[1]);
    for (int i = 0; i < 4; i++) CHECKF(fabs(a[i] - (r[i] - 2.5) / (s + 1e-4)) < 1e-15, "group advantage %d: %g", i, a[i]);
    for (int i = 4; i < 8; i++) CHECKF(a[i] == 0 && !isnan(a[i]), "equal rewards: advantage %g", a[i]);
    /* batch: the group's mean, the whole batch's std */
    double m = (1 + 2 + 3 + 4 + 4 * 0.5) / 8, v = 0;
    for (int i = 0; i < 8; i++) v += (r[i] - m) * (r[i] - m);
    double bs = sqrt(v / 7);
    zero = grpo_advantages(r, 2, 4, GRPO_SCALE_BATCH, a, sd);
    CHECKF(zero == 0 && fabs(sd[1] - bs) < 1e-15, "batch: zero %d std %g", zero, sd[1]);
    CHECKF(fabs(a[0] - (1 - 2.5) / (bs + 1e-4)) < 1e-15 && a[5] == 0, "batch advantages %g %g", a[0], a[5]);
    zero = grpo_advantages(r, 2, 4, GRPO_SCALE_NONE, a, NULL);
    CHECKF(zero == 1 && a[0] == -1.5 && a[3] == 1.5 && a[4] == 0, "none: %g %g %g", a[0], a[3], a[4]);
    double one = 3, a1;
    zero = grpo_advantages(&one, 1, 1, GRPO_SCALE_GROUP, &a1, NULL);
    CHECKF(zero == 1 && a1 == 0, "G = 1: %g", a1);
    grpo_reward_stats st;
    double fm, fs;
    zero = grpo_advantages(r, 2, 4, GRPO_SCALE_GROUP, a, sd);
    grpo_reward_stats_of(r, r, 1, 2, 4, sd, zero, &st, &fm, &fs);
    CHECKF(fabs(st.reward - m) < 1e-15 && fabs(st.reward_std - s / 2) < 1e-15 && st.frac_zero_std == 0.5 && fm == st.reward &&
               fabs(fs - bs) < 1e-15,
           "reward stats %g %g %g", st.reward, st.reward_std, st.frac_zero_std);
}

static void test_token_loss(void) {
    grpo_loss_args a = {.epsilon = 0.2, .epsilon_high = 0.28, .beta = 0};
    double dl, kl;
    int lo, hi;
    /* ratio 1: loss -A, derivative -A */
    double l = grpo_token_loss(&a, -2, -2, 0, 2, &dl, &lo, &hi, &kl);
    CHECKF(l == -2 && dl == -2 && !lo && !hi && kl == 0, "ratio 1: %g %g", l, dl);
    /* ratio 1.5, A > 0: clipped at 1.28, no gradient */
    l = grpo_token_loss(&a, log(1.5), 0, 0, 1, &dl, &lo, &hi, &kl);
    CHECKF(fabs(l + 1.28) < 1e-15 && dl == 0 && hi && !lo, "clipped high: %g %g", l, dl);
    /* ratio 0.5, A < 0: clipped at 0.8 */
    l = grpo_token_loss(&a, log(0.5), 0, 0, -1, &dl, &lo, &hi, &kl);
    CHECKF(fabs(l - 0.8) < 1e-15 && dl == 0 && lo && !hi, "clipped low: %g %g", l, dl);
    /* ratio 1.5, A < 0: the unclipped term is the smaller one (pessimistic bound) */
    l = grpo_token_loss(&a, log(1.5), 0, 0, -1, &dl, &lo, &hi, &kl);
    CHECKF(fabs(l - 1.5) < 1e-15 && fabs(dl - 1.5) < 1e-15 && !lo && !hi, "not clipped: %g %g", l, dl);
    /* k3 KL: ref - lp = 0.5 */
    a.beta = 0.1;
    l = grpo_token_loss(&a, -1, -1, -0.5, 0, &dl, &lo, &hi, &kl);
    CHECKF(fabs(kl - (exp(0.5) - 1.5)) < 1e-15 && fabs(l - 0.1 * kl) < 1e-15, "kl %g loss %g", kl, l);
    /* derivatives against central differences, each region */
    const double cases[][4] = {{-1.3, -1.2, -1.0, 0.7}, {-1.0, -1.3, -0.9, 0.7}, {-1.5, -1.0, -1.2, -0.4},
                               {-0.9, -1.3, -1.1, -0.6}, {-2.0, -2.05, -1.0, 1.3}, {-0.3, -0.31, -2.0, -1.1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const double *c = cases[k];
        double h = 1e-6, d, x, e;
        grpo_token_loss(&a, c[0], c[1], c[2], c[3], &d, &lo, &hi, &kl);
        double lp = grpo_token_loss(&a, c[0] + h, c[1], c[2], c[3], &x, &lo, &hi, &kl);
        double lm = grpo_token_loss(&a, c[0] - h, c[1], c[2], c[3], &x, &lo, &hi, &kl);
        e = fabs((lp - lm) / (2 * h) - d);
        CHECKF(e < 1e-7, "case %zu: derivative %.10g, central difference %.10g", k, d, (lp - lm) / (2 * h));
    }
    /* token weights of the loss types */
    int len[3] = {2, 5, 1};
    double w[3];
    grpo_loss_args t = {.loss_type = GRPO_LOSS_GRPO, .max_completion_length = 10};
    grpo_row_weights(&t, len, 3, w);
    CHECK(fabs(w[0] - 1.0 / 6) < 1e-15 && fabs(w[1] - 1.0 / 15) < 1e-15 && fabs(w[2] - 1.0 / 3) < 1e-15);
    t.loss_type = GRPO_LOSS_DAPO;
    grpo_row_weights(&t, len, 3, w);
    CHECK(fabs(w[0] - 1.0 / 8) < 1e-15 && w[1] == w[0] && w[2] == w[0]);
    t.loss_type = GRPO_LOSS_BNPO;
    grpo_row_weights(&t, len, 3, w);
    CHECK(fabs(w[2] - 1.0 / 8) < 1e-15);
    t.loss_type = GRPO_LOSS_DR_GRPO;
    grpo_row_weights(&t, len, 3, w);
    CHECK(fabs(w[1] - 1.0 / 30) < 1e-15);
    CHECK(grpo_loss_type_from_name("dr_grpo") == GRPO_LOSS_DR_GRPO && grpo_loss_type_from_name("ppo") < 0 &&
          grpo_scale_from_name("batch") == GRPO_SCALE_BATCH);
}

/* per-position log-probabilities of one fixed batch */
static void logps(tuna_model *m, double *out) {
    static const int32_t ids[8] = {1, 5, 9, 13, 2, 7, 30, 11}, lab[8] = {-100, 5, 9, 13, 2, 7, 30, 11};
    tuna_batch bt = {.B = 1, .T = 8, .input_ids = ids, .labels = lab};
    tuna_loss l;
    CHECK(tuna_model_forward(m, &bt, &l) == TUNA_OK);
    CHECK(tuna_model_token_logps(m, 1, 8, out) == TUNA_OK);
}

static void test_adapter_switch(void) {
    tuna_model *base = NULL, *m = NULL;
    CHECK(tuna_model_load(&base, parity_model) == TUNA_OK && tuna_model_load(&m, parity_model) == TUNA_OK);
    if (!base || !m) return;
    tuna_peft_config pc;
    tuna_peft_config_default(&pc, TUNA_PEFT_LORA);
    snprintf(pc.targets, sizeof pc.targets, "all-linear");
    CHECK(tuna_peft_attach(m, &pc, 3) == TUNA_OK);
    int64_t nw = 0;
    float *w = probe_adapter_weights(m, &nw);
    for (int64_t i = 0; i < nw; i++) w[i] += 0.02f * (float)((i * 7919) % 13 - 6); /* B nonzero */
    CHECK(tuna_model_prepare(base, 1, 8, TUNA_MODE_EVAL) == TUNA_OK && tuna_model_prepare(m, 1, 8, TUNA_MODE_TRAIN) == TUNA_OK);
    double lb[8], on[8], off[8], on2[8];
    logps(base, lb);
    logps(m, on);
    CHECK(tuna_peft_set_enabled(m, 0) == TUNA_OK);
    logps(m, off);
    CHECK(tuna_peft_set_enabled(m, 1) == TUNA_OK);
    logps(m, on2);
    double dmax = 0, dbase = 0, don = 0;
    for (int t = 0; t < 7; t++) {
        dmax = fmax(dmax, fabs(on[t] - lb[t]));
        dbase = fmax(dbase, fabs(off[t] - lb[t]));
        don = fmax(don, fabs(on2[t] - on[t]));
    }
    CHECKF(dmax > 1e-3, "the adapter changes nothing (%g): the test cannot tell", dmax);
    CHECKF(dbase == 0, "adapter off: %g from the base", dbase);
    CHECKF(don == 0, "adapter on again: %g from before", don);
    tuna_model_free(base);
    tuna_model_free(m);
}

/* the fixture's tuna grpo command into cmd (extra options appended) */
static void fixture_cmd(const char *name, const char *out, const char *extra, char *cmd, size_t n) {
    char dir[300], path[600];
    snprintf(dir, sizeof dir, "tests/fixtures/grpo/%s", name);
    snprintf(path, sizeof path, "%s/args.json", dir);
    json_error_t je;
    json_t *args = json_load_file(path, 0, &je), *v;
    size_t i, k = (size_t)snprintf(cmd, n, "%s grpo --model %s --completions %s/completions.jsonl --out %s --quiet", test_cli,
                                   parity_model, dir, out);
    int next_is_path = 0;
    json_array_foreach(json_object_get(args, "cli"), i, v) {
        const char *s = json_string_value(v);
        k += (size_t)snprintf(cmd + k, n - k, next_is_path ? " %s/%s" : " %s", next_is_path ? dir : s, s);
        next_is_path = !strcmp(s, "--adapter");
    }
    snprintf(cmd + k, n - k, " %s", extra);
    json_decref(args);
}

static void test_fixture(const char *name) {
    char dir[300], path[600], cmd[8192], out[400];
    snprintf(dir, sizeof dir, "tests/fixtures/grpo/%s", name);
    snprintf(path, sizeof path, "%s/args.json", dir);
    if (!test_need(path, name)) return;
    snprintf(out, sizeof out, "%s/%s", tmpdir, name);
    fixture_cmd(name, out, "", cmd, sizeof cmd);
    CHECKF(system(cmd) == 0, "%s", cmd);
    /* clip ratios are shares of tokens: exact up to the float32 storage */
    static const fixture_step cs[] = {{"step_loss", "loss", 1e-2, 1e-5}, {"step_kl", "kl", 1e-2, 1e-5},
                                      {"step_clip", "clip_ratio/region_mean", 1e-2, 1e-6}};
    check_fixture_weights("grpo", name, dir, out, 0, 1);
    check_fixture_steps("grpo", name, dir, out, cs, 3);
    /* lengths and the share without EOS (id 2) of the first step's groups, from the file */
    char cpath[400];
    snprintf(cpath, sizeof cpath, "%s/completions.jsonl", dir);
    FILE *cf = fopen(cpath, "r");
    char line[8192];
    int rows = 0, no_eos = 0, mx = 0;
    double sum = 0;
    for (int ln = 0; cf && ln < 2 && fgets(line, sizeof line, cf); ln++) {
        json_t *o = json_loads(line, 0, NULL), *c;
        size_t i;
        json_array_foreach(json_object_get(o, "completion_ids"), i, c) {
            int n = (int)json_array_size(c);
            rows++, sum += n, mx = n > mx ? n : mx;
            no_eos += json_integer_value(json_array_get(c, (size_t)n - 1)) != 2;
        }
        json_decref(o);
    }
    if (cf) fclose(cf);
    double ml[8], mxl[8], cr[8];
    CHECKF(run_metric(out, "completions/mean_length", ml, 8) == 3 && fabs(ml[0] - sum / rows) < 1e-6, "%s: mean length %g, file %g",
           name, ml[0], sum / rows);
    CHECKF(run_metric(out, "completions/max_length", mxl, 8) == 3 && mxl[0] == mx, "%s: max length %g, file %d", name, mxl[0], mx);
    CHECKF(run_metric(out, "completions/clipped_ratio", cr, 8) == 3 && fabs(cr[0] - (double)no_eos / rows) < 1e-6 && no_eos > 0 &&
               no_eos < rows,
           "%s: clipped ratio %g, file %d of %d without EOS", name, cr[0], no_eos, rows);
    /* the first batch's second group has equal rewards: half the groups have
     * zero spread (scaled by the batch's std, TRL counts on that std: none) */
    double fz[8], want_fz = strstr(name, "bnpo") ? 0 : 0.5;
    CHECKF(run_metric(out, "frac_reward_zero_std", fz, 8) == 3 && fz[0] == want_fz, "%s: frac_reward_zero_std %g, expected %g", name,
           fz[0], want_fz);
}

/* one prompt per forward: the loss is still aggregated over the whole step,
 * so the weights are those of the reference (micro-batch = batch) */
static void test_micro_batches(const char *name) {
    char cmd[8192], out[400], got[600], want[600], wn[256] = "";
    if (!test_need("tests/fixtures/grpo/full_grpo/args.json", "grpo micro-batches")) return;
    snprintf(out, sizeof out, "%s/%s_micro", tmpdir, name);
    fixture_cmd(name, out, "--micro-batch 1", cmd, sizeof cmd);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(got, sizeof got, "%s/model.safetensors", out);
    snprintf(want, sizeof want, "tests/fixtures/grpo/%s/expected.safetensors", name);
    int nt = 0;
    double e = compare_tensors(got, want, &nt, wn, sizeof wn);
    printf("grpo %s, micro-batch 1: worst rel L2 %.3g (%s)\n", name, e, wn);
    CHECKF(nt == 21 && e <= 1e-4, "%s with --micro-batch 1: %d tensors, worst %.3g (%s)", name, nt, e, wn);
}

/* --save-every + --resume: the resumed run ends where the uninterrupted one does */
static void test_resume(void) {
    char cmd[8192], a[400], b[400], pa[600], pb[600];
    if (!test_need("tests/fixtures/grpo/lora_dapo/args.json", "grpo resume")) return;
    snprintf(a, sizeof a, "%s/resume_a", tmpdir);
    snprintf(b, sizeof b, "%s/resume_b", tmpdir);
    fixture_cmd("lora_dapo", a, "--steps 4 --schedule cosine --save-every 2", cmd, sizeof cmd);
    CHECKF(system(cmd) == 0, "%s", cmd);
    char extra[600];
    snprintf(extra, sizeof extra, "--steps 4 --schedule cosine --resume %s/checkpoint-2", a);
    fixture_cmd("lora_dapo", b, extra, cmd, sizeof cmd);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(pa, sizeof pa, "%s/adapter_model.safetensors", a);
    snprintf(pb, sizeof pb, "%s/adapter_model.safetensors", b);
    int nt = 0;
    char wn[256] = "";
    double e = compare_tensors(pb, pa, &nt, wn, sizeof wn);
    CHECKF(nt == 8 && e == 0, "resumed GRPO differs: %d tensors, worst %.3g (%s)", nt, e, wn);
    /* other rewards in the groups' file: the resume is refused, naming the groups */
    char alt[600];
    snprintf(alt, sizeof alt, "%s/alt.jsonl", tmpdir);
    snprintf(cmd, sizeof cmd, "sed 's/\"rewards\": \\[/\"rewards\": [0.25, /; s/, [-0-9.]*\\]}$/]}/' tests/fixtures/grpo/lora_dapo/completions.jsonl > %s && ! cmp -s %s tests/fixtures/grpo/lora_dapo/completions.jsonl", alt, alt);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "%s grpo --model %s --completions %s --out %s/alt_out --method lora --adapter tests/fixtures/grpo/lora_dapo/adapter0 "
             "--lora-targets q_proj,v_proj --loss-type dapo --beta 0.1 --epsilon 0.002 --epsilon-high 0.003 --num-iterations 2 --batch 2 "
             "--max-new-tokens 12 --lr 1e-3 --schedule cosine --steps 4 --seed 0 --weight-decay 0 --grad-clip 0 --warmup 0 "
             "--resume %s/checkpoint-2 2>&1 | grep -q grpo_groups", test_cli, parity_model, alt, tmpdir, a);
    CHECKF(system(cmd) == 0, "%s", cmd);
    /* full training with its frozen reference copy (beta > 0), num_iterations 2 */
    snprintf(a, sizeof a, "%s/resume_c", tmpdir);
    snprintf(b, sizeof b, "%s/resume_d", tmpdir);
    fixture_cmd("full_dapo", a, "--steps 4 --save-every 2", cmd, sizeof cmd);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(extra, sizeof extra, "--steps 4 --resume %s/checkpoint-2", a);
    fixture_cmd("full_dapo", b, extra, cmd, sizeof cmd);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(pa, sizeof pa, "%s/model.safetensors", a);
    snprintf(pb, sizeof pb, "%s/model.safetensors", b);
    e = compare_tensors(pb, pa, &nt, wn, sizeof wn);
    CHECKF(nt == 21 && e == 0, "resumed full GRPO differs: %d tensors, worst %.3g (%s)", nt, e, wn);
    /* an epoch of 6 groups in batches of 2 with num_iterations 2: 6 steps */
    snprintf(a, sizeof a, "%s/epoch", tmpdir);
    snprintf(cmd, sizeof cmd, "%s grpo --model %s --completions tests/fixtures/grpo/lora_dapo/completions.jsonl --out %s --method lora "
             "--batch 2 --num-iterations 2 --epochs 1 --quiet", test_cli, parity_model, a);
    double st[16];
    CHECKF(system(cmd) == 0 && run_metric(a, "loss", st, 16) == 6, "one epoch with --num-iterations 2: %d steps, expected 6",
           run_metric(a, "loss", st, 16));
    /* a checkpoint inside a generation batch (num_iterations 2) is refused */
    fixture_cmd("lora_dapo", b, "--save-every 1 --overwrite 2>/dev/null", cmd, sizeof cmd);
    int rc = system(cmd);
    CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "--save-every 1 with --num-iterations 2 exits %d", WEXITSTATUS(rc));
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) { CHECK(0); return; }
    fputs(text, f);
    fclose(f);
}

/* malformed --completions lines: exit 2, one line naming FILE:LINE */
static void test_bad_completions(void) {
    static const char good[] = "{\"prompt_ids\":[1,5],\"completion_ids\":[[7,2],[9]],\"rewards\":[1,0]}\n";
    static const struct { const char *line, *expect; } bad[] = {
        {"{\"prompt_ids\":[1,5],\"completion_ids\":[[7,2],[9]]}", ":2: missing key"},
        {"{\"prompt_ids\":[1,5],\"completion_ids\":[[7,2],[9],[4]],\"rewards\":[1,0,1]}", ":2: 3 completions"},
        {"{\"prompt_ids\":[1,5000],\"completion_ids\":[[7,2],[9]],\"rewards\":[1,0]}", ":2: \"prompt_ids\"[1] is not a token id"},
        {"{\"prompt_ids\":[1,5],\"completion_ids\":[[7,-2],[9]],\"rewards\":[1,0]}", ":2: \"completion_ids[0]\"[1] is not a token id"},
        {"{\"prompt_ids\":[1,5],\"completion_ids\":[[7,2],[9]],\"rewards\":[1,\"x\"]}", ":2: \"rewards\"[1] is not a number"},
        {"{\"prompt_ids\":[1,5],\"completion_ids\":[[7,2],[]],\"rewards\":[1,0]}", ":2: \"completion_ids[1]\" is empty"},
        {"[1,2]", ":2: not a JSON object"},
        {"{\"prompt_ids\":[1,5],", ":2: not a JSON object"},
    };
    char path[400], cmd[2048], text[512];
    snprintf(path, sizeof path, "%s/bad.jsonl", tmpdir);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(text, sizeof text, "%s%s\n", good, bad[k].line);
        write_file(path, text);
        snprintf(cmd, sizeof cmd, "%s grpo --model %s --completions %s --out %s/bad_out --steps 1 --batch 1 2>%s/err.txt", test_cli,
                 parity_model, path, tmpdir, tmpdir);
        int rc = system(cmd);
        CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "bad line %zu: exit %d", k, WEXITSTATUS(rc));
        snprintf(cmd, sizeof cmd, "grep -q -F '%s%s' %s/err.txt && test $(wc -l < %s/err.txt) -eq 1 && test ! -e %s/bad_out", path,
                 bad[k].expect, tmpdir, tmpdir, tmpdir);
        CHECKF(system(cmd) == 0, "bad line %zu: message should name '%s%s'", k, path, bad[k].expect);
    }
    /* --num-generations differing from the file's G */
    write_file(path, good);
    snprintf(cmd, sizeof cmd, "%s grpo --model %s --completions %s --out %s/bad_out --num-generations 4 2>&1 | grep -q -F '%s:1: 2 completions'",
             test_cli, parity_model, path, tmpdir, path);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "%s grpo --model %s --completions %s --out %s/bad_out --loss-type ppo 2>/dev/null", test_cli,
             parity_model, path, tmpdir);
    int rc = system(cmd);
    CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "--loss-type ppo exits %d", WEXITSTATUS(rc));
}

/* sampling on the shipped model: a few steps writing TRL's keys */
static void test_sampling(void) {
    if (!test_need("models/tuna-stories/model.safetensors", "grpo sampling")) return;
    char data[400], out[400], cmd[4096];
    snprintf(data, sizeof data, "%s/prompts.jsonl", tmpdir);
    /* a prompt-completion record, TRL's prompt-only records (text, messages), a chat record */
    write_file(data, "{\"prompt\":\"Once upon a time\",\"completion\":\" there was a cat.\"}\n"
                     "{\"prompt\":\"The dog\"}\n"
                     "{\"prompt\":[{\"role\":\"user\",\"content\":\"Lily saw\"}]}\n"
                     "{\"messages\":[{\"role\":\"user\",\"content\":\"Tom had\"},{\"role\":\"assistant\",\"content\":\"a ball\"}]}\n");
    snprintf(out, sizeof out, "%s/sample", tmpdir);
    static const char common[] = "--method lora --steps 2 --batch 2 --num-generations 4 --max-new-tokens 16 --reward json_valid "
                                 "--reward length:50-70:0.5 --reward length:11-13:0.25 --beta 0.05 --lr 1e-3 --quiet";
    snprintf(cmd, sizeof cmd, "%s grpo --model models/tuna-stories --data %s --out %s %s --save-every 1", test_cli, data, out, common);
    CHECKF(system(cmd) == 0, "%s", cmd);
    double gn[4];
    CHECKF(run_metric(out, "grad_norm", gn, 4) == 2 && gn[0] > 0, "sampling run: no gradient (rewards all equal?): the resume check below would be empty");
    /* the reward curve is drawn */
    snprintf(cmd, sizeof cmd, "grep -q 'mean reward per step' %s/report.html", out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    /* resumed from step 1, the same completions are sampled (seeded by seed, batch, row): the same adapter */
    snprintf(cmd, sizeof cmd, "%s grpo --model models/tuna-stories --data %s --out %s/sample_b %s --resume %s/checkpoint-1", test_cli,
             data, tmpdir, common, out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    char pa[600], pb[600], wn[256] = "";
    snprintf(pa, sizeof pa, "%s/adapter_model.safetensors", out);
    snprintf(pb, sizeof pb, "%s/sample_b/adapter_model.safetensors", tmpdir);
    int nt = 0;
    double e = compare_tensors(pb, pa, &nt, wn, sizeof wn);
    CHECKF(nt > 0 && e == 0, "resumed sampling run differs: %d tensors, worst %.3g (%s)", nt, e, wn);
    static const char *keys[] = {"reward", "reward_std", "frac_reward_zero_std",
                                 "kl", "completions/mean_length", "completions/min_length", "completions/max_length",
                                 "completions/clipped_ratio", "clip_ratio/low_mean", "clip_ratio/high_mean",
                                 "clip_ratio/region_mean", "num_tokens", "grad_norm", "lr"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        double v[4];
        CHECKF(run_metric(out, keys[k], v, 4) == 2, "sampling run: '%s' not logged for each of 2 steps", keys[k]);
    }
    /* --top-k 1 and --min-p 1 leave the argmax alone: a group's completions are one, so every group's rewards
     * are equal (frac_reward_zero_std 1), where the run above, sampling freely, had groups that differ */
    double z[4];
    CHECKF(run_metric(out, "frac_reward_zero_std", z, 4) == 2 && z[0] + z[1] < 2, "free sampling: every group's rewards equal");
    static const char *narrow[] = {"--top-k 1", "--min-p 1", "--top-k 3 --min-p 1"};
    for (size_t k = 0; k < sizeof narrow / sizeof narrow[0]; k++) {
        snprintf(cmd, sizeof cmd, "%s grpo --model models/tuna-stories --data %s --out %s/narrow%zu %s %s --overwrite", test_cli,
                 data, tmpdir, k, common, narrow[k]);
        CHECKF(system(cmd) == 0, "%s", cmd);
        char nd[600];
        snprintf(nd, sizeof nd, "%s/narrow%zu", tmpdir, k);
        CHECKF(run_metric(nd, "frac_reward_zero_std", z, 4) == 2 && z[0] == 1 && z[1] == 1,
               "%s: frac_reward_zero_std %g, %g (expected 1: one completion per group)", narrow[k], z[0], z[1]);
    }
    double len[4];
    if (run_metric(out, "completions/max_length", len, 4) == 2) CHECKF(len[0] >= 1 && len[0] <= 17, "max length %g", len[0]);
    /* each reward function's mean and std, under the name the functions give (rewards/NAME/mean) */
    char mpath[600], line[16384];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", out);
    FILE *f = fopen(mpath, "r");
    int means = 0, stds = 0;
    if (f && fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL), *v;
        const char *k;
        json_object_foreach(o, k, v) {
            size_t n = strlen(k);
            means += !strncmp(k, "rewards/", 8) && n > 13 && !strcmp(k + n - 5, "/mean") && json_is_number(v);
            stds += !strncmp(k, "rewards/", 8) && n > 12 && !strcmp(k + n - 4, "/std") && json_is_number(v);
        }
        json_decref(o);
    }
    if (f) fclose(f);
    CHECKF(means == 3 && stds == 3, "rewards/NAME/mean and /std of 3 functions: %d and %d", means, stds);
    /* a bad record: exit 2 naming FILE:LINE */
    write_file(data, "{\"prompt\":\"Once\"}\n{\"prompt\": 5}\n");
    snprintf(cmd, sizeof cmd, "%s grpo --model models/tuna-stories --data %s --out %s/bad_data %s 2>%s/err.txt", test_cli, data, tmpdir,
             common, tmpdir);
    int rc = system(cmd);
    CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "a bad --data record exits %d", WEXITSTATUS(rc));
    snprintf(cmd, sizeof cmd, "grep -q -F '%s:2: ' %s/err.txt", data, tmpdir);
    CHECKF(system(cmd) == 0, "the error names %s:2", data);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (!mkdtemp(tmpdir)) return 1;
    test_advantages();
    test_token_loss();
    test_adapter_switch();
    test_fixture("full_grpo");
    test_fixture("full_bnpo");
    test_fixture("full_dr_grpo");
    test_fixture("full_dapo");
    test_fixture("lora_dapo");
    test_fixture("full_dapo_t07"); /* log-probabilities at the sampling temperature, as TRL */
    test_micro_batches("full_grpo");
    test_micro_batches("full_dapo");
    test_resume();
    test_bad_completions();
    test_sampling();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_done();
}
