/* GEMM for AVX-512: block sizes and register-tiled micro-kernels (driver: gemm_driver.h).
 *
 * Micro-tile MR x NR = 12 x 32 floats (12 x 16 doubles): each row of the c tile is two zmm
 * registers, 24 accumulators in all. Per step of k: load two vectors of the packed B sliver,
 * broadcast each of the 12 values of the packed A sliver, 24 FMAs. Two FMA ports need >= 8
 * independent accumulators each to hide the 4-cycle latency; 24 leave room for the loads.
 *
 * Blocking for 48 KiB L1d / 2 MiB L2 per core:
 *   KC x NR sliver of B: 256 x 32 x 4 B = 32 KiB   (L1, reused by every MR sliver of A)
 *   MC x KC block of A:  192 x 256 x 4 B = 192 KiB (L2, streamed once per NR sliver of B)
 *   KC x NC block of B:  256 x 4096 x 4 B = 4 MiB  (L3, shared by both threads)
 */
/* The micro-kernels are noinline: inlined into the driver, GCC ran short of vector registers
 * and kept an operand of B on the stack (one extra load per FMA). */
#include <stdint.h>
#include "fastnn.h"
#include "gemm.h"

#if FNN_X86
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,fma")
#include <immintrin.h>

/* c[0:12, 0:32] = alpha * Ap @ Bp + beta * c   (c not read when beta == 0) */
static __attribute__((noinline)) void
sgemm_ukr_avx512_12x32(int64_t kc, const float *restrict ap, const float *restrict bp,
                       float *restrict c, int64_t ldc, const float *alpha_p, const float *beta_p)
{
    __m512 acc0[12], acc1[12];   /* acc0[i]: c[i, 0:16], acc1[i]: c[i, 16:32] */
    #pragma GCC unroll 12
    for (int i = 0; i < 12; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
    #pragma GCC unroll 12
    for (int i = 0; i < 12; i++) {   /* pull the c tile into cache while we compute */
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 31), _MM_HINT_T0);
    }
    for (int64_t p = 0; p < kc; p++) {
        const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
        #pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            const __m512 ai = _mm512_set1_ps(ap[i]);
            acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
            acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
        }
        ap += 12;
        bp += 32;
    }
    /* alpha, beta come by pointer (as in BLIS): as values they would pin two vector
     * registers through the k loop and push an operand of B out to the stack */
    const float alpha = *alpha_p, beta = *beta_p;
    const __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0) {
        #pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc0[i]));
            _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc1[i]));
        }
    } else {
        const __m512 vb = _mm512_set1_ps(beta);
        #pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            float *ci = c + i * ldc;
            _mm512_storeu_ps(ci, _mm512_fmadd_ps(va, acc0[i], _mm512_mul_ps(vb, _mm512_loadu_ps(ci))));
            _mm512_storeu_ps(ci + 16,
                             _mm512_fmadd_ps(va, acc1[i], _mm512_mul_ps(vb, _mm512_loadu_ps(ci + 16))));
        }
    }
}

/* c[0:12, 0:16] in doubles, same scheme. */
static __attribute__((noinline)) void
dgemm_ukr_avx512_12x16(int64_t kc, const double *restrict ap, const double *restrict bp,
                       double *restrict c, int64_t ldc, const double *alpha_p, const double *beta_p)
{
    __m512d acc0[12], acc1[12];
    #pragma GCC unroll 12
    for (int i = 0; i < 12; i++) acc0[i] = acc1[i] = _mm512_setzero_pd();
    #pragma GCC unroll 12
    for (int i = 0; i < 12; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
    }
    for (int64_t p = 0; p < kc; p++) {
        const __m512d b0 = _mm512_load_pd(bp), b1 = _mm512_load_pd(bp + 8);
        #pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            const __m512d ai = _mm512_set1_pd(ap[i]);
            acc0[i] = _mm512_fmadd_pd(ai, b0, acc0[i]);
            acc1[i] = _mm512_fmadd_pd(ai, b1, acc1[i]);
        }
        ap += 12;
        bp += 16;
    }
    /* alpha, beta come by pointer (as in BLIS): as values they would pin two vector
     * registers through the k loop and push an operand of B out to the stack */
    const double alpha = *alpha_p, beta = *beta_p;
    const __m512d va = _mm512_set1_pd(alpha);
    if (beta == 0) {
        #pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            _mm512_storeu_pd(c + i * ldc, _mm512_mul_pd(va, acc0[i]));
            _mm512_storeu_pd(c + i * ldc + 8, _mm512_mul_pd(va, acc1[i]));
        }
    } else {
        const __m512d vb = _mm512_set1_pd(beta);
        #pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            double *ci = c + i * ldc;
            _mm512_storeu_pd(ci, _mm512_fmadd_pd(va, acc0[i], _mm512_mul_pd(vb, _mm512_loadu_pd(ci))));
            _mm512_storeu_pd(ci + 8,
                             _mm512_fmadd_pd(va, acc1[i], _mm512_mul_pd(vb, _mm512_loadu_pd(ci + 8))));
        }
    }
}

#define GEMM_T float
#define GEMM_MR 12
#define GEMM_NR 32
#define GEMM_KC 256
#define GEMM_MC 192
#define GEMM_NC 4096
#define GEMM_UKR sgemm_ukr_avx512_12x32
#define GEMM_ENTRY fnn_sgemm_avx512
#define GEMM_SFX(name) name##_s
#define GEMM_VEC_BYTES 64
#include "gemm_driver.h"

#define GEMM_T double
#define GEMM_MR 12
#define GEMM_NR 16
#define GEMM_KC 256
#define GEMM_MC 192
#define GEMM_NC 2048
#define GEMM_UKR dgemm_ukr_avx512_12x16
#define GEMM_ENTRY fnn_dgemm_avx512
#define GEMM_SFX(name) name##_d
#define GEMM_VEC_BYTES 64
#include "gemm_driver.h"

#pragma GCC pop_options

#else  /* not x86: never selected by fnn_cpu_isa(), defined so the module links */
void fnn_sgemm_avx512(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int trans_a,
                      const float *b, int trans_b, float beta, float *c, int max_threads)
{
    fnn_sgemm_portable(m, n, k, alpha, a, trans_a, b, trans_b, beta, c, max_threads);
}
void fnn_dgemm_avx512(int64_t m, int64_t n, int64_t k, double alpha, const double *a, int trans_a,
                      const double *b, int trans_b, double beta, double *c, int max_threads)
{
    fnn_dgemm_portable(m, n, k, alpha, a, trans_a, b, trans_b, beta, c, max_threads);
}
void fnn_sgemm_avx512_ex(int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                       int trans_a, const float *b, int trans_b, float beta, float *c,
                       int max_threads, const fnn_gemm_epilogue *ep)
{
    fnn_sgemm_portable_ex(m, n, k, alpha, a, trans_a, b, trans_b, beta, c, max_threads, ep);
}
void fnn_dgemm_avx512_ex(int64_t m, int64_t n, int64_t k, double alpha, const double *a,
                       int trans_a, const double *b, int trans_b, double beta, double *c,
                       int max_threads, const fnn_gemm_epilogue *ep)
{
    fnn_dgemm_portable_ex(m, n, k, alpha, a, trans_a, b, trans_b, beta, c, max_threads, ep);
}
void fnn_sgemm_avx512_blocks(int64_t out[5]) { fnn_sgemm_portable_blocks(out); }
void fnn_dgemm_avx512_blocks(int64_t out[5]) { fnn_dgemm_portable_blocks(out); }
#endif
