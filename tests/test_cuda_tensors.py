"""Tensors on 'cuda': devices, factories, moves, PyTorch's errors, autograd, optimizers and
checkpoints with device storage, on Numba's CUDA simulator counted as a device.

Shapes are tiny: the simulator runs every CUDA thread as a Python thread.
"""
import numpy as np
import pytest

import fastnn
import fastnn.cuda
from fastnn import nn
from fastnn.errors import NoCudaError
from fastnn.kernels import trusted as T

pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")


@pytest.fixture(autouse=True)
def gpu(monkeypatch):
    """The simulator counts as a GPU; the default device is the CPU again afterwards."""
    monkeypatch.setenv(fastnn.cuda.SIMULATOR_AS_DEVICE, "1")
    if not fastnn.cuda.is_available():
        pytest.skip(f"no simulated GPU here: {fastnn.cuda.unavailable_reason()}")
    yield
    fastnn.set_default_device(None)


def _a(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- devices and moves
def test_device_follows_the_storage():
    x = fastnn.tensor([[1.0, 2.0], [3.0, 4.0]], device="cuda")
    assert x.device == fastnn.device("cuda", 0) and str(x.device) == "cuda:0"
    assert x.is_cuda and not x.is_cpu and x.get_device() == 0
    c = fastnn.tensor([1.0])
    assert c.device == "cpu" and not c.is_cuda and c.get_device() == -1
    assert repr(x).endswith("device='cuda:0')")
    np.testing.assert_array_equal(x.cpu().numpy(), [[1, 2], [3, 4]])


def test_to_cuda_cpu_and_dtype_round_trip():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = fastnn.tensor(a)
    g = t.to("cuda")
    assert g.is_cuda and g.dtype == fastnn.float32
    assert g.to("cuda") is g and g.cuda() is g and t.cpu() is t   # nothing to move
    d = t.to("cuda", fastnn.float64)
    assert d.is_cuda and d.dtype == fastnn.float64
    assert t.cuda(0).device == "cuda:0"
    assert t.to(fastnn.device("cuda:0")).is_cuda
    assert t.to(g).is_cuda and g.to(t).device == "cpu"   # to(other): its device and dtype
    np.testing.assert_array_equal(d.cpu().numpy(), a)
    np.testing.assert_array_equal(g.cpu().numpy(), a)


def test_numpy_of_a_gpu_tensor_raises_as_pytorch_and_item_tolist_copy():
    x = fastnn.tensor([[1.5, 2.0]], device="cuda")
    msg = ("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the "
           "tensor to host memory first.")
    with pytest.raises(TypeError) as e:
        x.numpy()
    assert str(e.value) == msg
    with pytest.raises(TypeError):
        np.asarray(x)
    assert x[0, 0].item() == 1.5 and x.tolist() == [[1.5, 2.0]]
    assert float(x.sum()) == 3.5


def test_factories_take_device_and_likes_keep_it():
    made = [fastnn.zeros(2, 3, device="cuda"), fastnn.ones(2, device="cuda"),
            fastnn.empty(3, device="cuda"), fastnn.full((2, 2), 7.0, device="cuda"),
            fastnn.arange(5, device="cuda"), fastnn.arange(0.0, 1.0, 0.25, device="cuda"),
            fastnn.rand(2, 3, device="cuda"), fastnn.randn(4, device="cuda"),
            fastnn.randint(0, 5, (3,), device="cuda"), fastnn.eye(3, device="cuda"),
            fastnn.linspace(0, 1, 5, device="cuda")]
    assert all(t.is_cuda for t in made)
    np.testing.assert_array_equal(made[3].cpu().numpy(), np.full((2, 2), 7.0))
    np.testing.assert_array_equal(made[4].cpu().numpy(), np.arange(5))
    assert made[4].dtype == fastnn.int64
    np.testing.assert_allclose(made[5].cpu().numpy(), [0, 0.25, 0.5, 0.75])
    np.testing.assert_array_equal(made[9].cpu().numpy(), np.eye(3))
    u = made[6].cpu().numpy()
    assert ((u >= 0) & (u < 1)).all()
    g = made[0]
    for like in (fastnn.zeros_like(g), fastnn.ones_like(g), fastnn.empty_like(g),
                 fastnn.full_like(g, 2.0), fastnn.rand_like(g), fastnn.randn_like(g),
                 g.new_zeros(4), g.new_ones((1, 2))):
        assert like.is_cuda, like
    assert fastnn.zeros_like(g, device="cpu").device == "cpu"


def test_default_device_and_with_device():
    with fastnn.device("cuda"):
        assert fastnn.get_default_device() == "cuda:0"
        assert fastnn.zeros(2).is_cuda and fastnn.tensor([1.0]).is_cuda
        assert fastnn.randn(2).is_cuda and fastnn.zeros(2, device="cpu").device == "cpu"
    assert fastnn.zeros(2).device == "cpu" and fastnn.get_default_device() == "cpu"
    fastnn.set_default_device("cuda")
    assert fastnn.ones(3).is_cuda
    fastnn.set_default_device(None)
    assert fastnn.ones(3).device == "cpu"


def test_no_gpu_raises_no_cuda_error(monkeypatch):
    monkeypatch.setenv(fastnn.cuda.SIMULATOR_AS_DEVICE, "0")
    with pytest.raises(NoCudaError):
        fastnn.zeros(2, device="cuda")
    with pytest.raises(NoCudaError):
        fastnn.tensor([1.0]).cuda()
    with pytest.raises(NoCudaError):
        nn.Linear(2, 2).to("cuda")


# ---------------------------------------------------------------- ops and PyTorch's rules
def test_mixing_devices_raises_pytorchs_error_scalars_mix():
    g = fastnn.ones(2, 3, device="cuda")
    c = fastnn.ones(2, 3)
    msg = ("Expected all tensors to be on the same device, but found at least two devices, "
           "cuda:0 and cpu!")
    for op in (lambda: g + c, lambda: c * g, lambda: g @ c.t(), lambda: c.t() @ g,
               lambda: nn.functional.linear(c, g)):
        with pytest.raises(RuntimeError) as e:
            op()
        assert str(e.value) == msg
    # Python scalars and 0-d CPU tensors mix with GPU tensors, as in PyTorch
    with fastnn.cuda.count_transfers() as n:
        r = (g * 2.0 + fastnn.tensor(3.0)) / fastnn.tensor(5.0)
    assert r.is_cuda and n.count == 0, n.log
    np.testing.assert_allclose(r.cpu().numpy(), np.ones((2, 3)))


def test_elementwise_reductions_indexing_match_numpy(rng=np.random.default_rng(0)):
    a, b = _a(rng, 3, 4), _a(rng, 4)
    x, y = fastnn.tensor(a, device="cuda"), fastnn.tensor(b, device="cuda")
    checks = [((x * y + 1).exp(), np.exp(a * b + 1)), (x.sum(1), a.sum(1)),
              (x.mean(0, keepdim=True), a.mean(0, keepdims=True)), (x[1:, ::2], a[1:, ::2]),
              (x.t().reshape(2, 6), a.T.reshape(2, 6)), (x.max(1)[0], a.max(1)),
              ((x > 0).float(), (a > 0).astype(np.float32)), (x.relu(), np.maximum(a, 0))]
    for t, want in checks:
        assert t.is_cuda
        np.testing.assert_allclose(t.cpu().numpy(), want, rtol=1e-5, atol=1e-6)
    z = x.clone()
    z[0] = 0.0
    z += 1
    want = a.copy()
    want[0] = 0
    np.testing.assert_allclose(z.cpu().numpy(), want + 1, rtol=1e-6)


def test_autograd_on_the_device_matches_the_cpu(rng=np.random.default_rng(1)):
    a, w = _a(rng, 4, 3), _a(rng, 3, 2)

    def grads(device):
        x = fastnn.tensor(a, device=device, requires_grad=True)
        wt = fastnn.tensor(w, device=device, requires_grad=True)
        for _ in range(2):   # accumulation: .grad holds the sum of both backwards
            loss = ((x @ wt).tanh() * 2).sum() + (x * x).mean()
            loss.backward()
        return x.grad, wt.grad
    cx, cw = grads("cpu")
    gx, gw = grads("cuda")
    assert gx.is_cuda and gw.is_cuda
    np.testing.assert_allclose(gx.cpu().numpy(), cx.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gw.cpu().numpy(), cw.numpy(), rtol=1e-5, atol=1e-6)


def test_to_is_recorded_so_the_gradient_returns_to_the_cpu():
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    (x.cuda() * 3).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), [3, 3])


def test_trusted_kernels_route_device_arrays_to_the_device_without_copies(
        rng=np.random.default_rng(2)):
    a = _a(rng, 3, 5)
    d = fastnn.tensor(a, device="cuda")._data
    with fastnn.cuda.count_transfers() as n:
        y = T.relu(d)
        s = T.softmax(d)
        c = T.gemm(d, d, trans_b=True)
    assert n.count == 0, n.log
    assert type(y) is type(d) and type(c) is type(d)
    from fastnn.backends.cuda import array as ca
    np.testing.assert_allclose(ca.to_host(y), np.maximum(a, 0))
    np.testing.assert_allclose(ca.to_host(c), a @ a.T, rtol=1e-5, atol=1e-5)
    e = np.exp(a - a.max(1, keepdims=True))
    np.testing.assert_allclose(ca.to_host(s), e / e.sum(1, keepdims=True), rtol=1e-5)


def test_memory_counters_see_device_tensors():
    fastnn.cuda.reset_peak_memory_stats()
    before = fastnn.cuda.memory_allocated()
    x = fastnn.zeros(1000, device="cuda")
    assert fastnn.cuda.memory_allocated() >= before + 4000
    assert fastnn.cuda.max_memory_allocated() >= fastnn.cuda.memory_allocated()
    assert fastnn.cuda.memory_reserved() >= fastnn.cuda.memory_allocated()
    del x
    fastnn.cuda.synchronize()


# ---------------------------------------------------------------- modules, optimizers
def _model():
    fastnn.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def test_module_to_moves_parameters_in_place():
    m = _model()
    params = list(m.parameters())
    opt = fastnn.optim.SGD(m.parameters(), lr=0.1)   # built before the move, as often
    assert m.to("cuda") is m
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    assert all(p.is_cuda for p in m.parameters())
    x = fastnn.ones(5, 3, device="cuda")
    m(x).sum().backward()
    assert all(p.grad.is_cuda for p in m.parameters())
    opt.step()
    opt.zero_grad()
    assert all(p.is_cuda and p.grad is None for p in m.parameters())
    sd = m.state_dict()
    assert all(v.is_cuda for v in sd.values())
    m.cpu()
    assert all(p.device == "cpu" for p in m.parameters())
    m.cuda()
    assert all(p.is_cuda for p in m.parameters())


@pytest.mark.parametrize("make", [
    lambda ps: fastnn.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda ps: fastnn.optim.Adam(ps, lr=0.05),
    lambda ps: fastnn.optim.AdamW(ps, lr=0.05, weight_decay=0.1),
    lambda ps: fastnn.optim.RMSprop(ps, lr=0.01),
], ids=["sgd", "adam", "adamw", "rmsprop"])
def test_optimizers_on_the_device_match_the_cpu(make, rng=np.random.default_rng(3)):
    x, y = _a(rng, 5, 3), _a(rng, 5, 2)

    def train(device):
        m = _model().to(device)
        opt = make(m.parameters())
        for _ in range(3):
            opt.zero_grad()
            loss = ((m(fastnn.tensor(x, device=device)) - fastnn.tensor(y, device=device))
                    ** 2).mean()
            loss.backward()
            nn.utils.clip_grad_norm_(m.parameters(), 0.5)
            opt.step()
        states = [v for st in opt.state.values() for v in st.values()
                  if hasattr(v, "shape") and getattr(v, "ndim", 0) > 0]
        return [p.detach().cpu().numpy() for p in m.parameters()], states
    cpu, _ = train("cpu")
    gpu, states = train("cuda")
    assert states and all(fastnn.tensor([0.0]).cuda()._data.__class__ is type(s)
                          for s in states)   # optimizer state lives on the device
    for a, b in zip(cpu, gpu):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_clip_grad_norm_on_the_device_returns_a_device_norm():
    m = _model().cuda()
    m(fastnn.ones(2, 3, device="cuda")).sum().backward()
    want = np.sqrt(sum(float((p.grad.cpu().numpy() ** 2).sum()) for p in m.parameters()))
    with fastnn.cuda.count_transfers() as n:
        total = nn.utils.clip_grad_norm_(m.parameters(), 1e-3)
    assert n.count == 0, n.log
    assert total.is_cuda
    np.testing.assert_allclose(total.item(), want, rtol=1e-5)
    after = np.sqrt(sum(float((p.grad.cpu().numpy() ** 2).sum()) for p in m.parameters()))
    np.testing.assert_allclose(after, 1e-3, rtol=1e-3)


# ---------------------------------------------------------------- checkpoints
def test_save_writes_host_data_and_load_maps_location(tmp_path):
    m = _model().cuda()
    for name in ("m.npz", "m.pt"):
        path = tmp_path / name
        fastnn.save(m.state_dict(), path)
        plain = fastnn.load(path)
        assert all(v.device == "cpu" for v in plain.values())
        on_gpu = fastnn.load(path, map_location="cuda")
        assert all(v.is_cuda for v in on_gpu.values())
        for k, v in m.state_dict().items():
            np.testing.assert_array_equal(plain[k].numpy(), v.cpu().numpy())
        back = _model()
        back.load_state_dict(on_gpu)   # a CPU model takes a GPU state dict (copied over)
        assert all(p.device == "cpu" for p in back.parameters())
    gpu_model = _model().cuda()
    gpu_model.load_state_dict(plain)   # and a GPU model a CPU one, staying on the GPU
    assert all(p.is_cuda for p in gpu_model.parameters())


def test_dropout_on_the_device_draws_its_mask_there():
    fastnn.manual_seed(0)
    x = fastnn.ones(64, 8, device="cuda", requires_grad=True)
    with fastnn.cuda.count_transfers() as n:
        y = nn.functional.dropout(x, 0.25)
        y.sum().backward()
    assert n.count == 0, n.log
    kept = y.detach().cpu().numpy()
    assert set(np.unique(kept)) <= {0.0, np.float32(1 / 0.75)}
    assert 0.6 < (kept != 0).mean() < 0.9
    np.testing.assert_array_equal(x.grad.cpu().numpy(), kept)   # d(sum)/dx is the mask
    fastnn.manual_seed(0)
    again = nn.functional.dropout(fastnn.ones(64, 8, device="cuda"), 0.25)
    np.testing.assert_array_equal(again.cpu().numpy(), kept)   # manual_seed repeats it


@pytest.mark.parametrize("kw", [dict(is_causal=True), dict(mask=True), dict(dropout_p=0.5)],
                         ids=["causal", "mask-with-a-dead-row", "dropout"])
def test_materialized_attention_on_the_device(kw, rng=np.random.default_rng(4)):
    """The attention path that forms the weights (masks, dropout) runs on the device: the
    causal mask is made there, a fully masked row gives zeros without asking the host."""
    from fastnn.nn.functional import scaled_dot_product_attention as sdpa
    q, k, v = (_a(rng, 1, 2, 3, 4) for _ in range(3))
    mask = np.array([[True, False, False], [False, False, False], [True, True, True]])

    def run(device):
        ts = [fastnn.tensor(a, device=device, requires_grad=True) for a in (q, k, v)]
        m = fastnn.tensor(mask, device=device) if kw.get("mask") else None
        with fastnn.cuda.count_transfers() as n:
            out = sdpa(*ts, attn_mask=m, is_causal=kw.get("is_causal", False),
                       dropout_p=kw.get("dropout_p", 0.0))
            (out * out).sum().backward()
        return out.detach().cpu().numpy(), [t.grad.cpu().numpy() for t in ts], n
    fastnn.manual_seed(0)
    out, grads, n = run("cuda")
    assert n.count == 0, n.log
    if "dropout_p" in kw:   # other draws than the CPU's: repeatable, and not the plain result
        fastnn.manual_seed(0)
        again, _, _ = run("cuda")
        np.testing.assert_array_equal(again, out)
        kw.pop("dropout_p")
        plain, _, _ = run("cpu")
        assert np.isfinite(out).all() and not np.allclose(out, plain)
        return
    want, want_grads, _ = run("cpu")
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads, want_grads):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_optimizer_state_of_a_gpu_model_saves_and_loads(tmp_path):
    m = _model().cuda()
    opt = fastnn.optim.AdamW(m.parameters(), lr=0.1)
    m(fastnn.ones(2, 3, device="cuda")).sum().backward()
    opt.step()
    fastnn.save(opt.state_dict(), tmp_path / "opt.npz")
    sd = fastnn.load(tmp_path / "opt.npz")
    fresh = fastnn.optim.AdamW(m.parameters(), lr=0.1)
    fresh.load_state_dict(sd)   # the state goes to the parameters' device, as PyTorch's
    for p in m.parameters():
        a, b = opt.state[p]["exp_avg"], fresh.state[p]["exp_avg"]
        assert type(b) is type(p._data)
        np.testing.assert_array_equal(b.get(), a.get())


@pytest.mark.parametrize("loss", ["mse_mean", "mse_sum", "log_softmax", "softmax_dim0",
                                  "sigmoid_leaky_relu"])
def test_losses_and_activations_on_the_device_copy_nothing(loss, rng=np.random.default_rng(5)):
    a, b = _a(rng, 3, 4), _a(rng, 3, 4)
    fns = {"mse_mean": lambda x, y: nn.functional.mse_loss(x, y),
           "mse_sum": lambda x, y: nn.MSELoss(reduction="sum")(x, y),
           "log_softmax": lambda x, y: nn.functional.log_softmax(x, -1).sum(),
           "softmax_dim0": lambda x, y: nn.functional.softmax(x, dim=0).max(),
           "sigmoid_leaky_relu": lambda x, y: (nn.functional.sigmoid(x).sum()
                                               + nn.functional.leaky_relu(x).sum())}

    def run(device):
        x = fastnn.tensor(a, device=device, requires_grad=True)
        y = fastnn.tensor(b, device=device)
        with fastnn.cuda.count_transfers() as n:
            out = fns[loss](x, y)
            out.backward()
        return out.item(), x.grad.cpu().numpy(), n
    want, want_grad, _ = run("cpu")
    got, grad, n = run("cuda")
    assert n.count == 0, n.log
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)


def test_modules_made_on_the_device_match_those_made_on_the_cpu():
    """`with fastnn.device('cuda'):` and device= make parameters and buffers there, with the
    values the CPU would draw (fastnn's generator), as PyTorch's device context does."""
    fastnn.manual_seed(0)
    cpu = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.BatchNorm1d(4))
    fastnn.manual_seed(0)
    with fastnn.device("cuda"):
        gpu = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.BatchNorm1d(4))
    for (name, a), b in zip(cpu.state_dict().items(), gpu.state_dict().values()):
        assert b.is_cuda, name
        np.testing.assert_array_equal(b.cpu().numpy(), a.numpy())
    fastnn.manual_seed(0)
    lin = nn.Linear(3, 4, device="cuda")
    emb = nn.Embedding(5, 2, device="cuda")
    assert lin.weight.is_cuda and lin.bias.is_cuda and emb.weight.is_cuda
    np.testing.assert_array_equal(lin.weight.detach().cpu().numpy(),
                                  cpu[0].weight.detach().numpy())
    assert nn.Linear(3, 4).weight.device == "cpu"
