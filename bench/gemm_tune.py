"""GEMM tuning bench: our C GEMM (cython backend) vs numpy's `a @ b` (OpenBLAS), per ISA path.

    python bench/gemm_tune.py                      # every ISA path, float32, 2 threads
    python bench/gemm_tune.py --isa avx512 --dtype float64 --rounds 9

Each ISA path runs in its own subprocess with FASTNN_ISA set (the C code caches its choice at
load). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from the children's environment so
numpy runs its best kernel (the one it uses is printed). Ours and numpy's are timed alternately,
batch by batch, and the best batch of each is kept: other processes share the machine.
Ours is timed at the backend level (writes into a preallocated c); numpy allocates its result.
Between batches the bench sleeps (--pause): OpenBLAS's pthreads keep spinning ~0.1 s after a
call and OpenMP's briefly too; on 2 cores the idle pool would otherwise steal the other's cores.
"""
import argparse
import os
import subprocess
import sys
import time

# (label, m, k, n, transpose cases); the three cases are the ones backprop needs:
# NN y = x w, NT dx = dy w^T, TN dw = x^T dy  (same m, n, k, operands stored transposed)
SHAPES = [
    ("square", 64, 64, 64, ("NN",)),
    ("square", 256, 256, 256, ("NN", "NT", "TN")),
    ("square", 1024, 1024, 1024, ("NN", "NT", "TN")),
    ("square", 2048, 2048, 2048, ("NN",)),
    ("transformer", 768, 128, 384, ("NN", "NT", "TN")),
    ("transformer", 768, 512, 128, ("NN", "NT", "TN")),
    ("transformer", 768, 768, 768, ("NN", "NT", "TN")),
    ("skinny", 1, 1024, 1024, ("NN", "NT")),
    ("skinny", 4096, 16, 4096, ("NN",)),
    ("skinny", 16, 4096, 16, ("NN",)),
    ("tiny", 8, 8, 8, ("NN",)),
]


def child(args):
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    from fastnn.backends.cython import _gemm

    threadpool_limits(args.threads)
    _gemm.set_num_threads(args.threads)
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    kernel = blas[0].get("architecture") if blas else "?"
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    print(f"# path={_gemm.cpu_path()}  dtype={dtype}  threads={args.threads}  "
          f"numpy BLAS: {blas[0]['internal_api'] if blas else '?'} kernel={kernel}", flush=True)
    print(f"{'shape':>12} {'m x k x n':>18} {'op':>3} {'ours GF/s':>10} {'numpy GF/s':>11} {'% numpy':>8}")
    for label, m, k, n, cases in SHAPES:
        for case in cases:
            ta, tb = case[0] == "T", case[1] == "T"
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
            c = np.empty((m, n), dtype)
            opa = a.T if ta else a
            opb = b.T if tb else b

            def ours():
                _gemm.gemm(a, b, c, ta, tb, 1.0, 0.0)

            def theirs():
                opa @ opb

            flops = 2.0 * m * n * k
            # short batches (~5 ms at 200 GF/s, at least one call): on a shared machine the best
            # of many short batches finds the quiet moments
            reps = max(1, int(1e9 / flops))
            best = {ours: float("inf"), theirs: float("inf")}
            ours(), theirs()  # warm up (workspace, thread pools)
            for _ in range(args.rounds):
                for fn in (theirs, ours):
                    time.sleep(args.pause)
                    t = time.perf_counter()
                    for _ in range(reps):
                        fn()
                    best[fn] = min(best[fn], (time.perf_counter() - t) / reps)
            g_ours, g_np = flops / best[ours] / 1e9, flops / best[theirs] / 1e9
            print(f"{label:>12} {f'{m}x{k}x{n}':>18} {case:>3} {g_ours:10.1f} {g_np:11.1f} "
                  f"{100 * g_ours / g_np:7.0f}%", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--isa", choices=["all", "avx512", "avx2", "portable"], default="all")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--pause", type=float, default=0.12, help="seconds idle before each batch")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    for isa in (["avx512", "avx2", "portable"] if args.isa == "all" else [args.isa]):
        env["FASTNN_ISA"] = isa
        subprocess.run([sys.executable, __file__, "--child", "--dtype", args.dtype,
                        "--threads", str(args.threads), "--rounds", str(args.rounds),
                        "--pause", str(args.pause)],
                       env=env, check=True)


if __name__ == "__main__":
    main()
