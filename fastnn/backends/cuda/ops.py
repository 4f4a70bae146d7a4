"""CUDA kernels: bias, activations, softmax family, losses, layer norm, embedding, optimizers.

See fastnn/backends/reference.py for the math. Three kernel shapes:
  - elementwise: a grid-stride loop, any grid size covers any n;
  - row kernels (softmax, log_softmax, cross_entropy, layer_norm and backwards): one block per
    row, threads stride over the row's columns, shared-memory tree reductions (common.py);
  - column sums (bias_grad, layer_norm's dweight/dbias): blocks of (columns x row lanes) write
    per-block partial sums, then one more pass adds the partials (no atomics: deterministic).

Every kernel NAME has NAME_device(...) taking device arrays in place of host arrays (what the
benchmark times); NAME(...) itself copies in, calls it, and copies out.
"""
import functools
import math
import types

import numpy as np
from numba import cuda

from .common import (block_max, block_sum, block_sum2, device_empty, grid_1d, launch,
                          launch_config, row_threads, scalar, sm_count, to_device, to_host)



def host_call(device_fn, *args, inplace=()):
    """Run a NAME_device function on host arrays: copy arrays in, results (and args[i] for i in
    `inplace`) back out."""
    d_args = [to_device(a) if isinstance(a, np.ndarray) else a for a in args]
    result = device_fn(*d_args)
    for i in inplace:
        if args[i].size:
            to_host(d_args[i], args[i])
    if isinstance(result, tuple):
        return tuple(to_host(r) if hasattr(r, "copy_to_host") else r for r in result)
    if result is not None and hasattr(result, "copy_to_host"):
        return to_host(result)
    return result


# ---------------------------------------------------------------- elementwise kernels
@functools.cache
def _elementwise(dtype):
    zero, half, one, three = (dtype(v) for v in (0, 0.5, 1, 3))
    sqrt_2_over_pi = dtype(math.sqrt(2.0 / math.pi))
    inv_sqrt_2 = dtype(1 / math.sqrt(2.0))
    inv_sqrt_2pi = dtype(1 / math.sqrt(2 * math.pi))
    gelu_c = dtype(0.044715)

    @cuda.jit
    def bias_add(x, bias, out):               # x, out (N, C) flattened; bias (C,)
        c = bias.size
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            out[i] = x[i] + bias[i % c]

    @cuda.jit
    def relu(x, out):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            v = x[i]
            out[i] = zero if v < zero else v  # NaN stays NaN, as np.maximum

    @cuda.jit
    def relu_backward(dy, x, out):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            out[i] = dy[i] * (one if x[i] > zero else zero)  # NaN/inf dy * 0 is NaN, as numpy

    @cuda.jit
    def leaky_relu(x, out, slope):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            out[i] = x[i] if x[i] > zero else x[i] * slope

    @cuda.jit
    def leaky_relu_backward(dy, x, out, slope):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            out[i] = dy[i] if x[i] > zero else dy[i] * slope

    @cuda.jit
    def sigmoid(x, out):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            e = math.exp(-abs(x[i]))           # exp(-|x|) never overflows
            out[i] = one / (one + e) if x[i] >= zero else e / (one + e)

    @cuda.jit
    def sigmoid_backward(dy, y, out):
        for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            out[i] = dy[i] * y[i] * (one - y[i])

    @cuda.jit
    def tanh(x, out):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            out[i] = math.tanh(x[i])

    @cuda.jit
    def tanh_backward(dy, y, out):
        for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            out[i] = dy[i] * (one - y[i] * y[i])

    @cuda.jit
    def gelu(x, out, approximate):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            v = x[i]
            if approximate:
                out[i] = half * v * (one + math.tanh(sqrt_2_over_pi * (v + gelu_c * v * v * v)))
            else:
                out[i] = half * v * (one + math.erf(v * inv_sqrt_2))

    @cuda.jit
    def gelu_backward(dy, x, out, approximate):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            v = x[i]
            if approximate:
                t = math.tanh(sqrt_2_over_pi * (v + gelu_c * v * v * v))
                du = sqrt_2_over_pi * (one + three * gelu_c * v * v)
                out[i] = dy[i] * (half * (one + t) + half * v * (one - t * t) * du)
            else:
                cdf = half * (one + math.erf(v * inv_sqrt_2))
                pdf = math.exp(-half * v * v) * inv_sqrt_2pi
                out[i] = dy[i] * (cdf + v * pdf)

    @cuda.jit
    def clamp(x, out, lo, hi):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            v = x[i]
            v = lo if v < lo else v           # NaN fails both tests: it passes through
            out[i] = hi if v > hi else v      # lo > hi: everything ends at hi, as torch.clamp

    @cuda.jit
    def clamp_backward(dy, x, out, lo, hi):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            v = x[i]
            out[i] = dy[i] if lo <= v and v <= hi else zero   # a select: NaN/inf dy gives 0

    @cuda.jit
    def embedding(weight, ids, out):          # out (N, C) flattened; row i is weight[ids[i]]
        c = weight.shape[1]
        for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            i = e // c
            out[e] = weight[ids[i], e - i * c]

    @cuda.jit
    def fill_zero(x):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            x[i] = zero

    @cuda.jit
    def embedding_scatter_add(dout, ids, dweight):   # dweight[ids[i], :] += dout[i, :]
        c = dout.shape[1]
        for e in range(cuda.grid(1), dout.size, cuda.gridsize(1)):
            i = e // c
            j = e - i * c
            cuda.atomic.add(dweight, (ids[i], j), dout[i, j])

    @cuda.jit
    def sgd_step(param, grad, buf, lr, momentum, one_minus_dampening, nesterov, weight_decay,
                 first):
        for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
            d = grad[i]
            if weight_decay != zero:
                d = d + weight_decay * param[i]
            if momentum != zero:
                if first:
                    b = d
                else:
                    b = momentum * buf[i] + one_minus_dampening * d
                buf[i] = b
                d = d + momentum * b if nesterov else b
            param[i] -= lr * d

    @cuda.jit
    def adam_step(param, grad, m, v, lr_over_bc1, sqrt_bc2, beta1, one_minus_beta1, beta2,
                  one_minus_beta2, eps, weight_decay, decay_factor, decoupled, grad_scale):
        for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
            p = param[i]
            g = grad[i] * grad_scale          # 1 unless clipping is folded in
            if decoupled:
                p = p * decay_factor          # AdamW: param *= 1 - lr * weight_decay
            elif weight_decay != zero:
                g = g + weight_decay * p      # Adam: L2 added to the gradient
            mi = beta1 * m[i] + one_minus_beta1 * g
            vi = beta2 * v[i] + one_minus_beta2 * g * g
            m[i] = mi
            v[i] = vi
            param[i] = p - lr_over_bc1 * mi / (math.sqrt(vi) / sqrt_bc2 + eps)

    return types.SimpleNamespace(
        bias_add=bias_add, relu=relu, relu_backward=relu_backward, leaky_relu=leaky_relu,
        leaky_relu_backward=leaky_relu_backward, sigmoid=sigmoid,
        sigmoid_backward=sigmoid_backward, tanh=tanh, tanh_backward=tanh_backward, gelu=gelu,
        gelu_backward=gelu_backward, clamp=clamp, clamp_backward=clamp_backward,
        embedding=embedding, fill_zero=fill_zero,
        embedding_scatter_add=embedding_scatter_add, sgd_step=sgd_step, adam_step=adam_step)


@functools.cache
def _mse_kernel(dtype, threads):
    zero = dtype(0)

    @cuda.jit
    def mse_loss(pred, target, grad, partial, two_over_n):
        """grad = 2 (pred - target) / n; partial[block] = this block's sum of squared diffs."""
        buf = cuda.shared.array(threads, dtype)
        acc = zero
        for i in range(cuda.grid(1), pred.size, cuda.gridsize(1)):
            d = pred[i] - target[i]
            grad[i] = d * two_over_n
            acc += d * d
        total = block_sum(buf, acc)
        if cuda.threadIdx.x == 0:
            partial[cuda.blockIdx.x] = total

    return mse_loss


def _elementwise_call(name, n, dtype, *args):
    blocks, threads = grid_1d(n)
    launch(getattr(_elementwise(np.dtype(dtype).type), name), blocks, threads, *args)


def _unary_device(name, x, *scalars):
    out = device_empty(x.shape, x.dtype)
    _elementwise_call(name, x.size, x.dtype, x, out, *scalars)
    return out


def _binary_device(name, dy, saved, *scalars):
    out = device_empty(dy.shape, dy.dtype)
    _elementwise_call(name, dy.size, dy.dtype, dy, saved, out, *scalars)
    return out


def bias_add_device(x, bias):
    out = device_empty(x.shape, x.dtype)
    _elementwise_call("bias_add", x.size, x.dtype, x.reshape(-1), bias, out.reshape(-1))
    return out


def relu_device(x):
    return _unary_device("relu", x)


def relu_backward_device(dy, x):
    return _binary_device("relu_backward", dy, x)


def leaky_relu_device(x, negative_slope):
    return _unary_device("leaky_relu", x, scalar(x.dtype, negative_slope))


def leaky_relu_backward_device(dy, x, negative_slope):
    return _binary_device("leaky_relu_backward", dy, x, scalar(x.dtype, negative_slope))


def sigmoid_device(x):
    return _unary_device("sigmoid", x)


def sigmoid_backward_device(dy, y):
    return _binary_device("sigmoid_backward", dy, y)


def tanh_device(x):
    return _unary_device("tanh", x)


def tanh_backward_device(dy, y):
    return _binary_device("tanh_backward", dy, y)


def gelu_device(x, approximate):
    return _unary_device("gelu", x, bool(approximate))


def gelu_backward_device(dy, x, approximate):
    return _binary_device("gelu_backward", dy, x, bool(approximate))


def clamp_device(x, lo, hi):
    return _unary_device("clamp", x, scalar(x.dtype, lo), scalar(x.dtype, hi))


def clamp_backward_device(dy, x, lo, hi):
    return _binary_device("clamp_backward", dy, x, scalar(x.dtype, lo), scalar(x.dtype, hi))


def mse_loss_device(pred, target):
    """Returns (loss as a host float, grad on the device)."""
    blocks, threads = grid_1d(pred.size)
    grad = device_empty(pred.shape, pred.dtype)
    partial = device_empty(blocks, pred.dtype)
    n = max(pred.size, 1)
    launch(_mse_kernel(pred.dtype.type, threads), blocks, threads, pred, target, grad, partial,
           scalar(pred.dtype, 2.0 / n))
    loss = to_host(partial).sum(dtype=np.float64) / n
    return pred.dtype.type(loss), grad


def embedding_device(weight, ids):
    out = device_empty((ids.size, weight.shape[1]), weight.dtype)
    _elementwise_call("embedding", out.size, weight.dtype, weight, ids, out.reshape(-1))
    return out


def embedding_backward_device(dout, ids, num_embeddings):
    dweight = device_empty((num_embeddings, dout.shape[1]), dout.dtype)
    _elementwise_call("fill_zero", dweight.size, dout.dtype, dweight.reshape(-1))
    _elementwise_call("embedding_scatter_add", dout.size, dout.dtype, dout, ids, dweight)
    return dweight


def sgd_step_device(param, grad, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    dt = param.dtype
    _elementwise_call("sgd_step", param.size, dt, param, grad, buf, scalar(dt, lr),
                      scalar(dt, momentum), scalar(dt, 1 - dampening), bool(nesterov),
                      scalar(dt, weight_decay), bool(first))


def adam_step_device(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled,
                     grad_scale=1.0):
    dt = param.dtype
    bc1 = 1 - beta1 ** step
    bc2 = 1 - beta2 ** step
    _elementwise_call("adam_step", param.size, dt, param, grad, m, v, scalar(dt, lr / bc1),
                      scalar(dt, math.sqrt(bc2)), scalar(dt, beta1), scalar(dt, 1 - beta1),
                      scalar(dt, beta2), scalar(dt, 1 - beta2), scalar(dt, eps),
                      scalar(dt, weight_decay), scalar(dt, 1 - lr * weight_decay),
                      bool(decoupled), scalar(dt, grad_scale))


# adam_multi_step (one launch over every tensor) is in fused.py.


# ---------------------------------------------------------------- row kernels (one block per row)
@functools.cache
def _row_kernels(dtype, max_threads):
    zero, one = dtype(0), dtype(1)
    neg_inf = dtype(-np.inf)

    @cuda.jit(device=True)
    def row_max_and_sumexp(x, row, buf):
        """max of x[row, :] and sum(exp(x[row, :] - max)), one online pass per thread."""
        m = neg_inf
        s = zero
        for j in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
            v = x[row, j]
            if v > m:
                s = s * math.exp(m - v) + one
                m = v
            elif v != neg_inf:   # -inf adds nothing (and exp(-inf - -inf) would be NaN)
                s += math.exp(v - m)
        row_max = block_max(buf, m)
        # a thread that saw no column has m = -inf and s = 0: exp(-inf) * 0 adds nothing
        scaled = s * math.exp(m - row_max) if s != zero else zero
        return row_max, block_sum(buf, scaled)

    @cuda.jit
    def softmax(x, out):
        buf = cuda.shared.array(max_threads, dtype)
        row = cuda.blockIdx.x
        mx, total = row_max_and_sumexp(x, row, buf)
        inv = one / total
        for j in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
            out[row, j] = math.exp(x[row, j] - mx) * inv

    @cuda.jit
    def log_softmax(x, out):
        buf = cuda.shared.array(max_threads, dtype)
        row = cuda.blockIdx.x
        mx, total = row_max_and_sumexp(x, row, buf)
        log_total = math.log(total)
        for j in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
            out[row, j] = (x[row, j] - mx) - log_total   # subtract the max first: exact for
                                                          # large logits, as the reference

    @cuda.jit
    def softmax_backward(dy, y, out):         # dx = y * (dy - sum(dy * y))
        buf = cuda.shared.array(max_threads, dtype)
        row = cuda.blockIdx.x
        acc = zero
        for j in range(cuda.threadIdx.x, y.shape[1], cuda.blockDim.x):
            acc += dy[row, j] * y[row, j]
        dot = block_sum(buf, acc)
        for j in range(cuda.threadIdx.x, y.shape[1], cuda.blockDim.x):
            out[row, j] = y[row, j] * (dy[row, j] - dot)

    @cuda.jit
    def log_softmax_backward(dy, y, out):     # dx = dy - exp(y) * sum(dy)
        buf = cuda.shared.array(max_threads, dtype)
        row = cuda.blockIdx.x
        acc = zero
        for j in range(cuda.threadIdx.x, y.shape[1], cuda.blockDim.x):
            acc += dy[row, j]
        total = block_sum(buf, acc)
        for j in range(cuda.threadIdx.x, y.shape[1], cuda.blockDim.x):
            out[row, j] = dy[row, j] - math.exp(y[row, j]) * total

    @cuda.jit
    def cross_entropy(logits, targets, losses, grad, ignore_index, grad_scale):
        """losses[row] = logsumexp - logits[target]; grad = scale * (softmax - onehot), or 0s."""
        buf = cuda.shared.array(max_threads, dtype)
        row = cuda.blockIdx.x
        target = targets[row]
        if target == ignore_index:
            for j in range(cuda.threadIdx.x, logits.shape[1], cuda.blockDim.x):
                grad[row, j] = zero
            if cuda.threadIdx.x == 0:
                losses[row] = zero
            return                             # uniform across the block: no barrier skipped
        mx, total = row_max_and_sumexp(logits, row, buf)
        inv = one / total
        for j in range(cuda.threadIdx.x, logits.shape[1], cuda.blockDim.x):
            p = math.exp(logits[row, j] - mx) * inv
            if j == target:
                p -= one
            grad[row, j] = p * grad_scale
        if cuda.threadIdx.x == 0:
            losses[row] = math.log(total) - (logits[row, target] - mx)

    @cuda.jit
    def layer_norm(x, weight, bias, eps, y, mean, rstd):
        buf = cuda.shared.array(max_threads, dtype)
        row = cuda.blockIdx.x
        c = x.shape[1]
        inv_c = one / dtype(c)
        acc = zero
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            acc += x[row, j]
        mu = block_sum(buf, acc) * inv_c
        acc = zero                             # two passes: var from (x - mean)^2 stays >= 0
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            d = x[row, j] - mu
            acc += d * d
        r = one / math.sqrt(block_sum(buf, acc) * inv_c + eps)
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            y[row, j] = (x[row, j] - mu) * r * weight[j] + bias[j]
        if cuda.threadIdx.x == 0:
            mean[row] = mu
            rstd[row] = r

    @cuda.jit
    def layer_norm_backward_dx(dy, x, weight, mean, rstd, dx):
        """dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * weight."""
        buf_a = cuda.shared.array(max_threads, dtype)
        buf_b = cuda.shared.array(max_threads, dtype)
        row = cuda.blockIdx.x
        c = x.shape[1]
        mu = mean[row]
        r = rstd[row]
        acc_g = zero
        acc_gx = zero
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            g = dy[row, j] * weight[j]
            acc_g += g
            acc_gx += g * (x[row, j] - mu) * r
        sum_g, sum_gx = block_sum2(buf_a, buf_b, acc_g, acc_gx)
        inv_c = one / dtype(c)
        mean_g = sum_g * inv_c
        mean_gx = sum_gx * inv_c
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            xhat = (x[row, j] - mu) * r
            dx[row, j] = r * (dy[row, j] * weight[j] - mean_g - xhat * mean_gx)

    return types.SimpleNamespace(
        softmax=softmax, log_softmax=log_softmax, softmax_backward=softmax_backward,
        log_softmax_backward=log_softmax_backward, cross_entropy=cross_entropy,
        layer_norm=layer_norm, layer_norm_backward_dx=layer_norm_backward_dx)


def _row_launch(name, x, *args):
    max_threads = launch_config().row_threads
    kernel = getattr(_row_kernels(x.dtype.type, max_threads), name)
    launch(kernel, x.shape[0], row_threads(x.shape[1]), x, *args)


def softmax_device(x):
    out = device_empty(x.shape, x.dtype)
    _row_launch("softmax", x, out)
    return out


def log_softmax_device(x):
    out = device_empty(x.shape, x.dtype)
    _row_launch("log_softmax", x, out)
    return out


def softmax_backward_device(dy, y):
    out = device_empty(y.shape, y.dtype)
    _row_launch("softmax_backward", dy, y, out)
    return out


def log_softmax_backward_device(dy, y):
    out = device_empty(y.shape, y.dtype)
    _row_launch("log_softmax_backward", dy, y, out)
    return out


def cross_entropy_device(logits, targets, ignore_index, grad_scale):
    losses = device_empty(logits.shape[0], logits.dtype)
    grad = device_empty(logits.shape, logits.dtype)
    _row_launch("cross_entropy", logits, targets, losses, grad, np.int64(ignore_index),
                scalar(logits.dtype, grad_scale))
    return losses, grad


def layer_norm_device(x, weight, bias, eps):
    y = device_empty(x.shape, x.dtype)
    mean = device_empty(x.shape[0], x.dtype)
    rstd = device_empty(x.shape[0], x.dtype)
    _row_launch("layer_norm", x, weight, bias, scalar(x.dtype, eps), y, mean, rstd)
    return y, mean, rstd


# ---------------------------------------------------------------- column sums
@functools.cache
def _column_kernels(dtype, cols, lanes):
    """Blocks of (cols x lanes) threads; block (bx, by) covers columns bx*cols.. and every
    (gridDim.y * lanes)-th row from by*lanes + lane, and writes partial[by, column]."""
    zero = dtype(0)
    shape = (lanes, cols)

    @cuda.jit
    def column_sums(x, partial):
        buf = cuda.shared.array(shape, dtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        col = cuda.blockIdx.x * cols + tx
        acc = zero
        if col < x.shape[1]:
            for row in range(cuda.blockIdx.y * lanes + ty, x.shape[0], cuda.gridDim.y * lanes):
                acc += x[row, col]
        buf[ty, tx] = acc
        cuda.syncthreads()
        if ty == 0 and col < x.shape[1]:
            for lane in range(1, lanes):
                acc += buf[lane, tx]
            partial[cuda.blockIdx.y, col] = acc

    @cuda.jit
    def layer_norm_param_grads(dy, x, mean, rstd, partial_dweight, partial_dbias):
        """Partial column sums of dy * xhat (dweight) and of dy (dbias)."""
        buf_w = cuda.shared.array(shape, dtype)
        buf_b = cuda.shared.array(shape, dtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        col = cuda.blockIdx.x * cols + tx
        acc_w = zero
        acc_b = zero
        if col < x.shape[1]:
            for row in range(cuda.blockIdx.y * lanes + ty, x.shape[0], cuda.gridDim.y * lanes):
                g = dy[row, col]
                acc_w += g * (x[row, col] - mean[row]) * rstd[row]
                acc_b += g
        buf_w[ty, tx] = acc_w
        buf_b[ty, tx] = acc_b
        cuda.syncthreads()
        if ty == 0 and col < x.shape[1]:
            for lane in range(1, lanes):
                acc_w += buf_w[lane, tx]
                acc_b += buf_b[lane, tx]
            partial_dweight[cuda.blockIdx.y, col] = acc_w
            partial_dbias[cuda.blockIdx.y, col] = acc_b

    return types.SimpleNamespace(column_sums=column_sums,
                                 layer_norm_param_grads=layer_norm_param_grads)


def _column_setup(dtype, n_rows, n_cols):
    cols, lanes = launch_config().col_threads
    col_blocks = (n_cols + cols - 1) // cols
    splits = max(1, min((n_rows + lanes - 1) // lanes, (4 * sm_count()) // col_blocks, 1024))
    return (col_blocks, splits), (cols, lanes), _column_kernels(np.dtype(dtype).type, cols, lanes)


def _sum_partials(partial):
    """Column sums of a (splits, C) partial-sum array -> (C,) on the device."""
    if partial.shape[0] == 1:
        return partial.reshape(partial.shape[1])
    grid, block, kernels = _column_setup(partial.dtype, partial.shape[0], partial.shape[1])
    out = device_empty((1, partial.shape[1]), partial.dtype)
    launch(kernels.column_sums, (grid[0], 1), block, partial, out)
    return out.reshape(partial.shape[1])


def bias_grad_device(dy):
    grid, block, kernels = _column_setup(dy.dtype, dy.shape[0], dy.shape[1])
    partial = device_empty((grid[1], dy.shape[1]), dy.dtype)
    launch(kernels.column_sums, grid, block, dy, partial)
    return _sum_partials(partial)


def layer_norm_backward_device(dy, x, weight, mean, rstd):
    dx = device_empty(x.shape, x.dtype)
    _row_launch("layer_norm_backward_dx", dy, x, weight, mean, rstd, dx)
    grid, block, kernels = _column_setup(x.dtype, x.shape[0], x.shape[1])
    partial_dw = device_empty((grid[1], x.shape[1]), x.dtype)
    partial_db = device_empty((grid[1], x.shape[1]), x.dtype)
    launch(kernels.layer_norm_param_grads, grid, block, dy, x, mean, rstd, partial_dw, partial_db)
    return dx, _sum_partials(partial_dw), _sum_partials(partial_db)


# ---------------------------------------------------------------- host entry points
def bias_add(x, bias):
    return host_call(bias_add_device, x, bias)


def bias_grad(dy):
    return host_call(bias_grad_device, dy)


def relu(x):
    return host_call(relu_device, x)


def relu_backward(dy, x):
    return host_call(relu_backward_device, dy, x)


def leaky_relu(x, negative_slope):
    return host_call(leaky_relu_device, x, negative_slope)


def leaky_relu_backward(dy, x, negative_slope):
    return host_call(leaky_relu_backward_device, dy, x, negative_slope)


def sigmoid(x):
    return host_call(sigmoid_device, x)


def sigmoid_backward(dy, y):
    return host_call(sigmoid_backward_device, dy, y)


def tanh(x):
    return host_call(tanh_device, x)


def tanh_backward(dy, y):
    return host_call(tanh_backward_device, dy, y)


def gelu(x, approximate):
    return host_call(gelu_device, x, approximate)


def gelu_backward(dy, x, approximate):
    return host_call(gelu_backward_device, dy, x, approximate)


def clamp(x, lo, hi):
    return host_call(clamp_device, x, lo, hi)


def clamp_backward(dy, x, lo, hi):
    return host_call(clamp_backward_device, dy, x, lo, hi)


def softmax(x):
    return host_call(softmax_device, x)


def softmax_backward(dy, y):
    return host_call(softmax_backward_device, dy, y)


def log_softmax(x):
    return host_call(log_softmax_device, x)


def log_softmax_backward(dy, y):
    return host_call(log_softmax_backward_device, dy, y)


def cross_entropy(logits, targets, ignore_index, grad_scale):
    return host_call(cross_entropy_device, logits, targets, ignore_index, grad_scale)


def mse_loss(pred, target):
    return host_call(mse_loss_device, pred, target)


def layer_norm(x, weight, bias, eps):
    return host_call(layer_norm_device, x, weight, bias, eps)


def layer_norm_backward(dy, x, weight, mean, rstd):
    return host_call(layer_norm_backward_device, dy, x, weight, mean, rstd)


def embedding(weight, ids):
    return host_call(embedding_device, weight, ids)


def embedding_backward(dout, ids, num_embeddings):
    return host_call(embedding_backward_device, dout, ids, num_embeddings)


def sgd_step(param, grad, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    host_call(sgd_step_device, param, grad, buf, lr, momentum, dampening, nesterov, weight_decay,
              first, inplace=(0, 2) if momentum != 0 else (0,))


def adam_step(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled):
    host_call(adam_step_device, param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay,
              decoupled, inplace=(0, 2, 3))
