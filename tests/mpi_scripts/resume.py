"""The single-process side of the checkpoint test (no MPI). Usage: resume.py OUTDIR N M OPT WORLD.
Loads OUTDIR/ckpt.npz (saved by checkpoint.py after N distributed steps), trains the remaining M
steps in this one process, and compares with OUTDIR/final.npz (the distributed run's end) and
with one uninterrupted single-process run of N + M steps from OUTDIR/init.npz. Prints
RESUME resumed_vs_uninterrupted=... resumed_vs_distributed=... fullbatch_vs_distributed=..."""
import os
import sys

import common as C

import fastnn

out, N, M, kind, world = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], \
    int(sys.argv[5])
n = 6 * world
ck = fastnn.load(os.path.join(out, "ckpt.npz"))
final = fastnn.load(os.path.join(out, "final.npz"))
init = fastnn.load(os.path.join(out, "init.npz"))


def resumed(micro):
    m = C.make_model("float64", seed=123)
    m.load_state_dict({k: v for k, v in ck.items() if not k.startswith("optim.")})
    opt = C.make_opt(kind, m.parameters())
    C.load_flat_optimizer_state(opt, ck)
    C.train_steps(m, opt, M, n, start=N, micro=micro)
    return m.state_dict()


# the gradient of `world` equal shards summed then divided: what the allreduce computes
r = resumed(micro=world)
u = C.make_model("float64", seed=7)
u.load_state_dict(init)
C.train_steps(u, C.make_opt(kind, u.parameters()), N + M, n, micro=world)
full = resumed(micro=1)
print(f"RESUME resumed_vs_uninterrupted={C.max_diff(r, u.state_dict()):.3e} "
      f"resumed_vs_distributed={C.max_diff(r, final):.3e} "
      f"fullbatch_vs_distributed={C.max_diff(full, final):.3e}", flush=True)
