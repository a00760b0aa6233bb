/* score.c — response scoring for evaluation (see tuna_score.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tuna_score.h"
#include "core/error.h"

char *tuna_score_normalize(const char *s) {
    size_t n = strlen(s), j = 0;
    char *o = malloc(n + 1);
    if (!o) return NULL;
    int space = 0;
    for (size_t i = 0; i < n; i++) {
        if (isspace((unsigned char)s[i])) { space = j > 0; continue; }
        if (space) o[j++] = ' ';
        space = 0;
        o[j++] = s[i];
    }
    o[j] = 0;
    return o;
}

int tuna_score_exact(const char *pred, const char *ref) {
    char *a = tuna_score_normalize(pred), *b = tuna_score_normalize(ref);
    int r = a && b && !strcmp(a, b);
    free(a);
    free(b);
    return r;
}

int tuna_score_contains(const char *pred, const char *ref) {
    char *a = tuna_score_normalize(pred), *b = tuna_score_normalize(ref);
    int r = a && b && strstr(a, b) != NULL;
    free(a);
    free(b);
    return r;
}

int tuna_score_regex(const char *pred, const char *pattern) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return core_fail(TUNA_ERR_ARG, "regex '%s': %s at offset %zu", pattern, (char *)msg, (size_t)off), -1;
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = md ? pcre2_match(re, (PCRE2_SPTR)pred, strlen(pred), 0, 0, md, NULL) : -1;
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc >= 0;
}

static json_t *parse(const char *s) {
    json_t *v = json_loads(s, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    return v;
}

int tuna_score_json_valid(const char *pred) {
    json_t *v = parse(pred);
    int ok = v && (json_is_object(v) || json_is_array(v));
    json_decref(v);
    return ok;
}

/* equality with numbers compared by value (jansson's json_equal keeps 3 != 3.0) */
static int same_value(const json_t *a, const json_t *b) {
    if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_value(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    }
    if (json_is_object(a) && json_is_object(b)) {
        if (json_object_size(a) != json_object_size(b)) return 0;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v) {
            json_t *w = json_object_get(b, k);
            if (!w || !same_value(v, w)) return 0;
        }
        return 1;
    }
    return json_equal(a, b);
}

tuna_status tuna_score_json_fields_each(const char *pred, const char *ref, int *correct, int *total,
                                        void (*on_key)(void *ctx, const char *key, int ok), void *ctx) {
    *correct = *total = 0;
    json_t *r = parse(ref);
    if (!json_is_object(r)) {
        json_decref(r);
        return core_fail(TUNA_ERR_FORMAT, "reference is not a JSON object: %.60s", ref);
    }
    json_t *p = parse(pred);
    const char *k;
    json_t *v;
    json_object_foreach(r, k, v) {
        (*total)++;
        json_t *w = json_is_object(p) ? json_object_get(p, k) : NULL;
        int ok = w && same_value(v, w);
        *correct += ok;
        if (on_key) on_key(ctx, k, ok);
    }
    json_decref(p);
    json_decref(r);
    return TUNA_OK;
}

tuna_status tuna_score_json_fields(const char *pred, const char *ref, int *correct, int *total) {
    return tuna_score_json_fields_each(pred, ref, correct, total, NULL, NULL);
}

/* lowercase [a-z0-9]+ tokens as (start, length) pairs into a malloc'd array */
static int tokens(const char *s, int **out) {
    size_t n = strlen(s);
    int *t = malloc((n + 1) * sizeof *t * 2), k = 0;
    if (!t) return -1;
    for (size_t i = 0; i < n;) {
        if (!isalnum((unsigned char)s[i]) || (unsigned char)s[i] >= 128) { i++; continue; }
        size_t j = i;
        while (j < n && isalnum((unsigned char)s[j]) && (unsigned char)s[j] < 128) j++;
        t[2 * k] = (int)i;
        t[2 * k + 1] = (int)(j - i);
        k++;
        i = j;
    }
    *out = t;
    return k;
}

static int tok_eq(const char *a, const int *ta, const char *b, const int *tb) {
    if (ta[1] != tb[1]) return 0;
    for (int i = 0; i < ta[1]; i++)
        if (tolower((unsigned char)a[ta[0] + i]) != tolower((unsigned char)b[tb[0] + i])) return 0;
    return 1;
}

double tuna_score_rouge_l(const char *pred, const char *ref) {
    int *tp = NULL, *tr = NULL;
    int np = tokens(pred, &tp), nr = tokens(ref, &tr);
    double f = 0;
    if (np > 0 && nr > 0) {
        int *prev = calloc((size_t)nr + 1, sizeof *prev), *cur = calloc((size_t)nr + 1, sizeof *cur);
        if (prev && cur) {
            for (int i = 1; i <= np; i++) {
                for (int j = 1; j <= nr; j++)
                    cur[j] = tok_eq(pred, tp + 2 * (i - 1), ref, tr + 2 * (j - 1)) ? prev[j - 1] + 1
                                                                                 : (prev[j] > cur[j - 1] ? prev[j] : cur[j - 1]);
                int *t = prev; prev = cur; cur = t;
            }
            double lcs = prev[nr], p = lcs / np, r = lcs / nr;
            f = lcs > 0 ? 2 * p * r / (p + r) : 0;
        }
        free(prev);
        free(cur);
    }
    free(tp);
    free(tr);
    return f;
}
