/* tok_util.c — small building blocks of the tokenizer: growable buffers, an
 * open-addressing string map (vocabulary, added tokens, pre-token cache),
 * UTF-8 helpers and PCRE2 regexes made to behave like the Oniguruma regexes
 * HF tokenizers compiles (Unicode classes; \s and \w spelled out as
 * Oniguruma defines them). */
#include <stdlib.h>
#include <string.h>
#include "tok_internal.h"
#include "core/error.h"

int tk_buf_reserve(tk_buf *b, size_t extra) {
    if (b->n + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tk_buf_put(tk_buf *b, const void *s, size_t n) {
    if (tk_buf_reserve(b, n + 1)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0'; /* keeps the buffer printable; not counted in n */
    return 0;
}

int tk_buf_putc(tk_buf *b, char c) { return tk_buf_put(b, &c, 1); }

tuna_status tk_nomem(void) { return core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory"); }

void tk_buf_free(tk_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

int tk_ids_push(tk_ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->p, cap * sizeof *p);
        if (!p) return -1;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = id;
    return 0;
}

/* ---- hash map ---- */
uint64_t tk_hash(const char *k, size_t n) {
    /* FNV-1a over 8-byte words then bytes: keys are short (tokens, words). */
    uint64_t h = 0xcbf29ce484222325ull ^ (n * 0x9e3779b97f4a7c15ull);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, k + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ (unsigned char)k[i]) * 0x100000001b3ull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static int map_alloc(tk_map *m, size_t cap) {
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i].len = UINT32_MAX;
    m->cap = cap;
    m->count = 0;
    return 0;
}

int tk_map_init(tk_map *m, size_t expect) {
    memset(m, 0, sizeof *m);
    size_t cap = 16;
    while (cap < expect * 2) cap *= 2;
    return map_alloc(m, cap);
}

void tk_map_free(tk_map *m) {
    free(m->slots);
    tk_buf_free(&m->keys);
    memset(m, 0, sizeof *m);
}

void tk_map_clear(tk_map *m) {
    for (size_t i = 0; i < m->cap; i++) m->slots[i].len = UINT32_MAX;
    m->count = 0;
    m->keys.n = 0;
}

static tk_slot *map_find(const tk_map *m, const char *k, size_t n, uint64_t h) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        tk_slot *s = &m->slots[i];
        if (s->len == UINT32_MAX) return s;
        if (s->h == h && s->len == n && memcmp(m->keys.p + s->off, k, n) == 0) return s;
    }
}

static int map_grow(tk_map *m) {
    tk_slot *old = m->slots;
    size_t oldcap = m->cap;
    if (map_alloc(m, oldcap * 2)) { m->slots = old; m->cap = oldcap; return -1; }
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].len == UINT32_MAX) continue;
        size_t mask = m->cap - 1, j = old[i].h & mask;
        while (m->slots[j].len != UINT32_MAX) j = (j + 1) & mask;
        m->slots[j] = old[i];
        m->count++;
    }
    free(old);
    return 0;
}

int tk_map_put(tk_map *m, const char *k, size_t n, int32_t val) {
    if ((m->count + 1) * 4 > m->cap * 3 && map_grow(m)) return -1;
    if (n >= UINT32_MAX || m->keys.n + n + 1 >= UINT32_MAX) return -1;
    uint64_t h = tk_hash(k, n);
    tk_slot *s = map_find(m, k, n, h);
    if (s->len != UINT32_MAX) { s->val = val; return 0; }
    uint32_t off = (uint32_t)m->keys.n;
    if (tk_buf_put(&m->keys, k, n)) return -1;
    s->h = h;
    s->off = off;
    s->len = (uint32_t)n;
    s->val = val;
    m->count++;
    return 0;
}

int32_t tk_map_get(const tk_map *m, const char *k, size_t n) {
    if (!m->cap) return -1;
    const tk_slot *s = map_find(m, k, n, tk_hash(k, n));
    return s->len == UINT32_MAX ? -1 : s->val;
}

/* ---- UTF-8 ---- */
int tk_utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1;
}

int tk_utf8_decode(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) return 0;
    if (u[0] < 0x80) { *cp = u[0]; return 1; }
    int len;
    uint32_t c, min;
    if (u[0] >= 0xC2 && u[0] <= 0xDF) { len = 2; c = u[0] & 0x1F; min = 0x80; }
    else if ((u[0] & 0xF0) == 0xE0) { len = 3; c = u[0] & 0x0F; min = 0x800; }
    else if (u[0] >= 0xF0 && u[0] <= 0xF4) { len = 4; c = u[0] & 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (u[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

int tk_utf8_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = 0xC0 | (cp >> 6); o[1] = 0x80 | (cp & 0x3F); return 2; }
    if (cp < 0x10000) {
        o[0] = 0xE0 | (cp >> 12); o[1] = 0x80 | ((cp >> 6) & 0x3F); o[2] = 0x80 | (cp & 0x3F);
        return 3;
    }
    o[0] = 0xF0 | (cp >> 18); o[1] = 0x80 | ((cp >> 12) & 0x3F);
    o[2] = 0x80 | ((cp >> 6) & 0x3F); o[3] = 0x80 | (cp & 0x3F);
    return 4;
}

size_t tk_utf8_check(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) { i++; continue; }
        uint32_t cp;
        int l = tk_utf8_decode(s + i, n - i, &cp);
        if (!l) return i;
        i += (size_t)l;
    }
    return n;
}

int tk_is_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* ---- regex ---- */
/* Oniguruma's \s (Unicode) is the White_Space property; PCRE2 10.42's UCP \s
 * also accepts U+180E, so \s and \S are spelled out before compiling. */
#define WS_CLASS "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
/* Oniguruma's \w (Unicode) is Letter | Mark | Decimal_Number | Connector_Punctuation;
 * PCRE2 10.42's UCP \w has no marks and all numbers. */
#define WORD_CLASS "\\p{L}\\p{M}\\p{Nd}\\p{Pc}"

static int translate_pattern(const char *p, size_t n, tk_buf *out) {
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char e = p[i + 1];
            if (e == 's' && in_class) { if (tk_buf_put(out, WS_CLASS, strlen(WS_CLASS))) return -1; }
            else if (e == 's') { if (tk_buf_put(out, "[" WS_CLASS "]", strlen(WS_CLASS) + 2)) return -1; }
            else if (e == 'S' && !in_class) { if (tk_buf_put(out, "[^" WS_CLASS "]", strlen(WS_CLASS) + 3)) return -1; }
            else if (e == 'w' && in_class) { if (tk_buf_put(out, WORD_CLASS, strlen(WORD_CLASS))) return -1; }
            else if (e == 'w') { if (tk_buf_put(out, "[" WORD_CLASS "]", strlen(WORD_CLASS) + 2)) return -1; }
            else if (e == 'W' && !in_class) { if (tk_buf_put(out, "[^" WORD_CLASS "]", strlen(WORD_CLASS) + 3)) return -1; }
            else if (tk_buf_put(out, p + i, 2)) return -1;
            i++;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = 1;
            if (tk_buf_putc(out, c)) return -1;
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < n && p[i + 1] == '^') { if (tk_buf_putc(out, '^')) return -1; i++; }
            if (i + 1 < n && p[i + 1] == ']') { if (tk_buf_putc(out, ']')) return -1; i++; }
            continue;
        }
        if (c == ']' && in_class) in_class = 0;
        if (tk_buf_putc(out, c)) return -1;
    }
    return 0;
}

tuna_status tk_regex_compile(tk_regex *re, const char *pattern, size_t len, const char *what) {
    memset(re, 0, sizeof *re);
    tk_buf pat = {0};
    if (translate_pattern(pattern, len, &pat) || tk_buf_putc(&pat, '\0')) {
        tk_buf_free(&pat);
        return core_fail(TUNA_ERR_NOMEM, "%s: out of memory compiling regex", what);
    }
    int err;
    PCRE2_SIZE off;
    re->code = pcre2_compile((PCRE2_SPTR)pat.p, pat.n - 1, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    tk_buf_free(&pat);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return core_fail(TUNA_ERR_UNSUPPORTED, "%s: regex '%.*s' not supported: %s", what,
                         (int)(len > 200 ? 200 : len), pattern, (const char *)msg);
    }
    /* JIT is an optimisation: patterns still match without it. */
    int jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
    re->mctx = pcre2_match_context_create(NULL);
    if (jit) {
        re->jstack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (re->jstack && re->mctx) pcre2_jit_stack_assign(re->mctx, NULL, re->jstack);
    }
    if (!re->md || !re->mctx) {
        tk_regex_free(re);
        return core_fail(TUNA_ERR_NOMEM, "%s: out of memory compiling regex", what);
    }
    return TUNA_OK;
}

void tk_regex_free(tk_regex *re) {
    if (re->md) pcre2_match_data_free(re->md);
    if (re->mctx) pcre2_match_context_free(re->mctx);
    if (re->jstack) pcre2_jit_stack_free(re->jstack);
    if (re->code) pcre2_code_free(re->code);
    memset(re, 0, sizeof *re);
}

int tk_regex_next(tk_regex *re, const char *s, size_t n, size_t start, size_t *ms, size_t *me) {
    while (start <= n) {
        /* Input was checked as UTF-8 once at the API boundary. */
        int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, re->md, re->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) return -1;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
        if (ov[1] > ov[0]) { *ms = ov[0]; *me = ov[1]; return 1; }
        /* empty match: HF skips it; retry one character further */
        if (ov[0] >= n) return 0;
        start = ov[0] + (size_t)tk_utf8_len((unsigned char)s[ov[0]]);
    }
    return 0;
}
