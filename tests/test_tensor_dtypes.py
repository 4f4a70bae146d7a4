"""dtypes as PyTorch programs use them: `x.dtype == torch.float32`, `x.dtype is torch.float32`,
`str(x.dtype)`, `torch.long`, `x.to(torch.float64)`, `dtype.is_floating_point`,
get/set_default_dtype. fastnn's dtype objects (fastnn.dtype) print and behave as PyTorch's and
still stand for their numpy dtype wherever numpy takes one. Checked against PyTorch where it
is installed."""
import pickle

import numpy as np
import pytest

import fastnn

try:
    import torch
except ImportError:  # the PyTorch comparisons skip
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
NAMES = ["float16", "half", "float32", "float", "float64", "double", "int8", "int16", "short",
         "int32", "int", "int64", "long", "uint8", "bool", "complex64", "cfloat", "complex128",
         "cdouble"]


@pytest.fixture
def default_float32():
    yield
    fastnn.set_default_dtype(fastnn.float32)


def test_aliases_are_the_same_objects():
    assert fastnn.float is fastnn.float32 and fastnn.double is fastnn.float64
    assert fastnn.long is fastnn.int64 and fastnn.int is fastnn.int32
    assert fastnn.half is fastnn.float16 and fastnn.short is fastnn.int16
    assert fastnn.bool is fastnn.bool_ and fastnn.cfloat is fastnn.complex64
    assert all(isinstance(getattr(fastnn, n), fastnn.dtype) for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_tensor_dtype_is_the_named_object(name):
    d = getattr(fastnn, name)
    x = fastnn.zeros(2, dtype=d)
    assert x.dtype is d and x.dtype == d
    assert x.to(fastnn.float64).dtype is fastnn.float64
    assert x.numpy().dtype == d and np.zeros(2, d).dtype == x.numpy().dtype


@needs_torch
@pytest.mark.parametrize("name", NAMES)
def test_names_and_attributes_match_torch(name):
    d, t = getattr(fastnn, name), getattr(torch, name)
    assert str(d) == str(t) and repr(d) == repr(t)
    assert (d.is_floating_point, d.is_complex, d.is_signed, d.itemsize) == \
        (t.is_floating_point, t.is_complex, t.is_signed, t.itemsize)
    assert str(d.to_real()) == str(t.to_real())
    if d.is_floating_point and d is not fastnn.float16:
        assert str(d.to_complex()) == str(t.to_complex())
    assert fastnn.zeros(1, dtype=d).is_floating_point() == torch.zeros(1, dtype=t) \
        .is_floating_point()


@needs_torch
def test_inferred_dtypes_match_torch():
    for value in ([1, 2], [1.0, 2.0], [True, False], 3, 2.5, [[1, 2.5]]):
        assert str(fastnn.tensor(value).dtype) == str(torch.tensor(value).dtype), value
    for f in (lambda L: L.arange(3), lambda L: L.arange(3.0), lambda L: L.Tensor([1, 2]),
              lambda L: L.zeros(2, dtype=L.long).float(), lambda L: L.ones(2).long(),
              lambda L: L.ones(2).double().sum(), lambda L: L.ones(2) > 0,
              lambda L: L.ones(2, dtype=L.int32) / 2, lambda L: L.ones(2).argmax()):
        assert str(f(fastnn).dtype) == str(f(torch).dtype)


def test_numpy_sees_the_numpy_dtype():
    x = fastnn.ones(3)
    assert x.dtype == np.float32 and x.dtype == np.dtype("float32") and x.dtype == "float32"
    assert np.dtype("float32") == x.dtype and x.dtype != np.float64
    assert x.dtype != fastnn.float64 and x.dtype in (fastnn.float16, fastnn.float32)
    assert {np.dtype(np.float32): "f"}[x.dtype] == "f" and {x.dtype: "f"}[np.dtype("f4")] == "f"
    assert np.arange(3).astype(x.dtype).dtype == np.float32
    assert np.issubdtype(x.dtype, np.floating) and np.finfo(x.dtype).eps == np.finfo("f4").eps
    assert x.dtype.kind == "f" and x.dtype.itemsize == 4 and x.dtype.name == "float32"
    assert fastnn.finfo(fastnn.float32).eps == np.finfo(np.float32).eps
    assert fastnn.iinfo(fastnn.long).max == 2 ** 63 - 1


def test_dtype_arguments_take_every_spelling():
    for d in (fastnn.float64, np.float64, np.dtype("float64"), "float64", "torch.float64",
              "double", fastnn.DoubleTensor):
        assert fastnn.zeros(2, dtype=d).dtype is fastnn.float64, d
        assert fastnn.ones(2).to(d).dtype is fastnn.float64, d
    assert fastnn.ones(2).type(fastnn.int64).dtype is fastnn.long
    assert fastnn.ones(2).type() == "torch.FloatTensor"


def test_pickle_keeps_the_object():
    assert pickle.loads(pickle.dumps(fastnn.long)) is fastnn.long
    assert pickle.loads(pickle.dumps(fastnn.ones(2).dtype)) is fastnn.float32


def test_default_dtype(default_float32):
    assert fastnn.get_default_dtype() is fastnn.float32
    fastnn.set_default_dtype(fastnn.float64)
    assert fastnn.get_default_dtype() is fastnn.float64
    assert fastnn.zeros(2).dtype is fastnn.float64 and fastnn.tensor([1.0]).dtype is fastnn.float64
    assert fastnn.tensor([1]).dtype is fastnn.int64
    with pytest.raises(TypeError, match="float32 and float64"):
        fastnn.set_default_dtype(fastnn.int64)
    assert fastnn.get_default_dtype() is fastnn.float64


def test_unsupported_dtype_is_a_clear_error():
    with pytest.raises(TypeError, match="bfloat16 is not supported"):
        fastnn.zeros(2, dtype=fastnn.bfloat16)
    assert fastnn.float32 != fastnn.bfloat16
