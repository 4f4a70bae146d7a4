/* Layer norm over the last axis of (rows, cols), forward and backward.
 * Semantics: fastnn/backends/reference.py. */
#ifdef FNN_KERNELS  /* ---- kernels: compiled once per dtype and ISA (ops_instantiate.h) ---- */

/* forward, per row:  mean = sum x / C,  var = sum (x - mean)^2 / C,  rstd = 1 / sqrt(var + eps)
 *                    y = (x - mean) rstd w + b;   mean and rstd are saved for the backward.
 * Two passes over a row that stays in cache (the centered variance, as the reference); row sums
 * accumulate in double, since float lanes drift on wide rows. */
static void FN(layer_norm_row)(const T *restrict x, const T *restrict w, const T *restrict b,
                               T *restrict y, T *restrict mean, T *restrict rstd, int64_t cols,
                               T eps)
{
    double s = 0, v = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < cols; c++) s += x[c];
    T mu = (T)(s / (double)cols);
#pragma omp simd reduction(+ : v)
    for (int64_t c = 0; c < cols; c++) v += (x[c] - mu) * (x[c] - mu);
    T rs = 1 / FNN_SQRT((T)(v / (double)cols) + eps);
#pragma omp simd
    for (int64_t c = 0; c < cols; c++) y[c] = (x[c] - mu) * rs * w[c] + b[c];
    *mean = mu;
    *rstd = rs;
}

static void FN(layer_norm)(const T *restrict x, const T *restrict w, const T *restrict b,
                           T *restrict y, T *restrict mean, T *restrict rstd, int64_t rows,
                           int64_t cols, T eps)
{
    FNN_FOR_ROWS(r, rows, rows * cols, FNN_PAR_CHEAP,
                 FN(layer_norm_row)(x + r * cols, w, b, y + r * cols, mean + r, rstd + r, cols,
                                    eps););
}

/* backward, with xhat = (x - mean) rstd and g = dy w:
 *     dx = rstd (g - mean(g) - xhat mean(g xhat))        per row
 *     dw = sum_rows dy xhat,   db = sum_rows dy         column sums
 * Each thread owns a block of rows and its own partial dw/db (no races); the partials are then
 * added column-parallel. */
static void FN(layer_norm_backward_rows)(const T *restrict dy, const T *restrict x,
                                         const T *restrict w, const T *restrict mean,
                                         const T *restrict rstd, T *restrict dx, T *restrict dw,
                                         T *restrict db, int64_t r0, int64_t r1, int64_t cols)
{
    for (int64_t c = 0; c < cols; c++) dw[c] = db[c] = 0;
    for (int64_t r = r0; r < r1; r++) {
        const T *dyr = dy + r * cols, *xr = x + r * cols;
        T *dxr = dx + r * cols;
        T mu = mean[r], rs = rstd[r];
        double sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
        for (int64_t c = 0; c < cols; c++) {
            T xhat = (xr[c] - mu) * rs;
            T g = dyr[c] * w[c];
            sg += g;
            sgx += g * xhat;
            dw[c] += dyr[c] * xhat;
            db[c] += dyr[c];
        }
        T mg = (T)(sg / (double)cols), mgx = (T)(sgx / (double)cols);
#pragma omp simd
        for (int64_t c = 0; c < cols; c++) {
            T xhat = (xr[c] - mu) * rs;
            dxr[c] = rs * (dyr[c] * w[c] - mg - xhat * mgx);
        }
    }
}

static int FN(layer_norm_backward)(const T *restrict dy, const T *restrict x,
                                   const T *restrict w, const T *restrict mean,
                                   const T *restrict rstd, T *restrict dx, T *restrict dw,
                                   T *restrict db, int64_t rows, int64_t cols)
{
    int nt = rows * cols > FNN_PAR_CHEAP ? fnn_max_threads() : 1;
    if (nt > rows) nt = (int)rows;
    if (nt <= 1) {
        FN(layer_norm_backward_rows)(dy, x, w, mean, rstd, dx, dw, db, 0, rows, cols);
        return 0;
    }
    T *partial = malloc((size_t)nt * 2 * (size_t)cols * sizeof(T));
    if (!partial) return -1;
#pragma omp parallel num_threads(nt)
    {
        int t = fnn_thread_id(), team = fnn_team_size();
        T *pw = partial + (int64_t)t * 2 * cols;
        FN(layer_norm_backward_rows)(dy, x, w, mean, rstd, dx, pw, pw + cols, rows * t / team,
                                     rows * (t + 1) / team, cols);
#pragma omp barrier
#pragma omp for schedule(static)
        for (int64_t c = 0; c < cols; c++) {
            T sw = 0, sb = 0;
            for (int u = 0; u < team; u++) {
                sw += partial[(int64_t)u * 2 * cols + c];
                sb += partial[(int64_t)u * 2 * cols + cols + c];
            }
            dw[c] = sw;
            db[c] = sb;
        }
    }
    free(partial);
    return 0;
}

#else  /* ---- entry points ---- */
#include "ops_common.h"
#define FNN_KERNELS "ops_layernorm.c"
#include "ops_instantiate.h"

#define FNN_ENTRY_POINTS(T, DT)                                                                  \
    void fnn_layer_norm_##DT(const T *x, const T *weight, const T *bias, T *y, T *mean, T *rstd, \
                             int64_t rows, int64_t cols, double eps)                             \
    {                                                                                            \
        FNN_DISPATCH(layer_norm_##DT, (x, weight, bias, y, mean, rstd, rows, cols, (T)eps));     \
    }                                                                                            \
    int fnn_layer_norm_backward_##DT(const T *dy, const T *x, const T *weight, const T *mean,    \
                                     const T *rstd, T *dx, T *dweight, T *dbias, int64_t rows,   \
                                     int64_t cols)                                               \
    {                                                                                            \
        int status;                                                                              \
        FNN_DISPATCH_RET(status, layer_norm_backward_##DT,                                       \
                         (dy, x, weight, mean, rstd, dx, dweight, dbias, rows, cols));           \
        return status;                                                                           \
    }

FNN_ENTRY_POINTS(float, f32)
FNN_ENTRY_POINTS(double, f64)
#endif
