"""default_collate and default_convert, with PyTorch's rules.

default_collate turns a list of samples into a batch: tensors and numpy arrays are stacked on a
new first axis, Python ints become an int64 tensor, floats a float64 tensor, bools a bool tensor,
numpy scalars a tensor of their dtype, strings and bytes stay a list; dicts, namedtuples, lists
and tuples are collated field by field (a tuple comes back as a list, as in PyTorch).
default_convert (the collate_fn when batch_size=None) turns numpy arrays into tensors and leaves
everything else as it is, recursing into containers.
"""
import collections.abc
import copy
import re

import numpy as np

from ....tensor import Tensor, stack as _stack

__all__ = ["default_collate", "default_convert", "collate"]

_NP_STR_OBJ = re.compile(r"[SaUO]")
_ERR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
        "found {}")


def _array(t):
    d = t._data
    if isinstance(d, np.ndarray):
        return d
    return np.asarray(t.detach().cpu().numpy())


def _collate_tensors(batch):
    arrays = [_array(t) for t in batch]
    shape = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.shape != shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(shape)} at entry 0 and {list(a.shape)} at entry {i}")
    if any(getattr(t, "requires_grad", False) for t in batch):
        return _stack(list(batch), 0)  # keeps the graph, as torch.stack does
    return Tensor(np.stack(arrays))


def _is_numpy(elem):
    t = type(elem)
    return t.__module__ == "numpy" and t.__name__ not in ("str_", "bytes_", "string_")


def collate(batch):
    """The recursion behind default_collate."""
    elem = batch[0]
    elem_type = type(elem)
    if isinstance(elem, Tensor):
        return _collate_tensors(batch)
    if _is_numpy(elem):
        if isinstance(elem, np.ndarray):
            if _NP_STR_OBJ.search(elem.dtype.str) is not None:
                raise TypeError(_ERR.format(elem.dtype))
            return _collate_tensors([Tensor(np.asarray(b)) for b in batch])
        if getattr(elem, "shape", None) == ():  # numpy scalars
            return Tensor(np.array(batch, dtype=np.result_type(*batch)))
    if isinstance(elem, bool):
        return Tensor(np.array(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        try:
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update({key: collate([d[key] for d in batch]) for key in elem})
                return clone
            return elem_type({key: collate([d[key] for d in batch]) for key in elem})
        except TypeError:
            return {key: collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return elem_type(*(collate(samples) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        it = iter(batch)
        elem_size = len(next(it))
        if not all(len(e) == elem_size for e in it):
            raise RuntimeError("each element in list of batch should be of equal size")
        transposed = list(zip(*batch))
        if isinstance(elem, tuple):
            return [collate(samples) for samples in transposed]
        try:
            if isinstance(elem, collections.abc.MutableSequence):
                clone = copy.copy(elem)
                for i, samples in enumerate(transposed):
                    clone[i] = collate(samples)
                return clone
            return elem_type([collate(samples) for samples in transposed])
        except TypeError:
            return [collate(samples) for samples in transposed]
    raise TypeError(_ERR.format(elem_type))


def default_collate(batch):
    """Stack a list of samples into a batch (see the module doc)."""
    if not isinstance(batch, (list, tuple)):
        batch = list(batch)
    if len(batch) == 0:
        raise IndexError("default_collate: got an empty batch")
    return collate(batch)


def default_convert(data):
    """numpy arrays (and numpy scalars) to tensors, recursing into containers; the rest as is."""
    elem_type = type(data)
    if isinstance(data, Tensor):
        return data
    if _is_numpy(data):
        if isinstance(data, np.ndarray) and _NP_STR_OBJ.search(data.dtype.str) is not None:
            return data
        return Tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)
                clone.update({key: default_convert(data[key]) for key in data})
                return clone
            return elem_type({key: default_convert(data[key]) for key in data})
        except TypeError:
            return {key: default_convert(data[key]) for key in data}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return elem_type(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            if isinstance(data, collections.abc.MutableSequence):
                clone = copy.copy(data)
                for i, d in enumerate(data):
                    clone[i] = default_convert(d)
                return clone
            return elem_type([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data
