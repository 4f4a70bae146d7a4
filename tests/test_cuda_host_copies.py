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


def _op_on_both(fn, arrays):
    """fn(*tensors) on cpu and cuda: (values, grads) of each, and the device run's transfers."""
    res, log = {}, None
    for d in ("cpu", "cuda"):
        ts = [fastnn.tensor(a).to(d).requires_grad_(a.dtype.kind == "f") for a in arrays]
        ca.reset_transfers()
        out = fn(*ts)
        vals = out if isinstance(out, tuple) else (out,)
        vals[0].sum().backward()
        if d == "cuda":
            log = dict(ca.transfer_log())
        res[d] = ([v.detach().cpu().numpy() for v in vals],
                  [t.grad.cpu().numpy() for t in ts if t.requires_grad])
    return res, log


@pytest.mark.parametrize("fn", [
    lambda x: tuple(fastnn.topk(x, 2, dim=1)),
    lambda x: tuple(fastnn.topk(x, 3, dim=0, largest=False)),
    lambda x: tuple(fastnn.sort(x, dim=1, descending=True)),
])
def test_topk_and_sort_stay_on_the_device(fn):
    x0 = np.random.default_rng(2).standard_normal((4, 5)).astype(np.float32)
    res, log = _op_on_both(fn, [x0])
    assert log == {}
    for a, b in zip(res["cuda"][0] + res["cuda"][1], res["cpu"][0] + res["cpu"][1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fn", [
    lambda x, i: x.gather(1, i),
    lambda x, i: x.scatter_add(1, i, x[:, :2] * 2),
    lambda x, i: x.scatter(1, i, 0.5),
])
def test_gather_and_scatter_stay_on_the_device(fn):
    x0 = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    i0 = np.array([[0, 3], [1, 1], [2, 0]])
    res, log = _op_on_both(fn, [x0, i0])
    assert log == {}
    for a, b in zip(res["cuda"][0] + res["cuda"][1], res["cpu"][0] + res["cpu"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_a_bad_device_index_raises_at_the_next_synchronization():
    x = fastnn.randn(2, 3, device="cuda")
    bad = x.gather(1, fastnn.tensor([[0], [5]]).to("cuda"))   # as CUDA: no wait to check it
    with pytest.raises(IndexError):
        bad.cpu()


def test_multinomial_draws_on_the_device():
    p = fastnn.tensor(np.array([[0.6, 0.0, 0.3, 0.1], [1.0, 1.0, 1.0, 1.0]], np.float32)).to(
        "cuda")
    ca.reset_transfers()
    fastnn.manual_seed(0)
    ids = fastnn.multinomial(p, 3)
    many = fastnn.multinomial(p[:1].expand(500, 4).contiguous(), 1, replacement=True)
    assert dict(ca.transfer_log()) == {}
    ids, many = ids.cpu().numpy(), many.cpu().numpy()[:, 0]
    assert ids.shape == (2, 3) and ids.dtype == np.int64
    assert set(ids[0]) == {0, 2, 3} and len(set(ids[1])) == 3
    freq = np.bincount(many, minlength=4) / 500
    assert freq[1] == 0
    np.testing.assert_allclose(freq, [0.6, 0.0, 0.3, 0.1], atol=0.08)


@pytest.mark.parametrize("fn", [
    lambda x: F.silu(x),
    lambda x: F.pad(x, (1, 2, 0, 1), value=0.5),
])
def test_silu_and_pad_stay_on_the_device(fn):
    x0 = np.random.default_rng(4).standard_normal((2, 3, 4)).astype(np.float32)
    res, log = _op_on_both(fn, [x0])
    assert log == {}
    for a, b in zip(res["cuda"][0] + res["cuda"][1], res["cpu"][0] + res["cpu"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_weights_and_label_smoothing_on_the_device(reduction):
    x0 = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)
    t0 = np.array([0, 2, -100])
    res = {}
    for d in ("cpu", "cuda"):
        x = fastnn.tensor(x0).to(d).requires_grad_()
        t = fastnn.tensor(t0).to(d)
        w = fastnn.tensor(np.array([1.0, 2.0, 0.5, 1.0], np.float32)).to(d)
        ca.reset_transfers()
        loss = F.cross_entropy(x, t, weight=w, label_smoothing=0.1, reduction=reduction)
        loss.sum().backward()
        assert d == "cpu" or dict(ca.transfer_log()) == {}
        res[d] = (loss.detach().cpu().numpy(), x.grad.cpu().numpy())
    for a, b in zip(res["cuda"], res["cpu"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
