"""fastnn.data: the digits data set, and (re-exported from fastnn.utils.data, PyTorch's home for
them) DataLoader and TensorDataset."""
from .digits import Digits, load_digits
from .loader import DataLoader, TensorDataset

__all__ = ["DataLoader", "TensorDataset", "load_digits", "Digits"]
