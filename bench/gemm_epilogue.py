"""Fused GEMM epilogues vs the same work unfused, on the C backend: the Linear layers of the GPT
and MLP training steps.

    python bench/gemm_epilogue.py --threads 1 --rounds 15 --cpu-time

fused:   T.gemm_fused(x, W, None, b, trans_b=True, activation=..., preact=pre)  /  residual
unfused: T.gemm(x, W, trans_b=True); T.bias_add; T.gelu (or relu) / + residual
backward: T.gemm_bias_grad(dy, x, trans_a=True)  vs  T.gemm(dy, x, trans_a=True); T.bias_grad(dy)
Each pair is timed alternately, median of the rounds (--cpu-time: the thread's CPU time, which
with one thread ignores time preempted by other processes).
"""
import argparse
import os
import statistics
import time

import numpy as np

CASES = [  # (label, rows, in, out, what)
    ("gpt c_fc + gelu", 768, 128, 512, "gelu"),
    ("gpt c_fc + gelu_tanh", 768, 128, 512, "gelu_tanh"),
    ("gpt attn.c_proj + residual", 768, 128, 128, "residual"),
    ("gpt mlp.c_proj + residual", 768, 512, 128, "residual"),
    ("mlp fc1 + relu", 256, 784, 512, "relu"),
    ("mlp fc2 + relu", 256, 512, 512, "relu"),
    ("small mlp fc + relu", 64, 128, 128, "relu"),
    ("gpt c_fc dW + db", 768, 128, 512, "dw"),
    ("mlp fc1 dW + db", 256, 784, 512, "dw"),
    ("small mlp dW + db", 64, 128, 128, "dw"),
]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--cpu-time", action="store_true")
    args = p.parse_args()
    import fastnn
    from fastnn.kernels import trusted as T

    fastnn.set_backend("cython")
    fastnn.set_num_threads(args.threads)
    clock = time.thread_time if args.cpu_time else time.perf_counter
    dt = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    print(f"# threads={args.threads} dtype={dt} median of {args.rounds}, "
          f"{'thread CPU time' if args.cpu_time else 'wall time'}, load {os.getloadavg()[0]:.1f}")
    print(f"{'case':>28} {'rows x in x out':>16} {'fused us':>9} {'unfused us':>11} {'ratio':>6}")
    for label, rows, n_in, n_out, what in CASES:
        x = rng.standard_normal((rows, n_in)).astype(dt)
        w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dt)
        b = rng.standard_normal(n_out).astype(dt)
        res = rng.standard_normal((rows, n_out)).astype(dt)
        dy = rng.standard_normal((rows, n_out)).astype(dt)
        pre = np.empty((rows, n_out), dt)
        act = what if what in ("gelu", "gelu_tanh", "relu") else None
        if what == "dw":
            def fused():
                T.gemm_bias_grad(dy, x, trans_a=True, sum_of="a")

            def unfused():
                T.gemm(dy, x, trans_a=True)
                T.bias_grad(dy)
        elif what == "residual":
            def fused():
                T.gemm_fused(x, w, None, b, res, trans_b=True)

            def unfused():
                y = T.bias_add(T.gemm(x, w, trans_b=True), b)
                np.add(y, res, out=y)
        else:
            def fused():
                T.gemm_fused(x, w, None, b, trans_b=True, activation=act, preact=pre)

            def unfused():
                h = T.bias_add(T.gemm(x, w, trans_b=True), b)
                if act == "relu":
                    T.relu(h)
                else:
                    T.gelu(h, approximate="tanh" if act == "gelu_tanh" else "none")
        reps = max(1, int(2e7 / (rows * n_in * n_out)))
        times = {fused: [], unfused: []}
        for fn in times:
            fn()
        for _ in range(args.rounds):
            for fn in times:
                t = clock()
                for _ in range(reps):
                    fn()
                times[fn].append((clock() - t) / reps)
        f, u = (statistics.median(times[fn]) * 1e6 for fn in (fused, unfused))
        print(f"{label:>28} {f'{rows}x{n_in}x{n_out}':>16} {f:9.1f} {u:11.1f} {f / u:6.2f}",
              flush=True)


if __name__ == "__main__":
    main()
