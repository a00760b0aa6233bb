/* eval.c — the template interpreter: statements write to an output buffer,
 * expressions yield values. Semantics follow the reference renderer
 * (@huggingface/jinja) rather than Python's jinja2 where the two differ,
 * because fixtures come from it: `==` is JavaScript's loose equality, `none`
 * prints "", a for loop's scope keeps variables set in its body across
 * iterations but not after it, macros see the caller's variables, and an
 * iteration left by break/continue contributes no output.
 * Hostile templates are bounded: evaluation steps, recursion depth, output
 * size and (through the arena) memory.
 * This file is the core (scopes, expressions, statements, macro calls);
 * the built-ins live in methods.c (functions, string and object methods)
 * and filters.c (filters, tests), sharing interp.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "template/interp.h"

static tv *eval(ev *E, const tp_node *x, scope *env);
static void exec_list(ev *E, tp_list l, scope *env, tp_buf *out);

static void tick(ev *E, const tp_node *x) {
    if (++E->steps > E->max_steps) FAIL(E, x, "template runs too long (more than %ld steps)", E->max_steps);
}

static scope *new_scope(ev *E, scope *parent) {
    scope *s = tp_alloc(E->c, sizeof *s);
    s->parent = parent;
    s->vars = tv_obj(E->c, V_OBJECT);
    return s;
}

static tv *lookup(scope *env, tstr name) {
    for (scope *s = env; s; s = s->parent) {
        tv *v = tv_obj_get(s->vars, name);
        if (v) return v;
    }
    return TV_UNDEF;
}

static tv *fn_value(ev *E, int kind, int method, tv *self, const tp_node *macro) {
    tv *f = tv_obj(E->c, V_FUNC);
    f->u.fn.kind = kind;
    f->u.fn.method = method;
    f->u.fn.self = self;
    f->u.fn.macro = macro;
    return f;
}

/* ---------------- calls ---------------- */

static tv *call_macro(ev *E, const tp_node *x, const tp_node *m, tv **args, int n, scope *caller) {
    if (++E->depth > 100) FAIL(E, x, "macros recurse too deeply");
    scope *ms = new_scope(E, caller);
    int np = tp_npositional(args, n);
    tv *kw = np < n ? args[n - 1] : NULL;
    int used_kw = 0;
    const tp_node *pending[64];
    int npend = 0;
    for (int i = 0; i < m->l1.n; i++) {
        const tp_node *p = m->l1.v[i];
        tv *v = i < np ? args[i] : NULL;
        if (!v && kw && (v = tv_obj_get(kw, p->s))) used_kw++;
        if (!v && p->kind == N_KWARG) {
            if (npend < 64) pending[npend++] = p;
            else FAIL(E, x, "too many macro parameters");
        }
        tv_obj_set(E->c, ms->vars, p->s, v ? v : TV_UNDEF);
    }
    if (kw && (size_t)used_kw < kw->u.obj.n) {
        for (size_t i = 0; i < kw->u.obj.n; i++) {
            int found = 0;
            for (int j = 0; j < m->l1.n; j++)
                if (m->l1.v[j]->s.n == kw->u.obj.k[i].n && !memcmp(m->l1.v[j]->s.s, kw->u.obj.k[i].s, kw->u.obj.k[i].n)) found = 1;
            if (!found)
                FAIL(E, x, "macro '%.*s' takes no keyword argument '%.*s'", (int)m->s.n, m->s.s,
                     (int)kw->u.obj.k[i].n, kw->u.obj.k[i].s);
        }
    }
    if (np > m->l1.n) FAIL(E, x, "macro '%.*s' takes not more than %d argument(s)", (int)m->s.n, m->s.s, m->l1.n);
    for (int i = 0; i < npend; i++) tv_obj_set(E->c, ms->vars, pending[i]->s, eval(E, pending[i]->a, ms));
    tp_buf b = {0};
    tp_buf_put(E->c, &b, "", 0);
    exec_list(E, m->l2, ms, &b);
    if (E->ctl) FAIL(E, x, "break or continue outside a loop");
    E->depth--;
    return tv_str_ref(E->c, (tstr){b.p, b.n});
}

static argv_t eval_args(ev *E, tp_list l, scope *env) {
    argv_t a = {tp_alloc(E->c, sizeof(tv *) * (size_t)(l.n + 1)), 0};
    tv *kw = NULL;
    for (int i = 0; i < l.n; i++)
        if (l.v[i]->kind != N_KWARG) a.v[a.n++] = eval(E, l.v[i], env);
    for (int i = 0; i < l.n; i++)
        if (l.v[i]->kind == N_KWARG) {
            if (!kw) kw = tv_obj(E->c, V_KWARGS);
            if (tv_obj_get(kw, l.v[i]->s))
                FAIL(E, l.v[i], "got multiple values for keyword argument '%.*s'", (int)l.v[i]->s.n, l.v[i]->s.s);
            tv_obj_set(E->c, kw, l.v[i]->s, eval(E, l.v[i]->a, env));
        }
    if (kw) a.v[a.n++] = kw;
    return a;
}

/* ---------------- expressions ---------------- */

static tv *member(ev *E, const tp_node *x, tv *obj, tv *prop) {
    tv *r = NULL;
    if (obj->t == V_OBJECT || obj->t == V_KWARGS || obj->t == V_NS) {
        if (prop->t != V_STR) FAIL(E, x, "cannot access property with non-string: got %s", tv_type_name(prop));
        r = tv_obj_get(obj, prop->u.str);
        if (!r && obj->t != V_NS) {
            int m = tp_find_name(tp_obj_methods, prop->u.str);
            if (m >= 0) r = fn_value(E, FN_OBJMETHOD, m, obj, NULL);
        }
    } else if (obj->t == V_ARRAY || obj->t == V_TUPLE || obj->t == V_STR) {
        if (prop->t == V_INT) {
            double i = prop->u.num;
            if (obj->t == V_STR) {
                size_t *o;
                size_t n = tp_cp_offsets(E, obj->u.str, &o);
                if (i < 0) i += (double)n;
                if (i >= 0 && i < (double)n) {
                    size_t k = (size_t)i;
                    r = tv_str_ref(E->c, (tstr){obj->u.str.s + o[k], o[k + 1] - o[k]});
                }
            } else {
                double n = (double)obj->u.arr.n;
                if (i < 0) i += n;
                if (i >= 0 && i < n) r = obj->u.arr.v[(size_t)i];
            }
        } else if (prop->t == V_STR) {
            if (tstr_eq(prop->u.str, "length"))
                r = tv_num(E->c, V_INT, obj->t == V_STR ? (double)tp_utf16_len(obj->u.str) : (double)obj->u.arr.n);
            else if (obj->t == V_STR) {
                int m = tp_find_name(tp_str_methods, prop->u.str);
                if (m >= 0) r = fn_value(E, FN_STRMETHOD, m, obj, NULL);
            }
        } else FAIL(E, x, "cannot access property with non-string/non-number: got %s", tv_type_name(prop));
    } else {
        if (prop->t != V_STR) FAIL(E, x, "cannot access property with non-string: got %s", tv_type_name(prop));
    }
    return r ? r : TV_UNDEF;
}

static double slice_arg(ev *E, const tp_node *x, const tp_node *n, scope *env, int *given, const char *what) {
    *given = 0;
    if (!n) return 0;
    tv *v = eval(E, n, env);
    if (v->t == V_UNDEF) return 0;
    if (v->t != V_INT) FAIL(E, x, "slice %s must be numeric or undefined", what);
    *given = 1;
    return v->u.num;
}

static tv *slice(ev *E, const tp_node *x, tv *obj, scope *env) {
    if (!(obj->t == V_ARRAY || obj->t == V_TUPLE || obj->t == V_STR)) FAIL(E, x, "slice object must be an array or string");
    int hs, he, hp;
    double start = slice_arg(E, x, x->b->a, env, &hs, "start");
    double stop = slice_arg(E, x, x->b->b, env, &he, "stop");
    double step = slice_arg(E, x, x->b->c, env, &hp, "step");
    if (!hp) step = 1;
    size_t *o = NULL;
    double len = obj->t == V_STR ? (double)tp_cp_offsets(E, obj->u.str, &o) : (double)obj->u.arr.n;
    int dir = step > 0 ? 1 : step < 0 ? -1 : 0;
    if (dir >= 0) {
        if (!hs) start = 0;
        start = start < 0 ? fmax(len + start, 0) : fmin(start, len);
        if (!he) stop = len;
        stop = stop < 0 ? fmax(len + stop, 0) : fmin(stop, len);
    } else {
        if (!hs) start = len - 1;
        start = start < 0 ? fmax(len + start, -1) : fmin(start, len - 1);
        if (!he) stop = -1;
        stop = stop < -1 ? fmax(len + stop, -1) : fmin(stop, len - 1);
    }
    tvvec r = {0};
    tp_buf b = {0};
    tp_buf_put(E->c, &b, "", 0);
    if (dir != 0)
        for (double i = start; dir * i < dir * stop; i += step) {
            size_t k = (size_t)i;
            if (obj->t == V_STR) tp_buf_put(E->c, &b, obj->u.str.s + o[k], o[k + 1] - o[k]);
            else tp_tvpush(E, &r, obj->u.arr.v[k]);
        }
    if (obj->t == V_STR) return tv_str_ref(E->c, (tstr){b.p, b.n});
    return tp_tvvec_array(E, &r);
}

static tv *concat_str(ev *E, tv *a, tv *b) {
    tp_buf o = {0};
    tp_buf_put(E->c, &o, "", 0);
    tv_raw_string(E->c, &o, a);
    tv_raw_string(E->c, &o, b);
    return tv_str_ref(E->c, (tstr){o.p, o.n});
}

/* Python's divmod for b != 0 (CPython's float_divmod): the remainder has
 * b's sign, the quotient is rounded toward minus infinity, and
 * q * b + r == a — -7 % 3 is 2 and -7 // 2 is -4, where C's fmod gives -1 */
static void py_divmod(double a, double b, double *q, double *r) {
    double m = fmod(a, b), d = (a - m) / b;
    if (m != 0 && (b < 0) != (m < 0)) {
        m += b;
        d -= 1.0;
    } else if (m == 0) m = copysign(0.0, b);
    double f = floor(d);
    if (d != 0 && d - f > 0.5) f += 1.0;
    *q = d != 0 ? f : copysign(0.0, a / b);
    *r = m;
}

static tv *binary(ev *E, const tp_node *x, scope *env) {
    tstr op = x->s;
    tv *l = eval(E, x->a, env);
    if (tstr_eq(op, "and")) return tv_truthy(l) ? eval(E, x->b, env) : l;
    if (tstr_eq(op, "or")) return tv_truthy(l) ? l : eval(E, x->b, env);
    tv *r = eval(E, x->b, env);
    if (tstr_eq(op, "==")) return TV_BOOL(tp_loose_eq(l, r));
    if (tstr_eq(op, "!=")) return TV_BOOL(!tp_loose_eq(l, r));
    int is_in = tstr_eq(op, "in"), not_in = tstr_eq(op, "not in");
    if (l->t == V_UNDEF || r->t == V_UNDEF) {
        if (r->t == V_UNDEF && (is_in || not_in)) return TV_BOOL(not_in);
        FAIL(E, x, "cannot perform operation %.*s on undefined values", (int)op.n, op.s);
    }
    if (l->t == V_NULL || r->t == V_NULL) FAIL(E, x, "cannot perform operation on null values");
    if (tstr_eq(op, "~")) return concat_str(E, l, r);
    if (tstr_eq(op, "**") && tp_is_numlike(l) && tp_is_numlike(r)) {
        double a = tp_js_to_number(l), b = tp_js_to_number(r);
        if (a == 0 && b < 0) FAIL(E, x, "0.0 cannot be raised to a negative power");
        double res = pow(a, b);
        if (!isfinite(res)) FAIL(E, x, "exponentiation result is not a finite real number");
        return tv_num(E->c, l->t == V_FLOAT || r->t == V_FLOAT || b < 0 ? V_FLOAT : V_INT, res);
    }
    if ((l->t == V_INT || l->t == V_FLOAT) && (r->t == V_INT || r->t == V_FLOAT)) {
        double a = l->u.num, b = r->u.num;
        tv_type ft = l->t == V_FLOAT || r->t == V_FLOAT ? V_FLOAT : V_INT;
        if (tstr_eq(op, "+")) return tv_num(E->c, ft, a + b);
        if (tstr_eq(op, "-")) return tv_num(E->c, ft, a - b);
        if (tstr_eq(op, "*")) return tv_num(E->c, ft, a * b);
        int div = tstr_eq(op, "/"), floordiv = tstr_eq(op, "//"), mod = tstr_eq(op, "%");
        /* Jinja2 (Python) raises ZeroDivisionError; its messages */
        if ((div || floordiv || mod) && b == 0)
            FAIL(E, x, "%s", div ? (ft == V_FLOAT ? "float division by zero" : "division by zero")
                             : ft == V_FLOAT ? (mod ? "float modulo" : "float floor division by zero")
                                             : "integer division or modulo by zero");
        if (div) return tv_num(E->c, V_FLOAT, a / b);
        if (floordiv || mod) {
            double q, r;
            py_divmod(a, b, &q, &r);
            return tv_num(E->c, ft, floordiv ? q : r);
        }
        if (tstr_eq(op, "<")) return TV_BOOL(a < b);
        if (tstr_eq(op, ">")) return TV_BOOL(a > b);
        if (tstr_eq(op, ">=")) return TV_BOOL(a >= b);
        if (tstr_eq(op, "<=")) return TV_BOOL(a <= b);
    } else if ((l->t == V_ARRAY || l->t == V_TUPLE) && (r->t == V_ARRAY || r->t == V_TUPLE)) {
        if (tstr_eq(op, "+")) {
            tv *c = tv_arr(E->c, V_ARRAY, l->u.arr.n + r->u.arr.n);
            if (l->u.arr.n) memcpy(c->u.arr.v, l->u.arr.v, sizeof(tv *) * l->u.arr.n);
            if (r->u.arr.n) memcpy(c->u.arr.v + l->u.arr.n, r->u.arr.v, sizeof(tv *) * r->u.arr.n);
            return c;
        }
    } else if (r->t == V_ARRAY || r->t == V_TUPLE) {
        if (is_in || not_in) {
            int found = 0;
            for (size_t i = 0; i < r->u.arr.n && !found; i++) found = tp_strict_eq(r->u.arr.v[i], l);
            return TV_BOOL(is_in ? found : !found);
        }
    }
    if (l->t == V_STR || r->t == V_STR) {
        if (tstr_eq(op, "+")) return concat_str(E, l, r);
    }
    if (l->t == V_STR && r->t == V_STR && (is_in || not_in)) {
        int found = tp_find_sub(r->u.str, l->u.str, 0) != NULL;
        return TV_BOOL(is_in ? found : !found);
    }
    if (l->t == V_STR && (r->t == V_OBJECT || r->t == V_KWARGS) && (is_in || not_in)) {
        int found = tv_obj_get(r, l->u.str) != NULL;
        return TV_BOOL(is_in ? found : !found);
    }
    FAIL(E, x, "unknown operator \"%.*s\" between %s and %s", (int)op.n, op.s, tv_type_name(l), tv_type_name(r));
}

static tv *eval(ev *E, const tp_node *x, scope *env) {
    tick(E, x);
    if (++E->depth > 400) FAIL(E, x, "template nests too deeply");
    tv *r;
    switch (x->kind) {
    case N_STR: r = tv_str_ref(E->c, x->s); break;
    case N_INT: r = tv_num(E->c, V_INT, x->num); break;
    case N_FLOAT: r = tv_num(E->c, V_FLOAT, x->num); break;
    case N_ARRAY: case N_TUPLE:
        r = tv_arr(E->c, x->kind == N_ARRAY ? V_ARRAY : V_TUPLE, (size_t)x->l1.n);
        for (int i = 0; i < x->l1.n; i++) r->u.arr.v[i] = eval(E, x->l1.v[i], env);
        break;
    case N_OBJECT:
        r = tv_obj(E->c, V_OBJECT);
        for (int i = 0; i < x->l1.n; i++) {
            tv *k = eval(E, x->l1.v[i], env);
            if (k->t != V_STR) FAIL(E, x->l1.v[i], "object keys must be strings: got %s", tv_type_name(k));
            tv_obj_set(E->c, r, k->u.str, eval(E, x->l2.v[i], env));
        }
        break;
    case N_IDENT: r = lookup(env, x->s); break;
    case N_MEMBER: {
        tv *obj = eval(E, x->a, env);
        if (x->flag && x->b->kind == N_SLICE) { r = slice(E, x, obj, env); break; }
        tv *prop = x->flag ? eval(E, x->b, env)
                 : x->b->kind == N_INT ? tv_num(E->c, V_INT, x->b->num) : tv_str_ref(E->c, x->b->s);
        r = member(E, x, obj, prop);
        break;
    }
    case N_CALL: {
        argv_t a = eval_args(E, x->l1, env);
        tv *f = eval(E, x->a, env);
        if (f->t != V_FUNC) FAIL(E, x, "cannot call something that is not a function: got %s", tv_type_name(f));
        r = tp_call_fn(E, x, f, a.v, a.n, env);
        break;
    }
    case N_UNARY: {
        tv *a = eval(E, x->a, env);
        if (tstr_eq(x->s, "not")) { r = TV_BOOL(!tv_truthy(a)); break; }
        if (!tp_is_numlike(a)) FAIL(E, x, "unknown operator \"%.*s\" for %s", (int)x->s.n, x->s.s, tv_type_name(a));
        double v = tp_js_to_number(a);
        r = tv_num(E->c, a->t == V_FLOAT ? V_FLOAT : V_INT, tstr_eq(x->s, "-") ? -v : v);
        break;
    }
    case N_BINARY: r = binary(E, x, env); break;
    case N_FILTER: r = tp_apply_filter(E, eval(E, x->a, env), x->b, env); break;
    case N_TEST: {
        int t = tp_test_value(E, x, x->s, eval(E, x->a, env));
        r = TV_BOOL(x->flag ? !t : t);
        break;
    }
    case N_SELECT: r = tv_truthy(eval(E, x->b, env)) ? eval(E, x->a, env) : TV_UNDEF; break;
    case N_TERNARY: r = tv_truthy(eval(E, x->a, env)) ? eval(E, x->b, env) : eval(E, x->c, env); break;
    default: FAIL(E, x, "unexpected syntax in an expression");
    }
    E->depth--;
    return r;
}

/* ---------------- statements ---------------- */

static void assign(ev *E, const tp_node *target, tv *v, scope *env, const tp_node *at) {
    if (target->kind == N_IDENT) { tv_obj_set(E->c, env->vars, target->s, v); return; }
    if (target->kind == N_TUPLE) {
        if (!(v->t == V_ARRAY || v->t == V_TUPLE)) FAIL(E, at, "cannot unpack non-iterable type in set: %s", tv_type_name(v));
        if ((size_t)target->l1.n != v->u.arr.n)
            FAIL(E, at, "too %s items to unpack in set", (size_t)target->l1.n > v->u.arr.n ? "few" : "many");
        for (int i = 0; i < target->l1.n; i++) {
            if (target->l1.v[i]->kind != N_IDENT) FAIL(E, at, "cannot unpack to non-identifier in set");
            tv_obj_set(E->c, env->vars, target->l1.v[i]->s, v->u.arr.v[i]);
        }
        return;
    }
    if (target->kind == N_MEMBER) {
        tv *obj = eval(E, target->a, env);
        if (obj->t != V_NS) FAIL(E, at, "cannot assign attribute on non-namespace object");
        if (target->b->kind != N_IDENT || target->flag) FAIL(E, at, "cannot assign to member with non-identifier property");
        tv_obj_set(E->c, obj, target->b->s, v);
        return;
    }
    FAIL(E, at, "invalid left-hand side in assignment");
}

static void exec(ev *E, const tp_node *x, scope *env, tp_buf *out);

static void exec_list(ev *E, tp_list l, scope *env, tp_buf *out) {
    for (int i = 0; i < l.n && !E->ctl; i++) exec(E, l.v[i], env, out);
}

static void exec_for(ev *E, const tp_node *x, scope *env, tp_buf *out) {
    scope *sc = new_scope(E, env);
    const tp_node *it = x->b, *test = NULL;
    if (it->kind == N_SELECT) { test = it->b; it = it->a; }
    tv *iter = eval(E, it, sc);
    if (iter->t == V_OBJECT || iter->t == V_KWARGS) iter = tp_obj_items(E, iter, 1);
    else if (!(iter->t == V_ARRAY || iter->t == V_TUPLE))
        FAIL(E, x, "expected iterable or object type in for loop: got %s", tv_type_name(iter));
    const tp_node *lv = x->a;
    for (size_t i = 0; i < iter->u.arr.n; i++) {
        tv *c = iter->u.arr.v[i];
        if (lv->kind == N_TUPLE) {
            if (c->t != V_ARRAY) FAIL(E, x, "cannot unpack non-iterable type: %s", tv_type_name(c));
            if ((size_t)lv->l1.n != c->u.arr.n)
                FAIL(E, x, "too %s items to unpack", (size_t)lv->l1.n > c->u.arr.n ? "few" : "many");
            for (int j = 0; j < lv->l1.n; j++)
                if (lv->l1.v[j]->kind != N_IDENT) FAIL(E, x, "cannot unpack non-identifier type");
        }
    }
    /* the filtered items first (the reference tests each in a scope of its own) */
    tvvec items = {0};
    for (size_t i = 0; i < iter->u.arr.n; i++) {
        tv *c = iter->u.arr.v[i];
        if (test) {
            scope *ls = new_scope(E, sc);
            assign(E, lv, c, ls, x);
            if (!tv_truthy(eval(E, test, ls))) continue;
        }
        tp_tvpush(E, &items, c);
    }
    int none = 1;
    size_t n = items.n;
    for (size_t i = 0; i < n; i++) {
        tv *loop = tv_obj(E->c, V_OBJECT);
        tv_obj_set(E->c, loop, (tstr){"index", 5}, tv_num(E->c, V_INT, (double)(i + 1)));
        tv_obj_set(E->c, loop, (tstr){"index0", 6}, tv_num(E->c, V_INT, (double)i));
        tv_obj_set(E->c, loop, (tstr){"revindex", 8}, tv_num(E->c, V_INT, (double)(n - i)));
        tv_obj_set(E->c, loop, (tstr){"revindex0", 9}, tv_num(E->c, V_INT, (double)(n - i - 1)));
        tv_obj_set(E->c, loop, (tstr){"first", 5}, TV_BOOL(i == 0));
        tv_obj_set(E->c, loop, (tstr){"last", 4}, TV_BOOL(i == n - 1));
        tv_obj_set(E->c, loop, (tstr){"length", 6}, tv_num(E->c, V_INT, (double)n));
        tv_obj_set(E->c, loop, (tstr){"previtem", 8}, i > 0 ? items.v[i - 1] : TV_UNDEF);
        tv_obj_set(E->c, loop, (tstr){"nextitem", 8}, i + 1 < n ? items.v[i + 1] : TV_UNDEF);
        tv_obj_set(E->c, sc->vars, (tstr){"loop", 4}, loop);
        assign(E, lv, items.v[i], sc, x);
        size_t mark = out->n;
        int nmarks = E->marks ? E->marks->n : 0;
        exec_list(E, x->l1, sc, out);
        if (E->ctl) {
            /* an iteration left by break/continue contributes nothing */
            out->n = mark;
            if (out->p) out->p[mark] = 0;
            if (out == E->top && E->marks) E->marks->n = nmarks;
            int brk = E->ctl == 1;
            E->ctl = 0;
            if (brk) break;
            continue;
        }
        none = 0;
    }
    if (none) exec_list(E, x->l2, sc, out);
}

static void exec(ev *E, const tp_node *x, scope *env, tp_buf *out) {
    tick(E, x);
    if (++E->depth > 400) FAIL(E, x, "template nests too deeply");
    switch (x->kind) {
    case N_STR: tp_buf_put(E->c, out, x->s.s, x->s.n); break;
    case N_COMMENT: break;
    case N_IF: exec_list(E, tv_truthy(eval(E, x->a, env)) ? x->l1 : x->l2, env, out); break;
    case N_FOR: exec_for(E, x, env, out); break;
    case N_SET: {
        tv *v;
        if (x->b) v = eval(E, x->b, env);
        else {
            tp_buf b = {0};
            tp_buf_put(E->c, &b, "", 0);
            exec_list(E, x->l1, env, &b);
            if (E->ctl) break;
            v = tv_str_ref(E->c, (tstr){b.p, b.n});
        }
        assign(E, x->a, v, env, x);
        break;
    }
    case N_MACRO: tv_obj_set(E->c, env->vars, x->s, fn_value(E, FN_MACRO, 0, NULL, x)); break;
    case N_GEN:
        if (out == E->top && E->marks) {
            tp_marks *m = E->marks;
            if (m->n == m->cap) {
                int cap = m->cap ? m->cap * 2 : 16;
                size_t *no = tp_alloc(E->c, sizeof *no * (size_t)cap);
                int *nk = tp_alloc(E->c, sizeof *nk * (size_t)cap);
                if (m->n) { memcpy(no, m->off, sizeof *no * (size_t)m->n); memcpy(nk, m->kind, sizeof *nk * (size_t)m->n); }
                m->off = no;
                m->kind = nk;
                m->cap = cap;
            }
            m->off[m->n] = out->n;
            m->kind[m->n++] = x->flag;
        }
        break;
    case N_BREAK: E->ctl = 1; break;
    case N_CONTINUE: E->ctl = 2; break;
    case N_FILTERBLOCK: {
        tp_buf b = {0};
        tp_buf_put(E->c, &b, "", 0);
        exec_list(E, x->l1, env, &b);
        if (E->ctl) break;
        tv_to_output(E->c, out, tp_apply_filter(E, tv_str_ref(E->c, (tstr){b.p, b.n}), x->a, env));
        break;
    }
    default: tv_to_output(E->c, out, eval(E, x, env)); break;
    }
    if (out->n > E->max_out) FAIL(E, x, "template output exceeds %zu bytes", E->max_out);
    E->depth--;
}

void tp_eval(tp_ctx *c, const tp_node *prog, tv *globals, const tp_limits *lim, tp_buf *out, tp_marks *marks) {
    ev E = {c, 0, lim->max_steps, lim->max_out, 0, 0, NULL, out, marks, eval_args, fn_value, call_macro};
    scope *g = new_scope(&E, NULL);
    static const struct { const char *name; int kind; } fns[] = {
        {"raise_exception", FN_RAISE}, {"range", FN_RANGE}, {"namespace", FN_NAMESPACE},
        {"strftime_now", FN_STRFTIME}};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        tv_obj_set(c, g->vars, (tstr){fns[i].name, strlen(fns[i].name)}, fn_value(&E, fns[i].kind, 0, NULL, NULL));
    static const struct { const char *name; tv *v; } consts[] = {
        {"true", &tv_true_}, {"false", &tv_false_}, {"none", &tv_null_},
        {"True", &tv_true_}, {"False", &tv_false_}, {"None", &tv_null_}};
    for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
        tv_obj_set(c, g->vars, (tstr){consts[i].name, strlen(consts[i].name)}, consts[i].v);
    for (size_t i = 0; i < globals->u.obj.n; i++) tv_obj_set(c, g->vars, globals->u.obj.k[i], globals->u.obj.v[i]);
    E.global = g;
    tp_buf_put(c, out, "", 0);
    exec_list(&E, prog->l1, g, out);
    if (E.ctl) tp_fail(c, -1, "break or continue outside a loop");
}
