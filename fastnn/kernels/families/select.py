"""Selection and sampling over rows: topk (generation's top-k filter) and multinomial
(generation's sampler). Both work on the last axis of a 2-D (N, C) array in the backends.

topk's order, the same on every backend (PyTorch leaves ties unspecified; fastnn fixes them):
  largest=True    NaN first (PyTorch treats NaN as larger than any number), then values
                  descending; equal values (and NaNs among themselves) by ascending index
  largest=False   values ascending, NaN last; equal values by ascending index
  sorted=False    the same k elements, in ascending index order (PyTorch: unspecified order)
Backends keep a k-entry heap per row (O(C log k), ~O(C) for random data) instead of sorting the
row, so (1, 50000) with k=50 costs one pass over the row.

multinomial: the uniforms come IN as an array (fastnn.indexing.multinomial draws them from the
generator), so every backend draws the same samples from the same uniforms. PyTorch's random
stream cannot be reproduced: its samples differ, its distribution does not. The method is the
inverse CDF, in float64 in every backend whatever the dtype of p:
  cdf[j]          = p[0] + ... + p[j], summed left to right in float64 (np.cumsum's order)
  sample          = the first j with cdf[j] > u * cdf[C-1] (u in [0, 1)), so a category of
                    probability 0 is never drawn; if rounding leaves no such j (u * total
                    rounded up to total), the last category of non-zero probability
  replacement     every sample from the same cdf
  no replacement  sequentially: after each draw the drawn category's probability becomes 0 and
                  the cdf is summed again (O(num_samples * C) per row); once only categories
                  of probability 0 are left (PyTorch then returns those too), the draw is the
                  floor(u * m)-th of the m categories left, in index order
Sums are only additions in one fixed order and each comparison is exact, so the backends agree
bit for bit. C: csrc/select.c; Numba, numpy, CUDA: backends/*/select.py.
"""
import numpy as np

from ..registry import declare
from .._checks import _float_array, get_backend, resolve


# ---------------------------------------------------------------- conformance examples
def _rows_with_ties(rng, dtype, shape):
    """Values on a coarse grid (many ties), with a NaN and +-inf in rows long enough."""
    x = (np.round(rng.standard_normal(shape) * 4) / 2).astype(dtype)
    if shape[-1] >= 20:
        flat = x.reshape(-1, shape[-1])
        flat[0, 3] = np.nan
        flat[-1, 5] = np.inf
        flat[-1, 7] = -np.inf
        flat[-1, 11] = np.nan
        flat[0, 13] = -0.0
    return x


def topk_examples(rng, dtype):
    out = []
    for shape, k in (((1, 1), 1), ((3, 7), 3), ((7,), 7), ((2, 4, 33), 5), ((5, 130), 1),
                     ((2, 1000), 50), ((3, 64), 64)):
        x = _rows_with_ties(rng, dtype, shape)
        for largest in (True, False):
            for srt in (True, False):
                out.append(((x, k), dict(largest=largest, sorted=srt)))
    # strictly monotone rows: every element enters the heap (its worst case)
    ramp = np.arange(300, dtype=dtype).reshape(2, 150)
    out += [((ramp, 20), dict(largest=True)), ((ramp[:, ::-1], 20), dict(largest=False)),
            ((np.zeros((2, 9), dtype), 4), {})]
    return out


def multinomial_examples(rng, dtype):
    out = []
    for (n, c), s in (((1, 1), 1), ((1, 5), 3), ((4, 7), 7), ((3, 130), 20), ((2, 2000), 1)):
        p = rng.random((n, c)).astype(dtype)
        if c > 3:
            p[:, 1] = 0                       # a category that can never be drawn
        u = rng.random((n, s))
        if u.size > 2:
            u.reshape(-1)[:2] = (0.0, np.nextafter(1.0, 0.0))   # the ends of [0, 1)
        for replacement in (True, False):
            if replacement or s <= c:
                out.append(((p, u), dict(replacement=replacement)))
    # without replacement past the non-zero categories: the zero ones follow, uniformly
    p = np.array([[0.0, 3.0, 0.0, 1.0, 0.0]], dtype)
    out.append(((p, rng.random((1, 5))), dict(replacement=False)))
    out.append(((np.array([0.25, 0.0, 0.75], dtype), rng.random(9)), dict(replacement=True)))
    return out


# ---------------------------------------------------------------- topk
def _k(kernel, k, c):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{kernel}: k must be an int, got {type(k).__name__}")
    k = int(k)
    if not 0 <= k <= c:
        raise ValueError(f"{kernel}: k = {k} is out of range: selected index k out of range "
                         f"for a last axis of size {c}")
    return k


@declare(family="select", signature="topk(x (N, C), k in [1, C], largest: bool, sorted: bool) "
         "-> (values (N, k), indices int64 (N, k)); order: see families/select.py",
         doc="The k largest (or smallest) entries of each row, with their int64 indices.",
         examples=topk_examples)
def topk(x, k, largest=True, sorted=True, *, backend=None):
    """The k largest (largest=True) or smallest entries along x's last axis, x (..., C).

    Returns (values (..., k), indices int64 (..., k)), in order best first (sorted=True) or in
    ascending index order (sorted=False); ties go to the lower index, NaN counts as larger than
    any number (as in PyTorch)."""
    be = resolve(backend)
    x = _float_array("topk", "x", x)
    if x.ndim < 1:
        raise ValueError("topk: x must have at least one dimension, got a scalar")
    k = _k("topk", k, x.shape[-1])
    shape = x.shape[:-1] + (k,)
    if k == 0 or x.size == 0:
        return np.empty(shape, x.dtype), np.empty(shape, np.int64)
    v, i = be.topk(x.reshape(-1, x.shape[-1]), k, bool(largest), bool(sorted))
    return v.reshape(shape), i.reshape(shape)


@topk.kernel.set_trusted
def _topk_trusted(x, k, largest=True, sorted=True):
    if (x.ndim == 2 and type(k) is int and 0 < k <= x.shape[1] and x.flags.c_contiguous
            and x.size and (x.dtype == np.float32 or x.dtype == np.float64)):
        return get_backend().topk(x, k, bool(largest), bool(sorted))
    return topk(x, k, largest, sorted)


# ---------------------------------------------------------------- multinomial
def check_probabilities(kernel, p):
    """PyTorch's checks of a multinomial's probabilities p (N, C) (ValueError, same words).
    Two reductions that do not allocate: min (NaN propagates) and each row's max."""
    if p.shape[-1] == 0:
        raise ValueError(f"{kernel}: the probabilities have no categories (last axis of size 0)")
    if p.size == 0:
        return
    top = p.max(axis=-1)
    if not p.min() >= 0 or not np.isfinite(top).all():
        raise ValueError(f"{kernel}: probability tensor contains either `inf`, `nan` or "
                         f"element < 0")
    if not (top > 0).all():
        raise ValueError(f"{kernel}: invalid multinomial distribution (sum of probabilities "
                         f"<= 0)")


@declare(family="select", signature="multinomial(p (N, C), u float64 (N, S) in [0, 1), "
         "replacement: bool) -> int64 (N, S); p finite, >= 0, each row's sum > 0; S <= C "
         "without replacement",
         doc="Categorical samples by the inverse CDF (float64) from given uniforms.",
         examples=multinomial_examples)
def multinomial(p, uniforms, replacement=False, *, backend=None):
    """Category indices drawn from the rows of p (C,) or (N, C) (non-negative weights, not
    necessarily normalized), one per uniform in uniforms (S,) or (N, S), each in [0, 1).

    Returns int64 of uniforms' shape. Without replacement a row's S draws are distinct. The
    method (the same on every backend, bit for bit): see fastnn/kernels/families/select.py."""
    be = resolve(backend)
    p = _float_array("multinomial", "p", p)
    u = np.asarray(uniforms)
    if u.dtype.kind != "f":
        raise TypeError(f"multinomial: uniforms must be a float array, got dtype {u.dtype}")
    u = np.ascontiguousarray(u, dtype=np.float64)
    if p.ndim not in (1, 2):
        raise ValueError(f"multinomial: p must be 1-D or 2-D, got shape {p.shape}")
    if u.ndim != p.ndim or u.shape[:-1] != p.shape[:-1]:
        want = "(S,)" if p.ndim == 1 else f"({p.shape[0]}, S)"
        raise ValueError(f"multinomial: uniforms has shape {u.shape}, expected {want} for p of "
                         f"shape {p.shape}")
    if u.size and not ((u >= 0) & (u < 1)).all():
        raise ValueError("multinomial: uniforms must lie in [0, 1)")
    check_probabilities("multinomial", p)
    s, c = u.shape[-1], p.shape[-1]
    if not replacement and s > c:
        raise ValueError(f"multinomial: cannot sample n_sample > prob_dist.size(-1) samples "
                         f"without replacement ({s} > {c})")
    if u.size == 0:
        return np.empty(u.shape, np.int64)
    out = be.multinomial(p.reshape(-1, c), u.reshape(-1, s), bool(replacement))
    return out.reshape(u.shape)
