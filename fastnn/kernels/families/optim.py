"""Optimizer updates, in place: sgd_step, adam_step (Adam and AdamW) and adam_multi_step (Adam
over a list of tensors in one call, gradient clipping folded in). C: csrc/ops_optim.c."""
import numpy as np

from ..registry import Bench, Gradient, declare
from .._checks import (_FLOATS, _at_least_1d, _check_range, _float_array, _gemm_operand,
                       _index_array, _ndim, _rows, _same_shape, get_backend, ready, resolve)
from . import examples as ex


# ---------------------------------------------------------------- optimizers
def _state_array(kernel, name, x, like):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{kernel}: {name} must be a numpy array (it is updated in place)")
    if x.dtype != like.dtype:
        raise TypeError(f"{kernel}: {name} has dtype {x.dtype} but param is {like.dtype}")
    if x.shape != like.shape:
        raise ValueError(f"{kernel}: {name} has shape {x.shape} but param has {like.shape}")
    if not x.flags.c_contiguous or not x.flags.writeable:
        raise ValueError(f"{kernel}: {name} must be a writeable C-contiguous array")
    return x.reshape(-1)


@declare(family="optimizers", doc="One in-place SGD update with PyTorch's rule (momentum, dampening, Nesterov, L2 decay).", signature="sgd_step(param (n,), grad (n,), buf (n,) or (0,), lr, momentum, dampening, nesterov, weight_decay, first): param and buf in place", examples=ex.sgd_step)
def sgd_step(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0,
             nesterov=False, weight_decay=0.0, first_step=False, backend=None):
    """One in-place SGD update with PyTorch's rule:
        d = grad + weight_decay * param
        buf = d (first step) or momentum * buf + (1 - dampening) * d
        d = d + momentum * buf (nesterov) or buf
        param -= lr * d
    momentum_buffer (same shape as param) is required when momentum != 0."""
    be = resolve(backend)
    if not isinstance(param, np.ndarray) or param.dtype not in _FLOATS:
        raise TypeError("sgd_step: param must be a float32 or float64 numpy array")
    p = _state_array("sgd_step", "param", param, param)
    g = _float_array("sgd_step", "grad", grad, param.dtype)
    if g.shape != param.shape:
        raise ValueError(f"sgd_step: grad has shape {g.shape} but param has {param.shape}")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("sgd_step: nesterov needs momentum > 0 and dampening == 0")
    if momentum != 0:
        if momentum_buffer is None:
            raise ValueError("sgd_step: momentum != 0 needs a momentum_buffer")
        buf = _state_array("sgd_step", "momentum_buffer", momentum_buffer, param)
    else:
        buf = np.empty(0, param.dtype)
    if p.size:
        be.sgd_step(p, g.reshape(-1), buf, float(lr), float(momentum), float(dampening),
                    bool(nesterov), float(weight_decay), bool(first_step))
    return param


@declare(family="optimizers", signature="adam_step(param (n,), grad (n,), m (n,), v (n,), step >= 1, lr, beta1, beta2, eps, weight_decay, decoupled): param, m, v in place", examples=ex.adam_step, bench=Bench("adamw"))
def adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
              weight_decay=0.0, decoupled=False, backend=None):
    """One in-place Adam update (PyTorch's rule, bias-corrected; step counts from 1).
    decoupled=True is AdamW: param *= 1 - lr * weight_decay instead of adding it to the grad."""
    be = resolve(backend)
    if not isinstance(param, np.ndarray) or param.dtype not in _FLOATS:
        raise TypeError("adam_step: param must be a float32 or float64 numpy array")
    p = _state_array("adam_step", "param", param, param)
    g = _float_array("adam_step", "grad", grad, param.dtype)
    if g.shape != param.shape:
        raise ValueError(f"adam_step: grad has shape {g.shape} but param has {param.shape}")
    m = _state_array("adam_step", "exp_avg", exp_avg, param)
    v = _state_array("adam_step", "exp_avg_sq", exp_avg_sq, param)
    if int(step) < 1:
        raise ValueError(f"adam_step: step must be >= 1, got {step}")
    b1, b2 = betas
    if p.size:
        be.adam_step(p, g.reshape(-1), m, v, int(step), float(lr), float(b1), float(b2),
                     float(eps), float(weight_decay), bool(decoupled))
    return param


def _as_list(kernel, name, xs):
    if isinstance(xs, np.ndarray) or not isinstance(xs, (list, tuple)):
        raise TypeError(f"{kernel}: {name} must be a list of numpy arrays, got "
                        f"{type(xs).__name__}")
    return list(xs)


@declare(family="optimizers", doc="Adam/AdamW over a list of tensors in one call (adam_step's numbers), every gradient times grad_scale.", signature="adam_multi_step([param], [grad], [m], [v] (lists; tensor k of any shape, C-contiguous, the same in all four), step >= 1, lr, beta1, beta2, eps, weight_decay, decoupled, grad_scale): every param, m, v in place", examples=ex.adam_multi_step)
def adam_multi_step(params, grads, exp_avgs, exp_avg_sqs, *, step, lr=1e-3, betas=(0.9, 0.999),
                    eps=1e-8, weight_decay=0.0, decoupled=False, grad_scale=1.0, backend=None):
    """adam_step over lists of tensors (one dtype, each with its own shape) in one call, every
    gradient read as grad_scale * grad: clip_grad_norm_'s scaling folded into the update (1.0,
    the default, changes nothing). Returns the params (a tuple), updated in place."""
    be = resolve(backend)
    k = "adam_multi_step"
    params = _as_list(k, "params", params)
    lists = [_as_list(k, n, x) for n, x in (("grads", grads), ("exp_avgs", exp_avgs),
                                            ("exp_avg_sqs", exp_avg_sqs))]
    for name, xs in zip(("grads", "exp_avgs", "exp_avg_sqs"), lists):
        if len(xs) != len(params):
            raise ValueError(f"{k}: {len(params)} params but {len(xs)} {name}")
    if not params:
        return ()
    p0 = params[0]
    if not isinstance(p0, np.ndarray) or p0.dtype not in _FLOATS:
        raise TypeError(f"{k}: params must be float32 or float64 numpy arrays")
    if len({id(p) for p in params}) != len(params):
        raise ValueError(f"{k}: a param appears twice in the list")
    flat = ([], [], [], [])
    for i, (p, g, m, v) in enumerate(zip(params, *lists)):
        if not isinstance(p, np.ndarray) or p.dtype != p0.dtype:
            raise TypeError(f"{k}: params[{i}] must be a numpy array of dtype {p0.dtype} (all "
                            f"params share one dtype)")
        flat[0].append(_state_array(k, f"params[{i}]", p, p))
        g = _float_array(k, f"grads[{i}]", g, p.dtype)
        if g.shape != p.shape:
            raise ValueError(f"{k}: grads[{i}] has shape {g.shape} but params[{i}] has "
                             f"{p.shape}")
        flat[1].append(g.reshape(-1))
        flat[2].append(_state_array(k, f"exp_avgs[{i}]", m, p))
        flat[3].append(_state_array(k, f"exp_avg_sqs[{i}]", v, p))
    if int(step) < 1:
        raise ValueError(f"{k}: step must be >= 1, got {step}")
    b1, b2 = betas
    be.adam_multi_step(*flat, int(step), float(lr), float(b1), float(b2), float(eps),
                       float(weight_decay), bool(decoupled), float(grad_scale))
    return tuple(params)




# ---------------------------------------------------------------- trusted entry points
_EMPTY = {np.dtype(np.float32): np.empty(0, np.float32), np.dtype(np.float64): np.empty(0, np.float64)}


def _state_ready(param, grad, *state):
    """One float dtype, equal shapes, C-contiguous, a writeable param and writeable state: what
    the fused update kernels need (the checked functions verify the same, slower). flags.carray
    is aligned, writeable and C-contiguous in one look-up."""
    dt = param.dtype
    if not ready(dt, param, grad) or not param.flags.writeable or grad.shape != param.shape:
        return False
    for s in state:
        if s.dtype is not dt or s.shape != param.shape or not s.flags.carray:
            return False
    return True


@sgd_step.kernel.set_trusted
def _sgd_step_trusted(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0,
                      nesterov=False, weight_decay=0.0, first_step=False):
    buf = momentum_buffer
    if _state_ready(param, grad, *(() if buf is None else (buf,))) and (
            momentum == 0 or buf is not None) and not (nesterov and (momentum <= 0
                                                                     or dampening != 0)):
        get_backend().sgd_step(param.reshape(-1), grad.reshape(-1),
                               _EMPTY[param.dtype] if buf is None else buf.reshape(-1),
                               float(lr), float(momentum), float(dampening), bool(nesterov),
                               float(weight_decay), bool(first_step))
        return param
    return sgd_step(param, grad, buf, lr=lr, momentum=momentum, dampening=dampening,
                    nesterov=nesterov, weight_decay=weight_decay, first_step=first_step)


@adam_step.kernel.set_trusted
def _adam_step_trusted(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, betas=(0.9, 0.999),
                       eps=1e-8, weight_decay=0.0, decoupled=False):
    if _state_ready(param, grad, exp_avg, exp_avg_sq) and step >= 1:
        get_backend().adam_step(param.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1),
                                exp_avg_sq.reshape(-1), int(step), float(lr), float(betas[0]),
                                float(betas[1]), float(eps), float(weight_decay), bool(decoupled))
        return param
    return adam_step(param, grad, exp_avg, exp_avg_sq, step=step, lr=lr, betas=betas, eps=eps,
                     weight_decay=weight_decay, decoupled=decoupled)


@adam_multi_step.kernel.set_trusted
def _adam_multi_step_trusted(params, grads, exp_avgs, exp_avg_sqs, *, step, lr=1e-3,
                             betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False,
                             grad_scale=1.0):
    # what the kernels rely on: one float dtype, equal shapes, contiguous, writeable params and
    # state (the kernels write p, m and v; a read-only m or v, e.g. np.frombuffer over bytes,
    # takes the checked path and its error). Any shape: each backend treats a tensor as flat,
    # so no reshape per tensor here. Checked every call, not cached per list of arrays: an
    # ndarray's dtype, shape, strides and writeable flag can all be reassigned in place, so a
    # cache keyed on identities could hand a kernel a stale size. flags.carray is aligned,
    # writeable and C-contiguous in one look-up.
    ok = step >= 1 and len(params) == len(grads) == len(exp_avgs) == len(exp_avg_sqs) > 0
    dt = params[0].dtype if ok else None
    ok = ok and dt in _FLOATS
    if ok:
        for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
            shape = p.shape
            if not (p.dtype is dt and g.dtype is dt and m.dtype is dt and v.dtype is dt
                    and g.shape == shape and m.shape == shape and v.shape == shape
                    and p.flags.carray and g.flags.c_contiguous and m.flags.carray
                    and v.flags.carray):
                ok = False
                break
    if ok and len(set(map(id, params))) == len(params):
        get_backend().adam_multi_step(
            list(params), list(grads), list(exp_avgs), list(exp_avg_sqs), int(step), float(lr),
            float(betas[0]), float(betas[1]), float(eps), float(weight_decay), bool(decoupled),
            float(grad_scale))
        return tuple(params)
    return adam_multi_step(params, grads, exp_avgs, exp_avg_sqs, step=step, lr=lr, betas=betas,
                           eps=eps, weight_decay=weight_decay, decoupled=decoupled,
                           grad_scale=grad_scale)
