/* grpo_data.c — the --completions file of tuna grpo (see grpo_data.h):
 * each line parsed with jansson and checked key by key into growing flat
 * arrays. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/input_file.h"
#include "train/grpo_data.h"

/* a growing array of n elements of size sz */
typedef struct {
    void *p;
    size_t n, cap, sz;
} vec;

static int vec_grow(vec *v, size_t more) {
    if (v->n + more <= v->cap) return 0;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < v->n + more) cap *= 2;
    void *p = realloc(v->p, cap * v->sz);
    if (!p) return -1;
    v->p = p, v->cap = cap;
    return 0;
}

static int vec_push_i64(vec *v, int64_t x) {
    if (vec_grow(v, 1)) return -1;
    ((int64_t *)v->p)[v->n++] = x;
    return 0;
}

typedef struct {
    const char *path;
    long line;
    int V, G;
    vec p_off, p_ids, c_off, c_ids, rew;
    int max_len;
} reader;

static tuna_status bad(const reader *r, const char *what) {
    return core_fail(TUNA_ERR_FORMAT, "%s:%ld: %s", r->path, r->line, what);
}

/* a list of token ids appended to ids; *len its length */
static tuna_status read_ids(reader *r, const json_t *a, const char *key, vec *ids, int *len) {
    char msg[160];
    if (!json_is_array(a)) {
        snprintf(msg, sizeof msg, "\"%s\" must be a list of token ids", key);
        return bad(r, msg);
    }
    size_t n = json_array_size(a);
    if (n == 0 || n > (1u << 24)) {
        snprintf(msg, sizeof msg, "\"%s\" is empty or too long (%zu ids)", key, n);
        return bad(r, msg);
    }
    if (vec_grow(ids, n)) return core_fail(TUNA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(a, i);
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
        if (!json_is_integer(v) || x < 0 || x >= r->V) {
            snprintf(msg, sizeof msg, "\"%s\"[%zu] is not a token id of the vocabulary [0, %d)", key, i, r->V);
            return bad(r, msg);
        }
        ((int32_t *)ids->p)[ids->n++] = (int32_t)x;
    }
    *len = (int)n;
    return TUNA_OK;
}

/* the group's G completions and rewards */
static tuna_status read_group(reader *r, const json_t *comps, const json_t *rews, int plen) {
    char msg[160];
    size_t g = json_array_size(comps);
    if (!json_is_array(comps) || !json_is_array(rews) || g == 0)
        return bad(r, "\"completion_ids\" must be a list of lists of ids and \"rewards\" a list of numbers");
    if (r->G == 0) r->G = (int)g;
    if ((int)g != r->G || json_array_size(rews) != g) {
        snprintf(msg, sizeof msg, "%zu completions and %zu rewards; the group size is %d", g, json_array_size(rews), r->G);
        return bad(r, msg);
    }
    for (size_t k = 0; k < g; k++) {
        const json_t *x = json_array_get(rews, k);
        if (!json_is_number(x)) {
            snprintf(msg, sizeof msg, "\"rewards\"[%zu] is not a number", k);
            return bad(r, msg);
        }
        int clen;
        snprintf(msg, sizeof msg, "completion_ids[%zu]", k);
        tuna_status st = read_ids(r, json_array_get(comps, k), msg, &r->c_ids, &clen);
        if (st != TUNA_OK) return st;
        if (vec_grow(&r->rew, 1) || vec_push_i64(&r->c_off, (int64_t)r->c_ids.n)) return core_fail(TUNA_ERR_NOMEM, "out of memory");
        ((double *)r->rew.p)[r->rew.n++] = json_number_value(x);
        if (plen + clen > r->max_len) r->max_len = plen + clen;
    }
    return TUNA_OK;
}

static tuna_status read_line(reader *r, const char *text) {
    json_error_t je;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    tuna_status st;
    char msg[300];
    if (!json_is_object(o)) {
        snprintf(msg, sizeof msg, "not a JSON object%s%s", o ? "" : ": ", o ? "" : je.text);
        st = bad(r, msg);
    } else if (!json_object_get(o, "prompt_ids") || !json_object_get(o, "completion_ids") || !json_object_get(o, "rewards"))
        st = bad(r, "missing key: each line needs \"prompt_ids\", \"completion_ids\" and \"rewards\"");
    else {
        int plen;
        st = read_ids(r, json_object_get(o, "prompt_ids"), "prompt_ids", &r->p_ids, &plen);
        if (st == TUNA_OK && vec_push_i64(&r->p_off, (int64_t)r->p_ids.n)) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
        if (st == TUNA_OK) st = read_group(r, json_object_get(o, "completion_ids"), json_object_get(o, "rewards"), plen);
    }
    json_decref(o);
    return st;
}

void grpo_completions_free(grpo_completions *c) {
    if (!c) return;
    free(c->p_off); free(c->p_ids); free(c->c_off); free(c->c_ids); free(c->rewards);
    free(c);
}

static tuna_status read_all(reader *r, FILE *f) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    tuna_status st = TUNA_OK;
    while (st == TUNA_OK && (len = getline(&line, &cap, f)) >= 0) {
        r->line++;
        size_t i = 0;
        while (i < (size_t)len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n')) i++;
        if (i == (size_t)len) continue; /* blank line */
        st = read_line(r, line);
    }
    free(line);
    if (st == TUNA_OK && ferror(f)) st = core_fail(TUNA_ERR_IO, "%s: read error", r->path);
    return st;
}

tuna_status grpo_completions_read_stream(FILE *f, const char *path, int G, int V, grpo_completions **out) {
    *out = NULL;
    reader r = {.path = path, .V = V, .G = G};
    r.p_off.sz = r.c_off.sz = sizeof(int64_t), r.p_ids.sz = r.c_ids.sz = sizeof(int32_t), r.rew.sz = sizeof(double);
    tuna_status st = TUNA_OK;
    if (vec_push_i64(&r.p_off, 0) || vec_push_i64(&r.c_off, 0)) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
    if (st == TUNA_OK) st = read_all(&r, f);
    if (st == TUNA_OK && r.p_off.n < 2) st = core_fail(TUNA_ERR_ARG, "%s: no groups (one JSON object per line)", path);
    grpo_completions *c = st == TUNA_OK ? calloc(1, sizeof *c) : NULL;
    if (st == TUNA_OK && !c) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
    if (st != TUNA_OK) {
        free(r.p_off.p); free(r.p_ids.p); free(r.c_off.p); free(r.c_ids.p); free(r.rew.p);
        return st;
    }
    c->n = (int)r.p_off.n - 1, c->G = r.G, c->max_len = r.max_len, c->eos = -1;
    c->p_off = r.p_off.p, c->p_ids = r.p_ids.p, c->c_off = r.c_off.p, c->c_ids = r.c_ids.p, c->rewards = r.rew.p;
    *out = c;
    return TUNA_OK;
}

tuna_status grpo_completions_read(const char *path, int G, int V, grpo_completions **out) {
    *out = NULL;
    FILE *f = NULL;
    tuna_status st = input_file_open(path, 0, &f);
    if (st != TUNA_OK) return st;
    st = grpo_completions_read_stream(f, path, G, V, out);
    fclose(f);
    return st;
}

tuna_status grpo_completions_fill(void *ctx, tuna_model *m, int64_t gen, const int64_t *items, int n, grpo_rows *rows) {
    const grpo_completions *c = ctx;
    (void)m, (void)gen;
    int G = c->G;
    for (int i = 0; i < n; i++) {
        int64_t it = items[i], p0 = c->p_off[it];
        int plen = (int)(c->p_off[it + 1] - p0);
        for (int g = 0; g < G; g++) {
            int r = i * G + g;
            int64_t q = it * G + g, c0 = c->c_off[q];
            int clen = (int)(c->c_off[q + 1] - c0);
            if (plen + clen > rows->T) return core_fail(TUNA_ERR_ARG, "group %lld: %d tokens, more than %d", (long long)it + 1, plen + clen, rows->T);
            int32_t *dst = rows->tok + (size_t)r * rows->T;
            memcpy(dst, c->p_ids + p0, (size_t)plen * sizeof(int32_t));
            memcpy(dst + plen, c->c_ids + c0, (size_t)clen * sizeof(int32_t));
            rows->plen[r] = plen, rows->clen[r] = clen;
            rows->eos_end[r] = c->eos >= 0 && c->c_ids[c0 + clen - 1] == c->eos;
            rows->reward[r] = c->rewards[q];
            for (int k = 0; k < rows->K; k++) rows->per_func[(size_t)r * rows->K + k] = c->rewards[q];
        }
    }
    return TUNA_OK;
}
