"""Every optimizer against PyTorch's, step by step in float64: the same trajectory to ~1e-12 over
25 steps, on a non-quadratic objective with hand-set gradients and on a small MLP through
autograd; state dicts that move between the two libraries; param_groups edits seen by the next
step; add_param_group; zero_grad. Skipped where PyTorch is not installed."""
import copy

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.nn import functional as F

torch = pytest.importorskip("torch")

CONFIGS = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd_maximize": ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01, maximize=True)),
    "sgd_nesterov": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    "adam": ("Adam", dict(lr=0.01)),
    "adam_amsgrad": ("Adam", dict(lr=0.02, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True)),
    "adam_maximize": ("Adam", dict(lr=0.01, maximize=True)),
    "adamw_amsgrad": ("AdamW", dict(lr=0.02, weight_decay=0.1, amsgrad=True)),
    "adamw_maximize": ("AdamW", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    "adadelta": ("Adadelta", dict()),
    "adadelta_wd": ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1)),
    "adadelta_max": ("Adadelta", dict(maximize=True)),
    "adagrad": ("Adagrad", dict()),
    "adagrad_all": ("Adagrad", dict(lr=0.05, lr_decay=0.01, weight_decay=0.1,
                                    initial_accumulator_value=0.3, eps=1e-8)),
    "adagrad_max": ("Adagrad", dict(lr=0.05, maximize=True)),
    "rmsprop": ("RMSprop", dict()),
    "rmsprop_momentum": ("RMSprop", dict(lr=0.005, alpha=0.9, momentum=0.8, weight_decay=0.1)),
    "rmsprop_centered": ("RMSprop", dict(lr=0.003, centered=True)),
    "rmsprop_all": ("RMSprop", dict(lr=0.003, alpha=0.3, momentum=0.5, centered=True,
                                    weight_decay=0.05, maximize=True)),
    "adamax": ("Adamax", dict()),
    "adamax_wd": ("Adamax", dict(lr=0.01, betas=(0.7, 0.9), weight_decay=0.1, maximize=True)),
    "nadam": ("NAdam", dict()),
    "nadam_wd": ("NAdam", dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.1,
                               momentum_decay=0.01)),
    "nadam_decoupled": ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True,
                                      maximize=True)),
    "radam": ("RAdam", dict(lr=0.01)),
    "radam_wd": ("RAdam", dict(lr=0.01, betas=(0.5, 0.6), weight_decay=0.1)),
    "radam_decoupled": ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    "rprop": ("Rprop", dict()),
    "rprop_all": ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2),
                                maximize=True)),
    "asgd": ("ASGD", dict(lr=0.05)),
    "asgd_all": ("ASGD", dict(lr=0.05, lambd=0.01, alpha=0.5, t0=5, weight_decay=0.1)),
    "adafactor": ("Adafactor", dict()),
    "adafactor_all": ("Adafactor", dict(lr=0.05, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=1.5,
                                        weight_decay=0.1, maximize=True)),
}

SHAPES = ((3, 4), (5,), (2, 1, 3))


def _objective_grad(arrays, k, sign=1):
    """A non-quadratic objective's gradient at the given arrays (step k varies it a little);
    sign=-1: the gradient of its negative (for maximize=True)."""
    return [sign * (np.sin(3 * a) + 0.5 * a - 0.1 * (k % 3) + 0.05 * a ** 3) for a in arrays]


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    mine = [nn.Parameter(a.copy()) for a in init]
    theirs = [torch.nn.Parameter(torch.tensor(a.copy())) for a in init]
    return mine, theirs


def _set_grads(mine, theirs, k, sign=1):
    for p, g in zip(mine, _objective_grad([p._data for p in mine], k, sign)):
        p.grad = g
    for p, g in zip(theirs, _objective_grad([p.detach().numpy() for p in theirs], k, sign)):
        p.grad = torch.tensor(g)


def _assert_same(mine, theirs, rtol=1e-12, atol=1e-13, msg=""):
    for p, tp in zip(mine, theirs):
        np.testing.assert_allclose(p._data, tp.detach().numpy(), rtol=rtol, atol=atol,
                                   err_msg=msg)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_trajectory_matches_torch(name):
    cls, kw = CONFIGS[name]
    mine, theirs = _pair()
    opt = getattr(optim, cls)(mine, **kw)
    topt = getattr(torch.optim, cls)(theirs, **kw)
    sign = -1 if kw.get("maximize") else 1
    for k in range(30):
        _set_grads(mine, theirs, k, sign)
        opt.step()
        topt.step()
        _assert_same(mine, theirs, msg=f"step {k}")


@pytest.mark.parametrize("name", ["adadelta_wd", "adagrad_all", "rmsprop_all", "adamax",
                                  "nadam_wd", "radam", "adam_amsgrad"])
def test_mlp_training_matches_torch(name):
    cls, kw = CONFIGS[name]
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(),
                             torch.nn.Linear(8, 3)).double()
    m = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    m.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    opt = getattr(optim, cls)(m.parameters(), **kw)
    topt = getattr(torch.optim, cls)(tm.parameters(), **kw)
    rng = np.random.default_rng(0)
    for step in range(20):
        x, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
        loss = F.cross_entropy(m(fastnn.tensor(x)), fastnn.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert float(loss.item()) == pytest.approx(tloss.item(), rel=1e-12, abs=1e-13), step
    mine = dict(m.named_parameters())
    for k, v in tm.named_parameters():
        np.testing.assert_allclose(np.asarray(mine[k]._data), v.detach().numpy(), rtol=1e-11,
                                   atol=1e-13)


def test_nadam_mu_product_in_float32_like_torch():
    """PyTorch keeps NAdam's mu_product in its scalar dtype (float32 by default): so do we."""
    mine, theirs = _pair()
    opt, topt = optim.NAdam(mine, lr=0.1), torch.optim.NAdam(theirs, lr=0.1)
    for k in range(40):
        _set_grads(mine, theirs, k)
        opt.step()
        topt.step()
    _assert_same(mine, theirs)
    assert np.asarray(opt.state[mine[0]]["mu_product"]).dtype == np.float32
    assert float(opt.state[mine[0]]["mu_product"]) == float(topt.state[theirs[0]]["mu_product"])


# ---------------------------------------------------------------- state dicts across libraries
def _to_torch(sd):
    sd = copy.deepcopy(sd)
    for st in sd["state"].values():
        for k, v in st.items():
            if isinstance(v, np.ndarray):
                st[k] = torch.tensor(v)
    return sd


def _to_numpy(sd):
    sd = copy.deepcopy(sd)
    for st in sd["state"].values():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                st[k] = v.numpy()
    return sd


@pytest.mark.parametrize("name", ["sgd_nesterov", "adam", "adam_amsgrad", "adamw_amsgrad",
                                  "adadelta_wd", "adagrad_all", "rmsprop_all", "adamax_wd",
                                  "nadam_wd", "radam_decoupled", "rprop_all", "asgd_all",
                                  "adafactor_all"])
def test_state_dict_moves_between_fastnn_and_torch(name):
    cls, kw = CONFIGS[name]
    mine, theirs = _pair()
    opt = getattr(optim, cls)(mine, **kw)
    topt = getattr(torch.optim, cls)(theirs, **kw)
    sign = -1 if kw.get("maximize") else 1
    for k in range(5):
        _set_grads(mine, theirs, k, sign)
        opt.step()
        topt.step()
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sd["param_groups"][0].keys() == tsd["param_groups"][0].keys()
    assert sd["param_groups"][0]["params"] == tsd["param_groups"][0]["params"]
    assert sd["state"].keys() == tsd["state"].keys()
    for i in sd["state"]:
        assert sd["state"][i].keys() == tsd["state"][i].keys()

    # fastnn -> torch: a fresh torch optimizer continues exactly as the fastnn one
    mine2, theirs2 = _pair()
    for p, q in zip(mine, theirs2):
        q.data.copy_(torch.tensor(p._data))
    for p, q in zip(mine, mine2):
        q._data[...] = p._data
    topt2 = getattr(torch.optim, cls)(theirs2, **kw)
    topt2.load_state_dict(_to_torch(sd))
    # torch -> fastnn: a fresh fastnn optimizer continues exactly as the torch one
    opt2 = getattr(optim, cls)(mine2, **kw)
    opt2.load_state_dict(_to_numpy(topt.state_dict()))
    for k in range(5, 12):
        _set_grads(mine, theirs2, k, sign)
        opt.step()
        topt2.step()
        _set_grads(mine2, theirs, k, sign)
        opt2.step()
        topt.step()
    _assert_same(mine, theirs2, msg="fastnn state in torch")
    _assert_same(mine2, theirs, msg="torch state in fastnn")
    # torch tensors are accepted as they are, too
    opt3 = getattr(optim, cls)(_pair()[0], **kw)
    opt3.load_state_dict(topt.state_dict())
    assert all(isinstance(v, (np.ndarray, int, float, np.generic))
               for st in opt3.state.values() for v in st.values())


def test_state_dict_layout_and_errors():
    w, v = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(3))
    opt = optim.SGD([{"params": [w]}, {"params": [v], "lr": 0.5}], lr=0.1, momentum=0.9)
    w.grad, v.grad = np.ones(2), np.ones(3)
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert [g["lr"] for g in sd["param_groups"]] == [0.1, 0.5]
    assert set(sd["state"]) == {0, 1}
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.SGD([w, v], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size"):
        optim.SGD([{"params": [w, v]}, {"params": [nn.Parameter(np.ones(1))]}],
                  lr=0.1).load_state_dict(sd)
    # the loaded hyper-parameters replace the optimizer's own
    opt2 = optim.SGD([{"params": [w]}, {"params": [v]}], lr=0.3, momentum=0.9)
    opt2.load_state_dict(sd)
    assert [g["lr"] for g in opt2.param_groups] == [0.1, 0.5]
    np.testing.assert_array_equal(opt2.state[v]["momentum_buffer"], np.ones(3))
    assert opt2.state[v]["momentum_buffer"] is not opt.state[v]["momentum_buffer"]


# ---------------------------------------------------------------- the Optimizer API
def test_param_group_edits_are_seen_by_the_next_step():
    mine, theirs = _pair()
    opt = optim.Adam(mine, lr=0.01)
    topt = torch.optim.Adam(theirs, lr=0.01)
    for k in range(10):
        if k == 3:
            for g in (opt.param_groups[0], topt.param_groups[0]):
                g["lr"] = 0.05
                g["betas"] = (0.5, 0.9)
        if k == 6:
            for g in (opt.param_groups[0], topt.param_groups[0]):
                g["weight_decay"] = 0.2
        _set_grads(mine, theirs, k)
        opt.step()
        topt.step()
    _assert_same(mine, theirs)


def test_add_param_group_defaults_and_errors():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt = optim.SGD([a], lr=0.1, momentum=0.5)
    opt.add_param_group({"params": b, "lr": 0.01})
    assert opt.param_groups[1]["momentum"] == 0.5 and opt.param_groups[1]["lr"] == 0.01
    assert opt.param_groups[1]["params"] == [b]
    assert opt.defaults["lr"] == 0.1 and opt.defaults["momentum"] == 0.5
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(TypeError):
        optim.SGD(a, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(ValueError):
        optim.Adam([a], lr=-1)
    a.grad = b.grad = np.ones(2)
    opt.step()
    np.testing.assert_allclose(a._data, 0.9)
    np.testing.assert_allclose(b._data, 0.99)
    # frozen parameters (no requires_grad) are accepted, as in PyTorch, and skipped
    frozen = fastnn.tensor(np.ones(2))
    optim.AdamW([frozen, a]).step()
    np.testing.assert_array_equal(frozen._data, 1.0)


def test_zero_grad_and_state_keyed_by_parameter():
    a = nn.Parameter(np.ones(2))
    opt = optim.RMSprop([a])
    g = np.ones(2)
    a.grad = g
    opt.step()
    assert a in opt.state and opt.state[a]["step"] == 1
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad, 0.0)
    np.testing.assert_array_equal(g, 1.0)  # a gradient array is never written into
    opt.zero_grad()
    assert a.grad is None
    before = a._data.copy()
    opt.step()  # no gradient: no change
    np.testing.assert_array_equal(a._data, before)


def test_defaults_match_torch():
    p, tp = nn.Parameter(np.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    for cls in ("SGD", "Adam", "AdamW", "Adadelta", "Adagrad", "RMSprop", "Adamax", "NAdam",
                "RAdam", "Rprop", "ASGD", "Adafactor", "Muon", "LBFGS"):
        if cls == "Muon":
            p, tp = nn.Parameter(np.zeros((2, 2))), torch.nn.Parameter(torch.zeros(2, 2))
        mine = getattr(optim, cls)([p]).param_groups[0]
        theirs = getattr(torch.optim, cls)([tp]).param_groups[0]
        assert {k: v for k, v in mine.items() if k != "params"} == \
            {k: v for k, v in theirs.items() if k != "params"}, cls


def test_step_hooks():
    a = nn.Parameter(np.ones(2))
    calls = []
    for cls, kw in ((optim.SGD, dict(lr=0.1)), (optim.LBFGS, {}), (optim.NAdam, {})):
        opt = cls([a], **kw)
        h1 = opt.register_step_pre_hook(lambda o, args, kwargs: calls.append(("pre", o)))
        h2 = opt.register_step_post_hook(lambda o, args, kwargs: calls.append(("post", o)))

        def closure():
            a.grad = np.ones(2)
            return fastnn.tensor(1.0)
        opt.step(closure)
        assert calls == [("pre", opt), ("post", opt)], cls
        h1.remove()
        h2.remove()
        opt.step(closure)
        assert len(calls) == 2
        calls.clear()


@pytest.mark.parametrize("name", ["sgd_nesterov", "adam_amsgrad", "adamw_maximize", "adadelta_wd",
                                  "adagrad_all", "rmsprop_all", "adamax_wd", "nadam_wd",
                                  "radam_wd", "rprop_all", "asgd_all"])
def test_gradients_held_as_tensors(name):
    """.grad may hold a fastnn Tensor instead of an array: the same trajectory."""
    cls, kw = CONFIGS[name]
    mine, theirs = _pair()
    opt = getattr(optim, cls)(mine, **kw)
    topt = getattr(torch.optim, cls)(theirs, **kw)
    sign = -1 if kw.get("maximize") else 1
    for k in range(10):
        _set_grads(mine, theirs, k, sign)
        for p in mine:
            p.grad = fastnn.tensor(p.grad)
        opt.step()
        topt.step()
    _assert_same(mine, theirs)
    opt.zero_grad(set_to_none=False)
    assert all(np.all(np.asarray(p.grad) == 0) for p in mine)


def test_clip_grad_norm_with_tensor_gradients():
    mine, theirs = _pair()
    _set_grads(mine, theirs, 0)
    held = [fastnn.tensor(p.grad) for p in mine]
    for p, g in zip(mine, held):
        p.grad = g
    total = nn.utils.clip_grad_norm_(mine, 0.5)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, 0.5)
    assert float(total) == pytest.approx(float(ttotal), rel=1e-12)
    for p, g, tp in zip(mine, held, theirs):
        assert p.grad is g  # the same Tensor, with the clipped values
        np.testing.assert_allclose(np.asarray(g), tp.grad.numpy(), rtol=1e-12)


def test_named_parameters_as_params():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    opt = optim.AdamW(model.named_parameters(), lr=0.01)
    assert opt.param_groups[0]["param_names"] == [n for n, _ in model.named_parameters()]
    assert opt.param_groups[0]["params"] == list(model.parameters())
    assert opt.state_dict()["param_groups"][0]["param_names"] == \
        opt.param_groups[0]["param_names"]
    tm = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    assert torch.optim.AdamW(tm.named_parameters()).state_dict()["param_groups"][0][
        "param_names"] == opt.param_groups[0]["param_names"]
    with pytest.raises(ValueError, match="with/without names"):
        opt.add_param_group({"params": [nn.Parameter(np.zeros(1))]})


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_float32_trajectory_matches_torch(name):
    """float32 parameters (what real programs train): torch's numbers to float32 rounding."""
    cls, kw = CONFIGS[name]
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    mine = [nn.Parameter(a.copy()) for a in init]
    theirs = [torch.nn.Parameter(torch.tensor(a.copy())) for a in init]
    opt = getattr(optim, cls)(mine, **kw)
    topt = getattr(torch.optim, cls)(theirs, **kw)
    sign = -1 if kw.get("maximize") else 1
    for k in range(15):
        for p, tp in zip(mine, theirs):
            g = sign * (np.sin(3 * tp.detach().numpy()) + 0.5 * tp.detach().numpy() - 0.1 * k)
            p.grad, tp.grad = g.astype(np.float32), torch.tensor(g.astype(np.float32))
        opt.step()
        topt.step()
        for p, tp in zip(mine, theirs):
            assert p._data.dtype == np.float32
            # centered RMSprop's v - a^2 cancels: its rounding shows more
            rtol = 1e-4 if kw.get("centered") else 2e-5
            np.testing.assert_allclose(p._data, tp.detach().numpy(), rtol=rtol, atol=2e-6,
                                       err_msg=f"step {k}")
            p._data[...] = tp.detach().numpy()  # no drift: each step from torch's point


@pytest.mark.parametrize("ext", ["npz", "pt"])
def test_optimizer_state_dict_through_files(tmp_path, ext):
    """fastnn.save / fastnn.load of a state dict; a .pt one also loads with torch.load into a
    torch optimizer, which then continues as the fastnn one."""
    mine, theirs = _pair()
    opt = optim.AdamW(mine, lr=0.01, amsgrad=True)
    for k in range(3):
        _set_grads(mine, theirs, k)
        opt.step()
    path = tmp_path / f"opt.{ext}"
    fastnn.save(opt.state_dict(), path)
    mine2 = [nn.Parameter(p._data.copy()) for p in mine]
    opt2 = optim.AdamW(mine2, lr=0.5, amsgrad=True)
    opt2.load_state_dict(fastnn.load(path))
    assert opt2.param_groups[0]["lr"] == 0.01
    for p, tp in zip(mine, theirs):
        tp.data.copy_(torch.tensor(p._data))
    topt = None
    if ext == "pt":
        topt = torch.optim.AdamW(theirs, lr=0.5, amsgrad=True)
        topt.load_state_dict(torch.load(path, weights_only=True))
    for k in range(3, 6):
        _set_grads(mine, theirs, k)
        for p, q in zip(mine, mine2):
            q.grad = p.grad
        opt.step()
        opt2.step()
        if topt is not None:
            topt.step()
    for p, q in zip(mine, mine2):
        np.testing.assert_array_equal(p._data, q._data)
    if topt is not None:
        _assert_same(mine, theirs)


@pytest.mark.parametrize("kw", [dict(lr=0.02), dict(lr=0.05, nesterov=False, momentum=0.9,
                                                     adjust_lr_fn="match_rms_adamw",
                                                     weight_decay=0.0)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_muon_matches_torch(kw, dtype):
    """Muon orthogonalizes in bfloat16, as PyTorch's: on small matrices the same bits; on larger
    ones a rare last-bit (bfloat16) difference from the order of float32 sums."""
    rng = np.random.default_rng(0)
    for shape, tol in (((3, 4), 1e-12), ((7, 3), 1e-12), ((40, 24), 1e-3)):
        x0 = rng.standard_normal(shape).astype(dtype)
        p, tp = nn.Parameter(x0.copy()), torch.nn.Parameter(torch.tensor(x0.copy()))
        opt, topt = optim.Muon([p], **kw), torch.optim.Muon([tp], **kw)
        for k in range(10):
            g = (np.sin(3 * tp.detach().numpy()) + 0.1 * k).astype(dtype)
            p.grad, tp.grad = g.copy(), torch.tensor(g)
            opt.step()
            topt.step()
            np.testing.assert_allclose(p._data, tp.detach().numpy(), rtol=0,
                                       atol=max(tol, 4 * np.finfo(dtype).eps), err_msg=str(k))
            p._data[...] = tp.detach().numpy()
    with pytest.raises(ValueError, match="2D parameters"):
        optim.Muon([nn.Parameter(np.zeros(3))])
    with pytest.raises(ValueError, match="not supported"):
        optim.Muon([nn.Parameter(np.zeros((2, 2)))], adjust_lr_fn="foo")
