"""DeviceArray (fastnn/backends/cuda/array.py) against numpy, on Numba's CUDA simulator.

Every op family at small shapes: broadcasting, non-contiguous views, float32/float64/int64/
bool; the transfer counter (an op done on the device copies nothing, np.asarray copies once);
the caching allocator; the device RNG's statistics.
"""
import numpy as np
import pytest

pytest.importorskip("numba")

from fastnn.backends.cuda import array as ca  # noqa: E402
from fastnn.backends.cuda import memory  # noqa: E402
from fastnn.backends.cuda.common import transfer_log  # noqa: E402

RNG = np.random.default_rng(0)


def host(d):
    """The values of a DeviceArray, leaving the transfer log as it was (tests read it)."""
    saved = ca.transfer_log()
    out = ca.to_host(d) if isinstance(d, ca.DeviceArray) else np.asarray(d)
    live = transfer_log()
    live.clear()
    live.update(saved)
    return out


def sample(shape, dtype):
    if np.dtype(dtype) == np.bool_:
        return RNG.random(shape) > 0.5
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(-5, 6, size=shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


def check(d, expected, rtol=1e-5, atol=1e-6):
    assert isinstance(d, ca.DeviceArray), type(d)
    got = host(d)
    expected = np.asarray(expected)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.fixture(autouse=True)
def _fresh_counter():
    ca.reset_transfers()
    yield


# ---------------------------------------------------------------- API surface
def test_attributes_match_numpy():
    x = sample((3, 4, 5), np.float32)
    d = ca.from_host(x)
    assert d.shape == x.shape and d.dtype == x.dtype and d.ndim == 3 and d.size == 60
    assert d.itemsize == 4 and d.nbytes == x.nbytes and d.strides == x.strides
    assert len(d) == 3 and d.device_index == 0
    assert d.T.shape == (5, 4, 3) and d.T.strides == x.T.strides
    assert ca.is_device_array(d) and not ca.is_device_array(x)
    assert "float32" in repr(d)


def test_roundtrip_and_transfer_counter():
    x = sample((4, 3), np.float64)
    d = ca.from_host(x)
    assert ca.transfer_count() == 1
    assert ca.transfer_log() == {("h2d", "from_host"): 1}
    back = np.asarray(d)
    assert ca.transfer_count() == 2 and ca.transfer_log()[("d2h", "__array__")] == 1
    np.testing.assert_array_equal(back, x)
    ca.reset_transfers()
    assert ca.transfer_count() == 0


def test_views_copy_nothing():
    x = sample((4, 6), np.float32)
    d = ca.from_host(x)
    ca.reset_transfers()
    views = [d.T, d[1:, ::2], d[::-1], d[None, 2], d[..., 3], d.reshape(6, 4),
             np.transpose(d), np.swapaxes(d, 0, 1), np.moveaxis(d, 0, 1),
             np.expand_dims(d, 1), np.broadcast_to(d[:1], (3, 4, 6)), np.flip(d, 1),
             np.diagonal(d), np.diagonal(d, 2), np.squeeze(d[None]), d.ravel()]
    assert ca.transfer_count() == 0
    expected = [x.T, x[1:, ::2], x[::-1], x[None, 2], x[..., 3], x.reshape(6, 4),
                np.transpose(x), np.swapaxes(x, 0, 1), np.moveaxis(x, 0, 1),
                np.expand_dims(x, 1), np.broadcast_to(x[:1], (3, 4, 6)), np.flip(x, 1),
                np.diagonal(x), np.diagonal(x, 2), np.squeeze(x[None]), x.ravel()]
    for v, e in zip(views, expected):
        check(v, e)


def test_view_writes_reach_the_base():
    x = np.zeros((3, 4), np.float32)
    d = ca.from_host(x)
    v = d.T[1:, :]
    v[0] = 7.0                # d[:, 1] = 7
    x.T[1:, :][0] = 7.0
    d[2, ::2] = 3
    x[2, ::2] = 3
    check(d, x)


def test_shape_functions_need_no_data():
    d = ca.zeros((2, 3), np.float32)
    ca.reset_transfers()
    assert np.shape(d) == (2, 3) and np.ndim(d) == 2 and np.size(d) == 6
    assert np.result_type(d, 1.0) == np.float32
    assert np.result_type(d, np.float64) == np.float64
    assert np.may_share_memory(d, d[1:]) and not np.may_share_memory(d[:1], d[1:])
    assert ca.transfer_count() == 0


def test_item_tolist_and_scalars():
    d = ca.from_host(np.array([[1.5, 2.5]], np.float32))
    assert d[0, 1].item() == 2.5 and d.item(0, 0) == 1.5
    assert d.tolist() == [[1.5, 2.5]]
    assert float(d[0, 0]) == 1.5 and int(d[0, 1]) == 2
    assert bool(d[0, 0] > 1)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(d)
    with pytest.raises(ValueError):
        d.item()


def test_creation_functions():
    check(ca.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32))
    check(ca.ones((4,), np.int64), np.ones(4, np.int64))
    check(ca.full((2, 2), 2.5, np.float64), np.full((2, 2), 2.5))
    check(ca.arange(7), np.arange(7))
    check(ca.arange(1, 2, 0.25), np.arange(1, 2, 0.25))
    check(ca.arange(5, dtype=np.float32), np.arange(5, dtype=np.float32))
    d = ca.empty((3, 2), np.float64)
    assert d.shape == (3, 2) and d.dtype == np.float64
    check(ca.zeros_like(d), np.zeros((3, 2)))
    check(ca.full_like(d, 4, dtype=np.int64), np.full((3, 2), 4))
    assert ca.transfer_count() == 0


def test_wrap_shares_memory():
    d = ca.from_host(np.arange(6, dtype=np.float32).reshape(2, 3))
    w = ca.wrap(d.raw)
    w[0, 0] = 9
    assert host(d)[0, 0] == 9
    with pytest.raises(TypeError, match="wrap"):
        ca.wrap(np.zeros(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_fallback_ufuncs_are_correct(dtype):
    x = sample((3, 4), dtype)
    y = sample((4,), dtype)
    d, e = ca.from_host(x), ca.from_host(y)
    check(np.add(d, e), np.add(x, y))
    check(d == e, x == y)
    check(np.maximum(d, e), np.maximum(x, y))


def test_mixed_host_and_device_operands():
    x = sample((2, 3), np.float32)
    d = ca.from_host(x)
    h = sample((3,), np.float32)
    check(d * h, x * h)
    check(h * d, h * x)
    check(d + 2.0, x + 2.0)              # Python float: stays float32
    check(d + np.float64(2.0), x + np.float64(2.0))


def test_unsupported_dtype_raises_type_error():
    with pytest.raises(TypeError, match="not supported"):
        ca.from_host(np.array(["a"]))
    with pytest.raises(TypeError, match="astype"):
        ca.zeros(3).astype(np.complex64)


def test_index_errors_are_numpys():
    d = ca.zeros((2, 3))
    with pytest.raises(IndexError, match="out of bounds"):
        d[2]
    with pytest.raises(IndexError, match="too many indices"):
        d[0, 0, 0]
    with pytest.raises(ValueError, match="cannot reshape"):
        d.reshape(4)
