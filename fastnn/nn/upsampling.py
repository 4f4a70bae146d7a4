"""Resizing: F.interpolate with nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d;
and F.pixel_shuffle / pixel_unshuffle with their modules, all as PyTorch's.

Every mode that interpolate supports here is separable: along each spatial axis the output is a
fixed (out, in) matrix times the input (one 1 per row for 'nearest', two weights for the linear
modes, a row average for 'area'). So resizing is one matmul per axis on Tensors, and the gradient
is the transposed matrices, by autograd. The matrices follow ATen's index arithmetic (UpSample.h):
    nearest:       src = min(floor(dst * scale), in - 1), in float32 as ATen
    nearest-exact: src = min(floor((dst + 0.5) * scale), in - 1)
    linear:        src = max(scale * (dst + 0.5) - 0.5, 0) (align_corners=False), or
                   src = dst * (in - 1) / (out - 1) (align_corners=True); weights 1 - frac, frac
    area:          adaptive average pooling, rows [floor(i in / out), ceil((i + 1) in / out))
where scale = 1 / scale_factor when scale_factor is given (and not recompute_scale_factor), else
in / out.
"""
import math

import numpy as np

from ..tensor import Tensor
from .modules import Module

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle",
           "PixelUnshuffle"]
FUNCTIONS = ["interpolate", "upsample", "pixel_shuffle", "pixel_unshuffle"]

_LINEAR = {"linear": 3, "bilinear": 4, "trilinear": 5}
_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area", "bicubic")


def _resize_matrix(mode, n_in, n_out, scale_factor, align_corners, dtype):
    """The (n_out, n_in) matrix that resizes one axis."""
    m = np.zeros((n_out, n_in), dtype)
    dst = np.arange(n_out)
    if mode in ("nearest", "nearest-exact"):
        scale = np.float32(1.0 / scale_factor if scale_factor else n_in / n_out)
        pos = dst.astype(np.float32) + np.float32(0.5 if mode == "nearest-exact" else 0.0)
        src = np.minimum(np.floor(pos * scale).astype(np.int64), n_in - 1)
        m[dst, src] = 1
    elif mode == "area":
        for i in range(n_out):
            lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
            m[i, lo:hi] = 1.0 / (hi - lo)
    else:                                   # linear, in the input's precision as ATen
        dst_f = dst.astype(dtype)
        if align_corners:
            scale = dtype.type((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
            src = dst_f * scale
        else:
            scale = dtype.type(1.0 / scale_factor if scale_factor else n_in / n_out)
            src = np.maximum(scale * (dst_f + dtype.type(0.5)) - dtype.type(0.5), 0)
        i0 = np.minimum(src.astype(np.int64), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        frac = (src - i0).astype(dtype)
        np.add.at(m, (dst, i0), 1 - frac)
        np.add.at(m, (dst, i1), frac)
    return m


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize input (N, C, *spatial) with 1 to 3 spatial axes to `size`, or by `scale_factor`,
    as torch.nn.functional.interpolate. Modes: nearest, nearest-exact, linear (3-D input),
    bilinear (4-D), trilinear (5-D), area."""
    if not isinstance(input, Tensor):
        raise TypeError(f"interpolate: input must be a Tensor, got {type(input).__name__}")
    if mode not in _MODES:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported (one of "
                                  f"{', '.join(m for m in _MODES if m != 'bicubic')})")
    if mode == "bicubic" or antialias:
        raise NotImplementedError("interpolate: bicubic and antialias are not supported")
    x = input._data
    if x.dtype.kind != "f":
        raise TypeError(f"interpolate: input must be floating point, got {x.dtype}")
    dims = x.ndim - 2
    if not 1 <= dims <= 3:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported "
                                  f"(got {x.ndim}D) for the modes: nearest | linear | bilinear "
                                  f"| bicubic | trilinear | area | nearest-exact (got {mode})")
    if mode in _LINEAR and x.ndim != _LINEAR[mode]:
        raise NotImplementedError(f"Got {x.ndim}D input, but {mode} mode needs "
                                  f"{_LINEAR[mode]}D input")
    if align_corners is not None and mode not in _LINEAR:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    align_corners = bool(align_corners)
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        sizes = [size] * dims if isinstance(size, (int, np.integer)) else list(size)
        if len(sizes) != dims:
            raise ValueError(f"Input and output must have the same number of spatial "
                             f"dimensions, but got input with spatial dimensions of "
                             f"{list(x.shape[2:])} and output size of {list(sizes)}.")
        sizes = [int(s) for s in sizes]
        factors = [None] * dims
    else:
        factors = ([float(scale_factor)] * dims if isinstance(scale_factor, (int, float))
                   else [float(f) for f in scale_factor])
        if len(factors) != dims:
            raise ValueError(f"Input and scale_factor must have the same number of spatial "
                             f"dimensions, but got input with spatial dimensions of "
                             f"{list(x.shape[2:])} and scale_factor of shape {factors}.")
        sizes = [int(math.floor(n * f)) for n, f in zip(x.shape[2:], factors)]
        if recompute_scale_factor or mode == "area":
            factors = [None] * dims
    if any(s <= 0 for s in sizes):
        raise ValueError(f"interpolate: the output size must be positive, got {sizes}")
    if mode == "area" or align_corners:
        factors = [None] * dims
    y = input
    for axis, (n_in, n_out, f) in enumerate(zip(x.shape[2:], sizes, factors), start=2):
        if n_in == n_out and (f is None or mode == "nearest"):
            continue                                        # the identity, as ATen's
        m = Tensor(_resize_matrix(mode, n_in, n_out, f, align_corners, x.dtype))
        if axis == x.ndim - 1:
            y = y.matmul(m.t())
        else:
            y = y.movedim(axis, -1).matmul(m.t()).movedim(-1, axis)
    return y


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated in torch in favour of interpolate, which it calls."""
    return interpolate(input, size, scale_factor, mode, align_corners)


class Upsample(Module):
    """interpolate as a module, as torch.nn.Upsample."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        self.scale_factor = float(scale_factor) if isinstance(scale_factor, (int, float)) \
            else (tuple(float(f) for f in scale_factor) if scale_factor else None)
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        return interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                           recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self):
        what = (f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None
                else f"size={self.size!r}")
        return f"{what}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Nearest-neighbour upsampling of (N, C, H, W), as torch.nn.UpsamplingNearest2d."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Bilinear upsampling with align_corners=True, as torch.nn.UpsamplingBilinear2d."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


# ---------------------------------------------------------------- pixel shuffle
def pixel_shuffle(input, upscale_factor):
    """(*, C r^2, H, W) -> (*, C, H r, W r), as torch.nn.functional.pixel_shuffle."""
    r = int(upscale_factor)
    if input.ndim < 3:
        raise RuntimeError(f"pixel_shuffle expects input to have at least 3 dimensions, but "
                           f"got input with {input.ndim} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {r}")
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be "
                           f"divisible by the square of upscale_factor, but input.size(-3)={c}"
                           f" is not divisible by {r * r}")
    k = len(lead)
    y = input.reshape(*lead, c // (r * r), r, r, h, w)
    y = y.permute(*range(k), k, k + 3, k + 1, k + 4, k + 2)
    return y.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of pixel_shuffle."""
    r = int(downscale_factor)
    if input.ndim < 3:
        raise RuntimeError(f"pixel_unshuffle expects input to have at least 3 dimensions, but "
                           f"got input with {input.ndim} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"pixel_unshuffle expects a positive downscale_factor, but got {r}")
    *lead, c, h, w = input.shape
    if h % r or w % r:
        raise RuntimeError(f"pixel_unshuffle expects height and width to be divisible by "
                           f"downscale_factor, but got height={h}, width={w}, factor={r}")
    k = len(lead)
    y = input.reshape(*lead, c, h // r, r, w // r, r)
    y = y.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)
    return y.reshape(*lead, c * r * r, h // r, w // r)


class PixelShuffle(Module):
    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input):
        return pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self):
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    def __init__(self, downscale_factor):
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, input):
        return pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self):
        return f"downscale_factor={self.downscale_factor}"
