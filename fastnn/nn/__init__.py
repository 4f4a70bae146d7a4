"""fastnn.nn: PyTorch-style modules, losses, initializers and utilities."""
import sys as _sys

from . import functional, init, utils
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all

__all__ = list(_modules_all) + ["functional", "init", "utils"]

# vision layers: convolution, pooling, 2-D normalization, channel dropout, Unflatten
from .conv import *  # noqa: F401,F403,E402
from .conv import __all__ as _conv_all  # noqa: E402
from .pooling import *  # noqa: F401,F403,E402
from .pooling import __all__ as _pooling_all  # noqa: E402
from .normalization import *  # noqa: F401,F403,E402
from .normalization import __all__ as _normalization_all  # noqa: E402
__all__ += list(_conv_all) + list(_pooling_all) + list(_normalization_all)

# attention's reusable pieces (fastnn/nn/attention.py), and F.scaled_dot_product_attention
# (attention.py imports functional, so it is attached here)
from . import attention  # noqa: E402
from .attention import KVCache  # noqa: E402
functional.scaled_dot_product_attention = attention.scaled_dot_product_attention
functional.__all__.append("scaled_dot_product_attention")
__all__ += ["attention", "KVCache"]

# more losses and activations (fastnn/nn/losses.py, activations.py), attached to functional as
# attention's are
from . import activations, losses  # noqa: E402
from .activations import *  # noqa: F401,F403,E402
from .losses import *  # noqa: F401,F403,E402
for _module in (losses, activations):
    for _name in _module.FUNCTIONS:
        setattr(functional, _name, getattr(_module, _name))
        functional.__all__.append(_name)
    __all__ += list(_module.__all__)

# recurrent layers (fastnn/nn/rnn.py), and torch.nn.utils.rnn's packing (fastnn/nn/rnn_utils.py)
# reachable as fastnn.nn.utils.rnn: utils is a module, so the submodule is registered by name
from . import rnn, rnn_utils  # noqa: E402
from .rnn import *  # noqa: F401,F403,E402
__all__ += list(rnn.__all__)
utils.rnn = rnn_utils
_sys.modules[__name__ + ".utils.rnn"] = rnn_utils

# attention and transformer layers (fastnn/nn/transformer.py)
from . import transformer  # noqa: E402
from .transformer import *  # noqa: F401,F403,E402
__all__ += list(transformer.__all__)
functional.multi_head_attention_forward = transformer.multi_head_attention_forward
functional.__all__.append("multi_head_attention_forward")

# 1-D layers, resizing, instance and RMS norm (fastnn/nn/layers1d.py, upsampling.py, norms.py);
# their functional forms are attached to functional
# padding modes and layers, PReLU, shrinks and distances (padding.py, misc_layers.py),
# affine_grid and grid_sample (sampling.py), EmbeddingBag, LocalResponseNorm, adaptive max
# pooling, Softmax2d, Dropout1d, Unfold/Fold, Bilinear (more_layers.py), more losses
# (losses_extra.py). padding.pad replaces F.pad: it adds the
# reflect/replicate/circular modes and hands 'constant' to the old one
from . import layers1d, losses_extra, misc_layers, more_layers, norms  # noqa: E402
from . import padding, sampling, upsampling  # noqa: E402
from . import init_extra  # noqa: E402
for _name in init_extra.FUNCTIONS:                  # orthogonal_, eye_, dirac_ join nn.init
    setattr(init, _name, getattr(init_extra, _name))
    if _name not in init.__all__:
        init.__all__.append(_name)
from .layers1d import *  # noqa: F401,F403,E402
from .losses_extra import *  # noqa: F401,F403,E402
from .misc_layers import *  # noqa: F401,F403,E402
from .more_layers import *  # noqa: F401,F403,E402
from .norms import *  # noqa: F401,F403,E402
from .padding import *  # noqa: F401,F403,E402
from .upsampling import *  # noqa: F401,F403,E402
for _module in (layers1d, losses_extra, misc_layers, more_layers, norms, padding, sampling,
                upsampling):
    for _name in _module.FUNCTIONS:
        setattr(functional, _name, getattr(_module, _name))
        if _name not in functional.__all__:
            functional.__all__.append(_name)
    __all__ += list(_module.__all__)


# 3-D layers (fastnn/nn/layers3d.py), and weight/spectral norm and torch.nn.utils.parametrize
# (fastnn/nn/parametrize.py), reachable by torch's module paths
from . import layers3d, parametrize  # noqa: E402
from .layers3d import *  # noqa: F401,F403,E402
for _name in layers3d.FUNCTIONS:
    setattr(functional, _name, getattr(layers3d, _name))
    if _name not in functional.__all__:
        functional.__all__.append(_name)
__all__ += list(layers3d.__all__)
for _name in ("weight_norm", "remove_weight_norm", "spectral_norm", "remove_spectral_norm"):
    setattr(utils, _name, getattr(parametrize, _name))
utils.parametrize, utils.parametrizations = parametrize, parametrize.parametrizations
_sys.modules[__name__ + ".utils.parametrize"] = parametrize
_sys.modules[__name__ + ".utils.parametrizations"] = parametrize.parametrizations
from . import torch_paths  # noqa: E402   (torch.nn.modules.linear.Linear and friends)
torch_paths.install(_sys.modules[__name__ + ".modules"])


def __getattr__(name):
    # the GPT's modules moved to fastnn.models.gpt; nn does not import from models
    if name in ("Block", "CausalSelfAttention"):
        raise AttributeError(f"fastnn.nn.{name} moved to fastnn.models.gpt.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
