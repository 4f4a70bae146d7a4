"""Tensor ops and autograd: every op's gradient against finite differences (float64) on every CPU
backend, and outputs and gradients against PyTorch when it is installed."""
import numpy as np
import pytest

import fastnn
from fastnn.kernels import dispatch as backends

from conftest import numeric_grad

try:
    import torch
except ImportError:  # the PyTorch comparisons skip
    torch = None

from conftest import CPU_BACKENDS as CPU  # noqa: E402,F401


@pytest.fixture
def backend(current_cpu_backend):
    """Here every test runs on each CPU backend, made current (see conftest)."""
    return current_cpu_backend


def _pos(*shape):
    return np.random.default_rng(1).uniform(0.5, 2.0, shape)


def _rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# name -> (fn(lib, *tensors), input arrays). `lib` is fastnn or torch: the same code runs on both.
CASES = {
    "add_broadcast": (lambda L, a, b: a + b, [_rnd(2, 1, 3), _rnd(4, 1, seed=1)]),
    "add_scalar": (lambda L, a: 2.5 + a + 1, [_rnd(3, 4)]),
    "sub": (lambda L, a, b: a - b - (1.0 - a), [_rnd(3, 4), _rnd(4, seed=1)]),
    "mul": (lambda L, a, b: a * b * 3.0, [_rnd(3, 4), _rnd(3, 1, seed=1)]),
    "div": (lambda L, a, b: a / b + 2.0 / b - a / 4.0, [_rnd(3, 4), _pos(4)]),
    "pow_scalar": (lambda L, a: a ** 3 + a ** 2, [_rnd(3, 4)]),
    "pow_tensor": (lambda L, a, b: a ** b, [_pos(3, 4), _rnd(4, seed=1)]),
    "rpow": (lambda L, a: 2.0 ** a, [_rnd(5)]),
    "neg": (lambda L, a: -a, [_rnd(2, 3)]),
    "matmul_2d": (lambda L, a, b: a @ b, [_rnd(3, 4), _rnd(4, 5, seed=1)]),
    "matmul_batched_2d": (lambda L, a, b: a @ b, [_rnd(2, 3, 4), _rnd(4, 5, seed=1)]),
    "matmul_broadcast": (lambda L, a, b: a @ b, [_rnd(2, 1, 3, 4), _rnd(3, 4, 2, seed=1)]),
    "matmul_4d": (lambda L, a, b: a @ b.transpose(-2, -1),
                  [_rnd(2, 2, 3, 4), _rnd(2, 2, 5, 4, seed=1)]),
    "matmul_vec": (lambda L, a, b, c: (a @ b) @ c, [_rnd(3), _rnd(3, 4, seed=1), _rnd(4, seed=2)]),
    "sum_all": (lambda L, a: a.sum() * 1.0, [_rnd(3, 4)]),
    "sum_dim": (lambda L, a: a.sum(dim=1), [_rnd(3, 4, 2)]),
    "sum_dims_keepdim": (lambda L, a: a.sum(dim=(0, 2), keepdim=True), [_rnd(3, 4, 2)]),
    "mean": (lambda L, a: a.mean(), [_rnd(3, 4)]),
    "mean_dim": (lambda L, a: a.mean(dim=-1, keepdim=True), [_rnd(3, 4)]),
    "max_all": (lambda L, a: a.max(), [_rnd(3, 4)]),
    "max_dim": (lambda L, a: a.max(dim=1).values, [_rnd(3, 4)]),
    "max_dim_keepdim": (lambda L, a: a.max(dim=0, keepdim=True)[0], [_rnd(3, 4)]),
    "min_dim": (lambda L, a: a.min(dim=1).values, [_rnd(3, 4)]),
    "var": (lambda L, a: a.var(dim=1), [_rnd(3, 4)]),
    "reshape": (lambda L, a: a.reshape(4, 3) * L.arange(3).float().double(), [_rnd(3, 4)]),
    "view": (lambda L, a: a.view(-1), [_rnd(3, 4)]),
    "transpose": (lambda L, a: a.transpose(0, 2), [_rnd(2, 3, 4)]),
    "permute": (lambda L, a: a.permute(2, 0, 1), [_rnd(2, 3, 4)]),
    "T": (lambda L, a: a.T, [_rnd(2, 3)]),
    "getitem_slice": (lambda L, a: a[1:, ::2], [_rnd(3, 4)]),
    "getitem_int": (lambda L, a: a[1], [_rnd(3, 4)]),
    "getitem_repeated": (lambda L, a: a[[0, 2, 2, 0]], [_rnd(3, 4)]),
    "getitem_bool": (lambda L, a: a[a > 0], [_rnd(3, 4)]),
    "getitem_none_ellipsis": (lambda L, a: a[None, ..., 1], [_rnd(3, 4)]),
    "exp": (lambda L, a: a.exp(), [_rnd(3, 4)]),
    "log": (lambda L, a: a.log(), [_pos(3, 4)]),
    "sqrt": (lambda L, a: a.sqrt(), [_pos(3, 4)]),
    "abs": (lambda L, a: a.abs(), [_pos(3, 4) * np.sign(_rnd(3, 4))]),
    "cat": (lambda L, a, b: L.cat([a, b, a], dim=1), [_rnd(2, 3), _rnd(2, 2, seed=1)]),
    "stack": (lambda L, a, b: L.stack([a, b], dim=1), [_rnd(2, 3), _rnd(2, 3, seed=1)]),
    "split": (lambda L, a: a.split(2, dim=1)[1] * 2 + a.split([1, 4], dim=1)[0],
              [_rnd(3, 5)]),
    "chunk": (lambda L, a: a.chunk(3, dim=-1)[2], [_rnd(2, 6)]),
    "masked_fill": (lambda L, a, b: a.masked_fill(b > 0, -1.5), [_rnd(3, 4), _rnd(4, seed=1)]),
    "unsqueeze_squeeze": (lambda L, a: a.unsqueeze(1).squeeze(0) * a.unsqueeze(-1),
                          [_rnd(1, 4)]),
    "contiguous": (lambda L, a: a.T.contiguous(), [_rnd(3, 4)]),
    "expand": (lambda L, a: a.expand(2, 3, 4), [_rnd(3, 1)]),
    "where": (lambda L, a, b: L.where(a > b, a, b), [_rnd(3, 4), _rnd(3, 4, seed=1)]),
    "tril": (lambda L, a: L.tril(a), [_rnd(4, 4)]),
    "softmax_method": (lambda L, a: a.softmax(dim=0), [_rnd(3, 4)]),
    "relu_method": (lambda L, a: a.relu() + a.tanh() + a.sigmoid(), [_rnd(3, 4)]),
}


def _run(fn, arrays, seed=7):
    ts = [fastnn.tensor(x, requires_grad=True) for x in arrays]
    out = fn(fastnn, *ts)
    w = np.random.default_rng(seed).standard_normal(out.shape)
    (out * fastnn.tensor(w)).sum().backward()
    return out, w, ts


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_gradient_matches_finite_differences(case, backend):
    fn, arrays = CASES[case]
    arrays = [a.copy() for a in arrays]
    out, w, ts = _run(fn, arrays)
    assert out.dtype == np.float64

    def f():
        with fastnn.no_grad():
            return float((fn(fastnn, *[fastnn.tensor(a) for a in arrays])._data * w).sum())
    for x, t in zip(arrays, ts):
        grad = np.zeros_like(x) if t.grad is None else t.grad  # an input used only in a mask
        np.testing.assert_allclose(grad, numeric_grad(f, x), rtol=1e-6, atol=1e-7)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_torch(case, backend):
    fn, arrays = CASES[case]
    out, w, ts = _run(fn, arrays)
    tts = [torch.tensor(x, requires_grad=True) for x in arrays]
    tout = fn(torch, *tts)
    (tout * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(out._data, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    for t, tt in zip(ts, tts):
        assert (t.grad is None) == (tt.grad is None)
        if t.grad is not None:
            np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_float32_stays_float32_and_scalars_do_not_promote(backend):
    x = fastnn.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert x.dtype == np.float32
    y = ((x * 2.5 + 1) / 3.0 - 0.5) ** 2
    z = (y @ x).sum()
    assert y.dtype == np.float32 and z.dtype == np.float32
    z.backward()
    assert x.grad.dtype == np.float32


def test_construction_dtype_rules():
    assert fastnn.tensor(1.5).dtype == np.float32
    assert fastnn.tensor([1, 2]).dtype == np.int64
    assert fastnn.tensor(np.zeros(2)).dtype == np.float64
    assert fastnn.tensor(np.zeros(2, np.int32)).dtype == np.int32
    assert fastnn.tensor([1, 2], dtype=fastnn.float64).dtype == np.float64
    assert fastnn.zeros(2, 3).shape == (2, 3) and fastnn.ones((2,)).dtype == np.float32
    assert fastnn.arange(5).dtype == np.int64 and fastnn.arange(0, 1, 0.5).dtype == np.float32
    assert fastnn.zeros_like(fastnn.tensor(np.zeros(3))).dtype == np.float64
    src = np.ones(3)
    t = fastnn.tensor(src)
    src[0] = 5
    assert t._data[0] == 1, "tensor() copies its input"
    with pytest.raises(TypeError):
        fastnn.tensor([1, 2], requires_grad=True)


def test_manual_seed_makes_randn_reproducible():
    fastnn.manual_seed(3)
    a = fastnn.randn(4, 5)
    fastnn.manual_seed(3)
    b = fastnn.randn(4, 5)
    assert a.dtype == np.float32 and np.array_equal(a._data, b._data)


def test_gradients_accumulate_until_zeroed(backend):
    x = fastnn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for _ in range(3):
        (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 3 * 2 * x._data)
    x.grad = None
    (x * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad, np.ones(3))


def test_shared_subexpression_and_reuse(backend):
    # a node used twice gets the sum of both gradients; a leaf used by two ops as well
    x = fastnn.tensor(np.array([0.5, -1.0]), requires_grad=True)
    h = x.exp()
    y = (h * h + h).sum()
    y.backward()
    e = np.exp(x._data)
    np.testing.assert_allclose(x.grad, 2 * e * e + e)


def test_deep_graph_does_not_recurse(backend):
    x = fastnn.tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 0.0
    y.sum().backward()
    assert x.grad[0] == 1.0


def test_no_grad_and_detach(backend):
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    with fastnn.no_grad():
        y = x * 2
    assert not y.requires_grad
    z = (x * 2).detach()
    assert not z.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()

    @fastnn.no_grad()
    def f(t):
        return t * 3
    assert not f(x).requires_grad
    assert fastnn.is_grad_enabled()


def test_backward_twice_needs_retain_graph(backend):
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * x._data)
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_needs_scalar_or_gradient(backend):
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    y.backward(gradient=np.array([1.0, 10.0], np.float32))
    np.testing.assert_allclose(x.grad, [3.0, 30.0])


def test_comparisons_have_no_grad_and_tensor_stays_hashable():
    x = fastnn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for m in (x > 1.5, x >= 2, x < 2, x <= 2, x == 2, x != 2):
        assert m.dtype == np.bool_ and not m.requires_grad
    np.testing.assert_array_equal((x > 1.5)._data, [False, True, True])
    assert len({x, x}) == 1


def test_max_dim_returns_values_and_indices():
    x = fastnn.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    v, i = x.max(dim=1)
    np.testing.assert_array_equal(v._data, [5.0, 7.0])
    np.testing.assert_array_equal(i._data, [1, 0])
    np.testing.assert_array_equal(x.argmax(dim=1)._data, [1, 0])


def test_matmul_shape_mismatch_is_a_clear_error(backend):
    with pytest.raises(ValueError, match="cannot be multiplied"):
        fastnn.randn(2, 3) @ fastnn.randn(4, 5)


def test_to_dtype_carries_gradient(backend):
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    y = x.to(fastnn.float64)
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, [2.0, 4.0])
    assert x.to("cpu") is x and x.float() is x


def test_setitem_writes_data_but_not_into_the_graph():
    x = fastnn.zeros(3)
    x[1] = 5.0
    x[fastnn.tensor([0, 2])] = fastnn.tensor([1.0, 2.0])
    np.testing.assert_array_equal(x._data, [1.0, 5.0, 2.0])
    w = fastnn.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w[0] = 1.0
    with fastnn.no_grad():
        w[0] = 1.0
    assert w._data[0] == 1.0
