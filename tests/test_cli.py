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
    for kind in (None, "mlp", "gpt", "diffusion", "cnn"):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            load_checkpoint(tmp_path / "nope.npz", kind=kind)
    with pytest.raises(ValueError, match="kind must be one of"):
        load_checkpoint(tmp_path / "nope.npz", kind="resnet")


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


# ---------------------------------------------------------------- outputs and defaults
def test_outputs_go_under_runs_by_default():
    from fastnn.models import diffusion_cli, gpt_cli, mlp_cli
    join = os.path.join
    assert mlp_cli._train_parser().parse_args([]).out == join("runs", "mlp.npz")
    assert mlp_cli._eval_parser().parse_args([]).checkpoint == join("runs", "mlp.npz")
    assert gpt_cli._train_parser().parse_args([]).out == join("runs", "gpt.npz")
    assert gpt_cli._generate_parser().parse_args([]).checkpoint == join("runs", "gpt.npz")
    assert diffusion_cli._train_parser().parse_args([]).out == join("runs", "diffusion.npz")
    for parser in (diffusion_cli._sample_parser(), diffusion_cli._eval_parser()):
        args = parser.parse_args(["--prompt", "7"] if parser.prog.endswith("sample") else [])
        assert args.checkpoint == join("runs", "diffusion.npz")
    assert diffusion_cli._default_out("siete", False) == join("runs", "samples", "siete")
    assert diffusion_cli._default_out("7", True) == join("runs", "samples", "7_process")
    assert diffusion_cli._default_out("../x y", False) == join("runs", "samples", "x_y")


@pytest.fixture
def diffusion_checkpoint(tmp_path):
    from fastnn.models import Diffusion, DiffusionConfig
    fastnn.manual_seed(0)
    path = tmp_path / "d.npz"
    save_checkpoint(Diffusion(DiffusionConfig()), path)
    return str(path)


def _sample(ckpt, *extra):
    return cli_main(["sample", "--checkpoint", ckpt, "--prompt", "siete", "--num", "3",
                     "--steps", "2", *extra])


def test_sample_out_npy_png_or_stem(diffusion_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # an .npy needs no matplotlib
    npy = tmp_path / "new" / "folder" / "x.npy"
    assert _sample(diffusion_checkpoint, "--out", str(npy)) == 0
    assert np.load(npy).shape == (3, 8, 8)
    assert sorted(os.listdir(npy.parent)) == ["x.npy"]
    png = tmp_path / "pics" / "y.png"
    assert _sample(diffusion_checkpoint, "--out", str(png)) == 2   # a PNG does
    err = capsys.readouterr().err
    assert err.startswith("fastnn sample: writing PNG files") and "needs matplotlib" in err
    assert err.count("\n") == 1 and not png.parent.exists()        # checked before sampling
    monkeypatch.delitem(sys.modules, "matplotlib")
    assert _sample(diffusion_checkpoint, "--out", str(png)) == 0
    assert sorted(os.listdir(png.parent)) == ["y.png"]
    assert png.read_bytes()[:4] == b"\x89PNG"
    stem = tmp_path / "stem" / "z"
    assert _sample(diffusion_checkpoint, "--out", str(stem)) == 0
    assert sorted(os.listdir(stem.parent)) == ["z.npy", "z.png"]
    strip = tmp_path / "strip" / "p.npy"
    assert _sample(diffusion_checkpoint, "--show-process", "--out", str(strip)) == 0
    assert np.load(strip).shape == (2, 10, 8, 8) and os.listdir(strip.parent) == ["p.npy"]


def test_sample_writes_under_runs_samples_by_default(diffusion_checkpoint, tmp_path, capsys,
                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _sample(diffusion_checkpoint) == 0
    assert sorted(os.listdir(tmp_path / "runs" / "samples")) == ["siete.npy", "siete.png"]
    assert "runs/samples/siete.npy" in capsys.readouterr().out.replace(os.sep, "/")


def test_missing_packages_are_reported_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    for argv in (["train", "mlp"], ["eval", "mlp"], ["train", "diffusion"],
                 ["eval", "diffusion"]):
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"fastnn {' '.join(argv)}: the digits data needs scikit-learn")
        assert "pip install scikit-learn" in err and err.count("\n") == 1, err
    monkeypatch.delitem(sys.modules, "sklearn")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli_main(["train", "mlp", "--plot", "runs/mlp.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnn train mlp: --plot needs matplotlib") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing saved


def test_missing_dependency_message_names_the_pip_package_and_extra():
    from fastnn.errors import install_hint, require
    assert install_hint("sklearn.datasets").startswith("pip install scikit-learn")
    assert install_hint("PIL").startswith("pip install pillow")
    assert "fastnn[mpi]" in install_hint("mpi4py")
    assert "fastnn[cuda]" in install_hint("numba_cuda")
    with pytest.raises(MissingDependencyError, match=r"^x needs not-a-package-xyz, which is "):
        require("not-a-package-xyz", "x")


@pytest.fixture
def gpt_checkpoint(tmp_path):
    from fastnn.models import GPT, GPTConfig
    from fastnn.text import CharTokenizer
    fastnn.manual_seed(0)
    tok = CharTokenizer("ab \n")
    gpt = GPT(GPTConfig(block_size=8, vocab_size=tok.vocab_size, n_layer=1, n_head=1, n_embd=8))
    path = tmp_path / "gpt.npz"
    save_checkpoint(gpt, path, tokenizer=tok)
    return str(path)


def _sections(out):
    """{temperature text: generated text} from `generate --temperatures` output."""
    parts = {}
    for block in out.split("=== temperature ")[1:]:
        head, _, rest = block.partition(" ===\n")
        parts.setdefault(head, []).append(rest.split("\n--- temperature")[0])
    return parts


def test_generate_temperatures_share_one_random_seed(gpt_checkpoint, capsys):
    base = ["generate", "--checkpoint", gpt_checkpoint, "--prompt", "ab", "--max-new-tokens",
            "40", "--backend", "numpy"]
    assert cli_main(base + ["--temperatures", "1,1"]) == 0
    captured = capsys.readouterr()
    first, second = _sections(captured.out)["1"]
    assert first == second   # one seed for every temperature: same temperature, same text
    seed = int(captured.err.split("random seed ")[1].split()[0])
    assert f"--seed {seed}" in captured.err
    assert cli_main(base + ["--temperatures", "1", "--seed", str(seed)]) == 0
    assert _sections(capsys.readouterr().out)["1"] == [first]   # the printed seed repeats it
    assert cli_main(base + ["--temperatures", "1,1"]) == 0
    assert _sections(capsys.readouterr().out)["1"][0] != first  # another run, another seed


def test_train_gpt_minutes_ends_without_a_tqdm_warning(tmp_path, capsys):
    import warnings
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = cli_main(["train", "gpt", "--text", str(text), "--minutes", "0.01", "--n-layer",
                       "1", "--n-head", "1", "--n-embd", "8", "--block-size", "8",
                       "--batch-size", "2", "--eval-iters", "1", "--backend", "numpy",
                       "--out", str(tmp_path / "sub" / "g.npz")])
    assert rc == 0 and (tmp_path / "sub" / "g.npz").exists()
    assert [str(w.message) for w in caught if "clamping frac" in str(w.message)] == []


def test_python_dash_m_fastnn_runs_the_command():
    out = subprocess.run([sys.executable, "-m", "fastnn", "--version"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("fastnn "), out
    bad = subprocess.run([sys.executable, "-m", "fastnn", "nonsense"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "nonsense" in bad.stderr
