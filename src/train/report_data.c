/* report_data.c — metrics.jsonl read into series (one per numeric key,
 * sorted by step, non-finite values kept and counted, a resumed run's
 * repeated steps resolved to the later line), and the statistics report.c
 * shows (median, last finite value, minimum, EMA smoothing). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "train/report_data.h"
#include "core/error.h"

void metrics_free(metrics *m) {
    for (size_t i = 0; i < m->n; i++) { free(m->s[i].name); free(m->s[i].p); }
    free(m->s);
}

series *metrics_find(const metrics *m, const char *name) {
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->s[i].name, name)) return &m->s[i];
    return NULL;
}

static series *metrics_get(metrics *m, const char *name) {
    series *s = metrics_find(m, name);
    if (s) return s;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        series *ns = realloc(m->s, cap * sizeof *ns);
        if (!ns) return NULL;
        m->s = ns;
        m->cap = cap;
    }
    s = &m->s[m->n];
    memset(s, 0, sizeof *s);
    s->name = strdup(name);
    if (!s->name) return NULL;
    m->n++;
    return s;
}

static int series_add(series *s, double x, double y, long ord) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        point *np = realloc(s->p, cap * sizeof *np);
        if (!np) return 0;
        s->p = np;
        s->cap = cap;
    }
    s->p[s->n++] = (point){x, y, ord};
    if (!isfinite(y)) s->nonfinite++;
    return 1;
}

/* Keys that are bookkeeping, not per-step curves. */
static int is_bookkeeping(const char *k) {
    size_t n = strlen(k);
    return !strcmp(k, "step") || !strcmp(k, "epoch") || !strcmp(k, "elapsed_s") || !strcmp(k, "tokens") ||
           !strcmp(k, "eval_pairs") || (n >= 7 && !strcmp(k + n - 7, "_tokens"));
}

/* JSON has no NaN/inf, but C's printf writes nan/-nan/inf and Python's json
 * writes NaN/Infinity: rewrites those bare words (outside strings) as null so
 * the line parses and the value is counted as non-finite. malloc'd. */
static char *nonfinite_to_null(const char *s) {
    size_t n = strlen(s);
    char *o = malloc(2 * n + 1), *w = o;
    if (!o) return NULL;
    int in_str = 0;
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (in_str) {
            *w++ = c;
            if (c == '\\' && i + 1 < n) *w++ = s[++i];
            else if (c == '"') in_str = 0;
            i++;
            continue;
        }
        if (c == '"') { in_str = 1; *w++ = c; i++; continue; }
        size_t j = i + ((c == '-' || c == '+') ? 1 : 0), k = j;
        while (k < n && ((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z'))) k++;
        if (k > j && (((k - j) == 3 && (!strncasecmp(s + j, "nan", 3) || !strncasecmp(s + j, "inf", 3))) ||
                      ((k - j) == 8 && !strncasecmp(s + j, "infinity", 8)))) {
            memcpy(w, "null", 4);
            w += 4;
            i = k;
            continue;
        }
        if (k > j) { memcpy(w, s + i, k - i); w += k - i; i = k; continue; }
        *w++ = c;
        i++;
    }
    *w = '\0';
    return o;
}

static int cmp_point(const void *a, const void *b) {
    const point *p = a, *q = b;
    if (p->x != q->x) return p->x < q->x ? -1 : 1;
    return (p->ord > q->ord) - (p->ord < q->ord);
}

/* Sorts by step and keeps the last value of a repeated step: a run resumed
 * from a checkpoint logs the steps after it again, and the later ones are the
 * ones the saved weights went through. Returns how many were dropped. */
static size_t series_normalise(series *s) {
    qsort(s->p, s->n, sizeof *s->p, cmp_point);
    size_t w = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (w && s->p[w - 1].x == s->p[i].x) s->p[w - 1] = s->p[i];
        else s->p[w++] = s->p[i];
    }
    size_t dropped = s->n - w;
    s->n = w;
    s->nonfinite = 0;
    for (size_t i = 0; i < s->n; i++) s->nonfinite += !isfinite(s->p[i].y);
    return dropped;
}

tuna_status metrics_load(metrics *m, const char *path) {
    memset(m, 0, sizeof *m);
    m->elapsed = m->epoch = NAN;
    FILE *f = fopen(path, "r");
    if (!f) return core_fail(TUNA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    long ln = 0;
    tuna_status st = TUNA_OK;
    while (st == TUNA_OK && (len = getline(&line, &lcap, f)) >= 0) {
        ln++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ')) line[--len] = '\0';
        if (len == 0) continue;
        json_t *o = json_loads(line, 0, NULL);
        if (!o) {
            char *fixed = nonfinite_to_null(line);
            if (!fixed) { st = core_fail(TUNA_ERR_NOMEM, "%s: out of memory", path); break; }
            o = json_loads(fixed, 0, NULL);
            free(fixed);
        }
        json_t *js = o ? json_object_get(o, "step") : NULL;
        if (!o || !json_is_object(o)) {
            /* a run killed mid-write leaves a truncated last line: count it, keep the rest */
            if (!m->bad_lines++) m->first_bad = ln;
            json_decref(o);
            continue;
        }
        if (!json_is_number(js)) { json_decref(o); continue; } /* not per-step (e.g. the mixture summary) */
        double step = json_number_value(js);
        int eval = json_object_get(o, "eval_loss") != NULL;
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v) {
            if (is_bookkeeping(key)) continue;
            double y;
            if (json_is_number(v)) y = json_number_value(v);
            else if (json_is_null(v)) y = NAN;
            else continue;
            series *s = metrics_get(m, key);
            if (!s || !series_add(s, step, y, ln)) { st = core_fail(TUNA_ERR_NOMEM, "%s: out of memory", path); break; }
            s->eval |= eval;
        }
        if (!eval) {
            json_t *e = json_object_get(o, "elapsed_s");
            if (json_is_number(e)) m->elapsed = json_number_value(e);
            e = json_object_get(o, "epoch");
            if (json_is_number(e)) m->epoch = json_number_value(e);
        }
        json_decref(o);
    }
    free(line);
    if (st == TUNA_OK && ferror(f)) st = core_fail(TUNA_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    fclose(f);
    if (st != TUNA_OK) { metrics_free(m); return st; }
    for (size_t i = 0; i < m->n; i++) {
        size_t d = series_normalise(&m->s[i]);
        if (!strcmp(m->s[i].name, "loss")) m->dup_steps = (long)d;
    }
    return TUNA_OK;
}

/* ---- statistics ---- */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double series_median(const series *s) {
    if (!s) return NAN;
    double *v = malloc((s->n + 1) * sizeof *v);
    if (!v) return NAN;
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (isfinite(s->p[i].y)) v[k++] = s->p[i].y;
    double med = NAN;
    if (k) {
        qsort(v, k, sizeof *v, cmp_double);
        med = k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
    }
    free(v);
    return med;
}

const point *series_last_finite(const series *s) {
    for (size_t i = s ? s->n : 0; i-- > 0;)
        if (isfinite(s->p[i].y)) return &s->p[i];
    return NULL;
}

const point *series_min(const series *s) {
    const point *best = NULL;
    for (size_t i = 0; s && i < s->n; i++)
        if (isfinite(s->p[i].y) && (!best || s->p[i].y < best->y)) best = &s->p[i];
    return best;
}

/* Bias-corrected EMA (as TensorBoard's smoothing) over the finite values, with
 * a span that grows with the run (one per `per` points) so 100 steps and 100k
 * steps both read well. Returns a new series (caller frees p), empty when
 * smoothing would not help (a span under 2). */
series series_ema(const series *s, int per, int *span_out) {
    series e = {0};
    size_t finite = s ? s->n - s->nonfinite : 0;
    double span = (double)finite / per;
    if (span > 150) span = 150;
    *span_out = (int)span;
    if (span < 2 || !(e.p = malloc(s->n * sizeof *e.p))) return e;
    double beta = 1 - 2 / (span + 1), acc = 0, corr = 1;
    for (size_t i = 0; i < s->n; i++) {
        if (!isfinite(s->p[i].y)) continue;
        acc = beta * acc + (1 - beta) * s->p[i].y;
        corr *= beta;
        e.p[e.n++] = (point){s->p[i].x, acc / (1 - corr), 0};
    }
    return e;
}

chart_series series_chart(const series *s) {
    return s ? (chart_series){s->p, s->n, s->nonfinite} : (chart_series){0};
}
