"""Numba loops for fastnn/_torch_rng.py's PyTorch-exact random transforms on large arrays.

Each loop computes exactly what the numpy code in fastnn/_torch_rng.py computes, one float32
rounding per step (no fastmath: LLVM must not reassociate or contract), with an explicit
llvm.fma where PyTorch's AVX2 build fuses a multiply-add. tests/test_torch_rng.py checks that
both paths give the same bits. They are only worth their compile time for large arrays, so
_torch_rng calls them from a size threshold up.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_F = np.float32
_ONE = _F(1)
_ZERO = _F(0)
_HALF = _F(0.5)
_MINUS_TWO = _F(-2)
_TWO_PI = _F(2.0 * math.pi)
_MIN_NORM = _F(1.17549435e-38)
_SQRTHF = _F(0.707106781186547524)
_LP0, _LP1, _LP2, _LP3, _LP4, _LP5, _LP6, _LP7, _LP8 = (_F(c) for c in (
    7.0376836292E-2, -1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1, 1.4249322787E-1,
    -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1, 3.3333331174E-1))
_LQ1 = _F(-2.12194440e-4)
_LQ2 = _F(0.693359375)
_FOPI = _F(1.27323954473516)
_DP1, _DP2, _DP3 = _F(-0.78515625), _F(-2.4187564849853515625e-4), _F(-3.77489497744594108e-8)
_C0, _C1, _C2 = _F(2.443315711809948E-005), _F(-1.388731625493765E-003), \
    _F(4.166664568298827E-002)
_S0, _S1, _S2 = _F(-1.9515295891E-4), _F(8.3321608736E-3), _F(-1.6666654611E-1)
_MASK24 = np.uint64(0xffffff)
_MANT = np.int32(~0x7f800000)
_HALF_BITS = np.int32(0x3f000000)
_INV24 = _F(2.0 ** -24)


@intrinsic
def fmaf(typingctx, a, b, c):
    """float32 a * b + c rounded once (llvm.fma.f32: vfmadd here, libm's fmaf elsewhere)."""
    if not all(isinstance(t, types.Float) and t.bitwidth == 32 for t in (a, b, c)):
        return None
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32, [f32] * 3),
                                            "llvm.fma.f32")
        return builder.call(fn, args)
    return sig, codegen


@intrinsic
def _f2i(typingctx, x):
    """The bits of a float32 as an int32 (no conversion)."""
    if not (isinstance(x, types.Float) and x.bitwidth == 32):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@intrinsic
def _i2f(typingctx, x):
    """An int32's bits as a float32."""
    if not (isinstance(x, types.Integer) and x.bitwidth == 32):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@njit(cache=True, inline="always")
def _log_ps(x):
    x = max(x, _MIN_NORM)
    bits = _f2i(x)
    e = _F((bits >> 23) - 126)      # the exponent of x = m * 2^e with m in [0.5, 1)
    xm = _i2f(np.int32((bits & _MANT) | _HALF_BITS))
    if xm < _SQRTHF:
        e = e - _ONE
        xm = (xm - _ONE) + xm
    else:
        xm = (xm - _ONE) + _ZERO
    z = xm * xm
    y = fmaf(_LP0, xm, _LP1)
    y = fmaf(y, xm, _LP2)
    y = fmaf(y, xm, _LP3)
    y = fmaf(y, xm, _LP4)
    y = fmaf(y, xm, _LP5)
    y = fmaf(y, xm, _LP6)
    y = fmaf(y, xm, _LP7)
    y = fmaf(y, xm, _LP8)
    y = fmaf(y * xm, z, e * _LQ1)
    y = fmaf(-z, _HALF, y)
    return fmaf(e, _LQ2, xm + y)


@njit(cache=True, inline="always")
def _sincos_ps(x):
    j = np.int32(x * _FOPI)
    j = (j + 1) & ~1
    y = _F(j)
    flip_sin = (j & 4) != 0
    flip_cos = (~(j - 2) & 4) != 0
    x = fmaf(y, _DP1, x)
    x = fmaf(y, _DP2, x)
    x = fmaf(y, _DP3, x)
    z = x * x
    c = fmaf(fmaf(_C0, z, _C1), z, _C2) * z
    c = fmaf(c, z, -(z * _HALF)) + _ONE
    s = fmaf(fmaf(_S0, z, _S1), z, _S2) * z
    s = fmaf(s, x, x)
    if (j & 2) == 0:
        sn, cs = s + _ZERO, c + _ZERO
    else:
        sn, cs = c + _ZERO, s + _ZERO
    return (-sn if flip_sin else sn), (-cs if flip_cos else cs)


@njit(cache=True, error_model="numpy")
def _box_muller_pairs(u1, u2, k, mean, std, o1, o2):
    """o1, o2 = normals from the first k uniforms of u1 (radius) and u2 (angle): a plain loop
    over contiguous arrays, which LLVM vectorises."""
    for i in range(k):
        radius = np.sqrt(_MINUS_TWO * _log_ps(_ONE - u1[i]))
        sn, cs = _sincos_ps(_TWO_PI * u2[i])
        o1[i] = fmaf(radius * cs, std, mean)
        o2[i] = fmaf(radius * sn, std, mean)


@njit(cache=True, error_model="numpy")
def box_muller16_f32(data, mean, std):
    """In place over data (float32, a multiple of 16 long): PyTorch's AVX2 NormalFill16, whose
    blocks of 16 hold 8 radius uniforms then 8 angle uniforms; gathered per chunk of blocks into
    contiguous buffers so that the transform vectorises."""
    blocks = data.size // 16
    chunk = 2048
    u1 = np.empty(chunk * 8, np.float32)
    u2 = np.empty(chunk * 8, np.float32)
    o1 = np.empty(chunk * 8, np.float32)
    o2 = np.empty(chunk * 8, np.float32)
    for c0 in range(0, blocks, chunk):
        nb = min(blocks - c0, chunk)
        for b in range(nb):
            for j in range(8):
                u1[b * 8 + j] = data[(c0 + b) * 16 + j]
                u2[b * 8 + j] = data[(c0 + b) * 16 + 8 + j]
        _box_muller_pairs(u1, u2, nb * 8, mean, std, o1, o2)
        for b in range(nb):
            for j in range(8):
                data[(c0 + b) * 16 + j] = o1[b * 8 + j]
                data[(c0 + b) * 16 + 8 + j] = o2[b * 8 + j]


@njit(cache=True)
def unit_f32(raw, out):
    """out[i] = the low 24 bits of the 32-bit draw raw[i] (uint64 from random_raw) / 2^24."""
    for i in range(raw.size):
        out[i] = _F(raw[i] & _MASK24) * _INV24


@njit(cache=True)
def fisher_yates(perm, offsets):
    """Swap perm[i] with perm[i + offsets[i]] for i = 0, 1, ... in order (torch.randperm)."""
    for i in range(offsets.size):
        j = i + offsets[i]
        perm[i], perm[j] = perm[j], perm[i]


@intrinsic
def fma(typingctx, a, b, c):
    """float64 a * b + c rounded once (llvm.fma.f64)."""
    if not all(isinstance(t, types.Float) and t.bitwidth == 64 for t in (a, b, c)):
        return None
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        f64 = ir.DoubleType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f64, [f64] * 3),
                                            "llvm.fma.f64")
        return builder.call(fn, args)
    return sig, codegen


_MASK53 = np.uint64((1 << 53) - 1)
_INV53 = np.float64(2.0 ** -53)
_SHIFT32 = np.uint64(32)


@njit(cache=True, error_model="numpy")
def uniform_f32(raw, low, span, high, out):
    """out[i] = fma(unit(raw[i]), span, low) in float32, a result equal to high becoming low
    (PyTorch's uniform_ on float32)."""
    for i in range(raw.size):
        v = fmaf(_F(raw[i] & _MASK24) * _INV24, span, low)
        out[i] = low if v == high else v


@njit(cache=True, error_model="numpy")
def uniform_f64(raw, low, span, scaled, out):
    """out[i] = the 53 low bits of the 64-bit draw (raw[2i] << 32 | raw[2i+1]) times 2^-53,
    then fma(x, span, low) when scaled (PyTorch's float64 uniform_)."""
    for i in range(out.size):
        x = np.float64(((raw[2 * i] << _SHIFT32) | raw[2 * i + 1]) & _MASK53) * _INV53
        out[i] = fma(x, span, low) if scaled else x


@njit(cache=True, error_model="numpy")
def randint32(raw, span, low, out):
    """out[i] = (32-bit draw raw[i]) % span + low (PyTorch's random_(from, to), span < 2^28)."""
    s = np.uint64(span)
    for i in range(raw.size):
        out[i] = np.int64(raw[i] % s) + low


_TWO_PI_D = 2.0 * math.pi


@njit(cache=True, error_model="numpy")
def box_muller16_f32_portable(data, mean, std):
    """In place: PyTorch's portable NormalFill16<float> (its build without AVX2, e.g. AVX-512):
    libm's logf/cosf/sinf on float32, the angle rounded to float32, one fmaf."""
    for b in range(0, data.size, 16):
        for j in range(8):
            u1 = _ONE - data[b + j]
            radius = np.float32(math.sqrt(_MINUS_TWO * np.float32(math.log(u1))))
            theta = np.float32(_TWO_PI_D * np.float64(data[b + 8 + j]))
            data[b + j] = fmaf(radius * np.float32(math.cos(theta)), std, mean)
            data[b + 8 + j] = fmaf(radius * np.float32(math.sin(theta)), std, mean)


@njit(cache=True, error_model="numpy")
def box_muller16_f64(data, mean, std):
    """In place: PyTorch's NormalFill16<double>, with libm's log/cos/sin and one fma."""
    for b in range(0, data.size, 16):
        for j in range(8):
            radius = math.sqrt(-2.0 * math.log(1.0 - data[b + j]))
            theta = _TWO_PI_D * data[b + 8 + j]
            data[b + j] = fma(radius * math.cos(theta), std, mean)
            data[b + 8 + j] = fma(radius * math.sin(theta), std, mean)
