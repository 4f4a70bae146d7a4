/* Softmax family over the last axis of (rows, cols): softmax, log_softmax, their backward
 * passes, and cross_entropy fused with log-softmax. Semantics: fastnn/backends/reference.py.
 *
 * Rows are split across threads; within a row every pass is a vectorized loop over a row that
 * stays in cache. Subtracting the row max keeps exp finite for logits like 1e4. NaN anywhere in
 * a row makes the whole row NaN, as in the reference: the max reduction may skip a NaN, but
 * exp(NaN - max) is NaN and poisons the row's sum. */
#ifdef FNN_KERNELS  /* ---- kernels: compiled once per dtype and ISA (ops_instantiate.h) ---- */

static inline T FN(row_max)(const T *restrict x, int64_t cols)
{
    T m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < cols; c++) m = x[c] > m ? x[c] : m;
    return m;
}

/* sum_c exp(x[c] - m), storing each exp in e (when e is not NULL). Sums of a row accumulate
 * in double: float lanes would drift by ~1e-5 relative over a 50k-wide vocabulary row. */
static inline double FN(row_sum_exp)(const T *restrict x, T m, T *restrict e, int64_t cols)
{
    double s = 0;
    if (e) {
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < cols; c++) {
            T v = FNN_EXP(x[c] - m);
            e[c] = v;
            s += v;
        }
    } else {
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < cols; c++) s += FNN_EXP(x[c] - m);
    }
    return s;
}

/* softmax:  y = exp(x - m) / s,  m = max x, s = sum exp(x - m)
 * backward: dx = y (dy - sum(dy y)) */
static void FN(softmax_row)(const T *restrict x, T *restrict y, int64_t cols)
{
    T m = FN(row_max)(x, cols);
    T inv = (T)(1 / FN(row_sum_exp)(x, m, y, cols));
#pragma omp simd
    for (int64_t c = 0; c < cols; c++) y[c] *= inv;
}

static void FN(softmax_backward_row)(const T *restrict dy, const T *restrict y, T *restrict dx,
                                     int64_t cols)
{
    double acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t c = 0; c < cols; c++) acc += dy[c] * y[c];
    T s = (T)acc;
#pragma omp simd
    for (int64_t c = 0; c < cols; c++) dx[c] = y[c] * (dy[c] - s);
}

/* log_softmax:  y = (x - m) - log s
 * backward:     dx = dy - exp(y) sum(dy) */
static void FN(log_softmax_row)(const T *restrict x, T *restrict y, int64_t cols)
{
    T m = FN(row_max)(x, cols);
    T log_s = (T)log(FN(row_sum_exp)(x, m, NULL, cols));
#pragma omp simd
    for (int64_t c = 0; c < cols; c++) y[c] = (x[c] - m) - log_s;
}

static void FN(log_softmax_backward_row)(const T *restrict dy, const T *restrict y,
                                         T *restrict dx, int64_t cols)
{
    double acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t c = 0; c < cols; c++) acc += dy[c];
    T s = (T)acc;
#pragma omp simd
    for (int64_t c = 0; c < cols; c++) dx[c] = dy[c] - FNN_EXP(y[c]) * s;
}

/* cross_entropy, per row with target t (rows with t == ignore_index give 0 and 0):
 *     loss  = -log softmax(x)[t] = -((x[t] - m) - log s)
 *     dx    = grad_scale (softmax(x) - onehot(t)) = grad_scale (exp(x - m) / s - [c == t])
 * One exp per logit: exp(x - m) is stored in dx while summing, then scaled in place. */
static T FN(cross_entropy_row)(const T *restrict x, int64_t t, T *restrict dx, int64_t cols,
                               int64_t ignore_index, T grad_scale)
{
    if (t == ignore_index) {
        memset(dx, 0, (size_t)cols * sizeof(T));
        return 0;
    }
    T m = FN(row_max)(x, cols);
    double s = FN(row_sum_exp)(x, m, dx, cols);
    T scale = (T)(grad_scale / s);
#pragma omp simd
    for (int64_t c = 0; c < cols; c++) dx[c] *= scale;
    dx[t] -= grad_scale;
    return -((x[t] - m) - (T)log(s));
}

/* The row loops: rows split across threads above FNN_PAR_MATH elements. */
static void FN(softmax)(const T *restrict x, T *restrict y, int64_t rows, int64_t cols)
{
    FNN_FOR_ROWS(r, rows, rows * cols, FNN_PAR_MATH,
                 FN(softmax_row)(x + r * cols, y + r * cols, cols););
}

static void FN(softmax_backward)(const T *restrict dy, const T *restrict y, T *restrict dx,
                                 int64_t rows, int64_t cols)
{
    FNN_FOR_ROWS(r, rows, rows * cols, FNN_PAR_CHEAP,
                 FN(softmax_backward_row)(dy + r * cols, y + r * cols, dx + r * cols, cols););
}

static void FN(log_softmax)(const T *restrict x, T *restrict y, int64_t rows, int64_t cols)
{
    FNN_FOR_ROWS(r, rows, rows * cols, FNN_PAR_MATH,
                 FN(log_softmax_row)(x + r * cols, y + r * cols, cols););
}

static void FN(log_softmax_backward)(const T *restrict dy, const T *restrict y, T *restrict dx,
                                     int64_t rows, int64_t cols)
{
    FNN_FOR_ROWS(r, rows, rows * cols, FNN_PAR_MATH,
                 FN(log_softmax_backward_row)(dy + r * cols, y + r * cols, dx + r * cols, cols););
}

static void FN(cross_entropy)(const T *restrict x, const int64_t *restrict targets,
                              T *restrict losses, T *restrict dx, int64_t rows, int64_t cols,
                              int64_t ignore_index, T grad_scale)
{
    FNN_FOR_ROWS(r, rows, rows * cols, FNN_PAR_MATH,
                 losses[r] = FN(cross_entropy_row)(x + r * cols, targets[r], dx + r * cols, cols,
                                                   ignore_index, grad_scale););
}

#else  /* ---- entry points ---- */
#include "ops_common.h"
#define FNN_KERNELS "ops_softmax.c"
#include "ops_instantiate.h"

#define FNN_ENTRY_POINTS(T, DT)                                                                  \
    void fnn_softmax_##DT(const T *x, T *y, int64_t rows, int64_t cols)                          \
    {                                                                                            \
        FNN_DISPATCH(softmax_##DT, (x, y, rows, cols));                                          \
    }                                                                                            \
    void fnn_softmax_backward_##DT(const T *dy, const T *y, T *dx, int64_t rows, int64_t cols)   \
    {                                                                                            \
        FNN_DISPATCH(softmax_backward_##DT, (dy, y, dx, rows, cols));                            \
    }                                                                                            \
    void fnn_log_softmax_##DT(const T *x, T *y, int64_t rows, int64_t cols)                      \
    {                                                                                            \
        FNN_DISPATCH(log_softmax_##DT, (x, y, rows, cols));                                      \
    }                                                                                            \
    void fnn_log_softmax_backward_##DT(const T *dy, const T *y, T *dx, int64_t rows,             \
                                       int64_t cols)                                             \
    {                                                                                            \
        FNN_DISPATCH(log_softmax_backward_##DT, (dy, y, dx, rows, cols));                        \
    }                                                                                            \
    void fnn_cross_entropy_##DT(const T *logits, const int64_t *targets, T *losses, T *dlogits,  \
                                int64_t rows, int64_t cols, int64_t ignore_index,                \
                                double grad_scale)                                               \
    {                                                                                            \
        FNN_DISPATCH(cross_entropy_##DT,                                                         \
                     (logits, targets, losses, dlogits, rows, cols, ignore_index,                \
                      (T)grad_scale));                                                           \
    }

FNN_ENTRY_POINTS(float, f32)
FNN_ENTRY_POINTS(double, f64)
#endif
