"""Every collective against numpy, for sizes from 1 element to a few MB. Every rank can rebuild
every other rank's input (seeded by rank), so each checks its result locally. Prints
COLLECTIVES OK world=N checks=K on rank 0; exits non-zero (AssertionError) on a mismatch."""
import sys

import common as C  # noqa: F401  (threads, path)
import numpy as np

import fastnn
import fastnn.distributed as dist
from fastnn.distributed import ReduceOp

dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()
sizes = [int(s) for s in sys.argv[1].split(",")] if len(sys.argv) > 1 else \
    [1, 2, 7, 1000, 65537, 1 << 19]      # 1 << 19 float64 = 4 MB
checks = 0


def data(r, n, dtype, salt=0):
    rng = np.random.default_rng(10_000 * salt + 100 * r + n % 97)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(n).astype(dtype)
    return rng.integers(-1000, 1000, n).astype(dtype)


def close(got, want, dtype, what):
    global checks
    checks += 1
    if np.dtype(dtype).kind == "f":
        tol = 1e-5 if np.dtype(dtype) == np.float32 else 1e-12
        ok = np.allclose(got, want, rtol=tol, atol=tol)
    else:
        ok = np.array_equal(got, want)
    if not ok:
        raise AssertionError(f"rank {rank}: {what} {dtype}: max diff "
                             f"{np.max(np.abs(got.astype(float) - want.astype(float)))}")


for n in sizes:
    for dtype in ("float32", "float64", "int64"):
        ins = [data(r, n, dtype) for r in range(world)]
        stack = np.stack(ins)
        floats = dtype != "int64"
        ops = [(ReduceOp.SUM, stack.sum(0)), (ReduceOp.MAX, stack.max(0)),
               (ReduceOp.MIN, stack.min(0))]
        if floats:
            ops += [(ReduceOp.AVG, stack.sum(0) / world),
                    (ReduceOp.PRODUCT, np.prod(stack, axis=0))]
        for op, want in ops:
            t = fastnn.tensor(ins[rank].copy())
            dist.all_reduce(t, op=op)
            close(t._data, want.astype(dtype), dtype, f"all_reduce {op} n={n}")
        # async, and on a non-contiguous tensor (a transposed view is reduced and written back)
        t = fastnn.tensor(ins[rank].copy())
        w = dist.all_reduce(t, async_op=True)
        w.wait()
        assert w.is_completed()
        close(t._data, stack.sum(0).astype(dtype), dtype, f"all_reduce async n={n}")
        if n % 2 == 0:
            base = ins[rank].copy().reshape(2, n // 2)
            view = base.T
            dist.all_reduce(view, op=ReduceOp.MAX)
            close(base, stack.max(0).reshape(2, n // 2), dtype, f"all_reduce strided n={n}")
        # broadcast from the last rank
        src = world - 1
        t = fastnn.tensor(ins[rank].copy())
        dist.broadcast(t, src=src)
        close(t._data, ins[src], dtype, f"broadcast n={n}")
        # all_gather (list) and all_gather_into_tensor
        outs = [fastnn.zeros(n, dtype=dtype) for _ in range(world)]
        dist.all_gather(outs, fastnn.tensor(ins[rank]))
        for r in range(world):
            close(outs[r]._data, ins[r], dtype, f"all_gather n={n}")
        out = fastnn.zeros(world * n, dtype=dtype)
        dist.all_gather_into_tensor(out, fastnn.tensor(ins[rank]))
        close(out._data, stack.reshape(-1), dtype, f"all_gather_into_tensor n={n}")
        if not floats:
            continue
        # reduce_scatter: each rank contributes world blocks of n; rank r keeps block r's sum
        blocks = [np.stack([data(q, n, dtype, salt=1 + b) for b in range(world)])
                  for q in range(world)]
        want = sum(blocks[q][rank] for q in range(world))
        out = fastnn.zeros(n, dtype=dtype)
        dist.reduce_scatter(out, [fastnn.tensor(b) for b in blocks[rank]])
        close(out._data, want, dtype, f"reduce_scatter n={n}")
        out = fastnn.zeros(n, dtype=dtype)
        dist.reduce_scatter_tensor(out, fastnn.tensor(blocks[rank].reshape(-1)),
                                   op=ReduceOp.AVG)
        close(out._data, want / world, dtype, f"reduce_scatter_tensor avg n={n}")
# a device array (numba.cuda's interface: copy_to_host / copy_to_device) goes through the host
class FakeDeviceArray:
    def __init__(self, host):
        self._mem, self.shape = host.copy(), host.shape

    def copy_to_host(self):
        return self._mem.copy()

    def copy_to_device(self, arr):
        self._mem[...] = arr


dev = fastnn.Tensor.__new__(fastnn.Tensor)
dev._data = FakeDeviceArray(data(rank, 1000, "float32").reshape(10, 100))
dist.all_reduce(dev, op=ReduceOp.AVG)
close(dev._data._mem, (sum(data(r, 1000, "float32") for r in range(world)) / world).reshape(10, 100),
      "float32", "all_reduce on a device array")
dev._data = FakeDeviceArray(data(rank, 1000, "float32").reshape(10, 100))
dist.broadcast(dev, src=0)
close(dev._data._mem, data(0, 1000, "float32").reshape(10, 100), "float32", "broadcast on device")

# Python objects
objs = [{"rank": rank, "data": list(range(rank))}, "x" * (rank * 1000)]
dist.broadcast_object_list(objs, src=world - 1)
assert objs == [{"rank": world - 1, "data": list(range(world - 1))}, "x" * ((world - 1) * 1000)]
got = [None] * world
dist.all_gather_object(got, ("hello", rank, np.arange(rank)))
assert [g[1] for g in got] == list(range(world)) and all(len(g[2]) == i for i, g in enumerate(got))
checks += 2
dist.barrier()
if rank == 0:
    print(f"COLLECTIVES OK world={world} checks={checks} sizes={sizes}", flush=True)
dist.destroy_process_group()
