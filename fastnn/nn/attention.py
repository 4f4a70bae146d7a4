"""Attention: F.scaled_dot_product_attention, packed_qkv_attention and KVCache.

scaled_dot_product_attention follows PyTorch's semantics (torch 2.x on CPU):
    out = softmax(q k^T * scale + mask) v, scale = 1/sqrt(E) by default
    - attn_mask: bool (True = may attend) or float (added to the scores), broadcastable to
      (..., L, S); a float mask that requires grad gets its gradient.
    - is_causal: query i attends to keys j <= i (top-left aligned, as PyTorch); combined with
      attn_mask by logical and when both are given.
    - a query row that may attend to nothing gives an output row of zeros (and zero gradients),
      not NaN, as PyTorch's CPU kernels do.
    - dropout_p is applied to the attention weights (always, as the functional form does: pass
      0.0 at evaluation), scaled by 1/(1 - p), drawn from fastnn's generator.

Two paths: with no attn_mask and no dropout, the fused kernels (kernels.attention /
attention_backward: an online softmax that keeps only the log-sum-exp, O(T) memory) on
(B, H, T, D) views; otherwise a materialized path that forms the (L, S) weights with kernels.bmm
and kernels.softmax (O(T^2) memory, any mask, dropout, broadcast batch dims, value dim != E).

packed_qkv_attention is multi-head attention straight from one (B, T, 3C) projection holding q, k
and v side by side, as one autograd node; KVCache holds the keys and values of the positions seen
so far, for incremental decoding. The transformer modules built on them (CausalSelfAttention,
the Block, the GPT) live in fastnn.models.gpt, nanoGPT's model.py in one file.
"""
import math

import numpy as np

from .. import kernels as K
from ..kernels import trusted as TK   # (T is a sequence length here)
from ..tensor import (Tensor, _ascontiguous, _device_of, _empty, _moved, _node, _on_gpu,
                      _random_on_device, arange, default_generator)

__all__ = ["scaled_dot_product_attention", "packed_qkv_attention", "KVCache"]


def _sum_to_shape(g, shape):
    """Reduce a broadcast gradient back to `shape` (sum over broadcast axes)."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


# ---------------------------------------------------------------- the functional op
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """Attention of query (..., L, E) over key (..., S, E) and value (..., S, Ev) -> (..., L, Ev).
    See the module docstring for the semantics of each argument."""
    if enable_gqa:
        raise NotImplementedError("scaled_dot_product_attention: enable_gqa is not supported")
    q, k, v = _as_tensor(query), _as_tensor(key), _as_tensor(value)
    qd, kd, vd = q._data, k._data, v._data
    for name, x in (("query", qd), ("key", kd), ("value", vd)):
        if x.ndim < 2:
            raise ValueError(f"scaled_dot_product_attention: {name} must have at least 2 dims "
                             f"(..., seq, features), got shape {x.shape}")
        if x.dtype.kind != "f":
            raise TypeError(f"scaled_dot_product_attention: {name} must be floating point, got "
                            f"{x.dtype}")
    if not qd.dtype == kd.dtype == vd.dtype:
        raise TypeError(f"scaled_dot_product_attention: query, key and value must have one dtype, "
                        f"got {qd.dtype}, {kd.dtype}, {vd.dtype}")
    if kd.shape[-1] != qd.shape[-1] or kd.shape[-2] != vd.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: expected query (..., L, E), key "
                         f"(..., S, E), value (..., S, Ev); got {qd.shape}, {kd.shape}, "
                         f"{vd.shape}")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1], got "
                         f"{dropout_p}")
    scale = 1.0 / math.sqrt(qd.shape[-1]) if scale is None else float(scale)
    if (attn_mask is None and dropout_p == 0.0 and qd.ndim == kd.ndim == vd.ndim
            and qd.shape[:-2] == kd.shape[:-2] and kd.shape == vd.shape and kd.shape[-2] > 0):
        return _fused_attention(q, k, v, is_causal, scale)
    return _materialized_attention(q, k, v, attn_mask, dropout_p, is_causal, scale)


def _as_bhtd(x):
    """View (..., T, D) as the kernels' (B, H, T, D), C-contiguous."""
    if x.ndim != 4:
        x = x.reshape((-1, 1) + x.shape[-2:])
    return _ascontiguous(x)


def _fused_attention(q, k, v, causal, scale):
    shape = q._data.shape
    q4, k4, v4 = _as_bhtd(q._data), _as_bhtd(k._data), _as_bhtd(v._data)
    out, lse = TK.attention(q4, k4, v4, causal=causal, scale=scale)

    def backward(g):
        dq, dk, dv = TK.attention_backward(_as_bhtd(g), q4, k4, v4, out, lse, causal=causal,
                                          scale=scale)
        return dq.reshape(shape), dk.reshape(k._data.shape), dv.reshape(v._data.shape)
    return _node(out.reshape(shape), (q, k, v), backward)


def _keep_and_bias(attn_mask, is_causal, shape, dtype):
    """From the mask arguments: a bool 'may attend' array and an additive float array (either
    None), both broadcastable to `shape` = (..., L, S)."""
    L, S = shape[-2:]
    keep = np.tri(L, S, dtype=bool) if is_causal else None
    bias = None
    if attn_mask is not None:
        m = attn_mask._data if isinstance(attn_mask, Tensor) else np.asarray(attn_mask)
        try:
            np.broadcast_shapes(m.shape, shape)
        except ValueError:
            raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {m.shape} does "
                             f"not broadcast to the scores' shape {shape}") from None
        if m.dtype == np.bool_:
            keep = m if keep is None else keep & m
        elif m.dtype.kind == "f":
            bias = m.astype(dtype, copy=False)
        else:
            raise TypeError(f"scaled_dot_product_attention: attn_mask must be bool or floating "
                            f"point, got {m.dtype}")
    return keep, bias


def _materialized_attention(q, k, v, attn_mask, dropout_p, is_causal, scale):
    qd, kd, vd = q._data, k._data, v._data
    dtype = qd.dtype
    batch = np.broadcast_shapes(qd.shape[:-2], kd.shape[:-2], vd.shape[:-2])
    L, E = qd.shape[-2:]
    S, Ev = vd.shape[-2:]
    q3 = np.broadcast_to(qd, batch + (L, E)).reshape(-1, L, E)
    k3 = np.broadcast_to(kd, batch + (S, E)).reshape(-1, S, E)
    v3 = np.broadcast_to(vd, batch + (S, Ev)).reshape(-1, S, Ev)
    scores = TK.bmm(q3, k3, trans_b=True, alpha=scale).reshape(batch + (L, S))
    on_gpu = _on_gpu(scores)
    keep, bias = _keep_and_bias(attn_mask, is_causal and not on_gpu, scores.shape, dtype)
    if on_gpu:   # a user's host mask goes to the scores' device; the causal one is made there
        keep, bias = (None if m is None else _moved(m, _device_of(scores)) for m in (keep, bias))
        if is_causal:
            rows, cols = (arange(n, device=_device_of(scores))._data for n in (L, S))
            tri = rows[:, None] >= cols[None, :]
            keep = tri if keep is None else keep & tri
    if bias is not None:
        scores = scores + bias
    if keep is not None:
        scores = np.where(keep, scores, -np.inf)
    # rows with nothing to attend to: softmax of all -inf is NaN; PyTorch's CPU path gives zeros
    if on_gpu and S:   # the same without asking the device whether there are any
        # -inf becomes the lowest finite value: the cuda softmax kernel gives NaN when one
        # thread's share of a row is all -inf; exp(lowest - max) is 0 all the same
        lowest = dtype.type(np.finfo(dtype).min)
        scores = np.maximum(scores, lowest)
        dead = (scores.max(axis=-1) == lowest)[..., None]
        p = np.where(dead, dtype.type(0), TK.softmax(np.where(dead, dtype.type(0), scores)))
    else:
        dead = np.isneginf(scores.max(axis=-1, initial=-np.inf)) if S else None
        if dead is not None and dead.any():
            scores[dead] = 0
        else:
            dead = None
        p = TK.softmax(scores)
        if dead is not None:
            p[dead] = 0
    p3 = p.reshape(-1, L, S)
    drop = None
    if dropout_p > 0:
        if dropout_p == 1.0:
            drop = np.zeros(p3.shape, dtype)
        elif on_gpu:   # the mask drawn on the device
            u = _random_on_device("rand", p3.shape, dtype, None, _device_of(p3), False)._data
            drop = (u >= dtype.type(dropout_p)).astype(dtype) * dtype.type(1 / (1 - dropout_p))
        else:
            # PyTorch's math path: F.dropout on the (B, H, L, S) weights, the same draws
            drop = default_generator().dropout_mask(p3.shape, dropout_p, dtype)
        pd = p3 * drop
    else:
        pd = p3
    out = TK.bmm(pd, v3).reshape(batch + (L, Ev))
    mask_t = attn_mask if (isinstance(attn_mask, Tensor) and bias is not None) else None
    parents = (q, k, v) + ((mask_t,) if mask_t is not None else ())

    def backward(g):
        g3 = _ascontiguous(g.astype(dtype, copy=False)).reshape(-1, L, Ev)
        dv = TK.bmm(pd, g3, trans_a=True).reshape(batch + (S, Ev))
        dp = TK.bmm(g3, v3, trans_b=True)
        if drop is not None:
            dp = dp * drop
        ds = TK.softmax_backward(dp, p3)  # zero on dead rows, where p is 0
        dq = TK.bmm(ds, k3, alpha=scale).reshape(batch + (L, E))
        dk = TK.bmm(ds, q3, trans_a=True, alpha=scale).reshape(batch + (S, E))
        grads = [_sum_to_shape(dq, qd.shape), _sum_to_shape(dk, kd.shape),
                 _sum_to_shape(dv, vd.shape)]
        if mask_t is not None:
            grads.append(_sum_to_shape(ds.reshape(batch + (L, S)), mask_t._data.shape)
                         .astype(mask_t._data.dtype, copy=False))
        return grads
    return _node(out, parents, backward)


# ---------------------------------------------------------------- attention from packed q, k, v
def _strided_kernels():
    """The current backend's (attention_strided, attention_backward_strided), or None: kernels
    that read q, k, v through strides (the cython backend's; see _attention.pyx)."""
    from ..kernels.dispatch import get_backend
    be = get_backend()
    cached = _STRIDED.get(be.name, False)
    if cached is False:
        mods = getattr(be.module, "MODULES", ())
        fwd = next((m.attention_strided for m in mods if hasattr(m, "attention_strided")), None)
        bwd = next((m.attention_backward_strided for m in mods
                    if hasattr(m, "attention_backward_strided")), None)
        _STRIDED[be.name] = cached = (fwd, bwd) if fwd and bwd else None
    return cached


_STRIDED = {}


def packed_qkv_attention(qkv, n_head, causal=False, scale=None):
    """Multi-head attention straight from the packed c_attn output, as one autograd node.

    qkv (B, T, 3C) holds q, k, v side by side (nanoGPT's split order); returns (B, T, C), the
    heads concatenated. Equal to split + view + transpose + scaled_dot_product_attention +
    transpose + view. With the cython backend the kernels read q, k, v from qkv through strides
    and write the output, and the backward its packed gradient, in place: no copies; other
    backends get one copy in and one out."""
    x = qkv._data
    B, T, C3 = x.shape
    C = C3 // 3
    D = C // n_head
    if C3 != 3 * C or C != n_head * D:
        raise ValueError(f"packed_qkv_attention: the last dim {C3} is not 3 * n_head * head_dim "
                         f"for n_head {n_head}")
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    strided = (_strided_kernels() if type(x) is np.ndarray and x.dtype.kind == "f"
               and x.itemsize in (4, 8) and x.size else None)
    if strided is not None:
        return _packed_strided(qkv, x, n_head, causal, scale, strided)
    # (B, T, 3, H, D) -> (3, B, H, T, D): q, k, v each a C-contiguous (B, H, T, D) array
    qkv5 = _ascontiguous(x.reshape(B, T, 3, n_head, D).transpose(2, 0, 3, 1, 4))
    q, k, v = qkv5[0], qkv5[1], qkv5[2]
    out, lse = TK.attention(q, k, v, causal=causal, scale=scale)
    y = _ascontiguous(out.transpose(0, 2, 1, 3)).reshape(B, T, C)

    def backward(g):
        g4 = _ascontiguous(g.reshape(B, T, n_head, D).transpose(0, 2, 1, 3))
        dq, dk, dv = TK.attention_backward(g4, q, k, v, out, lse, causal=causal, scale=scale)
        dqkv = _empty((B, T, 3, n_head, D), x.dtype, x)
        for i, d in enumerate((dq, dk, dv)):
            dqkv[:, :, i] = d.transpose(0, 2, 1, 3)
        return (dqkv.reshape(B, T, C3),)
    return _node(y, (qkv,), backward)


def _heads(a5, i):
    """(B, H, T, D) view of part i (0 q, 1 k, 2 v) of a (B, T, 3, H, D) array."""
    return a5[:, :, i].transpose(0, 2, 1, 3)


def _packed_strided(qkv, x, n_head, causal, scale, kernels):
    fwd, bwd = kernels
    B, T, C3 = x.shape
    C, D = C3 // 3, C3 // 3 // n_head
    x5 = np.ascontiguousarray(x).reshape(B, T, 3, n_head, D)
    q, k, v = _heads(x5, 0), _heads(x5, 1), _heads(x5, 2)
    y = np.empty((B, T, C), x.dtype)
    out = y.reshape(B, T, n_head, D).transpose(0, 2, 1, 3)   # written as (B, T, H, D)
    lse = np.empty((B, n_head, T), x.dtype)
    fwd(q, k, v, out, lse, causal, scale)

    def backward(g):
        g4 = np.ascontiguousarray(g, dtype=x.dtype).reshape(B, T, n_head, D).transpose(0, 2, 1, 3)
        dqkv = np.empty((B, T, 3, n_head, D), x.dtype)
        bwd(g4, q, k, v, out, lse, _heads(dqkv, 0), _heads(dqkv, 1), _heads(dqkv, 2), causal,
            scale)
        return (dqkv.reshape(B, T, C3),)
    return _node(y, (qkv,), backward)


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer: (B, H, capacity, D)
    arrays filled up to `length`. Used under no_grad by incremental decoding."""

    def __init__(self, batch, n_head, capacity, head_dim, dtype, like=None):
        """like: an array whose device the cache lives on (a GPU model's weight); the CPU
        without it."""
        shape = (batch, n_head, capacity, head_dim)
        self.k = _empty(shape, dtype, like) if like is not None else np.empty(shape, dtype)
        self.v = _empty(shape, dtype, like) if like is not None else np.empty(shape, dtype)
        self.length = 0

    @property
    def capacity(self):
        return self.k.shape[2]

    def append(self, k, v):
        """Store k, v (B, H, T, D) after the cached positions; returns all keys and values."""
        t0, t1 = self.length, self.length + k.shape[2]
        if t1 > self.capacity:
            raise ValueError(f"KVCache: {t1} positions exceed the capacity {self.capacity}")
        self.k[:, :, t0:t1] = k
        self.v[:, :, t0:t1] = v
        self.length = t1
        return self.k[:, :, :t1], self.v[:, :, :t1]


# The transformer modules moved to fastnn.models.gpt (nn holds only the reusable pieces and must
# not import from models): say where they went instead of a bare AttributeError.
_MOVED = {"CausalSelfAttention": "fastnn.models.gpt.CausalSelfAttention",
          "Block": "fastnn.models.gpt.Block", "MLP": "fastnn.models.gpt.FeedForward"}


def __getattr__(name):
    if name in _MOVED:
        raise AttributeError(f"fastnn.nn.attention.{name} moved to {_MOVED[name]}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
