"""A rank that fails mid-training. Usage: failure.py MODE, MODE one of
exit (rank 1 calls os._exit(7)), sigkill (rank 1 SIGKILLs itself), raise (rank 1 raises),
hang (rank 1 stops calling collectives; the others time out: FASTNN_DIST_TIMEOUT).
The job must end non-zero, quickly, naming the rank."""
import os
import signal
import sys
import time

import common as C

import fastnn
import fastnn.distributed as dist
import fastnn.nn.functional as F
from fastnn.nn.parallel import DistributedDataParallel as DDP

mode = sys.argv[1]
dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()
model = DDP(C.make_model("float32", 0))
opt = fastnn.optim.SGD(model.parameters(), lr=0.1)
for step in range(1000):
    if rank == 1 and step == 3:
        print(f"rank 1: failing now ({mode})", flush=True)
        if mode == "exit":
            os._exit(7)
        elif mode == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif mode == "raise":
            raise ValueError("something went wrong in rank 1")
        elif mode == "hang":
            time.sleep(600)
    x, y = C.batch(step, 4 * world)
    opt.zero_grad()
    F.cross_entropy(model(C.shard(x, rank, world)), C.shard(y, rank, world)).backward()
    opt.step()
    t = fastnn.tensor([1.0])
    dist.all_reduce(t)   # a blocking collective too
print(f"rank {rank}: finished, which it should not have", flush=True)
