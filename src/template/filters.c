/* filters.c — the template filters ({{ x | tojson(indent=2) }}, trim,
 * join, sort, selectattr, map, indent, ...) and tests (x is defined,
 * x is string, ...), as the reference renderer (@huggingface/jinja) defines
 * them. Split from eval.c; shares its state and helpers through interp.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "template/interp.h"

/* ---------------- filters ---------------- */

static tv *to_json_value(ev *E, const tp_node *x, tv *v, argv_t a) {
    tp_json_opts o = {0, 0, 0, NULL, NULL};
    tv *ind = tp_kwarg(a.v, a.n, "indent"), *asc = tp_kwarg(a.v, a.n, "ensure_ascii");
    tv *sk = tp_kwarg(a.v, a.n, "sort_keys"), *sep = tp_kwarg(a.v, a.n, "separators");
    if (ind && ind->t != V_INT && ind->t != V_NULL) FAIL(E, x, "if set, indent must be a number");
    if (ind && ind->t == V_INT) {
        if (ind->u.num > 64 || ind->u.num < 0) FAIL(E, x, "indent out of range");
        o.indent = (long)ind->u.num;
    }
    if (asc && asc->t != V_BOOL) FAIL(E, x, "if set, ensure_ascii must be a boolean");
    o.ensure_ascii = asc && asc->u.b;
    if (sk && sk->t != V_BOOL) FAIL(E, x, "if set, sort_keys must be a boolean");
    o.sort_keys = sk && sk->u.b;
    if (sep && sep->t != V_NULL) {
        if (!((sep->t == V_ARRAY || sep->t == V_TUPLE) && sep->u.arr.n == 2 && sep->u.arr.v[0]->t == V_STR &&
              sep->u.arr.v[1]->t == V_STR))
            FAIL(E, x, "separators must be a tuple of two strings");
        o.item_sep = tp_strdup(E->c, sep->u.arr.v[0]->u.str.s, sep->u.arr.v[0]->u.str.n).s;
        o.key_sep = tp_strdup(E->c, sep->u.arr.v[1]->u.str.s, sep->u.arr.v[1]->u.str.n).s;
    }
    tp_buf b = {0};
    tp_buf_put(E->c, &b, "", 0);
    tv_to_json(E->c, &b, v, &o, 0, 1);
    return tv_str_ref(E->c, (tstr){b.p, b.n});
}

static tv *indent_str(ev *E, tstr s, long width, int first, int blank) {
    tp_buf b = {0};
    tp_buf_put(E->c, &b, "", 0);
    size_t i = 0;
    for (int line = 0;; line++) {
        const char *nl = memchr(s.s + i, '\n', s.n - i);
        size_t e = nl ? (size_t)(nl - s.s) : s.n;
        if (!((!first && line == 0) || (!blank && e == i)))
            for (long k = 0; k < width; k++) tp_buf_put(E->c, &b, " ", 1);
        tp_buf_put(E->c, &b, s.s + i, e - i);
        if (!nl) break;
        tp_buf_put(E->c, &b, "\n", 1);
        i = e + 1;
    }
    return tv_str_ref(E->c, (tstr){b.p, b.n});
}

static tv *join_values(ev *E, tv *arr, tstr sep) {
    tp_buf b = {0};
    tp_buf_put(E->c, &b, "", 0);
    for (size_t i = 0; i < arr->u.arr.n; i++) {
        if (i) tp_buf_put(E->c, &b, sep.s, sep.n);
        tv *v = arr->u.arr.v[i];
        if (v->t != V_UNDEF && v->t != V_NULL) tv_raw_string(E->c, &b, v); /* join skips them */
    }
    return tv_str_ref(E->c, (tstr){b.p, b.n});
}

static tv *str_chars(ev *E, tstr s) {
    size_t *o;
    size_t n = tp_cp_offsets(E, s, &o);
    tv *r = tv_arr(E->c, V_ARRAY, n);
    for (size_t i = 0; i < n; i++) r->u.arr.v[i] = tv_str_ref(E->c, (tstr){s.s + o[i], o[i + 1] - o[i]});
    return r;
}

/* parseInt / parseFloat on a string: leading number or NaN */
static double parse_num_prefix(tstr s, int is_int) {
    char buf[128];
    size_t a = tp_trim_start_off(s.s, s.n), n = s.n - a < 127 ? s.n - a : 127;
    memcpy(buf, s.s + a, n);
    buf[n] = 0;
    char *end;
    if (is_int) {
        long long v = strtoll(buf, &end, 10);
        return end == buf ? NAN : (double)v;
    }
    if (!strncmp(buf, "Infinity", 8) || !strncmp(buf, "+Infinity", 9)) return INFINITY;
    if (!strncmp(buf, "-Infinity", 9)) return -INFINITY;
    for (char *p = buf; *p; p++)
        if (!strchr("0123456789+-.eE", *p)) { *p = 0; break; }
    double v = strtod(buf, &end);
    return end == buf ? NAN : v;
}

/* ---------------- dispatch ---------------- */

/* the kinds of value a filter applies to (a list is an array or a tuple, a
 * dict an object or keyword arguments) */
enum { F_LIST = 1, F_STR = 2, F_NUM = 4, F_DICT = 8, F_BOOL = 16, F_OTHER = 32, F_ANY = 63 };

static int kind_of(const tv *v) {
    switch (v->t) {
    case V_ARRAY: case V_TUPLE: return F_LIST;
    case V_STR: return F_STR;
    case V_INT: case V_FLOAT: return F_NUM;
    case V_OBJECT: case V_KWARGS: return F_DICT;
    case V_BOOL: return F_BOOL;
    default: return F_OTHER;
    }
}

/* one filter application: the filter node (a name, or a call whose
 * arguments are f->l1), its name and the filtered value */
typedef struct {
    ev *E;
    const tp_node *f;
    tstr nm;
    tv *v;
    scope *env;
} fcall;
typedef tv *(*filter_fn)(const fcall *c);
typedef struct { const char *name; int kinds; filter_fn fn; } filter_def;

static argv_t call_args(const fcall *c) { return c->E->eval_args(c->E, c->f->l1, c->env); }

/* ---------------- filters without arguments: {{ x | name }} ---------------- */

static tv *f_self(const fcall *c) { return c->v; }
static tv *f_tojson(const fcall *c) { return to_json_value(c->E, c->f, c->v, (argv_t){NULL, 0}); }
static tv *f_upper(const fcall *c) { return tp_str_case(c->E, c->v->u.str, 1, 0); }
static tv *f_lower(const fcall *c) { return tp_str_case(c->E, c->v->u.str, 0, 0); }
static tv *f_title(const fcall *c) { return tp_str_title(c->E, c->v->u.str); }
static tv *f_capitalize(const fcall *c) { return tp_str_case(c->E, c->v->u.str, 1, 1); }
static tv *f_trim(const fcall *c) { return tp_str_trim(c->E, c->v->u.str, 1, 1); }
static tv *f_indent(const fcall *c) { return indent_str(c->E, c->v->u.str, 4, 0, 0); }
static tv *f_abs(const fcall *c) { return tv_num(c->E->c, c->v->t, fabs(c->v->u.num)); }
static tv *f_join(const fcall *c) { return join_values(c->E, c->v, (tstr){"", 0}); }
static tv *f_items(const fcall *c) { return tp_obj_items(c->E, c->v, 0); }
static tv *f_keys(const fcall *c) { return tp_obj_items(c->E, c->v, 1); }
static tv *f_values(const fcall *c) { return tp_obj_items(c->E, c->v, 2); }
static tv *f_dictsort(const fcall *c) { return tp_dictsort(c->E, c->f, c->v, NULL, 0); }
static tv *f_get(const fcall *c) { FAIL(c->E, c->f, "dict key must be a string: got undefined"); }

static tv *f_first_last(const fcall *c) {
    size_t n = c->v->u.arr.n;
    /* the reference fails on an empty list here (it reads past the end) */
    if (n == 0) FAIL(c->E, c->f, "filter %.*s on an empty list", (int)c->nm.n, c->nm.s);
    return tstr_eq(c->nm, "first") ? c->v->u.arr.v[0] : c->v->u.arr.v[n - 1];
}

static tv *f_length(const fcall *c) {
    const tv *v = c->v;
    double n = v->t == V_STR ? (double)tp_utf16_len(v->u.str) : kind_of(v) == F_LIST ? (double)v->u.arr.n
                                                                                        : (double)v->u.obj.n;
    return tv_num(c->E->c, V_INT, n);
}

static tv *f_reverse(const fcall *c) {
    size_t n = c->v->u.arr.n;
    tv *r = tv_arr(c->E->c, V_ARRAY, n);
    for (size_t i = 0; i < n; i++) r->u.arr.v[i] = c->v->u.arr.v[n - 1 - i];
    return r;
}

static tv *f_sort(const fcall *c) {
    sort_ctx S = {c->E, c->f, 0, 0, {0}, -1, 0};
    return tp_sorted(c->E, &S, c->v);
}

static tv *f_unique(const fcall *c) {
    tvvec r = {0};
    for (size_t i = 0; i < c->v->u.arr.n; i++) {
        int seen = 0;
        for (size_t j = 0; j < r.n && !seen; j++) seen = tp_strict_eq(r.v[j], c->v->u.arr.v[i]);
        if (!seen) tp_tvpush(c->E, &r, c->v->u.arr.v[i]);
    }
    return tp_tvvec_array(c->E, &r);
}

/* a list as JSON without spaces, a number as output, a boolean as JS writes it */
static tv *f_string(const fcall *c) {
    ev *E = c->E;
    tv *v = c->v;
    if (v->t == V_STR) return v;
    if (v->t == V_BOOL) return tv_str(E->c, v->u.b ? "true" : "false", v->u.b ? 4 : 5);
    tp_buf b = {0};
    tp_buf_put(E->c, &b, "", 0);
    static const tp_json_opts plain = {0, 0, 0, NULL, NULL};
    if (v->t == V_INT || v->t == V_FLOAT) tv_to_output(E->c, &b, v);
    else tv_to_json(E->c, &b, v, &plain, 0, 0);
    return tv_str_ref(E->c, (tstr){b.p, b.n});
}

/* int and float: a string's leading number (0 if none), a number floored
 * (int) or kept, a boolean as 0 or 1 */
static tv *to_number(const fcall *c, int is_int) {
    tv *v = c->v;
    double d;
    if (v->t == V_STR) {
        d = parse_num_prefix(v->u.str, is_int);
        if (isnan(d)) d = 0;
    } else d = v->t == V_BOOL ? v->u.b : is_int ? floor(v->u.num) : v->u.num;
    return tv_num(c->E->c, is_int ? V_INT : V_FLOAT, d);
}
static tv *f_int(const fcall *c) { return to_number(c, 1); }
static tv *f_float(const fcall *c) { return to_number(c, 0); }

static const filter_def plain_filters[] = {
    {"safe", F_ANY, f_self}, {"tojson", F_ANY, f_tojson},
    {"list", F_LIST, f_self}, {"first", F_LIST, f_first_last}, {"last", F_LIST, f_first_last},
    {"length", F_LIST | F_STR | F_DICT, f_length}, {"reverse", F_LIST, f_reverse}, {"sort", F_LIST, f_sort},
    {"join", F_LIST, f_join}, {"join", F_STR, f_self}, {"string", F_LIST | F_STR | F_NUM | F_BOOL, f_string},
    {"unique", F_LIST, f_unique}, {"upper", F_STR, f_upper}, {"lower", F_STR, f_lower},
    {"title", F_STR, f_title}, {"capitalize", F_STR, f_capitalize}, {"trim", F_STR, f_trim},
    {"indent", F_STR, f_indent}, {"int", F_STR | F_NUM | F_BOOL, f_int},
    {"float", F_STR | F_NUM | F_BOOL, f_float}, {"abs", F_NUM, f_abs}, {"items", F_DICT, f_items},
    {"get", F_DICT, f_get}, {"keys", F_DICT, f_keys}, {"values", F_DICT, f_values},
    {"dictsort", F_DICT, f_dictsort}, {"bool", F_BOOL, f_self}, {NULL, 0, NULL},
};

/* ---------------- filters with arguments: {{ x | name(...) }} ---------------- */

static tv *c_tojson(const fcall *c) { return to_json_value(c->E, c->f, c->v, call_args(c)); }

static tv *c_join(const fcall *c) {
    ev *E = c->E;
    tv *arr, *v = c->v;
    if (v->t == V_STR) arr = str_chars(E, v->u.str);
    else if (v->t == V_ARRAY || v->t == V_TUPLE) arr = v;
    else FAIL(E, c->f, "cannot apply filter \"join\" to type: %s", tv_type_name(v));
    argv_t a = call_args(c);
    int np = tp_npositional(a.v, a.n);
    tv *sep = np > 0 ? a.v[0] : tp_kwarg(a.v, a.n, "separator");
    if (!sep) sep = tv_str(E->c, "", 0);
    if (sep->t != V_STR) FAIL(E, c->f, "separator must be a string");
    return join_values(E, arr, sep->u.str);
}

/* int(default) and float(default): the default when a string holds no number */
static tv *call_number(const fcall *c, int is_int) {
    ev *E = c->E;
    tv *v = c->v;
    argv_t a = call_args(c);
    int np = tp_npositional(a.v, a.n);
    tv *def = np > 0 ? a.v[0] : tp_kwarg(a.v, a.n, "default");
    if (!def) def = tv_num(E->c, is_int ? V_INT : V_FLOAT, 0);
    if (v->t == V_STR) {
        double d = parse_num_prefix(v->u.str, is_int);
        return isnan(d) ? def : tv_num(E->c, is_int ? V_INT : V_FLOAT, d);
    }
    if (v->t == V_INT || v->t == V_FLOAT) return v;
    if (v->t == V_BOOL) return tv_num(E->c, is_int ? V_INT : V_FLOAT, v->u.b);
    FAIL(E, c->f, "cannot apply filter \"%.*s\" to type: %s", (int)c->nm.n, c->nm.s, tv_type_name(v));
}
static tv *c_int(const fcall *c) { return call_number(c, 1); }
static tv *c_float(const fcall *c) { return call_number(c, 0); }

static tv *c_default(const fcall *c) {
    argv_t a = call_args(c);
    int np = tp_npositional(a.v, a.n);
    tv *def = np > 0 ? a.v[0] : tv_str(c->E->c, "", 0);
    tv *bo = np > 1 ? a.v[1] : tp_kwarg(a.v, a.n, "boolean");
    if (!bo) bo = TV_BOOL(0);
    if (bo->t != V_BOOL) FAIL(c->E, c->f, "`default` filter flag must be a boolean");
    if (c->v->t == V_UNDEF || (bo->u.b && !tv_truthy(c->v))) return def;
    return c->v;
}

/* argument i by position, else by keyword, else the default */
static tv *arg_at(argv_t a, int np, int i, const char *name, tv *def) {
    tv *r = np > i ? a.v[i] : tp_kwarg(a.v, a.n, name);
    return r ? r : def;
}

static tv *c_sort(const fcall *c) {
    ev *E = c->E;
    argv_t a = call_args(c);
    int np = tp_npositional(a.v, a.n);
    tv *rev = arg_at(a, np, 0, "reverse", TV_BOOL(0)), *cs = arg_at(a, np, 1, "case_sensitive", TV_BOOL(0));
    tv *at = arg_at(a, np, 2, "attribute", TV_NULL);
    if (rev->t != V_BOOL) FAIL(E, c->f, "reverse must be a boolean");
    if (cs->t != V_BOOL) FAIL(E, c->f, "case_sensitive must be a boolean");
    if (!(at->t == V_STR || at->t == V_INT || at->t == V_NULL))
        FAIL(E, c->f, "attribute must be a string, integer, or null");
    sort_ctx S = {E, c->f, cs->u.b, rev->u.b, {0}, -1, at->t != V_NULL};
    if (at->t == V_STR) S.attr = at->u.str;
    else if (at->t == V_INT) S.attr = tp_raw_str(E, at);
    return tp_sorted(E, &S, c->v);
}

static int is_objectish(const tv *v) { return v->t == V_OBJECT || v->t == V_KWARGS || v->t == V_NS; }

/* selectattr's test of one item's attribute a (NULL: absent); the reference
 * tests JS truthiness of the wrapper: present = true */
static int select_test(const fcall *c, tv *a) {
    const tp_list *l = &c->f->l1;
    if (!a) return 0;
    if (l->n < 2) return tv_truthy(a);
    tstr tn = l->v[1]->s;
    if (tstr_eq(tn, "equalto") || tstr_eq(tn, "eq"))
        return tp_strict_eq(a, l->n > 2 ? tv_str_ref(c->E->c, l->v[2]->s) : TV_UNDEF);
    return tp_test_value(c->E, c->f, tn, a);
}

/* selectattr / rejectattr("attr"[, "test"[, "arg"]]): the arguments are
 * string literals, read from the syntax tree */
static tv *c_select(const fcall *c) {
    ev *E = c->E;
    const tp_node *f = c->f;
    tv *v = c->v;
    int sel = tstr_eq(c->nm, "selectattr");
    for (size_t i = 0; i < v->u.arr.n; i++)
        if (!is_objectish(v->u.arr.v[i]))
            FAIL(E, f, "`%.*s` can only be applied to array of objects", (int)c->nm.n, c->nm.s);
    for (int i = 0; i < f->l1.n; i++)
        if (f->l1.v[i]->kind != N_STR) FAIL(E, f, "arguments of `%.*s` must be strings", (int)c->nm.n, c->nm.s);
    if (f->l1.n < 1) FAIL(E, f, "`%.*s` needs an attribute", (int)c->nm.n, c->nm.s);
    tvvec r = {0};
    for (size_t i = 0; i < v->u.arr.n; i++) {
        int res = select_test(c, tv_obj_get(v->u.arr.v[i], f->l1.v[0]->s));
        if (sel ? res : !res) tp_tvpush(E, &r, v->u.arr.v[i]);
    }
    return tp_tvvec_array(E, &r);
}

static tv *c_map(const fcall *c) {
    ev *E = c->E;
    argv_t a = call_args(c);
    tv *at = tp_kwarg(a.v, a.n, "attribute");
    if (!at) FAIL(E, c->f, "`map` expressions without `attribute` set are not currently supported.");
    if (at->t != V_STR) FAIL(E, c->f, "attribute must be a string");
    tv *def = tp_kwarg(a.v, a.n, "default");
    tv *r = tv_arr(E->c, V_ARRAY, c->v->u.arr.n);
    for (size_t i = 0; i < c->v->u.arr.n; i++) {
        tv *it = c->v->u.arr.v[i];
        if (!is_objectish(it)) FAIL(E, c->f, "items in map must be an object");
        tv *val = tp_attr_path(it, at->u.str);
        r->u.arr.v[i] = val->t == V_UNDEF ? (def ? def : TV_UNDEF) : val;
    }
    return r;
}

static tv *c_indent(const fcall *c) {
    ev *E = c->E;
    argv_t a = call_args(c);
    int np = tp_npositional(a.v, a.n);
    tv *w = arg_at(a, np, 0, "width", NULL), *first = arg_at(a, np, 1, "first", NULL);
    tv *blank = arg_at(a, np, 2, "blank", NULL);
    if (w && w->t != V_INT) FAIL(E, c->f, "width must be a number");
    long width = w ? (long)w->u.num : 4;
    if (width < 0 || width > 1024) FAIL(E, c->f, "indent width out of range");
    return indent_str(E, c->v->u.str, width, first && tv_truthy(first), blank && tv_truthy(blank));
}

/* replace(old, new[, count]) as the string method, keyword arguments last */
static tv *c_replace(const fcall *c) {
    ev *E = c->E;
    argv_t a = call_args(c);
    int np = tp_npositional(a.v, a.n);
    tv **all = tp_alloc(E->c, sizeof(tv *) * (size_t)(np + 1));
    memcpy(all, a.v, sizeof(tv *) * (size_t)np);
    all[np] = np < a.n ? a.v[np] : tv_obj(E->c, V_KWARGS);
    return tp_str_replace(E, c->f, c->v->u.str, all, np + 1);
}

/* a dict method used as a filter: x | get("k") is x.get("k") */
static tv *c_obj_method(const fcall *c) {
    argv_t a = call_args(c);
    tv *fn = c->E->fn_value(c->E, FN_OBJMETHOD, tp_find_name(tp_obj_methods, c->nm), c->v, NULL);
    return tp_call_fn(c->E, c->f, fn, a.v, a.n, c->env);
}

static const filter_def call_filters[] = {
    {"tojson", F_ANY, c_tojson}, {"join", F_ANY, c_join}, {"int", F_ANY, c_int},
    {"float", F_ANY, c_float}, {"default", F_ANY, c_default}, {"sort", F_LIST, c_sort},
    {"selectattr", F_LIST, c_select}, {"rejectattr", F_LIST, c_select}, {"map", F_LIST, c_map},
    {"indent", F_STR, c_indent}, {"replace", F_STR, c_replace}, {NULL, 0, NULL},
};

static filter_fn find_filter(const filter_def *t, tstr nm, int kind) {
    for (; t->name; t++)
        if ((t->kinds & kind) && tstr_eq(nm, t->name)) return t->fn;
    return NULL;
}

/* no such filter for this kind of value: "unknown filter" for the kinds in
 * `known`, "cannot apply" for the others, as the reference says */
static _Noreturn void no_filter(const fcall *c, int known) {
    static const char *const kind_name[] = {"list", "string", "number", "dict", "boolean"};
    int kind = kind_of(c->v);
    for (int i = 0; i < 5; i++)
        if (kind == (1 << i) && (known & kind))
            FAIL(c->E, c->f, "unknown filter '%.*s' for a %s", (int)c->nm.n, c->nm.s, kind_name[i]);
    FAIL(c->E, c->f, "cannot apply filter \"%.*s\" to type: %s", (int)c->nm.n, c->nm.s, tv_type_name(c->v));
}

tv *tp_apply_filter(ev *E, tv *v, const tp_node *f, scope *env) {
    int call = f->kind == N_CALL && f->a->kind == N_IDENT;
    if (f->kind != N_IDENT && !call) FAIL(E, f, "unknown filter");
    fcall c = {E, f, call ? f->a->s : f->s, v, env};
    int kind = kind_of(v);
    filter_fn fn = find_filter(call ? call_filters : plain_filters, c.nm, kind);
    if (!fn && call && kind == F_DICT && tp_find_name(tp_obj_methods, c.nm) >= 0) fn = c_obj_method;
    if (!fn) no_filter(&c, call ? F_LIST | F_STR | F_DICT : F_LIST | F_STR | F_NUM | F_DICT | F_BOOL);
    return fn(&c);
}

/* ---------------- tests ---------------- */

int tp_test_value(ev *E, const tp_node *x, tstr name, tv *v) {
    if (tstr_eq(name, "boolean")) return v->t == V_BOOL;
    if (tstr_eq(name, "callable")) return v->t == V_FUNC;
    if (tstr_eq(name, "odd") || tstr_eq(name, "even")) {
        if (v->t != V_INT) FAIL(E, x, "cannot %.*s on %s", (int)name.n, name.s, tv_type_name(v));
        int odd = fmod(v->u.num, 2) != 0;
        return tstr_eq(name, "odd") ? odd : !odd;
    }
    if (tstr_eq(name, "false")) return v->t == V_BOOL && !v->u.b;
    if (tstr_eq(name, "true")) return v->t == V_BOOL && v->u.b;
    if (tstr_eq(name, "none")) return v->t == V_NULL;
    if (tstr_eq(name, "string")) return v->t == V_STR;
    if (tstr_eq(name, "number")) return v->t == V_INT || v->t == V_FLOAT;
    if (tstr_eq(name, "integer")) return v->t == V_INT;
    if (tstr_eq(name, "iterable")) return v->t == V_ARRAY || v->t == V_STR;
    if (tstr_eq(name, "mapping")) return v->t == V_OBJECT || v->t == V_KWARGS;
    if (tstr_eq(name, "sequence"))
        return v->t == V_ARRAY || v->t == V_TUPLE || v->t == V_OBJECT || v->t == V_KWARGS || v->t == V_STR;
    if (tstr_eq(name, "lower") || tstr_eq(name, "upper")) {
        if (v->t != V_STR) return 0;
        tv *m = tp_str_case(E, v->u.str, tstr_eq(name, "upper"), 0);
        return m->u.str.n == v->u.str.n && !memcmp(m->u.str.s, v->u.str.s, v->u.str.n);
    }
    if (tstr_eq(name, "defined")) return v->t != V_UNDEF;
    if (tstr_eq(name, "undefined")) return v->t == V_UNDEF;
    if (tstr_eq(name, "equalto") || tstr_eq(name, "eq")) FAIL(E, x, "test '%.*s' needs an argument", (int)name.n, name.s);
    FAIL(E, x, "unknown test: %.*s", (int)name.n, name.s);
}
