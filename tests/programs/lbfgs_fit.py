"""Fitting with torch.optim.LBFGS and a closure, as curve-fitting and style-transfer scripts do:
a logistic regression on the digits "is it a 3?" problem (default LBFGS, several outer steps),
and a small curve fit with line_search_fn="strong_wolfe" on a model with nn.Parameters.
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from sklearn.datasets import load_digits

torch.manual_seed(0)


def logistic_regression():
    digits = load_digits()
    x = torch.tensor(digits.data[:500] / 16.0, dtype=torch.float32)
    y = torch.tensor((digits.target[:500] == 3).astype(np.float32))
    model = nn.Linear(64, 1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    optimizer = optim.LBFGS(model.parameters(), lr=1, max_iter=20, history_size=10)
    n_calls = 0

    def closure():
        nonlocal n_calls
        n_calls += 1
        optimizer.zero_grad()
        logits = model(x).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(logits, y) + 1e-3 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    losses = []
    for step in range(3):
        loss = optimizer.step(closure)
        losses.append(loss.item())
        print(f"step {step}: loss {loss.item():.6f}")
    final = closure().item()
    with torch.no_grad():
        correct = int(((model(x).squeeze(1) > 0).float() == y).sum())
    return {"losses": losses, "final": final, "correct": correct, "n_calls": n_calls,
            "weight_norm": model.weight.norm().item()}


class Curve(nn.Module):
    """a * exp(-b * t) + c"""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(1.0))
        self.b = nn.Parameter(torch.tensor(0.5))
        self.c = nn.Parameter(torch.tensor(0.0))

    def forward(self, t):
        return self.a * torch.exp(-self.b * t) + self.c


def curve_fit():
    rng = np.random.default_rng(5)
    t_np = np.linspace(0, 4, 50)
    y_np = 2.5 * np.exp(-1.3 * t_np) + 0.5 + 0.02 * rng.standard_normal(50)
    t = torch.from_numpy(t_np)
    y = torch.from_numpy(y_np)
    model = Curve().double()
    optimizer = optim.LBFGS(model.parameters(), lr=1, max_iter=100, tolerance_grad=1e-10,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.mse_loss(model(t), y)
        loss.backward()
        return loss

    first = optimizer.step(closure).item()
    final = F.mse_loss(model(t), y).item()
    state = optimizer.state[optimizer._params[0]]
    return {"first_loss": first, "final_loss": final,
            "params": [model.a.item(), model.b.item(), model.c.item()],
            "func_evals": state["func_evals"], "n_iter": state["n_iter"]}


def main():
    print(json.dumps({"logistic": logistic_regression(), "curve": curve_fit()}))


if __name__ == "__main__":
    main()
