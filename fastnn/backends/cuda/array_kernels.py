"""Kernels behind DeviceArray (array.py): elementwise ops, reductions, scans, gather/scatter.

Operands are passed as flat 1-D device buffers plus an element offset and per-dimension strides
(tuples passed by value), so one compiled kernel serves every layout: contiguous arrays,
transposes, slices, broadcasts (stride 0) and negative strides. Kernels are generated from
source per (op, dtypes, ndim, which operands are scalars) and cached; the index arithmetic for
each dimension is unrolled in the generated code. Before launching, dimensions that are
contiguous in every operand are merged (collapse()), so most launches are 1-D.

Every kernel is a grid-stride loop (any grid covers any size) and every index it forms is an
offset of an operand's own view, so no write can leave the destination view.

Math: on a GPU the kernels call the `math` module (libdevice) and libdevice's floor/rint; on
Numba's simulator, which runs kernels as Python, they call numpy's scalar functions instead, so
nan/inf come out as numpy's (Python's math raises on log(0)).
"""
import functools
import math
import textwrap

import numpy as np
from numba import cuda

from .common import SIMULATOR, grid_1d as _common_grid_1d, launch, launch_config


def grid_1d(n):
    """(blocks, threads) for a grid-stride loop over n items. The simulator runs each thread
    as a Python thread, so there a block has no more threads than items (8x faster launches of
    tiny arrays); a GPU keeps the full block."""
    blocks, threads = _common_grid_1d(n)
    if SIMULATOR:
        threads = min(threads, 1 << max(n - 1, 0).bit_length())
    return blocks, threads

# ---------------------------------------------------------------- math per dtype
_MATH_NAMES = ("exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "sin", "cos", "tan",
               "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh",
               "erf", "erfc", "atan2", "hypot", "fmod", "copysign", "isnan", "isinf",
               "isfinite", "lgamma")
_NP_EQUIV = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh",
             "acosh": "arccosh", "atanh": "arctanh", "atan2": "arctan2"}


def _quiet(fn):
    def call(*args):
        with np.errstate(all="ignore"):
            return fn(*args)
    return call


def _sim_erf(fn):
    def call(x):
        return type(x)(fn(float(x))) if isinstance(x, np.floating) else fn(float(x))
    return call


def _sim_lgamma(x):
    return type(x)(math.lgamma(float(x))) if math.isfinite(float(x)) else type(x)(math.inf)


@functools.cache
def _math_namespace(dtype):
    """name -> function for the generated kernels (dtype: the loop's numpy dtype)."""
    dtype = np.dtype(dtype)
    ns = {"np": np, "cuda": cuda, "math": math}
    if SIMULATOR:
        for name in _MATH_NAMES:
            if name in ("erf", "erfc"):
                ns[name] = _sim_erf(getattr(math, name))
            elif name == "lgamma":
                ns[name] = _sim_lgamma
            else:
                ns[name] = _quiet(getattr(np, _NP_EQUIV.get(name, name)))
        for name in ("floor", "ceil", "trunc", "rint"):
            ns[name] = _quiet(getattr(np, name))
        ns["signbit"] = np.signbit
        ns["powf"] = _quiet(np.power)
        return ns
    from numba.cuda import libdevice
    for name in _MATH_NAMES:
        ns[name] = getattr(math, name)
    suffix = "f" if dtype == np.float32 else ""
    for name in ("floor", "ceil", "trunc", "rint"):
        ns[name] = getattr(libdevice, name + suffix)
    ns["signbit"] = getattr(libdevice, "signbit" + ("f" if dtype == np.float32 else "d"))
    ns["powf"] = math.pow
    return ns


def _cast_name(dtype):
    return "np.bool_" if np.dtype(dtype) == np.bool_ else f"np.{np.dtype(dtype).name}"


# ---------------------------------------------------------------- elementwise ops
# name -> expression over the inputs a, b, c (already in the loop dtype T). A dict value picks
# the expression by the loop dtype's kind ('f' float, 'i' signed/unsigned int, 'b' bool).
_HELPERS = {
    "_max": """
        def _max(a, b):
            return a if (a >= b or a != a) else b
    """,
    "_min": """
        def _min(a, b):
            return a if (a <= b or a != a) else b
    """,
    "_fmax": """
        def _fmax(a, b):
            return a if (a >= b or b != b) else b
    """,
    "_fmin": """
        def _fmin(a, b):
            return a if (a <= b or b != b) else b
    """,
    "_ifloordiv": """
        def _ifloordiv(a, b):
            if b == 0:
                return T(0)
            return T(a // b)
    """,
    "_imod": """
        def _imod(a, b):
            if b == 0:
                return T(0)
            return T(a % b)
    """,
    "_ifmod": """
        def _ifmod(a, b):
            if b == 0:
                return T(0)
            r = T(a % b)
            if r != 0 and (r < 0) != (a < 0):
                r = T(r - b)
            return r
    """,
    # numpy's npy_divmod: floor division and its remainder, exact for floats
    "_ffloordiv": """
        def _ffloordiv(a, b):
            if b == 0:
                return T(a / b)
            mod = T(fmod(a, b))
            div = T((a - mod) / b)
            if mod != 0 and ((b < 0) != (mod < 0)):
                div = T(div - T(1))
            if div != 0:
                fd = T(floor(div))
                if div - fd > T(0.5):
                    fd = T(fd + T(1))
                return fd
            return T(copysign(T(0), a / b))
    """,
    "_fremainder": """
        def _fremainder(a, b):
            if b == 0:
                return T(fmod(a, b))
            mod = T(fmod(a, b))
            if mod != 0:
                if (b < 0) != (mod < 0):
                    mod = T(mod + b)
            else:
                mod = T(copysign(T(0), b))
            return mod
    """,
    "_ipow": """
        def _ipow(a, b):
            if b < 0:
                return T(1) if a == 1 else T(0)
            r = T(1)
            base = a
            e = b
            while e > 0:
                if e & 1:
                    r = T(r * base)
                base = T(base * base)
                e = e >> 1
            return r
    """,
    "_fsign": """
        def _fsign(a):
            if a > 0:
                return T(1)
            if a < 0:
                return T(-1)
            return a
    """,
    "_logaddexp": """
        def _logaddexp(a, b):
            if a == b:
                return T(a + T(0.6931471805599453))
            d = T(a - b)
            if d > 0:
                return T(a + log1p(exp(-d)))
            if d <= 0:
                return T(b + log1p(exp(d)))
            return d
    """,
    "_clip": """
        def _clip(a, lo, hi):
            return _min(_max(a, lo), hi)
    """,
    "_sigmoid": """
        def _sigmoid(a):
            if a >= 0:
                return T(T(1) / (T(1) + exp(-a)))
            e = T(exp(a))
            return T(e / (T(1) + e))
    """,
}
_HELPER_DEPS = {"_clip": ("_max", "_min")}

OPS = {
    # copy / cast
    "identity": (1, "a"),
    # arithmetic
    "add": (2, "a + b"), "subtract": (2, "a - b"), "multiply": (2, "a * b"),
    "true_divide": (2, "a / b"), "divide": (2, "a / b"),
    "floor_divide": (2, {"f": "_ffloordiv(a, b)", "i": "_ifloordiv(a, b)"}),
    "remainder": (2, {"f": "_fremainder(a, b)", "i": "_imod(a, b)"}),
    "fmod": (2, {"f": "fmod(a, b)", "i": "_ifmod(a, b)"}),
    "power": (2, {"f": "powf(a, b)", "i": "_ipow(a, b)"}),
    "float_power": (2, "powf(a, b)"),
    "maximum": (2, "_max(a, b)"), "minimum": (2, "_min(a, b)"),
    "fmax": (2, "_fmax(a, b)"), "fmin": (2, "_fmin(a, b)"),
    "arctan2": (2, "atan2(a, b)"), "hypot": (2, "hypot(a, b)"),
    "copysign": (2, "copysign(a, b)"), "logaddexp": (2, "_logaddexp(a, b)"),
    # comparisons and logic
    "equal": (2, "a == b"), "not_equal": (2, "a != b"), "less": (2, "a < b"),
    "less_equal": (2, "a <= b"), "greater": (2, "a > b"), "greater_equal": (2, "a >= b"),
    "logical_and": (2, "(a != 0) and (b != 0)"), "logical_or": (2, "(a != 0) or (b != 0)"),
    "logical_xor": (2, "(a != 0) != (b != 0)"), "logical_not": (1, "a == 0"),
    "bitwise_and": (2, "a & b"), "bitwise_or": (2, "a | b"), "bitwise_xor": (2, "a ^ b"),
    "invert": (1, {"b": "not a", "i": "~a"}),
    "left_shift": (2, "a << b"), "right_shift": (2, "a >> b"),
    # unary math
    "negative": (1, "-a"), "positive": (1, "a"),
    "absolute": (1, {"b": "a", "f": "abs(a)", "i": "abs(a)"}), "fabs": (1, "abs(a)"),
    "sign": (1, {"f": "_fsign(a)", "i": "T(1) if a > 0 else (T(-1) if a < 0 else T(0))",
                  "b": "a"}),
    "square": (1, "a * a"), "reciprocal": (1, "T(1) / a"),
    "sqrt": (1, "sqrt(a)"), "exp": (1, "exp(a)"), "exp2": (1, "powf(T(2), a)"),
    "expm1": (1, "expm1(a)"), "log": (1, "log(a)"), "log2": (1, "log2(a)"),
    "log10": (1, "log10(a)"), "log1p": (1, "log1p(a)"),
    "sin": (1, "sin(a)"), "cos": (1, "cos(a)"), "tan": (1, "tan(a)"),
    "arcsin": (1, "asin(a)"), "arccos": (1, "acos(a)"), "arctan": (1, "atan(a)"),
    "sinh": (1, "sinh(a)"), "cosh": (1, "cosh(a)"), "tanh": (1, "tanh(a)"),
    "arcsinh": (1, "asinh(a)"), "arccosh": (1, "acosh(a)"), "arctanh": (1, "atanh(a)"),
    "floor": (1, {"f": "floor(a)", "i": "a", "b": "a"}),
    "ceil": (1, {"f": "ceil(a)", "i": "a", "b": "a"}),
    "trunc": (1, {"f": "trunc(a)", "i": "a", "b": "a"}),
    "rint": (1, {"f": "rint(a)", "i": "a", "b": "a"}),
    "isnan": (1, {"f": "isnan(a)", "i": "False", "b": "False"}),
    "isinf": (1, {"f": "isinf(a)", "i": "False", "b": "False"}),
    "isfinite": (1, {"f": "isfinite(a)", "i": "True", "b": "True"}),
    "signbit": (1, {"f": "signbit(a) != 0", "i": "a < 0", "b": "False"}),
    "conjugate": (1, "a"),
    # not numpy ufuncs, but the same machinery (array.py exposes them)
    "erf": (1, "erf(a)"), "erfc": (1, "erfc(a)"), "lgamma": (1, "lgamma(a)"),
    "sigmoid": (1, "_sigmoid(a)"),
    "where": (3, "b if a else c"),
    "clip": (3, "_clip(a, b, c)"), "clip_lo": (2, "_max(a, b)"), "clip_hi": (2, "_min(a, b)"),
}


def _kind(dtype):
    k = np.dtype(dtype).kind
    return "i" if k in "iu" else k


def _expression(op, loop_dtype):
    expr = OPS[op][1]
    if isinstance(expr, dict):
        kind = _kind(loop_dtype)
        if kind not in expr:
            raise TypeError(f"{op}: no device loop for dtype {np.dtype(loop_dtype)}")
        expr = expr[kind]
    return expr


def _helpers_for(source):
    names = []
    pending = [n for n in _HELPERS if n + "(" in source]
    while pending:
        name = pending.pop()
        if name in names:
            continue
        names.append(name)
        pending.extend(d for d in _HELPER_DEPS.get(name, ()) if d not in names)
    # dependencies first
    order = [n for n in names if n not in _HELPER_DEPS] + [n for n in names if n in _HELPER_DEPS]
    return "".join("@cuda.jit(device=True)\n" + textwrap.dedent(_HELPERS[n]).strip() + "\n\n"
                   for n in order)


def _compile(source, namespace, name):
    ns = dict(namespace)
    exec(compile(source, f"<fastnn.cuda {name}>", "exec"), ns)
    return ns[name]


def _unravel(lines, var, ndim, operands, indent):
    """Lines that turn flat index `var` into the offsets p_<op> of each operand (C order)."""
    pad = " " * indent
    if ndim == 0:
        return
    lines.append(f"{pad}rem = {var}")
    for d in range(ndim - 1, -1, -1):
        if d:
            lines.append(f"{pad}k = rem % shape[{d}]")
            lines.append(f"{pad}rem = rem // shape[{d}]")
        else:
            lines.append(f"{pad}k = rem")
        for o in operands:
            lines.append(f"{pad}p_{o} += k * st_{o}[{d}]")


@functools.cache
def elementwise_kernel(op, loop_dtypes, out_dtype, kinds, ndim):
    """The kernel for `op` with inputs of loop dtypes `loop_dtypes` (the last is the loop's
    result), `kinds` ('a' array or 's' scalar per input), storing into out_dtype, for ndim."""
    nin = OPS[op][0]
    in_dtypes, res_dtype = loop_dtypes[:nin], loop_dtypes[nin]
    expr = _expression(op, in_dtypes[0] if op not in ("where",) else res_dtype)
    names = "abc"
    arrays = ["o"] + [names[i] for i in range(nin) if kinds[i] == "a"]
    params = ["n", "shape", "buf_o", "off_o", "st_o"]
    for i in range(nin):
        x = names[i]
        params += [f"buf_{x}", f"off_{x}", f"st_{x}"] if kinds[i] == "a" else [f"val_{x}"]
    lines = [f"def kernel({', '.join(params)}):",
             "    for i in range(cuda.grid(1), n, cuda.gridsize(1)):"]
    for x in arrays:
        lines.append(f"        p_{x} = off_{x}")
    _unravel(lines, "i", ndim, arrays, 8)
    for i in range(nin):
        x = names[i]
        src = f"buf_{x}[p_{x}]" if kinds[i] == "a" else f"val_{x}"
        lines.append(f"        {x} = {_cast_name(in_dtypes[i])}({src})")
    lines.append(f"        buf_o[p_o] = {_cast_name(out_dtype)}({_cast_name(res_dtype)}({expr}))")
    body = "\n".join(lines) + "\n"
    math_dtype = res_dtype if np.dtype(res_dtype).kind == "f" else in_dtypes[0]
    ns = dict(_math_namespace(math_dtype if np.dtype(math_dtype).kind == "f" else np.float64))
    ns["T"] = np.dtype(in_dtypes[0] if op != "where" else res_dtype).type
    helpers = _helpers_for(expr)
    source = helpers + "@cuda.jit\n" + body
    return _compile(source, ns, "kernel")


def collapse(shape, strides_list):
    """Drop size-1 dimensions and merge neighbours that are contiguous in every operand.
    Returns (shape, [strides per operand])."""
    dims = [d for d, n in enumerate(shape) if n != 1]
    new_shape = []
    new_strides = [[] for _ in strides_list]
    for d in dims:
        if new_shape and all(st[d] * shape[d] == ns[-1] for st, ns in zip(strides_list,
                                                                         new_strides)):
            new_shape[-1] *= shape[d]
            for st, ns in zip(strides_list, new_strides):
                ns[-1] = st[d]
            continue
        new_shape.append(shape[d])
        for st, ns in zip(strides_list, new_strides):
            ns.append(st[d])
    return tuple(new_shape), [tuple(s) for s in new_strides]


def elementwise(op, loop_dtypes, out, operands):
    """out = op(*operands) elementwise. out: (buf, offset, shape, strides); operands: per input
    either ('a', buf, offset, strides) with strides already broadcast to out's shape, or
    ('s', value) with value already of the loop dtype."""
    buf_o, off_o, shape, st_o = out
    n = 1
    for s in shape:
        n *= s
    if n == 0:
        return
    arrays = [x for x in operands if x[0] == "a"]
    shape, strides = collapse(shape, [st_o] + [x[3] for x in arrays])
    kinds = tuple(x[0] for x in operands)
    kernel = elementwise_kernel(op, tuple(np.dtype(d) for d in loop_dtypes), buf_o.dtype,
                                kinds, len(shape))
    args = [n, shape, buf_o, off_o, strides[0]]
    k = 1
    for x in operands:
        if x[0] == "a":
            args += [x[1], x[2], strides[k]]
            k += 1
        else:
            args.append(x[1])
    blocks, threads = grid_1d(n)
    launch(kernel, blocks, threads, *args)


# ---------------------------------------------------------------- fill and arange
@functools.cache
def _fill_kernel(dtype, ndim):
    lines = ["def kernel(n, shape, buf_o, off_o, st_o, value):",
             "    for i in range(cuda.grid(1), n, cuda.gridsize(1)):",
             "        p_o = off_o"]
    _unravel(lines, "i", ndim, ["o"], 8)
    lines.append("        buf_o[p_o] = value")
    return _compile("@cuda.jit\n" + "\n".join(lines) + "\n", {"cuda": cuda}, "kernel")


def fill(buf, offset, shape, strides, value):
    """buf[view] = value for the strided view (offset, shape, strides) of a flat buffer."""
    n = 1
    for s in shape:
        n *= s
    if n == 0:
        return
    shape, (strides,) = collapse(tuple(shape), [tuple(strides)])
    blocks, threads = grid_1d(n)
    launch(_fill_kernel(buf.dtype, len(shape)), blocks, threads, n, shape, buf, int(offset),
           strides, buf.dtype.type(value))


@functools.cache
def _iota_kernel(dtype):
    @cuda.jit
    def iota(buf, start, step):
        for i in range(cuda.grid(1), buf.size, cuda.gridsize(1)):
            buf[i] = start + i * step
    return iota


def iota(buf, start, step):
    """buf[i] = start + i * step (np.arange's values)."""
    n = buf.size
    if n == 0:
        return
    blocks, threads = grid_1d(n)
    kind = np.float64 if buf.dtype.kind == "f" else np.int64
    launch(_iota_kernel(buf.dtype), blocks, threads, buf, kind(start), kind(step))


# ---------------------------------------------------------------- reductions
# op -> (init, combine statement on (acc, v), merge statement of shared slots (sa, sb))
_REDUCE = {
    "sum": ("T(0)", "acc = T(acc + v)"),
    "prod": ("T(1)", "acc = T(acc * v)"),
    "max": ("LOWEST", "if v > acc or v != v:\n    acc = v"),
    "min": ("HIGHEST", "if v < acc or v != v:\n    acc = v"),
    "any": ("False", "acc = acc or (v != 0)"),
    "all": ("True", "acc = acc and (v != 0)"),
    "argmax": ("LOWEST", "if idx < 0 or v > acc or (v != v and acc == acc):\n"
                         "    acc = v\n    idx = r"),
    "argmin": ("HIGHEST", "if idx < 0 or v < acc or (v != v and acc == acc):\n"
                          "    acc = v\n    idx = r"),
}
_ARG = ("argmax", "argmin")


_MERGE = {
    "sum": "sv[t] = T(sv[t] + sv[t + h])",
    "prod": "sv[t] = T(sv[t] * sv[t + h])",
    "max": "vb = sv[t + h]\nif vb > sv[t] or vb != vb:\n    sv[t] = vb",
    "min": "vb = sv[t + h]\nif vb < sv[t] or vb != vb:\n    sv[t] = vb",
    "any": "sv[t] = sv[t] or sv[t + h]",
    "all": "sv[t] = sv[t] and sv[t + h]",
}


def _merge_code(op):
    """Statements merging slot t+h into slot t of the shared arrays sv (values), si (indices)."""
    if op in _ARG:
        better = "vb > va" if op == "argmax" else "vb < va"
        # the better value wins; on a tie (or two NaNs) the earlier index does
        return (f"va = sv[t]\nvb = sv[t + h]\nia = si[t]\nib = si[t + h]\n"
                f"if ib >= 0 and (ia < 0 or {better} or (vb != vb and va == va) or "
                f"((vb == va or (vb != vb and va != va)) and ib < ia)):\n"
                f"    sv[t] = vb\n    si[t] = ib")
    return _MERGE[op]


def _limits(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype.type(-np.inf), dtype.type(np.inf)
    if dtype.kind == "b":
        return False, True
    info = np.iinfo(dtype)
    return dtype.type(info.min), dtype.type(info.max)


@functools.cache
def reduce_kernel(op, in_dtype, acc_dtype, out_dtype, kdim, rdim, per_block, threads):
    """Reduce over `rdim` dims for each output element (kept `kdim` dims). per_block: one block
    per output element with a shared-memory tree (large reductions); else one thread each."""
    init, combine = _REDUCE[op]
    arg = op in _ARG
    acc_t = _cast_name(acc_dtype)
    lines = ["def kernel(n_out, K, buf_x, off_x, kshape, kst, rshape, rst, buf_o):"]
    body = []
    body.append("base = off_x")
    body.append("rem = j")
    for d in range(kdim - 1, -1, -1):
        body.append(f"k = rem % kshape[{d}]" if d else "k = rem")
        if d:
            body.append(f"rem = rem // kshape[{d}]")
        body.append(f"base += k * kst[{d}]")
    body.append(f"acc = {acc_t}({init})")
    body.append("idx = -1")
    loop = "for r in range(cuda.threadIdx.x, K, cuda.blockDim.x):" if per_block else \
        "for r in range(K):"
    body.append(loop)
    inner = ["p = base", "rem = r"]
    for d in range(rdim - 1, -1, -1):
        inner.append(f"k = rem % rshape[{d}]" if d else "k = rem")
        if d:
            inner.append(f"rem = rem // rshape[{d}]")
        inner.append(f"p += k * rst[{d}]")
    inner.append(f"v = {acc_t}(buf_x[p])")
    inner.extend(combine.split("\n"))
    body.extend("    " + s for s in inner)
    result = "idx" if arg else "acc"
    if per_block:
        body.append("t = cuda.threadIdx.x")
        body.append("sv[t] = acc")
        body.append("si[t] = idx")
        body.append("cuda.syncthreads()")
        body.append(f"h = {threads // 2}")
        body.append("while h > 0:")
        body.append("    if t < h:")
        body.extend("        " + s for s in _merge_code(op).split("\n"))
        body.append("    cuda.syncthreads()")
        body.append("    h = h // 2")
        body.append("if t == 0:")
        body.append(f"    buf_o[j] = {_cast_name(out_dtype)}({'si[0]' if arg else 'sv[0]'})")
        body.append("cuda.syncthreads()")
        lines.append(f"    sv = cuda.shared.array({threads}, ACC)")
        lines.append(f"    si = cuda.shared.array({threads}, np.int64)")
        lines.append("    for j in range(cuda.blockIdx.x, n_out, cuda.gridDim.x):")
    else:
        body.append(f"buf_o[j] = {_cast_name(out_dtype)}({result})")
        lines.append("    for j in range(cuda.grid(1), n_out, cuda.gridsize(1)):")
    lines.extend("        " + s for s in body)
    ns = {"np": np, "cuda": cuda, "T": np.dtype(acc_dtype).type,
          "ACC": np.dtype(acc_dtype).type}
    ns["LOWEST"], ns["HIGHEST"] = _limits(acc_dtype)
    return _compile("@cuda.jit\n" + "\n".join(lines) + "\n", ns, "kernel")


def reduce(op, x, kshape, kst, rshape, rst, acc_dtype, out_buf):
    """out_buf[j] = op over the reduced sub-array of output element j (C order in kshape).
    x: (buf, offset); kst/rst: strides of the kept and reduced dimensions."""
    buf_x, off_x = x
    n_out = 1
    for s in kshape:
        n_out *= s
    K = 1
    for s in rshape:
        K *= s
    if n_out == 0:
        return
    kshape, (kst,) = collapse(tuple(kshape), [tuple(kst)])
    rshape, (rst,) = collapse(tuple(rshape), [tuple(rst)])
    cfg = launch_config()
    threads = cfg.threads_1d
    per_block = K >= 4 * threads and n_out < 8 * threads * (1 if SIMULATOR else 16)
    kernel = reduce_kernel(op, buf_x.dtype, np.dtype(acc_dtype), out_buf.dtype, len(kshape),
                           len(rshape), per_block, threads)
    if per_block:
        from .common import sm_count
        blocks = min(n_out, 32 * sm_count() if not SIMULATOR else 4)
    else:
        blocks, threads = grid_1d(n_out)
    launch(kernel, max(blocks, 1), threads, n_out, K, buf_x, off_x, kshape, kst, rshape, rst,
           out_buf)


# ---------------------------------------------------------------- scans (cumsum, cumprod)
@functools.cache
def scan_kernel(op, acc_dtype, out_dtype, kdim):
    stmt = "acc = T(acc + v)" if op == "sum" else "acc = T(acc * v)"
    init = "T(0)" if op == "sum" else "T(1)"
    lines = ["def kernel(n_out, L, buf_x, off_x, kshape, kst, sx, buf_o, kost, so):",
             "    for j in range(cuda.grid(1), n_out, cuda.gridsize(1)):",
             "        px = off_x", "        po = 0", "        rem = j"]
    for d in range(kdim - 1, -1, -1):
        lines.append(f"        k = rem % kshape[{d}]" if d else "        k = rem")
        if d:
            lines.append(f"        rem = rem // kshape[{d}]")
        lines.append(f"        px += k * kst[{d}]")
        lines.append(f"        po += k * kost[{d}]")
    lines += [f"        acc = {init}",
              "        for r in range(L):",
              "            v = T(buf_x[px + r * sx])",
              f"            {stmt}",
              f"            buf_o[po + r * so] = {_cast_name(out_dtype)}(acc)"]
    ns = {"np": np, "cuda": cuda, "T": np.dtype(acc_dtype).type}
    return _compile("@cuda.jit\n" + "\n".join(lines) + "\n", ns, "kernel")


def scan(op, x, kshape, kst, L, sx, acc_dtype, out_buf, kost, so):
    n_out = 1
    for s in kshape:
        n_out *= s
    if n_out == 0 or L == 0:
        return
    kernel = scan_kernel(op, np.dtype(acc_dtype), out_buf.dtype, len(kshape))
    blocks, threads = grid_1d(n_out)
    launch(kernel, blocks, threads, n_out, L, x[0], x[1], tuple(kshape), tuple(kst), sx,
           out_buf, tuple(kost), so)


# ---------------------------------------------------------------- gather, scatter, indices
@functools.cache
def _gather_kernel():
    @cuda.jit
    def gather(src, pos, out):
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            out[i] = src[pos[i]]
    return gather


@functools.cache
def _scatter_kernel(mode):
    if mode == "set":
        @cuda.jit
        def scatter(dst, pos, vals):
            for i in range(cuda.grid(1), pos.size, cuda.gridsize(1)):
                dst[pos[i]] = vals[i]
    elif mode == "add":
        @cuda.jit
        def scatter(dst, pos, vals):
            for i in range(cuda.grid(1), pos.size, cuda.gridsize(1)):
                cuda.atomic.add(dst, pos[i], vals[i])
    elif mode == "max":
        @cuda.jit
        def scatter(dst, pos, vals):
            for i in range(cuda.grid(1), pos.size, cuda.gridsize(1)):
                cuda.atomic.max(dst, pos[i], vals[i])
    else:
        @cuda.jit
        def scatter(dst, pos, vals):
            for i in range(cuda.grid(1), pos.size, cuda.gridsize(1)):
                cuda.atomic.min(dst, pos[i], vals[i])
    return scatter


def gather(src_buf, pos, out_buf):
    """out[i] = src[pos[i]] (pos: int64 positions into the flat source buffer)."""
    n = pos.size
    if n:
        blocks, threads = grid_1d(n)
        launch(_gather_kernel(), blocks, threads, src_buf, pos, out_buf)


def scatter(mode, dst_buf, pos, vals):
    """dst[pos[i]] = vals[i] ('set'), or atomically += / max= / min= ('add', 'max', 'min')."""
    n = pos.size
    if n:
        blocks, threads = grid_1d(n)
        launch(_scatter_kernel(mode), blocks, threads, dst_buf, pos, vals)


@functools.cache
def _normalize_kernel():
    @cuda.jit
    def normalize(idx, n, stride, flag):
        # negative indices count from the end; an index out of range raises flag[0] (reported
        # at the next synchronization, like PyTorch's device-side assert) and is clamped to 0
        # so nothing outside the array is ever read or written
        for i in range(cuda.grid(1), idx.size, cuda.gridsize(1)):
            v = idx[i]
            if v < 0:
                v += n
            if v < 0 or v >= n:
                flag[0] = 1
                v = 0
            idx[i] = v * stride
    return normalize


def normalize_indices(idx_buf, n, stride, flag):
    """In place: idx -> (idx wrapped into [0, n)) * stride, for an int64 contiguous buffer."""
    if idx_buf.size:
        blocks, threads = grid_1d(idx_buf.size)
        launch(_normalize_kernel(), blocks, threads, idx_buf, np.int64(n), np.int64(stride),
               flag)


# ---------------------------------------------------------------- nonzero (stream compaction)
@functools.cache
def _count_kernel():
    @cuda.jit
    def count(mask, chunk, counts):
        c = cuda.grid(1)
        if c < counts.size:
            lo = c * chunk
            hi = min(lo + chunk, mask.size)
            total = 0
            for i in range(lo, hi):
                if mask[i]:
                    total += 1
            counts[c] = total
    return count


@functools.cache
def _exclusive_scan_kernel():
    @cuda.jit
    def scan(counts, total):
        if cuda.grid(1) == 0:
            run = 0
            for c in range(counts.size):
                v = counts[c]
                counts[c] = run
                run += v
            total[0] = run
    return scan


@functools.cache
def _compact_kernel():
    @cuda.jit
    def compact(mask, chunk, starts, out):
        c = cuda.grid(1)
        if c < starts.size:
            lo = c * chunk
            hi = min(lo + chunk, mask.size)
            w = starts[c]
            for i in range(lo, hi):
                if mask[i] and w < out.size:
                    out[w] = i
                    w += 1
    return compact


def nonzero_prepare(mask_buf, counts, total):
    """First half of flat nonzero: per-chunk counts, their exclusive scan, the total."""
    n = mask_buf.size
    chunks = counts.size
    chunk = max((n + chunks - 1) // chunks, 1)
    blocks, threads = grid_1d(chunks)
    launch(_count_kernel(), (chunks + threads - 1) // threads, threads, mask_buf, chunk, counts)
    launch(_exclusive_scan_kernel(), 1, 1, counts, total)
    return chunk


def nonzero_finish(mask_buf, chunk, starts, out_buf):
    chunks = starts.size
    threads = grid_1d(chunks)[1]
    launch(_compact_kernel(), (chunks + threads - 1) // threads, threads, mask_buf, chunk,
           starts, out_buf)


def nonzero_chunks(n):
    """How many chunks the flat nonzero splits n elements into."""
    return max(1, min(n, (256 if SIMULATOR else 65536)))


# ---------------------------------------------------------------- sort (bitonic network)
@functools.cache
def _bitonic_kernel():
    @cuda.jit(device=True)
    def greater(ka, ia, kb, ib, n):
        # order: real values (NaN last, as numpy), then the padding; ties by index (stable)
        pa = ia >= n
        pb = ib >= n
        if pa != pb:
            return pa
        if pa:
            return ia > ib
        na = ka != ka
        nb = kb != kb
        if na != nb:
            return na
        if not na and ka != kb:
            return ka > kb
        return ia > ib

    @cuda.jit
    def step(keys, idx, total, width, n, k, j):
        # one compare-exchange stage of the bitonic network over every row (rows of `width`,
        # a power of two); each pair (i, i ^ j) is handled by its lower element's thread
        for t in range(cuda.grid(1), total, cuda.gridsize(1)):
            i = t % width
            partner = i ^ j
            if partner > i:
                base = t - i
                a = base + i
                b = base + partner
                ascending = (i & k) == 0
                swap = greater(keys[a], idx[a], keys[b], idx[b], n)
                if not ascending:
                    swap = greater(keys[b], idx[b], keys[a], idx[a], n)
                if swap:
                    tk = keys[a]
                    keys[a] = keys[b]
                    keys[b] = tk
                    ti = idx[a]
                    idx[a] = idx[b]
                    idx[b] = ti
    return step


def bitonic_sort_rows(keys_buf, idx_buf, rows, width, n):
    """Sort each row of (rows, width) flat buffers by (key, index), width a power of two;
    entries with index >= n are padding and end up last."""
    total = rows * width
    if total == 0 or width < 2:
        return
    kernel = _bitonic_kernel()
    blocks, threads = grid_1d(total)
    k = 2
    while k <= width:
        j = k // 2
        while j >= 1:
            launch(kernel, blocks, threads, keys_buf, idx_buf, np.int64(total), np.int64(width),
                   np.int64(n), np.int64(k), np.int64(j))
            j //= 2
        k *= 2
