"""Gradient and parameter utilities with PyTorch's names and semantics: clip_grad_norm_ (returns
the total norm as a Tensor), get_total_norm, clip_grads_with_norm_, clip_grad_value_,
parameters_to_vector, vector_to_parameters.

Gradients are read whether `.grad` holds a numpy array or a Tensor. A numpy gradient array is
never written into (fastnn may share one between two leaves): clipping replaces it with the
scaled copy; a Tensor gradient keeps its identity and gets the scaled values.
"""
import math

import numpy as np

from ..tensor import Tensor, _asarray, _on_gpu

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_",
           "parameters_to_vector", "vector_to_parameters"]


def _as_list(parameters):
    if isinstance(parameters, Tensor):
        return [parameters]
    return list(parameters)


def _array(g):
    """The array of a gradient (array or Tensor), or of a Tensor/array-like: numpy, or device
    storage for a gradient on a GPU."""
    if g is None or isinstance(g, np.ndarray):
        return g
    d = getattr(g, "_data", g)
    return d if type(d) is np.ndarray else _asarray(d)


def _device_total_norm(arrays, norm_type, error_if_nonfinite):
    """get_total_norm of gradients on a GPU, as a 0-d device array: reductions on the device,
    nothing copied to the host (unless error_if_nonfinite asks, which needs the value there)."""
    dtype = np.result_type(*[a.dtype for a in arrays])
    if dtype.kind != "f":
        dtype = np.dtype(np.float32)
    total = None
    for a in arrays:
        if a.size == 0:
            continue
        a = a.astype(np.float64)
        if norm_type == 2.0:
            part = (a * a).sum()
        elif math.isinf(norm_type):
            part = np.abs(a).max() if norm_type > 0 else np.abs(a).min()
        elif norm_type == 0:
            part = (a != 0).sum().astype(np.float64)
        else:
            part = (np.abs(a) ** norm_type).sum()
        if total is None:
            total = part
        elif math.isinf(norm_type):
            total = np.maximum(total, part) if norm_type > 0 else np.minimum(total, part)
        else:
            total = total + part
    if total is None:
        return None
    if norm_type == 2.0:
        total = np.sqrt(total)
    elif not math.isinf(norm_type) and norm_type != 0:
        total = total ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(float(total)):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` "
                           f"is non-finite, so it cannot be clipped. To disable this error and "
                           f"scale the gradients by the non-finite norm anyway, set "
                           f"`error_if_nonfinite=False`")
    return total.astype(dtype)


def _set_grad(p, new):
    """Give p the gradient values `new` (an array of the gradient's shape and dtype)."""
    g = p.grad
    if isinstance(g, np.ndarray) or g is None:
        p.grad = new
    else:
        g._data = new


def _norm(a, norm_type):
    """The norm_type vector norm of array a, as a Python float (computed in float64 where the
    2-norm's BLAS dot would not be exact enough; one dot per array for the usual 2-norm)."""
    if a.size == 0:
        return 0.0
    if norm_type == 2.0:
        flat = a.reshape(-1)
        return math.sqrt(float(np.dot(flat, flat)))
    if math.isinf(norm_type):
        m = np.abs(a)
        return float(m.max() if norm_type > 0 else m.min())
    if norm_type == 0:
        return float(np.count_nonzero(a))
    if norm_type == 1.0:
        return float(np.abs(a).sum(dtype=np.float64))
    return float(np.sum(np.abs(a.astype(np.float64, copy=False)) ** norm_type)
                 ) ** (1.0 / norm_type)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The norm of the norms of the given tensors (or gradient arrays): their joint norm, as a
    0-d Tensor of their dtype."""
    arrays = [_array(t) for t in ([tensors] if isinstance(tensors, (Tensor, np.ndarray))
                                  else tensors) if t is not None]
    norm_type = float(norm_type)
    if not arrays:
        return Tensor(np.array(0.0, np.float32))
    if type(arrays[0]) is not np.ndarray and _on_gpu(arrays[0]):
        total = _device_total_norm(arrays, norm_type, error_if_nonfinite)
        if total is not None:
            return Tensor(total)
    norms = [_norm(a, norm_type) for a in arrays]
    if math.isinf(norm_type):
        total = max(norms) if norm_type > 0 else min(norms)
    elif norm_type == 0:
        total = float(sum(norms))
    elif norm_type == 2.0:
        total = math.sqrt(sum(n * n for n in norms))
    else:
        total = sum(n ** norm_type for n in norms) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` "
                           f"is non-finite, so it cannot be clipped. To disable this error and "
                           f"scale the gradients by the non-finite norm anyway, set "
                           f"`error_if_nonfinite=False`")
    dtype = np.result_type(*[a.dtype for a in arrays])
    if dtype.kind != "f":
        dtype = np.dtype(np.float32)
    return Tensor(np.array(total, dtype))


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    """Scale every gradient by min(1, max_norm / (total_norm + 1e-6))."""
    params = [p for p in _as_list(parameters) if p.grad is not None]
    if not params:
        return
    total = _array(total_norm)
    if type(total) is not np.ndarray and _on_gpu(total):
        # on the device: scale by min(1, coef) always (a multiply by 1 changes nothing), as
        # PyTorch's clamped coefficient; deciding to skip would wait for the device
        coef = np.minimum(max_norm / (total + total.dtype.type(1e-6)), total.dtype.type(1.0))
        for p in params:
            g = _array(p.grad)
            _set_grad(p, g * coef.astype(g.dtype))
        return
    total = np.asarray(total)
    if total.dtype.kind != "f":
        total = total.astype(np.float64)
    coef = max_norm / (total + total.dtype.type(1e-6))  # in the norm's dtype, as PyTorch
    if not coef < 1.0:
        return  # clamped to 1: multiplying by 1 changes nothing
    with np.errstate(invalid="ignore"):  # an infinite norm gives NaN gradients, as in PyTorch
        for p in params:
            g = _array(p.grad)
            _set_grad(p, g * coef.astype(g.dtype))


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale all gradients together so that their joint norm_type norm is at most max_norm;
    returns the joint norm before clipping (a 0-d Tensor, as PyTorch's)."""
    params = _as_list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(params, max_norm, total, foreach)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element into [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            _set_grad(p, np.clip(_array(p.grad), -clip_value, clip_value))


def parameters_to_vector(parameters):
    """All parameters flattened and concatenated into one 1-D Tensor (a copy)."""
    arrays = [np.asarray(p._data).reshape(-1) for p in _as_list(parameters)]
    return Tensor(np.concatenate(arrays) if arrays else np.zeros(0, np.float32))


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of the 1-D vec into the parameters (in place)."""
    v = _array(vec)
    if not isinstance(vec, (Tensor, np.ndarray)) and not hasattr(vec, "shape"):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    v = v.reshape(-1)
    offset = 0
    for p in _as_list(parameters):
        n = p._data.size
        p._data[...] = v[offset:offset + n].reshape(p._data.shape)
        offset += n
