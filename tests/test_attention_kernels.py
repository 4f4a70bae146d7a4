"""Fused attention kernels (numba, cython) against the numpy reference, plus gradient, ISA-path
and memory checks. The shapes straddle the kernels' query and key tiles (32, 64, 128 wide)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import kernels
reference = fastnn.kernels.load("numpy")  # the numpy reference backend

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.available_backends()]

# (B, H, T, S, D)
SHAPES = [
    (1, 1, 1, 1, 1),        # the smallest problem
    (2, 1, 1, 5, 8),        # T = 1, one query against several keys
    (1, 2, 70, 70, 16),     # T not a multiple of the tile
    (1, 1, 37, 37, 7),      # odd D
    (2, 3, 100, 65, 32),    # T > S (causal: late queries see every key); B*H = 6 heads
    (1, 1, 40, 150, 24),    # T < S (causal: keys past T get no gradient)
    (1, 1, 130, 200, 64),   # several tiles each way; one head: the backward splits its keys
    (1, 2, 129, 129, 80),   # D wider than one AVX-512 micro-tile row
]


def _inputs(shape, dtype, seed=0):
    b, h, t, s, d = shape
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((b, h, t, d)).astype(dtype)
    k = rng.standard_normal((b, h, s, d)).astype(dtype)
    v = rng.standard_normal((b, h, s, d)).astype(dtype)
    dout = rng.standard_normal((b, h, t, d)).astype(dtype)
    return q, k, v, dout


def _assert_close(got, want, dtype, what):
    rtol = 2e-5 if dtype == np.float32 else 1e-11
    atol = rtol * max(1.0, float(np.abs(want).max()))
    assert got.dtype == want.dtype and got.shape == want.shape, what
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_attention_matches_reference(backend, dtype, causal, shape):
    q, k, v, dout = _inputs(shape, dtype)
    scale = 1 / np.sqrt(shape[-1])
    out, lse = kernels.attention(q, k, v, causal=causal, backend=backend)
    ref_out, ref_lse = reference.attention(q, k, v, causal, scale)
    _assert_close(out, ref_out, dtype, "out")
    _assert_close(lse, ref_lse, dtype, "lse")
    grads = kernels.attention_backward(dout, q, k, v, ref_out, ref_lse, causal=causal,
                                       backend=backend)
    ref_grads = reference.attention_backward(dout, q, k, v, ref_out, ref_lse, causal, scale)
    for name, g, rg in zip(("dq", "dk", "dv"), grads, ref_grads):
        _assert_close(g, rg, dtype, name)
    if causal and shape[2] < shape[3]:   # keys no query reaches get exactly zero gradient
        assert not grads[1][:, :, shape[2]:].any() and not grads[2][:, :, shape[2]:].any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_attention_large_scores_stay_finite(backend):
    # Scores around +-1e3: exp overflows unless the running max is subtracted.
    q, k, v, dout = _inputs((1, 2, 90, 90, 16), np.float32, seed=1)
    out, lse = kernels.attention(q, k, v, causal=True, scale=100.0, backend=backend)
    ref_out, ref_lse = reference.attention(q, k, v, True, 100.0)
    assert np.isfinite(out).all() and np.isfinite(lse).all()
    _assert_close(out, ref_out, np.float32, "out")
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("causal", [False, True])
def test_attention_backward_finite_differences(backend, causal):
    q, k, v, dout = _inputs((1, 2, 5, 6, 3), np.float64, seed=2)
    scale = 0.7

    def loss():   # sum(out * dout), whose gradient wrt out is dout
        return float((kernels.attention(q, k, v, causal=causal, scale=scale,
                                        backend=backend)[0] * dout).sum())

    out, lse = kernels.attention(q, k, v, causal=causal, scale=scale, backend=backend)
    grads = kernels.attention_backward(dout, q, k, v, out, lse, causal=causal, scale=scale,
                                       backend=backend)
    for x, g in zip((q, k, v), grads):
        num = np.zeros_like(x)
        flat, nflat = x.reshape(-1), num.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + 1e-6
            up = loss()
            flat[i] = old - 1e-6
            down = loss()
            flat[i] = old
            nflat[i] = (up - down) / 2e-6
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)


_ISA_SCRIPT = """
import json, numpy as np
from fastnn import kernels
from fastnn.backends.cython import _attention
reference = kernels.load("numpy")
errs = []
for dtype in (np.float32, np.float64):
    for causal in (False, True):
        rng = np.random.default_rng(3)
        q, dout = (rng.standard_normal((1, 2, 75, 19)).astype(dtype) for _ in range(2))
        k, v = (rng.standard_normal((1, 2, 90, 19)).astype(dtype) for _ in range(2))
        out, lse = kernels.attention(q, k, v, causal=causal, backend="cython")
        ro, rl = reference.attention(q, k, v, causal, 19 ** -0.5)
        g = kernels.attention_backward(dout, q, k, v, ro, rl, causal=causal, backend="cython")
        rg = reference.attention_backward(dout, q, k, v, ro, rl, causal, 19 ** -0.5)
        errs.append(max(float(np.abs(a - b).max() / np.abs(b).max())
                        for a, b in zip((out, lse) + g, (ro, rl) + rg)))
print(json.dumps({"path": _attention.cpu_path(), "errs": errs}))
"""


@pytest.mark.skipif("cython" not in BACKENDS, reason="the cython backend is not built")
@pytest.mark.parametrize("isa", ["portable", "avx2", "avx512"])
def test_attention_isa_paths(isa):
    from fastnn.backends.cython import _attention
    order = ["portable", "avx2", "avx512"]
    if order.index(isa) > order.index(_attention.cpu_detected()):
        pytest.skip(f"this CPU lacks {isa}")
    env = dict(os.environ, FASTNN_ISA=isa)
    res = subprocess.run([sys.executable, "-c", _ISA_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["path"] == isa
    # float32 (first two) and float64 (last two) cases
    assert max(report["errs"][:2]) < 2e-5 and max(report["errs"][2:]) < 1e-11, report


@pytest.mark.skipif("cython" not in BACKENDS, reason="the cython backend is not built")
def test_attention_scratch_is_linear_not_quadratic():
    """The C kernels' scratch: O(1) in T forward, linear in T backward, far below T x S."""
    from fastnn.backends.cython import _attention
    threads = _attention.get_num_threads()
    _attention.set_num_threads(2)   # the backward's partial-dq buffers scale with threads
    try:
        used = {}
        for t in (256, 1024):
            q, k, v, dout = _inputs((1, 2, t, t, 32), np.float32)
            out, lse = kernels.attention(q, k, v, causal=True, backend="cython")
            fwd = _attention.scratch_bytes()
            kernels.attention_backward(dout, q, k, v, out, lse, causal=True, backend="cython")
            used[t] = (fwd, _attention.scratch_bytes())
    finally:
        _attention.set_num_threads(threads)
    assert used[256][0] == used[1024][0] > 0, used
    assert 0 < used[1024][1] <= 4 * used[256][1], used      # quadratic would be 16x
    assert used[1024][1] < 1024 * 1024 * 4, used            # less than one head's scores


# ---------------------------------------------------------------- strided views (cython)
STRIDED_SHAPES = [(1, 1, 1, 1), (2, 3, 37, 7), (3, 2, 70, 16), (2, 4, 64, 32), (1, 2, 129, 24),
                  (1, 1, 200, 64)]   # (B, H, T, D): odd T and D, tiles straddled, one head


def _strided_module():
    if "cython" not in BACKENDS:
        pytest.skip("the cython backend is not built")
    from fastnn.backends.cython import _attention
    return _attention


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", STRIDED_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_strided_attention_on_packed_qkv(dtype, causal, shape):
    """q, k, v read from a packed (B, T, 3, H, D) buffer, out written as (B, T, H, D), dq, dk, dv
    into a packed buffer: equal to the contiguous kernels, and nothing outside the views is
    written (each buffer sits inside a larger one filled with a sentinel, with a gap between
    positions)."""
    A = _strided_module()
    B, H, T, D = shape
    rng = np.random.default_rng(1)
    pad = 3   # extra elements after each position's (3, H, D) block: never to be touched
    big = rng.standard_normal((B, T, 3 * H * D + pad)).astype(dtype)
    x5 = big[:, :, :3 * H * D].reshape(B, T, 3, H, D)
    q, k, v = (x5[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    sentinel = dtype(1234.5)
    obuf = np.full((B, T, H * D + pad), sentinel, dtype)
    out = obuf[:, :, :H * D].reshape(B, T, H, D).transpose(0, 2, 1, 3)
    lse = np.empty((B, H, T), dtype)
    scale = 0.7 / np.sqrt(D)
    A.attention_strided(q, k, v, out, lse, causal, scale)
    qc, kc, vc = (np.ascontiguousarray(a) for a in (q, k, v))
    ref_out, ref_lse = kernels.attention(qc, kc, vc, causal=causal, scale=scale,
                                         backend="cython")
    np.testing.assert_array_equal(out, ref_out)   # the same arithmetic, only other addresses
    np.testing.assert_array_equal(lse, ref_lse)
    assert (obuf[:, :, H * D:] == sentinel).all()
    gbuf = rng.standard_normal((B, T, H * D + pad)).astype(dtype)
    dout = gbuf[:, :, :H * D].reshape(B, T, H, D).transpose(0, 2, 1, 3)
    dbuf = np.full((B, T, 3 * H * D + pad), sentinel, dtype)
    d5 = dbuf[:, :, :3 * H * D].reshape(B, T, 3, H, D)
    dq, dk, dv = (d5[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    A.attention_backward_strided(dout, q, k, v, out, lse, dq, dk, dv, causal, scale)
    refs = kernels.attention_backward(np.ascontiguousarray(dout), qc, kc, vc, ref_out, ref_lse,
                                      causal=causal, scale=scale, backend="cython")
    for name, got, want in zip(("dq", "dk", "dv"), (dq, dk, dv), refs):
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert (dbuf[:, :, 3 * H * D:] == sentinel).all()
    ref = reference.attention_backward(np.ascontiguousarray(dout), qc, kc, vc,
                                       *reference.attention(qc, kc, vc, causal, scale), causal,
                                       scale)
    _assert_close(np.ascontiguousarray(dq), ref[0], dtype, "dq vs numpy")


def test_strided_attention_rejects_bad_views():
    A = _strided_module()
    q = np.zeros((1, 2, 4, 8), np.float32)
    lse = np.zeros((1, 2, 4), np.float32)
    out = np.zeros_like(q)
    with pytest.raises(ValueError, match="contiguous last axis"):
        A.attention_strided(q[..., ::2], q[..., ::2], q[..., ::2], out[..., ::2], lse, True, 1.0)
    with pytest.raises(ValueError, match="contiguous last axis"):
        A.attention_strided(q, q.astype(np.float64), q, out, lse, True, 1.0)
    with pytest.raises(ValueError, match="lse"):
        A.attention_strided(q, q, q, out, lse[:, :, :2], True, 1.0)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        A.attention_strided(q, q, q, out, lse, True, 1.0)
