# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython wrappers over csrc/ops_*.c (declared in csrc/ops.h).

Inputs arrive validated from fastnn/kernels/ (C-contiguous, one float dtype, shapes that
agree, indices in range), so each wrapper only allocates the outputs, picks the float32 or
float64 kernel from the dtype number and calls it without the GIL. Everything here is C-level
numpy API: a call costs well under 2 us on top of the kernel.
"""
cimport numpy as cnp
from libc.stdint cimport int64_t

include "_runtime.pxi"

cnp.import_array()

cdef extern from "ops.h" nogil:
    void fnn_bias_add_f32(const float *x, const float *bias, float *y, int64_t rows, int64_t cols)
    void fnn_bias_add_f64(const double *x, const double *bias, double *y, int64_t rows,
                          int64_t cols)
    int fnn_bias_grad_f32(const float *dy, float *dbias, int64_t rows, int64_t cols)
    int fnn_bias_grad_f64(const double *dy, double *dbias, int64_t rows, int64_t cols)

    void fnn_relu_f32(const float *x, float *y, int64_t n)
    void fnn_relu_f64(const double *x, double *y, int64_t n)
    void fnn_relu_backward_f32(const float *dy, const float *x, float *dx, int64_t n)
    void fnn_relu_backward_f64(const double *dy, const double *x, double *dx, int64_t n)
    void fnn_leaky_relu_f32(const float *x, float *y, int64_t n, double slope)
    void fnn_leaky_relu_f64(const double *x, double *y, int64_t n, double slope)
    void fnn_leaky_relu_backward_f32(const float *dy, const float *x, float *dx, int64_t n,
                                     double slope)
    void fnn_leaky_relu_backward_f64(const double *dy, const double *x, double *dx, int64_t n,
                                     double slope)
    void fnn_sigmoid_f32(const float *x, float *y, int64_t n)
    void fnn_sigmoid_f64(const double *x, double *y, int64_t n)
    void fnn_sigmoid_backward_f32(const float *dy, const float *y, float *dx, int64_t n)
    void fnn_sigmoid_backward_f64(const double *dy, const double *y, double *dx, int64_t n)
    void fnn_tanh_f32(const float *x, float *y, int64_t n)
    void fnn_tanh_f64(const double *x, double *y, int64_t n)
    void fnn_tanh_backward_f32(const float *dy, const float *y, float *dx, int64_t n)
    void fnn_tanh_backward_f64(const double *dy, const double *y, double *dx, int64_t n)
    void fnn_gelu_f32(const float *x, float *y, int64_t n, int approximate)
    void fnn_gelu_f64(const double *x, double *y, int64_t n, int approximate)
    void fnn_gelu_backward_f32(const float *dy, const float *x, float *dx, int64_t n,
                               int approximate)
    void fnn_gelu_backward_f64(const double *dy, const double *x, double *dx, int64_t n,
                               int approximate)
    void fnn_clamp_f32(const float *x, float *y, int64_t n, double lo, double hi)
    void fnn_clamp_f64(const double *x, double *y, int64_t n, double lo, double hi)
    void fnn_clamp_backward_f32(const float *dy, const float *x, float *dx, int64_t n, double lo,
                                double hi)
    void fnn_clamp_backward_f64(const double *dy, const double *x, double *dx, int64_t n,
                                double lo, double hi)

    void fnn_softmax_f32(const float *x, float *y, int64_t rows, int64_t cols)
    void fnn_softmax_f64(const double *x, double *y, int64_t rows, int64_t cols)
    void fnn_softmax_backward_f32(const float *dy, const float *y, float *dx, int64_t rows,
                                  int64_t cols)
    void fnn_softmax_backward_f64(const double *dy, const double *y, double *dx, int64_t rows,
                                  int64_t cols)
    void fnn_log_softmax_f32(const float *x, float *y, int64_t rows, int64_t cols)
    void fnn_log_softmax_f64(const double *x, double *y, int64_t rows, int64_t cols)
    void fnn_log_softmax_backward_f32(const float *dy, const float *y, float *dx, int64_t rows,
                                      int64_t cols)
    void fnn_log_softmax_backward_f64(const double *dy, const double *y, double *dx,
                                      int64_t rows, int64_t cols)
    void fnn_cross_entropy_f32(const float *logits, const int64_t *targets, float *losses,
                               float *dlogits, int64_t rows, int64_t cols, int64_t ignore_index,
                               double grad_scale)
    void fnn_cross_entropy_f64(const double *logits, const int64_t *targets, double *losses,
                               double *dlogits, int64_t rows, int64_t cols, int64_t ignore_index,
                               double grad_scale)

    double fnn_mse_loss_f32(const float *pred, const float *target, float *grad, int64_t n)
    double fnn_mse_loss_f64(const double *pred, const double *target, double *grad, int64_t n)

    void fnn_layer_norm_f32(const float *x, const float *weight, const float *bias, float *y,
                            float *mean, float *rstd, int64_t rows, int64_t cols, double eps)
    void fnn_layer_norm_f64(const double *x, const double *weight, const double *bias, double *y,
                            double *mean, double *rstd, int64_t rows, int64_t cols, double eps)
    int fnn_layer_norm_backward_f32(const float *dy, const float *x, const float *weight,
                                    const float *mean, const float *rstd, float *dx,
                                    float *dweight, float *dbias, int64_t rows, int64_t cols)
    int fnn_layer_norm_backward_f64(const double *dy, const double *x, const double *weight,
                                    const double *mean, const double *rstd, double *dx,
                                    double *dweight, double *dbias, int64_t rows, int64_t cols)

    void fnn_embedding_f32(const float *weight, const int64_t *ids, float *out, int64_t n,
                           int64_t cols)
    void fnn_embedding_f64(const double *weight, const int64_t *ids, double *out, int64_t n,
                           int64_t cols)
    void fnn_embedding_backward_f32(const float *dout, const int64_t *ids, float *dweight,
                                    int64_t n, int64_t cols)
    void fnn_embedding_backward_f64(const double *dout, const int64_t *ids, double *dweight,
                                    int64_t n, int64_t cols)

    void fnn_sgd_step_f32(float *param, const float *grad, float *buf, int64_t n, double lr,
                          double momentum, double dampening, int nesterov, double weight_decay,
                          int first)
    void fnn_sgd_step_f64(double *param, const double *grad, double *buf, int64_t n, double lr,
                          double momentum, double dampening, int nesterov, double weight_decay,
                          int first)
    void fnn_adam_step_f32(float *param, const float *grad, float *m, float *v, int64_t n,
                           int64_t step, double lr, double beta1, double beta2, double eps,
                           double weight_decay, int decoupled)
    void fnn_adam_step_f64(double *param, const double *grad, double *m, double *v, int64_t n,
                           int64_t step, double lr, double beta1, double beta2, double eps,
                           double weight_decay, int decoupled)





# ---------------------------------------------------------------- helpers
cdef inline bint is_f32(cnp.ndarray a):
    return cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32


cdef inline cnp.ndarray empty_like(cnp.ndarray a):
    return <cnp.ndarray>cnp.PyArray_EMPTY(cnp.PyArray_NDIM(a), cnp.PyArray_DIMS(a),
                                          cnp.PyArray_TYPE(a), 0)


cdef inline cnp.ndarray empty_1d(cnp.npy_intp n, cnp.ndarray like):
    return <cnp.ndarray>cnp.PyArray_EMPTY(1, &n, cnp.PyArray_TYPE(like), 0)


cdef inline cnp.ndarray zeros_2d(cnp.npy_intp rows, cnp.npy_intp cols, cnp.ndarray like):
    cdef cnp.npy_intp dims[2]
    dims[0] = rows
    dims[1] = cols
    return <cnp.ndarray>cnp.PyArray_ZEROS(2, dims, cnp.PyArray_TYPE(like), 0)


cdef inline void *ptr(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


cdef inline int64_t size(cnp.ndarray a):
    return cnp.PyArray_SIZE(a)


cdef inline int64_t dim(cnp.ndarray a, int i):
    return cnp.PyArray_DIM(a, i)


ctypedef void (*unary_f32_fn)(const float *, float *, int64_t) noexcept nogil
ctypedef void (*unary_f64_fn)(const double *, double *, int64_t) noexcept nogil
ctypedef void (*binary_f32_fn)(const float *, const float *, float *, int64_t) noexcept nogil
ctypedef void (*binary_f64_fn)(const double *, const double *, double *, int64_t) noexcept nogil
ctypedef void (*rows_f32_fn)(const float *, float *, int64_t, int64_t) noexcept nogil
ctypedef void (*rows_f64_fn)(const double *, double *, int64_t, int64_t) noexcept nogil
ctypedef void (*rows2_f32_fn)(const float *, const float *, float *, int64_t,
                              int64_t) noexcept nogil
ctypedef void (*rows2_f64_fn)(const double *, const double *, double *, int64_t,
                              int64_t) noexcept nogil


cdef inline cnp.ndarray unary(cnp.ndarray x, unary_f32_fn f32, unary_f64_fn f64):
    cdef cnp.ndarray y = empty_like(x)
    cdef int64_t n = size(x)
    cdef void *px = ptr(x)
    cdef void *py = ptr(y)
    if is_f32(x):
        with nogil:
            f32(<float *>px, <float *>py, n)
    else:
        with nogil:
            f64(<double *>px, <double *>py, n)
    return y


cdef inline cnp.ndarray binary(cnp.ndarray a, cnp.ndarray b, binary_f32_fn f32,
                               binary_f64_fn f64):
    cdef cnp.ndarray out = empty_like(a)
    cdef int64_t n = size(a)
    cdef void *pa = ptr(a)
    cdef void *pb = ptr(b)
    cdef void *po = ptr(out)
    if is_f32(a):
        with nogil:
            f32(<float *>pa, <float *>pb, <float *>po, n)
    else:
        with nogil:
            f64(<double *>pa, <double *>pb, <double *>po, n)
    return out


cdef inline cnp.ndarray rows_op(cnp.ndarray x, rows_f32_fn f32, rows_f64_fn f64):
    cdef cnp.ndarray y = empty_like(x)
    cdef int64_t rows = dim(x, 0), cols = dim(x, 1)
    cdef void *px = ptr(x)
    cdef void *py = ptr(y)
    if is_f32(x):
        with nogil:
            f32(<float *>px, <float *>py, rows, cols)
    else:
        with nogil:
            f64(<double *>px, <double *>py, rows, cols)
    return y


cdef inline cnp.ndarray rows_backward(cnp.ndarray dy, cnp.ndarray y, rows2_f32_fn f32,
                                      rows2_f64_fn f64):
    cdef cnp.ndarray dx = empty_like(dy)
    cdef int64_t rows = dim(dy, 0), cols = dim(dy, 1)
    cdef void *pdy = ptr(dy)
    cdef void *py = ptr(y)
    cdef void *pdx = ptr(dx)
    if is_f32(dy):
        with nogil:
            f32(<float *>pdy, <float *>py, <float *>pdx, rows, cols)
    else:
        with nogil:
            f64(<double *>pdy, <double *>py, <double *>pdx, rows, cols)
    return dx


# ---------------------------------------------------------------- bias
def bias_add(cnp.ndarray x, cnp.ndarray bias):
    cdef cnp.ndarray y = empty_like(x)
    cdef int64_t rows = dim(x, 0), cols = dim(x, 1)
    cdef void *px = ptr(x)
    cdef void *pb = ptr(bias)
    cdef void *py = ptr(y)
    if is_f32(x):
        with nogil:
            fnn_bias_add_f32(<float *>px, <float *>pb, <float *>py, rows, cols)
    else:
        with nogil:
            fnn_bias_add_f64(<double *>px, <double *>pb, <double *>py, rows, cols)
    return y


def bias_grad(cnp.ndarray dy):
    cdef int64_t rows = dim(dy, 0), cols = dim(dy, 1)
    cdef cnp.ndarray db = empty_1d(cols, dy)
    cdef void *pdy = ptr(dy)
    cdef void *pdb = ptr(db)
    cdef int status
    if is_f32(dy):
        with nogil:
            status = fnn_bias_grad_f32(<float *>pdy, <float *>pdb, rows, cols)
    else:
        with nogil:
            status = fnn_bias_grad_f64(<double *>pdy, <double *>pdb, rows, cols)
    if status:
        raise MemoryError("bias_grad: out of memory for per-thread partial sums")
    return db


# ---------------------------------------------------------------- activations
def relu(cnp.ndarray x):
    return unary(x, fnn_relu_f32, fnn_relu_f64)


def relu_backward(cnp.ndarray dy, cnp.ndarray x):
    return binary(dy, x, fnn_relu_backward_f32, fnn_relu_backward_f64)


def leaky_relu(cnp.ndarray x, double negative_slope):
    cdef cnp.ndarray y = empty_like(x)
    cdef int64_t n = size(x)
    cdef void *px = ptr(x)
    cdef void *py = ptr(y)
    if is_f32(x):
        with nogil:
            fnn_leaky_relu_f32(<float *>px, <float *>py, n, negative_slope)
    else:
        with nogil:
            fnn_leaky_relu_f64(<double *>px, <double *>py, n, negative_slope)
    return y


def leaky_relu_backward(cnp.ndarray dy, cnp.ndarray x, double negative_slope):
    cdef cnp.ndarray dx = empty_like(dy)
    cdef int64_t n = size(dy)
    cdef void *pdy = ptr(dy)
    cdef void *px = ptr(x)
    cdef void *pdx = ptr(dx)
    if is_f32(dy):
        with nogil:
            fnn_leaky_relu_backward_f32(<float *>pdy, <float *>px, <float *>pdx, n,
                                        negative_slope)
    else:
        with nogil:
            fnn_leaky_relu_backward_f64(<double *>pdy, <double *>px, <double *>pdx, n,
                                        negative_slope)
    return dx


def sigmoid(cnp.ndarray x):
    return unary(x, fnn_sigmoid_f32, fnn_sigmoid_f64)


def sigmoid_backward(cnp.ndarray dy, cnp.ndarray y):
    return binary(dy, y, fnn_sigmoid_backward_f32, fnn_sigmoid_backward_f64)


def tanh(cnp.ndarray x):
    return unary(x, fnn_tanh_f32, fnn_tanh_f64)


def tanh_backward(cnp.ndarray dy, cnp.ndarray y):
    return binary(dy, y, fnn_tanh_backward_f32, fnn_tanh_backward_f64)


def gelu(cnp.ndarray x, bint approximate):
    cdef cnp.ndarray y = empty_like(x)
    cdef int64_t n = size(x)
    cdef void *px = ptr(x)
    cdef void *py = ptr(y)
    if is_f32(x):
        with nogil:
            fnn_gelu_f32(<float *>px, <float *>py, n, approximate)
    else:
        with nogil:
            fnn_gelu_f64(<double *>px, <double *>py, n, approximate)
    return y


def gelu_backward(cnp.ndarray dy, cnp.ndarray x, bint approximate):
    cdef cnp.ndarray dx = empty_like(dy)
    cdef int64_t n = size(dy)
    cdef void *pdy = ptr(dy)
    cdef void *px = ptr(x)
    cdef void *pdx = ptr(dx)
    if is_f32(dy):
        with nogil:
            fnn_gelu_backward_f32(<float *>pdy, <float *>px, <float *>pdx, n, approximate)
    else:
        with nogil:
            fnn_gelu_backward_f64(<double *>pdy, <double *>px, <double *>pdx, n, approximate)
    return dx


def clamp(cnp.ndarray x, double lo, double hi):
    cdef cnp.ndarray y = empty_like(x)
    cdef int64_t n = size(x)
    cdef void *px = ptr(x)
    cdef void *py = ptr(y)
    if is_f32(x):
        with nogil:
            fnn_clamp_f32(<float *>px, <float *>py, n, lo, hi)
    else:
        with nogil:
            fnn_clamp_f64(<double *>px, <double *>py, n, lo, hi)
    return y


def clamp_backward(cnp.ndarray dy, cnp.ndarray x, double lo, double hi):
    cdef cnp.ndarray dx = empty_like(dy)
    cdef int64_t n = size(dy)
    cdef void *pdy = ptr(dy)
    cdef void *px = ptr(x)
    cdef void *pdx = ptr(dx)
    if is_f32(dy):
        with nogil:
            fnn_clamp_backward_f32(<float *>pdy, <float *>px, <float *>pdx, n, lo, hi)
    else:
        with nogil:
            fnn_clamp_backward_f64(<double *>pdy, <double *>px, <double *>pdx, n, lo, hi)
    return dx


# ---------------------------------------------------------------- softmax family
def softmax(cnp.ndarray x):
    return rows_op(x, fnn_softmax_f32, fnn_softmax_f64)


def softmax_backward(cnp.ndarray dy, cnp.ndarray y):
    return rows_backward(dy, y, fnn_softmax_backward_f32, fnn_softmax_backward_f64)


def log_softmax(cnp.ndarray x):
    return rows_op(x, fnn_log_softmax_f32, fnn_log_softmax_f64)


def log_softmax_backward(cnp.ndarray dy, cnp.ndarray y):
    return rows_backward(dy, y, fnn_log_softmax_backward_f32, fnn_log_softmax_backward_f64)


def cross_entropy(cnp.ndarray logits, cnp.ndarray targets, int64_t ignore_index,
                  double grad_scale):
    cdef int64_t rows = dim(logits, 0), cols = dim(logits, 1)
    cdef cnp.ndarray losses = empty_1d(rows, logits)
    cdef cnp.ndarray grad = empty_like(logits)
    cdef void *px = ptr(logits)
    cdef int64_t *pt = <int64_t *>ptr(targets)
    cdef void *pl = ptr(losses)
    cdef void *pg = ptr(grad)
    if is_f32(logits):
        with nogil:
            fnn_cross_entropy_f32(<float *>px, pt, <float *>pl, <float *>pg, rows, cols,
                                  ignore_index, grad_scale)
    else:
        with nogil:
            fnn_cross_entropy_f64(<double *>px, pt, <double *>pl, <double *>pg, rows, cols,
                                  ignore_index, grad_scale)
    return losses, grad


# ---------------------------------------------------------------- losses
def mse_loss(cnp.ndarray pred, cnp.ndarray target):
    cdef cnp.ndarray grad = empty_like(pred)
    cdef int64_t n = size(pred)
    cdef void *pp = ptr(pred)
    cdef void *pt = ptr(target)
    cdef void *pg = ptr(grad)
    cdef double loss
    if is_f32(pred):
        with nogil:
            loss = fnn_mse_loss_f32(<float *>pp, <float *>pt, <float *>pg, n)
    else:
        with nogil:
            loss = fnn_mse_loss_f64(<double *>pp, <double *>pt, <double *>pg, n)
    return loss, grad


# ---------------------------------------------------------------- layer norm
def layer_norm(cnp.ndarray x, cnp.ndarray weight, cnp.ndarray bias, double eps):
    cdef int64_t rows = dim(x, 0), cols = dim(x, 1)
    cdef cnp.ndarray y = empty_like(x)
    cdef cnp.ndarray mean = empty_1d(rows, x)
    cdef cnp.ndarray rstd = empty_1d(rows, x)
    cdef void *px = ptr(x)
    cdef void *pw = ptr(weight)
    cdef void *pb = ptr(bias)
    cdef void *py = ptr(y)
    cdef void *pm = ptr(mean)
    cdef void *pr = ptr(rstd)
    if is_f32(x):
        with nogil:
            fnn_layer_norm_f32(<float *>px, <float *>pw, <float *>pb, <float *>py, <float *>pm,
                               <float *>pr, rows, cols, eps)
    else:
        with nogil:
            fnn_layer_norm_f64(<double *>px, <double *>pw, <double *>pb, <double *>py,
                               <double *>pm, <double *>pr, rows, cols, eps)
    return y, mean, rstd


def layer_norm_backward(cnp.ndarray dy, cnp.ndarray x, cnp.ndarray weight, cnp.ndarray mean,
                        cnp.ndarray rstd):
    cdef int64_t rows = dim(x, 0), cols = dim(x, 1)
    cdef cnp.ndarray dx = empty_like(x)
    cdef cnp.ndarray dw = empty_1d(cols, x)
    cdef cnp.ndarray db = empty_1d(cols, x)
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
            status = fnn_layer_norm_backward_f32(<float *>pdy, <float *>px, <float *>pw,
                                                 <float *>pm, <float *>pr, <float *>pdx,
                                                 <float *>pdw, <float *>pdb, rows, cols)
    else:
        with nogil:
            status = fnn_layer_norm_backward_f64(<double *>pdy, <double *>px, <double *>pw,
                                                 <double *>pm, <double *>pr, <double *>pdx,
                                                 <double *>pdw, <double *>pdb, rows, cols)
    if status:
        raise MemoryError("layer_norm_backward: out of memory for per-thread partial sums")
    return dx, dw, db


# ---------------------------------------------------------------- embedding
def embedding(cnp.ndarray weight, cnp.ndarray ids):
    cdef int64_t n = size(ids), cols = dim(weight, 1)
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    dims[1] = cols
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(2, dims, cnp.PyArray_TYPE(weight), 0)
    cdef void *pw = ptr(weight)
    cdef int64_t *pi = <int64_t *>ptr(ids)
    cdef void *po = ptr(out)
    if is_f32(weight):
        with nogil:
            fnn_embedding_f32(<float *>pw, pi, <float *>po, n, cols)
    else:
        with nogil:
            fnn_embedding_f64(<double *>pw, pi, <double *>po, n, cols)
    return out


def embedding_backward(cnp.ndarray dout, cnp.ndarray ids, int64_t num_embeddings):
    cdef int64_t n = dim(dout, 0), cols = dim(dout, 1)
    cdef cnp.ndarray dweight = zeros_2d(num_embeddings, cols, dout)
    cdef void *pd = ptr(dout)
    cdef int64_t *pi = <int64_t *>ptr(ids)
    cdef void *pw = ptr(dweight)
    if is_f32(dout):
        with nogil:
            fnn_embedding_backward_f32(<float *>pd, pi, <float *>pw, n, cols)
    else:
        with nogil:
            fnn_embedding_backward_f64(<double *>pd, pi, <double *>pw, n, cols)
    return dweight


# ---------------------------------------------------------------- optimizers (in place)
def sgd_step(cnp.ndarray param, cnp.ndarray grad, cnp.ndarray buf, double lr, double momentum,
             double dampening, bint nesterov, double weight_decay, bint first):
    cdef int64_t n = size(param)
    cdef void *pp = ptr(param)
    cdef void *pg = ptr(grad)
    cdef void *pb = ptr(buf)
    if is_f32(param):
        with nogil:
            fnn_sgd_step_f32(<float *>pp, <float *>pg, <float *>pb, n, lr, momentum, dampening,
                             nesterov, weight_decay, first)
    else:
        with nogil:
            fnn_sgd_step_f64(<double *>pp, <double *>pg, <double *>pb, n, lr, momentum,
                             dampening, nesterov, weight_decay, first)


def adam_step(cnp.ndarray param, cnp.ndarray grad, cnp.ndarray m, cnp.ndarray v, int64_t step,
              double lr, double beta1, double beta2, double eps, double weight_decay,
              bint decoupled):
    cdef int64_t n = size(param)
    cdef void *pp = ptr(param)
    cdef void *pg = ptr(grad)
    cdef void *pm = ptr(m)
    cdef void *pv = ptr(v)
    if is_f32(param):
        with nogil:
            fnn_adam_step_f32(<float *>pp, <float *>pg, <float *>pm, <float *>pv, n, step, lr,
                              beta1, beta2, eps, weight_decay, decoupled)
    else:
        with nogil:
            fnn_adam_step_f64(<double *>pp, <double *>pg, <double *>pm, <double *>pv, n, step,
                              lr, beta1, beta2, eps, weight_decay, decoupled)
