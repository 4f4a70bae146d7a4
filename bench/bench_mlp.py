"""One MLP training step (forward, cross-entropy, backward, Adam) in fastnn vs PyTorch, and the
digits accuracy reached within 10 s of training.

    pytest bench/bench_mlp.py --benchmark-only      # pytest-benchmark table, every impl
    python bench/bench_mlp.py                       # the issue's targets: step-time ratios vs
                                                    # PyTorch (timed alternately), digits accuracy

Targets (issue 3): MLP 64-128-128-10 at batch 64 takes at most half of PyTorch's step time
(framework overhead dominates there); 784-512-512-10 at batch 256 is no slower than PyTorch;
the digits MLP reaches >= 97% test accuracy within 10 s of training on 2 cores.
"""
import argparse
import statistics
import sys
import time

import numpy as np
import pytest

import fastnn

from fastnn.bench.train_cases import MLP_CONFIGS, mlp_data as _data, mlp_step, torch_mlp_step

# the step builders are shared with `fastnn bench --train` (fastnn/bench/train_cases.py)
CONFIGS = {"small": MLP_CONFIGS["mlp-small"], "large": MLP_CONFIGS["mlp-large"]}


def fastnn_step(sizes, batch, backend=None):
    """A closure running one fastnn training step (on `backend`, default the current one)."""
    return mlp_step(sizes, batch, backend)


def torch_step(sizes, batch):
    return torch_mlp_step(sizes, batch)


def numpy_step(sizes, batch):
    """Hand-written backprop and Adam in plain numpy: the floor for Python overhead."""
    rng = np.random.default_rng(0)
    Ws = [rng.uniform(-1, 1, (b, a)).astype(np.float32) / np.sqrt(a)
          for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(b, np.float32) for b in sizes[1:]]
    params = Ws + bs
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    X, Y = _data(sizes, batch)
    t = [0]

    def step():
        hs = [X]
        for i, (W, b) in enumerate(zip(Ws, bs)):
            z = hs[-1] @ W.T + b
            hs.append(np.maximum(z, 0) if i < len(Ws) - 1 else z)
        z = hs[-1]
        e = np.exp(z - z.max(1, keepdims=True))
        g = e / e.sum(1, keepdims=True)
        g[np.arange(batch), Y] -= 1
        g /= batch
        gW, gb = [None] * len(Ws), [None] * len(Ws)
        for i in range(len(Ws) - 1, -1, -1):
            gW[i] = g.T @ hs[i]
            gb[i] = g.sum(0)
            if i:
                g = (g @ Ws[i]) * (hs[i] > 0)
        t[0] += 1
        for p, gr, m, v in zip(params, gW + gb, ms, vs):
            m *= 0.9
            m += 0.1 * gr
            v *= 0.999
            v += 0.001 * gr * gr
            p -= (1e-3 / (1 - 0.9 ** t[0])) * m / (np.sqrt(v / (1 - 0.999 ** t[0])) + 1e-8)
    return step


def _impls():
    out = [b for b in fastnn.available_backends() if b != "cuda"]
    return out + ["torch", "numpy-handwritten"]


def _build(impl, sizes, batch):
    if impl == "torch":
        pytest.importorskip("torch")
        return torch_step(sizes, batch)
    if impl == "numpy-handwritten":
        return numpy_step(sizes, batch)
    with fastnn.use_backend(impl):
        step = fastnn_step(sizes, batch)

    def run():
        with fastnn.use_backend(impl):
            step()
    return run


@pytest.mark.parametrize("impl", _impls())
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_mlp_train_step(benchmark, config, impl):
    sizes, batch = CONFIGS[config]
    step = _build(impl, sizes, batch)
    step()  # warm-up (Numba compiles here)
    benchmark.group = f"mlp-step {'-'.join(map(str, sizes))} batch {batch}"
    benchmark(step)


# ---------------------------------------------------------------- python bench/bench_mlp.py
def _time(fn, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def compare(config, backend, rounds, min_seconds=0.2):
    """fastnn vs PyTorch step times, timed alternately round by round; returns medians and the
    ratio of medians (and the best round of each)."""
    sizes, batch = CONFIGS[config]
    mine, theirs = fastnn_step(sizes, batch, backend), torch_step(sizes, batch)
    for _ in range(3):
        mine()
        theirs()
    n = max(1, int(min_seconds / max(_time(theirs, 3), 1e-6)))
    a, b = [], []
    for _ in range(rounds):
        a.append(_time(mine, n))
        b.append(_time(theirs, n))
    return statistics.median(a), statistics.median(b), min(a), min(b)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=None, help="fastnn backend (default: the fastest)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for fastnn and PyTorch alike (default: all cores)")
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--skip-digits", action="store_true")
    args = p.parse_args(argv)
    if args.backend:
        fastnn.set_backend(args.backend)
    threads = args.threads or fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    print(f"fastnn {fastnn.__version__}, backend {fastnn.get_backend().name}, {threads} threads"
          + (f", torch {torch.__version__}" if torch else ", PyTorch not installed"))
    if torch is not None:
        for config, target in (("small", 0.5), ("large", 1.0)):
            sizes, batch = CONFIGS[config]
            ma, mb, ba, bb = compare(config, args.backend, args.rounds)
            ratio = ma / mb
            print(f"MLP {'-'.join(map(str, sizes))} batch {batch}: fastnn {ma * 1e6:.0f} us, "
                  f"PyTorch {mb * 1e6:.0f} us per step (medians of {args.rounds} alternating "
                  f"rounds): ratio {ratio:.2f} (best rounds {ba / bb:.2f}), target <= {target}"
                  f" {'OK' if ratio <= target else 'MISSED'}")
    if not args.skip_digits:
        from fastnn.models.mlp import train_digits
        model, history, acc, _ = train_digits(max_time=10.0, progress=False)
        print(f"digits MLP {'-'.join(map(str, model.sizes))}: test accuracy {acc:.4f} after "
              f"{len(history['epoch'])} epochs, {history['seconds'][-1]:.2f} s of training"
              + (" (stopped at 10 s)" if history["stopped_early"] else "")
              + f", target >= 0.97 within 10 s {'OK' if acc >= 0.97 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
