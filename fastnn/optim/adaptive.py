"""Adadelta, Adagrad, RMSprop, Adamax, NAdam, RAdam, Rprop, ASGD, Adafactor and Muon: PyTorch's
update rules, defaults and argument names, in numpy (vectorized, in place on the parameter and
its state buffers).

Each class's docstring gives its rule; g is the gradient (negated when maximize=True), with
weight_decay * p added to it (L2), or for NAdam/RAdam with decoupled_weight_decay=True the
parameter shrunk first by p *= 1 - lr * weight_decay (AdamW's way). State buffers have the
parameter's dtype and PyTorch's names, so state dicts move between the two libraries.
"""
import math

import numpy as np

from .optimizer import Optimizer, _check_unsupported, _grad, _scalar_dtype

__all__ = ["Adadelta", "Adagrad", "RMSprop", "Adamax", "NAdam", "RAdam", "Rprop", "ASGD",
           "Adafactor", "Muon"]


def _check(name, lr=0.0, eps=0.0, weight_decay=0.0, betas=None, **ranges):
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    if betas is not None:
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {b}")
    for k, (v, lo, hi) in ranges.items():
        if not lo <= v <= hi:
            raise ValueError(f"Invalid {k} value: {v}")


def _grads(opt, group):
    """(param array, gradient, state) of each parameter of group that has a gradient; the
    gradient negated for maximize and with the L2 weight decay added (a new array: gradient
    arrays are never written into)."""
    wd = float(group["weight_decay"])
    decoupled = group.get("decoupled_weight_decay", False)
    maximize = group.get("maximize", False)
    for p in group["params"]:
        g = _grad(p)
        if g is None:
            continue
        if maximize:
            g = np.negative(g)
        if wd != 0 and not decoupled:
            g = g + wd * p._data
        yield p, p._data, g, opt.state[p]


def _lerp_(a, b, w):
    """a = lerp(a, b, w) in place, as PyTorch computes it (two forms, by the size of w)."""
    if abs(w) < 0.5:
        a += w * (b - a)
    else:
        a[...] = b - (b - a) * (1 - w)


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012):
        v = rho v + (1 - rho) g^2;  delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho u + (1 - rho) delta^2;  p = p - lr * delta
    State: step, square_avg (v), acc_delta (u)."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        _check("Adadelta", lr, eps, weight_decay, rho=(rho, 0.0, 1.0))
        _check_unsupported("Adadelta", capturable=capturable, differentiable=differentiable)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize, capturable=capturable, foreach=foreach,
                                      differentiable=differentiable))

    def _step(self):
        for group in self.param_groups:
            lr, rho, eps = float(group["lr"]), float(group["rho"]), float(group["eps"])
            for _, p, g, st in _grads(self, group):
                if not st:
                    st["step"] = 0
                    st["square_avg"] = np.zeros_like(p)
                    st["acc_delta"] = np.zeros_like(p)
                st["step"] += 1
                v, u = st["square_avg"], st["acc_delta"]
                v *= rho
                v += (1 - rho) * g * g
                std = np.sqrt(v + eps)
                delta = np.sqrt(u + eps)
                delta /= std
                delta *= g
                u *= rho
                u += (1 - rho) * delta * delta
                delta *= lr
                p -= delta


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011):
        clr = lr / (1 + (t - 1) lr_decay);  s = s + g^2;  p = p - clr * g / (sqrt(s) + eps)
    State (created at construction, as PyTorch's): step, sum (s, starting at
    initial_accumulator_value)."""

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        _check("Adagrad", lr, eps, weight_decay, lr_decay=(lr_decay, 0.0, math.inf),
               initial_accumulator_value=(initial_accumulator_value, 0.0, math.inf))
        _check_unsupported("Adagrad", differentiable=differentiable)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps,
                                      weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, fused=fused))
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p, group):
        st = self.state[p]
        if not st:
            st["step"] = 0
            st["sum"] = np.full_like(p._data, group["initial_accumulator_value"])

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        if hasattr(self, "state"):
            group = self.param_groups[-1]
            for p in group["params"]:
                self._init_state(p, group)

    def _step(self):
        for group in self.param_groups:
            lr, lr_decay, eps = float(group["lr"]), float(group["lr_decay"]), float(group["eps"])
            for _, p, g, st in _grads(self, group):
                if not st:
                    self._init_state(_, group)
                st["step"] += 1
                clr = lr / (1 + (st["step"] - 1) * lr_decay)
                s = st["sum"]
                s += g * g
                std = np.sqrt(s)
                std += eps
                p -= clr * (g / std)


class RMSprop(Optimizer):
    """RMSprop (Hinton), PyTorch's form:
        v = alpha v + (1 - alpha) g^2;  centered: a = lerp(a, g, 1 - alpha), d = sqrt(v - a^2)
        else d = sqrt(v);  d = d + eps
        momentum > 0: b = momentum b + g / d, p = p - lr b;  else p = p - lr g / d
    State: step, square_avg (v), momentum_buffer (b, when momentum > 0), grad_avg (a, centered)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        _check("RMSprop", lr, eps, weight_decay, momentum=(momentum, 0.0, math.inf),
               alpha=(alpha, 0.0, math.inf))
        _check_unsupported("RMSprop", capturable=capturable, differentiable=differentiable)
        super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps,
                                      centered=centered, weight_decay=weight_decay,
                                      capturable=capturable, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable))

    def _step(self):
        for group in self.param_groups:
            lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
            momentum, centered = float(group["momentum"]), bool(group["centered"])
            for _, p, g, st in _grads(self, group):
                if not st:
                    st["step"] = 0
                    st["square_avg"] = np.zeros_like(p)
                    if momentum > 0:
                        st["momentum_buffer"] = np.zeros_like(p)
                    if centered:
                        st["grad_avg"] = np.zeros_like(p)
                st["step"] += 1
                v = st["square_avg"]
                v *= alpha
                v += (1 - alpha) * g * g
                if centered:
                    a = st["grad_avg"]
                    _lerp_(a, g, 1 - alpha)
                    avg = v - a * a
                    np.sqrt(avg, out=avg)
                else:
                    avg = np.sqrt(v)
                avg += eps
                if momentum > 0:
                    b = st["momentum_buffer"]
                    b *= momentum
                    b += g / avg
                    p -= lr * b
                else:
                    p -= lr * (g / avg)


class Adamax(Optimizer):
    """Adamax (Kingma & Ba 2014, Adam with the infinity norm):
        m = lerp(m, g, 1 - beta1);  u = max(beta2 u, |g| + eps)
        p = p - lr / (1 - beta1^t) * m / u
    State: step, exp_avg (m), exp_inf (u)."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 foreach=None, *, maximize=False, differentiable=False, capturable=False):
        _check("Adamax", lr, eps, weight_decay, betas)
        _check_unsupported("Adamax", capturable=capturable, differentiable=differentiable)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable,
                                      capturable=capturable))

    def _step(self):
        for group in self.param_groups:
            lr, eps = float(group["lr"]), float(group["eps"])
            b1, b2 = (float(b) for b in group["betas"])
            for _, p, g, st in _grads(self, group):
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = np.zeros_like(p)
                    st["exp_inf"] = np.zeros_like(p)
                st["step"] += 1
                m, u = st["exp_avg"], st["exp_inf"]
                _lerp_(m, g, 1 - b1)
                u *= b2
                np.maximum(u, np.abs(g) + eps, out=u)
                clr = lr / (1 - b1 ** st["step"])
                p -= clr * (m / u)


class NAdam(Optimizer):
    """NAdam (Dozat 2016, Adam with Nesterov momentum), PyTorch's rule with momentum decay:
        mu_t = beta1 (1 - 0.96^(t psi) / 2), psi = momentum_decay;  P_t = prod of mu_1..mu_t
        m = lerp(m, g, 1 - beta1);  v = beta2 v + (1 - beta2) g^2
        d = sqrt(v / (1 - beta2^t)) + eps
        p = p - lr (1 - mu_t) / (1 - P_t) g / d - lr mu_{t+1} / (1 - P_t mu_{t+1}) m / d
    State: step, mu_product (P_t, a scalar of PyTorch's scalar dtype: float32 unless the default
    dtype is float64), exp_avg (m), exp_avg_sq (v)."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, foreach=None,
                 maximize=False, capturable=False, differentiable=False):
        _check("NAdam", lr, eps, weight_decay, betas,
               momentum_decay=(momentum_decay, 0.0, math.inf))
        _check_unsupported("NAdam", capturable=capturable, differentiable=differentiable)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize, foreach=foreach,
                                      capturable=capturable, differentiable=differentiable))

    def _step(self):
        for group in self.param_groups:
            lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
            b1, b2 = (float(b) for b in group["betas"])
            psi = float(group["momentum_decay"])
            decoupled = group.get("decoupled_weight_decay", False)
            for _, p, g, st in _grads(self, group):
                if not st:
                    st["step"] = 0
                    st["mu_product"] = np.ones((), _scalar_dtype())
                    st["exp_avg"] = np.zeros_like(p)
                    st["exp_avg_sq"] = np.zeros_like(p)
                st["step"] += 1
                t = float(st["step"])
                if wd != 0 and decoupled:
                    p *= 1 - lr * wd
                mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
                mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
                prod = np.asarray(st["mu_product"])
                prod = st["mu_product"] = (prod * prod.dtype.type(mu)).astype(prod.dtype)
                prod = float(prod)
                m, v = st["exp_avg"], st["exp_avg_sq"]
                _lerp_(m, g, 1 - b1)
                v *= b2
                v += (1 - b2) * g * g
                denom = v / (1 - b2 ** t)
                np.sqrt(denom, out=denom)
                denom += eps
                prod_next = prod * mu_next
                p += (-lr * (1.0 - mu) / (1.0 - prod)) * (g / denom)
                p += ((-lr * mu_next) / (1.0 - prod_next)) * (m / denom)


class RAdam(Optimizer):
    """RAdam (Liu et al. 2019, rectified Adam):
        m = lerp(m, g, 1 - beta1);  v = beta2 v + (1 - beta2) g^2;  mh = m / (1 - beta1^t)
        rho_inf = 2 / (1 - beta2) - 1;  rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        rho_t > 5: r = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t)),
                   p = p - lr mh r sqrt(1 - beta2^t) / (sqrt(v) + eps)
        else:      p = p - lr mh
    State: step, exp_avg (m), exp_avg_sq (v)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False,
                 capturable=False, differentiable=False):
        _check("RAdam", lr, eps, weight_decay, betas)
        _check_unsupported("RAdam", capturable=capturable, differentiable=differentiable)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, maximize=maximize,
                                      foreach=foreach, capturable=capturable,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      differentiable=differentiable))

    def _step(self):
        for group in self.param_groups:
            lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
            b1, b2 = (float(b) for b in group["betas"])
            decoupled = group.get("decoupled_weight_decay", False)
            for _, p, g, st in _grads(self, group):
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = np.zeros_like(p)
                    st["exp_avg_sq"] = np.zeros_like(p)
                st["step"] += 1
                t = float(st["step"])
                if wd != 0 and decoupled:
                    p *= 1 - lr * wd
                m, v = st["exp_avg"], st["exp_avg_sq"]
                _lerp_(m, g, 1 - b1)
                v *= b2
                v += (1 - b2) * g * g
                bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
                mh = m / bc1
                rho_inf = 2 / (1 - b2) - 1
                rho_t = rho_inf - 2 * t * (b2 ** t) / bc2
                if rho_t > 5.0:
                    rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                                     / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                    denom = np.sqrt(v)
                    denom += eps
                    adaptive = math.sqrt(bc2) / denom
                    mh *= lr
                    mh *= adaptive
                    mh *= rect
                    p -= mh
                else:
                    mh *= lr
                    p -= mh


class Rprop(Optimizer):
    """Rprop (resilient backpropagation), PyTorch's form: each element's step size grows by
    etas[1] while its gradient keeps its sign and shrinks by etas[0] when the sign flips (then
    that element skips the update and forgets its gradient), within step_sizes:
        p = p - sign(g) * step_size
    State: step, prev (the last gradient used), step_size (starting at lr)."""

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        _check_unsupported("Rprop", capturable=capturable, differentiable=differentiable)
        super().__init__(params, dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes),
                                      foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, capturable=capturable))

    def _step(self):
        for group in self.param_groups:
            etaminus, etaplus = (float(e) for e in group["etas"])
            smin, smax = (float(s) for s in group["step_sizes"])
            maximize = group.get("maximize", False)
            for p in group["params"]:
                g = _grad(p)
                if g is None:
                    continue
                g = -g if maximize else g.copy()
                st = self.state[p]
                data = p._data
                if not st:
                    st["step"] = 0
                    st["prev"] = np.zeros_like(data)
                    st["step_size"] = np.full_like(data, group["lr"])
                st["step"] += 1
                prod = g * st["prev"]
                factor = np.where(prod > 0, etaplus, np.where(prod < 0, etaminus, 1.0))
                size = st["step_size"]
                size *= factor.astype(size.dtype)
                np.clip(size, smin, smax, out=size)
                g[prod < 0] = 0
                data -= np.sign(g) * size
                st["prev"][...] = g


class ASGD(Optimizer):
    """Averaged SGD (Polyak & Juditsky), PyTorch's rule:
        p = p (1 - lambd eta) - eta g;  ax = p while mu == 1, else ax + mu (p - ax)
        eta = lr / (1 + lambd lr t)^alpha;  mu = 1 / max(1, t - t0)
    State: step, eta, mu (scalars of PyTorch's scalar dtype: float32 unless the default dtype is
    float64), ax (the average)."""

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0,
                 foreach=None, maximize=False, differentiable=False, capturable=False):
        _check("ASGD", lr, 0.0, weight_decay)
        _check_unsupported("ASGD", capturable=capturable, differentiable=differentiable)
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0,
                                      weight_decay=weight_decay, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable,
                                      capturable=capturable))

    def _step(self):
        sdt = _scalar_dtype()
        for group in self.param_groups:
            lr, lambd = float(group["lr"]), float(group["lambd"])
            alpha, t0 = float(group["alpha"]), float(group["t0"])
            for _, p, g, st in _grads(self, group):
                if not st:
                    st["step"] = 0
                    st["eta"] = np.array(lr, sdt)
                    st["mu"] = np.ones((), sdt)
                    st["ax"] = np.zeros_like(p)
                st["step"] += 1
                t = float(st["step"])
                eta = float(st["eta"])
                p *= 1 - lambd * eta
                p -= eta * g
                mu = float(st["mu"])
                if mu != 1:
                    ax = st["ax"]
                    ax += (p - ax) * mu
                else:
                    st["ax"][...] = p
                st["eta"] = np.array(lr / ((1 + lambd * lr * t) ** alpha), sdt)
                st["mu"] = np.array(1 / max(1, t - t0), sdt)


class Adafactor(Optimizer):
    """Adafactor (Shazeer & Stern 2018), PyTorch's form: the second moment of a matrix gradient
    kept factored, as row and column means of g^2 (batched over leading dimensions):
        beta2_t = 1 - t^beta2_decay;  rho = min(lr, 1/sqrt(t));  a = max(eps2, RMS(p)) rho
        p = p (1 - lr weight_decay)
        R = lerp(R, mean_cols(g^2), 1 - beta2_t);  C = lerp(C, mean_rows(g^2), 1 - beta2_t)
        V = R C / max(mean(R), eps1)   (vectors: V = lerp(V, g^2, 1 - beta2_t))
        u = g / sqrt(max(V, eps1^2));  p = p - a u / max(1, RMS(u) / d)
    eps = (eps1, eps2); eps1 None means the dtype's machine epsilon.
    State: step, row_var and col_var (matrices and up) or variance (vectors)."""

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0,
                 weight_decay=0.0, *, foreach=None, maximize=False):
        if not 0.0 <= lr:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 >= beta2_decay:
            raise ValueError(f"beta2_decay should be <= 0 but is: {beta2_decay}")
        if eps[0] is not None and not 0.0 <= eps[0]:
            raise ValueError(f"epsilon1 should be >= 0 but is: {eps[0]}")
        if not 0.0 <= eps[1]:
            raise ValueError(f"epsilon2 should be >= 0 but is: {eps[1]}")
        if not 1.0 <= d:
            raise ValueError(f"Clipping threshold d should be >= 1 but is: {d}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight_decay should be >= 0 but is: {weight_decay}")
        super().__init__(params, dict(lr=lr, beta2_decay=beta2_decay, eps=tuple(eps), d=d,
                                      weight_decay=weight_decay, foreach=foreach,
                                      maximize=maximize))

    def _step(self):
        for group in self.param_groups:
            lr, decay, d = float(group["lr"]), float(group["beta2_decay"]), float(group["d"])
            wd = float(group["weight_decay"])
            eps1, eps2 = group["eps"]
            for p in group["params"]:
                g = _grad(p)
                if g is None:
                    continue
                if group.get("maximize", False):
                    g = -g
                data = p._data
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    if g.ndim > 1:
                        st["row_var"] = np.zeros(g.shape[:-1] + (1,), data.dtype)
                        st["col_var"] = np.zeros(g.shape[:-2] + (1, g.shape[-1]), data.dtype)
                    else:
                        st["variance"] = np.zeros_like(data)
                st["step"] += 1
                t = float(st["step"])
                e1 = float(np.finfo(data.dtype).eps) if eps1 is None else float(eps1)
                one_minus_beta2 = 1 - (1 - t ** decay)
                rho = min(lr, 1 / math.sqrt(t))
                rms = float(np.linalg.norm(data.reshape(-1))) / math.sqrt(data.size)
                alpha = max(float(eps2), rms) * rho
                if wd != 0:
                    data *= 1 - lr * wd
                g2 = g * g
                if g.ndim > 1:
                    r, c = st["row_var"], st["col_var"]
                    _lerp_(r, g2.mean(axis=-1, keepdims=True), one_minus_beta2)
                    _lerp_(c, g2.mean(axis=-2, keepdims=True), one_minus_beta2)
                    var = r @ c
                    var /= np.maximum(r.mean(axis=-2, keepdims=True), e1)
                else:
                    v = st["variance"]
                    _lerp_(v, g2, one_minus_beta2)
                    var = v.copy()
                np.maximum(var, e1 * e1, out=var)
                update = g / np.sqrt(var)
                denom = max(1.0, float(np.linalg.norm(update.reshape(-1)))
                            / (math.sqrt(update.size) * d))
                data -= (alpha / denom) * update


def _bfloat16(x):
    """x rounded to bfloat16 (round to nearest even, through float32 as PyTorch casts), held in a
    float32 array: the top 16 bits of each float32."""
    x = np.asarray(x, np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    out = rounded.view(np.float32)
    return np.where(np.isnan(x), x, out)


def _newton_schulz_bf16(g, coefficients, steps, eps):
    """The Newton-Schulz iteration of Muon, orthogonalizing g (X <- a X + (b A + c A^2) X with
    A = X X^T, on X = g / |g|), in bfloat16 arithmetic as PyTorch's Muon computes it: each
    operation's result rounded to bfloat16 (products accumulated in higher precision)."""
    a, b, c = (np.float32(v) for v in coefficients)
    x = _bfloat16(g)
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    norm = float(_bfloat16(np.linalg.norm(x.astype(np.float64))))
    x = _bfloat16(x / np.float32(max(norm, eps)))
    for _ in range(steps):  # float32 products and sums, each result rounded to bfloat16
        gram = _bfloat16(x @ x.T)
        update = _bfloat16(b * gram + c * (gram @ gram))
        x = _bfloat16(a * x + update @ x)
    return x.T if transposed else x


class Muon(Optimizer):
    """Muon (Jordan et al. 2024) for 2-D parameters, PyTorch's form: SGD momentum (Nesterov by
    default), the update orthogonalized by ns_steps Newton-Schulz iterations (in bfloat16, as
    PyTorch), decoupled weight decay, and the lr scaled for the matrix shape (A, B):
        b = lerp(b, g, 1 - momentum);  u = lerp(g, b, momentum) (nesterov) or b
        p = p (1 - lr weight_decay);  p = p - lr' NS(u)
        lr' = lr sqrt(max(1, A / B)) ('original', the default) or 0.2 lr sqrt(max(A, B))
        ('match_rms_adamw')
    State: momentum_buffer."""

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=(3.4445, -4.775, 2.0315), eps=1e-7, ns_steps=5,
                 adjust_lr_fn=None):
        if not 0.0 <= lr:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 <= momentum:
            raise ValueError(f"momentum should be >= 0 but is: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight decay should be >= 0 but is: {weight_decay}")
        if adjust_lr_fn is not None and adjust_lr_fn not in ("original", "match_rms_adamw"):
            raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                                      nesterov=nesterov, ns_coefficients=tuple(ns_coefficients),
                                      eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn))
        for group in self.param_groups:
            for p in group["params"]:
                if p._data.ndim != 2:
                    raise ValueError("Muon only supports 2D parameters whereas we found a "
                                     f"parameter with size: torch.Size({list(p._data.shape)})")

    def _step(self):
        for group in self.param_groups:
            lr, wd, mu = float(group["lr"]), float(group["weight_decay"]), float(group["momentum"])
            for p in group["params"]:
                g = _grad(p)
                if g is None:
                    continue
                data = p._data
                st = self.state[p]
                if not st:
                    st["momentum_buffer"] = np.zeros_like(data)
                buf = st["momentum_buffer"]
                _lerp_(buf, g, 1 - mu)
                if group["nesterov"]:
                    update = g.astype(data.dtype, copy=True)
                    _lerp_(update, buf, mu)
                else:
                    update = buf
                ortho = _newton_schulz_bf16(update, group["ns_coefficients"],
                                            int(group["ns_steps"]), float(group["eps"]))
                A, B = data.shape
                if group["adjust_lr_fn"] == "match_rms_adamw":
                    adjusted = 0.2 * math.sqrt(max(A, B))
                else:
                    adjusted = math.sqrt(max(1, A / B))
                data *= 1 - lr * wd
                data -= (lr * adjusted) * ortho.astype(data.dtype)
