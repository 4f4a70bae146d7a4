"""PyTorch's top-level functions (and their Tensor methods) that real programs call and fastnn's
core does not define: special functions (lgamma, digamma, erfinv ...), torch.inverse/det/svd,
distances (cdist), shape helpers (atleast_2d, block_diag, rot90, diff ...), the constants
(torch.pi, torch.inf), a dense stand-in for sparse COO tensors (to_sparse, sparse_coo_tensor,
torch.sparse.mm: same numbers, dense storage), torch.jit's pass-through decorators and
torch.testing.assert_close.

fastnn/__init__.py adds each name in NAMES to fastnn unless the core already has one, and
METHODS to Tensor unless it already has the method, so the core's own versions win."""
import builtins
import contextlib
import functools
import math
import types
from collections import namedtuple

import numpy as np

from .tensor import (Tensor, Size, _node, _f, _unbroadcast, _binary_args, tensor, zeros, stack,
                     cat, where, sqrt, exp, log, abs as _abs, sum as _sum, maximum, matmul,
                     unsqueeze, flatten, narrow, flip, diagonal, eye, ones_like, zeros_like,
                     clamp, amax, einsum, get_default_dtype, meshgrid, _dtype, no_grad)
from . import linalg as _linalg
from . import special as _special

# ---------------------------------------------------------------- constants
e, pi, inf, nan = math.e, math.pi, math.inf, math.nan
newaxis = None


class _Format:
    """torch.contiguous_format / channels_last / preserve_format (fastnn stores every tensor
    row-major; the names are accepted and change nothing)."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"torch.{self.name}"

    def __eq__(self, other):   # also equal to its name (Tensor.layout is the string 'strided')
        return other is self or other == self.name if isinstance(other, str) else other is self

    def __hash__(self):
        return hash(self.name)


contiguous_format, channels_last, preserve_format = (
    _Format("contiguous_format"), _Format("channels_last"), _Format("preserve_format"))
channels_last_3d = _Format("channels_last_3d")
strided = _Format("strided")
sparse_coo = _Format("sparse_coo")
memory_format = _Format
layout = _Format


# ---------------------------------------------------------------- special functions
lgamma = _special.gammaln
digamma = _special.digamma
polygamma = _special.polygamma
erfinv = _special.erfinv
erfc = _special.erfc
i0 = _special.i0
sinc = _special.sinc
logit = _special.logit
xlogy = _special.xlogy
mvlgamma = _special.multigammaln


def _unary(x, fn, deriv):
    xd = _f(x)
    out = np.asarray(fn(xd)).astype(xd.dtype, copy=False)
    return _node(out, (x,), lambda g: (g * deriv(xd),), saved=(x,))


def asinh(x):
    return _unary(x, np.arcsinh, lambda a: 1 / np.sqrt(a * a + 1))


def acosh(x):
    return _unary(x, np.arccosh, lambda a: 1 / np.sqrt(a * a - 1))


def atanh(x):
    return _unary(x, np.arctanh, lambda a: 1 / (1 - a * a))


arcsinh, arccosh, arctanh = asinh, acosh, atanh


def logaddexp(a, b):
    """log(exp(a) + exp(b)), without overflow."""
    a, b = _binary_args(a, b)
    m = maximum(a, b).detach()
    m = where(m.abs() == math.inf, zeros_like(m), m)
    return m + log(exp(a - m) + exp(b - m))


def logaddexp2(a, b):
    return logaddexp(a * math.log(2), b * math.log(2)) / math.log(2)


def hypot(a, b):
    return sqrt(a * a + b * b)


def copysign(a, b):
    a, b = _binary_args(a, b)
    neg = Tensor(np.signbit(_f(b)))
    return where(neg, -_abs(a), _abs(a))


def signbit(a):
    return Tensor(np.signbit(a._data))


def heaviside(input, values):
    x = input._data
    v = values._data if isinstance(values, Tensor) else np.asarray(values)
    return Tensor(np.heaviside(x, v).astype(x.dtype))


def deg2rad(x):
    return x * (math.pi / 180)


def rad2deg(x):
    return x * (180 / math.pi)


def frac(x):
    return x - x.trunc()


def positive(x):
    return x


def isneginf(x):
    return Tensor(np.isneginf(x._data))


def isposinf(x):
    return Tensor(np.isposinf(x._data))


def isreal(x):
    return Tensor(np.isreal(x._data))


def is_complex(x):
    return x._data.dtype.kind == "c"


def is_nonzero(x):
    if x.numel() != 1:
        raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
    return bool(x._data.reshape(()))


def gcd(a, b):
    a, b = _binary_args(a, b)
    return Tensor(np.gcd(a._data, b._data))


def lcm(a, b):
    a, b = _binary_args(a, b)
    return Tensor(np.lcm(a._data, b._data))


# ---------------------------------------------------------------- complex numbers
# Gradients follow PyTorch's convention for a complex z: dL/dRe z + i dL/dIm z.
def real(input):
    a = input._data
    if a.dtype.kind != "c":
        return input
    return _node(a.real.copy(), (input,), lambda g: (g.astype(a.dtype),))


def imag(input):
    a = input._data
    if a.dtype.kind != "c":
        raise RuntimeError("imag is not implemented for tensors with non-complex dtypes.")
    return _node(a.imag.copy(), (input,), lambda g: ((1j * g).astype(a.dtype),))


def conj(input):
    a = input._data
    if a.dtype.kind != "c":
        return input
    return _node(np.conj(a), (input,), lambda g: (np.conj(g),))


def angle(input):
    a = _f(input)
    out = np.angle(a).astype(a.real.dtype)
    if a.dtype.kind != "c":
        return _node(out, (input,), lambda g: (np.zeros_like(a),))

    def backward(g):
        m2 = (a * np.conj(a)).real
        with np.errstate(divide="ignore", invalid="ignore"):
            return ((np.where(m2 == 0, 0, g * 1j * a / m2)).astype(a.dtype),)
    return _node(out, (input,), backward)


def view_as_real(input):
    a = input._data
    if a.dtype.kind != "c":
        raise RuntimeError("view_as_real is only supported for complex tensors")
    out = np.stack([a.real, a.imag], -1)
    return _node(out, (input,), lambda g: ((g[..., 0] + 1j * g[..., 1]).astype(a.dtype),))


def view_as_complex(input):
    a = _f(input)
    if a.shape[-1:] != (2,):
        raise RuntimeError("Tensor must have a last dimension of size 2")
    out = (a[..., 0] + 1j * a[..., 1]).astype(np.complex128 if a.dtype == np.float64
                                                else np.complex64)
    return _node(out, (input,), lambda g: (np.stack([g.real, g.imag], -1).astype(a.dtype),))


def complex(real, imag):
    r, i = _f(real), _f(imag)
    out = (r + 1j * i).astype(np.complex128 if r.dtype == np.float64 else np.complex64)
    return _node(out, (real, imag), lambda g: (_unbroadcast(g.real, r.shape).astype(r.dtype),
                                               _unbroadcast(g.imag, i.shape).astype(i.dtype)))


def polar(abs, angle):
    r, t = _f(abs), _f(angle)
    e = np.exp(1j * t)
    out = (r * e).astype(np.complex128 if r.dtype == np.float64 else np.complex64)
    return _node(out, (abs, angle),
                 lambda g: (_unbroadcast((np.conj(g) * e).real, r.shape).astype(r.dtype),
                            _unbroadcast((np.conj(g) * 1j * r * e).real, t.shape)
                            .astype(t.dtype)))


# ---------------------------------------------------------------- linear algebra (torch.*)
inverse = _linalg.inv
det = _linalg.det
logdet = _linalg.logdet
matrix_power = _linalg.matrix_power
pinverse = lambda input, rcond=1e-15: _linalg.pinv(input, rtol=rcond)  # noqa: E731
chain_matmul = lambda *matrices: _linalg.multi_dot(list(matrices))  # noqa: E731


def slogdet(A):
    return _linalg.slogdet(A)


def cholesky(A, upper=False):
    return _linalg.cholesky(A, upper=upper)


def cholesky_solve(B, L, upper=False):
    """X with (L L^T) X = B, from the Cholesky factor L (U^T U for upper=True)."""
    if upper:
        y = _linalg.solve_triangular(L.mT, B, upper=False)
        return _linalg.solve_triangular(L, y, upper=True)
    y = _linalg.solve_triangular(L, B, upper=False)
    return _linalg.solve_triangular(L.mT, y, upper=True)


def cholesky_inverse(L, upper=False):
    n = L.shape[-1]
    return cholesky_solve(eye(n, dtype=L.dtype).expand(L.shape), L, upper)


_SVD = namedtuple("svd", ["U", "S", "V"])
_QR = namedtuple("qr", ["Q", "R"])
_TRI = namedtuple("triangular_solve", ["solution", "cloned_coefficient"])


def svd(input, some=True, compute_uv=True):
    """torch.svd: U, S, V (V, not V^T), reduced when some=True."""
    u, s, vh = _linalg.svd(input, full_matrices=not some)
    if not compute_uv:
        return _SVD(zeros_like(u).detach(), s, zeros_like(vh.mT).detach())
    return _SVD(u, s, vh.mT)


def qr(input, some=True):
    return _QR(*_linalg.qr(input, "reduced" if some else "complete"))


def triangular_solve(b, A, upper=True, transpose=False, unitriangular=False):
    M = A.mT if transpose else A
    x = _linalg.solve_triangular(M, b, upper=upper != transpose, unitriangular=unitriangular)
    return _TRI(x, A.clone())


def cross(input, other, dim=None):
    if dim is None:   # torch's old default: the first dim of size 3
        dim = next((i for i, s in enumerate(np.broadcast_shapes(input.shape, other.shape))
                    if s == 3), -1)
    return _linalg.cross(input, other, dim=dim)


def kron(a, b):
    """The Kronecker product (any number of dims)."""
    nd = builtins.max(a.ndim, b.ndim)
    a = a.reshape((1,) * (nd - a.ndim) + tuple(a.shape))
    b = b.reshape((1,) * (nd - b.ndim) + tuple(b.shape))
    sa = []
    for s in a.shape:
        sa += [s, 1]
    sb = []
    for s in b.shape:
        sb += [1, s]
    out = a.reshape(sa) * b.reshape(sb)
    return out.reshape([x * y for x, y in zip(a.shape, b.shape)])


def dist(input, other, p=2):
    return _linalg.vector_norm(input - other, p)


def _cdist_p2(x1, x2):
    a, b = _f(x1), _f(x2)
    diff = a[..., :, None, :] - b[..., None, :, :]
    out = np.sqrt((diff * diff).sum(-1))

    def backward(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(out == 0, 0.0, g / out)[..., None] * diff
        return (_unbroadcast(w.sum(-2), a.shape), _unbroadcast(-w.sum(-3), b.shape))
    return _node(out.astype(a.dtype), (x1, x2), backward, saved=(x1, x2))


def cdist(x1, x2, p=2.0, compute_mode=None):
    """Pairwise distances between the rows of x1 (.., P, M) and x2 (.., R, M): (.., P, R)."""
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: "
                           f"{x1.shape[-1]} X2: {x2.shape[-1]}")
    if p == 2:
        return _cdist_p2(x1, x2)
    diff = unsqueeze(x1, -2) - unsqueeze(x2, -3)
    return _linalg.vector_norm(diff, p, dim=-1)


def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """Matrices whose diagonal (offset) holds the last dim of input."""
    n = input.shape[-1] + builtins.abs(offset)
    idx = np.arange(input.shape[-1])
    rows, cols = (idx, idx + offset) if offset >= 0 else (idx - offset, idx)
    sel = np.zeros((input.shape[-1], n, n), dtype=_f(input).dtype)
    sel[idx, rows, cols] = 1
    out = einsum("...k,kij->...ij", input, Tensor(sel))
    nd = out.ndim
    d1, d2 = dim1 % nd, dim2 % nd
    if (d1, d2) != (nd - 2, nd - 1):
        out = out.movedim((nd - 2, nd - 1), (d1, d2))
    return out


def tril_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    r, c = np.tril_indices(row, offset, col)
    return Tensor(np.stack([r, c]).astype(_dtype(dtype) or np.int64))


def triu_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    r, c = np.triu_indices(row, offset, col)
    return Tensor(np.stack([r, c]).astype(_dtype(dtype) or np.int64))


def block_diag(*tensors):
    mats = [t.reshape(1, -1) if t.ndim == 1 else (t.reshape(1, 1) if t.ndim == 0 else t)
            for t in tensors]
    dt = np.result_type(*[m._data.dtype for m in mats])
    cols = builtins.sum(m.shape[1] for m in mats)
    rows, c0 = [], 0
    for m in mats:
        m = m.to(Tensor(np.zeros((), dt)).dtype)
        parts = []
        if c0:
            parts.append(zeros(m.shape[0], c0, dtype=m.dtype))
        parts.append(m)
        rest = cols - c0 - m.shape[1]
        if rest:
            parts.append(zeros(m.shape[0], rest, dtype=m.dtype))
        rows.append(cat(parts, 1) if len(parts) > 1 else m)
        c0 += m.shape[1]
    return cat(rows, 0)


def cartesian_prod(*tensors):
    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return stack([g.reshape(-1) for g in grids], 1)


def combinations(input, r=2, with_replacement=False):
    import itertools
    n = input.shape[0]
    it = itertools.combinations_with_replacement(range(n), r) if with_replacement \
        else itertools.combinations(range(n), r)
    idx = np.array(list(it), dtype=np.int64).reshape(-1, r)
    if idx.shape[0] == 0:
        return Tensor(np.empty((0, r), _f(input).dtype if input._data.dtype.kind == "f"
                               else input._data.dtype))
    return stack([input[Tensor(idx[:, k])] for k in range(r)], 1)


def rot90(input, k=1, dims=(0, 1)):
    d0, d1 = dims
    k %= 4
    if k == 1:
        return flip(input, [d1]).transpose(d0, d1)
    if k == 2:
        return flip(input, [d0, d1])
    if k == 3:
        return flip(input, [d0]).transpose(d0, d1)
    return input.clone()


def diff(input, n=1, dim=-1, prepend=None, append=None):
    if prepend is not None or append is not None:
        parts = ([prepend] if prepend is not None else []) + [input] + \
            ([append] if append is not None else [])
        input = cat(parts, dim)
    for _ in range(n):
        length = input.shape[dim]
        input = narrow(input, dim, 1, length - 1) - narrow(input, dim, 0, length - 1)
    return input


def atleast_1d(*tensors):
    out = [t.reshape(1) if t.ndim == 0 else t for t in _flat_args(tensors)]
    return out[0] if len(out) == 1 else tuple(out)


def atleast_2d(*tensors):
    out = [t.reshape(1, -1) if t.ndim < 2 else t for t in _flat_args(tensors)]
    return out[0] if len(out) == 1 else tuple(out)


def atleast_3d(*tensors):
    res = []
    for t in _flat_args(tensors):
        if t.ndim == 0:
            t = t.reshape(1, 1, 1)
        elif t.ndim == 1:
            t = t.reshape(1, -1, 1)
        elif t.ndim == 2:
            t = unsqueeze(t, -1)
        res.append(t)
    return res[0] if len(res) == 1 else tuple(res)


def _flat_args(tensors):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        return list(tensors[0])
    return list(tensors)


def column_stack(tensors):
    return cat([t.reshape(-1, 1) if t.ndim < 2 else t for t in tensors], 1)


def row_stack(tensors):
    return cat([t.reshape(1, -1) if t.ndim < 2 else t for t in tensors], 0)


def dstack(tensors):
    return cat(list(atleast_3d(*tensors)) if len(tensors) > 1 else [atleast_3d(tensors[0])], 2)


def _split_sections(input, sections, dim):
    from .tensor import tensor_split
    return tuple(tensor_split(input, sections, dim))


def hsplit(input, sections):
    return _split_sections(input, sections, 1 if input.ndim > 1 else 0)


def vsplit(input, sections):
    return _split_sections(input, sections, 0)


def dsplit(input, sections):
    return _split_sections(input, sections, 2)


def broadcast_shapes(*shapes):
    return Size(np.broadcast_shapes(*[(s,) if isinstance(s, int) else tuple(s) for s in shapes]))


def _public(np_dt):
    return Tensor(np.zeros((), np_dt)).dtype


def result_type(tensor1, tensor2):
    """The dtype of tensor1 op tensor2 under PyTorch's promotion (a Python scalar does not
    widen a tensor of the same kind)."""
    a, b = tensor1, tensor2
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return _public(_torch_promote(a._data.dtype, b._data.dtype, a.ndim == 0, b.ndim == 0))
    t, s = (a, b) if isinstance(a, Tensor) else (b, a)
    dt = t._data.dtype
    if isinstance(s, bool):
        return t.dtype
    if isinstance(s, int) and dt.kind in "biuf":
        return t.dtype if dt.kind != "b" else _public(np.int64)
    if isinstance(s, float):
        return t.dtype if dt.kind == "f" else get_default_dtype()
    return t.dtype


def _torch_promote(da, db, a_scalar, b_scalar):
    if a_scalar != b_scalar:   # a 0-d tensor does not widen a dimensioned one of its kind
        dim_dt, sc_dt = (db, da) if a_scalar else (da, db)
        rank = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
        if rank[sc_dt.kind] <= rank[dim_dt.kind]:
            return dim_dt
        if sc_dt.kind == "f" and dim_dt.kind != "f":
            return np.dtype(np.float32)
    return np.promote_types(da, db)


def promote_types(type1, type2):
    return _public(np.promote_types(np.dtype(_dtype(type1)), np.dtype(_dtype(type2))))


def can_cast(from_, to):
    f, t = np.dtype(_dtype(from_)), np.dtype(_dtype(to))
    order = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
    return order[f.kind] <= order[t.kind]


def trapezoid(y, x=None, *, dx=None, dim=-1):
    n = y.shape[dim]
    left, right = narrow(y, dim, 0, n - 1), narrow(y, dim, 1, n - 1)
    if x is None:
        return _sum((left + right) * 0.5, dim) * (1.0 if dx is None else dx)
    dxs = diff(x, dim=dim if x.ndim > 1 else -1)
    if x.ndim == 1 and y.ndim > 1:
        shape = [1] * y.ndim
        shape[dim] = n - 1
        dxs = dxs.reshape(shape)
    return _sum((left + right) * 0.5 * dxs, dim)


trapz = trapezoid


def cumulative_trapezoid(y, x=None, *, dx=None, dim=-1):
    n = y.shape[dim]
    seg = (narrow(y, dim, 0, n - 1) + narrow(y, dim, 1, n - 1)) * 0.5
    seg = seg * (diff(x, dim=dim) if x is not None else (1.0 if dx is None else dx))
    return seg.cumsum(dim)


def vander(x, N=None, increasing=False):
    n = x.shape[0] if N is None else N
    powers = stack([x ** k for k in range(n)], 1)
    return powers if increasing else flip(powers, [1])


def cov(input, *, correction=1, fweights=None, aweights=None):
    """The covariance of the variables in input's rows (observations in columns)."""
    x = input if input.ndim == 2 else input.reshape(1, -1)
    if fweights is None and aweights is None:
        n = x.shape[1]
        xm = x - x.mean(1, keepdim=True)
        c = matmul(xm, xm.T) / builtins.max(n - correction, 0)
    else:
        w = None
        if fweights is not None:
            w = fweights.to(x.dtype)
        if aweights is not None:
            w = aweights.to(x.dtype) if w is None else w * aweights.to(x.dtype)
        wsum = w.sum()
        avg = (x * w).sum(1, keepdim=True) / wsum
        xm = x - avg
        norm = wsum - correction * ((w * aweights.to(x.dtype)).sum() / wsum
                                    if aweights is not None else 1)
        c = matmul(xm * w, xm.T) / norm
    return c.squeeze() if input.ndim < 2 else c


def corrcoef(input):
    c = cov(input)
    if c.ndim == 0:
        return c / c
    d = sqrt(diagonal(c))
    return clamp(c / d.unsqueeze(1) / d.unsqueeze(0), -1, 1)


def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """The q-th quantiles (linear interpolation between order statistics, as torch's default),
    differentiable through the sort."""
    from .indexing import sort
    x = flatten(input) if dim is None else input
    d = 0 if dim is None else dim % input.ndim
    scalar_q = not isinstance(q, Tensor) and np.ndim(q) == 0
    qs = np.atleast_1d(q._data if isinstance(q, Tensor) else np.asarray(q, np.float64))
    if np.any((qs < 0) | (qs > 1)):
        raise RuntimeError("quantile() q values must be in the range [0, 1]")
    srt = sort(x, d)[0]
    n = x.shape[d]
    outs = []
    for qv in qs:
        pos = float(qv) * (n - 1)
        lo, hi = int(math.floor(pos)), int(math.ceil(pos))
        if interpolation == "lower":
            hi = lo
        elif interpolation == "higher":
            lo = hi
        elif interpolation == "nearest":
            lo = hi = int(np.round(pos))
        a, b = narrow(srt, d, lo, 1), narrow(srt, d, hi, 1)
        if interpolation == "midpoint":
            v = (a + b) * 0.5
        else:
            v = a + (b - a) * (pos - lo) if hi != lo else a
        if not keepdim:
            v = v.squeeze(d)
        elif dim is None:
            v = v.reshape((1,) * input.ndim)
        outs.append(v)
    return outs[0] if scalar_q else stack(outs, 0)


def nanquantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    a = np.nanquantile(_f(input), np.asarray(q._data if isinstance(q, Tensor) else q), axis=dim,
                       keepdims=keepdim, method=interpolation)
    return Tensor(np.asarray(a).astype(_f(input).dtype))


def logcumsumexp(input, dim):
    m = amax(input, dim, keepdim=True).detach()
    m = where(m.abs() == math.inf, zeros_like(m), m)
    return log(exp(input - m).cumsum(dim)) + m


def histc(input, bins=100, min=0, max=0):
    x = _f(input).ravel()
    lo, hi = float(min), float(max)
    if lo == hi:
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    counts, _ = np.histogram(x[(x >= lo) & (x <= hi)], bins=bins, range=(lo, hi))
    return Tensor(counts.astype(_f(input).dtype))


ModeResult = namedtuple("mode", ["values", "indices"])


def mode(input, dim=-1, keepdim=False):
    """The most frequent value along dim (the smallest of ties) and an index where it occurs
    (the last one, as PyTorch's CPU kernel)."""
    a = np.moveaxis(input._data, dim, -1)
    flat = a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)
    vals, idxs = [], []
    for row in flat:
        u, c = np.unique(row, return_counts=True)
        v = u[np.argmax(c)]
        vals.append(v)
        idxs.append(np.nonzero(row == v)[0][-1])
    shape = a.shape[:-1]
    v = np.array(vals, a.dtype).reshape(shape)
    i = np.array(idxs, np.int64).reshape(shape)
    if keepdim:
        v, i = np.expand_dims(v, dim), np.expand_dims(i, dim)
    return ModeResult(Tensor(v), Tensor(i))


def renorm(input, p, dim, maxnorm):
    """Each slice along dim rescaled to p-norm at most maxnorm."""
    dims = tuple(d for d in range(input.ndim) if d != dim % input.ndim)
    norms = _linalg.vector_norm(input, p, dim=dims, keepdim=True)
    factor = where(norms > maxnorm, maxnorm / (norms + 1e-7), ones_like(norms))
    return input * factor.detach()


def addr(input, vec1, vec2, *, beta=1, alpha=1):
    return beta * input + alpha * (unsqueeze(vec1, 1) * unsqueeze(vec2, 0))


def vdot(a, b):
    return _sum(a * b)


def sum_to_size(input, *size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    target = tuple(size)
    lead = input.ndim - len(target)
    dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(target)
                                       if s == 1 and input.shape[lead + i] != 1)
    out = _sum(input, dims, keepdim=True) if dims else input
    return out.reshape(target)


def fill_diagonal_(input, fill_value, wrap=False):
    a = input._data
    n = builtins.min(a.shape)
    idx = np.arange(n)
    with no_grad():
        if a.ndim == 2 and wrap and a.shape[0] > a.shape[1] + 1:
            step = a.shape[1] + 1
            flat = np.arange(0, a.shape[0] * a.shape[1], step)
            rows, cols = np.divmod(flat, a.shape[1])
            keep = rows % (a.shape[1] + 1) != a.shape[1]
            input[Tensor(rows[keep]), Tensor(cols[keep])] = fill_value
        else:
            input[tuple(Tensor(idx) for _ in range(a.ndim))] = fill_value
    return input


def take(input, index):
    return flatten(input)[index]


def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    a = input._data.ravel() if dim is None else input._data
    if dim is not None:
        raise NotImplementedError("unique_consecutive(dim=...) is not supported")
    if a.size == 0:
        keep = np.zeros(0, bool)
    else:
        keep = np.concatenate([[True], a[1:] != a[:-1]])
    out = [Tensor(a[keep])]
    if return_inverse:
        out.append(Tensor((np.cumsum(keep) - 1).reshape(input._data.shape).astype(np.int64)))
    if return_counts:
        starts = np.nonzero(keep)[0]
        out.append(Tensor(np.diff(np.append(starts, a.size)).astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def softplus(input, beta=1.0, threshold=20.0):
    from .nn.losses import softplus as _sp
    return _sp(input, beta, threshold)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    from .nn import functional as F
    return F.cosine_similarity(x1, x2, dim, eps)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    from .nn import functional as F
    return F.pairwise_distance(x1, x2, p, eps, keepdim)


def pdist(input, p=2):
    """The distances between all pairs of rows i < j, as a flat vector."""
    n = input.shape[0]
    r, c = np.triu_indices(n, 1)
    d = input[Tensor(r)] - input[Tensor(c)]
    if p == 2:   # zero-safe gradient, as cdist's
        return _cdist_p2(input[Tensor(r)].unsqueeze(1), input[Tensor(c)].unsqueeze(1)) \
            .reshape(-1)
    return _linalg.vector_norm(d, p, dim=-1)


def typename(obj):
    if isinstance(obj, Tensor):
        return {"float32": "torch.FloatTensor", "float64": "torch.DoubleTensor",
                "float16": "torch.HalfTensor", "int64": "torch.LongTensor",
                "int32": "torch.IntTensor", "int16": "torch.ShortTensor",
                "int8": "torch.CharTensor", "uint8": "torch.ByteTensor",
                "bool": "torch.BoolTensor"}.get(obj._data.dtype.name, "torch.Tensor")
    return type(obj).__module__ + "." + type(obj).__qualname__


_interop_threads = [1]


def set_num_interop_threads(n):
    _interop_threads[0] = int(n)


def get_num_interop_threads():
    return _interop_threads[0]


def set_flush_denormal(mode):
    return False


# ---------------------------------------------------------------- sparse COO (dense storage)
def sparse_coo_tensor(indices, values, size=None, *, dtype=None, device=None,
                      requires_grad=False, check_invariants=None, is_coalesced=None):
    """The dense tensor a COO (indices, values) pair describes (duplicates add up, as after
    coalesce()). fastnn has no sparse storage: the result is an ordinary tensor with the same
    numbers, so sparse programs (GCN's normalised adjacency) compute the same results."""
    idx = np.asarray(indices._data if isinstance(indices, Tensor) else indices, np.int64)
    vals = values if isinstance(values, Tensor) else tensor(values)
    if size is None:
        size = tuple(int(m) + 1 for m in idx.max(1)) + tuple(vals.shape[1:])
    size = tuple(size)
    dt = _dtype(dtype) or vals._data.dtype
    out = np.zeros(size, dt)
    np.add.at(out, tuple(idx), vals._data.astype(dt))
    t = Tensor(out)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _to_sparse(self, *args, **kwargs):
    return self


def _to_dense(self, dtype=None, *, masked_grad=None):
    return self if dtype is None else self.to(dtype)


def _coalesce(self):
    return self


def _indices(self):
    return Tensor(np.stack(np.nonzero(self._data)).astype(np.int64))


def _values(self):
    return Tensor(self._data[np.nonzero(self._data)])


sparse = types.ModuleType("fastnn.sparse", "torch.sparse on fastnn's dense stand-in for "
                                           "sparse tensors")
sparse.mm = matmul
sparse.addmm = lambda mat, mat1, mat2, *, beta=1, alpha=1: beta * mat + alpha * matmul(mat1,
                                                                                     mat2)
sparse.sum = lambda input, dim=None, dtype=None: _sum(input) if dim is None else _sum(input,
                                                                                      dim)
sparse.softmax = lambda input, dim, dtype=None: input.softmax(dim)
sparse.log_softmax = lambda input, dim, dtype=None: input.log_softmax(dim)
sparse.FloatTensor = lambda *a, **k: sparse_coo_tensor(*a, **k).float()
spmm = matmul
smm = matmul


# ---------------------------------------------------------------- torch.jit, torch.testing
def _identity_decorator(fn=None, *args, **kwargs):
    if fn is None or not callable(fn):
        return lambda f: f
    return fn


jit = types.ModuleType("fastnn.jit", "torch.jit's decorators, as pass-throughs: fastnn runs "
                                     "Python eagerly")
jit.script = _identity_decorator
jit.ignore = _identity_decorator
jit.unused = _identity_decorator
jit.export = _identity_decorator
jit.trace = lambda func, example_inputs=None, *a, **k: func
jit.trace_module = lambda mod, inputs=None, *a, **k: mod
jit.is_scripting = lambda: False
jit.is_tracing = lambda: False
jit.interface = _identity_decorator
jit.Final = object
jit.annotate = lambda the_type, the_value: the_value
jit.ScriptModule = object
jit.fork = lambda fn, *a, **k: _Done(fn(*a, **k))
jit.wait = lambda fut: fut.value()


class _Done:
    def __init__(self, v):
        self._v = v

    def value(self):
        return self._v

    def wait(self):
        return self._v


def _onnx_export(*args, **kwargs):
    raise NotImplementedError("fastnn.onnx.export: fastnn cannot write ONNX files; save the "
                              "state dict (fastnn.save(model.state_dict(), 'model.pt')) and "
                              "export it from PyTorch")


onnx = types.ModuleType("fastnn.onnx", "torch.onnx's name (export is not supported)")
onnx.export = _onnx_export


def assert_close(actual, expected, *, allow_subclasses=True, rtol=None, atol=None,
                 equal_nan=False, check_device=True, check_dtype=True, check_layout=True,
                 check_stride=False, msg=None):
    """torch.testing.assert_close: same shape (and dtype), values within atol + rtol * |expected|
    (defaults by dtype: 1.3e-6/1e-5 for float32, 1e-7/1e-7 for float64, exact for integers)."""
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        if len(actual) != len(expected):
            raise AssertionError(f"The length of the sequences mismatch: {len(actual)} != "
                                 f"{len(expected)}")
        for a, b in zip(actual, expected):
            assert_close(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan,
                         check_dtype=check_dtype, msg=msg)
        return
    if isinstance(actual, dict) and isinstance(expected, dict):
        for k in expected:
            assert_close(actual[k], expected[k], rtol=rtol, atol=atol, equal_nan=equal_nan,
                         check_dtype=check_dtype, msg=msg)
        return
    a = actual._data if isinstance(actual, Tensor) else np.asarray(actual)
    b = expected._data if isinstance(expected, Tensor) else np.asarray(expected)
    if isinstance(actual, Tensor) and isinstance(expected, Tensor):
        if a.shape != b.shape:
            raise AssertionError(msg or f"The values for attribute 'shape' do not match: "
                                        f"{Size(a.shape)} != {Size(b.shape)}.")
        if check_dtype and a.dtype != b.dtype:
            raise AssertionError(msg or f"The values for attribute 'dtype' do not match: "
                                        f"{actual.dtype} != {expected.dtype}.")
    defaults = {np.dtype(np.float16): (1e-3, 1e-5), np.dtype(np.float32): (1.3e-6, 1e-5),
                np.dtype(np.float64): (1e-7, 1e-7)}
    dr, da = defaults.get(np.result_type(a, b), (0.0, 0.0))
    rtol = dr if rtol is None else rtol
    atol = da if atol is None else atol
    ok = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if not np.all(ok):
        bad = int((~ok).sum())
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        raise AssertionError(msg or f"Tensor-likes are not close!\n\nMismatched elements: "
                                    f"{bad} / {ok.size} ({100 * bad / builtins.max(ok.size, 1):.1f}%)\n"
                                    f"Greatest absolute difference: {np.nanmax(diff)}\n"
                                    f"(up to {atol} allowed, rtol {rtol})")


testing = types.ModuleType("fastnn.testing", "torch.testing.assert_close")
testing.assert_close = assert_close
testing.assert_allclose = lambda actual, expected, rtol=None, atol=None, equal_nan=True, \
    msg="": assert_close(actual, expected, rtol=rtol, atol=atol, equal_nan=equal_nan,
                         check_dtype=False)
testing.make_tensor = lambda *shape, dtype, device=None, low=None, high=None, \
    requires_grad=False, **k: _make_tensor(shape, dtype, low, high, requires_grad)


def _make_tensor(shape, dtype, low, high, requires_grad):
    from .tensor import rand, randint
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    np_dt = np.dtype(_dtype(dtype))
    if np_dt.kind == "f":
        lo, hi = (-9.0 if low is None else low), (9.0 if high is None else high)
        t = rand(*shape, dtype=dtype) * (hi - lo) + lo
        return t.requires_grad_(requires_grad)
    if np_dt.kind == "b":
        return randint(0, 2, tuple(shape)).to(dtype)
    return randint(-9 if low is None else int(low), 10 if high is None else int(high),
                   tuple(shape)).to(dtype)


# ---------------------------------------------------------------- what __init__ attaches
NAMES = ["e", "pi", "inf", "nan", "newaxis", "contiguous_format", "channels_last",
         "channels_last_3d", "preserve_format", "strided", "sparse_coo", "memory_format",
         "layout", "lgamma", "digamma", "polygamma", "erfinv", "erfc", "i0", "sinc", "logit",
         "xlogy", "mvlgamma", "asinh", "acosh", "atanh", "arcsinh", "arccosh", "arctanh",
         "logaddexp", "logaddexp2", "hypot", "copysign", "signbit", "heaviside", "deg2rad",
         "rad2deg", "frac", "positive", "isneginf", "isposinf", "isreal", "is_complex",
         "is_nonzero", "gcd", "lcm", "inverse", "det", "logdet", "slogdet", "matrix_power",
         "pinverse", "chain_matmul", "cholesky", "cholesky_solve", "cholesky_inverse", "svd",
         "qr", "triangular_solve", "cross", "kron", "dist", "cdist", "diag_embed",
         "tril_indices", "triu_indices", "block_diag", "cartesian_prod", "combinations",
         "rot90", "diff", "atleast_1d", "atleast_2d", "atleast_3d", "column_stack",
         "row_stack", "dstack", "hsplit", "vsplit", "dsplit", "broadcast_shapes",
         "result_type", "promote_types", "can_cast", "trapezoid", "trapz",
         "cumulative_trapezoid", "vander", "cov", "corrcoef", "quantile", "nanquantile",
         "logcumsumexp", "histc", "mode", "renorm", "addr", "vdot", "take",
         "unique_consecutive", "softplus", "cosine_similarity", "pairwise_distance", "pdist",
         "typename", "set_num_interop_threads", "get_num_interop_threads",
         "set_flush_denormal", "real", "imag", "conj", "angle", "view_as_real",
         "view_as_complex", "complex", "polar", "sparse_coo_tensor", "sparse", "spmm", "smm", "jit", "testing",
         "onnx"]

# Tensor methods: name -> function(self, ...)
METHODS = {name: globals()[name] for name in (
    "lgamma", "digamma", "erfinv", "erfc", "i0", "sinc", "logit", "xlogy", "mvlgamma",
    "asinh", "acosh", "atanh", "arcsinh", "arccosh", "arctanh", "logaddexp", "logaddexp2",
    "hypot", "copysign", "signbit", "heaviside", "deg2rad", "rad2deg", "frac", "positive",
    "isneginf", "isposinf", "isreal", "inverse", "det", "logdet", "slogdet", "matrix_power",
    "pinverse", "cholesky", "cholesky_solve", "cholesky_inverse", "svd", "qr", "cross", "kron",
    "dist", "diag_embed", "rot90", "diff", "cov", "corrcoef", "quantile", "nanquantile",
    "logcumsumexp", "histc", "mode", "renorm", "addr", "vdot", "take", "unique_consecutive",
    "softplus", "sum_to_size", "fill_diagonal_", "gcd", "lcm", "conj", "angle")}
METHODS.update(polygamma=lambda self, n: polygamma(n, self), to_sparse=_to_sparse,
               to_dense=_to_dense, coalesce=_coalesce, to_sparse_coo=_to_sparse,
               _indices=_indices, _values=_values, indices=_indices, values=_values,
               is_coalesced=lambda self: True, real=property(real), imag=property(imag),
               conj_physical=conj, resolve_conj=lambda self: self,
               # device and storage kinds fastnn tensors never are (torch's is_* properties)
               is_xpu=property(lambda self: False), is_mps=property(lambda self: False),
               is_meta=property(lambda self: False), is_sparse=property(lambda self: False),
               is_quantized=property(lambda self: False),
               is_mkldnn=property(lambda self: False), is_nested=property(lambda self: False),
               is_sparse_csr=property(lambda self: False), layout=property(lambda self: strided),
               is_conj=lambda self: False)
# Tensor methods that are fastnn's own top-level functions, attached where the method is missing
CORE_AS_METHODS = ["mv", "inner", "baddbmm", "addbmm", "trace", "diag", "aminmax", "nanmean",
                   "nansum", "index_put", "select", "sgn", "exp2", "atan2", "fmax", "fmin",
                   "float_power", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
                   "tensor_split", "addmv", "arctan2", "logical_xor", "nan_to_num", "outer",
                   "ger", "swapdims", "fix", "square", "true_divide"]


@functools.wraps(lambda safe_globals: None)
def _safe_globals(safe_globals):
    return contextlib.nullcontext()


_SAFE_GLOBALS = []


def install(namespace, tensor_cls):
    """Add NAMES to the fastnn namespace and METHODS (and CORE_AS_METHODS) to Tensor, each only
    where no definition exists yet (the core's own versions win)."""
    import sys
    for name in NAMES:
        namespace.setdefault(name, globals()[name])
    for name, module in (("sparse", sparse), ("jit", jit), ("testing", testing), ("onnx", onnx)):
        sys.modules.setdefault("fastnn." + name, module)
    # `import torch.backends.cudnn as cudnn`: fastnn.backends' flag namespaces as importable
    # submodules
    backends = sys.modules["fastnn.backends"]
    for name in dir(backends):
        obj = getattr(backends, name)
        if type(obj).__name__ == "_Flags":
            sys.modules.setdefault(f"fastnn.backends.{name}", obj)
    # torch.serialization's allow-list API: fastnn never unpickles classes, so the lists only
    # need to be accepted (programs wrap torch.load in `with safe_globals([...])`)
    ser = sys.modules["fastnn.serialization"]
    for name, fn in (("safe_globals", _safe_globals),
                     ("add_safe_globals", lambda globs: _SAFE_GLOBALS.extend(globs)),
                     ("get_safe_globals", lambda: list(_SAFE_GLOBALS)),
                     ("clear_safe_globals", lambda: _SAFE_GLOBALS.clear())):
        if not hasattr(ser, name):
            setattr(ser, name, fn)
    for name, fn in METHODS.items():
        if not hasattr(tensor_cls, name):
            setattr(tensor_cls, name, fn)
    for name in CORE_AS_METHODS:
        if not hasattr(tensor_cls, name) and name in namespace:
            setattr(tensor_cls, name, namespace[name])
