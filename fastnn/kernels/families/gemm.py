"""GEMM: gemm, matmul, bmm. C: csrc/gemm*.c; Numba: backends/numba/gemm.py."""
import numpy as np

from ..registry import Bench, Gradient, declare
from .._checks import (_FLOATS, _at_least_1d, _check_range, _float_array, _gemm_operand,
                       _index_array, _ndim, _rows, _same_shape, get_backend, ready, resolve)
from . import examples as ex


# ---------------------------------------------------------------- GEMM
@declare(family="gemm", signature="gemm(a, b, c, trans_a, trans_b, alpha, beta): 2-D C-contiguous a, b; c (M, N) written in place; K > 0", examples=ex.gemm, bench=Bench("gemm"))
def gemm(a, b, c=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, backend=None):
    """General matrix multiply: c = alpha * op(a) @ op(b) + beta * c, where op(x) = x.T if trans_x.

    a: (M, K) or (K, M) if trans_a; b: (K, N) or (N, K) if trans_b; c: (M, N), written in place
    when given (it must then be C-contiguous), else allocated. When beta == 0, c is not read.
    Returns c.
    """
    be = resolve(backend)
    a = _float_array("gemm", "a", a)
    b = _float_array("gemm", "b", b, a.dtype)
    _ndim("gemm", "a", a, 2)
    _ndim("gemm", "b", b, 2)
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != k2:
        raise ValueError(f"gemm: inner dimensions differ: op(a) is ({m}, {k}) and op(b) is "
                         f"({k2}, {n}) (a {a.shape}, b {b.shape}, trans_a={trans_a}, "
                         f"trans_b={trans_b})")
    if c is None:
        c = np.empty((m, n), dtype=a.dtype)
        beta = 0.0
    else:
        if not isinstance(c, np.ndarray):
            raise TypeError("gemm: c must be a numpy array (it is written in place)")
        _float_array("gemm", "c", c, a.dtype)
        if c.shape != (m, n):
            raise ValueError(f"gemm: c has shape {c.shape}, expected ({m}, {n})")
        if not c.flags.c_contiguous or not c.flags.writeable:
            raise ValueError("gemm: c must be a writeable C-contiguous array")
    a, trans_a = _gemm_operand(a, trans_a)
    b, trans_b = _gemm_operand(b, trans_b)
    if c.size:
        if k == 0:
            if beta == 0:
                c[...] = 0
            else:
                c *= beta
        else:
            be.gemm(a, b, c, bool(trans_a), bool(trans_b), float(alpha), float(beta))
    return c


def matmul(a, b, *, backend=None):
    """a @ b for 2-D float arrays (M, K) @ (K, N) -> (M, N); 3-D arrays go to bmm."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim == 3 or b.ndim == 3:
        return bmm(a, b, backend=backend)
    return gemm(a, b, backend=backend)


@declare("gemm_batched", family="gemm", signature="gemm_batched(a, b, c, trans_a, trans_b, alpha, beta): 3-D C-contiguous, equal batch; c (B, M, N) in place; K > 0", examples=ex.bmm)
def bmm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, backend=None):
    """Batched matmul: (B, M, K) @ (B, K, N) -> (B, M, N); a 2-D operand is shared by every batch."""
    be = resolve(backend)
    a = _float_array("bmm", "a", a)
    b = _float_array("bmm", "b", b, a.dtype)
    if a.ndim not in (2, 3) or b.ndim not in (2, 3):
        raise ValueError(f"bmm: operands must be 2-D or 3-D, got shapes {a.shape} and {b.shape}")
    if a.ndim == 3 and b.ndim == 3 and a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm: batch sizes differ: a {a.shape}, b {b.shape}")
    nb = a.shape[0] if a.ndim == 3 else b.shape[0]
    if a.ndim == 2:
        a = np.broadcast_to(a, (nb,) + a.shape)
    if b.ndim == 2:
        b = np.broadcast_to(b, (nb,) + b.shape)
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    m, k = (a.shape[2], a.shape[1]) if trans_a else a.shape[1:]
    k2, n = (b.shape[2], b.shape[1]) if trans_b else b.shape[1:]
    if k != k2:
        raise ValueError(f"bmm: inner dimensions differ: a {a.shape}, b {b.shape} "
                         f"(trans_a={trans_a}, trans_b={trans_b})")
    c = np.empty((nb, m, n), dtype=a.dtype)
    if c.size:
        if k == 0:
            c[...] = 0
        else:
            be.gemm_batched(a, b, c, bool(trans_a), bool(trans_b), float(alpha), 0.0)
    return c




@gemm.kernel.set_trusted
def _gemm_trusted(a, b, c=None, *, trans_a=False, trans_b=False, beta=0.0):
    """gemm with alpha 1 for Tensor ops: straight to the backend when a, b (and c) are ready."""
    if a.ndim == 2 and b.ndim == 2 and ready(a.dtype, a, b):
        m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
        k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
        if k == k2:
            if c is None:
                c, beta = np.empty((m, n), a.dtype), 0.0
            elif not (c.dtype is a.dtype and c.shape == (m, n) and c.flags.c_contiguous
                      and c.flags.writeable):
                return gemm(a, b, c, trans_a=trans_a, trans_b=trans_b, beta=beta)
            get_backend().gemm(a, b, c, trans_a, trans_b, 1.0, beta)
            return c
    return gemm(a, b, c, trans_a=trans_a, trans_b=trans_b, beta=beta)
