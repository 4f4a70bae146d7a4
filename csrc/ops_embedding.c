/* Embedding: a row gather, and its backward, a scatter-add. Semantics: reference.py. */
#ifdef FNN_KERNELS  /* ---- kernels: compiled once per dtype and ISA (ops_instantiate.h) ---- */

/* forward:  out[i, :] = weight[ids[i], :] */
static void FN(embedding)(const T *restrict weight, const int64_t *restrict ids, T *restrict out,
                          int64_t n, int64_t cols)
{
    FNN_FOR_ROWS(i, n, n * cols, FNN_PAR_CHEAP,
                 memcpy(out + i * cols, weight + ids[i] * cols, (size_t)cols * sizeof(T)););
}

/* backward:  dweight[ids[i], :] += dout[i, :]  (dweight arrives zeroed)
 * Repeated ids make rows collide, so threads split the columns, not the ids: each thread walks
 * every id in order over its own column block. No races, and the sums are added in the same
 * order as the sequential loop (deterministic). Blocks are multiples of 16 elements so threads
 * never share a cache line. */
static void FN(embedding_backward_columns)(const T *restrict dout, const int64_t *restrict ids,
                                           T *restrict dweight, int64_t n, int64_t cols,
                                           int64_t c0, int64_t c1)
{
    for (int64_t i = 0; i < n; i++) {
        const T *src = dout + i * cols;
        T *dst = dweight + ids[i] * cols;
#pragma omp simd
        for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
    }
}

static void FN(embedding_backward)(const T *restrict dout, const int64_t *restrict ids,
                                   T *restrict dweight, int64_t n, int64_t cols)
{
    if (n * cols <= FNN_PAR_CHEAP || cols < 64 || fnn_max_threads() == 1) {
        FN(embedding_backward_columns)(dout, ids, dweight, n, cols, 0, cols);
        return;
    }
#pragma omp parallel num_threads(fnn_max_threads())
    {
        int t = fnn_thread_id(), team = fnn_team_size();
        int64_t c0 = t == 0 ? 0 : (cols * t / team) & ~(int64_t)15;
        int64_t c1 = t == team - 1 ? cols : (cols * (t + 1) / team) & ~(int64_t)15;
        FN(embedding_backward_columns)(dout, ids, dweight, n, cols, c0, c1);
    }
}

#else  /* ---- entry points ---- */
#include "ops_common.h"
#define FNN_KERNELS "ops_embedding.c"
#include "ops_instantiate.h"

#define FNN_ENTRY_POINTS(T, DT)                                                                  \
    void fnn_embedding_##DT(const T *weight, const int64_t *ids, T *out, int64_t n, int64_t cols)\
    {                                                                                            \
        FNN_DISPATCH(embedding_##DT, (weight, ids, out, n, cols));                               \
    }                                                                                            \
    void fnn_embedding_backward_##DT(const T *dout, const int64_t *ids, T *dweight, int64_t n,   \
                                     int64_t cols)                                               \
    {                                                                                            \
        FNN_DISPATCH(embedding_backward_##DT, (dout, ids, dweight, n, cols));                    \
    }

FNN_ENTRY_POINTS(float, f32)
FNN_ENTRY_POINTS(double, f64)
#endif
