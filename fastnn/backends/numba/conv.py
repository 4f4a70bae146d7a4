"""Numba kernels: conv family (declarations and calling convention:
fastnn/kernels/families/conv.py; the math: fastnn/backends/numpy/conv.py).

Per image: im2col into a column buffer, then this backend's own packed GEMM (gemm.py's
_gemm_serial: loops, no BLAS) once per group; col2im for the data gradient. Threads take whole
images (prange over contiguous chunks of the batch), each with its own column buffer and its own
partial sums of dweight and dbias over fixed groups of images, added in order at the end (the
same result for any thread count); with fewer images than threads, the images run in turn and
each GEMM is threaded instead.
A 1x1, stride-1, unpadded convolution multiplies the image in place.

Everything is an ordinary convolution (conv view): input X (N, C, H, W), weight
W (Co, C/groups, kH, kW), output Y (N, Co, oH, oW). conv_transpose2d is the backward-data pass
of the convolution whose input is its output; its backward is a forward pass (dx) and the
backward-weight pass with the roles of X and dY swapped (dweight).
"""
import numba
import numpy as np
from numba import njit, prange

from .gemm import _gemm_serial, _load_micro_kernel, gemm


@njit(cache=True, error_model="numpy")
def _valid_range(ix0, sw, w, ow):
    """Output columns [lo, hi) whose input column ox*sw + ix0 lies inside [0, w)."""
    lo = 0 if ix0 >= 0 else (-ix0 + sw - 1) // sw
    hi = 0 if w - ix0 <= 0 else (w - ix0 + sw - 1) // sw
    lo = min(lo, ow)
    hi = max(min(hi, ow), lo)
    return lo, hi


@njit(cache=True, error_model="numpy")
def _im2col(x, geo, col):
    """x (C, H, W) -> col (C*kH*kW, oH*oW); geo = (kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)."""
    kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = geo
    c_, h, w = x.shape
    for c in range(c_):
        for i in range(kh):
            for j in range(kw):
                r = (c * kh + i) * kw + j
                ix0 = j * dw - pw
                lo, hi = _valid_range(ix0, sw, w, ow)
                for oy in range(oh):
                    iy = oy * sh - ph + i * dh
                    base = oy * ow
                    if iy < 0 or iy >= h:
                        for ox in range(ow):
                            col[r, base + ox] = 0
                        continue
                    for ox in range(lo):
                        col[r, base + ox] = 0
                    for ox in range(lo, hi):
                        col[r, base + ox] = x[c, iy, ox * sw + ix0]
                    for ox in range(hi, ow):
                        col[r, base + ox] = 0


@njit(cache=True, error_model="numpy")
def _col2im(col, geo, x):
    """The adjoint of _im2col: x (C, H, W) += col's entries at the positions they came from."""
    kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = geo
    c_, h, w = x.shape
    for c in range(c_):
        for i in range(kh):
            for j in range(kw):
                r = (c * kh + i) * kw + j
                ix0 = j * dw - pw
                lo, hi = _valid_range(ix0, sw, w, ow)
                for oy in range(oh):
                    iy = oy * sh - ph + i * dh
                    if iy < 0 or iy >= h:
                        continue
                    base = oy * ow
                    for ox in range(lo, hi):
                        x[c, iy, ox * sw + ix0] += col[r, base + ox]


@njit(cache=True, error_model="numpy")
def _pointwise(x_shape, geo):
    kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = geo
    return (kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
            and oh == x_shape[2] and ow == x_shape[3])


# ---------------------------------------------------------------- per-chunk work
@njit(cache=True, error_model="numpy")
def _forward_images(x, w2, bias, has_bias, y3, geo, groups, lo, hi):
    """y3[n] (Co, L) = W @ im2col(x[n]) (+ bias) for images lo..hi-1; w2 is (Co, K*groups/...)."""
    co, k = w2.shape
    cog = co // groups
    c_ = x.shape[1]
    L = y3.shape[2]
    direct = _pointwise(x.shape, geo)
    col = np.empty((1 if direct else c_ * geo[0] * geo[1], 1 if direct else L), x.dtype)
    for img in range(lo, hi):
        if direct:
            b = x[img].reshape(c_, L)
        else:
            _im2col(x[img], geo, col)
            b = col
        for g in range(groups):
            _gemm_serial(w2[g * cog:(g + 1) * cog], b[g * k:(g + 1) * k],
                         y3[img, g * cog:(g + 1) * cog], False, False, 1.0, 0.0)
        if has_bias:
            for o in range(co):
                for l in range(L):
                    y3[img, o, l] += bias[o]


@njit(cache=True, error_model="numpy")
def _backward_images(dy3, x, w2, need_dx, need_dw, need_db, dx, dw2, db, geo, groups, lo, hi):
    """For images lo..hi-1: dw2 (Co, K) += dY @ cols^T, db (Co,) += sums of dY (float64),
    dx[n] = col2im(W^T @ dY)."""
    co, k = w2.shape
    cog = co // groups
    c_ = x.shape[1]
    L = dy3.shape[2]
    direct = _pointwise(x.shape, geo)
    col = np.empty((1 if direct else c_ * geo[0] * geo[1], 1 if direct else L), x.dtype)
    for img in range(lo, hi):
        dyi = dy3[img]
        if need_db:
            for o in range(co):
                s = 0.0
                for l in range(L):
                    s += dyi[o, l]
                db[o] += s
        if need_dw:
            if direct:
                b = x[img].reshape(c_, L)
            else:
                _im2col(x[img], geo, col)
                b = col
            for g in range(groups):
                _gemm_serial(dyi[g * cog:(g + 1) * cog], b[g * k:(g + 1) * k],
                             dw2[g * cog:(g + 1) * cog], False, True, 1.0, 1.0)
        if need_dx:
            if direct:
                out = dx[img].reshape(c_, L)
            else:
                out = col
            for g in range(groups):
                _gemm_serial(w2[g * cog:(g + 1) * cog], dyi[g * cog:(g + 1) * cog],
                             out[g * k:(g + 1) * k], True, False, 1.0, 0.0)
            if not direct:
                dx[img] = 0
                _col2im(col, geo, dx[img])


@njit(cache=True, error_model="numpy", parallel=True)
def _forward_parallel(x, w2, bias, has_bias, y3, geo, groups, chunks):
    n = x.shape[0]
    for t in prange(chunks):
        _forward_images(x, w2, bias, has_bias, y3, geo, groups, n * t // chunks,
                        n * (t + 1) // chunks)


@njit(cache=True, error_model="numpy", parallel=True)
def _backward_parallel(dy3, x, w2, need_dx, need_dw, need_db, dx, dw_part, db_part, geo, groups,
                       chunks):
    n = x.shape[0]
    for t in prange(chunks):
        _backward_images(dy3, x, w2, need_dx, need_dw, need_db, dx, dw_part[t], db_part[t], geo,
                         groups, n * t // chunks, n * (t + 1) // chunks)


# ---------------------------------------------------------------- drivers
_SERIAL_FLOPS = 4e6   # below this a call runs on the calling thread
_GROUPS = 8           # the backward pass sums dweight and dbias over this many groups of images


def _chunks(n, flops):
    threads = numba.get_num_threads()
    return 1 if threads == 1 or flops < _SERIAL_FLOPS else min(threads, n)


def _geo(w_shape, stride, padding, dilation, out_hw):
    return (int(w_shape[2]), int(w_shape[3]), int(stride[0]), int(stride[1]), int(padding[0]),
            int(padding[1]), int(dilation[0]), int(dilation[1]), int(out_hw[0]), int(out_hw[1]))


def _few_images(n, flops):
    """Fewer images than threads, and work enough: run the images in turn, each GEMM threaded."""
    threads = numba.get_num_threads()
    return threads > 1 and n < threads and flops >= _SERIAL_FLOPS


def _columns(x, geo, img, col):
    if _pointwise(x.shape, geo):
        return x[img].reshape(x.shape[1], -1)
    _im2col(x[img], geo, col)
    return col


def _forward_threaded_gemm(x, w2, y3, geo, groups):
    co, k = w2.shape
    cog = co // groups
    col = np.empty((x.shape[1] * geo[0] * geo[1], y3.shape[2]), x.dtype)
    for img in range(x.shape[0]):
        b = _columns(x, geo, img, col)
        for g in range(groups):
            gemm(w2[g * cog:(g + 1) * cog], b[g * k:(g + 1) * k], y3[img, g * cog:(g + 1) * cog],
                 False, False, 1.0, 0.0)


def _backward_threaded_gemm(dy3, x, w2, need_dx, need_dw, dx, dw2, geo, groups):
    co, k = w2.shape
    cog = co // groups
    c_ = x.shape[1]
    direct = _pointwise(x.shape, geo)
    col = np.empty((c_ * geo[0] * geo[1], dy3.shape[2]), x.dtype)
    for img in range(x.shape[0]):
        dyi = dy3[img]
        if need_dw:
            b = _columns(x, geo, img, col)
            for g in range(groups):
                gemm(dyi[g * cog:(g + 1) * cog], b[g * k:(g + 1) * k], dw2[g * cog:(g + 1) * cog],
                     False, True, 1.0, 1.0)
        if need_dx:
            out = dx[img].reshape(c_, -1) if direct else col
            for g in range(groups):
                gemm(w2[g * cog:(g + 1) * cog], dyi[g * cog:(g + 1) * cog], out[g * k:(g + 1) * k],
                     True, False, 1.0, 0.0)
            if not direct:
                dx[img] = 0
                _col2im(col, geo, dx[img])


def _forward(x, weight, bias, geo, groups, out_channels):
    _load_micro_kernel(x.dtype)     # before the drivers: see gemm._load_micro_kernel
    n = x.shape[0]
    co = weight.shape[0]
    L = geo[8] * geo[9]
    w2 = weight.reshape(co, -1)
    y = np.empty((n, co, L), x.dtype)
    has_bias = bias is not None
    b = bias if has_bias else np.zeros(1, x.dtype)
    flops = 2.0 * n * w2.size * L
    chunks = _chunks(n, flops)
    if _few_images(n, flops):
        _forward_threaded_gemm(x, w2, y, geo, groups)
        if has_bias:
            y += bias[:, None]
    elif chunks == 1:
        _forward_images(x, w2, b, has_bias, y, geo, groups, 0, n)
    else:
        _forward_parallel(x, w2, b, has_bias, y, geo, groups, chunks)
    return y.reshape(n, co, geo[8], geo[9])


def _backward(dy, x, weight, geo, groups, need_dx, need_dw, need_db):
    """Conv-view gradients; x is only read when need_dw, weight only when need_dx."""
    _load_micro_kernel(x.dtype)     # before the drivers: see gemm._load_micro_kernel
    n, co = dy.shape[:2]
    L = dy.shape[2] * dy.shape[3]
    dy3 = dy.reshape(n, co, L)
    w2 = weight.reshape(co, -1)
    flops = 2.0 * n * w2.size * L * (need_dx + need_dw) + n * co * L
    serial = _chunks(n, flops) == 1
    # dweight and dbias are summed over min(n, 8) fixed groups of images, each into its own
    # partial, added in order at the end: the same result for any number of threads
    chunks = min(n, _GROUPS) if need_dw or need_db else (1 if serial else _chunks(n, flops))
    dx = np.empty(x.shape, x.dtype) if need_dx else np.empty((1, 1, 1, 1), x.dtype)
    dw_part = np.zeros((chunks,) + w2.shape if need_dw else (chunks, 1, 1), x.dtype)
    db_part = np.zeros((chunks, co if need_db else 1), np.float64)
    if _few_images(n, flops) and (need_dx or need_dw):
        for ch in range(chunks):
            lo, hi = n * ch // chunks, n * (ch + 1) // chunks
            _backward_threaded_gemm(dy3[lo:hi], x[lo:hi], w2, need_dx, need_dw,
                                    dx[lo:hi] if need_dx else dx, dw_part[ch], geo, groups)
            if need_db:
                _backward_images(dy3, x, w2, False, False, True, dx, dw_part[ch], db_part[ch],
                                 geo, groups, lo, hi)
    elif serial:
        for ch in range(chunks):
            _backward_images(dy3, x, w2, need_dx, need_dw, need_db, dx, dw_part[ch], db_part[ch],
                             geo, groups, n * ch // chunks, n * (ch + 1) // chunks)
    else:
        with numba.parallel_chunksize(1):    # groups handed out one at a time
            _backward_parallel(dy3, x, w2, need_dx, need_dw, need_db, dx, dw_part, db_part, geo,
                               groups, chunks)
    return (dx if need_dx else None,
            _sum_in_order(dw_part).reshape(weight.shape) if need_dw else None,
            _sum_in_order(db_part).astype(x.dtype) if need_db else None)


def _sum_in_order(parts):
    total = parts[0].copy()
    for p in parts[1:]:
        total += p
    return total


# ---------------------------------------------------------------- the kernels
def conv2d(x, weight, bias, stride, padding, dilation, groups, out_hw):
    geo = _geo(weight.shape, stride, padding, dilation, out_hw)
    return _forward(x, weight, bias, geo, groups, weight.shape[0])


def conv2d_backward(dy, x, weight, stride, padding, dilation, groups, mask):
    geo = _geo(weight.shape, stride, padding, dilation, dy.shape[2:])
    return _backward(dy, x, weight, geo, groups, bool(mask[0]), bool(mask[1]), bool(mask[2]))


def conv_transpose2d(x, weight, bias, stride, padding, dilation, groups, out_hw):
    y = np.empty((x.shape[0], weight.shape[1] * groups) + tuple(out_hw), x.dtype)
    geo = _geo(weight.shape, stride, padding, dilation, x.shape[2:])
    # conv view: input y, output x; fills y with the data gradient of that convolution
    dx, _, _ = _backward(x, y, weight, geo, groups, True, False, False)
    if bias is not None:
        dx += bias[:, None, None]
    return dx


def conv_transpose2d_backward(dy, x, weight, stride, padding, dilation, groups, mask):
    geo = _geo(weight.shape, stride, padding, dilation, x.shape[2:])
    dx = _forward(dy, weight, None, geo, groups, weight.shape[0]) if mask[0] else None
    dw = _backward(x, dy, weight, geo, groups, False, True, False)[1] if mask[1] else None
    db = dy.sum((0, 2, 3), dtype=np.float64).astype(dy.dtype) if mask[2] else None
    return dx, dw, db
