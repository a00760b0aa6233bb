/* test_train.c — the trainer: HF schedule values, exact resume (byte-identical
 * weights for 10 steps vs 5 + resume + 5, and after SIGINT), gradient
 * accumulation equal to one big batch, a NaN loss stopping with the step named,
 * and 5-step parity with PyTorch (fixtures in tests/fixtures/sft, made by
 * tools/make_sft_fixtures.py). Runs from the repository root. */
#include <dirent.h>
#include <signal.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "model_probe.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "pretok_check.h"
#include "tuna_train.h"

static char tmpdir[256];

static int run(const char *fmt, const char *a, const char *b) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int same_file(const char *a, const char *b) { return run("cmp -s '%s' '%s'", a, b) == 0; }

static void test_schedules(void) {
    /* HF get_cosine_schedule_with_warmup(warmup=2, total=5): 0, .5, 1, .75, .25 */
    double cos_want[] = {0, 0.5, 1, 0.75, 0.25};
    double lin_want[] = {0, 0.5, 1, 2.0 / 3, 1.0 / 3}; /* get_linear_schedule_with_warmup */
    for (int s = 0; s < 5; s++) {
        CHECKF(fabs(tuna_schedule_factor(TUNA_SCHED_COSINE, s, 2, 5) - cos_want[s]) < 1e-12, "cosine step %d", s);
        CHECKF(fabs(tuna_schedule_factor(TUNA_SCHED_LINEAR, s, 2, 5) - lin_want[s]) < 1e-12, "linear step %d", s);
        CHECK(tuna_schedule_factor(TUNA_SCHED_CONSTANT, s, 0, 5) == 1.0);
    }
    CHECK(tuna_schedule_factor(TUNA_SCHED_CONSTANT, 1, 4, 10) == 0.25); /* constant_with_warmup */
    tuna_train_args a;
    tuna_train_args_default(&a);
    a.warmup = 0.1;
    CHECK(tuna_warmup_steps(&a, 25) == 3); /* ceil(2.5), as HF */
    a.warmup = 7;
    CHECK(tuna_warmup_steps(&a, 25) == 7);
}

static const char *FIX = "tests/fixtures/parity/llama_gqa";

static void test_resume(void) {
    char common[2048], d1[300], d2[300], d3[300];
    snprintf(common, sizeof common,
             "%s sft --model %s --data %s/data.jsonl --steps 10 --batch 2 --micro-batch 1 --lr 1e-3 "
             "--schedule cosine --warmup 2 --weight-decay 0.1 --seed 3 --quiet",
             test_cli, FIX, FIX);
    snprintf(d1, sizeof d1, "%s/full", tmpdir);
    snprintf(d2, sizeof d2, "%s/ck", tmpdir);
    snprintf(d3, sizeof d3, "%s/resumed", tmpdir);
    CHECK(run("%s --out %s", common, d1) == 0);
    CHECK(run("%s --out %s --save-every 5", common, d2) == 0);
    char ck[400], a[4096], b[400];
    snprintf(ck, sizeof ck, "%s/checkpoint-5", d2);
    snprintf(a, sizeof a, "%s --out %s --resume", common, d3);
    CHECK(run("%s %s", a, ck) == 0);
    snprintf(a, sizeof a, "%s/model.safetensors", d1);
    snprintf(b, sizeof b, "%s/model.safetensors", d3);
    CHECKF(same_file(a, b), "10 steps vs 5 + resume + 5 differ");
    snprintf(b, sizeof b, "%s/model.safetensors", d2);
    CHECK(same_file(a, b)); /* checkpointing does not perturb the run */
    /* resumed in its own folder, the run removes the checkpoint it resumed
     * from once the next one is complete (checkpoints do not pile up) */
    snprintf(a, sizeof a, "%s --steps 15 --save-every 5 --out %s --resume", common, d2);
    CHECK(run("%s %s", a, ck) == 0);
    struct stat sb;
    snprintf(b, sizeof b, "%s/checkpoint-10", d2);
    CHECK(stat(b, &sb) == 0);
    CHECKF(stat(ck, &sb) != 0, "%s left after a resume in the same folder wrote checkpoint-10", ck);
}

/* The previous checkpoint is hidden before it is deleted: a removal that
 * stops midway (a kill, here a file that cannot be deleted: chattr +i) must
 * not leave a half-deleted checkpoint-N that looks like a checkpoint */
static void test_checkpoint_discard(void) {
    char common[2048], d[300], ck[400], pin[500], cmd[4096];
    snprintf(common, sizeof common, "%s sft --model %s --data %s/data.jsonl --batch 2 --micro-batch 1 --seed 3 --quiet "
             "--save-every 5", test_cli, FIX, FIX);
    snprintf(d, sizeof d, "%s/pinned", tmpdir);
    snprintf(ck, sizeof ck, "%s/checkpoint-5", d);
    snprintf(pin, sizeof pin, "%s/pinned", ck);
    snprintf(cmd, sizeof cmd, "%s --steps 10 --out %s", common, d);
    CHECK(system(cmd) == 0);
    if (run("touch '%s' && chattr +i '%s' 2>/dev/null", pin, pin) != 0) {
        test_absent("interrupted checkpoint removal", "chattr +i not available (needs root and ext4-like /tmp)");
        return;
    }
    snprintf(cmd, sizeof cmd, "%s --steps 15 --out %s --resume %s", common, d, ck);
    CHECK(system(cmd) == 0);
    struct stat sb;
    char next[400];
    snprintf(next, sizeof next, "%s/checkpoint-10", d);
    CHECK(stat(next, &sb) == 0);
    CHECKF(stat(ck, &sb) != 0, "%s still visible after its removal failed midway", ck);
    run("chattr -i '%s'/.checkpoint-5.old/pinned '%s' 2>/dev/null", d, pin);
}

/* The newest OUT/checkpoint-STEP (a complete one: checkpoints are written
 * under a temporary name and renamed): its step, 0 (path "") when none. */
static int newest_checkpoint(const char *dir, char *path, size_t n) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int best = 0;
    while (d && (e = readdir(d))) {
        int step;
        char rest;
        if (sscanf(e->d_name, "checkpoint-%d%c", &step, &rest) == 1 && step > best) best = step;
    }
    if (d) closedir(d);
    if (best) snprintf(path, n, "%s/checkpoint-%d", dir, best);
    else path[0] = 0;
    return best;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* SIGINT mid-run: a checkpoint is written, exit status 1; resuming gives the
 * same final weights as a run that was never interrupted */
static void test_sigint(void) {
    char d1[300], d2[300], d3[300];
    snprintf(d1, sizeof d1, "%s/nosig", tmpdir);
    snprintf(d2, sizeof d2, "%s/sig", tmpdir);
    snprintf(d3, sizeof d3, "%s/sigres", tmpdir);
    char data[300];
    snprintf(data, sizeof data, "%s/data.jsonl", FIX);
    const char *args[] = {test_cli, "sft", "--model", FIX, "--data", data, "--steps", "400", "--batch", "3",
                          "--micro-batch", "1", "--lr", "1e-4", "--quiet", "--out", d2, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        execv(args[0], (char *const *)args);
        _exit(127);
    }
    /* wait until training has started (metrics file has a line; in the run's
     * staging folder until its first checkpoint) */
    char mpath[400];
    snprintf(mpath, sizeof mpath, "%s/.sig.run-%ld/metrics.jsonl", tmpdir, (long)pid);
    for (int i = 0; i < 200; i++) {
        struct stat sb;
        if (stat(mpath, &sb) == 0 && sb.st_size > 0) break;
        usleep(20000);
    }
    kill(pid, SIGINT);
    int status;
    waitpid(pid, &status, 0);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 1, "interrupted run exit status %d", status);
    char ck[400];
    CHECKF(newest_checkpoint(d2, ck, sizeof ck) > 0, "no checkpoint after SIGINT");
    if (!ck[0]) return;
    char common[2048];
    snprintf(common, sizeof common,
             "%s sft --model %s --data %s/data.jsonl --steps 400 --batch 3 --micro-batch 1 --lr 1e-4 --quiet", test_cli,
             FIX, FIX);
    CHECK(run("%s --out %s", common, d1) == 0);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s --out %s --resume", common, d3);
    CHECK(run("%s %s", cmd, ck) == 0);
    char a[400], b[400];
    snprintf(a, sizeof a, "%s/model.safetensors", d1);
    snprintf(b, sizeof b, "%s/model.safetensors", d3);
    CHECKF(same_file(a, b), "SIGINT + resume differs from an uninterrupted run");
}

static int load_params(const char *dir, tuna_model **m) { return tuna_model_load(m, dir) == TUNA_OK; }

/* Worst per-tensor relative L2 difference between the weights of two model
 * folders (+inf when either cannot be loaded). */
static double weights_rel_diff(const char *d1, const char *d2) {
    tuna_model *a = NULL, *b = NULL;
    double worst = INFINITY;
    if (load_params(d1, &a) && load_params(d2, &b) && tuna_model_num_params(a) == tuna_model_num_params(b)) {
        worst = 0;
        for (int i = 0; i < tuna_model_num_params(a); i++) {
            const tuna_param *x = tuna_model_param(a, i), *y = tuna_model_param(b, i);
            double e = rel_l2(x->data, y->data, x->numel);
            worst = e > worst ? e : worst;
        }
    }
    tuna_model_free(a);
    tuna_model_free(b);
    return worst;
}

/* Starts argv; once OUT has a checkpoint (polled, at most limit_s seconds)
 * waits delay_us more and SIGKILLs it. Returns the newest checkpoint's step
 * after the kill (0: none came, or the run ended by itself). */
static int kill_after_checkpoint(const char *const *argv, const char *out, useconds_t delay_us, double limit_s, char *ck, size_t n) {
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0, ended = 0;
    double t0 = now_s();
    while (!newest_checkpoint(out, ck, n) && !(ended = waitpid(pid, &status, WNOHANG) == pid) && now_s() - t0 < limit_s) usleep(2000);
    if (!ended) {
        if (ck[0]) usleep(delay_us);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    CHECKF(!ended && ck[0], "%s: %s before its first checkpoint (%.1f s)", out, ended ? "the run ended" : "no checkpoint", now_s() - t0);
    return ended ? 0 : newest_checkpoint(out, ck, n);
}

/* SIGKILL at different moments of the checkpoint cycle (checkpointing every
 * step), always after the first checkpoint: the newest checkpoint is complete
 * (no temporary folder is mistaken for one), and resuming from it ends with
 * the same weights as a run that was never killed. The constant schedule makes
 * a step's update independent of --steps. */
static void test_sigkill(void) {
    char d[300], data[300], common[2048], cmd[4096], ck[400], a[400], b[400];
    snprintf(data, sizeof data, "%s/data.jsonl", FIX);
    snprintf(common, sizeof common, "%s sft --model %s --data %s --batch 3 --micro-batch 1 --lr 1e-4 --schedule constant --quiet",
             test_cli, FIX, data);
    for (int round = 0; round < 3; round++) {
        snprintf(d, sizeof d, "%s/kill%d", tmpdir, round);
        const char *args[] = {test_cli, "sft", "--model", FIX, "--data", data, "--steps", "1000000", "--batch", "3",
                              "--micro-batch", "1", "--lr", "1e-4", "--schedule", "constant", "--quiet", "--save-every", "1",
                              "--out", d, NULL};
        int step = kill_after_checkpoint(args, d, 4000 + 9000 * round, 300, ck, sizeof ck);
        if (!step) continue;
        tuna_model *m = NULL;
        CHECKF(tuna_model_load(&m, ck) == TUNA_OK, "checkpoint %s after SIGKILL: %s", ck, tuna_last_error());
        tuna_model_free(m);
        snprintf(cmd, sizeof cmd, "%s --steps %d --out %s/kill_resumed%d --resume %s", common, step + 2, tmpdir, round, ck);
        CHECKF(system(cmd) == 0, "%s", cmd);
        snprintf(cmd, sizeof cmd, "%s --steps %d --out %s/kill_straight%d", common, step + 2, tmpdir, round);
        CHECKF(system(cmd) == 0, "%s", cmd);
        snprintf(a, sizeof a, "%s/kill_resumed%d/model.safetensors", tmpdir, round);
        snprintf(b, sizeof b, "%s/kill_straight%d/model.safetensors", tmpdir, round);
        CHECKF(same_file(a, b), "killed at checkpoint-%d, resumed to step %d: weights differ from a run never killed", step, step + 2);
        printf("SIGKILL round %d: newest checkpoint-%d, resumed to step %d\n", round, step, step + 2);
    }
}

/* batch 3 as 3 micro-batches of 1 or one micro-batch of 3: same update */
static void test_accumulation(void) {
    char d1[300], d2[300], common[2048];
    snprintf(d1, sizeof d1, "%s/acc1", tmpdir);
    snprintf(d2, sizeof d2, "%s/acc4", tmpdir);
    snprintf(common, sizeof common,
             "%s sft --model %s --data %s/data.jsonl --steps 3 --batch 3 --lr 1e-3 --no-shuffle --quiet", test_cli, FIX, FIX);
    CHECK(run("%s --micro-batch 1 --out %s", common, d1) == 0);
    CHECK(run("%s --micro-batch 3 --out %s", common, d2) == 0);
    double worst = weights_rel_diff(d1, d2);
    /* same math, different summation order: fp32 rounding only. Adam divides
     * each gradient element by its own scale, so rounding in a near-zero
     * element can still move that weight by up to lr: measured 3e-6..1.1e-5
     * over 3 steps; a wrong accumulation gives 1e-2 and more */
    CHECKF(worst < 3e-5, "accumulation vs one batch: rel %.3g", worst);
}

/* packing changes speed, not the result: one optimizer step over the same
 * examples (67 tokens), padded (batch 3) or packed into one 80-token row
 * (batch 1) */
static void test_packing(void) {
    char d1[300], d2[300], cmd[4096];
    snprintf(d1, sizeof d1, "%s/unpacked", tmpdir);
    snprintf(d2, sizeof d2, "%s/packed", tmpdir);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s/data.jsonl --steps 2 --batch 3 --seq-len 80 --lr 1e-3 --no-shuffle --quiet --out %s",
             test_cli, FIX, FIX, d1);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s/data.jsonl --steps 2 --batch 1 --seq-len 80 --lr 1e-3 --no-shuffle --quiet --pack --out %s",
             test_cli, FIX, FIX, d2);
    CHECK(system(cmd) == 0);
    double worst = weights_rel_diff(d1, d2);
    CHECKF(worst < 1e-5, "packed vs padded training: rel %.3g", worst);
    /* the packing itself: every example lands in exactly one row, with restarting positions */
    tuna_pretok *p = NULL, *q = NULL;
    char data[300];
    snprintf(data, sizeof data, "%s/data.jsonl", FIX);
    CHECK(tuna_pretok_load(&p, data, 0) == TUNA_OK);
    CHECK(p && tuna_pretok_pack(p, 30, &q) == TUNA_OK);
    if (!q) { tuna_pretok_free(p); return; }
    int64_t in_tokens = 0, starts = 0;
    for (int64_t i = 0; i < tuna_pretok_count(p); i++) {
        int64_t len = tuna_pretok_seq(p, i, NULL, NULL, NULL);
        in_tokens += len < 30 ? len : 30;
    }
    for (int64_t r = 0; r < tuna_pretok_count(q); r++) {
        const int32_t *pos;
        int64_t len = tuna_pretok_seq(q, r, NULL, NULL, &pos);
        for (int64_t k = 0; pos && k < len; k++) starts += pos[k] == 0;
    }
    CHECK(pretok_tokens(q) == in_tokens && starts == tuna_pretok_count(p) && tuna_pretok_max_len(q) <= 30);
    for (int64_t r = 0; r < tuna_pretok_count(q); r++) {
        const int32_t *pos, *lab;
        tuna_pretok_seq(q, r, NULL, &lab, &pos);
        CHECK(pos && pos[0] == 0 && lab[0] == -100);
    }
    tuna_pretok_free(p);
    tuna_pretok_free(q);
}

/* multi-task mixing: actual shares near the weights; resume replays the mixed
 * stream exactly */
static void test_mixing(void) {
    char d1[300], d2[300], d3[300], cmd[4096], base[2048];
    snprintf(d1, sizeof d1, "%s/mix", tmpdir);
    snprintf(d2, sizeof d2, "%s/mixck", tmpdir);
    snprintf(d3, sizeof d3, "%s/mixres", tmpdir);
    snprintf(base, sizeof base,
             "%s sft --model %s --data %s/data.jsonl:0.7 --data tests/fixtures/parity/qwen2/data.jsonl:0.3 --batch 4 "
             "--micro-batch 4 --lr 1e-4 --quiet --seed 11",
             test_cli, FIX, FIX);
    snprintf(cmd, sizeof cmd, "%s --steps 300 --out %s", base, d1);
    CHECK(system(cmd) == 0);
    char path[400], line[2048] = "";
    snprintf(path, sizeof path, "%s/metrics.jsonl", d1);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
    }
    if (f) fclose(f);
    const char *s = strstr(line, "\"actual\":");
    double share = s ? atof(s + 9) : -1;
    /* 1200 draws at p = 0.7: 3 standard deviations = 0.04 */
    CHECKF(fabs(share - 0.7) < 0.04, "mixture share %.4f for weight 0.7 (%s)", share, line);
    snprintf(cmd, sizeof cmd, "%s --steps 10 --overwrite --out %s", base, d1); /* the same folder again */
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s --steps 10 --save-every 5 --out %s", base, d2);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s --steps 10 --out %s --resume %s/checkpoint-5", base, d3, d2);
    CHECK(system(cmd) == 0);
    char a[400], b[400];
    snprintf(a, sizeof a, "%s/model.safetensors", d1);
    snprintf(b, sizeof b, "%s/model.safetensors", d3);
    CHECKF(same_file(a, b), "mixed run: 10 steps vs 5 + resume + 5 differ");
}

/* --loss-norm sequence: the step loss is the mean over sequences of each
 * sequence's mean token loss (checked against tuna eval of each sequence
 * alone), and micro-batching does not change the update */
static void test_sequence_norm(void) {
    char d1[300], d2[300], cmd[4096], line_path[400], out[400];
    snprintf(d1, sizeof d1, "%s/seq1", tmpdir);
    snprintf(d2, sizeof d2, "%s/seq3", tmpdir);
    const char *common = "sft --model tests/fixtures/parity/llama_gqa --data tests/fixtures/parity/llama_gqa/data.jsonl "
                         "--steps 1 --batch 3 --lr 1e-3 --no-shuffle --quiet --loss-norm sequence";
    snprintf(cmd, sizeof cmd, "%s %s --micro-batch 1 --out %s", test_cli, common, d1);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s %s --micro-batch 3 --out %s", test_cli, common, d2);
    CHECK(system(cmd) == 0);
    double worst = weights_rel_diff(d1, d2);
    CHECKF(worst < 1e-5, "sequence norm: micro-batch 1 vs 3 rel %.3g", worst);
    /* expected loss: mean of per-sequence means */
    FILE *in = fopen("tests/fixtures/parity/llama_gqa/data.jsonl", "r");
    char line[8192];
    double sum = 0;
    int nseq = 0;
    snprintf(line_path, sizeof line_path, "%s/one.jsonl", tmpdir);
    snprintf(out, sizeof out, "%s/one.json", tmpdir);
    while (in && fgets(line, sizeof line, in)) {
        FILE *o = fopen(line_path, "w");
        fputs(line, o);
        fclose(o);
        snprintf(cmd, sizeof cmd, "%s eval --model tests/fixtures/parity/llama_gqa --data %s --json > %s", test_cli, line_path, out);
        CHECK(system(cmd) == 0);
        FILE *r = fopen(out, "r");
        double l = 0;
        if (r && fscanf(r, "{\"loss\":%lf", &l) == 1) { sum += l; nseq++; }
        if (r) fclose(r);
    }
    if (in) fclose(in);
    snprintf(line_path, sizeof line_path, "%s/metrics.jsonl", d1);
    FILE *m = fopen(line_path, "r");
    double got = -1;
    if (m && fgets(line, sizeof line, m)) {
        char *s = strstr(line, "\"loss\":");
        if (s) got = atof(s + 7);
    }
    if (m) fclose(m);
    CHECKF(nseq == 3 && fabs(got - sum / nseq) < 1e-6 * (sum / nseq), "sequence-norm loss %.9g vs mean of means %.9g",
           got, sum / (nseq ? nseq : 1));
}

/* pre-training from scratch: a byte-level BPE tokenizer trained here, a tiny
 * Llama initialised at random, loss falls, and the output folder loads */
static void test_pretrain(void) {
    const char *text = test_shared_path("text/tinystories/tinystories_train_head_2MiB.txt", "pretrain on TinyStories");
    if (!text) return;
    char tok[300], cfg[300], data[300], out[300], cmd[4096];
    snprintf(tok, sizeof tok, "%s/tok", tmpdir);
    snprintf(cfg, sizeof cfg, "%s/tiny.json", tmpdir);
    snprintf(data, sizeof data, "%s/tiny.txt", tmpdir);
    snprintf(out, sizeof out, "%s/pre", tmpdir);
    snprintf(cmd, sizeof cmd, "head -c 200000 %s > %s", text, data);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s tokenizer train --data %s --vocab-size 512 --out %s >/dev/null 2>&1", test_cli, data, tok);
    CHECK(system(cmd) == 0);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":512,\"hidden_size\":64,"
               "\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
               "\"max_position_embeddings\":128,\"rms_norm_eps\":1e-5,\"tie_word_embeddings\":true}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s pretrain --config %s --tokenizer %s --data %s --out %s --seq-len 64 --batch 8 --steps 40 --quiet",
             test_cli, cfg, tok, data, out);
    CHECK(system(cmd) == 0);
    char mp[400], line[1024];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", out);
    f = fopen(mp, "r");
    double first = 0, last = 0;
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *s = strstr(line, "\"loss\":");
        if (!s) continue;
        last = atof(s + 7);
        if (!n++) first = last;
    }
    if (f) fclose(f);
    CHECKF(n == 40 && first > 5.5 && last < first - 0.4, "pretrain loss %.3f -> %.3f over %d steps", first, last, n);
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, out) == TUNA_OK);
    tuna_model_free(m);
    snprintf(mp, sizeof mp, "%s/tokenizer.json", out);
    CHECK(access(mp, F_OK) == 0);
}

static void test_nan(void) {
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, FIX) == TUNA_OK);
    if (!m) return;
    /* finite weights that overflow the forward (a NaN weight is refused at load) */
    float *w = tuna_model_find_param(m, "model.norm.weight")->data;
    for (int i = 0; i < tuna_model_config(m)->C; i++) w[i] = 1e38f;
    char d[300], out[300], err[300];
    snprintf(d, sizeof d, "%s/nanmodel", tmpdir);
    snprintf(out, sizeof out, "%s/nanout", tmpdir);
    snprintf(err, sizeof err, "%s/nan.err", tmpdir);
    CHECK(tuna_model_save(m, d, TUNA_DTYPE_F32) == TUNA_OK);
    tuna_model_free(m);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s/data.jsonl --steps 3 --batch 1 --quiet --out %s 2>%s", test_cli,
             d, FIX, out, err);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    FILE *f = fopen(err, "r");
    char line[600] = "";
    if (f) {
        if (!fgets(line, sizeof line, f)) line[0] = 0;
        fclose(f);
    }
    /* the loss overflows to a finite 3.7e37 whose gradient norm is NaN: the step is refused */
    CHECKF(strstr(line, "tuna: error: step 1: loss is ") && strstr(line, "nan; stopping (weights not updated)"),
           "message: %s", line);
}

/* 5 optimizer steps against PyTorch (AdamW, schedules, clipping, accumulation) */
static void test_sft_parity(const char *name) {
    char dir[300], path[400], cmd[4096], out[300];
    snprintf(dir, sizeof dir, "tests/fixtures/sft/%s", name);
    snprintf(path, sizeof path, "%s/args.json", dir);
    if (!test_need(path, name)) return;
    FILE *f = fopen(path, "r");
    CHECKF(f != NULL, "%s: cannot open", path);
    if (!f) return;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    /* the settings: read the few we need from args.json */
    double lr = 0, wd = 0, clip = 0, warm = 0;
    char sched[32] = "";
    const char *s;
    if ((s = strstr(buf, "\"lr\""))) sscanf(strchr(s, ':') + 1, "%lf", &lr);
    if ((s = strstr(buf, "\"weight_decay\""))) sscanf(strchr(s, ':') + 1, "%lf", &wd);
    if ((s = strstr(buf, "\"grad_clip\""))) sscanf(strchr(s, ':') + 1, "%lf", &clip);
    if ((s = strstr(buf, "\"warmup\""))) sscanf(strchr(s, ':') + 1, "%lf", &warm);
    if ((s = strstr(buf, "\"schedule\""))) sscanf(strchr(s, ':') + 1, " \"%31[a-z]\"", sched);
    snprintf(out, sizeof out, "%s/sft_%s", tmpdir, name);
    snprintf(cmd, sizeof cmd,
             "%s sft --model %s --data %s/data.jsonl --method full --out %s --steps 5 --batch 2 --micro-batch 1 "
             "--seq-len 64 --lr %.17g --schedule %s --warmup %.17g --weight-decay %.17g --grad-clip %.17g --no-shuffle "
             "--seed 0 --quiet",
             test_cli, dir, dir, out, lr, sched, warm, wd, clip);
    CHECKF(system(cmd) == 0, "%s", cmd);
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, out) == TUNA_OK);
    st_file ex;
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    CHECK(st_open(&ex, path) == TUNA_OK);
    if (!m) return;
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < tuna_model_num_params(m); i++) {
        const tuna_param *p = tuna_model_param(m, i);
        const st_tensor *t = st_find(&ex, p->name);
        CHECKF(t && t->numel == p->numel, "%s: expected tensor %s", name, p->name);
        if (!t || t->numel != p->numel) continue;
        float *want = malloc((size_t)p->numel * sizeof(float)), *got = malloc((size_t)p->numel * sizeof(float));
        st_to_f32(t, want);
        /* tuna's layout -> file layout */
        if (p->transposed)
            for (int64_t r = 0; r < p->shape[0]; r++)
                for (int64_t c = 0; c < p->shape[1]; c++) got[r * p->shape[1] + c] = p->data[c * p->shape[0] + r];
        else memcpy(got, p->data, (size_t)p->numel * sizeof(float));
        double e = rel_l2(got, want, p->numel);
        /* GPT-2's c_attn.bias key third has an exactly-zero gradient: rounding
         * noise that Adam magnifies; compare that slice in absolute terms */
        if (strstr(p->name, "c_attn.bias")) {
            int64_t C3 = p->numel / 3;
            double ea = 0;
            for (int64_t k = C3; k < 2 * C3; k++) ea = fmax(ea, fabs(got[k] - want[k]));
            CHECKF(ea < 1e-4, "%s %s key bias abs err %.3g", name, p->name, ea);
            float *g2 = got, *w2 = want;
            memcpy(g2 + C3, w2 + C3, (size_t)C3 * sizeof(float)); /* exclude from relative check */
            e = rel_l2(got, want, p->numel);
        }
        if (e > worst) { worst = e; worst_name = p->name; }
        CHECKF(e <= 1e-4, "%s: %s rel %.3g", name, p->name, e);
        free(want);
        free(got);
    }
    /* per-step losses from metrics.jsonl */
    const st_tensor *ls = st_find(&ex, "step_loss");
    float want_loss[5] = {0};
    if (ls && ls->numel == 5) st_to_f32(ls, want_loss);
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    f = fopen(path, "r");
    double worst_loss = 0;
    int steps = 0;
    while (f && fgets(buf, sizeof buf, f)) {
        int step;
        double loss;
        if (sscanf(buf, "{\"step\":%d,\"epoch\":%*[^,],\"loss\":%lf", &step, &loss) == 2 && step >= 1 && step <= 5) {
            double e = fabs(loss - want_loss[step - 1]) / fabs(want_loss[step - 1]);
            worst_loss = fmax(worst_loss, e);
            steps++;
        }
    }
    if (f) fclose(f);
    CHECK(steps == 5);
    CHECKF(worst_loss <= 1e-5, "%s: step loss rel %.3g", name, worst_loss);
    printf("%s: weights worst rel %.2g (%.0f%% of 1e-4, %s); step loss worst rel %.2g (%.0f%% of 1e-5)\n", name, worst,
           worst / 1e-4 * 100, worst_name, worst_loss, worst_loss / 1e-5 * 100);
    st_close(&ex);
    tuna_model_free(m);
}

/* The fixture's tokens as one right-padded batch (B rows of its longest). */
static int fixture_batch(const char *fix, tuna_batch *bt) {
    char data[300];
    snprintf(data, sizeof data, "%s/data.jsonl", fix);
    tuna_pretok *p = NULL;
    CHECK(tuna_pretok_load(&p, data, 0) == TUNA_OK);
    if (!p) return 0;
    int B = (int)tuna_pretok_count(p), T = tuna_pretok_max_len(p);
    int32_t *ids = calloc((size_t)B * T, 4), *lab = malloc((size_t)B * T * 4);
    for (int b = 0; b < B; b++) {
        const int32_t *si, *sl;
        int64_t len = tuna_pretok_seq(p, b, &si, &sl, NULL);
        for (int t = 0; t < T; t++) {
            ids[b * T + t] = t < len ? si[t] : 0;
            lab[b * T + t] = t < len ? sl[t] : -100;
        }
    }
    tuna_pretok_free(p);
    *bt = (tuna_batch){.B = B, .T = T, .input_ids = ids, .labels = lab};
    return 1;
}

/* One forward and backward with the first k blocks checkpointed (k = -1:
 * TUNA_MODE_TRAIN_CHECKPOINT); returns the trainable gradients' bytes in g. */
static int ckpt_grads(tuna_model *m, const tuna_batch *bt, int k, float *g) {
    tuna_status st = k < 0 ? tuna_model_prepare(m, bt->B, bt->T, TUNA_MODE_TRAIN_CHECKPOINT)
                           : tuna_model_prepare_checkpointed(m, bt->B, bt->T, k);
    CHECKF(st == TUNA_OK, "prepare with %d checkpointed blocks: %s", k, tuna_last_error());
    tuna_model_zero_grad(m);
    tuna_loss l;
    CHECK(tuna_model_forward(m, bt, &l) == TUNA_OK);
    CHECK(tuna_model_backward(m, bt, 1.0f / l.tokens) == TUNA_OK);
    int64_t n = 0;
    float *src = probe_trainable_grads(m, &n);
    memcpy(g, src, (size_t)n * 4);
    return (int)n;
}

/* Gradient checkpointing recomputes the same activations: gradients
 * identical bit for bit whatever the number of checkpointed blocks, full
 * fine-tuning and LoRA, fp32 and bf16 compute (whose rounded input a
 * recomputed block must not take from the block before), on a 4-block
 * model; each further checkpointed block (past the first, which takes the
 * shared set) frees one block's buffers. */
static void test_grad_checkpoint(const char *fix, int lora, int bf16) {
    char path[300];
    snprintf(path, sizeof path, "%s/config.json", fix);
    tuna_config c;
    tuna_model *m = NULL;
    tuna_batch bt;
    CHECK(tuna_config_load(&c, path) == TUNA_OK);
    c.L = 4;
    CHECK(tuna_model_create(&m, &c) == TUNA_OK && tuna_model_init_random(m, 7) == TUNA_OK);
    if (!m || !fixture_batch(fix, &bt)) { tuna_model_free(m); return; }
    tuna_peft_config pc;
    tuna_peft_config_default(&pc, TUNA_PEFT_LORA);
    snprintf(pc.targets, sizeof pc.targets, "all-linear");
    if (lora) CHECK(tuna_peft_attach(m, &pc, 3) == TUNA_OK);
    if (bf16) CHECK(tuna_model_set_bf16(m, 1) == 1);
    int64_t W = tuna_model_param_count(m) + (lora ? tuna_peft_num_trainable(m) : 0);
    float *g0 = malloc((size_t)W * 4), *gk = malloc((size_t)W * 4);
    int n = ckpt_grads(m, &bt, 0, g0);
    for (int k = -1; k <= c.L; k++) {
        CHECK(ckpt_grads(m, &bt, k, gk) == n);
        CHECKF(!memcmp(g0, gk, (size_t)n * 4), "%s%s%s: gradients with %d checkpointed blocks differ from none", fix,
               lora ? " lora" : "", bf16 ? " bf16" : "", k);
    }
    size_t b[6];
    for (int k = 0; k <= c.L; k++) b[k] = tuna_model_activation_bytes_checkpointed(&c, bt.B, bt.T, k);
    CHECK(b[0] == tuna_model_activation_bytes(&c, bt.B, bt.T, TUNA_MODE_TRAIN));
    CHECK(b[c.L] == tuna_model_activation_bytes(&c, bt.B, bt.T, TUNA_MODE_TRAIN_CHECKPOINT));
    CHECKF(b[1] == b[0] && b[2] < b[1], "%s: 1 checkpointed block %zu bytes, 2: %zu (none: %zu)", fix, b[1], b[2], b[0]);
    for (int k = 2; k < c.L; k++)
        CHECKF(b[k] - b[k + 1] == b[1] - b[2], "%s: block %d frees %zu bytes, block 2 %zu", fix, k + 1, b[k] - b[k + 1],
               b[1] - b[2]);
    CHECK(tuna_model_activation_bytes_checkpointed(&c, bt.B, bt.T, c.L + 1) == 0);
    CHECK(tuna_model_prepare_checkpointed(m, bt.B, bt.T, c.L + 1) == TUNA_ERR_ARG && strstr(tuna_last_error(), "4"));
    free(g0); free(gk); free((void *)bt.input_ids); free((void *)bt.labels);
    tuna_model_free(m);
}

/* peak RSS (KiB) of a child command run through /bin/sh */
static long child_maxrss_kb(const char *cmd) {
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
    return ru.ru_maxrss;
}

/* `tuna plan` predicts the peak RSS of `tuna sft` within 15%, for the test
 * fixtures (dominated by the process baseline) and for a model whose training
 * state dominates (~4M parameters, created here). In the sanitizer tier
 * (TUNA_SANITIZED) both commands still run and must succeed, but RSS is not
 * compared: ASan's shadow memory and quarantine are RSS no plan models. */
static void test_plan(void) {
    int compare_rss = getenv("TUNA_SANITIZED") == NULL;
    if (!compare_rss) printf("plan vs RSS: commands run, RSS compared in the unsanitized tier only\n");
    char cfg[400], model[400], data[400], cmd[4096], out[400];
    snprintf(cfg, sizeof cfg, "%s/mid.json", tmpdir);
    snprintf(model, sizeof model, "%s/mid", tmpdir);
    snprintf(data, sizeof data, "%s/mid.jsonl", tmpdir);
    snprintf(out, sizeof out, "%s/plan.json", tmpdir);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "{\"architectures\":[\"GPT2LMHeadModel\"],\"model_type\":\"gpt2\",\"vocab_size\":4096,\"n_embd\":256,"
               "\"n_layer\":4,\"n_head\":4,\"n_positions\":256}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s init --config %s --out %s >/dev/null", test_cli, cfg, model);
    CHECK(system(cmd) == 0);
    f = fopen(data, "w");
    tuna_rng r;
    rng_seed(&r, 5, 5);
    for (int i = 0; i < 16; i++) {
        fprintf(f, "{\"input_ids\":[");
        for (int j = 0; j < 128; j++) fprintf(f, "%s%u", j ? "," : "", rng_u32(&r) % 4096);
        fprintf(f, "]}\n");
    }
    fclose(f);
    struct { const char *dir, *data; int batch; } cases[] = {
        {"tests/fixtures/parity/gpt2", "tests/fixtures/parity/gpt2/data.jsonl", 3},
        {"tests/fixtures/parity/llama_gqa", "tests/fixtures/parity/llama_gqa/data.jsonl", 3},
        {model, data, 4},
    };
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "%s plan --model %s --batch %d --data %s --json > %s", test_cli, cases[i].dir,
                 cases[i].batch, cases[i].data, out);
        CHECK(system(cmd) == 0);
        double pred = 0;
        f = fopen(out, "r");
        char line[1024] = "";
        if (f && fgets(line, sizeof line, f)) {
            const char *s = strstr(line, "\"peak_rss_bytes\":");
            if (s) pred = atof(s + 17);
        }
        if (f) fclose(f);
        snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s --batch %d --steps 2 --quiet --overwrite --out %s/planrun", test_cli,
                 cases[i].dir, cases[i].data, cases[i].batch, tmpdir);
        long kb = child_maxrss_kb(cmd);
        CHECKF(pred > 0 && kb > 0, "plan %.0f bytes, sft peak RSS %ld KiB for %s", pred, kb, cases[i].dir);
        if (!compare_rss) continue;
        double meas = kb * 1024.0, err = fabs(pred - meas) / meas;
        printf("plan %s: predicted %.1f MiB, measured peak RSS %.1f MiB (%+.1f%%)\n", cases[i].dir, pred / 1048576,
               meas / 1048576, (pred - meas) / meas * 100);
        CHECKF(err <= 0.15, "plan off by %.1f%% for %s", err * 100, cases[i].dir);
    }
}

/* validation sequences longer than every training sequence are evaluated
 * whole: the eval loss equals tuna eval's on the same file */
static void test_val_longer_than_train(void) {
    char train[400], val[400], out[400], cmd[4096], path[600], line[4096];
    snprintf(train, sizeof train, "%s/short.jsonl", tmpdir);
    snprintf(val, sizeof val, "%s/long.jsonl", tmpdir);
    FILE *f = fopen(train, "w"), *g = fopen(val, "w");
    if (!f || !g) { CHECK(0); if (f) fclose(f); if (g) fclose(g); return; }
    fputs("{\"input_ids\":[5,6,7,8]}\n{\"input_ids\":[9,10,11,12]}\n", f);
    fputs("{\"input_ids\":[5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24]}\n", g);
    fclose(f);
    fclose(g);
    snprintf(out, sizeof out, "%s/vallong", tmpdir);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s --val %s --out %s --steps 1 --batch 2 --lr 0 --quiet", test_cli, FIX, train,
             val, out);
    CHECKF(system(cmd) == 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    double el = NAN, want = NAN;
    long long et = 0;
    f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"eval_loss\":");
        if (p) sscanf(p, "\"eval_loss\":%lf,\"eval_tokens\":%lld", &el, &et);
    }
    if (f) fclose(f);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --data %s --quiet | awk '/^loss/ { print $2 }' > %s/want.txt", test_cli, FIX, val, tmpdir);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/want.txt", tmpdir);
    f = fopen(path, "r");
    if (f) { if (fscanf(f, "%lf", &want) != 1) want = NAN; fclose(f); }
    CHECKF(et == 19 && fabs(el - want) <= 1e-5 * fabs(want), "val eval loss %.9g over %lld tokens, tuna eval %.9g", el, et, want);
}

/* a failing forward inside tuna_trainer_eval (a token id outside the
 * vocabulary) is returned, and the loss and token count are left as they were
 * rather than summed from a loss the forward never wrote */
static void test_eval_failure(void) {
    char data[300];
    snprintf(data, sizeof data, "%s/data.jsonl", FIX);
    tuna_model *m = NULL;
    tuna_pretok *p = NULL, *bad = NULL;
    tuna_trainer *t = NULL;
    CHECK(tuna_model_load(&m, FIX) == TUNA_OK);
    CHECK(tuna_pretok_load(&p, data, 0) == TUNA_OK);
    tuna_train_args a;
    tuna_train_args_default(&a);
    a.batch = a.micro_batch = 2;
    if (m && p) CHECK(tuna_trainer_create(&t, m, p, &a) == TUNA_OK);
    if (!t) { tuna_model_free(m); tuna_pretok_free(p); return; }
    /* the last sequence's second id outside the vocabulary: the last micro-batch fails */
    pretok_token v = {tuna_pretok_count(p) - 1, 1, 0, tuna_model_config(m)->V};
    bad = pretok_copy(p, NULL, pretok_set_token, &v);
    CHECK(bad != NULL);
    double loss = 123.0;
    int64_t tokens = 77;
    tuna_status st = bad ? tuna_trainer_eval(t, bad, &loss, &tokens) : TUNA_ERR_NOMEM;
    CHECKF(st == TUNA_ERR_ARG && strstr(tuna_last_error(), "vocabulary"), "eval with a bad id: status %d: %s", st,
           tuna_last_error());
    CHECKF(loss == 123.0 && tokens == 77, "failed eval wrote loss %g over %lld tokens", loss, (long long)tokens);
    CHECK(tuna_trainer_eval(t, p, &loss, &tokens) == TUNA_OK && isfinite(loss) && tokens > 0);
    tuna_pretok_free(bad);
    tuna_trainer_free(t);
    tuna_pretok_free(p);
    tuna_model_free(m);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tuna_test_train_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_schedules();
    test_plan();
    for (int lora = 0; lora <= 1; lora++) {
        for (int bf16 = 0; bf16 <= tuna_bf16_supported(); bf16++) {
            test_grad_checkpoint("tests/fixtures/parity/gpt2", lora, bf16);
            test_grad_checkpoint("tests/fixtures/parity/llama_gqa", lora, bf16);
        }
    }
    test_resume();
    test_checkpoint_discard();
    test_accumulation();
    test_packing();
    test_mixing();
    test_sequence_norm();
    test_pretrain();
    test_nan();
    test_sigint();
    test_sigkill();
    test_val_longer_than_train();
    test_eval_failure();
    const char *fx[] = {"gpt2_cosine", "llama_cosine", "gpt2_constant", "llama_constant"};
    for (int i = 0; i < 4; i++) test_sft_parity(fx[i]);
    run("rm -rf '%s'%s", tmpdir, "");
    return test_done();
}
