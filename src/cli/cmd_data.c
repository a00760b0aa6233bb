/* cmd_data.c — `tuna data <subcommand>`: tools over training record files
 * (formats in include/tuna_data.h). Subcommands: clean, split. Each bad record
 * is printed as "FILE:LINE: reason" on stderr (the first 20; the counts per
 * reason follow), so nothing is dropped without a word. */
#include <jansson.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include "cli_paths.h"
#include "commands.h"

#define MAX_PRINTED 20

static void data_usage(FILE *f) {
    fprintf(f, "usage: tuna data <subcommand> [options]   (tuna data <subcommand> --help)\n\n"
               "subcommands:\n"
               "  inspect    formats, bad records, token lengths, masks, one rendered example\n"
               "  tokenize   write pre-tokenized {input_ids, labels} JSONL through the chat template\n"
               "  clean      drop bad, duplicate, near-duplicate, too short/long records\n"
               "  split      deterministic train/validation split by hash\n"
               "  synth      seeded synthetic instruction data (story -> JSON) for demos and tests\n\n"
               "Record formats (per record, by its keys; JSONL or one JSON array):\n"
               "  messages, conversations (ShareGPT), instruction/input/output (Alpaca),\n"
               "  prompt/completion, text, prompt?/chosen/rejected (preference), input_ids.\n");
}

static void clean_usage(FILE *f) {
    fprintf(f, "usage: tuna data clean FILE --out F [--dropped F2] [--near-dup X|off] [--min-chars N]\n"
               "                       [--max-chars N] [--shingle K] [--strict] [--max-bad P] [--json]\n\n"
               "Keeps each good record of FILE (byte for byte for JSONL input) in F and writes\n"
               "every dropped record with its reason to F2 (default F.dropped.jsonl) as JSONL\n"
               "{\"file\",\"line\",\"reason\",\"detail\",\"raw\"}. Drops: bad records (invalid JSON or\n"
               "UTF-8, missing keys, wrong types, role order, empty response), records outside\n"
               "the length limits, exact duplicates (same text after NFKC, case folding and\n"
               "white space collapsing) and near duplicates (MinHash/LSH over word shingles).\n"
               "The first of duplicates is kept. Deterministic.\n\n"
               "  --out F          kept records (required)\n"
               "  --dropped F2     dropped records with reasons (default F.dropped.jsonl)\n"
               "  --near-dup X     Jaccard threshold in (0, 1] (default 0.9); off disables\n"
               "  --shingle K      words per shingle (default 5)\n"
               "  --min-chars N    drop records with fewer than N characters of content (default 0: none)\n"
               "  --max-chars N    drop records with more than N characters of content (default 0: none)\n"
               "  --strict         stop at the first bad record (exit 2)\n"
               "  --max-bad P      fail when more than P%% of the records are bad (default 100: clean drops them)\n"
               "  --json           print the counts as one JSON object\n");
}

static void split_usage(FILE *f) {
    fprintf(f, "usage: tuna data split FILE [--val 0.05] [--seed S] [--out-train F] [--out-val F]\n"
               "                       [--strict] [--max-bad P] [--json]\n\n"
               "Sends each good record of FILE to validation when a seeded hash of its\n"
               "normalised text falls below the fraction, else to training. Deterministic,\n"
               "independent of record order; identical records land on the same side.\n"
               "Records are copied byte for byte (JSON array input: one compact line each).\n\n"
               "  --val X          validation fraction in [0, 1] (default 0.05)\n"
               "  --seed S         hash seed (default 0)\n"
               "  --out-train F    default: FILE without .jsonl/.json + .train.jsonl\n"
               "  --out-val F      default: FILE without .jsonl/.json + .val.jsonl\n"
               "  --strict         stop at the first bad record (exit 2)\n"
               "  --max-bad P      fail when more than P%% of the records are bad (default 1)\n"
               "  --json           print the counts as one JSON object\n");
}

typedef struct {
    long printed, total;
    int strict; /* the error message will name the record: no second line */
} bad_printer;

static void print_bad(void *ctx, const tuna_bad_record *b) {
    bad_printer *p = ctx;
    if (p->strict) return;
    p->total++;
    if (p->printed < MAX_PRINTED) {
        fprintf(stderr, "%s\n", b->message);
        p->printed++;
    }
}

static void print_bad_tail(const bad_printer *p) {
    if (p->total > p->printed) fprintf(stderr, "... and %ld more bad records\n", p->total - p->printed);
}

static int parse_long(const char *opt, const char *s, long *out) { return cli_parse_long(opt, s, 0, LONG_MAX, out); }

/* --max-bad P: a percentage, with or without a trailing '%'. */
static int parse_max_bad(const char *s, double *frac) {
    if (!s) { cli_usage_error("--max-bad needs a value"); return -1; }
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    size_t n = strlen(buf);
    if (n && buf[n - 1] == '%') buf[n - 1] = 0;
    double p;
    if (cli_parse_double("--max-bad", buf, 0, 100, &p)) return -1;
    *frac = p / 100.0;
    return 0;
}

static void print_bad_counts(FILE *f, const tuna_data_stats *d) {
    for (int k = 0; k < TUNA_BAD_COUNT; k++)
        if (d->bad_by_kind[k])
            fprintf(f, "  bad: %-34s %ld\n", tuna_bad_summary((tuna_bad_kind)k), d->bad_by_kind[k]);
}

static json_t *bad_counts_json(const tuna_data_stats *d) {
    json_t *o = json_object();
    for (int k = 0; k < TUNA_BAD_COUNT; k++)
        json_object_set_new(o, tuna_bad_key((tuna_bad_kind)k), json_integer(d->bad_by_kind[k]));
    return o;
}

static int print_json(json_t *o) {
    char *s = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    if (!s) return 1;
    printf("%s\n", s);
    free(s);
    return 0;
}

static int data_clean(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { clean_usage(stdout); return 0; }
    tuna_clean_options o;
    tuna_clean_options_init(&o);
    const char *in = NULL, *out = NULL, *dropped = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--strict")) o.data.strict = 1;
        else if (!strcmp(a, "--out")) { if (!v) return cli_usage_error("--out needs a value"); out = v; i++; }
        else if (!strcmp(a, "--dropped")) { if (!v) return cli_usage_error("--dropped needs a value"); dropped = v; i++; }
        else if (!strcmp(a, "--near-dup")) {
            if (v && !strcmp(v, "off")) o.near_dup = 2.0;
            else if (cli_parse_double(a, v, 1e-9, 1, &o.near_dup)) return 2;
            i++;
        } else if (!strcmp(a, "--shingle")) {
            int k;
            if (cli_parse_int(a, v, 1, 64, &k)) return 2;
            o.shingle_words = k;
            i++;
        } else if (!strcmp(a, "--min-chars")) { if (parse_long(a, v, &o.min_chars)) return 2; i++; }
        else if (!strcmp(a, "--max-chars")) { if (parse_long(a, v, &o.max_chars)) return 2; i++; }
        else if (!strcmp(a, "--max-bad")) { if (parse_max_bad(v, &o.data.max_bad)) return 2; i++; }
        else if (a[0] == '-' && a[1]) return cli_usage_error("data clean: unknown option '%s' (try tuna data clean --help)", a);
        else if (!in) in = a;
        else return cli_usage_error("data clean: more than one input file ('%s', '%s')", in, a);
    }
    if (!in) return cli_usage_error("data clean: an input FILE is required (try tuna data clean --help)");
    if (!out) return cli_usage_error("data clean: --out is required");
    if (o.max_chars && o.min_chars > o.max_chars)
        return cli_usage_error("data clean: --min-chars %ld is above --max-chars %ld", o.min_chars, o.max_chars);
    char *dflt = NULL;
    if (!dropped) {
        size_t n = strlen(out) + 32;
        dflt = malloc(n);
        if (!dflt) return 1;
        snprintf(dflt, n, "%s.dropped.jsonl", out);
        dropped = dflt;
    }
    /* --out may be FILE itself (cleaned in place: read whole before it is replaced) */
    const cli_path ins[] = {{"FILE", in, CLI_FILE}}, outs[] = {{"--out", out, CLI_FILE | CLI_IN_PLACE}, {"--dropped", dropped, CLI_FILE}};
    int prc = cli_check_paths("data clean", ins, 1, outs, 2);
    if (prc) { free(dflt); return prc; }
    bad_printer bp = {0, 0, o.data.strict};
    o.data.on_bad = print_bad;
    o.data.ctx = &bp;
    tuna_clean_stats st;
    tuna_status s = tuna_data_clean(in, out, dropped, &o, &st);
    print_bad_tail(&bp);
    int rc = 0;
    if (s) rc = cli_status_error(s);
    else if (json) {
        json_t *j = json_object(), *r = json_object();
        json_object_set_new(j, "input", json_string(in));
        json_object_set_new(j, "output", json_string(out));
        json_object_set_new(j, "dropped_file", json_string(dropped));
        json_object_set_new(j, "records", json_integer(st.data.records));
        json_object_set_new(j, "kept", json_integer(st.kept));
        json_object_set_new(j, "dropped", json_integer(st.dropped));
        for (int k = 1; k < TUNA_DROP_COUNT; k++)
            json_object_set_new(r, tuna_drop_reason_name((tuna_drop_reason)k), json_integer(st.by_reason[k]));
        json_object_set_new(j, "reasons", r);
        json_object_set_new(j, "bad", bad_counts_json(&st.data));
        json_object_set_new(j, "lsh_bands", json_integer(st.bands));
        json_object_set_new(j, "lsh_rows", json_integer(st.rows));
        rc = print_json(j);
    } else {
        printf("%s: %ld records, %ld kept, %ld dropped\n", in, st.data.records, st.kept, st.dropped);
        print_bad_counts(stdout, &st.data);
        for (int k = 1; k < TUNA_DROP_COUNT; k++)
            printf("  %-39s %ld\n", tuna_drop_reason_name((tuna_drop_reason)k), st.by_reason[k]);
        printf("kept -> %s\ndropped -> %s\n", out, dropped);
    }
    free(dflt);
    return rc;
}

/* FILE without a .jsonl / .json extension, plus suffix. */
static char *stem_plus(const char *path, const char *suffix) {
    size_t n = strlen(path);
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(path, '.');
    if (dot && (!slash || dot > slash) && (!strcmp(dot, ".jsonl") || !strcmp(dot, ".json"))) n = (size_t)(dot - path);
    char *s = malloc(n + strlen(suffix) + 1);
    if (!s) return NULL;
    memcpy(s, path, n);
    strcpy(s + n, suffix);
    return s;
}

static int data_split(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { split_usage(stdout); return 0; }
    tuna_data_options o;
    tuna_data_options_init(&o);
    const char *in = NULL, *out_train = NULL, *out_val = NULL;
    double val = 0.05;
    unsigned long long seed = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--strict")) o.strict = 1;
        else if (!strcmp(a, "--val")) { if (cli_parse_double(a, v, 0, 1, &val)) return 2; i++; }
        else if (!strcmp(a, "--seed")) {
            char *end;
            if (!v || !*v || v[0] == '-') return cli_usage_error("--seed needs a non-negative integer");
            errno = 0;
            seed = strtoull(v, &end, 10);
            if (*end || errno == ERANGE) return cli_usage_error("--seed: '%s' is not an integer in [0, %llu]", v, ULLONG_MAX);
            i++;
        } else if (!strcmp(a, "--out-train")) { if (!v) return cli_usage_error("--out-train needs a value"); out_train = v; i++; }
        else if (!strcmp(a, "--out-val")) { if (!v) return cli_usage_error("--out-val needs a value"); out_val = v; i++; }
        else if (!strcmp(a, "--max-bad")) { if (parse_max_bad(v, &o.max_bad)) return 2; i++; }
        else if (a[0] == '-' && a[1]) return cli_usage_error("data split: unknown option '%s' (try tuna data split --help)", a);
        else if (!in) in = a;
        else return cli_usage_error("data split: more than one input file ('%s', '%s')", in, a);
    }
    if (!in) return cli_usage_error("data split: an input FILE is required (try tuna data split --help)");
    char *dt = out_train ? NULL : stem_plus(in, ".train.jsonl");
    char *dv = out_val ? NULL : stem_plus(in, ".val.jsonl");
    if (!out_train) out_train = dt;
    if (!out_val) out_val = dv;
    int rc = 0;
    if (!out_train || !out_val) rc = 1;
    else {
        const cli_path ins[] = {{"FILE", in, CLI_FILE}}, outs[] = {{"--out-train", out_train, CLI_FILE}, {"--out-val", out_val, CLI_FILE}};
        rc = cli_check_paths("data split", ins, 1, outs, 2);
    }
    if (!rc) {
        bad_printer bp = {0, 0, o.strict};
        o.on_bad = print_bad;
        o.ctx = &bp;
        tuna_split_stats st;
        tuna_status s = tuna_data_split(in, out_train, out_val, val, (uint64_t)seed, &o, &st);
        print_bad_tail(&bp);
        if (s) rc = cli_status_error(s);
        else if (json) {
            json_t *j = json_object();
            json_object_set_new(j, "input", json_string(in));
            json_object_set_new(j, "records", json_integer(st.data.records));
            json_object_set_new(j, "train", json_integer(st.train));
            json_object_set_new(j, "val", json_integer(st.val));
            json_object_set_new(j, "train_file", json_string(out_train));
            json_object_set_new(j, "val_file", json_string(out_val));
            json_object_set_new(j, "bad", bad_counts_json(&st.data));
            rc = print_json(j);
        } else {
            printf("%s: %ld records, %ld bad (skipped)\n", in, st.data.records, st.data.bad);
            print_bad_counts(stdout, &st.data);
            printf("train: %ld -> %s\nval:   %ld -> %s\n", st.train, out_train, st.val, out_val);
        }
    }
    free(dt);
    free(dv);
    return rc;
}

static const char *synth_help =
    "usage: tuna data synth --out DIR [--task story-json|story-json-prefs] [--train N] [--val N] [--eval N] [--seed N]\n"
    "                       [--overwrite]\n"
    "\n"
    "Writes seeded synthetic data (chat records {\"messages\":[user, assistant]},\n"
    "or preference pairs) to DIR/train.jsonl, DIR/val.jsonl and DIR/eval.jsonl,\n"
    "from tuna's own word lists (no outside text); every passage is distinct\n"
    "across the splits.\n"
    "  story-json  a two-to-four sentence story in; its facts out as strict JSON:\n"
    "              {\"who\": ..., \"animal\": ..., \"where\": ..., \"feeling\": ...}\n"
    "              (score with tuna eval --generate: json_valid, json_fields)\n"
    "  story-json-prefs  preference pairs for tuna dpo on harder stories that also\n"
    "              name a second child: {\"prompt\",\"chosen\",\"rejected\"}; chosen is\n"
    "              the correct concise JSON, rejected the other child as \"who\" (60%),\n"
    "              the answer wrapped in chatter (20%) or\n"
    "              malformed JSON (20%); tuna eval on them gives the preference accuracy\n"
    "Defaults: 2000 train, 100 val, 100 eval, seed 1. DIR is written under a\n"
    "temporary name and published whole; an existing non-empty DIR is refused\n"
    "unless --overwrite is given (then replaced once the new one is complete).\n";

static int data_synth(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(synth_help, stdout); return 0; }
    const char *out = NULL, *task = "story-json";
    int n_train = 2000, n_val = 100, n_eval = 100, seed = 1, overwrite = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--out") && v) out = argv[++i];
        else if (!strcmp(a, "--task") && v) task = argv[++i];
        else if (!strcmp(a, "--overwrite")) overwrite = 1;
        else if (!strcmp(a, "--train")) { if (cli_parse_int(a, v, 0, 10000000, &n_train)) return 2; i++; }
        else if (!strcmp(a, "--val")) { if (cli_parse_int(a, v, 0, 10000000, &n_val)) return 2; i++; }
        else if (!strcmp(a, "--eval")) { if (cli_parse_int(a, v, 0, 10000000, &n_eval)) return 2; i++; }
        else if (!strcmp(a, "--seed")) { if (cli_parse_int(a, v, 0, 2147483647, &seed)) return 2; i++; }
        else return cli_usage_error("data synth: unknown option or missing value '%s' (try tuna data synth --help)", a);
    }
    if (!out) return cli_usage_error("data synth: --out DIR is required");
    if (strcmp(task, "story-json") && strcmp(task, "story-json-prefs"))
        return cli_usage_error("data synth: unknown --task '%s' (known: story-json, story-json-prefs)", task);
    cli_out_dir od;
    int rc = cli_out_dir_begin(&od, "data synth", out, overwrite);
    if (rc) return rc;
    tuna_status st = tuna_synth_task(task, od.tmp, n_train, n_val, n_eval, (uint64_t)seed);
    if (st == TUNA_OK) st = cli_out_dir_commit(&od);
    cli_out_dir_abort(&od);
    if (st != TUNA_OK) return cli_status_error(st);
    printf("%s: %d train, %d val, %d eval examples (%s, seed %d)\n", out, n_train, n_val, n_eval, task, seed);
    return 0;
}

int cmd_data(int argc, char **argv) {
    if (argc < 2) { data_usage(stderr); return 2; }
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) { data_usage(stdout); return 0; }
    if (!strcmp(sub, "clean")) return data_clean(argc - 1, argv + 1);
    if (!strcmp(sub, "split")) return data_split(argc - 1, argv + 1);
    if (!strcmp(sub, "inspect")) return cmd_data_inspect(argc - 1, argv + 1);
    if (!strcmp(sub, "tokenize")) return cmd_data_tokenize(argc - 1, argv + 1);
    if (!strcmp(sub, "synth")) return data_synth(argc - 1, argv + 1);
    return cli_usage_error("data: unknown subcommand '%s' (try tuna data --help)", sub);
}
