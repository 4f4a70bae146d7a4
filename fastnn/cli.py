"""The `fastnn` command line: lessons you can run, and the benchmarks.

Each model's commands live next to the model (fastnn/models/*_cli.py, perceptron.py: functions
taking argv, with parsers from fastnn/models/common_cli.py), so this file dispatches, and is the
one place that turns a user's mistake into a message: a ValueError (UsageError and
CheckpointError included), OSError or MissingDependencyError raised by a command is printed as
one line on stderr, `fastnn <command>: <message>`, without a traceback, and the exit status is 2.
"""
import argparse
import contextlib
import importlib
import sys

from .errors import MissingDependencyError, UsageError
from .serialization import CheckpointError

# command -> {model: "module:function"}; a command with one entry under None takes no model name.
COMMANDS = {
    "bench": {None: "fastnn.bench.cli:main"},
    "train": {"perceptron": "fastnn.models.perceptron:train_main",
              "mlp": "fastnn.models.mlp_cli:train_main",
              "gpt": "fastnn.models.gpt_cli:train_main",
              "diffusion": "fastnn.models.diffusion_cli:train_main",
              "cnn": "fastnn.models.cnn_cli:train_main"},
    "eval": {"mlp": "fastnn.models.mlp_cli:eval_main",
             "diffusion": "fastnn.models.diffusion_cli:eval_main",
             "cnn": "fastnn.models.cnn_cli:eval_main"},
    "generate": {None: "fastnn.models.gpt_cli:generate_main"},
    "sample": {None: "fastnn.models.diffusion_cli:sample_main"},
    "features": {None: "fastnn.models.features_cli:main"},
    "style": {None: "fastnn.models.style_cli:main"},
}

# what a user can fix: a bad option, file, checkpoint or text, a missing optional package
USER_ERRORS = (ValueError, CheckpointError, OSError, MissingDependencyError)

HELP = """\
usage: fastnn COMMAND [MODEL] [options]      (fastnn COMMAND --help for each command's options)

fastnn runs the lessons of a hand-written deep-learning library, and its benchmarks.
Checkpoints and pictures go to the runs/ folder unless you pass --out.

commands:
  info                   what runs here: fastnn's version, the backends that load (numpy, numba,
                         cython, cuda) and why others do not, the CPU code path, the threads,
                         the GPUs (--device cuda on train and generate) or why there are none
                           fastnn info
  bench                  time every kernel on every backend against naive numpy, OpenBLAS and
                         PyTorch (about 2 minutes)
                           fastnn bench --kernels gemm,gelu --plot runs/bench.png
  train perceptron       a perceptron learns AND and OR but not XOR; one hidden layer learns XOR
                           fastnn train perceptron
  train mlp              an MLP learns the 8x8 digits: progress bar, loss, test accuracy
                           fastnn train mlp --epochs 60 --plot runs/mlp.png
  train gpt              a character-level GPT learns text (CPython's docs by default)
                           fastnn train gpt --minutes 3
  train diffusion        a prompt-conditioned diffusion model learns to draw digits (~35 s),
                         or coloured objects from prompts like "un pez rojo" (--data shapes)
                           fastnn train diffusion
  train cnn              a small CNN learns the digits, or objects drawn from shapes (--data shapes)
                           fastnn train cnn --data shapes
  features               what each layer of a trained CNN responds to: filters, feature maps,
                         images that excite its channels, and linear probes per layer
                           fastnn features --checkpoint runs/cnn.npz --out runs/features
  eval mlp               reload runs/mlp.npz and measure its test accuracy
                           fastnn eval mlp --checkpoint runs/mlp.npz
  eval cnn               reload a CNN checkpoint and measure its test accuracy, per class too
                           fastnn eval cnn --checkpoint runs/cnn.npz
  eval diffusion         how often samples show the prompted digit, and how close to real ones
                           fastnn eval diffusion --guidance 0,1,3
  generate               text from a trained GPT, at one or several temperatures
                           fastnn generate --prompt "The " --temperatures 0,0.5,1,1.5
  sample                 digits drawn by the diffusion model from a prompt ("7", "seven", "siete"),
                         or shapes ("a red fish"); --init IMAGE --strength S: img2img
                           fastnn sample --prompt siete --out runs/samples/siete.png
  style                  neural style transfer: a photograph repainted in another image's style,
                         with random conv features (no download); --show-process for the steps
                           fastnn style --content photo.jpg --style sample:flower --show-process

options:
  -h, --help             show this help and exit
  --version              show fastnn's version and exit
"""

# `fastnn train --help`, `fastnn eval --help`: the models each takes, one line each
MODEL_HELP = {
    "train": {
        "perceptron": ("AND, OR, XOR: one neuron, then one hidden layer (a second)",
                       "fastnn train perceptron"),
        "mlp": ("an MLP on scikit-learn's 8x8 digits; writes runs/mlp.npz (10 s)",
                "fastnn train mlp --epochs 60 --plot runs/mlp.png"),
        "gpt": ("a character-level GPT on CPython's docs or --text FILE; writes runs/gpt.npz",
                "fastnn train gpt --minutes 3"),
        "diffusion": ("a prompt-conditioned DDPM on the digits; writes runs/diffusion.npz "
                      "(~35 s); --data shapes: a U-Net on the shapes from prompts",
                      "fastnn train diffusion"),
        "cnn": ("a small CNN on the digits or --data shapes; writes runs/cnn.npz",
                "fastnn train cnn --data shapes"),
    },
    "eval": {
        "mlp": ("test accuracy of an MLP checkpoint", "fastnn eval mlp --checkpoint runs/mlp.npz"),
        "cnn": ("test accuracy (and per class) of a CNN checkpoint",
                "fastnn eval cnn --checkpoint runs/cnn.npz"),
        "diffusion": ("prompt accuracy, Frechet distance and copies, per guidance scale",
                      "fastnn eval diffusion --checkpoint runs/diffusion.npz"),
    },
}

INFO_HELP = """\
usage: fastnn info [-h]

Print fastnn's version, Python's and numpy's, the backends that load here (and why any other does
not, and which kernels each lacks), the CPU code path the C kernels picked, the thread count, and
the GPUs (name, compute capability, driver, memory) that --device cuda can use, or why none.

example: fastnn info

options:
  -h, --help  show this help and exit
"""


def _model_help(cmd):
    models = MODEL_HELP[cmd]
    lines = [f"usage: fastnn {cmd} MODEL [options]      (fastnn {cmd} MODEL --help for its "
             f"options)", "", "models:"]
    width = max(map(len, models)) + 2
    for name, (what, example) in models.items():
        lines.append(f"  {name:<{width}}{what}")
        lines.append(f"  {'':<{width}}  {example}")
    lines += ["", "options:", "  -h, --help  show this help and exit"]
    return "\n".join(lines)


def _is_help(args):
    return bool(args) and args[0] in ("-h", "--help")


def cmd_info(argv):
    import fastnn
    from fastnn.info import report

    if _is_help(argv):
        print(INFO_HELP, end="")
        return 0
    if argv:
        raise UsageError(f"unrecognized arguments: {' '.join(argv)} (see fastnn info --help)")
    print(report(fastnn.__version__))
    return 0


def main(argv=None):
    """Run the `fastnn` command with argv (default sys.argv[1:]) and return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or _is_help(argv) or argv[0] == "help":
        stream = sys.stdout if argv else sys.stderr
        print(HELP, end="", file=stream)
        return 0 if argv else 2
    if argv[0] == "--version":
        import fastnn
        print(f"fastnn {fastnn.__version__}")
        return 0
    cmd, rest = argv[0], argv[1:]
    prog = f"fastnn {cmd}"
    try:
        if cmd == "info":
            return cmd_info(rest)
        if cmd not in COMMANDS:
            raise UsageError(f"unknown command {cmd!r}; the commands are info, "
                             f"{', '.join(COMMANDS)} (see fastnn --help)")
        table = COMMANDS[cmd]
        if None in table:
            target = table[None]
        else:
            if _is_help(rest):
                print(_model_help(cmd))
                return 0
            if not rest or rest[0] not in table:
                got = repr(rest[0]) if rest else "nothing"
                raise UsageError(f"expected a model, one of {', '.join(table)}; got {got} "
                                 f"(see {prog} --help)")
            prog = f"fastnn {cmd} {rest[0]}"
            target, rest = table[rest[0]], rest[1:]
        module, func = target.split(":")
        command = getattr(importlib.import_module(module), func)
        with _one_line_parse_errors():
            return command(rest) or 0
    except SystemExit as e:   # --help (0), or a parser that exits on its own
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except USER_ERRORS as e:
        return _fail(prog, e)


@contextlib.contextmanager
def _one_line_parse_errors():
    """A command's plain argparse parser (fastnn bench's) raises UsageError, as the models'
    parsers (fastnn/models/common_cli.py) do, instead of printing its usage and exiting."""
    original = argparse.ArgumentParser.error

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")
    argparse.ArgumentParser.error = error
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original


def _fail(prog, error):
    """One line on stderr, `prog: message`; exit status 2."""
    msg = " ".join(line.strip() for line in str(error).splitlines()) or type(error).__name__
    print(f"{prog}: {msg}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
