/* Fused flash-style attention: dispatch to the (dtype, instruction set) instances of
 * attention_tiles.h, and the vectorized 2^x each instance uses.
 *
 * Math (per head; s = scale * q k^T with masked entries -inf, base-2 scores s2 = s * log2(e)):
 *   forward   m_i = max_j s2_ij,  l_i = sum_j 2^(s2_ij - m_i),
 *             out_i = sum_j 2^(s2_ij - m_i) v_j / l_i,  lse_i = (m_i + log2 l_i) * ln 2,
 *             computed online over key tiles (running m and l; out rescaled by 2^(m_old - m_new)
 *             when the max grows).
 *   backward  p_ij = 2^(s2_ij - lse_i log2 e),  D_i = dout_i . out_i,
 *             dv_j = sum_i p_ij dout_i,  ds_ij = p_ij (dout_i . v_j - D_i),
 *             dq_i = scale sum_j ds_ij k_j,  dk_j = scale sum_i ds_ij q_i.
 * Work split. Forward: OpenMP over (head, query block); each block streams all its key tiles.
 * Backward: OpenMP over (head, key split); a unit owns its key blocks' dk, dv outright and adds
 * into its own dq buffer: dq itself when every thread has a head of its own (nsplit = 1),
 * else per-split partial buffers summed at the end. No atomics, no T x S matrix.
 */
#include <math.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "fastnn.h"
#include "attention.h"

#if FNN_X86
#include <immintrin.h>
#endif

#if defined(__GNUC__)
#define FNN_ALWAYS_INLINE inline __attribute__((always_inline))
#define FNN_NOINLINE __attribute__((noinline))
#else
#define FNN_ALWAYS_INLINE inline
#define FNN_NOINLINE
#endif

#define FNN_LOG2E 1.4426950408889634074
#define FNN_LN2 0.69314718055994530942

/* Tile sizes (queries x keys) of the forward and the backward pass; multiples of 16 (the widest
 * vector). Their tiles (scores plus D x block panels) stay in L1/L2. From
 * `bench/attention_tune.py --tiles` on a quiet 2-core AVX-512 Xeon at D = 64, causal T = 1024:
 * the best sizes lie within ~10% of each other and their order changes run to run; these two
 * were among the best in both runs (64 x 64, the first choice, was 15-20% slower forward). */
#ifndef FWD_BQ
#define FWD_BQ 32
#endif
#ifndef FWD_BK
#define FWD_BK 128
#endif
#ifndef BWD_BQ
#define BWD_BQ 128
#endif
#ifndef BWD_BK
#define BWD_BK 64
#endif
#define MK_MR 6   /* micro-kernel rows */

/* Element offset of unit u = (batch u / nh, head u % nh) in a strided (B, H, T, D) view. */
#define ATT_HOFF(st, u, nh) ((u) / (nh) * (st).b + (u) % (nh) * (st).h)

static int64_t att_scratch_bytes = 0;

int64_t fnn_attention_scratch_bytes(void) { return att_scratch_bytes; }

static void *att_alloc(size_t bytes)
{
    if (bytes == 0) bytes = 64;
#if defined(_WIN32)
    return malloc(bytes);
#else
    void *p = NULL;
    return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
#endif
}

static void att_free(void *p) { free(p); }

/* How many parallel units each head's key blocks are split into for the backward pass: 1 when
 * there are enough heads to keep every thread busy (dq is then accumulated in place); else
 * enough splits for about two units per thread, each with its own partial dq. */
static int att_key_splits(int64_t bh, int64_t nkb)
{
    int64_t want = 2 * (int64_t)fnn_get_num_threads();
    if (bh >= want) return 1;
    int64_t n = (want + bh - 1) / bh;
    if (n > nkb) n = nkb;
    return n < 1 ? 1 : (int)n;
}

/* ---------------------------------------------------------------- portable instances */
#define V_LOAD(p) (*(p))
#define V_STORE(p, x) (*(p) = (x))
#define V_SET1(x) (x)
#define V_ZERO() 0
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_ADD(a, b) ((a) + (b))
#define V_SUB(a, b) ((a) - (b))
#define V_MUL(a, b) ((a) * (b))
#define V_MAX(a, b) ((a) > (b) ? (a) : (b))
#define VL 1
#define NV 4

#define FT float
#define VEC float
#define V_EXP2(x) exp2f(x)
#define SFX(name) name##_f32_portable
#include "attention_tiles.h"
#undef FT
#undef VEC
#undef V_EXP2
#undef SFX

#define FT double
#define VEC double
#define V_EXP2(x) exp2(x)
#define SFX(name) name##_f64_portable
#include "attention_tiles.h"
#include "attention_undef.h"

#if FNN_X86 && defined(__GNUC__)
/* 2^x = 2^n * 2^f with n = round(x), f in [-1/2, 1/2]; 2^f = e^(f ln2) by its Taylor series
 * (degree 7 for float: truncation < 1e-8 relative; degree 13 for double: < 1e-17). Lanes with
 * x below the smallest normal exponent (masked scores are -inf) give exactly 0; NaN stays NaN
 * (max/min return their second operand when one is NaN), so a NaN score poisons its row. */
#define EXP2_F32_COEFFS \
    1.52527338040598377e-05f, 1.54035303933816061e-04f, 1.33335581464284411e-03f, \
    9.61812910762847688e-03f, 5.55041086648215762e-02f, 2.40226506959100694e-01f, \
    6.93147180559945286e-01f, 1.00000000000000000e+00f
#define EXP2_F64_COEFFS \
    1.36914888539041241e-12, 2.56784359934881958e-11, 4.44553827187081007e-10, \
    7.05491162080112088e-09, 1.01780860092396960e-07, 1.32154867901443053e-06, \
    1.52527338040598377e-05, 1.54035303933816061e-04, 1.33335581464284411e-03, \
    9.61812910762847688e-03, 5.55041086648215762e-02, 2.40226506959100694e-01, \
    6.93147180559945286e-01, 1.00000000000000000e+00

/* ---------------------------------------------------------------- AVX2 + FMA instances */
#pragma GCC push_options
#pragma GCC target("avx2,fma")

static inline __m256 exp2_f32_avx2(__m256 x)
{
    static const float c[] = {EXP2_F32_COEFFS};
    __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(-126.0f), _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_set1_ps(127.0f), _mm256_max_ps(_mm256_set1_ps(-126.0f), x));
    __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_sub_ps(x, n);
    __m256 p = _mm256_set1_ps(c[0]);
    for (int i = 1; i < (int)(sizeof c / sizeof c[0]); i++)
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(c[i]));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

static inline __m256d exp2_f64_avx2(__m256d x)
{
    static const double c[] = {EXP2_F64_COEFFS};
    __m256d under = _mm256_cmp_pd(x, _mm256_set1_pd(-1022.0), _CMP_LT_OQ);
    x = _mm256_min_pd(_mm256_set1_pd(1023.0), _mm256_max_pd(_mm256_set1_pd(-1022.0), x));
    __m256d n = _mm256_round_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d f = _mm256_sub_pd(x, n);
    __m256d p = _mm256_set1_pd(c[0]);
    for (int i = 1; i < (int)(sizeof c / sizeof c[0]); i++)
        p = _mm256_fmadd_pd(p, f, _mm256_set1_pd(c[i]));
    /* n + 1.5*2^52 holds n in its low mantissa bits (AVX2 has no double -> int64). */
    __m256i ni = _mm256_castpd_si256(_mm256_add_pd(n, _mm256_set1_pd(6755399441055744.0)));
    __m256i e = _mm256_slli_epi64(_mm256_add_epi64(ni, _mm256_set1_epi64x(1023)), 52);
    return _mm256_andnot_pd(under, _mm256_mul_pd(p, _mm256_castsi256_pd(e)));
}

#define FT float
#define VEC __m256
#define VL 8
#define NV 2
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, x) _mm256_storeu_ps(p, x)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_ZERO() _mm256_setzero_ps()
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_SUB(a, b) _mm256_sub_ps(a, b)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#define V_EXP2(x) exp2_f32_avx2(x)
#define SFX(name) name##_f32_avx2
#include "attention_tiles.h"
#include "attention_undef.h"

#define FT double
#define VEC __m256d
#define VL 4
#define NV 2
#define V_LOAD(p) _mm256_loadu_pd(p)
#define V_STORE(p, x) _mm256_storeu_pd(p, x)
#define V_SET1(x) _mm256_set1_pd(x)
#define V_ZERO() _mm256_setzero_pd()
#define V_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define V_ADD(a, b) _mm256_add_pd(a, b)
#define V_SUB(a, b) _mm256_sub_pd(a, b)
#define V_MUL(a, b) _mm256_mul_pd(a, b)
#define V_MAX(a, b) _mm256_max_pd(a, b)
#define V_EXP2(x) exp2_f64_avx2(x)
#define SFX(name) name##_f64_avx2
#include "attention_tiles.h"
#include "attention_undef.h"

#pragma GCC pop_options

/* ---------------------------------------------------------------- AVX-512 instances */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")

static inline __m512 exp2_f32_avx512(__m512 x)
{
    static const float c[] = {EXP2_F32_COEFFS};
    __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-126.0f), _CMP_NLT_UQ);
    x = _mm512_min_ps(_mm512_set1_ps(127.0f), _mm512_max_ps(_mm512_set1_ps(-126.0f), x));
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(c[0]);
    for (int i = 1; i < (int)(sizeof c / sizeof c[0]); i++)
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c[i]));
    return _mm512_maskz_scalef_ps(keep, p, n);
}

static inline __m512d exp2_f64_avx512(__m512d x)
{
    static const double c[] = {EXP2_F64_COEFFS};
    __mmask8 keep = _mm512_cmp_pd_mask(x, _mm512_set1_pd(-1022.0), _CMP_NLT_UQ);
    x = _mm512_min_pd(_mm512_set1_pd(1023.0), _mm512_max_pd(_mm512_set1_pd(-1022.0), x));
    __m512d n = _mm512_roundscale_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d f = _mm512_sub_pd(x, n);
    __m512d p = _mm512_set1_pd(c[0]);
    for (int i = 1; i < (int)(sizeof c / sizeof c[0]); i++)
        p = _mm512_fmadd_pd(p, f, _mm512_set1_pd(c[i]));
    return _mm512_maskz_scalef_pd(keep, p, n);
}

#define FT float
#define VEC __m512
#define VL 16
#define NV 4
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, x) _mm512_storeu_ps(p, x)
#define V_SET1(x) _mm512_set1_ps(x)
#define V_ZERO() _mm512_setzero_ps()
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_SUB(a, b) _mm512_sub_ps(a, b)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_EXP2(x) exp2_f32_avx512(x)
#define SFX(name) name##_f32_avx512
#include "attention_tiles.h"
#include "attention_undef.h"

#define FT double
#define VEC __m512d
#define VL 8
#define NV 4
#define V_LOAD(p) _mm512_loadu_pd(p)
#define V_STORE(p, x) _mm512_storeu_pd(p, x)
#define V_SET1(x) _mm512_set1_pd(x)
#define V_ZERO() _mm512_setzero_pd()
#define V_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define V_ADD(a, b) _mm512_add_pd(a, b)
#define V_SUB(a, b) _mm512_sub_pd(a, b)
#define V_MUL(a, b) _mm512_mul_pd(a, b)
#define V_MAX(a, b) _mm512_max_pd(a, b)
#define V_EXP2(x) exp2_f64_avx512(x)
#define SFX(name) name##_f64_avx512
#include "attention_tiles.h"
#include "attention_undef.h"

#pragma GCC pop_options
#endif /* FNN_X86 && __GNUC__ */

/* ---------------------------------------------------------------- entry points */
#if FNN_X86 && defined(__GNUC__)
#define ATT_DISPATCH(name, ty, ...)                                                         \
    switch (fnn_cpu_isa()) {                                                                \
    case FNN_ISA_AVX512: return name##_##ty##_avx512(__VA_ARGS__);                          \
    case FNN_ISA_AVX2: return name##_##ty##_avx2(__VA_ARGS__);                              \
    default: return name##_##ty##_portable(__VA_ARGS__);                                    \
    }
#else
#define ATT_DISPATCH(name, ty, ...) return name##_##ty##_portable(__VA_ARGS__);
#endif

/* The contiguous (BH, T, D) entry points: one head per batch entry. */
#define ATT_CONTIG(t_, d_) {(t_) * (d_), 0, (d_)}

int fnn_attention_forward_f32(const float *q, const float *k, const float *v, float *out,
                              float *lse, int64_t bh, int64_t t, int64_t s, int64_t d,
                              int causal, double scale)
{
    const fnn_att_strides st[4] = {ATT_CONTIG(t, d), ATT_CONTIG(s, d), ATT_CONTIG(s, d),
                                   ATT_CONTIG(t, d)};
    ATT_DISPATCH(attention_forward, f32, q, k, v, out, lse, bh, 1, t, s, d, st, causal, scale)
}

int fnn_attention_forward_f64(const double *q, const double *k, const double *v, double *out,
                              double *lse, int64_t bh, int64_t t, int64_t s, int64_t d,
                              int causal, double scale)
{
    const fnn_att_strides st[4] = {ATT_CONTIG(t, d), ATT_CONTIG(s, d), ATT_CONTIG(s, d),
                                   ATT_CONTIG(t, d)};
    ATT_DISPATCH(attention_forward, f64, q, k, v, out, lse, bh, 1, t, s, d, st, causal, scale)
}

int fnn_attention_backward_f32(const float *dout, const float *q, const float *k,
                               const float *v, const float *out, const float *lse, float *dq,
                               float *dk, float *dv, int64_t bh, int64_t t, int64_t s,
                               int64_t d, int causal, double scale)
{
    const fnn_att_strides st[8] = {ATT_CONTIG(t, d), ATT_CONTIG(t, d), ATT_CONTIG(s, d),
                                   ATT_CONTIG(s, d), ATT_CONTIG(t, d), ATT_CONTIG(t, d),
                                   ATT_CONTIG(s, d), ATT_CONTIG(s, d)};
    ATT_DISPATCH(attention_backward, f32, dout, q, k, v, out, lse, dq, dk, dv, bh, 1, t, s, d,
                 st, causal, scale)
}

int fnn_attention_backward_f64(const double *dout, const double *q, const double *k,
                               const double *v, const double *out, const double *lse,
                               double *dq, double *dk, double *dv, int64_t bh, int64_t t,
                               int64_t s, int64_t d, int causal, double scale)
{
    const fnn_att_strides st[8] = {ATT_CONTIG(t, d), ATT_CONTIG(t, d), ATT_CONTIG(s, d),
                                   ATT_CONTIG(s, d), ATT_CONTIG(t, d), ATT_CONTIG(t, d),
                                   ATT_CONTIG(s, d), ATT_CONTIG(s, d)};
    ATT_DISPATCH(attention_backward, f64, dout, q, k, v, out, lse, dq, dk, dv, bh, 1, t, s, d,
                 st, causal, scale)
}

int fnn_attention_forward_strided_f32(const float *q, const float *k, const float *v, float *out,
                                      float *lse, int64_t nb, int64_t nh, int64_t t, int64_t s,
                                      int64_t d, const fnn_att_strides *st, int causal,
                                      double scale)
{
    ATT_DISPATCH(attention_forward, f32, q, k, v, out, lse, nb * nh, nh, t, s, d, st, causal,
                 scale)
}

int fnn_attention_forward_strided_f64(const double *q, const double *k, const double *v,
                                      double *out, double *lse, int64_t nb, int64_t nh,
                                      int64_t t, int64_t s, int64_t d, const fnn_att_strides *st,
                                      int causal, double scale)
{
    ATT_DISPATCH(attention_forward, f64, q, k, v, out, lse, nb * nh, nh, t, s, d, st, causal,
                 scale)
}

int fnn_attention_backward_strided_f32(const float *dout, const float *q, const float *k,
                                       const float *v, const float *out, const float *lse,
                                       float *dq, float *dk, float *dv, int64_t nb, int64_t nh,
                                       int64_t t, int64_t s, int64_t d,
                                       const fnn_att_strides *st, int causal, double scale)
{
    ATT_DISPATCH(attention_backward, f32, dout, q, k, v, out, lse, dq, dk, dv, nb * nh, nh, t,
                 s, d, st, causal, scale)
}

int fnn_attention_backward_strided_f64(const double *dout, const double *q, const double *k,
                                       const double *v, const double *out, const double *lse,
                                       double *dq, double *dk, double *dv, int64_t nb,
                                       int64_t nh, int64_t t, int64_t s, int64_t d,
                                       const fnn_att_strides *st, int causal, double scale)
{
    ATT_DISPATCH(attention_backward, f64, dout, q, k, v, out, lse, dq, dk, dv, nb * nh, nh, t,
                 s, d, st, causal, scale)
}
