"""The losses and activations real PyTorch programs reach for beyond cross-entropy and MSE, with
PyTorch's names, arguments, formulas and reductions, built from Tensor ops (so autograd, double
backward where the ops have it, and broadcasting come from fastnn.tensor):

    F.binary_cross_entropy, F.binary_cross_entropy_with_logits, F.l1_loss, F.smooth_l1_loss,
    F.huber_loss, F.kl_div, F.softplus, F.logsigmoid
    nn.BCELoss, nn.BCEWithLogitsLoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, nn.KLDivLoss,
    nn.NLLLoss, nn.Softplus, nn.LogSigmoid

fastnn.nn attaches the functions to fastnn.nn.functional.
"""
import warnings

import numpy as np

from ..tensor import Tensor, _node, where
from . import functional as F
from .modules import Module

FUNCTIONS = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "l1_loss",
             "smooth_l1_loss", "huber_loss", "kl_div", "softplus", "logsigmoid"]
__all__ = ["BCELoss", "BCEWithLogitsLoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "KLDivLoss",
           "NLLLoss", "Softplus", "LogSigmoid"]


def _t(x, like):
    if isinstance(x, Tensor):
        return x
    return Tensor(np.asarray(x, dtype=like._data.dtype))


def _reduce(loss, reduction, name):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _same_size(input, target, name, error):
    if tuple(target.shape) != tuple(input.shape):
        msg = (f"Using a target size ({target.shape}) that is different to the input size "
               f"({input.shape}) is deprecated. Please ensure they have the same size.")
        if error:
            raise ValueError(msg)
        warnings.warn(msg + " This will likely lead to incorrect results due to broadcasting.",
                      stacklevel=3)


# ---------------------------------------------------------------- activations
def _sigmoid(z):
    return np.exp(-np.logaddexp(0, -z)).astype(z.dtype, copy=False)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (PyTorch's);
    gradient sigmoid(beta * x) (1 above the threshold)."""
    x = input._data
    bx = x * x.dtype.type(beta)
    over = bx > threshold
    y = np.where(over, x, np.logaddexp(0, bx) / beta).astype(x.dtype, copy=False)

    def backward(g):
        return (g * np.where(over, 1, _sigmoid(bx)).astype(x.dtype, copy=False),)
    return _node(y, (input,), backward)


def logsigmoid(input):
    """log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)), stable for large |x|; gradient
    sigmoid(-x) (0.5 at 0, where min and |.| have kinks)."""
    x = input._data
    y = (np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)

    def backward(g):
        return (g * _sigmoid(-x),)
    return _node(y, (input,), backward)


# ---------------------------------------------------------------- losses
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """-(t log x + (1 - t) log(1 - x)), each log clamped at -100 as PyTorch does."""
    target = _t(target, input)
    _same_size(input, target, "binary_cross_entropy", error=True)
    if ((input._data < 0) | (input._data > 1)).any():
        raise RuntimeError("all elements of input should be between 0 and 1")
    x, t = input._data, target._data
    with np.errstate(divide="ignore"):
        log_x = np.maximum(np.log(x), -100)
        log_1mx = np.maximum(np.log1p(-x), -100)
    value = -(t * log_x + (1 - t) * log_1mx)

    def backward(g):  # PyTorch's: (x - t) / max(x (1 - x), 1e-12)
        gx = g * (x - t) / np.maximum(x * (1 - x), x.dtype.type(1e-12))
        return gx.astype(x.dtype, copy=False), (g * (log_1mx - log_x)).astype(x.dtype,
                                                                             copy=False)
    loss = _node(value.astype(x.dtype, copy=False), (input, target), backward)
    if weight is not None:
        loss = loss * _t(weight, input)
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Sigmoid + binary cross-entropy in one stable expression:
    (1 - t) x - w_pos log(sigmoid(x)), with w_pos = 1 + (pos_weight - 1) t."""
    target = _t(target, input)
    _same_size(input, target, "binary_cross_entropy_with_logits", error=True)
    log_sig = logsigmoid(input)
    if pos_weight is not None:
        log_sig = log_sig * ((_t(pos_weight, input) - 1) * target + 1)
    loss = (1 - target) * input - log_sig
    if weight is not None:
        loss = loss * _t(weight, input)
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    target = _t(target, input)
    _same_size(input, target, "l1_loss", error=False)
    return _reduce((input - target).abs(), reduction, "l1_loss")


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta."""
    target = _t(target, input)
    _same_size(input, target, "smooth_l1_loss", error=False)
    d = (input - target).abs()
    if beta == 0:
        return _reduce(d, reduction, "smooth_l1_loss")
    return _reduce(where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction,
                   "smooth_l1_loss")


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    target = _t(target, input)
    _same_size(input, target, "huber_loss", error=False)
    d = (input - target).abs()
    loss = where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))
    if weight is not None:
        loss = loss * _t(weight, input)
    return _reduce(loss, reduction, "huber_loss")


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL(target || exp(input)) pointwise: target (log target - input), 0 where target is 0.
    reduction 'batchmean' divides the sum by the batch size (the mathematically right mean)."""
    target = _t(target, input)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        # xlogy(target, target) - target * input: 0 log 0 counts as 0
        xlogy = where(target > 0, target * where(target > 0, target, 1.0).log(), 0.0)
        loss = xlogy - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.dim() else 1)
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the "
                      "support size.'batchmean' divides only by the batch size, and aligns with "
                      "the KL div math definition.'mean' will be changed to behave the same as "
                      "'batchmean' in the next major release.", stacklevel=2)
    return _reduce(loss, reduction, "kl_div")


# ---------------------------------------------------------------- modules
class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class BCELoss(_WeightedLoss):
    def forward(self, input, target):
        return binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, self.weight,
                                                pos_weight=self.pos_weight,
                                                reduction=self.reduction)


class L1Loss(_Loss):
    def forward(self, input, target):
        return l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class KLDivLoss(_Loss):
    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class NLLLoss(_WeightedLoss):
    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        if weight is not None:
            raise NotImplementedError("NLLLoss: class weights are not supported")
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class Softplus(Module):
    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input):
        return softplus(input, self.beta, self.threshold)


class LogSigmoid(Module):
    def forward(self, input):
        return logsigmoid(input)
