"""The numba backend: @njit(parallel=True, cache=True) loops, no calls into BLAS.

Kernel families: gemm.py (packed, blocked GEMM), ops.py (elementwise, row, loss, norm,
embedding and optimizer kernels), attention.py (flash-style attention). Each kernel is the
function of the same name as its declaration in fastnn/kernels/.
"""
import functools
import os
import time
import types

import numba

from . import attention, conv, gemm, gemm_fused, ops, pool, select

NAME = "numba"
MODULES = (gemm, gemm_fused, ops, attention, pool, conv, select)


_wanted = {"n": None}     # the count set_num_threads asked for (None: numba's default)


def set_num_threads(n):
    _wanted["n"] = min(int(n), numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(_wanted["n"])


def get_num_threads():
    return numba.get_num_threads()


# Numba's threads are GNU OpenMP's (the omp layer), and spin after each region as the C kernels'
# do (GOMP_SPINCOUNT, fastnn/threads.py): on a busy machine they must likewise drop to the cores
# other processes leave free. The C side measures the load (csrc/cpu.c, every ~100 ms of calls);
# every kernel entry point here reads it at most that often and sets Numba's count to match.
try:
    from ..cython import _ops as _load_meter
except ImportError:           # the C kernels are not built: Numba keeps its count
    _load_meter = None

_ADAPT_PERIOD_S = 0.1
_adapt = {"t": 0.0}


def _follow_load():
    now = time.monotonic()
    if now - _adapt["t"] < _ADAPT_PERIOD_S:
        return
    _adapt["t"] = now
    wanted = _wanted["n"] or numba.config.NUMBA_NUM_THREADS
    n = max(1, min(wanted, _load_meter.effective_threads()))
    if n != numba.get_num_threads():
        numba.set_num_threads(n)


def _adapting(fn, monotonic=time.monotonic, state=_adapt):
    @functools.wraps(fn)
    def entry(*args, **kwargs):
        if monotonic() - state["t"] >= _ADAPT_PERIOD_S:   # the check inline: ~0.1 us a call
            _follow_load()
        return fn(*args, **kwargs)
    return entry


if _load_meter is not None and os.environ.get("FASTNN_ADAPT_THREADS") != "0":
    # the public Python entry points (compiled dispatchers are left as they are: they keep
    # inspect_asm & co. for the lessons, and are reached through these wrappers anyway)
    for _m in MODULES:
        for _k, _v in list(vars(_m).items()):
            if (not _k.startswith("_") and isinstance(_v, types.FunctionType)
                    and _v.__module__ == _m.__name__):
                setattr(_m, _k, _adapting(_v))
