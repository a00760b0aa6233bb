/* hub_fetch.h — one file of a pull: its metadata from a HEAD request, then
 * its blob downloaded into the cache (resumed, checked, linked), and the
 * Hub's HTTP answers turned into one-line failures. Shared by the download
 * threads of hub_pull.c through one hub_run. */
#ifndef TUNA_HUB_FETCH_H
#define TUNA_HUB_FETCH_H
#include <pthread.h>
#include "hub/hub_cache.h"
#include "hub/hub_env.h"
#include "hub/hub_http.h"
#include "hub/hub_id.h"

/* one pull, as the threads share it */
typedef struct {
    const hub_env *env;
    const tuna_hub_opts *o;
    hub_id id;
    hub_cache cache;
    char commit[41];
    pthread_mutex_t mu;  /* guards what follows and the progress callback */
    int64_t done, total; /* bytes downloaded / to download */
    int64_t resumed;     /* of done: bytes a former run had downloaded */
    int files_done, files;
    double last_report;  /* seconds (monotonic) of the last progress call */
    int stop;            /* set on the first failure: the others end early */
} hub_run;

/* a file's metadata (HEAD) */
typedef struct {
    const char *path;
    char etag[161];
    int64_t size; /* -1 unknown */
} hub_meta;

/* the URL of {endpoint}/{repo}/resolve/{commit}/{path} or of the API call */
int hub_resolve_url(const hub_run *run, const char *path, char *out, size_t n);
/* HEAD of m->path at run->commit: m's etag and size */
tuna_status hub_head(hub_http *h, hub_run *run, hub_meta *m);
/* m's blob into the cache (unless there already) and its snapshot link */
tuna_status hub_fetch(hub_http *h, hub_run *run, const hub_meta *m);
/* the failure of a request (rc its return value) about file (NULL: the
 * repository or revision) as a status and one-line detail */
tuna_status hub_fail(const hub_run *run, const hub_resp *r, int rc, const char *file);
#endif
