"""CUDA kernels: topk and multinomial, simple: one thread per row.

Semantics: fastnn/kernels/families/select.py; the oracle: backends/numpy/select.py.
  - topk: k passes over the row, each taking the best element after the previous pick in
    topk's total order (value, NaN largest, then index), so O(k C) per row and no scratch;
    sorted=False then puts the k picks in index order (an insertion sort of k entries);
  - multinomial: the inverse CDF summed left to right in float64, as on the CPU (the same
    additions in the same order, so the same samples); without replacement on a float64 copy
    of p whose drawn entries are zeroed.

Every kernel NAME has NAME_device(...) on device arrays; NAME(...) copies in and out.
"""
import functools

import numpy as np
from numba import cuda

from .common import device_empty, grid_1d, to_device, to_host


@cuda.jit(device=True)
def _better(av, ai, bv, bi, largest):
    an = av != av
    bn = bv != bv
    if an or bn:
        if an and bn:
            return ai < bi
        return an if largest else bn
    if av != bv:
        return av > bv if largest else av < bv
    return ai < bi


@functools.cache
def _topk_kernel():
    @cuda.jit
    def topk(x, values, idx, k, largest, srt):
        n, c = x.shape
        for r in range(cuda.grid(1), n, cuda.gridsize(1)):
            pv = x[r, 0]
            pi = -1                         # no previous pick yet
            for q in range(k):
                bv = x[r, 0]
                bi = -1
                for j in range(c):
                    v = x[r, j]
                    if pi >= 0 and not _better(pv, pi, v, j, largest):
                        continue            # not after the previous pick
                    if bi < 0 or _better(v, j, bv, bi, largest):
                        bv = v
                        bi = j
                values[r, q] = bv
                idx[r, q] = bi
                pv = bv
                pi = bi
            if not srt:
                for q in range(1, k):       # insertion sort by index
                    v = values[r, q]
                    i = idx[r, q]
                    m = q - 1
                    while m >= 0 and idx[r, m] > i:
                        values[r, m + 1] = values[r, m]
                        idx[r, m + 1] = idx[r, m]
                        m -= 1
                    values[r, m + 1] = v
                    idx[r, m + 1] = i
    return topk


def topk_device(x, k, largest, sorted):
    n = x.shape[0]
    values = device_empty((n, k), x.dtype)
    idx = device_empty((n, k), np.int64)
    blocks, threads = grid_1d(n)
    _topk_kernel()[blocks, threads](x, values, idx, k, bool(largest), bool(sorted))
    return values, idx


def topk(x, k, largest, sorted):
    values, idx = topk_device(to_device(x), k, largest, sorted)
    return to_host(values), to_host(idx)


@functools.cache
def _multinomial_kernels():
    @cuda.jit(device=True)
    def last_positive(w, r, c):
        for j in range(c - 1, 0, -1):
            if w[r, j] > 0:
                return j
        return 0

    @cuda.jit
    def with_replacement(p, u, out):
        n, c = p.shape
        for r in range(cuda.grid(1), n, cuda.gridsize(1)):
            total = 0.0
            for j in range(c):
                total += p[r, j]
            for q in range(u.shape[1]):
                t = u[r, q] * total
                acc = 0.0
                pick = c
                for j in range(c):
                    acc += p[r, j]
                    if acc > t:
                        pick = j
                        break
                out[r, q] = pick if pick < c else last_positive(p, r, c)

    @cuda.jit
    def without_replacement(w, u, out, taken):
        n, c = w.shape
        for r in range(cuda.grid(1), n, cuda.gridsize(1)):
            for j in range(c):
                taken[r, j] = 0
            for q in range(u.shape[1]):
                total = 0.0
                for j in range(c):
                    total += w[r, j]
                if total > 0:
                    t = u[r, q] * total
                    acc = 0.0
                    pick = c
                    for j in range(c):
                        acc += w[r, j]
                        if acc > t:
                            pick = j
                            break
                    if pick == c:
                        pick = last_positive(w, r, c)
                else:                       # only categories of probability 0 left
                    m = c - q
                    nth = min(int(u[r, q] * m), m - 1)
                    pick = 0
                    for j in range(c):
                        if taken[r, j] == 0:
                            if nth == 0:
                                pick = j
                                break
                            nth -= 1
                out[r, q] = pick
                w[r, pick] = 0.0
                taken[r, pick] = 1
    return with_replacement, without_replacement


def multinomial_device(p64, u, replacement):
    """p64: float64 device array (N, C) (without replacement it is overwritten)."""
    n = p64.shape[0]
    out = device_empty(u.shape, np.int64)
    blocks, threads = grid_1d(n)
    with_r, without_r = _multinomial_kernels()
    if replacement:
        with_r[blocks, threads](p64, u, out)
    else:
        taken = device_empty(p64.shape, np.uint8)
        without_r[blocks, threads](p64, u, out, taken)
    return out


def multinomial(p, u, replacement):
    p64 = to_device(np.ascontiguousarray(p, dtype=np.float64))
    return to_host(multinomial_device(p64, to_device(u), replacement))
