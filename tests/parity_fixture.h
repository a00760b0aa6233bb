/* parity_fixture.h — what the parity tests (test_parity.c, test_parity_bf16.c)
 * share about a fixture folder tests/fixtures/parity/<name>/: the padded
 * batch of its data.jsonl, the counted tokens, its reference tensors read
 * from a safetensors file, a parameter's gradient in the file's layout, and
 * the max abs difference of two arrays. */
#ifndef TUNA_TEST_PARITY_FIXTURE_H
#define TUNA_TEST_PARITY_FIXTURE_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getline */
#endif
#include <jansson.h>
#include <stdint.h>

#include "check.h"
#include "io/safetensors.h"
#include "tuna.h"

/* A padded batch owned by the test. */
typedef struct {
    int B, T;
    int32_t *ids, *labels; /* [B,T] */
} batch_buf;

static inline void batch_buf_free(batch_buf *b) {
    free(b->ids);
    free(b->labels);
    b->ids = b->labels = NULL;
}

/* Reads data.jsonl ({"input_ids":[..],"labels":[..]} per line) into a batch
 * right-padded with id 0 / label -100. Returns 0 on success. */
static inline int read_jsonl_batch(const char *path, batch_buf *out) {
    enum { MAXREC = 16 };
    json_t *recs[MAXREC];
    int n = 0, T = 0, ok = 1;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    while (ok && getline(&line, &cap, f) > 0) {
        if (line[0] == '\n') continue;
        json_error_t err;
        json_t *r = json_loads(line, 0, &err);
        json_t *ids = r ? json_object_get(r, "input_ids") : NULL;
        json_t *lab = r ? json_object_get(r, "labels") : NULL;
        if (!json_is_array(ids) || !json_is_array(lab) || json_array_size(ids) != json_array_size(lab) ||
            json_array_size(ids) == 0 || n == MAXREC) {
            fprintf(stderr, "%s: bad record %d\n", path, n + 1);
            json_decref(r);
            ok = 0;
            break;
        }
        if ((int)json_array_size(ids) > T) T = (int)json_array_size(ids);
        recs[n++] = r;
    }
    free(line);
    fclose(f);
    if (ok && n > 0) {
        out->B = n;
        out->T = T;
        out->ids = calloc((size_t)n * T, sizeof(int32_t));
        out->labels = malloc((size_t)n * T * sizeof(int32_t));
        if (!out->ids || !out->labels) ok = 0;
        for (int b = 0; ok && b < n; b++) {
            json_t *ids = json_object_get(recs[b], "input_ids"), *lab = json_object_get(recs[b], "labels");
            for (int t = 0; t < T; t++) {
                int in = t < (int)json_array_size(ids);
                out->ids[(size_t)b * T + t] = in ? (int32_t)json_integer_value(json_array_get(ids, t)) : 0;
                out->labels[(size_t)b * T + t] = in ? (int32_t)json_integer_value(json_array_get(lab, t)) : -100;
            }
        }
    }
    for (int i = 0; i < n; i++) json_decref(recs[i]);
    if (!ok || n == 0) {
        batch_buf_free(out);
        return -1;
    }
    return 0;
}

/* Counted tokens as HF counts them: labels[t+1] != -100 within each row. */
static inline int64_t count_tokens(const int32_t *labels, int B, int T) {
    int64_t n = 0;
    for (int b = 0; b < B; b++)
        for (int t = 1; t < T; t++) n += labels[(size_t)b * T + t] != -100;
    return n;
}

/* Expected tensor `name` as fp32 (malloc'd), checking its element count;
 * NULL (and a failed CHECK) when absent or of another size. */
static inline float *expected_f32(const st_file *f, const char *fx, const char *name, int64_t numel) {
    const st_tensor *t = st_find(f, name);
    CHECKF(t != NULL, "%s: the reference file has no %s", fx, name);
    if (!t) return NULL;
    CHECKF(t->numel == numel, "%s: %s has %lld elements, model gives %lld", fx, name, (long long)t->numel,
           (long long)numel);
    if (t->numel != numel) return NULL;
    float *out = malloc((size_t)numel * sizeof(float));
    if (!out || st_to_f32(t, out) != TUNA_OK) {
        CHECKF(0, "%s: cannot read %s: %s", fx, name, tuna_last_error());
        free(out);
        return NULL;
    }
    return out;
}

/* I32 tensor as a malloc'd int32 array (memcpy: the mapping need not be aligned). */
static inline int32_t *expected_i32(const st_file *f, const char *fx, const char *name, int64_t *numel) {
    const st_tensor *t = st_find(f, name);
    CHECKF(t && t->dtype == ST_I32, "%s: the reference file has no I32 %s", fx, name);
    if (!t || t->dtype != ST_I32) return NULL;
    int32_t *out = malloc((size_t)t->numel * sizeof(int32_t));
    if (out) memcpy(out, t->data, (size_t)t->numel * sizeof(int32_t));
    *numel = t->numel;
    return out;
}

static inline double max_abs_diff(const float *a, const float *b, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || d != d) m = d; /* NaN propagates as the worst */
    }
    return m;
}

/* p's gradient in the file's layout (malloc'd): GPT-2's Conv1D weights are
 * stored [R][K], the transpose of tuna's internal [K][R]. NULL (and a failed
 * CHECK) when p has no gradient or cannot be transposed. */
static inline float *grad_file_layout(const tuna_param *p, const char *fx) {
    CHECKF(p->grad != NULL, "%s: %s has no gradient buffer", fx, p->name);
    CHECKF(!p->transposed || p->ndim == 2, "%s: transposed %s is not 2-D", fx, p->name);
    if (!p->grad || (p->transposed && p->ndim != 2)) return NULL;
    float *out = malloc((size_t)p->numel * sizeof(float));
    if (!out) return NULL;
    if (!p->transposed) {
        memcpy(out, p->grad, (size_t)p->numel * sizeof(float));
        return out;
    }
    int64_t R = p->shape[0], K = p->shape[1];
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < K; k++) out[r * K + k] = p->grad[k * R + r];
    return out;
}
#endif
