"""fastnn: a deep-learning library whose kernels are written by hand in C, Cython and Numba.

    import fastnn
    fastnn.set_backend("numba")               # or "cython", "numpy", "cuda"
    with fastnn.use_backend("numpy"): ...     # per-block choice
    fastnn.kernels.matmul(a, b)               # kernels on plain numpy arrays

    x = fastnn.tensor([[1.0, 2.0]], requires_grad=True)   # autograd, PyTorch's dialect
    model = fastnn.nn.Linear(2, 3); opt = fastnn.optim.AdamW(model.parameters())
"""
from importlib.metadata import PackageNotFoundError, version as _version

from . import kernels
from .kernels import available_backends, get_backend, set_backend, use_backend
from .threads import get_num_threads, set_num_threads

# Tensor and autograd
from .tensor import (Tensor, tensor, from_numpy, no_grad, enable_grad, is_grad_enabled,
                     manual_seed, zeros, ones, empty, full, zeros_like, ones_like, full_like,
                     randn, rand, randn_like, randint, randperm, arange, eye, cat, concat, stack,
                     split, chunk, where, matmul, exp, log, sqrt, tril, triu,
                     float16, float32, float64, int32, int64, long, uint8, bool_)
from .serialization import save, load, CheckpointError
from . import nn, optim, data, models  # noqa: E402  (after Tensor: they build on it)

try:
    __version__ = _version("fastnn")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["kernels", "available_backends", "get_backend", "set_backend", "use_backend",
           "get_num_threads", "set_num_threads", "__version__",
           "Tensor", "tensor", "from_numpy", "no_grad", "enable_grad", "is_grad_enabled",
           "manual_seed", "zeros", "ones", "empty", "full", "zeros_like", "ones_like",
           "full_like", "randn", "rand", "randn_like", "randint", "randperm", "arange", "eye",
           "cat", "concat", "stack", "split", "chunk", "where", "matmul", "exp", "log", "sqrt",
           "tril", "triu", "float16", "float32", "float64", "int32", "int64", "long", "uint8",
           "bool_", "save", "load", "CheckpointError", "nn", "optim", "data", "models"]
