/* tuna_dist.h — data-parallel training over MPI. When a process is started
 * by an MPI launcher (mpirun -np N tuna sft ...), tuna_dist_init joins the
 * job; each rank then trains on its share of every global batch and the
 * gradients are summed across ranks before one identical optimizer step.
 * Without a launcher, or in a build without MPI, everything here is the
 * one-process case (rank 0 of 1) and costs nothing. An MPI call that fails
 * returns TUNA_ERR_IO (the detail names the call and the rank); nothing here
 * exits the process. */
#ifndef TUNA_DIST_H
#define TUNA_DIST_H
#include <stdint.h>

#include "tuna.h"

/* Joins the MPI job if this process was started by an MPI launcher (Open
 * MPI's or PMIx's environment); otherwise stays single-process. Idempotent.
 * Once it has initialised MPI (even if it then fails), tuna_dist_finalize
 * must be called before the process ends. */
tuna_status tuna_dist_init(void);
/* Leaves the job (after the last collective; every rank must call it):
 * finalises MPI if tuna_dist_init initialised it. Afterwards this process is
 * rank 0 of 1. TUNA_OK when not in a job. */
tuna_status tuna_dist_finalize(void);
int tuna_dist_rank(void);
int tuna_dist_size(void);
/* 1 when built with MPI support. */
int tuna_dist_available(void);
/* For a program whose rank failed alone (the others would wait in a
 * collective forever): when this process is one rank of several, MPI_Abort
 * ends every rank of the job, this one included, and the launcher exits with
 * code. Returns when this process is not in a multi-rank job (or if
 * MPI_Abort failed): then ending the process is the caller's business. */
void tuna_dist_abort_job(int code);
/* In-place sums over all ranks (no-ops for one process). */
tuna_status tuna_dist_sum_f32(float *buf, int64_t n);
tuna_status tuna_dist_sum_f64(double *buf, int n);
tuna_status tuna_dist_sum_i64(int64_t *buf, int n);
/* Non-blocking in-place sum, started now (at most 4096 outstanding);
 * tuna_dist_progress lets started sums advance, tuna_dist_wait completes
 * them all. Every rank must start the same sums in the same order. */
tuna_status tuna_dist_isum_f32(float *buf, int64_t n);
tuna_status tuna_dist_progress(void);
tuna_status tuna_dist_wait(void);
/* *any = 1 on every rank when flag is set on any rank, else 0. On failure
 * *any is this rank's flag. */
tuna_status tuna_dist_any(int flag, int *any);
tuna_status tuna_dist_barrier(void);
/* Seconds spent in the sums so far, waiting included (the part of a step the
 * communication costs beyond what overlaps with computation). */
double tuna_dist_comm_seconds(void);
#endif
