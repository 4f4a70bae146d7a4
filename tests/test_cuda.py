"""The cuda backend against the numpy reference, kernel by kernel.

Without a GPU these run on Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1 must be set before
numba is first imported; tests/conftest.py does it). The simulator runs each CUDA thread as a
Python thread, so shapes are tiny; they are chosen to span several blocks and to end in partial
tiles with the simulator's launch sizes (cuda_common.SIM), and a few cases rerun with the real
GPU's block and tile sizes (cuda_common.GPU).
"""
import dataclasses
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fastnn.kernels import dispatch as backends  # noqa: E402

ref = backends.load("numpy")  # the numpy reference backend

try:
    cu = backends.load("cuda")   # its kernels by name
except ImportError as e:
    pytest.skip(f"cuda backend unavailable: {e}", allow_module_level=True)

from fastnn.backends.cuda import common as cuda_common, ops as cuda_ops  # noqa: E402

DTYPES = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)


def close(got, want, dtype):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype == dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, **tol(dtype))


def randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def with_tiles(cfg, tile):
    """cfg with every GEMM (large or not) using `tile`."""
    return dataclasses.replace(cfg, gemm_tile=tile, gemm_tile_large=tile)


# ---------------------------------------------------------------- GEMM
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False),
                                             (True, True)])
def test_gemm_transposes_alpha_beta(rng, dtype, trans_a, trans_b):
    m, n, k = 13, 11, 9          # partial M, N and K tiles for the 8- and 16-wide sim tiles
    a = randn(rng, (k, m) if trans_a else (m, k), dtype)
    b = randn(rng, (n, k) if trans_b else (k, n), dtype)
    c = randn(rng, (m, n), dtype)
    want = c.copy()
    ref.gemm(a, b, want, trans_a, trans_b, 0.5, -0.25)
    for tile in ((8, 8, 4, 4, 4), (16, 16, 4, 4, 4)):
        got = c.copy()
        with cuda_common.using_launch_config(with_tiles(cuda_common.SIM, tile)):
            cu.gemm(a, b, got, trans_a, trans_b, 0.5, -0.25)
        close(got, want, dtype)


def test_gemm_beta_zero_does_not_read_c(rng):
    a, b = randn(rng, (6, 5), np.float32), randn(rng, (5, 7), np.float32)
    c = np.full((6, 7), np.nan, np.float32)
    cu.gemm(a, b, c, False, False, 2.0, 0.0)
    close(c, 2 * a @ b, np.float32)


@pytest.mark.parametrize("tile", [(64, 64, 16, 4, 4), (128, 128, 8, 8, 8)])
def test_gemm_gpu_tiles(rng, tile):
    a, b = randn(rng, (9, 10), np.float32), randn(rng, (7, 10), np.float32)
    c = np.empty((9, 7), np.float32)
    with cuda_common.using_launch_config(with_tiles(cuda_common.GPU, tile)):
        cu.gemm(a, b, c, False, True, 1.0, 0.0)
    close(c, a @ b.T, np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_batched(rng, dtype):
    a, b = randn(rng, (3, 9, 6), dtype), randn(rng, (3, 5, 9), dtype)
    got = np.empty((3, 6, 5), dtype)
    want = np.empty((3, 6, 5), dtype)
    cu.gemm_batched(a, b, got, True, True, 1.5, 0.0)
    ref.gemm_batched(a, b, want, True, True, 1.5, 0.0)
    close(got, want, dtype)


# ---------------------------------------------------------------- bias, activations, mse
UNARY = [("relu", ()), ("leaky_relu", (0.1,)), ("sigmoid", ()), ("tanh", ()),
         ("gelu", (False,)), ("gelu", (True,))]
BACKWARD = [("relu_backward", "x", ()), ("leaky_relu_backward", "x", (0.1,)),
            ("sigmoid_backward", "y", ()), ("tanh_backward", "y", ()),
            ("gelu_backward", "x", (False,)), ("gelu_backward", "x", (True,))]


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations(rng, dtype):
    x = randn(rng, 77, dtype) * 3       # 77 > 32 threads x 1 block: the grid-stride loop wraps
    x[:3] = [0.0, -40.0, 40.0]          # sigmoid/tanh saturation, relu at 0
    dy = randn(rng, 77, dtype)
    for name, args in UNARY:
        close(getattr(cu, name)(x, *args), getattr(ref, name)(x, *args), dtype)
    for name, saved, args in BACKWARD:
        s = ref.sigmoid(x) if name.startswith("sigmoid") else np.tanh(x) if saved == "y" else x
        close(getattr(cu, name)(dy, s, *args), getattr(ref, name)(dy, s, *args), dtype)


def test_relu_propagates_nan():
    x = np.array([np.nan, -1.0, 2.0], np.float32)
    np.testing.assert_array_equal(cu.relu(x), ref.relu(x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_add_and_grad(rng, dtype):
    x, bias = randn(rng, (7, 13), dtype), randn(rng, 13, dtype)
    close(cu.bias_add(x, bias), ref.bias_add(x, bias), dtype)
    close(cu.bias_grad(x), ref.bias_grad(x), dtype)


def test_column_sums_with_row_splits(rng, monkeypatch):
    # more "SMs" -> several row splits -> the partial-sum pass runs too
    monkeypatch.setattr(cuda_ops, "sm_count", lambda: 16)
    dy = randn(rng, (21, 6), np.float64)
    close(cu.bias_grad(dy), ref.bias_grad(dy), np.float64)
    x = randn(rng, (21, 6), np.float64)
    y, mean, rstd = ref.layer_norm(x, np.ones(6), np.zeros(6), 1e-5)
    w = randn(rng, 6, np.float64)
    for g, r in zip(cu.layer_norm_backward(dy, x, w, mean, rstd),
                    ref.layer_norm_backward(dy, x, w, mean, rstd)):
        close(g, r, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_loss(rng, dtype):
    p, t = randn(rng, 70, dtype), randn(rng, 70, dtype)
    loss, grad = cu.mse_loss(p, t)
    want_loss, want_grad = ref.mse_loss(p, t)
    assert np.asarray(loss).dtype == dtype
    np.testing.assert_allclose(loss, want_loss, **tol(dtype))
    close(grad, want_grad, dtype)


# ---------------------------------------------------------------- row kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_family(rng, dtype):
    x = randn(rng, (5, 19), dtype) * 4
    x[0] += 500                               # large logits: finite only with max subtraction
    dy = randn(rng, (5, 19), dtype)
    y = ref.softmax(x)
    ly = ref.log_softmax(x)
    close(cu.softmax(x), y, dtype)
    close(cu.log_softmax(x), ly, dtype)
    close(cu.softmax_backward(dy, y), ref.softmax_backward(dy, y), dtype)
    close(cu.log_softmax_backward(dy, ly), ref.log_softmax_backward(dy, ly), dtype)


def test_row_kernels_gpu_block_size(rng):
    x = randn(rng, (3, 40), np.float32)
    with cuda_common.using_launch_config(cuda_common.GPU):   # 64 threads: 40 columns, 24 idle
        close(cu.softmax(x), ref.softmax(x), np.float32)
        y, mean, rstd = cu.layer_norm(x, np.ones(40, np.float32), np.zeros(40, np.float32), 1e-5)
    close(y, ref.layer_norm(x, np.ones(40, np.float32), np.zeros(40, np.float32), 1e-5)[0],
          np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy(rng, dtype):
    logits = randn(rng, (6, 11), dtype) * 3
    targets = np.array([3, -100, 0, 10, 5, -100], np.int64)
    got = cu.cross_entropy(logits, targets, -100, 0.25)
    want = ref.cross_entropy(logits, targets, -100, 0.25)
    for g, w in zip(got, want):
        close(g, w, dtype)
    assert not got[1][1].any() and got[0][1] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm(rng, dtype):
    x = randn(rng, (6, 19), dtype) + 3
    w, b = randn(rng, 19, dtype), randn(rng, 19, dtype)
    got = cu.layer_norm(x, w, b, 1e-5)
    want = ref.layer_norm(x, w, b, 1e-5)
    for g, r in zip(got, want):
        close(g, r, dtype)
    dy = randn(rng, (6, 19), dtype)
    _, mean, rstd = want
    for g, r in zip(cu.layer_norm_backward(dy, x, w, mean, rstd),
                    ref.layer_norm_backward(dy, x, w, mean, rstd)):
        close(g, r, dtype)


# ---------------------------------------------------------------- embedding
@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding(rng, dtype):
    weight = randn(rng, (7, 5), dtype)
    ids = np.array([3, 0, 3, 6, 3, 1, 0, 2, 3], np.int64)   # repeats: atomics must add them all
    close(cu.embedding(weight, ids), ref.embedding(weight, ids), dtype)
    dout = randn(rng, (9, 5), dtype)
    close(cu.embedding_backward(dout, ids, 8), ref.embedding_backward(dout, ids, 8), dtype)


# ---------------------------------------------------------------- optimizers
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,dampening,nesterov,weight_decay,first", [
    (0.0, 0.0, False, 0.0, False), (0.9, 0.0, True, 0.01, False), (0.9, 0.1, False, 0.0, True),
    (0.5, 0.2, False, 0.1, False)])
def test_sgd_step(rng, dtype, momentum, dampening, nesterov, weight_decay, first):
    n = 45
    p, g = randn(rng, n, dtype), randn(rng, n, dtype)
    buf = randn(rng, n, dtype) if momentum else np.empty(0, dtype)
    p2, buf2 = p.copy(), buf.copy()
    cu.sgd_step(p, g, buf, 0.1, momentum, dampening, nesterov, weight_decay, first)
    ref.sgd_step(p2, g, buf2, 0.1, momentum, dampening, nesterov, weight_decay, first)
    close(p, p2, dtype)
    close(buf, buf2, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled,weight_decay,step", [(False, 0.0, 1), (False, 0.1, 3),
                                                        (True, 0.1, 7)])
def test_adam_step(rng, dtype, decoupled, weight_decay, step):
    n = 45
    p, g = randn(rng, n, dtype), randn(rng, n, dtype)
    m, v = randn(rng, n, dtype) * 0.1, np.abs(randn(rng, n, dtype)) * 0.01
    p2, m2, v2 = p.copy(), m.copy(), v.copy()
    cu.adam_step(p, g, m, v, step, 1e-2, 0.9, 0.999, 1e-8, weight_decay, decoupled)
    ref.adam_step(p2, g, m2, v2, step, 1e-2, 0.9, 0.999, 1e-8, weight_decay, decoupled)
    close(p, p2, dtype)
    close(m, m2, dtype)
    close(v, v2, dtype)


# ---------------------------------------------------------------- attention
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("t,s", [(7, 9), (9, 6)])
def test_attention_forward_backward(rng, dtype, causal, t, s):
    b, h, d = 1, 2, 5          # D=5 is padded to 16; sim blocks of 4 rows, tiles of 1-6 rows
    q, k, v = randn(rng, (b, h, t, d), dtype), randn(rng, (b, h, s, d), dtype), \
        randn(rng, (b, h, s, d), dtype)
    scale = 0.7
    out, lse = cu.attention(q, k, v, causal, scale)
    want_out, want_lse = ref.attention(q, k, v, causal, scale)
    close(out, want_out, dtype)
    close(lse, want_lse, dtype)
    dout = randn(rng, (b, h, t, d), dtype)
    got = cu.attention_backward(dout, q, k, v, want_out, want_lse, causal, scale)
    want = ref.attention_backward(dout, q, k, v, want_out, want_lse, causal, scale)
    for g, w in zip(got, want):
        close(g, w, dtype)


def test_attention_forward_without_key_split(rng):
    q, k, v = (randn(rng, (1, 2, 6, 5), np.float64) for _ in range(3))
    cfg = dataclasses.replace(cuda_common.SIM, attn_key_split=1)
    with cuda_common.using_launch_config(cfg):
        out, lse = cu.attention(q, k, v, True, 0.5)
    want_out, want_lse = ref.attention(q, k, v, True, 0.5)
    close(out, want_out, np.float64)
    close(lse, want_lse, np.float64)


def test_attention_gpu_block_size(rng):
    q, k, v = (randn(rng, (1, 1, 10, 16), np.float32) for _ in range(3))
    with cuda_common.using_launch_config(cuda_common.GPU):
        out, lse = cu.attention(q, k, v, True, 0.25)
        grads = cu.attention_backward(out, q, k, v, out, lse, True, 0.25)
    want_out, want_lse = ref.attention(q, k, v, True, 0.25)
    close(out, want_out, np.float32)
    close(lse, want_lse, np.float32)
    for g, w in zip(grads, ref.attention_backward(out, q, k, v, out, lse, True, 0.25)):
        close(g, w, np.float32)


# ---------------------------------------------------------------- through the public API
def test_public_api_dispatch(rng):
    from fastnn import kernels
    x = randn(rng, (2, 3, 4), np.float32)
    close(kernels.softmax(x, backend="cuda"), ref.softmax(x.reshape(6, 4)).reshape(2, 3, 4),
          np.float32)
    a = randn(rng, (4, 3), np.float32)
    close(kernels.matmul(a.T, a, backend="cuda"), a.T @ a, np.float32)   # F-order operand
