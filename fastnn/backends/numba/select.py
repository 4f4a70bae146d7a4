"""Numba kernels: topk (a k-entry heap per row) and multinomial (the inverse CDF in float64).

Semantics: fastnn/kernels/families/select.py; the oracle: backends/numpy/select.py. The same
algorithms as csrc/select.c: rows are independent, a prange over them for large inputs, one
thread otherwise. No fastmath: NaN must order as in PyTorch, and multinomial's sums must add in
the one order every backend uses.
"""
import numpy as np
from numba import njit, prange

_SERIAL = dict(cache=True, error_model="numpy")
_PARALLEL = dict(cache=True, error_model="numpy", parallel=True)

PARALLEL_MIN = 1 << 16      # elements below which a kernel runs on one thread
_BLOCK = 32


@njit(**_SERIAL)
def _better(av, ai, bv, bi, largest):
    """a comes before b in topk's order: NaN largest, then by value, then the lower index."""
    an = av != av
    bn = bv != bv
    if an or bn:
        if an and bn:
            return ai < bi
        return an if largest else bn
    if av != bv:
        return av > bv if largest else av < bv
    return ai < bi


@njit(**_SERIAL)
def _sift_down(hv, hi, k, pos, largest):
    """hv/hi: a heap whose root is the worst kept entry."""
    v, i = hv[pos], hi[pos]
    while True:
        ch = 2 * pos + 1
        if ch >= k:
            break
        if ch + 1 < k and _better(hv[ch], hi[ch], hv[ch + 1], hi[ch + 1], largest):
            ch += 1
        if not _better(v, i, hv[ch], hi[ch], largest):
            break
        hv[pos] = hv[ch]
        hi[pos] = hi[ch]
        pos = ch
    hv[pos] = v
    hi[pos] = i


@njit(**_SERIAL)
def _topk_row(x, values, idx, k, largest, srt, hv, hi):
    c = x.shape[0]
    for i in range(k):
        hv[i] = x[i]
        hi[i] = i
    for i in range(k // 2 - 1, -1, -1):
        _sift_down(hv, hi, k, i, largest)
    i = k
    while i < c:
        thr = hv[0]
        if thr != thr:
            if largest:
                break                   # k NaNs kept: nothing later beats them
            for j in range(i, c):
                if _better(x[j], j, hv[0], hi[0], False):
                    hv[0] = x[j]
                    hi[0] = j
                    _sift_down(hv, hi, k, 0, False)
            break
        end = min(i + _BLOCK, c)
        hit = False
        if largest:
            for j in range(i, end):
                hit |= not (x[j] <= thr)
        else:
            for j in range(i, end):
                hit |= x[j] < thr
        if hit:
            for j in range(i, end):
                if _better(x[j], j, hv[0], hi[0], largest):
                    hv[0] = x[j]
                    hi[0] = j
                    _sift_down(hv, hi, k, 0, largest)
        i = end
    if srt:
        for n in range(k, 0, -1):       # pop the worst to the back: best first
            values[n - 1] = hv[0]
            idx[n - 1] = hi[0]
            hv[0] = hv[n - 1]
            hi[0] = hi[n - 1]
            if n > 1:
                _sift_down(hv, hi, n - 1, 0, largest)
    else:
        order = np.argsort(hi[:k])
        for n in range(k):
            values[n] = hv[order[n]]
            idx[n] = hi[order[n]]


@njit(**_SERIAL)
def _topk_serial(x, values, idx, k, largest, srt):
    hv = np.empty(k, x.dtype)
    hi = np.empty(k, np.int64)
    for r in range(x.shape[0]):
        _topk_row(x[r], values[r], idx[r], k, largest, srt, hv, hi)


@njit(**_PARALLEL)
def _topk_parallel(x, values, idx, k, largest, srt):
    for r in prange(x.shape[0]):
        hv = np.empty(k, x.dtype)
        hi = np.empty(k, np.int64)
        _topk_row(x[r], values[r], idx[r], k, largest, srt, hv, hi)


def topk(x, k, largest, sorted):
    n, _ = x.shape
    values = np.empty((n, k), x.dtype)
    idx = np.empty((n, k), np.int64)
    if x.size > PARALLEL_MIN and n > 1:
        _topk_parallel(x, values, idx, k, bool(largest), bool(sorted))
    else:
        _topk_serial(x, values, idx, k, bool(largest), bool(sorted))
    return values, idx


# ================================================================ multinomial
@njit(**_SERIAL)
def _last_positive(w):
    for j in range(w.shape[0] - 1, 0, -1):
        if w[j] > 0:
            return j
    return 0


@njit(**_SERIAL)
def _bisect(cdf, c, t):
    """The first j with cdf[j] > t in the non-decreasing cdf[:c]; c if none."""
    lo = 0
    hi = c
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if cdf[mid] > t:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(**_SERIAL)
def _sample_row(p, u, out, cdf):
    """With replacement: the first j with cdf[j] > u * total, cdf summed left to right (stored
    and bisected: faster than a total then a second scan, even for one sample)."""
    c = p.shape[0]
    acc = 0.0
    for j in range(c):
        acc += np.float64(p[j])
        cdf[j] = acc
    for q in range(u.shape[0]):
        j = _bisect(cdf, c, u[q] * acc)
        out[q] = j if j < c else _last_positive(p)


@njit(**_SERIAL)
def _sample_row_distinct(p, u, out, w, cdf, taken):
    """Without replacement: each draw from the cdf of what is left (drawn categories zeroed)."""
    c = p.shape[0]
    for j in range(c):
        w[j] = np.float64(p[j])
        taken[j] = False
    for q in range(u.shape[0]):
        total = 0.0
        for j in range(c):
            total += w[j]
            cdf[j] = total
        if total > 0:
            pick = _bisect(cdf, c, u[q] * total)
            if pick == c:
                pick = _last_positive(w)
        else:                           # only categories of probability 0 left: uniformly
            m = c - q
            nth = min(int(u[q] * np.float64(m)), m - 1)
            pick = 0
            for j in range(c):
                if not taken[j]:
                    if nth == 0:
                        pick = j
                        break
                    nth -= 1
        out[q] = pick
        w[pick] = 0.0
        taken[pick] = True


@njit(**_SERIAL)
def _multinomial_serial(p, u, out, replacement):
    c = p.shape[1]
    w = np.empty(c, np.float64)
    cdf = np.empty(c, np.float64)
    taken = np.empty(c, np.bool_)
    for r in range(p.shape[0]):
        if replacement:
            _sample_row(p[r], u[r], out[r], cdf)
        else:
            _sample_row_distinct(p[r], u[r], out[r], w, cdf, taken)


@njit(**_PARALLEL)
def _multinomial_parallel(p, u, out, replacement):
    c = p.shape[1]
    for r in prange(p.shape[0]):
        cdf = np.empty(c, np.float64)
        if replacement:
            _sample_row(p[r], u[r], out[r], cdf)
        else:
            w = np.empty(c, np.float64)
            taken = np.empty(c, np.bool_)
            _sample_row_distinct(p[r], u[r], out[r], w, cdf, taken)


def multinomial(p, u, replacement):
    n, c = p.shape
    out = np.empty(u.shape, np.int64)
    work = p.size * (1 if replacement else u.shape[1])
    if work > PARALLEL_MIN and n > 1:
        _multinomial_parallel(p, u, out, bool(replacement))
    else:
        _multinomial_serial(p, u, out, bool(replacement))
    return out
