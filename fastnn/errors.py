"""Errors any layer may raise; this module imports nothing from fastnn.

- MissingDependencyError: an optional package (matplotlib, scikit-learn, ...) is not installed.
  It is an ImportError, so `except ImportError` still catches it.
- UsageError: a bad command-line argument (a ValueError).
- NoCudaError: CUDA was asked for where there is no GPU, as PyTorch built without CUDA raises
  it: both an AssertionError (as PyTorch's) and a RuntimeError.

The `fastnn` command prints MissingDependencyError and UsageError (and any ValueError,
CheckpointError or OSError) as one line and exits with status 2.
"""
import importlib

__all__ = ["MissingDependencyError", "UsageError", "NoCudaError", "require", "install_hint"]


class MissingDependencyError(ImportError):
    """An optional dependency that this feature needs is not installed."""


class UsageError(ValueError):
    """A command-line argument the command cannot use; the message names the option."""


class NoCudaError(AssertionError, RuntimeError):
    """What PyTorch built without CUDA raises ('Torch not compiled with CUDA enabled'): both an
    AssertionError (as PyTorch's) and a RuntimeError."""


# import name -> (the name pip knows, the fastnn extra that installs it, or None for the main
# install). Packages of the main install are still checked: an install older than the
# pyproject.toml that lists them may lack them.
_PACKAGES = {
    "matplotlib": ("matplotlib", None),
    "PIL": ("pillow", None),
    "sklearn": ("scikit-learn", None),
    "safetensors": ("safetensors", None),
    "tqdm": ("tqdm", None),
    "numba_cuda": ("numba-cuda", "cuda"),
    "mpi4py": ("mpi4py", "mpi"),
    "jupyter": ("jupyter", "lessons"),
    "nbclient": ("nbclient", "lessons"),
    "nbformat": ("nbformat", "lessons"),
    "pytest_benchmark": ("pytest-benchmark", "bench"),
    "hypothesis": ("hypothesis", "test"),
    "torch": ("torch", None),
}


def install_hint(module):
    """How to install the package that provides `module`, in one phrase."""
    top = module.split(".")[0]
    pip, extra = _PACKAGES.get(top, (top, None))
    if extra:
        return f"pip install {pip} (or pip install 'fastnn[{extra}]')"
    if top == "torch":
        return "pip install torch (a CPU build is enough)"
    if top in _PACKAGES:
        return f"pip install {pip} (part of fastnn's main install; an older install lacks it)"
    return f"pip install {pip}"


def require(module, purpose, install=None):
    """Import and return `module`, or raise MissingDependencyError saying what needs it and how
    to install it (install defaults to install_hint(module): the pip name and fastnn's extra).
    Call it before any work starts, so a missing package is reported before, not after."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        pip = _PACKAGES.get(top, (top, None))[0]
        raise MissingDependencyError(f"{purpose} needs {pip}, which is not installed: "
                                     f"{install or install_hint(module)}", name=top) from e
