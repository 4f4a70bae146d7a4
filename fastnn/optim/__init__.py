"""fastnn.optim: PyTorch's optimizers (same names, arguments, defaults, update rules and state
dicts), learning-rate schedulers (lr_scheduler) and weight averaging (swa_utils).

SGD, Adam and AdamW run fused update kernels (fastnn.kernels.sgd_step / adam_step); Adadelta,
Adagrad, RMSprop, Adamax, NAdam, RAdam, Rprop, ASGD, Adafactor, Muon and LBFGS run in numpy.
Each is checked against PyTorch step by step in tests/test_optim_torch.py and
tests/test_lbfgs.py."""
from . import lr_scheduler, swa_utils
from .adaptive import (ASGD, Adadelta, Adafactor, Adagrad, Adamax, Muon, NAdam, RAdam, RMSprop,
                       Rprop)
from .lbfgs import LBFGS
from .optimizer import SGD, Adam, AdamW, Optimizer

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adadelta", "Adagrad", "RMSprop", "Adamax",
           "NAdam", "RAdam", "Rprop", "ASGD", "Adafactor", "Muon", "LBFGS", "lr_scheduler",
           "swa_utils"]
