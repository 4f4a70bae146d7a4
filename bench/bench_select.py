"""topk and multinomial, float32: generation's hot path. fastnn's backends against naive numpy
(the reference backend: a full stable sort per row for topk) and PyTorch, timed alternately
(round-robin), median of rounds.

    python bench/bench_select.py [--rounds 15] [--threads 2]

Cases:
  topk (1, 50000) k=50     one generation step's top-k filter over a 50k vocabulary
  topk (64, 50000) k=50    a batch of 64 rows
  multinomial (64, 50000)  one sample per row, with replacement (fastnn: uniforms drawn
                           outside the timed call; PyTorch: torch.multinomial draws its own)
Every fastnn backend's result is checked against naive numpy's before timing (topk: equal
values and indices; multinomial: identical samples from the same uniforms). PyTorch's topk
values are checked too (its indices may order ties differently; its samples cannot be compared).
"""
import argparse
import platform
import statistics
import time

import numpy as np

import fastnn
import fastnn.kernels as K

BACKENDS = ("numpy", "numba", "cython")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def topk_case(n, c, k):
    x = np.random.default_rng(0).standard_normal((n, c)).astype(np.float32)
    want = K.topk(x, k, backend="numpy")

    def impl(backend):
        got = K.topk(x, k, backend=backend)
        assert all(np.array_equal(g, w) for g, w in zip(got, want)), backend
        return lambda: K.topk(x, k, backend=backend)

    def torch_impl(torch):
        tx = torch.from_numpy(x)
        assert np.array_equal(torch.topk(tx, k).values.numpy(), want[0])
        return lambda: torch.topk(tx, k)
    return f"topk ({n}, {c}) k={k}", impl, torch_impl


def multinomial_case(n, c):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((n, c)) * 3
    p = np.exp(logits - logits.max(1, keepdims=True)).astype(np.float32)
    p /= p.sum(1, keepdims=True)
    u = rng.random((n, 1))
    want = K.multinomial(p, u, True, backend="numpy")

    def impl(backend):
        assert np.array_equal(K.multinomial(p, u, True, backend=backend), want), backend
        return lambda: K.multinomial(p, u, True, backend=backend)

    def torch_impl(torch):
        tp = torch.from_numpy(p)
        return lambda: torch.multinomial(tp, 1, True)
    return f"multinomial ({n}, {c}) 1 sample", impl, torch_impl


def fmt(t):
    return f"{t * 1e6:.1f} us" if t < 1e-3 else f"{t * 1e3:.2f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    fastnn.set_num_threads(args.threads)
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    backends = [b for b in BACKENDS if b in fastnn.available_backends()]
    names = ["naive numpy" if b == "numpy" else b for b in backends] + \
        (["PyTorch"] if torch else [])
    print(f"bench_select.py --rounds {args.rounds} --threads {args.threads}  (float32, median "
          f"of {args.rounds} round-robin turns)")
    print(f"CPU: {cpu_model()}; threads {args.threads}; numpy {np.__version__}"
          + (f"; torch {torch.__version__}" if torch else ""))
    print(f"{'case':34s}" + "".join(f"{n:>14s}" for n in names) + f"{'numpy/best':>12s}")
    for label, impl, torch_impl in (topk_case(1, 50000, 50), topk_case(64, 50000, 50),
                                    multinomial_case(64, 50000)):
        fns = [impl(b) for b in backends] + ([torch_impl(torch)] if torch else [])
        for f in fns:           # warm up (Numba compiles on first call)
            f()
        times = [[] for _ in fns]
        for _ in range(args.rounds):
            for i, f in enumerate(fns):
                reps = 1
                t0 = time.perf_counter()
                f()
                dt = time.perf_counter() - t0
                if dt < 2e-3:   # short calls: time a batch of them
                    reps = max(1, int(2e-3 / max(dt, 1e-7)))
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        f()
                    dt = (time.perf_counter() - t0) / reps
                times[i].append(dt)
        med = [statistics.median(t) for t in times]
        best = min(med[1:len(backends)]) if len(backends) > 1 else med[0]
        print(f"{label:34s}" + "".join(f"{fmt(m):>14s}" for m in med)
              + f"{med[0] / best:>11.1f}x")


if __name__ == "__main__":
    main()
