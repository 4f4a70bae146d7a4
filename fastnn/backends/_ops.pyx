# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython wrappers over csrc/ (ops kernels). Inputs arrive validated from fastnn/kernels.py."""
from fastnn.backends._common cimport (fnn_cpu_isa, fnn_cpu_detect, fnn_isa_name,
                                      fnn_set_num_threads, fnn_get_num_threads)

__all__ = []


def cpu_path():
    """The instruction-set path the C kernels use here (FASTNN_ISA caps it)."""
    return fnn_isa_name(fnn_cpu_isa()).decode()


def set_num_threads(int n):
    fnn_set_num_threads(n)


def get_num_threads():
    return fnn_get_num_threads()


def cpu_detected():
    """What the CPU supports, before any FASTNN_ISA cap."""
    return fnn_isa_name(fnn_cpu_detect()).decode()
