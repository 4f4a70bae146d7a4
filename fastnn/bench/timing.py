"""How `fastnn bench` times a case: check each implementation against naive numpy, then let them
take turns; and how a training step is timed (measure_steps).

Each implementation is called once (Numba compiles here) and its result is checked against naive
numpy's; a wrong one is marked "!". Then the implementations take turns, round-robin, `repeat`
times, each turn a batch of calls lasting about target_s, and a Result keeps every turn's time
per call. Taking turns puts every implementation under the same background noise, so the ratios
hold even when absolute times drift. Before each turn the bench waits until this process's
threads are idle (wait_idle: OpenBLAS's threads busy-wait ~0.1 s after a call, OpenMP's (GNU
libgomp: fastnn's C kernels, Numba's omp layer, PyTorch) ~10 ms), so no turn runs next to the
previous one's spinning threads; Result.busy_starts counts turns that began before they stopped.

A case with blas_check also times OpenBLAS alone (settled turns, right before the round-robin):
Result.lone_s, which the report compares with its round-robin figure (issue 16).
"""
import gc
import math
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from .. import threads
from .memory import peak_extra

# OpenBLAS's worker threads busy-wait about 2^28 cycles (~0.1 s) after each call before sleeping;
# on 2 cores that steals one from whatever runs next (PyTorch's matmul measured 3x slower right
# after numpy's). GNU OpenMP's threads spin ~10 ms likewise. So before each turn, wait (at most
# this long) until this process burns no CPU while it sleeps.
BLAS_SETTLE_S = 0.2
IDLE_PROBE_S = 0.002    # one probe: sleep this long, and see how much CPU the process used
IDLE_BUSY = 0.1         # ... idle when that is under this fraction of one core
SAMPLE_TARGET_S = {"tiny": 0.002, "quick": 0.02, "full": 0.05}
DEFAULT_REPEAT = {"tiny": 2, "quick": 7, "full": 7}
LONE_TURNS = 3   # turns of the lone OpenBLAS timing of a blas_check case


@dataclass
class Result:
    """One implementation on one case: status 'ok', 'n/a' (kernel missing), 'error' (it raised)
    or 'mismatch' (it ran, but its result differs from naive numpy's)."""
    impl: str
    status: str = "ok"
    note: str = ""
    first_call_s: float = None
    number: int = 0                 # calls per turn
    samples: list = field(default_factory=list)   # seconds per call, one per turn
    lone_samples: list = field(default_factory=list)  # the same, timed alone (blas_check cases)
    busy_starts: int = 0            # turns that started before the threads went idle (max wait)
    mem_traced: int = None          # --memory: peak bytes numpy allocated in a call (tracemalloc)
    mem_rss: int = None             # --memory: peak resident-set growth during the calls

    def time(self, stat="median"):
        return _stat(self.samples, stat)

    def lone_time(self, stat="median"):
        return _stat(self.lone_samples, stat)


def _stat(samples, stat):
    if not samples:
        return None
    return min(samples) if stat == "min" else statistics.median(samples)


def _as_arrays(out):
    """An implementation's result as a list of numpy arrays (copied: some are updated in place)."""
    items = out if isinstance(out, (tuple, list)) else (out,)
    arrays = []
    for x in items:
        if hasattr(x, "detach"):  # a torch tensor
            x = x.detach().cpu().numpy()
        arrays.append(np.array(x, copy=True))
    return arrays


def _mismatch(out, ref):
    """Why out differs from the reference result (None when it agrees)."""
    if len(out) != len(ref):
        return f"returned {len(out)} outputs, naive numpy {len(ref)}"
    for i, (o, r) in enumerate(zip(out, ref)):
        if o.shape != r.shape:
            return f"output {i} has shape {o.shape}, naive numpy's {r.shape}"
        if r.size == 0:
            continue
        tol = 2e-3 if r.dtype == np.float32 else 1e-6
        scale = max(1.0, float(np.max(np.abs(r))))
        err = float(np.max(np.abs(o.astype(r.dtype, copy=False) - r)))
        if not err <= tol * scale:  # also catches NaN
            return f"output {i} differs from naive numpy's by up to {err:.3g} (scale {scale:.3g})"
    return None


def wait_idle(max_s=BLAS_SETTLE_S, probe_s=IDLE_PROBE_S, busy=IDLE_BUSY):
    """Sleep until the threads of this process stop running (those a library left busy-waiting
    after its last call): probes of probe_s, each measuring the process's CPU time while the
    caller sleeps. True once a probe finds them idle, False if max_s passed first."""
    deadline = time.perf_counter() + max_s
    while True:
        c0, w0 = time.process_time(), time.perf_counter()
        time.sleep(probe_s)
        w1 = time.perf_counter()
        if time.process_time() - c0 < busy * (w1 - w0):
            return True
        if w1 >= deadline:
            return False


def _wait_out_blas(blas_end, settle_s):
    """After a turn that called OpenBLAS (ended at perf_counter() == blas_end; None: it did not),
    sleep until settle_s has passed: its threads spin on, and wait_idle's short probes can miss
    them (seen: idle after 4-7 ms while a thread spun ~0.1 s)."""
    if blas_end is not None and settle_s:
        time.sleep(max(0.0, blas_end + settle_s - time.perf_counter()))


def _turn(fn, number):
    """Seconds per call over `number` back-to-back calls, with the garbage collector paused."""
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - t0) / number
    finally:
        if gc_enabled:
            gc.enable()


def _calls_per_turn(fn, target_s):
    """How many calls make a turn of about target_s. Sized from the fastest of a few warm calls
    (up to 5, or fewer once they add up to target_s): one call that a busy machine stalled would
    otherwise shrink every turn to a single, noisy call."""
    best, spent = math.inf, 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        fn()
        once = time.perf_counter() - t0
        best, spent = min(best, once), spent + once
        if spent >= target_s:
            break
    return max(1, min(1_000_000, int(target_s / max(best, 1e-7))))


def measure(case, impls, repeat, target_s=0.02, settle_s=BLAS_SETTLE_S, memory=False):
    """Time every implementation of a case, taking turns; returns {impl: Result}. settle_s: the
    longest wait for idle threads before a turn (0: no wait); memory: then measure each one's
    peak extra memory (memory.peak_extra)."""
    results = {impl: Result(impl) for impl in impls}
    fns, ref = {}, None
    # naive numpy first: its result is the reference for the others' check
    for impl in sorted(impls, key=lambda i: i != "numpy"):
        res = results[impl]
        try:
            fn = case.build(impl)
            t0 = time.perf_counter()
            out = fn()  # compiles Numba code, fills caches
            res.first_call_s = time.perf_counter() - t0
            out = _as_arrays(out)
        except NotImplementedError as e:
            res.status, res.note = "n/a", str(e)
            continue
        except Exception as e:  # noqa: BLE001 - a broken kernel is reported, not fatal
            res.status, res.note = "error", f"{type(e).__name__}: {e}"
            continue
        if impl == "numpy":
            ref = out
        elif ref is not None:
            why = _mismatch(out, ref)
            if why:
                res.status, res.note = "mismatch", why
        del out
        fns[impl] = fn
    del ref
    for impl, fn in fns.items():
        results[impl].number = _calls_per_turn(fn, target_s)

    def settle(res):
        if settle_s and not wait_idle(settle_s):
            res.busy_starts += 1
        threads.reset_load()   # the other implementations' turns are not load on this one

    if getattr(case, "blas_check", False) and "openblas" in fns:
        # OpenBLAS alone, from idle threads: what its round-robin column should come close to
        res = results["openblas"]
        for _ in range(LONE_TURNS):
            settle(res)
            res.lone_samples.append(_turn(fns["openblas"], res.number))
    order = list(fns)
    blas_impls = set(getattr(case, "blas", ()))
    blas_end = None
    for turn in range(repeat):
        shift = turn % max(len(order), 1)  # rotate who goes first, so no one always follows BLAS
        for impl in order[shift:] + order[:shift]:
            _wait_out_blas(blas_end, settle_s)
            settle(results[impl])
            results[impl].samples.append(_turn(fns[impl], results[impl].number))
            blas_end = time.perf_counter() if impl in blas_impls else None
    if memory:
        for impl, fn in fns.items():
            settle(results[impl])
            results[impl].mem_traced, results[impl].mem_rss = peak_extra(fn)
            if impl == "torch":   # its allocator is invisible to tracemalloc
                results[impl].mem_traced = None
    fns.clear()  # frees this case's inputs before the next case allocates its own
    return results


class LocalSteps:
    """A training step run in this process, timed in turns (measure_steps). worker.RemoteSteps
    has the same interface for a step run in another process."""

    def __init__(self, fn, reset_load=True):
        self.fn, self.number, self.first_s = fn, 0, None
        self.reset_load = reset_load

    def start(self, target_s):
        """Run the first step (it compiles, allocates), time a second to size the turns: sets
        .number (steps per turn, at least 2); returns the first step's seconds."""
        t0 = time.perf_counter()
        self.fn()
        self.first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.fn()
        self.number = max(2, int(target_s / max(time.perf_counter() - t0, 1e-7)))
        return self.first_s

    def turn(self, settle_s):
        """Wait for idle threads, one untimed step (it wakes this implementation's thread pool,
        as any step of a training loop finds it awake), then .number steps timed one by one
        (the garbage collector stays on, as in a training loop). Returns (seconds per step,
        whether the threads were still busy when the wait gave up)."""
        busy = bool(settle_s) and not wait_idle(settle_s)
        if self.reset_load:   # the other implementations' turns are not load on this one
            threads.reset_load()
        self.fn()
        samples = []
        for _ in range(self.number):
            t0 = time.perf_counter()
            self.fn()
            samples.append(time.perf_counter() - t0)
        return samples, busy

    def memory(self, settle_s):
        """(traced, RSS) peaks of one step (memory.peak_extra)."""
        if settle_s:
            wait_idle(settle_s)
        return peak_extra(self.fn, calls=1)

    def close(self):
        self.fn = None


def measure_steps(steps, repeat, target_s=0.1, settle_s=BLAS_SETTLE_S, memory=False,
                  reset_load=True, blas=()):
    """Time training steps, {impl: build()}, taking turns; returns {impl: Result} whose samples
    are single steps' seconds (so the worst step shows). build() returns the step (a callable,
    run here) or a RemoteSteps (run in a worker process). Each turn: wait for idle threads, one
    untimed step, then steps timed one by one, about target_s of them (at least 2).
    reset_load: each fastnn turn starts with every thread, as after an idle spell (the C kernels
    take fewer under load, csrc/cpu.c); False when the load is real (--contention).
    blas: implementations that call OpenBLAS; the turn after one of theirs waits settle_s out
    (as measure() does: its threads spin on where wait_idle can miss them)."""
    results = {impl: Result(impl) for impl in steps}
    live = {}
    try:
        for impl, build in steps.items():
            res = results[impl]
            try:
                built = build()
                runner = built if hasattr(built, "turn") else LocalSteps(built, reset_load)
                live[impl] = runner
                res.first_call_s = runner.start(target_s)
                res.number = runner.number
            except NotImplementedError as e:
                res.status, res.note = "n/a", str(e)
                live.pop(impl, None)
            except Exception as e:  # noqa: BLE001 - reported in the table, not fatal
                res.status, res.note = "error", f"{type(e).__name__}: {e}"
                live.pop(impl, None)
        order = list(live)
        blas_end = None
        for turn in range(repeat):
            shift = turn % max(len(order), 1)
            for impl in order[shift:] + order[:shift]:
                _wait_out_blas(blas_end, settle_s)
                samples, busy = live[impl].turn(settle_s)
                results[impl].samples += samples
                results[impl].busy_starts += busy
                blas_end = time.perf_counter() if impl in blas else None
        if memory:
            for impl, runner in live.items():
                results[impl].mem_traced, results[impl].mem_rss = runner.memory(settle_s)
                if impl == "torch":   # its allocator is invisible to tracemalloc
                    results[impl].mem_traced = None
    finally:
        for runner in live.values():
            runner.close()
    return results
