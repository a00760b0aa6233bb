/* test_mpi.c — data-parallel training over Open MPI, end to end through the
 * CLI: `mpirun -np 2 tuna sft` must end with the weights of one process
 * training on the same global batches (full fine-tuning and LoRA, 5 steps,
 * within 1e-6 relative per tensor), resume from a 2-rank checkpoint with one
 * process, and a job whose rank is killed must end non-zero within a bounded
 * time instead of hanging, a rank's error ends the job with the CLI's exit
 * code, and a usage error found after joining the job leaves it properly
 * (MPI finalized on every rank). Without mpirun or an MPI build: a visible
 * SKIP, a failure under CI=true. In the sanitizer tier the ranks are
 * sanitized too; LeakSanitizer is told (tests/lsan_openmpi.supp) that Open
 * MPI's own allocations, still held at exit, are not ours. */
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "io/safetensors.h"
#include "tuna_dist.h"

#define FIX "tests/fixtures/parity/llama_gqa"
/* LSAN_OPTIONS (set in main) reaches every rank */
#define MPIRUN_OPTS "mpirun --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 -x LSAN_OPTIONS"
#define MPIRUN MPIRUN_OPTS " -np 2"

static char tmpdir[256];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int run(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* the first line of `sh -c cmd`'s output (empty if none) */
static void first_line(const char *cmd, char *out, size_t n) {
    out[0] = 0;
    FILE *p = popen(cmd, "r");
    if (p && fgets(out, (int)n, p)) out[strcspn(out, "\n")] = 0;
    if (p) pclose(p);
}

/* occurrences of TEXT in FILE (two ranks' lines can share a line of mpirun's
 * output when they arrive at once) */
static int count_lines(const char *file, const char *text) {
    char cmd[1024], line[64];
    snprintf(cmd, sizeof cmd, "grep -oF -- '%s' %s | wc -l", text, file);
    first_line(cmd, line, sizeof line);
    return atoi(line);
}

/* worst per-tensor relative L2 difference between two safetensors files (-1: unreadable / different tensors) */
static double compare_files(const char *a, const char *b, char *worst_name, size_t wn) {
    st_file fa, fb;
    if (st_open(&fa, a) != TUNA_OK) return -1;
    if (st_open(&fb, b) != TUNA_OK) { st_close(&fa); return -1; }
    double worst = fa.n_tensors == fb.n_tensors && fa.n_tensors > 0 ? 0 : -1;
    for (int i = 0; worst >= 0 && i < fa.n_tensors; i++) {
        const st_tensor *x = &fa.tensors[i], *y = st_find(&fb, x->name);
        if (!y || y->numel != x->numel) { worst = -1; break; }
        float *u = malloc((size_t)x->numel * sizeof(float)), *v = malloc((size_t)x->numel * sizeof(float));
        if (u && v && st_to_f32(x, u) == TUNA_OK && st_to_f32(y, v) == TUNA_OK) {
            double e = rel_l2(u, v, x->numel);
            if (e > worst) { worst = e; snprintf(worst_name, wn, "%s", x->name); }
        } else worst = -1;
        free(u);
        free(v);
    }
    st_close(&fa);
    st_close(&fb);
    return worst;
}

/* `tuna ARGS --out DIR` in one process and under mpirun -np 2: FILE in the two outputs must agree */
static void equivalence(const char *what, const char *args, const char *file) {
    char cmd[4096], one[512], two[512], name[200] = "", slug[64];
    size_t k = 0;
    for (const char *c = what; *c && k + 1 < sizeof slug; c++) slug[k++] = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ? *c : '_';
    slug[k] = 0;
    snprintf(one, sizeof one, "%s/%s-1", tmpdir, slug);
    snprintf(two, sizeof two, "%s/%s-2", tmpdir, slug);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s %s --out %s --quiet", test_cli, args, one);
    CHECKF(run(cmd) == 0, "%s: one process", what);
    snprintf(cmd, sizeof cmd, "%s %s %s --out %s > %s/%s.log 2>&1", MPIRUN, test_cli, args, two, tmpdir, slug);
    CHECKF(run(cmd) == 0, "%s: mpirun -np 2 (log %s/%s.log)", what, tmpdir, slug);
    char fa[600], fb[600];
    snprintf(fa, sizeof fa, "%s/%s", one, file);
    snprintf(fb, sizeof fb, "%s/%s", two, file);
    double e = compare_files(fa, fb, name, sizeof name);
    CHECKF(e >= 0 && e <= 1e-6, "%s: 2 ranks vs 1 process: worst tensor rel %.3g (%s)", what, e, name);
    printf("%s: 2 ranks vs 1 process, worst tensor rel L2 %.2g (%s)\n", what, e, name);
}

/* a checkpoint written by 2 ranks resumes in one process to the same end */
static void resume_across_rank_counts(void) {
    char cmd[4096], a[512], b[512], name[200] = "";
    snprintf(a, sizeof a, "%s/res-straight", tmpdir);
    snprintf(b, sizeof b, "%s/res-split", tmpdir);
    const char *common = "--steps 6 --batch 4 --micro-batch 2 --lr 1e-3 --quiet";
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s sft --model %s --data %s/data.jsonl --out %s %s", test_cli, FIX, FIX, a, common);
    CHECK(run(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s %s sft --model %s --data %s/data.jsonl --out %s %s --save-every 3 > %s/res.log 2>&1", MPIRUN, test_cli, FIX,
             FIX, b, common, tmpdir);
    CHECK(run(cmd) == 0);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s sft --model %s --data %s/data.jsonl --out %s %s --resume %s/checkpoint-3", test_cli, FIX,
             FIX, b, common, b);
    CHECKF(run(cmd) == 0, "one process resumes the 2-rank checkpoint-3");
    char fa[600], fb[600];
    snprintf(fa, sizeof fa, "%s/model.safetensors", a);
    snprintf(fb, sizeof fb, "%s/model.safetensors", b);
    double e = compare_files(fa, fb, name, sizeof name);
    CHECKF(e >= 0 && e <= 1e-6, "2 ranks to step 3, then 1 process to step 6 vs 1 process throughout: rel %.3g (%s)", e, name);
}

/* SIGKILL one rank mid-run: mpirun must end non-zero, promptly */
static void killed_rank(void) {
    char out[512], cmd[4096];
    snprintf(out, sizeof out, "%s/killed", tmpdir);
    snprintf(cmd, sizeof cmd, "exec %s %s sft --model %s --data %s/data.jsonl --out %s --steps 1000000 --batch 4 --micro-batch 1 --save-every 5 --quiet > %s/killed.log 2>&1",
             MPIRUN, test_cli, FIX, FIX, out, tmpdir);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    CHECK(pid > 0);
    if (pid <= 0) return;
    /* wait until both ranks run: processes whose command starts with the tuna
     * binary (not mpirun, not this shell pipeline) and name this output */
    char find[700];
    snprintf(find, sizeof find, "pgrep -f -- '^[^ ]*tuna sft .*--out %s ' | sort -n | tr '\\n' ' '", out);
    pid_t victim = 0;
    for (int i = 0; i < 100 && !victim; i++) {
        usleep(100000);
        FILE *p = popen(find, "r");
        int a = 0, b = 0;
        if (p && fscanf(p, "%d %d", &a, &b) == 2) victim = b;
        if (p) pclose(p);
    }
    CHECKF(victim > 0, "both ranks started");
    /* kill it once it has written a checkpoint (rank 0 writes them) */
    char ck[700];
    snprintf(ck, sizeof ck, "%s/checkpoint-5", out);
    struct stat sb;
    for (double t0 = now_s(); stat(ck, &sb) != 0 && now_s() - t0 < 120;) usleep(50000);
    usleep(200000);
    if (victim > 0) kill(victim, SIGKILL);
    double t0 = now_s();
    int status = 0, done = 0;
    while (now_s() - t0 < 30) {
        if (waitpid(pid, &status, WNOHANG) == pid) { done = 1; break; }
        usleep(50000);
    }
    double waited = now_s() - t0;
    if (!done) {
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    CHECKF(done, "the job ended within 30 s of a rank being killed (waited %.1f s)", waited);
    CHECKF(done && !(WIFEXITED(status) && WEXITSTATUS(status) == 0), "the job's exit status is non-zero");
    printf("killed rank: mpirun ended after %.2f s with status %d\n", waited, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    /* the last checkpoint written before the kill is complete: one process resumes from it */
    char last[700] = "";
    snprintf(cmd, sizeof cmd, "ls -d %s/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1", out);
    first_line(cmd, last, sizeof last);
    const char *dash = strrchr(last, '-');
    int step = dash ? atoi(dash + 1) : 0;
    CHECKF(step > 0, "a checkpoint was written before the kill");
    if (step > 0) {
        snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s sft --model %s --data %s/data.jsonl --out %s/after-kill --steps %d --batch 4 --micro-batch 1 --quiet --resume %s",
                 test_cli, FIX, FIX, tmpdir, step + 2, last);
        CHECKF(run(cmd) == 0, "resuming from %s after the kill", last);
    }
}

/* a usage error that every rank finds after joining the job: exit 2, the
 * CLI's code, and each rank finalizes MPI on its way out. The finalize is
 * seen in Open MPI's verbose log of its point-to-point layer (PML): the
 * component selected at MPI_Init is closed by MPI_Finalize only. */
static void usage_error_after_join(void) {
    char cmd[4096], log[600], pml[64], text[128];
    const char *bad = "--batch 3 --micro-batch 2"; /* not a multiple: refused after tuna_dist_init */
    snprintf(cmd, sizeof cmd, "%s %s sft --model %s --data %s/data.jsonl --out %s/usage %s > %s/usage.log 2>&1", MPIRUN, test_cli, FIX, FIX,
             tmpdir, bad, tmpdir);
    int rc = run(cmd);
    CHECKF(rc == 2, "usage error in both ranks: the job's exit code is the CLI's 2 (got %d)", rc);
    snprintf(log, sizeof log, "%s/usage-verbose.log", tmpdir);
    snprintf(cmd, sizeof cmd, "%s --mca pml_base_verbose 10 --mca orte_abort_on_non_zero_status 0 %s sft --model %s --data %s/data.jsonl "
             "--out %s/usage %s > %s 2>&1", MPIRUN, test_cli, FIX, FIX, tmpdir, bad, log);
    run(cmd);
    int reported = count_lines(log, "is not a multiple of --micro-batch");
    CHECKF(reported == 2, "both ranks report the usage error: %d times (log %s)", reported, log);
    if (reported != 2) {
        snprintf(cmd, sizeof cmd, "grep -v 'mca:' %s | head -20 >&2", log);
        run(cmd);
    }
    snprintf(cmd, sizeof cmd, "grep -o 'select: component [a-z0-9_]* selected' %s | head -1 | cut -d' ' -f3", log);
    first_line(cmd, pml, sizeof pml);
    CHECKF(pml[0], "Open MPI's verbose log names the selected PML component (log %s)", log);
    if (!pml[0]) return;
    snprintf(text, sizeof text, "close: component %s closed", pml);
    int closed = count_lines(log, text);
    CHECKF(closed == 2, "both ranks finalize MPI after the usage error: %d of 2 closed PML component %s (log %s)", closed, pml, log);
}

/* one rank fails with an error (its data file is missing; MPMD launch):
 * it aborts the job, the other rank does not wait forever */
static void failing_rank(void) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "timeout 60 " MPIRUN_OPTS " "
             "-np 1 %s sft --model %s --data %s/data.jsonl --out %s/fail --steps 100000 --batch 4 --quiet : "
             "-np 1 %s sft --model %s --data %s/missing.jsonl --out %s/fail --steps 100000 --batch 4 --quiet > %s/fail.log 2>&1",
             test_cli, FIX, FIX, tmpdir, test_cli, FIX, FIX, tmpdir, tmpdir);
    double t0 = now_s();
    int rc = run(cmd);
    double dt = now_s() - t0;
    /* exit 2: the CLI's code for an unreadable input, passed to MPI_Abort */
    CHECKF(rc == 2 && dt < 30, "a rank's error ends the job with the CLI's exit code 2: exit %d after %.1f s", rc, dt);
    snprintf(cmd, sizeof cmd, "grep -q 'missing.jsonl: cannot open' %s/fail.log", tmpdir);
    CHECKF(run(cmd) == 0, "the failing rank's error line is in the job's output");
    printf("failing rank: the job ended after %.2f s with exit %d\n", dt, rc);
}

/* LSAN_OPTIONS for every tuna process the test starts (only a sanitized build
 * reads it): Open MPI's libraries keep allocations until exit by design.
 * Their code has no frame pointers, so the fast unwinder would stop at the
 * first frame inside a plugin Open MPI has unloaded by then, leaving nothing
 * to match; the slow unwinder records the whole stack at malloc time. */
static int leak_suppressions(void) {
    const char *supp = "tests/lsan_openmpi.supp";
    char abs[PATH_MAX], opts[PATH_MAX + 96];
    if (!test_need(supp, "LeakSanitizer suppressions for Open MPI")) return 0;
    int ok = realpath(supp, abs) != NULL;
    if (ok) {
        snprintf(opts, sizeof opts, "suppressions=%s:print_suppressions=0:fast_unwind_on_malloc=0", abs);
        ok = setenv("LSAN_OPTIONS", opts, 1) == 0;
    }
    CHECKF(ok, "LSAN_OPTIONS with %s", supp);
    return ok;
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (!tuna_dist_available() || run("command -v mpirun > /dev/null") != 0) {
        test_absent("data-parallel training", "this build has no MPI, or mpirun is not installed (libopenmpi-dev, openmpi-bin)");
        return test_done();
    }
    if (!leak_suppressions()) return test_done();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tuna_test_mpi_XXXXXX");
    if (!mkdtemp(tmpdir)) { CHECK(0); return test_done(); }
    const char *sft = "sft --model " FIX " --data " FIX "/data.jsonl --steps 5 --batch 4 --micro-batch 1 --lr 1e-3";
    char args[1024];
    equivalence("sft full, 5 steps", sft, "model.safetensors");
    snprintf(args, sizeof args, "%s --method lora --lora-r 4 --lora-targets all-linear", sft);
    equivalence("sft lora, 5 steps", args, "adapter_model.safetensors");
    /* each rank draws the dropout masks one process draws for its rows */
    snprintf(args, sizeof args, "%s --method lora --lora-r 4 --lora-targets all-linear --lora-dropout 0.3", sft);
    equivalence("sft lora dropout 0.3, 5 steps", args, "adapter_model.safetensors");
    equivalence("sft full, --loss-norm sequence", "sft --model " FIX " --data " FIX "/data.jsonl --steps 3 --batch 4 --micro-batch 2 --loss-norm sequence",
                "model.safetensors");
    equivalence("dpo full sigmoid, 3 steps", "dpo --model " FIX " --data tests/fixtures/dpo/full_sigmoid/data.jsonl --method full --steps 3 --batch 2 "
                "--micro-batch 1 --seq-len 64 --lr 1e-3", "model.safetensors");
    equivalence("dpo lora ipo, 3 steps", "dpo --model " FIX " --data tests/fixtures/dpo/full_sigmoid/data.jsonl --method lora --loss ipo --steps 3 "
                "--batch 2 --micro-batch 1 --seq-len 64 --lr 1e-3", "adapter_model.safetensors");
    /* ORPO: the chosen NLL normalised by the whole step's chosen tokens on every rank */
    equivalence("dpo full orpo, 3 steps", "dpo --model " FIX " --data tests/fixtures/pref/orpo_full/data.jsonl --method full --loss orpo "
                "--steps 3 --batch 2 --micro-batch 1 --seq-len 64 --lr 1e-3", "model.safetensors");
    /* the bucketed sums started during backward are really in use, and give the same as one sum after it */
    char line[512] = "", cmd[4096];
    snprintf(cmd, sizeof cmd, "grep -h 'data-parallel' %s/sft_full__5_steps.log", tmpdir);
    FILE *p = popen(cmd, "r");
    if (p && !fgets(line, sizeof line, p)) line[0] = 0;
    if (p) pclose(p);
    CHECKF(strstr(line, "block by block during backward") != NULL, "the 2-rank run overlaps its sums with backward: %s", line);
    snprintf(cmd, sizeof cmd, "%s -x TUNA_NO_OVERLAP=1 %s %s --out %s/no-overlap > %s/no-overlap.log 2>&1", MPIRUN, test_cli, sft, tmpdir, tmpdir);
    CHECK(run(cmd) == 0);
    snprintf(cmd, sizeof cmd, "grep -q 'summed after backward' %s/no-overlap.log", tmpdir);
    CHECKF(run(cmd) == 0, "TUNA_NO_OVERLAP=1 sums after backward");
    char fa[600], fb[600], name[200] = "";
    snprintf(fa, sizeof fa, "%s/no-overlap/model.safetensors", tmpdir);
    snprintf(fb, sizeof fb, "%s/sft_full__5_steps-2/model.safetensors", tmpdir);
    double e = compare_files(fa, fb, name, sizeof name);
    CHECKF(e >= 0 && e <= 1e-6, "sums during backward vs one sum after it: rel %.3g (%s)", e, name);
    resume_across_rank_counts();
    killed_rank();
    failing_rank();
    usage_error_after_join();
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (!check_failed) run(cmd);
    return test_done();
}
