/* parse.c — template source to syntax tree, following the reference renderer
 * (@huggingface/jinja) step by step, because byte-identical output depends on
 * its exact whitespace rules: the text is first preprocessed (one trailing
 * newline dropped, lstrip_blocks, trim_blocks, {% generation %} tags removed),
 * then tokenized ({%- -%} trimming, signed number literals), then parsed by
 * recursive descent with the reference's operator precedence.
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

static void tokenize(lexer *L) {
    const char *s = L->t.s;
    size_t n = L->t.n;
    int depth = 0; /* curly brackets open inside an expression */
    while (L->i < n) {
        int lt = last_type(L);
        if (lt < 0 || lt == T_CLOSE_STMT || lt == T_CLOSE_EXPR || lt == T_COMMENT || lt == T_GEN) {
            size_t st = L->i;
            emit_marks(L, st);
            while (L->i < n && !(s[L->i] == '{' && L->i + 1 < n &&
                                 (s[L->i + 1] == '%' || s[L->i + 1] == '{' || s[L->i + 1] == '#')))
                L->i++;
            if (L->i > st) {
                /* split the text where generation markers fall */
                while (L->gen_next < L->t.ngen && L->t.gen_at[L->gen_next] <= L->i) {
                    size_t at = L->t.gen_at[L->gen_next];
                    if (at > st) push(L, T_TEXT, s + st, at - st, L->t.pos[st]);
                    st = at;
                    emit_marks(L, at);
                }
                if (L->i > st) push(L, T_TEXT, s + st, L->i - st, L->t.pos[st]);
                continue;
            }
        }
        long pos = here(L);
        if (s[L->i] == '{' && L->i + 1 < n && s[L->i + 1] == '#') {
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
            continue;
        }
        if (L->i + 2 < n + 0 && !memcmp(s + L->i, "{%-", 3)) {
            strip_trailing_ws(L);
            push(L, T_OPEN_STMT, "{%", 2, pos);
            L->i += 3;
            continue;
        }
        if (L->i + 2 < n && !memcmp(s + L->i, "{{-", 3)) {
            strip_trailing_ws(L);
            push(L, T_OPEN_EXPR, "{{", 2, pos);
            depth = 0;
            L->i += 3;
            continue;
        }
        { /* whitespace inside tags */
            size_t k;
            while ((k = tp_js_space_at(s + L->i, n - L->i)) > 0) {
                L->i += k;
                eoi_check(L);
            }
        }
        pos = here(L);
        if (L->i + 2 < n && (!memcmp(s + L->i, "-%}", 3) || !memcmp(s + L->i, "-}}", 3))) {
            int ty = s[L->i + 1] == '%' ? T_CLOSE_STMT : T_CLOSE_EXPR;
            push(L, ty, ty == T_CLOSE_STMT ? "%}" : "}}", 2, pos);
            L->i += 3;
            drop_marks(L, L->i);
            skip_ws(L);
            continue;
        }
        char ch = s[L->i];
        if (ch == '-' || ch == '+') {
            int t2 = last_type(L);
            if (t2 == T_TEXT || t2 < 0) tp_fail(L->c, pos, "unexpected character '%c'", ch);
            if (!(t2 == T_IDENT || t2 == T_NUM || t2 == T_STR || t2 == T_RPAREN || t2 == T_RBRACKET)) {
                size_t st = L->i++;
                while (L->i < n && is_digit((unsigned char)s[L->i])) { L->i++; eoi_check(L); }
                size_t nd = L->i - st - 1;
                if (nd > 0 && L->i + 1 < n && s[L->i] == '.' && is_digit((unsigned char)s[L->i + 1])) {
                    L->i++;
                    while (L->i < n && is_digit((unsigned char)s[L->i])) { L->i++; eoi_check(L); }
                }
                push(L, nd ? T_NUM : T_UNARY, s + st, L->i - st, pos);
                continue;
            }
        }
        int matched = 0;
        for (size_t k = 0; k < sizeof TABLE / sizeof TABLE[0]; k++) {
            size_t sl = strlen(TABLE[k].seq);
            if (TABLE[k].type == T_CLOSE_EXPR && depth > 0) continue;
            if (L->i + sl <= n && !memcmp(s + L->i, TABLE[k].seq, sl)) {
                drop_marks(L, L->i + sl);
                push(L, TABLE[k].type, TABLE[k].seq, sl, pos);
                if (TABLE[k].type == T_OPEN_EXPR) depth = 0;
                else if (TABLE[k].type == T_LBRACE) depth++;
                else if (TABLE[k].type == T_RBRACE) depth--;
                L->i += sl;
                matched = 1;
                break;
            }
        }
        if (matched) continue;
        if (ch == '\'' || ch == '"') {
            L->i++;
            tstr v = lex_string(L, ch);
            push(L, T_STR, v.s, v.n, pos);
            L->i++;
            continue;
        }
        if (is_digit((unsigned char)ch)) {
            size_t st = L->i;
            while (L->i < n && is_digit((unsigned char)s[L->i])) { L->i++; eoi_check(L); }
            if (last_type(L) != T_DOT && L->i + 1 < n && s[L->i] == '.' && is_digit((unsigned char)s[L->i + 1])) {
                L->i++;
                while (L->i < n && is_digit((unsigned char)s[L->i])) { L->i++; eoi_check(L); }
            }
            push(L, T_NUM, s + st, L->i - st, pos);
            continue;
        }
        if (is_word((unsigned char)ch)) {
            size_t st = L->i;
            while (L->i < n && is_word((unsigned char)s[L->i])) { L->i++; eoi_check(L); }
            push(L, T_IDENT, s + st, L->i - st, pos);
            continue;
        }
        uint32_t cp;
        int k = tp_utf8_dec(s + L->i, n - L->i, &cp);
        tp_fail(L->c, pos, "unexpected character '%.*s'", k, s + L->i);
    }
}

/* ---------------- parser ---------------- */

typedef struct {
    tp_ctx *c;
    tp_token *t;
    int n, i;
    long end_pos;
    int depth;
} parser;

static tp_node *mk(parser *P, int kind, long pos) {
    tp_node *x = tp_alloc(P->c, sizeof *x);
    memset(x, 0, sizeof *x);
    x->kind = kind;
    x->pos = pos;
    return x;
}

typedef struct { tp_node **v; int n, cap; } vec;
static void vpush(parser *P, vec *v, tp_node *x) {
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 8;
        tp_node **nv = tp_alloc(P->c, sizeof *nv * (size_t)cap);
        if (v->n) memcpy(nv, v->v, sizeof *nv * (size_t)v->n);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
}
static tp_list vlist(vec v) { return (tp_list){v.v, v.n}; }

static const char *tname(int type) {
    static const char *names[] = {"text", "number", "string", "identifier", "'='", "'('", "')'",
                                  "'{%'", "'%}'", "'{{'", "'}}'", "'['", "']'", "'{'", "'}'",
                                  "','", "'.'", "':'", "'|'", "operator", "operator", "'**'",
                                  "comparison", "unary operator", "comment", "generation tag"};
    return type >= 0 && type <= T_GEN ? names[type] : "?";
}

static tp_token *cur(parser *P) {
    if (P->i >= P->n) tp_fail(P->c, P->end_pos, "unexpected end of template");
    return &P->t[P->i];
}
static long cpos(parser *P) { return P->i < P->n ? P->t[P->i].pos : P->end_pos; }
static int is(parser *P, int type) { return P->i < P->n && P->t[P->i].type == type; }
static int is_ident(parser *P, const char *name) {
    return P->i < P->n && P->t[P->i].type == T_IDENT && tstr_eq(P->t[P->i].v, name);
}
static int is_ident2(parser *P, const char *a, const char *b) {
    return P->i + 1 < P->n && P->t[P->i].type == T_IDENT && tstr_eq(P->t[P->i].v, a) &&
           P->t[P->i + 1].type == T_IDENT && tstr_eq(P->t[P->i + 1].v, b);
}
static tp_token *expect(parser *P, int type, const char *what) {
    tp_token *t = cur(P);
    if (t->type != type) tp_fail(P->c, t->pos, "expected %s, got %s", what, tname(t->type));
    P->i++;
    return t;
}
static void expect_ident(parser *P, const char *name) {
    if (!is_ident(P, name)) tp_fail(P->c, cpos(P), "expected '%s'", name);
    P->i++;
}
static int is_statement(parser *P, const char *const *names) {
    if (!(P->i + 1 < P->n && P->t[P->i].type == T_OPEN_STMT && P->t[P->i + 1].type == T_IDENT)) return 0;
    for (; *names; names++)
        if (tstr_eq(P->t[P->i + 1].v, *names)) return 1;
    return 0;
}

static tp_node *parse_any(parser *P);
static tp_node *parse_expr(parser *P);
static tp_node *parse_primary(parser *P);
static tp_node *parse_member(parser *P, tp_node *obj);

/* Statements nest through recursion; deep nesting is refused rather than
 * risking the C stack on hostile input. */
static void enter(parser *P) {
    if (++P->depth > 200) tp_fail(P->c, cpos(P), "template nests too deeply");
}

static tp_list parse_until(parser *P, const char *const *names, const char *what) {
    vec body = {0};
    while (!is_statement(P, names)) {
        if (P->i >= P->n) tp_fail(P->c, P->end_pos, "unexpected end of template, expected %s", what);
        vpush(P, &body, parse_any(P));
    }
    return vlist(body);
}

static tp_node *parse_expr_seq(parser *P, int primary) {
    long pos = cpos(P);
    tp_node *first = primary ? parse_primary(P) : parse_expr(P);
    if (!is(P, T_COMMA)) return first;
    vec v = {0};
    vpush(P, &v, first);
    while (is(P, T_COMMA)) {
        P->i++;
        vpush(P, &v, primary ? parse_primary(P) : parse_expr(P));
    }
    tp_node *t = mk(P, N_TUPLE, pos);
    t->l1 = vlist(v);
    return t;
}

/* (a, b=c): mode 0 call arguments, 1 macro parameters */
static tp_list parse_args(parser *P, int params) {
    expect(P, T_LPAREN, "'(' for arguments");
    vec v = {0};
    int saw_kw = 0;
    while (!is(P, T_RPAREN)) {
        if (is(P, T_POW) || (is(P, T_MUL) && tstr_eq(cur(P)->v, "*")))
            tp_fail(P->c, cpos(P), "argument unpacking (* and **) is not supported");
        long pos = cpos(P);
        tp_node *a = parse_expr(P);
        if (is(P, T_EQUALS)) {
            P->i++;
            if (a->kind != N_IDENT)
                tp_fail(P->c, pos, params ? "expected identifier for parameter declaration"
                                          : "expected identifier for keyword argument");
            tp_node *k = mk(P, N_KWARG, pos);
            k->s = a->s;
            k->a = parse_expr(P);
            a = k;
        }
        if (params) {
            if (a->kind != N_IDENT && a->kind != N_KWARG)
                tp_fail(P->c, pos, "expected identifier for parameter declaration");
            for (int j = 0; j < v.n; j++)
                if (v.v[j]->s.n == a->s.n && !memcmp(v.v[j]->s.s, a->s.s, a->s.n))
                    tp_fail(P->c, pos, "duplicate parameter name: %.*s", (int)a->s.n, a->s.s);
        }
        if (a->kind == N_KWARG) saw_kw = 1;
        else if (saw_kw)
            tp_fail(P->c, pos, params ? "non-default argument follows default argument"
                                      : "positional arguments must come before keyword arguments");
        vpush(P, &v, a);
        if (is(P, T_COMMA)) P->i++;
    }
    P->i++;
    return vlist(v);
}

static tp_node *parse_call(parser *P, tp_node *callee) {
    for (;;) {
        tp_node *x = mk(P, N_CALL, cpos(P));
        x->a = callee;
        x->l1 = parse_args(P, 0);
        x = parse_member(P, x);
        if (!is(P, T_LPAREN)) return x;
        callee = x;
    }
}

static tp_node *parse_member_args(parser *P) {
    tp_node *sl[4] = {0};
    int n = 0, is_slice = 0;
    long pos = cpos(P);
    while (!is(P, T_RBRACKET)) {
        if (n >= 4) tp_fail(P->c, cpos(P), "expected 0-3 arguments for slice expression");
        if (is(P, T_COLON)) {
            sl[n++] = NULL;
            P->i++;
            is_slice = 1;
        } else {
            sl[n++] = parse_expr(P);
            if (is(P, T_COLON)) { P->i++; is_slice = 1; }
        }
    }
    if (n == 0) tp_fail(P->c, pos, "expected at least one argument for member/slice expression");
    if (!is_slice) return sl[0];
    if (n > 3) tp_fail(P->c, pos, "expected 0-3 arguments for slice expression");
    tp_node *x = mk(P, N_SLICE, pos);
    x->a = sl[0];
    x->b = n > 1 ? sl[1] : NULL;
    x->c = n > 2 ? sl[2] : NULL;
    return x;
}

static tp_node *parse_member(parser *P, tp_node *obj) {
    while (is(P, T_DOT) || is(P, T_LBRACKET)) {
        int computed = is(P, T_LBRACKET);
        long pos = cpos(P);
        P->i++;
        tp_node *prop;
        if (computed) {
            prop = parse_member_args(P);
            expect(P, T_RBRACKET, "']'");
        } else {
            prop = parse_primary(P);
            if (prop->kind != N_IDENT && prop->kind != N_INT)
                tp_fail(P->c, pos, "expected identifier or integer following '.'");
        }
        tp_node *m = mk(P, N_MEMBER, pos);
        m->a = obj;
        m->b = prop;
        m->flag = computed;
        obj = m;
    }
    return obj;
}

static tp_node *parse_call_member(parser *P) {
    tp_node *m = parse_member(P, parse_primary(P));
    return is(P, T_LPAREN) ? parse_call(P, m) : m;
}

static tp_node *parse_unary_sign(parser *P) {
    if (P->i < P->n && (P->t[P->i].type == T_UNARY || P->t[P->i].type == T_ADD) &&
        (tstr_eq(P->t[P->i].v, "-") || tstr_eq(P->t[P->i].v, "+"))) {
        tp_node *u = mk(P, N_UNARY, cpos(P));
        u->s = P->t[P->i++].v;
        enter(P);
        u->a = parse_unary_sign(P);
        P->depth--;
        return u;
    }
    return parse_call_member(P);
}

static tp_node *parse_filter_expr(parser *P) {
    tp_node *x = parse_unary_sign(P);
    while (is(P, T_PIPE)) {
        long pos = cpos(P);
        P->i++;
        tp_node *f = parse_primary(P);
        if (f->kind != N_IDENT) tp_fail(P->c, pos, "expected identifier for the filter");
        if (is(P, T_LPAREN)) f = parse_call(P, f);
        tp_node *y = mk(P, N_FILTER, pos);
        y->a = x;
        y->b = f;
        x = y;
    }
    return x;
}

static tp_node *parse_test_expr(parser *P) {
    tp_node *x = parse_filter_expr(P);
    while (is_ident(P, "is")) {
        long pos = cpos(P);
        P->i++;
        int neg = is_ident(P, "not");
        if (neg) P->i++;
        tp_node *t = parse_primary(P);
        if (t->kind != N_IDENT) tp_fail(P->c, pos, "expected identifier for the test");
        tp_node *y = mk(P, N_TEST, pos);
        y->a = x;
        y->s = t->s;
        y->flag = neg;
        x = y;
    }
    return x;
}

static tp_node *binary(parser *P, tstr op, long pos, tp_node *l, tp_node *r) {
    tp_node *x = mk(P, N_BINARY, pos);
    x->s = op;
    x->a = l;
    x->b = r;
    return x;
}

static tp_node *parse_power(parser *P) {
    tp_node *l = parse_test_expr(P);
    while (is(P, T_POW)) {
        tp_token *op = &P->t[P->i++];
        l = binary(P, op->v, op->pos, l, parse_test_expr(P));
    }
    return l;
}

static tp_node *parse_mul(parser *P) {
    tp_node *l = parse_power(P);
    while (is(P, T_MUL)) {
        tp_token *op = &P->t[P->i++];
        l = binary(P, op->v, op->pos, l, parse_power(P));
    }
    return l;
}

static tp_node *parse_add(parser *P) {
    tp_node *l = parse_mul(P);
    while (is(P, T_ADD)) {
        tp_token *op = &P->t[P->i++];
        l = binary(P, op->v, op->pos, l, parse_mul(P));
    }
    return l;
}

static tp_node *parse_cmp(parser *P) {
    tp_node *l = parse_add(P);
    for (;;) {
        tstr op;
        long pos = cpos(P);
        if (is_ident2(P, "not", "in")) { op = (tstr){"not in", 6}; P->i += 2; }
        else if (is_ident(P, "in")) { op = P->t[P->i++].v; }
        else if (is(P, T_CMP)) { op = P->t[P->i++].v; }
        else break;
        l = binary(P, op, pos, l, parse_add(P));
    }
    return l;
}

static tp_node *parse_not(parser *P) {
    tp_node *r = NULL;
    /* the reference loops here: in "not a not b" the second "not" wins */
    while (is_ident(P, "not")) {
        tp_node *u = mk(P, N_UNARY, cpos(P));
        u->s = P->t[P->i++].v;
        enter(P);
        u->a = parse_not(P);
        P->depth--;
        r = u;
    }
    return r ? r : parse_cmp(P);
}

static tp_node *parse_and(parser *P) {
    tp_node *l = parse_not(P);
    while (is_ident(P, "and")) {
        tp_token *op = &P->t[P->i++];
        l = binary(P, op->v, op->pos, l, parse_not(P));
    }
    return l;
}

static tp_node *parse_or(parser *P) {
    tp_node *l = parse_and(P);
    while (is_ident(P, "or")) {
        tp_token *op = &P->t[P->i++];
        l = binary(P, op->v, op->pos, l, parse_and(P));
    }
    return l;
}

static tp_node *parse_if_expr(parser *P) {
    tp_node *a = parse_or(P);
    if (is_ident(P, "if")) {
        long pos = cpos(P);
        P->i++;
        tp_node *test = parse_or(P);
        if (is_ident(P, "else")) {
            P->i++;
            tp_node *x = mk(P, N_TERNARY, pos);
            x->a = test;
            x->b = a;
            enter(P);
            x->c = parse_if_expr(P);
            P->depth--;
            return x;
        }
        tp_node *x = mk(P, N_SELECT, pos);
        x->a = a;
        x->b = test;
        return x;
    }
    return a;
}

static tp_node *parse_expr(parser *P) {
    enter(P);
    tp_node *x = parse_if_expr(P);
    P->depth--;
    return x;
}

static tp_node *parse_primary(parser *P) {
    tp_token *t = cur(P);
    P->i++;
    switch (t->type) {
    case T_NUM: {
        int is_float = memchr(t->v.s, '.', t->v.n) != NULL;
        tp_node *x = mk(P, is_float ? N_FLOAT : N_INT, t->pos);
        char buf[64];
        size_t n = t->v.n < 63 ? t->v.n : 63;
        memcpy(buf, t->v.s, n);
        buf[n] = 0;
        x->num = strtod(buf, NULL);
        return x;
    }
    case T_STR: {
        tp_node *x = mk(P, N_STR, t->pos);
        x->s = t->v;
        if (is(P, T_STR)) { /* adjacent literals concatenate */
            tp_buf b = {0};
            tp_buf_put(P->c, &b, t->v.s, t->v.n);
            while (is(P, T_STR)) { tp_buf_put(P->c, &b, P->t[P->i].v.s, P->t[P->i].v.n); P->i++; }
            x->s = (tstr){b.p, b.n};
        }
        return x;
    }
    case T_IDENT: {
        tp_node *x = mk(P, N_IDENT, t->pos);
        x->s = t->v;
        return x;
    }
    case T_LPAREN: {
        tp_node *x = parse_expr_seq(P, 0);
        expect(P, T_RPAREN, "')'");
        return x;
    }
    case T_LBRACKET: {
        vec v = {0};
        while (!is(P, T_RBRACKET)) {
            vpush(P, &v, parse_expr(P));
            if (is(P, T_COMMA)) P->i++;
        }
        P->i++;
        tp_node *x = mk(P, N_ARRAY, t->pos);
        x->l1 = vlist(v);
        return x;
    }
    case T_LBRACE: {
        vec k = {0}, v = {0};
        while (!is(P, T_RBRACE)) {
            vpush(P, &k, parse_expr(P));
            expect(P, T_COLON, "':' between key and value in object literal");
            vpush(P, &v, parse_expr(P));
            if (is(P, T_COMMA)) P->i++;
        }
        P->i++;
        tp_node *x = mk(P, N_OBJECT, t->pos);
        x->l1 = vlist(k);
        x->l2 = vlist(v);
        return x;
    }
    default:
        tp_fail(P->c, t->pos, "unexpected %s", tname(t->type));
    }
}

static tp_node *parse_if_stmt(parser *P, long pos) {
    static const char *const stop[] = {"elif", "else", "endif", NULL};
    static const char *const endif[] = {"endif", NULL};
    tp_node *x = mk(P, N_IF, pos);
    x->a = parse_expr(P);
    expect(P, T_CLOSE_STMT, "'%}'");
    x->l1 = parse_until(P, stop, "{% endif %}");
    if (is_statement(P, (const char *const[]){"elif", NULL})) {
        long p2 = cpos(P);
        P->i += 2;
        vec alt = {0};
        enter(P);
        vpush(P, &alt, parse_if_stmt(P, p2));
        P->depth--;
        x->l2 = vlist(alt);
    } else if (is_statement(P, (const char *const[]){"else", NULL})) {
        P->i += 2;
        expect(P, T_CLOSE_STMT, "'%}'");
        x->l2 = parse_until(P, endif, "{% endif %}");
    }
    return x;
}

static void expect_end(parser *P, const char *name) {
    expect(P, T_OPEN_STMT, "'{%'");
    expect_ident(P, name);
    expect(P, T_CLOSE_STMT, "'%}'");
}

static tp_node *parse_statement(parser *P) {
    long pos = cpos(P);
    expect(P, T_OPEN_STMT, "'{%'");
    tp_token *t = cur(P);
    if (t->type != T_IDENT) tp_fail(P->c, t->pos, "unknown statement, got %s", tname(t->type));
    tstr name = t->v;
    P->i++;
    enter(P);
    tp_node *x;
    if (tstr_eq(name, "set")) {
        x = mk(P, N_SET, pos);
        x->a = parse_expr_seq(P, 0);
        if (is(P, T_EQUALS)) {
            P->i++;
            x->b = parse_expr_seq(P, 0);
        } else {
            expect(P, T_CLOSE_STMT, "'%}'");
            x->l1 = parse_until(P, (const char *const[]){"endset", NULL}, "{% endset %}");
            expect(P, T_OPEN_STMT, "'{%'");
            expect_ident(P, "endset");
        }
        expect(P, T_CLOSE_STMT, "'%}'");
    } else if (tstr_eq(name, "if")) {
        x = parse_if_stmt(P, pos);
        expect_end(P, "endif");
    } else if (tstr_eq(name, "macro")) {
        x = mk(P, N_MACRO, pos);
        tp_node *nm = parse_primary(P);
        if (nm->kind != N_IDENT) tp_fail(P->c, nm->pos, "expected identifier following macro statement");
        x->s = nm->s;
        x->l1 = parse_args(P, 1);
        expect(P, T_CLOSE_STMT, "'%}'");
        x->l2 = parse_until(P, (const char *const[]){"endmacro", NULL}, "{% endmacro %}");
        expect_end(P, "endmacro");
    } else if (tstr_eq(name, "for")) {
        x = mk(P, N_FOR, pos);
        x->a = parse_expr_seq(P, 1);
        if (x->a->kind != N_IDENT && x->a->kind != N_TUPLE)
            tp_fail(P->c, x->a->pos, "expected identifier/tuple for the loop variable");
        if (!is_ident(P, "in")) tp_fail(P->c, cpos(P), "expected 'in' keyword following loop variable");
        P->i++;
        x->b = parse_expr(P);
        expect(P, T_CLOSE_STMT, "'%}'");
        x->l1 = parse_until(P, (const char *const[]){"endfor", "else", NULL}, "{% endfor %}");
        if (is_statement(P, (const char *const[]){"else", NULL})) {
            P->i += 2;
            expect(P, T_CLOSE_STMT, "'%}'");
            x->l2 = parse_until(P, (const char *const[]){"endfor", NULL}, "{% endfor %}");
        }
        expect_end(P, "endfor");
    } else if (tstr_eq(name, "break") || tstr_eq(name, "continue")) {
        x = mk(P, tstr_eq(name, "break") ? N_BREAK : N_CONTINUE, pos);
        expect(P, T_CLOSE_STMT, "'%}'");
    } else if (tstr_eq(name, "filter")) {
        x = mk(P, N_FILTERBLOCK, pos);
        tp_node *f = parse_primary(P);
        if (f->kind == N_IDENT && is(P, T_LPAREN)) f = parse_call(P, f);
        x->a = f;
        expect(P, T_CLOSE_STMT, "'%}'");
        x->l1 = parse_until(P, (const char *const[]){"endfilter", NULL}, "{% endfilter %}");
        expect_end(P, "endfilter");
    } else {
        tp_fail(P->c, t->pos, "unknown statement type: %.*s", (int)name.n, name.s);
    }
    P->depth--;
    return x;
}

static tp_node *parse_any(parser *P) {
    tp_token *t = cur(P);
    switch (t->type) {
    case T_COMMENT: {
        P->i++;
        return mk(P, N_COMMENT, t->pos);
    }
    case T_GEN: {
        P->i++;
        tp_node *x = mk(P, N_GEN, t->pos);
        x->flag = (int)t->v.n;
        return x;
    }
    case T_TEXT: {
        P->i++;
        tp_node *x = mk(P, N_STR, t->pos);
        x->s = t->v;
        return x;
    }
    case T_OPEN_STMT:
        return parse_statement(P);
    case T_OPEN_EXPR: {
        P->i++;
        tp_node *x = parse_expr(P);
        expect(P, T_CLOSE_EXPR, "'}}'");
        return x;
    }
    default:
        tp_fail(P->c, t->pos, "unexpected %s", tname(t->type));
    }
}

tp_node *tp_parse(tp_ctx *c, const char *src, size_t len) {
    c->src = src;
    c->src_len = len;
    lexer L = {c, preprocess(c, src, len), 0, NULL, 0, 0, 0};
    tokenize(&L);
    emit_marks(&L, L.t.n); /* markers at the very end */
    int ngen = 0;
    for (int k = 0; k < L.n; k++) ngen += L.tok[k].type == T_GEN;
    parser P = {c, L.tok, L.n, 0, (long)len, 0};
    vec body = {0};
    while (P.i < P.n) vpush(&P, &body, parse_any(&P));
    tp_node *prog = mk(&P, N_PROGRAM, 0);
    prog->l1 = vlist(body);
    prog->flag = ngen;
    return prog;
}
