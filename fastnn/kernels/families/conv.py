"""2-D convolutions, NCHW, with PyTorch's F.conv2d / F.conv_transpose2d semantics to the letter.

C: csrc/conv.c (+ conv_impl.h): per image, im2col into a per-thread buffer, then the project's
GEMM (csrc/gemm*.c) per group; col2im for the input gradient.

The four kernels are built from three primitives of the ordinary ("conv view") convolution,
input X (N, C, H, W), weight W (Co, C/groups, kH, kW), output Y (N, Co, oH, oW):
    forward          Y  = conv(X, W)
    backward-data    dX = conv^T(dY, W)       (the adjoint of forward in X)
    backward-weight  dW = sum over N of dY (x) windows(X)
conv_transpose2d is backward-data with its input in the role of dY; its backward is forward
(for dx) and backward-weight with the roles of dY and X swapped (for dweight).

Backend calling convention (inputs validated, C-contiguous, 4-D, one dtype; every geometric
argument normalised to int pairs; padding is (top, left): the bottom/right padding is implied
by the output size, which is how 'same' pads asymmetrically for even kernels as PyTorch does):
    conv2d(x, weight, bias|None, stride, padding, dilation, groups, out_hw) -> y
    conv2d_backward(dy, x, weight, stride, padding, dilation, groups, mask) -> (dx, dw, db)
    conv_transpose2d(x, weight, bias|None, stride, padding, dilation, groups, out_hw) -> y
    conv_transpose2d_backward(dy, x, weight, stride, padding, dilation, groups, mask)
        -> (dx, dw, db)
mask = (need dx, need dweight, need dbias); a gradient not asked for comes back as None.

conv2d_backward is one kernel returning the three gradients (as aten.convolution_backward with its
output_mask), not three kernels: the C and numba paths walk the batch once, reusing each image's
column buffer for dweight and dx while it is in cache, and split the images among threads once.
"""
import numbers

import numpy as np

from ..registry import Bench, declare
from .._checks import _float_array, resolve

# ---------------------------------------------------------------- argument normalisation


def _pair(kernel, name, v, minimum):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        p = (int(v), int(v))
    elif (isinstance(v, (tuple, list)) and len(v) in (1, 2)
          and all(isinstance(e, numbers.Integral) and not isinstance(e, bool) for e in v)):
        p = (int(v[0]), int(v[-1]))
    else:
        raise TypeError(f"{kernel}: {name} must be an int or a pair of ints, got {v!r}")
    if min(p) < minimum:
        raise ValueError(f"{kernel}: {name} must be >= {minimum}, got {v!r}")
    return p


def _groups(kernel, groups):
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool):
        raise TypeError(f"{kernel}: groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"{kernel}: groups must be a positive int, got {groups}")
    return int(groups)


def _mask(kernel, output_mask):
    try:
        m = tuple(bool(b) for b in output_mask)
    except TypeError:
        raise TypeError(f"{kernel}: output_mask must be three bools (dx, dweight, dbias), "
                        f"got {output_mask!r}") from None
    if len(m) != 3:
        raise ValueError(f"{kernel}: output_mask must be three bools (dx, dweight, dbias), "
                         f"got {output_mask!r}")
    return m


def _inputs(kernel, x, weight, bias=None):
    """x as a 4-D float array (a 3-D unbatched (C, H, W) input gets a batch axis, as PyTorch's);
    weight 4-D of the same dtype; bias 1-D or None. Returns (x, weight, bias, unbatched)."""
    x = _float_array(kernel, "input", x)
    weight = _float_array(kernel, "weight", weight, x.dtype)
    if weight.ndim != 4:
        raise ValueError(f"{kernel}: weight must be 4-D (out, in/groups, kH, kW), got shape "
                         f"{weight.shape}")
    unbatched = x.ndim == 3
    if x.ndim not in (3, 4):
        raise ValueError(f"{kernel}: input must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape "
                         f"{x.shape}")
    if unbatched:
        x = x[None]
    if bias is not None:
        bias = _float_array(kernel, "bias", bias, x.dtype)
        if bias.ndim != 1:
            raise ValueError(f"{kernel}: bias must be 1-D, got shape {bias.shape}")
    return x, weight, bias, unbatched


_GEOMETRY = {}   # cache: (kernel, shapes, arguments) -> normalised geometry (a few us a call)


def _plain(v):
    """An int, a str or a pair of ints: safe as a cache key (bools and floats compare equal to
    ints, so they are never cached and always go through the checks)."""
    t = type(v)
    return t is int or t is str or (t is tuple and len(v) == 2 and type(v[0]) is int
                                    and type(v[1]) is int)


def _cached(fn):
    def wrapper(kernel, x_shape, w_shape, *params):
        for v in params:
            if not _plain(v):
                return fn(kernel, x_shape, w_shape, *params)
        key = (kernel, x_shape, w_shape) + params
        try:
            return _GEOMETRY[key]
        except KeyError:
            pass
        result = fn(kernel, x_shape, w_shape, *params)   # raises on bad arguments: not cached
        if len(_GEOMETRY) > 4096:
            _GEOMETRY.clear()
        _GEOMETRY[key] = result
        return result
    return wrapper


@_cached
def _conv_geometry(kernel, x_shape, w_shape, stride, padding, dilation, groups):
    """Checks and normalises conv2d's arguments; returns (stride, (top, left) padding, dilation,
    groups, (oH, oW))."""
    n, c, h, w = x_shape
    co, cig, kh, kw = w_shape
    stride = _pair(kernel, "stride", stride, 1)
    dilation = _pair(kernel, "dilation", dilation, 1)
    groups = _groups(kernel, groups)
    if c % groups:
        raise ValueError(f"{kernel}: input channels ({c}) are not divisible by groups ({groups})")
    if co % groups:
        raise ValueError(f"{kernel}: output channels ({co}, weight.shape[0]) are not divisible "
                         f"by groups ({groups})")
    if cig * groups != c:
        raise ValueError(f"{kernel}: weight {tuple(w_shape)} expects {cig * groups} input channels "
                         f"(weight.shape[1] * groups), but the input has {c}")
    if isinstance(padding, str):
        if padding == "valid":
            pad, total = (0, 0), (0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{kernel}: padding='same' is not supported for strided "
                                 f"convolutions (stride {stride})")
            total = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
            pad = (total[0] // 2, total[1] // 2)     # the extra row/column goes bottom/right
        else:
            raise ValueError(f"{kernel}: padding must be 'valid', 'same', an int or a pair of "
                             f"ints, got {padding!r}")
    else:
        pad = _pair(kernel, "padding", padding, 0)
        total = (2 * pad[0], 2 * pad[1])
    oh = (h + total[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + total[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"{kernel}: output size is too small: input {h}x{w} with padding "
                         f"{padding!r}, kernel {kh}x{kw}, dilation {dilation}, stride {stride} "
                         f"gives {oh}x{ow}")
    return stride, pad, dilation, groups, (oh, ow)


@_cached
def _transpose_geometry(kernel, x_shape, w_shape, stride, padding, output_padding, groups,
                        dilation):
    n, c, h, w = x_shape
    ci, cog, kh, kw = w_shape
    stride = _pair(kernel, "stride", stride, 1)
    dilation = _pair(kernel, "dilation", dilation, 1)
    if isinstance(padding, str):
        raise ValueError(f"{kernel}: padding must be an int or a pair of ints (PyTorch's "
                         f"conv_transpose2d takes no string padding), got {padding!r}")
    pad = _pair(kernel, "padding", padding, 0)
    opad = _pair(kernel, "output_padding", output_padding, 0)
    groups = _groups(kernel, groups)
    if c % groups:
        raise ValueError(f"{kernel}: input channels ({c}) are not divisible by groups ({groups})")
    if ci != c:
        raise ValueError(f"{kernel}: weight {tuple(w_shape)} expects {ci} input channels "
                         f"(weight.shape[0]), but the input has {c}")
    for i in range(2):
        if opad[i] >= max(stride[i], dilation[i]):
            raise ValueError(f"{kernel}: output_padding {opad} must be smaller than either "
                             f"stride {stride} or dilation {dilation}")
    oh = (h - 1) * stride[0] - 2 * pad[0] + dilation[0] * (kh - 1) + opad[0] + 1
    ow = (w - 1) * stride[1] - 2 * pad[1] + dilation[1] * (kw - 1) + opad[1] + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"{kernel}: output size is too small: input {h}x{w}, stride {stride}, "
                         f"padding {pad}, dilation {dilation}, kernel {kh}x{kw}, output_padding "
                         f"{opad} gives {oh}x{ow}")
    return stride, pad, dilation, groups, (oh, ow)


def _check_bias(kernel, bias, channels):
    if bias is not None and bias.shape[0] != channels:
        raise ValueError(f"{kernel}: bias has {bias.shape[0]} values, expected one per output "
                         f"channel ({channels})")


def _empty_result(shape, dtype, bias):
    y = np.zeros(shape, dtype)
    if bias is not None:
        y += bias[:, None, None]
    return y


def _grad_inputs(kernel, dy, x, weight, out_shape, unbatched):
    dy = _float_array(kernel, "grad_output", dy, x.dtype)
    if unbatched and dy.ndim == 3:
        dy = dy[None]
    if dy.shape != out_shape:
        raise ValueError(f"{kernel}: grad_output has shape {dy.shape}, expected the forward's "
                         f"output shape {out_shape}")
    return dy


def _unbatch(results, unbatched):
    if not unbatched:
        return results
    if isinstance(results, tuple):
        return tuple(r[0] if r is not None and i == 0 else r for i, r in enumerate(results))
    return results[0]


# ---------------------------------------------------------------- conformance inputs
def _normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# (x shape, weight shape, kwargs): 1x1 images, kernels larger than the unpadded input, strides
# larger than the kernel, odd sizes, groups, depthwise, dilation, 'same' with an even kernel.
_CONV_CASES = (
    ((1, 1, 1, 1), (1, 1, 1, 1), dict()),
    ((2, 3, 5, 7), (4, 3, 3, 3), dict(padding=1)),
    ((1, 2, 3, 2), (3, 2, 5, 4), dict(padding=(2, 3))),
    ((2, 4, 7, 6), (4, 2, 2, 3), dict(stride=(3, 4), dilation=(1, 2), groups=2)),
    ((1, 3, 6, 5), (6, 1, 3, 3), dict(padding="same", dilation=2, groups=3)),
    ((1, 2, 5, 6), (2, 2, 4, 2), dict(padding="same")),
    ((2, 2, 9, 8), (3, 2, 3, 2), dict(padding="valid", stride=2, dilation=(2, 1))),
    ((2, 2, 1, 1), (3, 2, 3, 3), dict(padding=1, stride=2)),
    ((1, 5, 4, 3), (5, 1, 1, 1), dict(groups=5)),
    ((2, 3, 4, 4), (2, 3, 1, 1), dict()),
)

_TRANSPOSE_CASES = (
    ((1, 1, 1, 1), (1, 1, 1, 1), dict()),
    ((2, 3, 4, 5), (3, 2, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 3, 3), (4, 3, 2, 3), dict(stride=(1, 2), dilation=(2, 1), output_padding=(1, 0),
                                      groups=2)),
    ((2, 2, 5, 4), (2, 3, 3, 3), dict(padding=2)),
    ((1, 2, 3, 3), (2, 2, 2, 2), dict(stride=3)),
    ((1, 3, 2, 3), (3, 1, 3, 3), dict(groups=3, stride=2, padding=(0, 1))),
)


def conv2d_examples(rng, dtype):
    out = []
    for i, (xs, ws, kw) in enumerate(_CONV_CASES):
        bias = _normal(rng, ws[0], dtype) if i % 3 != 2 else None
        out.append(((_normal(rng, xs, dtype), _normal(rng, ws, dtype), bias), dict(kw)))
    return out


def conv_transpose2d_examples(rng, dtype):
    out = []
    for i, (xs, ws, kw) in enumerate(_TRANSPOSE_CASES):
        bias = _normal(rng, ws[1] * kw.get("groups", 1), dtype) if i % 3 != 2 else None
        out.append(((_normal(rng, xs, dtype), _normal(rng, ws, dtype), bias), dict(kw)))
    return out


_MASKS = ((True, True, True), (True, False, False), (False, True, True), (False, False, True))


def _backward_examples(forward_examples, forward):
    def examples(rng, dtype):
        out = []
        for i, ((x, w, b), kw) in enumerate(forward_examples(rng, dtype)):
            y = forward(x, w, b, **kw, backend="numpy")
            out.append(((_normal(rng, y.shape, dtype), x, w),
                        dict(kw, output_mask=_MASKS[i % len(_MASKS)])))
        return out
    return examples


# ---------------------------------------------------------------- the kernels
@declare(family="conv", signature="conv2d(x (N, C, H, W), weight (Co, C/g, kH, kW), bias (Co,)|None, stride (2,), padding (top, left), dilation (2,), groups, out_hw (2,)) -> y (N, Co, oH, oW)", examples=conv2d_examples, bench=Bench("conv2d"))
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, backend=None):
    """2-D convolution (cross-correlation), NCHW: PyTorch's F.conv2d.

    input (N, C, H, W) or unbatched (C, H, W); weight (C_out, C/groups, kH, kW); bias (C_out,)
    or None; stride, padding, dilation an int or a pair; padding also 'valid' or 'same' (stride 1
    only; an even kernel pads the extra row/column at the bottom/right, as PyTorch)."""
    be = resolve(backend)
    x, weight, bias, unbatched = _inputs("conv2d", input, weight, bias)
    s, p, d, g, out_hw = _conv_geometry("conv2d", x.shape, weight.shape, stride, padding,
                                        dilation, groups)
    _check_bias("conv2d", bias, weight.shape[0])
    shape = (x.shape[0], weight.shape[0]) + out_hw
    if x.size == 0 or weight.size == 0:
        y = _empty_result(shape, x.dtype, bias)
    else:
        y = be.conv2d(x, weight, bias, s, p, d, g, out_hw)
    return _unbatch(y, unbatched)


@declare(family="conv", signature="conv2d_backward(dy (N, Co, oH, oW), x (N, C, H, W), weight, stride, padding (top, left), dilation, groups, mask (3 bools)) -> (dx|None, dweight|None, dbias|None)", examples=_backward_examples(conv2d_examples, conv2d))
def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1, *,
                    output_mask=(True, True, True), backend=None):
    """Gradients of conv2d: (grad_input, grad_weight, grad_bias), each None unless asked for by
    output_mask (as aten.convolution_backward). Arguments as conv2d's."""
    be = resolve(backend)
    kernel = "conv2d_backward"
    x, weight, _, unbatched = _inputs(kernel, input, weight)
    s, p, d, g, out_hw = _conv_geometry(kernel, x.shape, weight.shape, stride, padding,
                                        dilation, groups)
    mask = _mask(kernel, output_mask)
    dy = _grad_inputs(kernel, grad_output, x, weight, (x.shape[0], weight.shape[0]) + out_hw,
                      unbatched)
    if x.size == 0 or weight.size == 0:
        res = (np.zeros_like(x) if mask[0] else None, np.zeros_like(weight) if mask[1] else None,
               dy.sum((0, 2, 3)) if mask[2] else None)
    else:
        res = be.conv2d_backward(dy, x, weight, s, p, d, g, mask)
    return _unbatch(tuple(res), unbatched)


@declare(family="conv", signature="conv_transpose2d(x (N, C, H, W), weight (C, Co/g, kH, kW), bias (Co,)|None, stride, padding (top, left), dilation, groups, out_hw (2,)) -> y (N, Co, oH, oW)", examples=conv_transpose2d_examples)
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, backend=None):
    """2-D transposed convolution, NCHW: PyTorch's F.conv_transpose2d (same argument order).

    input (N, C, H, W) or (C, H, W); weight (C, C_out/groups, kH, kW); output size
    (H - 1)*stride - 2*padding + dilation*(kH - 1) + output_padding + 1 (and the same for W)."""
    be = resolve(backend)
    kernel = "conv_transpose2d"
    x, weight, bias, unbatched = _inputs(kernel, input, weight, bias)
    s, p, d, g, out_hw = _transpose_geometry(kernel, x.shape, weight.shape, stride, padding,
                                             output_padding, groups, dilation)
    _check_bias(kernel, bias, weight.shape[1] * g)
    shape = (x.shape[0], weight.shape[1] * g) + out_hw
    if x.size == 0 or weight.size == 0:
        y = _empty_result(shape, x.dtype, bias)
    else:
        y = be.conv_transpose2d(x, weight, bias, s, p, d, g, out_hw)
    return _unbatch(y, unbatched)


@declare(family="conv", signature="conv_transpose2d_backward(dy (N, Co, oH, oW), x (N, C, H, W), weight (C, Co/g, kH, kW), stride, padding (top, left), dilation, groups, mask (3 bools)) -> (dx|None, dweight|None, dbias|None)", examples=_backward_examples(conv_transpose2d_examples, conv_transpose2d))
def conv_transpose2d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1, *, output_mask=(True, True, True),
                              backend=None):
    """Gradients of conv_transpose2d: (grad_input, grad_weight, grad_bias), each None unless
    asked for by output_mask. Arguments as conv_transpose2d's."""
    be = resolve(backend)
    kernel = "conv_transpose2d_backward"
    x, weight, _, unbatched = _inputs(kernel, input, weight)
    s, p, d, g, out_hw = _transpose_geometry(kernel, x.shape, weight.shape, stride, padding,
                                             output_padding, groups, dilation)
    mask = _mask(kernel, output_mask)
    dy = _grad_inputs(kernel, grad_output, x, weight,
                      (x.shape[0], weight.shape[1] * g) + out_hw, unbatched)
    if x.size == 0 or weight.size == 0:
        res = (np.zeros_like(x) if mask[0] else None, np.zeros_like(weight) if mask[1] else None,
               dy.sum((0, 2, 3)) if mask[2] else None)
    else:
        res = be.conv_transpose2d_backward(dy, x, weight, s, p, d, g, mask)
    return _unbatch(tuple(res), unbatched)
