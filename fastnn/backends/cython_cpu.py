"""The cython backend: Cython wrappers (fastnn/backends/_*.pyx) over our own C kernels in csrc/.

GEMM (csrc/gemm*.c), the elementwise, row, loss, embedding and optimizer kernels (csrc/ops_*.c)
and attention (csrc/attention*.c) are three extension modules; this module gathers their kernels.
"""
import numpy as np

from . import _attention, _gemm, _ops

NAME = "cython"

for _mod in (_gemm, _ops, _attention):
    for _name in _mod.__all__:
        globals()[_name] = getattr(_mod, _name)

cpu_path = _ops.cpu_path
get_num_threads = _ops.get_num_threads


def set_num_threads(n):
    for mod in (_gemm, _ops, _attention):
        mod.set_num_threads(n)


def self_check():
    """Run one tiny kernel so a broken build fails at load time, not mid-training."""
    if "relu" in _ops.__all__:
        y = _ops.relu(np.array([-1.0, 2.0], np.float32))
        if not (y[0] == 0 and y[1] == 2):
            raise RuntimeError("cython relu self-check gave a wrong answer")
cpu_detected = _ops.cpu_detected
