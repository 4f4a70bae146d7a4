"""The `fastnn` command line.

    fastnn info                          version, backends, CPU code path, threads
    fastnn bench [...]                   the benchmark tables (fastnn/benchmarks.py)
    fastnn train MODEL [...]             perceptron | mlp | gpt | diffusion
    fastnn eval MODEL [...]              mlp | diffusion
    fastnn generate [...]                text from a GPT checkpoint
    fastnn sample [...]                  images from a diffusion checkpoint

Each model's commands live next to the model (fastnn/models/*_cli.py, perceptron.py: functions
taking argv), so this file dispatches, and is the one place that turns a user's mistake into a
message: a ValueError (CheckpointError included), OSError or MissingDependencyError raised by a
command is printed as one line on stderr, without a traceback, and the exit status is 2.
"""
import importlib
import sys

from .errors import MissingDependencyError
from .serialization import CheckpointError

# command -> {model: "module:function"}; a command with one entry under None takes no model name.
COMMANDS = {
    "bench": {None: "fastnn.bench.cli:main"},
    "train": {"perceptron": "fastnn.models.perceptron:train_main",
              "mlp": "fastnn.models.mlp_cli:train_main",
              "gpt": "fastnn.models.gpt_cli:train_main",
              "diffusion": "fastnn.models.diffusion_cli:train_main"},
    "eval": {"mlp": "fastnn.models.mlp_cli:eval_main",
             "diffusion": "fastnn.models.diffusion_cli:eval_main"},
    "generate": {None: "fastnn.models.gpt_cli:generate_main"},
    "sample": {None: "fastnn.models.diffusion_cli:sample_main"},
}

# what a user can fix: a bad option, file, checkpoint or text, a missing optional package
USER_ERRORS = (ValueError, CheckpointError, OSError, MissingDependencyError)


def cmd_info(argv):
    import fastnn
    from fastnn.info import report

    if argv:
        print(f"fastnn info: unexpected arguments {argv}", file=sys.stderr)
        return 2
    print(report(fastnn.__version__))
    return 0


def _usage():
    print(__doc__.strip(), file=sys.stderr)
    return 2


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "info":
        return cmd_info(rest)
    if cmd not in COMMANDS:
        print(f"fastnn: unknown command {cmd!r}", file=sys.stderr)
        return _usage()
    table = COMMANDS[cmd]
    prog = f"fastnn {cmd}"
    if None in table:
        target = table[None]
    else:
        if not rest or rest[0] not in table:
            got = repr(rest[0]) if rest else "nothing"
            print(f"fastnn {cmd}: expected a model, one of {', '.join(table)}; got {got}",
                  file=sys.stderr)
            return 2
        prog = f"fastnn {cmd} {rest[0]}"
        target, rest = table[rest[0]], rest[1:]
    module, func = target.split(":")
    command = getattr(importlib.import_module(module), func)
    try:
        return command(rest) or 0
    except USER_ERRORS as e:
        return _fail(prog, e)


def _fail(prog, error):
    """One line on stderr, `prog: message`; exit status 2."""
    msg = " ".join(line.strip() for line in str(error).splitlines()) or type(error).__name__
    print(f"{prog}: {msg}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
