"""The cython backend: Cython wrappers (_gemm.pyx, _ops.pyx, _attention.pyx here) over our own C
kernels in csrc/ (gemm*.c, ops_*.c, attention*.c): three extension modules, one backend.

Each kernel is the function of the same name as its declaration in fastnn/kernels/.
"""
import numpy as np

from . import _attention, _conv, _gemm, _ops, _pool, _select

NAME = "cython"
MODULES = (_gemm, _ops, _attention, _conv, _pool, _select)

cpu_path = _ops.cpu_path
cpu_detected = _ops.cpu_detected
get_num_threads = _ops.get_num_threads


effective_threads = _ops.effective_threads
others_load = _ops.others_load
get_adaptive = _ops.get_adaptive


def set_num_threads(n):
    for mod in MODULES:
        mod.set_num_threads(n)


def set_adaptive(on):
    """Use fewer threads while other processes keep cores busy (csrc/cpu.c); on by default."""
    for mod in MODULES:
        mod.set_adaptive(on)


def reset_load():
    """Forget the load seen so far: the next calls start with every thread."""
    for mod in MODULES:
        mod.reset_load()


def self_check():
    """Run one tiny kernel so a broken build fails at load time, not mid-training."""
    y = _ops.relu(np.array([-1.0, 2.0], np.float32))
    if not (y[0] == 0 and y[1] == 2):
        raise RuntimeError("cython relu self-check gave a wrong answer")
