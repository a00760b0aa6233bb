/* clock.h — seconds on the monotonic clock, for timings and deadlines
 * (internal; one definition instead of a copy per file). */
#ifndef TUNA_CORE_CLOCK_H
#define TUNA_CORE_CLOCK_H
#include <time.h>

static inline double core_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
#endif
