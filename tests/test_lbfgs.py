"""optim.LBFGS against torch.optim.LBFGS in float64: the same iterates, losses and evaluation
counts on a quadratic and on the Rosenbrock function, with fixed steps and with the strong-Wolfe
line search, over several step() calls (the history carries over) and with a short history."""
import numpy as np
import pytest

import fastnn
from fastnn import nn, optim

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def rosenbrock(x, lib=np):
    """The n-d Rosenbrock function of a flat vector x, and its gradient (numpy)."""
    f = lib.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    if lib is not np:
        return f
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return f, g


_rng = np.random.default_rng(0)
_M = _rng.standard_normal((7, 7))
A = _M @ _M.T + 0.5 * np.eye(7)
B = _rng.standard_normal(7)


def quadratic(x):
    return 0.5 * x @ A @ x - B @ x, A @ x - B


SHAPES = ((3,), (2, 2))  # two parameters: LBFGS works on their flat concatenation
STARTS = {"rosenbrock": np.array([-1.2, 1.0, -0.5, 0.8, 1.3, -0.3, 0.7])[:7],
          "quadratic": np.linspace(-1, 1, 7)}


def _split(flat):
    out, i = [], 0
    for s in SHAPES:
        n = int(np.prod(s))
        out.append(flat[i:i + n].reshape(s).copy())
        i += n
    return out


def _run_fastnn(fn, x0, steps, **kw):
    ps = [nn.Parameter(a) for a in _split(x0[:7])]
    opt = optim.LBFGS(ps, **kw)
    evals = [0]

    def closure():
        opt.zero_grad()
        evals[0] += 1
        flat = np.concatenate([p._data.ravel() for p in ps])
        f, g = fn(flat)
        for p, gp in zip(ps, _split(g)):
            p.grad = gp
        return fastnn.tensor(f)

    losses = [float(opt.step(closure)) for _ in range(steps)]
    return np.concatenate([p._data.ravel() for p in ps]), losses, evals[0], opt


def _run_torch(fn, x0, steps, **kw):
    ps = [torch.nn.Parameter(torch.tensor(a)) for a in _split(x0[:7])]
    opt = torch.optim.LBFGS(ps, **kw)
    evals = [0]

    def closure():
        opt.zero_grad()
        evals[0] += 1
        flat = np.concatenate([p.detach().numpy().ravel() for p in ps])
        f, g = fn(flat)
        for p, gp in zip(ps, _split(g)):
            p.grad = torch.tensor(gp)
        return torch.tensor(f)

    losses = [float(opt.step(closure)) for _ in range(steps)]
    return np.concatenate([p.detach().numpy().ravel() for p in ps]), losses, evals[0], opt


CASES = {
    "default": dict(),
    "lr_half": dict(lr=0.5, max_iter=7),
    "short_history": dict(history_size=3, max_iter=10),
    "wolfe": dict(line_search_fn="strong_wolfe"),
    "wolfe_short": dict(line_search_fn="strong_wolfe", history_size=2, max_iter=6),
    "wolfe_tol": dict(line_search_fn="strong_wolfe", tolerance_grad=1e-4,
                      tolerance_change=1e-6, max_eval=12),
}


@needs_torch
@pytest.mark.parametrize("problem", ["quadratic", "rosenbrock"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_lbfgs_matches_torch(problem, case):
    """Whole runs, side by side. On Rosenbrock the two libraries' last-bit differences (PyTorch's
    fused multiply-add and its own summation order in dot products) grow over the iterations
    (about 1e-14 after 15 evaluations, 1e-9 after 40), so the comparison there covers one step
    of 12 iterations; test_lbfgs_each_step_matches_torch covers the whole path."""
    fn = {"quadratic": quadratic, "rosenbrock": rosenbrock}[problem]
    kw = dict(CASES[case])
    steps = 4
    if problem == "rosenbrock":
        steps = 1
        kw["max_iter"] = min(kw.get("max_iter", 20), 12)
    x, losses, evals, opt = _run_fastnn(fn, STARTS[problem], steps, **kw)
    tx, tlosses, tevals, topt = _run_torch(fn, STARTS[problem], steps, **kw)
    np.testing.assert_allclose(x, tx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(losses, tlosses, rtol=1e-10, atol=1e-14)
    assert evals == tevals
    st, tst = opt.state[opt.param_groups[0]["params"][0]], topt.state[
        topt.param_groups[0]["params"][0]]
    assert st["n_iter"] == tst["n_iter"] and st["func_evals"] == tst["func_evals"]
    assert len(st["old_dirs"]) == len(tst["old_dirs"])


def _state_to_numpy(sd):
    def conv(v):
        if isinstance(v, torch.Tensor):
            return v.numpy().copy()
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v
    return {"state": {i: {k: conv(v) for k, v in st.items()} for i, st in sd["state"].items()},
            "param_groups": sd["param_groups"]}


@needs_torch
@pytest.mark.parametrize("case", sorted(CASES))
def test_lbfgs_each_step_matches_torch(case):
    """Rosenbrock from start to minimum in steps of at most 4 iterations: before each step the
    fastnn optimizer takes PyTorch's parameters and state (its load_state_dict accepts
    PyTorch's LBFGS state: history lists, H_diag, d, t, ...), and its step must land where
    PyTorch's does, with the same number of evaluations."""
    kw = dict(CASES[case])
    kw["max_iter"] = min(kw.get("max_iter", 20), 4)
    x0 = STARTS["rosenbrock"]
    tps = [torch.nn.Parameter(torch.tensor(a)) for a in _split(x0)]
    ps = [nn.Parameter(a) for a in _split(x0)]
    topt, opt = torch.optim.LBFGS(tps, **kw), optim.LBFGS(ps, **kw)

    def closure_for(params, to_arr, set_grad):
        def closure():
            flat = np.concatenate([to_arr(p).ravel() for p in params])
            f, g = rosenbrock(flat)
            for p, gp in zip(params, _split(g)):
                set_grad(p, gp)
            return f
        return closure

    tclosure = closure_for(tps, lambda p: p.detach().numpy(),
                           lambda p, g: setattr(p, "grad", torch.tensor(g)))
    closure = closure_for(ps, lambda p: p._data, lambda p, g: setattr(p, "grad", g))
    for k in range(60):
        for p, tp in zip(ps, tps):
            p._data[...] = tp.detach().numpy()
        opt.load_state_dict(_state_to_numpy(topt.state_dict()))
        loss, tloss = opt.step(closure), topt.step(tclosure)
        assert float(loss) == float(tloss)
        for p, tp in zip(ps, tps):
            np.testing.assert_allclose(p._data, tp.detach().numpy(), rtol=1e-11, atol=1e-13,
                                       err_msg=f"step {k}")
        st, tst = opt.state[ps[0]], topt.state[tps[0]]
        assert st["func_evals"] == tst["func_evals"] and st["n_iter"] == tst["n_iter"], k
    assert float(loss) < 1e-2 * float(rosenbrock(x0)[0])  # it reached a minimum (local: lr_half)


def test_lbfgs_converges_with_autograd():
    """The usual use: a closure over Tensor ops and backward(); Rosenbrock's minimum (1, 1)."""
    x = nn.Parameter(np.array([-1.5, 2.0]))
    opt = optim.LBFGS([x], lr=1, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        a, b = x[0], x[1]
        loss = (1 - a) ** 2 + 100 * (b - a * a) ** 2
        loss.backward()
        return loss

    first = opt.step(closure)
    assert float(first) == pytest.approx(2.5 ** 2 + 100 * 0.25 ** 2)
    np.testing.assert_allclose(x._data, [1.0, 1.0], atol=1e-4)


def test_lbfgs_errors_and_defaults():
    p = nn.Parameter(np.zeros(2))
    opt = optim.LBFGS([p])
    g = opt.param_groups[0]
    assert (g["lr"], g["max_iter"], g["max_eval"], g["history_size"]) == (1, 20, 25, 100)
    assert g["tolerance_grad"] == 1e-7 and g["tolerance_change"] == 1e-9
    with pytest.raises(ValueError, match="parameter groups"):
        optim.LBFGS([{"params": [p]}, {"params": [nn.Parameter(np.zeros(1))]}])
    with pytest.raises(RuntimeError, match="strong_wolfe"):
        def closure():
            p.grad = np.ones(2)
            return fastnn.tensor(1.0)
        optim.LBFGS([p], line_search_fn="armijo").step(closure)
    # already optimal: one evaluation, no move
    q = nn.Parameter(np.ones(2))
    calls = []

    def flat():
        calls.append(1)
        q.grad = np.zeros(2)
        return fastnn.tensor(0.0)
    optim.LBFGS([q]).step(flat)
    assert len(calls) == 1 and (q._data == 1).all()


def _fit_program(torch_like, line_search_fn):
    """A PyTorch-style LBFGS fit, written once for `torch_like` (torch or fastnn): a small tanh
    network regressing a smooth function, full-batch, in float64."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (64, 2))
    y = np.sin(x[:, :1]) * np.cos(x[:, 1:])
    model = torch_like.nn.Sequential(torch_like.nn.Linear(2, 8), torch_like.nn.Tanh(),
                                     torch_like.nn.Linear(8, 1)).double()
    init = np.random.default_rng(1)
    for name, p in model.named_parameters():
        p.data[...] = torch_like.tensor(init.standard_normal(tuple(p.shape)) * 0.5) \
            if torch_like is not fastnn else init.standard_normal(p.shape) * 0.5
    X, Y = torch_like.tensor(x), torch_like.tensor(y)
    loss_fn = torch_like.nn.MSELoss()
    optimizer = torch_like.optim.LBFGS(model.parameters(), lr=1, max_iter=10,
                                       history_size=10, line_search_fn=line_search_fn)

    def closure():
        optimizer.zero_grad()
        loss = loss_fn(model(X), Y)
        loss.backward()
        return loss

    losses = [optimizer.step(closure).item() for _ in range(3)]
    return losses, [np.array(p.detach().numpy() if torch_like is not fastnn else p._data)
                    for p in model.parameters()]


@needs_torch
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_pytorch_style_fit_matches(line_search_fn):
    losses, params = _fit_program(fastnn, line_search_fn)
    tlosses, tparams = _fit_program(torch, line_search_fn)
    assert losses[-1] < 0.5 * losses[0]
    np.testing.assert_allclose(losses, tlosses, rtol=1e-10)
    for a, b in zip(params, tparams):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


@needs_torch
def test_lbfgs_state_dict_loads_into_torch():
    """fastnn's LBFGS state (history lists, d, t, H_diag, ...) as tensors continues in torch."""
    kw = dict(line_search_fn="strong_wolfe", history_size=5, max_iter=3)
    x0 = STARTS["quadratic"]
    x, _, _, opt = _run_fastnn(quadratic, x0, 2, **kw)

    def conv(v):
        if isinstance(v, np.ndarray):
            return torch.tensor(v)
        if isinstance(v, list):
            return [conv(a) for a in v]
        return v
    sd = opt.state_dict()
    tsd = {"state": {i: {k: conv(v) for k, v in st.items()} for i, st in sd["state"].items()},
           "param_groups": sd["param_groups"]}
    tps = [torch.nn.Parameter(torch.tensor(a)) for a in _split(x)]
    topt = torch.optim.LBFGS(tps, **kw)
    topt.load_state_dict(tsd)

    def tclosure():
        flat = np.concatenate([p.detach().numpy().ravel() for p in tps])
        f, g = quadratic(flat)
        for p, gp in zip(tps, _split(g)):
            p.grad = torch.tensor(gp)
        return f

    ps = opt.param_groups[0]["params"]

    def closure():
        flat = np.concatenate([p._data.ravel() for p in ps])
        f, g = quadratic(flat)
        for p, gp in zip(ps, _split(g)):
            p.grad = gp
        return f
    opt.step(closure)
    topt.step(tclosure)
    np.testing.assert_allclose(np.concatenate([p._data.ravel() for p in ps]),
                               np.concatenate([p.detach().numpy().ravel() for p in tps]),
                               rtol=1e-12, atol=1e-14)
