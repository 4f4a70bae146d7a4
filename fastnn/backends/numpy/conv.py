"""Reference convolutions: plain im2col + `@` in numpy (the test oracle and the benchmark's
"naive numpy"). Declarations and the calling convention: fastnn/kernels/families/conv.py.

im2col gathers, for every output position, the kH*kW input values its window covers:
    cols[n, c, i, j, oy, ox] = x[n, c, oy*sh - pt + i*dh, ox*sw - pl + j*dw]   (0 outside)
so a convolution is one matrix product per group: y[n, g] = W[g] (Co/g, C/g*kH*kW) @ cols[n, g].
col2im is its adjoint: it adds each window's column back onto the input positions it came from.
"""
import numpy as np


def _window_slices(i, j, stride, dilation, out_hw):
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_hw
    return (slice(i * dh, i * dh + (oh - 1) * sh + 1, sh),
            slice(j * dw, j * dw + (ow - 1) * sw + 1, sw))


def _padded_size(x_shape, kh, kw, stride, padding, dilation, out_hw):
    h, w = x_shape[2:]
    hp = max(h + padding[0], (out_hw[0] - 1) * stride[0] + (kh - 1) * dilation[0] + 1)
    wp = max(w + padding[1], (out_hw[1] - 1) * stride[1] + (kw - 1) * dilation[1] + 1)
    return hp, wp


def _im2col(x, kh, kw, stride, padding, dilation, out_hw):
    n, c, h, w = x.shape
    hp, wp = _padded_size(x.shape, kh, kw, stride, padding, dilation, out_hw)
    xp = np.zeros((n, c, hp, wp), x.dtype)
    xp[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w] = x
    cols = np.empty((n, c, kh, kw) + tuple(out_hw), x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _window_slices(i, j, stride, dilation, out_hw)
            cols[:, :, i, j] = xp[:, :, rows, columns]
    return cols


def _col2im(cols, x_shape, stride, padding, dilation, out_hw):
    n, c, h, w = x_shape
    kh, kw = cols.shape[2:4]
    hp, wp = _padded_size(x_shape, kh, kw, stride, padding, dilation, out_hw)
    xp = np.zeros((n, c, hp, wp), cols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = _window_slices(i, j, stride, dilation, out_hw)
            xp[:, :, rows, columns] += cols[:, :, i, j]
    return xp[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w].copy()


# ---------------------------------------------------------------- the three primitives
def _forward(x, weight, stride, padding, dilation, groups, out_hw):
    """y = conv(x, weight): (N, Co, oH, oW)."""
    n = x.shape[0]
    co, cig, kh, kw = weight.shape
    cols = _im2col(x, kh, kw, stride, padding, dilation, out_hw)
    cols = cols.reshape(n, groups, cig * kh * kw, out_hw[0] * out_hw[1])
    wg = weight.reshape(1, groups, co // groups, cig * kh * kw)
    return (wg @ cols).reshape((n, co) + tuple(out_hw))


def _backward_data(dy, weight, x_shape, stride, padding, dilation, groups):
    """dx = conv^T(dy, weight): the gradient of _forward with respect to x."""
    n, co, oh, ow = dy.shape
    _, cig, kh, kw = weight.shape
    wg = weight.reshape(1, groups, co // groups, cig * kh * kw)
    dcols = wg.swapaxes(-1, -2) @ dy.reshape(n, groups, co // groups, oh * ow)
    dcols = dcols.reshape(n, x_shape[1], kh, kw, oh, ow)
    return _col2im(dcols, x_shape, stride, padding, dilation, (oh, ow))


def _backward_weight(dy, x, w_shape, stride, padding, dilation, groups):
    """dweight: the gradient of _forward with respect to the weight."""
    n, co, oh, ow = dy.shape
    _, cig, kh, kw = w_shape
    cols = _im2col(x, kh, kw, stride, padding, dilation, (oh, ow))
    cols = cols.reshape(n, groups, cig * kh * kw, oh * ow)
    dyg = dy.reshape(n, groups, co // groups, oh * ow)
    return (dyg @ cols.swapaxes(-1, -2)).sum(0).reshape(w_shape)


# ---------------------------------------------------------------- the kernels
def conv2d(x, weight, bias, stride, padding, dilation, groups, out_hw):
    y = _forward(x, weight, stride, padding, dilation, groups, out_hw)
    if bias is not None:
        y += bias[:, None, None]
    return y


def conv2d_backward(dy, x, weight, stride, padding, dilation, groups, mask):
    dx = _backward_data(dy, weight, x.shape, stride, padding, dilation, groups) \
        if mask[0] else None
    dw = _backward_weight(dy, x, weight.shape, stride, padding, dilation, groups) \
        if mask[1] else None
    db = dy.sum((0, 2, 3)) if mask[2] else None
    return dx, dw, db


def conv_transpose2d(x, weight, bias, stride, padding, dilation, groups, out_hw):
    # the adjoint of a convolution whose input is y (N, Co, oH, oW) and whose output is x
    y_shape = (x.shape[0], weight.shape[1] * groups) + tuple(out_hw)
    y = _backward_data(x, weight, y_shape, stride, padding, dilation, groups)
    if bias is not None:
        y += bias[:, None, None]
    return y


def conv_transpose2d_backward(dy, x, weight, stride, padding, dilation, groups, mask):
    out_hw = x.shape[2:]
    dx = _forward(dy, weight, stride, padding, dilation, groups, out_hw) if mask[0] else None
    dw = _backward_weight(x, dy, weight.shape, stride, padding, dilation, groups) \
        if mask[1] else None
    db = dy.sum((0, 2, 3)) if mask[2] else None
    return dx, dw, db
