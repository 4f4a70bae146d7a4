/* Bias: y = x + b over rows, and its gradient db = sum over rows of dy.
 * Semantics: fastnn/backends/reference.py. */
#ifdef FNN_KERNELS  /* ---- kernels: compiled once per dtype and ISA (ops_instantiate.h) ---- */

/* bias_add:  y[r, c] = x[r, c] + b[c] */
static void FN(bias_add_row)(const T *restrict x, const T *restrict b, T *restrict y,
                             int64_t cols)
{
#pragma omp simd
    for (int64_t c = 0; c < cols; c++) y[c] = x[c] + b[c];
}

static void FN(bias_add)(const T *restrict x, const T *restrict b, T *restrict y, int64_t rows,
                         int64_t cols)
{
    FNN_FOR_ROWS(r, rows, rows * cols, FNN_PAR_CHEAP,
                 FN(bias_add_row)(x + r * cols, b, y + r * cols, cols););
}

/* bias_grad:  db[c] = sum_r dy[r, c]. Each thread sums a block of rows into its own partial
 * row (no races), then the partials are added column-parallel. */
static int FN(bias_grad)(const T *restrict dy, T *restrict db, int64_t rows, int64_t cols)
{
    int nt = rows * cols > FNN_PAR_CHEAP ? fnn_max_threads() : 1;
    if (nt > rows) nt = (int)rows;
    if (nt <= 1) {
        for (int64_t c = 0; c < cols; c++) db[c] = 0;
        for (int64_t r = 0; r < rows; r++) {
#pragma omp simd
            for (int64_t c = 0; c < cols; c++) db[c] += dy[r * cols + c];
        }
        return 0;
    }
    T *partial = malloc((size_t)nt * (size_t)cols * sizeof(T));
    if (!partial) return -1;
#pragma omp parallel num_threads(nt)
    {
        int t = fnn_thread_id(), team = fnn_team_size();
        T *acc = partial + (int64_t)t * cols;
        int64_t r0 = rows * t / team, r1 = rows * (t + 1) / team;
        for (int64_t c = 0; c < cols; c++) acc[c] = 0;
        for (int64_t r = r0; r < r1; r++) {
#pragma omp simd
            for (int64_t c = 0; c < cols; c++) acc[c] += dy[r * cols + c];
        }
#pragma omp barrier
#pragma omp for schedule(static)
        for (int64_t c = 0; c < cols; c++) {
            T s = 0;
            for (int u = 0; u < team; u++) s += partial[(int64_t)u * cols + c];
            db[c] = s;
        }
    }
    free(partial);
    return 0;
}

#else  /* ---- entry points ---- */
#include "ops_common.h"
#define FNN_KERNELS "ops_bias.c"
#include "ops_instantiate.h"

#define FNN_ENTRY_POINTS(T, DT)                                                                  \
    void fnn_bias_add_##DT(const T *x, const T *bias, T *y, int64_t rows, int64_t cols)          \
    {                                                                                            \
        FNN_DISPATCH(bias_add_##DT, (x, bias, y, rows, cols));                                   \
    }                                                                                            \
    int fnn_bias_grad_##DT(const T *dy, T *dbias, int64_t rows, int64_t cols)                    \
    {                                                                                            \
        int status;                                                                              \
        FNN_DISPATCH_RET(status, bias_grad_##DT, (dy, dbias, rows, cols));                       \
        return status;                                                                           \
    }

FNN_ENTRY_POINTS(float, f32)
FNN_ENTRY_POINTS(double, f64)
#endif
