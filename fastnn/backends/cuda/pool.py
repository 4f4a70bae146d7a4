"""CUDA kernels: 2-D pooling and channel normalization (batch_norm, group_norm).

Semantics: fastnn/kernels/families/pool.py and norm2d.py; the oracle: backends/numpy/pool.py.
Simple kernels:
  - pooling forward: one thread per output element (a grid-stride loop over planes x outputs);
  - average pooling backward: one thread per input element, gathering from the outputs whose
    windows cover it, in output order (so the sums match the CPU scatter-adds); max pooling
    backward: one thread per output, an atomic add at its saved index (the only atomics);
  - batch norm: one block per channel, shared-memory tree sums (common.block_sum) over its
    n * l values; group norm: one block per (sample, group) for the statistics and dx, one
    block per channel for dweight and dbias.

Every kernel NAME has NAME_device(...) on device arrays; NAME(...) copies in and out.
"""
import functools
import math
import types

import numpy as np
from numba import cuda

from .common import (block_sum, block_sum2, device_empty, grid_1d, launch, launch_config,
                     row_threads, to_device, to_host)


def _host(device_fn, *args):
    d_args = [to_device(a) if isinstance(a, np.ndarray) else a for a in args]
    result = device_fn(*d_args)
    if isinstance(result, tuple):
        return tuple(to_host(r) for r in result)
    return to_host(result)


# ================================================================ pooling
@functools.cache
def _pool_kernels(dtype):
    zero = dtype(0)
    neg_inf = dtype(-np.inf)

    @cuda.jit
    def max_pool(x, y, idx, kh, kw, sh, sw, ph, pw, dh, dw):
        h, w = x.shape[1], x.shape[2]
        oh, ow = y.shape[1], y.shape[2]
        for t in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            b = t // (oh * ow)
            i = (t // ow) % oh
            j = t % ow
            r0 = i * sh - ph
            r1 = min(r0 + (kh - 1) * dh + 1, h)
            while r0 < 0:
                r0 += dh
            c0 = j * sw - pw
            c1 = min(c0 + (kw - 1) * dw + 1, w)
            while c0 < 0:
                c0 += dw
            best = neg_inf
            at = r0 * w + c0
            for r in range(r0, r1, dh):
                for c in range(c0, c1, dw):
                    v = x[b, r, c]
                    if v > best or v != v:          # first maximum wins; NaN wins
                        best = v
                        at = r * w + c
            y[b, i, j] = best
            idx[b, i, j] = at

    @cuda.jit
    def fill_zero(out):
        for t in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            out[t] = zero

    @cuda.jit
    def max_pool_backward(dy, idx, dx):
        """dy (B, oh*ow) added into dx (B, h*w) at the saved indices (atomics: windows overlap
        when stride < kernel); an index past the plane adds nothing."""
        n_out = dy.shape[1]
        for t in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
            b = t // n_out
            at = idx[b, t % n_out]
            if at < dx.shape[1]:
                cuda.atomic.add(dx, (b, at), dy[b, t % n_out])

    @cuda.jit(device=True)
    def divisor(i, j, h, w, kh, kw, sh, sw, ph, pw, cip, div):
        """(divisor, empty) of output (i, j), PyTorch's rule (see pool.py)."""
        a = i * sh - ph
        e = min(a + kh, h + ph)
        padded_h = e - a
        r0, r1 = max(a, 0), min(e, h)
        a = j * sw - pw
        e = min(a + kw, w + pw)
        padded_w = e - a
        c0, c1 = max(a, 0), min(e, w)
        if div != 0:
            d = div
        elif cip:
            d = padded_h * padded_w
        else:
            d = (r1 - r0) * (c1 - c0)
        return d, r0, r1, c0, c1

    @cuda.jit
    def avg_pool(x, y, kh, kw, sh, sw, ph, pw, cip, div):
        h, w = x.shape[1], x.shape[2]
        oh, ow = y.shape[1], y.shape[2]
        for t in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            b = t // (oh * ow)
            i = (t // ow) % oh
            j = t % ow
            d, r0, r1, c0, c1 = divisor(i, j, h, w, kh, kw, sh, sw, ph, pw, cip, div)
            if r0 >= r1 or c0 >= c1:
                y[b, i, j] = zero
                continue
            s = zero
            for r in range(r0, r1):
                for c in range(c0, c1):
                    s += x[b, r, c]
            y[b, i, j] = s / dtype(d)

    @cuda.jit
    def avg_pool_backward(dy, dx, kh, kw, sh, sw, ph, pw, cip, div):
        h, w = dx.shape[1], dx.shape[2]
        oh, ow = dy.shape[1], dy.shape[2]
        for t in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
            b = t // (h * w)
            r = (t // w) % h
            c = t % w
            i0 = max(0, (r + ph - kh + 1 + sh - 1) // sh)   # windows [i sh - ph, +kh) over r
            i1 = min(oh, (r + ph) // sh + 1)
            j0 = max(0, (c + pw - kw + 1 + sw - 1) // sw)
            j1 = min(ow, (c + pw) // sw + 1)
            acc = zero
            for i in range(i0, i1):
                for j in range(j0, j1):
                    d, r0, r1, c0, c1 = divisor(i, j, h, w, kh, kw, sh, sw, ph, pw, cip, div)
                    acc += dy[b, i, j] / dtype(d)
            dx[b, r, c] = acc

    @cuda.jit
    def adaptive(x, y):
        h, w = x.shape[1], x.shape[2]
        oh, ow = y.shape[1], y.shape[2]
        for t in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            b = t // (oh * ow)
            i = (t // ow) % oh
            j = t % ow
            r0, r1 = i * h // oh, ((i + 1) * h + oh - 1) // oh
            c0, c1 = j * w // ow, ((j + 1) * w + ow - 1) // ow
            s = zero
            for r in range(r0, r1):
                for c in range(c0, c1):
                    s += x[b, r, c]
            y[b, i, j] = s / dtype((r1 - r0) * (c1 - c0))

    @cuda.jit
    def adaptive_backward(dy, dx):
        h, w = dx.shape[1], dx.shape[2]
        oh, ow = dy.shape[1], dy.shape[2]
        for t in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
            b = t // (h * w)
            r = (t // w) % h
            c = t % w
            acc = zero
            # window i covers r only for i in [r oh // h, (r + 1) oh // h]
            for i in range(r * oh // h, min(oh, (r + 1) * oh // h + 1)):
                r0, r1 = i * h // oh, ((i + 1) * h + oh - 1) // oh
                if r < r0 or r >= r1:
                    continue
                for j in range(c * ow // w, min(ow, (c + 1) * ow // w + 1)):
                    c0, c1 = j * w // ow, ((j + 1) * w + ow - 1) // ow
                    if c < c0 or c >= c1:
                        continue
                    acc += dy[b, i, j] / dtype((r1 - r0) * (c1 - c0))
            dx[b, r, c] = acc

    return types.SimpleNamespace(max_pool=max_pool, max_pool_backward=max_pool_backward, fill_zero=fill_zero,
                                 avg_pool=avg_pool, avg_pool_backward=avg_pool_backward,
                                 adaptive=adaptive, adaptive_backward=adaptive_backward)


def _pool_launch(name, n, dtype, *args):
    blocks, threads = grid_1d(n)
    launch(getattr(_pool_kernels(np.dtype(dtype).type), name), blocks, threads, *args)


def max_pool2d_device(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    y = device_empty((x.shape[0], oh, ow), x.dtype)
    idx = device_empty((x.shape[0], oh, ow), np.int64)
    _pool_launch("max_pool", y.size, x.dtype, x, y, idx, kh, kw, sh, sw, ph, pw, dh, dw)
    return y, idx


def max_pool2d_backward_device(dy, indices, h, w):
    b = dy.shape[0]
    dx = device_empty((b, h * w), dy.dtype)
    _pool_launch("fill_zero", dx.size, dy.dtype, dx.reshape(dx.size))
    _pool_launch("max_pool_backward", dy.size, dy.dtype, dy.reshape((b, dy.size // b)),
                 indices.reshape((b, dy.size // b)), dx)
    return dx.reshape((b, h, w))


def avg_pool2d_device(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad, divisor):
    y = device_empty((x.shape[0], oh, ow), x.dtype)
    _pool_launch("avg_pool", y.size, x.dtype, x, y, kh, kw, sh, sw, ph, pw,
                 bool(count_include_pad), int(divisor))
    return y


def avg_pool2d_backward_device(dy, h, w, kh, kw, sh, sw, ph, pw, count_include_pad, divisor):
    dx = device_empty((dy.shape[0], h, w), dy.dtype)
    _pool_launch("avg_pool_backward", dx.size, dy.dtype, dy, dx, kh, kw, sh, sw, ph, pw,
                 bool(count_include_pad), int(divisor))
    return dx


def adaptive_avg_pool2d_device(x, oh, ow):
    y = device_empty((x.shape[0], oh, ow), x.dtype)
    _pool_launch("adaptive", y.size, x.dtype, x, y)
    return y


def adaptive_avg_pool2d_backward_device(dy, h, w):
    dx = device_empty((dy.shape[0], h, w), dy.dtype)
    _pool_launch("adaptive_backward", dx.size, dy.dtype, dy, dx)
    return dx


# ================================================================ batch norm and group norm
@functools.cache
def _norm_kernels(dtype, max_threads):
    # statistics accumulate in float64 (float32 sums drift when |mean| >> std)
    zero, one = np.float64(0), np.float64(1)

    @cuda.jit
    def batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps, y,
                   mean, invstd):
        """One block per channel k over its n * l values."""
        buf = cuda.shared.array(max_threads, np.float64)
        k = cuda.blockIdx.x
        n, length = x.shape[0], x.shape[2]
        m = n * length
        if training:
            acc = zero
            for t in range(cuda.threadIdx.x, m, cuda.blockDim.x):
                acc += x[t // length, k, t % length]
            mu = block_sum(buf, acc) / np.float64(m)
            acc = zero
            for t in range(cuda.threadIdx.x, m, cuda.blockDim.x):
                d = x[t // length, k, t % length] - mu
                acc += d * d
            q = block_sum(buf, acc)
            var = q / np.float64(m)
            if cuda.threadIdx.x == 0 and running_mean.size > 0:
                running_mean[k] = (one - momentum) * running_mean[k] + momentum * mu
                running_var[k] = (one - momentum) * running_var[k] + momentum * q / np.float64(m - 1)
        else:
            mu = running_mean[k]
            var = running_var[k]
        rs = one / math.sqrt(var + eps)
        scale = rs * weight[k]
        for t in range(cuda.threadIdx.x, m, cuda.blockDim.x):
            i, j = t // length, t % length
            y[i, k, j] = (x[i, k, j] - mu) * scale + bias[k]
        if cuda.threadIdx.x == 0:
            mean[k] = mu
            invstd[k] = rs

    @cuda.jit
    def batch_norm_backward(dy, x, weight, mean, invstd, training, dx, dweight, dbias):
        buf_a = cuda.shared.array(max_threads, np.float64)
        buf_b = cuda.shared.array(max_threads, np.float64)
        k = cuda.blockIdx.x
        n, length = x.shape[0], x.shape[2]
        m = n * length
        mu, rs = mean[k], invstd[k]
        acc_d = zero
        acc_dx = zero
        for t in range(cuda.threadIdx.x, m, cuda.blockDim.x):
            g = dy[t // length, k, t % length]
            acc_d += g
            acc_dx += g * (x[t // length, k, t % length] - mu)
        sd, sdx = block_sum2(buf_a, buf_b, acc_d, acc_dx)
        scale = weight[k] * rs
        a = sd / np.float64(m)
        b = sdx * rs * rs / np.float64(m)
        for t in range(cuda.threadIdx.x, m, cuda.blockDim.x):
            i, j = t // length, t % length
            if training:
                dx[i, k, j] = scale * (dy[i, k, j] - a - (x[i, k, j] - mu) * b)
            else:
                dx[i, k, j] = scale * dy[i, k, j]
        if cuda.threadIdx.x == 0:
            dbias[k] = sd
            dweight[k] = sdx * rs

    @cuda.jit
    def group_norm(x, groups, weight, bias, eps, y, mean, rstd):
        """One block per (sample, group): x viewed as (n, groups, cpg * l)."""
        buf = cuda.shared.array(max_threads, np.float64)
        ig = cuda.blockIdx.x
        s_i, g = ig // groups, ig % groups
        cpg = x.shape[1] // groups
        length = x.shape[2]
        m = cpg * length
        c0 = g * cpg
        acc = zero
        for t in range(cuda.threadIdx.x, m, cuda.blockDim.x):
            acc += x[s_i, c0 + t // length, t % length]
        mu = block_sum(buf, acc) / np.float64(m)
        acc = zero
        for t in range(cuda.threadIdx.x, m, cuda.blockDim.x):
            d = x[s_i, c0 + t // length, t % length] - mu
            acc += d * d
        rs = one / math.sqrt(block_sum(buf, acc) / np.float64(m) + eps)
        for t in range(cuda.threadIdx.x, m, cuda.blockDim.x):
            c, j = c0 + t // length, t % length
            y[s_i, c, j] = (x[s_i, c, j] - mu) * rs * weight[c] + bias[c]
        if cuda.threadIdx.x == 0:
            mean[s_i, g] = mu
            rstd[s_i, g] = rs

    @cuda.jit
    def group_norm_backward_dx(dy, x, groups, weight, mean, rstd, dx):
        """dx = rstd (g - mean(g) - xhat mean(g xhat)) per group, g = dy w."""
        buf_a = cuda.shared.array(max_threads, np.float64)
        buf_b = cuda.shared.array(max_threads, np.float64)
        ig = cuda.blockIdx.x
        s_i, gi = ig // groups, ig % groups
        cpg = x.shape[1] // groups
        length = x.shape[2]
        m = cpg * length
        c0 = gi * cpg
        mu, rs = mean[s_i, gi], rstd[s_i, gi]
        acc_g = zero
        acc_gx = zero
        for t in range(cuda.threadIdx.x, m, cuda.blockDim.x):
            c, j = c0 + t // length, t % length
            g = dy[s_i, c, j] * weight[c]
            acc_g += g
            acc_gx += g * (x[s_i, c, j] - mu)
        sg, sgx = block_sum2(buf_a, buf_b, acc_g, acc_gx)
        a = sg / np.float64(m)
        b = sgx * rs * rs / np.float64(m)
        for t in range(cuda.threadIdx.x, m, cuda.blockDim.x):
            c, j = c0 + t // length, t % length
            dx[s_i, c, j] = rs * (dy[s_i, c, j] * weight[c] - a - (x[s_i, c, j] - mu) * b)

    @cuda.jit
    def group_norm_param_grads(dy, x, groups, mean, rstd, dweight, dbias):
        """One block per channel: dweight = sum dy xhat, dbias = sum dy over (n, l)."""
        buf_a = cuda.shared.array(max_threads, np.float64)
        buf_b = cuda.shared.array(max_threads, np.float64)
        c = cuda.blockIdx.x
        cpg = x.shape[1] // groups
        length = x.shape[2]
        acc_w = zero
        acc_b = zero
        for t in range(cuda.threadIdx.x, x.shape[0] * length, cuda.blockDim.x):
            s_i, j = t // length, t % length
            g = dy[s_i, c, j]
            acc_b += g
            acc_w += g * (x[s_i, c, j] - mean[s_i, c // cpg]) * rstd[s_i, c // cpg]
        sw, sb = block_sum2(buf_a, buf_b, acc_w, acc_b)
        if cuda.threadIdx.x == 0:
            dweight[c] = sw
            dbias[c] = sb

    return types.SimpleNamespace(batch_norm=batch_norm, batch_norm_backward=batch_norm_backward,
                                 group_norm=group_norm,
                                 group_norm_backward_dx=group_norm_backward_dx,
                                 group_norm_param_grads=group_norm_param_grads)


def _norm_launch(name, blocks, width, dtype, *args):
    max_threads = launch_config().row_threads
    kernel = getattr(_norm_kernels(np.dtype(dtype).type, max_threads), name)
    launch(kernel, blocks, row_threads(width), *args)


def batch_norm_device(x, weight, bias, running_mean, running_var, training, momentum, eps):
    n, c, length = x.shape
    y = device_empty(x.shape, x.dtype)
    mean = device_empty(c, x.dtype)
    invstd = device_empty(c, x.dtype)
    _norm_launch("batch_norm", c, n * length, x.dtype, x, weight, bias, running_mean,
                 running_var, bool(training), np.float64(momentum), np.float64(eps), y,
                 mean, invstd)
    return y, mean, invstd


def batch_norm_backward_device(dy, x, weight, mean, invstd, training):
    n, c, length = x.shape
    dx = device_empty(x.shape, x.dtype)
    dweight = device_empty(c, x.dtype)
    dbias = device_empty(c, x.dtype)
    _norm_launch("batch_norm_backward", c, n * length, x.dtype, dy, x, weight, mean, invstd,
                 bool(training), dx, dweight, dbias)
    return dx, dweight, dbias


def group_norm_device(x, num_groups, weight, bias, eps):
    n, c, length = x.shape
    y = device_empty(x.shape, x.dtype)
    mean = device_empty((n, num_groups), x.dtype)
    rstd = device_empty((n, num_groups), x.dtype)
    _norm_launch("group_norm", n * num_groups, c // num_groups * length, x.dtype, x,
                 int(num_groups), weight, bias, np.float64(eps), y, mean, rstd)
    return y, mean, rstd


def group_norm_backward_device(dy, x, weight, mean, rstd, num_groups):
    n, c, length = x.shape
    dx = device_empty(x.shape, x.dtype)
    dweight = device_empty(c, x.dtype)
    dbias = device_empty(c, x.dtype)
    _norm_launch("group_norm_backward_dx", n * num_groups, c // num_groups * length, x.dtype, dy,
                 x, int(num_groups), weight, mean, rstd, dx)
    _norm_launch("group_norm_param_grads", c, n * length, x.dtype, dy, x, int(num_groups), mean,
                 rstd, dweight, dbias)
    return dx, dweight, dbias


# ================================================================ host entry points
def max_pool2d(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    return _host(max_pool2d_device, x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


def max_pool2d_backward(dy, indices, h, w):
    return _host(max_pool2d_backward_device, dy, indices, h, w)


def avg_pool2d(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad, divisor):
    return _host(avg_pool2d_device, x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad,
                 divisor)


def avg_pool2d_backward(dy, h, w, kh, kw, sh, sw, ph, pw, count_include_pad, divisor):
    return _host(avg_pool2d_backward_device, dy, h, w, kh, kw, sh, sw, ph, pw, count_include_pad,
                 divisor)


def adaptive_avg_pool2d(x, oh, ow):
    return _host(adaptive_avg_pool2d_device, x, oh, ow)


def adaptive_avg_pool2d_backward(dy, h, w):
    return _host(adaptive_avg_pool2d_backward_device, dy, h, w)


def batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps):
    d_rm, d_rv = to_device(running_mean), to_device(running_var)
    result = batch_norm_device(to_device(x), to_device(weight), to_device(bias), d_rm, d_rv,
                               training, momentum, eps)
    if training and running_mean.size:
        to_host(d_rm, running_mean)
        to_host(d_rv, running_var)
    return tuple(to_host(r) for r in result)


def batch_norm_backward(dy, x, weight, mean, invstd, training):
    return _host(batch_norm_backward_device, dy, x, weight, mean, invstd, training)


def group_norm(x, num_groups, weight, bias, eps):
    return _host(group_norm_device, x, num_groups, weight, bias, eps)


def group_norm_backward(dy, x, weight, mean, rstd, num_groups):
    return _host(group_norm_backward_device, dy, x, weight, mean, rstd, num_groups)
