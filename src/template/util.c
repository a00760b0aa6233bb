/* util.c — the template module's arena, error unwinding, and the JS text
 * rules it must reproduce (what counts as whitespace for trim and \s, how a
 * number prints), since the reference renderer is JavaScript. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "template/tmpl.h"

struct tp_chunk {
    tp_chunk *next;
    size_t size, used;
    max_align_t data[];
};

void *tp_alloc(tp_ctx *c, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (c->limit && c->used + n > c->limit)
        tp_fail_raw(c, TUNA_ERR_FORMAT, "chat template needs more than %zu bytes of memory", c->limit);
    tp_chunk *h = c->head;
    if (!h || h->size - h->used < n) {
        size_t sz = n > (1u << 16) ? n : (1u << 16);
        h = malloc(sizeof *h + sz);
        if (!h) tp_fail_raw(c, TUNA_ERR_NOMEM, "out of memory rendering a chat template");
        h->size = sz;
        h->used = 0;
        h->next = c->head;
        c->head = h;
    }
    void *p = (char *)h->data + h->used;
    h->used += n;
    c->used += n;
    return p;
}

void tp_arena_free(tp_ctx *c) {
    tp_chunk *h = c->head;
    while (h) {
        tp_chunk *n = h->next;
        free(h);
        h = n;
    }
    c->head = NULL;
    c->used = 0;
}

/* 1-based line and column (in characters) of byte offset pos in the source */
static void line_col(const tp_ctx *c, long pos, int *line, int *col) {
    *line = 1;
    *col = 1;
    if (pos < 0 || !c->src) return;
    size_t end = (size_t)pos < c->src_len ? (size_t)pos : c->src_len;
    for (size_t i = 0; i < end; i++) {
        unsigned char ch = (unsigned char)c->src[i];
        if (ch == '\n') { (*line)++; *col = 1; }
        else if ((ch & 0xC0) != 0x80) (*col)++;
    }
}

void tp_fail(tp_ctx *c, long pos, const char *fmt, ...) {
    int n = 0;
    if (pos >= 0) {
        int line, col;
        line_col(c, pos, &line, &col);
        n = snprintf(c->msg, sizeof c->msg, "line %d, column %d: ", line, col);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg + n, sizeof c->msg - (size_t)n, fmt, ap);
    va_end(ap);
    c->err = TUNA_ERR_FORMAT;
    longjmp(*c->jb, 1);
}

void tp_fail_raw(tp_ctx *c, tuna_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    c->err = s;
    longjmp(*c->jb, 1);
}

tstr tp_strdup(tp_ctx *c, const char *s, size_t n) {
    char *p = tp_alloc(c, n + 1);
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return (tstr){p, n};
}

int tstr_eq(tstr a, const char *lit) {
    size_t n = strlen(lit);
    return a.n == n && memcmp(a.s, lit, n) == 0;
}

void tp_buf_put(tp_ctx *c, tp_buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = tp_alloc(c, cap);
        if (b->n) memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void tp_buf_puts(tp_ctx *c, tp_buf *b, const char *s) { tp_buf_put(c, b, s, strlen(s)); }

/* Lenient decoder: a malformed byte decodes as itself (one byte), so every
 * input makes progress and nothing reads past n. */
int tp_utf8_dec(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) { *cp = 0; return 1; }
    if (u[0] < 0x80) { *cp = u[0]; return 1; }
    int len = u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC0 ? 2 : 1;
    if (len == 1 || (size_t)len > n) { *cp = u[0]; return 1; }
    uint32_t v = u[0] & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) { *cp = u[0]; return 1; }
        v = (v << 6) | (u[i] & 0x3F);
    }
    *cp = v;
    return len;
}

int tp_utf8_enc(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* JavaScript's \s (and String.prototype.trim): ASCII spaces plus the Unicode
 * space separators, line/paragraph separators and the BOM. */
int tp_js_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

size_t tp_js_space_at(const char *s, size_t n) {
    if (n == 0) return 0;
    uint32_t cp;
    int k = tp_utf8_dec(s, n, &cp);
    return tp_js_space(cp) ? (size_t)k : 0;
}

size_t tp_trim_end_len(const char *s, size_t n) {
    while (n > 0) {
        size_t st = n - 1;
        while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80 && n - st < 4) st--;
        size_t k = tp_js_space_at(s + st, n - st);
        if (k != n - st) break;
        n = st;
    }
    return n;
}

size_t tp_trim_start_off(const char *s, size_t n) {
    size_t i = 0, k;
    while (i < n && (k = tp_js_space_at(s + i, n - i)) > 0) i += k;
    return i;
}

/* Number.prototype.toString(): the shortest digits that read back as x,
 * plain notation for exponents in [-7, 21), else d.ddde+X. */
void tp_js_num(double x, char *out, size_t cap) {
    if (isnan(x)) { snprintf(out, cap, "NaN"); return; }
    if (isinf(x)) { snprintf(out, cap, x < 0 ? "-Infinity" : "Infinity"); return; }
    if (x == 0) { snprintf(out, cap, "0"); return; }
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, x);
        if (strtod(tmp, NULL) == x) break;
    }
    /* tmp = [-]d.ddde[+-]XX */
    const char *p = tmp;
    int neg = 0;
    if (*p == '-') { neg = 1; p++; }
    char digits[24];
    int k = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[k++] = *p;
    digits[k] = 0;
    int e = (int)strtol(p + 1, NULL, 10);
    int n = e + 1; /* position of the decimal point */
    char res[64];
    int r = 0;
    if (neg) res[r++] = '-';
    if (k <= n && n <= 21) {
        memcpy(res + r, digits, (size_t)k); r += k;
        for (int i = k; i < n; i++) res[r++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(res + r, digits, (size_t)n); r += n;
        res[r++] = '.';
        memcpy(res + r, digits + n, (size_t)(k - n)); r += k - n;
    } else if (-6 < n && n <= 0) {
        res[r++] = '0'; res[r++] = '.';
        for (int i = 0; i < -n; i++) res[r++] = '0';
        memcpy(res + r, digits, (size_t)k); r += k;
    } else {
        res[r++] = digits[0];
        if (k > 1) { res[r++] = '.'; memcpy(res + r, digits + 1, (size_t)(k - 1)); r += k - 1; }
        r += snprintf(res + r, sizeof res - (size_t)r, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    res[r] = 0;
    snprintf(out, cap, "%s", res);
}
