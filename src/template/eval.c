/* eval.c — the template interpreter: statements write to an output buffer,
 * expressions yield values. Semantics follow the reference renderer
 * (@huggingface/jinja) rather than Python's jinja2 where the two differ,
 * because fixtures come from it: `==` is JavaScript's loose equality, `none`
 * prints "", a for loop's scope keeps variables set in its body across
 * iterations but not after it, macros see the caller's variables, and an
 * iteration left by break/continue contributes no output.
 * Hostile templates are bounded: evaluation steps, recursion depth, output
 * size and (through the arena) memory. */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wctype.h>
#include "template/tmpl.h"

enum { FN_RAISE, FN_RANGE, FN_NAMESPACE, FN_STRFTIME, FN_STRMETHOD, FN_OBJMETHOD, FN_MACRO };
static const char *const STR_METHODS[] = {"upper", "lower", "strip", "title", "capitalize", "rstrip",
                                          "lstrip", "startswith", "endswith", "split", "replace", NULL};
enum { SM_UPPER, SM_LOWER, SM_STRIP, SM_TITLE, SM_CAPITALIZE, SM_RSTRIP, SM_LSTRIP, SM_STARTSWITH,
       SM_ENDSWITH, SM_SPLIT, SM_REPLACE };
static const char *const OBJ_METHODS[] = {"get", "items", "keys", "values", "dictsort", NULL};
enum { OM_GET, OM_ITEMS, OM_KEYS, OM_VALUES, OM_DICTSORT };

typedef struct scope scope;
struct scope {
    scope *parent;
    tv *vars;
};

typedef struct {
    tp_ctx *c;
    long steps, max_steps;
    size_t max_out;
    int depth;
    int ctl;        /* 1 break, 2 continue pending */
    scope *global;
    tp_buf *top;    /* the rendering's own output (generation marks refer to it) */
    tp_marks *marks;
} ev;

static tv *eval(ev *E, const tp_node *x, scope *env);
static void exec_list(ev *E, tp_list l, scope *env, tp_buf *out);

#define FAIL(E, x, ...) tp_fail((E)->c, (x) ? (x)->pos : -1, __VA_ARGS__)

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

static int find_name(const char *const *names, tstr s) {
    for (int i = 0; names[i]; i++)
        if (tstr_eq(s, names[i])) return i;
    return -1;
}

static tstr raw_str(ev *E, const tv *v) {
    tp_buf b = {0};
    tp_buf_put(E->c, &b, "", 0);
    tv_raw_string(E->c, &b, v);
    return (tstr){b.p, b.n};
}

/* ---------------- text helpers (JS string semantics) ---------------- */

static size_t utf16_len(tstr s) {
    size_t n = 0;
    for (size_t i = 0; i < s.n;) {
        uint32_t cp;
        i += (size_t)tp_utf8_dec(s.s + i, s.n - i, &cp);
        n += cp >= 0x10000 ? 2 : 1;
    }
    return n;
}

/* code point offsets: returns count and fills offs (count+1 entries) */
static size_t cp_offsets(ev *E, tstr s, size_t **offs) {
    size_t *o = tp_alloc(E->c, sizeof *o * (s.n + 1));
    size_t k = 0;
    for (size_t i = 0; i < s.n;) {
        o[k++] = i;
        uint32_t cp;
        i += (size_t)tp_utf8_dec(s.s + i, s.n - i, &cp);
    }
    o[k] = s.n;
    *offs = o;
    return k;
}

static uint32_t case_map(ev *E, uint32_t cp, int upper) {
    if (cp < 0x80) {
        if (upper && cp >= 'a' && cp <= 'z') return cp - 32;
        if (!upper && cp >= 'A' && cp <= 'Z') return cp + 32;
        return cp;
    }
    if (!E->c->locale) {
        locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
        if (!l) return cp;
        E->c->locale = (void *)l;
    }
    locale_t l = (locale_t)E->c->locale;
    return (uint32_t)(upper ? towupper_l((wint_t)cp, l) : towlower_l((wint_t)cp, l));
}

static tv *str_case(ev *E, tstr s, int upper, int first_only) {
    tp_buf b = {0};
    tp_buf_put(E->c, &b, "", 0);
    for (size_t i = 0; i < s.n;) {
        uint32_t cp;
        int k = tp_utf8_dec(s.s + i, s.n - i, &cp);
        const char *special = NULL;
        if (!first_only || i == 0) {
            /* the full (one-to-many) mappings JS applies and towupper cannot */
            if (upper) {
                switch (cp) {
                case 0xDF: special = "SS"; break;
                case 0xFB00: special = "FF"; break;
                case 0xFB01: special = "FI"; break;
                case 0xFB02: special = "FL"; break;
                case 0xFB03: special = "FFI"; break;
                case 0xFB04: special = "FFL"; break;
                case 0xFB05: case 0xFB06: special = "ST"; break;
                case 0x149: special = "\xCA\xBCN"; break;
                }
            } else if (cp == 0x130) special = "i\xCC\x87";
        }
        if (special) tp_buf_puts(E->c, &b, special);
        else if (!first_only || i == 0) {
            char u[4];
            tp_buf_put(E->c, &b, u, (size_t)tp_utf8_enc(case_map(E, cp, upper), u));
        } else tp_buf_put(E->c, &b, s.s + i, (size_t)k);
        i += (size_t)k;
    }
    return tv_str_ref(E->c, (tstr){b.p, b.n});
}

static int ascii_word(int ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

/* the reference's title(): /\b\w/g upper-cased, the rest left alone */
static tv *str_title(ev *E, tstr s) {
    tstr r = tp_strdup(E->c, s.s, s.n);
    char *p = (char *)r.s;
    for (size_t i = 0; i < r.n; i++)
        if (ascii_word((unsigned char)p[i]) && (i == 0 || !ascii_word((unsigned char)p[i - 1])) &&
            p[i] >= 'a' && p[i] <= 'z')
            p[i] = (char)(p[i] - 32);
    return tv_str_ref(E->c, r);
}

static tv *str_trim(ev *E, tstr s, int start, int end) {
    size_t a = start ? tp_trim_start_off(s.s, s.n) : 0;
    size_t b = end ? tp_trim_end_len(s.s, s.n) : s.n;
    if (b < a) b = a;
    return tv_str_ref(E->c, (tstr){s.s + a, b - a});
}

static int has_prefix(tstr s, tstr p) { return p.n <= s.n && !memcmp(s.s, p.s, p.n); }
static int has_suffix(tstr s, tstr p) { return p.n <= s.n && !memcmp(s.s + s.n - p.n, p.s, p.n); }

static const char *find_sub(tstr h, tstr nd, size_t from) {
    if (nd.n == 0) return h.s + from;
    if (nd.n > h.n) return NULL;
    for (size_t i = from; i + nd.n <= h.n; i++)
        if (!memcmp(h.s + i, nd.s, nd.n)) return h.s + i;
    return NULL;
}

typedef struct { tv **v; size_t n, cap; } tvvec;
static void tvpush(ev *E, tvvec *a, tv *x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        tv **nv = tp_alloc(E->c, sizeof *nv * cap);
        if (a->n) memcpy(nv, a->v, sizeof *nv * a->n);
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n++] = x;
}
static tv *tvvec_array(ev *E, tvvec *a) {
    tv *r = tv_arr(E->c, V_ARRAY, a->n);
    if (a->n) memcpy(r->u.arr.v, a->v, sizeof(tv *) * a->n);
    return r;
}

static tv *str_split(ev *E, const tp_node *x, tstr s, tv *sep, tv *maxsplit) {
    if (!(sep->t == V_STR || sep->t == V_NULL)) FAIL(E, x, "sep argument must be a string or null");
    if (maxsplit->t != V_INT) FAIL(E, x, "maxsplit argument must be a number");
    double ms = maxsplit->u.num;
    tvvec r = {0};
    if (sep->t == V_NULL) {
        size_t st = tp_trim_start_off(s.s, s.n);
        tstr t = {s.s + st, s.n - st};
        size_t i = 0, k;
        while (i < t.n) {
            while (i < t.n && (k = tp_js_space_at(t.s + i, t.n - i))) i += k;
            if (i >= t.n) break;
            size_t b = i;
            while (i < t.n && !tp_js_space_at(t.s + i, t.n - i)) {
                uint32_t cp;
                i += (size_t)tp_utf8_dec(t.s + i, t.n - i, &cp);
            }
            if (ms != -1 && (double)r.n >= ms) {
                tvpush(E, &r, tv_str_ref(E->c, (tstr){t.s + b, t.n - b}));
                break;
            }
            tvpush(E, &r, tv_str_ref(E->c, (tstr){t.s + b, i - b}));
        }
    } else {
        tstr d = sep->u.str;
        if (d.n == 0) FAIL(E, x, "empty separator");
        size_t i = 0;
        for (;;) {
            const char *f = find_sub(s, d, i);
            if (!f || (ms != -1 && (double)r.n >= ms)) {
                tvpush(E, &r, tv_str_ref(E->c, (tstr){s.s + i, s.n - i}));
                break;
            }
            tvpush(E, &r, tv_str_ref(E->c, (tstr){s.s + i, (size_t)(f - s.s) - i}));
            i = (size_t)(f - s.s) + d.n;
        }
    }
    return tvvec_array(E, &r);
}

static tv *str_replace(ev *E, const tp_node *x, tstr s, tv **args, int n) {
    if (n < 2) FAIL(E, x, "replace() requires at least two arguments");
    if (args[0]->t != V_STR || args[1]->t != V_STR) FAIL(E, x, "replace() arguments must be strings");
    tv *count = TV_NULL;
    if (n > 2) {
        if (args[2]->t == V_KWARGS) {
            tv *k = tv_obj_get(args[2], (tstr){"count", 5});
            count = k ? k : TV_NULL;
        } else count = args[2];
    }
    if (!(count->t == V_INT || count->t == V_NULL)) FAIL(E, x, "replace() count argument must be a number or null");
    double remaining = count->t == V_NULL || count->u.num < 0 ? INFINITY : count->u.num;
    tstr o = args[0]->u.str, nw = args[1]->u.str;
    if (count->t == V_INT && count->u.num == 0) return tv_str_ref(E->c, s);
    tp_buf b = {0};
    tp_buf_put(E->c, &b, "", 0);
    if (o.n == 0) { /* a match before every code point and at the end */
        size_t i = 0;
        for (;;) {
            if (remaining > 0) { tp_buf_put(E->c, &b, nw.s, nw.n); remaining--; }
            if (i >= s.n) break;
            uint32_t cp;
            int k = tp_utf8_dec(s.s + i, s.n - i, &cp);
            tp_buf_put(E->c, &b, s.s + i, (size_t)k);
            i += (size_t)k;
        }
    } else {
        size_t i = 0;
        while (i <= s.n) {
            const char *f = remaining > 0 ? find_sub(s, o, i) : NULL;
            if (!f) { tp_buf_put(E->c, &b, s.s + i, s.n - i); break; }
            tp_buf_put(E->c, &b, s.s + i, (size_t)(f - s.s) - i);
            tp_buf_put(E->c, &b, nw.s, nw.n);
            remaining--;
            i = (size_t)(f - s.s) + o.n;
        }
    }
    return tv_str_ref(E->c, (tstr){b.p, b.n});
}

/* ---------------- comparisons ---------------- */

static double js_to_number(const tv *v) {
    switch (v->t) {
    case V_BOOL: return v->u.b;
    case V_INT: case V_FLOAT: return v->u.num;
    case V_NULL: return 0;
    case V_STR: {
        char buf[128];
        tstr s = v->u.str;
        size_t a = tp_trim_start_off(s.s, s.n), b = tp_trim_end_len(s.s, s.n);
        if (b <= a) return 0;
        if (b - a >= sizeof buf) return NAN;
        memcpy(buf, s.s + a, b - a);
        buf[b - a] = 0;
        if (!strcmp(buf, "Infinity") || !strcmp(buf, "+Infinity")) return INFINITY;
        if (!strcmp(buf, "-Infinity")) return -INFINITY;
        for (char *p = buf; *p; p++)
            if (*p == 'n' || *p == 'N' || *p == 'i' || *p == 'I' || *p == 'p' || *p == 'P') return NAN;
        char *end;
        double x = strtod(buf, &end);
        return *end ? NAN : x;
    }
    default: return NAN;
    }
}

static int is_numlike(const tv *v) { return v->t == V_INT || v->t == V_FLOAT || v->t == V_BOOL; }
static int is_primitive(const tv *v) { return v->t <= V_STR; }

/* JavaScript `a.value == b.value` */
static int loose_eq(const tv *a, const tv *b) {
    int an = a->t == V_UNDEF || a->t == V_NULL, bn = b->t == V_UNDEF || b->t == V_NULL;
    if (an || bn) return an && bn;
    if (a->t == V_STR && b->t == V_STR)
        return a->u.str.n == b->u.str.n && !memcmp(a->u.str.s, b->u.str.s, a->u.str.n);
    if (is_primitive(a) && is_primitive(b)) return js_to_number(a) == js_to_number(b);
    if (!is_primitive(a) && !is_primitive(b)) return a == b;
    /* an object against a primitive: JS would compare the object's string
     * form ([1,2] == "1,2"); no chat template relies on that, so unequal */
    return 0;
}

/* JavaScript `a.value === b.value` */
static int strict_eq(const tv *a, const tv *b) {
    int ana = a->t == V_INT || a->t == V_FLOAT, bna = b->t == V_INT || b->t == V_FLOAT;
    if (ana && bna) return a->u.num == b->u.num;
    if (a->t != b->t) return 0;
    switch (a->t) {
    case V_UNDEF: case V_NULL: return 1;
    case V_BOOL: return a->u.b == b->u.b;
    case V_STR: return a->u.str.n == b->u.str.n && !memcmp(a->u.str.s, b->u.str.s, a->u.str.n);
    default: return a == b;
    }
}

static int str_cmp(tstr a, tstr b) {
    /* JS compares UTF-16 units; for BMP text that is code point order, which
     * is UTF-8 byte order */
    size_t n = a.n < b.n ? a.n : b.n;
    int r = memcmp(a.s, b.s, n);
    if (r) return r < 0 ? -1 : 1;
    return a.n < b.n ? -1 : a.n > b.n ? 1 : 0;
}

static int compare_values(ev *E, const tp_node *x, const tv *a, const tv *b, int case_sensitive) {
    if (a->t == V_NULL && b->t == V_NULL) return 0;
    if (a->t == V_NULL || b->t == V_NULL) FAIL(E, x, "cannot compare %s with %s", tv_type_name(a), tv_type_name(b));
    if (a->t == V_UNDEF && b->t == V_UNDEF) return 0;
    if (a->t == V_UNDEF || b->t == V_UNDEF) FAIL(E, x, "cannot compare %s with %s", tv_type_name(a), tv_type_name(b));
    if (is_numlike(a) && is_numlike(b)) {
        double p = js_to_number(a), q = js_to_number(b);
        return p < q ? -1 : p > q ? 1 : 0;
    }
    if (a->t != b->t) FAIL(E, x, "cannot compare different types: %s and %s", tv_type_name(a), tv_type_name(b));
    if (a->t == V_STR) {
        if (case_sensitive) return str_cmp(a->u.str, b->u.str);
        tv *la = str_case(E, a->u.str, 0, 0), *lb = str_case(E, b->u.str, 0, 0);
        return str_cmp(la->u.str, lb->u.str);
    }
    FAIL(E, x, "cannot compare type: %s", tv_type_name(a));
}

/* stable merge sort with a comparison that may fail (longjmp) */
typedef struct { ev *E; const tp_node *x; int cs, rev; tstr attr; int by_value; int has_attr; } sort_ctx;
static tv *sort_key(sort_ctx *S, tv *item);
static int sort_cmp(sort_ctx *S, tv *a, tv *b) {
    int r = compare_values(S->E, S->x, sort_key(S, a), sort_key(S, b), S->cs);
    return S->rev ? -r : r;
}
static void merge_sort(sort_ctx *S, tv **v, tv **tmp, size_t n) {
    if (n < 2) return;
    size_t h = n / 2;
    merge_sort(S, v, tmp, h);
    merge_sort(S, v + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = sort_cmp(S, v[j], v[i]) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, sizeof *v * n);
}

/* getAttributeValue: "a.b.0" through dicts, namespaces and lists */
static tv *attr_path(tv *item, tstr path) {
    tv *v = item;
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < path.n && path.s[j] != '.') j++;
        tstr part = {path.s + i, j - i};
        if (v->t == V_OBJECT || v->t == V_KWARGS || v->t == V_NS) {
            tv *g = tv_obj_get(v, part);
            v = g ? g : TV_UNDEF;
        } else if (v->t == V_ARRAY || v->t == V_TUPLE) {
            /* parseInt: leading digits */
            size_t k = 0;
            double idx = 0;
            while (k < part.n && part.s[k] >= '0' && part.s[k] <= '9') idx = idx * 10 + (part.s[k++] - '0');
            if (k == 0 || idx >= (double)v->u.arr.n) return TV_UNDEF;
            v = v->u.arr.v[(size_t)idx];
        } else return TV_UNDEF;
        if (j >= path.n) return v;
        i = j + 1;
    }
}

static tv *sort_key(sort_ctx *S, tv *item) {
    if (S->by_value >= 0) return item->u.arr.v[S->by_value];
    if (!S->has_attr) return item;
    return attr_path(item, S->attr);
}

static tv *sorted(ev *E, sort_ctx *S, tv *arr) {
    size_t n = arr->u.arr.n;
    tv *r = tv_arr(E->c, V_ARRAY, n);
    if (n) memcpy(r->u.arr.v, arr->u.arr.v, sizeof(tv *) * n);
    tv **tmp = tp_alloc(E->c, sizeof *tmp * (n ? n : 1));
    merge_sort(S, r->u.arr.v, tmp, n);
    return r;
}

/* ---------------- objects ---------------- */

static tv *pair(ev *E, tstr k, tv *v) {
    tv *p = tv_arr(E->c, V_ARRAY, 2);
    p->u.arr.v[0] = tv_str_ref(E->c, k);
    p->u.arr.v[1] = v;
    return p;
}

static tv *obj_items(ev *E, tv *o, int what) { /* 0 items, 1 keys, 2 values */
    tv *r = tv_arr(E->c, V_ARRAY, o->u.obj.n);
    for (size_t i = 0; i < o->u.obj.n; i++)
        r->u.arr.v[i] = what == 0 ? pair(E, o->u.obj.k[i], o->u.obj.v[i])
                       : what == 1 ? tv_str_ref(E->c, o->u.obj.k[i]) : o->u.obj.v[i];
    return r;
}

static tv *kwarg(tv **args, int n, const char *name) {
    if (n > 0 && args[n - 1]->t == V_KWARGS) {
        tv *v = tv_obj_get(args[n - 1], (tstr){name, strlen(name)});
        if (v) return v;
    }
    return NULL;
}
static int npositional(tv **args, int n) { return n > 0 && args[n - 1]->t == V_KWARGS ? n - 1 : n; }

static tv *dictsort(ev *E, const tp_node *x, tv *o, tv **args, int n) {
    int np = npositional(args, n);
    tv *cs = np > 0 ? args[0] : kwarg(args, n, "case_sensitive");
    tv *by = np > 1 ? args[1] : kwarg(args, n, "by");
    tv *rev = np > 2 ? args[2] : kwarg(args, n, "reverse");
    if (!cs) cs = TV_BOOL(0);
    if (!rev) rev = TV_BOOL(0);
    if (cs->t != V_BOOL) FAIL(E, x, "case_sensitive must be a boolean");
    if (by && by->t != V_STR) FAIL(E, x, "by must be a string");
    int by_value = 0;
    if (by) {
        if (tstr_eq(by->u.str, "value")) by_value = 1;
        else if (!tstr_eq(by->u.str, "key")) FAIL(E, x, "by must be either 'key' or 'value'");
    }
    if (rev->t != V_BOOL) FAIL(E, x, "reverse must be a boolean");
    sort_ctx S = {E, x, cs->u.b, rev->u.b, {0}, by_value, 0};
    return sorted(E, &S, obj_items(E, o, 0));
}

/* ---------------- calls ---------------- */

static tv *call_macro(ev *E, const tp_node *x, const tp_node *m, tv **args, int n, scope *caller);

static tv *call_fn(ev *E, const tp_node *x, tv *f, tv **args, int n, scope *env) {
    switch (f->u.fn.kind) {
    case FN_RAISE: {
        tstr msg = n > 0 ? raw_str(E, args[0]) : (tstr){"undefined", 9};
        tp_fail_raw(E->c, TUNA_ERR_FORMAT, "chat template raised an error: %.*s", (int)(msg.n > 400 ? 400 : msg.n), msg.s);
    }
    case FN_RANGE: {
        double st, sp, step = 1;
        for (int i = 0; i < n; i++)
            if (args[i]->t != V_INT && args[i]->t != V_FLOAT) FAIL(E, x, "range() arguments must be numbers");
        if (n < 1) FAIL(E, x, "range() needs an argument");
        if (n == 1) { st = 0; sp = args[0]->u.num; }
        else { st = args[0]->u.num; sp = args[1]->u.num; if (n > 2) step = args[2]->u.num; }
        if (step == 0) FAIL(E, x, "range() step must not be zero");
        tvvec r = {0};
        for (double i = st; step > 0 ? i < sp : i > sp; i += step) {
            if (r.n >= 1000000) FAIL(E, x, "range() too long");
            tvpush(E, &r, tv_num(E->c, i == floor(i) ? V_INT : V_FLOAT, i));
        }
        return tvvec_array(E, &r);
    }
    case FN_NAMESPACE: {
        int np = npositional(args, n);
        if (np > 1) FAIL(E, x, "namespace expected at most 1 argument, got %d", np);
        tv *ns = tv_obj(E->c, V_NS);
        if (np == 1) {
            tv *src = args[0];
            if (src->t == V_OBJECT || src->t == V_KWARGS) {
                for (size_t i = 0; i < src->u.obj.n; i++) tv_obj_set(E->c, ns, src->u.obj.k[i], src->u.obj.v[i]);
            } else if (src->t == V_ARRAY || src->t == V_TUPLE) {
                for (size_t i = 0; i < src->u.arr.n; i++) {
                    tv *p = src->u.arr.v[i];
                    if (!((p->t == V_ARRAY || p->t == V_TUPLE) && p->u.arr.n == 2))
                        FAIL(E, x, "namespace expected an object or an iterable of [key, value] pairs");
                    if (p->u.arr.v[0]->t != V_STR) FAIL(E, x, "namespace keys must be strings");
                    tv_obj_set(E->c, ns, p->u.arr.v[0]->u.str, p->u.arr.v[1]);
                }
            } else FAIL(E, x, "'%s' object is not iterable", tv_type_name(src));
        }
        if (np < n)
            for (size_t i = 0; i < args[n - 1]->u.obj.n; i++)
                tv_obj_set(E->c, ns, args[n - 1]->u.obj.k[i], args[n - 1]->u.obj.v[i]);
        return ns;
    }
    case FN_STRFTIME: {
        static const char *const mon[] = {"January", "February", "March", "April", "May", "June", "July",
                                          "August", "September", "October", "November", "December"};
        if (n < 1 || args[0]->t != V_STR) FAIL(E, x, "strftime_now() needs a format string");
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        tp_buf b = {0};
        tp_buf_put(E->c, &b, "", 0);
        tstr f = args[0]->u.str;
        for (size_t i = 0; i < f.n; i++) {
            char tmp[32] = "";
            if (f.s[i] == '%' && i + 1 < f.n && strchr("YmdbBHM%", f.s[i + 1]) && f.s[i + 1]) {
                switch (f.s[++i]) {
                case 'Y': snprintf(tmp, sizeof tmp, "%d", tmv.tm_year + 1900); break;
                case 'm': snprintf(tmp, sizeof tmp, "%02d", tmv.tm_mon + 1); break;
                case 'd': snprintf(tmp, sizeof tmp, "%02d", tmv.tm_mday); break;
                case 'b': snprintf(tmp, sizeof tmp, "%.3s", mon[tmv.tm_mon]); break;
                case 'B': snprintf(tmp, sizeof tmp, "%s", mon[tmv.tm_mon]); break;
                case 'H': snprintf(tmp, sizeof tmp, "%02d", tmv.tm_hour); break;
                case 'M': snprintf(tmp, sizeof tmp, "%02d", tmv.tm_min); break;
                default: snprintf(tmp, sizeof tmp, "%%"); break;
                }
                tp_buf_puts(E->c, &b, tmp);
            } else tp_buf_put(E->c, &b, f.s + i, 1);
        }
        return tv_str_ref(E->c, (tstr){b.p, b.n});
    }
    case FN_STRMETHOD: {
        tstr s = f->u.fn.self->u.str;
        switch (f->u.fn.method) {
        case SM_UPPER: return str_case(E, s, 1, 0);
        case SM_LOWER: return str_case(E, s, 0, 0);
        case SM_STRIP: return str_trim(E, s, 1, 1);
        case SM_TITLE: return str_title(E, s);
        case SM_CAPITALIZE: return str_case(E, s, 1, 1);
        case SM_RSTRIP: return str_trim(E, s, 0, 1);
        case SM_LSTRIP: return str_trim(E, s, 1, 0);
        case SM_STARTSWITH: case SM_ENDSWITH: {
            int sw = f->u.fn.method == SM_STARTSWITH;
            const char *nm = sw ? "startswith" : "endswith";
            if (n == 0) FAIL(E, x, "%s() requires at least one argument", nm);
            tv *p = args[0];
            if (p->t == V_STR) return TV_BOOL(sw ? has_prefix(s, p->u.str) : has_suffix(s, p->u.str));
            if (p->t == V_ARRAY || p->t == V_TUPLE) {
                for (size_t i = 0; i < p->u.arr.n; i++) {
                    tv *it = p->u.arr.v[i];
                    if (it->t != V_STR) FAIL(E, x, "%s() tuple elements must be strings", nm);
                    if (sw ? has_prefix(s, it->u.str) : has_suffix(s, it->u.str)) return TV_BOOL(1);
                }
                return TV_BOOL(0);
            }
            FAIL(E, x, "%s() argument must be a string or tuple of strings", nm);
        }
        case SM_SPLIT: {
            static tv minus1 = {.t = V_INT, .u.num = -1};
            return str_split(E, x, s, n > 0 ? args[0] : TV_NULL, n > 1 ? args[1] : &minus1);
        }
        case SM_REPLACE: return str_replace(E, x, s, args, n);
        }
        break;
    }
    case FN_OBJMETHOD: {
        tv *o = f->u.fn.self;
        switch (f->u.fn.method) {
        case OM_GET: {
            if (n < 1 || args[0]->t != V_STR)
                FAIL(E, x, "dict key must be a string: got %s", n < 1 ? "undefined" : tv_type_name(args[0]));
            tv *v = tv_obj_get(o, args[0]->u.str);
            return v ? v : n > 1 ? args[1] : TV_NULL;
        }
        case OM_ITEMS: return obj_items(E, o, 0);
        case OM_KEYS: return obj_items(E, o, 1);
        case OM_VALUES: return obj_items(E, o, 2);
        case OM_DICTSORT: return dictsort(E, x, o, args, n);
        }
        break;
    }
    case FN_MACRO:
        return call_macro(E, x, f->u.fn.macro, args, n, env);
    }
    FAIL(E, x, "internal error: bad function");
}

static tv *call_macro(ev *E, const tp_node *x, const tp_node *m, tv **args, int n, scope *caller) {
    if (++E->depth > 100) FAIL(E, x, "macros recurse too deeply");
    scope *ms = new_scope(E, caller);
    int np = npositional(args, n);
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

typedef struct { tv **v; int n; } argv_t;

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

/* ---------------- filters ---------------- */

static tv *to_json_value(ev *E, const tp_node *x, tv *v, argv_t a) {
    tp_json_opts o = {0, 0, 0, NULL, NULL};
    tv *ind = kwarg(a.v, a.n, "indent"), *asc = kwarg(a.v, a.n, "ensure_ascii");
    tv *sk = kwarg(a.v, a.n, "sort_keys"), *sep = kwarg(a.v, a.n, "separators");
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
    size_t n = cp_offsets(E, s, &o);
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

static int test_value(ev *E, const tp_node *x, tstr name, tv *v);

static tv *apply_filter(ev *E, tv *v, const tp_node *f, scope *env) {
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
                return sorted(E, &S, v);
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
                    for (size_t j = 0; j < r.n && !seen; j++) seen = strict_eq(r.v[j], v->u.arr.v[i]);
                    if (!seen) tvpush(E, &r, v->u.arr.v[i]);
                }
                return tvvec_array(E, &r);
            }
            FAIL(E, f, "unknown filter '%.*s' for a list", (int)nm.n, nm.s);
        }
        if (v->t == V_STR) {
            tstr s = v->u.str;
            if (tstr_eq(nm, "length")) return tv_num(E->c, V_INT, (double)utf16_len(s));
            if (tstr_eq(nm, "upper")) return str_case(E, s, 1, 0);
            if (tstr_eq(nm, "lower")) return str_case(E, s, 0, 0);
            if (tstr_eq(nm, "title")) return str_title(E, s);
            if (tstr_eq(nm, "capitalize")) return str_case(E, s, 1, 1);
            if (tstr_eq(nm, "trim")) return str_trim(E, s, 1, 1);
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
            if (tstr_eq(nm, "items")) return obj_items(E, v, 0);
            if (tstr_eq(nm, "length")) return tv_num(E->c, V_INT, (double)v->u.obj.n);
            int m = find_name(OBJ_METHODS, nm);
            if (m == OM_GET) FAIL(E, f, "dict key must be a string: got undefined");
            if (m == OM_KEYS) return obj_items(E, v, 1);
            if (m == OM_VALUES) return obj_items(E, v, 2);
            if (m == OM_DICTSORT) return dictsort(E, f, v, NULL, 0);
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
    if (tstr_eq(nm, "tojson")) return to_json_value(E, f, v, eval_args(E, f->l1, env));
    if (tstr_eq(nm, "join")) {
        tv *arr;
        if (v->t == V_STR) arr = str_chars(E, v->u.str);
        else if (v->t == V_ARRAY || v->t == V_TUPLE) arr = v;
        else FAIL(E, f, "cannot apply filter \"join\" to type: %s", tv_type_name(v));
        argv_t a = eval_args(E, f->l1, env);
        int np = npositional(a.v, a.n);
        tv *sep = np > 0 ? a.v[0] : kwarg(a.v, a.n, "separator");
        if (!sep) sep = tv_str(E->c, "", 0);
        if (sep->t != V_STR) FAIL(E, f, "separator must be a string");
        return join_values(E, arr, sep->u.str);
    }
    if (tstr_eq(nm, "int") || tstr_eq(nm, "float")) {
        int is_int = tstr_eq(nm, "int");
        argv_t a = eval_args(E, f->l1, env);
        int np = npositional(a.v, a.n);
        tv *def = np > 0 ? a.v[0] : kwarg(a.v, a.n, "default");
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
        argv_t a = eval_args(E, f->l1, env);
        int np = npositional(a.v, a.n);
        tv *def = np > 0 ? a.v[0] : tv_str(E->c, "", 0);
        tv *bo = np > 1 ? a.v[1] : kwarg(a.v, a.n, "boolean");
        if (!bo) bo = TV_BOOL(0);
        if (bo->t != V_BOOL) FAIL(E, f, "`default` filter flag must be a boolean");
        if (v->t == V_UNDEF || (bo->u.b && !tv_truthy(v))) return def;
        return v;
    }
    if (v->t == V_ARRAY || v->t == V_TUPLE) {
        if (tstr_eq(nm, "sort")) {
            argv_t a = eval_args(E, f->l1, env);
            int np = npositional(a.v, a.n);
            tv *rev = np > 0 ? a.v[0] : kwarg(a.v, a.n, "reverse");
            tv *cs = np > 1 ? a.v[1] : kwarg(a.v, a.n, "case_sensitive");
            tv *at = np > 2 ? a.v[2] : kwarg(a.v, a.n, "attribute");
            if (!rev) rev = TV_BOOL(0);
            if (!cs) cs = TV_BOOL(0);
            if (!at) at = TV_NULL;
            if (rev->t != V_BOOL) FAIL(E, f, "reverse must be a boolean");
            if (cs->t != V_BOOL) FAIL(E, f, "case_sensitive must be a boolean");
            if (!(at->t == V_STR || at->t == V_INT || at->t == V_NULL))
                FAIL(E, f, "attribute must be a string, integer, or null");
            sort_ctx S = {E, f, cs->u.b, rev->u.b, {0}, -1, at->t != V_NULL};
            if (at->t == V_STR) S.attr = at->u.str;
            else if (at->t == V_INT) S.attr = raw_str(E, at);
            return sorted(E, &S, v);
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
                            res = strict_eq(a, want);
                        } else res = test_value(E, f, tn, a);
                    } else res = tv_truthy(a);
                }
                if (sel ? res : !res) tvpush(E, &r, v->u.arr.v[i]);
            }
            return tvvec_array(E, &r);
        }
        if (tstr_eq(nm, "map")) {
            argv_t a = eval_args(E, f->l1, env);
            tv *at = kwarg(a.v, a.n, "attribute");
            if (!at) FAIL(E, f, "`map` expressions without `attribute` set are not currently supported.");
            if (at->t != V_STR) FAIL(E, f, "attribute must be a string");
            tv *def = kwarg(a.v, a.n, "default");
            tv *r = tv_arr(E->c, V_ARRAY, v->u.arr.n);
            for (size_t i = 0; i < v->u.arr.n; i++) {
                tv *it = v->u.arr.v[i];
                if (!(it->t == V_OBJECT || it->t == V_KWARGS || it->t == V_NS))
                    FAIL(E, f, "items in map must be an object");
                tv *val = attr_path(it, at->u.str);
                r->u.arr.v[i] = val->t == V_UNDEF ? (def ? def : TV_UNDEF) : val;
            }
            return r;
        }
        FAIL(E, f, "unknown filter '%.*s' for a list", (int)nm.n, nm.s);
    }
    if (v->t == V_STR) {
        if (tstr_eq(nm, "indent")) {
            argv_t a = eval_args(E, f->l1, env);
            int np = npositional(a.v, a.n);
            tv *w = np > 0 ? a.v[0] : kwarg(a.v, a.n, "width");
            tv *first = np > 1 ? a.v[1] : kwarg(a.v, a.n, "first");
            tv *blank = np > 2 ? a.v[2] : kwarg(a.v, a.n, "blank");
            if (w && w->t != V_INT) FAIL(E, f, "width must be a number");
            long width = w ? (long)w->u.num : 4;
            if (width < 0 || width > 1024) FAIL(E, f, "indent width out of range");
            return indent_str(E, v->u.str, width, first && tv_truthy(first), blank && tv_truthy(blank));
        }
        if (tstr_eq(nm, "replace")) {
            argv_t a = eval_args(E, f->l1, env);
            int np = npositional(a.v, a.n);
            tv **all = tp_alloc(E->c, sizeof(tv *) * (size_t)(np + 1));
            memcpy(all, a.v, sizeof(tv *) * (size_t)np);
            all[np] = np < a.n ? a.v[np] : tv_obj(E->c, V_KWARGS);
            return str_replace(E, f, v->u.str, all, np + 1);
        }
        FAIL(E, f, "unknown filter '%.*s' for a string", (int)nm.n, nm.s);
    }
    if (v->t == V_OBJECT || v->t == V_KWARGS) {
        int m = find_name(OBJ_METHODS, nm);
        if (m >= 0) {
            argv_t a = eval_args(E, f->l1, env);
            tv *fn = fn_value(E, FN_OBJMETHOD, m, v, NULL);
            return call_fn(E, f, fn, a.v, a.n, env);
        }
        FAIL(E, f, "unknown filter '%.*s' for a dict", (int)nm.n, nm.s);
    }
    FAIL(E, f, "cannot apply filter \"%.*s\" to type: %s", (int)nm.n, nm.s, tv_type_name(v));
}

/* ---------------- tests ---------------- */

static int test_value(ev *E, const tp_node *x, tstr name, tv *v) {
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
        tv *m = str_case(E, v->u.str, tstr_eq(name, "upper"), 0);
        return m->u.str.n == v->u.str.n && !memcmp(m->u.str.s, v->u.str.s, v->u.str.n);
    }
    if (tstr_eq(name, "defined")) return v->t != V_UNDEF;
    if (tstr_eq(name, "undefined")) return v->t == V_UNDEF;
    if (tstr_eq(name, "equalto") || tstr_eq(name, "eq")) FAIL(E, x, "test '%.*s' needs an argument", (int)name.n, name.s);
    FAIL(E, x, "unknown test: %.*s", (int)name.n, name.s);
}

/* ---------------- expressions ---------------- */

static tv *member(ev *E, const tp_node *x, tv *obj, tv *prop) {
    tv *r = NULL;
    if (obj->t == V_OBJECT || obj->t == V_KWARGS || obj->t == V_NS) {
        if (prop->t != V_STR) FAIL(E, x, "cannot access property with non-string: got %s", tv_type_name(prop));
        r = tv_obj_get(obj, prop->u.str);
        if (!r && obj->t != V_NS) {
            int m = find_name(OBJ_METHODS, prop->u.str);
            if (m >= 0) r = fn_value(E, FN_OBJMETHOD, m, obj, NULL);
        }
    } else if (obj->t == V_ARRAY || obj->t == V_TUPLE || obj->t == V_STR) {
        if (prop->t == V_INT) {
            double i = prop->u.num;
            if (obj->t == V_STR) {
                size_t *o;
                size_t n = cp_offsets(E, obj->u.str, &o);
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
                r = tv_num(E->c, V_INT, obj->t == V_STR ? (double)utf16_len(obj->u.str) : (double)obj->u.arr.n);
            else if (obj->t == V_STR) {
                int m = find_name(STR_METHODS, prop->u.str);
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
    double len = obj->t == V_STR ? (double)cp_offsets(E, obj->u.str, &o) : (double)obj->u.arr.n;
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
            else tvpush(E, &r, obj->u.arr.v[k]);
        }
    if (obj->t == V_STR) return tv_str_ref(E->c, (tstr){b.p, b.n});
    return tvvec_array(E, &r);
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
    if (tstr_eq(op, "==")) return TV_BOOL(loose_eq(l, r));
    if (tstr_eq(op, "!=")) return TV_BOOL(!loose_eq(l, r));
    int is_in = tstr_eq(op, "in"), not_in = tstr_eq(op, "not in");
    if (l->t == V_UNDEF || r->t == V_UNDEF) {
        if (r->t == V_UNDEF && (is_in || not_in)) return TV_BOOL(not_in);
        FAIL(E, x, "cannot perform operation %.*s on undefined values", (int)op.n, op.s);
    }
    if (l->t == V_NULL || r->t == V_NULL) FAIL(E, x, "cannot perform operation on null values");
    if (tstr_eq(op, "~")) return concat_str(E, l, r);
    if (tstr_eq(op, "**") && is_numlike(l) && is_numlike(r)) {
        double a = js_to_number(l), b = js_to_number(r);
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
            for (size_t i = 0; i < r->u.arr.n && !found; i++) found = strict_eq(r->u.arr.v[i], l);
            return TV_BOOL(is_in ? found : !found);
        }
    }
    if (l->t == V_STR || r->t == V_STR) {
        if (tstr_eq(op, "+")) return concat_str(E, l, r);
    }
    if (l->t == V_STR && r->t == V_STR && (is_in || not_in)) {
        int found = find_sub(r->u.str, l->u.str, 0) != NULL;
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
        r = call_fn(E, x, f, a.v, a.n, env);
        break;
    }
    case N_UNARY: {
        tv *a = eval(E, x->a, env);
        if (tstr_eq(x->s, "not")) { r = TV_BOOL(!tv_truthy(a)); break; }
        if (!is_numlike(a)) FAIL(E, x, "unknown operator \"%.*s\" for %s", (int)x->s.n, x->s.s, tv_type_name(a));
        double v = js_to_number(a);
        r = tv_num(E->c, a->t == V_FLOAT ? V_FLOAT : V_INT, tstr_eq(x->s, "-") ? -v : v);
        break;
    }
    case N_BINARY: r = binary(E, x, env); break;
    case N_FILTER: r = apply_filter(E, eval(E, x->a, env), x->b, env); break;
    case N_TEST: {
        int t = test_value(E, x, x->s, eval(E, x->a, env));
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
    if (iter->t == V_OBJECT || iter->t == V_KWARGS) iter = obj_items(E, iter, 1);
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
        tvpush(E, &items, c);
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
        tv_to_output(E->c, out, apply_filter(E, tv_str_ref(E->c, (tstr){b.p, b.n}), x->a, env));
        break;
    }
    default: tv_to_output(E->c, out, eval(E, x, env)); break;
    }
    if (out->n > E->max_out) FAIL(E, x, "template output exceeds %zu bytes", E->max_out);
    E->depth--;
}

void tp_eval(tp_ctx *c, const tp_node *prog, tv *globals, const tp_limits *lim, tp_buf *out, tp_marks *marks) {
    ev E = {c, 0, lim->max_steps, lim->max_out, 0, 0, NULL, out, marks};
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
