"""Numba kernels: 2-D pooling and channel normalization (batch_norm, group_norm), no BLAS.

Semantics: fastnn/kernels/families/pool.py and norm2d.py; the oracle: backends/numpy/pool.py.
Pooling works plane by plane ((B, H, W), one plane per image and channel): a serial @njit loop
over a run of planes, and for large inputs a prange over per-thread runs of planes. Batch norm
runs a prange over channels (each thread owns its channels' statistics, running-stat updates and
parameter gradients: no races); group norm over (sample, group) pairs, then over channels for
the parameter gradients. Sums accumulate in float64 whatever the dtype. No fastmath: NaN must
win a max-pool window exactly as in PyTorch.
"""
import numba
import numpy as np
from numba import njit, prange

_SERIAL = dict(cache=True, error_model="numpy")
# the norms' sums may be reassociated (split across vector lanes and partial sums); NaN and inf
# still propagate (no "nnan"/"ninf")
_REDUCE = dict(cache=True, error_model="numpy", fastmath={"contract", "reassoc"})
_PARALLEL = dict(cache=True, error_model="numpy", parallel=True)

PARALLEL_MIN = 1 << 15      # elements below which a kernel runs on one thread


def _chunks(work, items):
    """How many per-thread runs to split `items` into; 0: run serially."""
    if work < PARALLEL_MIN:
        return 0
    n = min(numba.get_num_threads(), items)
    return n if n > 1 else 0


@njit(**_SERIAL)
def _bounds(c, chunks, n):
    return c * n // chunks, (c + 1) * n // chunks


# ================================================================ max pooling
# The window scans compare with `v > best` alone, which LLVM turns into branch-free selects;
# with PyTorch's NaN rule folded in (`v > best or v != v`) numba's code runs ~10x slower on random
# data (unpredictable branches). So NaN is handled apart: the taps are also summed, and a NaN
# sum (a NaN tap, or rarely inf - inf) sends the window to the exact scan below.
@njit(**_SERIAL)
def _max_window_exact(x, xb, w, r0, r1, dh, c0, c1, dw):
    """PyTorch's scan: a tap replaces the maximum when larger or NaN (first max wins, NaN wins,
    a later NaN over an earlier one); the start is the first tap inside the input."""
    best = x.dtype.type(-np.inf)
    at = r0 * w + c0
    for r in range(r0, r1, dh):
        for c in range(c0, c1, dw):
            v = x[xb + r * w + c]
            if v > best or v != v:
                best = v
                at = r * w + c
    return best, at


@njit(**_SERIAL)
def _max_pool_2x2_planes(x, y, idx, h, w, oh, ow):
    """The common 2x2 / stride 2 pooling with every window whole: four taps, no bounds."""
    for b in range(x.size // (h * w)):
        xb, yb = b * h * w, b * oh * ow
        for i in range(oh):
            base = 2 * i * w
            for j in range(ow):
                t = base + 2 * j
                a0 = x[xb + t]
                a1 = x[xb + t + 1]
                a2 = x[xb + t + w]
                a3 = x[xb + t + w + 1]
                m = a0
                at = t
                if a1 > m:
                    m = a1
                    at = t + 1
                if a2 > m:
                    m = a2
                    at = t + w
                if a3 > m:
                    m = a3
                    at = t + w + 1
                s = a0 + a1 + a2 + a3
                if s != s:
                    m, at = _max_window_exact(x, xb, w, 2 * i, 2 * i + 2, 1, 2 * j, 2 * j + 2, 1)
                y[yb + i * ow + j] = m
                idx[yb + i * ow + j] = at


@njit(**_SERIAL)
def _max_pool_planes(x, h, w, kh, kw, sh, sw, ph, pw, dh, dw, y, idx, oh, ow):
    """x, y, idx: flat (1-D) runs of whole planes."""
    if (kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0 and 2 * oh <= h
            and 2 * ow <= w):
        _max_pool_2x2_planes(x, y, idx, h, w, oh, ow)
        return
    for b in range(x.size // (h * w)):
        xb, yb = b * h * w, b * oh * ow
        for i in range(oh):
            r0 = i * sh - ph
            r1 = min(r0 + (kh - 1) * dh + 1, h)
            while r0 < 0:
                r0 += dh
            for j in range(ow):
                c0 = j * sw - pw
                c1 = min(c0 + (kw - 1) * dw + 1, w)
                while c0 < 0:
                    c0 += dw
                best = x.dtype.type(-np.inf)
                at = r0 * w + c0                  # PyTorch's start: the first tap inside
                s = x.dtype.type(0)
                for r in range(r0, r1, dh):
                    for c in range(c0, c1, dw):
                        v = x[xb + r * w + c]
                        s += v
                        if v > best:
                            best = v
                            at = r * w + c
                if s != s:
                    best, at = _max_window_exact(x, xb, w, r0, r1, dh, c0, c1, dw)
                y[yb + i * ow + j] = best
                idx[yb + i * ow + j] = at


@njit(**_PARALLEL)
def _max_pool_parallel(chunks, x, h, w, kh, kw, sh, sw, ph, pw, dh, dw, y, idx, oh, ow):
    planes = x.size // (h * w)
    for k in prange(chunks):
        lo, hi = _bounds(k, chunks, planes)
        _max_pool_planes(x[lo * h * w:hi * h * w], h, w, kh, kw, sh, sw, ph, pw, dh, dw,
                         y[lo * oh * ow:hi * oh * ow], idx[lo * oh * ow:hi * oh * ow], oh, ow)


def max_pool2d(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    b, h, w = x.shape
    y = np.empty(b * oh * ow, x.dtype)
    idx = np.empty(b * oh * ow, np.int64)
    args = (x.reshape(-1), h, w, kh, kw, sh, sw, ph, pw, dh, dw, y, idx, oh, ow)
    chunks = _chunks(x.size * kh * kw // max(sh * sw, 1), b)
    if chunks:
        _max_pool_parallel(chunks, *args)
    else:
        _max_pool_planes(*args)
    return y.reshape(b, oh, ow), idx.reshape(b, oh, ow)


@njit(**_SERIAL)
def _max_unpool_planes(dy, idx, dx):
    n = dx.shape[1]
    for b in range(dy.shape[0]):
        for i in range(n):
            dx[b, i] = 0
        for i in range(dy.shape[1]):
            at = idx[b, i]
            if at < n:                            # past the plane: a window wholly in padding
                dx[b, at] += dy[b, i]


@njit(**_PARALLEL)
def _max_unpool_parallel(chunks, dy, idx, dx):
    for k in prange(chunks):
        lo, hi = _bounds(k, chunks, dy.shape[0])
        _max_unpool_planes(dy[lo:hi], idx[lo:hi], dx[lo:hi])


def max_pool2d_backward(dy, indices, h, w):
    b = dy.shape[0]
    dx = np.empty((b, h * w), dy.dtype)
    flat_dy, flat_idx = dy.reshape(b, -1), indices.reshape(b, -1)
    chunks = _chunks(dx.size + dy.size, b)
    if chunks:
        _max_unpool_parallel(chunks, flat_dy, flat_idx, dx)
    else:
        _max_unpool_planes(flat_dy, flat_idx, dx)
    return dx.reshape(b, h, w)


# ================================================================ average pooling
@njit(**_SERIAL)
def _avg_window(i, s, p, k, n):
    """PyTorch's window: (start, end) clipped to the input, and the size clipped to the padded
    input (the count_include_pad divisor)."""
    a = i * s - p
    e = min(a + k, n + p)
    padded = e - a
    return max(a, 0), min(e, n), padded


@njit(**_SERIAL)
def _avg_pool_planes(x, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, y, backward):
    """Forward (backward=False): y = window sums / divisor. Backward: x is dx (zeroed here), y
    is dy, and each dy / divisor is added over its window."""
    h, w = x.shape[1], x.shape[2]
    oh, ow = y.shape[1], y.shape[2]
    for b in range(x.shape[0]):
        if backward:
            for r in range(h):
                for c in range(w):
                    x[b, r, c] = 0
        for i in range(oh):
            r0, r1, ph_size = _avg_window(i, sh, ph, kh, h)
            for j in range(ow):
                c0, c1, pw_size = _avg_window(j, sw, pw, kw, w)
                if r0 >= r1 or c0 >= c1:
                    if not backward:
                        y[b, i, j] = 0
                    continue
                if divisor:
                    div = divisor
                elif count_include_pad:
                    div = ph_size * pw_size
                else:
                    div = (r1 - r0) * (c1 - c0)
                if backward:
                    g = y[b, i, j] / div
                    for r in range(r0, r1):
                        for c in range(c0, c1):
                            x[b, r, c] += g
                else:
                    s = 0.0
                    for r in range(r0, r1):
                        for c in range(c0, c1):
                            s += x[b, r, c]
                    y[b, i, j] = s / div


@njit(**_PARALLEL)
def _avg_pool_parallel(chunks, x, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, y,
                       backward):
    for k in prange(chunks):
        lo, hi = _bounds(k, chunks, x.shape[0])
        _avg_pool_planes(x[lo:hi], kh, kw, sh, sw, ph, pw, count_include_pad, divisor, y[lo:hi],
                         backward)


def _avg(x, kh, kw, sh, sw, ph, pw, cip, divisor, y, backward):
    chunks = _chunks(max(x.size, y.size * kh * kw), x.shape[0])
    if chunks:
        _avg_pool_parallel(chunks, x, kh, kw, sh, sw, ph, pw, cip, divisor, y, backward)
    else:
        _avg_pool_planes(x, kh, kw, sh, sw, ph, pw, cip, divisor, y, backward)


def avg_pool2d(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad, divisor):
    y = np.empty((x.shape[0], oh, ow), x.dtype)
    _avg(x, kh, kw, sh, sw, ph, pw, bool(count_include_pad), int(divisor), y, False)
    return y


def avg_pool2d_backward(dy, h, w, kh, kw, sh, sw, ph, pw, count_include_pad, divisor):
    dx = np.empty((dy.shape[0], h, w), dy.dtype)
    _avg(dx, kh, kw, sh, sw, ph, pw, bool(count_include_pad), int(divisor), dy, True)
    return dx


# ================================================================ adaptive average pooling
@njit(**_SERIAL)
def _adaptive_planes(x, y, backward):
    """Window i covers [floor(i n / o), ceil((i + 1) n / o)); backward as _avg_pool_planes."""
    h, w = x.shape[1], x.shape[2]
    oh, ow = y.shape[1], y.shape[2]
    for b in range(x.shape[0]):
        if backward:
            for r in range(h):
                for c in range(w):
                    x[b, r, c] = 0
        for i in range(oh):
            r0 = i * h // oh
            r1 = -((-(i + 1) * h) // oh)
            for j in range(ow):
                c0 = j * w // ow
                c1 = -((-(j + 1) * w) // ow)
                div = (r1 - r0) * (c1 - c0)
                if backward:
                    g = y[b, i, j] / div
                    for r in range(r0, r1):
                        for c in range(c0, c1):
                            x[b, r, c] += g
                else:
                    s = 0.0
                    for r in range(r0, r1):
                        for c in range(c0, c1):
                            s += x[b, r, c]
                    y[b, i, j] = s / div


@njit(**_PARALLEL)
def _adaptive_parallel(chunks, x, y, backward):
    for k in prange(chunks):
        lo, hi = _bounds(k, chunks, x.shape[0])
        _adaptive_planes(x[lo:hi], y[lo:hi], backward)


def _adaptive(x, y, backward):
    chunks = _chunks(max(x.size, y.size), x.shape[0])
    if chunks:
        _adaptive_parallel(chunks, x, y, backward)
    else:
        _adaptive_planes(x, y, backward)


def adaptive_avg_pool2d(x, oh, ow):
    y = np.empty((x.shape[0], oh, ow), x.dtype)
    _adaptive(x, y, False)
    return y


def adaptive_avg_pool2d_backward(dy, h, w):
    dx = np.empty((dy.shape[0], h, w), dy.dtype)
    _adaptive(dx, dy, True)
    return dx


# ================================================================ batch norm (N, C, L)
@njit(**_REDUCE)
def _bn_channel(x, c, weight, bias, running_mean, running_var, training, momentum, eps, y,
                mean, invstd):
    n, length = x.shape[0], x.shape[2]
    if training:
        s = 0.0
        for i in range(n):
            for l in range(length):
                s += x[i, c, l]
        mu = s / (n * length)
        q = 0.0                                   # about the mean: no cancellation
        for i in range(n):
            for l in range(length):
                d = x[i, c, l] - mu
                q += d * d
        var = q / (n * length)
        if running_mean.size:
            running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mu
            running_var[c] = ((1 - momentum) * running_var[c]
                              + momentum * q / (n * length - 1))
    else:
        mu = running_mean[c]
        var = running_var[c]
    rs = 1.0 / np.sqrt(var + eps)
    mean[c] = mu
    invstd[c] = rs
    scale = rs * weight[c]           # float64: a float32 mean is off by half an ulp of |mean|
    shift = float(bias[c])
    for i in range(n):
        for l in range(length):
            y[i, c, l] = (x[i, c, l] - mu) * scale + shift


@njit(**_PARALLEL)
def _bn_parallel(x, weight, bias, running_mean, running_var, training, momentum, eps, y, mean,
                 invstd):
    for c in prange(x.shape[1]):
        _bn_channel(x, c, weight, bias, running_mean, running_var, training, momentum, eps, y,
                    mean, invstd)


@njit(**_SERIAL)
def _bn_serial(x, weight, bias, running_mean, running_var, training, momentum, eps, y, mean,
               invstd):
    for c in range(x.shape[1]):
        _bn_channel(x, c, weight, bias, running_mean, running_var, training, momentum, eps, y,
                    mean, invstd)


def batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps):
    y = np.empty_like(x)
    mean = np.empty(x.shape[1], x.dtype)
    invstd = np.empty(x.shape[1], x.dtype)
    fn = _bn_parallel if _chunks(x.size, x.shape[1]) else _bn_serial
    fn(x, weight, bias, running_mean, running_var, bool(training), float(momentum), float(eps),
       y, mean, invstd)
    return y, mean, invstd


@njit(**_REDUCE)
def _bn_backward_channel(dy, x, c, weight, mean, invstd, training, dx, dweight, dbias):
    """db = sum dy, dw = sum dy xhat; training: dx = w invstd (dy - db/M - xhat dw/M),
    eval: dx = w invstd dy."""
    n, length = x.shape[0], x.shape[2]
    mu, rs = mean[c], invstd[c]
    sd = 0.0
    sdx = 0.0
    for i in range(n):
        for l in range(length):
            g = dy[i, c, l]
            sd += g
            sdx += g * (x[i, c, l] - mu)
    dbias[c] = sd
    dweight[c] = sdx * rs
    k = x.dtype.type(weight[c] * rs)
    if training:
        m = n * length
        a = x.dtype.type(sd / m)
        b = x.dtype.type(sdx * rs * rs / m)           # (dw / M) * invstd, on x - mean
        for i in range(n):
            for l in range(length):
                dx[i, c, l] = k * (dy[i, c, l] - a - (x[i, c, l] - mu) * b)
    else:
        for i in range(n):
            for l in range(length):
                dx[i, c, l] = k * dy[i, c, l]


@njit(**_PARALLEL)
def _bn_backward_parallel(dy, x, weight, mean, invstd, training, dx, dweight, dbias):
    for c in prange(x.shape[1]):
        _bn_backward_channel(dy, x, c, weight, mean, invstd, training, dx, dweight, dbias)


@njit(**_SERIAL)
def _bn_backward_serial(dy, x, weight, mean, invstd, training, dx, dweight, dbias):
    for c in range(x.shape[1]):
        _bn_backward_channel(dy, x, c, weight, mean, invstd, training, dx, dweight, dbias)


def batch_norm_backward(dy, x, weight, mean, invstd, training):
    dx = np.empty_like(x)
    dweight = np.empty(x.shape[1], x.dtype)
    dbias = np.empty(x.shape[1], x.dtype)
    fn = _bn_backward_parallel if _chunks(x.size, x.shape[1]) else _bn_backward_serial
    fn(dy, x, weight, mean, invstd, bool(training), dx, dweight, dbias)
    return dx, dweight, dbias


# ================================================================ group norm (N, C, L)
@njit(**_REDUCE)
def _gn_group(x, k, groups, weight, bias, eps, y, mean, rstd):
    """Group k = sample * groups + group: its channels' elements are contiguous."""
    n_i, g = k // groups, k % groups
    cpg = x.shape[1] // groups
    length = x.shape[2]
    m = cpg * length
    s = 0.0
    for c in range(g * cpg, (g + 1) * cpg):
        for l in range(length):
            s += x[n_i, c, l]
    mu = s / m
    q = 0.0
    for c in range(g * cpg, (g + 1) * cpg):
        for l in range(length):
            d = x[n_i, c, l] - mu
            q += d * d
    rs = 1.0 / np.sqrt(q / m + eps)
    mean[n_i, g] = mu
    rstd[n_i, g] = rs
    for c in range(g * cpg, (g + 1) * cpg):
        scale = rs * weight[c]           # float64, as in batch norm
        shift = float(bias[c])
        for l in range(length):
            y[n_i, c, l] = (x[n_i, c, l] - mu) * scale + shift


@njit(**_PARALLEL)
def _gn_parallel(x, groups, weight, bias, eps, y, mean, rstd):
    for k in prange(x.shape[0] * groups):
        _gn_group(x, k, groups, weight, bias, eps, y, mean, rstd)


@njit(**_SERIAL)
def _gn_serial(x, groups, weight, bias, eps, y, mean, rstd):
    for k in range(x.shape[0] * groups):
        _gn_group(x, k, groups, weight, bias, eps, y, mean, rstd)


def group_norm(x, num_groups, weight, bias, eps):
    y = np.empty_like(x)
    mean = np.empty((x.shape[0], num_groups), x.dtype)
    rstd = np.empty((x.shape[0], num_groups), x.dtype)
    fn = _gn_parallel if _chunks(x.size, x.shape[0] * num_groups) else _gn_serial
    fn(x, int(num_groups), weight, bias, float(eps), y, mean, rstd)
    return y, mean, rstd


@njit(**_REDUCE)
def _gn_backward_group(dy, x, k, groups, weight, mean, rstd, dx):
    """dx = rstd (g - mean(g) - xhat mean(g xhat)) over the group, g = dy w."""
    n_i, gi = k // groups, k % groups
    cpg = x.shape[1] // groups
    length = x.shape[2]
    mu, rs = mean[n_i, gi], rstd[n_i, gi]
    sg = 0.0
    sgx = 0.0
    for c in range(gi * cpg, (gi + 1) * cpg):
        wc = weight[c]
        for l in range(length):
            g = dy[n_i, c, l] * wc
            sg += g
            sgx += g * (x[n_i, c, l] - mu)
    m = cpg * length
    a = x.dtype.type(sg / m)
    b = x.dtype.type(sgx * rs * rs / m)
    rs_t = x.dtype.type(rs)
    mu_t = x.dtype.type(mu)
    for c in range(gi * cpg, (gi + 1) * cpg):
        wc = weight[c]
        for l in range(length):
            dx[n_i, c, l] = rs_t * (dy[n_i, c, l] * wc - a - (x[n_i, c, l] - mu_t) * b)


@njit(**_REDUCE)
def _gn_param_channel(dy, x, c, groups, mean, rstd, dweight, dbias):
    cpg = x.shape[1] // groups
    sw = 0.0
    sb = 0.0
    for n_i in range(x.shape[0]):
        mu, rs = mean[n_i, c // cpg], rstd[n_i, c // cpg]
        for l in range(x.shape[2]):
            g = dy[n_i, c, l]
            sb += g
            sw += g * (x[n_i, c, l] - mu) * rs
    dweight[c] = sw
    dbias[c] = sb


@njit(**_PARALLEL)
def _gn_backward_parallel(dy, x, groups, weight, mean, rstd, dx, dweight, dbias):
    for k in prange(x.shape[0] * groups):
        _gn_backward_group(dy, x, k, groups, weight, mean, rstd, dx)
    for c in prange(x.shape[1]):
        _gn_param_channel(dy, x, c, groups, mean, rstd, dweight, dbias)


@njit(**_SERIAL)
def _gn_backward_serial(dy, x, groups, weight, mean, rstd, dx, dweight, dbias):
    for k in range(x.shape[0] * groups):
        _gn_backward_group(dy, x, k, groups, weight, mean, rstd, dx)
    for c in range(x.shape[1]):
        _gn_param_channel(dy, x, c, groups, mean, rstd, dweight, dbias)


def group_norm_backward(dy, x, weight, mean, rstd, num_groups):
    dx = np.empty_like(x)
    dweight = np.empty(x.shape[1], x.dtype)
    dbias = np.empty(x.shape[1], x.dtype)
    fn = _gn_backward_parallel if _chunks(x.size, x.shape[0] * num_groups) else \
        _gn_backward_serial
    fn(dy, x, int(num_groups), weight, mean, rstd, dx, dweight, dbias)
    return dx, dweight, dbias
