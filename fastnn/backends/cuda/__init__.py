"""The cuda backend: numba.cuda kernels (optional; importing fastnn never needs it).

Kernels take and return host numpy arrays like every backend; data moves to and from the device
inside each call. Under NUMBA_ENABLE_CUDASIM=1 (set before numba is imported) the same code runs
on Numba's CUDA simulator, which is how CI checks it.

Kernel families live in gemm.py, ops.py, attention.py, conv.py, pool.py and select.py, and
fused.py holds the fused kernels of a training step (bias+activation, residual add+layer norm,
the AdamW update of every tensor in one launch); launch sizes and shared helpers are in
common.py. This module gathers them under one backend. For each kernel
NAME, device_kernel(NAME) is the same computation on device arrays (no host copies), which is
what bench/cuda_check.py times.
"""
import numpy as np
from numba import cuda

from . import attention, conv, fused, gemm, ops, pool, select

NAME = "cuda"
MODULES = (gemm, ops, attention, conv, pool, select, fused)


def device_kernel(name):
    """The device-array version of kernel `name`: same arguments, device arrays in and out."""
    if name == "gemm":
        def gemm_device(a, b, c, *args):
            batch = [x.reshape((1,) + x.shape) for x in (a, b, c)]
            gemm.gemm_device(*batch, *args)
        return gemm_device
    if name == "gemm_batched":
        return gemm.gemm_device
    for mod in (ops, attention, conv, pool, select, fused):
        fn = getattr(mod, name + "_device", None)
        if fn is not None:
            return fn
    raise KeyError(f"no cuda kernel named {name!r}")


def self_check():
    """Raise with the reason when there is no usable CUDA device (or simulator)."""
    if not cuda.is_available():
        raise RuntimeError("no usable CUDA GPU/driver (numba.cuda.is_available() is False); set "
                           "NUMBA_ENABLE_CUDASIM=1 before importing numba to run the kernels on "
                           "Numba's CUDA simulator")
    # Compiling and running one tiny kernel surfaces a broken toolkit (NVVM, driver) now, with
    # its own message, instead of at the first real call.
    x = np.array([-1.0, 2.0], dtype=np.float32)
    if not np.array_equal(ops.relu(x), np.array([0.0, 2.0], np.float32)):
        raise RuntimeError("the cuda backend's smoke test (relu on 2 values) gave a wrong result")
