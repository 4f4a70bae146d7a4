"""Reference elementwise, row, loss, norm, embedding and optimizer kernels: plain numpy.

Declared in fastnn/kernels/; the fast versions of each live in the same-named function of
fastnn/backends/numba/ops.py and fastnn/backends/cython/_ops.pyx (C in csrc/ops_*.c)."""
import math

import numpy as np


# ---------------------------------------------------------------- bias
def bias_add(x, bias):  # x: (N, C), bias: (C,)
    return x + bias


def bias_grad(dy):  # dy: (N, C) -> (C,)
    return dy.sum(axis=0)


# ---------------------------------------------------------------- activations (1-D arrays)
def relu(x):
    return np.maximum(x, 0).astype(x.dtype)


def relu_backward(dy, x):
    return dy * (x > 0)


def leaky_relu(x, negative_slope):
    return np.where(x > 0, x, x * negative_slope).astype(x.dtype)


def leaky_relu_backward(dy, x, negative_slope):
    return np.where(x > 0, dy, dy * negative_slope).astype(x.dtype)


def sigmoid(x):
    # exp(-|x|) never overflows; pick the algebraically equal form per sign.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def sigmoid_backward(dy, y):  # y = sigmoid(x)
    return dy * y * (1 - y)


def tanh(x):
    return np.tanh(x)


def tanh_backward(dy, y):  # y = tanh(x)
    return dy * (1 - y * y)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_ERF = np.frompyfunc(math.erf, 1, 1)


def _erf(x):
    return _ERF(x).astype(x.dtype)


def _into(out, value):
    """value, or value written into the caller's array out (the `out=` of the other backends;
    this reference makes its temporaries anyway)."""
    if out is None:
        return value
    np.copyto(out, value, casting="same_kind")
    return out


def gelu(x, approximate, out=None):
    """approximate=False: x * Phi(x) with the exact erf; True: the tanh form used by GPT-2."""
    if approximate:
        return _into(out, 0.5 * x * (1 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))))
    return _into(out, 0.5 * x * (1 + _erf(x / math.sqrt(2.0))))


def gelu_backward(dy, x, approximate, out=None):
    if approximate:
        u = _SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)
        t = np.tanh(u)
        du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x ** 2)
        return _into(out, dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du))
    cdf = 0.5 * (1 + _erf(x / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return _into(out, (dy * (cdf + x * pdf)).astype(x.dtype))


def clamp(x, lo, hi):
    """min(max(x, lo), hi): NaN stays NaN; lo > hi gives hi everywhere, as torch.clamp."""
    t = x.dtype.type
    return np.minimum(np.maximum(x, t(lo)), t(hi))


def clamp_backward(dy, x, lo, hi):
    """dy where lo <= x <= hi (bounds included, as PyTorch), else 0 (even for a NaN or inf dy)."""
    t = x.dtype.type
    return np.where((x >= t(lo)) & (x <= t(hi)), dy, 0).astype(dy.dtype)


# ---------------------------------------------------------------- softmax family (2-D, last axis)
def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_backward(dy, y):  # dx = y * (dy - sum(dy * y))
    return y * (dy - (dy * y).sum(axis=1, keepdims=True))


def log_softmax(x):
    z = x - x.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def log_softmax_backward(dy, y):  # y = log_softmax(x); dx = dy - softmax * sum(dy)
    return dy - np.exp(y) * dy.sum(axis=1, keepdims=True)


def cross_entropy(logits, targets, ignore_index, grad_scale):
    """Per-row loss -log softmax(logits)[target], and grad_scale * (softmax - onehot).

    Rows whose target is ignore_index get loss 0 and gradient 0. targets: int64 (N,).
    """
    n = logits.shape[0]
    logp = log_softmax(logits)
    keep = targets != ignore_index
    safe = np.where(keep, targets, 0)
    losses = -logp[np.arange(n), safe] * keep
    grad = np.exp(logp)
    grad[np.arange(n), safe] -= 1
    grad = grad * keep[:, None] * grad_scale
    return losses.astype(logits.dtype), grad.astype(logits.dtype)


def mse_loss(pred, target):
    """Mean squared error over all elements, and its gradient with respect to pred (1-D)."""
    diff = pred - target
    n = max(diff.size, 1)
    return (diff * diff).sum() / n, (2 * diff / n).astype(pred.dtype)


# ---------------------------------------------------------------- layer norm (2-D, last axis)
def layer_norm(x, weight, bias, eps, out=None):
    """y = (x - mean) * rstd * weight + bias; returns y, mean (N,), rstd = 1/sqrt(var + eps) (N,).
    out: None or (y, mean, rstd) arrays to write."""
    mean = x.mean(axis=1)
    var = ((x - mean[:, None]) ** 2).mean(axis=1)
    rstd = 1 / np.sqrt(var + eps)
    xhat = (x - mean[:, None]) * rstd[:, None]
    got = xhat * weight + bias, mean, rstd.astype(x.dtype)
    return got if out is None else tuple(_into(o, v) for o, v in zip(out, got))


def layer_norm_backward(dy, x, weight, mean, rstd, out=None):
    xhat = (x - mean[:, None]) * rstd[:, None]
    dweight = (dy * xhat).sum(axis=0)
    dbias = dy.sum(axis=0)
    g = dy * weight
    dx = rstd[:, None] * (g - g.mean(axis=1, keepdims=True)
                          - xhat * (g * xhat).mean(axis=1, keepdims=True))
    return _into(out, dx), dweight, dbias


# ---------------------------------------------------------------- embedding
def embedding(weight, ids):  # weight (V, C), ids int64 (N,) -> (N, C)
    return weight[ids]


def embedding_backward(dout, ids, num_embeddings):  # scatter-add rows of dout into (V, C)
    dweight = np.zeros((num_embeddings, dout.shape[1]), dtype=dout.dtype)
    np.add.at(dweight, ids, dout)
    return dweight


# ---------------------------------------------------------------- optimizers (in place, 1-D)
def sgd_step(param, grad, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    """PyTorch's SGD. buf is the momentum buffer (size 0 when momentum == 0); first: buf is new."""
    d = grad + weight_decay * param if weight_decay != 0 else grad
    if momentum != 0:
        if first:
            buf[...] = d
        else:
            buf[...] = momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    param -= lr * d


def adam_step(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled):
    """PyTorch's Adam (decoupled=False: L2 added to grad) and AdamW (decoupled=True). step >= 1."""
    if decoupled:
        param *= 1 - lr * weight_decay
        g = grad
    else:
        g = grad + weight_decay * param if weight_decay != 0 else grad
    m[...] = beta1 * m + (1 - beta1) * g
    v[...] = beta2 * v + (1 - beta2) * g * g
    bc1 = 1 - beta1 ** step
    bc2 = 1 - beta2 ** step
    denom = np.sqrt(v) / math.sqrt(bc2) + eps
    param -= (lr / bc1) * m / denom


def adam_multi_step(params, grads, ms, vs, step, lr, beta1, beta2, eps, weight_decay, decoupled,
                    grad_scale):
    """adam_step on each tensor of the lists in turn, each gradient first multiplied by
    grad_scale (gradient clipping folded in; 1.0 leaves it as it is)."""
    for p, g, m, v in zip(params, grads, ms, vs):
        g = g * grad_scale if grad_scale != 1.0 else g
        adam_step(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled)

