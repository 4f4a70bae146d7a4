"""DataLoader and TensorDataset: mini-batches of Tensors from arrays (PyTorch's names)."""
import numpy as np

from ..tensor import Tensor, default_generator


class TensorDataset:
    """Arrays (or Tensors) of equal length, indexed together: ds[i] -> (x[i], y[i], ...)."""

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = tuple(a.data if isinstance(a, Tensor) else np.asarray(a) for a in arrays)
        n = len(self.arrays[0])
        for a in self.arrays[1:]:
            if len(a) != n:
                raise ValueError(f"TensorDataset: arrays have different lengths "
                                 f"{[len(x) for x in self.arrays]}")

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)


class DataLoader:
    """Iterate a dataset in mini-batches of Tensors.

    dataset: a TensorDataset, a tuple of arrays, or any object with __len__ and __getitem__
    returning a tuple of arrays per item. shuffle draws a new order every epoch from a generator
    seeded by `seed` (or by fastnn.manual_seed when seed is None), so runs repeat exactly.
    drop_last drops a final batch smaller than batch_size.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None):
        if isinstance(dataset, (tuple, list)):
            dataset = TensorDataset(*dataset)
        if int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self._rng = (np.random.default_rng(seed) if seed is not None
                     else np.random.default_rng(default_generator().integers(2 ** 63)))

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = self._rng.permutation(n) if self.shuffle else None
        stop = n - n % self.batch_size if self.drop_last else n
        arrays = getattr(self.dataset, "arrays", None)
        for start in range(0, stop, self.batch_size):
            if order is None:
                idx = slice(start, min(start + self.batch_size, n))
            else:
                idx = order[start:start + self.batch_size]
            if arrays is not None:  # gather a whole batch with one fancy index per array
                batch = tuple(a[idx] for a in arrays)
            else:
                rows = range(n)[idx] if isinstance(idx, slice) else idx
                items = [self.dataset[int(i)] for i in rows]
                batch = tuple(np.stack([np.asarray(it[j]) for it in items])
                              for j in range(len(items[0])))
            yield tuple(Tensor(np.ascontiguousarray(b)) for b in batch)
