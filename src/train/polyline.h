/* polyline.h — simplification of a drawn polyline (internal to the library;
 * svg_chart.c draws every chart series through it, tests call it directly).
 *
 * Ramer–Douglas–Peucker: the first and last points are kept, and a range
 * between two kept points is split at its farthest point while that point is
 * more than eps from the segment joining them. Every dropped point therefore
 * lies within eps of the drawn polyline (distance to the segment that replaces
 * it, endpoints included, so points beyond a segment's end count too). A
 * straight line comes out as its two ends. Cost: O(n·k) for k kept points
 * (O(n log n) when the splits are balanced), no allocation. */
#ifndef TUNA_POLYLINE_H
#define TUNA_POLYLINE_H
#include <stddef.h>

/* Distance from (px, py) to the segment (ax, ay)-(bx, by). */
double polyline_segment_distance(double px, double py, double ax, double ay, double bx, double by);

/* Sets keep[i] to 1 for the points of (x[i], y[i]), i < n, that stay and to 0
 * for the others. Coordinates are finite, in the units of eps (pixels for
 * the report). Returns the number of points kept (n when n <= 2). */
size_t polyline_simplify(const double *x, const double *y, size_t n, double eps, unsigned char *keep);
#endif
