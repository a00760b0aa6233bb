/* hub_http.c — libcurl requests of a pull (hub_http.h). Redirects are followed
 * here, not by curl, so that each hop decides for itself whether the token
 * goes with it: only a URL of the endpoint's scheme, host and port gets
 * "Authorization: Bearer", as requests (huggingface_hub) strips it when a
 * redirect leaves the host. */
#include "hub/hub_http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tuna.h"

#define MAX_HOPS 10

typedef struct {
    char scheme[16], host[256], port[16];
} origin;

struct hub_http {
    CURL *curl;
    origin endpoint;
    char auth[1100]; /* "Authorization: Bearer TOKEN" or "" */
};

/* one request's state seen by the callbacks */
typedef struct {
    hub_resp *r;
    hub_sink sink;
    void *ctx;
    size_t mem_max;
} xfer;

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* 0 when url's scheme, host and port could be read */
static int origin_of(const char *url, origin *o) {
    CURLU *u = curl_url();
    char *s = NULL, *h = NULL, *p = NULL;
    int rc = !u || curl_url_set(u, CURLUPART_URL, url, 0) || curl_url_get(u, CURLUPART_SCHEME, &s, 0) ||
             curl_url_get(u, CURLUPART_HOST, &h, 0) || curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT);
    if (!rc) {
        snprintf(o->scheme, sizeof o->scheme, "%s", s);
        snprintf(o->host, sizeof o->host, "%s", h);
        snprintf(o->port, sizeof o->port, "%s", p);
    }
    curl_free(s), curl_free(h), curl_free(p), curl_url_cleanup(u);
    return rc ? -1 : 0;
}

static int same_origin(const origin *a, const char *url) {
    origin b;
    return origin_of(url, &b) == 0 && !strcasecmp(a->scheme, b.scheme) && !strcasecmp(a->host, b.host) &&
           !strcmp(a->port, b.port);
}

hub_http *hub_http_new(const hub_env *e) {
    pthread_once(&global_once, global_init);
    hub_http *h = calloc(1, sizeof *h);
    if (!h || !(h->curl = curl_easy_init())) {
        free(h);
        return NULL;
    }
    if (origin_of(e->endpoint, &h->endpoint)) h->endpoint.host[0] = '\0'; /* no host: the token goes nowhere */
    if (e->token[0]) snprintf(h->auth, sizeof h->auth, "Authorization: Bearer %s", e->token);
    return h;
}

void hub_http_free(hub_http *h) {
    if (!h) return;
    curl_easy_cleanup(h->curl);
    free(h);
}

/* "Name: value" into dst when the line's name is name */
static int header_value(const char *line, size_t n, const char *name, char *dst, size_t cap) {
    size_t k = strlen(name);
    if (n <= k || line[k] != ':' || strncasecmp(line, name, k)) return 0;
    const char *v = line + k + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && isspace((unsigned char)end[-1])) end--;
    size_t len = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
    return 1;
}

static int64_t parse_size(const char *s) {
    char *end;
    long long v = strtoll(s, &end, 10);
    return end != s && !*end && v >= 0 ? (int64_t)v : -1;
}

static void resp_reset(hub_resp *r) {
    int aborted = r->aborted;
    memset(r, 0, sizeof *r);
    r->aborted = aborted;
    r->linked_size = r->content_length = -1;
}

void hub_header_line(hub_resp *r, const char *p, size_t n) {
    char num[32];
    if (n > 5 && !strncmp(p, "HTTP/", 5)) { /* a new response (after a 100 Continue) */
        resp_reset(r);
        const char *sp = memchr(p, ' ', n);
        char code[4] = "";
        if (sp && (size_t)(sp + 4 - p) <= n) memcpy(code, sp + 1, 3);
        r->code = strtol(code, NULL, 10);
    } else if (header_value(p, n, "X-Linked-Size", num, sizeof num)) r->linked_size = parse_size(num);
    else if (header_value(p, n, "Content-Length", num, sizeof num)) r->content_length = parse_size(num);
    else if (!header_value(p, n, "X-Repo-Commit", r->commit, sizeof r->commit) &&
             !header_value(p, n, "X-Linked-Etag", r->linked_etag, sizeof r->linked_etag) &&
             !header_value(p, n, "ETag", r->etag, sizeof r->etag) &&
             !header_value(p, n, "X-Error-Code", r->error_code, sizeof r->error_code))
        header_value(p, n, "Location", r->location, sizeof r->location);
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ctx) {
    xfer *x = ctx;
    hub_header_line(x->r, p, size * nmemb);
    return size * nmemb;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx) {
    xfer *x = ctx;
    size_t n = size * nmemb;
    if (x->r->code < 200 || x->r->code > 299 || !x->sink) return n; /* an error page or a redirect's body */
    if (x->sink(p, n, x->ctx)) {
        x->r->aborted = 1;
        return 0;
    }
    return n;
}

/* one request, no redirect followed; 0 when a response came */
static int request(hub_http *h, const char *url, int head, int64_t from, xfer *x) {
    CURL *c = h->curl;
    char range[64], errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hd = curl_slist_append(NULL, "Accept-Encoding: identity");
    if (h->auth[0] && same_origin(&h->endpoint, url)) hd = curl_slist_append(hd, h->auth);
    if (from > 0) {
        snprintf(range, sizeof range, "Range: bytes=%lld-", (long long)from);
        hd = curl_slist_append(hd, range);
    }
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOBODY, head ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tuna/" TUNA_VERSION_STRING);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled transfer ends after 30 s */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
    resp_reset(x->r);
    x->r->aborted = 0;
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(hd);
    if (rc == CURLE_OK) return 0;
    origin o;
    if (origin_of(url, &o)) snprintf(o.host, sizeof o.host, "%s", "?");
    snprintf(x->r->err, sizeof x->r->err, "%s: %s", o.host, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    return -1;
}

/* the absolute URL of a redirect's Location against base; -1 when unusable */
static int follow(const char *base, const char *loc, char *out, size_t n) {
    CURLU *u = curl_url();
    char *s = NULL;
    int rc = !u || curl_url_set(u, CURLUPART_URL, base, 0) || curl_url_set(u, CURLUPART_URL, loc, 0) ||
             curl_url_get(u, CURLUPART_URL, &s, 0) || snprintf(out, n, "%s", s) >= (int)n;
    curl_free(s);
    curl_url_cleanup(u);
    return rc ? -1 : 0;
}

static int is_redirect(long code) { return code == 301 || code == 302 || code == 303 || code == 307 || code == 308; }

/* a request and its redirects (all, or only relative ones) */
static int run(hub_http *h, const char *url, int head, int64_t from, int relative_only, xfer *x) {
    char cur[4096];
    snprintf(cur, sizeof cur, "%s", url);
    for (int hop = 0;; hop++) {
        if (request(h, cur, head, from, x)) return -1;
        const char *loc = x->r->location;
        if (!is_redirect(x->r->code) || !loc[0] || (relative_only && strstr(loc, "://"))) return 0;
        if (hop == MAX_HOPS || follow(cur, loc, cur, sizeof cur)) {
            snprintf(x->r->err, sizeof x->r->err, "%s: too many redirects, or one to a bad URL (%.200s)", url, loc);
            return -1;
        }
    }
}

int hub_http_head(hub_http *h, const char *url, hub_resp *r) {
    xfer x = {.r = r};
    return run(h, url, 1, 0, 1, &x);
}

int hub_http_get(hub_http *h, const char *url, int64_t from, hub_sink sink, void *ctx, hub_resp *r) {
    xfer x = {.r = r, .sink = sink, .ctx = ctx};
    return run(h, url, 0, from, 0, &x);
}

typedef struct {
    char *p;
    size_t n, max;
} membuf;

static int to_mem(const void *p, size_t n, void *ctx) {
    membuf *b = ctx;
    if (b->n + n > b->max) return -1;
    char *q = realloc(b->p, b->n + n + 1);
    if (!q) return -1;
    memcpy(q + b->n, p, n);
    b->p = q;
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

int hub_http_get_mem(hub_http *h, const char *url, size_t max, char **out, size_t *n, hub_resp *r) {
    membuf b = {.p = calloc(1, 1), .max = max};
    int rc = b.p ? hub_http_get(h, url, 0, to_mem, &b, r) : -1;
    if (rc) {
        free(b.p);
        b.p = NULL, b.n = 0;
    }
    *out = b.p;
    *n = b.n;
    return rc;
}
