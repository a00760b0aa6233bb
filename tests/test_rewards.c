/* test_rewards.c — GRPO's reward functions (src/train/rewards.c,
 * reward_cmd.c): every built-in on hand cases (unicode, bad JSON), spec
 * parsing (weights, names, malformed specs), weighted sums, and outside
 * programs written here into a temporary folder: a good one, one exiting 3,
 * one printing "abc", one printing too few lines, one sleeping past a 1 s
 * timeout (with a background child, killed with its group), one that never
 * reads a large input (SIGPIPE must not end this process), one answering
 * while its large input is still being written (no deadlock), and one saving
 * what it reads to prove the JSONL (quotes, newlines, control bytes,
 * unicode, a stray byte). After each program no child is left unreaped. */
#include <errno.h>
#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/clock.h"
#include "train/reward_cmd.h"
#include "train/rewards.h"

static char dir[512];

/* one function's values on n completions (refs may be NULL) */
static tuna_status score1(const char *spec, int n, const char *const *c, const char *const *refs, double *v) {
    grpo_rewards *r;
    grpo_rewards_new(&r);
    tuna_status s = grpo_rewards_add(r, spec);
    const char *prompts[16] = {0};
    for (int i = 0; i < n; i++) prompts[i] = "P";
    if (s == TUNA_OK) s = grpo_rewards_score(r, n, prompts, c, refs, NULL, v);
    grpo_rewards_free(r);
    return s;
}

static int err_has(const char *what) {
    const char *e = tuna_last_error();
    int ok = e && strstr(e, what);
    if (!ok) fprintf(stderr, "  error was: %s\n  wanted: %s\n", e ? e : "(none)", what);
    return ok;
}

static void test_json(void) {
    const char *c[] = {"{\"a\":1}", " [1, 2]\n", "\"str\"", "{\"a\":", "Sure! {\"a\":1}", "{\"名前\":\"ü🙂\"}"};
    double v[6], want[6] = {1, 1, 0, 0, 0, 1};
    CHECK(score1("json_valid", 6, c, NULL, v) == TUNA_OK);
    for (int i = 0; i < 6; i++) CHECKF(v[i] == want[i], "json_valid of '%s': %g", c[i], v[i]);

    const char *ref = "{\"who\":\"Zoë\",\"animal\":\"cat\",\"where\":\"park\",\"age\":3}";
    const char *p[] = {"{\"who\":\"Zoë\",\"animal\":\"cat\",\"where\":\"park\",\"age\":3.0}",
                       "{\"who\":\"Zoe\",\"animal\":\"cat\",\"where\":\"park\",\"age\":3}",
                       "{\"animal\":\"cat\", \"extra\": 1}", "who: Zoë, animal: cat", "{\"who\":\"Zoë\",", "[\"Zoë\"]"};
    const char *refs[] = {ref, ref, ref, ref, ref, ref};
    double f[6], fwant[6] = {1, 0.75, 0.25, 0, 0, 0};
    CHECK(score1("json_fields", 6, p, refs, f) == TUNA_OK);
    for (int i = 0; i < 6; i++) CHECKF(fabs(f[i] - fwant[i]) < 1e-12, "json_fields of '%s': %g, want %g", p[i], f[i], fwant[i]);

    const char *badref[] = {ref, "not json"};
    CHECK(score1("json_fields", 2, p, badref, f) == TUNA_ERR_FORMAT && err_has("reward json_fields, completion 2"));
    const char *noref[] = {ref, NULL};
    CHECK(score1("json_fields", 2, p, noref, f) == TUNA_ERR_ARG && err_has("completion 2 has none"));
    CHECK(score1("json_fields", 2, p, NULL, f) == TUNA_ERR_ARG && err_has("completion 1 has none"));
}

static void test_text(void) {
    const char *c[] = {"  hello   world \n", "Hello world", "so: hello world!", "hello"};
    const char *refs[] = {"hello world", "hello world", "hello  world", "hello world"};
    double e[4], k[4], we[4] = {1, 0, 0, 0}, wk[4] = {1, 0, 1, 0};
    CHECK(score1("exact", 4, c, refs, e) == TUNA_OK);
    CHECK(score1("contains", 4, c, refs, k) == TUNA_OK);
    for (int i = 0; i < 4; i++) CHECKF(e[i] == we[i] && k[i] == wk[i], "'%s': exact %g contains %g", c[i], e[i], k[i]);

    const char *u[] = {"ééé", "e", "\xff\xfe", "{\"a\":1}", "x{"};
    double r[5], wr[5] = {1, 0, 0, 0, 0}, b[5], wb[5] = {0, 0, 0, 1, 0};
    CHECK(score1("regex:^é+$", 5, u, NULL, r) == TUNA_OK);
    CHECK(score1("regex:^\\{", 5, u, NULL, b) == TUNA_OK);
    for (int i = 0; i < 5; i++) CHECKF(r[i] == wr[i] && b[i] == wb[i], "regex on completion %d: %g %g", i, r[i], b[i]);
    CHECK(score1("regex:(ab", 1, u, NULL, r) == TUNA_ERR_ARG && err_has("reward 'regex:(ab': the pattern does not compile"));

    /* characters are code points: "héllo" is 5 (6 bytes), "日本語" 3 (9 bytes); a stray byte counts as one */
    const char *l[] = {"héllo", "héllo!", "ab", "日本語", "ab\xff", ""};
    double len[6], wl[6] = {1, 0, 0, 1, 1, 0};
    CHECK(score1("length:3-5", 6, l, NULL, len) == TUNA_OK);
    for (int i = 0; i < 6; i++) CHECKF(len[i] == wl[i], "length:3-5 of '%s': %g", l[i], len[i]);
    CHECK(score1("length:0-0", 1, l + 5, NULL, len) == TUNA_OK && len[0] == 1);
}

static void test_specs(void) {
    grpo_rewards *r;
    CHECK(grpo_rewards_new(&r) == TUNA_OK);
    CHECK(grpo_rewards_add(r, "json_fields:1.0") == TUNA_OK);
    CHECK(grpo_rewards_need_reference(r) == 1);
    CHECK(grpo_rewards_add(r, "json_valid:0.5") == TUNA_OK);
    CHECK(grpo_rewards_add(r, "regex:a:5:1") == TUNA_OK);    /* pattern "a:5", weight 1 */
    CHECK(grpo_rewards_add(r, "regex:b:-2") == TUNA_OK);     /* pattern "b", weight -2 */
    CHECK(grpo_rewards_add(r, "length:1-4:.25") == TUNA_OK);
    CHECK(grpo_rewards_count(r) == 5);
    const char *names[] = {"json_fields", "json_valid", "regex:a:5", "regex:b", "length:1-4"};
    double weights[] = {1, 0.5, 1, -2, 0.25};
    for (int k = 0; k < 5; k++)
        CHECKF(!strcmp(grpo_rewards_name(r, k), names[k]) && grpo_rewards_weight(r, k) == weights[k], "function %d: %s %g",
               k, grpo_rewards_name(r, k), grpo_rewards_weight(r, k));
    const char *p[] = {"P", "P", "P"};
    const char *c[] = {"{\"x\":1,\"y\":\"b\"}", "a:5", "{\"x\":2}"};
    const char *refs[] = {"{\"x\":1,\"y\":\"a\"}", "{\"x\":1}", "{\"x\":2}"};
    double per[15], tot[3];
    double want[15] = {0.5, 1, 0, 1, 0, /**/ 0, 0, 1, 0, 1, /**/ 1, 1, 0, 0, 0};
    CHECK(grpo_rewards_score(r, 3, p, c, refs, per, tot) == TUNA_OK);
    for (int i = 0; i < 15; i++) CHECKF(per[i] == want[i], "per_func[%d] = %g, want %g", i, per[i], want[i]);
    for (int i = 0; i < 3; i++) {
        double t = 0;
        for (int k = 0; k < 5; k++) t += weights[k] * want[i * 5 + k];
        CHECKF(fabs(tot[i] - t) < 1e-12, "total[%d] = %g, want %g", i, tot[i], t);
    }
    CHECK(grpo_rewards_add(r, "json_valid") == TUNA_ERR_ARG && err_has("'json_valid' given twice"));
    grpo_rewards_free(r);

    CHECK(grpo_rewards_new(&r) == TUNA_OK);
    CHECK(grpo_rewards_add(r, "length:2-3") == TUNA_OK && grpo_rewards_add(r, "regex:5") == TUNA_OK);
    CHECK(grpo_rewards_need_reference(r) == 0 && !strcmp(grpo_rewards_name(r, 1), "regex:5") && grpo_rewards_weight(r, 1) == 1);
    CHECK(grpo_rewards_score(r, 3, p, c, NULL, NULL, tot) == TUNA_OK && tot[0] == 0 && tot[1] == 2 && tot[2] == 0);
    struct { const char *spec, *msg; } bad[] = {
        {"nope", "reward 'nope': unknown function"},       {"json_valid:x", "json_valid takes no argument"},
        {"exact:1:2", "exact takes no argument"},          {"length:5-3", "expected length:MIN-MAX"},
        {"length:abc", "expected length:MIN-MAX"},         {"length:-3", "expected length:MIN-MAX"},
        {"regex:", "regex needs an argument"},             {"cmd", "cmd needs an argument"},
        {"json_fields:inf", "takes no argument"},          {"", "empty function spec"},
        {"model:/nonexistent/rm", "model:/nonexistent/rm"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECKF(grpo_rewards_add(r, bad[i].spec) != TUNA_OK && err_has(bad[i].msg), "spec '%s'", bad[i].spec);
    CHECK(grpo_rewards_count(r) == 2);
    grpo_rewards_free(r);
}

/* ---- outside programs ---- */

static void write_prog(const char *name, const char *body, char *spec, size_t n) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); return; }
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    chmod(path, 0755);
    snprintf(spec, n, "cmd:%s", path);
}

static int no_child_left(void) {
    int st;
    return waitpid(-1, &st, WNOHANG) == -1 && errno == ECHILD;
}

static tuna_status run_prog(const char *name, const char *body, double timeout, int n, const char *const *c,
                            double *v) {
    char spec[800];
    write_prog(name, body, spec, sizeof spec);
    grpo_rewards *r;
    grpo_rewards_new(&r);
    if (timeout > 0) grpo_rewards_set_timeout(r, timeout);
    tuna_status s = grpo_rewards_add(r, spec);
    const char *prompts[4096];
    for (int i = 0; i < n; i++) prompts[i] = "P";
    if (s == TUNA_OK) s = grpo_rewards_score(r, n, prompts, c, NULL, NULL, v);
    grpo_rewards_free(r);
    CHECKF(no_child_left(), "%s left a child unreaped", name);
    return s;
}

/* a process that is gone or a zombie (its parent, init, not yet reaping) */
static int dead(int pid) {
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *close_paren = strrchr(buf, ')');
    return close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z';
}

static void test_programs(void) {
    const char *c[] = {"a", "b", "c"};
    double v[3];
    CHECK(run_prog("good.sh", "awk '{ printf \" %g \\r\\n\", NR / 4 }'", 0, 3, c, v) == TUNA_OK);
    CHECK(v[0] == 0.25 && v[1] == 0.5 && v[2] == 0.75);
    CHECK(run_prog("exit3.sh", "cat >/dev/null; echo 1; echo 2; echo 3; exit 3", 0, 3, c, v) == TUNA_ERR_ARG &&
          err_has("exited with status 3"));
    CHECK(run_prog("exit3.sh", "exit 3", 0, 0, c, v) == TUNA_OK); /* no completions: not started */
    CHECK(run_prog("abc.sh", "cat >/dev/null; echo 1; echo abc; echo 3", 0, 3, c, v) == TUNA_ERR_ARG &&
          err_has("abc.sh: line 2 of its output: 'abc' is not a number"));
    CHECK(run_prog("nan.sh", "cat >/dev/null; echo 1; echo 2; echo nan", 0, 3, c, v) == TUNA_ERR_ARG &&
          err_has("line 3 of its output: 'nan' is not a number"));
    CHECK(run_prog("few.sh", "cat >/dev/null; echo 1", 0, 3, c, v) == TUNA_ERR_ARG &&
          err_has("its output has 1 line for 3 completions"));
    CHECK(run_prog("many.sh", "cat >/dev/null; seq 4", 0, 3, c, v) == TUNA_ERR_ARG &&
          err_has("its output has more than 3 lines"));

    char pidfile[600], body[800];
    snprintf(pidfile, sizeof pidfile, "%s/bg.pid", dir);
    snprintf(body, sizeof body, "sleep 30 & echo $! > %s; wait", pidfile);
    double t0 = core_now_s();
    CHECK(run_prog("hang.sh", body, 1, 3, c, v) == TUNA_ERR_ARG && err_has("within 1 s (--reward-timeout)"));
    double took = core_now_s() - t0;
    CHECKF(took >= 0.9 && took < 3, "the 1 s timeout took %.2f s", took);
    FILE *f = fopen(pidfile, "r");
    int bg = 0;
    CHECK(f && fscanf(f, "%d", &bg) == 1 && bg > 0);
    if (f) fclose(f);
    int gone = 0;
    for (int i = 0; i < 100 && bg > 0 && !(gone = dead(bg)); i++) usleep(10000);
    CHECKF(gone, "the program's background child %d outlived the timeout", bg);
}

/* large inputs: a program that never reads (EPIPE, SIGPIPE held back), and
 * one printing while its input is still coming (both pipes full at once
 * without concurrent reading and writing) */
static void test_large(void) {
    enum { N = 3000 };
    static const char *c[N];
    static double v[N];
    char *big = malloc(200001);
    memset(big, 'x', 200000);
    big[200000] = 0;
    for (int i = 0; i < N; i++) c[i] = i < 3 ? big : "a completion of some forty bytes or so....";
    CHECK(run_prog("noread.sh", "echo 1; echo 2; echo 3", 0, 3, c, v) == TUNA_OK && v[0] == 1 && v[2] == 3);
    CHECK(run_prog("stream.sh", "awk '{ printf \"%d%60s\\n\", NR, \"\" }'", 0, N, c, v) == TUNA_OK);
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= v[i] == i + 1;
    CHECK(ok);
    free(big);
}

/* what the program reads, parsed back by jansson */
static void test_input(void) {
    const char *p[] = {"say \"hi\"\\ \n\tnow", "ascii"};
    const char *c[] = {"日本 🙂 é \x01 \x7f", "bad \xff byte"};
    const char *refs[] = {"{\"who\":\"Zoë\"}\nline2", NULL};
    char seen[600], body[900], spec[800];
    snprintf(seen, sizeof seen, "%s/seen.jsonl", dir);
    snprintf(body, sizeof body, "cat > %s; echo 1; echo 2", seen);
    write_prog("echo.sh", body, spec, sizeof spec);
    grpo_rewards *r;
    grpo_rewards_new(&r);
    double v[2];
    CHECK(grpo_rewards_add(r, spec) == TUNA_OK && grpo_rewards_need_reference(r) == 0);
    CHECK(grpo_rewards_score(r, 2, p, c, refs, NULL, v) == TUNA_OK && v[0] == 1 && v[1] == 2);
    grpo_rewards_free(r);
    FILE *f = fopen(seen, "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[4096];
    const char *wantc[] = {c[0], "bad \xef\xbf\xbd byte"};
    for (int i = 0; i < 2; i++) {
        CHECK(fgets(line, sizeof line, f) != NULL);
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        CHECKF(json_is_object(o) && json_object_size(o) == 3, "line %d: %s", i + 1, line);
        CHECK(json_is_string(json_object_get(o, "prompt")) && !strcmp(json_string_value(json_object_get(o, "prompt")), p[i]));
        CHECK(json_is_string(json_object_get(o, "completion")) &&
              !strcmp(json_string_value(json_object_get(o, "completion")), wantc[i]));
        json_t *ref = json_object_get(o, "reference");
        CHECK(refs[i] ? json_is_string(ref) && !strcmp(json_string_value(ref), refs[i]) : json_is_null(ref));
        json_decref(o);
    }
    CHECK(fgets(line, sizeof line, f) == NULL);
    fclose(f);
}

/* the output parser alone */
static void test_parse(void) {
    double v[3];
    const char ok[] = "1\n-2.5e-1\r\n\t+3 ";
    CHECK(reward_cmd_parse("cmd:x", ok, sizeof ok - 1, 3, v) == TUNA_OK && v[0] == 1 && v[1] == -0.25 && v[2] == 3);
    const char nul[] = "1\n2\0\n3\n";
    CHECK(reward_cmd_parse("cmd:x", nul, sizeof nul - 1, 3, v) == TUNA_ERR_ARG && err_has("line 2 of its output"));
    CHECK(reward_cmd_parse("cmd:x", "1\n\n3\n", 5, 3, v) == TUNA_ERR_ARG && err_has("line 2 of its output: '' is not"));
    CHECK(reward_cmd_parse("cmd:x", "1 2\n", 4, 1, v) == TUNA_ERR_ARG && err_has("'1 2' is not a number"));
    CHECK(reward_cmd_parse("cmd:x", "inf\n", 4, 1, v) == TUNA_ERR_ARG && err_has("'inf' is not a number"));
    CHECK(reward_cmd_parse("cmd:x", "1e999\n", 6, 1, v) == TUNA_ERR_ARG);
    CHECK(reward_cmd_parse("cmd:x", "", 0, 1, v) == TUNA_ERR_ARG && err_has("0 lines for 1 completions"));
    CHECK(reward_cmd_parse("cmd:x", "", 0, 0, v) == TUNA_OK);
}

int main(void) {
    if (test_tmpdir(dir, sizeof dir, "rewards")) return 1;
    test_json();
    test_text();
    test_specs();
    test_parse();
    test_programs();
    test_large();
    test_input();
    test_rmdir(dir);
    return test_done();
}
