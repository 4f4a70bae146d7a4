"""Training on 'cuda' (Numba's CUDA simulator counted as a device): an MLP and the GPT give the
CPU's losses and parameters to float32 tolerance, and every step after the first copies nothing
between host and device except loss.item() (the issue's transfer rule). Generation runs its
forward passes on the device.

Tiny shapes: the simulator runs every CUDA thread as a Python thread, one block per row.
"""
import numpy as np
import pytest

import fastnn
import fastnn.cuda
from fastnn import nn
from fastnn.backends.cuda import array as ca
from fastnn.models import GPT, MLP, GPTConfig
from fastnn.nn import functional as F

pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")

STEPS = 3
ITEM = {("d2h", "item"): 1}   # the one copy a step may make: the loss for the host


@pytest.fixture(autouse=True)
def gpu(monkeypatch):
    monkeypatch.setenv(fastnn.cuda.SIMULATOR_AS_DEVICE, "1")
    if not fastnn.cuda.is_available():
        pytest.skip(f"no simulated GPU here: {fastnn.cuda.unavailable_reason()}")


def _train(make_model, batch, device, clip=None):
    """STEPS AdamW steps on device; returns (losses, final parameters as host arrays, the
    transfer log of each step)."""
    fastnn.manual_seed(0)
    model = make_model().to(device)
    x, y = (fastnn.tensor(a).to(device) for a in batch)
    opt = fastnn.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    losses, logs = [], []
    for _ in range(STEPS):
        ca.reset_transfers()
        opt.zero_grad()
        out = model(x, y) if isinstance(model, GPT) else model(x)
        loss = out[1] if isinstance(model, GPT) else F.cross_entropy(out, y)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        losses.append(loss.item())
        logs.append(dict(ca.transfer_log()))
    return losses, [p.detach().cpu().numpy() for p in model.parameters()], logs


def _check(make_model, batch, clip=None):
    cpu_losses, cpu_params, _ = _train(make_model, batch, "cpu", clip)
    losses, params, logs = _train(make_model, batch, "cuda", clip)
    np.testing.assert_allclose(losses, cpu_losses, rtol=1e-5, atol=1e-6)
    for a, b in zip(params, cpu_params):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for step, log in enumerate(logs[1:], 2):
        assert log == ITEM, (f"step {step} copied between host and device beyond loss.item(): "
                             f"{log}")
    return logs


def test_mlp_trains_on_the_device_as_on_the_cpu_with_no_transfers():
    rng = np.random.default_rng(0)
    batch = (rng.standard_normal((6, 8)).astype(np.float32), rng.integers(0, 4, 6))
    _check(lambda: MLP((8, 16, 16, 4), activation="gelu"), batch, clip=1.0)


def _tiny_gpt():
    return GPT(GPTConfig(block_size=4, vocab_size=8, n_layer=1, n_head=2, n_embd=8,
                         dropout=0.0))


def test_gpt_trains_on_the_device_as_on_the_cpu_with_no_transfers():
    rng = np.random.default_rng(1)
    batch = (rng.integers(0, 8, (1, 4)), rng.integers(0, 8, (1, 4)))
    _check(_tiny_gpt, batch, clip=1.0)


def test_gpt_generates_on_the_device_as_on_the_cpu():
    fastnn.manual_seed(0)
    model = _tiny_gpt()
    prompt = fastnn.tensor([[1, 2]])
    want = model.generate(prompt, 3, temperature=0).numpy()
    model.cuda()
    got = model.generate(prompt.cuda(), 3, temperature=0)
    assert got.is_cuda
    np.testing.assert_array_equal(got.cpu().numpy(), want)
