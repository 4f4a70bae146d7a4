"""GELU (tanh form) forward + backward on 4M float32: naive numpy reference vs the cython
backend's C kernel vs PyTorch CPU (if importable), timed alternately in one process.

    python bench/ops_tune.py [--n 4194304] [--reps 15] [--threads N]
    FASTNN_ISA=avx2 python bench/ops_tune.py     # time another ISA path

Prints best and median milliseconds per fwd+bwd and the ratios (numpy / cython, torch /
cython: above 1 means the cython kernel is faster), then the per-call overhead of a compiled
kernel on a tiny array. The machine's other load makes single timings noisy: compare the
ratios, which come from interleaved runs.
"""
import argparse
import statistics
import time

import numpy as np

import fastnn

from fastnn.backends.cython import _ops
ref = fastnn.kernels.load("numpy")  # the numpy reference backend


def numpy_fwd_bwd(x, dy):
    ref.gelu(x, True)
    ref.gelu_backward(dy, x, True)


def cython_fwd_bwd(x, dy):
    _ops.gelu(x, True)
    _ops.gelu_backward(dy, x, True)


def torch_impl(threads):
    try:
        import torch
    except ImportError:
        return None
    if threads:
        torch.set_num_threads(threads)

    def run(xt, dyt):
        torch.nn.functional.gelu(xt, approximate="tanh")
        torch.ops.aten.gelu_backward(dyt, xt, approximate="tanh")

    run.torch = torch
    return run


def time_once(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def per_call_overhead_us(calls=200_000):
    x = np.ones(8, np.float32)
    relu = _ops.relu
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            relu(x)
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4 * 1024 * 1024)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0, help="threads for cython and torch "
                    "(default: their own defaults)")
    args = ap.parse_args()
    if args.threads:
        _ops.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    x = (rng.standard_normal(args.n) * 2).astype(np.float32)
    dy = rng.standard_normal(args.n).astype(np.float32)

    impls = {"numpy": (numpy_fwd_bwd, (x, dy)), "cython": (cython_fwd_bwd, (x, dy))}
    torch_run = torch_impl(args.threads)
    if torch_run is not None:
        torch = torch_run.torch
        impls["torch"] = (torch_run, (torch.from_numpy(x), torch.from_numpy(dy)))

    # correctness guard: the timed kernels must agree with the reference
    want = ref.gelu(x[:100_000], True)
    got = _ops.gelu(x[:100_000], True)
    assert np.allclose(got, want, rtol=1e-5, atol=1e-6), "cython gelu disagrees with reference"

    for fn, fargs in impls.values():   # warm up: page faults, thread pools, caches
        fn(*fargs)
    times = {name: [] for name in impls}
    for _ in range(args.reps):          # alternate so drifting machine load hits all alike
        for name, (fn, fargs) in impls.items():
            times[name].append(time_once(fn, *fargs))

    print(f"GELU tanh fwd+bwd, {args.n} float32, isa={_ops.cpu_path()}, "
          f"cython threads={_ops.get_num_threads()}"
          + (f", torch {torch.__version__} threads={torch.get_num_threads()}"
             if torch_run is not None else ", torch not importable"))
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    for name in impls:
        print(f"  {name:7s} best {best[name] * 1e3:8.2f} ms   median {med[name] * 1e3:8.2f} ms")
    for name in impls:
        if name != "cython":
            print(f"  {name} / cython: best {best[name] / best['cython']:6.2f}x   "
                  f"median {med[name] / med['cython']:6.2f}x")
    print(f"per-call overhead (relu on 8 floats): {per_call_overhead_us():.2f} us")


if __name__ == "__main__":
    main()
