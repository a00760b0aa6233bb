/* prof.c — the time and FLOP accounting of training steps (see prof.h). The
 * totals are per thread, so two trainers on two threads keep theirs apart;
 * the on/off switch is one global, set before training. */
#include "core/prof.h"

#include <omp.h>
#include <string.h>

int core_prof_on;
static _Thread_local prof_totals totals;
static _Thread_local int in_step;

void prof_enable(int on) { core_prof_on = on != 0; }

void prof_count(prof_kind k, double t0, double flops) {
    if (!in_step || omp_in_parallel()) return;
    totals.seconds[k] += core_now_s() - t0;
    if (k == PROF_GEMM) totals.gemm_flops += flops;
}

void prof_step_begin(void) { in_step = core_prof_on; }

void prof_step_end(double seconds, int64_t tokens) {
    if (!in_step) return;
    in_step = 0;
    totals.step_seconds += seconds;
    totals.steps++;
    totals.tokens += tokens;
}

void prof_get(prof_totals *out) { *out = totals; }
void prof_reset(void) { memset(&totals, 0, sizeof totals); }

const char *prof_kind_name(prof_kind k) {
    static const char *const names[PROF_KINDS] = {"gemm", "dequant", "attention", "convert"};
    return names[k];
}

double prof_rest_seconds(const prof_totals *p) {
    double r = p->step_seconds;
    for (int k = 0; k < PROF_KINDS; k++) r -= p->seconds[k];
    return r > 0 ? r : 0;
}
