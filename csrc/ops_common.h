/* Shared machinery of the ops kernels (csrc/ops_*.c): instantiation names, ISA dispatch,
 * threading thresholds, and vectorizable math: float32 exp, expm1, tanh, sigmoid and Gaussian
 * tail; float64 exp, expm1 and tanh.
 *
 * How a family file is built (see ops_instantiate.h): its kernel section is written once with
 * T (float or double) and FN(name), and compiled once per dtype and instruction set:
 * FN(relu) becomes relu_f32_portable, relu_f64_avx2, relu_f32_avx512, ... The public entry
 * point fnn_relu_f32 (ops.h) picks a variant with fnn_cpu_isa() through FNN_DISPATCH.
 *
 * Loops are plain C under `#pragma omp simd`; the math below is branch-free so that GCC
 * vectorizes it at the width of the ISA the enclosing function is compiled for.
 */
#ifndef FNN_OPS_COMMON_H
#define FNN_OPS_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fastnn.h"
#include "ops.h"

/* AVX2 / AVX-512 variants need GCC's per-function targets; other compilers build portable only. */
#if FNN_X86 && defined(__GNUC__) && !defined(__clang__)
#define FNN_MULTI_ISA 1
#else
#define FNN_MULTI_ISA 0
#endif

#if defined(__GNUC__)
#define FNN_INLINE static inline __attribute__((always_inline))
#else
#define FNN_INLINE static inline
#endif

/* Below these sizes (elements) one thread finishes before a team could start (a few us). */
#define FNN_PAR_CHEAP (1 << 16)  /* memory-bound kernels: ~1 ns per element or less */
#define FNN_PAR_MATH (1 << 13)   /* an exp or a division per element */

/* for (int64_t i = 0; i < n; i++) { body }, vectorized, and split across threads when
 * n > threshold. Small inputs make no OpenMP runtime call at all: even a parallel region with
 * an if(0) clause costs ~0.6 us, a third of the per-call budget. */
#define FNN_FOR_SIMD(i, n, threshold, ...)                                 \
    do {                                                                   \
        const int64_t fnn_n_ = (n);                                        \
        if (fnn_n_ > (threshold) && fnn_max_threads() > 1) {               \
            _Pragma("omp parallel for simd schedule(static) num_threads(fnn_max_threads())")\
            for (int64_t i = 0; i < fnn_n_; i++) { __VA_ARGS__ }           \
        } else {                                                           \
            _Pragma("omp simd")                                            \
            for (int64_t i = 0; i < fnn_n_; i++) { __VA_ARGS__ }           \
        }                                                                  \
    } while (0)

/* for (int64_t r = 0; r < rows; r++) { body }, rows split across threads when the total work
 * (elements) exceeds threshold; the body vectorizes its own inner loops. */
#define FNN_FOR_ROWS(r, rows, work, threshold, ...)                        \
    do {                                                                   \
        const int64_t fnn_rows_ = (rows);                                  \
        if ((work) > (threshold) && fnn_rows_ > 1 && fnn_max_threads() > 1) { \
            _Pragma("omp parallel for schedule(static) num_threads(fnn_max_threads())")\
            for (int64_t r = 0; r < fnn_rows_; r++) { __VA_ARGS__ }        \
        } else {                                                           \
            for (int64_t r = 0; r < fnn_rows_; r++) { __VA_ARGS__ }        \
        }                                                                  \
    } while (0)

#define FNN_PASTE3_(a, b, c) a##_##b##_##c
#define FNN_PASTE3(a, b, c) FNN_PASTE3_(a, b, c)
#define FN(name) FNN_PASTE3(name, FNN_DT, FNN_ISA)

/* FNN_DISPATCH(relu_f32, (x, y, n)) calls relu_f32_<isa>(x, y, n) for the ISA in use. */
#if FNN_MULTI_ISA
#define FNN_DISPATCH(name, args)                                  \
    do {                                                          \
        switch (fnn_cpu_isa()) {                                  \
        case FNN_ISA_AVX512: name##_avx512 args; break;           \
        case FNN_ISA_AVX2: name##_avx2 args; break;               \
        default: name##_portable args; break;                     \
        }                                                         \
    } while (0)
#define FNN_DISPATCH_RET(var, name, args)                         \
    do {                                                          \
        switch (fnn_cpu_isa()) {                                  \
        case FNN_ISA_AVX512: var = name##_avx512 args; break;     \
        case FNN_ISA_AVX2: var = name##_avx2 args; break;         \
        default: var = name##_portable args; break;               \
        }                                                         \
    } while (0)
#else
#define FNN_DISPATCH(name, args) name##_portable args
#define FNN_DISPATCH_RET(var, name, args) var = name##_portable args
#endif

/* the thread count, fewer while other processes keep cores busy (cpu.c) */
static inline int fnn_max_threads(void) { return fnn_get_num_threads(); }

static inline int fnn_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static inline int fnn_team_size(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* ------------------------------------------------------------------ float32 vector math
 * Every function is accurate to a few ulp (relative error < 5e-7) and lets NaN through: clamps
 * are written `x > hi ? hi : x`, which keeps NaN, never fminf/fmaxf, which drop it. */

FNN_INLINE uint32_t fnn_f2u(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }
FNN_INLINE float fnn_u2f(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }

#define FNN_EXPF_MAX 88.0f    /* exp(88) = 1.65e38 < FLT_MAX: callers clamp to this */
#define FNN_EXPF_MIN -87.0f   /* below, exp flushes to 0 (exp(-87) = 1.6e-38, still normal) */
#define FNN_ROUND_SHIFT 0x1.8p23f  /* x + 1.5 * 2^23 rounds x to an integer kept in the low bits */

/* Range reduction x = n ln2 + r, |r| <= ln2/2; returns n (as a float) and 2^n in *scale.
 * ln2 is split Cody-Waite style (0.693359375 has 9 bits, so n * it is exact). */
FNN_INLINE float fnn_expf_reduce(float x, float *n_out, float *scale)
{
    float t = x * 0x1.715476p+0f + FNN_ROUND_SHIFT;   /* x * log2(e), rounded */
    float n = t - FNN_ROUND_SHIFT;
    /* the low mantissa bits of t hold n: 2^n's exponent field is n + 127 */
    *scale = fnn_u2f((fnn_f2u(t) - fnn_f2u(FNN_ROUND_SHIFT) + 127u) << 23);
    *n_out = n;
    return (x - n * 0.693359375f) - n * -2.12194440e-4f;
}

/* exp(x) for x <= 88 (callers clamp); 0 below -87. Taylor to r^7 on |r| <= 0.347: 5e-9. */
FNN_INLINE float fnn_expf(float x)
{
    float xc = x > FNN_EXPF_MAX ? FNN_EXPF_MAX : x;
    xc = xc < FNN_EXPF_MIN ? FNN_EXPF_MIN : xc;
    float n, s;
    float r = fnn_expf_reduce(xc, &n, &s);
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120
              + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    float y = p * s;
    return x < FNN_EXPF_MIN ? 0.0f : y;
}

/* exp(a + b) where a + b is given as an unevaluated sum (b a rounding-error-sized correction),
 * so a large exponent like -x^2/2 keeps full relative accuracy. a + b <= 88; 0 below -87. */
FNN_INLINE float fnn_expf_sum(float a, float b)
{
    float x = a + b;
    float xc = x > FNN_EXPF_MAX ? FNN_EXPF_MAX : x;
    xc = xc < FNN_EXPF_MIN ? FNN_EXPF_MIN : xc;
    float n, s;
    fnn_expf_reduce(xc, &n, &s);
    /* a - n*0.693359375 is exact (Sterbenz), so b adds without losing a's low bits */
    float r = ((a - n * 0.693359375f) + b) - n * -2.12194440e-4f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120
              + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    float y = p * s;
    return x < FNN_EXPF_MIN ? 0.0f : y;
}

/* exp(x) - 1 for -87 <= x <= 88 without cancellation near 0:
 * expm1(x) = 2^n expm1(r) + (2^n - 1), expm1(r) by Taylor to r^8 (relative error 6e-10). */
FNN_INLINE float fnn_expm1f(float x)
{
    float n, s;
    float r = fnn_expf_reduce(x, &n, &s);
    float q = r + r * r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120
              + r * (1.0f / 720 + r * (1.0f / 5040 + r * (1.0f / 40320)))))));
    return s * q + (s - 1.0f);
}

/* tanh(x) = sign(x) e / (e + 2), e = expm1(2|x|); |x| >= 9.5 rounds to 1 in float32. */
FNN_INLINE float fnn_tanhf(float x)
{
    float a = fabsf(x);
    a = a > 9.5f ? 9.5f : a;
    float e = fnn_expm1f(a + a);
    return copysignf(e / (e + 2.0f), x);
}

/* 1 / (1 + exp(-x)), both tails accurate: with e = exp(-|x|) <= 1, 1/(1+e) for x >= 0 and
 * e/(1+e) for x < 0, so nothing overflows. */
FNN_INLINE float fnn_sigmoidf(float x)
{
    float e = fnn_expf(-fabsf(x));
    float d = 1.0f / (1.0f + e);
    return x >= 0 ? d : e * d;
}

/* exp(-a^2/2 + c) with -a^2/2 formed exactly (a^2 of a 24-bit float is exact in double), so
 * Gaussian tails keep their relative accuracy down to the float32 underflow. */
FNN_INLINE float fnn_exp_neg_half_sqf(float a, float c)
{
    double sq = -0.5 * (double)a * (double)a;
    float hi = (float)sq;
    float lo = (float)(sq - (double)hi);
    lo = hi < -100.0f ? 0.0f : lo;              /* a = +-inf: avoid -inf - -inf = NaN */
    return fnn_expf_sum(hi, lo + c);
}

/* Upper Gaussian tail Q(|x|) = P(Z > |x|) = erfc(|x|/sqrt 2) / 2, with erfc from Numerical
 * Recipes' erfcc (Chebyshev fit, relative error < 1.2e-7 for all arguments):
 *   erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2).
 * Then the normal CDF is Phi(x) = x >= 0 ? 1 - Q : Q, accurate in both tails. */
FNN_INLINE float fnn_gauss_tailf(float x)
{
    float a = fabsf(x);
    float t = 1.0f / (1.0f + 0.5f * 0.70710678118654752f * a);
    float p = -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f
              + t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f
              + t * (-0.82215223f + t * 0.17087277f))))))));
    return 0.5f * t * fnn_exp_neg_half_sqf(a, p);
}

/* ------------------------------------------------------------------ float64 vector math
 * Same constructions in double, to ~1 ulp (relative error < 1e-15): libm's exp and tanh would
 * keep these loops scalar, slower than numpy's own SIMD float64 tanh. */

FNN_INLINE uint64_t fnn_d2u(double d) { uint64_t u; memcpy(&u, &d, sizeof u); return u; }
FNN_INLINE double fnn_u2d(uint64_t u) { double d; memcpy(&d, &u, sizeof d); return d; }

#define FNN_EXP_MAX 709.0    /* exp(709) = 8.2e307 < DBL_MAX: callers clamp to this */
#define FNN_EXP_MIN -708.0   /* below, exp flushes to 0 (exp(-708) = 3.3e-308, still normal) */
#define FNN_ROUND_SHIFT_D 0x1.8p52

/* x = n ln2 + r, |r| <= ln2/2; ln2's high part has 32 bits, so n * it is exact. */
FNN_INLINE double fnn_exp_reduce(double x, double *scale)
{
    double t = x * 0x1.71547652b82fep+0 + FNN_ROUND_SHIFT_D;
    double n = t - FNN_ROUND_SHIFT_D;
    *scale = fnn_u2d((fnn_d2u(t) - fnn_d2u(FNN_ROUND_SHIFT_D) + 1023u) << 52);
    return (x - n * 0x1.62e42fee00000p-1) - n * 0x1.a39ef35793c76p-33;
}

/* Taylor series of expm1(r) - r - r^2/2 ... to r^13, |r| <= 0.347: truncation 4e-18. */
FNN_INLINE double fnn_expm1_poly(double r)
{
    return r * r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720
           + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (1.0 / 3628800
           + r * (1.0 / 39916800 + r * (1.0 / 479001600 + r * (1.0 / 6227020800.0))))))))))));
}

/* exp(x) for x <= 709 (callers clamp); 0 below -708. */
FNN_INLINE double fnn_exp(double x)
{
    double xc = x > FNN_EXP_MAX ? FNN_EXP_MAX : x;
    xc = xc < FNN_EXP_MIN ? FNN_EXP_MIN : xc;
    double s;
    double r = fnn_exp_reduce(xc, &s);
    double y = (1.0 + (r + fnn_expm1_poly(r))) * s;
    return x < FNN_EXP_MIN ? 0.0 : y;
}

/* exp(x) - 1 for -708 <= x <= 709, as 2^n expm1(r) + (2^n - 1): no cancellation near 0. */
FNN_INLINE double fnn_expm1(double x)
{
    double s;
    double r = fnn_exp_reduce(x, &s);
    return s * (r + fnn_expm1_poly(r)) + (s - 1.0);
}

/* tanh(x) = sign(x) e / (e + 2), e = expm1(2|x|); |x| >= 20 rounds to 1 in float64. */
FNN_INLINE double fnn_tanh(double x)
{
    double a = fabs(x);
    a = a > 20.0 ? 20.0 : a;
    double e = fnn_expm1(a + a);
    return copysign(e / (e + 2.0), x);
}

#endif
