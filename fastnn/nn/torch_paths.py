"""torch.nn.modules.<file>.<Class> paths (torch.nn.modules.linear.Linear,
torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.dropout.Dropout ...), which programs
use in isinstance checks and safe-globals lists: each path is a module that answers with
fastnn.nn's class of that name, or the private base class PyTorch keeps there."""
import sys
import types

SUBMODULES = ("module", "container", "linear", "conv", "activation", "loss", "dropout",
              "normalization", "batchnorm", "instancenorm", "pooling", "rnn", "sparse",
              "transformer", "flatten", "padding", "pixelshuffle", "upsampling", "distance",
              "fold", "channelshuffle", "adaptive", "lazy")


def _private_bases():
    from . import conv, losses, normalization, norms, rnn, modules
    return {"_BatchNorm": normalization._BatchNorm, "_NormBase": normalization._NormBase,
            "_ConvNd": conv._ConvNd, "_Loss": losses._Loss,
            "_WeightedLoss": losses._WeightedLoss, "_InstanceNorm": norms._InstanceNorm,
            "RNNBase": rnn.RNNBase, "RNNCellBase": rnn.RNNCellBase,
            "NonDynamicallyQuantizableLinear": modules.Linear}


class _PathModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        private = _private_bases()
        if name in private:
            return private[name]
        nn = sys.modules["fastnn.nn"]
        if not name.startswith("_") and hasattr(nn, name):
            return getattr(nn, name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")


def install(modules_module):
    """Attach the paths to fastnn.nn.modules and register them for import statements."""
    for sub in SUBMODULES:
        full = f"{modules_module.__name__}.{sub}"
        mod = sys.modules.get(full) or _PathModule(full, f"torch.nn.modules.{sub}'s names")
        sys.modules[full] = mod
        setattr(modules_module, sub, mod)
