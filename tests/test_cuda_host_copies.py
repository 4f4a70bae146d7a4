"""Ops on 'cuda' tensors that used to copy through the host now stay on the device (Numba's CUDA
simulator counted as a device): each gives the CPU's values and an empty transfer log. And the
device softmax of a row where one thread's share is all -inf is the CPU's, not NaN.
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


def _counted(fn):
    ca.reset_transfers()
    out = fn()
    return out, dict(ca.transfer_log())


@pytest.mark.parametrize("make", [
    lambda d: fastnn.eye(3, 4, device=d), lambda d: fastnn.eye(2, dtype=fastnn.int64, device=d),
    lambda d: fastnn.linspace(-1, 2, 7, device=d),
    lambda d: fastnn.linspace(0, 1, 4, dtype=fastnn.float64, device=d),
])
def test_eye_and_linspace_are_made_on_the_device(make):
    cpu = make("cpu")
    out, log = _counted(lambda: make("cuda"))
    assert log == {} and out.device.type == "cuda" and out.dtype == cpu.dtype
    np.testing.assert_array_equal(out.cpu().numpy(), cpu.numpy())


def test_randint_and_randperm_are_drawn_on_the_device():
    fastnn.manual_seed(3)
    (r, p), log = _counted(lambda: (fastnn.randint(3, 7, (50,), device="cuda"),
                                    fastnn.randperm(9, device="cuda")))
    assert log == {}
    r, p = r.cpu().numpy(), p.cpu().numpy()
    assert r.dtype == np.int64 and r.min() >= 3 and r.max() <= 6 and len(set(r)) > 1
    assert p.dtype == np.int64 and sorted(p) == list(range(9))
    fastnn.manual_seed(3)
    np.testing.assert_array_equal(fastnn.randint(3, 7, (50,), device="cuda").cpu().numpy(), r)


def _grads(fn, x0, device):
    x = fastnn.tensor(x0).to(device).requires_grad_()
    ca.reset_transfers()
    y = fn(x)
    y.sum().backward()
    log = dict(ca.transfer_log())
    return y.detach().cpu().numpy(), x.grad.cpu().numpy(), log


@pytest.mark.parametrize("fn", [
    lambda x: fastnn.tril(x, -1) * 2 + fastnn.triu(x, 2),
    lambda x: x.prod(1) * x.prod(-1).sum(),
])
def test_tril_triu_and_prod_backward_stay_on_the_device(fn):
    x0 = np.array([[[1.0, 0.0, 3.0, -2.0], [2.0, 4.0, 0.5, 1.5], [0.0, 0.0, 1.0, 2.0]]] * 2,
                  np.float32)
    y, g, log = _grads(fn, x0, "cuda")
    y_cpu, g_cpu, _ = _grads(fn, x0, "cpu")
    assert log == {}
    np.testing.assert_allclose(y, y_cpu, rtol=1e-6)
    np.testing.assert_allclose(g, g_cpu, rtol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_on_the_device(reduction):
    x0 = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    t0 = np.array([0, 2, -100, 1])
    res = {}
    for d in ("cpu", "cuda"):
        x = fastnn.tensor(x0).to(d).requires_grad_()
        t = fastnn.tensor(t0).to(d)
        ca.reset_transfers()
        loss = F.nll_loss(F.log_softmax(x, 1), t, reduction=reduction)
        loss.sum().backward()
        assert d == "cpu" or dict(ca.transfer_log()) == {}
        res[d] = (loss.detach().cpu().numpy(), x.grad.cpu().numpy())
    for a, b in zip(res["cuda"], res["cpu"]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_nll_loss_on_two_devices_is_pytorchs_error():
    x = fastnn.randn(2, 3, device="cuda")
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        F.nll_loss(x, fastnn.tensor([0, 1]))


def test_softmax_row_where_one_thread_sees_only_minus_inf():
    # the simulator's row kernels run 8 threads a row: thread 3 reads columns 3 and 11
    x0 = np.random.default_rng(1).standard_normal((2, 16)).astype(np.float32)
    x0[:, [3, 11]] = -np.inf
    x0[1, 5] = -np.inf
    x = fastnn.tensor(x0).to("cuda")
    for fn in (lambda t: F.softmax(t, 1), lambda t: F.log_softmax(t, 1)):
        got, want = fn(x).cpu().numpy(), fn(fastnn.tensor(x0)).numpy()
        assert not np.isnan(got).any()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    loss = F.cross_entropy(x, fastnn.tensor([0, 7]).to("cuda")).item()
    np.testing.assert_allclose(loss, F.cross_entropy(fastnn.tensor(x0),
                                                     fastnn.tensor([0, 7])).item(), rtol=1e-5)
