"""fastnn.utils.data: datasets, loaders and samplers, in torch.utils.data's names."""
from .distributed import DistributedSampler  # noqa: F401

__all__ = ["DistributedSampler"]
