"""fastnn.nn: PyTorch-style modules, losses, initializers and utilities."""
from . import functional, init, utils
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all

__all__ = list(_modules_all) + ["functional", "init", "utils"]

# issue 5 (attention, owned by fastnn/nn/attention.py): transformer modules, and
# F.scaled_dot_product_attention (attention.py imports functional, so it is attached here)
from . import attention  # noqa: E402
from .attention import Block, CausalSelfAttention, KVCache  # noqa: E402
functional.scaled_dot_product_attention = attention.scaled_dot_product_attention
functional.__all__.append("scaled_dot_product_attention")
__all__ += ["attention", "Block", "CausalSelfAttention", "KVCache"]
