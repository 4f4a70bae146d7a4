"""More of PyTorch's activations and small functional helpers, with its names, arguments and
gradients (including PyTorch's choice at the kinks: hardtanh and relu6 pass no gradient at their
bounds, hardsigmoid none outside (-3, 3)):

    F.silu, F.mish, F.elu, F.selu, F.celu, F.relu6, F.hardtanh, F.hardswish, F.hardsigmoid,
    F.softsign, F.softmin, F.threshold, F.glu, F.one_hot, F.pad (constant mode), F.normalize,
    F.cosine_similarity
    nn.SiLU, nn.Mish, nn.ELU, nn.SELU, nn.CELU, nn.ReLU6, nn.Hardtanh, nn.Hardswish,
    nn.Hardsigmoid, nn.Softsign, nn.Softmin, nn.Threshold, nn.GLU

Smooth ones are Tensor expressions (autograd from fastnn.tensor); ones with kinks record one node
whose backward is PyTorch's. fastnn.nn attaches the functions to fastnn.nn.functional.
"""
import numpy as np

from ..tensor import Tensor, _asarray, _node, int64, softmax
from .modules import Module

FUNCTIONS = ["silu", "mish", "elu", "selu", "celu", "relu6", "hardtanh", "hardswish",
             "hardsigmoid", "softsign", "softmin", "threshold", "glu", "one_hot", "pad",
             "normalize", "cosine_similarity"]
__all__ = ["SiLU", "Mish", "ELU", "SELU", "CELU", "ReLU6", "Hardtanh", "Hardswish",
           "Hardsigmoid", "Softsign", "Softmin", "Threshold", "GLU"]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(z):
    return np.exp(-np.logaddexp(0, -z)).astype(z.dtype, copy=False)


def _elementwise(input, forward, derivative):
    """One node: y = forward(x), dy/dx = derivative(x, y) (numpy, in x's dtype)."""
    x = input._data
    y = _asarray(forward(x), x.dtype)               # (on x's device)

    def backward(g):
        return (g * _asarray(derivative(x, y), x.dtype),)
    return _node(y, (input,), backward)


def silu(input, inplace=False):
    """x * sigmoid(x)."""
    return _elementwise(input, lambda x: x * _sigmoid(x),
                        lambda x, y: _sigmoid(x) * (1 + x * (1 - _sigmoid(x))))


def mish(input, inplace=False):
    """x * tanh(softplus(x))."""
    def fwd(x):
        return x * np.tanh(np.logaddexp(0, x))

    def der(x, y):
        tsp = np.tanh(np.logaddexp(0, x))
        return tsp + x * _sigmoid(x) * (1 - tsp * tsp)
    return _elementwise(input, fwd, der)


def elu(input, alpha=1.0, inplace=False):
    return _elementwise(input, lambda x: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))),
                        lambda x, y: np.where(x > 0, 1, alpha * np.exp(np.minimum(x, 0))))


def selu(input, inplace=False):
    a, s = _SELU_ALPHA, _SELU_SCALE
    return _elementwise(input,
                        lambda x: s * np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))),
                        lambda x, y: s * np.where(x > 0, 1, a * np.exp(np.minimum(x, 0))))


def celu(input, alpha=1.0, inplace=False):
    return _elementwise(
        input, lambda x: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0) / alpha)),
        lambda x, y: np.where(x > 0, 1, np.exp(np.minimum(x, 0) / alpha)))


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """x clamped to [min_val, max_val]; gradient 1 strictly inside, 0 at and beyond the bounds."""
    return _elementwise(input, lambda x: np.clip(x, min_val, max_val),
                        lambda x, y: (x > min_val) & (x < max_val))


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0)


def hardswish(input, inplace=False):
    """x * relu6(x + 3) / 6."""
    return _elementwise(input, lambda x: x * np.clip(x + 3, 0, 6) / 6,
                        lambda x, y: np.where(x <= -3, 0, np.where(x < 3, x / 3 + 0.5, 1)))


def hardsigmoid(input, inplace=False):
    """relu6(x + 3) / 6."""
    return _elementwise(input, lambda x: np.clip(x + 3, 0, 6) / 6,
                        lambda x, y: ((x > -3) & (x < 3)) / 6.0)


def softsign(input):
    """x / (1 + |x|)."""
    return input / (1 + input.abs())


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    return softmax(-input, dim=dim if dim is not None else (0 if input.dim() in (0, 1, 3)
                                                            else 1))


def threshold(input, threshold, value, inplace=False):
    """x where x > threshold, else value."""
    return _elementwise(input, lambda x: np.where(x > threshold, x, value),
                        lambda x, y: x > threshold)


def glu(input, dim=-1):
    """a * sigmoid(b), with a, b the two halves of input along dim."""
    n = input.shape[dim]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim % input.dim()} "
                           f"is size {n}")
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()


def one_hot(tensor, num_classes=-1):
    """Integer class indices -> int64 one-hot vectors along a new last dimension."""
    idx = np.asarray(tensor._data if isinstance(tensor, Tensor) else tensor)
    if idx.dtype.kind not in "iu":
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if idx.size and idx.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if num_classes == -1:
        num_classes = int(idx.max()) + 1 if idx.size else 0
    elif idx.size and idx.max() >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    out = np.zeros(idx.shape + (num_classes,), int64)
    np.put_along_axis(out, idx[..., None].astype(np.int64), 1, axis=-1)
    return Tensor(out)


def pad(input, pad, mode="constant", value=None):
    """Pad (or, with negative amounts, crop) the last len(pad) // 2 dimensions:
    pad = (left, right) for the last dim, then (top, bottom) for the one before, ...
    Only mode='constant' here."""
    if mode != "constant":
        raise NotImplementedError(f"F.pad: mode={mode!r} is not supported (only 'constant')")
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    x = input._data
    k = len(pad) // 2
    if k > x.ndim:
        raise RuntimeError("Padding length should be less than or equal to two times the "
                           "input dimension")
    widths = [(0, 0)] * (x.ndim - k) + [(int(pad[2 * i]), int(pad[2 * i + 1]))
                                        for i in reversed(range(k))]
    src = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(widths, x.shape))
    shape = tuple(n + lo + hi for (lo, hi), n in zip(widths, x.shape))
    if any(s < 0 for s in shape):
        raise RuntimeError(f"F.pad: the padded shape {shape} has a negative size")
    y = np.full_like(x, 0 if value is None else value, shape=shape)   # (on x's device)
    dst = tuple(slice(max(lo, 0), max(lo, 0) + (s.stop - s.start))
                for (lo, hi), s in zip(widths, src))
    y[dst] = x[src]

    def backward(g):
        gx = np.zeros_like(g, shape=x.shape)
        gx[src] = g[dst]
        return (gx,)
    return _node(y, (input,), backward)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p along dim, eps)."""
    return input / input.norm(p, dim, keepdim=True).clamp(min=eps)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 * x2) / (max(||x1||, eps) max(||x2||, eps)) along dim, after broadcasting."""
    x1 = x1 / x1.norm(2, dim, keepdim=True).clamp(min=eps)
    x2 = x2 / x2.norm(2, dim, keepdim=True).clamp(min=eps)
    return (x1 * x2).sum(dim)


# ---------------------------------------------------------------- modules
class _Simple(Module):
    _fn = None

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return type(self)._fn(input)


class SiLU(_Simple):
    _fn = staticmethod(silu)


class Mish(_Simple):
    _fn = staticmethod(mish)


class SELU(_Simple):
    _fn = staticmethod(selu)


class Hardswish(_Simple):
    _fn = staticmethod(hardswish)


class Hardsigmoid(_Simple):
    _fn = staticmethod(hardsigmoid)


class Softsign(Module):
    def forward(self, input):
        return softsign(input)


class ELU(Module):
    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):
        return elu(input, self.alpha)


class CELU(Module):
    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):
        return celu(input, self.alpha)


class Hardtanh(Module):
    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input):
        return hardtanh(input, self.min_val, self.max_val)


class ReLU6(Hardtanh):
    def __init__(self, inplace=False):
        super().__init__(0.0, 6.0, inplace)


class Softmin(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return softmin(input, self.dim)


class Threshold(Module):
    def __init__(self, threshold, value, inplace=False):
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace

    def forward(self, input):
        return threshold(input, self.threshold, self.value)


class GLU(Module):
    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return glu(input, self.dim)

