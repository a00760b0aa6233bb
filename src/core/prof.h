/* prof.h — where a training step's time goes (internal, `tuna sft --profile`
 * or TUNA_PROFILE=1): seconds per kind of work — GEMMs (with their FLOPs),
 * dequantization of stored weights into fp32 tiles, attention — summed over
 * the training steps of the calling thread; "the rest" is the steps' wall
 * time minus them (see prof_rest_seconds).
 * Off by default: a timed call then costs one predictable branch on
 * core_prof_on. Only calls made between prof_step_begin and prof_step_end on
 * the thread that made them, outside any OpenMP parallel region, are
 * counted: a timed function called inside a parallel region is part of its
 * caller's time. No timed function calls another (the attention kernels
 * call cblas_sgemm, not k_gemm), so nothing is counted twice. */
#ifndef TUNA_CORE_PROF_H
#define TUNA_CORE_PROF_H
#include <stdint.h>

#include "core/clock.h"

/* PROF_CONVERT: rounding activations to bf16 for bf16 GEMMs */
typedef enum { PROF_GEMM, PROF_DEQUANT, PROF_ATTENTION, PROF_CONVERT, PROF_KINDS } prof_kind;

typedef struct {
    double seconds[PROF_KINDS]; /* per kind */
    double gemm_flops;          /* floating-point operations of the GEMMs (2 per multiply-add) */
    double step_seconds;        /* wall time of the steps */
    int64_t steps, tokens;      /* steps and their input tokens */
} prof_totals;

extern int core_prof_on; /* 1 once prof_enable(1): read by the timed calls */

void prof_enable(int on);
/* The start of a timed call: its clock, or 0 when profiling is off. */
static inline double prof_start(void) { return core_prof_on ? core_now_s() : 0.0; }
void prof_count(prof_kind k, double t0, double flops);
/* The end of a timed call started at t0 that did flops operations. */
static inline void prof_stop(prof_kind k, double t0, double flops) {
    if (core_prof_on) prof_count(k, t0, flops);
}
/* A training step's bounds on this thread: what the timed calls between
 * them did is counted, with the step's seconds and input tokens. */
void prof_step_begin(void);
void prof_step_end(double seconds, int64_t tokens);
/* This thread's totals so far, and their reset to zero. */
void prof_get(prof_totals *out);
void prof_reset(void);
/* "gemm", "dequant", "attention", "convert" */
const char *prof_kind_name(prof_kind k);
/* step time not in any kind (never below 0) */
double prof_rest_seconds(const prof_totals *p);
#endif
