"""Inputs for the conformance suite (tests/test_conformance.py), one generator per kernel kind.

Each generator is examples(rng, dtype) -> [(args, kwargs), ...] for the kernel's public function.
Shapes are small (the CUDA simulator runs them too) and awkward: 1, primes, sizes off every tile,
transposed and strided operands, more than two dimensions.
"""
import functools
import importlib

import numpy as np


def _normal(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _strided(x):
    """The same values, laid out with a stride: a view into a twice-as-wide array."""
    wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    wide[..., ::2] = x
    return wide[..., ::2]


def unary(rng, dtype, **kw):
    xs = [_normal(rng, n, dtype, 4) for n in (1, 7, 17, 1000)]
    xs += [_normal(rng, (3, 5, 2), dtype, 4), _strided(_normal(rng, (4, 9), dtype, 4))]
    return [((x,), dict(kw)) for x in xs]


def unary_backward(rng, dtype, forward=None, saved="x", **kw):
    """(dy, x) pairs; (dy, y) with y = forward(x) when the backward takes the output."""
    out = []
    for (x,), _ in unary(rng, dtype):
        s = forward(x, **kw) if saved == "y" else x
        out.append(((_normal(rng, x.shape, dtype), s), dict(kw)))
    return out


_CLAMP_BOUNDS = (dict(min=-1.0, max=1.0), dict(min=0.5), dict(max=-0.25),
                 dict(min=1.0, max=-1.0))   # min > max: every element becomes max


def clamp(rng, dtype):
    """unary's inputs under each kind of bounds. The largest input also holds NaN, +-inf and
    values exactly on the bounds; the smaller ones (all the finite-difference check takes) keep
    clear of the kinks."""
    out = []
    for kw in _CLAMP_BOUNDS:
        for (x,), _ in unary(rng, dtype):
            if x.size >= 1000:
                x[:5] = [np.nan, np.inf, -np.inf, kw.get("min", 0.0), kw.get("max", 0.0)]
            out.append(((x,), dict(kw)))
    return out


def clamp_backward(rng, dtype):
    """(dy, x) on clamp's inputs; dy is inf outside the bounds in the largest input, where the
    gradient is still 0 (a select, as PyTorch's, not dy * 0)."""
    out = []
    for (x,), kw in clamp(rng, dtype):
        dy = _normal(rng, x.shape, dtype)
        if x.size >= 1000:
            lo, hi = kw.get("min", -np.inf), kw.get("max", np.inf)
            dy[~((x >= lo) & (x <= hi))] = np.inf
        out.append(((dy, x), kw))
    return out


def rows(rng, dtype):
    return [((_normal(rng, s, dtype, 3),), {}) for s in ((1, 1), (3, 7), (2, 4, 33), (5, 130))]


def rows_backward(rng, dtype, forward):
    return [((_normal(rng, x.shape, dtype), forward(x)), {}) for (x,), _ in rows(rng, dtype)]


def gemm(rng, dtype):
    out = []
    for m, k, n in ((1, 1, 1), (7, 13, 5), (33, 17, 65), (2, 40, 3)):
        for ta in (False, True):
            for tb in (False, True):
                a = _normal(rng, (k, m) if ta else (m, k), dtype)
                b = _normal(rng, (n, k) if tb else (k, n), dtype)
                out.append(((a, b), dict(trans_a=ta, trans_b=tb)))
    c = _normal(rng, (7, 5), dtype)
    out.append(((_normal(rng, (7, 13), dtype), _normal(rng, (13, 5), dtype), c),
                dict(alpha=0.5, beta=2.0)))
    out.append(((_normal(rng, (9, 6), dtype).T, _normal(rng, (9, 4), dtype)), {}))  # F-ordered
    return out


def bmm(rng, dtype):
    return [((_normal(rng, (3, 5, 7), dtype), _normal(rng, (3, 7, 4), dtype)), {}),
            ((_normal(rng, (2, 6, 5), dtype), _normal(rng, (5, 3), dtype)), {}),
            ((_normal(rng, (2, 4, 6), dtype), _normal(rng, (2, 5, 6), dtype)),
             dict(trans_b=True, alpha=0.25))]


def bias_add(rng, dtype):
    return [((_normal(rng, s, dtype), _normal(rng, s[-1], dtype)), {})
            for s in ((1, 1), (5, 7), (2, 3, 17))]


def bias_grad(rng, dtype):
    return [((_normal(rng, s, dtype),), {}) for s in ((1, 1), (9, 5), (2, 3, 33))]


def cross_entropy(rng, dtype):
    out = []
    for n, c in ((1, 1), (6, 5), (9, 130)):
        t = rng.integers(0, c, n)
        if n > 2:
            t[1] = -100
        for reduction in ("mean", "sum", "none"):
            out.append(((_normal(rng, (n, c), dtype, 3), t), dict(reduction=reduction)))
    return out


def mse_loss(rng, dtype):
    return [((_normal(rng, s, dtype), _normal(rng, s, dtype)), {}) for s in ((1,), (7, 3), (2, 65))]


def layer_norm(rng, dtype):
    out = []
    for s in ((1, 1), (4, 9), (2, 3, 130)):
        c = s[-1]
        out.append(((_normal(rng, s, dtype, 2), _normal(rng, c, dtype), _normal(rng, c, dtype)),
                    dict(eps=1e-5)))
    out.append(((_normal(rng, (3, 8), dtype),), {}))
    return out


def layer_norm_backward(rng, dtype, forward):
    out = []
    for (x, *wb), kw in layer_norm(rng, dtype):
        _, mean, rstd = forward(x, *wb, **kw)
        w = wb[0] if wb else None
        out.append(((_normal(rng, x.shape, dtype), x, w, mean, rstd), {}))
    return out


def embedding(rng, dtype):
    return [((_normal(rng, (11, 6), dtype), rng.integers(0, 11, s)), {}) for s in ((1,), (3, 4))]


def embedding_backward(rng, dtype):
    ids = np.array([0, 3, 3, 10, 3, 7], np.int64)   # repeated ids accumulate
    return [((_normal(rng, (6, 5), dtype), ids, 11), {}),
            ((_normal(rng, (2, 3, 4), dtype), rng.integers(0, 4, (2, 3)), 4), {})]


def sgd_step(rng, dtype):
    out = []
    for kw in (dict(lr=0.1), dict(lr=0.1, momentum=0.9, weight_decay=0.01),
               dict(lr=0.05, momentum=0.9, nesterov=True, first_step=True),
               dict(lr=0.05, momentum=0.5, dampening=0.3)):
        p, g = _normal(rng, 37, dtype), _normal(rng, 37, dtype)
        buf = _normal(rng, 37, dtype) if kw.get("momentum") else None
        out.append(((p, g, buf), kw))
    return out


def adam_step(rng, dtype):
    out = []
    for kw in (dict(step=1, lr=1e-2), dict(step=5, lr=1e-2, weight_decay=0.1),
               dict(step=3, lr=1e-3, weight_decay=0.1, decoupled=True, betas=(0.8, 0.99))):
        p, g = _normal(rng, (5, 7), dtype), _normal(rng, (5, 7), dtype)
        m, v = _normal(rng, (5, 7), dtype), np.abs(_normal(rng, (5, 7), dtype))
        out.append(((p, g, m, v), kw))
    return out


def adam_multi_step(rng, dtype):
    """Lists of tensors of several shapes (a scalar-like (1,), an empty one, matrices, a
    vector), as a model's parameters are."""
    out = []
    for kw in (dict(step=1, lr=1e-2), dict(step=5, lr=1e-2, weight_decay=0.1, grad_scale=0.5),
               dict(step=3, lr=1e-3, weight_decay=0.1, decoupled=True, betas=(0.8, 0.99)),
               dict(step=2, lr=1e-3, weight_decay=0.1, decoupled=True, grad_scale=0.37)):
        shapes = [(5, 7), (1,), (0,), (13,), (3, 4, 2)]
        p, g, m = ([_normal(rng, s, dtype) for s in shapes] for _ in range(3))
        v = [np.abs(_normal(rng, s, dtype)) for s in shapes]
        out.append(((p, g, m, v), kw))
    return out


def attention(rng, dtype):
    out = []
    for b, h, t, s, d in ((1, 1, 1, 1, 1), (1, 2, 5, 5, 4), (2, 1, 7, 9, 8)):
        q, k, v = (_normal(rng, (b, h, n, d), dtype) for n in (t, s, s))
        out += [((q, k, v), dict(causal=False)), ((q, k, v), dict(causal=t <= s, scale=0.3))]
    return out


def attention_backward(rng, dtype, forward):
    out = []
    for (q, k, v), kw in attention(rng, dtype):
        o, lse = forward(q, k, v, **kw)
        out.append(((_normal(rng, q.shape, dtype), q, k, v, o, lse), kw))
    return out


def with_reference(generator, kernel, **kw):
    """A backward kernel's generator, fed by its forward `kernel` run on the numpy reference."""
    def forward(*args, **fkw):
        kernels = importlib.import_module("fastnn.kernels")  # drawn at test time, not at import
        return getattr(kernels, kernel)(*args, backend="numpy", **fkw)
    return functools.partial(generator, forward=forward, **kw)
