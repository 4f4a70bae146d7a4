"""The MLP training step's fast paths (issue 16): nn.Sequential runs a plain Linear then ReLU as
one fused op (F._linear_relu), and Adam gathers a group's tensors into one kernel call. Each
must give the numbers of the plain path, keep PyTorch's autograd behaviour (hooks, retain_graph,
accumulation, create_graph, grad_fn) and really update the parameters."""
import copy

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.nn import functional as F


def _mlp(sizes=(6, 8, 8, 3), dtype=None, bias=True):
    fastnn.manual_seed(0)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b, bias=bias, dtype=dtype), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def _unfused(model, x):
    """The same modules called one by one: Linear and ReLU as two ops."""
    for m in model:
        x = m(x)
    return x


def _data(dtype=np.float32, n=5, d=6, classes=3):
    rng = np.random.default_rng(1)
    return (fastnn.tensor(rng.standard_normal((n, d)).astype(dtype)),
            fastnn.tensor(rng.integers(0, classes, n)))


def _grads(model):
    return [None if p.grad is None else p.grad.detach().numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_forward_and_grads_equal_the_two_ops(current_cpu_backend, dtype):
    model = _mlp(dtype=fastnn.float64 if dtype == np.float64 else None)
    x, y = _data(dtype)
    x.requires_grad_(True)
    out = model(x)
    assert out.dtype == (fastnn.float64 if dtype == np.float64 else fastnn.float32)
    F.cross_entropy(out, y).backward()
    fused, gx = _grads(model), x.grad.detach().numpy().copy()
    model.zero_grad()
    x.grad = None
    ref = _unfused(model, x)
    F.cross_entropy(ref, y).backward()
    np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())
    for a, b in zip(fused, _grads(model)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(gx, x.grad.detach().numpy())
    assert any(np.any(g != 0) for g in fused)


def test_grad_fn_reads_relu_and_a_second_backward_needs_retain_graph():
    model = _mlp((4, 5, 2))
    x, _ = _data(n=3, d=4)
    h = model[0:2](x)            # a Sequential of one Linear, ReLU pair: the fused op
    assert h.grad_fn.name() == "ReluBackward0"
    loss = model(x).sum()
    loss.backward(retain_graph=True)
    g1 = _grads(model)
    loss.backward()               # grads accumulate across backward calls
    for a, b in zip(g1, _grads(model)):
        np.testing.assert_allclose(b, 2 * a, rtol=1e-6)
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_in_place_change_of_the_output_before_backward_raises():
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU())
    x, _ = _data(n=3, d=4)
    out = model(x)
    with fastnn.no_grad():
        out.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_hooks_and_replaced_forward_see_the_linear_output():
    model = _mlp((4, 5, 2))
    x, _ = _data(n=3, d=4)
    seen = []
    h = model[0].register_forward_hook(lambda m, a, out: seen.append(out.detach().numpy().copy()))
    out = model(x)
    pre = x.detach().numpy() @ model[0].weight.detach().numpy().T + model[0].bias.detach().numpy()
    assert len(seen) == 1 and (seen[0] < 0).any()     # the Linear's output, before the ReLU
    np.testing.assert_allclose(seen[0], pre, rtol=1e-5, atol=1e-6)
    h.remove()
    np.testing.assert_array_equal(model(x).detach().numpy(), out.detach().numpy())
    # a hook on the ReLU runs too, and a forward set on the instance replaces the class's
    calls = []
    model[1].register_forward_pre_hook(lambda m, a: calls.append("relu"))
    model(x)
    assert calls == ["relu"]
    model[0].forward = lambda inp: F.linear(inp, model[0].weight, model[0].bias) * 0
    np.testing.assert_allclose(model(x).detach().numpy(), np.broadcast_to(model[2].bias.detach().numpy(), (3, 2)),
                               rtol=1e-6)


def test_frozen_weight_or_bias_and_inputs_without_bias_or_2d():
    for freeze in ("weight", "bias"):
        model = _mlp((4, 5, 2))
        getattr(model[0], freeze).requires_grad_(False)
        x, _ = _data(n=3, d=4)
        model(x).sum().backward()
        fused = _grads(model)
        model.zero_grad()
        _unfused(model, x).sum().backward()
        assert getattr(model[0], freeze).grad is None
        for a, b in zip(fused, _grads(model)):
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_array_equal(a, b)
    # no bias, and 3-D input: the two ops run (same numbers by construction), still correct
    model = _mlp((4, 5, 2), bias=False)
    x3 = fastnn.tensor(np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32))
    for m in (model, _mlp((4, 5, 2))):
        out = m(x3)
        assert out.shape == (2, 3, 2)
        np.testing.assert_array_equal(out.detach().numpy(), _unfused(m, x3).detach().numpy())


def test_double_backward_through_the_fused_op():
    model = _mlp((4, 5, 2))
    x, _ = _data(n=3, d=4)
    x.requires_grad_(True)
    results = []
    for run in (model, lambda t: _unfused(model, t)):
        (gx,) = fastnn.autograd.grad((run(x) ** 2).sum(), x, create_graph=True)
        (ggx,) = fastnn.autograd.grad((gx ** 2).sum(), x)
        results.append((gx.detach().numpy(), ggx.detach().numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.abs(results[0][1]).sum() > 0


def test_adam_step_updates_every_parameter_and_zero_grad_sets_none():
    model = _mlp()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    x, y = _data()
    before = [p.detach().numpy().copy() for p in model.parameters()]
    F.cross_entropy(model(x), y).backward()
    grads = _grads(model)
    opt.step()
    for b, g, p in zip(before, grads, model.parameters()):
        # Adam's first step moves each entry with a gradient by lr (m / sqrt(v) = sign(g)), and
        # leaves those of a dead ReLU unit (zero gradient) alone
        moved = np.abs(b - p.detach().numpy())
        assert (g != 0).mean() > 0.5
        np.testing.assert_allclose(moved[np.abs(g) > 1e-6], 1e-2, rtol=1e-3)
        assert not moved[g == 0].any()
        assert opt.state[p]["step"] == 1
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    # a parameter with no gradient is left alone (and gets no state)
    extra = nn.Parameter(fastnn.ones(3))
    opt.add_param_group({"params": [extra]})
    F.cross_entropy(model(x), y).backward()
    opt.step()
    np.testing.assert_array_equal(extra.detach().numpy(), np.ones(3, np.float32))
    assert not opt.state.get(extra)
    assert all(opt.state[p]["step"] == 2 for p in model.parameters())


def test_adam_params_at_different_steps_in_one_group():
    """A parameter that joined later (its own step count) is updated with its own bias
    correction: the same as a fresh Adam on it alone."""
    fastnn.manual_seed(0)
    a, b = nn.Parameter(fastnn.randn(4)), nn.Parameter(fastnn.randn(4))
    b_start = b.detach().numpy().copy()
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = fastnn.ones(4)
    opt.step()                       # b has no grad: only a steps
    b_alone = nn.Parameter(fastnn.tensor(b_start))
    ref = optim.Adam([b_alone], lr=0.1)
    for _ in range(2):
        a.grad, b.grad = fastnn.ones(4), fastnn.full((4,), 0.5)
        b_alone.grad = fastnn.full((4,), 0.5)
        opt.step()
        ref.step()
    assert opt.state[a]["step"] == 3 and opt.state[b]["step"] == 2
    np.testing.assert_allclose(b.detach().numpy(), b_alone.detach().numpy(), rtol=1e-6)


def test_mlp_training_steps_match_pytorch():
    torch = pytest.importorskip("torch")
    model = _mlp((6, 16, 16, 3))
    tmodel = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
                                 torch.nn.ReLU(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        for tp, p in zip(tmodel.parameters(), model.parameters()):
            tp.copy_(torch.from_numpy(p.detach().numpy().copy()))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-2)
    x, y = _data(n=8)
    tx, ty = torch.from_numpy(x.detach().numpy().copy()), torch.from_numpy(y.detach().numpy().copy())
    start = copy.deepcopy([p.detach().numpy() for p in model.parameters()])
    for _ in range(5):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = torch.nn.functional.cross_entropy(tmodel(tx), ty)
        topt.zero_grad()
        tloss.backward()
        topt.step()
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
    for p, tp, s in zip(model.parameters(), tmodel.parameters(), start):
        np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-4, atol=1e-5)
        assert np.abs(p.detach().numpy() - s).max() > 1e-3   # the steps did move it
