"""fastnn.linalg: torch.linalg on fastnn tensors (numpy's LAPACK underneath), with autograd.

    L = fastnn.linalg.cholesky(A); x = fastnn.linalg.solve(A, b)
    sign, logabsdet = fastnn.linalg.slogdet(A); U, S, Vh = fastnn.linalg.svd(A, full_matrices=False)

Every function takes batches (leading dimensions) as torch.linalg does. Gradients follow the
standard matrix-calculus results (Giles 2008, "An extended collection of matrix derivative
results"; Townsend 2016 for the SVD); the decompositions' gradients, like PyTorch's, assume
distinct eigen/singular values.
"""
from collections import namedtuple

import numpy as np

from .tensor import Tensor, Function, _node, _f
from .tensor import vector_norm as _vector_norm, matrix_norm as _matrix_norm_basic
from types import SimpleNamespace as _NS
from .tensor import (_unbroadcast, amax, amin, broadcast_tensors, clamp, diagonal as _diagonal,
                     eq, gt, lt, movedim, ones_like, squeeze, stack, sum as _sum, unbind,
                     unsqueeze, where, zeros_like)
_t = _NS(_unbroadcast=_unbroadcast, amax=amax, amin=amin, broadcast_tensors=broadcast_tensors,
         clamp=clamp, diagonal=_diagonal, eq=eq, gt=gt, lt=lt, movedim=movedim,
         ones_like=ones_like, squeeze=squeeze, stack=stack, sum=_sum, unbind=unbind,
         unsqueeze=unsqueeze, where=where, zeros_like=zeros_like)

__all__ = ["norm", "vector_norm", "matrix_norm", "inv", "inv_ex", "det", "slogdet", "solve",
           "solve_triangular", "cholesky", "cholesky_ex", "qr", "svd", "svdvals", "eigh",
           "eigvalsh", "pinv", "lstsq", "matrix_rank", "matrix_power", "multi_dot", "cross",
           "vecdot", "diagonal", "cond", "LinAlgError"]


class LinAlgError(RuntimeError):
    """torch.linalg's error for a singular or non-positive-definite input (torch._C._LinAlgError,
    a RuntimeError)."""


SlogdetResult = namedtuple("slogdet", ["sign", "logabsdet"])
QRResult = namedtuple("qr", ["Q", "R"])
SVDResult = namedtuple("svd", ["U", "S", "Vh"])
EighResult = namedtuple("eigh", ["eigenvalues", "eigenvectors"])
LstsqResult = namedtuple("lstsq", ["solution", "residuals", "rank", "singular_values"])
InvExResult = namedtuple("inv_ex", ["inverse", "info"])
CholeskyExResult = namedtuple("cholesky_ex", ["L", "info"])


def _mT(a):
    return np.swapaxes(a, -1, -2)


def _square(A, name):
    if not isinstance(A, Tensor):
        raise TypeError(f"linalg.{name}: expected a Tensor, got {type(A).__name__}")
    s = A._data.shape
    if A._data.ndim < 2 or s[-1] != s[-2]:
        raise RuntimeError(f"linalg.{name}: A must be batches of square matrices, but they are "
                           f"{s[-2] if A._data.ndim >= 2 else ''} by {s[-1] if s else ''} "
                           f"matrices" if A._data.ndim >= 2 else
                           f"linalg.{name}: The input tensor A must have at least 2 dimensions.")
    return _f(A)


def _as_tensor(x, like=None):
    if isinstance(x, Tensor):
        return x
    return Tensor(np.asarray(x, dtype=like._data.dtype if like is not None else None))


# ---------------------------------------------------------------- inverse, det, solve
def inv(A):
    """The inverse of each square matrix in A; a singular A raises LinAlgError."""
    a = _square(A, "inv")
    try:
        y = np.linalg.inv(a)
    except np.linalg.LinAlgError:
        raise LinAlgError("linalg.inv: The diagonal element 1 is zero, the inversion could not "
                          "be completed because the input matrix is singular.") from None
    # d(A^-1) = -A^-1 dA A^-1, so gA = -Y^T g Y^T
    return _node(y, (A,), lambda g: (-_mT(y) @ g @ _mT(y),), save_output=True,
                 tb=lambda g: (-(inv(A).mT @ g @ inv(A).mT),))


def inv_ex(A, *, check_errors=False):
    try:
        return InvExResult(inv(A), Tensor(np.zeros(A._data.shape[:-2], np.int32)))
    except LinAlgError:
        if check_errors:
            raise
        return InvExResult(Tensor(np.full(A._data.shape, np.nan, _f(A).dtype)),
                           Tensor(np.ones(A._data.shape[:-2], np.int32)))


def det(A):
    """The determinant of each square matrix in A."""
    a = _square(A, "det")
    d = np.linalg.det(a).astype(a.dtype)

    def backward(g):
        # d(det A) = det(A) tr(A^-1 dA); through the adjugate-free form for invertible A
        inv_t = _mT(np.linalg.pinv(a)) if np.any(d == 0) else _mT(np.linalg.inv(a))
        return ((np.asarray(g) * d)[..., None, None] * inv_t,)
    return _node(d, (A,), backward, saved=(A,))


class _Slogdet(Function):
    @staticmethod
    def forward(ctx, A):
        a = _f(A)
        sign, logabs = np.linalg.slogdet(a)
        ctx.a = a
        return Tensor(sign.astype(a.dtype)), Tensor(logabs.astype(a.dtype))

    @staticmethod
    def backward(ctx, g_sign, g_logabs):
        # d log|det A| = tr(A^-1 dA); the sign is piecewise constant
        return Tensor(np.asarray(g_logabs._data)[..., None, None] * _mT(np.linalg.inv(ctx.a)))


def slogdet(A):
    """(sign, log|det A|) for each square matrix in A: the stable form of det for large A."""
    _square(A, "slogdet")
    sign, logabs = _Slogdet.apply(A)
    sign = sign.detach()
    return SlogdetResult(sign, logabs)


def logdet(A):
    """log det A (nan where det A < 0), torch.logdet."""
    sign, logabs = slogdet(A)
    return _t.where(_t.lt(sign, 0), Tensor(np.array(np.nan, _f(A).dtype)),
                    _t.where(_t.eq(sign, 0), Tensor(np.array(-np.inf, _f(A).dtype)), logabs))


def _solve_arrays(a, b, vector):
    if vector:
        return np.linalg.solve(a, b[..., None])[..., 0]
    return np.linalg.solve(a, b)


def solve(A, B, *, left=True):
    """X with A X = B (left=True) or X A = B; B may be a batch of vectors (..., n)."""
    a = _square(A, "solve")
    B = _as_tensor(B, A)
    if not left:   # X A = B  <=>  A^T X^T = B^T
        return solve(A.mT, B.mT).mT
    b = _f(B)
    vector = b.ndim == 1 or (b.ndim == a.ndim - 1 and b.shape == a.shape[:-1])
    if b.shape[-1 if vector else -2] != a.shape[-1]:
        raise RuntimeError(f"linalg.solve: Incompatible shapes of A and B for the equation AX = B "
                           f"({tuple(a.shape[-2:])} and {tuple(b.shape)})")
    try:
        x = _solve_arrays(a, b, vector)
    except np.linalg.LinAlgError:
        raise LinAlgError("linalg.solve: The solver failed because the input matrix is "
                          "singular.") from None
    x = x.astype(np.result_type(a.dtype, b.dtype))

    def backward(g):
        gb = _solve_arrays(_mT(a), g, vector)
        ga = -(gb[..., :, None] * x[..., None, :]) if vector else -(gb @ _mT(x))
        return (_t._unbroadcast(ga, a.shape), _t._unbroadcast(gb, b.shape))
    return _node(x, (A, B), backward, saved=(A, B))


def _tri_solve(a, b, upper, unitriangular=False):
    """A^-1 B for triangular A (batched), by numpy's solve on the masked triangle."""
    t = np.triu(a) if upper else np.tril(a)
    if unitriangular:
        n = a.shape[-1]
        t = t - t * np.eye(n, dtype=a.dtype) + np.eye(n, dtype=a.dtype)
    return np.linalg.solve(t, b)


def solve_triangular(A, B, *, upper, left=True, unitriangular=False):
    """X with A X = B for triangular A (only A's upper or lower triangle is read)."""
    a = _square(A, "solve_triangular")
    B = _as_tensor(B, A)
    if not left:
        return solve_triangular(A.mT, B.mT, upper=not upper, unitriangular=unitriangular).mT
    b = _f(B)
    x = _tri_solve(a, b, upper, unitriangular)

    def backward(g):
        gb = _tri_solve(_mT(a), g, not upper, unitriangular)
        ga = -(gb @ _mT(x))
        ga = np.triu(ga, 1 if unitriangular else 0) if upper else \
            np.tril(ga, -1 if unitriangular else 0)
        return (_t._unbroadcast(ga, a.shape), _t._unbroadcast(gb, b.shape))
    return _node(x, (A, B), backward, saved=(A, B))


# ---------------------------------------------------------------- decompositions
def _phi(x):
    """The lower triangle with its diagonal halved (Cholesky's backward)."""
    return np.tril(x) - 0.5 * np.tril(np.triu(x))


def cholesky(A, *, upper=False):
    """The lower-triangular L with A = L L^T (U with A = U^T U for upper=True) for symmetric
    positive-definite A; anything else raises LinAlgError as torch does."""
    a = _square(A, "cholesky")
    try:
        L = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        raise LinAlgError("linalg.cholesky: The factorization could not be completed because "
                          "the input is not positive-definite.") from None

    def backward(g):
        gl = _mT(g) if upper else g
        # Murray (2016): gA = L^-T Phi(L^T gL) L^-1, symmetrised
        p = _phi(_mT(L) @ gl)
        linv = np.linalg.inv(L)
        ga = _mT(linv) @ p @ linv
        return (0.5 * (ga + _mT(ga)),)
    out = _mT(L).copy() if upper else L
    return _node(out, (A,), backward, saved=(A,))


def cholesky_ex(A, *, upper=False, check_errors=False):
    try:
        return CholeskyExResult(cholesky(A, upper=upper),
                                Tensor(np.zeros(A._data.shape[:-2], np.int32)))
    except LinAlgError:
        if check_errors:
            raise
        return CholeskyExResult(Tensor(np.zeros(A._data.shape, _f(A).dtype)),
                                Tensor(np.ones(A._data.shape[:-2], np.int32)))


def _copyltu(m):
    return np.tril(m) + _mT(np.tril(m, -1))


class _QR(Function):
    @staticmethod
    def forward(ctx, A, mode):
        a = _f(A)
        q, r = np.linalg.qr(a, mode="complete" if mode == "complete" else "reduced")
        ctx.q, ctx.r, ctx.mode = q, r, mode
        return Tensor(q.astype(a.dtype)), Tensor(r.astype(a.dtype))

    @staticmethod
    def backward(ctx, gq, gr):
        q, r = ctx.q, ctx.r
        m, n = q.shape[-2], r.shape[-1]
        if ctx.mode == "complete" and m > n or m < n:
            raise NotImplementedError("linalg.qr: the backward is implemented for mode='reduced' "
                                      "with m >= n (as PyTorch's)")
        gq, gr = gq._data, gr._data
        # Walter & Lehmann / Seeger et al.: gA = (gQ + Q copyltu(M)) R^-T, M = R gR^T - gQ^T Q
        mm = r @ _mT(gr) - _mT(gq) @ q
        b = gq + q @ _copyltu(mm)
        ga = _mT(np.linalg.solve(r, _mT(b)))
        return Tensor(ga), None


def qr(A, mode="reduced"):
    """Q, R with A = Q R (mode 'reduced', 'complete', or 'r' for R alone, Q empty)."""
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of "
                           f"'reduced' (default), 'r', or 'complete'")
    q, r = _QR.apply(A, "reduced" if mode == "r" else mode)
    if mode == "r":
        return QRResult(Tensor(np.empty((0,), _f(A).dtype)), r)
    return QRResult(q, r)


class _SVD(Function):
    @staticmethod
    def forward(ctx, A, full_matrices):
        a = _f(A)
        u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
        ctx.u, ctx.s, ctx.vh, ctx.full = u, s, vh, full_matrices
        return Tensor(u.astype(a.dtype)), Tensor(s.astype(a.dtype)), Tensor(vh.astype(a.dtype))

    @staticmethod
    def backward(ctx, gu, gs, gvh):
        u, s, vh = ctx.u, ctx.s, ctx.vh
        k = s.shape[-1]
        u, vh = u[..., :, :k], vh[..., :k, :]
        gu, gvh, gs = gu._data[..., :, :k], gvh._data[..., :k, :], gs._data
        v, gv = _mT(vh), _mT(gvh)
        s2 = s[..., None, :] ** 2 - s[..., :, None] ** 2      # s_j^2 - s_i^2
        eye = np.eye(k, dtype=bool)
        with np.errstate(divide="ignore"):
            F = np.where(eye, 0.0, 1.0 / np.where(eye, 1.0, s2))
        ut_gu, vt_gv = _mT(u) @ gu, _mT(v) @ gv
        sm = s[..., None, :]    # multiply columns by s: X * sm == X @ diag(s)
        inner = (F * (ut_gu - _mT(ut_gu))) * sm + np.eye(k) * gs[..., None, :] \
            + s[..., :, None] * (F * (vt_gv - _mT(vt_gv)))
        ga = u @ inner @ vh
        m, n = u.shape[-2], v.shape[-2]
        if m > k:
            ga = ga + ((gu - u @ ut_gu) / sm) @ vh
        if n > k:
            ga = ga + u @ (_mT(gv - v @ vt_gv) / s[..., :, None])
        return Tensor(ga.astype(ctx.s.dtype)), None


def svd(A, full_matrices=True, *, driver=None):
    """U, S, Vh with A = U diag(S) Vh (singular values descending)."""
    if not isinstance(A, Tensor) or A._data.ndim < 2:
        raise RuntimeError("linalg.svd: The input tensor A must have at least 2 dimensions.")
    return SVDResult(*_SVD.apply(A, full_matrices))


def svdvals(A, *, driver=None):
    """The singular values of A, descending (differentiable)."""
    return svd(A, full_matrices=False)[1]


class _Eigh(Function):
    @staticmethod
    def forward(ctx, A, uplo):
        a = _f(A)
        w, v = np.linalg.eigh(a, UPLO=uplo)
        ctx.w, ctx.v = w, v
        return Tensor(w.astype(a.dtype)), Tensor(v.astype(a.dtype))

    @staticmethod
    def backward(ctx, gw, gv):
        w, v = ctx.w, ctx.v
        n = w.shape[-1]
        eye = np.eye(n, dtype=bool)
        diff = w[..., None, :] - w[..., :, None]              # w_j - w_i
        F = np.where(eye, 0.0, 1.0 / np.where(eye, 1.0, diff))
        inner = np.eye(n) * gw._data[..., None, :] + F * (_mT(v) @ gv._data)
        ga = v @ inner @ _mT(v)
        return Tensor((0.5 * (ga + _mT(ga))).astype(w.dtype)), None


def eigh(A, UPLO="L"):
    """Eigenvalues (ascending) and orthonormal eigenvectors of symmetric A."""
    _square(A, "eigh")
    return EighResult(*_Eigh.apply(A, UPLO))


def eigvalsh(A, UPLO="L"):
    return eigh(A, UPLO)[0]


def pinv(A, *, atol=None, rtol=None, hermitian=False):
    """The Moore-Penrose pseudo-inverse, V diag(1/s) U^T over the singular values above
    max(atol, rtol * s_max) (rtol defaults to eps * max(m, n), as torch's)."""
    u, s, vh = svd(A, full_matrices=False)
    m, n = A._data.shape[-2:]
    smax = _t.amax(s, -1, keepdim=True).detach()
    if rtol is None:
        rtol = np.finfo(_f(A).dtype).eps * (m if m > n else n) if atol is None else 0.0
    tol = smax * rtol
    if atol is not None:
        tol = _t.clamp(tol, min=float(atol))
    keep = _t.gt(s, tol)
    s_inv = _t.where(keep, 1.0 / _t.where(keep, s, _t.ones_like(s)), _t.zeros_like(s))
    return (vh.mT * _t.unsqueeze(s_inv, -2)) @ u.mT


def lstsq(A, B, rcond=None, *, driver=None):
    """The least-squares solution of A X = B (through the pseudo-inverse, differentiable)."""
    B = _as_tensor(B, A)
    vector = B._data.ndim == A._data.ndim - 1
    Bm = _t.unsqueeze(B, -1) if vector else B
    x = pinv(A, rtol=rcond) @ Bm if rcond is not None else pinv(A) @ Bm
    if vector:
        x = _t.squeeze(x, -1)
    s = np.linalg.svd(_f(A), compute_uv=False)
    return LstsqResult(x, Tensor(np.empty((0,), _f(A).dtype)),
                       Tensor(np.asarray(np.linalg.matrix_rank(_f(A)), np.int64)), Tensor(s))


def matrix_rank(A, *, atol=None, rtol=None, hermitian=False, tol=None):
    a = _f(A)
    s = np.linalg.svd(a, compute_uv=False)
    if tol is not None:
        atol = tol
    smax = s.max(-1, keepdims=True) if s.size else s
    if rtol is None:
        rtol = np.finfo(a.dtype).eps * max(a.shape[-2:]) if atol is None else 0.0
    thr = np.maximum(smax * rtol, atol or 0.0)
    return Tensor((s > thr).sum(-1).astype(np.int64))


def matrix_power(A, n):
    """A @ A @ ... (n times); n = 0 gives the identity, negative n powers of inv(A)."""
    _square(A, "matrix_power")
    if n == 0:
        eye = np.broadcast_to(np.eye(A._data.shape[-1], dtype=_f(A).dtype), A._data.shape)
        return Tensor(eye.copy())
    base = inv(A) if n < 0 else A
    out = None
    p, sq = abs(int(n)), base
    while p:
        if p & 1:
            out = sq if out is None else out @ sq
        p >>= 1
        if p:
            sq = sq @ sq
    return out


def multi_dot(tensors):
    """A chain of matrix products (1-D ends are treated as row/column vectors)."""
    if len(tensors) < 2:
        raise RuntimeError("multi_dot(): expected at least 2 tensors but got "
                           f"{len(tensors)}")
    out = tensors[0]
    for t in tensors[1:]:
        out = out @ t
    return out


def cross(input, other, *, dim=-1):
    """The 3-vector cross product along dim."""
    a, b = _t.broadcast_tensors(input, other)
    if a._data.shape[dim] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got "
                           f"{a._data.shape[dim]} and {b._data.shape[dim]}")
    a0, a1, a2 = _t.unbind(a, dim)
    b0, b1, b2 = _t.unbind(b, dim)
    return _t.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], dim)


def vecdot(x, y, *, dim=-1):
    return _t.sum(x * y, dim)


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    return _t.diagonal(A, offset, dim1, dim2)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """torch.linalg.matrix_norm: 'fro', 'nuc', 1, -1, 2, -2, inf, -inf."""
    if ord in (2, -2, "nuc"):
        if dtype is not None:
            A = A.to(dtype)
        d0, d1 = (d % A._data.ndim for d in dim)
        moved = _t.movedim(A, (d0, d1), (-2, -1))
        s = svdvals(moved)
        r = _t.sum(s, -1) if ord == "nuc" else (_t.amax(s, -1) if ord == 2 else _t.amin(s, -1))
        if keepdim:
            r = _t.unsqueeze(_t.unsqueeze(r, min(d0, d1)), max(d0, d1))
        return r
    return _matrix_norm_basic(A, ord, dim, keepdim, dtype=dtype)


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    return _vector_norm(x, ord, dim, keepdim, dtype=dtype)


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """torch.linalg.norm: a vector norm over one dim (or all of a 1-D input, or everything when
    ord and dim are None), a matrix norm over two."""
    if isinstance(dim, int) or (dim is not None and len(dim) == 1):
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    if dim is None:
        if ord is None:
            return vector_norm(A, 2, None, keepdim, dtype=dtype)
        if A._data.ndim == 1:
            return vector_norm(A, ord, None, keepdim, dtype=dtype)
        if A._data.ndim != 2:
            raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must "
                               f"be 1D or 2D. Got {A._data.ndim}D.")
        dim = (-2, -1)
    return matrix_norm(A, "fro" if ord is None else ord, tuple(dim), keepdim, dtype=dtype)


def cond(A, p=None):
    """The condition number in the p-norm (2-norm: s_max / s_min)."""
    if p is None or p == 2:
        s = svdvals(A)
        return _t.amax(s, -1) / _t.amin(s, -1)
    if p == -2:
        s = svdvals(A)
        return _t.amin(s, -1) / _t.amax(s, -1)
    return matrix_norm(A, p) * matrix_norm(inv(A), p)

