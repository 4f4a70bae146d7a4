"""fastnn.optim: PyTorch's optimizers (same names, arguments, defaults and update rules) and
learning-rate schedulers. SGD, Adam and AdamW run fused update kernels; Adadelta, Adagrad,
RMSprop, Adamax, NAdam, RAdam, Rprop, ASGD, Adafactor and LBFGS run in numpy."""
from . import lr_scheduler, swa_utils
from .adaptive import ASGD, Adadelta, Adafactor, Adagrad, Adamax, NAdam, RAdam, RMSprop, Rprop
from .lbfgs import LBFGS
from .optimizer import SGD, Adam, AdamW, Optimizer

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adadelta", "Adagrad", "RMSprop", "Adamax",
           "NAdam", "RAdam", "Rprop", "ASGD", "Adafactor", "LBFGS", "lr_scheduler", "swa_utils"]
