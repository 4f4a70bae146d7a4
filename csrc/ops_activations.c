/* Elementwise activations and their backward passes: relu, leaky_relu, sigmoid, tanh, gelu and
 * clamp. Semantics: fastnn/backends/reference.py. One pass, no temporaries; exp and tanh are the
 * vectorizable ones of ops_common.h (erf for float64 GELU is libm's, as the reference). */
#ifdef FNN_KERNELS  /* ---- kernels: compiled once per dtype and ISA (ops_instantiate.h) ---- */

/* relu:  y = max(x, 0)  (NaN stays NaN);  dx = dy * [x > 0] */
static void FN(relu)(const T *restrict x, T *restrict y, int64_t n)
{
    FNN_FOR_SIMD(i, n, FNN_PAR_CHEAP, y[i] = x[i] < 0 ? 0 : x[i];);
}

static void FN(relu_backward)(const T *restrict dy, const T *restrict x, T *restrict dx, int64_t n)
{
    FNN_FOR_SIMD(i, n, FNN_PAR_CHEAP, dx[i] = dy[i] * (T)(x[i] > 0););
}

/* leaky_relu:  y = x > 0 ? x : slope x;  dx = x > 0 ? dy : slope dy */
static void FN(leaky_relu)(const T *restrict x, T *restrict y, int64_t n, T slope)
{
    FNN_FOR_SIMD(i, n, FNN_PAR_CHEAP, y[i] = x[i] > 0 ? x[i] : x[i] * slope;);
}

static void FN(leaky_relu_backward)(const T *restrict dy, const T *restrict x, T *restrict dx,
                                    int64_t n, T slope)
{
    FNN_FOR_SIMD(i, n, FNN_PAR_CHEAP, dx[i] = x[i] > 0 ? dy[i] : dy[i] * slope;);
}

/* sigmoid:  y = 1 / (1 + exp(-x)), as 1/(1+e) or e/(1+e) with e = exp(-|x|) <= 1 (no overflow);
 *           dx = dy y (1 - y) */
FNN_INLINE T FN(sigmoid_elem)(T x)
{
#if FNN_F32
    return fnn_sigmoidf(x);
#else
    double e = fnn_exp(-fabs(x));
    double d = 1 / (1 + e);
    return x >= 0 ? d : e * d;
#endif
}

static void FN(sigmoid)(const T *restrict x, T *restrict y, int64_t n)
{
    FNN_FOR_SIMD(i, n, FNN_PAR_MATH, y[i] = FN(sigmoid_elem)(x[i]););
}

static void FN(sigmoid_backward)(const T *restrict dy, const T *restrict y, T *restrict dx,
                                 int64_t n)
{
    FNN_FOR_SIMD(i, n, FNN_PAR_CHEAP, dx[i] = dy[i] * y[i] * (1 - y[i]););
}

/* tanh:  y = tanh(x);  dx = dy (1 - y^2) */
FNN_INLINE T FN(tanh_elem)(T x)
{
#if FNN_F32
    return fnn_tanhf(x);
#else
    return fnn_tanh(x);
#endif
}

static void FN(tanh)(const T *restrict x, T *restrict y, int64_t n)
{
    FNN_FOR_SIMD(i, n, FNN_PAR_MATH, y[i] = FN(tanh_elem)(x[i]););
}

static void FN(tanh_backward)(const T *restrict dy, const T *restrict y, T *restrict dx, int64_t n)
{
    FNN_FOR_SIMD(i, n, FNN_PAR_CHEAP, dx[i] = dy[i] * (1 - y[i] * y[i]););
}

/* gelu, tanh form (GPT-2):  u = c (x + a x^3), c = sqrt(2/pi), a = 0.044715
 *     y  = 0.5 x (1 + tanh u)  =  x s,  s = sigmoid(2u) = 1 / (1 + e), e = exp(-2u)
 *     dx = dy (0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u')  =  dy s (1 + 2 x e s u'),
 *     u' = c (1 + 3 a x^2)
 * float32 uses the sigmoid form: one exp, no cancellation in 1 + tanh u for negative x;
 * float64 follows the reference's formula. */
#define FNN_GELU_C 0.7978845608028654
#define FNN_GELU_A 0.044715

FNN_INLINE T FN(gelu_tanh_elem)(T x)
{
#if FNN_F32
    float z = (float)(-2 * FNN_GELU_C) * x * (1 + (float)FNN_GELU_A * x * x);  /* -2u */
    z = z > FNN_EXPF_MAX ? FNN_EXPF_MAX : z;
    return x / (1 + fnn_expf(z));
#else
    return 0.5 * x * (1 + fnn_tanh(FNN_GELU_C * (x + FNN_GELU_A * x * x * x)));
#endif
}

FNN_INLINE T FN(gelu_tanh_backward_elem)(T dy, T x)
{
#if FNN_F32
    float z = (float)(-2 * FNN_GELU_C) * x * (1 + (float)FNN_GELU_A * x * x);  /* -2u */
    z = z > FNN_EXPF_MAX ? FNN_EXPF_MAX : z;
    float e = fnn_expf(z);
    float s = 1 / (1 + e);
    float du = (float)FNN_GELU_C * (1 + (float)(3 * FNN_GELU_A) * x * x);
    return dy * s * (1 + 2 * x * (e * s) * du);  /* e s = 1 - s, finite even when e is huge */
#else
    double t = fnn_tanh(FNN_GELU_C * (x + FNN_GELU_A * x * x * x));
    double du = FNN_GELU_C * (1 + 3 * FNN_GELU_A * x * x);
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du);
#endif
}

/* gelu, exact:  y = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2;  dx = dy (Phi(x) + x phi(x)),
 * phi(x) = exp(-x^2/2) / sqrt(2 pi). float32 takes Phi from the Gaussian tail Q(|x|), accurate
 * for negative x where 1 + erf cancels; float64 follows the reference with libm's erf. */
#if FNN_F32
/* exp(hi + lo) for hi <= 0, lo a rounding-error-sized correction: fnn_expf_sum without the
 * clamps a positive argument needs, and a degree-6 Taylor polynomial (1.2e-7 on |r| <= ln2/2);
 * 0 below -87. 28% off the GELU forward's time against fnn_expf_sum. */
FNN_INLINE float FN(exp_nonpositive)(float hi, float lo)
{
    float xc = hi < FNN_EXPF_MIN ? FNN_EXPF_MIN : hi;   /* NaN passes */
    float n, s;
    fnn_expf_reduce(xc, &n, &s);
    float r = ((xc - n * 0.693359375f) + lo) - n * -2.12194440e-4f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120
              + r * (1.0f / 720))))));
    return hi < FNN_EXPF_MIN ? 0.0f : p * s;
}

/* Q(a) = P(Z > a) for a = |x|, as phi(a) M(t): M is the Mills ratio Q/phi, a polynomial in
 * t = 1 / (1 + 0.23 a) with no constant term (M ~ 1/a far out). The coefficients are a minimax
 * fit of M's relative error on 0 <= a <= 13 (Lawson's iteration against 30-digit values; Q(13) is
 * near float32's underflow): 1.3e-7 in exact arithmetic, < 7e-7 for the float32 GELU. One
 * division, 8 FMAs and one exp, whose result is phi itself, the backward's pdf (issue 16: this
 * replaced an erfc fit needing a second exp and double-precision steps; forward 2.5x, backward
 * 2.8x faster on one thread). *pdf gets phi(a). */
FNN_INLINE float FN(gauss_tail)(float x, float *pdf)
{
    float a = fabsf(x);
    float t = 1.0f / (1.0f + 0.23f * a);
    float m = t * (0.23037857661259678f + t * (0.22344577922985698f + t * (0.26596283126378806f
              + t * (-0.001839752558235451f + t * (0.635679811928907f + t * (-0.5890252678748747f
              + t * (0.6739091126387045f + t * -0.1851967869785927f)))))));
    /* -a^2/2 as hi + lo: an exponent near -80 needs its rounding error too */
#ifdef __FMA__
    float h = -0.5f * a;
    float hi = h * a;
    float lo = fmaf(h, a, -hi);       /* exact: the error of the product (NaN when a = inf, */
#else                                 /* and then hi = -inf returns 0 before it is used) */
    double sq = -0.5 * (double)a * (double)a;
    float hi = (float)sq;
    float lo = (float)(sq - (double)hi);
#endif
    float e = 0.3989422804014327f * FN(exp_nonpositive)(hi, lo);
    *pdf = e;
    return e * m;
}
#endif

FNN_INLINE T FN(gelu_erf_elem)(T x)
{
#if FNN_F32
    float pdf, q = FN(gauss_tail)(x, &pdf);
    return x * (x >= 0 ? 1 - q : q);
#else
    return 0.5 * x * (1 + erf(x / 1.4142135623730951));
#endif
}

FNN_INLINE T FN(gelu_erf_backward_elem)(T dy, T x)
{
#if FNN_F32
    float pdf, q = FN(gauss_tail)(x, &pdf);
    float cdf = x >= 0 ? 1 - q : q;
    return dy * (cdf + x * pdf);
#else
    double cdf = 0.5 * (1 + erf(x / 1.4142135623730951));
    double pdf = exp(-0.5 * x * x) / 2.5066282746310002;
    return dy * (cdf + x * pdf);
#endif
}

static void FN(gelu_tanh)(const T *restrict x, T *restrict y, int64_t n)
{
    FNN_FOR_SIMD(i, n, FNN_PAR_MATH, y[i] = FN(gelu_tanh_elem)(x[i]););
}

static void FN(gelu_tanh_backward)(const T *restrict dy, const T *restrict x, T *restrict dx,
                                   int64_t n)
{
    FNN_FOR_SIMD(i, n, FNN_PAR_MATH, dx[i] = FN(gelu_tanh_backward_elem)(dy[i], x[i]););
}

static void FN(gelu_erf)(const T *restrict x, T *restrict y, int64_t n)
{
    FNN_FOR_SIMD(i, n, FNN_PAR_MATH, y[i] = FN(gelu_erf_elem)(x[i]););
}

static void FN(gelu_erf_backward)(const T *restrict dy, const T *restrict x, T *restrict dx,
                                  int64_t n)
{
    FNN_FOR_SIMD(i, n, FNN_PAR_MATH, dx[i] = FN(gelu_erf_backward_elem)(dy[i], x[i]););
}

#undef FNN_GELU_C
#undef FNN_GELU_A

/* clamp:  y = min(max(x, lo), hi): NaN stays NaN, lo > hi gives hi everywhere (torch.clamp);
 *         dx = dy where lo <= x <= hi (bounds included), else 0: a select, so a NaN or inf dy
 *         outside the bounds still gives 0. A missing bound arrives as -inf or +inf. */
static void FN(clamp)(const T *restrict x, T *restrict y, int64_t n, T lo, T hi)
{
    FNN_FOR_SIMD(i, n, FNN_PAR_CHEAP, T v = x[i] < lo ? lo : x[i]; y[i] = v > hi ? hi : v;);
}

static void FN(clamp_backward)(const T *restrict dy, const T *restrict x, T *restrict dx,
                               int64_t n, T lo, T hi)
{
    FNN_FOR_SIMD(i, n, FNN_PAR_CHEAP, dx[i] = ((x[i] >= lo) & (x[i] <= hi)) ? dy[i] : 0;);
}

#else  /* ---- entry points ---- */
#include "ops_common.h"
#define FNN_KERNELS "ops_activations.c"
#include "ops_instantiate.h"

#define FNN_ENTRY_POINTS(T, DT)                                                                  \
    void fnn_relu_##DT(const T *x, T *y, int64_t n) { FNN_DISPATCH(relu_##DT, (x, y, n)); }      \
    void fnn_relu_backward_##DT(const T *dy, const T *x, T *dx, int64_t n)                       \
    {                                                                                            \
        FNN_DISPATCH(relu_backward_##DT, (dy, x, dx, n));                                        \
    }                                                                                            \
    void fnn_leaky_relu_##DT(const T *x, T *y, int64_t n, double slope)                          \
    {                                                                                            \
        FNN_DISPATCH(leaky_relu_##DT, (x, y, n, (T)slope));                                      \
    }                                                                                            \
    void fnn_leaky_relu_backward_##DT(const T *dy, const T *x, T *dx, int64_t n, double slope)   \
    {                                                                                            \
        FNN_DISPATCH(leaky_relu_backward_##DT, (dy, x, dx, n, (T)slope));                        \
    }                                                                                            \
    void fnn_sigmoid_##DT(const T *x, T *y, int64_t n) { FNN_DISPATCH(sigmoid_##DT, (x, y, n)); }\
    void fnn_sigmoid_backward_##DT(const T *dy, const T *y, T *dx, int64_t n)                    \
    {                                                                                            \
        FNN_DISPATCH(sigmoid_backward_##DT, (dy, y, dx, n));                                     \
    }                                                                                            \
    void fnn_tanh_##DT(const T *x, T *y, int64_t n) { FNN_DISPATCH(tanh_##DT, (x, y, n)); }      \
    void fnn_tanh_backward_##DT(const T *dy, const T *y, T *dx, int64_t n)                       \
    {                                                                                            \
        FNN_DISPATCH(tanh_backward_##DT, (dy, y, dx, n));                                        \
    }                                                                                            \
    void fnn_gelu_##DT(const T *x, T *y, int64_t n, int approximate)                             \
    {                                                                                            \
        if (approximate) FNN_DISPATCH(gelu_tanh_##DT, (x, y, n));                                \
        else FNN_DISPATCH(gelu_erf_##DT, (x, y, n));                                             \
    }                                                                                            \
    void fnn_gelu_backward_##DT(const T *dy, const T *x, T *dx, int64_t n, int approximate)      \
    {                                                                                            \
        if (approximate) FNN_DISPATCH(gelu_tanh_backward_##DT, (dy, x, dx, n));                  \
        else FNN_DISPATCH(gelu_erf_backward_##DT, (dy, x, dx, n));                               \
    }                                                                                            \
    void fnn_clamp_##DT(const T *x, T *y, int64_t n, double lo, double hi)                       \
    {                                                                                            \
        FNN_DISPATCH(clamp_##DT, (x, y, n, (T)lo, (T)hi));                                       \
    }                                                                                            \
    void fnn_clamp_backward_##DT(const T *dy, const T *x, T *dx, int64_t n, double lo,           \
                                 double hi)                                                      \
    {                                                                                            \
        FNN_DISPATCH(clamp_backward_##DT, (dy, x, dx, n, (T)lo, (T)hi));                         \
    }

FNN_ENTRY_POINTS(float, f32)
FNN_ENTRY_POINTS(double, f64)
#endif
