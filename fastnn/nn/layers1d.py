"""1-D layers over (N, C, L) sequences, with PyTorch's names, arguments and state-dict keys:
nn.Conv1d (weight (out, in/groups, k), bias (out,)), nn.MaxPool1d, nn.AvgPool1d,
nn.AdaptiveAvgPool1d, and their functional forms.

Each runs the 2-D kernel on the input viewed as (N, C, 1, L), with a (1, k) kernel: the same
arithmetic, and the 2-D kernels' gradients through unsqueeze/squeeze."""
import math

import numpy as np

from ..tensor import Tensor, _device, _dtype, get_default_dtype
from . import functional as F
from . import init
from .modules import Module, Parameter

__all__ = ["Conv1d", "ConvTranspose1d", "MaxPool1d", "AvgPool1d", "AdaptiveAvgPool1d"]
FUNCTIONS = ["conv1d", "conv_transpose1d", "max_pool1d", "avg_pool1d", "adaptive_avg_pool1d"]


def _single(v, name):
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v)
    t = tuple(v)
    if len(t) != 1:
        raise ValueError(f"{name} must be an int or a 1-tuple, got {v!r}")
    return int(t[0])


def _as_2d(input, fn):
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}: input must be a Tensor, got {type(input).__name__}")
    if input.ndim not in (2, 3):
        raise ValueError(f"{fn}: expected a 2-D (C, L) or 3-D (N, C, L) input, got shape "
                         f"{tuple(input.shape)}")
    return input.unsqueeze(-2)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution of input (N, C, L) or (C, L) with weight (C_out, C/groups, k), as
    torch.nn.functional.conv1d; padding may be an int, 'valid' or 'same'."""
    x = _as_2d(input, "conv1d")
    if weight.ndim != 3:
        raise ValueError(f"conv1d: weight must be 3-D (C_out, C_in/groups, k), got shape "
                         f"{tuple(weight.shape)}")
    pad = padding if isinstance(padding, str) else (0, _single(padding, "padding"))
    y = F.conv2d(x, weight.unsqueeze(2), bias, (1, _single(stride, "stride")), pad,
                 (1, _single(dilation, "dilation")), groups)
    return y.squeeze(-2)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """1-D transposed convolution of input (N, C, L) with weight (C, C_out/groups, k), as
    torch.nn.functional.conv_transpose1d."""
    x = _as_2d(input, "conv_transpose1d")
    if weight.ndim != 3:
        raise ValueError(f"conv_transpose1d: weight must be 3-D (C_in, C_out/groups, k), got "
                         f"shape {tuple(weight.shape)}")
    y = F.conv_transpose2d(x, weight.unsqueeze(2), bias, (1, _single(stride, "stride")),
                           (0, _single(padding, "padding")),
                           (0, _single(output_padding, "output_padding")), groups,
                           (1, _single(dilation, "dilation")))
    return y.squeeze(-2)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """1-D max pooling, as torch.nn.functional.max_pool1d (stride defaults to kernel_size)."""
    x = _as_2d(input, "max_pool1d")
    k = _single(kernel_size, "kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else \
        _single(stride, "stride")
    y, idx = F.max_pool2d(x, (1, k), (1, s), (0, _single(padding, "padding")),
                          (1, _single(dilation, "dilation")), ceil_mode, True)
    y = y.squeeze(-2)
    return (y, Tensor(idx._data[..., 0, :])) if return_indices else y


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """1-D average pooling, as torch.nn.functional.avg_pool1d."""
    x = _as_2d(input, "avg_pool1d")
    k = _single(kernel_size, "kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else \
        _single(stride, "stride")
    return F.avg_pool2d(x, (1, k), (1, s), (0, _single(padding, "padding")), ceil_mode,
                        count_include_pad).squeeze(-2)


def adaptive_avg_pool1d(input, output_size):
    """Adaptive 1-D average pooling to output_size, as torch.nn.functional.adaptive_avg_pool1d."""
    x = _as_2d(input, "adaptive_avg_pool1d")
    return F.adaptive_avg_pool2d(x, (1, _single(output_size, "output_size"))).squeeze(-2)


class Conv1d(Module):
    """1-D convolution over (N, C_in, L) -> (N, C_out, L_out), as torch.nn.Conv1d (kaiming-
    uniform weight, bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)))."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        _device(device)
        if groups <= 0:
            raise ValueError("Conv1d: groups must be a positive integer")
        if in_channels % groups:
            raise ValueError("Conv1d: in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError("Conv1d: out_channels must be divisible by groups")
        if padding_mode != "zeros":
            raise NotImplementedError(f"Conv1d: padding_mode={padding_mode!r} is not supported "
                                      f"(only 'zeros')")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv1d: invalid padding string {padding!r}, should be one of "
                                 f"{{'valid', 'same'}}")
            if padding == "same" and _single(stride, "stride") != 1:
                raise ValueError("Conv1d: padding='same' is not supported for strided "
                                 "convolutions")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = (_single(kernel_size, "kernel_size"),)
        self.stride = (_single(stride, "stride"),)
        self.padding = padding if isinstance(padding, str) else (_single(padding, "padding"),)
        self.dilation = (_single(dilation, "dilation"),)
        self.groups = groups
        self.padding_mode = padding_mode
        dtype = _dtype(dtype) or get_default_dtype()
        self.weight = Parameter(np.empty((out_channels, in_channels // groups) +
                                         self.kernel_size, dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight.shape[2]
            if fan_in:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        pad = self.padding if isinstance(self.padding, str) else self.padding[0]
        return conv1d(input, self.weight, self.bias, self.stride[0], pad, self.dilation[0],
                      self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, " \
            f"stride={self.stride}"
        if self.padding != (0,):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else \
                f", padding={self.padding}"
        if self.dilation != (1,):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class ConvTranspose1d(Module):
    """1-D transposed convolution, as torch.nn.ConvTranspose1d: weight (in, out/groups, k),
    L_out = (L - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        super().__init__()
        _device(device)
        if groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError("ConvTranspose1d: in_channels and out_channels must be divisible "
                             "by a positive groups")
        if padding_mode != "zeros":
            raise ValueError("Only \"zeros\" padding mode is supported for ConvTranspose1d")
        if isinstance(padding, str):
            raise ValueError("ConvTranspose1d: padding must be an int")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = (_single(kernel_size, "kernel_size"),)
        self.stride = (_single(stride, "stride"),)
        self.padding = (_single(padding, "padding"),)
        self.output_padding = (_single(output_padding, "output_padding"),)
        self.dilation = (_single(dilation, "dilation"),)
        self.groups = groups
        self.padding_mode = padding_mode
        dtype = _dtype(dtype) or get_default_dtype()
        self.weight = Parameter(np.empty((in_channels, out_channels // groups) +
                                         self.kernel_size, dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    reset_parameters = Conv1d.reset_parameters        # fan_in = out/groups * k, as torch

    def forward(self, input, output_size=None):
        opad = self.output_padding[0]
        if output_size is not None:
            want = int(list(output_size)[-1])
            n = input.shape[-1]
            smallest = ((n - 1) * self.stride[0] - 2 * self.padding[0]
                        + self.dilation[0] * (self.kernel_size[0] - 1) + 1)
            if not smallest <= want < smallest + self.stride[0]:
                raise ValueError(f"ConvTranspose1d: requested an output size of {want}, but "
                                 f"valid sizes range from {smallest} to "
                                 f"{smallest + self.stride[0] - 1}")
            opad = want - smallest
        return conv_transpose1d(input, self.weight, self.bias, self.stride[0], self.padding[0],
                                opad, self.groups, self.dilation[0])

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, " \
            f"stride={self.stride}"
        if self.padding != (0,):
            s += f", padding={self.padding}"
        if self.output_padding != (0,):
            s += f", output_padding={self.output_padding}"
        if self.bias is None:
            s += ", bias=False"
        return s


class MaxPool1d(Module):
    """Max over each kernel_size window of (N, C, L), as torch.nn.MaxPool1d."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input):
        return max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                          self.ceil_mode, self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool1d(Module):
    """Mean over each kernel_size window of (N, C, L), as torch.nn.AvgPool1d."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input):
        return avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool1d(Module):
    """Average pooling of (N, C, L) to a fixed length, as torch.nn.AdaptiveAvgPool1d."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return adaptive_avg_pool1d(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
