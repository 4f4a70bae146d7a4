"""A caching allocator for the cuda backend's device memory.

cudaMalloc and cudaFree synchronize the device and cost tens of microseconds each; a training
step allocates hundreds of temporaries of a few recurring sizes. So freed blocks are not given
back to the driver: they go to a free list keyed by their size class and the next request of
that class reuses one (PyTorch's caching allocator does the same). empty_cache() hands the
cached blocks back.

Sizes are rounded up to a size class: multiples of 512 bytes up to 1 MiB, above that eight
classes per doubling (at most 12.5% waste), so tensors of nearby sizes share blocks.

Storage type. A block is handed out as a numba device array (numba's DeviceNDArray, or the
simulator's FakeCUDAArray over a numpy buffer). Those implement the CUDA array interface, so
CuPy, PyTorch (torch.as_tensor) and numba kernels all take them without a copy, numba.cuda is
already the backend's kernel language, and the same code runs on Numba's CUDA simulator, which
is how CI tests it. CuPy would give more ready-made kernels but is a large optional dependency
without a simulator.

When a block returns to its free list: the handle given out is reference counted the way numba
counts its own allocations (a numba AutoFreePointer whose finalizer returns the block here;
every view numba derives from it holds a reference), so a block is reused only once no array
or view of it is alive. On the simulator the handle is an object exposing the block through
__array_interface__; numpy views keep it alive through their .base chain, and a
weakref.finalize on it returns the block. Work is queued on one stream, in order, so a block
freed by the host can be reused at once: later kernels run after the earlier ones that used it.
"""
import itertools
import threading
import weakref

import numpy as np
from numba import cuda

try:                                   # as common.py (which imports this module: no cycle)
    from numba.cuda import config as _cuda_config
except ImportError:
    from numba import config as _cuda_config

SIMULATOR = bool(_cuda_config.ENABLE_CUDASIM)

_SMALL = 1 << 20        # below: multiples of 512 bytes; above: 8 classes per doubling
_lock = threading.Lock()
_free = {}              # size class -> list of blocks not in use
_stats = {"allocated": 0, "peak": 0, "reserved": 0, "peak_reserved": 0, "mallocs": 0,
          "reuses": 0}


def size_class(nbytes):
    """The block size a request of nbytes gets (at least 512 bytes)."""
    nbytes = max(int(nbytes), 1)
    if nbytes <= _SMALL:
        return (nbytes + 511) // 512 * 512
    step = 1 << (nbytes.bit_length() - 4)       # an eighth of the enclosing power of two
    return (nbytes + step - 1) // step * step


def _malloc(size):
    """A fresh block from the driver (or numpy memory on the simulator)."""
    if SIMULATOR:
        return np.empty(size, np.uint8)
    return cuda.current_context().memalloc(size)


def _acquire(size):
    with _lock:
        blocks = _free.get(size)
        block = blocks.pop() if blocks else None
        if block is not None:
            _stats["reuses"] += 1
        _stats["allocated"] += size
        _stats["peak"] = max(_stats["peak"], _stats["allocated"])
    if block is not None:
        return block
    try:
        block = _malloc(size)
    except Exception:
        # Out of memory (or a fragmented heap): give the cache back and try once more.
        empty_cache()
        try:
            block = _malloc(size)
        except Exception:
            with _lock:
                _stats["allocated"] -= size
            raise
    with _lock:
        _stats["mallocs"] += 1
        _stats["reserved"] += size
        _stats["peak_reserved"] = max(_stats["peak_reserved"], _stats["reserved"])
    return block


def _release(size, block):
    with _lock:
        _stats["allocated"] -= size
        _free.setdefault(size, []).append(block)


class _SimHandle:
    """The simulator's owner of a handed-out block: numpy arrays made from it keep it alive."""

    def __init__(self, block, nbytes):
        self.__array_interface__ = dict(shape=(nbytes,), typestr="|u1", version=3,
                                        data=(block.ctypes.data, False))
        self.block = block      # keeps the buffer alive even after empty_cache


# key -> AutoFreePointer of a handed-out block, held here because numba's views hold only weak
# proxies to it; its finalizer (the last view gone) returns the block and drops the entry.
_gpu_live = {}
_keys = itertools.count()


def alloc_typed(count, dtype):
    """A 1-D numba device array of `count` items of dtype from the cache; its block returns to
    the cache when it and every view of it are gone."""
    dtype = np.dtype(dtype)
    nbytes = int(count) * dtype.itemsize
    size = size_class(nbytes)
    block = _acquire(size)
    if SIMULATOR:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        handle = _SimHandle(block, size)
        weakref.finalize(handle, _release, size, block)
        return FakeCUDAArray(np.asarray(handle)[:nbytes].view(dtype))
    from numba.cuda.cudadrv.driver import AutoFreePointer
    from numba.cuda.cudadrv.devicearray import DeviceNDArray
    key = next(_keys)

    def release(key=key):
        _gpu_live.pop(key, None)
        _release(size, block)

    ptr = AutoFreePointer(block.context, block.device_pointer, size, finalizer=release)
    _gpu_live[key] = ptr
    return DeviceNDArray((int(count),), (dtype.itemsize,), dtype, gpu_data=ptr.own())


def alloc_bytes(nbytes):
    """alloc_typed(nbytes, uint8)."""
    return alloc_typed(nbytes, np.uint8)


def device_array(shape, dtype):
    """A C-contiguous numba device array from the cache (its contents are undefined)."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    count = 1
    for s in shape:
        count *= s
    flat = alloc_typed(count, dtype)
    return flat.reshape(shape) if shape != (count,) else flat


# ---------------------------------------------------------------- counters
def memory_allocated():
    """Bytes in blocks held by live arrays (rounded to size classes)."""
    return _stats["allocated"]


def max_memory_allocated():
    return _stats["peak"]


def reset_peak_memory_stats():
    with _lock:
        _stats["peak"] = _stats["allocated"]
        _stats["peak_reserved"] = _stats["reserved"]


def memory_reserved():
    """Bytes obtained from the driver: live blocks plus the cached free ones."""
    return _stats["reserved"]


def max_memory_reserved():
    return _stats["peak_reserved"]


def memory_stats():
    """The counters above plus the number of driver allocations and cache hits."""
    return {"allocated_bytes.all.current": _stats["allocated"],
            "allocated_bytes.all.peak": _stats["peak"],
            "reserved_bytes.all.current": _stats["reserved"],
            "reserved_bytes.all.peak": _stats["peak_reserved"],
            "num_alloc_retries": 0, "num_device_alloc": _stats["mallocs"],
            "num_cache_hits": _stats["reuses"]}


def empty_cache():
    """Give every cached free block back to the driver."""
    with _lock:
        freed = sum(size * len(blocks) for size, blocks in _free.items())
        _free.clear()
        _stats["reserved"] -= freed
