"""The `fastnn` command line.

    fastnn info                          version, backends, CPU code path, threads
    fastnn bench [...]                   the benchmark tables (fastnn/benchmarks.py)
    fastnn train MODEL [...]             perceptron | mlp | gpt | diffusion
    fastnn eval MODEL [...]              mlp | diffusion
    fastnn generate [...]                text from a GPT checkpoint
    fastnn sample [...]                  images from a diffusion checkpoint

Each model's commands live next to the model (its module's train_main/eval_main/... taking argv),
so this file only dispatches.
"""
import importlib
import platform
import sys

# command -> {model: "module:function"}; a command with one entry under None takes no model name.
COMMANDS = {
    "bench": {None: "fastnn.benchmarks:main"},
    "train": {"perceptron": "fastnn.models.perceptron:train_main",
              "mlp": "fastnn.models.mlp:train_main",
              "gpt": "fastnn.models.gpt_cli:train_main",
              "diffusion": "fastnn.models.diffusion_cli:train_main"},
    "eval": {"mlp": "fastnn.models.mlp:eval_main",
             "diffusion": "fastnn.models.diffusion_cli:eval_main"},
    "generate": {None: "fastnn.models.gpt_cli:generate_main"},
    "sample": {None: "fastnn.models.diffusion_cli:sample_main"},
}


def cmd_info(argv):
    import numpy as np
    from numba import config

    import fastnn
    from fastnn import backends

    if argv:
        print(f"fastnn info: unexpected arguments {argv}", file=sys.stderr)
        return 2
    print(f"fastnn {fastnn.__version__}  (python {platform.python_version()}, "
          f"numpy {np.__version__}, {platform.machine()})")
    reasons = backends.unavailable_reasons()
    print("backends:")
    for name in backends._MODULES:
        if name in reasons:
            print(f"  {name:7s} unavailable: {reasons[name]}")
            continue
        be = backends.load(name)
        missing = be.missing()
        extra = ""
        if name == "cython":
            extra = f"  cpu path: {be.module.cpu_path()} (detected {be.module.cpu_detected()})"
        elif name == "numba":
            import numba
            extra = f"  numba {numba.__version__}"
        elif name == "cuda":
            extra = "  (Numba's CUDA simulator)" if config.ENABLE_CUDASIM else ""
        have = len(backends.KERNELS) - len(missing)
        print(f"  {name:7s} available: {have}/{len(backends.KERNELS)} kernels{extra}")
        if missing:
            print(f"          lacks: {', '.join(missing)}")
    print(f"default backend: {fastnn.get_backend().name}")
    print(f"threads: {fastnn.get_num_threads()}")
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
    if None in table:
        target = table[None]
    else:
        if not rest or rest[0] not in table:
            got = repr(rest[0]) if rest else "nothing"
            print(f"fastnn {cmd}: expected a model, one of {', '.join(table)}; got {got}",
                  file=sys.stderr)
            return 2
        target, rest = table[rest[0]], rest[1:]
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
