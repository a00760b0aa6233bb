/* hub_cache.h — huggingface_hub's cache of one repository:
 *   CACHE/models--ORG--NAME/blobs/{etag}            each file once
 *   CACHE/models--ORG--NAME/blobs/{etag}.incomplete a download under way
 *   CACHE/models--ORG--NAME/snapshots/{commit}/{path} -> ../../blobs/{etag}
 *   CACHE/models--ORG--NAME/refs/{revision}         the commit, no newline
 *   CACHE/.locks/models--ORG--NAME/{etag}.lock      flock(2) while a blob is written
 * (the locks are the ones Python's filelock takes, so tuna and Python tools
 * may download into one cache at once). */
#ifndef TUNA_HUB_CACHE_H
#define TUNA_HUB_CACHE_H
#include <limits.h>
#include "tuna.h"

typedef struct {
    char repo_dir[PATH_MAX];  /* CACHE/models--ORG--NAME */
    char locks_dir[PATH_MAX]; /* CACHE/.locks/models--ORG--NAME */
} hub_cache;

/* names the folders (creates nothing); TUNA_ERR_ARG when too long */
tuna_status hub_cache_init(hub_cache *c, const char *cache, const char *repo);
/* the commit refs/{rev} holds (or rev itself when it is a 40-hex commit); -1 when none */
int hub_cache_ref(const hub_cache *c, const char *rev, char commit[41]);
/* writes refs/{rev} (nothing for a commit) */
tuna_status hub_cache_set_ref(const hub_cache *c, const char *rev, const char *commit);
/* paths of a blob ({etag}, or {etag}.incomplete) and of a snapshot entry; -1 when too long */
int hub_cache_blob(const hub_cache *c, const char *etag, int incomplete, char *out, size_t n);
int hub_cache_snapshot(const hub_cache *c, const char *commit, const char *path, char *out, size_t n);
/* 1 when snapshots/{commit}/{path} exists and its link resolves to a file */
int hub_cache_has(const hub_cache *c, const char *commit, const char *path);
/* snapshots/{commit}/{path} made a relative link to blobs/{etag} (replacing one) */
tuna_status hub_cache_link(const hub_cache *c, const char *commit, const char *path, const char *etag);
/* an exclusive lock on the blob (blocking); the descriptor, or -1 with the detail */
int hub_cache_lock(const hub_cache *c, const char *etag);
void hub_cache_unlock(int fd);
/* mkdir -p; 0 or -1 with errno */
int hub_mkdirs(const char *dir);
#endif
