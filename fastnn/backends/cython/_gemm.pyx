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
    void fnn_gemm_blocks(int is_double, int64_t out[5])
    void fnn_cache_sizes(int64_t *l1d, int64_t *l2, int64_t *l3)
    ctypedef struct fnn_gemm_epilogue:
        const void *bias
        int act
        const void *residual
        void *preact
        void *sum
        int sum_of_b
    void fnn_sgemm_ex(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int trans_a,
                      const float *b, int trans_b, float beta, float *c,
                      const fnn_gemm_epilogue *ep)
    void fnn_dgemm_ex(int64_t m, int64_t n, int64_t k, double alpha, const double *a,
                      int trans_a, const double *b, int trans_b, double beta, double *c,
                      const fnn_gemm_epilogue *ep)



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




def gemm_blocks(dtype):
    """The running path's blocking for float32 or float64: a dict of the micro-tile (MR, NR), the
    block sizes (KC, MC, NC, from the cache sizes) and the cache sizes in bytes (L1d, L2, L3)."""
    cdef int64_t out[5]
    cdef int64_t l1, l2, l3
    fnn_gemm_blocks(1 if str(dtype) == "float64" else 0, out)
    fnn_cache_sizes(&l1, &l2, &l3)
    return dict(MR=out[0], NR=out[1], KC=out[2], MC=out[3], NC=out[4], L1=l1, L2=l2, L3=l3)


cdef inline void *_data_or_null(object x):
    return NULL if x is None else cnp.PyArray_DATA(<cnp.ndarray>x)


cdef void _run_ex(cnp.ndarray a, cnp.ndarray b, cnp.ndarray c, bint trans_a, bint trans_b,
                  double alpha, double beta, fnn_gemm_epilogue *ep) except *:
    cdef int64_t m = cnp.PyArray_DIM(c, 0)
    cdef int64_t n = cnp.PyArray_DIM(c, 1)
    cdef int64_t k = cnp.PyArray_DIM(a, 0 if trans_a else 1)
    cdef int typenum = cnp.PyArray_TYPE(c)
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *pb = cnp.PyArray_DATA(b)
    cdef void *pc = cnp.PyArray_DATA(c)
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            fnn_sgemm_ex(m, n, k, <float>alpha, <const float *>pa, trans_a, <const float *>pb,
                         trans_b, <float>beta, <float *>pc, ep)
    elif typenum == cnp.NPY_FLOAT64:
        with nogil:
            fnn_dgemm_ex(m, n, k, alpha, <const double *>pa, trans_a, <const double *>pb,
                         trans_b, beta, <double *>pc, ep)
    else:
        raise TypeError(f"gemm: unsupported dtype {c.dtype}")


def gemm_fused(cnp.ndarray a, cnp.ndarray b, cnp.ndarray c, bint trans_a, bint trans_b,
               double alpha, double beta, object bias, int act, object residual, object preact):
    """c = act(alpha * op(a) @ op(b) + beta * c + bias) + residual, preact = the value before act
    (bias, residual, preact: arrays or None; act: 0 none, 1 relu, 2 gelu tanh, 3 gelu erf)."""
    cdef fnn_gemm_epilogue ep
    ep.bias = _data_or_null(bias)
    ep.act = act
    ep.residual = _data_or_null(residual)
    ep.preact = _data_or_null(preact)
    ep.sum = NULL
    ep.sum_of_b = 0
    _run_ex(a, b, c, trans_a, trans_b, alpha, beta, &ep)


def gemm_bias_grad(cnp.ndarray a, cnp.ndarray b, cnp.ndarray c, cnp.ndarray db, bint trans_a,
                   bint trans_b, double alpha, double beta, bint sum_of_b):
    """c = alpha * op(a) @ op(b) + beta * c and db = alpha * (sums over k of op(a)'s rows, or of
    op(b)'s columns when sum_of_b) + beta * db, the sums taken from the packed panels."""
    cdef fnn_gemm_epilogue ep
    ep.bias = NULL
    ep.act = 0
    ep.residual = NULL
    ep.preact = NULL
    ep.sum = cnp.PyArray_DATA(db)
    ep.sum_of_b = sum_of_b
    _run_ex(a, b, c, trans_a, trans_b, alpha, beta, &ep)
