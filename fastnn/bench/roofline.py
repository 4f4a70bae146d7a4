"""The roofline model of this machine, measured: `fastnn bench --roofline FILE.png`.

A kernel that does F floating-point operations and moves B bytes to and from memory has
arithmetic intensity I = F / B. It cannot run faster than the machine's peak compute, nor faster
than memory can feed it: attainable GFLOP/s = min(peak, bandwidth x I). Both roofs are measured
here, not taken from a data sheet:

    peak       the best GFLOP/s of a large float32 GEMM (fastnn's matmul or numpy's BLAS,
               whichever is faster): about the most this machine's cores do in practice;
    bandwidth  the best GB/s of a large array copy or add (64 MiB arrays, beyond the caches).

Each kernel is then timed on fastnn's backend and placed at (its intensity, its GFLOP/s); the
bytes are the minimum traffic (each input read once, each output written once), so a kernel
on the sloped roof is as fast as memory allows. Timings are the best of a few repeats.
"""
import time

import numpy as np

from .. import kernels

__all__ = ["measure_peak_gflops", "measure_bandwidth_gbs", "kernel_points", "measure_roofline",
           "roofline_figure", "main"]


def _best_seconds(fn, repeat=5, min_time=0.05):
    """The best per-call time of fn over `repeat` batches, each lasting at least min_time."""
    fn()
    number, t = 1, 0.0
    while True:   # calls per batch so that a batch lasts min_time
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        t = time.perf_counter() - t0
        if t >= min_time or number >= 1 << 16:
            break
        number *= 2
    best = t / number
    for _ in range(repeat - 1):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def measure_peak_gflops(n=1024, repeat=5, backend=None):
    """Peak float32 GFLOP/s: the best of fastnn's matmul and numpy's BLAS on an n^3 GEMM.
    Returns (GFLOP/s, which one)."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    flops = 2.0 * n ** 3
    fastnn_s = _best_seconds(lambda: kernels.matmul(a, b, backend=backend), repeat)
    blas_s = _best_seconds(lambda: a @ b, repeat)
    if fastnn_s <= blas_s:
        return flops / fastnn_s / 1e9, "fastnn matmul"
    return flops / blas_s / 1e9, "numpy BLAS"


def measure_bandwidth_gbs(mib=64, repeat=5):
    """Memory bandwidth in GB/s, as STREAM reports it: the best of a copy (one read and one
    write per element) and an add (two reads, one write) on arrays of `mib` MiB each."""
    n = mib * (1 << 20) // 4
    a = np.ones(n, np.float32)
    b = np.ones(n, np.float32)
    c = np.empty_like(a)
    copy_s = _best_seconds(lambda: np.copyto(c, a), repeat, min_time=0.1)
    add_s = _best_seconds(lambda: np.add(a, b, out=c), repeat, min_time=0.1)
    return max(2 * a.nbytes / copy_s, 3 * a.nbytes / add_s) / 1e9


def kernel_points(backend=None, repeat=5, quick=True):
    """[(name, intensity FLOP/byte, GFLOP/s, seconds)] for a few kernels on fastnn's backend,
    from bandwidth-bound elementwise ones to compute-bound GEMMs. FLOP counts are nominal:
    1 for relu, 2 for add-like work, ~20 for gelu's erf, 5 per element for softmax and 8 for
    layer norm; 2 n^3 for a GEMM."""
    rng = np.random.default_rng(0)
    big = 1 << 24 if quick else 1 << 25           # 64 MiB (128 MiB) of float32: beyond L3
    x = rng.standard_normal(big, dtype=np.float32)
    rows = x.reshape(-1, 1024)
    cases = [
        ("relu", lambda: kernels.relu(x, backend=backend), 1.0 * big, 8.0 * big),
        ("gelu", lambda: kernels.gelu(x, backend=backend), 20.0 * big, 8.0 * big),
        ("softmax", lambda: kernels.softmax(rows, backend=backend), 5.0 * big, 8.0 * big),
        ("layer_norm", lambda: kernels.layer_norm(rows, backend=backend), 8.0 * big,
         8.0 * big),
    ]
    for n in ((64, 256, 1024) if quick else (64, 256, 1024, 2048)):
        a = rng.random((n, n), dtype=np.float32)
        b = rng.random((n, n), dtype=np.float32)
        cases.append((f"matmul {n}", lambda a=a, b=b: kernels.matmul(a, b, backend=backend),
                      2.0 * n ** 3, 3.0 * 4 * n * n))
    points = []
    for name, fn, flops, nbytes in cases:
        s = _best_seconds(fn, repeat)
        points.append((name, flops / nbytes, flops / s / 1e9, s))
    return points


def measure_roofline(backend=None, repeat=5, quick=True):
    """Everything the chart needs: {"peak_gflops", "peak_from", "bandwidth_gbs", "points",
    "backend"}."""
    peak, source = measure_peak_gflops(1024, repeat, backend)
    return {"peak_gflops": peak, "peak_from": source,
            "bandwidth_gbs": measure_bandwidth_gbs(64 if quick else 256, repeat),
            "points": kernel_points(backend, repeat, quick),
            "backend": backend or kernels.get_backend().name}


def roofline_figure(result, path=None, title=None, **labels):
    """The chart of measure_roofline's result (fastnn.viz.roofline; labels: its xlabel, ylabel
    and roof_label)."""
    from .. import viz
    points = [(name, inten, g) for name, inten, g, _ in result["points"]]
    if title is None:
        title = (f"roofline of this machine: peak {result['peak_gflops']:.0f} GFLOP/s "
                 f"({result['peak_from']}), memory bandwidth {result['bandwidth_gbs']:.1f} GB/s; "
                 f"kernels on fastnn's {result['backend']} backend")
    return viz.roofline(result["peak_gflops"], result["bandwidth_gbs"], points, path=path,
                        title=title, **labels)


def format_roofline(result):
    """The measured roofs and points as a text table."""
    ridge = result["peak_gflops"] / result["bandwidth_gbs"]
    lines = [f"peak {result['peak_gflops']:.1f} GFLOP/s ({result['peak_from']}, float32 GEMM "
             f"1024^3); bandwidth {result['bandwidth_gbs']:.1f} GB/s (64 MiB copy/add); ridge at "
             f"{ridge:.1f} FLOP/byte",
             f"{'kernel':<14}{'FLOP/byte':>10}{'GFLOP/s':>10}{'roof':>10}{'of roof':>9}"]
    for name, inten, g, _ in result["points"]:
        roof = min(result["peak_gflops"], result["bandwidth_gbs"] * inten)
        lines.append(f"{name:<14}{inten:>10.3g}{g:>10.2f}{roof:>10.1f}{g / roof:>9.0%}")
    return "\n".join(lines)


def main(path, backend=None, repeat=5, quick=True):
    """`fastnn bench --roofline FILE.png`: measure, print the table, write the chart."""
    result = measure_roofline(backend, repeat, quick)
    print(format_roofline(result))
    roofline_figure(result, path=path)
    print(f"roofline chart written to {path}")
    return 0
