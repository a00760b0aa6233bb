/* cmd_data_tokens.c — the token-level data commands: `tuna data inspect`
 * (what the model will see: formats, lengths, masks, stop tokens, one example
 * with its counted tokens highlighted) and `tuna data tokenize` (the
 * pre-tokenized {"input_ids","labels"} JSONL other tools can read). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_paths.h"
#include "commands.h"
#include "io/atomic_file.h"
#include "tuna_dataset.h"
#include "core/error.h"

static const char *inspect_help =
    "usage: tuna data inspect --model DIR FILE [--seq-len N] [--template NAME|FILE] [--loss-on response|all] [--json]\n"
    "\n"
    "Reads FILE like `tuna sft` does and reports: records by format, bad records\n"
    "(FILE:LINE: reason), a histogram of token lengths, the share truncated at\n"
    "--seq-len (default 2048), and, after right truncation to --seq-len, counted vs\n"
    "masked tokens, examples with no counted token, the share whose last counted\n"
    "token is EOS or an end-of-turn token,\n"
    "messages by role, and the first example with its counted tokens marked\n"
    "(green on a terminal, [[brackets]] otherwise; its first 4096 bytes, then how\n"
    "many were left out).\n";

static const char *tokenize_help =
    "usage: tuna data tokenize --model DIR FILE --out F [--seq-len N] [--truncate right|left|drop]\n"
    "                          [--template NAME|FILE] [--loss-on response|all]\n"
    "\n"
    "Writes the pre-tokenized JSONL {\"input_ids\":[...],\"labels\":[...]} that `tuna sft`\n"
    "and `tuna eval` (and outside tools) read: the records rendered with the chat\n"
    "template, labels -100 on the tokens the loss does not count.\n";

typedef struct { int printed; } bad_ctx;

static void on_bad(void *ctx, const tuna_bad_record *b) {
    bad_ctx *c = ctx;
    if (c->printed++ < 10) fprintf(stderr, "%s\n", b->message);
    else if (c->printed == 11) fprintf(stderr, "(more bad records not shown)\n");
}

static int parse_common(int argc, char **argv, const char **model, const char **file, const char **out,
                        const char **tmpl_arg, tuna_dataset_options *o, int *json, int *seq_len) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--model") && v) *model = argv[++i];
        else if (!strcmp(a, "--out") && v && out) *out = argv[++i];
        else if (!strcmp(a, "--template") && v) *tmpl_arg = argv[++i];
        else if (!strcmp(a, "--json") && json) *json = 1;
        else if (!strcmp(a, "--seq-len")) { if (cli_parse_int(a, v, 1, 1 << 24, seq_len)) return 2; i++; }
        else if (!strcmp(a, "--loss-on") && v) {
            i++;
            if (!strcmp(v, "all")) o->loss_on_all = 1;
            else if (!strcmp(v, "response")) o->loss_on_all = 0;
            else return cli_usage_error("--loss-on must be response or all");
        } else if (!strcmp(a, "--truncate") && v) {
            i++;
            if (!strcmp(v, "right")) o->truncate = TUNA_TRUNCATE_RIGHT;
            else if (!strcmp(v, "left")) o->truncate = TUNA_TRUNCATE_LEFT;
            else if (!strcmp(v, "drop")) o->truncate = TUNA_TRUNCATE_DROP;
            else return cli_usage_error("--truncate must be right, left or drop");
        } else if (a[0] == '-' ) return cli_usage_error("data: unknown option '%s'", a);
        else if (!*file) *file = a;
        else return cli_usage_error("data: one FILE at a time (got '%s' and '%s')", *file, a);
    }
    if (!*model || !*file) return cli_usage_error("data: --model DIR and FILE are required");
    return 0;
}

/* At most this many bytes of the example's text are printed: a record can be
 * hundreds of megabytes. */
enum { EXCERPT_BYTES = 4096 };

/* prints one example, counted runs marked, cut after EXCERPT_BYTES of text
 * (whole tokens) with a line saying how many bytes were left out */
static void show_example(tuna_tokenizer *tok, const int32_t *ids, const int32_t *labels, size_t n, int tty) {
    int in = 0;
    size_t shown = 0, left = 0;
    tuna_detok_stream *ds = NULL;
    if (tuna_detok_stream_new(&ds, tok, 0) != TUNA_OK) return;
    const char *t;
    size_t len;
    for (size_t i = 0; i < n; i++) {
        int counted = i > 0 && labels[i] != -100;
        if (tuna_detok_stream_push(ds, ids[i], &t, &len) != TUNA_OK) break;
        if (left || shown + len > EXCERPT_BYTES) { left += len; continue; }
        if (counted != in) {
            fputs(counted ? (tty ? "\033[1;32m" : "[[") : (tty ? "\033[0m" : "]]"), stdout);
            in = counted;
        }
        fwrite(t, 1, len, stdout);
        shown += len;
    }
    if (tuna_detok_stream_finish(ds, &t, &len) == TUNA_OK) {
        if (left || shown + len > EXCERPT_BYTES) left += len;
        else fwrite(t, 1, len, stdout);
    }
    tuna_detok_stream_free(ds);
    if (in) fputs(tty ? "\033[0m" : "]]", stdout);
    fputc('\n', stdout);
    if (left) printf("[... %zu more bytes of this example not shown]\n", left);
}

int cmd_data_inspect(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(inspect_help, stdout); return 0; }
    const char *model = NULL, *file = NULL, *tmpl_arg = NULL;
    int json = 0, seq_len = 2048;
    tuna_dataset_options o;
    tuna_dataset_options_init(&o);
    int rc = parse_common(argc, argv, &model, &file, NULL, &tmpl_arg, &o, &json, &seq_len);
    if (rc) return rc;
    tuna_tokenizer *tok = NULL;
    tuna_template *tmpl = NULL;
    tuna_data_reader *r = NULL;
    bad_ctx bc = {0};
    o.data.on_bad = on_bad;
    o.data.ctx = &bc;
    o.data.max_bad = 1.0; /* inspect reports, it does not refuse */
    tuna_status st = tuna_tokenizer_load(&tok, model);
    if (st == TUNA_OK) st = tuna_dataset_template(&tmpl, tok, tmpl_arg, NULL);
    if (st == TUNA_OK) st = tuna_data_reader_open(&r, file, &o.data);
    if (st != TUNA_OK) { rc = cli_status_error(st); goto done; }
    size_t cap = 1024, n_ex = 0;
    int64_t *lens = malloc(cap * sizeof *lens);
    long roles[3] = {0}, truncated = 0, no_counted = 0, ends_stop = 0, failed = 0;
    int64_t tokens = 0, counted = 0;
    int32_t *ex_ids = NULL, *ex_labels = NULL;
    size_t ex_n = 0;
    tuna_record rec = {0};
    int got = 1;
    int32_t eos = tuna_tokenizer_eos_id(tok);
    while ((st = tuna_data_reader_next(r, &rec, &got)) == TUNA_OK && got) {
        for (int m = 0; m < rec.n_messages; m++) roles[rec.messages[m].role]++;
        int32_t *ids = NULL, *labels = NULL;
        size_t n = 0;
        if (tuna_dataset_encode_record(&rec, tok, tmpl, o.loss_on_all, &ids, &labels, &n, NULL) != TUNA_OK) {
            if (failed++ < 10) fprintf(stderr, "%s:%ld: %s\n", file, rec.line, tuna_last_error());
            continue;
        }
        if (n_ex == cap) { cap *= 2; lens = realloc(lens, cap * sizeof *lens); }
        lens[n_ex++] = (int64_t)n;
        if (n > (size_t)seq_len) truncated++;
        /* counted as training will see them: after truncation to --seq-len (right) */
        size_t kept = n < (size_t)seq_len ? n : (size_t)seq_len;
        int64_t c = 0;
        int32_t last = -1;
        for (size_t i = 1; i < kept; i++)
            if (labels[i] != -100) { c++; last = labels[i]; }
        tokens += (int64_t)kept;
        counted += c;
        if (!c) no_counted++;
        else if (last == eos || tuna_tokenizer_is_special(tok, last)) ends_stop++;
        if (!ex_ids) { ex_ids = ids; ex_labels = labels; ex_n = n; }
        else { free(ids); free(labels); }
    }
    tuna_record_clear(&rec);
    tuna_data_stats ds;
    tuna_data_reader_stats(r, &ds);
    if (st != TUNA_OK) { rc = cli_status_error(st); free(lens); free(ex_ids); free(ex_labels); goto done; }
    int64_t maxlen = 0;
    for (size_t i = 0; i < n_ex; i++) maxlen = lens[i] > maxlen ? lens[i] : maxlen;
    double share = n_ex ? 1.0 / (double)n_ex : 0;
    if (json) {
        printf("{\"records\":%ld,\"good\":%ld,\"bad\":%ld,\"examples\":%zu,\"encode_failures\":%ld,\"formats\":{", ds.records,
               ds.good, ds.bad, n_ex, failed);
        int first = 1;
        for (int f = 0; f < TUNA_FORMAT_COUNT; f++)
            if (ds.by_format[f]) { printf("%s\"%s\":%ld", first ? "" : ",", tuna_record_format_name((tuna_record_format)f), ds.by_format[f]); first = 0; }
        printf("},\"bad_by_kind\":{");
        first = 1;
        for (int k = 0; k < TUNA_BAD_COUNT; k++)
            if (ds.bad_by_kind[k]) { printf("%s\"%s\":%ld", first ? "" : ",", tuna_bad_key((tuna_bad_kind)k), ds.bad_by_kind[k]); first = 0; }
        printf("},\"tokens\":%lld,\"counted\":%lld,\"counted_share\":%.6g,\"max_length\":%lld,\"seq_len\":%d,"
               "\"truncated_share\":%.6g,\"no_counted\":%ld,\"ends_with_stop_share\":%.6g,"
               "\"roles\":{\"system\":%ld,\"user\":%ld,\"assistant\":%ld},\"lengths\":[",
               (long long)tokens, (long long)counted, tokens ? (double)counted / tokens : 0, (long long)maxlen, seq_len,
               truncated * share, no_counted, ends_stop * share, roles[0], roles[1], roles[2]);
        for (size_t i = 0; i < n_ex; i++) printf("%s%lld", i ? "," : "", (long long)lens[i]);
        printf("]}\n");
    } else {
        printf("%s: %ld records, %ld good, %ld bad\n", file, ds.records, ds.good, ds.bad);
        for (int f = 0; f < TUNA_FORMAT_COUNT; f++)
            if (ds.by_format[f]) printf("  format %-20s %ld\n", tuna_record_format_name((tuna_record_format)f), ds.by_format[f]);
        for (int k = 0; k < TUNA_BAD_COUNT; k++)
            if (ds.bad_by_kind[k]) printf("  bad: %-32s %ld\n", tuna_bad_summary((tuna_bad_kind)k), ds.bad_by_kind[k]);
        if (failed) printf("  could not be encoded: %ld (see the messages above)\n", failed);
        printf("token lengths (%zu examples, max %lld):\n", n_ex, (long long)maxlen);
        /* 12 bins over [0, max], bars scaled to the fullest bin */
        int bins = 12;
        long hist[12] = {0}, top = 1;
        for (size_t i = 0; i < n_ex; i++) {
            int b = maxlen ? (int)((lens[i] * bins - 1) / (maxlen > 0 ? maxlen : 1)) : 0;
            if (b < 0) b = 0;
            if (b >= bins) b = bins - 1;
            hist[b]++;
        }
        for (int b = 0; b < bins; b++) top = hist[b] > top ? hist[b] : top;
        for (int b = 0; b < bins; b++) {
            long lo = (long)(maxlen * b / bins) + 1, hi = (long)(maxlen * (b + 1) / bins);
            int w = (int)(40.0 * hist[b] / top + 0.5);
            printf("  %6ld-%-6ld %6ld ", lo, hi, hist[b]);
            for (int k = 0; k < w; k++) fputs("\xe2\x96\x88", stdout);
            fputc('\n', stdout);
        }
        printf("truncated at %d tokens:       %.1f%% (%ld)\n", seq_len, 100.0 * truncated * share, truncated);
        printf("counted tokens (loss):        %.1f%% of %lld (masked %.1f%%)\n",
               tokens ? 100.0 * counted / tokens : 0, (long long)tokens, tokens ? 100.0 - 100.0 * counted / tokens : 0);
        printf("examples with no counted token: %ld\n", no_counted);
        printf("last counted token is a stop token (EOS / end of turn): %.1f%%\n", 100.0 * ends_stop * share);
        printf("messages by role: system %ld, user %ld, assistant %ld\n", roles[0], roles[1], roles[2]);
        if (ex_ids) {
            int tty = isatty(1);
            printf("first example (%zu tokens; counted tokens %s):\n", ex_n, tty ? "in green" : "in [[ ]]");
            show_example(tok, ex_ids, ex_labels, ex_n, tty);
        }
    }
    free(lens);
    free(ex_ids);
    free(ex_labels);
done:
    tuna_data_reader_free(r);
    tuna_template_free(tmpl);
    tuna_tokenizer_free(tok);
    return rc;
}

int cmd_data_tokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(tokenize_help, stdout); return 0; }
    const char *model = NULL, *file = NULL, *out = NULL, *tmpl_arg = NULL;
    int seq_len = 0;
    tuna_dataset_options o;
    tuna_dataset_options_init(&o);
    int rc = parse_common(argc, argv, &model, &file, &out, &tmpl_arg, &o, NULL, &seq_len);
    if (rc) return rc;
    if (!out) return cli_usage_error("data tokenize: --out F is required");
    const cli_path ins[] = {{"FILE", file, CLI_FILE}, {"--model", model, CLI_DIR}, {"--template", tmpl_arg, CLI_FILE}};
    const cli_path outs[] = {{"--out", out, CLI_FILE}};
    int prc = cli_check_paths("data tokenize", ins, 3, outs, 1);
    if (prc) return prc;
    o.seq_len = seq_len;
    bad_ctx bc = {0};
    o.data.on_bad = on_bad;
    o.data.ctx = &bc;
    /* streamed record by record: memory stays bounded whatever the file size */
    tuna_tokenizer *tok = NULL;
    tuna_template *tmpl = NULL;
    tuna_data_reader *r = NULL;
    atomic_file af = {0};
    FILE *f = NULL;
    long examples = 0, truncated = 0, dropped = 0;
    int64_t tokens = 0, counted = 0;
    tuna_status st = tuna_tokenizer_load(&tok, model);
    if (st == TUNA_OK) st = tuna_dataset_template(&tmpl, tok, tmpl_arg, NULL);
    if (st == TUNA_OK) st = tuna_data_reader_open(&r, file, &o.data);
    if (st == TUNA_OK && (st = atomic_file_open(&af, out)) == TUNA_OK) f = af.f;
    tuna_record rec = {0};
    int got = 1;
    while (st == TUNA_OK && (st = tuna_data_reader_next(r, &rec, &got)) == TUNA_OK && got) {
        int32_t *ids = NULL, *labels = NULL;
        size_t n = 0;
        st = tuna_dataset_encode_record(&rec, tok, tmpl, o.loss_on_all, &ids, &labels, &n, NULL);
        if (st != TUNA_OK) {
            char msg[900];
            snprintf(msg, sizeof msg, "%s", tuna_last_error());
            st = core_fail(st, "%s:%ld: %s", file, rec.line, msg);
            break;
        }
        size_t k0 = 0, keep = n;
        if (seq_len > 0 && n > (size_t)seq_len) {
            if (o.truncate == TUNA_TRUNCATE_DROP) { dropped++; free(ids); free(labels); continue; }
            truncated++;
            keep = (size_t)seq_len;
            if (o.truncate == TUNA_TRUNCATE_LEFT) k0 = n - keep;
        }
        fputs("{\"input_ids\":[", f);
        for (size_t k = 0; k < keep; k++) fprintf(f, "%s%d", k ? "," : "", ids[k0 + k]);
        fputs("],\"labels\":[", f);
        for (size_t k = 0; k < keep; k++) {
            fprintf(f, "%s%d", k ? "," : "", labels[k0 + k]);
            counted += k > 0 && labels[k0 + k] != -100;
        }
        fputs("]}\n", f);
        examples++;
        tokens += (int64_t)keep;
        free(ids);
        free(labels);
    }
    tuna_record_clear(&rec);
    tuna_data_stats ds = {0};
    if (r) tuna_data_reader_stats(r, &ds);
    if (f && st == TUNA_OK) st = atomic_file_commit(&af);
    atomic_file_abort(&af);
    if (st == TUNA_OK)
        fprintf(stderr, "%s: %ld examples, %lld tokens, %lld counted; %ld bad records skipped, %ld truncated, %ld dropped\n",
                out, examples, (long long)tokens, (long long)counted, ds.bad, truncated, dropped);
    tuna_data_reader_free(r);
    tuna_template_free(tmpl);
    tuna_tokenizer_free(tok);
    return st == TUNA_OK ? 0 : cli_status_error(st);
}
