"""Backend selection: which backends exist, which load here, and which is current.

A backend is a package under fastnn/backends/ that defines NAME and MODULES (the modules holding
its kernels); kernel NAME is the function of that name in one of them, with the calling
convention of its declaration (fastnn/kernels/registry.py). A kernel a backend lacks is reported
by `fastnn info` and raises NotImplementedError when called: never a silent fallback.
"""
import contextlib
import importlib
import os
import threading
import warnings

from .registry import names as _kernel_names

# name -> module path; order is the preference for the default backend (fastest first).
_MODULES = {
    "cython": "fastnn.backends.cython",
    "numba": "fastnn.backends.numba",
    "numpy": "fastnn.backends.numpy",
    "cuda": "fastnn.backends.cuda",
}
_DEFAULT_ORDER = ("cython", "numba", "numpy")

_loaded = {}   # name -> module
_errors = {}   # name -> reason it did not load


class _State(threading.local):
    name = None   # a class default: reading an unset per-thread name raises nothing (~1 us)


_state = _State()
_global = {"name": None}


class Backend:
    """A loaded backend: each declared kernel is an attribute; a missing one raises
    NotImplementedError when called. .module is the backend's package."""

    def __init__(self, name, module):
        self.name = name
        self.module = module
        self._has = set()
        for k in _kernel_names():
            fn = next((getattr(m, k) for m in module.MODULES if hasattr(m, k)), None)
            if fn is not None:
                self._has.add(k)
            setattr(self, k, fn if fn is not None else _missing(name, k))

    def has(self, kernel):
        return kernel in self._has

    def missing(self):
        return [k for k in _kernel_names() if k not in self._has]

    def __repr__(self):
        return f"<fastnn backend {self.name!r}>"


def _missing(backend, kernel):
    def fn(*args, **kwargs):
        raise NotImplementedError(f"kernel {kernel!r} is not implemented by the {backend!r} backend "
                                  f"(see `fastnn info`)")
    return fn


def load(name):
    """Import a backend by name, or raise ValueError/ImportError saying why it is unavailable."""
    if name in _loaded:
        return _loaded[name]
    if name not in _MODULES:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(_MODULES)}")
    if name in _errors:
        raise ImportError(f"backend {name!r} is unavailable: {_errors[name]}")
    try:
        mod = importlib.import_module(_MODULES[name])
        check = getattr(mod, "self_check", None)
        if check is not None:
            check()
    except Exception as e:  # the reason is reported by info() and by the default-backend warning
        _errors[name] = f"{type(e).__name__}: {e}"
        raise ImportError(f"backend {name!r} is unavailable: {_errors[name]}") from e
    _loaded[name] = Backend(name, mod)
    return _loaded[name]


def backend_names():
    """Every backend fastnn knows, whether or not it loads here."""
    return tuple(_MODULES)


def available_backends():
    """Names of the backends whose code imports and runs here."""
    out = []
    for name in _MODULES:
        try:
            load(name)
            out.append(name)
        except ImportError:
            pass
    return out


def unavailable_reasons():
    available_backends()
    return dict(_errors)


def _default_name():
    env = os.environ.get("FASTNN_BACKEND")
    if env:
        load(env)  # an explicit choice that fails is an error, not a silent fallback
        return env
    for name in _DEFAULT_ORDER:
        try:
            load(name)
            return name
        except ImportError as e:
            if name != "numpy":
                warnings.warn(f"fastnn: {e}; falling back to the next backend", RuntimeWarning,
                              stacklevel=3)
    raise RuntimeError("no fastnn backend could be loaded")


def get_backend():
    """The current backend (a Backend object; .name is its name)."""
    name = _state.name or _global["name"]
    if name is None:
        _global["name"] = name = _default_name()
    return _loaded[name]


def set_backend(name):
    """Make `name` the current backend for the whole process."""
    load(name)
    _global["name"] = name


@contextlib.contextmanager
def use_backend(name):
    """Use backend `name` inside a with-block (per thread), then restore the previous one."""
    load(name)
    prev = _state.name
    _state.name = name
    try:
        yield _loaded[name]
    finally:
        _state.name = prev


def resolve(backend=None):
    """A Backend for a `backend=` argument: None means the current one."""
    if backend is None:
        return get_backend()
    if isinstance(backend, Backend):
        return backend
    return load(backend)
