"""`fastnn info`: the version, which backends load here (and why not), their kernels, the CPU
code path, the thread count and the GPUs (name, compute capability, driver, memory) or why there
is none. The kernel table comes from the registry (fastnn/kernels/)."""
import platform
import re

import numpy as np

from . import cuda, threads
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


def _driver_version():
    """The NVIDIA driver's version (from /proc) and the CUDA version it supports, as text."""
    parts = []
    try:
        with open("/proc/driver/nvidia/version") as f:
            found = re.search(r"Kernel Module\s+(?:for \S+\s+)?([0-9][0-9.]+)", f.read())
        if found:
            parts.append(found.group(1))
    except OSError:
        pass
    try:
        from numba.cuda.cudadrv.driver import driver
        major, minor = driver.get_version()
        parts.append(f"CUDA {major}.{minor}")
    except Exception:  # an old numba or an odd driver: the version is a nicety, not a need
        pass
    return " ".join(parts) if parts else "unknown"


def _gib(n):
    return f"{n / 2 ** 30:.1f} GiB"


def gpu_lines():
    """The GPU part of the report: one line per device, or one line saying why there is none."""
    if not cuda.is_available():
        return [f"gpu: none ({cuda.unavailable_reason()}); --device cuda needs one"]
    simulated = cuda._simulated()
    lines = [f"gpu: {cuda.device_count()} device(s), driver "
             f"{'none (Numba CUDA simulator)' if simulated else _driver_version()}"]
    for i in range(cuda.device_count()):
        props = cuda.get_device_properties(i)
        if simulated:
            memory = "memory: not measured on the simulator"
        else:
            free, total = cuda.mem_get_info(i)
            memory = f"memory {_gib(total)} total, {_gib(free)} free"
        lines.append(f"  cuda:{i}  {props.name}, compute capability {props.major}.{props.minor}, "
                     f"{props.multi_processor_count} SMs, {memory}")
    return lines


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
    lines.extend(gpu_lines())
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
