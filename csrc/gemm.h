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
 *   gemm_epilogue.c   the activations of the fused epilogues (the ops kernels' own GELU/ReLU)
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

/* Fused epilogue (fnn_?gemm_ex): work done on each thread's MC x NC block of c right after its
 * last micro-kernel calls, while the block is in L2, instead of extra passes over c later:
 *   c = act(alpha * op(a) @ op(b) + beta * c + bias) + residual
 * and, for the backward bias gradient, the sums over k of op(a)'s rows or op(b)'s columns, taken
 * from the packed panels (op(b)'s k x n is read once for both the product and the sums):
 *   sum = alpha * op(x).sum(over k) + beta * sum   (sum not read when beta == 0)
 * Every pointer may be NULL; arrays have the dtype of c and are C-contiguous; residual and preact
 * are m x n and must not overlap c. */
enum { FNN_GEMM_ACT_NONE = 0, FNN_GEMM_ACT_RELU = 1, FNN_GEMM_ACT_GELU_TANH = 2,
       FNN_GEMM_ACT_GELU_ERF = 3 };
typedef struct {
    const void *bias;       /* n values added to every row of c */
    int act;                /* FNN_GEMM_ACT_*, applied after the bias */
    const void *residual;   /* m x n, added after the activation */
    void *preact;           /* m x n: receives the value before the activation */
    void *sum;              /* m sums of op(a)'s rows, or n sums of op(b)'s columns (sum_of_b) */
    int sum_of_b;
} fnn_gemm_epilogue;

void fnn_sgemm_ex(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int trans_a,
                  const float *b, int trans_b, float beta, float *c, const fnn_gemm_epilogue *ep);
void fnn_dgemm_ex(int64_t m, int64_t n, int64_t k, double alpha, const double *a, int trans_a,
                  const double *b, int trans_b, double beta, double *c,
                  const fnn_gemm_epilogue *ep);

/* ---- internal: one entry per ISA and dtype (gemm_<isa>.c), max_threads >= 1. */
#define FNN_GEMM_DECLARE(isa)                                                                  \
    void fnn_sgemm_##isa(int64_t m, int64_t n, int64_t k, float alpha, const float *a,        \
                         int trans_a, const float *b, int trans_b, float beta, float *c,      \
                         int max_threads);                                                     \
    void fnn_dgemm_##isa(int64_t m, int64_t n, int64_t k, double alpha, const double *a,      \
                         int trans_a, const double *b, int trans_b, double beta, double *c,   \
                         int max_threads);                                                     \
    void fnn_sgemm_##isa##_ex(int64_t m, int64_t n, int64_t k, float alpha, const float *a,   \
                              int trans_a, const float *b, int trans_b, float beta, float *c, \
                              int max_threads, const fnn_gemm_epilogue *ep);                  \
    void fnn_dgemm_##isa##_ex(int64_t m, int64_t n, int64_t k, double alpha, const double *a, \
                              int trans_a, const double *b, int trans_b, double beta,          \
                              double *c, int max_threads, const fnn_gemm_epilogue *ep);  \
    void fnn_sgemm_##isa##_blocks(int64_t out[5]);                                            \
    void fnn_dgemm_##isa##_blocks(int64_t out[5]);
FNN_GEMM_DECLARE(portable)
FNN_GEMM_DECLARE(avx2)
FNN_GEMM_DECLARE(avx512)

/* A 64-byte aligned scratch buffer of at least `bytes`, owned by the calling thread and reused
 * across calls (fresh pages per call would cost more than a small GEMM). NULL if out of memory. */
void *fnn_gemm_workspace(size_t bytes);

/* The activation kernel of FNN_GEMM_ACT_* for the running ISA: y[0:n] = act(x[0:n]) (x, y
 * distinct); NULL for FNN_GEMM_ACT_NONE. */
typedef void (*fnn_gemm_act_f32_fn)(const float *x, float *y, int64_t n);
typedef void (*fnn_gemm_act_f64_fn)(const double *x, double *y, int64_t n);
fnn_gemm_act_f32_fn fnn_gemm_act_f32(int act);
fnn_gemm_act_f64_fn fnn_gemm_act_f64(int act);

/* {MR, NR, KC, MC, NC} of the running path for float32 (is_double 0) or float64. */
void fnn_gemm_blocks(int is_double, int64_t out[5]);

/* Data cache sizes in bytes (cpu.c): L1d and L2 of one core, L3 of one instance. */
void fnn_cache_sizes(int64_t *l1d, int64_t *l2, int64_t *l3);

#endif
