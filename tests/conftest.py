"""Shared fixtures: every conformance test runs once per available backend.

The CUDA backend runs on Numba's simulator here (set before numba is imported), with small shapes.
"""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
# The C kernels use fewer threads while other processes keep cores busy (csrc/cpu.c): off here,
# so tests of multi-threaded splits run them however loaded the machine is. test_threads.py
# tests the adaptation itself, in subprocesses.
os.environ.setdefault("FASTNN_ADAPT_THREADS", "0")


def _has_avx2_fma():
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False
    return "avx2" in flags and "fma" in flags


# PyTorch picks its CPU kernels by the CPU (default, AVX2 or AVX-512 builds), and their float32
# normals round differently. fastnn follows the build PyTorch would pick (fastnn/_torch_rng.py,
# which reads this variable too), but its reading of the AVX-512 build is unverified: no such
# CPU was available. So the live comparisons with PyTorch run its AVX2 kernels wherever the CPU
# has them, on every CI machine alike; test_torch_rng.py also compares the native build, in a
# subprocess, and reports an AVX-512 mismatch as an expected failure rather than hiding it.
if _has_avx2_fma():
    os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

import fastnn  # noqa: E402

try:  # some CLI code reaches matplotlib.image as an attribute; load the submodule for every order
    import matplotlib.image  # noqa: E402,F401
except ImportError:
    pass

settings.register_profile("fastnn", deadline=None, max_examples=25, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow])
settings.load_profile("fastnn")

CPU_BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.available_backends()]
ALL_BACKENDS = CPU_BACKENDS + (["cuda"] if "cuda" in fastnn.available_backends() else [])


@pytest.fixture(params=ALL_BACKENDS)
def backend(request):
    """A backend name; the whole conformance suite runs once per backend."""
    return request.param


@pytest.fixture(params=CPU_BACKENDS)
def cpu_backend(request):
    return request.param


@pytest.fixture(params=CPU_BACKENDS)
def current_cpu_backend(request):
    """For the Tensor/nn/optim tests: a CPU backend name, made the current backend meanwhile."""
    with fastnn.use_backend(request.param):
        yield request.param


def max_size(backend, n):
    """Cap a test dimension for the CUDA simulator, which runs kernels in Python threads."""
    return min(n, 24) if backend == "cuda" else n


def max_rows(backend, n):
    """Cap the row count of a row-kernel test for the CUDA simulator: it runs one block per row,
    each a set of Python threads, so rows are what cost time there (about 0.2 s each)."""
    return min(n, 2) if backend == "cuda" else n


def fd_backend(backend):
    """The backend whose forward the finite differences evaluate. On the CUDA simulator that is
    the numpy reference (whose forward every backend matches, tested elsewhere): a simulated
    launch costs about 0.2 s and the differences need two per element. The gradient checked
    against them is still the backend's own backward."""
    return "numpy" if backend == "cuda" else backend


def skip_if_missing(backend, kernel):
    """The CUDA backend may cover a subset (fastnn info lists the rest); CPU backends must not."""
    if backend == "cuda" and not fastnn.kernels.load(backend).has(kernel):
        pytest.skip(f"cuda lacks {kernel} (listed by `fastnn info`)")


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)


def numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar f at x (float64), one coordinate at a time."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g
