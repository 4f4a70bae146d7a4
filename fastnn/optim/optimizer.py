"""Optimizer base class and SGD, Adam, AdamW with PyTorch's update rules.

Each step is one fused kernel per parameter (kernels.sgd_step / kernels.adam_step) that updates
the parameter array and its state buffers in place.
"""
import copy

import numpy as np

from ..kernels import trusted as T
from ..tensor import Tensor, enable_grad

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


class Optimizer:
    """Holds param_groups (dicts with 'params' and hyper-parameters) and per-parameter state."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors or dicts, got a Tensor "
                            "(pass model.parameters())")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group):
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise ValueError("optimizer can only optimize Tensors that require grad")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        group.setdefault("initial_lr", group["lr"])
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None if (set_to_none or p.grad is None) else np.zeros_like(p.data)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._step()
        return loss

    def _step(self):
        raise NotImplementedError

    # ------------------------------------------------------------ state dict (PyTorch's layout)
    def _params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self):
        """PyTorch's layout: {'state': {index: {name: array or number}},
        'param_groups': [{..., 'params': [index, ...]}]}."""
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[id(p)]: {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                for k, v in s.items()}
                 for p, s in self.state.items() if id(p) in index}
        groups = []
        for g in self.param_groups:
            d = {k: v for k, v in g.items() if k != "params"}
            d["params"] = [index[id(p)] for p in g["params"]]
            groups.append(d)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        params = self._params()
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError("load_state_dict: the parameter groups do not match this optimizer's")
        for g, saved in zip(self.param_groups, groups):
            for k, v in saved.items():
                if k != "params":
                    g[k] = copy.deepcopy(v)
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            st = {}
            for k, v in s.items():
                if isinstance(v, np.ndarray) and v.shape == p.data.shape:
                    v = np.ascontiguousarray(v, dtype=p.data.dtype).copy()
                st[k] = v
            self.state[p] = st

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """SGD with momentum, dampening, Nesterov and (L2) weight decay, PyTorch's rule."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, maximize=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: invalid lr={lr}, momentum={momentum} or "
                             f"weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")
        if maximize:
            raise NotImplementedError("SGD: maximize is not supported")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _step(self):
        state = self.state
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            kw = dict(lr=lr, momentum=momentum, dampening=group["dampening"],
                      nesterov=group["nesterov"], weight_decay=group["weight_decay"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf, first = None, False
                if momentum != 0:
                    st = state.get(p)
                    if st is None:
                        buf, first = np.empty_like(p.data), True
                        state[p] = {"momentum_buffer": buf}
                    else:
                        buf = st["momentum_buffer"]
                T.sgd_step(p.data, p.grad, buf, first_step=first, **kw)


class Adam(Optimizer):
    """Adam (weight_decay as an L2 term added to the gradient), PyTorch's bias-corrected rule."""
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, maximize=False):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{type(self).__name__}: invalid lr={lr}, betas={betas} or eps={eps}")
        if amsgrad or maximize:
            raise NotImplementedError(f"{type(self).__name__}: amsgrad and maximize are not "
                                      f"supported")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    def _step(self):
        state = self.state
        decoupled = self._decoupled
        for group in self.param_groups:
            lr, betas, eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            lr, eps, wd, (b1, b2) = float(lr), float(eps), float(wd), map(float, betas)
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = state.get(p)
                if st is None:
                    st = state[p] = {"step": 0, "exp_avg": np.zeros_like(p.data),
                                     "exp_avg_sq": np.zeros_like(p.data)}
                st["step"] += 1
                T.adam_step(p.data, p.grad, st["exp_avg"], st["exp_avg_sq"], step=st["step"],
                            lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, decoupled=decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (param *= 1 - lr * weight_decay), PyTorch's AdamW."""
    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
