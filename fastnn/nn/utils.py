"""Gradient utilities: clip_grad_norm_ and clip_grad_value_ (PyTorch's semantics)."""
import math

import numpy as np

from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so their joint norm is at most max_norm; returns the norm
    before clipping (a float). Gradients are replaced, not written into (see fastnn.tensor)."""
    params = _grads(parameters)
    if not params:
        return 0.0
    norm_type = float(norm_type)
    if math.isinf(norm_type):
        total = max(float(np.abs(p.grad).max()) if p.grad.size else 0.0 for p in params)
    elif norm_type == 2.0:
        # one BLAS dot per gradient: no temporaries (the common case, once per training step)
        total = math.sqrt(sum(float(np.dot(g, g)) for g in (p.grad.reshape(-1) for p in params)))
    else:
        total = sum(float(np.sum(np.abs(p.grad.astype(np.float64, copy=False)) ** norm_type))
                    for p in params) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total gradient norm is {total}")
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for p in params:
            p.grad = p.grad * p.grad.dtype.type(coef)
    return total


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element into [-clip_value, clip_value]."""
    for p in _grads(parameters):
        p.grad = np.clip(p.grad, -clip_value, clip_value)
