# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython wrappers over csrc/gemm*.c. Inputs arrive validated from fastnn/kernels/
(C-contiguous, one float dtype, agreeing shapes, k > 0), so the wrappers only read shapes and
data pointers (no memoryview acquisition: ~1 us per call matters for tiny matrices) and run
the C kernel without the GIL."""
from libc.stdint cimport int64_t
cimport numpy as cnp
include "_runtime.pxi"

cnp.import_array()

cdef extern from "gemm.h" nogil:
    void fnn_sgemm(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int trans_a,
                   const float *b, int trans_b, float beta, float *c)
    void fnn_dgemm(int64_t m, int64_t n, int64_t k, double alpha, const double *a, int trans_a,
                   const double *b, int trans_b, double beta, double *c)
    void fnn_sgemm_batched(int64_t batch, int64_t m, int64_t n, int64_t k, float alpha,
                           const float *a, int trans_a, const float *b, int trans_b,
                           float beta, float *c)
    void fnn_dgemm_batched(int64_t batch, int64_t m, int64_t n, int64_t k, double alpha,
                           const double *a, int trans_a, const double *b, int trans_b,
                           double beta, double *c)



cdef inline void _run(int64_t batch, cnp.ndarray a, cnp.ndarray b, cnp.ndarray c, bint trans_a,
                      bint trans_b, double alpha, double beta) except *:
    cdef int nd = cnp.PyArray_NDIM(c)
    cdef int64_t m = cnp.PyArray_DIM(c, nd - 2)
    cdef int64_t n = cnp.PyArray_DIM(c, nd - 1)
    cdef int64_t k = cnp.PyArray_DIM(a, nd - 2 if trans_a else nd - 1)
    cdef int typenum = cnp.PyArray_TYPE(c)
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *pb = cnp.PyArray_DATA(b)
    cdef void *pc = cnp.PyArray_DATA(c)
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            fnn_sgemm_batched(batch, m, n, k, <float>alpha, <const float *>pa, trans_a,
                              <const float *>pb, trans_b, <float>beta, <float *>pc)
    elif typenum == cnp.NPY_FLOAT64:
        with nogil:
            fnn_dgemm_batched(batch, m, n, k, alpha, <const double *>pa, trans_a,
                              <const double *>pb, trans_b, beta, <double *>pc)
    else:
        raise TypeError(f"gemm: unsupported dtype {c.dtype}")


def gemm(cnp.ndarray a, cnp.ndarray b, cnp.ndarray c, bint trans_a, bint trans_b, double alpha,
         double beta):
    """c = alpha * op(a) @ op(b) + beta * c in place (2-D; c not read when beta == 0)."""
    _run(1, a, b, c, trans_a, trans_b, alpha, beta)


def gemm_batched(cnp.ndarray a, cnp.ndarray b, cnp.ndarray c, bint trans_a, bint trans_b,
                 double alpha, double beta):
    """gemm on each of the B matrices of 3-D a, b, c."""
    _run(cnp.PyArray_DIM(c, 0), a, b, c, trans_a, trans_b, alpha, beta)


