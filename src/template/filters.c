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

tv *tp_apply_filter(ev *E, tv *v, const tp_node *f, scope *env) {
    if (f->kind == N_IDENT) {
        tstr nm = f->s;
        if (tstr_eq(nm, "safe")) return v;
        if (tstr_eq(nm, "tojson")) return to_json_value(E, f, v, (argv_t){NULL, 0});
        if (v->t == V_ARRAY || v->t == V_TUPLE) {
            size_t n = v->u.arr.n;
            if (tstr_eq(nm, "list")) return v;
            /* the reference fails on an empty list here (it reads past the end) */
            if ((tstr_eq(nm, "first") || tstr_eq(nm, "last")) && n == 0)
                FAIL(E, f, "filter %.*s on an empty list", (int)nm.n, nm.s);
            if (tstr_eq(nm, "first")) return v->u.arr.v[0];
            if (tstr_eq(nm, "last")) return v->u.arr.v[n - 1];
            if (tstr_eq(nm, "length")) return tv_num(E->c, V_INT, (double)n);
            if (tstr_eq(nm, "reverse")) {
                tv *r = tv_arr(E->c, V_ARRAY, n);
                for (size_t i = 0; i < n; i++) r->u.arr.v[i] = v->u.arr.v[n - 1 - i];
                return r;
            }
            if (tstr_eq(nm, "sort")) {
                sort_ctx S = {E, f, 0, 0, {0}, -1, 0};
                return tp_sorted(E, &S, v);
            }
            if (tstr_eq(nm, "join")) return join_values(E, v, (tstr){"", 0});
            if (tstr_eq(nm, "string")) {
                tp_buf b = {0};
                tp_buf_put(E->c, &b, "", 0);
                static const tp_json_opts plain = {0, 0, 0, NULL, NULL};
                tv_to_json(E->c, &b, v, &plain, 0, 0);
                return tv_str_ref(E->c, (tstr){b.p, b.n});
            }
            if (tstr_eq(nm, "unique")) {
                tvvec r = {0};
                for (size_t i = 0; i < n; i++) {
                    int seen = 0;
                    for (size_t j = 0; j < r.n && !seen; j++) seen = tp_strict_eq(r.v[j], v->u.arr.v[i]);
                    if (!seen) tp_tvpush(E, &r, v->u.arr.v[i]);
                }
                return tp_tvvec_array(E, &r);
            }
            FAIL(E, f, "unknown filter '%.*s' for a list", (int)nm.n, nm.s);
        }
        if (v->t == V_STR) {
            tstr s = v->u.str;
            if (tstr_eq(nm, "length")) return tv_num(E->c, V_INT, (double)tp_utf16_len(s));
            if (tstr_eq(nm, "upper")) return tp_str_case(E, s, 1, 0);
            if (tstr_eq(nm, "lower")) return tp_str_case(E, s, 0, 0);
            if (tstr_eq(nm, "title")) return tp_str_title(E, s);
            if (tstr_eq(nm, "capitalize")) return tp_str_case(E, s, 1, 1);
            if (tstr_eq(nm, "trim")) return tp_str_trim(E, s, 1, 1);
            if (tstr_eq(nm, "indent")) return indent_str(E, s, 4, 0, 0);
            if (tstr_eq(nm, "join") || tstr_eq(nm, "string")) return v;
            if (tstr_eq(nm, "int")) {
                double d = parse_num_prefix(s, 1);
                return tv_num(E->c, V_INT, isnan(d) ? 0 : d);
            }
            if (tstr_eq(nm, "float")) {
                double d = parse_num_prefix(s, 0);
                return tv_num(E->c, V_FLOAT, isnan(d) ? 0 : d);
            }
            FAIL(E, f, "unknown filter '%.*s' for a string", (int)nm.n, nm.s);
        }
        if (v->t == V_INT || v->t == V_FLOAT) {
            if (tstr_eq(nm, "abs")) return tv_num(E->c, v->t, fabs(v->u.num));
            if (tstr_eq(nm, "int")) return tv_num(E->c, V_INT, floor(v->u.num));
            if (tstr_eq(nm, "float")) return tv_num(E->c, V_FLOAT, v->u.num);
            if (tstr_eq(nm, "string")) {
                tp_buf b = {0};
                tp_buf_put(E->c, &b, "", 0);
                tv_to_output(E->c, &b, v);
                return tv_str_ref(E->c, (tstr){b.p, b.n});
            }
            FAIL(E, f, "unknown filter '%.*s' for a number", (int)nm.n, nm.s);
        }
        if (v->t == V_OBJECT || v->t == V_KWARGS) {
            if (tstr_eq(nm, "items")) return tp_obj_items(E, v, 0);
            if (tstr_eq(nm, "length")) return tv_num(E->c, V_INT, (double)v->u.obj.n);
            int m = tp_find_name(tp_obj_methods, nm);
            if (m == OM_GET) FAIL(E, f, "dict key must be a string: got undefined");
            if (m == OM_KEYS) return tp_obj_items(E, v, 1);
            if (m == OM_VALUES) return tp_obj_items(E, v, 2);
            if (m == OM_DICTSORT) return tp_dictsort(E, f, v, NULL, 0);
            FAIL(E, f, "unknown filter '%.*s' for a dict", (int)nm.n, nm.s);
        }
        if (v->t == V_BOOL) {
            if (tstr_eq(nm, "bool")) return v;
            if (tstr_eq(nm, "int")) return tv_num(E->c, V_INT, v->u.b);
            if (tstr_eq(nm, "float")) return tv_num(E->c, V_FLOAT, v->u.b);
            if (tstr_eq(nm, "string")) return tv_str(E->c, v->u.b ? "true" : "false", v->u.b ? 4 : 5);
            FAIL(E, f, "unknown filter '%.*s' for a boolean", (int)nm.n, nm.s);
        }
        FAIL(E, f, "cannot apply filter \"%.*s\" to type: %s", (int)nm.n, nm.s, tv_type_name(v));
    }
    if (f->kind != N_CALL || f->a->kind != N_IDENT) FAIL(E, f, "unknown filter");
    tstr nm = f->a->s;
    if (tstr_eq(nm, "tojson")) return to_json_value(E, f, v, E->eval_args(E, f->l1, env));
    if (tstr_eq(nm, "join")) {
        tv *arr;
        if (v->t == V_STR) arr = str_chars(E, v->u.str);
        else if (v->t == V_ARRAY || v->t == V_TUPLE) arr = v;
        else FAIL(E, f, "cannot apply filter \"join\" to type: %s", tv_type_name(v));
        argv_t a = E->eval_args(E, f->l1, env);
        int np = tp_npositional(a.v, a.n);
        tv *sep = np > 0 ? a.v[0] : tp_kwarg(a.v, a.n, "separator");
        if (!sep) sep = tv_str(E->c, "", 0);
        if (sep->t != V_STR) FAIL(E, f, "separator must be a string");
        return join_values(E, arr, sep->u.str);
    }
    if (tstr_eq(nm, "int") || tstr_eq(nm, "float")) {
        int is_int = tstr_eq(nm, "int");
        argv_t a = E->eval_args(E, f->l1, env);
        int np = tp_npositional(a.v, a.n);
        tv *def = np > 0 ? a.v[0] : tp_kwarg(a.v, a.n, "default");
        if (!def) def = tv_num(E->c, is_int ? V_INT : V_FLOAT, 0);
        if (v->t == V_STR) {
            double d = parse_num_prefix(v->u.str, is_int);
            return isnan(d) ? def : tv_num(E->c, is_int ? V_INT : V_FLOAT, d);
        }
        if (v->t == V_INT || v->t == V_FLOAT) return v;
        if (v->t == V_BOOL) return tv_num(E->c, is_int ? V_INT : V_FLOAT, v->u.b);
        FAIL(E, f, "cannot apply filter \"%.*s\" to type: %s", (int)nm.n, nm.s, tv_type_name(v));
    }
    if (tstr_eq(nm, "default")) {
        argv_t a = E->eval_args(E, f->l1, env);
        int np = tp_npositional(a.v, a.n);
        tv *def = np > 0 ? a.v[0] : tv_str(E->c, "", 0);
        tv *bo = np > 1 ? a.v[1] : tp_kwarg(a.v, a.n, "boolean");
        if (!bo) bo = TV_BOOL(0);
        if (bo->t != V_BOOL) FAIL(E, f, "`default` filter flag must be a boolean");
        if (v->t == V_UNDEF || (bo->u.b && !tv_truthy(v))) return def;
        return v;
    }
    if (v->t == V_ARRAY || v->t == V_TUPLE) {
        if (tstr_eq(nm, "sort")) {
            argv_t a = E->eval_args(E, f->l1, env);
            int np = tp_npositional(a.v, a.n);
            tv *rev = np > 0 ? a.v[0] : tp_kwarg(a.v, a.n, "reverse");
            tv *cs = np > 1 ? a.v[1] : tp_kwarg(a.v, a.n, "case_sensitive");
            tv *at = np > 2 ? a.v[2] : tp_kwarg(a.v, a.n, "attribute");
            if (!rev) rev = TV_BOOL(0);
            if (!cs) cs = TV_BOOL(0);
            if (!at) at = TV_NULL;
            if (rev->t != V_BOOL) FAIL(E, f, "reverse must be a boolean");
            if (cs->t != V_BOOL) FAIL(E, f, "case_sensitive must be a boolean");
            if (!(at->t == V_STR || at->t == V_INT || at->t == V_NULL))
                FAIL(E, f, "attribute must be a string, integer, or null");
            sort_ctx S = {E, f, cs->u.b, rev->u.b, {0}, -1, at->t != V_NULL};
            if (at->t == V_STR) S.attr = at->u.str;
            else if (at->t == V_INT) S.attr = tp_raw_str(E, at);
            return tp_sorted(E, &S, v);
        }
        if (tstr_eq(nm, "selectattr") || tstr_eq(nm, "rejectattr")) {
            int sel = tstr_eq(nm, "selectattr");
            for (size_t i = 0; i < v->u.arr.n; i++) {
                int t = v->u.arr.v[i]->t;
                if (!(t == V_OBJECT || t == V_KWARGS || t == V_NS))
                    FAIL(E, f, "`%.*s` can only be applied to array of objects", (int)nm.n, nm.s);
            }
            for (int i = 0; i < f->l1.n; i++)
                if (f->l1.v[i]->kind != N_STR) FAIL(E, f, "arguments of `%.*s` must be strings", (int)nm.n, nm.s);
            if (f->l1.n < 1) FAIL(E, f, "`%.*s` needs an attribute", (int)nm.n, nm.s);
            tstr attr = f->l1.v[0]->s;
            tvvec r = {0};
            for (size_t i = 0; i < v->u.arr.n; i++) {
                tv *a = tv_obj_get(v->u.arr.v[i], attr);
                /* the reference tests JS truthiness of the wrapper: present = true */
                int res = 0;
                if (a) {
                    if (f->l1.n > 1) {
                        tstr tn = f->l1.v[1]->s;
                        if (tstr_eq(tn, "equalto") || tstr_eq(tn, "eq")) {
                            tv *want = f->l1.n > 2 ? tv_str_ref(E->c, f->l1.v[2]->s) : TV_UNDEF;
                            res = tp_strict_eq(a, want);
                        } else res = tp_test_value(E, f, tn, a);
                    } else res = tv_truthy(a);
                }
                if (sel ? res : !res) tp_tvpush(E, &r, v->u.arr.v[i]);
            }
            return tp_tvvec_array(E, &r);
        }
        if (tstr_eq(nm, "map")) {
            argv_t a = E->eval_args(E, f->l1, env);
            tv *at = tp_kwarg(a.v, a.n, "attribute");
            if (!at) FAIL(E, f, "`map` expressions without `attribute` set are not currently supported.");
            if (at->t != V_STR) FAIL(E, f, "attribute must be a string");
            tv *def = tp_kwarg(a.v, a.n, "default");
            tv *r = tv_arr(E->c, V_ARRAY, v->u.arr.n);
            for (size_t i = 0; i < v->u.arr.n; i++) {
                tv *it = v->u.arr.v[i];
                if (!(it->t == V_OBJECT || it->t == V_KWARGS || it->t == V_NS))
                    FAIL(E, f, "items in map must be an object");
                tv *val = tp_attr_path(it, at->u.str);
                r->u.arr.v[i] = val->t == V_UNDEF ? (def ? def : TV_UNDEF) : val;
            }
            return r;
        }
        FAIL(E, f, "unknown filter '%.*s' for a list", (int)nm.n, nm.s);
    }
    if (v->t == V_STR) {
        if (tstr_eq(nm, "indent")) {
            argv_t a = E->eval_args(E, f->l1, env);
            int np = tp_npositional(a.v, a.n);
            tv *w = np > 0 ? a.v[0] : tp_kwarg(a.v, a.n, "width");
            tv *first = np > 1 ? a.v[1] : tp_kwarg(a.v, a.n, "first");
            tv *blank = np > 2 ? a.v[2] : tp_kwarg(a.v, a.n, "blank");
            if (w && w->t != V_INT) FAIL(E, f, "width must be a number");
            long width = w ? (long)w->u.num : 4;
            if (width < 0 || width > 1024) FAIL(E, f, "indent width out of range");
            return indent_str(E, v->u.str, width, first && tv_truthy(first), blank && tv_truthy(blank));
        }
        if (tstr_eq(nm, "replace")) {
            argv_t a = E->eval_args(E, f->l1, env);
            int np = tp_npositional(a.v, a.n);
            tv **all = tp_alloc(E->c, sizeof(tv *) * (size_t)(np + 1));
            memcpy(all, a.v, sizeof(tv *) * (size_t)np);
            all[np] = np < a.n ? a.v[np] : tv_obj(E->c, V_KWARGS);
            return tp_str_replace(E, f, v->u.str, all, np + 1);
        }
        FAIL(E, f, "unknown filter '%.*s' for a string", (int)nm.n, nm.s);
    }
    if (v->t == V_OBJECT || v->t == V_KWARGS) {
        int m = tp_find_name(tp_obj_methods, nm);
        if (m >= 0) {
            argv_t a = E->eval_args(E, f->l1, env);
            tv *fn = E->fn_value(E, FN_OBJMETHOD, m, v, NULL);
            return tp_call_fn(E, f, fn, a.v, a.n, env);
        }
        FAIL(E, f, "unknown filter '%.*s' for a dict", (int)nm.n, nm.s);
    }
    FAIL(E, f, "cannot apply filter \"%.*s\" to type: %s", (int)nm.n, nm.s, tv_type_name(v));
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
