"""Pooling (max_pool2d, avg_pool2d, adaptive_avg_pool2d) and channel normalization (batch_norm,
group_norm) kernels, forward and backward, on every backend.

Each backend is checked against the numpy reference on hypothesis-chosen shapes (1x1 images,
kernels larger than the input, ceil_mode windows, strides larger than kernels, dilation, odd
sizes), against PyTorch (when importable) in float64 to 1e-10 including max-pool tie-breaking,
NaN and the running statistics; every backward against finite differences in float64; and the
bad inputs raise clear errors before any compiled code runs.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import fastnn.kernels as K
from fastnn.kernels.families.pool import pool_output_size

from conftest import numeric_grad, skip_if_missing

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # PyTorch is optional: those comparisons are skipped
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
T64 = dict(rtol=1e-10, atol=1e-10)


def tol(dtype):
    return T64 if dtype == np.float64 else dict(rtol=1e-4, atol=2e-5)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def as64(*args):
    return [a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
            for a in args]


def _cap(backend, n):
    return min(n, 6) if backend == "cuda" else n


@st.composite
def pool_config(draw, dilation=True, small=False):
    """(shape, kwargs) of a valid pooling call: padding <= kernel // 2, output size >= 1."""
    top = 5 if small else 9
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, top)), draw(st.integers(1, top))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    ceil = draw(st.booleans())
    o = [pool_output_size(size, *a, ceil) for size, a in zip((h, w), zip(k, s, p, d))]
    assume(min(o) >= 1)
    kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
    if dilation:
        kw["dilation"] = d
    return (n, c, h, w), kw


def _no_empty_windows(shape, kw):
    """True when every max-pool window holds an input element (with dilation a window can lie
    wholly in the padding; PyTorch's backward then writes out of bounds, so torch is not asked)."""
    x = np.zeros(shape)
    _, idx = K.max_pool2d(x, **kw, backend="numpy")
    return bool((idx < shape[-2] * shape[-1]).all())


# ================================================================ against the reference
@given(cfg=pool_config(), dtype=st.sampled_from([np.float32, np.float64]), ties=st.booleans())
def test_max_pool2d_matches_reference(backend, cfg, dtype, ties):
    skip_if_missing(backend, "max_pool2d")
    shape, kw = cfg
    rng = np.random.default_rng(0)
    x = (rng.integers(-2, 3, shape) if ties else rng.standard_normal(shape)).astype(dtype)
    y, idx = K.max_pool2d(x, **kw, backend=backend)
    y0, idx0 = K.max_pool2d(x, **kw, backend="numpy")
    np.testing.assert_array_equal(y, y0)          # a max is exact
    np.testing.assert_array_equal(idx, idx0)      # and so is which element wins
    assert idx.dtype == np.int64 and y.dtype == dtype
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(K.max_pool2d_backward(dy, idx, x.shape, backend=backend),
                               K.max_pool2d_backward(dy, idx, x.shape, backend="numpy"),
                               **tol(dtype))


@given(cfg=pool_config(dilation=False), dtype=st.sampled_from([np.float32, np.float64]),
       cip=st.booleans(), div=st.sampled_from([None, None, 1, 3, -2]))
def test_avg_pool2d_matches_reference(backend, cfg, dtype, cip, div):
    skip_if_missing(backend, "avg_pool2d")
    shape, kw = cfg
    kw = dict(kw, count_include_pad=cip, divisor_override=div)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    y = K.avg_pool2d(x, **kw, backend=backend)
    np.testing.assert_allclose(y, K.avg_pool2d(x, **kw, backend="numpy"), **tol(dtype))
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(K.avg_pool2d_backward(dy, x, **kw, backend=backend),
                               K.avg_pool2d_backward(dy, x, **kw, backend="numpy"), **tol(dtype))


@given(h=st.integers(1, 9), w=st.integers(1, 9), oh=st.integers(1, 10), ow=st.integers(1, 10),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_adaptive_avg_pool2d_matches_reference(backend, h, w, oh, ow, dtype):
    skip_if_missing(backend, "adaptive_avg_pool2d")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, h, w)).astype(dtype)
    y = K.adaptive_avg_pool2d(x, (oh, ow), backend=backend)
    np.testing.assert_allclose(y, K.adaptive_avg_pool2d(x, (oh, ow), backend="numpy"), **tol(dtype))
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(K.adaptive_avg_pool2d_backward(dy, x, backend=backend),
                               K.adaptive_avg_pool2d_backward(dy, x, backend="numpy"),
                               **tol(dtype))


@st.composite
def norm_shape(draw):
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    spatial = draw(st.lists(st.integers(1, 7), min_size=0, max_size=2))
    return (n, c, *spatial)


@given(shape=norm_shape(), dtype=st.sampled_from([np.float32, np.float64]),
       training=st.booleans(), shift=st.sampled_from([0.0, 30.0]))
def test_batch_norm_matches_reference(backend, shape, dtype, training, shift):
    skip_if_missing(backend, "batch_norm")
    assume(not training or shape[0] * int(np.prod(shape[2:])) > 1)
    rng = np.random.default_rng(3)
    c = shape[1]
    x = (rng.standard_normal(shape) + shift).astype(dtype)
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.random(c).astype(dtype) + 0.5
    rm0, rv0 = rm.copy(), rv.copy()
    got = K.batch_norm(x, rm, rv, w, b, training=training, momentum=0.3, backend=backend)
    want = K.batch_norm(x, rm0, rv0, w, b, training=training, momentum=0.3, backend="numpy")
    for g, v in zip(got + (rm, rv), want + (rm0, rv0)):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, v, **tol(dtype))
    dy = rng.standard_normal(shape).astype(dtype)
    for g, v in zip(K.batch_norm_backward(dy, x, w, *got[1:], training, backend=backend),
                    K.batch_norm_backward(dy, x, w, *want[1:], training, backend="numpy")):
        np.testing.assert_allclose(g, v, **tol(dtype))


@given(shape=norm_shape(), groups=st.integers(1, 6), dtype=st.sampled_from([np.float32,
                                                                            np.float64]))
def test_group_norm_matches_reference(backend, shape, groups, dtype):
    skip_if_missing(backend, "group_norm")
    assume(shape[1] % groups == 0)
    rng = np.random.default_rng(4)
    c = shape[1]
    x = rng.standard_normal(shape).astype(dtype)
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    got = K.group_norm(x, groups, w, b, backend=backend)
    want = K.group_norm(*as64(x, groups, w, b), backend="numpy")   # the float64 oracle
    # float32 rounding is amplified by rstd (1/sqrt(eps) for a one-value group)
    t32 = dict(rtol=1e-4, atol=2e-5 * max(1.0, float(want[2].max())))
    for g, v in zip(got, want):
        np.testing.assert_allclose(g, v, **(T64 if dtype == np.float64 else t32))
    dy = rng.standard_normal(shape).astype(dtype)
    for g, v in zip(K.group_norm_backward(dy, x, w, *got[1:], groups, backend=backend),
                    K.group_norm_backward(*as64(dy, x, w, *want[1:], groups), backend="numpy")):
        np.testing.assert_allclose(g, v, **(T64 if dtype == np.float64 else t32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_inputs_take_the_threaded_paths(backend, dtype):
    """Sizes above the threading thresholds (numba prange, OpenMP), incl. ragged splits."""
    if backend == "cuda":
        pytest.skip("the simulator runs small shapes only")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 7, 33, 31)).astype(dtype)
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)):
        y, idx = K.max_pool2d(x, **kw, backend=backend)
        y0, idx0 = K.max_pool2d(x, **kw, backend="numpy")
        np.testing.assert_array_equal(idx, idx0)
        np.testing.assert_array_equal(y, y0)
        dy = rng.standard_normal(y.shape).astype(dtype)
        np.testing.assert_allclose(K.max_pool2d_backward(dy, idx, x.shape, backend=backend),
                                   K.max_pool2d_backward(dy, idx, x.shape, backend="numpy"),
                                   **tol(dtype))
        np.testing.assert_allclose(K.avg_pool2d(x, **kw, backend=backend),
                                   K.avg_pool2d(x, **kw, backend="numpy"), **tol(dtype))
        dy = rng.standard_normal(y.shape).astype(dtype)
        np.testing.assert_allclose(K.avg_pool2d_backward(dy, x, **kw, backend=backend),
                                   K.avg_pool2d_backward(dy, x, **kw, backend="numpy"),
                                   **tol(dtype))
    np.testing.assert_allclose(K.adaptive_avg_pool2d(x, (5, 3), backend=backend),
                               K.adaptive_avg_pool2d(x, (5, 3), backend="numpy"), **tol(dtype))
    dy = rng.standard_normal(x.shape).astype(dtype)
    w, b = rng.standard_normal(7).astype(dtype), rng.standard_normal(7).astype(dtype)
    for training in (True, False):
        rm, rv = np.zeros(7, dtype), np.ones(7, dtype)
        rm0, rv0 = rm.copy(), rv.copy()
        got = K.batch_norm(x, rm, rv, w, b, training=training, backend=backend)
        want = K.batch_norm(x, rm0, rv0, w, b, training=training, backend="numpy")
        for g, v in zip(got + (rm, rv), want + (rm0, rv0)):
            np.testing.assert_allclose(g, v, **tol(dtype))
        for g, v in zip(K.batch_norm_backward(dy, x, w, *got[1:], training, backend=backend),
                        K.batch_norm_backward(dy, x, w, *want[1:], training, backend="numpy")):
            np.testing.assert_allclose(g, v, rtol=tol(dtype)["rtol"], atol=10 * tol(dtype)["atol"])
    got = K.group_norm(x, 7, w, b, backend=backend)
    want = K.group_norm(x, 7, w, b, backend="numpy")
    for g, v in zip(got, want):
        np.testing.assert_allclose(g, v, **tol(dtype))
    for g, v in zip(K.group_norm_backward(dy, x, w, *got[1:], 7, backend=backend),
                    K.group_norm_backward(dy, x, w, *want[1:], 7, backend="numpy")):
        np.testing.assert_allclose(g, v, rtol=tol(dtype)["rtol"], atol=10 * tol(dtype)["atol"])


def test_strided_and_3d_inputs(backend):
    skip_if_missing(backend, "max_pool2d")
    rng = np.random.default_rng(6)
    base = rng.standard_normal((2, 3, 6, 10))
    x = base[:, :, :, ::2]                                   # not contiguous
    y, idx = K.max_pool2d(x, 2, backend=backend)
    y0, idx0 = K.max_pool2d(np.ascontiguousarray(x), 2, backend="numpy")
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(idx, idx0)
    y3, idx3 = K.max_pool2d(x[0], 2, backend=backend)        # (C, H, W)
    np.testing.assert_array_equal(y3, y0[0])
    np.testing.assert_array_equal(idx3, idx0[0])
    np.testing.assert_allclose(K.avg_pool2d(x, 3, 1, 1, backend=backend),
                               K.avg_pool2d(np.ascontiguousarray(x), 3, 1, 1, backend="numpy"),
                               **T64)
    out = K.batch_norm(x, training=True, backend=backend)
    np.testing.assert_allclose(out[0], K.batch_norm(x, training=True, backend="numpy")[0], **T64)


# ================================================================ against PyTorch (float64)
@needs_torch
@given(cfg=pool_config(small=True), ties=st.booleans())
def test_max_pool2d_matches_torch(backend, cfg, ties):
    skip_if_missing(backend, "max_pool2d")
    shape, kw = cfg
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)
    y, idx = K.max_pool2d(x, **kw, backend=backend)
    ty, tidx = F.max_pool2d(t(x), **kw, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())     # PyTorch's tie-breaking: first max
    if not _no_empty_windows(shape, kw):
        return
    xx = t(x).requires_grad_()
    dy = rng.standard_normal(y.shape)
    F.max_pool2d(xx, **kw).backward(t(dy))
    np.testing.assert_allclose(K.max_pool2d_backward(dy, idx, x.shape, backend=backend),
                               xx.grad.numpy(), **T64)


@needs_torch
def test_max_pool2d_nan_and_inf_as_torch(backend):
    skip_if_missing(backend, "max_pool2d")
    x = np.array([[[[1.0, np.nan, 2.0, np.nan],
                    [-np.inf, -np.inf, 5.0, 5.0],
                    [3.0, 3.0, -np.inf, np.nan],
                    [3.0, 3.0, -np.inf, -np.inf]]]])
    both_inf = np.array([[[[np.inf, -np.inf, 1.0, np.inf],           # inf - inf, no NaN
                           [-np.inf, np.inf, np.inf, 2.0],
                           [0.0, -0.0, -0.0, 0.0],                   # -0 == 0: the first wins
                           [1e38, 3e38, -3e38, 3e38]]]], np.float32)  # sums overflow
    for x in (x, x.astype(np.float32), both_inf):
        for kw in (dict(kernel_size=2), dict(kernel_size=(1, 4)), dict(kernel_size=2, stride=1),
                   dict(kernel_size=3, padding=1, ceil_mode=True)):
            y, idx = K.max_pool2d(x, **kw, backend=backend)
            ty, tidx = F.max_pool2d(t(x), **kw, return_indices=True)
            np.testing.assert_array_equal(y, ty.numpy())
            np.testing.assert_array_equal(idx, tidx.numpy(), err_msg=str(kw))


@needs_torch
def test_max_pool2d_windows_wholly_in_padding_as_torch(backend):
    """With dilation a window can miss the input: -inf and an index past the plane, as PyTorch;
    the backward ignores it."""
    skip_if_missing(backend, "max_pool2d")
    x = np.arange(1.0, 4.0).reshape(1, 1, 1, 3)
    kw = dict(kernel_size=2, stride=1, padding=1, dilation=2)
    y, idx = K.max_pool2d(x, **kw, backend=backend)
    ty, tidx = F.max_pool2d(t(x), **kw, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    dx = K.max_pool2d_backward(np.ones_like(y), idx, x.shape, backend=backend)
    np.testing.assert_array_equal(dx, np.zeros_like(x))


@needs_torch
@given(cfg=pool_config(dilation=False, small=True), cip=st.booleans(),
       div=st.sampled_from([None, None, 2, -3]))
def test_avg_pool2d_matches_torch(backend, cfg, cip, div):
    skip_if_missing(backend, "avg_pool2d")
    shape, kw = cfg
    kw = dict(kw, count_include_pad=cip, divisor_override=div)
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape)
    xx = t(x).requires_grad_()
    ty = F.avg_pool2d(xx, **kw)
    y = K.avg_pool2d(x, **kw, backend=backend)
    np.testing.assert_allclose(y, ty.detach().numpy(), **T64)
    dy = rng.standard_normal(y.shape)
    ty.backward(t(dy))
    np.testing.assert_allclose(K.avg_pool2d_backward(dy, x, **kw, backend=backend),
                               xx.grad.numpy(), **T64)


@needs_torch
@given(h=st.integers(1, 7), w=st.integers(1, 7), oh=st.integers(1, 8), ow=st.integers(1, 8))
def test_adaptive_avg_pool2d_matches_torch(backend, h, w, oh, ow):
    skip_if_missing(backend, "adaptive_avg_pool2d")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 2, h, w))
    xx = t(x).requires_grad_()
    ty = F.adaptive_avg_pool2d(xx, (oh, ow))
    y = K.adaptive_avg_pool2d(x, (oh, ow), backend=backend)
    np.testing.assert_allclose(y, ty.detach().numpy(), **T64)
    dy = rng.standard_normal(y.shape)
    ty.backward(t(dy))
    np.testing.assert_allclose(K.adaptive_avg_pool2d_backward(dy, x, (oh, ow), backend=backend),
                               xx.grad.numpy(), **T64)


@needs_torch
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (3, 4, 5, 6), (2, 2, 1, 1)])
def test_batch_norm_matches_torch(backend, shape, training):
    skip_if_missing(backend, "batch_norm")
    rng = np.random.default_rng(10)
    c = shape[1]
    x = rng.standard_normal(shape) * 2 + 1
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    rm, rv = rng.standard_normal(c), rng.random(c) + 0.5
    trm, trv = t(rm.copy()), t(rv.copy())
    xx, tw, tb = (t(a).requires_grad_() for a in (x, w, b))
    ty = F.batch_norm(xx, trm, trv, tw, tb, training=training, momentum=0.2, eps=1e-4)
    y, mean, invstd = K.batch_norm(x, rm, rv, w, b, training=training, momentum=0.2, eps=1e-4,
                                   backend=backend)
    np.testing.assert_allclose(y, ty.detach().numpy(), **T64)
    np.testing.assert_allclose(rm, trm.numpy(), **T64)    # running stats: unbiased variance
    np.testing.assert_allclose(rv, trv.numpy(), **T64)
    dy = rng.standard_normal(shape)
    ty.backward(t(dy))
    dx, dw, db = K.batch_norm_backward(dy, x, w, mean, invstd, training, backend=backend)
    np.testing.assert_allclose(dx, xx.grad.numpy(), **T64)
    np.testing.assert_allclose(dw, tw.grad.numpy(), **T64)
    np.testing.assert_allclose(db, tb.grad.numpy(), **T64)


@needs_torch
def test_batch_norm_running_stats_over_steps_as_torch(backend):
    """Several training steps, then eval, against nn.BatchNorm2d; momentum=None is the
    cumulative average over num_batches_tracked."""
    skip_if_missing(backend, "batch_norm")
    rng = np.random.default_rng(11)
    for momentum in (0.1, None):
        bn = torch.nn.BatchNorm2d(3, momentum=momentum).double()
        rm, rv = np.zeros(3), np.ones(3)
        for step in range(1, 4):
            x = rng.standard_normal((4, 3, 2, 5)) * step + step
            ty = bn(t(x))
            y, _, _ = K.batch_norm(x, rm, rv, training=True, momentum=momentum,
                                   num_batches_tracked=step, backend=backend)
            np.testing.assert_allclose(y, ty.detach().numpy(), **T64)
            np.testing.assert_allclose(rm, bn.running_mean.numpy(), **T64)
            np.testing.assert_allclose(rv, bn.running_var.numpy(), **T64)
        bn.eval()
        x = rng.standard_normal((2, 3, 2, 2))
        y, _, _ = K.batch_norm(x, rm, rv, training=False, backend=backend)
        np.testing.assert_allclose(y, bn(t(x)).detach().numpy(), **T64)


@needs_torch
@pytest.mark.parametrize("shape,groups", [((2, 6, 5), 3), ((3, 4, 3, 3), 4), ((2, 6, 4, 5), 1),
                                          ((1, 8, 2, 3), 2), ((4, 3), 3)])
def test_group_norm_matches_torch(backend, shape, groups):
    skip_if_missing(backend, "group_norm")
    rng = np.random.default_rng(12)
    c = shape[1]
    x = rng.standard_normal(shape) * 3 - 1
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    xx, tw, tb = (t(a).requires_grad_() for a in (x, w, b))
    ty = F.group_norm(xx, groups, tw, tb, eps=1e-5)
    y, mean, rstd = K.group_norm(x, groups, w, b, eps=1e-5, backend=backend)
    np.testing.assert_allclose(y, ty.detach().numpy(), **T64)
    dy = rng.standard_normal(shape)
    ty.backward(t(dy))
    dx, dw, db = K.group_norm_backward(dy, x, w, mean, rstd, groups, backend=backend)
    np.testing.assert_allclose(dx, xx.grad.numpy(), **T64)
    np.testing.assert_allclose(dw, tw.grad.numpy(), **T64)
    np.testing.assert_allclose(db, tb.grad.numpy(), **T64)


# ================================================================ finite differences (float64)
FD = dict(rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1,
                                                           ceil_mode=True),
                                dict(kernel_size=2, stride=1, dilation=2)])
def test_max_pool2d_backward_finite_differences(cpu_backend, kw):
    rng = np.random.default_rng(13)
    x = rng.permutation(50).reshape(1, 2, 5, 5).astype(np.float64) / 7   # no ties
    y, idx = K.max_pool2d(x, **kw, backend=cpu_backend)
    dy = rng.standard_normal(y.shape)
    want = numeric_grad(lambda: float((K.max_pool2d(x, **kw, backend="numpy")[0] * dy).sum()), x)
    np.testing.assert_allclose(K.max_pool2d_backward(dy, idx, x.shape, backend=cpu_backend),
                               want, **FD)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1,
                                                           ceil_mode=True),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                     count_include_pad=False),
                                dict(kernel_size=(2, 3), stride=(3, 1), divisor_override=4)])
def test_avg_pool2d_backward_finite_differences(cpu_backend, kw):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((1, 2, 5, 6))
    y = K.avg_pool2d(x, **kw, backend=cpu_backend)
    dy = rng.standard_normal(y.shape)
    want = numeric_grad(lambda: float((K.avg_pool2d(x, **kw, backend="numpy") * dy).sum()), x)
    np.testing.assert_allclose(K.avg_pool2d_backward(dy, x, **kw, backend=cpu_backend), want,
                               **FD)


@pytest.mark.parametrize("out", [(2, 3), (4, 7), (1, 1)])
def test_adaptive_avg_pool2d_backward_finite_differences(cpu_backend, out):
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 1, 5, 4))
    dy = rng.standard_normal((2, 1) + out)
    want = numeric_grad(lambda: float((K.adaptive_avg_pool2d(x, out, backend="numpy")
                                       * dy).sum()), x)
    np.testing.assert_allclose(K.adaptive_avg_pool2d_backward(dy, x, out, backend=cpu_backend),
                               want, **FD)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_backward_finite_differences(cpu_backend, training):
    rng = np.random.default_rng(16)
    x = rng.standard_normal((3, 2, 2, 3)) * 2 + 0.5
    w, b = rng.standard_normal(2), rng.standard_normal(2)
    rm, rv = rng.standard_normal(2), rng.random(2) + 0.5
    dy = rng.standard_normal(x.shape)

    def loss():
        y = K.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training, backend="numpy")[0]
        return float((y * dy).sum())
    _, mean, invstd = K.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training,
                                   backend=cpu_backend)
    dx, dw, db = K.batch_norm_backward(dy, x, w, mean, invstd, training, backend=cpu_backend)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), **FD)
    np.testing.assert_allclose(dw, numeric_grad(loss, w), **FD)
    np.testing.assert_allclose(db, numeric_grad(loss, b), **FD)


@pytest.mark.parametrize("shape,groups", [((2, 4, 3), 2), ((1, 3, 2, 2), 1), ((2, 2, 5), 2)])
def test_group_norm_backward_finite_differences(cpu_backend, shape, groups):
    rng = np.random.default_rng(17)
    x = rng.standard_normal(shape)
    w, b = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    dy = rng.standard_normal(shape)

    def loss():
        return float((K.group_norm(x, groups, w, b, backend="numpy")[0] * dy).sum())
    _, mean, rstd = K.group_norm(x, groups, w, b, backend=cpu_backend)
    dx, dw, db = K.group_norm_backward(dy, x, w, mean, rstd, groups, backend=cpu_backend)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), **FD)
    np.testing.assert_allclose(dw, numeric_grad(loss, w), **FD)
    np.testing.assert_allclose(db, numeric_grad(loss, b), **FD)


# ================================================================ bad input
X = np.zeros((2, 4, 5, 5), np.float32)


@pytest.mark.parametrize("call,error,match", [
    (lambda: K.max_pool2d(np.zeros((5, 5), np.float32), 2), ValueError, "3-D .* or 4-D"),
    (lambda: K.max_pool2d(np.zeros((1, 2, 3, 4, 5), np.float32), 2), ValueError, "4-D"),
    (lambda: K.max_pool2d(np.zeros((1, 2, 0, 4), np.float32), 2), ValueError, "non-zero"),
    (lambda: K.max_pool2d(X, 6), ValueError, "output size .* too small"),
    (lambda: K.max_pool2d(X, 3, padding=2), ValueError, "padding .* too large"),
    (lambda: K.max_pool2d(X, 2, stride=0), ValueError, "stride must be >= 1"),
    (lambda: K.max_pool2d(X, 0), ValueError, "kernel_size must be >= 1"),
    (lambda: K.max_pool2d(X, 2, dilation=0), ValueError, "dilation must be >= 1"),
    (lambda: K.max_pool2d(X, (2, 2, 2)), TypeError, "kernel_size must be an int or a pair"),
    (lambda: K.max_pool2d(X, 2.5), TypeError, "kernel_size"),
    (lambda: K.max_pool2d(X.astype(np.int32), 2), TypeError, "unsupported dtype"),
    (lambda: K.max_pool2d_backward(np.zeros((2, 4, 2, 2), np.float32),
                                   np.zeros((2, 4, 2, 3), np.int64), X.shape), ValueError,
     "indices has shape"),
    (lambda: K.max_pool2d_backward(np.zeros((2, 4, 2, 2), np.float32),
                                   -np.ones((2, 4, 2, 2), np.int64), X.shape), IndexError,
     "negative"),
    (lambda: K.max_pool2d_backward(np.zeros((2, 4, 2, 2), np.float32),
                                   np.zeros((2, 4, 2, 2), np.float32), X.shape), TypeError,
     "integer"),
    (lambda: K.max_pool2d_backward(np.zeros((2, 4, 2, 2), np.float32),
                                   np.zeros((2, 4, 2, 2), np.int64), (3, 4, 5, 5)), ValueError,
     "does not fit"),
    (lambda: K.avg_pool2d(X, 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda: K.avg_pool2d(X, 2, padding=(0, 2)), ValueError, "padding .* too large"),
    (lambda: K.avg_pool2d(X, 7), ValueError, "too small"),
    (lambda: K.avg_pool2d_backward(np.zeros((2, 4, 3, 3), np.float32), X, 2), ValueError,
     "dy has shape"),
    (lambda: K.adaptive_avg_pool2d(X, (0, 2)), ValueError, "output size .* >= 1"),
    (lambda: K.adaptive_avg_pool2d(X, (1, 2, 3)), ValueError, "output_size"),
    (lambda: K.adaptive_avg_pool2d(X[0, 0], 2), ValueError, "3-D"),
    (lambda: K.adaptive_avg_pool2d_backward(np.zeros((2, 4, 2, 2), np.float32), X, (3, 3)),
     ValueError, "dy has shape"),
    (lambda: K.batch_norm(np.zeros(4, np.float32), training=True), ValueError, "at least 2-D"),
    (lambda: K.batch_norm(X, training=False), ValueError, "eval mode"),
    (lambda: K.batch_norm(X, np.zeros(4), np.ones(4), training=True), TypeError, "dtype"),
    (lambda: K.batch_norm(X, np.zeros(3, np.float32), np.ones(3, np.float32)), ValueError,
     "shape"),
    (lambda: K.batch_norm(X, np.zeros(4, np.float32), None), ValueError, "both"),
    (lambda: K.batch_norm(X, weight=np.ones(4)), TypeError, "dtype"),
    (lambda: K.batch_norm(X, weight=np.ones(5, np.float32), training=True), ValueError,
     "weight has shape"),
    (lambda: K.batch_norm(np.zeros((1, 4, 1, 1), np.float32), training=True), ValueError,
     "more than 1 value per channel"),
    (lambda: K.batch_norm(X, np.zeros(4, np.float32), np.ones(4, np.float32), training=True,
                          momentum=None), ValueError, "num_batches_tracked"),
    (lambda: K.batch_norm_backward(X, X[:1], None, np.zeros(4, np.float32),
                                   np.ones(4, np.float32)), ValueError, "shape"),
    (lambda: K.batch_norm_backward(X, X.astype(np.float64), None, np.zeros(4, np.float32),
                                   np.ones(4, np.float32)), TypeError, "dtype"),
    (lambda: K.batch_norm_backward(X, X, None, None, np.ones(4, np.float32)), ValueError,
     "mean is required"),
    (lambda: K.group_norm(X, 3), ValueError, "4 channels are not divisible by num_groups=3"),
    (lambda: K.group_norm(X, 0), ValueError, "not divisible"),
    (lambda: K.group_norm(X, 2.0), TypeError, "num_groups"),
    (lambda: K.group_norm(X, 2, np.ones(4)), TypeError, "dtype"),
    (lambda: K.group_norm(np.zeros(3, np.float32), 1), ValueError, "at least 2-D"),
    (lambda: K.group_norm_backward(X, X, None, np.zeros((2, 3), np.float32),
                                   np.ones((2, 3), np.float32), 2), ValueError, "mean has shape"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bad_input_names_the_kernel():
    with pytest.raises(ValueError, match="^group_norm: "):
        K.group_norm(X, 3)
    with pytest.raises(ValueError, match="^max_pool2d: "):
        K.max_pool2d(X, 6)


def test_empty_batch(backend):
    skip_if_missing(backend, "max_pool2d")
    x = np.zeros((0, 3, 4, 4))
    y, idx = K.max_pool2d(x, 2, backend=backend)
    assert y.shape == idx.shape == (0, 3, 2, 2)
    assert K.avg_pool2d(x, 2, backend=backend).shape == (0, 3, 2, 2)
    assert K.adaptive_avg_pool2d(x, 3, backend=backend).shape == (0, 3, 3, 3)
    assert K.group_norm(x, 3, backend=backend)[0].shape == x.shape
    rm, rv = np.zeros(3), np.ones(3)
    y, mean, invstd = K.batch_norm(x, rm, rv, training=True, backend=backend)   # as PyTorch
    assert y.shape == x.shape and mean.shape == invstd.shape == (3,)
    np.testing.assert_array_equal(rm, 0)


# ================================================================ the trusted entry points
def test_trusted_entry_points_match_the_checked_ones(current_cpu_backend):
    from fastnn.kernels import trusted as T
    rng = np.random.default_rng(18)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    for args in [(2,), (3, 2, 1, 1, True), ([2, 3],), ((2, 2), (1, 2))]:
        y, idx = T.max_pool2d(x, *args)
        y0, idx0 = K.max_pool2d(x, *args)
        np.testing.assert_array_equal(y, y0)
        np.testing.assert_array_equal(idx, idx0)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        np.testing.assert_array_equal(T.max_pool2d_backward(dy, idx, x.shape),
                                      K.max_pool2d_backward(dy, idx, x.shape))
    y, _ = T.max_pool2d(x[:, :, :, ::2], 2)                       # strided: the checked path
    np.testing.assert_array_equal(y, K.max_pool2d(x[:, :, :, ::2], 2)[0])
    with pytest.raises(ValueError, match="max_pool2d: output size"):
        T.max_pool2d(x, 8)                                         # its errors too
    with pytest.raises(ValueError, match="padding"):
        T.max_pool2d(x, 2, padding=2)
    np.testing.assert_array_equal(T.adaptive_avg_pool2d(x, (2, 3)), K.adaptive_avg_pool2d(x, (2, 3)))
    dy = rng.standard_normal((2, 3, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(T.adaptive_avg_pool2d_backward(dy, x, (2, 3)),
                                  K.adaptive_avg_pool2d_backward(dy, x, (2, 3)))
    w, b = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    for training in (True, False):
        for stats in (True, False):
            if not (training or stats):
                continue
            rm, rv = (np.zeros(3, np.float32), np.ones(3, np.float32)) if stats else (None, None)
            rm0, rv0 = (rm.copy(), rv.copy()) if stats else (None, None)
            got = T.batch_norm(x, rm, rv, w, b, training, 0.1, 1e-5)
            want = K.batch_norm(x, rm0, rv0, w, b, training, 0.1, 1e-5)
            for g, v in zip(got, want):
                np.testing.assert_array_equal(g, v)
            if stats:
                np.testing.assert_array_equal(rm, rm0)
                np.testing.assert_array_equal(rv, rv0)
            dy = rng.standard_normal(x.shape).astype(np.float32)
            for g, v in zip(T.batch_norm_backward(dy, x, w, *got[1:], training),
                            K.batch_norm_backward(dy, x, w, *got[1:], training)):
                np.testing.assert_array_equal(g, v)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        T.batch_norm(x[:1, :, :1, :1], None, None, w, b, True)
    with pytest.raises(TypeError, match="dtype"):
        T.batch_norm(x, np.zeros(3), np.ones(3), w, b, True)


def test_cuda_with_the_gpu_launch_sizes():
    """The cuda kernels with a real GPU's block sizes (256 threads), on the simulator."""
    if "cuda" not in K.available_backends():
        pytest.skip("the cuda backend is unavailable")
    from fastnn.backends.cuda import common
    rng = np.random.default_rng(19)
    x = rng.standard_normal((2, 4, 5, 3))
    w, b = rng.standard_normal(4), rng.standard_normal(4)
    dy = rng.standard_normal(x.shape)
    with common.using_launch_config(common.GPU):
        y, idx = K.max_pool2d(x, 2, 1, 1, ceil_mode=True, backend="cuda")
        y0, idx0 = K.max_pool2d(x, 2, 1, 1, ceil_mode=True, backend="numpy")
        np.testing.assert_array_equal(idx, idx0)
        got = K.batch_norm(x, training=True, backend="cuda")
        for g, v in zip(got, K.batch_norm(x, training=True, backend="numpy")):
            np.testing.assert_allclose(g, v, **T64)
        for g, v in zip(K.batch_norm_backward(dy, x, w, *got[1:], backend="cuda"),
                        K.batch_norm_backward(dy, x, w, *got[1:], backend="numpy")):
            np.testing.assert_allclose(g, v, **T64)
        got = K.group_norm(x, 2, w, b, backend="cuda")
        for g, v in zip(got, K.group_norm(x, 2, w, b, backend="numpy")):
            np.testing.assert_allclose(g, v, **T64)
        for g, v in zip(K.group_norm_backward(dy, x, w, *got[1:], 2, backend="cuda"),
                        K.group_norm_backward(dy, x, w, *got[1:], 2, backend="numpy")):
            np.testing.assert_allclose(g, v, **T64)
