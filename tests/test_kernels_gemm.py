"""Conformance: gemm, matmul and bmm on every backend against float64 numpy."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastnn
from fastnn import kernels as K

from conftest import max_size, skip_if_missing

# 1, primes, and sizes that are no multiple of any tile (MR/NR/KC are powers of two or 6).
DIMS = st.sampled_from([1, 2, 3, 5, 7, 13, 17, 31, 33, 47, 61, 64, 65, 97])


def _check(c, ref, k, dtype):
    # Rounding error grows with the reduction length k.
    eps = 1e-6 if dtype == np.float32 else 1e-14
    scale = np.abs(ref).max() if ref.size else 1.0
    np.testing.assert_allclose(c, ref, rtol=0, atol=20 * eps * max(k, 1) ** 0.5 * max(scale, 1))


def _operand(rng, shape, dtype, trans, layout):
    """shape is the logical op(x) shape; returns (array to pass, logical float64 value)."""
    x = rng.standard_normal(shape)
    stored = x.T if trans else x
    if layout == "fortran":
        stored = np.asfortranarray(stored)
    elif layout == "strided":
        big = np.zeros((stored.shape[0], stored.shape[1] * 2))
        big[:, ::2] = stored
        stored = big[:, ::2]
    return stored.astype(dtype), x.astype(dtype).astype(np.float64)


@given(m=DIMS, n=DIMS, k=DIMS, trans_a=st.booleans(), trans_b=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]),
       layout=st.sampled_from(["c", "fortran", "strided"]))
def test_gemm_shapes_and_transposes(backend, m, n, k, trans_a, trans_b, dtype, layout):
    skip_if_missing(backend, "gemm")
    m, n, k = (max_size(backend, d) for d in (m, n, k))
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    a, a64 = _operand(rng, (m, k), dtype, trans_a, layout)
    b, b64 = _operand(rng, (k, n), dtype, trans_b, layout)
    c = K.gemm(a, b, trans_a=trans_a, trans_b=trans_b, backend=backend)
    assert c.dtype == dtype and c.shape == (m, n)
    _check(c, a64 @ b64, k, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25), (0.0, 1.5)])
def test_gemm_alpha_beta(backend, dtype, alpha, beta):
    skip_if_missing(backend, "gemm")
    m, n, k = max_size(backend, 37), max_size(backend, 29), max_size(backend, 41)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    c = c0.copy()
    out = K.gemm(a, b, c, alpha=alpha, beta=beta, backend=backend)
    assert out is c
    ref = alpha * (a.astype(np.float64) @ b) + beta * c0.astype(np.float64)
    _check(c, ref, k, dtype)


def test_gemm_beta_zero_ignores_nan_in_c(backend):
    skip_if_missing(backend, "gemm")
    a = np.ones((5, 3), np.float32)
    b = np.ones((3, 4), np.float32)
    c = np.full((5, 4), np.nan, np.float32)
    K.gemm(a, b, c, beta=0.0, backend=backend)
    np.testing.assert_array_equal(c, np.full((5, 4), 3.0, np.float32))


def test_gemm_nan_propagates(backend):
    skip_if_missing(backend, "gemm")
    a = np.ones((4, 6))
    a[2, 3] = np.nan
    c = K.matmul(a, np.ones((6, 5)), backend=backend)
    assert np.isnan(c[2]).all() and np.isfinite(np.delete(c, 2, axis=0)).all()


@pytest.mark.parametrize("shape", [(0, 5, 3), (4, 0, 3), (4, 5, 0)])
def test_gemm_empty(backend, shape):
    m, n, k = shape
    c = K.matmul(np.ones((m, k), np.float32), np.ones((k, n), np.float32), backend=backend)
    np.testing.assert_array_equal(c, np.zeros((m, n), np.float32))


@pytest.mark.parametrize("m,n,k", [(130, 131, 257), (300, 17, 520), (1, 700, 300), (257, 1, 129)])
def test_gemm_larger_than_one_block(cpu_backend, m, n, k):
    rng = np.random.default_rng(1)
    for ta in (False, True):
        for tb in (False, True):
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
            c = K.gemm(a, b, trans_a=ta, trans_b=tb, backend=cpu_backend)
            ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b)
            _check(c, ref, k, np.float32)


@given(batch=st.integers(1, 4), m=DIMS, n=DIMS, k=DIMS, trans_a=st.booleans(),
       trans_b=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_bmm(backend, batch, m, n, k, trans_a, trans_b, dtype):
    skip_if_missing(backend, "gemm_batched")
    m, n, k = (max_size(backend, d) for d in (m, n, k))
    rng = np.random.default_rng(batch + m + n + k)
    a = rng.standard_normal((batch, k, m) if trans_a else (batch, m, k)).astype(dtype)
    b = rng.standard_normal((batch, n, k) if trans_b else (batch, k, n)).astype(dtype)
    c = K.bmm(a, b, trans_a=trans_a, trans_b=trans_b, backend=backend)
    a64 = a.astype(np.float64).transpose(0, 2, 1) if trans_a else a.astype(np.float64)
    b64 = b.astype(np.float64).transpose(0, 2, 1) if trans_b else b.astype(np.float64)
    _check(c, a64 @ b64, k, dtype)


def test_bmm_broadcasts_a_2d_operand(backend):
    skip_if_missing(backend, "gemm_batched")
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 5, 7))
    w = rng.standard_normal((7, 4))
    _check(K.matmul(a, w, backend=backend), a @ w, 7, np.float64)


def test_matmul_matches_numpy_operator(backend):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((9, 11)).astype(np.float32)
    b = rng.standard_normal((11, 6)).astype(np.float32)
    out = K.matmul(a, b, backend=backend)
    assert out.dtype == (a @ b).dtype and out.shape == (a @ b).shape
    _check(out, a.astype(np.float64) @ b, 11, np.float32)


def test_gemm_bad_inputs(backend):
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"gemm: inner dimensions differ.*\(3, 4\)"):
        K.gemm(a, np.ones((5, 2), np.float32), backend=backend)
    with pytest.raises(TypeError, match="gemm: b has dtype float64"):
        K.gemm(a, np.ones((4, 2)), backend=backend)
    with pytest.raises(TypeError, match="unsupported dtype int64"):
        K.gemm(np.ones((3, 4), np.int64), np.ones((4, 2), np.int64), backend=backend)
    with pytest.raises(ValueError, match="must be 2-D"):
        K.gemm(np.ones(4, np.float32), np.ones((4, 2), np.float32), backend=backend)
    with pytest.raises(ValueError, match=r"c has shape \(2, 2\), expected \(3, 2\)"):
        K.gemm(a, np.ones((4, 2), np.float32), np.ones((2, 2), np.float32), backend=backend)
    with pytest.raises(ValueError, match="C-contiguous"):
        K.gemm(a, np.ones((4, 2), np.float32), np.ones((2, 3), np.float32).T, backend=backend)
    with pytest.raises(ValueError, match="bmm: batch sizes differ"):
        K.bmm(np.ones((2, 3, 4)), np.ones((3, 4, 5)), backend=backend)
    with pytest.raises(TypeError, match="float16"):
        K.matmul(np.ones((2, 2), np.float16), np.ones((2, 2), np.float16), backend=backend)


def test_backend_argument_and_current_backend_agree(cpu_backend):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.arange(8, dtype=np.float32).reshape(4, 2)
    with fastnn.use_backend(cpu_backend):
        assert fastnn.get_backend().name == cpu_backend
        np.testing.assert_array_equal(K.matmul(a, b), a @ b)
