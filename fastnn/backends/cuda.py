"""The cuda backend: numba.cuda kernels (optional; importing fastnn never needs it).

Kernels take and return host numpy arrays like every backend; data moves to and from the device
inside each call. Under NUMBA_ENABLE_CUDASIM=1 (set before numba is imported) the same code runs
on Numba's CUDA simulator, which is how CI checks it.
"""
from numba import cuda

NAME = "cuda"


def self_check():
    if not cuda.is_available():
        raise RuntimeError("no CUDA device (set NUMBA_ENABLE_CUDASIM=1 to use the simulator)")
