/* value.c — the template value model and its conversions to text, which
 * follow the reference renderer's JavaScript: numbers print as JS prints
 * them (a float that is whole prints "1.0" in output but "1" in JSON), lists
 * and dicts print as JSON, `tojson` escapes as JSON.stringify does. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "template/tmpl.h"

tv tv_undef_ = {.t = V_UNDEF}, tv_null_ = {.t = V_NULL};
tv tv_true_ = {.t = V_BOOL, .u.b = 1}, tv_false_ = {.t = V_BOOL, .u.b = 0};

tv *tv_num(tp_ctx *c, tv_type t, double x) {
    tv *v = tp_alloc(c, sizeof *v);
    v->t = t;
    v->u.num = x;
    return v;
}

tv *tv_str(tp_ctx *c, const char *s, size_t n) {
    tv *v = tp_alloc(c, sizeof *v);
    v->t = V_STR;
    v->u.str = tp_strdup(c, s, n);
    return v;
}

tv *tv_str_ref(tp_ctx *c, tstr s) {
    tv *v = tp_alloc(c, sizeof *v);
    v->t = V_STR;
    v->u.str = s;
    return v;
}

tv *tv_arr(tp_ctx *c, tv_type t, size_t n) {
    tv *v = tp_alloc(c, sizeof *v);
    v->t = t;
    v->u.arr.n = n;
    v->u.arr.v = tp_alloc(c, sizeof(tv *) * (n ? n : 1));
    return v;
}

tv *tv_obj(tp_ctx *c, tv_type t) {
    tv *v = tp_alloc(c, sizeof *v);
    memset(v, 0, sizeof *v);
    v->t = t;
    return v;
}

tv *tv_obj_get(const tv *o, tstr k) {
    for (size_t i = 0; i < o->u.obj.n; i++)
        if (o->u.obj.k[i].n == k.n && !memcmp(o->u.obj.k[i].s, k.s, k.n)) return o->u.obj.v[i];
    return NULL;
}

/* Map.set: an existing key keeps its place */
void tv_obj_set(tp_ctx *c, tv *o, tstr k, tv *v) {
    for (size_t i = 0; i < o->u.obj.n; i++)
        if (o->u.obj.k[i].n == k.n && !memcmp(o->u.obj.k[i].s, k.s, k.n)) { o->u.obj.v[i] = v; return; }
    if (o->u.obj.n == o->u.obj.cap) {
        size_t cap = o->u.obj.cap ? o->u.obj.cap * 2 : 8;
        tstr *nk = tp_alloc(c, sizeof *nk * cap);
        tv **nv = tp_alloc(c, sizeof *nv * cap);
        if (o->u.obj.n) {
            memcpy(nk, o->u.obj.k, sizeof *nk * o->u.obj.n);
            memcpy(nv, o->u.obj.v, sizeof *nv * o->u.obj.n);
        }
        o->u.obj.k = nk;
        o->u.obj.v = nv;
        o->u.obj.cap = cap;
    }
    o->u.obj.k[o->u.obj.n] = k;
    o->u.obj.v[o->u.obj.n++] = v;
}

const char *tv_type_name(const tv *v) {
    static const char *names[] = {"undefined", "none", "boolean", "integer", "float", "string",
                                  "list", "tuple", "dict", "keyword arguments", "namespace",
                                  "function"};
    return names[v->t];
}

int tv_truthy(const tv *v) {
    switch (v->t) {
    case V_UNDEF: case V_NULL: return 0;
    case V_BOOL: return v->u.b;
    case V_INT: case V_FLOAT: return v->u.num != 0 && !isnan(v->u.num);
    case V_STR: return v->u.str.n > 0;
    case V_ARRAY: case V_TUPLE: return v->u.arr.n > 0;
    case V_OBJECT: case V_KWARGS: return v->u.obj.n > 0;
    default: return 1; /* namespaces and functions are JS objects: truthy */
    }
}

/* An "array index" key (canonical decimal below 2^32 - 1): JS objects list
 * those first, in numeric order, before the other keys in insertion order. */
static int index_key(const char *k, double *val) {
    size_t n = strlen(k);
    if (n == 0 || n > 10 || (n > 1 && k[0] == '0')) return 0;
    double x = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < '0' || k[i] > '9') return 0;
        x = x * 10 + (k[i] - '0');
    }
    if (x >= 4294967295.0) return 0;
    *val = x;
    return 1;
}

tv *tv_from_json(tp_ctx *c, const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_NULL: return TV_NULL;
    case JSON_TRUE: return TV_BOOL(1);
    case JSON_FALSE: return TV_BOOL(0);
    case JSON_INTEGER: return tv_num(c, V_INT, (double)json_integer_value(j));
    case JSON_REAL: {
        double x = json_real_value(j);
        /* JSON.parse gives one number type; integral values become ints */
        return tv_num(c, x == floor(x) && isfinite(x) ? V_INT : V_FLOAT, x);
    }
    case JSON_STRING: return tv_str(c, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        tv *a = tv_arr(c, V_ARRAY, n);
        for (size_t i = 0; i < n; i++) a->u.arr.v[i] = tv_from_json(c, json_array_get(j, i));
        return a;
    }
    case JSON_OBJECT: {
        tv *o = tv_obj(c, V_OBJECT);
        const char *key;
        json_t *val;
        /* index-like keys first, ascending (a simple insertion pass) */
        size_t nidx = 0;
        json_object_foreach((json_t *)j, key, val) {
            double kv;
            if (!index_key(key, &kv)) continue;
            tv_obj_set(c, o, tp_strdup(c, key, strlen(key)), tv_from_json(c, val));
            nidx++;
            for (size_t i = nidx - 1; i > 0; i--) {
                double prev = 0;
                index_key(o->u.obj.k[i - 1].s, &prev);
                if (prev <= kv) break;
                tstr tk = o->u.obj.k[i]; o->u.obj.k[i] = o->u.obj.k[i - 1]; o->u.obj.k[i - 1] = tk;
                tv *tvv = o->u.obj.v[i]; o->u.obj.v[i] = o->u.obj.v[i - 1]; o->u.obj.v[i - 1] = tvv;
            }
        }
        json_object_foreach((json_t *)j, key, val) {
            double kv;
            if (index_key(key, &kv)) continue;
            tv_obj_set(c, o, tp_strdup(c, key, strlen(key)), tv_from_json(c, val));
        }
        return o;
    }
    }
    return TV_UNDEF;
}

static void put_num(tp_ctx *c, tp_buf *b, double x) {
    char tmp[64];
    tp_js_num(x, tmp, sizeof tmp);
    tp_buf_puts(c, b, tmp);
}

/* JSON.stringify of a string, optionally with every non-ASCII UTF-16 unit
 * (and DEL) written as \uXXXX (ensure_ascii) */
static void put_json_str(tp_ctx *c, tp_buf *b, tstr s, int ascii) {
    tp_buf_put(c, b, "\"", 1);
    for (size_t i = 0; i < s.n;) {
        unsigned char ch = (unsigned char)s.s[i];
        char tmp[16];
        if (ch < 0x80) {
            const char *r = NULL;
            switch (ch) {
            case '"': r = "\\\""; break;
            case '\\': r = "\\\\"; break;
            case '\b': r = "\\b"; break;
            case '\f': r = "\\f"; break;
            case '\n': r = "\\n"; break;
            case '\r': r = "\\r"; break;
            case '\t': r = "\\t"; break;
            }
            if (r) tp_buf_puts(c, b, r);
            else if (ch < 0x20 || (ascii && ch == 0x7F)) {
                snprintf(tmp, sizeof tmp, "\\u%04x", ch);
                tp_buf_puts(c, b, tmp);
            } else tp_buf_put(c, b, (const char *)&s.s[i], 1);
            i++;
            continue;
        }
        uint32_t cp;
        int k = tp_utf8_dec(s.s + i, s.n - i, &cp);
        if (ascii) {
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            } else snprintf(tmp, sizeof tmp, "\\u%04x", cp);
            tp_buf_puts(c, b, tmp);
        } else tp_buf_put(c, b, s.s + i, (size_t)k);
        i += (size_t)k;
    }
    tp_buf_put(c, b, "\"", 1);
}

static void pad(tp_ctx *c, tp_buf *b, long indent, int depth) {
    tp_buf_put(c, b, "\n", 1);
    for (long i = 0; i < indent * depth; i++) tp_buf_put(c, b, " ", 1);
}

static int key_cmp(const void *a, const void *b) {
    const tstr *x = *(const tstr *const *)a, *y = *(const tstr *const *)b;
    size_t n = x->n < y->n ? x->n : y->n;
    int r = memcmp(x->s, y->s, n);
    return r ? r : (x->n > y->n) - (x->n < y->n);
}

void tv_to_json(tp_ctx *c, tp_buf *b, const tv *v, const tp_json_opts *o, int depth, int undef_null) {
    if (depth > 512) tp_fail(c, -1, "value nests too deeply for JSON");
    const char *isep = o->item_sep ? o->item_sep : o->indent ? "," : ", ";
    const char *ksep = o->key_sep ? o->key_sep : ": ";
    switch (v->t) {
    case V_NULL: tp_buf_puts(c, b, "null"); return;
    case V_UNDEF: tp_buf_puts(c, b, undef_null ? "null" : "undefined"); return;
    case V_BOOL: tp_buf_puts(c, b, v->u.b ? "true" : "false"); return;
    case V_INT: case V_FLOAT:
        if (!isfinite(v->u.num)) tp_buf_puts(c, b, "null");
        else put_num(c, b, v->u.num);
        return;
    case V_STR: put_json_str(c, b, v->u.str, o->ensure_ascii); return;
    case V_ARRAY:
        tp_buf_put(c, b, "[", 1);
        for (size_t i = 0; i < v->u.arr.n; i++) {
            if (i) tp_buf_puts(c, b, isep);
            if (o->indent) pad(c, b, o->indent, depth + 1);
            tv_to_json(c, b, v->u.arr.v[i], o, depth + 1, undef_null);
        }
        if (o->indent && v->u.arr.n) pad(c, b, o->indent, depth);
        tp_buf_put(c, b, "]", 1);
        return;
    case V_OBJECT: case V_NS: {
        size_t n = v->u.obj.n;
        const tstr **keys = tp_alloc(c, sizeof *keys * (n ? n : 1));
        for (size_t i = 0; i < n; i++) keys[i] = &v->u.obj.k[i];
        if (o->sort_keys) qsort(keys, n, sizeof *keys, key_cmp);
        tp_buf_put(c, b, "{", 1);
        for (size_t i = 0; i < n; i++) {
            if (i) tp_buf_puts(c, b, isep);
            if (o->indent) pad(c, b, o->indent, depth + 1);
            put_json_str(c, b, *keys[i], o->ensure_ascii);
            tp_buf_puts(c, b, ksep);
            tv_to_json(c, b, tv_obj_get(v, *keys[i]), o, depth + 1, undef_null);
        }
        if (o->indent && n) pad(c, b, o->indent, depth);
        tp_buf_put(c, b, "}", 1);
        return;
    }
    default:
        tp_fail(c, -1, "cannot convert to JSON: %s", tv_type_name(v));
    }
}

void tv_to_output(tp_ctx *c, tp_buf *b, const tv *v) {
    static const tp_json_opts plain = {0, 0, 0, NULL, NULL};
    switch (v->t) {
    case V_UNDEF: case V_NULL: return;
    case V_BOOL: tp_buf_puts(c, b, v->u.b ? "true" : "false"); return;
    case V_INT: put_num(c, b, v->u.num); return;
    case V_FLOAT: {
        double x = v->u.num;
        if (x == 0 && signbit(x)) { tp_buf_puts(c, b, "-0.0"); return; }
        if (isfinite(x) && x == floor(x)) {
            /* toFixed(1), which switches to exponent form from 1e21 */
            if (fabs(x) < 1e21) {
                char tmp[400];
                snprintf(tmp, sizeof tmp, "%.1f", x);
                tp_buf_puts(c, b, tmp);
            } else put_num(c, b, x);
            return;
        }
        put_num(c, b, x);
        return;
    }
    case V_STR: tp_buf_put(c, b, v->u.str.s, v->u.str.n); return;
    case V_ARRAY: case V_OBJECT: case V_NS: case V_KWARGS:
        if (v->t == V_KWARGS) { tv tmp = *v; tmp.t = V_OBJECT; tv_to_json(c, b, &tmp, &plain, 0, 0); return; }
        tv_to_json(c, b, v, &plain, 0, 0);
        return;
    case V_TUPLE: tp_fail(c, -1, "cannot convert a tuple to JSON"); /* as the reference */
    case V_FUNC: tp_buf_puts(c, b, "[function]"); return;
    }
}

void tv_raw_string(tp_ctx *c, tp_buf *b, const tv *v) {
    switch (v->t) {
    case V_UNDEF: tp_buf_puts(c, b, "undefined"); return;
    case V_NULL: tp_buf_puts(c, b, "null"); return;
    case V_BOOL: tp_buf_puts(c, b, v->u.b ? "true" : "false"); return;
    case V_INT: case V_FLOAT: put_num(c, b, v->u.num); return;
    case V_STR: tp_buf_put(c, b, v->u.str.s, v->u.str.n); return;
    case V_ARRAY: case V_TUPLE: /* Array.prototype.toString: items' own toString, "," */
        for (size_t i = 0; i < v->u.arr.n; i++) {
            if (i) tp_buf_put(c, b, ",", 1);
            tv_to_output(c, b, v->u.arr.v[i]);
            if (v->u.arr.v[i]->t == V_UNDEF) tp_buf_puts(c, b, "undefined");
            if (v->u.arr.v[i]->t == V_NULL) tp_buf_puts(c, b, "null");
        }
        return;
    case V_OBJECT: case V_KWARGS: case V_NS: tp_buf_puts(c, b, "[object Map]"); return;
    case V_FUNC: tp_buf_puts(c, b, "[function]"); return;
    }
}
