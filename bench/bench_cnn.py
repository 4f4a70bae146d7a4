"""One CNN training step (forward, cross-entropy, backward, Adam) in fastnn vs the same model in
PyTorch, on batch 64 of 32x32 RGB images.

    pytest bench/bench_cnn.py --benchmark-only      # pytest-benchmark table, every impl
    python bench/bench_cnn.py --threads 2           # the issue's target: step-time ratios vs
                                                    # PyTorch, timed alternately, medians

Models:
  lenet   LeNet-5's shape: conv 3->6 5x5, ReLU, max-pool 2, conv 6->16 5x5, ReLU, max-pool 2,
          Linear 400->120, ReLU, Linear 120->84, ReLU, Linear 84->10
  cnn     fastnn.models.CNN as `fastnn train cnn --data shapes` trains it: three stages of
          conv 3x3 (no bias) -> BatchNorm2d -> ReLU -> max-pool 2 (16, 32, 64 channels), Linear

Target (issue 10): the LeNet-style step is no slower than PyTorch's (ratio <= 1.0).
"""
import argparse
import statistics
import sys
import time

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.bench.train_cases import cnn_layers
from fastnn.nn import functional as F

BATCH = 64


def _lenet(mod):
    return mod.Sequential(mod.Conv2d(3, 6, 5), mod.ReLU(), mod.MaxPool2d(2),
                          mod.Conv2d(6, 16, 5), mod.ReLU(), mod.MaxPool2d(2), mod.Flatten(),
                          mod.Linear(16 * 5 * 5, 120), mod.ReLU(), mod.Linear(120, 84),
                          mod.ReLU(), mod.Linear(84, 10))


def _cnn(mod, channels=(16, 32, 64)):
    return cnn_layers(mod, 3, 32, 6, channels)   # shared with `fastnn bench --train`


MODELS = {"lenet": (_lenet, 10), "cnn": (_cnn, 6)}


def _data(classes, batch=BATCH):
    rng = np.random.default_rng(0)
    return (rng.random((batch, 3, 32, 32), dtype=np.float32),
            rng.integers(0, classes, batch))


def fastnn_step(model_name, backend=None):
    """A closure running one fastnn training step (on `backend`, default the current one)."""
    if backend:
        fastnn.set_backend(backend)
    build, classes = MODELS[model_name]
    fastnn.manual_seed(0)
    model = build(nn)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    X, Y = _data(classes)
    x, y = fastnn.tensor(X), fastnn.tensor(Y)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def torch_step(model_name):
    import torch
    build, classes = MODELS[model_name]
    torch.manual_seed(0)
    model = build(torch.nn)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    X, Y = _data(classes)
    x, y = torch.tensor(X), torch.tensor(Y)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def _impls():
    return [b for b in fastnn.available_backends() if b != "cuda"] + ["torch"]


def _build(impl, model_name):
    if impl == "torch":
        pytest.importorskip("torch")
        return torch_step(model_name)
    with fastnn.use_backend(impl):
        step = fastnn_step(model_name)

    def run():
        with fastnn.use_backend(impl):
            step()
    return run


@pytest.mark.parametrize("impl", _impls())
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_cnn_train_step(benchmark, model_name, impl):
    step = _build(impl, model_name)
    step()  # warm-up (Numba compiles here)
    benchmark.group = f"cnn-step {model_name} batch {BATCH} 3x32x32"
    benchmark(step)


# ---------------------------------------------------------------- python bench/bench_cnn.py
def _time(fn, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def compare(model_name, backend, rounds, min_seconds=0.2):
    """fastnn vs PyTorch step times, timed alternately round by round; returns the medians and
    the best round of each."""
    mine, theirs = fastnn_step(model_name, backend), torch_step(model_name)
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
    p.add_argument("--models", default="lenet,cnn", help="comma-separated: lenet, cnn")
    args = p.parse_args(argv)
    if args.backend:
        fastnn.set_backend(args.backend)
    threads = args.threads or fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    import torch
    torch.set_num_threads(threads)
    print(f"fastnn {fastnn.__version__}, backend {fastnn.get_backend().name}, {threads} threads, "
          f"torch {torch.__version__}")
    print(f"{'model':<8}{'fastnn ms':>11}{'PyTorch ms':>12}{'ratio':>8}{'best-round ratio':>18}")
    for name in args.models.split(","):
        ma, mb, ba, bb = compare(name, args.backend, args.rounds)
        verdict = "" if name != "lenet" else ("  target <= 1.0 OK" if ma <= mb
                                              else "  target <= 1.0 MISSED")
        print(f"{name:<8}{ma * 1e3:>11.2f}{mb * 1e3:>12.2f}{ma / mb:>8.2f}{ba / bb:>18.2f}"
              + verdict)
    print(f"(batch {BATCH} of 3x32x32, Adam; medians of {args.rounds} alternating rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
