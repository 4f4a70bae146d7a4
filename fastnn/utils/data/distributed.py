"""DistributedSampler: each rank's share of a dataset's indices, torch.utils.data's semantics.

Every epoch the indices 0..len-1 are (optionally) shuffled with a seed of seed + epoch -- the
same permutation on every rank, so call set_epoch(epoch) on each rank before each epoch -- then
either padded by repeating indices from the start until they divide evenly among the replicas
(drop_last=False), or cut to a multiple of them (drop_last=True); rank r takes every
num_replicas-th index starting at r.

The permutation: permutation="torch" (the default) is randperm(len) on a Generator seeded with
seed + epoch, which is exactly PyTorch's sampler's order (fastnn's generator is PyTorch's: no
torch needed); permutation="numpy" is numpy.random.default_rng(seed + epoch).permutation(len),
fastnn's order before its streams became PyTorch's. Without shuffling the two are identical to
PyTorch's. Neither depends on what is installed, so ranks on different machines always agree.
"""
import math

import numpy as np

from ..._torch_rng import TorchGenerator
from .sampler import Sampler

__all__ = ["DistributedSampler"]


class DistributedSampler(Sampler):
    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False, permutation="torch"):
        if num_replicas is None or rank is None:
            from ... import distributed as dist
            if not dist.is_initialized():
                raise RuntimeError("DistributedSampler: pass num_replicas and rank, or call "
                                   "fastnn.distributed.init_process_group() first")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        num_replicas, rank = int(num_replicas), int(rank)
        if num_replicas < 1:
            raise ValueError(f"Invalid num_replicas {num_replicas}, it should be >= 1")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        if permutation not in ("numpy", "torch"):
            raise ValueError(f"DistributedSampler: permutation must be 'numpy' or 'torch', got "
                             f"{permutation!r}")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = bool(drop_last)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.permutation = permutation
        n = len(dataset)
        if self.drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def _order(self, n):
        if not self.shuffle:
            return list(range(n))
        if self.permutation == "torch":
            return TorchGenerator(self.seed + self.epoch).randperm(n).tolist()
        return np.random.default_rng(self.seed + self.epoch).permutation(n).tolist()

    def __iter__(self):
        indices = self._order(len(self.dataset))
        if not self.drop_last:
            pad = self.total_size - len(indices)
            if pad > 0 and indices:
                if pad <= len(indices):
                    indices += indices[:pad]
                else:
                    indices += (indices * math.ceil(pad / len(indices)))[:pad]
        else:
            indices = indices[:self.total_size]
        assert len(indices) == self.total_size
        indices = indices[self.rank:self.total_size:self.num_replicas]
        assert len(indices) == self.num_samples
        return iter(indices)

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Use this epoch's shuffle (the same on every rank); call it before each epoch."""
        self.epoch = int(epoch)
