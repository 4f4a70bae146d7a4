"""torch.distributions.constraints: what a distribution's parameters and samples must satisfy.
Each constraint's check(value) returns a bool Tensor (per element, or per event for event
constraints such as simplex)."""
import numpy as np

from ..tensor import Tensor

__all__ = ["Constraint", "boolean", "real", "real_vector", "positive", "nonnegative",
           "greater_than", "greater_than_eq", "less_than", "interval", "half_open_interval",
           "unit_interval", "simplex", "integer_interval", "nonnegative_integer",
           "positive_integer", "lower_cholesky", "lower_triangular", "positive_definite",
           "independent", "dependent", "open_interval"]


def _arr(v):
    return v._data if isinstance(v, Tensor) else np.asarray(v)


class Constraint:
    is_discrete = False
    event_dim = 0

    def check(self, value):
        raise NotImplementedError

    def _ok(self, value):
        return np.asarray(self.check(value)._data, bool)

    def __repr__(self):
        return type(self).__name__.lstrip("_") + "()"


class _Elementwise(Constraint):
    def __init__(self, fn, name, **params):
        self._fn, self._name, self._params = fn, name, params
        for k, v in params.items():
            setattr(self, k, v)

    def check(self, value):
        return Tensor(np.asarray(self._fn(_arr(value))))

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self._params.items())
        return f"{self._name}({args})"


class _Dependent(Constraint):
    def __init__(self, is_discrete=False, event_dim=0):
        self.is_discrete, self.event_dim = is_discrete, event_dim

    def check(self, value):
        raise ValueError("Cannot determine validity of dependent constraint")

    def __call__(self, *, is_discrete=False, event_dim=0):
        return _Dependent(is_discrete, event_dim)


class independent(Constraint):
    def __init__(self, base_constraint, reinterpreted_batch_ndims):
        self.base_constraint = base_constraint
        self.reinterpreted_batch_ndims = reinterpreted_batch_ndims
        self.event_dim = base_constraint.event_dim + reinterpreted_batch_ndims
        self.is_discrete = base_constraint.is_discrete

    def check(self, value):
        r = _arr(self.base_constraint.check(value))
        n = self.reinterpreted_batch_ndims
        return Tensor(r.reshape(r.shape[:r.ndim - n] + (-1,)).all(-1) if n else r)


def greater_than(lower_bound):
    return _Elementwise(lambda v: v > lower_bound, "GreaterThan", lower_bound=lower_bound)


def greater_than_eq(lower_bound):
    return _Elementwise(lambda v: v >= lower_bound, "GreaterThanEq", lower_bound=lower_bound)


def less_than(upper_bound):
    return _Elementwise(lambda v: v < upper_bound, "LessThan", upper_bound=upper_bound)


def interval(lower_bound, upper_bound):
    return _Elementwise(lambda v: (v >= _arr(lower_bound)) & (v <= _arr(upper_bound)),
                        "Interval", lower_bound=lower_bound, upper_bound=upper_bound)


def half_open_interval(lower_bound, upper_bound):
    return _Elementwise(lambda v: (v >= _arr(lower_bound)) & (v < _arr(upper_bound)),
                        "HalfOpenInterval", lower_bound=lower_bound, upper_bound=upper_bound)


def open_interval(lower_bound, upper_bound):
    return _Elementwise(lambda v: (v > _arr(lower_bound)) & (v < _arr(upper_bound)),
                        "OpenInterval", lower_bound=lower_bound, upper_bound=upper_bound)


def integer_interval(lower_bound, upper_bound):
    c = _Elementwise(lambda v: (v % 1 == 0) & (v >= lower_bound) & (v <= upper_bound),
                     "IntegerInterval", lower_bound=lower_bound, upper_bound=upper_bound)
    c.is_discrete = True
    return c


class _Simplex(Constraint):
    event_dim = 1

    def check(self, value):
        v = _arr(value)
        return Tensor(np.all(v >= 0, -1) & (np.abs(v.sum(-1) - 1) < 1e-6))


class _LowerCholesky(Constraint):
    event_dim = 2

    def check(self, value):
        v = _arr(value)
        tril = np.all(np.isclose(v, np.tril(v)).reshape(v.shape[:-2] + (-1,)), -1)
        return Tensor(tril & np.all(np.diagonal(v, 0, -2, -1) > 0, -1))


class _LowerTriangular(Constraint):
    event_dim = 2

    def check(self, value):
        v = _arr(value)
        return Tensor(np.all((v == np.tril(v)).reshape(v.shape[:-2] + (-1,)), -1))


class _PositiveDefinite(Constraint):
    event_dim = 2

    def check(self, value):
        v = _arr(value)
        sym = np.all(np.isclose(v, np.swapaxes(v, -1, -2), atol=1e-6)
                     .reshape(v.shape[:-2] + (-1,)), -1)
        try:
            pos = np.linalg.eigvalsh(v).min(-1) > 0
        except np.linalg.LinAlgError:
            pos = np.zeros(v.shape[:-2], bool)
        return Tensor(sym & pos)


dependent = _Dependent()
boolean = _Elementwise(lambda v: (v == 0) | (v == 1), "Boolean")
boolean.is_discrete = True
real = _Elementwise(lambda v: v == v, "Real")   # not nan
real_vector = independent(real, 1)
positive = greater_than(0.0)
nonnegative = greater_than_eq(0.0)
unit_interval = interval(0.0, 1.0)
nonnegative_integer = _Elementwise(lambda v: (v % 1 == 0) & (v >= 0), "IntegerGreaterThan",
                                   lower_bound=0)
nonnegative_integer.is_discrete = True
positive_integer = _Elementwise(lambda v: (v % 1 == 0) & (v >= 1), "IntegerGreaterThan",
                                lower_bound=1)
positive_integer.is_discrete = True
simplex = _Simplex()
lower_cholesky = _LowerCholesky()
lower_triangular = _LowerTriangular()
positive_definite = _PositiveDefinite()
