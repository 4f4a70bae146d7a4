"""The diffusion denoiser written the naive way in plain numpy, as the training-time baseline.

Same architecture, initialization scheme, batch, optimizer (AdamW, weight decay 0) and EMA as
fastnn.models.diffusion, with hand-written backprop and every temporary a student would make.
Issue 6's target: fastnn's training takes at most half this baseline's time. Run:

    python bench/diffusion_baseline.py --steps 300      # times both, alternating, in one run
"""
import argparse
import math
import time

import numpy as np

SQ = math.sqrt(2 / math.pi)


def gelu(x):
    return 0.5 * x * (1 + np.tanh(SQ * (x + 0.044715 * x ** 3)))


def gelu_grad(x):
    t = np.tanh(SQ * (x + 0.044715 * x ** 3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * SQ * (1 + 3 * 0.044715 * x ** 2)


def linear_init(rng, fan_in, fan_out):
    bound = 1 / math.sqrt(fan_in)
    return [rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32),
            rng.uniform(-bound, bound, fan_out).astype(np.float32)]


class NumpyDenoiser:
    def __init__(self, hidden, n_blocks, time_dim, dim=64, n_classes=10, seed=0):
        rng = np.random.default_rng(seed)
        h = hidden
        self.time_dim = time_dim
        p = {}
        p["t1.w"], p["t1.b"] = linear_init(rng, time_dim, h)
        p["t2.w"], p["t2.b"] = linear_init(rng, h, h)
        p["emb"] = (rng.standard_normal((n_classes + 1, h)) * 0.1).astype(np.float32)
        p["inp.w"], p["inp.b"] = linear_init(rng, dim, h)
        for i in range(n_blocks):
            p[f"b{i}.ln.w"], p[f"b{i}.ln.b"] = np.ones(h, np.float32), np.zeros(h, np.float32)
            p[f"b{i}.cond.w"], p[f"b{i}.cond.b"] = linear_init(rng, h, h)
            p[f"b{i}.fc1.w"], p[f"b{i}.fc1.b"] = linear_init(rng, h, 2 * h)
            p[f"b{i}.fc2.w"], p[f"b{i}.fc2.b"] = linear_init(rng, 2 * h, h)
        p["lno.w"], p["lno.b"] = np.ones(h, np.float32), np.zeros(h, np.float32)
        p["out.w"], p["out.b"] = np.zeros((dim, h), np.float32), np.zeros(dim, np.float32)
        self.p, self.n_blocks = p, n_blocks

    def temb(self, t):
        half = self.time_dim // 2
        freqs = np.exp(-math.log(10000.0) * np.arange(half) / half)
        a = t[:, None] * freqs[None]
        return np.concatenate([np.sin(a), np.cos(a)], axis=1).astype(np.float32)

    @staticmethod
    def ln_fwd(x, w, b):
        mu = x.mean(axis=1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
        xhat = (x - mu) / np.sqrt(var + 1e-5)
        return xhat * w + b, (xhat, np.sqrt(var + 1e-5))

    @staticmethod
    def ln_bwd(dy, w, cache):
        xhat, std = cache
        dw = (dy * xhat).sum(axis=0)
        db = dy.sum(axis=0)
        g = dy * w
        dx = (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True)) / std
        return dx, dw, db

    def loss_and_grads(self, x, t, y, noise):
        p = self.p
        cache = {}
        te = self.temb(t)
        a1 = te @ p["t1.w"].T + p["t1.b"]
        c = gelu(a1) @ p["t2.w"].T + p["t2.b"] + p["emb"][y]
        h = x @ p["inp.w"].T + p["inp.b"]
        for i in range(self.n_blocks):
            z0, lnc = self.ln_fwd(h, p[f"b{i}.ln.w"], p[f"b{i}.ln.b"])
            z = z0 + c @ p[f"b{i}.cond.w"].T + p[f"b{i}.cond.b"]
            u = z @ p[f"b{i}.fc1.w"].T + p[f"b{i}.fc1.b"]
            gu = gelu(u)
            cache[i] = (h, lnc, z, u, gu)
            h = h + gu @ p[f"b{i}.fc2.w"].T + p[f"b{i}.fc2.b"]
        o0, lnco = self.ln_fwd(h, p["lno.w"], p["lno.b"])
        go = gelu(o0)
        pred = go @ p["out.w"].T + p["out.b"]
        diff = pred - noise
        loss = (diff ** 2).mean()
        g = {}
        dpred = 2 * diff / diff.size
        g["out.w"], g["out.b"] = dpred.T @ go, dpred.sum(0)
        do0 = (dpred @ p["out.w"]) * gelu_grad(o0)
        dh, g["lno.w"], g["lno.b"] = self.ln_bwd(do0, p["lno.w"], lnco)
        dc = np.zeros_like(c)
        for i in reversed(range(self.n_blocks)):
            hin, lnc, z, u, gu = cache[i]
            g[f"b{i}.fc2.w"], g[f"b{i}.fc2.b"] = dh.T @ gu, dh.sum(0)
            du = (dh @ p[f"b{i}.fc2.w"]) * gelu_grad(u)
            g[f"b{i}.fc1.w"], g[f"b{i}.fc1.b"] = du.T @ z, du.sum(0)
            dz = du @ p[f"b{i}.fc1.w"]
            g[f"b{i}.cond.w"], g[f"b{i}.cond.b"] = dz.T @ c, dz.sum(0)
            dc = dc + dz @ p[f"b{i}.cond.w"]
            dx, g[f"b{i}.ln.w"], g[f"b{i}.ln.b"] = self.ln_bwd(dz, p[f"b{i}.ln.w"], lnc)
            dh = dh + dx
        g["inp.w"], g["inp.b"] = dh.T @ x, dh.sum(0)
        demb = np.zeros_like(p["emb"])
        np.add.at(demb, y, dc)
        g["emb"] = demb
        g["t2.w"], g["t2.b"] = dc.T @ gelu(a1), dc.sum(0)
        da1 = (dc @ p["t2.w"]) * gelu_grad(a1)
        g["t1.w"], g["t1.b"] = da1.T @ te, da1.sum(0)
        return loss, g


class NumpyAdamW:
    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8):
        self.p, self.lr, self.b1, self.b2, self.eps = params, lr, betas[0], betas[1], eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads):
        self.t += 1
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            mhat = self.m[k] / (1 - self.b1 ** self.t)
            vhat = self.v[k] / (1 - self.b2 ** self.t)
            self.p[k] -= (self.lr * mhat / (np.sqrt(vhat) + self.eps)).astype(np.float32)


def numpy_train(steps, x_all, y_all, abar, config, batch=256, seed=0, ema_decay=0.995):
    rng = np.random.default_rng(seed)
    p_uncond = config.p_uncond
    net = NumpyDenoiser(config.hidden, config.n_blocks, config.time_dim, seed=seed)
    opt = NumpyAdamW(net.p, lr=2e-3)
    ema = {k: v.copy() for k, v in net.p.items()}
    losses = []
    for _ in range(steps):
        idx = rng.integers(0, len(x_all), batch)
        x0, y = x_all[idx], y_all[idx]
        t = rng.integers(0, len(abar), batch)
        noise = rng.standard_normal(x0.shape).astype(np.float32)
        y = np.where(rng.random(batch) < p_uncond, 10, y)
        ab = abar[t][:, None]
        xt = (np.sqrt(ab) * x0 + np.sqrt(1 - ab) * noise).astype(np.float32)
        loss, grads = net.loss_and_grads(xt, t, y, noise)
        opt.step(grads)
        for k in ema:
            ema[k] = ema_decay * ema[k] + (1 - ema_decay) * net.p[k]
        losses.append(float(loss))
    return losses


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; best is kept")
    args = ap.parse_args()

    import fastnn
    from fastnn.models import diffusion_cli
    from fastnn.models.diffusion import (DiffusionConfig, NoiseSchedule, digits_split,
                                         to_model_space)

    xtr, ytr, _, _ = digits_split()
    x_all, y_all = to_model_space(xtr), np.asarray(ytr, np.int64)
    abar = NoiseSchedule().abar
    best = {"numpy": math.inf, "fastnn": math.inf}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        numpy_train(args.steps, x_all, y_all, abar, DiffusionConfig())
        best["numpy"] = min(best["numpy"], time.perf_counter() - t0)
        _, _, secs = diffusion_cli.train(steps=args.steps, progress=False)
        best["fastnn"] = min(best["fastnn"], secs)
    print(f"diffusion training, {args.steps} steps of batch 256 (backend "
          f"{fastnn.get_backend().name}, {fastnn.get_num_threads()} threads):")
    print(f"  plain numpy baseline : {best['numpy']:7.2f} s")
    print(f"  fastnn               : {best['fastnn']:7.2f} s")
    print(f"  ratio fastnn/numpy   : {best['fastnn'] / best['numpy']:7.3f}  (target <= 0.5)")


if __name__ == "__main__":
    main()
