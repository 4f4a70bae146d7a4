"""What `fastnn train gpt --distributed` does, in miniature (the CLI wiring template): setup(),
DDP around a small GPT (tied embeddings), every rank drawing the same global batch and training
on its shard, gradient clipping, AdamW, progress printed by rank 0 only, an atomic checkpoint
written by rank 0. Usage: train_gpt.py OUTDIR STEPS"""
import os
import sys
import time

import common as C  # noqa: F401  (threads, path)
import numpy as np

import fastnn
import fastnn.distributed as dist
from fastnn.models.gpt import GPT, GPTConfig
from fastnn.nn.parallel import DistributedDataParallel as DDP
from fastnn.nn.utils import clip_grad_norm_

out, steps = sys.argv[1], int(sys.argv[2])
rank, world = dist.setup()                       # init_process_group + threads per rank
fastnn.manual_seed(1234 + rank)                  # different inits: DDP broadcasts rank 0's
model = GPT(GPTConfig(block_size=16, vocab_size=11, n_layer=1, n_head=2, n_embd=16,
                      dropout=0.0, bias=False))
ddp = DDP(model)
opt = model.configure_optimizers(0.1, 3e-3, (0.9, 0.99))
rng = np.random.default_rng(0)                   # the same stream on every rank
data = np.arange(400) % 11
step = 0
t_start = time.perf_counter()
while True:
    # a stop decision every rank takes alike (each rank's own clock would differ)
    elapsed = dist.broadcast_scalar(time.perf_counter() - t_start)
    if step >= steps or elapsed > 600:
        break
    starts = rng.integers(0, len(data) - 17, 4 * world)
    x = np.stack([data[s:s + 16] for s in starts])
    y = np.stack([data[s + 1:s + 17] for s in starts])
    _, loss = ddp(fastnn.tensor(dist.shard(x)), fastnn.tensor(dist.shard(y)))
    opt.zero_grad()
    loss.backward()
    clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if step % 5 == 0:
        mean = fastnn.tensor([loss.item()])
        dist.all_reduce(mean, op=dist.ReduceOp.AVG)
        dist.print0(f"step {step}: loss {mean.item():.4f}")
    step += 1
sd = model.state_dict()
flat = np.concatenate([np.asarray(v._data).reshape(-1) for v in sd.values()])
allf = dist.process_group._S.comm.allgather(flat)
assert all(np.array_equal(f, flat) for f in allf), "ranks diverged"
dist.save_on_main(sd, os.path.join(out, "gpt.npz"))
dist.print0(f"TRAIN-GPT OK world={world} final loss {loss.item():.4f}")
dist.cleanup()
