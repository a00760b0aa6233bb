/* tok_decode.c — ids back to text: HF decoders (ByteLevel, Replace,
 * ByteFallback, Fuse, Strip, Metaspace, BPEDecoder; Sequence flattened) run
 * over the list of token strings exactly as HF chains them, and a streaming
 * decoder for generation.
 *
 * The stream decodes a short window of recent ids twice (without and with the
 * new id) and emits the difference once it no longer ends in U+FFFD, i.e. once
 * the last character is complete. Decoding the window rather than single ids
 * keeps decoders that look at neighbours (ByteFallback groups, the leading
 * space strip) exact; the window restarts after every emission, so the cost
 * per id stays constant. */
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include "tok_internal.h"
#include "core/error.h"

#define REPL "\xEF\xBF\xBD" /* U+FFFD */

static char *dup_json_str(json_t *j, size_t *len) {
    const char *s = json_string_value(j);
    if (!s) return NULL;
    size_t n = json_string_length(j);
    char *d = malloc(n + 1);
    if (d) { memcpy(d, s, n + 1); *len = n; }
    return d;
}

static tuna_status add_dec(tuna_tokenizer *tok, tk_dec *d) {
    tk_dec *p = realloc(tok->decs, (size_t)(tok->n_decs + 1) * sizeof *p);
    if (!p) { tk_dec_free(d); return core_fail(TUNA_ERR_NOMEM, "tokenizer.json: out of memory"); }
    tok->decs = p;
    tok->decs[tok->n_decs++] = *d;
    return TUNA_OK;
}

tuna_status tk_dec_parse(tuna_tokenizer *tok, json_t *j) {
    if (!j || json_is_null(j)) return TUNA_OK;
    tok->has_decoder = 1;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: decoder without \"type\"");
    tk_dec d;
    memset(&d, 0, sizeof d);
    jkeys r = {j, "tokenizer.json", "decoder.", TUNA_OK}; /* numbers and flags, read strictly (core/json_keys.h) */
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(j, "decoders");
        if (!json_is_array(list)) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: Sequence decoder without \"decoders\" list");
        size_t i;
        json_t *c;
        json_array_foreach(list, i, c) {
            tuna_status st = tk_dec_parse(tok, c);
            if (st) return st;
        }
        return TUNA_OK;
    }
    if (!strcmp(type, "ByteLevel")) d.type = TD_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback")) d.type = TD_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) d.type = TD_FUSE;
    else if (!strcmp(type, "Replace")) {
        d.type = TD_REPLACE;
        d.a = dup_json_str(json_object_get(json_object_get(j, "pattern"), "String"), &d.alen);
        d.b = dup_json_str(json_object_get(j, "content"), &d.blen);
        if (!d.a || !d.b || d.alen == 0) {
            tk_dec_free(&d);
            return core_fail(TUNA_ERR_UNSUPPORTED, "tokenizer.json: Replace decoder needs a non-empty \"String\" pattern and a content");
        }
    } else if (!strcmp(type, "Strip")) {
        d.type = TD_STRIP;
        d.a = dup_json_str(json_object_get(j, "content"), &d.alen);
        if (!d.a || d.alen == 0) { tk_dec_free(&d); return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: Strip decoder without \"content\""); }
        d.start = (int)jkeys_int(&r, "start", 0, INT_MAX, 0);
        d.stop = (int)jkeys_int(&r, "stop", 0, INT_MAX, 0);
        if (r.st != TUNA_OK) { tk_dec_free(&d); return r.st; }
    } else if (!strcmp(type, "Metaspace")) {
        d.type = TD_METASPACE;
        d.a = dup_json_str(json_object_get(j, "replacement"), &d.alen);
        if (!d.a || d.alen == 0) { free(d.a); d.a = strdup("\xE2\x96\x81"); d.alen = 3; }
        const char *ps = jkeys_str(&r, "prepend_scheme", NULL, NULL);
        d.prepend = ps ? strcmp(ps, "never") != 0 : jkeys_bool(&r, "add_prefix_space", 1);
        if (r.st != TUNA_OK) { tk_dec_free(&d); return r.st; }
    } else if (!strcmp(type, "BPEDecoder")) {
        d.type = TD_BPE_SUFFIX;
        d.a = dup_json_str(json_object_get(j, "suffix"), &d.alen);
        if (!d.a) { d.a = strdup("</w>"); d.alen = 4; }
    } else {
        return core_fail(TUNA_ERR_UNSUPPORTED, "tokenizer.json: decoder \"%s\" is not supported", type);
    }
    if (!d.a && (d.type == TD_METASPACE || d.type == TD_BPE_SUFFIX))
        return core_fail(TUNA_ERR_NOMEM, "tokenizer.json: out of memory");
    return add_dec(tok, &d);
}

void tk_dec_free(tk_dec *d) {
    free(d->a);
    free(d->b);
    memset(d, 0, sizeof *d);
}

/* ---- token lists: strings in one buffer, (offset, length) per token ---- */
typedef struct { tk_buf text; size_t *off, *len; size_t n, cap; } tlist;

static int tl_add(tlist *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        size_t *o = realloc(l->off, cap * sizeof *o);
        if (!o) return -1;
        l->off = o;
        size_t *q = realloc(l->len, cap * sizeof *q);
        if (!q) return -1;
        l->len = q;
        l->cap = cap;
    }
    l->off[l->n] = l->text.n;
    l->len[l->n] = n;
    l->n++;
    return tk_buf_put(&l->text, s, n);
}
/* Extends the last token (used while building one token from parts). */
static int tl_append(tlist *l, const char *s, size_t n) {
    l->len[l->n - 1] += n;
    return tk_buf_put(&l->text, s, n);
}
static void tl_reset(tlist *l) { l->n = 0; l->text.n = 0; }
static void tl_free(tlist *l) { tk_buf_free(&l->text); free(l->off); free(l->len); memset(l, 0, sizeof *l); }
#define TOK(l, i) ((l)->text.p + (l)->off[i])

/* Appends bytes to out replacing ill-formed sequences with U+FFFD, one per
 * maximal ill-formed subpart, like Rust's String::from_utf8_lossy. */
static int put_lossy(tk_buf *out, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, good = 0;
    while (i < n) {
        uint32_t cp;
        int l = tk_utf8_decode(s + i, n - i, &cp);
        if (l) { i += (size_t)l; continue; }
        if (tk_buf_put(out, s + good, i - good) || tk_buf_put(out, REPL, 3)) return -1;
        unsigned char c = u[i];
        size_t k = 1;
        int need = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 0;
        for (int m = 0; m < need && i + k < n; m++, k++) {
            unsigned char d = u[i + k];
            unsigned char lo = 0x80, hi = 0xBF;
            if (m == 0) {
                if (c == 0xE0) lo = 0xA0;
                else if (c == 0xED) hi = 0x9F;
                else if (c == 0xF0) lo = 0x90;
                else if (c == 0xF4) hi = 0x8F;
            }
            if (d < lo || d > hi) break;
        }
        i += k;
        good = i;
    }
    return tk_buf_put(out, s + good, n - good);
}

static int byte_token(const char *s, size_t n, unsigned char *b) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return 0;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        v = v * 16 + d;
    }
    *b = (unsigned char)v;
    return 1;
}

/* ByteLevel: the byte-map characters back to bytes, all tokens joined into
 * one, ill-formed UTF-8 as U+FFFD */
static int dec_bytelevel(tlist *in, tlist *out) {
    tk_buf raw = {0};
    int bad = 0;
    for (size_t t = 0; t < in->n && !bad; t++) {
        const char *s = TOK(in, t);
        size_t n = in->len[t], mark = raw.n, i = 0;
        while (i < n) {
            uint32_t cp;
            int l = tk_utf8_decode(s + i, n - i, &cp), b;
            if (!l || (b = tk_cp_to_byte(cp)) < 0) break;
            char c = (char)b;
            if (tk_buf_put(&raw, &c, 1)) { bad = 1; break; }
            i += (size_t)l;
        }
        /* a token with a character outside the byte map passes through as is */
        if (!bad && i < n) { raw.n = mark; bad = tk_buf_put(&raw, s, n); }
    }
    if (!bad && (bad = tl_add(out, "", 0)) == 0) {
        size_t before = out->text.n;
        bad = put_lossy(&out->text, raw.p ? raw.p : "", raw.n);
        out->len[0] = out->text.n - before;
    }
    tk_buf_free(&raw);
    return bad;
}

/* Replace: every occurrence of a in a token by b */
static int dec_replace(const tk_dec *d, tlist *in, tlist *out) {
    for (size_t t = 0; t < in->n; t++) {
        const char *s = TOK(in, t);
        size_t n = in->len[t], i = 0;
        if (tl_add(out, "", 0)) return -1;
        while (i < n) {
            const char *hit = n - i >= d->alen ? memmem(s + i, n - i, d->a, d->alen) : NULL;
            if (!hit) break;
            size_t at = (size_t)(hit - s);
            if (tl_append(out, s + i, at - i) || tl_append(out, d->b, d->blen)) return -1;
            i = at + d->alen;
        }
        if (tl_append(out, s + i, n - i)) return -1;
    }
    return 0;
}

/* ByteFallback: runs of <0xNN> tokens become their bytes when those are
 * valid UTF-8, else one U+FFFD per byte */
static int dec_bytefallback(tlist *in, tlist *out) {
    tk_buf pend = {0};
    int bad = 0;
    for (size_t t = 0; t <= in->n && !bad; t++) {
        unsigned char b;
        int is_byte = t < in->n && byte_token(TOK(in, t), in->len[t], &b);
        if (is_byte) { bad = tk_buf_put(&pend, &b, 1); continue; }
        if (pend.n) {
            if (tk_utf8_check(pend.p, pend.n) == pend.n) bad = tl_add(out, pend.p, pend.n);
            else for (size_t k = 0; k < pend.n && !bad; k++) bad = tl_add(out, REPL, 3);
            pend.n = 0;
        }
        if (!bad && t < in->n) bad = tl_add(out, TOK(in, t), in->len[t]);
    }
    tk_buf_free(&pend);
    return bad;
}

/* Fuse: all tokens joined into one */
static int dec_fuse(tlist *in, tlist *out) {
    if (tl_add(out, "", 0)) return -1;
    for (size_t t = 0; t < in->n; t++)
        if (tl_append(out, TOK(in, t), in->len[t])) return -1;
    return 0;
}

/* Strip: up to start copies of a from the front of each token, stop from the end */
static int dec_strip(const tk_dec *d, tlist *in, tlist *out) {
    for (size_t t = 0; t < in->n; t++) {
        const char *s = TOK(in, t);
        size_t a = 0, b = in->len[t];
        for (int k = 0; k < d->start && b - a >= d->alen && !memcmp(s + a, d->a, d->alen); k++) a += d->alen;
        for (int k = 0; k < d->stop && b - a >= d->alen && !memcmp(s + b - d->alen, d->a, d->alen); k++) b -= d->alen;
        if (tl_add(out, s + a, b - a)) return -1;
    }
    return 0;
}

/* Metaspace and BPEDecoder: the marker a becomes a space. HF's Metaspace
 * drops the markers of the first token instead of turning them into spaces
 * (the prepended one is the usual case); BPEDecoder's end-of-word suffix
 * becomes a space except in the last token. */
static int dec_marker_space(const tk_dec *d, tlist *in, tlist *out, int metaspace) {
    for (size_t t = 0; t < in->n; t++) {
        const char *s = TOK(in, t);
        size_t n = in->len[t], i = 0;
        int space = metaspace ? !(t == 0 && d->prepend) : t + 1 < in->n;
        if (tl_add(out, "", 0)) return -1;
        while (i < n) {
            if (n - i >= d->alen && !memcmp(s + i, d->a, d->alen)) {
                if (space && tl_append(out, " ", 1)) return -1;
                i += d->alen;
            } else {
                if (tl_append(out, s + i, 1)) return -1;
                i++;
            }
        }
    }
    return 0;
}

/* Runs one decoder over in, writing the new token list to out. */
static int dec_step(const tk_dec *d, tlist *in, tlist *out) {
    tl_reset(out);
    switch (d->type) {
    case TD_BYTELEVEL: return dec_bytelevel(in, out);
    case TD_REPLACE: return dec_replace(d, in, out);
    case TD_BYTEFALLBACK: return dec_bytefallback(in, out);
    case TD_FUSE: return dec_fuse(in, out);
    case TD_STRIP: return dec_strip(d, in, out);
    case TD_METASPACE: return dec_marker_space(d, in, out, 1);
    case TD_BPE_SUFFIX: return dec_marker_space(d, in, out, 0);
    }
    return -1;
}

/* Decodes ids into out (cleared first). */
static tuna_status decode_into(const tuna_tokenizer *tok, const int32_t *ids, size_t n, int skip_special, tk_buf *out) {
    tlist a = {0}, b = {0};
    tuna_status st = TUNA_OK;
    out->n = 0;
    for (size_t i = 0; i < n && !st; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tok->vocab_size || tok->str_off[id] == UINT32_MAX) {
            st = core_fail(TUNA_ERR_ARG, "tokenizer: id %d is not in the vocabulary (size %d)", (int)id, tok->vocab_size);
            break;
        }
        if (skip_special && tok->special[id]) continue;
        const char *s = tok->strs.p + tok->str_off[id];
        if (tl_add(&a, s, strlen(s))) st = TUNA_ERR_NOMEM;
    }
    for (int k = 0; k < tok->n_decs && !st; k++) {
        if (dec_step(&tok->decs[k], &a, &b)) st = TUNA_ERR_NOMEM;
        tlist t = a; a = b; b = t;
    }
    for (size_t t = 0; t < a.n && !st; t++) {
        /* without a decoder HF joins tokens with spaces */
        if (!tok->has_decoder && t > 0 && tk_buf_putc(out, ' ')) st = TUNA_ERR_NOMEM;
        if (!st && tk_buf_put(out, TOK(&a, t), a.len[t])) st = TUNA_ERR_NOMEM;
    }
    if (!st && tk_buf_put(out, "", 0)) st = TUNA_ERR_NOMEM;
    tl_free(&a);
    tl_free(&b);
    if (st == TUNA_ERR_NOMEM) return core_fail(st, "tokenizer: out of memory");
    return st;
}

tuna_status tuna_tokenizer_decode(const tuna_tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                                  char **text, size_t *len) {
    if (!tok || !text || (!ids && n)) return core_fail(TUNA_ERR_ARG, "tokenizer: decode: NULL argument");
    *text = NULL;
    tk_buf out = {0};
    tuna_status st = decode_into(tok, ids, n, skip_special, &out);
    if (st) { tk_buf_free(&out); return st; }
    *text = out.p;
    if (len) *len = out.n;
    return TUNA_OK;
}

/* ---- streaming ---- */
struct tuna_detok_stream {
    const tuna_tokenizer *tok;
    int skip_special;
    tk_ids ids;
    size_t prefix, read;     /* window [prefix, read) was emitted already */
    tk_buf before, after, emit;
};

tuna_status tuna_detok_stream_new(tuna_detok_stream **out, const tuna_tokenizer *tok, int skip_special) {
    if (!out || !tok) return core_fail(TUNA_ERR_ARG, "tokenizer: stream: NULL argument");
    *out = calloc(1, sizeof **out);
    if (!*out) return core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory");
    (*out)->tok = tok;
    (*out)->skip_special = skip_special;
    return TUNA_OK;
}

void tuna_detok_stream_free(tuna_detok_stream *s) {
    if (!s) return;
    free(s->ids.p);
    tk_buf_free(&s->before);
    tk_buf_free(&s->after);
    tk_buf_free(&s->emit);
    free(s);
}

static int ends_incomplete(const tk_buf *b) { return b->n >= 3 && !memcmp(b->p + b->n - 3, REPL, 3); }

static tuna_status stream_step(tuna_detok_stream *s, int final, const char **text, size_t *len) {
    s->emit.n = 0;
    tuna_status st = decode_into(s->tok, s->ids.p + s->prefix, s->read - s->prefix, s->skip_special, &s->before);
    if (!st) st = decode_into(s->tok, s->ids.p + s->prefix, s->ids.n - s->prefix, s->skip_special, &s->after);
    if (st) return st;
    if (s->after.n > s->before.n && (final || !ends_incomplete(&s->after))) {
        if (tk_buf_put(&s->emit, s->after.p + s->before.n, s->after.n - s->before.n))
            return core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory");
        s->prefix = s->read;
        s->read = s->ids.n;
        /* drop ids before the window so the buffer stays small */
        if (s->prefix > 1024) {
            memmove(s->ids.p, s->ids.p + s->prefix, (s->ids.n - s->prefix) * sizeof *s->ids.p);
            s->ids.n -= s->prefix;
            s->read -= s->prefix;
            s->prefix = 0;
        }
    }
    if (tk_buf_put(&s->emit, "", 0)) return core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory");
    *text = s->emit.p;
    if (len) *len = s->emit.n;
    return TUNA_OK;
}

tuna_status tuna_detok_stream_push(tuna_detok_stream *s, int32_t id, const char **text, size_t *len) {
    if (!s || !text) return core_fail(TUNA_ERR_ARG, "tokenizer: stream: NULL argument");
    if (id < 0 || id >= s->tok->vocab_size || s->tok->str_off[id] == UINT32_MAX)
        return core_fail(TUNA_ERR_ARG, "tokenizer: id %d is not in the vocabulary (size %d)", (int)id, s->tok->vocab_size);
    if (tk_ids_push(&s->ids, id)) return core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory");
    return stream_step(s, 0, text, len);
}

tuna_status tuna_detok_stream_finish(tuna_detok_stream *s, const char **text, size_t *len) {
    if (!s || !text) return core_fail(TUNA_ERR_ARG, "tokenizer: stream: NULL argument");
    tuna_status st = stream_step(s, 1, text, len);
    s->ids.n = s->prefix = s->read = 0;
    return st;
}
