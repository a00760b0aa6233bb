/* dist.c — the MPI calls of data-parallel training (see tuna_dist.h), kept
 * in one file so the rest of tuna never includes mpi.h and a build without
 * Open MPI (TUNA_MPI undefined) compiles the one-process versions. Large
 * sums go in chunks of at most 2^30 elements (MPI counts are int). MPI
 * errors come back as statuses (MPI_ERRORS_RETURN), never end the process:
 * whether a failure ends the job is the caller's decision
 * (tuna_dist_abort_job). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"
#include "tuna_dist.h"

#ifdef TUNA_MPI
#include <mpi.h>
#include "core/error.h"
#endif

static int g_rank = 0, g_size = 1;
static double g_comm = 0;

int tuna_dist_rank(void) { return g_rank; }
int tuna_dist_size(void) { return g_size; }
double tuna_dist_comm_seconds(void) { return g_comm; }

#ifdef TUNA_MPI
static int g_mpi = 0, g_own = 0; /* in a job; MPI initialised here (so finalised here) */

/* TUNA_OK for MPI_SUCCESS, else the failed call and MPI's words for rc */
static tuna_status mpi_ok(int rc, const char *call) {
    if (rc == MPI_SUCCESS) return TUNA_OK;
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", rc);
    return core_fail(TUNA_ERR_IO, "%s failed on rank %d of %d: %s", call, g_rank, g_size, msg);
}

int tuna_dist_available(void) { return 1; }

/* started by a launcher? (a plain run must not become an MPI singleton) */
static int launched(void) { return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK"); }

tuna_status tuna_dist_init(void) {
    if (g_mpi || !launched()) return TUNA_OK;
    int inited = 0, provided = MPI_THREAD_FUNNELED;
    tuna_status st = mpi_ok(MPI_Initialized(&inited), "MPI_Initialized");
    /* MPI is called from the main thread only; OpenMP/OpenBLAS threads exist beside it */
    if (st == TUNA_OK && !inited) st = mpi_ok(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    if (st != TUNA_OK) return st;
    g_mpi = 1;
    g_own = !inited;
    if (provided < MPI_THREAD_FUNNELED) return core_fail(TUNA_ERR_UNSUPPORTED, "this MPI library does not support MPI_THREAD_FUNNELED");
    /* errors come back as statuses; the caller decides whether to end the job */
    st = mpi_ok(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    if (st == TUNA_OK) st = mpi_ok(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank), "MPI_Comm_rank");
    if (st == TUNA_OK) st = mpi_ok(MPI_Comm_size(MPI_COMM_WORLD, &g_size), "MPI_Comm_size");
    return st;
}

tuna_status tuna_dist_finalize(void) {
    if (!g_mpi) return TUNA_OK;
    int own = g_own;
    g_mpi = g_own = 0;
    g_rank = 0;
    g_size = 1;
    return own ? mpi_ok(MPI_Finalize(), "MPI_Finalize") : TUNA_OK;
}

void tuna_dist_abort_job(int code) {
    /* MPI_Abort ends every rank of the job, this one included; it returns
     * only if it failed, and then there is nothing more to do here */
    if (g_mpi && g_size > 1) (void)MPI_Abort(MPI_COMM_WORLD, code);
}

static tuna_status sum(void *buf, int64_t n, MPI_Datatype type, size_t elem) {
    if (!g_mpi || g_size == 1) return TUNA_OK;
    double t0 = core_now_s();
    for (int64_t at = 0; at < n;) {
        int k = n - at > (1 << 30) ? (1 << 30) : (int)(n - at);
        tuna_status st = mpi_ok(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + at * elem, k, type, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
        if (st != TUNA_OK) return st;
        at += k;
    }
    g_comm += core_now_s() - t0;
    return TUNA_OK;
}

tuna_status tuna_dist_sum_f32(float *buf, int64_t n) { return sum(buf, n, MPI_FLOAT, sizeof(float)); }
tuna_status tuna_dist_sum_f64(double *buf, int n) { return sum(buf, n, MPI_DOUBLE, sizeof(double)); }
tuna_status tuna_dist_sum_i64(int64_t *buf, int n) { return sum(buf, n, MPI_INT64_T, sizeof(int64_t)); }

#define MAX_PENDING 4096
static MPI_Request g_req[MAX_PENDING];
static int g_nreq;

tuna_status tuna_dist_isum_f32(float *buf, int64_t n) {
    if (!g_mpi || g_size == 1) return TUNA_OK;
    double t0 = core_now_s();
    for (int64_t at = 0; at < n;) {
        int k = n - at > (1 << 30) ? (1 << 30) : (int)(n - at);
        if (g_nreq == MAX_PENDING) return core_fail(TUNA_ERR_INTERNAL, "more than %d gradient sums in flight", MAX_PENDING);
        tuna_status st = mpi_ok(MPI_Iallreduce(MPI_IN_PLACE, buf + at, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &g_req[g_nreq]), "MPI_Iallreduce");
        if (st != TUNA_OK) return st;
        g_nreq++;
        at += k;
    }
    g_comm += core_now_s() - t0;
    return TUNA_OK;
}

tuna_status tuna_dist_progress(void) {
    if (!g_nreq) return TUNA_OK;
    double t0 = core_now_s();
    int flag;
    tuna_status st = mpi_ok(MPI_Testall(g_nreq, g_req, &flag, MPI_STATUSES_IGNORE), "MPI_Testall");
    g_comm += core_now_s() - t0;
    return st;
}

tuna_status tuna_dist_wait(void) {
    if (!g_nreq) return TUNA_OK;
    double t0 = core_now_s();
    int rc = MPI_Waitall(g_nreq, g_req, MPI_STATUSES_IGNORE);
    g_nreq = 0;
    g_comm += core_now_s() - t0;
    return mpi_ok(rc, "MPI_Waitall");
}

tuna_status tuna_dist_any(int flag, int *any) {
    int in = flag != 0;
    *any = in;
    if (!g_mpi || g_size == 1) return TUNA_OK;
    tuna_status st = mpi_ok(MPI_Allreduce(&in, any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    if (st != TUNA_OK) *any = in;
    return st;
}

tuna_status tuna_dist_barrier(void) {
    return g_mpi && g_size > 1 ? mpi_ok(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier") : TUNA_OK;
}
#else
int tuna_dist_available(void) { return 0; }
tuna_status tuna_dist_init(void) {
    if (getenv("OMPI_COMM_WORLD_SIZE") && atoi(getenv("OMPI_COMM_WORLD_SIZE")) > 1)
        return core_fail(TUNA_ERR_UNSUPPORTED, "started by mpirun, but this tuna was built without MPI (install libopenmpi-dev and rebuild)");
    return TUNA_OK;
}
tuna_status tuna_dist_finalize(void) { return TUNA_OK; }
void tuna_dist_abort_job(int code) { (void)code; }
tuna_status tuna_dist_sum_f32(float *buf, int64_t n) { (void)buf; (void)n; return TUNA_OK; }
tuna_status tuna_dist_sum_f64(double *buf, int n) { (void)buf; (void)n; return TUNA_OK; }
tuna_status tuna_dist_sum_i64(int64_t *buf, int n) { (void)buf; (void)n; return TUNA_OK; }
tuna_status tuna_dist_any(int flag, int *any) { *any = flag != 0; return TUNA_OK; }
tuna_status tuna_dist_barrier(void) { return TUNA_OK; }
tuna_status tuna_dist_isum_f32(float *buf, int64_t n) { (void)buf; (void)n; return TUNA_OK; }
tuna_status tuna_dist_progress(void) { return TUNA_OK; }
tuna_status tuna_dist_wait(void) { return TUNA_OK; }
#endif
