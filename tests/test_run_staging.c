/* test_run_staging.c — a training run never damages what its --out held
 * (src/cli/run_staging.h): runs that fail after setup (a missing
 * --general-eval file, out-of-vocabulary labels, a NaN loss, a refused
 * --resume) leave an existing --out byte for byte as it was (the same files,
 * modes and contents) and a new one absent, with no staging folder left; a
 * non-empty --out is refused without --overwrite and replaced with it; an
 * empty one is used; a resume of --out's own checkpoint goes on in place; a
 * run killed before its first result leaves --out as it was, and its
 * leftover is removed by the next run. Runs the CLI on the tiny fixture
 * model; a few seconds. Runs from the repository root. */
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "tuna.h"

static char tmpdir[256];
static const char *MODEL = "tests/fixtures/parity/llama_gqa"; /* vocabulary of 100, no tokenizer */
static const char *DATA = "tests/fixtures/parity/llama_gqa/data.jsonl";

static int run(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECKF(f != NULL, "cannot create %s", path);
    if (f) { fputs(text, f); fclose(f); }
}

/* --- a folder's snapshot: "relative-path type mode size content-hash" lines, sorted --- */
static char *snap_lines[4096];
static int snap_n, snap_root_len;

static uint64_t file_hash(const char *path) {
    uint64_t h = 1469598103934665603ULL;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int c;
    while ((c = getc(f)) != EOF) h = (h ^ (uint64_t)c) * 1099511628211ULL;
    fclose(f);
    return h;
}

static int snap_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)ftw;
    if (snap_n == 4096) return 1;
    char line[1400];
    snprintf(line, sizeof line, "%s %c %o %lld %016llx", path + snap_root_len, type == FTW_D ? 'd' : type == FTW_SL ? 'l' : 'f',
             (unsigned)sb->st_mode & 07777, (long long)(type == FTW_F ? sb->st_size : 0),
             (unsigned long long)(type == FTW_F ? file_hash(path) : 0));
    snap_lines[snap_n++] = strdup(line);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The snapshot as one string (caller frees); "" for an absent folder. */
static char *snapshot(const char *dir) {
    snap_n = 0;
    snap_root_len = (int)strlen(dir);
    nftw(dir, snap_entry, 16, FTW_PHYS);
    qsort(snap_lines, (size_t)snap_n, sizeof *snap_lines, cmp_str);
    size_t len = 1;
    for (int i = 0; i < snap_n; i++) len += strlen(snap_lines[i]) + 1;
    char *s = calloc(1, len);
    for (int i = 0; i < snap_n; i++) {
        if (s) strcat(strcat(s, snap_lines[i]), "\n");
        free(snap_lines[i]);
    }
    return s;
}

/* Staging folders (.NAME.run-*) of tmpdir/NAME left behind. */
static int leftovers(const char *name) {
    char prefix[300];
    snprintf(prefix, sizeof prefix, ".%s.run-", name);
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += !strncmp(e->d_name, prefix, strlen(prefix));
    if (d) closedir(d);
    return n;
}

/* A finished run of 3 steps in tmpdir/name (checkpoint-2, metrics, report,
 * model, train_args.json) plus a file of the user's. */
static void finished_run(const char *name, char *out, size_t n) {
    char cmd[2048], path[600];
    snprintf(out, n, "%s/%s", tmpdir, name);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s --steps 3 --batch 2 --save-every 2 --quiet --out %s", test_cli, MODEL,
             DATA, out);
    CHECKF(run(cmd) == 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/notes.txt", out);
    write_text(path, "the user's own notes\n");
}

/* A failing command (args: everything but --out; want: its exit status)
 * into a finished run's folder with --overwrite, and into a new folder. */
static void failing_run(const char *what, const char *args, int want) {
    char name[128], out[600], cmd[4096];
    snprintf(name, sizeof name, "%s_old", what);
    finished_run(name, out, sizeof out);
    char *before = snapshot(out);
    snprintf(cmd, sizeof cmd, "%s %s --overwrite --quiet --out %s 2>/dev/null", test_cli, args, out);
    int rc = run(cmd);
    CHECKF(rc == want, "%s into a finished run: exit %d, want %d", what, rc, want);
    char *after = snapshot(out);
    CHECKF(before && after && !strcmp(before, after), "%s: the finished run's folder changed:\n--- before\n%s--- after\n%s", what,
           before, after);
    CHECKF(leftovers(name) == 0, "%s: a staging folder is left", what);
    free(before);
    free(after);
    snprintf(name, sizeof name, "%s_new", what);
    snprintf(out, sizeof out, "%s/%s", tmpdir, name);
    snprintf(cmd, sizeof cmd, "%s %s --quiet --out %s 2>/dev/null", test_cli, args, out);
    rc = run(cmd);
    CHECKF(rc == want, "%s into a new folder: exit %d, want %d", what, rc, want);
    CHECKF(access(out, F_OK) != 0, "%s: the new folder %s exists after the failed run", what, out);
    CHECKF(leftovers(name) == 0, "%s: a staging folder is left", what);
}

/* MODEL with finite weights that overflow the forward (a NaN weight is refused
 * at load): the first step's gradient norm is NaN (exit 1). */
static void nan_model(char *dir, size_t n) {
    snprintf(dir, n, "%s/nanmodel", tmpdir);
    tuna_model *m = NULL;
    CHECK(tuna_model_load(&m, MODEL) == TUNA_OK);
    if (!m) return;
    float *w = tuna_model_find_param(m, "model.norm.weight")->data;
    for (int i = 0; i < tuna_model_config(m)->C; i++) w[i] = 1e38f;
    CHECK(tuna_model_save(m, dir, TUNA_DTYPE_F32) == TUNA_OK);
    tuna_model_free(m);
}

static void test_failures(void) {
    char args[2048], dir[600], data[600];
    snprintf(args, sizeof args, "sft --model %s --data %s --steps 2 --batch 2 --general-eval %s/missing.txt", MODEL, DATA, tmpdir);
    failing_run("general_eval", args, 2);
    nan_model(dir, sizeof dir);
    snprintf(args, sizeof args, "sft --model %s --data %s --steps 2 --batch 1", dir, DATA);
    failing_run("nan", args, 1);
    /* a checkpoint of another run that resume refuses (its state unreadable) */
    char other[600], cmd[2048];
    finished_run("other", other, sizeof other);
    snprintf(cmd, sizeof cmd, "%s/checkpoint-2/trainer_state.json", other);
    write_text(cmd, "not json");
    snprintf(args, sizeof args, "sft --model %s --data %s --steps 3 --batch 2 --resume %s/checkpoint-2", MODEL, DATA, other);
    failing_run("resume", args, 2);
    /* out-of-vocabulary labels in pre-tokenized records, with a tokenizer */
    const char *tokfile = test_shared_path("tokenizers/gpt2/tokenizer.json", "out-of-vocabulary labels");
    if (!tokfile) return;
    snprintf(dir, sizeof dir, "%s/tokmodel", tmpdir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/config.json %s/model.safetensors %s %s/", dir, MODEL, MODEL, tokfile, dir);
    CHECK(run(cmd) == 0);
    snprintf(data, sizeof data, "%s/oov.jsonl", tmpdir);
    write_text(data, "{\"input_ids\":[1,2,3,4],\"labels\":[1,2,500,4]}\n");
    snprintf(args, sizeof args, "sft --model %s --data %s --no-cache --steps 1 --batch 1", dir, data);
    failing_run("oov_labels", args, 2);
}

/* A resume of --out's own checkpoint that is refused leaves the folder as it
 * was (train_args.json was rewritten); an accepted one goes on in place,
 * the earlier metrics kept. */
static void test_resume_in_place(void) {
    char out[600], cmd[4096], path[700];
    finished_run("inplace", out, sizeof out);
    snprintf(path, sizeof path, "%s/checkpoint-2/trainer_state.json", out);
    FILE *f = fopen(path, "r");
    char state[4096] = "";
    size_t n = f ? fread(state, 1, sizeof state - 1, f) : 0;
    state[n] = '\0';
    if (f) fclose(f);
    write_text(path, "not json");
    char *before = snapshot(out);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s --steps 4 --batch 2 --quiet --out %s --resume %s/checkpoint-2 2>/dev/null",
             test_cli, MODEL, DATA, out, out);
    CHECKF(run(cmd) == 2, "a resume of a broken checkpoint of its own folder is refused");
    char *after = snapshot(out);
    CHECKF(before && after && !strcmp(before, after), "a refused resume changed its folder:\n--- before\n%s--- after\n%s", before,
           after);
    free(before);
    free(after);
    write_text(path, state);
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    char first[1024] = "", line[1024] = "";
    f = fopen(path, "r");
    if (f && !fgets(first, sizeof first, f)) first[0] = '\0';
    if (f) fclose(f);
    CHECKF(run(cmd) == 0, "%s", cmd);
    f = fopen(path, "r");
    int lines = 0, same_first = 0;
    while (f && fgets(line, sizeof line, f)) same_first |= lines++ == 0 && !strcmp(line, first);
    if (f) fclose(f);
    CHECKF(first[0] && same_first && lines == 5, "metrics.jsonl after the resume: %d lines, the first %s (want 3 + 2, kept)", lines,
           same_first ? "kept" : "changed");
    CHECK(leftovers("inplace") == 0);
}

/* A resume from another folder's checkpoint, taken after validation saved
 * the best weights there: the new --out gets weights of its own (the run
 * took the best as already saved: no weights, or with staging no --out). */
static void test_resume_elsewhere(void) {
    char a[600], b[600], val[600], cmd[4096], path[700];
    snprintf(a, sizeof a, "%s/validated", tmpdir);
    snprintf(b, sizeof b, "%s/continued", tmpdir);
    snprintf(val, sizeof val, "%s/val.jsonl", tmpdir);
    write_text(val, "{\"input_ids\":[5,6,7,8,9,10,11,12]}\n{\"input_ids\":[13,14,15,16,17,18,19,20]}\n");
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s --val %s --eval-every 2 --save-every 2 --steps 4 --batch 2 --quiet --out %s",
             test_cli, MODEL, DATA, val, a);
    CHECKF(run(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s --val %s --eval-every 2 --steps 2 --batch 2 --quiet --out %s --resume %s/checkpoint-2",
             test_cli, MODEL, DATA, val, b, a);
    CHECKF(run(cmd) == 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/model.safetensors", b);
    CHECKF(access(path, F_OK) == 0, "no %s after a resume from another folder's checkpoint", path);
}

/* Non-empty --out: refused without --overwrite (one line naming it, exit 2,
 * untouched), replaced with it; an empty folder is used; a file refused. */
static void test_non_empty(void) {
    char out[600], cmd[4096], err[700], path[700];
    finished_run("taken", out, sizeof out);
    char *before = snapshot(out);
    snprintf(err, sizeof err, "%s/taken.err", tmpdir);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s --steps 1 --batch 2 --quiet --out %s 2>%s", test_cli, MODEL, DATA, out,
             err);
    CHECKF(run(cmd) == 2, "a non-empty --out without --overwrite is refused with exit 2");
    char *after = snapshot(out);
    CHECKF(before && after && !strcmp(before, after), "the refused run changed %s", out);
    free(before);
    free(after);
    FILE *f = fopen(err, "r");
    char line[2048] = "", more[64];
    if (f && !fgets(line, sizeof line, f)) line[0] = '\0';
    int one_line = f && !fgets(more, sizeof more, f);
    if (f) fclose(f);
    CHECKF(strstr(line, "tuna: error: --out ") && strstr(line, out) && strstr(line, "--overwrite") && one_line,
           "the refusal is one line naming the folder and --overwrite: %s", line);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s --steps 1 --batch 2 --quiet --overwrite --out %s", test_cli, MODEL, DATA, out);
    CHECKF(run(cmd) == 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/notes.txt", out);
    CHECKF(access(path, F_OK) != 0, "--overwrite kept an old file");
    snprintf(path, sizeof path, "%s/checkpoint-2", out);
    CHECKF(access(path, F_OK) != 0, "--overwrite kept an old checkpoint");
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    CHECKF(access(path, F_OK) == 0, "no model after --overwrite");
    CHECK(leftovers("taken") == 0);
    snprintf(out, sizeof out, "%s/empty", tmpdir);
    CHECK(mkdir(out, 0755) == 0);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s --steps 1 --batch 2 --quiet --out %s", test_cli, MODEL, DATA, out);
    CHECKF(run(cmd) == 0, "an empty --out is used: %s", cmd);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    CHECKF(access(path, F_OK) == 0, "no model in the empty folder given");
    snprintf(out, sizeof out, "%s/afile", tmpdir);
    write_text(out, "mine\n");
    before = snapshot(out);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s --steps 1 --batch 2 --quiet --overwrite --out %s 2>/dev/null", test_cli,
             MODEL, DATA, out);
    CHECKF(run(cmd) == 2, "a file as --out is refused");
    after = snapshot(out);
    CHECKF(before && after && !strcmp(before, after), "the file given as --out changed: %s", after);
    free(before);
    free(after);
}

/* SIGKILL before the first result: --out as it was; the next run removes the
 * leftover staging folder (a notice) and replaces --out. */
static void test_kill(void) {
    char out[600], stage[700], mpath[800], err[700], cmd[4096];
    finished_run("killed", out, sizeof out);
    char *before = snapshot(out);
    const char *args[] = {test_cli, "sft", "--model", MODEL, "--data", DATA, "--steps", "100000", "--batch", "1", "--quiet",
                          "--overwrite", "--out", out, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        execv(args[0], (char *const *)args);
        _exit(127);
    }
    snprintf(stage, sizeof stage, "%s/.killed.run-%ld", tmpdir, (long)pid);
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", stage);
    struct stat sb;
    for (int i = 0; i < 500 && !(stat(mpath, &sb) == 0 && sb.st_size > 0); i++) usleep(20000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECKF(stat(mpath, &sb) == 0 && sb.st_size > 0, "the run wrote no metrics in its staging folder %s", stage);
    char *after = snapshot(out);
    CHECKF(before && after && !strcmp(before, after), "a run killed before its first result changed %s", out);
    free(before);
    free(after);
    snprintf(err, sizeof err, "%s/killed.err", tmpdir);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s --steps 1 --batch 2 --quiet --overwrite --out %s 2>%s", test_cli, MODEL,
             DATA, out, err);
    CHECKF(run(cmd) == 0, "%s", cmd);
    CHECKF(access(stage, F_OK) != 0 && leftovers("killed") == 0, "the killed run's staging folder %s is left", stage);
    FILE *f = fopen(err, "r");
    char line[2048] = "";
    if (f && !fgets(line, sizeof line, f)) line[0] = '\0';
    if (f) fclose(f);
    CHECKF(strstr(line, "tuna: notice: removing ") && strstr(line, stage), "no notice naming the leftover: %s", line);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (!test_need_cli("tuna CLI")) return test_done();
    if (test_tmpdir(tmpdir, sizeof tmpdir, "run_staging") != 0) return 1;
    test_failures();
    test_resume_in_place();
    test_resume_elsewhere();
    test_non_empty();
    test_kill();
    test_rmdir(tmpdir);
    return test_done();
}
