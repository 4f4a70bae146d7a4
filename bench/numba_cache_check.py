"""Numba GEMM against the C GEMM in a process that compiled the GEMM and in processes that loaded
it from numba's on-disk cache, with and without loading the micro-kernel first.

    python bench/numba_cache_check.py                       # 1 thread, n = 256 512 1024
    python bench/numba_cache_check.py --threads 2 --rounds 3 --sizes 1024

Why (fastnn/backends/numba/gemm.py, _load_micro_kernel): each driver's compiled library carries
its own, re-optimized copy of the micro-kernel _tile_update as a weak symbol, and the JIT linker
resolves a weak symbol to a definition it already holds. A compiling process always holds the
separately compiled micro-kernel first; a process that loads the drivers from the cache holds it
only if gemm.py loads it before the drivers. "cached, driver's copy" skips that step, to show
what it costs.

Each child process, in a fresh cache directory shared by all children of this run, times numba's
and the C backend's gemm in alternating turns and prints the median of Numba/C per size. The
first child compiles; the others load. The machine may be shared: compare ratios.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def _child(args):
    import numba
    import numpy as np

    import fastnn
    from fastnn.backends.cython import _gemm as c_gemm
    from fastnn.backends.numba import gemm as nb_gemm
    fastnn.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    if args.child == "skip":      # pretend the micro-kernel is loaded: drivers use their own copy
        for dt in (np.float32, np.float64):
            nb_gemm._micro_kernel_loaded.add((np.dtype(dt), "C"))
    rng = np.random.default_rng(0)
    out = {}
    for n in args.sizes:
        a = rng.standard_normal((n, n)).astype(args.dtype)
        b = rng.standard_normal((n, n)).astype(args.dtype)
        c1 = np.empty((n, n), args.dtype)
        c2 = np.empty((n, n), args.dtype)
        nb_gemm.gemm(a, b, c1, False, False, 1.0, 0.0)
        c_gemm.gemm(a, b, c2, False, False, 1.0, 0.0)
        reps = max(2, int(1e9 / (2 * n ** 3)))
        ratios = []
        for _ in range(args.turns):
            t = time.perf_counter()
            for _ in range(reps):
                nb_gemm.gemm(a, b, c1, False, False, 1.0, 0.0)
            t_nb = time.perf_counter() - t
            t = time.perf_counter()
            for _ in range(reps):
                c_gemm.gemm(a, b, c2, False, False, 1.0, 0.0)
            ratios.append(t_nb / (time.perf_counter() - t))
        out[n] = sorted(ratios)[len(ratios) // 2]
    print(json.dumps(out))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--rounds", type=int, default=3, help="cached processes of each kind")
    p.add_argument("--turns", type=int, default=9, help="alternating turns per size")
    p.add_argument("--child", choices=["preload", "skip"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)

        def run(kind):
            cmd = [sys.executable, __file__, "--child", kind, "--threads", str(args.threads),
                   "--dtype", args.dtype, "--turns", str(args.turns),
                   "--sizes", *map(str, args.sizes)]
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            return json.loads(res.stdout.strip().splitlines()[-1])

        rows = [("compiled in the process", run("preload"))]
        for r in range(args.rounds):
            for kind in (("preload", "skip") if r % 2 == 0 else ("skip", "preload")):
                label = ("cached, micro-kernel loaded first" if kind == "preload"
                         else "cached, driver's copy")
                rows.append((label, run(kind)))
    print(f"Numba / C time, gemm {args.dtype} n^3, {args.threads} thread(s), median of "
          f"{args.turns} alternating turns per process")
    print(f"{'process':36s}" + "".join(f"{n:>8d}" for n in args.sizes))
    for label, res in rows:
        print(f"{label:36s}" + "".join(f"{res[str(n)]:8.2f}" for n in args.sizes))


if __name__ == "__main__":
    main()
