"""Neural style transfer in fastnn (fastnn/models/style.py) vs the same algorithm written in
PyTorch CPU: the same random conv pyramid (the very same weights), the same relative content and
Gram losses, the same optimizer (L-BFGS with strong-Wolfe line search over sigmoid-parametrized
pixels, or Adam with clipping) from the same start.

    python bench/bench_style.py --threads 2          # the issue's targets: 256x256, 300 steps
    python bench/bench_style.py --size 128 --steps 100 --rounds 5
    pytest bench/bench_style.py --benchmark-only     # pytest-benchmark: one evaluation, each impl

It prints (1) one loss-and-gradient evaluation (forward through the network, the losses, and
backward to the pixels) timed alternately fastnn / PyTorch, medians of --rounds rounds, and
(2) whole transfers of --steps steps, alternately, with their seconds and the losses of both
results measured by the same (fastnn) objective.

Targets (issue 12): 300 steps at 256x256 in under 60 s on 2 cores; no slower than PyTorch.
Without PyTorch, only fastnn's figures are printed.
"""
import argparse
import statistics
import sys
import time

import numpy as np
import pytest

import fastnn
from fastnn.data import load_image
from fastnn.models.style import DEFAULT_CHANNELS, RandomFeatures, StyleObjective, transfer

STYLE_WEIGHT = 10.0


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def images(size):
    return load_image("sample:china", size=size), load_image("sample:flower", size=size)


def make_objective(size, channels=DEFAULT_CHANNELS, style_weight=STYLE_WEIGHT, seed=0):
    content, style = images(size)
    return StyleObjective(RandomFeatures(channels, seed=seed), content, style,
                          style_weight=style_weight)


class TorchStyle:
    """The PyTorch twin of a fastnn StyleObjective built on RandomFeatures: its weights, targets
    and loss formulas, in torch ops."""

    def __init__(self, objective):
        import torch
        self.torch = torch
        net = objective.features
        self.weights = [torch.from_numpy(c.weight._data.copy()) for c in net.convs]
        self.pad = [c.padding[0] for c in net.convs]
        self.obj = objective
        self.content = torch.from_numpy(objective.content)
        self.p = torch.from_numpy(objective._p)
        self.a = [torch.from_numpy(a) for a in objective._a]

    def features(self, x):
        F = self.torch.nn.functional
        out, h = [], x - 0.5
        for k, (w, pad) in enumerate(zip(self.weights, self.pad)):
            if k:
                h = F.avg_pool2d(h, 2)
            h = F.relu(F.conv2d(h, w, padding=pad))
            out.append(h)
        return out

    @staticmethod
    def gram(f):
        c, h, w = f.shape[-3:]
        m = f.reshape(c, h * w)
        return m @ m.T / (h * w)

    def losses(self, x):
        o = self.obj
        feats = self.features(x)
        content = ((feats[o.content_layer] - self.p) ** 2).sum() / o._p_norm
        style = sum(((self.gram(feats[k]) - a) ** 2).sum() / (n * len(self.a))
                    for k, a, n in zip(o.style_layers, self.a, o._a_norm))
        return content, style, o.content_weight * content + o.style_weight * style

    def transfer(self, steps, optimizer="lbfgs", history_size=20):
        """transfer() of fastnn/models/style.py, in torch: returns (image, evaluations)."""
        torch = self.torch
        sigmoid = optimizer == "lbfgs"
        x0 = self.content.clone()
        if sigmoid:
            c = x0.clamp(1e-3, 1 - 1e-3)
            x0 = torch.log(c / (1 - c))
        z = x0.requires_grad_(True)
        count = [0]

        def closure():
            z.grad = None
            _, _, total = self.losses(z.sigmoid() if sigmoid else z)
            total.backward()
            count[0] += 1
            return total

        if optimizer == "adam":
            opt = torch.optim.Adam([z], lr=0.02)
            for _ in range(steps):
                opt.zero_grad()
                closure()
                opt.step()
                with torch.no_grad():
                    z.clamp_(0, 1)
        else:
            opt = torch.optim.LBFGS([z], lr=1.0, max_iter=steps, max_eval=steps,
                                    history_size=history_size, tolerance_grad=0.0,
                                    tolerance_change=0.0, line_search_fn="strong_wolfe")
            while count[0] < steps:
                left = steps - count[0]
                opt.param_groups[0]["max_iter"] = opt.param_groups[0]["max_eval"] = left
                before = count[0]
                opt.step(closure)
                if count[0] == before + 1:
                    break
        out = (z.sigmoid() if sigmoid else z).detach()
        return out[0].clamp(0, 1).numpy().copy(), count[0]


def fastnn_eval(objective):
    """A closure: one loss-and-gradient evaluation in fastnn."""
    x = fastnn.from_numpy(objective.content.copy()).requires_grad_(True)

    def step():
        x.grad = None
        objective.losses(x.sigmoid())["total"].backward()
    return step


def torch_eval(objective):
    twin = TorchStyle(objective)
    x = twin.content.clone().requires_grad_(True)

    def step():
        x.grad = None
        twin.losses(x.sigmoid())[2].backward()
    return step


# ---------------------------------------------------------------- pytest-benchmark
SIZES = {"tiny": 32, "quick": 128, "full": 256}


@pytest.mark.parametrize("impl", ["fastnn", "torch"])
def test_style_evaluation(benchmark, request, impl):
    size = SIZES[request.config.getoption("--fastnn-sizes", "quick")]
    obj = make_objective(size, channels=(8, 16, 16) if size <= 32 else DEFAULT_CHANNELS)
    if impl == "torch":
        pytest.importorskip("torch")
        step = torch_eval(obj)
    else:
        step = fastnn_eval(obj)
    step()
    benchmark.group = f"style evaluation {size}x{size}"
    benchmark(step)


def test_torch_twin_matches_fastnn():
    """The comparison is fair only if both compute the same thing."""
    torch = pytest.importorskip("torch")
    obj = make_objective(32, channels=(8, 16, 16))
    rng = np.random.default_rng(0)
    img = rng.random(obj.content.shape, dtype=np.float32)
    twin = TorchStyle(obj)
    c, s, _ = twin.losses(torch.from_numpy(img))
    mine = obj.measure(img[0])
    np.testing.assert_allclose([float(c), float(s)], [mine["content"], mine["style"]],
                               rtol=1e-4)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_torch_twin_transfer_matches_fastnn(optimizer):
    pytest.importorskip("torch")
    obj = make_objective(32, channels=(8, 16, 16))
    mine, _ = transfer(obj, steps=8, optimizer=optimizer)
    theirs, n = TorchStyle(obj).transfer(8, optimizer)
    assert n == 8
    np.testing.assert_allclose(theirs, mine, atol=2e-3)


# ---------------------------------------------------------------- python bench/bench_style.py
def _time(fn, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--rounds", type=int, default=7, help="alternating rounds of one evaluation")
    p.add_argument("--transfers", type=int, default=1,
                   help="whole transfers per side, alternately (0: none)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for fastnn and PyTorch alike (default: all cores)")
    p.add_argument("--backend", default=None, help="fastnn backend (default: the fastest)")
    args = p.parse_args(argv)
    if args.backend:
        fastnn.set_backend(args.backend)
    threads = args.threads or fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(threads)
    import os
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"fastnn {fastnn.__version__}, backend {fastnn.get_backend().name}, {threads} threads, "
          f"torch {torch.__version__ if torch else 'not installed'}; load average {load:.1f}")
    obj = make_objective(args.size)
    print(f"{args.size}x{args.size}, random features {DEFAULT_CHANNELS}, style weight "
          f"{STYLE_WEIGHT:g}")

    mine = fastnn_eval(obj)
    theirs = torch_eval(obj) if torch else None
    for _ in range(2):
        mine()
        if theirs:
            theirs()
    a, b = [], []
    for _ in range(args.rounds):
        a.append(_time(mine, 2))
        if theirs:
            b.append(_time(theirs, 2))
    line = f"one evaluation: fastnn {statistics.median(a) * 1e3:.0f} ms"
    if b:
        line += (f", PyTorch {statistics.median(b) * 1e3:.0f} ms, ratio "
                 f"{statistics.median(a) / statistics.median(b):.2f} (median of {args.rounds} "
                 f"alternating rounds; < 1: fastnn faster)")
    print(line)

    at_content = obj.measure(obj.content[0])
    twin = TorchStyle(obj) if torch else None
    for r in range(args.transfers):
        t, c = time.perf_counter(), time.process_time()
        out, hist = transfer(obj, steps=args.steps, optimizer=args.optimizer)
        tf, cf = time.perf_counter() - t, time.process_time() - c
        f = obj.measure(out)
        print(f"fastnn  {args.optimizer} {len(hist)} evaluations: {tf:.1f} s ({cf:.1f} s CPU), "
              f"content {f['content']:.3f}, style {f['style']:.4f} "
              f"({at_content['style'] / f['style']:.0f}x below the content image's)")
        if twin:
            t, c = time.perf_counter(), time.process_time()
            out_t, n = twin.transfer(args.steps, args.optimizer)
            tt, ct = time.perf_counter() - t, time.process_time() - c
            g = obj.measure(out_t)
            print(f"PyTorch {args.optimizer} {n} evaluations: {tt:.1f} s ({ct:.1f} s CPU), "
                  f"content {g['content']:.3f}, style {g['style']:.4f} "
                  f"({at_content['style'] / g['style']:.0f}x); time ratio {tf / tt:.2f}, CPU "
                  f"time ratio {cf / ct:.2f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(load average at the end {load:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
