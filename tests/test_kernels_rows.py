"""Conformance: softmax, log_softmax, cross-entropy, MSE and layer norm on every backend."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from fastnn import kernels as K

from conftest import fd_backend, max_rows, max_size, numeric_grad, skip_if_missing, tol

ROWS = st.sampled_from([1, 2, 5, 17, 64])
COLS = st.sampled_from([1, 2, 3, 7, 16, 17, 33, 100, 1000])
DTYPES = st.sampled_from([np.float32, np.float64])


def _close(a, b, dtype, scale=1.0):
    t = tol(dtype)
    np.testing.assert_allclose(a, b, rtol=t["rtol"] * 5, atol=t["atol"] * 5 * scale)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@given(rows=ROWS, cols=COLS, dtype=DTYPES, seed=st.integers(0, 3))
def test_softmax_family_matches_reference(backend, op, rows, cols, dtype, seed):
    skip_if_missing(backend, op)
    rows, cols = max_rows(backend, rows), max_size(backend, cols)
    rng = np.random.default_rng(seed)
    lead = 1 if backend == "cuda" else 3    # the simulator pays per row
    x = (rng.standard_normal((lead, rows, cols)) * 5).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    fwd, bwd = getattr(K, op), getattr(K, op + "_backward")
    y = fwd(x, backend=backend)
    _close(y, fwd(x, backend="numpy"), dtype)
    _close(bwd(dy, y, backend=backend), bwd(dy, y, backend="numpy"), dtype)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_family_large_logits_and_nan(backend, op):
    skip_if_missing(backend, op)
    fwd = getattr(K, op)
    for dtype in (np.float32, np.float64):
        x = np.array([[1e4, 0.0, -1e4, 1e4 - 1], [-1e4, -1e4, -1e4, -1e4],
                      [1.0, np.nan, 2.0, 3.0]], dtype)
        y = fwd(x, backend=backend)
        assert np.isfinite(y[:2]).all()
        assert np.isnan(y[2]).all()
        _close(y[:2], fwd(x[:2], backend="numpy"), dtype)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_family_finite_differences(backend, op):
    skip_if_missing(backend, op)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 6))
    dy = rng.standard_normal((3, 6))
    fwd, bwd = getattr(K, op), getattr(K, op + "_backward")
    num = numeric_grad(lambda: float((fwd(x, backend=fd_backend(backend)) * dy).sum()), x)
    np.testing.assert_allclose(bwd(dy, fwd(x, backend=backend), backend=backend), num,
                               rtol=1e-6, atol=1e-8)


@given(rows=ROWS, cols=COLS, dtype=DTYPES, seed=st.integers(0, 3))
def test_cross_entropy_matches_reference(backend, rows, cols, dtype, seed):
    skip_if_missing(backend, "cross_entropy")
    rows, cols = max_rows(backend, rows), max_size(backend, cols)
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((rows, cols)) * 3).astype(dtype)
    targets = rng.integers(0, cols, rows)
    targets[::3] = -100
    for reduction in ("mean", "sum", "none"):
        loss, grad = K.cross_entropy(logits, targets, reduction=reduction, backend=backend)
        rloss, rgrad = K.cross_entropy(logits, targets, reduction=reduction, backend="numpy")
        assert grad.dtype == dtype
        _close(loss, rloss, dtype, scale=10)
        _close(grad, rgrad, dtype)
        assert (grad[::3] == 0).all()


def test_cross_entropy_finite_differences_and_ignore_index(backend):
    skip_if_missing(backend, "cross_entropy")
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((7, 5))
    targets = np.array([0, 4, 2, 7, 1, 7, 3])   # 7 is the ignore_index here
    f = lambda: float(K.cross_entropy(logits, targets, ignore_index=7,
                                      backend=fd_backend(backend))[0])
    num = numeric_grad(f, logits)
    loss, grad = K.cross_entropy(logits, targets, ignore_index=7, backend=backend)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)
    keep = targets != 7
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert loss == pytest.approx(-logp[keep.nonzero()[0], targets[keep]].mean(), rel=1e-12)


def test_cross_entropy_large_logits_stay_finite(backend):
    skip_if_missing(backend, "cross_entropy")
    logits = np.array([[1e4, -1e4, 0.0], [0.0, 0.0, 1e4]], np.float32)
    loss, grad = K.cross_entropy(logits, np.array([0, 1]), backend=backend)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    assert loss == pytest.approx(5000.0, rel=1e-5)


def test_cross_entropy_all_ignored_is_nan_like_pytorch(backend):
    skip_if_missing(backend, "cross_entropy")
    loss, grad = K.cross_entropy(np.ones((2, 3)), np.array([-100, -100]), backend=backend)
    assert np.isnan(loss) and (grad == 0).all()


@given(n=st.sampled_from([1, 3, 16, 17, 1000]), dtype=DTYPES)
def test_mse_loss(backend, n, dtype):
    skip_if_missing(backend, "mse_loss")
    n = max_size(backend, n)
    rng = np.random.default_rng(n)
    p = rng.standard_normal((n, 2)).astype(dtype)
    t = rng.standard_normal((n, 2)).astype(dtype)
    loss, grad = K.mse_loss(p, t, backend=backend)
    rloss, rgrad = K.mse_loss(p, t, backend="numpy")
    assert grad.shape == p.shape and grad.dtype == dtype
    _close(loss, rloss, dtype, scale=10)
    _close(grad, rgrad, dtype)


def test_mse_loss_finite_differences(backend):
    skip_if_missing(backend, "mse_loss")
    rng = np.random.default_rng(9)
    p, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    num = numeric_grad(lambda: float(K.mse_loss(p, t, backend=backend)[0]), p)
    np.testing.assert_allclose(K.mse_loss(p, t, backend=backend)[1], num, rtol=1e-6, atol=1e-9)


@given(rows=ROWS, cols=COLS, dtype=DTYPES, seed=st.integers(0, 3))
def test_layer_norm_matches_reference(backend, rows, cols, dtype, seed):
    skip_if_missing(backend, "layer_norm")
    rows, cols = max_rows(backend, rows), max_size(backend, cols)
    rng = np.random.default_rng(seed)
    lead = 1 if backend == "cuda" else 2    # the simulator pays per row
    x = (rng.standard_normal((lead, rows, cols)) * 3 + 1).astype(dtype)
    w = rng.standard_normal(cols).astype(dtype)
    b = rng.standard_normal(cols).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y, mean, rstd = K.layer_norm(x, w, b, backend=backend)
    ry, rmean, rrstd = K.layer_norm(x, w, b, backend="numpy")
    assert mean.shape == x.shape[:-1] and rstd.shape == x.shape[:-1]
    for got, ref in ((y, ry), (mean, rmean), (rstd, rrstd)):
        assert got.dtype == dtype
        _close(got, ref, dtype, scale=10)
    grads = K.layer_norm_backward(dy, x, w, mean, rstd, backend=backend)
    refs = K.layer_norm_backward(dy, x, w, rmean, rrstd, backend="numpy")
    for got, ref in zip(grads, refs):
        _close(got, ref, dtype, scale=10 * rows)


def test_layer_norm_finite_differences(backend):
    skip_if_missing(backend, "layer_norm_backward")
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 7))
    w, b = rng.standard_normal(7), rng.standard_normal(7)
    dy = rng.standard_normal((4, 7))
    f = lambda: float((K.layer_norm(x, w, b, backend=fd_backend(backend))[0] * dy).sum())
    _, mean, rstd = K.layer_norm(x, w, b, backend=backend)
    dx, dw, db = K.layer_norm_backward(dy, x, w, mean, rstd, backend=backend)
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dw, numeric_grad(f, w), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(db, numeric_grad(f, b), rtol=1e-6, atol=1e-8)


def test_row_kernels_bad_inputs(backend):
    with pytest.raises(ValueError, match="softmax_backward: dy has shape"):
        K.softmax_backward(np.ones((2, 3)), np.ones((3, 2)), backend=backend)
    with pytest.raises(IndexError, match=r"cross_entropy: targets value 5 is out of range \[0, 3\)"):
        K.cross_entropy(np.ones((2, 3)), np.array([0, 5]), backend=backend)
    with pytest.raises(IndexError, match="value -1 is out of range"):
        K.cross_entropy(np.ones((2, 3)), np.array([-1, 0]), backend=backend)
    with pytest.raises(TypeError, match="targets must be an integer array"):
        K.cross_entropy(np.ones((2, 3)), np.array([0.0, 1.0]), backend=backend)
    with pytest.raises(ValueError, match=r"targets has shape \(3,\), expected \(2,\)"):
        K.cross_entropy(np.ones((2, 3)), np.array([0, 1, 2]), backend=backend)
    with pytest.raises(ValueError, match="cross_entropy: logits must be 2-D"):
        K.cross_entropy(np.ones(3), np.array([0]), backend=backend)
    with pytest.raises(ValueError, match="mse_loss: pred has shape"):
        K.mse_loss(np.ones(3), np.ones(4), backend=backend)
    with pytest.raises(ValueError, match=r"layer_norm: weight has shape \(4,\), expected \(3,\)"):
        K.layer_norm(np.ones((2, 3)), np.ones(4), backend=backend)
    with pytest.raises(ValueError, match="reduction must be"):
        K.cross_entropy(np.ones((2, 3)), np.array([0, 1]), reduction="avg", backend=backend)


@pytest.mark.parametrize("bad", [3, 4, -1, -(2 ** 63), 2 ** 63 - 1])
def test_trusted_cross_entropy_still_rejects_out_of_range_targets(backend, bad):
    """The trusted door's one-max range check (targets read as uint64) must catch every
    out-of-range class, negative ones and the int64 extremes included, before a kernel would
    write grad[row, target] with it; in-range targets keep the checked door's numbers."""
    skip_if_missing(backend, "cross_entropy")
    from fastnn.kernels import trusted as T
    from fastnn.kernels.dispatch import use_backend
    logits = np.random.default_rng(3).standard_normal((4, 3)).astype(np.float32)
    with use_backend(backend):
        for row in range(4):
            targets = np.array([0, 1, 2, 0], np.int64)
            targets[row] = bad
            with pytest.raises(IndexError, match=f"value {bad} is out of range"):
                T.cross_entropy(logits, targets)
        good = np.array([2, 0, 1, 2], np.int64)
        for reduction in ("mean", "sum"):
            loss, grad = T.cross_entropy(logits, good, reduction=reduction)
            rloss, rgrad = K.cross_entropy(logits, good, reduction=reduction, backend="numpy")
            _close(loss, rloss, np.float32)
            _close(grad, rgrad, np.float32)
            assert loss.dtype == np.float32
