"""Samplers: which indices of a dataset to visit, in which order (PyTorch's classes, rules and
random draws).

`generator=` takes what fastnn has for torch.Generator: a fastnn Generator, a numpy Generator,
or an int seed (a Generator seeded with it). The draws are PyTorch's: RandomSampler with no
generator seeds a fresh Generator per pass from one int64 draw of fastnn's global generator and
walks its randperm; SubsetRandomSampler and WeightedRandomSampler draw from the global generator
itself (randperm, multinomial). So after fastnn.manual_seed(s) the batches come in the order
PyTorch's come after torch.manual_seed(s).
"""
import numbers
from typing import Generic, TypeVar

import numpy as np

from ..._torch_rng import TorchGenerator
from ...tensor import Tensor, _gen, default_generator

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler"]


def as_torch_generator(generator):
    """The generator behind `generator` (see the module doc): a TorchGenerator, or a numpy
    Generator wrapped to the same methods; None -> fastnn's global one."""
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return TorchGenerator(int(generator))
    try:
        return _gen(generator)
    except TypeError:
        raise TypeError(f"generator must be a fastnn Generator, a numpy Generator or an int "
                        f"seed, got {type(generator).__name__}") from None


as_numpy_generator = as_torch_generator   # the old name (the dataloader's import)


def _int64_seed(rng):
    """torch.empty((), dtype=torch.int64).random_(generator=rng).item()."""
    return int(rng.random_default(1, np.int64)[0])


def _pass_rng(generator):
    """The generator for one pass of a RandomSampler: the user's, or a new one seeded from one
    int64 draw of the global generator (PyTorch's rule)."""
    if generator is None:
        return TorchGenerator(_int64_seed(default_generator()))
    return as_torch_generator(generator)


T_co = TypeVar("T_co", covariant=True)


class Sampler(Generic[T_co]):
    """Base class: subclasses define __iter__ (indices) and usually __len__ (Sampler[int] in
    type hints, as PyTorch's)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation (or, with replacement, num_samples uniform draws)."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got "
                            f"replacement={self.replacement}")
        if not isinstance(self.num_samples, int) or isinstance(self.num_samples, bool) or \
                self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={self.num_samples}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        rng = _pass_rng(self.generator)
        if self.replacement:   # randint in batches of 32, as PyTorch
            for _ in range(self.num_samples // 32):
                yield from rng.integers_from_to(32, 0, n).tolist()
            yield from rng.integers_from_to(self.num_samples % 32, 0, n).tolist()
        else:   # (PyTorch draws the last permutation even when none of it is used)
            for _ in range(self.num_samples // n):
                yield from rng.randperm(n).tolist()
            yield from rng.randperm(n)[:self.num_samples % n].tolist()

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in a random order."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        for i in as_torch_generator(self.generator).randperm(len(self.indices)).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """num_samples indices in [0, len(weights)), index i drawn with probability
    weights[i] / sum(weights) (as torch.multinomial)."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got "
                             f"replacement={replacement}")
        w = np.array(weights, np.float64)  # (a Tensor converts through __array__)
        if w.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape "
                             f"{tuple(w.shape)}")
        if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0, "
                               "or a weight negative, inf or nan)")
        if not replacement and num_samples > int((w > 0).sum()):
            raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                               "replacement")
        self.weights = Tensor(w)
        self._p = w / w.sum()
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self):
        # torch.multinomial(weights as float64, num_samples, replacement, generator)
        rng = as_torch_generator(self.generator)
        w = np.asarray(self.weights._data, np.float64)[None, :]
        yield from rng.multinomial(w, self.num_samples, self.replacement)[0].tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of `sampler` into lists of batch_size (the last may be shorter, unless
    drop_last)."""

    def __init__(self, sampler, batch_size, drop_last):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got "
                             f"drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        batch = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size
