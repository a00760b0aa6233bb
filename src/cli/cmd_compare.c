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

/* ---- options ---- */
typedef struct {
    const char *model, *adapter, *tuned, *train, *eval, *metric;
    const char *tmpl_arg, *regex, *report, *fewshot, *shots_arg, *append;
    int limit, seed, batch, json;
    int shots[16], n_shots, kmax; /* --shots parsed, kmax the largest */
    cli_gen_flags gf;
    json_t *prior;                /* --append's comparison */
} compare_opts;

/* argv into *o; 0, or the exit code */
static int compare_parse_argv(compare_opts *o, int argc, char **argv) {
    *o = (compare_opts){.metric = "exact_match", .shots_arg = "0,3", .batch = 1};
    cli_gen_flags_init(&o->gf, 64);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int g = cli_gen_flag(&o->gf, argc, argv, &i);
        if (g < 0) return 2;
        if (g) {
            if (!strcmp(a, "--seed")) o->seed = o->gf.seed; /* --seed orders the shots (and seeds sampling) */
            continue;
        }
        if (!strcmp(a, "--model") && v) o->model = argv[++i];
        else if (!strcmp(a, "--adapter") && v) o->adapter = argv[++i];
        else if (!strcmp(a, "--tuned") && v) o->tuned = argv[++i];
        else if (!strcmp(a, "--train") && v) o->train = argv[++i];
        else if (!strcmp(a, "--eval") && v) o->eval = argv[++i];
        else if (!strcmp(a, "--metric") && v) o->metric = argv[++i];
        else if (!strcmp(a, "--template") && v) o->tmpl_arg = argv[++i];
        else if (!strcmp(a, "--regex") && v) o->regex = argv[++i];
        else if (!strcmp(a, "--report") && v) o->report = argv[++i];
        else if (!strcmp(a, "--fewshot") && v) o->fewshot = argv[++i];
        else if (!strcmp(a, "--shots") && v) o->shots_arg = argv[++i];
        else if (!strcmp(a, "--append") && v) o->append = argv[++i];
        else if (!strcmp(a, "--limit")) { if (cli_parse_int(a, v, 1, 2147483647, &o->limit)) return 2; i++; }
        else if (!strcmp(a, "--batch")) { if (cli_parse_int(a, v, 1, 4096, &o->batch)) return 2; i++; }
        else if (!strcmp(a, "--json")) o->json = 1;
        else return cli_usage_error("compare: unknown option or missing value '%s' (see tuna compare --help)", a);
    }
    return 0;
}

/* --shots "0,3" (or "none") into o->shots; 0, or the exit code */
static int parse_shots(compare_opts *o) {
    if (!strcmp(o->shots_arg, "none")) o->shots_arg = "";
    for (const char *p = o->shots_arg; *p;) {
        char *end;
        long k = strtol(p, &end, 10);
        if (end == p || k < 0 || k > 64 || (*end && *end != ',') || o->n_shots == 16)
            return cli_usage_error("compare: --shots takes up to 16 counts 0..64 separated by commas (got '%s')", o->shots_arg);
        o->shots[o->n_shots++] = (int)k;
        if (k > o->kmax) o->kmax = (int)k;
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* --report may be the run folder of --adapter / --tuned (its report gains
 * the comparison) and --append its compare.json; no other input may be
 * written over */
static int check_report_paths(const compare_opts *o) {
    char cj[PATH_MAX], rh[PATH_MAX];
    snprintf(cj, sizeof cj, "%s/compare.json", o->report);
    snprintf(rh, sizeof rh, "%s/report.html", o->report);
    const cli_path ins[] = {{"--eval", o->eval, CLI_FILE}, {"--train", o->train, CLI_FILE}, {"--model", o->model, CLI_DIR},
                            {"--adapter", o->adapter, CLI_DIR}, {"--tuned", o->tuned, CLI_DIR}, {"--template", o->tmpl_arg, CLI_FILE}};
    const cli_path outs[] = {{"--report's compare.json", cj, CLI_FILE}, {"--report's report.html", rh, CLI_FILE}};
    return cli_check_paths("compare", ins, 6, outs, 2);
}

/* --append's comparison into o->prior, refused unless on the same eval set and metric */
static int load_prior(compare_opts *o) {
    json_error_t je;
    json_t *prior = json_load_file(o->append, 0, &je);
    if (!json_is_array(json_object_get(prior, "rows")))
        { json_decref(prior); return cli_usage_error("--append %s: not a comparison written by tuna compare (%s)", o->append, prior ? "no rows" : je.text); }
    const char *pe = json_string_value(json_object_get(prior, "eval")), *pm = json_string_value(json_object_get(prior, "metric"));
    if (!pe || strcmp(pe, o->eval) || !pm || strcmp(pm, o->metric))
        { json_decref(prior); return cli_usage_error("--append %s: it compares on another eval set or metric", o->append); }
    o->prior = prior;
    return 0;
}

/* the options and every check that needs no model; 0, or the exit code */
static int compare_parse(compare_opts *o, int argc, char **argv) {
    int rc = compare_parse_argv(o, argc, argv);
    if (rc) return rc;
    if (!o->model || !o->eval) return cli_usage_error("compare: --model DIR and --eval FILE are required");
    if (cli_output_refused(o->report, 1)) return 2;
    if (o->adapter && o->tuned) return cli_usage_error("compare: give --adapter or --tuned, not both");
    const char *metric = o->metric;
    if (!tuna_eval_metric_known(metric) || !strcmp(metric, "loss") || !strcmp(metric, "ppl"))
        return cli_usage_error("compare: unknown --metric '%s' (exact_match, contains, rouge_l, json_valid, json_fields, regex)", metric);
    if (!strcmp(metric, "regex") && !o->regex) return cli_usage_error("compare: --metric regex needs --regex PATTERN");
    if (o->regex && tuna_score_regex("", o->regex) < 0) return cli_usage_error("--regex: the pattern does not compile: %s", o->regex);
    if (o->fewshot && strcmp(o->fewshot, "turns") && strcmp(o->fewshot, "document"))
        return cli_usage_error("compare: --fewshot must be turns or document (got '%s')", o->fewshot);
    if ((rc = parse_shots(o))) return rc;
    if (o->kmax > 0 && !o->train) return cli_usage_error("compare: --shots above 0 need --train FILE (the in-context examples)");
    if (!o->n_shots && !o->adapter && !o->tuned)
        return cli_usage_error("compare: nothing to run (--shots none and no --adapter or --tuned)");
    if (o->report && (rc = check_report_paths(o))) return rc;
    return o->append ? load_prior(o) : 0;
}

/* ---- what one comparison holds ---- */
typedef struct {
    tuna_model *m;
    tuna_tokenizer *tok;
    tuna_template *tmpl;
    char *tsrc;
    tuna_eval_example *ev, *tr, *picked; /* picked: shallow copies of tr's examples */
    int n_ev, n_tr, skipped_ev, skipped_tr, passed_over;
    row_result rows[17];
    int n_rows;
    tuna_shot_format shot_fmt, zero_fmt;
    int ctx;
    tuna_sample_args sa;
    int32_t eos[16];
    const char *stops[17], *doc_stops[17];
    tuna_gen_opts go, go_doc; /* go_doc also stops at the document's example separator */
    json_t *all;
} compare_run;

/* the model, its template, the eval set and (for shots) the train set */
static tuna_status compare_load(compare_run *r, const compare_opts *o) {
    tuna_status st = cli_load_model(&(cli_model_spec){.dir = o->model}, &r->m, &r->tok);
    if (st == TUNA_OK) st = tuna_dataset_template(&r->tmpl, r->tok, o->tmpl_arg, &r->tsrc);
    if (st == TUNA_OK) st = read_examples(o->eval, o->limit, &r->ev, &r->n_ev, &r->skipped_ev);
    if (st == TUNA_OK && r->n_ev == 0) st = core_fail(TUNA_ERR_FORMAT, "%s: no records with a reference response", o->eval);
    if (st == TUNA_OK && o->kmax) st = read_examples(o->train, 0, &r->tr, &r->n_tr, &r->skipped_tr);
    if (st != TUNA_OK) return st;
    /* chat models take shots as turns; base models (no template of their own) as a document */
    r->shot_fmt = o->fewshot ? (!strcmp(o->fewshot, "turns") ? TUNA_SHOTS_TURNS : TUNA_SHOTS_DOCUMENT)
                             : tuna_tokenizer_chat_template(r->tok) ? TUNA_SHOTS_TURNS : TUNA_SHOTS_DOCUMENT;
    r->zero_fmt = r->tmpl ? TUNA_SHOTS_TURNS : TUNA_SHOTS_DOCUMENT;
    r->ctx = tuna_model_config(r->m)->max_positions;
    return TUNA_OK;
}

/* the generation settings: one for prompts, one for documents */
static tuna_status compare_gen_opts(compare_run *r, const compare_opts *o) {
    int n_eos = 0;
    tuna_status st = cli_gen_setup(o->model, r->tok, &o->gf, 0, r->eos, &n_eos, &r->sa);
    if (st != TUNA_OK) return st;
    int n_stop = 0;
    for (int i = 0; i < o->gf.n_stop; i++) r->stops[n_stop++] = o->gf.stops[i];
    r->go = (tuna_gen_opts){.max_new_tokens = o->gf.max_new, .sample = r->sa, .eos_ids = r->eos, .n_eos = n_eos, .stop = r->stops,
                            .n_stop = n_stop};
    r->go_doc = r->go;
    memcpy(r->doc_stops, r->stops, sizeof r->doc_stops);
    r->doc_stops[n_stop] = "\n\n"; /* the document's example separator */
    r->go_doc.stop = r->doc_stops;
    r->go_doc.n_stop = n_stop + 1;
    return TUNA_OK;
}

/* the token count of the longest zero-shot eval query, in *longest */
static tuna_status longest_query(const compare_run *r, size_t *longest) {
    *longest = 0;
    for (int i = 0; i < r->n_ev; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        tuna_status st = tuna_eval_prompt(r->tok, r->tmpl, &r->ev[i], NULL, 0, r->shot_fmt, &ids, &n, NULL);
        free(ids);
        if (st != TUNA_OK) return st;
        if (n > *longest) *longest = n;
    }
    return TUNA_OK;
}

/* order[0..n) shuffled by seed (Fisher-Yates) */
static void shuffled_order(int *order, int n, int seed) {
    tuna_rng rng;
    rng_seed(&rng, (uint64_t)seed, 0x5107);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng_u32(&rng) % (uint32_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* in-context examples: the train set in a seeded order; an example is
 * taken when it fits the room the longest eval query leaves */
static tuna_status pick_shots(compare_run *r, const compare_opts *o) {
    int kmax = o->kmax;
    size_t longest;
    tuna_status st = longest_query(r, &longest);
    if (st != TUNA_OK) return st;
    long room = (long)r->ctx - o->gf.max_new - (long)longest, per_shot = room / kmax;
    int *order = malloc((size_t)(r->n_tr ? r->n_tr : 1) * sizeof *order);
    r->picked = calloc((size_t)kmax, sizeof *r->picked);
    if (!order || !r->picked) { free(order); return core_fail(TUNA_ERR_NOMEM, "out of memory"); }
    shuffled_order(order, r->n_tr, o->seed);
    int got = 0;
    int32_t *ids0 = NULL;
    size_t n0 = 0;
    st = tuna_eval_prompt(r->tok, r->tmpl, &r->ev[0], NULL, 0, r->shot_fmt, &ids0, &n0, NULL);
    free(ids0);
    for (int i = 0; st == TUNA_OK && i < r->n_tr && got < kmax; i++) {
        int32_t *ids = NULL;
        size_t n1 = 0;
        st = tuna_eval_prompt(r->tok, r->tmpl, &r->ev[0], &r->tr[order[i]], 1, r->shot_fmt, &ids, &n1, NULL);
        free(ids);
        if (st != TUNA_OK) break;
        if ((long)n1 - (long)n0 <= per_shot) r->picked[got++] = r->tr[order[i]];
        else r->passed_over++;
    }
    free(order);
    if (st != TUNA_OK || got == kmax) return st;
    return core_fail(TUNA_ERR_ARG, "%s: only %d of %d train examples fit in %ld tokens each (the model's %d positions less "
                     "--max-new-tokens %d and the longest query, %zu tokens); use fewer --shots", o->train, got, r->n_tr,
                     per_shot > 0 ? per_shot : 0, r->ctx, o->gf.max_new, longest);
}

/* the rows: the base model at each shot count, then the fine-tuned model, zero-shot */
static tuna_status compare_rows(compare_run *r, const compare_opts *o) {
    tuna_status st = TUNA_OK;
    for (int s = 0; s < o->n_shots && st == TUNA_OK; s++) {
        row_result *w = &r->rows[r->n_rows];
        int k = o->shots[s];
        tuna_shot_format f = k ? r->shot_fmt : r->zero_fmt;
        snprintf(w->name, sizeof w->name, k ? "%d-shot" : "zero-shot", k);
        w->shots = k;
        w->format = f == TUNA_SHOTS_TURNS ? "chat template" : "document";
        if (!o->json) fprintf(stderr, "%s ...\n", w->name);
        st = run_row(r->m, r->tok, r->tmpl, r->ev, r->n_ev, r->picked, k, f, o->batch, f == TUNA_SHOTS_DOCUMENT ? &r->go_doc : &r->go,
                     o->regex, r->ctx, &w->summary, &w->samples);
        if (st == TUNA_OK) r->n_rows++;
    }
    if (st != TUNA_OK || !(o->adapter || o->tuned)) return st;
    row_result *w = &r->rows[r->n_rows];
    if (o->tuned) {
        tuna_model_free(r->m);
        r->m = NULL;
        st = tuna_model_load_quantized(&r->m, o->tuned, cli_load_mode(NULL));
    } else {
        st = tuna_peft_load(r->m, o->adapter);
    }
    snprintf(w->name, sizeof w->name, "fine-tuned");
    w->shots = 0;
    w->format = r->zero_fmt == TUNA_SHOTS_TURNS ? "chat template" : "document";
    if (st == TUNA_OK) {
        if (!o->json) fprintf(stderr, "%s ...\n", w->name);
        st = run_row(r->m, r->tok, r->tmpl, r->ev, r->n_ev, NULL, 0, r->zero_fmt, o->batch,
                     r->zero_fmt == TUNA_SHOTS_DOCUMENT ? &r->go_doc : &r->go, o->regex, r->ctx, &w->summary, &w->samples);
    }
    if (st == TUNA_OK) r->n_rows++;
    return st;
}

/* one row of compare.json from a row's summary */
static json_t *row_json(const row_result *w, const char *metric) {
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(w->name));
    json_object_set_new(o, "shots", json_integer(w->shots));
    json_object_set_new(o, "prompt", json_string(w->format));
    double v = num(w->summary, metric);
    json_object_set_new(o, "metric", isfinite(v) ? json_real(v) : json_null());
    json_object_set_new(o, "mean_prompt_tokens", json_real(num(w->summary, "mean_prompt_tokens")));
    json_object_set_new(o, "mean_latency_s", json_real(num(w->summary, "mean_latency_s")));
    json_object_set_new(o, "tokens_per_s", json_real(num(w->summary, "tokens_per_s")));
    json_object_set_new(o, "summary", json_incref(w->summary));
    json_object_set_new(o, "samples", json_incref(w->samples));
    return o;
}

/* the whole comparison (compare.json): settings, sample queries, rows */
static json_t *compare_json(const compare_run *r, const compare_opts *o) {
    json_t *all = json_object();
    json_object_set_new(all, "model", json_string(o->model));
    if (o->adapter) json_object_set_new(all, "adapter", json_string(o->adapter));
    if (o->tuned) json_object_set_new(all, "tuned", json_string(o->tuned));
    json_object_set_new(all, "eval", json_string(o->eval));
    if (o->train) json_object_set_new(all, "train", json_string(o->train));
    json_object_set_new(all, "metric", json_string(o->metric));
    json_object_set_new(all, "examples", json_integer(r->n_ev));
    json_object_set_new(all, "seed", json_integer(o->seed));
    json_object_set_new(all, "max_new_tokens", json_integer(o->gf.max_new));
    json_object_set_new(all, "batch", json_integer(o->batch));
    json_object_set_new(all, "greedy", json_boolean(r->sa.temperature == 0));
    json_t *sp = json_array();
    const tuna_eval_example *ev = r->ev;
    for (int i = 0; i < r->n_ev && i < N_SAMPLES; i++) {
        const char *user = ev[i].prompt_text ? ev[i].prompt_text : ev[i].n_msgs ? ev[i].msgs[ev[i].n_msgs - 1].content : "";
        json_array_append_new(sp, json_pack("{s:s,s:s}", "prompt", user, "reference", ev[i].reference));
    }
    json_object_set_new(all, "samples", sp);
    json_t *ja = json_array();
    /* rows of an earlier comparison on the same eval set come first (--append) */
    size_t pi;
    json_t *pr;
    json_array_foreach(json_object_get(o->prior, "rows"), pi, pr) json_array_append(ja, pr);
    for (int i = 0; i < r->n_rows; i++) json_array_append_new(ja, row_json(&r->rows[i], o->metric));
    json_object_set_new(all, "rows", ja);
    return all;
}

/* the comparison as a table on stdout */
static void print_table(const compare_run *r, const compare_opts *o) {
    const char *metric = o->metric;
    printf("%d eval examples from %s", r->n_ev, o->eval);
    if (r->skipped_ev) printf(" (%d without a reference response skipped)", r->skipped_ev);
    if (o->kmax) printf("; in-context examples from %s (seed %d%s)", o->train, o->seed, r->passed_over ? ", some passed over as too long" : "");
    /* with field accuracy, JSON validity beside it: a format problem and a
     * knowledge problem look different */
    int with_valid = !strcmp(metric, "json_fields");
    printf("\n%-12s %-14s %12s", "setting", "prompt", metric);
    if (with_valid) printf(" %11s", "json_valid");
    printf(" %14s %12s %10s\n", "prompt tokens", "latency s", "tokens/s");
    size_t ri;
    json_t *w;
    json_array_foreach(json_object_get(r->all, "rows"), ri, w) {
        json_t *mvj = json_object_get(w, "metric");
        char mv[32];
        if (json_is_number(mvj)) snprintf(mv, sizeof mv, "%.4f", json_number_value(mvj));
        else snprintf(mv, sizeof mv, "n/a");
        printf("%-12s %-14s %12s", json_string_value(json_object_get(w, "name")), json_string_value(json_object_get(w, "prompt")), mv);
        if (with_valid) printf(" %11.4f", num(json_object_get(w, "summary"), "json_valid"));
        printf(" %14.1f %12.4f %10.1f\n", json_number_value(json_object_get(w, "mean_prompt_tokens")),
               json_number_value(json_object_get(w, "mean_latency_s")), json_number_value(json_object_get(w, "tokens_per_s")));
    }
}

/* --report DIR: DIR/compare.json and DIR/report.html */
static tuna_status write_report(const compare_run *r, const compare_opts *o) {
    char path[PATH_MAX];
    if (mkdir(o->report, 0755) != 0 && errno != EEXIST)
        return core_fail(atomic_write_status(errno), "%s: cannot create: %s", o->report, strerror(errno));
    snprintf(path, sizeof path, "%s/compare.json", o->report);
    tuna_status st = atomic_file_write_json(path, r->all, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
    if (st == TUNA_OK) st = tuna_report_write(o->report);
    if (st == TUNA_OK && !o->json) printf("report: %s/report.html\n", o->report);
    return st;
}

/* the comparison on stdout (table or --json), and with --report its files */
static tuna_status compare_output(compare_run *r, const compare_opts *o) {
    r->all = compare_json(r, o);
    if (o->json) {
        char *s = json_dumps(r->all, JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (s) puts(s);
        free(s);
    } else print_table(r, o);
    if (r->passed_over && !o->json) fprintf(stderr, "tuna: %d train examples passed over as too long for the context\n", r->passed_over);
    return o->report ? write_report(r, o) : TUNA_OK;
}

static void compare_run_free(compare_run *r) {
    json_decref(r->all);
    for (int i = 0; i < r->n_rows; i++) {
        json_decref(r->rows[i].summary);
        json_decref(r->rows[i].samples);
    }
    free(r->picked); /* shallow copies of tr's examples */
    free_examples(r->ev, r->n_ev);
    free_examples(r->tr, r->n_tr);
    tuna_template_free(r->tmpl);
    free(r->tsrc);
    tuna_tokenizer_free(r->tok);
    tuna_model_free(r->m);
}

int cmd_compare(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(compare_help, stdout); return 0; }
    compare_opts o;
    int rc = compare_parse(&o, argc, argv);
    if (rc) return rc;
    compare_run r = {0};
    tuna_status st = compare_load(&r, &o);
    if (st == TUNA_OK) st = compare_gen_opts(&r, &o);
    if (st == TUNA_OK && o.kmax) st = pick_shots(&r, &o);
    if (st == TUNA_OK) st = compare_rows(&r, &o);
    if (st == TUNA_OK) st = compare_output(&r, &o);
    compare_run_free(&r);
    json_decref(o.prior);
    return st == TUNA_OK ? 0 : cli_status_error(st);
}
