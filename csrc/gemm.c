/* GEMM entry points: pick the ISA path once per call, batch, and own the packing workspace. */
#include <pthread.h>
#include <stdlib.h>
#include "fastnn.h"
#include "gemm.h"

/* Per calling thread, grown on demand, never shrunk: a steady training loop allocates once.
 * Freed when the thread exits (pthread key destructor), so short-lived threads do not leak. */
typedef struct { void *buf; size_t capacity; } workspace_t;

static pthread_key_t workspace_key;
static pthread_once_t workspace_once = PTHREAD_ONCE_INIT;

static void workspace_free(void *p)
{
    workspace_t *ws = (workspace_t *)p;
    free(ws->buf);
    free(ws);
}

static void workspace_make_key(void) { pthread_key_create(&workspace_key, workspace_free); }

void *fnn_gemm_workspace(size_t bytes)
{
    pthread_once(&workspace_once, workspace_make_key);
    workspace_t *ws = (workspace_t *)pthread_getspecific(workspace_key);
    if (!ws) {
        ws = (workspace_t *)calloc(1, sizeof *ws);
        if (!ws || pthread_setspecific(workspace_key, ws)) {
            free(ws);
            return NULL;
        }
    }
    if (bytes > ws->capacity) {
        free(ws->buf);
        ws->capacity = (bytes + 4095) & ~(size_t)4095;  /* aligned_alloc wants a multiple of 64 */
        ws->buf = aligned_alloc(64, ws->capacity);
        if (!ws->buf) ws->capacity = 0;
    }
    return ws->buf;
}

/* A batch of products this small (m*n*k multiply-adds each) runs one product per thread. */
#define GEMM_BATCH_PER_THREAD_MNK (96 * 96 * 96)

#define DEFINE_GEMM_ENTRIES(prefix, T)                                                         \
    typedef void (*prefix##_fn)(int64_t, int64_t, int64_t, T, const T *, int, const T *, int, \
                                T, T *, int);                                                  \
    static prefix##_fn prefix##_for_isa(void)                                                  \
    {                                                                                          \
        switch (fnn_cpu_isa()) {                                                               \
        case FNN_ISA_AVX512: return prefix##_avx512;                                           \
        case FNN_ISA_AVX2: return prefix##_avx2;                                               \
        default: return prefix##_portable;                                                     \
        }                                                                                      \
    }                                                                                          \
    void prefix(int64_t m, int64_t n, int64_t k, T alpha, const T *a, int trans_a, const T *b, \
                int trans_b, T beta, T *c)                                                     \
    {                                                                                          \
        prefix##_for_isa()(m, n, k, alpha, a, trans_a, b, trans_b, beta, c,                    \
                           fnn_get_num_threads());                                             \
    }                                                                                          \
    typedef void (*prefix##_ex_fn)(int64_t, int64_t, int64_t, T, const T *, int, const T *,  \
                                   int, T, T *, int, const fnn_gemm_epilogue *);              \
    void prefix##_ex(int64_t m, int64_t n, int64_t k, T alpha, const T *a, int trans_a,        \
                     const T *b, int trans_b, T beta, T *c, const fnn_gemm_epilogue *ep)       \
    {                                                                                          \
        prefix##_ex_fn fn;                                                                     \
        switch (fnn_cpu_isa()) {                                                               \
        case FNN_ISA_AVX512: fn = prefix##_avx512_ex; break;                                   \
        case FNN_ISA_AVX2: fn = prefix##_avx2_ex; break;                                       \
        default: fn = prefix##_portable_ex; break;                                             \
        }                                                                                      \
        fn(m, n, k, alpha, a, trans_a, b, trans_b, beta, c, fnn_get_num_threads(), ep);        \
    }                                                                                          \
    void prefix##_batched(int64_t batch, int64_t m, int64_t n, int64_t k, T alpha, const T *a,  \
                          int trans_a, const T *b, int trans_b, T beta, T *c)                  \
    {                                                                                          \
        prefix##_fn fn = prefix##_for_isa();                                                   \
        const int threads = fnn_get_num_threads();                                             \
        if (threads > 1 && batch > 1 && m * n * k < GEMM_BATCH_PER_THREAD_MNK) {               \
            _Pragma("omp parallel for schedule(static) num_threads(threads)")                 \
            for (int64_t i = 0; i < batch; i++)                                                \
                fn(m, n, k, alpha, a + i * m * k, trans_a, b + i * k * n, trans_b, beta,      \
                   c + i * m * n, 1);                                                          \
        } else {                                                                               \
            for (int64_t i = 0; i < batch; i++)                                                \
                fn(m, n, k, alpha, a + i * m * k, trans_a, b + i * k * n, trans_b, beta,      \
                   c + i * m * n, threads);                                                    \
        }                                                                                      \
    }

DEFINE_GEMM_ENTRIES(fnn_sgemm, float)
DEFINE_GEMM_ENTRIES(fnn_dgemm, double)

void fnn_gemm_blocks(int is_double, int64_t out[5])
{
    switch (fnn_cpu_isa()) {
    case FNN_ISA_AVX512:
        (is_double ? fnn_dgemm_avx512_blocks : fnn_sgemm_avx512_blocks)(out);
        break;
    case FNN_ISA_AVX2:
        (is_double ? fnn_dgemm_avx2_blocks : fnn_sgemm_avx2_blocks)(out);
        break;
    default:
        (is_double ? fnn_dgemm_portable_blocks : fnn_sgemm_portable_blocks)(out);
    }
}
