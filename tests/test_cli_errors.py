"""The `fastnn` command never shows a traceback for a user's mistake: every bad argument list of
every command gives one line on stderr, `fastnn <command>: ...`, and exit status 2, before any
work starts; and --help works at every level, with every option's default."""
import os
import subprocess
import sys

import pytest

import fastnn
import fastnn.cuda
from fastnn.cli import main as cli_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (argv, a phrase the message must contain). None of these trains or loads anything: each is
# refused before the work starts (a missing checkpoint would be reported later, so the
# checkpoint-reading commands name one that does not exist only where that is the point).
BAD = [
    # no command, unknown command, unknown model
    (["bogus"], "unknown command 'bogus'"),
    (["train"], "expected a model"),
    (["train", "resnet"], "expected a model"),
    (["eval"], "expected a model"),
    (["eval", "gpt"], "expected a model"),
    (["info", "--bogus"], "unrecognized arguments"),
    # train perceptron
    (["train", "perceptron", "--epochs", "0"], "--epochs must be >= 1"),
    (["train", "perceptron", "--epochs", "-1"], "--epochs must be >= 1"),
    (["train", "perceptron", "--epochs", "ten"], "expected an integer"),
    (["train", "perceptron", "--backend", "foo"], "invalid choice: 'foo'"),
    (["train", "perceptron", "--nope"], "unrecognized arguments"),
    # train mlp: the list
    (["train", "mlp", "--epochs", "-1"], "--epochs must be >= 1"),
    (["train", "mlp", "--epochs", "0"], "--epochs must be >= 1"),
    (["train", "mlp", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["train", "mlp", "--lr", "0"], "--lr must be a number > 0"),
    (["train", "mlp", "--lr", "nan"], "finite"),
    (["train", "mlp", "--dropout", "1"], "--dropout must be in [0, 1)"),
    (["train", "mlp", "--hidden", "64", "0"], "--hidden must be >= 1"),
    (["train", "mlp", "--max-time", "-5"], "--max-time must be a number > 0"),
    (["train", "mlp", "--threads", "0"], "--threads must be >= 1"),
    (["train", "mlp", "--backend", "foo"], "invalid choice: 'foo'"),
    (["train", "mlp", "--epochs"], "expected one argument"),
    # eval mlp
    (["eval", "mlp", "--seed", "-1"], "--seed must be >= 0"),
    (["eval", "mlp", "--backend", "blas"], "invalid choice: 'blas'"),
    # train gpt
    (["train", "gpt", "--eval-interval", "0"], "--eval-interval must be >= 1"),
    (["train", "gpt", "--minutes", "-1"], "--minutes must be a number > 0"),
    (["train", "gpt", "--minutes", "0"], "--minutes must be a number > 0"),
    (["train", "gpt", "--steps", "-3"], "--steps must be >= 1"),
    (["train", "gpt", "--steps", "3", "--minutes", "1"], "not allowed with"),
    (["train", "gpt", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["train", "gpt", "--eval-iters", "0"], "--eval-iters must be >= 1"),
    (["train", "gpt", "--val-fraction", "1"], "--val-fraction must be in (0, 1)"),
    (["train", "gpt", "--n-head", "0"], "--n-head must be >= 1"),
    (["train", "gpt", "--block-size", "x"], "expected an integer"),
    (["train", "gpt", "--backend", "foo"], "invalid choice: 'foo'"),
    (["train", "gpt", "--text", "/nonexistent/corpus.txt", "--steps", "1"], "corpus.txt"),
    # generate
    (["generate", "--temperatures", "a,b,c"], "expected comma-separated numbers"),
    (["generate", "--temperatures", "0,-1"], "temperatures must be finite and >= 0"),
    (["generate", "--temperature", "-0.5"], "--temperature must be a number >= 0"),
    (["generate", "--top-k", "0"], "--top-k must be >= 1"),
    (["generate", "--top-p", "1.5"], "--top-p must be in (0, 1]"),
    (["generate", "--max-new-tokens", "-1"], "--max-new-tokens must be >= 0"),
    (["generate", "--backend", "foo"], "invalid choice: 'foo'"),
    (["generate", "--checkpoint", "/nonexistent/gpt.npz"], "no such file"),
    # train diffusion
    (["train", "diffusion", "--steps", "0"], "--steps must be >= 1"),
    (["train", "diffusion", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["train", "diffusion", "--schedule", "quadratic"], "invalid choice: 'quadratic'"),
    (["train", "diffusion", "--backend", "foo"], "invalid choice: 'foo'"),
    # sample
    (["sample"], "required: --prompt"),
    (["sample", "--prompt", "7", "--steps", "0"], "--steps must be >= 1"),
    (["sample", "--prompt", "7", "--num", "0"], "--num must be >= 1"),
    (["sample", "--prompt", "7", "--guidance", "abc"], "expected a number"),
    (["sample", "--prompt", "7", "--sampler", "euler"], "invalid choice: 'euler'"),
    (["sample", "--prompt", "eleven"], "unknown prompt 'eleven'"),
    (["sample", "--prompt", "7", "--backend", "foo"], "invalid choice: 'foo'"),
    (["sample", "--prompt", "7", "--checkpoint", "/nonexistent/d.npz", "--out", "/tmp/x.npy"],
     "does not exist"),
    # eval diffusion
    (["eval", "diffusion", "--guidance", "abc"], "expected a number, got 'abc'"),
    (["eval", "diffusion", "--guidance", "1,,x"], "expected a number, got 'x'"),
    (["eval", "diffusion", "--per-prompt", "0"], "--per-prompt must be >= 1"),
    (["eval", "diffusion", "--steps", "0"], "--steps must be >= 1"),
    (["eval", "diffusion", "--backend", "foo"], "invalid choice: 'foo'"),
    # bench (its own parser, made one-line by fastnn.cli)
    (["bench", "--backends", "foo"], "unknown backend 'foo'"),
    (["bench", "--repeat", "0"], "--repeat"),
    (["bench", "--kernels", "nope"], "nope"),
    (["bench", "--stat", "mean"], "invalid choice: 'mean'"),
]


def _ids(cases):
    return [" ".join(argv) for argv, _ in cases]


def _assert_one_line(err, argv):
    from fastnn.cli import COMMANDS
    assert "Traceback" not in err, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    table = COMMANDS.get(argv[0], {})
    prog = " ".join(["fastnn"] + argv[:2 if len(argv) > 1 and argv[1] in table else 1])
    assert err.startswith(prog + ": "), err


@pytest.mark.parametrize("argv, phrase", BAD, ids=_ids(BAD))
def test_bad_arguments_give_one_line_and_status_2(argv, phrase, capsys):
    assert cli_main(argv) == 2
    captured = capsys.readouterr()
    _assert_one_line(captured.err, argv)
    assert phrase in captured.err, captured.err
    assert captured.out == ""   # refused before any work started


COMMANDS_WITH_BACKEND = [["train", "perceptron"], ["train", "mlp"], ["eval", "mlp"],
                         ["train", "gpt"], ["generate"], ["train", "diffusion"],
                         ["sample", "--prompt", "7"], ["eval", "diffusion"]]


@pytest.mark.skipif(fastnn.cuda.is_available(),
                    reason="a GPU is available here: --backend cuda is fine")
@pytest.mark.parametrize("argv", COMMANDS_WITH_BACKEND, ids=[" ".join(a) for a in
                                                             COMMANDS_WITH_BACKEND])
def test_backend_cuda_without_a_gpu_is_one_clear_line(argv, capsys, monkeypatch):
    from fastnn.kernels import dispatch
    if "cuda" in dispatch.available_backends():   # the simulator: make it look absent
        monkeypatch.setitem(dispatch._errors, "cuda", "RuntimeError: no usable CUDA GPU")
        monkeypatch.delitem(dispatch._loaded, "cuda")
    before = dispatch.get_backend().name
    assert cli_main(argv + ["--backend", "cuda"]) == 2
    captured = capsys.readouterr()
    _assert_one_line(captured.err, argv)
    assert "--backend: 'cuda' needs a CUDA GPU" in captured.err and captured.out == ""
    assert dispatch.get_backend().name == before
    if argv == ["train", "perceptron"]:     # fastnn bench names its backends in a list
        assert cli_main(["bench", "--backends", "numpy,cuda"]) == 2
        err = capsys.readouterr().err
        _assert_one_line(err, ["bench"])
        assert "backend 'cuda' is unavailable" in err


@pytest.mark.parametrize("argv", [["train", "mlp", "--epochs", "0"],
                                  ["eval", "diffusion", "--guidance", "abc"],
                                  ["bench", "--backends", "foo"],
                                  ["frobnicate"]])
def test_the_process_exits_2_with_one_line(argv):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "fastnn.cli", *argv], capture_output=True,
                       text=True, cwd=REPO, env=env, timeout=300)
    assert r.returncode == 2, r
    _assert_one_line(r.stderr, argv)
    assert r.stdout == ""


# ---------------------------------------------------------------- --help at every level
HELP = [[], ["train"], ["eval"], ["info"], ["bench"], ["generate"], ["sample"],
        ["train", "perceptron"], ["train", "mlp"], ["train", "gpt"], ["train", "diffusion"],
        ["eval", "mlp"], ["eval", "diffusion"]]


@pytest.mark.parametrize("argv", HELP, ids=[" ".join(a) or "fastnn" for a in HELP])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_works_at_every_level(argv, flag, capsys):
    assert cli_main(argv + [flag]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "usage: fastnn" in captured.out
    assert "Traceback" not in captured.out


def test_top_level_help_speaks_to_users(capsys):
    assert cli_main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("info", "bench", "train perceptron", "train mlp", "train gpt",
                    "train diffusion", "eval mlp", "eval diffusion", "generate", "sample"):
        assert f"\n  {command} " in out, command
        assert f"fastnn {command}" in out, f"no example for {command}"
    assert "runs/" in out
    assert cli_main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"fastnn train {m}" in out for m in ("perceptron", "mlp", "gpt", "diffusion"))
    assert cli_main([]) == 2 and "usage: fastnn" in capsys.readouterr().err
    assert cli_main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"fastnn {fastnn.__version__}"


def _parsers():
    from fastnn.models import diffusion_cli, gpt_cli, mlp_cli, perceptron
    return {"train perceptron": perceptron._train_parser(),
            "train mlp": mlp_cli._train_parser(), "eval mlp": mlp_cli._eval_parser(),
            "train gpt": gpt_cli._train_parser(), "generate": gpt_cli._generate_parser(),
            "train diffusion": diffusion_cli._train_parser(),
            "sample": diffusion_cli._sample_parser(),
            "eval diffusion": diffusion_cli._eval_parser()}


@pytest.mark.parametrize("name", ["train perceptron", "train mlp", "eval mlp", "train gpt",
                                  "generate", "train diffusion", "sample", "eval diffusion"])
def test_every_option_shows_its_default(name):
    parser = _parsers()[name]
    assert parser.prog == f"fastnn {name}"
    for action in parser._actions:
        if not action.option_strings or action.required or "-h" in action.option_strings:
            continue
        formatter = parser._get_formatter()
        text = " ".join(formatter._format_action(action).split())
        assert "default" in text, f"fastnn {name} {action.option_strings[-1]}: {text!r}"
    assert "Traceback" not in parser.format_help()
