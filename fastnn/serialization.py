"""Checkpoints: fastnn.save(state_dict, path) and fastnn.load(path), as .npz without pickle.

Loading never unpickles (allow_pickle=False), so a checkpoint cannot run code; a pickled, truncated
or corrupt file is refused with a CheckpointError that says what is wrong. Saving writes a temp
file in the same directory and renames it over the target (os.replace is atomic), so a crash
mid-save leaves any previous checkpoint intact.
"""
import os
import tempfile
import zipfile
import zlib

import numpy as np

from .tensor import Tensor

__all__ = ["save", "load", "CheckpointError"]

_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(ValueError):
    """A file that is not a readable fastnn checkpoint."""


def _as_array(key, value):
    if isinstance(value, Tensor):
        value = value.data
    elif hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype.hasobject:
        raise TypeError(f"save: {key!r} is not a numeric array (dtype {arr.dtype}); checkpoints "
                        f"hold arrays, numbers and strings only, never pickled objects")
    return arr


def save(state_dict, path):
    """Write a mapping of names to arrays (numpy arrays, Tensors, numbers, strings) to `path`."""
    if not hasattr(state_dict, "items"):
        raise TypeError(f"save: expected a mapping of names to arrays (e.g. model.state_dict()), "
                        f"got {type(state_dict).__name__}")
    arrays = {}
    for k, v in state_dict.items():
        if not isinstance(k, str):
            raise TypeError(f"save: keys must be strings, got {k!r}")
        arrays[k] = _as_array(k, v)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
                for k, arr in arrays.items():  # the layout np.savez writes, but never pickling
                    with zf.open(k + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load(path):
    """Read a checkpoint written by save(): a dict of names to numpy arrays."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head != _ZIP_MAGIC:
        if head[:1] == b"\x80":
            raise CheckpointError(f"load: {path} is a Python pickle, which fastnn refuses to load "
                                  f"(unpickling can run arbitrary code). Re-save it as arrays, "
                                  f"e.g. fastnn.save({{k: v.numpy() for k, v in sd.items()}}, ...)")
        raise CheckpointError(f"load: {path} is not a fastnn checkpoint (.npz archive): it starts "
                              f"with {head!r}" + (" (empty file)" if not head else ""))
    try:
        out = {}
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if not name.endswith(".npy"):
                    hint = (" (a PyTorch checkpoint: load it with torch and convert with "
                            ".numpy())" if name.endswith(".pkl") else "")
                    raise CheckpointError(f"load: {path} contains {name!r}, which is not an array; "
                                          f"refusing to load it{hint}")
                with zf.open(name) as member:
                    out[name[:-4]] = np.lib.format.read_array(member, allow_pickle=False)
        return out
    except CheckpointError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) or "pickle" in str(e).lower():
            raise CheckpointError(f"load: {path} holds a pickled object array, which fastnn "
                                  f"refuses to load (unpickling can run arbitrary code)") from e
        raise CheckpointError(f"load: {path} is corrupt: {e}") from e
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise CheckpointError(f"load: {path} is truncated or corrupt: {e}") from e
