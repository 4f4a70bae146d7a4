"""Kernels behind DeviceArray (array.py): fill, strided copy, elementwise, reductions, gather.

Every kernel takes flat 1-D device buffers plus element offsets and strides (tuples, passed by
value), so one compiled kernel serves views of any layout; the tuples' length (ndim) is part of
numba's specialization key, so each ndim compiles once. Kernels use grid-stride loops: any grid
covers any size, and every index is checked against the size before a write.
"""
import functools

import numpy as np
from numba import cuda

from .common import grid_1d, launch


@functools.cache
def _fill_kernel(dtype):
    @cuda.jit
    def fill(buf, offset, shape, strides, n, value):
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            pos = offset
            rem = i
            for d in range(len(shape) - 1, -1, -1):
                k = rem % shape[d]
                rem //= shape[d]
                pos += k * strides[d]
            buf[pos] = value
    return fill


def fill(buf, offset, shape, strides, value):
    """buf[view] = value for the strided view (offset, shape, strides) of a flat buffer."""
    n = 1
    for s in shape:
        n *= s
    if n == 0:
        return
    dtype = buf.dtype
    blocks, threads = grid_1d(n)
    launch(_fill_kernel(dtype), blocks, threads, buf, int(offset), tuple(int(s) for s in shape),
           tuple(int(s) for s in strides), n, dtype.type(value))


@functools.cache
def _iota_kernel(dtype):
    @cuda.jit
    def iota(buf, start, step):
        for i in range(cuda.grid(1), buf.size, cuda.gridsize(1)):
            buf[i] = start + i * step
    return iota


def iota(buf, start, step):
    """buf[i] = start + i * step (np.arange's values)."""
    n = buf.size
    if n == 0:
        return
    blocks, threads = grid_1d(n)
    dtype = buf.dtype
    kind = np.float64 if dtype.kind == "f" else np.int64
    launch(_iota_kernel(dtype), blocks, threads, buf, kind(start), kind(step))
