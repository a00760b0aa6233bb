/* cmd_tokenize.c — `tuna tokenize` and `tuna detokenize`: line-oriented text
 * <-> ids through a model folder's tokenizer. Outside checks compare this
 * output exactly, so the format is fixed: one output line per input line,
 * ids separated by single spaces, or a compact JSON array with --json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "io/input_file.h"
#include "tuna_tokenizer.h"

static const char tokenize_help[] =
    "usage: tuna tokenize --model DIR [--file F] [--add-special] [--json]\n"
    "\n"
    "Encodes each line of F (or standard input), without its newline, and prints\n"
    "one line of token ids per input line.\n"
    "  --model DIR     model or tokenizer folder (tokenizer.json, tokenizer_config.json;\n"
    "                  or vocab.json + merges.txt; or llama2.c tokenizer.bin)\n"
    "  --file F        read lines from F instead of standard input\n"
    "  --add-special   add the special tokens the tokenizer adds (BOS/EOS), as HF\n"
    "                  add_special_tokens=True; by default none are added\n"
    "  --json          print each line as a JSON array, e.g. [1,15043,3186]\n";

static const char detokenize_help[] =
    "usage: tuna detokenize --model DIR [--file F] [--skip-special]\n"
    "\n"
    "Decodes each line of token ids (separated by spaces or commas; a JSON array\n"
    "also works) from F or standard input, and prints one line of text per line.\n"
    "  --model DIR       model or tokenizer folder\n"
    "  --file F          read lines from F instead of standard input\n"
    "  --skip-special    leave special tokens out of the text\n";

/* Reads one line without its '\n'; returns its length, or -1 at end of input. */
static long read_line(FILE *f, char **buf, size_t *cap) {
    size_t n = 0;
    int c;
    while ((c = getc(f)) != EOF) {
        if (n + 2 > *cap) {
            size_t nc = *cap ? *cap * 2 : 4096;
            char *p = realloc(*buf, nc);
            if (!p) return -2;
            *buf = p;
            *cap = nc;
        }
        if (c == '\n') break;
        (*buf)[n++] = (char)c;
    }
    if (c == EOF && n == 0) return -1;
    if (!*buf) { *buf = malloc(1); if (!*buf) return -2; *cap = 1; }
    (*buf)[n] = '\0';
    return (long)n;
}

typedef struct { const char *model, *file; int add_special, json, skip_special; } tok_opts;

static int parse_opts(int argc, char **argv, tok_opts *o, int detok) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--model") || !strcmp(a, "--file")) {
            if (i + 1 >= argc) return cli_usage_error("%s needs a value", a);
            if (!strcmp(a, "--model")) o->model = argv[++i];
            else o->file = argv[++i];
        } else if (!detok && !strcmp(a, "--add-special")) o->add_special = 1;
        else if (!detok && !strcmp(a, "--json")) o->json = 1;
        else if (detok && !strcmp(a, "--skip-special")) o->skip_special = 1;
        else return cli_usage_error("%s: unknown option '%s' (try tuna %s --help)", argv[0], a, argv[0]);
    }
    if (!o->model) return cli_usage_error("%s: --model DIR is required", argv[0]);
    return 0;
}

static int open_input(const tok_opts *o, FILE **f) {
    *f = stdin;
    if (!o->file) return 0;
    tuna_status st = input_file_open(o->file, 0, f);
    if (st != TUNA_OK) { *f = stdin; return cli_status_error(st); }
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(tokenize_help, stdout); return 0; }
    tok_opts o;
    int rc = parse_opts(argc, argv, &o, 0);
    if (rc) return rc;
    tuna_tokenizer *tok;
    tuna_status st = tuna_tokenizer_load(&tok, o.model);
    if (st) return cli_status_error(st);
    FILE *f;
    if ((rc = open_input(&o, &f))) { tuna_tokenizer_free(tok); return rc; }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    long n;
    while ((n = read_line(f, &line, &cap)) >= 0) {
        lineno++;
        int32_t *ids;
        size_t k;
        st = tuna_tokenizer_encode(tok, line, (size_t)n, o.add_special, &ids, &k);
        if (st) {
            fflush(stdout);
            fprintf(stderr, "tuna: error: line %zu: %s\n", lineno, tuna_last_error());
            rc = tuna_status_exit_code(st);
            break;
        }
        if (o.json) putchar('[');
        for (size_t i = 0; i < k; i++) printf(i ? (o.json ? ",%d" : " %d") : "%d", (int)ids[i]);
        if (o.json) putchar(']');
        putchar('\n');
        free(ids);
    }
    if (n == -2) rc = cli_usage_error("out of memory reading input");
    free(line);
    if (f != stdin) fclose(f);
    tuna_tokenizer_free(tok);
    if (fflush(stdout) != 0 && !rc) { fprintf(stderr, "tuna: error: cannot write output\n"); rc = 1; }
    return rc;
}

/* Parses "1 2 3", "1,2,3" or "[1, 2, 3]" into ids. */
static int parse_ids(const char *s, int32_t **ids, size_t *n, size_t *cap) {
    *n = 0;
    while (*s) {
        if (*s == ' ' || *s == '\t' || *s == ',' || *s == '[' || *s == ']' || *s == '\r') { s++; continue; }
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > INT32_MAX) return -1;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 256;
            int32_t *p = realloc(*ids, nc * sizeof *p);
            if (!p) return -2;
            *ids = p;
            *cap = nc;
        }
        (*ids)[(*n)++] = (int32_t)v;
        s = end;
    }
    return 0;
}

int cmd_detokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { fputs(detokenize_help, stdout); return 0; }
    tok_opts o;
    int rc = parse_opts(argc, argv, &o, 1);
    if (rc) return rc;
    tuna_tokenizer *tok;
    tuna_status st = tuna_tokenizer_load(&tok, o.model);
    if (st) return cli_status_error(st);
    FILE *f;
    if ((rc = open_input(&o, &f))) { tuna_tokenizer_free(tok); return rc; }
    char *line = NULL;
    int32_t *ids = NULL;
    size_t cap = 0, icap = 0, lineno = 0, k;
    long n;
    while ((n = read_line(f, &line, &cap)) >= 0) {
        lineno++;
        int pr = parse_ids(line, &ids, &k, &icap);
        if (pr) {
            fflush(stdout);
            rc = pr == -2 ? cli_usage_error("out of memory") : cli_usage_error("line %zu: not a list of token ids", lineno);
            break;
        }
        char *text;
        size_t tl;
        st = tuna_tokenizer_decode(tok, ids, k, o.skip_special, &text, &tl);
        if (st) {
            fflush(stdout);
            fprintf(stderr, "tuna: error: line %zu: %s\n", lineno, tuna_last_error());
            rc = tuna_status_exit_code(st);
            break;
        }
        fwrite(text, 1, tl, stdout);
        putchar('\n');
        free(text);
    }
    if (n == -2) rc = cli_usage_error("out of memory reading input");
    free(line);
    free(ids);
    if (f != stdin) fclose(f);
    tuna_tokenizer_free(tok);
    if (fflush(stdout) != 0 && !rc) { fprintf(stderr, "tuna: error: cannot write output\n"); rc = 1; }
    return rc;
}
