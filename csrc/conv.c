/* Convolutions (conv.h): the dtype-independent helpers, then conv_impl.h once per dtype. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "fastnn.h"
#include "gemm.h"
#include "conv.h"
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif

/* Below this many flops a call runs on one thread (waking the team costs more). */
#define CONV_PARALLEL_MIN_FLOPS 4e6
/* Most values in one thread's column buffer (8 MiB of floats); larger images go in row blocks.
 * Overridable at build time (-DCONV_COL_MAX=...) to test the blocked path on small images. */
/* The backward pass sums dweight and dbias over at most CONV_CHUNKS groups of images (and at
 * most CONV_PARTIAL_BYTES of partial dweights), handed out to the threads dynamically. */
#define CONV_CHUNKS 8
#define CONV_PARTIAL_BYTES ((int64_t)32 << 20)
/* Small images go several to a GEMM, so that its n (columns) is at least about this. */
#ifndef CONV_GROUP_COLS
#define CONV_GROUP_COLS 512
#endif
/* A batch that fits one group of images goes in CONV_SPLIT groups of at least CONV_SPLIT_COLS
 * columns each (conv_impl.h group_images). */
#define CONV_SPLIT 2
#define CONV_SPLIT_COLS 64
#ifndef CONV_COL_MAX
#define CONV_COL_MAX ((int64_t)1 << 21)
#endif

/* The calling thread's column buffer: 64-byte aligned, grown on demand and kept (OpenMP's pool
 * threads live on, so a training loop allocates once instead of faulting in fresh pages on every
 * call); freed when the thread exits. NULL if out of memory. (The GEMM keeps its own packing
 * workspace, fnn_gemm_workspace, which is in use at the same time.) */
typedef struct { void *buf; size_t capacity; } conv_buffer_t;

static pthread_key_t conv_key;
static pthread_once_t conv_once = PTHREAD_ONCE_INIT;

static void conv_buffer_free(void *p)
{
    conv_buffer_t *b = (conv_buffer_t *)p;
    free(b->buf);
    free(b);
}

static void conv_make_key(void) { pthread_key_create(&conv_key, conv_buffer_free); }

static void *conv_buffer(size_t bytes)
{
    pthread_once(&conv_once, conv_make_key);
    conv_buffer_t *b = (conv_buffer_t *)pthread_getspecific(conv_key);
    if (!b) {
        b = (conv_buffer_t *)calloc(1, sizeof *b);
        if (!b || pthread_setspecific(conv_key, b)) {
            free(b);
            return NULL;
        }
    }
    if (bytes > b->capacity) {
        free(b->buf);
        b->capacity = (bytes + 4095) & ~(size_t)4095;
        b->buf = aligned_alloc(64, b->capacity);
        if (!b->buf) b->capacity = 0;
    }
    return b->buf;
}

/* Output columns ox in [lo, hi) read input column ox*sw + ix0 inside [0, w); the rest is padding. */
static inline void conv_valid_range(int64_t ix0, int64_t sw, int64_t w, int64_t ow, int64_t *lo,
                                    int64_t *hi)
{
    int64_t a = ix0 >= 0 ? 0 : (-ix0 + sw - 1) / sw;
    int64_t b = w - ix0 <= 0 ? 0 : (w - ix0 + sw - 1) / sw;
    if (a > ow) a = ow;
    if (b > ow) b = ow;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

/* The zero-padded copy of an image that the group path's im2col / col2im read and write (rows
 * *ph_out, columns *pw_out): every window of every output position lies inside it, including
 * PyTorch's 'same' padding, whose bottom/right side may be one larger than (ph, pw). */
static inline void conv_padded_dims(const fnn_conv_t *p, int64_t *ph_out, int64_t *pw_out)
{
    int64_t ph = (p->oh - 1) * p->sh + (p->kh - 1) * p->dh + 1;
    int64_t pw = (p->ow - 1) * p->sw + (p->kw - 1) * p->dw + 1;
    *ph_out = ph > p->ph + p->h ? ph : p->ph + p->h;
    *pw_out = pw > p->pw + p->w ? pw : p->pw + p->w;
}

/* Values of scratch the group path needs next to the columns: m padded images of c channels,
 * then the m*L gather offsets (int64), each part rounded to 16 values (keeps the offsets
 * aligned whatever the element size). */
static inline int64_t conv_group_scratch(const fnn_conv_t *p, int64_t m, size_t elem)
{
    int64_t ph, pw;
    conv_padded_dims(p, &ph, &pw);
    const int64_t pad = (m * p->c * ph * pw + 15) & ~(int64_t)15;
    const int64_t off = (int64_t)((m * p->oh * p->ow * sizeof(int64_t) + elem - 1) / elem);
    return pad + ((off + 15) & ~(int64_t)15);
}

/* Offsets, in a padded copy of m images (image stride img_stride values, rows pw_ apart), of
 * each output position's window origin: off[i*L + oy*ow + ox]. */
static inline void conv_group_offsets(const fnn_conv_t *p, int64_t m, int64_t img_stride,
                                      int64_t pw_, int64_t *off)
{
    const int64_t L = p->oh * p->ow;
    for (int64_t i = 0; i < m; i++)
        for (int64_t oy = 0; oy < p->oh; oy++)
            for (int64_t ox = 0; ox < p->ow; ox++)
                off[i * L + oy * p->ow + ox] = i * img_stride + oy * p->sh * pw_ + ox * p->sw;
}

/* 1x1, stride 1, unpadded: an image is its own im2col. */
static inline int conv_is_pointwise(const fnn_conv_t *p)
{
    return p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && p->ph == 0 && p->pw == 0 &&
           p->oh == p->h && p->ow == p->w;
}

#define CONV_T float
#define CONV_SFX(name) name##_f32_
#define CONV_GEMM(isa) fnn_sgemm_##isa
#include "conv_impl.h"

#define CONV_T double
#define CONV_SFX(name) name##_f64_
#define CONV_GEMM(isa) fnn_dgemm_##isa
#include "conv_impl.h"

/* the public names (conv.h) */
int fnn_conv_forward_f32(const fnn_conv_t *p, const float *x, const float *w, const float *bias,
                         float *y) { return fnn_conv_forward_f32_(p, x, w, bias, y); }
int fnn_conv_forward_f64(const fnn_conv_t *p, const double *x, const double *w,
                         const double *bias, double *y) { return fnn_conv_forward_f64_(p, x, w, bias, y); }
int fnn_conv_backward_f32(const fnn_conv_t *p, const float *dy, const float *x, const float *w,
                          float *dx, float *dw, float *db)
{ return fnn_conv_backward_f32_(p, dy, x, w, dx, dw, db); }
int fnn_conv_backward_f64(const fnn_conv_t *p, const double *dy, const double *x,
                          const double *w, double *dx, double *dw, double *db)
{ return fnn_conv_backward_f64_(p, dy, x, w, dx, dw, db); }
void fnn_conv_add_bias_f32(float *y, const float *bias, int64_t n, int64_t channels, int64_t hw)
{ fnn_conv_add_bias_f32_(y, bias, n, channels, hw); }
void fnn_conv_add_bias_f64(double *y, const double *bias, int64_t n, int64_t channels, int64_t hw)
{ fnn_conv_add_bias_f64_(y, bias, n, channels, hw); }
