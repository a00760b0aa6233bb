/* hub_id.c — checks of ids, revisions, paths and ETags before they reach a URL
 * or the cache (hub_id.h). Repository names follow huggingface_hub's
 * validate_repo_id: [A-Za-z0-9_.-], each part starting and ending with a
 * letter, digit or '_', no "--" or "..", at most 96 characters. */
#include "hub/hub_id.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "tuna_hub.h"

static int name_char(int c) { return isalnum(c) || c == '_' || c == '-' || c == '.'; }
static int word_char(int c) { return isalnum(c) || c == '_'; }

/* one part of ORG/NAME: s[0 .. len) */
static int name_ok(const char *s, size_t len) {
    if (len == 0 || !word_char((unsigned char)s[0]) || !word_char((unsigned char)s[len - 1])) return 0;
    for (size_t i = 0; i < len; i++)
        if (!name_char((unsigned char)s[i])) return 0;
    return 1;
}

static int repo_ok(const char *s, size_t len) {
    const char *slash = memchr(s, '/', len);
    if (!slash || len > HUB_REPO_MAX || memchr(slash + 1, '/', len - (size_t)(slash + 1 - s))) return 0;
    if (!name_ok(s, (size_t)(slash - s)) || !name_ok(slash + 1, len - (size_t)(slash + 1 - s))) return 0;
    for (size_t i = 0; i + 1 < len; i++)
        if ((s[i] == '-' && s[i + 1] == '-') || (s[i] == '.' && s[i + 1] == '.')) return 0;
    return !(len >= 4 && !strncmp(s + len - 4, ".git", 4));
}

/* segments of a '/'-separated path: none empty, "." or ".." */
static int segments_ok(const char *p) {
    for (const char *s = p;;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) return 0;
        if (!e) return 1;
        s = e + 1;
    }
}

int hub_rev_ok(const char *rev) {
    size_t n = strlen(rev);
    if (n == 0 || n > HUB_REV_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (rev[i] <= ' ' || rev[i] >= 127 || rev[i] == '\\') return 0;
    return segments_ok(rev);
}

int hub_path_ok(const char *p) {
    size_t n = strlen(p);
    if (n == 0 || n > 1024) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < ' ' || p[i] == 127 || p[i] == '\\') return 0;
    return segments_ok(p);
}

int hub_etag_ok(const char *e) {
    size_t n = strlen(e);
    if (n == 0 || n > 128) return 0;
    for (size_t i = 0; i < n; i++)
        if (!word_char((unsigned char)e[i]) && e[i] != '-') return 0;
    return 1;
}

int hub_is_hex(const char *s, size_t n) {
    if (strlen(s) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i])) return 0;
    return 1;
}

int hub_id_parse(const char *s, hub_id *id, char *why, size_t n) {
    const char *at = strchr(s, '@');
    size_t len = at ? (size_t)(at - s) : strlen(s);
    if (!repo_ok(s, len)) {
        snprintf(why, n, "'%.*s' is not a Hub id ORG/NAME (letters, digits, '-', '_', '.'; at most %d characters)",
                 (int)(len > 200 ? 200 : len), s, HUB_REPO_MAX);
        return -1;
    }
    memcpy(id->repo, s, len);
    id->repo[len] = '\0';
    const char *rev = at ? at + 1 : "main";
    if (!hub_rev_ok(rev)) {
        snprintf(why, n, "%s: '%.200s' is not a revision (a branch, tag or commit)", id->repo, rev);
        return -1;
    }
    snprintf(id->rev, sizeof id->rev, "%s", rev);
    return 0;
}

int tuna_hub_is_id(const char *s) {
    hub_id id;
    char why[8];
    return s && hub_id_parse(s, &id, why, sizeof why) == 0;
}

int hub_url_escape(char *out, size_t n, const char *s, int keep_slash) {
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int keep = isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
        if (k + (keep ? 1 : 3) >= n) return -1;
        if (keep) out[k++] = (char)c;
        else {
            out[k++] = '%';
            out[k++] = hex[c >> 4];
            out[k++] = hex[c & 15];
        }
    }
    if (k >= n) return -1;
    out[k] = '\0';
    return 0;
}

void hub_etag_clean(char *e) {
    size_t n = strlen(e);
    if (n >= 2 && e[0] == 'W' && e[1] == '/') memmove(e, e + 2, (n -= 2) + 1);
    if (n >= 2 && e[0] == '"' && e[n - 1] == '"') {
        memmove(e, e + 1, n - 2);
        e[n - 2] = '\0';
    }
}
