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
"""
import builtins
import collections
import numbers
import operator

import numpy as np
from numba import cuda

from . import array_kernels as ak
from . import memory
from .common import SIMULATOR, record_transfer, transfer_log as _common_log

__all__ = ["DeviceArray", "is_device_array", "from_host", "to_host", "wrap", "empty", "zeros",
           "ones", "full", "arange", "empty_like", "zeros_like", "ones_like", "full_like",
           "transfer_count", "reset_transfers", "transfer_log", "memory_allocated",
           "max_memory_allocated", "reset_peak_memory_stats", "memory_reserved",
           "max_memory_reserved", "empty_cache", "synchronize"]

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
        return {"C_CONTIGUOUS": self.is_c_contiguous(), "F_CONTIGUOUS": self.is_f_contiguous(),
                "OWNDATA": False, "WRITEABLE": True}

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
        return self.ravel(order).copy() if self.is_c_contiguous() else self.ravel(order)

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
    """Wait until the device has finished all queued work."""
    cuda.synchronize()


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
    buf = memory.as_typed(memory.alloc_bytes(n * dtype.itemsize), dtype, n)
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
    span = d._buf[lo:hi].copy_to_host()
    record_transfer("d2h", what)
    view = np.lib.stride_tricks.as_strided(span[d._offset - lo:], d.shape, d.strides)
    view[...] = host
    d._buf[lo:hi].copy_to_device(span)
    record_transfer("h2d", what)


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
    src = d.contiguous()
    return src._view(src._offset, shape, _c_strides(shape))


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
        raise ValueError(f"cannot broadcast a non-scalar to a scalar array")
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
    return _fallback("__getitem__", operator.getitem, (d, key), {})


def _setitem(d, key, value):
    key = _key_tuple(key)
    if all(_is_basic(k) for k in key):
        target = _basic_view(d, key)
        _assign(target, value)
        return
    _advanced_setitem(d, key, value)


def _advanced_setitem(d, key, value):
    host = to_host(d, "__setitem__")
    host[_down(key, "__setitem__")] = _down(value, "__setitem__")
    _store_host(d, host, "__setitem__")


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
    _store_host(target, to_host(value, "__setitem__"), "__setitem__")


def _fill(d, value):
    if isinstance(value, DeviceArray):
        value = value.item()
    host = np.empty((), d.dtype)
    host[()] = value                   # numpy's casting (and its errors)
    ak.fill(d._buf, d._offset, d._shape, d._estrides, host[()])


def _copy(d):
    out = _new(d.shape, d.dtype, d.device_index)
    lo, hi = d._span()
    if d.size and d.is_c_contiguous() and hi - lo == d.size:
        out._buf.copy_to_device(d._buf[lo:hi])      # device to device
    elif d.size:
        _store_host(out, to_host(d, "copy"), "copy")
    return out


def _astype(d, dtype):
    return from_host(to_host(d, "astype").astype(dtype), what="astype")
