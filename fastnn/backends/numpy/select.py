"""Reference selection and sampling kernels: topk and multinomial, plain numpy.

Semantics (order of ties and NaN, the inverse-CDF sampler): fastnn/kernels/families/select.py.
"""
import numpy as np


def topk(x, k, largest, sorted):
    """x (N, C) -> (values (N, k), indices int64 (N, k)). A stable sort of each row under
    fastnn's order (lexsort is stable: equal keys keep ascending index order), cut at k."""
    nan = np.isnan(x)
    finite = np.where(nan, 0, x)
    if largest:     # NaN first, then descending
        order = np.lexsort((-finite, ~nan), axis=-1)
    else:           # ascending, NaN last
        order = np.lexsort((finite, nan), axis=-1)
    idx = order[:, :k]
    if not sorted:
        idx = np.sort(idx, axis=1)
    return np.take_along_axis(x, idx, axis=1), idx.astype(np.int64)


def _last_positive(w):
    return int(np.flatnonzero(w > 0)[-1])


def multinomial(p, u, replacement):
    """p (N, C), u float64 (N, S) -> int64 (N, S), by the inverse CDF in float64."""
    p = p.astype(np.float64)
    n, c = p.shape
    out = np.empty(u.shape, np.int64)
    if replacement:
        cdf = np.cumsum(p, axis=1)          # left to right: the order every backend sums in
        for r in range(n):
            j = np.searchsorted(cdf[r], u[r] * cdf[r, -1], side="right")  # first cdf > t
            out[r] = np.where(j < c, j, _last_positive(p[r]))
        return out
    for r in range(n):
        w = p[r].copy()
        left = np.ones(c, bool)
        for s in range(u.shape[1]):
            cdf = np.cumsum(w)
            if cdf[-1] > 0:
                j = int(np.searchsorted(cdf, u[r, s] * cdf[-1], side="right"))
                if j == c:
                    j = _last_positive(w)
            else:           # only categories of probability 0 are left: uniformly among them
                free = np.flatnonzero(left)
                j = int(free[min(int(u[r, s] * len(free)), len(free) - 1)])
            out[r, s] = j
            w[j] = 0.0
            left[j] = False
    return out
