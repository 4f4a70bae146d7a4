"""Optimizers, schedulers and gradient clipping: PyTorch's rules, checked step by step against
PyTorch in float64 (skipped when it is absent) and against the update formulas otherwise."""
import copy
import math

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.kernels import dispatch as backends
from fastnn.nn import functional as F
from fastnn.optim import lr_scheduler

try:
    import torch
except ImportError:
    torch = None

from conftest import CPU_BACKENDS as CPU  # noqa: E402,F401


@pytest.fixture
def backend(current_cpu_backend):
    """Here every test runs on each CPU backend, made current (see conftest)."""
    return current_cpu_backend


def _mlp(L):
    return L.nn.Sequential(L.nn.Linear(5, 8), L.nn.Tanh(), L.nn.Linear(8, 3))


OPTIMIZERS = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd_momentum_wd": ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    "sgd_dampening": ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3)),
    "sgd_nesterov": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    "adam": ("Adam", dict(lr=0.01)),
    "adam_wd": ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    "adamw": ("AdamW", dict(lr=0.01, weight_decay=0.1)),
}


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_trajectory_matches_torch(name, backend):
    cls, kw = OPTIMIZERS[name]
    torch.manual_seed(0)
    tm = _mlp(torch).double()
    m = _mlp(fastnn).double()
    m.load_state_dict(tm.state_dict())
    opt = getattr(optim, cls)(m.parameters(), **kw)
    topt = getattr(torch.optim, cls)(tm.parameters(), **kw)
    sched = lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=3, gamma=0.5)
    rng = np.random.default_rng(0)
    for step in range(8):
        x = rng.standard_normal((6, 5))
        y = rng.integers(0, 3, 6)
        loss = F.cross_entropy(m(fastnn.tensor(x)), fastnn.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        tloss = torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        tsched.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-12, abs=1e-13), step
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(m.state_dict()[k], v.numpy(), rtol=1e-11, atol=1e-13)


def test_sgd_and_adam_follow_the_formulas(backend):
    p = nn.Parameter(np.array([1.0, -2.0]))
    p.grad = np.array([0.5, 0.25])
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p._data, [0.95, -2.025])
    q = nn.Parameter(np.array([1.0, -2.0]))
    opt = optim.Adam([q], lr=0.01)
    for _ in range(3):
        q.grad = np.array([0.5, -0.25])
        opt.step()
    # a constant gradient makes every bias-corrected Adam step lr * sign(g) (up to eps)
    np.testing.assert_allclose(q._data, [1.0 - 0.03, -2.0 + 0.03], rtol=1e-6)
    assert opt.state[q]["step"] == 3


def test_parameters_without_grad_are_skipped_and_float32_state(backend):
    a = nn.Parameter(np.ones(3, np.float32))
    b = nn.Parameter(np.ones(3, np.float32))
    a.grad = np.ones(3, np.float32)
    opt = optim.AdamW([a, b], lr=0.1)
    opt.step()
    assert (b._data == 1).all() and (a._data < 1).all()
    assert opt.state[a]["exp_avg"].dtype == np.float32 and b not in opt.state


def test_param_groups_and_state_dict(backend):
    w = nn.Parameter(np.ones(2))
    v = nn.Parameter(np.ones(2))
    opt = optim.SGD([{"params": [w]}, {"params": [v], "lr": 0.5}], lr=0.1, momentum=0.9)
    w.grad = v.grad = np.ones(2)
    opt.step()
    np.testing.assert_allclose(w._data, 0.9)
    np.testing.assert_allclose(v._data, 0.5)
    sd = opt.state_dict()
    opt2 = optim.SGD([{"params": [w]}, {"params": [v], "lr": 0.5}], lr=0.1, momentum=0.9)
    opt2.load_state_dict(sd)
    np.testing.assert_array_equal(opt2.state[v]["momentum_buffer"], np.ones(2))
    with pytest.raises(ValueError):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError):
        optim.SGD([w], lr=0.1, nesterov=True)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_schedulers_match_torch():
    def run(mod, opt_ctor, make):
        p = [mod.nn.Parameter(mod.zeros(1))] if mod is fastnn else [torch.nn.Parameter(
            torch.zeros(1))]
        opt = opt_ctor(p, lr=0.1)
        sched = make(opt)
        lrs = []
        for _ in range(25):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return lrs
    S, TS = lr_scheduler, torch.optim.lr_scheduler
    pairs = [
        (lambda o: S.StepLR(o, 7, 0.3), lambda o: TS.StepLR(o, 7, 0.3)),
        (lambda o: S.CosineAnnealingLR(o, 20, 0.01), lambda o: TS.CosineAnnealingLR(o, 20, 0.01)),
        (lambda o: S.LinearLR(o, 0.1, 1.0, 10), lambda o: TS.LinearLR(o, 0.1, 1.0, 10)),
        (lambda o: S.LambdaLR(o, lambda t: 0.9 ** t), lambda o: TS.LambdaLR(o, lambda t: 0.9 ** t)),
    ]
    for mine, theirs in pairs:
        np.testing.assert_allclose(run(fastnn, optim.SGD, mine),
                                   run(torch, torch.optim.SGD, theirs), rtol=1e-12)


def test_warmup_helpers():
    p = nn.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    sched = lr_scheduler.linear_warmup(opt, 4)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(6):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    np.testing.assert_allclose(lrs, [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0])
    opt = optim.SGD([p], lr=1.0)
    sched = lr_scheduler.warmup_cosine(opt, warmup_iters=2, total_iters=10, min_factor=0.1)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(11):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] < lrs[1] < lrs[2] == 1.0
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))
    assert lrs[10] == lrs[11] == pytest.approx(0.1)


def _g(p):
    """A parameter's gradient as a numpy array (.grad may hold an array or a Tensor)."""
    return np.asarray(p.grad)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm(norm_type):
    rng = np.random.default_rng(0)
    ps = [nn.Parameter(rng.standard_normal(s)) for s in ((3, 4), (5,))]
    grads = [rng.standard_normal(p.shape) for p in ps]
    for p, g in zip(ps, grads):
        p.grad = g.copy()
    flat = np.concatenate([g.ravel() for g in grads])
    expected = np.linalg.norm(flat, ord=norm_type)
    total = nn.utils.clip_grad_norm_(ps, 0.5, norm_type)
    assert isinstance(total, fastnn.Tensor) and total.shape == () and total.dtype == np.float64
    assert float(total) == pytest.approx(expected, rel=1e-12)
    clipped = np.concatenate([_g(p).ravel() for p in ps])
    assert np.linalg.norm(clipped, ord=norm_type) == pytest.approx(0.5, rel=1e-5)
    np.testing.assert_allclose(clipped / np.linalg.norm(clipped, ord=norm_type),
                               flat / expected, rtol=1e-10)
    before = [_g(p).copy() for p in ps]
    nn.utils.clip_grad_norm_(ps, 100.0, norm_type)  # under the limit: unchanged
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(_g(p), b)
    if torch is not None:
        tps = [torch.nn.Parameter(torch.tensor(p._data)) for p in ps]
        for tp, g in zip(tps, grads):
            tp.grad = torch.tensor(g)
        ttotal = torch.nn.utils.clip_grad_norm_(tps, 0.5, norm_type)
        assert float(ttotal) == pytest.approx(float(total), rel=1e-12)
        np.testing.assert_allclose(np.concatenate([tp.grad.numpy().ravel() for tp in tps]),
                                   np.concatenate([_g(p).ravel() for p in ps]), rtol=1e-12)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_clip_grad_norm_float32_generator_and_value_like_torch():
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s).astype(np.float32) * 3 for s in ((4, 6), (7,), (1,))]
    ps = [nn.Parameter(np.zeros(g.shape, np.float32)) for g in grads]
    tps = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
    for p, tp, g in zip(ps, tps, grads):
        p.grad, tp.grad = g.copy(), torch.tensor(g)
    ps[2].grad = None
    tps[2].grad = None
    total = nn.utils.clip_grad_norm_((p for p in ps), 1.0)  # a generator, as model.parameters()
    ttotal = torch.nn.utils.clip_grad_norm_((p for p in tps), 1.0)
    assert total.dtype == np.float32 and float(total) == pytest.approx(float(ttotal), rel=1e-6)
    for p, tp in zip(ps[:2], tps[:2]):
        np.testing.assert_allclose(_g(p), tp.grad.numpy(), rtol=1e-6)
    assert ps[2].grad is None
    nn.utils.clip_grad_value_(ps, 0.1)
    torch.nn.utils.clip_grad_value_(tps, 0.1)
    for p, tp in zip(ps[:2], tps[:2]):
        np.testing.assert_array_equal(_g(p), tp.grad.numpy())
    assert float(nn.utils.clip_grad_norm_([], 1.0)) == 0.0


def test_clip_grad_norm_nonfinite_and_shared_gradients():
    a, b = nn.Parameter(np.zeros(3)), nn.Parameter(np.zeros(3))
    shared = np.array([3.0, 4.0, 0.0])
    a.grad = b.grad = shared  # one array for two leaves: scaled once each, never in place
    total = nn.utils.clip_grad_norm_([a, b], 1.0)
    assert float(total) == pytest.approx(math.sqrt(50))
    np.testing.assert_array_equal(shared, [3.0, 4.0, 0.0])
    np.testing.assert_allclose(_g(a), shared / (math.sqrt(50) + 1e-6))
    np.testing.assert_allclose(_g(b), shared / (math.sqrt(50) + 1e-6))
    a.grad = np.array([np.inf, 1.0, 0.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([a], 1.0, error_if_nonfinite=True)
    assert math.isinf(float(nn.utils.clip_grad_norm_([a], 1.0)))
    assert float(nn.utils.get_total_norm([np.ones(4), np.ones(5)], 2.0)) == pytest.approx(3.0)


def test_parameters_to_vector_and_back():
    ps = [nn.Parameter(np.arange(6.0).reshape(2, 3)), nn.Parameter(np.array([7.0, 8.0]))]
    v = nn.utils.parameters_to_vector(ps)
    assert isinstance(v, fastnn.Tensor)
    np.testing.assert_array_equal(v._data, [0, 1, 2, 3, 4, 5, 7, 8])
    nn.utils.vector_to_parameters(fastnn.tensor(np.arange(8.0) * 10), ps)
    np.testing.assert_array_equal(ps[0]._data, [[0, 10, 20], [30, 40, 50]])
    np.testing.assert_array_equal(ps[1]._data, [60, 70])
    with pytest.raises(TypeError):
        nn.utils.vector_to_parameters([1.0] * 8, ps)


# ---------------------------------------------------------------- every scheduler against torch
def _sched_cases(S):
    """(name, optimizer class name, optimizer kwargs, make(optimizer) -> scheduler), for the
    scheduler module S (fastnn's or torch's)."""
    return [
        ("step", "SGD", {}, lambda o: S.StepLR(o, 7, 0.3)),
        ("multistep", "SGD", {}, lambda o: S.MultiStepLR(o, [3, 10, 10, 30], 0.5)),
        ("exponential", "SGD", {}, lambda o: S.ExponentialLR(o, 0.93)),
        ("cosine", "SGD", {}, lambda o: S.CosineAnnealingLR(o, 20, 0.01)),
        ("cosine_short", "SGD", {}, lambda o: S.CosineAnnealingLR(o, 7)),
        ("lambda", "SGD", {}, lambda o: S.LambdaLR(o, lambda t: 0.9 ** t + 0.01 * (t % 3))),
        ("multiplicative", "SGD", {}, lambda o: S.MultiplicativeLR(o, lambda t: 0.95)),
        ("linear", "SGD", {}, lambda o: S.LinearLR(o, 0.1, 1.0, 10)),
        ("linear_decay", "SGD", {}, lambda o: S.LinearLR(o, 1.0, 0.2, 30)),
        ("constant", "SGD", {}, lambda o: S.ConstantLR(o, 0.25, 8)),
        ("polynomial", "SGD", {}, lambda o: S.PolynomialLR(o, 30, 2.0)),
        ("warm_restarts", "SGD", {}, lambda o: S.CosineAnnealingWarmRestarts(o, 6, 2, 0.001)),
        ("warm_restarts_1", "SGD", {}, lambda o: S.CosineAnnealingWarmRestarts(o, 9)),
        ("onecycle_sgd", "SGD", dict(momentum=0.9),
         lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=60)),
        ("onecycle_adam", "Adam", {},
         lambda o: S.OneCycleLR(o, max_lr=[0.01, 0.02], epochs=6, steps_per_epoch=10,
                                pct_start=0.25, anneal_strategy="linear", three_phase=True)),
        ("sequential", "SGD", {}, lambda o: S.SequentialLR(
            o, [S.LinearLR(o, 0.1, 1.0, 5), S.CosineAnnealingLR(o, 30, 0.001),
                S.ExponentialLR(o, 0.9)], milestones=[5, 35])),
        ("sequential_warmup", "SGD", {}, lambda o: S.SequentialLR(
            o, [S.ConstantLR(o, 0.5, 4), S.StepLR(o, 5, 0.5)], milestones=[4])),
        ("cyclic", "SGD", dict(momentum=0.9),
         lambda o: S.CyclicLR(o, 0.01, [0.1, 0.2], step_size_up=4, step_size_down=7)),
        ("cyclic2_adam", "Adam", {},
         lambda o: S.CyclicLR(o, [0.001, 0.002], 0.01, step_size_up=5, mode="triangular2")),
        ("cyclic_exp", "SGD", {},
         lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=6, mode="exp_range", gamma=0.97,
                              cycle_momentum=False)),
        ("sequential_multiplicative", "SGD", {}, lambda o: S.SequentialLR(
            o, [S.ExponentialLR(o, 0.5), S.MultiplicativeLR(o, lambda t: 0.9),
                S.CosineAnnealingWarmRestarts(o, 4, 2), S.PolynomialLR(o, 9)],
            milestones=[3, 12, 30])),
        ("sequential_nested_lambda", "SGD", {}, lambda o: S.SequentialLR(
            o, [S.LambdaLR(o, lambda t: 1 / (t + 1)), S.ConstantLR(o, 0.3, 5),
                S.MultiStepLR(o, [2, 4, 4], 0.5)], milestones=[5, 20])),
        ("chained", "SGD", {}, lambda o: S.ChainedScheduler(
            [S.ConstantLR(o, 0.1, 6), S.ExponentialLR(o, 0.95), S.StepLR(o, 9, 0.5)])),
    ]


def _run_schedule(lib, cls, kw, make, steps=50, edit_at=None):
    if lib is fastnn:
        params = [nn.Parameter(np.zeros(1)), nn.Parameter(np.zeros(2))]
    else:
        params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(2))]
    opt = getattr(lib.optim, cls)([{"params": [params[0]]},
                                   {"params": [params[1]], "lr": 0.05}], lr=0.1, **kw)
    sched = make(opt)
    out = []
    for t in range(steps):
        row = list(sched.get_last_lr()) + [g["lr"] for g in opt.param_groups]
        for g in opt.param_groups:
            row += [g["momentum"]] if "momentum" in g else list(g["betas"])
        out.append(row)
        opt.step()
        if edit_at is not None and t == edit_at:
            for g in opt.param_groups:
                g["lr"] *= 0.5
        sched.step()
    return np.array(out, dtype=float)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("i", range(len(_sched_cases(lr_scheduler))))
def test_every_scheduler_matches_torch(i):
    name, cls, kw, mine = _sched_cases(lr_scheduler)[i]
    theirs = _sched_cases(torch.optim.lr_scheduler)[i][3]
    a = _run_schedule(fastnn, cls, kw, mine)
    b = _run_schedule(torch, cls, kw, theirs)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15, err_msg=name)
    if not name.startswith(("onecycle", "lambda", "warm", "cyclic")):
        # an lr edited by hand carries on in the chainable schedulers, as in PyTorch
        a = _run_schedule(fastnn, cls, kw, mine, edit_at=12)
        b = _run_schedule(torch, cls, kw, theirs, edit_at=12)
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15, err_msg=name + " edited")


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_reduce_lr_on_plateau_matches_torch():
    rng = np.random.default_rng(0)
    metrics = np.concatenate([np.linspace(1, 0.5, 10), 0.5 + 0.01 * rng.random(40),
                              np.linspace(0.5, 0.2, 10), np.full(30, 0.2)])
    settings = [dict(), dict(mode="max", factor=0.5, patience=2, threshold=0.05,
                             threshold_mode="abs", cooldown=3, min_lr=[0.01, 0.002]),
                dict(patience=3, cooldown=2, min_lr=0.004, eps=1e-3)]
    for kw in settings:
        runs = []
        for lib, S in ((fastnn, lr_scheduler), (torch, torch.optim.lr_scheduler)):
            p = (nn.Parameter(np.zeros(1)) if lib is fastnn
                 else torch.nn.Parameter(torch.zeros(1)))
            q = (nn.Parameter(np.zeros(1)) if lib is fastnn
                 else torch.nn.Parameter(torch.zeros(1)))
            opt = lib.optim.SGD([{"params": [p]}, {"params": [q], "lr": 0.02}], lr=0.1)
            sched = S.ReduceLROnPlateau(opt, **kw)
            lrs = []
            for m in metrics:
                opt.step()
                sched.step(m if kw.get("mode") != "max" else -m)
                lrs.append(list(sched.get_last_lr()) + [sched.num_bad_epochs, sched.last_epoch])
            runs.append(lrs)
        np.testing.assert_allclose(runs[0], runs[1], rtol=1e-14, err_msg=str(kw))


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("name", ["step", "cosine", "onecycle_sgd", "warm_restarts", "cyclic",
                                  "sequential", "chained", "multistep", "linear"])
def test_scheduler_state_dict_resumes(name):
    """Ten steps, state_dict of optimizer and scheduler, a fresh pair loads them and continues
    as the uninterrupted run (and as torch's)."""
    cases = {c[0]: c for c in _sched_cases(lr_scheduler)}
    _, cls, kw, make = cases[name]
    full = _run_schedule(fastnn, cls, kw, make, steps=30)

    def fresh():
        params = [nn.Parameter(np.zeros(1)), nn.Parameter(np.zeros(2))]
        opt = getattr(optim, cls)([{"params": [params[0]]},
                                   {"params": [params[1]], "lr": 0.05}], lr=0.1, **kw)
        return opt, make(opt)
    opt, sched = fresh()
    for _ in range(10):
        opt.step()
        sched.step()
    osd, ssd = copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict())
    opt2, sched2 = fresh()
    opt2.load_state_dict(osd)
    sched2.load_state_dict(ssd)
    rest = []
    for _ in range(20):
        rest.append(sched2.get_last_lr() + [g["lr"] for g in opt2.param_groups])
        opt2.step()
        sched2.step()
    np.testing.assert_allclose(np.array(rest), full[10:, :4], rtol=1e-14, err_msg=name)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("i", range(9))
def test_scheduler_constructed_to_resume_matches_torch(i):
    """last_epoch=k at construction (resuming, with 'initial_lr' in the groups)."""
    def cases(L):
        return [lambda o: L.CosineAnnealingLR(o, 10, last_epoch=4),
                lambda o: L.StepLR(o, 2, 0.5, last_epoch=4),
                lambda o: L.ExponentialLR(o, 0.5, last_epoch=4),
                lambda o: L.LinearLR(o, 0.5, 1.0, 8, last_epoch=4),
                lambda o: L.ConstantLR(o, 0.5, 8, last_epoch=4),
                lambda o: L.PolynomialLR(o, 8, 2.0, last_epoch=4),
                lambda o: L.MultiplicativeLR(o, lambda t: 0.9, last_epoch=4),
                lambda o: L.CosineAnnealingWarmRestarts(o, 3, 2, last_epoch=4),
                lambda o: L.MultiStepLR(o, [5, 7], 0.5, last_epoch=4)]
    res = []
    for lib, L in ((fastnn, lr_scheduler), (torch, torch.optim.lr_scheduler)):
        p = [nn.Parameter(np.zeros(1))] if lib is fastnn else [torch.nn.Parameter(torch.zeros(1))]
        o = lib.optim.SGD(p, lr=0.05)
        o.param_groups[0]["initial_lr"] = 0.1
        s = cases(L)[i](o)
        r = [s.get_last_lr()[0]]
        for _ in range(8):
            o.step()
            s.step()
            r.append(s.get_last_lr()[0])
        res.append(r)
    np.testing.assert_allclose(res[0], res[1], rtol=1e-14)


def test_scheduler_errors_and_resume_needs_initial_lr():
    p = nn.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(opt, 3, last_epoch=5)
    with pytest.raises(ValueError):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="momentum or beta1"):
        lr_scheduler.OneCycleLR(optim.Adagrad([nn.Parameter(np.zeros(1))]), 1.0, 10)
    with pytest.raises(ValueError):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(opt, 2)], milestones=[3])
    s = lr_scheduler.OneCycleLR(optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0, momentum=0.9),
                                1.0, total_steps=3)
    for _ in range(3):
        s.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        s.step()
    # the old base-class contract: a subclass defining lr_at(base_lr, t)
    class Halving(lr_scheduler.LRScheduler):
        def lr_at(self, base_lr, t):
            return base_lr / 2 ** t
    h = Halving(optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0))
    h.step()
    h.step()
    assert h.get_last_lr() == [0.25]


def test_gpt_configure_optimizers_nanogpt_signature():
    from fastnn.models.gpt import GPT, GPTConfig
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8))
    opt = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cpu")  # nanoGPT's call
    assert isinstance(opt, optim.AdamW) and len(opt.param_groups) == 2
    decay, nodecay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and nodecay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() < 2 for p in nodecay["params"])
    assert {id(p) for p in decay["params"] + nodecay["params"]} == \
        {id(p) for p in model.parameters()}
    assert decay["lr"] == 6e-4 and decay["betas"] == (0.9, 0.95)
    opt = model.configure_optimizers(weight_decay=0.0, learning_rate=1e-3, betas=(0.9, 0.99),
                                     device_type="cuda")
    assert opt.param_groups[0]["weight_decay"] == 0.0
    assert model.configure_optimizers(0.1, 1e-3, (0.9, 0.99)).param_groups[0]["lr"] == 1e-3


# ---------------------------------------------------------------- swa_utils
@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("kind", ["swa", "ema_multi", "ema_fn", "swa_fn"])
def test_averaged_model_matches_torch(kind):
    from fastnn.optim import swa_utils
    TS = torch.optim.swa_utils

    def make(lib, U):
        kw = {"swa": {}, "ema_multi": dict(multi_avg_fn=U.get_ema_multi_avg_fn(0.9)),
              "ema_fn": dict(avg_fn=U.get_ema_avg_fn(0.8)),
              "swa_fn": dict(avg_fn=U.get_swa_avg_fn())}[kind]
        return kw
    torch.manual_seed(0)
    tm = _mlp(torch).double()
    m = _mlp(fastnn).double()
    m.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    avg = swa_utils.AveragedModel(m, **make(fastnn, swa_utils))
    tavg = TS.AveragedModel(tm, **make(torch, TS))
    opt, topt = optim.SGD(m.parameters(), lr=0.1), torch.optim.SGD(tm.parameters(), lr=0.1)
    sched, tsched = swa_utils.SWALR(opt, 0.01, anneal_epochs=3), TS.SWALR(topt, 0.01, 3)
    rng = np.random.default_rng(0)
    for step in range(6):
        x, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
        loss = F.cross_entropy(m(fastnn.tensor(x)), fastnn.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        tloss = torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        tsched.step()
        avg.update_parameters(m)
        tavg.update_parameters(tm)
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-14)
    mine = avg.state_dict()
    for k, v in tavg.state_dict().items():
        np.testing.assert_allclose(np.asarray(mine[k]), v.numpy(), rtol=1e-12, err_msg=k)
    x = rng.standard_normal((2, 5))
    np.testing.assert_allclose(np.asarray(avg(fastnn.tensor(x))._data),
                               tavg(torch.tensor(x)).detach().numpy(), rtol=1e-12)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("anneal_epochs,strategy", [(0, "cos"), (5, "linear"), (4, "cos")])
def test_swalr_matches_torch(anneal_epochs, strategy):
    from fastnn.optim import swa_utils
    S, TS = lr_scheduler, torch.optim.lr_scheduler

    def mine(o):
        return S.SequentialLR(o, [S.CosineAnnealingLR(o, 10),
                                  swa_utils.SWALR(o, [0.02, 0.001], anneal_epochs, strategy)],
                              milestones=[10])

    def theirs(o):
        return TS.SequentialLR(o, [TS.CosineAnnealingLR(o, 10), torch.optim.swa_utils.SWALR(
            o, [0.02, 0.001], anneal_epochs, strategy)], milestones=[10])
    a = _run_schedule(fastnn, "SGD", {}, lambda o: swa_utils.SWALR(o, 0.03, anneal_epochs,
                                                                    strategy))
    b = _run_schedule(torch, "SGD", {}, lambda o: torch.optim.swa_utils.SWALR(
        o, 0.03, anneal_epochs, strategy))
    np.testing.assert_allclose(a, b, rtol=1e-13)
    np.testing.assert_allclose(_run_schedule(fastnn, "SGD", {}, mine),
                               _run_schedule(torch, "SGD", {}, theirs), rtol=1e-13)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_swa_update_bn_matches_torch():
    """SWA with BatchNorm: AveragedModel over a few SGD steps, then update_bn recomputes the
    running statistics of the averaged weights, as PyTorch's."""
    from fastnn.optim import swa_utils
    if not hasattr(fastnn.nn, "BatchNorm1d"):
        pytest.skip("fastnn.nn has no BatchNorm1d yet")
    torch.manual_seed(0)

    def net(L):
        return L.nn.Sequential(L.nn.Linear(5, 8), L.nn.BatchNorm1d(8), L.nn.ReLU(),
                               L.nn.Linear(8, 3))
    tm = net(torch).double()
    m = net(fastnn).double()
    m.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    avg, tavg = swa_utils.AveragedModel(m), torch.optim.swa_utils.AveragedModel(tm)
    opt, topt = optim.SGD(m.parameters(), lr=0.1), torch.optim.SGD(tm.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((6, 5)) for _ in range(4)]
    for x in batches:
        y = rng.integers(0, 3, 6)
        loss = F.cross_entropy(m(fastnn.tensor(x)), fastnn.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        avg.update_parameters(m)
        tavg.update_parameters(tm)
    swa_utils.update_bn([(fastnn.tensor(x), 0) for x in batches], avg)
    torch.optim.swa_utils.update_bn([(torch.tensor(x), 0) for x in batches], tavg)
    mine = avg.state_dict()
    for k, v in tavg.state_dict().items():
        np.testing.assert_allclose(np.asarray(mine[k]), v.numpy(), rtol=1e-12, atol=1e-14,
                                   err_msg=k)
    assert avg.module[1].momentum == tavg.module[1].momentum
