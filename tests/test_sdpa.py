"""F.scaled_dot_product_attention and the attention modules, on every CPU backend.

Values and gradients are checked against PyTorch when it is installed, and against finite
differences (float64) either way."""
import numpy as np
import pytest

import fastnn
from fastnn.nn import functional as F
from fastnn.models.gpt import CausalSelfAttention
from fastnn.nn.attention import KVCache, packed_qkv_attention

from conftest import numeric_grad


def _torch():
    return pytest.importorskip("torch")


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _run_both(backend, shapes, dtype, mask=None, mask_grad=False, **kw):
    """fastnn and torch outputs and input gradients for the same inputs and upstream gradient."""
    torch = _torch()
    rng = np.random.default_rng(0)
    arrays = [_rand(rng, s, dtype) for s in shapes]
    with fastnn.use_backend(backend):
        ts = [fastnn.tensor(a, requires_grad=True) for a in arrays]
        m = fastnn.tensor(mask, requires_grad=mask_grad) if mask is not None else None
        out = F.scaled_dot_product_attention(*ts, attn_mask=m, **kw)
        g = _rand(rng, out.shape, dtype)
        out.backward(g)
    pt = [torch.tensor(a, requires_grad=True) for a in arrays]
    pm = torch.tensor(mask, requires_grad=mask_grad) if mask is not None else None
    pout = torch.nn.functional.scaled_dot_product_attention(*pt, attn_mask=pm, **kw)
    pout.backward(torch.tensor(g))
    ours = [out._data] + [t.grad for t in ts] + ([m.grad] if mask_grad else [])
    theirs = [pout.detach().numpy()] + [p.grad.numpy() for p in pt] + (
        [pm.grad.numpy()] if mask_grad else [])
    return ours, theirs


def _close(ours, theirs, dtype):
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-10)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("L,S,E", [(17, 17, 8), (1, 1, 5), (1, 9, 3), (7, 13, 16), (13, 7, 4)])
def test_fused_path_matches_torch(cpu_backend, dtype, causal, L, S, E):
    ours, theirs = _run_both(cpu_backend, [(2, 3, L, E), (2, 3, S, E), (2, 3, S, E)], dtype,
                             is_causal=causal)
    _close(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scale_and_3d_inputs(cpu_backend, dtype):
    ours, theirs = _run_both(cpu_backend, [(4, 5, 6), (4, 5, 6), (4, 5, 6)], dtype, scale=0.3,
                             is_causal=True)
    _close(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bool_mask_with_a_fully_masked_row(cpu_backend, dtype):
    mask = np.random.default_rng(1).random((5, 7)) > 0.3
    mask[2] = False  # nothing to attend to: PyTorch's CPU kernels give zeros, not NaN
    ours, theirs = _run_both(cpu_backend, [(2, 2, 5, 4), (2, 2, 7, 4), (2, 2, 7, 4)], dtype,
                             mask=mask)
    _close(ours, theirs, dtype)
    assert np.all(ours[0][:, :, 2] == 0) and np.isfinite(ours[1]).all()


def test_bool_mask_and_causal_combine(cpu_backend):
    mask = np.random.default_rng(2).random((6, 6)) > 0.4
    ours, theirs = _run_both(cpu_backend, [(1, 2, 6, 4)] * 3, np.float64, mask=mask,
                             is_causal=True)
    _close(ours, theirs, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_mask_gets_a_gradient(cpu_backend, dtype):
    mask = np.random.default_rng(3).standard_normal((1, 2, 5, 6)).astype(dtype)
    mask[0, 0, 1, 2] = -np.inf
    ours, theirs = _run_both(cpu_backend, [(3, 2, 5, 4), (3, 2, 6, 4), (3, 2, 6, 4)], dtype,
                             mask=mask, mask_grad=True)
    _close(ours, theirs, dtype)


def test_broadcast_batch_and_value_dim(cpu_backend):
    ours, theirs = _run_both(cpu_backend, [(2, 3, 5, 4), (1, 3, 6, 4), (1, 1, 6, 7)], np.float64,
                             is_causal=True)
    _close(ours, theirs, np.float64)


@pytest.mark.parametrize("kw", [dict(is_causal=True), dict(attn_mask="float")])
def test_gradients_by_finite_differences(cpu_backend, kw):
    """Independent of PyTorch: both paths (fused, materialized) against central differences."""
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((1, 2, 4, 3)) for _ in range(3))
    if kw.get("attn_mask") == "float":
        kw = dict(attn_mask=rng.standard_normal((4, 4)))
    w = rng.standard_normal((1, 2, 4, 3))
    with fastnn.use_backend(cpu_backend):
        def f():
            return float((F.scaled_dot_product_attention(
                fastnn.tensor(q), fastnn.tensor(k), fastnn.tensor(v), **kw)._data * w).sum())
        ts = [fastnn.tensor(a, requires_grad=True) for a in (q, k, v)]
        (F.scaled_dot_product_attention(*ts, **kw) * fastnn.tensor(w)).sum().backward()
        for t, a in zip(ts, (q, k, v)):
            np.testing.assert_allclose(t.grad, numeric_grad(f, a), rtol=1e-6, atol=1e-8)


def test_dropout(cpu_backend):
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((2, 2, 6, 4)) for _ in range(3))
    with fastnn.use_backend(cpu_backend):
        def run(p, seed=0):
            fastnn.manual_seed(seed)
            return F.scaled_dot_product_attention(fastnn.tensor(q), fastnn.tensor(k),
                                                  fastnn.tensor(v), dropout_p=p)._data
        assert np.all(run(1.0) == 0)
        np.testing.assert_array_equal(run(0.5, seed=1), run(0.5, seed=1))
        assert not np.allclose(run(0.5, seed=1), run(0.5, seed=2))
        # dropout is unbiased: the mean over many draws approaches the output without it
        mean = np.mean([run(0.3, seed=s) for s in range(400)], axis=0)
        np.testing.assert_allclose(mean, run(0.0), atol=0.12)
        # the gradient uses the same dropout mask as the forward (reseeded per call)
        w = rng.standard_normal(q.shape)
        ts = [fastnn.tensor(a, requires_grad=True) for a in (q, k, v)]
        fastnn.manual_seed(7)
        (F.scaled_dot_product_attention(*ts, dropout_p=0.4) * fastnn.tensor(w)).sum().backward()

        def f():
            fastnn.manual_seed(7)
            return float((F.scaled_dot_product_attention(
                fastnn.tensor(q), fastnn.tensor(k), fastnn.tensor(v), dropout_p=0.4)._data * w).sum())
        np.testing.assert_allclose(ts[0].grad, numeric_grad(f, q), rtol=1e-6, atol=1e-8)


def test_errors():
    x = fastnn.zeros(1, 2, 3, 4)
    with pytest.raises(ValueError, match="expected query"):
        F.scaled_dot_product_attention(x, fastnn.zeros(1, 2, 3, 5), x)
    with pytest.raises(ValueError, match="does not broadcast"):
        F.scaled_dot_product_attention(x, x, x, attn_mask=np.ones((2, 2), bool))
    with pytest.raises(TypeError, match="bool or floating"):
        F.scaled_dot_product_attention(x, x, x, attn_mask=np.ones((3, 3), np.int64))
    with pytest.raises(TypeError, match="one dtype"):
        F.scaled_dot_product_attention(x, x, x.double())
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(x, x, x, dropout_p=1.5)
    with pytest.raises(ValueError, match="at least 2 dims"):
        F.scaled_dot_product_attention(fastnn.zeros(3), x, x)


def test_packed_qkv_attention_equals_the_generic_path(cpu_backend):
    """The fused one-node path used by CausalSelfAttention == split/view/transpose/sdpa."""
    rng = np.random.default_rng(6)
    B, T, H, D = 2, 9, 3, 5
    x = rng.standard_normal((B, T, 3 * H * D))
    g = rng.standard_normal((B, T, H * D))
    with fastnn.use_backend(cpu_backend):
        a = fastnn.tensor(x, requires_grad=True)
        ya = packed_qkv_attention(a, H, causal=True)
        ya.backward(g)
        b = fastnn.tensor(x, requires_grad=True)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in b.split(H * D, dim=2))
        yb = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        yb = yb.transpose(1, 2).contiguous().view(B, T, H * D)
        yb.backward(g)
    np.testing.assert_allclose(ya._data, yb._data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,T,H,D", [(12, 64, 4, 32), (2, 33, 3, 7), (1, 1, 1, 1)])
def test_packed_qkv_attention_strided_path_equals_copies(cpu_backend, dtype, B, T, H, D):
    """The cython backend's strided kernels (no copies) give what the copying path gives;
    other backends take the copying path, compared with the generic one above."""
    from fastnn.nn import attention as att
    rng = np.random.default_rng(7)
    x = rng.standard_normal((B, T, 3 * H * D)).astype(dtype)
    g = rng.standard_normal((B, T, H * D)).astype(dtype)
    results = []
    for strided in (True, False):
        saved = dict(att._STRIDED)
        try:
            if not strided:
                att._STRIDED[cpu_backend] = None   # force the copying path
            with fastnn.use_backend(cpu_backend):
                a = fastnn.tensor(x, requires_grad=True)
                y = packed_qkv_attention(a, H, causal=True)
                y.backward(g)
        finally:
            att._STRIDED.clear()
            att._STRIDED.update(saved)
        assert y._data.dtype == dtype and a.grad.dtype == dtype
        results.append((y._data, a.grad))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_packed_qkv_attention_rejects_a_bad_width():
    with pytest.raises(ValueError, match="n_head"):
        packed_qkv_attention(fastnn.zeros(1, 2, 10), 2)


def test_kv_cache_in_chunks_equals_one_causal_pass(cpu_backend):
    """Feeding a sequence as a prefill, a 3-token chunk and single tokens gives the outputs of
    one causal pass (the chunk needs the bottom-right aligned mask)."""
    fastnn.manual_seed(0)
    attn = CausalSelfAttention(12, 3, bias=True).double().eval()
    x = np.random.default_rng(7).standard_normal((2, 8, 12))
    with fastnn.use_backend(cpu_backend), fastnn.no_grad():
        full = attn(fastnn.tensor(x))._data
        cache = KVCache(2, 3, 8, 4, np.float64)
        parts = [attn(fastnn.tensor(x[:, a:b]), cache)._data
                 for a, b in ((0, 3), (3, 6), (6, 7), (7, 8))]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="capacity"):
        cache.append(np.zeros((2, 3, 1, 4)), np.zeros((2, 3, 1, 4)))
