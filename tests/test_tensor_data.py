"""`Tensor.data` with PyTorch's semantics: a Tensor sharing the storage, outside autograd
(requires_grad=False, no history, a version counter of its own), so the `.data` idioms of older
programs (`m.weight.data.normal_(0, 0.02)`, `p.data.add_(g, alpha=-lr)`,
`p.grad.data.zero_()`, `p.data = t`) work as in PyTorch. Each scenario runs on fastnn and, where
it is installed, on PyTorch, and the two must agree. Also: fastnn's own layers read the numpy
array (`_data`), never the `.data` property."""
import numpy as np
import pytest

import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
from fastnn.tensor import Tensor

try:
    import torch
except ImportError:  # the PyTorch comparisons skip
    torch = None

LIBS = [fastnn] + ([torch] if torch is not None else [])
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def _np(t):
    return np.array(t.detach().numpy())


def _param(lib, values):
    return lib.nn.Parameter(lib.tensor(np.asarray(values, np.float32)))


# ---------------------------------------------------------------- what .data is
@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_data_is_a_detached_tensor_sharing_storage(lib):
    p = _param(lib, [1.0, 2.0, 3.0])
    d = p.data
    assert isinstance(d, lib.Tensor) and type(d) is lib.Tensor  # not a Parameter
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    assert d.data_ptr() == p.data_ptr()
    assert d.shape == p.shape and d.dtype == p.dtype
    y = (p * 2).sum()
    assert y.data.grad_fn is None and not y.data.requires_grad and y.grad_fn is not None


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_inplace_through_data_changes_values_but_not_the_version(lib):
    """No error for a leaf that requires grad, outside no_grad; the original's version
    counter does not move (changes through .data are invisible to autograd)."""
    p = _param(lib, [[1.0, -2.0], [3.0, -4.0]])
    p.data.mul_(2)
    p.data.add_(lib.ones(2, 2), alpha=0.5)
    p.data.clamp_(-5, 5)
    p.data[0, 0] = 9.0
    p.data.sub_(1).div_(2)
    assert p._version == 0 and p.requires_grad and p.is_leaf
    np.testing.assert_allclose(_np(p), [[4.0, -2.25], [2.0, -3.0]])
    p.data.copy_(lib.tensor([[1.0, 1.0], [1.0, 1.0]]))
    p.data.fill_(0.25)
    assert p._version == 0
    np.testing.assert_allclose(_np(p), 0.25)
    p.data.zero_()
    np.testing.assert_allclose(_np(p), 0.0)


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_random_init_through_data_fills_the_parameter(lib):
    lib.manual_seed(0)
    w = _param(lib, np.zeros((200, 50)))
    w.data.normal_(0.0, 0.02)
    assert abs(float(w.std()) - 0.02) < 0.002 and abs(float(w.mean())) < 0.002
    w.data.uniform_(-0.1, 0.1)
    assert -0.1 <= float(w.min()) and float(w.max()) <= 0.1 and float(w.std()) > 0.05
    assert w._version == 0


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_modifying_a_saved_tensor_through_data_is_not_an_error(lib):
    """PyTorch's escape hatch: .data changes bypass the saved-tensor version check, and the
    gradient uses the new values (x is saved by mul)."""
    x = _param(lib, [1.0, 2.0])
    y = (x * x).sum()
    x.data.mul_(10)
    y.backward()
    np.testing.assert_allclose(_np(x.grad), [20.0, 40.0])


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_grad_data_zero_and_manual_sgd(lib):
    p = _param(lib, [1.0, -1.0])
    for _ in range(3):
        loss = (p * lib.tensor([2.0, 3.0])).sum()
        loss.backward()
        g = p.grad
        p.data.add_(p.grad.data, alpha=-0.1)
        p.grad.data.zero_()
        assert p.grad is g  # zeroed in place, the same Tensor
        np.testing.assert_allclose(_np(p.grad), 0.0)
    np.testing.assert_allclose(_np(p), [1.0 - 0.6, -1.0 - 0.9], rtol=1e-6)


# ---------------------------------------------------------------- assigning .data
@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_assigning_data_replaces_the_storage(lib):
    p = _param(lib, [1.0, 2.0, 3.0])
    new = lib.tensor([[5.0, 6.0], [7.0, 8.0]])
    p.data = new
    assert p.shape == (2, 2) and p.requires_grad and p.is_leaf
    assert p.data_ptr() == new.data_ptr()
    new[0, 0] = -1.0  # shared with the tensor it came from, as in PyTorch
    assert float(p[0, 0]) == -1.0
    (p * 3).sum().backward()
    np.testing.assert_allclose(_np(p.grad), np.full((2, 2), 3.0))
    p.data = lib.tensor([1.0, 2.0], dtype=lib.float64)
    assert p.dtype == lib.float64


def test_assigning_data_takes_only_a_tensor():
    p = nn.Parameter(fastnn.zeros(3))
    with pytest.raises(TypeError, match="has to be a tensor"):
        p.data = np.ones(3, np.float32)
    np.testing.assert_array_equal(p._data, 0.0)


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_weight_tying_through_data_assignment(lib):
    """`decoder.weight.data = encoder.weight.data`: the two parameters share one storage, so
    an update to one is seen by the other."""
    enc, dec = lib.nn.Embedding(5, 3), lib.nn.Linear(3, 5, bias=False)
    dec.weight.data = enc.weight.data
    with lib.no_grad():
        enc.weight.mul_(0).add_(1.0)
    np.testing.assert_allclose(_np(dec.weight), 1.0)
    assert dec.weight is not enc.weight


# ---------------------------------------------------------------- detach, data_ptr, zero_grad
@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_detach_shares_storage_and_the_version_counter(lib):
    """Unlike .data, detach() shares the version counter: modifying it is seen by autograd."""
    x = _param(lib, [1.0, 2.0])
    d = x.detach()
    assert d.data_ptr() == x.data_ptr() and not d.requires_grad
    y = (x * x).sum()
    d.add_(1)
    assert x._version == 1 and float(x[0]) == 2.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_data_ptr_of_views_and_copies(lib):
    x = lib.zeros(4, 3)
    assert x[1:].data_ptr() == x.data_ptr() + 3 * x.element_size()
    assert x.clone().data_ptr() != x.data_ptr()
    assert x.view(12).data_ptr() == x.data_ptr() == x.data.data_ptr()


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_module_zero_grad_keeps_the_grad_tensor(lib):
    m = lib.nn.Linear(3, 2)
    m(lib.ones(4, 3)).sum().backward()
    before = m.weight.grad
    m.zero_grad(set_to_none=False)
    assert m.weight.grad is before
    np.testing.assert_array_equal(_np(m.weight.grad), 0.0)
    m(lib.ones(4, 3)).sum().backward()
    assert m.weight.grad is before and float(m.weight.grad.abs().sum()) > 0
    m.zero_grad()
    assert m.weight.grad is None


@needs_torch
def test_dcgan_style_weights_init_matches_torch():
    """m.weight.data.normal_ and m.bias.data.fill_ through Module.apply, then one training step
    with the values copied in through .data.copy_: fastnn and PyTorch agree."""
    def build(lib):
        net = lib.nn.Sequential(lib.nn.Conv2d(1, 4, 3), lib.nn.BatchNorm2d(4), lib.nn.ReLU(),
                                lib.nn.Flatten(), lib.nn.Linear(4 * 4 * 4, 2))

        def weights_init(m):
            name = m.__class__.__name__
            if name.find("Conv") != -1:
                m.weight.data.normal_(0.0, 0.02)
            elif name.find("BatchNorm") != -1:
                m.weight.data.normal_(1.0, 0.02)
                m.bias.data.fill_(0)
        net.apply(weights_init)
        return net

    rng = np.random.default_rng(0)
    nets = {lib: build(lib) for lib in (fastnn, torch)}
    for (k, p), (_, q) in zip(nets[fastnn].named_parameters(), nets[torch].named_parameters()):
        v = rng.standard_normal(tuple(p.shape)).astype(np.float32) * 0.1
        p.data.copy_(fastnn.tensor(v))
        q.data.copy_(torch.tensor(v))
    x = rng.standard_normal((8, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 2, 8)
    out = {}
    for lib, net in nets.items():
        loss = lib.nn.functional.cross_entropy(net(lib.tensor(x)), lib.tensor(y))
        loss.backward()
        for p in net.parameters():
            p.data.add_(p.grad.data, alpha=-0.1)
        out[lib] = [float(loss)] + [_np(p) for p in net.parameters()]
    np.testing.assert_allclose(out[fastnn][0], out[torch][0], rtol=1e-5)
    for a, b in zip(out[fastnn][1:], out[torch][1:]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- fastnn's own paths
def test_layers_and_optimizers_never_go_through_the_data_property(monkeypatch):
    """Forward, backward and optimizer steps read the numpy array directly (`_data`): the
    `.data` property (a new Tensor per call) is for user code only."""
    calls = []
    prop = Tensor.data

    def counted(self):
        calls.append(1)
        return prop.fget(self)
    monkeypatch.setattr(Tensor, "data", property(counted, prop.fset))
    fastnn.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 16),
                        nn.LayerNorm(16), nn.GELU(), nn.Dropout(0.1), nn.Linear(16, 3))
    x = fastnn.randn(8, 1, 8, 8)
    y = fastnn.randint(0, 3, (8,))
    for opt in (fastnn.optim.SGD(net.parameters(), lr=0.1, momentum=0.9),
                fastnn.optim.AdamW(net.parameters(), lr=1e-3)):
        for _ in range(2):
            opt.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
    net.eval()
    net(x).argmax(1).tolist()
    net.state_dict()
    assert calls == []
