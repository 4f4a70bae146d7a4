"""fastnn.nn.buffer_pool: the work buffers fused ops reuse from step to step."""
import gc
import threading

import numpy as np

from fastnn.nn.buffer_pool import BufferPool


def test_take_reuses_a_given_buffer_of_the_same_shape_and_dtype():
    pool = BufferPool()
    a = pool.take((3, 4), np.float32)
    assert a.shape == (3, 4) and a.dtype == np.float32 and a.flags.c_contiguous
    pool.give(a)
    assert pool.held_bytes == a.nbytes
    assert pool.take((3, 4), np.float32) is a
    assert pool.take((3, 4), np.float64) is not a      # another dtype: a new array
    assert pool.allocated == 2 and pool.held_bytes == 0


def test_a_lease_returns_its_arrays_when_dropped():
    pool = BufferPool()
    lease = pool.lease()
    a, b = lease.take((5,), np.float64), lease.take((2, 2), np.float32)
    assert pool.held_bytes == 0
    del lease
    gc.collect()
    assert pool.held_bytes == a.nbytes + b.nbytes
    lease2 = pool.lease()
    assert lease2.take((5,), np.float64) is a   # reused, not allocated
    assert pool.allocated == 2


def test_cap_drops_the_oldest_shapes_first_and_clear_empties():
    pool = BufferPool(max_bytes=100)
    old = np.empty(10, np.float64)        # 80 bytes
    pool.give(old)
    new = np.empty(5, np.float32)         # 20 bytes: 100 in all, at the cap
    pool.give(new)
    assert pool.held_bytes == 100
    newer = np.empty(2, np.float64)       # 16 more: the oldest shape goes
    pool.give(newer)
    assert pool.held_bytes == 36
    assert pool.take((5,), np.float32) is new and pool.take((2,), np.float64) is newer
    assert pool.take((10,), np.float64) is not old
    pool.give(np.empty(1000))             # bigger than the cap: never kept
    assert pool.held_bytes == 0
    pool.give(new)
    pool.clear()
    assert pool.held_bytes == 0


def test_threads_never_share_a_buffer():
    pool = BufferPool()
    seen, lock, errors = [], threading.Lock(), []

    def work(i):
        for _ in range(200):
            lease = pool.lease()
            a = lease.take((64,), np.float32)
            a[:] = i
            if not (a == i).all():
                errors.append(i)
            with lock:
                seen.append(id(a))
            lease.release()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert pool.allocated <= 4      # at most one buffer per thread was ever created


def test_an_owned_array_returns_only_when_its_last_view_dies():
    pool = BufferPool()
    a = pool.owned((4, 6), np.float32)
    assert a.shape == (4, 6) and a.dtype == np.float32 and a.flags.c_contiguous
    assert a.flags.writeable and a.base is not None
    a[...] = 7.0
    view = a.reshape(2, 12)[1:]          # a view of a view: numpy collapses array bases...
    deeper = view[:, ::2]
    del a, view
    gc.collect()
    assert pool.held_bytes == 0          # ...but not past the owner: still lent out
    b = pool.owned((4, 6), np.float32)   # so a new take cannot hand the same memory out
    assert not np.shares_memory(b, deeper)
    b[...] = -1.0
    assert (deeper == 7.0).all()
    del deeper
    gc.collect()
    assert pool.held_bytes == 4 * 6 * 4  # now it is back
    c = pool.owned((4, 6), np.float32)
    assert pool.held_bytes == 0 and pool.allocated == 2


def test_a_disabled_pool_never_reuses():
    pool = BufferPool()
    pool.enabled = False
    a = pool.take((3,), np.float64)
    pool.give(a)
    lease = pool.lease()
    b = lease.take((3,), np.float64)
    o = pool.owned((3,), np.float64)
    assert pool.held_bytes == 0 and b is not a and not np.shares_memory(o, a)
    del lease, o
    gc.collect()
    assert pool.held_bytes == 0
