"""The autograd tutorial's ground, as a script walks it: requires_grad and grad_fn, backward with
an explicit gradient, .grad accumulating across backward calls, retain_grad on an intermediate,
a tensor hook that rescales a gradient, torch.autograd.grad with create_graph for a second
derivative and for a gradient penalty, backward(create_graph=True), no_grad and detach, and
fine-tuning with a frozen body (requires_grad = False) and a new head.
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)


def basics():
    a = torch.tensor([2.0, 3.0], requires_grad=True)
    b = torch.tensor([6.0, 4.0], requires_grad=True)
    Q = 3 * a ** 3 - b ** 2
    external_grad = torch.tensor([1.0, 1.0])
    Q.backward(gradient=external_grad)
    out = {"a_grad": a.grad.tolist(), "b_grad": b.grad.tolist(),
           "check": (9 * a ** 2 == a.grad).tolist(), "is_leaf": [a.is_leaf, Q.is_leaf],
           "has_grad_fn": Q.grad_fn is not None}

    x = torch.ones(2, 2, requires_grad=True)
    y = x + 2
    y.retain_grad()
    z = y * y * 3
    scale = []
    h = x.register_hook(lambda g: g * 2)
    z.mean().backward()
    out["x_grad_hooked"] = x.grad.tolist()
    out["y_grad"] = y.grad.tolist()
    h.remove()
    (x * 4).sum().backward()
    out["x_grad_accumulated"] = x.grad.tolist()
    x.grad.zero_()
    out["x_grad_zeroed"] = x.grad.tolist()
    with torch.no_grad():
        w = x * 2
    out["no_grad_requires_grad"] = [w.requires_grad, x.detach().requires_grad,
                                    (x * 2).requires_grad]
    del scale
    return out


def higher_order():
    x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = (x ** 3 + torch.sin(x)).sum()
    (dy,) = torch.autograd.grad(y, x, create_graph=True)
    (d2y,) = torch.autograd.grad(dy.sum(), x)
    x2 = torch.tensor([1.0, 2.0], requires_grad=True)
    (x2 ** 3).sum().backward(create_graph=True)
    first = x2.grad.tolist()
    x2.grad.sum().backward()
    return {"dy": dy.tolist(), "d2y": d2y.tolist(), "create_graph_first": first,
            "create_graph_second": x2.grad.tolist()}


def gradient_penalty():
    """A critic's gradient penalty on inputs (WGAN-GP style): d/dtheta of (|grad_x D(x)| - 1)^2."""
    rng = np.random.default_rng(0)
    critic = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    with torch.no_grad():
        for p in critic.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32)
                                     * 0.5))
    x = torch.from_numpy(rng.standard_normal((5, 3)).astype(np.float32)).requires_grad_(True)
    out = critic(x)
    grads = torch.autograd.grad(outputs=out, inputs=x, grad_outputs=torch.ones_like(out),
                                create_graph=True, retain_graph=True)[0]
    penalty = ((grads.norm(2, dim=1) - 1) ** 2).mean()
    penalty.backward()
    return {"penalty": penalty.item(), "w0_grad_sum": critic[0].weight.grad.sum().item(),
            "w2_grad": critic[2].weight.grad.flatten().tolist()}


def fine_tune():
    rng = np.random.default_rng(1)
    body = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
    model = nn.Sequential(body, nn.Linear(6, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, tuple(p.shape)).astype(np.float32)))
    for param in model.parameters():
        param.requires_grad = False
    model[1] = nn.Linear(6, 2)
    with torch.no_grad():
        model[1].weight.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, (2, 6))
                                               .astype(np.float32)))
        model[1].bias.fill_(0.1)
    optimizer = optim.SGD(model[1].parameters(), lr=0.5, momentum=0.5)
    x = torch.from_numpy(rng.standard_normal((16, 4)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 2, 16))
    before = model[0][0].weight.clone()
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"losses": losses, "trainable": trainable,
            "body_unchanged": bool(torch.equal(before, model[0][0].weight)),
            "body_grad_none": model[0][0].weight.grad is None}


def main():
    print(json.dumps({"basics": basics(), "higher": higher_order(), "gp": gradient_penalty(),
                      "fine_tune": fine_tune()}))


if __name__ == "__main__":
    main()
