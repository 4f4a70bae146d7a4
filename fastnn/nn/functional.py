"""fastnn.nn.functional: PyTorch's functional API, every forward and backward on fastnn.kernels.

Each function runs one forward kernel and records a closure that calls its backward partner
(kernels.relu -> kernels.relu_backward, gemm -> two gemms, cross_entropy's fused gradient, ...).
"""
import numpy as np

from ..kernels import trusted as T
from ..tensor import (Tensor, _node, default_generator, gelu, leaky_relu as _leaky_relu,
                      log_softmax, relu as _relu, sigmoid, softmax, tanh)

__all__ = ["linear", "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax", "log_softmax",
           "cross_entropy", "mse_loss", "layer_norm", "embedding", "dropout"]


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


# ---------------------------------------------------------------- linear
def linear(input, weight, bias=None):
    """y = input @ weight.T + bias, with weight (out_features, in_features) as PyTorch.

    One GEMM; the bias is written into the output first and accumulated with beta=1."""
    x, w = input.data, weight.data
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1] if x.ndim else 0} features (shape "
                         f"{x.shape}) but the weight expects {w.shape[1]} (weight shape {w.shape})")
    x2 = x if x.ndim == 2 else x.reshape(-1, w.shape[1])
    if bias is None:
        y = T.gemm(x2, w, trans_b=True)
        parents = (input, weight)
    else:
        y = np.empty((x2.shape[0], w.shape[0]), w.dtype)
        y[...] = bias.data
        T.gemm(x2, w, trans_b=True, c=y, beta=1.0)
        parents = (input, weight, bias)

    def backward(g):
        g2 = g if g.ndim == 2 else g.reshape(-1, w.shape[0])
        gx = T.gemm(g2, w).reshape(x.shape) if input.requires_grad else None
        gw = T.gemm(g2, x2, trans_a=True) if weight.requires_grad else None
        if bias is None:
            return gx, gw
        return gx, gw, (T.bias_grad(g2) if bias.requires_grad else None)
    if x.ndim != 2:
        y = y.reshape(x.shape[:-1] + (w.shape[0],))
    return _node(y, parents, backward)


# ---------------------------------------------------------------- activations
# The ops themselves live with Tensor (fastnn/tensor.py), whose methods share them; sigmoid,
# tanh, gelu, softmax and log_softmax are imported from there unchanged.
def relu(input, inplace=False):
    return _relu(input)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _leaky_relu(input, negative_slope)


# ---------------------------------------------------------------- losses
def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy of logits input (N, C) (or (C,), or (N, C, d1, ...)) and integer class
    targets, fused with log-softmax in one kernel that also returns the gradient."""
    if weight is not None or label_smoothing:
        raise NotImplementedError("cross_entropy: class weights and label_smoothing are not "
                                  "supported")
    logits = input.data
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype "
                        f"{t.dtype} (probability targets are not supported)")
    shape = logits.shape
    if logits.ndim == 1:
        l2, t2 = logits.reshape(1, -1), t.reshape(1)
    elif logits.ndim == 2:
        l2, t2 = logits, t
    else:  # (N, C, d1, ...): classes on axis 1, as PyTorch
        l2 = np.moveaxis(logits, 1, -1).reshape(-1, shape[1])
        if t.shape != shape[:1] + shape[2:]:
            raise ValueError(f"cross_entropy: target has shape {t.shape}, expected "
                             f"{shape[:1] + shape[2:]} for input of shape {shape}")
        t2 = t.reshape(-1)
    loss, dlogits = T.cross_entropy(l2, t2, ignore_index=ignore_index, reduction=reduction)

    def backward(g):
        if reduction == "none":
            d = dlogits * g.reshape(-1, 1)
        else:
            d = dlogits if g == 1 else dlogits * g
        if logits.ndim > 2:
            d = np.moveaxis(d.reshape(shape[:1] + shape[2:] + shape[1:2]), -1, 1)
        return (d.reshape(shape),)
    if reduction == "none" and logits.ndim != 2:
        loss = loss.reshape(t.shape)
    return _node(np.asarray(loss, logits.dtype), (input,), backward)


def nll_loss(input, target, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities input (N, C) at integer targets (glue ops)."""
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    keep = t != ignore_index
    rows = np.arange(len(t))
    picked = -input[rows, np.where(keep, t, 0)] * Tensor(keep.astype(input.dtype))
    if reduction == "none":
        return picked
    if reduction == "sum":
        return picked.sum()
    return picked.sum() / max(int(keep.sum()), 1)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error (reduction 'mean' | 'sum' | 'none'); input and target of one shape."""
    target = _t(target)
    if reduction == "none":
        d = input - target
        return d * d
    if input.data.shape != target.data.shape:
        raise ValueError(f"mse_loss: input has shape {input.data.shape} but target has "
                         f"{target.data.shape}")
    loss, grad = T.mse_loss(input.data, target.data)
    n = input.data.size
    if reduction == "sum":
        loss, grad = loss * n, grad * n
    elif reduction != "mean":
        raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")

    def backward(g):
        d = grad if g == 1 else grad * g
        return d, (-d if target.requires_grad else None)
    return _node(np.asarray(loss, input.data.dtype), (input, target), backward)


# ---------------------------------------------------------------- layer norm
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize over the trailing dims named by normalized_shape, then scale and shift."""
    x = input.data
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(ns):] != ns or len(ns) > x.ndim:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end in normalized_shape "
                         f"{ns}")
    x2 = x if len(ns) == 1 else x.reshape(x.shape[:x.ndim - len(ns)] + (-1,))
    w = None if weight is None else weight.data.reshape(-1)
    b = None if bias is None else bias.data.reshape(-1)
    y, mu, rstd = T.layer_norm(x2, w, b, eps)
    parents = (input,) + tuple(p for p in (weight, bias) if p is not None)

    def backward(g):
        dx, dw, db = T.layer_norm_backward(g.reshape(x2.shape), x2, w, mu, rstd)
        out = [dx.reshape(x.shape)]
        if weight is not None:
            out.append(dw.reshape(ns))
        if bias is not None:
            out.append(db.reshape(ns))
        return out
    return _node(y.reshape(x.shape), parents, backward)


# ---------------------------------------------------------------- embedding
def embedding(input, weight, padding_idx=None):
    """Rows of weight (V, C) gathered at integer ids of any shape -> ids.shape + (C,).
    The row at padding_idx gets no gradient, as PyTorch."""
    ids = np.asarray(input.data if isinstance(input, Tensor) else input)
    w = weight.data
    n = w.shape[0]
    if padding_idx is not None and padding_idx < 0:
        padding_idx += n

    def backward(g):
        dw = T.embedding_backward(g, ids, n)
        if padding_idx is not None:
            dw[padding_idx] = 0
        return (dw,)
    return _node(T.embedding(w, ids), (weight,), backward)


# ---------------------------------------------------------------- dropout
def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    x = input.data
    if p == 1.0:
        mask = np.zeros_like(x)
    else:
        keep = default_generator().random(x.shape, dtype=x.dtype) >= p
        mask = keep * x.dtype.type(1.0 / (1.0 - p))
    return _node(x * mask, (input,), lambda g: (g * mask,))
