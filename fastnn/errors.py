"""MissingDependencyError: an optional package (matplotlib, scikit-learn, ...) is not installed.

It is an ImportError, so `except ImportError` still catches it; the `fastnn` command prints it as
one line and exits with status 2, as it does for ValueError (CheckpointError included) and
OSError. This module imports nothing from fastnn, so any layer may use it.
"""
import importlib

__all__ = ["MissingDependencyError", "require"]


class MissingDependencyError(ImportError):
    """An optional dependency that this feature needs is not installed."""


def require(module, purpose, install=None):
    """Import and return `module`, or raise MissingDependencyError saying what needs it and how
    to install it (install defaults to `pip install <top-level package>`)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pkg = module.split(".")[0]
        raise MissingDependencyError(f"{purpose} needs {pkg}, which is not installed: "
                                     f"{install or 'pip install ' + pkg}", name=pkg) from e
