/* check.h — the minimal test harness shared by tests/test_*.c.
 * Each CHECK counts a pass or a failure (printing file:line and the
 * expression); test_done() prints "RESULT p f s" for scripts/run_tests.sh and
 * returns the exit status. Nothing a test needs from this repository (a
 * committed fixture, the shipped model, the CLI built beside the tests) is
 * optional: test_need() fails naming what is missing. What may be absent on
 * a developer's machine (the shared data folder, test_shared_path(); an MPI
 * build) goes through test_absent(): outside CI a visible SKIP line, under
 * CI=true a failure. */
#ifndef TUNA_TEST_CHECK_H
#define TUNA_TEST_CHECK_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int check_passed, check_failed, check_skipped;

#define CHECK(cond) do { if (cond) check_passed++; else { check_failed++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECKF(cond, ...) do { if (cond) check_passed++; else { check_failed++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* Under CI (the environment variable CI set, as CI services do, and not
 * "false" or "0") nothing may be skipped. */
static inline int test_in_ci(void) {
    const char *ci = getenv("CI");
    return ci && *ci && strcmp(ci, "false") != 0 && strcmp(ci, "0") != 0;
}

/* 1 when path exists; otherwise a failure with one line naming it. */
static inline int test_need(const char *path, const char *what) {
    struct stat st;
    if (stat(path, &st) == 0) return 1;
    check_failed++;
    fprintf(stderr, "FAIL %s: %s is missing (committed or built with the tests)\n", what, path);
    return 0;
}

/* Something outside this repository is absent (detail names it): a SKIP line
 * outside CI, a failure under CI. */
static inline void test_absent(const char *what, const char *detail) {
    if (test_in_ci()) {
        check_failed++;
        fprintf(stderr, "FAIL %s: %s (required under CI=true)\n", what, detail);
    } else {
        check_skipped++;
        printf("SKIP %s: %s\n", what, detail);
    }
}

/* Path of a file under the shared data folder (../shared/data by default, or
 * $TUNA_SHARED_DATA), or NULL when it does not exist (test_absent). */
static inline const char *test_shared_path(const char *rel, const char *what) {
    static char buf[8][1024];
    static int slot;
    const char *root = getenv("TUNA_SHARED_DATA");
    if (!root) root = "../shared/data";
    char *p = buf[slot++ % 8];
    snprintf(p, 1024, "%s/%s", root, rel);
    struct stat st;
    if (stat(p, &st) == 0) return p;
    char detail[1100];
    snprintf(detail, sizeof detail, "shared data %s not found", p);
    test_absent(what, detail);
    return NULL;
}

/* The tuna CLI built beside this test program: <build>/tests/x -> <build>/tuna,
 * so the sanitizer tier runs the sanitized CLI. */
static char test_cli[1024] = "tuna";
static inline void test_set_cli(const char *argv0) {
    const char *slash = strrchr(argv0, '/');
    if (!slash) return; /* found through PATH: so is tuna */
    snprintf(test_cli, sizeof test_cli, "%.*s/../tuna", (int)(slash - argv0), argv0);
}

/* 1 when the CLI is built beside this test; otherwise a failure naming it. */
static inline int test_need_cli(const char *what) { return test_need(test_cli, what); }

/* A fresh folder $TMPDIR/tuna_test_NAME_XXXXXX (or under /tmp) in dir
 * (n bytes): 0, or -1 after printing why. test_rmdir removes it again
 * (unless KEEP is set). */
static inline int test_tmpdir(char *dir, size_t n, const char *name) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, n, "%s/tuna_test_%s_XXXXXX", base && *base ? base : "/tmp", name);
    if (mkdtemp(dir)) return 0;
    perror(dir);
    return -1;
}
static inline void test_rmdir(const char *dir) {
    const char *keep = getenv("KEEP");
    if (keep && *keep) return;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static inline int test_done(void) {
    printf("RESULT %d %d %d\n", check_passed, check_failed, check_skipped);
    return check_failed ? 1 : 0;
}

/* Relative L2 error ||a-b|| / max(||b||, tiny). */
static inline double rel_l2(const float *a, const float *b, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num) / (sqrt(den) > 1e-30 ? sqrt(den) : 1e-30);
}
#endif
