"""fastnn.distributions: torch.distributions for fastnn tensors.

    from fastnn.distributions import Categorical, Normal
    m = Categorical(logits=policy(state)); action = m.sample()
    loss = -m.log_prob(action) * reward            # REINFORCE: gradients reach the policy
    z = Normal(mu, std).rsample()                  # a VAE's reparameterised sample
"""
from . import constraints
from .distribution import Distribution
from .families import (Normal, Categorical, Bernoulli, Uniform, MultivariateNormal,
                       Independent, OneHotCategorical, Exponential, Laplace, LogNormal)
from .kl import kl_divergence, register_kl

__all__ = ["constraints", "Distribution", "Normal", "Categorical", "Bernoulli", "Uniform",
           "MultivariateNormal", "Independent", "OneHotCategorical", "Exponential", "Laplace",
           "LogNormal", "kl_divergence", "register_kl"]
