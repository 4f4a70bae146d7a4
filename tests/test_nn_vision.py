"""The vision layers (fastnn/nn/functional.py's vision section, nn/conv.py, nn/pooling.py,
nn/normalization.py) against PyTorch: F.* forward and gradients in float64 to 1e-10 on every CPU
backend, modules' state-dict keys and initialization, a torch state dict loaded into fastnn giving
the same outputs, running statistics, and train()/eval() switching BatchNorm and Dropout2d.
Tests that need torch skip without it."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.nn import functional as F

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
TOL = dict(rtol=1e-10, atol=1e-10)


@pytest.fixture
def backend(current_cpu_backend):
    """Each F test runs on every CPU backend, made current (see conftest)."""
    return current_cpu_backend


def _arr(g):
    """A gradient as an array (fastnn keeps .grad as an array or a Tensor)."""
    return np.asarray(g._data if isinstance(g, fastnn.Tensor) else g)


def _rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# name -> (fn(L, F, *tensors), input arrays, {kwargs}); L = fastnn or torch, F its functional.
# Every input gets a gradient, compared against torch's.
CASES = {
    "conv2d": (lambda L, F, x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1,
                                               dilation=(1, 2), groups=2),
               [_rnd(2, 4, 7, 6), _rnd(6, 2, 3, 3, seed=1), _rnd(6, seed=2)]),
    "conv2d_same_even_kernel": (lambda L, F, x, w: F.conv2d(x, w, padding="same"),
                                [_rnd(2, 3, 5, 6), _rnd(4, 3, 4, 2, seed=1)]),
    "conv2d_valid_stride_gt_kernel": (lambda L, F, x, w, b: F.conv2d(x, w, b, 3, "valid"),
                                      [_rnd(1, 2, 8, 7), _rnd(3, 2, 2, 2, seed=1),
                                       _rnd(3, seed=2)]),
    "conv2d_depthwise_unbatched": (lambda L, F, x, w: F.conv2d(x, w, padding=2, groups=3),
                                   [_rnd(3, 4, 5), _rnd(3, 1, 3, 3, seed=1)]),
    "conv2d_1x1_image": (lambda L, F, x, w, b: F.conv2d(x, w, b, padding=1),
                         [_rnd(2, 2, 1, 1), _rnd(3, 2, 3, 3, seed=1), _rnd(3, seed=2)]),
    "conv_transpose2d": (lambda L, F, x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1,
                                                                  output_padding=1, groups=2),
                         [_rnd(2, 4, 3, 5), _rnd(4, 3, 3, 2, seed=1), _rnd(6, seed=2)]),
    "conv_transpose2d_dilation": (lambda L, F, x, w: F.conv_transpose2d(
        x, w, stride=(1, 2), padding=(1, 0), dilation=(2, 1)),
        [_rnd(1, 2, 4, 3), _rnd(2, 3, 3, 2, seed=1)]),
    "max_pool2d": (lambda L, F, x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), [_rnd(2, 3, 7, 6)]),
    "max_pool2d_dilation": (lambda L, F, x: F.max_pool2d(x, (2, 3), (1, 2), (1, 1), dilation=2),
                            [_rnd(2, 2, 6, 7)]),
    "max_pool2d_unbatched": (lambda L, F, x: F.max_pool2d(x, 2), [_rnd(3, 5, 4)]),
    "avg_pool2d": (lambda L, F, x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True,
                                                count_include_pad=False), [_rnd(2, 3, 7, 6)]),
    "avg_pool2d_include_pad": (lambda L, F, x: F.avg_pool2d(x, (2, 3), padding=(1, 1)),
                               [_rnd(1, 2, 5, 7)]),
    "avg_pool2d_divisor": (lambda L, F, x: F.avg_pool2d(x, 2, 1, divisor_override=3),
                           [_rnd(2, 2, 4, 5)]),
    "adaptive_avg_pool2d": (lambda L, F, x: F.adaptive_avg_pool2d(x, (3, 2)), [_rnd(2, 3, 7, 5)]),
    "adaptive_avg_pool2d_none": (lambda L, F, x: F.adaptive_avg_pool2d(x, (None, 4)),
                                 [_rnd(2, 2, 3, 9)]),
    "adaptive_avg_pool2d_global": (lambda L, F, x: F.adaptive_avg_pool2d(x, 1),
                                   [_rnd(3, 4, 5, 5)]),
    "batch_norm_eval": (lambda L, F, x, w, b: F.batch_norm(
        x, L.tensor(np.linspace(-1, 1, 3)), L.tensor(np.linspace(0.5, 2, 3)), w, b, False,
        0.1, 1e-3), [_rnd(4, 3, 5, 2), _rnd(3, seed=1), _rnd(3, seed=2)]),
    "batch_norm_train_no_stats": (lambda L, F, x, w, b: F.batch_norm(x, None, None, w, b, True),
                                  [_rnd(4, 3, 5, 2) * 3 + 1, _rnd(3, seed=1), _rnd(3, seed=2)]),
    "batch_norm_train_no_affine": (lambda L, F, x: F.batch_norm(x, None, None, training=True),
                                   [_rnd(5, 2, 3)]),
    "batch_norm_1d": (lambda L, F, x, w, b: F.batch_norm(x, None, None, w, b, True, eps=1e-3),
                      [_rnd(6, 4), _rnd(4, seed=1), _rnd(4, seed=2)]),
    "group_norm": (lambda L, F, x, w, b: F.group_norm(x, 2, w, b, 1e-4),
                   [_rnd(2, 6, 3, 4) * 2 + 0.5, _rnd(6, seed=1), _rnd(6, seed=2)]),
    "group_norm_no_affine": (lambda L, F, x: F.group_norm(x, 3), [_rnd(3, 6, 5)]),
}


def _run(lib, fn, arrays, seed):
    F_ = fastnn.nn.functional if lib is fastnn else torch.nn.functional
    ts = [lib.tensor(a.copy(), requires_grad=True) for a in arrays]
    y = fn(lib, F_, *ts)
    g = np.random.default_rng(seed).standard_normal(tuple(y.shape))
    (y * lib.tensor(g)).sum().backward()
    grads = [(_arr(t.grad) if lib is fastnn else t.grad.numpy()) if t.grad is not None
             else None for t in ts]
    return np.asarray(y._data if lib is fastnn else y.detach().numpy()), grads


@needs_torch
@pytest.mark.filterwarnings("ignore:Using padding='same'")      # torch's note on even kernels
@pytest.mark.parametrize("name", sorted(CASES))
def test_functional_matches_torch_float64(name, backend):
    fn, arrays = CASES[name]
    y, grads = _run(fastnn, fn, arrays, seed=7)
    ty, tgrads = _run(torch, fn, arrays, seed=7)
    assert y.dtype == np.float64 and y.shape == ty.shape
    np.testing.assert_allclose(y, ty, **TOL)
    for i, (g, tg) in enumerate(zip(grads, tgrads)):
        assert g is not None and g.shape == tg.shape, (name, i)
        np.testing.assert_allclose(g, tg, **TOL, err_msg=f"{name}: gradient of input {i}")


@needs_torch
def test_max_pool2d_indices_and_ties_match_torch(backend):
    x = np.round(_rnd(2, 3, 7, 6) * 2) / 2          # many ties
    y, idx = F.max_pool2d(fastnn.tensor(x), 3, 2, 1, ceil_mode=True, return_indices=True)
    ty, tidx = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2, 1, ceil_mode=True,
                                              return_indices=True)
    np.testing.assert_array_equal(y.numpy(), ty.numpy())
    assert idx.dtype == fastnn.int64
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())


@needs_torch
@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_batch_norm_updates_running_stats_as_torch(momentum, backend):
    x = _rnd(4, 3, 5, 2) * 2 + 1
    rm, rv = np.linspace(-1, 1, 3), np.linspace(0.5, 2, 3)
    frm, frv = fastnn.tensor(rm.copy()), fastnn.tensor(rv.copy())
    trm, trv = torch.tensor(rm.copy()), torch.tensor(rv.copy())
    y = F.batch_norm(fastnn.tensor(x), frm, frv, training=True, momentum=momentum)
    ty = torch.nn.functional.batch_norm(torch.tensor(x), trm, trv, training=True,
                                        momentum=momentum)
    np.testing.assert_allclose(y.numpy(), ty.numpy(), **TOL)
    np.testing.assert_allclose(frm.numpy(), trm.numpy(), **TOL)
    np.testing.assert_allclose(frv.numpy(), trv.numpy(), **TOL)


def test_functional_gradients_only_where_asked():
    x = fastnn.tensor(_rnd(2, 3, 6, 6))                    # a first layer: no input gradient
    w = fastnn.tensor(_rnd(4, 3, 3, 3, seed=1), requires_grad=True)
    F.conv2d(x, w, padding=1).sum().backward()
    assert x.grad is None and w.grad.shape == (4, 3, 3, 3)


def test_bad_input_names_the_problem():
    x = fastnn.tensor(_rnd(1, 3, 5, 5))
    with pytest.raises(ValueError, match="divisible by groups"):
        F.conv2d(x, fastnn.tensor(_rnd(4, 1, 3, 3)), groups=2)
    with pytest.raises(ValueError, match="too small"):
        F.conv2d(x, fastnn.tensor(_rnd(4, 3, 7, 7)))
    with pytest.raises(ValueError):
        F.max_pool2d(fastnn.tensor(_rnd(5, 5)), 2)
    with pytest.raises(ValueError, match="dropout2d"):
        F.dropout2d(x, 1.5)


# ---------------------------------------------------------------- modules
def _model(L):
    """Every vision layer at least once, built from fastnn.nn or torch.nn alike."""
    return L.Sequential(
        L.Conv2d(3, 8, 3, padding=1), L.BatchNorm2d(8), L.ReLU(), L.MaxPool2d(2),
        L.Conv2d(8, 8, 3, padding="same", groups=2, bias=False), L.GroupNorm(2, 8), L.ReLU(),
        L.Dropout2d(0.25), L.AvgPool2d(2), L.ConvTranspose2d(8, 4, 3, stride=2, padding=1),
        L.BatchNorm2d(4, momentum=None), L.ReLU(), L.AdaptiveAvgPool2d((2, 2)), L.Flatten(),
        L.Unflatten(1, (4, 4)), L.Flatten(), L.Linear(16, 5), L.BatchNorm1d(5))


@needs_torch
def test_state_dict_keys_shapes_and_dtypes_match_torch():
    fsd, tsd = _model(nn).state_dict(), _model(torch.nn).state_dict()
    assert list(fsd) == list(tsd)
    for k in fsd:
        assert tuple(fsd[k].shape) == tuple(tsd[k].shape), k
        assert str(fsd[k].dtype) == str(tsd[k].dtype), k
    assert {n for n, _ in _model(nn).named_buffers()} == \
        {n for n, _ in _model(torch.nn).named_buffers()}


@needs_torch
def test_torch_state_dict_loads_and_gives_torch_outputs():
    torch.manual_seed(0)
    tm = _model(torch.nn).double()
    with torch.no_grad():                         # non-trivial running statistics and affines
        for m in tm.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d, torch.nn.GroupNorm)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2)
    fm = _model(nn).double()
    fm.load_state_dict(tm.state_dict())
    x = _rnd(6, 3, 8, 8)
    tm.eval(), fm.eval()
    with torch.no_grad():
        ty = tm(torch.tensor(x)).numpy()
    np.testing.assert_allclose(fm(fastnn.tensor(x)).detach().numpy(), ty, **TOL)
    # training mode (no dropout, to compare): batch statistics, and the same running ones after
    tm.train(), fm.train()
    tm[7].p = fm[7].p = 0.0
    tx, fx = torch.tensor(x, requires_grad=True), fastnn.tensor(x, requires_grad=True)
    ty, fy = tm(tx), fm(fx)
    np.testing.assert_allclose(fy.detach().numpy(), ty.detach().numpy(), rtol=1e-9, atol=1e-9)
    ty.square().sum().backward()
    fy.square().sum().backward()
    np.testing.assert_allclose(_arr(fx.grad), tx.grad.numpy(), rtol=1e-8, atol=1e-9)
    fsd, tsd = fm.state_dict(), tm.state_dict()
    for k in tsd:
        np.testing.assert_allclose(np.asarray(fsd[k].numpy()), tsd[k].numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=k)
    tp = dict(tm.named_parameters())
    for k, p in fm.named_parameters():
        np.testing.assert_allclose(_arr(p.grad), tp[k].grad.numpy(), rtol=1e-7, atol=1e-9,
                                   err_msg=k)


@needs_torch
def test_batch_norm_cumulative_momentum_none_matches_torch():
    f, t = nn.BatchNorm2d(3, momentum=None).double(), torch.nn.BatchNorm2d(3, momentum=None)
    t = t.double()
    for i in range(3):
        x = _rnd(4, 3, 2, 2, seed=i) * (i + 1) + i
        f(fastnn.tensor(x))
        t(torch.tensor(x))
    for k, v in t.state_dict().items():
        np.testing.assert_allclose(f.state_dict()[k].numpy(), v.numpy(), **TOL)
    assert int(f.num_batches_tracked.item()) == 3


def test_conv_initialization_bounds_as_torch():
    fastnn.manual_seed(0)
    c = nn.Conv2d(16, 32, 3, groups=2)
    fan_in = 8 * 9
    bound = 1 / math.sqrt(fan_in)          # kaiming_uniform(a=sqrt(5)) gives 1/sqrt(fan_in) too
    w, b = c.weight._data, c.bias._data
    assert w.shape == (32, 8, 3, 3) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
    assert np.abs(b).max() <= bound
    t = nn.ConvTranspose2d(6, 4, (2, 3), groups=2)
    assert t.weight.shape == (6, 2, 2, 3) and t.bias.shape == (4,)
    assert np.abs(t.weight._data).max() <= 1 / math.sqrt(2 * 6)
    assert nn.Conv2d(2, 2, 1, bias=False).bias is None
    assert list(nn.Conv2d(2, 2, 1, bias=False).state_dict()) == ["weight"]


def test_train_eval_switch_batch_norm_and_dropout2d():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Dropout2d(0.5))
    bn, drop = model[1], model[2]
    x = fastnn.tensor(_rnd(8, 2, 6, 6).astype(np.float32))
    model.train()
    assert bn.training and drop.training
    y = model(x).detach().numpy()
    assert int(bn.num_batches_tracked.item()) == 1
    assert not np.allclose(bn.running_mean.numpy(), 0)
    per_channel = np.abs(y).reshape(8, 4, -1).max(-1)
    assert (per_channel == 0).any() and (per_channel > 0).any()   # whole channels dropped
    rm = bn.running_mean.numpy().copy()
    model.eval()
    assert not bn.training and not drop.training
    y1, y2 = model(x).detach().numpy(), model(x).detach().numpy()
    np.testing.assert_array_equal(y1, y2)                         # deterministic
    np.testing.assert_array_equal(bn.running_mean.numpy(), rm)    # nothing updated
    assert int(bn.num_batches_tracked.item()) == 1
    z = model[0](x).detach().numpy()
    expect = (z - rm[:, None, None]) / np.sqrt(bn.running_var.numpy()[:, None, None] + 1e-5)
    np.testing.assert_allclose(y1, expect, rtol=1e-4, atol=1e-5)


def test_dropout2d_scales_kept_channels():
    fastnn.manual_seed(1)
    x = fastnn.ones(64, 16, 3, 3)
    y = F.dropout2d(x, 0.25).numpy()
    vals = np.unique(y.reshape(64, 16, -1), axis=-1)
    assert vals.shape[-1] == 1                                    # a channel is all or nothing
    assert set(np.unique(y).tolist()) <= {0.0, np.float32(1 / 0.75)}
    assert 0.15 < (y == 0).mean() < 0.35
    assert F.dropout2d(x, 0.25, training=False) is x


def test_unflatten_and_conv_transpose_output_size():
    u = nn.Unflatten(1, (2, 3))
    assert u(fastnn.zeros(4, 6)).shape == (4, 2, 3)
    up = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    x = fastnn.zeros(1, 3, 4, 4)
    assert up(x).shape == (1, 2, 7, 7)
    assert up(x, output_size=(8, 8)).shape == (1, 2, 8, 8)
    with pytest.raises(ValueError, match="output size"):
        up(x, output_size=(10, 10))


def test_modules_cast_and_pooling_return_indices():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).double()
    assert m[0].weight.dtype == fastnn.float64 and m[1].running_var.dtype == fastnn.float64
    assert m[1].num_batches_tracked.dtype == fastnn.int64
    y, idx = nn.MaxPool2d(2, return_indices=True)(fastnn.randn(1, 2, 4, 4))
    assert y.shape == idx.shape == (1, 2, 2, 2)
    assert "Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))" in repr(m)
