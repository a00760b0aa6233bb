/* cmd_tokenizer.c — `tuna tokenizer <subcommand>`: tokenizer building tools.
 * Subcommands: train (byte-level BPE from text files, see
 * include/tuna_tokenizer_train.h). The summary goes to stdout, progress and
 * notes to stderr; bad usage or input exits 2 with "tuna: error: ...". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli_paths.h"
#include "commands.h"
#include "tuna_template.h"
#include "tuna_tokenizer_train.h"

static const char tokenizer_help[] =
    "usage: tuna tokenizer <subcommand> [options]   (tuna tokenizer <subcommand> --help)\n"
    "\n"
    "subcommands:\n"
    "  train    train a byte-level BPE tokenizer (Hugging Face tokenizer.json) on text\n";

static const char train_help[] =
    "usage: tuna tokenizer train --data FILE [--data FILE ...] --vocab-size N --out DIR [--overwrite]\n"
    "                            [--min-frequency N] [--special TOK ...] [--max-bytes N]\n"
    "                            [--regex PATTERN] [--model-max-length N]\n"
    "\n"
    "Trains a GPT-2-style byte-level BPE tokenizer and writes tokenizer.json,\n"
    "tokenizer_config.json and special_tokens_map.json into DIR (Hugging Face\n"
    "format; all 256 bytes are tokens, so any text round-trips).\n"
    "  --data FILE          training text: plain UTF-8 (read line by line), or JSONL\n"
    "                       with {\"text\": ...} records when FILE ends in .jsonl (or,\n"
    "                       for other names and pipes, when its first line is one)\n"
    "  --vocab-size N       vocabulary size including special tokens (>= 256 + specials)\n"
    "  --out DIR            output folder (created if missing; may hold other files)\n"
    "  --overwrite          replace DIR's tokenizer files (without it they are refused)\n"
    "  --min-frequency N    stop merging when the best pair occurs fewer times (default 2)\n"
    "  --special TOK        special token (repeatable; replaces the defaults). The first\n"
    "                       is bos/eos/pad/unk. Default: <|endoftext|> <|im_start|> <|im_end|>\n"
    "                       (ids 0, 1, 2); a ChatML chat_template is written when both\n"
    "                       <|im_start|> and <|im_end|> are special tokens\n"
    "  --max-bytes N        read at most N bytes of input, whole lines (suffix K, M or G\n"
    "                       for KiB, MiB, GiB; default: no limit)\n"
    "  --regex PATTERN      pre-tokenize with this Split regex instead of GPT-2's\n"
    "  --model-max-length N model_max_length in tokenizer_config.json (default 2048)\n"
    "  --chat-template NAME|FILE  chat template for tokenizer_config.json: a built-in\n"
    "                       (chatml, llama3, llama2, alpaca, zephyr) or a Jinja file\n";

/* Parses a byte count with an optional K/M/G suffix; 0 on success. */
static int parse_bytes(const char *opt, const char *s, int64_t *out) {
    char *end;
    if (!s) return cli_usage_error("%s needs a value", opt), -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    int64_t mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1 << 10, end++;
    else if (*end == 'M' || *end == 'm') mul = 1 << 20, end++;
    else if (*end == 'G' || *end == 'g') mul = 1 << 30, end++;
    if (*s == '\0' || *end != '\0' || errno == ERANGE || v < 1 || v > INT64_MAX / mul)
        return cli_usage_error("%s: '%s' is not a positive byte count (e.g. 500000, 64M)", opt, s), -1;
    *out = v * mul;
    return 0;
}

/* Progress for long inputs only: short runs stay quiet. */
typedef struct { int on; int last_pct; const char *last_stage; } progress_state;

static void progress(void *ctx, const char *stage, int64_t done, int64_t total) {
    progress_state *p = ctx;
    if (!p->last_stage) p->on = !strcmp(stage, "read") && total >= (16 << 20);
    if (!p->on || total <= 0) return;
    int pct = (int)(100 * done / total);
    int same = p->last_stage && !strcmp(p->last_stage, stage);
    if (same && pct < p->last_pct + 10 && !(pct == 100 && p->last_pct != 100)) return;
    p->last_stage = stage;
    p->last_pct = pct;
    fprintf(stderr, "tuna: tokenizer train: %s %3d%% (%lld / %lld %s)\n", !strcmp(stage, "read") ? "reading" : "merging",
            pct, (long long)done, (long long)total, !strcmp(stage, "read") ? "bytes" : "merges");
}

static int cmd_tokenizer_train(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(train_help, stdout); return 0; }
    tuna_bpe_train_opts o;
    tuna_bpe_train_opts_default(&o);
    const char **files = calloc((size_t)argc, sizeof *files), **specials = calloc((size_t)argc, sizeof *specials);
    if (!files || !specials) { free(files); free(specials); return cli_usage_error("out of memory"); }
    const char *out = NULL, *tmpl_arg = NULL;
    char *tmpl_src = NULL;
    int nf = 0, ns = 0, rc = 0, overwrite = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--overwrite")) { overwrite = 1; continue; }
        int takes = !strcmp(a, "--data") || !strcmp(a, "--out") || !strcmp(a, "--special") || !strcmp(a, "--regex") ||
                    !strcmp(a, "--vocab-size") || !strcmp(a, "--min-frequency") || !strcmp(a, "--max-bytes") ||
                    !strcmp(a, "--model-max-length") || !strcmp(a, "--chat-template");
        if (!takes) { rc = cli_usage_error("tokenizer train: unknown option '%s' (try tuna tokenizer train --help)", a); break; }
        if (!v) { rc = cli_usage_error("%s needs a value", a); break; }
        i++;
        if (!strcmp(a, "--data")) files[nf++] = v;
        else if (!strcmp(a, "--special")) specials[ns++] = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--regex")) o.split_regex = v;
        else if (!strcmp(a, "--vocab-size")) rc = cli_parse_int(a, v, 1, 1 << 24, &o.vocab_size) ? 2 : 0;
        else if (!strcmp(a, "--min-frequency")) rc = cli_parse_int(a, v, 0, 1 << 30, &o.min_frequency) ? 2 : 0;
        else if (!strcmp(a, "--model-max-length")) rc = cli_parse_int(a, v, 1, 1 << 30, &o.model_max_length) ? 2 : 0;
        else if (!strcmp(a, "--chat-template")) {
            tmpl_arg = v;
            free(tmpl_src);
            tmpl_src = NULL;
            const char *b = tuna_template_builtin(v);
            if (b) tmpl_src = strdup(b);
            else {
                FILE *f = fopen(v, "rb");
                size_t n = 0, cap = 0;
                char buf[4096];
                size_t k;
                while (f && (k = fread(buf, 1, sizeof buf, f)) > 0) {
                    char *nb = realloc(tmpl_src, cap = n + k + 1);
                    if (!nb) break;
                    tmpl_src = nb;
                    memcpy(tmpl_src + n, buf, k);
                    n += k;
                    tmpl_src[n] = 0;
                }
                if (f) fclose(f);
                if (!f || !tmpl_src) rc = cli_usage_error("--chat-template: '%s' is neither a built-in template nor a readable file", v);
                (void)cap;
            }
            if (!rc) {
                tuna_template *t = NULL;
                if (tuna_template_compile(&t, tmpl_src, strlen(tmpl_src)) != TUNA_OK)
                    rc = cli_usage_error("--chat-template %s: %s", v, tuna_last_error());
                tuna_template_free(t);
            }
            o.chat_template = tmpl_src;
        }
        else rc = parse_bytes(a, v, &o.max_bytes) ? 2 : 0;
    }
    if (!rc && !nf) rc = cli_usage_error("tokenizer train: --data FILE is required");
    if (!rc && !o.vocab_size) rc = cli_usage_error("tokenizer train: --vocab-size N is required");
    if (!rc && !out) rc = cli_usage_error("tokenizer train: --out DIR is required");
    if (!rc) {
        cli_path in[65], outs[] = {{"--out", out, CLI_DIR}};
        int n_in = 0;
        for (int k = 0; k < nf && n_in < 64; k++) in[n_in++] = (cli_path){"--data", files[k], CLI_FILE};
        if (tmpl_arg) in[n_in++] = (cli_path){"--chat-template", tmpl_arg, CLI_FILE};
        rc = cli_check_paths("tokenizer train", in, n_in, outs, 1);
    }
    static const char *const writes[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
    if (!rc) rc = cli_out_names_free("tokenizer train", out, writes, 3, overwrite);
    if (rc) { free(files); free(specials); free(tmpl_src); return rc; }
    o.files = files;
    o.n_files = nf;
    if (ns) { o.special = specials; o.n_special = ns; }
    progress_state ps = {0, 0, NULL};
    o.progress = progress;
    o.progress_ctx = &ps;

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tuna_bpe_train_stats s;
    tuna_status st = tuna_bpe_train(&o, out, &s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(files);
    free(specials);
    free(tmpl_src);
    if (st) return cli_status_error(st);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (s.truncated)
        fprintf(stderr, "tuna: note: input cut at --max-bytes after %lld bytes\n", (long long)s.bytes);
    if (s.vocab_size < o.vocab_size)
        fprintf(stderr, "tuna: note: vocabulary stopped at %d of %d tokens: no pair left that occurs "
                "--min-frequency (%d) times\n", s.vocab_size, o.vocab_size, o.min_frequency);
    printf("%s: %d tokens (%d special, 256 bytes, %d merges) from %lld bytes (%lld sequences, %lld distinct "
           "pre-tokens) in %.2f s\n", out, s.vocab_size, ns ? ns : 3, s.merges, (long long)s.bytes,
           (long long)s.sequences, (long long)s.words, secs);
    return 0;
}

int cmd_tokenizer(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(tokenizer_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_tokenizer_train(argc - 1, argv + 1);
    return cli_usage_error("tokenizer: unknown subcommand '%s' (try tuna tokenizer --help)", argv[1]);
}
