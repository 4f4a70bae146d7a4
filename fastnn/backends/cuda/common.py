"""Shared plumbing for the cuda backend: launch sizes, host<->device copies, block reductions.

Every host-side transfer and every kernel launch of this package goes through the four
helpers here (to_device, device_empty, to_host, launch), so a tool can intercept them: the
simulator runs the same kernels, and a PTX dump can compile them without a GPU.

Kernels are built by small factories keyed by dtype and tile sizes: numba.cuda needs
shared/local array shapes and dtypes as compile-time constants, and constants captured from a
factory's closure keep float32 kernels in float32 (a bare Python float literal would promote
the arithmetic to float64, which is several times slower on most GPUs).
"""
import collections
import contextlib
import dataclasses
import functools
import sys

import numpy as np
from numba import cuda

try:                                   # numba-cuda's own config; older numba kept it in numba
    from numba.cuda import config as _cuda_config
except ImportError:
    from numba import config as _cuda_config

SIMULATOR = bool(_cuda_config.ENABLE_CUDASIM)


@dataclasses.dataclass(frozen=True)
class LaunchConfig:
    """Block and tile sizes. Kernels are correct for any of these; only speed changes."""
    threads_1d: int          # threads per block of the grid-stride (elementwise) kernels
    blocks_per_sm: int       # grid-stride kernels launch at most this many blocks per SM
    row_threads: int         # max threads per block of the row kernels (a power of two)
    col_threads: tuple       # (columns, row lanes) per block of the column-sum kernels
    gemm_tile: tuple         # (BM, BN, BK, TM, TN): block tile and per-thread register tile
    gemm_tile_large: tuple   # the same for GEMMs with enough large tiles to fill every SM
    attn_queries: int        # attention: query (or key) rows per block...
    attn_key_split: int      # ...and threads per row, each taking every n-th key (or query)
    attn_smem_bytes: int     # attention: static shared memory per block (the limit is 48 KiB)


# A real GPU: 256-thread blocks, 64x64 GEMM tiles with a 4x4 register tile per thread.
GPU = LaunchConfig(threads_1d=256, blocks_per_sm=8, row_threads=256, col_threads=(32, 8),
                   gemm_tile=(64, 64, 16, 4, 4), gemm_tile_large=(128, 128, 8, 8, 8),
                   attn_queries=32, attn_key_split=4,
                   attn_smem_bytes=45056)
# The simulator runs every CUDA thread as a Python thread: same kernels, tiny blocks, and tiles
# small enough that test shapes still span several blocks and partial edge tiles.
SIM = LaunchConfig(threads_1d=32, blocks_per_sm=1, row_threads=8, col_threads=(4, 2),
                   gemm_tile=(8, 8, 4, 4, 4), gemm_tile_large=(16, 16, 4, 4, 4),
                   attn_queries=4, attn_key_split=2,
                   attn_smem_bytes=1200)

_current = {"config": SIM if SIMULATOR else GPU}


def launch_config():
    return _current["config"]


@contextlib.contextmanager
def using_launch_config(cfg):
    """Temporarily launch with other block/tile sizes (tests run the GPU sizes on tiny shapes)."""
    prev = _current["config"]
    _current["config"] = cfg
    try:
        yield cfg
    finally:
        _current["config"] = prev


def jit_kernel(max_registers=None):
    """cuda.jit with a register cap on a GPU (the simulator accepts no such option)."""
    if SIMULATOR or max_registers is None:
        return cuda.jit
    return cuda.jit(max_registers=max_registers)


# ---------------------------------------------------------------- transfers and launches
# Every host<->device copy of the package is recorded here as (direction, what), so a test can
# assert that a training step on device arrays copies nothing (array.transfer_log()).
_transfers = collections.Counter()


def record_transfer(direction, what):
    _transfers[(direction, what)] += 1


def transfer_log():
    """The live Counter of (direction, what) -> copies (array.py resets and reads it)."""
    return _transfers


def _caller():
    frame = sys._getframe(2)
    return f"{frame.f_globals.get('__name__', '?').rsplit('.', 1)[-1]}.{frame.f_code.co_name}"


def to_device(x):
    """A device copy of host array x, in memory from the caching allocator (counted)."""
    x = np.asarray(x)
    record_transfer("h2d", _caller())
    if x.ndim == 0 or x.size == 0:
        return cuda.to_device(x)
    from . import memory
    d = memory.device_array(x.shape, x.dtype)
    d.copy_to_device(np.ascontiguousarray(x))
    return d


def device_empty(shape, dtype):
    """An uninitialized C-contiguous device array from the caching allocator."""
    from . import memory
    return memory.device_array(shape, dtype)


def to_host(d, out=None):
    """Copy a device array to a new host array, or into `out` (C-contiguous, same size)."""
    record_transfer("d2h", _caller())
    if out is None:
        return d.copy_to_host()
    d.copy_to_host(out)
    return out


def launch(kernel, grid, block, *args):
    kernel[grid, block](*args)


@functools.cache
def sm_count():
    if SIMULATOR:
        return 1
    return cuda.get_current_device().MULTIPROCESSOR_COUNT


def grid_1d(n):
    """(blocks, threads) for a grid-stride loop over n items: enough blocks to fill the GPU."""
    cfg = launch_config()
    blocks = min((n + cfg.threads_1d - 1) // cfg.threads_1d, cfg.blocks_per_sm * sm_count())
    return max(blocks, 1), cfg.threads_1d


def row_threads(width):
    """Threads per block of a row kernel: a power of two, at most row_threads, near the width."""
    t = 1
    while t < width and t < launch_config().row_threads:
        t *= 2
    return t


def scalar(dtype, x):
    """A Python number as a scalar of the kernels' dtype (keeps float32 kernels in float32)."""
    return np.dtype(dtype).type(x)


# ---------------------------------------------------------------- block reductions
# Shared-memory tree reductions over a 1-D block whose size is a power of two. `buf` holds at
# least blockDim.x values. Every thread of the block must call them (they synchronize), and all
# get the result. The trailing syncthreads lets the caller reuse `buf` at once.
@cuda.jit(device=True)
def block_sum(buf, value):
    t = cuda.threadIdx.x
    buf[t] = value
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if t < half:
            buf[t] += buf[t + half]
        cuda.syncthreads()
        half //= 2
    total = buf[0]
    cuda.syncthreads()
    return total


@cuda.jit(device=True)
def block_max(buf, value):
    t = cuda.threadIdx.x
    buf[t] = value
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if t < half:
            buf[t] = max(buf[t], buf[t + half])
        cuda.syncthreads()
        half //= 2
    best = buf[0]
    cuda.syncthreads()
    return best


@cuda.jit(device=True)
def block_sum2(buf_a, buf_b, value_a, value_b):
    """Two sums in one pass (one set of barriers); returns both."""
    t = cuda.threadIdx.x
    buf_a[t] = value_a
    buf_b[t] = value_b
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if t < half:
            buf_a[t] += buf_a[t + half]
            buf_b[t] += buf_b[t + half]
        cuda.syncthreads()
        half //= 2
    total_a = buf_a[0]
    total_b = buf_b[0]
    cuda.syncthreads()
    return total_a, total_b
