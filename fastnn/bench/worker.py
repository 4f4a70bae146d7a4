"""PyTorch's training steps timed in a process of their own, with PyTorch's own defaults.

`import fastnn` sets OMP_WAIT_POLICY=passive (fastnn/threads.py), and OpenMP is one runtime per
process: PyTorch timed in fastnn's process would run with fastnn's policy, not its own (its small
steps ran 1.3-2.4x slower so, issue 16). So `fastnn bench --train` and `--contention` run
PyTorch's step in a worker process started with the environment as it was before fastnn changed
it, importing torch before fastnn. The bench still takes turns: it asks the worker for one turn
of timed steps, waits for the reply (its own threads idle meanwhile), then runs fastnn's turn.

The worker speaks pickle over its stdin/stdout; whatever it prints goes to a log file, whose tail
is quoted if it fails.
"""
import functools
import os
import pickle
import subprocess
import sys
import tempfile

from ..threads import environ_without_fastnn
from .timing import LocalSteps, wait_idle
from .train_cases import train_cases

# torch first: its OpenMP runtime reads the environment when it loads, before fastnn's import
# could set a wait policy in this new process
_WORKER_MAIN = ("import os\nSEEN = os.environ.get('OMP_WAIT_POLICY')\nimport torch\n"
                "from fastnn.bench.worker import serve\nserve(SEEN)\n")


# the implementations a training case runs as: fastnn backends, "torch" (PyTorch in a worker
# process of its own, with its own OpenMP defaults: worker.py) and "torch-here" (PyTorch in this
# process, under the wait policy fastnn set)
TORCH_HERE = "torch-here"


def step_builders(case, impls, n_threads=None):
    """{impl: build()} for timing.measure_steps; n_threads: PyTorch's thread count in its worker
    (None: its default)."""
    out = {}
    for impl in impls:
        if impl == "torch":
            out[impl] = functools.partial(RemoteSteps, case.name, case.sizes, n_threads)
        else:
            out[impl] = functools.partial(case.build, "torch" if impl == TORCH_HERE else impl)
    return out


class WorkerError(RuntimeError):
    """The worker process failed or ended; the message quotes its log's tail."""


class RemoteSteps:
    """One training case's PyTorch step, run in a worker process. The same interface as
    timing.LocalSteps: start(), turn(), memory(), close()."""

    def __init__(self, case_name, sizes, n_threads=None):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER_MAIN],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=environ_without_fastnn())
        self.number = 0
        try:
            self._call("build", case_name, sizes, n_threads)
        except BaseException:
            self.close()
            raise

    def _call(self, op, *args):
        try:
            pickle.dump((op, args), self.proc.stdin)
            self.proc.stdin.flush()
            status, value = pickle.load(self.proc.stdout)
        except (EOFError, BrokenPipeError, pickle.UnpicklingError) as e:
            tail = self._log_tail()
            self.close()
            raise WorkerError(f"PyTorch's worker process ended ({type(e).__name__}); its log "
                              f"ends: {tail}") from None
        if status != "ok":
            raise WorkerError(f"PyTorch's worker process: {value}")
        return value

    def _log_tail(self, n=600):
        if self.log.closed:
            return "(closed earlier)"
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-n:].strip() or "(empty)"

    def start(self, target_s):
        """The first step (seconds), and how many steps make a turn of about target_s."""
        first_s, self.number = self._call("start", target_s)
        return first_s

    def turn(self, settle_s):
        """(seconds of each of `number` steps, whether the threads were still busy at the
        start). This process's threads settle first, so the worker's turn starts from idle
        threads on both sides; the worker settles its own before and after the turn."""
        busy = bool(settle_s) and not wait_idle(settle_s)
        samples, worker_busy = self._call("turn", settle_s)
        return samples, busy or worker_busy

    def describe(self):
        """{omp_wait_policy: as the worker's PyTorch found it (None: unset), torch_threads,
        pid}."""
        return self._call("describe")

    def memory(self, settle_s):
        """(None, peak RSS growth over one step): tracemalloc cannot see PyTorch's allocator."""
        return None, self._call("memory", settle_s)

    def close(self):
        if self.log.closed:
            return
        if self.proc.poll() is None:
            try:
                pickle.dump(("close", ()), self.proc.stdin)
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def serve(seen_policy=None):
    """The worker's loop: build a case's PyTorch step, then run what the bench asks for.
    seen_policy: OMP_WAIT_POLICY as PyTorch's OpenMP runtime found it (None: unset)."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)            # stray prints go to the log, not into the pickle stream
    requests = sys.stdin.buffer
    state = {}

    def build(name, sizes, n_threads):
        import torch
        if n_threads:
            torch.set_num_threads(n_threads)
        (case,) = train_cases(sizes, [name])
        state["steps"] = LocalSteps(case.build("torch"))

    def start(target_s):
        steps = state["steps"]
        return steps.start(target_s), steps.number

    def turn(settle_s):
        out = state["steps"].turn(settle_s)
        if settle_s:
            wait_idle(settle_s)   # PyTorch's threads spin after the turn: not into fastnn's
        return out

    def describe():
        import torch
        return {"omp_wait_policy": seen_policy, "torch_threads": torch.get_num_threads(),
                "pid": os.getpid()}

    handlers = {"build": build, "start": start, "turn": turn, "describe": describe,
                "memory": lambda settle_s: state["steps"].memory(settle_s)[1]}
    while True:
        try:
            op, args = pickle.load(requests)
        except EOFError:
            return
        if op == "close":
            return
        try:
            reply = ("ok", handlers[op](*args))
        except Exception as e:  # noqa: BLE001 - sent to the bench, which raises it
            reply = ("error", f"{op}: {type(e).__name__}: {e}")
        pickle.dump(reply, replies)
        replies.flush()
