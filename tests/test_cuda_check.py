"""bench/cuda_check.py, the GPU check, in its --quick mode on Numba's CUDA simulator: a smoke
test of each section at simulator sizes (the GPT target's steps take minutes on the simulator
and are left to `NUMBA_ENABLE_CUDASIM=1 python bench/cuda_check.py --quick`)."""
import os
import sys

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import pytest  # noqa: E402

from fastnn.kernels import dispatch  # noqa: E402

try:
    dispatch.load("cuda")
except ImportError as e:
    pytest.skip(f"cuda backend unavailable: {e}", allow_module_level=True)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import cuda_check  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch):
    """cuda_check.main sets FASTNN_CUDA_SIMULATOR_AS_DEVICE for its own process on the simulator;
    undo it after each test, or every later test would see a 'GPU'."""
    monkeypatch.setenv("FASTNN_CUDA_SIMULATOR_AS_DEVICE", "")   # records the prior state...
    monkeypatch.delenv("FASTNN_CUDA_SIMULATOR_AS_DEVICE")       # ...which undo restores


def test_kernel_table_quick(capsys):
    assert cuda_check.main(["--quick", "--sections", "kernels", "--only",
                            "gemm_batched,relu,adam_step", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "device: Numba CUDA simulator" in out
    assert "gemm_batched" in out and "relu " in out and "adam_step" in out
    assert "0 failure(s)" in out


def test_fused_and_targets_quick(capsys, monkeypatch):
    monkeypatch.setattr(cuda_check, "cuda_torch", lambda: None)   # as without a CUDA torch
    assert cuda_check.main(["--quick", "--sections", "fused,targets", "--targets",
                            "gemm,attention", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    for name in ("bias_relu_backward", "bias_gelu tanh", "add_layer_norm_backward",
                 "adam_multi_step"):
        assert name in out
    assert "no CUDA torch: cuBLAS comparison skipped" in out
    assert "no CUDA torch: scaled_dot_product_attention comparison skipped" in out
    assert "fastnn fwd+bwd B1 H2 T13 D16 causal" in out
    assert "0 failure(s)" in out


def test_cnn_target_quick(capsys, monkeypatch):
    monkeypatch.setattr(cuda_check, "cuda_torch", lambda: None)
    assert cuda_check.main(["--quick", "--sections", "targets", "--targets", "cnn",
                            "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "cuda vs cpu over 2 steps" in out and "(ok)" in out
    assert "host<->device transfers inside a CNN step: 0 (goal 0): met" in out
    assert "no CUDA torch: PyTorch CNN step comparison skipped" in out


def test_a_wrong_result_fails_the_run(capsys, monkeypatch):
    from fastnn.backends.cuda import gemm
    real = gemm.gemm_device
    monkeypatch.setattr(gemm, "gemm_device", lambda a, b, c, ta, tb, alpha, beta:
                        real(a, b, c, ta, tb, 2 * alpha, beta))
    monkeypatch.setattr(cuda_check, "cuda_torch", lambda: None)
    assert cuda_check.main(["--quick", "--sections", "targets", "--targets", "gemm"]) == 1
    assert "FAIL target gemm 24^3" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--sections", "kernel"], ["--targets", "bert"],
                                  ["--steps", "0"], ["--only", "nosuch"]])
def test_bad_options_exit_2(args):
    with pytest.raises(SystemExit) as e:
        cuda_check.main(["--quick"] + args)
    assert e.value.code == 2
