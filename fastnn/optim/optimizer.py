"""Optimizer base class and SGD, Adam, AdamW with PyTorch's update rules, defaults and names.

The common cases are fused kernels (kernels.sgd_step per parameter; kernels.adam_multi_step over
all of a group's parameters at once, through fastnn.kernels.trusted) that update the parameter
arrays and their state buffers in place; `maximize` feeds the kernel the negated gradient, and
Adam's `amsgrad` runs in numpy.

Gradients are read through `_grad(p)`, which accepts a numpy array or a Tensor in `p.grad`, and
are never written into (fastnn may share one gradient array between two leaves). Parameters are
updated in place (`p._data`), so views of them and `model.state_dict()` see the new values.

The base class follows torch.optim.Optimizer: `param_groups` (dicts of 'params' and
hyper-parameters, read afresh at every step, so an lr changed by hand or by a scheduler is seen by
the next step), `state` (a dict keyed by parameter), `defaults`, `add_param_group`,
`zero_grad(set_to_none=True)`, and `state_dict()` / `load_state_dict()` in PyTorch's layout, so a
state dict moves between fastnn and PyTorch once arrays and tensors are converted.
"""
import copy
import functools
import math
from collections import OrderedDict, defaultdict

import numpy as np

from ..kernels import trusted as T
from ..tensor import Tensor, _asarray, _device_of, _moved, enable_grad

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "required"]


class _RequiredParameter:
    """Singleton marking a hyper-parameter a param group must give (torch.optim's `required`)."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


def _grad(p):
    """p's gradient as an array (None if it has none), whether .grad holds an array or a
    Tensor: a numpy array, or device storage for a parameter on a GPU. Read-only: gradient
    arrays may be shared."""
    g = p.grad
    if g is None or isinstance(g, np.ndarray):
        return g
    d = getattr(g, "_data", g)
    return d if type(d) is np.ndarray else _asarray(d)


def _on_param_device(p, st, keys):
    """State arrays follow their parameter: a model moved to another device after its
    optimizer made state (model.to('cuda') after a step) gets its state moved at the next step
    (PyTorch's load_state_dict does the same; its step would fail instead)."""
    data = p._data
    for k in keys:
        v = st.get(k)
        if v is not None and type(v) is not type(data):
            st[k] = _moved(v, _device_of(data))


def _to_array(v):
    """A state value from a state dict, with tensors (fastnn's or PyTorch's) as numpy arrays."""
    if isinstance(v, np.ndarray) or v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, Tensor):
        return v._data
    if hasattr(v, "detach") and hasattr(v, "numpy"):  # a torch.Tensor, without importing torch
        return v.detach().cpu().numpy()
    if isinstance(v, (list, tuple)):
        return type(v)(_to_array(x) for x in v)
    return v


def _scalar_dtype():
    """The dtype PyTorch gives an optimizer's scalar state tensors (step, mu_product): float64
    when the default dtype is float64, else float32."""
    from .. import tensor as _t
    get = getattr(_t, "get_default_dtype", None)
    dt = get() if get is not None else getattr(_t, "_DEFAULT_FLOAT", np.float32)
    try:
        return np.dtype(np.float64) if np.dtype(dt) == np.float64 else np.dtype(np.float32)
    except TypeError:
        return np.dtype(np.float64) if "64" in str(dt) else np.dtype(np.float32)


class _RemovableHandle:
    """What register_*_hook returns: .remove() unregisters the hook."""
    _next_id = [0]

    def __init__(self, hooks):
        self._hooks = hooks
        self.id = _RemovableHandle._next_id[0]
        _RemovableHandle._next_id[0] += 1

    def remove(self):
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _hook_step(step):
    """step wrapped to run the optimizer's step pre- and post-hooks around it (PyTorch's)."""
    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        pre = getattr(self, "_optimizer_step_pre_hooks", None)
        post = getattr(self, "_optimizer_step_post_hooks", None)
        for hook in list(pre.values()) if pre else ():
            result = hook(self, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(f"{hook} must return None or a tuple of (new_args, "
                                       f"new_kwargs), but got {result}.")
                args, kwargs = result
        out = step(self, *args, **kwargs)
        self._opt_called = True
        for hook in list(post.values()) if post else ():
            hook(self, args, kwargs)
        return out
    wrapper.hooked = True
    return wrapper


class Optimizer:
    """Holds param_groups (dicts with 'params' and hyper-parameters) and per-parameter state.

    Subclasses set the defaults and implement `_step()` (or override `step`); a step reads every
    hyper-parameter from its group at the time of the call."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = defaultdict(dict)
        self.param_groups = []
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        self._patch_step_function()
        if isinstance(params, (Tensor, np.ndarray)):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {type(params).__name__} (pass "
                            "model.parameters())")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def _patch_step_function(self):
        cls = type(self)
        if not getattr(cls.step, "hooked", False):
            cls.step = _hook_step(cls.step)

    def register_step_pre_hook(self, hook):
        """hook(optimizer, args, kwargs) -> None or (new_args, new_kwargs), before each step."""
        handle = _RemovableHandle(self._optimizer_step_pre_hooks)
        self._optimizer_step_pre_hooks[handle.id] = hook
        return handle

    def register_step_post_hook(self, hook):
        """hook(optimizer, args, kwargs) -> None, after each step."""
        handle = _RemovableHandle(self._optimizer_step_post_hooks)
        self._optimizer_step_post_hooks[handle.id] = hook
        return handle

    def add_param_group(self, param_group):
        """Add a group: its own hyper-parameters, the optimizer's defaults for the others."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        else:
            group["params"] = list(params)
        # model.named_parameters() works too: the names go to the group's 'param_names'
        names = [p[0] for p in group["params"] if isinstance(p, tuple)]
        if names:
            if len(names) != len(group["params"]):
                raise ValueError("all optimizer params should be with/without names. Some "
                                 "param names are missing")
            group["params"] = [p[1] for p in group["params"]]
            group["param_names"] = names
        if self.param_groups and ("param_names" in group) != (
                "param_names" in self.param_groups[0]):
            raise ValueError("all optimizer param groups should be with/without names.")
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError("parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in group["params"]}) != len(group["params"]) or any(
                id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Reset the gradients: None (the default, as in PyTorch 2.x), or zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p._grad is None:
                    continue
                if set_to_none:
                    p._grad = None
                elif isinstance(p.grad, np.ndarray):
                    p.grad = np.zeros_like(p.grad)  # never write into a (maybe shared) array
                else:
                    g = p.grad
                    if hasattr(g, "zero_"):
                        g.zero_()
                    else:
                        g._data = np.zeros_like(g._data)

    def step(self, closure=None):
        """One update from the current gradients. closure (optional) re-evaluates the model and
        returns the loss, which step returns."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._step()
        return loss

    def _step(self):
        raise NotImplementedError

    # ------------------------------------------------------------ state dict (PyTorch's layout)
    def state_dict(self):
        """PyTorch's layout: {'state': {index: {name: array or number}},
        'param_groups': [{..., 'params': [index, ...]}]}; parameters are numbered in group order.
        Arrays are the optimizer's own (not copies), as PyTorch's are: deepcopy to snapshot."""
        index = {}
        groups = []
        for g in self.param_groups:
            d = {k: v for k, v in g.items() if k != "params"}
            for p in g["params"]:
                index.setdefault(id(p), len(index))
            d["params"] = [index[id(p)] for p in g["params"]]
            groups.append(d)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a state_dict() of an optimizer of the same kind over parameters of the same shapes
        (from fastnn, or from PyTorch with its tensors as arrays or as torch tensors)."""
        state_dict = copy.deepcopy(state_dict)
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        id_map = {}
        for saved, g in zip(groups, self.param_groups):
            for i, p in zip(saved["params"], g["params"]):
                id_map[int(i)] = p
        for saved, g in zip(groups, self.param_groups):  # in place: the group dicts stay
            for k, v in saved.items():
                if k not in ("params", "param_names"):
                    g[k] = tuple(v) if k == "betas" and isinstance(v, list) else _to_array(v)
        self.state = defaultdict(dict)
        for i, s in state_dict["state"].items():
            p = id_map.get(int(i))
            if p is None:
                continue
            self.state[p] = {k: self._cast_state(p, k, _to_array(v)) for k, v in s.items()}

    @staticmethod
    def _cast_state(p, key, v):
        if key == "step":
            if isinstance(v, np.ndarray) and v.size == 1:
                v = v.item()
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            return v
        if (isinstance(v, np.ndarray) or type(v) is type(p._data)) and v.shape == p._data.shape \
                and v.dtype.kind == "f":
            # a copy of the param's dtype, on the param's device (PyTorch's rule)
            v = v.astype(p._data.dtype) if v.dtype != p._data.dtype else v.copy()
            return _moved(v, _device_of(p._data))
        if isinstance(v, np.ndarray):
            return np.array(v)
        return v

    def __getstate__(self):
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"


def _check_unsupported(name, **flags):
    """capturable / differentiable / fused / foreach: PyTorch's implementation switches. Here
    foreach and fused are accepted (the CPU update is the same numbers); the others raise."""
    for k, v in flags.items():
        if v:
            raise NotImplementedError(f"{name}: {k}=True is not supported by fastnn")


class SGD(Optimizer):
    """SGD with momentum, dampening, Nesterov, (L2) weight decay and maximize, PyTorch's rule:
        g = -grad if maximize else grad;  g = g + weight_decay * p
        buf = g (first step) or momentum * buf + (1 - dampening) * g
        g = g + momentum * buf (nesterov) or buf;  p = p - lr * g"""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        _check_unsupported("SGD", differentiable=differentiable)
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize, foreach=foreach,
                                      differentiable=differentiable, fused=fused))

    def _step(self):
        state = self.state
        for group in self.param_groups:
            momentum = float(group["momentum"])
            kw = dict(lr=float(group["lr"]), momentum=momentum,
                      dampening=float(group["dampening"]), nesterov=bool(group["nesterov"]),
                      weight_decay=float(group["weight_decay"]))
            maximize = group.get("maximize", False)
            for p in group["params"]:
                g = _grad(p)
                if g is None:
                    continue
                if maximize:
                    g = np.negative(g)
                buf, first = None, False
                if momentum != 0:
                    buf = state[p].get("momentum_buffer") if p in state else None
                    if buf is None:
                        buf, first = np.empty_like(p._data), True
                        state[p]["momentum_buffer"] = buf
                    elif type(buf) is not type(p._data):
                        _on_param_device(p, state[p], ("momentum_buffer",))
                        buf = state[p]["momentum_buffer"]
                T.sgd_step(p._data, g, buf, first_step=first, **kw)


class Adam(Optimizer):
    """Adam, PyTorch's bias-corrected rule (weight_decay added to the gradient, or decoupled as
    AdamW's with decoupled_weight_decay=True), with amsgrad and maximize:
        m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  vmax = max(vmax, v)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v or vmax) / sqrt(1 - beta2^t) + eps)"""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        _check_unsupported(type(self).__name__, capturable=capturable,
                           differentiable=differentiable)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, foreach=foreach, capturable=capturable,
                                      differentiable=differentiable, fused=fused,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _step(self):
        state = self.state
        for group in self.param_groups:
            lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
            b1, b2 = (float(b) for b in group["betas"])
            decoupled = bool(group.get("decoupled_weight_decay", False))
            amsgrad, maximize = group.get("amsgrad", False), group.get("maximize", False)
            # the group's tensors in one kernel call per (step, dtype): usually a single call,
            # whose lists fill without a dict look-up while step and dtype stay the same
            batches = {}
            key = batch = None
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                g = g._data if type(g) is Tensor else None
                if type(g) is not np.ndarray:   # an array in .grad, or device storage
                    g = _grad(p)
                if maximize:
                    g = np.negative(g)
                data = p._data
                st = state[p]
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = np.zeros_like(data)
                    st["exp_avg_sq"] = np.zeros_like(data)
                    if amsgrad:
                        st["max_exp_avg_sq"] = np.zeros_like(data)
                elif type(st["exp_avg"]) is not type(data):
                    _on_param_device(p, st, ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"))
                step = st["step"] = st["step"] + 1
                if amsgrad:
                    _amsgrad_step(data, g, st, lr, b1, b2, eps, wd, decoupled)
                    continue
                if key is None or step != key[0] or data.dtype != key[1]:
                    key = (step, data.dtype)
                    batch = batches.get(key)
                    if batch is None:
                        batch = batches[key] = ([], [], [], [])
                batch[0].append(data)
                batch[1].append(g)
                batch[2].append(st["exp_avg"])
                batch[3].append(st["exp_avg_sq"])
            for (step, _), (ps, gs, ms, vs) in batches.items():
                T.adam_multi_step(ps, gs, ms, vs, step=step, lr=lr, betas=(b1, b2), eps=eps,
                                  weight_decay=wd, decoupled=decoupled)


def _amsgrad_step(p, g, st, lr, b1, b2, eps, wd, decoupled):
    """Adam/AdamW with amsgrad, in numpy: the denominator uses the running max of exp_avg_sq."""
    if wd != 0:
        if decoupled:
            p *= 1 - lr * wd
        else:
            g = g + wd * p
    m, v, vmax = st["exp_avg"], st["exp_avg_sq"], st["max_exp_avg_sq"]
    m += (1 - b1) * (g - m)                     # lerp(m, g, 1 - beta1)
    v *= b2
    v += (1 - b2) * g * g
    np.maximum(vmax, v, out=vmax)
    t = st["step"]
    step_size = lr / (1 - b1 ** t)
    denom = np.sqrt(vmax)
    denom /= math.sqrt(1 - b2 ** t)
    denom += eps
    p -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (p *= 1 - lr * weight_decay), PyTorch's AdamW."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
