"""Parameter initializers with PyTorch's names, formulas and draws (in place, without grad).

Each one computes its bounds in the same float64 steps as torch.nn.init and then fills the tensor
with Tensor.uniform_/normal_, which draw PyTorch's numbers from fastnn's generator (or
`generator=`). So after fastnn.manual_seed(s), a layer initialised here holds the very weights
torch.manual_seed(s) gives PyTorch's layer.
"""
import math
import warnings

import numpy as np

from ..tensor import Tensor, _float_work, _gen, no_grad

__all__ = ["calculate_gain", "uniform_", "normal_", "zeros_", "ones_", "constant_",
           "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
           "trunc_normal_"]


def _fill(tensor, values):
    with no_grad():
        tensor.fill_(values)
    return tensor


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain."""
    if nonlinearity in ("linear", "sigmoid", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                        "conv_transpose2d", "conv_transpose3d"):
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor):
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 "
                         "dimensions")
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _empty(tensor):
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    with no_grad():
        return tensor.uniform_(a, b, generator=generator)


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    with no_grad():
        return tensor.normal_(mean, std, generator=generator)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Normal(mean, std) restricted to [a, b], drawn as torch 2.x draws it: where most of the
    mass is inside (> 0.3), whole-tensor normal draws replace the values outside until none
    is; otherwise rejection sampling from uniforms on [a, b]."""
    def norm_cdf(x):
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    if (mean < a - 2 * std) or (mean > b + 2 * std):
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The "
                      "distribution of values may be incorrect.", stacklevel=2)
    d = tensor._data
    g, n, work = _gen(generator), d.size, _float_work(d.dtype)
    p = norm_cdf((b - mean) / std) - norm_cdf((a - mean) / std)
    if p > 0.3:
        lo, hi = float(d.dtype.type(a)), float(d.dtype.type(b))
        out = g.normal_fill(n, work, mean, std).astype(d.dtype)
        while True:
            bad = (out < lo) | (out > hi)
            if not bad.any():
                break
            out = np.where(bad, g.normal_fill(n, work, mean, std).astype(d.dtype), out)
    else:   # the density's log against log(u), in the tensor's dtype (np.log: not bit-exact)
        dt = d.dtype.type
        mode = max(a, min(mean, b))
        log_peak = -0.5 * ((mode - mean) / std) ** 2

        def log_pdf(x):
            return ((((x - dt(mean)) / dt(std)) ** 2) * dt(-0.5) - dt(log_peak)).astype(d.dtype)
        out = g.uniform_fill(n, work, a, b).astype(d.dtype)
        cand = log_pdf(out)
        with np.errstate(divide="ignore"):
            pending = np.log(g.uniform_fill(n, work).astype(d.dtype)) > cand
        while pending.any():
            cand_x = g.uniform_fill(n, work, a, b).astype(d.dtype)
            out = np.where(pending, cand_x, out)
            cand = log_pdf(cand_x)
            with np.errstate(divide="ignore"):
                pending = np.where(pending,
                                   np.log(g.uniform_fill(n, work).astype(d.dtype)) > cand,
                                   pending)
    with no_grad():
        tensor.copy_(Tensor(out.reshape(d.shape)))
    return tensor


def zeros_(tensor):
    return _fill(tensor, 0)


def ones_(tensor):
    return _fill(tensor, 1)


def constant_(tensor, val):
    return _fill(tensor, val)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    if _empty(tensor):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    if _empty(tensor):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0, std, generator)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)
