"""Numba kernels: ops family (see fastnn/backends/reference.py for the math).

Every kernel is one fused loop over its data with no full-size temporaries. Each comes in two
parts:
- `_<name>_block(...)`: a serial @njit loop over whole (sub)arrays; it is the kernel for small
  inputs and the per-thread body for large ones;
- `_<name>_parallel(chunks, ...)`: a prange over `chunks` contiguous blocks (of elements or
  rows), one per thread, that calls the block function on slices.
The Python-level function picks one by input size (`_blocks`), so small inputs never pay for
waking the thread pool (nor for compiling the parallel variant). The thread count is read in
Python: numba.get_num_threads() inside a jitted function would make it uncacheable.

Block functions loop over slices with `range(n)` indices rather than over `lo..hi` offsets:
numba then knows the indices are non-negative, drops its negative-index wraparound and LLVM
vectorizes the loops.

fastmath: elementwise loops use only "contract" (FMA); reductions add "reassoc" so LLVM may
split sums across vector lanes. Neither assumes away NaN or inf: NaN propagates everywhere the
reference propagates it. Sums over many rows (bias_grad, the layer-norm parameter gradients, the
MSE loss) accumulate in float64 whatever the input dtype; scalar hyper-parameters are cast to the
array dtype in Python so float32 kernels stay in float32 arithmetic, as the reference does.
"""
import math

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload


# error_model="numpy": x / 0 gives inf or NaN as in numpy (the reference) instead of raising
# ZeroDivisionError, and the divisions need no zero test, which would block vectorization.
_MAP = dict(cache=True, error_model="numpy", fastmath={"contract"})              # elementwise
_REDUCE = dict(cache=True, error_model="numpy", fastmath={"contract", "reassoc"})  # with sums
_PARALLEL = dict(cache=True, error_model="numpy", parallel=True)

# Below these many elements a kernel runs serially: waking the thread pool costs ~10 us, the
# time a cheap loop takes for ~64K elements and a loop of exp/tanh/erf for ~8K.
CHEAP_PARALLEL_MIN = 1 << 16
COSTLY_PARALLEL_MIN = 1 << 13

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_C = 0.044715


def _blocks(work, minimum, items):
    """How many per-thread blocks to split `items` (elements or rows) into; 0: run serially."""
    if work < minimum:
        return 0
    n = min(numba.get_num_threads(), items)
    return n if n > 1 else 0


@njit(cache=True, error_model="numpy")
def _bounds(c, chunks, n):
    return c * n // chunks, (c + 1) * n // chunks


# ================================================================ exp that vectorizes
# math.exp compiles to a libm call per element (numba has no vector math library unless Intel's
# SVML is installed), so loops around it stay scalar. _exp is Cody-Waite range reduction plus a
# Taylor polynomial, all arithmetic and one bit-cast, which LLVM vectorizes: several times
# faster on exp-bound rows (softmax, cross-entropy, sigmoid, GELU). Accuracy: a few ulp in
# float32 and float64. exp(NaN) = NaN, exp(+inf) = inf, exp(-inf) = 0; results that would be
# subnormal flush to 0 (below -87.3 in float32, -708.3 in float64).

@intrinsic
def _pow2(typingctx, n):
    """2.0 ** n for a float n holding an integer in the normal exponent range, by writing the
    exponent bits."""
    if n not in (types.float32, types.float64):
        return None
    bits, mantissa, bias = (32, 23, 127) if n == types.float32 else (64, 52, 1023)

    def codegen(context, builder, sig, args):
        ity = ir.IntType(bits)
        k = builder.fptosi(args[0], ity)
        e = builder.shl(builder.add(k, ir.Constant(ity, bias)), ir.Constant(ity, mantissa))
        return builder.bitcast(e, context.get_value_type(n))
    return n(n), codegen


def _exp(x):
    return math.exp(x)


@overload(_exp, jit_options={"fastmath": {"contract"}})
def _exp_overload(x):
    if x == types.float32:
        # ln2 split so that n * ln2_hi is exact for |n| < 2**8; degree-7 polynomial
        hi, lo, ln2_hi, ln2_lo, degree = 88.72283, -103.97208, 0.693359375, -2.12194440e-4, 7
    elif x == types.float64:
        hi, lo = 709.782712893384, -745.1332191019412
        ln2_hi, ln2_lo, degree = 6.93147180369123816490e-01, 1.90821492927058770002e-10, 13
    else:
        return None
    t = np.float32 if x == types.float32 else np.float64
    inv_fact = tuple(1.0 / math.factorial(k) for k in range(degree, -1, -1))

    def impl(x):
        # Branch-free (selects only), so that loops calling it vectorize.
        xc = x if x > t(lo) else t(lo)          # NaN becomes lo here; restored at the end
        xc = xc if xc < t(hi) else t(hi)
        n = np.floor(xc * t(1.4426950408889634) + t(0.5))      # round(x / ln2)
        r = (xc - n * t(ln2_hi)) - n * t(ln2_lo)                # |r| <= ln2 / 2
        p = t(inv_fact[0])
        for c in inv_fact[1:]:          # Horner; the loop over constants unrolls
            p = p * r + t(c)
        # 2**n in two halves: each stays a normal number, the product may be subnormal
        half = np.floor(n * t(0.5))
        y = p * _pow2(half) * _pow2(n - half)
        y = y if x >= t(lo) else t(0)
        y = y if x <= t(hi) else t(math.inf)
        return y if x == x else x
    return impl


# ================================================================ bias
@njit(**_MAP)
def _bias_add_block(x, bias, y):
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            y[r, j] = x[r, j] + bias[j]


@njit(**_PARALLEL)
def _bias_add_parallel(chunks, x, bias, y):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, x.shape[0])
        _bias_add_block(x[lo:hi], bias, y[lo:hi])


def bias_add(x, bias):
    y = np.empty_like(x)
    chunks = _blocks(x.size, CHEAP_PARALLEL_MIN, x.shape[0])
    if chunks:
        _bias_add_parallel(chunks, x, bias, y)
    else:
        _bias_add_block(x, bias, y)
    return y


@njit(**_REDUCE)
def _bias_grad_block(dy, out, col0, col1):
    """out[col0:col1] = column sums of dy[:, col0:col1], accumulated in float64."""
    acc = np.zeros(col1 - col0)
    for r in range(dy.shape[0]):
        row = dy[r, col0:col1]
        for j in range(acc.size):
            acc[j] += row[j]
    for j in range(acc.size):
        out[col0 + j] = acc[j]


@njit(**_PARALLEL)
def _bias_grad_parallel(chunks, dy, out):
    # Each thread sums whole columns (a block of 64-byte lines): no partial sums to combine,
    # and the same result for any thread count.
    lanes = 64 // dy.itemsize
    lines = (dy.shape[1] + lanes - 1) // lanes
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, lines)
        _bias_grad_block(dy, out, lo * lanes, min(hi * lanes, dy.shape[1]))


def bias_grad(dy):
    out = np.empty(dy.shape[1], dy.dtype)
    lines = -(-dy.shape[1] * dy.itemsize // 64)
    chunks = _blocks(dy.size, CHEAP_PARALLEL_MIN, lines)
    if chunks:
        _bias_grad_parallel(chunks, dy, out)
    else:
        _bias_grad_block(dy, out, 0, dy.shape[1])
    return out


# ================================================================ activations (1-D)
# One pattern for every elementwise kernel: _<name>_block(inputs..., out[, param]) loops over all
# elements; _<name>_parallel splits them into per-thread slices.

@njit(**_MAP)
def _relu_block(x, y):
    for i in range(x.size):
        v = x[i]
        y[i] = 0 if v < 0 else v        # NaN is not < 0: it passes through


@njit(**_PARALLEL)
def _relu_parallel(chunks, x, y):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, x.size)
        _relu_block(x[lo:hi], y[lo:hi])


def relu(x):
    y = np.empty_like(x)
    chunks = _blocks(x.size, CHEAP_PARALLEL_MIN, x.size)
    if chunks:
        _relu_parallel(chunks, x, y)
    else:
        _relu_block(x, y)
    return y


@njit(**_MAP)
def _relu_backward_block(dy, x, dx):
    for i in range(x.size):
        # dy * (x > 0), as the reference: a NaN/inf dy still gives NaN where x <= 0
        dx[i] = dy[i] if x[i] > 0 else dy[i] * 0


@njit(**_PARALLEL)
def _relu_backward_parallel(chunks, dy, x, dx):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, x.size)
        _relu_backward_block(dy[lo:hi], x[lo:hi], dx[lo:hi])


def relu_backward(dy, x):
    dx = np.empty_like(dy)
    chunks = _blocks(x.size, CHEAP_PARALLEL_MIN, x.size)
    if chunks:
        _relu_backward_parallel(chunks, dy, x, dx)
    else:
        _relu_backward_block(dy, x, dx)
    return dx


@njit(**_MAP)
def _leaky_relu_block(x, y, slope):
    for i in range(x.size):
        v = x[i]
        y[i] = v if v > 0 else v * slope


@njit(**_PARALLEL)
def _leaky_relu_parallel(chunks, x, y, slope):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, x.size)
        _leaky_relu_block(x[lo:hi], y[lo:hi], slope)


def leaky_relu(x, negative_slope):
    y = np.empty_like(x)
    slope = x.dtype.type(negative_slope)
    chunks = _blocks(x.size, CHEAP_PARALLEL_MIN, x.size)
    if chunks:
        _leaky_relu_parallel(chunks, x, y, slope)
    else:
        _leaky_relu_block(x, y, slope)
    return y


@njit(**_MAP)
def _leaky_relu_backward_block(dy, x, dx, slope):
    for i in range(x.size):
        dx[i] = dy[i] if x[i] > 0 else dy[i] * slope


@njit(**_PARALLEL)
def _leaky_relu_backward_parallel(chunks, dy, x, dx, slope):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, x.size)
        _leaky_relu_backward_block(dy[lo:hi], x[lo:hi], dx[lo:hi], slope)


def leaky_relu_backward(dy, x, negative_slope):
    dx = np.empty_like(dy)
    slope = x.dtype.type(negative_slope)
    chunks = _blocks(x.size, CHEAP_PARALLEL_MIN, x.size)
    if chunks:
        _leaky_relu_backward_parallel(chunks, dy, x, dx, slope)
    else:
        _leaky_relu_backward_block(dy, x, dx, slope)
    return dx


@njit(**_MAP)
def _sigmoid_pair(u):
    """(sigmoid(u), 1 - sigmoid(u)), both to full relative precision, without overflow."""
    one = type(u)(1)
    e = _exp(-abs(u))
    p = one / (one + e)
    q = e * p
    return (p, q) if u >= 0 else (q, p)


@njit(**_MAP)
def _sigmoid_block(x, y):
    for i in range(x.size):
        y[i], _ = _sigmoid_pair(x[i])


@njit(**_PARALLEL)
def _sigmoid_parallel(chunks, x, y):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, x.size)
        _sigmoid_block(x[lo:hi], y[lo:hi])


def sigmoid(x):
    y = np.empty_like(x)
    chunks = _blocks(x.size, COSTLY_PARALLEL_MIN, x.size)
    if chunks:
        _sigmoid_parallel(chunks, x, y)
    else:
        _sigmoid_block(x, y)
    return y


@njit(**_MAP)
def _sigmoid_backward_block(dy, y, dx):
    one = y.dtype.type(1)
    for i in range(y.size):
        dx[i] = dy[i] * y[i] * (one - y[i])


@njit(**_PARALLEL)
def _sigmoid_backward_parallel(chunks, dy, y, dx):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, y.size)
        _sigmoid_backward_block(dy[lo:hi], y[lo:hi], dx[lo:hi])


def sigmoid_backward(dy, y):
    dx = np.empty_like(dy)
    chunks = _blocks(y.size, CHEAP_PARALLEL_MIN, y.size)
    if chunks:
        _sigmoid_backward_parallel(chunks, dy, y, dx)
    else:
        _sigmoid_backward_block(dy, y, dx)
    return dx


@njit(**_MAP)
def _tanh_block(x, y):
    for i in range(x.size):
        y[i] = math.tanh(x[i])


@njit(**_PARALLEL)
def _tanh_parallel(chunks, x, y):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, x.size)
        _tanh_block(x[lo:hi], y[lo:hi])


def tanh(x):
    y = np.empty_like(x)
    chunks = _blocks(x.size, COSTLY_PARALLEL_MIN, x.size)
    if chunks:
        _tanh_parallel(chunks, x, y)
    else:
        _tanh_block(x, y)
    return y


@njit(**_MAP)
def _tanh_backward_block(dy, y, dx):
    one = y.dtype.type(1)
    for i in range(y.size):
        dx[i] = dy[i] * (one - y[i] * y[i])


@njit(**_PARALLEL)
def _tanh_backward_parallel(chunks, dy, y, dx):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, y.size)
        _tanh_backward_block(dy[lo:hi], y[lo:hi], dx[lo:hi])


def tanh_backward(dy, y):
    dx = np.empty_like(dy)
    chunks = _blocks(y.size, CHEAP_PARALLEL_MIN, y.size)
    if chunks:
        _tanh_backward_parallel(chunks, dy, y, dx)
    else:
        _tanh_backward_block(dy, y, dx)
    return dx


def _normal_cdf_pdf(v):
    """(Phi(v), phi(v)): the standard normal's CDF and density."""
    raise NotImplementedError


# Phi for float32 from the upper tail Q(a), a = |v|, as phi(a) M(t): M is the Mills ratio Q/phi,
# a polynomial in t = 1 / (1 + 0.23 a), fitted for relative error (1.3e-7 on 0 <= a <= 13; the
# same fit as csrc/ops_activations.c). Branch-free with one exp, which is phi itself, so the loops
# vectorize; math.erfc would keep them scalar (GELU was ~40x slower than the C kernel). float64
# keeps erfc, as the reference. inline="always": as a call (Numba does not inline an overload
# that itself calls one) the loop stayed scalar, 25x slower.
_TAIL_M = tuple(np.float32(c) for c in (
    -0.1851967869785927, 0.6739091126387045, -0.5890252678748747, 0.635679811928907,
    -0.001839752558235451, 0.26596283126378806, 0.22344577922985698, 0.23037857661259678))


@overload(_normal_cdf_pdf, jit_options={"fastmath": {"contract"}}, inline="always")
def _normal_cdf_pdf_overload(v):
    if v == types.float32:
        f = np.float32
        c7, c6, c5, c4, c3, c2, c1, c0 = _TAIL_M
        p, one, half, k = f(0.23), f(1), f(-0.5), f(_INV_SQRT_2PI)

        lo, log2e = f(-87), f(1.4426950408889634)
        ln2_hi, ln2_lo = f(0.693359375), f(-2.12194440e-4)
        taylor = tuple(f(1.0 / math.factorial(j)) for j in range(6, -1, -1))

        def impl(v):
            a = abs(v)
            t = one / (one + p * a)
            m = t * (c0 + t * (c1 + t * (c2 + t * (c3 + t * (c4 + t * (c5 + t * (c6
                + t * c7)))))))
            # exp(z), z = -a^2/2 <= 0: _exp without its overflow and subnormal handling (below
            # -87 the result is 0), degree 6 (1.2e-7): a quarter off the GELU loop
            z = half * a * a
            zc = z if z > lo else lo      # (a NaN v reaches the result through m)
            n = np.floor(zc * log2e + f(0.5))
            r = (zc - n * ln2_hi) - n * ln2_lo
            e = taylor[0]
            for c in taylor[1:]:
                e = e * r + c
            e = e * _pow2(n)
            pdf = k * (e if z >= lo else f(0))
            q = pdf * m
            return (one - q if v >= 0 else q), pdf
        return impl
    if v == types.float64:
        def impl(v):
            return 0.5 * math.erfc(-v * _INV_SQRT_2), _exp(-0.5 * v * v) * _INV_SQRT_2PI
        return impl
    return None


# GELU, written without the cancellations of the textbook forms, which lose all precision in
# float32 for x below about -3: 1 + tanh(u) = 2 sigmoid(2u), 1 - tanh(u)^2 = 4 s (1 - s) with
# s = sigmoid(2u), and 1 + erf(z) = erfc(-z).
@njit(**_MAP)
def _gelu_block(x, y, approximate):
    t = x.dtype.type
    if approximate:     # 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
        k2, c = t(2 * _SQRT_2_OVER_PI), t(_GELU_C)
        for i in range(x.size):
            v = x[i]
            s, _ = _sigmoid_pair(k2 * (v + c * v * v * v))
            y[i] = v * s
    else:               # x Phi(x)
        for i in range(x.size):
            v = x[i]
            cdf, _ = _normal_cdf_pdf(v)
            y[i] = v * cdf


@njit(**_PARALLEL)
def _gelu_parallel(chunks, x, y, approximate):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, x.size)
        _gelu_block(x[lo:hi], y[lo:hi], approximate)


def gelu(x, approximate, out=None):
    y = np.empty_like(x) if out is None else out
    chunks = _blocks(x.size, COSTLY_PARALLEL_MIN, x.size)
    if chunks:
        _gelu_parallel(chunks, x, y, bool(approximate))
    else:
        _gelu_block(x, y, bool(approximate))
    return y


@njit(**_MAP)
def _gelu_backward_block(dy, x, dx, approximate):
    t = x.dtype.type
    if approximate:     # 0.5 (1 + th) + 0.5 x (1 - th^2) du/dx = s + 2 x s (1 - s) du/dx
        k, k2, c, c3 = t(_SQRT_2_OVER_PI), t(2 * _SQRT_2_OVER_PI), t(_GELU_C), t(3 * _GELU_C)
        one, two = t(1), t(2)
        for i in range(x.size):
            v = x[i]
            s, s1 = _sigmoid_pair(k2 * (v + c * v * v * v))
            du = k * (one + c3 * v * v)
            dx[i] = dy[i] * (s + two * v * s * s1 * du)
    else:               # Phi(x) + x phi(x)
        for i in range(x.size):
            v = x[i]
            cdf, pdf = _normal_cdf_pdf(v)
            dx[i] = dy[i] * (cdf + v * pdf)


@njit(**_PARALLEL)
def _gelu_backward_parallel(chunks, dy, x, dx, approximate):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, x.size)
        _gelu_backward_block(dy[lo:hi], x[lo:hi], dx[lo:hi], approximate)


def gelu_backward(dy, x, approximate, out=None):
    dx = np.empty_like(dy) if out is None else out
    chunks = _blocks(x.size, COSTLY_PARALLEL_MIN, x.size)
    if chunks:
        _gelu_backward_parallel(chunks, dy, x, dx, bool(approximate))
    else:
        _gelu_backward_block(dy, x, dx, bool(approximate))
    return dx


@njit(**_MAP)
def _clamp_block(x, y, low, high):
    for i in range(x.size):
        v = x[i]
        v = low if v < low else v       # NaN fails both tests: it passes through
        y[i] = high if v > high else v  # low > high: everything ends at high, as torch.clamp


@njit(**_PARALLEL)
def _clamp_parallel(chunks, x, y, low, high):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, x.size)
        _clamp_block(x[lo:hi], y[lo:hi], low, high)


def clamp(x, lo, hi):
    y = np.empty_like(x)
    low, high = x.dtype.type(lo), x.dtype.type(hi)
    chunks = _blocks(x.size, CHEAP_PARALLEL_MIN, x.size)
    if chunks:
        _clamp_parallel(chunks, x, y, low, high)
    else:
        _clamp_block(x, y, low, high)
    return y


@njit(**_MAP)
def _clamp_backward_block(dy, x, dx, low, high):
    zero = dy.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        dx[i] = dy[i] if low <= v and v <= high else zero   # a select: NaN/inf dy outside is 0


@njit(**_PARALLEL)
def _clamp_backward_parallel(chunks, dy, x, dx, low, high):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, x.size)
        _clamp_backward_block(dy[lo:hi], x[lo:hi], dx[lo:hi], low, high)


def clamp_backward(dy, x, lo, hi):
    dx = np.empty_like(dy)
    low, high = x.dtype.type(lo), x.dtype.type(hi)
    chunks = _blocks(x.size, CHEAP_PARALLEL_MIN, x.size)
    if chunks:
        _clamp_backward_parallel(chunks, dy, x, dx, low, high)
    else:
        _clamp_backward_block(dy, x, dx, low, high)
    return dx


# ================================================================ softmax family (2-D rows)
# Row kernels read a row a few times while it sits in L1/L2 (max, then sum, then write) and write
# it once; rows are split among threads in contiguous blocks.

@njit(**_REDUCE)
def _row_max(x, r):
    # Comparison chains skip NaN here; the NaN still reaches the row's sum below and from it
    # every output of the row, as in the reference.
    m = x[r, 0]
    for j in range(1, x.shape[1]):
        v = x[r, j]
        m = v if v > m else m
    return m


@njit(**_REDUCE)
def _softmax_block(x, y):
    for r in range(x.shape[0]):
        m = _row_max(x, r)
        s = x.dtype.type(0)
        for j in range(x.shape[1]):
            e = _exp(x[r, j] - m)       # <= 1: finite for any finite logits
            y[r, j] = e
            s += e
        inv = 1 / s
        for j in range(x.shape[1]):
            y[r, j] *= inv


@njit(**_PARALLEL)
def _softmax_parallel(chunks, x, y):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, x.shape[0])
        _softmax_block(x[lo:hi], y[lo:hi])


def softmax(x):
    y = np.empty_like(x)
    chunks = _blocks(x.size, COSTLY_PARALLEL_MIN, x.shape[0])
    if chunks:
        _softmax_parallel(chunks, x, y)
    else:
        _softmax_block(x, y)
    return y


@njit(**_REDUCE)
def _softmax_backward_block(dy, y, dx):
    for r in range(y.shape[0]):
        s = y.dtype.type(0)
        for j in range(y.shape[1]):
            s += dy[r, j] * y[r, j]
        for j in range(y.shape[1]):
            dx[r, j] = y[r, j] * (dy[r, j] - s)


@njit(**_PARALLEL)
def _softmax_backward_parallel(chunks, dy, y, dx):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, y.shape[0])
        _softmax_backward_block(dy[lo:hi], y[lo:hi], dx[lo:hi])


def softmax_backward(dy, y):
    dx = np.empty_like(dy)
    chunks = _blocks(y.size, CHEAP_PARALLEL_MIN, y.shape[0])
    if chunks:
        _softmax_backward_parallel(chunks, dy, y, dx)
    else:
        _softmax_backward_block(dy, y, dx)
    return dx


@njit(**_REDUCE)
def _log_softmax_block(x, y):
    for r in range(x.shape[0]):
        m = _row_max(x, r)
        s = x.dtype.type(0)
        for j in range(x.shape[1]):
            s += _exp(x[r, j] - m)
        # (x - m) - log(s), not x - (m + log(s)): for |m| ~ 1e4 the sum m + log(s) would
        # round away log(s)'s digits in float32.
        log_s = math.log(s)
        for j in range(x.shape[1]):
            y[r, j] = (x[r, j] - m) - log_s


@njit(**_PARALLEL)
def _log_softmax_parallel(chunks, x, y):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, x.shape[0])
        _log_softmax_block(x[lo:hi], y[lo:hi])


def log_softmax(x):
    y = np.empty_like(x)
    chunks = _blocks(x.size, COSTLY_PARALLEL_MIN, x.shape[0])
    if chunks:
        _log_softmax_parallel(chunks, x, y)
    else:
        _log_softmax_block(x, y)
    return y


@njit(**_REDUCE)
def _log_softmax_backward_block(dy, y, dx):
    for r in range(y.shape[0]):
        s = y.dtype.type(0)
        for j in range(y.shape[1]):
            s += dy[r, j]
        for j in range(y.shape[1]):
            dx[r, j] = dy[r, j] - _exp(y[r, j]) * s


@njit(**_PARALLEL)
def _log_softmax_backward_parallel(chunks, dy, y, dx):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, y.shape[0])
        _log_softmax_backward_block(dy[lo:hi], y[lo:hi], dx[lo:hi])


def log_softmax_backward(dy, y):
    dx = np.empty_like(dy)
    chunks = _blocks(y.size, COSTLY_PARALLEL_MIN, y.shape[0])
    if chunks:
        _log_softmax_backward_parallel(chunks, dy, y, dx)
    else:
        _log_softmax_backward_block(dy, y, dx)
    return dx


# ================================================================ losses
@njit(**_REDUCE)
def _cross_entropy_block(logits, targets, ignore_index, scale, losses, grad):
    """Per row, in one pass over the row's memory (kept in cache): p = softmax(row),
    loss = logsumexp(row) - row[target], grad = scale * (p - onehot(target))."""
    zero = logits.dtype.type(0)
    for r in range(logits.shape[0]):
        t = targets[r]
        if t == ignore_index:
            losses[r] = 0
            for j in range(logits.shape[1]):
                grad[r, j] = zero
            continue
        m = _row_max(logits, r)
        s = zero
        for j in range(logits.shape[1]):
            e = _exp(logits[r, j] - m)
            grad[r, j] = e
            s += e
        losses[r] = math.log(s) - (logits[r, t] - m)    # grouped as in log_softmax
        k = scale / s
        for j in range(logits.shape[1]):
            grad[r, j] *= k
        grad[r, t] -= scale


@njit(**_PARALLEL)
def _cross_entropy_parallel(chunks, logits, targets, ignore_index, scale, losses, grad):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, logits.shape[0])
        _cross_entropy_block(logits[lo:hi], targets[lo:hi], ignore_index, scale, losses[lo:hi],
                             grad[lo:hi])


def cross_entropy(logits, targets, ignore_index, grad_scale):
    losses = np.empty(logits.shape[0], logits.dtype)
    grad = np.empty_like(logits)
    scale = logits.dtype.type(grad_scale)
    chunks = _blocks(logits.size, COSTLY_PARALLEL_MIN, logits.shape[0])
    if chunks:
        _cross_entropy_parallel(chunks, logits, targets, ignore_index, scale, losses, grad)
    else:
        _cross_entropy_block(logits, targets, ignore_index, scale, losses, grad)
    return losses, grad


@njit(**_REDUCE)
def _mse_block(pred, target, grad, k):
    """grad = k * (pred - target) with k = 2/n; returns sum of squared differences (float64)."""
    s = 0.0
    for i in range(pred.size):
        d = pred[i] - target[i]
        grad[i] = k * d
        s += d * d
    return s


@njit(**_PARALLEL)
def _mse_parallel(chunks, pred, target, grad, k):
    partial = np.zeros(chunks)
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, pred.size)
        partial[c] = _mse_block(pred[lo:hi], target[lo:hi], grad[lo:hi], k)
    return partial.sum()


def mse_loss(pred, target):
    grad = np.empty_like(pred)
    n = max(pred.size, 1)
    k = pred.dtype.type(2.0 / n)
    chunks = _blocks(pred.size, CHEAP_PARALLEL_MIN, pred.size)
    if chunks:
        total = _mse_parallel(chunks, pred, target, grad, k)
    else:
        total = _mse_block(pred, target, grad, k)
    return pred.dtype.type(total / n), grad


# ================================================================ layer norm (2-D rows)
@njit(**_REDUCE)
def _layer_norm_block(x, weight, bias, eps, y, mean, rstd):
    # Mean, then variance about the mean (not E[x^2] - E[x]^2, which cancels catastrophically
    # when |mean| >> std), both accumulated in float64; then the output. The row stays in cache.
    c = x.shape[1]
    for r in range(x.shape[0]):
        s = 0.0
        for j in range(c):
            s += x[r, j]
        mu = s / c
        q = 0.0
        for j in range(c):
            d = x[r, j] - mu
            q += d * d
        rs = 1.0 / math.sqrt(q / c + eps)
        mean[r] = mu
        rstd[r] = rs
        mu_t = x.dtype.type(mu)
        rs_t = x.dtype.type(rs)
        for j in range(c):
            y[r, j] = (x[r, j] - mu_t) * rs_t * weight[j] + bias[j]


@njit(**_PARALLEL)
def _layer_norm_parallel(chunks, x, weight, bias, eps, y, mean, rstd):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, x.shape[0])
        _layer_norm_block(x[lo:hi], weight, bias, eps, y[lo:hi], mean[lo:hi], rstd[lo:hi])


def layer_norm(x, weight, bias, eps, out=None):
    if out is None:
        y, mean, rstd = np.empty_like(x), np.empty(x.shape[0], x.dtype), np.empty(x.shape[0], x.dtype)
    else:
        y, mean, rstd = out
    chunks = _blocks(x.size, CHEAP_PARALLEL_MIN, x.shape[0])
    if chunks:
        _layer_norm_parallel(chunks, x, weight, bias, float(eps), y, mean, rstd)
    else:
        _layer_norm_block(x, weight, bias, float(eps), y, mean, rstd)
    return y, mean, rstd


@njit(**_REDUCE)
def _layer_norm_backward_block(dy, x, weight, mean, rstd, dx, dweight, dbias):
    """dx for these rows; adds this block's parameter gradients into dweight/dbias (float64).

    With xhat = (x - mean) * rstd and g = dy * weight:
        dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
    """
    c = x.shape[1]
    for r in range(x.shape[0]):
        mu = mean[r]
        rs = rstd[r]
        sg = 0.0
        sgx = 0.0
        for j in range(c):
            xhat = (x[r, j] - mu) * rs
            g = dy[r, j] * weight[j]
            sg += g
            sgx += g * xhat
            dweight[j] += dy[r, j] * xhat
            dbias[j] += dy[r, j]
        mg = x.dtype.type(sg / c)
        mgx = x.dtype.type(sgx / c)
        for j in range(c):
            xhat = (x[r, j] - mu) * rs
            dx[r, j] = rs * (dy[r, j] * weight[j] - mg - xhat * mgx)


@njit(**_PARALLEL)
def _layer_norm_backward_parallel(chunks, dy, x, weight, mean, rstd, dx, dweight, dbias):
    c = x.shape[1]
    partial_w = np.zeros((chunks, c))
    partial_b = np.zeros((chunks, c))
    for k in prange(chunks):
        lo, hi = _bounds(k, chunks, x.shape[0])
        _layer_norm_backward_block(dy[lo:hi], x[lo:hi], weight, mean[lo:hi], rstd[lo:hi],
                                   dx[lo:hi], partial_w[k], partial_b[k])
    for j in range(c):
        sw = 0.0
        sb = 0.0
        for k in range(chunks):
            sw += partial_w[k, j]
            sb += partial_b[k, j]
        dweight[j] = sw
        dbias[j] = sb


def layer_norm_backward(dy, x, weight, mean, rstd, out=None):
    dx = np.empty_like(dy) if out is None else out
    dweight = np.empty(x.shape[1], x.dtype)
    dbias = np.empty(x.shape[1], x.dtype)
    chunks = _blocks(x.size, CHEAP_PARALLEL_MIN, x.shape[0])
    if chunks:
        _layer_norm_backward_parallel(chunks, dy, x, weight, mean, rstd, dx, dweight, dbias)
    else:
        w64 = np.zeros(x.shape[1])
        b64 = np.zeros(x.shape[1])
        _layer_norm_backward_block(dy, x, weight, mean, rstd, dx, w64, b64)
        dweight[:] = w64
        dbias[:] = b64
    return dx, dweight, dbias


# ================================================================ embedding
@njit(cache=True, error_model="numpy")
def _embedding_block(weight, ids, out):
    for i in range(ids.size):
        row = ids[i]
        for j in range(weight.shape[1]):
            out[i, j] = weight[row, j]


@njit(**_PARALLEL)
def _embedding_parallel(chunks, weight, ids, out):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, ids.size)
        _embedding_block(weight, ids[lo:hi], out[lo:hi])


def embedding(weight, ids):
    out = np.empty((ids.size, weight.shape[1]), weight.dtype)
    chunks = _blocks(out.size, CHEAP_PARALLEL_MIN, ids.size)
    if chunks:
        _embedding_parallel(chunks, weight, ids, out)
    else:
        _embedding_block(weight, ids, out)
    return out


@njit(cache=True, error_model="numpy")
def _embedding_backward_block(dout, ids, dweight, col0, col1):
    """dweight[:, col0:col1] += scatter-add of dout[:, col0:col1] by ids (dweight arrives
    zeroed: np.zeros gets calloc's fresh zero pages, which costs less than writing zeros here).

    Ids repeat, so rows of dweight cannot be split among threads; its columns can: a thread
    owns a block of columns of every row and adds in the order of ids, so the result is
    race-free and the same for any thread count."""
    # Row slices, indexed from 0: written as dweight[row, col0 + j], the index could be negative
    # as far as LLVM knows (numba wraps negative indices), and the loop stayed scalar.
    for i in range(ids.size):
        src = dout[i, col0:col1]
        dst = dweight[ids[i], col0:col1]
        for j in range(src.size):
            dst[j] += src[j]


@njit(**_PARALLEL)
def _embedding_backward_parallel(chunks, dout, ids, dweight):
    # Column blocks of whole 64-byte lines, so no two threads write the same cache line.
    lanes = 64 // dout.itemsize
    lines = (dout.shape[1] + lanes - 1) // lanes
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, lines)
        _embedding_backward_block(dout, ids, dweight, lo * lanes,
                                  min(hi * lanes, dout.shape[1]))


def embedding_backward(dout, ids, num_embeddings):
    dweight = np.zeros((num_embeddings, dout.shape[1]), dout.dtype)
    lines = -(-dout.shape[1] * dout.itemsize // 64)
    chunks = _blocks(dout.size + dweight.size, CHEAP_PARALLEL_MIN, lines)
    if chunks:
        _embedding_backward_parallel(chunks, dout, ids, dweight)
    else:
        _embedding_backward_block(dout, ids, dweight, 0, dout.shape[1])
    return dweight


# ================================================================ optimizers (in place, 1-D)
@njit(**_MAP)
def _sgd_block(param, grad, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    """PyTorch's SGD, fused: one read of param/grad/buf and one write of param/buf."""
    one = param.dtype.type(1)
    use_momentum = momentum != 0
    for i in range(param.size):
        d = grad[i] + weight_decay * param[i] if weight_decay != 0 else grad[i]
        if use_momentum:
            b = d if first else momentum * buf[i] + (one - dampening) * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        param[i] -= lr * d


@njit(**_PARALLEL)
def _sgd_parallel(chunks, param, grad, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, param.size)
        # buf is empty when momentum == 0: slice it only when it is used
        b = buf[lo:hi] if buf.size else buf
        _sgd_block(param[lo:hi], grad[lo:hi], b, lr, momentum, dampening, nesterov,
                   weight_decay, first)


def sgd_step(param, grad, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    t = param.dtype.type
    args = (param, grad, buf, t(lr), t(momentum), t(dampening), bool(nesterov),
            t(weight_decay), bool(first))
    chunks = _blocks(param.size, CHEAP_PARALLEL_MIN, param.size)
    if chunks:
        _sgd_parallel(chunks, *args)
    else:
        _sgd_block(*args)


@njit(**_MAP)
def _adam_block(param, grad, m, v, step_size, inv_sqrt_bc2, beta1, beta2, eps, weight_decay,
                decay):
    """PyTorch's Adam/AdamW, fused. step_size = lr / (1 - beta1^step),
    inv_sqrt_bc2 = 1 / sqrt(1 - beta2^step), decay = 1 - lr * weight_decay (AdamW) or 1."""
    one = param.dtype.type(1)
    for i in range(param.size):
        p = param[i] * decay
        g = grad[i] + weight_decay * p if weight_decay != 0 else grad[i]
        mi = beta1 * m[i] + (one - beta1) * g
        vi = beta2 * v[i] + (one - beta2) * g * g
        m[i] = mi
        v[i] = vi
        param[i] = p - step_size * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)


@njit(**_PARALLEL)
def _adam_parallel(chunks, param, grad, m, v, step_size, inv_sqrt_bc2, beta1, beta2, eps,
                   weight_decay, decay):
    for c in prange(chunks):
        lo, hi = _bounds(c, chunks, param.size)
        _adam_block(param[lo:hi], grad[lo:hi], m[lo:hi], v[lo:hi], step_size, inv_sqrt_bc2,
                    beta1, beta2, eps, weight_decay, decay)


def adam_step(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled):
    t = param.dtype.type
    bc1 = 1 - beta1 ** step
    bc2 = 1 - beta2 ** step
    # AdamW decays param and adds nothing to the grad; Adam (L2) does the opposite.
    decay = 1 - lr * weight_decay if decoupled else 1.0
    l2 = 0.0 if decoupled else weight_decay
    args = (param, grad, m, v, t(lr / bc1), t(1 / math.sqrt(bc2)), t(beta1), t(beta2), t(eps),
            t(l2), t(decay))
    chunks = _blocks(param.size, CHEAP_PARALLEL_MIN, param.size)
    if chunks:
        _adam_parallel(chunks, *args)
    else:
        _adam_block(*args)


@njit(**_MAP)
def _scaled(grad, scale):
    out = np.empty_like(grad)
    for i in range(grad.size):
        out[i] = grad[i] * scale
    return out


def adam_multi_step(params, grads, ms, vs, step, lr, beta1, beta2, eps, weight_decay, decoupled,
                    grad_scale):
    """One compiled call per tensor (a list of arrays of several sizes is no one Numba type
    without a typed.List, whose construction costs more than the calls it saves)."""
    for p, g, m, v in zip(params, grads, ms, vs):
        p, g, m, v = p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1)
        if grad_scale != 1.0:
            g = _scaled(g, p.dtype.type(grad_scale))
        adam_step(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled)
