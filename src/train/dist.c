/* dist.c — the MPI calls of data-parallel training (see tuna_dist.h), kept
 * in one file so the rest of tuna never includes mpi.h and a build without
 * Open MPI (TUNA_MPI undefined) compiles the one-process versions. Large
 * sums go in chunks of at most 2^30 elements (MPI counts are int). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tuna_dist.h"

#ifdef TUNA_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
static double g_comm = 0;

int tuna_dist_rank(void) { return g_rank; }
int tuna_dist_size(void) { return g_size; }
double tuna_dist_comm_seconds(void) { return g_comm; }

#ifdef TUNA_MPI
static int g_mpi = 0;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int tuna_dist_available(void) { return 1; }

tuna_status tuna_dist_init(void) {
    if (g_mpi) return TUNA_OK;
    /* started by a launcher? (a plain run must not become an MPI singleton) */
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_RANK")) return TUNA_OK;
    int inited = 0;
    MPI_Initialized(&inited);
    /* MPI is called from the main thread only; OpenMP/OpenBLAS threads exist beside it */
    int provided = 0;
    if (!inited && MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return tuna_fail(TUNA_ERR_IO, "MPI_Init failed");
    if (!inited && provided < MPI_THREAD_FUNNELED) return tuna_fail(TUNA_ERR_UNSUPPORTED, "this MPI library does not support MPI_THREAD_FUNNELED");
    /* an error in any collective ends the job rather than returning */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    g_mpi = 1;
    return TUNA_OK;
}

void tuna_dist_finalize(void) {
    if (!g_mpi) return;
    MPI_Finalize();
    g_mpi = 0;
}

void tuna_dist_abort(int code) {
    fflush(stdout);
    fflush(stderr);
    if (g_mpi && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

static tuna_status sum(void *buf, int64_t n, MPI_Datatype type, size_t elem) {
    if (!g_mpi || g_size == 1) return TUNA_OK;
    double t0 = now_s();
    for (int64_t at = 0; at < n;) {
        int k = n - at > (1 << 30) ? (1 << 30) : (int)(n - at);
        if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + at * elem, k, type, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
            return tuna_fail(TUNA_ERR_IO, "MPI_Allreduce failed");
        at += k;
    }
    g_comm += now_s() - t0;
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
    double t0 = now_s();
    for (int64_t at = 0; at < n;) {
        int k = n - at > (1 << 30) ? (1 << 30) : (int)(n - at);
        if (g_nreq == MAX_PENDING) return tuna_fail(TUNA_ERR_INTERNAL, "more than %d gradient sums in flight", MAX_PENDING);
        if (MPI_Iallreduce(MPI_IN_PLACE, buf + at, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &g_req[g_nreq++]) != MPI_SUCCESS)
            return tuna_fail(TUNA_ERR_IO, "MPI_Iallreduce failed");
        at += k;
    }
    g_comm += now_s() - t0;
    return TUNA_OK;
}

void tuna_dist_progress(void) {
    if (!g_nreq) return;
    double t0 = now_s();
    int flag;
    MPI_Testall(g_nreq, g_req, &flag, MPI_STATUSES_IGNORE);
    g_comm += now_s() - t0;
}

tuna_status tuna_dist_wait(void) {
    if (!g_nreq) return TUNA_OK;
    double t0 = now_s();
    int rc = MPI_Waitall(g_nreq, g_req, MPI_STATUSES_IGNORE);
    g_nreq = 0;
    g_comm += now_s() - t0;
    return rc == MPI_SUCCESS ? TUNA_OK : tuna_fail(TUNA_ERR_IO, "MPI_Waitall failed");
}

int tuna_dist_any(int flag) {
    if (!g_mpi || g_size == 1) return flag != 0;
    int in = flag != 0, out = 0;
    MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return out;
}

void tuna_dist_barrier(void) {
    if (g_mpi && g_size > 1) MPI_Barrier(MPI_COMM_WORLD);
}
#else
int tuna_dist_available(void) { return 0; }
tuna_status tuna_dist_init(void) {
    if (getenv("OMPI_COMM_WORLD_SIZE") && atoi(getenv("OMPI_COMM_WORLD_SIZE")) > 1)
        return tuna_fail(TUNA_ERR_UNSUPPORTED, "started by mpirun, but this tuna was built without MPI (install libopenmpi-dev and rebuild)");
    return TUNA_OK;
}
void tuna_dist_finalize(void) {}
void tuna_dist_abort(int code) {
    fflush(stdout);
    fflush(stderr);
    exit(code);
}
tuna_status tuna_dist_sum_f32(float *buf, int64_t n) { (void)buf; (void)n; return TUNA_OK; }
tuna_status tuna_dist_sum_f64(double *buf, int n) { (void)buf; (void)n; return TUNA_OK; }
tuna_status tuna_dist_sum_i64(int64_t *buf, int n) { (void)buf; (void)n; return TUNA_OK; }
int tuna_dist_any(int flag) { return flag != 0; }
void tuna_dist_barrier(void) {}
tuna_status tuna_dist_isum_f32(float *buf, int64_t n) { (void)buf; (void)n; return TUNA_OK; }
void tuna_dist_progress(void) {}
tuna_status tuna_dist_wait(void) { return TUNA_OK; }
#endif
