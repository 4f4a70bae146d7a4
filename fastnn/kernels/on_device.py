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
    "sgd_step", "adam_step", "adam_multi_step")}
