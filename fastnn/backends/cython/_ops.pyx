# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython wrappers over csrc/ops_*.c (declared in csrc/ops.h).

Inputs arrive validated from fastnn/kernels/ (C-contiguous, one float dtype, shapes that
agree, indices in range), so each wrapper only allocates the outputs, picks the float32 or
float64 kernel from the dtype number and calls it without the GIL. Everything here is C-level
numpy API: a call costs well under 2 us on top of the kernel.
"""
cimport numpy as cnp
from cython cimport floating
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

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
    void fnn_adam_multi_step_f32(float **param, float **grad, float **m, float **v,
                                 const int64_t *sizes, int64_t count, int64_t step, double lr,
                                 double beta1, double beta2, double eps, double weight_decay,
                                 int decoupled, double grad_scale)
    void fnn_adam_multi_step_f64(double **param, double **grad, double **m, double **v,
                                 const int64_t *sizes, int64_t count, int64_t step, double lr,
                                 double beta1, double beta2, double eps, double weight_decay,
                                 int decoupled, double grad_scale)


# ---------------------------------------------------------------- helpers
# Every C kernel is a pair, fnn_<name>_f32 and fnn_<name>_f64: each wrapper below picks the one
# for its input's dtype. The kernel shapes several wrappers share (unary, binary, rowwise,
# rowwise2) have a helper that allocates the output and makes the call without the GIL. The
# helpers are written once over Cython's fused type `floating`: Cython compiles a float and a
# double copy, and the kernel pointer a wrapper passes selects the copy at compile time. The
# other wrappers (scalar arguments, several outputs) write both calls out in one nogil block,
# with f32()/f64() for the typed data pointers. All of it inlines: no cost per call.
cdef inline bint is_f32(cnp.ndarray a) noexcept nogil:
    return cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32


cdef inline void *ptr(cnp.ndarray a) noexcept nogil:
    return cnp.PyArray_DATA(a)


cdef inline float *f32(cnp.ndarray a) noexcept nogil:
    return <float *>cnp.PyArray_DATA(a)


cdef inline double *f64(cnp.ndarray a) noexcept nogil:
    return <double *>cnp.PyArray_DATA(a)


cdef inline int64_t *i64(cnp.ndarray a) noexcept nogil:
    return <int64_t *>cnp.PyArray_DATA(a)


cdef inline int64_t size(cnp.ndarray a) noexcept nogil:
    return cnp.PyArray_SIZE(a)


cdef inline int64_t dim(cnp.ndarray a, int i) noexcept nogil:
    return cnp.PyArray_DIM(a, i)


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


ctypedef void (*unary_fn)(const floating *, floating *, int64_t) noexcept nogil
ctypedef void (*binary_fn)(const floating *, const floating *, floating *, int64_t) noexcept nogil
ctypedef void (*rowwise_fn)(const floating *, floating *, int64_t, int64_t) noexcept nogil
ctypedef void (*rowwise2_fn)(const floating *, const floating *, floating *, int64_t,
                             int64_t) noexcept nogil


cdef inline cnp.ndarray unary(cnp.ndarray x, unary_fn kernel):
    """kernel(x) -> y, elementwise over all of x."""
    cdef cnp.ndarray y = empty_like(x)
    with nogil:
        kernel(<floating *>ptr(x), <floating *>ptr(y), size(x))
    return y


cdef inline cnp.ndarray binary(cnp.ndarray a, cnp.ndarray b, binary_fn kernel):
    """kernel(a, b) -> out, elementwise, out shaped as a."""
    cdef cnp.ndarray out = empty_like(a)
    with nogil:
        kernel(<floating *>ptr(a), <floating *>ptr(b), <floating *>ptr(out), size(a))
    return out


cdef inline cnp.ndarray rowwise(cnp.ndarray x, rowwise_fn kernel):
    """kernel(x) -> y over the rows of x (rows, cols)."""
    cdef cnp.ndarray y = empty_like(x)
    with nogil:
        kernel(<floating *>ptr(x), <floating *>ptr(y), dim(x, 0), dim(x, 1))
    return y


cdef inline cnp.ndarray rowwise2(cnp.ndarray a, cnp.ndarray b, rowwise2_fn kernel):
    """kernel(a, b) -> out over the rows of a (rows, cols), out shaped as a."""
    cdef cnp.ndarray out = empty_like(a)
    with nogil:
        kernel(<floating *>ptr(a), <floating *>ptr(b), <floating *>ptr(out), dim(a, 0), dim(a, 1))
    return out


# ---------------------------------------------------------------- bias
def bias_add(cnp.ndarray x, cnp.ndarray bias):
    return (rowwise2(x, bias, fnn_bias_add_f32) if is_f32(x) else
            rowwise2(x, bias, fnn_bias_add_f64))


def bias_grad(cnp.ndarray dy):
    cdef int64_t rows = dim(dy, 0), cols = dim(dy, 1)
    cdef cnp.ndarray db = empty_1d(cols, dy)
    cdef int status
    with nogil:
        if is_f32(dy):
            status = fnn_bias_grad_f32(f32(dy), f32(db), rows, cols)
        else:
            status = fnn_bias_grad_f64(f64(dy), f64(db), rows, cols)
    if status:
        raise MemoryError("bias_grad: out of memory for per-thread partial sums")
    return db


# ---------------------------------------------------------------- activations
def relu(cnp.ndarray x):
    return unary(x, fnn_relu_f32) if is_f32(x) else unary(x, fnn_relu_f64)


def relu_backward(cnp.ndarray dy, cnp.ndarray x):
    return (binary(dy, x, fnn_relu_backward_f32) if is_f32(dy) else
            binary(dy, x, fnn_relu_backward_f64))


def leaky_relu(cnp.ndarray x, double negative_slope):
    cdef cnp.ndarray y = empty_like(x)
    with nogil:
        if is_f32(x):
            fnn_leaky_relu_f32(f32(x), f32(y), size(x), negative_slope)
        else:
            fnn_leaky_relu_f64(f64(x), f64(y), size(x), negative_slope)
    return y


def leaky_relu_backward(cnp.ndarray dy, cnp.ndarray x, double negative_slope):
    cdef cnp.ndarray dx = empty_like(dy)
    with nogil:
        if is_f32(dy):
            fnn_leaky_relu_backward_f32(f32(dy), f32(x), f32(dx), size(dy), negative_slope)
        else:
            fnn_leaky_relu_backward_f64(f64(dy), f64(x), f64(dx), size(dy), negative_slope)
    return dx


def sigmoid(cnp.ndarray x):
    return unary(x, fnn_sigmoid_f32) if is_f32(x) else unary(x, fnn_sigmoid_f64)


def sigmoid_backward(cnp.ndarray dy, cnp.ndarray y):
    return (binary(dy, y, fnn_sigmoid_backward_f32) if is_f32(dy) else
            binary(dy, y, fnn_sigmoid_backward_f64))


def tanh(cnp.ndarray x):
    return unary(x, fnn_tanh_f32) if is_f32(x) else unary(x, fnn_tanh_f64)


def tanh_backward(cnp.ndarray dy, cnp.ndarray y):
    return (binary(dy, y, fnn_tanh_backward_f32) if is_f32(dy) else
            binary(dy, y, fnn_tanh_backward_f64))


def gelu(cnp.ndarray x, bint approximate, cnp.ndarray out=None):
    # out: the caller's array to write (trusted.gelu checked it: shape, dtype, no overlap)
    cdef cnp.ndarray y = empty_like(x) if out is None else out
    with nogil:
        if is_f32(x):
            fnn_gelu_f32(f32(x), f32(y), size(x), approximate)
        else:
            fnn_gelu_f64(f64(x), f64(y), size(x), approximate)
    return y


def gelu_backward(cnp.ndarray dy, cnp.ndarray x, bint approximate, cnp.ndarray out=None):
    cdef cnp.ndarray dx = empty_like(dy) if out is None else out
    with nogil:
        if is_f32(dy):
            fnn_gelu_backward_f32(f32(dy), f32(x), f32(dx), size(dy), approximate)
        else:
            fnn_gelu_backward_f64(f64(dy), f64(x), f64(dx), size(dy), approximate)
    return dx


def clamp(cnp.ndarray x, double lo, double hi):
    cdef cnp.ndarray y = empty_like(x)
    with nogil:
        if is_f32(x):
            fnn_clamp_f32(f32(x), f32(y), size(x), lo, hi)
        else:
            fnn_clamp_f64(f64(x), f64(y), size(x), lo, hi)
    return y


def clamp_backward(cnp.ndarray dy, cnp.ndarray x, double lo, double hi):
    cdef cnp.ndarray dx = empty_like(dy)
    with nogil:
        if is_f32(dy):
            fnn_clamp_backward_f32(f32(dy), f32(x), f32(dx), size(dy), lo, hi)
        else:
            fnn_clamp_backward_f64(f64(dy), f64(x), f64(dx), size(dy), lo, hi)
    return dx


# ---------------------------------------------------------------- softmax family
def softmax(cnp.ndarray x):
    return rowwise(x, fnn_softmax_f32) if is_f32(x) else rowwise(x, fnn_softmax_f64)


def softmax_backward(cnp.ndarray dy, cnp.ndarray y):
    return (rowwise2(dy, y, fnn_softmax_backward_f32) if is_f32(dy) else
            rowwise2(dy, y, fnn_softmax_backward_f64))


def log_softmax(cnp.ndarray x):
    return rowwise(x, fnn_log_softmax_f32) if is_f32(x) else rowwise(x, fnn_log_softmax_f64)


def log_softmax_backward(cnp.ndarray dy, cnp.ndarray y):
    return (rowwise2(dy, y, fnn_log_softmax_backward_f32) if is_f32(dy) else
            rowwise2(dy, y, fnn_log_softmax_backward_f64))


def cross_entropy(cnp.ndarray logits, cnp.ndarray targets, int64_t ignore_index,
                  double grad_scale):
    cdef int64_t rows = dim(logits, 0), cols = dim(logits, 1)
    cdef cnp.ndarray losses = empty_1d(rows, logits)
    cdef cnp.ndarray grad = empty_like(logits)
    with nogil:
        if is_f32(logits):
            fnn_cross_entropy_f32(f32(logits), i64(targets), f32(losses), f32(grad), rows, cols,
                                  ignore_index, grad_scale)
        else:
            fnn_cross_entropy_f64(f64(logits), i64(targets), f64(losses), f64(grad), rows, cols,
                                  ignore_index, grad_scale)
    return losses, grad


# ---------------------------------------------------------------- losses
def mse_loss(cnp.ndarray pred, cnp.ndarray target):
    cdef cnp.ndarray grad = empty_like(pred)
    cdef double loss
    with nogil:
        if is_f32(pred):
            loss = fnn_mse_loss_f32(f32(pred), f32(target), f32(grad), size(pred))
        else:
            loss = fnn_mse_loss_f64(f64(pred), f64(target), f64(grad), size(pred))
    return loss, grad


# ---------------------------------------------------------------- layer norm
def layer_norm(cnp.ndarray x, cnp.ndarray weight, cnp.ndarray bias, double eps, out=None):
    # out: None or the caller's (y, mean, rstd) to write (checked by trusted.layer_norm)
    cdef int64_t rows = dim(x, 0), cols = dim(x, 1)
    cdef cnp.ndarray y, mean, rstd
    if out is None:
        y, mean, rstd = empty_like(x), empty_1d(rows, x), empty_1d(rows, x)
    else:
        y, mean, rstd = out
    with nogil:
        if is_f32(x):
            fnn_layer_norm_f32(f32(x), f32(weight), f32(bias), f32(y), f32(mean), f32(rstd),
                               rows, cols, eps)
        else:
            fnn_layer_norm_f64(f64(x), f64(weight), f64(bias), f64(y), f64(mean), f64(rstd),
                               rows, cols, eps)
    return y, mean, rstd


def layer_norm_backward(cnp.ndarray dy, cnp.ndarray x, cnp.ndarray weight, cnp.ndarray mean,
                        cnp.ndarray rstd, cnp.ndarray out=None):
    # out: None or the caller's dx to write (checked by trusted.layer_norm_backward)
    cdef int64_t rows = dim(x, 0), cols = dim(x, 1)
    cdef cnp.ndarray dx = empty_like(x) if out is None else out
    cdef cnp.ndarray dw = empty_1d(cols, x)
    cdef cnp.ndarray db = empty_1d(cols, x)
    cdef int status
    with nogil:
        if is_f32(x):
            status = fnn_layer_norm_backward_f32(f32(dy), f32(x), f32(weight), f32(mean),
                                                 f32(rstd), f32(dx), f32(dw), f32(db), rows, cols)
        else:
            status = fnn_layer_norm_backward_f64(f64(dy), f64(x), f64(weight), f64(mean),
                                                 f64(rstd), f64(dx), f64(dw), f64(db), rows, cols)
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
    with nogil:
        if is_f32(weight):
            fnn_embedding_f32(f32(weight), i64(ids), f32(out), n, cols)
        else:
            fnn_embedding_f64(f64(weight), i64(ids), f64(out), n, cols)
    return out


def embedding_backward(cnp.ndarray dout, cnp.ndarray ids, int64_t num_embeddings):
    cdef int64_t n = dim(dout, 0), cols = dim(dout, 1)
    cdef cnp.ndarray dweight = zeros_2d(num_embeddings, cols, dout)
    with nogil:
        if is_f32(dout):
            fnn_embedding_backward_f32(f32(dout), i64(ids), f32(dweight), n, cols)
        else:
            fnn_embedding_backward_f64(f64(dout), i64(ids), f64(dweight), n, cols)
    return dweight


# ---------------------------------------------------------------- optimizers (in place)
def sgd_step(cnp.ndarray param, cnp.ndarray grad, cnp.ndarray buf, double lr, double momentum,
             double dampening, bint nesterov, double weight_decay, bint first):
    with nogil:
        if is_f32(param):
            fnn_sgd_step_f32(f32(param), f32(grad), f32(buf), size(param), lr, momentum,
                             dampening, nesterov, weight_decay, first)
        else:
            fnn_sgd_step_f64(f64(param), f64(grad), f64(buf), size(param), lr, momentum,
                             dampening, nesterov, weight_decay, first)


def adam_step(cnp.ndarray param, cnp.ndarray grad, cnp.ndarray m, cnp.ndarray v, int64_t step,
              double lr, double beta1, double beta2, double eps, double weight_decay,
              bint decoupled):
    with nogil:
        if is_f32(param):
            fnn_adam_step_f32(f32(param), f32(grad), f32(m), f32(v), size(param), step, lr,
                              beta1, beta2, eps, weight_decay, decoupled)
        else:
            fnn_adam_step_f64(f64(param), f64(grad), f64(m), f64(v), size(param), step, lr,
                              beta1, beta2, eps, weight_decay, decoupled)


def adam_multi_step(list params, list grads, list ms, list vs, int64_t step, double lr,
                    double beta1, double beta2, double eps, double weight_decay, bint decoupled,
                    double grad_scale):
    cdef Py_ssize_t count = len(params), k
    cdef void **ptrs = <void **>malloc(4 * count * sizeof(void *) + 1)
    cdef int64_t *sizes = <int64_t *>malloc(count * sizeof(int64_t) + 1)
    cdef bint single = count == 0 or is_f32(<cnp.ndarray>params[0])
    if ptrs == NULL or sizes == NULL:
        free(ptrs)
        free(sizes)
        raise MemoryError()
    try:
        for k in range(count):
            ptrs[k] = ptr(<cnp.ndarray>params[k])
            ptrs[count + k] = ptr(<cnp.ndarray>grads[k])
            ptrs[2 * count + k] = ptr(<cnp.ndarray>ms[k])
            ptrs[3 * count + k] = ptr(<cnp.ndarray>vs[k])
            sizes[k] = size(<cnp.ndarray>params[k])
        with nogil:
            if single:
                fnn_adam_multi_step_f32(<float **>ptrs, <float **>ptrs + count,
                                        <float **>ptrs + 2 * count, <float **>ptrs + 3 * count,
                                        sizes, count, step, lr, beta1, beta2, eps, weight_decay,
                                        decoupled, grad_scale)
            else:
                fnn_adam_multi_step_f64(<double **>ptrs, <double **>ptrs + count,
                                        <double **>ptrs + 2 * count, <double **>ptrs + 3 * count,
                                        sizes, count, step, lr, beta1, beta2, eps, weight_decay,
                                        decoupled, grad_scale)
    finally:
        free(ptrs)
        free(sizes)
