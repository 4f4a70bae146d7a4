"""Check and time every cuda-backend kernel on a real GPU, in about two minutes.

    python bench/cuda_check.py                 # medium shapes, float32 timed, float64 checked
    python bench/cuda_check.py --only gemm,attention --dtype float32
    NUMBA_ENABLE_CUDASIM=1 python bench/cuda_check.py --quick    # tiny shapes on the simulator
    python bench/cuda_check.py --compile-only   # no GPU needed: compile every kernel to PTX

--compile-only types and compiles every kernel launch (GPU block/tile sizes, both dtypes) for
compute capability 9.0 with NVVM, and runs `ptxas -v` on the PTX when ptxas is on PATH to show
registers and spills. The simulator runs kernels as Python and never type-checks them, so this
is the check that a kernel will compile on a GPU at all. Needs libNVVM and NVRTC (a CUDA toolkit,
or `pip install nvidia-cuda-nvrtc` with LD_LIBRARY_PATH pointing at its lib/ folder).

For each kernel: the result against the numpy reference (normalized max error, max|got - want|
/ max|want|), the device time (CUDA events around back-to-back calls on device arrays, after a
first call that compiles; it includes numba's launch overhead and output allocation), the
end-to-end time of the host-array entry point (copies in and out included), the numpy
reference's time on this machine's CPU, and throughput (TFLOP/s for GEMM and attention, GB/s of
compulsory traffic otherwise). Exits 1 when any result is off or any kernel fails.
"""
import argparse
import dataclasses
import math
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

# The normalized max error each dtype must stay under (sums of 1000s of terms in float32).
TOLERANCE = {np.float32: 2e-4, np.float64: 1e-10}


@dataclasses.dataclass
class Case:
    kernel: str
    label: str                   # shape summary for the table
    make: object                 # (rng, dtype) -> the kernel's argument tuple
    inplace: tuple = ()          # argument indices the kernel updates (their values are checked)
    flops: float = 0.0           # > 0: report TFLOP/s
    config: object = None        # a cuda_common.LaunchConfig to run under (GEMM tile choices)


def randn(rng, shape, dtype):
    return rng.standard_normal(shape, dtype=np.float64).astype(dtype)


def build_cases(quick, dtype, cuda_common):
    """The kernels and shapes: medium ones on a GPU (smaller for float64), tiny with --quick."""
    f64 = dtype == np.float64
    if quick:
        n, rows, cols, g, t, d, h, vocab = 100, 6, 37, 24, 13, 16, 2, 11
    elif f64:
        n, rows, cols, g, t, d, h, vocab = 1 << 20, 1024, 1024, 512, 256, 64, 8, 8192
    else:
        n, rows, cols, g, t, d, h, vocab = 1 << 22, 4096, 1024, 1024, 1024, 64, 8, 8192
    cases = []

    def add(kernel, label, make, **kw):
        cases.append(Case(kernel, label, make, **kw))

    def tiles(tile):
        return dataclasses.replace(cuda_common.launch_config(), gemm_tile=tile,
                                   gemm_tile_large=tile)

    for ta, tb in ((False, False), (False, True), (True, False), (True, True)):
        add("gemm", f"{g}^3 {'T' if ta else 'N'}{'T' if tb else 'N'}",
            lambda r, dt, ta=ta, tb=tb: (randn(r, (g, g), dt), randn(r, (g, g), dt),
                                         np.zeros((g, g), dt), ta, tb, 1.0, 0.0),
            inplace=(2,), flops=2.0 * g ** 3)
    add("gemm", f"{g}x{g // 2}x{g + 3} a=.5 b=-2",
        lambda r, dt: (randn(r, (g, g + 3), dt), randn(r, (g + 3, g // 2), dt),
                       randn(r, (g, g // 2), dt), False, False, 0.5, -2.0),
        inplace=(2,), flops=2.0 * g * (g // 2) * (g + 3))
    if not quick and not f64:
        big = 2 * g
        for tile in (cuda_common.GPU.gemm_tile, cuda_common.GPU.gemm_tile_large):
            add("gemm", f"{big}^3 tile {tile[0]}x{tile[1]}/{tile[3]}x{tile[4]}",
                lambda r, dt: (randn(r, (big, big), dt), randn(r, (big, big), dt),
                               np.zeros((big, big), dt), False, False, 1.0, 0.0),
                inplace=(2,), flops=2.0 * big ** 3, config=tiles(tile))
    nb, gb = (3, 9) if quick else (16, g // 4)
    add("gemm_batched", f"{nb}x{gb}^3 NT",
        lambda r, dt: (randn(r, (nb, gb, gb), dt), randn(r, (nb, gb, gb), dt),
                       np.zeros((nb, gb, gb), dt), False, True, 1.0, 0.0),
        inplace=(2,), flops=2.0 * nb * gb ** 3)

    add("bias_add", f"{rows}x{cols}", lambda r, dt: (randn(r, (rows, cols), dt),
                                                     randn(r, cols, dt)))
    add("bias_grad", f"{rows}x{cols}", lambda r, dt: (randn(r, (rows, cols), dt),))
    for name, extra in (("relu", ()), ("leaky_relu", (0.01,)), ("sigmoid", ()), ("tanh", ()),
                        ("gelu", (False,)), ("gelu", (True,))):
        tag = f"{n}" + (" tanh" if extra == (True,) else "")
        add(name, tag, lambda r, dt, extra=extra: (randn(r, n, dt) * 3, *extra))
        add(name + "_backward", tag,
            lambda r, dt, extra=extra, name=name: (randn(r, n, dt), _saved(name, r, n, dt),
                                                   *extra))
    add("mse_loss", f"{n}", lambda r, dt: (randn(r, n, dt), randn(r, n, dt)))

    for name in ("softmax", "log_softmax"):
        add(name, f"{rows}x{cols}", lambda r, dt: (randn(r, (rows, cols), dt) * 3,))
        add(name + "_backward", f"{rows}x{cols}",
            lambda r, dt, name=name: (randn(r, (rows, cols), dt),
                                      _row_saved(name, randn(r, (rows, cols), dt))))
    ce_cols = 11 if quick else (4 * cols if not f64 else cols)

    def ce_args(r, dt):
        targets = r.integers(0, ce_cols, rows).astype(np.int64)
        targets[::7] = -100
        return randn(r, (rows, ce_cols), dt) * 3, targets, -100, 1.0 / rows
    add("cross_entropy", f"{rows}x{ce_cols}", ce_args)
    ln_cols = cols if quick else 768
    ln_rows = rows * cols // ln_cols

    def ln_args(r, dt):
        return (randn(r, (ln_rows, ln_cols), dt) + 1, randn(r, ln_cols, dt),
                randn(r, ln_cols, dt), 1e-5)
    add("layer_norm", f"{ln_rows}x{ln_cols}", ln_args)

    def ln_back_args(r, dt):
        reference = fastnn.kernels.load("numpy")  # the numpy reference backend
        x, w, b, eps = ln_args(r, dt)
        _, mean, rstd = reference.layer_norm(x, w, b, eps)
        return randn(r, x.shape, dt), x, w, mean, rstd
    add("layer_norm_backward", f"{ln_rows}x{ln_cols}", ln_back_args)

    emb_rows, emb_cols = (20, 5) if quick else (rows * 2, 768)
    add("embedding", f"{vocab}x{emb_cols}[{emb_rows}]",
        lambda r, dt: (randn(r, (vocab, emb_cols), dt),
                       r.integers(0, vocab, emb_rows).astype(np.int64)))
    add("embedding_backward", f"{emb_rows}x{emb_cols}->{vocab}",
        lambda r, dt: (randn(r, (emb_rows, emb_cols), dt),
                       r.integers(0, vocab // 4 + 1, emb_rows).astype(np.int64), vocab))

    add("sgd_step", f"{n} nesterov",
        lambda r, dt: (randn(r, n, dt), randn(r, n, dt), randn(r, n, dt), 0.1, 0.9, 0.0, True,
                       1e-4, False), inplace=(0, 2))
    add("adam_step", f"{n} adamw",
        lambda r, dt: (randn(r, n, dt), randn(r, n, dt), randn(r, n, dt) * 0.1,
                       np.abs(randn(r, n, dt)) * 0.01, 10, 1e-3, 0.9, 0.999, 1e-8, 0.1, True),
        inplace=(0, 2, 3))

    for causal in (False, True):
        tag = f"1x{h}x{t}x{d}" + (" causal" if causal else "")
        pairs = t * t / 2 if causal else t * t
        add("attention", tag,
            lambda r, dt, causal=causal: (randn(r, (1, h, t, d), dt), randn(r, (1, h, t, d), dt),
                                          randn(r, (1, h, t, d), dt), causal, d ** -0.5),
            flops=4.0 * h * pairs * d)

        def attn_back_args(r, dt, causal=causal):
            reference = fastnn.kernels.load("numpy")  # the numpy reference backend
            q, k, v = (randn(r, (1, h, t, d), dt) for _ in range(3))
            out, lse = reference.attention(q, k, v, causal, d ** -0.5)
            return randn(r, q.shape, dt), q, k, v, out, lse, causal, d ** -0.5
        add("attention_backward", tag, attn_back_args, flops=10.0 * h * pairs * d)
    return cases


def _saved(name, r, n, dt):
    """What the backward kernel's second argument is: the forward's input x or output y."""
    x = randn(r, n, dt) * 3
    if name == "sigmoid":
        return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(dt)
    if name == "tanh":
        return np.tanh(x)
    return x


def _row_saved(name, x):
    reference = fastnn.kernels.load("numpy")  # the numpy reference backend
    return getattr(reference, name)(x)


def _copy(args):
    return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)


def _outputs(result, args, inplace):
    if inplace:
        return [args[i] for i in inplace]
    return list(result) if isinstance(result, tuple) else [result]


def _max_error(got, want):
    worst = 0.0
    for g, w in zip(got, want):
        g = np.asarray(g, dtype=np.float64)
        w = np.asarray(w, dtype=np.float64)
        if g.shape != w.shape:
            return math.inf
        if not np.array_equal(np.isfinite(g), np.isfinite(w)):
            return math.inf
        scale = max(np.abs(w[np.isfinite(w)]).max(initial=0.0), 1e-30)
        diff = np.abs(g - w)[np.isfinite(w)].max(initial=0.0)
        worst = max(worst, diff / scale)
    return worst


def _nbytes(args, outputs):
    return sum(a.nbytes for a in list(args) + list(outputs) if isinstance(a, np.ndarray))


def run_case(case, dtype, cu, reference, cuda, rng, budget_s, quick):
    args = case.make(rng, dtype)
    ref_args = _copy(args)
    t0 = time.perf_counter()
    want = _outputs(getattr(reference, case.kernel)(*ref_args), ref_args, case.inplace)
    ref_s = time.perf_counter() - t0
    got_args = _copy(args)
    got = _outputs(getattr(cu, case.kernel)(*got_args), got_args, case.inplace)  # compiles too
    err = _max_error(got, want)
    ok = err <= TOLERANCE[dtype]

    # end to end: host arrays in, host arrays out
    e2e = []
    for _ in range(1 if quick else 3):
        a = _copy(args)
        t0 = time.perf_counter()
        getattr(cu, case.kernel)(*a)
        e2e.append(time.perf_counter() - t0)

    # device only: arguments already on the device
    device_fn = cu.device_kernel(case.kernel)
    d_args = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
    device_fn(*d_args)
    cuda.synchronize()
    t0 = time.perf_counter()
    device_fn(*d_args)
    cuda.synchronize()
    once = time.perf_counter() - t0
    reps = 1 if quick else int(min(50, max(3, budget_s / max(once, 1e-6))))
    start, end = cuda.event(), cuda.event()
    t0 = time.perf_counter()
    start.record()
    for _ in range(reps):
        device_fn(*d_args)
    end.record()
    end.synchronize()
    wall = (time.perf_counter() - t0) / reps
    event_ms = start.elapsed_time(end) / reps
    device_s = event_ms / 1e3 if event_ms > 0 else wall   # the simulator records no event times
    if case.flops:
        rate = f"{case.flops / device_s / 1e12:7.2f} TF/s"
    else:
        rate = f"{_nbytes(args, want) / device_s / 1e9:7.1f} GB/s"
    return ok, err, device_s, min(e2e), ref_s, rate


def compile_only(cc=(9, 0)):
    """Compile every kernel launch of the cases to PTX without a GPU; returns an exit code."""
    import shutil
    import subprocess
    import tempfile

    from numba import cuda, typeof
    import numba.cuda.dispatcher as numba_dispatcher

    import fastnn.backends.cuda  # noqa: F401  (imports every cuda_* module; needs no GPU)
    from fastnn.backends import KERNELS, cuda_common, reference
    if cuda_common.SIMULATOR:
        sys.exit("--compile-only needs NUMBA_ENABLE_CUDASIM unset")

    class TargetDevice:                # device functions compile for "the current device"
        compute_capability = cc
    numba_dispatcher.get_current_device = TargetDevice

    compiled = {}
    failures = []
    ptxas = shutil.which("ptxas")
    tmp = tempfile.mkdtemp()

    def launch(kernel, grid, block, *args):
        sig = tuple(typeof(a) for a in args)
        key = (id(kernel), sig)
        if key in compiled:
            return
        name = kernel.py_func.__name__
        dtype = "float64" if any("float64" in str(t) for t in sig) else "float32"
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
        except Exception as e:
            compiled[key] = "ERROR"
            failures.append(f"{name} {dtype}: {type(e).__name__}: {str(e).splitlines()[0]}")
            print(f"{name:28s} {dtype:8s} COMPILE ERROR\n{e}")
            return
        info = ""
        if ptxas:
            path = os.path.join(tmp, f"{name}_{len(compiled)}.ptx")
            with open(path, "w") as f:
                f.write(ptx)
            res = subprocess.run([ptxas, "-v", f"-arch=sm_{cc[0]}{cc[1]}", path, "-o", os.devnull],
                                 capture_output=True, text=True)
            info = " ".join(line.split("info    : ")[-1].strip() for line in
                            res.stderr.splitlines() if "Used" in line or "spill" in line)
        compiled[key] = name
        print(f"{name:28s} {dtype:8s} {info}", flush=True)

    patches = {"launch": launch, "to_device": np.ascontiguousarray,
               "device_empty": lambda shape, dtype: np.zeros(shape, dtype),
               "to_host": lambda d, out=None: d if out is None else out,
               "sm_count": lambda: 132}
    for mod_name, mod in list(sys.modules.items()):
        if mod_name.startswith("fastnn.backends.cuda"):
            for attr, fn in patches.items():
                if hasattr(mod, attr):
                    setattr(mod, attr, fn)
    cu = sys.modules["fastnn.backends.cuda"]
    with cuda_common.using_launch_config(cuda_common.GPU):
        for dtype in (np.float32, np.float64):
            rng = np.random.default_rng(0)
            for case in build_cases(False, dtype, cuda_common):   # GPU shapes pick GEMM tiles
                with cuda_common.using_launch_config(case.config or cuda_common.GPU):
                    getattr(cu, case.kernel)(*case.make(rng, dtype))
    print(f"\n{len(set(compiled.values()) - {'ERROR'})} kernels, {len(compiled)} compiled "
          f"variants, {len(failures)} failure(s)")
    for f in failures:
        print("  FAIL", f)
    missing = [k for k in KERNELS if not hasattr(cu, k) or not hasattr(reference, k)]
    return 1 if failures or missing else 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny shapes (for the simulator)")
    p.add_argument("--dtype", default="float32,float64", help="comma-separated dtypes")
    p.add_argument("--only", default="", help="comma-separated kernel names to run")
    p.add_argument("--compile-only", action="store_true",
                   help="compile every kernel to PTX for sm_90; no GPU needed")
    p.add_argument("--budget", type=float, default=0.15,
                   help="seconds of timed device calls per kernel (default 0.15)")
    opts = p.parse_args(argv)
    if opts.compile_only:
        return compile_only()

    from numba import cuda

    from fastnn.backends import KERNELS, cuda_common, reference
    from fastnn.backends import cuda as cu
    cu.self_check()
    if cuda_common.SIMULATOR:
        print("device: Numba CUDA simulator (times are meaningless)")
    else:
        dev = cuda.get_current_device()
        print(f"device: {dev.name.decode() if isinstance(dev.name, bytes) else dev.name}, "
              f"{dev.MULTIPROCESSOR_COUNT} SMs, cc {dev.compute_capability}")
    only = set(filter(None, opts.only.split(",")))
    unknown = only - set(KERNELS)
    if unknown:
        p.error(f"unknown kernels: {sorted(unknown)}")
    started = time.perf_counter()
    failures = []
    covered = set()
    print(f"{'kernel':22s} {'dtype':7s} {'shape':28s} {'ok':4s} {'max err':>9s} "
          f"{'device ms':>10s} {'e2e ms':>9s} {'numpy ms':>9s} {'throughput':>13s}")
    for dtype_name in opts.dtype.split(","):
        dtype = np.dtype(dtype_name).type
        rng = np.random.default_rng(0)
        for case in build_cases(opts.quick, dtype, cuda_common):
            if only and case.kernel not in only:
                continue
            covered.add(case.kernel)
            try:
                with cuda_common.using_launch_config(case.config or cuda_common.launch_config()):
                    ok, err, dev_s, e2e_s, ref_s, rate = run_case(case, dtype, cu, reference,
                                                                  cuda, rng, opts.budget,
                                                                  opts.quick)
            except Exception:
                failures.append(f"{case.kernel} {dtype_name} {case.label}")
                print(f"{case.kernel:22s} {dtype_name:7s} {case.label:28s} ERROR")
                traceback.print_exc()
                continue
            if not ok:
                failures.append(f"{case.kernel} {dtype_name} {case.label}: error {err:.2e}")
            print(f"{case.kernel:22s} {dtype_name:7s} {case.label:28s} {'ok' if ok else 'FAIL':4s} "
                  f"{err:9.1e} {dev_s * 1e3:10.3f} {e2e_s * 1e3:9.2f} {ref_s * 1e3:9.2f} {rate}",
                  flush=True)
    missing = (only or set(KERNELS)) - covered
    if missing:
        failures.append(f"kernels with no case: {sorted(missing)}")
    print(f"\n{len(failures)} failure(s) in {time.perf_counter() - started:.1f} s")
    for f in failures:
        print("  FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
