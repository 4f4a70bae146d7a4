"""fastnn.distributions: torch.distributions for fastnn tensors.

    from fastnn.distributions import Categorical, Normal
    m = Categorical(logits=policy(state)); action = m.sample()
    loss = -m.log_prob(action) * reward            # REINFORCE: gradients reach the policy
    z = Normal(mu, std).rsample()                  # a VAE's reparameterised sample
"""
from . import constraints
from . import distribution  # noqa: F401
from .distribution import Distribution
from .families import (Normal, Categorical, Bernoulli, Uniform, MultivariateNormal,
                       Independent, OneHotCategorical, Exponential, Laplace, LogNormal)
from .kl import kl_divergence, register_kl

__all__ = ["constraints", "Distribution", "Normal", "Categorical", "Bernoulli", "Uniform",
           "MultivariateNormal", "Independent", "OneHotCategorical", "Exponential", "Laplace",
           "LogNormal", "kl_divergence", "register_kl"]

# torch's per-family module paths (`from torch.distributions.normal import Normal`)
import sys as _sys  # noqa: E402
import types as _types  # noqa: E402
for _path, _names in (("normal", ["Normal"]), ("categorical", ["Categorical"]),
                      ("bernoulli", ["Bernoulli"]), ("uniform", ["Uniform"]),
                      ("multivariate_normal", ["MultivariateNormal"]),
                      ("independent", ["Independent"]),
                      ("one_hot_categorical", ["OneHotCategorical"]),
                      ("exponential", ["Exponential"]), ("laplace", ["Laplace"]),
                      ("log_normal", ["LogNormal"])):
    _mod = _types.ModuleType(f"{__name__}.{_path}")
    for _n in _names:
        setattr(_mod, _n, globals()[_n])
    _sys.modules[_mod.__name__] = _mod
    globals()[_path] = _mod
_sys.modules[__name__ + ".distribution"] = distribution
