"""Where a warm GPT training step goes: cProfile of fastnn's step on nanoGPT's CPU configuration,
grouped into GEMMs, attention, GELU, LayerNorm, copies, optimizer and the rest (Python and
autograd), for the fused block nodes and the module-by-module path.

    python bench/gpt_profile.py                 # one thread, CPU time (steady on a busy machine)
    python bench/gpt_profile.py --threads 2 --wall
    python bench/gpt_profile.py --top 25        # also the 25 functions with the most own time
    python bench/gpt_profile.py --memory        # also what a warm step allocates, both paths

CPU time (time.thread_time) with one thread counts only this process's work, so the shares hold
up when other processes share the machine; wall time with more threads does not. The profiler's
own overhead (a timer call per Python call) falls on "Python/autograd/other". Cython kernels are
not profiled as functions: attention's kernels count toward the fused nodes' own time.
"""
import argparse
import cProfile
import pstats
import time

import numpy as np

CFG = dict(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
           bias=False)
GROUPS = [
    ("GEMM (the fused path's c_fc includes its GELU)",
     ["_gemm_trusted", "_gemm_fused_trusted", "gemm_fused", "_gemm_bias_grad_trusted"]),
    ("attention (kernels, packed node)", ["attention", "attention_backward", "_packed_strided"]),
    ("GELU", ["_unary", "_unary_backward", "_gelu_trusted", "_gelu_backward_trusted"]),
    ("LayerNorm", ["layer_norm", "layer_norm_backward", "_layer_norm_trusted",
                   "_layer_norm_backward_trusted"]),
    ("copies", ["ascontiguousarray", "copyto", "_residual_linear"]),
    ("optimizer, clipping, zero_grad", ["_adam_multi_step_trusted", "clip_grads_with_norm_",
                                        "_norm", "zero_grad", "_step"]),
    ("adds, embedding, cross-entropy", ["add", "embedding", "_cross_entropy_trusted",
                                        "embedding_backward"]),
]


def _matches(func, names):
    return func in names or any(f".{n}" in func or f" {n}" in func for n in names)


def profile(fused, steps, clock, top=0):
    from fastnn.bench.train_cases import gpt_step
    from fastnn.models import gpt
    saved, gpt.FUSED = gpt.FUSED, fused
    try:
        step = gpt_step("cython", CFG, 12)
        for _ in range(3):
            step()
        times = []
        for _ in range(steps):
            t0 = clock()
            step()
            times.append(clock() - t0)
        prof = cProfile.Profile(clock)
        prof.enable()
        for _ in range(steps):
            step()
        prof.disable()
    finally:
        gpt.FUSED = saved
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values())
    shares, used = {}, set()
    for group, names in GROUPS:
        shares[group] = sum(v[2] for k, v in stats.stats.items()
                            if _matches(k[2], names) and not (k in used or used.add(k)))
    # the fused nodes and attention.py's closures call cython kernels the profiler cannot see
    node = sum(v[2] for k, v in stats.stats.items() if k not in used and (
        k[0].endswith("gpt.py") and k[2] in ("backward", "_attention_residual", "_mlp_residual")
        or k[0].endswith("attention.py") and k[2] == "backward"))
    shares["fused nodes' own time (attention kernels, sums)"] = node
    shares["Python/autograd/other"] = total - sum(shares.values())
    label = "fused block nodes" if fused else "module by module"
    print(f"{label}: {1e3 * np.median(times):.1f} ms/step median, {1e3 * min(times):.1f} min "
          f"(unprofiled); profiled {1e3 * total / steps:.1f} ms/step")
    for group, t in shares.items():
        print(f"   {group:50s} {1e3 * t / steps:7.2f} ms  {100 * t / total:5.1f}%")
    if top:
        stats.sort_stats("tottime").print_stats(top)


def memory(fused):
    """What a warm step allocates (fastnn.bench.memory.steady_state), in MiB."""
    from fastnn.bench.memory import steady_state
    from fastnn.bench.report import format_steady_state
    from fastnn.bench.train_cases import gpt_step
    from fastnn.models import gpt
    saved, gpt.FUSED = gpt.FUSED, fused
    try:
        stats = steady_state(gpt_step("cython", CFG, 12))
    finally:
        gpt.FUSED = saved
    label = "fused block nodes" if fused else "module by module"
    print(format_steady_state(f"GPT step, {label}", stats))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--wall", action="store_true", help="wall time instead of CPU time")
    p.add_argument("--top", type=int, default=0)
    p.add_argument("--memory", action="store_true",
                   help="also what a warm step allocates (tracemalloc), for both paths")
    args = p.parse_args(argv)
    import os
    import fastnn
    fastnn.set_num_threads(args.threads)
    clock = time.perf_counter if args.wall else time.thread_time
    print(f"GPT {CFG}, batch 12, {args.threads} thread(s), "
          f"{'wall' if args.wall else 'CPU'} time; load average {os.getloadavg()[0]:.1f}")
    for fused in (False, True):
        profile(fused, args.steps, clock, args.top if fused else 0)
    if args.memory:
        for fused in (False, True):
            memory(fused)


if __name__ == "__main__":
    main()
