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
    threads = getattr(args, "threads", None)
    if threads:
        set_num_threads(threads)
