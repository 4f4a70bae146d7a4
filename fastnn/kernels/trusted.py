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
Each entry point is generated with its kernel's own signature (no *args/**kwargs packing), so a
numpy first argument costs one type check and one call.

out=: the GELU and layer-norm entry points (gelu, gelu_backward, layer_norm, layer_norm_backward)
take out=, arrays to write the result into instead of new ones (the GPT's fused blocks write into
pooled buffers so a warm step allocates nothing). Host arrays only: on device arrays out= raises.
"""
import inspect
import sys

from . import on_device as _on_device
from .registry import REGISTRY

_ndarray = __import__("numpy").ndarray


_HOST_ONLY = ("backend=backend", "out=out")   # arguments the device versions do not take


def _routed(api_name, host):
    """host behind a check of its first argument's type (see the module doc)."""
    params = list(inspect.signature(host).parameters.values())
    first = params[0].name
    decl, call, star = [], [], False
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            decl.append(f"*{p.name}")
            call.append(f"*{p.name}")
            star = True
        elif p.kind is p.VAR_KEYWORD:
            decl.append(f"**{p.name}")
            call.append(f"**{p.name}")
        elif p.kind is p.KEYWORD_ONLY:
            if not star:
                decl.append("*")
                star = True
            decl.append(p.name if p.default is p.empty else f"{p.name}=_d_{p.name}")
            call.append(f"{p.name}={p.name}")
        else:
            decl.append(p.name if p.default is p.empty else f"{p.name}=_d_{p.name}")
            call.append(p.name)
    env = {f"_d_{p.name}": p.default for p in params if p.default is not p.empty}
    env.update(_host=host, _ndarray=_ndarray, _modules=sys.modules, _od=_on_device,
               _name=api_name, _device=[])
    src = (f"def {api_name}({', '.join(decl)}):\n"
           f"    if type({first}) is not _ndarray and {_on_device._ARRAY_MODULE!r} in _modules "
           f"and _od.on_device({first}):\n"
           + (f"        if out is not None:\n"
              f"            raise NotImplementedError(_name + ': out= is for host arrays; "
              f"device arrays get new results')\n" if "out=out" in call else "")
           + f"        if not _device:\n"
           f"            _device.append(_od.get(_name))\n"
           f"        return _device[0]({', '.join(c for c in call if c not in _HOST_ONLY)})\n"
           f"    return _host({', '.join(call)})\n")
    exec(src, env)   # a forwarding function with host's signature (generated, not user input)
    entry = env[api_name]
    entry.__doc__ = host.__doc__
    entry.__qualname__ = api_name
    entry.host = host
    return entry


for _k in REGISTRY.values():
    globals()[_k.api_name] = _routed(_k.api_name, _k.trusted or _k.api)
del _k
