"""fastnn.optim: SGD, Adam, AdamW (fused update kernels) and learning-rate schedulers."""
from . import lr_scheduler
from .optimizer import SGD, Adam, AdamW, Optimizer

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler"]
