"""One thread count for every backend: OpenMP (the C kernels) and Numba's pool; how idle threads
wait; and how the count adapts to other processes' load.

Waiting. Waking a sleeping OpenMP thread costs 90-160 us per parallel region on this kind of VM
(fork+join of 2 threads, median, idle machine, the caller busy between regions), against
1.4-2.4 us while it still spins; a GPT training step runs ~100 regions. So fastnn's OpenMP
threads spin a short while after each region, GOMP_SPINCOUNT=10000 (~0.1-0.3 ms here), then
sleep (OMP_WAIT_POLICY=passive). Quiet, 2 threads, that took the GPT step from 73 to 41-48 ms and
the large MLP's from 13.9 to 7-8 ms (`fastnn bench --train`). Why not longer: a region that
finds the worker already asleep pays the caller's whole spin at the join (the worker's virtual
CPU ran only once the caller's stopped spinning, on this VM: 0.3 ms at 5,000, 0.6 ms at 10,000,
1.5 ms at 30,000 after the caller slept 5 ms), and the small MLP's step ran 0.30 ms at 10,000
against 0.32-0.48 ms at 30,000.

Load. Spinning is what a busy machine cannot afford: with one CPU-bound process on 2 cores,
spinning threads took the GPT step from 45 to 189 ms (4.2x), where sleeping ones lost 1.4x. So
the C kernels watch the machine (csrc/cpu.c: every ~100 ms of calls, other processes' CPU time
on our CPUs, from /proc/stat) and use only the cores left free: with one core taken, one thread,
which never forks and never spins; the Numba backend follows the same meter
(fastnn/backends/numba/__init__.py). `set_adaptive(False)` (or FASTNN_ADAPT_THREADS=0) keeps the
count fixed.

GNU OpenMP reads both variables once, when it loads: fastnn loads it with the C kernels on
their first call, after this module has run. A user's OMP_WAIT_POLICY or GOMP_SPINCOUNT stands
(GOMP_SPINCOUNT overrides either policy's spin count). PyTorch brings its own copy of the
runtime, which fastnn's kernels then share (one libgomp per process): import torch before fastnn
and both keep OpenMP's default (spin ~3 ms), unless the environment says otherwise.
"""
import os
import warnings

from .kernels import dispatch

# before any OpenMP runtime loads (see the docstring); a user's choice stands
USER_WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY")   # None: fastnn chose
USER_SPIN_COUNT = os.environ.get("GOMP_SPINCOUNT")
WAIT_POLICY = os.environ.setdefault("OMP_WAIT_POLICY", "passive")
SPIN_COUNT = "10000"
if USER_WAIT_POLICY is None and USER_SPIN_COUNT is None:
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT


_ADAPT_ENV = os.environ.get("FASTNN_ADAPT_THREADS")
if _ADAPT_ENV is not None and _ADAPT_ENV not in ("0", "1"):
    # a bad value must not stop `import fastnn`: say so, keep the default (csrc/cpu.c reads
    # only "0" as off)
    warnings.warn(f"FASTNN_ADAPT_THREADS={_ADAPT_ENV!r} ignored: use 0 (a fixed thread count) or "
                  f"1 (follow the load, the default)", RuntimeWarning, stacklevel=2)


def environ_without_fastnn():
    """This process's environment as it was before fastnn chose how OpenMP threads wait: for a
    subprocess that should run another library (PyTorch) with that library's own defaults."""
    env = dict(os.environ)
    if USER_WAIT_POLICY is None and env.get("OMP_WAIT_POLICY") == WAIT_POLICY:
        del env["OMP_WAIT_POLICY"]
    if USER_SPIN_COUNT is None and env.get("GOMP_SPINCOUNT") == SPIN_COUNT:
        del env["GOMP_SPINCOUNT"]
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


def _cython():
    try:
        return dispatch.load("cython").module
    except ImportError:
        return None


def set_adaptive(on=True):
    """Let the C kernels use fewer threads while other processes keep cores busy (the default),
    or keep the count set by set_num_threads (on=False)."""
    if not isinstance(on, (bool, int)):
        raise TypeError(f"set_adaptive: on must be True or False, got {on!r}")
    mod = _cython()
    if mod is not None:
        mod.set_adaptive(bool(on))


def effective_threads():
    """The threads a C kernel called now would use: get_num_threads(), fewer under load."""
    mod = _cython()
    return mod.effective_threads() if mod is not None else get_num_threads()


def reset_load():
    """Forget the load seen so far, so the next kernel calls start with every thread (what a
    benchmark wants at the start of a turn on a machine it has just seen go idle)."""
    mod = _cython()
    if mod is not None:
        mod.reset_load()

