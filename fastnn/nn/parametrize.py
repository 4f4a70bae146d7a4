"""Reparametrised weights, as torch.nn.utils: the parametrize API (register_parametrization,
remove_parametrizations, cached, is_parametrized), torch.nn.utils.parametrizations'
weight_norm and spectral_norm, and the older hook-based nn.utils.weight_norm / spectral_norm
(and their remove_ functions).

Names, state-dict keys and random draws follow PyTorch's: the new API stores
`parametrizations.weight.original0/original1` (weight norm's g and v) or
`parametrizations.weight.original` plus `parametrizations.weight.0._u/_v` (spectral norm); the
old one `weight_g`/`weight_v` or `weight_orig`/`weight_u`/`weight_v`. Spectral norm's u and v
start as normalised normal_() draws from fastnn's generator, in torch's order."""
import contextlib
import types

from ..tensor import Tensor, no_grad, mv, dot, empty
from .activations import normalize
from .modules import Module, ModuleDict, ModuleList, Parameter

__all__ = ["register_parametrization", "remove_parametrizations", "is_parametrized", "cached",
           "type_before_parametrizations", "ParametrizationList", "weight_norm",
           "remove_weight_norm", "spectral_norm", "remove_spectral_norm"]

_cache_enabled = [0]
_cache = {}


def norm_except_dim(v, pow=2, dim=0):
    """The p-norm of v over every dim but `dim` (kept as size 1 elsewhere); dim=-1: all dims."""
    if dim == -1:
        return v.norm(pow)
    if dim < 0:
        dim += v.ndim
    dims = tuple(d for d in range(v.ndim) if d != dim)
    return v.norm(pow, dims, keepdim=True) if dims else v.abs()


def _weight_norm(v, g, dim=0):
    return v * (g / norm_except_dim(v, 2, dim))


# ---------------------------------------------------------------- the parametrize API
class ParametrizationList(ModuleList):
    """The parametrizations of one tensor, applied in order, and its unparametrised original
    (`original`, or `original0`, `original1`... when right_inverse returns several tensors)."""

    def __init__(self, modules, original, unsafe=False):
        super().__init__(modules)
        self.unsafe = unsafe
        new = original
        with no_grad():
            for module in reversed(list(self)):
                if hasattr(module, "right_inverse"):
                    new = module.right_inverse(new)
        self.is_tensor = isinstance(new, Tensor)
        self.ntensors = 1 if self.is_tensor else len(new)
        if self.is_tensor:
            # the original Parameter keeps its identity (optimizers holding it keep working)
            with no_grad():
                if new is not original:
                    original._data = new._data.astype(original._data.dtype, copy=True)
                    original._vc[0] += 1
            self.original = original if isinstance(original, Parameter) else \
                Parameter(original._data, original.requires_grad)
        else:
            for i, t in enumerate(new):
                self.register_parameter(f"original{i}", Parameter(t.detach()._data.copy(),
                                                                  original.requires_grad))

    def right_inverse(self, value):
        with no_grad():
            for module in reversed(list(self)):
                if hasattr(module, "right_inverse"):
                    value = module.right_inverse(value)
            if self.is_tensor:
                self.original._data[...] = value._data
                self.original._vc[0] += 1
            else:
                for i, t in enumerate(value):
                    p = getattr(self, f"original{i}")
                    p._data[...] = t._data
                    p._vc[0] += 1

    def forward(self):
        if self.is_tensor:
            x = self[0](self.original)
        else:
            x = self[0](*(getattr(self, f"original{i}") for i in range(self.ntensors)))
        for module in list(self)[1:]:
            x = module(x)
        return x


def _parametrized_property(name):
    def get(self):
        plist = self.parametrizations[name]
        if _cache_enabled[0]:
            key = (id(self), name)
            if key not in _cache:
                _cache[key] = plist()
            return _cache[key]
        return plist()

    def set(self, value):
        self.parametrizations[name].right_inverse(value)
    return property(get, set)


def _parametrized_setattr(self, name, value):
    # assigning to a parametrised tensor goes through its right_inverse, as in torch
    if is_parametrized(self, name):
        self.parametrizations[name].right_inverse(value)
    else:
        Module.__setattr__(self, name, value)


def register_parametrization(module, tensor_name, parametrization, *, unsafe=False):
    """module.<tensor_name> becomes parametrization(original): the original tensor moves to
    module.parametrizations[tensor_name].original and every read of the attribute recomputes
    it. Registering a second parametrization on the same tensor chains them."""
    if not isinstance(parametrization, Module):
        raise TypeError(f"register_parametrization: the parametrization must be an nn.Module, "
                        f"got {type(parametrization).__name__}")
    if is_parametrized(module, tensor_name):
        module.parametrizations[tensor_name].append(parametrization)
        return module
    if tensor_name not in module._parameters and tensor_name not in module._buffers:
        raise ValueError(f"Module '{module}' does not have a parameter, a buffer, or a "
                         f"parametrized element with name '{tensor_name}'")
    original = getattr(module, tensor_name)
    if not unsafe:
        with no_grad():
            Y = parametrization(original)
        if not isinstance(Y, Tensor):
            raise ValueError(f"A parametrization must return a tensor. Got {type(Y).__name__}.")
    plist = ParametrizationList([parametrization], original, unsafe=unsafe)
    delattr(module, tensor_name)
    if not is_parametrized(module):
        cls = module.__class__
        # object.__setattr__: Module.__setattr__ would store __class__ as an attribute
        object.__setattr__(module, "__class__", type(
            f"Parametrized{cls.__name__}", (cls,),
            {"_fastnn_unparametrized": cls, "__setattr__": _parametrized_setattr}))
        module.parametrizations = ModuleDict()
    setattr(module.__class__, tensor_name, _parametrized_property(tensor_name))
    module.parametrizations[tensor_name] = plist
    return module


def is_parametrized(module, tensor_name=None):
    plist = module.__dict__.get("_modules", {}).get("parametrizations")
    if plist is None or not isinstance(plist, ModuleDict):
        return False
    return True if tensor_name is None else tensor_name in plist


def type_before_parametrizations(module):
    return getattr(type(module), "_fastnn_unparametrized", type(module))


def remove_parametrizations(module, tensor_name, leave_parametrized=True):
    """Undo register_parametrization: the attribute becomes a Parameter again, holding the
    current parametrised value (leave_parametrized) or the original."""
    if not is_parametrized(module, tensor_name):
        raise ValueError(f"Module {module} does not have a parametrization on {tensor_name}")
    plist = module.parametrizations[tensor_name]
    with no_grad():
        if leave_parametrized:
            value = getattr(module, tensor_name)
            if plist.is_tensor:
                orig = plist.original
                orig._data = value._data.astype(orig._data.dtype, copy=True)
                orig._vc[0] += 1
                new = orig
            else:
                new = Parameter(value._data.copy(), True)
        else:
            if not plist.is_tensor:
                raise ValueError("Cannot leave unparametrized (`leave_parametrized=False`) a "
                                 "tensor that is parametrized in terms of a sequence of "
                                 "tensors.")
            new = plist.original
    delattr(module.__class__, tensor_name)
    delattr(module.parametrizations, tensor_name)
    module.register_parameter(tensor_name, new)
    if len(module.parametrizations) == 0:
        delattr(module, "parametrizations")
        object.__setattr__(module, "__class__", module.__class__._fastnn_unparametrized)
    return module


@contextlib.contextmanager
def cached():
    """Within this block each parametrised tensor is computed once, on first use."""
    _cache_enabled[0] += 1
    try:
        yield
    finally:
        _cache_enabled[0] -= 1
        if not _cache_enabled[0]:
            _cache.clear()


# ---------------------------------------------------------------- parametrizations
class _WeightNorm(Module):
    def __init__(self, dim=0):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g, weight_v):
        return _weight_norm(weight_v, weight_g, self.dim)

    def right_inverse(self, weight):
        return norm_except_dim(weight, 2, self.dim), weight


def _reshape_to_matrix(weight, dim):
    if dim != 0:
        weight = weight.permute(dim, *[d for d in range(weight.ndim) if d != dim])
    return weight.reshape(weight.shape[0], -1)


class _SpectralNorm(Module):
    def __init__(self, weight, n_power_iterations=1, dim=0, eps=1e-12):
        super().__init__()
        ndim = weight.ndim
        if dim >= ndim or dim < -ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [-{ndim}, "
                             f"{ndim - 1}] but got {dim})")
        if n_power_iterations <= 0:
            raise ValueError(f"Expected n_power_iterations to be positive, but got "
                             f"n_power_iterations={n_power_iterations}")
        self.dim = dim if dim >= 0 else dim + ndim
        self.eps = eps
        if ndim > 1:
            self.n_power_iterations = n_power_iterations
            weight_mat = _reshape_to_matrix(weight, self.dim)
            h, w = weight_mat.shape
            u = empty(h, dtype=weight.dtype).normal_(0, 1)
            v = empty(w, dtype=weight.dtype).normal_(0, 1)
            self.register_buffer("_u", normalize(u, dim=0, eps=self.eps))
            self.register_buffer("_v", normalize(v, dim=0, eps=self.eps))
            self._power_method(weight_mat, 15)

    def _power_method(self, weight_mat, n):
        with no_grad():
            for _ in range(n):
                self._u.copy_(normalize(mv(weight_mat, self._v), dim=0, eps=self.eps))
                self._v.copy_(normalize(mv(weight_mat.T, self._u), dim=0, eps=self.eps))

    def forward(self, weight):
        if weight.ndim == 1:
            return normalize(weight, dim=0, eps=self.eps)
        weight_mat = _reshape_to_matrix(weight, self.dim)
        if self.training:
            self._power_method(weight_mat.detach(), self.n_power_iterations)
        u, v = self._u.clone(), self._v.clone()
        sigma = dot(u, mv(weight_mat, v))
        return weight / sigma

    def right_inverse(self, value):
        return value


def _default_sn_dim(module):
    from .conv import ConvTranspose2d
    names = ("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")
    return 1 if isinstance(module, ConvTranspose2d) or \
        type_before_parametrizations(module).__name__ in names else 0


def _pweight_norm(module, name="weight", dim=0):
    """torch.nn.utils.parametrizations.weight_norm: weight = g * v / ||v|| (norm over every dim
    but `dim`), with g = original0 and v = original1."""
    register_parametrization(module, name, _WeightNorm(dim), unsafe=True)
    return module


def _pspectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
    """torch.nn.utils.parametrizations.spectral_norm: weight / sigma, sigma the largest
    singular value estimated by power iteration (one step per training forward)."""
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if dim is None:
        dim = _default_sn_dim(module)
    register_parametrization(module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
    return module


parametrizations = types.ModuleType("fastnn.nn.utils.parametrizations",
                                    "torch.nn.utils.parametrizations: weight_norm, "
                                    "spectral_norm")
parametrizations.weight_norm = _pweight_norm
parametrizations.spectral_norm = _pspectral_norm


# ---------------------------------------------------------------- the older hook-based API
class _WeightNormHook:
    def __init__(self, name, dim):
        self.name, self.dim = name, dim

    def compute_weight(self, module):
        g = getattr(module, self.name + "_g")
        v = getattr(module, self.name + "_v")
        return _weight_norm(v, g, self.dim)

    def __call__(self, module, inputs):
        setattr(module, self.name, self.compute_weight(module))


def weight_norm(module, name="weight", dim=0):
    """torch.nn.utils.weight_norm: replaces `name` by `name_g` (magnitude) and `name_v`
    (direction), recombined before every forward."""
    hooks = module.__dict__.get("_hooks") or {"pre": {}}
    for hook in hooks["pre"].values():
        if isinstance(hook, _WeightNormHook) and hook.name == name:
            raise RuntimeError(f"Cannot register two weight_norm hooks on the same parameter "
                               f"{name}")
    fn = _WeightNormHook(name, -1 if dim is None else dim)
    weight = getattr(module, name)
    delattr(module, name)
    module.register_parameter(name + "_g", Parameter(norm_except_dim(weight, 2, fn.dim)
                                                     .detach()._data.copy()))
    module.register_parameter(name + "_v", Parameter(weight.detach()._data.copy()))
    setattr(module, name, fn.compute_weight(module))
    fn.handle = module.register_forward_pre_hook(fn)
    return module


def remove_weight_norm(module, name="weight"):
    hooks = module.__dict__.get("_hooks") or {"pre": {}}
    for key, hook in list(hooks["pre"].items()):
        if isinstance(hook, _WeightNormHook) and hook.name == name:
            with no_grad():
                weight = hook.compute_weight(module)
            delattr(module, name)
            delattr(module, name + "_g")
            delattr(module, name + "_v")
            module.register_parameter(name, Parameter(weight.detach()._data.copy()))
            del hooks["pre"][key]
            return module
    raise ValueError(f"weight_norm of '{name}' not found in {module}")


class _SpectralNormHook:
    def __init__(self, name, n_power_iterations, dim, eps):
        self.name, self.n_power_iterations, self.dim, self.eps = name, n_power_iterations, dim, eps

    def compute_weight(self, module, do_power_iteration):
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u")
        v = getattr(module, self.name + "_v")
        weight_mat = _reshape_to_matrix(weight, self.dim)
        if do_power_iteration:
            with no_grad():
                wm = weight_mat.detach()
                for _ in range(self.n_power_iterations):
                    v.copy_(normalize(mv(wm.T, u), dim=0, eps=self.eps))
                    u.copy_(normalize(mv(wm, v), dim=0, eps=self.eps))
            if self.n_power_iterations > 0:
                u, v = u.clone(), v.clone()
        sigma = dot(u, mv(weight_mat, v))
        return weight / sigma

    def __call__(self, module, inputs):
        setattr(module, self.name, self.compute_weight(module, module.training))


def spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
    """torch.nn.utils.spectral_norm: `name_orig` is the parameter, `name_u`/`name_v` buffers
    hold the power iteration's vectors, and the forward uses name_orig / sigma."""
    if dim is None:
        dim = _default_sn_dim(module)
    fn = _SpectralNormHook(name, n_power_iterations, dim, eps)
    weight = getattr(module, name)
    with no_grad():
        weight_mat = _reshape_to_matrix(weight, dim)
        h, w = weight_mat.shape
        u = normalize(empty(h, dtype=weight.dtype).normal_(0, 1), dim=0, eps=eps)
        v = normalize(empty(w, dtype=weight.dtype).normal_(0, 1), dim=0, eps=eps)
    delattr(module, name)
    module.register_parameter(name + "_orig", weight)
    setattr(module, name, weight.detach())
    module.register_buffer(name + "_u", u)
    module.register_buffer(name + "_v", v)
    fn.handle = module.register_forward_pre_hook(fn)
    return module


def remove_spectral_norm(module, name="weight"):
    hooks = module.__dict__.get("_hooks") or {"pre": {}}
    for key, hook in list(hooks["pre"].items()):
        if isinstance(hook, _SpectralNormHook) and hook.name == name:
            with no_grad():
                weight = hook.compute_weight(module, False)
            delattr(module, name)
            delattr(module, name + "_orig")
            delattr(module, name + "_u")
            delattr(module, name + "_v")
            module.register_parameter(name, Parameter(weight.detach()._data.copy()))
            del hooks["pre"][key]
            return module
    raise ValueError(f"spectral_norm of '{name}' not found in {module}")
