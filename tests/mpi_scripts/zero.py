"""ZeRO-1 against plain AdamW: DDP + ZeroRedundancyOptimizer(AdamW) and DDP + AdamW from the same
start for STEPS steps must agree; prints the difference and the optimizer-state bytes per rank.
Also: the consolidated state dict loads into a plain AdamW. Usage: zero.py STEPS"""
import sys

import common as C
import numpy as np

import fastnn
import fastnn.distributed as dist
import fastnn.nn.functional as F
from fastnn.distributed.optim import ZeroRedundancyOptimizer
from fastnn.nn.parallel import DistributedDataParallel as DDP

steps = int(sys.argv[1])
dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()
comm = dist.process_group._S.comm
kw = dict(lr=1e-2, weight_decay=0.1)
a, b = C.make_model("float64", 0), C.make_model("float64", 0)
da, db = DDP(a), DDP(b)
za = ZeroRedundancyOptimizer(da.parameters(), optimizer_class=fastnn.optim.AdamW, **kw)
ob = fastnn.optim.AdamW(db.parameters(), **kw)
n = 6 * world
for s in range(steps):
    x, y = C.batch(s, n)
    xs, ys = C.shard(x, rank, world), C.shard(y, rank, world)
    for m, o in ((da, za), (db, ob)):
        o.zero_grad()
        F.cross_entropy(m(xs), ys).backward()
        o.step()
diff = C.max_diff(a.state_dict(), b.state_dict())
mine = za.local_state_bytes()
full = sum(v.nbytes for st in ob.state.values() for v in st.values() if isinstance(v, np.ndarray))
per_rank = comm.gather(mine, root=0)
za.consolidate_state_dict(to=0)
if rank == 0:
    sd = za.state_dict()
    ref = ob.state_dict()
    assert sorted(sd["state"]) == sorted(ref["state"])
    for i in ref["state"]:
        for k, v in ref["state"][i].items():
            assert np.array_equal(np.asarray(sd["state"][i][k]), np.asarray(v)), (i, k)
    plain = fastnn.optim.AdamW(b.parameters(), **kw)
    plain.load_state_dict(sd)
    box = [sd]
else:
    box = [None]
# a ZeRO optimizer restored from the consolidated state dict goes on like the plain one
dist.broadcast_object_list(box, 0)
c = C.make_model("float64", 0)
c.load_state_dict(a.state_dict())
dc = DDP(c)
zc = ZeroRedundancyOptimizer(dc.parameters(), optimizer_class=fastnn.optim.AdamW, **kw)
zc.load_state_dict(box[0])
for s in range(steps, steps + 3):
    x, y = C.batch(s, n)
    xs, ys = C.shard(x, rank, world), C.shard(y, rank, world)
    for m, o in ((dc, zc), (db, ob)):
        o.zero_grad()
        F.cross_entropy(m(xs), ys).backward()
        o.step()
resumed = C.max_diff(c.state_dict(), b.state_dict())
if rank == 0:
    print(f"ZERO world={world} steps={steps} max_abs_diff={diff:.3e} resumed_diff={resumed:.3e} "
          f"state_bytes_per_rank={per_rank} unsharded={full} "
          f"saving={1 - max(per_rank) / full:.1%}", flush=True)
dist.destroy_process_group()
