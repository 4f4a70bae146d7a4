"""Data-parallel training over MPI: allreduce bandwidth, DDP overhead on a GPT step, and a
scaling model for clusters.

    python bench/bench_distributed.py                  # all three (a few minutes)
    python bench/bench_distributed.py --skip-gpt       # bandwidth and scaling model only
    python bench/bench_distributed.py --bandwidth 12.5 --latency 5e-6

It launches itself under mpiexec (found next to the Python executable, as `pip install mpich`
puts it, or on PATH) in worker mode, one thread per rank:

(a) allreduce of a 64 MB float32 buffer between 2 local ranks: fastnn.distributed.all_reduce
    (non-blocking MPI_Iallreduce polled against the timeout) next to plain mpi4py
    comm.Allreduce and Iallreduce + Wait on the same buffer. Algorithm bandwidth = bytes / time;
    bus bandwidth = algbw * 2 (p - 1) / p (what each rank's link carries in a ring allreduce,
    nccl-tests' convention). Times are per iteration the slowest rank's, median of --iters.
(b) overhead: a GPT training step (nanoGPT's CPU config: n_layer 4, n_head 4, n_embd 128,
    block 64, dropout 0, no bias; forward, loss, backward, clip 1.0, AdamW) with 2 ranks x 1
    thread under DistributedDataParallel, each on 6 sequences, against 1 process x 1 thread on
    the same 6 sequences (half of nanoGPT's batch of 12). Both in one job, in alternating
    blocks of --steps steps (--rounds of them): rank 0 alone while the other ranks sleep in a
    barrier, then every rank under DDP, so that load from other processes falls on both alike.
    Target: ratio <= 1.15.
(c) a scaling model: ring allreduce of G gradient bytes over p ranks takes
    t_ar(p) = 2 (p - 1) / p * G / B + 2 (p - 1) * alpha  (B: link bandwidth, alpha: latency per
    message); a step computes in t_c (measured: the CPU time of a 1-thread step, which a busy
    shared machine does not inflate as it does wall time; a fixed batch per rank: weak scaling);
    speed-up(p) = p * t_c / (t_c + t_exposed), with t_exposed = t_ar (no overlap) or
    max(0, t_ar - t_bwd) (the allreduce hidden behind backward, t_bwd ~ 2/3 t_c).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))


# ---------------------------------------------------------------- workers (under mpiexec)
def _threads_1():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, ROOT)
    import fastnn
    fastnn.set_num_threads(1)
    try:
        from fastnn.models.gpt_cli import keep_freed_memory
        keep_freed_memory()
    except Exception:
        pass
    return fastnn


def worker_allreduce(args):
    fastnn = _threads_1()
    import fastnn.distributed as dist
    from mpi4py import MPI
    dist.init_process_group("mpi")
    comm = dist.process_group._S.comm
    rank, p = comm.Get_rank(), comm.Get_size()
    n = int(args.mb * 2**20) // 4
    buf = np.ones(n, np.float32)
    t = fastnn.from_numpy(buf)

    impls = {
        "mpi4py Allreduce (blocking)": lambda: comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM),
        "mpi4py Iallreduce + Wait": lambda: comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM).Wait(),
        "fastnn.distributed.all_reduce": lambda: dist.all_reduce(t),
    }
    times = {k: [] for k in impls}
    for it in range(args.iters + 2):
        for name, fn in impls.items():
            buf[...] = 1.0
            comm.Barrier()
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            if it >= 2:  # two warm-up rounds
                times[name].append(dt)
    assert buf[0] == p  # the last one summed
    allt = comm.gather(times, root=0)
    if rank == 0:
        out = {}
        for name in impls:
            per_iter = np.max([r[name] for r in allt], axis=0)  # the slowest rank
            out[name] = float(np.median(per_iter))
        print("RESULT " + json.dumps({"bytes": n * 4, "ranks": p, "times": out}), flush=True)
    dist.destroy_process_group()


def _gpt(vocab):
    from fastnn.models.gpt import GPT, GPTConfig
    config = GPTConfig(block_size=64, vocab_size=vocab, n_layer=4, n_head=4, n_embd=128,
                       dropout=0.0, bias=False)
    return GPT(config)


def worker_step(args):
    """Step times of a GPT or MLP, in one process or under DDP."""
    fastnn = _threads_1()
    import fastnn.nn.functional as F
    from fastnn.nn.utils import clip_grad_norm_
    ddp = args.ddp
    rank, p = 0, 1
    if ddp:
        import fastnn.distributed as dist
        from fastnn.nn.parallel import DistributedDataParallel as DDP
        dist.init_process_group("mpi")
        rank, p = dist.get_rank(), dist.get_world_size()
    fastnn.manual_seed(0)
    rng = np.random.default_rng(rank)
    B = args.batch
    if args.model == "gpt":
        from fastnn import text
        corpus = text.default_corpus()
        tok = text.CharTokenizer.from_text(corpus)
        data = tok.encode(corpus)
        raw = _gpt(tok.vocab_size)
        opt = raw.configure_optimizers(0.1, 1e-3, (0.9, 0.99))

        def batch():
            x, y = text.get_batch(data, 64, B, rng)
            return fastnn.tensor(x), fastnn.tensor(y)

        def loss_of(m, x, y):
            return m(x, y)[1]
    else:
        import fastnn.nn as nn
        sizes = [int(s) for s in args.model.split("-")[1:]]
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        raw = nn.Sequential(*layers[:-1])
        opt = fastnn.optim.AdamW(raw.parameters(), lr=1e-3)
        X = rng.standard_normal((4096, sizes[0])).astype(np.float32)
        Y = rng.integers(0, sizes[-1], 4096)

        def batch():
            i = rng.integers(0, 4096, B)
            return fastnn.tensor(X[i]), fastnn.tensor(Y[i])

        def loss_of(m, x, y):
            return F.cross_entropy(m(x), y)
    model = DDP(raw, bucket_cap_mb=args.bucket_mb[0]) if ddp else raw
    if args.zero:  # ZeRO-1: AdamW state sharded over the ranks
        from fastnn.distributed.optim import ZeroRedundancyOptimizer
        groups = [{"params": g["params"], "weight_decay": g["weight_decay"]}
                  for g in opt.param_groups]
        full_state = 2 * sum(q._data.nbytes for q in raw.parameters())  # exp_avg, exp_avg_sq
        opt = ZeroRedundancyOptimizer(groups, optimizer_class=type(opt), lr=1e-3,
                                      betas=(0.9, 0.99))
    exposed = [0.0]
    if ddp:  # time spent in DDP's end-of-backward wait (communication not hidden)
        fin = model._finalize

        def timed_finalize():
            t0 = time.perf_counter()
            fin()
            exposed[0] += time.perf_counter() - t0
        model.__dict__["_finalize"] = timed_finalize
    params = list(raw.parameters())
    grad_bytes = sum(q._data.nbytes for q in params)
    times, exp, cpu = [], [], []
    fwd = []
    for s in range(args.steps + 3):
        x, y = batch()
        exposed[0] = 0.0
        c0 = time.process_time()
        t0 = time.perf_counter()
        loss = loss_of(model, x, y)
        t1 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(params, 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        dc = time.process_time() - c0
        if s >= 3:
            times.append(dt)
            cpu.append(dc)
            exp.append(exposed[0])
            fwd.append(t1 - t0)
    res = {"times": times, "exposed": exp, "fwd": fwd, "cpu": cpu}
    if args.zero:
        res["zero_state_bytes"] = opt.local_state_bytes()
        res["full_state_bytes"] = full_state
    if ddp:
        allr = dist.process_group._S.comm.gather(res, root=0)
        buckets = model.bucket_sizes()
    else:
        allr, buckets = [res], []
    if rank == 0:
        step = np.max([r["times"] for r in allr], axis=0)
        print("RESULT " + json.dumps({
            "ranks": p, "batch": B, "model": args.model, "grad_bytes": grad_bytes,
            "n_params": int(sum(q._data.size for q in params)),
            "step": float(np.median(step)), "step_min": float(np.min(step)),
            "cpu": float(np.median([np.median(r["cpu"]) for r in allr])),
            "exposed": float(np.median([np.median(r["exposed"]) for r in allr])),
            "fwd": float(np.median(res["fwd"])), "buckets": buckets,
            "zero_state_bytes": [r.get("zero_state_bytes") for r in allr],
            "full_state_bytes": res.get("full_state_bytes")}), flush=True)
    if ddp:
        dist.destroy_process_group()


def worker_overhead(args):
    """(b) in one job, so that both sides see the same machine: blocks of steps alternate
    between rank 0 alone (1 rank x 1 thread; rank 1 sleeps in a barrier) and all ranks under
    DDP, for each bucket size."""
    fastnn = _threads_1()
    import fastnn.distributed as dist
    from fastnn import text
    from fastnn.nn.parallel import DistributedDataParallel as DDP
    from fastnn.nn.utils import clip_grad_norm_
    dist.init_process_group("mpi")
    comm = dist.process_group._S.comm
    rank, p = comm.Get_rank(), comm.Get_size()
    corpus = text.default_corpus()
    tok = text.CharTokenizer.from_text(corpus)
    data = tok.encode(corpus)
    rng = np.random.default_rng(rank)
    B = args.batch

    def build(wrap=None):
        fastnn.manual_seed(0)
        raw = _gpt(tok.vocab_size)
        opt = raw.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
        return (wrap(raw) if wrap else raw), raw, opt

    runs = {"single": build()}
    for b in args.bucket_mb:
        runs[b] = build(lambda m, b=b: DDP(m, bucket_cap_mb=b))
    exposed = {}
    for b in args.bucket_mb:
        model = runs[b][0]
        fin = model._finalize
        exposed[b] = []

        def timed(fin=fin, acc=exposed[b]):
            t0 = time.perf_counter()
            fin()
            acc.append(time.perf_counter() - t0)
        model.__dict__["_finalize"] = timed

    def step(key):
        model, raw, opt = runs[key]
        x, y = text.get_batch(data, 64, B, rng)
        x, y = fastnn.tensor(x), fastnn.tensor(y)
        c0 = time.process_time()
        t0 = time.perf_counter()
        loss = model(x, y)[1]
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(raw.parameters(), 1.0)
        opt.step()
        return time.perf_counter() - t0, time.process_time() - c0

    def idle_barrier():  # waits without taking a core from rank 0
        req = comm.Ibarrier()
        while not req.Test():
            time.sleep(0.001)

    times = {k: [] for k in runs}
    cpus = {k: [] for k in runs}
    for r in range(args.rounds + 1):  # round 0 warms up
        for key in runs:
            if key == "single" and rank != 0:
                idle_barrier()
                continue
            ts = [step(key) for _ in range(args.steps)]
            if r:
                times[key] += [t for t, _ in ts]
                cpus[key] += [c for _, c in ts]
            if key == "single":
                idle_barrier()
    for b in args.bucket_mb:
        exposed[b] = exposed[b][args.steps:]
    allt = comm.gather((times, exposed, cpus), root=0)
    if rank == 0:
        out = {"ranks": p, "batch": B, "single": float(np.median(times["single"])),
               "single_cpu": float(np.median(cpus["single"])),
               "grad_bytes": sum(q._data.nbytes for q in runs["single"][1].parameters()),
               "n_params": int(sum(q._data.size for q in runs["single"][1].parameters())),
               "ddp": {}}
        for b in args.bucket_mb:
            per_step = np.max([t[b] for t, _, _ in allt], axis=0)  # the slowest rank's
            out["ddp"][str(b)] = {
                "step": float(np.median(per_step)),
                "cpu": float(np.median(np.max([c[b] for _, _, c in allt], axis=0))),
                "exposed": float(np.median(np.concatenate([e[b] for _, e, _ in allt]))),
                "buckets": runs[b][0].bucket_sizes()}
        print("RESULT " + json.dumps(out), flush=True)
    dist.destroy_process_group()


# ---------------------------------------------------------------- driver
def _mpiexec():
    p = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return p if os.access(p, os.X_OK) else shutil.which("mpiexec")


def _launch(n, *wargs, timeout=900):
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    cmd = [sys.executable, HERE, "--worker", *map(str, wargs)]
    if n:
        cmd = [_mpiexec(), "-n", str(n), *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")


def _fmt_t(s):
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def scaling_table(name, t_c, grad_bytes, links, ranks=(2, 8, 64, 512)):
    lines = [f"{name}: t_c = {_fmt_t(t_c)} per step (1 rank, 1 thread, CPU time), G = "
             f"{grad_bytes / 1e6:.2f} MB of gradients"]
    head = f"  {'link':<34}" + "".join(f"{'p=' + str(p):>22}" for p in ranks)
    lines.append(head)
    lines.append(f"  {'':<34}" + "".join(f"{'t_ar   no-ovl  ovl':>22}" for _ in ranks))
    for label, bw, alpha in links:
        row = f"  {label:<34}"
        for p in ranks:
            t_ar = 2 * (p - 1) / p * grad_bytes / bw + 2 * (p - 1) * alpha
            s_no = p * t_c / (t_c + t_ar)
            s_ov = p * t_c / (t_c + max(0.0, t_ar - 2 / 3 * t_c))
            row += f"{_fmt_t(t_ar):>10} {s_no:6.1f}x {s_ov:5.1f}x"
        lines.append(row)
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", nargs="?", const="", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ddp", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--zero", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="gpt", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=6, help=argparse.SUPPRESS)
    ap.add_argument("--bucket-mb", type=float, nargs="+", default=[25.0, 0.25],
                    help="DDP bucket_cap_mb values for (b) (25: PyTorch's default; 0.25)")
    ap.add_argument("--mb", type=float, default=64, help="allreduce buffer, MB (64)")
    ap.add_argument("--iters", type=int, default=10, help="allreduce iterations (10)")
    ap.add_argument("--ranks", type=int, default=2, help="ranks for (a) and (b) (2)")
    ap.add_argument("--steps", type=int, default=8, help="steps per block in (b) (8)")
    ap.add_argument("--rounds", type=int, default=8, help="alternating rounds for (b) (8)")
    ap.add_argument("--skip-gpt", action="store_true", help="skip (b); (c) uses no GPT time")
    ap.add_argument("--bandwidth", type=float, nargs="*", default=None,
                    help="link bandwidths for (c), GB/s (default: 1.25 = 10 Gb/s Ethernet and "
                         "12.5 = 100 Gb/s InfiniBand)")
    ap.add_argument("--latency", type=float, default=None,
                    help="alpha, seconds per message for (c) (default 50e-6 for Ethernet, "
                         "2e-6 for InfiniBand)")
    args, rest = ap.parse_known_args(argv)
    if args.worker is not None:
        kind = args.worker or (rest[0] if rest else "")
        if kind == "allreduce":
            return worker_allreduce(args)
        if kind == "overhead":
            return worker_overhead(args)
        return worker_step(args)

    if _mpiexec() is None:
        sys.exit("bench_distributed: no mpiexec (pip install mpi4py mpich)")
    print("python bench/bench_distributed.py " + " ".join(argv if argv is not None
                                                           else sys.argv[1:]))
    print(f"CPU: {_cpu()}, {len(os.sched_getaffinity(0))} usable cores; load average "
          f"{os.getloadavg()[0]:.2f} at start")
    try:
        from mpi4py import MPI
        print(f"MPI: {MPI.Get_library_version().splitlines()[0].strip()}, mpi4py "
              f"{__import__('mpi4py').__version__}; 1 thread per rank")
    except ImportError:
        pass

    # (a)
    r = _launch(args.ranks, "allreduce", "--mb", args.mb, "--iters", args.iters)
    p, nbytes = r["ranks"], r["bytes"]
    print(f"\n(a) allreduce (sum) of {nbytes / 2**20:.0f} MB float32 between {p} local ranks, "
          f"median of {args.iters} (slowest rank per iteration)")
    print(f"  {'implementation':<32}{'time':>12}{'algbw GB/s':>13}{'busbw GB/s':>13}")
    for name, t in r["times"].items():
        alg = nbytes / t / 1e9
        print(f"  {name:<32}{_fmt_t(t):>12}{alg:>13.2f}{alg * 2 * (p - 1) / p:>13.2f}")

    # (b)
    gpt12 = None
    if not args.skip_gpt:
        r = _launch(args.ranks, "overhead", "--batch", args.batch, "--steps", args.steps,
                    "--rounds", args.rounds, "--bucket-mb", *args.bucket_mb)
        t1 = r["single"]
        print(f"\n(b) GPT training step ({r['n_params'] / 1e6:.2f}M parameters, "
              f"{r['grad_bytes'] / 1e6:.2f} MB of gradients), {args.batch} sequences of 64 "
              f"per rank, in one job: {args.rounds} rounds of blocks of {args.steps} steps "
              f"alternating between rank 0 alone and {args.ranks} ranks under DDP; medians "
              f"(DDP: the slowest rank's step)")
        c1 = r["single_cpu"]
        print(f"  {'run':<50}{'wall':>10}{'ratio':>8}{'cpu':>10}{'ratio':>8}{'exposed':>10}")
        print(f"  {'1 rank x 1 thread, batch ' + str(args.batch):<50}{_fmt_t(t1):>10}{'1':>8}"
              f"{_fmt_t(c1):>10}{'1':>8}")
        for b, d in r["ddp"].items():
            label = (f"{args.ranks} ranks x 1 thread, DDP, {len(d['buckets'])} buckets "
                     f"(cap {float(b):g} MB)")
            print(f"  {label:<50}{_fmt_t(d['step']):>10}{d['step'] / t1:>8.3f}"
                  f"{_fmt_t(d['cpu']):>10}{d['cpu'] / c1:>8.3f}{_fmt_t(d['exposed']):>10}")
        print("  target: wall ratio <= 1.15. cpu: the process's CPU time per step (the slowest "
              "rank's), which leaves out time spent waiting for a core other processes hold; "
              "exposed: time in DDP's end-of-backward wait (communication not hidden behind "
              "backward, plus waiting for the slower rank)")
        gpt12 = _launch(0, "step", "--model", "gpt", "--batch", 12, "--steps", args.steps)
        z = _launch(args.ranks, "step", "--ddp", "--zero", "--model", "gpt", "--batch",
                    args.batch, "--steps", 3)
        full = z["full_state_bytes"]
        print(f"  ZeRO-1 (ZeroRedundancyOptimizer(AdamW)) on {args.ranks} ranks: AdamW state per "
              f"rank " + ", ".join(f"{b / 1e6:.2f} MB" for b in z["zero_state_bytes"]) +
              f" instead of {full / 1e6:.2f} MB unsharded (saving "
              f"{1 - max(z['zero_state_bytes']) / full:.0%} on the fullest rank); step "
              f"{_fmt_t(z['step'])}")

    # (c)
    mlp = _launch(0, "step", "--model", "mlp-64-128-128-10", "--batch", 64, "--steps", 50)
    wide = _launch(0, "step", "--model", "mlp-784-1024-1024-10", "--batch", 128, "--steps", 20)
    bws = args.bandwidth or [1.25, 12.5]
    links = []
    for bw in bws:
        alpha = args.latency if args.latency is not None else (50e-6 if bw < 5 else 2e-6)
        links.append((f"{bw:g} GB/s ({bw * 8:g} Gb/s), alpha {alpha * 1e6:g} us",
                      bw * 1e9, alpha))
    print("\n(c) scaling model, weak scaling (a fixed batch per rank):\n"
          "  t_ar(p) = 2 (p - 1) / p * G / B + 2 (p - 1) * alpha          (ring allreduce)\n"
          "  speed-up(p) = p * t_c / (t_c + t_exposed);  no-ovl: t_exposed = t_ar;  "
          "ovl: t_exposed = max(0, t_ar - 2/3 t_c) (hidden behind backward)")
    if gpt12 is not None:
        print(scaling_table("GPT, batch 12 per rank", gpt12["cpu"], gpt12["grad_bytes"], links))
    print(scaling_table("MLP 64-128-128-10 (the lesson's), batch 64 per rank", mlp["cpu"],
                        mlp["grad_bytes"], links))
    print(scaling_table("MLP 784-1024-1024-10 (stand-in for the CNN), batch 128 per rank",
                        wide["cpu"], wide["grad_bytes"], links))
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
