"""fastnn.models' exports, the one checkpoint loader, and the CLI's handling of user mistakes:
the library raises (never SystemExit), the `fastnn` command prints one line and exits with 2."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn.cli import main as cli_main
from fastnn.errors import MissingDependencyError
from fastnn.models import load_checkpoint, save_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code_or_args, **kw):
    """Run a fresh interpreter (nothing imported yet) from the repository root."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, *code_or_args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300, **kw)


def test_models_export_every_model_in_a_fresh_interpreter():
    """`from fastnn.models import ...` works on its own, before anything else is imported."""
    names = ["GPT", "GPTConfig", "MLP", "Perceptron", "Diffusion", "DiffusionConfig",
             "load_checkpoint", "save_checkpoint"]
    r = _python(["-c", f"from fastnn.models import {', '.join(names)}\n"
                       f"import fastnn.models as m\n"
                       f"assert set({names!r}) <= set(m.__all__), m.__all__\n"
                       f"print('ok')"])
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_the_gpt_modules_live_in_models_gpt():
    from fastnn.models import gpt
    for name in ("GPTConfig", "CausalSelfAttention", "FeedForward", "Block", "GPT"):
        assert getattr(gpt, name).__module__ == "fastnn.models.gpt"
    with pytest.raises(AttributeError, match="moved to fastnn.models.gpt.Block"):
        fastnn.nn.Block  # noqa: B018
    assert fastnn.nn.KVCache is fastnn.nn.attention.KVCache  # reusable: stays in nn


# ---------------------------------------------------------------- one checkpoint loader
def test_missing_checkpoint_raises_in_the_library(tmp_path):
    for kind in (None, "mlp", "gpt", "diffusion"):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            load_checkpoint(tmp_path / "nope.npz", kind=kind)
    with pytest.raises(ValueError, match="kind must be one of"):
        load_checkpoint(tmp_path / "nope.npz", kind="cnn")


def test_checkpoint_kinds_round_trip_and_mismatch(tmp_path):
    from fastnn.models import GPT, GPTConfig, MLP
    from fastnn.text import CharTokenizer
    fastnn.manual_seed(0)
    mlp = MLP([4, 3, 2])
    save_checkpoint(mlp, tmp_path / "mlp.npz", seed=5)
    model, meta = load_checkpoint(tmp_path / "mlp.npz")
    assert isinstance(model, MLP) and meta["kind"] == "mlp" and int(meta["seed"]) == 5
    for k, v in mlp.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[k], v)
    gpt = GPT(GPTConfig(block_size=8, vocab_size=3, n_layer=1, n_head=1, n_embd=4))
    tok = CharTokenizer("abc")
    save_checkpoint(gpt, tmp_path / "gpt.npz", tokenizer=tok)
    model, meta = load_checkpoint(tmp_path / "gpt.npz", kind="gpt")
    assert model.config == gpt.config and meta["tokenizer"].chars == ["a", "b", "c"]
    assert meta["train_state"] is None and meta["optimizer_state"] is None
    with pytest.raises(fastnn.CheckpointError, match="holds a gpt model, not a mlp one"):
        load_checkpoint(tmp_path / "gpt.npz", kind="mlp")
    with pytest.raises(TypeError, match="tokenizer"):
        save_checkpoint(gpt, tmp_path / "x.npz")
    fastnn.save({"w": np.zeros(2)}, tmp_path / "plain.npz")
    with pytest.raises(fastnn.CheckpointError, match="not a fastnn model checkpoint"):
        load_checkpoint(tmp_path / "plain.npz")


def test_checkpoints_written_before_the_kind_entry_still_load(tmp_path):
    from fastnn.models import GPT, GPTConfig, MLP
    from fastnn.text import CharTokenizer
    fastnn.manual_seed(0)
    for model, extra in ((MLP([4, 3, 2]), {"seed": 1}),
                         (GPT(GPTConfig(block_size=8, vocab_size=3, n_layer=1, n_head=1,
                                        n_embd=4)), {"tokenizer": CharTokenizer("xyz")})):
        path = tmp_path / "old.npz"
        save_checkpoint(model, path, **extra)
        state = fastnn.load(path)
        del state["kind"]  # the layout the old per-model savers wrote
        fastnn.save(state, path)
        again, meta = load_checkpoint(path)
        assert type(again) is type(model)
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(again.state_dict()[k], v)


# ---------------------------------------------------------------- the command line
def test_cli_reports_a_missing_checkpoint_in_one_line(tmp_path, capsys):
    missing = str(tmp_path / "missing.npz")
    for argv in (["eval", "mlp", "--checkpoint", missing],
                 ["eval", "diffusion", "--checkpoint", missing],
                 ["generate", "--checkpoint", missing],
                 ["sample", "--checkpoint", missing, "--prompt", "7", "--out",
                  str(tmp_path / "x")]):
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith("fastnn ") and "missing.npz" in err


def test_cli_process_exits_2_without_a_traceback(tmp_path):
    r = _python(["-m", "fastnn.cli", "eval", "mlp", "--checkpoint", str(tmp_path / "no.npz")])
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("fastnn eval mlp: ") and "does not exist" in r.stderr


def _needs_matplotlib(argv):
    from fastnn.errors import require
    require("matplotlib", "--plot")


def test_missing_optional_dependency_is_an_import_error_the_cli_reports(capsys, monkeypatch):
    from fastnn import cli
    from fastnn.errors import require
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(MissingDependencyError, match="needs matplotlib"):
        require("matplotlib", "plotting")
    assert issubclass(MissingDependencyError, ImportError)
    monkeypatch.setitem(cli.COMMANDS, "plot", {None: f"{__name__}:_needs_matplotlib"})
    assert cli_main(["plot"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnn plot: --plot needs matplotlib") and err.count("\n") == 1


def test_library_code_never_exits():
    """No SystemExit or sys.exit in the models: they raise, the CLI decides the exit status."""
    folder = os.path.join(REPO, "fastnn", "models")
    for name in os.listdir(folder):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                src = f.read()
            assert "SystemExit" not in src and "sys.exit" not in src, name
