"""Elementwise kernels: bias, activations and their backward passes.

C: csrc/ops_bias.c, csrc/ops_activations.c; Numba and numpy: backends/*/ops.py."""
import functools
import math

import numpy as np

from ..registry import Bench, Gradient, declare
from .._checks import (_FLOATS, _at_least_1d, _check_range, _float_array, _gemm_operand,
                       _index_array, _ndim, _rows, _same_shape, get_backend, ready, resolve)
from . import examples as ex




def _both_gelu(generator):
    """GELU's examples in both forms: the exact erf one and the tanh approximation."""
    def examples(rng, dtype):
        out = generator(rng, dtype)
        return out + [(args, dict(kw, approximate="tanh")) for args, kw in out]
    return examples


# ---------------------------------------------------------------- bias
@declare(family="bias", signature="bias_add(x (N, C), bias (C,)) -> (N, C)", examples=ex.bias_add)
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


@declare(family="bias", signature="bias_grad(dy (N, C)) -> (C,)", examples=ex.bias_grad)
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


@declare(family="activations", signature="relu(x (n,)) -> (n,)", examples=ex.unary, bench=Bench("unary", dict(backward="relu_backward", torch="relu")))
def relu(x, *, backend=None):
    """max(x, 0), elementwise."""
    return _unary("relu", x, resolve(backend))


@declare(family="activations", signature="relu_backward(dy (n,), x (n,)) -> dx (n,)", examples=ex.with_reference(ex.unary_backward, "relu"), gradient=Gradient("relu", "x"))
def relu_backward(dy, x, *, backend=None):
    """dx = dy where x > 0, else 0."""
    return _unary_backward("relu_backward", dy, x, "x", resolve(backend))


@declare(family="activations", signature="leaky_relu(x (n,), negative_slope) -> (n,)", examples=functools.partial(ex.unary, negative_slope=0.1))
def leaky_relu(x, negative_slope=0.01, *, backend=None):
    """x if x > 0 else negative_slope * x."""
    return _unary("leaky_relu", x, resolve(backend), float(negative_slope))


@declare(family="activations", signature="leaky_relu_backward(dy (n,), x (n,), negative_slope) -> dx (n,)", examples=ex.with_reference(ex.unary_backward, "leaky_relu", negative_slope=0.1), gradient=Gradient("leaky_relu", "x"))
def leaky_relu_backward(dy, x, negative_slope=0.01, *, backend=None):
    """dx = dy if x > 0 else negative_slope * dy."""
    return _unary_backward("leaky_relu_backward", dy, x, "x", resolve(backend),
                           float(negative_slope))


@declare(family="activations", signature="sigmoid(x (n,)) -> (n,)", examples=ex.unary)
def sigmoid(x, *, backend=None):
    """1 / (1 + exp(-x)), computed without overflow."""
    return _unary("sigmoid", x, resolve(backend))


@declare(family="activations", signature="sigmoid_backward(dy (n,), y (n,)) -> dx (n,)", examples=ex.with_reference(ex.unary_backward, "sigmoid", saved="y"), gradient=Gradient("sigmoid", "y"))
def sigmoid_backward(dy, y, *, backend=None):
    """dx = dy * y * (1 - y), from the forward output y."""
    return _unary_backward("sigmoid_backward", dy, y, "y", resolve(backend))


@declare(family="activations", signature="tanh(x (n,)) -> (n,)", examples=ex.unary)
def tanh(x, *, backend=None):
    """tanh(x)."""
    return _unary("tanh", x, resolve(backend))


@declare(family="activations", signature="tanh_backward(dy (n,), y (n,)) -> dx (n,)", examples=ex.with_reference(ex.unary_backward, "tanh", saved="y"), gradient=Gradient("tanh", "y"))
def tanh_backward(dy, y, *, backend=None):
    """dx = dy * (1 - y^2), from the forward output y."""
    return _unary_backward("tanh_backward", dy, y, "y", resolve(backend))


def _approximate(kernel, approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"{kernel}: approximate must be 'none' or 'tanh', got {approximate!r}")
    return approximate == "tanh"


@declare(family="activations", signature="gelu(x (n,), approximate: bool) -> (n,)", examples=_both_gelu(ex.unary), bench=Bench("unary", dict(backward="gelu_backward", kwargs=dict(approximate="tanh"), torch="gelu", label="GELU (tanh form)")))
def gelu(x, approximate="none", *, backend=None):
    """GELU: x * Phi(x) (approximate='none', exact erf) or the tanh form (approximate='tanh'):
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return _unary("gelu", x, resolve(backend), _approximate("gelu", approximate))


@declare(family="activations", signature="gelu_backward(dy (n,), x (n,), approximate: bool) -> dx (n,)", examples=_both_gelu(ex.with_reference(ex.unary_backward, "gelu")), gradient=Gradient("gelu", "x"))
def gelu_backward(dy, x, approximate="none", *, backend=None):
    """dx = dy * d gelu(x) / dx, from the forward input x."""
    return _unary_backward("gelu_backward", dy, x, "x", resolve(backend),
                           _approximate("gelu_backward", approximate))


def _bounds(kernel, min, max):
    """clamp's optional bounds as the floats (lo, hi) every backend takes: -inf/+inf for a
    missing one."""
    if min is None and max is None:
        raise ValueError(f"{kernel}: at least one of min or max must be given")
    return (-math.inf if min is None else float(min)), (math.inf if max is None else float(max))


@declare(family="activations", signature="clamp(x (n,), lo, hi) -> (n,); lo, hi: floats, "
         "-inf/+inf for a missing bound, never NaN", examples=ex.clamp,
         bench=Bench("unary", dict(backward="clamp_backward", kwargs=dict(min=-1.0, max=1.0),
                                   torch="clamp")))
def clamp(x, min=None, max=None, *, backend=None):
    """min(max(x, min), max), as torch.clamp: either bound may be None; min > max gives max."""
    lo, hi = _bounds("clamp", min, max)
    if lo != lo or hi != hi:        # a NaN bound makes every element NaN, as in PyTorch
        return np.full(np.shape(x), np.nan, _float_array("clamp", "x", x).dtype)
    return _unary("clamp", x, resolve(backend), lo, hi)


@declare(family="activations", signature="clamp_backward(dy (n,), x (n,), lo, hi) -> dx (n,)",
         examples=ex.clamp_backward, gradient=Gradient("clamp", "x"))
def clamp_backward(dy, x, min=None, max=None, *, backend=None):
    """dx = dy where min <= x <= max (bounds included, as PyTorch), else 0."""
    lo, hi = _bounds("clamp_backward", min, max)
    if lo != lo or hi != hi:        # no x lies within a NaN bound: an empty interval instead
        lo, hi = math.inf, -math.inf
    return _unary_backward("clamp_backward", dy, x, "x", resolve(backend), lo, hi)




# ---------------------------------------------------------------- trusted entry points
@relu.kernel.set_trusted
def _relu_trusted(x):
    if ready(x.dtype, x):
        return get_backend().relu(x.reshape(-1)).reshape(x.shape)
    return relu(x)


@relu_backward.kernel.set_trusted
def _relu_backward_trusted(dy, x):
    if dy.shape == x.shape and ready(x.dtype, dy, x):
        return get_backend().relu_backward(dy.reshape(-1), x.reshape(-1)).reshape(x.shape)
    return relu_backward(dy, x)


@bias_grad.kernel.set_trusted
def _bias_grad_trusted(dy):
    if dy.ndim == 2 and ready(dy.dtype, dy):
        return get_backend().bias_grad(dy)
    return bias_grad(dy)


def _bounds_trusted(min, max):
    """(lo, hi) when they can go to a backend as they are (not both missing, no NaN), else None."""
    lo = -math.inf if min is None else min
    hi = math.inf if max is None else max
    if lo == lo and hi == hi and (min is not None or max is not None):
        return lo, hi
    return None


@clamp.kernel.set_trusted
def _clamp_trusted(x, min=None, max=None):
    b = _bounds_trusted(min, max)
    if b is not None and ready(x.dtype, x):
        return get_backend().clamp(x.reshape(-1), *b).reshape(x.shape)
    return clamp(x, min, max)


@clamp_backward.kernel.set_trusted
def _clamp_backward_trusted(dy, x, min=None, max=None):
    b = _bounds_trusted(min, max)
    if b is not None and dy.shape == x.shape and ready(x.dtype, dy, x):
        return get_backend().clamp_backward(dy.reshape(-1), x.reshape(-1), *b).reshape(x.shape)
    return clamp_backward(dy, x, min, max)


# ---------------------------------------------------------------- out=: results into given arrays
# The trusted GELU and layer-norm entry points take out=: arrays the result is written into
# instead of new ones (a fused op's pooled buffers; fastnn.models.gpt). These backends take it
# down to the kernel; any other gets the result copied in.
_OUT_BACKENDS = ("numpy", "numba", "cython")


def _check_out(kernel, outs, shapes, dt, inputs):
    """Raise unless each of outs is a writeable C-contiguous numpy array of its shape in shapes
    and dtype dt that overlaps none of inputs (the kernels read inputs while writing out)."""
    for o, shape in zip(outs, shapes):
        if type(o) is not np.ndarray:
            raise TypeError(f"{kernel}: out must be numpy arrays (written in place), got "
                            f"{type(o).__name__}")
        if o.dtype != dt or o.shape != shape:
            raise ValueError(f"{kernel}: out has shape {o.shape} and dtype {o.dtype}, expected "
                             f"{shape} and {dt}")
        if not (o.flags.c_contiguous and o.flags.writeable):
            raise ValueError(f"{kernel}: out must be a writeable C-contiguous array")
        if any(i is not None and np.may_share_memory(o, i) for i in inputs):
            raise ValueError(f"{kernel}: out must not overlap the inputs")


def _copied_out(outs, results):
    """The checked path's results written into outs (a single array or a tuple, as results)."""
    if isinstance(outs, tuple):
        for o, r in zip(outs, results):
            np.copyto(o, r)
        return outs
    np.copyto(outs, results)
    return outs


@gelu.kernel.set_trusted
def _gelu_trusted(x, approximate="none", *, out=None):
    """gelu; out: an array of x's shape and dtype to write the result into (returned)."""
    if out is not None:
        _check_out("gelu", (out,), (x.shape,), x.dtype, (x,))
    if approximate in ("none", "tanh") and type(x) is np.ndarray and ready(x.dtype, x):
        be = get_backend()
        if out is None:
            return be.gelu(x.reshape(-1), approximate == "tanh").reshape(x.shape)
        if be.name in _OUT_BACKENDS:
            be.gelu(x.reshape(-1), approximate == "tanh", out.reshape(-1))
            return out
    y = gelu(x, approximate)
    return y if out is None else _copied_out(out, y)


@gelu_backward.kernel.set_trusted
def _gelu_backward_trusted(dy, x, approximate="none", *, out=None):
    """gelu_backward; out: an array of dy's shape and dtype to write dx into (returned)."""
    if out is not None:
        _check_out("gelu_backward", (out,), (dy.shape,), dy.dtype, (dy, x))
    if (approximate in ("none", "tanh") and type(dy) is type(x) is np.ndarray
            and dy.shape == x.shape and ready(x.dtype, dy, x)):
        be = get_backend()
        if out is None:
            return be.gelu_backward(dy.reshape(-1), x.reshape(-1),
                                    approximate == "tanh").reshape(x.shape)
        if be.name in _OUT_BACKENDS:
            be.gelu_backward(dy.reshape(-1), x.reshape(-1), approximate == "tanh",
                             out.reshape(-1))
            return out
    dx = gelu_backward(dy, x, approximate)
    return dx if out is None else _copied_out(out, dx)
