/* Pooling and channel-normalization kernels' C entry points (csrc/pool.c, csrc/norm2d.c), called
 * by fastnn/backends/cython/_pool.pyx.
 *
 * Semantics: fastnn/kernels/families/pool.py and norm2d.py (PyTorch's, to the letter); the
 * oracle is fastnn/backends/numpy/pool.py. Arrays are C-contiguous and validated in Python.
 * Images are `planes` (N*C) planes of h x w; outputs oh x ow. Normalization inputs are
 * (n, c, l), l the flattened spatial size. Each kernel picks its AVX-512, AVX2 or portable
 * variant with fnn_cpu_isa() and splits planes (pooling), channels (batch norm) or
 * (sample, group) pairs (group norm) across OpenMP threads above a size threshold.
 * Functions returning int give 0, or -1 when a scratch allocation failed.
 */
#ifndef FNN_POOL_H
#define FNN_POOL_H

#include <stdint.h>

/* A pooling window's geometry; output sizes come from Python (PyTorch's ceil_mode rule). */
typedef struct {
    int64_t planes, h, w, oh, ow;
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    int count_include_pad;     /* avg: divide by the window clipped to the padded input */
    int64_t divisor;           /* avg: divisor_override, 0 for none */
} fnn_pool2d;

/* pool.c: y (planes, oh, ow); idx: flat index r * w + c of each maximum in its plane */
void fnn_max_pool2d_f32(const float *x, float *y, int64_t *idx, const fnn_pool2d *p);
void fnn_max_pool2d_f64(const double *x, double *y, int64_t *idx, const fnn_pool2d *p);
/* dx (planes, h, w) = dy scatter-added at idx; an index >= h * w adds nothing */
void fnn_max_pool2d_backward_f32(const float *dy, const int64_t *idx, float *dx,
                                 const fnn_pool2d *p);
void fnn_max_pool2d_backward_f64(const double *dy, const int64_t *idx, double *dx,
                                 const fnn_pool2d *p);
void fnn_avg_pool2d_f32(const float *x, float *y, const fnn_pool2d *p);
void fnn_avg_pool2d_f64(const double *x, double *y, const fnn_pool2d *p);
void fnn_avg_pool2d_backward_f32(const float *dy, float *dx, const fnn_pool2d *p);
void fnn_avg_pool2d_backward_f64(const double *dy, double *dx, const fnn_pool2d *p);
/* adaptive: only planes, h, w, oh, ow of p are read */
void fnn_adaptive_avg_pool2d_f32(const float *x, float *y, const fnn_pool2d *p);
void fnn_adaptive_avg_pool2d_f64(const double *x, double *y, const fnn_pool2d *p);
void fnn_adaptive_avg_pool2d_backward_f32(const float *dy, float *dx, const fnn_pool2d *p);
void fnn_adaptive_avg_pool2d_backward_f64(const double *dy, double *dx, const fnn_pool2d *p);

/* norm2d.c: batch norm over (n, l) per channel. running_mean/var are NULL when absent;
 * training updates them in place (unbiased variance); mean/invstd (c) receive the statistics
 * used. */
void fnn_batch_norm_f32(const float *x, const float *weight, const float *bias,
                        float *running_mean, float *running_var, float *y, float *mean,
                        float *invstd, int64_t n, int64_t c, int64_t l, int training,
                        double momentum, double eps);
void fnn_batch_norm_f64(const double *x, const double *weight, const double *bias,
                        double *running_mean, double *running_var, double *y, double *mean,
                        double *invstd, int64_t n, int64_t c, int64_t l, int training,
                        double momentum, double eps);
void fnn_batch_norm_backward_f32(const float *dy, const float *x, const float *weight,
                                 const float *mean, const float *invstd, float *dx,
                                 float *dweight, float *dbias, int64_t n, int64_t c, int64_t l,
                                 int training);
void fnn_batch_norm_backward_f64(const double *dy, const double *x, const double *weight,
                                 const double *mean, const double *invstd, double *dx,
                                 double *dweight, double *dbias, int64_t n, int64_t c, int64_t l,
                                 int training);
/* group norm: mean/rstd (n, groups) */
void fnn_group_norm_f32(const float *x, const float *weight, const float *bias, float *y,
                        float *mean, float *rstd, int64_t n, int64_t c, int64_t l,
                        int64_t groups, double eps);
void fnn_group_norm_f64(const double *x, const double *weight, const double *bias, double *y,
                        double *mean, double *rstd, int64_t n, int64_t c, int64_t l,
                        int64_t groups, double eps);
int fnn_group_norm_backward_f32(const float *dy, const float *x, const float *weight,
                                const float *mean, const float *rstd, float *dx, float *dweight,
                                float *dbias, int64_t n, int64_t c, int64_t l, int64_t groups);
int fnn_group_norm_backward_f64(const double *dy, const double *x, const double *weight,
                                const double *mean, const double *rstd, double *dx,
                                double *dweight, double *dbias, int64_t n, int64_t c, int64_t l,
                                int64_t groups);

#endif
