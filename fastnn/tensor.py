"""fastnn.Tensor: a numpy array with reverse-mode autograd, in PyTorch's dialect.

    x = fastnn.tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()          # x.grad == 2 * x

How the tape works: every op that needs a gradient records one graph node (`_Fn`, PyTorch's
grad_fn) holding its parents' edges (a leaf Tensor that requires grad, another `_Fn`, or None)
and one closure (`_backward`) mapping the gradient of its output to the gradients of its inputs.
A Tensor points at the node that made it (`_fn`; None for a leaf). `backward()` sorts the nodes
once (iteratively: deep graphs do not hit the recursion limit), walks them output-to-inputs, sums
the gradients arriving at each node, and accumulates into `.grad` of the leaves, as PyTorch does.

In-place operations (`+=`, `add_`, `copy_`, `x[i] = v`, ...) write into the Tensor's numpy array,
so views (basic indexing, reshape/view, transpose, permute, squeeze, unsqueeze, narrow, expand)
see them, as in PyTorch. Every storage has a version counter (`t._version`) that in-place ops
bump; an op that saves a tensor for its backward records the version it saw, and backward()
refuses to run on a tensor modified since. An in-place op on a tensor in the graph is recorded:
the tensor's node becomes the op's node ("rebase"), and for a view the base's node becomes a
copy-into-the-slice node, so gradients flow as in PyTorch.

The heavy ops (matmul, activations, softmax, losses, layer norm, embedding) run on
`fastnn.kernels` (the current backend) in both directions. Cheap glue (elementwise arithmetic with
broadcasting, reductions, reshapes, indexing) uses numpy directly.

Gradient arrays passed between backward closures are never modified in place (two inputs may
share one, e.g. both inputs of an add). A leaf's `.grad` is a Tensor whose array is its own, so
`p.grad.zero_()`, `p.grad *= 0.5` or `p.grad.data.zero_()` act on p's gradient only; a later
backward accumulates into the same `.grad` Tensor, as PyTorch's AccumulateGrad does.

For code outside this module that records ops: `_node(data, parents, backward, saved=(tensors
whose ._data the backward reads), save_output=True if it reads the output)` gives the version
checks; `_save`/`_check_saved` do the same by hand.
"""
import builtins  # this module defines sum/max/min/abs/pow/round/all/any as tensor ops
import functools
import math
import numbers
import sys
import weakref
from collections import namedtuple

import numpy as np

from . import kernels as K
from . import _tensor_str
from ._torch_rng import DEFAULT_SEED as _TORCH_DEFAULT_SEED
from ._torch_rng import NumpyStream as _NumpyStream, TorchGenerator as _TorchGenerator
from .errors import NoCudaError
from .kernels import trusted as T

# ---------------------------------------------------------------- dtypes (numpy dtypes)
float16 = half = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
int8 = np.dtype(np.int8)
int16 = short = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = long = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)
complex64 = cfloat = np.dtype(np.complex64)
complex128 = cdouble = np.dtype(np.complex128)


class _UnsupportedDtype:
    """A dtype name PyTorch has and numpy lacks: using it raises a clear TypeError."""

    def __init__(self, name, why):
        self.name, self.why = name, why

    def __repr__(self):
        return f"fastnn.{self.name}"

    def error(self):
        return TypeError(f"fastnn: dtype {self.name} is not supported ({self.why}); use "
                         f"float32 or float64")


bfloat16 = _UnsupportedDtype("bfloat16", "numpy has no bfloat16")
finfo = np.finfo
iinfo = np.iinfo

_DEFAULT_FLOAT = float32
_FLOAT_KINDS = "fc"
_DTYPE_NAMES = {"float": float32, "float32": float32, "double": float64, "float64": float64,
                "half": float16, "float16": float16, "long": int64, "int64": int64,
                "int": int32, "int32": int32, "short": int16, "int16": int16, "int8": int8,
                "uint8": uint8, "bool": bool_, "byte": uint8, "char": int8}
_TYPE_NAMES = {float32: "torch.FloatTensor", float64: "torch.DoubleTensor",
               float16: "torch.HalfTensor", int64: "torch.LongTensor", int32: "torch.IntTensor",
               int16: "torch.ShortTensor", int8: "torch.CharTensor", uint8: "torch.ByteTensor",
               bool_: "torch.BoolTensor"}
_FROM_TYPE_NAME = {v: k for k, v in _TYPE_NAMES.items()}


def _dtype(dtype):
    """The numpy dtype a dtype argument names (a torch.dtype object, a numpy dtype or type, a
    name such as "float32" or "torch.long", a typed-tensor class), or None."""
    if dtype is None:
        return None
    if type(dtype) is _TorchDtype:
        return dtype.dtype
    if isinstance(dtype, _UnsupportedDtype):
        raise dtype.error()
    if isinstance(dtype, str):
        name = dtype[6:] if dtype.startswith("torch.") else dtype
        if name in _DTYPE_NAMES:
            return _DTYPE_NAMES[name]
        if dtype in _FROM_TYPE_NAME:
            return _FROM_TYPE_NAME[dtype]
        if name == "bfloat16":
            raise bfloat16.error()
    if dtype is float:
        return float64  # numpy's meaning of the Python type, as np.dtype(float)
    if isinstance(dtype, type) and issubclass(dtype, _TypedTensor):
        return dtype._dtype
    return np.dtype(dtype)


class _TypedTensorMeta(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and obj._data.dtype == cls._dtype


class _TypedTensor(metaclass=_TypedTensorMeta):
    """torch.FloatTensor and friends: constructors of a fixed dtype (FloatTensor([1, 2]),
    LongTensor(3, 4) for zeros of that shape); isinstance checks the dtype."""
    _dtype = None

    def __new__(cls, *args, **kwargs):
        if not args:
            return Tensor(np.zeros(0, cls._dtype))
        if builtins.all(type(a) is int for a in args):
            return Tensor(np.zeros(args, cls._dtype))
        return tensor(args[0], dtype=cls._dtype)


class dtype:
    """PyTorch's torch.dtype: what `Tensor.dtype`, `fastnn.float32`, `fastnn.long`, ... are.

    One object per numpy dtype, so `x.dtype is fastnn.float32` holds; it prints as PyTorch's
    (`torch.float32`) and has torch.dtype's attributes (is_floating_point, is_complex,
    is_signed, itemsize). It stands for its numpy dtype wherever numpy takes one
    (`np.zeros(3, x.dtype)`, `arr.astype(x.dtype)`: numpy reads the `.dtype` attribute), compares
    equal to it, hashes as it, and passes other attributes through (`.kind`, `.char`, `.name`).
    fastnn's own code works on the numpy dtypes of the arrays (`t._data.dtype`)."""
    __slots__ = ("dtype", "_name", "is_floating_point", "is_complex", "is_signed", "itemsize")

    def __init__(self, np_dtype, name):
        self.dtype = np.dtype(np_dtype)
        self._name = name
        self.is_floating_point = self.dtype.kind == "f"
        self.is_complex = self.dtype.kind == "c"
        self.is_signed = self.dtype.kind in "fci"
        self.itemsize = self.dtype.itemsize

    def __repr__(self):
        return f"torch.{self._name}"

    __str__ = __repr__

    def __eq__(self, other):
        if type(other) is dtype:
            return self.dtype == other.dtype
        if isinstance(other, _UnsupportedDtype):
            return False
        try:
            return self.dtype == other
        except TypeError:
            return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        return hash(self.dtype)

    def __getattr__(self, name):  # numpy's dtype attributes: kind, char, name, type, str, ...
        return getattr(object.__getattribute__(self, "dtype"), name)

    def __reduce__(self):
        return (_public_dtype, (self.dtype.str,))

    def to_real(self):
        if not self.is_complex:
            return self
        return _PUBLIC_DTYPE[float32 if self.dtype == complex64 else float64]

    def to_complex(self):
        if self.is_complex:
            return self
        if self.dtype == float64:
            return _PUBLIC_DTYPE[complex128]
        if self.dtype == float32:
            return _PUBLIC_DTYPE[complex64]
        raise RuntimeError(f"to_complex is not supported for {self}")


_TorchDtype = dtype  # the class, for functions whose `dtype` argument hides its name

# the torch.dtype object of each numpy dtype (its PyTorch name), and the public names
_PUBLIC_DTYPE = {np.dtype(d): dtype(d, n) for d, n in (
    (np.float16, "float16"), (np.float32, "float32"), (np.float64, "float64"),
    (np.int8, "int8"), (np.int16, "int16"), (np.int32, "int32"), (np.int64, "int64"),
    (np.uint8, "uint8"), (np.uint16, "uint16"), (np.uint32, "uint32"), (np.uint64, "uint64"),
    (np.bool_, "bool"), (np.complex64, "complex64"), (np.complex128, "complex128"))}
PUBLIC_DTYPES = {name: _PUBLIC_DTYPE[np.dtype(d)] for name, d in (
    ("float16", np.float16), ("half", np.float16), ("float32", np.float32),
    ("float", np.float32), ("float64", np.float64), ("double", np.float64),
    ("int8", np.int8), ("int16", np.int16), ("short", np.int16), ("int32", np.int32),
    ("int", np.int32), ("int64", np.int64), ("long", np.int64), ("uint8", np.uint8),
    ("uint16", np.uint16), ("uint32", np.uint32), ("uint64", np.uint64),
    ("bool", np.bool_), ("bool_", np.bool_), ("complex64", np.complex64),
    ("cfloat", np.complex64), ("complex128", np.complex128), ("cdouble", np.complex128))}


def _public_dtype(d):
    """The torch.dtype object for numpy dtype d (d itself for a dtype PyTorch lacks)."""
    d = np.dtype(d)
    return _PUBLIC_DTYPE.get(d, d)


def get_default_dtype():
    """The dtype of new floating-point tensors (float32 unless set_default_dtype changed it)."""
    return _PUBLIC_DTYPE[_DEFAULT_FLOAT]


def set_default_dtype(d):
    """Make `d` (float32 or float64) the dtype of new floating-point tensors, as PyTorch."""
    global _DEFAULT_FLOAT
    d = _dtype(d)
    if d not in (float32, float64):
        raise TypeError(f"set_default_dtype: only float32 and float64 are supported, got {d}")
    _DEFAULT_FLOAT = d


def is_floating_point(t):
    return t._data.dtype.kind == "f"


def is_tensor(obj):
    return isinstance(obj, Tensor)


class Size(tuple):
    """A tensor's shape (what Tensor.size() returns): a tuple with numel()."""

    def numel(self):
        return math.prod(self)

    def __repr__(self):
        # PyTorch's text, so that programs printing shapes print the same lines on fastnn
        return f"torch.Size({list(self)})"

    def __getitem__(self, index):
        r = tuple.__getitem__(self, index)
        return Size(r) if isinstance(index, slice) else r

    def __add__(self, other):
        return Size(tuple.__add__(self, tuple(other)))

    def __radd__(self, other):
        return Size(tuple(other) + tuple(self))

    def __mul__(self, n):
        return Size(tuple.__mul__(self, n))

    __rmul__ = __mul__


# ---------------------------------------------------------------- devices
class device:
    """fastnn.device('cpu'), device('cuda', 0), device('cuda:1'): where a tensor lives, the CPU
    (numpy storage) or a GPU (device storage, when fastnn.cuda.is_available()); see _device.
    `with fastnn.device('cuda'):` makes it the default device of the factories inside."""
    __slots__ = ("type", "index")
    _TYPES = ("cpu", "cuda", "mps", "meta", "xpu", "xla", "hip", "ipu", "hpu", "privateuseone")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        elif isinstance(type, numbers.Integral) and not isinstance(type, bool):
            type, index = "cuda", int(type)
        elif isinstance(type, str):
            if ":" in type:
                type, _, idx = type.partition(":")
                if index is not None:
                    raise RuntimeError("device: type (string) must not include an index because "
                                       "index was passed explicitly: " + type)
                try:
                    index = int(idx)
                except ValueError:
                    raise RuntimeError(f"Invalid device string: '{type}:{idx}'") from None
            if type not in self._TYPES:
                raise RuntimeError(f"Expected one of {', '.join(self._TYPES)} device type at "
                                   f"start of device string: {type}")
        else:
            raise TypeError(f"device(): expected a string or int, got {type!r}")
        if index is not None and index < 0:
            raise RuntimeError(f"Device index must not be negative, got {index}")
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "index", index)

    def __setattr__(self, name, value):
        raise AttributeError("fastnn.device is immutable")

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except (RuntimeError, TypeError):
                return False
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __enter__(self):  # the default device of factories inside the with-block
        _default_device.append(_device(self))
        return self

    def __exit__(self, *exc):
        if len(_default_device) > 1:
            _default_device.pop()
        return False

    def __reduce__(self):
        return (device, (self.type, self.index))


_CPU = device("cpu")


_CUDA_DEVICES = {}   # index -> device('cuda', index), so .device is cheap and shared
_default_device = [_CPU]   # the bottom is set_default_device's; `with device(...)` pushes
_ca_module = []      # fastnn.backends.cuda.array, once a tensor has gone to a GPU


def _device(d):
    """The device for a `device=` argument: the CPU, or 'cuda:N' when fastnn.cuda.is_available()
    (a GPU, or Numba's simulator with FASTNN_CUDA_SIMULATOR_AS_DEVICE=1); NoCudaError without
    one, as PyTorch built without CUDA; a clear error for any other device."""
    if d is None or d is _CPU:
        return _CPU
    if not isinstance(d, device):
        d = device(d)
    if d.type == "cpu":
        return _CPU
    if d.type == "cuda":
        from . import cuda as _cuda   # (a layer below tensor: no import cycle)
        if not _cuda.is_available():
            raise NoCudaError(f"fastnn: no CUDA device for tensors on '{d}' "
                              f"({_cuda.unavailable_reason()}), as PyTorch's 'Torch not "
                              f"compiled with CUDA enabled'; use device='cpu' or check "
                              f"fastnn.cuda.is_available() first")
        index = _cuda.current_device() if d.index is None else d.index
        if index >= _cuda.device_count():
            raise RuntimeError(f"CUDA error: invalid device ordinal (cuda:{index}; "
                               f"{_cuda.device_count()} device(s))")
        return _cuda_device(index)
    raise RuntimeError(f"fastnn: device '{d}' is not supported; tensors live on the CPU or a "
                       f"CUDA GPU")


def _cuda_device(index):
    d = _CUDA_DEVICES.get(index)
    if d is None:
        d = _CUDA_DEVICES[index] = device("cuda", index)
    return d


def _target_device(d):
    """_device(d), with None meaning the default device (set_default_device, with device)."""
    return _device(d) if d is not None else _default_device[-1]


def _ca():
    """fastnn.backends.cuda.array, imported at the first use of a GPU (never on the CPU path)."""
    if not _ca_module:
        from .backends.cuda import array
        _ca_module.append(array)
    return _ca_module[0]


def _on_gpu(a):
    """Whether array a is device storage (cheap for numpy arrays: one type check)."""
    return type(a) is not np.ndarray and bool(_ca_module) and _ca_module[0].is_device_array(a)


def _device_of(a):
    if type(a) is np.ndarray or not _on_gpu(a):
        return _CPU
    return _cuda_device(a.device_index)


def _moved(a, dev):
    """Array a on device dev: itself when it is there already, else a counted copy."""
    if dev is _CPU:
        return _ca().to_host(a) if _on_gpu(a) else a
    if _on_gpu(a):
        if a.device_index == dev.index:
            return a
        a = _ca().to_host(a)   # between GPUs through the host (fastnn is single-GPU so far)
    return _ca().from_host(a, device_index=dev.index)      # (keeps a 0-d array 0-d)


def _asarray(x, dtype=None):
    """np.asarray that keeps device storage on its device (np.asarray would copy it to the
    host): op results are numpy arrays, numpy scalars or device arrays."""
    if type(x) is np.ndarray:
        return x if dtype is None or x.dtype == dtype else x.astype(dtype)
    if _ca_module and _ca_module[0].is_device_array(x):
        return x if dtype is None or x.dtype == dtype else x.astype(dtype)
    return np.asarray(x, dtype)


def _zeros(shape, dtype, like):
    """np.zeros(shape, dtype) on the device of array `like` (backward closures' buffers)."""
    if type(like) is np.ndarray or not _on_gpu(like):
        return np.zeros(shape, dtype)
    return _ca().zeros(shape if isinstance(shape, tuple) else (shape,), dtype,
                       device_index=like.device_index)


def _ascontiguous(a):
    """np.ascontiguousarray that keeps device storage on its device."""
    if type(a) is np.ndarray or not _on_gpu(a):
        return np.ascontiguousarray(a)
    return a.contiguous()


def _empty(shape, dtype, like):
    """np.empty(shape, dtype) on the device of array `like`."""
    if type(like) is np.ndarray or not _on_gpu(like):
        return np.empty(shape, dtype)
    return _ca().empty(shape, dtype, device_index=like.device_index)


def _same_device(a, b):
    """The arrays of one op, a and b, on one device: PyTorch's error otherwise. A 0-d CPU array
    mixes with a device array, as PyTorch's 0-d CPU tensors do: it comes back as a numpy
    scalar, which device kernels take as an argument (no copy)."""
    ga, gb = _on_gpu(a), _on_gpu(b)
    if ga == gb:
        if ga and a.device_index != b.device_index:
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at "
                               f"least two devices, cuda:{a.device_index} and "
                               f"cuda:{b.device_index}!")
        return a, b
    if ga and getattr(b, "ndim", 0) == 0:
        return a, (b[()] if isinstance(b, np.ndarray) else b)
    if gb and getattr(a, "ndim", 0) == 0:
        return (a[()] if isinstance(a, np.ndarray) else a), b
    first, second = (a, b) if ga else (b, a)
    raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two "
                       f"devices, cuda:{first.device_index} and cpu!")


def get_default_device():
    """The device of new tensors made without device=: the CPU unless set_default_device or a
    `with fastnn.device(...)` block says otherwise."""
    return _default_device[-1]


def set_default_device(d):
    """Make d the device of the factories' tensors (tensor, zeros, randn, arange, ...); None or
    'cpu' restores the CPU. 'cuda' raises NoCudaError without a GPU, as device= does."""
    _default_device[0] = _CPU if d is None else _device(d)


def _is_device_arg(a):
    if isinstance(a, device):
        return True
    if isinstance(a, str):
        try:
            device(a)
            return True
        except RuntimeError:
            return False
    return False


# ---------------------------------------------------------------- grad mode and random state
_grad_enabled = [True]   # a one-element list: the cheapest mutable global to read in every op


def is_grad_enabled():
    return _grad_enabled[0]


class _GradMode:
    """Context manager and decorator that sets whether ops record the graph (also usable as a
    bare decorator: @fastnn.no_grad)."""
    enabled = True

    def __new__(cls, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], bool):
            return cls()(args[0])  # @no_grad without parentheses
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        self._prev = _grad_enabled[0]
        _grad_enabled[0] = self.enabled

    def __exit__(self, *exc):
        _grad_enabled[0] = self._prev

    def __call__(self, fn):
        mode = self

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with mode.clone():
                return fn(*args, **kwargs)
        return wrapper

    def clone(self):
        return self.__class__()


class no_grad(_GradMode):
    """with fastnn.no_grad(): ... runs ops without recording gradients (inference, updates)."""
    enabled = False


class enable_grad(_GradMode):
    enabled = True


class inference_mode(_GradMode):
    """As no_grad (fastnn has no separate inference tensors); inference_mode(False) records."""

    def __init__(self, mode=True):
        self.mode = bool(mode)

    @property
    def enabled(self):
        return not self.mode

    def clone(self):
        return inference_mode(self.mode)


def is_inference_mode_enabled():
    return False


class set_grad_enabled:
    """set_grad_enabled(False) switches recording off now (a function call) or for a `with`
    block, restoring the previous mode at its end, as PyTorch."""

    def __init__(self, mode):
        self._prev = _grad_enabled[0]
        self.mode = bool(mode)
        _grad_enabled[0] = self.mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _grad_enabled[0] = self._prev

    def __call__(self, fn):
        _grad_enabled[0] = self._prev
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper


# fastnn's global generator is PyTorch's default CPU generator, bit for bit (fastnn/_torch_rng.py):
# seeded alike, fastnn and torch draw the same rand/randn/randint/randperm/bernoulli/... values,
# so models initialised from a seed start from PyTorch's very weights. It is reseeded in place,
# so code holding it sees the new stream.
_rng = [_TorchGenerator(_TORCH_DEFAULT_SEED)]


def manual_seed(seed):
    """Seed fastnn's random generator (randn, rand, parameter init, dropout, shuffling) as
    torch.manual_seed seeds PyTorch's: the same seed gives the same numbers."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise TypeError(f"manual_seed expected an int, got {type(seed).__name__}") from None
    return _rng[0].manual_seed(int(seed))


def seed():
    s = int(np.random.SeedSequence().entropy % (2 ** 63))
    manual_seed(s)
    return s


def initial_seed():
    return _rng[0].initial_seed()


def default_generator():
    """The generator behind fastnn's random ops (reseeded by manual_seed): PyTorch's CPU
    stream, with the numpy Generator methods fastnn's internals call (random, integers, ...)."""
    return _rng[0]


_RNG_ATTRS = ("_rng", "rng", "_generator", "generator", "np_generator", "_np_rng", "_gen")


def _gen(generator):
    """The generator for a `generator=` argument (None: fastnn's global one): a TorchGenerator
    (fastnn.Generator holds one), or a numpy Generator wrapped to the same methods."""
    if generator is None:
        return _rng[0]
    if isinstance(generator, (_TorchGenerator, _NumpyStream)):
        return generator
    if isinstance(generator, np.random.Generator):
        return _NumpyStream(generator)
    for name in _RNG_ATTRS:
        g = getattr(generator, name, None)
        if callable(g) and not isinstance(g, (np.random.Generator, _TorchGenerator)):
            try:
                g = g()
            except TypeError:
                continue
        if isinstance(g, _TorchGenerator):
            return g
        if isinstance(g, np.random.Generator):
            return _NumpyStream(g)
    raise TypeError(f"generator must be a fastnn Generator or a numpy Generator, got "
                    f"{type(generator).__name__}")


def _laid_out(d, flat):
    """Values drawn in the order PyTorch's TensorIterator visits the elements of array d (its
    memory order: row-major for a contiguous tensor, the base's order for a transposed view), as
    an array of d's shape."""
    flags = getattr(d, "flags", None)
    if flags is None or _c_contiguous(d) or d.ndim < 2:   # (numpy or device storage)
        return flat.reshape(d.shape)
    order = sorted(range(d.ndim), key=lambda i: -builtins.abs(d.strides[i]))   # slowest first
    return flat.reshape([d.shape[i] for i in order]).transpose(np.argsort(order))


def _float_work(dt):
    """PyTorch's sampling dtype for a float tensor dtype: float64 stays, others draw float32."""
    if dt.kind != "f":
        raise NotImplementedError(f"a continuous distribution needs a floating point tensor, "
                                  f"got {dt}")
    return np.dtype(np.float64) if dt == np.float64 else np.dtype(np.float32)


def _called_from_user():
    """True when Tensor(...) was called by code outside the fastnn package."""
    f = sys._getframe(2)
    while f is not None and f.f_code.co_name == "__init__" and "self" in f.f_locals \
            and isinstance(f.f_locals["self"], Tensor):
        f = f.f_back  # a subclass's __init__ calling Tensor.__init__
    name = f.f_globals.get("__name__", "") if f is not None else ""
    return not (name == "fastnn" or name.startswith("fastnn."))


class RequiresGradError(TypeError, RuntimeError):
    """requires_grad on a non-floating-point tensor: PyTorch's RuntimeError, and a TypeError."""


def _check_float_for_grad(dt):
    if dt.kind not in _FLOAT_KINDS:
        raise RequiresGradError(f"only Tensors of floating point and complex dtype can require "
                                f"gradients (got {dt})")


# ---------------------------------------------------------------- graph nodes
class _Fn:
    """One recorded op (PyTorch's grad_fn): parent edges, the backward closure, the versions of
    the tensors it saved, and (rarely) hooks, a retained-grad tensor, a double-backward rule."""
    __slots__ = ("_parents", "_backward", "_saved", "_hooks", "_retain", "_tb", "_qn",
                 "__weakref__")

    def __init__(self, parents, backward, saved=None, tb=None):
        self._parents = parents
        self._backward = backward
        self._saved = saved
        self._hooks = None
        self._retain = None
        self._tb = tb
        self._qn = None

    def name(self):
        q = self._qn or getattr(self._backward, "__qualname__", "") or "Op"
        parts = [p for p in q.split(".") if p not in ("Tensor", "<locals>", "<lambda>",
                                                         "backward")]
        base = (parts[0] if parts else "Op").strip("_")
        return "".join(w[:1].upper() + w[1:] for w in base.split("_")) + "Backward0"

    def __repr__(self):
        return f"<{self.name()} object>"

    def __call__(self, *grads):
        return self._backward(*[_raw(g) for g in grads])

    @property
    def next_functions(self):
        out = []
        for p in self._parents:
            if p is None:
                out.append((None, 0))
            elif type(p) is _Fn:
                out.append((p, 0))
            else:
                out.append((_AccumulateGrad(p), 0))
        return tuple(out)

    def register_hook(self, hook):
        raise NotImplementedError("grad_fn.register_hook: use Tensor.register_hook")


class _AccumulateGrad:
    """What next_functions shows for a leaf, as PyTorch's AccumulateGrad."""

    def __init__(self, variable):
        self.variable = variable

    def name(self):
        return "AccumulateGrad"

    def __repr__(self):
        return "<AccumulateGrad object>"

    next_functions = ()


class _RemovableHandle:
    def __init__(self, hooks, key, counter=None):
        self._hooks, self._key, self._counter = hooks, key, counter

    def remove(self):
        if self._hooks.pop(self._key, None) is not None and self._counter is not None:
            self._counter[0] -= 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _released(g):
    raise RuntimeError("backward(): trying to go through part of the graph a second time (or "
                       "directly access saved tensors after they have already been freed); its "
                       "buffers were freed by the first backward(). Specify retain_graph=True "
                       "if you need to backward through the graph a second time.")


def _modified_error(rec, fn):
    vc, ver, data = rec
    shape = list(np.shape(data)) if data is not None else "?"
    dt = getattr(data, "dtype", "?")
    return RuntimeError(
        f"one of the variables needed for gradient computation has been modified by an inplace "
        f"operation: [{_TYPE_NAMES.get(dt, str(dt))} {shape}], which is saved by "
        f"{fn.name()}, is at version {vc[0]}; expected version {ver} instead. Hint: clone() it "
        f"before modifying it in place, or modify it after backward().")


def _save(*tensors):
    """Version records for tensors an op's backward will read (see _check_saved)."""
    return tuple((t._vc, t._vc[0], t._data) for t in tensors if isinstance(t, Tensor))


def _check_saved(records, fn=None):
    """Raise PyTorch's error if a tensor recorded by _save was modified in place since."""
    for rec in records:
        if rec[0][0] != rec[1]:
            raise _modified_error(rec, fn if fn is not None else _Fn((), _check_saved))


# ---------------------------------------------------------------- the Tensor
class Tensor:
    """An n-d array (`._data`, a numpy array) with an optional gradient and autograd history."""
    __slots__ = ("_data", "_grad", "requires_grad", "_fn", "_vc", "_base", "_view",
                 "_post_acc_hooks", "_hooks", "__weakref__")
    __array_priority__ = 1000  # so ndarray + Tensor dispatches to Tensor.__radd__
    _n_post_acc_hooks = [0]   # hooks registered on any leaf: backward() counts uses only if > 0
    _n_grad_hooks = [0]       # register_hook on leaves: the same
    _final_callbacks = []     # run once at the end of the current backward() (_queue_callback)

    @property
    def data(self):
        """PyTorch's `.data`: a Tensor sharing this tensor's storage, with requires_grad=False,
        no history and its own version counter, so in-place changes through it (DCGAN's
        `m.weight.data.normal_(0, 0.02)`, `p.data.add_(g, alpha=-lr)`) stay invisible to
        autograd, as in PyTorch. fastnn's own code reads the numpy array as `t._data`."""
        t = Tensor.__new__(Tensor)
        t._data = self._data
        t._grad = t._fn = t._base = t._view = t._post_acc_hooks = t._hooks = None
        t.requires_grad = False
        t._vc = [0]
        return t

    @data.setter
    def data(self, value):
        # `p.data = t`: p now shares t's storage; shape and dtype may change, as in PyTorch
        if not isinstance(value, Tensor):
            raise TypeError(f"Variable data has to be a tensor, but got "
                            f"{type(value).__name__}")
        self._data = value._data

    def __init__(self, data=None, requires_grad=False, *sizes, dtype=None, device=None):
        vc = None
        if device is not None:
            device = _device(device)
        if type(data) is int and type(self) is Tensor and _called_from_user():
            # torch.Tensor(3, 4): a new (here zeroed) tensor of that size
            shape = (data,) + ((requires_grad,) if type(requires_grad) is int else ()) + sizes
            data, requires_grad = np.zeros(shape, _dtype(dtype) or _DEFAULT_FLOAT), False
        if isinstance(data, Tensor):
            vc = data._vc
            data = data._data
        if type(data) is np.ndarray or not _on_gpu(data):   # device storage is kept as it is
            if data is None:
                data = np.zeros(0, _DEFAULT_FLOAT)
            elif not isinstance(data, (np.ndarray, np.generic)):
                # Tensor([...]) is a float tensor (the default dtype), as torch.Tensor
                data = np.array(_raw_nested(data), dtype=_dtype(dtype) or _DEFAULT_FLOAT)
            elif (dtype is None and type(self) is Tensor and data.dtype != _DEFAULT_FLOAT
                  and _called_from_user()):
                # torch.Tensor(ndarray) is a tensor of the default dtype; fastnn's own code
                # passes arrays whose dtype it means to keep
                data = np.asarray(data, dtype=_DEFAULT_FLOAT)
            data = np.asarray(data)
        if dtype is not None and data.dtype != _dtype(dtype):
            data, vc = data.astype(_dtype(dtype)), None
        if device is not None and _device_of(data) != device:
            data, vc = _moved(data, device), None
        if requires_grad:
            _check_float_for_grad(data.dtype)
        self._data = data
        self._grad = None
        self.requires_grad = bool(requires_grad)
        self._fn = None
        self._vc = vc if vc is not None else [0]
        self._base = None
        self._view = None
        self._post_acc_hooks = None
        self._hooks = None

    # ------------------------------------------------------------ attributes
    @property
    def grad(self):
        """The gradient accumulated by backward(): a Tensor of this tensor's shape, or None."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is None:
            self._grad = None
            return
        if isinstance(value, Tensor):
            if value._data.shape != self._data.shape:
                raise RuntimeError("assigned grad has data of a different size")
            if value._data.dtype != self._data.dtype and value._data.dtype.kind in _FLOAT_KINDS:
                raise RuntimeError("assigned grad has data of a different type")
            self._grad = value
        elif isinstance(value, np.ndarray):  # older fastnn code: a copy, never written into
            self._grad = _grad_tensor(np.array(value))
        else:
            raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type "
                            f"{type(value).__name__}")

    @grad.deleter
    def grad(self):
        self._grad = None

    @property
    def shape(self):
        return Size(self._data.shape)

    @property
    def dtype(self):
        d = self._data.dtype
        return _PUBLIC_DTYPE.get(d, d)

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def device(self):
        """cpu for numpy storage, cuda:N for device storage (derived from the storage)."""
        d = self._data
        return _CPU if type(d) is np.ndarray else _device_of(d)

    @property
    def is_cuda(self):
        return type(self._data) is not np.ndarray and _on_gpu(self._data)

    @property
    def is_cpu(self):
        return not self.is_cuda

    is_sparse = False
    is_quantized = False
    is_meta = False
    layout = "strided"

    def get_device(self):
        """The GPU's index for a tensor on 'cuda', -1 on the CPU (PyTorch's)."""
        d = self._data
        return -1 if type(d) is np.ndarray or not _on_gpu(d) else d.device_index

    @property
    def is_leaf(self):
        return self._fn is None

    @property
    def grad_fn(self):
        if self._base is not None and self._base._fn is not self._view[0]:
            _refresh_view(self)
        return self._fn

    @property
    def _version(self):
        return self._vc[0]

    @property
    def retains_grad(self):
        fn = self._fn
        return fn is not None and fn._retain is not None and fn._retain() is self

    @property
    def itemsize(self):
        return self._data.itemsize

    @property
    def nbytes(self):
        return self._data.nbytes

    @property
    def T(self):
        return permute(self, tuple(range(self._data.ndim - 1, -1, -1)))

    @property
    def mT(self):
        return transpose(self, -2, -1)

    @property
    def H(self):
        return self.T

    @property
    def mH(self):
        return self.mT

    def size(self, dim=None):
        return Size(self._data.shape) if dim is None else self._data.shape[dim]

    def dim(self):
        return self._data.ndim

    ndimension = dim

    def numel(self):
        return self._data.size

    nelement = numel

    def element_size(self):
        return self._data.itemsize

    def stride(self, dim=None):
        st = tuple(s // self._data.itemsize for s in self._data.strides)
        return st if dim is None else st[dim]

    def data_ptr(self):
        d = self._data
        if _on_gpu(d):
            return d.raw.__cuda_array_interface__["data"][0]
        return d.__array_interface__["data"][0]

    def storage_offset(self):
        base = self._base if self._base is not None else None
        if base is None:
            return 0
        return (self.data_ptr() - base.data_ptr()) // self._data.itemsize

    def is_contiguous(self, memory_format=None):
        return _c_contiguous(self._data)

    def is_floating_point(self):
        return self._data.dtype.kind == "f"

    def is_complex(self):
        return self._data.dtype.kind == "c"

    def is_shared(self):
        return False

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def numpy(self, force=False):
        """The underlying array (shared, not copied). A tensor on a GPU raises PyTorch's
        TypeError (force=True copies it to the host, as PyTorch's numpy(force=True))."""
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        d = self._data
        if type(d) is not np.ndarray and _on_gpu(d):
            if force:
                return _ca().to_host(d)
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use "
                            f"Tensor.cpu() to copy the tensor to host memory first.")
        return d

    def __array_function__(self, func, types, args, kwargs):
        """numpy functions (np.all, np.sum, np.reshape, ...) see a Tensor as its array, as
        before Tensors had methods of those names."""
        return func(*_unwrap(args), **_unwrap(kwargs))

    def __array__(self, dtype=None, copy=None):
        d = self._data
        if type(d) is not np.ndarray and _on_gpu(d):
            # _asarray(cuda_tensor) raises in PyTorch, as .numpy() does
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use "
                            f"Tensor.cpu() to copy the tensor to host memory first.")
        if dtype is not None and dtype != d.dtype:
            return d.astype(dtype)
        return d.copy() if copy else d

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to "
                               f"Scalar")
        return self._data.reshape(-1)[0].item()   # on a GPU: one counted copy to the host

    def tolist(self):
        return self._data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an "
                            "index")
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous "
                               f"({self._data.size} elements)")
        return bool(self._data.reshape(-1)[0])

    def __complex__(self):
        return complex(self.item())

    def __format__(self, spec):
        if self._data.ndim == 0:
            return format(self.item(), spec)
        return format(repr(self), spec)

    def __repr__(self):
        data, dev = self._data, None
        if type(data) is not np.ndarray and _on_gpu(data):
            data, dev = _ca().to_host(data), self.device
        dt = data.dtype
        grad = (f"grad_fn=<{self._fn.name()}>" if self._fn is not None
                else "requires_grad=True" if self.requires_grad else None)
        return _tensor_str.tensor_repr(np.asarray(data), device=dev, dtype=_public_dtype(dt),
                                       default_dtype=dt == _DEFAULT_FLOAT,
                                       implied_dtype=dt in (_DEFAULT_FLOAT, int64, bool_),
                                       grad=grad)

    __hash__ = object.__hash__  # __eq__ is elementwise, but tensors stay usable as dict keys

    def __contains__(self, element):
        return bool(np.any(self._data == _raw(element)))

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(unbind(self, 0))

    def __reduce_ex__(self, protocol):
        # a tensor on a GPU pickles its values (copied to the host) and comes back on its GPU
        if _on_gpu(self._data):
            return (_rebuild_tensor, (_ca().to_host(self._data), self.requires_grad, type(self),
                                      str(self.device)))
        return (_rebuild_tensor, (np.array(self._data), self.requires_grad, type(self)))

    def __deepcopy__(self, memo):
        if self._fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) "
                               "support the deepcopy protocol at the moment")
        new = type(self).__new__(type(self))
        Tensor.__init__(new, self._data.copy(), self.requires_grad)
        if self._grad is not None:
            new._grad = _grad_tensor(self._grad._data.copy())
        memo[id(self)] = new
        return new

    # ------------------------------------------------------------ autograd
    def detach(self):
        """A tensor sharing storage (and version counter) with this one, outside the graph."""
        t = Tensor(self._data)
        t._vc = self._vc
        return t

    def detach_(self):
        if self._base is not None:
            raise RuntimeError("Can't detach views in-place. Use detach() instead.")
        self._fn = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad=True):
        if self._fn is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If "
                               "you want to use a computed variable in a subgraph that doesn't "
                               "require differentiation use var_no_grad = var.detach().")
        if requires_grad:
            _check_float_for_grad(self._data.dtype)
        if self._fn is None:
            self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in .grad after backward() (no-op on a leaf)."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        fn = self.grad_fn
        if fn is not None:
            fn._retain = weakref.ref(self)

    def register_hook(self, hook):
        """hook(grad) runs when this tensor's gradient is computed; a Tensor it returns replaces
        the gradient. Returns a handle with .remove()."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        fn = self.grad_fn
        key = object()
        if fn is None:
            if self._hooks is None:
                self._hooks = {}
            self._hooks[key] = hook
            Tensor._n_grad_hooks[0] += 1
            return _RemovableHandle(self._hooks, key, Tensor._n_grad_hooks)
        if fn._hooks is None:
            fn._hooks = {}
        fn._hooks[key] = hook
        return _RemovableHandle(fn._hooks, key)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's .grad (gradient: d(loss)/d(self)).
        inputs: accumulate only into these tensors."""
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs "
                                   f"(backward() on shape {self._data.shape} needs gradient=)")
            d = self._data
            if type(d) is np.ndarray:   # (ones_like's Python wrapper costs a few us per step)
                g = np.empty_like(d)
                g.fill(1)
            else:
                g = np.ones_like(d)
        else:
            g = _grad_array(gradient, self)
        if inputs is not None:
            inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
            if not inputs:
                raise RuntimeError("backward(): 'inputs' argument to backward() cannot be empty.")
        if create_graph:
            leaves = {}
            cap = _run_backward_graph([self], [_grad_tensor(g)], inputs, True, leaves)
            for k, p in leaves.items():  # .grad gets the gradient with its graph
                old = p._grad
                p._grad = cap[k] if old is None else old + cap[k]
            Tensor._run_final_callbacks()
            return
        _run_backward([self], [g], bool(retain_graph), inputs)

    def register_post_accumulate_grad_hook(self, hook):
        """hook(tensor) runs after backward() has accumulated all of its contributions into this
        leaf's .grad (once per backward, PyTorch's rule). Returns a handle with .remove()."""
        if self._fn is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: post accumulate grad hooks "
                               "cannot be registered on non-leaf tensors")
        if not self.requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: cannot register a hook on a "
                               "tensor that doesn't require gradient")
        hooks = self._post_acc_hooks
        if hooks is None:
            hooks = self._post_acc_hooks = {}
        key = object()
        hooks[key] = hook
        Tensor._n_post_acc_hooks[0] += 1
        return _RemovableHandle(hooks, key, Tensor._n_post_acc_hooks)

    _RemovableHandle = _RemovableHandle

    @staticmethod
    def _queue_callback(fn):
        """Run fn() once when the backward() in progress finishes (PyTorch's
        Variable._execution_engine.queue_callback; DistributedDataParallel waits on its
        gradient reductions there)."""
        Tensor._final_callbacks.append(fn)

    @staticmethod
    def _run_final_callbacks():
        cbs = Tensor._final_callbacks
        while cbs:
            cbs.pop(0)()

    # ------------------------------------------------------------ conversions and devices
    def to(self, *args, dtype=None, device=None, non_blocking=False, copy=False,
           memory_format=None):
        """to(dtype), to(device), to(device, dtype), to(other_tensor): this tensor if nothing
        changes (a copy with copy=True), else a converted one. A change of device copies the
        storage (counted in fastnn.cuda.transfer_count()) and is recorded by autograd, so the
        gradient flows back to the original device, as in PyTorch."""
        for a in args:
            if isinstance(a, Tensor):
                dtype = a._data.dtype
                device = a.device
            elif _is_device_arg(a) or (isinstance(a, numbers.Integral)
                                       and not isinstance(a, bool)):
                device = a
            elif a is not None:
                dtype = a
        t = self
        if device is not None:
            dev = _device(device)
            if dev != _device_of(self._data):
                t = _to_device(self, dev)
                copy = False
        dt = _dtype(dtype)
        if dt is None or dt == t._data.dtype:
            return t.clone() if copy else t
        return _cast(t, dt)

    def cpu(self, memory_format=None):
        """This tensor on the CPU: itself if it is there, else a copy in host memory."""
        return self.to(_CPU)

    def cuda(self, device=None, non_blocking=False, memory_format=None):
        """This tensor on the GPU (device: an index, 'cuda:N' or None for the current one)."""
        if device is None:
            device = "cuda"
        elif isinstance(device, numbers.Integral):
            device = _cuda_device(int(device))
        return self.to(device)

    def pin_memory(self, device=None):
        return self

    def share_memory_(self):
        return self

    def type(self, dtype=None, non_blocking=False):
        """type() -> 'torch.FloatTensor' style name; type(dtype) -> converted."""
        if dtype is None:
            return _TYPE_NAMES.get(self._data.dtype, f"torch.{self._data.dtype}")
        return self.to(dtype)

    def type_as(self, other):
        return self.to(other._data.dtype)

    def float(self):
        return self.to(float32)

    def double(self):
        return self.to(float64)

    def half(self):
        return self.to(float16)

    def bfloat16(self):
        raise bfloat16.error()

    def long(self):
        return self.to(int64)

    def int(self):
        return self.to(int32)

    def short(self):
        return self.to(int16)

    def char(self):
        return self.to(int8)

    def byte(self):
        return self.to(uint8)

    def bool(self):
        return self.to(bool_)

    def contiguous(self, memory_format=None):
        d = self._data
        if type(d) is np.ndarray:
            if d.flags.c_contiguous:
                return self
            out = np.ascontiguousarray(d)
        else:
            if _c_contiguous(d):
                return self
            out = d.contiguous()
        return _node(out, (self,), lambda g: (g,), tb=lambda g: (g,))

    def clone(self, memory_format=None):
        d = self._data
        out = np.array(d, copy=True) if type(d) is np.ndarray else d.copy()
        return _node(out, (self,), lambda g: (g,), tb=lambda g: (g,))

    # ------------------------------------------------------------ operators
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(self, other)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(_lift(other, self), self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(self, other)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(_lift(other, self), self)

    def __floordiv__(self, other):
        return floor_divide(self, other)

    def __rfloordiv__(self, other):
        return floor_divide(_lift(other, self), self)

    def __mod__(self, other):
        return remainder(self, other)

    def __rmod__(self, other):
        return remainder(_lift(other, self), self)

    def __pow__(self, other):
        return pow(self, other)

    def __rpow__(self, other):
        return pow(_lift(other, self), self)

    def __neg__(self):
        return neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return abs(self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(_lift(other, self), self)

    # in place: the same Tensor object and storage, as PyTorch
    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def __ifloordiv__(self, other):
        return _inplace(self, floor_divide, other)

    def __imod__(self, other):
        return _inplace(self, remainder, other)

    def __ipow__(self, other):
        return self.pow_(other)

    def __imatmul__(self, other):
        return _inplace(self, matmul, other)

    def __iand__(self, other):
        return _inplace(self, logical_and if self._data.dtype == bool_ else bitwise_and, other)

    def __ior__(self, other):
        return _inplace(self, logical_or if self._data.dtype == bool_ else bitwise_or, other)

    def __ixor__(self, other):
        return _inplace(self, bitwise_xor, other)

    def __getitem__(self, index):
        return getitem(self, index)

    def __setitem__(self, index, value):
        """x[index] = value, in place (recorded by autograd where x or value requires grad)."""
        index = _index(index)
        if _grad_enabled[0] and self.requires_grad and self._fn is None and self._base is None:
            # PyTorch writes through a view of self: its error names the view
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                               "in-place operation.")
        _check_inplace(self)
        if _grad_enabled[0] and (self.requires_grad or (isinstance(value, Tensor)
                                                        and value.requires_grad)):
            if self._base is not None and _is_basic_index(index) and not (
                    index is Ellipsis or index == (Ellipsis,)):
                # PyTorch writes through self[index], a view of this view
                parts = index if isinstance(index, tuple) else (index,)
                _check_multi_view(self, ("Select" if builtins.any(
                    isinstance(p, numbers.Integral) for p in parts) else "Slice", 0))
            _inplace(self, index_put, index, value)
            return
        d = _writable(self)
        d[index] = _raw(value)
        self._vc[0] += 1

    # comparisons: boolean tensors, no gradient
    def __lt__(self, other):
        return Tensor(_asarray(self._data < _raw(other)))

    def __le__(self, other):
        return Tensor(_asarray(self._data <= _raw(other)))

    def __gt__(self, other):
        return Tensor(_asarray(self._data > _raw(other)))

    def __ge__(self, other):
        return Tensor(_asarray(self._data >= _raw(other)))

    def __eq__(self, other):
        return Tensor(_asarray(self._data == _raw(other)))

    def __ne__(self, other):
        return Tensor(_asarray(self._data != _raw(other)))

    def __invert__(self):
        if self._data.dtype.kind == "f":
            raise TypeError("~ (bitwise_not) is only supported for integer and bool tensors")
        return Tensor(~self._data)

    def __and__(self, other):
        return Tensor(_asarray(self._data & _raw(other)))

    __rand__ = __and__

    def __or__(self, other):
        return Tensor(_asarray(self._data | _raw(other)))

    __ror__ = __or__

    def __xor__(self, other):
        return Tensor(_asarray(self._data ^ _raw(other)))

    __rxor__ = __xor__

    def __lshift__(self, other):
        return Tensor(_asarray(self._data << _raw(other)))

    def __rshift__(self, other):
        return Tensor(_asarray(self._data >> _raw(other)))

    eq = __eq__
    ne = not_equal = __ne__
    lt = less = __lt__
    le = less_equal = __le__
    gt = greater = __gt__
    ge = greater_equal = __ge__

    def equal(self, other):
        return equal(self, other)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return allclose(self, other, rtol, atol, equal_nan)

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return isclose(self, other, rtol, atol, equal_nan)

    # ------------------------------------------------------------ in-place methods
    def add_(self, other, *, alpha=1):
        return _arith_inplace(self, other, alpha, np.add, add)

    def sub_(self, other, *, alpha=1):
        return _arith_inplace(self, other, alpha, np.subtract, sub)

    def mul_(self, other):
        return _arith_inplace(self, other, 1, np.multiply, mul)

    def div_(self, other, *, rounding_mode=None):
        if rounding_mode is not None:
            return _inplace(self, div, other, rounding_mode=rounding_mode)
        return _arith_inplace(self, other, 1, np.true_divide, div)

    true_divide_ = div_
    multiply_ = mul_
    subtract_ = sub_

    def pow_(self, exponent):
        return _inplace(self, pow, exponent)

    def copy_(self, src, non_blocking=False):
        """Copy src's values (broadcast to this shape, cast to this dtype) into this tensor."""
        if not isinstance(src, Tensor):
            src = Tensor(_to_array(src))
        if _grad_enabled[0] and (self.requires_grad or src.requires_grad):
            return _inplace(self, _copy_from, src)
        _check_inplace(self)
        _assign(self, src._data)
        return self

    def fill_(self, value):
        if isinstance(value, Tensor):
            if value._data.size != 1:
                raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor "
                                   f"with {value._data.ndim} dimensions.")
            if _grad_enabled[0] and (self.requires_grad or value.requires_grad):
                return _inplace(self, _fill_from, value)
            value = value.item()
        if _grad_enabled[0] and self.requires_grad:
            return _inplace(self, _fill_from, value)
        _check_inplace(self)
        d = _writable(self)
        if d.dtype.kind in "iub" and isinstance(value, float) and not float(value).is_integer():
            pass  # PyTorch truncates too
        d.fill(value)
        self._vc[0] += 1
        return self

    def zero_(self):
        return self.fill_(0)

    def clamp_(self, min=None, max=None):
        return _inplace(self, clamp, min, max)

    clip_ = clamp_

    def clamp_min_(self, min):
        return _inplace(self, clamp, min, None)

    def clamp_max_(self, max):
        return _inplace(self, clamp, None, max)

    # The random fills draw PyTorch's values for a contiguous tensor of this shape (elements
    # in row-major order), from fastnn's global generator or `generator`.
    def uniform_(self, a=0.0, b=1.0, *, generator=None):
        a, b = float(_raw(a)), float(_raw(b))
        if not a <= b:
            raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found "
                               f"from={a} > to={b}")
        dt = self._data.dtype
        r = _gen(generator).uniform_fill(self._data.size, _float_work(dt), a, b)
        return _random_fill(self, _laid_out(self._data, r))

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        mean, std = float(_raw(mean)), float(_raw(std))
        if not std >= 0.0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
        # a non-contiguous tensor takes PyTorch's element-by-element path, in memory order
        flags = getattr(self._data, "flags", None)
        r = _gen(generator).normal_fill(self._data.size, _float_work(self._data.dtype), mean,
                                        std, scalar=flags is not None and not flags.c_contiguous)
        return _random_fill(self, _laid_out(self._data, r))

    def bernoulli_(self, p=0.5, *, generator=None):
        g = _gen(generator)
        if isinstance(p, Tensor) or isinstance(p, np.ndarray):
            probs = np.broadcast_to(_raw(p), self._data.shape)
            r = g.bernoulli_tensor(probs)
        else:
            p = float(p)
            if not 0.0 <= p <= 1.0:
                raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
            r = _laid_out(self._data, g.bernoulli_scalar(self._data.size, p))
        return _random_fill(self, r)

    def exponential_(self, lambd=1.0, *, generator=None):
        lambd = float(lambd)
        if not (lambd > 0 and math.isfinite(lambd)):
            raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
        _float_work(self._data.dtype)
        r = _gen(generator).exponential_fill(self._data.size, lambd)
        return _random_fill(self, _laid_out(self._data, r))

    def cauchy_(self, median=0.0, sigma=1.0, *, generator=None):
        _float_work(self._data.dtype)
        r = _gen(generator).cauchy(self._data.size, float(median), float(sigma))
        return _random_fill(self, _laid_out(self._data, r))

    def log_normal_(self, mean=1.0, std=2.0, *, generator=None):
        if not float(std) > 0:
            raise RuntimeError(f"log_normal_ expects std > 0.0, but found std={std}")
        _float_work(self._data.dtype)
        r = _gen(generator).log_normal(self._data.size, float(mean), float(std))
        return _random_fill(self, _laid_out(self._data, r))

    def geometric_(self, p, *, generator=None):
        if not 0 < float(p) < 1:
            raise RuntimeError(f"geometric_ expects p to be in (0, 1), but got p={p}")
        r = _gen(generator).geometric(self._data.size, float(p))
        return _random_fill(self, _laid_out(self._data, r))

    def random_(self, low=None, high=None, *, generator=None, **kw):
        """random_(): [0, 2^mantissa] for floats, [0, max] for integers; random_(to): [0, to);
        random_(from, to): [from, to) (from_= and to= as keywords too), as PyTorch."""
        low = kw.pop("from_", kw.pop("from", low))
        high = kw.pop("to", high)
        if kw:
            raise TypeError(f"random_() got unexpected keyword arguments {sorted(kw)}")
        g, n, shape = _gen(generator), self._data.size, self._data.shape
        if low is None and high is None:
            r = g.random_default(n, self._data.dtype)
        else:
            if high is None:
                low, high = 0, low
            r = g.integers_from_to(n, 0 if low is None else int(low), int(high))
        return _random_fill(self, _laid_out(self._data, r))

    def masked_fill_(self, mask, value):
        return _inplace(self, masked_fill, mask, value)

    def masked_scatter_(self, mask, source):
        raise NotImplementedError("masked_scatter_")

    def index_put_(self, indices, values, accumulate=False):
        return _inplace(self, index_put, tuple(_index(i) for i in indices), values, accumulate)

    def index_fill_(self, dim, index, value):
        idx = (slice(None),) * (dim % self._data.ndim) + (_index(index),)
        return _inplace(self, index_put, idx, value)

    def addcmul_(self, tensor1, tensor2, *, value=1):
        return _inplace(self, addcmul, tensor1, tensor2, value=value)

    def addcdiv_(self, tensor1, tensor2, *, value=1):
        return _inplace(self, addcdiv, tensor1, tensor2, value=value)

    def lerp_(self, end, weight):
        return _inplace(self, lerp, end, weight)

    def addmm_(self, mat1, mat2, *, beta=1, alpha=1):
        return _inplace(self, addmm, mat1, mat2, beta=beta, alpha=alpha)

    def neg_(self):
        return _inplace(self, neg)

    negative_ = neg_

    def abs_(self):
        return _inplace(self, abs)

    def exp_(self):
        return _inplace(self, exp)

    def log_(self):
        return _inplace(self, log)

    def sqrt_(self):
        return _inplace(self, sqrt)

    def rsqrt_(self):
        return _inplace(self, rsqrt)

    def square_(self):
        return _inplace(self, square)

    def reciprocal_(self):
        return _inplace(self, reciprocal)

    def sin_(self):
        return _inplace(self, sin)

    def cos_(self):
        return _inplace(self, cos)

    def tanh_(self):
        return _inplace(self, tanh)

    def sigmoid_(self):
        return _inplace(self, sigmoid)

    def relu_(self):
        return _inplace(self, relu)

    def floor_(self):
        return _inplace(self, floor)

    def ceil_(self):
        return _inplace(self, ceil)

    def round_(self, decimals=0):
        return _inplace(self, round, decimals=decimals)

    def trunc_(self):
        return _inplace(self, trunc)

    def sign_(self):
        return _inplace(self, sign)

    def tril_(self, diagonal=0):
        return _inplace(self, tril, diagonal)

    def triu_(self, diagonal=0):
        return _inplace(self, triu, diagonal)

    def log1p_(self):
        return _inplace(self, log1p)

    def expm1_(self):
        return _inplace(self, expm1)

    def t_(self):
        raise NotImplementedError("t_(): use t() (in-place metadata changes are not supported)")

    # ------------------------------------------------------------ methods (see the functions)
    def add(self, other, *, alpha=1):
        return add(self, other if alpha == 1 else mul(_as_tensor_like(other, self), alpha))

    def sub(self, other, *, alpha=1):
        return sub(self, other if alpha == 1 else mul(_as_tensor_like(other, self), alpha))

    subtract = sub

    def mul(self, other):
        return mul(self, other)

    multiply = mul

    def div(self, other, *, rounding_mode=None):
        return div(self, other, rounding_mode=rounding_mode)

    divide = true_divide = div

    def floor_divide(self, other):
        return floor_divide(self, other)

    def remainder(self, other):
        return remainder(self, other)

    fmod = remainder

    def pow(self, other):
        return pow(self, other)

    def neg(self):
        return neg(self)

    negative = neg

    def matmul(self, other):
        return matmul(self, other)

    def mm(self, other):
        return mm(self, other)

    def bmm(self, other):
        return bmm(self, other)

    def dot(self, other):
        return dot(self, other)

    def outer(self, other):
        return outer(self, other)

    def addmm(self, mat1, mat2, *, beta=1, alpha=1):
        return addmm(self, mat1, mat2, beta=beta, alpha=alpha)

    def addcmul(self, tensor1, tensor2, *, value=1):
        return addcmul(self, tensor1, tensor2, value=value)

    def addcdiv(self, tensor1, tensor2, *, value=1):
        return addcdiv(self, tensor1, tensor2, value=value)

    def lerp(self, end, weight):
        return lerp(self, end, weight)

    def sum(self, dim=None, keepdim=False, *, dtype=None):
        return sum(self, dim, keepdim, dtype=dtype)

    def mean(self, dim=None, keepdim=False, *, dtype=None):
        return mean(self, dim, keepdim, dtype=dtype)

    def prod(self, dim=None, keepdim=False, *, dtype=None):
        return prod(self, dim, keepdim, dtype=dtype)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return var(self, dim, unbiased, keepdim, correction=correction)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return std(self, dim, unbiased, keepdim, correction=correction)

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        return norm(self, p, dim, keepdim, dtype)

    def logsumexp(self, dim, keepdim=False):
        return logsumexp(self, dim, keepdim)

    def max(self, dim=None, keepdim=False):
        return max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return min(self, dim, keepdim)

    def amax(self, dim=None, keepdim=False):
        return amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return amin(self, dim, keepdim)

    def maximum(self, other):
        return maximum(self, other)

    def minimum(self, other):
        return minimum(self, other)

    def argmax(self, dim=None, keepdim=False):
        return argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return argmin(self, dim, keepdim)

    def all(self, dim=None, keepdim=False):
        return all(self, dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return any(self, dim, keepdim)

    def count_nonzero(self, dim=None):
        return count_nonzero(self, dim)

    def reshape(self, *shape):
        return reshape(self, *shape)

    def reshape_as(self, other):
        return reshape(self, other.shape)

    def view(self, *shape):
        if len(shape) == 1 and not isinstance(shape[0], (tuple, list, Size, numbers.Integral)):
            # view(dtype): the same bytes read as another dtype, sharing storage (no gradient)
            t = Tensor(self._data.view(_dtype(shape[0])))
            t._vc = self._vc
            return t
        return view(self, *shape)

    def view_as(self, other):
        return view(self, other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return flatten(self, start_dim, end_dim)

    def ravel(self):
        return flatten(self)

    def unflatten(self, dim, sizes):
        return unflatten(self, dim, sizes)

    def transpose(self, dim0, dim1):
        return transpose(self, dim0, dim1)

    swapaxes = swapdims = transpose

    def t(self):
        return t(self)

    def permute(self, *dims):
        return permute(self, *dims)

    def movedim(self, source, destination):
        return movedim(self, source, destination)

    moveaxis = movedim

    def unsqueeze(self, dim):
        return unsqueeze(self, dim)

    def squeeze(self, dim=None):
        return squeeze(self, dim)

    def expand(self, *sizes):
        return expand(self, *sizes)

    def expand_as(self, other):
        return expand(self, other.shape)

    def broadcast_to(self, size):
        return expand(self, size)

    def repeat(self, *sizes):
        return repeat(self, *sizes)

    def tile(self, *dims):
        return tile(self, *dims)

    def repeat_interleave(self, repeats, dim=None, *, output_size=None):
        return repeat_interleave(self, repeats, dim)

    def roll(self, shifts, dims=None):
        return roll(self, shifts, dims)

    def flip(self, *dims):
        return flip(self, _shape_args(dims))

    def fliplr(self):
        return flip(self, (1,))

    def flipud(self):
        return flip(self, (0,))

    def narrow(self, dim, start, length):
        return narrow(self, dim, start, length)

    def unbind(self, dim=0):
        return unbind(self, dim)

    def split(self, split_size_or_sections, dim=0):
        return split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return chunk(self, chunks, dim)

    def diagonal(self, offset=0, dim1=0, dim2=1):
        return diagonal(self, offset, dim1, dim2)

    def masked_fill(self, mask, value):
        return masked_fill(self, mask, value)

    def masked_select(self, mask):
        return masked_select(self, mask)

    def where(self, condition, other):
        return where(condition, self, other)

    def clamp(self, min=None, max=None):
        return clamp(self, min, max)

    clip = clamp

    def clamp_min(self, min):
        return clamp(self, min, None)

    def clamp_max(self, max):
        return clamp(self, None, max)

    def exp(self):
        return exp(self)

    def log(self):
        return log(self)

    def log2(self):
        return log2(self)

    def log10(self):
        return log10(self)

    def log1p(self):
        return log1p(self)

    def expm1(self):
        return expm1(self)

    def sqrt(self):
        return sqrt(self)

    def rsqrt(self):
        return rsqrt(self)

    def square(self):
        return square(self)

    def reciprocal(self):
        return reciprocal(self)

    def abs(self):
        return abs(self)

    absolute = abs

    def sin(self):
        return sin(self)

    def cos(self):
        return cos(self)

    def tan(self):
        return tan(self)

    def sinh(self):
        return sinh(self)

    def cosh(self):
        return cosh(self)

    def atan(self):
        return atan(self)

    def asin(self):
        return asin(self)

    def acos(self):
        return acos(self)

    def erf(self):
        return erf(self)

    def floor(self):
        return floor(self)

    def ceil(self):
        return ceil(self)

    def round(self, decimals=0):
        return round(self, decimals=decimals)

    def trunc(self):
        return trunc(self)

    def frac(self):
        return self - trunc(self)

    def sign(self):
        return sign(self)

    def isnan(self):
        return isnan(self)

    def isinf(self):
        return isinf(self)

    def isfinite(self):
        return isfinite(self)

    def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
        return nan_to_num(self, nan, posinf, neginf)

    def logical_not(self):
        return logical_not(self)

    def logical_and(self, other):
        return logical_and(self, other)

    def logical_or(self, other):
        return logical_or(self, other)

    def tril(self, diagonal=0):
        return tril(self, diagonal)

    def triu(self, diagonal=0):
        return triu(self, diagonal)

    def relu(self):
        return relu(self)

    def sigmoid(self):
        return sigmoid(self)

    def tanh(self):
        return tanh(self)

    def softmax(self, dim=-1, dtype=None):
        return softmax(self if dtype is None else self.to(dtype), dim)

    def log_softmax(self, dim=-1, dtype=None):
        return log_softmax(self if dtype is None else self.to(dtype), dim)

    def new(self, *args):
        """The legacy x.new(sizes...) / x.new(data): a tensor of this dtype."""
        if not args:
            return zeros(0, dtype=self._data.dtype, device=self.device)
        if builtins.all(isinstance(a, numbers.Integral) for a in args):
            return zeros(*args, dtype=self._data.dtype, device=self.device)
        return tensor(args[0], dtype=self._data.dtype, device=self.device)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        dt = _dtype(dtype) or self._data.dtype
        return tensor(data, dtype=dt, device=self.device if device is None else device,
                      requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        return zeros(*size, dtype=dtype or self._data.dtype,
                     device=self.device if device is None else device,
                     requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return ones(*size, dtype=dtype or self._data.dtype,
                    device=self.device if device is None else device, requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        return empty(*size, dtype=dtype or self._data.dtype,
                     device=self.device if device is None else device,
                     requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        return full(size, fill_value, dtype=dtype or self._data.dtype,
                    device=self.device if device is None else device, requires_grad=requires_grad)

    def apply_(self, fn):
        _check_inplace(self)
        d = _writable(self)
        flat = d.reshape(-1) if d.flags.c_contiguous else None
        if flat is None:
            raise RuntimeError("apply_: needs a contiguous tensor")
        for i in range(flat.size):
            flat[i] = fn(flat[i].item())
        self._vc[0] += 1
        return self


def _rebuild_tensor(array, requires_grad, cls=None, device=None):
    if cls is None or cls is Tensor:
        return Tensor(array, requires_grad, device=device)
    t = cls.__new__(cls)
    Tensor.__init__(t, array, requires_grad, device=device)
    return t


def _c_contiguous(a):
    """a's C-contiguity, for numpy and device arrays alike (strides in bytes)."""
    if type(a) is np.ndarray:
        return bool(a.flags.c_contiguous)
    step = a.itemsize
    for n, st in zip(reversed(a.shape), reversed(a.strides)):
        if n != 1 and st != step:
            return False
        step *= n
    return True


def _to_device(t, dev):
    """t's values on device dev (a copy), recorded: the gradient goes back to t's device."""
    src = _device_of(t._data)
    return _node(_moved(t._data, dev), (t,), lambda g: (_moved(g, src),),
                 tb=lambda g: (g.to(src),))


# ---------------------------------------------------------------- the backward engine
def _grad_array(gradient, like):
    data = like._data
    if _on_gpu(data) or (isinstance(gradient, Tensor) and _on_gpu(gradient._data)):
        gd = gradient._data if isinstance(gradient, Tensor) else gradient
        _same_device(data, gd)
        g = gd.astype(data.dtype) if gd.dtype != data.dtype else gd.copy()
    else:
        g = np.array(gradient._data if isinstance(gradient, Tensor) else gradient,
                     dtype=data.dtype)  # a copy: a leaf's .grad may become this array
    if g.shape != like._data.shape:
        raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of {g.shape} and "
                           f"output[0] has a shape of {like._data.shape}.")
    return g


def _grad_tensor(a):
    """A plain Tensor holding array a (no history), built without Tensor.__init__'s checks: the
    .grad that backward() gives a tensor."""
    t = Tensor.__new__(Tensor)
    t._data = a
    t._grad = None
    t.requires_grad = False
    t._fn = None
    t._vc = [0]
    t._base = None
    t._view = None
    t._post_acc_hooks = None
    t._hooks = None
    return t


def _add_into_grad(t, g):
    """Accumulate array g into t.grad, PyTorch's AccumulateGrad: a new .grad Tensor the first
    time, else the same Tensor holds the sum (a new array: the old one may be shared, e.g. a
    user's array assigned to .grad)."""
    old = t._grad
    if old is None:
        t._grad = _grad_tensor(g.copy())
    elif old.requires_grad or old._base is not None:
        t._grad = _grad_tensor(old._data + g)
    else:
        old._data = old._data + g
        old._vc[0] += 1


def _accumulate_leaf(leaf, g, given=None):
    """Add g into leaf.grad (a Tensor). A new .grad holds an array of its own: C-contiguous,
    writeable, no view of another array, and (given: the ids of arrays already handed to leaves
    in this backward) not shared with another leaf, so `p.grad *= 0.5` changes only p's
    gradient. A later backward accumulates into the same .grad Tensor, as PyTorch's does."""
    data = leaf._data
    if g.shape != data.shape:
        raise RuntimeError(f"internal autograd error: gradient of shape {g.shape} for a leaf of "
                           f"shape {data.shape}")
    if g.dtype != data.dtype:
        g = g.astype(data.dtype)
    old = leaf._grad
    if old is None:
        if type(g) is not np.ndarray:
            if _on_gpu(data):   # a device gradient: the same rules, on device storage
                _same_device(data, g)
                # (a view, or storage whose owner is unknown, is copied: .grad owns its array)
                g = g.copy() if not _c_contiguous(g) or getattr(g, "base", 0) is not None or (
                    given is not None and id(g) in given) else g
            else:
                g = np.array(g)
        elif not (g.flags.c_contiguous and g.flags.writeable and g.base is None) or (
                given is not None and id(g) in given):
            g = np.array(g)
        if given is not None:
            given.add(id(g))
        leaf._grad = _grad_tensor(g)
    elif old.requires_grad or old._base is not None or old._data.shape != g.shape:
        leaf._grad = _grad_tensor(old._data + g)
    else:
        old._data = old._data + g
        old._vc[0] += 1


def _toposort(roots):
    """Nodes (_Fn) reachable from roots, outputs first (iterative DFS, reverse post-order)."""
    order = []
    seen = set()
    for root in roots:
        if id(root) in seen:
            continue
        seen.add(id(root))
        stack = [(root, iter(root._parents))]
        while stack:
            node, it = stack[-1]
            for p in it:
                if type(p) is _Fn and id(p) not in seen:
                    seen.add(id(p))
                    stack.append((p, iter(p._parents)))
                    break
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order


def _run_hooks(hooks, g):
    for hook in list(hooks.values()):
        r = hook(Tensor(g))
        if r is not None:
            g = _asarray(_raw(r))
    return g


def _prune(order, in_nodes, in_leaves):
    """The nodes of `order` that lead to an input, and those whose backward must run."""
    needed = set(in_nodes)
    run = set()
    for node in reversed(order):  # inputs first
        for p in node._parents:
            if p is None:
                continue
            if (type(p) is _Fn and id(p) in needed) or (type(p) is not _Fn
                                                        and id(p) in in_leaves):
                run.add(id(node))
                needed.add(id(node))
                break
    return needed, run


def _run_backward(roots, root_grads, retain_graph=False, inputs=None, capture=False):
    """The engine. Accumulates into leaves' .grad, or (capture) returns {id: grad} for inputs."""
    grads = {}
    starts = []
    root_leaves = []
    for r, g in zip(roots, root_grads):
        e = _edge(r)
        if e is None:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn")
        if type(e) is _Fn:
            k = id(e)
            grads[k] = g if k not in grads else grads[k] + g
            starts.append(e)
        else:
            root_leaves.append((e, g))
    in_nodes = in_leaves = None
    if inputs is not None:
        in_nodes, in_leaves = {}, {}
        for x in inputs:
            e = _edge(x)
            if e is None:
                raise RuntimeError("One of the differentiated Tensors does not require grad")
            if type(e) is _Fn:
                in_nodes[id(e)] = x  # a non-leaf input: backward(inputs=) fills its .grad
            else:
                in_leaves[id(e)] = e
    order = _toposort(starts)
    run = None
    if inputs is not None:
        needed, run = _prune(order, in_nodes, in_leaves)
        order = [n for n in order if id(n) in needed]
    captured = {} if capture else None
    pending = buffered = accumulated = None
    if not capture and (Tensor._n_post_acc_hooks[0] or Tensor._n_grad_hooks[0]):
        # a hooked leaf may take several contributions (a shared weight): count its uses so
        # its hooks fire once, on the sum (PyTorch sums before AccumulateGrad)
        pending, buffered, accumulated = {}, {}, set()
        for node in order:
            if run is not None and id(node) not in run:
                continue
            for p in node._parents:
                if p is not None and type(p) is not _Fn and (p._post_acc_hooks or p._hooks):
                    if in_leaves is None or id(p) in in_leaves:
                        pending[id(p)] = pending.get(id(p), 0) + 1

    given = set()

    def to_leaf(p, gp):
        k = id(p)
        if in_leaves is not None and k not in in_leaves:
            return
        if capture:
            prev = captured.get(k)
            captured[k] = gp if prev is None else prev + gp
        elif pending is not None and k in pending:
            if p._hooks:
                prev = buffered.get(k)
                buffered[k] = gp if prev is None else prev + gp
            else:
                _accumulate_leaf(p, gp, given)
            accumulated.add(k)
        else:
            if p._hooks:
                gp = _run_hooks(p._hooks, gp)
            _accumulate_leaf(p, gp, given)
            if p._post_acc_hooks:
                for hook in list(p._post_acc_hooks.values()):
                    hook(p)

    for leaf, g in root_leaves:
        to_leaf(leaf, g)
    for node in order:
        g = grads.pop(id(node), None)
        fn, parents = node._backward, node._parents
        if g is None:
            if not retain_graph and run is None:
                if node._qn is None:
                    node._qn = fn.__qualname__
                node._backward, node._parents, node._saved, node._tb = _released, (), None, None
            continue
        if node._hooks:
            g = _run_hooks(node._hooks, g)
        if node._retain is not None:
            t = node._retain()
            if t is not None:
                _add_into_grad(t, g)
        if in_nodes and id(node) in in_nodes:
            if capture:
                captured[id(node)] = g
            else:
                t = in_nodes[id(node)]
                _add_into_grad(t, g)
        if run is not None and id(node) not in run:
            continue
        if node._saved:
            for rec in node._saved:
                if rec[0][0] != rec[1]:
                    raise _modified_error(rec, node)
        if not retain_graph:  # free the saved arrays as we go, as PyTorch does
            if node._qn is None:
                node._qn = fn.__qualname__
            node._backward, node._parents, node._saved, node._tb = _released, (), None, None
        for p, gp in zip(parents, fn(g)):
            if gp is None or p is None:
                continue
            if type(p) is _Fn:
                k = id(p)
                prev = grads.get(k)
                grads[k] = gp if prev is None else prev + gp
            else:
                to_leaf(p, gp)
        if pending:
            _settle(parents, pending, buffered, accumulated)
    if not capture:
        Tensor._run_final_callbacks()
    return captured


def _settle(parents, pending, buffered, accumulated):
    """One use of each hooked leaf among `parents` is done; for those whose last use this was,
    run the gradient hooks on the summed gradient, accumulate it, then the post-accumulate
    hooks."""
    for p in parents:
        if p is None or type(p) is _Fn:
            continue
        k = id(p)
        n = pending.get(k)
        if n is None:
            continue
        if n > 1:
            pending[k] = n - 1
            continue
        del pending[k]
        g = buffered.pop(k, None)
        if g is not None:
            _accumulate_leaf(p, _run_hooks(p._hooks, g))
        if k in accumulated and p._post_acc_hooks:
            for hook in list(p._post_acc_hooks.values()):
                hook(p)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         only_inputs=True, allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """torch.autograd.grad: the gradients of outputs with respect to inputs, as a tuple of
    Tensors (None for an unused input with allow_unused=True), leaving every .grad alone.
    create_graph=True records the gradient computation itself (double backward) for the ops
    that have a rule for it."""
    single = isinstance(outputs, Tensor)
    outputs = [outputs] if single else list(outputs)
    inputs_seq = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad requires one grad_output per output: got {len(grad_outputs)} "
                           f"for {len(outputs)} outputs")
    if allow_unused is None:
        allow_unused = materialize_grads
    gs = []
    for o, go in zip(outputs, grad_outputs):
        if go is None:
            if o._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            gs.append(np.ones_like(o._data) if not create_graph else ones_like(o))
        else:
            gs.append(_grad_array(go, o) if not create_graph else
                      (go if isinstance(go, Tensor) else Tensor(_grad_array(go, o))))
    if create_graph:
        cap = _run_backward_graph(outputs, gs, inputs_seq, accumulate=False)
    else:
        cap = _run_backward(outputs, gs, bool(retain_graph), inputs_seq, capture=True)
    out = []
    for x in inputs_seq:
        e = _edge(x)
        g = cap.get(id(e))
        if g is None:
            if materialize_grads:
                out.append(zeros_like(x))
                continue
            if not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been "
                                   "used in the graph. Set allow_unused=True if this is the "
                                   "desired behavior.")
            out.append(None)
        elif isinstance(g, Tensor):
            out.append(g if g._data.dtype == x._data.dtype else g.to(x._data.dtype))
        else:
            out.append(Tensor(g.astype(x._data.dtype, copy=False)))
    return tuple(out)


def _run_backward_graph(roots, root_grads, inputs, accumulate, leaves=None):
    """The engine with create_graph=True: gradients are Tensors built by recorded ops (each
    node's `_tb` rule), so they can be differentiated again. leaves (a dict): filled with
    {id: leaf} for the leaves reached."""
    grads = {}
    starts = []
    root_leaves = []
    for r, g in zip(roots, root_grads):
        g = g if isinstance(g, Tensor) else Tensor(g)
        e = _edge(r)
        if e is None:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn")
        if type(e) is _Fn:
            grads[id(e)] = g if id(e) not in grads else grads[id(e)] + g
            starts.append(e)
        else:
            root_leaves.append((e, g))
    in_nodes = in_leaves = None
    if inputs is not None:
        in_nodes, in_leaves = {}, {}
        for x in inputs:
            e = _edge(x)
            if e is None:
                raise RuntimeError("One of the differentiated Tensors does not require grad")
            (in_nodes if type(e) is _Fn else in_leaves)[id(e)] = e
    order = _toposort(starts)
    run = None
    if inputs is not None:
        needed, run = _prune(order, in_nodes, in_leaves)
        order = [n for n in order if id(n) in needed]
    captured = {}

    def to_leaf(p, gp):
        k = id(p)
        if in_leaves is not None and k not in in_leaves:
            return
        if leaves is not None:
            leaves[k] = p
        if p._hooks:
            gp = Tensor(_run_hooks(p._hooks, gp._data)) if accumulate else gp
        prev = captured.get(k)
        captured[k] = gp if prev is None else prev + gp

    for leaf, g in root_leaves:
        to_leaf(leaf, g)
    with enable_grad():
        for node in order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._hooks:
                g = Tensor(_run_hooks(node._hooks, g._data))
            if in_nodes is not None and id(node) in in_nodes:
                captured[id(node)] = g
            if run is not None and id(node) not in run:
                continue
            if node._saved:
                for rec in node._saved:
                    if rec[0][0] != rec[1]:
                        raise _modified_error(rec, node)
            if node._tb is None:
                raise NotImplementedError(
                    f"create_graph=True: fastnn has no double-backward rule for {node.name()}; "
                    f"supported: elementwise arithmetic, pow, exp, log, sqrt, tanh, sigmoid, "
                    f"relu, sum, mean, matmul, reshapes and indexing")
            for p, gp in zip(node._parents, node._tb(g)):
                if gp is None or p is None:
                    continue
                if not isinstance(gp, Tensor):
                    gp = Tensor(gp)
                if type(p) is _Fn:
                    prev = grads.get(id(p))
                    grads[id(p)] = gp if prev is None else prev + gp
                else:
                    to_leaf(p, gp)
    return captured




# ---------------------------------------------------------------- recording ops
def _edge(p):
    """The graph edge for using tensor p as an input: its node, itself (a leaf that requires
    grad), or None."""
    if p._base is not None and p._base._fn is not p._view[0]:
        _refresh_view(p)
    fn = p._fn
    if fn is not None:
        return fn
    return p if p.requires_grad else None


def _node(data, parents, backward, saved=None, save_output=False, tb=None):
    """The result of an op: records (parents, backward) when grad mode is on and a parent needs a
    gradient. saved: input tensors whose arrays backward reads (their versions are checked);
    save_output: backward reads the output array. tb: the op's backward on Tensors (for
    create_graph)."""
    t = Tensor.__new__(Tensor)
    t._data = data
    t._grad = None
    t.requires_grad = False
    t._fn = None
    t._vc = [0]
    t._base = None
    t._view = None
    t._post_acc_hooks = None
    t._hooks = None
    if _grad_enabled[0]:
        for p in parents:
            if p._base is not None and p._base._fn is not p._view[0]:
                _refresh_view(p)
        for p in parents:
            if p.requires_grad:
                t.requires_grad = True
                rec = None
                if saved:
                    rec = tuple((s._vc, s._vc[0], s._data) for s in saved if s is not None)
                if save_output:
                    rec = (rec or ()) + ((t._vc, 0, data),)
                t._fn = _Fn(tuple([q._fn if q._fn is not None else (q if q.requires_grad
                                                                      else None)
                                   for q in parents]), backward, rec, tb)
                break
    return t


def _view_of(a, out, backward, op, tb=None):
    """A view op's result: shares a's storage and version counter, and remembers its base and
    how to find itself in it (for in-place ops on views)."""
    t = _node(out, (a,), backward, tb=tb)
    t._vc = a._vc
    if a._base is None:
        t._base = a
        t._view = (a._fn, (op,))
    else:
        t._base = a._base
        t._view = (a._base._fn, a._view[1] + (op,))
    return t


def _apply_chain(arr, chain):
    for op in chain:
        k = op[0]
        if k == "i" or k == "I":
            arr = arr[op[1]]
        elif k == "r":
            arr = arr.reshape(op[1])
        elif k == "s":
            arr = np.swapaxes(arr, op[1], op[2])
        elif k == "p":
            arr = np.transpose(arr, op[1])
        elif k == "e":
            arr = np.broadcast_to(arr, op[1])
        elif k == "d":
            arr = np.diagonal(arr, *op[1])
    return arr


def _view_index(shape, chain):
    """The flat positions in the base (of `shape`) of each element of the view."""
    return _apply_chain(np.arange(math.prod(shape)).reshape(shape), chain)


def _refresh_view(v):
    """The base of view v was modified in place (its node changed): v's node becomes a view of
    the base's new node, as PyTorch regenerates a view's grad_fn."""
    base = v._base
    chain = v._view[1]
    e = base._fn if base._fn is not None else (base if base.requires_grad else None)
    if e is not None and _grad_enabled[0]:
        for op in chain:
            if op[0] == "I":
                name, n = op[2]
                raise RuntimeError(
                    f"Output {n} of {name} is a view and its base or another view of its base "
                    f"has been modified inplace. This view is the output of a function that "
                    f"returns multiple views. Such functions do not allow the output views to be "
                    f"modified inplace. You should replace the inplace operation by an "
                    f"out-of-place one.")
    if e is None:
        v._fn = None
    else:
        shape = base._data.shape

        def backward(g):
            idx = _view_index(shape, chain)
            full = _zeros(math.prod(shape), g.dtype, g)
            np.add.at(full, idx.reshape(-1), np.broadcast_to(g, idx.shape).reshape(-1))
            return (full.reshape(shape),)
        v._fn = _Fn((e,), backward)
        v.requires_grad = True
    v._view = (base._fn, chain)


# ---------------------------------------------------------------- in-place machinery
def _check_inplace(t):
    if not _grad_enabled[0]:
        return
    base = t._base
    if base is not None and base._fn is None and base.requires_grad:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                           "in-place operation.")
    if t.requires_grad and t._fn is None and base is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")


def _check_multi_view(t, outer=None):
    """PyTorch refuses recorded in-place ops on the views unbind/split/chunk return (and on
    views of them). outer: (name, output) of a further view the op writes through."""
    chain = t._view[1]
    for k, op in enumerate(chain):
        if op[0] == "I":
            if outer is not None:
                name, n = outer
            elif k == len(chain) - 1:
                name, n = op[2]
            else:
                last = chain[-1]
                name, n = ("Select" if last[0] in "iI" and builtins.any(
                    isinstance(p, numbers.Integral) for p in last[1]) else
                    {"i": "Slice", "I": "Slice", "r": "View", "s": "Transpose", "p": "Permute",
                     "e": "Expand", "d": "Diagonal"}[last[0]]), 0
            raise RuntimeError(f"Output {n} of {name} is a view and is being modified inplace. "
                               f"This view is the output of a function that returns multiple "
                               f"views. Such functions do not allow the output views to be "
                               f"modified inplace. You should replace the inplace operation by "
                               f"an out-of-place one.")


def _writable(t):
    d = t._data
    if type(d) is np.ndarray and not d.flags.writeable:
        if d.strides and 0 in d.strides:
            raise RuntimeError("unsupported operation: more than one element of the written-to "
                               "tensor refers to a single memory location. Please clone() the "
                               "tensor before performing the operation.")
        raise RuntimeError("in-place operation on a read-only tensor (its numpy array is not "
                           "writeable); clone() it first")
    return d


def _cast_name(dt):
    return {"f": "Float", "c": "ComplexFloat", "i": "Long", "u": "Byte", "b": "Bool"}.get(
        dt.kind, str(dt))


def _check_result(d, result_dtype, result_shape):
    if result_shape != d.shape:
        try:
            b = np.broadcast_shapes(result_shape, d.shape)
        except ValueError:
            b = None
        if b is None:
            raise _broadcast_error(d.shape, result_shape)
        if b != d.shape:
            raise RuntimeError(f"output with shape {list(d.shape)} doesn't match the broadcast "
                               f"shape {list(b)}")
    rk, dk = result_dtype.kind, d.dtype.kind
    if (rk in "fc" and dk in "iub") or (rk in "iu" and dk == "b"):
        raise RuntimeError(f"result type {_cast_name(result_dtype)} can't be cast to the desired "
                           f"output type {_cast_name(d.dtype)}")


def _assign(t, value):
    """Write value (an array or scalar) into t's storage and bump the version."""
    d = _writable(t)
    v = _asarray(value)
    if type(v) is not type(d) and (_on_gpu(v) or _on_gpu(d)):
        v = _moved(v, _device_of(d))   # copy_ across devices: one counted copy, as PyTorch's
    _check_result(d, v.dtype, v.shape)
    np.copyto(d, v, casting="unsafe")
    t._vc[0] += 1


def _rebase(t, fn):
    """t was modified in place by the op whose node is fn: fn becomes t's node; for a view, the
    base's node becomes "the old base with fn's result copied into the view's place"."""
    old = t._fn
    base = t._base
    if base is None:
        t._fn = fn
        t.requires_grad = True
    else:
        chain = t._view[1]
        shape = base._data.shape
        base_edge = base._fn if base._fn is not None else (base if base.requires_grad else None)

        def copy_slices(g):
            idx = _view_index(shape, chain)
            gb = g.copy()
            flat = gb.reshape(-1)
            gv = flat[idx]
            flat[idx] = 0
            return gb, gv
        base._fn = _Fn((base_edge, fn), copy_slices)
        base.requires_grad = True
        _refresh_view(t)
    if old is not None and old._retain is not None and old._retain() is t:
        t._fn._retain = old._retain


def _any_grad(args, kwargs):
    for a in args:
        if isinstance(a, Tensor) and a.requires_grad:
            return True
    for a in kwargs.values():
        if isinstance(a, Tensor) and a.requires_grad:
            return True
    return False


def _inplace(t, op, *args, **kwargs):
    """t.op_(*args): op(t, *args) written into t's storage. When autograd records it, op runs on
    a copy of t that carries t's history, and t is rebased onto op's node."""
    _check_inplace(t)
    if _grad_enabled[0] and (t.requires_grad or _any_grad(args, kwargs)):
        if t._base is not None:
            _check_multi_view(t)
        s = Tensor.__new__(Tensor)
        Tensor.__init__(s, t._data.copy())
        e = _edge(t)
        s._fn = e if type(e) is _Fn else None
        s.requires_grad = e is not None
        r = op(s, *args, **kwargs)
        _assign(t, r._data)
        fn = r._fn
        if fn is not None:
            if fn._saved:  # the op saved its output: now that is t, at its new version
                fn._saved = tuple((t._vc, t._vc[0], rec[2]) if rec[0] is r._vc else rec
                                  for rec in fn._saved)
            _rebase(t, fn)
        return t
    r = op(t, *args, **kwargs)
    _assign(t, _raw(r))
    return t


def _arith_inplace(t, other, alpha, ufunc, op):
    """add_/sub_/mul_/div_: a numpy ufunc writing into t's storage (when nothing records)."""
    if _grad_enabled[0] and (t.requires_grad or (isinstance(other, Tensor)
                                                 and other.requires_grad)):
        if alpha != 1:
            other = mul(_as_tensor_like(other, t), alpha)
        return _inplace(t, op, other)
    _check_inplace(t)
    d = _writable(t)
    o = other._data if isinstance(other, Tensor) else other
    if type(o) not in (float, int, bool):
        o = _asarray(_to_array(o))
        if ufunc is np.true_divide:
            rdt = np.result_type(d.dtype, o.dtype, float32)
        else:
            rdt = o.dtype if o.dtype.kind in "fc" and d.dtype.kind in "iub" else d.dtype
        _check_result(d, rdt, o.shape)
    else:
        if d.dtype.kind in "iub" and (isinstance(o, float) or ufunc is np.true_divide):
            _check_result(d, float32, d.shape)
        if d.dtype.kind in "iu" and ufunc is np.true_divide:
            _check_result(d, float32, d.shape)
    if alpha != 1:
        o = o * alpha
    ufunc(d, o, out=d, casting="unsafe")
    t._vc[0] += 1
    return t


def _random_fill(t, values):
    if _grad_enabled[0] and t.requires_grad:
        return _inplace(t, _fill_from, Tensor(_asarray(values)))
    _check_inplace(t)
    d = _writable(t)
    np.copyto(d, values, casting="unsafe")
    t._vc[0] += 1
    return t


def _copy_from(s, src):
    """The value of s.copy_(src): src broadcast to s's shape and cast to its dtype."""
    sd, src_d = s._data, src._data
    out = np.broadcast_to(src_d, sd.shape).astype(sd.dtype)
    shape, dt = src_d.shape, src_d.dtype
    return _node(out, (s, src), lambda g: (np.zeros_like(g), _unbroadcast(g, shape).astype(dt)),
                 tb=lambda g: (zeros_like(g), _t_unbroadcast(g, shape).to(dt)))


def _fill_from(s, value):
    sd = s._data
    if isinstance(value, Tensor):
        out = np.broadcast_to(value._data.reshape(()) if value._data.size == 1 else value._data,
                              sd.shape).astype(sd.dtype)
        vshape, vdt = value._data.shape, value._data.dtype
        return _node(out, (s, value),
                     lambda g: (np.zeros_like(g), _asarray(g.sum()).astype(vdt).reshape(vshape)))
    return _node(np.full(sd.shape, value, sd.dtype), (s,), lambda g: (np.zeros_like(g),))


def _to_array(x):
    """An array from a fastnn Tensor, a numpy array, a torch tensor (without importing torch),
    or anything array-like."""
    if isinstance(x, Tensor):
        return x._data
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu") and hasattr(x, "numpy"):
        t = x.detach().cpu()
        if str(getattr(t, "dtype", "")) == "torch.bfloat16":
            t = t.float()
        return t.numpy()
    return _asarray(x)


def _unwrap(x):
    if isinstance(x, Tensor):
        return x._data
    if type(x) in (list, tuple):
        return type(x)(_unwrap(v) for v in x)
    if type(x) is dict:
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _raw_nested(data):
    """Lists/tuples that hold Tensors -> the same with their arrays (for np.array)."""
    if isinstance(data, Tensor):
        return data._data
    if isinstance(data, (list, tuple)):
        return [_raw_nested(x) for x in data]
    return data


def _index(index):
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, tuple):
        return tuple(i._data if isinstance(i, Tensor) else
                     (_asarray(_raw_nested(i)) if isinstance(i, list) else i) for i in index)
    if isinstance(index, list):
        return _asarray(_raw_nested(index))
    return index


def _raw(x):
    return x._data if isinstance(x, Tensor) else x


def _lift(x, like):
    """A Tensor for a non-Tensor operand; Python scalars take `like`'s dtype, as PyTorch does."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, numbers.Number) and not isinstance(x, np.generic):
        k = like._data.dtype.kind
        if k in _FLOAT_KINDS or (isinstance(x, numbers.Integral) and k in "iu"):
            return Tensor(_asarray(x, dtype=like._data.dtype))
        if isinstance(x, bool):
            return Tensor(_asarray(x))
        if isinstance(x, numbers.Integral):
            return Tensor(_asarray(x, dtype=int64 if k != "b" else int64))
        return Tensor(_asarray(x, dtype=_DEFAULT_FLOAT))
    return Tensor(_asarray(_to_array(x)))


_as_tensor_like = _lift


def _unbroadcast(g, shape):
    """Sum g over the axes that broadcasting added or stretched, so it has `shape`."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _t_unbroadcast(g, shape):
    """_unbroadcast on Tensors (recorded, for double backward)."""
    if tuple(g._data.shape) == tuple(shape):
        return g
    extra = g._data.ndim - len(shape)
    if extra:
        g = sum(g, tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g._data.shape[i] != 1)
    if axes:
        g = sum(g, axes, keepdim=True)
    return reshape(g, tuple(shape))


def _axes(dim, ndim):
    """dim (None, int, or sequence) -> a sorted tuple of non-negative axes, or None for all."""
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        if len(dim) == 0:
            return None
        return tuple(sorted(d % ndim if ndim else 0 for d in dim))
    return (dim % ndim if ndim else 0,)


def _float_result(out, *operands):
    """numpy promotes int/int division and int*float scalars to float64; PyTorch gives the
    default dtype unless an operand is float64."""
    if out.dtype == float64 and _DEFAULT_FLOAT != float64:
        for o in operands:
            if isinstance(o, Tensor):
                if o._data.dtype == float64:
                    return out
            elif isinstance(o, np.ndarray) and o.dtype == float64:
                return out
            elif isinstance(o, np.floating) and o.dtype == float64:
                return out
        return out.astype(_DEFAULT_FLOAT)
    return out


# ---------------------------------------------------------------- construction
def tensor(data, requires_grad=False, dtype=None, device=None, pin_memory=False):
    """A new Tensor holding a copy of `data`. numpy arrays keep their dtype; Python floats become
    the default dtype (float32), Python ints int64, bools bool, as torch.tensor."""
    dev = _target_device(device)
    if isinstance(data, Tensor):
        data = data._data
    dtype = _dtype(dtype)
    if _on_gpu(data):   # a tensor's device storage: a copy, on the device asked for
        arr = data.astype(dtype) if dtype is not None and dtype != data.dtype else data.copy()
        return Tensor(arr if device is None else _moved(arr, dev), requires_grad=requires_grad)
    if dtype is None and not isinstance(data, (np.ndarray, np.generic)):
        arr = np.array(_raw_nested(data) if isinstance(data, (list, tuple)) else
                       _to_array(data) if hasattr(data, "numpy") else data)
        if arr.dtype == float64 and not _has_float64(data):
            arr = arr.astype(_DEFAULT_FLOAT)
        elif arr.dtype.kind == "U" or arr.dtype == object:
            raise TypeError(f"tensor(): could not infer a numeric dtype from {type(data).__name__}")
    else:
        arr = np.array(_raw_nested(data) if isinstance(data, (list, tuple)) else
                       _to_array(data), dtype=dtype)
    return Tensor(_moved(arr, dev) if dev is not _CPU else arr, requires_grad=requires_grad)


def _has_float64(data):
    """A list holding float64 arrays or tensors keeps float64 (as PyTorch does for tensors)."""
    if isinstance(data, (list, tuple)):
        return builtins.any(_has_float64(x) for x in data[:1])
    if isinstance(data, Tensor):
        return data._data.dtype == float64
    if isinstance(data, (np.ndarray, np.floating)):
        return data.dtype == float64
    return False


def as_tensor(data, dtype=None, device=None):
    """A Tensor sharing memory with `data` where it can (a numpy array or Tensor of the dtype,
    on the device asked for)."""
    dt = _dtype(dtype)
    if isinstance(data, Tensor):
        t = data if device is None else data.to(device)
        return t if dt is None or dt == t._data.dtype else t.to(dt)
    dev = _target_device(device)
    if isinstance(data, np.ndarray):
        t = Tensor(data if dt is None or dt == data.dtype else data.astype(dt))
        return t if dev is _CPU else t.to(dev)
    return tensor(data, dtype=dt, device=dev)


asarray = as_tensor


def from_numpy(array):
    """A Tensor sharing memory with `array`."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    return Tensor(array)


def _shape_args(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list, Size)):
        return tuple(int(s) for s in size[0])
    if len(size) == 1 and isinstance(size[0], Tensor):
        return tuple(int(s) for s in np.atleast_1d(size[0]._data))
    return tuple(int(s) for s in size)


def _float_dtype(dtype):
    return _DEFAULT_FLOAT if dtype is None else _dtype(dtype)


def _made(arr, requires_grad, device, like=None):
    """A factory's tensor: host array arr, on `device` (None: like's device if given, else the
    default device). Factories that can build on the device use _filled instead."""
    dev = _factory_device(device, like)
    return Tensor(arr if dev is _CPU else _moved(arr, dev), requires_grad)


def _factory_device(device, like=None):
    if device is not None:
        return _device(device)
    if like is not None:
        return _device_of(_raw(like))
    return _default_device[-1]


def _filled(shape, value, dtype, requires_grad, device, like=None):
    """full(shape, value) made where it lives: np.full on the CPU, a fill kernel on a GPU."""
    dev = _factory_device(device, like)
    if dev is _CPU:
        if value == 0:
            arr = np.zeros(shape, dtype)
        elif value == 1:
            arr = np.ones(shape, dtype)
        else:
            arr = np.full(shape, value, dtype)
    else:
        arr = _ca().full(shape, value, dtype, device_index=dev.index)
    return Tensor(arr, requires_grad)


def _size_kw(size, kw):
    """The shape from *size or size=, as PyTorch's factories take either."""
    given = kw.pop("size", None)
    if kw:
        raise TypeError(f"got an unexpected keyword argument {next(iter(kw))!r}")
    if given is not None:
        if size:
            raise TypeError("size given both positionally and as size=")
        return (given,)
    return size


def zeros(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False,
          pin_memory=False, **kw):
    size = _size_kw(size, kw)
    return _filled(_shape_args(size), 0, _float_dtype(dtype), requires_grad, device)


def ones(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False,
         pin_memory=False, **kw):
    size = _size_kw(size, kw)
    return _filled(_shape_args(size), 1, _float_dtype(dtype), requires_grad, device)


def empty(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False,
          pin_memory=False, memory_format=None, **kw):
    size = _size_kw(size, kw)
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def full(size, fill_value, *, out=None, dtype=None, layout=None, device=None,
         requires_grad=False, pin_memory=False):
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    if dtype is None and isinstance(fill_value, (bool, np.bool_)):
        dtype = bool_
    elif dtype is None and isinstance(fill_value, numbers.Integral):
        dtype = int64
    if isinstance(size, numbers.Integral):
        size = (size,)
    return _filled(_shape_args((size,)), fill_value, _float_dtype(dtype), requires_grad, device)


def _like_dtype(t, dtype):
    return _dtype(dtype) or (t._data.dtype if isinstance(t, Tensor) else _asarray(t).dtype)


def zeros_like(input, dtype=None, layout=None, device=None, requires_grad=False,
               memory_format=None):
    return _filled(np.shape(_raw(input)), 0, _like_dtype(input, dtype), requires_grad, device,
                   input)


def ones_like(input, dtype=None, layout=None, device=None, requires_grad=False,
              memory_format=None):
    return _filled(np.shape(_raw(input)), 1, _like_dtype(input, dtype), requires_grad, device,
                   input)


def empty_like(input, dtype=None, layout=None, device=None, requires_grad=False,
               memory_format=None):
    return zeros_like(input, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(input, fill_value, dtype=None, layout=None, device=None, requires_grad=False,
              memory_format=None):
    return _filled(np.shape(_raw(input)), fill_value, _like_dtype(input, dtype), requires_grad,
                   device, input)


def _random_on_device(kind, shape, dtype, generator, device, requires_grad, low=0, high=None):
    """rand/randn/randint on a GPU: the array module's counter-based generator (no host data),
    seeded with one draw from fastnn's host generator, so manual_seed makes it repeatable; where
    the module has none yet, drawn on the host and copied (one counted transfer)."""
    dev = _factory_device(device)
    ca = _ca()
    draw = getattr(ca, kind, None)
    if draw is not None:
        seed = int(_gen(generator).integers(0, 2 ** 63))
        if kind == "randint":
            arr = draw(low, high, shape, dtype, seed, 0, device_index=dev.index)
        else:
            arr = draw(shape, dtype, seed, 0, device_index=dev.index)
        return Tensor(arr, requires_grad)
    host = {"rand": rand, "randn": randn}.get(kind)
    if host is not None:
        t = host(*shape, generator=generator, dtype=dtype, device=_CPU)
    else:
        t = randint(low, high, shape, generator=generator, dtype=dtype, device=_CPU)
    return Tensor(_moved(t._data, dev), requires_grad)


def randn(*size, generator=None, out=None, dtype=None, layout=None, device=None,
          requires_grad=False, pin_memory=False, **kw):
    if _factory_device(device) is not _CPU:   # on a GPU (device storage): _random_on_device
        return _random_on_device("randn", _shape_args(_size_kw(size, kw)), _float_dtype(dtype),
                                 generator, device, requires_grad)
    shape = _shape_args(_size_kw(size, kw))
    dt = _float_dtype(dtype)
    arr = _gen(generator).normal_fill(math.prod(shape), _float_work(dt)).reshape(shape)
    return _made(arr.astype(dt, copy=False), requires_grad, device)


def rand(*size, generator=None, out=None, dtype=None, layout=None, device=None,
         requires_grad=False, pin_memory=False, **kw):
    if _factory_device(device) is not _CPU:   # on a GPU (device storage): _random_on_device
        return _random_on_device("rand", _shape_args(_size_kw(size, kw)), _float_dtype(dtype),
                                 generator, device, requires_grad)
    shape = _shape_args(_size_kw(size, kw))
    dt = _float_dtype(dtype)
    arr = _gen(generator).uniform_fill(math.prod(shape), _float_work(dt)).reshape(shape)
    return _made(arr.astype(dt, copy=False), requires_grad, device)


def randn_like(input, *, generator=None, dtype=None, layout=None, device=None,
               requires_grad=False, memory_format=None):
    return randn(*input.shape, generator=generator, dtype=dtype or input.dtype,
                 device=input.device if device is None else device,
                 requires_grad=requires_grad)


def rand_like(input, *, generator=None, dtype=None, layout=None, device=None,
              requires_grad=False, memory_format=None):
    return rand(*input.shape, generator=generator, dtype=dtype or input.dtype,
                device=input.device if device is None else device,
                requires_grad=requires_grad)


def randint(low, high=None, size=(), *, generator=None, out=None, dtype=None, layout=None,
            device=None, requires_grad=False, pin_memory=False):
    if isinstance(high, (tuple, list, Size)):  # randint(high, size)
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if isinstance(size, numbers.Integral):
        size = (size,)
    shape = tuple(int(s) for s in size)
    if _factory_device(device) is not _CPU:   # drawn on the GPU (its Philox stream)
        return _random_on_device("randint", shape, _dtype(dtype) or int64, generator, device,
                                 requires_grad, low, high)
    arr = _gen(generator).integers_from_to(math.prod(shape), low, high).reshape(shape)
    return _made(arr.astype(_dtype(dtype) or int64, copy=False), requires_grad, device)


def randint_like(input, low, high=None, *, generator=None, dtype=None, device=None,
                 requires_grad=False):
    if high is None:
        low, high = 0, low
    return randint(low, high, input.shape, generator=generator, dtype=dtype or input.dtype,
                   device=input.device if device is None else device)


def randperm(n, *, generator=None, out=None, dtype=None, layout=None, device=None,
             requires_grad=False, pin_memory=False):
    if _factory_device(device) is not _CPU:   # the order of uniforms drawn on the GPU
        u = _random_on_device("rand", (n.__index__(),), float64, generator, device, False)
        return Tensor(np.argsort(u._data, kind="stable").astype(_dtype(dtype) or int64),
                      requires_grad)
    return _made(_gen(generator).randperm(n.__index__()).astype(_dtype(dtype) or int64),
                 requires_grad, device)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, out=None, dtype=None, device=None,
           requires_grad=False):
    """Samples of N(mean, std): mean/std tensors (elementwise) or floats with size."""
    shape = size if size is not None else np.broadcast_shapes(np.shape(_raw(mean)),
                                                              np.shape(_raw(std)))
    like = mean if isinstance(mean, Tensor) else std if isinstance(std, Tensor) else None
    dt = _dtype(dtype) or (like._data.dtype if like is not None else _DEFAULT_FLOAT)
    shape = tuple(int(s) for s in shape)
    g, n, work = _gen(generator), math.prod(shape), _float_work(dt)
    # PyTorch's order: floats fill normal_(mean, std); a tensor std fills normal_(0, 1) then
    # multiplies by std and adds mean; a tensor mean alone fills normal_(0, std) and adds mean
    if like is None:
        arr = g.normal_fill(n, work, float(mean), float(std)).reshape(shape)
    elif isinstance(std, Tensor):
        if np.any(_raw(std) < 0):
            raise RuntimeError("normal expects all elements of std >= 0.0")
        arr = g.normal_fill(n, work).reshape(shape).astype(dt) * _raw(std).astype(dt)
        arr = arr + np.asarray(_raw(mean)).astype(dt)
    else:
        arr = g.normal_fill(n, work, 0.0, float(std)).reshape(shape).astype(dt)
        arr = arr + _raw(mean).astype(dt)
    return _made(_asarray(arr).astype(dt), requires_grad, device)


def bernoulli(input, p=None, *, generator=None):
    """0/1 draws with the probabilities in input (or the float p for every element), as
    torch.bernoulli: a float uniform per element for float32 input, a double one for float64
    input or a float p."""
    g = _gen(generator)
    if p is None:
        r = g.bernoulli_tensor(_raw(input))
    else:
        r = g.bernoulli_scalar(np.size(_raw(input)), float(p)).reshape(np.shape(_raw(input)))
    return Tensor(r.astype(_like_dtype(input, None)))


def arange(start, end=None, step=1, *, out=None, dtype=None, layout=None, device=None,
           requires_grad=False, pin_memory=False):
    """Integers (int64) when start, end and step are all ints, else the default float, as
    PyTorch."""
    start, end, step = (_raw(v).item() if isinstance(v, Tensor) else v
                        for v in (start, end, step))
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = builtins.all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = int64 if ints else _DEFAULT_FLOAT
    dt = _dtype(dtype)
    dev = _factory_device(device)
    if dev is not _CPU and dt.kind in "iu":   # made on the GPU (generate's positions, ...)
        return Tensor(_ca().arange(start, end, step, dtype=dt, device_index=dev.index),
                      requires_grad)
    if dt.kind == "f":
        n = builtins.max(int(math.ceil((end - start) / step)), 0)
        arr = (start + np.arange(n, dtype=float64) * step).astype(dt)
    else:
        arr = np.arange(start, end, step).astype(dt)
    return _made(arr, requires_grad, device)


def linspace(start, end, steps, *, out=None, dtype=None, layout=None, device=None,
             requires_grad=False):
    start, end = (_raw(v).item() if isinstance(v, Tensor) else v for v in (start, end))
    dt = _float_dtype(dtype)
    dev = _factory_device(device)
    arr = np.linspace(start, end, int(steps), dtype=float64)
    if int(steps) > 1:  # PyTorch fills the second half from the end (symmetric rounding)
        step = (end - start) / (int(steps) - 1)
        half = int(steps) // 2
        idx = np.arange(int(steps))
        if dev is not _CPU:   # the same arithmetic on the GPU: nothing to copy there
            idx = _ca().arange(int(steps), dtype=np.int64, device_index=dev.index)
            arr = np.where(idx < half, start + step * idx, end - step * (int(steps) - 1 - idx))
            return Tensor(arr.astype(dt), requires_grad)
        arr = np.where(idx < half, start + step * idx, end - step * (int(steps) - 1 - idx))
    return _made(arr.astype(dt), requires_grad, device)


def logspace(start, end, steps, base=10.0, *, out=None, dtype=None, layout=None, device=None,
             requires_grad=False):
    exps = linspace(start, end, steps, dtype=float64)._data
    return _made((base ** exps).astype(_float_dtype(dtype)), requires_grad, device)


def eye(n, m=None, *, out=None, dtype=None, layout=None, device=None, requires_grad=False,
        pin_memory=False):
    dev = _factory_device(device)
    if dev is not _CPU:   # made on the GPU: a comparison of two aranges
        rows = _ca().arange(n, dtype=np.int64, device_index=dev.index)
        cols = _ca().arange(n if m is None else m, dtype=np.int64, device_index=dev.index)
        return Tensor((cols[None, :] == rows[:, None]).astype(_float_dtype(dtype)),
                      requires_grad)
    return _made(np.eye(n, m, dtype=_float_dtype(dtype)), requires_grad, device)


def numel(input):
    return input._data.size


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None):
    """How tensors print: PyTorch's options and profiles (see fastnn/_tensor_str.py); numpy's
    print options follow, for the arrays fastnn shows elsewhere."""
    _tensor_str.set_options(precision, threshold, edgeitems, linewidth, profile, sci_mode)
    opts = {}
    if profile == "default":
        opts.update(precision=4, threshold=1000, edgeitems=3, linewidth=80)
    elif profile == "short":
        opts.update(precision=2, threshold=1000, edgeitems=2, linewidth=80)
    elif profile == "full":
        opts.update(precision=4, threshold=2 ** 31 - 1, edgeitems=3, linewidth=80)
    for k, v in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                 ("linewidth", linewidth)):
        if v is not None:
            opts[k] = v
    if sci_mode is not None:
        opts["suppress"] = not sci_mode
    np.set_printoptions(**opts)


def compile(model=None, **kwargs):
    """torch.compile: fastnn runs eagerly, so this returns the model (or function) unchanged;
    as a decorator with options, @compile(mode=...) does the same."""
    if model is None:
        return lambda m: m
    return model


def equal(input, other):
    """True if both have the same shape and the same elements."""
    a, b = _raw(input), _raw(other)
    return bool(np.shape(a) == np.shape(b) and np.array_equal(a, b))


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return Tensor(np.isclose(_raw(input), _raw(other), rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return bool(np.allclose(_raw(input), _raw(other), rtol=rtol, atol=atol, equal_nan=equal_nan))


# ---------------------------------------------------------------- elementwise arithmetic (numpy)
def _binary_args(a, b):
    if not isinstance(a, Tensor):
        a = _lift(a, b) if isinstance(b, Tensor) else Tensor(_asarray(_to_array(a)))
    if not isinstance(b, Tensor):
        b = _lift(b, a)
    if type(a._data) is not type(b._data):
        return _device_operands(a, b)
    return a, b


def _device_operands(a, b):
    """The operands of one op, on one device (PyTorch's error otherwise). A 0-d CPU operand
    (a Python scalar lifted to a tensor, or a 0-d CPU tensor) joins a GPU one as a numpy scalar,
    with no copy; one that requires grad is moved instead (recorded, so its gradient returns)."""
    ad, bd = a._data, b._data
    if not (_on_gpu(ad) or _on_gpu(bd)):
        return a, b
    ad2, bd2 = _same_device(ad, bd)
    if ad2 is not ad:
        a = _to_device(a, _device_of(bd)) if a.requires_grad else _grad_tensor(ad2)
    if bd2 is not bd:
        b = _to_device(b, _device_of(ad)) if b.requires_grad else _grad_tensor(bd2)
    return a, b


def _scalar(b):
    return isinstance(b, (int, float, bool)) or (isinstance(b, np.generic) and b.ndim == 0)


class BroadcastError(RuntimeError, ValueError):
    """Shapes that do not broadcast: PyTorch's RuntimeError (and numpy's ValueError)."""


def _broadcast_error(sa, sb):
    for i in range(1, builtins.max(len(sa), len(sb)) + 1):
        x = sa[-i] if i <= len(sa) else 1
        y = sb[-i] if i <= len(sb) else 1
        if x != y and x != 1 and y != 1:
            return BroadcastError(f"The size of tensor a ({x}) must match the size of tensor b "
                                  f"({y}) at non-singleton dimension "
                                  f"{builtins.max(len(sa), len(sb)) - i}")
    return BroadcastError(f"shapes {tuple(sa)} and {tuple(sb)} do not broadcast")


def add(a, b, *, alpha=1, out=None):
    if alpha != 1:
        b = mul(b if isinstance(b, Tensor) else _lift(b, a), alpha)
    if isinstance(a, Tensor) and _scalar(b):
        return _node(_float_result(_asarray(a._data + b), a), (a,), lambda g: (g,),
                     tb=lambda g: (g,))
    a, b = _binary_args(a, b)
    sa, sb = a._data.shape, b._data.shape
    try:
        out = _asarray(a._data + b._data)
    except ValueError:
        raise _broadcast_error(sa, sb) from None
    return _node(_float_result(out, a, b), (a, b),
                 lambda g: (_unbroadcast(g, sa), _unbroadcast(g, sb)),
                 tb=lambda g: (_t_unbroadcast(g, sa), _t_unbroadcast(g, sb)))


def sub(a, b, *, alpha=1, out=None):
    if alpha != 1:
        b = mul(b if isinstance(b, Tensor) else _lift(b, a), alpha)
    if isinstance(a, Tensor) and _scalar(b):
        if a._data.dtype == bool_:
            raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not "
                               "supported.")
        return _node(_float_result(_asarray(a._data - b), a), (a,), lambda g: (g,),
                     tb=lambda g: (g,))
    a, b = _binary_args(a, b)
    sa, sb = a._data.shape, b._data.shape
    try:
        out = _asarray(a._data - b._data)
    except ValueError:
        raise _broadcast_error(sa, sb) from None
    return _node(_float_result(out, a, b), (a, b),
                 lambda g: (_unbroadcast(g, sa), _unbroadcast(-g, sb) if b.requires_grad
                            else None),
                 tb=lambda g: (_t_unbroadcast(g, sa), _t_unbroadcast(neg(g), sb)))


subtract = sub


def mul(a, b, *, out=None):
    if isinstance(a, Tensor) and _scalar(b):
        return _node(_float_result(_asarray(a._data * b), a), (a,), lambda g: (g * b,),
                     tb=lambda g: (mul(g, b),))
    a, b = _binary_args(a, b)
    ad, bd = a._data, b._data

    def backward(g):
        return (_unbroadcast(g * bd, ad.shape) if a.requires_grad else None,
                _unbroadcast(g * ad, bd.shape) if b.requires_grad else None)

    def tb(g):
        return (_t_unbroadcast(mul(g, b), ad.shape) if a.requires_grad else None,
                _t_unbroadcast(mul(g, a), bd.shape) if b.requires_grad else None)
    saved = ((b,) if a.requires_grad else ()) + ((a,) if b.requires_grad else ())
    try:
        out = _asarray(ad * bd)
    except ValueError:
        raise _broadcast_error(ad.shape, bd.shape) from None
    return _node(_float_result(out, a, b), (a, b), backward, saved=saved, tb=tb)


multiply = mul


def div(a, b, *, rounding_mode=None, out=None):
    if rounding_mode is not None:
        q = _raw(div(a, b))
        if rounding_mode == "floor":
            return floor_divide(a, b)
        if rounding_mode == "trunc":
            dt = np.result_type(_raw(a), _raw(b))
            return Tensor(np.trunc(q).astype(dt if dt.kind in "iu" else q.dtype))
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                         f"found '{rounding_mode}'")
    if isinstance(a, Tensor) and _scalar(b):
        return _node(_float_result(_asarray(a._data / b), a), (a,), lambda g: (g / b,),
                     tb=lambda g: (div(g, b),))
    a, b = _binary_args(a, b)
    ad, bd = a._data, b._data
    try:
        out = _float_result(_asarray(ad / bd), a, b)
    except ValueError:
        raise _broadcast_error(ad.shape, bd.shape) from None

    def backward(g):
        return (_unbroadcast(g / bd, ad.shape) if a.requires_grad else None,
                _unbroadcast(-g * out / bd, bd.shape) if b.requires_grad else None)

    def tb(g):
        return (_t_unbroadcast(div(g, b), ad.shape) if a.requires_grad else None,
                _t_unbroadcast(neg(g) * a / (b * b), bd.shape) if b.requires_grad else None)
    saved = (b, a) if b.requires_grad else (b,)
    return _node(out, (a, b), backward, saved=saved, tb=tb)


divide = true_divide = div


def floor_divide(a, b):
    a, b = _binary_args(a, b)
    return Tensor(_float_result(_asarray(np.floor_divide(a._data, b._data)), a, b))


def remainder(a, b):
    a, b = _binary_args(a, b)
    sa = a._data.shape
    return _node(_asarray(np.mod(a._data, b._data)), (a, b),
                 lambda g: (_unbroadcast(g, sa), None))


def fmod(a, b):
    a, b = _binary_args(a, b)
    sa = a._data.shape
    return _node(_asarray(np.fmod(a._data, b._data)), (a, b),
                 lambda g: (_unbroadcast(g, sa), None))


def pow(a, b):
    if not isinstance(a, Tensor):
        a = _lift(a, b)
    ad = a._data
    if _scalar(b):
        if b == 2:  # the common case: cheaper than a general power
            return _node(ad * ad, (a,), lambda g: (g * (2 * ad),), saved=(a,),
                         tb=lambda g: (g * (a * 2),))
        if ad.dtype.kind in "iu" and isinstance(b, float):
            ad = ad.astype(_DEFAULT_FLOAT)
        return _node(_asarray(ad ** b), (a,), lambda g: (g * (b * ad ** (b - 1)),),
                     saved=(a,), tb=lambda g: (g * (pow(a, b - 1) * b),))
    if not isinstance(b, Tensor):
        b = Tensor(_asarray(_to_array(b)))
    bd = b._data
    out = _float_result(_asarray(ad ** bd), a, b)

    def backward(g):
        ga = _unbroadcast(g * bd * ad ** (bd - 1), ad.shape) if a.requires_grad else None
        gb = None
        if b.requires_grad:
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = _unbroadcast(g * out * np.where(ad > 0, np.log(np.where(ad > 0, ad, 1)), 0),
                                  bd.shape)
        return ga, gb

    def tb(g):
        ga = _t_unbroadcast(g * b * pow(a, b - 1), ad.shape) if a.requires_grad else None
        gb = None
        if b.requires_grad:
            gb = _t_unbroadcast(g * pow(a, b) * log(where(a > 0, a, ones_like(a))), bd.shape)
        return ga, gb
    return _node(out, (a, b), backward, saved=(a, b), save_output=b.requires_grad, tb=tb)


def float_power(a, b):
    return pow(a.double() if isinstance(a, Tensor) else a, b)


def neg(a):
    if a._data.dtype == bool_:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported.")
    return _node(-a._data, (a,), lambda g: (-g,), tb=lambda g: (neg(g),))


negative = neg


def _f(a):
    """Elementwise math on an integer tensor computes in the default float dtype (PyTorch)."""
    d = a._data
    return d if d.dtype.kind in _FLOAT_KINDS else d.astype(_DEFAULT_FLOAT)


def exp(a):
    out = np.exp(_f(a))
    return _node(out, (a,), lambda g: (g * out,), save_output=True, tb=lambda g: (g * exp(a),))


def exp2(a):
    out = np.exp2(_f(a))
    return _node(out, (a,), lambda g: (g * out * math.log(2.0),), save_output=True)


def expm1(a):
    out = np.expm1(_f(a))
    return _node(out, (a,), lambda g: (g * (out + 1),), save_output=True,
                 tb=lambda g: (g * exp(a),))


def log(a):
    ad = _f(a)
    return _node(np.log(ad), (a,), lambda g: (g / ad,), saved=(a,), tb=lambda g: (g / a,))


def log2(a):
    ad = _f(a)
    return _node(np.log2(ad), (a,), lambda g: (g / (ad * math.log(2.0)),), saved=(a,))


def log10(a):
    ad = _f(a)
    return _node(np.log10(ad), (a,), lambda g: (g / (ad * math.log(10.0)),), saved=(a,))


def log1p(a):
    ad = _f(a)
    return _node(np.log1p(ad), (a,), lambda g: (g / (1 + ad),), saved=(a,),
                 tb=lambda g: (g / (a + 1),))


def sqrt(a):
    out = np.sqrt(_f(a))
    return _node(out, (a,), lambda g: (g * 0.5 / out,), save_output=True,
                 tb=lambda g: (g * 0.5 / sqrt(a),))


def rsqrt(a):
    out = 1 / np.sqrt(_f(a))
    return _node(out, (a,), lambda g: (g * -0.5 * out * out * out,), save_output=True,
                 tb=lambda g: (g * -0.5 * pow(a, -1.5),))


def square(a):
    return mul(a, a) if a._data.dtype.kind in _FLOAT_KINDS else Tensor(a._data * a._data)


def reciprocal(a):
    out = 1 / _f(a)
    return _node(out, (a,), lambda g: (-g * out * out,), save_output=True,
                 tb=lambda g: (neg(g) / (a * a),))


def abs(a):
    ad = a._data
    return _node(np.abs(ad), (a,), lambda g: (g * np.sign(ad),), saved=(a,),
                 tb=lambda g: (g * sign(a),))


absolute = abs


def sin(a):
    ad = _f(a)
    return _node(np.sin(ad), (a,), lambda g: (g * np.cos(ad),), saved=(a,),
                 tb=lambda g: (g * cos(a),))


def cos(a):
    ad = _f(a)
    return _node(np.cos(ad), (a,), lambda g: (-g * np.sin(ad),), saved=(a,),
                 tb=lambda g: (neg(g) * sin(a),))


def tan(a):
    out = np.tan(_f(a))
    return _node(out, (a,), lambda g: (g * (1 + out * out),), save_output=True)


def sinh(a):
    ad = _f(a)
    return _node(np.sinh(ad), (a,), lambda g: (g * np.cosh(ad),), saved=(a,))


def cosh(a):
    ad = _f(a)
    return _node(np.cosh(ad), (a,), lambda g: (g * np.sinh(ad),), saved=(a,))


def atan(a):
    ad = _f(a)
    return _node(np.arctan(ad), (a,), lambda g: (g / (1 + ad * ad),), saved=(a,))


def asin(a):
    ad = _f(a)
    return _node(np.arcsin(ad), (a,), lambda g: (g / np.sqrt(1 - ad * ad),), saved=(a,))


def acos(a):
    ad = _f(a)
    return _node(np.arccos(ad), (a,), lambda g: (-g / np.sqrt(1 - ad * ad),), saved=(a,))


def atan2(a, b):
    a, b = _binary_args(a, b)
    ad, bd = _f(a), _f(b)
    den = ad * ad + bd * bd
    return _node(np.arctan2(ad, bd), (a, b),
                 lambda g: (_unbroadcast(g * bd / den, ad.shape),
                            _unbroadcast(-g * ad / den, bd.shape)), saved=(a, b))


def erf(a):
    ad = _f(a)
    try:
        from scipy.special import erf as _erf
        out = _erf(ad).astype(ad.dtype)
    except ImportError:  # pragma: no cover
        out = np.vectorize(math.erf, otypes=[ad.dtype])(ad)
    c = 2.0 / math.sqrt(math.pi)
    return _node(out, (a,), lambda g: (g * c * np.exp(-ad * ad),), saved=(a,))


def _zero_grad_op(out, a):
    return _node(out, (a,), lambda g: (np.zeros_like(g),), tb=lambda g: (zeros_like(g),))


def floor(a):
    return _zero_grad_op(np.floor(a._data) if a._data.dtype.kind == "f" else a._data.copy(), a)


def ceil(a):
    return _zero_grad_op(np.ceil(a._data) if a._data.dtype.kind == "f" else a._data.copy(), a)


def round(a, *, decimals=0):
    return _zero_grad_op(np.round(a._data, decimals), a)


def trunc(a):
    return _zero_grad_op(np.trunc(a._data) if a._data.dtype.kind == "f" else a._data.copy(), a)


fix = trunc


def sign(a):
    return _zero_grad_op(np.sign(a._data), a)


sgn = sign


def isnan(a):
    return Tensor(np.isnan(_raw(a)))


def isinf(a):
    return Tensor(np.isinf(_raw(a)))


def isfinite(a):
    return Tensor(np.isfinite(_raw(a)))


def nan_to_num(a, nan=0.0, posinf=None, neginf=None):
    ad = a._data
    fin = np.isfinite(ad)
    return _node(np.nan_to_num(ad, nan=nan, posinf=posinf, neginf=neginf), (a,),
                 lambda g: (np.where(fin, g, 0).astype(g.dtype),))


def logical_not(a):
    return Tensor(np.logical_not(_raw(a)))


def logical_and(a, b):
    return Tensor(np.logical_and(_raw(a), _raw(b)))


def logical_or(a, b):
    return Tensor(np.logical_or(_raw(a), _raw(b)))


def logical_xor(a, b):
    return Tensor(np.logical_xor(_raw(a), _raw(b)))


def bitwise_and(a, b):
    return Tensor(_asarray(np.bitwise_and(_raw(a), _raw(b))))


def bitwise_or(a, b):
    return Tensor(_asarray(np.bitwise_or(_raw(a), _raw(b))))


def bitwise_xor(a, b):
    return Tensor(_asarray(np.bitwise_xor(_raw(a), _raw(b))))


def bitwise_not(a):
    return Tensor(_asarray(np.invert(_raw(a))))


def eq(a, b):
    return Tensor(_asarray(_raw(a) == _raw(b)))


def ne(a, b):
    return Tensor(_asarray(_raw(a) != _raw(b)))


def lt(a, b):
    return Tensor(_asarray(_raw(a) < _raw(b)))


def le(a, b):
    return Tensor(_asarray(_raw(a) <= _raw(b)))


def gt(a, b):
    return Tensor(_asarray(_raw(a) > _raw(b)))


def ge(a, b):
    return Tensor(_asarray(_raw(a) >= _raw(b)))


greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne


def maximum(a, b):
    """Elementwise max; where both are equal the gradient is split between them (PyTorch)."""
    a, b = _binary_args(a, b)
    ad, bd = a._data, b._data

    def backward(g):
        w = np.where(ad > bd, 1.0, np.where(ad == bd, 0.5, 0.0)).astype(g.dtype)
        return (_unbroadcast(g * w, ad.shape) if a.requires_grad else None,
                _unbroadcast(g * (1 - w), bd.shape) if b.requires_grad else None)

    def tb(g):
        w = Tensor(np.where(ad > bd, 1.0, np.where(ad == bd, 0.5, 0.0)).astype(g._data.dtype))
        return (_t_unbroadcast(g * w, ad.shape), _t_unbroadcast(g * (1 - w), bd.shape))
    return _node(_asarray(np.maximum(ad, bd)), (a, b), backward, saved=(a, b), tb=tb)


def minimum(a, b):
    a, b = _binary_args(a, b)
    ad, bd = a._data, b._data

    def backward(g):
        w = np.where(ad < bd, 1.0, np.where(ad == bd, 0.5, 0.0)).astype(g.dtype)
        return (_unbroadcast(g * w, ad.shape) if a.requires_grad else None,
                _unbroadcast(g * (1 - w), bd.shape) if b.requires_grad else None)

    def tb(g):
        w = Tensor(np.where(ad < bd, 1.0, np.where(ad == bd, 0.5, 0.0)).astype(g._data.dtype))
        return (_t_unbroadcast(g * w, ad.shape), _t_unbroadcast(g * (1 - w), bd.shape))
    return _node(_asarray(np.minimum(ad, bd)), (a, b), backward, saved=(a, b), tb=tb)


fmax, fmin = maximum, minimum


def clamp(a, min=None, max=None):
    """a limited to [min, max] (scalars or tensors); the gradient passes where min <= a <= max."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        r = a
        if min is not None:
            m = _lift(min, a)
            r = where(lt(r, m), m, r)
        if max is not None:
            m = _lift(max, a)
            r = where(gt(r, m), m, r)
        return r
    ad = a._data
    out = ad
    keep = None
    if min is not None:
        out = np.maximum(out, _asarray(min, ad.dtype) if ad.dtype.kind == "f" else min)
        keep = ad >= min
    if max is not None:
        out = np.minimum(out, _asarray(max, ad.dtype) if ad.dtype.kind == "f" else max)
        keep = (ad <= max) if keep is None else keep & (ad <= max)
    if out is ad:
        out = ad.copy()
    return _node(_asarray(out), (a,), lambda g: (np.where(keep, g, 0).astype(g.dtype),),
                 saved=(a,), tb=lambda g: (where(Tensor(keep), g, zeros_like(g)),))


clip = clamp


def clamp_min(a, min):
    return clamp(a, min, None)


def clamp_max(a, max):
    return clamp(a, None, max)


def addcmul(input, tensor1, tensor2, *, value=1):
    return add(input, mul(mul(tensor1, tensor2), value) if value != 1 else mul(tensor1, tensor2))


def addcdiv(input, tensor1, tensor2, *, value=1):
    return add(input, mul(div(tensor1, tensor2), value) if value != 1 else div(tensor1, tensor2))


def lerp(input, end, weight):
    return add(input, mul(_lift(weight, input), sub(end, input)))


def _cast(a, dtype):
    src = a._data.dtype
    if dtype.kind not in _FLOAT_KINDS or src.kind not in _FLOAT_KINDS:
        return Tensor(a._data.astype(dtype))
    return _node(a._data.astype(dtype), (a,), lambda g: (g.astype(src),),
                 tb=lambda g: (g.to(src),))


def where(condition, a=None, b=None):
    """a where condition else b (condition: a bool tensor or array; no gradient through it).
    where(condition) alone: the indices of its True elements, one tensor per dim."""
    cond = _raw(condition)
    if a is None and b is None:
        return tuple(Tensor(i.astype(int64)) for i in np.nonzero(cond))
    if not isinstance(a, Tensor):
        a = _lift(a, b) if isinstance(b, Tensor) else Tensor(_asarray(a))
    if not isinstance(b, Tensor):
        b = _lift(b, a)
    ad, bd = a._data, b._data

    def backward(g):
        zero = g.dtype.type(0)
        return (_unbroadcast(np.where(cond, g, zero), ad.shape) if a.requires_grad else None,
                _unbroadcast(np.where(cond, zero, g), bd.shape) if b.requires_grad else None)

    def tb(g):
        c, z = Tensor(_asarray(cond)), zeros_like(g)
        return (_t_unbroadcast(where(c, g, z), ad.shape) if a.requires_grad else None,
                _t_unbroadcast(where(c, z, g), bd.shape) if b.requires_grad else None)
    return _node(_asarray(np.where(cond, ad, bd)), (a, b), backward, tb=tb)


def masked_fill(a, mask, value):
    """a with `value` wherever mask is True (mask broadcasts to a's shape)."""
    m = _raw(mask)
    if isinstance(value, Tensor):
        if value.requires_grad:
            return where(mask, value, a)
        value = value.item()
    ad = a._data
    if _asarray(m).dtype != bool_:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{_asarray(m).dtype}")
    out = np.where(m, _asarray(value, ad.dtype), ad)
    if out.shape != ad.shape:
        raise RuntimeError(f"masked_fill: mask of shape {np.shape(m)} does not broadcast to the "
                           f"tensor's shape {ad.shape}")
    return _node(out, (a,), lambda g: (np.where(m, g.dtype.type(0), g),),
                 tb=lambda g: (where(Tensor(_asarray(m)), zeros_like(g), g),))


def masked_select(a, mask):
    m = np.broadcast_to(_raw(mask), np.broadcast_shapes(a._data.shape, np.shape(_raw(mask))))
    ad = np.broadcast_to(a._data, m.shape)
    shape = a._data.shape

    def backward(g):
        full = _zeros(m.shape, g.dtype, g)
        full[m] = g
        return (_unbroadcast(full, shape),)
    return _node(ad[m], (a,), backward)


def index_put(a, indices, values, accumulate=False):
    """a with values written at indices (a copy; index_put_ and x[i] = v write in place)."""
    idx = _index(indices)
    if not isinstance(values, Tensor):
        values = Tensor(_asarray(_to_array(values), dtype=a._data.dtype))
    vd = values._data
    out = a._data.copy()
    if accumulate:
        np.add.at(out, idx, vd)
    else:
        out[idx] = vd
    vshape, vdt = vd.shape, vd.dtype

    def backward(g):
        ga = None
        if a.requires_grad:
            ga = g.copy()
            if not accumulate:
                ga[idx] = 0
        gv = None
        if values.requires_grad:
            sel = _asarray(g[idx])
            if sel.shape != vshape:
                sel = _unbroadcast(sel, vshape)
            gv = sel.astype(vdt, copy=False)
        return ga, gv
    return _node(out, (a, values), backward)


def _tri(like, k):
    """np.tri(rows, cols, k, bool) for the last two dims of array like, on its device."""
    n, m = like.shape[-2:]
    if type(like) is np.ndarray or not _on_gpu(like):
        return np.tri(n, m, k=k, dtype=bool)
    ca = _ca()
    rows = ca.arange(n, dtype=np.int64, device_index=like.device_index)
    cols = ca.arange(m, dtype=np.int64, device_index=like.device_index)
    return cols[None, :] - rows[:, None] <= k


def tril(a, diagonal=0):
    keep = _tri(a._data, diagonal)
    return _node(np.where(keep, a._data, 0).astype(a._data.dtype), (a,),
                 lambda g: (np.where(keep, g, 0).astype(g.dtype),),
                 tb=lambda g: (tril(g, diagonal),))


def triu(a, diagonal=0):
    keep = ~_tri(a._data, diagonal - 1)
    return _node(np.where(keep, a._data, 0).astype(a._data.dtype), (a,),
                 lambda g: (np.where(keep, g, 0).astype(g.dtype),),
                 tb=lambda g: (triu(g, diagonal),))


# ---------------------------------------------------------------- matmul (kernels.gemm / bmm)
def _mm_tb(a, b):
    def tb(g):
        ga = gb = None
        if a.requires_grad:
            ga = _t_unbroadcast(matmul(g, transpose(b, -1, -2)), a._data.shape)
        if b.requires_grad:
            gb = _t_unbroadcast(matmul(transpose(a, -1, -2), g), b._data.shape)
        return ga, gb
    return tb


def matmul(a, b):
    """a @ b with PyTorch's rules: 2-D x 2-D is a GEMM, leading dims broadcast as a batch, and a
    1-D operand is treated as a row (left) or column (right) vector and its dim removed."""
    if not isinstance(a, Tensor):
        a = Tensor(_asarray(_to_array(a)))
    if not isinstance(b, Tensor):
        b = Tensor(_asarray(_to_array(b)))
    ad, bd = a._data, b._data
    if ad.ndim == 0 or bd.ndim == 0:
        raise RuntimeError("both arguments to matmul need to be at least 1D, but they are "
                           f"{ad.ndim}D and {bd.ndim}D")
    if type(ad) is not type(bd):
        _same_device(ad, bd)
    if ad.ndim == 1 and bd.ndim == 1:
        if ad.shape != bd.shape:
            raise RuntimeError(f"inconsistent tensor size, expected tensor [{ad.shape[0]}] and "
                               f"src [{bd.shape[0]}] to have the same number of elements")
        return sum(mul(a, b))
    if ad.ndim == 1:
        return squeeze(matmul(unsqueeze(a, 0), b), -2)
    if bd.ndim == 1:
        return squeeze(matmul(a, unsqueeze(b, 1)), -1)
    if ad.dtype != bd.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {ad.dtype} != "
                           f"{bd.dtype}")
    m, k = ad.shape[-2:]
    k2, n = bd.shape[-2:]
    if k != k2:
        raise ValueError(f"matmul: shapes {ad.shape} and {bd.shape} cannot be multiplied "
                         f"({k} != {k2})")
    if ad.dtype.kind not in "fc":  # integer matmul: numpy (the kernels are float-only)
        out = np.matmul(ad, bd)

        def backward(g):
            return None, None
        return _node(out, (a, b), backward)
    if bd.ndim == 2:
        # (..., M, K) @ (K, N): fold the batch into the rows of one GEMM
        a2 = ad if ad.ndim == 2 else ad.reshape(-1, k)
        out = T.gemm(a2, bd)

        def backward(g):
            g2 = g if g.ndim == 2 else g.reshape(-1, n)
            ga = T.gemm(g2, bd, trans_b=True).reshape(ad.shape) if a.requires_grad else None
            gb = T.gemm(a2, g2, trans_a=True) if b.requires_grad else None
            return ga, gb
        return _node(out.reshape(ad.shape[:-1] + (n,)), (a, b), backward, saved=(a, b),
                     tb=_mm_tb(a, b))
    batch = np.broadcast_shapes(ad.shape[:-2], bd.shape[:-2])
    a3 = (ad if ad.shape[:-2] == batch else np.broadcast_to(ad, batch + (m, k))).reshape(-1, m, k)
    b3 = (bd if bd.shape[:-2] == batch else np.broadcast_to(bd, batch + (k, n))).reshape(-1, k, n)
    out = T.bmm(a3, b3).reshape(batch + (m, n))

    def backward(g):
        g3 = g.reshape(-1, m, n)
        ga = gb = None
        if a.requires_grad:
            ga = _unbroadcast(T.bmm(g3, b3, trans_b=True).reshape(batch + (m, k)), ad.shape)
        if b.requires_grad:
            gb = _unbroadcast(T.bmm(a3, g3, trans_a=True).reshape(batch + (k, n)), bd.shape)
        return ga, gb
    return _node(out, (a, b), backward, saved=(a, b), tb=_mm_tb(a, b))


def mm(a, b):
    if a._data.ndim != 2 or b._data.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got {a._data.ndim}-D and {b._data.ndim}-D")
    return matmul(a, b)


def bmm(a, b):
    if a._data.ndim != 3 or b._data.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor (bmm got {a._data.ndim}-D and "
                           f"{b._data.ndim}-D)")
    if a._data.shape[0] != b._data.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ: {a._data.shape[0]} and {b._data.shape[0]}")
    return matmul(a, b)


def mv(a, v):
    return matmul(a, v)


def dot(a, b):
    if a._data.ndim != 1 or b._data.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a._data.ndim}D and {b._data.ndim}D "
                           f"tensors")
    return matmul(a, b)


inner = dot


def outer(a, b):
    return mul(unsqueeze(a, 1), unsqueeze(b, 0))


ger = outer


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    p = mm(mat1, mat2)
    p = p if alpha == 1 else mul(p, alpha)
    return add(input if beta == 1 else mul(input, beta), p)


def addmv(input, mat, vec, *, beta=1, alpha=1):
    p = matmul(mat, vec)
    p = p if alpha == 1 else mul(p, alpha)
    return add(input if beta == 1 else mul(input, beta), p)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    p = bmm(batch1, batch2)
    p = p if alpha == 1 else mul(p, alpha)
    return add(input if beta == 1 else mul(input, beta), p)


def addbmm(input, batch1, batch2, *, beta=1, alpha=1):
    p = sum(bmm(batch1, batch2), 0)
    p = p if alpha == 1 else mul(p, alpha)
    return add(input if beta == 1 else mul(input, beta), p)


def einsum(equation, *operands):
    """numpy's einsum forward; the backward of each operand is another einsum."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    ops = [o if isinstance(o, Tensor) else Tensor(_asarray(_to_array(o))) for o in operands]
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    in_subs = lhs.split(",")
    if len(in_subs) != len(ops):
        raise RuntimeError(f"einsum(): {len(in_subs)} operands in the equation, {len(ops)} given")
    used = set(eq)
    free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used]
    n_ell = builtins.max([o._data.ndim - len(s.replace("...", ""))
                          for s, o in zip(in_subs, ops) if "..." in s] or [0])
    ell = "".join(free[:n_ell])
    subs = []
    for s, o in zip(in_subs, ops):
        if "..." in s:
            k = o._data.ndim - len(s.replace("...", ""))
            s = s.replace("...", ell[n_ell - k:])
        subs.append(s)
    if arrow:
        out_s = rhs.replace("...", ell)
    else:
        counts = {}
        for s in subs:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        out_s = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    arrays = [o._data for o in ops]
    dt = np.result_type(*arrays)
    out = _asarray(np.einsum(eq, *arrays, optimize=len(ops) > 2)).astype(dt, copy=False)
    sizes = {}
    for s, a in zip(subs, arrays):
        for c, n in zip(s, a.shape):
            sizes[c] = builtins.max(sizes.get(c, 1), n)

    def backward(g):
        grads = []
        full = [np.broadcast_to(a, tuple(sizes[c] for c in s)) for s, a in zip(subs, arrays)]
        for i, (s, o) in enumerate(zip(subs, ops)):
            if not o.requires_grad:
                grads.append(None)
                continue
            if len(set(s)) != len(s):
                raise NotImplementedError(f"einsum backward: repeated index in one operand "
                                          f"({s!r}) is not supported")
            others = [subs[j] for j in range(len(subs)) if j != i]
            avail = set(out_s).union(*others) if others else set(out_s)
            target = "".join(c for c in s if c in avail)
            gi = np.einsum(",".join([out_s] + others) + "->" + target, g,
                           *[full[j] for j in range(len(subs)) if j != i],
                           optimize=len(ops) > 1)
            if target != s:
                gi = np.broadcast_to(gi.reshape([sizes[c] if c in target else 1 for c in s]),
                                     tuple(sizes[c] for c in s))
            grads.append(_unbroadcast(_asarray(gi), o._data.shape).astype(o._data.dtype,
                                                                           copy=False))
        return tuple(grads)
    return _node(out, tuple(ops), backward, saved=tuple(ops))


# ---------------------------------------------------------------- reductions
def _expand_back(g, axes, keepdim, shape):
    """Broadcast a reduced gradient back to the input's shape."""
    if axes is not None and not keepdim:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


def _t_expand_back(g, axes, keepdim, shape):
    if axes is not None and not keepdim:
        kept = list(shape)
        for ax in axes:
            kept[ax] = 1
        g = reshape(g, tuple(kept))
    elif axes is None and not keepdim:
        g = reshape(g, (1,) * len(shape))
    return expand(g, tuple(shape))


def sum(a, dim=None, keepdim=False, *, dtype=None):
    if not isinstance(a, Tensor):
        a = Tensor(_asarray(_to_array(a)))
    if dtype is not None:
        a = a.to(dtype)
    ad = a._data
    axes = _axes(dim, ad.ndim)
    shape = ad.shape
    out = _asarray(ad.sum(axis=axes, keepdims=keepdim))
    if ad.dtype.kind in "bu" or ad.dtype in (int32, int16, int8):
        out = out.astype(int64)
    return _node(out, (a,), lambda g: (_expand_back(g, axes, keepdim, shape),),
                 tb=lambda g: (_t_expand_back(g, axes, keepdim, shape),))


def nansum(a, dim=None, keepdim=False):
    return sum(where(isnan(a), zeros_like(a), a), dim, keepdim)


def mean(a, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        a = a.to(dtype)
    ad = a._data
    if ad.dtype.kind not in _FLOAT_KINDS:
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {_cast_name(ad.dtype)}")
    axes = _axes(dim, ad.ndim)
    shape = ad.shape
    count = ad.size if axes is None else math.prod(shape[i] for i in axes)
    out = _asarray(ad.mean(axis=axes, keepdims=keepdim))
    return _node(out, (a,), lambda g: (_expand_back(g / count, axes, keepdim, shape),),
                 tb=lambda g: (_t_expand_back(div(g, count), axes, keepdim, shape),))


def nanmean(a, dim=None, keepdim=False):
    keep = logical_not(isnan(a))
    return sum(where(keep, a, zeros_like(a)), dim, keepdim) / sum(keep, dim, keepdim)


def prod(a, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        a = a.to(dtype)
    ad = a._data
    if dim is None:
        flat = ad.reshape(-1)
        axis, src = 0, flat
    else:
        axis, src = dim % ad.ndim, ad
    out = _asarray(np.prod(src, axis=axis, keepdims=keepdim if dim is not None else False))
    if ad.dtype.kind in "bu" or ad.dtype in (int32, int16, int8):
        out = out.astype(int64)
    shape = ad.shape

    def backward(g):
        # the product of the others, exactly (zeros included): exclusive cumprods both ways
        x = np.moveaxis(src, axis, -1)
        ones = np.ones_like(x, shape=x.shape[:-1] + (1,))     # (on x's device)
        left = np.cumprod(np.concatenate([ones, x[..., :-1]], -1), -1)
        right = np.flip(np.cumprod(np.concatenate([ones, np.flip(x, -1)[..., :-1]], -1), -1), -1)
        others = np.moveaxis(left * right, -1, axis)
        gg = g if (dim is None or keepdim) else np.expand_dims(g, axis)
        return ((gg * others).reshape(shape),)
    return _node(out, (a,), backward, saved=(a,))


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    if unbiased is None:
        return 1
    return int(bool(unbiased))


def var(a, dim=None, unbiased=None, keepdim=False, *, correction=None):
    c = _correction(unbiased, correction)
    centered = a - mean(a, dim, keepdim=True)
    axes = _axes(dim, a._data.ndim)
    count = a._data.size if axes is None else math.prod(a._data.shape[i] for i in axes)
    return sum(centered * centered, dim, keepdim) / builtins.max(count - c, 0)


def std(a, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return sqrt(var(a, dim, unbiased, keepdim, correction=correction))


def var_mean(a, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(a, dim, unbiased, keepdim, correction=correction), mean(a, dim, keepdim)


def std_mean(a, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return std(a, dim, unbiased, keepdim, correction=correction), mean(a, dim, keepdim)


def norm(a, p="fro", dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        a = a.to(dtype)
    if p in ("fro", 2, 2.0, None):
        return sqrt(sum(a * a, dim, keepdim))
    if p in (1, 1.0):
        return sum(abs(a), dim, keepdim)
    if p in (math.inf, float("inf"), "inf"):
        return amax(abs(a), dim, keepdim)
    if p in (-math.inf, float("-inf")):
        return amin(abs(a), dim, keepdim)
    if p == 0:
        return sum(ne(a, 0).to(a._data.dtype), dim, keepdim)
    return pow(sum(pow(abs(a), p), dim, keepdim), 1.0 / p)


def logsumexp(a, dim, keepdim=False):
    m = Tensor(np.max(a._data, axis=_axes(dim, a._data.ndim), keepdims=True))
    m._data[~np.isfinite(m._data)] = 0
    out = log(sum(exp(a - m), dim, keepdim=True)) + m
    return out if keepdim else squeeze(out, dim)


MaxResult = namedtuple("MaxResult", ["values", "indices"])
max_result = MaxResult


def _arg(fn, data, dim, keepdim):
    if dim is None:
        out = _asarray(fn(data.reshape(-1)), dtype=int64)
        return out.reshape((1,) * data.ndim) if keepdim else out
    return _asarray(fn(data, axis=dim, keepdims=keepdim), dtype=int64)


def _extreme(a, dim, keepdim, argfn, valfn):
    ad = a._data
    if dim is None:
        out = _asarray(valfn(ad))
        # ties share the gradient equally, as PyTorch's full reduction does
        def backward(g):
            hit = ad == out
            return (np.where(hit, g / np.count_nonzero(hit), 0).astype(ad.dtype),)

        def tb(g):
            hit = Tensor(ad == out)
            return (where(hit, expand(div(g, float(np.count_nonzero(hit._data))), ad.shape),
                          zeros_like(a)),)
        return _node(out, (a,), backward, saved=(a,), tb=tb)
    axis = dim % ad.ndim
    idx = argfn(ad, axis=axis, keepdims=True)
    values = np.take_along_axis(ad, idx, axis=axis)

    def backward(g):
        full = np.zeros_like(ad)
        np.put_along_axis(full, idx, g if keepdim else np.expand_dims(g, axis), axis=axis)
        return (full,)

    def tb(g):
        mask = np.zeros(ad.shape, bool)
        np.put_along_axis(mask, idx, True, axis=axis)
        gg = g if keepdim else unsqueeze(g, axis)
        return (where(Tensor(mask), expand(gg, ad.shape), zeros_like(a)),)
    if not keepdim:
        values = values.squeeze(axis)
    return MaxResult(_node(values, (a,), backward, tb=tb),
                     Tensor((idx if keepdim else idx.squeeze(axis)).astype(int64)))


def max(a, dim=None, keepdim=False):
    """max() -> the largest value; max(dim) -> (values, indices); max(a, b) -> maximum."""
    if isinstance(dim, Tensor):
        return maximum(a, dim)
    return _extreme(a, dim, keepdim, np.argmax, np.max)


def min(a, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        return minimum(a, dim)
    return _extreme(a, dim, keepdim, np.argmin, np.min)


def _amax(a, dim, keepdim, fn):
    ad = a._data
    axes = _axes(dim, ad.ndim)
    out = _asarray(fn(ad, axis=axes, keepdims=keepdim))
    shape = ad.shape

    def backward(g):
        o = out if keepdim or axes is None else np.expand_dims(out, axes)
        hit = ad == o
        cnt = hit.sum(axis=axes, keepdims=True)
        gg = g if keepdim or axes is None else np.expand_dims(g, axes)
        return (np.where(hit, gg / cnt, 0).astype(ad.dtype).reshape(shape),)
    return _node(out, (a,), backward, saved=(a,))


def amax(a, dim=None, keepdim=False):
    return _amax(a, dim, keepdim, np.max)


def amin(a, dim=None, keepdim=False):
    return _amax(a, dim, keepdim, np.min)


def aminmax(a, *, dim=None, keepdim=False):
    return namedtuple("aminmax", ["min", "max"])(amin(a, dim, keepdim), amax(a, dim, keepdim))


def argmax(a, dim=None, keepdim=False):
    return Tensor(_arg(np.argmax, _raw(a), dim, keepdim))


def argmin(a, dim=None, keepdim=False):
    return Tensor(_arg(np.argmin, _raw(a), dim, keepdim))


def all(a, dim=None, keepdim=False):
    d = _raw(a)
    if dim is None:
        return Tensor(_asarray(np.all(d)))
    return Tensor(_asarray(np.all(d, axis=_axes(dim, d.ndim), keepdims=keepdim)))


def any(a, dim=None, keepdim=False):
    d = _raw(a)
    if dim is None:
        return Tensor(_asarray(np.any(d)))
    return Tensor(_asarray(np.any(d, axis=_axes(dim, d.ndim), keepdims=keepdim)))


def count_nonzero(a, dim=None):
    d = _raw(a)
    return Tensor(_asarray(np.count_nonzero(d, axis=_axes(dim, d.ndim)), dtype=int64))


# ---------------------------------------------------------------- shape ops (views)
def _reshape_target(shape, size):
    shape = tuple(shape)
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or size % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {size}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    elif math.prod(shape) != size:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {size}")
    return shape


def reshape(a, *shape):
    shape = _reshape_target(_shape_args(shape), a._data.size)
    src = a._data.shape
    out = a._data.reshape(shape)
    back, tb = (lambda g: (g.reshape(src),)), (lambda g: (reshape(g, src),))
    if out.size and np.may_share_memory(out, a._data):
        return _view_of(a, out, back, ("r", shape), tb=tb)
    return _node(out, (a,), back, tb=tb)


def view(a, *shape):
    shape = _reshape_target(_shape_args(shape), a._data.size)
    out = a._data.reshape(shape)
    if out.size and not np.may_share_memory(out, a._data):
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at "
                           "least one dimension spans across two contiguous subspaces). Use "
                           ".reshape(...) instead.")
    src = a._data.shape
    return _view_of(a, out, lambda g: (g.reshape(src),), ("r", shape),
                    tb=lambda g: (reshape(g, src),))


def flatten(a, start_dim=0, end_dim=-1):
    shape = a._data.shape
    if not shape:
        return reshape(a, 1)
    s, e = start_dim % len(shape), end_dim % len(shape)
    return reshape(a, shape[:s] + (-1,) + shape[e + 1:])


def unflatten(a, dim, sizes):
    shape = a._data.shape
    d = dim % len(shape)
    return reshape(a, shape[:d] + tuple(sizes) + shape[d + 1:])


def transpose(a, dim0, dim1):
    return _view_of(a, np.swapaxes(a._data, dim0, dim1),
                    lambda g: (np.swapaxes(g, dim0, dim1),), ("s", dim0, dim1),
                    tb=lambda g: (transpose(g, dim0, dim1),))


swapaxes = swapdims = transpose


def t(a):
    if a._data.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                           f"{a._data.ndim}D")
    if a._data.ndim < 2:
        return _view_of(a, a._data[...], lambda g: (g,), ("i", (Ellipsis,)), tb=lambda g: (g,))
    return transpose(a, 0, 1)


def permute(a, *dims):
    dims = tuple(d % a._data.ndim for d in _shape_args(dims)) if a._data.ndim else ()
    inverse = tuple(np.argsort(dims))
    return _view_of(a, np.transpose(a._data, dims), lambda g: (np.transpose(g, inverse),),
                    ("p", dims), tb=lambda g: (permute(g, inverse),))


def movedim(a, source, destination):
    nd = a._data.ndim
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    src = [d % nd for d in src]
    dst = [d % nd for d in dst]
    order = [d for d in range(nd) if d not in src]
    for d, s_ in sorted(zip(dst, src)):
        order.insert(d, s_)
    return permute(a, tuple(order))


moveaxis = movedim


def unsqueeze(a, dim):
    src = a._data.shape
    out = np.expand_dims(a._data, dim)
    return _view_of(a, out, lambda g: (g.reshape(src),), ("r", out.shape),
                    tb=lambda g: (reshape(g, src),))


def squeeze(a, dim=None):
    src = a._data.shape
    if dim is None:
        out = a._data.squeeze()
    else:
        dims = tuple(d % a._data.ndim if a._data.ndim else 0
                     for d in ((dim,) if isinstance(dim, int) else dim))
        out = a._data.squeeze(tuple(d for d in dims if a._data.ndim and src[d] == 1))
    return _view_of(a, out, lambda g: (g.reshape(src),), ("r", out.shape),
                    tb=lambda g: (reshape(g, src),))


def expand(a, *sizes):
    sizes = _shape_args(sizes)
    ad = a._data
    lead = len(sizes) - ad.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater "
                           f"or equal to the number of dimensions in the tensor ({ad.ndim})")
    target = tuple(ad.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    for i, s in enumerate(ad.shape):
        if s != 1 and s != target[i + lead]:
            raise RuntimeError(f"The expanded size of the tensor ({target[i + lead]}) must match "
                               f"the existing size ({s}) at non-singleton dimension {i + lead}. "
                               f"Target sizes: {list(sizes)}.  Tensor sizes: {list(ad.shape)}")
    return _view_of(a, np.broadcast_to(ad, target), lambda g: (_unbroadcast(g, ad.shape),),
                    ("e", target), tb=lambda g: (_t_unbroadcast(g, ad.shape),))


broadcast_to = expand


def broadcast_tensors(*tensors):
    shape = np.broadcast_shapes(*[t._data.shape for t in tensors])
    return tuple(expand(t, shape) for t in tensors)


def narrow(a, dim, start, length):
    start = int(_raw(start))
    axis = dim % a._data.ndim
    if start < 0:
        start += a._data.shape[axis]
    return getitem(a, (slice(None),) * axis + (slice(start, start + length),))


def unbind(a, dim=0):
    axis = dim % a._data.ndim
    return tuple(getitem(a, (slice(None),) * axis + (i,), ("Unbind", i))
                 for i in range(a._data.shape[axis]))


def select(a, dim, index):
    axis = dim % a._data.ndim
    return getitem(a, (slice(None),) * axis + (int(index),))


def diagonal(a, offset=0, dim1=0, dim2=1):
    ad = a._data
    shape = ad.shape
    chain_op = ("d", (offset, dim1, dim2))

    def backward(g):
        idx = np.diagonal(np.arange(ad.size).reshape(shape), offset, dim1, dim2)
        full = _zeros(ad.size, g.dtype, g)
        np.add.at(full, idx.reshape(-1), g.reshape(-1))
        return (full.reshape(shape),)
    return _view_of(a, np.diagonal(ad, offset, dim1, dim2), backward, chain_op)


def diag(a, diagonal=0):
    if a._data.ndim == 1:
        out = np.diag(a._data, diagonal)
        return _node(out, (a,), lambda g: (np.diagonal(g, diagonal).copy(),))
    return _node(np.diagonal(a._data, diagonal).copy(), (a,),
                 lambda g: (np.diag(g, diagonal).astype(g.dtype),))


def trace(a):
    return sum(diagonal(a))


def _is_basic_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    for p in parts:
        if not (p is None or p is Ellipsis or isinstance(p, (slice, numbers.Integral))) or \
                isinstance(p, (bool, np.bool_)):
            return False
    return True


def _scatter_grad(g, shape, index, basic):
    """The op (recorded, for double backward) placing g at index in zeros of shape."""
    gd = g._data
    full = _zeros(shape, gd.dtype, gd)
    if basic:
        full[index] = gd
    else:
        np.add.at(full, index, gd)
    return _node(full, (g,), lambda h: (_asarray(h[index]),),
                 tb=lambda h: (getitem(h, index),))


def getitem(a, index, _multi=None):
    """a[index]: basic slicing gives a view; integer/boolean array indices gather. The backward
    scatters the gradient back (np.add.at where an index may repeat). _multi: (function name,
    output number) for the views unbind/split/chunk return, which PyTorch does not let in-place
    ops modify while recording."""
    index = _index(index)
    ad = a._data
    basic = _is_basic_index(index)
    if basic:
        parts = index if isinstance(index, tuple) else (index,)
        if not builtins.any(p is Ellipsis for p in parts):
            parts = parts + (Ellipsis,)  # so an all-integer index gives a 0-d view, not a scalar
        index = parts
    out = ad[index]
    shape = ad.shape

    def backward(g):
        full = _zeros(shape, g.dtype, g)
        if basic:
            full[index] = g
        else:
            np.add.at(full, index, g)
        return (full,)

    def tb(g):
        return (_scatter_grad(g, shape, index, basic),)
    if basic:
        return _view_of(a, out, backward, ("i", index) if _multi is None else
                        ("I", index, _multi), tb=tb)
    return _node(_asarray(out), (a,), backward, tb=tb)


def cat(tensors, dim=0, *, out=None):
    tensors = [t if isinstance(t, Tensor) else Tensor(_asarray(t)) for t in tensors]
    if not tensors:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    tensors = [t for t in tensors if not (t._data.ndim == 1 and t._data.size == 0)] or tensors[:1]
    datas = [t._data for t in tensors]
    axis = dim % datas[0].ndim
    sizes = [d.shape[axis] for d in datas]
    bounds = np.cumsum(sizes)[:-1]
    dt = np.result_type(*datas)

    def tb(g):
        out, start = [], 0
        for s in sizes:
            out.append(narrow(g, axis, start, s))
            start += s
        return tuple(out)
    return _node(np.concatenate(datas, axis=axis).astype(dt, copy=False), tuple(tensors),
                 lambda g: tuple(np.split(g, bounds, axis=axis)), tb=tb)


concat = concatenate = cat


def stack(tensors, dim=0, *, out=None):
    tensors = [t if isinstance(t, Tensor) else Tensor(_asarray(t)) for t in tensors]
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    out = np.stack([t._data for t in tensors], axis=dim)
    axis = dim % out.ndim
    return _node(out, tuple(tensors),
                 lambda g: tuple(np.take(g, i, axis=axis) for i in range(len(tensors))),
                 tb=lambda g: unbind(g, axis))


def hstack(tensors):
    return cat(tensors, 0 if tensors[0]._data.ndim == 1 else 1)


def vstack(tensors):
    return cat([t if t._data.ndim > 1 else unsqueeze(t, 0) for t in tensors], 0)


def split(a, split_size_or_sections, dim=0):
    """Pieces along dim: of size split_size (the last may be smaller), or of the listed sizes."""
    length = a._data.shape[dim]
    if isinstance(split_size_or_sections, numbers.Integral):
        step = int(split_size_or_sections)
        sizes = [builtins.min(step, length - s) for s in range(0, length, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != length:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {length} "
                               f"(input tensor's size at dimension {dim}), but got "
                               f"split_sizes={sizes}")
    axis = dim % a._data.ndim
    name = "Split" if isinstance(split_size_or_sections, numbers.Integral) else "SplitWithSizes"
    out, start = [], 0
    for k, s in enumerate(sizes):
        index = (slice(None),) * axis + (slice(start, start + s),)
        out.append(getitem(a, index, (name, k)))
        start += s
    return tuple(out)


def chunk(a, chunks, dim=0):
    length = a._data.shape[dim]
    return split(a, -(-length // chunks) if length else 1, dim)


def tensor_split(a, indices_or_sections, dim=0):
    axis = dim % a._data.ndim
    n = a._data.shape[axis]
    if isinstance(indices_or_sections, numbers.Integral):
        k = int(indices_or_sections)
        q, r = divmod(n, k)
        sizes = [q + 1] * r + [q] * (k - r)
    else:
        b = [0] + list(indices_or_sections) + [n]
        sizes = [builtins.max(b[i + 1] - b[i], 0) for i in range(len(b) - 1)]
    return split(a, sizes, axis)


def repeat(a, *sizes):
    sizes = _shape_args(sizes)
    ad = a._data
    if len(sizes) < ad.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number "
                           "of dimensions of tensor")
    src = (1,) * (len(sizes) - ad.ndim) + ad.shape
    out = np.tile(ad.reshape(src), sizes)
    shape = ad.shape

    inter = []
    for r, s in zip(sizes, src):
        inter += [r, s]
    axes = tuple(range(0, len(inter), 2))

    def backward(g):
        return (g.reshape(inter).sum(axis=axes).reshape(shape),)
    return _node(out, (a,), backward,
                 tb=lambda g: (reshape(sum(reshape(g, tuple(inter)), axes), shape),))


def tile(a, *dims):
    dims = _shape_args(dims)
    if len(dims) < a._data.ndim:
        dims = (1,) * (a._data.ndim - len(dims)) + dims
    return repeat(a, *dims)


def repeat_interleave(a, repeats, dim=None, *, output_size=None):
    if not isinstance(a, Tensor):  # repeat_interleave(repeats): indices
        r = _asarray(_raw(a))
        return Tensor(np.repeat(np.arange(len(r)), r).astype(int64))
    ad = a._data
    src = ad if dim is not None else ad.reshape(-1)
    axis = 0 if dim is None else dim % ad.ndim
    reps = _asarray(_raw(repeats))
    out = np.repeat(src, reps, axis=axis)
    n = src.shape[axis]
    owner = np.repeat(np.arange(n), np.broadcast_to(reps, (n,)) if reps.ndim else reps)
    shape = ad.shape

    def backward(g):
        gm = np.moveaxis(g, axis, 0)
        full = _zeros((n,) + gm.shape[1:], g.dtype, g)
        np.add.at(full, owner, gm)
        return (np.moveaxis(full, 0, axis).reshape(shape),)
    return _node(out, (a,), backward)


def roll(a, shifts, dims=None):
    ad = a._data
    if dims is None:
        out = np.roll(ad.reshape(-1), shifts).reshape(ad.shape)
        return _node(out, (a,),
                     lambda g: (np.roll(g.reshape(-1), -_asarray(shifts)).reshape(ad.shape),),
                     tb=lambda g: (reshape(roll(reshape(g, (-1,)), -int(shifts), 0), ad.shape),))
    neg_shift = tuple(-s for s in shifts) if isinstance(shifts, (tuple, list)) else -shifts
    return _node(np.roll(ad, shifts, dims), (a,), lambda g: (np.roll(g, neg_shift, dims),),
                 tb=lambda g: (roll(g, neg_shift, dims),))


def flip(a, dims):
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return _node(np.flip(a._data, dims).copy(), (a,), lambda g: (np.flip(g, dims),),
                 tb=lambda g: (flip(g, dims),))


def fliplr(a):
    return flip(a, (1,))


def flipud(a):
    return flip(a, (0,))


def clone(a, *, memory_format=None):
    return a.clone()


def detach(a):
    return a.detach()


def meshgrid(*tensors, indexing="ij"):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    n = len(tensors)
    shape = tuple(t._data.shape[0] if t._data.ndim else 1 for t in tensors)
    out = []
    for i, t in enumerate(tensors):
        s = [1] * n
        s[i] = -1
        out.append(expand(reshape(t, tuple(s)), shape))
    if indexing == "xy" and n >= 2:
        out = [transpose(o, 0, 1) for o in out]
    return tuple(out)


# ---------------------------------------------------------------- activations and softmax
# Tensor methods (x.relu(), x.softmax(dim)) and nn.functional share these. Kernels come through
# the trusted entry point (fastnn/kernels/trusted.py): the same results as fastnn.kernels.*,
# without re-validating arrays that are already known to be good.
def relu(input):
    y = T.relu(input._data)  # its backward reads the output (y > 0 where x > 0), as PyTorch's
    return _node(y, (input,), lambda g: (T.relu_backward(g, y),), save_output=True,
                 tb=lambda g: (where(Tensor(y > 0), g, zeros_like(g)),))


def leaky_relu(input, negative_slope=0.01):
    x = input._data
    return _node(T.leaky_relu(x, negative_slope), (input,),
                 lambda g: (T.leaky_relu_backward(g, x, negative_slope),), saved=(input,),
                 tb=lambda g: (where(Tensor(x > 0), g, g * negative_slope),))


def sigmoid(input):
    y = T.sigmoid(input._data)

    def tb(g):
        s = sigmoid(input)
        return (g * s * (1 - s),)
    return _node(y, (input,), lambda g: (T.sigmoid_backward(g, y),), save_output=True, tb=tb)


def tanh(input):
    y = T.tanh(input._data)

    def tb(g):
        s = tanh(input)
        return (g * (1 - s * s),)
    return _node(y, (input,), lambda g: (T.tanh_backward(g, y),), save_output=True, tb=tb)


def gelu(input, approximate="none"):
    x = input._data
    return _node(T.gelu(x, approximate), (input,),
                 lambda g: (T.gelu_backward(g, x, approximate),), saved=(input,))


def _last_axis_op(input, dim, forward, backward_kernel, tb=None):
    """Run a last-axis row kernel over any dim by moving that dim last (and back)."""
    x = input._data
    if x.dtype.kind not in _FLOAT_KINDS:
        raise RuntimeError(f"softmax: expected a floating-point tensor, got {x.dtype}")
    axis = dim % x.ndim if x.ndim else 0
    if x.ndim == 0:
        y = forward(x.reshape(1, 1)).reshape(())
        return _node(y, (input,), lambda g: (backward_kernel(g.reshape(1, 1),
                                                             y.reshape(1, 1)).reshape(()),),
                     save_output=True, tb=tb)
    if axis == x.ndim - 1:
        y = forward(x)
        return _node(y, (input,), lambda g: (backward_kernel(g, y),), save_output=True, tb=tb)
    ym = forward(np.moveaxis(x, axis, -1))
    return _node(np.moveaxis(ym, -1, axis), (input,),
                 lambda g: (np.moveaxis(backward_kernel(np.moveaxis(g, axis, -1), ym), -1, axis),),
                 save_output=True, tb=tb)


def softmax(input, dim=-1, dtype=None, _stacklevel=None):
    if dtype is not None:
        input = input.to(dtype)

    def tb(g):
        y = softmax(input, dim)
        return (y * (g - sum(g * y, dim, keepdim=True)),)
    return _last_axis_op(input, dim, T.softmax, T.softmax_backward, tb)


def log_softmax(input, dim=-1, dtype=None, _stacklevel=None):
    if dtype is not None:
        input = input.to(dtype)

    def tb(g):
        y = log_softmax(input, dim)
        return (g - exp(y) * sum(g, dim, keepdim=True),)
    return _last_axis_op(input, dim, T.log_softmax, T.log_softmax_backward, tb)


def _autograd_backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False,
                       inputs=None):
    """torch.autograd.backward: backward() from several roots at once."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    elif isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors]
    gs = []
    for t, g in zip(tensors, grad_tensors):
        if g is None:
            if t._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            gs.append(np.ones_like(t._data))
        else:
            gs.append(_grad_array(g, t))
    if create_graph:
        raise NotImplementedError("autograd.backward(create_graph=True): use "
                                  "fastnn.autograd.grad(..., create_graph=True)")
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    _run_backward(tensors, gs, bool(retain_graph), inputs)


# ---------------------------------------------------------------- custom autograd functions
class FunctionCtx:
    """The ctx of an autograd.Function: what forward saves for backward."""

    def __init__(self):
        self.saved_tensors = ()
        self.needs_input_grad = ()
        self.materialize_grads = True
        self._saved_records = ()
        self._non_differentiable = set()
        self._dirty = ()

    def save_for_backward(self, *tensors):
        self.saved_tensors = tuple(tensors)
        self._saved_records = _save(*tensors)

    def save_for_forward(self, *tensors):
        pass

    def mark_non_differentiable(self, *tensors):
        self._non_differentiable.update(id(t) for t in tensors)

    def mark_dirty(self, *tensors):
        self._dirty = tensors

    def set_materialize_grads(self, value):
        self.materialize_grads = bool(value)


class _MultiGrad:
    """The gradients reaching a multi-output Function node, by output index (they add up)."""
    __slots__ = ("grads",)

    def __init__(self, grads):
        self.grads = grads

    def __add__(self, other):
        merged = dict(self.grads)
        for i, g in other.grads.items():
            merged[i] = g if i not in merged else merged[i] + g
        return _MultiGrad(merged)


class Function:
    """torch.autograd.Function: subclass with static forward(ctx, *args) (or forward(*args) plus
    setup_context(ctx, inputs, output)) and backward(ctx, *grad_outputs); call Cls.apply(...)."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("autograd.Function: define a static forward(ctx, ...)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("autograd.Function: define a static backward(ctx, ...)")

    setup_context = None

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = FunctionCtx()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        with no_grad():
            if cls.setup_context is not None and \
                    getattr(cls.setup_context, "__func__", cls.setup_context) is not None:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        single = not isinstance(out, tuple)
        outs = (out,) if single else out
        outs = tuple(o if not isinstance(o, Tensor) or id(o) not in ctx._non_differentiable
                     else o for o in outs)
        tensor_idx = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        parents = tuple(args[i] for i in tensor_idx)
        if not (_grad_enabled[0] and builtins.any(p.requires_grad for p in parents)):
            return out
        shapes = [o._data.shape if isinstance(o, Tensor) else None for o in outs]
        dtypes = [o._data.dtype if isinstance(o, Tensor) else None for o in outs]

        def backward(g):
            got = g.grads if isinstance(g, _MultiGrad) else {0: g}
            grads_out = []
            for i in range(len(outs)):
                gi = got.get(i)
                if gi is None and ctx.materialize_grads and shapes[i] is not None:
                    gi = np.zeros(shapes[i], dtypes[i])
                grads_out.append(None if gi is None else Tensor(gi))
            res = cls.backward(ctx, *grads_out)
            if not isinstance(res, tuple):
                res = (res,)
            if len(res) < len(args):
                res = res + (None,) * (len(args) - len(res))
            out = []
            for i in tensor_idx:
                r = res[i]
                if r is None:
                    out.append(None)
                else:
                    r = _asarray(_raw(r))
                    shape = args[i]._data.shape
                    out.append(_unbroadcast(r, shape) if r.shape != shape else r)
            return tuple(out)
        results = []
        if single:
            o = outs[0]
            t = _node(o._data, parents, backward)
            t._fn._saved = ctx._saved_records or None
            if ctx._dirty and o is args[0]:
                # mark_dirty: the input was modified in place and returned
                _rebase(o, t._fn)
                return o
            return t
        main = _node(np.zeros(()), parents, backward)
        main._fn._saved = ctx._saved_records or None
        for i, o in enumerate(outs):
            if not isinstance(o, Tensor):
                results.append(o)
                continue
            if id(o) in ctx._non_differentiable or o._data.dtype.kind not in _FLOAT_KINDS:
                results.append(o.detach())
                continue
            r = Tensor.__new__(Tensor)
            Tensor.__init__(r, o._data)
            r._fn = _Fn((main._fn,), (lambda k: lambda g: (_MultiGrad({k: g}),))(i))
            r.requires_grad = True
            results.append(r)
        return tuple(results)


def _once_differentiable(fn):
    return fn



FloatTensor = type("FloatTensor", (_TypedTensor,), {"_dtype": float32})
DoubleTensor = type("DoubleTensor", (_TypedTensor,), {"_dtype": float64})
HalfTensor = type("HalfTensor", (_TypedTensor,), {"_dtype": float16})
LongTensor = type("LongTensor", (_TypedTensor,), {"_dtype": int64})
IntTensor = type("IntTensor", (_TypedTensor,), {"_dtype": int32})
ShortTensor = type("ShortTensor", (_TypedTensor,), {"_dtype": int16})
CharTensor = type("CharTensor", (_TypedTensor,), {"_dtype": int8})
ByteTensor = type("ByteTensor", (_TypedTensor,), {"_dtype": uint8})
BoolTensor = type("BoolTensor", (_TypedTensor,), {"_dtype": bool_})


# ---------------------------------------------------------------- out= (top-level functions)
def _write_out(out, r):
    """Write result r into the tensor `out` (resized if its shape differs), as PyTorch's out=."""
    if _grad_enabled[0] and r.requires_grad:
        raise RuntimeError(f"{'out='} arguments don't support automatic differentiation, but one "
                           f"of the arguments requires grad.")
    if isinstance(r, tuple):
        raise RuntimeError("out=: this function returns several tensors")
    if out._data.shape == r._data.shape:
        _assign(out, r._data)
    else:
        out._data = _asarray(r._data, dtype=out._data.dtype).copy()
        out._vc[0] += 1
    return out


def _numpy_names(kwargs):
    """PyTorch takes numpy's axis= and keepdims= for dim= and keepdim=."""
    if "axis" in kwargs:
        kwargs["dim"] = kwargs.pop("axis")
    if "keepdims" in kwargs:
        kwargs["keepdim"] = kwargs.pop("keepdims")
    return kwargs


def _with_out(fn):
    @functools.wraps(fn)
    def with_out(*args, out=None, **kwargs):
        r = fn(*args, **_numpy_names(kwargs)) if kwargs else fn(*args)
        return r if out is None else _write_out(out, r)
    return with_out


def _with_numpy_names(fn):
    @functools.wraps(fn)
    def method(*args, **kwargs):
        return fn(*args, **_numpy_names(kwargs)) if kwargs else fn(*args)
    return method


for _name in ("sum", "mean", "prod", "var", "std", "max", "min", "amax", "amin", "argmax",
              "argmin", "all", "any", "logsumexp", "norm", "softmax", "log_softmax", "squeeze",
              "unsqueeze", "count_nonzero", "flatten"):
    setattr(Tensor, _name, _with_numpy_names(getattr(Tensor, _name)))


# what fastnn.<name> is: the op, plus PyTorch's out= argument (the ops themselves, which
# Tensor methods and operators call, skip that layer)
_OUT = {name: _with_out(globals()[name]) for name in (
    "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "matmul", "mm",
    "bmm", "cat", "concat", "concatenate", "stack", "pow", "exp", "log", "sqrt", "abs", "neg",
    "sin", "cos", "tanh", "sigmoid", "clamp", "clip", "maximum", "minimum", "where", "addmm",
    "baddbmm", "outer", "dot", "sum", "mean", "prod", "floor", "ceil", "round", "sign",
    "remainder", "floor_divide", "lerp", "addcmul", "addcdiv", "einsum", "log_softmax",
    "softmax", "max", "min", "amax", "amin", "argmax", "argmin", "std", "var", "all", "any",
    "logsumexp", "norm", "squeeze", "unsqueeze", "count_nonzero", "split", "chunk", "unbind",
    "flip", "roll")}


# ---------------------------------------------------------------- torch.linalg (norms)
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """torch.linalg.vector_norm: the ord-norm over dim (all elements when None)."""
    if dtype is not None:
        x = x.to(dtype)
    if ord == 2:
        return sqrt(sum(x * x, dim, keepdim))
    if ord in (math.inf, float("inf")):
        return amax(abs(x), dim, keepdim)
    if ord in (-math.inf, float("-inf")):
        return amin(abs(x), dim, keepdim)
    if ord == 0:
        return sum(ne(x, 0).to(x._data.dtype), dim, keepdim)
    if ord == 1:
        return sum(abs(x), dim, keepdim)
    return pow(sum(pow(abs(x), ord), dim, keepdim), 1.0 / ord)


def matrix_norm(x, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """torch.linalg.matrix_norm for ord 'fro', 1, -1, inf, -inf (no spectral norms)."""
    if dtype is not None:
        x = x.to(dtype)
    d0, d1 = dim
    if ord == "fro":
        return sqrt(sum(x * x, (d0, d1), keepdim))
    if ord in (1, -1, math.inf, -math.inf):
        inner, outer = (d0, d1) if ord in (1, -1) else (d1, d0)
        s = sum(abs(x), inner, keepdim=True)
        r = amax(s, outer, keepdim=True) if ord > 0 else amin(s, outer, keepdim=True)
        return r if keepdim else squeeze(r, (d0, d1))
    raise NotImplementedError(f"matrix_norm: ord={ord!r} is not supported (only 'fro', 1, -1, "
                              f"inf, -inf)")


def linalg_norm(x, ord=None, dim=None, keepdim=False, *, dtype=None):
    """torch.linalg.norm: a vector norm (1-D input, or an int dim) or a matrix norm (2 dims)."""
    if isinstance(dim, int) or (dim is None and (ord is None or x._data.ndim == 1)):
        return vector_norm(x, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    if dim is None:
        dim = (-2, -1)
    if len(dim) == 1:
        return vector_norm(x, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    return matrix_norm(x, "fro" if ord is None else ord, tuple(dim), keepdim, dtype=dtype)
