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

Device arrays: when a kernel's first argument (or the first of a list, for adam_multi_step) is a
device array (fastnn.backends.cuda.array.DeviceArray, the storage of a tensor on 'cuda'), the call
goes to the same kernel's device version in on_device.py instead, with device arrays in and out.
A numpy first argument costs one type check.
"""
import sys

from . import on_device as _on_device
from .registry import REGISTRY

_ndarray = __import__("numpy").ndarray
_modules = sys.modules
_ARRAY_MODULE = _on_device._ARRAY_MODULE


def _routed(api_name, host):
    device = []   # the device version, looked up at its first use

    def entry(*args, **kwargs):
        if args and type(args[0]) is not _ndarray and _ARRAY_MODULE in _modules \
                and _on_device.on_device(args[0]):
            if not device:
                device.append(_on_device.get(api_name))
            return device[0](*args, **kwargs)
        return host(*args, **kwargs)
    entry.__name__ = entry.__qualname__ = api_name
    entry.__doc__ = host.__doc__
    entry.host = host
    return entry


for _k in REGISTRY.values():
    globals()[_k.api_name] = _routed(_k.api_name, _k.trusted or _k.api)
del _k
