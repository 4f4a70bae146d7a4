"""The public kernel API on plain numpy arrays, dispatched to the current backend.

Each function validates its inputs once, here in Python (shapes, dtypes, index ranges), makes
them C-contiguous, and calls the backend's kernel of the same name. Compiled code can then trust
its inputs. Every function takes `backend=` to name a backend for one call.

    >>> import numpy as np, fastnn
    >>> a = np.ones((2, 3), np.float32); b = np.ones((3, 4), np.float32)
    >>> fastnn.kernels.matmul(a, b).shape
    (2, 4)
"""
import math

import numpy as np

from .backends import resolve

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# ---------------------------------------------------------------- validation helpers
def _float_array(kernel, name, x, dtype=None):
    x = np.asarray(x)
    if x.dtype not in _FLOATS:
        raise TypeError(f"{kernel}: {name} has unsupported dtype {x.dtype}; "
                        f"expected float32 or float64")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{kernel}: {name} has dtype {x.dtype} but the other inputs are {dtype}")
    return np.ascontiguousarray(x)


def _same_shape(kernel, names, arrays):
    shape = arrays[0].shape
    for n, a in zip(names[1:], arrays[1:]):
        if a.shape != shape:
            raise ValueError(f"{kernel}: {names[0]} has shape {shape} but {n} has shape {a.shape}")


def _ndim(kernel, name, x, ndim):
    if x.ndim != ndim:
        raise ValueError(f"{kernel}: {name} must be {ndim}-D, got shape {x.shape}")


def _at_least_1d(kernel, name, x):
    if x.ndim < 1:
        raise ValueError(f"{kernel}: {name} must have at least one dimension, got a scalar")


def _index_array(kernel, name, ids):
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{kernel}: {name} must be an integer array, got dtype {ids.dtype}")
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    return ids


def _check_range(kernel, name, ids, high, allowed=None):
    if ids.size == 0:
        return
    bad = (ids < 0) | (ids >= high)
    if allowed is not None:
        bad &= ids != allowed
    if bad.any():
        first = int(ids[bad][0])
        raise IndexError(f"{kernel}: {name} value {first} is out of range [0, {high})")


def _rows(x):
    """View an (..., C) array as (N, C)."""
    return x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x


def _gemm_operand(x, trans):
    """Pass an F-contiguous (e.g. transposed) operand without copying by flipping its flag."""
    if not x.flags.c_contiguous and x.ndim == 2 and x.flags.f_contiguous:
        return x.T, not trans
    return np.ascontiguousarray(x), trans


# ---------------------------------------------------------------- GEMM
def gemm(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, backend=None):
    """General matrix multiply: c = alpha * op(a) @ op(b) + beta * c, where op(x) = x.T if trans_x.

    a: (M, K) or (K, M) if trans_a; b: (K, N) or (N, K) if trans_b; c: (M, N), written in place
    when given (it must then be C-contiguous), else allocated. When beta == 0, c is not read.
    Returns c.
    """
    be = resolve(backend)
    a = _float_array("gemm", "a", a)
    b = _float_array("gemm", "b", b, a.dtype)
    _ndim("gemm", "a", a, 2)
    _ndim("gemm", "b", b, 2)
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != k2:
        raise ValueError(f"gemm: inner dimensions differ: op(a) is ({m}, {k}) and op(b) is "
                         f"({k2}, {n}) (a {a.shape}, b {b.shape}, trans_a={trans_a}, "
                         f"trans_b={trans_b})")
    if c is None:
        c = np.empty((m, n), dtype=a.dtype)
        beta = 0.0
    else:
        if not isinstance(c, np.ndarray):
            raise TypeError("gemm: c must be a numpy array (it is written in place)")
        _float_array("gemm", "c", c, a.dtype)
        if c.shape != (m, n):
            raise ValueError(f"gemm: c has shape {c.shape}, expected ({m}, {n})")
        if not c.flags.c_contiguous or not c.flags.writeable:
            raise ValueError("gemm: c must be a writeable C-contiguous array")
    a, trans_a = _gemm_operand(a, trans_a)
    b, trans_b = _gemm_operand(b, trans_b)
    if c.size:
        if k == 0:
            if beta == 0:
                c[...] = 0
            else:
                c *= beta
        else:
            be.gemm(a, b, c, bool(trans_a), bool(trans_b), float(alpha), float(beta))
    return c


def matmul(a, b, *, backend=None):
    """a @ b for 2-D float arrays (M, K) @ (K, N) -> (M, N); 3-D arrays go to bmm."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim == 3 or b.ndim == 3:
        return bmm(a, b, backend=backend)
    return gemm(a, b, backend=backend)


def bmm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, backend=None):
    """Batched matmul: (B, M, K) @ (B, K, N) -> (B, M, N); a 2-D operand is shared by every batch."""
    be = resolve(backend)
    a = _float_array("bmm", "a", a)
    b = _float_array("bmm", "b", b, a.dtype)
    if a.ndim not in (2, 3) or b.ndim not in (2, 3):
        raise ValueError(f"bmm: operands must be 2-D or 3-D, got shapes {a.shape} and {b.shape}")
    if a.ndim == 3 and b.ndim == 3 and a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm: batch sizes differ: a {a.shape}, b {b.shape}")
    nb = a.shape[0] if a.ndim == 3 else b.shape[0]
    if a.ndim == 2:
        a = np.broadcast_to(a, (nb,) + a.shape)
    if b.ndim == 2:
        b = np.broadcast_to(b, (nb,) + b.shape)
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    m, k = (a.shape[2], a.shape[1]) if trans_a else a.shape[1:]
    k2, n = (b.shape[2], b.shape[1]) if trans_b else b.shape[1:]
    if k != k2:
        raise ValueError(f"bmm: inner dimensions differ: a {a.shape}, b {b.shape} "
                         f"(trans_a={trans_a}, trans_b={trans_b})")
    c = np.empty((nb, m, n), dtype=a.dtype)
    if c.size:
        if k == 0:
            c[...] = 0
        else:
            be.gemm_batched(a, b, c, bool(trans_a), bool(trans_b), float(alpha), 0.0)
    return c


# ---------------------------------------------------------------- bias
def bias_add(x, bias, *, backend=None):
    """x + bias, with bias (C,) broadcast over x's last axis (..., C)."""
    be = resolve(backend)
    x = _float_array("bias_add", "x", x)
    bias = _float_array("bias_add", "bias", bias, x.dtype)
    _at_least_1d("bias_add", "x", x)
    if bias.ndim != 1 or bias.shape[0] != x.shape[-1]:
        raise ValueError(f"bias_add: bias has shape {bias.shape}, expected ({x.shape[-1]},) "
                         f"for x of shape {x.shape}")
    if x.size == 0:
        return x.copy()
    return be.bias_add(_rows(x), bias).reshape(x.shape)


def bias_grad(dy, *, backend=None):
    """The bias gradient: dy (..., C) summed over every axis but the last -> (C,)."""
    be = resolve(backend)
    dy = _float_array("bias_grad", "dy", dy)
    _at_least_1d("bias_grad", "dy", dy)
    if dy.size == 0:
        return np.zeros(dy.shape[-1], dtype=dy.dtype)
    return be.bias_grad(_rows(dy))


# ---------------------------------------------------------------- activations
def _unary(kernel, x, be, *args):
    x = _float_array(kernel, "x", x)
    if x.size == 0:
        return x.copy()
    return getattr(be, kernel)(x.reshape(-1), *args).reshape(x.shape)


def _unary_backward(kernel, dy, saved, saved_name, be, *args):
    dy = _float_array(kernel, "dy", dy)
    saved = _float_array(kernel, saved_name, saved, dy.dtype)
    _same_shape(kernel, ("dy", saved_name), (dy, saved))
    if dy.size == 0:
        return dy.copy()
    return getattr(be, kernel)(dy.reshape(-1), saved.reshape(-1), *args).reshape(dy.shape)


def relu(x, *, backend=None):
    """max(x, 0), elementwise."""
    return _unary("relu", x, resolve(backend))


def relu_backward(dy, x, *, backend=None):
    """dx = dy where x > 0, else 0."""
    return _unary_backward("relu_backward", dy, x, "x", resolve(backend))


def leaky_relu(x, negative_slope=0.01, *, backend=None):
    """x if x > 0 else negative_slope * x."""
    return _unary("leaky_relu", x, resolve(backend), float(negative_slope))


def leaky_relu_backward(dy, x, negative_slope=0.01, *, backend=None):
    """dx = dy if x > 0 else negative_slope * dy."""
    return _unary_backward("leaky_relu_backward", dy, x, "x", resolve(backend),
                           float(negative_slope))


def sigmoid(x, *, backend=None):
    """1 / (1 + exp(-x)), computed without overflow."""
    return _unary("sigmoid", x, resolve(backend))


def sigmoid_backward(dy, y, *, backend=None):
    """dx = dy * y * (1 - y), from the forward output y."""
    return _unary_backward("sigmoid_backward", dy, y, "y", resolve(backend))


def tanh(x, *, backend=None):
    """tanh(x)."""
    return _unary("tanh", x, resolve(backend))


def tanh_backward(dy, y, *, backend=None):
    """dx = dy * (1 - y^2), from the forward output y."""
    return _unary_backward("tanh_backward", dy, y, "y", resolve(backend))


def _approximate(kernel, approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"{kernel}: approximate must be 'none' or 'tanh', got {approximate!r}")
    return approximate == "tanh"


def gelu(x, approximate="none", *, backend=None):
    """GELU: x * Phi(x) (approximate='none', exact erf) or the tanh form (approximate='tanh'):
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return _unary("gelu", x, resolve(backend), _approximate("gelu", approximate))


def gelu_backward(dy, x, approximate="none", *, backend=None):
    """dx = dy * d gelu(x) / dx, from the forward input x."""
    return _unary_backward("gelu_backward", dy, x, "x", resolve(backend),
                           _approximate("gelu_backward", approximate))


# ---------------------------------------------------------------- softmax family
def _row_op(kernel, x, be):
    x = _float_array(kernel, "x", x)
    _at_least_1d(kernel, "x", x)
    if x.size == 0:
        return x.copy()
    return getattr(be, kernel)(_rows(x)).reshape(x.shape)


def _row_backward(kernel, dy, y, be):
    dy = _float_array(kernel, "dy", dy)
    y = _float_array(kernel, "y", y, dy.dtype)
    _same_shape(kernel, ("dy", "y"), (dy, y))
    _at_least_1d(kernel, "dy", dy)
    if dy.size == 0:
        return dy.copy()
    return getattr(be, kernel)(_rows(dy), _rows(y)).reshape(dy.shape)


def softmax(x, *, backend=None):
    """softmax over the last axis: exp(x - max) / sum(exp(x - max)); finite for large logits."""
    return _row_op("softmax", x, resolve(backend))


def softmax_backward(dy, y, *, backend=None):
    """dx = y * (dy - sum(dy * y, last axis)), from the forward output y."""
    return _row_backward("softmax_backward", dy, y, resolve(backend))


def log_softmax(x, *, backend=None):
    """log softmax over the last axis: x - max - log(sum(exp(x - max)))."""
    return _row_op("log_softmax", x, resolve(backend))


def log_softmax_backward(dy, y, *, backend=None):
    """dx = dy - exp(y) * sum(dy, last axis), from the forward output y."""
    return _row_backward("log_softmax_backward", dy, y, resolve(backend))


def cross_entropy(logits, targets, *, ignore_index=-100, reduction="mean", backend=None):
    """Cross-entropy fused with log-softmax: the loss and its gradient in one pass.

    logits (N, C), targets int (N,) in [0, C) or equal to ignore_index.
    reduction 'mean' (over non-ignored rows, as PyTorch), 'sum', or 'none' (per-row losses; the
    gradient is then that of their sum). Returns (loss, dlogits).
    """
    be = resolve(backend)
    logits = _float_array("cross_entropy", "logits", logits)
    _ndim("cross_entropy", "logits", logits, 2)
    targets = _index_array("cross_entropy", "targets", targets)
    if targets.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy: targets has shape {targets.shape}, expected "
                         f"({logits.shape[0]},) for logits of shape {logits.shape}")
    _check_range("cross_entropy", "targets", targets, logits.shape[1], allowed=ignore_index)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', "
                         f"got {reduction!r}")
    count = int(np.count_nonzero(targets != ignore_index))
    scale = 1.0 / count if (reduction == "mean" and count) else 1.0
    if logits.size == 0:
        losses, grad = np.zeros(logits.shape[0], logits.dtype), np.zeros_like(logits)
    else:
        losses, grad = be.cross_entropy(logits, targets, int(ignore_index), scale)
    if reduction == "none":
        return losses, grad
    total = losses.sum(dtype=np.float64)
    if reduction == "sum":
        return logits.dtype.type(total), grad
    return logits.dtype.type(total / count if count else math.nan), grad


def mse_loss(pred, target, *, backend=None):
    """Mean squared error over all elements and its gradient: (mean((p - t)^2), 2 (p - t) / n)."""
    be = resolve(backend)
    pred = _float_array("mse_loss", "pred", pred)
    target = _float_array("mse_loss", "target", target, pred.dtype)
    _same_shape("mse_loss", ("pred", "target"), (pred, target))
    if pred.size == 0:
        return pred.dtype.type(math.nan), pred.copy()
    loss, grad = be.mse_loss(pred.reshape(-1), target.reshape(-1))
    return pred.dtype.type(loss), grad.reshape(pred.shape)


# ---------------------------------------------------------------- layer norm
def layer_norm(x, weight=None, bias=None, eps=1e-5, *, backend=None):
    """Layer norm over the last axis. Returns (y, mean, rstd) with mean and rstd = 1/sqrt(var+eps)
    of shape x.shape[:-1], saved for the backward pass. weight/bias (C,) default to 1 and 0."""
    be = resolve(backend)
    x = _float_array("layer_norm", "x", x)
    _at_least_1d("layer_norm", "x", x)
    c = x.shape[-1]
    weight = np.ones(c, x.dtype) if weight is None else _float_array("layer_norm", "weight", weight,
                                                                     x.dtype)
    bias = np.zeros(c, x.dtype) if bias is None else _float_array("layer_norm", "bias", bias,
                                                                  x.dtype)
    for name, p in (("weight", weight), ("bias", bias)):
        if p.shape != (c,):
            raise ValueError(f"layer_norm: {name} has shape {p.shape}, expected ({c},) for x of "
                             f"shape {x.shape}")
    if x.size == 0:
        stats = np.zeros(x.shape[:-1], x.dtype)
        return x.copy(), stats, stats.copy()
    y, mean, rstd = be.layer_norm(_rows(x), weight, bias, float(eps))
    return y.reshape(x.shape), mean.reshape(x.shape[:-1]), rstd.reshape(x.shape[:-1])


def layer_norm_backward(dy, x, weight, mean, rstd, *, backend=None):
    """Gradients of layer_norm: returns (dx, dweight, dbias). weight may be None (ones)."""
    be = resolve(backend)
    dy = _float_array("layer_norm_backward", "dy", dy)
    x = _float_array("layer_norm_backward", "x", x, dy.dtype)
    _same_shape("layer_norm_backward", ("dy", "x"), (dy, x))
    _at_least_1d("layer_norm_backward", "dy", dy)
    c = x.shape[-1]
    weight = np.ones(c, x.dtype) if weight is None else _float_array(
        "layer_norm_backward", "weight", weight, x.dtype)
    if weight.shape != (c,):
        raise ValueError(f"layer_norm_backward: weight has shape {weight.shape}, expected ({c},)")
    mean = _float_array("layer_norm_backward", "mean", mean, x.dtype)
    rstd = _float_array("layer_norm_backward", "rstd", rstd, x.dtype)
    for name, s in (("mean", mean), ("rstd", rstd)):
        if s.shape != x.shape[:-1]:
            raise ValueError(f"layer_norm_backward: {name} has shape {s.shape}, expected "
                             f"{x.shape[:-1]}")
    if x.size == 0:
        return dy.copy(), np.zeros(c, x.dtype), np.zeros(c, x.dtype)
    dx, dw, db = be.layer_norm_backward(_rows(dy), _rows(x), weight, mean.reshape(-1),
                                        rstd.reshape(-1))
    return dx.reshape(x.shape), dw, db


# ---------------------------------------------------------------- embedding
def embedding(weight, ids, *, backend=None):
    """Row gather: weight (V, C) indexed by integer ids of any shape -> ids.shape + (C,)."""
    be = resolve(backend)
    weight = _float_array("embedding", "weight", weight)
    _ndim("embedding", "weight", weight, 2)
    ids = _index_array("embedding", "ids", ids)
    _check_range("embedding", "ids", ids, weight.shape[0])
    flat = ids.reshape(-1)
    if flat.size == 0 or weight.shape[1] == 0:
        return np.zeros(ids.shape + (weight.shape[1],), weight.dtype)
    return be.embedding(weight, flat).reshape(ids.shape + (weight.shape[1],))


def embedding_backward(dout, ids, num_embeddings, *, backend=None):
    """Scatter-add: dweight[ids[i]] += dout[i]; dout is ids.shape + (C,). Returns (V, C)."""
    be = resolve(backend)
    dout = _float_array("embedding_backward", "dout", dout)
    ids = _index_array("embedding_backward", "ids", ids)
    if dout.shape[:-1] != ids.shape or dout.ndim != ids.ndim + 1:
        raise ValueError(f"embedding_backward: dout has shape {dout.shape}, expected "
                         f"{ids.shape} + (C,)")
    num_embeddings = int(num_embeddings)
    if num_embeddings < 0:
        raise ValueError("embedding_backward: num_embeddings must be >= 0")
    _check_range("embedding_backward", "ids", ids, num_embeddings)
    c = dout.shape[-1]
    if ids.size == 0 or c == 0:
        return np.zeros((num_embeddings, c), dout.dtype)
    return be.embedding_backward(dout.reshape(-1, c), ids.reshape(-1), num_embeddings)


# ---------------------------------------------------------------- optimizers
def _state_array(kernel, name, x, like):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{kernel}: {name} must be a numpy array (it is updated in place)")
    if x.dtype != like.dtype:
        raise TypeError(f"{kernel}: {name} has dtype {x.dtype} but param is {like.dtype}")
    if x.shape != like.shape:
        raise ValueError(f"{kernel}: {name} has shape {x.shape} but param has {like.shape}")
    if not x.flags.c_contiguous or not x.flags.writeable:
        raise ValueError(f"{kernel}: {name} must be a writeable C-contiguous array")
    return x.reshape(-1)


def sgd_step(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0,
             nesterov=False, weight_decay=0.0, first_step=False, backend=None):
    """One in-place SGD update with PyTorch's rule:
        d = grad + weight_decay * param
        buf = d (first step) or momentum * buf + (1 - dampening) * d
        d = d + momentum * buf (nesterov) or buf
        param -= lr * d
    momentum_buffer (same shape as param) is required when momentum != 0."""
    be = resolve(backend)
    if not isinstance(param, np.ndarray) or param.dtype not in _FLOATS:
        raise TypeError("sgd_step: param must be a float32 or float64 numpy array")
    p = _state_array("sgd_step", "param", param, param)
    g = _float_array("sgd_step", "grad", grad, param.dtype)
    if g.shape != param.shape:
        raise ValueError(f"sgd_step: grad has shape {g.shape} but param has {param.shape}")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("sgd_step: nesterov needs momentum > 0 and dampening == 0")
    if momentum != 0:
        if momentum_buffer is None:
            raise ValueError("sgd_step: momentum != 0 needs a momentum_buffer")
        buf = _state_array("sgd_step", "momentum_buffer", momentum_buffer, param)
    else:
        buf = np.empty(0, param.dtype)
    if p.size:
        be.sgd_step(p, g.reshape(-1), buf, float(lr), float(momentum), float(dampening),
                    bool(nesterov), float(weight_decay), bool(first_step))
    return param


def adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
              weight_decay=0.0, decoupled=False, backend=None):
    """One in-place Adam update (PyTorch's rule, bias-corrected; step counts from 1).
    decoupled=True is AdamW: param *= 1 - lr * weight_decay instead of adding it to the grad."""
    be = resolve(backend)
    if not isinstance(param, np.ndarray) or param.dtype not in _FLOATS:
        raise TypeError("adam_step: param must be a float32 or float64 numpy array")
    p = _state_array("adam_step", "param", param, param)
    g = _float_array("adam_step", "grad", grad, param.dtype)
    if g.shape != param.shape:
        raise ValueError(f"adam_step: grad has shape {g.shape} but param has {param.shape}")
    m = _state_array("adam_step", "exp_avg", exp_avg, param)
    v = _state_array("adam_step", "exp_avg_sq", exp_avg_sq, param)
    if int(step) < 1:
        raise ValueError(f"adam_step: step must be >= 1, got {step}")
    b1, b2 = betas
    if p.size:
        be.adam_step(p, g.reshape(-1), m, v, int(step), float(lr), float(b1), float(b2),
                     float(eps), float(weight_decay), bool(decoupled))
    return param


# ---------------------------------------------------------------- attention
def _attention_inputs(kernel, q, k, v):
    q = _float_array(kernel, "q", q)
    k = _float_array(kernel, "k", k, q.dtype)
    v = _float_array(kernel, "v", v, q.dtype)
    for name, x in (("q", q), ("k", k), ("v", v)):
        _ndim(kernel, name, x, 4)
    if k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(f"{kernel}: expected q (B, H, T, D) and k, v (B, H, S, D); got q "
                         f"{q.shape}, k {k.shape}, v {v.shape}")
    return q, k, v


def attention(q, k, v, *, causal=False, scale=None, backend=None):
    """Scaled dot-product attention: softmax(q k^T * scale + mask) v.

    q (B, H, T, D), k and v (B, H, S, D); scale defaults to 1/sqrt(D); causal masks key j > query i
    (top-left, as PyTorch's is_causal). Returns (out (B, H, T, D), lse (B, H, T)), where lse is the
    log-sum-exp of each row of scores, all the backward pass needs besides the inputs."""
    be = resolve(backend)
    q, k, v = _attention_inputs("attention", q, k, v)
    if q.shape[2] and k.shape[2] == 0:
        raise ValueError("attention: k and v have no positions (S == 0) to attend to")
    if q.size == 0:
        return np.zeros(q.shape, q.dtype), np.zeros(q.shape[:3], q.dtype)
    scale = 1.0 / math.sqrt(q.shape[3]) if scale is None else float(scale)
    return be.attention(q, k, v, bool(causal), scale)


def attention_backward(dout, q, k, v, out, lse, *, causal=False, scale=None, backend=None):
    """Gradients of attention: returns (dq, dk, dv), from the forward's out and lse."""
    be = resolve(backend)
    q, k, v = _attention_inputs("attention_backward", q, k, v)
    dout = _float_array("attention_backward", "dout", dout, q.dtype)
    out = _float_array("attention_backward", "out", out, q.dtype)
    lse = _float_array("attention_backward", "lse", lse, q.dtype)
    _same_shape("attention_backward", ("q", "dout", "out"), (q, dout, out))
    if lse.shape != q.shape[:3]:
        raise ValueError(f"attention_backward: lse has shape {lse.shape}, expected {q.shape[:3]}")
    if q.size == 0 or k.size == 0:
        return np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    scale = 1.0 / math.sqrt(q.shape[3]) if scale is None else float(scale)
    return be.attention_backward(dout, q, k, v, out, lse, bool(causal), scale)
