/* json_keys.c — strict typed keys of a JSON settings file (json_keys.h). */
#include "core/json_keys.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

json_t *jkeys_get(const jkeys *r, const char *key) {
    json_t *v = json_object_get(r->o, key);
    return json_is_null(v) ? NULL : v;
}

void jkeys_fail(jkeys *r, tuna_status st, const char *key, const json_t *v, const char *fmt, ...) {
    if (r->st != TUNA_OK) return;
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(10));
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    r->st = core_fail(st, "%s: %s%s %.80s%s: %s", r->path, r->prefix, key, s ? s : "?", s && strlen(s) > 80 ? "..." : "", why);
    free(s);
}

long long jkeys_int(jkeys *r, const char *key, long long lo, long long hi, long long def) {
    json_t *v = jkeys_get(r, key);
    if (!v) return def;
    long long n;
    if (json_is_integer(v)) n = json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 0x1p62)
        n = (long long)json_real_value(v);
    else { jkeys_fail(r, TUNA_ERR_FORMAT, key, v, "must be an integer"); return def; }
    if (n < lo || n > hi) { jkeys_fail(r, TUNA_ERR_FORMAT, key, v, "must be an integer in [%lld, %lld]", lo, hi); return def; }
    return n;
}

/* a number in [lo, hi] with hi at most max (the type's largest finite value) */
static double read_number(jkeys *r, const char *key, double lo, int lo_open, double hi, double max, double def) {
    json_t *v = jkeys_get(r, key);
    if (!v) return def;
    if (!json_is_number(v)) { jkeys_fail(r, TUNA_ERR_FORMAT, key, v, "must be a number"); return def; }
    double x = json_number_value(v);
    if (hi > max) hi = max;
    if (!(lo_open ? x > lo : x >= lo) || !(x <= hi)) {
        if (hi == max) jkeys_fail(r, TUNA_ERR_FORMAT, key, v, "must be a finite number %s %g", lo_open ? ">" : ">=", lo);
        else jkeys_fail(r, TUNA_ERR_FORMAT, key, v, "must be a number in %s%g, %g]", lo_open ? "(" : "[", lo, hi);
        return def;
    }
    return x;
}

float jkeys_num(jkeys *r, const char *key, double lo, int lo_open, double hi, double def) {
    return (float)read_number(r, key, lo, lo_open, hi, FLT_MAX, def);
}

double jkeys_real(jkeys *r, const char *key, double lo, int lo_open, double hi, double def) {
    return read_number(r, key, lo, lo_open, hi, DBL_MAX, def);
}

int jkeys_bool(jkeys *r, const char *key, int def) {
    json_t *v = jkeys_get(r, key);
    if (!v) return def;
    if (!json_is_boolean(v)) { jkeys_fail(r, TUNA_ERR_FORMAT, key, v, "must be true or false"); return def; }
    return json_is_true(v);
}

const char *jkeys_str(jkeys *r, const char *key, const char *const *allowed, const char *def) {
    json_t *v = jkeys_get(r, key);
    if (!v) return def;
    if (!json_is_string(v)) { jkeys_fail(r, TUNA_ERR_FORMAT, key, v, "must be a string"); return def; }
    const char *s = json_string_value(v);
    if (!allowed) return s;
    char list[200] = "";
    for (int i = 0; allowed[i]; i++) {
        if (!strcmp(s, allowed[i])) return s;
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", allowed[i]);
    }
    jkeys_fail(r, TUNA_ERR_UNSUPPORTED, key, v, "is not supported (tuna implements %s)", list);
    return def;
}

int jkeys_token_ids(jkeys *r, const char *key, int32_t *ids, int max) {
    json_t *v = jkeys_get(r, key);
    if (!json_is_array(v)) {
        long long id = jkeys_int(r, key, -1, INT_MAX, -1);
        if (id < 0) return 0;
        if (max > 0) ids[0] = (int32_t)id;
        return 1;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > INT_MAX) {
            jkeys_fail(r, TUNA_ERR_FORMAT, key, v, "must be a token id or a list of token ids (integers >= 0)");
            return 0;
        }
        if ((int)i < max) ids[i] = (int32_t)json_integer_value(e);
    }
    return (int)json_array_size(v);
}
