"""DataLoader: batches from a dataset, in the main process or in worker processes (PyTorch's
semantics and argument checks).

With num_workers > 0, worker processes (multiprocessing; the 'fork' start method on Linux,
'spawn' elsewhere, or multiprocessing_context=) each fetch and collate whole batches. Task k of an
epoch goes to worker k mod num_workers (skipping workers whose IterableDataset has ended), at most
prefetch_factor * num_workers tasks are in flight, and batches are handed back through shared
memory (see _utils/worker.py) and yielded in task order, so the batches and their order do not
depend on timing: the same as with num_workers=0 for a map-style dataset. Each worker seeds
Python's, numpy's and fastnn's generators with base_seed + worker_id (base_seed drawn from
`generator`, or fastnn's global generator, once per iterator) and runs worker_init_fn(worker_id).
Workers stop at the end of the epoch (or when the iterator is dropped, or at interpreter exit),
unless persistent_workers=True keeps them for the next epoch. An exception in a worker is raised
again in the main process, with the worker's traceback in its message.
"""
import atexit
import itertools
import math
import multiprocessing
import os
import pickle
import queue
import sys
import time
import weakref
from typing import Generic, TypeVar

from .dataset import IterableDataset
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,
                      as_numpy_generator)
from ._utils import worker as _worker
from ._utils.collate import default_collate, default_convert
from ._utils.worker import get_worker_info

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info"]

_POLL_S = 0.5          # how often a waiting main process checks that its workers are alive
_JOIN_S = 5.0          # how long shutdown waits for a worker before terminating it


class _InfiniteConstantSampler(Sampler):
    """The sampler of an IterableDataset: None forever (the workers ignore indices)."""

    def __iter__(self):
        while True:
            yield None


def _default_context():
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


T_co = TypeVar("T_co", covariant=True)


class DataLoader(Generic[T_co]):
    """Iterate `dataset` in batches. See the module doc and torch.utils.data.DataLoader."""

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device="",
                 in_order=True):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                             "disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                             "let num_workers > 0 to enable multiprocessing, otherwise set "
                             "prefetch_factor to None.")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory  # accepted: host memory is all there is on the CPU
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order

        if isinstance(dataset, IterableDataset):
            self._dataset_kind = "iterable"
            if shuffle not in {False, None}:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle "
                                 f"option, but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler "
                                 f"option, but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                 f"batch_sampler option, but got batch_sampler={batch_sampler}")
        else:
            self._dataset_kind = "map"
            shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size = None
            drop_last = False
        elif batch_size is None:
            if drop_last:
                raise ValueError("batch_size=None option disables auto-batching and is mutually "
                                 "exclusive with drop_last")
        if sampler is None:
            if self._dataset_kind == "iterable":
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        if generator is not None:
            as_numpy_generator(generator)  # a clear TypeError now rather than mid-epoch

        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers
        self._iterator = None
        self._initialized = True

    _initialized = False

    def __setattr__(self, attr, val):
        if self._initialized and attr in ("batch_size", "batch_sampler", "sampler", "drop_last",
                                          "dataset", "persistent_workers"):
            raise ValueError(f"{attr} attribute should not be set after "
                             f"{self.__class__.__name__} is initialized")
        super().__setattr__(attr, val)

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def _fast_tensor_dataset(self):
        from .dataset import TensorDataset
        import numpy as np
        ds = self.dataset
        return (type(ds) is TensorDataset and self.collate_fn is default_collate
                and self._auto_collation
                and all(isinstance(t._data, np.ndarray) and not t.requires_grad
                        for t in ds.tensors))

    def _base_seed(self):
        # PyTorch's: an int64 random_() of the loader's generator (the global one by default),
        # drawn when an iterator is made, by every iterator, with workers or without
        return int(as_numpy_generator(self.generator).random_default(1, "int64")[0])

    def __iter__(self):
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if self.persistent_workers:
            if self._iterator is None or self._iterator._shut:
                self._iterator = _MultiProcessIter(self)
            else:
                self._iterator._reset()
            return self._iterator
        return _MultiProcessIter(self)

    def __len__(self):
        if self._dataset_kind == "iterable":
            length = len(self.dataset)
            if self.batch_size is not None:
                length = (length // self.batch_size if self.drop_last
                          else math.ceil(length / self.batch_size))
            return length
        return len(self._index_sampler)

    def __getstate__(self):  # a loader handed to another process leaves its workers behind
        state = self.__dict__.copy()
        state["_iterator"] = None
        return state


class _SingleProcessIter:
    def __init__(self, loader):
        self._loader = loader
        self._auto = loader._auto_collation
        if loader._dataset_kind == "iterable":
            self._it = iter(loader.dataset)
        else:
            self._indices = iter(loader._index_sampler)
            self._fast = loader._fast_tensor_dataset()
        loader._base_seed()   # drawn and unused, as PyTorch's single-process iterator does

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._loader)

    def __next__(self):
        ld = self._loader
        if ld._dataset_kind == "iterable":
            return _worker.fetch_iter(self._it, self._auto, ld.collate_fn, ld.batch_size,
                                      ld.drop_last)
        indices = next(self._indices)
        return _worker.fetch_map(ld.dataset, indices, self._auto, ld.collate_fn, self._fast)


_live_iterators = weakref.WeakSet()
_exiting = [False]


def _shutdown_all():
    _exiting[0] = True
    for it in list(_live_iterators):
        try:
            it._shutdown()
        except Exception:
            pass


_atexit_registered = [False]


def _register_atexit():
    """Stop live workers at interpreter exit, before multiprocessing's own exit handler (which
    would terminate them mid-batch): atexit runs handlers last-registered first, so this one is
    registered after multiprocessing.util's."""
    if not _atexit_registered[0]:
        import multiprocessing.util  # noqa: F401  (registers its handler first, if not yet)
        atexit.register(_shutdown_all)
        _atexit_registered[0] = True


class _MultiProcessIter:
    def __init__(self, loader):
        self._loader = loader
        ld = loader
        ctx = ld.multiprocessing_context
        if ctx is None:
            ctx = _default_context()
        elif isinstance(ctx, str):
            ctx = multiprocessing.get_context(ctx)
        self._n = ld.num_workers
        self._iterable = ld._dataset_kind == "iterable"
        self._prefetch = max(1, ld.prefetch_factor or 0)
        self._timeout = ld.timeout
        self._shut = False
        self._epoch = 0
        self._result_queue = ctx.Queue()
        self._done = ctx.Event()  # set at shutdown: workers skip the tasks still queued
        self._index_queues, self._workers = [], []
        self._pid = os.getpid()
        try:
            from multiprocessing import resource_tracker
            resource_tracker.ensure_running()  # one tracker, shared by the workers
        except Exception:
            pass
        _register_atexit()
        base_seed = ld._base_seed()
        fast = ld._fast_tensor_dataset()
        self._buffer = {}
        _live_iterators.add(self)
        try:
            for wid in range(self._n):
                q = ctx.Queue()
                q.cancel_join_thread()  # never block interpreter exit on a dead worker's pipe
                w = ctx.Process(
                    target=_worker.worker_loop, daemon=True,
                    args=(self._iterable, ld.dataset, q, self._result_queue, ld._auto_collation,
                          ld.collate_fn, ld.batch_size, ld.drop_last, fast, base_seed + wid,
                          ld.worker_init_fn, wid, self._n, self._pid, self._done))
                self._index_queues.append(q)
                w.start()  # (with spawn, a dataset that does not pickle fails here)
                self._workers.append(w)
            self._reset(first=True)
        except BaseException:
            self._shutdown(force=True)
            raise

    # ------------------------------------------------------------ task bookkeeping
    def _reset(self, first=False):
        for kind, payload in getattr(self, "_buffer", {}).values():  # an epoch left half-way
            if kind == "ok":
                _worker.discard(payload)
        self._epoch += 1
        self._send_idx = self._rcvd_idx = 0
        self._task_worker = {}
        self._buffer = {}
        self._active = [True] * self._n
        self._cycle = itertools.cycle(range(self._n))
        self._sampler_iter = None if self._iterable else iter(self._loader._index_sampler)
        if not first and self._iterable:
            for q in self._index_queues:
                q.put(("reset", self._epoch))
        for _ in range(self._prefetch * self._n):
            if not self._try_put():
                break

    def _try_put(self):
        for _ in range(self._n):
            wid = next(self._cycle)
            if self._active[wid]:
                break
        else:
            return False
        if self._iterable:
            indices = None
        else:
            try:
                indices = next(self._sampler_iter)
            except StopIteration:
                return False
        self._index_queues[wid].put((self._epoch, self._send_idx, indices))
        self._task_worker[self._send_idx] = wid
        self._send_idx += 1
        return True

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._loader)

    def _receive(self, idx):
        """The message for task idx (buffering any others that arrive first)."""
        start = time.monotonic()
        while idx not in self._buffer:
            try:
                epoch, i, kind, payload = self._result_queue.get(timeout=_POLL_S)
            except queue.Empty:
                dead = [w for w in self._workers if not w.is_alive()]
                if dead:
                    pids = ", ".join(str(w.pid) for w in dead)
                    codes = ", ".join(str(w.exitcode) for w in dead)
                    self._shutdown(force=True)
                    hint = ""
                    if any(w.exitcode == -7 for w in dead):  # SIGBUS
                        hint = (": killed by a bus error, which usually means shared memory "
                                "(/dev/shm) ran out; raise its size (docker run --shm-size=...)")
                    raise RuntimeError(f"DataLoader worker (pid(s) {pids}) exited unexpectedly "
                                       f"(exit code {codes}){hint}") from None
                if self._timeout > 0 and time.monotonic() - start > self._timeout:
                    self._shutdown(force=True)  # a worker this late is stuck: stop it
                    raise RuntimeError(f"DataLoader timed out after {self._timeout} "
                                       f"seconds") from None
                continue
            if epoch != self._epoch:  # left over from an epoch that was not run to its end
                if kind == "ok":
                    _worker.discard(payload)
                continue
            self._buffer[i] = (kind, payload)
        return self._buffer.pop(idx)

    def __next__(self):
        if self._shut:
            raise StopIteration
        while True:
            if self._rcvd_idx >= self._send_idx:
                if not self._loader.persistent_workers:
                    self._shutdown()
                raise StopIteration
            idx = self._rcvd_idx
            kind, payload = self._receive(idx)
            wid = self._task_worker.pop(idx)
            self._rcvd_idx += 1
            if kind == "stop":
                self._active[wid] = False
                self._try_put()
                continue
            self._try_put()
            if kind == "err":
                raise _reraise(payload)
            return _worker.unpack(payload)

    # ------------------------------------------------------------ shutdown
    def _shutdown(self, force=False):
        """Stop the workers: ask them (then, after _JOIN_S, or at once with force, terminate
        them), reap them, and free every shared block still in flight."""
        if self._shut or os.getpid() != self._pid:
            return
        self._shut = True
        _live_iterators.discard(self)
        self._done.set()
        for q in self._index_queues:
            try:
                q.put(None)
            except Exception:
                pass
        deadline = time.monotonic() + (0 if force else _JOIN_S)
        while time.monotonic() < deadline:
            self._drain(0)  # keep the result pipe flowing so workers can exit
            alive = [w for w in self._workers if w.is_alive()]
            if not alive:
                break
            alive[0].join(timeout=0.01)
        for w in self._workers:
            if w.is_alive():
                w.terminate()
            w.join(timeout=_JOIN_S)
        self._drain(0)
        for kind, payload in self._buffer.values():
            if kind == "ok":
                _worker.discard(payload)
        self._buffer.clear()
        for q in self._index_queues + [self._result_queue]:
            try:
                q.cancel_join_thread()
                q.close()
            except Exception:
                pass

    def _drain(self, wait):
        while True:
            try:
                _, _, kind, payload = (self._result_queue.get(timeout=wait) if wait
                                       else self._result_queue.get_nowait())
            except (queue.Empty, OSError, EOFError, ValueError):
                return
            except Exception:
                return
            if kind == "ok":
                _worker.discard(payload)

    def __del__(self):
        try:
            self._shutdown()
        except Exception:
            pass


class _WorkerError(RuntimeError):
    pass


def _reraise(err):
    """The exception a worker caught, rebuilt in the main process with its traceback text."""
    cls_bytes, name, wid, text = err
    msg = f"Caught {name} in DataLoader worker process {wid}.\nOriginal {text}"
    cls = None
    if cls_bytes is not None:
        try:
            cls = pickle.loads(cls_bytes)
        except Exception:
            cls = None
    if isinstance(cls, type) and issubclass(cls, BaseException):
        if cls is KeyError:
            return KeyError(_KeyErrorMessage(msg))
        try:
            return cls(msg)
        except Exception:
            pass
    return _WorkerError(msg)


class _KeyErrorMessage(str):
    """KeyError quotes its argument in str(); this keeps the traceback text readable."""

    def __repr__(self):
        return self
