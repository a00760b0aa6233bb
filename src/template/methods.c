/* methods.c — the callable built-ins of the template interpreter: the global
 * functions (raise_exception, range, namespace, strftime_now), the string
 * methods (upper, split, replace, ...) and the object methods (get, items,
 * dictsort, ...), with the JavaScript semantics they and the filters share:
 * UTF-16 lengths, case mapping, trimming, loose/strict equality, ordering
 * and a stable sort whose comparison may fail. Split from eval.c. */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wctype.h>
#include "template/interp.h"

const char *const tp_str_methods[] = {"upper", "lower", "strip", "title", "capitalize", "rstrip",
                                      "lstrip", "startswith", "endswith", "split", "replace", NULL};
const char *const tp_obj_methods[] = {"get", "items", "keys", "values", "dictsort", NULL};

int tp_find_name(const char *const *names, tstr s) {
    for (int i = 0; names[i]; i++)
        if (tstr_eq(s, names[i])) return i;
    return -1;
}

tstr tp_raw_str(ev *E, const tv *v) {
    tp_buf b = {0};
    tp_buf_put(E->c, &b, "", 0);
    tv_raw_string(E->c, &b, v);
    return (tstr){b.p, b.n};
}

/* ---------------- text helpers (JS string semantics) ---------------- */

size_t tp_utf16_len(tstr s) {
    size_t n = 0;
    for (size_t i = 0; i < s.n;) {
        uint32_t cp;
        i += (size_t)tp_utf8_dec(s.s + i, s.n - i, &cp);
        n += cp >= 0x10000 ? 2 : 1;
    }
    return n;
}

/* code point offsets: returns count and fills offs (count+1 entries) */
size_t tp_cp_offsets(ev *E, tstr s, size_t **offs) {
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

tv *tp_str_case(ev *E, tstr s, int upper, int first_only) {
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
tv *tp_str_title(ev *E, tstr s) {
    tstr r = tp_strdup(E->c, s.s, s.n);
    char *p = (char *)r.s;
    for (size_t i = 0; i < r.n; i++)
        if (ascii_word((unsigned char)p[i]) && (i == 0 || !ascii_word((unsigned char)p[i - 1])) &&
            p[i] >= 'a' && p[i] <= 'z')
            p[i] = (char)(p[i] - 32);
    return tv_str_ref(E->c, r);
}

tv *tp_str_trim(ev *E, tstr s, int start, int end) {
    size_t a = start ? tp_trim_start_off(s.s, s.n) : 0;
    size_t b = end ? tp_trim_end_len(s.s, s.n) : s.n;
    if (b < a) b = a;
    return tv_str_ref(E->c, (tstr){s.s + a, b - a});
}

static int has_prefix(tstr s, tstr p) { return p.n <= s.n && !memcmp(s.s, p.s, p.n); }
static int has_suffix(tstr s, tstr p) { return p.n <= s.n && !memcmp(s.s + s.n - p.n, p.s, p.n); }

const char *tp_find_sub(tstr h, tstr nd, size_t from) {
    if (nd.n == 0) return h.s + from;
    if (nd.n > h.n) return NULL;
    for (size_t i = from; i + nd.n <= h.n; i++)
        if (!memcmp(h.s + i, nd.s, nd.n)) return h.s + i;
    return NULL;
}

void tp_tvpush(ev *E, tvvec *a, tv *x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        tv **nv = tp_alloc(E->c, sizeof *nv * cap);
        if (a->n) memcpy(nv, a->v, sizeof *nv * a->n);
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n++] = x;
}
tv *tp_tvvec_array(ev *E, tvvec *a) {
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
                tp_tvpush(E, &r, tv_str_ref(E->c, (tstr){t.s + b, t.n - b}));
                break;
            }
            tp_tvpush(E, &r, tv_str_ref(E->c, (tstr){t.s + b, i - b}));
        }
    } else {
        tstr d = sep->u.str;
        if (d.n == 0) FAIL(E, x, "empty separator");
        size_t i = 0;
        for (;;) {
            const char *f = tp_find_sub(s, d, i);
            if (!f || (ms != -1 && (double)r.n >= ms)) {
                tp_tvpush(E, &r, tv_str_ref(E->c, (tstr){s.s + i, s.n - i}));
                break;
            }
            tp_tvpush(E, &r, tv_str_ref(E->c, (tstr){s.s + i, (size_t)(f - s.s) - i}));
            i = (size_t)(f - s.s) + d.n;
        }
    }
    return tp_tvvec_array(E, &r);
}

tv *tp_str_replace(ev *E, const tp_node *x, tstr s, tv **args, int n) {
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
            const char *f = remaining > 0 ? tp_find_sub(s, o, i) : NULL;
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

double tp_js_to_number(const tv *v) {
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

int tp_is_numlike(const tv *v) { return v->t == V_INT || v->t == V_FLOAT || v->t == V_BOOL; }
static int is_primitive(const tv *v) { return v->t <= V_STR; }

/* JavaScript `a.value == b.value` */
int tp_loose_eq(const tv *a, const tv *b) {
    int an = a->t == V_UNDEF || a->t == V_NULL, bn = b->t == V_UNDEF || b->t == V_NULL;
    if (an || bn) return an && bn;
    if (a->t == V_STR && b->t == V_STR)
        return a->u.str.n == b->u.str.n && !memcmp(a->u.str.s, b->u.str.s, a->u.str.n);
    if (is_primitive(a) && is_primitive(b)) return tp_js_to_number(a) == tp_js_to_number(b);
    if (!is_primitive(a) && !is_primitive(b)) return a == b;
    /* an object against a primitive: JS would compare the object's string
     * form ([1,2] == "1,2"); no chat template relies on that, so unequal */
    return 0;
}

/* JavaScript `a.value === b.value` */
int tp_strict_eq(const tv *a, const tv *b) {
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
    if (tp_is_numlike(a) && tp_is_numlike(b)) {
        double p = tp_js_to_number(a), q = tp_js_to_number(b);
        return p < q ? -1 : p > q ? 1 : 0;
    }
    if (a->t != b->t) FAIL(E, x, "cannot compare different types: %s and %s", tv_type_name(a), tv_type_name(b));
    if (a->t == V_STR) {
        if (case_sensitive) return str_cmp(a->u.str, b->u.str);
        tv *la = tp_str_case(E, a->u.str, 0, 0), *lb = tp_str_case(E, b->u.str, 0, 0);
        return str_cmp(la->u.str, lb->u.str);
    }
    FAIL(E, x, "cannot compare type: %s", tv_type_name(a));
}

/* stable merge sort with a comparison that may fail (longjmp) */
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
tv *tp_attr_path(tv *item, tstr path) {
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
    return tp_attr_path(item, S->attr);
}

tv *tp_sorted(ev *E, sort_ctx *S, tv *arr) {
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

tv *tp_obj_items(ev *E, tv *o, int what) { /* 0 items, 1 keys, 2 values */
    tv *r = tv_arr(E->c, V_ARRAY, o->u.obj.n);
    for (size_t i = 0; i < o->u.obj.n; i++)
        r->u.arr.v[i] = what == 0 ? pair(E, o->u.obj.k[i], o->u.obj.v[i])
                       : what == 1 ? tv_str_ref(E->c, o->u.obj.k[i]) : o->u.obj.v[i];
    return r;
}

tv *tp_kwarg(tv **args, int n, const char *name) {
    if (n > 0 && args[n - 1]->t == V_KWARGS) {
        tv *v = tv_obj_get(args[n - 1], (tstr){name, strlen(name)});
        if (v) return v;
    }
    return NULL;
}
int tp_npositional(tv **args, int n) { return n > 0 && args[n - 1]->t == V_KWARGS ? n - 1 : n; }

tv *tp_dictsort(ev *E, const tp_node *x, tv *o, tv **args, int n) {
    int np = tp_npositional(args, n);
    tv *cs = np > 0 ? args[0] : tp_kwarg(args, n, "case_sensitive");
    tv *by = np > 1 ? args[1] : tp_kwarg(args, n, "by");
    tv *rev = np > 2 ? args[2] : tp_kwarg(args, n, "reverse");
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
    return tp_sorted(E, &S, tp_obj_items(E, o, 0));
}

/* ---------------- functions and methods ---------------- */

/* ---------------- callable values ---------------- */

static _Noreturn void call_raise(ev *E, tv **args, int n) {
    tstr msg = n > 0 ? tp_raw_str(E, args[0]) : (tstr){"undefined", 9};
    tp_fail_raw(E->c, TUNA_ERR_FORMAT, "chat template raised an error: %.*s", (int)(msg.n > 400 ? 400 : msg.n), msg.s);
}

static tv *call_range(ev *E, const tp_node *x, tv **args, int n) {
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
        tp_tvpush(E, &r, tv_num(E->c, i == floor(i) ? V_INT : V_FLOAT, i));
    }
    return tp_tvvec_array(E, &r);
}

/* namespace(src): src an object or an iterable of [key, value] pairs */
static void namespace_from(ev *E, const tp_node *x, tv *ns, tv *src) {
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

static tv *call_namespace(ev *E, const tp_node *x, tv **args, int n) {
    int np = tp_npositional(args, n);
    if (np > 1) FAIL(E, x, "namespace expected at most 1 argument, got %d", np);
    tv *ns = tv_obj(E->c, V_NS);
    if (np == 1) namespace_from(E, x, ns, args[0]);
    if (np < n)
        for (size_t i = 0; i < args[n - 1]->u.obj.n; i++)
            tv_obj_set(E->c, ns, args[n - 1]->u.obj.k[i], args[n - 1]->u.obj.v[i]);
    return ns;
}

/* one strftime conversion (%Y %m %d %b %B %H %M %%) of the local time */
static void strftime_field(char *tmp, size_t size, char conv, const struct tm *tmv) {
    static const char *const mon[] = {"January", "February", "March", "April", "May", "June", "July",
                                      "August", "September", "October", "November", "December"};
    switch (conv) {
    case 'Y': snprintf(tmp, size, "%d", tmv->tm_year + 1900); break;
    case 'm': snprintf(tmp, size, "%02d", tmv->tm_mon + 1); break;
    case 'd': snprintf(tmp, size, "%02d", tmv->tm_mday); break;
    case 'b': snprintf(tmp, size, "%.3s", mon[tmv->tm_mon]); break;
    case 'B': snprintf(tmp, size, "%s", mon[tmv->tm_mon]); break;
    case 'H': snprintf(tmp, size, "%02d", tmv->tm_hour); break;
    case 'M': snprintf(tmp, size, "%02d", tmv->tm_min); break;
    default: snprintf(tmp, size, "%%"); break;
    }
}

static tv *call_strftime(ev *E, const tp_node *x, tv **args, int n) {
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
            strftime_field(tmp, sizeof tmp, f.s[++i], &tmv);
            tp_buf_puts(E->c, &b, tmp);
        } else tp_buf_put(E->c, &b, f.s + i, 1);
    }
    return tv_str_ref(E->c, (tstr){b.p, b.n});
}

/* startswith / endswith: a string or a tuple of strings (any matches) */
static tv *str_affix(ev *E, const tp_node *x, tstr s, int sw, tv **args, int n) {
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

/* a string method (SM_*) called on s; NULL for an unknown method */
static tv *call_str_method(ev *E, const tp_node *x, int method, tstr s, tv **args, int n) {
    static tv minus1 = {.t = V_INT, .u.num = -1};
    switch (method) {
    case SM_UPPER: return tp_str_case(E, s, 1, 0);
    case SM_LOWER: return tp_str_case(E, s, 0, 0);
    case SM_STRIP: return tp_str_trim(E, s, 1, 1);
    case SM_TITLE: return tp_str_title(E, s);
    case SM_CAPITALIZE: return tp_str_case(E, s, 1, 1);
    case SM_RSTRIP: return tp_str_trim(E, s, 0, 1);
    case SM_LSTRIP: return tp_str_trim(E, s, 1, 0);
    case SM_STARTSWITH: case SM_ENDSWITH: return str_affix(E, x, s, method == SM_STARTSWITH, args, n);
    case SM_SPLIT: return str_split(E, x, s, n > 0 ? args[0] : TV_NULL, n > 1 ? args[1] : &minus1);
    case SM_REPLACE: return tp_str_replace(E, x, s, args, n);
    }
    return NULL;
}

/* a dict method (OM_*) called on o; NULL for an unknown method */
static tv *call_obj_method(ev *E, const tp_node *x, int method, tv *o, tv **args, int n) {
    switch (method) {
    case OM_GET: {
        if (n < 1 || args[0]->t != V_STR)
            FAIL(E, x, "dict key must be a string: got %s", n < 1 ? "undefined" : tv_type_name(args[0]));
        tv *v = tv_obj_get(o, args[0]->u.str);
        return v ? v : n > 1 ? args[1] : TV_NULL;
    }
    case OM_ITEMS: return tp_obj_items(E, o, 0);
    case OM_KEYS: return tp_obj_items(E, o, 1);
    case OM_VALUES: return tp_obj_items(E, o, 2);
    case OM_DICTSORT: return tp_dictsort(E, x, o, args, n);
    }
    return NULL;
}

tv *tp_call_fn(ev *E, const tp_node *x, tv *f, tv **args, int n, scope *env) {
    tv *r = NULL;
    switch (f->u.fn.kind) {
    case FN_RAISE: call_raise(E, args, n);
    case FN_RANGE: return call_range(E, x, args, n);
    case FN_NAMESPACE: return call_namespace(E, x, args, n);
    case FN_STRFTIME: return call_strftime(E, x, args, n);
    case FN_STRMETHOD: r = call_str_method(E, x, f->u.fn.method, f->u.fn.self->u.str, args, n); break;
    case FN_OBJMETHOD: r = call_obj_method(E, x, f->u.fn.method, f->u.fn.self, args, n); break;
    case FN_MACRO: return E->call_macro(E, x, f->u.fn.macro, args, n, env);
    }
    if (!r) FAIL(E, x, "internal error: bad function");
    return r;
}

