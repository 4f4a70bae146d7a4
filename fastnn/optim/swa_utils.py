"""Stochastic weight averaging and EMA of weights, PyTorch's torch.optim.swa_utils:
AveragedModel (a copy of a model holding the running average of its parameters), SWALR (anneal
each group's lr to a constant swa_lr), update_bn (recompute BatchNorm statistics for the
averaged weights), and the averaging functions get_swa_avg_fn / get_ema_avg_fn and their
multi-tensor forms.
"""
import copy
import itertools
import math

import numpy as np

from ..nn.modules import Module
from ..tensor import Tensor, no_grad
from .lr_scheduler import LRScheduler

__all__ = ["AveragedModel", "SWALR", "update_bn", "get_ema_multi_avg_fn",
           "get_swa_multi_avg_fn", "get_ema_avg_fn", "get_swa_avg_fn"]


def _arr(t):
    return t if isinstance(t, np.ndarray) else t._data


def get_ema_multi_avg_fn(decay=0.999):
    """ema = ema + (1 - decay) (current - ema), over lists of tensors, in place."""
    def ema_update(ema_param_list, current_param_list, _):
        w = 1 - decay
        for e, c in zip(ema_param_list, current_param_list):
            e, c = _arr(e), _arr(c)
            if e.dtype.kind in "fc":
                if abs(w) < 0.5:  # lerp, as PyTorch computes it
                    e += w * (c - e)
                else:
                    e[...] = c - (c - e) * (1 - w)
            else:
                e[...] = e * decay + c * (1 - decay)
    return ema_update


def get_swa_multi_avg_fn():
    """avg = avg + (current - avg) / (n + 1), over lists of tensors, in place."""
    def swa_update(averaged_param_list, current_param_list, num_averaged):
        n = float(np.asarray(_arr(num_averaged)) if isinstance(num_averaged, Tensor)
                  else num_averaged)
        for a, c in zip(averaged_param_list, current_param_list):
            a = _arr(a)
            a += (_arr(c) - a) / (n + 1)
    return swa_update


def get_ema_avg_fn(decay=0.999):
    """avg_fn(ema, current, n) = decay ema + (1 - decay) current."""
    def ema_update(ema_param, current_param, num_averaged):
        return decay * ema_param + (1 - decay) * current_param
    return ema_update


def get_swa_avg_fn():
    """avg_fn(avg, current, n) = avg + (current - avg) / (n + 1)."""
    def swa_update(averaged_param, current_param, num_averaged):
        return averaged_param + (current_param - averaged_param) / (num_averaged + 1)
    return swa_update


class AveragedModel(Module):
    """A deep copy of model whose parameters (and buffers, with use_buffers=True) hold the average
    of model's over the update_parameters(model) calls: the equal-weight average by default (SWA),
    or what avg_fn(averaged, current, n) / multi_avg_fn(averaged_list, current_list, n) computes
    (get_ema_multi_avg_fn(decay) for an EMA). Calling it runs the averaged copy."""

    def __init__(self, model, device=None, avg_fn=None, multi_avg_fn=None, use_buffers=False):
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise ValueError("Only one of avg_fn and multi_avg_fn should be provided")
        self.module = copy.deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", Tensor(np.array(0, np.int64)))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def update_parameters(self, model):
        if self.use_buffers:
            mine = list(itertools.chain(self.module.parameters(), self.module.buffers()))
            theirs = list(itertools.chain(model.parameters(), model.buffers()))
        else:
            mine, theirs = list(self.parameters()), list(model.parameters())
        n = int(np.asarray(self.n_averaged._data))
        if n == 0:
            for a, c in zip(mine, theirs):
                a._data[...] = c._data
        else:
            if self.avg_fn is None:
                (self.multi_avg_fn or get_swa_multi_avg_fn())(
                    [a._data for a in mine], [c._data for c in theirs], self.n_averaged)
            else:
                with no_grad():
                    for a, c in zip(mine, theirs):
                        out = self.avg_fn(Tensor(a._data.copy()), Tensor(c._data.copy()),
                                          Tensor(np.array(n, np.int64)))
                        a._data[...] = _arr(out)
        if not self.use_buffers:
            # buffers (BatchNorm statistics) follow the source model, not averaged
            for b, mb in zip(self.module.buffers(), model.buffers()):
                b._data[...] = mb._data
        self.n_averaged._data[...] = n + 1


def update_bn(loader, model, device=None):
    """One pass over loader in train mode to recompute the BatchNorm running statistics of model
    (their cumulative average: momentum None), e.g. for an AveragedModel's weights."""
    momenta = {}
    for module in model.modules():
        if hasattr(module, "running_mean") and hasattr(module, "reset_running_stats"):
            module.reset_running_stats()
            momenta[module] = module.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for module in momenta:
        module.momentum = None
    with no_grad():
        for batch in loader:
            if isinstance(batch, (list, tuple)):
                batch = batch[0]
            if device is not None and hasattr(batch, "to"):
                batch = batch.to(device)
            model(batch)
    for module, momentum in momenta.items():
        module.momentum = momentum
    model.train(was_training)


class SWALR(LRScheduler):
    """Anneal each group's lr from its current value to swa_lr over anneal_epochs steps (cosine or
    linear), then hold swa_lr; used with AveragedModel."""

    def __init__(self, optimizer, swa_lr, anneal_epochs=10, anneal_strategy="cos",
                 last_epoch=-1):
        swa_lrs = swa_lr if isinstance(swa_lr, (list, tuple)) else \
            [swa_lr] * len(optimizer.param_groups)
        if len(swa_lrs) != len(optimizer.param_groups):
            raise ValueError(f"swa_lr must have the same length as optimizer.param_groups: "
                             f"swa_lr has {len(swa_lrs)}, optimizer.param_groups has "
                             f"{len(optimizer.param_groups)}")
        for lr, group in zip(swa_lrs, optimizer.param_groups):
            group["swa_lr"] = lr
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError("anneal_strategy must by one of 'cos' or 'linear', instead got "
                             f"{anneal_strategy}")
        self._anneal_strategy = anneal_strategy
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got "
                             f"{anneal_epochs}")
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    def anneal_func(self, t):
        if self._anneal_strategy == "cos":
            return (1 - math.cos(math.pi * t)) / 2
        return t

    @staticmethod
    def _get_initial_lr(lr, swa_lr, alpha):
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def get_lr(self):
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_t = max(0, min(1, (step - 1) / max(1, self.anneal_epochs)))
        prev_alpha = self.anneal_func(prev_t)
        groups = self.optimizer.param_groups
        prev_lrs = [self._get_initial_lr(g["lr"], g["swa_lr"], prev_alpha) for g in groups]
        t = max(0, min(1, step / max(1, self.anneal_epochs)))
        alpha = self.anneal_func(t)
        return [g["swa_lr"] * alpha + lr * (1 - alpha) for g, lr in zip(groups, prev_lrs)]
