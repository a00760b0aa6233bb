/* check.h — the minimal test harness shared by tests/test_*.c.
 * Each CHECK counts a pass or a failure (printing file:line and the
 * expression); test_done() prints "RESULT p f s" for scripts/run_tests.sh and
 * returns the exit status. Tests needing ../shared call test_shared_path(),
 * which returns NULL (and records a visible SKIP) when it is absent. */
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

static inline void test_skip(const char *what, const char *why) {
    check_skipped++;
    printf("SKIP %s: %s\n", what, why);
}

/* Path of a file under the shared data folder (../shared/data by default, or
 * $TUNA_SHARED_DATA), or NULL with a SKIP line when it does not exist. */
static inline const char *test_shared_path(const char *rel, const char *what) {
    static char buf[8][1024];
    static int slot;
    const char *root = getenv("TUNA_SHARED_DATA");
    if (!root) root = "../shared/data";
    char *p = buf[slot++ % 8];
    snprintf(p, 1024, "%s/%s", root, rel);
    struct stat st;
    if (stat(p, &st) != 0) {
        char why[1200];
        snprintf(why, sizeof why, "%s not found (shared data absent)", p);
        test_skip(what, why);
        return NULL;
    }
    return p;
}

/* The tuna CLI built beside this test program: <build>/tests/x -> <build>/tuna,
 * so the sanitizer tier runs the sanitized CLI. */
static char test_cli[1024] = "build/tuna";
static inline void test_set_cli(const char *argv0) {
    const char *slash = strrchr(argv0, '/');
    if (!slash) return;
    snprintf(test_cli, sizeof test_cli, "%.*s/../tuna", (int)(slash - argv0), argv0);
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
