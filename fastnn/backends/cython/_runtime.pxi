# Included by each extension module (_gemm, _ops, _attention): each links its own copy of
# csrc/cpu.c, so each has its own thread count and ISA choice, set through these functions.
from fastnn.backends.cython._common cimport (fnn_cpu_isa, fnn_cpu_detect, fnn_isa_name,
                                             fnn_set_num_threads, fnn_get_num_threads,
                                             fnn_set_adaptive, fnn_get_adaptive, fnn_reset_load,
                                             fnn_others_load, fnn_get_max_threads)


def cpu_path():
    """The instruction-set path the C kernels use here (FASTNN_ISA caps it)."""
    return fnn_isa_name(fnn_cpu_isa()).decode()


def set_num_threads(int n):
    fnn_set_num_threads(n)


def get_num_threads():
    """The thread count set (OpenMP's)."""
    return fnn_get_max_threads()


def effective_threads():
    """The threads a kernel called now would use: fewer while other processes keep cores busy."""
    return fnn_get_num_threads()


def set_adaptive(bint on):
    fnn_set_adaptive(on)


def get_adaptive():
    return bool(fnn_get_adaptive())


def reset_load():
    fnn_reset_load()


def others_load():
    """Other processes' CPU use on this process's CPUs at the last look, in CPUs."""
    return fnn_others_load()


def cpu_detected():
    """What the CPU supports, before any FASTNN_ISA cap."""
    return fnn_isa_name(fnn_cpu_detect()).decode()
