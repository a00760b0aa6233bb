/* lex.c — template source to tokens, following the reference renderer
 * (@huggingface/jinja) step by step, because byte-identical output depends on
 * its exact whitespace rules: the text is first preprocessed (one trailing
 * newline dropped, lstrip_blocks, trim_blocks, {% generation %} tags removed),
 * then tokenized ({%- -%} trimming, signed number literals); parse.c builds
 * the syntax tree from the tokens.
 * Every token keeps the offset of its first byte in the original source (the
 * preprocessing keeps a map), so syntax errors name line and column. */
#include <stdlib.h>
#include <string.h>
#include "template/tmpl.h"

/* ---------------- preprocessing ---------------- */

typedef struct {
    char *s;
    long *pos;   /* original offset of each byte */
    size_t n;
    /* generation tags removed from the text: where they were, which kind,
     * and where in the original source (for HF's assistant masks) */
    size_t *gen_at;
    int *gen_kind;
    long *gen_src;
    int ngen;
} pp_text;

static int is_line_start(const pp_text *t, size_t i) {
    if (i == 0) return 1;
    unsigned char p = (unsigned char)t->s[i - 1];
    if (p == '\n' || p == '\r') return 1;
    /* U+2028 / U+2029 end lines too in a JS multiline regex */
    if (i >= 3 && (unsigned char)t->s[i - 3] == 0xE2 && (unsigned char)t->s[i - 2] == 0x80 &&
        (p == 0xA8 || p == 0xA9))
        return 1;
    return 0;
}

static pp_text preprocess(tp_ctx *c, const char *src, size_t len) {
    pp_text a = {tp_alloc(c, len + 1), tp_alloc(c, (len + 1) * sizeof(long)), 0, NULL, NULL, NULL, 0};
    if (len && src[len - 1] == '\n') len--;   /* keep_trailing_newline = false */
    for (size_t i = 0; i < len; i++) { a.s[i] = src[i]; a.pos[i] = (long)i; }
    a.n = len;
    /* lstrip_blocks: /^[ \t]*({[#%-])/gm -> "$1" */
    pp_text b = {tp_alloc(c, len + 1), tp_alloc(c, (len + 1) * sizeof(long)), 0, NULL, NULL, NULL, 0};
    for (size_t i = 0; i < a.n;) {
        if (is_line_start(&a, i)) {
            size_t j = i;
            while (j < a.n && (a.s[j] == ' ' || a.s[j] == '\t')) j++;
            if (j > i && j + 1 < a.n && a.s[j] == '{' &&
                (a.s[j + 1] == '#' || a.s[j + 1] == '%' || a.s[j + 1] == '-'))
                i = j;
        }
        /* copy up to the next line start candidate */
        b.s[b.n] = a.s[i];
        b.pos[b.n++] = a.pos[i];
        i++;
    }
    /* trim_blocks: /([#%-]})\n/g -> "$1" */
    pp_text d = {tp_alloc(c, len + 1), tp_alloc(c, (len + 1) * sizeof(long)), 0, NULL, NULL, NULL, 0};
    for (size_t i = 0; i < b.n;) {
        if (i + 2 < b.n && (b.s[i] == '#' || b.s[i] == '%' || b.s[i] == '-') && b.s[i + 1] == '}' &&
            b.s[i + 2] == '\n') {
            d.s[d.n] = b.s[i]; d.pos[d.n++] = b.pos[i];
            d.s[d.n] = b.s[i + 1]; d.pos[d.n++] = b.pos[i + 1];
            i += 3;
            continue;
        }
        d.s[d.n] = b.s[i]; d.pos[d.n++] = b.pos[i];
        i++;
    }
    /* /(\s*){%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/gs: the tag goes, the
     * whitespace around it stays unless the tag trims it */
    pp_text e = {tp_alloc(c, len + 1), tp_alloc(c, (len + 1) * sizeof(long)), 0, NULL, NULL, NULL, 0};
    size_t keep = 0; /* whitespace a previous tag's match kept cannot be trimmed */
    for (size_t i = 0; i < d.n;) {
        if (d.s[i] == '{' && i + 1 < d.n && d.s[i + 1] == '%') {
            size_t j = i + 2, k;
            int lstrip = 0, rstrip = 0, is_end = 0;
            if (j < d.n && d.s[j] == '-') { lstrip = 1; j++; }
            while (j < d.n && (k = tp_js_space_at(d.s + j, d.n - j))) j += k;
            if (j + 3 <= d.n && !memcmp(d.s + j, "end", 3) && j + 13 <= d.n &&
                !memcmp(d.s + j + 3, "generation", 10)) {
                j += 3;
                is_end = 1;
            }
            if (j + 10 <= d.n && !memcmp(d.s + j, "generation", 10)) {
                j += 10;
                while (j < d.n && (k = tp_js_space_at(d.s + j, d.n - j))) j += k;
                if (j < d.n && d.s[j] == '-') { rstrip = 1; j++; }
                if (j + 1 < d.n && d.s[j] == '%' && d.s[j + 1] == '}') {
                    j += 2;
                    if (lstrip) {
                        size_t t = tp_trim_end_len(e.s + keep, e.n - keep);
                        e.n = keep + t;
                    }
                    if (e.ngen % 16 == 0) {
                        size_t *na = tp_alloc(c, sizeof *na * (size_t)(e.ngen + 16));
                        int *nk = tp_alloc(c, sizeof *nk * (size_t)(e.ngen + 16));
                        long *ns = tp_alloc(c, sizeof *ns * (size_t)(e.ngen + 16));
                        if (e.ngen) {
                            memcpy(na, e.gen_at, sizeof *na * (size_t)e.ngen);
                            memcpy(nk, e.gen_kind, sizeof *nk * (size_t)e.ngen);
                            memcpy(ns, e.gen_src, sizeof *ns * (size_t)e.ngen);
                        }
                        e.gen_at = na; e.gen_kind = nk; e.gen_src = ns;
                    }
                    e.gen_at[e.ngen] = e.n;
                    e.gen_src[e.ngen] = d.pos[i];
                    e.gen_kind[e.ngen++] = is_end;
                    size_t ws = tp_trim_start_off(d.s + j, d.n - j);
                    if (!rstrip)
                        for (size_t k2 = 0; k2 < ws; k2++) { e.s[e.n] = d.s[j + k2]; e.pos[e.n++] = d.pos[j + k2]; }
                    i = j + ws;
                    keep = e.n;
                    continue;
                }
            }
        }
        e.s[e.n] = d.s[i]; e.pos[e.n++] = d.pos[i];
        i++;
    }
    e.s[e.n] = 0;
    e.pos[e.n] = (long)len;
    return e;
}

/* ---------------- tokenizer ---------------- */

typedef struct {
    tp_ctx *c;
    pp_text t;
    size_t i;
    tp_token *tok;
    int n, cap;
    int gen_next;    /* first generation marker not yet emitted or dropped */
    int depth;       /* curly brackets open inside an expression */
} lexer;

static void push(lexer *L, int type, const char *s, size_t n, long pos) {
    if (L->n == L->cap) {
        int cap = L->cap ? L->cap * 2 : 64;
        tp_token *nt = tp_alloc(L->c, sizeof *nt * (size_t)cap);
        if (L->n) memcpy(nt, L->tok, sizeof *nt * (size_t)L->n);
        L->tok = nt;
        L->cap = cap;
    }
    L->tok[L->n++] = (tp_token){type, {s, n}, pos};
}

static long here(const lexer *L) { return L->t.pos[L->i < L->t.n ? L->i : L->t.n]; }
static int last_type(const lexer *L) { return L->n ? L->tok[L->n - 1].type : -1; }
static int is_digit(int ch) { return ch >= '0' && ch <= '9'; }
static int is_word(int ch) {
    return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}
static int hexval(int ch) {
    if (is_digit(ch)) return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* The reference's consumeWhile: running into the end of the input while
 * consuming is an error, whatever is being consumed. */
static void eoi_check(lexer *L) {
    if (L->i >= L->t.n) tp_fail(L->c, here(L), "unexpected end of template");
}

static tstr lex_string(lexer *L, char q) {
    tp_buf b = {0};
    tp_buf_put(L->c, &b, "", 0);
    uint32_t pending_hi = 0;
    for (;;) {
        if (L->i >= L->t.n) tp_fail(L->c, here(L), "unexpected end of template in a string");
        char ch = L->t.s[L->i];
        if (ch == q) break;
        if (ch == '\\') {
            long at = here(L);
            L->i++;
            eoi_check(L);
            char e = L->t.s[L->i++];
            if (e == 'x' || e == 'u') {
                int len = e == 'x' ? 2 : 4;
                uint32_t v = 0;
                for (int k = 0; k < len; k++) {
                    int h = L->i < L->t.n ? hexval((unsigned char)L->t.s[L->i]) : -1;
                    if (h < 0) tp_fail(L->c, at, "invalid hexadecimal escape sequence");
                    v = v * 16 + (uint32_t)h;
                    L->i++;
                }
                /* \uD83D\uDE00 style pairs become one character */
                if (v >= 0xD800 && v < 0xDC00) { pending_hi = v; continue; }
                if (v >= 0xDC00 && v < 0xE000 && pending_hi)
                    v = 0x10000 + ((pending_hi - 0xD800) << 10) + (v - 0xDC00);
                pending_hi = 0;
                char u[4];
                tp_buf_put(L->c, &b, u, (size_t)tp_utf8_enc(v, u));
                continue;
            }
            const char *r;
            switch (e) {
            case 'n': r = "\n"; break;
            case 't': r = "\t"; break;
            case 'r': r = "\r"; break;
            case 'b': r = "\b"; break;
            case 'f': r = "\f"; break;
            case 'v': r = "\v"; break;
            case '\'': r = "'"; break;
            case '"': r = "\""; break;
            case '\\': r = "\\"; break;
            default: tp_fail(L->c, at, "unexpected escaped character '%c'", e);
            }
            tp_buf_put(L->c, &b, r, 1);
            continue;
        }
        pending_hi = 0;
        tp_buf_put(L->c, &b, &ch, 1);
        L->i++;
        eoi_check(L);
    }
    return (tstr){b.p, b.n};
}

/* {%- and friends: trimEnd of the text before, which generation markers may
 * have split into several tokens (the markers stay). */
static void strip_trailing_ws(lexer *L) {
    for (int k = L->n - 1; k >= 0; k--) {
        tp_token *t = &L->tok[k];
        if (t->type == T_GEN) continue;
        if (t->type != T_TEXT) return;
        t->v.n = tp_trim_end_len(t->v.s, t->v.n);
        if (t->v.n > 0) return;
        memmove(&L->tok[k], &L->tok[k + 1], sizeof *t * (size_t)(L->n - k - 1));
        L->n--;
    }
}

/* Emits the generation markers at offsets <= upto (where text may stand);
 * markers inside tags are dropped, as rendering ignores them anyway. */
static void emit_marks(lexer *L, size_t upto) {
    while (L->gen_next < L->t.ngen && L->t.gen_at[L->gen_next] <= upto) {
        int g = L->gen_next++;
        push(L, T_GEN, L->t.gen_kind[g] ? "end" : "", (size_t)L->t.gen_kind[g], L->t.gen_src[g]);
    }
}
static void drop_marks(lexer *L, size_t upto) {
    while (L->gen_next < L->t.ngen && L->t.gen_at[L->gen_next] < upto) L->gen_next++;
}

static void skip_ws(lexer *L) { L->i += tp_trim_start_off(L->t.s + L->i, L->t.n - L->i); }

static const struct { const char *seq; int type; } TABLE[] = {
    {"{%", T_OPEN_STMT}, {"%}", T_CLOSE_STMT}, {"{{", T_OPEN_EXPR}, {"}}", T_CLOSE_EXPR},
    {"(", T_LPAREN}, {")", T_RPAREN}, {"{", T_LBRACE}, {"}", T_RBRACE}, {"[", T_LBRACKET},
    {"]", T_RBRACKET}, {",", T_COMMA}, {".", T_DOT}, {":", T_COLON}, {"|", T_PIPE},
    {"<=", T_CMP}, {">=", T_CMP}, {"==", T_CMP}, {"!=", T_CMP}, {"<", T_CMP}, {">", T_CMP},
    {"+", T_ADD}, {"-", T_ADD}, {"~", T_ADD}, {"**", T_POW}, {"*", T_MUL}, {"//", T_MUL},
    {"/", T_MUL}, {"%", T_MUL}, {"=", T_EQUALS},
};

static int is_text_next(const lexer *L) {
    int lt = last_type(L);
    return lt < 0 || lt == T_CLOSE_STMT || lt == T_CLOSE_EXPR || lt == T_COMMENT || lt == T_GEN;
}

static int at(const lexer *L, const char *seq) {
    size_t k = strlen(seq);
    return L->i + k <= L->t.n && !memcmp(L->t.s + L->i, seq, k);
}

/* Text up to the next {% {{ {#, split where generation markers fall; 0 when
 * a tag starts right here. */
static int lex_text(lexer *L) {
    const char *s = L->t.s;
    size_t n = L->t.n, st = L->i;
    emit_marks(L, st);
    while (L->i < n && !(s[L->i] == '{' && L->i + 1 < n &&
                         (s[L->i + 1] == '%' || s[L->i + 1] == '{' || s[L->i + 1] == '#')))
        L->i++;
    if (L->i == st) return 0;
    while (L->gen_next < L->t.ngen && L->t.gen_at[L->gen_next] <= L->i) {
        size_t g = L->t.gen_at[L->gen_next];
        if (g > st) push(L, T_TEXT, s + st, g - st, L->t.pos[st]);
        st = g;
        emit_marks(L, g);
    }
    if (L->i > st) push(L, T_TEXT, s + st, L->i - st, L->t.pos[st]);
    return 1;
}

/* {# comment #}, {#- trims the text before, -#} the whitespace after */
static void lex_comment(lexer *L, long pos) {
    const char *s = L->t.s;
    size_t n = L->t.n;
    L->i += 2;
    int strip_before = L->i < n && s[L->i] == '-';
    if (strip_before) L->i++;
    size_t st = L->i;
    while (!(L->i + 1 < n && s[L->i] == '#' && s[L->i + 1] == '}')) {
        if (L->i + 2 >= n) tp_fail(L->c, pos, "missing end of comment tag");
        L->i++;
    }
    size_t cn = L->i - st;
    int strip_after = cn > 0 && s[st + cn - 1] == '-';
    if (strip_after) cn--;
    if (strip_before) strip_trailing_ws(L);
    push(L, T_COMMENT, s + st, cn, pos);
    L->i += 2;
    drop_marks(L, L->i);
    if (strip_after) skip_ws(L);
}

/* {%- and {{- : the tag opens and trims the text before it; 0 if neither */
static int lex_trim_open(lexer *L, long pos) {
    int stmt = at(L, "{%-");
    if (!stmt && !at(L, "{{-")) return 0;
    strip_trailing_ws(L);
    push(L, stmt ? T_OPEN_STMT : T_OPEN_EXPR, stmt ? "{%" : "{{", 2, pos);
    if (!stmt) L->depth = 0;
    L->i += 3;
    return 1;
}

/* whitespace inside a tag (running into the end of input fails) */
static void skip_tag_ws(lexer *L) {
    size_t k;
    while ((k = tp_js_space_at(L->t.s + L->i, L->t.n - L->i)) > 0) {
        L->i += k;
        eoi_check(L);
    }
}

/* -%} and -}} : the tag closes and the whitespace after it goes; 0 if neither */
static int lex_trim_close(lexer *L, long pos) {
    if (!at(L, "-%}") && !at(L, "-}}")) return 0;
    int ty = L->t.s[L->i + 1] == '%' ? T_CLOSE_STMT : T_CLOSE_EXPR;
    push(L, ty, ty == T_CLOSE_STMT ? "%}" : "}}", 2, pos);
    L->i += 3;
    drop_marks(L, L->i);
    skip_ws(L);
    return 1;
}

static void skip_while(lexer *L, int (*pred)(int)) {
    while (L->i < L->t.n && pred((unsigned char)L->t.s[L->i])) {
        L->i++;
        eoi_check(L);
    }
}

/* a '.' followed by a digit: the fraction of a number literal */
static int at_fraction(const lexer *L) {
    return L->i + 1 < L->t.n && L->t.s[L->i] == '.' && is_digit((unsigned char)L->t.s[L->i + 1]);
}

/* + or - where no operand stands before it: a signed number literal, or a
 * unary operator; 0 when it is a binary operator (or not a sign) */
static int lex_sign(lexer *L, long pos) {
    char ch = L->t.s[L->i];
    if (ch != '-' && ch != '+') return 0;
    int t2 = last_type(L);
    if (t2 == T_TEXT || t2 < 0) tp_fail(L->c, pos, "unexpected character '%c'", ch);
    if (t2 == T_IDENT || t2 == T_NUM || t2 == T_STR || t2 == T_RPAREN || t2 == T_RBRACKET) return 0;
    size_t st = L->i++;
    skip_while(L, is_digit);
    size_t nd = L->i - st - 1;
    if (nd > 0 && at_fraction(L)) {
        L->i++;
        skip_while(L, is_digit);
    }
    push(L, nd ? T_NUM : T_UNARY, L->t.s + st, L->i - st, pos);
    return 1;
}

/* operators and brackets (TABLE, first match); }} closes an expression only
 * outside curly brackets; 0 if none */
static int lex_punct(lexer *L, long pos) {
    for (size_t k = 0; k < sizeof TABLE / sizeof TABLE[0]; k++) {
        size_t sl = strlen(TABLE[k].seq);
        int ty = TABLE[k].type;
        if ((ty == T_CLOSE_EXPR && L->depth > 0) || !at(L, TABLE[k].seq)) continue;
        drop_marks(L, L->i + sl);
        push(L, ty, TABLE[k].seq, sl, pos);
        if (ty == T_OPEN_EXPR) L->depth = 0;
        else if (ty == T_LBRACE) L->depth++;
        else if (ty == T_RBRACE) L->depth--;
        L->i += sl;
        return 1;
    }
    return 0;
}

static void lex_number(lexer *L, long pos) {
    size_t st = L->i;
    skip_while(L, is_digit);
    if (last_type(L) != T_DOT && at_fraction(L)) { /* after a dot (x.1.2) no fraction */
        L->i++;
        skip_while(L, is_digit);
    }
    push(L, T_NUM, L->t.s + st, L->i - st, pos);
}

/* one token inside a tag */
static void lex_tag(lexer *L) {
    const char *s = L->t.s;
    long pos = here(L);
    if (at(L, "{#")) { lex_comment(L, pos); return; }
    if (lex_trim_open(L, pos)) return;
    skip_tag_ws(L);
    pos = here(L);
    if (lex_trim_close(L, pos) || lex_sign(L, pos) || lex_punct(L, pos)) return;
    char ch = s[L->i];
    size_t st = L->i;
    if (ch == '\'' || ch == '"') {
        L->i++;
        tstr v = lex_string(L, ch);
        push(L, T_STR, v.s, v.n, pos);
        L->i++;
    } else if (is_digit((unsigned char)ch)) lex_number(L, pos);
    else if (is_word((unsigned char)ch)) {
        skip_while(L, is_word);
        push(L, T_IDENT, s + st, L->i - st, pos);
    } else {
        uint32_t cp;
        int k = tp_utf8_dec(s + L->i, L->t.n - L->i, &cp);
        tp_fail(L->c, pos, "unexpected character '%.*s'", k, s + L->i);
    }
}

static void tokenize(lexer *L) {
    while (L->i < L->t.n)
        if (!(is_text_next(L) && lex_text(L))) lex_tag(L);
}

tp_token *tp_lex(tp_ctx *c, const char *src, size_t len, int *ntok) {
    lexer L = {c, preprocess(c, src, len), 0, NULL, 0, 0, 0, 0};
    tokenize(&L);
    emit_marks(&L, L.t.n); /* markers at the very end */
    *ntok = L.n;
    return L.tok;
}
