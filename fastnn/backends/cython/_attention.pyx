# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython wrappers over csrc/attention.c (fused flash-style attention). Inputs arrive validated
from fastnn/kernels/: C-contiguous, one float dtype, q (B, H, T, D), k and v (B, H, S, D)."""
from libc.stdint cimport int64_t

import numpy as np

from cython cimport floating

include "_runtime.pxi"

cdef extern from "attention.h":
    int fnn_attention_forward_f32(const float *q, const float *k, const float *v, float *out,
                                  float *lse, int64_t bh, int64_t t, int64_t s, int64_t d,
                                  int causal, double scale) nogil
    int fnn_attention_forward_f64(const double *q, const double *k, const double *v,
                                  double *out, double *lse, int64_t bh, int64_t t, int64_t s,
                                  int64_t d, int causal, double scale) nogil
    int fnn_attention_backward_f32(const float *dout, const float *q, const float *k,
                                   const float *v, const float *out, const float *lse,
                                   float *dq, float *dk, float *dv, int64_t bh, int64_t t,
                                   int64_t s, int64_t d, int causal, double scale) nogil
    int fnn_attention_backward_f64(const double *dout, const double *q, const double *k,
                                   const double *v, const double *out, const double *lse,
                                   double *dq, double *dk, double *dv, int64_t bh, int64_t t,
                                   int64_t s, int64_t d, int causal, double scale) nogil
    int64_t fnn_attention_scratch_bytes() nogil



cdef int _forward(floating[::1] q, floating[::1] k, floating[::1] v, floating[::1] out,
                  floating[::1] lse, int64_t bh, int64_t t, int64_t s, int64_t d, int causal,
                  double scale) noexcept nogil:
    if floating is float:
        return fnn_attention_forward_f32(&q[0], &k[0], &v[0], &out[0], &lse[0], bh, t, s, d,
                                         causal, scale)
    else:
        return fnn_attention_forward_f64(&q[0], &k[0], &v[0], &out[0], &lse[0], bh, t, s, d,
                                         causal, scale)


cdef int _backward(floating[::1] dout, floating[::1] q, floating[::1] k, floating[::1] v,
                   floating[::1] out, floating[::1] lse, floating[::1] dq, floating[::1] dk,
                   floating[::1] dv, int64_t bh, int64_t t, int64_t s, int64_t d, int causal,
                   double scale) noexcept nogil:
    if floating is float:
        return fnn_attention_backward_f32(&dout[0], &q[0], &k[0], &v[0], &out[0], &lse[0],
                                          &dq[0], &dk[0], &dv[0], bh, t, s, d, causal, scale)
    else:
        return fnn_attention_backward_f64(&dout[0], &q[0], &k[0], &v[0], &out[0], &lse[0],
                                          &dq[0], &dk[0], &dv[0], bh, t, s, d, causal, scale)


def attention(q, k, v, causal, scale):
    cdef int64_t b = q.shape[0], h = q.shape[1], t = q.shape[2], d = q.shape[3]
    cdef int64_t s = k.shape[2]
    cdef int rc
    out = np.empty_like(q)
    lse = np.empty(q.shape[:3], q.dtype)
    if q.dtype == np.float32:
        rc = _forward[float](q.reshape(-1), k.reshape(-1), v.reshape(-1), out.reshape(-1),
                             lse.reshape(-1), b * h, t, s, d, bool(causal), scale)
    else:
        rc = _forward[double](q.reshape(-1), k.reshape(-1), v.reshape(-1), out.reshape(-1),
                              lse.reshape(-1), b * h, t, s, d, bool(causal), scale)
    if rc != 0:
        raise MemoryError("attention: could not allocate the kernel's tile buffers")
    return out, lse


def attention_backward(dout, q, k, v, out, lse, causal, scale):
    cdef int64_t b = q.shape[0], h = q.shape[1], t = q.shape[2], d = q.shape[3]
    cdef int64_t s = k.shape[2]
    cdef int rc
    dq = np.empty_like(q)
    dk = np.empty_like(k)
    dv = np.empty_like(v)
    args = [x.reshape(-1) for x in (dout, q, k, v, out, lse, dq, dk, dv)]
    if q.dtype == np.float32:
        rc = _backward[float](*args, b * h, t, s, d, bool(causal), scale)
    else:
        rc = _backward[double](*args, b * h, t, s, d, bool(causal), scale)
    if rc != 0:
        raise MemoryError("attention_backward: could not allocate the kernel's scratch buffers")
    return dq, dk, dv


def scratch_bytes():
    """Bytes of scratch memory the last attention call allocated (for memory reports)."""
    return fnn_attention_scratch_bytes()


