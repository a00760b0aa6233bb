/* test_reward.c — reward models (`tuna reward`, TRL's RewardTrainer):
 *  - the pair loss -log sigmoid(rc - rr) + c mean((rc + rr)^2): known values,
 *    derivatives against central differences, accuracy;
 *  - the score head through the model: a row's loss is minus the score at its
 *    last counted token, and the weighted backward is the gradient of the
 *    pair loss (central differences of the whole loss);
 *  - `tuna reward` against the PyTorch reference (tests/fixtures/reward,
 *    tools/make_reward_fixtures.py): 3 AdamW steps on llama_gqa (with and
 *    without centring) and gpt2 (an HF GPT2ForSequenceClassification folder
 *    written by PyTorch as the start): final tensors within 1e-4 relative L2,
 *    step losses within 1e-5 relative; the folder PyTorch wrote scores as
 *    PyTorch does (1e-5); the saved folder is a one-label
 *    …ForSequenceClassification model that loads back and scores identically;
 *  - exact resume (checkpoint at step 2 of 4);
 *  - reward_model_open/score (GRPO's --reward model:DIR) on a folder with a
 *    tokenizer: batched scores equal one-by-one scores and a hand-made batch;
 *  - bad input: a preference record missing a field, LoRA, a causal LM given
 *    to reward_model_open. */
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fixture_compare.h"
#include "io/safetensors.h"
#include "train/reward_model.h"
#include "tuna.h"
#include "tuna_dataset.h"
#include "tuna_dpo.h"
#include "tuna_tokenizer.h"

static char tmpdir[] = "/tmp/tuna_test_reward_XXXXXX";
static const char *llama = "tests/fixtures/parity/llama_gqa";

static double loss_of(const tuna_dpo_args *a, int n, const double *pc, const double *pr) {
    tuna_dpo_stats s;
    return tuna_dpo_loss(a, n, pc, pr, NULL, NULL, NULL, NULL, NULL, NULL, &s) == TUNA_OK ? s.loss : NAN;
}

static void test_loss(void) {
    tuna_dpo_args a = {.type = TUNA_DPO_REWARD, .beta = 0.1};
    double pc[3] = {1.5, -0.25, 0.0}, pr[3] = {0.5, 0.75, 0.0}, d_pc[3], d_pr[3];
    tuna_dpo_stats s;
    CHECK(tuna_dpo_loss(&a, 3, pc, pr, NULL, NULL, NULL, NULL, d_pc, d_pr, &s) == TUNA_OK);
    /* -log sigmoid(1), -log sigmoid(-1), log 2 */
    double want = (log1p(exp(-1.0)) + log1p(exp(1.0)) + log(2.0)) / 3;
    CHECKF(fabs(s.loss - want) < 1e-12, "loss %.15g want %.15g", s.loss, want);
    CHECKF(fabs(s.rewards_accuracies - 1.0 / 3) < 1e-12, "accuracy %g", s.rewards_accuracies);
    CHECKF(fabs(s.rewards_chosen - 1.25 / 3) < 1e-12 && fabs(s.rewards_margins - 0.0) < 1e-12, "rewards %g margin %g",
           s.rewards_chosen, s.rewards_margins);
    a.center_rewards = 0.25;
    CHECK(tuna_dpo_loss(&a, 3, pc, pr, NULL, NULL, NULL, NULL, d_pc, d_pr, &s) == TUNA_OK);
    want += 0.25 * (4.0 + 0.25 + 0.0) / 3;
    CHECKF(fabs(s.loss - want) < 1e-12, "centred loss %.15g want %.15g", s.loss, want);
    double worst = 0;
    for (int i = 0; i < 3; i++)
        for (int side = 0; side < 2; side++) {
            double *v = side ? pr : pc, h = 1e-6, keep = v[i];
            v[i] = keep + h;
            double lp = loss_of(&a, 3, pc, pr);
            v[i] = keep - h;
            double lm = loss_of(&a, 3, pc, pr);
            v[i] = keep;
            double e = fabs((lp - lm) / (2 * h) - (side ? d_pr : d_pc)[i]);
            if (e > worst) worst = e;
        }
    CHECKF(worst < 1e-8, "reward loss derivatives: worst %.3g", worst);
    a.center_rewards = -1;
    CHECK(tuna_dpo_loss(&a, 3, pc, pr, NULL, NULL, NULL, NULL, d_pc, d_pr, &s) == TUNA_ERR_ARG);
}

/* config.json of a sequence-classification model: one label only, as HF counts them */
static void test_config(void) {
    const char *base = "{\"model_type\":\"llama\",\"hidden_size\":16,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
                       "\"intermediate_size\":32,\"vocab_size\":40,";
    struct { const char *tail; tuna_status want; int labels; } cases[] = {
        {"\"architectures\":[\"LlamaForSequenceClassification\"],\"id2label\":{\"0\":\"LABEL_0\"}}", TUNA_OK, 1},
        {"\"architectures\":[\"Qwen2ForSequenceClassification\"],\"num_labels\":1}", TUNA_OK, 1},
        {"\"architectures\":[\"LlamaForSequenceClassification\"],\"id2label\":{\"0\":\"a\",\"1\":\"b\"}}", TUNA_ERR_UNSUPPORTED, 0},
        {"\"architectures\":[\"LlamaForSequenceClassification\"]}", TUNA_ERR_UNSUPPORTED, 0}, /* HF's default: 2 labels */
        {"\"architectures\":[\"FalconForSequenceClassification\"],\"num_labels\":1}", TUNA_ERR_UNSUPPORTED, 0},
        {"\"architectures\":[\"LlamaForCausalLM\"]}", TUNA_OK, 0},
    };
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", tmpdir);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        FILE *f = fopen(path, "w");
        if (!f) { CHECK(0); return; }
        fprintf(f, "%s%s\n", base, cases[k].tail);
        fclose(f);
        tuna_config c;
        tuna_status st = tuna_config_load(&c, path);
        CHECKF(st == cases[k].want && (st != TUNA_OK || c.num_labels == cases[k].labels), "case %zu: status %d labels %d (%s)", k,
               (int)st, st == TUNA_OK ? c.num_labels : -1, tuna_last_error());
        if (st != TUNA_OK) CHECKF(strstr(tuna_last_error(), "config.json"), "case %zu: %s", k, tuna_last_error());
    }
}

/* two pairs of rows of different lengths, right-padded: prompt masked */
enum { TB = 4, TT = 7 };
static int32_t ids[TB * TT], labels[TB * TT];
static void make_rows(void) {
    const int len[TB] = {7, 4, 5, 6}, prompt[TB] = {2, 2, 3, 3};
    for (int b = 0; b < TB; b++)
        for (int t = 0; t < TT; t++) {
            ids[b * TT + t] = t < len[b] ? 3 + (b * 13 + t * 7) % 90 : 0;
            labels[b * TT + t] = t < len[b] && t >= prompt[b] ? ids[b * TT + t] : -100;
        }
}

/* pair loss of the model's rows (scores = -row losses); the weights -dL/dr into w */
static double model_loss(tuna_model *m, const tuna_dpo_args *a, float *w) {
    tuna_batch bt = {TB, TT, ids, labels, NULL, w, NULL};
    double rl[TB], pc[2], pr[2], dc[2], dr[2];
    if (tuna_model_forward(m, &bt, NULL) != TUNA_OK || tuna_model_row_losses(m, TB, TT, rl) != TUNA_OK) return NAN;
    for (int j = 0; j < 2; j++) pc[j] = -rl[2 * j], pr[j] = -rl[2 * j + 1];
    tuna_dpo_stats s;
    if (tuna_dpo_loss(a, 2, pc, pr, NULL, NULL, NULL, NULL, dc, dr, &s) != TUNA_OK) return NAN;
    for (int j = 0; w && j < 2; j++) w[2 * j] = (float)-dc[j], w[2 * j + 1] = (float)-dr[j];
    return s.loss;
}

/* the score is the head at the last counted token; backward = gradient of the pair loss */
static void test_through_model(void) {
    tuna_model *lm = NULL;
    if (!test_need(llama, "reward through the model") || tuna_model_load(&lm, llama) != TUNA_OK) { CHECK(0); return; }
    CHECK(tuna_model_to_reward(&lm, 7) == TUNA_OK);
    const tuna_config *c = tuna_model_config(lm);
    CHECKF(c->num_labels == 1 && !strcmp(c->architecture, "LlamaForSequenceClassification"), "%s %d", c->architecture,
           c->num_labels);
    CHECK(tuna_model_find_param(lm, "lm_head.weight") == NULL);
    const tuna_param *sc = tuna_model_find_param(lm, "score.weight");
    CHECK(sc && sc->ndim == 2 && sc->shape[0] == 1 && sc->shape[1] == c->C);
    if (!sc) { tuna_model_free(lm); return; }
    make_rows();
    /* a row padded past its last counted token scores as the row cut there */
    tuna_model *m = lm;
    CHECK(tuna_model_prepare(m, TB, TT, TUNA_MODE_TRAIN) == TUNA_OK);
    double rl[TB], one;
    tuna_batch bt = {TB, TT, ids, labels, NULL, NULL, NULL};
    CHECK(tuna_model_forward(m, &bt, NULL) == TUNA_OK && tuna_model_row_losses(m, TB, TT, rl) == TUNA_OK);
    tuna_batch b1 = {1, 4, ids + TT, labels + TT, NULL, NULL, NULL};
    CHECK(tuna_model_forward(m, &b1, NULL) == TUNA_OK && tuna_model_row_losses(m, 1, 4, &one) == TUNA_OK);
    CHECKF(fabs(one - rl[1]) <= 1e-5 * fabs(one) + 1e-7, "padded row %.8g, alone %.8g", rl[1], one);
    tuna_dpo_args a = {.type = TUNA_DPO_REWARD, .beta = 0.1, .center_rewards = 0.3};
    float w[TB];
    tuna_model_zero_grad(m);
    double l0 = model_loss(m, &a, w);
    tuna_batch bw = {TB, TT, ids, labels, NULL, w, NULL};
    CHECK(isfinite(l0) && tuna_model_backward(m, &bw, 1.0f) == TUNA_OK);
    /* central differences on a few entries of the head and of a block weight */
    const char *names[2] = {"score.weight", "model.layers.1.mlp.down_proj.weight"};
    double worst = 0;
    for (int k = 0; k < 2; k++) {
        const tuna_param *p = tuna_model_find_param(m, names[k]);
        for (int j = 0; p && j < 4; j++) {
            int64_t i = (j * 977) % p->numel;
            float keep = p->data[i], h = 1e-2f;
            p->data[i] = keep + h;
            double lp = model_loss(m, &a, NULL);
            p->data[i] = keep - h;
            double lmn = model_loss(m, &a, NULL);
            p->data[i] = keep;
            double fd = (lp - lmn) / (2 * h), g = p->grad[i];
            double e = fabs(fd - g) / (fabs(fd) + 1e-4);
            if (e > worst) worst = e;
        }
    }
    printf("reward through the model: gradient vs central differences, worst rel %.3g\n", worst);
    CHECKF(worst < 2e-2, "reward gradient worst rel %.3g", worst);
    tuna_model_free(m);
}

/* worst relative L2 error of every tensor of want against got (same names);
 * GPT-2's c_attn.bias without its key third (an exactly-zero gradient that
 * AdamW steps by rounding noise: see tools/make_reward_fixtures.py) */
/* the parity llama as a reward model whose head is the fixture's score0, saved in dir */
static int make_start(const char *fx, const char *dir) {
    tuna_model *m = NULL;
    char path[600];
    snprintf(path, sizeof path, "%s/score0.safetensors", fx);
    st_file f;
    int ok = tuna_model_load(&m, llama) == TUNA_OK && tuna_model_to_reward(&m, 0) == TUNA_OK;
    if (ok && st_open(&f, path) == TUNA_OK) {
        const st_tensor *t = st_find(&f, "score.weight");
        const tuna_param *p = tuna_model_find_param(m, "score.weight");
        ok = t && p && t->numel == p->numel && st_to_f32(t, p->data) == TUNA_OK;
        st_close(&f);
    } else ok = 0;
    ok = ok && tuna_model_save(m, dir, TUNA_DTYPE_F32) == TUNA_OK;
    tuna_model_free(m);
    return ok;
}

/* `tuna reward` on fixture name from start with the fixture's options, into out */
static int run_fixture(const char *fx, const char *start, const char *out, const char *extra) {
    char path[600], cmd[8192];
    snprintf(path, sizeof path, "%s/args.json", fx);
    json_error_t je;
    json_t *args = json_load_file(path, 0, &je), *v;
    if (!args) return 0;
    int n = snprintf(cmd, sizeof cmd, "%s reward --model %s --data %s/data.jsonl --out %s --quiet", test_cli, start, fx, out);
    size_t i;
    json_array_foreach(json_object_get(args, "cli"), i, v) n += snprintf(cmd + n, sizeof cmd - n, " %s", json_string_value(v));
    snprintf(cmd + n, sizeof cmd - n, " %s", extra); /* after the fixture's: the last value of an option wins */
    json_decref(args);
    int rc = system(cmd);
    CHECKF(rc == 0, "%s", cmd);
    return rc == 0;
}

static void check_saved_config(const char *out, const char *arch) {
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", out);
    tuna_config c;
    CHECK(tuna_config_load(&c, path) == TUNA_OK);
    CHECKF(c.num_labels == 1 && !strcmp(c.architecture, arch), "%s: %s num_labels %d", path, c.architecture, c.num_labels);
    json_t *o = json_load_file(path, 0, NULL);
    json_t *id2 = json_object_get(o, "id2label");
    CHECK(id2 && json_object_size(id2) == 1 && json_object_get(json_object_get(o, "label2id"), "LABEL_0"));
    json_decref(o);
}

static void test_fixture(const char *name) {
    char fx[300], start[400], out[400];
    snprintf(fx, sizeof fx, "tests/fixtures/reward/%s", name);
    if (!test_need(fx, name) || !test_need_cli(name)) return;
    int gpt2 = strstr(name, "gpt2") != NULL;
    snprintf(start, sizeof start, gpt2 ? "%s/start" : "%s/start_%s", gpt2 ? fx : tmpdir, name);
    if (!gpt2) CHECKF(make_start(fx, start), "%s: starting reward model", name);
    snprintf(out, sizeof out, "%s/%s", tmpdir, name);
    if (!run_fixture(fx, start, out, "")) return;
    check_fixture_weights("reward", name, fx, out, CMP_SAME_COUNT | CMP_SKIP_KEY_BIAS, 11);
    check_saved_config(out, gpt2 ? "GPT2ForSequenceClassification" : "LlamaForSequenceClassification");
    static const fixture_step cs[] = {{"step_loss", "loss", 0, 1e-5}, {"step_accuracy", "rewards/accuracies", -1, 0}};
    check_fixture_steps("reward", name, fx, out, cs, 2);
}

/* scores of the pre-tokenized pairs of a fixture's data.jsonl under the model in dir */
static int score_pairs(const char *dir, const char *data, double *sc, double *sr, int max) {
    tuna_model *m = NULL;
    tuna_pretok *p = NULL;
    tuna_pref_options po = {0};
    po.max_len = 64;
    tuna_pref_stats s;
    int n = 0;
    if (tuna_model_load(&m, dir) != TUNA_OK ||
        tuna_dataset_load_preferences(data, NULL, NULL, &po, &p, NULL, &s) != TUNA_OK) goto done;
    if (tuna_model_prepare(m, 1, 64, TUNA_MODE_EVAL) != TUNA_OK) goto done;
    for (int64_t i = 0; i < tuna_pretok_count(p) && i / 2 < max; i++) {
        const int32_t *id, *lb;
        const int32_t *ps;
        int64_t len = tuna_pretok_seq(p, i, &id, &lb, &ps);
        tuna_batch bt = {1, (int)len, id, lb, NULL, NULL, NULL};
        double rl;
        if (tuna_model_forward(m, &bt, NULL) != TUNA_OK || tuna_model_row_losses(m, 1, (int)len, &rl) != TUNA_OK) goto done;
        (i % 2 ? sr : sc)[i / 2] = -rl;
        n = (int)(i / 2) + 1;
    }
done:
    tuna_pretok_free(p);
    tuna_model_free(m);
    return n;
}

/* the folder PyTorch wrote (HF layout) scores as PyTorch does */
static void test_hf_folder_scores(void) {
    const char *fx = "tests/fixtures/reward/gpt2_center";
    char path[600], data[600];
    if (!test_need(fx, "reward HF folder")) return;
    snprintf(path, sizeof path, "%s/start_scores.safetensors", fx);
    snprintf(data, sizeof data, "%s/data.jsonl", fx);
    char start[400];
    snprintf(start, sizeof start, "%s/start", fx);
    double sc[8], sr[8];
    int n = score_pairs(start, data, sc, sr, 8);
    st_file f;
    if (st_open(&f, path) != TUNA_OK) { CHECK(0); return; }
    const st_tensor *tc = st_find(&f, "chosen_scores"), *tr = st_find(&f, "rejected_scores");
    float wc[8], wr[8];
    CHECKF(n == 6 && tc && tr && tc->numel == 6 && st_to_f32(tc, wc) == TUNA_OK && st_to_f32(tr, wr) == TUNA_OK, "%d pairs", n);
    double worst = 0;
    for (int i = 0; i < 6 && n == 6; i++) worst = fmax(worst, fmax(fabs(sc[i] - wc[i]), fabs(sr[i] - wr[i])));
    printf("reward: PyTorch's GPT2ForSequenceClassification folder, 12 scores, worst abs %.3g (scores ~%.3g)\n", worst, fabs(wc[0]));
    CHECKF(worst <= 1e-5, "scores differ from PyTorch's by %.3g", worst);
    st_close(&f);
}

/* the saved folder loads back and scores as the model that was saved */
static void test_save_load(void) {
    const char *fx = "tests/fixtures/reward/llama_plain";
    char dir[400], data[600];
    if (!test_need(fx, "reward save/load")) return;
    snprintf(dir, sizeof dir, "%s/llama_plain", tmpdir); /* test_fixture's trained output */
    snprintf(data, sizeof data, "%s/data.jsonl", fx);
    double a_c[8], a_r[8], b_c[8], b_r[8];
    int na = score_pairs(dir, data, a_c, a_r, 8);
    /* load, save again, load: identical scores */
    char again[400];
    snprintf(again, sizeof again, "%s/again", tmpdir);
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, dir) == TUNA_OK && tuna_model_save(m, again, TUNA_DTYPE_F32) == TUNA_OK);
    tuna_model_free(m);
    int nb = score_pairs(again, data, b_c, b_r, 8);
    int same = na == 6 && nb == 6;
    for (int i = 0; same && i < 6; i++) same = a_c[i] == b_c[i] && a_r[i] == b_r[i];
    CHECKF(same, "reloaded reward model scores differently (%d, %d pairs)", na, nb);
}

/* --save-every 2 of 4 steps, then --resume: the same weights as uninterrupted */
static void test_resume(void) {
    const char *fx = "tests/fixtures/reward/llama_center";
    char start[400], a[400], b[400], extra[800], pa[600], pb[600];
    if (!test_need(fx, "reward resume")) return;
    snprintf(start, sizeof start, "%s/start_llama_center", tmpdir); /* made by test_fixture */
    snprintf(a, sizeof a, "%s/resume_a", tmpdir);
    snprintf(b, sizeof b, "%s/resume_b", tmpdir);
    CHECK(run_fixture(fx, start, a, "--save-every 2 --steps 4 --micro-batch 1"));
    snprintf(extra, sizeof extra, "--resume %s/checkpoint-2 --steps 4 --micro-batch 1", a);
    CHECK(run_fixture(fx, start, b, extra));
    snprintf(pa, sizeof pa, "%s/model.safetensors", a);
    snprintf(pb, sizeof pb, "%s/model.safetensors", b);
    int nt = 0;
    char wn[256] = "";
    double e = compare_tensors_flags(pb, pa, CMP_SAME_COUNT | CMP_SKIP_KEY_BIAS, &nt, wn, sizeof wn);
    CHECKF(nt > 10 && e == 0, "resumed reward run differs: %d tensors, worst %.3g (%s)", nt, e, wn);
    /* another centring coefficient cannot resume exactly: refused, naming it */
    char cmd[4000];
    snprintf(cmd, sizeof cmd, "%s reward --model %s --data %s/data.jsonl --out %s/resume_c --steps 4 --batch 2 --center-rewards 0.25 "
             "--resume %s/checkpoint-2 2>&1 | grep -q 'center_rewards 0.5 -> 0.25'", test_cli, start, fx, tmpdir, a);
    CHECKF(system(cmd) == 0, "%s", cmd);
}

/* reward_model_open / score on a folder with a tokenizer (GRPO's --reward model:DIR) */
static void test_reward_model(void) {
    const char *base = "models/tuna-stories";
    char dir[400], cmd[1200];
    if (!test_need(base, "reward_model scoring")) return;
    snprintf(dir, sizeof dir, "%s/rm_stories", tmpdir);
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, base) == TUNA_OK && tuna_model_to_reward(&m, 3) == TUNA_OK &&
          tuna_model_save(m, dir, TUNA_DTYPE_F32) == TUNA_OK);
    tuna_model_free(m);
    snprintf(cmd, sizeof cmd, "cp %s/tokenizer.json %s/tokenizer_config.json %s/", base, base, dir);
    CHECK(system(cmd) == 0);
    const char *texts[10] = {"Once upon a time", "The cat sat on the mat.", "Lily", "A", "Tom and Sue went to the park to play.",
                             "Hello", "The sun was hot.", "Ben had a red ball. He liked it very much.", "Yes", "The end."};
    double batch[10], alone[10];
    reward_model *rm = NULL;
    tuna_status st = reward_model_open(&rm, dir);
    CHECKF(st == TUNA_OK, "%s", tuna_last_error());
    if (st != TUNA_OK) return;
    CHECK(reward_model_score(rm, 10, texts, batch) == TUNA_OK);
    double worst = 0;
    for (int i = 0; i < 10; i++) {
        CHECK(reward_model_score(rm, 1, texts + i, alone + i) == TUNA_OK);
        worst = fmax(worst, fabs(batch[i] - alone[i]));
    }
    /* the rows' GEMMs differ in shape (rounding): scores of ~1e-2 agree to 1e-5 */
    CHECKF(worst < 1e-5, "batched vs alone scores: worst abs %.3g", worst);
    int distinct = 0;
    for (int i = 1; i < 10; i++) distinct += batch[i] != batch[0];
    CHECKF(distinct == 9, "scores do not depend on the text (%d distinct)", distinct);
    reward_model_free(rm);
    /* by hand: BOS + text + EOS, every token counted: minus the row loss */
    tuna_model *m2 = NULL;
    tuna_tokenizer *tok = NULL;
    int32_t *idv = NULL;
    size_t n = 0;
    CHECK(tuna_model_load(&m2, dir) == TUNA_OK && tuna_tokenizer_load(&tok, dir) == TUNA_OK &&
          tuna_dataset_encode_text(tok, texts[7], strlen(texts[7]), &idv, &n) == TUNA_OK);
    if (m2 && tok && idv) {
        int32_t row[128], lab[128];
        int len = (int)n;
        for (int t = 0; t < len && t < 127; t++) row[t] = lab[t] = idv[t];
        row[len] = lab[len] = tuna_tokenizer_eos_id(tok);
        len++;
        tuna_batch bt = {1, len, row, lab, NULL, NULL, NULL};
        double rl = NAN;
        CHECK(tuna_model_prepare(m2, 1, len, TUNA_MODE_EVAL) == TUNA_OK && tuna_model_forward(m2, &bt, NULL) == TUNA_OK &&
              tuna_model_row_losses(m2, 1, len, &rl) == TUNA_OK);
        CHECKF(fabs(-rl - batch[7]) <= 1e-5, "by hand %.8g, reward_model %.8g", -rl, batch[7]);
    }
    free(idv);
    tuna_tokenizer_free(tok);
    tuna_model_free(m2);
    /* a causal LM is not a reward model */
    rm = NULL;
    CHECK(reward_model_open(&rm, base) == TUNA_ERR_ARG && rm == NULL);
    CHECKF(strstr(tuna_last_error(), base) && strstr(tuna_last_error(), "not a reward model"), "%s", tuna_last_error());
}

/* text pairs through the tokenizer and template: the run's last line gives the
 * validation's pairwise accuracy, OUT holds the tokenizer, and reward_model
 * opens OUT and scores */
static void test_text_run(void) {
    const char *base = "models/tuna-stories";
    char data[600], out[600], cmd[4000];
    if (!test_need(base, "reward on text") || !test_need_cli("reward on text")) return;
    snprintf(data, sizeof data, "%s/prefs.jsonl", tmpdir);
    snprintf(out, sizeof out, "%s/text_run", tmpdir);
    FILE *f = fopen(data, "w");
    if (!f) { CHECK(0); return; }
    for (int i = 0; i < 16; i++)
        fprintf(f, "{\"prompt\":\"Once upon a time %d,\",\"chosen\":\" the dog played in the sun.\",\"rejected\":\" sun sun the the.\"}\n", i);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s reward --model %s --data %s --val-split 0.25 --steps 2 --batch 4 --seq-len 64 --out %s 2> %s/text.err",
             test_cli, base, data, out, tmpdir);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "tail -2 %s/text.err | grep -q 'done after 2 steps: .*(eval pairwise accuracy [01]\\.[0-9]*)' && test -s %s/tokenizer.json",
             tmpdir, out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    reward_model *rm = NULL;
    const char *texts[2] = {"Once upon a time 1, the dog played in the sun.", "Once upon a time 1, sun sun the the."};
    double s[2] = {NAN, NAN};
    CHECKF(reward_model_open(&rm, out) == TUNA_OK && reward_model_score(rm, 2, texts, s) == TUNA_OK, "%s", tuna_last_error());
    CHECKF(isfinite(s[0]) && isfinite(s[1]) && s[0] != s[1], "scores %g %g", s[0], s[1]);
    reward_model_free(rm);
}

static void test_cli_errors(void) {
    char cmd[2048], bad[600];
    if (!test_need_cli("reward cli errors")) return;
    /* a preference record missing a field: exit 2 naming the file and line, nothing written */
    snprintf(bad, sizeof bad, "%s/bad.jsonl", tmpdir);
    FILE *f = fopen(bad, "w");
    if (!f) { CHECK(0); return; }
    fputs("{\"prompt_ids\":[5,6],\"chosen_ids\":[7,8],\"rejected_ids\":[9]}\n{\"prompt_ids\":[5,6],\"chosen_ids\":[7,8]}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s reward --model %s --data %s --out %s/bad_out --steps 1 > %s/err.txt 2>&1", test_cli, llama, bad,
             tmpdir, tmpdir);
    int rc = system(cmd);
    CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "missing field exits %d, expected 2", WEXITSTATUS(rc));
    snprintf(cmd, sizeof cmd, "grep -q 'bad.jsonl:2:' %s/err.txt && test $(wc -l < %s/err.txt) -le 2 && test ! -e %s/bad_out", tmpdir,
             tmpdir, tmpdir);
    CHECKF(system(cmd) == 0, "%s", cmd);
    const char *refused[] = {"--method lora", "--center-rewards -1", "--pack", "--max-prompt-len 64 --seq-len 64"};
    for (size_t k = 0; k < sizeof refused / sizeof *refused; k++) {
        snprintf(cmd, sizeof cmd, "%s reward --model %s --data tests/fixtures/reward/llama_plain/data.jsonl --out %s/err %s --steps 1 2>/dev/null",
                 test_cli, llama, tmpdir, refused[k]);
        rc = system(cmd);
        CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "'%s' exits %d, expected 2", refused[k], WEXITSTATUS(rc));
    }
    /* sft and generation refuse a reward model; info describes it */
    snprintf(cmd, sizeof cmd, "%s sft --model %s/llama_plain --data tests/fixtures/sft/llama_constant/data.jsonl --out %s/err3 --steps 1 2>&1 | grep -q 'is a reward model'",
             test_cli, tmpdir, tmpdir);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "%s generate --model %s/llama_plain --prompt x 2>/dev/null", test_cli, tmpdir);
    rc = system(cmd);
    CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) != 0 && WEXITSTATUS(rc) < 128, "generate on a reward model exits %d", WEXITSTATUS(rc));
    snprintf(cmd, sizeof cmd, "%s info --model %s/llama_plain | grep -q 'sequence classification'", test_cli, tmpdir);
    CHECKF(system(cmd) == 0, "%s", cmd);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (!mkdtemp(tmpdir)) return 1;
    test_loss();
    test_config();
    test_through_model();
    test_fixture("llama_plain");
    test_fixture("llama_center");
    test_fixture("gpt2_center");
    test_hf_folder_scores();
    test_save_load();
    test_resume();
    test_reward_model();
    test_text_run();
    test_cli_errors();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_done();
}
