# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython wrappers over csrc/select.c (declared in csrc/select.h): topk and multinomial.

Inputs arrive validated from fastnn/kernels/families/select.py (C-contiguous, 2-D, one float
dtype, 1 <= k <= C, uniforms float64 in [0, 1)), so each wrapper only allocates the outputs,
picks the float32 or float64 kernel and calls it without the GIL.
"""
cimport numpy as cnp
from libc.stdint cimport int64_t

include "_runtime.pxi"

cnp.import_array()

cdef extern from "select.h" nogil:
    int fnn_topk_f32(const float *x, float *values, int64_t *idx, int64_t n, int64_t c,
                     int64_t k, int largest, int sorted)
    int fnn_topk_f64(const double *x, double *values, int64_t *idx, int64_t n, int64_t c,
                     int64_t k, int largest, int sorted)
    int fnn_multinomial_f32(const float *p, const double *u, int64_t *out, int64_t n,
                            int64_t c, int64_t s, int replacement)
    int fnn_multinomial_f64(const double *p, const double *u, int64_t *out, int64_t n,
                            int64_t c, int64_t s, int replacement)


cdef inline cnp.ndarray empty_2d(cnp.npy_intp a, cnp.npy_intp b, int typenum):
    cdef cnp.npy_intp dims[2]
    dims[0] = a
    dims[1] = b
    return <cnp.ndarray>cnp.PyArray_EMPTY(2, dims, typenum, 0)


def topk(cnp.ndarray x, int64_t k, bint largest, bint sorted):
    cdef int64_t n = cnp.PyArray_DIM(x, 0), c = cnp.PyArray_DIM(x, 1)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef cnp.ndarray values = empty_2d(n, k, typenum)
    cdef cnp.ndarray idx = empty_2d(n, k, cnp.NPY_INT64)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *pv = cnp.PyArray_DATA(values)
    cdef int64_t *pi = <int64_t *>cnp.PyArray_DATA(idx)
    cdef int err
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            err = fnn_topk_f32(<const float *>px, <float *>pv, pi, n, c, k, largest, sorted)
    else:
        with nogil:
            err = fnn_topk_f64(<const double *>px, <double *>pv, pi, n, c, k, largest, sorted)
    if err:
        raise MemoryError("topk: scratch allocation failed")
    return values, idx


def multinomial(cnp.ndarray p, cnp.ndarray u, bint replacement):
    cdef int64_t n = cnp.PyArray_DIM(p, 0), c = cnp.PyArray_DIM(p, 1)
    cdef int64_t s = cnp.PyArray_DIM(u, 1)
    cdef cnp.ndarray out = empty_2d(n, s, cnp.NPY_INT64)
    cdef void *pp = cnp.PyArray_DATA(p)
    cdef const double *pu = <const double *>cnp.PyArray_DATA(u)
    cdef int64_t *po = <int64_t *>cnp.PyArray_DATA(out)
    cdef int err
    if cnp.PyArray_TYPE(p) == cnp.NPY_FLOAT32:
        with nogil:
            err = fnn_multinomial_f32(<const float *>pp, pu, po, n, c, s, replacement)
    else:
        with nogil:
            err = fnn_multinomial_f64(<const double *>pp, pu, po, n, c, s, replacement)
    if err:
        raise MemoryError("multinomial: scratch allocation failed")
    return out
