/* test_resume.c — what a resume checks (issue 19, item 5). A checkpoint
 * records its run's data and settings; tuna_trainer_resume refuses, before
 * loading anything, a run whose training sequences (tokens, masks, count),
 * starting model, adapter settings or seq_len differ, naming the difference,
 * and accepts a changed learning rate with a notice; a checkpoint without
 * that record (older tuna) still resumes. Library cases on the tiny
 * llama_gqa fixture, then the same through `tuna sft --resume` (exit 2 and
 * the message; the notice; exactness of a plain resume), and the driver's
 * own records: dpo's --ref-model (refused when another), the validation
 * data (other data resets the best loss, with a note) and the checkpoint's
 * "extra" read strictly (keys in any order; a bad value names the key). Runs from the
 * repository root; a few seconds. Uses only the API older checkpoints were
 * resumed with, so it also runs against code without the check. */
#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "pretok_check.h"
#include "tuna_peft.h"
#include "tuna_train.h"

static char tmpdir[256];
static const char *FIX = "tests/fixtures/parity/llama_gqa"; /* vocabulary of 100, no tokenizer */
static const char *DATA_DIFF = "data: different training sequences";

/* ---------------- library ---------------- */

/* A model of the fixture, with a LoRA adapter of rank lora_r when lora_r > 0. */
static tuna_model *load_model(int lora_r) {
    tuna_model *m = NULL;
    CHECKF(tuna_model_load(&m, FIX) == TUNA_OK, "%s: %s", FIX, tuna_last_error());
    if (m && lora_r > 0) {
        tuna_peft_config c;
        tuna_peft_config_default(&c, TUNA_PEFT_LORA);
        c.r = lora_r;
        CHECKF(tuna_peft_attach(m, &c, 7) == TUNA_OK, "attach: %s", tuna_last_error());
    }
    return m;
}

/* 1 when every tensor of a and b holds the same bytes */
static int same_weights(const tuna_model *a, const tuna_model *b) {
    int same = a && b && tuna_model_num_params(a) == tuna_model_num_params(b);
    for (int i = 0; same && i < tuna_model_num_params(a); i++) {
        const tuna_param *p = tuna_model_param(a, i), *q = tuna_model_param(b, i);
        same = p->numel == q->numel && !memcmp(p->data, q->data, (size_t)p->numel * sizeof(float));
    }
    return same;
}

static void default_args(tuna_train_args *a) {
    tuna_train_args_default(a);
    a->batch = 2;
    a->micro_batch = 1;
    a->lr = 1e-3f;
    a->steps = 4;
    a->seed = 3;
}

/* Trains `steps` steps of (model, data, args) and writes checkpoint dir (unless NULL). */
static void make_checkpoint(tuna_model *m, const tuna_pretok *d, const tuna_train_args *a, int steps, const char *dir) {
    tuna_trainer *t = NULL;
    tuna_step_info info;
    CHECKF(tuna_trainer_create(&t, m, d, a) == TUNA_OK, "create: %s", tuna_last_error());
    for (int s = 0; t && s < steps; s++) CHECK(tuna_trainer_step(t, &info) == TUNA_OK);
    if (t && dir) CHECKF(tuna_trainer_save(t, dir, NULL) == TUNA_OK, "save %s: %s", dir, tuna_last_error());
    tuna_trainer_free(t);
}

/* Resumes dir into a fresh trainer over (m, d, a); returns the status, the
 * error detail in err[n] and the resumed step count in *step. */
static tuna_status try_resume(tuna_model *m, const tuna_pretok *d, const tuna_train_args *a, const char *dir, char *err, size_t n,
                              int *step) {
    tuna_trainer *t = NULL;
    tuna_status st = tuna_trainer_create(&t, m, d, a);
    CHECKF(st == TUNA_OK, "create: %s", tuna_last_error());
    if (st == TUNA_OK) st = tuna_trainer_resume(t, dir, NULL);
    snprintf(err, n, "%s", st == TUNA_OK ? "" : tuna_last_error());
    *step = t ? tuna_trainer_step_count(t) : -1;
    tuna_trainer_free(t);
    return st;
}

/* a refused resume is TUNA_ERR_ARG naming the difference */
static void expect_refusal(const char *what, tuna_status st, const char *err, const char *needle) {
    CHECKF(st == TUNA_ERR_ARG && strstr(err, needle), "%s: status %d, want %d naming '%s': %s", what, st, TUNA_ERR_ARG, needle, err);
}

/* The checkpoint's record of its number of sequences is read while the JSON
 * holding it is alive (it was read after json_decref: "trained on 0
 * sequences"); the refusal comes before the checkpoint's weights are loaded. */
static void test_count_message(const char *ck, const tuna_pretok *d) {
    tuna_model *m = load_model(0);
    if (!m) return;
    tuna_train_args a;
    default_args(&a);
    tuna_pretok *fewer = NULL;
    CHECK(tuna_pretok_view(d, 0, tuna_pretok_count(d) - 1, &fewer) == TUNA_OK);
    char err[2048];
    int step;
    tuna_status st = fewer ? try_resume(m, fewer, &a, ck, err, sizeof err, &step) : TUNA_ERR_NOMEM;
    char want[160];
    snprintf(want, sizeof want, "trained on %lld sequences, this run has %lld", (long long)tuna_pretok_count(d),
             (long long)tuna_pretok_count(d) - 1);
    expect_refusal("fewer sequences", st, err, want);
    tuna_pretok_free(fewer);
    tuna_model *base = load_model(0);
    CHECKF(same_weights(m, base), "a refused resume loaded the checkpoint's weights");
    tuna_model_free(base);
    tuna_model_free(m);
}

/* Same number of sequences, one token or one mask entry different: refused. */
static void test_same_size_other_data(const char *ck, const tuna_pretok *d) {
    tuna_model *m = load_model(0);
    if (!m) return;
    tuna_train_args a;
    default_args(&a);
    char err[2048];
    int step;
    const int32_t *ids0, *lab0, *ids1;
    tuna_pretok_seq(d, 0, &ids0, &lab0, NULL);
    tuna_pretok_seq(d, 1, &ids1, NULL, NULL);
    pretok_token token = {1, 2, 0, (ids1[2] + 1) % 100}, mask = {0, 0, 1, lab0[0] == -100 ? ids0[0] : -100};
    tuna_pretok *other = pretok_copy(d, NULL, pretok_set_token, &token);
    CHECK(other != NULL);
    if (other) expect_refusal("one token changed", try_resume(m, other, &a, ck, err, sizeof err, &step), err, DATA_DIFF);
    tuna_pretok_free(other);
    other = pretok_copy(d, NULL, pretok_set_token, &mask);
    CHECK(other != NULL);
    if (other) expect_refusal("one mask entry changed", try_resume(m, other, &a, ck, err, sizeof err, &step), err, DATA_DIFF);
    /* the same sequences stored in another order are drawn in another order */
    int64_t n = tuna_pretok_count(d), *order = malloc((size_t)n * sizeof *order);
    for (int64_t i = 0; order && i < n; i++) order[i] = i < 2 ? 1 - i : i;
    tuna_pretok *swapped = order ? pretok_copy(d, order, NULL, NULL) : NULL;
    CHECK(swapped != NULL);
    if (swapped) expect_refusal("two sequences swapped", try_resume(m, swapped, &a, ck, err, sizeof err, &step), err, DATA_DIFF);
    free(order);
    tuna_pretok_free(other);
    tuna_pretok_free(swapped);
    tuna_model_free(m);
}

/* seq_len and seed are exact settings; the learning rate and step count are not */
static void test_settings(const char *ck, const tuna_pretok *d) {
    tuna_model *m = load_model(0);
    if (!m) return;
    tuna_train_args a;
    char err[2048];
    int step;
    default_args(&a);
    a.seq_len = 64;
    expect_refusal("seq_len", try_resume(m, d, &a, ck, err, sizeof err, &step), err, "seq_len 512 -> 64");
    default_args(&a);
    a.seed = 4;
    expect_refusal("seed", try_resume(m, d, &a, ck, err, sizeof err, &step), err, "seed 3 -> 4");
    default_args(&a);
    a.lr = 5e-4f;
    a.steps = 6;
    tuna_status st = try_resume(m, d, &a, ck, err, sizeof err, &step);
    CHECKF(st == TUNA_OK && step == 2, "changed lr and steps: status %d, step %d: %s", st, step, err);
    tuna_model_free(m);
}

/* An adapter run: a different rank, or a different frozen base of the same
 * architecture, is refused by name */
static void test_adapter(const tuna_pretok *d) {
    char ck[400], err[2048];
    int step;
    snprintf(ck, sizeof ck, "%s/lora-ck", tmpdir);
    tuna_train_args a;
    default_args(&a);
    tuna_model *m = load_model(4);
    if (m) make_checkpoint(m, d, &a, 2, ck);
    tuna_model_free(m);
    m = load_model(8);
    if (m) expect_refusal("lora r", try_resume(m, d, &a, ck, err, sizeof err, &step), err, "lora_r 4 -> 8");
    tuna_model_free(m);
    m = load_model(0);
    if (m) {
        tuna_model_param(m, 1)->data[3] += 0.25f; /* another base model */
        tuna_peft_config c;
        tuna_peft_config_default(&c, TUNA_PEFT_LORA);
        c.r = 4;
        CHECK(tuna_peft_attach(m, &c, 7) == TUNA_OK);
        expect_refusal("other base", try_resume(m, d, &a, ck, err, sizeof err, &step), err, "model: a different model");
    }
    tuna_model_free(m);
    m = load_model(4);
    if (m) CHECKF(try_resume(m, d, &a, ck, err, sizeof err, &step) == TUNA_OK && step == 2, "same adapter run: %s", err);
    tuna_model_free(m);
}

/* 2 steps, checkpoint, resume, 2 steps: the weights of 4 straight steps, in
 * fp32 and with bf16 GEMMs (whose weights then differ from fp32_4's, those of
 * 4 fp32 steps: bf16 ran) */
static void test_exact(const char *ck, const tuna_pretok *d, int bf16, const tuna_model *fp32_4) {
    tuna_train_args a;
    default_args(&a);
    a.bf16 = bf16;
    tuna_model *m1 = load_model(0), *m2 = load_model(0);
    tuna_trainer *t1 = NULL, *t2 = NULL;
    tuna_step_info info;
    if (m1 && m2 && tuna_trainer_create(&t1, m1, d, &a) == TUNA_OK && tuna_trainer_create(&t2, m2, d, &a) == TUNA_OK) {
        for (int s = 0; s < 4; s++) CHECK(tuna_trainer_step(t1, &info) == TUNA_OK);
        CHECKF(tuna_trainer_resume(t2, ck, NULL) == TUNA_OK, "resume: %s", tuna_last_error());
        for (int s = 0; s < 2; s++) CHECK(tuna_trainer_step(t2, &info) == TUNA_OK);
        CHECKF(same_weights(m1, m2), "%s: 2 steps + resume + 2 steps differ from 4 steps", bf16 ? "bf16" : "fp32");
        if (fp32_4) CHECKF(!same_weights(m1, fp32_4), "bf16: 4 steps gave fp32's weights");
    } else CHECKF(0, "trainers: %s", tuna_last_error());
    tuna_trainer_free(t1);
    tuna_trainer_free(t2);
    tuna_model_free(m1);
    tuna_model_free(m2);
}

/* test_exact in fp32, then with bf16 GEMMs from a checkpoint of a bf16 run */
static void test_exact_both(const char *ck, const tuna_pretok *d) {
    test_exact(ck, d, 0, NULL);
    if (!tuna_bf16_supported()) {
        test_absent("resume with bf16 GEMMs", tuna_kernels_info());
        return;
    }
    char ck16[400];
    snprintf(ck16, sizeof ck16, "%s/ck_bf16", tmpdir);
    tuna_train_args a;
    default_args(&a);
    tuna_model *m = load_model(0), *f = load_model(0);
    if (f) make_checkpoint(f, d, &a, 4, NULL);
    a.bf16 = 1;
    if (m) make_checkpoint(m, d, &a, 2, ck16);
    test_exact(ck16, d, 1, f);
    tuna_model_free(m);
    tuna_model_free(f);
}

/* Removes "resume_check" from dir/trainer_state.json (as an older tuna wrote it). */
static void strip_record(const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    json_t *o = json_load_file(path, 0, NULL);
    CHECKF(o != NULL, "cannot read %s", path);
    if (!o) return;
    json_object_del(o, "resume_check");
    CHECK(json_dump_file(o, path, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) == 0);
    json_decref(o);
}

static void test_old_checkpoint(const char *ck, const tuna_pretok *d) {
    char old[400], cmd[1200], err[2048];
    int step;
    snprintf(old, sizeof old, "%s/old-ck", tmpdir);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", ck, old);
    CHECK(system(cmd) == 0);
    strip_record(old);
    tuna_model *m = load_model(0);
    tuna_train_args a;
    default_args(&a);
    if (m) CHECKF(try_resume(m, d, &a, old, err, sizeof err, &step) == TUNA_OK && step == 2, "older checkpoint: %s", err);
    tuna_model_free(m);
}

static void library_cases(void) {
    char data[300], ck[400];
    snprintf(data, sizeof data, "%s/data.jsonl", FIX);
    snprintf(ck, sizeof ck, "%s/ck", tmpdir);
    tuna_pretok *d = NULL;
    if (!test_need(data, "resume") || tuna_pretok_load(&d, data, 0) != TUNA_OK) {
        CHECKF(0, "%s: %s", data, tuna_last_error());
        return;
    }
    tuna_model *m = load_model(0);
    tuna_train_args a;
    default_args(&a);
    if (m) make_checkpoint(m, d, &a, 2, ck);
    tuna_model_free(m);
    test_count_message(ck, d);
    test_same_size_other_data(ck, d);
    test_settings(ck, d);
    test_adapter(d);
    test_exact_both(ck, d);
    test_old_checkpoint(ck, d);
    tuna_pretok_free(d);
}

/* ---------------- CLI ---------------- */

/* n pre-tokenized records of 8 ids in [5, 95), seeded. */
static void write_records(const char *path, int n, uint32_t seed) {
    FILE *f = fopen(path, "w");
    CHECKF(f != NULL, "cannot create %s", path);
    if (!f) return;
    for (int i = 0; i < n; i++) {
        fputs("{\"input_ids\":[", f);
        for (int k = 0; k < 8; k++) {
            seed = seed * 1664525u + 1013904223u;
            fprintf(f, "%s%u", k ? "," : "", 5 + (seed >> 8) % 90);
        }
        fputs("]}\n", f);
    }
    fclose(f);
}

/* Runs `tuna ARGS`, stderr to tmpdir/err.txt (read into err[n]); returns the
 * exit status. */
static int tuna(const char *args, char *err, size_t n) {
    char cmd[4096], path[400];
    snprintf(path, sizeof path, "%s/err.txt", tmpdir);
    snprintf(cmd, sizeof cmd, "%s %s 2>'%s'", test_cli, args, path);
    int rc = system(cmd);
    err[0] = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        size_t got = fread(err, 1, n - 1, f);
        err[got] = 0;
        fclose(f);
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* `tuna sft` with the common options and extra ones */
static int sft(const char *extra, char *err, size_t n) {
    char args[3000];
    snprintf(args, sizeof args, "sft --model %s --batch 2 --micro-batch 1 --lr 1e-3 --seed 3 --quiet %s", FIX, extra);
    return tuna(args, err, n);
}

static void expect_cli(const char *what, int rc, int want_rc, const char *err, const char *needle) {
    CHECKF(rc == want_rc && strstr(err, needle), "%s: exit %d (want %d), stderr should name '%s': %s", what, rc, want_rc, needle, err);
}

/* `tuna dpo` on the preference fixture with the common options and extra ones */
static int dpo(const char *extra, char *err, size_t n) {
    char args[3000];
    snprintf(args, sizeof args, "dpo --model %s --data tests/fixtures/dpo/full_sigmoid/data.jsonl --method full --batch 2 "
             "--micro-batch 1 --lr 1e-3 --seed 3 --quiet %s", FIX, extra);
    return tuna(args, err, n);
}

/* A DPO run's reference model is part of what a resume must match. */
static void cli_dpo_reference(void) {
    char opt[2048], err[4096];
    snprintf(opt, sizeof opt, "--ref-model %s --steps 4 --save-every 2 --out %s/dpo", FIX, tmpdir);
    CHECKF(dpo(opt, err, sizeof err) == 0, "dpo run: %s", err);
    /* another reference model: the weights of the sft run */
    snprintf(opt, sizeof opt, "--ref-model %s/run --steps 4 --out %s/dpo-r1 --resume %s/dpo/checkpoint-2", tmpdir, tmpdir, tmpdir);
    expect_cli("dpo, another --ref-model", dpo(opt, err, sizeof err), 2, err, "ref_model: a different reference model");
    /* the starting model as reference: the same weights, so the same reference */
    snprintf(opt, sizeof opt, "--steps 4 --save-every 2 --out %s/dpo-r2 --resume %s/dpo/checkpoint-2", tmpdir, tmpdir);
    CHECKF(dpo(opt, err, sizeof err) == 0 && !strstr(err, "note"), "dpo, reference the starting model itself: %s", err);
}

/* Copies checkpoint src to tmpdir/name and sets key of its trainer_state.json
 * "extra" to v (stolen; NULL: keep the values), with the keys in reverse
 * order when reverse; dst receives the copy's path. */
static void edit_extra(const char *src, const char *name, const char *key, json_t *v, int reverse, char *dst, size_t n) {
    char cmd[1400], path[600];
    snprintf(dst, n, "%s/%s", tmpdir, name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", dst, src, dst);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/trainer_state.json", dst);
    json_t *o = json_load_file(path, 0, NULL), *e = json_object_get(o, "extra"), *r = json_object();
    CHECKF(json_is_object(e), "%s: no extra object", path);
    if (!json_is_object(e)) { json_decref(o); json_decref(r); json_decref(v); return; }
    if (v) json_object_set_new(e, key, v);
    const char *keys[16];
    size_t k = 0;
    const char *kk;
    json_t *vv;
    json_object_foreach(e, kk, vv) if (k < 16) keys[k++] = kk;
    for (size_t i = 0; i < k; i++) {
        const char *take = keys[reverse ? k - 1 - i : i];
        json_object_set(r, take, json_object_get(e, take));
    }
    json_object_set_new(o, "extra", r);
    CHECK(json_dump_file(o, path, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) == 0);
    json_decref(o);
}

/* extra.best of checkpoint dir (NAN when unreadable) */
static double extra_best(const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    json_t *o = json_load_file(path, 0, NULL);
    json_t *b = json_object_get(json_object_get(o, "extra"), "best");
    double v = json_is_number(b) ? json_number_value(b) : NAN;
    json_decref(o);
    return v;
}

/* The best validation loss saved in a checkpoint belongs to its validation
 * data: with other validation data it is reset, with a notice. The
 * checkpoint's best is set to 1e-9 (as if its validation data were easy), so
 * a best kept by mistake shows in the next checkpoint. */
static void cli_validation_data(const char *a, const char *b) {
    char opt[2048], err[4096], ck[600], next[600];
    snprintf(opt, sizeof opt, "--data %s --val %s --eval-every 1 --steps 6 --save-every 3 --out %s/vrun", a, a, tmpdir);
    CHECKF(sft(opt, err, sizeof err) == 0, "validated run: %s", err);
    snprintf(opt, sizeof opt, "%s/vrun/checkpoint-3", tmpdir);
    edit_extra(opt, "vck", "best", json_real(1e-9), 0, ck, sizeof ck);

    snprintf(opt, sizeof opt, "--data %s --val %s --eval-every 1 --steps 9 --save-every 3 --out %s/v1 --resume %s", a, b, tmpdir, ck);
    expect_cli("other --val", sft(opt, err, sizeof err), 0, err, "the best validation loss and the early-stopping count are reset");
    snprintf(next, sizeof next, "%s/v1/checkpoint-6", tmpdir);
    double best = extra_best(next);
    CHECKF(best > 1e-3 && best < 100, "other --val: best kept from the other validation data: %g", best);
    snprintf(opt, sizeof opt, "%s/v1/model.safetensors", tmpdir);
    CHECKF(access(opt, F_OK) == 0, "other --val: the best weights on this validation data were not written");

    /* the same validation data: the saved best stands */
    snprintf(opt, sizeof opt, "--data %s --val %s --eval-every 1 --steps 9 --save-every 3 --out %s/v2 --resume %s", a, a, tmpdir, ck);
    CHECKF(sft(opt, err, sizeof err) == 0 && !strstr(err, "validation data"), "same --val: %s", err);
    snprintf(next, sizeof next, "%s/v2/checkpoint-6", tmpdir);
    CHECKF(extra_best(next) == 1e-9, "same --val: best %g, want the checkpoint's 1e-9", extra_best(next));
}

/* The checkpoint's extra is read as JSON, strictly: keys in another order
 * are still read; a value of the wrong type is an error naming the key. */
static void cli_extra_strict(const char *a) {
    char opt[2048], err[4096], ck[600], next[600];
    snprintf(opt, sizeof opt, "%s/vrun/checkpoint-3", tmpdir);
    edit_extra(opt, "rev", "best", json_real(1e-9), 1, ck, sizeof ck);
    snprintf(opt, sizeof opt, "--data %s --val %s --eval-every 1 --steps 9 --save-every 3 --out %s/x1 --resume %s", a, a, tmpdir, ck);
    CHECKF(sft(opt, err, sizeof err) == 0, "keys reordered: %s", err);
    snprintf(next, sizeof next, "%s/x1/checkpoint-6", tmpdir);
    CHECKF(extra_best(next) == 1e-9, "keys reordered: best %g, want the checkpoint's 1e-9 (extra ignored)", extra_best(next));

    static const struct { const char *key, *value, *needle; } bad[] = {
        {"best", "\"0.5\"", "extra.best \"0.5\": must be a number"},
        {"bad_evals", "1.5", "extra.bad_evals 1.5: must be an integer"},
        {"saved_best", "2", "extra.saved_best 2: must be an integer in [0, 1]"},
        {"val", "7", "extra.val 7: must be a string or null"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(opt, sizeof opt, "%s/vrun/checkpoint-3", tmpdir);
        edit_extra(opt, "bad", bad[k].key, json_loads(bad[k].value, JSON_DECODE_ANY, NULL), 0, ck, sizeof ck);
        snprintf(opt, sizeof opt, "--data %s --val %s --eval-every 1 --steps 9 --out %s/x2 --resume %s", a, a, tmpdir, ck);
        int rc = sft(opt, err, sizeof err);
        CHECKF(rc == 2 && strstr(err, "bad/trainer_state.json: ") && strstr(err, bad[k].needle),
               "extra.%s = %s: exit %d (want 2), stderr should name trainer_state.json and '%s': %s", bad[k].key, bad[k].value,
               rc, bad[k].needle, err);
    }
}

static void cli_cases(void) {
    if (!test_need_cli("resume through the CLI")) return;
    char a[400], b[400], fewer[400], ck[500], opt[2048], err[4096], x[500], y[500];
    snprintf(a, sizeof a, "%s/a.jsonl", tmpdir);
    snprintf(b, sizeof b, "%s/b.jsonl", tmpdir);
    snprintf(fewer, sizeof fewer, "%s/fewer.jsonl", tmpdir);
    write_records(a, 6, 1);
    write_records(b, 6, 2);
    write_records(fewer, 5, 1);
    snprintf(ck, sizeof ck, "%s/run/checkpoint-3", tmpdir);
    snprintf(opt, sizeof opt, "--data %s --steps 6 --save-every 3 --out %s/run", a, tmpdir);
    CHECKF(sft(opt, err, sizeof err) == 0, "first run: %s", err);
    snprintf(opt, sizeof opt, "--data %s --steps 6 --save-every 3 --method lora --lora-r 4 --out %s/lora", a, tmpdir);
    CHECKF(sft(opt, err, sizeof err) == 0, "lora run: %s", err);

    snprintf(opt, sizeof opt, "--data %s --steps 6 --out %s/r1 --resume %s", b, tmpdir, ck);
    expect_cli("same-size other data", sft(opt, err, sizeof err), 2, err, DATA_DIFF);
    snprintf(opt, sizeof opt, "--data %s --steps 6 --out %s/r2 --resume %s", fewer, tmpdir, ck);
    expect_cli("fewer records", sft(opt, err, sizeof err), 2, err, "trained on 6 sequences, this run has 5");
    snprintf(opt, sizeof opt, "--data %s --steps 6 --seq-len 64 --out %s/r3 --resume %s", a, tmpdir, ck);
    expect_cli("--seq-len", sft(opt, err, sizeof err), 2, err, "seq_len 512 -> 64");
    snprintf(opt, sizeof opt, "--data %s --steps 6 --method lora --lora-r 8 --out %s/r4 --resume %s/lora/checkpoint-3", a, tmpdir, tmpdir);
    expect_cli("--lora-r", sft(opt, err, sizeof err), 2, err, "lora_r 4 -> 8");
    snprintf(opt, sizeof opt, "--data %s --steps 6 --lr 5e-4 --save-every 3 --out %s/r5 --resume %s", a, tmpdir, ck);
    expect_cli("--lr", sft(opt, err, sizeof err), 0, err, "tuna: note: lr 0.001 -> 0.0005");
    CHECKF(!strstr(err, "steps"), "unchanged settings listed: %s", err);

    /* same data and settings: no notice, and the weights of the straight run */
    snprintf(opt, sizeof opt, "--data %s --steps 6 --save-every 3 --out %s/r6 --resume %s", a, tmpdir, ck);
    CHECKF(sft(opt, err, sizeof err) == 0 && !strstr(err, "note"), "plain resume: %s", err);
    snprintf(x, sizeof x, "%s/run/model.safetensors", tmpdir);
    snprintf(y, sizeof y, "%s/r6/model.safetensors", tmpdir);
    snprintf(opt, sizeof opt, "cmp -s '%s' '%s'", x, y);
    CHECKF(system(opt) == 0, "3 steps + resume + 3 steps differ from 6 steps");

    /* an older checkpoint resumes, saying what it could not check */
    snprintf(x, sizeof x, "%s/run-old", tmpdir);
    snprintf(opt, sizeof opt, "cp -r '%s' '%s'", ck, x);
    CHECK(system(opt) == 0);
    strip_record(x);
    snprintf(opt, sizeof opt, "--data %s --steps 6 --save-every 3 --out %s/r7 --resume %s", a, tmpdir, x);
    expect_cli("older checkpoint", sft(opt, err, sizeof err), 0, err, "no fingerprint");

    cli_dpo_reference();
    cli_validation_data(a, b);
    cli_extra_strict(a);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (test_tmpdir(tmpdir, sizeof tmpdir, "resume") != 0) return 1;
    library_cases();
    cli_cases();
    test_rmdir(tmpdir);
    return test_done();
}
