/* report_data.h — what report.html is drawn from: the series of a run's
 * metrics.jsonl and their statistics (internal to the library; report.c). */
#ifndef TUNA_REPORT_DATA_H
#define TUNA_REPORT_DATA_H

#include "tuna.h"
#include "train/svg_chart.h"
#include "core/error.h"

/* x: step; y: value (NaN or inf when the file had a non-finite value);
 * ord: line number (ties on x keep file order, the later line wins) */
typedef chart_point point;

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

/* Reads path (one JSON object per line) into m: a series per numeric key,
 * sorted by step, the last value of a repeated step kept; bad lines counted
 * in m, not fatal. TUNA_ERR_IO / TUNA_ERR_NOMEM with core_fail's detail;
 * free m with metrics_free either way. */
tuna_status metrics_load(metrics *m, const char *path);
void metrics_free(metrics *m);
/* The series named name, or NULL. */
series *metrics_find(const metrics *m, const char *name);

/* Statistics over the finite values (NaN / NULL when there are none; s may be NULL). */
double series_median(const series *s);
const point *series_last_finite(const series *s);
const point *series_min(const series *s);
/* Bias-corrected EMA (as TensorBoard's smoothing) with a span of one per
 * `per` finite points (*span_out); a new series (caller frees p), empty when
 * smoothing would not help. */
series series_ema(const series *s, int per, int *span_out);

/* The points of s for svg_chart (an empty series for NULL). */
chart_series series_chart(const series *s);

#endif
