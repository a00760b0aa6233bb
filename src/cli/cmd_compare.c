/* cmd_compare.c — `tuna compare`: the adaptation spectrum on one eval set.
 * The base model zero-shot (the instruction alone, through the chat
 * template), the base model with k in-context examples from the train set
 * (seeded order), and the fine-tuned model (an adapter, or a fine-tuned model
 * folder) zero-shot; each scored on the same metric, with the prompt length,
 * latency and speed it cost. Prints a table; --json; --report DIR writes
 * compare.json and an HTML report section. */
#include <errno.h>
#include <jansson.h>
#include <sys/stat.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_model.h"
#include "cli_paths.h"
#include "commands.h"
#include "io/atomic_file.h"
#include "core/rng.h"
#include "tuna_dataset.h"
#include "tuna_eval.h"
#include "tuna_peft.h"
#include "tuna_report.h"
#include "tuna_score.h"
#include "core/error.h"

static const char *compare_help =
    "usage: tuna compare --model DIR --eval FILE [--adapter DIR | --tuned DIR] [--train FILE]\n"
    "                    [--shots 0,3] [--metric M] [options]\n"
    "\n"
    "Can prompting solve the task, or does it take fine-tuning? On the same eval\n"
    "set (records with a reference response, any chat / Alpaca / prompt-completion\n"
    "format) this runs, greedily:\n"
    "  k-shot      the base model with k examples from --train before each query,\n"
    "              the same k for every query, in a fixed order drawn with --seed\n"
    "              (k = 0: zero-shot, the instruction alone through the chat template)\n"
    "  fine-tuned  the base model with --adapter DIR (unmerged), or the model\n"
    "              folder --tuned DIR, zero-shot\n"
    "and prints, per setting: the metric, the mean prompt tokens per request, the\n"
    "mean latency per request (prefill + decode) and generated tokens/s.\n"
    "In-context examples are earlier user/assistant turns of the conversation for\n"
    "models that ship a chat template, and a completion document for base models\n"
    "(\"prompt\\nresponse\\n\\n\" per example, stopping at a blank line); --fewshot\n"
    "turns|document chooses. Examples longer than the context leaves room for are\n"
    "passed over (the count is printed).\n"
    "  --metric M             exact_match (default), contains, rouge_l, json_valid,\n"
    "                         json_fields, regex (with --regex PATTERN)\n"
    "  --template NAME|FILE   chat template for models that ship none\n"
    "  --limit N              the first N eval records\n"
    "  --seed N               order of the in-context examples (default 0)\n"
    "  --batch N              prompts generated together (default 1, so latency is\n"
    "                         per request; larger batches share forward passes)\n"
    "  --max-new-tokens N     (default 64) and the sampling options of tuna generate\n"
    "  --shots none           no base-model rows (with --adapter/--tuned and --append)\n"
    "  --append FILE          start from the rows of an earlier comparison (its\n"
    "                         compare.json, same --eval and --metric)\n"
    "  --json                 the comparison as one JSON object\n"
    "  --report DIR           write DIR/compare.json and the comparison into\n"
    "                         DIR/report.html (with the training curves when DIR is\n"
    "                         a training run folder)\n";

/* all examples with a reference response in a file, up to limit (0 = all) */
static tuna_status read_examples(const char *path, int limit, tuna_eval_example **out, int *n, int *skipped) {
    tuna_data_reader *rd = NULL;
    tuna_data_options o;
    tuna_data_options_init(&o);
    o.strict = 1;
    tuna_status st = tuna_data_reader_open(&rd, path, &o);
    tuna_record rec = {0};
    int cap = 0;
    *out = NULL;
    *n = *skipped = 0;
    for (int got = 1; st == TUNA_OK && (!limit || *n < limit);) {
        st = tuna_data_reader_next(rd, &rec, &got);
        if (st != TUNA_OK || !got) break;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            tuna_eval_example *e = realloc(*out, (size_t)cap * sizeof *e);
            if (!e) { st = core_fail(TUNA_ERR_NOMEM, "out of memory"); break; }
            *out = e;
        }
        if (tuna_eval_example_from_record(&rec, &(*out)[*n]) == TUNA_OK) (*n)++;
        else (*skipped)++;
    }
    tuna_record_clear(&rec);
    tuna_data_reader_free(rd);
    return st;
}

static void free_examples(tuna_eval_example *e, int n) {
    for (int i = 0; i < n; i++) tuna_eval_example_clear(&e[i]);
    free(e);
}

typedef struct {
    char name[64];
    int shots;
    const char *format;   /* "chat template" or "document" */
    json_t *summary;
    json_t *samples;      /* the first answers */
} row_result;

/* one setting: prompts for every eval example, generation, scores */
#define N_SAMPLES 3

static tuna_status run_row(tuna_model *m, tuna_tokenizer *tok, const tuna_template *tmpl, const tuna_eval_example *ev, int n_ev,
                           const tuna_eval_example *shots, int k, tuna_shot_format fmt, int batch, const tuna_gen_opts *go,
                           const char *regex, int ctx, json_t **summary, json_t **samples) {
    int32_t **prompts = calloc((size_t)n_ev, sizeof *prompts);
    size_t *lens = calloc((size_t)n_ev, sizeof *lens);
    tuna_gen_result *res = calloc((size_t)n_ev, sizeof *res);
    tuna_eval_tally *t = tuna_eval_tally_new();
    tuna_status st = prompts && lens && res && t ? TUNA_OK : core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (int i = 0; st == TUNA_OK && i < n_ev; i++) {
        st = tuna_eval_prompt(tok, tmpl, &ev[i], shots, k, fmt, &prompts[i], &lens[i], NULL);
        if (st == TUNA_OK && (long)lens[i] + go->max_new_tokens > ctx)
            st = core_fail(TUNA_ERR_ARG, "eval example %d: its %d-shot prompt has %zu tokens; with %d new tokens that exceeds the "
                           "model's %d positions (fewer --shots or --max-new-tokens)", i, k, lens[i], go->max_new_tokens, ctx);
    }
    if (st == TUNA_OK) st = tuna_eval_generate(m, tok, prompts, lens, n_ev, batch, go, res, NULL, NULL);
    for (int i = 0; st == TUNA_OK && i < n_ev; i++) {
        tuna_eval_scores sc;
        st = tuna_eval_score(res[i].text, ev[i].reference, regex, &sc);
        if (st == TUNA_OK)
            tuna_eval_tally_generation(t, res[i].text, ev[i].reference, &sc, res[i].prompt_tokens, res[i].n,
                                       res[i].prompt_seconds + res[i].decode_seconds);
    }
    if (st == TUNA_OK) {
        *summary = tuna_eval_tally_json(t);
        /* the first answers, to be read beside the numbers */
        *samples = json_array();
        for (int i = 0; i < n_ev && i < N_SAMPLES; i++)
            json_array_append_new(*samples, json_stringn(res[i].text, res[i].text_len));
    }
    for (int i = 0; i < n_ev; i++) {
        if (prompts) free(prompts[i]);
        if (res) tuna_gen_result_free(&res[i]);
    }
    free(prompts);
    free(lens);
    free(res);
    tuna_eval_tally_free(t);
    return st;
}

static double num(const json_t *o, const char *k) {
    const json_t *v = json_object_get(o, k);
    if (json_is_object(v)) v = json_object_get(v, "overall");
    return json_is_number(v) ? json_number_value(v) : NAN;
}

int cmd_compare(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(compare_help, stdout); return 0; }
    const char *model = NULL, *adapter = NULL, *tuned = NULL, *train = NULL, *eval = NULL, *metric = "exact_match";
    const char *tmpl_arg = NULL, *regex = NULL, *report = NULL, *fewshot = NULL, *shots_arg = "0,3", *append = NULL;
    int limit = 0, seed = 0, batch = 1, json = 0;
    cli_gen_flags gf;
    cli_gen_flags_init(&gf, 64);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int g = cli_gen_flag(&gf, argc, argv, &i);
        if (g < 0) return 2;
        if (g) {
            if (!strcmp(o, "--seed")) seed = gf.seed; /* --seed orders the shots (and seeds sampling) */
            continue;
        }
        if (!strcmp(o, "--model") && v) model = argv[++i];
        else if (!strcmp(o, "--adapter") && v) adapter = argv[++i];
        else if (!strcmp(o, "--tuned") && v) tuned = argv[++i];
        else if (!strcmp(o, "--train") && v) train = argv[++i];
        else if (!strcmp(o, "--eval") && v) eval = argv[++i];
        else if (!strcmp(o, "--metric") && v) metric = argv[++i];
        else if (!strcmp(o, "--template") && v) tmpl_arg = argv[++i];
        else if (!strcmp(o, "--regex") && v) regex = argv[++i];
        else if (!strcmp(o, "--report") && v) report = argv[++i];
        else if (!strcmp(o, "--fewshot") && v) fewshot = argv[++i];
        else if (!strcmp(o, "--shots") && v) shots_arg = argv[++i];
        else if (!strcmp(o, "--append") && v) append = argv[++i];
        else if (!strcmp(o, "--limit")) { if (cli_parse_int(o, v, 1, 2147483647, &limit)) return 2; i++; }
        else if (!strcmp(o, "--batch")) { if (cli_parse_int(o, v, 1, 4096, &batch)) return 2; i++; }
        else if (!strcmp(o, "--json")) json = 1;
        else return cli_usage_error("compare: unknown option or missing value '%s' (see tuna compare --help)", o);
    }
    if (!model || !eval) return cli_usage_error("compare: --model DIR and --eval FILE are required");
    if (cli_output_refused(report, 1)) return 2;
    if (adapter && tuned) return cli_usage_error("compare: give --adapter or --tuned, not both");
    if (!tuna_eval_metric_known(metric) || !strcmp(metric, "loss") || !strcmp(metric, "ppl"))
        return cli_usage_error("compare: unknown --metric '%s' (exact_match, contains, rouge_l, json_valid, json_fields, regex)", metric);
    if (!strcmp(metric, "regex") && !regex) return cli_usage_error("compare: --metric regex needs --regex PATTERN");
    if (regex && tuna_score_regex("", regex) < 0) return cli_usage_error("--regex: the pattern does not compile: %s", regex);
    if (fewshot && strcmp(fewshot, "turns") && strcmp(fewshot, "document"))
        return cli_usage_error("compare: --fewshot must be turns or document (got '%s')", fewshot);
    int shots[16], n_shots = 0, kmax = 0;
    if (!strcmp(shots_arg, "none")) shots_arg = "";
    for (const char *p = shots_arg; *p;) {
        char *end;
        long k = strtol(p, &end, 10);
        if (end == p || k < 0 || k > 64 || (*end && *end != ',') || n_shots == 16)
            return cli_usage_error("compare: --shots takes up to 16 counts 0..64 separated by commas (got '%s')", shots_arg);
        shots[n_shots++] = (int)k;
        if (k > kmax) kmax = (int)k;
        p = *end ? end + 1 : end;
    }
    if (kmax > 0 && !train) return cli_usage_error("compare: --shots above 0 need --train FILE (the in-context examples)");
    if (!n_shots && !adapter && !tuned) return cli_usage_error("compare: nothing to run (--shots none and no --adapter or --tuned)");
    if (report) {
        /* --report may be the run folder of --adapter / --tuned (its report gains
         * the comparison) and --append its compare.json; no other input may be
         * written over */
        char cj[PATH_MAX], rh[PATH_MAX];
        snprintf(cj, sizeof cj, "%s/compare.json", report);
        snprintf(rh, sizeof rh, "%s/report.html", report);
        const cli_path ins[] = {{"--eval", eval, CLI_FILE}, {"--train", train, CLI_FILE}, {"--model", model, CLI_DIR},
                                {"--adapter", adapter, CLI_DIR}, {"--tuned", tuned, CLI_DIR}, {"--template", tmpl_arg, CLI_FILE}};
        const cli_path outs[] = {{"--report's compare.json", cj, CLI_FILE}, {"--report's report.html", rh, CLI_FILE}};
        int prc = cli_check_paths("compare", ins, 6, outs, 2);
        if (prc) return prc;
    }
    json_t *prior = NULL;
    if (append) {
        json_error_t je;
        prior = json_load_file(append, 0, &je);
        if (!json_is_array(json_object_get(prior, "rows")))
            { json_decref(prior); return cli_usage_error("--append %s: not a comparison written by tuna compare (%s)", append, prior ? "no rows" : je.text); }
        const char *pe = json_string_value(json_object_get(prior, "eval")), *pm = json_string_value(json_object_get(prior, "metric"));
        if (!pe || strcmp(pe, eval) || !pm || strcmp(pm, metric))
            { json_decref(prior); return cli_usage_error("--append %s: it compares on another eval set or metric", append); }
    }

    tuna_model *m = NULL;
    tuna_tokenizer *tok = NULL;
    tuna_template *tmpl = NULL;
    char *tsrc = NULL;
    tuna_eval_example *ev = NULL, *tr = NULL, *picked = NULL;
    int n_ev = 0, n_tr = 0, skipped_ev = 0, skipped_tr = 0, passed_over = 0;
    row_result rows[17];
    int n_rows = 0;
    json_t *all = NULL;
    tuna_status st = cli_load_model(&(cli_model_spec){.dir = model}, &m, &tok);
    if (st == TUNA_OK) st = tuna_dataset_template(&tmpl, tok, tmpl_arg, &tsrc);
    if (st == TUNA_OK) st = read_examples(eval, limit, &ev, &n_ev, &skipped_ev);
    if (st == TUNA_OK && n_ev == 0) st = core_fail(TUNA_ERR_FORMAT, "%s: no records with a reference response", eval);
    if (st == TUNA_OK && kmax) st = read_examples(train, 0, &tr, &n_tr, &skipped_tr);
    if (st != TUNA_OK) goto done;
    /* chat models take shots as turns; base models (no template of their own) as a document */
    tuna_shot_format shot_fmt = fewshot ? (!strcmp(fewshot, "turns") ? TUNA_SHOTS_TURNS : TUNA_SHOTS_DOCUMENT)
                                        : tuna_tokenizer_chat_template(tok) ? TUNA_SHOTS_TURNS : TUNA_SHOTS_DOCUMENT;
    tuna_shot_format zero_fmt = tmpl ? TUNA_SHOTS_TURNS : TUNA_SHOTS_DOCUMENT;
    const tuna_config *c = tuna_model_config(m);
    int ctx = c->max_positions;
    int32_t eos[16];
    int n_eos = 0;
    tuna_sample_args sa;
    st = cli_gen_setup(model, tok, &gf, 0, eos, &n_eos, &sa);
    if (st != TUNA_OK) goto done;
    const char *stops[17];
    int n_stop = 0;
    for (int i = 0; i < gf.n_stop; i++) stops[n_stop++] = gf.stops[i];
    tuna_gen_opts go = {.max_new_tokens = gf.max_new, .sample = sa, .eos_ids = eos, .n_eos = n_eos, .stop = stops, .n_stop = n_stop};
    tuna_gen_opts go_doc = go;
    const char *doc_stops[17];
    memcpy(doc_stops, stops, sizeof doc_stops);
    doc_stops[n_stop] = "\n\n"; /* the document's example separator */
    go_doc.stop = doc_stops;
    go_doc.n_stop = n_stop + 1;

    /* in-context examples: the train set in a seeded order; an example is
     * taken when it fits the room the longest eval query leaves */
    if (kmax) {
        size_t longest = 0;
        for (int i = 0; i < n_ev; i++) {
            int32_t *ids = NULL;
            size_t n = 0;
            st = tuna_eval_prompt(tok, tmpl, &ev[i], NULL, 0, shot_fmt, &ids, &n, NULL);
            free(ids);
            if (st != TUNA_OK) goto done;
            if (n > longest) longest = n;
        }
        long room = (long)ctx - gf.max_new - (long)longest, per_shot = room / kmax;
        int *order = malloc((size_t)(n_tr ? n_tr : 1) * sizeof *order);
        picked = calloc((size_t)kmax, sizeof *picked);
        if (!order || !picked) { free(order); st = core_fail(TUNA_ERR_NOMEM, "out of memory"); goto done; }
        tuna_rng rng;
        rng_seed(&rng, (uint64_t)seed, 0x5107);
        for (int i = 0; i < n_tr; i++) order[i] = i;
        for (int i = n_tr - 1; i > 0; i--) { /* Fisher-Yates */
            int j = (int)(rng_u32(&rng) % (uint32_t)(i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        int got = 0;
        int32_t *ids0 = NULL;
        size_t n0 = 0;
        st = tuna_eval_prompt(tok, tmpl, &ev[0], NULL, 0, shot_fmt, &ids0, &n0, NULL);
        free(ids0);
        for (int i = 0; st == TUNA_OK && i < n_tr && got < kmax; i++) {
            int32_t *ids = NULL;
            size_t n1 = 0;
            st = tuna_eval_prompt(tok, tmpl, &ev[0], &tr[order[i]], 1, shot_fmt, &ids, &n1, NULL);
            free(ids);
            if (st != TUNA_OK) break;
            if ((long)n1 - (long)n0 <= per_shot) picked[got++] = tr[order[i]];
            else passed_over++;
        }
        free(order);
        if (st != TUNA_OK) goto done;
        if (got < kmax) {
            st = core_fail(TUNA_ERR_ARG, "%s: only %d of %d train examples fit in %ld tokens each (the model's %d positions less "
                           "--max-new-tokens %d and the longest query, %zu tokens); use fewer --shots", train, got, n_tr,
                           per_shot > 0 ? per_shot : 0, ctx, gf.max_new, longest);
            goto done;
        }
    }

    /* the base model at each shot count */
    for (int s = 0; s < n_shots && st == TUNA_OK; s++) {
        row_result *r = &rows[n_rows];
        int k = shots[s];
        tuna_shot_format f = k ? shot_fmt : zero_fmt;
        snprintf(r->name, sizeof r->name, k ? "%d-shot" : "zero-shot", k);
        r->shots = k;
        r->format = f == TUNA_SHOTS_TURNS ? "chat template" : "document";
        if (!json) fprintf(stderr, "%s ...\n", r->name);
        st = run_row(m, tok, tmpl, ev, n_ev, picked, k, f, batch, f == TUNA_SHOTS_DOCUMENT ? &go_doc : &go, regex, ctx, &r->summary, &r->samples);
        if (st == TUNA_OK) n_rows++;
    }
    /* the fine-tuned model, zero-shot */
    if (st == TUNA_OK && (adapter || tuned)) {
        row_result *r = &rows[n_rows];
        if (tuned) {
            tuna_model_free(m);
            m = NULL;
            st = tuna_model_load_quantized(&m, tuned, cli_load_mode(NULL));
        } else {
            st = tuna_peft_load(m, adapter);
        }
        snprintf(r->name, sizeof r->name, "fine-tuned");
        r->shots = 0;
        r->format = zero_fmt == TUNA_SHOTS_TURNS ? "chat template" : "document";
        if (st == TUNA_OK) {
            if (!json) fprintf(stderr, "%s ...\n", r->name);
            st = run_row(m, tok, tmpl, ev, n_ev, NULL, 0, zero_fmt, batch, zero_fmt == TUNA_SHOTS_DOCUMENT ? &go_doc : &go, regex,
                         ctx, &r->summary, &r->samples);
        }
        if (st == TUNA_OK) n_rows++;
    }
    if (st != TUNA_OK) goto done;

    all = json_object();
    json_object_set_new(all, "model", json_string(model));
    if (adapter) json_object_set_new(all, "adapter", json_string(adapter));
    if (tuned) json_object_set_new(all, "tuned", json_string(tuned));
    json_object_set_new(all, "eval", json_string(eval));
    if (train) json_object_set_new(all, "train", json_string(train));
    json_object_set_new(all, "metric", json_string(metric));
    json_object_set_new(all, "examples", json_integer(n_ev));
    json_object_set_new(all, "seed", json_integer(seed));
    json_object_set_new(all, "max_new_tokens", json_integer(gf.max_new));
    json_object_set_new(all, "batch", json_integer(batch));
    json_object_set_new(all, "greedy", json_boolean(sa.temperature == 0));
    json_t *sp = json_array();
    for (int i = 0; i < n_ev && i < N_SAMPLES; i++) {
        const char *user = ev[i].prompt_text ? ev[i].prompt_text : ev[i].n_msgs ? ev[i].msgs[ev[i].n_msgs - 1].content : "";
        json_array_append_new(sp, json_pack("{s:s,s:s}", "prompt", user, "reference", ev[i].reference));
    }
    json_object_set_new(all, "samples", sp);
    json_t *ja = json_array();
    /* rows of an earlier comparison on the same eval set come first (--append) */
    size_t pi;
    json_t *pr;
    json_array_foreach(json_object_get(prior, "rows"), pi, pr) json_array_append(ja, pr);
    for (int i = 0; i < n_rows; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(rows[i].name));
        json_object_set_new(o, "shots", json_integer(rows[i].shots));
        json_object_set_new(o, "prompt", json_string(rows[i].format));
        double v = num(rows[i].summary, metric);
        json_object_set_new(o, "metric", isfinite(v) ? json_real(v) : json_null());
        json_object_set_new(o, "mean_prompt_tokens", json_real(num(rows[i].summary, "mean_prompt_tokens")));
        json_object_set_new(o, "mean_latency_s", json_real(num(rows[i].summary, "mean_latency_s")));
        json_object_set_new(o, "tokens_per_s", json_real(num(rows[i].summary, "tokens_per_s")));
        json_object_set_new(o, "summary", json_incref(rows[i].summary));
        json_object_set_new(o, "samples", json_incref(rows[i].samples));
        json_array_append_new(ja, o);
    }
    json_object_set_new(all, "rows", ja);
    if (json) {
        char *s = json_dumps(all, JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (s) puts(s);
        free(s);
    } else {
        printf("%d eval examples from %s", n_ev, eval);
        if (skipped_ev) printf(" (%d without a reference response skipped)", skipped_ev);
        if (kmax) printf("; in-context examples from %s (seed %d%s)", train, seed, passed_over ? ", some passed over as too long" : "");
        /* with field accuracy, JSON validity beside it: a format problem and a
         * knowledge problem look different */
        int with_valid = !strcmp(metric, "json_fields");
        printf("\n%-12s %-14s %12s", "setting", "prompt", metric);
        if (with_valid) printf(" %11s", "json_valid");
        printf(" %14s %12s %10s\n", "prompt tokens", "latency s", "tokens/s");
        size_t ri;
        json_t *r;
        json_array_foreach(ja, ri, r) {
            json_t *mvj = json_object_get(r, "metric");
            char mv[32];
            if (json_is_number(mvj)) snprintf(mv, sizeof mv, "%.4f", json_number_value(mvj));
            else snprintf(mv, sizeof mv, "n/a");
            printf("%-12s %-14s %12s", json_string_value(json_object_get(r, "name")), json_string_value(json_object_get(r, "prompt")), mv);
            if (with_valid) printf(" %11.4f", num(json_object_get(r, "summary"), "json_valid"));
            printf(" %14.1f %12.4f %10.1f\n", json_number_value(json_object_get(r, "mean_prompt_tokens")),
                   json_number_value(json_object_get(r, "mean_latency_s")), json_number_value(json_object_get(r, "tokens_per_s")));
        }
    }
    if (passed_over && !json) fprintf(stderr, "tuna: %d train examples passed over as too long for the context\n", passed_over);
    if (report) {
        char path[PATH_MAX];
        if (mkdir(report, 0755) != 0 && errno != EEXIST) { st = core_fail(atomic_write_status(errno), "%s: cannot create: %s", report, strerror(errno)); goto done; }
        snprintf(path, sizeof path, "%s/compare.json", report);
        st = atomic_file_write_json(path, all, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
        if (st == TUNA_OK) st = tuna_report_write(report);
        if (st == TUNA_OK && !json) printf("report: %s/report.html\n", report);
    }
done:
    json_decref(all);
    for (int i = 0; i < n_rows; i++) {
        json_decref(rows[i].summary);
        json_decref(rows[i].samples);
    }
    json_decref(prior);
    free(picked); /* shallow copies of tr's examples */
    free_examples(ev, n_ev);
    free_examples(tr, n_tr);
    tuna_template_free(tmpl);
    free(tsrc);
    tuna_tokenizer_free(tok);
    tuna_model_free(m);
    return st == TUNA_OK ? 0 : cli_status_error(st);
}
