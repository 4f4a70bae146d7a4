"""DistributedDataParallel: PyTorch's data parallelism over fastnn.distributed (MPI).

How a step goes (PyTorch's reducer, in miniature):
- at wrap time rank 0's parameters and buffers are broadcast to every rank, and the parameters
  are split into buckets in reverse registration order (roughly the order backward produces
  their gradients): the first bucket up to 1 MB, the others up to bucket_cap_mb (25 MB), one
  dtype per bucket; after the first iteration the buckets are rebuilt in the order the
  gradients actually arrived (rank 0's order, broadcast), as PyTorch does;
- every parameter gets a post-accumulate-grad hook; when backward has finished a parameter's
  gradient the hook copies it into its bucket's flat buffer, and when a bucket is full its
  non-blocking allreduce (MPI Iallreduce) starts at once, in bucket order on every rank (MPI
  needs collectives issued in the same order everywhere), while backward goes on computing the
  earlier layers' gradients; every later hook polls the requests in flight, which is what lets
  MPI make progress;
- at the end of backward (a callback the autograd engine runs when the graph is done) the last
  buckets are sent, every request is waited for, and each .grad becomes the average over ranks.
  So when loss.backward() returns, .grad holds the averaged gradient (a fresh array of its own,
  not a view of the bucket).

no_sync() skips the reduction (the gradients accumulate locally) until the first backward after
it. With find_unused_parameters=False a parameter that got no gradient raises, naming it; with
True its gradient counts as zeros, and a parameter no rank used keeps .grad None.

Collectives happen only in training forwards (grad mode on) and their backward, which every rank
runs in step; a forward under no_grad (rank 0 alone evaluating) communicates nothing.
"""
import contextlib

import numpy as np

from ..tensor import Tensor, is_grad_enabled
from .modules import Module

__all__ = ["DistributedDataParallel"]

_FIRST_BUCKET_BYTES = 1024 * 1024  # PyTorch's dist._DEFAULT_FIRST_BUCKET_BYTES


class _Bucket:
    __slots__ = ("params", "offsets", "numel", "dtype", "buf", "pending", "req", "sent")

    def __init__(self, params, dtype):
        self.params = params
        self.offsets, n = [], 0
        for p in params:
            self.offsets.append(n)
            n += p._data.size
        self.numel, self.dtype = n, dtype
        self.buf, self.pending, self.req, self.sent = None, len(params), None, False


class DistributedDataParallel(Module):
    """Wrap `module` for data-parallel training: call it like the module; after
    loss.backward() every parameter's .grad is the average over ranks.

    module: the model (its state_dict keys appear under "module."); bucket_cap_mb: bucket size
    (25); find_unused_parameters: tolerate parameters without a gradient (as zeros);
    broadcast_buffers: send rank 0's buffers at every forward; process_group: an MPI
    communicator from fastnn.distributed.new_group (default: all ranks); init_sync: broadcast
    rank 0's parameters now. device_ids / output_device / dim / gradient_as_bucket_view /
    static_graph are accepted for PyTorch compatibility and have no effect on CPU.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=None, find_unused_parameters=False,
                 check_reduction=False, gradient_as_bucket_view=False, static_graph=False,
                 init_sync=True):
        super().__init__()
        from .. import distributed as dist
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel: call "
                               "fastnn.distributed.init_process_group('mpi') first")
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a fastnn.nn.Module, got "
                            f"{type(module).__name__}")
        self.module = module
        d = self.__dict__  # plain attributes (not registered as submodules or parameters)
        d["_dist"] = dist
        d["process_group"] = process_group
        d["_comm"] = dist.process_group._comm(process_group)
        d["world_size"] = self._comm.Get_size()
        d["broadcast_buffers"] = bool(broadcast_buffers)
        d["find_unused_parameters"] = bool(find_unused_parameters)
        d["require_backward_grad_sync"] = True
        d["bucket_bytes_cap"] = int((25 if bucket_cap_mb is None else bucket_cap_mb) * 1024 * 1024)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't "
                               "have any parameter that requires a gradient.")
        d["_params"] = [p for _, p in named]
        d["_names"] = {id(p): n for n, p in named}
        self._check_same_model(named)
        if init_sync:
            self._sync_params_and_buffers()
        self._set_buckets(self._make_buckets(list(reversed(self._params))))
        d["_arrival"] = []       # the order gradients arrived in, this iteration
        d["_rebuild"] = None     # that order, from the first iteration: buckets follow it
        d["_rebuilt"] = False
        d["_handles"] = [p.register_post_accumulate_grad_hook(self._grad_ready)
                         for p in self._params]
        d["_armed"] = False      # a forward with grad sync ran; its backward has not finished
        d["_started"] = False    # some gradient of this iteration arrived
        d["_ready"] = set()      # ids of parameters whose gradient is in its bucket
        d["_next"] = 0           # the next bucket to send (buckets go out in order)

    # ------------------------------------------------------------ setup
    def _check_same_model(self, named):
        sig = [(n, tuple(p._data.shape), str(p._data.dtype)) for n, p in named]
        box = [sig]
        self._dist.broadcast_object_list(box, 0, group=self._comm)
        ref = box[0]
        if ref != sig:
            diff = next((f"{a} vs rank 0's {b}" for a, b in zip(sig, ref) if a != b),
                        f"{len(sig)} parameters vs rank 0's {len(ref)}")
            raise RuntimeError(f"DistributedDataParallel: rank {self._comm.Get_rank()}'s model "
                               f"differs from rank 0's: {diff}")

    def _sync_params_and_buffers(self):
        tensors = [p for p in self._params] + [b for _, b in self.module.named_buffers()]
        for t in tensors:
            self._dist.broadcast(t, 0, group=self._comm)

    def _set_buckets(self, buckets):
        d = self.__dict__
        d["_buckets"] = buckets
        d["_where"] = {id(p): (b, i) for b, bk in enumerate(buckets)
                       for i, p in enumerate(bk.params)}

    def _make_buckets(self, order):
        """Buckets over `order` (the parameters, first expected ready first)."""
        buckets, open_ = [], {}
        cap = min(_FIRST_BUCKET_BYTES, self.bucket_bytes_cap)
        for p in order:
            dt = p._data.dtype
            cur = open_.get(dt)
            if cur is None:
                cur = open_[dt] = [[], 0]
            cur[0].append(p)
            cur[1] += p._data.nbytes
            if cur[1] >= cap:
                buckets.append(_Bucket(cur[0], dt))
                del open_[dt]
                cap = self.bucket_bytes_cap
        for dt, (ps, _) in open_.items():
            buckets.append(_Bucket(ps, dt))
        return buckets

    def bucket_sizes(self):
        """(parameters, bytes) of each bucket, in the order they are sent."""
        return [(len(b.params), b.numel * b.dtype.itemsize) for b in self._buckets]

    # ------------------------------------------------------------ forward
    def forward(self, *inputs, **kwargs):
        if self._armed and self._started:
            raise RuntimeError(
                "Expected to have finished reduction in the prior iteration before starting a "
                "new one. This error indicates that a backward pass raised before the gradient "
                "reduction finished, or that your module has parameters that were not used in "
                "producing loss. " + self._unready_message())
        armed = is_grad_enabled() and self.require_backward_grad_sync
        # collectives in forward happen only in training forwards (grad mode on), which every
        # rank runs in step; a forward under no_grad (rank 0 alone evaluating) sends nothing
        if self.broadcast_buffers and self.training and is_grad_enabled() and self.world_size > 1:
            for _, b in self.module.named_buffers():
                self._dist.broadcast(b, 0, group=self._comm)
        if armed and self._rebuild is not None and not self._rebuilt:
            self._rebuild_buckets()
        self._reset()
        self.__dict__["_armed"] = armed
        return self.module(*inputs, **kwargs)

    def _rebuild_buckets(self):
        """After the first iteration, as PyTorch does: buckets in the order the gradients
        actually arrived (rank 0's order, so that every rank sends the same buckets)."""
        box = [self._rebuild]
        self._dist.broadcast_object_list(box, 0, group=self._comm)
        order = box[0]
        self.__dict__["_rebuilt"] = True
        if sorted(order) != list(range(len(self._params))):
            return
        self._set_buckets(self._make_buckets([self._params[i] for i in order]))

    def _reset(self):
        d = self.__dict__
        d["_armed"] = d["_started"] = False
        d["_ready"] = set()
        d["_arrival"] = []
        d["_next"] = 0
        orphans = d.setdefault("_orphans", [])
        orphans[:] = [(r, buf) for r, buf in orphans if not r.Test()]
        for b in self._buckets:
            if b.req is not None and not b.req.Test():
                # an allreduce left in flight by a failed iteration: MPI may still write into
                # its buffer, so both stay referenced until it completes
                orphans.append((b.req, b.buf))
            b.buf, b.pending, b.req, b.sent = None, len(b.params), None, False

    @contextlib.contextmanager
    def no_sync(self):
        """Within it, backward accumulates gradients locally without communicating; the first
        backward after it reduces the accumulated sum."""
        old = self.require_backward_grad_sync
        self.__dict__["require_backward_grad_sync"] = False
        try:
            yield
        finally:
            self.__dict__["require_backward_grad_sync"] = old

    # ------------------------------------------------------------ backward
    def _grad_ready(self, p):
        if not self._armed:
            return
        k = id(p)
        if k in self._ready:
            raise RuntimeError(
                f"DistributedDataParallel: parameter {self._names[k]!r} was marked ready twice "
                f"in one iteration (a second backward through the same forward, e.g. "
                f"retain_graph=True); call the DDP model again for each backward, or use "
                f"no_sync() for all but the last")
        if not self._started:
            self.__dict__["_started"] = True
            Tensor._queue_callback(self._finalize)
        self._ready.add(k)
        self._arrival.append(k)
        b, i = self._where[k]
        bk = self._buckets[b]
        self._copy_in(bk, i, p.grad)
        bk.pending -= 1
        if bk.pending == 0:
            self._send_ready()
        self._poll()

    def _copy_in(self, bk, i, grad):
        if bk.buf is None:
            bk.buf = np.empty(bk.numel, bk.dtype)
        p = bk.params[i]
        o = bk.offsets[i]
        dst = bk.buf[o:o + p._data.size]
        if grad is None:
            dst[...] = 0
        else:
            dst[...] = (grad._data if isinstance(grad, Tensor) else grad).reshape(-1)

    def _send_ready(self):
        """Start the allreduce of every full bucket whose predecessors are all sent."""
        MPI = self._dist.process_group._S.MPI
        while self._next < len(self._buckets) and self._buckets[self._next].pending == 0:
            bk = self._buckets[self._next]
            bk.req = self._comm.Iallreduce(MPI.IN_PLACE, bk.buf, op=MPI.SUM)
            bk.sent = True
            self.__dict__["_next"] += 1

    def _poll(self):
        for bk in self._buckets:
            if bk.req is not None:
                if not bk.req.Test():
                    return  # later requests are behind this one

    def _unready_message(self):
        names = [self._names[id(p)] for p in self._params if id(p) not in self._ready]
        rank = self._comm.Get_rank()
        shown = ", ".join(names[:20]) + (f" (and {len(names) - 20} more)" if len(names) > 20
                                         else "")
        return (f"Parameters which did not receive grad for rank {rank}: {shown}. You can enable "
                f"unused parameter detection by passing the keyword argument "
                f"`find_unused_parameters=True` to `DistributedDataParallel`, and by making sure "
                f"all `forward` function outputs participate in calculating loss.")

    def _finalize(self):
        if not (self._armed and self._started):
            return
        missing = [p for p in self._params if id(p) not in self._ready]
        if missing and not self.find_unused_parameters:
            self.__dict__["_armed"] = False
            raise RuntimeError(
                "DistributedDataParallel: some parameters received no gradient in this "
                "iteration, so their gradients cannot be averaged (the other ranks would wait "
                "for them). " + self._unready_message())
        for p in missing:  # treated as zeros
            b, i = self._where[id(p)]
            bk = self._buckets[b]
            self._copy_in(bk, i, p.grad)  # a grad from earlier no_sync steps, else zeros
            bk.pending -= 1
        self._send_ready()
        used = None
        if self.find_unused_parameters:
            # which parameters some rank used: the others keep .grad None, as in PyTorch
            MPI = self._dist.process_group._S.MPI
            local = np.array([0 if (id(p) not in self._ready and p.grad is None) else 1
                              for p in self._params], np.int32)
            used = np.empty_like(local)
            self._dist.process_group._wait(
                self._comm.Iallreduce(local, used, op=MPI.MAX), "DDP unused-parameter check")
        wait = self._dist.process_group._wait
        n = self.world_size
        for b, bk in enumerate(self._buckets):
            wait(bk.req, f"DDP gradient allreduce (bucket {b}, {bk.numel} x {bk.dtype})")
            buf = bk.buf
            for p, o in zip(bk.params, bk.offsets):
                # a fresh array per parameter (a leaf's .grad is never a view), divided on the way
                p.grad = Tensor(np.divide(buf[o:o + p._data.size].reshape(p._data.shape), n))
        if used is not None:
            for p, u in zip(self._params, used):
                if not u:
                    p.grad = None
        if not self._rebuilt and self._rebuild is None:
            index = {id(p): i for i, p in enumerate(self._params)}
            arrived = [index[k] for k in self._arrival]
            self.__dict__["_rebuild"] = arrived + [i for i in range(len(self._params))
                                                   if i not in set(arrived)]
        self._reset()

    # ------------------------------------------------------------ misc
    def extra_repr(self):
        return f"world_size={self.world_size}, buckets={len(self._buckets)}"

    def __del__(self):
        for h in self.__dict__.get("_handles", ()):
            h.remove()
