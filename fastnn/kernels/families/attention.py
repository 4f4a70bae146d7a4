"""Fused (flash-style) attention forward and backward. C: csrc/attention.c, attention_tiles.h."""
import math

import numpy as np

from ..registry import Bench, Gradient, declare
from .._checks import (_FLOATS, _at_least_1d, _check_range, _float_array, _gemm_operand,
                       _index_array, _ndim, _rows, _same_shape, get_backend, ready, resolve)
from . import examples as ex


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


@declare(family="attention", signature="attention(q (B, H, T, D), k, v (B, H, S, D), causal, scale) -> (out (B, H, T, D), lse (B, H, T)); S > 0", examples=ex.attention, bench=Bench("attention"))
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


@declare(family="attention", signature="attention_backward(dout, q, k, v, out, lse, causal, scale) -> (dq, dk, dv)", examples=ex.with_reference(ex.attention_backward, "attention"))
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
