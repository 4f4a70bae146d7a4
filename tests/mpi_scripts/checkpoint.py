"""A checkpoint from a distributed run. Usage: checkpoint.py OUTDIR N M OPT.
Trains N steps with DDP, rank 0 saves model.module.state_dict() and the optimizer state
atomically (fastnn.save via dist.save_on_main) to OUTDIR/ckpt.npz, trains M more steps and
saves the final parameters to OUTDIR/final.npz. The test resumes from ckpt.npz in one process."""
import os
import sys

import common as C

import fastnn
import fastnn.distributed as dist
import fastnn.nn.functional as F
from fastnn.nn.parallel import DistributedDataParallel as DDP

out, N, M, kind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()
model = C.make_model("float64", seed=0)
dist.save_on_main(model.state_dict(), os.path.join(out, "init.npz"))
ddp = DDP(model)
opt = C.make_opt(kind, ddp.parameters())
n = 6 * world
for s in range(N + M):
    if s == N:
        state = C.snap(model.state_dict())          # = ddp.module.state_dict()
        state.update(C.flat_optimizer_state(opt))
        dist.save_on_main(state, os.path.join(out, "ckpt.npz"))
    x, y = C.batch(s, n)
    opt.zero_grad()
    F.cross_entropy(ddp(C.shard(x, rank, world)), C.shard(y, rank, world)).backward()
    opt.step()
dist.save_on_main(model.state_dict(), os.path.join(out, "final.npz"))
dist.destroy_process_group()
