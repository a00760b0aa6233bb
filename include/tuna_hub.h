/* tuna_hub.h — models by name from the Hugging Face Hub, kept in
 * huggingface_hub's own cache, so what Python tools downloaded is used as is
 * and what tuna downloads is found by them.
 *
 * An id is ORG/NAME or ORG/NAME@REVISION (a branch, tag or 40-hex commit;
 * default "main"). The protocol is the Hub's HTTP API as huggingface_hub
 * uses it: GET {endpoint}/api/models/{repo}/revision/{rev} (commit and file
 * list), HEAD {endpoint}/{repo}/resolve/{rev}/{file} (X-Repo-Commit, ETag or
 * X-Linked-Etag, size), then GET following redirects (the token is sent to the
 * endpoint's host only). The cache: $HF_HUB_CACHE, else $HF_HOME/hub, else
 * ~/.cache/huggingface/hub; models--ORG--NAME/blobs/{etag} (each file once),
 * snapshots/{commit}/{path} (relative links to the blobs), refs/{revision}
 * (the commit). Downloads go to blobs/{etag}.incomplete, resume from its size
 * with Range, and an LFS file (etag = 64 hex) is checked against its sha256
 * before it is moved into place.
 * Environment (when the options leave it NULL): HF_ENDPOINT (default
 * https://huggingface.co), HF_TOKEN, else the file $HF_HOME/token
 * (HF_HOME default ~/.cache/huggingface), HF_HUB_OFFLINE=1 (cache only).
 * Statuses: TUNA_ERR_ARG for a malformed id and for 404 (no such repository,
 * revision or file, named in the detail), TUNA_ERR_NETWORK for connection
 * failures, 401/403 (gated or private), other server errors and a checksum
 * mismatch, TUNA_ERR_IO when offline and a file is missing from the cache.
 * The library prints nothing: progress goes to the caller's callback. */
#ifndef TUNA_HUB_H
#define TUNA_HUB_H
#include "tuna.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Progress of a pull: bytes of the files being downloaded (those already in
 * the cache not counted). Called from the download threads, one call at a
 * time (the library serialises them), at most ~10 times a second per file
 * plus once when each file ends (file_done 1). */
typedef struct {
    int64_t done, total;   /* bytes downloaded so far / to download in this run */
    int files_done, files; /* files finished / to download */
    const char *file;      /* the file this call is about */
    int file_done;         /* 1: that file has just been completed */
} tuna_hub_progress;

typedef struct {
    const char *const *include; /* fnmatch globs: only files matching one (replaces the default selection) */
    int n_include;
    const char *const *exclude; /* fnmatch globs: files matching one are left out */
    int n_exclude;
    int dry_run;                /* list the selection (sizes from HEAD), download nothing */
    int offline;                /* 1: cache only; 0: HF_HUB_OFFLINE decides */
    const char *endpoint;       /* NULL: $HF_ENDPOINT or https://huggingface.co */
    const char *token;          /* NULL: $HF_TOKEN or $HF_HOME/token; "" none */
    const char *cache_dir;      /* NULL: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub */
    void (*progress)(const tuna_hub_progress *p, void *user);
    void *user;
} tuna_hub_opts;

/* One file of a pull's selection. */
typedef struct {
    char *path;   /* path in the repository */
    int64_t size; /* bytes (-1 when unknown: offline) */
    int cached;   /* 1: already in the cache before this run */
} tuna_hub_file;

typedef struct {
    char dir[4096];   /* the snapshot folder: CACHE/models--ORG--NAME/snapshots/COMMIT */
    char commit[41];
    tuna_hub_file *files; /* the selection, in the repository's order */
    int n_files;
    int64_t bytes_downloaded;
} tuna_hub_result;

/* 1 when s has the form of a Hub id (ORG/NAME[@REV], huggingface_hub's
 * rules for names: letters, digits, '-', '_', '.', no "--" or "..", at most
 * 96 characters); it says nothing of whether the repository exists. */
int tuna_hub_is_id(const char *s);
/* Pulls id's selected files into the cache (or, with dry_run, lists them).
 * r is filled (tuna_hub_result_free releases its list) on success and on
 * failure. */
tuna_status tuna_hub_pull(const char *id, const tuna_hub_opts *o, tuna_hub_result *r);
void tuna_hub_result_free(tuna_hub_result *r);
/* A model or adapter folder for path_or_id: a path that exists is copied to
 * dir as is; else a Hub id is pulled with o's selection (NULL: defaults) and
 * its snapshot folder written to dir (n bytes). TUNA_ERR_IO when path_or_id is
 * neither an existing path nor an id. */
tuna_status tuna_hub_resolve(const char *path_or_id, const tuna_hub_opts *o, char *dir, size_t n);

#ifdef __cplusplus
}
#endif
#endif
