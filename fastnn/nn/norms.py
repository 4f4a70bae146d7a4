"""More normalization layers, with PyTorch's names, arguments, buffers and state-dict keys:
nn.InstanceNorm1d, nn.InstanceNorm2d and nn.RMSNorm, with F.instance_norm and F.rms_norm.

Instance norm normalizes each (sample, channel) over its positions: that is group norm with one
channel per group, so it runs on the group_norm kernels. With track_running_stats it also keeps
running_mean / running_var, updated as torch does (the mean over the batch of each instance's
mean and unbiased variance), and uses them in eval mode through the batch_norm kernels.

RMSNorm: y = x / sqrt(mean(x^2 over the normalized dims) + eps) * weight, eps defaulting to the
dtype's machine epsilon (torch.finfo(x.dtype).eps), built from Tensor ops."""
import numbers

import numpy as np

from ..tensor import Tensor, _device, _dtype, get_default_dtype
from . import functional as F
from .modules import Module, Parameter
from .normalization import _NormBase

__all__ = ["InstanceNorm1d", "InstanceNorm2d", "RMSNorm"]
FUNCTIONS = ["instance_norm", "rms_norm"]


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Instance normalization of input (N, C, *), as torch.nn.functional.instance_norm."""
    if not isinstance(input, Tensor):
        raise TypeError(f"instance_norm: input must be a Tensor, got {type(input).__name__}")
    x = input._data
    if x.ndim < 3:
        raise ValueError(f"instance_norm: expected input (N, C, *) with at least one position "
                         f"dim, got shape {x.shape}")
    c = x.shape[1]
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ValueError("Expected running_mean and running_var to be defined when "
                             "use_input_stats is false")
        return F.batch_norm(input, running_mean, running_var, weight, bias, False, momentum,
                            eps)
    positions = int(np.prod(x.shape[2:]))
    if positions <= 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size "
                         f"{list(x.shape)}")
    y = F.group_norm(input, c, weight, bias, eps)
    if running_mean is not None and running_var is not None:
        flat = x.reshape(x.shape[0], c, -1).astype(np.float64)
        m = 0.0 if momentum is None else momentum
        rm, rv = running_mean._data, running_var._data
        rm[...] = (1 - m) * rm + m * flat.mean(-1).mean(0)
        rv[...] = (1 - m) * rv + m * flat.var(-1, ddof=1).mean(0)
        running_mean._vc[0] += 1
        running_var._vc[0] += 1
    return y


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """Root-mean-square normalization over the last len(normalized_shape) dims, as
    torch.nn.functional.rms_norm."""
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) \
        else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise RuntimeError(f"rms_norm: the input's trailing dims {tuple(input.shape)} do not "
                           f"match normalized_shape {list(shape)}")
    if eps is None:
        eps = float(np.finfo(input._data.dtype).eps)
    dims = tuple(range(-len(shape), 0))
    y = input * ((input * input).mean(dims, keepdim=True) + eps).rsqrt()
    return y if weight is None else y * weight


class _InstanceNorm(_NormBase):
    _dims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, device=None, dtype=None):
        # torch registers num_batches_tracked here too, and never counts it
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, input):
        batched, unbatched = self._dims
        if input.ndim not in self._dims:
            raise ValueError(f"expected {unbatched}D or {batched}D input (got {input.ndim}D "
                             f"input)")
        x = input if input.ndim == batched else input.unsqueeze(0)
        if self.affine and x.shape[1] != self.num_features:
            raise ValueError(f"expected input's size at dim=1 to match num_features "
                             f"({self.num_features}), but got: {x.shape[1]}.")
        use_input_stats = self.training or not self.track_running_stats
        y = instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                          use_input_stats, self.momentum if self.momentum is not None else 0.0,
                          self.eps)
        return y if input.ndim == batched else y.squeeze(0)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    """Instance norm over (N, C, L) or (C, L), as torch.nn.InstanceNorm1d (affine=False and
    track_running_stats=False by default)."""
    _dims = (3, 2)


class InstanceNorm2d(_InstanceNorm):
    """Instance norm over (N, C, H, W) or (C, H, W), as torch.nn.InstanceNorm2d."""
    _dims = (4, 3)


class RMSNorm(Module):
    """RMS normalization over the last dims, as torch.nn.RMSNorm (weight ones)."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None,
                 dtype=None):
        super().__init__()
        _device(device)
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        dtype = _dtype(dtype) or get_default_dtype()
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype))
        else:
            self.register_parameter("weight", None)

    def reset_parameters(self):
        if self.weight is not None:
            self.weight._data[...] = 1

    def forward(self, x):
        return rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
