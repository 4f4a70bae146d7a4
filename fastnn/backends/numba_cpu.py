"""The numba backend: @njit(parallel=True, cache=True) loops, no calls into BLAS.

Kernel families live in numba_gemm.py, numba_ops.py and numba_attention.py; this module gathers
them under one backend.
"""
import numba

from . import numba_attention, numba_gemm, numba_ops

NAME = "numba"

for _mod in (numba_gemm, numba_ops, numba_attention):
    for _name in _mod.__all__:
        globals()[_name] = getattr(_mod, _name)


def set_num_threads(n):
    numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))


def get_num_threads():
    return numba.get_num_threads()
