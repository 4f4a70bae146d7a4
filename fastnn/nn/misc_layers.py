"""Small layers real programs use, as PyTorch's, built from Tensor ops (autograd gives their
gradients): nn.PReLU, nn.Hardshrink, nn.Softshrink, nn.Tanhshrink, nn.CosineSimilarity,
nn.PairwiseDistance and their functional forms."""
import numpy as np

from ..tensor import _device, _dtype, get_default_dtype, where
from . import functional as F
from .modules import Module, Parameter

__all__ = ["PReLU", "Hardshrink", "Softshrink", "Tanhshrink", "CosineSimilarity",
           "PairwiseDistance"]
FUNCTIONS = ["prelu", "hardshrink", "softshrink", "tanhshrink", "pairwise_distance"]


def prelu(input, weight):
    """max(0, x) + weight * min(0, x), weight of one value or one per channel (dim 1)."""
    if weight.ndim != 1:
        raise ValueError(f"prelu: weight must be 1-D, got shape {tuple(weight.shape)}")
    w = weight
    if weight.shape[0] != 1:
        channels = input.shape[1] if input.ndim >= 2 else input.shape[0]
        if weight.shape[0] != channels:
            raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found "
                               f"parameter numbers = {weight.shape[0]} and channel size = "
                               f"{channels}.")
        if input.ndim >= 2:
            w = weight.reshape(channels, *([1] * (input.ndim - 2)))
    return where(input >= 0, input, w * input)


def hardshrink(input, lambd=0.5):
    return where((input > lambd) | (input < -lambd), input, input * 0)


def softshrink(input, lambd=0.5):
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    return where(input > lambd, input - lambd, where(input < -lambd, input + lambd, input * 0))


def tanhshrink(input):
    return input - input.tanh()


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim, as torch.nn.functional.pairwise_distance."""
    return (x1 - x2 + eps).norm(p, dim=-1, keepdim=keepdim)


class PReLU(Module):
    """Parametric ReLU, as torch.nn.PReLU: weight (num_parameters,) filled with init."""

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        _device(device)
        self.num_parameters = num_parameters
        self.init = init
        self.weight = Parameter(np.full(num_parameters, init, _dtype(dtype) or
                                        get_default_dtype()))

    def reset_parameters(self):
        self.weight._data[...] = self.init

    def forward(self, input):
        return prelu(input, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class Hardshrink(Module):
    def __init__(self, lambd=0.5):
        super().__init__()
        self.lambd = lambd

    def forward(self, input):
        return hardshrink(input, self.lambd)


class Softshrink(Hardshrink):
    def forward(self, input):
        return softshrink(input, self.lambd)


class Tanhshrink(Module):
    def forward(self, input):
        return tanhshrink(input)


class CosineSimilarity(Module):
    def __init__(self, dim=1, eps=1e-8):
        super().__init__()
        self.dim = dim
        self.eps = eps

    def forward(self, x1, x2):
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    def __init__(self, p=2.0, eps=1e-6, keepdim=False):
        super().__init__()
        self.norm = p
        self.eps = eps
        self.keepdim = keepdim

    def forward(self, x1, x2):
        return pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)

