"""3-D layers (volumes (N, C, D, H, W)) with PyTorch's names, arguments, initialization and
state-dict keys: Conv3d, ConvTranspose3d, MaxPool3d, AvgPool3d, AdaptiveAvgPool3d,
AdaptiveMaxPool3d, BatchNorm3d, InstanceNorm3d, Dropout3d, plus AlphaDropout and
ChannelShuffle, and their functional forms.

The kernels are numpy reference code (no compiled backend): a convolution is a sum over the
kernel's kD*kH*kW offsets of one strided slice times one weight matrix each, and its backward
runs the same loop the other way; pooling takes the max or mean over the same slices."""
import math

import numpy as np

from ..tensor import Tensor, _node, _f, _device, _dtype, get_default_dtype, stack
from . import functional as F
from . import init
from .modules import Module, Parameter
from .normalization import _BatchNorm
from .norms import _InstanceNorm

__all__ = ["Conv3d", "ConvTranspose3d", "MaxPool3d", "AvgPool3d", "AdaptiveAvgPool3d",
           "AdaptiveMaxPool3d", "BatchNorm3d", "InstanceNorm3d", "Dropout3d", "AlphaDropout",
           "FeatureAlphaDropout", "ChannelShuffle"]
FUNCTIONS = ["conv3d", "conv_transpose3d", "max_pool3d", "avg_pool3d", "adaptive_avg_pool3d",
             "adaptive_max_pool3d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
             "channel_shuffle"]


def _triple(v, name):
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return (int(v),) * 3
    t = tuple(v)
    if len(t) == 1:
        t = t * 3
    if len(t) != 3:
        raise ValueError(f"{name} must be an int or a triple of ints, got {v!r}")
    return tuple(int(e) for e in t)


def _batched(input, name):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(input).__name__}")
    if input.ndim == 4:
        return input.unsqueeze(0), True
    if input.ndim != 5:
        raise ValueError(f"{name}: expected 4-D (C, D, H, W) or 5-D (N, C, D, H, W) input, got "
                         f"shape {tuple(input.shape)}")
    return input, False


def _window_slices(offsets, dilation, stride, out_size):
    """For each kernel offset (i, j, k): the slices of the padded input it reads."""
    res = []
    for off in offsets:
        res.append((slice(None), slice(None)) + tuple(
            slice(o * d, o * d + s * (n - 1) + 1, s)
            for o, d, s, n in zip(off, dilation, stride, out_size)))
    return res


def _offsets(kernel):
    return list(np.ndindex(*kernel))


# ---------------------------------------------------------------- convolution
def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D cross-correlation, as torch.nn.functional.conv3d: input (N, C_in, D, H, W), weight
    (C_out, C_in/groups, kD, kH, kW)."""
    x5, unbatched = _batched(input, "conv3d")
    stride, dilation = _triple(stride, "stride"), _triple(dilation, "dilation")
    a, w = _f(x5), _f(weight)
    kernel = w.shape[2:]
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0, 0)
        elif padding == "same":
            total = [d * (k - 1) for d, k in zip(dilation, kernel)]
            lo = [t // 2 for t in total]
            pads = [(lo_, t - lo_) for lo_, t in zip(lo, total)]
            padding = None
        else:
            raise ValueError(f"conv3d: invalid padding string {padding!r}")
    if padding is not None:
        padding = _triple(padding, "padding")
        pads = [(p, p) for p in padding]
    n, c = a.shape[:2]
    o = w.shape[0]
    if c != w.shape[1] * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {tuple(w.shape)}, expected "
                           f"input{tuple(a.shape)} to have {w.shape[1] * groups} channels, but "
                           f"got {c} channels instead")
    xp = np.pad(a, [(0, 0), (0, 0)] + pads)
    out_size = [(xp.shape[2 + d] - dilation[d] * (kernel[d] - 1) - 1) // stride[d] + 1
                for d in range(3)]
    if min(out_size) <= 0:
        raise RuntimeError(f"conv3d: input {tuple(a.shape)} (padded {tuple(xp.shape)}) is "
                           f"smaller than the dilated kernel {tuple(kernel)}")
    g = groups
    wg = w.reshape(g, o // g, c // g, *kernel)
    offsets = _offsets(kernel)
    slices = _window_slices(offsets, dilation, stride, out_size)
    out = np.zeros((n, g, o // g, *out_size), np.result_type(a, w))
    for off, sl in zip(offsets, slices):
        patch = xp[sl].reshape(n, g, c // g, *out_size)
        out += np.einsum("ngcdhw,goc->ngodhw", patch, wg[(slice(None),) * 3 + off],
                         optimize=True)
    out = out.reshape(n, o, *out_size)

    def backward(gout):
        go = gout.reshape(n, g, o // g, *out_size)
        gxp = np.zeros_like(xp)
        gw = np.zeros_like(wg)
        for off, sl in zip(offsets, slices):
            patch = xp[sl].reshape(n, g, c // g, *out_size)
            gw[(slice(None),) * 3 + off] = np.einsum("ngodhw,ngcdhw->goc", go, patch,
                                                     optimize=True)
            gxp[sl] += np.einsum("ngodhw,goc->ngcdhw", go, wg[(slice(None),) * 3 + off],
                                 optimize=True).reshape(n, c, *out_size)
        crop = (slice(None), slice(None)) + tuple(slice(lo, gxp.shape[2 + d] - hi)
                                                  for d, (lo, hi) in enumerate(pads))
        return gxp[crop], gw.reshape(w.shape)

    y = _node(out.astype(a.dtype, copy=False), (x5, weight), backward, saved=(x5, weight))
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1, 1)
    return y.squeeze(0) if unbatched else y


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """3-D transposed convolution (conv3d's gradient with respect to its input), as
    torch.nn.functional.conv_transpose3d: weight (C_in, C_out/groups, kD, kH, kW)."""
    x5, unbatched = _batched(input, "conv_transpose3d")
    stride, dilation = _triple(stride, "stride"), _triple(dilation, "dilation")
    padding, opad = _triple(padding, "padding"), _triple(output_padding, "output_padding")
    a, w = _f(x5), _f(weight)
    n, c = a.shape[:2]
    kernel = w.shape[2:]
    g = groups
    if c != w.shape[0]:
        raise RuntimeError(f"conv_transpose3d: expected input with {w.shape[0]} channels, got "
                           f"{c}")
    o = w.shape[1] * g
    in_size = a.shape[2:]
    full = [(in_size[d] - 1) * stride[d] + dilation[d] * (kernel[d] - 1) + 1 + opad[d]
            for d in range(3)]
    wg = w.reshape(g, c // g, o // g, *kernel)
    offsets = _offsets(kernel)
    slices = _window_slices(offsets, dilation, stride, in_size)
    xg = a.reshape(n, g, c // g, *in_size)
    buf = np.zeros((n, o, *full), np.result_type(a, w))
    for off, sl in zip(offsets, slices):
        buf[sl] += np.einsum("ngcdhw,gco->ngodhw", xg, wg[(slice(None),) * 3 + off],
                             optimize=True).reshape(n, o, *in_size)
    crop = (slice(None), slice(None)) + tuple(slice(p, f - p) for p, f in zip(padding, full))
    out = buf[crop]

    def backward(gout):
        gbuf = np.zeros_like(buf)
        gbuf[crop] = gout
        gx = np.zeros_like(xg)
        gw = np.zeros_like(wg)
        for off, sl in zip(offsets, slices):
            gs = gbuf[sl].reshape(n, g, o // g, *in_size)
            gx += np.einsum("ngodhw,gco->ngcdhw", gs, wg[(slice(None),) * 3 + off],
                            optimize=True)
            gw[(slice(None),) * 3 + off] = np.einsum("ngcdhw,ngodhw->gco", xg, gs,
                                                     optimize=True)
        return gx.reshape(a.shape), gw.reshape(w.shape)

    y = _node(np.ascontiguousarray(out).astype(a.dtype, copy=False), (x5, weight), backward,
              saved=(x5, weight))
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1, 1)
    return y.squeeze(0) if unbatched else y


# ---------------------------------------------------------------- pooling
def _pool_geometry(shape, kernel, stride, padding, dilation, ceil_mode):
    out, extra = [], []
    for L, k, s, p, d in zip(shape, kernel, stride, padding, dilation):
        span = L + 2 * p - d * (k - 1) - 1
        n = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (n - 1) * s >= L + p:
            n -= 1
        out.append(n)
        # right-side padding beyond p that the last window reaches (ceil mode)
        extra.append(max(0, (n - 1) * s + d * (k - 1) + 1 - (L + 2 * p)))
    return out, extra


def _pool_args(name, kernel_size, stride, padding, dilation=1):
    kernel = _triple(kernel_size, "kernel_size")
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) \
        else _triple(stride, "stride")
    padding, dilation = _triple(padding, "padding"), _triple(dilation, "dilation")
    for k, p in zip(kernel, padding):
        if p > k // 2:
            raise RuntimeError(f"{name}: pad should be at most half of effective kernel size, "
                               f"but got pad={p}, kernel_size={k}")
    return kernel, stride, padding, dilation


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    x5, unbatched = _batched(input, "max_pool3d")
    kernel, stride, padding, dilation = _pool_args("max_pool3d", kernel_size, stride, padding,
                                                   dilation)
    a = x5._data
    shape = a.shape[2:]
    out_size, extra = _pool_geometry(shape, kernel, stride, padding, dilation, ceil_mode)
    pads = [(0, 0), (0, 0)] + [(p, p + e) for p, e in zip(padding, extra)]
    fill = -np.inf if a.dtype.kind == "f" else np.iinfo(a.dtype).min
    xp = np.pad(a, pads, constant_values=fill)
    offsets = _offsets(kernel)
    slices = _window_slices(offsets, dilation, stride, out_size)
    windows = np.stack([xp[sl] for sl in slices])          # (K, N, C, Do, Ho, Wo)
    arg = windows.argmax(0)
    out = np.take_along_axis(windows, arg[None], 0)[0]

    def backward(g):
        gxp = np.zeros(xp.shape, g.dtype)
        for k, sl in enumerate(slices):
            gxp[sl] += np.where(arg == k, g, 0)
        crop = (slice(None), slice(None)) + tuple(slice(p, p + L) for p, L in
                                                  zip(padding, shape))
        return (gxp[crop],)

    y = _node(out, (x5,), backward)
    if return_indices:
        off = np.array(offsets)[arg]                         # (N, C, Do, Ho, Wo, 3)
        grids = np.meshgrid(*[np.arange(n) for n in out_size], indexing="ij")
        pos = [grids[d] * stride[d] + off[..., d] * dilation[d] - padding[d] for d in range(3)]
        flat = (pos[0] * shape[1] + pos[1]) * shape[2] + pos[2]
        idx = Tensor(flat.astype(np.int64))
        if unbatched:
            return y.squeeze(0), idx.squeeze(0)
        return y, idx
    return y.squeeze(0) if unbatched else y


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    x5, unbatched = _batched(input, "avg_pool3d")
    kernel, stride, padding, dilation = _pool_args("avg_pool3d", kernel_size, stride, padding)
    a = _f(x5)
    shape = a.shape[2:]
    out_size, extra = _pool_geometry(shape, kernel, stride, padding, dilation, ceil_mode)
    pads = [(0, 0), (0, 0)] + [(p, p + e) for p, e in zip(padding, extra)]
    xp = np.pad(a, pads)
    offsets = _offsets(kernel)
    slices = _window_slices(offsets, dilation, stride, out_size)
    if divisor_override:
        div = np.asarray(float(divisor_override), a.dtype)
    else:
        # how many of each window's cells count: those inside the zero-padded input
        # (count_include_pad) or inside the input itself; never ceil mode's extra cells
        if count_include_pad:
            mask = np.pad(np.ones((1, 1) + tuple(L + 2 * p for L, p in zip(shape, padding)),
                                  a.dtype), [(0, 0), (0, 0)] + [(0, e) for e in extra])
        else:
            mask = np.pad(np.ones((1, 1) + tuple(shape), a.dtype), pads)
        div = sum(mask[sl] for sl in slices)
    out = sum(xp[sl] for sl in slices) / div

    def backward(g):
        gxp = np.zeros(xp.shape, g.dtype)
        gd = g / div
        for sl in slices:
            gxp[sl] += gd
        crop = (slice(None), slice(None)) + tuple(slice(p, p + L) for p, L in
                                                  zip(padding, shape))
        return (gxp[crop],)

    y = _node(out.astype(a.dtype, copy=False), (x5,), backward)
    return y.squeeze(0) if unbatched else y


def _adaptive_bounds(L, n):
    return [(i * L // n, -(-(i + 1) * L // n)) for i in range(n)]


def _adaptive3d(input, output_size, reduce, name):
    x5, unbatched = _batched(input, name)
    size = _triple(output_size, "output_size") if not isinstance(output_size, (tuple, list)) \
        else tuple(output_size)
    shape = x5.shape[2:]
    size = tuple(shape[d] if size[d] is None else int(size[d]) for d in range(3))
    if tuple(size) == (1, 1, 1):
        y = reduce(x5, (2, 3, 4)).reshape(tuple(x5.shape[:2]) + (1, 1, 1))
    else:
        bd, bh, bw = (_adaptive_bounds(shape[d], size[d]) for d in range(3))
        planes = []
        for d0, d1 in bd:
            rows = []
            for h0, h1 in bh:
                cells = [reduce(x5[:, :, d0:d1, h0:h1, w0:w1], (2, 3, 4)) for w0, w1 in bw]
                rows.append(stack(cells, -1))
            planes.append(stack(rows, -2))
        y = stack(planes, -3)
    return y.squeeze(0) if unbatched else y


def adaptive_avg_pool3d(input, output_size):
    return _adaptive3d(input, output_size, lambda t, dims: t.mean(dims, keepdim=False),
                       "adaptive_avg_pool3d")


def adaptive_max_pool3d(input, output_size, return_indices=False):
    if return_indices:
        raise NotImplementedError("adaptive_max_pool3d(return_indices=True) is not supported")
    return _adaptive3d(input, output_size, lambda t, dims: t.amax(dims, keepdim=False),
                       "adaptive_max_pool3d")


# ---------------------------------------------------------------- dropout and shuffles
def dropout3d(input, p=0.5, training=True, inplace=False):
    """Zeroes whole channels (volumes), as torch.nn.functional.dropout3d."""
    if input.ndim not in (4, 5):
        raise ValueError(f"dropout3d: input must be 4-D (C, D, H, W) or 5-D (N, C, D, H, W), "
                         f"got shape {tuple(input.shape)}")
    shape = tuple(input.shape)
    x = input if input.ndim == 5 else input.unsqueeze(0)   # (C, D, H, W): one volume batch
    flat = x.reshape(tuple(x.shape[:2]) + (shape[-3] * shape[-2], shape[-1]))
    return F.dropout2d(flat, p, training).reshape(shape)


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _alpha_dropout(input, p, training, feature):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    from ..tensor import empty
    keep_shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2) if feature else \
        tuple(input.shape)
    keep = empty(keep_shape, dtype=input.dtype).bernoulli_(1 - p)
    alpha_p = -_SELU_ALPHA * _SELU_SCALE
    a = ((1 - p) * (1 + p * alpha_p ** 2)) ** -0.5
    b = -a * alpha_p * p
    return (input * keep + alpha_p * (1 - keep)) * a + b


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Dropout that keeps SELU's self-normalising mean and variance (torch's AlphaDropout)."""
    return _alpha_dropout(input, p, training, False)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    return _alpha_dropout(input, p, training, True)


def channel_shuffle(input, groups):
    n, c = input.shape[:2]
    if c % groups:
        raise RuntimeError(f"Number of channels must be divisible by groups. Got {c} channels "
                           f"and {groups} groups.")
    rest = tuple(input.shape[2:])
    return input.reshape((n, groups, c // groups) + rest).transpose(1, 2) \
        .reshape((n, c) + rest)


# ---------------------------------------------------------------- modules
class _Conv3dBase(Module):
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                 bias, padding_mode, output_padding=0, device=None, dtype=None):
        super().__init__()
        _device(device)
        name = type(self).__name__
        if groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels and out_channels must be divisible by groups")
        if padding_mode != "zeros":
            raise NotImplementedError(f"{name}: padding_mode={padding_mode!r} is not supported "
                                      f"(only 'zeros')")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _triple(kernel_size, "kernel_size")
        self.stride = _triple(stride, "stride")
        self.padding = padding if isinstance(padding, str) else _triple(padding, "padding")
        self.dilation = _triple(dilation, "dilation")
        self.output_padding = _triple(output_padding, "output_padding")
        self.transposed = self._transposed
        self.groups, self.padding_mode = groups, padding_mode
        dtype = _dtype(dtype) or get_default_dtype()
        shape = ((in_channels, out_channels // groups) if self._transposed else
                 (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        # torch's _ConvNd.reset_parameters: the same draws in the same order
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, " \
            f"stride={self.stride}"
        if self.padding != (0, 0, 0):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else \
                f", padding={self.padding}"
        if self.dilation != (1, 1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv3d(_Conv3dBase):
    """3-D convolution over (N, C_in, D, H, W), as torch.nn.Conv3d."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, 0, device, dtype)

    def forward(self, input):
        return conv3d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)


class ConvTranspose3d(_Conv3dBase):
    """3-D transposed convolution, as torch.nn.ConvTranspose3d."""
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, device, dtype)

    def forward(self, input, output_size=None):
        opad = self.output_padding
        if output_size is not None:
            size = list(output_size)[-3:]
            opad = tuple(int(size[d]) - ((input.shape[-3 + d] - 1) * self.stride[d]
                                         - 2 * self.padding[d] + self.dilation[d]
                                         * (self.kernel_size[d] - 1) + 1) for d in range(3))
        return conv_transpose3d(input, self.weight, self.bias, self.stride, self.padding, opad,
                                self.groups, self.dilation)


class MaxPool3d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, input):
        return max_pool3d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                          self.ceil_mode, self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool3d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        return avg_pool3d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool3d(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return adaptive_avg_pool3d(input, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool3d(AdaptiveAvgPool3d):
    def __init__(self, output_size, return_indices=False):
        super().__init__(output_size)
        self.return_indices = return_indices

    def forward(self, input):
        return adaptive_max_pool3d(input, self.output_size, self.return_indices)


class BatchNorm3d(_BatchNorm):
    """Batch norm over (N, C, D, H, W) inputs, per channel, as torch.nn.BatchNorm3d."""
    _dims = (5,)


class InstanceNorm3d(_InstanceNorm):
    """Instance norm over (N, C, D, H, W) or (C, D, H, W), as torch.nn.InstanceNorm3d."""
    _dims = (5, 4)


class Dropout3d(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        return dropout3d(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class AlphaDropout(Dropout3d):
    def forward(self, input):
        return alpha_dropout(input, self.p, self.training)


class FeatureAlphaDropout(Dropout3d):
    def forward(self, input):
        return feature_alpha_dropout(input, self.p, self.training)


class ChannelShuffle(Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, input):
        return channel_shuffle(input, self.groups)

    def extra_repr(self):
        return f"groups={self.groups}"

