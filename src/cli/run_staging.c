/* run_staging.c — a training run's output folder, staged next to --out and
 * moved into place at its first complete result (see run_staging.h for the
 * rules; io/atomic_file.c does the synced exchange). */
#include "cli/run_staging.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_paths.h"
#include "commands.h"
#include "io/atomic_file.h"
#include "core/error.h"


/* path without its trailing slashes, cut into its folder and its last name
 * ("." when it has no folder); an existing path is resolved first, so that a
 * symbolic link to a folder is staged next to the folder itself. 0 or -1
 * (out is "/" or too long). */
static int split_path(const char *path, char *parent, char *base) {
    char p[PATH_MAX];
    if (!realpath(path, p) && snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) return -1;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0';
    char *slash = strrchr(p, '/');
    if (!slash) return snprintf(parent, PATH_MAX, ".") < 0 || snprintf(base, PATH_MAX, "%s", p) < 0 ? -1 : 0;
    if (!slash[1]) return -1;
    snprintf(base, PATH_MAX, "%s", slash + 1);
    if (slash == p) snprintf(parent, PATH_MAX, "/");
    else snprintf(parent, PATH_MAX, "%.*s", (int)(slash - p), p);
    return 0;
}

/* 1 when the folder exists and holds anything */
static int non_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d))) any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

/* 1 when resume names an entry of the folder out (a checkpoint of its own,
 * whether or not that checkpoint exists: a wrong one is the resume's error) */
static int resumes_in(const char *resume, const char *out) {
    char parent[PATH_MAX], base[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
    if (!resume || split_path(resume, parent, base) != 0) return 0;
    return realpath(parent, a) && realpath(out, b) && !strcmp(a, b);
}

/* 1 when dir is the root of a mount (a container's volume): it cannot be
 * renamed. statx says so where the kernel knows (Linux 5.8); else a device
 * other than its parent's. */
static int is_mount_root(const char *dir, const char *parent) {
    struct statx sx;
    if (statx(AT_FDCWD, dir, 0, STATX_BASIC_STATS, &sx) == 0 && (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
        return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
    struct stat a, b;
    return stat(dir, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

/* 1 when name is PREFIX + the number of a process that is gone (or of this
 * one: a leftover of an earlier process with the same number) + suffix
 * (a suffix may be absent when optional) */
static int dead_run(const char *name, const char *prefix, const char *suffix, int optional, long *pid) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n)) return 0;
    char *end;
    *pid = strtol(name + n, &end, 10);
    if (*pid <= 0 || end == name + n || (strcmp(end, suffix) && !(optional && !*end))) return 0;
    return *pid == (long)getpid() || (kill((pid_t)*pid, 0) != 0 && errno != EPERM);
}

/* Inside out (the folder could not be swapped): a dead run's staging folder
 * .tuna-run-PID is removed; .tuna-old-PID holds out's old entries from a
 * replacement a crash cut short, and is only pointed out. */
static void clean_inside(const char *out) {
    char path[2 * PATH_MAX + 8];
    long pid;
    DIR *d = opendir(out);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        snprintf(path, sizeof path, "%s/%s", out, e->d_name);
        if (dead_run(e->d_name, ".tuna-run-", "", 0, &pid)) {
            fprintf(stderr, "tuna: notice: removing %s, left by an interrupted run (process %ld)\n", path, pid);
            cli_remove_tree(path);
        } else if (dead_run(e->d_name, ".tuna-old-", "", 0, &pid))
            fprintf(stderr, "tuna: notice: %s holds what %s held before a replacement that a crash interrupted\n", path, out);
    }
    if (d) closedir(d);
}

/* Staging folders of out (".BASE.run-PID", ".BASE.run-PID.old") whose
 * process is gone: removed; a ".old" one when out is absent holds out's old
 * content (a crash between the two renames of a replacement) and is put back. */
static void clean_leftovers(const char *parent, const char *base, const char *out) {
    char prefix[PATH_MAX + 8], path[2 * PATH_MAX + 16];
    snprintf(prefix, sizeof prefix, ".%s.run-", base);
    DIR *d = opendir(parent);
    if (!d) return;
    struct dirent *e;
    long pid;
    while ((e = readdir(d))) {
        if (!dead_run(e->d_name, prefix, ".old", 1, &pid)) continue; /* another name, or a live run's */
        snprintf(path, sizeof path, "%s/%s", parent, e->d_name);
        struct stat sb;
        if (strstr(e->d_name + strlen(prefix), ".old") && stat(out, &sb) != 0 && rename(path, out) == 0) {
            fprintf(stderr, "tuna: notice: %s put back from %s (a replacement interrupted by a crash)\n", out, path);
            continue;
        }
        fprintf(stderr, "tuna: notice: removing %s, left by an interrupted run (process %ld)\n", path, pid);
        cli_remove_tree(path);
    }
    closedir(d);
}

/* mkdir's failure: a full or broken disk is a failure, anything else (no
 * such parent, no permission) a bad --out */
static tuna_status mkdir_failed(const char *dir) {
    int e = errno;
    return core_fail(e == ENOSPC || e == EDQUOT || e == EIO ? TUNA_ERR_IO : TUNA_ERR_ARG, "%s: cannot create: %s", dir, strerror(e));
}

int cli_run_dir_check(const char *out, const char *resume, int overwrite, int *in_place) {
    char parent[PATH_MAX], base[PATH_MAX];
    *in_place = 0;
    if (split_path(out, parent, base) != 0) return cli_usage_error("--out %s: cannot be an output folder", out);
    clean_leftovers(parent, base, out);
    clean_inside(out);
    struct stat sb;
    if (stat(out, &sb) != 0) return 0;
    if (!S_ISDIR(sb.st_mode)) return cli_usage_error("--out %s exists and is not a folder", out);
    *in_place = resumes_in(resume, out);
    if (*in_place || overwrite || !non_empty(out)) return 0;
    return cli_usage_error("--out %s is not empty: give --overwrite to replace it (once this run has written its first result) "
                           "or --resume one of its checkpoints", out);
}

tuna_status cli_run_dir_begin(cli_run_dir *r, const char *out, int in_place) {
    memset(r, 0, sizeof *r);
    char parent[PATH_MAX], base[PATH_MAX];
    snprintf(r->out, sizeof r->out, "%s", out);
    r->dir = r->out;
    if (in_place) {
        if (mkdir(out, 0755) != 0 && errno != EEXIST) return mkdir_failed(out);
        return TUNA_OK;
    }
    /* the resolved name: a symbolic link to a folder is replaced through, not itself */
    if (split_path(out, parent, base) != 0 || snprintf(r->out, sizeof r->out, "%s/%s", parent, base) >= (int)sizeof r->out) {
        r->stage[0] = '\0';
        return core_fail(TUNA_ERR_ARG, "--out %s: cannot be an output folder (name too long?)", out);
    }
    struct stat sb;
    r->inside = stat(r->out, &sb) == 0 && (is_mount_root(r->out, parent) || access(parent, W_OK) != 0);
    if ((r->inside ? snprintf(r->stage, sizeof r->stage, "%s/.tuna-run-%ld", r->out, (long)getpid())
                   : snprintf(r->stage, sizeof r->stage, "%s/.%s.run-%ld", parent, base, (long)getpid())) >= (int)sizeof r->stage) {
        r->stage[0] = '\0';
        return core_fail(TUNA_ERR_ARG, "--out %s: cannot be an output folder (name too long?)", out);
    }
    cli_remove_tree(r->stage);
    if (mkdir(r->stage, 0755) != 0) {
        tuna_status st = mkdir_failed(r->stage);
        r->stage[0] = '\0';
        return st;
    }
    if (!r->inside && stat(r->out, &sb) == 0) chmod(r->stage, sb.st_mode & 07777); /* the folder keeps its permissions */
    r->dir = r->stage;
    return TUNA_OK;
}

/* The commit when out cannot be swapped (io/atomic_file.h); the old
 * entries, set aside, are removed once the new ones are in place. */
static tuna_status commit_inside(cli_run_dir *r) {
    char old[PATH_MAX + 32];
    snprintf(old, sizeof old, "%s/.tuna-old-%ld", r->out, (long)getpid());
    tuna_status st = atomic_dir_move_in(r->stage, r->out, old);
    if (st != TUNA_OK) return st;
    cli_remove_tree(old);
    rmdir(r->stage);
    return TUNA_OK;
}

tuna_status cli_run_dir_commit(cli_run_dir *r) {
    if (!r->stage[0]) return TUNA_OK;
    if (r->inside) {
        tuna_status st = commit_inside(r);
        if (st == TUNA_OK) { r->dir = r->out; r->stage[0] = '\0'; }
        return st;
    }
    int exchanged = 0;
    tuna_status st = atomic_dir_replace(r->stage, r->out, &exchanged);
    if (st != TUNA_OK) return st;
    r->dir = r->out;
    if (exchanged) cli_remove_tree(r->stage); /* the old content, now that the new one is durable in place */
    r->stage[0] = '\0';
    return TUNA_OK;
}

int cli_run_dir_committed(const cli_run_dir *r) { return r->dir && !r->stage[0]; }

void cli_run_dir_abort(cli_run_dir *r) {
    if (!r->stage[0]) return;
    cli_remove_tree(r->stage);
    r->stage[0] = '\0';
    r->dir = NULL;
}

char *cli_run_dir_path(const cli_run_dir *r, const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", r->dir ? r->dir : ".", name); /* "." on ranks that write nothing */
    return buf;
}
