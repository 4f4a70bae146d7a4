"""Numba backend throughput: GEMM GFLOP/s against numpy (OpenBLAS), and fused ops against the
numpy reference backend.

    python bench/numba_tune.py                      # 2 threads, n = 256 512 1024, 5 rounds
    python bench/numba_tune.py --threads 1 --sizes 512 --rounds 9 --skip-ops
    python bench/numba_tune.py --compile            # first-call compile time, empty cache

GEMM: each round runs one child process for numba and one for numpy, alternating, and keeps
each side's best time over all rounds. Separate processes keep numba's and OpenBLAS's thread
pools from spinning against each other; the numpy child drops OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE from its environment (OpenBLAS's own detection), and both are limited to the
same thread count. The machine may be shared: compare the ratio, not absolute numbers.

Ops: measured in this process, alternating numba and reference calls, best of several.
The reference is single-threaded numpy with temporaries; numba runs fused on --threads threads.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

import fastnn


def _best(fn, reps):
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _gemm_child(which, threads, sizes, dtype):
    """Print {n: best seconds} for `which` in ('numba', 'numpy')."""
    dtype = np.dtype(dtype)
    if which == "numba":
        import numba
        from fastnn.backends.numba import gemm as numba_gemm
        numba.set_num_threads(threads)
    out = {}
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        c = np.empty((n, n), dtype)
        if which == "numba":
            def run():
                numba_gemm.gemm(a, b, c, False, False, 1.0, 0.0)
        else:
            def run():
                np.matmul(a, b, out=c)
        run()   # compile / warm up
        reps = max(5, min(100, int(3e11 / (2 * n ** 3))))   # ~1 s per size at 150 GF/s
        out[n] = _best(run, reps)
    print(json.dumps(out))


def _run_child(which, args):
    env = dict(os.environ)
    cmd = [sys.executable, __file__, "--child", which, "--threads", str(args.threads),
           "--dtype", args.dtype, "--sizes", *map(str, args.sizes)]
    if which == "numpy":
        for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
            env.pop(var, None)
    env["OPENBLAS_NUM_THREADS"] = str(args.threads)
    env["OMP_NUM_THREADS"] = str(args.threads)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return {int(k): v for k, v in json.loads(res.stdout.strip().splitlines()[-1]).items()}


def bench_gemm(args):
    best = {"numba": {}, "numpy": {}}
    for r in range(args.rounds):
        for which in (("numba", "numpy") if r % 2 == 0 else ("numpy", "numba")):
            for n, t in _run_child(which, args).items():
                best[which][n] = min(best[which].get(n, float("inf")), t)
    print(f"GEMM {args.dtype}, {args.threads} thread(s), best of {args.rounds} alternating rounds")
    print(f"{'n':>6} {'numba GF/s':>11} {'numpy GF/s':>11} {'numba/numpy':>12}")
    for n in args.sizes:
        flops = 2 * n ** 3
        gn, gp = flops / best["numba"][n] / 1e9, flops / best["numpy"][n] / 1e9
        print(f"{n:>6} {gn:>11.1f} {gp:>11.1f} {gn / gp:>12.2f}")


def bench_ops(args):
    import numba
    from fastnn.backends import numba_ops as nb
    ref = fastnn.kernels.load("numpy")  # the numpy reference backend
    numba.set_num_threads(args.threads)
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    n = 1 << 22
    x = rng.standard_normal(n).astype(dtype)
    dy = rng.standard_normal(n).astype(dtype)
    rows = rng.standard_normal((4096, 1024)).astype(dtype)
    drows = rng.standard_normal((4096, 1024)).astype(dtype)
    w = rng.standard_normal(1024).astype(dtype)
    targets = rng.integers(0, 1024, 4096)
    _, mean, rstd = ref.layer_norm(rows, w, w, 1e-5)
    state = {mod: (x.copy(), np.zeros_like(x), np.zeros_like(x)) for mod in (nb, ref)}

    def adam(mod):   # in place: each side updates its own param and moments
        p, m, v = state[mod]
        mod.adam_step(p, dy, m, v, 3, 1e-3, 0.9, 0.999, 1e-8, 0.01, True)

    cases = [
        ("relu 4M", lambda m: m.relu(x)),
        ("gelu tanh 4M", lambda m: m.gelu(x, True)),
        ("gelu erf 4M", lambda m: m.gelu(x, False)),
        ("gelu_backward tanh 4M", lambda m: m.gelu_backward(dy, x, True)),
        ("sigmoid 4M", lambda m: m.sigmoid(x)),
        ("softmax 4096x1024", lambda m: m.softmax(rows)),
        ("cross_entropy 4096x1024", lambda m: m.cross_entropy(rows, targets, -100, 1 / 4096)),
        ("layer_norm 4096x1024", lambda m: m.layer_norm(rows, w, w, 1e-5)),
        ("layer_norm_backward 4096x1024",
         lambda m: m.layer_norm_backward(drows, rows, w, mean, rstd)),
        ("bias_grad 4096x1024", lambda m: m.bias_grad(drows)),
        ("adam_step 4M (AdamW)", adam),
    ]
    print(f"\nops {args.dtype}: numba on {args.threads} thread(s) vs numpy reference, "
          f"best of {args.rounds} alternating rounds (ms)")
    print(f"{'kernel':32s} {'numba':>8} {'numpy':>8} {'speedup':>8}")
    for name, fn in cases:
        fn(nb)      # compile
        tn = tp = float("inf")
        for _ in range(args.rounds):
            tn = min(tn, _best(lambda: fn(nb), 3))
            tp = min(tp, _best(lambda: fn(ref), 3))
        print(f"{name:32s} {tn * 1e3:8.2f} {tp * 1e3:8.2f} {tp / tn:8.1f}x")


def _call_every_kernel(n):
    """Call every numba kernel once in float32 and float64; rows of 64, n elements in all (small
    n: the serial variants only; n >= 2**17: the parallel ones too)."""
    from fastnn.backends import numba_cpu as B
    for dt in (np.float32, np.float64):
        x = np.linspace(-3, 3, n).astype(dt)
        X = x.reshape(-1, 64)
        w = X[0].copy()
        ids = np.arange(X.shape[0]) % 8
        m = 16 if n < 1 << 17 else 200
        a = np.ones((m, m), dt)
        B.gemm(a, a, a.copy(), False, False, 1.0, 0.0)
        B.gemm_batched(a[None], a[None], a[None].copy(), False, False, 1.0, 0.0)
        B.bias_add(X, w), B.bias_grad(X), B.mse_loss(x, x)
        for k in ("relu", "sigmoid", "tanh"):
            getattr(B, k)(x), getattr(B, k + "_backward")(x, x)
        B.leaky_relu(x, 0.1), B.leaky_relu_backward(x, x, 0.1)
        for approximate in (False, True):
            B.gelu(x, approximate), B.gelu_backward(x, x, approximate)
        for k in ("softmax", "log_softmax"):
            getattr(B, k)(X), getattr(B, k + "_backward")(X, X)
        B.cross_entropy(X, ids, -100, 1.0)
        _, mean, rstd = B.layer_norm(X, w, w, 1e-5)
        B.layer_norm_backward(X, X, w, mean, rstd)
        B.embedding(X, ids), B.embedding_backward(X, ids, 8)
        B.sgd_step(x.copy(), x, x.copy(), 0.1, 0.9, 0.0, False, 0.0, False)
        B.adam_step(x.copy(), x, x.copy(), x.copy(), 1, 0.1, 0.9, 0.999, 1e-8, 0.0, False)


def _compile_child(n):
    t, c = time.perf_counter(), time.thread_time()
    _call_every_kernel(n)
    print(f"{time.perf_counter() - t:.1f}s wall, {time.thread_time() - c:.1f}s cpu")


def bench_compile(args):
    """First call of every kernel with an empty numba cache, then again from the cache."""
    import tempfile
    print("first call of every kernel, float32 + float64 (compile time; the machine may be "
          "shared, cpu is the main thread's)")
    for label, n in (("small inputs (serial variants)", 64),
                     ("small + large inputs (serial and parallel variants)", 1 << 17)):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            for when in ("empty cache", "cached"):
                res = subprocess.run([sys.executable, __file__, "--compile-child", str(n)],
                                     env=env, capture_output=True, text=True, check=True)
                print(f"  {label}, {when}: {res.stdout.strip()}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--skip-gemm", action="store_true")
    p.add_argument("--skip-ops", action="store_true")
    p.add_argument("--compile", action="store_true", help="only measure first-call compile time")
    p.add_argument("--child", choices=["numba", "numpy"], help=argparse.SUPPRESS)
    p.add_argument("--compile-child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _gemm_child(args.child, args.threads, args.sizes, args.dtype)
        return
    if args.compile_child:
        _compile_child(args.compile_child)
        return
    if args.compile:
        bench_compile(args)
        return
    if not args.skip_gemm:
        bench_gemm(args)
    if not args.skip_ops:
        bench_ops(args)


if __name__ == "__main__":
    main()
