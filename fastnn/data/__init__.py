"""fastnn.data: a small DataLoader, TensorDataset, and the digits data set."""
from .digits import Digits, load_digits
from .loader import DataLoader, TensorDataset

__all__ = ["DataLoader", "TensorDataset", "load_digits", "Digits"]
