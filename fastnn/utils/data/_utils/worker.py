"""What runs inside a DataLoader worker process, and the shared-memory hand-off of its batches.

A worker loops: take a task from its index queue, fetch the samples (dataset[i] for each index,
or the next items of its own iterator for an IterableDataset), collate them, and put the batch on
the result queue. Arrays and tensors in the batch travel through one shared-memory block per
batch (multiprocessing.shared_memory): the worker copies them in, the message carries only the
block's name and each array's offset, shape and dtype, and the main process copies them out and
unlinks the block. Everything else in the batch (strings, numbers, containers) is pickled.

Exceptions in the dataset, collate_fn or worker_init_fn are caught and sent back with their
traceback text; the main process re-raises them. A worker exits when told to, or when it finds
its parent gone (so no orphans are left behind if the main process is killed).
"""
import copy
import os
import pickle
import queue
import random
import traceback

import numpy as np

from ....tensor import Tensor

__all__ = ["WorkerInfo", "get_worker_info"]

_worker_info = None
_ALIGN = 64


class WorkerInfo:
    """Inside a worker: id, num_workers, seed and dataset (this worker's copy)."""
    __initialized = False

    def __init__(self, **kwargs):
        for k, v in kwargs.items():
            setattr(self, k, v)
        self.__keys = tuple(kwargs.keys())
        self.__initialized = True

    def __setattr__(self, key, val):
        if self.__initialized:
            raise RuntimeError(f"Cannot assign attributes to {self.__class__.__name__} objects")
        return super().__setattr__(key, val)

    def __repr__(self):
        items = [f"{k}={getattr(self, k)}" for k in self.__keys]
        return f"{self.__class__.__name__}({', '.join(items)})"


def get_worker_info():
    """In a DataLoader worker process: its WorkerInfo (id, num_workers, seed, dataset);
    in the main process: None."""
    return _worker_info


# ---------------------------------------------------------------- shared-memory hand-off
class _Slot:
    """Where an array of the batch sits in the shared block."""
    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i

    def __reduce__(self):
        return (_Slot, (self.i,))


def _array_of(x):
    if isinstance(x, Tensor):
        d = x._data
        if isinstance(d, np.ndarray):
            return d
        try:  # a tensor on another device, or a .data that is not an array
            return np.asarray(x.detach().cpu().numpy())
        except Exception:
            return None
    if isinstance(x, np.ndarray):
        return x
    return None


def _map_tree(x, leaf):
    """`x` with leaf(y) applied to every value that is not a dict, list or tuple."""
    if isinstance(x, dict):
        vals = {k: _map_tree(v, leaf) for k, v in x.items()}
        if type(x) is dict:
            return vals
        try:
            out = copy.copy(x)
            out.update(vals)
            return out
        except Exception:
            return vals
    if isinstance(x, list):
        vals = [_map_tree(v, leaf) for v in x]
        if type(x) is list:
            return vals
        try:
            out = copy.copy(x)
            out[:] = vals
            return out
        except Exception:
            return vals
    if isinstance(x, tuple):
        vals = [_map_tree(v, leaf) for v in x]
        if hasattr(x, "_fields"):
            return type(x)(*vals)
        return tuple(vals)
    return leaf(x)


def pack(batch):
    """(tree, block name or None, metas): the batch with its arrays moved to shared memory."""
    arrays, metas = [], []

    def leaf(x):
        arr = _array_of(x)
        if arr is None or arr.dtype.hasobject or arr.nbytes == 0:
            return x
        arrays.append(arr)
        metas.append([0, arr.shape, arr.dtype.str, isinstance(x, Tensor)])
        return _Slot(len(arrays) - 1)

    tree = _map_tree(batch, leaf)
    if not arrays:
        return tree, None, metas
    from multiprocessing import shared_memory
    total = 0
    for m, arr in zip(metas, arrays):
        m[0] = total
        total += -(-arr.nbytes // _ALIGN) * _ALIGN
    if not _shm_has_room(total):  # writing past a full /dev/shm kills with SIGBUS: pickle it
        return batch, None, []
    shm = shared_memory.SharedMemory(create=True, size=total)
    try:
        for m, arr in zip(metas, arrays):
            np.ndarray(arr.shape, arr.dtype, buffer=shm.buf, offset=m[0])[...] = arr
    except BaseException:
        shm.close()
        shm.unlink()
        raise
    # Creating the block registered it with the resource tracker this process shares with the
    # main one; the main process's unlink() unregisters it. Should the batch never reach the
    # main process (this worker killed mid-send), the tracker unlinks the block at exit.
    shm.close()
    return tree, shm.name, metas


def _shm_has_room(nbytes):
    """Whether /dev/shm (where POSIX shared memory lives; 64 MB in a default container) has
    room for nbytes more, with a margin."""
    try:
        st = os.statvfs("/dev/shm")
    except (OSError, AttributeError):
        return True
    return st.f_bavail * st.f_frsize > nbytes + (16 << 20)


def unpack(payload):
    """The batch back in the main process (arrays copied out, the block unlinked)."""
    tree, name, metas = payload
    if name is None:
        return tree
    from multiprocessing import shared_memory
    shm = shared_memory.SharedMemory(name=name)
    try:
        values = []
        for off, shape, dtype, is_tensor in metas:
            arr = np.ndarray(tuple(shape), np.dtype(dtype), buffer=shm.buf, offset=off).copy()
            values.append(Tensor(arr) if is_tensor else arr)
    finally:
        shm.close()
        shm.unlink()
    return _map_tree(tree, lambda x: values[x.i] if isinstance(x, _Slot) else x)


def discard(payload):
    """Free the shared block of a batch nobody will read."""
    try:
        _, name, _ = payload
        if name is not None:
            from multiprocessing import shared_memory
            shm = shared_memory.SharedMemory(name=name)
            shm.close()
            shm.unlink()
    except Exception:
        pass


# ---------------------------------------------------------------- fetching
class StopMarker:
    pass


def fetch_map(dataset, indices, auto_collation, collate_fn, fast_tensor_dataset):
    if auto_collation:
        if fast_tensor_dataset:  # one fancy index per tensor: what stacking the rows would give
            idx = np.asarray(indices, dtype=np.intp)
            return [Tensor(t._data[idx]) for t in dataset.tensors]
        getitems = getattr(dataset, "__getitems__", None)
        if callable(getitems):
            data = getitems(indices)
        else:
            data = [dataset[i] for i in indices]
        return collate_fn(data)
    return collate_fn(dataset[indices])


def fetch_iter(it, auto_collation, collate_fn, batch_size, drop_last):
    """The next batch from the iterator `it`; raises StopIteration when there is none."""
    if auto_collation:
        data = []
        for _ in range(batch_size):
            try:
                data.append(next(it))
            except StopIteration:
                break
        if not data or (drop_last and len(data) < batch_size):
            raise StopIteration
        return collate_fn(data)
    return collate_fn(next(it))


def seed_worker(seed, worker_id):
    """Seed Python's, numpy's and fastnn's generators in a worker, as PyTorch does."""
    random.seed(seed)
    from ....tensor import manual_seed
    manual_seed(seed)
    np.random.seed(np.random.SeedSequence([worker_id, seed]).generate_state(4))


def _limit_threads():
    """One compute thread per worker (as PyTorch): GNU OpenMP is not fork-safe (a forked child
    that starts a parallel region on the parent's thread pool hangs), and workers competing for
    the cores would only slow each other down. Only backends already loaded are told, so a
    worker never imports one (numba takes a second to import)."""
    try:
        from ....kernels import dispatch
        loaded = list(getattr(dispatch, "_loaded", {}).values())
    except Exception:
        return
    for backend in loaded:
        fn = getattr(getattr(backend, "module", None), "set_num_threads", None)
        if fn is not None:
            try:
                fn(1)
            except Exception:
                pass


def _error_message(exc, worker_id):
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        cls = pickle.dumps(type(exc))
    except Exception:
        cls = None
    return cls, type(exc).__name__, worker_id, text


def worker_loop(iterable, dataset, index_queue, result_queue, auto_collation, collate_fn,
                batch_size, drop_last, fast_tensor_dataset, seed, init_fn, worker_id,
                num_workers, parent_pid, done_event=None):
    global _worker_info
    try:
        seed_worker(seed, worker_id)
        _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed,
                                  dataset=dataset)
        _limit_threads()
        init_error = None
        it = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            if iterable:
                it = iter(dataset)
        except Exception as e:
            init_error = _error_message(e, worker_id)
        exhausted = False
        while True:
            try:
                task = index_queue.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent_pid:  # the main process is gone
                    result_queue.cancel_join_thread()
                    return
                continue
            if task is None:
                break
            if done_event is not None and done_event.is_set():
                continue  # shutting down: skip to the stop message
            if task[0] == "reset":
                exhausted = False
                if iterable and init_error is None:
                    try:
                        it = iter(dataset)
                    except Exception as e:
                        init_error = _error_message(e, worker_id)
                continue
            epoch, idx, indices = task
            if init_error is not None:
                result_queue.put((epoch, idx, "err", init_error))
                continue
            if iterable and exhausted:
                result_queue.put((epoch, idx, "stop", None))
                continue
            try:
                if iterable:
                    data = fetch_iter(it, auto_collation, collate_fn, batch_size, drop_last)
                else:
                    data = fetch_map(dataset, indices, auto_collation, collate_fn,
                                     fast_tensor_dataset)
                payload = pack(data)
                del data
            except StopIteration as e:
                if iterable:
                    exhausted = True
                    result_queue.put((epoch, idx, "stop", None))
                else:
                    result_queue.put((epoch, idx, "err", _error_message(e, worker_id)))
                continue
            except Exception as e:
                result_queue.put((epoch, idx, "err", _error_message(e, worker_id)))
                continue
            result_queue.put((epoch, idx, "ok", payload))
    except KeyboardInterrupt:
        pass  # Ctrl-C reaches the whole process group; the main process reports it
