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
    ctypedef struct fnn_att_strides:
        int64_t b, h, t
    int fnn_attention_forward_strided_f32(const float *q, const float *k, const float *v,
                                          float *out, float *lse, int64_t nb, int64_t nh,
                                          int64_t t, int64_t s, int64_t d,
                                          const fnn_att_strides *st, int causal,
                                          double scale) nogil
    int fnn_attention_forward_strided_f64(const double *q, const double *k, const double *v,
                                          double *out, double *lse, int64_t nb, int64_t nh,
                                          int64_t t, int64_t s, int64_t d,
                                          const fnn_att_strides *st, int causal,
                                          double scale) nogil
    int fnn_attention_backward_strided_f32(const float *dout, const float *q, const float *k,
                                           const float *v, const float *out, const float *lse,
                                           float *dq, float *dk, float *dv, int64_t nb,
                                           int64_t nh, int64_t t, int64_t s, int64_t d,
                                           const fnn_att_strides *st, int causal,
                                           double scale) nogil
    int fnn_attention_backward_strided_f64(const double *dout, const double *q,
                                           const double *k, const double *v, const double *out,
                                           const double *lse, double *dq, double *dk,
                                           double *dv, int64_t nb, int64_t nh, int64_t t,
                                           int64_t s, int64_t d, const fnn_att_strides *st,
                                           int causal, double scale) nogil



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


# ---------------------------------------------------------------- strided views
# Not declared kernels: nn.attention.packed_qkv_attention's fast path (it keeps a copying
# fallback for backends without them). Arguments are (B, H, T, D) / (B, H, S, D) numpy views of
# one float dtype whose last axis is contiguous (any other strides, e.g. q, k, v straight from a
# packed (B, T, 3, H, D) array), lse (B, H, T) C-contiguous; outputs are written in place.
# _strided_check raises instead of letting a bad view reach the C code.
cdef void _fill(fnn_att_strides *st, x):
    cdef int64_t item = x.itemsize
    st.b = x.strides[0] // item
    st.h = x.strides[1] // item
    st.t = x.strides[2] // item


cdef _strided_check(str name, arrays, lse):
    q = arrays[0]
    if q.ndim != 4 or q.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name}: q must be a 4-d float32 or float64 view, got {q.dtype} "
                         f"{q.shape}")
    for x in arrays:
        if (not isinstance(x, np.ndarray) or x.ndim != 4 or x.dtype != q.dtype
                or x.shape[0] != q.shape[0] or x.shape[1] != q.shape[1]
                or x.shape[3] != q.shape[3] or x.strides[3] != x.itemsize
                or any(st % x.itemsize for st in x.strides) or x.size == 0):
            raise ValueError(f"{name}: every view must be (B, H, *, D) {q.dtype}, non-empty, "
                             f"with a contiguous last axis; got {x.dtype} {x.shape} strides "
                             f"{x.strides}")
    if (not isinstance(lse, np.ndarray) or lse.dtype != q.dtype
            or lse.shape != q.shape[:3] or not lse.flags.c_contiguous):
        raise ValueError(f"{name}: lse must be a C-contiguous {q.dtype} array of shape "
                         f"{q.shape[:3]}")


def attention_strided(q, k, v, out, lse, causal, scale):
    """out (B, H, T, D) and lse (B, H, T) <- attention of q over k, v (see above)."""
    _strided_check("attention_strided", (q, k, v, out), lse)
    if k.shape != v.shape or out.shape != q.shape:
        raise ValueError(f"attention_strided: shapes q {q.shape} k {k.shape} v {v.shape} "
                         f"out {out.shape}")
    if not out.flags.writeable:
        raise ValueError("attention_strided: out is read-only")
    cdef fnn_att_strides st[4]
    for i, x in enumerate((q, k, v, out)):
        _fill(&st[i], x)
    cdef int64_t nb = q.shape[0], nh = q.shape[1], t = q.shape[2], s = k.shape[2]
    cdef int64_t d = q.shape[3]
    cdef int c = bool(causal), rc
    cdef bint f32 = q.dtype == np.float32
    cdef double sc = scale
    cdef size_t pq = q.ctypes.data, pk = k.ctypes.data, pv = v.ctypes.data
    cdef size_t po = out.ctypes.data, pl = lse.ctypes.data
    with nogil:
        if f32:
            rc = fnn_attention_forward_strided_f32(<float *>pq, <float *>pk, <float *>pv,
                                                   <float *>po, <float *>pl, nb, nh, t, s, d,
                                                   st, c, sc)
        else:
            rc = fnn_attention_forward_strided_f64(<double *>pq, <double *>pk, <double *>pv,
                                                   <double *>po, <double *>pl, nb, nh, t, s,
                                                   d, st, c, sc)
    if rc != 0:
        raise MemoryError("attention: could not allocate the kernel's tile buffers")


def attention_backward_strided(dout, q, k, v, out, lse, dq, dk, dv, causal, scale):
    """dq, dk, dv <- the gradients of attention_strided (see above)."""
    _strided_check("attention_backward_strided", (dout, q, k, v, out, dq, dk, dv), lse)
    if (k.shape != v.shape or dk.shape != k.shape or dv.shape != k.shape
            or not q.shape == dout.shape == out.shape == dq.shape):
        raise ValueError("attention_backward_strided: shapes do not match")
    if not (dq.flags.writeable and dk.flags.writeable and dv.flags.writeable):
        raise ValueError("attention_backward_strided: an output is read-only")
    cdef fnn_att_strides st[8]
    for i, x in enumerate((dout, q, k, v, out, dq, dk, dv)):
        _fill(&st[i], x)
    cdef int64_t nb = q.shape[0], nh = q.shape[1], t = q.shape[2], s = k.shape[2]
    cdef int64_t d = q.shape[3]
    cdef int c = bool(causal), rc
    cdef bint f32 = q.dtype == np.float32
    cdef double sc = scale
    cdef size_t p0 = dout.ctypes.data, p1 = q.ctypes.data, p2 = k.ctypes.data
    cdef size_t p3 = v.ctypes.data, p4 = out.ctypes.data, p5 = lse.ctypes.data
    cdef size_t p6 = dq.ctypes.data, p7 = dk.ctypes.data, p8 = dv.ctypes.data
    with nogil:
        if f32:
            rc = fnn_attention_backward_strided_f32(
                <float *>p0, <float *>p1, <float *>p2, <float *>p3, <float *>p4, <float *>p5,
                <float *>p6, <float *>p7, <float *>p8, nb, nh, t, s, d, st, c, sc)
        else:
            rc = fnn_attention_backward_strided_f64(
                <double *>p0, <double *>p1, <double *>p2, <double *>p3, <double *>p4,
                <double *>p5, <double *>p6, <double *>p7, <double *>p8, nb, nh, t, s, d, st,
                c, sc)
    if rc != 0:
        raise MemoryError("attention_backward: could not allocate the kernel's scratch buffers")


def scratch_bytes():
    """Bytes of scratch memory the last attention call allocated (for memory reports)."""
    return fnn_attention_scratch_bytes()


