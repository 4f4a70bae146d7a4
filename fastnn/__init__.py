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
from . import tensor as _tensor_module
from .tensor import (Tensor, tensor, from_numpy, no_grad, enable_grad, is_grad_enabled,
                     manual_seed, zeros, ones, empty, full, zeros_like, ones_like, full_like,
                     randn, rand, randn_like, randint, randperm, arange, eye, cat, concat, stack,
                     split, chunk, where, matmul, exp, log, sqrt, tril, triu,
                     float16, float32, float64, int32, int64, long, uint8, bool_)
from .tensor import (  # PyTorch's top-level functions and names (torch.<name>)
    Size, device, NoCudaError, get_default_dtype, set_default_dtype, is_tensor,
    is_floating_point, numel, inference_mode, set_grad_enabled, is_inference_mode_enabled,
    finfo, iinfo, as_tensor, asarray, empty_like,
    rand_like, randint_like, normal, bernoulli, linspace, logspace, equal, isclose, allclose,
    add, sub, subtract, mul, multiply, div, divide, true_divide, floor_divide, remainder, fmod,
    pow, float_power, neg, negative, exp2, expm1, log2, log10, log1p, rsqrt, square,
    reciprocal, abs, absolute, sin, cos, tan, sinh, cosh, atan, asin, acos, atan2, erf, floor,
    ceil, round, trunc, fix, sign, sgn, isnan, isinf, isfinite, nan_to_num, logical_not,
    logical_and, logical_or, logical_xor, bitwise_and, bitwise_or, bitwise_xor, bitwise_not,
    eq, ne, lt, le, gt, ge, greater, greater_equal, less, less_equal, not_equal, maximum,
    minimum, fmax, fmin, clamp, clip, clamp_min, clamp_max, addcmul, addcdiv, lerp,
    masked_fill, masked_select, index_put, mm, bmm, mv, dot, inner, outer, ger,
    addmm, addmv, baddbmm, addbmm, einsum, sum, nansum, mean, nanmean, prod, var, std,
    var_mean, std_mean, norm, logsumexp, max, min, amax, amin, aminmax, argmax, argmin, all,
    any, count_nonzero, reshape, view, flatten, unflatten, transpose, swapaxes, swapdims, t,
    permute, movedim, moveaxis, unsqueeze, squeeze, expand, broadcast_to, broadcast_tensors,
    narrow, unbind, select, diagonal, diag, trace, concatenate, hstack, vstack, tensor_split,
    repeat_interleave, tile, roll, flip, fliplr, flipud, clone, detach, meshgrid, relu,
    sigmoid, tanh, softmax, log_softmax, double, half, bfloat16, int8, int16, short, complex64,
    complex128, cfloat, cdouble, set_printoptions, compile, get_default_device,
    set_default_device, FloatTensor,
    DoubleTensor, HalfTensor, LongTensor, IntTensor, ShortTensor, CharTensor, ByteTensor,
    BoolTensor)

float, int, bool = float32, int32, bool_  # noqa: A001  (torch.float, torch.int, torch.bool)
# the dtype names are torch.dtype objects (fastnn.tensor.dtype), so x.dtype is fastnn.float32
from .tensor import dtype, PUBLIC_DTYPES as _PUBLIC_DTYPES  # noqa: E402
globals().update(_PUBLIC_DTYPES)
globals().update(_tensor_module._OUT)  # fastnn.add(..., out=t) and friends

import sys as _sys
import types as _types

# fastnn.autograd: torch.autograd's grad/backward and grad-mode names
autograd = _types.ModuleType("fastnn.autograd", "torch.autograd's functions for fastnn tensors")
autograd.grad = _tensor_module.grad
autograd.backward = lambda tensors, grad_tensors=None, retain_graph=None, create_graph=False, \
    inputs=None: _tensor_module._autograd_backward(tensors, grad_tensors, retain_graph,
                                                   create_graph, inputs)
autograd.no_grad, autograd.enable_grad = no_grad, enable_grad
autograd.set_grad_enabled, autograd.inference_mode = set_grad_enabled, inference_mode
autograd.Variable = Tensor
autograd.Function = _tensor_module.Function
autograd.function = _types.SimpleNamespace(Function=_tensor_module.Function,
                                          FunctionCtx=_tensor_module.FunctionCtx,
                                          once_differentiable=_tensor_module._once_differentiable)
_sys.modules["fastnn.autograd"] = autograd

# fastnn.linalg (torch.linalg), fastnn.special, fastnn.fft, fastnn.distributions, and the
# top-level functions real programs call from them (fastnn/extras.py: lgamma, cdist, inverse...)
from . import linalg  # noqa: E402
from .serialization import save, load, CheckpointError
# the device modules (torch.cuda, torch.accelerator, torch.random, torch.backends' flags) and
# the names PyTorch has at top level from them
from . import cuda, accelerator, random  # noqa: E402
# fastnn.amp / fastnn.autocast: torch.amp's autocast and GradScaler (fastnn.cuda's pass-through
# versions: fastnn computes in the tensors' own dtypes)
amp = _types.ModuleType("fastnn.amp", "torch.amp: autocast and GradScaler (pass-through)")
amp.autocast, amp.GradScaler = cuda.autocast, cuda.GradScaler
autocast = cuda.autocast
_sys.modules["fastnn.amp"] = amp
# selection, sampling and scans (topk, sort, multinomial, gather, scatter, cumsum, ...): also
# attaches their Tensor methods
from . import indexing  # noqa: E402
from .indexing import *  # noqa: F401,F403,E402
from .random import (Generator, default_generator, manual_seed, seed, initial_seed,  # noqa
                     get_rng_state, set_rng_state, fork_rng)
from .backends import (set_float32_matmul_precision, get_float32_matmul_precision,  # noqa
                       use_deterministic_algorithms, are_deterministic_algorithms_enabled,
                       is_deterministic_algorithms_warn_only_enabled)
from . import nn, optim, data, models  # noqa: E402  (after Tensor: they build on it)
from . import special, distributions, fft  # noqa: E402
from . import extras as _extras  # noqa: E402
_extras.install(globals(), Tensor)

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
           "bool_", "save", "load", "CheckpointError", "nn", "optim", "data", "models",
           "autograd", "device", "Size"]
