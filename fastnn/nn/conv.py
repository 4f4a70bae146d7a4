"""Convolution layers with PyTorch's names, arguments, initialization and state-dict keys:
nn.Conv2d (weight (out, in/groups, kH, kW), bias (out,)) and nn.ConvTranspose2d (weight
(in, out/groups, kH, kW), bias (out,)).

Initialization, as torch's _ConvNd.reset_parameters: kaiming_uniform_(weight, a=sqrt(5)), i.e.
U(-b, b) with b = 1/sqrt(fan_in), and the bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), where fan_in
= weight.shape[1] * kH * kW (for the transposed layer that is out/groups * kH * kW, as torch).
"""
import math

import numpy as np

from ..tensor import _device, _dtype, get_default_dtype
from . import functional as F
from . import init
from .modules import Module, Parameter

__all__ = ["Conv2d", "ConvTranspose2d"]


def _pair(v, name):
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return (int(v), int(v))
    t = tuple(v)
    if len(t) == 1:
        t = t * 2
    if len(t) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return tuple(int(e) for e in t)


class _ConvNd(Module):
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                 bias, padding_mode, output_padding=0, device=None, dtype=None):
        super().__init__()
        _device(device)
        name = type(self).__name__
        if groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer")
        if in_channels % groups:
            raise ValueError(f"{name}: in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError(f"{name}: out_channels must be divisible by groups")
        if padding_mode != "zeros":
            if padding_mode in ("reflect", "replicate", "circular"):
                raise NotImplementedError(f"{name}: padding_mode={padding_mode!r} is not "
                                          f"supported (only 'zeros')")
            raise ValueError(f"{name}: padding_mode must be one of 'zeros', 'reflect', "
                             f"'replicate' or 'circular', got {padding_mode!r}")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: invalid padding string {padding!r}, should be one of "
                                 f"{{'valid', 'same'}}")
            if padding == "same" and _pair(stride, "stride") != (1, 1):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 f"convolutions")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = padding if isinstance(padding, str) else _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.transposed = self._transposed
        self.output_padding = _pair(output_padding, "output_padding")
        self.groups = groups
        self.padding_mode = padding_mode
        dtype = _dtype(dtype) or get_default_dtype()
        if self._transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, " \
            f"stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else \
                f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W) (or (C_in, H, W)) -> (N, C_out, H_out, W_out), as
    torch.nn.Conv2d: H_out = floor((H + 2 padding - dilation (kH - 1) - 1) / stride) + 1."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, 0, device, dtype)

    def forward(self, input):
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution (the gradient of Conv2d with respect to its input), as
    torch.nn.ConvTranspose2d: H_out = (H - 1) stride - 2 padding + dilation (kH - 1) +
    output_padding + 1. forward(input, output_size) picks output_padding to reach output_size."""
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        if isinstance(padding, str):
            raise ValueError("ConvTranspose2d: padding must be an int or a pair of ints")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, device, dtype)

    def _output_padding(self, input, output_size):
        if output_size is None:
            return self.output_padding
        size = [int(v) for v in (output_size._data.tolist() if hasattr(output_size, "_data")
                                 and not isinstance(output_size, (list, tuple))
                                 else output_size)]
        if len(size) == input._data.ndim:
            size = size[2:] if input._data.ndim == 4 else size[1:]
        if len(size) != 2:
            raise ValueError(f"ConvTranspose2d: output_size must have 2 or "
                             f"{input._data.ndim} elements (got {len(size)})")
        res = []
        for d in range(2):
            n = input._data.shape[-2 + d]
            smallest = ((n - 1) * self.stride[d] - 2 * self.padding[d]
                        + self.dilation[d] * (self.kernel_size[d] - 1) + 1)
            largest = smallest + self.stride[d] - 1
            if not smallest <= size[d] <= largest:
                raise ValueError(f"ConvTranspose2d: requested an output size of {size}, but "
                                 f"valid sizes range from {smallest} to {largest} (for an input "
                                 f"of {tuple(input._data.shape[-2:])})")
            res.append(size[d] - smallest)
        return tuple(res)

    def forward(self, input, output_size=None):
        opad = self._output_padding(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, opad,
                                  self.groups, self.dilation)
