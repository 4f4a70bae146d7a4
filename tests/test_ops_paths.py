"""Every instruction-set path of the C ops kernels (csrc/ops_*.c) against the numpy reference.

The C code picks its AVX-512 / AVX2 / portable variant once per process (FASTNN_ISA caps it), so
each path runs in a subprocess: `python tests/test_ops_paths.py avx2` runs every check here on
that path and prints the failures. Sizes hit the vector tails (1, 7, 15, 17, 33) and the
multi-threaded split (1000003, with OMP_NUM_THREADS=3 for an uneven split); inputs mix random
values with extremes (+-1e4, +-100, 0, NaN).

Oracle: the reference in float64. float32 results are compared with the float64 reference of the
same float32 inputs, which is what they approximate (the reference evaluated in float32 is
itself off by more than the kernels in places, e.g. 1 + tanh(u) cancels for negative x in GELU).
"""
import os
import subprocess
import sys

import numpy as np

import fastnn
import pytest

ISAS = ("portable", "avx2", "avx512")
SIZES = (1, 7, 15, 17, 33, 1000003)
EXTREMES = (1e4, -1e4, 100.0, -100.0, 0.0, -0.0, np.nan)
ROW_SHAPES = ((1, 1), (3, 7), (2, 15), (5, 17), (4, 33), (1000003, 1), (7, 142859))


# ---------------------------------------------------------------- the checks (run in a subprocess)
def _tol(dtype, rtol32=3e-6, atol32=1e-6):
    return (rtol32, atol32) if dtype == np.float32 else (1e-12, 1e-12)


def _compare(failures, what, got, want, dtype, rtol, atol):
    got = np.asarray(got)
    want = np.asarray(want, dtype=np.float64)
    if got.dtype != dtype or got.shape != want.shape:
        failures.append(f"{what}: dtype/shape {got.dtype}{got.shape}, want {dtype}{want.shape}")
        return
    g = got.astype(np.float64)
    nan_mismatch = np.isnan(g) != np.isnan(want)
    with np.errstate(invalid="ignore"):
        bad = ~np.isnan(want) & ~(np.abs(g - want) <= atol + rtol * np.abs(want))
    bad |= nan_mismatch
    if bad.any():
        i = np.flatnonzero(bad.reshape(-1))[0]
        failures.append(f"{what}: {bad.sum()} of {bad.size} differ; first at {i}: "
                        f"got {g.reshape(-1)[i]!r}, want {want.reshape(-1)[i]!r}")


def _with_extremes(x, rng, extremes=EXTREMES):
    """x with the extremes written at random positions (as many as fit)."""
    x = x.copy()
    k = min(x.size, len(extremes))
    x.reshape(-1)[rng.choice(x.size, k, replace=False)] = extremes[:k]
    return x


def _elementwise_inputs(dtype, rng):
    for n in SIZES:
        yield n, _with_extremes(rng.standard_normal(n) * 3, rng)
    yield "extremes", np.array(EXTREMES * 3)   # every extreme, with a vector tail


def check_elementwise(ops, ref, dtype, failures):
    rng = np.random.default_rng(1)
    for n, x64 in _elementwise_inputs(dtype, rng):
        x = x64.astype(dtype)
        xr = x.astype(np.float64)                 # the float32 inputs, exactly, in float64
        dy = rng.standard_normal(x.size).astype(dtype)
        dyr = dy.astype(np.float64)
        rtol, atol = _tol(dtype)

        def cmp(name, got, want, rtol=rtol, atol=atol):
            _compare(failures, f"{name} n={n} {np.dtype(dtype).name}", got, want, dtype, rtol,
                     atol)

        cmp("relu", ops.relu(x), ref.relu(xr))
        cmp("relu_backward", ops.relu_backward(dy, x), ref.relu_backward(dyr, xr))
        cmp("leaky_relu", ops.leaky_relu(x, 0.1), ref.leaky_relu(xr, 0.1))
        cmp("leaky_relu_backward", ops.leaky_relu_backward(dy, x, 0.1),
            ref.leaky_relu_backward(dyr, xr, 0.1))
        for name in ("sigmoid", "tanh"):
            y = getattr(ops, name)(x)
            cmp(name, y, getattr(ref, name)(xr))
            yr = y.astype(np.float64)
            cmp(name + "_backward", getattr(ops, name + "_backward")(dy, y),
                getattr(ref, name + "_backward")(dyr, yr))
        for approximate in (True, False):
            tag = "gelu_tanh" if approximate else "gelu_erf"
            with np.errstate(invalid="ignore", over="ignore"):
                want = ref.gelu(xr, approximate)
                want_b = ref.gelu_backward(dyr, xr, approximate)
            cmp(tag, ops.gelu(x, approximate), want)
            # the derivative crosses zero near x = -0.75: judge it on the scale of dy
            cmp(tag + "_backward", ops.gelu_backward(dy, x, approximate), want_b,
                atol=atol * (1 + np.abs(dyr)))
        if x.size > 1 and not np.isnan(x).any():
            t = rng.standard_normal(x.size).astype(dtype)
            loss, grad = ops.mse_loss(x, t)
            want_loss, want_grad = ref.mse_loss(xr, t.astype(np.float64))
            cmp("mse_loss.grad", grad, want_grad)
            if not abs(loss - want_loss) <= 1e-6 * abs(want_loss) + 1e-12:
                failures.append(f"mse_loss n={n} {np.dtype(dtype).name}: {loss} != {want_loss}")


def check_optimizers(ops, ref, dtype, failures):
    rng = np.random.default_rng(2)
    rtol, atol = _tol(dtype)
    for n in SIZES:
        p0 = rng.standard_normal(n).astype(dtype)
        g = rng.standard_normal(n).astype(dtype)
        b0 = rng.standard_normal(n).astype(dtype)
        for kw in (dict(momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0),
                   dict(momentum=0.9, dampening=0.1, nesterov=False, weight_decay=0.01),
                   dict(momentum=0.9, dampening=0.0, nesterov=True, weight_decay=0.0)):
            for first in (True, False):
                p, buf = p0.copy(), (b0.copy() if kw["momentum"] else np.empty(0, dtype))
                pr, bufr = p0.astype(np.float64), buf.astype(np.float64)
                args = (0.1, kw["momentum"], kw["dampening"], kw["nesterov"],
                        kw["weight_decay"], first)
                ops.sgd_step(p, g, buf, *args)
                ref.sgd_step(pr, g.astype(np.float64), bufr, *args)
                what = f"sgd_step n={n} {np.dtype(dtype).name} {kw} first={first}"
                _compare(failures, what, p, pr, dtype, rtol, atol)
                _compare(failures, what + " buf", buf, bufr, dtype, rtol, atol)
        m0 = rng.standard_normal(n).astype(dtype)
        v0 = np.abs(rng.standard_normal(n)).astype(dtype)
        for decoupled in (False, True):
            for step in (1, 7):
                p, m, v = p0.copy(), m0.copy(), v0.copy()
                pr, mr, vr = (a.astype(np.float64) for a in (p0, m0, v0))
                args = (step, 1e-3, 0.9, 0.999, 1e-8, 0.01, decoupled)
                ops.adam_step(p, g, m, v, *args)
                ref.adam_step(pr, g.astype(np.float64), mr, vr, *args)
                what = f"adam_step n={n} {np.dtype(dtype).name} decoupled={decoupled} step={step}"
                for name, a, b in (("param", p, pr), ("m", m, mr), ("v", v, vr)):
                    _compare(failures, f"{what} {name}", a, b, dtype, rtol, atol)


def check_rows(ops, ref, dtype, failures):
    rng = np.random.default_rng(3)
    rtol, atol = _tol(dtype)
    for shape in ROW_SHAPES:
        x = rng.standard_normal(shape) * 3
        if x.size > 2:   # extremes in the first row, a NaN row after it
            x[0] = _with_extremes(x[0], rng, (1e4, -1e4, 100.0, -100.0, 0.0))
            if shape[0] > 1:
                x[1, rng.integers(shape[1])] = np.nan
        x = x.astype(dtype)
        xr = x.astype(np.float64)
        dy = rng.standard_normal(shape).astype(dtype)
        dyr = dy.astype(np.float64)
        tag = f"{shape} {np.dtype(dtype).name}"

        def cmp(name, got, want, rtol=rtol, atol=atol):
            _compare(failures, f"{name} {tag}", got, want, dtype, rtol, atol)

        cmp("softmax", ops.softmax(x), ref.softmax(xr))
        cmp("log_softmax", ops.log_softmax(x), ref.log_softmax(xr))
        # backward kernels subtract O(1) terms: judge them on that scale
        y = ops.softmax(x)
        cmp("softmax_backward", ops.softmax_backward(dy, y),
            ref.softmax_backward(dyr, y.astype(np.float64)), atol=10 * atol)
        y = ops.log_softmax(x)
        scale = 1 + np.abs(dyr).sum(axis=1, keepdims=True)
        cmp("log_softmax_backward", ops.log_softmax_backward(dy, y),
            ref.log_softmax_backward(dyr, y.astype(np.float64)), atol=atol * scale)

        targets = rng.integers(0, shape[1], shape[0])
        nan_rows = np.isnan(xr).any(axis=1)
        targets[::3] = np.where(nan_rows[::3], targets[::3], -100)  # ignore some (not NaN) rows
        for grad_scale in (1.0, 0.25):
            losses, grad = ops.cross_entropy(x, targets, -100, grad_scale)
            want_l, want_g = ref.cross_entropy(xr, targets, -100, grad_scale)
            cmp(f"cross_entropy.losses scale={grad_scale}", losses, want_l)
            cmp(f"cross_entropy.grad scale={grad_scale}", grad, want_g)

        b = rng.standard_normal(shape[1]).astype(dtype)
        cmp("bias_add", ops.bias_add(x, b), ref.bias_add(xr, b.astype(np.float64)))
        dsum = np.abs(dyr).sum(axis=0)
        cmp("bias_grad", ops.bias_grad(dy), ref.bias_grad(dyr), atol=atol * (1 + dsum))

        w = rng.standard_normal(shape[1]).astype(dtype)
        wr, br = w.astype(np.float64), b.astype(np.float64)
        y, mean, rstd = ops.layer_norm(x, w, b, 1e-5)
        want_y, want_mean, want_rstd = ref.layer_norm(xr, wr, br, 1e-5)
        cmp("layer_norm.y", y, want_y, rtol=10 * rtol, atol=10 * atol)
        cmp("layer_norm.mean", mean, want_mean)
        cmp("layer_norm.rstd", rstd, want_rstd, rtol=10 * rtol)
        finite = ~nan_rows
        xf, dyf = np.ascontiguousarray(x[finite]), np.ascontiguousarray(dy[finite])
        mf, rf = np.ascontiguousarray(mean[finite]), np.ascontiguousarray(rstd[finite])
        if xf.size:
            dx, dw, db = ops.layer_norm_backward(dyf, xf, w, mf, rf)
            want = ref.layer_norm_backward(dyf.astype(np.float64), xf.astype(np.float64), wr,
                                           mf.astype(np.float64), rf.astype(np.float64))
            s = rf.astype(np.float64)[:, None] * (1 + np.abs(dyf).sum(axis=1, keepdims=True))
            cmp("layer_norm_backward.dx", dx, want[0], atol=atol * s)
            colscale = 1 + np.abs(dyf).sum(axis=0) * np.abs(xf).max(initial=1.0)
            cmp("layer_norm_backward.dweight", dw, want[1], atol=10 * atol * colscale)
            cmp("layer_norm_backward.dbias", db, want[2], atol=atol * (1 + np.abs(dyf).sum(0)))


def check_embedding(ops, ref, dtype, failures):
    rng = np.random.default_rng(4)
    for vocab, cols, n in ((1, 1, 1), (5, 7, 33), (11, 17, 15), (50, 1000, 2000), (3, 33, 5000)):
        weight = rng.standard_normal((vocab, cols)).astype(dtype)
        ids = rng.integers(0, vocab, n)             # many repeats: colliding scatter-adds
        tag = f"V={vocab} C={cols} n={n} {np.dtype(dtype).name}"
        out = ops.embedding(weight, ids)
        if not np.array_equal(out, ref.embedding(weight, ids)):
            failures.append(f"embedding {tag}: rows differ")
        dout = rng.standard_normal((n, cols)).astype(dtype)
        want = ref.embedding_backward(dout.astype(np.float64), ids, vocab)
        counts = np.bincount(ids, minlength=vocab)[:, None]
        rtol, atol = _tol(dtype)
        _compare(failures, f"embedding_backward {tag}", ops.embedding_backward(dout, ids, vocab),
                 want, dtype, rtol, atol * (1 + counts))
        again = ops.embedding_backward(dout, ids, vocab)
        if not np.array_equal(again, ops.embedding_backward(dout, ids, vocab)):
            failures.append(f"embedding_backward {tag}: not deterministic")


def run_all():
    from fastnn.backends.cython import _ops as ops
    ref = fastnn.kernels.load("numpy")  # the numpy reference backend

    failures = []
    for dtype in (np.float32, np.float64):
        for check in (check_elementwise, check_optimizers, check_rows, check_embedding):
            check(ops, ref, dtype, failures)
    return failures


# ---------------------------------------------------------------- pytest: one subprocess per path
def _rank(isa):
    return ISAS.index(isa)


@pytest.mark.parametrize("isa", ISAS)
def test_isa_path_matches_reference(isa):
    ops = pytest.importorskip("fastnn.backends.cython._ops")
    if _rank(isa) > _rank(ops.cpu_detected()):
        pytest.skip(f"this CPU has no {isa}")
    env = dict(os.environ, FASTNN_ISA=isa, OMP_NUM_THREADS="3", OMP_WAIT_POLICY="passive")
    proc = subprocess.run([sys.executable, __file__, isa], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]


def test_checks_can_fail():
    """The comparison used above flags wrong values, wrong NaNs and wrong dtypes."""
    failures = []
    _compare(failures, "value", np.float32([1, 2]), [1, 2.001], np.float32, 3e-6, 1e-6)
    _compare(failures, "nan", np.float32([np.nan]), [1.0], np.float32, 3e-6, 1e-6)
    _compare(failures, "lost nan", np.float32([1.0]), [np.nan], np.float32, 3e-6, 1e-6)
    _compare(failures, "dtype", np.float64([1.0]), [1.0], np.float32, 3e-6, 1e-6)
    _compare(failures, "ok", np.float32([1.0, np.nan]), [1.0, np.nan], np.float32, 3e-6, 1e-6)
    assert [f.split(":")[0] for f in failures] == ["value", "nan", "lost nan", "dtype"]


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from fastnn.backends.cython import _ops

    want_isa = sys.argv[1] if len(sys.argv) > 1 else _ops.cpu_path()
    if _ops.cpu_path() != want_isa:
        print(f"FAIL: asked for {want_isa}, the kernels run {_ops.cpu_path()} "
              f"(set FASTNN_ISA={want_isa})")
        sys.exit(1)
    found = run_all()
    for line in found:
        print("FAIL", line)
    print(f"{_ops.cpu_path()}: {len(found)} failures")
    sys.exit(1 if found else 0)
