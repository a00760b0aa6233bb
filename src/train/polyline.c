/* polyline.c — Ramer–Douglas–Peucker simplification (see polyline.h).
 * Iterative, with keep[] as the only state: walking left to right, the range
 * from the current kept point a to the next kept point b is either split at
 * its farthest point (which becomes the new b) or accepted (a moves to b). */
#include "train/polyline.h"

#include <math.h>

double polyline_segment_distance(double px, double py, double ax, double ay, double bx, double by) {
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    double t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return hypot(px - (ax + t * dx), py - (ay + t * dy));
}

/* The index of the point of (a, b) farthest from segment a-b, with its distance. */
static size_t farthest(const double *x, const double *y, size_t a, size_t b, double *dist) {
    size_t m = a;
    *dist = -1;
    for (size_t i = a + 1; i < b; i++) {
        double d = polyline_segment_distance(x[i], y[i], x[a], y[a], x[b], y[b]);
        if (d > *dist) { *dist = d; m = i; }
    }
    return m;
}

size_t polyline_simplify(const double *x, const double *y, size_t n, double eps, unsigned char *keep) {
    for (size_t i = 0; i < n; i++) keep[i] = i == 0 || i + 1 == n;
    if (n <= 2) return n;
    size_t kept = 2, a = 0;
    while (a + 1 < n) {
        size_t b = a + 1;
        while (!keep[b]) b++;
        double d;
        size_t m = farthest(x, y, a, b, &d);
        if (m != a && d > eps) { keep[m] = 1; kept++; }
        else a = b;
    }
    return kept;
}
