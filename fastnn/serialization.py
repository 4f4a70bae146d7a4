"""Checkpoints: fastnn.save(obj, f) and fastnn.load(f), in three formats, none of them pickle.

    fastnn.save(model.state_dict(), "model.npz")              # fastnn's own: .npz, no pickle
    fastnn.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, buf)
    fastnn.save(model.state_dict(), "model.pt")               # PyTorch's zip format, tensors only
    fastnn.save(model.state_dict(), "model.safetensors")      # through the safetensors package
    model.load_state_dict(fastnn.load("model.pt"))            # also files written by torch.save

The format follows the file name: `.pt`/`.pth` write PyTorch's format (torch.load(path,
weights_only=True) reads it), `.safetensors` the safetensors format, anything else fastnn's .npz;
`format="npz"|"pt"|"safetensors"` chooses explicitly (file objects default to .npz). Loading
recognises the format from the file's contents, whatever its name.

fastnn's .npz: every array is one `<name>.npy` member (the layout np.savez writes, so numpy reads
it too) and the member `__fastnn__.npy` holds, as JSON text, the structure of the saved object
(dicts, OrderedDicts, lists, tuples, numbers, strings, None) with each array's member name and
whether it was a Tensor or a numpy array, so load() returns what was saved: nested containers,
fastnn Tensors for Tensors, numpy arrays for arrays. A file without that member (fastnn's first
checkpoints, or np.savez output) loads as a flat dict of numpy arrays, as it always did.

Safety: nothing is ever unpickled with pickle's default find_class. .npz arrays are read with
allow_pickle=False; PyTorch's data.pkl goes through an allow-list unpickler
(fastnn/_pt_format.py) that refuses any global but tensors, storages and plain containers, with
weights_only=True and False alike. Saving writes a temp file in the target's directory, fsyncs
it and renames it over the target (os.replace is atomic), for every format, so a failed or
interrupted save leaves any previous file intact.
"""
import collections
import io
import json
import os
import struct
import tempfile
import warnings
import zipfile
import zlib

import numpy as np

from . import _pt_format
from ._pt_format import CheckpointError, UnsafeCheckpointError
from .tensor import Tensor, _on_gpu

__all__ = ["save", "load", "CheckpointError", "UnsafeCheckpointError", "save_file", "load_file"]

_ZIP_MAGIC = b"PK\x03\x04"
_MANIFEST = "__fastnn__"
_PT_SUFFIXES = (".pt", ".pth")
_ST_SUFFIXES = (".safetensors",)


# ---------------------------------------------------------------- helpers
_host_copies = [None]   # during save(): id(device storage) -> its host copy


def _tensor_array(x):
    """The numpy array behind a fastnn Tensor or a torch tensor, else None. A tensor on a GPU
    gives a host copy (one counted transfer), made once per storage during a save, so tied
    weights on a GPU are still written once."""
    if isinstance(x, Tensor):
        d = x._data
        if isinstance(d, np.ndarray):
            return d
        cache = _host_copies[0]
        host = cache.get(id(d)) if cache is not None else None
        if host is None:
            host = np.asarray(x.detach().cpu().numpy())
            if cache is not None:
                cache[id(d)] = host
        return host
    if type(x).__module__.startswith("torch") and hasattr(x, "detach") and hasattr(x, "cpu"):
        t = x.detach().cpu()
        if str(getattr(t, "dtype", "")) == "torch.bfloat16":
            t = t.float()
        return t.numpy()
    return None


def _make_tensor(array, requires_grad=False, parameter=False):
    """A fastnn Tensor over `array` (half precision becomes float32 if Tensor refuses it)."""
    rg = bool(requires_grad) and array.dtype.kind in "fc"
    try:
        return Tensor(array, requires_grad=rg)
    except TypeError:
        if array.dtype == np.float16:
            warnings.warn("load: float16 tensors converted to float32", stacklevel=4)
            return Tensor(array.astype(np.float32), requires_grad=rg)
        raise


def _name_of(f):
    if isinstance(f, (str, bytes, os.PathLike)):
        return os.fsdecode(os.fspath(f))
    name = getattr(f, "name", None)
    return name if isinstance(name, str) else None


def _format_for(f, format):
    if format is not None:
        fmt = {"npz": "npz", "fastnn": "npz", "pt": "pt", "pth": "pt", "torch": "pt",
               "safetensors": "safetensors"}.get(str(format).lower().lstrip("."))
        if fmt is None:
            raise ValueError(f"save: unknown format {format!r}; use 'npz', 'pt' or 'safetensors'")
        return fmt
    name = (_name_of(f) or "").lower()
    if name.endswith(_PT_SUFFIXES):
        return "pt"
    if name.endswith(_ST_SUFFIXES):
        return "safetensors"
    return "npz"


def _atomic_write(f, write):
    """Call write(binary_file); to a path: through a temp file, fsync and os.replace."""
    if not isinstance(f, (str, bytes, os.PathLike)):
        if not hasattr(f, "write"):
            raise TypeError(f"save: expected a path or a binary file object, got "
                            f"{type(f).__name__}")
        write(f)
        if hasattr(f, "flush"):
            f.flush()
        return
    path = os.fsdecode(os.fspath(f))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


# ---------------------------------------------------------------- fastnn's .npz
_KEY_TYPES = (str, int, float, bool, type(None))


def _flatten(obj):
    """(manifest tree, {member name: array}) for fastnn's .npz format."""
    arrays, memo = {}, {}

    def member(path):
        base = ".".join(path) if path else "value"
        base = base.replace("/", "_")
        name, i = base, 1
        while name in arrays or name == _MANIFEST:
            name, i = f"{base}~{i}", i + 1
        return name

    def enc(x, path):
        arr = _tensor_array(x)
        if arr is not None or isinstance(x, np.ndarray):
            kind = "tensor" if arr is not None else "ndarray"
            arr = x if arr is None else arr
            if arr.dtype.hasobject:
                raise TypeError(f"save: {'.'.join(path)!r} is not a numeric array (dtype "
                                f"{arr.dtype}); checkpoints hold arrays, numbers and strings "
                                f"only, never pickled objects")
            key = (kind, _pt_format.memory_key(arr) or id(x))
            name = memo.get(key)
            if name is None:  # (tensors over the same memory, as tied weights, stored once)
                name = memo[key] = member(path)
                arrays[name] = arr
            node = {"T": kind, "k": name}
            if kind == "tensor" and getattr(x, "requires_grad", False):
                node["rg"] = True
            return node
        if isinstance(x, np.generic):
            name = member(path)
            arrays[name] = np.asarray(x)
            return {"T": "npscalar", "k": name}
        if x is None or isinstance(x, (bool, int, str)):
            return x
        if isinstance(x, float):
            return x if np.isfinite(x) else {"T": "float", "v": repr(x)}
        if isinstance(x, complex):
            return {"T": "complex", "v": [enc(x.real, path), enc(x.imag, path)]}
        if isinstance(x, bytes):
            return {"T": "bytes", "v": x.hex()}
        if isinstance(x, np.dtype):
            return {"T": "dtype", "v": x.str}
        if isinstance(x, dict):
            items = []
            for k, v in x.items():
                if not isinstance(k, _KEY_TYPES):
                    raise TypeError(f"save: dict keys must be strings or numbers, got {k!r}")
                items.append([enc(k, path), enc(v, path + [str(k)])])
            return {"T": "odict" if isinstance(x, collections.OrderedDict) else "dict",
                    "items": items}
        if isinstance(x, (list, tuple)):
            v = [enc(e, path + [str(i)]) for i, e in enumerate(x)]
            return {"T": "list" if isinstance(x, list) else "tuple", "v": v}
        raise TypeError(f"save: cannot store a {type(x).__module__}.{type(x).__qualname__} "
                        f"(at {'.'.join(path) or 'the top level'!r}) in a checkpoint: "
                        f"checkpoints hold tensors, arrays, numbers, strings and dicts, lists "
                        f"and tuples of them, never pickled objects")

    return enc(obj, []), arrays


def _unflatten(tree, arrays, source):
    tensors = {}

    def dec(n):
        if not isinstance(n, dict):
            return n
        t = n.get("T")
        if t in ("tensor", "ndarray", "npscalar"):
            try:
                arr = arrays[n["k"]]
            except KeyError:
                raise CheckpointError(f"load: {source} lacks the array {n.get('k')!r} its index "
                                      f"names: the file is corrupt") from None
            if t == "ndarray":
                return arr
            if t == "npscalar":
                return arr[()]
            key = (n["k"], bool(n.get("rg")))
            if key not in tensors:
                tensors[key] = _make_tensor(arr, n.get("rg", False))
            return tensors[key]
        if t == "float":
            return float(n["v"])
        if t == "complex":
            return complex(dec(n["v"][0]), dec(n["v"][1]))
        if t == "bytes":
            return bytes.fromhex(n["v"])
        if t == "dtype":
            return np.dtype(n["v"])
        if t in ("dict", "odict"):
            out = collections.OrderedDict() if t == "odict" else {}
            for k, v in n["items"]:
                out[dec(k)] = dec(v)
            return out
        if t == "list":
            return [dec(v) for v in n["v"]]
        if t == "tuple":
            return tuple(dec(v) for v in n["v"])
        raise CheckpointError(f"load: {source} has an index entry of unknown kind {t!r} (written "
                              f"by a newer fastnn?)")
    return dec(tree)


def _save_npz(obj, fh):
    tree, arrays = _flatten(obj)
    manifest = np.array(json.dumps({"format": "fastnn", "version": 2, "root": tree},
                                   allow_nan=False))
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        for name, arr in [(_MANIFEST, manifest)] + list(arrays.items()):
            with zf.open(name + ".npy", "w", force_zip64=True) as m:  # as np.savez lays it out
                np.lib.format.write_array(m, arr, allow_pickle=False)


def _load_npz(zf, source):
    out = {}
    for name in zf.namelist():
        if not name.endswith(".npy"):
            raise CheckpointError(f"load: {source} contains {name!r}, which is not an array; "
                                  f"refusing to load it")
        with zf.open(name) as member:
            out[name[:-4]] = np.lib.format.read_array(member, allow_pickle=False)
    manifest = out.pop(_MANIFEST, None)
    if manifest is None:  # fastnn's first format, or np.savez: a flat dict of arrays
        return out
    try:
        info = json.loads(str(manifest[()]))
        tree = info["root"]
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"load: {source} has an unreadable index: {e}") from e
    return _unflatten(tree, out, source)


# ---------------------------------------------------------------- safetensors
def _safetensors_numpy():
    try:
        import safetensors.numpy as stnp
    except ImportError as e:
        raise ImportError("safetensors files need the safetensors package: "
                          "pip install safetensors") from e
    return stnp


def _flat_arrays(tensors, what):
    if not hasattr(tensors, "items"):
        raise TypeError(f"{what}: a safetensors file holds a flat dict of names to tensors, got "
                        f"{type(tensors).__name__}")
    out = {}
    for k, v in tensors.items():
        if not isinstance(k, str):
            raise TypeError(f"{what}: keys must be strings, got {k!r}")
        arr = _tensor_array(v)
        if arr is None:
            if not isinstance(v, np.ndarray):
                raise TypeError(f"{what}: {k!r} is a {type(v).__name__}; a safetensors file "
                                f"holds tensors only (put numbers and strings in metadata=)")
            arr = v
        out[k] = np.ascontiguousarray(arr)
    return out


def _save_safetensors(tensors, fh, metadata=None):
    data = _safetensors_numpy().save(_flat_arrays(tensors, "save"), metadata=metadata)
    fh.write(data)


def _load_safetensors_bytes(data, source):
    try:
        arrays = _safetensors_numpy().load(data)
    except Exception as e:  # numpy lacks bfloat16: parse those files ourselves
        if "bf16" not in str(e).lower() and "bfloat16" not in str(e).lower():
            raise CheckpointError(f"load: {source} is not a readable safetensors file: "
                                  f"{e}") from e
        arrays = _load_safetensors_bf16(data, source)
    return {k: _make_tensor(np.array(v)) for k, v in arrays.items()}


def _load_safetensors_bf16(data, source):
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    dtypes = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?", "BF16": "bf16"}
    out = {}
    for k, info in header.items():
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        dt = dtypes.get(info["dtype"])
        if dt is None:
            raise CheckpointError(f"load: {source}: {k!r} has dtype {info['dtype']}, which "
                                  f"fastnn cannot hold")
        arr = (_pt_format._bfloat16_to_float32(np.frombuffer(raw, "<u2")) if dt == "bf16"
               else np.frombuffer(raw, dt).astype(np.dtype(dt).newbyteorder("=")))
        out[k] = arr.reshape(info["shape"])
    warnings.warn(f"load: {source} holds bfloat16 tensors, which fastnn has no dtype for; they "
                  f"were converted to float32", stacklevel=4)
    return out


def save_file(tensors, filename, metadata=None):
    """safetensors' save_file: a flat dict of names to tensors (or arrays), atomically; metadata
    is an optional dict of strings to strings stored in the header."""
    _atomic_write(filename, lambda fh: _save_safetensors(tensors, fh, metadata))


def load_file(filename, device="cpu"):
    """safetensors' load_file: a dict of names to fastnn Tensors."""
    with open(os.fspath(filename), "rb") as fh:
        return _load_safetensors_bytes(fh.read(), os.fspath(filename))


def _is_safetensors(head, size):
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n = struct.unpack("<Q", head[:8])[0]
    return 2 <= n <= size - 8 if size is not None else n >= 2


# ---------------------------------------------------------------- the public API
def save(obj, f, pickle_module=None, pickle_protocol=2, *, format=None, metadata=None,
         _use_new_zipfile_serialization=True):
    """Write `obj` (a state dict, or nested dicts/lists/tuples of tensors, arrays, numbers and
    strings) to `f`, a path or a binary file object. The format follows the name (see the
    module doc) or `format=`; writes to a path are atomic."""
    if pickle_module is not None:
        raise ValueError("save: fastnn never pickles; pickle_module is not supported")
    fmt = _format_for(f, format)
    _host_copies[0] = {}
    try:
        _save(_host_arrays(obj, {}), f, fmt, metadata)
    finally:
        _host_copies[0] = None


def _host_arrays(obj, memo):
    """obj with raw device arrays (a GPU optimizer's state) as host copies, containers copied
    only where one changes; tensors stay (_tensor_array copies those)."""
    if _on_gpu(obj):
        if id(obj) not in memo:
            memo[id(obj)] = obj.get()   # one counted copy per array
        return memo[id(obj)]
    if isinstance(obj, dict):
        new = {k: _host_arrays(v, memo) for k, v in obj.items()}
        if all(new[k] is obj[k] for k in obj):
            return obj
        out = type(obj)() if type(obj) is not dict else {}
        out.update(new)
        return out
    if type(obj) in (list, tuple):
        new = [_host_arrays(v, memo) for v in obj]
        return obj if all(a is b for a, b in zip(new, obj)) else type(obj)(new)
    return obj


def _save(obj, f, fmt, metadata):
    if fmt == "npz":
        _flatten(obj)  # type errors before a file is touched
        writer = lambda fh: _save_npz(obj, fh)  # noqa: E731
    elif fmt == "pt":
        stem = os.path.splitext(os.path.basename(_name_of(f) or "archive"))[0] or "archive"
        archive = "".join(c if c.isalnum() or c in "_-" else "_" for c in stem)
        writer = lambda fh: _pt_format.save_torch_zip(obj, fh, _tensor_array,  # noqa: E731
                                                      archive=archive or "archive")
    else:
        _flat_arrays(obj, "save")
        writer = lambda fh: _save_safetensors(obj, fh, metadata)  # noqa: E731
    _atomic_write(f, writer)


def _apply_map_location(obj, map_location):
    if map_location is None:
        return obj
    if isinstance(map_location, dict):
        target = map_location.get("cpu", "cpu")
    else:
        target = map_location
    if callable(target) and not isinstance(target, str):  # torch's (storage, location) hook
        fn = target

        def move(t):
            r = fn(t, "cpu")
            return t if r is None else r
    else:
        dev = str(target)
        if dev.split(":")[0] == "cpu":
            return obj

        def move(t):
            # a leaf on the device, of the same class (a Parameter stays one), as torch.load's
            moved = t.detach().to(dev)
            if type(t) is not Tensor:
                new = type(t).__new__(type(t))
                Tensor.__init__(new, moved._data, t.requires_grad)
                return new
            return moved.requires_grad_(True) if t.requires_grad else moved
    memo = {}

    def walk(x):
        if isinstance(x, Tensor):
            if id(x) not in memo:
                memo[id(x)] = move(x)
            return memo[id(x)]
        if isinstance(x, dict):
            for k in list(x):
                x[k] = walk(x[k])
            return x
        if isinstance(x, list):
            x[:] = [walk(v) for v in x]
            return x
        if isinstance(x, tuple):
            return type(x)(walk(v) for v in x) if type(x) is tuple else x
        return x
    return walk(obj)


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None,
         **pickle_load_args):
    """Read what save() wrote, or a .pt file written by torch.save (safely: see the module
    doc; its legacy pre-1.6 format too), or a safetensors file. `f` is a path or a binary file
    object. Tensors come back as fastnn Tensors, on the CPU, or where map_location says: a
    device ('cpu', 'cuda', 'cuda:0', a fastnn.device), a {'cpu': device} dict, or a
    function(tensor, location), as in torch.load. weights_only=False loads nothing
    more: fastnn never unpickles arbitrary objects."""
    if pickle_module is not None:
        raise ValueError("load: fastnn never unpickles arbitrary objects; pickle_module is not "
                         "supported")
    if isinstance(f, (str, bytes, os.PathLike)):
        source = os.fsdecode(os.fspath(f))
        with open(source, "rb") as fh:
            return _apply_map_location(_load_from(fh, source), map_location)
    if not hasattr(f, "read"):
        raise TypeError(f"load: expected a path or a binary file object, got {type(f).__name__}")
    source = _name_of(f) or "the file object"
    fh = f
    if not (hasattr(f, "seekable") and f.seekable()):
        fh = io.BytesIO(f.read())
    return _apply_map_location(_load_from(fh, source), map_location)


def _load_from(fh, source):
    start = fh.tell()
    head = fh.read(16)
    fh.seek(start)
    if head[:4] == _ZIP_MAGIC:
        try:
            with zipfile.ZipFile(fh) as zf:
                prefix = _pt_format.is_torch_zip(zf)
                if prefix is not None:
                    return _pt_format.load_torch_zip(zf, prefix, source, _make_tensor)
                return _load_npz(zf, source)
        except CheckpointError:
            raise
        except ValueError as e:
            if "pickle" in str(e).lower():
                raise CheckpointError(f"load: {source} holds a pickled object array, which "
                                      f"fastnn refuses to load (unpickling can run arbitrary "
                                      f"code)") from e
            raise CheckpointError(f"load: {source} is corrupt: {e}") from e
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError) as e:
            raise CheckpointError(f"load: {source} is truncated or corrupt: {e}") from e
    size = None
    try:
        size = os.fstat(fh.fileno()).st_size - start
    except (OSError, AttributeError, io.UnsupportedOperation):
        pass
    if _is_safetensors(head, size):
        return _load_safetensors_bytes(fh.read(), source)
    if _pt_format.is_torch_legacy(head):
        return _pt_format.load_torch_legacy(fh, source, _make_tensor, size)
    if head[:1] == b"\x80":
        raise CheckpointError(
            f"load: {source} is a bare Python pickle, which fastnn refuses to load: unpickling "
            f"can run arbitrary code. Save tensors with fastnn.save or torch.save (its zip "
            f"format), or as .safetensors")
    raise CheckpointError(f"load: {source} is not a fastnn checkpoint (.npz), a PyTorch .pt zip "
                          f"or a safetensors file: it starts with {head[:4]!r}"
                          + (" (empty file)" if not head else ""))
