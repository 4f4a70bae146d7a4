"""The trusted kernels on device arrays: what fastnn.kernels.trusted runs when a kernel's arrays
are fastnn.backends.cuda.array.DeviceArray (tensors on 'cuda') instead of numpy arrays.

Each function here takes the trusted entry point's arguments and returns its results, with device
arrays in and out: C-contiguous inputs go to the cuda backend's NAME_device function through
`.raw` (the numba device array), its results come back through `ca.wrap`, and in-place kernels
(gemm's c, the optimizer steps) write the device storage itself. No host copy happens here: what
the checked functions verify on the host by reading the data (an index in range, the count of
non-ignored targets) is either computed on the device (the count) or left to the kernel, as
PyTorch's CUDA kernels do. A kernel with no adapter here raises NotImplementedError naming it.

Nothing here imports numba until a device array exists: `on_device` looks the array module up in
sys.modules, so the CPU path never loads the cuda backend.
"""
import math
import sys

import numpy as np

_ARRAY_MODULE = "fastnn.backends.cuda.array"


def on_device(x):
    """Whether x (an array, or a list of arrays) lives on the device. Cheap on the CPU path: no
    device array can exist before the array module is imported."""
    ca = sys.modules.get(_ARRAY_MODULE)
    if ca is None:
        return False
    if isinstance(x, (list, tuple)):
        return bool(x) and ca.is_device_array(x[0])
    return ca.is_device_array(x)


def _ca():
    from ..backends.cuda import array as ca
    return ca


def _fn(name):
    from ..backends import cuda as cb
    try:
        return cb.device_kernel(name)
    except KeyError:
        for mod in (cb.select, cb.pool):
            fn = getattr(mod, name + "_device", None)
            if fn is not None:
                return fn
        raise


def _dev(x, dtype=None):
    """x as a C-contiguous DeviceArray (a host array is copied over, counted: a caller mixing
    host and device arrays inside fastnn pays one counted transfer, never a silent one)."""
    ca = _ca()
    if not ca.is_device_array(x):
        x = ca.from_host(np.ascontiguousarray(x), dtype=dtype)
    elif dtype is not None and x.dtype != dtype:
        x = x.astype(dtype)
    return x.contiguous()


def _raw(x, dtype=None):
    return _dev(x, dtype).raw


def _wrap(d):
    return _ca().wrap(d)


# ---------------------------------------------------------------- GEMM
def gemm(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    ca = _ca()
    a, b = _dev(a), _dev(b, a.dtype)
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != k2:
        raise ValueError(f"gemm: inner dimensions differ: op(a) is ({m}, {k}) and op(b) is "
                         f"({k2}, {n}) (a {a.shape}, b {b.shape})")
    if c is None:
        c, beta = ca.empty((m, n), a.dtype), 0.0
    elif c.shape != (m, n):
        raise ValueError(f"gemm: c has shape {c.shape}, expected ({m}, {n})")
    if not _c_contiguous(c):
        raise ValueError("gemm: c must be a C-contiguous device array (it is written in place)")
    if c.size:
        if k == 0:
            if beta == 0:
                c.fill(0)
            else:
                c *= beta
        else:
            _fn("gemm")(a.raw, b.raw, c.raw, bool(trans_a), bool(trans_b), float(alpha),
                        float(beta))
    return c


def _c_contiguous(x):
    expected, size = [], x.itemsize
    for dim in reversed(x.shape):
        expected.append(size)
        size *= dim
    return all(d == 1 or s == e for d, s, e in zip(x.shape, x.strides, reversed(expected)))


def bmm(a, b, *, trans_a=False, trans_b=False, alpha=1.0):
    ca = _ca()
    a, b = _dev(a), _dev(b, a.dtype)
    nb = a.shape[0] if a.ndim == 3 else b.shape[0]
    if a.ndim == 2:
        a = _broadcast_batch(a, nb)
    if b.ndim == 2:
        b = _broadcast_batch(b, nb)
    m, k = (a.shape[2], a.shape[1]) if trans_a else a.shape[1:]
    k2, n = (b.shape[2], b.shape[1]) if trans_b else b.shape[1:]
    if k != k2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm: shapes do not match: a {a.shape}, b {b.shape} "
                         f"(trans_a={trans_a}, trans_b={trans_b})")
    c = ca.empty((nb, m, n), a.dtype)
    if c.size:
        if k == 0:
            c.fill(0)
        else:
            _fn("gemm_batched")(a.raw, b.raw, c.raw, bool(trans_a), bool(trans_b), float(alpha),
                                0.0)
    return c


def _broadcast_batch(x, nb):
    out = _ca().empty((nb,) + x.shape, x.dtype)
    out[...] = x
    return out


def matmul(a, b):
    if a.ndim == 3 or b.ndim == 3:
        return bmm(a, b)
    return gemm(a, b)


# ---------------------------------------------------------------- elementwise
def _unary(name, x, *args):
    x = _dev(x)
    if x.size == 0:
        return x.copy()
    return _wrap(_fn(name)(x.reshape(-1).raw, *args)).reshape(x.shape)


def _unary_backward(name, dy, saved, *args):
    dy = _dev(dy)
    saved = _dev(saved, dy.dtype)
    if dy.size == 0:
        return dy.copy()
    return _wrap(_fn(name)(dy.reshape(-1).raw, saved.reshape(-1).raw, *args)).reshape(dy.shape)


def relu(x):
    return _unary("relu", x)


def relu_backward(dy, x):
    return _unary_backward("relu_backward", dy, x)


def leaky_relu(x, negative_slope=0.01):
    return _unary("leaky_relu", x, float(negative_slope))


def leaky_relu_backward(dy, x, negative_slope=0.01):
    return _unary_backward("leaky_relu_backward", dy, x, float(negative_slope))


def sigmoid(x):
    return _unary("sigmoid", x)


def sigmoid_backward(dy, y):
    return _unary_backward("sigmoid_backward", dy, y)


def tanh(x):
    return _unary("tanh", x)


def tanh_backward(dy, y):
    return _unary_backward("tanh_backward", dy, y)


def _approximate(approximate):
    if approximate not in ("none", "tanh", True, False):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return approximate in ("tanh", True)


def gelu(x, approximate="none"):
    return _unary("gelu", x, _approximate(approximate))


def gelu_backward(dy, x, approximate="none"):
    return _unary_backward("gelu_backward", dy, x, _approximate(approximate))


def clamp(x, min=None, max=None):
    lo = -math.inf if min is None else float(min)
    hi = math.inf if max is None else float(max)
    return _unary("clamp", x, lo, hi)


def clamp_backward(dy, x, min=None, max=None):
    lo = -math.inf if min is None else float(min)
    hi = math.inf if max is None else float(max)
    return _unary_backward("clamp_backward", dy, x, lo, hi)


def bias_add(x, bias):
    x = _dev(x)
    bias = _dev(bias, x.dtype)
    if x.size == 0:
        return x.copy()
    rows = x.reshape(-1, x.shape[-1])
    return _wrap(_fn("bias_add")(rows.raw, bias.raw)).reshape(x.shape)


def bias_grad(dy):
    dy = _dev(dy)
    if dy.size == 0:
        return _ca().zeros((dy.shape[-1],), dy.dtype)
    return _wrap(_fn("bias_grad")(dy.reshape(-1, dy.shape[-1]).raw))


# ---------------------------------------------------------------- rows: softmax, losses, norms
def _row_op(name, x):
    x = _dev(x)
    if x.size == 0:
        return x.copy()
    return _wrap(_fn(name)(x.reshape(-1, x.shape[-1]).raw)).reshape(x.shape)


def _row_backward(name, dy, y):
    dy = _dev(dy)
    y = _dev(y, dy.dtype)
    if dy.size == 0:
        return dy.copy()
    rows = lambda a: a.reshape(-1, a.shape[-1]).raw  # noqa: E731
    return _wrap(_fn(name)(rows(dy), rows(y))).reshape(dy.shape)


def softmax(x):
    return _row_op("softmax", x)


def log_softmax(x):
    return _row_op("log_softmax", x)


def softmax_backward(dy, y):
    return _row_backward("softmax_backward", dy, y)


def log_softmax_backward(dy, y):
    return _row_backward("log_softmax_backward", dy, y)


def cross_entropy(logits, targets, *, ignore_index=-100, reduction="mean"):
    """(loss, dlogits) as the checked kernel's, the loss a 0-d device array (per-row losses for
    'none'). The mean's count of non-ignored rows is computed on the device, and the gradient
    divided by it there, so nothing waits for the host."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', "
                         f"got {reduction!r}")
    logits = _dev(logits)
    targets = _dev(targets, np.dtype(np.int64))
    if logits.ndim != 2 or targets.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy: expected logits (N, C) and targets (N,), got "
                         f"{logits.shape} and {targets.shape}")
    ca = _ca()
    if logits.size == 0:
        losses, grad = ca.zeros((logits.shape[0],), logits.dtype), ca.zeros(logits.shape,
                                                                            logits.dtype)
    else:
        losses, grad = _fn("cross_entropy")(logits.raw, targets.raw, int(ignore_index), 1.0)
        losses, grad = _wrap(losses), _wrap(grad)
    if reduction == "none":
        return losses, grad
    total = losses.sum()
    if reduction == "sum":
        return total, grad
    count = (targets != ignore_index).sum().astype(logits.dtype)
    grad /= count
    return total / count, grad


def mse_loss(pred, target):
    """(mean((p - t)^2), 2 (p - t) / n), the loss a 0-d device array, in device array ops."""
    pred = _dev(pred)
    target = _dev(target, pred.dtype)
    diff = pred - target
    n = max(pred.size, 1)
    loss = (diff * diff).sum() / pred.dtype.type(n)
    return loss, diff * pred.dtype.type(2.0 / n)


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    ca = _ca()
    x = _dev(x)
    c = x.shape[-1]
    weight = ca.ones((c,), x.dtype) if weight is None else _dev(weight, x.dtype)
    bias = ca.zeros((c,), x.dtype) if bias is None else _dev(bias, x.dtype)
    if x.size == 0:
        stats = ca.zeros(x.shape[:-1], x.dtype)
        return x.copy(), stats, stats.copy()
    y, mean, rstd = _fn("layer_norm")(x.reshape(-1, c).raw, weight.raw, bias.raw, float(eps))
    return (_wrap(y).reshape(x.shape), _wrap(mean).reshape(x.shape[:-1]),
            _wrap(rstd).reshape(x.shape[:-1]))


def layer_norm_backward(dy, x, weight, mean, rstd):
    ca = _ca()
    dy = _dev(dy)
    x = _dev(x, dy.dtype)
    c = x.shape[-1]
    weight = ca.ones((c,), x.dtype) if weight is None else _dev(weight, x.dtype)
    if x.size == 0:
        return dy.copy(), ca.zeros((c,), x.dtype), ca.zeros((c,), x.dtype)
    dx, dw, db = _fn("layer_norm_backward")(dy.reshape(-1, c).raw, x.reshape(-1, c).raw,
                                            weight.raw, _dev(mean).reshape(-1).raw,
                                            _dev(rstd).reshape(-1).raw)
    return _wrap(dx).reshape(x.shape), _wrap(dw), _wrap(db)


# ---------------------------------------------------------------- embedding, attention
def embedding(weight, ids):
    weight = _dev(weight)
    ids = _dev(ids, np.dtype(np.int64))
    if ids.size == 0 or weight.shape[1] == 0:
        return _ca().zeros(ids.shape + (weight.shape[1],), weight.dtype)
    out = _fn("embedding")(weight.raw, ids.reshape(-1).raw)
    return _wrap(out).reshape(ids.shape + (weight.shape[1],))


def embedding_backward(dout, ids, num_embeddings):
    dout = _dev(dout)
    ids = _dev(ids, np.dtype(np.int64))
    c = dout.shape[-1]
    if ids.size == 0 or c == 0:
        return _ca().zeros((int(num_embeddings), c), dout.dtype)
    return _wrap(_fn("embedding_backward")(dout.reshape(-1, c).raw, ids.reshape(-1).raw,
                                           int(num_embeddings)))


def attention(q, k, v, *, causal=False, scale=None):
    q = _dev(q)
    k, v = _dev(k, q.dtype), _dev(v, q.dtype)
    ca = _ca()
    if q.size == 0:
        return ca.zeros(q.shape, q.dtype), ca.zeros(q.shape[:3], q.dtype)
    scale = 1.0 / math.sqrt(q.shape[3]) if scale is None else float(scale)
    out, lse = _fn("attention")(q.raw, k.raw, v.raw, bool(causal), scale)
    return _wrap(out), _wrap(lse)


def attention_backward(dout, q, k, v, out, lse, *, causal=False, scale=None):
    q = _dev(q)
    arrays = [_dev(a, q.dtype) for a in (dout, k, v, out, lse)]
    dout, k, v, out, lse = arrays
    if q.size == 0 or k.size == 0:
        ca = _ca()
        return ca.zeros(q.shape, q.dtype), ca.zeros(k.shape, q.dtype), ca.zeros(v.shape, q.dtype)
    scale = 1.0 / math.sqrt(q.shape[3]) if scale is None else float(scale)
    grads = _fn("attention_backward")(dout.raw, q.raw, k.raw, v.raw, out.raw, lse.raw,
                                      bool(causal), scale)
    return tuple(_wrap(g) for g in grads)


def topk(x, k, largest=True, sorted=True):
    x = _dev(x)
    shape = x.shape[:-1] + (int(k),)
    if int(k) == 0 or x.size == 0:
        ca = _ca()
        return ca.empty(shape, x.dtype), ca.empty(shape, np.dtype(np.int64))
    v, i = _fn("topk")(x.reshape(-1, x.shape[-1]).raw, int(k), bool(largest), bool(sorted))
    return _wrap(v).reshape(shape), _wrap(i).reshape(shape)


def multinomial(p, uniforms, replacement=False):
    p64 = _dev(p, np.dtype(np.float64)).copy()  # the kernel overwrites it
    u = _dev(uniforms, np.dtype(np.float64))
    c, s = p64.shape[-1], u.shape[-1]
    out = _fn("multinomial")(p64.reshape(-1, c).raw, u.reshape(-1, s).raw, bool(replacement))
    return _wrap(out).reshape(u.shape)


# ---------------------------------------------------------------- conv, pooling, 2-d norms
# The geometry (output size, normalised stride/padding, the checks and their messages) is the
# checked kernels' own: those functions read only shapes, never data.
def _beside(x, other):
    """other as a device array beside x: PyTorch's error for a CPU array (a 0-d one excepted), as
    the Tensor ops raise it, instead of a silent copy."""
    ca = _ca()
    if not ca.is_device_array(other) and np.ndim(other) > 0:
        raise RuntimeError(f"Expected all tensors to be on the same device, but found at least "
                           f"two devices, cuda:{x.device_index} and cpu!")
    return _dev(other, x.dtype)


def _conv_inputs(kernel, x, weight, bias=None):
    x = _dev(x)
    weight = _beside(x, weight)
    if weight.ndim != 4 or x.ndim not in (3, 4):
        raise ValueError(f"{kernel}: expected input (N, C, H, W) or (C, H, W) and a 4-D weight, "
                         f"got {x.shape} and {weight.shape}")
    unbatched = x.ndim == 3
    if unbatched:
        x = x.reshape((1,) + x.shape)
    if bias is not None:
        bias = _beside(x, bias)
    return x, weight, bias, unbatched


def _conv_grad(kernel, dy, x, unbatched, out_shape):
    dy = _dev(dy, x.dtype)
    if unbatched and dy.ndim == 3:
        dy = dy.reshape((1,) + dy.shape)
    if dy.shape != out_shape:
        raise ValueError(f"{kernel}: grad_output has shape {dy.shape}, expected the forward's "
                         f"output shape {out_shape}")
    return dy


def _conv_empty(shape, dtype, bias):
    y = _ca().zeros(shape, dtype)
    if bias is not None:
        y += bias.reshape(-1, 1, 1)
    return y


def _unbatch_dev(results, unbatched):
    if not unbatched:
        return results
    if isinstance(results, tuple):
        return tuple(r[0] if r is not None and i == 0 else r for i, r in enumerate(results))
    return results[0]


def _wrap_all(results):
    return tuple(None if r is None else _wrap(r) for r in results)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    from .families.conv import _check_bias, _conv_geometry
    x, weight, bias, unbatched = _conv_inputs("conv2d", input, weight, bias)
    s, p, d, g, out_hw = _conv_geometry("conv2d", x.shape, weight.shape, stride, padding,
                                        dilation, groups)
    _check_bias("conv2d", bias, weight.shape[0])
    shape = (x.shape[0], weight.shape[0]) + out_hw
    if x.size == 0 or weight.size == 0:
        return _unbatch_dev(_conv_empty(shape, x.dtype, bias), unbatched)
    y = _fn("conv2d")(x.raw, weight.raw, None if bias is None else bias.raw, s, p, d, g, out_hw)
    return _unbatch_dev(_wrap(y), unbatched)


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1, *,
                    output_mask=(True, True, True)):
    from .families.conv import _conv_geometry, _mask
    kernel = "conv2d_backward"
    x, weight, _, unbatched = _conv_inputs(kernel, input, weight)
    s, p, d, g, out_hw = _conv_geometry(kernel, x.shape, weight.shape, stride, padding,
                                        dilation, groups)
    mask = _mask(kernel, output_mask)
    dy = _conv_grad(kernel, grad_output, x, unbatched, (x.shape[0], weight.shape[0]) + out_hw)
    if x.size == 0 or weight.size == 0:
        ca = _ca()
        res = (ca.zeros(x.shape, x.dtype) if mask[0] else None,
               ca.zeros(weight.shape, x.dtype) if mask[1] else None,
               dy.sum((0, 2, 3)) if mask[2] else None)
    else:
        res = _wrap_all(_fn("conv2d_backward")(dy.raw, x.raw, weight.raw, s, p, d, g, mask))
    return _unbatch_dev(tuple(res), unbatched)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    from .families.conv import _check_bias, _transpose_geometry
    kernel = "conv_transpose2d"
    x, weight, bias, unbatched = _conv_inputs(kernel, input, weight, bias)
    s, p, d, g, out_hw = _transpose_geometry(kernel, x.shape, weight.shape, stride, padding,
                                             output_padding, groups, dilation)
    _check_bias(kernel, bias, weight.shape[1] * g)
    shape = (x.shape[0], weight.shape[1] * g) + out_hw
    if x.size == 0 or weight.size == 0:
        return _unbatch_dev(_conv_empty(shape, x.dtype, bias), unbatched)
    y = _fn(kernel)(x.raw, weight.raw, None if bias is None else bias.raw, s, p, d, g, out_hw)
    return _unbatch_dev(_wrap(y), unbatched)


def conv_transpose2d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1, *, output_mask=(True, True, True)):
    from .families.conv import _mask, _transpose_geometry
    kernel = "conv_transpose2d_backward"
    x, weight, _, unbatched = _conv_inputs(kernel, input, weight)
    s, p, d, g, out_hw = _transpose_geometry(kernel, x.shape, weight.shape, stride, padding,
                                             output_padding, groups, dilation)
    mask = _mask(kernel, output_mask)
    dy = _conv_grad(kernel, grad_output, x, unbatched,
                    (x.shape[0], weight.shape[1] * g) + out_hw)
    if x.size == 0 or weight.size == 0:
        ca = _ca()
        res = (ca.zeros(x.shape, x.dtype) if mask[0] else None,
               ca.zeros(weight.shape, x.dtype) if mask[1] else None,
               dy.sum((0, 2, 3)) if mask[2] else None)
    else:
        res = _wrap_all(_fn(kernel)(dy.raw, x.raw, weight.raw, s, p, d, g, mask))
    return _unbatch_dev(tuple(res), unbatched)


def _image(kernel, x):
    x = _dev(x)
    if x.ndim not in (3, 4) or 0 in x.shape[-3:]:
        raise ValueError(f"{kernel}: x must be 3-D (C, H, W) or 4-D (N, C, H, W) with non-zero "
                         f"C, H and W, got shape {x.shape}")
    return x


def _planes(x):
    return x.reshape((-1,) + x.shape[-2:])


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    from .families.pool import _window
    x = _image("max_pool2d", x)
    k, s, p, d, o = _window("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    shape = x.shape[:-2] + o
    y, idx = _fn("max_pool2d")(_planes(x).raw, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1],
                               o[0], o[1])
    return _wrap(y).reshape(shape), _wrap(idx).reshape(shape)


def max_pool2d_backward(dy, indices, input_shape):
    dy = _dev(dy)
    indices = _dev(indices, np.dtype(np.int64))
    shape = tuple(int(n) for n in input_shape)
    if len(shape) == 2:
        shape = dy.shape[:-2] + shape
    if (dy.ndim not in (3, 4) or indices.shape != dy.shape or len(shape) != dy.ndim
            or shape[:-2] != dy.shape[:-2] or min(shape[-2:]) < 1):
        raise ValueError(f"max_pool2d_backward: dy {dy.shape}, indices {indices.shape} and "
                         f"input_shape {tuple(input_shape)} do not fit together")
    if dy.size == 0:
        return _ca().zeros(shape, dy.dtype)
    dx = _fn("max_pool2d_backward")(_planes(dy).raw, _planes(indices).raw, shape[-2], shape[-1])
    return _wrap(dx).reshape(shape)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    from .families.pool import _avg_args
    x = _image("avg_pool2d", x)
    k, s, p, o, cip, div = _avg_args("avg_pool2d", x, kernel_size, stride, padding, ceil_mode,
                                     count_include_pad, divisor_override)
    y = _fn("avg_pool2d")(_planes(x).raw, k[0], k[1], s[0], s[1], p[0], p[1], o[0], o[1], cip,
                          div)
    return _wrap(y).reshape(x.shape[:-2] + o)


def avg_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    from .families.pool import _avg_args, _grad_out
    dy = _dev(dy)
    k, s, p, o, cip, div = _avg_args("avg_pool2d_backward", x, kernel_size, stride, padding,
                                     ceil_mode, count_include_pad, divisor_override)
    _grad_out("avg_pool2d_backward", dy, x.shape, o)
    h, w = x.shape[-2:]
    dx = _fn("avg_pool2d_backward")(_planes(dy).raw, h, w, k[0], k[1], s[0], s[1], p[0], p[1],
                                    cip, div)
    return _wrap(dx).reshape(x.shape)


def adaptive_avg_pool2d(x, output_size):
    from .families.pool import _output_size
    x = _image("adaptive_avg_pool2d", x)
    o = _output_size("adaptive_avg_pool2d", x, output_size)
    y = _fn("adaptive_avg_pool2d")(_planes(x).raw, o[0], o[1])
    return _wrap(y).reshape(x.shape[:-2] + o)


def adaptive_avg_pool2d_backward(dy, x, output_size=None):
    from .families.pool import _grad_out, _output_size
    dy = _dev(dy)
    o = dy.shape[-2:] if output_size is None else _output_size("adaptive_avg_pool2d_backward",
                                                               x, output_size)
    _grad_out("adaptive_avg_pool2d_backward", dy, x.shape, o)
    dx = _fn("adaptive_avg_pool2d_backward")(_planes(dy).raw, x.shape[-2], x.shape[-1])
    return _wrap(dx).reshape(x.shape)


def _ncl(x):
    return x.reshape(x.shape[0], x.shape[1], -1)


def _channel_vector(kernel, name, v, c, x, default):
    ca = _ca()
    if v is None:
        if default is None:
            raise ValueError(f"{kernel}: {name} is required")
        return ca.full((c,), default, x.dtype)
    v = _beside(x, v)
    if v.shape != (c,):
        raise ValueError(f"{kernel}: {name} has shape {v.shape}, expected ({c},)")
    return v


def _norm_input(kernel, x, name="x", dtype=None):
    x = _dev(x, dtype)
    if x.ndim < 2 or x.shape[1] == 0:
        raise ValueError(f"{kernel}: {name} must be (N, C, *spatial) with C > 0, got shape "
                         f"{x.shape}")
    return x


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, num_batches_tracked=None):
    """Running statistics are updated in place in their device storage (which must therefore
    be C-contiguous device arrays of x's dtype)."""
    kernel = "batch_norm"
    ca = _ca()
    x = _norm_input(kernel, x)
    c = x.shape[1]
    weight = _channel_vector(kernel, "weight", weight, c, x, 1)
    bias = _channel_vector(kernel, "bias", bias, c, x, 0)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{kernel}: give both running_mean and running_var, or neither")
    if running_mean is None:
        if not training:
            raise ValueError(f"{kernel}: eval mode (training=False) needs running_mean and "
                             f"running_var")
        running_mean = running_var = ca.empty((0,), x.dtype)
    else:
        for name, s in (("running_mean", running_mean), ("running_var", running_var)):
            _beside(x, s)
            if (not ca.is_device_array(s) or s.dtype != x.dtype or s.shape != (c,)
                    or not s.is_c_contiguous()):
                raise ValueError(f"{kernel}: {name} must be a C-contiguous ({c},) array of "
                                 f"{x.dtype} on x's device (it is updated in place)")
    if momentum is None:
        momentum = 1.0 / int(num_batches_tracked) if num_batches_tracked else 0.0
    if training and x.size == c:
        raise ValueError(f"{kernel}: expected more than 1 value per channel when training, got "
                         f"input of shape {x.shape}")
    if x.size == 0:
        z = ca.zeros((c,), x.dtype)
        return x.copy(), z, z.copy()
    y, mean, invstd = _fn(kernel)(_ncl(x).raw, weight.raw, bias.raw, running_mean.raw,
                                  running_var.raw, bool(training), float(momentum), float(eps))
    return _wrap(y).reshape(x.shape), _wrap(mean), _wrap(invstd)


def batch_norm_backward(dy, x, weight, mean, invstd, training=True):
    kernel = "batch_norm_backward"
    dy = _norm_input(kernel, dy, "dy")
    x = _norm_input(kernel, x, "x", dy.dtype)
    if x.shape != dy.shape:
        raise ValueError(f"{kernel}: dy has shape {dy.shape} but x has shape {x.shape}")
    c = x.shape[1]
    weight = _channel_vector(kernel, "weight", weight, c, x, 1)
    mean = _channel_vector(kernel, "mean", mean, c, x, None)
    invstd = _channel_vector(kernel, "invstd", invstd, c, x, None)
    if x.size == 0:
        ca = _ca()
        return dy.copy(), ca.zeros((c,), x.dtype), ca.zeros((c,), x.dtype)
    dx, dw, db = _fn(kernel)(_ncl(dy).raw, _ncl(x).raw, weight.raw, mean.raw, invstd.raw,
                             bool(training))
    return _wrap(dx).reshape(x.shape), _wrap(dw), _wrap(db)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    from .families.norm2d import _groups
    kernel = "group_norm"
    x = _norm_input(kernel, x)
    c = x.shape[1]
    g = _groups(kernel, c, num_groups)
    weight = _channel_vector(kernel, "weight", weight, c, x, 1)
    bias = _channel_vector(kernel, "bias", bias, c, x, 0)
    if x.size == 0:
        z = _ca().zeros((x.shape[0], g), x.dtype)
        return x.copy(), z, z.copy()
    y, mean, rstd = _fn(kernel)(_ncl(x).raw, g, weight.raw, bias.raw, float(eps))
    return _wrap(y).reshape(x.shape), _wrap(mean), _wrap(rstd)


def group_norm_backward(dy, x, weight, mean, rstd, num_groups):
    from .families.norm2d import _groups
    kernel = "group_norm_backward"
    dy = _norm_input(kernel, dy, "dy")
    x = _norm_input(kernel, x, "x", dy.dtype)
    if x.shape != dy.shape:
        raise ValueError(f"{kernel}: dy has shape {dy.shape} but x has shape {x.shape}")
    c = x.shape[1]
    g = _groups(kernel, c, num_groups)
    weight = _channel_vector(kernel, "weight", weight, c, x, 1)
    mean, rstd = _dev(mean, x.dtype), _dev(rstd, x.dtype)
    for name, s in (("mean", mean), ("rstd", rstd)):
        if s.shape != (x.shape[0], g):
            raise ValueError(f"{kernel}: {name} has shape {s.shape}, expected {(x.shape[0], g)}")
    if x.size == 0:
        ca = _ca()
        return dy.copy(), ca.zeros((c,), x.dtype), ca.zeros((c,), x.dtype)
    dx, dw, db = _fn(kernel)(_ncl(dy).raw, _ncl(x).raw, weight.raw, mean.raw, rstd.raw, g)
    return _wrap(dx).reshape(x.shape), _wrap(dw), _wrap(db)


# ---------------------------------------------------------------- optimizers (in place)
def _flat(x):
    return x.reshape(-1).raw


def sgd_step(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0,
             nesterov=False, weight_decay=0.0, first_step=False):
    if not param.size:
        return param
    grad = _dev(grad, param.dtype)
    buf = momentum_buffer if momentum_buffer is not None else _ca().empty((0,), param.dtype)
    _fn("sgd_step")(_flat(param), _flat(grad), _flat(buf), float(lr), float(momentum),
                    float(dampening), bool(nesterov), float(weight_decay), bool(first_step))
    return param


def adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
              weight_decay=0.0, decoupled=False):
    if param.size:
        _fn("adam_step")(_flat(param), _flat(_dev(grad, param.dtype)), _flat(exp_avg),
                         _flat(exp_avg_sq), int(step), float(lr), float(betas[0]),
                         float(betas[1]), float(eps), float(weight_decay), bool(decoupled))
    return param


def adam_multi_step(params, grads, exp_avgs, exp_avg_sqs, *, step, lr=1e-3, betas=(0.9, 0.999),
                    eps=1e-8, weight_decay=0.0, decoupled=False, grad_scale=1.0):
    """Every parameter's AdamW update in one call of the device kernel (params, m, v updated in
    their device storage). grad_scale may be a 0-d device array (clip_grad_norm_'s factor,
    computed on the device): the gradients are then scaled on the device first."""
    if not params:
        return ()
    if on_device(grad_scale):
        grads = [g * grad_scale.astype(g.dtype) for g in grads]
        grad_scale = 1.0
    live = [(p, g, m, v) for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs) if p.size]
    if live:
        _fn("adam_multi_step")([_flat(p) for p, _, _, _ in live],
                               [_flat(_dev(g, p.dtype)) for p, g, _, _ in live],
                               [_flat(m) for _, _, m, _ in live],
                               [_flat(v) for _, _, _, v in live], int(step), float(lr),
                               float(betas[0]), float(betas[1]), float(eps), float(weight_decay),
                               bool(decoupled), float(grad_scale))
    return tuple(params)


def get(api_name):
    """The device version of trusted entry point `api_name`, or one that raises saying none
    exists yet."""
    fn = _ADAPTERS.get(api_name)
    if fn is None:
        def missing(*args, **kwargs):
            raise NotImplementedError(f"kernel {api_name!r} has no device version yet: its "
                                      f"arguments are on 'cuda' (move them with .cpu())")
        return missing
    return fn


_ADAPTERS = {name: globals()[name] for name in (
    "gemm", "bmm", "matmul", "relu", "relu_backward", "leaky_relu", "leaky_relu_backward",
    "sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "gelu", "gelu_backward", "clamp",
    "clamp_backward", "bias_add", "bias_grad", "softmax", "log_softmax", "softmax_backward",
    "log_softmax_backward", "cross_entropy", "mse_loss", "layer_norm", "layer_norm_backward",
    "embedding", "embedding_backward", "attention", "attention_backward", "topk", "multinomial",
    "sgd_step", "adam_step", "adam_multi_step", "conv2d", "conv2d_backward", "conv_transpose2d",
    "conv_transpose2d_backward", "max_pool2d", "max_pool2d_backward", "avg_pool2d",
    "avg_pool2d_backward", "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "batch_norm",
    "batch_norm_backward", "group_norm", "group_norm_backward")}
