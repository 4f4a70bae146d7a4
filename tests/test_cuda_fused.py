"""The cuda backend's fused kernels (fastnn/backends/cuda/fused.py) against the composition of
the numpy reference kernels they replace, on Numba's CUDA simulator at small shapes
(tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1)."""
import dataclasses
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fastnn.kernels import dispatch  # noqa: E402

ref = dispatch.load("numpy")
try:
    cu = dispatch.load("cuda")
except ImportError as e:
    pytest.skip(f"cuda backend unavailable: {e}", allow_module_level=True)

from numba import cuda  # noqa: E402

from fastnn.backends.cuda import common, fused, ops  # noqa: E402

DTYPES = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=3e-5, atol=3e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)


def host(d):
    return d.copy_to_host()


def randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


ACTS = [("relu", False), ("gelu", False), ("gelu", True)]


def act_ref(name, approximate, x):
    return ref.relu(x) if name == "relu" else ref.gelu(x, approximate)


def act_backward_ref(name, approximate, dy, x):
    return ref.relu_backward(dy, x) if name == "relu" else ref.gelu_backward(dy, x, approximate)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,approximate", ACTS)
def test_bias_act_forward_and_backward(dtype, name, approximate):
    rng = np.random.default_rng(3)
    x, dy = randn(rng, (2, 7, 13), dtype), randn(rng, (2, 7, 13), dtype)
    bias = randn(rng, 13, dtype)
    x[0, 0, :3] = -bias[:3]                     # relu exactly at 0 after the bias
    pre = ref.bias_add(x.reshape(-1, 13), bias).reshape(x.shape)
    y = fused.bias_act_device(cuda.to_device(x), cuda.to_device(bias), name, approximate)
    np.testing.assert_allclose(host(y), act_ref(name, approximate, pre), **tol(dtype))
    dx, dbias = fused.bias_act_backward_device(cuda.to_device(dy), cuda.to_device(x),
                                               cuda.to_device(bias), name, approximate)
    want_dx = act_backward_ref(name, approximate, dy, pre)
    np.testing.assert_allclose(host(dx), want_dx, **tol(dtype))
    np.testing.assert_allclose(host(dbias), ref.bias_grad(want_dx.reshape(-1, 13)), **tol(dtype))
    assert host(dx).dtype == host(dbias).dtype == dtype


def test_bias_act_backward_with_row_splits(monkeypatch):
    # more "SMs": several blocks of rows each write partial column sums, then a second pass
    monkeypatch.setattr(common, "sm_count", lambda: 16)
    monkeypatch.setattr(ops, "sm_count", lambda: 16)
    rng = np.random.default_rng(4)
    x, dy = randn(rng, (23, 6), np.float64), randn(rng, (23, 6), np.float64)
    bias = randn(rng, 6, np.float64)
    dx, dbias = fused.bias_act_backward_device(cuda.to_device(dy), cuda.to_device(x),
                                               cuda.to_device(bias), "gelu", False)
    want_dx = ref.gelu_backward(dy, x + bias, False)
    np.testing.assert_allclose(host(dx), want_dx, rtol=1e-12)
    np.testing.assert_allclose(host(dbias), want_dx.sum(0), rtol=1e-12)


def test_bias_act_rejects_unknown_activation():
    x = cuda.to_device(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="activation must be one of"):
        fused.bias_act_device(x, cuda.to_device(np.zeros(3, np.float32)), "tanh")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_ds", [False, True])
def test_add_layer_norm_forward_and_backward(dtype, with_ds):
    rng = np.random.default_rng(5)
    shape, c = (3, 5, 19), 19                   # 19 columns: 8 threads stride with a remainder
    x, r = randn(rng, shape, dtype) + 2, randn(rng, shape, dtype)
    w, b = randn(rng, c, dtype), randn(rng, c, dtype)
    dy, ds = randn(rng, shape, dtype), randn(rng, shape, dtype)
    s_want = x + r
    y_want, mean_want, rstd_want = ref.layer_norm(s_want.reshape(-1, c), w, b, 1e-5)
    y, s, mean, rstd = fused.add_layer_norm_device(cuda.to_device(x), cuda.to_device(r),
                                                   cuda.to_device(w), cuda.to_device(b), 1e-5)
    np.testing.assert_allclose(host(s), s_want, **tol(dtype))
    np.testing.assert_allclose(host(y), y_want.reshape(shape), **tol(dtype))
    np.testing.assert_allclose(host(mean), mean_want, **tol(dtype))
    np.testing.assert_allclose(host(rstd), rstd_want, **tol(dtype))
    dx, dw, db = fused.add_layer_norm_backward_device(
        cuda.to_device(dy), s, cuda.to_device(w), mean, rstd,
        cuda.to_device(ds) if with_ds else None)
    dx_want, dw_want, db_want = ref.layer_norm_backward(dy.reshape(-1, c), s_want.reshape(-1, c),
                                                        w, mean_want, rstd_want)
    if with_ds:
        dx_want = dx_want + ds.reshape(-1, c)
    np.testing.assert_allclose(host(dx), dx_want.reshape(shape), **tol(dtype))
    np.testing.assert_allclose(host(dw), dw_want, **tol(dtype))
    np.testing.assert_allclose(host(db), db_want, **tol(dtype))


def _adam_case(rng, dtype, shapes):
    params = [randn(rng, s, dtype) for s in shapes]
    grads = [randn(rng, s, dtype) for s in shapes]
    ms = [randn(rng, s, dtype) * 0.1 for s in shapes]
    vs = [np.abs(randn(rng, s, dtype)) * 0.01 for s in shapes]
    return params, grads, ms, vs


def _adam_reference(params, grads, ms, vs, *hyper):
    out = [[a.copy() for a in arrays] for arrays in (params, grads, ms, vs)]
    for p, g, m, v in zip(*out):
        ref.adam_step(p, g * hyper[-1], m, v, *hyper[:-1])
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled", [True, False])
def test_adam_multi_step_one_launch(dtype, decoupled, monkeypatch):
    rng = np.random.default_rng(6)
    shapes = [(5, 7), (0,), (3,), (1,), (40,), (2, 2, 3)]   # an empty one, one past a block
    params, grads, ms, vs = _adam_case(rng, dtype, shapes)
    hyper = (7, 1e-2, 0.9, 0.999, 1e-8, 0.1, decoupled, 0.5)
    want = _adam_reference(params, grads, ms, vs, *hyper)
    launches = []
    real_launch = fused.launch
    monkeypatch.setattr(fused, "launch", lambda k, *a: (launches.append(k), real_launch(k, *a)))
    d = [[cuda.to_device(a) for a in arrays] for arrays in (params, grads, ms, vs)]
    fused.adam_multi_step_device(*d, *hyper)
    updates = [k for k in launches if k is not fused._table_writer()]
    assert len(updates) == 1                    # every tensor in one update launch
    for arrays, got_arrays in ((want[0], d[0]), (want[2], d[2]), (want[3], d[3])):
        for w, g in zip(arrays, got_arrays):
            np.testing.assert_allclose(host(g), w, **tol(dtype))


def test_adam_multi_step_copies_nothing_and_caches_its_table(monkeypatch):
    rng = np.random.default_rng(7)
    params, grads, ms, vs = _adam_case(rng, np.float32, [(6,), (9,)])
    d = [[cuda.to_device(a) for a in arrays] for arrays in (params, grads, ms, vs)]
    launches = []
    real_launch = fused.launch
    monkeypatch.setattr(fused, "launch", lambda k, *a: (launches.append(k), real_launch(k, *a)))
    fused._TABLES.clear()
    common.transfer_log().clear()
    hyper = (1, 1e-3, 0.9, 0.999, 1e-8, 0.0, True, 1.0)
    fused.adam_multi_step_device(*d, *hyper)
    assert len(launches) == 2                  # the address table written, then the update
    fused.adam_multi_step_device(*d, *(2,) + hyper[1:])
    assert len(launches) == 3                  # same arrays: the cached table, one launch
    d[1] = [cuda.to_device(g) for g in grads]   # fresh gradients, as each backward makes
    fused.adam_multi_step_device(*d, *(3,) + hyper[1:])
    assert len(launches) == 5
    assert sum(common.transfer_log().values()) == 0   # no host<->device copy in any step


def test_adam_multi_step_table_in_several_chunks(monkeypatch):
    monkeypatch.setattr(fused, "_TABLE_CHUNK", 7)   # 5 tensors: 21 values in 3 launches
    rng = np.random.default_rng(9)
    params, grads, ms, vs = _adam_case(rng, np.float64, [(3,), (4,), (1,), (6,), (2,)])
    hyper = (2, 1e-2, 0.9, 0.999, 1e-8, 0.0, False, 1.0)
    want = _adam_reference(params, grads, ms, vs, *hyper)
    d = [[cuda.to_device(a) for a in arrays] for arrays in (params, grads, ms, vs)]
    fused.adam_multi_step_device(*d, *hyper)
    for w, g in zip(want[0], d[0]):
        np.testing.assert_allclose(host(g), w, rtol=1e-12)


def test_adam_multi_step_host_entry_and_strided_fallback():
    rng = np.random.default_rng(8)
    params, grads, ms, vs = _adam_case(rng, np.float32, [(4, 3), (11,)])
    hyper = (3, 1e-2, 0.9, 0.99, 1e-8, 0.01, True, 1.0)
    want = _adam_reference(params, grads, ms, vs, *hyper)
    cu.adam_multi_step(params, grads, ms, vs, *hyper)      # the backend's host-array door
    for w, g in zip(want[0] + want[2] + want[3], params + ms + vs):
        np.testing.assert_allclose(g, w, rtol=3e-5, atol=3e-6)
    # a strided device view cannot be reached through the address table: updated on its own
    big = cuda.to_device(np.arange(12, dtype=np.float32).reshape(4, 3))
    col = big[:, 1]
    g, m, v = (cuda.to_device(np.full(4, x, np.float32)) for x in (1.0, 0.0, 0.0))
    fused.adam_multi_step_device([col], [g], [m], [v], 1, 0.1, 0.9, 0.999, 1e-8, 0.0, True)
    np.testing.assert_allclose(host(big)[:, 1], np.arange(4) * 3 + 1 - 0.1, rtol=1e-5)
    np.testing.assert_array_equal(host(big)[:, 0], np.arange(4) * 3)


def test_adam_multi_step_grad_scale_on_the_device(monkeypatch):
    # clip_grad_norm_'s factor as a 1-element device array (float64 for float32 tensors): read by
    # the kernel, no copy to the host, still one update launch
    rng = np.random.default_rng(10)
    params, grads, ms, vs = _adam_case(rng, np.float32, [(5,), (2, 3)])
    hyper = (4, 1e-2, 0.9, 0.999, 1e-8, 0.1, True)
    want = _adam_reference(params, grads, ms, vs, *hyper, 0.25)
    d = [[cuda.to_device(a) for a in arrays] for arrays in (params, grads, ms, vs)]
    scale = cuda.to_device(np.array(0.25))                  # 0-d
    launches = []
    real_launch = fused.launch
    monkeypatch.setattr(fused, "launch", lambda k, *a: (launches.append(k), real_launch(k, *a)))
    common.transfer_log().clear()
    fused.adam_multi_step_device(*d, *hyper, scale)
    assert sum(common.transfer_log().values()) == 0
    assert len([k for k in launches if k is not fused._table_writer()]) == 1
    for w, g in zip(want[0] + want[2] + want[3], d[0] + d[2] + d[3]):
        np.testing.assert_allclose(host(g), w, rtol=3e-5, atol=3e-6)
    with pytest.raises(ValueError, match="one value"):
        fused.adam_multi_step_device(*d, *hyper, cuda.to_device(np.ones(2)))


def test_adam_multi_step_rejects_mixed_dtypes():
    a32 = cuda.to_device(np.zeros(3, np.float32))
    a64 = cuda.to_device(np.zeros(3, np.float64))
    with pytest.raises(ValueError, match="one dtype"):
        fused.adam_multi_step_device([a32], [a64], [a32], [a32], 1, 0.1, 0.9, 0.999, 1e-8, 0.0,
                                     True)


def test_device_kernel_finds_the_fused_kernels():
    import importlib
    pkg = importlib.import_module("fastnn.backends.cuda")
    for name in ("bias_act", "bias_act_backward", "add_layer_norm", "add_layer_norm_backward",
                 "adam_multi_step"):
        assert pkg.device_kernel(name) is getattr(fused, name + "_device")
