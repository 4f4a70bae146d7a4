"""Learning-rate schedulers with PyTorch's names: StepLR, CosineAnnealingLR, LinearLR, LambdaLR,
plus linear_warmup() and warmup_cosine() helpers.

Each computes the lr of step t in closed form from the group's initial lr, then writes it into
optimizer.param_groups[i]['lr']. Call scheduler.step() after optimizer.step().
"""
import math

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "LinearLR", "LambdaLR",
           "linear_warmup", "warmup_cosine"]


class LRScheduler:
    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr, t):
        raise NotImplementedError

    def get_last_lr(self):
        return list(self._last_lr)

    def step(self):
        self.last_epoch += 1
        self._last_lr = [self.lr_at(b, self.last_epoch) for b in self.base_lrs]
        for g, lr in zip(self.optimizer.param_groups, self._last_lr):
            g["lr"] = lr

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        self.base_lrs = list(state["base_lrs"])
        self.last_epoch = state["last_epoch"] - 1
        self.step()


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (t // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        return base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2 (half a cosine)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        cos = math.cos(math.pi * t / self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1 + cos) / 2


class LinearLR(LRScheduler):
    """lr = base_lr * factor, the factor going linearly from start_factor to end_factor over
    total_iters steps and staying there; a linear warmup with the defaults' start_factor < 1."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ValueError("LinearLR: start_factor must be in (0, 1] and end_factor in [0, 1]")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        frac = min(t, self.total_iters) / self.total_iters if self.total_iters else 1.0
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(t)."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.lr_lambda = lr_lambda
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        return base_lr * self.lr_lambda(t)


def linear_warmup(optimizer, warmup_iters, start_factor=None):
    """Ramp the lr linearly up to its base value over warmup_iters steps, then hold it."""
    if start_factor is None:
        start_factor = 1.0 / (warmup_iters + 1)
    return LinearLR(optimizer, start_factor=start_factor, end_factor=1.0,
                    total_iters=warmup_iters)


def warmup_cosine(optimizer, warmup_iters, total_iters, min_factor=0.0):
    """Linear warmup over warmup_iters steps, then a cosine decay to min_factor * base_lr at
    total_iters (held after), as in nanoGPT's schedule."""
    def factor(t):
        if t < warmup_iters:
            return (t + 1) / (warmup_iters + 1)
        if t >= total_iters:
            return min_factor
        frac = (t - warmup_iters) / max(1, total_iters - warmup_iters)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * frac))
    return LambdaLR(optimizer, factor)
