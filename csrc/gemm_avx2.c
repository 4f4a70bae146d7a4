/* GEMM for AVX2 + FMA: block sizes and register-tiled micro-kernels (driver: gemm_driver.h).
 *
 * Micro-tile MR x NR = 6 x 16 floats (6 x 8 doubles): each row of the c tile is two ymm
 * registers, 12 accumulators of the 16 registers; per step of k two loads of B, six broadcasts
 * of A, 12 FMAs.
 *
 * Blocking for 48 KiB L1d / 2 MiB L2 per core:
 *   KC x NR sliver of B: 256 x 16 x 4 B = 16 KiB   (L1)
 *   MC x KC block of A:  144 x 256 x 4 B = 144 KiB (L2)
 *   KC x NC block of B:  256 x 4096 x 4 B = 4 MiB  (L3, shared)
 */
/* The micro-kernels are noinline: inlined into the driver, GCC ran short of vector registers
 * and kept an operand of B on the stack (one extra load per FMA). */
#include <stdint.h>
#include "fastnn.h"
#include "gemm.h"

#if FNN_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include <immintrin.h>

/* c[0:6, 0:16] = alpha * Ap @ Bp + beta * c   (c not read when beta == 0) */
static __attribute__((noinline)) void
sgemm_ukr_avx2_6x16(int64_t kc, const float *restrict ap, const float *restrict bp,
                    float *restrict c, int64_t ldc, const float *alpha_p, const float *beta_p)
{
    __m256 acc0[6], acc1[6];   /* acc0[i]: c[i, 0:8], acc1[i]: c[i, 8:16] */
    #pragma GCC unroll 6
    for (int i = 0; i < 6; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
    #pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {   /* the c tile arrives while we compute (beta != 0 reads it,
                                      * and every store would otherwise miss) */
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
    }
    #pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
        #pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            const __m256 ai = _mm256_broadcast_ss(ap + i);
            acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
            acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
        }
        ap += 6;
        bp += 16;
    }
    /* alpha, beta come by pointer (as in BLIS): as values they would pin two vector
     * registers through the k loop and push an operand of B out to the stack */
    const float alpha = *alpha_p, beta = *beta_p;
    const __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0) {
        #pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, acc0[i]));
            _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, acc1[i]));
        }
    } else {
        const __m256 vb = _mm256_set1_ps(beta);
        #pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            float *ci = c + i * ldc;
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, acc0[i], _mm256_mul_ps(vb, _mm256_loadu_ps(ci))));
            _mm256_storeu_ps(ci + 8,
                             _mm256_fmadd_ps(va, acc1[i], _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8))));
        }
    }
}

/* c[0:6, 0:8] in doubles, same scheme. */
static __attribute__((noinline)) void
dgemm_ukr_avx2_6x8(int64_t kc, const double *restrict ap, const double *restrict bp,
                   double *restrict c, int64_t ldc, const double *alpha_p, const double *beta_p)
{
    __m256d acc0[6], acc1[6];
    #pragma GCC unroll 6
    for (int i = 0; i < 6; i++) acc0[i] = acc1[i] = _mm256_setzero_pd();
    #pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {   /* the c tile arrives while we compute (beta != 0 reads it,
                                      * and every store would otherwise miss) */
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 7), _MM_HINT_T0);
    }
    #pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        const __m256d b0 = _mm256_load_pd(bp), b1 = _mm256_load_pd(bp + 4);
        #pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            const __m256d ai = _mm256_broadcast_sd(ap + i);
            acc0[i] = _mm256_fmadd_pd(ai, b0, acc0[i]);
            acc1[i] = _mm256_fmadd_pd(ai, b1, acc1[i]);
        }
        ap += 6;
        bp += 8;
    }
    /* alpha, beta come by pointer (as in BLIS): as values they would pin two vector
     * registers through the k loop and push an operand of B out to the stack */
    const double alpha = *alpha_p, beta = *beta_p;
    const __m256d va = _mm256_set1_pd(alpha);
    if (beta == 0) {
        #pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            _mm256_storeu_pd(c + i * ldc, _mm256_mul_pd(va, acc0[i]));
            _mm256_storeu_pd(c + i * ldc + 4, _mm256_mul_pd(va, acc1[i]));
        }
    } else {
        const __m256d vb = _mm256_set1_pd(beta);
        #pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            double *ci = c + i * ldc;
            _mm256_storeu_pd(ci, _mm256_fmadd_pd(va, acc0[i], _mm256_mul_pd(vb, _mm256_loadu_pd(ci))));
            _mm256_storeu_pd(ci + 4,
                             _mm256_fmadd_pd(va, acc1[i], _mm256_mul_pd(vb, _mm256_loadu_pd(ci + 4))));
        }
    }
}

#define GEMM_T float
#define GEMM_MR 6
#define GEMM_NR 16
#define GEMM_KC 256
#define GEMM_MC 144
#define GEMM_NC 4096
#define GEMM_UKR sgemm_ukr_avx2_6x16
#define GEMM_ENTRY fnn_sgemm_avx2
#define GEMM_SFX(name) name##_s
#define GEMM_VEC_BYTES 32
#include "gemm_driver.h"

#define GEMM_T double
#define GEMM_MR 6
#define GEMM_NR 8
#define GEMM_KC 256
#define GEMM_MC 144
#define GEMM_NC 2048
#define GEMM_UKR dgemm_ukr_avx2_6x8
#define GEMM_ENTRY fnn_dgemm_avx2
#define GEMM_SFX(name) name##_d
#define GEMM_VEC_BYTES 32
#include "gemm_driver.h"

#pragma GCC pop_options

#else  /* not x86: never selected by fnn_cpu_isa(), defined so the module links */
void fnn_sgemm_avx2(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int trans_a,
                    const float *b, int trans_b, float beta, float *c, int max_threads)
{
    fnn_sgemm_portable(m, n, k, alpha, a, trans_a, b, trans_b, beta, c, max_threads);
}
void fnn_dgemm_avx2(int64_t m, int64_t n, int64_t k, double alpha, const double *a, int trans_a,
                    const double *b, int trans_b, double beta, double *c, int max_threads)
{
    fnn_dgemm_portable(m, n, k, alpha, a, trans_a, b, trans_b, beta, c, max_threads);
}
void fnn_sgemm_avx2_ex(int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                       int trans_a, const float *b, int trans_b, float beta, float *c,
                       int max_threads, const fnn_gemm_epilogue *ep)
{
    fnn_sgemm_portable_ex(m, n, k, alpha, a, trans_a, b, trans_b, beta, c, max_threads, ep);
}
void fnn_dgemm_avx2_ex(int64_t m, int64_t n, int64_t k, double alpha, const double *a,
                       int trans_a, const double *b, int trans_b, double beta, double *c,
                       int max_threads, const fnn_gemm_epilogue *ep)
{
    fnn_dgemm_portable_ex(m, n, k, alpha, a, trans_a, b, trans_b, beta, c, max_threads, ep);
}
void fnn_sgemm_avx2_blocks(int64_t out[5]) { fnn_sgemm_portable_blocks(out); }
void fnn_dgemm_avx2_blocks(int64_t out[5]) { fnn_dgemm_portable_blocks(out); }
#endif
