"""`fastnn bench`: every backend's kernels against naive numpy, OpenBLAS and PyTorch, side by side.

    fastnn bench                          quick sizes (well under 2 minutes on 2 cores)
    fastnn bench --full                   larger sizes; GEMM also on transformer shapes, NN/NT/TN
    fastnn bench --kernels gemm,gelu      only these kernel families (see --kernels below)
    fastnn bench --backends numba,cython  only these fastnn backends (cuda runs only when named)
    fastnn bench --threads 1,2            one table per thread count, then the scaling
    fastnn bench --train                  whole training steps (MLP, GPT, CNN) vs PyTorch, MFU
    fastnn bench --train gpt --kernels gemm   one training step and one kernel family
    fastnn bench --memory                 also each case's peak extra memory
    fastnn bench --contention --train     quiet vs with a competing busy process: slowdowns
    fastnn bench --json out.json --plot out.png

How it times. Each implementation is called once (Numba compiles here) and its result is checked
against naive numpy's; a wrong one is marked "!". Then the implementations take turns, round-robin,
--repeat times, each turn a batch of calls lasting about 20 ms, and each cell shows that
implementation's median turn (--stat min for the best). Taking turns puts every implementation
under the same background noise, so the ratios hold even when absolute times drift. Before each
turn the bench waits (up to 0.2 s) until the previous turn's threads stop busy-waiting
(OpenBLAS's spin ~0.1 s, OpenMP's ~10 ms), so every turn starts from idle threads. On the 1024^3
GEMM, OpenBLAS is also timed alone first, and a check line compares its column with that.

Training steps (--train): mlp-large (784-512-512-10 @256), mlp-small (64-128-128-10 @64), gpt
(nanoGPT's CPU config), cnn (the digits CNN), each against the same step in PyTorch, timed step by
step in alternating turns (fastnn/bench/train_cases.py). On fastnn's default backend unless
--backends names others. MFU is against the GEMM peak measured in the same run. PyTorch's steps
run in a worker process with PyTorch's own OpenMP defaults (fastnn/bench/worker.py): in fastnn's
process it would inherit the wait policy `import fastnn` sets; --torch-in-process adds that
column too.

Naive numpy is fastnn's reference backend (fastnn/backends/numpy/): every speedup is relative
to it. PyTorch and OpenBLAS (numpy's `a @ b`) are the references a fast kernel should reach.
The kernel families are those declared with bench=Bench(...) in fastnn/kernels/families/; their
cases (fastnn/bench/cases.py) are shared with the pytest-benchmark suite in bench/.
"""
import argparse
import functools
import json
import os
import sys
import time

from ..errors import require
from ..kernels import dispatch
from .cases import SIZES, cases, family_names, impls_for
from .machine import header, machine_info, torch_available, torch_policy_note
from .plot import plot
from .contention import contend
from .report import (MEMORY_LEGEND, format_contention, format_family, format_scaling,
                     format_steady_state, format_train, json_rows)
from .thread_control import ThreadControl
from .memory import steady_state
from .timing import BLAS_SETTLE_S, DEFAULT_REPEAT, SAMPLE_TARGET_S, measure, measure_steps
from .train_cases import TRAIN_NAMES, gemm_peak, train_cases
from .worker import TORCH_HERE, step_builders

TRAIN_TARGET_S = {"tiny": 0.002, "quick": 0.1, "full": 0.3}   # timed steps per turn, seconds


def _parser(families):
    p = argparse.ArgumentParser(prog="fastnn bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true",
                   help="larger sizes, and GEMM on the transformer's shapes in NN/NT/TN")
    p.add_argument("--sizes", choices=SIZES, help=argparse.SUPPRESS)  # 'tiny' is for the tests
    p.add_argument("--kernels", metavar="LIST",
                   help=f"comma-separated kernel families (default all): {','.join(families)}")
    p.add_argument("--backends", metavar="LIST",
                   help="comma-separated fastnn backends (default: every available one but cuda); "
                        "naive numpy always runs, as the baseline")
    p.add_argument("--threads", metavar="LIST",
                   help="comma-separated thread counts: a table at each (fastnn, PyTorch and "
                        "numpy's BLAS all set), then the scaling (default: leave them as they are)")
    p.add_argument("--repeat", type=int, metavar="N",
                   help="round-robin turns per implementation (default 7)")
    p.add_argument("--stat", choices=("median", "min"), default="median",
                   help="which turn to report (default median)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    p.add_argument("--json", metavar="FILE", help="write every result and the machine to FILE")
    p.add_argument("--plot", metavar="FILE.png", help="bar chart of the speedups (matplotlib)")
    p.add_argument("--roofline", metavar="FILE.png",
                   help="measure the machine's peak GFLOP/s and memory bandwidth, place a few "
                        "kernels by arithmetic intensity, write the roofline chart; only that "
                        "(fastnn/bench/roofline.py)")
    p.add_argument("--train", nargs="?", const="all", metavar="LIST",
                   help=f"training steps against PyTorch, with MFU: all, or some of "
                        f"{','.join(TRAIN_NAMES)} (alone, it skips the kernel tables; add "
                        f"--kernels for both)")
    p.add_argument("--torch-in-process", action="store_true",
                   help="--train: also time PyTorch in this process (column 'PyTorch here'), "
                        "where it runs under the OpenMP wait policy fastnn set; the 'PyTorch' "
                        "column always runs in a worker process with PyTorch's own defaults")
    p.add_argument("--memory", action="store_true",
                   help="also each case's peak extra memory (tracemalloc and RSS), and whether "
                        "a warm GPT step allocates anew")
    p.add_argument("--contention", nargs="?", const=1, type=int, metavar="N",
                   help="time the chosen cases quiet, then with N (default 1) competing busy "
                        "processes, and print the slowdowns instead of the usual tables")
    return p


def _csv(text):
    return [x.strip() for x in text.split(",") if x.strip()]


def _choose_backends(parser, text):
    available = dispatch.available_backends()
    if text is None:
        return [b for b in available if b != "cuda"]
    chosen = _csv(text)
    for name in chosen:
        if name not in dispatch.backend_names():
            parser.error(f"unknown backend {name!r}; choose from "
                         f"{', '.join(dispatch.backend_names())}")
        if name not in available:
            parser.error(f"backend {name!r} is unavailable: "
                         f"{dispatch.unavailable_reasons().get(name)}")
    return chosen


def main(argv=None):
    t_start = time.perf_counter()
    all_families = family_names()
    parser = _parser(all_families)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    sizes = args.sizes or ("full" if args.full else "quick")
    families = _csv(args.kernels) if args.kernels else list(all_families)
    for f in families:
        if f not in all_families:
            parser.error(f"unknown kernel family {f!r}; choose from {', '.join(all_families)}")
    if args.train is not None and args.kernels is None:
        families = []   # --train alone: the training steps only
    train_names = []
    if args.train is not None:
        train_names = list(TRAIN_NAMES) if args.train == "all" else _csv(args.train)
        for name in train_names:
            if name not in TRAIN_NAMES:
                parser.error(f"unknown training step {name!r}; choose from all, "
                             f"{', '.join(TRAIN_NAMES)}")
    if args.contention is not None and args.contention < 1:
        parser.error("--contention: the number of busy processes must be >= 1")
    backends = _choose_backends(parser, args.backends)
    # training steps: fastnn's default backend unless --backends names some
    train_backends = backends if args.backends else [dispatch.get_backend().name]
    try:
        threads = [int(t) for t in _csv(args.threads)] if args.threads else []
    except ValueError:
        parser.error(f"--threads takes comma-separated integers, got {args.threads!r}")
    if any(t < 1 for t in threads):
        parser.error("--threads: each count must be >= 1")
    if args.repeat is None:
        args.repeat = DEFAULT_REPEAT[sizes]
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.plot:
        require("matplotlib", "fastnn bench --plot")  # before the run, not after it
    if args.roofline:
        require("matplotlib", "fastnn bench --roofline")
        from .roofline import main as roofline_main
        return roofline_main(args.roofline, backend=args.backends and backends[0],
                             repeat=min(args.repeat, 5), quick=sizes != "full")
    with_torch = not args.no_torch and torch_available()
    settle = BLAS_SETTLE_S if sizes != "tiny" else 0.0

    control = ThreadControl(with_torch)
    info = machine_info(with_torch)
    print(header(info, args, sizes), flush=True)
    if threads:
        print(f"each table sets fastnn (OpenMP, Numba), PyTorch and numpy's BLAS to "
              f"{', '.join(map(str, threads))} thread(s)")
    if not with_torch:
        print("PyTorch: " + ("left out (--no-torch)" if args.no_torch else "not installed"))

    if args.memory:
        print(MEMORY_LEGEND)
    train_impls = train_backends + (["torch"] if with_torch else [])
    if with_torch and args.torch_in_process:
        train_impls.append(TORCH_HERE)
    if with_torch and train_names:
        print(torch_policy_note())
    if args.contention is not None:
        try:
            for n_threads in threads or [None]:
                if n_threads is not None:
                    control.set(n_threads)
                _contention(args, sizes, families, backends, with_torch, train_names,
                            train_impls, settle, info, n_threads)
        finally:
            if threads:
                control.restore()
        print(f"\ndone in {time.perf_counter() - t_start:.1f} s")
        return 0

    all_measured = []   # (threads, family, case, {impl: Result})
    train_rows = []
    first_calls_s = 0.0
    try:
        for n_threads in threads or [None]:
            if n_threads is not None:
                control.set(n_threads)
                print(f"\n=== {n_threads} thread(s) ===", flush=True)
            for family in families:
                measured = []
                for case in cases(family, sizes, args.dtype):
                    results = measure(case, impls_for(case, backends, with_torch), args.repeat,
                                      SAMPLE_TARGET_S[sizes], settle, memory=args.memory)
                    first_calls_s += sum(r.first_call_s or 0.0 for r in results.values())
                    measured.append((case, results))
                    all_measured.append((n_threads, family, case, results))
                print("\n" + format_family(family, measured, args.stat), flush=True)
            if train_names:
                train_rows += _train(args, sizes, train_names, train_impls, settle, n_threads)
    finally:
        if threads:
            control.restore()
    thread_list = threads or [None]
    if len(threads) > 1 and all_measured:
        print("\n" + format_scaling(all_measured, threads, args.stat))
    wall = time.perf_counter() - t_start
    info = machine_info(with_torch)  # again: Numba's threading layer is known once it has run
    layer = info["backends"].get("numba", {}).get("threading_layer")
    print(f"\ndone in {wall:.1f} s (first calls, including Numba compilation: "
          f"{first_calls_s:.1f} s)"
          + (f"; Numba threading layer: {layer}" if layer else ""))
    if args.json:
        doc = {"schema": "fastnn-bench/1", "argv": argv, "sizes": sizes, "dtype": args.dtype,
               "stat": args.stat, "repeat": args.repeat, "backends": backends,
               "torch": with_torch, "wall_s": wall, "machine": info,
               "rows": json_rows(all_measured, args.stat, info["threads"]["fastnn"]),
               "train": train_rows}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot and all_measured:
        t_list = [t or info["threads"]["fastnn"] for t in thread_list]
        relabeled = [(t or info["threads"]["fastnn"], f, c, r) for t, f, c, r in all_measured]
        plot(relabeled, t_list, args.stat, args.plot,
             f"fastnn bench ({sizes}, {args.dtype}) on {info['cpu']}, "
             f"{info['cpus_usable']} cores")
        print(f"wrote {args.plot}")
    return 0


def _train(args, sizes, names, impls, settle, n_threads):
    """The training steps' table (and the --memory check of the GPT step); its JSON rows."""
    peak, how = gemm_peak(128 if sizes == "tiny" else 1024, settle_s=settle)
    measured, rows = [], []
    for case in train_cases(sizes, names):
        results = measure_steps(step_builders(case, impls, n_threads), args.repeat,
                                TRAIN_TARGET_S[sizes], settle, memory=args.memory)
        measured.append((case, results))
        for impl, r in results.items():
            t = r.time(args.stat)
            rows.append({"case": case.name, "label": case.label, "impl": impl,
                         "threads": n_threads, "status": r.status, "note": r.note,
                         "flops": case.flops, "time_s": t, "samples_s": r.samples,
                         "mfu": case.flops / t / peak if t else None, "gemm_peak_flops": peak,
                         "mem_traced_bytes": r.mem_traced, "mem_rss_bytes": r.mem_rss})
    print("\n" + format_train(measured, args.stat, peak, how), flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:
        print(f"note: load average {load:.1f}: the GEMM peak was measured under that load too, "
              f"and a 1024^3 GEMM loses more to it than small steps do, so MFU reads high")
    if args.memory:
        for case in train_cases(sizes, ["gpt"]) if "gpt" in names else []:
            for impl in impls:
                if impl not in ("torch", TORCH_HERE):
                    stats = steady_state(case.build(impl))
                    print(format_steady_state(f"{case.label} on fastnn {impl}", stats))
    return rows


def _contention(args, sizes, families, backends, with_torch, train_names, train_impls, settle,
                info, n_threads):
    """The --contention tables: each chosen case quiet, then with busy processes."""
    n = args.contention
    title = (f"contention: {n} busy process(es) on {info['cpus_usable']} usable cores"
             + (f", {n_threads} thread(s)" if n_threads else ""))
    measured = []
    for family in families:
        for case in cases(family, sizes, args.dtype):
            quiet, loaded = contend(case, impls_for(case, backends, with_torch), n,
                                    args.repeat, SAMPLE_TARGET_S[sizes], settle)
            measured.append((case, quiet, loaded))
    for case in train_cases(sizes, train_names):
        quiet, loaded = contend(case, train_impls, n, args.repeat, TRAIN_TARGET_S[sizes],
                                settle, builders=step_builders(case, train_impls, n_threads))
        measured.append((case, quiet, loaded))
    if measured:
        print("\n" + format_contention(title, measured), flush=True)
