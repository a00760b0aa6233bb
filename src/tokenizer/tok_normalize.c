/* tok_normalize.c — HF normalizers: NFC/NFD/NFKC/NFKD (utf8proc), Lowercase,
 * Prepend, Replace (string or regex), Strip, StripAccents, and Sequence
 * (flattened into tok->norms). Any other normalizer type is refused at load
 * time rather than silently skipped, since it would change the ids. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "tok_internal.h"
#include "core/error.h"

static char *dup_str(const char *s, size_t *len) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    if (len) *len = n;
    return d;
}

static tuna_status add_norm(tuna_tokenizer *tok, tk_norm *n) {
    tk_norm *p = realloc(tok->norms, (size_t)(tok->n_norms + 1) * sizeof *p);
    if (!p) { tk_norm_free(n); return core_fail(TUNA_ERR_NOMEM, "tokenizer.json: out of memory"); }
    tok->norms = p;
    tok->norms[tok->n_norms++] = *n;
    return TUNA_OK;
}

/* Reads {"String": s} or {"Regex": r} into a literal or a compiled regex. */
static tuna_status parse_pattern(json_t *pat, char **lit, size_t *litlen, tk_regex *re, int *has_re,
                                 const char *what) {
    json_t *s = json_object_get(pat, "String"), *r = json_object_get(pat, "Regex");
    if (json_is_string(s)) {
        *lit = dup_str(json_string_value(s), litlen);
        return *lit ? TUNA_OK : core_fail(TUNA_ERR_NOMEM, "tokenizer.json: out of memory");
    }
    if (json_is_string(r)) {
        tuna_status st = tk_regex_compile(re, json_string_value(r), json_string_length(r), what);
        if (!st) *has_re = 1;
        return st;
    }
    return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: %s pattern needs \"String\" or \"Regex\"", what);
}

tuna_status tk_norm_parse(tuna_tokenizer *tok, json_t *j) {
    if (json_is_null(j) || !j) return TUNA_OK;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: normalizer without \"type\"");
    tk_norm n;
    memset(&n, 0, sizeof n);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(j, "normalizers");
        if (!json_is_array(list)) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: Sequence normalizer without \"normalizers\" list");
        size_t i;
        json_t *c;
        json_array_foreach(list, i, c) {
            tuna_status st = tk_norm_parse(tok, c);
            if (st) return st;
        }
        return TUNA_OK;
    }
    if (!strcmp(type, "NFC")) n.type = TN_NFC;
    else if (!strcmp(type, "NFD")) n.type = TN_NFD;
    else if (!strcmp(type, "NFKC")) n.type = TN_NFKC;
    else if (!strcmp(type, "NFKD")) n.type = TN_NFKD;
    else if (!strcmp(type, "Lowercase")) n.type = TN_LOWER;
    else if (!strcmp(type, "StripAccents")) n.type = TN_STRIP_ACCENTS;
    else if (!strcmp(type, "Prepend")) {
        n.type = TN_PREPEND;
        const char *p = json_string_value(json_object_get(j, "prepend"));
        if (!p) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: Prepend normalizer without \"prepend\"");
        if (!(n.a = dup_str(p, &n.alen))) return core_fail(TUNA_ERR_NOMEM, "tokenizer.json: out of memory");
    } else if (!strcmp(type, "Replace")) {
        n.type = TN_REPLACE;
        const char *c = json_string_value(json_object_get(j, "content"));
        if (!c) return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: Replace normalizer without \"content\"");
        if (!(n.b = dup_str(c, &n.blen))) return core_fail(TUNA_ERR_NOMEM, "tokenizer.json: out of memory");
        tuna_status st = parse_pattern(json_object_get(j, "pattern"), &n.a, &n.alen, &n.re, &n.has_re,
                                       "Replace normalizer");
        if (st) { tk_norm_free(&n); return st; }
        if (!n.has_re && n.alen == 0) { tk_norm_free(&n); return core_fail(TUNA_ERR_FORMAT, "tokenizer.json: Replace normalizer with an empty pattern"); }
    } else if (!strcmp(type, "Strip")) {
        n.type = TN_STRIP;
        jkeys r = {j, "tokenizer.json", "normalizer.", TUNA_OK};
        n.left = jkeys_bool(&r, "strip_left", 0);
        n.right = jkeys_bool(&r, "strip_right", 0);
        if (r.st != TUNA_OK) return r.st;
    } else {
        return core_fail(TUNA_ERR_UNSUPPORTED, "tokenizer.json: normalizer \"%s\" is not supported", type);
    }
    return add_norm(tok, &n);
}

void tk_norm_free(tk_norm *n) {
    free(n->a);
    free(n->b);
    if (n->has_re) tk_regex_free(&n->re);
    memset(n, 0, sizeof *n);
}

static int all_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return 0;
    return 1;
}

/* Applies one normalizer from in to out (out cleared first). */
static tuna_status norm_one(const tk_norm *nm, const char *s, size_t n, tk_buf *out) {
    out->n = 0;
    switch (nm->type) {
    case TN_STRIP_ACCENTS:
        /* HF drops every mark (Mn, Mc, Me) without decomposing first */
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            int l = tk_utf8_decode(s + i, n - i, &cp);
            if (!l) l = 1;
            else {
                utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
                if (c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME) { i += (size_t)l; continue; }
            }
            if (tk_buf_put(out, s + i, (size_t)l)) return TUNA_ERR_NOMEM;
            i += (size_t)l;
        }
        return TUNA_OK;
    case TN_NFC: case TN_NFD: case TN_NFKC: case TN_NFKD: {
        if (all_ascii(s, n)) return tk_buf_put(out, s, n) ? TUNA_ERR_NOMEM : TUNA_OK;
        int opt = UTF8PROC_STABLE;
        if (nm->type == TN_NFC) opt |= UTF8PROC_COMPOSE;
        else if (nm->type == TN_NFD) opt |= UTF8PROC_DECOMPOSE;
        else if (nm->type == TN_NFKC) opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
        else opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
        utf8proc_uint8_t *r = NULL;
        utf8proc_ssize_t rl = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &r, opt);
        if (rl < 0) { free(r); return core_fail(TUNA_ERR_ARG, "tokenizer: cannot normalize text: %s", utf8proc_errmsg(rl)); }
        int bad = tk_buf_put(out, r, (size_t)rl);
        free(r);
        return bad ? TUNA_ERR_NOMEM : TUNA_OK;
    }
    case TN_LOWER:
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            int l = tk_utf8_decode(s + i, n - i, &cp);
            if (!l) { l = 1; cp = 0xFFFD; }
            /* Rust's to_lowercase maps U+0130 to "i\u0307", the one multi-char case */
            if (cp == 0x130) { if (tk_buf_put(out, "i\xCC\x87", 3)) return TUNA_ERR_NOMEM; }
            else {
                char tmp[4];
                int k = tk_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), tmp);
                if (tk_buf_put(out, tmp, (size_t)k)) return TUNA_ERR_NOMEM;
            }
            i += (size_t)l;
        }
        return TUNA_OK;
    case TN_PREPEND:
        /* HF prepends only to non-empty strings */
        if (n && tk_buf_put(out, nm->a, nm->alen)) return TUNA_ERR_NOMEM;
        return tk_buf_put(out, s, n) ? TUNA_ERR_NOMEM : TUNA_OK;
    case TN_REPLACE: {
        size_t i = 0;
        if (nm->has_re) {
            tk_regex *re = (tk_regex *)&nm->re; /* match data is scratch, not state */
            size_t ms, me;
            int rc;
            while ((rc = tk_regex_next(re, s, n, i, &ms, &me)) == 1) {
                if (tk_buf_put(out, s + i, ms - i) || tk_buf_put(out, nm->b, nm->blen)) return TUNA_ERR_NOMEM;
                i = me;
            }
            if (rc < 0) return core_fail(TUNA_ERR_INTERNAL, "tokenizer: regex match failed in Replace normalizer");
        } else {
            while (i < n) {
                const char *hit = n - i >= nm->alen ? memmem(s + i, n - i, nm->a, nm->alen) : NULL;
                if (!hit) break;
                size_t at = (size_t)(hit - s);
                if (tk_buf_put(out, s + i, at - i) || tk_buf_put(out, nm->b, nm->blen)) return TUNA_ERR_NOMEM;
                i = at + nm->alen;
            }
        }
        return tk_buf_put(out, s + i, n - i) ? TUNA_ERR_NOMEM : TUNA_OK;
    }
    case TN_STRIP: {
        size_t a = 0, b = n;
        uint32_t cp;
        int l;
        while (nm->left && a < b && (l = tk_utf8_decode(s + a, b - a, &cp)) && tk_is_whitespace(cp)) a += (size_t)l;
        while (nm->right && b > a) {
            size_t k = b - 1;
            while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
            if (!tk_utf8_decode(s + k, b - k, &cp) || !tk_is_whitespace(cp)) break;
            b = k;
        }
        return tk_buf_put(out, s + a, b - a) ? TUNA_ERR_NOMEM : TUNA_OK;
    }
    }
    return TUNA_ERR_INTERNAL;
}

tuna_status tk_normalize(const tuna_tokenizer *tok, const char *s, size_t n, tk_buf *out) {
    out->n = 0;
    if (tok->n_norms == 0) return tk_buf_put(out, s, n) ? core_fail(TUNA_ERR_NOMEM, "tokenizer: out of memory") : TUNA_OK;
    tk_buf tmp = {0};
    tuna_status st = TUNA_OK;
    if (tk_buf_put(&tmp, s, n)) st = TUNA_ERR_NOMEM;
    for (int i = 0; i < tok->n_norms && !st; i++) {
        st = norm_one(&tok->norms[i], tmp.p, tmp.n, out);
        if (!st) { tk_buf t = tmp; tmp = *out; *out = t; }
    }
    if (!st) { tk_buf t = tmp; tmp = *out; *out = t; }
    tk_buf_free(&tmp);
    if (st == TUNA_ERR_NOMEM) return core_fail(st, "tokenizer: out of memory");
    return st;
}
