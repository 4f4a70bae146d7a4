"""The numba backend: @njit(parallel=True, cache=True) loops, no calls into BLAS.

Kernel families: gemm.py (packed, blocked GEMM), ops.py (elementwise, row, loss, norm,
embedding and optimizer kernels), attention.py (flash-style attention). Each kernel is the
function of the same name as its declaration in fastnn/kernels/.
"""
import numba

from . import attention, conv, gemm, gemm_fused, ops, pool, select

NAME = "numba"
MODULES = (gemm, gemm_fused, ops, attention, pool, conv, select)


def set_num_threads(n):
    numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))


def get_num_threads():
    return numba.get_num_threads()
