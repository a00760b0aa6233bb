/* svg_chart.c — svg_chart: series -> an inline SVG line chart (svg_chart.h
 * has the rules), and the text buffer and number formatting it writes with.
 * Nothing here knows what is plotted: the caller passes series, colours,
 * labels and axis options. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/polyline.h"
#include "train/svg_chart.h"

/* ---- growable output buffer ---- */
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

void sb_put(sbuf *b, const char *s, size_t len) {
    if (!sb_reserve(b, len)) return;
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

void sb_printf(sbuf *b, const char *fmt, ...) {
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

void sb_esc(sbuf *b, const char *s) {
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
const char *fmt_g(char *buf, size_t n, double v, int sig) {
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

/* Axis tick labels: large round values with k/M ("12k", "1.5M") rather than exponents. */
static const char *fmt_tick(char *buf, size_t n, double v) {
    double a = fabs(v);
    if (a >= 1e6 && a < 1e10) { fmt_g(buf, n, v / 1e6, 4); strncat(buf, "M", n - strlen(buf) - 1); }
    else if (a >= 1e4 && a < 1e6) { fmt_g(buf, n, v / 1e3, 4); strncat(buf, "k", n - strlen(buf) - 1); }
    else fmt_g(buf, n, v, 4);
    return buf;
}

/* x labels: 20000 -> "20k". */
static const char *fmt_x(char *buf, size_t n, double v) {
    if (fabs(v) >= 10000 && fmod(v, 1000) == 0) snprintf(buf, n, "%.0fk", v / 1000);
    else fmt_g(buf, n, v, 6);
    return buf;
}

/* ---- charts ---- */
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
static int needs_buckets(const frame *f, const chart_series *s) { return (double)s->n > 2 * (f->x1 - f->x0); }

/* The mean of each pixel column: drawn over the min/max envelope of a long,
 * noisy series so the trend reads through the band. */
static void draw_column_means(sbuf *o, const frame *f, const chart_series *s) {
    pathw w = {.o = o, .eps = PATH_EPS};
    long cur = LONG_MIN;
    double sum = 0, sx = 0;
    int k = 0;
    for (size_t i = 0; i <= s->n; i++) {
        const chart_point *p = i < s->n ? &s->p[i] : NULL;
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
static void draw_series_path(sbuf *o, const frame *f, const chart_series *s, double *marks, size_t *n_marks) {
    int bucket = (double)s->n > 2 * (f->x1 - f->x0) / BUCKET_W;
    pathw w = {.o = o, .eps = bucket ? BUCKET_EPS : PATH_EPS, .rings = 4 * (double)s->n < f->x1 - f->x0};
    long cur = LONG_MIN;
    size_t imin = 0, imax = 0;
    int have = 0;
    for (size_t i = 0; i <= s->n; i++) {
        const chart_point *p = i < s->n ? &s->p[i] : NULL;
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

/* Scales the frame to the data's range: x from 0 (or a window around a
 * lone step), y linear or log (co->log_ratio), padded. */
static void fit_axes(frame *f, const chart_opts *co, double xmin, double xmax, double ymin, double ymax) {
    /* x: steps from 0 (or the first step if negative); a single step gets a window around it */
    f->xlo = xmin >= 0 && xmax > xmin ? 0 : xmin - 1;
    f->xhi = xmax > xmin ? xmax : xmax + 1;
    /* y */
    f->logy = co->log_ratio > 0 && ymin > 0 && ymax / ymin >= co->log_ratio;
    if (f->logy) {
        double pad = pow(10, 0.04 * (log10(ymax) - log10(ymin)));
        f->ylo = ymin / pad;
        f->yhi = ymax * pad;
    } else if (ymax - ymin <= 1e-9 * fmax(fabs(ymax), fabs(ymin))) {
        /* constant (up to rounding, as an EMA of a constant is): centre the flat line */
        ymin = ymax = 0.5 * (ymin + ymax);
        double pad = ymin == 0 ? 1 : fabs(ymin) * 0.1;
        f->ylo = ymin - pad;
        f->yhi = ymax + pad;
        if (co->zero_floor && ymin > 0 && f->ylo < 0) f->ylo = 0;
    } else {
        double pad = 0.06 * (ymax - ymin);
        f->ylo = ymin - pad;
        f->yhi = ymax + pad;
        if (co->zero_floor && ymin >= 0 && f->ylo < 0) f->ylo = 0;
    }
}

/* Grid, tick labels, the frame, the axis note and the reference line. */
static void draw_axes(sbuf *o, const frame *f, const chart_opts *co) {
    char nb[48];
    double t[32];
    /* grid and tick labels */
    int nt = f->logy ? log_ticks(f->ylo, f->yhi, t, 32) : linear_ticks(f->ylo, f->yhi, co->small ? 4 : 5, t, 32);
    sb_puts(o, "<g class=\"grid\">");
    for (int i = 0; i < nt; i++) {
        double y = fy(f, t[i]);
        sb_printf(o, "<path d=\"M%g ", f->x0);
        put_coord(o, y);
        sb_printf(o, "H%g\"/>", f->x1);
    }
    int ntx = linear_ticks(f->xlo, f->xhi, co->small ? 3 : 8, t + 16, 16);
    for (int i = 0; i < ntx; i++) {
        if (t[16 + i] != floor(t[16 + i])) continue; /* grid lines and labels at whole x */
        sb_puts(o, "<path d=\"M");
        put_coord(o, fx(f, t[16 + i]));
        sb_printf(o, " %gV%g\"/>", f->y0, f->y1);
    }
    sb_puts(o, "</g><g class=\"ylab\">");
    nt = f->logy ? log_ticks(f->ylo, f->yhi, t, 16) : linear_ticks(f->ylo, f->yhi, co->small ? 4 : 5, t, 16);
    for (int i = 0; i < nt; i++) {
        sb_printf(o, "<text x=\"%g\" y=\"", f->x0 - 6);
        put_coord(o, fy(f, t[i]) + 4);
        sb_printf(o, "\">%s</text>", fmt_tick(nb, sizeof nb, t[i]));
    }
    sb_puts(o, "</g><g class=\"xlab\">");
    for (int i = 0; i < ntx; i++) {
        if (t[16 + i] != floor(t[16 + i])) continue;
        sb_puts(o, "<text x=\"");
        put_coord(o, fx(f, t[16 + i]));
        sb_printf(o, "\" y=\"%g\">%s</text>", f->y1 + 16, fmt_x(nb, sizeof nb, t[16 + i]));
    }
    sb_puts(o, "</g>");
    sb_printf(o, "<rect class=\"frame\" x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\"/>", f->x0, f->y0, f->x1 - f->x0,
              f->y1 - f->y0);
    if (!co->small) {
        sb_printf(o, "<text class=\"axis\" x=\"%g\" y=\"%g\">", f->x1, f->H - 4);
        sb_esc(o, co->x_name);
        sb_printf(o, "%s</text>", f->logy ? " · log y axis" : "");
    } else if (f->logy)
        sb_printf(o, "<text class=\"axis\" x=\"%g\" y=\"%g\">log y</text>", f->x1, f->H - 2);
    if (isfinite(co->ref)) {
        sb_printf(o, "<path class=\"ref\" d=\"M%g ", f->x0);
        put_coord(o, fy(f, co->ref));
        sb_printf(o, "H%g\"/>", f->x1);
    }
}

/* The layers in order (raw first so the smoothed line sits on top), then
 * the marks of non-finite values along the top edge. */
static void draw_layers(sbuf *o, const frame *f, const chart_layer *L, int nl, size_t nonfinite, const char *x_name) {
    char nb[48];
    double *marks = malloc(((size_t)(f->x1 - f->x0) + 2 + nonfinite) * sizeof *marks);
    size_t n_marks = 0;
    for (int l = 0; l < nl; l++) {
        const chart_series *s = &L[l].s;
        if (!s || !s->n) continue;
        int envelope = L[l].style == LAYER_LINE && needs_buckets(f, s);
        const char *cls = L[l].style == LAYER_RAW || envelope ? "raw" : L[l].style == LAYER_DASH ? "dash" : "line";
        sb_printf(o, "<path class=\"%s\" stroke=\"%s\"", cls, L[l].color);
        if (!envelope && L[l].label) { sb_puts(o, " data-n=\""); sb_esc(o, L[l].label); sb_puts(o, "\""); }
        sb_puts(o, " d=\"");
        if (L[l].style == LAYER_SMOOTH && needs_buckets(f, s)) draw_column_means(o, f, s);
        else draw_series_path(o, f, s, marks, &n_marks);
        sb_puts(o, "\"/>");
        if (envelope) {
            sb_printf(o, "<path class=\"line\" stroke=\"%s\" data-n=\"", L[l].color);
            sb_esc(o, L[l].label ? L[l].label : "");
            sb_puts(o, " (mean)\" d=\"");
            draw_column_means(o, f, s);
            sb_puts(o, "\"/>");
        }
        if (L[l].style == LAYER_DOTS && s->n <= 200) { /* points with native hover titles (no script needed) */
            sb_printf(o, "<g fill=\"%s\">", L[l].color);
            for (size_t i = 0; i < s->n; i++) {
                if (!isfinite(s->p[i].y)) continue;
                sb_puts(o, "<circle r=\"3.2\" cx=\"");
                put_coord(o, fx(f, s->p[i].x));
                sb_puts(o, "\" cy=\"");
                put_coord(o, fy(f, s->p[i].y));
                sb_printf(o, "\"><title>");
                sb_esc(o, x_name);
                sb_printf(o, " %.0f: ", s->p[i].x);
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
            sb_printf(o, " %gl-4 -7h8z", f->y0);
        }
        sb_puts(o, "\"/></g>");
    }
    free(marks);
}

/* The legend along the top: a swatch and label per layer, the reference line, the non-finite count. */
static void draw_legend(sbuf *o, const frame *f, const chart_opts *co, const chart_layer *L, int nl, size_t nonfinite) {
    double lx = f->x0 + 4;
    for (int l = 0; l < nl; l++) {
        if (!L[l].s.n || !L[l].label) continue;
        const char *cls = L[l].style == LAYER_RAW ? "raw" : L[l].style == LAYER_DASH ? "dash" : "line";
        sb_printf(o, "<path class=\"%s\" stroke=\"%s\" d=\"M%g 16h18\"/>", cls, L[l].color, lx);
        if (L[l].style == LAYER_DOTS)
            sb_printf(o, "<circle r=\"3.2\" cx=\"%g\" cy=\"16\" fill=\"%s\"/>", lx + 9, L[l].color);
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

void svg_chart(sbuf *o, const chart_opts *co, const chart_layer *L, int nl) {
    frame f = {.W = co->W, .H = co->H};
    f.x0 = co->small ? 46 : 62;
    f.x1 = co->W - (co->small ? 16 : 18);
    f.y0 = co->small ? 10 : 30;
    f.y1 = co->H - (co->small ? 24 : 32);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    size_t nonfinite = 0;
    for (int l = 0; l < nl; l++) {
        const chart_series *s = &L[l].s;
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
    fit_axes(&f, co, xmin, xmax, ymin, ymax);
    /* the frame, for the hover script to turn pixels back into steps and values */
    sb_printf(o, "\" data-f=\"%g %g %g %g %.17g %.17g %.17g %.17g %d\">", f.x0, f.x1, f.y0, f.y1, f.xlo, f.xhi, f.ylo,
              f.yhi, f.logy);
    draw_axes(o, &f, co);
    draw_layers(o, &f, L, nl, nonfinite, co->x_name);
    if (!co->small) draw_legend(o, &f, co, L, nl, nonfinite);
    sb_puts(o, "</svg>");
}
