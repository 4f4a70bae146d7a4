/* 2-D convolution kernels (NCHW), called by fastnn/backends/cython/_conv.pyx.
 *
 * Semantics: fastnn/backends/numpy/conv.py (PyTorch's F.conv2d / F.conv_transpose2d). Everything
 * is phrased as an ordinary convolution ("conv view"): input X (n, c, h, w), weight
 * W (co, c/groups, kh, kw), output Y (n, co, oh, ow), window origin oy*sh - ph, ox*sw - pw.
 * conv_transpose2d is the backward-data pass of the conv whose input is its output.
 *
 * Strategy (conv.c, conv_impl.h): per image, im2col into a per-thread column buffer
 * ((c/groups)*kh*kw rows of oh*ow), then one call of the project's GEMM (csrc/gemm*.c, the ISA
 * path picked at run time) per group; col2im for the data gradient. Images are split among
 * the OpenMP threads (each GEMM single-threaded) when there are at least as many images as
 * threads; otherwise images run one after another with a multi-threaded GEMM. A 1x1, stride-1,
 * unpadded convolution multiplies the image in place (no im2col). An image whose columns exceed
 * CONV_COL_MAX values (8 MiB of floats; conv.c) is done in blocks of output rows; small images
 * go several to a GEMM, side by side in the column buffer (CONV_GROUP_COLS). Work is handed out
 * to the threads dynamically; dweight and dbias are summed over at most 8 fixed groups of
 * images and added in order, so results do not depend on the thread count.
 *
 * Why explicit im2col and not columns packed straight into the GEMM's panels: the GEMM's packing
 * routines and micro-kernels are private to gemm_driver.h / gemm_<isa>.c, and its entry points
 * take contiguous matrices; measured on the issue-10 shapes (one core), im2col plus one read of
 * the columns costs at most ~20% of the forward (N=32 64->64 3x3: 7.7 of 37 ms), which is the
 * most an implicit im2col could save, and column blocks small enough to stay in L2 measured no
 * faster than whole images.
 * Functions returning int give 0, or -1 when a scratch allocation failed.
 */
#ifndef FNN_CONV_H
#define FNN_CONV_H

#include <stdint.h>

typedef struct {
    int64_t n, c, h, w;          /* input X */
    int64_t co, kh, kw;          /* weight (co, c/groups, kh, kw) */
    int64_t oh, ow;              /* output Y */
    int64_t sh, sw, ph, pw, dh, dw;
    int64_t groups;
} fnn_conv_t;

/* y = conv(x, w) (+ bias when bias != NULL) */
int fnn_conv_forward_f32(const fnn_conv_t *p, const float *x, const float *w, const float *bias,
                         float *y);
int fnn_conv_forward_f64(const fnn_conv_t *p, const double *x, const double *w,
                         const double *bias, double *y);

/* Gradients given dy: dx (needs w), dw (needs x), db; each skipped when NULL. dx and dw are
 * written (not accumulated). */
int fnn_conv_backward_f32(const fnn_conv_t *p, const float *dy, const float *x, const float *w,
                          float *dx, float *dw, float *db);
int fnn_conv_backward_f64(const fnn_conv_t *p, const double *dy, const double *x,
                          const double *w, double *dx, double *dw, double *db);

/* y[:, c] += bias[c] over (n, channels, hw) */
void fnn_conv_add_bias_f32(float *y, const float *bias, int64_t n, int64_t channels, int64_t hw);
void fnn_conv_add_bias_f64(double *y, const double *bias, int64_t n, int64_t channels,
                           int64_t hw);

#endif
