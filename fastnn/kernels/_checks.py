"""Validation helpers shared by the checked kernel API: each raises a clear TypeError, ValueError
or IndexError naming the kernel and the argument, before any compiled code runs."""
import numpy as np

from .dispatch import get_backend, resolve  # noqa: F401  (used by the family modules)

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _float_array(kernel, name, x, dtype=None):
    x = np.asarray(x)
    if x.dtype not in _FLOATS:
        raise TypeError(f"{kernel}: {name} has unsupported dtype {x.dtype}; "
                        f"expected float32 or float64")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{kernel}: {name} has dtype {x.dtype} but the other inputs are {dtype}")
    return np.ascontiguousarray(x)


def _same_shape(kernel, names, arrays):
    shape = arrays[0].shape
    for n, a in zip(names[1:], arrays[1:]):
        if a.shape != shape:
            raise ValueError(f"{kernel}: {names[0]} has shape {shape} but {n} has shape {a.shape}")


def _ndim(kernel, name, x, ndim):
    if x.ndim != ndim:
        raise ValueError(f"{kernel}: {name} must be {ndim}-D, got shape {x.shape}")


def _at_least_1d(kernel, name, x):
    if x.ndim < 1:
        raise ValueError(f"{kernel}: {name} must have at least one dimension, got a scalar")


def _index_array(kernel, name, ids):
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{kernel}: {name} must be an integer array, got dtype {ids.dtype}")
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    return ids


def _check_range(kernel, name, ids, high, allowed=None):
    if ids.size == 0:
        return
    bad = (ids < 0) | (ids >= high)
    if allowed is not None:
        bad &= ids != allowed
    if bad.any():
        first = int(ids[bad][0])
        raise IndexError(f"{kernel}: {name} value {first} is out of range [0, {high})")


def _rows(x):
    """View an (..., C) array as (N, C)."""
    return x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x


def _gemm_operand(x, trans):
    """Pass an F-contiguous (e.g. transposed) operand without copying by flipping its flag."""
    if not x.flags.c_contiguous and x.ndim == 2 and x.flags.f_contiguous:
        return x.T, not trans
    return np.ascontiguousarray(x), trans




# ---------------------------------------------------------------- for the trusted entry point
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def ready(dt, *arrays):
    """True when arrays can go to a backend kernel as they are: all of float dtype dt (float32 or
    float64), C-contiguous and non-empty. The trusted entry points check this (and the few shape
    facts a kernel needs) instead of the full validation, and fall back to it otherwise."""
    if dt is not _F32 and dt is not _F64:
        return False
    for x in arrays:
        if x.dtype is not dt or not x.flags.c_contiguous or not x.size:
            return False
    return True
