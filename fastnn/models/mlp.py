"""A multilayer perceptron, and the digits lesson (its commands, `fastnn train mlp` and
`fastnn eval mlp`, are in mlp_cli.py; its checkpoints in checkpoint.py).

    model = MLP([64, 128, 128, 10])      # Linear -> ReLU -> Linear -> ReLU -> Linear
    model.net[0].weight                   # state-dict keys: net.0.weight, net.0.bias, net.2...

The same architecture in PyTorch (a module with `self.net = nn.Sequential(...)`) has the same
state-dict keys, so weights move between the two by name.
"""
import numpy as np

from .. import nn
from ..data import DataLoader, load_digits
from ..optim import AdamW
from ..optim.lr_scheduler import CosineAnnealingLR
from ..tensor import Tensor, manual_seed, no_grad
from ..training import fit

__all__ = ["MLP", "train_digits"]

DEFAULT_SIZES = (64, 128, 128, 10)
_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


class MLP(nn.Module):
    """Linear layers of the given sizes with an activation (and optional dropout) between them."""

    def __init__(self, sizes=DEFAULT_SIZES, activation="relu", dropout=0.0):
        super().__init__()
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"MLP: sizes must list at least an input and an output size, "
                             f"got {sizes}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"MLP: activation must be one of {sorted(_ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.sizes, self.activation, self.dropout = sizes, activation, dropout
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(_ACTIVATIONS[activation]())
                if dropout:
                    layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)

    def predict(self, x):
        """Class indices for inputs x (array or Tensor), in eval mode."""
        was = self.training
        self.eval()
        with no_grad():
            out = self(x if isinstance(x, Tensor) else Tensor(np.asarray(x, np.float32)))
        self.train(was)
        return out._data.argmax(axis=-1)

    def accuracy(self, X, y):
        return float(np.mean(self.predict(X) == np.asarray(y)))


# ---------------------------------------------------------------- the digits lesson
def train_digits(epochs=60, batch_size=32, lr=3e-3, weight_decay=1e-2, hidden=(256, 256),
                 dropout=0.3, seed=0, max_time=10.0, progress=True, plot=None, device="cpu"):
    """Train an MLP on the digits with AdamW, dropout and a cosine schedule. Returns (model,
    history, test accuracy, data). The defaults reach 97.8-98.6% test accuracy over seeds 0-4.
    device: train there (model.to(device), each batch too); the model returned is on the CPU."""
    manual_seed(seed)
    d = load_digits(seed=seed)
    model = MLP((d.X_train.shape[1],) + tuple(hidden) + (10,), dropout=dropout).to(device)
    opt = AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    train = DataLoader((d.X_train, d.y_train), batch_size=batch_size, shuffle=True, seed=seed)
    test = DataLoader((d.X_test, d.y_test), batch_size=512)
    sched = CosineAnnealingLR(opt, T_max=epochs * len(train))
    history = fit(model, opt, train, epochs=epochs, val_loader=test, scheduler=sched,
                  scheduler_interval="batch", max_time=max_time, progress=progress, plot=plot,
                  device=None if device == "cpu" else device)
    model.to("cpu")
    return model, history, model.accuracy(d.X_test, d.y_test), d
