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

# Numba's simulator runs kernels as Python on numpy scalars, which warn on 1/0 and the like
# (a GPU computes the same inf/nan silently).
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

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


# ---------------------------------------------------------------- device kernels
def _on_device(fn):
    """Run fn with the transfer counter reset; assert it copied nothing; return its result."""
    ca.reset_transfers()
    out = fn()
    assert ca.transfer_count() == 0, ca.transfer_log()
    return out


DTYPES = [np.float32, np.float64, np.int64, np.bool_]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "true_divide", "floor_divide",
                                  "remainder", "power", "maximum", "minimum", "equal", "less",
                                  "greater_equal", "logical_and", "logical_xor", "bitwise_or",
                                  "arctan2", "logaddexp", "fmax", "hypot", "copysign"])
def test_binary_ufuncs_broadcast_on_device(name, dtype):
    uf = getattr(np, name)
    x = sample((3, 1, 4), dtype)
    y = sample((2, 4), dtype)
    if name == "power" and np.dtype(dtype).kind in "iu":
        y = np.abs(y)
    try:
        with np.errstate(all="ignore"):
            expected = uf(x, y)
    except TypeError:                           # numpy has no loop for this dtype
        with pytest.raises(TypeError):
            uf(ca.from_host(x), ca.from_host(y))
        return
    d, e = ca.from_host(x), ca.from_host(y)
    if expected.dtype == np.float16:     # float16 math (bool inputs) runs on the host, counted
        got = uf(d, e)
        assert ca.transfer_log()[("h2d", name)] == 1
        check(got, expected, rtol=1e-3)
        return
    got = _on_device(lambda: uf(d, e))
    check(got, expected, rtol=2e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("name", ["negative", "absolute", "sign", "exp", "expm1", "log",
                                  "log1p", "sqrt", "tanh", "sin", "floor", "ceil", "rint",
                                  "square", "isnan", "isfinite", "reciprocal", "trunc"])
def test_unary_ufuncs_on_device(name, dtype):
    uf = getattr(np, name)
    x = sample((2, 5), dtype)
    if np.dtype(dtype).kind == "f":
        x[0, :3] = [np.nan, np.inf, -0.0]
    if name == "reciprocal" and np.dtype(dtype).kind in "iu":
        x[x == 0] = 1
    with np.errstate(all="ignore"):
        expected = uf(x)
    d = ca.from_host(x)
    got = _on_device(lambda: uf(d))
    check(got, expected, rtol=2e-6 if dtype == np.float32 else 1e-12)


def test_floor_divide_and_remainder_match_numpy_signs():
    x = np.array([7, -7, 7, -7, 0, 5], np.int64)
    y = np.array([2, 2, -2, -2, 3, 0], np.int64)
    with np.errstate(all="ignore"):
        check(ca.from_host(x) // ca.from_host(y), x // y)
        check(ca.from_host(x) % ca.from_host(y), x % y)
        xf, yf = x.astype(np.float64) + 0.5, y.astype(np.float64)
        check(ca.from_host(xf) // ca.from_host(yf), xf // yf)
        check(ca.from_host(xf) % ca.from_host(yf), xf % yf)
        check(np.fmod(ca.from_host(x), ca.from_host(y)), np.fmod(x, y))


def test_maximum_minimum_propagate_nan():
    x = np.array([1.0, np.nan, 3.0, np.nan], np.float32)
    y = np.array([np.nan, 2.0, 1.0, np.nan], np.float32)
    for uf in (np.maximum, np.minimum, np.fmax, np.fmin):
        check(uf(ca.from_host(x), ca.from_host(y)), uf(x, y))


def test_scalar_promotion_is_numpys():
    x = sample((4,), np.float32)
    d = ca.from_host(x)
    for got, expected in [(d * 2.5, x * 2.5), (d + 1, x + 1), (2 ** d, 2 ** x),
                          (d / np.float32(3), x / np.float32(3)),
                          (d + np.float64(1), x + np.float64(1)),
                          (d > 0, x > 0), (-d, -x), (1 - d, 1 - x)]:
        check(got, expected)
    i = ca.from_host(np.arange(5))
    check(i / 2, np.arange(5) / 2)
    check(i // 2, np.arange(5) // 2)
    check(i * 1.5, np.arange(5) * 1.5)
    assert ca.transfer_count() == 2          # the two uploads


def test_ufunc_out_and_inplace_operators():
    x = sample((3, 4), np.float32)
    d = ca.from_host(x)
    y = x.copy()

    def ops():
        d_ = d
        d_ += 1
        d_ *= d_
        np.multiply(d_, 0.5, out=d_)
        d_[1:] -= d_[:-1]            # overlapping views: numpy's result, not a smear
        np.exp(d_[:, ::2], out=d_[:, ::2])
        return d_
    got = _on_device(ops)
    y += 1
    y *= y
    np.multiply(y, 0.5, out=y)
    y[1:] -= y[:-1]
    np.exp(y[:, ::2], out=y[:, ::2])
    check(got, y)
    with pytest.raises(TypeError, match="Cannot cast"):
        np.add(ca.from_host(x), 1.5, out=ca.zeros((3, 4), np.int64))
    i, expected = ca.zeros((3, 4), np.int64), np.zeros((3, 4), np.int64)
    _on_device(lambda: np.add(i, d, out=i, casting="unsafe"))
    np.add(expected, y, out=expected, casting="unsafe")
    check(i, expected)


def test_where_clip_and_math_helpers():
    x = sample((3, 4), np.float32)
    d = ca.from_host(x)
    check(_on_device(lambda: np.where(d > 0, d, 0.0)), np.where(x > 0, x, 0.0))
    check(_on_device(lambda: np.where(d > 0, 1, -1)), np.where(x > 0, 1, -1))
    check(_on_device(lambda: np.clip(d, -0.5, 0.5)), np.clip(x, -0.5, 0.5))
    check(_on_device(lambda: np.clip(d, None, 0.1)), np.clip(x, None, 0.1))
    check(_on_device(lambda: d.clip(0)), x.clip(0))
    import math
    check(_on_device(lambda: ca.erf(d)), np.vectorize(math.erf)(x).astype(np.float32))
    check(_on_device(lambda: ca.sigmoid(d)), (1 / (1 + np.exp(-x))).astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_astype_copy_and_contiguous(dtype):
    x = sample((4, 6), np.float64) * 3
    d = ca.from_host(x)
    v = d.T[::2]
    check(_on_device(lambda: v.astype(dtype)), x.T[::2].astype(dtype))
    c = _on_device(lambda: v.contiguous())
    assert c.is_c_contiguous() and c.strides == (8 * 4, 8)
    check(c, np.ascontiguousarray(x.T[::2]))
    # np.ascontiguousarray/np.asarray/np.array are not overridable: they convert (counted)
    ca.reset_transfers()
    h = np.ascontiguousarray(v, dtype=np.float32)
    assert type(h) is np.ndarray and ca.transfer_log() == {("d2h", "__array__"): 1}
    check(_on_device(lambda: v.reshape(-1)), x.T[::2].reshape(-1))
    for view in (d[::2, 1], d, v):                       # flatten copies, ravel may not
        flat = view.flatten()
        assert not np.may_share_memory(flat, view) and flat.is_c_contiguous()
        check(flat, host(view).flatten())


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)])
def test_reductions_on_device(dtype, axis):
    x = sample((3, 4, 5), dtype)
    d = ca.from_host(x)[:, ::-1]              # a non-contiguous view
    xv = x[:, ::-1]
    for name in ("sum", "prod", "max", "min", "any", "all", "mean"):
        fn = getattr(np, name)
        for keepdims in (False, True):
            got = _on_device(lambda: fn(d, axis=axis, keepdims=keepdims))
            check(got, fn(xv, axis=axis, keepdims=keepdims), rtol=1e-5)
    if not isinstance(axis, tuple):
        for name in ("argmax", "argmin"):
            got = _on_device(lambda: getattr(np, name)(d, axis=axis))
            check(got, getattr(np, name)(xv, axis=axis))
    if dtype != np.bool_:
        check(_on_device(lambda: np.var(d, axis=axis)), np.var(xv, axis=axis), rtol=1e-5)
        check(_on_device(lambda: d.std(axis=axis, ddof=1)), xv.std(axis=axis, ddof=1),
              rtol=1e-5)


def test_large_reductions_use_block_trees():
    x = sample((3, 700), np.float32)
    x[1, 650] = np.nan
    x[2, :] = 1.0
    d = ca.from_host(x)
    check(_on_device(lambda: d.sum(axis=1)), x.sum(axis=1), rtol=1e-4)
    check(_on_device(lambda: d.max(axis=1)), x.max(axis=1))
    check(_on_device(lambda: d.argmax(axis=1)), x.argmax(axis=1))
    check(_on_device(lambda: d.argmin(axis=1)), x.argmin(axis=1))
    check(_on_device(lambda: np.add.reduce(d, axis=None)), np.add.reduce(x, axis=None),
          rtol=1e-4)


def test_reduction_edge_cases():
    e = ca.zeros((0, 3), np.float32)
    check(e.sum(axis=0), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="zero-size array"):
        e.max(axis=0)
    with pytest.raises(ValueError, match="empty sequence"):
        e.argmax()
    check(np.maximum.reduce(ca.from_host(np.array([[1, 5], [3, 2]])), axis=1),
          np.array([5, 3]))


def test_cumsum_cumprod():
    x = sample((3, 4), np.float64)
    d = ca.from_host(x)
    check(_on_device(lambda: np.cumsum(d, axis=1)), np.cumsum(x, axis=1))
    check(_on_device(lambda: d.cumsum()), x.cumsum())
    check(_on_device(lambda: np.cumprod(d.T, axis=0)), np.cumprod(x.T, axis=0))
    check(np.add.accumulate(ca.from_host(np.arange(5))), np.add.accumulate(np.arange(5)))


def test_matmul_shapes_and_layouts():
    a = sample((2, 3, 5), np.float32)
    b = sample((5, 4), np.float32)
    da, db = ca.from_host(a), ca.from_host(b)
    check(_on_device(lambda: da @ db), a @ b, rtol=1e-5, atol=1e-5)
    check(_on_device(lambda: db.T @ da.transpose(0, 2, 1)), b.T @ a.transpose(0, 2, 1),
          rtol=1e-5, atol=1e-5)
    v = sample((5,), np.float32)
    dv = ca.from_host(v)
    check(da @ dv, a @ v, rtol=1e-5, atol=1e-5)
    check(dv @ db, v @ b, rtol=1e-5, atol=1e-5)
    check(np.dot(dv, dv), np.dot(v, v), rtol=1e-5)
    check(np.matmul(da[:, :, ::2], db[::2][:3]), np.matmul(a[:, :, ::2], b[::2][:3]),
          rtol=1e-5, atol=1e-5)
    i = np.arange(6).reshape(2, 3)
    check(ca.from_host(i) @ ca.from_host(i.T), i @ i.T)       # integers: host fallback
    with pytest.raises(ValueError, match="mismatch"):
        da @ da


def test_einsum_pairs_run_as_matmul():
    a = sample((2, 3, 4), np.float64)
    b = sample((2, 4, 5), np.float64)
    da, db = ca.from_host(a), ca.from_host(b)
    for spec, ops in [("bij,bjk->bik", (da, db)), ("bij,bjk->bki", (da, db)),
                      ("bij->bj", (da,)), ("bij,bik->jk", (da, ca.from_host(a)))]:
        host_ops = [ca.to_host(o) for o in ops]
        got = _on_device(lambda: np.einsum(spec, *ops))
        check(got, np.einsum(spec, *host_ops), rtol=1e-10)


# ---------------------------------------------------------------- indexing
def test_integer_array_indexing_matches_numpy():
    x = sample((4, 5, 6), np.float32)
    d = ca.from_host(x)
    idx = np.array([[0, 3], [-1, 2]])
    di = ca.from_host(idx)
    cases = [(idx,), (slice(None), idx), (idx, slice(1, 4), 2), (0, slice(None), idx),
             (Ellipsis, idx), (idx, idx), (None, idx, 0), ([1, 2], slice(None, None, -2))]
    for key in cases:
        check(d[key], x[key])
    for key in [(di,), (slice(None), di), (di, slice(1, 4), 2)]:
        host_key = tuple(idx if k is di else k for k in key)
        check(_on_device(lambda: d[key]), x[host_key])


def test_boolean_mask_indexing():
    x = sample((3, 4), np.float64)
    d = ca.from_host(x)
    mask = x > 0
    check(d[mask], x[mask])
    ca.reset_transfers()
    got = d[d > 0]
    assert ca.transfer_log() == {("d2h", "nonzero"): 1}     # the count sizes the result
    check(got, x[mask])
    check(d[:, mask[0]], x[:, mask[0]])
    rows, cols = np.nonzero(ca.from_host(mask))
    check(rows, np.nonzero(mask)[0])
    check(cols, np.nonzero(mask)[1])


def test_setitem_forms():
    x = sample((4, 5), np.float32)
    d = ca.from_host(x)
    idx = np.array([0, 2])

    def writes(a, fn_index):
        a[1] = 3.0
        a[:, 2] = a[:, 3]
        a[idx] = 7.0
        a[idx, 1:3] = fn_index(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
        a[a < 0] = 0.0
        return a
    writes(x, lambda v: v)
    writes(d, ca.from_host)
    check(d, x)


def test_masked_fill_needs_no_count():
    x = sample((3, 4), np.float32)
    d = ca.from_host(x)
    host_rows = x[:, 0] > 0
    rows = ca.from_host(host_rows)

    def fill():
        d[d < -0.5] = -1.0
        d[rows] = np.float32(7)             # a mask over the leading dimension
    _on_device(fill)
    x[x < -0.5] = -1.0
    x[host_rows] = 7
    check(d, x)
    i = ca.from_host(np.arange(6))
    i[i > 2] = 2.7                          # numpy's unsafe cast: 2
    check(i, np.minimum(np.arange(6), 2))


def test_device_index_out_of_range_raises_at_sync():
    d = ca.from_host(np.arange(4.0))
    bad = ca.from_host(np.array([1, 9]))
    r = d[bad]                             # clamped on the device: nothing read out of bounds
    with pytest.raises(IndexError, match="out of bounds"):
        ca.synchronize()
    assert r.shape == (2,)
    ca.synchronize()                       # the flag was cleared
    with pytest.raises(IndexError, match="out of bounds"):
        d[np.array([4])]                   # host indices are checked at once


def test_add_at_scatters_with_atomics():
    x = np.zeros((4, 3), np.float32)
    idx = np.array([0, 2, 0, 0])
    vals = sample((4, 3), np.float32)
    d = ca.from_host(x)
    di, dv = ca.from_host(idx), ca.from_host(vals)
    _on_device(lambda: np.add.at(d, di, dv))
    np.add.at(x, idx, vals)
    check(d, x)
    y = np.zeros(5, np.int64)
    dy = ca.from_host(y)
    np.add.at(dy, ca.from_host(np.array([1, 1, 4])), 2)
    np.add.at(y, np.array([1, 1, 4]), 2)
    check(dy, y)
    np.maximum.at(dy, ca.from_host(np.array([0, 0])), ca.from_host(np.array([3, 9])))
    np.maximum.at(y, np.array([0, 0]), np.array([3, 9]))
    check(dy, y)


def test_take_and_along_axis():
    x = sample((3, 5), np.float32)
    d = ca.from_host(x)
    idx = np.argsort(x, axis=1)[:, :2]
    di = ca.from_host(idx)
    check(_on_device(lambda: np.take_along_axis(d, di, axis=1)),
          np.take_along_axis(x, idx, axis=1))
    check(np.take(d, [0, 4], axis=1), np.take(x, [0, 4], axis=1))
    check(np.take(d, 7), np.take(x, 7))
    y = x.copy()
    np.put_along_axis(y, idx, 0.0, axis=1)
    _on_device(lambda: np.put_along_axis(d, di, 0.0, axis=1))
    check(d, y)


def test_joining_and_patterns():
    x = sample((2, 3), np.float32)
    y = sample((4, 3), np.float64)
    dx, dy = ca.from_host(x), ca.from_host(y)
    check(_on_device(lambda: np.concatenate([dx, dy])), np.concatenate([x, y]))
    check(_on_device(lambda: np.concatenate([dx, dx.T[:, :2].T], axis=1)),
          np.concatenate([x, x.T[:, :2].T], axis=1))
    check(_on_device(lambda: np.stack([dx, dx], axis=-1)), np.stack([x, x], axis=-1))
    m = sample((4, 4), np.float32)
    dm = ca.from_host(m)
    check(_on_device(lambda: np.tril(dm)), np.tril(m))
    check(_on_device(lambda: np.triu(dm, 1)), np.triu(m, 1))
    check(_on_device(lambda: np.roll(dm, 1, axis=0)), np.roll(m, 1, axis=0))
    check(_on_device(lambda: np.repeat(dx, 2, axis=0)), np.repeat(x, 2, axis=0))
    check(_on_device(lambda: np.tile(dx, (2, 1))), np.tile(x, (2, 1)))
    parts = _on_device(lambda: np.split(dy, [1, 3]))
    for p, e in zip(parts, np.split(y, [1, 3])):
        check(p, e)
    check(_on_device(lambda: np.diff(dy, axis=0)), np.diff(y, axis=0))
    check(_on_device(lambda: np.linalg.norm(dy)), np.linalg.norm(y))
    check(_on_device(lambda: np.count_nonzero(dx > 0)), np.int64(np.count_nonzero(x > 0)))
    assert np.allclose(dx, dx + 1e-9) and not np.array_equal(dx, dx + 1)
    with pytest.raises(ValueError, match="must match exactly"):
        np.concatenate([dx, dy], axis=1)


def test_like_creators_dispatch():
    d = ca.from_host(sample((2, 3), np.float32))
    out = _on_device(lambda: [np.zeros_like(d), np.ones_like(d, dtype=np.int64),
                              np.full_like(d, 7), np.empty_like(d)])
    check(out[0], np.zeros((2, 3), np.float32))
    check(out[1], np.ones((2, 3), np.int64))
    check(out[2], np.full((2, 3), 7, np.float32))
    assert isinstance(out[3], ca.DeviceArray) and out[3].shape == (2, 3)
    dst = ca.zeros((2, 3), np.float64)
    _on_device(lambda: np.copyto(dst, d))
    check(dst, host(d).astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_sort_and_argsort_on_device(dtype):
    x = sample((3, 7), dtype)
    if dtype == np.float32:
        x[0, 2] = x[1, 5] = np.nan
        x[2, :3] = 0.5                     # ties keep index order (a stable sort)
    d = ca.from_host(x)
    for axis in (-1, 0, None):
        check(_on_device(lambda: np.sort(d, axis=axis)), np.sort(x, axis=axis))
        check(_on_device(lambda: np.argsort(d, axis=axis)),
              np.argsort(x, axis=axis, kind="stable"))
    v = d[1].copy()
    _on_device(lambda: v.sort())
    check(v, np.sort(x[1]))


def test_unsupported_function_falls_back_and_is_logged():
    x = sample((5,), np.float32)
    d = ca.from_host(x)
    ca.reset_transfers()
    got = np.unique(d)
    assert ca.transfer_log() == {("d2h", "unique"): 1, ("h2d", "unique"): 1}
    check(got, np.unique(x))
    with pytest.raises(TypeError, match="unique"):
        np.unique(d, return_counts="x", axis=object())


# ---------------------------------------------------------------- allocator
def test_allocator_reuses_freed_blocks():
    memory.empty_cache()
    d = ca.empty((1000,), np.float32)
    reserved = ca.memory_reserved()
    allocated = ca.memory_allocated()
    del d
    assert ca.memory_allocated() == allocated - memory.size_class(4000)
    for _ in range(5):
        e = ca.empty((1000,), np.float32)
        del e
    assert ca.memory_reserved() == reserved            # no new block: the cached one
    assert memory.memory_stats()["num_cache_hits"] >= 5
    ca.empty_cache()
    assert ca.memory_reserved() == reserved - memory.size_class(4000)


def test_views_keep_their_block_alive():
    d = ca.from_host(np.arange(256, dtype=np.float32))
    v = d[10:20]
    raw = d.raw.reshape(16, 16)            # a numba view
    del d
    e = ca.from_host(np.full(256, -1.0, np.float32))   # would reuse the block if it were free
    check(v, np.arange(10, 20, dtype=np.float32))
    assert raw.copy_to_host()[0, 5] == 5
    del e


def test_peak_and_size_classes():
    assert memory.size_class(1) == 512 and memory.size_class(513) == 1024
    big = memory.size_class(3 << 20)
    assert big >= 3 << 20 and big <= (3 << 20) * 1.125
    ca.reset_peak_memory_stats()
    before = ca.max_memory_allocated()
    d = ca.empty((4096,), np.float64)
    assert ca.max_memory_allocated() >= before + 4096 * 8
    del d


# ---------------------------------------------------------------- random numbers
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rand_and_randn_statistics(dtype):
    u = host(_on_device(lambda: ca.rand((4001,), dtype, seed=3, offset=0)))
    assert u.dtype == dtype and u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.02 and abs(u.var() - 1 / 12) < 0.01
    z = host(_on_device(lambda: ca.randn((50, 80), dtype, seed=3, offset=10_000)))
    assert z.shape == (50, 80) and z.dtype == dtype and np.isfinite(z).all()
    assert abs(z.mean()) < 0.05 and abs(z.var() - 1) < 0.06
    assert abs(((z - z.mean()) ** 3).mean()) < 0.1           # symmetric
    # neighbours are not correlated
    flat = z.ravel()
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.05


def test_random_streams_are_keyed_by_seed_and_offset():
    a = host(ca.rand((257,), np.float32, seed=1, offset=5))
    b = host(ca.rand((257,), np.float32, seed=1, offset=5))
    c = host(ca.rand((257,), np.float32, seed=1, offset=5 + 257))
    d = host(ca.rand((257,), np.float32, seed=2, offset=5))
    np.testing.assert_array_equal(a, b)
    assert not np.isin(a, c).any() or np.isin(a, c).mean() < 0.01
    assert np.mean(a == d) < 0.01
    # the launch configuration does not change the numbers
    from fastnn.backends.cuda.common import GPU, using_launch_config
    with using_launch_config(GPU):
        e = host(ca.rand((257,), np.float32, seed=1, offset=5))
    np.testing.assert_array_equal(a, e)


def test_randint_range_and_errors():
    r = host(_on_device(lambda: ca.randint(-3, 4, (3000,), np.int64, seed=9)))
    assert r.min() == -3 and r.max() == 3
    counts = np.bincount(r + 3)
    assert counts.min() > 300                               # about 428 each
    assert host(ca.randint(0, 2, (10,), np.int32, seed=1)).dtype == np.int32
    with pytest.raises(ValueError, match="low >= high"):
        ca.randint(2, 2, (3,))
    with pytest.raises(TypeError, match="rand"):
        ca.rand((2,), np.int64)


def test_reshape_is_a_view_whenever_numpys_is():
    x = sample((4, 6, 2), np.float32)
    d = ca.from_host(x)
    for key, shape in [((slice(None), slice(0, 3)), (4, 3, 2)),    # view
                       ((slice(None), slice(0, 3)), (2, 2, 6)),    # copy
                       ((slice(None, None, 2),), (2, 3, 4)),       # view
                       ((slice(None), slice(None, None, -1)), (24, 2))]:
        view, host_view = d[key], x[key]
        try:
            np.reshape(host_view, shape, copy=False)
            numpy_views = True
        except ValueError:
            numpy_views = False
        r = _on_device(lambda: view.reshape(shape))
        assert np.may_share_memory(r, view) == numpy_views, (key, shape)
        check(r, host_view.reshape(shape))


def test_reduction_initial_and_where():
    x = sample((3, 4), np.float32)
    d = ca.from_host(x)
    check(_on_device(lambda: np.max(d, axis=1, initial=0.5)), np.max(x, axis=1, initial=0.5))
    check(_on_device(lambda: d.sum(axis=0, initial=2.0)), x.sum(axis=0, initial=2.0))
    check(np.max(ca.zeros((0, 2), np.float64), axis=0, initial=-1.0),
          np.max(np.zeros((0, 2)), axis=0, initial=-1.0))
    mask = x > 0
    check(np.max(d, axis=1, initial=-9.0, where=mask),          # where=: the host fallback
          np.max(x, axis=1, initial=-9.0, where=mask))


def test_more_functions_on_device():
    x = sample((3, 4), np.float64) * 10
    x[0, 0], x[0, 1], x[0, 2] = np.nan, np.inf, -np.inf
    d = ca.from_host(x)
    with np.errstate(all="ignore"):
        check(_on_device(lambda: np.round(d, 1)), np.round(x, 1))
        check(_on_device(lambda: d.round()), x.round())
        check(_on_device(lambda: np.isneginf(d)), np.isneginf(x))
        check(_on_device(lambda: np.isposinf(d)), np.isposinf(x))
        check(_on_device(lambda: np.nan_to_num(d)), np.nan_to_num(x))
        check(_on_device(lambda: np.nansum(d[1:], axis=1)), np.nansum(x[1:], axis=1))
        check(_on_device(lambda: np.nanmean(d, axis=0)), np.nanmean(x, axis=0))
    check(_on_device(lambda: np.append(d, d[:1], axis=0)), np.append(x, x[:1], axis=0))
    v = ca.from_host(np.array([1.0, 2.0, 3.0]))
    check(_on_device(lambda: np.diag(v, 1)), np.diag(np.array([1.0, 2.0, 3.0]), 1))
    check(_on_device(lambda: np.diag(d, -1)), np.diag(x, -1))
    i = np.array([0, 3, 3, 1, 3])
    ca.reset_transfers()
    counts = np.bincount(ca.from_host(i), minlength=6)
    assert ca.transfer_log()[("d2h", "bincount")] == 2       # min and max size the result
    check(counts, np.bincount(i, minlength=6))


# ---------------------------------------------------------------- random layouts
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def _views(draw):
    """A random strided view (slices with steps, a transpose) of a random array, and a second
    operand that broadcasts against it."""
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    base = RNG.standard_normal(tuple(s * 2 for s in shape)).astype(np.float32)
    key = tuple(slice(draw(st.integers(0, 1)), None, draw(st.sampled_from([1, 2, -1])))
                for _ in range(ndim))
    perm = draw(st.permutations(range(ndim)))
    other_shape = tuple(1 if draw(st.booleans()) else n for n in
                        np.transpose(base[key], perm).shape)[draw(st.integers(0, ndim - 1)):]
    return base, key, perm, RNG.standard_normal(other_shape).astype(np.float32)


@settings(max_examples=12)
@given(_views(), st.sampled_from([np.add, np.multiply, np.maximum, np.greater]))
def test_random_views_broadcast_like_numpy(case, ufunc):
    base, key, perm, other = case
    host_view = np.transpose(base[key], perm)
    d = ca.from_host(base)
    view = np.transpose(d[key], perm)
    o = ca.from_host(other)
    check(_on_device(lambda: ufunc(view, o)), ufunc(host_view, other))
    check(_on_device(lambda: view.sum(axis=-1)), host_view.sum(axis=-1), rtol=1e-5)
    target = np.transpose(d[key], perm)          # in place through a strided view
    _on_device(lambda: np.add(target, o, out=target))
    expected = base.copy()
    np.transpose(expected[key], perm)[...] += other
    check(d, expected)


_GPU_OWNERSHIP = '''
import ctypes, gc
import numpy as np
from numba.cuda.cudadrv import driver
from numba.cuda.cudadrv.devicearray import DeviceNDArray
from fastnn.backends.cuda import memory

class FakeContext:                     # hands out addresses; nothing is dereferenced
    def __init__(self):
        self.next, self.keep = 0x10000, []
    def memalloc(self, size):
        p = driver.MemoryPointer(self, ctypes.c_void_p(self.next), size, finalizer=lambda: 0)
        self.next += size
        self.keep.append(p)            # as numba's memory manager keeps its allocations
        return p.own()

ctx = FakeContext()
memory.SIMULATOR = False
memory._malloc = ctx.memalloc
a = memory.alloc_typed(100, np.float32)
v = DeviceNDArray((10,), (4,), np.float32, gpu_data=a.gpu_data.view(40))   # DeviceArray.raw
r = DeviceNDArray((10, 10), (40, 4), np.float32, gpu_data=a.gpu_data)      # numba's reshape
del a; gc.collect()
assert memory.memory_allocated() == 512, "freed while views were alive"
del v; gc.collect()
assert memory.memory_allocated() == 512
del r; gc.collect()
assert memory.memory_allocated() == 0 and sum(map(len, memory._free.values())) == 1
b = memory.alloc_typed(100, np.float32)
assert memory.memory_stats()["num_device_alloc"] == 1, "the cached block was not reused"
churn = [memory.alloc_typed(10, np.int64) for _ in range(50)]
del churn; gc.collect()
assert len(memory._gpu_live) == 1 and memory.memory_allocated() == 512
print("ok")
'''


def test_gpu_ownership_path_with_a_fake_context():
    """memory.py's GPU path (numba's reference-counted pointers), with a fake CUDA context in a
    process without the simulator: a block returns to the cache only when the last numba view
    of it is gone, and is then reused."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    res = subprocess.run([sys.executable, "-c", _GPU_OWNERSHIP], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
