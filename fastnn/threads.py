"""One thread count for every backend: OpenMP (the C kernels) and Numba's pool; and how idle
threads wait.

Idle OpenMP threads sleep by default (OMP_WAIT_POLICY=passive, set here unless the environment
sets it). GNU OpenMP's default spins ~10 ms after each parallel region: on a machine whose cores
are busy with other work, those spinning threads take the time slices the working ones need:
on 2 cores shared with other jobs (load average ~14), fastnn's MLP and GPT training steps ran
14-17x slower, and a 256^3 GEMM 73x slower, spinning than sleeping (issue 16; the figures are in
the README). OMP_WAIT_POLICY=active restores spinning. GNU OpenMP reads the variable once, when it loads: fastnn loads it with the C kernels
on their first call, after this module has run. PyTorch brings its own copy, which fastnn's
kernels then share (one libgomp per process): import torch before fastnn and both keep OpenMP's
spinning default, unless OMP_WAIT_POLICY is set in the environment.

A short spin instead (GOMP_SPINCOUNT, which overrides either policy's spin count) does not pay on a
busy machine: on 2 cores at load ~15, `fastnn bench --contention --train` on the C backend
measured the GPT step at 89 ms passive, 0.60 s with GOMP_SPINCOUNT=10000, 3.5 s with 100000 and
3.5 s active; the small MLP step at 0.7 ms, 20 ms, 174 ms and 0.6 ms (issue 16). What passive
costs on a quiet machine (up to 2x on tiny steps, measured earlier) is the price of that.
"""
import os

from .kernels import dispatch

# before any OpenMP runtime loads (see the docstring); a user's choice stands
USER_WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY")   # None: fastnn chose
WAIT_POLICY = os.environ.setdefault("OMP_WAIT_POLICY", "passive")


def environ_without_fastnn():
    """This process's environment as it was before fastnn chose an OpenMP wait policy: for a
    subprocess that should run another library (PyTorch) with that library's own defaults."""
    env = dict(os.environ)
    if USER_WAIT_POLICY is None and env.get("OMP_WAIT_POLICY") == WAIT_POLICY:
        del env["OMP_WAIT_POLICY"]
    return env

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
