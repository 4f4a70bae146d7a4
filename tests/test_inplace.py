"""In-place operations with PyTorch's semantics: the same Tensor and storage, views that share
storage with their base, version counters, autograd through in-place ops (rebased nodes), and
PyTorch's errors for illegal ones. Checked against PyTorch where it is installed."""
import numpy as np
import pytest

import fastnn
import fastnn.nn as nn

try:
    import torch
except ImportError:  # the PyTorch comparisons skip
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
LIBS = [fastnn] + ([torch] if torch is not None else [])


def _rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _np(t):
    if t is None:
        return None
    if isinstance(t, np.ndarray):
        return t
    return np.array(t.detach().numpy())


# ---------------------------------------------------------------- the key case: manual SGD
def _digits_like(seed=0, n=64):
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, 8)).astype(np.float32)
    y = (x[:, :3].sum(1) > 0).astype(np.int64) + (x[:, 3] > 1).astype(np.int64)
    return x, y


def _sgd_run(lib, init, steps=15, lr=0.5):
    x, y = _digits_like()
    model = lib.nn.Sequential(lib.nn.Linear(8, 16), lib.nn.Tanh(), lib.nn.Linear(16, 3))
    model.load_state_dict({k: lib.tensor(v) for k, v in init.items()})
    xt, yt = lib.tensor(x), lib.tensor(y)
    losses = []
    for _ in range(steps):
        loss = lib.nn.functional.cross_entropy(model(xt), yt)
        model.zero_grad()
        loss.backward()
        with lib.no_grad():
            for p in model.parameters():
                p -= p.grad * lr
        losses.append(loss.item())
    return losses, {k: _np(v) for k, v in model.state_dict().items()}


def test_manual_sgd_with_in_place_updates_trains():
    m = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    init = {k: _np(v).copy() for k, v in m.state_dict().items()}
    losses, final = _sgd_run(fastnn, init)
    assert losses[-1] < 0.7 * losses[0], losses
    assert not np.allclose(final["0.weight"], init["0.weight"])
    if torch is not None:
        tlosses, tfinal = _sgd_run(torch, init)
        np.testing.assert_allclose(losses, tlosses, rtol=2e-5, atol=2e-6)
        for k in final:
            np.testing.assert_allclose(final[k], tfinal[k], rtol=1e-4, atol=1e-5)


def _tutorial_run(lib):
    """PyTorch's "Learning PyTorch with examples" polynomial fit, with raw tensors."""
    x = lib.linspace(-np.pi, np.pi, 200, dtype=lib.float64)
    y = lib.sin(x)
    a, b, c, d = (lib.tensor(v, dtype=lib.float64, requires_grad=True)
                  for v in (0.1, -0.2, 0.3, 0.05))
    lr = 1e-6
    for _ in range(50):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with lib.no_grad():
            a -= lr * a.grad
            b -= lr * b.grad
            c -= lr * c.grad
            d -= lr * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    return [loss.item()] + [v.item() for v in (a, b, c, d)]


def test_tutorial_polynomial_fit_with_raw_tensors():
    out = _tutorial_run(fastnn)
    assert out[0] < 1000
    if torch is not None:
        np.testing.assert_allclose(out, _tutorial_run(torch), rtol=1e-11)


# ---------------------------------------------------------------- same object, same storage
@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/=", "@="])
def test_augmented_assignment_is_in_place(op):
    x = fastnn.tensor(_rnd(3, 3))
    before = x.numpy().copy()
    other = fastnn.tensor(_rnd(3, 3, seed=1))
    ident, ptr, version = id(x), x.data_ptr(), x._version
    view = x[0]
    ns = {"x": x, "o": other}
    exec(f"x {op} o", ns)
    assert ns["x"] is x and id(x) == ident and x.data_ptr() == ptr
    assert x._version == version + 1
    expected = {"+=": before + other.numpy(), "-=": before - other.numpy(),
                "*=": before * other.numpy(), "/=": before / other.numpy(),
                "@=": before @ other.numpy()}[op]
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(view.numpy(), expected[0], rtol=1e-12)  # the view sees it


@needs_torch
@pytest.mark.parametrize("name", ["index", "slice", "slice_step", "reshape", "view", "transpose",
                                  "permute", "squeeze", "unsqueeze", "narrow", "t", "unbind",
                                  "split", "chunk", "flatten", "T", "select_chain", "iter",
                                  "ellipsis", "detach"])
def test_in_place_on_a_view_changes_the_base_as_torch(name):
    views = {
        "index": lambda x: x[1],
        "slice": lambda x: x[:, 1:3],
        "slice_step": lambda x: x[::2, 1::2],
        "reshape": lambda x: x.reshape(4, 3),
        "view": lambda x: x.view(-1),
        "transpose": lambda x: x.transpose(0, 1),
        "permute": lambda x: x.permute(1, 0),
        "squeeze": lambda x: x[None].squeeze(0),
        "unsqueeze": lambda x: x.unsqueeze(1),
        "narrow": lambda x: x.narrow(1, 1, 2),
        "t": lambda x: x.t(),
        "unbind": lambda x: x.unbind(1)[2],
        "split": lambda x: x.split(2, dim=1)[1],
        "chunk": lambda x: x.chunk(3, dim=0)[2],
        "flatten": lambda x: x.flatten(),
        "T": lambda x: x.T,
        "select_chain": lambda x: x[1:][0][2:],
        "iter": lambda x: list(x)[2],
        "ellipsis": lambda x: x[..., 0],
        "detach": lambda x: x.detach(),
    }
    out = []
    for lib in (fastnn, torch):
        x = lib.tensor(np.arange(12.0).reshape(3, 4))
        v = views[name](x)
        v.mul_(2).add_(1)
        v += 0.5
        out.append((_np(x), x._version, v._version))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    assert out[0][1:] == out[1][1:]


def test_expanded_tensors_refuse_in_place_writes():
    x = fastnn.zeros(3, 1).expand(3, 4)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor "
                                           "refers to a single memory location"):
        x.add_(1)
    if torch is not None:
        with pytest.raises(RuntimeError, match="more than one element"):
            torch.zeros(3, 1).expand(3, 4).add_(1)


@needs_torch
def test_version_counter_matches_torch():
    vs = []
    for lib in (fastnn, torch):
        x = lib.ones(2, 3)
        seq = [x._version]
        x.add_(1)
        seq.append(x._version)
        v = x[0]
        v.mul_(2)
        seq += [x._version, v._version]
        x[1, 1] = 7.0
        seq += [x._version, v._version]
        x.zero_()
        x.fill_(3)
        x.copy_(lib.ones(2, 3))
        x.clamp_(0, 1)
        x.uniform_()
        x.normal_()
        x.masked_fill_(x > 0, 0.0)
        seq.append(x._version)
        y = x + 1
        seq += [y._version, x._version, x.detach()._version]
        vs.append(seq)
    assert vs[0] == vs[1]


# ---------------------------------------------------------------- PyTorch's errors
def _error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return type(e).__name__, str(e)
    return None


ERROR_CASES = {
    "leaf_iadd": lambda L: L.ones(2, requires_grad=True).__iadd__(1),
    "leaf_add_": lambda L: L.ones(2, requires_grad=True).add_(1),
    "leaf_setitem": lambda L: L.ones(2, requires_grad=True).__setitem__(0, 5.0),
    "leaf_zero_": lambda L: L.ones(2, requires_grad=True).zero_(),
    "leaf_copy_": lambda L: L.ones(2, requires_grad=True).copy_(L.zeros(2)),
    "view_of_leaf": lambda L: L.ones(2, 2, requires_grad=True)[0].mul_(2),
    "int_from_float": lambda L: L.ones(2, dtype=L.int64).add_(0.5),
    "int_div": lambda L: L.ones(2, dtype=L.int64).div_(2),
    "bad_broadcast": lambda L: L.ones(2).add_(L.ones(3, 2)),
}


@pytest.mark.parametrize("name", sorted(ERROR_CASES))
def test_illegal_in_place_ops_raise_as_torch(name):
    got = _error(lambda: ERROR_CASES[name](fastnn))
    assert got is not None and got[0] == "RuntimeError", got
    if torch is not None:
        want = _error(lambda: ERROR_CASES[name](torch))
        assert want[0] == "RuntimeError"
        # the first sentence of PyTorch's message, where fastnn copies it
        if name.startswith(("leaf", "view_of_leaf")):
            assert got[1] == want[1]
        elif name.startswith("int"):
            assert got[1].startswith("result type Float can't be cast to the desired output "
                                     "type Long") and want[1].startswith(got[1][:40])


SAVED = {  # an op that saves a tensor for backward, then that tensor modified in place
    "mul": lambda L, x: (lambda y: (y * y, y))(x * 1),
    "div": lambda L, x: (lambda y: (x / y, y))(x + 1),
    "pow": lambda L, x: (lambda y: (y ** 3, y))(x * 1),
    "matmul": lambda L, x: (lambda y: (y @ y, y))(x * 1),
    "exp_output": lambda L, x: (lambda y: (y, y))(x.exp()),
    "log": lambda L, x: (lambda y: (y.log(), y))(x * 1),
    "sqrt_output": lambda L, x: (lambda y: (y, y))((x * x).sqrt()),
    "tanh_output": lambda L, x: (lambda y: (y, y))(x.tanh()),
    "sigmoid_output": lambda L, x: (lambda y: (y, y))(x.sigmoid()),
    "relu_output": lambda L, x: (lambda y: (y, y))(x.relu()),
    "softmax_output": lambda L, x: (lambda y: (y, y))(x.softmax(-1)),
    "view_of_saved": lambda L, x: (lambda y: (y * y, y[0]))(x * 1),
    "exp_then_modified": lambda L, x: (lambda y: (y, y))((x * 1).exp_()),
    "sigmoid_then_modified": lambda L, x: (lambda y: (y, y))((x * 1).sigmoid_()),
}


@pytest.mark.parametrize("name", sorted(SAVED))
def test_modifying_a_saved_tensor_fails_backward_as_torch(name):
    for lib in LIBS:
        x = lib.tensor(np.abs(_rnd(2, 2)) + 0.5, requires_grad=True)
        out, saved = SAVED[name](lib, x)
        saved.add_(1)
        with pytest.raises(RuntimeError, match="one of the variables needed for gradient "
                                               "computation has been modified by an inplace "
                                               "operation"):
            out.sum().backward()


def test_no_error_when_nothing_saved_was_modified():
    x = fastnn.ones(3, requires_grad=True)
    y = x * 2
    z = y + 1       # add saves nothing
    y.add_(5)
    z.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])
    w = fastnn.ones(3, requires_grad=True)
    with fastnn.no_grad():  # under no_grad a leaf may be updated in place
        w += 1
        w[0] = 0.0
        w.mul_(2)
    assert w.is_leaf and w.requires_grad and w.tolist() == [0.0, 4.0, 4.0]


# ---------------------------------------------------------------- autograd through in-place ops
GRAD_CASES = {
    "iadd": lambda L, x, w: (lambda y: (y.__iadd__(1), y)[1])(x * 2),
    "mul_tensor": lambda L, x, w: x.clone().mul_(w),
    "div_tensor": lambda L, x, w: (x * 1).div_(w * w + 1),
    "sub_alpha": lambda L, x, w: (x * 3).sub_(w, alpha=2),
    "pow_": lambda L, x, w: (x * 1).pow_(3),
    "exp_": lambda L, x, w: (x * 0.5).exp_(),
    "sigmoid_": lambda L, x, w: (x * 1).sigmoid_() * w,
    "tanh_": lambda L, x, w: (x * 1).tanh_() * w,
    "relu_": lambda L, x, w: (x * w).relu_(),
    "clamp_": lambda L, x, w: (x * 1).clamp_(-0.3, 0.4),
    "sqrt_": lambda L, x, w: (x * x + 1).sqrt_(),
    "addcmul_": lambda L, x, w: (x * 1).addcmul_(w, x, value=0.5),
    "addcdiv_": lambda L, x, w: (x * 1).addcdiv_(w, x * x + 1, value=2),
    "masked_fill_": lambda L, x, w: (x * w).masked_fill_(x > 0, 0.0),
    "copy_": lambda L, x, w: (lambda y: (y.copy_(w[0]), y * x)[1])(x * 1),
    "fill_zero": lambda L, x, w: (lambda y: (y[0].fill_(2.0), y[1].zero_(), y * w)[2])(x * 1),
    "setitem_value": lambda L, x, w: (lambda y: (y.__setitem__(0, w[1] * 3), y)[1])(x * 1),
    "setitem_slice_iadd": lambda L, x, w: _setitem_iadd(x, w),
    "setitem_tensor_index": lambda L, x, w: _setitem_index(L, x, w),
    "index_put_accumulate": lambda L, x, w: (x * 1).index_put_(
        (L.tensor([0, 2, 0]),), w[1] * 2, accumulate=True),
    "view_in_place": lambda L, x, w: (lambda y: (y.t()[1].mul_(w[:, 0]), y * y)[1])(x.clone()),
    "view_reshape_in_place": lambda L, x, w: (lambda y: (y.view(-1)[1::2].add_(
        w.reshape(-1)[:6]), y.exp())[1])(x.clone()),
    "old_view_after_base_update": lambda L, x, w: (lambda y, v: (y.mul_(w), v * 3)[1])(
        *(lambda y: (y, y[1]))(x * 1)),
    "base_after_view_update": lambda L, x, w: (lambda y, v: (v.exp_(), y * w)[1])(
        *(lambda y: (y, y[:, 2]))(x + 1)),
    "zeros_buffer_filled": lambda L, x, w: _fill_buffer(L, x, w),
    "chained_views": lambda L, x, w: (lambda y: (y[1:][0].mul_(w[0]), y.sum(1))[1])(x * 1),
    "in_place_no_grad_then_grad": lambda L, x, w: _mixed(L, x, w),
}


def _setitem_iadd(x, w):
    y = x * 1
    y[:, 1] += w[:, 0]
    y[0] *= 2
    return y


def _setitem_index(L, x, w):
    y = x * 1
    y[L.tensor([0, 2])] = w[:2] * 2
    y[y > 1] = 0.0
    return y


def _fill_buffer(L, x, w):
    out = L.zeros(3, 4, dtype=L.float64)
    for i in range(3):
        out[i] = x[i] * w[i]
    out[:, 0] += 1
    return out


def _mixed(L, x, w):
    y = x * w
    with L.no_grad():
        y.mul_(0)  # not recorded: the graph still computes d(x*w)
    return y * 1 + x


@needs_torch
@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_gradients_through_in_place_ops_match_torch(name):
    res = []
    for lib in (fastnn, torch):
        x = lib.tensor(_rnd(3, 4), requires_grad=True)
        w = lib.tensor(_rnd(3, 4, seed=1), requires_grad=True)
        out = GRAD_CASES[name](lib, x, w)
        weight = lib.tensor(_rnd(*out.shape, seed=7))
        (out * weight).sum().backward()
        res.append((_np(out), _np(x.grad), _np(w.grad)))
    for f, t in zip(res[0], res[1]):
        if f is None or t is None:
            assert (f is None or not f.any()) and (t is None or not t.any()), name
            continue
        np.testing.assert_allclose(f, t, rtol=1e-12, atol=1e-12, err_msg=name)


def test_in_place_on_non_leaf_gives_the_textbook_gradient():
    x = fastnn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y += 1
    assert y.grad_fn is not None and not y.is_leaf
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])


# ---------------------------------------------------------------- state dicts
@needs_torch
def test_state_dict_copy_updates_the_model_as_nanogpt_from_pretrained():
    """nanoGPT's from_pretrained: sd[k].copy_(w) (and .t() for Conv1D weights) under no_grad."""
    src = torch.nn.Linear(3, 4)
    outs = []
    for lib in (fastnn, torch):
        m = lib.nn.Sequential(lib.nn.Linear(3, 4))
        sd = m.state_dict()
        with lib.no_grad():
            sd["0.weight"].copy_(lib.tensor(src.weight.detach().numpy().T.copy()).t())
            sd["0.bias"].copy_(lib.tensor(src.bias.detach().numpy()))
        assert sd["0.weight"]._version == m[0].weight._version > 0
        outs.append(_np(m(lib.ones(2, 3))))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6)
    np.testing.assert_allclose(outs[0], _np(src(torch.ones(2, 3))), rtol=1e-6)


@needs_torch
def test_load_state_dict_reports_keys_as_torch():
    results = []
    for lib in (fastnn, torch):
        m = lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.Linear(3, 1))
        sd = {k: v.clone() for k, v in m.state_dict().items()}
        ok = m.load_state_dict(sd)
        assert ok.missing_keys == [] and ok.unexpected_keys == []
        assert repr(ok) == "<All keys matched successfully>"
        partial = dict(sd)
        del partial["1.bias"]
        partial["extra.weight"] = lib.zeros(1)
        res = m.load_state_dict(partial, strict=False)
        assert type(res).__name__ == "_IncompatibleKeys"
        results.append((res.missing_keys, res.unexpected_keys))
        with pytest.raises(RuntimeError) as e:
            m.load_state_dict(partial)
        msg = str(e.value)
        assert msg.startswith("Error(s) in loading state_dict for Sequential:")
        assert 'Missing key(s) in state_dict: "1.bias".' in msg
        assert 'Unexpected key(s) in state_dict: "extra.weight".' in msg
        bad = dict(sd)
        bad["0.weight"] = lib.zeros(3, 3)
        with pytest.raises(RuntimeError, match="size mismatch for 0.weight: copying a param "
                                               "with shape"):
            m.load_state_dict(bad, strict=False)
        new_w = lib.full((1, 3), 2.0)
        m.load_state_dict({"1.weight": new_w}, strict=False, assign=True)
        assert isinstance(m[1].weight, lib.nn.Parameter) and m[1].weight.requires_grad
        assert m[1].weight.data_ptr() == new_w.data_ptr()
    assert results[0] == results[1] == (["1.bias"], ["extra.weight"])


def test_state_dict_keep_vars_and_buffers():
    m = nn.Linear(2, 2)
    sd = m.state_dict(keep_vars=True)
    assert sd["weight"] is m.weight
    sd = m.state_dict()
    assert sd["weight"] is not m.weight and not sd["weight"].requires_grad
    assert sd["weight"].data_ptr() == m.weight.data_ptr()
    assert list(m.buffers()) == [] and list(m.buffers(recurse=False)) == []


# ---------------------------------------------------------------- hooks and autograd.grad
@needs_torch
def test_hooks_retain_grad_and_backward_options_match_torch():
    res = []
    for lib in (fastnn, torch):
        x = lib.tensor(_rnd(3), requires_grad=True)
        w = lib.tensor(_rnd(3, seed=1), requires_grad=True)
        y = x * w
        y.retain_grad()
        assert y.retains_grad
        h = y.register_hook(lambda g: g * 2)
        xh = x.register_hook(lambda g: g + 1)
        z = (y * y).sum()
        z.backward(retain_graph=True)
        g1 = (_np(x.grad).copy(), _np(w.grad).copy(), _np(y.grad).copy())
        h.remove()
        xh.remove()
        x.grad = None
        w.grad = None
        z.backward(inputs=[w])
        g2 = (x.grad, _np(w.grad).copy())
        v = x * 3
        v.backward(gradient=lib.tensor([1.0, 2.0, 3.0], dtype=lib.float64))
        res.append(g1 + g2 + (_np(x.grad),))
    for f, t in zip(*res):
        if f is None or t is None:
            assert f is None and t is None
            continue
        np.testing.assert_allclose(f, t, rtol=1e-12)


@needs_torch
def test_autograd_grad_matches_torch():
    for lib in (fastnn, torch):
        x = lib.tensor(_rnd(3), requires_grad=True)
        u = lib.tensor(_rnd(3, seed=1), requires_grad=True)
        y = (x * x).sum()
        gx, gu = lib.autograd.grad(y, [x, u], allow_unused=True)
        assert gu is None and x.grad is None
        np.testing.assert_allclose(_np(gx), 2 * _rnd(3), rtol=1e-12)
        with pytest.raises(RuntimeError, match="appears to not have been used in the graph"):
            lib.autograd.grad((x * 2).sum(), [x, u])
        out = x * 2
        (go,) = lib.autograd.grad(out, x, grad_outputs=lib.ones(3, dtype=lib.float64) * 3)
        np.testing.assert_allclose(_np(go), [6.0, 6.0, 6.0])
        h = x * 3
        (gh,) = lib.autograd.grad((h * h).sum(), h)  # with respect to a non-leaf
        np.testing.assert_allclose(_np(gh), 2 * 3 * _rnd(3), rtol=1e-12)
        with pytest.raises(RuntimeError, match="does not require grad"):
            lib.autograd.grad((x * 2).sum(), lib.ones(2))


DOUBLE = {
    "cube": lambda L, x, w: (x ** 3).sum(),
    "tanh_sigmoid": lambda L, x, w: (L.tanh(x) * L.sigmoid(x * w)).sum(),
    "exp_log": lambda L, x, w: (L.exp(x) + L.log(x * x + 1)).sum(),
    "matmul": lambda L, x, w: ((x.reshape(3, 2) @ w.reshape(2, 3)) ** 2).mean(),
    "softmax": lambda L, x, w: (L.softmax(x.reshape(2, 3), dim=1) * w.reshape(2, 3)).sum(),
    "log_softmax": lambda L, x, w: (L.log_softmax(x.reshape(2, 3), 1) * w.reshape(2, 3)).sum(),
    "div_sqrt": lambda L, x, w: (x / (L.sqrt(w * w + 1))).sum() + (x * x / (w * w + 1)).sum(),
    "relu_index": lambda L, x, w: (L.relu(x)[1:] ** 2).sum() + (x[0] * w[2]) ** 2,
    "mean_var": lambda L, x, w: x.var() + (x - x.mean()).abs().sum(),
    "max_min_leaky": lambda L, x, w: (L.maximum(x, w) * L.minimum(x * x, w)).sum()
    + (L.nn.functional.leaky_relu(x * w, 0.1) ** 2).sum(),
    "repeat_roll": lambda L, x, w: ((x.repeat(2) * w.repeat(2)) ** 2).sum()
    + (x.roll(1) * w).pow(3).sum(),
}


@needs_torch
@pytest.mark.parametrize("name", sorted(DOUBLE))
def test_double_backward_matches_torch(name):
    res = []
    for lib in (fastnn, torch):
        x = lib.tensor(_rnd(6), requires_grad=True)
        w = lib.tensor(_rnd(6, seed=1), requires_grad=True)
        y = DOUBLE[name](lib, x, w)
        (gx,) = lib.autograd.grad(y, x, create_graph=True)
        assert gx.requires_grad
        v = lib.tensor(_rnd(6, seed=2))
        hx, hw = lib.autograd.grad((gx * v).sum(), [x, w], allow_unused=True)
        res.append([_np(gx), _np(hx), _np(hw)])
    for f, t in zip(*res):
        if f is None or t is None:
            assert (f is None or not f.any()) and (t is None or not t.any()), name
            continue
        np.testing.assert_allclose(f, t, rtol=1e-10, atol=1e-12, err_msg=name)


def test_double_backward_is_a_clear_error_where_unsupported():
    x = fastnn.tensor(_rnd(2, 3), requires_grad=True)
    y = fastnn.nn.functional.gelu(x).sum()
    with pytest.raises(NotImplementedError, match="double-backward"):
        fastnn.autograd.grad(y, x, create_graph=True)
    with pytest.raises(NotImplementedError, match="double-backward"):
        y.backward(create_graph=True)


def test_backward_create_graph_leaves_a_differentiable_grad():
    x = fastnn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    np.testing.assert_allclose(x.grad._data, [3.0, 12.0, 27.0])
    assert x.grad.requires_grad
    x.grad.sum().backward()  # adds d/dx sum(3x^2) = 6x into the same .grad, as PyTorch
    np.testing.assert_allclose(x.grad._data, [9.0, 24.0, 45.0])


# ---------------------------------------------------------------- custom autograd functions
def _functions(lib):
    class Cube(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale):
            ctx.save_for_backward(x)
            ctx.scale = scale
            return x ** 3 * scale

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            assert ctx.needs_input_grad == (True, False)
            return g * 3 * x ** 2 * ctx.scale, None

    class Two(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return x * w, x.exp()

        @staticmethod
        def backward(ctx, ga, gb):
            x, w = ctx.saved_tensors
            return ga * w + gb * x.exp(), (ga * x).sum(0)
    return Cube, Two


@needs_torch
def test_custom_autograd_function_matches_torch():
    res = []
    for lib in (fastnn, torch):
        Cube, Two = _functions(lib)
        x = lib.tensor(_rnd(3, 2), requires_grad=True)
        w = lib.tensor(_rnd(2, seed=1), requires_grad=True)
        y = Cube.apply(x, 0.5)
        a, b = Two.apply(y, w)
        (a.sum() + (b * 2).sum()).backward()
        g1 = (_np(x.grad).copy(), _np(w.grad).copy())
        x.grad = w.grad = None
        a, b = Two.apply(x, w)
        a.sum().backward()  # only one output used: the other's gradient is zeros
        res.append(g1 + (_np(x.grad), _np(w.grad)))
        z = x * 1
        z2 = Cube.apply(z, 1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            z.add_(1)
            z2.sum().backward()
    for f, t in zip(*res):
        np.testing.assert_allclose(f, t, rtol=1e-12)


# ---------------------------------------------------------------- random programs vs PyTorch
_VIEWS = [
    lambda t: t[1], lambda t: t[:, 1:3], lambda t: t.t(),
    lambda t: t.view(-1)[2:8] if t.is_contiguous() else t[0],
    lambda t: t.transpose(0, 1)[1:], lambda t: t.unsqueeze(0)[0], lambda t: t.narrow(0, 1, 2),
    lambda t: t[::2], lambda t: t.permute(1, 0)[2], lambda t: t[1:3, 1:3].t(),
    lambda t: t.reshape(2, 8)[1] if t.is_contiguous() else t[1], lambda t: list(t)[3],
    lambda t: t.unbind(1)[0],
]
_OPS = [
    lambda L, v, w: v.add_(w[: v.shape[-1]] if v.dim() == 1 else 1.5),
    lambda L, v, w: v.mul_(2.0), lambda L, v, w: v.mul_(v.detach() + 1),
    lambda L, v, w: v.sub_(w.sum() * 0.1), lambda L, v, w: v.exp_(), lambda L, v, w: v.tanh_(),
    lambda L, v, w: v.clamp_(-1, 1), lambda L, v, w: v.copy_(w.sum() * L.ones_like(v)),
    lambda L, v, w: v.__setitem__(0, w[0] * 2), lambda L, v, w: v.div_(w.abs().sum() + 1),
    lambda L, v, w: v.masked_fill_(v.detach() > 0.5, 0.25), lambda L, v, w: v.mul_(w.mean()),
    lambda L, v, w: v.__setitem__(slice(0, 2), w[:2] * 3 if v.dim() == 1 else
                                  w[None, :v.shape[-1]] if v.shape[-1] <= 4 else 1.0),
    lambda L, v, w: v.__setitem__(..., v * w.sum()), lambda L, v, w: v.pow_(2),
    lambda L, v, w: v.sigmoid_(), lambda L, v, w: v.add_(w[:v.shape[-1]], alpha=0.5),
    lambda L, v, w: v.addcmul_(v.detach(), w.sum() * L.ones_like(v), value=0.3),
    lambda L, v, w: v.index_put_((L.tensor([0, 0]),), w.sum() * 2, accumulate=True),
    lambda L, v, w: v.zero_(), lambda L, v, w: v.relu_(),
]


def _random_program(L, seed):
    import random
    rng = random.Random(seed)
    x = L.tensor(_rnd(4, 4, seed=seed), requires_grad=True)
    w = L.tensor(_rnd(4, seed=seed + 1), requires_grad=True)
    y = x * 1.0
    keep = []
    for _ in range(rng.randint(1, 5)):
        v = rng.choice(_VIEWS)(y) if rng.random() < 0.7 else y
        rng.choice(_OPS)(L, v, w)
        if rng.random() < 0.3:
            keep.append(v * 1.0)
    out = (y * y).sum() + (sum(k.sum() for k in keep) if keep else 0)
    out.backward()
    return [_np(y), _np(x.grad), _np(w.grad)]


@needs_torch
@pytest.mark.parametrize("start", range(0, 200, 50))
def test_random_in_place_programs_on_views_match_torch(start):
    """Chains of in-place ops on views of a tensor in the graph: the same values, gradients and
    errors as PyTorch."""
    for seed in range(start, start + 50):
        res = []
        for lib in (torch, fastnn):
            try:
                res.append(_random_program(lib, seed))
            except (RuntimeError, ValueError) as e:
                res.append(str(e).split(".")[0])
        t, f = res
        if isinstance(t, str) or isinstance(f, str):
            assert t == f, (seed, t, f)
            continue
        for a, b in zip(t, f):
            if a is None or b is None:
                assert a is None and b is None, seed
            else:
                np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12, err_msg=str(seed))


def test_leaf_gradients_are_not_shared_between_leaves():
    a = fastnn.ones(3, requires_grad=True)
    b = fastnn.ones(3, requires_grad=True)
    c = fastnn.ones(1, 3, requires_grad=True)
    (a + b + c.view(3)).sum().backward()
    a.grad *= 2  # in place on one gradient leaves the others alone
    np.testing.assert_array_equal(b.grad, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(c.grad, [[1.0, 1.0, 1.0]])
    assert a.grad._data.flags.c_contiguous and c.grad._data.base is None
