"""Samplers: which indices of a dataset to visit, in which order (PyTorch's classes and rules).

`generator=` takes what fastnn has for torch.Generator: a fastnn Generator (if the installed
fastnn has one: any object holding a numpy Generator), a numpy Generator, or an int seed. With
None, each pass draws a fresh seed from fastnn's global generator (fastnn.manual_seed), so runs
repeat exactly after manual_seed, as in PyTorch.
"""
import numbers
from typing import Generic, TypeVar

import numpy as np

from ...tensor import Tensor, default_generator

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler"]

_RNG_ATTRS = ("_rng", "rng", "_generator", "generator", "np_generator", "_np_rng", "_gen")


def as_numpy_generator(generator):
    """The numpy Generator behind `generator` (see the module doc); None -> fastnn's global."""
    if generator is None:
        return default_generator()
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    for name in _RNG_ATTRS:
        g = getattr(generator, name, None)
        if callable(g) and not isinstance(g, np.random.Generator):
            try:
                g = g()
            except TypeError:
                continue
        if isinstance(g, np.random.Generator):
            return g
    held = list(getattr(generator, "__dict__", {}).values()) + \
        [getattr(generator, n, None) for n in getattr(type(generator), "__slots__", ())]
    for g in held:  # a Generator class of another shape that still holds a numpy Generator
        if isinstance(g, np.random.Generator):
            return g
    raise TypeError(f"generator must be a fastnn Generator, a numpy Generator or an int seed, "
                    f"got {type(generator).__name__}")


def _pass_rng(generator):
    """The generator for one pass over a sampler: the user's, or one seeded from the global."""
    if generator is None:
        return np.random.default_rng(int(default_generator().integers(2 ** 63)))
    return as_numpy_generator(generator)


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
        if self.replacement:
            for _ in range(self.num_samples // 32):
                yield from rng.integers(0, n, size=32).tolist()
            yield from rng.integers(0, n, size=self.num_samples % 32).tolist()
        else:
            for _ in range(self.num_samples // n):
                yield from rng.permutation(n).tolist()
            yield from rng.permutation(n)[:self.num_samples % n].tolist()

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in a random order."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        for i in _pass_rng(self.generator).permutation(len(self.indices)).tolist():
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
        rng = _pass_rng(self.generator)
        yield from rng.choice(len(self._p), size=self.num_samples, replace=self.replacement,
                              p=self._p).tolist()

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
