"""What every `fastnn` command shares: its argument parser, the checks of option values, the
--backend and --threads options, and where outputs go by default (RUNS, the runs/ folder).

A bad argument raises UsageError (a ValueError) instead of printing usage and exiting, so
fastnn.cli prints it as one line, `fastnn train mlp: argument --epochs: ...`, with exit status 2,
and code that calls a command function directly gets an exception rather than an exit. --help
still prints the help and exits with status 0, as argparse does.
"""
import argparse
import copy
import math
import os
import re

from ..errors import UsageError
from ..kernels import dispatch
from ..threads import set_num_threads

# every checkpoint and output of the commands goes under this folder unless told otherwise
RUNS = "runs"


def runs_path(*parts):
    """A default output path: runs/<parts...>."""
    return os.path.join(RUNS, *parts)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written, and every option's default at the end of its help (options
    whose default is None say in their help what None means; required options have none)."""

    @staticmethod
    def _shows_default(action):
        return not (action.default is argparse.SUPPRESS or action.required
                    or not action.option_strings or action.default is None
                    or isinstance(action, (argparse._HelpAction, argparse._VersionAction)))

    def _get_help_string(self, action):
        help = action.help or ""
        if "%(default)" in help or "(default" in help or not self._shows_default(action):
            return help
        return (help + " " if help else "") + "(default: %(default)s)"

    def _format_action(self, action):
        if not action.help and self._shows_default(action):  # argparse skips an empty help
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)


class Parser(argparse.ArgumentParser):
    """argparse.ArgumentParser that raises UsageError for a bad argument (one line, naming the
    option) and shows every option's default in --help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        # "argument --epochs: must be >= 1, got '0'" reads better as "--epochs must be >= 1, ..."
        message = re.sub(r"^argument (\S+): must be", r"\1 must be", message)
        raise UsageError(f"{message} (see {self.prog} --help)")


def _number(kind, text):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        name = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text):
    """argparse type: an integer >= 1."""
    v = _number(int, text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return v


def nonnegative_int(text):
    """argparse type: an integer >= 0."""
    v = _number(int, text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return v


def positive_float(text):
    """argparse type: a finite number > 0."""
    v = _number(float, text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return v


def nonnegative_float(text):
    """argparse type: a finite number >= 0."""
    v = _number(float, text)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return v


def finite_float(text):
    """argparse type: any finite number."""
    return _number(float, text)


def fraction(text):
    """argparse type: a number in [0, 1) (a dropout rate, a beta)."""
    v = _number(float, text)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return v


def open_fraction(text):
    """argparse type: a number in (0, 1) (a validation share)."""
    v = _number(float, text)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text!r}")
    return v


def probability(text):
    """argparse type: a number in (0, 1] (top-p)."""
    v = _number(float, text)
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return v


def number_list(check=finite_float):
    """argparse type: comma-separated numbers, each passed through `check`."""
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
        try:
            return [check(t) for t in items]
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"in {text!r}: {e}") from None
    parse.__name__ = "number list"
    return parse


def add_runtime_options(p, threads=True):
    """--backend (checked against the backends fastnn knows) and --threads."""
    names = dispatch.backend_names()
    p.add_argument("--backend", choices=names, metavar="NAME",
                   help=f"kernel backend: {', '.join(names)} (default: the fastest available; "
                        f"cuda needs a GPU)")
    if threads:
        p.add_argument("--threads", type=positive_int, metavar="N",
                       help="CPU threads (default: every usable core)")


def device_name(text):
    """--device's value: cpu, cuda or cuda:N."""
    text = text.strip().lower()
    kind, _, index = text.partition(":")
    if text == "cpu" or (kind == "cuda" and (not index or index.isdigit())):
        return text
    raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")


def add_device_option(p):
    """--device: where the model and each batch live (model.to(device), x.to(device))."""
    p.add_argument("--device", type=device_name, default="cpu", metavar="DEVICE",
                   help="cpu (default) or cuda (cuda:N): keep the model and every batch on that "
                        "device, as PyTorch's model.to(device); cuda needs a GPU (`fastnn info` "
                        "lists them)")


def setup_runtime(args):
    """Apply --backend and --threads before any work starts. A backend that does not load here
    (cuda without a GPU, say) is a UsageError saying why."""
    name = getattr(args, "backend", None)
    if name:
        try:
            dispatch.set_backend(name)
        except ImportError as e:
            reason = str(e).replace(f"backend {name!r} is unavailable: ", "")
            what = "needs a CUDA GPU, and none is usable here" if name == "cuda" else \
                "is unavailable here"
            raise UsageError(f"argument --backend: {name!r} {what} ({reason}); `fastnn info` "
                             f"lists the backends that load") from None
    device = getattr(args, "device", None)
    if device and device != "cpu":
        from .. import cuda
        if not cuda.is_available():
            raise UsageError(f"argument --device: {device!r} needs a CUDA GPU, and none is "
                             f"usable here ({cuda.unavailable_reason()}); `fastnn info` says "
                             f"what it found")
        if getattr(args, "distributed", False):
            raise UsageError("argument --device: --distributed trains on CPU ranks only; "
                             "drop --device or --distributed")
    threads = getattr(args, "threads", None)
    if threads:
        set_num_threads(threads)


# ---------------------------------------------------------------- --distributed (MPI)
# the errors fastnn.cli prints as one line (a user's mistake), as in fastnn/cli.py
def _user_errors():
    from ..errors import MissingDependencyError
    return (ValueError, OSError, MissingDependencyError)


def add_distributed_option(p):
    """--distributed: data-parallel training over MPI (fastnn.distributed)."""
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training over MPI: launch with `mpiexec -n R ...`; each "
                        "rank trains on its share of every batch (--batch-size is the global "
                        "batch, split evenly over the ranks), rank 0 prints and writes the "
                        "checkpoint; threads per rank: --threads, else OMP_NUM_THREADS, else 1. "
                        "Without an MPI launcher: one process")


def start_distributed(args, prog):
    """(rank, world_size) for a command with --distributed: join the MPI job (one process
    group, threads per rank as fastnn.distributed.setup sets them), or (0, 1) without the flag
    or without an MPI launcher (then a note says so). Call it before reading any user input,
    so that a rank that fails on it (agree()) does not leave the others stuck in MPI_Init."""
    import sys
    from .. import distributed as dist
    if not getattr(args, "distributed", False):
        if dist.launched_by_mpi() and _launcher_size() > 1 and _launcher_rank() == 0:
            print(f"{prog}: note: started by an MPI launcher without --distributed: every rank "
                  f"trains alone and writes the same files; add --distributed to train together",
                  file=sys.stderr, flush=True)
        return 0, 1
    if not dist.launched_by_mpi():
        print(f"{prog}: note: --distributed without an MPI launcher: training as one process "
              f"(start R ranks with `mpiexec -n R {prog} --distributed ...`)", file=sys.stderr,
              flush=True)
        return 0, 1
    if not dist.is_available():
        raise UsageError("--distributed needs mpi4py and an MPI library: pip install "
                         "'fastnn[mpi]' (or pip install mpi4py mpich)")
    return dist.setup(threads=getattr(args, "threads", None))


def _launcher_size():
    for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_NTASKS"):
        if os.environ.get(v, "").isdigit():
            return int(os.environ[v])
    return 1


def _launcher_rank():
    for v in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
        if os.environ.get(v, "").isdigit():
            return int(os.environ[v])
    return 0


def distributed_world():
    """(rank, world_size) of the process group, (0, 1) when none is up."""
    from .. import distributed as dist
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class RankStopped(Exception):
    """Raised by agree() in the ranks that did not fail themselves: another rank failed and
    reports it. The command returns exit status 2, printing nothing."""


def agree(fn):
    """fn() on every rank, as one decision: when it raises a user's error (a ValueError,
    OSError, MissingDependencyError) on any rank, every rank stops at once, cleanly (the process
    group is left first): the first failing rank raises its error (fastnn.cli prints it as one
    line) and the others raise RankStopped (the command returns 2, printing nothing). For the
    checks of options, files and checkpoints, which a rank may fail alone (a file missing on
    one node)."""
    from .. import distributed as dist
    rank, world = distributed_world()
    err = result = None
    try:
        result = fn()
    except _user_errors() as e:
        err = e
    if world == 1:
        if err is not None:
            raise err
        return result
    import numpy as np
    first = np.array([rank if err is not None else world], np.int64)
    dist.all_reduce(first, op=dist.ReduceOp.MIN)
    first = int(first[0])
    if first == world:
        return result
    dist.cleanup()
    if rank == first:
        raise err
    raise RankStopped(f"rank {first} failed")


class abort_on_error:
    """Context manager around a distributed run: a user's error (ValueError, OSError,
    MissingDependencyError, which fastnn.cli would print and exit on) raised in one rank of a
    multi-rank job prints one line naming the rank and ends every rank at once (MPI_Abort),
    instead of leaving the others waiting in their next collective for FASTNN_DIST_TIMEOUT.
    Any other exception is left to fastnn.distributed's handler (a traceback, then MPI_Abort);
    with one process (or no process group) nothing changes."""

    def __init__(self, prog):
        self.prog = prog

    def __enter__(self):
        return self

    def __exit__(self, tp, value, tb):
        if tp is None or not issubclass(tp, _user_errors()):
            return False
        rank, world = distributed_world()
        if world == 1:
            return False
        import sys
        from ..distributed import process_group as pg
        msg = " ".join(line.strip() for line in str(value).splitlines()) or tp.__name__
        sys.stderr.write(f"{self.prog}: rank {rank} of {world}: {msg}\n{self.prog}: ending all "
                         f"{world} ranks (MPI_Abort)\n")
        sys.stderr.flush()
        stop = getattr(pg, "_stop_watchdog", None)
        if stop is not None:  # this rank reports itself: its watchdog stays quiet
            stop(claim=True)
        pg._S.MPI.COMM_WORLD.Abort(2)
        return False


def sum_across_ranks(values):
    """The elementwise sum over ranks of a list of numbers (float64), as a numpy array; the
    values themselves without a process group."""
    import numpy as np
    from .. import distributed as dist
    buf = np.array(values, np.float64).reshape(-1)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf
