"""CUDA kernels: conv family (declarations and calling convention:
fastnn/kernels/families/conv.py; the math: fastnn/backends/numpy/conv.py).

Direct convolution, one thread per value computed (grid-stride loops), no atomics:
  - forward: one thread per output value, summing its window;
  - backward-data: one thread per input value, gathering the output positions whose windows
    cover it (dilation and stride make that a divisibility test per kernel tap);
  - backward-weight: one thread per weight value, summing over the batch and output positions;
  - dbias: one thread per channel.
Everything is phrased as an ordinary convolution (conv view): conv_transpose2d is the
backward-data pass of the convolution whose input is its output; its backward is a forward pass
(dx) plus the backward-weight pass with the roles of input and output gradient swapped.
Simple rather than fast: it is checked on the simulator with small shapes.

Every kernel NAME has NAME_device(...) on device arrays; NAME(...) copies in and out.
"""
import functools

import numpy as np
from numba import cuda

from .common import device_empty, grid_1d, launch
from .ops import host_call


@functools.cache
def _kernels(dtype):
    zero = dtype(0)

    @cuda.jit
    def forward(x, w, bias, has_bias, y, groups, sh, sw, ph, pw, dh, dw):
        n, co, oh, ow = y.shape
        cig, kh, kw = w.shape[1], w.shape[2], w.shape[3]
        h, wd = x.shape[2], x.shape[3]
        cog = co // groups
        for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            ox = e % ow
            t = e // ow
            oy = t % oh
            t //= oh
            o = t % co
            b = t // co
            c0 = (o // cog) * cig
            acc = bias[o] if has_bias else zero
            for c in range(cig):
                for i in range(kh):
                    iy = oy * sh - ph + i * dh
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(kw):
                        ix = ox * sw - pw + j * dw
                        if ix >= 0 and ix < wd:
                            acc += x[b, c0 + c, iy, ix] * w[o, c, i, j]
            y[b, o, oy, ox] = acc

    @cuda.jit
    def backward_data(dy, w, dx, groups, sh, sw, ph, pw, dh, dw):
        n, c_, h, wd = dx.shape
        co, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
        cig, kh, kw = w.shape[1], w.shape[2], w.shape[3]
        cog = co // groups
        for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
            ix = e % wd
            t = e // wd
            iy = t % h
            t //= h
            c = t % c_
            b = t // c_
            g = c // cig
            cl = c - g * cig
            acc = zero
            for i in range(kh):
                ty = iy + ph - i * dh            # = oy * sh for a covering output row
                if ty < 0 or ty % sh != 0:
                    continue
                oy = ty // sh
                if oy >= oh:
                    continue
                for j in range(kw):
                    tx = ix + pw - j * dw
                    if tx < 0 or tx % sw != 0:
                        continue
                    ox = tx // sw
                    if ox >= ow:
                        continue
                    for o in range(g * cog, (g + 1) * cog):
                        acc += dy[b, o, oy, ox] * w[o, cl, i, j]
            dx[b, c, iy, ix] = acc

    @cuda.jit
    def backward_weight(dy, x, dwt, groups, sh, sw, ph, pw, dh, dw):
        co, cig, kh, kw = dwt.shape
        n, oh, ow = dy.shape[0], dy.shape[2], dy.shape[3]
        h, wd = x.shape[2], x.shape[3]
        cog = co // groups
        for e in range(cuda.grid(1), dwt.size, cuda.gridsize(1)):
            j = e % kw
            t = e // kw
            i = t % kh
            t //= kh
            cl = t % cig
            o = t // cig
            c = (o // cog) * cig + cl
            acc = zero
            for b in range(n):
                for oy in range(oh):
                    iy = oy * sh - ph + i * dh
                    if iy < 0 or iy >= h:
                        continue
                    for ox in range(ow):
                        ix = ox * sw - pw + j * dw
                        if ix >= 0 and ix < wd:
                            acc += dy[b, o, oy, ox] * x[b, c, iy, ix]
            dwt[o, cl, i, j] = acc

    @cuda.jit
    def channel_sums(dy, out):
        n, co, oh, ow = dy.shape
        for o in range(cuda.grid(1), co, cuda.gridsize(1)):
            acc = zero
            for b in range(n):
                for oy in range(oh):
                    for ox in range(ow):
                        acc += dy[b, o, oy, ox]
            out[o] = acc

    @cuda.jit
    def add_bias(y, bias):
        n, co, oh, ow = y.shape
        for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            o = (e // (oh * ow)) % co
            y[e // (co * oh * ow), o, (e // ow) % oh, e % ow] += bias[o]

    return forward, backward_data, backward_weight, channel_sums, add_bias


def _geo(stride, padding, dilation):
    return (int(stride[0]), int(stride[1]), int(padding[0]), int(padding[1]), int(dilation[0]),
            int(dilation[1]))


def _launch(kernel, n, *args):
    grid, block = grid_1d(n)
    launch(kernel, grid, block, *args)


def _conv_forward(x, w, bias, y, groups, geo):
    k = _kernels(np.dtype(x.dtype).type)
    has_bias = bias is not None
    b = bias if has_bias else device_empty((1,), x.dtype)
    _launch(k[0], y.size, x, w, b, has_bias, y, groups, *geo)


def _backward_data(dy, w, dx, groups, geo):
    _launch(_kernels(np.dtype(dy.dtype).type)[1], dx.size, dy, w, dx, groups, *geo)


def _backward_weight(dy, x, dw, groups, geo):
    _launch(_kernels(np.dtype(dy.dtype).type)[2], dw.size, dy, x, dw, groups, *geo)


def _channel_sums(dy):
    out = device_empty((dy.shape[1],), dy.dtype)
    _launch(_kernels(np.dtype(dy.dtype).type)[3], dy.shape[1], dy, out)
    return out


# ---------------------------------------------------------------- device-array kernels
def conv2d_device(x, weight, bias, stride, padding, dilation, groups, out_hw):
    y = device_empty((x.shape[0], weight.shape[0]) + tuple(out_hw), x.dtype)
    _conv_forward(x, weight, bias, y, groups, _geo(stride, padding, dilation))
    return y


def conv2d_backward_device(dy, x, weight, stride, padding, dilation, groups, mask):
    geo = _geo(stride, padding, dilation)
    dx = dw = db = None
    if mask[0]:
        dx = device_empty(x.shape, x.dtype)
        _backward_data(dy, weight, dx, groups, geo)
    if mask[1]:
        dw = device_empty(weight.shape, x.dtype)
        _backward_weight(dy, x, dw, groups, geo)
    if mask[2]:
        db = _channel_sums(dy)
    return dx, dw, db


def conv_transpose2d_device(x, weight, bias, stride, padding, dilation, groups, out_hw):
    y = device_empty((x.shape[0], weight.shape[1] * groups) + tuple(out_hw), x.dtype)
    _backward_data(x, weight, y, groups, _geo(stride, padding, dilation))
    if bias is not None:
        _launch(_kernels(np.dtype(x.dtype).type)[4], y.size, y, bias)
    return y


def conv_transpose2d_backward_device(dy, x, weight, stride, padding, dilation, groups, mask):
    geo = _geo(stride, padding, dilation)
    dx = dw = db = None
    if mask[0]:
        dx = device_empty(x.shape, x.dtype)
        _conv_forward(dy, weight, None, dx, groups, geo)
    if mask[1]:
        dw = device_empty(weight.shape, x.dtype)
        _backward_weight(x, dy, dw, groups, geo)     # conv view: x is the output gradient
    if mask[2]:
        db = _channel_sums(dy)
    return dx, dw, db


# ---------------------------------------------------------------- host entry points
def conv2d(x, weight, bias, stride, padding, dilation, groups, out_hw):
    return host_call(conv2d_device, x, weight, bias, stride, padding, dilation, groups, out_hw)


def conv2d_backward(dy, x, weight, stride, padding, dilation, groups, mask):
    return host_call(conv2d_backward_device, dy, x, weight, stride, padding, dilation, groups,
                     mask)


def conv_transpose2d(x, weight, bias, stride, padding, dilation, groups, out_hw):
    return host_call(conv_transpose2d_device, x, weight, bias, stride, padding, dilation, groups,
                     out_hw)


def conv_transpose2d_backward(dy, x, weight, stride, padding, dilation, groups, mask):
    return host_call(conv_transpose2d_backward_device, dy, x, weight, stride, padding, dilation,
                     groups, mask)
