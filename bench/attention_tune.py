"""Attention bench: fused C (cython backend) and Numba kernels vs PyTorch's CPU
scaled_dot_product_attention and the naive numpy reference; then peak extra memory.

    python bench/attention_tune.py                  # timing table + memory table, 2 threads
    python bench/attention_tune.py --rounds 11 --no-memory
    python bench/attention_tune.py --memory-only --mem-t 1024 4096
    python bench/attention_tune.py --tiles          # sweep the C kernels' tile sizes (needs gcc)

Timing: every implementation runs one batch per round, in turn (alternating, so machine noise
hits all of them alike), and a batch's time is its fastest call; the table gives the best and
the median batch over the rounds, and ratios of medians. Between batches the bench sleeps
(--pause): OpenMP and OpenBLAS pools spin briefly after a call and would steal the 2 cores.
torch gets the same thread count (torch.set_num_threads). fwd+bwd = forward, then backward from
its out and lse (fastnn) or out.backward(dout) on leaf tensors (torch).

Memory: each (implementation, T, pass) runs in a fresh subprocess, which allocates its inputs,
warms up on a tiny problem, then runs once and reports (a) the growth of ru_maxrss over that
call (the peak resident size during the call minus the size before it, via Linux's clear_refs
reset of VmHWM: outputs, temporaries, scratch) and (b) tracemalloc's
peak of numpy allocations during it plus, for the C kernels, the scratch they report allocating
(tracemalloc does not see malloc in C or torch's allocator; torch shows n/a there). The last
column is the size of one float32 score matrix over all heads, what the naive version holds.
"""
import argparse
import json
import os
import subprocess
import sys
import time

IMPLS = ("fused-c", "numba", "torch", "numpy")

# --tiles: a C driver linked straight to csrc/attention.c, rebuilt per tile size (-D FWD_BQ=...).
TILE_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <omp.h>
#include "attention.h"
int main(int argc, char **argv) {   /* iters bwd(0/1) bh t d causal -> best ms */
    int iters = atoi(argv[1]), bwd = atoi(argv[2]), bh = atoi(argv[3]), t = atoi(argv[4]);
    int d = atoi(argv[5]), causal = atoi(argv[6]);
    size_t n = (size_t)bh * t * d;
    float *x = malloc(8 * n * sizeof(float)), *lse = malloc((size_t)bh * t * sizeof(float));
    for (size_t i = 0; i < 8 * n; i++) x[i] = rand() / (float)RAND_MAX - 0.5f;
    float *q = x, *k = x + n, *v = x + 2 * n, *o = x + 3 * n, *dout = x + 4 * n;
    float *dq = x + 5 * n, *dk = x + 6 * n, *dv = x + 7 * n;
    double best = 1e30, scale = 0.125;
    fnn_attention_forward_f32(q, k, v, o, lse, bh, t, t, d, causal, scale);
    for (int it = 0; it < iters; it++) {
        double t0 = omp_get_wtime();
        if (bwd) fnn_attention_backward_f32(dout, q, k, v, o, lse, dq, dk, dv, bh, t, t, d,
                                            causal, scale);
        else fnn_attention_forward_f32(q, k, v, o, lse, bh, t, t, d, causal, scale);
        double dt = omp_get_wtime() - t0;
        if (dt < best) best = dt;
    }
    printf("%.3f\n", best * 1e3);
    return 0;
}
"""
TILE_SWEEP = {"fwd": ("FWD_BQ", "FWD_BK", [32, 64, 128], [64, 128, 256]),
              "bwd": ("BWD_BQ", "BWD_BK", [64, 128, 256], [32, 64, 128])}


def tiles(args):
    """Best-of time per tile size, variants run alternately; the default is marked *."""
    import re
    import shutil
    import tempfile
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    csrc = os.path.join(root, "csrc")
    with open(os.path.join(csrc, "attention.c")) as f:
        defaults = dict(re.findall(r"#define (\w+_B[QK]) (\d+)", f.read()))
    b, h, t, d = args.shape
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    tmp = tempfile.mkdtemp(prefix="attn_tiles_")
    try:
        src = os.path.join(tmp, "driver.c")
        with open(src, "w") as f:
            f.write(TILE_DRIVER)
        for name, (mq, mk, bqs, bks) in TILE_SWEEP.items():
            exes = {}
            for bq in bqs:
                for bk in bks:
                    exe = os.path.join(tmp, f"{name}_{bq}_{bk}")
                    subprocess.run(["gcc", "-O3", "-fopenmp", "-fno-math-errno", "-std=gnu11",
                                    f"-D{mq}={bq}", f"-D{mk}={bk}", "-I", csrc, src,
                                    os.path.join(csrc, "attention.c"),
                                    os.path.join(csrc, "cpu.c"), "-o", exe, "-lm"], check=True)
                    exes[(bq, bk)] = exe
            best = {key: float("inf") for key in exes}
            for _ in range(args.rounds):
                for key, exe in exes.items():
                    res = subprocess.run([exe, str(args.calls * 3), str(int(name == "bwd")),
                                          str(b * h), str(t), str(d), "1"],
                                         capture_output=True, text=True, env=env, check=True)
                    best[key] = min(best[key], float(res.stdout))
            print(f"# {name}, causal, float32, B*H={b * h} T=S={t} D={d}, {args.threads} threads:"
                  f" best ms per ({mq}, {mk})")
            for (bq, bk), ms in sorted(best.items(), key=lambda kv: kv[1]):
                mark = "*" if (str(bq), str(bk)) == (defaults.get(mq), defaults.get(mk)) else " "
                print(f"  {mark} {bq:4d} x {bk:4d}  {ms:8.3f}")
    finally:
        shutil.rmtree(tmp)


def make_inputs(b, h, t, d, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((b, h, t, d)).astype(np.float32) for _ in range(4)]


def runners(q, k, v, dout, causal, impls):
    """name -> (forward callable, forward+backward callable) on the same inputs."""
    import numpy as np
    from fastnn import kernels
    scale = 1 / np.sqrt(q.shape[-1])
    out = {}

    def fastnn_pair(backend):
        def fwd():
            return kernels.attention(q, k, v, causal=causal, backend=backend)

        def fwd_bwd():
            o, lse = fwd()
            return kernels.attention_backward(dout, q, k, v, o, lse, causal=causal,
                                              backend=backend)
        return fwd, fwd_bwd

    if "fused-c" in impls:
        out["fused-c"] = fastnn_pair("cython")
    if "numba" in impls:
        out["numba"] = fastnn_pair("numba")
    if "numpy" in impls:
        reference = fastnn.kernels.load("numpy")  # the numpy reference backend

        def np_fwd():
            return reference.attention(q, k, v, causal, scale)

        def np_fwd_bwd():
            o, lse = np_fwd()
            return reference.attention_backward(dout, q, k, v, o, lse, causal, scale)
        out["numpy"] = (np_fwd, np_fwd_bwd)
    if "torch" in impls:
        import torch
        sdpa = torch.nn.functional.scaled_dot_product_attention
        tq, tk, tv, tdo = (torch.from_numpy(x) for x in (q, k, v, dout))

        def t_fwd():
            with torch.no_grad():
                return sdpa(tq, tk, tv, is_causal=causal)

        def t_fwd_bwd():
            lq, lk, lv = (x.detach().requires_grad_() for x in (tq, tk, tv))
            sdpa(lq, lk, lv, is_causal=causal).backward(tdo)
            return lq.grad, lk.grad, lv.grad
        out["torch"] = (t_fwd, t_fwd_bwd)
    return out


def timing(args):
    import numpy as np
    import torch
    import fastnn
    from fastnn.backends.cython import _attention
    fastnn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    b, h, t, d = args.shape
    q, k, v, dout = make_inputs(b, h, t, d)
    print(f"# attention, float32, B={b} H={h} T=S={t} D={d}, {args.threads} threads, C path "
          f"{_attention.cpu_path()}, torch {torch.__version__} "
          f"({torch.backends.cpu.get_cpu_capability()})")
    print(f"{'case':<16}{'impl':<9}{'best ms':>9}{'median ms':>11}{'numpy/x':>9}{'torch/x':>9}")
    for causal in (True, False):
        run = runners(q, k, v, dout, causal, args.impls)
        for which, label in ((0, "fwd"), (1, "fwd+bwd")):
            fns = {name: pair[which] for name, pair in run.items()}
            for f in fns.values():   # warm up: JIT compiles, thread pools, page faults
                f()
            batches = {name: [] for name in fns}
            for _ in range(args.rounds):
                for name, f in fns.items():
                    if name == "numpy" and which == 1 and len(batches[name]) >= 3:
                        continue   # the slow reference: three batches suffice
                    calls = []
                    for _ in range(args.calls if name != "numpy" else 1):
                        t0 = time.perf_counter()
                        f()
                        calls.append(time.perf_counter() - t0)
                    batches[name].append(min(calls))
                    time.sleep(args.pause)
            med = {name: float(np.median(x)) * 1e3 for name, x in batches.items()}
            case = f"{'causal' if causal else 'full'} {label}"
            for name, x in batches.items():
                ratio_np = f"{med['numpy'] / med[name]:9.1f}" if "numpy" in med else " " * 9
                ratio_t = f"{med['torch'] / med[name]:9.2f}" if "torch" in med else " " * 9
                print(f"{case:<16}{name:<9}{min(x) * 1e3:9.2f}{med[name]:11.2f}{ratio_np}{ratio_t}")
            sys.stdout.flush()


def _proc_status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss():
    """Reset the peak resident size to the current one (Linux: clear_refs 5); return it in KiB.
    Without that, ru_maxrss keeps the peak of imports and input set-up and hides small calls."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _proc_status_kib("VmRSS")
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss():
    try:
        return _proc_status_kib("VmHWM")
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_child(impl, t, passes, threads):
    """Runs in a subprocess: peak extra memory of one call (see the module docstring)."""
    import tracemalloc
    import fastnn
    fastnn.set_num_threads(threads)
    if impl == "torch":
        import torch
        torch.set_num_threads(threads)
    q, k, v, dout = make_inputs(1, 8, t, 64)
    warm = make_inputs(1, 2, 80, 64)
    runners(*warm, True, [impl])[impl][passes]()
    fn = runners(q, k, v, dout, True, [impl])[impl][passes]
    rss0 = reset_peak_rss()
    tracemalloc.start()
    fn()
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss1 = peak_rss()
    scratch = None
    if impl == "fused-c":
        from fastnn.backends.cython import _attention
        scratch = _attention.scratch_bytes()   # the last call's: backward's when passes == 1
    print(json.dumps({"rss_kib": rss1 - rss0, "traced": traced, "scratch": scratch}))


def memory(args):
    mib = 1 / 2 ** 20
    inputs = 4 * 8 * 64 * 4  # bytes per position of q, k, v, dout at H=8, D=64
    print(f"\n# peak extra memory of one causal call, float32, B=1 H=8 D=64 (inputs: "
          f"{inputs / 1024:.0f} KiB per position, not counted)")
    print(f"{'pass':<9}{'impl':<9}{'T':>6}{'peak RSS +MiB':>15}{'numpy+C MiB':>13}"
          f"{'H*T*T f32 MiB':>15}")
    # Fixed glibc thresholds: every block over 64 KiB is its own mapping, returned when freed,
    # so a call's buffers cannot hide in heap pages that set-up freed earlier.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    for passes, label in ((0, "fwd"), (1, "fwd+bwd")):
        for impl in args.impls:
            for t in args.mem_t:
                res = subprocess.run(
                    [sys.executable, __file__, "--memory-child", impl, str(t), str(passes),
                     "--threads", str(args.threads)],
                    capture_output=True, text=True, timeout=900, env=env)
                if res.returncode != 0:
                    print(f"{label:<9}{impl:<9}{t:>6}  failed: {res.stderr.strip()[-200:]}")
                    continue
                r = json.loads(res.stdout.strip().splitlines()[-1])
                counted = r["traced"] + (r["scratch"] or 0)
                counted = f"{counted * mib:13.1f}" if impl != "torch" else f"{'n/a':>13}"
                print(f"{label:<9}{impl:<9}{t:>6}{r['rss_kib'] / 1024:15.1f}{counted}"
                      f"{8 * t * t * 4 * mib:15.0f}")
                sys.stdout.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", type=int, nargs=4, default=[1, 8, 1024, 64],
                   metavar=("B", "H", "T", "D"))
    p.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=3, help="calls per batch")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pause", type=float, default=0.05, help="seconds between batches")
    p.add_argument("--mem-t", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--memory-only", action="store_true")
    p.add_argument("--tiles", action="store_true", help="only sweep the C tile sizes")
    p.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        impl, t, passes = args.memory_child
        memory_child(impl, int(t), int(passes), args.threads)
        return
    if args.tiles:
        tiles(args)
        return
    if not args.memory_only:
        timing(args)
    if not args.no_memory:
        memory(args)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
