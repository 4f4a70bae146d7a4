"""A Dataset/DataLoader pipeline as real training scripts build one: a map-style Dataset subclass
whose __getitem__ returns a dict (made in worker processes, num_workers=2), default collation of
dicts, tuples and numbers, a custom collate_fn, a BatchSampler over a SequentialSampler, Subset and
ConcatDataset, an IterableDataset split across workers with get_worker_info(), and a small model
trained from the loader.

Nothing here draws from the library's random stream (no shuffle), so both libraries see the same
batches in the same order.
"""
import json
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, IterableDataset,
                              SequentialSampler, Subset, get_worker_info)

torch.manual_seed(0)


class SignalDataset(Dataset):
    """Noisy sine windows; the target is the window's next value. Built from a numpy stream."""

    def __init__(self, n, length=12, seed=0):
        rng = np.random.default_rng(seed)
        t = np.arange(n + length + 1, dtype=np.float32) * 0.3
        self.series = (np.sin(t) + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)
        self.n, self.length = n, length

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        window = torch.from_numpy(self.series[idx:idx + self.length].copy())
        target = torch.tensor([self.series[idx + self.length]])
        return {"x": window, "y": target, "index": idx}


class SquaresStream(IterableDataset):
    """0..n-1 and their squares, split between workers by get_worker_info()."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for i in range(start, self.n, step):
            yield i, float(i * i)


def pad_collate(batch):
    """A custom collate_fn: stacks the windows, returns the targets as one tensor and the
    indices as a plain list."""
    xs = torch.stack([item["x"] for item in batch])
    ys = torch.cat([item["y"] for item in batch])
    return xs, ys, [item["index"] for item in batch]


class Regressor(nn.Module):
    def __init__(self, length=12):
        super().__init__()
        self.hidden = nn.Linear(length, 24)
        self.out = nn.Linear(24, 1)

    def forward(self, x):
        return self.out(F.gelu(self.hidden(x)))


def main():
    dataset = SignalDataset(300)
    results = {"len": len(dataset)}

    # default collation of a dict per item, from two worker processes
    loader = DataLoader(dataset, batch_size=32, num_workers=2, persistent_workers=True)
    batch = next(iter(loader))
    results["batch_keys"] = sorted(batch)
    results["batch_x_shape"] = list(batch["x"].shape)
    results["batch_index"] = batch["index"].tolist()
    results["batch_index_is_long"] = batch["index"].dtype == torch.long
    results["n_batches"] = len(loader)

    # Subset + ConcatDataset, a BatchSampler and a collate_fn, workers again
    part = ConcatDataset([Subset(dataset, range(0, 100)), Subset(dataset, range(200, 250))])
    sampler = BatchSampler(SequentialSampler(part), batch_size=40, drop_last=False)
    loader2 = DataLoader(part, batch_sampler=sampler, collate_fn=pad_collate, num_workers=2)
    sizes, firsts = [], []
    for xs, ys, idx in loader2:
        sizes.append(len(idx))
        firsts.append(idx[0])
    results["concat_len"], results["concat_sizes"], results["concat_firsts"] = (
        len(part), sizes, firsts)

    # an IterableDataset split across two workers
    total = 0.0
    seen = []
    for i, sq in DataLoader(SquaresStream(20), batch_size=4, num_workers=2):
        seen += i.tolist()
        total += sq.sum().item()
    results["stream_sorted"] = sorted(seen) == list(range(20))
    results["stream_total"] = total

    # training from a worker-fed loader
    model = Regressor()
    rng = np.random.default_rng(3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy((rng.standard_normal(tuple(p.shape)) * 0.2)
                                     .astype(np.float32)))
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    train_loader = DataLoader(dataset, batch_size=25, num_workers=2, drop_last=True)
    epoch_losses = []
    for epoch in range(3):
        running = 0.0
        for item in train_loader:
            optimizer.zero_grad()
            loss = F.mse_loss(model(item["x"]), item["y"])
            loss.backward()
            optimizer.step()
            running += loss.item()
        epoch_losses.append(running / len(train_loader))
        print(f"epoch {epoch}: loss {epoch_losses[-1]:.5f}")
    results["epoch_losses"] = epoch_losses
    results["finite"] = all(math.isfinite(v) for v in epoch_losses)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
