"""The kernel registry: every kernel is declared once, here, by the `@declare` decorator on its
checked public function (in fastnn/kernels/families/).

A declaration holds what the rest of fastnn derives from:
  name        the backend function every backend implements (fastnn/backends/<backend>/)
  api         the checked public function (fastnn.kernels.<api name>): validation, then dispatch
  signature   the backend calling convention: what compiled code may assume of its arguments
  doc         one line for `fastnn info` and the docs
  dtypes      the float dtypes it takes
  examples    inputs for the conformance suite: examples(rng, dtype) -> [(args, kwargs), ...]
              for the public function; every backend must match the numpy reference on them
  gradient    for a backward kernel: how the generic finite-difference check drives it
  trusted     the internal entry point for Tensor ops and optimizers (no validation cost when the
              inputs are already known to be good; see fastnn/kernels/trusted.py)
  bench       the `fastnn bench` case it appears in (see fastnn/bench/cases.py)

The numpy reference of kernel NAME is fastnn/backends/numpy/*.py's function NAME.
"""
from dataclasses import dataclass, field
from typing import Callable, Optional

FLOATS = ("float32", "float64")


@dataclass(frozen=True)
class Gradient:
    """How a backward kernel relates to its forward, for the generic finite-difference check.

    forward: the forward kernel's name; saved: which forward value the backward takes besides dy
    ('x', the input, or 'y', the output); kwargs: extra keyword arguments both take."""
    forward: str
    saved: str = "x"


@dataclass(frozen=True)
class Bench:
    """A `fastnn bench` case: kind names a case builder in fastnn/bench/cases.py; params are its
    keyword arguments (sizes, the backward kernel, the PyTorch op to compare with, ...)."""
    kind: str
    params: dict = field(default_factory=dict)


@dataclass
class Kernel:
    name: str
    api: Callable
    family: str
    signature: str
    doc: str
    dtypes: tuple = FLOATS
    examples: Optional[Callable] = None
    gradient: Optional[Gradient] = None
    bench: Optional[Bench] = None
    trusted: Optional[Callable] = None

    @property
    def api_name(self):
        return self.api.__name__

    def set_trusted(self, fn):
        """Decorator: fn is the trusted entry point of this kernel (see trusted.py)."""
        self.trusted = fn
        return fn


REGISTRY = {}   # kernel name -> Kernel, in declaration order


def declare(name=None, *, family, signature, doc=None, dtypes=FLOATS, examples=None,
            gradient=None, bench=None):
    """Decorator on a kernel's checked public function: registers the kernel (see module doc).

    name defaults to the function's name (bmm declares 'gemm_batched'); doc defaults to the first
    line of the function's docstring."""
    def wrap(api):
        kname = name or api.__name__
        if kname in REGISTRY:
            raise ValueError(f"kernel {kname!r} is declared twice")
        line = doc or (api.__doc__ or "").strip().splitlines()[0]
        k = Kernel(kname, api, family, signature, line, tuple(dtypes), examples, gradient, bench)
        REGISTRY[kname] = k
        api.kernel = k
        return api
    return wrap


def names():
    """Every declared kernel's name, in declaration order: the one kernel list."""
    return tuple(REGISTRY)


def get(name):
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no kernel named {name!r}; declared kernels: {', '.join(REGISTRY)}") \
            from None
