"""Convolution kernels (conv2d, conv2d_backward, conv_transpose2d, conv_transpose2d_backward) on
every backend against the numpy reference, against PyTorch where it is installed (float64, to
1e-10), against finite differences, on every ISA path of the C code, and with bad input.

Shapes come from hypothesis: 1x1 images, kernels larger than the unpadded input, strides larger
than the kernel, odd sizes, groups (depthwise included), dilation, 'same' with even kernels.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import fastnn
from fastnn import kernels as K

from conftest import numeric_grad, skip_if_missing

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # PyTorch is optional
    torch = None

CONV_KERNELS = ("conv2d", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward")


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


def _close(got, want, dtype, what):
    if want is None:
        assert got is None, what
        return
    assert got.shape == want.shape and got.dtype == dtype, (what, got.shape, want.shape, got.dtype)
    scale = max(1.0, float(np.abs(want).max()))
    t = _tol(dtype)
    np.testing.assert_allclose(got, want, rtol=t["rtol"], atol=t["atol"] * scale, err_msg=what)


def _out_size(h, k, s, p, d):
    return (h + 2 * p - d * (k - 1) - 1) // s + 1


@st.composite
def conv_problems(draw, limit=9):
    """(x shape, weight shape, kwargs) of a valid conv2d."""
    n = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    cig, cog = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, limit)), draw(st.integers(1, limit))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    mode = draw(st.sampled_from(["int", "pair", "same", "valid"]))
    if mode == "same":
        stride, padding = 1, "same"
    else:
        stride = (draw(st.integers(1, 5)), draw(st.integers(1, 3)))
        if mode == "valid":
            padding, pads = "valid", (0, 0)
        elif mode == "int":
            padding = draw(st.integers(0, 3))
            pads = (padding, padding)
        else:
            padding = pads = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        assume(_out_size(h, kh, stride[0], pads[0], dil[0]) > 0)
        assume(_out_size(w, kw, stride[1], pads[1], dil[1]) > 0)
    kwargs = dict(stride=stride, padding=padding, dilation=dil, groups=groups)
    return (n, cig * groups, h, w), (cog * groups, cig, kh, kw), kwargs


@st.composite
def transpose_problems(draw, limit=7):
    n = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    cig, cog = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, limit)), draw(st.integers(1, limit))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = (draw(st.integers(0, 3)), draw(st.integers(0, 2)))
    opad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dil))
    for i, (size, k) in enumerate(((h, kh), (w, kw))):
        assume((size - 1) * stride[i] - 2 * pad[i] + dil[i] * (k - 1) + opad[i] + 1 > 0)
    kwargs = dict(stride=stride, padding=pad, output_padding=opad, groups=groups, dilation=dil)
    return (n, cig * groups, h, w), (cig * groups, cog, kh, kw), kwargs


def _data(rng, x_shape, w_shape, dtype, out_channels):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(out_channels).astype(dtype)
    return x, w, b


# ---------------------------------------------------------------- against the numpy reference
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(problem=conv_problems(), with_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_conv2d_matches_reference(backend, dtype, problem, with_bias, seed):
    for k in CONV_KERNELS[:2]:
        skip_if_missing(backend, k)
    xs, ws, kw = problem
    rng = np.random.default_rng(seed)
    x, w, b = _data(rng, xs, ws, dtype, ws[0])
    b = b if with_bias else None
    y = K.conv2d(x, w, b, **kw, backend=backend)
    _close(y, K.conv2d(x, w, b, **kw, backend="numpy"), dtype, "y")
    dy = rng.standard_normal(y.shape).astype(dtype)
    for mask in ((True, True, True), (False, True, False), (True, False, True)):
        got = K.conv2d_backward(dy, x, w, **kw, output_mask=mask, backend=backend)
        want = K.conv2d_backward(dy, x, w, **kw, output_mask=mask, backend="numpy")
        for name, g, r in zip(("dx", "dw", "db"), got, want):
            _close(g, r, dtype, name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(problem=transpose_problems(), with_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_conv_transpose2d_matches_reference(backend, dtype, problem, with_bias, seed):
    for k in CONV_KERNELS[2:]:
        skip_if_missing(backend, k)
    xs, ws, kw = problem
    rng = np.random.default_rng(seed)
    x, w, b = _data(rng, xs, ws, dtype, ws[1] * kw["groups"])
    b = b if with_bias else None
    y = K.conv_transpose2d(x, w, b, **kw, backend=backend)
    _close(y, K.conv_transpose2d(x, w, b, **kw, backend="numpy"), dtype, "y")
    dy = rng.standard_normal(y.shape).astype(dtype)
    for mask in ((True, True, True), (False, True, False), (True, False, True)):
        got = K.conv_transpose2d_backward(dy, x, w, **kw, output_mask=mask, backend=backend)
        want = K.conv_transpose2d_backward(dy, x, w, **kw, output_mask=mask, backend="numpy")
        for name, g, r in zip(("dx", "dw", "db"), got, want):
            _close(g, r, dtype, name)


# Large enough for the threaded paths: images split among threads (batch >= threads) and one
# image with multi-threaded GEMMs; 1x1 (no im2col), depthwise, strided/dilated; an image whose
# columns exceed the C kernels' per-thread buffer (csrc/conv.c, CONV_COL_MAX), so they go in
# blocks of output rows.
LARGE = [
    ((4, 16, 20, 18), (32, 16, 3, 3), dict(padding=1)),
    ((1, 16, 30, 30), (24, 16, 3, 3), dict(padding=1)),
    ((5, 32, 12, 12), (64, 32, 1, 1), dict()),
    ((3, 32, 13, 11), (32, 1, 3, 3), dict(groups=32, padding="same")),
    ((3, 8, 17, 15), (16, 4, 3, 3), dict(stride=2, padding=2, groups=2, dilation=2)),
    ((8, 3, 32, 32), (32, 3, 5, 5), dict()),
    ((1, 16, 130, 129), (8, 16, 3, 3), dict(padding=1)),   # C: columns in blocks of rows
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", LARGE, ids=lambda c: "x".join(map(str, c[1])))
def test_conv_large_shapes(cpu_backend, dtype, case):
    xs, ws, kw = case
    rng = np.random.default_rng(3)
    x, w, b = _data(rng, xs, ws, dtype, ws[0])
    y = K.conv2d(x, w, b, **kw, backend=cpu_backend)
    _close(y, K.conv2d(x, w, b, **kw, backend="numpy"), dtype, "y")
    dy = rng.standard_normal(y.shape).astype(dtype)
    got = K.conv2d_backward(dy, x, w, **kw, backend=cpu_backend)
    want = K.conv2d_backward(dy, x, w, **kw, backend="numpy")
    for name, g, r in zip(("dx", "dw", "db"), got, want):
        _close(g, r, dtype, name)
    # the transpose of the same geometry (its input is this conv's output)
    tkw = dict(kw, padding=1 if kw.get("padding") == "same" else kw.get("padding", 0))
    wt = rng.standard_normal((ws[0], ws[1]) + ws[2:]).astype(dtype)
    yt = K.conv_transpose2d(y, wt, None, **tkw, backend=cpu_backend)
    _close(yt, K.conv_transpose2d(y, wt, None, **tkw, backend="numpy"), dtype, "yt")
    dyt = rng.standard_normal(yt.shape).astype(dtype)
    got = K.conv_transpose2d_backward(dyt, y, wt, **tkw, backend=cpu_backend)
    want = K.conv_transpose2d_backward(dyt, y, wt, **tkw, backend="numpy")
    for name, g, r in zip(("dx", "dw", "db"), got, want):
        _close(g, r, dtype, "transpose " + name)


@pytest.mark.skipif("cython" not in fastnn.available_backends(), reason="no cython backend")
def test_cython_backward_same_for_any_thread_count():
    # dweight and dbias are summed over fixed groups of images, added in order
    rng = np.random.default_rng(6)
    x = rng.standard_normal((13, 16, 20, 18)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((13, 32, 20, 18)).astype(np.float32)
    before = fastnn.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            fastnn.set_num_threads(threads)
            results.append(K.conv2d_backward(dy, x, w, padding=1, backend="cython"))
    finally:
        fastnn.set_num_threads(before)
    for r in results[1:]:
        for a, b in zip(results[0], r):
            np.testing.assert_array_equal(a, b)


def test_unbatched_and_empty(backend):
    for k in CONV_KERNELS:
        skip_if_missing(backend, k)
    rng = np.random.default_rng(0)
    x, w, b = _data(rng, (3, 5, 4), (2, 3, 3, 3), np.float64, 2)
    y = K.conv2d(x, w, b, padding=1, backend=backend)
    assert y.shape == (2, 5, 4)
    np.testing.assert_allclose(y, K.conv2d(x[None], w, b, padding=1, backend="numpy")[0])
    dx, dw, db = K.conv2d_backward(np.ones_like(y), x, w, padding=1, backend=backend)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (2,)
    yt = K.conv_transpose2d(x, rng.standard_normal((3, 2, 2, 2)), backend=backend)
    assert yt.shape == (2, 6, 5)
    # an empty batch: empty outputs, zero weight and bias gradients
    x0 = np.zeros((0, 3, 5, 4))
    y0 = K.conv2d(x0, w, b, padding=1, backend=backend)
    assert y0.shape == (0, 2, 5, 4)
    dx0, dw0, db0 = K.conv2d_backward(y0, x0, w, padding=1, backend=backend)
    assert dx0.shape == x0.shape and not dw0.any() and not db0.any()


def test_strided_inputs(backend):
    # views (every other column, a transposed weight) give what their contiguous copies give
    rng = np.random.default_rng(4)
    xw = rng.standard_normal((2, 3, 6, 14))
    ww = rng.standard_normal((3, 4, 3, 3)).transpose(1, 0, 3, 2)   # (4, 3, 3, 3), not contiguous
    x = xw[..., ::2]
    for fn, args in ((K.conv2d, (x, ww)), (K.conv_transpose2d, (x, ww.transpose(1, 0, 2, 3)))):
        got = fn(*args, padding=1, backend=backend)
        want = fn(*(np.ascontiguousarray(a) for a in args), padding=1, backend="numpy")
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal((2, 4, 7, 6)).transpose(0, 1, 3, 2)
    got = K.conv2d_backward(dy, x, ww, padding=1, backend=backend)
    want = K.conv2d_backward(dy.copy(), x.copy(), ww.copy(), padding=1, backend="numpy")
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- against finite differences
FD_CONV = [
    ((2, 2, 4, 3), (3, 2, 3, 2), dict(padding=1, stride=(2, 1))),
    ((1, 4, 5, 5), (4, 2, 2, 3), dict(padding="same", groups=2, dilation=(2, 1))),
    ((1, 1, 1, 1), (2, 1, 3, 3), dict(padding=1)),
]
FD_TRANSPOSE = [
    ((2, 2, 3, 2), (2, 3, 3, 2), dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 2, 3), (4, 1, 2, 2), dict(groups=2, dilation=2, stride=(1, 3), output_padding=(1, 2))),
]


def _check_fd(forward, backward, x, w, b, dy, kw, backend):
    f = lambda: float(np.sum(forward(x, w, b, **kw, backend="numpy") * dy))
    want = [numeric_grad(f, a) for a in (x, w, b)]
    got = backward(dy, x, w, **kw, backend=backend)
    for name, g, r in zip(("dx", "dw", "db"), got, want):
        np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("case", FD_CONV, ids=str)
def test_conv2d_backward_finite_differences(backend, case):
    skip_if_missing(backend, "conv2d_backward")
    xs, ws, kw = case
    rng = np.random.default_rng(1)
    x, w, b = _data(rng, xs, ws, np.float64, ws[0])
    dy = rng.standard_normal(K.conv2d(x, w, b, **kw, backend="numpy").shape)
    _check_fd(K.conv2d, K.conv2d_backward, x, w, b, dy, kw, backend)


@pytest.mark.parametrize("case", FD_TRANSPOSE, ids=str)
def test_conv_transpose2d_backward_finite_differences(backend, case):
    skip_if_missing(backend, "conv_transpose2d_backward")
    xs, ws, kw = case
    rng = np.random.default_rng(2)
    x, w, b = _data(rng, xs, ws, np.float64, ws[1] * kw.get("groups", 1))
    dy = rng.standard_normal(K.conv_transpose2d(x, w, b, **kw, backend="numpy").shape)
    _check_fd(K.conv_transpose2d, K.conv_transpose2d_backward, x, w, b, dy, kw, backend)


# ---------------------------------------------------------------- against PyTorch
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def _torch_grads(fn, x, w, b, dy, kw):
    xt, wt, bt = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
    y = fn(xt, wt, bt, **kw)
    y.backward(torch.from_numpy(dy))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@needs_torch
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@given(problem=conv_problems(limit=11), seed=st.integers(0, 2**16))
def test_conv2d_matches_torch(cpu_backend, problem, seed):
    xs, ws, kw = problem
    rng = np.random.default_rng(seed)
    x, w, b = _data(rng, xs, ws, np.float64, ws[0])
    y = K.conv2d(x, w, b, **kw, backend=cpu_backend)
    dy = rng.standard_normal(y.shape)
    ty, tdx, tdw, tdb = _torch_grads(F.conv2d, x, w, b, dy, kw)
    grads = K.conv2d_backward(dy, x, w, **kw, backend=cpu_backend)
    for name, g, r in zip(("y", "dx", "dw", "db"), (y,) + grads, (ty, tdx, tdw, tdb)):
        _close(g, r, np.float64, name)


@needs_torch
@given(problem=transpose_problems(), seed=st.integers(0, 2**16))
def test_conv_transpose2d_matches_torch(cpu_backend, problem, seed):
    xs, ws, kw = problem
    rng = np.random.default_rng(seed)
    x, w, b = _data(rng, xs, ws, np.float64, ws[1] * kw["groups"])
    y = K.conv_transpose2d(x, w, b, **kw, backend=cpu_backend)
    dy = rng.standard_normal(y.shape)
    ty, tdx, tdw, tdb = _torch_grads(F.conv_transpose2d, x, w, b, dy, kw)
    grads = K.conv_transpose2d_backward(dy, x, w, **kw, backend=cpu_backend)
    for name, g, r in zip(("y", "dx", "dw", "db"), (y,) + grads, (ty, tdx, tdw, tdb)):
        _close(g, r, np.float64, name)


@needs_torch
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("case", [
    ((2, 3, 6, 7), (4, 3, 4, 2), dict(padding="same")),            # even kernels: asymmetric
    ((1, 2, 5, 6), (2, 2, 4, 4), dict(padding="same", dilation=(1, 3))),
    ((1, 6, 7, 7), (6, 1, 3, 3), dict(padding="same", groups=6)),   # depthwise
    ((2, 2, 3, 2), (3, 2, 5, 4), dict(padding=(2, 3))),             # kernel > unpadded input
    ((2, 2, 9, 9), (2, 2, 2, 2), dict(stride=4)),                   # stride > kernel
], ids=str)
def test_conv2d_same_and_edges_match_torch(cpu_backend, case):
    xs, ws, kw = case
    rng = np.random.default_rng(5)
    x, w, b = _data(rng, xs, ws, np.float64, ws[0])
    y = K.conv2d(x, w, b, **kw, backend=cpu_backend)
    assert kw.get("padding") != "same" or y.shape[2:] == x.shape[2:]
    dy = rng.standard_normal(y.shape)
    ty, tdx, tdw, tdb = _torch_grads(F.conv2d, x, w, b, dy, kw)
    grads = K.conv2d_backward(dy, x, w, **kw, backend=cpu_backend)
    for name, g, r in zip(("y", "dx", "dw", "db"), (y,) + grads, (ty, tdx, tdw, tdb)):
        _close(g, r, np.float64, name)


# ---------------------------------------------------------------- every ISA path of the C code
_PATH_SCRIPT = """
import numpy as np, fastnn.kernels as K
rng = np.random.default_rng(0)
for xs, ws, kw in [((3, 16, 14, 13), (24, 16, 3, 3), dict(padding=1)),
                   ((2, 6, 9, 8), (6, 2, 3, 2), dict(stride=2, dilation=(1, 2), groups=3))]:
    for dt in (np.float32, np.float64):
        x = rng.standard_normal(xs).astype(dt); w = rng.standard_normal(ws).astype(dt)
        y = K.conv2d(x, w, None, **kw, backend="cython")
        assert np.allclose(y, K.conv2d(x, w, None, **kw, backend="numpy"), rtol=1e-4, atol=1e-3)
        dy = rng.standard_normal(y.shape).astype(dt)
        for g, r in zip(K.conv2d_backward(dy, x, w, **kw, backend="cython"),
                        K.conv2d_backward(dy, x, w, **kw, backend="numpy")):
            assert np.allclose(g, r, rtol=1e-4, atol=1e-3)
import fastnn.backends.cython._conv as c
print(c.cpu_path())
"""


@pytest.mark.skipif("cython" not in fastnn.available_backends(), reason="no cython backend")
@pytest.mark.parametrize("isa", ["portable", "avx2", "avx512"])
def test_cython_conv_every_isa_path(isa):
    env = dict(os.environ, FASTNN_ISA=isa, OMP_NUM_THREADS="3")
    r = subprocess.run([sys.executable, "-c", _PATH_SCRIPT], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # the path used is at most the one asked for (the CPU may lack AVX-512)
    assert r.stdout.strip() in ("portable", "avx2", "avx512")
    if isa == "portable":
        assert r.stdout.strip() == "portable"


# ---------------------------------------------------------------- bad input
X = np.zeros((2, 4, 5, 5), np.float32)
W = np.zeros((6, 2, 3, 3), np.float32)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: K.conv2d(X, W, groups=3), ValueError, "not divisible by groups"),
    (lambda: K.conv2d(X, np.zeros((5, 2, 3, 3), np.float32), groups=2), ValueError,
     "output channels (5"),
    (lambda: K.conv2d(X, W), ValueError, "expects 2 input channels"),
    (lambda: K.conv2d(X, np.zeros((6, 4, 7, 7), np.float32)), ValueError, "output size"),
    (lambda: K.conv2d(X, np.zeros((6, 4, 3, 3), np.float32), stride=4, dilation=3), ValueError,
     "output size"),
    (lambda: K.conv2d(X[0, 0], W), ValueError, "4-D"),
    (lambda: K.conv2d(X, W[0]), ValueError, "weight must be 4-D"),
    (lambda: K.conv2d(X, W.astype(np.float64), groups=2), TypeError, "dtype"),
    (lambda: K.conv2d(X.astype(np.int32), W, groups=2), TypeError, "unsupported dtype"),
    (lambda: K.conv2d(X, W, np.zeros(6), groups=2), TypeError, "bias has dtype"),
    (lambda: K.conv2d(X, W, np.zeros(5, np.float32), groups=2), ValueError, "bias has 5"),
    (lambda: K.conv2d(X, W, groups=2, padding="same", stride=2), ValueError, "strided"),
    (lambda: K.conv2d(X, W, groups=2, padding="full"), ValueError, "'valid', 'same'"),
    (lambda: K.conv2d(X, W, groups=2, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: K.conv2d(X, W, groups=2, stride=0), ValueError, "stride must be >= 1"),
    (lambda: K.conv2d(X, W, groups=2, stride=(1, 2, 3)), TypeError, "stride"),
    (lambda: K.conv2d(X, W, groups=0), ValueError, "groups"),
    (lambda: K.conv2d(X, W, groups=2.0), TypeError, "groups"),
    (lambda: K.conv2d_backward(np.zeros((2, 6, 4, 4), np.float32), X, W, groups=2), ValueError,
     "grad_output has shape"),
    (lambda: K.conv2d_backward(np.zeros((2, 6, 3, 3), np.float32), X, W, groups=2,
                               output_mask=(True,)), ValueError, "output_mask"),
    (lambda: K.conv_transpose2d(X, np.zeros((3, 2, 3, 3), np.float32)), ValueError,
     "expects 3 input channels"),
    (lambda: K.conv_transpose2d(X, np.zeros((4, 2, 3, 3), np.float32), groups=3), ValueError,
     "not divisible by groups"),
    (lambda: K.conv_transpose2d(X, np.zeros((4, 2, 3, 3), np.float32), output_padding=1),
     ValueError, "output_padding"),
    (lambda: K.conv_transpose2d(X, np.zeros((4, 2, 1, 1), np.float32), padding=3), ValueError,
     "output size"),
    (lambda: K.conv_transpose2d(X, np.zeros((4, 2, 3, 3), np.float32), padding="same"),
     ValueError, "string padding"),
    (lambda: K.conv_transpose2d(X, np.zeros((4, 2, 3, 3), np.float32), np.zeros(3, np.float32)),
     ValueError, "bias has 3"),
])
def test_bad_input_raises_clearly(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)
    assert str(info.value).startswith(("conv2d", "conv_transpose2d"))
