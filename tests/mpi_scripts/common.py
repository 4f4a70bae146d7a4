"""Shared by the scripts that tests/test_distributed.py launches with mpiexec."""
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

import numpy as np  # noqa: E402

import fastnn  # noqa: E402
import fastnn.nn as nn  # noqa: E402
import fastnn.nn.functional as F  # noqa: E402

fastnn.set_num_threads(1)

VOCAB, T, D, H, C = 20, 4, 8, 16, 5


class Net(nn.Module):
    """Embedding -> Linear -> LayerNorm -> ReLU -> Linear: several kinds of parameter."""

    def __init__(self, dtype):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, D, dtype=dtype)
        self.fc1 = nn.Linear(T * D, H, dtype=dtype)
        self.ln = nn.LayerNorm(H, dtype=dtype)
        self.fc2 = nn.Linear(H, C, dtype=dtype)

    def forward(self, idx):
        h = self.emb(idx).reshape(idx.shape[0], T * D)
        return self.fc2(F.relu(self.ln(self.fc1(h))))


def make_model(dtype, seed):
    fastnn.manual_seed(seed)
    return Net(dtype)


def batch(step, n):
    """The full batch of `step`: n token rows and their labels (the same on every rank)."""
    rng = np.random.default_rng(1000 + step)
    return (fastnn.tensor(rng.integers(0, VOCAB, (n, T)).astype(np.int64)),
            fastnn.tensor(rng.integers(0, C, (n,)).astype(np.int64)))


def shard(t, rank, world):
    n = t.shape[0] // world
    return fastnn.tensor(t._data[rank * n:(rank + 1) * n])


def make_opt(kind, params):
    if kind == "sgd":
        return fastnn.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3)
    if kind == "sgd0":
        return fastnn.optim.SGD(params, lr=0.1)
    if kind == "adamw":
        return fastnn.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    raise ValueError(kind)


def train_steps(model, opt, steps, n, start=0, micro=1):
    """Single-process reference: `steps` steps on full batches of n; with micro > 1 the batch
    is split into `micro` equal parts whose gradients are summed, then divided by micro (the
    order of operations of an allreduce over `micro` ranks)."""
    for s in range(start, start + steps):
        x, y = batch(s, n)
        opt.zero_grad()
        if micro == 1:
            F.cross_entropy(model(x), y).backward()
        else:
            for r in range(micro):
                F.cross_entropy(model(shard(x, r, micro)), shard(y, r, micro)).backward()
            for p in model.parameters():
                p.grad = p.grad / micro
        opt.step()


def flat_optimizer_state(opt, prefix="optim."):
    sd = opt.state_dict()
    out = {}
    for i, st in sd["state"].items():
        for k, v in st.items():
            out[f"{prefix}state.{i}.{k}"] = np.asarray(v)
    return out


def load_flat_optimizer_state(opt, ck, prefix="optim."):
    sd = opt.state_dict()
    state = {}
    for key, v in ck.items():
        if key.startswith(prefix + "state."):
            i, k = key[len(prefix) + 6:].split(".", 1)
            state.setdefault(int(i), {})[k] = v if v.ndim else v.item()
    sd["state"] = state
    opt.load_state_dict(sd)


def snap(state_dict):
    """Copies of a state dict's values as numpy arrays (Module.state_dict() shares storage with
    the parameters, as PyTorch's does)."""
    return {k: np.array(v._data if isinstance(v, fastnn.Tensor) else v, copy=True)
            for k, v in state_dict.items()}


def max_diff(a, b):
    a, b = snap(a), snap(b)
    return max(float(np.max(np.abs(a[k] - b[k]))) if a[k].size else 0.0 for k in a)
