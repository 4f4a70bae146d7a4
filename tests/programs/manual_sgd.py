"""Gradient descent from scratch, the textbook way: weight tensors with requires_grad=True, a
hand-written model and loss, and updates in place under torch.no_grad():

    with torch.no_grad():
        w -= lr * w.grad
        w.grad.zero_()

First a linear regression (one weight vector and a bias), then a two-layer network on a toy
classification problem whose update loops over a list of parameters and clears .grad with
`p.grad = None`, and a check that gradients accumulate when they are not cleared.
"""
import json
import math

import numpy as np
import torch

torch.manual_seed(42)


def linear_regression():
    rng = np.random.default_rng(0)
    x_np = rng.uniform(-1, 1, (100, 3)).astype(np.float32)
    true_w = np.array([2.0, -3.4, 1.5], dtype=np.float32)
    y_np = x_np @ true_w + 4.2 + 0.01 * rng.standard_normal(100).astype(np.float32)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np).reshape(-1, 1)

    w = torch.zeros(3, 1, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    lr = 0.1
    losses = []
    for epoch in range(60):
        y_hat = x @ w + b
        loss = ((y_hat - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
            w.grad.zero_()
            b.grad.zero_()
        losses.append(loss.item())
    return {"losses": losses[::10], "w": w.detach().flatten().tolist(), "b": b.item(),
            "w_is_leaf": w.is_leaf, "w_requires_grad": w.requires_grad}


def two_layer_net():
    rng = np.random.default_rng(1)
    n = 200
    x_np = rng.standard_normal((n, 2)).astype(np.float32)
    y_np = ((x_np[:, 0] ** 2 + x_np[:, 1] ** 2) < 1.0).astype(np.int64)   # inside the circle
    x, y = torch.tensor(x_np), torch.tensor(y_np)

    w1 = torch.tensor(rng.standard_normal((2, 16)).astype(np.float32) / math.sqrt(2),
                      requires_grad=True)
    b1 = torch.zeros(16, requires_grad=True)
    w2 = torch.tensor(rng.standard_normal((16, 2)).astype(np.float32) / 4.0, requires_grad=True)
    b2 = torch.zeros(2, requires_grad=True)
    params = [w1, b1, w2, b2]

    lr = 0.5
    losses, grad_norms = [], []
    for step in range(100):
        h = torch.tanh(x @ w1 + b1)
        logits = h @ w2 + b2
        log_probs = logits - logits.logsumexp(dim=1, keepdim=True)
        loss = -log_probs[torch.arange(n), y].mean()
        for p in params:
            p.grad = None
        loss.backward()
        if step % 20 == 0:
            grad_norms.append(math.sqrt(sum((p.grad ** 2).sum().item() for p in params)))
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
        losses.append(loss.item())
    with torch.no_grad():
        pred = (torch.tanh(x @ w1 + b1) @ w2 + b2).argmax(1)
    correct = int((pred == y).sum())
    return {"losses": losses[::10], "final_loss": losses[-1], "grad_norms": grad_norms,
            "correct": correct}


def accumulation():
    """.grad accumulates across backward() calls until cleared, and p.grad is the same Tensor."""
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x ** 2).sum().backward()
    g = x.grad
    first = g.tolist()
    (3 * x).sum().backward()
    same = x.grad is g
    second = x.grad.tolist()
    scaled = (0.5 * x.grad).std().item()
    x.grad.zero_()
    return {"first": first, "second": second, "same_tensor": same, "scaled_std": scaled,
            "after_zero": x.grad.tolist(), "norm": x.grad.norm().item()}


def main():
    results = {"linear": linear_regression(), "net": two_layer_net(), "acc": accumulation()}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
