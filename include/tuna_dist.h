/* tuna_dist.h — data-parallel training over MPI. When a process is started
 * by an MPI launcher (mpirun -np N tuna sft ...), tuna_dist_init joins the
 * job; each rank then trains on its share of every global batch and the
 * gradients are summed across ranks before one identical optimizer step.
 * Without a launcher, or in a build without MPI, everything here is the
 * one-process case (rank 0 of 1) and costs nothing. */
#ifndef TUNA_DIST_H
#define TUNA_DIST_H
#include <stdint.h>

#include "tuna.h"

/* Joins the MPI job if this process was started by an MPI launcher (Open
 * MPI's or PMIx's environment); otherwise stays single-process. Idempotent. */
tuna_status tuna_dist_init(void);
/* Leaves the job (after the last collective). */
void tuna_dist_finalize(void);
int tuna_dist_rank(void);
int tuna_dist_size(void);
/* 1 when built with MPI support. */
int tuna_dist_available(void);
/* Ends every rank of the job with this exit code (a failure on one rank must
 * not leave the others waiting in a collective). Single process: exit(code). */
void tuna_dist_abort(int code) __attribute__((noreturn));
/* In-place sums over all ranks (no-ops for one process). */
tuna_status tuna_dist_sum_f32(float *buf, int64_t n);
tuna_status tuna_dist_sum_f64(double *buf, int n);
tuna_status tuna_dist_sum_i64(int64_t *buf, int n);
/* Non-blocking in-place sum, started now (at most 4096 outstanding);
 * tuna_dist_progress lets started sums advance, tuna_dist_wait completes
 * them all. Every rank must start the same sums in the same order. */
tuna_status tuna_dist_isum_f32(float *buf, int64_t n);
void tuna_dist_progress(void);
tuna_status tuna_dist_wait(void);
/* 1 on every rank when flag is set on any rank. */
int tuna_dist_any(int flag);
void tuna_dist_barrier(void);
/* Seconds spent in the sums so far, waiting included (the part of a step the
 * communication costs beyond what overlaps with computation). */
double tuna_dist_comm_seconds(void);
#endif
