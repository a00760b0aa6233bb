/* test_train_files.c — the JSON files a training run writes (metrics.jsonl,
 * train_args.json) and `tuna info --json` are valid JSON whatever the paths
 * and names in them: every line parses with duplicate keys rejected, per-task
 * validation losses are named by their files (--val files, or the --data
 * files a --val-split came from), and paths holding '"', '\' and non-ASCII
 * characters come back exactly. Runs the CLI on the tiny fixture model
 * (pre-tokenized data written here); a few seconds. Runs from the repository root. */
#include <jansson.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static char tmpdir[256];
static const char *MODEL = "tests/fixtures/parity/llama_gqa"; /* vocabulary of 100, no tokenizer */

/* n pre-tokenized records of 8 ids, seeded. */
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

static int run(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Every line of dir/metrics.jsonl parsed (duplicate keys rejected); the
 * first eval line and the mixture line are returned (new references). */
static void read_metrics(const char *dir, json_t **eval, json_t **mixture) {
    char path[1024], line[8192];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    *eval = *mixture = NULL;
    FILE *f = fopen(path, "r");
    CHECKF(f != NULL, "no %s", path);
    int ln = 0;
    while (f && fgets(line, sizeof line, f)) {
        ln++;
        json_error_t e;
        json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &e);
        CHECKF(json_is_object(o), "metrics.jsonl line %d: %s: %s", ln, e.text, line);
        if (!*eval && json_object_get(o, "eval_loss")) *eval = json_incref(o);
        if (!*mixture && json_object_get(o, "mixture")) *mixture = json_incref(json_object_get(o, "mixture"));
        json_decref(o);
    }
    if (f) fclose(f);
    CHECKF(ln > 0, "%s is empty", path);
}

/* o[prefix + name] is a finite number. */
static void check_number_key(const json_t *o, const char *prefix, const char *name) {
    char key[1024];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    json_t *v = json_object_get(o, key);
    CHECKF(json_is_number(v) && isfinite(json_number_value(v)), "no number at key '%s'", key);
}

/* Two --data files and --val-split: each task's validation loss is named by
 * its --data file (the split's pointers were never set: "eval_loss/(null)"
 * twice in one line). */
static void test_val_split_tasks(void) {
    char a[512], b[512], out[512], cmd[4096];
    snprintf(a, sizeof a, "%s/task_a.jsonl", tmpdir);
    snprintf(b, sizeof b, "%s/task_b.jsonl", tmpdir);
    snprintf(out, sizeof out, "%s/split", tmpdir);
    write_records(a, 30, 1);
    write_records(b, 30, 2);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data %s --data %s --val-split 0.3 --out %s --steps 2 --batch 2 --quiet",
             test_cli, MODEL, a, b, out);
    CHECKF(run(cmd) == 0, "%s", cmd);
    json_t *ev, *mix;
    read_metrics(out, &ev, &mix);
    CHECK(ev != NULL && mix != NULL);
    if (ev) {
        check_number_key(ev, "eval_loss/", a);
        check_number_key(ev, "eval_loss/", b);
        CHECKF(json_object_size(ev) == 5, "eval line has %zu keys (step, eval_loss, eval_tokens, 2 tasks)", json_object_size(ev));
    }
    json_decref(ev);
    json_decref(mix);
}

/* Paths with '"', '\' and non-ASCII characters in --out, --data and --val. */
static void test_odd_paths(void) {
    char dir[512], a[600], b[600], va[600], vb[600], out[600], cmd[8192];
    snprintf(dir, sizeof dir, "%s/q\"b\\s \xc3\xa9\xe2\x86\x92", tmpdir);
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(a, sizeof a, "%s/a\"1\\.jsonl", dir);
    snprintf(b, sizeof b, "%s/b\xc3\xa9\\\".jsonl", dir);
    snprintf(va, sizeof va, "%s/va\"\\.jsonl", dir);
    snprintf(vb, sizeof vb, "%s/vb\\\xe2\x86\x92\".jsonl", dir);
    snprintf(out, sizeof out, "%s/out\"\\\xc3\xa9", dir);
    write_records(a, 20, 3);
    write_records(b, 20, 4);
    write_records(va, 4, 5);
    write_records(vb, 4, 6);
    snprintf(cmd, sizeof cmd, "%s sft --model %s --data '%s' --data '%s' --val '%s' --val '%s' --out '%s' --steps 2 --batch 2 --quiet",
             test_cli, MODEL, a, b, va, vb, out);
    CHECKF(run(cmd) == 0, "%s", cmd);
    json_t *ev, *mix;
    read_metrics(out, &ev, &mix);
    if (ev) {
        check_number_key(ev, "eval_loss/", va);
        check_number_key(ev, "eval_loss/", vb);
    }
    CHECKF(json_is_object(json_object_get(mix, a)) && json_is_object(json_object_get(mix, b)), "mixture keys are not the paths");
    json_decref(ev);
    json_decref(mix);
    char path[1024];
    snprintf(path, sizeof path, "%s/train_args.json", out);
    json_error_t e;
    json_t *args = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    CHECKF(args != NULL, "train_args.json: %s", e.text);
    json_t *d = json_object_get(args, "data"), *v = json_object_get(args, "val");
    CHECK(!strcmp(json_string_value(json_array_get(d, 0)) ? json_string_value(json_array_get(d, 0)) : "", a));
    CHECK(!strcmp(json_string_value(json_array_get(d, 1)) ? json_string_value(json_array_get(d, 1)) : "", b));
    CHECK(!strcmp(json_string_value(json_array_get(v, 1)) ? json_string_value(json_array_get(v, 1)) : "", vb));
    json_decref(args);
    snprintf(path, sizeof path, "%s/report.html", out);
    CHECKF(access(path, F_OK) == 0, "no report.html in the odd folder");
}

/* tuna info --json with a model_type holding '"', '\' and non-ASCII text. */
static void test_info_json(void) {
    char dir[512], cmd[4096], path[600];
    snprintf(dir, sizeof dir, "%s/odd_model", tmpdir);
    snprintf(cmd, sizeof cmd, "cp -r %s %s", MODEL, dir);
    CHECK(run(cmd) == 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *c = json_load_file(path, 0, NULL);
    const char *mt = "llama\"\\\xc3\xa9";
    json_object_set_new(c, "model_type", json_string(mt));
    CHECK(c && json_dump_file(c, path, JSON_INDENT(2)) == 0);
    json_decref(c);
    snprintf(path, sizeof path, "%s/info.json", tmpdir);
    snprintf(cmd, sizeof cmd, "%s info --model %s --json > %s", test_cli, dir, path);
    CHECK(run(cmd) == 0);
    json_error_t e;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    CHECKF(o != NULL, "info --json: %s", e.text);
    const char *got = json_string_value(json_object_get(o, "model_type"));
    CHECKF(got && !strcmp(got, mt), "model_type came back as '%s'", got ? got : "(none)");
    CHECK(json_integer_value(json_object_get(o, "layers")) == 2);
    json_decref(o);
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    if (test_tmpdir(tmpdir, sizeof tmpdir, "train_files") != 0) return 1;
    test_val_split_tasks();
    test_odd_paths();
    test_info_json();
    test_rmdir(tmpdir);
    return test_done();
}
