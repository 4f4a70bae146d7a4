"""Padding, as PyTorch's: F.pad with every mode ('constant', 'reflect', 'replicate', 'circular')
and the modules ZeroPad1d/2d, ConstantPad1d/2d, ReflectionPad1d/2d, ReplicationPad1d/2d,
CircularPad1d/2d.

'constant' is F.pad's own (fastnn/nn/activations.py). The other modes only re-index the input:
along each padded dim the output reads the input at a computed position (mirrored without the
edge for reflect, clamped for replicate, wrapped for circular), one index_select per dim, so the
gradient is index_select's scatter-add."""
import numpy as np

from ..tensor import Tensor, tensor
from . import activations
from .modules import Module

__all__ = ["ZeroPad1d", "ZeroPad2d", "ConstantPad1d", "ConstantPad2d", "ReflectionPad1d",
           "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d", "CircularPad1d",
           "CircularPad2d"]
FUNCTIONS = ["pad"]


def _source_index(n, left, right, mode):
    """Where each of the n + left + right output positions reads the input (length n)."""
    pos = np.arange(-left, n + right)
    if mode == "reflect":
        if left >= n or right >= n:
            raise RuntimeError(f"Argument #4: Padding size should be less than the "
                               f"corresponding input dimension, but got: padding ({left}, "
                               f"{right}) at dimension of size {n}")
        period = 2 * (n - 1)
        pos = np.abs(pos) % period if period else np.zeros_like(pos)
        return np.where(pos >= n, period - pos, pos)
    if mode == "replicate":
        if n == 0:
            raise RuntimeError("replicate padding needs a non-empty dimension")
        return np.clip(pos, 0, n - 1)
    if left > n or right > n:
        raise RuntimeError("Padding value causes wrapping around more than once.")
    return pos % n


def pad(input, pad, mode="constant", value=None):
    """Pad the last len(pad) // 2 dims of input: pad = (left, right) for the last dim, then
    (top, bottom) for the one before, ..., as torch.nn.functional.pad."""
    if mode == "constant":
        return activations.pad(input, pad, mode, value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"F.pad: unknown padding mode {mode!r} (one of 'constant', "
                                  f"'reflect', 'replicate', 'circular')")
    if value:
        raise ValueError(f"Padding mode \"{mode}\" doesn't take in value argument")
    if not isinstance(input, Tensor):
        raise TypeError(f"F.pad: input must be a Tensor, got {type(input).__name__}")
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    k = len(pad) // 2
    if not 1 <= k <= 3 or input.ndim not in (k + 1, k + 2):
        raise NotImplementedError(f"F.pad: {mode} padding of {k} dims needs a {k + 1}-D or "
                                  f"{k + 2}-D input, got {input.ndim}-D")
    y = input
    for i in range(k):
        dim = input.ndim - 1 - i
        left, right = int(pad[2 * i]), int(pad[2 * i + 1])
        if left == right == 0:
            continue
        if left < 0 or right < 0:
            raise NotImplementedError(f"F.pad: negative {mode} padding is not supported")
        idx = _source_index(input.shape[dim], left, right, mode)
        y = y.index_select(dim, tensor(idx))
    return y


def _widths(padding, n):
    if isinstance(padding, (int, np.integer)):
        return (int(padding),) * (2 * n)
    p = tuple(int(v) for v in padding)
    if len(p) != 2 * n:
        raise ValueError(f"padding must be an int or a {2 * n}-tuple, got {padding!r}")
    return p


class _Pad(Module):
    _mode = "constant"
    _n = 1

    def __init__(self, padding, value=0.0):
        super().__init__()
        self.padding = _widths(padding, self._n)
        self.value = value

    def forward(self, input):
        if self._mode == "constant":
            return pad(input, self.padding, "constant", self.value)
        return pad(input, self.padding, self._mode)

    def extra_repr(self):
        if self._mode == "constant" and type(self).__name__.startswith("Constant"):
            return f"padding={self.padding}, value={self.value}"
        return f"{self.padding}"


class ConstantPad1d(_Pad):
    def __init__(self, padding, value):
        super().__init__(padding, value)


class ConstantPad2d(ConstantPad1d):
    _n = 2


class ZeroPad1d(_Pad):
    def __init__(self, padding):
        super().__init__(padding, 0.0)


class ZeroPad2d(ZeroPad1d):
    _n = 2


class ReflectionPad1d(_Pad):
    _mode = "reflect"

    def __init__(self, padding):
        super().__init__(padding)


class ReflectionPad2d(ReflectionPad1d):
    _n = 2


class ReplicationPad1d(ReflectionPad1d):
    _mode = "replicate"


class ReplicationPad2d(ReplicationPad1d):
    _n = 2


class CircularPad1d(ReflectionPad1d):
    _mode = "circular"


class CircularPad2d(CircularPad1d):
    _n = 2
