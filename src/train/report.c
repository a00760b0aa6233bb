/* report.c — tuna_report_write: a training run folder -> report.html.
 *
 * The page is self-contained: CSS inline, charts drawn here as inline SVG
 * paths (no script, no fonts, no URLs), so it opens the same offline, in a
 * mail attachment or years later. Rules:
 *  - every string that comes from a file is HTML-escaped (sb_esc);
 *  - series are drawn from metrics.jsonl as read: non-finite values break the
 *    line and are marked on the top edge, never interpolated or dropped silently;
 *  - long runs are reduced per 0.8 px column to the column's min and max, in
 *    the order they occurred, so spikes survive and 100k steps stay ~100 KB;
 *  - each path is simplified (polyline.h) within what is left of a 1 px
 *    budget: a drawn line stays within 1 px of every step it is drawn from;
 *  - what could not be read (bad lines, missing files) is listed on the page.
 * The page is built in memory, written under a temporary name, then renamed. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "io/atomic_file.h"
#include "tuna_report.h"
#include "train/polyline.h"

/* ---- growable output buffer; an allocation failure is sticky (checked once at the end) ---- */
typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static int sb_reserve(sbuf *b, size_t extra) {
    if (b->oom) return 0;
    if (b->n + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = 1; return 0; }
    b->p = p;
    b->cap = cap;
    return 1;
}

static void sb_put(sbuf *b, const char *s, size_t len) {
    if (!sb_reserve(b, len)) return;
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (!sb_reserve(b, 256)) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k >= b->cap - b->n) {
        if (!sb_reserve(b, (size_t)k)) return;
        va_start(ap, fmt);
        vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
    }
    b->n += (size_t)k;
}

/* HTML-escapes s (text and attribute values alike). */
static void sb_esc(sbuf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_puts(b, "&amp;"); break;
        case '<': sb_puts(b, "&lt;"); break;
        case '>': sb_puts(b, "&gt;"); break;
        case '"': sb_puts(b, "&quot;"); break;
        case '\'': sb_puts(b, "&#39;"); break;
        default: sb_put(b, s, 1);
        }
    }
}

/* ---- number formatting ---- */

/* %.*g without the zero-padded exponent ("2e-05" -> "2e-5"); NaN/inf spelled out. */
static const char *fmt_g(char *buf, size_t n, double v, int sig) {
    if (!isfinite(v)) { snprintf(buf, n, "%s", isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf"); return buf; }
    snprintf(buf, n, "%.*g", sig, v);
    char *e = strchr(buf, 'e');
    if (e) {
        char *d = e + 1, *w = e + 1;
        if (*d == '+') d++;
        else if (*d == '-') *w++ = *d++;
        while (*d == '0' && d[1]) d++;
        memmove(w, d, strlen(d) + 1);
    }
    return buf;
}

/* Human duration: "42.0 s", "3 min 12 s", "2 h 05 min". */
static const char *fmt_dur(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) snprintf(buf, n, "—");
    else if (s < 60) snprintf(buf, n, "%.1f s", s);
    else if (s < 3600) snprintf(buf, n, "%d min %02d s", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, n, "%d h %02d min", (int)(s / 3600), (int)fmod(s / 60, 60));
    return buf;
}

/* Axis tick labels: large round values with k/M ("12k", "1.5M") rather than exponents. */
static const char *fmt_tick(char *buf, size_t n, double v) {
    double a = fabs(v);
    if (a >= 1e6 && a < 1e10) { fmt_g(buf, n, v / 1e6, 4); strncat(buf, "M", n - strlen(buf) - 1); }
    else if (a >= 1e4 && a < 1e6) { fmt_g(buf, n, v / 1e3, 4); strncat(buf, "k", n - strlen(buf) - 1); }
    else fmt_g(buf, n, v, 4);
    return buf;
}

/* Step numbers on the x axis: 20000 -> "20k". */
static const char *fmt_step(char *buf, size_t n, double v) {
    if (fabs(v) >= 10000 && fmod(v, 1000) == 0) snprintf(buf, n, "%.0fk", v / 1000);
    else fmt_g(buf, n, v, 6);
    return buf;
}

/* ---- series read from metrics.jsonl ---- */
typedef struct {
    double x, y; /* step, value (NaN or inf when the file had a non-finite value) */
    long ord;    /* line number: ties on x keep file order, the later line wins */
} point;

typedef struct {
    char *name;
    int eval;    /* came from eval lines (those carrying "eval_loss") */
    point *p;
    size_t n, cap;
    size_t nonfinite;
} series;

typedef struct {
    series *s;
    size_t n, cap;
    long bad_lines, first_bad; /* unreadable lines, and the first one's number */
    long dup_steps;            /* training steps logged twice (a resumed run) */
    double elapsed, epoch;     /* last values seen on training lines (NaN if none) */
} metrics;

static void metrics_free(metrics *m) {
    for (size_t i = 0; i < m->n; i++) { free(m->s[i].name); free(m->s[i].p); }
    free(m->s);
}

static series *metrics_find(const metrics *m, const char *name) {
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

static tuna_status metrics_load(metrics *m, const char *path) {
    memset(m, 0, sizeof *m);
    m->elapsed = m->epoch = NAN;
    FILE *f = fopen(path, "r");
    if (!f) return tuna_fail(TUNA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
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
            if (!fixed) { st = tuna_fail(TUNA_ERR_NOMEM, "%s: out of memory", path); break; }
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
            if (!s || !series_add(s, step, y, ln)) { st = tuna_fail(TUNA_ERR_NOMEM, "%s: out of memory", path); break; }
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
    if (st == TUNA_OK && ferror(f)) st = tuna_fail(TUNA_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
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

static double series_median(const series *s) {
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

static const point *series_last_finite(const series *s) {
    for (size_t i = s ? s->n : 0; i-- > 0;)
        if (isfinite(s->p[i].y)) return &s->p[i];
    return NULL;
}

static const point *series_min(const series *s) {
    const point *best = NULL;
    for (size_t i = 0; s && i < s->n; i++)
        if (isfinite(s->p[i].y) && (!best || s->p[i].y < best->y)) best = &s->p[i];
    return best;
}

/* Bias-corrected EMA (as TensorBoard's smoothing) over the finite values, with
 * a span that grows with the run so 100 steps and 100k steps both read well.
 * Returns a new series (caller frees p), empty when smoothing would not help. */
static series series_ema(const series *s, int *span_out) {
    series e = {0};
    size_t finite = s ? s->n - s->nonfinite : 0;
    double span = finite / 60.0; /* a longer span lags visibly behind a fast early drop */
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

/* ---- charts ---- */
/* RAW: light, thin; LINE: solid (a light min/max band plus the column mean when
 * longer than the plot is wide); SMOOTH: solid, already smooth (column means
 * only); EVAL: line plus dots; DASH: dashed. */
typedef enum { LAYER_RAW, LAYER_LINE, LAYER_SMOOTH, LAYER_EVAL, LAYER_DASH } layer_style;

typedef struct {
    const series *s;
    layer_style style;
    const char *color;
    const char *label;
} layer;

typedef struct {
    double W, H;             /* viewBox size */
    double x0, x1, y0, y1;   /* plot area: left, right, top, bottom */
    double xlo, xhi, ylo, yhi;
    int logy;
} frame;

static double fx(const frame *f, double x) { return f->x0 + (x - f->xlo) / (f->xhi - f->xlo) * (f->x1 - f->x0); }

static double fy(const frame *f, double y) {
    double t = f->logy ? (log10(y) - log10(f->ylo)) / (log10(f->yhi) - log10(f->ylo)) : (y - f->ylo) / (f->yhi - f->ylo);
    return f->y1 - t * (f->y1 - f->y0);
}

/* A coordinate in tenths of a pixel, without a trailing ".0" (bytes add up at 100k steps). */
static void put_coord(sbuf *b, double v) {
    if (!(fabs(v) < 1e6)) v = 0; /* cannot happen for plotted values; keeps lround defined */
    long t = lround(v * 10);
    if (t % 10 == 0) sb_printf(b, "%ld", t / 10);
    else sb_printf(b, "%s%ld.%ld", t < 0 ? "-" : "", labs(t) / 10, labs(t) % 10);
}

/* Writes the "d" of a path: the points of each unbroken segment are
 * collected, simplified (polyline.h) so that the drawn line stays within eps
 * of every point given, then written. Coordinates are rounded to 0.05 px
 * (put_coord), which moves a drawn segment by at most 0.071 px. Flat
 * stretches and linear ramps cost two points. The budget, 1 px from every
 * step: PATH_EPS for a series drawn point by point; a long series is first
 * reduced to the min and max of each BUCKET_W-wide column (a step then lies
 * within BUCKET_W of the line through them), leaving BUCKET_EPS. */
#define PATH_EPS 0.9
#define BUCKET_W 0.8
#define BUCKET_EPS 0.12
typedef struct {
    sbuf *o;
    double eps;     /* tolerance of the simplification, px */
    double *x, *y;  /* points of the current segment */
    unsigned char *keep;
    size_t n, cap;
    int rings;      /* draw lone points as rings (few points) */
} pathw;

static void pw_point(pathw *w, double x, double y) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 256;
        double *nx = realloc(w->x, cap * sizeof *nx);
        if (nx) w->x = nx;
        double *ny = nx ? realloc(w->y, cap * sizeof *ny) : NULL;
        if (ny) w->y = ny;
        unsigned char *nk = ny ? realloc(w->keep, cap) : NULL;
        if (!nk) { w->o->oom = 1; return; } /* sticky: the report fails with TUNA_ERR_NOMEM */
        w->keep = nk;
        w->cap = cap;
    }
    w->x[w->n] = x;
    w->y[w->n] = y;
    w->n++;
}

/* Ends the current segment: simplifies and writes it. */
static void pw_break(pathw *w) {
    if (w->n == 0) return;
    polyline_simplify(w->x, w->y, w->n, w->eps, w->keep);
    for (size_t i = 0, k = 0; i < w->n; i++) {
        if (!w->keep[i]) continue;
        sb_puts(w->o, k == 0 ? "M" : k == 1 ? "L" : " ");
        put_coord(w->o, w->x[i]);
        sb_puts(w->o, " ");
        put_coord(w->o, w->y[i]);
        k++;
    }
    if (w->n == 1) /* a lone point (between gaps, or a 1-step run) would not show: a small ring, or a
                    * round-capped dot when there could be very many */
        sb_puts(w->o, w->rings ? "m-2.5 0a2.5 2.5 0 1 0 5 0a2.5 2.5 0 1 0-5 0" : "h0");
    w->n = 0;
}

/* Ends the path: writes the last segment and frees the buffers. */
static void pw_end(pathw *w) {
    pw_break(w);
    free(w->x);
    free(w->y);
    free(w->keep);
}

/* More points than twice the pixel columns: drawn as a band (with a mean line
 * for LAYER_LINE, column means only for LAYER_SMOOTH). */
static int needs_buckets(const frame *f, const series *s) { return (double)s->n > 2 * (f->x1 - f->x0); }

/* The mean of each pixel column: drawn over the min/max envelope of a long,
 * noisy series so the trend reads through the band. */
static void draw_column_means(sbuf *o, const frame *f, const series *s) {
    pathw w = {.o = o, .eps = PATH_EPS};
    long cur = LONG_MIN;
    double sum = 0, sx = 0;
    int k = 0;
    for (size_t i = 0; i <= s->n; i++) {
        const point *p = i < s->n ? &s->p[i] : NULL;
        long col = p ? (long)floor(fx(f, p->x)) : LONG_MAX;
        int bad = p && (!isfinite(p->y) || (f->logy && p->y <= 0));
        if ((col != cur || bad) && k) {
            double m = sum / k;
            pw_point(&w, sx / k, fy(f, f->logy ? pow(10, m) : m));
            sum = sx = 0;
            k = 0;
        }
        if (!p) break;
        cur = col;
        if (bad) { pw_break(&w); continue; }
        sum += f->logy ? log10(p->y) : p->y; /* geometric mean on a log axis */
        sx += fx(f, p->x);
        k++;
    }
    pw_end(&w);
}

/* Draws the finite values of s as a path; non-finite ones end the current
 * segment and their columns are appended to marks[] (if given). When there
 * are more points than two per column of BUCKET_W, each column contributes
 * its min and max in the order they occurred, so the drawn envelope keeps
 * every spike and the simplifier's work stays bounded by the plot's width. */
static void draw_series_path(sbuf *o, const frame *f, const series *s, double *marks, size_t *n_marks) {
    int bucket = (double)s->n > 2 * (f->x1 - f->x0) / BUCKET_W;
    pathw w = {.o = o, .eps = bucket ? BUCKET_EPS : PATH_EPS, .rings = 4 * (double)s->n < f->x1 - f->x0};
    long cur = LONG_MIN;
    size_t imin = 0, imax = 0;
    int have = 0;
    for (size_t i = 0; i <= s->n; i++) {
        const point *p = i < s->n ? &s->p[i] : NULL;
        double px = p ? fx(f, p->x) : 0;
        long col = p ? (long)floor(px / BUCKET_W) : LONG_MAX;
        if (bucket && col != cur && have) {
            size_t a = imin < imax ? imin : imax, b2 = imin < imax ? imax : imin;
            pw_point(&w, fx(f, s->p[a].x), fy(f, s->p[a].y));
            if (b2 != a) pw_point(&w, fx(f, s->p[b2].x), fy(f, s->p[b2].y));
            have = 0;
        }
        if (!p) break;
        cur = col;
        if (!isfinite(p->y) || (f->logy && p->y <= 0)) {
            if (bucket && have) { /* flush what came before the gap */
                size_t a = imin < imax ? imin : imax, b2 = imin < imax ? imax : imin;
                pw_point(&w, fx(f, s->p[a].x), fy(f, s->p[a].y));
                if (b2 != a) pw_point(&w, fx(f, s->p[b2].x), fy(f, s->p[b2].y));
                have = 0;
            }
            pw_break(&w);
            if (marks && !isfinite(p->y) && (*n_marks == 0 || fabs(marks[*n_marks - 1] - px) >= 1)) marks[(*n_marks)++] = px;
            continue;
        }
        if (!bucket) { pw_point(&w, px, fy(f, p->y)); continue; }
        if (!have) { imin = imax = i; have = 1; continue; }
        if (p->y < s->p[imin].y) imin = i;
        if (p->y > s->p[imax].y) imax = i;
    }
    pw_end(&w);
}

/* "Nice" linear tick step: 1, 2, 2.5 or 5 times a power of ten, about span/target. */
static double nice_step(double span, int target) {
    double raw = span / target, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10) * mag;
}

static int linear_ticks(double lo, double hi, int target, double *t, int max) {
    double st = nice_step(hi - lo, target);
    int n = 0;
    for (double k = ceil(lo / st - 1e-9); n < max && k * st <= hi + st * 1e-9; k++) {
        double v = k * st;
        t[n++] = fabs(v) < st * 1e-9 ? 0 : v;
    }
    return n;
}

/* Log-axis ticks: whole decades when the range spans several, then 1-2-5,
 * then denser mantissas, so a loss going from 3.2 to 1.4 still gets labelled
 * ticks (1.5, 2, 3); falls back to linear ticks inside a narrow range. */
static int log_ticks(double lo, double hi, double *t, int max) {
    static const double sets[][16] = {{1}, {1, 2, 5}, {1, 2, 3, 5}, {1, 1.5, 2, 3, 4, 5, 7},
                                      {1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9}};
    static const int sizes[] = {1, 3, 4, 7, 16};
    int dlo = (int)floor(log10(lo)), dhi = (int)ceil(log10(hi));
    int best = -1;
    for (int s = 0; s < 5; s++) {
        int n = 0;
        for (int d = dlo; d <= dhi; d++)
            for (int k = 0; k < sizes[s]; k++) {
                double v = sets[s][k] * pow(10, d);
                if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) n++;
            }
        if (n > 9) break;
        best = s;
        if (n >= 4) break;
    }
    int n = 0, stride = 1;
    if (best < 0) { best = 0; stride = (dhi - dlo) / 8 + 1; } /* many decades: every few */
    for (int d = dlo; d <= dhi; d++) {
        if ((d - dlo) % stride) continue;
        for (int k = 0; k < sizes[best] && n < max; k++) {
            double v = sets[best][k] * pow(10, d);
            if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) t[n++] = v;
        }
    }
    if (n < 2) return linear_ticks(lo, hi, 4, t, max);
    return n;
}

typedef struct {
    double W, H;
    double log_ratio;   /* use a log y axis when all values > 0 and max/min >= this (0: never) */
    int zero_floor;     /* linear axis: do not extend below 0 when all values are >= 0 */
    double ref;         /* a dashed horizontal reference line (NaN: none) */
    const char *ref_label;
    const char *aria;
    int small;          /* small multiple: tighter margins, smaller text */
} chart_opts;

static void chart(sbuf *o, const chart_opts *co, const layer *L, int nl) {
    frame f = {.W = co->W, .H = co->H};
    f.x0 = co->small ? 46 : 62;
    f.x1 = co->W - (co->small ? 16 : 18);
    f.y0 = co->small ? 10 : 30;
    f.y1 = co->H - (co->small ? 24 : 32);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    size_t nonfinite = 0;
    for (int l = 0; l < nl; l++) {
        const series *s = L[l].s;
        for (size_t i = 0; s && i < s->n; i++) {
            xmin = fmin(xmin, s->p[i].x);
            xmax = fmax(xmax, s->p[i].x);
            if (isfinite(s->p[i].y)) { ymin = fmin(ymin, s->p[i].y); ymax = fmax(ymax, s->p[i].y); }
        }
        if (s) nonfinite += s->nonfinite;
    }
    if (isfinite(co->ref)) { ymin = fmin(ymin, co->ref); ymax = fmax(ymax, co->ref); }
    sb_printf(o, "<svg class=\"chart\" viewBox=\"0 0 %g %g\" role=\"img\" aria-label=\"", co->W, co->H);
    sb_esc(o, co->aria);
    if (!(xmin <= xmax) || !(ymin <= ymax) || !isfinite(xmax - xmin) || !isfinite(ymax - ymin)) {
        sb_puts(o, "\">");
        sb_printf(o, "<rect class=\"frame\" x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\"/>", f.x0, f.y0, f.x1 - f.x0,
                  f.y1 - f.y0);
        sb_printf(o, "<text class=\"empty\" x=\"%g\" y=\"%g\">%s</text></svg>", (f.x0 + f.x1) / 2, (f.y0 + f.y1) / 2,
                  !(xmin <= xmax) ? "no data" : !(ymin <= ymax) ? "no finite values" : "values too large to plot");
        return;
    }
    /* x: steps from 0 (or the first step if negative); a single step gets a window around it */
    f.xlo = xmin >= 0 && xmax > xmin ? 0 : xmin - 1;
    f.xhi = xmax > xmin ? xmax : xmax + 1;
    /* y */
    f.logy = co->log_ratio > 0 && ymin > 0 && ymax / ymin >= co->log_ratio;
    if (f.logy) {
        double pad = pow(10, 0.04 * (log10(ymax) - log10(ymin)));
        f.ylo = ymin / pad;
        f.yhi = ymax * pad;
    } else if (ymax - ymin <= 1e-9 * fmax(fabs(ymax), fabs(ymin))) {
        /* constant (up to rounding, as an EMA of a constant is): centre the flat line */
        ymin = ymax = 0.5 * (ymin + ymax);
        double pad = ymin == 0 ? 1 : fabs(ymin) * 0.1;
        f.ylo = ymin - pad;
        f.yhi = ymax + pad;
        if (co->zero_floor && ymin > 0 && f.ylo < 0) f.ylo = 0;
    } else {
        double pad = 0.06 * (ymax - ymin);
        f.ylo = ymin - pad;
        f.yhi = ymax + pad;
        if (co->zero_floor && ymin >= 0 && f.ylo < 0) f.ylo = 0;
    }
    /* the frame, for the hover script to turn pixels back into steps and values */
    sb_printf(o, "\" data-f=\"%g %g %g %g %.17g %.17g %.17g %.17g %d\">", f.x0, f.x1, f.y0, f.y1, f.xlo, f.xhi, f.ylo,
              f.yhi, f.logy);
    char nb[48];
    double t[32];
    /* grid and tick labels */
    int nt = f.logy ? log_ticks(f.ylo, f.yhi, t, 32) : linear_ticks(f.ylo, f.yhi, co->small ? 4 : 5, t, 32);
    sb_puts(o, "<g class=\"grid\">");
    for (int i = 0; i < nt; i++) {
        double y = fy(&f, t[i]);
        sb_printf(o, "<path d=\"M%g ", f.x0);
        put_coord(o, y);
        sb_printf(o, "H%g\"/>", f.x1);
    }
    int ntx = linear_ticks(f.xlo, f.xhi, co->small ? 3 : 8, t + 16, 16);
    for (int i = 0; i < ntx; i++) {
        if (t[16 + i] != floor(t[16 + i])) continue; /* steps are whole */
        sb_puts(o, "<path d=\"M");
        put_coord(o, fx(&f, t[16 + i]));
        sb_printf(o, " %gV%g\"/>", f.y0, f.y1);
    }
    sb_puts(o, "</g><g class=\"ylab\">");
    nt = f.logy ? log_ticks(f.ylo, f.yhi, t, 16) : linear_ticks(f.ylo, f.yhi, co->small ? 4 : 5, t, 16);
    for (int i = 0; i < nt; i++) {
        sb_printf(o, "<text x=\"%g\" y=\"", f.x0 - 6);
        put_coord(o, fy(&f, t[i]) + 4);
        sb_printf(o, "\">%s</text>", fmt_tick(nb, sizeof nb, t[i]));
    }
    sb_puts(o, "</g><g class=\"xlab\">");
    for (int i = 0; i < ntx; i++) {
        if (t[16 + i] != floor(t[16 + i])) continue;
        sb_puts(o, "<text x=\"");
        put_coord(o, fx(&f, t[16 + i]));
        sb_printf(o, "\" y=\"%g\">%s</text>", f.y1 + 16, fmt_step(nb, sizeof nb, t[16 + i]));
    }
    sb_puts(o, "</g>");
    sb_printf(o, "<rect class=\"frame\" x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\"/>", f.x0, f.y0, f.x1 - f.x0,
              f.y1 - f.y0);
    if (!co->small)
        sb_printf(o, "<text class=\"axis\" x=\"%g\" y=\"%g\">step%s</text>", f.x1, f.H - 4,
                  f.logy ? " · log y axis" : "");
    else if (f.logy)
        sb_printf(o, "<text class=\"axis\" x=\"%g\" y=\"%g\">log y</text>", f.x1, f.H - 2);
    if (isfinite(co->ref)) {
        sb_printf(o, "<path class=\"ref\" d=\"M%g ", f.x0);
        put_coord(o, fy(&f, co->ref));
        sb_printf(o, "H%g\"/>", f.x1);
    }
    /* layers, in order (raw first so the smoothed line sits on top) */
    double *marks = malloc(((size_t)(f.x1 - f.x0) + 2 + nonfinite) * sizeof *marks);
    size_t n_marks = 0;
    for (int l = 0; l < nl; l++) {
        const series *s = L[l].s;
        if (!s || !s->n) continue;
        int envelope = L[l].style == LAYER_LINE && needs_buckets(&f, s);
        const char *cls = L[l].style == LAYER_RAW || envelope ? "raw" : L[l].style == LAYER_DASH ? "dash" : "line";
        sb_printf(o, "<path class=\"%s\" stroke=\"%s\"", cls, L[l].color);
        if (!envelope && L[l].label) { sb_puts(o, " data-n=\""); sb_esc(o, L[l].label); sb_puts(o, "\""); }
        sb_puts(o, " d=\"");
        if (L[l].style == LAYER_SMOOTH && needs_buckets(&f, s)) draw_column_means(o, &f, s);
        else draw_series_path(o, &f, s, marks, &n_marks);
        sb_puts(o, "\"/>");
        if (envelope) {
            sb_printf(o, "<path class=\"line\" stroke=\"%s\" data-n=\"", L[l].color);
            sb_esc(o, L[l].label ? L[l].label : "");
            sb_puts(o, " (mean)\" d=\"");
            draw_column_means(o, &f, s);
            sb_puts(o, "\"/>");
        }
        if (L[l].style == LAYER_EVAL && s->n <= 200) { /* points with native hover titles (no script needed) */
            sb_printf(o, "<g fill=\"%s\">", L[l].color);
            for (size_t i = 0; i < s->n; i++) {
                if (!isfinite(s->p[i].y)) continue;
                sb_puts(o, "<circle r=\"3.2\" cx=\"");
                put_coord(o, fx(&f, s->p[i].x));
                sb_puts(o, "\" cy=\"");
                put_coord(o, fy(&f, s->p[i].y));
                sb_printf(o, "\"><title>step %.0f: ", s->p[i].x);
                sb_esc(o, L[l].label);
                sb_printf(o, " %s</title></circle>", fmt_g(nb, sizeof nb, s->p[i].y, 5));
            }
            sb_puts(o, "</g>");
        }
    }
    if (marks && n_marks) { /* non-finite values: red ticks hanging from the top edge */
        sb_printf(o, "<g class=\"nf\"><title>%zu non-finite value%s (NaN/inf) not drawn</title><path d=\"", nonfinite,
                  nonfinite == 1 ? "" : "s");
        for (size_t i = 0; i < n_marks; i++) {
            sb_puts(o, "M");
            put_coord(o, marks[i]);
            sb_printf(o, " %gl-4 -7h8z", f.y0);
        }
        sb_puts(o, "\"/></g>");
    }
    free(marks);
    /* legend along the top */
    if (!co->small) {
        double lx = f.x0 + 4;
        for (int l = 0; l < nl; l++) {
            if (!L[l].s || !L[l].s->n || !L[l].label) continue;
            const char *cls = L[l].style == LAYER_RAW ? "raw" : L[l].style == LAYER_DASH ? "dash" : "line";
            sb_printf(o, "<path class=\"%s\" stroke=\"%s\" d=\"M%g 16h18\"/>", cls, L[l].color, lx);
            if (L[l].style == LAYER_EVAL) sb_printf(o, "<circle r=\"3.2\" cx=\"%g\" cy=\"16\" fill=\"%s\"/>", lx + 9, L[l].color);
            sb_printf(o, "<text class=\"leg\" x=\"%g\" y=\"20\">", lx + 24);
            sb_esc(o, L[l].label);
            sb_puts(o, "</text>");
            lx += 24 + 6.6 * (double)strlen(L[l].label) + 18;
        }
        if (isfinite(co->ref) && co->ref_label) {
            sb_printf(o, "<path class=\"ref\" d=\"M%g 16h18\"/><text class=\"leg\" x=\"%g\" y=\"20\">", lx, lx + 24);
            sb_esc(o, co->ref_label);
            sb_puts(o, "</text>");
            lx += 24 + 6.6 * (double)strlen(co->ref_label) + 18;
        }
        if (nonfinite)
            sb_printf(o, "<path class=\"nf\" d=\"M%g 20l-5 -8h10z\"/><text class=\"leg\" x=\"%g\" y=\"20\">%zu non-finite "
                         "(not drawn)</text>", lx + 5, lx + 16, nonfinite);
    }
    sb_puts(o, "</svg>");
}

/* ---- page pieces ---- */
static const char *page_css =
    "body{margin:0;background:#f6f7f9;color:#1d2230;font:14px/1.45 system-ui,-apple-system,'Segoe UI',"
    "Roboto,Helvetica,Arial,sans-serif}"
    "main{max-width:1080px;margin:0 auto;padding:24px 28px 12px}"
    "h1{font-size:22px;margin:0 0 2px}h2{font-size:16px;margin:28px 0 8px;color:#2b3245}"
    ".sub{color:#667;margin:0 0 16px;word-break:break-all}"
    ".cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px}"
    ".card{background:#fff;border:1px solid #e2e5ea;border-radius:8px;padding:8px 12px;min-width:0}"
    ".card .k{font-size:12px;color:#667;text-transform:uppercase;letter-spacing:.04em}"
    ".card .v{font-size:18px;font-weight:600;overflow-wrap:anywhere}"
    ".card .v.s{font-size:14px;font-weight:500}"
    ".card .n{font-size:12px;color:#667}"
    "figure{margin:0 0 10px;background:#fff;border:1px solid #e2e5ea;border-radius:8px;padding:8px 10px 4px}"
    "figcaption{font-size:13px;color:#556;margin:0 0 2px}figcaption b{color:#1d2230}"
    "svg.chart{display:block;width:100%;height:auto}"
    ".grid .g,.grid path{stroke:#eceef2;stroke-width:1}"
    ".frame{fill:none;stroke:#c9ced8;stroke-width:1}"
    ".ylab text{font-size:11px;fill:#556;text-anchor:end}"
    ".xlab text{font-size:11px;fill:#556;text-anchor:middle}"
    ".axis{font-size:11px;fill:#889;text-anchor:end}"
    ".empty{font-size:14px;fill:#889;text-anchor:middle}"
    ".leg{font-size:12px;fill:#333}"
    "path.raw{fill:none;stroke-width:1;opacity:.45;stroke-linejoin:round;stroke-linecap:round}"
    "path.line{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}"
    "path.dash{fill:none;stroke-width:1.6;stroke-dasharray:5 3;stroke-linecap:round}"
    "path.ref{fill:none;stroke:#888;stroke-width:1.2;stroke-dasharray:3 3}"
    ".nf,.nf path{fill:#d62728;stroke:none}"
    ".multi{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:10px}"
    ".multi figure{margin:0}.multi svg .ylab text,.multi svg .xlab text{font-size:10px}"
    "table{border-collapse:collapse;background:#fff;border:1px solid #e2e5ea}"
    "td,th{padding:5px 12px;border-bottom:1px solid #eceef2;text-align:right}"
    "th{font-weight:600;color:#445;background:#fafbfc}td:first-child,th:first-child{text-align:left}"
    ".good{color:#17803d;background:#e7f6ec;font-weight:600}.bad{color:#b42318;background:#fdecea;font-weight:600}"
    ".ge{display:flex;gap:18px;align-items:center;flex-wrap:wrap}"
    "table.samples{max-width:100%;margin-bottom:12px}table.samples th{text-align:left;vertical-align:top;width:110px}"
    "td.txt{white-space:pre-wrap;text-align:left;font-family:ui-monospace,monospace;font-size:12px;max-width:760px}"
    ".kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:0 18px;background:#fff;"
    "border:1px solid #e2e5ea;border-radius:8px;padding:6px 14px}"
    ".kv div{display:flex;gap:12px;justify-content:space-between;border-bottom:1px solid #f0f1f4;padding:4px 0;"
    "min-width:0}"
    ".kv .k{color:#556}.kv .v{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;text-align:right;"
    "overflow-wrap:anywhere;min-width:0}"
    ".notes{background:#fff8e6;border:1px solid #f1dca7;border-radius:8px;padding:8px 14px 8px 30px;margin:14px 0 0}"
    ".tip{position:absolute;display:none;background:#fff;border:1px solid #cfd4dc;border-radius:6px;padding:4px 8px;"
    "font-size:12px;pointer-events:none;box-shadow:0 2px 8px rgba(0,0,0,.12);white-space:nowrap}"
    ".tip .sw{display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:5px}"
    "path.cross{stroke:#9aa3b2;stroke-width:1;fill:none}"
    "footer{color:#889;font-size:12px;margin:28px 0 8px;border-top:1px solid #e2e5ea;padding-top:8px}";

/* Optional hover read-out: the charts are complete without it. It reads the
 * points back from each path's "d" and the frame from data-f, so the page
 * carries no second copy of the data. Text goes in with textContent only:
 * series names come from the run's files. */
static const char *page_js =
    "(function(){var tip=document.createElement('div');tip.className='tip';document.body.appendChild(tip);"
    "function pts(p){if(p._pts)return p._pts;var t=p.getAttribute('d').match(/[A-Za-z]|-?[0-9.]+/g)||[],r=[],c='',i=0;"
    "while(i<t.length){var k=t[i];if(/[A-Za-z]/.test(k)){c=k;i++;continue;}"
    "if(c=='M'||c=='L'){r.push([+t[i],+t[i+1]]);i+=2;}else if(c=='a'){i+=7;}else if(c=='m'){i+=2;}else i++;}"
    "r.sort(function(a,b){return a[0]-b[0]});return p._pts=r;}"
    "document.querySelectorAll('svg[data-f]').forEach(function(s){"
    "var f=s.getAttribute('data-f').split(' ').map(Number),L=Math.log10;"
    "var ln=document.createElementNS(s.namespaceURI,'path');ln.setAttribute('class','cross');s.appendChild(ln);"
    "function hide(){tip.style.display='none';ln.setAttribute('d','');}"
    "s.addEventListener('mousemove',function(e){var q=s.createSVGPoint();q.x=e.clientX;q.y=e.clientY;"
    "q=q.matrixTransform(s.getScreenCTM().inverse());if(q.x<f[0]||q.x>f[1]){hide();return;}"
    "tip.textContent='';var d=document.createElement('div');"
    "d.textContent='step '+Math.round(f[4]+(q.x-f[0])/(f[1]-f[0])*(f[5]-f[4]));tip.appendChild(d);"
    "s.querySelectorAll('path[data-n]').forEach(function(p){var r=pts(p);if(!r.length)return;"
    "var lo=0,hi=r.length-1;while(lo<hi){var m=(lo+hi)>>1;if(r[m][0]<q.x)lo=m+1;else hi=m;}"
    "if(lo>0&&q.x-r[lo-1][0]<r[lo][0]-q.x)lo--;if(Math.abs(r[lo][0]-q.x)>8)return;"
    "var t=(f[3]-r[lo][1])/(f[3]-f[2]),v=f[8]?Math.pow(10,L(f[6])+t*(L(f[7])-L(f[6]))):f[6]+t*(f[7]-f[6]);"
    "var row=document.createElement('div'),sw=document.createElement('span');sw.className='sw';"
    "sw.style.background=p.getAttribute('stroke');row.appendChild(sw);"
    "row.appendChild(document.createTextNode(p.getAttribute('data-n')+': '+v.toPrecision(4)));tip.appendChild(row);});"
    "ln.setAttribute('d','M'+q.x+' '+f[2]+'V'+f[3]);tip.style.display='block';"
    "tip.style.left=(e.pageX+14)+'px';tip.style.top=(e.pageY+12)+'px';});"
    "s.addEventListener('mouseleave',hide);});})();";

static void card(sbuf *o, const char *k, const char *v, const char *note, int small) {
    sb_printf(o, "<div class=\"card\"><div class=\"k\">%s</div><div class=\"v%s\">", k, small ? " s" : "");
    sb_esc(o, v && v[0] ? v : "—");
    sb_puts(o, "</div>");
    if (note && note[0]) {
        sb_puts(o, "<div class=\"n\">");
        sb_esc(o, note);
        sb_puts(o, "</div>");
    }
    sb_puts(o, "</div>");
}

/* A train_args value as text: strings as is, numbers compactly, data lists as
 * "a.jsonl (0.7), b.jsonl" ({"path","weight"} objects), anything else as JSON. malloc'd. */
static char *json_text(const json_t *v) {
    char nb[64];
    if (!v || json_is_null(v)) return strdup("—");
    if (json_is_string(v)) return strdup(json_string_value(v));
    if (json_is_integer(v)) { snprintf(nb, sizeof nb, "%lld", (long long)json_integer_value(v)); return strdup(nb); }
    if (json_is_real(v)) return strdup(fmt_g(nb, sizeof nb, json_real_value(v), 6));
    if (json_is_true(v)) return strdup("true");
    if (json_is_false(v)) return strdup("false");
    if (json_is_array(v)) {
        sbuf b = {0};
        size_t i;
        json_t *e;
        int plain = 1;
        json_array_foreach(v, i, e) {
            if (json_is_object(e) && json_is_string(json_object_get(e, "path"))) {
                sb_printf(&b, "%s%s", i ? ", " : "", json_string_value(json_object_get(e, "path")));
                json_t *wt = json_object_get(e, "weight");
                if (json_is_number(wt)) sb_printf(&b, " (%s)", fmt_g(nb, sizeof nb, json_number_value(wt), 4));
            } else if (json_is_string(e)) {
                sb_printf(&b, "%s%s", i ? ", " : "", json_string_value(e));
            } else if (json_is_number(e)) { /* betas: "0.9, 0.999", not the binary expansion */
                sb_printf(&b, "%s%s", i ? ", " : "", fmt_g(nb, sizeof nb, json_number_value(e), 6));
            } else {
                plain = 0;
            }
        }
        if (plain && !b.oom && b.p) return b.p;
        free(b.p);
    }
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
}

static void header(sbuf *o, const metrics *m, const json_t *args) {
    char v[128], n2[128], nb[48];
    char *cmd = json_text(args ? json_object_get(args, "command") : NULL);
    const char *cmd_s = args ? json_string_value(json_object_get(args, "command")) : NULL;
    int is_dpo = cmd_s && !strcmp(cmd_s, "dpo");
    const json_t *mj = args ? json_object_get(args, "model") : NULL;
    if (!mj && args) mj = json_object_get(args, "config");
    char *model = json_text(mj);
    char *data = json_text(args ? json_object_get(args, "data") : NULL);
    char *method = json_text(args ? json_object_get(args, "method") : NULL);
    sb_puts(o, "<section class=\"cards\">");
    card(o, "Command", cmd ? cmd : "", NULL, 0);
    card(o, mj && args && !json_object_get(args, "model") ? "Model config" : "Model", model ? model : "", NULL, 1);
    card(o, "Data", data ? data : "", NULL, 1);
    card(o, "Method", method ? method : "", NULL, 0);
    free(cmd);
    free(model);
    free(data);
    free(method);
    const series *loss = metrics_find(m, "loss");
    const point *last = series_last_finite(loss);
    double last_step = loss && loss->n ? loss->p[loss->n - 1].x : NAN;
    json_t *planned = args ? json_object_get(args, "steps") : NULL;
    snprintf(v, sizeof v, "%s", isfinite(last_step) ? fmt_g(nb, sizeof nb, last_step, 10) : "0");
    n2[0] = '\0';
    if (json_is_integer(planned) && (double)json_integer_value(planned) != last_step)
        snprintf(n2, sizeof n2, "of %lld planned", (long long)json_integer_value(planned));
    else if (isfinite(m->epoch))
        snprintf(n2, sizeof n2, "epoch %.2f", m->epoch);
    card(o, "Steps", v, n2, 0);
    if (last) snprintf(v, sizeof v, "%.4f", last->y);
    else snprintf(v, sizeof v, "—");
    n2[0] = '\0';
    if (last && last->x != last_step) snprintf(n2, sizeof n2, "at step %.0f (later values non-finite)", last->x);
    card(o, "Final train loss", v, n2, 0);
    const point *best = series_min(metrics_find(m, "eval_loss"));
    if (best) {
        snprintf(v, sizeof v, "%.4f", best->y);
        /* a preference loss is not a per-token cross-entropy: no perplexity for it */
        if (is_dpo) snprintf(n2, sizeof n2, "at step %.0f", best->x);
        else snprintf(n2, sizeof n2, "at step %.0f (ppl %s)", best->x, fmt_g(nb, sizeof nb, exp(best->y), 5));
    } else {
        snprintf(v, sizeof v, "—");
        snprintf(n2, sizeof n2, "no validation");
    }
    card(o, "Best val loss", v, n2, 0);
    card(o, "Total time", fmt_dur(v, sizeof v, m->elapsed), NULL, 0);
    double med = series_median(metrics_find(m, "tokens_per_s"));
    if (isfinite(med)) snprintf(v, sizeof v, "%.0f", med);
    else snprintf(v, sizeof v, "—");
    card(o, "Tokens/s (median)", v, NULL, 0);
    sb_puts(o, "</section>");
}

static void figure(sbuf *o, const char *title, const char *caption_html) {
    sb_printf(o, "<figure><figcaption><b>%s</b>%s%s</figcaption>", title, caption_html ? " — " : "",
              caption_html ? caption_html : "");
}

static const char *palette[] = {"#e8590c", "#2f9e44", "#ae3ec9", "#1098ad", "#f08c00", "#5c7cfa", "#c2255c", "#495057"};

enum { MAX_SMALL_CHARTS = 24 };

/* A per-step series beyond the four standard charts and the loss chart's layers. */
static int is_extra(const char *k) {
    return strcmp(k, "loss") && strcmp(k, "lr") && strcmp(k, "grad_norm") && strcmp(k, "tokens_per_s") &&
           strcmp(k, "eval_loss") && strncmp(k, "eval_loss/", 10);
}

static void charts(sbuf *o, const metrics *m) {
    const series *loss = metrics_find(m, "loss");
    const series *val = metrics_find(m, "eval_loss");
    int span = 0;
    series ema = series_ema(loss, &span);
    layer L[16];
    int nl = 0;
    char cap[256], lab[64];
    L[nl++] = (layer){loss, ema.n ? LAYER_RAW : LAYER_LINE, "#4c8bd6", ema.n ? "train (raw)" : "train"};
    snprintf(lab, sizeof lab, "train (EMA, span %d)", span);
    if (ema.n) L[nl++] = (layer){&ema, LAYER_SMOOTH, "#1c4f9c", lab};
    if (val) L[nl++] = (layer){val, LAYER_EVAL, "#e8590c", "val"};
    /* per-task validation losses ("eval_loss/<file>") share the axes, dashed */
    char task_labels[16][96];
    for (size_t i = 0, c = 1; i < m->n && nl < 16; i++)
        if (!strncmp(m->s[i].name, "eval_loss/", 10)) {
            snprintf(task_labels[nl], sizeof task_labels[nl], "val %s", m->s[i].name + 10);
            L[nl] = (layer){&m->s[i], LAYER_DASH, palette[c++ % 8], task_labels[nl]};
            nl++;
        }
    sb_puts(o, "<h2>Loss</h2>");
    snprintf(cap, sizeof cap, "per optimizer step%s", val ? "; validation loss at each evaluation" : "");
    figure(o, "Training and validation loss", cap);
    chart(o, &(chart_opts){1000, 330, 3, 0, NAN, NULL, "training and validation loss per step", 0}, L, nl);
    sb_puts(o, "</figure>");
    free(ema.p);

    sb_puts(o, "<h2>Optimisation</h2>");
    figure(o, "Learning rate", "as used by each step");
    chart(o, &(chart_opts){1000, 200, 0, 1, NAN, NULL, "learning rate per step", 0},
          &(layer){metrics_find(m, "lr"), LAYER_LINE, "#2f9e44", "lr"}, 1);
    sb_puts(o, "</figure>");
    figure(o, "Gradient norm", "global L2 norm before clipping");
    chart(o, &(chart_opts){1000, 200, 10, 1, NAN, NULL, "gradient norm per step", 0},
          &(layer){metrics_find(m, "grad_norm"), LAYER_LINE, "#ae3ec9", "grad norm"}, 1);
    sb_puts(o, "</figure>");
    double med = series_median(metrics_find(m, "tokens_per_s"));
    figure(o, "Throughput", "tokens per second of each step");
    chart(o, &(chart_opts){1000, 200, 0, 1, med, "median", "tokens per second per step", 0},
          &(layer){metrics_find(m, "tokens_per_s"), LAYER_LINE, "#1098ad", "tokens/s"}, 1);
    sb_puts(o, "</figure>");

    /* everything else that is numeric per step (DPO rewards, margins, ...): small multiples */
    int extra = 0;
    for (size_t i = 0; i < m->n; i++) {
        const char *k = m->s[i].name;
        if (!is_extra(k)) continue;
        if (extra == MAX_SMALL_CHARTS) { /* each chart costs up to ~10 KB: list the rest by name */
            sb_puts(o, "</div><p class=\"sub\">Not drawn: ");
            for (size_t j = i, c = 0; j < m->n; j++) {
                if (!is_extra(m->s[j].name)) continue;
                sb_puts(o, c++ ? ", " : "");
                sb_esc(o, m->s[j].name);
            }
            sb_puts(o, "</p>");
            return;
        }
        if (!extra++) sb_puts(o, "<h2>Other metrics</h2><div class=\"multi\">");
        sb_puts(o, "<figure><figcaption><b>");
        sb_esc(o, k);
        sb_puts(o, "</b>");
        const point *lp = series_last_finite(&m->s[i]);
        char nb[48];
        if (lp) sb_printf(o, " — last %s", fmt_g(nb, sizeof nb, lp->y, 4));
        if (m->s[i].nonfinite) sb_printf(o, " · <span class=\"bad\">%zu non-finite</span>", m->s[i].nonfinite);
        sb_puts(o, "</figcaption>");
        chart(o, &(chart_opts){330, 190, 30, 0, NAN, NULL, k, 1},
              &(layer){&m->s[i], m->s[i].eval ? LAYER_EVAL : LAYER_LINE, palette[i % 8], k}, 1);
        sb_puts(o, "</figure>");
    }
    if (extra) sb_puts(o, "</div>");
}

/* Before/after perplexity on general text, with the change coloured: lower is
 * better (green), higher means the model forgot some general language (red). */
static void general_eval(sbuf *o, const char *path, sbuf *notes) {
    if (access(path, F_OK) != 0) return;
    json_error_t je;
    json_t *g = json_load_file(path, 0, &je);
    json_t *b = g ? json_object_get(g, "before") : NULL, *a = g ? json_object_get(g, "after") : NULL;
    double bl = json_number_value(json_object_get(b, "loss")), al = json_number_value(json_object_get(a, "loss"));
    double bp = json_number_value(json_object_get(b, "ppl")), ap = json_number_value(json_object_get(a, "ppl"));
    if (!json_is_number(json_object_get(b, "ppl"))) bp = exp(bl);
    if (!json_is_number(json_object_get(a, "ppl"))) ap = exp(al);
    if (!json_is_object(b) || !json_is_object(a) || !json_is_number(json_object_get(b, "loss")) ||
        !json_is_number(json_object_get(a, "loss"))) {
        sb_puts(notes, "<li>general_eval.json is present but not readable (");
        sb_esc(notes, g ? "needs before.loss and after.loss" : je.text);
        sb_puts(notes, "): general-text perplexity not shown</li>");
        json_decref(g);
        return;
    }
    char nb[48], nb2[48];
    double pct = (ap / bp - 1) * 100;
    const char *cls = pct < 0 ? "good" : pct > 0 ? "bad" : "";
    sb_puts(o, "<h2>General-text perplexity</h2><div class=\"ge\"><table><tr><th></th><th>loss</th><th>perplexity</th>"
               "<th>tokens</th></tr>");
    const char *names[2] = {"before training", "after training"};
    json_t *rows[2] = {b, a};
    double L[2] = {bl, al}, P[2] = {bp, ap};
    for (int r = 0; r < 2; r++) {
        json_t *tk = json_object_get(rows[r], "tokens");
        sb_printf(o, "<tr><td>%s</td><td>%.4f</td><td>%s</td><td>%s</td></tr>", names[r], L[r],
                  fmt_g(nb, sizeof nb, P[r], 6), json_is_number(tk) ? fmt_g(nb2, sizeof nb2, json_number_value(tk), 12) : "—");
    }
    sb_printf(o, "<tr><td>change</td><td class=\"%s\">%+.4f</td><td class=\"%s\">%+.2f%%</td><td></td></tr></table>",
              cls, al - bl, cls, pct);
    /* the same two numbers as bars: the eye sees the change before reading it */
    double mx = fmax(bp, ap);
    if (isfinite(mx) && mx > 0) {
        sb_puts(o, "<svg class=\"chart\" style=\"max-width:460px\" viewBox=\"0 0 460 92\" role=\"img\" "
                   "aria-label=\"perplexity before and after\">");
        for (int r = 0; r < 2; r++) {
            double w = 300 * P[r] / mx;
            sb_printf(o, "<text class=\"leg\" x=\"0\" y=\"%d\">%s</text>", 28 + 40 * r, r ? "after" : "before");
            sb_printf(o, "<rect x=\"56\" y=\"%d\" width=\"%.1f\" height=\"26\" rx=\"3\" fill=\"%s\"/>", 12 + 40 * r,
                      isfinite(w) ? w : 0, r == 0 ? "#9aa5b8" : pct > 0 ? "#e03131" : "#2f9e44");
            sb_printf(o, "<text class=\"leg\" x=\"%.1f\" y=\"%d\">ppl %s</text>", 62 + (isfinite(w) ? w : 0), 30 + 40 * r,
                      fmt_g(nb, sizeof nb, P[r], 5));
        }
        sb_puts(o, "</svg>");
    }
    sb_puts(o, "</div>");
    json_decref(g);
}

/* The adaptation spectrum from compare.json (written by `tuna compare`): a
 * table of the settings and the metric as bars, so the step from prompting
 * to fine-tuning is seen at a glance. */
static void compare_section(sbuf *o, const char *path, sbuf *notes) {
    if (access(path, F_OK) != 0) return;
    json_error_t je;
    json_t *c = json_load_file(path, 0, &je);
    json_t *rows = c ? json_object_get(c, "rows") : NULL;
    const char *metric = json_string_value(c ? json_object_get(c, "metric") : NULL);
    if (!json_is_array(rows) || !metric) {
        sb_puts(notes, "<li>compare.json is present but not readable (");
        sb_esc(notes, c ? "needs rows and metric" : je.text);
        sb_puts(notes, "): comparison not shown</li>");
        json_decref(c);
        return;
    }
    char nb[48];
    sb_puts(o, "<h2>Prompting vs few-shot vs fine-tuning</h2><p class=\"sub\">");
    json_t *ex = json_object_get(c, "examples");
    sb_printf(o, "%lld eval examples from ", (long long)json_integer_value(ex));
    sb_esc(o, json_string_value(json_object_get(c, "eval")) ? json_string_value(json_object_get(c, "eval")) : "?");
    if (json_string_value(json_object_get(c, "train"))) {
        sb_puts(o, "; in-context examples from ");
        sb_esc(o, json_string_value(json_object_get(c, "train")));
    }
    sb_puts(o, "; metric <b>");
    sb_esc(o, metric);
    sb_printf(o, "</b>%s</p><div class=\"ge\"><table><tr><th>setting</th><th>prompt</th><th>", json_is_true(json_object_get(c, "greedy")) ? ", greedy decoding" : "");
    sb_esc(o, metric);
    int with_valid = !strcmp(metric, "json_fields");
    sb_puts(o, with_valid ? "</th><th>json_valid</th>" : "</th>");
    sb_puts(o, "<th>prompt tokens</th><th>latency (s)</th><th>tokens/s</th></tr>");
    size_t i, n = json_array_size(rows);
    json_t *r;
    double mx = 0;
    json_array_foreach(rows, i, r) {
        json_t *v = json_object_get(r, "metric");
        double x = json_number_value(v);
        if (json_is_number(v) && isfinite(x) && x > mx) mx = x;
        sb_puts(o, "<tr><td>");
        sb_esc(o, json_string_value(json_object_get(r, "name")) ? json_string_value(json_object_get(r, "name")) : "?");
        sb_puts(o, "</td><td>");
        sb_esc(o, json_string_value(json_object_get(r, "prompt")) ? json_string_value(json_object_get(r, "prompt")) : "");
        sb_printf(o, "</td><td>%s</td>", json_is_number(v) ? fmt_g(nb, sizeof nb, x, 4) : "—");
        if (with_valid) {
            json_t *jv = json_object_get(json_object_get(r, "summary"), "json_valid");
            sb_printf(o, "<td>%s</td>", json_is_number(jv) ? fmt_g(nb, sizeof nb, json_number_value(jv), 4) : "—");
        }
        sb_printf(o, "<td>%.1f</td>", json_number_value(json_object_get(r, "mean_prompt_tokens")));
        sb_printf(o, "<td>%.4f</td>", json_number_value(json_object_get(r, "mean_latency_s")));
        sb_printf(o, "<td>%.1f</td></tr>", json_number_value(json_object_get(r, "tokens_per_s")));
    }
    sb_puts(o, "</table>");
    if (n > 0) {
        /* bars on a 0..max scale (0..1 for rates that reach it) */
        double scale = mx > 0 ? (mx <= 1 ? 1 : mx) : 1;
        int h = 16 + 34 * (int)n;
        sb_printf(o, "<svg class=\"chart\" style=\"max-width:520px\" viewBox=\"0 0 520 %d\" role=\"img\" aria-label=\"metric per setting\">", h);
        json_array_foreach(rows, i, r) {
            json_t *v = json_object_get(r, "metric");
            double x = json_is_number(v) ? json_number_value(v) : 0, w = isfinite(x) && x > 0 ? 330 * x / scale : 0;
            int y = 10 + 34 * (int)i;
            const char *name = json_string_value(json_object_get(r, "name"));
            sb_printf(o, "<text class=\"leg\" x=\"0\" y=\"%d\">", y + 17);
            sb_esc(o, name ? name : "?");
            sb_printf(o, "</text><rect x=\"96\" y=\"%d\" width=\"%.1f\" height=\"24\" rx=\"3\" fill=\"%s\"/>", y, w,
                      name && !strcmp(name, "fine-tuned") ? "#2f9e44" : "#9aa5b8");
            sb_printf(o, "<text class=\"leg\" x=\"%.1f\" y=\"%d\">%s</text>", 102 + w, y + 17,
                      json_is_number(v) ? fmt_g(nb, sizeof nb, x, 4) : "n/a");
        }
        sb_puts(o, "</svg>");
    }
    sb_puts(o, "</div>");
    /* the first answers of every setting beside the reference */
    json_t *samples = json_object_get(c, "samples"), *sm;
    size_t si;
    if (json_array_size(samples) > 0) {
        sb_puts(o, "<h2>Sample answers</h2>");
        json_array_foreach(samples, si, sm) {
            sb_puts(o, "<div class=\"ge\"><table class=\"samples\"><tr><th>prompt</th><td class=\"txt\">");
            sb_esc(o, json_string_value(json_object_get(sm, "prompt")) ? json_string_value(json_object_get(sm, "prompt")) : "");
            sb_puts(o, "</td></tr><tr><th>reference</th><td class=\"txt\">");
            sb_esc(o, json_string_value(json_object_get(sm, "reference")) ? json_string_value(json_object_get(sm, "reference")) : "");
            sb_puts(o, "</td></tr>");
            json_array_foreach(rows, i, r) {
                const char *pred = json_string_value(json_array_get(json_object_get(r, "samples"), si));
                const char *name = json_string_value(json_object_get(r, "name"));
                if (!pred) continue;
                sb_puts(o, "<tr><th>");
                sb_esc(o, name ? name : "?");
                sb_puts(o, "</th><td class=\"txt\">");
                sb_esc(o, pred);
                sb_puts(o, "</td></tr>");
            }
            sb_puts(o, "</table></div>");
        }
    }
    json_decref(c);
}

static void settings(sbuf *o, const json_t *args) {
    sb_puts(o, "<h2>Settings</h2><div class=\"kv\">");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)args, key, v) {
        char *t = json_text(v);
        sb_puts(o, "<div><span class=\"k\">");
        sb_esc(o, key);
        sb_puts(o, "</span><span class=\"v\">");
        sb_esc(o, t ? t : "?");
        sb_puts(o, "</span></div>");
        free(t);
    }
    sb_puts(o, "</div>");
}

tuna_status tuna_report_write(const char *run_dir) {
    if (!run_dir || !run_dir[0]) return tuna_fail(TUNA_ERR_ARG, "report: no run folder given");
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir) >= sizeof path)
        return tuna_fail(TUNA_ERR_ARG, "report: run folder path too long");
    metrics m;
    char cpath[4096 + 32];
    snprintf(cpath, sizeof cpath, "%s/compare.json", run_dir);
    /* a folder with only a comparison (tuna compare --report) gets that page */
    int only_compare = access(path, F_OK) != 0 && access(cpath, F_OK) == 0;
    tuna_status st = TUNA_OK;
    if (only_compare) {
        memset(&m, 0, sizeof m);
        m.elapsed = m.epoch = NAN;
    } else {
        st = metrics_load(&m, path);
        if (st != TUNA_OK) return st;
    }

    sbuf notes = {0};
    json_t *args = NULL;
    snprintf(path, sizeof path, "%s/train_args.json", run_dir);
    if (access(path, F_OK) != 0) {
        if (!only_compare) sb_puts(&notes, "<li>train_args.json not found: settings not shown</li>");
    } else {
        json_error_t je;
        args = json_load_file(path, 0, &je);
        if (!json_is_object(args)) {
            sb_printf(&notes, "<li>train_args.json not readable (line %d: ", je.line);
            sb_esc(&notes, args ? "not an object" : je.text);
            sb_puts(&notes, "): settings not shown</li>");
            json_decref(args);
            args = NULL;
        }
    }
    if (m.bad_lines)
        sb_printf(&notes, "<li>metrics.jsonl: %ld unreadable line%s skipped (first: line %ld)</li>", m.bad_lines,
                  m.bad_lines == 1 ? "" : "s", m.first_bad);
    if (m.dup_steps)
        sb_printf(&notes, "<li>metrics.jsonl: %ld step%s logged twice (resumed run): the later values are shown</li>",
                  m.dup_steps, m.dup_steps == 1 ? "" : "s");
    for (size_t i = 0; i < m.n; i++)
        if (m.s[i].nonfinite) {
            sb_printf(&notes, "<li>%zu non-finite value%s of <b>", m.s[i].nonfinite, m.s[i].nonfinite == 1 ? "" : "s");
            sb_esc(&notes, m.s[i].name);
            sb_puts(&notes, "</b> (NaN/inf): not drawn, marked ▾ on the chart's top edge</li>");
        }
    if (!only_compare && !metrics_find(&m, "loss")) sb_puts(&notes, "<li>metrics.jsonl has no training steps yet</li>");

    sbuf o = {0};
    sb_puts(&o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>tuna report: ");
    sb_esc(&o, run_dir);
    sb_printf(&o, "</title><style>%s</style></head><body><main>\n<h1>%s</h1><p class=\"sub\">", page_css,
              only_compare ? "Evaluation report" : "Training report");
    sb_esc(&o, run_dir);
    sb_puts(&o, "</p>\n");
    if (!only_compare) header(&o, &m, args);
    if (notes.n) sb_printf(&o, "<ul class=\"notes\">%s</ul>", notes.p);
    sb_puts(&o, "\n");
    if (!only_compare) charts(&o, &m);
    sb_puts(&o, "\n");
    snprintf(path, sizeof path, "%s/general_eval.json", run_dir);
    sbuf gnotes = {0};
    general_eval(&o, path, &gnotes);
    compare_section(&o, cpath, &gnotes);
    if (gnotes.n) sb_printf(&o, "<ul class=\"notes\">%s</ul>", gnotes.p);
    if (args) settings(&o, args);
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
    sb_printf(&o, "\n<footer>Generated by tuna on %s</footer></main><script>%s</script></body></html>\n", when,
              page_js);
    json_decref(args);
    metrics_free(&m);
    int oom = o.oom || notes.oom || gnotes.oom;
    free(notes.p);
    free(gnotes.p);
    if (oom) { free(o.p); return tuna_fail(TUNA_ERR_NOMEM, "report: out of memory"); }

    snprintf(path, sizeof path, "%s/report.html", run_dir);
    st = atomic_file_write(path, o.p, o.n);
    free(o.p);
    return st;
}
