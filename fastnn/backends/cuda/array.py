"""DeviceArray: an n-d array in GPU memory that speaks numpy's protocols.

A Tensor on 'cuda' keeps a DeviceArray where a CPU tensor keeps a numpy array. DeviceArray
implements numpy's __array_ufunc__ and __array_function__ protocols and ndarray's methods and
operators, so code written against numpy (np.exp(x), x.sum(1), x[idx], a * b) runs unchanged on
device storage. Results are DeviceArrays; only item(), tolist() and the implicit conversion
__array__ (np.asarray(d)) give host data.

Storage: a flat numba device array from the caching allocator (memory.py, which says why this
storage type) plus an element offset, shape and element strides, so transposes, slices and
broadcasts are views that copy nothing. `.raw` is the same view as a numba device array, for
kernels written against numba's arrays.

The transfer rule: every host<->device copy of this package goes through common.py's counted
transfer log. What DeviceArray cannot yet do on the device it does by a counted, logged
fallback: operands down, numpy, result up, each copy recorded as (direction, function name). So
everything is correct from the start, and transfer_log() names what still runs on the host.

On the device (array_kernels.py): every elementwise ufunc of numpy's arithmetic, comparison,
logic and float math (with numpy's broadcasting over any strides, numpy's dtype promotion,
`out=` and in-place operators), ufunc.reduce/accumulate/at for add, multiply, maximum, minimum;
sum prod max min any all argmax argmin mean var std cumsum cumprod count_nonzero nansum nanmean;
astype copy fill, views (reshape when numpy's is a view, transpose swapaxes moveaxis squeeze
expand_dims broadcast_to flip diagonal split, basic indexing), integer and boolean indexing and
assignment, take take_along_axis put_along_axis nonzero argwhere where clip tril triu
concatenate stack append roll repeat tile diff diag bincount round nan_to_num isclose allclose
array_equal linalg.norm, sort argsort (a bitonic network; NaN last, ties in index order),
matmul dot outer einsum (one or two operands) through gemm.py, the *_like creators, and Philox
random numbers (random.py). Not there, so on the counted fallback: unique, searchsorted,
float16 math, ufunc.outer/reduceat, einsum of three or more operands, the rest of linalg. np.asarray/np.array/np.ascontiguousarray cannot be overridden by
the protocols: they call __array__, a counted copy to the host.

Two results depend on the data's values and so cost a counted copy of one number, as in
PyTorch: boolean-mask indexing and nonzero (the count sizes the result) and bincount (max(x)).
An out-of-range index held on the device cannot raise where it is used: the kernel clamps it
(nothing outside the array is touched) and raises a flag; the next synchronize() or to_host()
raises IndexError, like CUDA's device-side assert.
"""
import builtins
import collections
import numbers
import operator

import numpy as np
from numba import cuda

from . import array_kernels as ak
from . import memory
from . import random as _random
from .common import SIMULATOR, record_transfer, transfer_log as _common_log


_SUPPORTED_KINDS = "biuf"        # bool, signed and unsigned ints, floats


def _check_dtype(dtype, what):
    dtype = np.dtype(dtype)
    if dtype.kind not in _SUPPORTED_KINDS:
        raise TypeError(f"{what}: dtype {dtype} is not supported on the cuda device "
                        f"(bool, integer and float dtypes are)")
    return dtype


def _prod(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _c_strides(shape):
    strides = []
    step = 1
    for s in reversed(shape):
        strides.append(step)
        step *= max(s, 1)
    return tuple(reversed(strides))


def _normalize_shape(shape):
    if isinstance(shape, (numbers.Integral, np.integer)):
        shape = (shape,)
    shape = tuple(operator.index(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimensions are not allowed: {shape}")
    return shape


class DeviceArray:
    """A strided view of a flat device buffer. Build them with from_host, empty, zeros, wrap..."""

    __slots__ = ("_buf", "_offset", "_shape", "_estrides", "_dtype", "_device_index",
                 "__weakref__")
    __array_priority__ = 100

    def __init__(self, buf, offset, shape, estrides, dtype, device_index=0):
        self._buf = buf                  # flat 1-D numba device array of dtype
        self._offset = int(offset)       # in elements
        self._shape = tuple(int(s) for s in shape)
        self._estrides = tuple(int(s) for s in estrides)
        self._dtype = np.dtype(dtype)
        self._device_index = device_index

    # ------------------------------------------------------------ attributes
    @property
    def shape(self):
        return self._shape

    @property
    def dtype(self):
        return self._dtype

    @property
    def ndim(self):
        return len(self._shape)

    @property
    def size(self):
        return _prod(self._shape)

    @property
    def itemsize(self):
        return self._dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self._dtype.itemsize

    @property
    def strides(self):
        """Strides in bytes, as numpy's."""
        return tuple(s * self._dtype.itemsize for s in self._estrides)

    @property
    def device_index(self):
        return self._device_index

    @property
    def T(self):
        return self.transpose()

    @property
    def mT(self):
        return self.swapaxes(-1, -2)

    @property
    def flags(self):
        return _Flags(self.is_c_contiguous(), self.is_f_contiguous())

    @property
    def base(self):
        return None

    @property
    def real(self):
        return self

    def is_c_contiguous(self):
        return _is_contiguous(self._shape, self._estrides)

    def is_f_contiguous(self):
        return _is_contiguous(self._shape[::-1], self._estrides[::-1])

    @property
    def raw(self):
        """This view as a numba device array (sharing memory), for numba kernels."""
        if self.size == 0:
            return cuda.device_array(self._shape, self._dtype)
        if (self._offset == 0 and self.ndim == 1 and self._estrides == (1,)
                and self._shape[0] == self._buf.shape[0]):
            return self._buf
        bstrides = self.strides
        if SIMULATOR:
            from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
            host = self._buf._ary
            view = np.lib.stride_tricks.as_strided(host[self._offset:], self._shape, bstrides)
            return FakeCUDAArray(view)
        from numba.cuda.cudadrv.devicearray import DeviceNDArray
        return DeviceNDArray(self._shape, bstrides, self._dtype,
                             gpu_data=self._buf.gpu_data.view(self._offset * self.itemsize))

    @property
    def __cuda_array_interface__(self):
        return self.raw.__cuda_array_interface__

    def contiguous(self):
        """A C-contiguous DeviceArray with these values: self when it is one, else a copy."""
        if self.is_c_contiguous():
            return self
        return self.copy()

    def _view(self, offset, shape, estrides):
        return DeviceArray(self._buf, offset, shape, estrides, self._dtype, self._device_index)

    def _span(self):
        """The [lo, hi) element range of the buffer this view touches."""
        lo = hi = self._offset
        if self.size == 0:
            return lo, lo
        for n, s in zip(self._shape, self._estrides):
            if s > 0:
                hi += (n - 1) * s
            else:
                lo += (n - 1) * s
        return lo, hi + 1

    def __repr__(self):
        return f"DeviceArray(shape={self._shape}, dtype={self._dtype}, device=cuda:" \
               f"{self._device_index})"

    __str__ = __repr__

    # ------------------------------------------------------------ python protocol
    def __len__(self):
        if not self._shape:
            raise TypeError("len() of unsized object")
        return self._shape[0]

    def __iter__(self):
        if not self._shape:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self._shape[0]))

    def __bool__(self):
        if self.size != 1:
            raise ValueError("The truth value of an array with more than one element is "
                             "ambiguous. Use a.any() or a.all()")
        return bool(self.item())

    def __float__(self):
        return float(self._scalar("__float__"))

    def __int__(self):
        return int(self._scalar("__int__"))

    def __index__(self):
        if self._dtype.kind not in "biu":
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return operator.index(self._scalar("__index__"))

    def __complex__(self):
        return complex(self._scalar("__complex__"))

    def _scalar(self, what):
        if self.size != 1:
            raise TypeError("only length-1 arrays can be converted to Python scalars")
        return to_host(self, what).reshape(()).item()

    def item(self, *args):
        """The element as a Python scalar (one counted device-to-host copy)."""
        if args:
            return self[args if len(args) > 1 else args[0]].item()
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        return to_host(self, "item").reshape(()).item()

    def tolist(self):
        return to_host(self, "tolist").tolist()

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("a DeviceArray cannot be viewed as a host array without a copy")
        host = to_host(self, "__array__")
        return host if dtype is None else host.astype(dtype, copy=False)

    def get(self):
        """CuPy's name for the copy to the host (counted)."""
        return to_host(self, "get")

    def __reduce__(self):
        return (from_host, (to_host(self, "pickle"),))

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    # ------------------------------------------------------------ numpy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _dispatch_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        for t in types:
            if not (issubclass(t, (DeviceArray, np.ndarray))):
                return NotImplemented
        impl = _FUNCTIONS.get(func)
        if impl is not None:
            return impl(*args, **kwargs)
        return _fallback(func.__name__, func, args, kwargs)

    # ------------------------------------------------------------ views (no copies)
    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and not isinstance(shape[0], (numbers.Integral, np.integer)):
            shape = shape[0]
        return _reshape(self, shape, order)

    def transpose(self, *axes):
        if len(axes) == 1 and (axes[0] is None or not isinstance(axes[0], (numbers.Integral,
                                                                             np.integer))):
            axes = axes[0]
        return _transpose(self, axes if axes else None)

    def swapaxes(self, a, b):
        return _swapaxes(self, a, b)

    def squeeze(self, axis=None):
        return _squeeze(self, axis)

    def ravel(self, order="C"):
        return _reshape(self, (-1,), order)

    def flatten(self, order="C"):
        """Always a copy (ravel gives a view when it can)."""
        flat = self.ravel(order)
        return flat.copy() if np.may_share_memory(flat, self) else flat

    def view(self, dtype=None):
        if dtype is None or np.dtype(dtype) == self._dtype:
            return self._view(self._offset, self._shape, self._estrides)
        return _fallback("view", lambda a: a.view(dtype), (self,), {})

    def __getitem__(self, key):
        return _getitem(self, key)

    def __setitem__(self, key, value):
        _setitem(self, key, value)

    # ------------------------------------------------------------ copies and fills
    def copy(self, order="C"):
        return _copy(self)

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        dtype = _check_dtype(dtype, "astype")
        if dtype == self._dtype and not copy:
            return self
        return _astype(self, dtype)

    def fill(self, value):
        _fill(self, value)

    # ------------------------------------------------------------ operators (numpy ufuncs)
    def __neg__(self):
        return np.negative(self)

    def __pos__(self):
        return np.positive(self)

    def __abs__(self):
        return np.absolute(self)

    def __invert__(self):
        return np.invert(self)

    def __matmul__(self, other):
        return np.matmul(self, other)

    def __rmatmul__(self, other):
        return np.matmul(other, self)

    def __imatmul__(self, other):
        return np.matmul(self, other, out=self)

    __hash__ = None


class _Flags(dict):
    """ndarray.flags' two spellings: flags["C_CONTIGUOUS"] and flags.c_contiguous."""

    def __init__(self, c, f):
        super().__init__(C_CONTIGUOUS=c, F_CONTIGUOUS=f, OWNDATA=False, WRITEABLE=True)

    def __getattr__(self, name):
        try:
            return self[name.upper()]
        except KeyError:
            raise AttributeError(name) from None


def _is_contiguous(shape, estrides):
    step = 1
    for n, s in zip(reversed(shape), reversed(estrides)):
        if n == 1:
            continue
        if n == 0:
            return True
        if s != step:
            return False
        step *= n
    return True


def _binary_ops():
    table = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
             "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power,
             "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor,
             "lshift": np.left_shift, "rshift": np.right_shift, "divmod": np.divmod}
    for name, uf in table.items():
        def fwd(self, other, uf=uf):
            return uf(self, other)

        def rev(self, other, uf=uf):
            return uf(other, self)

        def inplace(self, other, uf=uf):
            return uf(self, other, out=self)
        setattr(DeviceArray, f"__{name}__", fwd)
        setattr(DeviceArray, f"__r{name}__", rev)
        if name != "divmod":
            setattr(DeviceArray, f"__i{name}__", inplace)
    for name, uf in {"lt": np.less, "le": np.less_equal, "gt": np.greater,
                     "ge": np.greater_equal, "eq": np.equal, "ne": np.not_equal}.items():
        def cmp(self, other, uf=uf):
            return uf(self, other)
        setattr(DeviceArray, f"__{name}__", cmp)


_binary_ops()


def _methods():
    """ndarray methods that are the numpy function of the same name applied to self."""
    names = ("sum", "mean", "max", "min", "argmax", "argmin", "var", "std", "prod", "cumsum",
             "cumprod", "any", "all", "clip", "round", "nonzero", "argsort", "repeat", "take",
             "diagonal", "dot", "trace", "ptp", "searchsorted", "conj", "put")
    for name in names:
        fn = getattr(np, name)

        def method(self, *args, _fn=fn, **kwargs):
            return _fn(self, *args, **kwargs)
        method.__name__ = name
        method.__doc__ = f"np.{name}(self, ...)"
        setattr(DeviceArray, name, method)

    def sort(self, axis=-1, kind=None, order=None):
        """In place, as ndarray.sort."""
        self[...] = np.sort(self, axis=axis, kind=kind)
    DeviceArray.sort = sort

    def conjugate(self):
        return self
    DeviceArray.conjugate = conjugate


_methods()


def is_device_array(x):
    return isinstance(x, DeviceArray)


# ---------------------------------------------------------------- transfers
def transfer_log():
    """collections.Counter of (direction, what): host<->device copies since reset_transfers()."""
    return collections.Counter(_common_log())


def transfer_count():
    """Number of host<->device copies (both directions) since reset_transfers()."""
    return sum(_common_log().values())


def reset_transfers():
    _common_log().clear()


def synchronize():
    """Wait until the device has finished all queued work; raise IndexError if an indexing
    kernel met an out-of-range device index meanwhile."""
    cuda.synchronize()
    check_device_errors()


memory_allocated = memory.memory_allocated
max_memory_allocated = memory.max_memory_allocated
reset_peak_memory_stats = memory.reset_peak_memory_stats
memory_reserved = memory.memory_reserved
max_memory_reserved = memory.max_memory_reserved
memory_stats = memory.memory_stats
empty_cache = memory.empty_cache


def _new(shape, dtype, device_index=0):
    """An uninitialized C-contiguous DeviceArray from the caching allocator."""
    shape = _normalize_shape(shape)
    dtype = _check_dtype(dtype, "empty")
    n = _prod(shape)
    buf = memory.alloc_typed(n, dtype)
    return DeviceArray(buf, 0, shape, _c_strides(shape), dtype, device_index)


def from_host(a, dtype=None, device_index=0, what="from_host"):
    """A new DeviceArray with the values of host array `a` (one counted host-to-device copy)."""
    if isinstance(a, DeviceArray):
        return a.astype(dtype) if dtype is not None and np.dtype(dtype) != a.dtype else a
    host = np.asarray(a, dtype=dtype)
    if host.dtype.kind not in _SUPPORTED_KINDS:
        raise TypeError(f"{what}: dtype {host.dtype} is not supported on the cuda device "
                        f"(bool, integer and float dtypes are)")
    out = _new(host.shape, host.dtype, device_index)
    if host.size:
        out._buf.copy_to_device(np.ascontiguousarray(host).reshape(-1))
        record_transfer("h2d", what)
    return out


def to_host(d, what="to_host"):
    """A new host numpy array with the values of `d` (one counted device-to-host copy)."""
    if not isinstance(d, DeviceArray):
        return np.asarray(d)
    if d.size == 0:
        return np.empty(d.shape, d.dtype)
    lo, hi = d._span()
    span = d._buf[lo:hi].copy_to_host()
    record_transfer("d2h", what)
    check_device_errors()
    if d.is_c_contiguous() and hi - lo == d.size:
        return span.reshape(d.shape)
    view = np.lib.stride_tricks.as_strided(span[d._offset - lo:], d.shape, d.strides)
    return np.array(view, order="C")


def _store_host(d, values, what):
    """d[...] = values (host), numpy's casting and broadcasting, through counted copies."""
    host = np.empty(d.shape, d.dtype)
    host[...] = values
    if d.size == 0:
        return
    lo, hi = d._span()
    if d.is_c_contiguous() and hi - lo == d.size:
        d._buf[lo:hi].copy_to_device(host.reshape(-1))
        record_transfer("h2d", what)
        return
    _copy_into(d, from_host(host, what=what))     # one upload, then a device copy


def wrap(raw, device_index=0):
    """A DeviceArray over a numba device array (no copy): for results of *_device kernels."""
    if isinstance(raw, DeviceArray):
        return raw
    if not hasattr(raw, "copy_to_host"):       # another CUDA-array-interface object
        if SIMULATOR or not hasattr(raw, "__cuda_array_interface__"):
            raise TypeError(f"wrap: expected a numba device array, got {type(raw).__name__}")
        raw = cuda.as_cuda_array(raw)
    dtype = _check_dtype(raw.dtype, "wrap")
    shape = tuple(raw.shape)
    n = _prod(shape)
    if n == 0:
        return _new(shape, dtype, device_index)
    if raw.is_c_contiguous():
        flat = raw.reshape((n,)) if raw.ndim != 1 else raw
        return DeviceArray(flat, 0, shape, _c_strides(shape), dtype, device_index)
    # A strided numba view: copy it through the host (counted); numba kernels return
    # contiguous arrays, so this is the rare case.
    return from_host(raw.copy_to_host(), what="wrap")


# ---------------------------------------------------------------- creation
def empty(shape, dtype=np.float32, device_index=0):
    return _new(shape, dtype, device_index)


def full(shape, fill_value, dtype=None, device_index=0):
    if dtype is None:
        dtype = np.asarray(fill_value).dtype
    out = _new(shape, dtype, device_index)
    out.fill(fill_value)
    return out


def zeros(shape, dtype=np.float32, device_index=0):
    return full(shape, 0, dtype, device_index)


def ones(shape, dtype=np.float32, device_index=0):
    return full(shape, 1, dtype, device_index)


def arange(start, stop=None, step=1, dtype=None, device_index=0):
    """np.arange on the device: start + i * step, numpy's length and dtype."""
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ZeroDivisionError("arange: step must not be zero")
    n = max(int(np.ceil((stop - start) / step)), 0)
    dtype = np.arange(start, start + step, step, dtype=dtype).dtype
    out = _new((n,), dtype, device_index)
    ak.iota(out._buf, start, step)
    return out


def empty_like(d, dtype=None, shape=None, device_index=None):
    return _new(d.shape if shape is None else shape, d.dtype if dtype is None else dtype,
                d.device_index if device_index is None else device_index)


def zeros_like(d, dtype=None, shape=None):
    out = empty_like(d, dtype, shape)
    out.fill(0)
    return out


def ones_like(d, dtype=None, shape=None):
    out = empty_like(d, dtype, shape)
    out.fill(1)
    return out


def full_like(d, fill_value, dtype=None, shape=None):
    out = empty_like(d, dtype, shape)
    out.fill(fill_value)
    return out


# ---------------------------------------------------------------- the counted host fallback
def _down(x, what):
    """Host values for a (possibly nested list/tuple of) DeviceArray operand(s): counted."""
    if isinstance(x, DeviceArray):
        return to_host(x, what)
    if type(x) in (list, tuple):
        return type(x)(_down(v, what) for v in x)
    return x


def _up(x, what):
    """Device values for a numpy result (arrays and numpy scalars): counted."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in _SUPPORTED_KINDS:
            raise TypeError(f"{what}: its result has dtype {x.dtype}, which a cuda DeviceArray "
                            f"cannot hold")
        return from_host(x, what=what)
    if isinstance(x, np.generic):
        return _up(np.asarray(x), what)
    if type(x) in (list, tuple):
        return type(x)(_up(v, what) for v in x)
    return x


def _fallback(what, fn, args, kwargs):
    """fn(*args, **kwargs) with numpy on the host: device operands down, results up (every copy
    counted and logged under `what`). A DeviceArray `out=` is filled in place and returned."""
    out = kwargs.get("out")
    outs = out if isinstance(out, tuple) else (out,)
    if any(isinstance(o, DeviceArray) for o in outs):
        host_outs = tuple(to_host(o, what) if isinstance(o, DeviceArray) else o for o in outs)
        kwargs = dict(kwargs, out=host_outs if isinstance(out, tuple) else host_outs[0])
        args = _down(args, what)
        kwargs = {k: (v if k == "out" else _down(v, what)) for k, v in kwargs.items()}
        result = fn(*args, **kwargs)
        for o, h in zip(outs, host_outs):
            if isinstance(o, DeviceArray):
                _store_host(o, h, what)
        # map the host outs in the result back to their device arrays
        pairs = {id(h): o for o, h in zip(outs, host_outs)}
        if isinstance(result, tuple):
            return tuple(pairs.get(id(r), r) for r in result)
        return pairs.get(id(result), result)
    try:
        result = fn(*_down(args, what), **_down_kwargs(kwargs, what))
    except TypeError as e:
        raise TypeError(f"{what} on a cuda DeviceArray: {e}") from e
    return _up(result, what)


def _down_kwargs(kwargs, what):
    return {k: _down(v, what) for k, v in kwargs.items()}


def _ufunc_name(ufunc, method):
    return ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"


def _dispatch_ufunc(ufunc, method, inputs, kwargs):
    what = _ufunc_name(ufunc, method)
    for x in inputs + tuple(kwargs.get("out", None) or ()):
        if not isinstance(x, (DeviceArray, np.ndarray, numbers.Number, np.generic, list,
                              tuple, type(None))):
            return NotImplemented
    impl = _UFUNC_IMPLS.get((ufunc, method))
    if impl is not None:
        result = impl(ufunc, inputs, kwargs)
        if result is not NotImplemented:
            return result
    if method == "at":
        target = inputs[0]
        if not isinstance(target, DeviceArray):      # a host target keeps its values on the host
            ufunc.at(target, *_down(tuple(inputs[1:]), what))
            return None
        host = to_host(target, what)
        ufunc.at(host, *_down(tuple(inputs[1:]), what))
        _store_host(target, host, what)
        return None
    return _fallback(what, getattr(ufunc, method), inputs, kwargs)


# (ufunc, method) -> impl(ufunc, inputs, kwargs) returning a result or NotImplemented
_UFUNC_IMPLS = {}
# numpy function -> device implementation with the function's signature
_FUNCTIONS = {}


def _implements(*funcs):
    def deco(impl):
        for f in funcs:
            _FUNCTIONS[f] = impl
        return impl
    return deco


# ---------------------------------------------------------------- views
def _axis(axis, ndim, what="axis"):
    a = operator.index(axis)
    if not -ndim <= a < ndim:
        raise np.exceptions.AxisError(f"{what} {axis} is out of bounds for array of dimension "
                                      f"{ndim}")
    return a % ndim if ndim else 0


def _reshape(d, shape, order="C"):
    shape = (shape,) if isinstance(shape, (numbers.Integral, np.integer)) else tuple(shape)
    shape = tuple(operator.index(s) for s in shape)
    if order not in ("C", "A"):
        return _fallback("reshape", lambda a: a.reshape(shape, order=order), (d,), {})
    unknown = [i for i, s in enumerate(shape) if s == -1]
    if len(unknown) > 1 or any(s < -1 for s in shape):
        raise ValueError("can only specify one unknown dimension")
    known = _prod(s for s in shape if s != -1)
    if unknown:
        if known == 0 or d.size % known:
            raise ValueError(f"cannot reshape array of size {d.size} into shape {shape}")
        shape = tuple(d.size // known if s == -1 else s for s in shape)
    if _prod(shape) != d.size:
        raise ValueError(f"cannot reshape array of size {d.size} into shape {shape}")
    if d.is_c_contiguous():
        return d._view(d._offset, shape, _c_strides(shape))
    strides = _nocopy_strides(d, shape)
    if strides is not None:
        return d._view(d._offset, shape, strides)
    src = d.copy()
    return src._view(src._offset, shape, _c_strides(shape))


def _nocopy_strides(d, shape):
    """Element strides that show d's elements in `shape` without a copy (numpy's rule), or
    None. numpy derives them on a stand-in with d's strides that is never read."""
    stand_in = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=d.shape,
                                               strides=d._estrides)
    try:
        r = np.reshape(stand_in, shape, copy=False)
    except ValueError:
        return None
    return r.strides


@_implements(np.reshape)
def _np_reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    shape = newshape if shape is None else shape
    out = _reshape(_as_device(a), shape, order)
    return out.copy() if copy else out


@_implements(np.ravel)
def _np_ravel(a, order="C"):
    return _reshape(_as_device(a), (-1,), order)


def _transpose(d, axes=None):
    if axes is None:
        axes = tuple(range(d.ndim))[::-1]
    axes = tuple(_axis(a, d.ndim) for a in axes)
    if sorted(axes) != list(range(d.ndim)):
        raise ValueError("axes don't match array")
    return d._view(d._offset, [d._shape[a] for a in axes], [d._estrides[a] for a in axes])


@_implements(np.transpose)
def _np_transpose(a, axes=None):
    return _transpose(_as_device(a), axes)


@_implements(np.swapaxes)
def _swapaxes(a, axis1, axis2):
    a = _as_device(a)
    perm = list(range(a.ndim))
    i, j = _axis(axis1, a.ndim), _axis(axis2, a.ndim)
    perm[i], perm[j] = perm[j], perm[i]
    return _transpose(a, perm)


@_implements(np.moveaxis)
def _np_moveaxis(a, source, destination):
    a = _as_device(a)
    src = [source] if isinstance(source, (numbers.Integral, np.integer)) else list(source)
    dst = ([destination] if isinstance(destination, (numbers.Integral, np.integer))
           else list(destination))
    src = [_axis(s, a.ndim, "source") for s in src]
    dst = [_axis(s, a.ndim, "destination") for s in dst]
    if len(src) != len(dst):
        raise ValueError("`source` and `destination` arguments must have the same number of "
                         "elements")
    order = [n for n in range(a.ndim) if n not in src]
    for d_, s in sorted(zip(dst, src)):
        order.insert(d_, s)
    return _transpose(a, order)


@_implements(np.squeeze)
def _squeeze(a, axis=None):
    a = _as_device(a)
    if axis is None:
        keep = [i for i, n in enumerate(a._shape) if n != 1]
    else:
        axes = {_axis(x, a.ndim) for x in ((axis,) if isinstance(axis, (numbers.Integral,
                                                                          np.integer))
                                           else axis)}
        for x in axes:
            if a._shape[x] != 1:
                raise ValueError("cannot select an axis to squeeze out which has size not "
                                 "equal to one")
        keep = [i for i in range(a.ndim) if i not in axes]
    return a._view(a._offset, [a._shape[i] for i in keep], [a._estrides[i] for i in keep])


@_implements(np.expand_dims)
def _np_expand_dims(a, axis):
    a = _as_device(a)
    axes = (axis,) if isinstance(axis, (numbers.Integral, np.integer)) else tuple(axis)
    nd = a.ndim + len(axes)
    axes = sorted(_axis(x, nd) for x in axes)
    if len(set(axes)) != len(axes):
        raise ValueError("repeated axis")
    shape, strides = list(a._shape), list(a._estrides)
    for x in axes:
        shape.insert(x, 1)
        strides.insert(x, 0)
    return a._view(a._offset, shape, strides)


@_implements(np.broadcast_to)
def _np_broadcast_to(array, shape, subok=False):
    a = _as_device(array)
    shape = _normalize_shape(shape)
    if len(shape) < a.ndim:
        raise ValueError("cannot broadcast a non-scalar to a scalar array")
    pad = len(shape) - a.ndim
    strides = []
    for i, n in enumerate(shape):
        if i < pad:
            strides.append(0)
            continue
        m, s = a._shape[i - pad], a._estrides[i - pad]
        if m == n:
            strides.append(s if n != 1 else 0)
        elif m == 1:
            strides.append(0)
        else:
            raise ValueError(f"operands could not be broadcast together with remapped shapes "
                             f"[original->remapped]: {a.shape} and requested shape {shape}")
    return a._view(a._offset, shape, strides)


@_implements(np.broadcast_arrays)
def _np_broadcast_arrays(*args, subok=False):
    shape = np.broadcast_shapes(*(np.shape(x) for x in args))
    return tuple(_np_broadcast_to(x, shape) for x in args)


@_implements(np.flip)
def _np_flip(m, axis=None):
    a = _as_device(m)
    axes = range(a.ndim) if axis is None else (
        (axis,) if isinstance(axis, (numbers.Integral, np.integer)) else axis)
    off, strides = a._offset, list(a._estrides)
    for x in {_axis(x, a.ndim) for x in axes}:
        if a._shape[x]:
            off += (a._shape[x] - 1) * strides[x]
        strides[x] = -strides[x]
    return a._view(off, a._shape, strides)


@_implements(np.diagonal)
def _np_diagonal(a, offset=0, axis1=0, axis2=1):
    a = _as_device(a)
    i, j = _axis(axis1, a.ndim), _axis(axis2, a.ndim)
    if i == j:
        raise ValueError("axis1 and axis2 cannot be the same")
    n, m = a._shape[i], a._shape[j]
    off = a._offset
    if offset >= 0:
        length = max(min(n, m - offset), 0)
        off += offset * a._estrides[j] if length else 0
    else:
        length = max(min(n + offset, m), 0)
        off += -offset * a._estrides[i] if length else 0
    keep = [k for k in range(a.ndim) if k not in (i, j)]
    return a._view(off, [a._shape[k] for k in keep] + [length],
                   [a._estrides[k] for k in keep] + [a._estrides[i] + a._estrides[j]])


@_implements(np.shape)
def _np_shape(a):
    return a.shape


@_implements(np.ndim)
def _np_ndim(a):
    return a.ndim


@_implements(np.size)
def _np_size(a, axis=None):
    return a.size if axis is None else a.shape[axis]


def _dtype_stand_in(x):
    return np.empty((0,) * x.ndim, x.dtype) if isinstance(x, DeviceArray) else x


@_implements(np.result_type)
def _np_result_type(*arrays_and_dtypes):
    return np.result_type(*(_dtype_stand_in(x) for x in arrays_and_dtypes))


@_implements(np.may_share_memory, np.shares_memory)
def _np_may_share_memory(a, b, max_work=None):
    if not (isinstance(a, DeviceArray) and isinstance(b, DeviceArray)):
        return False
    if a._buf is not b._buf and not _same_buffer(a._buf, b._buf):
        return False
    (lo1, hi1), (lo2, hi2) = a._span(), b._span()
    return lo1 < hi2 and lo2 < hi1


def _same_buffer(x, y):
    if SIMULATOR:
        return x._ary.__array_interface__["data"][0] == y._ary.__array_interface__["data"][0]
    return x.device_ctypes_pointer.value == y.device_ctypes_pointer.value


@_implements(np.atleast_1d)
def _np_atleast_1d(*arys):
    res = [a.reshape(1) if a.ndim == 0 else a for a in map(_as_device, arys)]
    return res[0] if len(res) == 1 else tuple(res)


@_implements(np.copy)
def _np_copy(a, order="K", subok=False):
    return _copy(_as_device(a))


@_implements(np.ascontiguousarray)
def _np_ascontiguousarray(a, dtype=None, *, like=None):
    a = _as_device(a)
    if dtype is not None and np.dtype(dtype) != a.dtype:
        return a.astype(dtype)
    return a.contiguous()


def _as_device(x, what="operand"):
    """A DeviceArray for x: DeviceArrays as they are, host arrays uploaded (counted)."""
    if isinstance(x, DeviceArray):
        return x
    return from_host(np.asarray(x), what=what)


# ---------------------------------------------------------------- indexing
def _is_basic(k):
    return (k is None or k is Ellipsis or isinstance(k, slice)
            or (isinstance(k, (numbers.Integral, np.integer)) and not isinstance(k, (bool,
                                                                                    np.bool_))))


def _basic_view(d, key):
    """The view d[key] for a tuple of ints, slices, None and Ellipsis."""
    consumed = sum(1 for k in key if k is not None and k is not Ellipsis)
    if sum(1 for k in key if k is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if consumed > d.ndim:
        raise IndexError(f"too many indices for array: array is {d.ndim}-dimensional, but "
                         f"{consumed} were indexed")
    off, shape, strides, dim = d._offset, [], [], 0
    for k in key:
        if k is None:
            shape.append(1)
            strides.append(0)
        elif k is Ellipsis:
            for _ in range(d.ndim - consumed):
                shape.append(d._shape[dim])
                strides.append(d._estrides[dim])
                dim += 1
        elif isinstance(k, slice):
            n, s = d._shape[dim], d._estrides[dim]
            start, stop, step = k.indices(n)
            length = len(range(start, stop, step))
            if length:
                off += start * s
            shape.append(length)
            strides.append(s * step)
            dim += 1
        else:
            n, i = d._shape[dim], operator.index(k)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {dim} with size {n}")
            off += (i % n) * d._estrides[dim]
            dim += 1
    shape.extend(d._shape[dim:])
    strides.extend(d._estrides[dim:])
    return d._view(off, shape, strides)


def _key_tuple(key):
    return key if isinstance(key, tuple) else (key,)


def _getitem(d, key):
    key = _key_tuple(key)
    if all(_is_basic(k) for k in key):
        return _basic_view(d, key)
    return _advanced_getitem(d, key)


def _advanced_getitem(d, key):
    try:
        shape, pos = _advanced_positions(d, key)
    except _NoDevicePath:
        return _fallback("__getitem__", operator.getitem, (d, key), {})
    out = _new(shape, d.dtype, d.device_index)
    ak.gather(d._buf, pos._buf, out._buf)
    return out


def _setitem(d, key, value):
    key = _key_tuple(key)
    if all(_is_basic(k) for k in key):
        target = _basic_view(d, key)
        _assign(target, value)
        return
    _advanced_setitem(d, key, value)


def _masked_fill(d, key, value):
    """d[mask] = scalar as an elementwise select: no count of the mask, so no copy to the host
    (the general boolean path needs the count). False when the key is not of that form."""
    if len(key) != 1 or not _is_scalar(value) and not (isinstance(value, DeviceArray)
                                                       and value.ndim == 0):
        return False
    mask = key[0]
    if not (isinstance(mask, (np.ndarray, DeviceArray)) and mask.dtype == np.bool_
            and mask.ndim and mask.shape == d.shape[:mask.ndim]):
        return False
    mask = _as_device(mask, "__setitem__")
    mask = mask.reshape(mask.shape + (1,) * (d.ndim - mask.ndim))
    _assign(d, _np_where(mask, value, d))
    return True


def _advanced_setitem(d, key, value):
    if _masked_fill(d, key, value):
        return
    try:
        shape, pos = _advanced_positions(d, key)
    except _NoDevicePath:
        host = to_host(d, "__setitem__")
        host[_down(key, "__setitem__")] = _down(value, "__setitem__")
        _store_host(d, host, "__setitem__")
        return
    vals = _values_for(value, shape, d.dtype)
    ak.scatter("set", d._buf, pos._buf, vals._buf)


def _values_for(value, shape, dtype):
    """value broadcast to shape and cast to dtype, as a fresh C-contiguous DeviceArray."""
    vals = _new(shape, dtype)
    _assign(vals, value)
    return vals


def _is_scalar(x):
    return (isinstance(x, (numbers.Number, np.generic))
            or (isinstance(x, np.ndarray) and x.ndim == 0))


def _assign(target, value):
    """target[...] = value with numpy's broadcasting and casting."""
    if _is_scalar(value):
        _fill(target, value)
    elif isinstance(value, DeviceArray):
        _copy_into(target, value)
    else:
        _store_host(target, value, "__setitem__")


def _copy_into(target, value):
    """target[...] = value (DeviceArray): numpy's broadcasting and unsafe casting."""
    if value.size and np.may_share_memory(target, value) and not _same_view(target, value):
        value = value.copy()          # overlapping views: read everything before writing
    shape = target.shape
    strides = _broadcast_strides(value, shape, "could not broadcast input array from shape "
                                 f"{value.shape} into shape {shape}")
    ak.elementwise("identity", (value.dtype, value.dtype),
                   (target._buf, target._offset, target._shape, target._estrides),
                   [("a", value._buf, value._offset, strides)])


def _same_view(x, y):
    return (x._buf is y._buf and x._offset == y._offset and x._shape == y._shape
            and x._estrides == y._estrides)


def _broadcast_strides(d, shape, message=None):
    """d's element strides for a view broadcast to `shape` (0 along broadcast dimensions)."""
    pad = len(shape) - d.ndim
    if pad < 0:
        raise ValueError(message or f"cannot broadcast shape {d.shape} to {shape}")
    strides = [0] * pad
    for n, m, s in zip(shape[pad:], d._shape, d._estrides):
        if m == n:
            strides.append(s if n != 1 else 0)
        elif m == 1:
            strides.append(0)
        else:
            raise ValueError(message or f"operands could not be broadcast together with shapes "
                             f"{d.shape} {tuple(shape)}")
    return tuple(strides)


def _fill(d, value):
    if isinstance(value, DeviceArray):
        _copy_into(d, value)
        return
    host = np.empty((), d.dtype)
    host[()] = value                   # numpy's casting (and its errors)
    ak.fill(d._buf, d._offset, d._shape, d._estrides, host[()])


def _copy(d):
    out = _new(d.shape, d.dtype, d.device_index)
    _copy_into(out, d)
    return out


def _astype(d, dtype):
    out = _new(d.shape, dtype, d.device_index)
    _copy_into(out, d)
    return out


class _NoDevicePath(Exception):
    """Raised inside a device implementation for a case it leaves to the host fallback."""


# ---------------------------------------------------------------- elementwise ufuncs
def _operand(x, what):
    """('a', DeviceArray) or ('s', value, dtype-or-python-type) for a ufunc operand."""
    if isinstance(x, DeviceArray):
        return ("a", x)
    if isinstance(x, np.generic):
        return ("s", x, x.dtype)
    if isinstance(x, np.ndarray) and x.ndim == 0:
        return ("s", x[()], x.dtype)
    if isinstance(x, (bool, int, float)):
        return ("s", x, type(x))
    if isinstance(x, complex):
        raise _NoDevicePath
    arr = np.asarray(x)
    if arr.dtype.kind not in _SUPPORTED_KINDS:
        raise _NoDevicePath
    return ("a", from_host(arr, what=what))


def _loop_dtypes(ufunc, dtypes, out_dtype=None):
    loop = ufunc.resolve_dtypes(tuple(dtypes) + (out_dtype,))
    if any(np.dtype(t).kind not in _SUPPORTED_KINDS or np.dtype(t) == np.float16
           for t in loop):
        raise _NoDevicePath         # (float16 math needs a GPU-specific path: host fallback)
    return loop


def _elementwise_call(name, ufunc_or_none, inputs, out=None, dtype=None, loop=None,
                      casting="same_kind"):
    """name(*inputs) on the device with numpy's broadcasting and type rules; returns out."""
    ops = [_operand(x, name) for x in inputs]
    if loop is None:
        loop = _loop_dtypes(ufunc_or_none,
                            [o[1].dtype if o[0] == "a" else o[2] for o in ops],
                            None if dtype is None else np.dtype(dtype))
    shapes = [o[1].shape for o in ops if o[0] == "a"]
    if out is not None:
        shape = np.broadcast_shapes(*shapes, out.shape)
        if shape != out.shape:
            raise ValueError(f"non-broadcastable output operand with shape {out.shape} doesn't "
                             f"match the broadcast shape {shape}")
        if casting != "unsafe" and not np.can_cast(loop[-1], out.dtype, casting=casting):
            raise TypeError(f"Cannot cast ufunc '{name}' output from {np.dtype(loop[-1])!r} "
                            f"to {out.dtype!r} with casting rule '{casting}'")
        target = out
        for o in ops:
            if (o[0] == "a" and o[1].size and np.may_share_memory(o[1], out)
                    and not _same_view(o[1], out)):
                target = _new(shape, out.dtype, out.device_index)
                break
    else:
        shape = np.broadcast_shapes(*shapes) if shapes else ()
        target = _new(shape, loop[-1])
    operands = []
    for o, t in zip(ops, loop):
        if o[0] == "a":
            d = o[1]
            operands.append(("a", d._buf, d._offset, _broadcast_strides(d, shape)))
        else:
            operands.append(("s", np.dtype(t).type(o[1])))
    ak.elementwise(name, loop, (target._buf, target._offset, target._shape, target._estrides),
                   operands)
    if out is not None and target is not out:
        _copy_into(out, target)
    return out if out is not None else target


def _ufunc_call(ufunc, inputs, kwargs):
    name = ufunc.__name__
    if ufunc is np.matmul:
        return _matmul(*inputs, **kwargs)
    if ufunc.nout != 1 or name not in ak.OPS or ak.OPS[name][0] != ufunc.nin:
        return NotImplemented
    kwargs = dict(kwargs)
    out = kwargs.pop("out", None)
    if isinstance(out, tuple):
        out = out[0]
    dtype = kwargs.pop("dtype", None)
    # 'unsafe' and 'same_kind' only differ in the check of the output's dtype; the stricter
    # rules also constrain the inputs' casts, which the host fallback applies
    casting = kwargs.pop("casting", "same_kind")
    if kwargs.pop("where", True) is not True or casting not in ("same_kind", "unsafe") or \
            kwargs or not (out is None or isinstance(out, DeviceArray)):
        return NotImplemented
    try:
        return _elementwise_call(name, ufunc, inputs, out, dtype, casting=casting)
    except _NoDevicePath:
        return NotImplemented


for _name in ak.OPS:
    _uf = getattr(np, _name, None)
    if isinstance(_uf, np.ufunc):
        _UFUNC_IMPLS[(_uf, "__call__")] = _ufunc_call
_UFUNC_IMPLS[(np.matmul, "__call__")] = _ufunc_call


def erf(x):
    """The error function, elementwise (numpy has no ufunc for it)."""
    x = _as_device(x, "erf")
    t = np.result_type(x.dtype, np.float16)
    return _elementwise_call("erf", None, (x,), loop=(t, t))


def sigmoid(x):
    """1 / (1 + exp(-x)), elementwise, without overflow for large |x|."""
    x = _as_device(x, "sigmoid")
    t = np.result_type(x.dtype, np.float16)
    return _elementwise_call("sigmoid", None, (x,), loop=(t, t))


def _weak_stand_in(x):
    """What np.result_type should see for an operand: dtype stand-ins for device arrays."""
    if isinstance(x, DeviceArray):
        return _dtype_stand_in(x)
    if isinstance(x, (bool, int, float, np.generic, np.ndarray)):
        return x
    return np.asarray(x)


@_implements(np.where)
def _np_where(condition, x=None, y=None):
    if x is None and y is None:
        return _np_nonzero(condition)
    if x is None or y is None:
        raise ValueError("either both or neither of x and y should be given")
    t = np.result_type(_weak_stand_in(x), _weak_stand_in(y))
    return _elementwise_call("where", None, (condition, x, y), loop=(np.bool_, t, t, t))


@_implements(np.clip)
def _np_clip(a, a_min=np._NoValue, a_max=np._NoValue, out=None, *, min=np._NoValue,
             max=np._NoValue, **kwargs):
    lo = a_min if a_min is not np._NoValue else (None if min is np._NoValue else min)
    hi = a_max if a_max is not np._NoValue else (None if max is np._NoValue else max)
    if lo is None and hi is None:
        raise ValueError("One of max or min must be given")
    if kwargs:
        return _fallback("clip", np.clip, (a, lo, hi), dict(kwargs, out=out))
    ops = [a] + [v for v in (lo, hi) if v is not None]
    t = np.result_type(*(_weak_stand_in(v) for v in ops))
    name = "clip" if len(ops) == 3 else ("clip_lo" if lo is not None else "clip_hi")
    return _elementwise_call(name, None, tuple(ops), out=out, loop=(t,) * (len(ops) + 1))


# ---------------------------------------------------------------- reductions
def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (numbers.Integral, np.integer)) else tuple(axis)
    out = tuple(_axis(a, ndim) for a in axes)
    if len(set(out)) != len(out):
        raise ValueError("duplicate value in 'axis'")
    return out


_REDUCE_NAMES = {"sum": "add", "prod": "multiply", "max": "maximum", "min": "minimum",
                 "any": "logical_or", "all": "logical_and", "argmax": "argmax",
                 "argmin": "argmin"}


def _reduce(op, a, axis=None, dtype=None, out=None, keepdims=False, **extra):
    """The reduction `op` of DeviceArray-able `a` over `axis`, numpy's result dtype."""
    initial = extra.pop("initial", np._NoValue)
    if extra.pop("where", True) is not True or extra or (
            initial is not np._NoValue and op not in ("sum", "prod", "max", "min")):
        raise _NoDevicePath
    a = _as_device(a, op)
    if initial is not np._NoValue:
        # numpy folds `initial` in as one more operand of the reduction
        uf = {"sum": np.add, "prod": np.multiply, "max": np.maximum, "min": np.minimum}[op]
        if _prod(a.shape[i] for i in _axes(axis, a.ndim)) == 0:
            shape = [1 if i in _axes(axis, a.ndim) else n for i, n in enumerate(a.shape)]
            res = _reduce(op, zeros(shape, a.dtype), axis, dtype, None, keepdims)
            res.fill(initial)
        else:
            res = uf(_reduce(op, a, axis, dtype, None, keepdims), initial)
            res = res.astype(uf.reduce(np.zeros(1, a.dtype), dtype=dtype).dtype, copy=False)
        if out is not None:
            _assign(out, res)
            return out
        return res
    axes = _axes(axis, a.ndim)
    kept = [i for i in range(a.ndim) if i not in axes]
    kshape = [a._shape[i] for i in kept]
    rshape = [a._shape[i] for i in axes]
    K = _prod(rshape)
    if op in ("sum", "prod"):
        ufunc = np.add if op == "sum" else np.multiply
        res = ufunc.reduce(np.zeros(1, a.dtype), dtype=dtype).dtype
        acc = res
    elif op in ("max", "min"):
        if K == 0 and _prod(kshape):
            raise ValueError(f"zero-size array to reduction operation "
                             f"{_REDUCE_NAMES[op]} which has no identity")
        res = acc = a.dtype if dtype is None else np.dtype(dtype)
    elif op in ("any", "all"):
        res = acc = np.dtype(np.bool_)
    else:
        if K == 0:
            raise ValueError(f"attempt to get {op} of an empty sequence")
        res, acc = np.dtype(np.int64), a.dtype
    result = _new(kshape, res, a.device_index)
    if K == 0 and op in ("sum", "prod", "any", "all"):
        result.fill({"sum": 0, "prod": 1, "any": False, "all": True}[op])
    else:
        ak.reduce(op, (a._buf, a._offset), kshape, [a._estrides[i] for i in kept], rshape,
                  [a._estrides[i] for i in axes], acc, result._buf)
    if keepdims:
        result = result.reshape([1 if i in axes else n for i, n in enumerate(a._shape)])
    if out is not None:
        _assign(out, result)
        return out
    return result


def _reduction(op):
    def impl(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
        try:
            return _reduce(op, a, axis, dtype, out, keepdims, **kwargs)
        except _NoDevicePath:
            fn = {"max": np.max, "min": np.min}.get(op, getattr(np, op))
            kwargs = dict(kwargs, axis=axis, out=out, keepdims=keepdims)
            if op in ("sum", "prod"):
                kwargs["dtype"] = dtype
            return _fallback(op, fn, (a,), kwargs)
    return impl


_implements(np.sum)(_reduction("sum"))
_implements(np.prod)(_reduction("prod"))


@_implements(np.max, np.amax)
def _np_max(a, axis=None, out=None, keepdims=False, **kwargs):
    return _reduction("max")(a, axis, None, out, keepdims, **kwargs)


@_implements(np.min, np.amin)
def _np_min(a, axis=None, out=None, keepdims=False, **kwargs):
    return _reduction("min")(a, axis, None, out, keepdims, **kwargs)


@_implements(np.any)
def _np_any(a, axis=None, out=None, keepdims=False, **kwargs):
    return _reduction("any")(a, axis, None, out, keepdims, **kwargs)


@_implements(np.all)
def _np_all(a, axis=None, out=None, keepdims=False, **kwargs):
    return _reduction("all")(a, axis, None, out, keepdims, **kwargs)


def _arg_reduction(op):
    def impl(a, axis=None, out=None, *, keepdims=False):
        if axis is not None and not isinstance(axis, (numbers.Integral, np.integer)):
            raise TypeError(f"'{type(axis).__name__}' object cannot be interpreted as an "
                            f"integer")
        return _reduce(op, a, axis, None, out, keepdims)
    return impl


_implements(np.argmax)(_arg_reduction("argmax"))
_implements(np.argmin)(_arg_reduction("argmin"))


def _count(a, axis):
    return _prod(a.shape[i] for i in _axes(axis, a.ndim))


@_implements(np.mean)
def _np_mean(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    a = _as_device(a, "mean")
    if kwargs:
        return _fallback("mean", np.mean, (a,), dict(kwargs, axis=axis, dtype=dtype, out=out,
                                                     keepdims=keepdims))
    acc = dtype if dtype is not None else (np.float64 if a.dtype.kind in "biu" else a.dtype)
    total = _reduce("sum", a, axis, acc, None, keepdims)
    return np.true_divide(total, _count(a, axis), out=out)


@_implements(np.var)
def _np_var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    a = _as_device(a, "var")
    if kwargs:
        return _fallback("var", np.var, (a,), dict(kwargs, axis=axis, dtype=dtype, out=out,
                                                   ddof=ddof, keepdims=keepdims))
    if a.dtype.kind in "biu":
        a = a.astype(np.float64 if dtype is None else dtype)
    elif dtype is not None:
        a = a.astype(dtype)
    centered = a - _np_mean(a, axis, keepdims=True)
    total = _reduce("sum", centered * centered, axis, None, None, keepdims)
    return np.true_divide(total, builtins.max(_count(a, axis) - ddof, 0), out=out)


@_implements(np.std)
def _np_std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    return np.sqrt(_np_var(a, axis, dtype, None, ddof, keepdims, **kwargs), out=out)


def _reduce_ufunc(ufunc, inputs, kwargs):
    op = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min",
          "logical_or": "any", "logical_and": "all"}.get(ufunc.__name__)
    if op is None or len(inputs) != 1:
        return NotImplemented
    kwargs = dict(kwargs)
    axis = kwargs.pop("axis", 0)
    try:
        return _reduce(op, inputs[0], axis, kwargs.pop("dtype", None), kwargs.pop("out", None),
                       kwargs.pop("keepdims", False), **kwargs)
    except _NoDevicePath:
        return NotImplemented


for _uf in (np.add, np.multiply, np.maximum, np.minimum, np.logical_or, np.logical_and):
    _UFUNC_IMPLS[(_uf, "reduce")] = _reduce_ufunc


def _scan(op, a, axis, dtype, out):
    a = _as_device(a, "cumsum" if op == "sum" else "cumprod")
    if axis is None:
        a = a.ravel()
        axis = 0
    ax = _axis(axis, a.ndim)
    ufunc = np.add if op == "sum" else np.multiply
    res = ufunc.reduce(np.zeros(1, a.dtype), dtype=dtype).dtype
    result = _new(a.shape, res, a.device_index)
    kept = [i for i in range(a.ndim) if i != ax]
    ak.scan(op, (a._buf, a._offset), [a._shape[i] for i in kept],
            [a._estrides[i] for i in kept], a._shape[ax], a._estrides[ax], res, result._buf,
            [result._estrides[i] for i in kept], result._estrides[ax])
    if out is not None:
        _assign(out, result)
        return out
    return result


@_implements(np.cumsum)
def _np_cumsum(a, axis=None, dtype=None, out=None):
    return _scan("sum", a, axis, dtype, out)


@_implements(np.cumprod)
def _np_cumprod(a, axis=None, dtype=None, out=None):
    return _scan("prod", a, axis, dtype, out)


def _accumulate_ufunc(ufunc, inputs, kwargs):
    op = {"add": "sum", "multiply": "prod"}.get(ufunc.__name__)
    if op is None or set(kwargs) - {"axis", "dtype", "out"}:
        return NotImplemented
    out = kwargs.get("out")
    out = out[0] if isinstance(out, tuple) else out
    return _scan(op, inputs[0], kwargs.get("axis", 0), kwargs.get("dtype"), out)


_UFUNC_IMPLS[(np.add, "accumulate")] = _accumulate_ufunc
_UFUNC_IMPLS[(np.multiply, "accumulate")] = _accumulate_ufunc


@_implements(np.count_nonzero)
def _np_count_nonzero(a, axis=None, *, keepdims=False):
    a = _as_device(a, "count_nonzero")
    return _reduce("sum", a != 0, axis, np.int64, None, keepdims)


# ---------------------------------------------------------------- matmul
def _as_batched(x, batch, rows, cols):
    """x broadcast to batch + (rows, cols) as a 3-D (Z, rows, cols) view, or a copy."""
    full = _np_broadcast_to(x, batch + (rows, cols))
    zshape, (zst,) = ak.collapse(batch, [full._estrides[:-2]])
    if len(zshape) > 1:
        full = full.copy()
        zst = (rows * cols,)
    z = _prod(batch)
    zstride = zst[0] if zst else 0
    return full._view(full._offset, (z, rows, cols), (zstride,) + full._estrides[-2:])


def _gemm_operand(x):
    """(view, transposed) for gemm: a view whose last axis has stride 1, or whose middle one
    has (passed transposed), else a contiguous copy."""
    z, r, c = x.shape
    if x._estrides[2] == 1 or c == 1:
        return x, False
    if x._estrides[1] == 1 or r == 1:
        return _transpose(x, (0, 2, 1)), True
    return x.copy(), False


def _matmul(a, b, out=None, **kwargs):
    if kwargs:
        return NotImplemented
    a, b = _as_device(a, "matmul"), _as_device(b, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: Input operand does not have enough dimensions")
    dtype = np.result_type(a.dtype, b.dtype)
    if dtype not in (np.float32, np.float64):
        return _fallback("matmul", np.matmul, (a, b), {} if out is None else {"out": out})
    a = a if a.dtype == dtype else a.astype(dtype)
    b = b if b.dtype == dtype else b.astype(dtype)
    a2 = a.reshape(1, a.shape[0]) if a.ndim == 1 else a
    b2 = b.reshape(b.shape[0], 1) if b.ndim == 1 else b
    m, k = a2.shape[-2:]
    k2, n = b2.shape[-2:]
    if k != k2:
        raise ValueError(f"matmul: Input operand 1 has a mismatch in its core dimension 0, "
                         f"with gufunc signature (n?,k),(k,m?)->(n?,m?) (size {k2} is "
                         f"different from {k})")
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    c = _new((_prod(batch), m, n), dtype, a.device_index)
    if c.size:
        if k == 0:
            c.fill(0)
        else:
            from .gemm import gemm_device
            av, ta = _gemm_operand(_as_batched(a2, batch, m, k))
            bv, tb = _gemm_operand(_as_batched(b2, batch, k, n))
            gemm_device(av.raw, bv.raw, c.raw, ta, tb, 1.0, 0.0)
    shape = batch + ((m,) if a.ndim > 1 else ()) + ((n,) if b.ndim > 1 else ())
    result = c.reshape(shape)
    if out is not None:
        out = out[0] if isinstance(out, tuple) else out
        _assign(out, result)
        return out
    return result


@_implements(np.dot)
def _np_dot(a, b, out=None):
    a, b = _as_device(a, "dot"), _as_device(b, "dot")
    if a.ndim == 0 or b.ndim == 0:
        return np.multiply(a, b, out=out)
    if a.ndim <= 2 and b.ndim <= 2:
        return _matmul(a, b, out=out)
    return _fallback("dot", np.dot, (a, b), {} if out is None else {"out": out})


@_implements(np.vdot)
def _np_vdot(a, b):
    return _matmul(_as_device(a).ravel(), _as_device(b).ravel())


@_implements(np.inner)
def _np_inner(a, b):
    a, b = _as_device(a, "inner"), _as_device(b, "inner")
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    return _matmul(a, _np_moveaxis(b, -1, 0) if b.ndim > 1 else b) if b.ndim <= 2 else \
        _fallback("inner", np.inner, (a, b), {})


@_implements(np.outer)
def _np_outer(a, b, out=None):
    a, b = _as_device(a, "outer").ravel(), _as_device(b, "outer").ravel()
    return np.multiply(a[:, None], b[None, :], out=out)


# ---------------------------------------------------------------- advanced indexing
_index_flag = {}


def _flag():
    """A one-int flag that index kernels raise for an out-of-range device index; host-mapped
    memory on a GPU, so checking it is no copy."""
    flag = _index_flag.get("flag")
    if flag is None:
        flag = cuda.mapped_array((1,), np.int32) if not SIMULATOR else \
            cuda.to_device(np.zeros(1, np.int32))
        flag[0] = 0
        _index_flag["flag"] = flag
    _index_flag["armed"] = True
    return flag


def check_device_errors():
    """Raise IndexError if an indexing kernel met an out-of-range device index since the last
    check (the kernels clamp such indices, so nothing outside an array was touched)."""
    if not _index_flag.get("armed"):
        return
    cuda.synchronize()
    flag = _index_flag["flag"]
    _index_flag["armed"] = False
    if flag[0]:
        flag[0] = 0
        raise IndexError("an index on the device was out of bounds (reported at the next "
                         "synchronization after the indexing op, as CUDA's device-side assert)")


def _index_term(idx, n, stride, what):
    """int64 DeviceArray of (idx wrapped into [0, n)) * stride; host indices are checked on
    the host and uploaded (counted), device ones checked on the device."""
    if isinstance(idx, DeviceArray):
        if idx.dtype.kind not in "iu":
            raise IndexError("arrays used as indices must be of integer (or boolean) type")
        if idx.size and n == 0:
            raise IndexError("index is out of bounds for axis with size 0")
        term = _new(idx.shape, np.int64, idx.device_index)
        _copy_into(term, idx)
        ak.normalize_indices(term._buf, n, stride, _flag())
        return term
    host = np.asarray(idx)
    if host.dtype.kind not in "iu":
        if host.size == 0:
            host = host.astype(np.int64)
        else:
            raise IndexError("arrays used as indices must be of integer (or boolean) type")
    host = host.astype(np.int64)
    bad = (host < -n) | (host >= n)
    if bad.any():
        raise IndexError(f"index {host[bad].flat[0]} is out of bounds for axis with size {n}")
    terms = np.where(host < 0, host + n, host) * stride
    flat = terms.reshape(-1)
    if flat.size and (flat.size == 1 or (np.diff(flat) == flat[1] - flat[0]).all()):
        # an evenly spaced index (x[:, [-1]], a[np.arange(b), ...]) is made on the device
        step = int(flat[1] - flat[0]) if flat.size > 1 else 0
        term = arange(flat.size, dtype=np.int64) * step + int(flat[0])
        return term.reshape(terms.shape)
    return from_host(terms, what=what)


def _advanced_positions(d, key):
    """(result shape, int64 DeviceArray of buffer positions) for numpy advanced indexing."""
    entries = []
    for k in key:
        if isinstance(k, (bool, np.bool_)):
            raise _NoDevicePath
        if isinstance(k, list):
            k = np.asarray(k)
        if isinstance(k, (np.ndarray, DeviceArray)) and k.dtype == np.bool_:
            if isinstance(k, DeviceArray):
                entries.extend(("adv", i) for i in _np_nonzero(k))
            else:
                entries.extend(("adv", i) for i in np.nonzero(k))
            entries.append(("mask_end", k.ndim))
            continue
        entries.append(("adv", k) if isinstance(k, (np.ndarray, DeviceArray)) else
                       ("basic", k))
    entries = [e for e in entries if e[0] != "mask_end"]
    consumed = sum(1 for kind, k in entries if not (kind == "basic" and (k is None or
                                                                          k is Ellipsis)))
    if sum(1 for kind, k in entries if kind == "basic" and k is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if consumed > d.ndim:
        raise IndexError(f"too many indices for array: array is {d.ndim}-dimensional, but "
                         f"{consumed} were indexed")
    # walk the key: basic dims keep their place, advanced ones (ints included) form one block
    basic_dims = []          # (position in key, length, term-builder)
    adv = []                 # (position in key, index, source dim)
    offset = d._offset
    dim = 0
    pos = 0
    expanded = []
    for kind, k in entries:
        if kind == "basic" and k is Ellipsis:
            expanded.extend(("basic", slice(None)) for _ in range(d.ndim - consumed))
        else:
            expanded.append((kind, k))
    expanded.extend(("basic", slice(None)) for _ in range(d.ndim - sum(
        1 for kind, k in expanded if not (kind == "basic" and k is None))))
    for kind, k in expanded:
        if kind == "basic" and k is None:
            basic_dims.append((pos, 1, None))
        elif kind == "basic" and isinstance(k, slice):
            n, s = d._shape[dim], d._estrides[dim]
            start, stop, step = k.indices(n)
            length = len(range(start, stop, step))
            basic_dims.append((pos, length, (start, step, s)))
            dim += 1
        elif kind == "basic":
            n, i = d._shape[dim], operator.index(k)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {dim} with size {n}")
            adv.append((pos, None, dim))
            offset += (i % n) * d._estrides[dim]
            dim += 1
        else:
            adv.append((pos, k, dim))
            dim += 1
        pos += 1
    arrays = [(p, k, sd) for p, k, sd in adv if k is not None]
    bshape = np.broadcast_shapes(*(np.shape(k) for _, k, _ in arrays))
    positions = [p for p, _, _ in adv]
    adjacent = positions == list(range(positions[0], positions[0] + len(positions)))
    insert_at = sum(1 for p, _, _ in basic_dims if p < positions[0]) if adjacent else 0
    out_shape = [length for _, length, _ in basic_dims]
    out_shape[insert_at:insert_at] = list(bshape)
    out_shape = tuple(out_shape)
    nb = len(bshape)
    pos_arr = full(out_shape, offset, np.int64, d.device_index)
    for j, (_, length, spec) in enumerate(basic_dims):
        if spec is None or length == 0:
            continue
        start, step, s = spec
        axis = j if j < insert_at else j + nb
        term = arange(length, dtype=np.int64, device_index=d.device_index)
        term = term * (step * s) + start * s
        shape = [1] * len(out_shape)
        shape[axis] = length
        np.add(pos_arr, term.reshape(shape), out=pos_arr)
    for _, k, sd in arrays:
        term = _index_term(k, d._shape[sd], d._estrides[sd], "__getitem__")
        shape = [1] * insert_at + [1] * (nb - term.ndim) + list(term.shape) + \
            [1] * (len(out_shape) - insert_at - nb)
        np.add(pos_arr, term.reshape(shape), out=pos_arr)
    return out_shape, pos_arr


def _nonzero_flat(mask):
    """Flat C-order positions of the true elements of a DeviceArray (one counted copy: the
    count, which sets the result's size)."""
    m = mask if mask.dtype == np.bool_ else (mask != 0)
    m = m.contiguous().ravel()
    n = m.size
    chunks = ak.nonzero_chunks(n)
    counts = _new((chunks,), np.int64)
    total = _new((1,), np.int64)
    if n == 0:
        return _new((0,), np.int64)
    chunk = ak.nonzero_prepare(m._buf, counts._buf, total._buf)
    count = int(to_host(total, "nonzero")[0])
    out = _new((count,), np.int64)
    ak.nonzero_finish(m._buf, chunk, counts._buf, out._buf)
    return out


@_implements(np.nonzero)
def _np_nonzero(a):
    a = _as_device(a, "nonzero")
    if a.ndim == 0:
        raise ValueError("Calling nonzero on 0d arrays is not allowed. Use np.atleast_1d("
                         "scalar).nonzero() instead.")
    flat = _nonzero_flat(a)
    result = []
    for dim in range(a.ndim):
        step = _prod(a.shape[dim + 1:])
        result.append((flat // step) % a.shape[dim] if a.ndim > 1 else flat)
    return tuple(result)


@_implements(np.argwhere)
def _np_argwhere(a):
    a = _as_device(a, "argwhere")
    if a.ndim == 0:
        a = a.reshape(1)
    return _np_stack(_np_nonzero(a), axis=1)


@_implements(np.flatnonzero)
def _np_flatnonzero(a):
    return _nonzero_flat(_as_device(a, "flatnonzero"))


def _at_ufunc(ufunc, inputs, kwargs):
    mode = {"add": "add", "subtract": "add", "maximum": "max", "minimum": "min"}.get(
        ufunc.__name__)
    target = inputs[0]
    if mode is None or kwargs or not isinstance(target, DeviceArray):
        return NotImplemented
    key = _key_tuple(inputs[1])
    values = inputs[2] if len(inputs) > 2 else None
    if values is None or target.dtype.kind == "b" or target.dtype.itemsize < 4:
        return NotImplemented
    # (CUDA's float atomic max/min skip a NaN operand where numpy's maximum.at propagates it)
    try:
        if all(_is_basic(k) for k in key):
            view = _basic_view(target, key)
            shape, pos = view.shape, _view_positions(view)
        else:
            shape, pos = _advanced_positions(target, key)
    except _NoDevicePath:
        return NotImplemented
    vals = _values_for(values, shape, target.dtype)
    if ufunc is np.subtract:
        vals = -vals
    ak.scatter(mode, target._buf, pos._buf, vals._buf)
    return None


def _view_positions(view):
    """int64 buffer positions of every element of a basic view."""
    pos = full(view.shape, view._offset, np.int64, view.device_index)
    for axis, (n, s) in enumerate(zip(view._shape, view._estrides)):
        if n > 1 and s:
            shape = [1] * view.ndim
            shape[axis] = n
            np.add(pos, (arange(n, dtype=np.int64) * s).reshape(shape), out=pos)
    return pos


for _uf in (np.add, np.subtract, np.maximum, np.minimum):
    _UFUNC_IMPLS[(_uf, "at")] = _at_ufunc


@_implements(np.take)
def _np_take(a, indices, axis=None, out=None, mode="raise"):
    a = _as_device(a, "take")
    if mode != "raise":
        return _fallback("take", np.take, (a, indices), dict(axis=axis, out=out, mode=mode))
    if axis is None:
        a, axis = a.ravel(), 0
    ax = _axis(axis, a.ndim)
    result = a[(slice(None),) * ax + (indices if not isinstance(indices, (
        numbers.Integral, np.integer)) else operator.index(indices),)]
    if out is not None:
        _assign(out, result)
        return out
    return result


def _along_axis_key(arr, indices, axis):
    if indices.ndim != arr.ndim:
        raise ValueError("`indices` and `arr` must have the same number of dimensions")
    key = []
    for dim in range(arr.ndim):
        if dim == axis:
            key.append(indices)
        else:
            shape = [1] * arr.ndim
            shape[dim] = arr.shape[dim]
            key.append(arange(arr.shape[dim], dtype=np.int64).reshape(shape))
    return tuple(key)


@_implements(np.take_along_axis)
def _np_take_along_axis(arr, indices, axis=-1):
    arr = _as_device(arr, "take_along_axis")
    if axis is None:
        arr, axis = arr.ravel(), 0
    indices = indices if isinstance(indices, DeviceArray) else np.asarray(indices)
    return arr[_along_axis_key(arr, indices, _axis(axis, arr.ndim))]


@_implements(np.put_along_axis)
def _np_put_along_axis(arr, indices, values, axis):
    if axis is None:
        raise _NoDevicePath
    indices = indices if isinstance(indices, DeviceArray) else np.asarray(indices)
    arr[_along_axis_key(arr, indices, _axis(axis, arr.ndim))] = values


# ---------------------------------------------------------------- joining, patterns
@_implements(np.concatenate)
def _np_concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    arrays = [_as_device(a, "concatenate") for a in arrays]
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    if axis is None:
        arrays = [a.ravel() for a in arrays]
        axis = 0
    first = arrays[0]
    if first.ndim == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    ax = _axis(axis, first.ndim)
    for i, a in enumerate(arrays[1:], 1):
        if a.ndim != first.ndim:
            raise ValueError(f"all the input array dimensions except for the concatenation "
                             f"axis must match exactly, but along dimension 0, the array at "
                             f"index 0 has {first.ndim} dimension(s) and the array at index "
                             f"{i} has {a.ndim} dimension(s)")
        for d in range(first.ndim):
            if d != ax and a.shape[d] != first.shape[d]:
                raise ValueError(f"all the input array dimensions except for the concatenation"
                                 f" axis must match exactly, but along dimension {d}, the "
                                 f"array at index 0 has size {first.shape[d]} and the array at "
                                 f"index {i} has size {a.shape[d]}")
    res_dtype = np.dtype(dtype) if dtype is not None else np.result_type(*(a.dtype
                                                                            for a in arrays))
    shape = list(first.shape)
    shape[ax] = sum(a.shape[ax] for a in arrays)
    result = out if out is not None else _new(shape, res_dtype, first.device_index)
    start = 0
    for a in arrays:
        n = a.shape[ax]
        _copy_into(result[(slice(None),) * ax + (slice(start, start + n),)], a)
        start += n
    return result


@_implements(np.stack)
def _np_stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    arrays = [_as_device(a, "stack") for a in arrays]
    if not arrays:
        raise ValueError("need at least one array to stack")
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError("all input arrays must have the same shape")
    ax = _axis(axis, arrays[0].ndim + 1)
    return _np_concatenate([_np_expand_dims(a, ax) for a in arrays], ax, out, dtype)


@_implements(np.vstack)
def _np_vstack(tup, *, dtype=None, casting="same_kind"):
    arrays = [_as_device(a, "vstack") for a in tup]
    return _np_concatenate([a.reshape(1, -1) if a.ndim < 2 else a for a in arrays], 0,
                           dtype=dtype)


@_implements(np.hstack)
def _np_hstack(tup, *, dtype=None, casting="same_kind"):
    arrays = [_as_device(a, "hstack") for a in tup]
    arrays = [a.reshape(1) if a.ndim == 0 else a for a in arrays]
    return _np_concatenate(arrays, 0 if arrays[0].ndim == 1 else 1, dtype=dtype)


@_implements(np.split, np.array_split)
def _np_split(ary, indices_or_sections, axis=0):
    a = _as_device(ary, "split")
    ax = _axis(axis, a.ndim)
    n = a.shape[ax]
    if isinstance(indices_or_sections, (numbers.Integral, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ValueError("number sections must be larger than 0.")
        each, extra = divmod(n, sections)
        sizes = [each + 1] * extra + [each] * (sections - extra)
        bounds = list(np.cumsum([0] + sizes))
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [n]
    pieces = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        lo, hi = builtins.min(lo, n), builtins.min(builtins.max(hi, lo), n)
        pieces.append(a[(slice(None),) * ax + (slice(lo, hi),)])
    return pieces


def _tri_mask(shape, k, lower, device_index):
    rows = arange(shape[-2], dtype=np.int64, device_index=device_index).reshape(-1, 1)
    cols = arange(shape[-1], dtype=np.int64, device_index=device_index).reshape(1, -1)
    diff = cols - rows
    return diff <= k if lower else diff >= k


@_implements(np.tril)
def _np_tril(m, k=0):
    m = _as_device(m, "tril")
    return _np_where(_tri_mask(m.shape, k, True, m.device_index), m, m.dtype.type(0))


@_implements(np.triu)
def _np_triu(m, k=0):
    m = _as_device(m, "triu")
    return _np_where(_tri_mask(m.shape, k, False, m.device_index), m, m.dtype.type(0))


@_implements(np.zeros_like)
def _np_zeros_like(a, dtype=None, order="K", subok=True, shape=None, **kwargs):
    return zeros_like(a, dtype, shape)


@_implements(np.ones_like)
def _np_ones_like(a, dtype=None, order="K", subok=True, shape=None, **kwargs):
    return ones_like(a, dtype, shape)


@_implements(np.empty_like)
def _np_empty_like(prototype, dtype=None, order="K", subok=True, shape=None, **kwargs):
    return empty_like(prototype, dtype, shape)


@_implements(np.full_like)
def _np_full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, **kwargs):
    return full_like(a, fill_value, dtype, shape)


@_implements(np.copyto)
def _np_copyto(dst, src, casting="same_kind", where=True):
    if not isinstance(dst, DeviceArray):
        raise TypeError("copyto: a host destination cannot take device values implicitly; "
                        "use to_host")
    if where is True:
        _assign(dst, src)
    else:
        _assign(dst, _np_where(where, src, dst))


@_implements(np.isclose)
def _np_isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    a, b = _as_device(a, "isclose"), _as_device(b, "isclose")
    diff = np.abs(a - b)
    close = (diff <= atol + rtol * np.abs(b)) | (a == b)
    if equal_nan:
        close = close | (np.isnan(a) & np.isnan(b))
    return close


@_implements(np.allclose)
def _np_allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return bool(_np_all(_np_isclose(a, b, rtol, atol, equal_nan)))


@_implements(np.array_equal)
def _np_array_equal(a1, a2, equal_nan=False):
    if np.shape(a1) != np.shape(a2):
        return False
    eq = _as_device(a1, "array_equal") == _as_device(a2, "array_equal")
    if equal_nan:
        eq = eq | (np.isnan(a1) & np.isnan(a2))
    return bool(_np_all(eq))


@_implements(np.roll)
def _np_roll(a, shift, axis=None):
    a = _as_device(a, "roll")
    if axis is None:
        return _np_roll(a.ravel(), shift, 0).reshape(a.shape)
    shifts = (shift,) if isinstance(shift, (numbers.Integral, np.integer)) else tuple(shift)
    axes = (axis,) if isinstance(axis, (numbers.Integral, np.integer)) else tuple(axis)
    shifts, axes = np.broadcast_arrays(np.asarray(shifts), np.asarray(axes))
    result = a
    for s, ax in zip(shifts.tolist(), axes.tolist()):
        ax = _axis(ax, a.ndim)
        n = a.shape[ax]
        if n == 0:
            continue
        s %= n
        if s:
            lead = (slice(None),) * ax
            result = _np_concatenate([result[lead + (slice(n - s, None),)],
                                      result[lead + (slice(0, n - s),)]], ax)
    return result if result is not a else a.copy()


@_implements(np.repeat)
def _np_repeat(a, repeats, axis=None):
    a = _as_device(a, "repeat")
    if axis is None:
        a, axis = a.ravel(), 0
    ax = _axis(axis, a.ndim)
    if isinstance(repeats, (numbers.Integral, np.integer)):
        n = a.shape[ax]
        idx = arange(n * int(repeats), dtype=np.int64) // int(repeats)
    else:
        reps = to_host(repeats, "repeat") if isinstance(repeats, DeviceArray) else \
            np.asarray(repeats)
        idx = from_host(np.repeat(np.arange(a.shape[ax]), reps), what="repeat")
    return a[(slice(None),) * ax + (idx,)]


@_implements(np.tile)
def _np_tile(A, reps):
    a = _as_device(A, "tile")
    reps = (reps,) if isinstance(reps, (numbers.Integral, np.integer)) else tuple(reps)
    nd = builtins.max(len(reps), a.ndim)
    a = a.reshape((1,) * (nd - a.ndim) + a.shape)
    reps = (1,) * (nd - len(reps)) + reps
    expanded = a.reshape([x for n in a.shape for x in (1, n)])
    big = _np_broadcast_to(expanded, [x for r, n in zip(reps, a.shape) for x in (r, n)])
    return big.copy().reshape([r * n for r, n in zip(reps, a.shape)])


@_implements(np.linalg.norm)
def _np_norm(x, ord=None, axis=None, keepdims=False):
    x = _as_device(x, "norm")
    if ord not in (None, 2, "fro") or (ord == 2 and (axis is None and x.ndim != 1)):
        return _fallback("norm", np.linalg.norm, (x,), dict(ord=ord, axis=axis,
                                                            keepdims=keepdims))
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    return np.sqrt(_reduce("sum", x * x, axis, None, None, keepdims))


@_implements(np.diff)
def _np_diff(a, n=1, axis=-1, **kwargs):
    a = _as_device(a, "diff")
    if kwargs:
        return _fallback("diff", np.diff, (a, n, axis), kwargs)
    ax = _axis(axis, a.ndim)
    lead = (slice(None),) * ax
    for _ in range(n):
        a = (a[lead + (slice(1, None),)] != a[lead + (slice(None, -1),)]) if a.dtype == \
            np.bool_ else a[lead + (slice(1, None),)] - a[lead + (slice(None, -1),)]
    return a


@_implements(np.einsum)
def _np_einsum(*operands, out=None, optimize=False, **kwargs):
    """einsum through matmul for the two-operand contractions autograd uses; the rest falls
    back to the host (counted)."""
    try:
        return _einsum_device(operands, out, kwargs)
    except _NoDevicePath:
        kw = dict(kwargs, optimize=optimize)
        if out is not None:
            kw["out"] = out
        return _fallback("einsum", np.einsum, operands, kw)


def _einsum_device(operands, out, kwargs):
    if kwargs or not isinstance(operands[0], str) or "..." in operands[0]:
        raise _NoDevicePath
    spec, arrays = operands[0].replace(" ", ""), [_as_device(a, "einsum")
                                                  for a in operands[1:]]
    if "->" not in spec:
        raise _NoDevicePath
    ins, target = spec.split("->")
    ins = ins.split(",")
    if len(ins) != len(arrays) or any(len(s) != a.ndim for s, a in zip(ins, arrays)) or \
            any(len(set(s)) != len(s) for s in ins) or len(set(target)) != len(target):
        raise _NoDevicePath
    if len(arrays) == 1:
        (s,), (a,) = ins, arrays
        summed = tuple(i for i, c in enumerate(s) if c not in target)
        r = _reduce("sum", a, summed, None, None, False) if summed else a
        rest = [c for c in s if c in target]
        r = _transpose(r, [rest.index(c) for c in target])
    elif len(arrays) == 2:
        r = _einsum_pair(ins[0], arrays[0], ins[1], arrays[1], target)
    else:
        raise _NoDevicePath
    if out is not None:
        _assign(out, r)
        return out
    return r


def _einsum_pair(sa, a, sb, b, target):
    """Two-operand einsum as one batched matmul: batch letters (in both and the output),
    contracted ones (in both, not the output), and letters only one operand has."""
    for c in sa + sb:
        if c not in target and ((c in sa) != (c in sb)):
            # a letter summed away inside one operand: sum it first
            if c in sa:
                a = _reduce("sum", a, sa.index(c), None, None, False)
                sa = sa.replace(c, "")
            else:
                b = _reduce("sum", b, sb.index(c), None, None, False)
                sb = sb.replace(c, "")
    batch = [c for c in target if c in sa and c in sb]
    contract = [c for c in sa if c in sb and c not in target]
    only_a = [c for c in sa if c not in sb]
    only_b = [c for c in sb if c not in sa]
    dim = {}
    for s, x in ((sa, a), (sb, b)):
        for c, n in zip(s, x.shape):
            if c in dim and dim[c] != n and 1 not in (dim[c], n):
                raise ValueError(f"einsum: size of label '{c}' differs ({dim[c]} and {n})")
            dim[c] = builtins.max(dim.get(c, 1), n)
    a3 = _transpose(a, [sa.index(c) for c in batch + only_a + contract])
    b3 = _transpose(b, [sb.index(c) for c in batch + contract + only_b])
    bshape = tuple(dim[c] for c in batch)
    a3 = _np_broadcast_to(a3, bshape + a3.shape[len(batch):]).reshape(
        bshape + (_prod(dim[c] for c in only_a), _prod(dim[c] for c in contract)))
    b3 = _np_broadcast_to(b3, bshape + b3.shape[len(batch):]).reshape(
        bshape + (_prod(dim[c] for c in contract), _prod(dim[c] for c in only_b)))
    r = _matmul(a3, b3).reshape(bshape + tuple(dim[c] for c in only_a) +
                                tuple(dim[c] for c in only_b))
    order = batch + only_a + only_b
    return _transpose(r, [order.index(c) for c in target])


# ---------------------------------------------------------------- random numbers
def _random_array(kind, shape, dtype, seed, offset, device_index, low=0, high=1):
    out = _new(shape, dtype, device_index)
    _random.generate(kind, out._buf, out.size, seed, offset, low, high)
    return out


def rand(shape, dtype=np.float32, seed=0, offset=0, device_index=0):
    """Uniform [0, 1) numbers from the device's Philox stream (seed, offset) (see random.py:
    the same pair gives the same numbers; advance offset by at least the count per call)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"rand: dtype must be float32 or float64, not {dtype}")
    return _random_array("uniform", shape, dtype, seed, offset, device_index)


def randn(shape, dtype=np.float32, seed=0, offset=0, device_index=0):
    """Standard normal numbers from the device's Philox stream (seed, offset)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"randn: dtype must be float32 or float64, not {dtype}")
    return _random_array("normal", shape, dtype, seed, offset, device_index)


def randint(low, high, shape, dtype=np.int64, seed=0, offset=0, device_index=0):
    """Integers uniform in [low, high) from the device's Philox stream (seed, offset)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        raise TypeError(f"randint: dtype must be an integer dtype, not {dtype}")
    low, high = int(low), int(high)
    if low >= high:
        raise ValueError(f"randint: low >= high ({low} >= {high})")
    info = np.iinfo(dtype)
    if low < info.min or high - 1 > info.max:
        raise ValueError(f"randint: [{low}, {high}) is out of bounds for {dtype}")
    return _random_array("integer", shape, dtype, seed, offset, device_index, low, high)


# ---------------------------------------------------------------- more numpy functions
@_implements(np.round, np.around)
def _np_round(a, decimals=0, out=None):
    a = _as_device(a, "round")
    if a.dtype.kind != "f":
        if decimals < 0:
            return _fallback("round", np.round, (a, decimals),
                             {} if out is None else {"out": out})
        if out is None:
            return a.copy()
        _assign(out, a)
        return out
    if decimals == 0:
        return np.rint(a, out=out)
    scale = 10.0 ** decimals            # numpy's own method: rint(a * 10**d) / 10**d
    return np.true_divide(np.rint(a * scale), scale, out=out)


DeviceArray.round = lambda self, decimals=0, out=None: _np_round(self, decimals, out)


@_implements(np.isneginf)
def _np_isneginf(x, out=None):
    x = _as_device(x, "isneginf")
    return np.logical_and(np.isinf(x), np.signbit(x), out=out)


@_implements(np.isposinf)
def _np_isposinf(x, out=None):
    x = _as_device(x, "isposinf")
    return np.logical_and(np.isinf(x), np.logical_not(np.signbit(x)), out=out)


@_implements(np.nan_to_num)
def _np_nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    x = _as_device(x, "nan_to_num")
    if x.dtype.kind != "f":
        return x.copy() if copy else x
    info = np.finfo(x.dtype)
    hi = info.max if posinf is None else posinf
    lo = info.min if neginf is None else neginf
    r = np.where(np.isnan(x), x.dtype.type(nan), x)
    r = np.where(_np_isposinf(r), x.dtype.type(hi), r)
    r = np.where(_np_isneginf(r), x.dtype.type(lo), r)
    if not copy:
        _assign(x, r)
        return x
    return r


@_implements(np.append)
def _np_append(arr, values, axis=None):
    arr, values = _as_device(arr, "append"), _as_device(values, "append")
    if axis is None:
        return _np_concatenate([arr.ravel(), values.ravel()])
    return _np_concatenate([arr, values], axis)


@_implements(np.diag)
def _np_diag(v, k=0):
    v = _as_device(v, "diag")
    if v.ndim == 2:
        return _np_diagonal(v, k).copy()
    if v.ndim != 1:
        raise ValueError("Input must be 1- or 2-d.")
    n = v.shape[0] + abs(k)
    out = zeros((n, n), v.dtype, v.device_index)
    _copy_into(_np_diagonal(out, k), v)
    return out


@_implements(np.bincount)
def _np_bincount(x, weights=None, minlength=0):
    """Counts of each value, through atomic adds; the length depends on max(x), which takes
    one counted copy of that maximum (as torch.bincount syncs)."""
    x = _as_device(x, "bincount")
    if x.ndim != 1:
        raise ValueError("object too deep for desired array")
    if x.dtype.kind not in "biu":
        raise TypeError("Cannot cast array data from dtype('float64') to dtype('int64') "
                        "according to the rule 'safe'")
    if x.size:
        lo = int(to_host(_reduce("min", x), "bincount"))
        if lo < 0:
            raise ValueError("'list' argument must have no negative elements")
        hi = int(to_host(_reduce("max", x), "bincount"))
    else:
        hi = -1
    n = builtins.max(hi + 1, int(minlength))
    if weights is None:
        out = zeros((n,), np.int64, x.device_index)
        vals = full(x.shape, 1, np.int64, x.device_index)
    else:
        out = zeros((n,), np.float64, x.device_index)
        vals = _as_device(weights, "bincount").astype(np.float64)
    pos = x.astype(np.int64)
    ak.scatter("add", out._buf, pos._buf, vals._buf)
    return out


@_implements(np.nansum)
def _np_nansum(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    a = _as_device(a, "nansum")
    if a.dtype.kind == "f":
        a = np.where(np.isnan(a), a.dtype.type(0), a)
    return _reduction("sum")(a, axis, dtype, out, keepdims, **kwargs)


@_implements(np.nanmean)
def _np_nanmean(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    a = _as_device(a, "nanmean")
    if a.dtype.kind != "f" or kwargs:
        return _np_mean(a, axis, dtype, out, keepdims, **kwargs)
    valid = np.logical_not(np.isnan(a))
    total = _reduce("sum", np.where(valid, a, a.dtype.type(0)), axis, dtype, None, keepdims)
    count = _reduce("sum", valid, axis, None, None, keepdims)
    return np.true_divide(total, count.astype(total.dtype), out=out)


# ---------------------------------------------------------------- sorting
def _sort_rows(a, axis):
    """(sorted values, their indices) along `axis`, by a bitonic network on the device; NaN
    last and ties in index order (numpy's stable sort)."""
    a = _as_device(a, "sort")
    if axis is None:
        a, axis = a.ravel(), 0
    ax = _axis(axis, a.ndim)
    moved = _np_moveaxis(a, ax, -1)
    n = moved.shape[-1]
    rows = _prod(moved.shape[:-1])
    width = 1 << builtins.max(n - 1, 0).bit_length()
    keys = zeros((rows, width), a.dtype, a.device_index)
    _copy_into(keys[:, :n], moved.reshape(rows, n))
    idx = _new((rows, width), np.int64, a.device_index)
    _copy_into(idx, arange(width, dtype=np.int64, device_index=a.device_index))
    ak.bitonic_sort_rows(keys._buf, idx._buf, rows, width, n)
    shape = moved.shape
    values = _np_moveaxis(keys[:, :n].reshape(shape), -1, ax).copy()
    order = _np_moveaxis(idx[:, :n].reshape(shape), -1, ax).copy()
    return values, order


@_implements(np.sort)
def _np_sort(a, axis=-1, kind=None, order=None, *, stable=None):
    if order is not None:
        return _fallback("sort", np.sort, (a,), dict(axis=axis, kind=kind, order=order))
    return _sort_rows(a, axis)[0]


@_implements(np.argsort)
def _np_argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    if order is not None:
        return _fallback("argsort", np.argsort, (a,), dict(axis=axis, kind=kind, order=order))
    return _sort_rows(a, axis)[1]


DeviceArray.argsort = lambda self, axis=-1, kind=None, order=None: _np_argsort(self, axis,
                                                                               kind, order)
