"""Equivalence: DDP over the ranks, each on its share of every batch, against one process on the
whole batch. Usage: equivalence.py DTYPE OPT STEPS. Rank 0 prints one line:
EQUIV dtype opt world max_abs_diff_vs_full_batch max_abs_diff_vs_microbatch_reference"""
import sys

import common as C
import numpy as np

import fastnn
import fastnn.distributed as dist
import fastnn.nn.functional as F
from fastnn.nn.parallel import DistributedDataParallel as DDP

dtype, kind, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()
per = 6
n = per * world

model = C.make_model(dtype, seed=rank)          # different on every rank: DDP must broadcast
ddp = DDP(model, bucket_cap_mb=0.001)           # tiny buckets: several in flight at once
init = C.snap(model.state_dict())
ref = [init[k] for k in init]
gathered = dist.process_group._S.comm.allgather([a.tobytes() for a in ref])
assert all(g == gathered[0] for g in gathered), "parameters differ after the wrap-time broadcast"
assert all(k.startswith("module.") for k in ddp.state_dict())

opt = C.make_opt(kind, ddp.parameters())
for s in range(steps):
    x, y = C.batch(s, n)
    opt.zero_grad()
    loss = F.cross_entropy(ddp(C.shard(x, rank, world)), C.shard(y, rank, world))
    loss.backward()
    opt.step()
final = C.snap(model.state_dict())
fin_all = dist.process_group._S.comm.gather(final, root=0)

if rank == 0:
    assert all(C.max_diff(f, final) == 0.0 for f in fin_all), "ranks diverged"
    diffs = []
    for micro in (1, world):
        m = C.make_model(dtype, seed=0)
        m.load_state_dict(init)
        C.train_steps(m, C.make_opt(kind, m.parameters()), steps, n, micro=micro)
        diffs.append(C.max_diff(m.state_dict(), final))
    moved = C.max_diff(init, final)
    print(f"EQUIV {dtype} {kind} world={world} steps={steps} full_batch_diff={diffs[0]:.3e} "
          f"microbatch_diff={diffs[1]:.3e} moved={moved:.3e} buckets={len(ddp.bucket_sizes())}",
          flush=True)
dist.destroy_process_group()
