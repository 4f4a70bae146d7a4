"""A training loop as real scripts write one around the model: a binary classifier trained with
BCEWithLogitsLoss (pos_weight), an auxiliary regression head with SmoothL1Loss, Adam with two
parameter groups, gradient clipping with clip_grad_norm_ (its returned norm logged), learning-rate
schedulers stepped per batch (OneCycleLR) and per epoch (StepLR, then ReduceLROnPlateau on the
validation loss), .grad inspected between backward and step, and gradient accumulation over two
micro-batches.
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import OneCycleLR, ReduceLROnPlateau, StepLR
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(3)


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 32), nn.SiLU(), nn.Linear(32, 32), nn.Softplus())
        self.cls = nn.Linear(32, 1)
        self.reg = nn.Linear(32, 1)

    def forward(self, x):
        h = self.body(x)
        return self.cls(h).squeeze(-1), self.reg(h).squeeze(-1)


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    y_cls = (x[:, 0] + 0.5 * x[:, 1] ** 2 > 1.2).astype(np.float32)   # about one in four
    y_reg = (np.sin(x[:, 2]) + 0.1 * x[:, 3]).astype(np.float32)
    return TensorDataset(torch.from_numpy(x), torch.from_numpy(y_cls), torch.from_numpy(y_reg))


def init_from_numpy(model, seed=4):
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in model.parameters():
            bound = 1.0 / np.sqrt(p.shape[-1]) if p.dim() > 1 else 0.1
            p.copy_(torch.from_numpy(rng.uniform(-bound, bound, tuple(p.shape))
                                     .astype(np.float32)))


def run_epoch(model, loader, criterion_cls, criterion_reg, optimizer, scheduler, accum=2):
    model.train()
    norms, lrs, total = [], [], 0.0
    optimizer.zero_grad()
    for i, (x, y_cls, y_reg) in enumerate(loader):
        logit, pred = model(x)
        loss = criterion_cls(logit, y_cls) + 0.5 * criterion_reg(pred, y_reg)
        (loss / accum).backward()
        total += loss.item()
        if (i + 1) % accum == 0:
            norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
            norms.append(norm.item())
            optimizer.step()
            optimizer.zero_grad()
            if scheduler is not None:
                scheduler.step()
            lrs.append(optimizer.param_groups[0]["lr"])
    return total / len(loader), norms, lrs


def validate(model, loader, criterion_cls):
    model.eval()
    loss, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for x, y_cls, _ in loader:
            logit, _ = model(x)
            loss += criterion_cls(logit, y_cls).item() * len(x)
            correct += ((torch.sigmoid(logit) > 0.5).float() == y_cls).sum().item()
            n += len(x)
    return loss / n, correct


def main():
    train_loader = DataLoader(make_data(256, 0), batch_size=16)
    val_loader = DataLoader(make_data(128, 1), batch_size=64)
    model = TwoHeads()
    init_from_numpy(model)
    criterion_cls = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([3.0]))
    criterion_reg = nn.SmoothL1Loss(beta=0.5)
    optimizer = optim.Adam([
        {"params": model.body.parameters()},
        {"params": list(model.cls.parameters()) + list(model.reg.parameters()), "lr": 2e-3},
    ], lr=1e-3, weight_decay=1e-4)

    results = {"epochs": []}
    one_cycle = OneCycleLR(optimizer, max_lr=[1e-2, 2e-2], total_steps=2 * 8)
    for epoch in range(2):
        loss, norms, lrs = run_epoch(model, train_loader, criterion_cls, criterion_reg,
                                     optimizer, one_cycle)
        results["epochs"].append({"loss": loss, "norms": norms, "lrs": lrs})

    # a first look at the gradients, as debugging code does
    x, y_cls, y_reg = next(iter(train_loader))
    logit, pred = model(x)
    (criterion_cls(logit, y_cls) + F.l1_loss(pred, y_reg)).backward()
    grads = model.cls.weight.grad
    results["grad"] = {"norm": grads.norm().item(), "std": (1e-2 * grads).std().item(),
                       "is_none": [p.grad is None for p in model.parameters()],
                       "max_abs": grads.abs().max().item()}
    optimizer.zero_grad()
    results["after_zero_grad"] = [p.grad is None for p in model.parameters()]

    for group in optimizer.param_groups:
        group["lr"] = 5e-3
    step_lr = StepLR(optimizer, step_size=1, gamma=0.5)
    plateau = ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=0)
    for epoch in range(3):
        loss, norms, _ = run_epoch(model, train_loader, criterion_cls, criterion_reg, optimizer,
                                   None)
        val_loss, correct = validate(model, val_loader, criterion_cls)
        if epoch == 0:
            step_lr.step()
        else:
            plateau.step(val_loss)
        results["epochs"].append({"loss": loss, "val_loss": val_loss, "correct": correct,
                                  "lrs": [g["lr"] for g in optimizer.param_groups],
                                  "norms": norms[:3]})
        print(f"epoch {epoch}: loss {loss:.4f} val {val_loss:.4f} correct {correct}")
    results["last_lr"] = step_lr.get_last_lr()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
