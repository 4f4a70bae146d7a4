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


# ---------------------------------------------------------------- fused epilogues
_ACTIVATIONS = {None: 0, "none": 0, "relu": 1, "gelu_tanh": 2, "gelu": 3}


def _op_shape(name, a, b, trans_a, trans_b):
    _ndim(name, "a", a, 2)
    _ndim(name, "b", b, 2)
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != k2:
        raise ValueError(f"{name}: inner dimensions differ: op(a) is ({m}, {k}) and op(b) is "
                         f"({k2}, {n}) (a {a.shape}, b {b.shape}, trans_a={trans_a}, "
                         f"trans_b={trans_b})")
    return m, n, k


def _out(name, what, x, shape, dtype):
    """An output array the kernel writes: given, or allocated."""
    if x is None:
        return np.empty(shape, dtype)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: {what} must be a numpy array (it is written in place)")
    _float_array(name, what, x, dtype)
    if x.shape != shape:
        raise ValueError(f"{name}: {what} has shape {x.shape}, expected {shape}")
    if not x.flags.c_contiguous or not x.flags.writeable:
        raise ValueError(f"{name}: {what} must be a writeable C-contiguous array")
    return x


def _separate(name, what, x, c):
    if x is not None and np.may_share_memory(x, c):
        raise ValueError(f"{name}: {what} must not overlap c")


def _fused_examples(rng, dtype):
    out = []
    for (m, k, n), (ta, tb) in zip(((1, 1, 1), (7, 13, 5), (33, 17, 65), (2, 40, 3), (40, 9, 2)),
                                   ((False, False), (False, True), (True, False), (True, True),
                                    (False, True))):
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
        bias = rng.standard_normal(n).astype(dtype)
        res = rng.standard_normal((m, n)).astype(dtype)
        # (bias and residual positional: the conformance oracle casts those to float64)
        for act in (None, "relu", "gelu_tanh", "gelu"):
            out.append(((a, b, None, bias), dict(trans_a=ta, trans_b=tb, activation=act)))
        out.append(((a, b, None, bias, res), dict(trans_a=ta, trans_b=tb)))
        out.append(((a, b, rng.standard_normal((m, n)).astype(dtype), None, res),
                    dict(trans_a=ta, trans_b=tb, alpha=0.5, beta=2.0, activation="gelu")))
    return out


@declare(family="gemm", signature="gemm_fused(a, b, c, trans_a, trans_b, alpha, beta, bias, act, residual, preact): gemm's a, b, c (K > 0); bias (N,) or None; act 0 none, 1 relu, 2 gelu tanh, 3 gelu erf; residual, preact (M, N) C-contiguous or None, apart from c", examples=_fused_examples)
def gemm_fused(a, b, c=None, bias=None, residual=None, *, trans_a=False, trans_b=False, alpha=1.0,
               beta=0.0, activation=None, preact=None, backend=None):
    """GEMM with a fused epilogue: c = act(alpha * op(a) @ op(b) + beta * c + bias) + residual.

    bias: (N,) added to every row; activation: None, 'relu', 'gelu_tanh' or 'gelu' (exact erf);
    residual: (M, N) added after the activation; preact: an (M, N) array that receives the value
    before the activation (what the activation's backward needs). residual and preact must not
    overlap c. The C backend applies all of it to each tile of c as the tile is finished.
    Returns c.
    """
    be = resolve(backend)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"gemm_fused: activation must be one of None, 'relu', 'gelu_tanh', "
                         f"'gelu', got {activation!r}")
    a = _float_array("gemm_fused", "a", a)
    b = _float_array("gemm_fused", "b", b, a.dtype)
    m, n, k = _op_shape("gemm_fused", a, b, trans_a, trans_b)
    if c is None:
        beta = 0.0
    c = _out("gemm_fused", "c", c, (m, n), a.dtype)
    if bias is not None:
        bias = np.ascontiguousarray(_float_array("gemm_fused", "bias", bias, a.dtype))
        if bias.shape != (n,):
            raise ValueError(f"gemm_fused: bias has shape {bias.shape}, expected ({n},)")
    if residual is not None:
        residual = np.ascontiguousarray(_float_array("gemm_fused", "residual", residual, a.dtype))
        if residual.shape != (m, n):
            raise ValueError(f"gemm_fused: residual has shape {residual.shape}, expected "
                             f"({m}, {n})")
        _separate("gemm_fused", "residual", residual, c)
    if preact is not None:
        preact = _out("gemm_fused", "preact", preact, (m, n), a.dtype)
        _separate("gemm_fused", "preact", preact, c)
    a, trans_a = _gemm_operand(a, trans_a)
    b, trans_b = _gemm_operand(b, trans_b)
    if c.size:
        if k == 0:   # the reference handles the empty product (c = beta * c, then the epilogue)
            be = resolve("numpy")
        be.gemm_fused(a, b, c, bool(trans_a), bool(trans_b), float(alpha), float(beta), bias,
                      _ACTIVATIONS[activation], residual, preact)
    return c


def _bias_grad_examples(rng, dtype):
    out = []
    for m, k, n in ((1, 1, 1), (7, 13, 5), (33, 17, 65), (3, 40, 2), (40, 9, 20)):
        for ta, tb in ((False, False), (True, False), (False, True), (True, True)):
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
            for sum_of in ("a", "b"):
                out.append(((a, b), dict(trans_a=ta, trans_b=tb, sum_of=sum_of)))
    a = rng.standard_normal((9, 6)).astype(dtype)
    b = rng.standard_normal((9, 4)).astype(dtype)
    c = rng.standard_normal((6, 4)).astype(dtype)
    out.append(((a, b, c, rng.standard_normal(6).astype(dtype)),
                dict(trans_a=True, alpha=0.5, beta=2.0, sum_of="a")))
    return out


@declare(family="gemm", signature="gemm_bias_grad(a, b, c, db, trans_a, trans_b, alpha, beta, sum_of_b): gemm's a, b, c (K > 0); db (M,), or (N,) when sum_of_b, C-contiguous, written in place", examples=_bias_grad_examples)
def gemm_bias_grad(a, b, c=None, db=None, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0,
                   sum_of="a", backend=None):
    """The weight and bias gradients of a linear layer in one pass over dy:
    c = alpha * op(a) @ op(b) + beta * c and db = alpha * op(x).sum(over K) + beta * db, where x
    is a (sum_of='a': db has M entries, the sums of op(a)'s rows) or b (sum_of='b': N entries,
    the sums of op(b)'s columns). For y = x @ W.T + bias with dy (B, out), x (B, in):
    dW, dbias = gemm_bias_grad(dy, x, trans_a=True, sum_of='a'). Returns (c, db).
    """
    be = resolve(backend)
    if sum_of not in ("a", "b"):
        raise ValueError(f"gemm_bias_grad: sum_of must be 'a' or 'b', got {sum_of!r}")
    a = _float_array("gemm_bias_grad", "a", a)
    b = _float_array("gemm_bias_grad", "b", b, a.dtype)
    m, n, k = _op_shape("gemm_bias_grad", a, b, trans_a, trans_b)
    if c is None:
        beta = 0.0
    c = _out("gemm_bias_grad", "c", c, (m, n), a.dtype)
    db = _out("gemm_bias_grad", "db", db, (n if sum_of == "b" else m,), a.dtype)
    _separate("gemm_bias_grad", "db", db, c)
    a, trans_a = _gemm_operand(a, trans_a)
    b, trans_b = _gemm_operand(b, trans_b)
    if k == 0 or not c.size:
        be = resolve("numpy")
    be.gemm_bias_grad(a, b, c, db, bool(trans_a), bool(trans_b), float(alpha), float(beta),
                      sum_of == "b")
    return c, db


@gemm_fused.kernel.set_trusted
def _gemm_fused_trusted(a, b, c=None, bias=None, residual=None, *, trans_a=False, trans_b=False,
                        alpha=1.0, beta=0.0, activation=None, preact=None):
    """gemm_fused for Tensor ops: straight to the backend when every array is ready."""
    dt = a.dtype
    if (a.ndim == 2 and b.ndim == 2 and c is None and ready(dt, a, b)
            and activation in _ACTIVATIONS):
        m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
        k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
        if (k == k2 and (bias is None or (bias.shape == (n,) and ready(dt, bias)))
                and (residual is None or (residual.shape == (m, n) and ready(dt, residual)))
                and (preact is None or (preact.shape == (m, n) and ready(dt, preact)
                                        and preact.flags.writeable))):
            c = np.empty((m, n), dt)
            get_backend().gemm_fused(a, b, c, trans_a, trans_b, alpha, 0.0, bias,
                                     _ACTIVATIONS[activation], residual, preact)
            return c
    return gemm_fused(a, b, c, bias, residual, trans_a=trans_a, trans_b=trans_b, alpha=alpha,
                      beta=beta, activation=activation, preact=preact)


@gemm_bias_grad.kernel.set_trusted
def _gemm_bias_grad_trusted(a, b, c=None, db=None, *, trans_a=False, trans_b=False, alpha=1.0,
                            beta=0.0, sum_of="a"):
    """gemm_bias_grad for Tensor ops: straight to the backend when a, b are ready and c, db are
    to be allocated."""
    dt = a.dtype
    if a.ndim == 2 and b.ndim == 2 and c is None and db is None and ready(dt, a, b):
        m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
        k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
        if k == k2 and sum_of in ("a", "b"):
            c = np.empty((m, n), dt)
            db = np.empty(n if sum_of == "b" else m, dt)
            get_backend().gemm_bias_grad(a, b, c, db, trans_a, trans_b, alpha, 0.0,
                                         sum_of == "b")
            return c, db
    return gemm_bias_grad(a, b, c, db, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta,
                          sum_of=sum_of)
