"""fastnn.random and fastnn.Generator: PyTorch's torch.random and torch.Generator.

    g = fastnn.Generator().manual_seed(0)
    x = fastnn.randn(3, generator=g)               # the same numbers as manual_seed(0); randn(3)
    loader = DataLoader(data, shuffle=True, generator=g)
    state = g.get_state(); ...; g.set_state(state)  # PyTorch's 5056-byte uint8 tensor

A Generator is PyTorch's CPU generator, bit for bit: an MT19937 engine seeded as PyTorch seeds
it, with PyTorch's transforms (fastnn/_torch_rng.py), held in its `_rng` attribute, which is what
fastnn's random functions draw from when they are given `generator=`. So a seed gives PyTorch's
numbers: `torch.Generator().manual_seed(5)` and `fastnn.Generator().manual_seed(5)` draw the same
rand/randn/randint/randperm values. A new Generator starts from PyTorch's default seed,
67280421310721. get_state() is PyTorch's state layout, so a state taken with
torch.get_rng_state() (as a uint8 tensor or bytes) can be set here, and the reverse.

The module-level functions are torch.random's, on fastnn's global generator (the one
fastnn.manual_seed seeds): manual_seed, seed, initial_seed, get_rng_state, set_rng_state,
fork_rng; default_generator is that global generator as a Generator object.
"""
import contextlib
import os

import numpy as np

from ._torch_rng import DEFAULT_SEED, STATE_BYTES, TorchGenerator
from .tensor import Tensor, default_generator as _global_engine, device as _device
from .tensor import manual_seed as _manual_seed, tensor, uint8

__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed",
           "get_rng_state", "set_rng_state", "fork_rng"]


def _seed_value(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise TypeError(f"manual_seed expected an int, got {type(seed).__name__}") from None
    return int(seed) % 2 ** 64      # PyTorch wraps negative seeds the same way


def _encode(engine):
    """An engine's state as PyTorch's: a uint8 tensor of 5056 bytes."""
    return tensor(np.frombuffer(engine.get_state_bytes(), np.uint8).copy(), dtype=uint8)


def _decode(state):
    """The bytes of a state from get_state/get_rng_state (fastnn's or PyTorch's tensor)."""
    if isinstance(state, (bytes, bytearray)):
        return bytes(state)
    if isinstance(state, Tensor):
        arr = np.asarray(state._data)
    elif hasattr(state, "numpy") and hasattr(state, "dtype"):     # a torch.ByteTensor
        arr = np.asarray(state.detach().cpu().numpy())
    else:
        arr = np.asarray(state)
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise TypeError(f"set_state: expected a uint8 tensor of {STATE_BYTES} bytes (what "
                        f"get_state returns), got dtype {arr.dtype} and shape {arr.shape}")
    return arr.tobytes()


class Generator:
    """torch.Generator: a source of random numbers for `generator=` arguments (CPU only; the
    device 'cuda' is accepted only where fastnn.cuda.is_available())."""

    def __init__(self, device="cpu"):
        d = _device(device) if device is not None else _device("cpu")
        if d.type not in ("cpu", "cuda"):
            raise RuntimeError(f"Device type {d.type.upper()} is not supported for "
                               f"fastnn.Generator()")
        if d.type == "cuda":
            from . import cuda
            if not cuda.is_available():
                raise RuntimeError("Device type CUDA is not supported for fastnn.Generator() "
                                   "here: no CUDA GPU is available (fastnn.cuda.is_available() "
                                   "is False)")
        self._device = d
        self._rng = TorchGenerator(DEFAULT_SEED)

    @property
    def device(self):
        return self._device

    def manual_seed(self, seed):
        """Reseed (in place: code holding this generator's engine sees the new stream).
        Returns self, so `Generator().manual_seed(0)` chains."""
        self._rng.manual_seed(_seed_value(seed))
        return self

    def seed(self):
        """Reseed from the OS's entropy; returns the seed."""
        s = int.from_bytes(os.urandom(8), "little") & (2 ** 63 - 1)
        self.manual_seed(s)
        return s

    def initial_seed(self):
        """The seed last set (PyTorch's default seed for a new Generator)."""
        return self._rng.initial_seed()

    def get_state(self):
        """The generator's state as PyTorch's uint8 tensor of 5056 bytes, for set_state."""
        return _encode(self._rng)

    def set_state(self, new_state):
        """Restore a state from get_state (of a fastnn or a PyTorch CPU generator); returns
        self."""
        self._rng.set_state_bytes(_decode(new_state))
        return self

    graphsafe_get_state = get_state

    def graphsafe_set_state(self, state):
        self.set_state(state)

    def clone_state(self):
        g = Generator(self._device)
        g.set_state(self.get_state())
        return g

    def __repr__(self):
        return f"<fastnn.Generator object at {hex(id(self))}, device='{self._device}'>"


class _GlobalGenerator(Generator):
    """fastnn's global generator (the one fastnn.manual_seed seeds) as a Generator. Calling it
    returns the engine, as fastnn.tensor.default_generator() does."""

    def __init__(self):
        self._device = _device("cpu")

    @property
    def _rng(self):
        return _global_engine()

    def manual_seed(self, seed):
        _manual_seed(_seed_value(seed))
        return self

    def __call__(self):
        return self._rng

    def __reduce__(self):
        return (_global_generator, ())

    def __repr__(self):
        return "<fastnn.default_generator (the global generator), device='cpu'>"


def _global_generator():
    return default_generator


default_generator = _GlobalGenerator()


def manual_seed(seed):
    """Seed fastnn's global generator; returns it (a Generator), as torch.manual_seed."""
    return default_generator.manual_seed(seed)


def seed():
    """Seed the global generator from the OS's entropy; returns the seed."""
    return default_generator.seed()


def initial_seed():
    """The global generator's seed."""
    return default_generator.initial_seed()


def get_rng_state():
    """The global generator's state (a uint8 tensor)."""
    return default_generator.get_state()


def set_rng_state(new_state):
    """Restore the global generator's state from get_rng_state."""
    default_generator.set_state(new_state)


@contextlib.contextmanager
def fork_rng(devices=None, enabled=True, _caller="fork_rng", _devices_kw="devices",
             device_type="cuda"):
    """Random draws inside the with-block leave the global generator's state as it was."""
    if not enabled:
        yield
        return
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
