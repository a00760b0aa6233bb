/* parse.c — tokens (lex.c) to syntax tree, by recursive descent with the
 * reference renderer's (@huggingface/jinja) operator precedence; errors name
 * the line and column of the offending token. */
#include <stdlib.h>
#include <string.h>
#include "template/tmpl.h"

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
    int ntok;
    tp_token *tok = tp_lex(c, src, len, &ntok);
    int ngen = 0;
    for (int k = 0; k < ntok; k++) ngen += tok[k].type == T_GEN;
    parser P = {c, tok, ntok, 0, (long)len, 0};
    vec body = {0};
    while (P.i < P.n) vpush(&P, &body, parse_any(&P));
    tp_node *prog = mk(&P, N_PROGRAM, 0);
    prog->l1 = vlist(body);
    prog->flag = ngen;
    return prog;
}
