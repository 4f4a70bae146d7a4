"""`fastnn bench --contention`: the chosen cases on a quiet machine, then with competing
CPU-bound processes (busy loops), and how much each implementation slows down.

A student's laptop runs a browser; a shared server runs other jobs. With one of two cores taken,
a fair slowdown is about 2x; a multi-threaded kernel can lose far more when one of its threads is
descheduled and the others spin at a barrier, or wait for it to finish its share.

Each phase times single calls (or training steps), implementations taking turns as in the other
tables (timing.measure_steps). Reported per implementation: the quiet and contended medians,
their ratio (the slowdown), and the worst single contended call over the quiet median (a
stall). Quiet is this machine without the busy processes: other load, if any, stays in both.
"""
import contextlib
import functools
import os
import subprocess
import sys
import time

from .timing import measure_steps

# a CPU-bound loop that ends by itself once its parent is gone (a SIGTERM'd bench runs no
# cleanup), checking every 10^6 iterations
BUSY_LOOP = ("import os, sys\nparent = int(sys.argv[1])\nwhile os.getppid() == parent:\n"
             "    for _ in range(1000000):\n        pass\n")
BUSY_WARMUP_S = 0.2    # let the busy processes start and take their core


@contextlib.contextmanager
def busy_processes(n):
    """n CPU-bound subprocesses (Python busy loops), killed on the way out, error or not.
    Yields the list of subprocess.Popen."""
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(os.getpid())],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        time.sleep(BUSY_WARMUP_S)
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def contend(case, impls, n_busy, repeat, target_s, settle_s, builders=None):
    """(quiet, contended): {impl: Result} of one case, each from timing.measure_steps.
    builders: {impl: build()} (default: case.build(impl), in this process)."""
    if builders is None:
        builders = {impl: functools.partial(case.build, impl) for impl in impls}
    blas = getattr(case, "blas", ())
    quiet = measure_steps(builders, repeat, target_s, settle_s, blas=blas)
    with busy_processes(n_busy):
        # no reset: the busy processes are the load the C kernels should see and adapt to
        loaded = measure_steps(builders, repeat, target_s, settle_s, reset_load=False, blas=blas)
    return quiet, loaded
