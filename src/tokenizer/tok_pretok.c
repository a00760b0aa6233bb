/* tok_pretok.c — HF pre-tokenizers: ByteLevel (GPT-2 regex + byte-to-unicode
 * mapping), Split (string or regex, all five behaviours, invert), Digits,
 * Metaspace, Whitespace, WhitespaceSplit, Punctuation; Sequence is flattened.
 *
 * Each step cuts a piece into sub-pieces and hands each one to the next step;
 * the last step hands them to the BPE model. Steps that rewrite text (ByteLevel,
 * Metaspace) write into a scratch buffer of their own level, so a piece stays
 * valid while the steps below it run. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "tok_internal.h"
#include "core/error.h"

#define GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define WHITESPACE_REGEX "\\w+|[^\\w\\s]+"
#define MAX_STEPS 8

static tuna_status add_pre(tuna_tokenizer *tok, tk_pre *p) {
    if (tok->n_pres >= MAX_STEPS) {
        tk_pre_free(p);
        return core_fail(TUNA_ERR_UNSUPPORTED, "tokenizer.json: more than %d pre-tokenizer steps", MAX_STEPS);
    }
    tk_pre *a = realloc(tok->pres, (size_t)(tok->n_pres + 1) * sizeof *a);
    if (!a) { tk_pre_free(p); return core_fail(TUNA_ERR_NOMEM, "tokenizer.json: out of memory"); }
    tok->pres = a;
    tok->pres[tok->n_pres++] = *p;
    return TUNA_OK;
}

static tuna_status parse_behavior(json_t *j, tk_behavior *b, const char *what) {
    const char *s = json_string_value(j);
    if (!s) { *b = TB_ISOLATED; return TUNA_OK; }
    if (!strcmp(s, "Removed")) *b = TB_REMOVED;
    else if (!strcmp(s, "Isolated")) *b = TB_ISOLATED;
    else if (!strcmp(s, "MergedWithPrevious")) *b = TB_MERGED_PREV;
    else if (!strcmp(s, "MergedWithNext")) *b = TB_MERGED_NEXT;
    else if (!strcmp(s, "Contiguous")) *b = TB_CONTIGUOUS;
    else return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: %s: unknown behavior \"%s\"", what, s);
    return TUNA_OK;
}

/* Metaspace: prepend_scheme (newer files) or add_prefix_space (older). */
static int parse_prepend(jkeys *r) {
    const char *s = jkeys_str(r, "prepend_scheme", NULL, NULL);
    if (s) return !strcmp(s, "never") ? 0 : !strcmp(s, "first") ? 1 : 2;
    return jkeys_bool(r, "add_prefix_space", 1) ? 2 : 0;
}

tuna_status tk_pre_parse(tuna_tokenizer *tok, json_t *j) {
    if (!j || json_is_null(j)) return TUNA_OK;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: pre_tokenizer without \"type\"");
    tk_pre p;
    memset(&p, 0, sizeof p);
    tuna_status st = TUNA_OK;
    jkeys k = {j, "tokenizer.json", "pre_tokenizer.", TUNA_OK}; /* flags, read strictly (core/json_keys.h) */
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(j, "pretokenizers");
        if (!json_is_array(list)) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: Sequence pre_tokenizer without \"pretokenizers\" list");
        size_t i;
        json_t *c;
        json_array_foreach(list, i, c) {
            if ((st = tk_pre_parse(tok, c))) return st;
        }
        return TUNA_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        p.type = TP_BYTELEVEL;
        p.add_prefix_space = jkeys_bool(&k, "add_prefix_space", 0);
        p.use_regex = jkeys_bool(&k, "use_regex", 1);
        if (k.st != TUNA_OK) return k.st;
        if (p.use_regex) {
            st = tk_regex_compile(&p.re, GPT2_REGEX, strlen(GPT2_REGEX), "ByteLevel pre_tokenizer");
            p.has_re = !st;
        }
    } else if (!strcmp(type, "Split")) {
        p.type = TP_SPLIT;
        json_t *pat = json_object_get(j, "pattern");
        json_t *s = json_object_get(pat, "String"), *r = json_object_get(pat, "Regex");
        if (json_is_string(r)) {
            st = tk_regex_compile(&p.re, json_string_value(r), json_string_length(r), "Split pre_tokenizer");
            p.has_re = !st;
        } else if (json_is_string(s) && json_string_length(s) > 0) {
            p.slen = json_string_length(s);
            p.str = malloc(p.slen + 1);
            if (!p.str) return core_fail(TUNA_ERR_NOMEM, "tokenizer.json: out of memory");
            memcpy(p.str, json_string_value(s), p.slen + 1);
        } else {
            return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: Split pre_tokenizer needs a non-empty \"String\" or \"Regex\" pattern");
        }
        if (!st) st = parse_behavior(json_object_get(j, "behavior"), &p.behavior, "Split");
        p.invert = jkeys_bool(&k, "invert", 0);
        if (!st) st = k.st;
    } else if (!strcmp(type, "Digits")) {
        p.type = TP_DIGITS;
        p.individual_digits = jkeys_bool(&k, "individual_digits", 0);
        if (k.st != TUNA_OK) return k.st;
    } else if (!strcmp(type, "Metaspace")) {
        p.type = TP_METASPACE;
        const char *r = json_string_value(json_object_get(j, "replacement"));
        if (!r || !*r) r = "\xE2\x96\x81";
        p.slen = strlen(r);
        p.str = malloc(p.slen + 1);
        if (!p.str) return core_fail(TUNA_ERR_NOMEM, "tokenizer.json: out of memory");
        memcpy(p.str, r, p.slen + 1);
        p.prepend = parse_prepend(&k);
        p.split = jkeys_bool(&k, "split", 1);
        if (k.st != TUNA_OK) { free(p.str); return k.st; }
    } else if (!strcmp(type, "Whitespace")) {
        p.type = TP_WHITESPACE;
        st = tk_regex_compile(&p.re, WHITESPACE_REGEX, strlen(WHITESPACE_REGEX), "Whitespace pre_tokenizer");
        p.has_re = !st;
    } else if (!strcmp(type, "WhitespaceSplit")) {
        p.type = TP_WSSPLIT;
    } else if (!strcmp(type, "Punctuation")) {
        p.type = TP_PUNCT;
        st = parse_behavior(json_object_get(j, "behavior"), &p.behavior, "Punctuation");
    } else {
        return core_fail(TUNA_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer \"%s\" is not supported", type);
    }
    if (st) { tk_pre_free(&p); return st; }
    return add_pre(tok, &p);
}

void tk_pre_free(tk_pre *p) {
    if (p->has_re) tk_regex_free(&p->re);
    free(p->str);
    memset(p, 0, sizeof *p);
}

/* ---- running ---- */
typedef struct { size_t a, b; int m; } span;
typedef struct { span *p; size_t n, cap; } spans;

static int spans_push(spans *v, size_t a, size_t b, int m) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 32;
        span *p = realloc(v->p, cap * sizeof *p);
        if (!p) return -1;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = (span){a, b, m};
    return 0;
}

static tuna_status run_step(tuna_tokenizer *tok, int i, const char *s, size_t n, int at_start);

/* Applies an HF split behaviour to a covering list of (match / non-match)
 * spans and runs the next step on each resulting non-empty piece. */
static tuna_status emit_split(tuna_tokenizer *tok, int next, const char *s, int at_start, spans *v,
                              tk_behavior beh, int invert) {
    if (invert)
        for (size_t k = 0; k < v->n; k++) v->p[k].m = !v->p[k].m;
    size_t w = 0; /* pieces are compacted in place, m reused as "keep" */
    int prev = 0;
    switch (beh) {
    case TB_REMOVED:
        for (size_t k = 0; k < v->n; k++)
            if (!v->p[k].m) v->p[w++] = v->p[k];
        break;
    case TB_ISOLATED: w = v->n; break;
    case TB_MERGED_PREV:
        for (size_t k = 0; k < v->n; k++) {
            int m = v->p[k].m;
            if (m && !prev && w) v->p[w - 1].b = v->p[k].b;
            else v->p[w++] = v->p[k];
            prev = m;
        }
        break;
    case TB_MERGED_NEXT: {
        /* mirror image of MergedWithPrevious, walking from the end */
        size_t r = v->n;
        for (size_t k = v->n; k-- > 0;) {
            int m = v->p[k].m;
            if (m && !prev && r < v->n) v->p[r].a = v->p[k].a;
            else v->p[--r] = v->p[k];
            prev = m;
        }
        for (size_t k = r; k < v->n; k++) v->p[w++] = v->p[k];
        break;
    }
    case TB_CONTIGUOUS:
        for (size_t k = 0; k < v->n; k++) {
            int m = v->p[k].m;
            if (m == prev && w) v->p[w - 1].b = v->p[k].b;
            else v->p[w++] = v->p[k];
            prev = m;
        }
        break;
    }
    tuna_status st = TUNA_OK;
    for (size_t k = 0; k < w && !st; k++)
        if (v->p[k].b > v->p[k].a)
            st = run_step(tok, next, s + v->p[k].a, v->p[k].b - v->p[k].a, at_start && v->p[k].a == 0);
    return st;
}

typedef int (*char_pred)(uint32_t cp);
static int is_numeric(uint32_t cp) {
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}
static int is_punct(uint32_t cp) {
    if (cp < 0x80) return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

/* Each character satisfying pred is a match of its own, as in HF. */
static int char_spans(const char *s, size_t n, char_pred pred, spans *v) {
    size_t last = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0xFFFD;
        int l = tk_utf8_decode(s + i, n - i, &cp);
        if (!l) l = 1;
        if (pred(cp)) {
            if (last < i && spans_push(v, last, i, 0)) return -1;
            if (spans_push(v, i, i + (size_t)l, 1)) return -1;
            last = i + (size_t)l;
        }
        i += (size_t)l;
    }
    if (last < n && spans_push(v, last, n, 0)) return -1;
    return 0;
}

static int regex_spans(tk_regex *re, const char *s, size_t n, spans *v, int *err) {
    size_t last = 0, ms, me;
    int rc;
    while ((rc = tk_regex_next(re, s, n, last, &ms, &me)) == 1) {
        if (last < ms && spans_push(v, last, ms, 0)) return -1;
        if (spans_push(v, ms, me, 1)) return -1;
        last = me;
    }
    if (rc < 0) { *err = 1; return -1; }
    if (last < n && spans_push(v, last, n, 0)) return -1;
    return 0;
}

static int literal_spans(const char *pat, size_t pn, const char *s, size_t n, spans *v) {
    size_t last = 0, i = 0;
    while (i + pn <= n) {
        const char *hit = memmem(s + i, n - i, pat, pn);
        if (!hit) break;
        size_t at = (size_t)(hit - s);
        if (last < at && spans_push(v, last, at, 0)) return -1;
        if (spans_push(v, at, at + pn, 1)) return -1;
        last = i = at + pn;
    }
    if (last < n && spans_push(v, last, n, 0)) return -1;
    return 0;
}

static int ws_pred(uint32_t cp) { return tk_is_whitespace(cp); }

/* Maps bytes to GPT-2's printable characters into buf. */
static int byte_map(tk_buf *buf, const char *s, size_t n) {
    buf->n = 0;
    if (tk_buf_reserve(buf, 2 * n + 1)) return -1;
    char *o = buf->p;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = tk_byte_to_cp((unsigned char)s[i]);
        if (cp < 0x80) o[k++] = (char)cp;
        else { o[k++] = (char)(0xC0 | (cp >> 6)); o[k++] = (char)(0x80 | (cp & 0x3F)); }
    }
    buf->n = k;
    o[k] = '\0';
    return 0;
}

static tuna_status nomem(void) { return core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory"); }

static tuna_status run_step(tuna_tokenizer *tok, int i, const char *s, size_t n, int at_start) {
    if (i == tok->n_pres) return tk_bpe_word(tok, s, n);
    const tk_pre *p = &tok->pres[i];
    tk_buf *buf = &tok->pre_buf[i];
    spans v = {0};
    tuna_status st = TUNA_OK;
    int err = 0;
    switch (p->type) {
    case TP_BYTELEVEL: {
        tk_buf pref = {0};
        if (p->add_prefix_space && (n == 0 || s[0] != ' ')) {
            if (tk_buf_putc(&pref, ' ') || tk_buf_put(&pref, s, n)) { tk_buf_free(&pref); return nomem(); }
            s = pref.p;
            n = pref.n;
        }
        if (!p->use_regex) {
            st = byte_map(buf, s, n) ? nomem() : run_step(tok, i + 1, buf->p, buf->n, at_start);
        } else {
            size_t pos = 0, ms, me;
            int rc;
            /* the GPT-2 regex covers every character, so there are no gaps to keep */
            while (!st && (rc = tk_regex_next((tk_regex *)&p->re, s, n, pos, &ms, &me)) == 1) {
                if (ms > pos) st = byte_map(buf, s + pos, ms - pos) ? nomem() : run_step(tok, i + 1, buf->p, buf->n, at_start && pos == 0);
                if (!st) st = byte_map(buf, s + ms, me - ms) ? nomem() : run_step(tok, i + 1, buf->p, buf->n, at_start && ms == 0);
                pos = me;
            }
            if (!st && rc < 0) st = core_fail(TUNA_ERR_INTERNAL, "tokenizer: regex match failed in ByteLevel");
            if (!st && pos < n) st = byte_map(buf, s + pos, n - pos) ? nomem() : run_step(tok, i + 1, buf->p, buf->n, at_start && pos == 0);
        }
        tk_buf_free(&pref);
        return st;
    }
    case TP_SPLIT:
        if (p->has_re ? regex_spans((tk_regex *)&p->re, s, n, &v, &err) : literal_spans(p->str, p->slen, s, n, &v))
            st = err ? core_fail(TUNA_ERR_INTERNAL, "tokenizer: regex match failed in Split") : nomem();
        else st = emit_split(tok, i + 1, s, at_start, &v, p->behavior, p->invert);
        break;
    case TP_DIGITS:
        if (char_spans(s, n, is_numeric, &v)) st = nomem();
        else st = emit_split(tok, i + 1, s, at_start, &v, p->individual_digits ? TB_ISOLATED : TB_CONTIGUOUS, 0);
        break;
    case TP_PUNCT:
        if (char_spans(s, n, is_punct, &v)) st = nomem();
        else st = emit_split(tok, i + 1, s, at_start, &v, p->behavior, 0);
        break;
    case TP_WSSPLIT:
        if (char_spans(s, n, ws_pred, &v)) st = nomem();
        else st = emit_split(tok, i + 1, s, at_start, &v, TB_REMOVED, 0);
        break;
    case TP_WHITESPACE:
        if (regex_spans((tk_regex *)&p->re, s, n, &v, &err))
            st = err ? core_fail(TUNA_ERR_INTERNAL, "tokenizer: regex match failed in Whitespace") : nomem();
        else st = emit_split(tok, i + 1, s, at_start, &v, TB_REMOVED, 1);
        break;
    case TP_METASPACE: {
        buf->n = 0;
        int pre = n > 0 && (p->prepend == 2 || (p->prepend == 1 && at_start)) &&
                  !(n >= p->slen && memcmp(s, p->str, p->slen) == 0);
        /* a piece starting with ' ' gets the replacement from the space itself */
        if (pre && s[0] == ' ') pre = 0;
        if (pre && tk_buf_put(buf, p->str, p->slen)) return nomem();
        for (size_t k = 0; k < n; k++) {
            int bad = s[k] == ' ' ? tk_buf_put(buf, p->str, p->slen) : tk_buf_putc(buf, s[k]);
            if (bad) return nomem();
        }
        if (!p->split) return run_step(tok, i + 1, buf->p, buf->n, at_start);
        if (literal_spans(p->str, p->slen, buf->p, buf->n, &v)) st = nomem();
        else st = emit_split(tok, i + 1, buf->p, at_start, &v, TB_MERGED_NEXT, 0);
        break;
    }
    }
    free(v.p);
    return st;
}

tuna_status tk_pretokenize(tuna_tokenizer *tok, const char *s, size_t n, int at_start) {
    if (n == 0) return TUNA_OK;
    return run_step(tok, 0, s, n, at_start);
}
