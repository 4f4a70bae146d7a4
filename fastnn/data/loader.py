"""fastnn.data's DataLoader and TensorDataset: fastnn.utils.data's (PyTorch's semantics), plus
two conveniences kept from fastnn's first loader: a tuple or list of arrays is taken as a
TensorDataset, and seed= seeds the shuffling (a generator of its own)."""
import numpy as np

from ..utils.data import DataLoader as _DataLoader
from ..utils.data import TensorDataset

__all__ = ["DataLoader", "TensorDataset"]


class DataLoader(_DataLoader):
    """fastnn.utils.data.DataLoader; `dataset` may also be a tuple of arrays, and seed=N
    shuffles with a generator seeded by N (else fastnn.manual_seed's, as PyTorch)."""

    def __init__(self, dataset, batch_size=1, shuffle=None, *args, seed=None, **kwargs):
        if isinstance(dataset, (tuple, list)):
            dataset = TensorDataset(*dataset)
        if seed is not None:
            if kwargs.get("generator") is not None:
                raise ValueError("DataLoader: pass seed= or generator=, not both")
            kwargs["generator"] = np.random.default_rng(seed)
        super().__init__(dataset, batch_size, shuffle, *args, **kwargs)
