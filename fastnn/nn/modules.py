"""fastnn.nn modules: Module, Parameter and the layers, with PyTorch's names and state-dict keys.

Parameters and submodules are kept in ordered registries (`_parameters`, `_modules`, `_buffers`)
that define state-dict order and names, and also as plain instance attributes so that reading
`self.weight` in forward costs one dict lookup.
"""
import math
from collections import OrderedDict, namedtuple

import numpy as np

from ..tensor import (Tensor, _asarray, _device, _device_of, _dtype, _is_device_arg, _moved,
                      _on_gpu, _to_array, float16, float32, float64, get_default_device,
                      get_default_dtype, no_grad)
from . import functional as F
from . import init

__all__ = ["Parameter", "Module", "Linear", "Sequential", "ModuleList", "ModuleDict", "ReLU",
           "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "LogSoftmax", "Dropout", "Flatten",
           "Identity", "LayerNorm", "Embedding", "CrossEntropyLoss", "MSELoss", "ParameterList",
           "ParameterDict"]


class Parameter(Tensor):
    """A Tensor that a Module registers as a learnable parameter (requires_grad by default)."""
    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.zeros(0, float32)
        if isinstance(data, Tensor):
            data = data._data       # shared, on its device
        elif not _on_gpu(data):
            data = np.asarray(data)
            dev = get_default_device()
            if dev.type != "cpu":   # made inside `with fastnn.device('cuda')`: made there
                data = _moved(data, dev)
        super().__init__(data, requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What load_state_dict returns: the keys the state dict lacked and those it had in excess."""
    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


IncompatibleKeys = _IncompatibleKeys


def _to_numpy(value):
    """An array from a numpy array, a fastnn Tensor (its device storage, for a tensor on a GPU),
    or anything array-like (a torch tensor)."""
    return _asarray(_to_array(value))


class _HookHandle:
    def __init__(self, table, key):
        self._table, self._key = table, key

    def remove(self):
        self._table.pop(self._key, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class Module:
    """Base class of layers and models: subclass it, set layers/Parameters as attributes in
    __init__, and define forward()."""

    training = True

    def __init__(self):
        d = self.__dict__
        d["_parameters"] = OrderedDict()
        d["_modules"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent"] = set()
        d["training"] = True

    # ------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() was called "
                                 f"(call super().__init__() first)")
        if name in d["_buffers"] and (value is None or type(value) is Tensor):
            d["_buffers"][name] = value  # reassigning a buffer keeps it a buffer, as PyTorch
            d[name] = value
            return
        for reg in (d["_parameters"], d["_modules"], d["_buffers"]):
            reg.pop(name, None)
        if isinstance(value, Parameter):
            d["_parameters"][name] = value
        elif isinstance(value, Module):
            d["_modules"][name] = value
        d[name] = value

    def __delattr__(self, name):
        for reg in (self._parameters, self._modules, self._buffers):
            reg.pop(name, None)
        del self.__dict__[name]

    def register_parameter(self, name, param):
        if param is None:
            self._parameters.pop(name, None)
            self.__dict__[name] = None
        else:
            setattr(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """A non-learnable tensor saved in the state dict (unless persistent=False)."""
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(np.asarray(tensor))
        if tensor is not None and get_default_device().type != "cpu" \
                and type(tensor._data) is np.ndarray:
            # a module built inside `with fastnn.device('cuda')` keeps its buffers there too
            tensor = Tensor(_moved(tensor._data, get_default_device()))
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)
        self.__dict__[name] = tensor

    def add_module(self, name, module):
        setattr(self, name, module)

    register_module = add_module

    # ------------------------------------------------------------ calling
    def __call__(self, *args, **kwargs):
        hooks = self.__dict__.get("_hooks")
        if not hooks:
            return self.forward(*args, **kwargs)
        for hook in list(hooks["pre"].values()):
            r = hook(self, args)
            if r is not None:
                args = r if isinstance(r, tuple) else (r,)
        out = self.forward(*args, **kwargs)
        for hook in list(hooks["post"].values()):
            r = hook(self, args, out)
            if r is not None:
                out = r
        return out

    def _hook_table(self):
        d = self.__dict__
        if not d.get("_hooks"):
            d["_hooks"] = {"pre": OrderedDict(), "post": OrderedDict()}
        return d["_hooks"]

    def register_forward_pre_hook(self, hook):
        """hook(module, args) runs before forward; a value it returns replaces args."""
        table = self._hook_table()["pre"]
        key = object()
        table[key] = hook
        return _HookHandle(table, key)

    def register_forward_hook(self, hook):
        """hook(module, args, output) runs after forward; a value it returns replaces output."""
        table = self._hook_table()["post"]
        key = object()
        table[key] = hook
        return _HookHandle(table, key)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix=""):
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            children = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items()
                        if c is not None]
            stack.extend(reversed(children))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for k, m in self._modules.items():
            if m is not None:
                yield k, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, m in mods:
            for k, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{k}" if mname else k), p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, m in mods:
            for k, b in m._buffers.items():
                if b is None or (remove_duplicate and id(b) in seen):
                    continue
                seen.add(id(b))
                yield (f"{mname}.{k}" if mname else k), b

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target):
        m = self
        for part in target.split(".") if target else ():
            if part not in m._modules:
                raise AttributeError(f"{type(m).__name__} has no attribute `{part}`")
            m = m._modules[part]
        return m

    def get_parameter(self, target):
        mod, _, name = target.rpartition(".")
        m = self.get_submodule(mod)
        if name not in m._parameters:
            raise AttributeError(f"{type(m).__name__} has no parameter `{name}`")
        return m._parameters[name]

    def get_buffer(self, target):
        mod, _, name = target.rpartition(".")
        m = self.get_submodule(mod)
        if name not in m._buffers:
            raise AttributeError(f"{type(m).__name__} has no buffer `{name}`")
        return m._buffers[name]

    def num_parameters(self):
        return sum(p._data.size for p in self.parameters())

    # ------------------------------------------------------------ modes and grads
    def train(self, mode=True):
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            elif isinstance(p.grad, Tensor) and p.grad._base is None:
                # the same .grad Tensor, zeroed in place, as PyTorch's (a view gets a new one)
                p.grad.detach_().zero_()
            else:
                p.grad = np.zeros_like(p._data)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # ------------------------------------------------------------ devices and dtypes
    def _apply_cast(self, dtype):
        """Cast floating parameters and buffers (and their grads) to dtype, in place: the same
        Parameter objects hold new arrays, as PyTorch's module.to()."""
        for m in self.modules():
            for reg in (m._parameters, m._buffers):
                for t in reg.values():
                    if t is None or t._data.dtype.kind != "f" or t._data.dtype == dtype:
                        continue
                    t._data = t._data.astype(dtype)
                    t._vc[0] += 1
                    if t.grad is not None:
                        g = t.grad._data if isinstance(t.grad, Tensor) else t.grad
                        g = g.astype(dtype)
                        t.grad = Tensor(g) if isinstance(t.grad, Tensor) else g
        return self

    def _apply_device(self, dev):
        """Move every parameter and buffer (and gradient) to device dev, in place: the same
        Parameter objects hold the moved storage, so an optimizer built before keeps working,
        as with PyTorch's module.to(device). Each copy is a counted transfer."""
        for m in self.modules():
            for reg in (m._parameters, m._buffers):
                for t in reg.values():
                    if t is None or _device_of(t._data) == dev:
                        continue
                    t._data = _moved(t._data, dev)
                    t._vc[0] += 1
                    g = t._grad
                    if g is not None and _device_of(g._data) != dev:
                        g._data = _moved(g._data, dev)
        return self

    def to(self, *args, dtype=None, device=None, non_blocking=False, **kwargs):
        """to(device), to(dtype), to(device, dtype), to(tensor): parameters and buffers moved
        to the device and floating ones converted to dtype, in place (the same Parameter
        objects); returns self."""
        for a in args:
            if isinstance(a, Tensor):
                dtype = a._data.dtype
                device = a.device
            elif _is_device_arg(a) or (isinstance(a, int) and not isinstance(a, bool)):
                device = a
            elif a is not None:
                dtype = a
        if device is not None:
            if isinstance(device, int) and not isinstance(device, bool):
                device = f"cuda:{device}"
            self._apply_device(_device(device))
        if dtype is None:
            return self
        dtype = _dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired "
                            f"dtype={dtype}")
        if dtype == float16:
            return self.half()
        return self._apply_cast(dtype)

    def cpu(self):
        """Parameters and buffers moved to host memory (in place); returns self."""
        return self._apply_device(_device("cpu"))

    def cuda(self, device=None):
        """Parameters and buffers moved to the GPU (in place; device: an index or 'cuda:N');
        returns self. NoCudaError without one."""
        if device is None:
            device = "cuda"
        elif isinstance(device, int) and not isinstance(device, bool):
            device = f"cuda:{device}"
        return self._apply_device(_device(device))

    def float(self):
        return self._apply_cast(float32)

    def double(self):
        return self._apply_cast(float64)

    def half(self):
        raise TypeError("fastnn: float16 (half) modules are not supported: the kernels run in "
                        "float32 and float64; keep the model in float32")

    def bfloat16(self):
        raise TypeError("fastnn: bfloat16 is not supported (numpy has no bfloat16); keep the "
                        "model in float32")

    def type(self, dst_type):
        return self.to(dst_type)

    def share_memory(self):
        return self

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------ state dict
    def _state_items(self):
        for mname, m in self.named_modules():
            base = mname + "." if mname else ""
            for k, p in m._parameters.items():
                if p is not None:
                    yield base + k, m, k, p
            for k, b in m._buffers.items():
                if b is not None and k not in m._non_persistent:
                    yield base + k, m, k, b

    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        """name -> tensor for parameters and persistent buffers, named as PyTorch names them.
        The tensors share storage with the model (detached views, as PyTorch's), so
        sd[k].copy_(w) writes into the model; keep_vars=True gives the Parameters themselves."""
        if args:  # PyTorch's deprecated positional form state_dict(destination, prefix, ...)
            destination = args[0]
            if len(args) > 1:
                prefix = args[1]
            if len(args) > 2:
                keep_vars = args[2]
        out = OrderedDict() if destination is None else destination
        for name, _, _, t in self._state_items():
            out[prefix + name] = t if keep_vars else t.detach()
        return out

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy values (fastnn Tensors, numpy arrays or torch tensors) into the parameters and
        buffers in place, cast to each one's dtype (assign=True: make them the given tensors).
        Returns (missing_keys, unexpected_keys); with strict, any raises RuntimeError, as does a
        shape mismatch. Nothing changes unless every value checks out."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        own = OrderedDict((name, (m, k, t)) for name, m, k, t in self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict:
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: " +
                              ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " +
                              ", ".join(f'"{k}"' for k in missing) + ". ")
        arrays = {}
        for k, (m, name, t) in own.items():
            if k not in state_dict:
                continue
            v = _to_numpy(state_dict[k])
            if v.shape != t._data.shape:
                errors.append(f"size mismatch for {k}: copying a param with shape "
                              f"torch.Size({list(v.shape)}) from checkpoint, the shape in "
                              f"current model is torch.Size({list(t._data.shape)}).")
                continue
            arrays[k] = v
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        with no_grad():
            for k, v in arrays.items():  # all checked first, so a bad dict changes nothing
                m, name, t = own[k]
                if assign:
                    src = state_dict[k]
                    if isinstance(t, Parameter):
                        new = src if isinstance(src, Parameter) else Parameter(
                            src if isinstance(src, Tensor) else v, t.requires_grad)
                        m._parameters[name] = new
                        m.__dict__[name] = new
                    else:
                        new = src if isinstance(src, Tensor) else Tensor(v)
                        m._buffers[name] = new
                        m.__dict__[name] = new
                else:
                    t.copy_(v)
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ repr
    def extra_repr(self):
        return ""

    def _repr(self):
        lines = []
        for name, m in self._modules.items():
            child = m._repr() if m is not None else "None"
            child = child.replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"

    def __repr__(self):
        n = self.num_parameters()
        return f"{self._repr()}\n# {n:,} parameters"


# ---------------------------------------------------------------- layers
class Linear(Module):
    """y = x @ weight.T + bias; weight (out_features, in_features), PyTorch's default init:
    kaiming_uniform(a=sqrt(5)) for the weight and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the
    bias."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        _device(device)
        self.in_features = in_features
        self.out_features = out_features
        dtype = _dtype(dtype) or get_default_dtype()
        self.weight = Parameter(np.empty((out_features, in_features), dtype))
        self.bias = Parameter(np.empty(out_features, dtype)) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()
        if device is not None:   # device=: made (the CPU's draws), then moved there
            self.to(device)

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class ReLU(Module):
    def __init__(self, inplace=False):
        super().__init__()

    def forward(self, input):
        return F.relu(input)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    def forward(self, input):
        return F.sigmoid(input)

    def __init__(self):
        super().__init__()


class Tanh(Module):
    def __init__(self):
        super().__init__()

    def forward(self, input):
        return F.tanh(input)


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, input):
        return F.log_softmax(input, self.dim)


class Dropout(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None,
                 dtype=None):
        super().__init__()
        _device(device)
        ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape = ns
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        dtype = _dtype(dtype) or get_default_dtype()
        if elementwise_affine:
            self.weight = Parameter(np.ones(ns, dtype))
            self.bias = Parameter(np.zeros(ns, dtype)) if bias else None
            if not bias:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if device is not None:
            self.to(device)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class Embedding(Module):
    """A lookup table (num_embeddings, embedding_dim), initialized N(0, 1) as PyTorch."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 _freeze=False, device=None, dtype=None):
        super().__init__()
        _device(device)
        if max_norm is not None:
            raise NotImplementedError("Embedding: max_norm is not supported")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        if padding_idx is not None and padding_idx < 0:
            padding_idx += num_embeddings
        self.padding_idx = padding_idx
        dtype = _dtype(dtype) or get_default_dtype()
        if _weight is not None:
            self.weight = Parameter(_weight, requires_grad=not _freeze)
            return
        self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype))
        self.reset_parameters()
        if device is not None:
            self.to(device)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, **kwargs):
        """An Embedding holding `embeddings` (rows), trainable unless freeze."""
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx=padding_idx, _weight=embeddings, _freeze=freeze)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight._data[self.padding_idx] = 0

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


# ---------------------------------------------------------------- losses
class CrossEntropyLoss(Module):
    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class MSELoss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


# ---------------------------------------------------------------- containers
def _plain(m):
    """m runs only its class's forward: no forward hooks, no forward set on the instance."""
    d = m.__dict__
    return not d.get("_hooks") and "forward" not in d


class Sequential(Module):
    """Modules applied in order; children are named "0", "1", ... (or by an OrderedDict)."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for k, m in modules[0].items():
                setattr(self, k, m)
        else:
            for i, m in enumerate(modules):
                setattr(self, str(i), m)

    def forward(self, input):
        mods = list(self._modules.values())
        i, n = 0, len(mods)
        while i < n:
            m = mods[i]
            # a plain Linear then a plain ReLU run as one op (one node, ReLU in the GEMM's
            # epilogue); nothing outside can see the Linear's output unless a hook or a
            # replaced forward is there, and then they run as two
            if (type(m) is Linear and i + 1 < n and type(mods[i + 1]) is ReLU
                    and _plain(m) and _plain(mods[i + 1])):
                input = F._linear_relu(input, m.weight, m.bias)
                i += 2
                continue
            input = m(input)
            i += 1
        return input

    def __getitem__(self, i):
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*mods[i])
        return mods[i]

    def __setitem__(self, i, module):
        setattr(self, list(self._modules)[i], module)  # model[-1] = nn.Linear(...), as PyTorch

    def __delitem__(self, i):
        keys = list(self._modules)
        drop = set(keys[i] if isinstance(i, slice) else [keys[i]])
        kept = [m for k, m in self._modules.items() if k not in drop]
        self._modules.clear()  # renumbered, as PyTorch's
        for j, m in enumerate(kept):
            self._modules[str(j)] = m

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        setattr(self, str(len(self._modules)), module)
        return self


class ModuleList(Module):
    def __init__(self, modules=None):
        super().__init__()
        for m in modules or ():
            self.append(m)

    def append(self, module):
        setattr(self, str(len(self._modules)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, i):
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return ModuleList(mods[i])
        return mods[i]

    def __setitem__(self, i, module):
        key = list(self._modules)[i]
        setattr(self, key, module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    def __init__(self, modules=None):
        super().__init__()
        for k, m in (modules or {}).items():
            setattr(self, k, m)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        setattr(self, key, module)

    def __contains__(self, key):
        return key in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()


class ParameterList(Module):
    """A list of Parameters registered as "0", "1", ... (tensors are wrapped as Parameters)."""

    def __init__(self, values=None):
        super().__init__()
        for v in values or ():
            self.append(v)

    def append(self, value):
        if not isinstance(value, Parameter):
            value = Parameter(value)
        setattr(self, str(len(self._parameters)), value)
        return self

    def extend(self, values):
        for v in values:
            self.append(v)
        return self

    def __getitem__(self, i):
        params = list(self._parameters.values())
        if isinstance(i, slice):
            return ParameterList(params[i])
        return params[i]

    def __setitem__(self, i, value):
        key = list(self._parameters)[i]
        setattr(self, key, value if isinstance(value, Parameter) else Parameter(value))

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())


class ParameterDict(Module):
    """A dict of Parameters registered under their keys."""

    def __init__(self, parameters=None):
        super().__init__()
        for k, v in (parameters or {}).items():
            self[k] = v

    def __getitem__(self, key):
        return self._parameters[key]

    def __setitem__(self, key, value):
        setattr(self, key, value if isinstance(value, Parameter) else Parameter(value))

    def __contains__(self, key):
        return key in self._parameters

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def keys(self):
        return self._parameters.keys()

    def values(self):
        return self._parameters.values()

    def items(self):
        return self._parameters.items()
