"""fastnn: a deep-learning library whose kernels are written by hand in C, Cython and Numba.

    import fastnn
    fastnn.set_backend("numba")               # or "cython", "numpy", "cuda"
    with fastnn.use_backend("numpy"): ...     # per-block choice
    fastnn.kernels.matmul(a, b)               # kernels on plain numpy arrays
"""
from importlib.metadata import PackageNotFoundError, version as _version

from . import kernels
from .backends import (available_backends, get_backend, set_backend, use_backend)
from .threads import get_num_threads, set_num_threads

try:
    __version__ = _version("fastnn")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["kernels", "available_backends", "get_backend", "set_backend", "use_backend",
           "get_num_threads", "set_num_threads", "__version__"]
