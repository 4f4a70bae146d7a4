"""fastnn.cuda: PyTorch's torch.cuda, for programs that ask about the GPU.

    if fastnn.cuda.is_available(): ...          # False without a GPU, as PyTorch on the CPU
    fastnn.cuda.manual_seed_all(0)              # accepted and recorded
    fastnn.cuda.synchronize()                   # a no-op without a GPU

A GPU is available when fastnn's cuda backend (fastnn/backends/cuda/, numba.cuda kernels) loads
and runs on a real device. Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) runs the same kernels
on the CPU, for tests; it counts as a device only when FASTNN_CUDA_SIMULATOR_AS_DEVICE=1 is set
too. Without a GPU the functions behave as PyTorch built for the CPU: is_available() is False,
device_count() 0, the seeding, cache and synchronize calls do nothing, memory counters are 0,
and what needs a device (get_device_name, current_device, ...) raises NoCudaError, an
AssertionError and a RuntimeError as PyTorch's "Torch not compiled with CUDA enabled".

Checking needs no GPU library: without a sign of an NVIDIA driver (its /proc and /dev entries,
libcuda) is_available() answers False without importing numba.cuda.
"""
import collections
import contextlib
import ctypes.util
import importlib
import os
import sys
import types
import warnings

from .errors import NoCudaError
from .kernels import dispatch

__all__ = ["is_available", "device_count", "current_device", "set_device", "device",
           "get_device_name", "get_device_capability", "get_device_properties", "synchronize",
           "manual_seed", "manual_seed_all", "seed", "seed_all", "initial_seed",
           "memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved",
           "reset_peak_memory_stats", "reset_max_memory_allocated", "memory_stats",
           "mem_get_info", "empty_cache", "is_bf16_supported", "is_initialized", "init",
           "GradScaler", "autocast", "amp", "NoCudaError", "transfer_count", "transfer_log",
           "reset_transfers", "count_transfers"]

SIMULATOR_AS_DEVICE = "FASTNN_CUDA_SIMULATOR_AS_DEVICE"

_state = {"driver": None, "device": 0, "seed": None}


def _env_on(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _simulator_requested():
    """Whether numba runs (or will run) CUDA on its simulator."""
    common = sys.modules.get("fastnn.backends.cuda.common")
    if common is not None:
        return bool(common.SIMULATOR)
    return _env_on("NUMBA_ENABLE_CUDASIM")


def _driver_present():
    """A cheap sign that an NVIDIA driver is installed (cached): no numba import."""
    if _state["driver"] is None:
        _state["driver"] = bool(
            os.environ.get("NUMBA_CUDA_DRIVER")
            or any(os.path.exists(p) for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl",
                                               "/dev/nvidia0", "/dev/dxg"))
            or ctypes.util.find_library("cuda"))
    return _state["driver"]


def _backend():
    """The loaded cuda backend, or None with the reason in unavailable_reason()."""
    if _simulator_requested():
        if not _env_on(SIMULATOR_AS_DEVICE):
            return None
    elif not _driver_present():
        return None
    try:
        return dispatch.load("cuda")
    except ImportError:
        return None


def unavailable_reason():
    """Why is_available() is False, in one sentence (None when it is True)."""
    if _backend() is not None:
        return None
    if _simulator_requested() and not _env_on(SIMULATOR_AS_DEVICE):
        return (f"Numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1) and counts as a device "
                f"only with {SIMULATOR_AS_DEVICE}=1")
    if not _simulator_requested() and not _driver_present():
        return "no NVIDIA driver found"
    return dispatch.unavailable_reasons().get("cuda", "the cuda backend does not load")


def _simulated():
    common = sys.modules.get("fastnn.backends.cuda.common")
    return bool(common is not None and common.SIMULATOR)


def is_available():
    """True when fastnn's cuda backend runs on a GPU here (see the module doc)."""
    return _backend() is not None


def is_initialized():
    return is_available()


def _require():
    if not is_available():
        raise NoCudaError(f"fastnn.cuda: no CUDA GPU is available ({unavailable_reason()}); "
                          f"fastnn runs on the CPU, as PyTorch built without CUDA")
    return importlib.import_module("numba.cuda")


def init():
    """Check that a GPU is usable (NoCudaError otherwise)."""
    _require()


def device_count():
    """Number of GPUs (0 without one; 1 for the simulator counted as a device)."""
    if not is_available():
        return 0
    if _simulated():
        return 1
    return len(importlib.import_module("numba.cuda").gpus)


def _index(device=None):
    """A device index from None (the current one), an int, 'cuda:N' or a fastnn.device."""
    if device is None:
        return _state["device"]
    if isinstance(device, int) and not isinstance(device, bool):
        return device
    kind, index = (device.type, device.index) if hasattr(device, "type") else \
        (str(device).partition(":")[0], (str(device).partition(":")[2] or None))
    if kind != "cuda":
        raise ValueError(f"Expected a cuda device, but got: {device}")
    return _state["device"] if index is None else int(index)


def current_device():
    _require()
    return _state["device"]


def set_device(device):
    """Make `device` (an index, 'cuda:N' or a fastnn.device) the current GPU."""
    index = _index(device)
    if index < 0:  # PyTorch: a negative index is a no-op
        return
    cuda = _require()
    if not 0 <= index < device_count():
        raise RuntimeError(f"CUDA error: invalid device ordinal {index} "
                           f"({device_count()} device(s))")
    if not _simulated():
        cuda.select_device(index)
    _state["device"] = index


class device:
    """with fastnn.cuda.device(i): run with GPU i current, then restore the previous one."""

    def __init__(self, device):
        self.idx = _index(device)
        self.prev_idx = -1

    def __enter__(self):
        if self.idx < 0:   # PyTorch: a negative index selects nothing
            return self
        _require()
        self.prev_idx = _state["device"]
        if self.idx != self.prev_idx:
            set_device(self.idx)
        return self

    def __exit__(self, *exc):
        if self.idx >= 0 and self.prev_idx >= 0 and self.prev_idx != self.idx:
            set_device(self.prev_idx)
        return False


def _numba_device(device=None):
    cuda = _require()
    index = _index(device)
    if not 0 <= index < device_count():
        raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
    if _simulated():
        return cuda.get_current_device()
    return cuda.gpus[index]


def get_device_name(device=None):
    """The GPU's name (NoCudaError without one)."""
    dev = _numba_device(device)
    if _simulated():
        return "Numba CUDA simulator"
    name = dev.name
    return name.decode() if isinstance(name, bytes) else str(name)


def get_device_capability(device=None):
    """(major, minor) compute capability (NoCudaError without a GPU)."""
    dev = _numba_device(device)
    cc = getattr(dev, "compute_capability", (0, 0))
    return (int(cc[0]), int(cc[1]))


def get_device_properties(device=None):
    """name, major, minor, total_memory, multi_processor_count (NoCudaError without a GPU)."""
    dev = _numba_device(device)
    major, minor = get_device_capability(device)
    total = 0
    with contextlib.suppress(Exception):
        total = int(mem_get_info(device)[1])
    return types.SimpleNamespace(name=get_device_name(device), major=major, minor=minor,
                                 total_memory=total,
                                 multi_processor_count=int(getattr(dev, "MULTIPROCESSOR_COUNT",
                                                                   1)))


def mem_get_info(device=None):
    """(free, total) bytes of GPU memory (NoCudaError without a GPU)."""
    cuda = _require()
    if _simulated():
        return (0, 0)
    with cuda.gpus[_index(device)]:
        free, total = cuda.current_context().get_memory_info()
    return int(free), int(total)


def synchronize(device=None):
    """Wait for the GPU's queued work; a no-op without a GPU."""
    if is_available():
        _array_module().synchronize()


def _array_module():
    """fastnn.backends.cuda.array (device storage, its allocator and its transfer counter)."""
    return importlib.import_module("fastnn.backends.cuda.array")


def _array_module_if_loaded():
    """The array module when tensors may live on a GPU (it is loaded), else None: the counters
    then read 0 without importing numba."""
    return sys.modules.get("fastnn.backends.cuda.array") if is_available() else None


# ---------------------------------------------------------------- host <-> device transfers
def transfer_count():
    """Host<->device copies (both directions) since reset_transfers(): every copy between host
    and GPU memory is counted, whether asked for (x.to('cuda'), .cpu(), .item()) or not (an op
    with no device version yet, which copies its operands to the host). 0 without a GPU."""
    ca = _array_module_if_loaded()
    return 0 if ca is None else ca.transfer_count()


def transfer_log():
    """collections.Counter of (direction 'h2d' or 'd2h', what made the copy) since
    reset_transfers(): what to look at when transfer_count() is not the expected one."""
    ca = _array_module_if_loaded()
    return collections.Counter() if ca is None else ca.transfer_log()


def reset_transfers():
    ca = _array_module_if_loaded()
    if ca is not None:
        ca.reset_transfers()


class count_transfers:
    """with fastnn.cuda.count_transfers() as c: ...; then c.count (copies inside the block) and
    c.log (a Counter of (direction, what)). The counter keeps running outside the block."""

    def __enter__(self):
        self._before_count, self._before_log = transfer_count(), transfer_log()
        self.count, self.log = 0, collections.Counter()
        return self

    def __exit__(self, *exc):
        self.count = transfer_count() - self._before_count
        self.log = transfer_log() - self._before_log
        return False


# ---------------------------------------------------------------- seeds
def manual_seed(seed):
    """Seed the GPU's generator: recorded. Random numbers for GPU tensors (rand, randn,
    randint, dropout masks) are drawn on the device from a seed taken from fastnn's own
    generator, so fastnn.manual_seed is what makes them repeatable."""
    _state["seed"] = int(seed) % 2 ** 64


def manual_seed_all(seed):
    """manual_seed for every GPU."""
    manual_seed(seed)


def seed():
    """Seed the GPU's generator with a random number."""
    manual_seed(int.from_bytes(os.urandom(8), "little"))


def seed_all():
    seed()


def initial_seed():
    """The seed last given to manual_seed (NoCudaError without a GPU, as in PyTorch)."""
    _require()
    if _state["seed"] is None:
        seed()
    return _state["seed"]


# ---------------------------------------------------------------- memory
# GPU memory comes from the cuda backend's caching allocator (fastnn/backends/cuda/memory.py):
# tensor storage and kernel temporaries. Without a GPU (or before any tensor went to one) the
# counters are 0, as PyTorch's on the CPU.
def memory_allocated(device=None):
    """Bytes of GPU memory held by live arrays (tensors, temporaries)."""
    ca = _array_module_if_loaded()
    return 0 if ca is None else int(ca.memory_allocated())


def max_memory_allocated(device=None):
    """The peak of memory_allocated() since the start or reset_peak_memory_stats()."""
    ca = _array_module_if_loaded()
    return 0 if ca is None else int(ca.max_memory_allocated())


def memory_reserved(device=None):
    """Bytes the caching allocator holds: allocated plus cached free blocks."""
    ca = _array_module_if_loaded()
    return 0 if ca is None else int(ca.memory_reserved())


def max_memory_reserved(device=None):
    ca = _array_module_if_loaded()
    if ca is None:
        return 0
    fn = getattr(ca, "max_memory_reserved", None)
    return int(fn()) if fn is not None else int(ca.memory_reserved())


def memory_stats(device=None):
    ca = _array_module_if_loaded()
    if ca is None:
        return {}
    fn = getattr(ca, "memory_stats", None)
    return dict(fn()) if fn is not None else {
        "allocated_bytes.all.current": memory_allocated(),
        "allocated_bytes.all.peak": max_memory_allocated(),
        "reserved_bytes.all.current": memory_reserved()}


def reset_peak_memory_stats(device=None):
    ca = _array_module_if_loaded()
    if ca is not None:
        ca.reset_peak_memory_stats()


def reset_max_memory_allocated(device=None):
    reset_peak_memory_stats(device)


def empty_cache():
    """Give the caching allocator's free blocks back to the driver; a no-op without a GPU."""
    ca = _array_module_if_loaded()
    if ca is not None:
        ca.empty_cache()


def is_bf16_supported(including_emulation=True):
    """False: fastnn has no bfloat16 kernels."""
    return False


# ---------------------------------------------------------------- mixed precision
class autocast:
    """torch.autocast / torch.cuda.amp.autocast: accepted, as a context manager or a decorator,
    and does nothing: fastnn computes in the tensors' own dtypes (float32 by default)."""

    def __init__(self, device_type="cuda", dtype=None, enabled=True, cache_enabled=None):
        self.device_type, self.fast_dtype, self.enabled = device_type, dtype, bool(enabled)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)
        return wrapper


class GradScaler:
    """torch.amp.GradScaler / torch.cuda.amp.GradScaler, always disabled: fastnn trains in
    float32, where loss scaling changes nothing. Asked to be enabled, it warns and disables
    itself, as PyTorch's does without CUDA. scale(loss) returns loss, step(optimizer) calls
    optimizer.step(), update() and unscale_() do nothing."""

    def __init__(self, device="cuda", init_scale=2.0 ** 16, growth_factor=2.0,
                 backoff_factor=0.5, growth_interval=2000, enabled=True):
        if enabled:
            warnings.warn("fastnn GradScaler is enabled, but fastnn trains in float32 where "
                          "loss scaling changes nothing. Disabling.", UserWarning, stacklevel=2)
        self._enabled = False

    def is_enabled(self):
        return self._enabled

    def scale(self, outputs):
        return outputs

    def unscale_(self, optimizer):
        pass

    def step(self, optimizer, *args, **kwargs):
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale=None):
        pass

    def get_scale(self):
        return 1.0

    def get_growth_factor(self):
        return 2.0

    def get_backoff_factor(self):
        return 0.5

    def get_growth_interval(self):
        return 2000

    def state_dict(self):
        return {}

    def load_state_dict(self, state_dict):
        pass


class _CudaAmpGradScaler(GradScaler):
    """torch.cuda.amp.GradScaler's signature (no device argument)."""

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        super().__init__("cuda", init_scale, growth_factor, backoff_factor, growth_interval,
                         enabled)


def _cuda_amp_autocast(enabled=True, dtype=None, cache_enabled=True):
    """torch.cuda.amp.autocast's signature: autocast('cuda', ...)."""
    return autocast("cuda", dtype, enabled, cache_enabled)


# torch.cuda.amp (its signatures); torch.amp's are autocast and GradScaler above
amp = types.SimpleNamespace(autocast=_cuda_amp_autocast, GradScaler=_CudaAmpGradScaler)
