"""2-D pooling over NCHW images: max_pool2d (with PyTorch's argmax indices), avg_pool2d,
adaptive_avg_pool2d, and their backward passes.

PyTorch's semantics to the letter:
  output size   o = floor((H + 2p - d(k-1) - 1 [+ s-1 with ceil_mode]) / s) + 1, and with
                ceil_mode the last window must start inside the input or the left padding
                ((o-1) s < H + p, else o -= 1); o < 1 is an error; p <= k // 2 is required
  max ties      the first maximum in scan order (row by row) wins; NaN wins over any number and
                a later NaN over an earlier one; a window of only -inf gives its first element
  indices       flat index ih * W + iw into each (H, W) plane, int64; a window that lies wholly
                in the padding (possible with dilation) gives -inf and an index past the plane,
                which the backward ignores, as PyTorch's does
  avg divisor   divisor_override, else the window clipped to the padded input (count_include_pad)
                or to the input (not); a window wholly in the padding gives 0
  adaptive      window i covers [floor(i H / oh), ceil((i + 1) H / oh))

Inputs are (N, C, H, W) or (C, H, W); the backends see (N*C, H, W).
C: csrc/pool.c; Numba, numpy and CUDA: backends/*/pool.py.
"""
import numpy as np

from ..registry import Bench, declare
from .._checks import _float_array, _index_array, resolve


# ---------------------------------------------------------------- argument checks
def _pair(kernel, name, v, minimum):
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (int(v), int(v))
    else:
        try:
            v = tuple(int(a) if isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                      else None for a in v)
        except TypeError:
            v = (None,)
        if len(v) == 1 and v[0] is not None:
            v = v * 2
        if len(v) != 2 or None in v:
            raise TypeError(f"{kernel}: {name} must be an int or a pair of ints")
    if min(v) < minimum:
        raise ValueError(f"{kernel}: {name} must be >= {minimum}, got {v}")
    return v


def _image(kernel, name, x, dtype=None):
    x = _float_array(kernel, name, x, dtype)
    if x.ndim not in (3, 4):
        raise ValueError(f"{kernel}: {name} must be 3-D (C, H, W) or 4-D (N, C, H, W), "
                         f"got shape {x.shape}")
    if 0 in x.shape[-3:]:
        raise ValueError(f"{kernel}: {name} must have non-zero C, H and W, got shape {x.shape}")
    return x


def _planes(x):
    """(N, C, H, W) or (C, H, W) as (N*C, H, W): a view."""
    return x.reshape((-1,) + x.shape[-2:])


def pool_output_size(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling_output_shape for one dimension."""
    o = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (o - 1) * s >= size + p:
        o -= 1
    return o


def _window(kernel, x, kernel_size, stride, padding, dilation, ceil_mode):
    k = _pair(kernel, "kernel_size", kernel_size, 1)
    s = k if stride is None or (not isinstance(stride, (int, np.integer))
                                and len(stride) == 0) else _pair(kernel, "stride", stride, 1)
    p = _pair(kernel, "padding", padding, 0)
    d = _pair(kernel, "dilation", dilation, 1)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{kernel}: padding {p} is too large: it must be at most half the "
                         f"kernel size {k}")
    h, w = x.shape[-2:]
    o = tuple(pool_output_size(n, *a, bool(ceil_mode)) for n, a in zip((h, w), zip(k, s, p, d)))
    if min(o) < 1:
        raise ValueError(f"{kernel}: output size {o} is too small (input {h}x{w}, kernel {k}, "
                         f"stride {s}, padding {p}, dilation {d}): every output size must be >= 1")
    return k, s, p, d, o


def _grad_out(kernel, dy, x_shape, o):
    want = tuple(x_shape[:-2]) + tuple(o)
    if dy.shape != want:
        raise ValueError(f"{kernel}: dy has shape {dy.shape}, expected {want}")


# ---------------------------------------------------------------- max pooling
@declare(family="pool", signature="max_pool2d(x (B, H, W), kh, kw, sh, sw, ph, pw, dh, dw, oh, ow) -> (y (B, oh, ow), indices int64 (B, oh, ow))", doc="2-D max pooling; returns (y, indices) with PyTorch's argmax indices (flat, per plane).", examples=lambda rng, dtype: max_pool2d_examples(rng, dtype), bench=Bench("max_pool2d"))
def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
               backend=None):
    """2-D max pooling of x (N, C, H, W) or (C, H, W), as F.max_pool2d(..., return_indices=True).

    Returns (y, indices): y (..., oh, ow) and the int64 flat index ih * W + iw of each maximum
    within its (H, W) plane. stride defaults to kernel_size."""
    be = resolve(backend)
    x = _image("max_pool2d", "x", x)
    k, s, p, d, o = _window("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    shape = x.shape[:-2] + o
    if x.size == 0:
        return np.empty(shape, x.dtype), np.empty(shape, np.int64)
    y, idx = be.max_pool2d(_planes(x), k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], o[0], o[1])
    return y.reshape(shape), idx.reshape(shape)


@declare(family="pool", signature="max_pool2d_backward(dy (B, oh, ow), indices int64 (B, oh, ow), h, w) -> dx (B, h, w)", doc="Gradient of max_pool2d: dy scatter-added to the saved argmax indices.", examples=lambda rng, dtype: max_pool2d_backward_examples(rng, dtype))
def max_pool2d_backward(dy, indices, input_shape, *, backend=None):
    """Gradient of max_pool2d: dx of shape input_shape (x.shape, or its (H, W)) with each dy
    added at its saved index. Indices past the plane (windows wholly in the padding) add
    nothing, as in PyTorch; negative ones raise IndexError."""
    be = resolve(backend)
    dy = _float_array("max_pool2d_backward", "dy", dy)
    if dy.ndim not in (3, 4):
        raise ValueError(f"max_pool2d_backward: dy must be 3-D or 4-D, got shape {dy.shape}")
    indices = _index_array("max_pool2d_backward", "indices", indices)
    if indices.shape != dy.shape:
        raise ValueError(f"max_pool2d_backward: indices has shape {indices.shape} but dy has "
                         f"shape {dy.shape}")
    shape = tuple(int(n) for n in input_shape)
    if len(shape) == 2:
        shape = dy.shape[:-2] + shape
    if shape[:-2] != dy.shape[:-2] or len(shape) != dy.ndim or min(shape[-2:]) < 1:
        raise ValueError(f"max_pool2d_backward: input_shape {tuple(input_shape)} does not fit dy "
                         f"of shape {dy.shape}")
    if indices.size and indices.min() < 0:
        raise IndexError(f"max_pool2d_backward: indices value {int(indices.min())} is negative")
    h, w = shape[-2:]
    if dy.size == 0:
        return np.zeros(shape, dy.dtype)
    return be.max_pool2d_backward(_planes(dy), _planes(indices), h, w).reshape(shape)


# ---------------------------------------------------------------- average pooling
def _avg_args(kernel, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    k, s, p, _, o = _window(kernel, x, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is None:
        div = 0
    else:
        div = int(divisor_override)
        if div == 0:
            raise ValueError(f"{kernel}: divisor_override must be non-zero")
    return k, s, p, o, bool(count_include_pad), div


@declare(family="pool", signature="avg_pool2d(x (B, H, W), kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad, divisor) -> (B, oh, ow)", doc="2-D average pooling (count_include_pad, divisor_override as PyTorch).", examples=lambda rng, dtype: avg_pool2d_examples(rng, dtype))
def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, backend=None):
    """2-D average pooling of x (N, C, H, W) or (C, H, W), as F.avg_pool2d."""
    be = resolve(backend)
    x = _image("avg_pool2d", "x", x)
    k, s, p, o, cip, div = _avg_args("avg_pool2d", x, kernel_size, stride, padding, ceil_mode,
                                     count_include_pad, divisor_override)
    shape = x.shape[:-2] + o
    if x.size == 0:
        return np.empty(shape, x.dtype)
    return be.avg_pool2d(_planes(x), k[0], k[1], s[0], s[1], p[0], p[1], o[0], o[1], cip,
                         div).reshape(shape)


@declare(family="pool", signature="avg_pool2d_backward(dy (B, oh, ow), h, w, kh, kw, sh, sw, ph, pw, count_include_pad, divisor) -> dx (B, h, w)", doc="Gradient of avg_pool2d (takes x, for its shape, and the forward's arguments).", examples=lambda rng, dtype: avg_pool2d_backward_examples(rng, dtype))
def avg_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None, *, backend=None):
    """Gradient of avg_pool2d with respect to x (only x's shape is used), as PyTorch's
    avg_pool2d_backward(grad_output, self, ...)."""
    be = resolve(backend)
    dy = _float_array("avg_pool2d_backward", "dy", dy)
    x = np.asarray(x)
    if x.ndim not in (3, 4) or 0 in x.shape[-3:]:
        raise ValueError(f"avg_pool2d_backward: x must be 3-D or 4-D with non-zero C, H, W, "
                         f"got shape {x.shape}")
    k, s, p, o, cip, div = _avg_args("avg_pool2d_backward", x, kernel_size, stride, padding,
                                     ceil_mode, count_include_pad, divisor_override)
    _grad_out("avg_pool2d_backward", dy, x.shape, o)
    h, w = x.shape[-2:]
    if dy.size == 0:
        return np.zeros(x.shape, dy.dtype)
    return be.avg_pool2d_backward(_planes(dy), h, w, k[0], k[1], s[0], s[1], p[0], p[1], cip,
                                  div).reshape(x.shape)


# ---------------------------------------------------------------- adaptive average pooling
def _output_size(kernel, x, output_size):
    h, w = x.shape[-2:]
    if isinstance(output_size, (int, np.integer)):
        output_size = (output_size, output_size)
    output_size = tuple(output_size)
    if len(output_size) != 2:
        raise ValueError(f"{kernel}: output_size must be an int or a pair, got {output_size}")
    o = tuple(n if o is None else o for n, o in zip((h, w), output_size))   # None keeps a size
    if any(not isinstance(v, (int, np.integer)) or isinstance(v, bool) for v in o):
        raise TypeError(f"{kernel}: output_size must hold ints (or None), got {output_size}")
    o = tuple(int(v) for v in o)
    if min(o) < 1:
        raise ValueError(f"{kernel}: output size {o} must be >= 1")
    return o


@declare(family="pool", signature="adaptive_avg_pool2d(x (B, H, W), oh, ow) -> (B, oh, ow)", examples=lambda rng, dtype: adaptive_examples(rng, dtype))
def adaptive_avg_pool2d(x, output_size, *, backend=None):
    """Adaptive 2-D average pooling to output_size (oh, ow), as F.adaptive_avg_pool2d."""
    be = resolve(backend)
    x = _image("adaptive_avg_pool2d", "x", x)
    o = _output_size("adaptive_avg_pool2d", x, output_size)
    shape = x.shape[:-2] + o
    if x.size == 0:
        return np.empty(shape, x.dtype)
    return be.adaptive_avg_pool2d(_planes(x), o[0], o[1]).reshape(shape)


@declare(family="pool", signature="adaptive_avg_pool2d_backward(dy (B, oh, ow), h, w) -> dx (B, h, w)", doc="Gradient of adaptive_avg_pool2d (takes x, for its shape).", examples=lambda rng, dtype: adaptive_backward_examples(rng, dtype))
def adaptive_avg_pool2d_backward(dy, x, output_size=None, *, backend=None):
    """Gradient of adaptive_avg_pool2d with respect to x (only x's shape is used); output_size,
    when given, must agree with dy."""
    be = resolve(backend)
    dy = _float_array("adaptive_avg_pool2d_backward", "dy", dy)
    x = np.asarray(x)
    if x.ndim not in (3, 4) or 0 in x.shape[-3:]:
        raise ValueError(f"adaptive_avg_pool2d_backward: x must be 3-D or 4-D with non-zero "
                         f"C, H, W, got shape {x.shape}")
    if dy.ndim != x.ndim:
        raise ValueError(f"adaptive_avg_pool2d_backward: dy has shape {dy.shape}, x {x.shape}")
    o = dy.shape[-2:] if output_size is None else _output_size("adaptive_avg_pool2d_backward", x,
                                                               output_size)
    _grad_out("adaptive_avg_pool2d_backward", dy, x.shape, o)
    if min(o) < 1:
        raise ValueError(f"adaptive_avg_pool2d_backward: output size {o} must be >= 1")
    h, w = x.shape[-2:]
    if dy.size == 0:
        return np.zeros(x.shape, dy.dtype)
    return be.adaptive_avg_pool2d_backward(_planes(dy), h, w).reshape(x.shape)


# ---------------------------------------------------------------- conformance examples
# Small awkward shapes: 1x1 images, kernels larger than the unpadded input, ceil_mode windows
# that would start in the right padding, strides larger than kernels, odd sizes, dilation.
def _normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


_MAX_CASES = [
    ((1, 1, 1, 1), dict(kernel_size=1)),
    ((2, 3, 5, 7), dict(kernel_size=2)),
    ((1, 2, 5, 5), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((2, 1, 6, 6), dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),  # last window cut
    ((1, 1, 2, 3), dict(kernel_size=(4, 5), padding=2)),                    # kernel > input
    ((2, 2, 7, 9), dict(kernel_size=2, stride=3)),                          # stride > kernel
    ((1, 2, 9, 8), dict(kernel_size=3, stride=(2, 1), dilation=2, padding=1)),
    ((1, 1, 1, 3), dict(kernel_size=2, stride=1, padding=1, dilation=2)),   # all-padding windows
    ((3, 5, 4), dict(kernel_size=(1, 3), stride=(1, 2), ceil_mode=True)),   # 3-D input
    ((3, 4, 2, 5), dict(kernel_size=2)),     # 2x2 planes stacked as one image (C), odd width
]


def _ties(rng, shape, dtype):
    """Few distinct values, so windows hold ties (the first maximum must win)."""
    return rng.integers(-2, 3, shape).astype(dtype)


def max_pool2d_examples(rng, dtype):
    out = [((_normal(rng, s, dtype),), kw) for s, kw in _MAX_CASES]
    out += [((_ties(rng, s, dtype),), kw) for s, kw in _MAX_CASES[1:4]]
    x = _normal(rng, (1, 2, 4, 4), dtype)
    x[0, 0, 1, 1] = np.nan
    x[0, 1, :2, :2] = -np.inf
    out.append(((x,), dict(kernel_size=2)))
    return out


def max_pool2d_backward_examples(rng, dtype):
    import fastnn.kernels as K   # the forward's indices, from the reference
    out = []
    for (x,), kw in max_pool2d_examples(rng, dtype):
        y, idx = K.max_pool2d(x, **kw, backend="numpy")
        out.append(((_normal(rng, y.shape, dtype), idx, x.shape), {}))
    return out


_AVG_CASES = [
    ((1, 1, 1, 1), dict(kernel_size=1)),
    ((2, 3, 5, 7), dict(kernel_size=2)),
    ((1, 2, 5, 5), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((1, 2, 5, 5), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                        count_include_pad=False)),
    ((2, 1, 6, 6), dict(kernel_size=2, stride=2, padding=1, ceil_mode=True,
                        count_include_pad=False)),
    ((1, 1, 2, 3), dict(kernel_size=(4, 5), padding=2)),
    ((2, 2, 7, 9), dict(kernel_size=2, stride=3, divisor_override=3)),
    ((1, 1, 4, 4), dict(kernel_size=3, stride=3, padding=1, ceil_mode=True)),
    ((3, 5, 4), dict(kernel_size=(1, 3), stride=(1, 2), ceil_mode=True)),
    ((1, 2, 3, 3), dict(kernel_size=2, stride=1)),                          # small: FD check
]


def avg_pool2d_examples(rng, dtype):
    return [((_normal(rng, s, dtype),), kw) for s, kw in _AVG_CASES]


def avg_pool2d_backward_examples(rng, dtype):
    import fastnn.kernels as K
    out = []
    for (x,), kw in avg_pool2d_examples(rng, dtype):
        y = K.avg_pool2d(x, **kw, backend="numpy")
        out.append(((_normal(rng, y.shape, dtype), x), kw))
    return out


_ADAPTIVE_CASES = [((1, 1, 1, 1), (1, 1)), ((2, 3, 5, 7), (2, 3)), ((1, 2, 3, 2), (5, 4)),
                   ((2, 1, 7, 7), 1), ((3, 6, 5), (4, None)), ((1, 2, 4, 3), (3, 2))]


def adaptive_examples(rng, dtype):
    return [((_normal(rng, s, dtype), o), {}) for s, o in _ADAPTIVE_CASES]


def adaptive_backward_examples(rng, dtype):
    import fastnn.kernels as K
    out = []
    for (x, o), _ in adaptive_examples(rng, dtype):
        y = K.adaptive_avg_pool2d(x, o, backend="numpy")
        out.append(((_normal(rng, y.shape, dtype), x, o), {}))
    return out


# ---------------------------------------------------------------- trusted entry points
# For the layers (fastnn.kernels.trusted): the window arithmetic is cached per (input size,
# arguments), and the arrays are only checked for what makes the call safe; anything else (an
# invalid or unhashable argument, a strided array) takes the checked path and its errors.
import functools  # noqa: E402

from .._checks import get_backend, ready  # noqa: E402


@functools.lru_cache(maxsize=256)
def _window_cached(hw, kernel_size, stride, padding, dilation, ceil_mode):
    return _window("max_pool2d", np.empty((1, 1) + hw, np.float32), kernel_size, stride, padding,
                   dilation, ceil_mode)


@max_pool2d.kernel.set_trusted
def _max_pool2d_trusted(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    if x.ndim in (3, 4) and ready(x.dtype, x):
        try:
            k, s, p, d, o = _window_cached(x.shape[-2:], kernel_size, stride, padding, dilation,
                                           ceil_mode)
        except (TypeError, ValueError):
            k = None
        if k is not None:
            y, idx = get_backend().max_pool2d(_planes(x), k[0], k[1], s[0], s[1], p[0], p[1],
                                              d[0], d[1], o[0], o[1])
            shape = x.shape[:-2] + o
            return y.reshape(shape), idx.reshape(shape)
    return max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)


@max_pool2d_backward.kernel.set_trusted
def _max_pool2d_backward_trusted(dy, indices, input_shape):
    if (dy.ndim in (3, 4) and len(input_shape) == dy.ndim and ready(dy.dtype, dy)
            and indices.dtype == np.int64 and indices.shape == dy.shape
            and indices.flags.c_contiguous and tuple(input_shape[:-2]) == dy.shape[:-2]
            and min(input_shape[-2:]) > 0):
        # indices from max_pool2d are never negative; the kernels skip any past the plane
        h, w = int(input_shape[-2]), int(input_shape[-1])
        return get_backend().max_pool2d_backward(_planes(dy), _planes(indices), h,
                                                 w).reshape(tuple(input_shape))
    return max_pool2d_backward(dy, indices, input_shape)


@adaptive_avg_pool2d.kernel.set_trusted
def _adaptive_avg_pool2d_trusted(x, output_size):
    if (x.ndim in (3, 4) and ready(x.dtype, x) and isinstance(output_size, tuple)
            and len(output_size) == 2 and all(type(v) is int and v > 0 for v in output_size)):
        return get_backend().adaptive_avg_pool2d(_planes(x), *output_size).reshape(
            x.shape[:-2] + output_size)
    return adaptive_avg_pool2d(x, output_size)


@adaptive_avg_pool2d_backward.kernel.set_trusted
def _adaptive_avg_pool2d_backward_trusted(dy, x, output_size=None):
    if (dy.ndim in (3, 4) and dy.ndim == x.ndim and dy.shape[:-2] == x.shape[:-2]
            and ready(dy.dtype, dy) and min(x.shape[-2:]) > 0
            and (output_size is None or tuple(output_size) == dy.shape[-2:])):
        return get_backend().adaptive_avg_pool2d_backward(_planes(dy), x.shape[-2],
                                                          x.shape[-1]).reshape(x.shape)
    return adaptive_avg_pool2d_backward(dy, x, output_size)
