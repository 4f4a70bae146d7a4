"""conv2d forward + backward (input, weight and bias gradients), float32, on issue 10's two shapes:

    batch 32, 64 -> 64 channels, 32x32, 3x3, padding 1
    batch 64,  3 -> 32 channels, 32x32, 5x5

Implementations: naive numpy (the reference backend: plain im2col + `@`), numba, cython (our C),
and PyTorch (F.conv2d + autograd backward, oneDNN) where installed, all at the same thread count.
Every result is first checked against naive numpy's; then each round times every implementation
once, in turn (so a busy spell on a shared machine hits them all alike), and the table shows the
median of the rounds, the speedup over naive numpy, the ratio to PyTorch (> 1: faster than
PyTorch) and GFLOP/s (3 x 2*N*Co*(C/g)*kH*kW*oH*oW: forward, data and weight gradients).

    python bench/bench_conv.py [--rounds 7] [--threads 2]
"""
import argparse
import os
import platform
import statistics
import time

import numpy as np

import fastnn
from fastnn import kernels as K

SHAPES = [
    ("N=32 64->64 32x32 3x3 p1", (32, 64, 32, 32), (64, 64, 3, 3), dict(padding=1)),
    ("N=64 3->32 32x32 5x5", (64, 3, 32, 32), (32, 3, 5, 5), dict()),
]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def fastnn_impl(backend, x, w, b, dy, kw):
    def run():
        y = K.conv2d(x, w, b, **kw, backend=backend)
        dx, dw, db = K.conv2d_backward(dy, x, w, **kw, backend=backend)
        return y, dx, dw, db
    return run


def torch_impl(x, w, b, dy, kw):
    import torch
    import torch.nn.functional as F
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    dyt = torch.from_numpy(dy)

    def run():
        for t in (xt, wt, bt):
            t.grad = None
        y = F.conv2d(xt, wt, bt, **kw)
        y.backward(dyt)
        return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()
    return run


def check(name, got, want):
    for what, g, r in zip(("y", "dx", "dw", "db"), got, want):
        scale = float(np.abs(r).max()) or 1.0
        err = float(np.abs(g.astype(np.float64) - r).max()) / scale
        if not err < 1e-4:
            raise SystemExit(f"{name}: {what} differs from naive numpy's (max rel err {err:.2e})")


def fmt_time(s):
    return f"{s * 1e3:.1f} ms" if s >= 1e-3 else f"{s * 1e6:.0f} µs"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    fastnn.set_num_threads(args.threads)
    try:
        import torch
        torch.set_num_threads(args.threads)
        torch_version = f"torch {torch.__version__} (threads {torch.get_num_threads()})"
    except ImportError:
        torch = None
        torch_version = "torch not installed"
    import numba
    backends = [b for b in ("numba", "cython") if b in fastnn.available_backends()]
    print(f"bench_conv: conv2d forward + backward (dx, dweight, dbias), float32, median of "
          f"{args.rounds} round-robin rounds")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    cpath = ""
    if "cython" in backends:
        from fastnn.backends.cython import _conv
        cpath = f"; C path {_conv.cpu_path()}"
    print(f"threads {args.threads} (fastnn/OpenMP, numba, PyTorch); numpy {np.__version__}, "
          f"numba {numba.__version__}, {torch_version}{cpath}")
    print()

    header = f"{'case':28s} {'implementation':14s} {'time':>10s} {'vs numpy':>9s} " \
             f"{'vs PyTorch':>10s} {'GFLOP/s':>8s}"
    print(header)
    print("-" * len(header))
    for label, xs, ws, kw in SHAPES:
        rng = np.random.default_rng(0)
        x = rng.standard_normal(xs, dtype=np.float32)
        w = (rng.standard_normal(ws, dtype=np.float32) / np.sqrt(np.prod(ws[1:]))).astype(
            np.float32)
        b = rng.standard_normal(ws[0], dtype=np.float32)
        y = K.conv2d(x, w, b, **kw, backend="numpy")
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        flops = 3 * 2 * xs[0] * ws[0] * ws[1] * ws[2] * ws[3] * y.shape[2] * y.shape[3]

        impls = {"naive numpy": fastnn_impl("numpy", x, w, b, dy, kw)}
        for be in backends:
            impls[be] = fastnn_impl(be, x, w, b, dy, kw)
        if torch is not None:
            impls["PyTorch"] = torch_impl(x, w, b, dy, kw)
        x64 = [a.astype(np.float64) for a in (x, w, b, dy)]
        want = fastnn_impl("numpy", x64[0], x64[1], x64[2], x64[3], kw)()
        for name, fn in impls.items():      # warm up (Numba compiles) and check
            check(name, fn(), want)
            fn()
        times = {name: [] for name in impls}
        for _ in range(args.rounds):
            for name, fn in impls.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        for name in impls:
            vs_torch = f"{med['PyTorch'] / med[name]:.2f}x" if "PyTorch" in med else "-"
            print(f"{label:28s} {name:14s} {fmt_time(med[name]):>10s} "
                  f"{med['naive numpy'] / med[name]:8.1f}x {vs_torch:>10s} "
                  f"{flops / med[name] / 1e9:8.1f}")
            label = ""
    print()
    print("vs numpy: naive numpy's time / this time; vs PyTorch: PyTorch's time / this time "
          "(> 1: faster than PyTorch)")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
