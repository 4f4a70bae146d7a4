"""CUDA kernels that fuse what a training step would otherwise launch as several tiny kernels.

    bias_act_device(x, bias, activation, approximate)        y = act(x + bias)          1 launch
    bias_act_backward_device(dy, x, bias, activation, approximate)
        -> (dx, dbias)   dx = dy * act'(x + bias), dbias = column sums of dx   1 launch (+1 when
                                                                 the column sums run in splits)
    add_layer_norm_device(x, residual, weight, bias, eps)
        -> (y, s, mean, rstd)   s = x + residual, y = layer_norm(s)             1 launch
    add_layer_norm_backward_device(dy, s, weight, mean, rstd, ds=None)
        -> (dx, dweight, dbias)   dx: the gradient of x and of residual alike (ds, the gradient
                                  s gets from its other uses, added in)   2 launches (+partials)
    adam_multi_step_device(params, grads, ms, vs, step, ..., grad_scale)  Adam/AdamW over every
        tensor in one launch; grad_scale a number or a 1-element device array

Arguments and results are numba device arrays (no host copies); activation is "relu" or "gelu"
(approximate: gelu's tanh form). x is (rows, C) with bias (C,); any leading shape works for the
contiguous arrays a Tensor holds (it is viewed as (-1, C)). The math is the composition of the
reference kernels (fastnn/backends/numpy/): bias_add then relu/gelu, their backwards and
bias_grad; add then layer_norm, layer_norm_backward plus the incoming residual gradient;
adam_step per tensor. tests/test_cuda_fused.py checks each against that composition.

The AdamW launch reaches every tensor through a device table of their addresses (a kernel's
arguments cannot be a list of arrays): table[t] = addresses of params[t], grads[t], ms[t],
vs[t], starts[t] = the first flat index of tensor t. The table is written on the device by
tiny launches that carry the addresses as kernel arguments (256 a launch), so it costs no
host-to-device copy, and it is cached per set of addresses. On the simulator the "addresses"
are those of the simulated arrays' host buffers, looked up in a table here.
"""
import collections
import functools
import math

import numpy as np
from numba import cuda, types

from . import common
from .common import (block_sum, block_sum2, device_empty, grid_1d, launch, launch_config,
                     row_threads, scalar)
from .ops import _column_setup, _sum_partials, adam_step_device

ACTIVATIONS = ("relu", "gelu")


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"fused bias+activation: activation must be one of {ACTIVATIONS}, "
                         f"got {activation!r}")


def _rows(x, width):
    """x viewed as (rows, width) (x is C-contiguous)."""
    return x.reshape((x.size // width if width else 0, width))


# ---------------------------------------------------------------- bias + activation
@functools.cache
def _activation_functions(dtype, activation, approximate):
    """(f, f') for one activation, as device functions with the dtype's constants."""
    zero, half, one, three = (dtype(v) for v in (0, 0.5, 1, 3))
    sqrt_2_over_pi = dtype(math.sqrt(2.0 / math.pi))
    inv_sqrt_2 = dtype(1 / math.sqrt(2.0))
    inv_sqrt_2pi = dtype(1 / math.sqrt(2 * math.pi))
    gelu_c = dtype(0.044715)
    if activation == "relu":
        @cuda.jit(device=True)
        def f(v):
            return zero if v < zero else v          # NaN stays NaN, as the reference

        @cuda.jit(device=True)
        def df(v):
            return one if v > zero else zero
    elif approximate:
        @cuda.jit(device=True)
        def f(v):
            return half * v * (one + math.tanh(sqrt_2_over_pi * (v + gelu_c * v * v * v)))

        @cuda.jit(device=True)
        def df(v):
            t = math.tanh(sqrt_2_over_pi * (v + gelu_c * v * v * v))
            du = sqrt_2_over_pi * (one + three * gelu_c * v * v)
            return half * (one + t) + half * v * (one - t * t) * du
    else:
        @cuda.jit(device=True)
        def f(v):
            return half * v * (one + math.erf(v * inv_sqrt_2))

        @cuda.jit(device=True)
        def df(v):
            cdf = half * (one + math.erf(v * inv_sqrt_2))
            return cdf + v * math.exp(-half * v * v) * inv_sqrt_2pi
    return f, df


@functools.cache
def _bias_act_kernels(dtype, activation, approximate, cols, lanes):
    f, df = _activation_functions(dtype, activation, approximate)
    zero = dtype(0)
    shape = (lanes, cols)

    @cuda.jit
    def bias_act(x, bias, out):               # x, out (rows, C)
        c = x.shape[1]
        for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            i = e // c
            j = e - i * c
            out[i, j] = f(x[i, j] + bias[j])

    @cuda.jit
    def bias_act_backward(dy, x, bias, dx, partial):
        """dx = dy * f'(x + bias), and this block's column sums of dx into partial[by, col]
        (blocks of (cols x lanes) threads, as ops.py's column sums)."""
        buf = cuda.shared.array(shape, dtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        col = cuda.blockIdx.x * cols + tx
        acc = zero
        if col < x.shape[1]:
            b = bias[col]
            for row in range(cuda.blockIdx.y * lanes + ty, x.shape[0], cuda.gridDim.y * lanes):
                g = dy[row, col] * df(x[row, col] + b)
                dx[row, col] = g
                acc += g
        buf[ty, tx] = acc
        cuda.syncthreads()
        if ty == 0 and col < x.shape[1]:
            for lane in range(1, lanes):
                acc += buf[lane, tx]
            partial[cuda.blockIdx.y, col] = acc

    return bias_act, bias_act_backward


def _bias_act_setup(x, activation, approximate):
    _check_activation(activation)
    cols, lanes = launch_config().col_threads
    return _bias_act_kernels(x.dtype.type, activation, bool(approximate), cols, lanes)


def bias_act_device(x, bias, activation, approximate=False):
    """act(x + bias), bias broadcast along x's last axis, in one launch."""
    forward, _ = _bias_act_setup(x, activation, approximate)
    out = device_empty(x.shape, x.dtype)
    if x.size:
        c = bias.shape[0]
        blocks, threads = grid_1d(x.size)
        launch(forward, blocks, threads, _rows(x, c), bias, _rows(out, c))
    return out


def bias_act_backward_device(dy, x, bias, activation, approximate=False):
    """(dx, dbias) of y = act(x + bias) given dy: dx and the column sums in one pass."""
    _, backward = _bias_act_setup(x, activation, approximate)
    c = bias.shape[0]
    dx = device_empty(x.shape, x.dtype)
    x2, dy2, dx2 = _rows(x, c), _rows(dy, c), _rows(dx, c)
    grid, block, _ = _column_setup(x.dtype, x2.shape[0], c)
    partial = device_empty((grid[1], c), x.dtype)
    launch(backward, grid, block, dy2, x2, bias, dx2, partial)
    return dx, _sum_partials(partial)


# ---------------------------------------------------------------- residual add + layer norm
@functools.cache
def _add_layer_norm_kernels(dtype, max_threads):
    zero, one = dtype(0), dtype(1)

    @cuda.jit
    def add_layer_norm(x, r, weight, bias, eps, s, y, mean, rstd):
        buf = cuda.shared.array(max_threads, dtype)
        row = cuda.blockIdx.x
        c = x.shape[1]
        inv_c = one / dtype(c)
        acc = zero
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            v = x[row, j] + r[row, j]
            s[row, j] = v                        # read back below by this same thread
            acc += v
        mu = block_sum(buf, acc) * inv_c
        acc = zero                               # two passes: var from (s - mean)^2 stays >= 0
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            d = s[row, j] - mu
            acc += d * d
        rs = one / math.sqrt(block_sum(buf, acc) * inv_c + eps)
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            y[row, j] = (s[row, j] - mu) * rs * weight[j] + bias[j]
        if cuda.threadIdx.x == 0:
            mean[row] = mu
            rstd[row] = rs

    @cuda.jit
    def add_layer_norm_backward_dx(dy, s, weight, mean, rstd, ds, has_ds, dx):
        """dx = rstd * (g - mean(g) - shat * mean(g * shat)) + ds, g = dy * weight."""
        buf_a = cuda.shared.array(max_threads, dtype)
        buf_b = cuda.shared.array(max_threads, dtype)
        row = cuda.blockIdx.x
        c = s.shape[1]
        mu = mean[row]
        rs = rstd[row]
        acc_g = zero
        acc_gs = zero
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            g = dy[row, j] * weight[j]
            acc_g += g
            acc_gs += g * (s[row, j] - mu) * rs
        sum_g, sum_gs = block_sum2(buf_a, buf_b, acc_g, acc_gs)
        inv_c = one / dtype(c)
        mean_g = sum_g * inv_c
        mean_gs = sum_gs * inv_c
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            shat = (s[row, j] - mu) * rs
            v = rs * (dy[row, j] * weight[j] - mean_g - shat * mean_gs)
            if has_ds:
                v += ds[row, j]
            dx[row, j] = v

    return add_layer_norm, add_layer_norm_backward_dx


def _row_kernels(x):
    max_threads = launch_config().row_threads
    return max_threads, _add_layer_norm_kernels(x.dtype.type, max_threads)


def add_layer_norm_device(x, residual, weight, bias, eps):
    """(y, s, mean, rstd): s = x + residual and y = layer_norm(s) over the last axis, one pass."""
    c = weight.shape[0]
    s = device_empty(x.shape, x.dtype)
    y = device_empty(x.shape, x.dtype)
    rows = x.size // c if c else 0
    mean = device_empty(rows, x.dtype)
    rstd = device_empty(rows, x.dtype)
    if rows:
        _, (forward, _) = _row_kernels(x)
        launch(forward, rows, row_threads(c), _rows(x, c), _rows(residual, c), weight, bias,
               scalar(x.dtype, eps), _rows(s, c), _rows(y, c), mean, rstd)
    return y, s, mean, rstd


def add_layer_norm_backward_device(dy, s, weight, mean, rstd, ds=None):
    """(dx, dweight, dbias) of add_layer_norm_device; dx is the gradient of both summands."""
    c = weight.shape[0]
    rows = s.size // c if c else 0
    dx = device_empty(s.shape, s.dtype)
    dy2, s2, dx2 = _rows(dy, c), _rows(s, c), _rows(dx, c)
    if rows:
        _, (_, backward_dx) = _row_kernels(s)
        has_ds = ds is not None
        launch(backward_dx, rows, row_threads(c), dy2, s2, weight, mean, rstd,
               _rows(ds, c) if has_ds else dy2, has_ds, dx2)
    grid, block, kernels = _column_setup(s.dtype, rows, c)
    partial_dw = device_empty((grid[1], c), s.dtype)
    partial_db = device_empty((grid[1], c), s.dtype)
    launch(kernels.layer_norm_param_grads, grid, block, dy2, s2, mean, rstd, partial_dw,
           partial_db)
    return dx, _sum_partials(partial_dw), _sum_partials(partial_db)


# ---------------------------------------------------------------- AdamW over every tensor
_SIM_ARRAYS = {}     # simulator: "address" -> the flat host array it stands for


def _address(d):
    """The device address of a C-contiguous device array's first element."""
    if common.SIMULATOR:
        flat = d._ary.reshape(-1)
        address = flat.__array_interface__["data"][0]
        _SIM_ARRAYS[address] = flat
        return address
    # (numpy arrays stand in for device arrays when bench/cuda_check.py --compile-only types
    # the kernels without a GPU)
    interface = getattr(d, "__cuda_array_interface__", None) or d.__array_interface__
    return int(interface["data"][0])


def _c_contiguous(d):
    if common.SIMULATOR:
        return bool(d._ary.flags.c_contiguous)
    check = getattr(d, "is_c_contiguous", None)
    return bool(check()) if check is not None else bool(d.flags.c_contiguous)


@functools.cache
def _pointer(nb_dtype):
    """as_pointer(address) -> a typed pointer to index, inside a kernel. On the simulator the
    kernel runs as Python, and the same call returns the array the address stands for."""
    if common.SIMULATOR:
        return lambda address: _SIM_ARRAYS[int(address)]
    from numba.cuda.extending import intrinsic

    @intrinsic
    def as_pointer(typingctx, address):
        sig = types.CPointer(nb_dtype)(types.int64)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(signature.return_type))
        return sig, codegen
    return as_pointer


@functools.cache
def _adam_multi_kernel(dtype, scale_on_device):
    as_pointer = _pointer(types.float32 if dtype == np.float32 else types.float64)
    zero = dtype(0)
    if scale_on_device:               # a 1-element device array: clip_grad_norm_'s factor,
        @cuda.jit(device=True)        # computed on the device, read without a host round trip
        def read_scale(s):
            return dtype(s[0])
    else:
        @cuda.jit(device=True)
        def read_scale(s):
            return s

    @cuda.jit
    def adam_multi(table, starts, total, lr_over_bc1, sqrt_bc2, beta1, one_minus_beta1, beta2,
                   one_minus_beta2, eps, weight_decay, decay_factor, decoupled, grad_scale):
        """Flat index e runs over every tensor's elements in turn (starts[t] <= e <
        starts[t + 1]); a thread's indices only grow, so its tensor t only moves forward."""
        e = cuda.grid(1)
        stride = cuda.gridsize(1)
        if e >= total:
            return
        scale = read_scale(grad_scale)
        t = 0
        while e >= starts[t + 1]:
            t += 1
        begin = starts[t]
        end = starts[t + 1]
        param = as_pointer(table[t, 0])
        grad = as_pointer(table[t, 1])
        m = as_pointer(table[t, 2])
        v = as_pointer(table[t, 3])
        while e < total:
            if e >= end:
                while e >= starts[t + 1]:
                    t += 1
                begin = starts[t]
                end = starts[t + 1]
                param = as_pointer(table[t, 0])
                grad = as_pointer(table[t, 1])
                m = as_pointer(table[t, 2])
                v = as_pointer(table[t, 3])
            i = e - begin
            p = param[i]
            g = grad[i] * scale                 # 1 unless clipping is folded in
            if decoupled:
                p = p * decay_factor            # AdamW: param *= 1 - lr * weight_decay
            elif weight_decay != zero:
                g = g + weight_decay * p        # Adam: L2 added to the gradient
            mi = beta1 * m[i] + one_minus_beta1 * g
            vi = beta2 * v[i] + one_minus_beta2 * g * g
            m[i] = mi
            v[i] = vi
            param[i] = p - lr_over_bc1 * mi / (math.sqrt(vi) / sqrt_bc2 + eps)
            e += stride

    return adam_multi


_TABLES = collections.OrderedDict()   # address set -> (device table, device starts)
_MAX_TABLES = 8
_TABLE_CHUNK = 256                     # int64 values per table-writing launch: 2 KiB of arguments


@functools.cache
def _table_writer():
    @cuda.jit
    def write_table(dst, offset, count, values):
        """dst[offset:offset + count] = values[:count]; values arrive as kernel arguments."""
        i = cuda.grid(1)
        if i < count:
            dst[offset + i] = values[i]
    return write_table


def _device_table(quads):
    """The cached device (table, starts) for these tensors. On a miss the values travel as the
    arguments of a few tiny launches (as every launch's scalars do), not as a host-to-device
    copy: a training loop whose gradients land at new addresses each step still copies
    nothing."""
    key = tuple((_address(p), _address(g), _address(m), _address(v), p.size)
                for p, g, m, v in quads)
    hit = _TABLES.get(key)
    if hit is not None:
        _TABLES.move_to_end(key)
        return hit
    values = [a for k in key for a in k[:4]]
    start = 0
    values.append(start)
    for k in key:
        start += k[4]
        values.append(start)
    packed = device_empty(len(values), np.int64)
    writer = _table_writer()
    for offset in range(0, len(values), _TABLE_CHUNK):
        chunk = values[offset:offset + _TABLE_CHUNK]
        count = len(chunk)
        chunk = tuple(np.int64(v) for v in chunk + [0] * (_TABLE_CHUNK - count))
        launch(writer, 1, _TABLE_CHUNK, packed, np.int64(offset), np.int64(count), chunk)
    n = 4 * len(key)
    hit = (packed[:n].reshape((len(key), 4)), packed[n:])
    _TABLES[key] = hit
    while len(_TABLES) > _MAX_TABLES:
        _TABLES.popitem(last=False)
    return hit


def adam_multi_step_device(params, grads, ms, vs, step, lr, beta1, beta2, eps, weight_decay,
                           decoupled, grad_scale=1.0):
    """adam_step over every (param, grad, m, v) of one dtype in one launch (in place). grad_scale
    multiplies every gradient: a number, or a 1-element device array (clip_grad_norm_'s factor
    left on the device: the kernel reads it, so clipping costs no transfer and no launch)."""
    quads = [q for q in zip(params, grads, ms, vs) if q[0].size]
    if not quads:
        return
    dt = quads[0][0].dtype
    for q in quads:
        if any(a.dtype != dt for a in q) or any(a.size != q[0].size for a in q):
            raise ValueError("adam_multi_step: every param, grad, m and v must share one dtype, "
                             "and each quadruple one size")
    scale_on_device = hasattr(grad_scale, "shape")
    if scale_on_device and grad_scale.size != 1:
        raise ValueError(f"adam_multi_step: a device grad_scale must hold one value, got shape "
                         f"{grad_scale.shape}")
    fused = [q for q in quads if all(_c_contiguous(a) for a in q)]
    if scale_on_device and len(fused) < len(quads):
        raise ValueError("adam_multi_step: with a device grad_scale every tensor must be "
                         "C-contiguous")
    for p, g, m, v in quads:            # a strided view cannot be reached by address alone
        if not all(_c_contiguous(a) for a in (p, g, m, v)):
            adam_step_device(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled,
                             grad_scale)
    if not fused:
        return
    table, starts = _device_table(fused)
    total = sum(q[0].size for q in fused)
    bc1 = 1 - beta1 ** step
    bc2 = 1 - beta2 ** step
    blocks, threads = grid_1d(total)
    launch(_adam_multi_kernel(dt.type, scale_on_device), blocks, threads, table, starts,
           np.int64(total),
           scalar(dt, lr / bc1), scalar(dt, math.sqrt(bc2)), scalar(dt, beta1),
           scalar(dt, 1 - beta1), scalar(dt, beta2), scalar(dt, 1 - beta2), scalar(dt, eps),
           scalar(dt, weight_decay), scalar(dt, 1 - lr * weight_decay), bool(decoupled),
           grad_scale.reshape(1) if scale_on_device else scalar(dt, grad_scale))


def adam_multi_step(params, grads, ms, vs, step, lr, beta1, beta2, eps, weight_decay, decoupled,
                    grad_scale):
    """The host-array entry point: copies in, one launch, params/ms/vs copied back."""
    flat = [[a.reshape(-1) for a in arrays] for arrays in (params, grads, ms, vs)]
    devices = [[common.to_device(a) for a in arrays] for arrays in flat]
    adam_multi_step_device(*devices, step, lr, beta1, beta2, eps, weight_decay, decoupled,
                           grad_scale)
    for host, dev in ((params, devices[0]), (ms, devices[2]), (vs, devices[3])):
        for h, d in zip(host, dev):
            if not h.size:
                continue
            if h.flags.c_contiguous:
                common.to_host(d, h.reshape(-1))          # a view: written in place
            else:
                h[...] = common.to_host(d).reshape(h.shape)
