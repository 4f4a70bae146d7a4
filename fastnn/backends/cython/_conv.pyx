# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython wrappers over csrc/conv.c: conv2d, conv2d_backward, conv_transpose2d and its backward.

Inputs arrive validated from fastnn/kernels/families/conv.py: 4-D, C-contiguous, one float
dtype, the geometry normalised to int pairs (padding = (top, left)). Every kernel is phrased as
an ordinary convolution (csrc/conv.h): conv_transpose2d is the backward-data pass of the
convolution whose input is its output, and its backward is a forward pass (dx) plus the
backward-weight pass with the roles of input and output gradient swapped (dweight).
"""
from libc.stdint cimport int64_t
cimport numpy as cnp

import numpy as np

include "_runtime.pxi"

cnp.import_array()

cdef extern from "conv.h" nogil:
    ctypedef struct fnn_conv_t:
        int64_t n, c, h, w
        int64_t co, kh, kw
        int64_t oh, ow
        int64_t sh, sw, ph, pw, dh, dw
        int64_t groups
    int fnn_conv_forward_f32(const fnn_conv_t *p, const float *x, const float *w,
                             const float *bias, float *y)
    int fnn_conv_forward_f64(const fnn_conv_t *p, const double *x, const double *w,
                             const double *bias, double *y)
    int fnn_conv_backward_f32(const fnn_conv_t *p, const float *dy, const float *x,
                              const float *w, float *dx, float *dw, float *db)
    int fnn_conv_backward_f64(const fnn_conv_t *p, const double *dy, const double *x,
                              const double *w, double *dx, double *dw, double *db)
    void fnn_conv_add_bias_f32(float *y, const float *bias, int64_t n, int64_t channels,
                               int64_t hw)
    void fnn_conv_add_bias_f64(double *y, const double *bias, int64_t n, int64_t channels,
                               int64_t hw)


cdef fnn_conv_t _geometry(tuple x_shape, tuple w_shape, tuple out_hw, stride, padding,
                          dilation, int64_t groups):
    """The conv view: input x_shape (n, c, h, w), weight w_shape (co, c/g, kh, kw)."""
    cdef fnn_conv_t p
    p.n, p.c, p.h, p.w = x_shape
    p.co = w_shape[0]
    p.kh, p.kw = w_shape[2], w_shape[3]
    p.oh, p.ow = out_hw
    p.sh, p.sw = stride
    p.ph, p.pw = padding
    p.dh, p.dw = dilation
    p.groups = groups
    return p


cdef inline void *_ptr(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef _forward(fnn_conv_t *p, cnp.ndarray x, cnp.ndarray w, object bias, cnp.ndarray y):
    cdef int rc
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *pw = cnp.PyArray_DATA(w)
    cdef void *pb = _ptr(bias)
    cdef void *py = cnp.PyArray_DATA(y)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            rc = fnn_conv_forward_f32(p, <const float *>px, <const float *>pw,
                                      <const float *>pb, <float *>py)
    else:
        with nogil:
            rc = fnn_conv_forward_f64(p, <const double *>px, <const double *>pw,
                                      <const double *>pb, <double *>py)
    if rc:
        raise MemoryError("conv: out of memory for the column buffer")


cdef _backward(fnn_conv_t *p, cnp.ndarray dy, object x, object w, object dx, object dw,
               object db):
    cdef int rc
    cdef void *pdy = cnp.PyArray_DATA(dy)
    cdef void *px = _ptr(x)
    cdef void *pw = _ptr(w)
    cdef void *pdx = _ptr(dx)
    cdef void *pdw = _ptr(dw)
    cdef void *pdb = _ptr(db)
    if cnp.PyArray_TYPE(dy) == cnp.NPY_FLOAT32:
        with nogil:
            rc = fnn_conv_backward_f32(p, <const float *>pdy, <const float *>px,
                                       <const float *>pw, <float *>pdx, <float *>pdw,
                                       <float *>pdb)
    else:
        with nogil:
            rc = fnn_conv_backward_f64(p, <const double *>pdy, <const double *>px,
                                       <const double *>pw, <double *>pdx, <double *>pdw,
                                       <double *>pdb)
    if rc:
        raise MemoryError("conv: out of memory for the column buffer")


cdef _add_bias(cnp.ndarray y, cnp.ndarray bias):
    cdef int64_t n = cnp.PyArray_DIM(y, 0), c = cnp.PyArray_DIM(y, 1)
    cdef int64_t hw = cnp.PyArray_DIM(y, 2) * cnp.PyArray_DIM(y, 3)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef void *pb = cnp.PyArray_DATA(bias)
    if cnp.PyArray_TYPE(y) == cnp.NPY_FLOAT32:
        with nogil:
            fnn_conv_add_bias_f32(<float *>py, <const float *>pb, n, c, hw)
    else:
        with nogil:
            fnn_conv_add_bias_f64(<double *>py, <const double *>pb, n, c, hw)


def conv2d(x, weight, bias, stride, padding, dilation, int64_t groups,
           out_hw):
    cdef fnn_conv_t p = _geometry(x.shape, weight.shape, tuple(out_hw), stride, padding,
                                  dilation, groups)
    y = np.empty((x.shape[0], weight.shape[0], p.oh, p.ow), x.dtype)
    _forward(&p, x, weight, bias, y)
    return y


def conv2d_backward(dy, x, weight, stride, padding,
                    dilation, int64_t groups, mask):
    cdef fnn_conv_t p = _geometry(x.shape, weight.shape, tuple(dy.shape[2:]), stride, padding,
                                  dilation, groups)
    dx = np.empty_like(x) if mask[0] else None
    dw = np.empty_like(weight) if mask[1] else None
    db = np.empty(weight.shape[0], x.dtype) if mask[2] else None
    _backward(&p, dy, x, weight, dx, dw, db)
    return dx, dw, db


def conv_transpose2d(x, weight, bias, stride, padding, dilation,
                     int64_t groups, out_hw):
    # conv view: input y (n, co, oh, ow), weight (c, co/g, kh, kw), output x (n, c, h, w)
    y_shape = (x.shape[0], weight.shape[1] * groups) + tuple(out_hw)
    cdef fnn_conv_t p = _geometry(y_shape, weight.shape, tuple(x.shape[2:]), stride, padding, dilation,
                                  groups)
    y = np.empty(y_shape, x.dtype)
    _backward(&p, x, None, weight, y, None, None)
    if bias is not None:
        _add_bias(y, bias)
    return y


def conv_transpose2d_backward(dy, x, weight, stride,
                              padding, dilation, int64_t groups, mask):
    cdef fnn_conv_t p = _geometry(dy.shape, weight.shape, tuple(x.shape[2:]), stride, padding,
                                  dilation, groups)
    dx = dw = db = None
    if mask[0]:
        dx = np.empty_like(x)
        _forward(&p, dy, weight, None, dx)
    if mask[1] or mask[2]:
        # conv view with x as the output gradient and dy as the input
        dw = np.empty_like(weight) if mask[1] else None
        db = np.empty(dy.shape[1], x.dtype) if mask[2] else None
        if mask[1]:
            _backward(&p, x, dy, None, None, dw, None)
        if mask[2]:
            db[...] = dy.sum((0, 2, 3), dtype=np.float64)
    return dx, dw, db
