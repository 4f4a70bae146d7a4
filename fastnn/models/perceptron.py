"""The perceptron (Rosenblatt, 1958) and the "why depth" lesson: `fastnn train perceptron`.

A perceptron is one neuron: a weighted sum and a step,  y = 1 if w . x + b > 0 else 0,  trained by
the perceptron learning rule  w += lr * (target - y) * x,  b += lr * (target - y)  (no gradients:
the step has none). It converges on any linearly separable problem (AND, OR) and never on XOR,
whose 1s cannot be cut from its 0s by one line. One hidden layer fixes that: an MLP trained by
backpropagation learns XOR.
"""
import numpy as np

from .. import nn
from ..nn import functional as F
from ..optim import Adam
from ..tensor import Tensor, manual_seed, no_grad
from .common_cli import Parser, add_runtime_options, nonnegative_int, positive_int, setup_runtime

__all__ = ["Perceptron", "xor_mlp", "INPUTS", "TRUTH_TABLES"]

INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
TRUTH_TABLES = {
    "AND": np.array([0, 0, 0, 1], np.int64),
    "OR": np.array([0, 1, 1, 1], np.int64),
    "XOR": np.array([0, 1, 1, 0], np.int64),
}


class Perceptron(nn.Module):
    """One neuron with a step activation. weight (1, in_features) and bias (1,) are stored as
    nn.Linear's, so state dicts look like a Linear layer's; they are updated by the perceptron
    rule, not by gradients."""

    def __init__(self, in_features):
        super().__init__()
        self.in_features = in_features
        self.weight = nn.Parameter(np.zeros((1, in_features), np.float32), requires_grad=False)
        self.bias = nn.Parameter(np.zeros(1, np.float32), requires_grad=False)

    def forward(self, x):
        """The step of the weighted sum: 0/1 predictions (int64) of shape (N,)."""
        x = x._data if isinstance(x, Tensor) else np.asarray(x, np.float32)
        return Tensor((x @ self.weight._data[0] + self.bias._data[0] > 0).astype(np.int64))

    def fit(self, X, y, epochs=100, lr=1.0):
        """The perceptron learning rule, one example at a time. Returns the number of epochs
        until an epoch made no mistake, or None if it never converged."""
        X = np.asarray(X, np.float32)
        y = np.asarray(y)
        w, b = self.weight._data[0], self.bias._data
        for epoch in range(1, epochs + 1):
            mistakes = 0
            for xi, ti in zip(X, y):
                err = ti - int(xi @ w + b[0] > 0)
                if err:
                    w += lr * err * xi   # in place: weight._data is updated
                    b += lr * err
                    mistakes += 1
            if mistakes == 0:
                return epoch
        return None

    def extra_repr(self):
        return f"in_features={self.in_features}, activation=step"


def xor_mlp(hidden=4, steps=1000, lr=0.05, seed=0):
    """A 2-4-2 MLP (one tanh hidden layer of `hidden` units, two class scores) trained on XOR
    with Adam and cross-entropy.
    Returns (model, predictions)."""
    manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 2))
    opt = Adam(model.parameters(), lr=lr)
    x, t = Tensor(INPUTS), Tensor(TRUTH_TABLES["XOR"])
    for _ in range(steps):
        loss = F.cross_entropy(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with no_grad():
        pred = model(x)._data.argmax(axis=1)
    return model, pred


def _table(name, pred, target):
    rows = [f"  {name}: x1 x2 | learned  target"]
    for (a, b), p, t in zip(INPUTS.astype(int), pred, target):
        mark = "" if p == t else "   <- wrong"
        rows.append(f"       {a}  {b} |    {int(p)}       {int(t)}{mark}")
    return "\n".join(rows)


def _train_parser():
    p = Parser(prog="fastnn train perceptron",
               description="A perceptron learns AND and OR but not XOR; a one-hidden-layer MLP\n"
                           "learns XOR. Takes a second; writes nothing.\n\n"
                           "example: fastnn train perceptron --epochs 20")
    p.add_argument("--epochs", type=positive_int, default=100, help="perceptron epochs")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="the MLP's initialization")
    add_runtime_options(p)
    return p


def train_main(argv):
    """`fastnn train perceptron`: exit status 0 when AND and OR are learned, XOR is not by the
    perceptron, and is by the MLP; 1 otherwise."""
    args = _train_parser().parse_args(argv)
    setup_runtime(args)
    ok = True
    print("Perceptron (weighted sum + step, perceptron learning rule):")
    for name, target in TRUTH_TABLES.items():
        model = Perceptron(2)
        converged = model.fit(INPUTS, target, epochs=args.epochs)
        pred = model(INPUTS)._data
        status = (f"learned in {converged} epochs" if converged else
                  f"did not converge in {args.epochs} epochs")
        w = model.weight._data[0]
        print(f"{name}: {status} (w = [{w[0]:g}, {w[1]:g}], b = {model.bias._data[0]:g})")
        print(_table(name, pred, target))
        ok &= bool(converged) == (name != "XOR")
    print("XOR is not linearly separable: no single line splits {01, 10} from {00, 11}.")
    print("\nMLP 2-4-2 (tanh hidden layer, backpropagation, Adam):")
    _, pred = xor_mlp(seed=args.seed)
    target = TRUTH_TABLES["XOR"]
    learned = bool((pred == target).all())
    print(f"XOR: {'learned' if learned else 'NOT learned'}")
    print(_table("XOR", pred, target))
    return 0 if ok and learned else 1
