"""The shapes diffusion model's U-Net (conv, conv_transpose, group norm, FiLM, GELU) training on
'cuda' (Numba's CUDA simulator counted as a device): one step gives the CPU's loss and
gradients, and a later step copies only its inputs' time embedding up (made on the host from
the batch's host timesteps, as the batch itself is) and loss.item() down.

Tiny: one 2x2 image, widths 2 and 4. The simulator runs each CUDA thread as a Python thread and
group norm's block barriers dominate (seconds a step).
"""
import numpy as np
import pytest

import fastnn
import fastnn.cuda
from fastnn.backends.cuda import array as ca
from fastnn.models.unet import UNet
from fastnn.nn import functional as F

pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")


@pytest.fixture(autouse=True)
def gpu(monkeypatch):
    monkeypatch.setenv(fastnn.cuda.SIMULATOR_AS_DEVICE, "1")
    if not fastnn.cuda.is_available():
        pytest.skip(f"no simulated GPU here: {fastnn.cuda.unavailable_reason()}")


def _setup(device):
    fastnn.manual_seed(0)
    model = UNet(in_channels=3, channels=(2, 4), blocks=(1,), cond_dim=4, time_dim=4)
    with fastnn.no_grad():   # the U-Net starts its blocks as the identity: perturb every weight
        for p in model.parameters():
            p.copy_(fastnn.randn(*p.shape) * 0.3)
    model.to(device)
    r = np.random.default_rng(0)
    x, cond, target = (fastnn.tensor(r.standard_normal(s).astype(np.float32)).to(device)
                       for s in ((1, 3, 2, 2), (1, 4), (1, 3, 2, 2)))
    return model, x, cond, target


def test_unet_step_on_the_device_gives_the_cpus_gradients_and_copies_nothing_else():
    t = np.array([7])
    grads, losses = {}, {}
    for device in ("cpu", "cuda"):
        model, x, cond, target = _setup(device)
        loss = F.mse_loss(model(x, t, cond), target)
        loss.backward()
        losses[device] = loss.item()
        grads[device] = {n: p.grad.cpu().numpy() for n, p in model.named_parameters()}
    np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=1e-5)
    for name, g in grads["cpu"].items():
        np.testing.assert_allclose(grads["cuda"][name], g, rtol=1e-4, atol=1e-6, err_msg=name)

    # the next step on the device: AdamW, then a second forward/backward
    opt = fastnn.optim.AdamW(model.parameters(), lr=1e-2)
    opt.step()
    ca.reset_transfers()
    opt.zero_grad()
    loss = F.mse_loss(model(x, t, cond), target)
    loss.backward()
    opt.step()
    loss.item()
    assert dict(ca.transfer_log()) == {("h2d", "from_host"): 1, ("d2h", "item"): 1}
    assert all(p.device.type == "cuda" and p.grad.device.type == "cuda"
               for p in model.parameters())
