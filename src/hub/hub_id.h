/* hub_id.h — names that come from the user or the Hub, checked before they
 * reach a URL or a path of the cache: repository ids, revisions, file paths
 * of a repository, ETags, commits; and URL escaping. */
#ifndef TUNA_HUB_ID_H
#define TUNA_HUB_ID_H
#include <stddef.h>

#define HUB_REPO_MAX 96
#define HUB_REV_MAX 255

typedef struct {
    char repo[HUB_REPO_MAX + 1]; /* ORG/NAME */
    char rev[HUB_REV_MAX + 1];   /* "main" when the id names none */
} hub_id;

/* 0 when s is ORG/NAME[@REV] with a valid name and revision; else -1 and
 * why[n] says what is wrong. */
int hub_id_parse(const char *s, hub_id *id, char *why, size_t n);
/* a revision: 1..255 printable ASCII characters, no space or '\\', and as a
 * path no empty, "." or ".." segment (it names refs/{rev} in the cache) */
int hub_rev_ok(const char *rev);
/* a repository file path from the Hub: relative, no empty / "." / ".."
 * segment, no control character, at most 1024 bytes */
int hub_path_ok(const char *p);
/* an ETag as a blob file name: 1..128 of [0-9A-Za-z_-] */
int hub_etag_ok(const char *e);
/* 1 when s is exactly n hexadecimal digits */
int hub_is_hex(const char *s, size_t n);
/* s percent-encoded into out[n] (RFC 3986 unreserved kept; '/' kept when
 * keep_slash); -1 when it does not fit */
int hub_url_escape(char *out, size_t n, const char *s, int keep_slash);
/* strips a weak prefix "W/" and surrounding quotes from an ETag, in place */
void hub_etag_clean(char *e);
#endif
