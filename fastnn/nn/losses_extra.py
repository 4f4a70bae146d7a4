"""More losses with PyTorch's formulas, arguments and reductions, built from Tensor ops (autograd
gives their gradients): margin ranking, hinge embedding, soft margin, multilabel soft margin,
cosine embedding, triplet margin, multi-class margin, Poisson NLL and Gaussian NLL, as functions
and modules."""
import math

import numpy as np

from ..tensor import Tensor, where
from . import functional as F
from .modules import Module

__all__ = ["MarginRankingLoss", "HingeEmbeddingLoss", "SoftMarginLoss",
           "MultiLabelSoftMarginLoss", "CosineEmbeddingLoss", "TripletMarginLoss",
           "MultiMarginLoss", "PoissonNLLLoss", "GaussianNLLLoss"]
FUNCTIONS = ["margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss",
             "multilabel_soft_margin_loss", "cosine_embedding_loss", "triplet_margin_loss",
             "multi_margin_loss", "poisson_nll_loss", "gaussian_nll_loss"]


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _t(x, like):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x, like._data.dtype))


def margin_ranking_loss(input1, input2, target, margin=0.0, reduction="mean"):
    """max(0, -target (input1 - input2) + margin)."""
    target = _t(target, input1)
    return _reduce((-target * (input1 - input2) + margin).clamp(min=0), reduction)


def hinge_embedding_loss(input, target, margin=1.0, reduction="mean"):
    """input where target is 1, max(0, margin - input) where it is -1."""
    target = _t(target, input)
    zero = input * 0
    loss = where(target != 1, (margin - input).clamp(min=0), zero) + \
        where(target != -1, input, zero)
    return _reduce(loss, reduction)


def soft_margin_loss(input, target, reduction="mean"):
    """log(1 + exp(-target input))."""
    return _reduce(F.softplus(-_t(target, input) * input), reduction)


def multilabel_soft_margin_loss(input, target, weight=None, reduction="mean"):
    """The binary cross entropy of each class's logit, averaged over the classes."""
    target = _t(target, input)
    loss = -(target * F.logsigmoid(input) + (1 - target) * F.logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss.sum(-1) / input.shape[-1], reduction)


def cosine_embedding_loss(input1, input2, target, margin=0.0, reduction="mean"):
    """1 - cos(input1, input2) where target is 1, max(0, cos - margin) where it is -1."""
    eps = 1e-12                                   # ATen's EPSILON
    dim = input1.ndim - 1
    prod = (input1 * input2).sum(dim)
    mag = ((input1 * input1).sum(dim) + eps) * ((input2 * input2).sum(dim) + eps)
    cos = prod / mag.sqrt()
    target = _t(target, input1)
    zero = cos * 0
    loss = where(target == 1, 1 - cos, zero) + \
        where(target == -1, (cos - margin).clamp(min=0), zero)
    return _reduce(loss, reduction)


def _distance(a, b, p, eps):
    return (a - b + eps).norm(p, dim=-1)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False,
                        reduction="mean"):
    """max(d(a, p) - d(a, n) + margin, 0), d the p-norm distance (with swap, d(a, n) is
    min(d(a, n), d(p, n)))."""
    d_pos = _distance(anchor, positive, p, eps)
    d_neg = _distance(anchor, negative, p, eps)
    if swap:
        d_swap = _distance(positive, negative, p, eps)
        d_neg = where(d_swap < d_neg, d_swap, d_neg)
    return _reduce((margin + d_pos - d_neg).clamp(min=0), reduction)


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, reduction="mean"):
    """sum over i != y of max(0, margin - x[y] + x[i])^p / C, per sample (weight[y] times it)."""
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    batched = input.ndim == 2
    x = input if batched else input.unsqueeze(0)
    y = np.asarray(target._data if isinstance(target, Tensor) else target,
                   np.int64).reshape(-1)
    n, c = x.shape
    picked = x[np.arange(n), y].unsqueeze(1)
    terms = (margin - picked + x).clamp(min=0)
    if p == 2:
        terms = terms * terms
    others = np.ones((n, c), x._data.dtype)
    others[np.arange(n), y] = 0
    if weight is not None:
        terms = terms * weight[y].unsqueeze(1)
    loss = (terms * Tensor(others)).sum(1) / c
    return _reduce(loss if batched else loss.squeeze(0), reduction)


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8,
                     reduce=None, reduction="mean"):
    """exp(input) - target input (log_input), or input - target log(input + eps); full adds
    Stirling's approximation of log(target!) where target > 1."""
    target = _t(target, input)
    loss = input.exp() - target * input if log_input else input - target * (input + eps).log()
    if full:
        t = target._data
        safe = np.where(t > 1, t, 1.0)
        stirling = np.where(t > 1, safe * np.log(safe) - safe + 0.5 * np.log(2 * np.pi * safe),
                            0.0)
        loss = loss + Tensor(stirling.astype(input._data.dtype))
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """0.5 (log(var) + (input - target)^2 / var) (+ 0.5 log(2 pi) with full); var is clamped at
    eps without stopping its gradient, as torch does."""
    var = _t(var, input)
    if var.ndim == input.ndim - 1 and tuple(var.shape) == tuple(input.shape[:-1]):
        var = var.unsqueeze(-1)
    if np.any(var._data < 0):
        raise ValueError("var has negative entry/entries")
    v = var._data
    var = var + Tensor(np.maximum(v, eps) - v)      # the clamp as a constant shift
    loss = 0.5 * (var.log() + (input - _t(target, input)) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


class _Loss(Module):
    _fn = None
    _args = ()

    def __init__(self, *args, reduction="mean", **kwargs):
        super().__init__()
        names = self._args
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional "
                            f"arguments")
        values = dict(self._defaults)
        values.update(zip(names, args))
        for k, v in kwargs.items():
            if k in ("size_average", "reduce"):
                continue                            # torch's deprecated pair, ignored
            if k not in values:
                raise TypeError(f"{type(self).__name__}: unexpected argument {k!r}")
            values[k] = v
        self.reduction = reduction
        for k, v in values.items():
            setattr(self, k, v)

    def forward(self, *inputs):
        kw = {k: getattr(self, k) for k in self._args}
        return type(self)._fn(*inputs, **kw, reduction=self.reduction)


def _loss(name, fn, **defaults):
    return type(name, (_Loss,), {"_fn": staticmethod(fn), "_args": tuple(defaults),
                                 "_defaults": defaults, "__doc__": f"{fn.__name__} as a module, "
                                 f"as torch.nn.{name}."})


MarginRankingLoss = _loss("MarginRankingLoss", margin_ranking_loss, margin=0.0)
HingeEmbeddingLoss = _loss("HingeEmbeddingLoss", hinge_embedding_loss, margin=1.0)
SoftMarginLoss = _loss("SoftMarginLoss", soft_margin_loss)
MultiLabelSoftMarginLoss = _loss("MultiLabelSoftMarginLoss", multilabel_soft_margin_loss,
                                 weight=None)
CosineEmbeddingLoss = _loss("CosineEmbeddingLoss", cosine_embedding_loss, margin=0.0)
TripletMarginLoss = _loss("TripletMarginLoss", triplet_margin_loss, margin=1.0, p=2.0,
                          eps=1e-6, swap=False)
MultiMarginLoss = _loss("MultiMarginLoss", multi_margin_loss, p=1, margin=1.0, weight=None)
PoissonNLLLoss = _loss("PoissonNLLLoss", poisson_nll_loss, log_input=True, full=False,
                       eps=1e-8)
GaussianNLLLoss = _loss("GaussianNLLLoss", gaussian_nll_loss, full=False, eps=1e-6)
