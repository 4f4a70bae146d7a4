"""The kernel implementations, one package per backend:

    numpy/    the naive reference: plain numpy, the test oracle and the benchmark baseline
    numba/    @njit(parallel=True, cache=True) loops, never BLAS
    cython/   Cython wrappers (.pyx) over our own C kernels in csrc/
    cuda/     numba.cuda kernels (optional; checked on Numba's CUDA simulator)

Each package defines NAME and MODULES (the modules holding its kernels); kernel NAME is the
function of that name in one of them, with the calling convention of its declaration in
fastnn/kernels/. Which backends load, and which is current, is fastnn/kernels/dispatch.py's job:
this package imports nothing above it.
"""

# ---------------------------------------------------------------- PyTorch's torch.backends flags
# Programs written for PyTorch set these (`torch.backends.cudnn.benchmark = True`,
# `torch.backends.cuda.matmul.allow_tf32 = True`) and read a few (`torch.backends.mps
# .is_available()`). fastnn accepts and records them: they are plain data, read by nobody but the
# float32-matmul-precision functions below, and this package still imports nothing from fastnn.
# `fastnn.backends.cuda` is also the cuda kernels' package: importing that package binds it to
# the name `cuda` here, so the package's class below keeps `cuda` the flags object, which hands
# any other attribute (NAME, MODULES, ops, ...) on to the kernels' package.
import contextlib as _contextlib
import importlib.util as _importlib_util
import sys as _sys
import types as _types


class _Flags:
    """A namespace of settable flags with a readable repr."""

    def __init__(self, name, **flags):
        object.__setattr__(self, "_name", name)
        self.__dict__.update(flags)

    def __repr__(self):
        items = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                          if not k.startswith("_") and not callable(v))
        return f"<{self._name}: {items}>"


def _false(*args, **kwargs):
    return False


def _none(*args, **kwargs):
    return None


_precision = {"float32_matmul": "highest"}


class _Matmul(_Flags):
    """torch.backends.cuda.matmul: allow_tf32 is tied to the float32 matmul precision, as in
    PyTorch (True <-> 'high' or 'medium')."""

    @property
    def allow_tf32(self):
        return _precision["float32_matmul"] != "highest"

    @allow_tf32.setter
    def allow_tf32(self, value):
        _precision["float32_matmul"] = "high" if value else "highest"

    def __repr__(self):
        return super().__repr__()[:-1] + f", allow_tf32={self.allow_tf32}>"


class _CudaFlags(_Flags):
    """torch.backends.cuda: matmul flags and the scaled-dot-product-attention switches. Any
    other attribute is the cuda kernels' package's (fastnn/backends/cuda/), imported on use."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        module = self.__dict__.get("_module") or _sys.modules.get(__name__ + ".cuda")
        if module is None:
            import importlib
            module = importlib.import_module(__name__ + ".cuda")
        return getattr(module, name)


def _sdp_switch(flags, key):
    def enable(enabled=True):
        flags._sdp[key] = bool(enabled)

    def enabled():
        return flags._sdp[key]
    return enable, enabled


cudnn = _Flags("fastnn.backends.cudnn", enabled=True, benchmark=False, deterministic=False,
               allow_tf32=True, benchmark_limit=10, is_available=_false, version=_none)


@_contextlib.contextmanager
def _cudnn_flags(enabled=False, benchmark=False, benchmark_limit=10, deterministic=False,
                 allow_tf32=True):
    """torch.backends.cudnn.flags(...): set the cudnn flags inside a with-block."""
    keys = ("enabled", "benchmark", "benchmark_limit", "deterministic", "allow_tf32")
    saved = {k: getattr(cudnn, k) for k in keys}
    for k, v in zip(keys, (enabled, benchmark, benchmark_limit, deterministic, allow_tf32)):
        setattr(cudnn, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(cudnn, k, v)


cudnn.flags = _cudnn_flags


def _cuda_is_built():
    """Whether the cuda kernels can be built here (numba's CUDA support is installed); a GPU is
    another matter (fastnn.cuda.is_available())."""
    try:
        return _importlib_util.find_spec("numba.cuda") is not None
    except (ImportError, ValueError):
        return False


_cuda_flags = _CudaFlags(
    "fastnn.backends.cuda",
    matmul=_Matmul("fastnn.backends.cuda.matmul", allow_fp16_reduced_precision_reduction=True,
                   allow_bf16_reduced_precision_reduction=True),
    is_built=_cuda_is_built, preferred_linalg_library=lambda backend=None: "default",
    preferred_blas_library=lambda backend=None: "default",
    cufft_plan_cache=_Flags("fastnn.backends.cuda.cufft_plan_cache", max_size=0, size=0,
                            clear=_none),
    _sdp={"flash": True, "mem_efficient": True, "math": True, "cudnn": True})
for _key in ("flash", "mem_efficient", "math", "cudnn"):
    _enable, _enabled = _sdp_switch(_cuda_flags, _key)
    setattr(_cuda_flags, f"enable_{_key}_sdp", _enable)
    setattr(_cuda_flags, f"{_key}_sdp_enabled", _enabled)
del _key, _enable, _enabled

mps = _Flags("fastnn.backends.mps", is_available=_false, is_built=_false)
mkldnn = _Flags("fastnn.backends.mkldnn", enabled=True, is_available=_false)
mkl = _Flags("fastnn.backends.mkl", is_available=_false)
openmp = _Flags("fastnn.backends.openmp", is_available=lambda: True)  # the C kernels use it
opt_einsum = _Flags("fastnn.backends.opt_einsum", enabled=True, strategy="auto",
                    is_available=_false)

# ---------------------------------------------------------------- torch.<name> switches
_deterministic = {"enabled": False, "warn_only": False}
_PRECISIONS = ("highest", "high", "medium")


def set_float32_matmul_precision(precision):
    """torch.set_float32_matmul_precision: 'highest', 'high' or 'medium'. Accepted and
    recorded; fastnn's float32 matmuls are always full float32 ('highest'). Anything else
    warns and changes nothing, as in PyTorch."""
    if precision not in _PRECISIONS:
        import warnings
        warnings.warn(f"{precision} is not one of 'highest', 'high', or 'medium'; the "
                      f"set_float32_matmul_precision call has no effect.", UserWarning,
                      stacklevel=2)
        return
    _precision["float32_matmul"] = precision


def get_float32_matmul_precision():
    """What set_float32_matmul_precision last recorded ('highest' by default)."""
    return _precision["float32_matmul"]


def use_deterministic_algorithms(mode, *, warn_only=False):
    """torch.use_deterministic_algorithms: accepted and recorded. fastnn's kernels are
    deterministic for a given backend and thread count."""
    if not isinstance(mode, bool):
        raise TypeError(f"use_deterministic_algorithms: mode must be a bool, got "
                        f"{type(mode).__name__}")
    _deterministic["enabled"], _deterministic["warn_only"] = mode, bool(warn_only)


def are_deterministic_algorithms_enabled():
    return _deterministic["enabled"]


def is_deterministic_algorithms_warn_only_enabled():
    return _deterministic["warn_only"]


class _Package(_types.ModuleType):
    """This package's class: `cuda` stays the flags object when the cuda kernels' package is
    imported (which binds the name `cuda` here); the flags object then forwards to it."""

    @property
    def cuda(self):
        return _cuda_flags

    @cuda.setter
    def cuda(self, value):
        if isinstance(value, _types.ModuleType):
            _cuda_flags.__dict__["_module"] = value
        else:
            raise AttributeError("fastnn.backends.cuda holds flags; set its attributes instead")


_sys.modules[__name__].__class__ = _Package
