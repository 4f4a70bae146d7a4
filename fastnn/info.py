"""`fastnn info`: the version, which backends load here (and why not), their kernels, the CPU
code path and the thread count. The kernel table comes from the registry (fastnn/kernels/)."""
import platform

import numpy as np

from . import threads
from .kernels import dispatch, registry


def _backend_note(name, be):
    if name == "cython":
        return f"cpu path: {be.module.cpu_path()} (detected {be.module.cpu_detected()})"
    if name == "numba":
        import numba
        return f"numba {numba.__version__}"
    if name == "cuda":
        from numba import config
        return "Numba's CUDA simulator" if config.ENABLE_CUDASIM else ""
    return ""


def report(version):
    """The text `fastnn info` prints."""
    lines = [f"fastnn {version}  (python {platform.python_version()}, numpy {np.__version__}, "
             f"{platform.machine()})"]
    reasons = dispatch.unavailable_reasons()
    loaded = {}
    total = len(registry.names())
    lines.append("backends:")
    for name in dispatch.backend_names():
        if name in reasons:
            lines.append(f"  {name:7s} unavailable: {reasons[name]}")
            continue
        be = loaded[name] = dispatch.load(name)
        note = _backend_note(name, be)
        have = total - len(be.missing())
        lines.append(f"  {name:7s} available: {have}/{total} kernels" + (f"  {note}" if note else ""))
        if be.missing():
            lines.append(f"          lacks: {', '.join(be.missing())}")
    lines.append(f"default backend: {dispatch.get_backend().name}")
    lines.append(f"threads: {threads.get_num_threads()}")
    lines.append("")
    lines.append("kernels (fastnn.kernels.<name>; x: implemented, -: missing, ?: backend unavailable):")
    width = max(len(k.api_name) for k in registry.REGISTRY.values())
    names = dispatch.backend_names()
    lines.append(f"  {'family':12s} {'kernel':{width}s}  " + " ".join(f"{n:7s}" for n in names)
                 + "  what")
    for k in registry.REGISTRY.values():
        marks = " ".join(f"{('?' if n not in loaded else 'x' if loaded[n].has(k.name) else '-'):7s}"
                         for n in names)
        lines.append(f"  {k.family:12s} {k.api_name:{width}s}  {marks}  {k.doc}")
    return "\n".join(lines)
