"""A pool of numpy work buffers, reused from one training step to the next.

A fixed-shape training step asks for the same intermediate arrays every time (a projection's
output, a pre-activation, a gradient that the next GEMM consumes). Fused ops (the GPT's block
nodes in fastnn.models.gpt) take them from a pool instead of allocating them anew:

    lease = POOL.lease()
    h = lease.take((M, N), np.float32)     # a free pooled array of that shape and dtype, or new
    ...                                    # the op's backward closure keeps `lease` alive
    # when the lease is dropped (the backward ran and autograd let go of the closure, or the
    # graph was discarded, or no graph was recorded), its arrays go back to the pool.

Tying the return to the lease's lifetime (not to "backward ran") keeps it exact in every case:
two forwards before one backward (gradient accumulation) each hold their own buffers;
retain_graph=True keeps them until the graph itself is freed. Only arrays that never escape the
op may be taken from a lease: never an op's output or a gradient handed to autograd.

Thread-safe (one lock); holds at most max_bytes of free buffers (beyond that the shapes returned
longest ago are dropped first); POOL.clear() empties it.
"""
import threading

import numpy as np

__all__ = ["BufferPool", "POOL"]


class BufferPool:
    def __init__(self, max_bytes=256 << 20):
        self.max_bytes = int(max_bytes)
        self._free = {}        # (shape, dtype.str) -> [arrays]
        self._held = 0         # bytes in self._free
        self._lock = threading.Lock()
        self.allocated = 0     # arrays created because none of the shape was free (a counter)

    def take(self, shape, dtype):
        """A C-contiguous array of shape and dtype, uninitialized: a free one or a new one."""
        dtype = np.dtype(dtype)
        key = (tuple(shape), dtype.str)
        with self._lock:
            free = self._free.get(key)
            if free:
                a = free.pop()
                self._held -= a.nbytes
                return a
            self.allocated += 1
        return np.empty(shape, dtype)

    def give(self, a):
        """Return an array from take() (to be reused by a later take of its shape). Over
        max_bytes, the buffers of the shapes given back longest ago are dropped first, so a run
        of changing shapes (generation without a cache) churns the pool instead of filling it
        with shapes that never come back."""
        if a.nbytes > self.max_bytes:
            return
        key = (a.shape, a.dtype.str)
        with self._lock:
            free = self._free.pop(key, [])
            free.append(a)
            self._free[key] = free        # (re)inserted last: the most recent shape
            self._held += a.nbytes
            while self._held > self.max_bytes:
                oldest = next(iter(self._free))
                bucket = self._free[oldest]
                self._held -= bucket.pop(0).nbytes
                if not bucket:
                    del self._free[oldest]

    def clear(self):
        """Drop every free buffer (arrays out on lease come back later as usual)."""
        with self._lock:
            self._free.clear()
            self._held = 0

    @property
    def held_bytes(self):
        return self._held

    def lease(self):
        return Lease(self)


class Lease:
    """Arrays taken for one op; all returned to the pool when the lease is garbage (or release())."""
    __slots__ = ("_pool", "_arrays")

    def __init__(self, pool):
        self._pool = pool
        self._arrays = []

    def take(self, shape, dtype):
        a = self._pool.take(shape, dtype)
        self._arrays.append(a)
        return a

    def release(self):
        arrays, self._arrays = self._arrays, []
        for a in arrays:
            self._pool.give(a)

    def __del__(self):
        try:
            self.release()
        except Exception:   # interpreter shutdown: the pool may already be gone
            pass


POOL = BufferPool()
