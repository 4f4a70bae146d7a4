"""The numba backend's serial and parallel code paths agree with the reference.

Each numba kernel switches from a serial loop to per-thread blocks above a size threshold (and
GEMM to parallel tiles, gemm_batched to parallel over the batch); the conformance suite mostly
uses sizes below it. Here every kernel runs on inputs just above and below its threshold.
"""
import numpy as np
import pytest

import fastnn

pytestmark = pytest.mark.skipif("numba" not in fastnn.available_backends(),
                                reason="numba backend unavailable")

if "numba" in fastnn.available_backends():
    from fastnn.backends.numba import gemm as G
    from fastnn.backends.numba import ops as O
    R = fastnn.kernels.load("numpy")

DTYPES = [np.float32, np.float64]


def _close(got, want, dtype, scale=1.0):
    rtol, atol = (1e-4, 1e-5) if dtype == np.float32 else (1e-10, 1e-11)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale)


@pytest.fixture(params=["serial", "parallel"])
def size(request):
    """Elements for a 1-D kernel: below or above both parallel thresholds."""
    return 1000 if request.param == "serial" else 3 * O.CHEAP_PARALLEL_MIN + 17


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_paths(size, dtype):
    rng = np.random.default_rng(size)
    x = (rng.standard_normal(size) * 4).astype(dtype)
    dy = rng.standard_normal(size).astype(dtype)
    for name, args in [("relu", ()), ("leaky_relu", (0.1,)), ("sigmoid", ()), ("tanh", ()),
                       ("gelu", (False,)), ("gelu", (True,))]:
        y = getattr(O, name)(x, *args)
        _close(y, getattr(R, name)(x.astype(np.float64), *args), dtype)
        saved = x if name in ("relu", "leaky_relu", "gelu") else y
        ref_saved = saved.astype(np.float64)
        _close(getattr(O, name + "_backward")(dy, saved, *args),
               getattr(R, name + "_backward")(dy.astype(np.float64), ref_saved, *args), dtype)
    loss, grad = O.mse_loss(x, dy)
    rloss, rgrad = R.mse_loss(x.astype(np.float64), dy.astype(np.float64))
    _close(loss, rloss, dtype)
    _close(grad, rgrad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_kernel_paths(size, dtype):
    rng = np.random.default_rng(size + 1)
    rows = size // 64
    x = (rng.standard_normal((rows, 64)) * 3 + 1).astype(dtype)
    dy = rng.standard_normal((rows, 64)).astype(dtype)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    w, b = x[0].copy(), dy[0].copy()
    _close(O.bias_add(x, w), R.bias_add(x64, w), dtype)
    _close(O.bias_grad(dy), R.bias_grad(dy64), dtype, scale=rows)
    for name in ("softmax", "log_softmax"):
        y = getattr(O, name)(x)
        _close(y, getattr(R, name)(x64), dtype, scale=10)
        _close(getattr(O, name + "_backward")(dy, y),
               getattr(R, name + "_backward")(dy64, y.astype(np.float64)), dtype, scale=10)
    targets = rng.integers(0, 64, rows)
    targets[::5] = -1
    for got, want in zip(O.cross_entropy(x, targets, -1, 0.5),
                         R.cross_entropy(x64, targets, -1, 0.5)):
        _close(got, want, dtype, scale=10)
    y, mean, rstd = O.layer_norm(x, w, b, 1e-5)
    for got, want in zip((y, mean, rstd), R.layer_norm(x64, w, b, 1e-5)):
        _close(got, want, dtype, scale=10)
    for got, want in zip(O.layer_norm_backward(dy, x, w, mean, rstd),
                         R.layer_norm_backward(dy64, x64, w, mean.astype(np.float64),
                                               rstd.astype(np.float64))):
        _close(got, want, dtype, scale=10 * rows)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_and_optimizer_paths(size, dtype):
    rng = np.random.default_rng(size + 2)
    n, c, v = size // 64, 64, 37
    w = rng.standard_normal((v, c)).astype(dtype)
    ids = rng.integers(0, v, n)
    np.testing.assert_array_equal(O.embedding(w, ids), w[ids])
    dout = rng.standard_normal((n, c)).astype(dtype)
    _close(O.embedding_backward(dout, ids, v),
           R.embedding_backward(dout.astype(np.float64), ids, v), dtype, scale=n)
    p = rng.standard_normal(size).astype(dtype)
    g = rng.standard_normal(size).astype(dtype)
    mine = [p.copy(), np.zeros_like(p)]
    ref = [p.astype(np.float64), np.zeros(size)]
    for first in (True, False):
        O.sgd_step(mine[0], g, mine[1], 0.1, 0.9, 0.1, False, 0.01, first)
        R.sgd_step(ref[0], g.astype(np.float64), ref[1], 0.1, 0.9, 0.1, False, 0.01, first)
    _close(mine[0], ref[0], dtype)
    mine = [p.copy(), np.zeros_like(p), np.zeros_like(p)]
    ref = [p.astype(np.float64), np.zeros(size), np.zeros(size)]
    for step in (1, 2):
        O.adam_step(mine[0], g, mine[1], mine[2], step, 1e-2, 0.9, 0.999, 1e-8, 0.1, True)
        R.adam_step(ref[0], g.astype(np.float64), ref[1], ref[2], step, 1e-2, 0.9, 0.999, 1e-8,
                    0.1, True)
    for got, want in zip(mine, ref):
        _close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(7, 5, 3), (40, 48, 56), (150, 70, 300), (301, 257, 520)])
def test_gemm_paths(dtype, m, n, k):
    rng = np.random.default_rng(m + n + k)
    for ta in (False, True):
        for tb in (False, True):
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
            c0 = rng.standard_normal((m, n)).astype(dtype)
            ref = 0.5 * ((a.T if ta else a).astype(np.float64) @ (b.T if tb else b)) + 2 * c0
            c = c0.copy()
            G.gemm(a, b, c, ta, tb, 0.5, 2.0)
            _close(c, ref, dtype, scale=k)
            # batched: (40, 48, 56) x 16 runs parallel over the batch, larger ones over tiles
            cb = np.empty((16, m, n), dtype)
            G.gemm_batched(np.stack([a] * 16), np.stack([b] * 16), cb, ta, tb, 0.5, 0.0)
            _close(cb, np.broadcast_to(ref - 2 * c0, cb.shape), dtype, scale=k)


def test_gemm_register_tile_fits_the_vector_registers():
    """The micro-kernel's tile is two vectors wide: 512-bit ones only where AVX-512 exists (a
    512-bit-wide tile on AVX2 spills its accumulators to the stack)."""
    from llvmlite import binding
    import numba
    if numba.config.CPU_NAME:
        assert G.NR_BYTES == 64
    else:
        avx512 = bool(binding.get_host_cpu_features().get("avx512f"))
        assert G.NR_BYTES == (128 if avx512 else 64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,p,n", [(4, 8, 16), (7, 5, 37), (3, 64, 64), (1, 1, 1)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_attention_micro_kernel_edges(dtype, m, p, n, accumulate):
    """The attention tiles' micro-kernel: 4 x 16 blocks plus leftover rows and columns, from
    strided views, with and without accumulation; `out` starts as garbage (NaN) when not
    accumulating, as the kernels' np.empty scratch does."""
    from fastnn.backends.numba import attention as A
    rng = np.random.default_rng(m * 100 + n)
    a = rng.standard_normal((m, 2 * p)).astype(dtype)[:, ::2]
    b = rng.standard_normal((p, n)).astype(dtype)
    out = rng.standard_normal((m, n)).astype(dtype)
    want = a @ b + (out if accumulate else 0)
    if not accumulate:
        out[:] = np.nan
    A._mk_rows_any(a, b, out, accumulate)
    _close(out, want, dtype, scale=p)
