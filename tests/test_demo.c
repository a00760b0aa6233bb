/* test_demo.c — the README's main job, end to end, at a tiny size: runs
 * scripts/demo.sh on the shipped base model (models/tuna-stories) with a few
 * LoRA steps and a handful of examples, so a broken demo breaks `make test`.
 * Checks what the demo promises to leave behind: the data splits, the base
 * model's comparison, the adapter in PEFT's layout, report.html with the
 * comparison section, and the printed table and next commands; then the
 * preference stage (scripts/demo_prefs.sh: pairs, DPO after the SFT adapter,
 * the before/after table), and the third act (scripts/demo_grpo.sh: a short
 * SFT run, GRPO with the json_fields reward, the table, the reward logged as
 * TRL names it). The quality thresholds need the full runs
 * (bench/bench_demo.sh, bench/bench_dpo.sh), not this one. */
#include <jansson.h>
#include <unistd.h>

#include "check.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

int main(int argc, char **argv) {
    (void)argc;
    test_set_cli(argv[0]);
    struct stat sb;
    if (stat("models/tuna-stories/model.safetensors", &sb) != 0) {
        CHECK(!"models/tuna-stories is missing: the shipped base model is part of the repository");
        return test_done();
    }
    char dir[256], cmd[4096], path[600];
    snprintf(dir, sizeof dir, "/tmp/tuna_demo_%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "TUNA=%s DEMO_OUT=%s DEMO_STEPS=2 DEMO_TRAIN=48 DEMO_EVAL=4 DEMO_CHECK=0 bash scripts/demo.sh > %s.log 2>&1",
             test_cli, dir, dir);
    int rc = system(cmd);
    CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "scripts/demo.sh failed: see %s.log", dir);
    snprintf(path, sizeof path, "%s.log", dir);
    char *log = slurp(path);
    CHECK(log != NULL);
    if (log) {
        static const char *want[] = {"== 1. the base model", "[answer]", "zero-shot", "3-shot", "== 3. LoRA", "step 2/2",
                                     "fine-tuned", "report: ", "next:   ", "done in "};
        for (size_t i = 0; i < sizeof want / sizeof *want; i++) CHECKF(strstr(log, want[i]) != NULL, "demo output lacks '%s'", want[i]);
        CHECK(!strstr(log, "tuna: error"));
    }
    static const char *files[] = {"data/train.jsonl", "data/val.jsonl", "data/eval.jsonl", "base/compare.json", "lora/adapter_config.json",
                                  "lora/adapter_model.safetensors", "lora/metrics.jsonl", "lora/compare.json", "lora/report.html"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        CHECKF(stat(path, &sb) == 0 && sb.st_size > 0, "%s missing", path);
    }
    snprintf(path, sizeof path, "%s/lora/compare.json", dir);
    json_t *c = json_load_file(path, 0, NULL);
    json_t *rows = json_object_get(c, "rows");
    CHECK(json_array_size(rows) == 3);
    const char *names[3] = {"zero-shot", "3-shot", "fine-tuned"};
    for (size_t i = 0; i < 3 && i < json_array_size(rows); i++)
        CHECK(!strcmp(json_string_value(json_object_get(json_array_get(rows, i), "name")), names[i]));
    CHECK(json_integer_value(json_object_get(c, "examples")) == 4);
    json_decref(c);
    snprintf(path, sizeof path, "%s/lora/report.html", dir);
    char *html = slurp(path);
    CHECK(html && strstr(html, "Prompting vs few-shot vs fine-tuning") && strstr(html, "Sample answers") && strstr(html, "<h2>Loss</h2>"));
    free(html);
    /* a second run reuses the token cache and leaves nothing from the first but it */
    snprintf(cmd, sizeof cmd, "touch %s/stale && TUNA=%s DEMO_OUT=%s DEMO_STEPS=2 DEMO_TRAIN=48 DEMO_EVAL=4 DEMO_CHECK=0 bash scripts/demo.sh "
             "> %s.log2 2>&1 && test ! -e %s/stale && test -d %s/cache", dir, test_cli, dir, dir, dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s.log2", dir);
    char *log2 = slurp(path);
    CHECK(log2 && strstr(log2, "(token cache)"));
    free(log2);
    free(log);
    /* the preference stage after it (make demo-prefs), tiny */
    snprintf(cmd, sizeof cmd, "TUNA=%s DEMO_OUT=%s DPO_STEPS=2 DPO_TRAIN=32 DPO_EVAL=4 DEMO_CHECK=0 bash scripts/demo_prefs.sh > %s.log3 2>&1",
             test_cli, dir, dir);
    rc = system(cmd);
    CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "scripts/demo_prefs.sh failed: see %s.log3", dir);
    snprintf(path, sizeof path, "%s.log3", dir);
    char *log3 = slurp(path);
    if (log3) {
        static const char *want[] = {"== 5. preferences", "chosen:", "rejected:", "== 7. DPO", "reference: the starting model",
                                     "step 2/2", "preference accuracy (4 held-out pairs)", "after DPO", "report: ", "done in "};
        for (size_t i = 0; i < sizeof want / sizeof *want; i++) CHECKF(strstr(log3, want[i]) != NULL, "demo_prefs output lacks '%s'", want[i]);
        CHECK(!strstr(log3, "tuna: error"));
    } else CHECK(0);
    free(log3);
    static const char *pfiles[] = {"prefs/train.jsonl", "prefs/eval.jsonl", "dpo/adapter_model.safetensors", "dpo/metrics.jsonl",
                                   "dpo/report.html", "dpo/train_args.json"};
    for (size_t i = 0; i < sizeof pfiles / sizeof *pfiles; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, pfiles[i]);
        CHECKF(stat(path, &sb) == 0 && sb.st_size > 0, "%s missing", path);
    }
    snprintf(path, sizeof path, "%s/dpo/metrics.jsonl", dir);
    char *met = slurp(path);
    CHECK(met && strstr(met, "\"rewards/accuracies\"") && strstr(met, "\"eval_rewards/margins\""));
    free(met);
    /* the report draws the preference metrics; a preference loss has no perplexity */
    snprintf(path, sizeof path, "%s/dpo/report.html", dir);
    char *rep = slurp(path);
    CHECK(rep && strstr(rep, "rewards/accuracies") && strstr(rep, "rewards/margins") && !strstr(rep, "(ppl "));
    free(rep);
    /* without the SFT adapter it says what to run first */
    snprintf(cmd, sizeof cmd, "TUNA=%s DEMO_OUT=%s/none bash scripts/demo_prefs.sh 2>&1 | grep -q 'run .make demo. first'", test_cli, dir);
    CHECK(system(cmd) == 0);
    /* the third act (make demo-grpo), tiny: a short SFT run, GRPO after it */
    snprintf(cmd, sizeof cmd, "%s grpo --help > /dev/null 2>&1", test_cli);
    if (system(cmd) == 0) {
        snprintf(cmd, sizeof cmd, "TUNA=%s DEMO_OUT=%s SFT_SHORT_STEPS=2 GRPO_STEPS=2 GRPO_BATCH=2 GRPO_GENERATIONS=2 DEMO_CHECK=0 "
                 "bash scripts/demo_grpo.sh > %s.log4 2>&1", test_cli, dir, dir);
        rc = system(cmd);
        CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "scripts/demo_grpo.sh failed: see %s.log4", dir);
        snprintf(path, sizeof path, "%s.log4", dir);
        char *log4 = slurp(path);
        static const char *want[] = {"== 9. a short SFT run", "== 11. GRPO", "field accuracy (4 held-out stories)", "after GRPO",
                                     "valid JSON", "report: ", "done in "};
        for (size_t i = 0; log4 && i < sizeof want / sizeof *want; i++)
            CHECKF(strstr(log4, want[i]) != NULL, "demo_grpo output lacks '%s'", want[i]);
        CHECK(log4 && !strstr(log4, "tuna: error"));
        free(log4);
        static const char *gfiles[] = {"sft-short/adapter_model.safetensors", "grpo/adapter_model.safetensors", "grpo/metrics.jsonl",
                                       "grpo/report.html"};
        for (size_t i = 0; i < sizeof gfiles / sizeof *gfiles; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, gfiles[i]);
            CHECKF(stat(path, &sb) == 0 && sb.st_size > 0, "%s missing", path);
        }
        /* the reward as TRL logs it, and the report's curve of it */
        snprintf(path, sizeof path, "%s/grpo/metrics.jsonl", dir);
        char *gm = slurp(path);
        CHECK(gm && strstr(gm, "\"rewards/json_fields/mean\""));
        free(gm);
        snprintf(path, sizeof path, "%s/grpo/report.html", dir);
        char *gr = slurp(path);
        CHECK(gr && strstr(gr, "reward"));
        free(gr);
        snprintf(cmd, sizeof cmd, "TUNA=%s DEMO_OUT=%s/none bash scripts/demo_grpo.sh 2>&1 | grep -q 'run .make demo. first'", test_cli, dir);
        CHECK(system(cmd) == 0);
    } else
        test_absent("make demo-grpo", "this build has no 'tuna grpo'");
    snprintf(cmd, sizeof cmd, "rm -rf %s %s.log %s.log2 %s.log3 %s.log4", dir, dir, dir, dir, dir);
    if (system(cmd)) {}
    return test_done();
}
