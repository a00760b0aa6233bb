/* hub_cache.c — paths, refs, links and locks of huggingface_hub's cache layout
 * (hub_cache.h). A snapshot entry is a relative symbolic link, as
 * huggingface_hub writes it: "../../blobs/{etag}" with one more "../" per
 * folder of the file's path, so the cache can be moved whole. */
#include "hub/hub_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "hub/hub_id.h"
#include "io/atomic_file.h"

int hub_mkdirs(const char *dir) {
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) return errno = ENAMETOOLONG, -1;
    for (char *s = p + 1;; s++) {
        if (*s && *s != '/') continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
        *s = c;
        if (!c) return 0;
    }
}

tuna_status hub_cache_init(hub_cache *c, const char *cache, const char *repo) {
    char folder[HUB_REPO_MAX + 16];
    const char *slash = strchr(repo, '/');
    snprintf(folder, sizeof folder, "models--%.*s--%s", (int)(slash - repo), repo, slash + 1);
    if (snprintf(c->repo_dir, sizeof c->repo_dir, "%s/%s", cache, folder) >= (int)sizeof c->repo_dir ||
        snprintf(c->locks_dir, sizeof c->locks_dir, "%s/.locks/%s", cache, folder) >= (int)sizeof c->locks_dir)
        return core_fail(TUNA_ERR_ARG, "hub: cache folder name too long: %s", cache);
    return TUNA_OK;
}

int hub_cache_ref(const hub_cache *c, const char *rev, char commit[41]) {
    if (hub_is_hex(rev, 40)) {
        memcpy(commit, rev, 41);
        return 0;
    }
    char p[PATH_MAX], buf[64] = "";
    if (snprintf(p, sizeof p, "%s/refs/%s", c->repo_dir, rev) >= (int)sizeof p) return -1;
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) n--;
    buf[n] = '\0';
    if (!hub_is_hex(buf, 40)) return -1;
    memcpy(commit, buf, 41);
    return 0;
}

tuna_status hub_cache_set_ref(const hub_cache *c, const char *rev, const char *commit) {
    if (hub_is_hex(rev, 40)) return TUNA_OK;
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/refs/%s", c->repo_dir, rev) >= (int)sizeof p)
        return core_fail(TUNA_ERR_ARG, "hub: path too long: %s/refs/%s", c->repo_dir, rev);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    int rc = hub_mkdirs(p);
    *slash = '/';
    if (rc) return core_fail(TUNA_ERR_IO, "%s: cannot create the folder: %s", p, strerror(errno));
    return atomic_file_write(p, commit, strlen(commit));
}

int hub_cache_blob(const hub_cache *c, const char *etag, int incomplete, char *out, size_t n) {
    int k = snprintf(out, n, "%s/blobs/%s%s", c->repo_dir, etag, incomplete ? ".incomplete" : "");
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

int hub_cache_snapshot(const hub_cache *c, const char *commit, const char *path, char *out, size_t n) {
    int k = snprintf(out, n, "%s/snapshots/%s%s%s", c->repo_dir, commit, path[0] ? "/" : "", path);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

int hub_cache_has(const hub_cache *c, const char *commit, const char *path) {
    char p[PATH_MAX];
    struct stat st;
    return hub_cache_snapshot(c, commit, path, p, sizeof p) == 0 && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* "../" per folder of path, then ../../blobs/{etag} */
static int link_target(const char *path, const char *etag, char *out, size_t n) {
    size_t k = 0;
    out[0] = '\0';
    for (const char *s = path; (s = strchr(s, '/')); s++) {
        if (k + 4 > n) return -1;
        memcpy(out + k, "../", 4);
        k += 3;
    }
    int m = snprintf(out + k, n - k, "../../blobs/%s", etag);
    return m < 0 || (size_t)m >= n - k ? -1 : 0;
}

tuna_status hub_cache_link(const hub_cache *c, const char *commit, const char *path, const char *etag) {
    char p[PATH_MAX], tmp[PATH_MAX + 32], target[PATH_MAX];
    if (hub_cache_snapshot(c, commit, path, p, sizeof p) || link_target(path, etag, target, sizeof target))
        return core_fail(TUNA_ERR_ARG, "hub: path too long: %s", path);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    int rc = hub_mkdirs(p);
    *slash = '/';
    if (rc) return core_fail(TUNA_ERR_IO, "%s: cannot create the folder: %s", p, strerror(errno));
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, p) != 0) {
        int e = errno;
        unlink(tmp);
        return core_fail(TUNA_ERR_IO, "%s: cannot link to %s: %s", p, target, strerror(e));
    }
    return TUNA_OK;
}

int hub_cache_lock(const hub_cache *c, const char *etag) {
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s.lock", c->locks_dir, etag) >= (int)sizeof p) {
        core_fail(TUNA_ERR_ARG, "hub: path too long: %s", c->locks_dir);
        return -1;
    }
    int fd = hub_mkdirs(c->locks_dir) == 0 ? open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
    if (fd < 0 || flock(fd, LOCK_EX) != 0) {
        core_fail(TUNA_ERR_IO, "%s: cannot lock: %s", p, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

void hub_cache_unlock(int fd) {
    if (fd < 0) return;
    flock(fd, LOCK_UN);
    close(fd);
}
