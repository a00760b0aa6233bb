/* hub_fetch.c — one file into the cache (hub_fetch.h). Under the blob's lock:
 * a blob already there is only linked; else the download appends to
 * blobs/{etag}.incomplete from its current size (Range; a server that
 * answers 200 instead of 206 restarts it), its length is checked against the
 * size the HEAD gave, an LFS file's sha256 against its etag (a mismatch
 * deletes the download), and it is fsynced and renamed into blobs/{etag}. */
#include "hub/hub_fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "hub/sha256.h"
#include "io/atomic_file.h"

int hub_resolve_url(const hub_run *run, const char *path, char *out, size_t n) {
    char file[3200];
    if (hub_url_escape(file, sizeof file, path, 1)) return -1;
    int k = snprintf(out, n, "%s/%s/resolve/%s/%s", run->env->endpoint, run->id.repo, run->commit, file);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

tuna_status hub_fail(const hub_run *run, const hub_resp *r, int rc, const char *file) {
    const char *repo = run->id.repo, *rev = run->id.rev;
    if (rc && r->aborted) return core_fail(TUNA_ERR_INTERRUPTED, "%s: download stopped", repo);
    if (rc) return core_fail(TUNA_ERR_NETWORK, "%s: cannot reach the Hub: %s (HF_HUB_OFFLINE=1 uses the cache only)", repo, r->err);
    if (r->code == 401 || r->code == 403)
        return core_fail(TUNA_ERR_NETWORK, "%s: gated or private model (HTTP %ld%s): accept its licence at %s/%s and set HF_TOKEN%s",
                         repo, r->code, run->env->token[0] ? ", the token was refused" : "", run->env->endpoint, repo,
                         run->env->token[0] ? " to a token of an account with access" : "");
    if (r->code == 404 && !strcasecmp(r->error_code, "RevisionNotFound"))
        return core_fail(TUNA_ERR_ARG, "%s: no revision '%s' (HTTP 404)", repo, rev);
    if (r->code == 404 && (file && strcasecmp(r->error_code, "RepoNotFound")))
        return core_fail(TUNA_ERR_ARG, "%s@%s: no file '%s' (HTTP 404)", repo, rev, file);
    if (r->code == 404)
        return core_fail(TUNA_ERR_ARG, "%s: no such model repository on %s (HTTP 404; a private one needs HF_TOKEN)", repo, run->env->endpoint);
    return core_fail(TUNA_ERR_NETWORK, "%s%s%s: the Hub answered HTTP %ld", repo, file ? ": " : "", file ? file : "", r->code);
}

tuna_status hub_head(hub_http *h, hub_run *run, hub_meta *m) {
    char url[4096];
    hub_resp r;
    if (hub_resolve_url(run, m->path, url, sizeof url)) return core_fail(TUNA_ERR_ARG, "%s: URL too long", m->path);
    int rc = hub_http_head(h, url, &r);
    if (rc || r.code < 200 || r.code > 399) return hub_fail(run, &r, rc, m->path);
    snprintf(m->etag, sizeof m->etag, "%s", r.linked_etag[0] ? r.linked_etag : r.etag);
    hub_etag_clean(m->etag);
    if (!hub_etag_ok(m->etag))
        return core_fail(TUNA_ERR_NETWORK, "%s: %s: the Hub sent no usable ETag ('%.100s')", run->id.repo, m->path, m->etag);
    m->size = r.linked_size >= 0 ? r.linked_size : r.content_length;
    return TUNA_OK;
}

/* the download under way */
typedef struct {
    hub_run *run;
    const hub_meta *m;
    hub_resp *r;
    int fd;
    int64_t have;  /* bytes in the .incomplete file */
    sha256_ctx sha;
    int restart_checked;
    int werr;      /* errno of a failed write */
} dl;

static void report(hub_run *run, const char *file, int file_done) {
    double now = core_now_s();
    if (!run->o || !run->o->progress || (!file_done && now - run->last_report < 0.1)) return;
    run->last_report = now;
    tuna_hub_progress p = {run->done, run->total, run->files_done, run->files, file, file_done};
    run->o->progress(&p, run->o->user);
}

static void add_progress(hub_run *run, int64_t n, const char *file, int file_done) {
    pthread_mutex_lock(&run->mu);
    run->done += n;
    run->files_done += file_done;
    report(run, file, file_done);
    pthread_mutex_unlock(&run->mu);
}

static int sink(const void *p, size_t n, void *ctx) {
    dl *d = ctx;
    if (!d->restart_checked) { /* Range ignored: the whole file comes again */
        d->restart_checked = 1;
        if (d->have > 0 && d->r->code == 200) {
            if (ftruncate(d->fd, 0) != 0 || lseek(d->fd, 0, SEEK_SET) != 0) return d->werr = errno, -1;
            __atomic_fetch_sub(&d->run->resumed, d->have, __ATOMIC_RELAXED);
            add_progress(d->run, -d->have, d->m->path, 0);
            d->have = 0;
            sha256_free(&d->sha);
            if (sha256_init(&d->sha)) return d->werr = ENOMEM, -1;
        }
    }
    if (__atomic_load_n(&d->run->stop, __ATOMIC_RELAXED)) return -1;
    for (const char *q = p; n;) {
        ssize_t w = write(d->fd, q, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return d->werr = w < 0 ? errno : EIO, -1;
        sha256_update(&d->sha, q, (size_t)w);
        q += w, n -= (size_t)w, d->have += w;
        add_progress(d->run, w, d->m->path, 0);
    }
    return 0;
}

/* the hash of the bytes already downloaded */
static tuna_status hash_existing(dl *d, const char *path) {
    char buf[1 << 16];
    ssize_t k;
    if (lseek(d->fd, 0, SEEK_SET) != 0) return core_fail(TUNA_ERR_IO, "%s: %s", path, strerror(errno));
    while ((k = read(d->fd, buf, sizeof buf)) > 0) sha256_update(&d->sha, buf, (size_t)k);
    if (k < 0 || lseek(d->fd, 0, SEEK_END) != d->have) return core_fail(TUNA_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    return TUNA_OK;
}

/* the transfer's outcome: length, then (LFS) checksum; a bad file is removed */
static tuna_status verify(dl *d, const char *tmp) {
    const hub_meta *m = d->m;
    const char *repo = d->run->id.repo;
    if (m->size >= 0 && d->have != m->size) {
        unlink(tmp);
        return core_fail(TUNA_ERR_NETWORK, "%s: %s: %lld bytes received, the Hub announced %lld (the download was removed)", repo,
                         m->path, (long long)d->have, (long long)m->size);
    }
    if (!hub_is_hex(m->etag, 64)) return TUNA_OK; /* not an LFS file: its etag is a git hash */
    char got[65];
    sha256_hex(&d->sha, got);
    if (!strcasecmp(got, m->etag)) return TUNA_OK;
    unlink(tmp);
    return core_fail(TUNA_ERR_NETWORK, "%s: %s: checksum mismatch: expected sha256 %s, got %s (the download was removed)", repo,
                     m->path, m->etag, got);
}

/* the GET into tmp, from what it holds already */
static tuna_status download(hub_http *h, dl *d, const char *tmp) {
    char url[4096];
    hub_resp r;
    d->r = &r;
    if (hub_resolve_url(d->run, d->m->path, url, sizeof url)) return core_fail(TUNA_ERR_ARG, "%s: URL too long", d->m->path);
    if (d->m->size >= 0 && d->have >= d->m->size) return verify(d, tmp); /* complete, not yet moved */
    int rc = hub_http_get(h, url, d->have, sink, d, &r);
    if (d->werr) return atomic_write_failed(tmp, d->werr);
    if (rc && !r.aborted)
        return core_fail(TUNA_ERR_NETWORK, "%s: %s: download cut after %lld bytes: %s (run again to resume)", d->run->id.repo,
                         d->m->path, (long long)d->have, r.err);
    if (rc || (r.code != 200 && r.code != 206)) return hub_fail(d->run, &r, rc, d->m->path);
    return verify(d, tmp);
}

/* blobs/{etag} downloaded; called with the blob's lock held */
static tuna_status fetch_blob(hub_http *h, hub_run *run, const hub_meta *m, const char *blob) {
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.incomplete", blob);
    dl d = {.run = run, .m = m, .fd = open(tmp, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644)};
    if (d.fd < 0) return core_fail(TUNA_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    d.have = lseek(d.fd, 0, SEEK_END);
    tuna_status st = sha256_init(&d.sha) ? core_fail(TUNA_ERR_NOMEM, "hub: out of memory")
                     : d.have > 0 ? hash_existing(&d, tmp) : TUNA_OK;
    if (!st) {
        __atomic_fetch_add(&run->resumed, d.have, __ATOMIC_RELAXED);
        add_progress(run, d.have, m->path, 0);
    }
    if (!st) st = download(h, &d, tmp);
    sha256_free(&d.sha);
    if (!st && fsync(d.fd) != 0) st = atomic_write_failed(tmp, errno);
    close(d.fd);
    if (!st && rename(tmp, blob) != 0) st = core_fail(TUNA_ERR_IO, "%s: cannot rename: %s", tmp, strerror(errno));
    return st;
}

tuna_status hub_fetch(hub_http *h, hub_run *run, const hub_meta *m) {
    char blob[PATH_MAX], blobs_dir[PATH_MAX + 8];
    struct stat st_blob;
    if (hub_cache_blob(&run->cache, m->etag, 0, blob, sizeof blob)) return core_fail(TUNA_ERR_ARG, "hub: path too long");
    snprintf(blobs_dir, sizeof blobs_dir, "%s/blobs", run->cache.repo_dir);
    if (hub_mkdirs(blobs_dir)) return core_fail(TUNA_ERR_IO, "%s: cannot create the folder: %s", blobs_dir, strerror(errno));
    int lock = hub_cache_lock(&run->cache, m->etag);
    if (lock < 0) return TUNA_ERR_IO;
    tuna_status st = TUNA_OK;
    if (stat(blob, &st_blob) != 0) st = fetch_blob(h, run, m, blob);
    else add_progress(run, m->size > 0 ? m->size : 0, m->path, 0); /* another process brought it */
    hub_cache_unlock(lock);
    if (!st) st = hub_cache_link(&run->cache, run->commit, m->path, m->etag);
    if (!st) add_progress(run, 0, m->path, 1);
    return st;
}
