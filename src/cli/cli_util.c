/* cli_util.c — helpers several commands share (see cli_util.h): option
 * value parsers, --help detection, copying a file between folders and the
 * size of a folder's weights. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_util.h"
#include "tuna_dist.h"
#include "io/atomic_file.h"

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}

int cli_parse_long(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    if (!s) { cli_usage_error("%s needs a value", opt); return -1; }
    errno = 0;
    long v = strtol(s, &end, 10);
    /* strtol saturates on overflow: the text, not LONG_MAX, is what the user gave */
    if (*s == '\0' || *end != '\0' || errno == ERANGE || v < lo || v > hi) {
        cli_usage_error("%s: '%s' is not an integer in [%ld, %ld]", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_int(const char *opt, const char *s, long lo, long hi, int *out) {
    long v;
    if (cli_parse_long(opt, s, lo, hi, &v)) return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    if (!s) { cli_usage_error("%s needs a value", opt); return -1; }
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v >= lo && v <= hi)) {
        cli_usage_error("%s: '%s' is not a number in [%g, %g]", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

void cli_copy_file(const char *src_dir, const char *dst_dir, const char *name) {
    char s[PATH_MAX], d[PATH_MAX];
    snprintf(s, sizeof s, "%s/%s", src_dir, name);
    snprintf(d, sizeof d, "%s/%s", dst_dir, name);
    FILE *in = fopen(s, "rb");
    if (!in) return;
    atomic_file out;
    if (atomic_file_open(&out, d) != TUNA_OK) { fclose(in); return; }
    char buf[65536];
    size_t n;
    int ok = 1;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) ok &= fwrite(buf, 1, n, out.f) == n;
    ok &= !ferror(in);
    fclose(in);
    if (ok) atomic_file_commit(&out);
    else atomic_file_abort(&out);
}

long long cli_safetensors_bytes(const char *dir) {
    struct stat fs;
    if (stat(dir, &fs) == 0 && S_ISREG(fs.st_mode)) return (long long)fs.st_size; /* a GGUF file */
    DIR *d = opendir(dir);
    if (!d) return 0;
    long long total = 0;
    struct dirent *e;
    char p[PATH_MAX];
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) == 0) total += sb.st_size;
    }
    closedir(d);
    return total;
}

/* ---- errors, warnings and progress on stderr ---- */

static const char *error_where;

void cli_error_where(const char *where) { error_where = where; }

int cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("tuna: error: ", stderr);
    if (error_where) fprintf(stderr, "%s: ", error_where);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

int cli_status_error(tuna_status s) {
    const char *d = tuna_last_error();
    fprintf(stderr, "tuna: error: %s\n", d && d[0] ? d : tuna_status_str(s));
    return tuna_status_exit_code(s);
}

void cli_warn_context(const char *where, long count, long total, const char *what, long longest, int limit) {
    if (count <= 0 || limit <= 0) return;
    fprintf(stderr, "tuna: warning: %s%s%ld of %ld %s longer than the model's context of %d positions "
                    "(max_position_embeddings; longest %ld tokens)\n",
            where ? where : "", where ? ": " : "", count, total, what, limit, longest);
}

static void print_read_progress(void *ctx, const char *path, uint64_t bytes, int done) {
    (void)ctx;
    int tty = isatty(2);
    fprintf(stderr, "%sreading %s: %llu MiB%s", tty ? "\r" : "", path, (unsigned long long)(bytes >> 20),
            done ? ", done\n" : tty ? "" : "\n");
}

void cli_read_progress(tuna_data_options *o, int quiet) {
    o->on_read = quiet ? NULL : print_read_progress;
    o->read_ctx = NULL;
}

int cli_output_refused(const char *path, int folder) {
    if (!path || atomic_check_output(path, folder) == TUNA_OK) return 0;
    return cli_status_error(TUNA_ERR_IO);
}

void cli_abort_job(int code) {
    fflush(stdout);
    fflush(stderr);
    tuna_dist_abort_job(code);
}
