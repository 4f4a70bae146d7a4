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
that called OpenBLAS the bench idles 0.12 s, while OpenBLAS's threads stop busy-waiting.

Naive numpy is fastnn's reference backend (fastnn/backends/reference.py): every speedup is relative
to it. PyTorch and OpenBLAS (numpy's `a @ b`) are the references a fast kernel should reach.
The case builders here are shared with the pytest-benchmark suite in bench/.
"""
import argparse
import functools
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import fastnn
from . import backends as _backends
from . import kernels as K

FAMILIES = ("gemm", "gelu", "relu", "softmax", "cross_entropy", "layer_norm", "embedding",
            "adamw", "attention", "overhead")
SIZES = ("tiny", "quick", "full")   # tiny: seconds, for the tests (a hidden --sizes option)
IMPL_ORDER = ("numpy", "numba", "cython", "cuda", "torch", "openblas")
IMPL_LABELS = {"numpy": "naive numpy", "torch": "PyTorch", "openblas": "OpenBLAS"}


def _impl_order(impl):
    """Column order: naive numpy, the fastnn backends, then PyTorch and OpenBLAS."""
    return (IMPL_ORDER.index(impl) if impl in IMPL_ORDER else len(IMPL_ORDER), impl)


# OpenBLAS's worker threads busy-wait about 2^28 cycles (~0.1 s) after each call before sleeping;
# on 2 cores that steals one from whatever runs next (PyTorch's matmul measured 3x slower right
# after numpy's). So after each turn of an implementation that calls OpenBLAS, idle this long.
BLAS_SETTLE_S = 0.12
SAMPLE_TARGET_S = {"tiny": 0.002, "quick": 0.02, "full": 0.05}
DEFAULT_REPEAT = {"tiny": 2, "quick": 7, "full": 7}

# What each family times, and the PyTorch op it is compared with.
FAMILY_INFO = {
    "gemm": ("GEMM c = op(a) @ op(b), M x K x N; NN/NT/TN: which operand is transposed",
             "torch.matmul"),
    "gelu": ("GELU (tanh form) forward + backward, elementwise",
             "F.gelu + aten.gelu_backward"),
    "relu": ("ReLU forward + backward, elementwise", "F.relu + aten.threshold_backward"),
    "softmax": ("softmax over the last axis of (N x C), forward", "F.softmax"),
    "cross_entropy": ("cross-entropy over logits (N x V): mean loss and dlogits",
                      "F.cross_entropy + autograd backward"),
    "layer_norm": ("layer norm over the last axis of (N x C), forward + backward",
                   "aten.native_layer_norm + native_layer_norm_backward"),
    "embedding": ("embedding (V x C table, N ids): gather forward + scatter-add backward",
                  "F.embedding + aten.embedding_dense_backward"),
    "adamw": ("AdamW step over n float params, in place",
              "torch.optim.AdamW(fused=True).step() (foreach=True where fused is unsupported)"),
    "attention": ("causal attention, q k v (B x H x T x D)",
                  "F.scaled_dot_product_attention (+ autograd backward)"),
    "overhead": ("per-call overhead: relu on 8 elements", "torch.relu"),
}


# ---------------------------------------------------------------- cases
@dataclass
class Case:
    """One kernel at one size. build(impl) prepares inputs (the same for every implementation,
    from one seed) and returns a zero-argument callable that runs the operation once."""
    family: str
    label: str                     # e.g. "1024x1024x1024 NN"
    kernels: tuple                 # fastnn kernels called (a backend lacking one shows "n/a")
    build: object                  # build(impl) -> callable
    flops: float = None            # useful flops per call, for GFLOP/s
    extras: tuple = ("torch",)     # implementations besides fastnn's backends
    blas: tuple = ()               # implementations that call OpenBLAS (idle after their turns)

    @property
    def id(self):
        """A stable name for pytest ids and the JSON: 'gemm-1024x1024x1024-NN'."""
        return "-".join([self.family] + self.label.replace("=", "").replace("+", "").split())

    @property
    def group(self):
        return f"{self.family} {self.label}"


def _torch():
    """PyTorch, or ImportError (a broken install raises other errors; treat them alike)."""
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - e.g. OSError from a half-installed wheel
        raise ImportError(f"PyTorch is unavailable: {type(e).__name__}: {e}") from e
    return torch


def _rng():
    return np.random.default_rng(0)


def _count(n):
    """4194304 -> '4M' (binary multiples, as the sizes are chosen)."""
    for unit, shift in (("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def _gemm_build(m, k, n, trans, dtype, impl):
    ta, tb = trans[0] == "T", trans[1] == "T"
    rng = _rng()
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=dtype)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=dtype)
    c = np.empty((m, n), dtype)
    if impl == "openblas":  # numpy passes transposed views to sgemm/dgemm as flags, no copies
        a_op, b_op = (a.T if ta else a), (b.T if tb else b)
        return lambda: np.matmul(a_op, b_op, out=c)
    if impl == "torch":
        torch = _torch()
        ta_, tb_, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
        a_op, b_op = (ta_.T if ta else ta_), (tb_.T if tb else tb_)
        return lambda: torch.matmul(a_op, b_op, out=tc)
    return lambda: K.gemm(a, b, c, trans_a=ta, trans_b=tb, backend=impl)


def _gemm_cases(sizes, dtype):
    if sizes == "tiny":  # small, odd shapes: every transpose case and edge tiles
        shapes = [(64, 64, 64, "NN"), (48, 40, 24, "NT"), (48, 40, 24, "TN")]
    else:
        shapes = [(256, 256, 256, "NN"), (1024, 1024, 1024, "NN")]
        if sizes == "full":  # the transformer's: (768x128)(128x384) and (768x512)(512x128)
            shapes.append((2048, 2048, 2048, "NN"))
            shapes += [(m, k, n, t) for (m, k, n) in ((768, 128, 384), (768, 512, 128))
                       for t in ("NN", "NT", "TN")]
    return [Case("gemm", f"{m}x{k}x{n} {t}", ("gemm",),
                 functools.partial(_gemm_build, m, k, n, t, dtype), flops=2.0 * m * k * n,
                 extras=("torch", "openblas"), blas=("numpy", "openblas"))
            for m, k, n, t in shapes]


def _elementwise_sizes(sizes):
    return {"tiny": [4096], "quick": [4 << 20], "full": [4 << 20, 16 << 20]}[sizes]


def _gelu_build(n, dtype, impl):
    rng = _rng()
    x, dy = rng.standard_normal(n, dtype=dtype), rng.standard_normal(n, dtype=dtype)
    if impl == "torch":
        torch = _torch()
        F = torch.nn.functional
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
        return lambda: (F.gelu(tx, approximate="tanh"),
                        torch.ops.aten.gelu_backward(tdy, tx, approximate="tanh"))
    return lambda: (K.gelu(x, "tanh", backend=impl), K.gelu_backward(dy, x, "tanh", backend=impl))


def _gelu_cases(sizes, dtype):
    return [Case("gelu", f"n={_count(n)} fwd+bwd", ("gelu", "gelu_backward"),
                 functools.partial(_gelu_build, n, dtype)) for n in _elementwise_sizes(sizes)]


def _relu_build(n, dtype, impl):
    rng = _rng()
    x, dy = rng.standard_normal(n, dtype=dtype), rng.standard_normal(n, dtype=dtype)
    if impl == "torch":
        torch = _torch()
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
        return lambda: (torch.relu(tx), torch.ops.aten.threshold_backward(tdy, tx, 0))
    return lambda: (K.relu(x, backend=impl), K.relu_backward(dy, x, backend=impl))


def _relu_cases(sizes, dtype):
    return [Case("relu", f"n={_count(n)} fwd+bwd", ("relu", "relu_backward"),
                 functools.partial(_relu_build, n, dtype)) for n in _elementwise_sizes(sizes)]


def _softmax_build(rows, cols, dtype, impl):
    x = _rng().standard_normal((rows, cols), dtype=dtype)
    if impl == "torch":
        torch = _torch()
        tx = torch.from_numpy(x)
        return lambda: torch.softmax(tx, dim=-1)
    return lambda: K.softmax(x, backend=impl)


def _row_shapes(sizes, quick, full_extra):
    return {"tiny": [(64, 100)], "quick": [quick], "full": [quick, full_extra]}[sizes]


def _softmax_cases(sizes, dtype):
    return [Case("softmax", f"{r}x{c}", ("softmax",),
                 functools.partial(_softmax_build, r, c, dtype))
            for r, c in _row_shapes(sizes, (4096, 1024), (256, 50304))]


def _cross_entropy_build(rows, vocab, dtype, impl):
    rng = _rng()
    logits = rng.standard_normal((rows, vocab), dtype=dtype)
    targets = rng.integers(0, vocab, rows)
    if impl == "torch":
        torch = _torch()
        F = torch.nn.functional
        tl, tt = torch.from_numpy(logits).requires_grad_(True), torch.from_numpy(targets)

        def run():
            tl.grad = None
            loss = F.cross_entropy(tl, tt)
            loss.backward()
            return loss.detach(), tl.grad
        return run
    return lambda: K.cross_entropy(logits, targets, backend=impl)


def _cross_entropy_cases(sizes, dtype):
    return [Case("cross_entropy", f"{r}x{v}", ("cross_entropy",),
                 functools.partial(_cross_entropy_build, r, v, dtype))
            for r, v in _row_shapes(sizes, (1024, 8192), (256, 50304))]


def _layer_norm_build(rows, cols, dtype, impl):
    rng = _rng()
    x, dy = (rng.standard_normal((rows, cols), dtype=dtype) for _ in range(2))
    w, b = rng.standard_normal(cols, dtype=dtype), rng.standard_normal(cols, dtype=dtype)
    if impl == "torch":
        torch = _torch()
        aten = torch.ops.aten
        tx, tdy, tw, tb = map(torch.from_numpy, (x, dy, w, b))

        def run():
            y, mean, rstd = aten.native_layer_norm(tx, [cols], tw, tb, 1e-5)
            dx, dw, db = aten.native_layer_norm_backward(tdy, tx, [cols], mean, rstd, tw, tb,
                                                         [True, True, True])
            return y, dx, dw, db
        return run

    def run():
        y, mean, rstd = K.layer_norm(x, w, b, 1e-5, backend=impl)
        dx, dw, db = K.layer_norm_backward(dy, x, w, mean, rstd, backend=impl)
        return y, dx, dw, db
    return run


def _layer_norm_cases(sizes, dtype):
    return [Case("layer_norm", f"{r}x{c} fwd+bwd", ("layer_norm", "layer_norm_backward"),
                 functools.partial(_layer_norm_build, r, c, dtype))
            for r, c in _row_shapes(sizes, (4096, 768), (16384, 768))]


def _embedding_build(vocab, cols, n, dtype, impl):
    rng = _rng()
    weight = rng.standard_normal((vocab, cols), dtype=dtype)
    ids = rng.integers(0, vocab, n)
    dout = rng.standard_normal((n, cols), dtype=dtype)
    if impl == "torch":
        torch = _torch()
        F = torch.nn.functional
        tw, tids, tdout = map(torch.from_numpy, (weight, ids, dout))
        return lambda: (F.embedding(tids, tw),
                        torch.ops.aten.embedding_dense_backward(tdout, tids, vocab, -1, False))
    return lambda: (K.embedding(weight, ids, backend=impl),
                    K.embedding_backward(dout, ids, vocab, backend=impl))


def _embedding_cases(sizes, dtype):
    shapes = {"tiny": [(100, 16, 64)], "quick": [(8192, 768, 8192)],
              "full": [(8192, 768, 8192), (50304, 768, 8192)]}[sizes]
    return [Case("embedding", f"V={v} C={c} N={n} fwd+bwd", ("embedding", "embedding_backward"),
                 functools.partial(_embedding_build, v, c, n, dtype)) for v, c, n in shapes]


def _adamw_build(n, dtype, impl):
    rng = _rng()
    param, grad = rng.standard_normal(n, dtype=dtype), rng.standard_normal(n, dtype=dtype)
    exp_avg, exp_avg_sq = np.zeros(n, dtype), np.zeros(n, dtype)
    hyper = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    if impl == "torch":
        torch = _torch()
        tp = torch.from_numpy(param).requires_grad_(True)
        tp.grad = torch.from_numpy(grad)
        try:  # the fused CPU kernel (PyTorch >= 2.4); else the multi-tensor one
            opt = torch.optim.AdamW([tp], fused=True, **hyper)
        except (RuntimeError, TypeError, ValueError):
            opt = torch.optim.AdamW([tp], foreach=True, **hyper)

        def run():
            opt.step()
            return tp.detach()
        return run
    step = [0]

    def run():
        step[0] += 1
        K.adam_step(param, grad, exp_avg, exp_avg_sq, step=step[0], decoupled=True,
                    backend=impl, **hyper)
        return param
    return run


def _adamw_cases(sizes, dtype):
    return [Case("adamw", f"n={_count(n)} step", ("adam_step",),
                 functools.partial(_adamw_build, n, dtype)) for n in _elementwise_sizes(sizes)]


def _attention_build(b, h, t, d, backward, dtype, impl):
    rng = _rng()
    q, k, v, dout = (rng.standard_normal((b, h, t, d), dtype=dtype) for _ in range(4))
    if impl == "torch":
        torch = _torch()
        sdpa = torch.nn.functional.scaled_dot_product_attention
        tq, tk, tv, tdout = map(torch.from_numpy, (q, k, v, dout))
        if not backward:
            return lambda: sdpa(tq, tk, tv, is_causal=True)
        for x in (tq, tk, tv):
            x.requires_grad_(True)

        def run():
            tq.grad = tk.grad = tv.grad = None
            out = sdpa(tq, tk, tv, is_causal=True)
            out.backward(tdout)
            return out.detach(), tq.grad, tk.grad, tv.grad
        return run
    if not backward:
        return lambda: K.attention(q, k, v, causal=True, backend=impl)[0]

    def run():
        out, lse = K.attention(q, k, v, causal=True, backend=impl)
        dq, dk, dv = K.attention_backward(dout, q, k, v, out, lse, causal=True, backend=impl)
        return out, dq, dk, dv
    return run


def _attention_cases(sizes, dtype):
    shapes = {"tiny": [(1, 2, 64, 16)], "quick": [(1, 8, 1024, 64)],
              "full": [(1, 8, 1024, 64), (1, 8, 2048, 64)]}[sizes]
    cases = []
    for b, h, t, d in shapes:
        # Useful flops: q k^T and p v over the causal pairs (recomputation not counted);
        # the backward pass is four such products (dv, dp, dq, dk), so fwd+bwd = 3 x fwd.
        fwd = 4.0 * b * h * d * t * (t + 1) / 2
        for backward in (False, True):
            label = f"B={b} H={h} T={t} D={d} " + ("fwd+bwd" if backward else "fwd")
            kernels = ("attention", "attention_backward") if backward else ("attention",)
            cases.append(Case("attention", label, kernels,
                              functools.partial(_attention_build, b, h, t, d, backward, dtype),
                              flops=fwd * (3 if backward else 1), blas=("numpy",)))
    return cases


def _overhead_build(direct, dtype, impl):
    x = _rng().standard_normal(8, dtype=dtype)
    if impl == "torch":
        torch = _torch()
        tx = torch.from_numpy(x)
        return lambda: torch.relu(tx)
    if direct:  # the backend's function itself, skipping fastnn.kernels' checks and dispatch
        fn = _backends.load(impl).relu
        return lambda: fn(x)
    return lambda: K.relu(x, backend=impl)


def _overhead_cases(sizes, dtype):
    return [Case("overhead", label, ("relu",), functools.partial(_overhead_build, direct, dtype))
            for label, direct in (("relu n=8 via fastnn.kernels", False),
                                  ("relu n=8 direct backend call", True))]


_CASE_BUILDERS = {
    "gemm": _gemm_cases, "gelu": _gelu_cases, "relu": _relu_cases, "softmax": _softmax_cases,
    "cross_entropy": _cross_entropy_cases, "layer_norm": _layer_norm_cases,
    "embedding": _embedding_cases, "adamw": _adamw_cases, "attention": _attention_cases,
    "overhead": _overhead_cases,
}


def cases(family, sizes="quick", dtype="float32"):
    """The benchmark cases of one kernel family at one size setting ('tiny', 'quick', 'full')."""
    if family not in _CASE_BUILDERS:
        raise ValueError(f"unknown kernel family {family!r}; choose from {', '.join(FAMILIES)}")
    if sizes not in SIZES:
        raise ValueError(f"unknown sizes {sizes!r}; choose from {', '.join(SIZES)}")
    return _CASE_BUILDERS[family](sizes, np.dtype(dtype))


def torch_available():
    try:
        _torch()
        return True
    except ImportError:
        return False


def impls_for(case, backends, with_torch):
    """Implementation names to run for a case, in column order: naive numpy first."""
    names = ["numpy"] + [b for b in backends if b != "numpy"]
    names += [e for e in case.extras if e != "torch" or with_torch]
    return sorted(names, key=_impl_order)


# ---------------------------------------------------------------- measuring
@dataclass
class Result:
    """One implementation on one case: status 'ok', 'n/a' (kernel missing), 'error' (it raised)
    or 'mismatch' (it ran, but its result differs from naive numpy's)."""
    impl: str
    status: str = "ok"
    note: str = ""
    first_call_s: float = None
    number: int = 0                 # calls per turn
    samples: list = field(default_factory=list)   # seconds per call, one per turn

    def time(self, stat="median"):
        if not self.samples:
            return None
        return min(self.samples) if stat == "min" else statistics.median(self.samples)


def _as_arrays(out):
    """An implementation's result as a list of numpy arrays (copied: some are updated in place)."""
    items = out if isinstance(out, (tuple, list)) else (out,)
    arrays = []
    for x in items:
        if hasattr(x, "detach"):  # a torch tensor
            x = x.detach().cpu().numpy()
        arrays.append(np.array(x, copy=True))
    return arrays


def _mismatch(out, ref):
    """Why out differs from the reference result (None when it agrees)."""
    if len(out) != len(ref):
        return f"returned {len(out)} outputs, naive numpy {len(ref)}"
    for i, (o, r) in enumerate(zip(out, ref)):
        if o.shape != r.shape:
            return f"output {i} has shape {o.shape}, naive numpy's {r.shape}"
        if r.size == 0:
            continue
        tol = 2e-3 if r.dtype == np.float32 else 1e-6
        scale = max(1.0, float(np.max(np.abs(r))))
        err = float(np.max(np.abs(o.astype(r.dtype, copy=False) - r)))
        if not err <= tol * scale:  # also catches NaN
            return f"output {i} differs from naive numpy's by up to {err:.3g} (scale {scale:.3g})"
    return None


def _turn(fn, number):
    """Seconds per call over `number` back-to-back calls, with the garbage collector paused."""
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - t0) / number
    finally:
        if gc_enabled:
            gc.enable()


def _calls_per_turn(fn, target_s):
    """How many calls make a turn of about target_s. Sized from the fastest of a few warm calls
    (up to 5, or fewer once they add up to target_s): one call that a busy machine stalled would
    otherwise shrink every turn to a single, noisy call."""
    best, spent = math.inf, 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        fn()
        once = time.perf_counter() - t0
        best, spent = min(best, once), spent + once
        if spent >= target_s:
            break
    return max(1, min(1_000_000, int(target_s / max(best, 1e-7))))


def measure(case, impls, repeat, target_s=0.02, settle_s=BLAS_SETTLE_S):
    """Time every implementation of a case, taking turns; returns {impl: Result}."""
    results = {impl: Result(impl) for impl in impls}
    fns, ref = {}, None
    # naive numpy first: its result is the reference for the others' check
    for impl in sorted(impls, key=lambda i: i != "numpy"):
        res = results[impl]
        try:
            fn = case.build(impl)
            t0 = time.perf_counter()
            out = fn()  # compiles Numba code, fills caches
            res.first_call_s = time.perf_counter() - t0
            out = _as_arrays(out)
        except NotImplementedError as e:
            res.status, res.note = "n/a", str(e)
            continue
        except Exception as e:  # noqa: BLE001 - a broken kernel is reported, not fatal
            res.status, res.note = "error", f"{type(e).__name__}: {e}"
            continue
        if impl == "numpy":
            ref = out
        elif ref is not None:
            why = _mismatch(out, ref)
            if why:
                res.status, res.note = "mismatch", why
        del out
        fns[impl] = fn
    del ref
    for impl, fn in fns.items():
        results[impl].number = _calls_per_turn(fn, target_s)
    if settle_s and any(impl in case.blas for impl in fns):
        time.sleep(settle_s)
    order = list(fns)
    for turn in range(repeat):
        shift = turn % max(len(order), 1)  # rotate who goes first, so no one always follows BLAS
        for impl in order[shift:] + order[:shift]:
            results[impl].samples.append(_turn(fns[impl], results[impl].number))
            if settle_s and impl in case.blas:
                time.sleep(settle_s)
    fns.clear()  # frees this case's inputs before the next case allocates its own
    return results


# ---------------------------------------------------------------- machine description
def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _numpy_blas():
    """numpy's BLAS: library, version, the kernel it picked for this CPU, and its threads."""
    try:
        import threadpoolctl
        libs = [lib for lib in threadpoolctl.threadpool_info() if lib.get("user_api") == "blas"]
        # several BLAS copies may be loaded (scipy's, sklearn's); prefer numpy's own
        numpy_dir = os.path.dirname(os.path.dirname(np.__file__))
        libs.sort(key=lambda lib: not os.path.dirname(lib["filepath"]).startswith(
            os.path.join(numpy_dir, "numpy")))
        if libs:
            lib = libs[0]
            return {"library": lib.get("internal_api"), "version": lib.get("version"),
                    "kernel": lib.get("architecture"), "threads": lib.get("num_threads"),
                    "threading": lib.get("threading_layer"), "filepath": lib.get("filepath"),
                    "source": "threadpoolctl"}
    except Exception:  # noqa: BLE001 - threadpoolctl is optional
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return {"library": blas.get("name"), "version": blas.get("version"), "kernel": None,
                "threads": None, "source": "numpy.show_config (install threadpoolctl for the "
                                            "runtime kernel and threads)"}
    except Exception:  # noqa: BLE001
        return {"library": "unknown", "source": None}


_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
             "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER",
             "FASTNN_ISA", "FASTNN_BACKEND")


def machine_info(with_torch):
    import numba
    info = {
        "fastnn": fastnn.__version__, "python": platform.python_version(),
        "numpy": np.__version__, "numba": numba.__version__,
        "cpu": _cpu_model(), "cpus_usable": _usable_cpus(), "platform": platform.platform(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "threads": {"fastnn": fastnn.get_num_threads()},
        "numpy_blas": _numpy_blas(),
        "env": {k: os.environ[k] for k in _ENV_VARS if k in os.environ},
        "backends": {}, "torch": None,
    }
    for name in fastnn.available_backends():
        be = _backends.load(name)
        entry = {"kernels": len(_backends.KERNELS) - len(be.missing()),
                 "of": len(_backends.KERNELS)}
        if name == "cython":
            entry["cpu_path"] = be.module.cpu_path()
            entry["cpu_detected"] = be.module.cpu_detected()
            info["threads"]["openmp"] = be.module.get_num_threads()
        elif name == "numba":
            info["threads"]["numba"] = numba.get_num_threads()
            try:
                entry["threading_layer"] = numba.threading_layer()
            except ValueError:  # no parallel Numba function has run yet
                entry["threading_layer"] = None
        info["backends"][name] = entry
    info["threads"]["openblas"] = info["numpy_blas"].get("threads")
    if with_torch:
        torch = _torch()
        cfg = torch.__config__.show()
        blas = next((part.split("=", 1)[1] for part in cfg.replace(",", " ").split()
                     if part.startswith("BLAS_INFO=")), None)
        info["torch"] = {"version": torch.__version__, "blas": blas}
        info["threads"]["torch"] = torch.get_num_threads()
    return info


def _header(info, args, sizes):
    lines = [f"fastnn bench {' '.join(args.argv)}".rstrip()
             + f"  ({sizes} sizes, {args.dtype}, {args.stat} of {args.repeat} round-robin turns "
               f"per implementation)"]
    versions = [f"fastnn {info['fastnn']}", f"python {info['python']}", f"numpy {info['numpy']}",
                f"numba {info['numba']}"]
    if info["torch"]:
        versions.append(f"torch {info['torch']['version']}")
    lines.append(" | ".join(versions))
    lines.append(f"CPU: {info['cpu']}, {info['cpus_usable']} usable cores")
    load = info["load_average_1min"]
    if load is not None and load > 0.5:
        # other processes take cores from multi-threaded kernels, which then wait at barriers
        lines.append(f"note: load average {load:.1f} before starting: other processes are busy, "
                     f"so multi-threaded timings (GEMM above all) will be noisy")
    cy = info["backends"].get("cython")
    if cy:
        lines.append(f"C kernels (cython): {cy['cpu_path']} path "
                     f"(CPU supports {cy['cpu_detected']})")
    blas = info["numpy_blas"]
    kernel = f", {blas['kernel']} kernel" if blas.get("kernel") else ""
    lines.append(f"numpy's BLAS (OpenBLAS column, naive numpy's matmuls): {blas.get('library')} "
                 f"{blas.get('version') or ''}{kernel}, threads={blas.get('threads')} "
                 f"(from {blas.get('source')})")
    if info["torch"]:
        lines.append(f"PyTorch: BLAS {info['torch']['blas']}")
    names = {"fastnn": "fastnn", "openmp": "C/OpenMP", "numba": "numba", "openblas": "OpenBLAS",
             "torch": "PyTorch"}
    lines.append("threads: " + ", ".join(f"{names.get(k, k)} {v}"
                                         for k, v in info["threads"].items()))
    effects = {"OPENBLAS_CORETYPE": "forces that OpenBLAS kernel instead of the best for this CPU",
               "OPENBLAS_L2_SIZE": "overrides the cache size OpenBLAS blocks for",
               "OPENBLAS_NUM_THREADS": "caps OpenBLAS's threads"}
    for var, effect in effects.items():
        if var in info["env"]:
            lines.append(f"note: {var}={info['env'][var]} is set: it {effect}, so naive numpy's "
                         f"matmuls and the OpenBLAS column may be slower than numpy can be here")
    others = {k: v for k, v in info["env"].items() if not k.startswith("OPENBLAS")}
    if others:
        lines.append("environment: " + " ".join(f"{k}={v}" for k, v in others.items()))
    return "\n".join(lines)


# ---------------------------------------------------------------- thread control
class _ThreadControl:
    """Sets one thread count in fastnn (OpenMP + Numba), PyTorch and numpy's BLAS; restores."""

    def __init__(self, with_torch):
        self.torch = _torch() if with_torch else None
        self.saved = (fastnn.get_num_threads(),
                      self.torch.get_num_threads() if self.torch else None)
        self.blas_limit = None

    def set(self, n):
        fastnn.set_num_threads(n)
        if self.torch:
            self.torch.set_num_threads(n)
        self._release_blas()
        try:
            import threadpoolctl
            self.blas_limit = threadpoolctl.threadpool_limits(limits=n, user_api="blas")
        except ImportError:
            print("note: threadpoolctl is not installed; numpy's BLAS keeps its own thread count",
                  file=sys.stderr)

    def _release_blas(self):
        if self.blas_limit is not None:
            self.blas_limit.restore_original_limits()
            self.blas_limit = None

    def restore(self):
        fastnn.set_num_threads(self.saved[0])
        if self.torch:
            self.torch.set_num_threads(self.saved[1])
        self._release_blas()


# ---------------------------------------------------------------- tables
def _fmt_time(s):
    if s is None:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale or unit == "µs":
            v = s / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"


def _fmt_speedup(x):
    if x < 0.01:
        return "<0.01x"
    return f"{x:.2f}x" if x < 10 else (f"{x:.1f}x" if x < 100 else f"{x:.0f}x")


def _fmt_gflops(v):
    return "<0.1" if v < 0.05 else (f"{v:.1f}" if v < 100 else f"{v:.0f}")


def _cell(res, value, fmt):
    """A table cell: the formatted value, 'n/a' or 'error', and '!' on a wrong result."""
    if res is None:
        return ""
    if res.status in ("n/a", "error"):
        return res.status
    if value is None:
        return "n/a"
    return fmt(value) + ("!" if res.status == "mismatch" else "")


def _row_metrics(case, results, stat):
    """{impl: {time_s, speedup, gflops, pct_openblas}} for one case."""
    t = {impl: r.time(stat) for impl, r in results.items()}
    base, blas = t.get("numpy"), t.get("openblas")
    out = {}
    for impl, ti in t.items():
        out[impl] = {
            "time_s": ti,
            "speedup_vs_numpy": base / ti if (ti and base) else None,
            "gflops": case.flops / ti / 1e9 if (ti and case.flops) else None,
            "pct_of_openblas": 100.0 * blas / ti if (ti and blas) else None,
        }
    return out


def format_family(family, measured, stat, width=12):
    """The table of one family: for each case, a line per metric, a column per implementation."""
    impls = sorted({impl for _, res in measured for impl in res}, key=_impl_order)
    labels = [IMPL_LABELS.get(i, i) for i in impls]
    case_w = max(len(c.label) for c, _ in measured) + 2
    what, torch_op = FAMILY_INFO[family]
    lines = [f"{family}: {what}"]
    lines.append(f"{'case':{case_w}}{'':9}" + "".join(f"{lab:>{width}}" for lab in labels))
    notes = []
    for case, results in measured:
        m = _row_metrics(case, results, stat)
        metrics = [("time", "time_s", _fmt_time), ("speedup", "speedup_vs_numpy", _fmt_speedup)]
        if case.flops:
            metrics.append(("GFLOP/s", "gflops", _fmt_gflops))
        if "openblas" in results:
            metrics.append(("% BLAS", "pct_of_openblas", "{:.0f}%".format))
        for i, (name, key, fmt) in enumerate(metrics):
            cells = [_cell(results.get(impl), m.get(impl, {}).get(key), fmt) for impl in impls]
            lines.append(f"{case.label if i == 0 else '':{case_w}}{name:9}"
                         + "".join(f"{c:>{width}}" for c in cells))
        for impl, res in results.items():
            if res.status in ("error", "mismatch"):
                notes.append(f"  {'!' if res.status == 'mismatch' else 'error'} "
                             f"{IMPL_LABELS.get(impl, impl)} on {case.label}: {res.note}")
    if "torch" in impls:
        lines.append(f"PyTorch: {torch_op}" + ("; OpenBLAS: numpy a @ b" if "openblas" in impls
                                               else ""))
    return "\n".join(lines + notes)


def format_scaling(all_measured, threads, stat, width=12):
    """Time at the first thread count over time at each other, per case and implementation."""
    base_t = threads[0]
    by_case = {}
    for t, family, case, results in all_measured:
        by_case.setdefault((family, case.label), {})[t] = results
    impls = sorted({i for _, _, _, res in all_measured for i in res}, key=_impl_order)
    label_w = max(len(f"{f} {c}") for f, c in by_case) + 2
    lines = [f"thread scaling: time with {base_t} thread(s) / time with N"]
    lines.append(f"{'case':{label_w}}{'N':>4}" + "".join(f"{IMPL_LABELS.get(i, i):>{width}}"
                                                         for i in impls))
    for (family, label), per_t in by_case.items():
        base = per_t.get(base_t, {})
        for i, t in enumerate(threads[1:]):
            cells = []
            for impl in impls:
                b, r = base.get(impl), per_t.get(t, {}).get(impl)
                tb, tr = (b.time(stat) if b else None), (r.time(stat) if r else None)
                cells.append(f"{tb / tr:.2f}x" if (tb and tr) else ("" if r is None else "n/a"))
            lines.append(f"{(family + ' ' + label) if i == 0 else '':{label_w}}{t:>4}"
                         + "".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)


# ---------------------------------------------------------------- plot
def plot(all_measured, threads, stat, path, title):
    """Bar chart: speedup over naive numpy per case (log scale), a bar per implementation,
    one panel per thread count."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [[(f, c, r) for t2, f, c, r in all_measured if t2 == t and f != "overhead"]
              for t in threads]
    n_cases = max((len(p) for p in panels), default=1)
    impls = [i for i in IMPL_ORDER if i != "numpy"
             and any(i in r for _, _, _, r in all_measured)]
    fig, axes = plt.subplots(len(threads), 1, figsize=(max(8, 0.9 * n_cases + 2),
                                                       4.2 * len(threads)), squeeze=False)
    colors = dict(zip(IMPL_ORDER, ("#999999", "#1f77b4", "#ff7f0e", "#9467bd", "#d62728",
                                   "#2ca02c")))
    width = 0.8 / max(len(impls), 1)
    for ax, t, panel in zip(axes[:, 0], threads, panels):
        for j, impl in enumerate(impls):
            xs, ys = [], []
            for x, (_, case, results) in enumerate(panel):
                s = _row_metrics(case, results, stat).get(impl, {}).get("speedup_vs_numpy")
                if s:
                    xs.append(x + (j - (len(impls) - 1) / 2) * width)
                    ys.append(s)
            ax.bar(xs, ys, width, label=IMPL_LABELS.get(impl, impl), color=colors[impl])
            for x, y in zip(xs, ys):
                ax.annotate(f"{y:.2g}", (x, y), ha="center", va="bottom", fontsize=5.5)
        ax.axhline(1.0, color="black", linewidth=0.8, label="naive numpy = 1")
        ax.set_yscale("log")
        top = max([b.get_height() for b in ax.patches] + [1.0])
        ax.set_ylim(top=top * 6)  # headroom for the legend above the tallest bar
        ax.set_ylabel("speedup over naive numpy")
        ax.set_xticks(range(len(panel)))
        ax.set_xticklabels([f"{f} {c.label}" for f, c, _ in panel], rotation=35, ha="right",
                           fontsize=7)
        ax.set_title(f"{title} - {t} thread(s)", fontsize=9)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8, ncol=len(impls) + 1, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- command line
def _parser():
    p = argparse.ArgumentParser(prog="fastnn bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true",
                   help="larger sizes, and GEMM on the transformer's shapes in NN/NT/TN")
    p.add_argument("--sizes", choices=SIZES, help=argparse.SUPPRESS)  # 'tiny' is for the tests
    p.add_argument("--kernels", metavar="LIST",
                   help=f"comma-separated kernel families (default all): {','.join(FAMILIES)}")
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
    available = fastnn.available_backends()
    if text is None:
        return [b for b in available if b != "cuda"]
    chosen = _csv(text)
    for name in chosen:
        if name not in _backends._MODULES:
            parser.error(f"unknown backend {name!r}; choose from {', '.join(_backends._MODULES)}")
        if name not in available:
            parser.error(f"backend {name!r} is unavailable: "
                         f"{_backends.unavailable_reasons().get(name)}")
    return chosen


def _json_rows(all_measured, stat, default_threads):
    """One flat record per (thread count, case, implementation)."""
    rows = []
    for n_threads, family, case, results in all_measured:
        metrics = _row_metrics(case, results, stat)
        for impl, res in results.items():
            rows.append({
                "family": family, "case": case.label, "case_id": case.id,
                "threads": n_threads or default_threads, "impl": impl,
                "impl_label": IMPL_LABELS.get(impl, impl), "status": res.status,
                "note": res.note, "kernels": list(case.kernels), "flops": case.flops,
                **metrics[impl],
                "median_s": res.time("median"), "min_s": res.time("min"),
                "samples_s": res.samples, "calls_per_turn": res.number,
                "first_call_s": res.first_call_s,
            })
    return rows


def main(argv=None):
    t_start = time.perf_counter()
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    sizes = args.sizes or ("full" if args.full else "quick")
    families = _csv(args.kernels) if args.kernels else list(FAMILIES)
    for f in families:
        if f not in FAMILIES:
            parser.error(f"unknown kernel family {f!r}; choose from {', '.join(FAMILIES)}")
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
    with_torch = not args.no_torch and torch_available()
    settle = BLAS_SETTLE_S if sizes != "tiny" else 0.0

    control = _ThreadControl(with_torch)
    info = machine_info(with_torch)
    print(_header(info, args, sizes), flush=True)
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
               "rows": _json_rows(all_measured, args.stat, info["threads"]["fastnn"])}
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
