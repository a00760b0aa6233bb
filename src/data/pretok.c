/* pretok.c — reader for pre-tokenized JSONL ({"input_ids":[...],"labels":[...]}),
 * the format `tuna eval` and outside tools exchange. Each bad line is reported
 * as FILE:LINE with what is wrong; nothing is skipped silently. Also the
 * data set operations on whole sets: concatenation into tasks (mixing) and
 * dropping sequences with no counted token. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/input_file.h"
#include "tuna.h"
#include "core/json_error.h"
#include "core/error.h"
#include "data/pretok_internal.h"

static int grow(void **buf, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 1;
    int64_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *nb = realloc(*buf, (size_t)c * elem);
    if (!nb) return 0;
    *buf = nb;
    *cap = c;
    return 1;
}

tuna_status tuna_pretok_load(tuna_pretok **out, const char *path, int vocab_size) {
    *out = NULL;
    FILE *f;
    tuna_status st = input_file_open(path, 0, &f);
    if (st != TUNA_OK) return st;
    tuna_pretok p;
    memset(&p, 0, sizeof p);
    int64_t cap_seq = 0, cap_tok = 0, cap_lab = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    long lineno = 0;
    if (!grow((void **)&p.off, &cap_seq, 1, sizeof(int64_t))) st = core_fail(TUNA_ERR_NOMEM, "out of memory");
    if (st == TUNA_OK) p.off[0] = 0;
    while (st == TUNA_OK && (len = getline(&line, &lcap, f)) != -1) {
        lineno++;
        int blank = 1;
        for (ssize_t i = 0; i < len && blank; i++) blank = (line[i] == ' ' || line[i] == '\t' || line[i] == '\n' || line[i] == '\r');
        if (blank) continue;
        if ((ssize_t)strlen(line) != len) { st = core_fail(TUNA_ERR_FORMAT, "%s:%ld: line contains a NUL byte", path, lineno); break; }
        json_error_t jerr;
        json_t *o = json_loadb(line, (size_t)len, 0, &jerr);
        if (!o) { st = core_fail(TUNA_ERR_FORMAT, "%s:%ld: not valid JSON: %s", path, lineno, tuna_json_error_text(&jerr)); break; }
        json_t *ids = json_object_get(o, "input_ids"), *lab = json_object_get(o, "labels");
        if (!json_is_object(o) || !json_is_array(ids)) {
            st = core_fail(TUNA_ERR_FORMAT, "%s:%ld: expected an object with an \"input_ids\" array", path, lineno);
        } else if (lab && !json_is_null(lab) && (!json_is_array(lab) || json_array_size(lab) != json_array_size(ids))) {
            st = core_fail(TUNA_ERR_FORMAT, "%s:%ld: \"labels\" must be an array of the same length as \"input_ids\" (%zu)",
                           path, lineno, json_array_size(ids));
        } else if (json_array_size(ids) == 0) {
            st = core_fail(TUNA_ERR_FORMAT, "%s:%ld: \"input_ids\" is empty", path, lineno);
        } else if (json_array_size(ids) > (1u << 24)) {
            st = core_fail(TUNA_ERR_FORMAT, "%s:%ld: sequence too long", path, lineno);
        } else {
            int64_t n = (int64_t)json_array_size(ids), base = p.off[p.n];
            if (!grow((void **)&p.ids, &cap_tok, base + n, sizeof(int32_t)) ||
                !grow((void **)&p.labels, &cap_lab, base + n, sizeof(int32_t)) ||
                !grow((void **)&p.off, &cap_seq, p.n + 2, sizeof(int64_t)))
                st = core_fail(TUNA_ERR_NOMEM, "out of memory reading %s", path);
            for (int64_t i = 0; st == TUNA_OK && i < n; i++) {
                json_t *v = json_array_get(ids, (size_t)i);
                if (!json_is_integer(v)) { st = core_fail(TUNA_ERR_FORMAT, "%s:%ld: input_ids[%lld] is not an integer", path, lineno, (long long)i); break; }
                json_int_t id = json_integer_value(v);
                if (id < 0 || (vocab_size > 0 && id >= vocab_size) || id > INT32_MAX) {
                    st = core_fail(TUNA_ERR_FORMAT, "%s:%ld: input_ids[%lld] = %lld is outside the vocabulary (0..%d)", path,
                                   lineno, (long long)i, (long long)id, vocab_size - 1);
                    break;
                }
                p.ids[base + i] = (int32_t)id;
                if (lab && !json_is_null(lab)) {
                    json_t *lv = json_array_get(lab, (size_t)i);
                    if (!json_is_integer(lv)) { st = core_fail(TUNA_ERR_FORMAT, "%s:%ld: labels[%lld] is not an integer", path, lineno, (long long)i); break; }
                    json_int_t l = json_integer_value(lv);
                    if (l != -100 && (l < 0 || (vocab_size > 0 && l >= vocab_size) || l > INT32_MAX)) {
                        st = core_fail(TUNA_ERR_FORMAT, "%s:%ld: labels[%lld] = %lld is neither -100 nor a token id (0..%d)",
                                       path, lineno, (long long)i, (long long)l, vocab_size - 1);
                        break;
                    }
                    p.labels[base + i] = (int32_t)l;
                } else p.labels[base + i] = (int32_t)id;
            }
            if (st == TUNA_OK) {
                p.n++;
                p.off[p.n] = base + n;
                if (n > p.max_len) p.max_len = (int)n;
            }
        }
        json_decref(o);
    }
    free(line);
    if (st == TUNA_OK && ferror(f)) st = core_fail(TUNA_ERR_IO, "%s: read error", path);
    fclose(f);
    if (st != TUNA_OK) { pretok_clear(&p); return st; }
    return pretok_take(&p, out);
}

tuna_status tuna_pretok_concat(const tuna_pretok *const *parts, int n, tuna_pretok **out_p) {
    *out_p = NULL;
    int64_t seqs = 0, toks = 0;
    int packed = n > 0 && parts[0]->pos;
    for (int i = 0; i < n; i++) {
        if (!parts[i]->pos != !packed) return core_fail(TUNA_ERR_ARG, "concat: packed and unpacked data sets mixed");
        seqs += parts[i]->n;
        toks += parts[i]->off[parts[i]->n];
    }
    tuna_pretok all, *out = &all;
    memset(out, 0, sizeof *out);
    out->off = malloc((size_t)(seqs + 1) * sizeof(int64_t));
    out->ids = malloc((size_t)(toks ? toks : 1) * sizeof(int32_t));
    out->labels = malloc((size_t)(toks ? toks : 1) * sizeof(int32_t));
    out->task_off = malloc((size_t)(n + 1) * sizeof(int64_t));
    if (packed) out->pos = malloc((size_t)(toks ? toks : 1) * sizeof(int32_t));
    if (!out->off || !out->ids || !out->labels || !out->task_off || (packed && !out->pos)) {
        pretok_clear(out);
        return core_fail(TUNA_ERR_NOMEM, "out of memory concatenating data");
    }
    out->off[0] = 0;
    out->task_off[0] = 0;
    out->n_tasks = n;
    for (int i = 0; i < n; i++) {
        const tuna_pretok *p = parts[i];
        int64_t base = out->off[out->n];
        memcpy(out->ids + base, p->ids, (size_t)p->off[p->n] * sizeof(int32_t));
        memcpy(out->labels + base, p->labels, (size_t)p->off[p->n] * sizeof(int32_t));
        if (packed) memcpy(out->pos + base, p->pos, (size_t)p->off[p->n] * sizeof(int32_t));
        for (int64_t k = 1; k <= p->n; k++) out->off[out->n + k] = base + p->off[k];
        out->n += p->n;
        out->task_off[i + 1] = out->n;
        if (p->max_len > out->max_len) out->max_len = p->max_len;
    }
    return pretok_take(out, out_p);
}

int64_t tuna_pretok_drop_uncounted(tuna_pretok *p) {
    if (p->pos || p->n == 0) return 0;
    int64_t keep = 0, toks = 0;
    for (int64_t i = 0; i < p->n; i++) {
        int counted = 0;
        for (int64_t k = p->off[i] + 1; k < p->off[i + 1] && !counted; k++) counted = p->labels[k] != -100;
        if (counted) { keep++; toks += p->off[i + 1] - p->off[i]; }
    }
    if (keep == p->n) return 0;
    tuna_pretok q;
    memset(&q, 0, sizeof q);
    q.off = malloc((size_t)(keep + 1) * sizeof(int64_t));
    q.ids = malloc((size_t)(toks ? toks : 1) * sizeof(int32_t));
    q.labels = malloc((size_t)(toks ? toks : 1) * sizeof(int32_t));
    if (!q.off || !q.ids || !q.labels) { free(q.off); free(q.ids); free(q.labels); return -1; }
    q.off[0] = 0;
    for (int64_t i = 0; i < p->n; i++) {
        int counted = 0;
        for (int64_t k = p->off[i] + 1; k < p->off[i + 1] && !counted; k++) counted = p->labels[k] != -100;
        if (!counted) continue;
        int64_t len = p->off[i + 1] - p->off[i], o = q.off[q.n];
        memcpy(q.ids + o, p->ids + p->off[i], (size_t)len * sizeof(int32_t));
        memcpy(q.labels + o, p->labels + p->off[i], (size_t)len * sizeof(int32_t));
        q.off[q.n + 1] = o + len;
        q.n++;
        if (len > q.max_len) q.max_len = (int)len;
    }
    int64_t removed = p->n - q.n;
    pretok_clear(p);
    *p = q;
    return removed;
}
