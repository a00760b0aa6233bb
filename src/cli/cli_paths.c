/* cli_paths.c — outputs checked against inputs by identity, and folder outputs
 * published whole (see cli_paths.h). Rules: two existing paths are the same
 * when their device and inode are; a missing path is resolved to its nearest
 * existing folder (realpath) plus the rest of its name, so `./c`, `a/../c`
 * and `c` agree before c exists. */
#include "cli_paths.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "io/atomic_file.h"

typedef struct {
    int exists;
    struct stat st;
    char real[PATH_MAX]; /* resolved path; "" when it cannot be resolved */
} path_id;

/* p with its missing tail resolved lexically under its nearest existing
 * folder; 0 on success */
static int resolve(const char *p, char out[PATH_MAX]) {
    if (realpath(p, out)) return 0;
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", p) >= (int)sizeof buf) return -1;
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
    char *slash = strrchr(buf, '/');
    const char *base = slash ? slash + 1 : buf;
    const char *dir = slash ? (slash == buf ? "/" : buf) : ".";
    if (slash && slash != buf) *slash = '\0';
    char parent[PATH_MAX];
    if (!*base || resolve(dir, parent)) return -1;
    if (!strcmp(base, ".")) return snprintf(out, PATH_MAX, "%s", parent) >= PATH_MAX ? -1 : 0;
    if (!strcmp(base, "..")) {
        char *up = strrchr(parent, '/');
        if (up && up != parent) *up = '\0';
        else snprintf(parent, sizeof parent, "/");
        return snprintf(out, PATH_MAX, "%s", parent) >= PATH_MAX ? -1 : 0;
    }
    return snprintf(out, PATH_MAX, "%s%s%s", parent, strcmp(parent, "/") ? "/" : "", base) >= PATH_MAX ? -1 : 0;
}

static void identify(const char *p, path_id *id) {
    id->exists = stat(p, &id->st) == 0;
    if (resolve(p, id->real)) id->real[0] = '\0';
}

static int same(const path_id *a, const path_id *b) {
    if (a->exists && b->exists) return a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino;
    return !a->exists && !b->exists && a->real[0] && !strcmp(a->real, b->real);
}

/* inner lies strictly inside the folder outer (both resolved) */
static int inside(const char *inner, const char *outer) {
    size_t n = strlen(outer);
    if (!n || !inner[0]) return 0;
    if (!strcmp(outer, "/")) return strcmp(inner, "/") != 0;
    return !strncmp(inner, outer, n) && inner[n] == '/';
}

/* a file tuna reads from a model or adapter folder (an output elsewhere in
 * such a folder, e.g. eval results or a report, is the user's choice) */
static int model_file(const char *real) {
    static const char *const names[] = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model", "tokenizer.bin",
                                        "adapter_config.json", "adapter_model.bin", "model.safetensors.index.json", "trainer_state.json"};
    const char *base = strrchr(real, '/') ? strrchr(real, '/') + 1 : real;
    size_t n = strlen(base);
    if (n > 12 && !strcmp(base + n - 12, ".safetensors")) return 1;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++)
        if (!strcmp(base, names[k])) return 1;
    return 0;
}

static const char *what(const path_id *id) { return id->exists && S_ISDIR(id->st.st_mode) ? "folder" : "file"; }

/* one output against one existing input: 0, or the error printed and 2 */
static int check_pair(const char *cmd, const cli_path *o, const path_id *oi, const cli_path *in, const path_id *ii) {
    int in_dir = S_ISDIR(ii->st.st_mode);
    if (oi->exists && same(oi, ii)) {
        if (!in_dir && (o->flags & CLI_IN_PLACE)) return 0;
        return cli_usage_error("%s: %s and %s name the same %s (%s)", cmd, o->opt, in->opt, what(ii), in->path);
    }
    if (oi->exists && S_ISDIR(oi->st.st_mode) && inside(ii->real, oi->real) && !(in_dir && (in->flags & CLI_NESTED_OK)))
        return cli_usage_error("%s: the %s folder %s holds %s (%s)", cmd, o->opt, o->path, in->opt, in->path);
    /* even a missing one: the folder's next load would read it */
    if (!(oi->exists && S_ISDIR(oi->st.st_mode)) && in_dir && inside(oi->real, ii->real) && model_file(oi->real))
        return cli_usage_error("%s: %s (%s) is a file of the %s folder (%s)", cmd, o->opt, o->path, in->opt, in->path);
    return 0;
}

/* every output against the outputs before it and against every input */
static int check_all(const char *cmd, const cli_path *in, path_id *ii, int n_in, const cli_path *out, path_id *oi, int n_out) {
    for (int i = 0; i < n_in; i++)
        if (in[i].path) identify(in[i].path, &ii[i]);
    for (int k = 0; k < n_out; k++) {
        if (!out[k].path) continue;
        identify(out[k].path, &oi[k]);
        for (int j = 0; j < k; j++)
            if (out[j].path && same(&oi[j], &oi[k]))
                return cli_usage_error("%s: %s and %s name the same %s (%s)", cmd, out[j].opt, out[k].opt, what(&oi[k]), out[k].path);
        for (int i = 0; i < n_in; i++) {
            if (!in[i].path || !ii[i].exists) continue;
            int rc = check_pair(cmd, &out[k], &oi[k], &in[i], &ii[i]);
            if (rc) return rc;
        }
    }
    return 0;
}

int cli_check_paths(const char *cmd, const cli_path *in, int n_in, const cli_path *out, int n_out) {
    path_id *ii = calloc((size_t)n_in + 1, sizeof *ii), *oi = calloc((size_t)n_out + 1, sizeof *oi);
    int rc = ii && oi ? check_all(cmd, in, ii, n_in, out, oi, n_out) : (fputs("tuna: error: out of memory\n", stderr), 1);
    /* an output that is a device, FIFO or a file of the other kind is refused too */
    for (int k = 0; !rc && k < n_out; k++) rc = cli_output_refused(out[k].path, (out[k].flags & CLI_DIR) != 0);
    free(ii);
    free(oi);
    return rc;
}

/* ---- folder outputs published whole ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

void cli_remove_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* 1 when the folder holds anything, 0 when empty, -1 when unreadable */
static int dir_has_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d)))
        any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

/* mkdir -p of a resolved (absolute) path; 0 or -1 with errno */
static int make_folders(char *path) {
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p) continue;
        char c = *p;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = c;
        if (rc != 0 && errno != EEXIST) return -1;
        if (!c) return 0;
    }
}

/* Removes the temporary siblings .NAME.tmp.PID in parent that runs killed
 * before they could clean up left behind: folders whose process is gone
 * (kill(pid, 0) fails with ESRCH), each with a note. A live run's folder, and
 * anything else of that name, is left alone. */
static void remove_stale_tmp(const char *parent, const char *name) {
    char prefix[PATH_MAX];
    size_t plen = (size_t)snprintf(prefix, sizeof prefix, ".%s.tmp.", name);
    DIR *d = plen < sizeof prefix ? opendir(parent) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *digits = e->d_name + plen;
        if (strncmp(e->d_name, prefix, plen) || !isdigit((unsigned char)*digits)) continue;
        char *end, path[PATH_MAX];
        errno = 0;
        long pid = strtol(digits, &end, 10);
        if (*end || errno || pid <= 0 || pid > INT_MAX || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", parent, e->d_name) >= (int)sizeof path || lstat(path, &st) != 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        cli_remove_tree(path);
        fprintf(stderr, "tuna: note: removed %s, left by an interrupted run (process %ld is gone)\n", path, pid);
    }
    if (d) closedir(d);
}

int cli_out_dir_begin(cli_out_dir *d, const char *cmd, const char *dir, int overwrite) {
    char buf[PATH_MAX];
    d->tmp[0] = '\0';
    if (resolve(dir, buf) || !strcmp(buf, "/")) return cli_usage_error("%s: --out %s: cannot resolve the folder's name", cmd, dir);
    snprintf(d->dir, sizeof d->dir, "%s", buf);
    struct stat st;
    if (stat(d->dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return cli_usage_error("%s: --out %s exists and is not a folder", cmd, dir);
        int full = dir_has_entries(d->dir);
        if (full < 0) return cli_usage_error("%s: --out %s: cannot read the folder: %s", cmd, dir, strerror(errno));
        if (full && !overwrite)
            return cli_usage_error("%s: --out %s is not empty (add --overwrite to replace its contents)", cmd, dir);
    }
    char *slash = strrchr(buf, '/'); /* resolved: absolute, not "/" */
    *slash = '\0';
    if (slash != buf && make_folders(buf) != 0) {
        fprintf(stderr, "tuna: error: %s: cannot create: %s\n", buf, strerror(errno));
        return 1;
    }
    remove_stale_tmp(buf, slash + 1);
    if (snprintf(d->tmp, sizeof d->tmp, "%s/.%s.tmp.%ld", buf, slash + 1, (long)getpid()) >= (int)sizeof d->tmp)
        return cli_usage_error("%s: --out %s: path too long", cmd, dir);
    cli_remove_tree(d->tmp);
    if (mkdir(d->tmp, 0755) != 0) {
        fprintf(stderr, "tuna: error: %s: cannot create: %s\n", d->tmp, strerror(errno));
        d->tmp[0] = '\0';
        return 1;
    }
    return 0;
}

tuna_status cli_out_dir_commit(cli_out_dir *d) {
    int exchanged; /* rename(2) takes over an empty folder; a full one is swapped */
    tuna_status s = atomic_dir_replace(d->tmp, d->dir, &exchanged);
    cli_remove_tree(d->tmp); /* on success: the old folder; on failure: the unfinished new one */
    d->tmp[0] = '\0';
    return s;
}

int cli_out_names_free(const char *cmd, const char *dir, const char *const *names, int n, int overwrite) {
    for (int k = 0; k < n && !overwrite; k++) {
        char p[PATH_MAX];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, names[k]);
        if (lstat(p, &st) == 0)
            return cli_usage_error("%s: --out %s already has %s (add --overwrite to replace the files %s writes)", cmd, dir, names[k], cmd);
    }
    return 0;
}

void cli_out_dir_abort(cli_out_dir *d) {
    if (d->tmp[0]) cli_remove_tree(d->tmp);
    d->tmp[0] = '\0';
}
