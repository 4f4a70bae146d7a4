"""fastnn.special: torch.special's functions on fastnn tensors, differentiable.

    fastnn.special.gammaln(x), digamma(x), erfinv(x), logit(p), xlogy(x, y), i0(x), sinc(x)

Values come from scipy.special (installed with scikit-learn, which fastnn depends on); each
function's derivative is written here in closed form, as a Tensor expression, so it also works
under create_graph=True (a second derivative)."""
import math

import numpy as np
import scipy.special as _sp

from .tensor import (Tensor, _node, _f, _unbroadcast, _binary_args, exp, expm1, exp2, log,
                     log1p, sigmoid, softmax as _softmax, log_softmax as _log_softmax,
                     logsumexp as _logsumexp, round as _round, erf as _erf, where,
                     ones_like, zeros_like)

__all__ = ["erf", "erfc", "erfcx", "erfinv", "expit", "logit", "gammaln", "digamma", "psi",
           "polygamma", "multigammaln", "xlogy", "xlog1py", "log1p", "expm1", "exp2", "i0",
           "i0e", "i1", "i1e", "sinc", "ndtr", "ndtri", "log_ndtr", "entr", "softmax",
           "log_softmax", "logsumexp", "round", "gammainc", "gammaincc", "bessel_j0",
           "bessel_j1", "zeta"]

_SQRT_PI = math.sqrt(math.pi)


def _check(x, name):
    if not isinstance(x, Tensor):
        raise TypeError(f"special.{name}(): argument 'input' must be Tensor, not "
                        f"{type(x).__name__}")


def _unary(x, name, fn, deriv):
    """An elementwise op: value fn(array), derivative deriv(x) -> Tensor (Tensor ops, so the
    backward is itself differentiable)."""
    _check(x, name)
    xd = _f(x)
    out = np.asarray(fn(xd)).astype(xd.dtype, copy=False)

    def backward(g):
        with_grad = deriv(Tensor(xd))
        return (g * with_grad._data,)

    return _node(out, (x,), backward, saved=(x,), tb=lambda g: (g * deriv(x),))


erf = _erf


def erfc(x):
    return _unary(x, "erfc", _sp.erfc, lambda t: -2 / _SQRT_PI * exp(-t * t))


def erfcx(x):
    return _unary(x, "erfcx", _sp.erfcx,
                  lambda t: 2 * t * erfcx(t) - 2 / _SQRT_PI)


def erfinv(x):
    return _unary(x, "erfinv", _sp.erfinv,
                  lambda t: _SQRT_PI / 2 * exp(erfinv(t) * erfinv(t)))


def expit(x):
    return sigmoid(x)


def logit(x, eps=None):
    """log(p / (1 - p)); with eps, p is first clamped to [eps, 1 - eps] (zero gradient outside)."""
    _check(x, "logit")
    if eps is not None:
        x = x.clamp(eps, 1 - eps)
    return log(x / (1 - x))


def gammaln(x):
    return _unary(x, "gammaln", _sp.gammaln, digamma)


def digamma(x):
    return _unary(x, "digamma", _sp.digamma, lambda t: polygamma(1, t))


psi = digamma


def polygamma(n, x):
    n = int(n)
    if n < 0:
        raise RuntimeError("polygamma(n, x) does not support negative n.")
    if n == 0:
        return digamma(x)
    return _unary(x, "polygamma", lambda a: _sp.polygamma(n, a), lambda t: polygamma(n + 1, t))


def multigammaln(x, p):
    """log of the multivariate gamma function of dimension p."""
    _check(x, "multigammaln")
    if p < 1:
        raise RuntimeError("p has to be greater than or equal to 1")
    if bool(np.any(_f(x) <= (p - 1) / 2)):
        raise RuntimeError(f"All elements must be greater than {(p - 1) / 2}")
    out = p * (p - 1) / 4 * math.log(math.pi)
    for j in range(p):
        out = out + gammaln(x - j / 2)
    return out


def xlogy(x, y):
    """x * log(y), 0 where x == 0 (even where y is 0 or nan... but not x nan)."""
    x, y = _binary_args(x, y)
    xd, yd = _f(x), _f(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(xd == 0, np.zeros((), xd.dtype), xd * np.log(yd))
        out = np.where(np.isnan(yd), yd, out).astype(np.result_type(xd, yd), copy=False)

    def backward(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            gx = g * np.where(xd == 0, 0.0, np.log(yd))
            gy = g * xd / yd
        return (_unbroadcast(gx.astype(xd.dtype), xd.shape),
                _unbroadcast(gy.astype(yd.dtype), yd.shape))
    return _node(out, (x, y), backward, saved=(x, y))


def xlog1py(x, y):
    """x * log1p(y), 0 where x == 0."""
    x, y = _binary_args(x, y)
    xd, yd = _f(x), _f(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(xd == 0, np.zeros((), xd.dtype), xd * np.log1p(yd))
        out = np.where(np.isnan(yd), yd, out).astype(np.result_type(xd, yd), copy=False)

    def backward(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            gx = g * np.where(xd == 0, 0.0, np.log1p(yd))
            gy = g * xd / (1 + yd)
        return (_unbroadcast(gx.astype(xd.dtype), xd.shape),
                _unbroadcast(gy.astype(yd.dtype), yd.shape))
    return _node(out, (x, y), backward, saved=(x, y))


def i0(x):
    return _unary(x, "i0", _sp.i0, i1)


def i0e(x):
    return _unary(x, "i0e", _sp.i0e, lambda t: i1e(t) - t.sign() * i0e(t))


def _i1_deriv(t):
    # I1'(x) = I0(x) - I1(x)/x, and 1/2 at 0
    safe = where(t == 0, ones_like(t), t)
    return where(t == 0, ones_like(t) * 0.5, i0(t) - i1(t) / safe)


def i1(x):
    return _unary(x, "i1", _sp.i1, _i1_deriv)


def i1e(x):
    def deriv(t):
        safe = where(t == 0, ones_like(t), t)
        return where(t == 0, ones_like(t) * 0.5, i0e(t) - i1e(t) * (t.sign() + 1 / safe))
    return _unary(x, "i1e", _sp.i1e, deriv)


def sinc(x):
    """sin(pi x) / (pi x), 1 at 0."""
    def deriv(t):
        safe = where(t == 0, ones_like(t), t)
        return where(t == 0, zeros_like(t), ((math.pi * safe).cos() - sinc(safe)) / safe)
    return _unary(x, "sinc", np.sinc, deriv)


def ndtr(x):
    """The standard normal CDF."""
    return 0.5 * (1 + _erf(x * (1 / math.sqrt(2))))


def ndtri(p):
    """The standard normal quantile function (inverse of ndtr)."""
    return math.sqrt(2) * erfinv(2 * p - 1)


def log_ndtr(x):
    return _unary(x, "log_ndtr", _sp.log_ndtr,
                  lambda t: exp(-0.5 * t * t - log_ndtr(t)) / math.sqrt(2 * math.pi))


def entr(x):
    """-x log x (0 at 0, -inf for x < 0)."""
    _check(x, "entr")
    xd = _f(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(xd > 0, -xd * np.log(np.where(xd > 0, xd, 1)),
                       np.where(xd == 0, 0.0, -np.inf)).astype(xd.dtype)
    return _node(out, (x,), lambda g: (g * -(np.log(xd) + 1),), saved=(x,))


def gammainc(a, x):
    """The regularised lower incomplete gamma function (not differentiable, as in torch)."""
    return Tensor(_sp.gammainc(_f(a), _f(x)))


def gammaincc(a, x):
    return Tensor(_sp.gammaincc(_f(a), _f(x)))


def bessel_j0(x):
    return _unary(x, "bessel_j0", _sp.j0, lambda t: -bessel_j1(t))


def bessel_j1(x):
    def deriv(t):
        safe = where(t == 0, ones_like(t), t)
        return where(t == 0, ones_like(t) * 0.5, bessel_j0(t) - bessel_j1(t) / safe)
    return _unary(x, "bessel_j1", _sp.j1, deriv)


def zeta(x, q):
    """The Hurwitz zeta function (not differentiable, as in torch)."""
    xa = _f(x) if isinstance(x, Tensor) else np.asarray(x, np.float32)
    qa = _f(q) if isinstance(q, Tensor) else np.asarray(q, np.float32)
    return Tensor(np.asarray(_sp.zeta(xa, qa)).astype(np.result_type(xa, qa)))


def softmax(input, dim, *, dtype=None):
    return _softmax(input, dim, dtype)


def log_softmax(input, dim, *, dtype=None):
    return _log_softmax(input, dim, dtype)


def logsumexp(input, dim, keepdim=False):
    return _logsumexp(input, dim, keepdim)


def round(input, *, decimals=0):
    return _round(input, decimals=decimals)

