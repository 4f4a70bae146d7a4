/* GEMM: c = alpha * op(a) @ op(b) + beta * c on C-contiguous matrices, op(x) = x^T if trans_x.
 *
 * a is (m, k), or (k, m) when trans_a; b is (k, n), or (n, k) when trans_b; c is (m, n).
 * As in BLAS, c is not read when beta == 0 (NaN there does not propagate).
 *
 * Layout of the implementation (GotoBLAS / BLIS):
 *   gemm.c            dispatch on the run-time ISA (fnn_cpu_isa), batching, workspace
 *   gemm_driver.h     the five loops around the micro-kernel, packing, OpenMP split
 *                     (a template, instantiated once per ISA and dtype)
 *   gemm_avx512.c     block sizes + register-tiled micro-kernels for AVX-512
 *   gemm_avx2.c       ... for AVX2 + FMA
 *   gemm_portable.c   ... in plain C (any CPU)
 */
#ifndef FASTNN_GEMM_H
#define FASTNN_GEMM_H

#include <stddef.h>
#include <stdint.h>

void fnn_sgemm(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int trans_a,
               const float *b, int trans_b, float beta, float *c);
void fnn_dgemm(int64_t m, int64_t n, int64_t k, double alpha, const double *a, int trans_a,
               const double *b, int trans_b, double beta, double *c);

/* batch independent products: a, b, c hold `batch` contiguous matrices each. */
void fnn_sgemm_batched(int64_t batch, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int trans_a, const float *b, int trans_b, float beta,
                       float *c);
void fnn_dgemm_batched(int64_t batch, int64_t m, int64_t n, int64_t k, double alpha,
                       const double *a, int trans_a, const double *b, int trans_b, double beta,
                       double *c);

/* ---- internal: one entry per ISA and dtype (gemm_<isa>.c), max_threads >= 1. */
#define FNN_GEMM_DECLARE(isa)                                                                  \
    void fnn_sgemm_##isa(int64_t m, int64_t n, int64_t k, float alpha, const float *a,        \
                         int trans_a, const float *b, int trans_b, float beta, float *c,      \
                         int max_threads);                                                     \
    void fnn_dgemm_##isa(int64_t m, int64_t n, int64_t k, double alpha, const double *a,      \
                         int trans_a, const double *b, int trans_b, double beta, double *c,   \
                         int max_threads);
FNN_GEMM_DECLARE(portable)
FNN_GEMM_DECLARE(avx2)
FNN_GEMM_DECLARE(avx512)

/* A 64-byte aligned scratch buffer of at least `bytes`, owned by the calling thread and reused
 * across calls (fresh pages per call would cost more than a small GEMM). NULL if out of memory. */
void *fnn_gemm_workspace(size_t bytes);

#endif
