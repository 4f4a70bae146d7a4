"""`fastnn bench --memory`: the extra memory a call needs, two ways.

    traced  the peak of numpy's allocations during the call, above what was allocated before it
            (tracemalloc; numpy reports its array buffers there). Exact for numpy-based code,
            blind to PyTorch's allocator and to C kernels' own malloc (their scratch).
    RSS     the peak growth of the process's resident set during the calls, sampled every
            0.5 ms from /proc/self/statm (Linux): sees every allocator, but misses memory that
            malloc reuses from earlier frees, and short peaks between samples.
"""
import gc
import os
import resource
import threading
import time
import tracemalloc

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes():
    """This process's resident set size, or None where /proc is unavailable."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class _RssPeak(threading.Thread):
    """Samples the resident set size until stopped; .peak is the largest sample."""

    def __init__(self, interval=0.0005):
        super().__init__(daemon=True)
        self.interval, self.peak = interval, rss_bytes() or 0
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self.peak = max(self.peak, rss_bytes() or 0)
            time.sleep(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, rss_bytes() or 0)


def peak_extra(fn, calls=2):
    """(traced peak bytes, RSS peak growth bytes or None) over `calls` calls of fn, beyond what
    was allocated before them. The RSS is sampled in a first pass and tracemalloc (which slows
    allocation) traces a second, so neither disturbs the other."""
    gc.collect()
    rss0 = rss_bytes()
    rss_growth = None
    if rss0 is not None:
        sampler = _RssPeak()
        sampler.start()
        try:
            for _ in range(calls):
                fn()
        finally:
            sampler.stop()
        rss_growth = max(0, sampler.peak - rss0)
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(calls):
            fn()
        traced = max(0, tracemalloc.get_traced_memory()[1] - base)
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return traced, rss_growth


def steady_state(step, steps=3):
    """Does a training step allocate anew once warm? Runs step once (the first step: buffers,
    optimizer state), then `steps` more, tracing numpy's allocations. Returns a dict: first_peak
    (bytes the first step allocated at its peak), later_peak (the largest peak of new allocations
    in one later step, net of what the step freed before: 0 when every buffer is reused; arrays
    freed and then made anew within the step, such as parameter gradients that zero_grad() set to
    None, add nothing to it, but show in minor_faults when malloc returns them to the system),
    later_growth (bytes still held after the
    later steps that were not held after the first: a leak when it grows), minor_faults (minor
    page faults per later step: memory newly touched, any allocator), pool_held (bytes of free
    work buffers fastnn.nn.buffer_pool keeps for the next step: memory the reuse costs, already
    allocated before the later steps, so not in later_peak) and pool_new (buffers the pool had to
    create during the later steps: 0 when every fused op found its buffers)."""
    from ..nn.buffer_pool import POOL
    POOL.clear()   # so the first step makes its work buffers, as a fresh process's would
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        after_first, first_peak = tracemalloc.get_traced_memory()
        later_peak = 0
        pool0 = POOL.allocated
        faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(steps):
            start = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            step()
            later_peak = max(later_peak, tracemalloc.get_traced_memory()[1] - start)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
        end = tracemalloc.get_traced_memory()[0]
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return dict(first_peak=first_peak - base, later_peak=later_peak,
                later_growth=end - after_first, minor_faults=faults / steps,
                pool_held=POOL.held_bytes, pool_new=POOL.allocated - pool0)
