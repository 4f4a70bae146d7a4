"""PyTorch's checkpoint format (what torch.save writes), read and written without torch and
without ever unpickling an arbitrary object.

The format: a zip archive (stored, not compressed) with one folder, `<name>/`, holding

    data.pkl          a pickle (protocol 2) of the saved object; every tensor in it is
                      torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
                      hooks), and every storage a *persistent id*
                      ('storage', torch.FloatStorage, '<key>', 'cpu', numel) naming a record
    data/<key>        the raw bytes of that storage, in the order named by `byteorder`
    byteorder         'little' or 'big'
    version, .format_version, .storage_alignment, .data/serialization_id

Reading: `_SafeUnpickler` is a pickle.Unpickler whose `find_class` returns stand-ins for an
allow-list of globals only (the tensor rebuilders, the storage classes, OrderedDict, torch.Size,
torch dtypes and devices, and a few harmless builtins), like PyTorch's own weights_only loader;
anything else is refused with an error naming the global, before it is imported or called.
Tensors come back as views of their storage (offset, shape and strides as saved, bounds checked),
so tensors that shared a storage in PyTorch share memory here too.

Writing: `_TorchPickler` (a pickle._Pickler) emits tensors through `reducer_override` as
_rebuild_tensor_v2 calls and storages through `persistent_id`; its `save_global` writes the
allow-listed global names and refuses every other one, so a .pt file fastnn writes holds tensors,
containers, numbers and strings only, and loads in PyTorch with torch.load(..., weights_only=True).
"""
import codecs
import collections
import io
import pickle
import secrets
import struct
import warnings
import zipfile

import numpy as np

__all__ = ["CheckpointError", "UnsafeCheckpointError", "is_torch_zip", "load_torch_zip",
           "is_torch_legacy", "load_torch_legacy", "save_torch_zip", "TORCH_STORAGE_DTYPES"]


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint (fastnn.CheckpointError)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A .pt file asks for something other than tensors and plain containers."""


# torch storage class -> numpy dtype of its elements ("bfloat16": numpy has none; see below)
TORCH_STORAGE_DTYPES = {
    "FloatStorage": np.dtype(np.float32), "DoubleStorage": np.dtype(np.float64),
    "HalfStorage": np.dtype(np.float16), "BFloat16Storage": "bfloat16",
    "LongStorage": np.dtype(np.int64), "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16), "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8), "BoolStorage": np.dtype(np.bool_),
    "ComplexFloatStorage": np.dtype(np.complex64),
    "ComplexDoubleStorage": np.dtype(np.complex128),
}
_STORAGE_FOR_DTYPE = {v: k for k, v in TORCH_STORAGE_DTYPES.items() if v != "bfloat16"}

# torch dtype names (pickled as GLOBAL torch <name>) -> numpy dtype
_TORCH_DTYPES = {
    "float32": np.float32, "float": np.float32, "float64": np.float64, "double": np.float64,
    "float16": np.float16, "half": np.float16, "int64": np.int64, "long": np.int64,
    "int32": np.int32, "int": np.int32, "int16": np.int16, "short": np.int16, "int8": np.int8,
    "uint8": np.uint8, "bool": np.bool_, "complex64": np.complex64, "complex128": np.complex128,
}


_TORCH_DTYPE_NAMES = {np.dtype(v): k for k, v in _TORCH_DTYPES.items()
                      if k in ("float32", "float64", "float16", "int64", "int32", "int16", "int8",
                               "uint8", "bool", "complex64", "complex128")}


# ---------------------------------------------------------------- reading
class _StorageType:
    """Stand-in for a torch storage class (torch.FloatStorage, ...)."""
    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


class _Storage:
    """A storage read from the archive: a flat, writable numpy array of its elements."""
    __slots__ = ("array", "name")

    def __init__(self, array, name):
        self.array, self.name = array, name

    def __setstate__(self, state):
        raise UnsafeCheckpointError("a storage in this .pt file carries pickled state; refused")


class _TensorRef:
    """A tensor as the pickle describes it; turned into a fastnn Tensor after unpickling."""
    __slots__ = ("array", "requires_grad", "parameter")

    def __init__(self, array, requires_grad=False, parameter=False):
        self.array, self.requires_grad, self.parameter = array, requires_grad, parameter

    def __setstate__(self, state):
        # PyTorch sets Python attributes of tensor subclasses this way; fastnn loads plain
        # tensors, so only an empty state is accepted (nothing in it would be called anyway)
        parts = state if isinstance(state, tuple) else (state,)
        if any(parts):
            raise UnsafeCheckpointError("a tensor in this .pt file carries Python attributes "
                                        "(a tensor subclass?); fastnn loads plain tensors only")


class _TorchMarker:
    """Stand-in for torch.Tensor / torch.nn.Parameter used as a type in _rebuild_from_type_v2."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


def _int_tuple(x, what):
    if not isinstance(x, (tuple, list)) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                   for i in x):
        raise UnsafeCheckpointError(f"a tensor's {what} is {x!r}, not a tuple of ints")
    return tuple(x)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise UnsafeCheckpointError(f"_rebuild_tensor_v2 got {type(storage).__name__} where a "
                                    f"storage belongs")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise UnsafeCheckpointError(f"a tensor's storage offset is {storage_offset!r}")
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise UnsafeCheckpointError(f"a tensor has size {size} and stride {stride}")
    if backward_hooks:
        raise UnsafeCheckpointError("a tensor in this .pt file has backward hooks; refused")
    flat = storage.array
    if 0 in size:
        arr = np.empty(size, flat.dtype)
    else:
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise UnsafeCheckpointError(
                f"a tensor of size {size}, stride {stride}, offset {storage_offset} reaches "
                f"element {last} of a storage of {flat.size}: the file is corrupt")
        item = flat.dtype.itemsize
        arr = np.lib.stride_tricks.as_strided(flat[storage_offset:], shape=size,
                                              strides=tuple(s * item for s in stride))
    return _TensorRef(arr, bool(requires_grad))


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if not isinstance(data, _TensorRef):
        raise UnsafeCheckpointError(f"_rebuild_parameter got {type(data).__name__}")
    if backward_hooks:
        raise UnsafeCheckpointError("a parameter in this .pt file has backward hooks; refused")
    if state:
        raise UnsafeCheckpointError("a parameter in this .pt file carries Python attributes; "
                                    "fastnn loads plain parameters only")
    return _TensorRef(data.array, bool(requires_grad), parameter=True)


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor_v2, _rebuild_tensor, _rebuild_parameter) or \
            not isinstance(new_type, _TorchMarker) or not isinstance(args, tuple):
        raise UnsafeCheckpointError("_rebuild_from_type_v2 with an unexpected type or function")
    out = func(*args)
    if state:
        raise UnsafeCheckpointError(f"a {new_type.name} in this .pt file carries Python "
                                    f"attributes; fastnn loads plain tensors only")
    if new_type.name == "Parameter":
        out.parameter = True
    return out


def _size(*args):
    try:
        from .tensor import Size  # fastnn's torch.Size, where this fastnn has one
    except ImportError:
        Size = tuple
    return Size(tuple(*args))


def _device(*args):
    if not all(isinstance(a, (str, int)) for a in args):
        raise UnsafeCheckpointError(f"torch.device{args!r}")
    return ":".join(str(a) for a in args)


def _encode(s, encoding="latin1"):
    if not isinstance(s, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafeCheckpointError("_codecs.encode with unexpected arguments")
    return codecs.encode(s, encoding)


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TorchMarker("Tensor"),
    ("torch.nn.parameter", "Parameter"): _TorchMarker("Parameter"),
    ("torch", "Size"): _size,
    ("torch", "device"): _device,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _encode,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("__builtin__", "set"): set,
}
for _name, _dt in TORCH_STORAGE_DTYPES.items():
    _ALLOWED[("torch", _name)] = _StorageType(_name, _dt)
_ALLOWED[("torch", "UntypedStorage")] = _StorageType("UntypedStorage", np.dtype(np.uint8))
_ALLOWED[("torch.storage", "UntypedStorage")] = _ALLOWED[("torch", "UntypedStorage")]
for _name, _dt in _TORCH_DTYPES.items():
    _ALLOWED[("torch", _name)] = np.dtype(_dt)


class _SafeUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves only allow-listed globals, to stand-ins (see module doc).
    Persistent ids (storages) go to `persistent(pid)`; without it, any is refused."""

    def __init__(self, file, persistent, source):
        super().__init__(file)
        self._persistent = persistent
        self._source = source

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise UnsafeCheckpointError(
                f"load: {self._source} asks to unpickle the global {module}.{name}, which is not "
                f"a tensor, a storage or a plain container; fastnn refuses it (nothing was run). "
                f"fastnn loads .pt files the way torch.load(..., weights_only=True) does, with "
                f"weights_only=False too: it never unpickles arbitrary objects") from None

    def persistent_load(self, pid):
        if self._persistent is None:
            raise UnsafeCheckpointError(f"load: {self._source}: unexpected persistent id "
                                        f"{pid!r:.80}")
        return self._persistent(pid)


def _zip_persistent(read_storage, source):
    """persistent_load for the zip format: ('storage', type, key, location, numel)."""
    storages = {}

    def persistent(pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"load: {source}: unexpected persistent id {pid!r:.80}")
        _, stype, key, _location, numel = pid
        if not isinstance(stype, _StorageType) or not isinstance(key, str) or \
                not isinstance(numel, int):
            raise UnsafeCheckpointError(f"load: {source}: malformed storage reference "
                                        f"{pid!r:.80}")
        st = storages.get(key)
        if st is None:
            st = storages[key] = _Storage(read_storage(key, stype, numel), stype.name)
        return st
    return persistent


def _bfloat16_to_float32(raw):
    u = np.frombuffer(raw, np.uint16) if not isinstance(raw, np.ndarray) else raw.view(np.uint16)
    return (u.astype(np.uint32) << 16).view(np.float32)


def _decode_storage(raw, stype, byteorder, source, key, notes):
    """The elements of a storage from its raw bytes, as a flat writable array."""
    raw = bytearray(raw)  # a writable copy: tensors may be modified in place
    if stype.dtype == "bfloat16":
        if len(raw) % 2:
            raise UnsafeCheckpointError(f"load: {source}: storage {key!r} has an odd size")
        u = np.frombuffer(raw, "<u2" if byteorder == "little" else ">u2")
        notes.append("bfloat16")
        return _bfloat16_to_float32(u.astype(np.uint16))
    dt = stype.dtype.newbyteorder("<" if byteorder == "little" else ">")
    if len(raw) % dt.itemsize:
        raise UnsafeCheckpointError(f"load: {source}: storage {key!r} has {len(raw)} bytes, "
                                    f"not a multiple of {dt.itemsize}")
    arr = np.frombuffer(raw, dt)
    return arr if dt.isnative else arr.astype(stype.dtype)


def _bf16_note(source, notes):
    if notes:
        warnings.warn(f"load: {source} holds bfloat16 tensors, which fastnn has no dtype for; "
                      f"they were converted to float32 (exactly: every bfloat16 is a float32)",
                      stacklevel=4)


def is_torch_zip(zf):
    """The archive folder prefix ('archive/') if `zf` is a torch.save zip, else None."""
    for name in zf.namelist():
        head, sep, tail = name.partition("/")
        if sep and tail == "data.pkl":
            return head + "/"
    return None


def load_torch_zip(zf, prefix, source="file", tensor_factory=None):
    """Unpickle `prefix`data.pkl of the open ZipFile `zf` safely; returns the object, with
    tensors made by tensor_factory(array, requires_grad, parameter)."""
    names = set(zf.namelist())
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise UnsafeCheckpointError(f"load: {source}: unknown byteorder {byteorder!r}")
    notes = []

    def read_storage(key, stype, numel):
        rec = prefix + "data/" + key
        if rec not in names:
            raise UnsafeCheckpointError(f"load: {source} names storage {key!r}, which the "
                                        f"archive lacks: the file is truncated or corrupt")
        arr = _decode_storage(zf.read(rec), stype, byteorder, source, key, notes)
        if arr.size < numel:  # (untyped storages count bytes, and are read as bytes)
            raise UnsafeCheckpointError(f"load: {source}: storage {key!r} holds {arr.size} "
                                        f"elements, the pickle says {numel}: truncated or corrupt")
        return arr

    if prefix + "constants.pkl" in names or any(n.startswith(prefix + "code/") for n in names):
        raise UnsafeCheckpointError(f"load: {source} is a TorchScript archive (torch.jit.save); "
                                    f"fastnn loads plain checkpoints (torch.save) only")
    data = zf.read(prefix + "data.pkl")
    try:
        obj = _SafeUnpickler(io.BytesIO(data), _zip_persistent(read_storage, source),
                             source).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, TypeError, ValueError, AttributeError, IndexError,
            KeyError, EOFError, OverflowError, RecursionError) as e:
        raise CheckpointError(f"load: {source}: its data.pkl is corrupt or not a checkpoint "
                              f"fastnn understands ({type(e).__name__}: {e})") from e
    _bf16_note(source, notes)
    return _finish(obj, tensor_factory)


# ---------------------------------------------------------------- PyTorch's legacy format
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def is_torch_legacy(head):
    """Whether a file starting with `head` (16+ bytes) is torch.save's pre-1.6 format: a pickle
    of the magic number first."""
    probe = pickle.dumps(_LEGACY_MAGIC, protocol=2)
    return head.startswith(probe[:len(head)]) if len(head) < len(probe) \
        else head.startswith(probe)


def load_torch_legacy(fh, source="file", tensor_factory=None, size=None):
    """torch.save(..., _use_new_zipfile_serialization=False): pickles of the magic number, the
    protocol version and system info, then the object (storages as persistent ids
    ('storage', type, key, location, numel, view)), then the list of storage keys, then each
    storage's element count (8 bytes) and bytes. Read with the same allow-list unpickler."""
    def plain():
        return _SafeUnpickler(fh, None, source).load()

    try:
        if plain() != _LEGACY_MAGIC:
            raise CheckpointError(f"load: {source} is not a PyTorch checkpoint (bad magic number)")
        if plain() != _LEGACY_PROTOCOL:
            raise CheckpointError(f"load: {source}: unsupported legacy protocol version")
        info = plain()
        byteorder = "little" if not isinstance(info, dict) or info.get("little_endian", True) \
            else "big"
        storages, stypes, views, budget = {}, {}, {}, [size]

        def persistent(pid):
            if not isinstance(pid, tuple) or not pid:
                raise UnsafeCheckpointError(f"load: {source}: unexpected persistent id")
            kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
            if kind == "module":
                raise UnsafeCheckpointError(
                    f"load: {source} holds a whole pickled nn.Module (torch.save(model)); fastnn "
                    f"loads tensors and containers only: save model.state_dict() instead")
            if kind != "storage" or len(pid) != 6:
                raise UnsafeCheckpointError(f"load: {source}: unexpected persistent id "
                                            f"{pid!r:.80}")
            _, stype, key, _location, numel, view = pid
            if not isinstance(stype, _StorageType) or not isinstance(key, str) or \
                    not isinstance(numel, int) or numel < 0:
                raise UnsafeCheckpointError(f"load: {source}: malformed storage reference")
            st = storages.get(key)
            if st is None:
                itemsize = 2 if stype.dtype == "bfloat16" else stype.dtype.itemsize
                if budget[0] is not None:  # never allocate more than the file could hold
                    budget[0] -= numel * itemsize
                    if budget[0] < 0:
                        raise UnsafeCheckpointError(f"load: {source}: its storages claim more "
                                                    f"bytes than the file holds: corrupt")
                dt = np.dtype(np.float32) if stype.dtype == "bfloat16" else stype.dtype
                st = storages[key] = _Storage(np.zeros(numel, dt), stype.name)
                stypes[key] = stype
            if view is None:
                return st
            view_key, offset, vsize = view
            if view_key not in views:
                if not (0 <= offset and 0 <= vsize and offset + vsize <= st.array.size):
                    raise UnsafeCheckpointError(f"load: {source}: a storage view lies outside "
                                                f"its storage")
                views[view_key] = _Storage(st.array[offset:offset + vsize], st.name)
            return views[view_key]

        obj = _SafeUnpickler(fh, persistent, source).load()
        keys = plain()
        notes = []
        if not isinstance(keys, list):
            raise CheckpointError(f"load: {source}: malformed storage list")
        for key in keys:
            st = storages.get(key)
            if st is None:
                raise CheckpointError(f"load: {source}: unknown storage {key!r}")
            stype = stypes[key]
            head = fh.read(8)
            if len(head) != 8:
                raise CheckpointError(f"load: {source} is truncated")
            count = int.from_bytes(head, "little" if byteorder == "little" else "big")
            itemsize = 2 if stype.dtype == "bfloat16" else stype.dtype.itemsize
            if count != st.array.size:
                raise CheckpointError(f"load: {source}: storage {key!r} has {count} elements, "
                                      f"the pickle says {st.array.size}: corrupt")
            raw = fh.read(count * itemsize)
            if len(raw) != count * itemsize:
                raise CheckpointError(f"load: {source} is truncated")
            st.array[...] = _decode_storage(raw, stype, byteorder, source, key, notes)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, TypeError, ValueError, AttributeError, IndexError,
            KeyError, EOFError, OverflowError, RecursionError) as e:
        raise CheckpointError(f"load: {source}: a corrupt legacy PyTorch file, or not one "
                              f"fastnn understands ({type(e).__name__}: {e})") from e
    _bf16_note(source, notes)
    return _finish(obj, tensor_factory)


def _finish(obj, tensor_factory):
    """Replace _TensorRef stand-ins by tensors in place, in containers of any depth (a tensor
    referenced twice becomes one tensor)."""
    memo = {}

    def conv(x):
        if isinstance(x, _TensorRef):
            t = memo.get(id(x))
            if t is None:
                t = memo[id(x)] = (tensor_factory(x.array, x.requires_grad, x.parameter)
                                   if tensor_factory else x.array)
            return t
        if isinstance(x, (_Storage, _StorageType, _TorchMarker)):
            raise UnsafeCheckpointError(f"load: the checkpoint holds a bare {type(x).__name__[1:]}"
                                        f", which fastnn cannot return")
        if id(x) in memo:
            return memo[id(x)]
        if isinstance(x, dict):
            memo[id(x)] = x
            for k in list(x.keys()):
                x[k] = conv(x[k])
            meta = getattr(x, "__dict__", None)
            if meta:
                for k in list(meta):
                    meta[k] = conv(meta[k])
            return x
        if isinstance(x, list):
            memo[id(x)] = x
            for i, v in enumerate(x):
                x[i] = conv(v)
            return x
        if isinstance(x, tuple):
            out = tuple(conv(v) for v in x)
            memo[id(x)] = out
            return out
        return x
    return conv(obj)


# ---------------------------------------------------------------- writing
class _Global:
    """A global written by name (GLOBAL module name) without importing it."""
    __slots__ = ("module", "name")

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle wants the reduce function to be callable
        raise TypeError(f"{self.module}.{self.name} is a name written into a .pt file")


_REBUILD_V2 = _Global("torch._utils", "_rebuild_tensor_v2")


class _StorageOut:
    __slots__ = ("key", "array", "type_name")

    def __init__(self, key, array, type_name):
        self.key, self.array, self.type_name = key, array, type_name


class _TensorOut:
    __slots__ = ("storage", "shape", "stride", "requires_grad")

    def __init__(self, storage, shape, stride, requires_grad):
        self.storage, self.shape, self.stride = storage, shape, stride
        self.requires_grad = requires_grad


class _TorchPickler(pickle._Pickler):
    """Pickles tensors (as _TensorOut) and plain containers only; refuses every other global."""
    dispatch = pickle._Pickler.dispatch.copy()
    _ok_globals = {(collections.OrderedDict.__module__, "OrderedDict"),
                   (codecs.encode.__module__, "encode")}

    def persistent_id(self, obj):
        if isinstance(obj, _StorageOut):
            return ("storage", _Global("torch", obj.type_name), obj.key, "cpu",
                    int(obj.array.size))
        return None

    def reducer_override(self, obj):
        if isinstance(obj, _TensorOut):
            return (_REBUILD_V2, (obj.storage, 0, obj.shape, obj.stride, obj.requires_grad,
                                  collections.OrderedDict()))
        return NotImplemented

    def save_global(self, obj, name=None):
        if isinstance(obj, _Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
            self.memoize(obj)
            return
        key = (getattr(obj, "__module__", None), name or getattr(obj, "__qualname__", None))
        if key not in self._ok_globals:
            raise pickle.PicklingError(
                f"save: a .pt file written by fastnn holds tensors, containers, numbers and "
                f"strings only; {key[0]}.{key[1]} is none of these")
        super().save_global(obj, name)

    dispatch[_Global] = save_global


def memory_key(arr):
    """What identifies an array's elements in memory (None for an empty one)."""
    if arr.size == 0:
        return None
    return ("memory", arr.__array_interface__["data"][0], arr.shape, arr.strides, arr.dtype.str)


def _to_pickleable(obj, tensor_to_numpy, storages, memo):
    """The object tree with tensors and arrays replaced by _TensorOut (one storage each)."""
    oid = id(obj)
    if oid in memo:
        return memo[oid]
    arr = tensor_to_numpy(obj)
    if arr is not None or isinstance(obj, np.ndarray):
        arr = obj if arr is None else arr
        requires_grad = bool(getattr(obj, "requires_grad", False))
        same_memory = memory_key(arr)  # two tensors over the same memory (tied weights, or
        if same_memory is not None and same_memory in memo:  # views a state dict handed out)
            out = memo[oid] = memo[same_memory]  # are written once, as torch.save does
            return out
        if arr.dtype.kind in "US" and arr.ndim == 0:  # a string kept in an array
            out = str(arr[()])
        else:
            name = _STORAGE_FOR_DTYPE.get(arr.dtype.newbyteorder("="))
            if name is None:
                raise TypeError(f"save: a .pt file cannot hold an array of dtype {arr.dtype}")
            flat = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False)
            st = _StorageOut(str(len(storages)), flat.reshape(-1), name)
            storages.append(st)
            stride, acc = [], 1
            for n in reversed(arr.shape):
                stride.append(acc)
                acc *= max(n, 1)
            out = _TensorOut(st, tuple(int(n) for n in arr.shape), tuple(reversed(stride)),
                             requires_grad and arr.dtype.kind in "fc")
            if same_memory is not None:
                memo[same_memory] = out
                memo[("alive",) + same_memory] = arr  # its address stays taken meanwhile
        memo[oid] = out
        return out
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return obj
    if isinstance(obj, np.dtype):  # written as torch's dtype of that name (torch.float32)
        name = _TORCH_DTYPE_NAMES.get(obj.newbyteorder("="))
        if name is None:
            raise TypeError(f"save: a .pt file cannot hold the dtype {obj}")
        return _Global("torch", name)
    if isinstance(obj, dict):
        if type(obj) is collections.OrderedDict or isinstance(obj, collections.OrderedDict):
            out = collections.OrderedDict()
        else:
            out = {}
        memo[oid] = out
        for k, v in obj.items():
            out[_to_pickleable(k, tensor_to_numpy, storages, memo)] = \
                _to_pickleable(v, tensor_to_numpy, storages, memo)
        return out
    if isinstance(obj, list):
        out = []
        memo[oid] = out
        out.extend(_to_pickleable(v, tensor_to_numpy, storages, memo) for v in obj)
        return out
    if isinstance(obj, tuple):  # namedtuples and torch.Size-like tuples become plain tuples
        out = tuple(_to_pickleable(v, tensor_to_numpy, storages, memo) for v in obj)
        memo[oid] = out
        return out
    if isinstance(obj, (set, frozenset)):
        raise TypeError("save: a .pt file written by fastnn cannot hold sets")
    raise TypeError(f"save: a .pt file holds tensors, dicts, lists, tuples, numbers and strings "
                    f"only; got a {type(obj).__module__}.{type(obj).__qualname__}")


def _write_record(zf, name, payload, align=64):
    """Write one stored (uncompressed) record whose data starts on an `align`-byte boundary, as
    torch does (its loader can then map storages from the file)."""
    data = payload if isinstance(payload, (bytes, bytearray)) else None
    nbytes = len(data) if data is not None else payload.nbytes
    zinfo = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    zinfo.compress_type = zipfile.ZIP_STORED
    zinfo.file_size = nbytes
    zip64 = nbytes > zipfile.ZIP64_LIMIT
    start = zf.start_dir
    fixed = 30 + len(name.encode("utf-8")) + 4 + (20 if zip64 else 0)
    pad = (-(start + fixed)) % align
    zinfo.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # 'FB', as torch pads
    with zf.open(zinfo, "w", force_zip64=zip64) as w:
        if data is not None:
            w.write(data)
        else:
            w.write(memoryview(payload.reshape(-1).view(np.uint8)))


def save_torch_zip(obj, fileobj, tensor_to_numpy, archive="archive"):
    """Write `obj` to the binary file object in torch.save's zip format (see module doc)."""
    storages = []
    tree = _to_pickleable(obj, tensor_to_numpy, storages, {})
    buf = io.BytesIO()
    _TorchPickler(buf, protocol=2).dump(tree)
    with zipfile.ZipFile(fileobj, "w", zipfile.ZIP_STORED) as zf:
        p = archive + "/"
        _write_record(zf, p + "data.pkl", buf.getvalue())
        _write_record(zf, p + ".format_version", b"1")
        _write_record(zf, p + ".storage_alignment", b"64")
        _write_record(zf, p + "byteorder", b"little")
        for st in storages:
            _write_record(zf, p + "data/" + st.key, st.array)
        _write_record(zf, p + "version", b"3\n")
        _write_record(zf, p + ".data/serialization_id",
                      str(secrets.randbits(128)).zfill(40).encode("ascii"))
