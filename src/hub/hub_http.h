/* hub_http.h — the HTTP requests of a pull, over libcurl: HEAD following
 * relative redirects only (huggingface_hub's rule: a renamed repository),
 * GET following every redirect (LFS files come from another host), the token
 * sent only to the endpoint's own scheme, host and port, the Hub's response
 * headers picked out. One hub_http per thread; it keeps its connections. */
#ifndef TUNA_HUB_HTTP_H
#define TUNA_HUB_HTTP_H
#include <stddef.h>
#include <stdint.h>
#include "hub/hub_env.h"

typedef struct {
    long code;               /* HTTP status of the last response (0: none) */
    char commit[64];         /* X-Repo-Commit */
    char etag[160];          /* ETag, as sent */
    char linked_etag[160];   /* X-Linked-Etag (LFS files: their sha256) */
    char error_code[64];     /* X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) */
    char location[2048];     /* Location of a redirect */
    int64_t linked_size;     /* X-Linked-Size; -1 when absent */
    int64_t content_length;  /* Content-Length; -1 when absent */
    char err[600];           /* transport failure: "HOST: curl's message" */
    int aborted;             /* the sink refused the data */
} hub_resp;

/* receives n bytes of a 2xx body; returns 0 to go on, else the transfer stops */
typedef int (*hub_sink)(const void *p, size_t n, void *ctx);

/* one response header line (not NUL-ended; a status line starts a new
 * response) into r: what the Hub's headers say, values cut to their fields */
void hub_header_line(hub_resp *r, const char *line, size_t n);

typedef struct hub_http hub_http;

/* NULL when out of memory */
hub_http *hub_http_new(const hub_env *e);
void hub_http_free(hub_http *h);
/* 0 when a response came (r->code), -1 on a transport failure (r->err) */
int hub_http_head(hub_http *h, const char *url, hub_resp *r);
/* GET from byte `from` (a Range request when > 0); a 2xx body goes to sink.
 * 0 when a response came (r->code), -1 on a transport failure (r->err) or
 * when the sink stopped it (r->aborted). */
int hub_http_get(hub_http *h, const char *url, int64_t from, hub_sink sink, void *ctx, hub_resp *r);
/* GET of a small body (at most max bytes) into *out (malloc'd, NUL-ended) */
int hub_http_get_mem(hub_http *h, const char *url, size_t max, char **out, size_t *n, hub_resp *r);
#endif
