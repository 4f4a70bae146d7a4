"""Row kernels over the last axis: softmax, log_softmax, cross_entropy, mse_loss, layer_norm.

C: csrc/ops_softmax.c, ops_loss.c, ops_layernorm.c; Numba and numpy: backends/*/ops.py."""
import math

import numpy as np

from ..registry import Bench, Gradient, declare
from .._checks import (_FLOATS, _at_least_1d, _check_range, _float_array, _gemm_operand,
                       _index_array, _ndim, _rows, _same_shape, get_backend, ready, resolve)
from . import examples as ex
from .elementwise import _OUT_BACKENDS, _check_out, _copied_out


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


@declare(family="softmax", signature="softmax(x (N, C)) -> (N, C)", examples=ex.rows, bench=Bench("softmax"))
def softmax(x, *, backend=None):
    """softmax over the last axis: exp(x - max) / sum(exp(x - max)); finite for large logits."""
    return _row_op("softmax", x, resolve(backend))


@declare(family="softmax", signature="softmax_backward(dy (N, C), y (N, C)) -> dx (N, C)", examples=ex.with_reference(ex.rows_backward, "softmax"), gradient=Gradient("softmax", "y"))
def softmax_backward(dy, y, *, backend=None):
    """dx = y * (dy - sum(dy * y, last axis)), from the forward output y."""
    return _row_backward("softmax_backward", dy, y, resolve(backend))


@declare(family="softmax", signature="log_softmax(x (N, C)) -> (N, C)", examples=ex.rows)
def log_softmax(x, *, backend=None):
    """log softmax over the last axis: x - max - log(sum(exp(x - max)))."""
    return _row_op("log_softmax", x, resolve(backend))


@declare(family="softmax", signature="log_softmax_backward(dy (N, C), y (N, C)) -> dx (N, C)", examples=ex.with_reference(ex.rows_backward, "log_softmax"), gradient=Gradient("log_softmax", "y"))
def log_softmax_backward(dy, y, *, backend=None):
    """dx = dy - exp(y) * sum(dy, last axis), from the forward output y."""
    return _row_backward("log_softmax_backward", dy, y, resolve(backend))


@declare(family="losses", signature="cross_entropy(logits (N, C), targets int64 (N,), ignore_index, grad_scale) -> (losses (N,), dlogits (N, C))", examples=ex.cross_entropy, bench=Bench("cross_entropy"))
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


@declare(family="losses", signature="mse_loss(pred (n,), target (n,)) -> (loss float, grad (n,))", examples=ex.mse_loss)
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
@declare(family="layer_norm", signature="layer_norm(x (N, C), weight (C,), bias (C,), eps) -> (y, mean (N,), rstd (N,))", doc="Layer norm over the last axis; returns (y, mean, rstd) for the backward pass.", examples=ex.layer_norm, bench=Bench("layer_norm"))
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


@declare(family="layer_norm", signature="layer_norm_backward(dy (N, C), x (N, C), weight (C,), mean (N,), rstd (N,)) -> (dx, dweight, dbias)", examples=ex.with_reference(ex.layer_norm_backward, "layer_norm"))
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




def _ln_ready(x, *params):
    """x a ready 2-D array and each of params None or a ready (C,) array."""
    if type(x) is not np.ndarray or x.ndim != 2 or not ready(x.dtype, x):
        return False
    c = x.shape[1]
    return all(p is None or (type(p) is np.ndarray and p.shape == (c,) and ready(x.dtype, p))
               for p in params)


@layer_norm.kernel.set_trusted
def _layer_norm_trusted(x, weight=None, bias=None, eps=1e-5, *, out=None):
    """layer_norm; out: None or (y, mean, rstd) arrays of the results' shapes and x's dtype to
    write them into (returned)."""
    if out is not None:
        out = tuple(out)
        _check_out("layer_norm", out, (x.shape, x.shape[:-1], x.shape[:-1]), x.dtype,
                   (x, weight, bias))
    if _ln_ready(x, weight, bias):
        be = get_backend()
        if out is None or be.name in _OUT_BACKENDS:
            c = x.shape[1]
            return be.layer_norm(x, np.ones(c, x.dtype) if weight is None else weight,
                                 np.zeros(c, x.dtype) if bias is None else bias, float(eps),
                                 *(() if out is None else (out,)))
    got = layer_norm(x, weight, bias, eps)
    return got if out is None else _copied_out(out, got)


@layer_norm_backward.kernel.set_trusted
def _layer_norm_backward_trusted(dy, x, weight, mean, rstd, *, out=None):
    """layer_norm_backward; out: None or an array of x's shape and dtype to write dx into
    (returned as the first result; dweight and dbias are new)."""
    if out is not None:
        _check_out("layer_norm_backward", (out,), (x.shape,), x.dtype, (dy, x, weight, mean, rstd))
    if (_ln_ready(x, weight) and type(dy) is type(mean) is type(rstd) is np.ndarray
            and dy.shape == x.shape and mean.shape == rstd.shape == x.shape[:1]
            and ready(x.dtype, dy, mean, rstd)):
        be = get_backend()
        if out is None or be.name in _OUT_BACKENDS:
            w = np.ones(x.shape[1], x.dtype) if weight is None else weight
            return be.layer_norm_backward(dy, x, w, mean, rstd,
                                          *(() if out is None else (out,)))
    dx, dw, db = layer_norm_backward(dy, x, weight, mean, rstd)
    return (dx if out is None else _copied_out(out, dx)), dw, db


_U64 = np.dtype(np.uint64)
_max_reduce, _add_reduce = np.maximum.reduce, np.add.reduce


@cross_entropy.kernel.set_trusted
def _cross_entropy_trusted(logits, targets, *, ignore_index=-100, reduction="mean"):
    """Straight to the backend when every target is a valid class (the common case) and the
    reduction is mean or sum; otherwise the validated path. The kernels index logits and write
    grad rows with the targets unchecked, so the range check here is what keeps them in bounds:
    one max over the targets read as uint64 (a negative int64 becomes >= 2**63, so max < c
    means 0 <= every target < c). The ufuncs' reduce is called directly, skipping the
    ndarray methods' Python wrappers (a few microseconds per step at the MLP's sizes)."""
    n, c = logits.shape
    if (reduction != "none" and targets.dtype == np.int64 and targets.shape == (n,)
            and not 0 <= ignore_index < c and ready(logits.dtype, logits)
            and targets.flags.c_contiguous and n and _max_reduce(targets.view(_U64)) < c):
        losses, grad = get_backend().cross_entropy(logits, targets, int(ignore_index),
                                                   1.0 / n if reduction == "mean" else 1.0)
        total = _add_reduce(losses, None, np.float64)
        return logits.dtype.type(total / n if reduction == "mean" else total), grad
    return cross_entropy(logits, targets, ignore_index=ignore_index, reduction=reduction)
