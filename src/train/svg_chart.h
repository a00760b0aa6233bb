/* svg_chart.h — line charts as inline SVG, written into a growable text
 * buffer (internal to the library; report.c draws the training report with it).
 *
 * Knows series of (x, y) points, axes, ticks, layers and legends, nothing of
 * what the numbers mean. Rules:
 *  - non-finite y values break the line and are marked on the top edge,
 *    never interpolated or dropped silently;
 *  - long series are reduced per 0.8 px column to the column's min and max,
 *    in the order they occurred, so spikes survive and 100k points stay ~100 KB;
 *  - each path is simplified (polyline.h) within what is left of a 1 px
 *    budget: a drawn line stays within 1 px of every point it is drawn from;
 *  - every label is HTML-escaped (sb_esc). */
#ifndef TUNA_SVG_CHART_H
#define TUNA_SVG_CHART_H

#include <stddef.h>

/* Growable output buffer; an allocation failure is sticky (oom, checked once at the end). */
typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

void sb_put(sbuf *b, const char *s, size_t len);
void sb_puts(sbuf *b, const char *s);
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* HTML-escapes s (text and attribute values alike). */
void sb_esc(sbuf *b, const char *s);

/* %.*g without the zero-padded exponent ("2e-05" -> "2e-5"); NaN/inf spelled out. Returns buf. */
const char *fmt_g(char *buf, size_t n, double v, int sig);

typedef struct {
    double x, y; /* x (whole numbers get grid lines and labels), value (NaN or inf: not drawn, marked) */
    long ord;    /* the caller's input order (ties on x); not used by the chart */
} chart_point;

/* Points sorted by x; nonfinite counts the non-finite y values among them. */
typedef struct {
    const chart_point *p;
    size_t n, nonfinite;
} chart_series;

/* RAW: light, thin; LINE: solid (a light min/max band plus the column mean when
 * longer than the plot is wide); SMOOTH: solid, already smooth (column means
 * only); DOTS: line plus dots (with hover titles up to 200 points); DASH: dashed. */
typedef enum { LAYER_RAW, LAYER_LINE, LAYER_SMOOTH, LAYER_DOTS, LAYER_DASH } layer_style;

typedef struct {
    chart_series s; /* empty (n = 0): not drawn, not in the legend */
    layer_style style;
    const char *color;
    const char *label;
} chart_layer;

typedef struct {
    double W, H;
    double log_ratio;   /* use a log y axis when all values > 0 and max/min >= this (0: never) */
    int zero_floor;     /* linear axis: do not extend below 0 when all values are >= 0 */
    double ref;         /* a dashed horizontal reference line (NaN: none) */
    const char *ref_label;
    const char *aria;
    int small;          /* small multiple: tighter margins, smaller text */
    const char *x_name; /* what x counts (plain text): the axis note and the dots' titles */
} chart_opts;

/* Appends one <svg> drawing the layers in order (the first underneath), with
 * grid, tick labels and (unless small) a legend along the top. */
void svg_chart(sbuf *o, const chart_opts *co, const chart_layer *L, int nl);

#endif
