"""The trusted entry point: how Tensor ops, nn.functional and optimizers call kernels.

    from ..kernels import trusted as T
    y = T.relu(x)            # same arguments and result as fastnn.kernels.relu

fastnn.kernels.* validates every argument on each call: a few microseconds, which dominate a small
model's step. The hot kernels declare a trusted version (`@<api>.kernel.set_trusted` next to their
checked function in families/) that checks only what makes the call safe (float dtype,
C-contiguous, the shapes the kernel indexes by) and calls the current backend directly; when that
check fails it takes the checked path, with its full error messages. Every other kernel's trusted
entry point is its checked function. So the result is always the checked function's result, and
user mistakes still get clear errors.
"""
from .registry import REGISTRY

for _k in REGISTRY.values():
    globals()[_k.api_name] = _k.trusted or _k.api
del _k
