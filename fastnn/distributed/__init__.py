"""fastnn.distributed: data-parallel training over MPI, in torch.distributed's names.

    # mpiexec -n 2 python train.py        (pip install "fastnn[mpi]" brings mpi4py and mpich)
    import fastnn, fastnn.distributed as dist
    from fastnn.nn.parallel import DistributedDataParallel as DDP
    from fastnn.utils.data import DistributedSampler

    dist.init_process_group("mpi")
    model = DDP(MyModel())                       # rank 0's parameters go to every rank
    opt = fastnn.optim.AdamW(model.parameters())
    for x, y in my_batches(rank=dist.get_rank(), world=dist.get_world_size()):
        loss = loss_fn(model(x), y)
        opt.zero_grad(); loss.backward()         # .grad holds the average over ranks here
        opt.step()
    if dist.is_main_process():
        fastnn.save(model.module.state_dict(), "model.npz")
    dist.destroy_process_group()

Collectives (all_reduce, broadcast, all_gather, all_gather_into_tensor, reduce_scatter,
reduce_scatter_tensor, barrier) work in place on Tensors' arrays; async_op=True returns a Work
with wait(). ZeroRedundancyOptimizer (fastnn.distributed.optim) shards the optimizer state.

Running. One machine: `OMP_NUM_THREADS=T mpiexec -n R -bind-to core:T python train.py` with
R x T <= cores (setup() reads FASTNN_NUM_THREADS / OMP_NUM_THREADS, default 1, and warns when a
node is oversubscribed). Slurm: `srun --mpi=pmi2 --ntasks-per-node=R --cpus-per-task=T
--cpu-bind=cores --kill-on-bad-exit=1 python train.py` (or mpiexec inside the allocation).
FASTNN_DIST_TIMEOUT (seconds, default 300, 0 = none) bounds every collective: it must exceed the
longest time one rank works alone while the others wait (rank 0 evaluating or checkpointing).
FASTNN_DIST_WATCHDOG=0 turns off the per-rank watchdog that names a rank which died silently.
"""
from .process_group import (ReduceOp, Work, DistError, DistTimeoutError, is_available,  # noqa
                            init_process_group, is_initialized, get_rank, get_world_size,
                            get_backend, barrier, destroy_process_group, all_reduce, broadcast,
                            all_gather, all_gather_into_tensor, reduce_scatter,
                            reduce_scatter_tensor, new_group, get_timeout,
                            broadcast_object_list, all_gather_object)
from .process_group import __all__ as _pg_all

__all__ = list(_pg_all) + ["launched_by_mpi", "setup", "is_main_process", "print0",
                           "save_on_main", "cleanup", "shard", "broadcast_scalar"]

_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "MPI_LOCALRANKID",
                  "HYDI_CONTROL_FD", "PMI_FD")


def launched_by_mpi():
    """True when this process was started by an MPI launcher (mpiexec, mpirun, srun with PMI)."""
    import os
    return any(v in os.environ for v in _LAUNCHER_VARS)


def setup(threads=None, backend="mpi"):
    """What a training script (or `fastnn train ... --distributed`) calls first: join the job,
    set this rank's thread count (default: FASTNN_NUM_THREADS, else OMP_NUM_THREADS, else 1, so
    ranks x threads stays within the cores), and return (rank, world_size)."""
    import os
    from ..threads import set_num_threads
    if not is_initialized():
        init_process_group(backend)
    if threads is None:
        threads = int(os.environ.get("FASTNN_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
                      or 1)
    set_num_threads(threads)
    _check_oversubscription(threads)
    return get_rank(), get_world_size()


def _check_oversubscription(threads):
    """Warn (once per node) when ranks x threads on this node exceed the cores this process may
    use: oversubscribed ranks wait for each other at every allreduce."""
    import os
    import sys
    from .process_group import _S
    local = _S.comm.Split_type(_S.MPI.COMM_TYPE_SHARED)
    try:
        n_local, local_rank = local.Get_size(), local.Get_rank()
    finally:
        local.Free()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    if local_rank == 0 and n_local * threads > max(cores, os.cpu_count() or 1):
        print(f"fastnn.distributed: warning: {n_local} ranks x {threads} threads on this node "
              f"exceed its {os.cpu_count()} cores; set OMP_NUM_THREADS (or FASTNN_NUM_THREADS) "
              f"so that ranks x threads <= cores", file=sys.stderr, flush=True)


def shard(batch, dim=0, rank=None, world_size=None):
    """This rank's equal share of a global batch (a Tensor or numpy array) along `dim`: every
    rank draws the same global batch (same seed) and trains on its slice, so that the run
    matches one process on the whole batch. The size along dim must divide evenly."""
    import numpy as np
    from ..tensor import Tensor
    rank = (get_rank() if is_initialized() else 0) if rank is None else rank
    world_size = ((get_world_size() if is_initialized() else 1) if world_size is None
                  else world_size)
    arr = batch._data if isinstance(batch, Tensor) else np.asarray(batch)
    n = arr.shape[dim]
    if n % world_size:
        raise ValueError(f"shard: a batch of {n} along dim {dim} does not split evenly over "
                         f"{world_size} ranks")
    k = n // world_size
    part = np.take(arr, np.arange(rank * k, (rank + 1) * k), axis=dim)
    return Tensor(part) if isinstance(batch, Tensor) else part


def is_main_process():
    """True on rank 0, and in a process that never joined a process group."""
    return not is_initialized() or get_rank() == 0


def print0(*args, **kwargs):
    """print() on rank 0 only."""
    if is_main_process():
        print(*args, **kwargs)


def save_on_main(state_dict, path):
    """fastnn.save(state_dict, path) on rank 0 only (atomic: a temp file renamed over the
    target), then a barrier so no rank runs ahead of a checkpoint that is not yet on disk."""
    from ..serialization import save
    if is_main_process():
        save(state_dict, path)
    if is_initialized():
        barrier()


def broadcast_scalar(value, src=0):
    """Rank src's number on every rank (as a float; the value itself when no group is up). For
    what every rank must decide alike: whether to stop (a time budget measured on each rank
    would differ), the elapsed time a time-based lr schedule reads, a loss to print."""
    import numpy as np
    if not is_initialized():
        return value
    buf = np.array([value], np.float64)
    broadcast(buf, src)
    return float(buf[0])


def cleanup():
    """destroy_process_group() if one is up."""
    if is_initialized():
        destroy_process_group()
