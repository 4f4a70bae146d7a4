"""Selection, sampling and scans on fastnn Tensors, in PyTorch's dialect.

    values, indices = fastnn.topk(logits, 50)          # a named tuple, as torch.return_types
    ids = fastnn.multinomial(probs, 1, generator=g)
    y = x.gather(1, idx); x.scatter_add_(0, idx, src); c = x.cumprod(0)

Functions (each also a Tensor method, attached at the end of this module):
  topk, sort, argsort, msort, kthvalue,       order: NaN counts as larger than any number;
  median, cummax, cummin                      sort/argsort are always stable (equal values
                                              keep their index order, so `stable` changes
                                              nothing); topk's ties go to the lower index
  multinomial                                 uniforms from the generator, then the
                                              `multinomial` kernel (inverse CDF in float64;
                                              see fastnn/kernels/families/select.py)
  unique, bincount, nonzero, argwhere, searchsorted, bucketize
  gather, take_along_dim, scatter(_), scatter_add(_), scatter_reduce(_), index_select,
  index_add(_)
  cumsum(_), cumprod(_)

Gradients, where PyTorch has them: topk, sort, msort, kthvalue, median, cummax and cummin
scatter(-add) the gradient back to where each value came from; gather and take_along_dim
scatter-add it; scatter and scatter_add gather it for src (and zero it,
for scatter, where input was overwritten); index_select index-adds it; index_add index-selects
it; cumsum's is the reversed cumsum; cumprod's handles zeros exactly (the first zero of a slice
gets the product of the others, the ones after it get 0), as PyTorch's does. All but cumprod,
scatter_reduce and scatter with reduce= also record their backward on Tensors (create_graph=True).

topk on float32/float64 runs the `topk` kernel (the current backend); other dtypes and the rest
use numpy. Index errors are IndexRangeError: both an IndexError and a RuntimeError (PyTorch
raises one or the other), with PyTorch's words.
"""
import builtins
import math
import numbers
import operator
from collections import namedtuple

import numpy as np

from .kernels import trusted as T
from .tensor import Tensor, _dtype, _gen, _inplace, _node, _on_gpu, _random_on_device

__all__ = ["topk", "sort", "argsort", "msort", "kthvalue", "median", "cummax", "cummin",
           "take_along_dim", "multinomial", "unique", "gather", "scatter",
           "scatter_add", "scatter_reduce", "index_select", "index_add", "nonzero", "argwhere",
           "bincount", "cumsum", "cumprod", "searchsorted", "bucketize", "return_types",
           "IndexRangeError"]

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


class IndexRangeError(IndexError, RuntimeError):
    """An index out of range: PyTorch raises RuntimeError (gather, scatter) or IndexError
    (index_select); this is both."""


class SamplingError(RuntimeError, ValueError):
    """A bad multinomial distribution: PyTorch's RuntimeError, and a ValueError."""


class _ReturnTypes:
    """torch.return_types: the named tuples of (values, indices)."""
    topk = namedtuple("topk", ["values", "indices"])
    sort = namedtuple("sort", ["values", "indices"])
    kthvalue = namedtuple("kthvalue", ["values", "indices"])
    median = namedtuple("median", ["values", "indices"])
    cummax = namedtuple("cummax", ["values", "indices"])
    cummin = namedtuple("cummin", ["values", "indices"])


return_types = _ReturnTypes()


# ---------------------------------------------------------------- helpers
def _t(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def _arr(x):
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def _dim(dim, ndim):
    """dim normalized for a tensor of ndim dims (a 0-d tensor takes dim 0 or -1)."""
    n = builtins.max(ndim, 1)
    dim = operator.index(dim)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim % n


def _index(fn, index):
    idx = _arr(index)
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"{fn}(): Expected dtype int64 for index, got {idx.dtype}")
    return idx.astype(np.int64, copy=False)


def _contig(a, dtype=None):
    """np.ascontiguousarray(a, dtype) that keeps device storage on its device."""
    if type(a) is np.ndarray or not _on_gpu(a):
        return np.ascontiguousarray(a, dtype=dtype)
    return (a if dtype is None or a.dtype == dtype else a.astype(dtype)).contiguous()


def _check_bounds(idx, size, dim):
    # a device index is checked by the device kernels that use it (clamped, and IndexError at
    # the next synchronization, as CUDA's device-side assert): reading it here would wait
    if idx.size and not _on_gpu(idx):
        bad = (idx < 0) | (idx >= size)
        if bad.any():
            raise IndexRangeError(f"index {int(idx[bad].reshape(-1)[0])} is out of bounds for "
                                  f"dimension {dim} with size {size}")


def _full_index(idx, ax):
    """The advanced index that addresses, for each element of idx, position idx along axis ax
    and its own position along the others (gather/scatter's addressing)."""
    grids = np.ogrid[tuple(slice(0, n) for n in idx.shape)]
    return tuple(idx if i == ax else grids[i] for i in range(idx.ndim))


def _head(shape):
    return tuple(slice(0, n) for n in shape)


def _order(d, ax, descending):
    """Stable argsort of d along ax; NaN is the largest value (first when descending)."""
    if not descending:
        return np.argsort(d, axis=ax, kind="stable")
    n = d.shape[ax]
    rev = np.argsort(np.flip(d, ax), axis=ax, kind="stable")
    return (n - 1) - np.flip(rev, ax)


def _scatter_back_t(shape, ax, idx, out_shape, add=False):
    """The same backward on Tensors (recorded, for create_graph): g scattered (or scatter-added,
    where positions repeat) into zeros of `shape` at idx along ax, reshaped to out_shape."""
    idx = _contig(idx)

    def tb(g):
        z = Tensor(np.zeros_like(g._data, shape=shape))
        fn = scatter_add if add else scatter
        return (fn(z, ax, idx, g.reshape(idx.shape)).reshape(out_shape),)
    return tb


def _scatter_back(shape, ax, idx, dtype):
    """Backward of 'values taken from positions idx along ax' (positions distinct per slice)."""
    def backward(g):
        gi = np.zeros_like(g, shape=shape)         # (on g's device)
        np.put_along_axis(gi, idx, g, axis=ax)
        return (gi,)
    return backward


# ---------------------------------------------------------------- sorting and top-k
def topk(input, k, dim=-1, largest=True, sorted=True, *, out=None):
    """The k largest (or smallest) elements along dim: (values, indices), as torch.topk."""
    a = _t(input)
    d = a._data
    x = d.reshape(1) if d.ndim == 0 else d
    ax = _dim(dim, d.ndim)
    c = x.shape[ax]
    k = operator.index(k)
    if not 0 <= k <= c:
        raise RuntimeError(f"selected index k out of range (k = {k}, dimension {ax} has size "
                           f"{c})")
    xm = np.moveaxis(x, ax, -1)
    lead = xm.shape[:-1]
    if d.dtype.kind == "f" and x.size and k:
        rows = _contig(xm.reshape(math.prod(lead), c),
                       dtype=d.dtype if d.dtype in (_F32, _F64) else _F32)
        _, i = T.topk(rows, k, bool(largest), bool(sorted))
        i = i.reshape(lead + (k,))
    else:
        i = _order(xm, -1, bool(largest))[..., :k]
        if not sorted:
            i = np.sort(i, axis=-1)
    idx = _contig(np.moveaxis(i, -1, ax))
    values = np.take_along_axis(x, idx, axis=ax)
    if d.ndim == 0:
        values, idx = values.reshape(()), idx.reshape(())
    ix = idx.reshape(x.shape[:ax] + (k,) + x.shape[ax + 1:])
    bw = _scatter_back(x.shape, ax, ix, d.dtype)
    v = _node(values, (a,), (lambda g: (bw(g.reshape(ix.shape))[0].reshape(d.shape),)),
              tb=_scatter_back_t(x.shape, ax, ix, d.shape))
    return return_types.topk(v, Tensor(idx.astype(np.int64)))


def sort(input, dim=-1, descending=False, stable=False, *, out=None):
    """(values, indices) sorted along dim, as torch.sort; always stable; NaN sorts as the
    largest value."""
    a = _t(input)
    d = a._data
    x = d.reshape(1) if d.ndim == 0 else d
    ax = _dim(dim, d.ndim)
    idx = _order(x, ax, bool(descending))
    values = np.take_along_axis(x, idx, axis=ax)
    bw = _scatter_back(x.shape, ax, idx, d.dtype)
    v = _node(values.reshape(d.shape), (a,),
              lambda g: (bw(g.reshape(idx.shape))[0].reshape(d.shape),),
              tb=_scatter_back_t(x.shape, ax, idx, d.shape))
    return return_types.sort(v, Tensor(idx.reshape(d.shape).astype(np.int64)))


def argsort(input, dim=-1, descending=False, stable=False):
    """The indices that sort input along dim (stable), as torch.argsort."""
    d = _arr(input)
    x = d.reshape(1) if d.ndim == 0 else d
    return Tensor(_order(x, _dim(dim, d.ndim), bool(descending)).reshape(d.shape)
                  .astype(np.int64))


def msort(input):
    """input sorted along its first dimension, as torch.msort."""
    return sort(input, 0).values


def _pick(a, d, x, ax, pos_idx, keepdim, kind):
    """(values, indices) at the positions pos_idx (keepdim shape, along ax) of x, with the
    gradient scattered back there."""
    values = np.take_along_axis(x, pos_idx, axis=ax)
    out_shape = values.shape if keepdim or d.ndim == 0 else \
        values.shape[:ax] + values.shape[ax + 1:]
    bw = _scatter_back(x.shape, ax, pos_idx, d.dtype)
    v = _node(values.reshape(out_shape), (a,),
              lambda g: (bw(g.reshape(pos_idx.shape))[0].reshape(d.shape),),
              tb=_scatter_back_t(x.shape, ax, pos_idx, d.shape))
    return getattr(return_types, kind)(v, Tensor(pos_idx.reshape(out_shape).astype(np.int64)))


def kthvalue(input, k, dim=-1, keepdim=False, *, out=None):
    """The k-th smallest element along dim (k from 1) and its index, as torch.kthvalue; among
    equal values the one first in index order is taken."""
    a = _t(input)
    d = a._data
    x = d.reshape(1) if d.ndim == 0 else d
    ax = _dim(dim, d.ndim)
    k = operator.index(k)
    if not 1 <= k <= x.shape[ax]:
        raise IndexError(f"kthvalue(): selected number k out of range for dimension {ax} "
                         f"(k = {k}, size {x.shape[ax]})")
    order = _order(x, ax, False)
    pos = np.take(order, [k - 1], axis=ax)
    return _pick(a, d, x, ax, pos, keepdim, "kthvalue")


def median(input, dim=None, keepdim=False, *, out=None):
    """The lower median (of an even count, the smaller middle value), as torch.median: without
    dim a 0-d tensor; with dim (values, indices). NaN propagates: a slice with a NaN gives NaN
    and the index of its first NaN."""
    a = _t(input)
    if dim is None:
        flat = a.reshape(-1) if a._data.ndim != 1 else a
        if flat._data.size == 0:
            return Tensor(np.asarray(np.nan, a._data.dtype))
        return median(flat, 0).values
    d = a._data
    x = d.reshape(1) if d.ndim == 0 else d
    ax = _dim(dim, d.ndim)
    n = x.shape[ax]
    if n == 0:
        raise IndexError(f"median(): Expected reduction dim {ax} to have non-zero size.")
    order = _order(x, ax, False)
    pos = np.take(order, [(n - 1) // 2], axis=ax)
    if d.dtype.kind == "f":
        nan = np.isnan(x)
        has = nan.any(axis=ax, keepdims=True)
        pos = np.where(has, np.argmax(nan, axis=ax, keepdims=True), pos)
    return _pick(a, d, x, ax, pos, keepdim, "median")


def _cumextreme(input, dim, kind):
    a = _t(input)
    d = a._data
    x = d.reshape(1) if d.ndim == 0 else d
    ax = _dim(dim, d.ndim)
    xm = np.moveaxis(x, ax, 0)
    idx = np.zeros(xm.shape, np.int64)
    if xm.shape[0]:
        cur, at = xm[0].copy(), np.zeros(xm.shape[1:], np.int64)
        isf = d.dtype.kind == "f"
        for i in range(xm.shape[0]):
            v = xm[i]
            take = (v >= cur) if kind == "cummax" else (v <= cur)
            if isf:
                take = take | np.isnan(v)
            cur = np.where(take, v, cur)
            at = np.where(take, i, at)
            idx[i] = at
    idx = np.ascontiguousarray(np.moveaxis(idx, 0, ax))
    values = np.take_along_axis(x, idx, axis=ax)
    full = _full_index(idx, ax)

    def backward(g):
        gi = np.zeros(x.shape, g.dtype)
        np.add.at(gi, full, g.reshape(x.shape))
        return (gi.reshape(d.shape),)
    v = _node(values.reshape(d.shape), (a,), backward,
              tb=_scatter_back_t(x.shape, ax, idx, d.shape, add=True))
    return getattr(return_types, kind)(v, Tensor(idx.reshape(d.shape)))


def cummax(input, dim):
    """Running maximum along dim and where it was, as torch.cummax (an equal later value takes
    over the index; NaN, once met, stays)."""
    return _cumextreme(input, dim, "cummax")


def cummin(input, dim):
    """Running minimum along dim and where it was, as torch.cummin."""
    return _cumextreme(input, dim, "cummin")


# ---------------------------------------------------------------- sampling
def multinomial(input, num_samples, replacement=False, *, generator=None, out=None):
    """num_samples category indices per row of input (C,) or (N, C) (non-negative weights),
    as torch.multinomial, with its draws: after the same seed (fastnn.manual_seed or a
    Generator's), the same samples as PyTorch's CPU multinomial."""
    p = _arr(input)
    if p.dtype.kind != "f":
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: "
                           f"{p.dtype}")
    if p.ndim not in (1, 2):
        raise RuntimeError(f"prob_dist must be 1 or 2 dim, got shape {tuple(p.shape)}")
    s = operator.index(num_samples)
    if s <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    if p.dtype not in (_F32, _F64):
        p = p.astype(_F32)
    c = p.shape[-1]
    if not replacement and s > c:
        raise SamplingError(f"cannot sample n_sample > prob_dist.size(-1) samples without "
                            f"replacement ({s} > {c})")
    rows = _contig(p.reshape(-1, c))
    if _on_gpu(rows):   # drawn on the GPU: its uniforms, the kernels' inverse-CDF draws
        u = _random_on_device("rand", (rows.shape[0], s), np.float64, generator,
                              f"cuda:{rows.device_index}", False)._data
        return Tensor(T.multinomial(rows, u, bool(replacement)).reshape(p.shape[:-1] + (s,)))
    try:   # PyTorch's CPU algorithm and draws (fastnn/_torch_rng.py): torch's samples
        ids = _gen(generator).multinomial(rows, s, bool(replacement))
        ids = ids.reshape(p.shape[:-1] + (s,))
    except ValueError as e:
        msg = str(e)
        raise SamplingError(msg.split(": ", 1)[1] if msg.startswith("multinomial: ") else msg) \
            from None
    return Tensor(ids)


# ---------------------------------------------------------------- counting and searching
def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct values (or, with dim, slices) of input, sorted, as torch.unique; with
    return_inverse / return_counts also where each element went and how many there were."""
    d = _arr(input)
    if dim is None:
        vals, inv, counts = np.unique(d.reshape(-1), return_inverse=True, return_counts=True,
                                      equal_nan=False)      # NaNs stay distinct, as in PyTorch
        inv = inv.reshape(d.shape)
    else:
        ax = _dim(dim, d.ndim)
        vals, inv, counts = np.unique(d, return_inverse=True, return_counts=True, axis=ax)
        inv = inv.reshape(-1)
    out = [Tensor(np.asarray(vals, d.dtype))]
    if return_inverse:
        out.append(Tensor(inv.astype(np.int64)))
    if return_counts:
        out.append(Tensor(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def bincount(input, weights=None, minlength=0):
    """Counts of each non-negative integer in the 1-D input (or sums of weights), as
    torch.bincount: int64 counts; float32 or float64 sums, matching weights (else float64)."""
    d = _arr(input)
    if d.ndim != 1 or d.dtype.kind not in "iub" or (d.size and d.min() < 0):
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    minlength = operator.index(minlength)
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    if weights is None:
        return Tensor(np.bincount(d.astype(np.int64), minlength=minlength).astype(np.int64))
    w = _arr(weights)
    if w.ndim != 1 or w.shape[0] != d.shape[0]:
        raise RuntimeError("weights should be 1-d and have the same length as input")
    dt = w.dtype if w.dtype in (_F32, _F64) else _F64
    return Tensor(np.bincount(d.astype(np.int64), weights=w.astype(np.float64),
                              minlength=minlength).astype(dt))


def nonzero(input, *, out=None, as_tuple=False):
    """The indices of the non-zero elements: (n, ndim) int64, or one 1-D tensor per dim with
    as_tuple=True, as torch.nonzero."""
    d = _arr(input)
    if as_tuple:
        if d.ndim == 0:
            return (Tensor(np.arange(1 if d else 0, dtype=np.int64)),)
        return tuple(Tensor(i.astype(np.int64)) for i in np.nonzero(d))
    return Tensor(np.argwhere(d).astype(np.int64))


def argwhere(input):
    """nonzero(input): (n, ndim) int64 indices of the non-zero elements."""
    return nonzero(input)


def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None,
                 sorter=None, out=None):
    """Where each value of input would go in sorted_sequence's innermost dimension to keep it
    sorted, as torch.searchsorted (side='left': the first such place; 'right': the last)."""
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"side can only be 'left' or 'right' but got {side!r}")
        if right and side == "left":
            raise RuntimeError("side and right can't be set to opposites, got side of left while "
                               "right was True")
        right = side == "right"
    seq = _arr(sorted_sequence)
    scalar = not isinstance(input, (Tensor, np.ndarray)) and np.ndim(input) == 0
    vals = np.asarray(_arr(input))
    if sorter is not None:
        seq = np.take_along_axis(seq, _arr(sorter).astype(np.int64), axis=-1)
    s = "right" if right else "left"
    if seq.ndim <= 1:
        res = np.searchsorted(seq.reshape(-1), vals, side=s)
    else:
        if scalar or vals.shape[:-1] != seq.shape[:-1]:
            raise RuntimeError(f"torch.searchsorted(): boundaries tensor should be 1 dimension "
                               f"or the first N-1 dimensions of boundaries tensor and input "
                               f"value tensor must match, but we got boundaries tensor "
                               f"{list(seq.shape)} and input value tensor {list(vals.shape)}")
        flat_s = seq.reshape(-1, seq.shape[-1])
        flat_v = vals.reshape(-1, vals.shape[-1])
        res = np.stack([np.searchsorted(a, b, side=s) for a, b in zip(flat_s, flat_v)]) \
            .reshape(vals.shape)
    return Tensor(np.asarray(res, np.int32 if out_int32 else np.int64))


def bucketize(input, boundaries, *, out_int32=False, right=False, out=None):
    """The bucket of each value of input among the 1-D boundaries, as torch.bucketize."""
    if _arr(boundaries).ndim != 1:
        raise RuntimeError("boundaries tensor must be 1 dimension")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


# ---------------------------------------------------------------- gather and scatter
def _gather_checks(fn, d, ax, idx, src=None):
    if idx.ndim != builtins.max(d.ndim, 1) and not (idx.ndim == 0 and d.ndim <= 1):
        raise RuntimeError(f"{fn}(): Index tensor must have the same number of dimensions as "
                           f"{'self' if src is None else 'input'} tensor")
    for i in range(idx.ndim):
        if i != ax and d.ndim and idx.shape[i] > d.shape[i]:
            raise RuntimeError(f"Size does not match at dimension {i} expected index "
                               f"{list(idx.shape)} to be no larger than self {list(d.shape)} "
                               f"apart from dimension {ax}")
        if src is not None and idx.shape[i] > src.shape[i]:
            raise RuntimeError(f"Size does not match at dimension {i} expected index "
                               f"{list(idx.shape)} to be no larger than src {list(src.shape)}")
    _check_bounds(idx, d.shape[ax] if d.ndim else 1, ax)


def gather(input, dim, index, *, sparse_grad=False, out=None):
    """out[i][j][k] = input[index[i][j][k]][j][k] (for dim 0), as torch.gather."""
    a = _t(input)
    d = a._data
    idx = _index("gather", index)
    ax = _dim(dim, d.ndim)
    _gather_checks("gather", d, ax, idx)
    x = d.reshape(1) if d.ndim == 0 else d
    ix = idx.reshape(1) if idx.ndim == 0 else idx
    values = np.take_along_axis(x[tuple(slice(0, n) if i != ax else slice(None)
                                        for i, n in enumerate(ix.shape))], ix, axis=ax)
    shape = d.shape
    full = _full_index(ix, ax)

    def backward(g):
        gi = np.zeros_like(g, shape=x.shape)       # (on g's device)
        np.add.at(gi, full, g.reshape(ix.shape))
        return (gi.reshape(shape),)
    return _node(values.reshape(idx.shape), (a,), backward,
                 tb=_scatter_back_t(x.shape, ax, ix, shape, add=True))


def take_along_dim(input, indices, dim=None, *, out=None):
    """torch.take_along_dim: gather with input and indices broadcast against each other
    (except along dim); without dim, both are flattened."""
    a = _t(input)
    idx = _index("take_along_dim", indices)
    if dim is None:
        return gather(a.reshape(-1), 0, idx.reshape(-1))
    ax = _dim(dim, a._data.ndim)
    if idx.ndim != a._data.ndim:
        raise RuntimeError("torch.take_along_dim(): input and indices should have the same "
                           "number of dimensions")
    sa, si = list(a._data.shape), list(idx.shape)
    sa[ax] = si[ax] = 1
    b = list(np.broadcast_shapes(tuple(sa), tuple(si)))
    ea, ei = b.copy(), b.copy()
    ea[ax], ei[ax] = a._data.shape[ax], idx.shape[ax]
    if tuple(ea) != tuple(a._data.shape):
        a = a.expand(*ea)
    return gather(a, ax, np.broadcast_to(idx, ei))


def _src_tensor(src):
    return src if isinstance(src, Tensor) else Tensor(np.asarray(src))


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """input with src's values (or the scalar value) written at index along dim, as
    torch.scatter: out[index[i][j]][j] = src[i][j] (dim 0). reduce='add'|'multiply' combines
    with what is there instead (no gradient then, as in PyTorch)."""
    if src is None and value is None:
        raise TypeError("scatter() missing the src tensor or the value")
    if isinstance(src, numbers.Number):
        src, value = None, src
    a = _t(input)
    d = a._data
    idx = _index("scatter", index)
    ax = _dim(dim, d.ndim)
    s = _src_tensor(src) if src is not None else None
    _gather_checks("scatter", d, ax, idx, None if s is None else
                   (s._data.reshape(1) if s._data.ndim == 0 else s._data))
    if reduce not in (None, "add", "multiply"):
        raise RuntimeError(f"reduce argument must be either add or multiply, got {reduce!r}")
    x = d.reshape(1) if d.ndim == 0 else d
    ix = idx.reshape(1) if idx.ndim == 0 else idx
    full = _full_index(ix, ax)
    if s is None and _on_gpu(x) and isinstance(value, numbers.Number):
        vals = np.full_like(x, value, shape=ix.shape)
    elif s is None:
        vals = np.broadcast_to(np.asarray(value).astype(d.dtype), ix.shape)
    else:
        sd = s._data.reshape(1) if s._data.ndim == 0 else s._data
        vals = sd[_head(ix.shape)].astype(d.dtype, copy=False)
    out = x.copy()
    if reduce is None:
        out[full] = vals
    elif reduce == "add":
        np.add.at(out, full, vals)
    else:
        np.multiply.at(out, full, vals)
    out = out.reshape(d.shape)
    if reduce == "multiply":
        if a.requires_grad or (s is not None and s.requires_grad):
            raise RuntimeError("scatter(): the derivative for reduce='multiply' is not "
                               "implemented")
        return Tensor(out)
    parents = (a,) if s is None else (a, s)
    sshape = None if s is None else s._data.shape

    def backward(g):
        gx = g.reshape(x.shape)
        gi = gx.copy()
        if reduce is None:
            gi[full] = 0
        if s is None:
            return (gi.reshape(d.shape),)
        gs = np.zeros_like(g, shape=sshape if len(sshape) else (1,))
        gs[_head(ix.shape)] = gx[full]
        return gi.reshape(d.shape), gs.reshape(sshape)

    def tb(g):
        gx = g.reshape(x.shape)
        gi = (scatter(gx, ax, ix, 0.0) if reduce is None else gx).reshape(d.shape)
        if s is None:
            return (gi,)
        return gi, gather(gx, ax, ix).reshape(sshape)
    same = s is None or tuple(ix.shape) == tuple(s._data.shape) or \
        (s._data.ndim == 0 and ix.shape == (1,))
    return _node(out, parents, backward, tb=tb if same else None)


def scatter_add(input, dim, index, src):
    """input with src scatter-added at index along dim: out[index[i][j]][j] += src[i][j]
    (dim 0), as torch.scatter_add."""
    return scatter(input, dim, index, _t(src), reduce="add")


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    """torch.scatter_reduce with reduce 'sum', 'prod', 'mean', 'amax' or 'amin' (forward;
    the gradient for 'sum' only)."""
    if reduce == "sum":
        if include_self:
            return scatter_add(input, dim, index, src)
        a = _t(input)
        idx = _index("scatter_reduce", index)
        ax = _dim(dim, a._data.ndim)
        cleared = scatter(a, ax, idx, 0)
        return scatter_add(cleared, ax, idx, src)
    if reduce not in ("prod", "mean", "amax", "amin"):
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got "
                           f"{reduce}")
    a, s = _t(input), _t(src)
    if a.requires_grad or s.requires_grad:
        raise RuntimeError(f"scatter_reduce(): the derivative for reduce={reduce!r} is not "
                           f"implemented in fastnn")
    d = a._data
    idx = _index("scatter_reduce", index)
    ax = _dim(dim, d.ndim)
    _gather_checks("scatter_reduce", d, ax, idx, s._data)
    full = _full_index(idx, ax)
    vals = s._data[_head(idx.shape)].astype(d.dtype, copy=False)
    out = np.array(d, copy=True)
    touched = np.zeros(d.shape, bool)
    touched[full] = True
    if not include_self:
        fill = {"prod": 1, "mean": 0, "amax": -np.inf, "amin": np.inf}[reduce]
        if d.dtype.kind in "iu" and reduce in ("amax", "amin"):
            info = np.iinfo(d.dtype)
            fill = info.min if reduce == "amax" else info.max
        out[touched] = fill
    if reduce == "prod":
        np.multiply.at(out, full, vals)
    elif reduce == "amax":
        np.maximum.at(out, full, vals)
    elif reduce == "amin":
        np.minimum.at(out, full, vals)
    else:
        np.add.at(out, full, vals)
        count = np.zeros(d.shape, np.int64)
        np.add.at(count, full, 1)
        count = count + (1 if include_self else 0)
        count = np.maximum(count, 1)
        if d.dtype.kind == "f":
            out = np.where(touched, out / count, out).astype(d.dtype)
        else:
            out = np.where(touched, np.floor_divide(out, count), out).astype(d.dtype)
    return Tensor(out)


# ---------------------------------------------------------------- index_select, index_add
def _index_1d(fn, index):
    idx = _arr(index)
    if idx.dtype.kind not in "iu":
        raise IndexError(f"{fn}(): Expected dtype int32/int64 for index, got {idx.dtype}")
    if idx.ndim > 1:
        raise IndexError(f"{fn}(): Index is supposed to be a vector")
    return idx.reshape(-1).astype(np.int64)


def index_select(input, dim, index):
    """The slices of input at the given indices along dim, as torch.index_select."""
    a = _t(input)
    d = a._data
    ax = _dim(dim, d.ndim)
    idx = _index_1d("index_select", index)
    x = d.reshape(1) if d.ndim == 0 else d
    n = x.shape[ax]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)][0]
        raise IndexRangeError(f"index out of range in self: index {int(bad)} for dimension {ax} "
                              f"with size {n}")
    values = np.take(x, idx, axis=ax)
    if d.ndim == 0:
        values = values.reshape(np.shape(_arr(index)))

    def backward(g):
        gi = np.zeros(x.shape, g.dtype)
        np.add.at(np.moveaxis(gi, ax, 0), idx, np.moveaxis(g.reshape(values.shape if d.ndim
                                                                     else (idx.size,)), ax, 0))
        return (gi.reshape(d.shape),)

    def tb(g):
        z = Tensor(np.zeros(x.shape, g._data.dtype))
        gv = g.reshape(values.shape if d.ndim else (idx.size,))
        return (index_add(z, ax, idx, gv).reshape(d.shape),)
    return _node(values, (a,), backward, tb=tb)


def index_add(input, dim, index, source, *, alpha=1):
    """input with alpha * source's slices added at the given indices along dim, as
    torch.index_add."""
    a, s = _t(input), _t(source)
    d, sd = a._data, s._data
    ax = _dim(dim, d.ndim)
    idx = _index_1d("index_add", index)
    x = d.reshape(1) if d.ndim == 0 else d
    sx = sd.reshape(1) if sd.ndim == 0 else sd
    if sx.ndim != x.ndim or sx.shape[ax] != idx.size or \
            any(sx.shape[i] != x.shape[i] for i in range(x.ndim) if i != ax):
        raise RuntimeError(f"index_add_(): source {list(sd.shape)} does not fit self "
                           f"{list(d.shape)} with {idx.size} indices along dimension {ax}")
    n = x.shape[ax]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)][0]
        raise IndexRangeError(f"index_add_(): index {int(bad)} is out of bounds for dimension "
                              f"{ax} with size {n}")
    out = np.array(x, copy=True)
    add = sx if alpha == 1 else sx * alpha
    np.add.at(np.moveaxis(out, ax, 0), idx, np.moveaxis(add.astype(d.dtype, copy=False), ax, 0))

    def backward(g):
        gx = g.reshape(x.shape)
        gs = np.take(gx, idx, axis=ax)
        if alpha != 1:
            gs = gs * alpha
        return g, gs.astype(g.dtype, copy=False).reshape(sd.shape)

    def tb(g):
        gs = index_select(g.reshape(x.shape), ax, idx)
        return g, (gs if alpha == 1 else gs * alpha).reshape(sd.shape)
    return _node(out.reshape(d.shape), (a, s), backward, tb=tb)


# ---------------------------------------------------------------- scans
def _scan_dtype(d, dtype):
    if dtype is not None:
        return _dtype(dtype)
    return np.dtype(np.int64) if d.dtype.kind in "iub" else d.dtype


def cumsum(input, dim, *, dtype=None, out=None):
    """Cumulative sums along dim, as torch.cumsum: integer and bool inputs give int64;
    float32 sums accumulate in float64 (as PyTorch's CPU kernel) and round once."""
    a = _t(input)
    d = a._data
    ax = _dim(dim, d.ndim)
    dt = _scan_dtype(d, dtype)
    x = d.reshape(1) if d.ndim == 0 else d
    acc = np.float64 if dt == _F32 else dt
    y = np.cumsum(x, axis=ax, dtype=acc).astype(dt).reshape(d.shape)
    src = d.dtype

    def backward(g):
        gx = g.reshape(x.shape)
        gi = np.flip(np.cumsum(np.flip(gx, ax), axis=ax), ax)
        return (gi.reshape(d.shape).astype(src, copy=False),)
    def tb(g):
        gx = g.reshape(x.shape)
        gi = cumsum(gx.flip(ax), ax).flip(ax).reshape(d.shape)
        return (gi if gi.dtype == src else gi.to(src),)
    if d.dtype.kind != "f" or dt.kind != "f":
        return Tensor(y)
    return _node(y, (a,), backward, tb=tb)


def _cumprod_grad(x, y, g, ax):
    """d/dx of sum(g * cumprod(x)) along ax, exact with zeros (as PyTorch's cumprod_backward):
    before a slice's first zero, reversed-cumsum(g * y) / x; at it, the sum over later j of
    g[j] times the product of x[:j+1] without that zero; after it, 0."""
    xm, ym, gm = (np.moveaxis(v, ax, -1) for v in (x, y, g))
    n = xm.shape[-1]
    zero = xm == 0
    has = zero.any(axis=-1)
    first = np.where(has, zero.argmax(axis=-1), n)          # first zero, n if none
    pos = np.arange(n)
    before = pos < first[..., None]
    rc = np.flip(np.cumsum(np.flip(gm * ym, -1), axis=-1), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        grad = np.where(before, rc / np.where(before, xm, 1), 0)
    if has.any():
        at = pos == first[..., None]
        x1 = np.where(at, 1, xm)                            # the first zero replaced by 1
        y1 = np.cumprod(x1, axis=-1)
        tail = np.where(pos >= first[..., None], gm * y1, 0).sum(axis=-1)
        grad = np.where(at, tail[..., None], grad)
    return np.moveaxis(grad, -1, ax).astype(x.dtype, copy=False)


def cumprod(input, dim, *, dtype=None, out=None):
    """Cumulative products along dim, as torch.cumprod: integer and bool inputs give int64;
    the gradient is exact where the input has zeros."""
    a = _t(input)
    d = a._data
    ax = _dim(dim, d.ndim)
    dt = _scan_dtype(d, dtype)
    x = d.reshape(1) if d.ndim == 0 else d
    acc = np.float64 if dt == _F32 else dt
    y = np.cumprod(x, axis=ax, dtype=acc).astype(dt)
    if d.dtype.kind != "f" or dt.kind != "f":
        return Tensor(y.reshape(d.shape))
    xs = x.astype(dt, copy=False)

    def backward(g):
        return (_cumprod_grad(xs, y, g.reshape(x.shape), ax).reshape(d.shape)
                .astype(d.dtype, copy=False),)
    return _node(y.reshape(d.shape), (a,), backward, saved=(a,))


# ---------------------------------------------------------------- Tensor methods
def _scatter_(self, dim, index, src=None, *, value=None, reduce=None):
    return _inplace(self, scatter, dim, index, src, value=value, reduce=reduce)


def _scatter_add_(self, dim, index, src):
    return _inplace(self, scatter_add, dim, index, src)


def _scatter_reduce_(self, dim, index, src, reduce, *, include_self=True):
    return _inplace(self, scatter_reduce, dim, index, src, reduce, include_self=include_self)


def _index_add_(self, dim, index, source, *, alpha=1):
    return _inplace(self, index_add, dim, index, source, alpha=alpha)


def _cumsum_(self, dim, *, dtype=None):
    return _inplace(self, cumsum, dim, dtype=dtype)


def _cumprod_(self, dim, *, dtype=None):
    return _inplace(self, cumprod, dim, dtype=dtype)


def _tensor_multinomial(self, num_samples, replacement=False, *, generator=None):
    return multinomial(self, num_samples, replacement, generator=generator)


def _tensor_nonzero(self, *, as_tuple=False):
    return nonzero(self, as_tuple=as_tuple)


_METHODS = dict(topk=topk, sort=sort, argsort=argsort, msort=msort, kthvalue=kthvalue,
                median=median, cummax=cummax, cummin=cummin, take_along_dim=take_along_dim,
                multinomial=_tensor_multinomial, unique=unique, bincount=bincount,
                nonzero=_tensor_nonzero, argwhere=argwhere, gather=gather, scatter=scatter,
                scatter_=_scatter_, scatter_add=scatter_add, scatter_add_=_scatter_add_,
                scatter_reduce=scatter_reduce, scatter_reduce_=_scatter_reduce_,
                index_select=index_select, index_add=index_add, index_add_=_index_add_,
                cumsum=cumsum, cumsum_=_cumsum_, cumprod=cumprod, cumprod_=_cumprod_)
for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)
del _name, _fn
