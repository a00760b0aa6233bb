/* cmd_pull.c — `tuna pull ORG/NAME[@REV]`: a model or adapter from the
 * Hugging Face Hub into huggingface_hub's cache (tuna_hub.h), its snapshot
 * folder printed at the end so that `$(tuna pull X)` names it. Options are
 * parsed into a struct, the pull runs, the result is printed. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli_hub.h"
#include "commands.h"

#define MAX_GLOBS 64

static const char *pull_help =
    "usage: tuna pull ORG/NAME[@REVISION] [--include GLOB]... [--exclude GLOB]...\n"
    "                 [--dry-run] [--json] [--quiet]\n"
    "\n"
    "Downloads a model or adapter from the Hugging Face Hub into huggingface_hub's\n"
    "cache (shared with the Python tools: what they downloaded is not fetched again)\n"
    "and prints its snapshot folder, so `tuna sft --model $(tuna pull ORG/NAME)` works;\n"
    "every --model / --adapter / --ref-model option also takes ORG/NAME[@REVISION]\n"
    "directly. REVISION is a branch, tag or commit (default main).\n"
    "By default: config.json, generation_config.json, the tokenizer files, the\n"
    "*.safetensors weights (with an index: the shards it names) and adapter files;\n"
    "not *.bin, *.pt, *.h5, *.msgpack or ONNX files. Interrupted downloads resume;\n"
    "LFS files are checked against their sha256.\n"
    "  --include GLOB  only files matching GLOB (repeatable; replaces the default\n"
    "                  selection; '*' also matches '/', GLOB/ takes a folder)\n"
    "  --exclude GLOB  leave out files matching GLOB (repeatable)\n"
    "  --dry-run       list the files and sizes, download nothing\n"
    "  --json          one JSON object on stdout (folder, commit, files)\n"
    "  --quiet         no progress bar\n"
    "Environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (else the\n"
    "file $HF_HOME/token) for gated or private models, HF_HUB_CACHE (else\n"
    "$HF_HOME/hub, else ~/.cache/huggingface/hub), HF_HUB_OFFLINE=1 (cache only).\n"
    "Exit 2 for a bad id or a missing repository, revision or file; 1 for network\n"
    "and server failures (gated models included).\n";

typedef struct {
    const char *id;
    const char *include[MAX_GLOBS], *exclude[MAX_GLOBS];
    int n_include, n_exclude, dry_run, json, quiet;
} pull_opts;

static int add_glob(const char **list, int *n, const char *opt, const char *v) {
    if (*n == MAX_GLOBS) return cli_usage_error("pull: at most %d %s globs", MAX_GLOBS, opt);
    list[(*n)++] = v;
    return 0;
}

static int pull_parse(pull_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(a, "--include") && v) rc = add_glob(o->include, &o->n_include, a, v), i++;
        else if (!strcmp(a, "--exclude") && v) rc = add_glob(o->exclude, &o->n_exclude, a, v), i++;
        else if (!strcmp(a, "--dry-run")) o->dry_run = 1;
        else if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--quiet")) o->quiet = 1;
        else if (a[0] != '-' && !o->id) o->id = a;
        else return cli_usage_error("pull: unknown option, missing value or extra argument '%s' (see tuna pull --help)", a);
        if (rc) return rc;
    }
    if (!o->id) return cli_usage_error("pull: which model? tuna pull ORG/NAME[@REVISION] (see tuna pull --help)");
    return 0;
}

static void print_json(const pull_opts *o, const tuna_hub_result *r) {
    json_t *files = json_array(), *j = json_object();
    for (int k = 0; k < r->n_files; k++)
        json_array_append_new(files, json_pack("{s:s, s:I, s:b}", "path", r->files[k].path, "size", (json_int_t)r->files[k].size,
                                               "cached", r->files[k].cached));
    json_object_set_new(j, "id", json_string(o->id));
    json_object_set_new(j, "commit", json_string(r->commit));
    json_object_set_new(j, "dir", json_string(r->dir));
    json_object_set_new(j, "dry_run", json_boolean(o->dry_run));
    json_object_set_new(j, "bytes_downloaded", json_integer(r->bytes_downloaded));
    json_object_set_new(j, "files", files);
    char *s = json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT);
    if (s) puts(s);
    free(s);
    json_decref(j);
}

/* --dry-run: a line per file, then the totals */
static void print_list(const tuna_hub_result *r) {
    long long get = 0, have = 0;
    for (int k = 0; k < r->n_files; k++) {
        const tuna_hub_file *f = &r->files[k];
        printf("%14lld  %s%s\n", (long long)f->size, f->path, f->cached ? "  (cached)" : "");
        *(f->cached ? &have : &get) += f->size > 0 ? f->size : 0;
    }
    printf("%d files: %.1f MB to download, %.1f MB in the cache (%s)\n", r->n_files, (double)get / 1e6, (double)have / 1e6, r->dir);
}

int cmd_pull(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) return fputs(pull_help, stdout), 0;
    pull_opts o;
    int rc = pull_parse(&o, argc, argv);
    if (rc) return rc;
    tuna_hub_opts ho = {.include = o.include, .n_include = o.n_include, .exclude = o.exclude, .n_exclude = o.n_exclude,
                        .dry_run = o.dry_run};
    cli_hub_bar bar;
    cli_hub_bar_init(&bar, &ho, o.id, o.quiet);
    tuna_hub_result r;
    tuna_status st = tuna_hub_pull(o.id, &ho, &r);
    cli_hub_bar_end(&bar);
    if (st) {
        tuna_hub_result_free(&r);
        return cli_status_error(st);
    }
    if (o.json) print_json(&o, &r);
    else if (o.dry_run) print_list(&r);
    else {
        if (!o.quiet)
            fprintf(stderr, "tuna: pulled %s (commit %.12s): %d files, %.1f MB downloaded\n", o.id, r.commit, r.n_files,
                    (double)r.bytes_downloaded / 1e6);
        puts(r.dir);
    }
    tuna_hub_result_free(&r);
    return 0;
}
