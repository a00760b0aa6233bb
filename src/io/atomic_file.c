/* atomic_file.c — durable atomic outputs (see atomic_file.h). The order of the
 * system calls is the point: data fsync'd before the rename that publishes
 * it, the folder fsync'd after. tests/test_durability.sh checks that order
 * under strace. */
#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/error.h"

/* distinguishes the temporary names of one process's threads */
static atomic_uint tmp_counter;

/* fsync of an open folder; a file system that cannot sync folders (EINVAL)
 * has nothing more to do */
static int sync_dir_fd(int fd) { return fsync(fd) == 0 || errno == EINVAL ? 0 : -1; }

tuna_status atomic_sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return core_fail(TUNA_ERR_IO, "%s: cannot open the folder to sync it: %s", dir, strerror(errno));
    int rc = sync_dir_fd(fd), e = errno;
    close(fd);
    if (rc != 0) return core_fail(atomic_write_status(e), "%s: cannot sync the folder: %s", dir, strerror(e));
    return TUNA_OK;
}

/* fsync of the folder holding path ("." for a bare name) */
static tuna_status sync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return atomic_sync_dir(".");
    if (slash == path) return atomic_sync_dir("/");
    char *dir = strndup(path, (size_t)(slash - path));
    if (!dir) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    tuna_status st = atomic_sync_dir(dir);
    free(dir);
    return st;
}

tuna_status atomic_write_status(int err) {
    return err == ENOSPC || err == EDQUOT || err == EFBIG || err == EIO ? TUNA_ERR_WRITE : TUNA_ERR_IO;
}

tuna_status atomic_write_failed(const char *path, int err) {
    return core_fail(atomic_write_status(err), "%s: write failed: %s", path, strerror(err));
}

/* what a file system object is, for the messages below */
static const char *kind_of(mode_t m) {
    if (S_ISDIR(m)) return "a folder";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISSOCK(m)) return "a socket";
    return S_ISREG(m) ? "a regular file" : "not a file or folder";
}

tuna_status atomic_check_output(const char *path, int folder) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT) return TUNA_OK; /* the create will say why */
        if (lstat(path, &sb) == 0) /* a symbolic link to nothing */
            return core_fail(TUNA_ERR_IO, "%s: is a symbolic link to a missing file: tuna writes its outputs by replacing a %s",
                             path, folder ? "folder" : "file");
        return TUNA_OK;
    }
    if (folder ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode)) return TUNA_OK;
    return core_fail(TUNA_ERR_IO, folder ? "%s: is %s, not a folder: tuna writes this output as a folder"
                                         : "%s: is %s, not a regular file: tuna writes its outputs by replacing a file",
                     path, kind_of(sb.st_mode));
}

tuna_status atomic_file_open(atomic_file *a, const char *path) {
    memset(a, 0, sizeof *a);
    tuna_status st = atomic_check_output(path, 0);
    if (st != TUNA_OK) return st;
    /* a symbolic link to a regular file: that file is replaced, the link stays */
    char *real = realpath(path, NULL);
    if (real) {
        struct stat lsb;
        if (lstat(path, &lsb) != 0 || !S_ISLNK(lsb.st_mode)) { free(real); real = NULL; }
    }
    size_t n = strlen(real ? real : path) + 48;
    a->path = real ? real : strdup(path);
    a->tmp = malloc(n);
    if (!a->path || !a->tmp) { atomic_file_abort(a); return core_fail(TUNA_ERR_NOMEM, "%s: out of memory", path); }
    /* a leftover of a dead process with the same pid is skipped, never reused */
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        snprintf(a->tmp, n, "%s.tmp.%ld.%u", a->path, (long)getpid(), atomic_fetch_add(&tmp_counter, 1));
        fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        /* named by the user's path: the temporary name is ours */
        st = core_fail(atomic_write_status(errno), "%s: cannot create (a temporary file beside it): %s", path,
                       strerror(errno));
        free(a->tmp);
        a->tmp = NULL;
        atomic_file_abort(a);
        return st;
    }
    /* a file that replaces another keeps its permission bits (as sed -i does):
     * a 0600 file rewritten in place must not become readable by others */
    struct stat sb;
    if (stat(a->path, &sb) == 0 && S_ISREG(sb.st_mode)) (void)fchmod(fd, sb.st_mode & 0777);
    a->f = fdopen(fd, "wb");
    if (!a->f) {
        close(fd);
        atomic_file_abort(a);
        return core_fail(TUNA_ERR_IO, "%s: cannot open for writing", path);
    }
    return TUNA_OK;
}

/* flush + fsync + close; 0 or the errno of the first failure (EIO when the
 * stream had an error with errno long since overwritten) */
static int close_synced(FILE *f) {
    int e = 0;
    if (fflush(f) != 0 || ferror(f)) e = errno ? errno : EIO;
    if (!e && fsync(fileno(f)) != 0) e = errno;
    if (fclose(f) != 0 && !e) e = errno;
    return e;
}

tuna_status atomic_file_commit(atomic_file *a) {
    errno = 0;
    int e = close_synced(a->f);
    a->f = NULL;
    tuna_status st = TUNA_OK;
    if (e) st = atomic_write_failed(a->path, e);
    else if (rename(a->tmp, a->path) != 0)
        st = core_fail(TUNA_ERR_IO, "%s: cannot rename into place: %s", a->path, strerror(errno));
    if (st != TUNA_OK) { atomic_file_abort(a); return st; }
    free(a->tmp);
    a->tmp = NULL;
    st = sync_parent(a->path);
    atomic_file_abort(a);
    return st;
}

void atomic_file_abort(atomic_file *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    free(a->tmp);
    free(a->path);
    memset(a, 0, sizeof *a);
}

tuna_status atomic_file_write(const char *path, const void *data, size_t len) {
    atomic_file a;
    tuna_status st = atomic_file_open(&a, path);
    if (st != TUNA_OK) return st;
    if (len && fwrite(data, 1, len, a.f) != len) {
        st = atomic_write_failed(path, errno ? errno : EIO);
        atomic_file_abort(&a);
        return st;
    }
    return atomic_file_commit(&a);
}

tuna_status atomic_file_write_json(const char *path, const json_t *j, size_t flags) {
    atomic_file a;
    tuna_status st = atomic_file_open(&a, path);
    if (st != TUNA_OK) return st;
    errno = 0;
    if (!j || json_dumpf(j, a.f, flags) != 0) {
        int e = errno;
        atomic_file_abort(&a);
        return j && e ? atomic_write_failed(path, e) : core_fail(TUNA_ERR_IO, "%s: cannot write the JSON", path);
    }
    return atomic_file_commit(&a);
}

/* nftw callback: fsync one file or folder; returns 0 or the errno */
static int sync_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    if (type != FTW_F && type != FTW_DP) return type == FTW_SL ? 0 : EIO; /* unreadable entries */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int rc = type == FTW_DP ? sync_dir_fd(fd) : fsync(fd), e = errno;
    close(fd);
    return rc == 0 ? 0 : e;
}

tuna_status atomic_sync_tree(const char *dir) {
    int e = nftw(dir, sync_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (e != 0) {
        int err = e > 0 ? e : errno;
        return core_fail(atomic_write_status(err), "%s: cannot sync: %s", dir, strerror(err));
    }
    return TUNA_OK;
}

tuna_status atomic_dir_commit(const char *tmp_dir, const char *dir) {
    tuna_status st = atomic_check_output(dir, 1);
    if (st == TUNA_OK) st = atomic_sync_tree(tmp_dir);
    if (st != TUNA_OK) return st;
    if (rename(tmp_dir, dir) != 0)
        return core_fail(TUNA_ERR_IO, "%s: cannot rename into place: %s", dir, strerror(errno));
    return sync_parent(dir);
}

/* dir and tmp_dir swapped where the file system can (one atomic step); else
 * dir moved aside to tmp_dir.old, tmp_dir renamed to dir, and the old folder
 * renamed to tmp_dir — a crash between the first two renames leaves dir
 * absent and its old content at tmp_dir.old (atomic_file.h) */
static int exchange_dirs(const char *tmp_dir, const char *dir) {
    if (renameat2(AT_FDCWD, tmp_dir, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return -1;
    size_t n = strlen(tmp_dir) + 8;
    char *aside = malloc(n);
    if (!aside) return errno = ENOMEM, -1;
    snprintf(aside, n, "%s.old", tmp_dir);
    int rc = rename(dir, aside);
    if (rc == 0 && (rc = rename(tmp_dir, dir)) != 0) {
        int e = errno;
        (void)rename(aside, dir); /* put the old folder back */
        errno = e;
    }
    if (rc == 0) (void)rename(aside, tmp_dir);
    free(aside);
    return rc;
}

tuna_status atomic_dir_replace(const char *tmp_dir, const char *dir, int *exchanged) {
    *exchanged = 0;
    tuna_status st = atomic_check_output(dir, 1);
    if (st == TUNA_OK) st = atomic_sync_tree(tmp_dir);
    if (st != TUNA_OK) return st;
    if (rename(tmp_dir, dir) != 0) {
        if ((errno != ENOTEMPTY && errno != EEXIST) || exchange_dirs(tmp_dir, dir) != 0)
            return core_fail(TUNA_ERR_IO, "%s: cannot move the new folder into place: %s", dir, strerror(errno));
        *exchanged = 1;
    }
    return sync_parent(dir);
}

/* Moves every entry of from into to, except the names skip_a and skip_b
 * (NULL: none). 0, or -1 with errno after the first failure (the entries
 * before it moved). */
static int move_entries(const char *from, const char *to, const char *skip_a, const char *skip_b) {
    DIR *d = opendir(from);
    if (!d) return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) { /* names first: the folder is not changed while it is read */
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || (skip_a && !strcmp(e->d_name, skip_a)) ||
            (skip_b && !strcmp(e->d_name, skip_b)))
            continue;
        if (n == cap) {
            char **g = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof *names);
            if (!g) { rc = -1; errno = ENOMEM; break; }
            names = g;
        }
        if (!(names[n] = strdup(e->d_name))) { rc = -1; errno = ENOMEM; break; }
        n++;
    }
    closedir(d);
    char a[2 * PATH_MAX], b[2 * PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        snprintf(a, sizeof a, "%s/%s", from, names[i]);
        snprintf(b, sizeof b, "%s/%s", to, names[i]);
        if (rc == 0 && rename(a, b) != 0) rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

tuna_status atomic_dir_move_in(const char *tmp_dir, const char *dir, const char *aside) {
    const char *tname = strrchr(tmp_dir, '/') + 1, *aname = strrchr(aside, '/') + 1;
    tuna_status st = atomic_sync_tree(tmp_dir);
    if (st != TUNA_OK) return st;
    if (mkdir(aside, 0700) != 0) return core_fail(TUNA_ERR_IO, "%s: cannot create: %s", aside, strerror(errno));
    int moved = move_entries(dir, aside, tname, aname) == 0, e = errno;
    if (!moved || move_entries(tmp_dir, dir, tname, aname) != 0) {
        e = moved ? errno : e;
        if (moved) move_entries(dir, tmp_dir, tname, aname); /* the new entries moved so far */
        move_entries(aside, dir, NULL, NULL);
        rmdir(aside);
        return core_fail(TUNA_ERR_IO, "%s: cannot move the new files into place: %s", dir, strerror(e));
    }
    return atomic_sync_dir(dir);
}
