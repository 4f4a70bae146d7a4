"""`--device cuda` on the training and generation commands, and the GPU part of `fastnn info`,
on Numba's CUDA simulator counted as a device (FASTNN_CUDA_SIMULATOR_AS_DEVICE=1, set per test)
at tiny settings: a run on 'cuda' ends where the same run on the CPU ends, and without a GPU the
option is one clear line and exit status 2."""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fastnn.cli import main as cli_main  # noqa: E402
from fastnn.kernels import dispatch  # noqa: E402

try:
    dispatch.load("cuda")
except ImportError as e:
    pytest.skip(f"cuda backend unavailable: {e}", allow_module_level=True)

SIM_DEVICE = "FASTNN_CUDA_SIMULATOR_AS_DEVICE"


@pytest.fixture
def gpu(monkeypatch):
    monkeypatch.setenv(SIM_DEVICE, "1")


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.delenv(SIM_DEVICE, raising=False)


@pytest.mark.parametrize("command", [["train", "mlp"], ["train", "gpt"], ["train", "cnn"],
                                     ["train", "diffusion"], ["generate"]])
def test_device_cuda_without_a_gpu_is_one_line_and_exit_2(no_gpu, command, capsys, tmp_path):
    rc = cli_main(command + ["--device", "cuda", "--out" if command[0] == "train" else
                             "--checkpoint", str(tmp_path / "x.npz")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert "'cuda' needs a CUDA GPU" in err and "fastnn info" in err


def test_device_name_is_checked(capsys):
    assert cli_main(["train", "mlp", "--device", "gpu"]) == 2
    assert "expected cpu, cuda or cuda:N, got 'gpu'" in capsys.readouterr().err


def test_diffusion_shapes_says_it_trains_on_the_cpu_only(gpu, capsys, tmp_path):
    rc = cli_main(["train", "diffusion", "--data", "shapes", "--device", "cuda", "--out",
                   str(tmp_path / "s.npz")])
    assert rc == 2
    assert "shapes U-Net trains on the CPU only" in capsys.readouterr().err


def test_info_lists_the_gpu_or_says_why_not(monkeypatch, capsys):
    monkeypatch.delenv(SIM_DEVICE, raising=False)
    assert cli_main(["info"]) == 0
    out = capsys.readouterr().out
    assert "gpu: none (Numba's CUDA simulator is on" in out
    monkeypatch.setenv(SIM_DEVICE, "1")
    assert cli_main(["info"]) == 0
    out = capsys.readouterr().out
    assert "gpu: 1 device(s)" in out
    assert "cuda:0  Numba CUDA simulator, compute capability" in out


def test_info_on_a_real_gpu_shows_driver_and_memory(monkeypatch):
    import types

    from fastnn import cuda, info
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "_simulated", lambda: False)
    monkeypatch.setattr(cuda, "device_count", lambda: 1)
    monkeypatch.setattr(cuda, "get_device_properties", lambda i: types.SimpleNamespace(
        name="NVIDIA H200", major=9, minor=0, multi_processor_count=132))
    monkeypatch.setattr(cuda, "mem_get_info", lambda i: (100 * 2 ** 30, 140 * 2 ** 30))
    monkeypatch.setattr(info, "_driver_version", lambda: "570.86.15 CUDA 12.8")
    lines = info.gpu_lines()
    assert lines[0] == "gpu: 1 device(s), driver 570.86.15 CUDA 12.8"
    assert lines[1] == ("  cuda:0  NVIDIA H200, compute capability 9.0, 132 SMs, memory "
                        "140.0 GiB total, 100.0 GiB free")


def _tiny_digits(monkeypatch):
    """The digits cut to 24 training and 12 test images (the simulator runs every CUDA thread
    as a Python thread)."""
    from fastnn.models import mlp
    real = mlp.load_digits

    def small(seed=0):
        d = real(seed=seed)
        return type(d)(d.X_train[:24], d.y_train[:24], d.X_test[:12], d.y_test[:12])
    monkeypatch.setattr(mlp, "load_digits", small)


def test_train_mlp_on_cuda_matches_the_cpu(gpu, monkeypatch, tmp_path, capsys):
    from fastnn.models.checkpoint import load_checkpoint
    _tiny_digits(monkeypatch)
    weights = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.npz"
        rc = cli_main(["train", "mlp", "--device", device, "--epochs", "1", "--hidden", "6",
                       "--batch-size", "8", "--dropout", "0", "--no-progress", "--out", str(out)])
        assert rc == 0
        assert f"device {device}:" in capsys.readouterr().out
        model, _ = load_checkpoint(str(out), kind="mlp")
        weights[device] = {k: np.asarray(v._data if hasattr(v, "_data") else v)
                           for k, v in model.state_dict().items()}
    for k, w in weights["cpu"].items():
        np.testing.assert_allclose(weights["cuda"][k], w, rtol=1e-4, atol=1e-5)


def test_generate_on_cuda_writes_what_the_cpu_writes(gpu, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("abcabcabd " * 40)
    ckpt = str(tmp_path / "g.npz")
    assert cli_main(["train", "gpt", "--text", str(text), "--steps", "2", "--n-layer", "1",
                     "--n-head", "1", "--n-embd", "8", "--block-size", "8", "--batch-size", "2",
                     "--eval-iters", "1", "--no-progress", "--out", ckpt]) == 0
    capsys.readouterr()
    written = {}
    for device in ("cpu", "cuda"):
        assert cli_main(["generate", "--checkpoint", ckpt, "--device", device, "--prompt", "ab",
                         "--max-new-tokens", "3", "--temperature", "0"]) == 0
        written[device] = capsys.readouterr().out
    assert written["cuda"] == written["cpu"]
    assert written["cpu"].startswith("ab") and len(written["cpu"].strip()) == 5


def test_diffusion_training_on_cuda_matches_the_cpu(gpu):
    # the function behind `fastnn train diffusion --device cuda`, with a tiny denoiser (the
    # command's own, 192 wide, takes minutes a step on the simulator)
    from fastnn.models.diffusion import DiffusionConfig
    from fastnn.models.diffusion_cli import train
    config = DiffusionConfig(hidden=8, n_blocks=1, time_dim=4)
    runs = {device: train(steps=2, seed=0, batch_size=4, config=config, progress=False,
                          device=device) for device in ("cpu", "cuda")}
    np.testing.assert_allclose(runs["cuda"][1], runs["cpu"][1], rtol=1e-4)   # the losses
    for (name, p), q in zip(runs["cuda"][0].model.named_parameters(),
                            runs["cpu"][0].model.parameters()):
        assert p.device.type == "cpu", name                 # the model comes back to the CPU
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=name)
