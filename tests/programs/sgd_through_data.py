"""An optimizer written by hand through `.data`, as code from before PyTorch 0.4 (and much code
since) does it: SGD with momentum, L2 weight decay added to the gradient, gradient clipping by
value and by total norm (`p.grad.data.norm(2)`), a step decay of the learning rate, and
`p.grad.data.zero_()`, on a small MLP regressing a smooth function. The same updates through
torch.optim.SGD must land on the same weights.
"""
import copy
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.fc1 = nn.Linear(2, 32)
        self.fc2 = nn.Linear(32, 32)
        self.fc3 = nn.Linear(32, 1)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return self.fc3(x)


def make_data(rng, n=256):
    x = rng.uniform(-2, 2, (n, 2)).astype(np.float32)
    y = (np.sin(x[:, :1]) * np.cos(x[:, 1:]) + 0.1 * x[:, :1]).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


def init_from_numpy(model, rng):
    for p in model.parameters():
        p.data.copy_(torch.from_numpy(rng.normal(0, 0.4, tuple(p.size())).astype(np.float32)))


def train_by_hand(model, x, y, steps=40, lr=0.1, momentum=0.9, weight_decay=1e-3,
                  clip_value=2.0, max_norm=1.0):
    bufs = {}
    losses, norms = [], []
    for step in range(steps):
        if step == 25:
            lr *= 0.5
        out = model(x)
        loss = F.mse_loss(out, y)
        for p in model.parameters():
            if p.grad is not None:
                p.grad.data.zero_()
        loss.backward()
        total_norm = 0.0
        for p in model.parameters():
            p.grad.data.clamp_(-clip_value, clip_value)
            param_norm = p.grad.data.norm(2)
            total_norm += param_norm.item() ** 2
        total_norm = total_norm ** 0.5
        clip_coef = max_norm / (total_norm + 1e-6)
        if clip_coef < 1:
            for p in model.parameters():
                p.grad.data.mul_(clip_coef)
        for p in model.parameters():
            d_p = p.grad.data
            d_p.add_(p.data, alpha=weight_decay)
            if p not in bufs:
                buf = bufs[p] = torch.clone(d_p).detach()
            else:
                buf = bufs[p]
                buf.mul_(momentum).add_(d_p)
            p.data.add_(buf, alpha=-lr)
        losses.append(loss.item())
        norms.append(total_norm)
    return losses, norms


def train_with_optim(model, x, y, steps=40, lr=0.1, momentum=0.9, weight_decay=1e-3,
                     clip_value=2.0, max_norm=1.0):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=25, gamma=0.5)
    losses = []
    for step in range(steps):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        nn.utils.clip_grad_value_(model.parameters(), clip_value)
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def main():
    rng = np.random.default_rng(0)
    x, y = make_data(rng)
    model = Net()
    init_from_numpy(model, rng)
    twin = copy.deepcopy(model)
    losses, norms = train_by_hand(model, x, y)
    twin_losses = train_with_optim(twin, x, y)
    gap = max((p.data - q.data).abs().max().item()
              for p, q in zip(model.parameters(), twin.parameters()))
    print(json.dumps({"losses": losses[::5], "final_loss": losses[-1], "norms": norms[::5],
                      "matches_optim": gap < 1e-4,
                      "twin_losses": twin_losses[::5],
                      "fc3_weight": model.fc3.weight.data[0, :6].tolist(),
                      "fc3_bias": model.fc3.bias.item()}))


if __name__ == "__main__":
    main()
