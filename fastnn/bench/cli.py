"""`fastnn bench`: every backend's kernels against naive numpy, OpenBLAS and PyTorch, side by side.

    fastnn bench                          quick sizes (well under 2 minutes on 2 cores)
    fastnn bench --full                   larger sizes; GEMM also on transformer shapes, NN/NT/TN
    fastnn bench --kernels gemm,gelu      only these kernel families (see --kernels below)
    fastnn bench --backends numba,cython  only these fastnn backends (cuda runs only when named)
    fastnn bench --threads 1,2            one table per thread count, then the scaling
    fastnn bench --json out.json --plot out.png

How it times. Each implementation is called once (Numba compiles here) and its result is checked
against naive numpy's; a wrong one is marked "!". Then the implementations take turns, round-robin,
--repeat times, each turn a batch of calls lasting about 20 ms, and each cell shows that
implementation's median turn (--stat min for the best). Taking turns puts every implementation
under the same background noise, so the ratios hold even when absolute times drift. After a turn
that called OpenBLAS the bench idles 0.12 s, while OpenBLAS's threads stop busy-waiting. On the
1024^3 GEMM, OpenBLAS is also timed alone first; a note follows the table when its column is more
than 1.3x slower than that.

Naive numpy is fastnn's reference backend (fastnn/backends/numpy/): every speedup is relative
to it. PyTorch and OpenBLAS (numpy's `a @ b`) are the references a fast kernel should reach.
The kernel families are those declared with bench=Bench(...) in fastnn/kernels/families/; their
cases (fastnn/bench/cases.py) are shared with the pytest-benchmark suite in bench/.
"""
import argparse
import json
import sys
import time

from ..errors import require
from ..kernels import dispatch
from .cases import SIZES, cases, family_names, impls_for
from .machine import header, machine_info, torch_available
from .plot import plot
from .report import format_family, format_scaling, json_rows
from .thread_control import ThreadControl
from .timing import BLAS_SETTLE_S, DEFAULT_REPEAT, SAMPLE_TARGET_S, measure


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
    backends = _choose_backends(parser, args.backends)
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

    all_measured = []   # (threads, family, case, {impl: Result})
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
                                      SAMPLE_TARGET_S[sizes], settle)
                    first_calls_s += sum(r.first_call_s or 0.0 for r in results.values())
                    measured.append((case, results))
                    all_measured.append((n_threads, family, case, results))
                print("\n" + format_family(family, measured, args.stat), flush=True)
    finally:
        if threads:
            control.restore()
    thread_list = threads or [None]
    if len(threads) > 1:
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
               "rows": json_rows(all_measured, args.stat, info["threads"]["fastnn"])}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        t_list = [t or info["threads"]["fastnn"] for t in thread_list]
        relabeled = [(t or info["threads"]["fastnn"], f, c, r) for t, f, c, r in all_measured]
        plot(relabeled, t_list, args.stat, args.plot,
             f"fastnn bench ({sizes}, {args.dtype}) on {info['cpu']}, "
             f"{info['cpus_usable']} cores")
        print(f"wrote {args.plot}")
    return 0
