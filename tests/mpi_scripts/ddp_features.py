"""DDP behaviours: no_sync accumulation, find_unused_parameters (both settings), the .grad
being the average when backward() returns, weight tying, state_dict keys. Prints DDP-FEATURES OK
on rank 0."""
import common as C
import numpy as np

import fastnn
import fastnn.distributed as dist
import fastnn.nn as nn
import fastnn.nn.functional as F
from fastnn.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()
comm = dist.process_group._S.comm
dtype = "float64"


def grads(model):
    return {n: (None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()}


def local_grads(model, x, y):
    """This rank's own gradient, without DDP (a copy of the model)."""
    m = C.make_model(dtype, 0)
    m.load_state_dict(model.state_dict())
    F.cross_entropy(m(x), y).backward()
    return grads(m)


# 1. .grad is the average when backward returns, in every bucket layout
for cap in (25, 0.0005):
    model = C.make_model(dtype, seed=rank)
    ddp = DDP(model, bucket_cap_mb=cap)
    x, y = C.batch(0, 4 * world)
    xs, ys = C.shard(x, rank, world), C.shard(y, rank, world)
    mine = local_grads(model, xs, ys)
    F.cross_entropy(ddp(xs), ys).backward()
    allg = comm.allgather(mine)
    for n, p in model.named_parameters():
        want = sum(g[n] for g in allg) / world
        assert np.allclose(p.grad, want, rtol=1e-12, atol=1e-14), (cap, n)

# 2. no_sync: two micro-steps accumulated locally, the second one reduced
model = C.make_model(dtype, seed=rank)
ddp = DDP(model, bucket_cap_mb=0.0005)
x, y = C.batch(1, 4 * world)
parts = [(C.shard(C.shard(x, rank, world), k, 2), C.shard(C.shard(y, rank, world), k, 2))
         for k in range(2)]
mine = [local_grads(model, *pp) for pp in parts]
with ddp.no_sync():
    F.cross_entropy(ddp(parts[0][0]), parts[0][1]).backward()
g_nosync = grads(model)
for n in g_nosync:  # nothing was communicated: .grad is this rank's own
    assert np.array_equal(g_nosync[n], mine[0][n]), n
F.cross_entropy(ddp(parts[1][0]), parts[1][1]).backward()
allg = comm.allgather(mine)
for n, p in model.named_parameters():
    want = sum(g[0][n] + g[1][n] for g in allg) / world
    assert np.allclose(p.grad, want, rtol=1e-12, atol=1e-14), ("no_sync", n)


# 3. unused parameters
class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 4, dtype=dtype)
        self.a = nn.Linear(4, 2, dtype=dtype)
        self.b = nn.Linear(4, 2, dtype=dtype)       # used by rank 0 only
        self.never = nn.Linear(4, 2, dtype=dtype)   # used by nobody

    def forward(self, x, use_b):
        h = self.body(x)
        out = self.a(h)
        return out + self.b(h) if use_b else out


xin = fastnn.tensor(np.random.default_rng(rank).standard_normal((5, 3)))
m = TwoHeads()
ddp = DDP(m, find_unused_parameters=False)
try:
    ddp(xin, True).sum().backward()
    raise AssertionError("an unused parameter did not raise")
except RuntimeError as e:
    msg = str(e)
    assert "never.weight" in msg and "find_unused_parameters=True" in msg, msg
    if rank == 0:
        print("error message:", msg.splitlines()[0][:400], flush=True)

m = TwoHeads()
ddp = DDP(m, find_unused_parameters=True, bucket_cap_mb=0.00005)
ref = TwoHeads()
ref.load_state_dict(m.state_dict())
ref(xin, rank == 0).sum().backward()
mine = grads(ref)
for it in range(2):  # twice: the reducer resets between iterations
    m.zero_grad()
    ddp(xin, rank == 0).sum().backward()
allg = comm.allgather(mine)
for n, p in m.named_parameters():
    if n.startswith("never."):
        assert p.grad is None, n                        # no rank used it
    else:
        want = sum((g[n] if g[n] is not None else 0) for g in allg) / world
        assert np.allclose(p.grad, want, rtol=1e-12, atol=1e-14), n

# 4. a tied weight (used twice in the graph): its hook fires once, after both uses
class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(6, 4, dtype=dtype)
        self.head = nn.Linear(4, 6, bias=False, dtype=dtype)
        self.head.weight = self.emb.weight

    def forward(self, idx):
        return self.head(self.emb(idx))


tm = Tied()
ddp = DDP(tm, bucket_cap_mb=0.00001)
idx = fastnn.tensor(np.array([[rank, 1, 2]], np.int64) % 6)
ref = Tied()
ref.load_state_dict(tm.state_dict())
ref(idx).sum().backward()
mine = grads(ref)
ddp(idx).sum().backward()
allg = comm.allgather(mine)
for n, p in tm.named_parameters():
    assert np.allclose(p.grad, sum(g[n] for g in allg) / world, rtol=1e-12, atol=1e-14), n

# 5. state_dict under "module."
assert list(ddp.state_dict()) == ["module." + k for k in tm.state_dict()]
dist.barrier()
if rank == 0:
    print(f"DDP-FEATURES OK world={world}", flush=True)
dist.destroy_process_group()
