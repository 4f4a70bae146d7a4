"""The GPU check: every cuda-backend kernel, the fused kernels, and the issue's three targets
(GEMM, attention, a GPT training step against PyTorch), in one run of under five minutes.

    python bench/cuda_check.py                    # everything, on a GPU
    python bench/cuda_check.py --sections targets # only the three targets (about a minute)
    python bench/cuda_check.py --sections kernels --only gemm,attention --dtype float32
    NUMBA_ENABLE_CUDASIM=1 python bench/cuda_check.py --quick   # tiny shapes on the simulator
    python bench/cuda_check.py --compile-only     # no GPU needed: compile every kernel to PTX

Sections (--sections, comma-separated; default all):
  kernels  each registry kernel at medium shapes: the result against the numpy reference
           (normalized max error, max|got - want| / max|want|), the device time (CUDA events
           around back-to-back calls on device arrays, after a first call that compiles), the
           end-to-end time of the host-array entry point, the numpy reference's time on this
           CPU, and throughput (TFLOP/s for GEMM and attention, GB/s of compulsory traffic else).
  fused    the fused kernels (fastnn/backends/cuda/fused.py) against the composition of the
           reference kernels, and their device time beside the unfused kernels' (--quick: the
           simulator's times mean nothing).
  targets  the issue's targets, each beside PyTorch on the same GPU when a CUDA build of torch
           is installed (else "no CUDA torch: ... skipped"):
           - GEMM float32 4096^3 (both tile shapes) against cuBLAS SGEMM (torch.matmul with
             torch.backends.cuda.matmul.allow_tf32 = False): goal >= 50% of cuBLAS;
           - causal attention forward + backward, B8 H16 T2048 D64, float32, against
             torch.nn.functional.scaled_dot_product_attention: goal within 3x;
           - a GPT training step (12 layers, 768 wide, T 1024, batch 8, nanoGPT's AdamW) with
             model.to('cuda') against PyTorch float32 with TF32 off: goal within 2x, and zero
             host<->device transfers inside a step after the first (the transfer log is
             printed when it is not empty); first a small GPT's two steps on 'cuda' against the
             same model's on the CPU (losses and parameters equal to float32 tolerance).
           - the shapes CNN's training step (16-32-64, 32x32 RGB, batch 64, AdamW) on
             'cuda': equal to the CPU's over two steps, zero host transfers inside a step, and
             its time beside the same torch.nn module's (reported, no goal).
           --quick shrinks every shape to simulator size (GPT: 1 layer, 8 wide, T 8).

--compile-only types and compiles every kernel launch (GPU block/tile sizes, both dtypes, the
fused kernels too) for compute capability 9.0 with NVVM, and runs `ptxas -v` on the PTX when
ptxas is on PATH to show registers and spills. The simulator runs kernels as Python and never
type-checks them, so this is the check that a kernel will compile on a GPU at all. Needs libNVVM
and NVRTC (a CUDA toolkit, or `pip install nvidia-cuda-nvrtc-cu12` / `nvidia-cuda-nvrtc` with
LD_LIBRARY_PATH pointing at its lib/ folder).

Exits 1 when any result is off or any kernel fails; a target goal that is missed is reported
(MISSED), not a failure: the goals are what the issue asks, the correctness checks are what
must hold.
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


def _backends():
    """(numpy reference backend, cuda backend, the cuda package, its common module, kernel names).
    Importing the cuda package needs no GPU; loading it as a backend runs its self-check."""
    import importlib

    from fastnn.kernels import dispatch, registry
    package = importlib.import_module("fastnn.backends.cuda")
    common = importlib.import_module("fastnn.backends.cuda.common")
    return dispatch.load("numpy"), package, common, registry.names()


def _reference():
    from fastnn.kernels import dispatch
    return dispatch.load("numpy")


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
        reference = _reference()
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
            reference = _reference()
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
    reference = _reference()
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


# ---------------------------------------------------------------- timing helpers
def _sync():
    from numba import cuda
    cuda.synchronize()


def time_device(fn, budget_s, quick):
    """Seconds per call of fn() (device work), after one untimed call that compiles: CUDA events
    around back-to-back calls on a GPU, wall time on the simulator (whose events are empty)."""
    from numba import cuda
    if quick:                          # the simulator: one call, its wall time (meaningless)
        t0 = time.perf_counter()
        fn()
        _sync()
        return time.perf_counter() - t0
    fn()
    _sync()
    t0 = time.perf_counter()
    fn()
    _sync()
    once = time.perf_counter() - t0
    reps = 1 if quick else int(min(50, max(3, budget_s / max(once, 1e-6))))
    start, end = cuda.event(), cuda.event()
    t0 = time.perf_counter()
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    wall = (time.perf_counter() - t0) / reps
    event_ms = start.elapsed_time(end) / reps
    return event_ms / 1e3 if event_ms > 0 else wall


def cuda_torch():
    """PyTorch with a usable GPU and TF32 off (cuBLAS SGEMM in true float32), or None."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch


def time_torch(torch, fn, budget_s):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    once = time.perf_counter() - t0
    reps = int(min(50, max(3, budget_s / max(once, 1e-6))))
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3 / reps


# ---------------------------------------------------------------- fused kernels
def run_fused(quick, dtype, budget_s, failures):
    """Each fused kernel against the composition of reference kernels, and its device time
    beside the unfused device kernels doing the same work."""
    from numba import cuda

    from fastnn.backends.cuda import fused, ops
    ref = _reference()
    rng = np.random.default_rng(0)
    rows, cols = (6, 37) if quick else (8192, 3072)
    ln_rows, ln_cols = (6, 37) if quick else (8192, 768)
    dt = np.dtype(dtype).type
    x, dy = randn(rng, (rows, cols), dt), randn(rng, (rows, cols), dt)
    bias = randn(rng, cols, dt)
    d = {k: cuda.to_device(v) for k, v in dict(x=x, dy=dy, bias=bias).items()}
    lx, lr, ldy = (randn(rng, (ln_rows, ln_cols), dt) for _ in range(3))
    w, b = randn(rng, ln_cols, dt), randn(rng, ln_cols, dt)
    dl = {k: cuda.to_device(v) for k, v in dict(x=lx, r=lr, dy=ldy, w=w, b=b).items()}
    pre = ref.bias_add(x, bias)
    s_ref = lx + lr
    ln_ref = ref.layer_norm(s_ref, w, b, 1e-5)
    rows_out = []

    def check(name, got, want, fused_fn, unfused_fn, label):
        err = _max_error([g.copy_to_host() if hasattr(g, "copy_to_host") else g for g in got],
                         want)
        ok = err <= TOLERANCE[dt]
        t_fused = time_device(fused_fn, budget_s, quick)
        # (--quick: the simulator's times mean nothing; the unfused kernels are not run)
        t_unfused = float("nan") if quick else time_device(unfused_fn, budget_s, quick)
        if not ok:
            failures.append(f"fused {name} {np.dtype(dt).name}: error {err:.2e}")
        rows_out.append(name)
        print(f"{name:26s} {np.dtype(dt).name:7s} {label:20s} {'ok' if ok else 'FAIL':4s} "
              f"{err:9.1e} {t_fused * 1e3:10.3f} {t_unfused * 1e3:12.3f}", flush=True)

    print(f"\nfused kernels (device ms: fused, then the unfused kernels doing the same work)\n"
          f"{'kernel':26s} {'dtype':7s} {'shape':20s} {'ok':4s} {'max err':>9s} "
          f"{'fused ms':>10s} {'unfused ms':>12s}")
    for act, approx in (("relu", False), ("gelu", False), ("gelu", True)):
        tag = f"{act}{' tanh' if approx else ''}"
        want = ref.relu(pre) if act == "relu" else ref.gelu(pre, approx)
        unary = ops.relu_device if act == "relu" else (lambda v: ops.gelu_device(v, approx))
        check(f"bias_{tag}", [fused.bias_act_device(d["x"], d["bias"], act, approx)], [want],
              lambda: fused.bias_act_device(d["x"], d["bias"], act, approx),
              lambda: unary(ops.bias_add_device(d["x"], d["bias"]).reshape(-1)),
              f"{rows}x{cols}")
        want_dx = (ref.relu_backward(dy, pre) if act == "relu"
                   else ref.gelu_backward(dy, pre, approx))
        back = (ops.relu_backward_device if act == "relu"
                else (lambda g, v: ops.gelu_backward_device(g, v, approx)))
        check(f"bias_{tag}_backward",
              list(fused.bias_act_backward_device(d["dy"], d["x"], d["bias"], act, approx)),
              [want_dx, ref.bias_grad(want_dx)],
              lambda: fused.bias_act_backward_device(d["dy"], d["x"], d["bias"], act, approx),
              lambda: ops.bias_grad_device(
                  back(d["dy"].reshape(-1), ops.bias_add_device(d["x"], d["bias"]).reshape(-1))
                  .reshape(rows, cols)),
              f"{rows}x{cols}")
    got = fused.add_layer_norm_device(dl["x"], dl["r"], dl["w"], dl["b"], 1e-5)
    check("add_layer_norm", [got[0], got[1], got[2], got[3]],
          [ln_ref[0], s_ref, ln_ref[1], ln_ref[2]],
          lambda: fused.add_layer_norm_device(dl["x"], dl["r"], dl["w"], dl["b"], 1e-5),
          lambda: ops.layer_norm_device(dl["x"], dl["w"], dl["b"], 1e-5),   # without the add
          f"{ln_rows}x{ln_cols}")
    y, s_dev, mean, rstd = got
    want = ref.layer_norm_backward(ldy, s_ref, w, ln_ref[1], ln_ref[2])
    check("add_layer_norm_backward",
          list(fused.add_layer_norm_backward_device(dl["dy"], s_dev, dl["w"], mean, rstd)),
          list(want),
          lambda: fused.add_layer_norm_backward_device(dl["dy"], s_dev, dl["w"], mean, rstd),
          lambda: ops.layer_norm_backward_device(dl["dy"], s_dev, dl["w"], mean, rstd),
          f"{ln_rows}x{ln_cols}")

    # AdamW over a GPT-2-small-like parameter list: 12 blocks of 12 tensors plus embeddings
    c = 8 if quick else 768
    block = [(c,), (c,), (c, 3 * c), (3 * c,), (c, c), (c,), (c,), (c,), (c, 4 * c), (4 * c,),
             (4 * c, c), (c,)]
    shapes = [(64 if quick else 50304, c), (16 if quick else 1024, c)] + block * (1 if quick
                                                                               else 12)
    shapes += [(c,), (c,)]
    arrays = [[randn(rng, sh, dt) * (0.1 if i == 2 else 1) for sh in shapes] for i in range(4)]
    arrays[3] = [np.abs(a) * 0.01 for a in arrays[3]]
    hyper = (5, 1e-3, 0.9, 0.95, 1e-8, 0.1, True, 1.0)
    want = [[a.copy() for a in arr] for arr in arrays]
    for p_, g_, m_, v_ in zip(*want):
        ref.adam_step(p_.reshape(-1), g_.reshape(-1), m_.reshape(-1), v_.reshape(-1), *hyper[:-1])
    dev = [[cuda.to_device(a) for a in arr] for arr in arrays]
    fused.adam_multi_step_device(*dev, *hyper)
    n = sum(a.size for a in arrays[0])
    fresh = [[cuda.to_device(a) for a in arr] for arr in arrays]

    def per_tensor():
        for p_, g_, m_, v_ in zip(*fresh):
            ops.adam_step_device(p_.reshape(-1), g_.reshape(-1), m_.reshape(-1), v_.reshape(-1),
                                 *hyper[:-1])
    check("adam_multi_step", [a for i in (0, 2, 3) for a in dev[i]],
          [a for i in (0, 2, 3) for a in want[i]],
          lambda: fused.adam_multi_step_device(*fresh, *hyper), per_tensor,
          f"{len(shapes)} tensors {n / 1e6:.1f}M")
    return rows_out


# ---------------------------------------------------------------- the targets
def _goal(met):
    return "met" if met else "MISSED"


def target_gemm(quick, budget_s, torch, failures, cuda_common):
    from numba import cuda

    from fastnn.backends.cuda import gemm
    n = 24 if quick else 4096
    rng = np.random.default_rng(0)
    a, b = randn(rng, (1, n, n), np.float32), randn(rng, (1, n, n), np.float32)
    d_a, d_b = cuda.to_device(a), cuda.to_device(b)
    d_c = cuda.device_array((1, n, n), np.float32)
    flops = 2.0 * n ** 3
    if torch is not None:
        ta, tb = torch.from_numpy(a[0]).cuda(), torch.from_numpy(b[0]).cuda()
        want = torch.matmul(ta, tb).cpu().numpy()
        t_torch = time_torch(torch, lambda: torch.matmul(ta, tb), budget_s)
    else:
        want = a[0] @ b[0]
        t_torch = None
    best = None
    gpu_like = cuda_common.launch_config()
    for tile in (gpu_like.gemm_tile, gpu_like.gemm_tile_large):
        cfg = dataclasses.replace(gpu_like, gemm_tile=tile, gemm_tile_large=tile)
        with cuda_common.using_launch_config(cfg):
            fn = lambda: gemm.gemm_device(d_a, d_b, d_c, False, False, 1.0, 0.0)  # noqa: E731
            t = time_device(fn, budget_s, quick)
        err = _max_error([d_c.copy_to_host()[0]], [want])
        ok = err <= TOLERANCE[np.float32] * (4 if not quick else 1)   # 4096-term sums
        if not ok:
            failures.append(f"target gemm {n}^3 tile {tile}: error {err:.2e}")
        label = f"tile {tile[0]}x{tile[1]}x{tile[2]}/{tile[3]}x{tile[4]}"
        line = f"  fastnn {label:24s} {t * 1e3:9.3f} ms {flops / t / 1e12:7.2f} TF/s  err {err:.1e}"
        if t_torch is not None:
            line += f"  = {t_torch / t:5.1%} of cuBLAS"
        print(line, flush=True)
        if best is None or t < best[0]:
            best = (t, label)
    if t_torch is None:
        print("  no CUDA torch: cuBLAS comparison skipped")
        return {"gemm": None}
    ratio = t_torch / best[0]
    print(f"  cuBLAS SGEMM (torch.matmul, TF32 off)    {t_torch * 1e3:9.3f} ms "
          f"{flops / t_torch / 1e12:7.2f} TF/s")
    print(f"  GEMM f32 {n}^3: best fastnn ({best[1]}) at {ratio:.1%} of cuBLAS "
          f"(goal >= 50%): {_goal(ratio >= 0.5)}")
    return {"gemm": ratio}


def target_attention(quick, budget_s, torch, failures):
    from numba import cuda

    from fastnn.backends.cuda import attention
    bsz, h, t, d = (1, 2, 13, 16) if quick else (8, 16, 2048, 64)
    scale = d ** -0.5
    rng = np.random.default_rng(1)
    q, k, v, dout = (randn(rng, (bsz, h, t, d), np.float32) for _ in range(4))
    dq_, dk_, dv_, ddo = (cuda.to_device(x) for x in (q, k, v, dout))

    def ours():
        out, lse = attention.attention_device(dq_, dk_, dv_, True, scale)
        return (out,) + attention.attention_backward_device(ddo, dq_, dk_, dv_, out, lse, True,
                                                            scale)
    got = [g.copy_to_host() for g in ours()]
    t_ours = time_device(ours, budget_s, quick)
    flops = 4.0 * bsz * h * t * t / 2 * d * 3.5        # causal: half the pairs; bwd = 2.5x fwd
    if torch is not None:
        tq, tk, tv = (torch.from_numpy(x).cuda().requires_grad_() for x in (q, k, v))
        tdo = torch.from_numpy(dout).cuda()
        sdpa = torch.nn.functional.scaled_dot_product_attention

        def theirs():
            for x in (tq, tk, tv):
                x.grad = None
            out = sdpa(tq, tk, tv, is_causal=True)
            out.backward(tdo)
            return out
        out = theirs()
        want = [out.detach().cpu().numpy()] + [x.grad.cpu().numpy() for x in (tq, tk, tv)]
        t_torch = time_torch(torch, theirs, budget_s)
    else:
        ref = _reference()
        out, lse = ref.attention(q, k, v, True, scale)
        want = [out, *ref.attention_backward(dout, q, k, v, out, lse, True, scale)]
        t_torch = None
    err = _max_error(got, want)
    ok = err <= TOLERANCE[np.float32] * 5
    if not ok:
        failures.append(f"target attention: error {err:.2e} against "
                        f"{'torch' if torch else 'the numpy reference'}")
    print(f"  fastnn fwd+bwd B{bsz} H{h} T{t} D{d} causal {t_ours * 1e3:9.3f} ms "
          f"{flops / t_ours / 1e12:6.2f} TF/s  err {err:.1e} ({'ok' if ok else 'FAIL'})")
    if t_torch is None:
        print("  no CUDA torch: scaled_dot_product_attention comparison skipped")
        return {"attention": None}
    ratio = t_ours / t_torch
    print(f"  torch SDPA fwd+bwd                    {t_torch * 1e3:9.3f} ms "
          f"{flops / t_torch / 1e12:6.2f} TF/s")
    print(f"  attention: fastnn takes {ratio:.2f}x PyTorch's time (goal <= 3x): "
          f"{_goal(ratio <= 3)}")
    return {"attention": ratio}


def _gpt_batch(rng, vocab, batch, t):
    x = rng.integers(0, vocab, (batch, t))
    return x, np.roll(x, -1, axis=1)


def gpt_device_matches_cpu(quick, failures):
    """Two AdamW steps of one small GPT on the CPU and on 'cuda' from the same weights: the
    losses and the parameters after them agree to float32 tolerance."""
    import fastnn
    from fastnn.models.gpt import GPT, GPTConfig
    cfg = (GPTConfig(block_size=8, vocab_size=16, n_layer=1, n_head=2, n_embd=8) if quick else
           GPTConfig(block_size=64, vocab_size=96, n_layer=2, n_head=4, n_embd=64))
    fastnn.manual_seed(0)
    cpu_model = GPT(cfg)
    dev_model = GPT(cfg)
    dev_model.load_state_dict(cpu_model.state_dict())
    dev_model.to("cuda")
    x, y = _gpt_batch(np.random.default_rng(2), cfg.vocab_size, 2, cfg.block_size)
    losses = {}
    for name, model, device in (("cpu", cpu_model, "cpu"), ("cuda", dev_model, "cuda")):
        # eps 1e-3, not 1e-8: with a tiny eps Adam's update of a weight whose gradient is ~0 is
        # +-lr whichever way rounding tips it, so the comparison would measure rounding noise
        opt = fastnn.optim.AdamW(model.parameters(), lr=1e-2, eps=1e-3, weight_decay=0.1)
        xs, ys = fastnn.tensor(x).to(device), fastnn.tensor(y).to(device)
        losses[name] = []
        for _ in range(2):
            _, loss = model(xs, ys)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses[name].append(loss.item())
    pairs = [(p.detach().cpu().numpy(), q.detach().numpy())
             for p, q in zip(dev_model.parameters(), cpu_model.parameters())]
    scale = max(float(np.abs(q).max()) for _, q in pairs)
    params_err = max(float(np.abs(p - q).max()) for p, q in pairs) / scale
    loss_err = max(abs(a - b) / abs(b) for a, b in zip(losses["cuda"], losses["cpu"]))
    ok = loss_err <= 1e-4 and params_err <= 1e-4
    if not ok:
        failures.append(f"target gpt: cuda differs from cpu (loss {loss_err:.1e}, params "
                        f"{params_err:.1e})")
    print(f"  GPT {cfg.n_layer}x{cfg.n_embd} T{cfg.block_size}: cuda vs cpu over 2 steps: losses "
          f"{losses['cuda'][0]:.5f} {losses['cuda'][1]:.5f} (rel err {loss_err:.1e}), params "
          f"rel err {params_err:.1e} ({'ok' if ok else 'FAIL'})", flush=True)


def target_gpt(quick, steps, torch, failures):
    import fastnn
    from fastnn.backends.cuda import array as ca
    from fastnn.models.gpt import GPT, GPTConfig
    gpt_device_matches_cpu(quick, failures)
    if quick:
        cfg, batch = GPTConfig(block_size=8, vocab_size=16, n_layer=1, n_head=2, n_embd=8), 2
    else:
        cfg, batch = GPTConfig(block_size=1024, vocab_size=50304, n_layer=12, n_head=12,
                               n_embd=768), 8
    x, y = _gpt_batch(np.random.default_rng(3), cfg.vocab_size, batch, cfg.block_size)
    fastnn.manual_seed(0)
    model = GPT(cfg).to("cuda")
    opt = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95))
    xs, ys = fastnn.tensor(x).to("cuda"), fastnn.tensor(y).to("cuda")

    def step():
        _, loss = model(xs, ys)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss
    t0 = time.perf_counter()
    first_loss = step().item()                # compiles every kernel, fills the allocator
    first_s = time.perf_counter() - t0
    ca.reset_transfers()
    loss = step()                             # the step the transfer goal is about
    fastnn.cuda.synchronize()
    transfers = ca.transfer_count()
    log = ca.transfer_log()
    loss.item()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    fastnn.cuda.synchronize()
    t_ours = (time.perf_counter() - t0) / steps
    last_loss = loss.item()
    tag = f"{cfg.n_layer}x{cfg.n_embd} T{cfg.block_size} B{batch}"
    print(f"  fastnn GPT step {tag}: {t_ours * 1e3:9.1f} ms/step (first step {first_s:.1f} s "
          f"with compiles), loss {first_loss:.3f} -> {last_loss:.3f}")
    print(f"  host<->device transfers inside step 2: {transfers} (goal 0): {_goal(transfers == 0)}")
    for (direction, what), count in log.most_common(12):
        print(f"      {count:4d}  {direction}  {what}")
    result = {"gpt_transfers": transfers, "gpt": None}
    if torch is None:
        print("  no CUDA torch: PyTorch GPT step comparison skipped")
        return result
    from fastnn.bench.torch_gpt import GPT as TorchGPT
    torch.manual_seed(0)
    tmodel = TorchGPT(cfg).cuda()
    topt = tmodel.configure_optimizers(0.1, 6e-4, (0.9, 0.95))
    tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()

    def tstep():
        _, tloss = tmodel(tx, ty)
        topt.zero_grad(set_to_none=True)
        tloss.backward()
        topt.step()
    tstep()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        tstep()
    torch.cuda.synchronize()
    t_torch = (time.perf_counter() - t0) / steps
    ratio = t_ours / t_torch
    print(f"  torch GPT step (float32, TF32 off): {t_torch * 1e3:9.1f} ms/step")
    print(f"  GPT step: fastnn takes {ratio:.2f}x PyTorch's time (goal <= 2x): {_goal(ratio <= 2)}")
    result["gpt"] = ratio
    return result


def target_cnn(quick, steps, torch, failures):
    """The digits CNN (conv-bn-relu-maxpool stages, AdamW) training on 'cuda': two steps equal
    the CPU's, the host transfers inside a later step (goal 0; loss.item() is read after the
    count), its time, and PyTorch's for the same module (same state-dict keys) when there."""
    import fastnn
    from fastnn.backends.cuda import array as ca
    from fastnn.models.cnn import CNN
    from fastnn.nn import functional as F
    if quick:
        args, batch = dict(in_channels=1, image_size=4, num_classes=3, channels=(2, 3)), 3
    else:
        args, batch = dict(in_channels=3, image_size=32, num_classes=6, channels=(16, 32, 64)), 64
    rng = np.random.default_rng(4)
    x = rng.standard_normal((batch, args["in_channels"], args["image_size"],
                             args["image_size"])).astype(np.float32)
    y = rng.integers(0, args["num_classes"], batch)
    fastnn.manual_seed(0)
    models = {"cpu": CNN(**args)}
    models["cuda"] = CNN(**args)
    models["cuda"].load_state_dict(models["cpu"].state_dict())
    models["cuda"].to("cuda")
    losses, opts, data = {}, {}, {}
    for device, model in models.items():
        opts[device] = fastnn.optim.AdamW(model.parameters(), lr=1e-2, eps=1e-3)
        data[device] = (fastnn.tensor(x).to(device), fastnn.tensor(y).to(device))

    def step(device):
        opts[device].zero_grad(set_to_none=True)
        loss = F.cross_entropy(models[device](data[device][0]), data[device][1])
        loss.backward()
        opts[device].step()
        return loss
    for device in models:
        losses[device] = [step(device).item() for _ in range(2)]
    loss_err = max(abs(a - b) / abs(b) for a, b in zip(losses["cuda"], losses["cpu"]))
    pairs = [(p.detach().cpu().numpy(), q.detach().numpy())
             for p, q in zip(models["cuda"].parameters(), models["cpu"].parameters())]
    params_err = max(float(np.abs(p - q).max()) for p, q in pairs) / max(
        float(np.abs(q).max()) for _, q in pairs)
    ok = loss_err <= 1e-4 and params_err <= 1e-4
    if not ok:
        failures.append(f"target cnn: cuda differs from cpu (loss {loss_err:.1e}, params "
                        f"{params_err:.1e})")
    tag = f"{'-'.join(map(str, args['channels']))} {args['image_size']}px B{batch}"
    print(f"  CNN {tag}: cuda vs cpu over 2 steps: losses {losses['cuda'][0]:.5f} "
          f"{losses['cuda'][1]:.5f} (rel err {loss_err:.1e}), params rel err {params_err:.1e} "
          f"({'ok' if ok else 'FAIL'})", flush=True)
    ca.reset_transfers()
    loss = step("cuda")
    fastnn.cuda.synchronize()
    transfers, log = ca.transfer_count(), ca.transfer_log()
    loss.item()
    print(f"  host<->device transfers inside a CNN step: {transfers} (goal 0): "
          f"{_goal(transfers == 0)}")
    for (direction, what), count in log.most_common(12):
        print(f"      {count:4d}  {direction}  {what}")
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step("cuda")
    fastnn.cuda.synchronize()
    t_ours = (time.perf_counter() - t0) / steps
    print(f"  fastnn CNN step {tag}: {t_ours * 1e3:9.1f} ms/step")
    result = {"cnn_transfers": transfers}
    if torch is None:
        print("  no CUDA torch: PyTorch CNN step comparison skipped")
        return result
    tn = torch.nn
    layers, c_in = [], args["in_channels"]
    for c in args["channels"]:
        layers += [tn.Conv2d(c_in, c, 3, padding=1, bias=False), tn.BatchNorm2d(c), tn.ReLU(),
                   tn.MaxPool2d(2)]
        c_in = c
    side = args["image_size"] >> len(args["channels"])
    tmodel = tn.Module()
    tmodel.features = tn.Sequential(*layers)
    tmodel.classifier = tn.Sequential(tn.Flatten(), tn.Dropout(0.0),
                                      tn.Linear(c_in * side * side, args["num_classes"]))
    tmodel = tmodel.cuda()
    topt = torch.optim.AdamW(tmodel.parameters(), lr=1e-2, eps=1e-3)
    tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()

    def tstep():
        topt.zero_grad(set_to_none=True)
        out = tmodel.classifier(tmodel.features(tx))
        torch.nn.functional.cross_entropy(out, ty).backward()
        topt.step()
    tstep()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        tstep()
    torch.cuda.synchronize()
    t_torch = (time.perf_counter() - t0) / steps
    print(f"  torch CNN step: {t_torch * 1e3:9.1f} ms/step; fastnn takes "
          f"{t_ours / t_torch:.2f}x its time (direct convolution kernels, no goal set)")
    result["cnn"] = t_ours / t_torch
    return result


def run_targets(which, quick, budget_s, steps, failures, cuda_common):
    torch = cuda_torch()
    print("\ntargets" + ("" if torch else "  (no CUDA torch: PyTorch comparisons skipped)"))
    results = {}
    for name, fn in (("gemm", lambda: target_gemm(quick, budget_s, torch, failures, cuda_common)),
                     ("attention", lambda: target_attention(quick, budget_s, torch, failures)),
                     ("gpt", lambda: target_gpt(quick, steps, torch, failures)),
                     ("cnn", lambda: target_cnn(quick, steps, torch, failures))):
        if name not in which:
            continue
        print(f"{name}:", flush=True)
        try:
            results.update(fn())
        except Exception:
            failures.append(f"target {name}: {traceback.format_exc().splitlines()[-1]}")
            traceback.print_exc()
    return results


class _KernelTable:
    """Kernel name -> the cuda package's function, found as the backend loader finds it (without
    its self-check, which would run a kernel)."""

    def __init__(self, package):
        self.package = package

    def __getattr__(self, name):
        for mod in self.package.MODULES:
            if hasattr(mod, name):
                return getattr(mod, name)
        raise AttributeError(name)

    def device_kernel(self, name):
        return self.package.device_kernel(name)


def _compile_fused(dtype):
    """Every fused kernel's launches, on numpy stand-ins (launch only compiles, see below)."""
    from fastnn.backends.cuda import fused
    x = np.zeros((64, 96), dtype)
    c = np.zeros(96, dtype)
    for act, approx in (("relu", False), ("gelu", False), ("gelu", True)):
        fused.bias_act_device(x, c, act, approx)
        fused.bias_act_backward_device(x, x, c, act, approx)
    y, s, mean, rstd = fused.add_layer_norm_device(x, x, c, c, 1e-5)
    s, mean, rstd = x, np.zeros(64, dtype), np.ones(64, dtype)
    fused.add_layer_norm_backward_device(x, s, c, mean, rstd)
    fused.add_layer_norm_backward_device(x, s, c, mean, rstd, x)
    fused.adam_multi_step_device([x, c], [x, c], [x, c], [x, c], 1, 1e-3, 0.9, 0.999, 1e-8, 0.1,
                                 True, 1.0)
    fused.adam_multi_step_device([x, c], [x, c], [x, c], [x, c], 1, 1e-3, 0.9, 0.999, 1e-8, 0.1,
                                 True, np.array([0.5]))          # the scale on the device


def compile_only(cc=(9, 0)):
    """Compile every kernel launch of the cases to PTX without a GPU; returns an exit code."""
    import shutil
    import subprocess
    import tempfile

    from numba import cuda, typeof
    import numba.cuda.dispatcher as numba_dispatcher

    reference, cu_package, cuda_common, kernel_names = _backends()
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
    cu = _KernelTable(cu_package)
    with cuda_common.using_launch_config(cuda_common.GPU):
        for dtype in (np.float32, np.float64):
            rng = np.random.default_rng(0)
            for case in build_cases(False, dtype, cuda_common):   # GPU shapes pick GEMM tiles
                with cuda_common.using_launch_config(case.config or cuda_common.GPU):
                    getattr(cu, case.kernel)(*case.make(rng, dtype))
            _compile_fused(dtype)
    print(f"\n{len(set(compiled.values()) - {'ERROR'})} kernels, {len(compiled)} compiled "
          f"variants, {len(failures)} failure(s)")
    for f in failures:
        print("  FAIL", f)
    return 1 if failures else 0


SECTIONS = ("kernels", "fused", "targets")
TARGETS = ("gemm", "attention", "gpt", "cnn")


def _names(p, text, allowed, what):
    names = [n for n in text.split(",") if n]
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        p.error(f"unknown {what}: {unknown}; choose from {', '.join(allowed)}")
    return names


def run_kernel_table(opts, p, cu, reference, cuda_common, kernel_names, failures):
    from numba import cuda
    only = set(_names(p, opts.only, kernel_names, "kernels"))
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
    asked = only or set(kernel_names)
    if only and asked - covered:
        failures.append(f"kernels with no case here: {sorted(asked - covered)}")
    elif asked - covered:
        print(f"(not timed here, checked on the GPU by `NUMBA_ENABLE_CUDASIM=0 pytest "
              f"tests/test_conformance.py -k cuda`: {', '.join(sorted(asked - covered))})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny shapes (for the simulator)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated sections to run: {', '.join(SECTIONS)} (default all)")
    p.add_argument("--targets", default=",".join(TARGETS),
                   help=f"which targets the targets section runs: {', '.join(TARGETS)}")
    p.add_argument("--dtype", default="float32,float64",
                   help="comma-separated dtypes of the kernels and fused sections")
    p.add_argument("--only", default="", help="comma-separated kernel names of the kernels table")
    p.add_argument("--steps", type=int, default=3,
                   help="timed GPT training steps, fastnn's and PyTorch's (default 3)")
    p.add_argument("--compile-only", action="store_true",
                   help="compile every kernel to PTX for sm_90; no GPU needed")
    p.add_argument("--budget", type=float, default=0.15,
                   help="seconds of timed device calls per kernel (default 0.15)")
    opts = p.parse_args(argv)
    if opts.compile_only:
        return compile_only()
    sections = _names(p, opts.sections, SECTIONS, "sections")
    targets = _names(p, opts.targets, TARGETS, "targets")
    if opts.steps < 1:
        p.error("--steps must be at least 1")

    from numba import cuda

    from fastnn.kernels import dispatch
    reference, cu_package, cuda_common, kernel_names = _backends()
    dispatch.load("cuda")             # its self-check: a clear error without a usable device
    cu = _KernelTable(cu_package)
    if cuda_common.SIMULATOR:
        print("device: Numba CUDA simulator (times are meaningless)")
        os.environ.setdefault("FASTNN_CUDA_SIMULATOR_AS_DEVICE", "1")  # 'cuda' tensors too
    else:
        dev = cuda.get_current_device()
        print(f"device: {dev.name.decode() if isinstance(dev.name, bytes) else dev.name}, "
              f"{dev.MULTIPROCESSOR_COUNT} SMs, cc {dev.compute_capability}")
    started = time.perf_counter()
    failures = []
    if "kernels" in sections:
        run_kernel_table(opts, p, cu, reference, cuda_common, kernel_names, failures)
    if "fused" in sections:
        for dtype_name in opts.dtype.split(","):
            try:
                run_fused(opts.quick, np.dtype(dtype_name).type, opts.budget, failures)
            except Exception:
                failures.append(f"fused {dtype_name}: {traceback.format_exc().splitlines()[-1]}")
                traceback.print_exc()
    if "targets" in sections:
        results = run_targets(targets, opts.quick, max(opts.budget, 0.5), opts.steps, failures,
                              cuda_common)
        print("\nsummary of the targets (ratio, goal):")
        for key, text in (("gemm", "GEMM f32 4096^3, share of cuBLAS (>= 50%)"),
                          ("attention", "attention fwd+bwd, x PyTorch SDPA time (<= 3x)"),
                          ("gpt", "GPT step, x PyTorch time (<= 2x)"),
                          ("gpt_transfers", "GPT step, host transfers (0)"),
                          ("cnn", "CNN step, x PyTorch time (no goal)"),
                          ("cnn_transfers", "CNN step, host transfers (0)")):
            if key in results:
                value = results[key]
                shown = ("skipped (no CUDA torch)" if value is None else
                         f"{value:.1%}" if key == "gemm" else
                         f"{value}" if key.endswith("_transfers") else f"{value:.2f}x")
                print(f"  {text:48s} {shown}")
    print(f"\n{len(failures)} failure(s) in {time.perf_counter() - started:.1f} s")
    for f in failures:
        print("  FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
