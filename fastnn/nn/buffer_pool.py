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

An array that does escape (an op's output, a gradient passed on to autograd) can still be pooled
with POOL.owned(shape, dtype): its buffer goes back when the array and every view of it are
garbage, whoever held them. numpy gives such an array a base object that is not an array (an
_Owner, which holds the pooled buffer): every view made from it, however deep, keeps that owner
alive (numpy's base chains stop collapsing at a non-array), so a tensor a user still holds can
never be handed out again. It costs a few microseconds per array, so fused ops use it for the
large outputs only.

Thread-safe (one re-entrant lock: a buffer may come back from a finalizer that the garbage
collector runs in the middle of another take or give); holds at most max_bytes of free buffers (beyond that the shapes returned
longest ago are dropped first); POOL.clear() empties it. POOL.enabled = False turns reuse off
(every take and owned() allocates anew, nothing is kept): the reference the tests compare with.
"""
import threading

import numpy as np

__all__ = ["BufferPool", "POOL"]


class BufferPool:
    def __init__(self, max_bytes=256 << 20):
        self.max_bytes = int(max_bytes)
        self._free = {}        # (shape, dtype.str) -> [arrays]
        self._held = 0         # bytes in self._free
        self._lock = threading.RLock()
        self.allocated = 0     # arrays created because none of the shape was free (a counter)
        self.enabled = True    # False: no reuse (a new array for every take, none kept)

    def take(self, shape, dtype):
        """A C-contiguous array of shape and dtype, uninitialized: a free one or a new one."""
        dtype = np.dtype(dtype)
        if not self.enabled:
            return np.empty(shape, dtype)
        key = (tuple(shape), dtype.str)
        with self._lock:
            free = self._free.get(key)
            if free:
                a = free.pop()
                self._held -= a.nbytes
                return a
            self.allocated += 1
        return np.empty(shape, dtype)

    def owned(self, shape, dtype):
        """A C-contiguous array of shape and dtype, uninitialized, that may escape: its buffer
        returns to this pool once the array and all views of it are garbage (see the module
        doc). Its .base is the owner, not None."""
        if not self.enabled:
            return np.empty(shape, dtype)
        buf = self.take(shape, dtype)
        owner = _Owner()
        owner.pool, owner.buf = self, buf
        owner.__array_interface__ = buf.__array_interface__
        return np.asarray(owner)

    def give(self, a):
        """Return an array from take() (to be reused by a later take of its shape). Over
        max_bytes, the buffers of the shapes given back longest ago are dropped first, so a run
        of changing shapes (generation without a cache) churns the pool instead of filling it
        with shapes that never come back."""
        if a.nbytes > self.max_bytes or not self.enabled:
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


class _Owner:
    """The base object of an owned() array: exposes the pooled buffer to numpy and gives it back
    when the last array viewing it is gone."""
    __slots__ = ("pool", "buf", "__array_interface__")

    def __del__(self):
        try:
            self.pool.give(self.buf)
        except Exception:   # interpreter shutdown
            pass


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
