/* GEMM in plain C for any CPU: block sizes and the micro-kernel (driver: gemm_driver.h).
 *
 * The micro-kernel is written so the compiler can keep the MR x NR accumulator tile in vector
 * registers with the baseline ISA (SSE2 on x86-64, NEON on aarch64): the inner j loop over a
 * row of the tile is independent per lane and vectorizes without reassociating any sum.
 * Micro-tile 4 x 8 floats / 4 x 4 doubles = 8 SSE registers of accumulators.
 */
#include <stdint.h>
#include "fastnn.h"
#include "gemm.h"

#define DEFINE_PORTABLE_UKR(name, T, MR_, NR_)                                                 \
    static inline void name(int64_t kc, const T *restrict ap, const T *restrict bp,            \
                            T *restrict c, int64_t ldc, const T *alpha_p, const T *beta_p) \
    {                                                                                          \
        const T alpha = *alpha_p, beta = *beta_p;                                              \
        T acc[MR_][NR_] = {{0}};                                                               \
        for (int64_t p = 0; p < kc; p++) {                                                     \
            for (int i = 0; i < MR_; i++)                                                      \
                for (int j = 0; j < NR_; j++)                                                  \
                    acc[i][j] += ap[i] * bp[j];                                                \
            ap += MR_;                                                                         \
            bp += NR_;                                                                         \
        }                                                                                      \
        for (int i = 0; i < MR_; i++)                                                          \
            for (int j = 0; j < NR_; j++)                                                      \
                c[i * ldc + j] = beta == 0 ? alpha * acc[i][j]                                 \
                                           : alpha * acc[i][j] + beta * c[i * ldc + j];        \
    }

DEFINE_PORTABLE_UKR(sgemm_ukr_portable_4x8, float, 4, 8)
DEFINE_PORTABLE_UKR(dgemm_ukr_portable_4x4, double, 4, 4)

#define GEMM_T float
#define GEMM_MR 4
#define GEMM_NR 8
#define GEMM_KC 256
#define GEMM_MC 128
#define GEMM_NC 4096
#define GEMM_UKR sgemm_ukr_portable_4x8
#define GEMM_ENTRY fnn_sgemm_portable
#define GEMM_SFX(name) name##_s
#define GEMM_VEC_BYTES 16
#include "gemm_driver.h"

#define GEMM_T double
#define GEMM_MR 4
#define GEMM_NR 4
#define GEMM_KC 256
#define GEMM_MC 128
#define GEMM_NC 2048
#define GEMM_UKR dgemm_ukr_portable_4x4
#define GEMM_ENTRY fnn_dgemm_portable
#define GEMM_SFX(name) name##_d
#define GEMM_VEC_BYTES 16
#include "gemm_driver.h"
