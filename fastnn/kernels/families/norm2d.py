"""Normalization over channels: batch_norm (training and eval, with PyTorch's running-statistics
update) and group_norm, with their backward passes.

batch_norm, as torch.native_batch_norm:
  training  mean and biased variance per channel over (N, *spatial); y = (x - mean) invstd w + b
            with invstd = 1 / sqrt(var + eps); the running statistics are updated in place:
                running_mean = (1 - m) running_mean + m mean
                running_var  = (1 - m) running_var  + m var n / (n - 1)     (unbiased)
            momentum None means the cumulative average, m = 1 / num_batches_tracked (the count
            including this batch), as nn.BatchNorm computes it
  eval      the running statistics normalize; nothing is updated
  returns   (y, mean, invstd): the statistics used, which the backward takes
group_norm, as torch.native_group_norm: statistics per (sample, group of C / G channels);
returns (y, mean (N, G), rstd (N, G)).

Inputs are (N, C, *spatial) (N, C included); the backends see (N, C, L).
C: csrc/norm2d.c; Numba, numpy and CUDA: backends/*/pool.py.
"""
import numpy as np

from ..registry import Bench, declare
from .._checks import _float_array, resolve


def _input(kernel, x, name="x", dtype=None):
    x = _float_array(kernel, name, x, dtype)
    if x.ndim < 2:
        raise ValueError(f"{kernel}: {name} must be at least 2-D (N, C, *spatial), got shape "
                         f"{x.shape}")
    if x.shape[1] == 0:
        raise ValueError(f"{kernel}: {name} has no channels (shape {x.shape})")
    return x


def _ncl(x):
    return x.reshape(x.shape[0], x.shape[1], -1)


def _param(kernel, name, p, c, dtype, default):
    if p is None:
        if default is None:
            raise ValueError(f"{kernel}: {name} is required")
        return np.full(c, default, dtype)
    p = _float_array(kernel, name, p, dtype)
    if p.shape != (c,):
        raise ValueError(f"{kernel}: {name} has shape {p.shape}, expected ({c},)")
    return p


def _stat(kernel, name, s, c, dtype):
    if not isinstance(s, np.ndarray):
        raise TypeError(f"{kernel}: {name} must be a numpy array (it is updated in place)")
    if s.dtype != dtype:
        raise TypeError(f"{kernel}: {name} has dtype {s.dtype} but x is {dtype}")
    if s.shape != (c,):
        raise ValueError(f"{kernel}: {name} has shape {s.shape}, expected ({c},)")
    return s


# ---------------------------------------------------------------- batch norm
@declare(family="norm2d", signature="batch_norm(x (N, C, L), weight (C,), bias (C,), running_mean (C,) or (0,), running_var (C,) or (0,), training, momentum, eps) -> (y (N, C, L), mean (C,), invstd (C,))", doc="Batch norm over (N, *spatial) per channel, training (running stats updated in place) or eval; returns (y, mean, invstd).", examples=lambda rng, dtype: batch_norm_examples(rng, dtype), bench=Bench("batch_norm"))
def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, num_batches_tracked=None, backend=None):
    """Batch norm of x (N, C, *spatial), F.batch_norm's arguments. Returns (y, mean, invstd),
    the per-channel statistics used (the batch's when training, else the running ones), which
    batch_norm_backward takes. Training updates running_mean/var in place (when given)."""
    kernel = "batch_norm"
    be = resolve(backend)
    x = _input(kernel, x)
    c = x.shape[1]
    weight = _param(kernel, "weight", weight, c, x.dtype, 1)
    bias = _param(kernel, "bias", bias, c, x.dtype, 0)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{kernel}: give both running_mean and running_var, or neither")
    if running_mean is None:
        if not training:
            raise ValueError(f"{kernel}: eval mode (training=False) needs running_mean and "
                             f"running_var")
        running_mean = running_var = np.empty(0, x.dtype)
    else:
        running_mean = _stat(kernel, "running_mean", running_mean, c, x.dtype)
        running_var = _stat(kernel, "running_var", running_var, c, x.dtype)
        if training and not (running_mean.flags.c_contiguous and running_var.flags.c_contiguous):
            raise ValueError(f"{kernel}: running_mean and running_var must be C-contiguous "
                             f"(they are updated in place)")
    if momentum is None:
        if training and running_mean.size and (num_batches_tracked is None
                                               or int(num_batches_tracked) < 1):
            raise ValueError(f"{kernel}: momentum=None (cumulative average) needs "
                             f"num_batches_tracked >= 1, the count including this batch")
        momentum = 1.0 / int(num_batches_tracked) if num_batches_tracked else 0.0
    n = x.shape[0] * (x.size // (x.shape[0] * c) if x.shape[0] else 0)
    if training and n == 1:                                   # as F.batch_norm
        raise ValueError(f"{kernel}: expected more than 1 value per channel when training, got "
                         f"input of shape {x.shape}")
    if x.size == 0:
        inv = 1 / np.sqrt(running_var + x.dtype.type(eps)) if not training else np.zeros(c,
                                                                                     x.dtype)
        return x.copy(), (running_mean.copy() if not training else np.zeros(c, x.dtype)), inv
    y, mean, invstd = be.batch_norm(_ncl(x), weight, bias, running_mean, running_var,
                                    bool(training), float(momentum), float(eps))
    return y.reshape(x.shape), mean, invstd


@declare(family="norm2d", signature="batch_norm_backward(dy (N, C, L), x (N, C, L), weight (C,), mean (C,), invstd (C,), training) -> (dx, dweight (C,), dbias (C,))", doc="Gradients of batch_norm (training or eval): returns (dx, dweight, dbias).", examples=lambda rng, dtype: batch_norm_backward_examples(rng, dtype))
def batch_norm_backward(dy, x, weight, mean, invstd, training=True, *, backend=None):
    """Gradients of batch_norm from its saved (mean, invstd); weight may be None (ones).
    training=False: the statistics were constants (eval mode), dx = dy weight invstd."""
    kernel = "batch_norm_backward"
    be = resolve(backend)
    dy = _input(kernel, dy, "dy")
    x = _input(kernel, x, "x", dy.dtype)
    if x.shape != dy.shape:
        raise ValueError(f"{kernel}: dy has shape {dy.shape} but x has shape {x.shape}")
    c = x.shape[1]
    weight = _param(kernel, "weight", weight, c, x.dtype, 1)
    mean = _param(kernel, "mean", mean, c, x.dtype, None)
    invstd = _param(kernel, "invstd", invstd, c, x.dtype, None)
    if x.size == 0:
        return dy.copy(), np.zeros(c, x.dtype), np.zeros(c, x.dtype)
    dx, dw, db = be.batch_norm_backward(_ncl(dy), _ncl(x), weight, mean, invstd, bool(training))
    return dx.reshape(x.shape), dw, db


# ---------------------------------------------------------------- group norm
def _groups(kernel, c, num_groups):
    if not isinstance(num_groups, (int, np.integer)) or isinstance(num_groups, bool):
        raise TypeError(f"{kernel}: num_groups must be an int, got {num_groups!r}")
    if num_groups < 1 or c % num_groups:
        raise ValueError(f"{kernel}: {c} channels are not divisible by num_groups={num_groups}")
    return int(num_groups)


@declare(family="norm2d", signature="group_norm(x (N, C, L), num_groups, weight (C,), bias (C,), eps) -> (y (N, C, L), mean (N, G), rstd (N, G))", doc="Group norm: statistics per (sample, group of channels); returns (y, mean, rstd).", examples=lambda rng, dtype: group_norm_examples(rng, dtype))
def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, *, backend=None):
    """Group norm of x (N, C, *spatial), as F.group_norm. Returns (y, mean (N, G), rstd (N, G))."""
    kernel = "group_norm"
    be = resolve(backend)
    x = _input(kernel, x)
    c = x.shape[1]
    g = _groups(kernel, c, num_groups)
    weight = _param(kernel, "weight", weight, c, x.dtype, 1)
    bias = _param(kernel, "bias", bias, c, x.dtype, 0)
    if x.size == 0:
        z = np.zeros((x.shape[0], g), x.dtype)
        return x.copy(), z, z.copy()
    y, mean, rstd = be.group_norm(_ncl(x), g, weight, bias, float(eps))
    return y.reshape(x.shape), mean, rstd


@declare(family="norm2d", signature="group_norm_backward(dy (N, C, L), x (N, C, L), weight (C,), mean (N, G), rstd (N, G), num_groups) -> (dx, dweight (C,), dbias (C,))", doc="Gradients of group_norm: returns (dx, dweight, dbias).", examples=lambda rng, dtype: group_norm_backward_examples(rng, dtype))
def group_norm_backward(dy, x, weight, mean, rstd, num_groups, *, backend=None):
    """Gradients of group_norm from its saved (mean, rstd); weight may be None (ones)."""
    kernel = "group_norm_backward"
    be = resolve(backend)
    dy = _input(kernel, dy, "dy")
    x = _input(kernel, x, "x", dy.dtype)
    if x.shape != dy.shape:
        raise ValueError(f"{kernel}: dy has shape {dy.shape} but x has shape {x.shape}")
    c = x.shape[1]
    g = _groups(kernel, c, num_groups)
    weight = _param(kernel, "weight", weight, c, x.dtype, 1)
    stats = []
    for name, s in (("mean", mean), ("rstd", rstd)):
        s = _float_array(kernel, name, s, x.dtype)
        if s.shape != (x.shape[0], g):
            raise ValueError(f"{kernel}: {name} has shape {s.shape}, expected {(x.shape[0], g)}")
        stats.append(s)
    if x.size == 0:
        return dy.copy(), np.zeros(c, x.dtype), np.zeros(c, x.dtype)
    dx, dw, db = be.group_norm_backward(_ncl(dy), _ncl(x), weight, stats[0], stats[1], g)
    return dx.reshape(x.shape), dw, db


# ---------------------------------------------------------------- conformance examples
def _normal(rng, shape, dtype, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(dtype)


_BN_SHAPES = [(2, 1), (3, 5), (2, 3, 7), (1, 2, 1, 2), (4, 3, 5, 5), (2, 6, 3, 11)]


def batch_norm_examples(rng, dtype):
    out = []
    for s in _BN_SHAPES:
        c = s[1]
        x = _normal(rng, s, dtype, 2, 0.5)
        w, b = _normal(rng, c, dtype), _normal(rng, c, dtype)
        rm, rv = _normal(rng, c, dtype), np.abs(_normal(rng, c, dtype)) + 0.5
        out.append(((x, rm, rv, w, b), dict(training=True, momentum=0.1)))
        out.append(((x, rm, rv, w, b), dict(training=False, eps=1e-3)))
    out.append(((_normal(rng, (3, 4, 2), dtype),), dict(training=True)))     # no running stats
    rm, rv = np.zeros(2, dtype), np.ones(2, dtype)
    out.append(((_normal(rng, (5, 2, 3), dtype), rm, rv), dict(training=True, momentum=None,
                                                             num_batches_tracked=3)))
    out.append(((_normal(rng, (4, 3, 2, 2), dtype, 0.5, 50.0), None, None, None, None),
                dict(training=True)))                                       # large mean
    return out


def batch_norm_backward_examples(rng, dtype):
    import fastnn.kernels as K
    out = []
    for args, kw in batch_norm_examples(rng, dtype):
        x = args[0]
        w = args[3] if len(args) > 3 else None
        a = [np.copy(v) if isinstance(v, np.ndarray) else v for v in args]
        _, mean, invstd = K.batch_norm(*a, **kw, backend="numpy")
        out.append(((_normal(rng, x.shape, dtype), x, w, mean, invstd),
                    dict(training=kw.get("training", False))))
    return out


# (groups of one value normalize to 0 with rstd = 1/sqrt(eps), which magnifies float32 rounding
# past the suite's tolerance; tests/test_kernels_pool_norm.py covers them with a scaled one)
_GN_CASES = [((1, 2), 1), ((2, 6, 5), 3), ((3, 4, 1, 1), 2), ((2, 6, 3, 5), 2), ((1, 8, 7, 3), 1),
             ((2, 3, 4), 1)]


def group_norm_examples(rng, dtype):
    out = []
    for s, g in _GN_CASES:
        c = s[1]
        out.append(((_normal(rng, s, dtype, 2, 0.3), g, _normal(rng, c, dtype),
                     _normal(rng, c, dtype)), dict(eps=1e-5)))
    out.append(((_normal(rng, (2, 4, 3), dtype, 0.5, 50.0), 2), {}))            # large mean
    return out


def group_norm_backward_examples(rng, dtype):
    import fastnn.kernels as K
    out = []
    for (x, g, *wb), kw in group_norm_examples(rng, dtype):
        _, mean, rstd = K.group_norm(x, g, *wb, **kw, backend="numpy")
        out.append(((_normal(rng, x.shape, dtype), x, wb[0] if wb else None, mean, rstd, g), {}))
    return out


# ---------------------------------------------------------------- trusted entry points
# For the layers (fastnn.kernels.trusted): only what makes the call safe is checked (dtype,
# contiguity, the shapes the kernels index by); anything else takes the checked path.
from .._checks import get_backend, ready  # noqa: E402


def _vectors_ready(dt, c, *vs):
    return all(v.shape == (c,) for v in vs) and ready(dt, *vs)


@batch_norm.kernel.set_trusted
def _batch_norm_trusted(x, running_mean=None, running_var=None, weight=None, bias=None,
                        training=False, momentum=0.1, eps=1e-5, *, num_batches_tracked=None):
    if (x.ndim >= 2 and ready(x.dtype, x) and weight is not None and bias is not None
            and momentum is not None and _vectors_ready(x.dtype, x.shape[1], weight, bias)):
        c = x.shape[1]
        stats = running_mean is not None and running_var is not None
        if stats and _vectors_ready(x.dtype, c, running_mean, running_var) and (
                not training or x.size > c):
            y, mean, invstd = get_backend().batch_norm(_ncl(x), weight, bias, running_mean,
                                                       running_var, bool(training),
                                                       float(momentum), float(eps))
            return y.reshape(x.shape), mean, invstd
        if running_mean is None and running_var is None and training and x.size > c:
            empty = np.empty(0, x.dtype)
            y, mean, invstd = get_backend().batch_norm(_ncl(x), weight, bias, empty, empty,
                                                       True, float(momentum), float(eps))
            return y.reshape(x.shape), mean, invstd
    return batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps,
                      num_batches_tracked=num_batches_tracked)


@batch_norm_backward.kernel.set_trusted
def _batch_norm_backward_trusted(dy, x, weight, mean, invstd, training=True):
    if (x.ndim >= 2 and dy.shape == x.shape and weight is not None and ready(x.dtype, dy, x)
            and _vectors_ready(x.dtype, x.shape[1], weight, mean, invstd)):
        dx, dw, db = get_backend().batch_norm_backward(_ncl(dy), _ncl(x), weight, mean, invstd,
                                                       bool(training))
        return dx.reshape(x.shape), dw, db
    return batch_norm_backward(dy, x, weight, mean, invstd, training)
