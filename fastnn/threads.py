"""One thread count for every backend: OpenMP (the C kernels) and Numba's pool."""
import os

from .kernels import dispatch

_threads = {"n": None}


def set_num_threads(n):
    """Use n threads in the C kernels (OpenMP) and in Numba's parallel loops."""
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _threads["n"] = n
    # Numba first: launching its OpenMP-based pool resets OpenMP's thread count.
    for name in ("numba", "cython"):
        try:
            dispatch.load(name).module.set_num_threads(n)
        except ImportError:
            pass


def get_num_threads():
    """The thread count set by set_num_threads, else the number of CPUs this process may use."""
    if _threads["n"] is not None:
        return _threads["n"]
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
