/* Fused (flash-style) scaled dot-product attention on (B*H, T, D) blocks, forward and backward.
 *
 * q (BH, T, D), k and v (BH, S, D), all C-contiguous and of one dtype. causal masks key j > query
 * i (top-left aligned, as PyTorch's is_causal). The forward writes out (BH, T, D) and lse (BH, T),
 * the natural log of each row's sum of exp(scores); the backward recomputes the probabilities
 * from lse tile by tile. Neither ever holds a T x S matrix: the extra memory is a few tiles per
 * thread plus O(BH * T) row statistics (and, when BH is too small to keep every thread busy,
 * partial dq buffers, see attention.c). They return 0, or -1 when scratch memory could not be
 * allocated (the outputs are then unspecified).
 */
#ifndef FASTNN_ATTENTION_H
#define FASTNN_ATTENTION_H

#include <stdint.h>

int fnn_attention_forward_f32(const float *q, const float *k, const float *v, float *out,
                              float *lse, int64_t bh, int64_t t, int64_t s, int64_t d,
                              int causal, double scale);
int fnn_attention_forward_f64(const double *q, const double *k, const double *v, double *out,
                              double *lse, int64_t bh, int64_t t, int64_t s, int64_t d,
                              int causal, double scale);

/* dq (BH, T, D), dk and dv (BH, S, D) are written, never read. */
int fnn_attention_backward_f32(const float *dout, const float *q, const float *k,
                               const float *v, const float *out, const float *lse, float *dq,
                               float *dk, float *dv, int64_t bh, int64_t t, int64_t s,
                               int64_t d, int causal, double scale);
int fnn_attention_backward_f64(const double *dout, const double *q, const double *k,
                               const double *v, const double *out, const double *lse,
                               double *dq, double *dk, double *dv, int64_t bh, int64_t t,
                               int64_t s, int64_t d, int causal, double scale);

/* Strided layouts: the same kernels on (B, H, T, D) views whose last dim is contiguous and whose
 * batch, head and time strides (in elements) are arbitrary, e.g. q, k and v read straight from a
 * packed (B, T, 3, H, D) projection and the output written as (B, T, H, D). lse is (B*H, T)
 * contiguous. The views a call writes must not overlap each other or its inputs. */
typedef struct {
    int64_t b, h, t;
} fnn_att_strides;

/* st: q, k, v, out */
int fnn_attention_forward_strided_f32(const float *q, const float *k, const float *v, float *out,
                                      float *lse, int64_t nb, int64_t nh, int64_t t, int64_t s,
                                      int64_t d, const fnn_att_strides *st, int causal,
                                      double scale);
int fnn_attention_forward_strided_f64(const double *q, const double *k, const double *v,
                                      double *out, double *lse, int64_t nb, int64_t nh,
                                      int64_t t, int64_t s, int64_t d, const fnn_att_strides *st,
                                      int causal, double scale);
/* st: dout, q, k, v, out, dq, dk, dv */
int fnn_attention_backward_strided_f32(const float *dout, const float *q, const float *k,
                                       const float *v, const float *out, const float *lse,
                                       float *dq, float *dk, float *dv, int64_t nb, int64_t nh,
                                       int64_t t, int64_t s, int64_t d,
                                       const fnn_att_strides *st, int causal, double scale);
int fnn_attention_backward_strided_f64(const double *dout, const double *q, const double *k,
                                       const double *v, const double *out, const double *lse,
                                       double *dq, double *dk, double *dv, int64_t nb,
                                       int64_t nh, int64_t t, int64_t s, int64_t d,
                                       const fnn_att_strides *st, int causal, double scale);

/* Bytes of scratch memory the last call allocated (every thread's tiles, plus the backward's row
 * statistics and partial dq buffers): for memory reports. */
int64_t fnn_attention_scratch_bytes(void);

#endif
