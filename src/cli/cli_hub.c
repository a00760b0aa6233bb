/* cli_hub.c — Hub ids as model and adapter folders, and the pull's progress
 * bar (cli_hub.h). Resolved names live in a few static slots: the command
 * line holds at most a handful of such options. */
#include "cli_hub.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_util.h"
#include "core/clock.h"

#define SLOTS 16

static void human(char *out, size_t n, double bytes) {
    if (bytes >= 1e9) snprintf(out, n, "%.2f GB", bytes / 1e9);
    else snprintf(out, n, "%.1f MB", bytes / 1e6);
}

static void draw(const tuna_hub_progress *p, void *user) {
    cli_hub_bar *b = user;
    double dt = core_now_s() - b->t0, rate = dt > 0 ? (double)p->done / dt : 0;
    if (!b->tty && !p->file_done) return; /* a log gets a line per file */
    char done[32], total[32], eta[32] = "";
    human(done, sizeof done, (double)p->done);
    human(total, sizeof total, (double)p->total);
    if (rate > 0 && p->total > p->done) {
        long s = (long)((double)(p->total - p->done) / rate);
        snprintf(eta, sizeof eta, "  ETA %ld:%02ld", s / 60, s % 60);
    }
    int pct = p->total > 0 ? (int)(100.0 * (double)p->done / (double)p->total) : 100;
    fprintf(stderr, "%spulling %s: %3d%% %s / %s  %.1f MB/s%s  (%d/%d files%s%s)%s", b->tty ? "\r" : "", b->id, pct, done,
            total, rate / 1e6, eta, p->files_done, p->files, p->file_done ? ", " : "", p->file_done ? p->file : "",
            b->tty ? "\033[K" : "\n");
    b->drawn = 1;
}

void cli_hub_bar_init(cli_hub_bar *b, tuna_hub_opts *o, const char *id, int quiet) {
    *b = (cli_hub_bar){id, core_now_s(), isatty(2), 0};
    o->progress = quiet ? NULL : draw;
    o->user = b;
}

void cli_hub_bar_end(cli_hub_bar *b) {
    if (b->tty && b->drawn) fputc('\n', stderr);
    b->drawn = 0;
}

static const char *const tokenizer_files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                              "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json",
                                              "chat_template.jinja", "config.json", "generation_config.json"};

/* the snapshot folder of id into out, or the exit code */
static int pull(const char *opt, const char *id, int quiet, char *out, size_t n) {
    tuna_hub_opts o = {0};
    cli_hub_bar bar;
    cli_hub_bar_init(&bar, &o, id, quiet);
    if (!strcmp(opt, "--tokenizer")) {
        o.include = tokenizer_files;
        o.n_include = (int)(sizeof tokenizer_files / sizeof *tokenizer_files);
    }
    tuna_status st = tuna_hub_resolve(id, &o, out, n);
    cli_hub_bar_end(&bar);
    if (st) return cli_status_error(st);
    if (!quiet) fprintf(stderr, "tuna: %s %s: %s\n", opt, id, out);
    return 0;
}

int cli_hub_path(const char *opt, const char **path, int quiet) {
    static char slots[SLOTS][PATH_MAX + 128];
    static int used;
    struct stat sb;
    const char *p = *path, *eq = !strcmp(opt, "--adapter") ? strchr(p ? p : "", '=') : NULL;
    const char *id = eq ? eq + 1 : p; /* serve's --adapter NAME=DIR */
    if (!p || stat(p, &sb) == 0 || stat(id, &sb) == 0 || !tuna_hub_is_id(id)) return 0;
    if (used == SLOTS) return cli_usage_error("%s: at most %d Hub ids on one command line", opt, SLOTS);
    char *slot = slots[used];
    int k = eq ? snprintf(slot, PATH_MAX, "%.*s=", (int)(eq - p), p) : 0;
    if (k < 0 || k >= PATH_MAX) return cli_usage_error("%s: name too long", opt);
    int rc = pull(opt, id, quiet, slot + k, sizeof slots[0] - (size_t)k);
    if (rc) return rc;
    used++;
    *path = slot;
    return 0;
}

int cli_hub_args(int argc, char **argv) {
    static const char *const opts[] = {"--model", "--adapter", "--ref-model", "--tuned", "--tokenizer"};
    int quiet = 0;
    if (argc < 1 || !strcmp(argv[0], "pull") || cli_wants_help(argc, argv)) return 0;
    for (int i = 1; i < argc; i++) quiet |= !strcmp(argv[i], "--quiet");
    for (int i = 1; i + 1 < argc; i++)
        for (size_t k = 0; k < sizeof opts / sizeof *opts; k++) {
            if (strcmp(argv[i], opts[k])) continue;
            const char *v = argv[i + 1];
            int rc = cli_hub_path(opts[k], &v, quiet);
            if (rc) return rc;
            argv[++i] = (char *)v;
            break;
        }
    return 0;
}
