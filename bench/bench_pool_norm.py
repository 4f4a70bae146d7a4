"""max_pool2d and batch_norm, forward + backward, float32: fastnn's backends against naive numpy
(the reference backend) and PyTorch, timed alternately (round-robin), median of rounds.

    python bench/bench_pool_norm.py [--rounds 15] [--threads 2] [--batch 32 --channels 64 --size 32]

Cases (issue 10's target: no slower than PyTorch):
  max_pool2d   2x2, stride 2, with argmax indices; backward scatter-adds dy at the indices
               (PyTorch: aten.max_pool2d_with_indices + max_pool2d_with_indices_backward)
  batch_norm   training mode: batch statistics, running-stat update; backward for x, weight,
               bias (PyTorch: aten.native_batch_norm + native_batch_norm_backward)
Every implementation's result is checked against naive numpy's before timing. The last column
is the fastest fastnn backend's time over PyTorch's (below 1: faster than PyTorch).
"""
import argparse
import os
import platform
import statistics
import time

import numpy as np

import fastnn
import fastnn.kernels as K


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ---------------------------------------------------------------- the cases
def maxpool_case(n, c, s):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, s, s)).astype(np.float32)
    dy = rng.standard_normal((n, c, s // 2, s // 2)).astype(np.float32)

    def fastnn_impl(backend):
        def run():
            y, idx = K.max_pool2d(x, 2, backend=backend)
            return y, K.max_pool2d_backward(dy, idx, x.shape, backend=backend)
        return run

    def torch_impl():
        import torch
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
        aten = torch.ops.aten

        def run():
            y, idx = aten.max_pool2d_with_indices(tx, [2, 2], [2, 2])
            dx = aten.max_pool2d_with_indices_backward(tdy, tx, [2, 2], [2, 2], [0, 0], [1, 1],
                                                       False, idx)
            return y.numpy(), dx.numpy()
        return run
    return f"max_pool2d {n}x{c}x{s}x{s} 2x2/2 fwd+bwd", fastnn_impl, torch_impl


def batchnorm_case(n, c, s):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c, s, s)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    w, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)

    def fastnn_impl(backend):
        rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)

        def run():
            y, mean, invstd = K.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1,
                                           backend=backend)
            dx, dw, db = K.batch_norm_backward(dy, x, w, mean, invstd, True, backend=backend)
            return y, dx, dw, db
        return run

    def torch_impl():
        import torch
        tx, tdy, tw, tb = (torch.from_numpy(a) for a in (x, dy, w, b))
        rm, rv = torch.zeros(c), torch.ones(c)
        aten = torch.ops.aten

        def run():
            y, mean, invstd = aten.native_batch_norm(tx, tw, tb, rm, rv, True, 0.1, 1e-5)
            dx, dw, db = aten.native_batch_norm_backward(tdy, tx, tw, rm, rv, mean, invstd, True,
                                                         1e-5, [True, True, True])
            return y.numpy(), dx.numpy(), dw.numpy(), db.numpy()
        return run
    return f"batch_norm {n}x{c}x{s}x{s} train fwd+bwd", fastnn_impl, torch_impl


# ---------------------------------------------------------------- timing
def per_call(fn, budget=0.05):
    """Calls per turn so one turn lasts about `budget` seconds (from the fastest warm call)."""
    best = min(_time(fn, 1) for _ in range(3))
    return max(1, int(budget / max(best, 1e-7)))


def _time(fn, calls):
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls


def fmt(s):
    return f"{s * 1e3:.3g} ms" if s >= 1e-3 else f"{s * 1e6:.3g} us"


def run_case(case, impls, rounds):
    title, fastnn_impl, torch_impl = case
    fns = {}
    for name in impls:
        if name == "PyTorch":
            fns[name] = torch_impl()
        else:
            fns[name] = fastnn_impl(name)
    # correctness first: every result against naive numpy's
    want = fns["numpy"]()
    for name, fn in fns.items():
        for g, v in zip(fn(), want):
            np.testing.assert_allclose(np.asarray(g), v, rtol=1e-3, atol=1e-3,
                                       err_msg=f"{title}: {name}")
    calls = {name: per_call(fn) for name, fn in fns.items()}
    times = {name: [] for name in fns}
    for _ in range(rounds):                      # round-robin: drift hits every impl alike
        for name, fn in fns.items():
            times[name].append(_time(fn, calls[name]))
    return title, {name: statistics.median(ts) for name, ts in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--size", type=int, default=32)
    args = ap.parse_args(argv)

    fastnn.set_num_threads(args.threads)
    impls = ["numpy"] + [b for b in ("numba", "cython") if b in fastnn.available_backends()]
    try:
        import torch
        torch.set_num_threads(args.threads)
        impls.append("PyTorch")
        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    print(f"fastnn {fastnn.__version__} | numpy {np.__version__} | torch {torch_version}")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; threads {args.threads}; load "
          f"{os.getloadavg()[0]:.2f}; float32; median of {args.rounds} round-robin turns")
    header = ["naive numpy" if n == "numpy" else n for n in impls]
    print(f"\n{'case':42s}" + "".join(f"{h:>14s}" for h in header) + f"{'best/PyTorch':>14s}")
    for case in (maxpool_case(args.batch, args.channels, args.size),
                 batchnorm_case(args.batch, args.channels, args.size)):
        title, med = run_case(case, impls, args.rounds)
        best_ours = min(med[n] for n in impls if n not in ("numpy", "PyTorch"))
        ratio = f"{best_ours / med['PyTorch']:.2f}x" if "PyTorch" in med else "-"
        print(f"{title:42s}" + "".join(f"{fmt(med[n]):>14s}" for n in impls) + f"{ratio:>14s}")
        print(f"{'  speedup over naive numpy':42s}"
              + "".join(f"{med['numpy'] / med[n]:>13.1f}x" for n in impls))


if __name__ == "__main__":
    main()
