"""fastnn.random and fastnn.Generator: PyTorch's torch.random and torch.Generator.

    g = fastnn.Generator().manual_seed(0)
    x = fastnn.randn(3, generator=g)               # the same numbers as manual_seed(0); randn(3)
    loader = DataLoader(data, shuffle=True, generator=g)
    state = g.get_state(); ...; g.set_state(state)  # a uint8 tensor, like PyTorch's

A Generator holds a numpy Generator (PCG64) in its `_rng` attribute: that is what fastnn's random
functions draw from when they are given `generator=` (fastnn.tensor._gen and
fastnn.utils.data.sampler.as_numpy_generator look for it). Seeding with s gives the stream of
np.random.default_rng(s), as fastnn.manual_seed(s) does for the global generator, so a seeded
Generator and a seeded program draw the same numbers. A new Generator starts from PyTorch's
default seed, 67280421310721. Streams differ from PyTorch's (Philox/MT19937): the same seed gives
other numbers than torch does.

The module-level functions are torch.random's, on fastnn's global generator (the one
fastnn.manual_seed seeds): manual_seed, seed, initial_seed, get_rng_state, set_rng_state,
fork_rng; default_generator is that global generator as a Generator object.
"""
import contextlib
import json
import os

import numpy as np

from .tensor import Tensor, default_generator as _global_numpy_generator, device as _device
from .tensor import initial_seed as _initial_seed, manual_seed as _manual_seed, tensor, uint8

__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed",
           "get_rng_state", "set_rng_state", "fork_rng"]

DEFAULT_SEED = 67280421310721   # PyTorch's default_rng_seed_val


def _seed_value(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise TypeError(f"manual_seed expected an int, got {type(seed).__name__}") from None
    return int(seed) % 2 ** 64      # PyTorch wraps negative seeds the same way


def _encode(bit_generator_state, initial):
    """A generator's state as a uint8 tensor (PyTorch's get_state returns a ByteTensor)."""
    blob = json.dumps({"bit_generator": bit_generator_state, "initial_seed": initial},
                      default=int).encode()
    return tensor(np.frombuffer(blob, np.uint8).copy(), dtype=uint8)


def _decode(state):
    if isinstance(state, Tensor):
        state = state.numpy() if hasattr(state, "numpy") else state._data
    if isinstance(state, (bytes, bytearray)):
        blob = bytes(state)
    else:
        arr = np.asarray(state)
        if arr.dtype != np.uint8 or arr.ndim != 1:
            raise TypeError("set_state: expected the uint8 tensor that get_state returned")
        blob = arr.tobytes()
    try:
        d = json.loads(blob.decode())
        return d["bit_generator"], d.get("initial_seed")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise RuntimeError("set_state: not a state from a fastnn Generator's get_state() "
                           "(a PyTorch generator state cannot be used)") from None


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
        self._initial_seed = DEFAULT_SEED
        self._rng = np.random.default_rng(DEFAULT_SEED)

    @property
    def device(self):
        return self._device

    def manual_seed(self, seed):
        """Reseed (in place: code holding this generator's numpy Generator sees the new
        stream). Returns self, so `Generator().manual_seed(0)` chains."""
        s = _seed_value(seed)
        self._rng.bit_generator.state = np.random.PCG64(s).state
        self._initial_seed = s
        return self

    def seed(self):
        """Reseed from the OS's entropy; returns the seed."""
        s = int.from_bytes(os.urandom(8), "little") & (2 ** 63 - 1)
        self.manual_seed(s)
        return s

    def initial_seed(self):
        """The seed last set (PyTorch's default seed for a new Generator)."""
        return self._initial_seed

    def get_state(self):
        """The generator's state as a uint8 tensor, for set_state."""
        return _encode(self._rng.bit_generator.state, self._initial_seed)

    def set_state(self, new_state):
        """Restore a state from get_state (of this or another fastnn Generator); returns self."""
        bit_state, initial = _decode(new_state)
        self._rng.bit_generator.state = bit_state
        if initial is not None:
            self._initial_seed = int(initial)
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
    returns the numpy Generator, as fastnn.tensor.default_generator() does."""

    def __init__(self):
        self._device = _device("cpu")

    @property
    def _rng(self):
        return _global_numpy_generator()

    def manual_seed(self, seed):
        _manual_seed(_seed_value(seed))
        return self

    def initial_seed(self):
        s = _initial_seed()
        return DEFAULT_SEED if s is None else s

    def get_state(self):
        return _encode(self._rng.bit_generator.state, _initial_seed())

    def set_state(self, new_state):
        bit_state, _ = _decode(new_state)
        self._rng.bit_generator.state = bit_state
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
