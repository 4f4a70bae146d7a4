"""fastnn.accelerator: PyTorch's torch.accelerator, the device-agnostic questions.

    device = fastnn.accelerator.current_accelerator() or fastnn.device("cpu")

fastnn's one accelerator is a CUDA GPU through its cuda backend (fastnn.cuda); without one,
is_available() is False and current_accelerator() None, as PyTorch on a CPU-only machine.
"""
import contextlib

from . import cuda as _cuda
from .tensor import device as _device

__all__ = ["is_available", "current_accelerator", "device_count", "current_device_index",
           "set_device_index", "synchronize", "device_index"]


def is_available():
    """Whether an accelerator (a CUDA GPU) is usable here."""
    return _cuda.is_available()


def current_accelerator(check_available=False):
    """fastnn.device('cuda') when a GPU is usable, else None."""
    return _device("cuda") if _cuda.is_available() else None


def device_count():
    """Number of accelerators (0 without a GPU)."""
    return _cuda.device_count()


def current_device_index():
    """The current accelerator's index (NoCudaError without a GPU)."""
    return _cuda.current_device()


def set_device_index(device):
    """Make accelerator `device` (an index or a fastnn.device) the current one."""
    _cuda.set_device(device)


current_device_idx, set_device_idx = current_device_index, set_device_index


def synchronize(device=None):
    """Wait for the accelerator's queued work; a no-op without one."""
    _cuda.synchronize(device)


@contextlib.contextmanager
def device_index(device):
    """with fastnn.accelerator.device_index(i): run with accelerator i current (None: no
    change)."""
    if device is None:
        yield
        return
    with _cuda.device(device):
        yield
