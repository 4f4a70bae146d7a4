"""What fastnn's Tensor layer needs of DeviceArray beyond array.py's API, kept apart from it.

reshape_view: numpy's no-copy reshape for strided views. array.py's reshape copies any
non-contiguous array first, so Tensor.view of a strided view (a split's part viewed with more
dims, as GPT's cached attention does) would refuse where PyTorch and numpy give a view. numpy
itself computes the view's strides here, on a zero-stride-free stand-in array that is never
read (np.reshape(copy=False) only derives strides, or raises when a copy would be needed).
"""
import numpy as np

from .array import DeviceArray


def reshape_view(d, shape):
    """d reshaped to `shape` as a view sharing d's memory, or None when no view can be."""
    itemsize = d.dtype.itemsize
    if any(s % itemsize for s in d.strides):
        return None
    stand_in = np.lib.stride_tricks.as_strided(np.zeros(1, d.dtype), shape=d.shape,
                                               strides=d.strides)
    try:
        r = np.reshape(stand_in, shape, copy=False)
    except ValueError:
        return None
    return DeviceArray(d._buf, d._offset, r.shape, tuple(s // itemsize for s in r.strides),
                       d.dtype, d.device_index)
