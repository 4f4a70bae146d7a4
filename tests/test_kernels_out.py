"""out= on the trusted GELU and layer-norm entry points (fastnn.kernels.trusted): the result
written into given arrays, bit-identical to a new one, on every CPU backend; bad arrays refused."""
import numpy as np
import pytest

import fastnn
from fastnn.kernels import trusted as T

CASES = [(np.float32, (7, 33)), (np.float64, (4, 5))]


def _data(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(shape[-1]).astype(dtype)
    b = rng.standard_normal(shape[-1]).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, w, b, dy


@pytest.mark.parametrize("dtype,shape", CASES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_out_is_the_same_result(current_cpu_backend, dtype, shape, approximate):
    x, _, _, dy = _data(dtype, shape)
    out = np.full(shape, np.nan, dtype)
    assert T.gelu(x, approximate, out=out) is out
    np.testing.assert_array_equal(out, T.gelu(x, approximate))
    dx = np.full(shape, np.nan, dtype)
    assert T.gelu_backward(dy, x, approximate, out=dx) is dx
    np.testing.assert_array_equal(dx, T.gelu_backward(dy, x, approximate))
    # a strided input takes the checked path, and still fills out
    xs = np.repeat(x, 2, axis=1)[:, ::2]
    out2 = np.full(shape, np.nan, dtype)
    assert T.gelu(xs, approximate, out=out2) is out2
    np.testing.assert_array_equal(out2, out)


@pytest.mark.parametrize("dtype,shape", CASES)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_out_is_the_same_result(current_cpu_backend, dtype, shape, affine):
    x, w, b, dy = _data(dtype, shape, seed=1)
    w, b = (w, b) if affine else (None, None)
    n = shape[0]
    outs = (np.full(shape, np.nan, dtype), np.full(n, np.nan, dtype), np.full(n, np.nan, dtype))
    got = T.layer_norm(x, w, b, 1e-5, out=outs)
    want = T.layer_norm(x, w, b, 1e-5)
    for g, o, v in zip(got, outs, want):
        assert g is o
        np.testing.assert_array_equal(g, v)
    dx = np.full(shape, np.nan, dtype)
    got = T.layer_norm_backward(dy, x, w, want[1], want[2], out=dx)
    want = T.layer_norm_backward(dy, x, w, want[1], want[2])
    assert got[0] is dx
    for g, v in zip(got, want):
        np.testing.assert_array_equal(g, v)
    # 3-D x (the checked path), out of x's shape
    x3 = x.reshape(1, *shape)
    y3 = np.empty_like(x3)
    got = T.layer_norm(x3, w, b, 1e-5, out=(y3, np.empty((1, n), dtype), np.empty((1, n), dtype)))
    assert got[0] is y3
    np.testing.assert_array_equal(y3[0], outs[0])


def test_bad_out_arrays_are_refused():
    x, w, b, dy = _data(np.float32, (6, 8))
    with pytest.raises(ValueError, match="gelu: out has shape"):
        T.gelu(x, out=np.empty((6, 7), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        T.gelu(x, out=np.empty((6, 8), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        T.gelu(x, out=np.empty((8, 6), np.float32).T)
    with pytest.raises(ValueError, match="overlap"):
        T.gelu(x, out=x)                                   # in place is not supported
    with pytest.raises(ValueError, match="overlap"):
        T.gelu_backward(dy, x, out=dy)
    with pytest.raises(TypeError, match="numpy arrays"):
        T.gelu_backward(dy, x, out=[0.0] * 48)
    ro = np.empty((6, 8), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        T.gelu(x, out=ro)
    with pytest.raises(ValueError, match="layer_norm: out has shape"):
        T.layer_norm(x, w, b, out=(np.empty_like(x), np.empty(5, np.float32),
                                   np.empty(6, np.float32)))
    y, mean, rstd = T.layer_norm(x, w, b)
    with pytest.raises(ValueError, match="overlap"):
        T.layer_norm_backward(dy, x, w, mean, rstd, out=dy)


def test_out_on_device_arrays_is_refused(monkeypatch):
    import fastnn.cuda
    monkeypatch.setenv(fastnn.cuda.SIMULATOR_AS_DEVICE, "1")
    if not fastnn.cuda.is_available():
        pytest.skip(f"no simulated GPU here: {fastnn.cuda.unavailable_reason()}")
    x = fastnn.tensor(np.ones((2, 3), np.float32), device="cuda")._data
    with pytest.raises(NotImplementedError, match="out= is for host arrays"):
        T.gelu(x, out=np.empty((2, 3), np.float32))
    y = T.gelu(x)                                          # without out: the device kernel
    assert type(y) is type(x)
