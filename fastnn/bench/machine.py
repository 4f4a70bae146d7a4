"""The machine a benchmark ran on: CPU, versions, numpy's BLAS, thread counts, the environment
variables that change timings, whether PyTorch is installed; and the header `fastnn bench`
prints from them."""
import os
import platform
from importlib.metadata import PackageNotFoundError, version as _version

import numpy as np

from .. import threads
from ..kernels import dispatch, registry


def load_torch():
    """PyTorch, or ImportError (a broken install raises other errors; treat them alike)."""
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - e.g. OSError from a half-installed wheel
        raise ImportError(f"PyTorch is unavailable: {type(e).__name__}: {e}") from e
    return torch


def torch_available():
    try:
        load_torch()
        return True
    except ImportError:
        return False


def fastnn_version():
    """As fastnn.__version__ (this package does not import the fastnn top level)."""
    try:
        return _version("fastnn")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _numpy_blas():
    """numpy's BLAS: library, version, the kernel it picked for this CPU, and its threads."""
    try:
        import threadpoolctl
        libs = [lib for lib in threadpoolctl.threadpool_info() if lib.get("user_api") == "blas"]
        # several BLAS copies may be loaded (scipy's, sklearn's); prefer numpy's own
        numpy_dir = os.path.dirname(os.path.dirname(np.__file__))
        libs.sort(key=lambda lib: not os.path.dirname(lib["filepath"]).startswith(
            os.path.join(numpy_dir, "numpy")))
        if libs:
            lib = libs[0]
            return {"library": lib.get("internal_api"), "version": lib.get("version"),
                    "kernel": lib.get("architecture"), "threads": lib.get("num_threads"),
                    "threading": lib.get("threading_layer"), "filepath": lib.get("filepath"),
                    "source": "threadpoolctl"}
    except Exception:  # noqa: BLE001 - threadpoolctl is optional
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return {"library": blas.get("name"), "version": blas.get("version"), "kernel": None,
                "threads": None, "source": "numpy.show_config (install threadpoolctl for the "
                                            "runtime kernel and threads)"}
    except Exception:  # noqa: BLE001
        return {"library": "unknown", "source": None}


_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
             "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
             "NUMBA_THREADING_LAYER", "FASTNN_ISA", "FASTNN_BACKEND")


def machine_info(with_torch):
    import numba
    info = {
        "fastnn": fastnn_version(), "python": platform.python_version(),
        "numpy": np.__version__, "numba": numba.__version__,
        "cpu": _cpu_model(), "cpus_usable": _usable_cpus(), "platform": platform.platform(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "threads": {"fastnn": threads.get_num_threads()},
        "numpy_blas": _numpy_blas(),
        "env": {k: os.environ[k] for k in _ENV_VARS if k in os.environ},
        "backends": {}, "torch": None,
    }
    n_kernels = len(registry.names())
    for name in dispatch.available_backends():
        be = dispatch.load(name)
        entry = {"kernels": n_kernels - len(be.missing()), "of": n_kernels}
        if name == "cython":
            entry["cpu_path"] = be.module.cpu_path()
            entry["cpu_detected"] = be.module.cpu_detected()
            info["threads"]["openmp"] = be.module.get_num_threads()
        elif name == "numba":
            info["threads"]["numba"] = numba.get_num_threads()
            try:
                entry["threading_layer"] = numba.threading_layer()
            except ValueError:  # no parallel Numba function has run yet
                entry["threading_layer"] = None
        info["backends"][name] = entry
    info["threads"]["openblas"] = info["numpy_blas"].get("threads")
    if with_torch:
        torch = load_torch()
        cfg = torch.__config__.show()
        blas = next((part.split("=", 1)[1] for part in cfg.replace(",", " ").split()
                     if part.startswith("BLAS_INFO=")), None)
        info["torch"] = {"version": torch.__version__, "blas": blas}
        info["threads"]["torch"] = torch.get_num_threads()
    return info


def torch_policy_note():
    """How the training steps' two sides wait: fastnn in this process, PyTorch in its worker."""
    mine = os.environ.get("OMP_WAIT_POLICY")
    theirs = threads.environ_without_fastnn().get("OMP_WAIT_POLICY")
    return (f"training steps: fastnn here (OMP_WAIT_POLICY={mine}"
            + (", fastnn's default" if threads.USER_WAIT_POLICY is None else ", yours")
            + "); PyTorch in a worker process with its own defaults (OMP_WAIT_POLICY="
            + (f"{theirs}, yours)" if theirs else "unset: GNU OpenMP spins after each call)"))


def header(info, args, sizes):
    """The lines `fastnn bench` prints before its tables: the command, versions, CPU, BLAS,
    threads, and notes on what may distort the timings."""
    lines = [f"fastnn bench {' '.join(args.argv)}".rstrip()
             + f"  ({sizes} sizes, {args.dtype}, {args.stat} of {args.repeat} round-robin turns "
               f"per implementation)"]
    versions = [f"fastnn {info['fastnn']}", f"python {info['python']}", f"numpy {info['numpy']}",
                f"numba {info['numba']}"]
    if info["torch"]:
        versions.append(f"torch {info['torch']['version']}")
    lines.append(" | ".join(versions))
    lines.append(f"CPU: {info['cpu']}, {info['cpus_usable']} usable cores")
    load = info["load_average_1min"]
    if load is not None and load > 0.5:
        # other processes take cores from multi-threaded kernels, which then wait at barriers
        lines.append(f"note: load average {load:.1f} before starting: other processes are busy, "
                     f"so multi-threaded timings (GEMM above all) will be noisy")
    cy = info["backends"].get("cython")
    if cy:
        lines.append(f"C kernels (cython): {cy['cpu_path']} path "
                     f"(CPU supports {cy['cpu_detected']})")
    blas = info["numpy_blas"]
    kernel = f", {blas['kernel']} kernel" if blas.get("kernel") else ""
    lines.append(f"numpy's BLAS (OpenBLAS column, naive numpy's matmuls): {blas.get('library')} "
                 f"{blas.get('version') or ''}{kernel}, threads={blas.get('threads')} "
                 f"(from {blas.get('source')})")
    if info["torch"]:
        lines.append(f"PyTorch: BLAS {info['torch']['blas']}")
    names = {"fastnn": "fastnn", "openmp": "C/OpenMP", "numba": "numba", "openblas": "OpenBLAS",
             "torch": "PyTorch"}
    lines.append("threads: " + ", ".join(f"{names.get(k, k)} {v}"
                                         for k, v in info["threads"].items()))
    effects = {"OPENBLAS_CORETYPE": "forces that OpenBLAS kernel instead of the best for this CPU",
               "OPENBLAS_L2_SIZE": "overrides the cache size OpenBLAS blocks for",
               "OPENBLAS_NUM_THREADS": "caps OpenBLAS's threads"}
    for var, effect in effects.items():
        if var in info["env"]:
            lines.append(f"note: {var}={info['env'][var]} is set: it {effect}, so naive numpy's "
                         f"matmuls and the OpenBLAS column may be slower than numpy can be here")
    others = {k: v for k, v in info["env"].items() if not k.startswith("OPENBLAS")}
    if others:
        lines.append("environment: " + " ".join(f"{k}={v}" for k, v in others.items()))
    return "\n".join(lines)
