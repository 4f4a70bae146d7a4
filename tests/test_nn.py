"""nn.functional and nn modules: gradients against finite differences (float64) on every CPU
backend, outputs and gradients against PyTorch when installed, state dicts and bad inputs."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.kernels import dispatch as backends
from fastnn.nn import functional as F

from conftest import numeric_grad

try:
    import torch
except ImportError:
    torch = None

from conftest import CPU_BACKENDS as CPU  # noqa: E402,F401


@pytest.fixture
def backend(current_cpu_backend):
    """Here every test runs on each CPU backend, made current (see conftest)."""
    return current_cpu_backend


def _rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


TARGETS = np.array([2, 0, 4, 1, 4, 3])
TARGETS_IGNORED = np.array([2, -100, 4, 1, -100, 3])

# name -> (fn(L, F, *tensors) with L = fastnn or torch and F its functional module, inputs)
CASES = {
    "linear": (lambda L, F, x, w, b: F.linear(x, w, b), [_rnd(4, 3), _rnd(5, 3, seed=1),
                                                          _rnd(5, seed=2)]),
    "linear_3d_nobias": (lambda L, F, x, w: F.linear(x, w), [_rnd(2, 4, 3), _rnd(5, 3, seed=1)]),
    "relu": (lambda L, F, x: F.relu(x), [_rnd(4, 5)]),
    "leaky_relu": (lambda L, F, x: F.leaky_relu(x, 0.1), [_rnd(4, 5)]),
    "sigmoid": (lambda L, F, x: F.sigmoid(x), [_rnd(4, 5)]),
    "tanh": (lambda L, F, x: F.tanh(x), [_rnd(4, 5)]),
    "gelu": (lambda L, F, x: F.gelu(x), [_rnd(4, 5)]),
    "gelu_tanh": (lambda L, F, x: F.gelu(x, approximate="tanh"), [_rnd(4, 5)]),
    "softmax_last": (lambda L, F, x: F.softmax(x, dim=-1), [_rnd(3, 5)]),
    "softmax_dim1_3d": (lambda L, F, x: F.softmax(x, dim=1), [_rnd(2, 3, 4)]),
    "softmax_dim0": (lambda L, F, x: F.softmax(x, dim=0), [_rnd(3, 5)]),
    "log_softmax": (lambda L, F, x: F.log_softmax(x, dim=-1), [_rnd(3, 5)]),
    "log_softmax_dim0": (lambda L, F, x: F.log_softmax(x, dim=0), [_rnd(3, 5)]),
    "cross_entropy_mean": (lambda L, F, x: F.cross_entropy(x, L.tensor(TARGETS)), [_rnd(6, 5)]),
    "cross_entropy_sum": (lambda L, F, x: F.cross_entropy(x, L.tensor(TARGETS), reduction="sum"),
                          [_rnd(6, 5)]),
    "cross_entropy_none": (lambda L, F, x: F.cross_entropy(x, L.tensor(TARGETS),
                                                           reduction="none"), [_rnd(6, 5)]),
    "cross_entropy_ignore": (lambda L, F, x: F.cross_entropy(x, L.tensor(TARGETS_IGNORED)),
                             [_rnd(6, 5)]),
    "cross_entropy_3d": (lambda L, F, x: F.cross_entropy(x, L.tensor(TARGETS[:4].reshape(2, 2))),
                         [_rnd(2, 5, 2)]),
    "mse_mean": (lambda L, F, x, y: F.mse_loss(x, y), [_rnd(3, 4), _rnd(3, 4, seed=1)]),
    "mse_sum": (lambda L, F, x, y: F.mse_loss(x, y, reduction="sum"),
                [_rnd(3, 4), _rnd(3, 4, seed=1)]),
    "mse_none": (lambda L, F, x, y: F.mse_loss(x, y, reduction="none"),
                 [_rnd(3, 4), _rnd(3, 4, seed=1)]),
    "layer_norm": (lambda L, F, x, w, b: F.layer_norm(x, (5,), w, b),
                   [_rnd(2, 3, 5), 1 + _rnd(5, seed=1), _rnd(5, seed=2)]),
    "layer_norm_2dims": (lambda L, F, x, w: F.layer_norm(x, (3, 4), w, None, 1e-3),
                         [_rnd(2, 3, 4), 1 + _rnd(3, 4, seed=1)]),
    "layer_norm_plain": (lambda L, F, x: F.layer_norm(x, (6,)), [_rnd(4, 6)]),
    "embedding": (lambda L, F, w: F.embedding(L.tensor(np.array([[1, 3, 1], [0, 3, 3]])), w),
                  [_rnd(5, 4)]),
    "mlp_chain": (lambda L, F, x, w1, w2: F.cross_entropy(
        F.linear(F.gelu(F.linear(x, w1)), w2), L.tensor(TARGETS[:4] % 3)),
        [_rnd(4, 3), _rnd(6, 3, seed=1), _rnd(3, 6, seed=2)]),
}


def _run(fn, arrays, seed=7):
    ts = [fastnn.tensor(x, requires_grad=True) for x in arrays]
    out = fn(fastnn, F, *ts)
    w = np.random.default_rng(seed).standard_normal(out.shape)
    (out * fastnn.tensor(w)).sum().backward()
    return out, w, ts


@pytest.mark.parametrize("case", sorted(CASES))
def test_functional_gradient_matches_finite_differences(case, backend):
    fn, arrays = CASES[case]
    arrays = [a.copy() for a in arrays]
    out, w, ts = _run(fn, arrays)
    assert out.dtype == np.float64

    def f():
        with fastnn.no_grad():
            return float((fn(fastnn, F, *[fastnn.tensor(a) for a in arrays])._data * w).sum())
    for x, t in zip(arrays, ts):
        np.testing.assert_allclose(t.grad, numeric_grad(f, x), rtol=1e-5, atol=1e-7)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("case", sorted(CASES))
def test_functional_matches_torch(case, backend):
    fn, arrays = CASES[case]
    out, w, ts = _run(fn, arrays)
    tts = [torch.tensor(x, requires_grad=True) for x in arrays]
    tout = fn(torch, torch.nn.functional, *tts)
    (tout * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(out._data, tout.detach().numpy(), rtol=1e-9, atol=1e-12)
    for t, tt in zip(ts, tts):
        np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_float32_functional_path(backend):
    x = fastnn.randn(8, 6, requires_grad=True)
    lin = nn.Linear(6, 4)
    ln = nn.LayerNorm(4)
    loss = F.cross_entropy(F.gelu(ln(lin(x))), fastnn.tensor(np.arange(8) % 4))
    loss.backward()
    for p in (x, lin.weight, lin.bias, ln.weight, ln.bias):
        assert p.grad.dtype == np.float32 and p.grad.shape == p.shape


def test_dropout_masks_scales_and_is_off_in_eval(backend):
    fastnn.manual_seed(0)
    x = fastnn.ones(1000, 50, requires_grad=True)
    drop = nn.Dropout(0.2)
    y = drop(x)
    kept = y._data != 0
    assert abs(kept.mean() - 0.8) < 0.01
    np.testing.assert_allclose(y._data[kept], 1 / 0.8, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, y._data)  # d(sum)/dx is the scaled mask
    drop.eval()
    assert drop(x) is x
    assert F.dropout(x, 0.0) is x
    assert not F.dropout(x, 1.0)._data.any()


# ---------------------------------------------------------------- modules
def test_linear_layout_and_default_init():
    fastnn.manual_seed(0)
    lin = nn.Linear(400, 300)
    assert lin.weight.shape == (300, 400) and lin.bias.shape == (300,)
    assert lin.weight.dtype == np.float32 and lin.weight.requires_grad
    bound = 1 / math.sqrt(400)
    for p in (lin.weight, lin.bias):
        assert np.abs(p._data).max() <= bound
    # U(-b, b) has std b/sqrt(3)
    assert abs(lin.weight._data.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert nn.Linear(3, 2, bias=False).bias is None


def _block(L):
    class Block(L.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = L.nn.Embedding(10, 6)
            self.layers = L.nn.ModuleList([L.nn.Linear(6, 6), L.nn.Linear(6, 6, bias=False)])
            self.heads = L.nn.ModuleDict({"cls": L.nn.Linear(6, 3)})
            self.norm = L.nn.LayerNorm(6)
            self.seq = L.nn.Sequential(L.nn.Linear(6, 4), L.nn.GELU(), L.nn.Dropout(0.1),
                                       L.nn.Linear(4, 2))

        def forward(self, ids):
            h = self.emb(ids)
            for layer in self.layers:
                h = h + layer(h).tanh()
            h = self.norm(h)
            return self.heads["cls"](h).sum() + self.seq(h).sum()
    return Block()


def test_state_dict_keys_and_round_trip():
    m = _block(fastnn)
    sd = m.state_dict()
    assert list(sd) == ["emb.weight", "layers.0.weight", "layers.0.bias", "layers.1.weight",
                        "heads.cls.weight", "heads.cls.bias", "norm.weight", "norm.bias",
                        "seq.0.weight", "seq.0.bias", "seq.3.weight", "seq.3.bias"]
    m2 = _block(fastnn)
    m2.load_state_dict(sd)
    for k, v in m2.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])
    sd["norm.bias"][:] = 7  # state_dict() shares storage with the model, as PyTorch's
    assert (m.norm.bias._data == 7).all() and not sd["norm.bias"].requires_grad
    assert m.num_parameters() == sum(v.numel() for v in sd.values())


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_state_dict_moves_to_and_from_torch(backend):
    m, tm = _block(fastnn), _block(torch)
    tsd = tm.state_dict()
    assert list(m.state_dict()) == list(tsd)
    assert all(m.state_dict()[k].shape == tuple(v.shape) for k, v in tsd.items())
    m.load_state_dict(tsd)  # torch tensors accepted
    m.eval()
    tm.eval()
    ids = np.array([[1, 2, 3], [4, 5, 9]])
    with fastnn.no_grad():
        y = m(fastnn.tensor(ids)).item()
    with torch.no_grad():
        ty = tm(torch.tensor(ids)).item()
    assert y == pytest.approx(ty, rel=1e-5, abs=1e-5)
    fresh = _block(torch)
    fresh.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in m.state_dict().items()})


def test_module_api(backend):
    m = _block(fastnn)
    assert "parameters" in repr(m) and "Linear(in_features=6, out_features=6" in repr(m)
    assert len(list(m.children())) == 5
    assert len(list(m.modules())) == 13
    names = [n for n, _ in m.named_parameters()]
    assert names == list(m.state_dict())
    m.eval()
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    m.double()
    assert all(p.dtype == np.float64 for p in m.parameters())
    m.float()
    assert all(p.dtype == np.float32 for p in m.parameters())
    m(fastnn.tensor(np.array([[1, 2]]))).backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Flatten(), nn.Identity(), nn.Sigmoid())
    assert len(seq) == 5 and isinstance(seq[0], nn.Linear) and len(seq[1:]) == 4
    assert seq(fastnn.randn(4, 2)).shape == (4, 3)


def test_buffers_are_saved_but_not_trained():
    class WithBuffer(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("scale", fastnn.ones(3))
            self.register_buffer("tmp", fastnn.zeros(2), persistent=False)
            self.w = nn.Parameter(fastnn.ones(3))
    m = WithBuffer()
    assert list(m.state_dict()) == ["w", "scale"]
    assert [n for n, _ in m.named_parameters()] == ["w"]
    m.load_state_dict({"w": np.full(3, 2.0), "scale": np.full(3, 5.0)})
    assert m.scale._data[0] == 5.0 and m.w._data.dtype == np.float32


# ---------------------------------------------------------------- bad inputs
def test_linear_shape_mismatch_is_a_clear_error(backend):
    with pytest.raises(ValueError, match="input has 5 features"):
        nn.Linear(4, 2)(fastnn.randn(3, 5))


def test_cross_entropy_rejects_out_of_range_and_float_targets(backend):
    logits = fastnn.randn(3, 4, requires_grad=True)
    with pytest.raises(IndexError, match="out of range"):
        F.cross_entropy(logits, fastnn.tensor([0, 4, 1]))
    with pytest.raises(IndexError, match="out of range"):
        F.cross_entropy(logits, fastnn.tensor([0, -1, 1]))
    with pytest.raises(TypeError, match="integer"):
        F.cross_entropy(logits, fastnn.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError):
        F.cross_entropy(logits, fastnn.tensor([0, 1]))


def test_embedding_rejects_out_of_range_ids(backend):
    with pytest.raises(IndexError):
        nn.Embedding(5, 3)(fastnn.tensor([0, 5]))


def test_layer_shape_errors(backend):
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm(4)(fastnn.randn(2, 5))
    with pytest.raises(ValueError, match="shape"):
        F.mse_loss(fastnn.randn(2, 3), fastnn.randn(3, 2))


def test_load_state_dict_errors_leave_model_unchanged():
    m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    before = m.state_dict()
    bad = dict(before)
    bad["1.weight"] = np.zeros((2, 2))
    bad["0.weight"] = np.full((2, 3), 9.0)
    before = {k: v.clone() for k, v in before.items()}  # state_dict() shares storage
    with pytest.raises(RuntimeError, match="size mismatch for 1.weight"):
        m.load_state_dict(bad)
    np.testing.assert_array_equal(m.state_dict()["0.weight"], before["0.weight"])
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "0.bias"'):
        m.load_state_dict({"0.weight": before["0.weight"]})
    res = m.load_state_dict({"0.weight": before["0.weight"], "extra": np.zeros(1)}, strict=False)
    assert "extra" in res.unexpected_keys and "1.bias" in res.missing_keys


def test_forward_hooks_and_parameter_containers():
    m = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    seen = []
    h = m[0].register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    p = m[1].register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
    assert m(fastnn.ones(4, 2)).sum().item() == 0.0 and seen == [(4, 3)]
    h.remove()
    p.remove()
    m(fastnn.ones(4, 2))
    assert len(seen) == 1

    class WithParams(nn.Module):
        def __init__(self):
            super().__init__()
            self.ws = nn.ParameterList([fastnn.ones(2), fastnn.zeros(3)])
            self.named = nn.ParameterDict({"a": nn.Parameter(fastnn.ones(1))})
    w = WithParams()
    assert list(w.state_dict()) == ["ws.0", "ws.1", "named.a"]
    assert len(list(w.parameters())) == 3 and w.ws[1].shape == (3,) and "a" in w.named
