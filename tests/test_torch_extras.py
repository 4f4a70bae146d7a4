"""fastnn.linalg, fastnn.special, fastnn.distributions, fastnn.fft and the top-level extras
(fastnn/extras.py): values against closed forms and numpy, gradients against central finite
differences in float64, and, where torch is installed, values and gradients against torch's."""
import json
import math

import numpy as np
import pytest

import fastnn
import fastnn.linalg as LA
import fastnn.special as SP
from fastnn.distributions import (Bernoulli, Categorical, Exponential, Independent, Laplace,
                                  LogNormal, MultivariateNormal, Normal, OneHotCategorical,
                                  Uniform, kl_divergence)

try:
    import torch
except ImportError:   # pragma: no cover - the comparisons skip
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
RNG = np.random.default_rng(0)


def T(a, grad=False):
    return fastnn.tensor(np.asarray(a, np.float64), requires_grad=grad)


def fd_grad(fn, a, eps=1e-6):
    """d fn / d a by central differences; fn maps a float64 array to a float."""
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        ap, am = a.copy(), a.copy()
        ap[i] += eps
        am[i] -= eps
        g[i] = (fn(ap) - fn(am)) / (2 * eps)
    return g


def check_grad(f, a, tol=1e-5):
    """f: Tensor -> scalar Tensor. Its autograd gradient at a equals finite differences."""
    x = T(a, grad=True)
    f(x).backward()
    num = fd_grad(lambda v: f(T(v)).item(), np.asarray(a, np.float64))
    np.testing.assert_allclose(x.grad.numpy(), num, rtol=tol, atol=tol)
    return x.grad.numpy()


def torch_grad(f, a):
    x = torch.tensor(np.asarray(a, np.float64), requires_grad=True)
    f(x).backward()
    return x.grad.numpy()


SPD = (lambda A: A @ A.transpose(0, 2, 1) + 4 * np.eye(4))(RNG.standard_normal((2, 4, 4)))
SQ = RNG.standard_normal((2, 4, 4))
W = RNG.standard_normal((2, 4, 4))
TALL = RNG.standard_normal((2, 5, 3))


# ---------------------------------------------------------------- linalg
def test_linalg_values_match_numpy():
    np.testing.assert_allclose(LA.inv(T(SQ)).numpy(), np.linalg.inv(SQ), rtol=1e-10)
    np.testing.assert_allclose(LA.det(T(SQ)).numpy(), np.linalg.det(SQ), rtol=1e-10)
    sign, logabs = LA.slogdet(T(SQ))
    ref = np.linalg.slogdet(SQ)
    np.testing.assert_allclose(sign.numpy(), ref[0])
    np.testing.assert_allclose(logabs.numpy(), ref[1], rtol=1e-10)
    L = LA.cholesky(T(SPD)).numpy()
    np.testing.assert_allclose(L @ L.transpose(0, 2, 1), SPD, rtol=1e-10)
    assert np.allclose(L, np.tril(L))
    x = LA.solve(T(SQ), T(W)).numpy()
    np.testing.assert_allclose(SQ @ x, W, atol=1e-10)
    xv = LA.solve(T(SQ), T(W[:, 0])).numpy()        # a batch of vectors (..., n)
    np.testing.assert_allclose(np.einsum("bij,bj->bi", SQ, xv), W[:, 0], atol=1e-10)
    q, r = LA.qr(T(TALL))
    np.testing.assert_allclose(q.numpy() @ r.numpy(), TALL, atol=1e-10)
    u, s, vh = LA.svd(T(TALL), full_matrices=False)
    np.testing.assert_allclose((u.numpy() * s.numpy()[:, None, :]) @ vh.numpy(), TALL,
                               atol=1e-10)
    w, v = LA.eigh(T(SPD))
    np.testing.assert_allclose(w.numpy(), np.linalg.eigvalsh(SPD), rtol=1e-10)
    np.testing.assert_allclose(LA.pinv(T(TALL)).numpy(), np.linalg.pinv(TALL), atol=1e-10)
    np.testing.assert_allclose(LA.matrix_norm(T(TALL), 2).numpy(),
                               np.linalg.norm(TALL, 2, axis=(-2, -1)), rtol=1e-10)
    np.testing.assert_allclose(LA.matrix_norm(T(TALL), "nuc").numpy(),
                               np.linalg.norm(TALL, "nuc", axis=(-2, -1)), rtol=1e-10)
    assert LA.matrix_rank(T(TALL)).tolist() == [3, 3]
    np.testing.assert_allclose(LA.matrix_power(T(SQ), 3).numpy(),
                               np.linalg.matrix_power(SQ, 3), rtol=1e-9)
    assert LA.inv(fastnn.eye(3)).dtype == fastnn.float32


@pytest.mark.parametrize("name,fn,data", [
    ("inv", lambda x: (LA.inv(x) * T(W)).sum(), SQ),
    ("det", lambda x: LA.det(x).sum(), SQ),
    ("slogdet", lambda x: LA.slogdet(x)[1].sum(), SQ),
    ("solve_A", lambda x: (LA.solve(x, T(W)) * T(W)).sum(), SQ),
    ("solve_B", lambda x: (LA.solve(T(SPD), x) ** 2).sum(), W),
    ("solve_right", lambda x: (LA.solve(x, T(W), left=False) * T(W)).sum(), SQ),
    ("cholesky", lambda x: (LA.cholesky(x @ x.mT + 4 * fastnn.eye(4, dtype=fastnn.float64))
                            * T(W)).sum(), SQ),
    ("solve_triangular", lambda x: (LA.solve_triangular(x, T(W), upper=False) * T(W)).sum(),
     SPD),
    ("qr", lambda x: (LA.qr(x)[0] * T(TALL)).sum() + (LA.qr(x)[1] ** 2).sum(), TALL),
    ("svdvals", lambda x: (LA.svdvals(x) * fastnn.tensor([1.0, 2, 3],
                                                          dtype=fastnn.float64)).sum(), TALL),
    ("eigh", lambda x: (LA.eigh(x @ x.mT)[0] * fastnn.arange(1, 5).double()).sum(), SQ),
    ("pinv", lambda x: (LA.pinv(x) * T(TALL.transpose(0, 2, 1))).sum(), TALL),
    ("matrix_norm_2", lambda x: LA.matrix_norm(x, 2).sum(), TALL),
])
def test_linalg_gradients_match_finite_differences(name, fn, data):
    check_grad(fn, data)


def test_svd_gradient_of_gauge_invariant_loss():
    # U diag(s) V^T products do not depend on the singular vectors' signs
    def f(x):
        u, s, vh = LA.svd(x, full_matrices=False)
        return ((u * s.unsqueeze(-2)) @ vh * T(TALL)).sum() + (u @ vh).pow(2).sum()
    check_grad(f, TALL + 0.1)


def test_linalg_errors():
    with pytest.raises(RuntimeError, match="positive-definite"):
        LA.cholesky(fastnn.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(RuntimeError, match="singular"):
        LA.inv(fastnn.zeros(2, 2))
    with pytest.raises(RuntimeError, match="square"):
        LA.det(fastnn.zeros(2, 3))
    with pytest.raises(LA.LinAlgError):
        LA.solve(fastnn.zeros(2, 2), fastnn.ones(2))


@needs_torch
@pytest.mark.parametrize("name", ["inv", "det", "slogdet", "cholesky", "solve", "eigh",
                                  "svdvals", "qr", "pinv"])
def test_linalg_matches_torch(name):
    ops = {
        "inv": lambda L, x: (L.inv(x) ** 2).sum(),
        "det": lambda L, x: L.det(x).sum(),
        "slogdet": lambda L, x: L.slogdet(x)[1].sum(),
        "cholesky": lambda L, x: L.cholesky(x @ x.mT + 3 * x.new_ones(4).diag()).pow(2).sum(),
        "solve": lambda L, x: L.solve(x, x.mT @ x).pow(2).sum(),
        "eigh": lambda L, x: (L.eigh(x @ x.mT)[0] ** 3).sum(),
        "svdvals": lambda L, x: (L.svdvals(x) ** 3).sum(),
        "qr": lambda L, x: (L.qr(x)[1] ** 2).sum(),
        "pinv": lambda L, x: L.pinv(x).pow(2).sum(),
    }
    f = ops[name]
    ours = T(SQ, grad=True)
    out = f(LA, ours)
    out.backward()
    theirs = torch.tensor(SQ, requires_grad=True)
    ref = f(torch.linalg, theirs)
    ref.backward()
    np.testing.assert_allclose(out.item(), ref.item(), rtol=1e-8)
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- special
def test_special_values_against_math():
    x = [0.3, 1.0, 2.5, 7.0]
    np.testing.assert_allclose(SP.gammaln(T(x)).numpy(), [math.lgamma(v) for v in x],
                               rtol=1e-12)
    np.testing.assert_allclose(SP.erfc(T(x)).numpy(), [math.erfc(v) for v in x], rtol=1e-12)
    np.testing.assert_allclose(SP.erfinv(SP.erf(T([-0.5, 0.1, 0.9]))).numpy(),
                               [-0.5, 0.1, 0.9], rtol=1e-10)
    # digamma(1) = -Euler's gamma, digamma(x + 1) = digamma(x) + 1/x
    assert SP.digamma(T([1.0])).item() == pytest.approx(-0.5772156649015329, rel=1e-12)
    d = SP.digamma(T(x)).numpy()
    np.testing.assert_allclose(SP.digamma(T(x) + 1).numpy(), d + 1 / np.array(x), rtol=1e-12)
    assert SP.polygamma(1, T([1.0])).item() == pytest.approx(math.pi ** 2 / 6, rel=1e-12)
    np.testing.assert_allclose(SP.sinc(T([0.0, 0.5, 1.0])).numpy(),
                               [1.0, 2 / math.pi, 0.0], atol=1e-15)
    np.testing.assert_allclose(SP.logit(T([0.25])).numpy(), [math.log(1 / 3)], rtol=1e-12)
    np.testing.assert_allclose(SP.expit(T([0.0])).numpy(), [0.5])
    np.testing.assert_allclose(SP.xlogy(T([0.0, 2.0]), T([0.0, 3.0])).numpy(),
                               [0.0, 2 * math.log(3)])
    np.testing.assert_allclose(SP.i0(T([0.0])).numpy(), [1.0])
    np.testing.assert_allclose(SP.ndtr(T([0.0])).numpy(), [0.5])
    np.testing.assert_allclose(SP.ndtri(SP.ndtr(T([1.3]))).numpy(), [1.3], rtol=1e-10)
    np.testing.assert_allclose(SP.entr(T([0.0, 0.5])).numpy(), [0.0, 0.5 * math.log(2)])
    np.testing.assert_allclose(SP.multigammaln(T([3.0]), 2).numpy(),
                               [0.5 * math.log(math.pi) + math.lgamma(3) + math.lgamma(2.5)])
    assert SP.gammaln(fastnn.tensor([3.0])).dtype == fastnn.float32


@pytest.mark.parametrize("name", ["gammaln", "digamma", "erfc", "erfinv", "i0", "i0e", "i1",
                                  "i1e", "sinc", "log_ndtr", "entr", "logit", "bessel_j0",
                                  "bessel_j1", "erfcx"])
def test_special_gradients(name):
    a = np.array([0.15, 0.4, 0.8]) if name in ("erfinv", "logit") else np.array([0.3, 1.2, 2.7])
    check_grad(lambda t: (getattr(SP, name)(t) * T([1.0, 2.0, 3.0])).sum(), a)


def test_special_second_derivative_through_create_graph():
    x = T([0.7, 2.0], grad=True)
    (g,) = fastnn.autograd.grad(SP.gammaln(x).sum(), x, create_graph=True)
    (g2,) = fastnn.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(g2.numpy(), SP.polygamma(1, x).detach().numpy(), rtol=1e-12)


def test_xlogy_gradients():
    check_grad(lambda t: SP.xlogy(t, t * 2 + 1).sum(), np.array([0.0, 0.5, 1.5]))
    check_grad(lambda t: SP.xlog1py(T([1.0, 0.0, 2.0]), t).sum(), np.array([0.3, 0.5, 1.5]))


@needs_torch
@pytest.mark.parametrize("name", ["gammaln", "digamma", "erfinv", "erfc", "i0", "sinc",
                                  "logit", "log_ndtr", "i1", "entr"])
def test_special_matches_torch(name):
    a = np.array([0.15, 0.4, 0.8])
    ours = T(a, grad=True)
    out = (getattr(SP, name)(ours) ** 2).sum()
    out.backward()
    theirs = torch.tensor(a, requires_grad=True)
    ref = (getattr(torch.special, name)(theirs) ** 2).sum()
    ref.backward()
    np.testing.assert_allclose(out.item(), ref.item(), rtol=1e-10)
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-8)


# ---------------------------------------------------------------- distributions
def test_normal_closed_forms_and_reparameterised_gradient():
    loc, scale = T([0.5, -1.0], grad=True), T([2.0, 0.5], grad=True)
    d = Normal(loc, scale)
    v = T([1.0, 0.0])
    ref = [-(1 - 0.5) ** 2 / 8 - math.log(2.0) - 0.5 * math.log(2 * math.pi),
           -(0 + 1.0) ** 2 / 0.5 - math.log(0.5) - 0.5 * math.log(2 * math.pi)]
    np.testing.assert_allclose(d.log_prob(v).detach().numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(d.entropy().detach().numpy(),
                               0.5 + 0.5 * math.log(2 * math.pi) + np.log([2.0, 0.5]))
    np.testing.assert_allclose(d.cdf(T([0.5, -1.0])).detach().numpy(), [0.5, 0.5])
    np.testing.assert_allclose(d.icdf(T([0.5, 0.5])).detach().numpy(), [0.5, -1.0],
                               atol=1e-12)
    assert d.batch_shape == fastnn.Size([2]) and d.event_shape == fastnn.Size([])
    fastnn.manual_seed(0)
    z = d.rsample((3,))
    assert z.shape == (3, 2) and z.requires_grad
    z.sum().backward()   # dz/dloc = 1, dz/dscale = eps
    np.testing.assert_allclose(loc.grad.numpy(), [3.0, 3.0])
    eps = (z.detach().numpy() - np.array([0.5, -1.0])) / np.array([2.0, 0.5])
    np.testing.assert_allclose(scale.grad.numpy(), eps.sum(0), rtol=1e-10)
    s = Normal(0.0, 1.0).sample((4000,))
    assert not s.requires_grad and abs(s.mean().item()) < 0.1 and abs(s.std().item() - 1) < 0.1


def test_categorical_log_prob_entropy_and_reinforce_gradient():
    logits = T([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], grad=True)
    d = Categorical(logits=logits)
    p = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    lp = d.log_prob(fastnn.tensor([2, 0]))
    np.testing.assert_allclose(lp.detach().numpy(), [math.log(p[2]), math.log(1 / 3)])
    np.testing.assert_allclose(d.entropy().detach().numpy(),
                               [-(p * np.log(p)).sum(), math.log(3)])
    (-lp.sum()).backward()   # d(-log p_k)/d logits = softmax - onehot
    np.testing.assert_allclose(logits.grad.numpy(),
                               [p - [0, 0, 1], np.array([1, 1, 1]) / 3 - [1, 0, 0]],
                               atol=1e-12)
    probs = Categorical(probs=fastnn.tensor([1.0, 3.0])).probs   # normalised
    np.testing.assert_allclose(probs.numpy(), [0.25, 0.75])
    fastnn.manual_seed(1)
    s = Categorical(probs=fastnn.tensor([0.2, 0.8])).sample((4000,))
    assert s.dtype == fastnn.int64 and s.shape == (4000,)
    assert abs(s.float().mean().item() - 0.8) < 0.05
    assert Categorical(logits=fastnn.zeros(5, 3)).sample((2,)).shape == (2, 5)
    assert Categorical(logits=fastnn.zeros(3)).enumerate_support().tolist() == [0, 1, 2]


def test_bernoulli_uniform_mvn_and_others_closed_forms():
    b = Bernoulli(probs=T([0.3, 0.9]))
    np.testing.assert_allclose(b.log_prob(T([1.0, 0.0])).numpy(), np.log([0.3, 0.1]))
    np.testing.assert_allclose(b.entropy().numpy(),
                               [-(0.3 * math.log(0.3) + 0.7 * math.log(0.7)),
                                -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))], rtol=1e-6)
    np.testing.assert_allclose(Bernoulli(logits=T([0.0])).probs.numpy(), [0.5])
    u = Uniform(T([0.0, 1.0]), T([2.0, 3.0]))
    np.testing.assert_allclose(u.log_prob(T([1.0, 2.5])).numpy(), np.log([0.5, 0.5]))
    np.testing.assert_allclose(u.entropy().numpy(), np.log([2.0, 2.0]))
    fastnn.manual_seed(0)
    x = u.rsample((1000,)).numpy()
    assert x.min() >= 0 and x[:, 0].max() < 2 and x[:, 1].min() >= 1
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    mvn = MultivariateNormal(T([0.0, 1.0]), covariance_matrix=T(cov))
    v = np.array([1.0, 0.0])
    diff = v - [0.0, 1.0]
    ref = -0.5 * (2 * math.log(2 * math.pi) + math.log(np.linalg.det(cov))
                  + diff @ np.linalg.solve(cov, diff))
    assert mvn.log_prob(T(v)).item() == pytest.approx(ref, rel=1e-12)
    assert mvn.entropy().item() == pytest.approx(
        0.5 * math.log(np.linalg.det(2 * math.pi * math.e * cov)), rel=1e-12)
    np.testing.assert_allclose(mvn.covariance_matrix.numpy(), cov)
    np.testing.assert_allclose(MultivariateNormal(T([0.0, 0.0]), precision_matrix=T(
        np.linalg.inv(cov))).covariance_matrix.numpy(), cov, rtol=1e-12)
    fastnn.manual_seed(0)
    s = mvn.sample((6000,)).numpy()
    np.testing.assert_allclose(np.cov(s.T), cov, atol=0.15)
    ind = Independent(Normal(fastnn.zeros(4, 3), fastnn.ones(4, 3)), 1)
    assert ind.batch_shape == (4,) and ind.event_shape == (3,)
    np.testing.assert_allclose(ind.log_prob(fastnn.zeros(4, 3)).numpy(),
                               [-1.5 * math.log(2 * math.pi)] * 4, rtol=1e-6)
    oh = OneHotCategorical(probs=T([0.2, 0.8]))
    assert oh.log_prob(T([0.0, 1.0])).item() == pytest.approx(math.log(0.8))
    assert Exponential(T([2.0])).log_prob(T([1.0])).item() == pytest.approx(math.log(2) - 2)
    assert Laplace(0.0, 2.0).log_prob(fastnn.tensor(1.0)).item() == pytest.approx(
        -math.log(4) - 0.5)
    assert LogNormal(0.0, 1.0).log_prob(fastnn.tensor(2.0)).item() == pytest.approx(
        -math.log(2) - 0.5 * math.log(2 * math.pi) - math.log(2) ** 2 / 2, rel=1e-6)


def test_kl_divergences_closed_forms():
    p, q = Normal(T([0.0]), T([1.0])), Normal(T([1.0]), T([2.0]))
    assert kl_divergence(p, q).item() == pytest.approx(math.log(2) + (1 + 1) / 8 - 0.5)
    c1 = Categorical(probs=T([0.5, 0.5]))
    c2 = Categorical(probs=T([0.25, 0.75]))
    assert kl_divergence(c1, c2).item() == pytest.approx(
        0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75))
    m1 = MultivariateNormal(T([0.0, 0.0]), covariance_matrix=T(np.eye(2)))
    m2 = MultivariateNormal(T([1.0, 0.0]), covariance_matrix=T(2 * np.eye(2)))
    assert kl_divergence(m1, m2).item() == pytest.approx(
        0.5 * (1.0 + 0.5 - 2 + 2 * math.log(2)))
    with pytest.raises(NotImplementedError):
        kl_divergence(p, c1)


def test_distribution_validation_errors():
    with pytest.raises(ValueError, match="scale"):
        Normal(0.0, -1.0)
    with pytest.raises(ValueError, match="support"):
        Categorical(logits=fastnn.zeros(3)).log_prob(fastnn.tensor(3))
    with pytest.raises(ValueError, match="probs"):
        Bernoulli(probs=fastnn.tensor(1.5))
    with pytest.raises(ValueError, match="not both"):
        Categorical(probs=fastnn.ones(2), logits=fastnn.ones(2))
    Normal(0.0, -1.0, validate_args=False)   # no check when asked not to


@needs_torch
def test_distributions_match_torch_values_and_gradients():
    import torch.distributions as TD
    import fastnn.distributions as FD

    def run(lib, D):
        torch_like = lib is torch
        t = (lambda a: torch.tensor(np.asarray(a, np.float64), requires_grad=True)) \
            if torch_like else (lambda a: T(a, grad=True))
        loc, scale, logits = t([0.3, -0.2]), t([1.5, 0.7]), t([[0.2, -1.0, 0.5], [1, 2, 3]])
        cov = t([[2.0, 0.3], [0.3, 1.0]])
        v = t([0.1, 0.4])
        terms = [D.Normal(loc, scale).log_prob(v).sum(), D.Normal(loc, scale).entropy().sum(),
                 D.Categorical(logits=logits).log_prob(lib.tensor([2, 0])).sum(),
                 D.Categorical(logits=logits).entropy().sum(),
                 D.Bernoulli(logits=loc).log_prob(lib.tensor([1.0, 0.0],
                                                             dtype=lib.float64)).sum(),
                 D.Bernoulli(probs=scale / 2).entropy().sum(),
                 D.MultivariateNormal(loc, covariance_matrix=cov).log_prob(v),
                 D.MultivariateNormal(loc, scale_tril=lib.linalg.cholesky(cov)).entropy(),
                 D.kl_divergence(D.Normal(loc, scale), D.Normal(v, scale * 2)).sum(),
                 D.kl_divergence(D.Categorical(logits=logits),
                                 D.Categorical(logits=logits * 2)).sum(),
                 D.kl_divergence(D.MultivariateNormal(loc, cov),
                                 D.MultivariateNormal(v, cov * 2)),
                 D.Laplace(loc, scale).log_prob(v).sum(), D.Exponential(scale).entropy().sum(),
                 D.Uniform(loc - 1, scale + 1).log_prob(v).sum()]
        total = sum(terms)
        total.backward()
        return ([float(x.detach()) for x in terms],
                [a.grad.numpy() for a in (loc, scale, logits, cov, v)])
    ours_vals, ours_grads = run(fastnn, FD)
    ref_vals, ref_grads = run(torch, TD)
    np.testing.assert_allclose(ours_vals, ref_vals, rtol=1e-10)
    for a, b in zip(ours_grads, ref_grads):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


# ---------------------------------------------------------------- extras and Size
def test_size_prints_as_torch_does():
    s = fastnn.zeros(2, 3).shape
    assert repr(s) == "torch.Size([2, 3])" and str(fastnn.Size()) == "torch.Size([])"
    assert isinstance(s[1:], fastnn.Size) and isinstance(s + (4,), fastnn.Size)
    assert s + (4,) == (2, 3, 4)


def test_top_level_extras_values():
    x = T([[1.0, 2.0], [3.0, 5.0]])
    np.testing.assert_allclose(fastnn.inverse(x).numpy(), np.linalg.inv(x.numpy()))
    assert fastnn.det(x).item() == pytest.approx(-1.0)
    assert fastnn.lgamma(T([5.0])).item() == pytest.approx(math.log(24))
    u, s, v = fastnn.svd(x)
    np.testing.assert_allclose((u * s) @ v.T, x.numpy(), atol=1e-12)
    a, b = RNG.standard_normal((4, 3)), RNG.standard_normal((5, 3))
    np.testing.assert_allclose(fastnn.cdist(T(a), T(b)).numpy(),
                               np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)), rtol=1e-12)
    np.testing.assert_allclose(fastnn.cdist(T(a), T(b), p=1).numpy(),
                               np.abs(a[:, None] - b[None]).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(fastnn.kron(T(np.eye(2)), T([[1.0, 2.0]])).numpy(),
                               np.kron(np.eye(2), [[1.0, 2.0]]))
    np.testing.assert_allclose(fastnn.diag_embed(T([[1.0, 2.0]])).numpy(), [np.diag([1, 2])])
    assert fastnn.tril_indices(3, 3).tolist() == [list(r) for r in np.tril_indices(3)]
    np.testing.assert_allclose(fastnn.block_diag(T([[1.0]]), T([[2.0, 3.0]])).numpy(),
                               [[1, 0, 0], [0, 2, 3]])
    np.testing.assert_allclose(fastnn.rot90(x).numpy(), np.rot90(x.numpy()))
    np.testing.assert_allclose(fastnn.diff(T([1.0, 4.0, 9.0])).numpy(), [3, 5])
    np.testing.assert_allclose(fastnn.cross(T([1.0, 0, 0]), T([0.0, 1, 0])).numpy(), [0, 0, 1])
    np.testing.assert_allclose(fastnn.logaddexp(T([1000.0]), T([1000.0])).numpy(),
                               [1000 + math.log(2)])
    np.testing.assert_allclose(fastnn.logcumsumexp(T([0.0, 0.0]), 0).numpy(),
                               [0.0, math.log(2)])
    np.testing.assert_allclose(fastnn.quantile(T([1.0, 2.0, 3.0, 4.0]), 0.5).item(), 2.5)
    np.testing.assert_allclose(fastnn.cov(x).numpy(), np.cov(x.numpy()))
    np.testing.assert_allclose(fastnn.corrcoef(x).numpy(), np.corrcoef(x.numpy()))
    np.testing.assert_allclose(fastnn.trapezoid(T([1.0, 2.0, 3.0])).item(), 4.0)
    assert fastnn.broadcast_shapes((2, 1), (3,)) == (2, 3)
    assert fastnn.pi == math.pi and fastnn.inf == math.inf
    assert fastnn.mode(fastnn.tensor([1, 2, 2, 3])).values.item() == 2
    assert x.inverse().shape == (2, 2) and x.lgamma().shape == (2, 2)


def test_extras_gradients():
    a, b = RNG.standard_normal((4, 3)), RNG.standard_normal((5, 3))
    check_grad(lambda t: fastnn.cdist(t, T(b)).sum(), a)
    check_grad(lambda t: fastnn.kron(t, T([[1.0, 2.0]])).pow(2).sum(), a[:2, :2])
    check_grad(lambda t: fastnn.logaddexp(t, T(b[:4])).sum(), a)
    check_grad(lambda t: fastnn.quantile(t, 0.3, dim=0).sum(), a)
    check_grad(lambda t: fastnn.asinh(t).sum() + fastnn.atanh(t / 10).sum(), a)
    # cdist's gradient is zero, not nan, where two points coincide (as torch's)
    x = T(a, grad=True)
    fastnn.cdist(x, x).sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_sparse_coo_is_a_dense_stand_in():
    i = fastnn.tensor([[0, 1, 1], [2, 0, 0]])
    s = fastnn.sparse_coo_tensor(i, fastnn.tensor([3.0, 4.0, 5.0]), (2, 3))
    np.testing.assert_allclose(s.to_dense().numpy(), [[0, 0, 3], [9, 0, 0]])
    np.testing.assert_allclose(fastnn.sparse.mm(s, fastnn.ones(3, 1)).numpy(), [[3], [9]])
    np.testing.assert_allclose(fastnn.spmm(s.to_sparse(), fastnn.ones(3, 1)).numpy(),
                               [[3], [9]])


def test_jit_and_testing_helpers():
    @fastnn.jit.script
    def f(x):
        return x + 1
    assert f(1) == 2 and fastnn.jit.is_scripting() is False
    fastnn.testing.assert_close(fastnn.ones(2), fastnn.ones(2) + 1e-7)
    with pytest.raises(AssertionError, match="not close"):
        fastnn.testing.assert_close(fastnn.ones(2), fastnn.ones(2) * 2)
    with pytest.raises(AssertionError, match="dtype"):
        fastnn.testing.assert_close(fastnn.ones(2), fastnn.ones(2, dtype=fastnn.float64))


@needs_torch
def test_extras_match_torch():
    a = RNG.standard_normal((3, 3))
    pairs = [("cdist", lambda L, x: L.cdist(x, x * 2 + 1).sum()),
             ("logdet", lambda L, x: L.logdet(x @ x.T + L.eye(3, dtype=L.float64))),
             ("cholesky_solve", lambda L, x: L.cholesky_solve(
                 x, L.linalg.cholesky(x @ x.T + L.eye(3, dtype=L.float64))).sum()),
             ("kron", lambda L, x: L.kron(x, x).pow(2).sum()),
             ("logcumsumexp", lambda L, x: L.logcumsumexp(x, 1).sum()),
             ("quantile", lambda L, x: L.quantile(x, 0.7, dim=1).sum()),
             ("cov", lambda L, x: L.cov(x).pow(2).sum()),
             ("lgamma", lambda L, x: L.lgamma(x.abs() + 0.5).sum())]
    for name, f in pairs:
        ours = T(a, grad=True)
        out = f(fastnn, ours)
        out.backward()
        theirs = torch.tensor(a, requires_grad=True)
        ref = f(torch, theirs)
        ref.backward()
        assert out.item() == pytest.approx(ref.item(), rel=1e-10), name
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-8,
                                   atol=1e-12, err_msg=name)


# ---------------------------------------------------------------- 3-D layers
import fastnn.nn as fnn  # noqa: E402
import fastnn.nn.functional as FF  # noqa: E402

X5 = RNG.standard_normal((2, 4, 5, 6, 7))


def _conv3d_reference(x, w, stride, padding):
    """A direct loop over output positions (the definition of cross-correlation)."""
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding])
    k = w.shape[2:]
    out_size = [(xp.shape[2 + d] - k[d]) // stride[d] + 1 for d in range(3)]
    out = np.zeros((x.shape[0], w.shape[0], *out_size))
    for z, y, xx in np.ndindex(*out_size):
        win = xp[:, :, z * stride[0]:z * stride[0] + k[0], y * stride[1]:y * stride[1] + k[1],
                 xx * stride[2]:xx * stride[2] + k[2]]
        out[:, :, z, y, xx] = np.einsum("ncdhw,ocdhw->no", win, w)
    return out


def test_conv3d_matches_the_definition_and_finite_differences():
    w = RNG.standard_normal((3, 4, 2, 3, 2))
    got = FF.conv3d(T(X5), T(w), stride=(1, 2, 2), padding=(1, 0, 1)).numpy()
    np.testing.assert_allclose(got, _conv3d_reference(X5, w, (1, 2, 2), (1, 0, 1)), atol=1e-10)
    small = RNG.standard_normal((1, 2, 3, 3, 4))
    ws = RNG.standard_normal((2, 1, 2, 2, 2))
    check_grad(lambda t: (FF.conv3d(t, T(ws), stride=2, padding=1, groups=2) ** 2).sum(), small)
    check_grad(lambda t: (FF.conv3d(T(small), t, padding=1, groups=2) ** 2).sum(), ws)
    check_grad(lambda t: (FF.conv_transpose3d(t, T(ws), stride=2, padding=1, groups=2)
                          ** 2).sum(), small)
    check_grad(lambda t: (FF.max_pool3d(t, 2, 1) ** 2).sum(), small)
    check_grad(lambda t: (FF.avg_pool3d(t, 2, 1, 1, count_include_pad=False) ** 2).sum(), small)


def test_3d_modules_shapes_state_dict_and_errors():
    fastnn.manual_seed(0)
    net = fnn.Sequential(fnn.Conv3d(4, 6, 3, padding=1), fnn.BatchNorm3d(6), fnn.ReLU(),
                         fnn.MaxPool3d(2), fnn.Dropout3d(0.2), fnn.AdaptiveAvgPool3d(1),
                         fnn.Flatten())
    out = net(fastnn.tensor(X5, dtype=fastnn.float32))
    assert out.shape == (2, 6) and out.dtype == fastnn.float32
    assert list(net.state_dict())[:2] == ["0.weight", "0.bias"]
    assert "1.running_mean" in net.state_dict()
    up = fnn.ConvTranspose3d(4, 2, 2, stride=2)
    assert up(fastnn.zeros(1, 4, 2, 3, 4)).shape == (1, 2, 4, 6, 8)
    assert fnn.AvgPool3d(2)(fastnn.zeros(4, 4, 4, 4)).shape == (4, 2, 2, 2)   # unbatched
    assert fnn.InstanceNorm3d(4)(fastnn.randn(2, 4, 3, 3, 3)).shape == (2, 4, 3, 3, 3)
    with pytest.raises(ValueError, match="5-D"):
        FF.conv3d(fastnn.zeros(2, 3), fastnn.zeros(1, 1, 1, 1, 1))
    with pytest.raises(RuntimeError, match="channels"):
        FF.conv3d(fastnn.zeros(1, 3, 4, 4, 4), fastnn.zeros(2, 2, 1, 1, 1))
    with pytest.raises(ValueError, match="5D"):
        fnn.BatchNorm3d(3)(fastnn.zeros(2, 3, 4, 4))


@needs_torch
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_3d_layers_match_torch():
    import torch.nn.functional as TF
    w = RNG.standard_normal((6, 2, 3, 2, 3))
    wt = RNG.standard_normal((4, 3, 3, 2, 3))
    cases = [
        (lambda L, x, w: L.conv3d(x, w, stride=(1, 2, 1), padding=1, dilation=(1, 1, 2),
                                  groups=2), w),
        (lambda L, x, w: L.conv3d(x, w, padding="same", groups=2), w),
        (lambda L, x, w: L.conv_transpose3d(x, w, stride=2, padding=1, output_padding=1,
                                            groups=2), wt),
        (lambda L, x, w: L.max_pool3d(x, 3, 2, 1) * w.sum(), w),
        (lambda L, x, w: L.max_pool3d(x, 2, 2, ceil_mode=True) * w.sum(), w),
        (lambda L, x, w: L.avg_pool3d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
         * w.sum(), w),
        (lambda L, x, w: L.adaptive_avg_pool3d(x, (2, 3, None)) * w.sum(), w),
        (lambda L, x, w: L.adaptive_max_pool3d(x, (2, 3, 4)) * w.sum(), w),
    ]
    for i, (f, wa) in enumerate(cases):
        xs = [T(X5, grad=True), T(wa, grad=True)]
        ts = [torch.tensor(X5, requires_grad=True), torch.tensor(wa, requires_grad=True)]
        ours, ref = f(FF, *xs), f(TF, *ts)
        g = RNG.standard_normal(tuple(ref.shape))
        (ours * T(g)).sum().backward()
        (ref * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(ours.detach().numpy(), ref.detach().numpy(), atol=1e-10,
                                   err_msg=str(i))
        for a, b in zip(xs, ts):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-9,
                                       err_msg=str(i))
    _, idx = FF.max_pool3d(T(X5), 3, 2, 1, return_indices=True)
    _, tidx = TF.max_pool3d(torch.tensor(X5), 3, 2, 1, return_indices=True)
    assert np.array_equal(idx.numpy(), tidx.numpy())


# ---------------------------------------------------------------- weight and spectral norm
def test_weight_norm_old_and_new_apis():
    from fastnn.nn.utils import parametrizations, weight_norm, remove_weight_norm
    fastnn.manual_seed(0)
    lin = fnn.Linear(4, 3)
    w0 = lin.weight.detach().numpy().copy()
    weight_norm(lin)
    assert sorted(dict(lin.named_parameters())) == ["bias", "weight_g", "weight_v"]
    np.testing.assert_allclose(lin.weight_g.detach().numpy()[:, 0], np.linalg.norm(w0, axis=1),
                               rtol=1e-6)
    x = fastnn.randn(5, 4)
    np.testing.assert_allclose(lin(x).detach().numpy(), x.numpy() @ w0.T +
                               lin.bias.detach().numpy(), rtol=1e-5, atol=1e-6)
    lin(x).sum().backward()
    assert lin.weight_g.grad is not None and lin.weight_v.grad is not None
    remove_weight_norm(lin)
    assert sorted(lin.state_dict()) == ["bias", "weight"]
    new = parametrizations.weight_norm(fnn.Linear(4, 3))
    assert list(new.state_dict()) == ["bias", "parametrizations.weight.original0",
                                      "parametrizations.weight.original1"]
    assert type(new).__name__ == "ParametrizedLinear" and isinstance(new, fnn.Linear)
    new(x).pow(2).sum().backward()
    assert new.parametrizations.weight.original0.grad.shape == (3, 1)


def test_spectral_norm_bounds_the_largest_singular_value():
    from fastnn.nn.utils import parametrizations, spectral_norm
    fastnn.manual_seed(0)
    for make in (lambda: spectral_norm(fnn.Linear(6, 5)),
                 lambda: parametrizations.spectral_norm(fnn.Linear(6, 5))):
        m = make()
        for _ in range(30):                 # power iteration converges in training mode
            m(fastnn.randn(2, 6))
        m.eval()
        s = np.linalg.svd(m.weight.detach().numpy(), compute_uv=False)
        assert s[0] == pytest.approx(1.0, rel=1e-3)


def test_register_parametrization_and_remove():
    import fastnn.nn.utils.parametrize as P

    class Symmetric(fnn.Module):
        def forward(self, X):
            return X.triu() + X.triu(1).transpose(-1, -2)

    lin = fnn.Linear(3, 3)
    P.register_parametrization(lin, "weight", Symmetric())
    w = lin.weight.detach().numpy()
    assert np.allclose(w, w.T) and P.is_parametrized(lin, "weight")
    assert list(lin.state_dict()) == ["bias", "parametrizations.weight.original"]
    with P.cached():
        assert lin.weight is lin.weight
    P.remove_parametrizations(lin, "weight")
    assert type(lin) is fnn.Linear and list(lin.state_dict()) == ["bias", "weight"]
    assert np.allclose(lin.weight.detach().numpy(), w)
    with pytest.raises(ValueError):
        P.remove_parametrizations(lin, "weight")


@needs_torch
def test_parametrizations_match_torch_step_for_step(tmp_path):
    """The same program under both libraries (only the imports differ): identical random u, v
    and the same losses over three SGD steps."""
    import subprocess
    import sys
    from test_programs import to_fastnn, _env
    src = '''
import json
import torch
import torch.nn as nn
from torch.nn.utils import spectral_norm
from torch.nn.utils import parametrizations as P
torch.manual_seed(0)
a = spectral_norm(nn.Linear(4, 3))
c = P.weight_norm(nn.Linear(4, 3))
d = P.spectral_norm(nn.Conv2d(2, 3, 3))
x = torch.randn(5, 4)
params = list(a.parameters()) + list(c.parameters()) + list(d.parameters())
opt = torch.optim.SGD(params, lr=0.01)
losses = []
for step in range(3):
    opt.zero_grad()
    loss = a(x).pow(2).sum() + c(x).pow(2).sum() + d(torch.ones(1, 2, 5, 5)).pow(2).sum()
    loss.backward()
    opt.step()
    losses.append(loss.item())
print(json.dumps({"losses": losses, "u": a.weight_u.tolist(),
                  "u2": d.parametrizations.weight[0]._u.tolist()}))
'''
    out = {}
    for lib, code in (("torch", src), ("fastnn", to_fastnn(src))):
        path = tmp_path / f"prog_{lib}.py"
        path.write_text(code)
        proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                              env=_env(), timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[lib] = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(out["fastnn"]["losses"], out["torch"]["losses"], rtol=1e-5)
    np.testing.assert_allclose(out["fastnn"]["u"], out["torch"]["u"], rtol=1e-5)
    np.testing.assert_allclose(out["fastnn"]["u2"], out["torch"]["u2"], rtol=1e-5)


def test_torch_module_paths():
    import fastnn.nn.modules.linear as linear_mod
    from fastnn.nn.modules.batchnorm import _BatchNorm
    assert linear_mod.Linear is fnn.Linear
    assert isinstance(fnn.BatchNorm3d(2), _BatchNorm)
    assert fnn.modules.dropout.Dropout is fnn.Dropout
    with pytest.raises(AttributeError):
        fnn.modules.linear._NoSuchThing
    import fastnn.serialization as S
    with S.safe_globals([fnn.Linear]):
        pass


# ---------------------------------------------------------------- fft
def test_fft_values_match_numpy():
    x = RNG.standard_normal((3, 8))
    np.testing.assert_allclose(fastnn.fft.rfft(T(x)).numpy(), np.fft.rfft(x), atol=1e-12)
    np.testing.assert_allclose(fastnn.fft.fft(T(x), n=10, norm="ortho").numpy(),
                               np.fft.fft(x, n=10, norm="ortho"), atol=1e-12)
    np.testing.assert_allclose(fastnn.fft.irfft(fastnn.fft.rfft(T(x))).numpy(), x, atol=1e-12)
    np.testing.assert_allclose(fastnn.fft.fftn(T(x)).numpy(), np.fft.fftn(x), atol=1e-12)
    np.testing.assert_allclose(fastnn.fft.irfftn(fastnn.fft.rfftn(T(x)), s=x.shape).numpy(), x,
                               atol=1e-12)
    assert fastnn.fft.rfft(fastnn.ones(4)).dtype == fastnn.complex64
    assert fastnn.fft.fftshift(fastnn.arange(5)).tolist() == [3, 4, 0, 1, 2]
    assert fastnn.fft.ifftshift(fastnn.fft.fftshift(fastnn.arange(6))).tolist() == \
        list(range(6))
    np.testing.assert_allclose(fastnn.fft.fftfreq(5).numpy(), np.fft.fftfreq(5), rtol=1e-6)
    np.testing.assert_allclose(fastnn.fft.rfftfreq(6, 0.5).numpy(), np.fft.rfftfreq(6, 0.5),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="normalization"):
        fastnn.fft.fft(T(x), norm="bad")


@pytest.mark.parametrize("norm", [None, "forward", "ortho"])
def test_fft_gradients_match_finite_differences(norm):
    x = RNG.standard_normal((2, 6))
    w = T(RNG.standard_normal((2, 4)))
    check_grad(lambda t: (fastnn.fft.rfft(t, norm=norm).abs() ** 2 * w).sum(), x)
    check_grad(lambda t: (fastnn.fft.fft(t, n=8, norm=norm).abs() ** 3).sum(), x)
    check_grad(lambda t: (fastnn.fft.irfft(fastnn.fft.rfft(t) * 1.0, n=7, norm=norm)
                          ** 2).sum(), x)
    check_grad(lambda t: (fastnn.fft.rfft2(t, norm=norm).abs()).sum(), x)
    check_grad(lambda t: fastnn.view_as_real(fastnn.fft.fft(t, norm=norm)).pow(2).sum()
               + fastnn.fft.fft(t).imag.sum() + fastnn.fft.fft(t).real.pow(2).sum(), x)


@needs_torch
def test_fft_complex_input_gradients_match_torch():
    z = RNG.standard_normal((3, 5)) + 1j * RNG.standard_normal((3, 5))

    def f(L, t):
        return ((L.fft.irfft(t, n=8) ** 2 * L.arange(8, dtype=L.float64)).sum()
                + L.fft.ifft(t, n=7, norm="ortho").abs().sum()
                + L.angle(L.fft.fft(t)).sum() + L.fft.irfftn(t, norm="forward").pow(2).sum())
    ours, ref = fastnn.tensor(z, requires_grad=True), \
        torch.tensor(z, requires_grad=True)
    a, b = f(fastnn, ours), f(torch, ref)
    a.backward()
    b.backward()
    assert a.item() == pytest.approx(b.item(), rel=1e-10)
    np.testing.assert_allclose(ours.grad.numpy(), ref.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_summary_writer_logs_json_lines(tmp_path):
    from fastnn.utils.tensorboard import SummaryWriter
    with SummaryWriter(tmp_path / "run") as w:
        w.add_scalar("loss", fastnn.tensor(0.5), 3)
        w.add_scalars("acc", {"train": 0.9, "val": 0.8}, 3)
        w.add_histogram("w", fastnn.arange(4.0), 3)
        w.add_image("img", fastnn.zeros(3, 4, 4), 3)
    recs = [json.loads(line) for line in open(tmp_path / "run" / "events.jsonl")]
    assert [(r["tag"], r.get("value")) for r in recs[:3]] == [("loss", 0.5), ("acc/train", 0.9),
                                                               ("acc/val", 0.8)]
    assert recs[3]["mean"] == 1.5 and recs[4]["shape"] == [3, 4, 4]
    with pytest.raises(RuntimeError, match="closed"):
        w.add_scalar("loss", 1.0)


def test_backend_flag_modules_import_and_tensor_kind_properties():
    import fastnn.backends.cudnn as cudnn
    cudnn.benchmark = True
    assert fastnn.backends.cudnn.benchmark is True
    cudnn.benchmark = False
    x = fastnn.zeros(2)
    assert not (x.is_xpu or x.is_mps or x.is_sparse or x.is_meta)
    assert x.layout == fastnn.strided


def test_distribution_module_paths():
    from fastnn.distributions.categorical import Categorical as C2
    from fastnn.distributions.kl import kl_divergence as kl2
    from fastnn.distributions.normal import Normal as N2
    assert N2 is Normal and C2 is Categorical and kl2 is kl_divergence
