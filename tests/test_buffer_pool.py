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


def test_cap_and_clear():
    pool = BufferPool(max_bytes=100)
    pool.give(np.empty(10, np.float64))   # 80 bytes: kept
    pool.give(np.empty(10, np.float64))   # would exceed the cap: dropped
    assert pool.held_bytes == 80
    pool.clear()
    assert pool.held_bytes == 0
    assert pool.take((10,), np.float64) is not None and pool.allocated == 1


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
