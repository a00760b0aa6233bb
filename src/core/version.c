/* version.c — what this build of libtuna is: its version, the configuration
 * it was built with (MPI on or off, the compiler flags and the CPU features
 * they target) and the BLAS library it runs on, as `tuna --version` prints. */
#include <stdio.h>
#include <string.h>
#include <cblas.h>

#include "tuna.h"
#include "tuna_dist.h"
#include "kernels/kernels.h"

#if defined(__has_include)
#if __has_include("build_config.h")
#include "build_config.h" /* written by scripts/configure.sh into BUILD/gen */
#endif
#endif
#ifndef TUNA_BUILD_MPI
#define TUNA_BUILD_MPI "off"
#endif
#ifndef TUNA_BUILD_OPENBLAS
#define TUNA_BUILD_OPENBLAS "unknown"
#endif
#ifndef TUNA_BUILD_FLAGS
#define TUNA_BUILD_FLAGS "unknown"
#endif

/* The instruction-set extensions the compiler was allowed to use. */
static const char *cpu_features(void) {
    return ""
#ifdef __SSE4_2__
        " sse4.2"
#endif
#ifdef __AVX__
        " avx"
#endif
#ifdef __AVX2__
        " avx2"
#endif
#ifdef __FMA__
        " fma"
#endif
#ifdef __F16C__
        " f16c"
#endif
#ifdef __AVX512F__
        " avx512f"
#endif
#ifdef __AVX512BW__
        " avx512bw"
#endif
#ifdef __AVX512VL__
        " avx512vl"
#endif
#ifdef __AVX512VNNI__
        " avx512vnni"
#endif
#ifdef __AVX512BF16__
        " avx512bf16"
#endif
#ifdef __AMX_BF16__
        " amx-bf16"
#endif
        ;
}

const char *tuna_version(void) { return TUNA_VERSION_STRING; }

int tuna_bf16_supported(void) { return k_bf16_ready(); }

const char *tuna_kernels_info(void) {
    static char buf[256];
    snprintf(buf, sizeof buf, "fp32 GEMM: OpenBLAS %s; bf16 GEMM: %s", openblas_get_corename(),
             k_bf16_ready() ? k_bf16_kernel() : "none (no AVX512-BF16 or AMX: --bf16 computes in fp32)");
    return buf;
}

const char *tuna_build_info(void) {
    static char buf[1024];
    const char *feat = cpu_features();
    snprintf(buf, sizeof buf,
             "mpi: %s%s\n"
             "blas: OpenBLAS %s (%s), kernel %s, %d threads\n"
             "compiled: %s\n"
             "cpu features: %s\n"
             "kernels: %s\n",
             TUNA_BUILD_MPI, tuna_dist_available() ? "" : " (single process)",
             TUNA_BUILD_OPENBLAS, openblas_get_config(), openblas_get_corename(), openblas_get_num_threads(),
             TUNA_BUILD_FLAGS, feat[0] ? feat + 1 : "baseline x86-64", tuna_kernels_info());
    return buf;
}
