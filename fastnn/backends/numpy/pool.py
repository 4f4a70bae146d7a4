"""Reference pooling and channel-normalization kernels: plain numpy (the oracle).

Declared in fastnn/kernels/families/pool.py and norm2d.py (semantics there). Images arrive as
(B, H, W) planes, normalization inputs as (N, C, L)."""
import numpy as np


# ---------------------------------------------------------------- max pooling
def max_pool2d(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """Scan the window's taps in PyTorch's order (row by row); a tap replaces the running max
    when it is larger, or NaN. The start index is the window's first tap inside the input."""
    _, h, w = x.shape
    rows, cols = np.arange(oh) * sh - ph, np.arange(ow) * sw - pw       # window origins
    # a window starting in the padding starts at its first tap inside: origin mod dilation
    first_r = np.where(rows < 0, rows % dh, rows)
    first_c = np.where(cols < 0, cols % dw, cols)
    y = np.full((x.shape[0], oh, ow), -np.inf, x.dtype)
    idx = np.broadcast_to(first_r[:, None] * w + first_c[None, :], y.shape).copy()
    for i in range(kh):
        r = rows + i * dh
        for j in range(kw):
            c = cols + j * dw
            inside = ((r >= 0) & (r < h))[:, None] & ((c >= 0) & (c < w))[None, :]
            v = x[:, r.clip(0, h - 1)][:, :, c.clip(0, w - 1)]
            take = inside & ((v > y) | np.isnan(v))
            y = np.where(take, v, y)
            idx = np.where(take, r[:, None] * w + c[None, :], idx)
    return y, idx.astype(np.int64)


def max_pool2d_backward(dy, indices, h, w):
    """Scatter-add dy into each plane at its index; indices past the plane add nothing."""
    dx = np.zeros((dy.shape[0], h * w), dy.dtype)
    plane = np.broadcast_to(np.arange(dy.shape[0])[:, None, None], dy.shape)
    keep = indices < h * w
    np.add.at(dx, (plane[keep], indices[keep]), dy[keep])
    return dx.reshape(dy.shape[0], h, w)


# ---------------------------------------------------------------- average pooling
def _windows(n, o, k, s, p):
    """0/1 matrix (o, n) of which inputs each output's window covers, and PyTorch's divisors:
    the window clipped to the padded input, and to the input."""
    start = np.arange(o) * s - p
    end = np.minimum(start + k, n + p)
    padded = end - start
    start, end = start.clip(0), end.clip(None, n)
    cover = (np.arange(n)[None, :] >= start[:, None]) & (np.arange(n)[None, :] < end[:, None])
    return cover, padded, (end - start).clip(0)


def _avg_divisor(h, w, oh, ow, kh, kw, sh, sw, ph, pw, count_include_pad, divisor):
    ch, padded_h, inside_h = _windows(h, oh, kh, sh, ph)
    cw, padded_w, inside_w = _windows(w, ow, kw, sw, pw)
    if divisor:
        div = np.full((oh, ow), float(divisor))
    elif count_include_pad:
        div = np.outer(padded_h, padded_w).astype(float)
    else:
        div = np.outer(inside_h, inside_w).astype(float)
    empty = np.outer(inside_h, inside_w) == 0          # window wholly in the padding: 0
    return ch, cw, np.where(empty, np.inf, div)


def avg_pool2d(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad, divisor):
    ch, cw, div = _avg_divisor(x.shape[1], x.shape[2], oh, ow, kh, kw, sh, sw, ph, pw,
                               count_include_pad, divisor)
    s = np.einsum("oh,bhw,pw->bop", ch.astype(x.dtype), x, cw.astype(x.dtype))
    return (s / div).astype(x.dtype)


def avg_pool2d_backward(dy, h, w, kh, kw, sh, sw, ph, pw, count_include_pad, divisor):
    oh, ow = dy.shape[1:]
    ch, cw, div = _avg_divisor(h, w, oh, ow, kh, kw, sh, sw, ph, pw, count_include_pad, divisor)
    g = (dy / div).astype(dy.dtype)
    return np.einsum("oh,bop,pw->bhw", ch.astype(dy.dtype), g, cw.astype(dy.dtype))


# ---------------------------------------------------------------- adaptive average pooling
def _adaptive(n, o):
    """Window i covers [floor(i n / o), ceil((i + 1) n / o))."""
    i = np.arange(o)
    start, end = i * n // o, -((i + 1) * n // -o)
    return (np.arange(n)[None, :] >= start[:, None]) & (np.arange(n)[None, :] < end[:, None])


def adaptive_avg_pool2d(x, oh, ow):
    ch, cw = _adaptive(x.shape[1], oh), _adaptive(x.shape[2], ow)
    div = np.outer(ch.sum(1), cw.sum(1))
    s = np.einsum("oh,bhw,pw->bop", ch.astype(x.dtype), x, cw.astype(x.dtype))
    return (s / div).astype(x.dtype)


def adaptive_avg_pool2d_backward(dy, h, w):
    ch, cw = _adaptive(h, dy.shape[1]), _adaptive(w, dy.shape[2])
    g = (dy / np.outer(ch.sum(1), cw.sum(1))).astype(dy.dtype)
    return np.einsum("oh,bop,pw->bhw", ch.astype(dy.dtype), g, cw.astype(dy.dtype))


# ---------------------------------------------------------------- batch norm (N, C, L)
def batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps):
    if training:
        n = x.shape[0] * x.shape[2]
        mean = x.mean(axis=(0, 2))
        var = ((x - mean[:, None]) ** 2).mean(axis=(0, 2))            # biased: normalizes
        if running_mean.size:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
            running_var[...] = (1 - momentum) * running_var + momentum * var * n / (n - 1)
    else:
        mean, var = running_mean.copy(), running_var
    invstd = (1 / np.sqrt(var + eps)).astype(x.dtype)
    y = (x - mean[:, None]) * (invstd * weight)[:, None] + bias[:, None]
    return y.astype(x.dtype), mean.astype(x.dtype), invstd


def batch_norm_backward(dy, x, weight, mean, invstd, training):
    xhat = (x - mean[:, None]) * invstd[:, None]
    dbias = dy.sum(axis=(0, 2))
    dweight = (dy * xhat).sum(axis=(0, 2))
    if training:
        m = x.shape[0] * x.shape[2]
        dx = (weight * invstd)[:, None] * (dy - dbias[:, None] / m - xhat * dweight[:, None] / m)
    else:
        dx = dy * (weight * invstd)[:, None]
    return dx.astype(x.dtype), dweight, dbias


# ---------------------------------------------------------------- group norm (N, C, L)
def group_norm(x, num_groups, weight, bias, eps):
    n, c, _ = x.shape
    xg = x.reshape(n, num_groups, -1)
    mean = xg.mean(axis=2)
    var = ((xg - mean[:, :, None]) ** 2).mean(axis=2)
    rstd = (1 / np.sqrt(var + eps)).astype(x.dtype)
    xhat = ((xg - mean[:, :, None]) * rstd[:, :, None]).reshape(x.shape)
    return (xhat * weight[:, None] + bias[:, None]).astype(x.dtype), mean, rstd


def group_norm_backward(dy, x, weight, mean, rstd, num_groups):
    n, c, _ = x.shape
    xhat = ((x.reshape(n, num_groups, -1) - mean[:, :, None]) * rstd[:, :, None]).reshape(x.shape)
    dweight = (dy * xhat).sum(axis=(0, 2))
    dbias = dy.sum(axis=(0, 2))
    g = (dy * weight[:, None]).reshape(n, num_groups, -1)
    xg = xhat.reshape(g.shape)
    dx = rstd[:, :, None] * (g - g.mean(axis=2, keepdims=True)
                             - xg * (g * xg).mean(axis=2, keepdims=True))
    return dx.reshape(x.shape).astype(x.dtype), dweight, dbias
