"""Conformance: embedding gather/scatter-add and the fused optimizer updates on every backend."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from fastnn import kernels as K

from conftest import max_size, numeric_grad, skip_if_missing, tol


@given(v=st.sampled_from([1, 5, 65]), c=st.sampled_from([1, 3, 16, 17, 100]),
       n=st.sampled_from([1, 7, 64, 300]), dtype=st.sampled_from([np.float32, np.float64]))
def test_embedding_forward_backward(backend, v, c, n, dtype):
    skip_if_missing(backend, "embedding")
    c, n = max_size(backend, c), max_size(backend, n)
    rng = np.random.default_rng(v * c + n)
    w = rng.standard_normal((v, c)).astype(dtype)
    ids = rng.integers(0, v, (2, n))   # repeats: the backward must add, not overwrite
    out = K.embedding(w, ids, backend=backend)
    assert out.shape == (2, n, c)
    np.testing.assert_array_equal(out, w[ids])
    dout = rng.standard_normal(out.shape).astype(dtype)
    dw = K.embedding_backward(dout, ids, v, backend=backend)
    ref = np.zeros((v, c))
    np.add.at(ref, ids.reshape(-1), dout.reshape(-1, c).astype(np.float64))
    np.testing.assert_allclose(dw, ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_embedding_backward_finite_differences(backend):
    skip_if_missing(backend, "embedding_backward")
    rng = np.random.default_rng(11)
    w = rng.standard_normal((4, 3))
    ids = np.array([[0, 3, 3], [1, 0, 3]])
    dout = rng.standard_normal((2, 3, 3))
    num = numeric_grad(lambda: float((K.embedding(w, ids, backend=backend) * dout).sum()), w)
    np.testing.assert_allclose(K.embedding_backward(dout, ids, 4, backend=backend), num,
                               rtol=1e-7, atol=1e-9)


def test_embedding_bad_inputs(backend):
    w = np.ones((4, 3), np.float32)
    with pytest.raises(IndexError, match=r"embedding: ids value 4 is out of range \[0, 4\)"):
        K.embedding(w, np.array([0, 4]), backend=backend)
    with pytest.raises(IndexError, match="ids value -1 is out of range"):
        K.embedding(w, np.array([-1]), backend=backend)
    with pytest.raises(TypeError, match="ids must be an integer array"):
        K.embedding(w, np.array([0.5]), backend=backend)
    with pytest.raises(IndexError, match="embedding_backward: ids value 9"):
        K.embedding_backward(np.ones((1, 3)), np.array([9]), 4, backend=backend)
    with pytest.raises(ValueError, match="embedding: weight must be 2-D"):
        K.embedding(np.ones(4), np.array([0]), backend=backend)


SGD_CASES = [dict(momentum=0.0), dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
             dict(momentum=0.8, dampening=0.3, weight_decay=0.01), dict(weight_decay=0.1)]


@pytest.mark.parametrize("opts", SGD_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_step_matches_reference(backend, opts, dtype):
    skip_if_missing(backend, "sgd_step")
    n = max_size(backend, 1037)
    rng = np.random.default_rng(12)
    p = rng.standard_normal((n,)).astype(dtype)
    p_ref = p.copy()
    buf, buf_ref = np.zeros_like(p), np.zeros_like(p)
    for step in range(4):
        g = rng.standard_normal(n).astype(dtype)
        K.sgd_step(p, g, buf, lr=0.05, first_step=step == 0, backend=backend, **opts)
        K.sgd_step(p_ref, g, buf_ref, lr=0.05, first_step=step == 0, backend="numpy", **opts)
    np.testing.assert_allclose(p, p_ref, **tol(dtype))
    if opts.get("momentum"):
        np.testing.assert_allclose(buf, buf_ref, **tol(dtype))


@pytest.mark.parametrize("opts", [dict(), dict(weight_decay=0.1), dict(weight_decay=0.1,
                                                                        decoupled=True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_step_matches_reference(backend, opts, dtype):
    skip_if_missing(backend, "adam_step")
    n = max_size(backend, 1037)
    rng = np.random.default_rng(13)
    p = rng.standard_normal((n,)).astype(dtype)
    state = [p, np.zeros_like(p), np.zeros_like(p)]
    ref = [x.copy() for x in state]
    for step in range(1, 5):
        g = rng.standard_normal(n).astype(dtype)
        K.adam_step(*state[:1], g, *state[1:], step=step, lr=0.01, backend=backend, **opts)
        K.adam_step(*ref[:1], g, *ref[1:], step=step, lr=0.01, backend="numpy", **opts)
    for got, want in zip(state, ref):
        np.testing.assert_allclose(got, want, rtol=tol(dtype)["rtol"] * 10,
                                   atol=tol(dtype)["atol"] * 10)


def test_adam_step_first_step_known_value(backend):
    skip_if_missing(backend, "adam_step")
    # After one bias-corrected Adam step every coordinate moves by lr * sign(grad) (eps aside).
    p = np.zeros((3, 2))
    g = np.array([[1.0, -2.0], [3.0, -4.0], [0.5, 9.0]])
    K.adam_step(p, g, np.zeros_like(p), np.zeros_like(p), step=1, lr=0.1, eps=0.0,
                backend=backend)
    np.testing.assert_allclose(p, -0.1 * np.sign(g), rtol=1e-12)


def test_optimizer_bad_inputs(backend):
    p = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"sgd_step: grad has shape \(3,\)"):
        K.sgd_step(p, np.zeros(3, np.float32), lr=0.1, backend=backend)
    with pytest.raises(ValueError, match="needs a momentum_buffer"):
        K.sgd_step(p, np.zeros(4, np.float32), lr=0.1, momentum=0.9, backend=backend)
    with pytest.raises(TypeError, match="exp_avg has dtype float64"):
        K.adam_step(p, p, np.zeros(4), np.zeros(4, np.float32), step=1, backend=backend)
    with pytest.raises(ValueError, match="step must be >= 1"):
        K.adam_step(p, p, p.copy(), p.copy(), step=0, backend=backend)
    with pytest.raises(ValueError, match="param must be a writeable C-contiguous"):
        q = np.zeros((4, 4), np.float32)[:, ::2]
        K.sgd_step(q, np.zeros_like(q), lr=0.1, backend=backend)
