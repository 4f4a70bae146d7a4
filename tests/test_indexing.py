"""Selection, sampling and scans (fastnn/indexing.py) and their kernels (topk, multinomial).

- The kernels on every backend against the numpy reference, beyond the conformance suite's
  examples: bigger rows, strided input, ties and NaN, exact agreement of the samples.
- multinomial's distribution: chi-square tests with a fixed seed and a generous bound (PyTorch's
  random stream cannot be reproduced, so its samples are not compared, only their law).
- Every function against PyTorch in float64, forward and gradients (ties, dims, dtypes), and
  the bad inputs: PyTorch's error types and words.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastnn
import fastnn.indexing as I
from fastnn import kernels as K

from conftest import max_size, skip_if_missing

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def _tied(rng, shape, dtype=np.float64):
    """Values on a coarse grid: many ties."""
    return (np.round(rng.standard_normal(shape) * 3) / 2).astype(dtype)


def _ft(a, grad=False):
    return fastnn.tensor(np.array(a), requires_grad=grad)


def _tt(a, grad=False):
    return torch.tensor(np.array(a), requires_grad=grad)


def _np(t):
    return t.detach().numpy() if torch is not None and isinstance(t, torch.Tensor) else \
        np.asarray(t._data if isinstance(t, fastnn.Tensor) else t)


def _grad(t):
    g = t.grad
    return np.asarray(g._data if isinstance(g, fastnn.Tensor) else g)


# ================================================================ kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_topk_kernel_matches_reference(backend, dtype):
    skip_if_missing(backend, "topk")
    rng = np.random.default_rng(0)
    c = max_size(backend, 3000)
    cases = [(_tied(rng, (4, c), dtype), min(50, c)),
             (rng.standard_normal((3, c)).astype(dtype), c),
             (_tied(rng, (5, 17), dtype), 1), (np.full((2, 40), np.nan, dtype), 7)]
    x = _tied(rng, (6, 2 * c), dtype)[:, ::2]                     # strided
    x[0, :5] = np.nan
    x[1, 3:9] = np.inf
    x[2, 2:8] = -np.inf
    cases.append((x, 9))
    for x, k in cases:
        for largest in (True, False):
            for srt in (True, False):
                got = K.topk(x, k, largest, srt, backend=backend)
                want = K.topk(x, k, largest, srt, backend="numpy")
                for g, w in zip(got, want):
                    assert g.dtype == w.dtype and g.shape == w.shape
                    np.testing.assert_array_equal(g, w)


def test_topk_kernel_order_rules():
    x = np.array([[1.0, 3.0, np.nan, 3.0, -0.0, 0.0, np.nan, 3.0]])
    v, i = K.topk(x, 5, largest=True, backend="numpy")
    assert i.tolist() == [[2, 6, 1, 3, 7]]          # NaN first, ties by index
    v, i = K.topk(x, 4, largest=False)
    assert i.tolist() == [[4, 5, 0, 1]]             # -0.0 == 0.0: index order
    v, i = K.topk(x, 3, largest=True, sorted=False)
    assert i.tolist() == [[1, 2, 6]]                # sorted=False: index order
    assert i.dtype == np.int64


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multinomial_kernel_identical_on_every_backend(backend, replacement, dtype):
    skip_if_missing(backend, "multinomial")
    rng = np.random.default_rng(1)
    n, c = (3, 40) if backend == "cuda" else (16, 5000)
    p = rng.random((n, c)).astype(dtype) ** 4          # skewed weights, some tiny
    p[:, ::7] = 0
    for s in (1, 5):
        u = rng.random((n, s))
        got = K.multinomial(p, u, replacement, backend=backend)
        want = K.multinomial(p, u, replacement, backend="numpy")
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.int64
        assert (p[np.arange(n)[:, None], got] > 0).all()    # never a zero-probability category


def test_multinomial_kernel_ends_of_the_unit_interval(cpu_backend):
    p = np.array([[0.0, 0.5, 0.0, 0.5, 0.0]])
    u = np.array([[0.0, np.nextafter(1.0, 0.0)]])
    np.testing.assert_array_equal(K.multinomial(p, u, True, backend=cpu_backend), [[1, 3]])
    # without replacement past the non-zero categories: the zero ones, uniformly
    u = np.array([[0.1, 0.1, 0.0, 0.5, 0.99]])
    out = K.multinomial(p, u, False, backend=cpu_backend)
    assert sorted(out[0].tolist()) == [0, 1, 2, 3, 4] and set(out[0, :2]) == {1, 3}


def test_multinomial_kernel_bad_input():
    p = np.ones((2, 3))
    with pytest.raises(ValueError, match="inf"):
        K.multinomial(np.array([[1.0, np.nan]]), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="element < 0"):
        K.multinomial(np.array([[1.0, -1.0]]), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="sum of probabilities"):
        K.multinomial(np.zeros((1, 3)), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="without replacement"):
        K.multinomial(p, np.zeros((2, 4)), replacement=False)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        K.multinomial(p, np.ones((2, 1)))
    with pytest.raises(ValueError, match="shape"):
        K.multinomial(p, np.zeros((3, 1)))
    with pytest.raises(TypeError, match="dtype"):
        K.multinomial(np.ones((2, 3), np.int64), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="out of range"):
        K.topk(np.ones((2, 3)), 4)
    with pytest.raises(TypeError, match="dtype"):
        K.topk(np.ones((2, 3), np.int32), 1)


@given(n=st.integers(1, 5), c=st.integers(1, 300), data=st.data(),
       dtype=st.sampled_from([np.float32, np.float64]), ties=st.booleans(),
       largest=st.booleans(), srt=st.booleans(), strided=st.booleans())
def test_topk_kernel_hypothesis(backend, n, c, data, dtype, ties, largest, srt, strided):
    skip_if_missing(backend, "topk")
    c = max_size(backend, c)
    k = data.draw(st.integers(1, c))
    rng = np.random.default_rng(n * 1000 + c)
    x = _tied(rng, (n, 2 * c if strided else c), dtype) if ties else \
        rng.standard_normal((n, 2 * c if strided else c)).astype(dtype)
    if strided:
        x = x[:, ::2]
    got = K.topk(x, k, largest, srt, backend=backend)
    want = K.topk(x, k, largest, srt, backend="numpy")
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@given(n=st.integers(1, 4), c=st.integers(1, 200), s=st.integers(1, 12), zeros=st.booleans(),
       replacement=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_multinomial_kernel_hypothesis(backend, n, c, s, zeros, replacement, dtype):
    skip_if_missing(backend, "multinomial")
    c = max_size(backend, c)
    if not replacement:
        s = min(s, c)
    rng = np.random.default_rng(n * 100000 + c * 100 + s)
    p = rng.random((n, c)).astype(dtype)
    if zeros:
        p[rng.random((n, c)) < 0.7] = 0
        p[:, 0] = 0.5                        # every row keeps a non-zero category
    u = rng.random((n, s))
    got = K.multinomial(p, u, replacement, backend=backend)
    np.testing.assert_array_equal(got, K.multinomial(p, u, replacement, backend="numpy"))
    if not replacement:
        assert all(len(set(r)) == s for r in got.tolist())


# ================================================================ multinomial's law
def _chi2(counts, expected):
    keep = expected > 0
    assert counts[~keep].sum() == 0
    return float((((counts - expected) ** 2)[keep] / expected[keep]).sum()), int(keep.sum() - 1)


def _bound(dof):
    return dof + 8 * np.sqrt(2 * dof) + 10        # ~8 sigma: a fixed seed never flakes


@pytest.mark.parametrize("dtype", [fastnn.float32, fastnn.float64])
def test_multinomial_with_replacement_distribution(current_cpu_backend, dtype):
    p = np.array([0.05, 0.0, 0.3, 0.15, 0.2, 0.1, 0.0, 0.2])
    g = fastnn.Generator().manual_seed(123)
    n = 40000
    ids = I.multinomial(fastnn.tensor(p * 7, dtype=dtype), n, True, generator=g)
    stat, dof = _chi2(np.bincount(ids._data, minlength=8), n * p)
    assert stat < _bound(dof), (stat, dof)


def test_multinomial_without_replacement_distribution(current_cpu_backend):
    """Two draws without replacement: P(i then j) = p_i p_j / (1 - p_i), PyTorch's law."""
    p = np.array([0.4, 0.3, 0.2, 0.1, 0.0])
    rows = 20000
    g = fastnn.Generator().manual_seed(7)
    ids = I.multinomial(fastnn.tensor(np.tile(p, (rows, 1))), 2, False, generator=g)._data
    assert (ids[:, 0] != ids[:, 1]).all()
    counts = np.bincount(ids[:, 0] * 5 + ids[:, 1], minlength=25).astype(float)
    expected = np.array([p[i] * p[j] / (1 - p[i]) if i != j else 0.0
                         for i in range(5) for j in range(5)]) * rows
    stat, dof = _chi2(counts, expected)
    assert stat < _bound(dof), (stat, dof)


def test_multinomial_determinism_and_backends():
    p = fastnn.tensor(np.random.default_rng(3).random((8, 300)))
    runs = []
    for be in ["numpy", "numba", "cython"]:
        if be not in fastnn.available_backends():
            continue
        with fastnn.use_backend(be):
            for repl in (True, False):
                g = fastnn.Generator().manual_seed(11)
                runs.append((repl, I.multinomial(p, 4, repl, generator=g)._data))
    for repl in (True, False):
        outs = [r for flag, r in runs if flag == repl]
        for o in outs[1:]:
            np.testing.assert_array_equal(o, outs[0])
    fastnn.manual_seed(5)
    a = p.multinomial(3)._data
    fastnn.manual_seed(5)
    b = p.multinomial(3)._data
    np.testing.assert_array_equal(a, b)
    assert a.shape == (8, 3) and a.dtype == np.int64
    assert I.multinomial(fastnn.tensor([0.2, 0.8]), 3, True).shape == (3,)


@needs_torch
def test_multinomial_errors_as_torch():
    cases = [([0.5, float("nan")], 1, True), ([0.5, -1.0], 1, True), ([0.0, 0.0], 1, True),
             ([0.5, 0.5], 3, False), ([0.5, 0.5], 0, True)]
    for probs, n, repl in cases:
        with pytest.raises(RuntimeError) as want:
            torch.multinomial(torch.tensor(probs), n, repl)
        with pytest.raises(RuntimeError) as got:
            I.multinomial(fastnn.tensor(probs), n, repl)
        assert str(want.value).split(" (")[0] in str(got.value)
    with pytest.raises(RuntimeError, match="floating"):
        I.multinomial(fastnn.tensor([1, 2]), 1)
    # past the non-zero categories PyTorch returns zero-probability ones; so does fastnn
    out = I.multinomial(fastnn.tensor([0.0, 1.0, 0.0]), 3, False)._data
    assert out[0] == 1 and sorted(out.tolist()) == [0, 1, 2]


# ================================================================ topk, sort vs PyTorch
@needs_torch
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((4, 9), 1), ((4, 9), 0), ((3, 5, 6), 1),
                                       ((3, 5, 6), -1), ((), 0)])
@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_torch(current_cpu_backend, shape, dim, largest):
    rng = np.random.default_rng(2)
    x = rng.permutation(np.arange(int(np.prod(shape)), dtype=np.float64)).reshape(shape) / 7
    n = x.shape[dim] if x.ndim else 1
    dy = rng.standard_normal(x.shape[:dim % max(x.ndim, 1)] + (min(3, n),) +
                             x.shape[dim % max(x.ndim, 1) + 1:] if x.ndim else ())
    for k in sorted({1, min(3, n), n}):
        a, b = _ft(x, True), _tt(x, True)
        got = I.topk(a, k, dim, largest)
        want = torch.topk(b, k, dim, largest)
        np.testing.assert_array_equal(_np(got.values), _np(want.values))
        np.testing.assert_array_equal(_np(got.indices), _np(want.indices))
        assert got.indices.dtype == fastnn.int64 and isinstance(got, tuple)
        if k == min(3, n):
            (got.values * _ft(dy)).sum().backward()
            (want.values * _tt(dy)).sum().backward()
            np.testing.assert_allclose(_grad(a), b.grad.numpy())
    got = a.topk(1, dim=dim, largest=largest, sorted=False)      # the method
    assert got.values.shape == tuple(want.values.shape[:dim % max(x.ndim, 1)]) + (1,) + \
        tuple(want.values.shape[dim % max(x.ndim, 1) + 1:]) if x.ndim else got.values.shape == ()


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_topk_ties_nan_and_dtypes(current_cpu_backend, dtype):
    rng = np.random.default_rng(4)
    x = _tied(rng, (5, 40)).astype(dtype)
    if dtype in (np.float32, np.float64):
        x[0, [3, 9]] = np.nan
        x[1, 4] = np.inf
    for largest in (True, False):
        for k in (1, 6, 40):
            got = I.topk(_ft(x), k, 1, largest)
            want = torch.topk(torch.from_numpy(x), k, 1, largest)
            np.testing.assert_array_equal(_np(got.values), want.values.numpy())
            assert got.values.dtype == x.dtype
            # indices: PyTorch leaves ties unspecified; each must point at its value, distinct
            gi = _np(got.indices)
            np.testing.assert_array_equal(np.take_along_axis(x, gi, 1), want.values.numpy())
            assert all(len(set(r)) == k for r in gi.tolist())
            # fastnn's rule: among equal values the lower index first
            gv = _np(got.values)
            same = (gv[:, 1:] == gv[:, :-1]) | (np.isnan(gv[:, 1:]) & np.isnan(gv[:, :-1]))
            assert (gi[:, 1:] > gi[:, :-1])[same].all()


def test_topk_float16_and_bad_input():
    x = fastnn.tensor(np.array([1.0, 4.0, 2.0], np.float16))
    r = I.topk(x, 2)
    assert r.values.dtype == np.float16 and r.indices._data.tolist() == [1, 2]
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        I.topk(fastnn.ones(3), 4)
    with pytest.raises(IndexError, match="Dimension out of range"):
        I.topk(fastnn.ones(3), 1, dim=1)


@needs_torch
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.int8, np.bool_])
def test_sort_argsort_match_torch_stable(current_cpu_backend, descending, dtype):
    rng = np.random.default_rng(5)
    x = _tied(rng, (4, 6, 25)).astype(dtype) if dtype != np.bool_ else rng.random((4, 6, 25)) > .5
    if dtype in (np.float32, np.float64):
        x[0, 0, [1, 7, 8]] = np.nan
        x[1, 1, 2] = -np.inf
        x[1, 1, 3] = np.inf
    if dtype == np.int8:
        x[0, 0, :3] = [-128, 127, -128]
    for dim in (-1, 0, 1):
        got = I.sort(_ft(x), dim, descending)
        want = torch.sort(torch.from_numpy(x), dim=dim, descending=descending, stable=True)
        np.testing.assert_array_equal(_np(got.values), want.values.numpy())
        np.testing.assert_array_equal(_np(got.indices), want.indices.numpy())
        np.testing.assert_array_equal(
            _np(I.argsort(_ft(x), dim, descending)),
            torch.argsort(torch.from_numpy(x), dim=dim, descending=descending,
                          stable=True).numpy())
        np.testing.assert_array_equal(_np(_ft(x).sort(dim, descending=descending).values),
                                      want.values.numpy())
    np.testing.assert_array_equal(_np(I.msort(_ft(x))), torch.msort(torch.from_numpy(x)).numpy())


@needs_torch
def test_sort_gradient_matches_torch():
    rng = np.random.default_rng(6)
    x = _tied(rng, (3, 4, 7))
    dy = rng.standard_normal(x.shape)
    for dim, desc in ((0, False), (1, True), (-1, False)):
        a, b = _ft(x, True), _tt(x, True)
        (I.sort(a, dim, desc).values * _ft(dy)).sum().backward()
        (torch.sort(b, dim=dim, descending=desc, stable=True).values * _tt(dy)).sum()\
            .backward()
        np.testing.assert_allclose(_grad(a), b.grad.numpy())
    a, b = _ft(x, True), _tt(x, True)
    (I.msort(a) * _ft(dy)).sum().backward()
    (torch.msort(b) * _tt(dy)).sum().backward()
    np.testing.assert_allclose(_grad(a), b.grad.numpy())
    s = I.sort(fastnn.tensor(3.0)).values                  # 0-d
    assert s.shape == () and float(s._data) == 3.0


@needs_torch
def test_kthvalue_median_cummax_cummin_match_torch():
    rng = np.random.default_rng(20)
    x = _tied(rng, (4, 7, 6))
    xn = x.copy()
    xn[1, 2, 3] = np.nan
    xn[2, 5, 0] = np.nan
    xn[2, 1, 0] = np.nan
    for dim in (0, 1, -1):
        for keepdim in (False, True):
            for k in (1, 3):
                g = I.kthvalue(_ft(x), k, dim, keepdim)
                t = torch.kthvalue(_tt(x), k, dim, keepdim)
                np.testing.assert_array_equal(_np(g.values), t.values.numpy())
                # PyTorch's index among equal values is unspecified: it must hold the value
                gi = _np(g.indices) if keepdim else np.expand_dims(_np(g.indices), dim)
                picked = np.take_along_axis(x, gi, dim)
                np.testing.assert_array_equal(picked if keepdim else picked.squeeze(dim),
                                              t.values.numpy())
            for data in (x, xn):
                g = I.median(_ft(data), dim, keepdim)
                t = torch.median(_tt(data), dim, keepdim)
                np.testing.assert_array_equal(_np(g.values), t.values.numpy())
                np.testing.assert_array_equal(_np(g.indices), t.indices.numpy())
        for name in ("cummax", "cummin"):
            for data in (x, xn):
                g = getattr(I, name)(_ft(data), dim)
                t = getattr(torch, name)(_tt(data), dim)
                np.testing.assert_array_equal(_np(g.values), t.values.numpy())
                np.testing.assert_array_equal(_np(g.indices), t.indices.numpy())
    for data in (x, xn):
        np.testing.assert_array_equal(_np(I.median(_ft(data))), torch.median(_tt(data)).numpy())
    # gradients, float64, on distinct values (PyTorch's kthvalue breaks ties its own way)
    x = rng.permutation(168).reshape(4, 7, 6) / 10.0
    for fn in (lambda m, a: m.kthvalue(a, 3, 1), lambda m, a: m.median(a, 1),
               lambda m, a: m.cummax(a, 1), lambda m, a: m.cummin(a, 1)):
        a, ta = _ft(x, True), _tt(x, True)
        gv, tv = fn(I, a).values, fn(torch, ta).values
        w = rng.standard_normal(tuple(tv.shape))
        (gv * _ft(w)).sum().backward()
        (tv * _tt(w)).sum().backward()
        np.testing.assert_allclose(_grad(a), ta.grad.numpy())
    a, ta = _ft(x, True), _tt(x, True)
    I.median(a).backward()
    torch.median(ta).backward()
    np.testing.assert_allclose(_grad(a), ta.grad.numpy())
    assert _ft(x).median(0, keepdim=True).values.shape == (1, 7, 6)
    with pytest.raises(IndexError, match="out of range"):
        I.kthvalue(fastnn.ones(3), 4)


@needs_torch
def test_take_along_dim_matches_torch():
    rng = np.random.default_rng(21)
    x = rng.standard_normal((3, 1, 5))
    idx = rng.integers(0, 5, (1, 4, 2))
    a, ta = _ft(x, True), _tt(x, True)
    g = I.take_along_dim(a, _ft(idx), 2)
    t = torch.take_along_dim(ta, torch.from_numpy(idx), 2)
    np.testing.assert_array_equal(_np(g), t.detach().numpy())
    w = rng.standard_normal(tuple(t.shape))
    (g * _ft(w)).sum().backward()
    (t * _tt(w)).sum().backward()
    np.testing.assert_allclose(_grad(a), ta.grad.numpy())
    flat = rng.integers(0, 15, 6)
    np.testing.assert_array_equal(_np(_ft(x).take_along_dim(_ft(flat))),
                                  torch.take_along_dim(_tt(x), torch.from_numpy(flat)).numpy())


# ================================================================ gather, scatter, index_*
@needs_torch
def test_gather_matches_torch():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 5, 6))
    for dim, ishape in ((0, (7, 5, 6)), (1, (4, 3, 2)), (2, (2, 5, 9)), (-1, (1, 1, 1))):
        n = x.shape[dim]
        idx = rng.integers(0, n, ishape)                   # repeats: gradients accumulate
        dy = rng.standard_normal(ishape)
        a, b = _ft(x, True), _tt(x, True)
        got, want = I.gather(a, dim, _ft(idx)), torch.gather(b, dim, torch.from_numpy(idx))
        np.testing.assert_array_equal(_np(got), want.detach().numpy())
        (got * _ft(dy)).sum().backward()
        (want * _tt(dy)).sum().backward()
        np.testing.assert_allclose(_grad(a), b.grad.numpy(), rtol=1e-12)
        np.testing.assert_array_equal(_np(a.gather(dim, _ft(idx))), want.detach().numpy())


def test_gather_bad_index():
    x = fastnn.zeros(3, 4)
    for bad in ([[5]], [[-1]]):
        with pytest.raises(IndexError, match="out of bounds for dimension 0 with size 3"):
            I.gather(x, 0, fastnn.tensor(bad))
        with pytest.raises(RuntimeError, match="out of bounds"):
            I.gather(x, 0, fastnn.tensor(bad))
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        I.gather(x, 0, fastnn.tensor([1]))
    with pytest.raises(RuntimeError, match="no larger than self"):
        I.gather(x, 0, fastnn.zeros(1, 5, dtype=fastnn.int64))
    with pytest.raises(RuntimeError, match="int64"):
        I.gather(x, 0, fastnn.zeros(1, 1))


@needs_torch
def test_scatter_matches_torch():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 6))
    src = rng.standard_normal((3, 5))
    # distinct targets per column (scatter with repeats is order-dependent in PyTorch too)
    idx = np.stack([rng.permutation(4)[:3] for _ in range(5)], 1)          # (3, 5)
    big = rng.standard_normal((4, 7))       # src larger than index: its head is used
    np.testing.assert_array_equal(
        _np(I.scatter(_ft(x), 0, _ft(idx), _ft(big))),
        torch.scatter(_tt(x), 0, torch.from_numpy(idx), _tt(big)).numpy())
    dy = rng.standard_normal(x.shape)
    a, s = _ft(x, True), _ft(src, True)
    ta, ts = _tt(x, True), _tt(src, True)
    got = I.scatter(a, 0, _ft(idx), s)
    want = torch.scatter(ta, 0, torch.from_numpy(idx), ts)
    np.testing.assert_array_equal(_np(got), want.detach().numpy())
    (got * _ft(dy)).sum().backward()
    (want * _tt(dy)).sum().backward()
    np.testing.assert_allclose(_grad(a), ta.grad.numpy())
    np.testing.assert_allclose(_grad(s), ts.grad.numpy())
    # a scalar value, positional as in PyTorch, and keyword
    for got in (I.scatter(_ft(x), 0, _ft(idx), 2.5), _ft(x).scatter(0, _ft(idx), value=2.5)):
        np.testing.assert_array_equal(
            _np(got), torch.scatter(_tt(x), 0, torch.from_numpy(idx), 2.5).numpy())
    # reduce= with repeated indices
    ridx = rng.integers(0, 4, (3, 6))
    for reduce in ("add", "multiply"):
        np.testing.assert_allclose(
            _np(I.scatter(_ft(x), 0, _ft(ridx), _ft(big), reduce=reduce)),
            _tt(x).scatter(0, torch.from_numpy(ridx), _tt(big), reduce=reduce).numpy())
    # in place, along dim 1
    t, tt = _ft(x), _tt(x)
    v0 = t._version
    out = t.scatter_(1, _ft(idx.T[:4, :3]), _ft(big))
    tt.scatter_(1, torch.from_numpy(idx.T[:4, :3]), _tt(big))
    assert out is t and t._version == v0 + 1
    np.testing.assert_array_equal(_np(t), tt.numpy())


@needs_torch
def test_scatter_add_matches_torch():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, 4, 3))
    for dim in (0, 1, 2):
        ishape = list(x.shape)
        ishape[dim] = 7
        ishape[(dim + 1) % 3] -= 1                          # smaller than input elsewhere
        idx = rng.integers(0, x.shape[dim], ishape)         # repeats accumulate
        src = rng.standard_normal(ishape)
        dy = rng.standard_normal(x.shape)
        a, s, ta, ts = _ft(x, True), _ft(src, True), _tt(x, True), _tt(src, True)
        got = I.scatter_add(a, dim, _ft(idx), s)
        want = torch.scatter_add(ta, dim, torch.from_numpy(idx), ts)
        np.testing.assert_allclose(_np(got), want.detach().numpy(), rtol=1e-12)
        (got * _ft(dy)).sum().backward()
        (want * _tt(dy)).sum().backward()
        np.testing.assert_allclose(_grad(a), ta.grad.numpy())
        np.testing.assert_allclose(_grad(s), ts.grad.numpy())
        t = _ft(x)
        v0 = t._version
        assert t.scatter_add_(dim, _ft(idx), _ft(src)) is t and t._version == v0 + 1
        np.testing.assert_allclose(_np(t), want.detach().numpy(), rtol=1e-12)
    with pytest.raises(IndexError, match="out of bounds"):
        fastnn.zeros(3).scatter_add_(0, fastnn.tensor([3]), fastnn.ones(1))


@needs_torch
def test_scatter_add_inplace_autograd():
    """scatter_add_ on a non-leaf records its gradient; on a leaf that requires grad it is
    PyTorch's error."""
    rng = np.random.default_rng(10)
    x, src = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    idx = np.array([[0, 3, 3], [0, 1, 3]])
    a, s, ta, ts = _ft(x, True), _ft(src, True), _tt(x, True), _tt(src, True)
    y = a * 2
    y.scatter_add_(0, _ft(idx), s)
    ty = ta * 2
    ty.scatter_add_(0, torch.from_numpy(idx), ts)
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    np.testing.assert_allclose(_grad(a), ta.grad.numpy())
    np.testing.assert_allclose(_grad(s), ts.grad.numpy())
    with pytest.raises(RuntimeError, match="leaf Variable"):
        _ft(x, True).scatter_add_(0, _ft(idx), s)


@needs_torch
@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_matches_torch(reduce, include_self):
    rng = np.random.default_rng(11)
    x, src = rng.standard_normal((4, 5)), rng.standard_normal((6, 5))
    idx = rng.integers(0, 3, (6, 5))                        # row 3 is never a target
    got = I.scatter_reduce(_ft(x), 0, _ft(idx), _ft(src), reduce, include_self=include_self)
    want = torch.scatter_reduce(_tt(x), 0, torch.from_numpy(idx), _tt(src), reduce,
                                include_self=include_self)
    np.testing.assert_allclose(_np(got), want.numpy(), rtol=1e-12)


@needs_torch
def test_index_select_and_index_add_match_torch():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((5, 4, 3))
    for dim in (0, 1, 2):
        idx = rng.integers(0, x.shape[dim], 6)              # repeats
        a, ta = _ft(x, True), _tt(x, True)
        got = I.index_select(a, dim, _ft(idx))
        want = torch.index_select(ta, dim, torch.from_numpy(idx))
        np.testing.assert_array_equal(_np(got), want.detach().numpy())
        dy = rng.standard_normal(want.shape)
        (got * _ft(dy)).sum().backward()
        (want * _tt(dy)).sum().backward()
        np.testing.assert_allclose(_grad(a), ta.grad.numpy())
        src = rng.standard_normal(want.shape)
        a, s, ta, ts = _ft(x, True), _ft(src, True), _tt(x, True), _tt(src, True)
        got = I.index_add(a, dim, _ft(idx), s, alpha=0.5)
        want = torch.index_add(ta, dim, torch.from_numpy(idx), ts, alpha=0.5)
        np.testing.assert_allclose(_np(got), want.detach().numpy(), rtol=1e-12)
        dy = rng.standard_normal(x.shape)
        (got * _ft(dy)).sum().backward()
        (want * _tt(dy)).sum().backward()
        np.testing.assert_allclose(_grad(a), ta.grad.numpy())
        np.testing.assert_allclose(_grad(s), ts.grad.numpy())
        t = _ft(x)
        v0 = t._version
        assert t.index_add_(dim, _ft(idx), _ft(src), alpha=0.5) is t and t._version == v0 + 1
        np.testing.assert_allclose(_np(t), want.detach().numpy(), rtol=1e-12)
    np.testing.assert_array_equal(_np(_ft(x).index_select(1, _ft(np.array(2)))),
                                  _tt(x).index_select(1, torch.tensor(2)).numpy())
    for bad in (5, -1):
        with pytest.raises(IndexError, match="index out of range in self"):
            I.index_select(fastnn.zeros(5), 0, fastnn.tensor([0, bad]))
        with pytest.raises(RuntimeError, match="out of bounds"):
            fastnn.zeros(5).index_add_(0, fastnn.tensor([bad]), fastnn.ones(1))
    with pytest.raises(RuntimeError, match="does not fit"):
        fastnn.zeros(5, 2).index_add_(0, fastnn.tensor([1]), fastnn.ones(2, 2))


# ================================================================ counting and searching
@needs_torch
def test_nonzero_argwhere_bincount_unique_match_torch():
    rng = np.random.default_rng(13)
    x = rng.integers(-2, 3, (4, 5)) * (rng.random((4, 5)) > 0.4)
    np.testing.assert_array_equal(_np(I.nonzero(_ft(x))), torch.nonzero(_tt(x)).numpy())
    np.testing.assert_array_equal(_np(_ft(x).argwhere()), torch.argwhere(_tt(x)).numpy())
    for g, w in zip(_ft(x).nonzero(as_tuple=True), torch.nonzero(_tt(x), as_tuple=True)):
        np.testing.assert_array_equal(_np(g), w.numpy())
    for s in (0.0, 2.0):
        g, w = I.nonzero(_ft(s)), torch.nonzero(torch.tensor(s))
        assert tuple(g.shape) == tuple(w.shape)
        assert [len(_np(t)) for t in I.nonzero(_ft(s), as_tuple=True)] == \
            [len(t) for t in torch.nonzero(torch.tensor(s), as_tuple=True)]
    assert I.nonzero(_ft(x)).dtype == fastnn.int64

    ids = rng.integers(0, 6, 30)
    for wdt in (np.float32, np.float64, np.int64):
        w = rng.standard_normal(30).astype(wdt) if wdt != np.int64 else rng.integers(0, 9, 30)
        for minlength in (0, 10):
            g = I.bincount(_ft(ids), _ft(w), minlength)
            t = torch.bincount(torch.from_numpy(ids), torch.from_numpy(w), minlength)
            assert str(g.dtype) == str(t.dtype)
            np.testing.assert_allclose(_np(g), t.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(_np(_ft(ids).bincount(minlength=9)),
                                  torch.bincount(torch.from_numpy(ids), minlength=9).numpy())
    assert I.bincount(_ft(ids)).dtype == fastnn.int64
    np.testing.assert_array_equal(_np(I.bincount(fastnn.tensor(np.zeros(0, np.int64)),
                                                 minlength=3)), [0, 0, 0])
    with pytest.raises(RuntimeError, match="non-negative integral"):
        I.bincount(fastnn.tensor([1, -1]))
    with pytest.raises(RuntimeError, match="non-negative integral"):
        I.bincount(fastnn.tensor([1.0]))
    with pytest.raises(RuntimeError, match="same length"):
        I.bincount(fastnn.tensor([1, 2]), fastnn.tensor([1.0]))

    u = rng.integers(0, 5, (6, 3)).astype(np.float64)
    u[2] = u[4]
    for dim in (None, 0, 1):
        for inv in (False, True):
            for cnt in (False, True):
                g = I.unique(_ft(u), return_inverse=inv, return_counts=cnt, dim=dim)
                t = torch.unique(_tt(u), return_inverse=inv, return_counts=cnt, dim=dim)
                g, t = (g, t) if isinstance(t, tuple) else ((g,), (t,))
                assert len(g) == len(t)
                for a, b in zip(g, t):
                    np.testing.assert_array_equal(_np(a), b.numpy())
                    assert str(a.dtype) == str(b.dtype)
    np.testing.assert_array_equal(_np(_ft(u).unique()), torch.unique(_tt(u)).numpy())
    nan = np.array([np.nan, 1.0, np.nan, 0.0])
    for g, t in zip(I.unique(_ft(nan), return_inverse=True, return_counts=True),
                    torch.unique(_tt(nan), return_inverse=True, return_counts=True)):
        np.testing.assert_array_equal(_np(g), t.numpy())


@needs_torch
def test_searchsorted_and_bucketize_match_torch():
    rng = np.random.default_rng(14)
    seq = np.sort(_tied(rng, (3, 12)), axis=1)
    vals = _tied(rng, (3, 5))
    for right in (False, True):
        np.testing.assert_array_equal(
            _np(I.searchsorted(_ft(seq), _ft(vals), right=right)),
            torch.searchsorted(_tt(seq), _tt(vals), right=right).numpy())
        np.testing.assert_array_equal(
            _np(I.searchsorted(_ft(seq[0]), _ft(vals), side="right" if right else "left")),
            torch.searchsorted(_tt(seq[0]), _tt(vals), side="right" if right else "left")
            .numpy())
        np.testing.assert_array_equal(
            _np(I.bucketize(_ft(vals), _ft(seq[1]), right=right)),
            torch.bucketize(_tt(vals), _tt(seq[1]), right=right).numpy())
    g = I.searchsorted(_ft(seq[0]), 0.25, out_int32=True)
    t = torch.searchsorted(_tt(seq[0]), 0.25, out_int32=True)
    assert g.shape == tuple(t.shape) and g.dtype == fastnn.int32 and int(g) == int(t)
    perm = rng.permutation(12)
    np.testing.assert_array_equal(
        _np(I.searchsorted(_ft(seq[0][perm]), _ft(vals[0]), sorter=_ft(np.argsort(perm)))),
        torch.searchsorted(_tt(seq[0]), _tt(vals[0])).numpy())
    with pytest.raises(RuntimeError, match="opposites"):
        I.searchsorted(_ft(seq[0]), _ft(vals), right=True, side="left")


# ================================================================ scans
@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.int64, np.bool_])
def test_cumsum_cumprod_forward_match_torch(dtype):
    rng = np.random.default_rng(15)
    x = rng.integers(-3, 4, (3, 4, 5)).astype(dtype) if dtype != np.bool_ else \
        rng.random((3, 4, 5)) > 0.5
    if dtype in (np.float32, np.float64):
        x = rng.standard_normal((3, 4, 5)).astype(dtype)
    for dim in (0, 1, -1):
        for name in ("cumsum", "cumprod"):
            g = getattr(I, name)(_ft(x), dim)
            t = getattr(torch, name)(torch.from_numpy(x), dim)
            assert str(g.dtype) == str(t.dtype), (name, g.dtype, t.dtype)
            np.testing.assert_allclose(_np(g), t.numpy(), rtol=1e-6 if dtype == np.float32
                                       else 1e-12)
            np.testing.assert_array_equal(_np(getattr(_ft(x), name)(dim)), _np(g))
    g = I.cumsum(_ft(x), 1, dtype=fastnn.float64)
    np.testing.assert_allclose(_np(g), torch.cumsum(torch.from_numpy(x), 1,
                                                    dtype=torch.float64).numpy())
    assert I.cumsum(fastnn.tensor(2.0), 0).shape == ()


@needs_torch
def test_float32_scans_round_once_as_torch():
    """PyTorch's CPU cumsum/cumprod accumulate float32 in float64 and round once; so does
    fastnn, bit for bit."""
    x = np.random.default_rng(19).random(100000).astype(np.float32)
    np.testing.assert_array_equal(_np(I.cumsum(_ft(x), 0)), torch.cumsum(_tt(x), 0).numpy())
    y = 1 + x / 1e4
    np.testing.assert_array_equal(_np(I.cumprod(_ft(y), 0)), torch.cumprod(_tt(y), 0).numpy())


@needs_torch
def test_cumsum_cumprod_gradients_match_torch_with_zeros():
    rng = np.random.default_rng(16)
    x = rng.uniform(0.5, 1.5, (6, 7)) * rng.choice([-1, 1], (6, 7))
    x[1, 3] = 0                       # one zero
    x[2, [1, 5]] = 0                  # two zeros
    x[3, 0] = 0                       # at the start
    x[4, 6] = 0                       # at the end
    x[5, :] = 0                       # all zeros
    dy = rng.standard_normal(x.shape)
    for dim in (1, 0):
        for name in ("cumsum", "cumprod"):
            a, ta = _ft(x, True), _tt(x, True)
            (getattr(I, name)(a, dim) * _ft(dy)).sum().backward()
            (getattr(torch, name)(ta, dim) * _tt(dy)).sum().backward()
            np.testing.assert_allclose(_grad(a), ta.grad.numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name} dim={dim}")


def test_cumprod_gradient_by_finite_differences():
    from conftest import numeric_grad
    rng = np.random.default_rng(17)
    x = rng.uniform(0.5, 1.5, (3, 5))
    x[0, 2] = 0
    x[1, [0, 4]] = 0
    dy = rng.standard_normal(x.shape)
    a = _ft(x, True)
    (I.cumprod(a, 1) * _ft(dy)).sum().backward()
    want = numeric_grad(lambda: float((np.cumprod(x, 1) * dy).sum()), x)
    np.testing.assert_allclose(_grad(a), want, rtol=1e-6, atol=1e-8)


def test_inplace_scans_and_versions():
    t = fastnn.tensor([[1.0, 2.0, 3.0]])
    v0 = t._version
    assert t.cumsum_(1) is t and t._version == v0 + 1
    np.testing.assert_array_equal(t._data, [[1.0, 3.0, 6.0]])
    t.cumprod_(1)
    np.testing.assert_array_equal(t._data, [[1.0, 3.0, 18.0]])


def test_methods_attached():
    for name in ("topk", "sort", "argsort", "msort", "multinomial", "unique", "gather",
                 "scatter", "scatter_", "scatter_add", "scatter_add_", "index_select",
                 "index_add", "index_add_", "nonzero", "argwhere", "bincount", "cumsum",
                 "cumprod"):
        assert callable(getattr(fastnn.Tensor, name)), name


@needs_torch
def test_top_k_top_p_sampling_step_as_in_pytorch_programs():
    """The sampling step of nanoGPT / Hugging Face style generation, written as those programs
    write it (topk threshold, sort, cumsum of softmax, scatter back, multinomial)."""
    import fastnn.nn.functional as F
    import torch.nn.functional as TF

    def step(lib, fn, logits):
        topk, sort, cumsum = (getattr(lib, n, getattr(I, n)) for n in ("topk", "sort", "cumsum"))
        logits = lib.tensor(logits)
        v, _ = topk(logits, 5)
        logits[logits < v[:, [-1]]] = -float("inf")
        sorted_logits, sorted_indices = sort(logits, descending=True)
        cum = cumsum(fn.softmax(sorted_logits, dim=-1), dim=-1)
        remove = cum > 0.8
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = 0
        logits = logits.masked_fill(remove.scatter(1, sorted_indices, remove), -float("inf"))
        return fn.softmax(logits, dim=-1)

    x = np.random.default_rng(18).standard_normal((3, 20)).astype(np.float32)
    got, want = step(fastnn, F, x), step(torch, TF, x)
    np.testing.assert_allclose(_np(got), want.numpy(), rtol=1e-6, atol=1e-7)
    ids = got.multinomial(num_samples=1)
    assert tuple(ids.shape) == (3, 1) and ids.dtype == fastnn.int64
    assert (_np(got)[np.arange(3), _np(ids)[:, 0]] > 0).all()


@needs_torch
def test_masked_select_matches_torch():
    """masked_select lives in fastnn/tensor.py; issue 11's item 5 lists it with these."""
    rng = np.random.default_rng(22)
    x = rng.standard_normal((3, 4))
    for m in (x > 0, (x > 0)[0]):                       # a broadcast mask too
        a, ta = _ft(x, True), _tt(x, True)
        g = fastnn.masked_select(a, fastnn.tensor(m))
        t = torch.masked_select(ta, torch.from_numpy(m))
        np.testing.assert_array_equal(_np(g), t.detach().numpy())
        w = rng.standard_normal(tuple(t.shape))
        (g * _ft(w)).sum().backward()
        (t * _tt(w)).sum().backward()
        np.testing.assert_allclose(_grad(a), ta.grad.numpy())


@needs_torch
def test_double_backward_matches_torch():
    """create_graph=True through the selection ops: the gradient of |dL/dx|^2 as PyTorch's."""
    rng = np.random.default_rng(23)
    x = rng.standard_normal((3, 5))
    idx = np.array([[0, 4, 4], [1, 1, 2], [3, 0, 2]])
    perm = np.array([[2, 0, 1], [0, 2, 1], [1, 0, 2]])          # distinct per column: scatter
    cases = [
        (lambda m, v: m.topk(v, 2, 1).values, None),
        (lambda m, v: m.sort(v, 0).values, None),
        (lambda m, v: m.median(v, 1).values, None),
        (lambda m, v: m.cummax(v, 1).values, None),
        (lambda m, v: m.cumsum(v, 1) * m.cumsum(v, 1), None),
        (lambda m, v, i: m.gather(v, 1, i), idx),
        (lambda m, v, i: m.scatter_add(v, 1, i, v[:, :3] * 2), idx),
        (lambda m, v, i: m.scatter(v, 0, i, v[:, :3] * 2), perm),
        (lambda m, v, i: m.index_select(v, 1, i[0]), idx),
        (lambda m, v, i: m.index_add(v, 1, i[0], v[:, :3], alpha=2), idx),
    ]
    for fn, ix in cases:
        a, t = _ft(x, True), _tt(x, True)
        args_f = () if ix is None else (_ft(ix),)
        args_t = () if ix is None else (torch.from_numpy(ix),)
        g, = fastnn.autograd.grad(fn(I, a * a * a, *args_f).sum(), a, create_graph=True)
        gt, = torch.autograd.grad(fn(torch, t * t * t, *args_t).sum(), t, create_graph=True)
        np.testing.assert_allclose(_np(g), gt.detach().numpy(), rtol=1e-12)
        (g * g).sum().backward()
        (gt * gt).sum().backward()
        np.testing.assert_allclose(_grad(a), t.grad.numpy(), rtol=1e-10)
