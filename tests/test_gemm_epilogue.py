"""The GEMM's fused epilogues (gemm_fused, gemm_bias_grad) against the numpy reference, on every
CPU backend: the activations, bias, residual and preact of gemm_fused, the row or column sums of
gemm_bias_grad, with alpha / beta, every transpose case, sizes around the C path's micro-tile and
block edges (run in a subprocess with small caches pinned, so several KC, MC and NC blocks and
both thread splits occur), guard zones around every output, and the errors of bad input."""
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import kernels as K
from fastnn.kernels import trusted as T

ACTS = (None, "relu", "gelu_tanh", "gelu")
GUARD = 16


def _guarded(shape, dtype, fill):
    """An array of `shape` inside a buffer with sentinels either side; returns (array, check)."""
    size = int(np.prod(shape))
    buf = np.full(size + 2 * GUARD, 777.0, dtype)
    arr = buf[GUARD:GUARD + size].reshape(shape)
    arr[...] = fill
    return arr, lambda: (buf[:GUARD] == 777.0).all() and (buf[GUARD + size:] == 777.0).all()


def _tol(dtype, k):
    return dict(rtol=1e-4, atol=1e-5 * (k + 1)) if dtype == np.float32 else dict(rtol=1e-11,
                                                                                atol=1e-11)


def _case(rng, backend, dtype, m, k, n, ta, tb, act, alpha=1.0, beta=0.0):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    res = rng.standard_normal((m, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    c, c_ok = _guarded((m, n), dtype, c0 if beta else np.nan)
    pre, pre_ok = _guarded((m, n), dtype, np.nan)
    K.gemm_fused(a, b, c, bias, res, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta,
                 activation=act, preact=pre, backend=backend)
    f = np.float64
    want_pre = np.empty((m, n))
    want = K.gemm_fused(a.astype(f), b.astype(f), c0.astype(f), bias.astype(f), res.astype(f),
                        trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, activation=act,
                        preact=want_pre, backend="numpy")
    assert c_ok() and pre_ok(), "wrote outside c or preact"
    np.testing.assert_allclose(pre, want_pre, **_tol(dtype, k))
    np.testing.assert_allclose(c, want, **_tol(dtype, k))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_fused_matches_reference(cpu_backend, dtype):
    rng = np.random.default_rng(7)
    sizes = [(1, 1, 1), (3, 5, 2), (9, 17, 33), (13, 1, 31), (33, 29, 7), (40, 70, 45)]
    for (m, k, n), (ta, tb), act in itertools.product(sizes, itertools.product((0, 1), (0, 1)),
                                                      ACTS):
        _case(rng, cpu_backend, dtype, m, k, n, bool(ta), bool(tb), act)
    _case(rng, cpu_backend, dtype, 20, 30, 25, False, True, "gelu", alpha=-0.5, beta=2.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_bias_grad_matches_reference(cpu_backend, dtype):
    rng = np.random.default_rng(8)
    for (m, k, n), (ta, tb), sum_of in itertools.product(
            [(1, 1, 1), (2, 9, 3), (17, 33, 9), (33, 13, 40)],
            itertools.product((False, True), repeat=2), ("a", "b")):
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
        c, c_ok = _guarded((m, n), dtype, np.nan)
        db0 = rng.standard_normal(m if sum_of == "a" else n).astype(dtype)
        for beta in (0.0, 1.0):
            db, db_ok = _guarded(db0.shape, dtype, db0 if beta else np.nan)
            K.gemm_bias_grad(a, b, c, db, trans_a=ta, trans_b=tb, alpha=0.5, beta=beta,
                             sum_of=sum_of, backend=cpu_backend)
            opx = (a.T if ta else a) if sum_of == "a" else (b.T if tb else b)
            want_db = 0.5 * opx.astype(np.float64).sum(axis=1 if sum_of == "a" else 0)
            if beta:
                want_db += db0
            want_c = 0.5 * ((a.T if ta else a).astype(np.float64) @ (b.T if tb else b))
            if beta:   # c holds the first round's product: beta == 1 doubles it
                want_c *= 2
            np.testing.assert_allclose(c, want_c, **_tol(dtype, k))
            np.testing.assert_allclose(db, want_db, **_tol(dtype, k))
            assert c_ok() and db_ok(), "wrote outside c or db"


def test_linear_layer_use():
    # the calls a Linear layer makes, W (out, in): forward with bias + GELU, backward dW and db
    rng = np.random.default_rng(9)
    x = rng.standard_normal((12, 7)).astype(np.float32)
    w = rng.standard_normal((5, 7)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    pre = np.empty((12, 5), np.float32)
    y = T.gemm_fused(x, w, None, bias, trans_b=True, activation="gelu_tanh", preact=pre)
    np.testing.assert_allclose(pre, x @ w.T + bias, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, K.gelu(x @ w.T + bias, approximate="tanh"), rtol=1e-5,
                               atol=1e-5)
    dy = rng.standard_normal((12, 5)).astype(np.float32)
    dw, db = T.gemm_bias_grad(dy, x, trans_a=True, sum_of="a")
    np.testing.assert_allclose(dw, dy.T @ x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db, dy.sum(0), rtol=1e-5, atol=1e-5)


def test_bad_input_raises():
    a = np.ones((4, 3), np.float32)
    b = np.ones((3, 5), np.float32)
    with pytest.raises(ValueError, match="activation"):
        K.gemm_fused(a, b, activation="swish")
    with pytest.raises(ValueError, match="bias has shape"):
        K.gemm_fused(a, b, None, np.ones(4, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        K.gemm_fused(a, b, None, np.ones(5, np.float64))
    c = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="must not overlap c"):
        K.gemm_fused(a, b, c, None, c)
    with pytest.raises(ValueError, match="inner dimensions"):
        K.gemm_fused(a, a)
    with pytest.raises(ValueError, match="sum_of"):
        K.gemm_bias_grad(a, b, sum_of="c")
    with pytest.raises(ValueError, match="db has shape"):
        K.gemm_bias_grad(a, b, None, np.zeros(5, np.float32))


def child():
    """In the subprocess (small caches pinned): sizes across block edges, 1 and 2 threads."""
    from fastnn.backends.cython import _gemm
    rng = np.random.default_rng(10)
    blocks = _gemm.gemm_blocks("float32")
    mc, kc, nc = blocks["MC"], blocks["KC"], blocks["NC"]
    done = 0
    for threads in (1, 2):
        _gemm.set_num_threads(threads)
        for (m, k, n), (ta, tb) in itertools.product(
                [(mc + 7, kc + 3, nc + 5), (2 * mc + 1, 2 * kc + 1, 37), (7, kc + 1, nc + 3),
                 (mc + 1, 5, 9)], itertools.product((False, True), repeat=2)):
            for act in ACTS:
                _case(rng, "cython", np.float32, m, k, n, ta, tb, act)
                done += 1
            for sum_of in ("a", "b"):
                a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
                b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
                c, db = K.gemm_bias_grad(a, b, trans_a=ta, trans_b=tb, sum_of=sum_of,
                                         backend="cython")
                opa, opb = (a.T if ta else a), (b.T if tb else b)
                want = opa.sum(1) if sum_of == "a" else opb.sum(0)
                np.testing.assert_allclose(db, want, rtol=1e-4, atol=1e-4 * np.sqrt(k))
                np.testing.assert_allclose(c, opa.astype(float) @ opb, rtol=1e-4,
                                           atol=1e-4 * np.sqrt(k))
                done += 1
    print(json.dumps({"done": done, "blocks": blocks}))


def test_across_blocks_and_threads():
    pytest.importorskip("fastnn.backends.cython._gemm")
    env = dict(os.environ, FASTNN_GEMM_L1="8192", FASTNN_GEMM_L2="65536",
               FASTNN_GEMM_L3="262144")
    proc = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["done"] == 2 * 4 * 4 * 6
    assert result["blocks"]["KC"] == 64


if __name__ == "__main__":
    child()
