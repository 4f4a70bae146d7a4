# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython wrappers over csrc/pool.c and csrc/norm2d.c (declared in csrc/pool.h): pooling and
channel normalization.

Inputs arrive validated from fastnn/kernels/families/pool.py and norm2d.py (C-contiguous, one
float dtype, shapes that agree, output sizes computed there), so each wrapper only allocates
the outputs, picks the float32 or float64 kernel and calls it without the GIL.
"""
cimport numpy as cnp
from libc.stdint cimport int64_t

include "_runtime.pxi"

cnp.import_array()

cdef extern from "pool.h" nogil:
    ctypedef struct fnn_pool2d:
        int64_t planes, h, w, oh, ow
        int64_t kh, kw, sh, sw, ph, pw, dh, dw
        int count_include_pad
        int64_t divisor

    void fnn_max_pool2d_f32(const float *x, float *y, int64_t *idx, const fnn_pool2d *p)
    void fnn_max_pool2d_f64(const double *x, double *y, int64_t *idx, const fnn_pool2d *p)
    void fnn_max_pool2d_backward_f32(const float *dy, const int64_t *idx, float *dx,
                                     const fnn_pool2d *p)
    void fnn_max_pool2d_backward_f64(const double *dy, const int64_t *idx, double *dx,
                                     const fnn_pool2d *p)
    void fnn_avg_pool2d_f32(const float *x, float *y, const fnn_pool2d *p)
    void fnn_avg_pool2d_f64(const double *x, double *y, const fnn_pool2d *p)
    void fnn_avg_pool2d_backward_f32(const float *dy, float *dx, const fnn_pool2d *p)
    void fnn_avg_pool2d_backward_f64(const double *dy, double *dx, const fnn_pool2d *p)
    void fnn_adaptive_avg_pool2d_f32(const float *x, float *y, const fnn_pool2d *p)
    void fnn_adaptive_avg_pool2d_f64(const double *x, double *y, const fnn_pool2d *p)
    void fnn_adaptive_avg_pool2d_backward_f32(const float *dy, float *dx, const fnn_pool2d *p)
    void fnn_adaptive_avg_pool2d_backward_f64(const double *dy, double *dx, const fnn_pool2d *p)

    void fnn_batch_norm_f32(const float *x, const float *weight, const float *bias,
                            float *running_mean, float *running_var, float *y, float *mean,
                            float *invstd, int64_t n, int64_t c, int64_t l, int training,
                            double momentum, double eps)
    void fnn_batch_norm_f64(const double *x, const double *weight, const double *bias,
                            double *running_mean, double *running_var, double *y, double *mean,
                            double *invstd, int64_t n, int64_t c, int64_t l, int training,
                            double momentum, double eps)
    void fnn_batch_norm_backward_f32(const float *dy, const float *x, const float *weight,
                                     const float *mean, const float *invstd, float *dx,
                                     float *dweight, float *dbias, int64_t n, int64_t c,
                                     int64_t l, int training)
    void fnn_batch_norm_backward_f64(const double *dy, const double *x, const double *weight,
                                     const double *mean, const double *invstd, double *dx,
                                     double *dweight, double *dbias, int64_t n, int64_t c,
                                     int64_t l, int training)
    void fnn_group_norm_f32(const float *x, const float *weight, const float *bias, float *y,
                            float *mean, float *rstd, int64_t n, int64_t c, int64_t l,
                            int64_t groups, double eps)
    void fnn_group_norm_f64(const double *x, const double *weight, const double *bias, double *y,
                            double *mean, double *rstd, int64_t n, int64_t c, int64_t l,
                            int64_t groups, double eps)
    int fnn_group_norm_backward_f32(const float *dy, const float *x, const float *weight,
                                    const float *mean, const float *rstd, float *dx,
                                    float *dweight, float *dbias, int64_t n, int64_t c,
                                    int64_t l, int64_t groups)
    int fnn_group_norm_backward_f64(const double *dy, const double *x, const double *weight,
                                    const double *mean, const double *rstd, double *dx,
                                    double *dweight, double *dbias, int64_t n, int64_t c,
                                    int64_t l, int64_t groups)


# ---------------------------------------------------------------- helpers
cdef inline bint is_f32(cnp.ndarray a):
    return cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32


cdef inline cnp.ndarray empty_like(cnp.ndarray a):
    return <cnp.ndarray>cnp.PyArray_EMPTY(cnp.PyArray_NDIM(a), cnp.PyArray_DIMS(a),
                                          cnp.PyArray_TYPE(a), 0)


cdef inline cnp.ndarray empty_3d(cnp.npy_intp a, cnp.npy_intp b, cnp.npy_intp c, int typenum):
    cdef cnp.npy_intp dims[3]
    dims[0] = a
    dims[1] = b
    dims[2] = c
    return <cnp.ndarray>cnp.PyArray_EMPTY(3, dims, typenum, 0)


cdef inline cnp.ndarray empty_1d(cnp.npy_intp n, cnp.ndarray like):
    return <cnp.ndarray>cnp.PyArray_EMPTY(1, &n, cnp.PyArray_TYPE(like), 0)


cdef inline void *ptr(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


cdef inline int64_t dim(cnp.ndarray a, int i):
    return cnp.PyArray_DIM(a, i)


cdef inline fnn_pool2d geometry(int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                                int64_t pw, int64_t dh, int64_t dw, int cip, int64_t divisor):
    cdef fnn_pool2d p
    p.planes = planes
    p.h = h
    p.w = w
    p.oh = oh
    p.ow = ow
    p.kh = kh
    p.kw = kw
    p.sh = sh
    p.sw = sw
    p.ph = ph
    p.pw = pw
    p.dh = dh
    p.dw = dw
    p.count_include_pad = cip
    p.divisor = divisor
    return p


# ---------------------------------------------------------------- max pooling
def max_pool2d(cnp.ndarray x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
               int64_t pw, int64_t dh, int64_t dw, int64_t oh, int64_t ow):
    cdef fnn_pool2d p = geometry(dim(x, 0), dim(x, 1), dim(x, 2), oh, ow, kh, kw, sh, sw, ph, pw,
                                 dh, dw, 0, 0)
    cdef cnp.ndarray y = empty_3d(p.planes, oh, ow, cnp.PyArray_TYPE(x))
    cdef cnp.ndarray idx = empty_3d(p.planes, oh, ow, cnp.NPY_INT64)
    cdef void *px = ptr(x)
    cdef void *py = ptr(y)
    cdef int64_t *pi = <int64_t *>ptr(idx)
    if is_f32(x):
        with nogil:
            fnn_max_pool2d_f32(<float *>px, <float *>py, pi, &p)
    else:
        with nogil:
            fnn_max_pool2d_f64(<double *>px, <double *>py, pi, &p)
    return y, idx


def max_pool2d_backward(cnp.ndarray dy, cnp.ndarray indices, int64_t h, int64_t w):
    cdef fnn_pool2d p = geometry(dim(dy, 0), h, w, dim(dy, 1), dim(dy, 2), 1, 1, 1, 1, 0, 0, 1,
                                 1, 0, 0)
    cdef cnp.ndarray dx = empty_3d(p.planes, h, w, cnp.PyArray_TYPE(dy))
    cdef void *pdy = ptr(dy)
    cdef void *pdx = ptr(dx)
    cdef const int64_t *pi = <const int64_t *>ptr(indices)
    if is_f32(dy):
        with nogil:
            fnn_max_pool2d_backward_f32(<float *>pdy, pi, <float *>pdx, &p)
    else:
        with nogil:
            fnn_max_pool2d_backward_f64(<double *>pdy, pi, <double *>pdx, &p)
    return dx


# ---------------------------------------------------------------- average pooling
def avg_pool2d(cnp.ndarray x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
               int64_t pw, int64_t oh, int64_t ow, bint count_include_pad, int64_t divisor):
    cdef fnn_pool2d p = geometry(dim(x, 0), dim(x, 1), dim(x, 2), oh, ow, kh, kw, sh, sw, ph, pw,
                                 1, 1, count_include_pad, divisor)
    cdef cnp.ndarray y = empty_3d(p.planes, oh, ow, cnp.PyArray_TYPE(x))
    cdef void *px = ptr(x)
    cdef void *py = ptr(y)
    if is_f32(x):
        with nogil:
            fnn_avg_pool2d_f32(<float *>px, <float *>py, &p)
    else:
        with nogil:
            fnn_avg_pool2d_f64(<double *>px, <double *>py, &p)
    return y


def avg_pool2d_backward(cnp.ndarray dy, int64_t h, int64_t w, int64_t kh, int64_t kw,
                        int64_t sh, int64_t sw, int64_t ph, int64_t pw, bint count_include_pad,
                        int64_t divisor):
    cdef fnn_pool2d p = geometry(dim(dy, 0), h, w, dim(dy, 1), dim(dy, 2), kh, kw, sh, sw, ph,
                                 pw, 1, 1, count_include_pad, divisor)
    cdef cnp.ndarray dx = empty_3d(p.planes, h, w, cnp.PyArray_TYPE(dy))
    cdef void *pdy = ptr(dy)
    cdef void *pdx = ptr(dx)
    if is_f32(dy):
        with nogil:
            fnn_avg_pool2d_backward_f32(<float *>pdy, <float *>pdx, &p)
    else:
        with nogil:
            fnn_avg_pool2d_backward_f64(<double *>pdy, <double *>pdx, &p)
    return dx


def adaptive_avg_pool2d(cnp.ndarray x, int64_t oh, int64_t ow):
    cdef fnn_pool2d p = geometry(dim(x, 0), dim(x, 1), dim(x, 2), oh, ow, 1, 1, 1, 1, 0, 0, 1, 1,
                                 0, 0)
    cdef cnp.ndarray y = empty_3d(p.planes, oh, ow, cnp.PyArray_TYPE(x))
    cdef void *px = ptr(x)
    cdef void *py = ptr(y)
    if is_f32(x):
        with nogil:
            fnn_adaptive_avg_pool2d_f32(<float *>px, <float *>py, &p)
    else:
        with nogil:
            fnn_adaptive_avg_pool2d_f64(<double *>px, <double *>py, &p)
    return y


def adaptive_avg_pool2d_backward(cnp.ndarray dy, int64_t h, int64_t w):
    cdef fnn_pool2d p = geometry(dim(dy, 0), h, w, dim(dy, 1), dim(dy, 2), 1, 1, 1, 1, 0, 0, 1,
                                 1, 0, 0)
    cdef cnp.ndarray dx = empty_3d(p.planes, h, w, cnp.PyArray_TYPE(dy))
    cdef void *pdy = ptr(dy)
    cdef void *pdx = ptr(dx)
    if is_f32(dy):
        with nogil:
            fnn_adaptive_avg_pool2d_backward_f32(<float *>pdy, <float *>pdx, &p)
    else:
        with nogil:
            fnn_adaptive_avg_pool2d_backward_f64(<double *>pdy, <double *>pdx, &p)
    return dx


# ---------------------------------------------------------------- batch norm (n, c, l)
def batch_norm(cnp.ndarray x, cnp.ndarray weight, cnp.ndarray bias, cnp.ndarray running_mean,
               cnp.ndarray running_var, bint training, double momentum, double eps):
    cdef int64_t n = dim(x, 0), c = dim(x, 1), l = dim(x, 2)
    cdef cnp.ndarray y = empty_like(x)
    cdef cnp.ndarray mean = empty_1d(c, x)
    cdef cnp.ndarray invstd = empty_1d(c, x)
    cdef bint has_stats = cnp.PyArray_SIZE(running_mean) > 0
    cdef void *px = ptr(x)
    cdef void *pw = ptr(weight)
    cdef void *pb = ptr(bias)
    cdef void *prm = ptr(running_mean) if has_stats else NULL
    cdef void *prv = ptr(running_var) if has_stats else NULL
    cdef void *py = ptr(y)
    cdef void *pm = ptr(mean)
    cdef void *pi = ptr(invstd)
    if is_f32(x):
        with nogil:
            fnn_batch_norm_f32(<float *>px, <float *>pw, <float *>pb, <float *>prm, <float *>prv,
                               <float *>py, <float *>pm, <float *>pi, n, c, l, training,
                               momentum, eps)
    else:
        with nogil:
            fnn_batch_norm_f64(<double *>px, <double *>pw, <double *>pb, <double *>prm,
                               <double *>prv, <double *>py, <double *>pm, <double *>pi, n, c, l,
                               training, momentum, eps)
    return y, mean, invstd


def batch_norm_backward(cnp.ndarray dy, cnp.ndarray x, cnp.ndarray weight, cnp.ndarray mean,
                        cnp.ndarray invstd, bint training):
    cdef int64_t n = dim(x, 0), c = dim(x, 1), l = dim(x, 2)
    cdef cnp.ndarray dx = empty_like(x)
    cdef cnp.ndarray dw = empty_1d(c, x)
    cdef cnp.ndarray db = empty_1d(c, x)
    cdef void *pdy = ptr(dy)
    cdef void *px = ptr(x)
    cdef void *pw = ptr(weight)
    cdef void *pm = ptr(mean)
    cdef void *pi = ptr(invstd)
    cdef void *pdx = ptr(dx)
    cdef void *pdw = ptr(dw)
    cdef void *pdb = ptr(db)
    if is_f32(x):
        with nogil:
            fnn_batch_norm_backward_f32(<float *>pdy, <float *>px, <float *>pw, <float *>pm,
                                        <float *>pi, <float *>pdx, <float *>pdw, <float *>pdb,
                                        n, c, l, training)
    else:
        with nogil:
            fnn_batch_norm_backward_f64(<double *>pdy, <double *>px, <double *>pw, <double *>pm,
                                        <double *>pi, <double *>pdx, <double *>pdw,
                                        <double *>pdb, n, c, l, training)
    return dx, dw, db


# ---------------------------------------------------------------- group norm (n, c, l)
def group_norm(cnp.ndarray x, int64_t num_groups, cnp.ndarray weight, cnp.ndarray bias,
               double eps):
    cdef int64_t n = dim(x, 0), c = dim(x, 1), l = dim(x, 2)
    cdef cnp.ndarray y = empty_like(x)
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    dims[1] = num_groups
    cdef cnp.ndarray mean = <cnp.ndarray>cnp.PyArray_EMPTY(2, dims, cnp.PyArray_TYPE(x), 0)
    cdef cnp.ndarray rstd = <cnp.ndarray>cnp.PyArray_EMPTY(2, dims, cnp.PyArray_TYPE(x), 0)
    cdef void *px = ptr(x)
    cdef void *pw = ptr(weight)
    cdef void *pb = ptr(bias)
    cdef void *py = ptr(y)
    cdef void *pm = ptr(mean)
    cdef void *pr = ptr(rstd)
    if is_f32(x):
        with nogil:
            fnn_group_norm_f32(<float *>px, <float *>pw, <float *>pb, <float *>py, <float *>pm,
                               <float *>pr, n, c, l, num_groups, eps)
    else:
        with nogil:
            fnn_group_norm_f64(<double *>px, <double *>pw, <double *>pb, <double *>py,
                               <double *>pm, <double *>pr, n, c, l, num_groups, eps)
    return y, mean, rstd


def group_norm_backward(cnp.ndarray dy, cnp.ndarray x, cnp.ndarray weight, cnp.ndarray mean,
                        cnp.ndarray rstd, int64_t num_groups):
    cdef int64_t n = dim(x, 0), c = dim(x, 1), l = dim(x, 2)
    cdef cnp.ndarray dx = empty_like(x)
    cdef cnp.ndarray dw = empty_1d(c, x)
    cdef cnp.ndarray db = empty_1d(c, x)
    cdef void *pdy = ptr(dy)
    cdef void *px = ptr(x)
    cdef void *pw = ptr(weight)
    cdef void *pm = ptr(mean)
    cdef void *pr = ptr(rstd)
    cdef void *pdx = ptr(dx)
    cdef void *pdw = ptr(dw)
    cdef void *pdb = ptr(db)
    cdef int status
    if is_f32(x):
        with nogil:
            status = fnn_group_norm_backward_f32(<float *>pdy, <float *>px, <float *>pw,
                                                 <float *>pm, <float *>pr, <float *>pdx,
                                                 <float *>pdw, <float *>pdb, n, c, l, num_groups)
    else:
        with nogil:
            status = fnn_group_norm_backward_f64(<double *>pdy, <double *>px, <double *>pw,
                                                 <double *>pm, <double *>pr, <double *>pdx,
                                                 <double *>pdw, <double *>pdb, n, c, l,
                                                 num_groups)
    if status:
        raise MemoryError("group_norm_backward: out of memory for per-channel partial sums")
    return dx, dw, db
