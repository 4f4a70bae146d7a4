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
import statistics
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

# --set issue: every shape issue 16 names (square, the MLP and GPT training steps' forward and
# backward products). MLP/GPT rows are (m, k, n) of the forward NN product y = x w; backward
# dx = dy w^T is (m, n, k) NT and dw = x^T dy is (k, m, n) TN.
def _step(label, m, k, n):
    return [(label, m, k, n, ("NN",)), (label + " dx", m, n, k, ("NT",)),
            (label + " dw", k, m, n, ("TN",))]


ISSUE_SHAPES = (
    [("square", s, s, s, ("NN", "NT", "TN")) for s in (256, 512, 1024, 2048)]
    + [("square", 4096, 4096, 4096, ("NN",))]
    + _step("mlp", 256, 784, 512) + _step("mlp", 256, 512, 512) + _step("mlp", 256, 512, 10)
    + _step("gpt", 768, 128, 384) + _step("gpt", 768, 128, 128) + _step("gpt", 768, 128, 512)
    + _step("gpt", 768, 512, 128)
    + _step("mlp-s", 64, 64, 128) + _step("mlp-s", 64, 128, 128) + _step("mlp-s", 64, 128, 10)
)


def child(args):
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    if os.environ.get("FASTNN_GEMM_SO"):   # another build of the module, e.g. before a change
        import importlib.util
        spec = importlib.util.spec_from_file_location("fastnn.backends.cython._gemm",
                                                      os.environ["FASTNN_GEMM_SO"])
        _gemm = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_gemm)
    else:
        from fastnn.backends.cython import _gemm
    other = None
    if args.vs_so:   # a second build timed side by side (e.g. before a change): column "vs"
        import importlib.util
        spec = importlib.util.spec_from_file_location("fastnn.backends.cython._gemm", args.vs_so)
        other = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(other)
        other.set_num_threads(args.threads)

    threadpool_limits(args.threads)
    _gemm.set_num_threads(args.threads)
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    kernel = blas[0].get("architecture") if blas else "?"
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    print(f"# path={_gemm.cpu_path()}  dtype={dtype}  threads={args.threads}  "
          f"numpy BLAS: {blas[0]['internal_api'] if blas else '?'} kernel={kernel}", flush=True)
    # CPU time of this thread: with one thread every implementation computes in the calling
    # thread, and time spent preempted by other processes is not counted (a busy machine)
    clock = time.thread_time if args.cpu_time else time.perf_counter
    if args.cpu_time and args.threads != 1:
        raise SystemExit("--cpu-time measures the calling thread: use it with --threads 1")
    torch = None
    if args.torch:
        import torch
        torch.set_num_threads(args.threads)
    print(f"# load {os.getloadavg()[0]:.2f}; {'median' if args.median else 'best'} of "
          f"{args.rounds} alternating batches; "
          f"{'thread CPU time' if args.cpu_time else 'wall time'}"
          + (f"; module {os.environ['FASTNN_GEMM_SO']}" if os.environ.get("FASTNN_GEMM_SO") else ""),
          flush=True)
    print(f"{'shape':>12} {'m x k x n':>18} {'op':>3} {'ours GF/s':>10} {'numpy GF/s':>11} "
          f"{'% numpy':>8}" + (f" {'torch GF/s':>11}" if torch else "")
          + (f" {'vs GF/s':>8} {'%':>5}" if other else ""))
    for label, m, k, n, cases in (ISSUE_SHAPES if args.set == "issue" else SHAPES):
        if args.max_size and m * n * k > args.max_size ** 3:
            continue
        if args.only and not ({label, f"{m}x{k}x{n}"} & set(args.only.split(","))):
            continue
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

            fns = [theirs, ours]

            def vs():
                other.gemm(a, b, c, ta, tb, 1.0, 0.0)
            if torch is not None:
                ta_, tb_ = torch.from_numpy(a), torch.from_numpy(b)
                topa, topb = (ta_.T if ta else ta_), (tb_.T if tb else tb_)

                def torch_mm():
                    torch.matmul(topa, topb)
                fns.append(torch_mm)
            if other is not None:
                fns.append(vs)

            flops = 2.0 * m * n * k
            # short batches (~5 ms at 200 GF/s, at least one call): on a shared machine the best
            # of many short batches finds the quiet moments
            reps = max(1, int(1e9 / flops))
            times = {fn: [] for fn in fns}
            for fn in fns:
                fn()  # warm up (workspace, thread pools)
            for _ in range(args.rounds):
                for fn in fns:
                    time.sleep(args.pause)
                    t = clock()
                    for _ in range(reps):
                        fn()
                    times[fn].append((clock() - t) / reps)
            pick = statistics.median if args.median else min
            gf = {fn: flops / pick(ts) / 1e9 for fn, ts in times.items()}
            print(f"{label:>12} {f'{m}x{k}x{n}':>18} {case:>3} {gf[ours]:10.1f} {gf[theirs]:11.1f} "
                  f"{100 * gf[ours] / gf[theirs]:7.0f}%"
                  + (f" {gf[torch_mm]:11.1f}" if torch is not None else "")
                  + (f" {gf[vs]:8.1f} {100 * gf[vs] / gf[theirs]:5.0f}%" if other else ""),
                  flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--isa", choices=["all", "avx512", "avx2", "portable"], default="all")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--pause", type=float, default=0.12, help="seconds idle before each batch")
    p.add_argument("--set", choices=["tune", "issue"], default="tune",
                   help="shape list: the tuning set, or every shape issue 16 names")
    p.add_argument("--median", action="store_true", help="median of the rounds, not the best")
    p.add_argument("--torch", action="store_true", help="add a torch.matmul column")
    p.add_argument("--cpu-time", action="store_true",
                   help="time by the thread's CPU time (with --threads 1: steadier when busy)")
    p.add_argument("--vs-so", default="", help="another build of _gemm to time side by side")
    p.add_argument("--only", default="", help="comma-separated labels or m x k x n to keep")
    p.add_argument("--max-size", type=int, default=0, help="skip products above this size cubed")
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
                        "--pause", str(args.pause), "--set", args.set,
                        "--max-size", str(args.max_size), "--vs-so", args.vs_so,
                        "--only", args.only]
                       + (["--median"] if args.median else []) + (["--torch"] if args.torch else [])
                       + (["--cpu-time"] if args.cpu_time else []),
                       env=env, check=True)


if __name__ == "__main__":
    main()
