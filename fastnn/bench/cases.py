"""The benchmark cases: what each kernel family times, at which sizes, and the PyTorch op it is
compared with.

The families come from the kernel registry (fastnn/kernels/registry.py): every kernel declared
with `bench=Bench(kind, params)` is one family, built by the case builder of that kind (the
`@kind` functions below), plus the non-kernel 'overhead' family. A family is named after its
kind, except the generic "unary" kind, named after the kernel: a new elementwise kernel declared
with `bench=Bench("unary", dict(backward=..., torch=...))` appears in `fastnn bench` (and in
bench/'s pytest-benchmark suite) with no edit here.

A case's build(impl) prepares its inputs (the same for every implementation, from one seed) and
returns a zero-argument callable that runs the operation once; impl is naive numpy (the reference
backend), a fastnn backend, "torch" or "openblas".
"""
import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from .. import kernels as K
from ..kernels import dispatch, registry
from .machine import load_torch

SIZES = ("tiny", "quick", "full")   # tiny: seconds, for the tests (a hidden --sizes option)
IMPL_ORDER = ("numpy", "numba", "cython", "cuda", "torch", "torch-here", "openblas")
# torch-here: --train's PyTorch in fastnn's own process (--torch-in-process)
IMPL_LABELS = {"numpy": "naive numpy", "torch": "PyTorch", "torch-here": "PyTorch here",
               "openblas": "OpenBLAS"}


def impl_order(impl):
    """Column order: naive numpy, the fastnn backends, then PyTorch and OpenBLAS."""
    return (IMPL_ORDER.index(impl) if impl in IMPL_ORDER else len(IMPL_ORDER), impl)


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
    blas_check: bool = False       # also time OpenBLAS alone, to check its round-robin column

    @property
    def id(self):
        """A stable name for pytest ids and the JSON: 'gemm-1024x1024x1024-NN'."""
        return "-".join([self.family] + self.label.replace("=", "").replace("+", "").split())

    @property
    def group(self):
        return f"{self.family} {self.label}"


@dataclass(frozen=True)
class Family:
    """A table of `fastnn bench`: its name (as --kernels takes it), what it times, the PyTorch op
    it is compared with (a string, or a function returning one), and
    make_cases(sizes, dtype) -> [Case]."""
    name: str
    what: str
    torch_op: object
    make_cases: object
    kind: str = None


def _rng():
    return np.random.default_rng(0)


def _count(n):
    """4194304 -> '4M' (binary multiples, as the sizes are chosen)."""
    for unit, shift in (("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def _elementwise_sizes(sizes):
    return {"tiny": [4096], "quick": [4 << 20], "full": [4 << 20, 16 << 20]}[sizes]


def _row_shapes(sizes, quick, full_extra):
    return {"tiny": [(64, 100)], "quick": [quick], "full": [quick, full_extra]}[sizes]


# ---------------------------------------------------------------- case builders, by Bench kind
_KINDS = {}   # kind -> family(kernel, **params) -> Family


def kind(name):
    """Decorator: the case builder of Bench kind `name`."""
    def wrap(fn):
        _KINDS[name] = fn
        return fn
    return wrap


# ---- gemm
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
        torch = load_torch()
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
    # the OpenBLAS column is checked against a lone np.matmul on 1024^3 (64^3 in tiny runs)
    checked = {(1024, 1024, 1024, "NN"), (64, 64, 64, "NN")}
    return [Case("gemm", f"{m}x{k}x{n} {t}", ("gemm",),
                 functools.partial(_gemm_build, m, k, n, t, dtype), flops=2.0 * m * k * n,
                 extras=("torch", "openblas"), blas=("numpy", "openblas"),
                 blas_check=(m, k, n, t) in checked)
            for m, k, n, t in shapes]


@kind("gemm")
def _gemm_family(kernel):
    return Family("gemm", "GEMM c = op(a) @ op(b), M x K x N; NN/NT/TN: which operand is "
                          "transposed", "torch.matmul", _gemm_cases)


# ---- unary: any elementwise kernel, forward + its declared backward
def _torch_function(torch, name):
    """PyTorch's function `name`: torch.nn.functional's, else torch's ('relu', 'gelu', ...)."""
    fn = getattr(torch.nn.functional, name, None) or getattr(torch, name, None)
    if fn is None:
        raise ValueError(f"PyTorch has no function {name!r} (torch.nn.functional or torch)")
    return fn


def _unary_build(name, backward, kwargs, torch_name, n, dtype, impl):
    rng = _rng()
    x, dy = rng.standard_normal(n, dtype=dtype), rng.standard_normal(n, dtype=dtype)
    if impl == "torch":
        torch = load_torch()
        fn = _torch_function(torch, torch_name)
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
        if backward is None:
            return lambda: fn(tx, **kwargs)
        tx.requires_grad_(True)

        def run():
            tx.grad = None
            y = fn(tx, **kwargs)
            y.backward(tdy)
            return y.detach(), tx.grad
        return run
    fwd = registry.get(name).api
    if backward is None:
        return lambda: fwd(x, **kwargs, backend=impl)
    bwd = registry.get(backward)
    if bwd.gradient is not None and bwd.gradient.saved == "y":   # e.g. sigmoid_backward(dy, y)
        def run():
            y = fwd(x, **kwargs, backend=impl)
            return y, bwd.api(dy, y, **kwargs, backend=impl)
        return run
    return lambda: (fwd(x, **kwargs, backend=impl), bwd.api(dy, x, **kwargs, backend=impl))


@kind("unary")
def _unary_family(kernel, backward=None, kwargs=None, torch=None, label=None):
    """params: backward (the backward kernel's name, called as backward(dy, x or y, **kwargs)),
    kwargs (for both kernels and PyTorch's function), torch (PyTorch's function, in
    torch.nn.functional or torch; default the kernel's name), label (the table's title)."""
    name, kwargs, torch_name = kernel.name, dict(kwargs or {}), torch or kernel.name
    if backward is not None:
        registry.get(backward)   # a misspelt backward name fails here, loudly
    what = "forward + backward" if backward else "forward"
    suffix = "fwd+bwd" if backward else "fwd"

    def make_cases(sizes, dtype):
        kernels = (name, backward) if backward else (name,)
        return [Case(name, f"n={_count(n)} {suffix}", kernels,
                     functools.partial(_unary_build, name, backward, kwargs, torch_name, n, dtype))
                for n in _elementwise_sizes(sizes)]
    def torch_op():   # asked only when PyTorch is in the table
        torch = load_torch()
        where = "F" if getattr(torch.nn.functional, torch_name, None) else "torch"
        return f"{where}.{torch_name}" + (" + autograd backward" if backward else "")
    return Family(name, f"{label or name} {what}, elementwise", torch_op, make_cases)


# ---- softmax
def _softmax_build(rows, cols, dtype, impl):
    x = _rng().standard_normal((rows, cols), dtype=dtype)
    if impl == "torch":
        torch = load_torch()
        tx = torch.from_numpy(x)
        return lambda: torch.softmax(tx, dim=-1)
    return lambda: K.softmax(x, backend=impl)


def _softmax_cases(sizes, dtype):
    return [Case("softmax", f"{r}x{c}", ("softmax",),
                 functools.partial(_softmax_build, r, c, dtype))
            for r, c in _row_shapes(sizes, (4096, 1024), (256, 50304))]


@kind("softmax")
def _softmax_family(kernel):
    return Family("softmax", "softmax over the last axis of (N x C), forward", "F.softmax",
                  _softmax_cases)


# ---- cross_entropy
def _cross_entropy_build(rows, vocab, dtype, impl):
    rng = _rng()
    logits = rng.standard_normal((rows, vocab), dtype=dtype)
    targets = rng.integers(0, vocab, rows)
    if impl == "torch":
        torch = load_torch()
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


@kind("cross_entropy")
def _cross_entropy_family(kernel):
    return Family("cross_entropy", "cross-entropy over logits (N x V): mean loss and dlogits",
                  "F.cross_entropy + autograd backward", _cross_entropy_cases)


# ---- layer_norm
def _layer_norm_build(rows, cols, dtype, impl):
    rng = _rng()
    x, dy = (rng.standard_normal((rows, cols), dtype=dtype) for _ in range(2))
    w, b = rng.standard_normal(cols, dtype=dtype), rng.standard_normal(cols, dtype=dtype)
    if impl == "torch":
        torch = load_torch()
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


@kind("layer_norm")
def _layer_norm_family(kernel):
    return Family("layer_norm", "layer norm over the last axis of (N x C), forward + backward",
                  "aten.native_layer_norm + native_layer_norm_backward", _layer_norm_cases)


# ---- embedding
def _embedding_build(vocab, cols, n, dtype, impl):
    rng = _rng()
    weight = rng.standard_normal((vocab, cols), dtype=dtype)
    ids = rng.integers(0, vocab, n)
    dout = rng.standard_normal((n, cols), dtype=dtype)
    if impl == "torch":
        torch = load_torch()
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


@kind("embedding")
def _embedding_family(kernel):
    return Family("embedding", "embedding (V x C table, N ids): gather forward + scatter-add "
                               "backward", "F.embedding + aten.embedding_dense_backward",
                  _embedding_cases)


# ---- adamw
def _adamw_build(n, dtype, impl):
    rng = _rng()
    param, grad = rng.standard_normal(n, dtype=dtype), rng.standard_normal(n, dtype=dtype)
    exp_avg, exp_avg_sq = np.zeros(n, dtype), np.zeros(n, dtype)
    hyper = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    if impl == "torch":
        torch = load_torch()
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


@kind("adamw")
def _adamw_family(kernel):
    return Family("adamw", "AdamW step over n float params, in place",
                  "torch.optim.AdamW(fused=True).step() (foreach=True where fused is unsupported)",
                  _adamw_cases)


# ---- attention
def _attention_build(b, h, t, d, backward, dtype, impl):
    rng = _rng()
    q, k, v, dout = (rng.standard_normal((b, h, t, d), dtype=dtype) for _ in range(4))
    if impl == "torch":
        torch = load_torch()
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


@kind("attention")
def _attention_family(kernel):
    return Family("attention", "causal attention, q k v (B x H x T x D)",
                  "F.scaled_dot_product_attention (+ autograd backward)", _attention_cases)


# ---- vision: conv2d, max_pool2d, batch_norm (forward + backward, NCHW)
def _conv2d_build(n, cin, cout, hw, k, dtype, impl):
    rng = _rng()
    x = rng.standard_normal((n, cin, hw, hw), dtype=dtype)
    w = rng.standard_normal((cout, cin, k, k), dtype=dtype) * 0.1
    b = rng.standard_normal(cout, dtype=dtype)
    pad = k // 2
    dy = rng.standard_normal((n, cout, hw, hw), dtype=dtype)
    if impl == "torch":
        torch = load_torch()
        tx, tw, tb, tdy = map(torch.from_numpy, (x, w, b, dy))
        tx.requires_grad_(True), tw.requires_grad_(True), tb.requires_grad_(True)

        def run():
            y = torch.nn.functional.conv2d(tx, tw, tb, padding=pad)
            y.backward(tdy)
            return y.detach(), tx.grad, tw.grad, tb.grad
        return run
    return lambda: (K.conv2d(x, w, b, padding=pad, backend=impl),
                    *K.conv2d_backward(dy, x, w, padding=pad, backend=impl))


def _conv2d_cases(sizes, dtype):
    shapes = {"tiny": [(2, 4, 8, 8, 3)], "quick": [(8, 64, 64, 16, 3)],
              "full": [(32, 64, 64, 32, 3), (64, 3, 32, 32, 5)]}[sizes]
    return [Case("conv2d", f"N={n} {ci}->{co} {hw}x{hw} {k}x{k} fwd+bwd",
                 ("conv2d", "conv2d_backward"),
                 functools.partial(_conv2d_build, n, ci, co, hw, k, dtype),
                 flops=3 * 2.0 * n * co * hw * hw * ci * k * k)
            for n, ci, co, hw, k in shapes]


@kind("conv2d")
def _conv2d_family(kernel):
    return Family("conv2d", "2-D convolution, NCHW, padding k//2: forward + input, weight and "
                  "bias gradients", "F.conv2d + autograd backward", _conv2d_cases)


def _max_pool2d_build(n, c, hw, dtype, impl):
    rng = _rng()
    x = rng.standard_normal((n, c, hw, hw), dtype=dtype)
    dy = rng.standard_normal((n, c, hw // 2, hw // 2), dtype=dtype)
    if impl == "torch":
        torch = load_torch()
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)

        def run():
            y, idx = torch.nn.functional.max_pool2d(tx, 2, return_indices=True)
            return y, torch.ops.aten.max_pool2d_with_indices_backward(
                tdy, tx, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)
        return run

    def run():
        y, idx = K.max_pool2d(x, 2, backend=impl)
        return y, K.max_pool2d_backward(dy, idx, x.shape, backend=impl)
    return run


def _pool_shapes(sizes):
    return {"tiny": [(2, 4, 8)], "quick": [(32, 64, 32)], "full": [(32, 64, 32), (64, 128, 64)]}[sizes]


def _max_pool2d_cases(sizes, dtype):
    return [Case("max_pool2d", f"{n}x{c}x{hw}x{hw} 2x2 fwd+bwd", ("max_pool2d", "max_pool2d_backward"),
                 functools.partial(_max_pool2d_build, n, c, hw, dtype))
            for n, c, hw in _pool_shapes(sizes)]


@kind("max_pool2d")
def _max_pool2d_family(kernel):
    return Family("max_pool2d", "2x2 max pooling, stride 2, NCHW: forward (with indices) + backward",
                  "F.max_pool2d + aten.max_pool2d_with_indices_backward", _max_pool2d_cases)


def _batch_norm_build(n, c, hw, dtype, impl):
    rng = _rng()
    x = rng.standard_normal((n, c, hw, hw), dtype=dtype)
    w, b = rng.standard_normal(c, dtype=dtype), rng.standard_normal(c, dtype=dtype)
    dy = rng.standard_normal(x.shape, dtype=dtype)
    if impl == "torch":
        torch = load_torch()
        tx, tw, tb, tdy = map(torch.from_numpy, (x, w, b, dy))
        rm, rv = torch.zeros(c, dtype=tx.dtype), torch.ones(c, dtype=tx.dtype)

        def run():
            y, mean, invstd, _, _ = torch.ops.aten._batch_norm_impl_index(
                tx, tw, tb, rm, rv, True, 0.1, 1e-5, False)
            return (y, *torch.ops.aten.native_batch_norm_backward(
                tdy, tx, tw, rm, rv, mean, invstd, True, 1e-5, [True, True, True]))
        return run
    rm, rv = np.zeros(c, dtype), np.ones(c, dtype)

    def run():
        y, mean, invstd = K.batch_norm(x, rm, rv, w, b, True, backend=impl)
        return (y, *K.batch_norm_backward(dy, x, w, mean, invstd, True, backend=impl))
    return run


def _batch_norm_cases(sizes, dtype):
    return [Case("batch_norm", f"{n}x{c}x{hw}x{hw} training fwd+bwd",
                 ("batch_norm", "batch_norm_backward"),
                 functools.partial(_batch_norm_build, n, c, hw, dtype))
            for n, c, hw in _pool_shapes(sizes)]


@kind("batch_norm")
def _batch_norm_family(kernel):
    return Family("batch_norm", "batch norm over NCHW, training mode: forward + backward",
                  "aten batch norm forward + native_batch_norm_backward", _batch_norm_cases)


# ---------------------------------------------------------------- overhead (no kernel of its own)
def _overhead_build(direct, dtype, impl):
    x = _rng().standard_normal(8, dtype=dtype)
    if impl == "torch":
        torch = load_torch()
        tx = torch.from_numpy(x)
        return lambda: torch.relu(tx)
    if direct:  # the backend's function itself, skipping fastnn.kernels' checks and dispatch
        fn = dispatch.load(impl).relu
        return lambda: fn(x)
    return lambda: K.relu(x, backend=impl)


def _overhead_cases(sizes, dtype):
    return [Case("overhead", label, ("relu",), functools.partial(_overhead_build, direct, dtype))
            for label, direct in (("relu n=8 via fastnn.kernels", False),
                                  ("relu n=8 direct backend call", True))]


OVERHEAD = Family("overhead", "per-call overhead: relu on 8 elements", "torch.relu",
                  _overhead_cases)


# ---------------------------------------------------------------- the family list
def families():
    """{name: Family}, in the registry's declaration order, then 'overhead': one family per kernel
    declared with bench=Bench(kind, params)."""
    out = {}
    for k in registry.REGISTRY.values():
        if k.bench is None:
            continue
        build = _KINDS.get(k.bench.kind)
        if build is None:
            raise ValueError(f"kernel {k.name!r} declares bench=Bench({k.bench.kind!r}), a kind "
                             f"fastnn/bench/cases.py does not know; known: {', '.join(_KINDS)}")
        try:
            fam = build(k, **k.bench.params)
        except TypeError as e:
            raise ValueError(f"kernel {k.name!r}: bad params for Bench({k.bench.kind!r}): {e}") \
                from None
        if fam.name in out:
            raise ValueError(f"two kernels declare the bench family {fam.name!r}")
        out[fam.name] = dataclasses.replace(fam, kind=k.bench.kind)
    out[OVERHEAD.name] = OVERHEAD
    return out


def family_names():
    """The family names --kernels takes, in table order."""
    return tuple(families())


def cases(family, sizes="quick", dtype="float32"):
    """The benchmark cases of one kernel family at one size setting ('tiny', 'quick', 'full')."""
    fams = families()
    if family not in fams:
        raise ValueError(f"unknown kernel family {family!r}; choose from {', '.join(fams)}")
    if sizes not in SIZES:
        raise ValueError(f"unknown sizes {sizes!r}; choose from {', '.join(SIZES)}")
    return fams[family].make_cases(sizes, np.dtype(dtype))


def impls_for(case, backends, with_torch):
    """Implementation names to run for a case, in column order: naive numpy first."""
    names = ["numpy"] + [b for b in backends if b != "numpy"]
    names += [e for e in case.extras if e != "torch" or with_torch]
    return sorted(names, key=impl_order)
