"""Convolution, pooling and the 2-d norms on 'cuda' (Numba's CUDA simulator counted as a device):
each op's forward and backward on device tensors gives the CPU's values and copies nothing
between host and device, and a CNN training step (conv, batch norm, ReLU, max pool, linear,
AdamW) gives the CPU's losses and parameters with no copy after the first step but loss.item().
`fastnn train cnn --device cuda` trains where the CPU run trains.

Tiny shapes: the simulator runs every CUDA thread as a Python thread.
"""
import numpy as np
import pytest

import fastnn
import fastnn.cuda
from fastnn.backends.cuda import array as ca
from fastnn.nn import functional as F

pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")


@pytest.fixture(autouse=True)
def gpu(monkeypatch):
    monkeypatch.setenv(fastnn.cuda.SIMULATOR_AS_DEVICE, "1")
    if not fastnn.cuda.is_available():
        pytest.skip(f"no simulated GPU here: {fastnn.cuda.unavailable_reason()}")


def _run(fn, arrays, device, grad=True):
    """fn(*tensors) on device: (output values, input gradients) as host arrays, and the
    transfer log of the forward and backward (the inputs are moved before counting)."""
    ts = [fastnn.tensor(a).to(device).requires_grad_(grad and a.dtype.kind == "f")
          for a in arrays]
    with fastnn.no_grad():
        shape = fn(*ts).shape
    weights = fastnn.tensor(np.linspace(-1, 1, int(np.prod(shape)), dtype=np.float32)
                            .reshape(shape)).to(device)
    ca.reset_transfers()
    out = fn(*ts)
    if grad:
        (out * weights).sum().backward()
    log = dict(ca.transfer_log())
    grads = [t.grad.cpu().numpy() for t in ts if grad and t.requires_grad]
    return out.detach().cpu().numpy(), grads, log


def _same_on_both(fn, arrays, grad=True, rtol=1e-5, atol=1e-6):
    out_cpu, g_cpu, _ = _run(fn, arrays, "cpu", grad)
    out, g, log = _run(fn, arrays, "cuda", grad)
    assert log == {}, f"host<->device copies inside the op: {log}"
    np.testing.assert_allclose(out, out_cpu, rtol=rtol, atol=atol)
    for a, b in zip(g, g_cpu):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


rng = np.random.default_rng(0)


def _n(*shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, dilation=(1, 2), groups=2),
                                dict(padding="same")])
def test_conv2d_forward_and_backward_on_the_device(kw):
    w = _n(4, 2 if kw.get("groups") else 4, 3, 3)
    _same_on_both(lambda x, w, b: F.conv2d(x, w, b, **kw), [_n(2, 4, 5, 6), w, _n(4)])


def test_unbatched_conv2d_without_bias():
    _same_on_both(lambda x, w: F.conv2d(x, w, padding=1), [_n(2, 4, 4), _n(3, 2, 3, 3)])


def test_conv_transpose2d_forward_and_backward_on_the_device():
    _same_on_both(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1),
                  [_n(2, 3, 3, 3), _n(3, 2, 4, 4), _n(2)])


@pytest.mark.parametrize("op", [
    lambda x: F.max_pool2d(x, 2),
    lambda x: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
    lambda x: F.avg_pool2d(x, 2, stride=1, padding=1, count_include_pad=False),
    lambda x: F.adaptive_avg_pool2d(x, (2, 3)),
])
def test_pooling_forward_and_backward_on_the_device(op):
    _same_on_both(op, [_n(2, 3, 5, 6)])


def test_batch_norm_trains_and_updates_running_stats_on_the_device():
    bn = {d: fastnn.nn.BatchNorm2d(3).to(d) for d in ("cpu", "cuda")}
    x = _n(4, 3, 3, 3) * 2 + 1
    for d in bn:
        with fastnn.no_grad():
            bn[d].weight.copy_(fastnn.tensor(np.array([0.5, 1.5, -1.0], np.float32)).to(d))
    outs = {}
    for d, m in bn.items():
        outs[d] = _run(m, [x], d)
    assert outs["cuda"][2] == {}
    np.testing.assert_allclose(outs["cuda"][0], outs["cpu"][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs["cuda"][1][0], outs["cpu"][1][0], rtol=1e-4, atol=1e-5)
    for name in ("running_mean", "running_var"):
        a, b = getattr(bn["cuda"], name), getattr(bn["cpu"], name)
        assert a.device.type == "cuda"
        np.testing.assert_allclose(a.cpu().numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
        assert not np.allclose(b.numpy(), 0 if name == "running_mean" else 1)
    for d in bn:
        bn[d].eval()
    np.testing.assert_allclose(_run(bn["cuda"], [x], "cuda")[0], _run(bn["cpu"], [x], "cpu")[0],
                               rtol=1e-5, atol=1e-5)


def test_group_norm_forward_and_backward_on_the_device():
    _same_on_both(lambda x, w, b: F.group_norm(x, 2, w, b), [_n(2, 4, 3, 3), _n(4), _n(4)],
                  rtol=1e-4, atol=1e-5)


def test_device_errors_are_the_checked_kernels():
    x = fastnn.tensor(_n(1, 3, 4, 4)).to("cuda")
    with pytest.raises(ValueError, match="not divisible by groups"):
        F.conv2d(x, fastnn.tensor(_n(2, 3, 3, 3)).to("cuda"), groups=2)
    with pytest.raises(ValueError, match="padding"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(RuntimeError, match="same device"):
        F.conv2d(x, fastnn.tensor(_n(2, 3, 3, 3)))


def _cnn_steps(device, steps=3):
    from fastnn.models.cnn import CNN
    fastnn.manual_seed(0)
    model = CNN(in_channels=1, image_size=4, num_classes=3, channels=(2, 3), dropout=0.2)
    model.to(device)
    r = np.random.default_rng(1)
    x = fastnn.tensor(r.standard_normal((3, 1, 4, 4)).astype(np.float32)).to(device)
    y = fastnn.tensor(r.integers(0, 3, 3)).to(device)
    opt = fastnn.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    losses, logs = [], []
    for _ in range(steps):
        ca.reset_transfers()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        fastnn.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        logs.append(dict(ca.transfer_log()))
    state = {k: v.cpu().numpy() for k, v in model.state_dict().items()}
    return losses, state, logs


def test_cnn_trains_on_the_device_as_on_the_cpu_with_no_transfers():
    # with dropout on (its mask drawn on the device); the values are compared without it below
    losses, state, logs = _cnn_steps("cuda")
    for step, log in enumerate(logs[1:], 2):
        assert log == {("d2h", "item"): 1}, f"step {step} copied beyond loss.item(): {log}"
    assert np.isfinite(losses).all()


def test_cnn_step_gives_the_cpus_numbers(monkeypatch):
    from fastnn.models import cnn
    orig = cnn.CNN.__init__

    def no_dropout(self, *args, **kwargs):
        kwargs["dropout"] = 0.0
        orig(self, *args, **kwargs)
    monkeypatch.setattr(cnn.CNN, "__init__", no_dropout)
    cpu_losses, cpu_state, _ = _cnn_steps("cpu", 2)
    losses, state, logs = _cnn_steps("cuda", 2)
    assert logs[1] == {("d2h", "item"): 1}
    np.testing.assert_allclose(losses, cpu_losses, rtol=1e-5, atol=1e-6)
    for k, v in cpu_state.items():
        np.testing.assert_allclose(state[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_train_cnn_command_on_cuda_matches_the_cpu(monkeypatch, tmp_path, capsys):
    from fastnn.cli import main as cli_main
    from fastnn.models import cnn
    from fastnn.models.checkpoint import load_checkpoint
    r = np.random.default_rng(2)
    X = r.random((12, 1, 4, 4)).astype(np.float32)
    y = r.integers(0, 3, 12)
    monkeypatch.setattr(cnn, "load_image_data", lambda *a, **k: (X[:8], y[:8], X[8:], y[8:],
                                                                  ("a", "b", "c")))
    weights = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.npz"
        rc = cli_main(["train", "cnn", "--device", device, "--epochs", "1", "--batch-size", "4",
                       "--channels", "2", "2", "--dropout", "0", "--no-progress", "--out",
                       str(out)])
        assert rc == 0
        assert f"device {device}:" in capsys.readouterr().out
        model, _ = load_checkpoint(str(out), kind="cnn")
        weights[device] = {k: v.numpy() for k, v in model.state_dict().items()}
    for k, w in weights["cpu"].items():
        np.testing.assert_allclose(weights["cuda"][k], w, rtol=1e-4, atol=1e-5, err_msg=k)
