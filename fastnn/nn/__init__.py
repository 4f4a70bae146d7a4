"""fastnn.nn: PyTorch-style modules, losses, initializers and utilities."""
from . import functional, init, utils
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all

__all__ = list(_modules_all) + ["functional", "init", "utils"]
