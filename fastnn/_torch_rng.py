"""PyTorch's CPU random streams, bit for bit, in numpy.

PyTorch's CPU generator is an MT19937 engine seeded with init_genrand(seed & 0xffffffff), the
seeding numpy's legacy RandomState uses for a 32-bit seed, so numpy's MT19937 bit generator
(its random_raw gives the engine's 32-bit outputs) can be put in the very same state. On top of
those draws this module repeats ATen's CPU distribution kernels (ATen/core/DistributionsHelper.h,
TransformationHelper.h, native/cpu/DistributionTemplates.h as shipped with torch 2.x):

- float32 uniform: 24 low bits of one draw times 2^-24, then x * (to - from) + from in float32
  (one FMA in PyTorch's AVX builds); float64: 53 low bits of a 64-bit draw (the first draw is
  the high word) times 2^-53;
- normal on >= 16 contiguous elements: all uniforms first, Box-Muller in blocks of 16 (first 8
  give u1 = 1 - u, next 8 u2), a size not a multiple of 16 redraws 16 uniforms and recomputes
  the last 16; float32 in PyTorch's AVX2 build uses avx_mathfun's Cephes log/sincos (repeated
  here op by op, with the FMAs GCC puts in), elsewhere libm's logf/cosf/sinf; float64 libm's
  log/cos/sin;
- normal on < 16 elements (or a non-contiguous tensor): a scalar Box-Muller on doubles whose
  second value is cached in the generator (part of get_state's bytes);
- integers: draw % range + low, a 64-bit draw when range >= 2^28; randperm: Fisher-Yates with
  draw % (n - i); bernoulli (float p), exponential, cauchy, geometric, log-normal: one double
  uniform each; multinomial: exponentials (no replacement) or double uniforms (replacement).

Large arrays go through numba loops (fastnn/backends/numba/torch_rng.py) that give the same
bits as the numpy code here.

TorchGenerator also speaks the part of numpy's Generator interface fastnn's internals use
(random, standard_normal, normal, uniform, integers, permutation, shuffle, choice,
exponential), mapped onto the torch-exact draws.
"""
import math
import struct

import numpy as np

DEFAULT_SEED = 67280421310721   # PyTorch's default_rng_seed_val
STATE_BYTES = 5056              # torch.get_rng_state().numel() on the CPU
_N = 624
_F32 = np.float32
_F64 = np.float64
_U32 = np.uint32
_U64 = np.uint64
_CHUNK = 1 << 16                # elements per block of the numpy transforms (cache-sized)
_RAW_CHUNK = 1 << 20            # raw draws held at once
_NUMBA_FROM = 1 << 18           # arrays this large use the numba loops: worth compiling them
_NUMBA_WARM_FROM = 1 << 14      # ... and from this size once they are compiled in this process
_numba_kernels = []


def _numba(n, kernel):
    """fastnn.backends.numba.torch_rng when an array of n elements is worth its loops, else None
    (also where numba cannot load: the numpy code gives the same bits). The first use compiles
    them (seconds; then numba's on-disk cache), so small arrays only use them once warm."""
    if n < _NUMBA_WARM_FROM:
        return None
    if not _numba_kernels:
        if n < _NUMBA_FROM:
            return None
        try:
            from .backends.numba import torch_rng
        except Exception:   # numba missing or broken
            torch_rng = None
        _numba_kernels.append(torch_rng)
    mod = _numba_kernels[0]
    if mod is None or (n < _NUMBA_FROM and not getattr(mod, kernel).signatures):
        return None
    return mod

# PyTorch's state blob: THGeneratorState (seed, left, seeded, next, 624 words as uint64, the
# cached double normal as normal_x/normal_y/normal_rho/normal_is_valid), then the cached float
# normal and its flag, padded to 8 bytes.
_HEAD = struct.Struct("<QiiQ")
_TAIL = struct.Struct("<dddi4xf?3x")


def _torch_cpu_capability():
    """The build of PyTorch's CPU kernels that would run here: 'avx512' (AVX-512 F/BW/VL/DQ),
    'avx2' (AVX2 and FMA) or 'default', as ATen's dispatch picks it (ATEN_CPU_CAPABILITY
    overrides). It decides how a float32 normal is computed, and whether `x * a + b` in the
    kernels is one FMA (GCC contracts it in the AVX builds, not in the default one)."""
    import os
    forced = os.environ.get("ATEN_CPU_CAPABILITY", "").lower()
    if forced in ("default", "avx2", "avx512"):
        return forced
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as f
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__ as f
    if all(f.get(k, False) for k in ("AVX512F", "AVX512BW", "AVX512VL", "AVX512DQ")):
        return "avx512"
    return "avx2" if f.get("AVX2") and f.get("FMA3") else "default"


CAPABILITY = _torch_cpu_capability()
AVX2 = CAPABILITY == "avx2"           # the AVX2 Box-Muller (avx_mathfun's Cephes log/sincos)
CONTRACT = CAPABILITY != "default"     # uniform_'s x * (to - from) + from is one FMA


def _numpy_float64_is_libm():
    """numpy's float64 log/cos/sin are libm's, as PyTorch's, except where numpy dispatches its
    own AVX-512 versions."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as f
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__ as f
    return not f.get("AVX512F", False)


_NUMPY_F64_IS_LIBM = _numpy_float64_is_libm()
_libm_funcs = {}


def _libm(name, x):
    """libm's function `name` (logf, cosf, sinf, log, cos, sin) elementwise on array x, through
    ctypes: PyTorch calls these, and numpy's own SIMD versions differ in the last bit at times.
    numpy's function where libm cannot be loaded."""
    if name not in _libm_funcs:
        f = None
        try:
            import ctypes
            import ctypes.util
            lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
            c = ctypes.c_float if name.endswith("f") else ctypes.c_double
            f = getattr(lib, name)
            f.restype, f.argtypes = c, [c]
            f = np.frompyfunc(f, 1, 1)
        except (OSError, AttributeError):
            f = None
        _libm_funcs[name] = f
    f = _libm_funcs[name]
    dt = x.dtype
    if f is None:
        return getattr(np, name.rstrip("f"))(x)
    return f(x).astype(dt)


# ------------------------------------------------------------------- float helpers
def _bits(a):
    return a.view(np.int32)


def _fma32(a, b, c):
    """Correctly rounded float32 a * b + c (what _mm256_fmadd_ps gives): the product is exact in
    float64; the float64 sum is corrected where rounding it twice could differ from once."""
    p = a.astype(_F64) * b
    s = p + c
    r = s.astype(_F32)
    # s sits exactly halfway between two float32s only if its low 29 mantissa bits are 1000...0;
    # then the error of the float64 sum (TwoSum) says which way the exact value lies
    half = (s.view(np.int64) & ((1 << 29) - 1)) == (1 << 28)
    if half.any():
        c64 = np.broadcast_to(np.asarray(c, _F64), s.shape)
        bb = s - p
        err = (p - (s - bb)) + (c64 - bb)
        idx = np.nonzero(half & (err != 0))
        if idx[0].size:
            toward = np.where(err[idx] > 0, np.inf, -np.inf)
            r[idx] = np.nextafter(s[idx], toward).astype(_F32)
    return r


def _two_prod(a, b):
    """a * b as an unevaluated sum hi + lo, exactly (Dekker/Veltkamp split)."""
    p = a * b
    split = 134217729.0   # 2^27 + 1
    t = split * a
    ah = t - (t - a)
    al = a - ah
    t = split * b
    bh = t - (t - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _fma64(a, b, c):
    """float64 a * b + c rounded once in all but ties of the last step (PyTorch's std::fma)."""
    p, e = _two_prod(np.asarray(a, _F64), b)
    s = p + c
    bb = s - p
    err = (p - (s - bb)) + (c - bb)
    return s + (err + e)


# avx_mathfun's Cephes polynomials, as GCC compiles them for PyTorch's AVX2 build: every
# _mm256_mul_ps feeding an _mm256_add_ps/_sub_ps is contracted into one FMA (-ffp-contract=fast
# with -mfma), the first operand's product where both are products. Found by matching torch's
# output; each step below is one float32 rounding.
_LOG_P = [_F32(c) for c in (-1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1,
                            1.4249322787E-1, -1.6668057665E-1, 2.0000714765E-1,
                            -2.4999993993E-1, 3.3333331174E-1)]


def _fma_scalar(a, b, c):
    """transformation::normal's val * std + mean, one FMA in PyTorch's AVX builds."""
    if b == 1.0 and c == 0.0:
        return a + 0.0
    if not CONTRACT:
        return a * b + c
    return float(_fma64(np.float64(a), b, c))


def _log256_ps(x):
    """avx_mathfun's log256_ps (Cephes logf) for float32 x > 0."""
    one = _F32(1)
    x = np.maximum(x, _F32(1.17549435e-38))
    b = _bits(x)
    e = ((b.view(_U32) >> 23).astype(np.int32) - 127).astype(_F32) + one
    x = ((b & ~0x7f800000) | 0x3f000000).view(_F32)      # mantissa, scaled to [0.5, 1)
    mask = x < _F32(0.707106781186547524)
    tmp = np.where(mask, x, _F32(0))
    x = x - one
    e = e - np.where(mask, one, _F32(0))
    x = x + tmp
    z = x * x
    y = np.full_like(x, _F32(7.0376836292E-2))
    for c in _LOG_P:
        y = _fma32(y, x, c)
    y = _fma32(y * x, z, e * _F32(-2.12194440e-4))
    y = _fma32(-z, _F32(0.5), y)
    return _fma32(e, _F32(0.693359375), x + y)


def _sincos256_ps(x):
    """avx_mathfun's sincos256_ps (Cephes sinf/cosf) for float32 x >= 0."""
    y = x * _F32(1.27323954473516)
    j = (y.astype(np.int32) + 1) & ~1
    y = j.astype(_F32)
    sign_sin = (j & 4) << 29
    sign_cos = (~(j - 2) & 4) << 29
    poly = (j & 2) == 0
    x = _fma32(y, _F32(-0.78515625), x)
    x = _fma32(y, _F32(-2.4187564849853515625e-4), x)
    x = _fma32(y, _F32(-3.77489497744594108e-8), x)
    z = x * x
    c = _fma32(np.full_like(z, _F32(2.443315711809948E-005)), z, _F32(-1.388731625493765E-003))
    c = _fma32(c, z, _F32(4.166664568298827E-002)) * z
    c = _fma32(c, z, -(z * _F32(0.5))) + _F32(1)
    s = _fma32(np.full_like(z, _F32(-1.9515295891E-4)), z, _F32(8.3321608736E-3))
    s = _fma32(s, z, _F32(-1.6666654611E-1)) * z
    s = _fma32(s, x, x)
    sin = np.where(poly, s, c)
    cos = np.where(poly, c, s)
    # the AVX code adds the unselected polynomial's masked +0.0, which turns -0.0 into +0.0
    sin = sin + _F32(0)
    cos = cos + _F32(0)
    sin = (_bits(sin) ^ sign_sin).view(_F32)
    cos = (_bits(cos) ^ sign_cos).view(_F32)
    return sin, cos


def _box_muller16_f32(u, mean, std):
    """Blocks of 16 float32 uniforms (rows of u, shape (m, 16)) to normals, as PyTorch's
    NormalFill16<float>."""
    out = np.empty_like(u)
    if AVX2:
        radius = np.sqrt(_F32(-2) * _log256_ps(_F32(1) - u[:, :8]))
        sin, cos = _sincos256_ps(_F32(2.0 * math.pi) * u[:, 8:])
        n1, n2 = radius * cos, radius * sin
        if std == 1 and mean == 0:   # fma(n, 1, +0) = n + 0: only -0.0 changes (to +0.0)
            out[:, :8], out[:, 8:] = n1 + _F32(0), n2 + _F32(0)
        else:
            out[:, :8] = _fma32(n1, _F32(std), _F32(mean))
            out[:, 8:] = _fma32(n2, _F32(std), _F32(mean))
    else:   # the portable NormalFill16<float>: libm's logf/cosf/sinf, a float32 angle, fmaf
        radius = np.sqrt(_F32(-2) * _libm("logf", _F32(1) - u[:, :8]))
        theta = ((2.0 * math.pi) * u[:, 8:].astype(_F64)).astype(_F32)
        out[:, :8] = _fma32(radius * _libm("cosf", theta), _F32(std), _F32(mean))
        out[:, 8:] = _fma32(radius * _libm("sinf", theta), _F32(std), _F32(mean))
    return out


def _box_muller16_f64(u, mean, std):
    def f(name, x):
        return getattr(np, name)(x) if _NUMPY_F64_IS_LIBM else _libm(name, x)
    radius = np.sqrt(-2.0 * f("log", 1.0 - u[:, :8]))
    theta = (2.0 * math.pi) * u[:, 8:]
    n1, n2 = radius * f("cos", theta), radius * f("sin", theta)
    out = np.empty_like(u)
    if std == 1 and mean == 0:
        out[:, :8], out[:, 8:] = n1 + 0.0, n2 + 0.0
    else:
        out[:, :8], out[:, 8:] = _fma64(n1, std, mean), _fma64(n2, std, mean)
    return out


def _shape(size):
    if size is None:
        return ()
    if isinstance(size, (int, np.integer)):
        return (int(size),)
    return tuple(int(s) for s in size)


class _BitGeneratorView:
    """gen.bit_generator.state, as on a numpy Generator: a JSON-friendly dict that restores the
    whole stream (fastnn's GPT checkpoints keep it)."""

    def __init__(self, gen):
        self._gen = gen

    @property
    def state(self):
        return {"bit_generator": "torch_mt19937", "state": self._gen.get_state_bytes().hex()}

    @state.setter
    def state(self, value):
        if not isinstance(value, dict) or "bit_generator" not in value:
            raise ValueError("bit_generator.state: expected the dict that bit_generator.state "
                             "returned")
        if value["bit_generator"] == "torch_mt19937":
            self._gen.set_state_bytes(bytes.fromhex(value["state"]))
            return
        # a numpy state, e.g. in a checkpoint from before fastnn's streams were PyTorch's: it
        # cannot continue that stream, so it reseeds from it (a resumed run stays repeatable)
        import hashlib
        import json
        import warnings
        blob = json.dumps(value, sort_keys=True, default=str).encode()
        seed = int.from_bytes(hashlib.sha256(blob).digest()[:8], "little")
        warnings.warn(f"a {value['bit_generator']} generator state (saved by an older fastnn) "
                      f"cannot be restored on fastnn's PyTorch-compatible generator; reseeded "
                      f"from it instead", stacklevel=2)
        self._gen.manual_seed(seed)


class TorchGenerator:
    """One PyTorch CPU generator: MT19937 with PyTorch's seeding, state layout and transforms."""

    def __init__(self, seed=DEFAULT_SEED):
        self._bg = np.random.MT19937(0)
        self.manual_seed(seed)

    # ----------------------------------------------------------- seeding and state
    def manual_seed(self, seed):
        s = int(seed) % 2 ** 64
        st = np.random.RandomState(s & 0xffffffff).get_state(legacy=False)["state"]
        self._bg.state = {"bit_generator": "MT19937", "state": st}
        self._seed = s
        self._fresh = True           # seeded, nothing drawn (PyTorch's left=1, next=0)
        self._normal_double = None   # Box-Muller's cached second value
        self._normal_float = None
        return self

    def initial_seed(self):
        return self._seed

    def get_state_bytes(self):
        st = self._bg.state["state"]
        pos = int(st["pos"])
        left, nxt = (1, 0) if self._fresh else (_N + 1 - pos, pos)
        head = _HEAD.pack(self._seed, left, 1, nxt)
        words = np.asarray(st["key"], _U32).astype("<u8").tobytes()
        nd, nf = self._normal_double, self._normal_float
        tail = _TAIL.pack(0.0, 0.0 if nd is None else nd, 0.0, nd is not None,
                          0.0 if nf is None else nf, nf is not None)
        return head + words + tail

    def set_state_bytes(self, blob):
        blob = bytes(blob)
        if len(blob) != STATE_BYTES:
            raise RuntimeError(f"Expected either a THGeneratorState of size 5048 or a "
                               f"CPUGeneratorImplState of size {STATE_BYTES} but found the "
                               f"input RNG state size to be {len(blob)}")
        seed, left, seeded, nxt = _HEAD.unpack_from(blob, 0)
        if not (seeded and 0 < left <= _N and nxt <= _N):
            raise RuntimeError("The input RNG state is invalid; please use torch.get_rng_state "
                               "to obtain a valid RNG state")
        key = np.frombuffer(blob, "<u8", _N, _HEAD.size).astype(_U32)
        _, ny, _, valid, nf, fvalid = _TAIL.unpack_from(blob, _HEAD.size + 8 * _N)
        self._bg.state = {"bit_generator": "MT19937",
                          "state": {"key": key, "pos": _N if left == 1 else _N + 1 - left}}
        self._seed = seed
        self._fresh = left == 1 and nxt == 0
        self._normal_double = ny if valid else None    # PyTorch keeps it in normal_y
        self._normal_float = nf if fvalid else None
        return self

    # ----------------------------------------------------------- raw draws
    def raw32(self, n):
        """The engine's next n 32-bit outputs (uint32)."""
        if n:
            self._fresh = False
        return self._bg.random_raw(int(n)).astype(_U32)

    def raw64(self, n):
        """n 64-bit draws, each two 32-bit outputs, the first the high word (random64)."""
        r = self._bg.random_raw(2 * int(n))
        if n:
            self._fresh = False
        return (r[0::2] << _U64(32)) | r[1::2]

    # ----------------------------------------------------------- PyTorch's distributions
    def uniform_fill(self, n, dtype=_F32, low=0.0, high=1.0):
        """n uniforms in [low, high) of dtype (float32 or float64), as Tensor.uniform_."""
        dtype = np.dtype(dtype)
        n = int(n)
        scaled = (low, high) != (0.0, 1.0)
        if dtype == _F64:
            kern = _numba(n, "uniform_f64") if CONTRACT or not scaled else None
            if kern is not None:
                out = np.empty(n, _F64)
                span, lo = float(high) - float(low), float(low)
                self._chunks(n, 2, lambda raw, o: kern.uniform_f64(raw, lo, span, scaled, o), out)
                return out
            x = (self.raw64(n) & _U64((1 << 53) - 1)).astype(_F64) * 2.0 ** -53
            if scaled:
                span, lo = float(high) - float(low), float(low)
                x = _fma64(x, span, lo) if CONTRACT else x * span + lo
            return x
        lo, hi = _F32(low), _F32(high)
        kern = _numba(n, "uniform_f32") if scaled and CONTRACT else None
        if kern is not None:
            x = np.empty(n, _F32)
            self._chunks(n, 1, lambda raw, o: kern.uniform_f32(raw, lo, hi - lo, hi, o), x)
            return x if dtype == _F32 else x.astype(dtype)
        x = self._unit_f32(n)
        if scaled:
            # contracted into one FMA in PyTorch's AVX builds
            x = _fma32(x, hi - lo, lo) if CONTRACT else x * (hi - lo) + lo
            x[x == hi] = lo      # a float32 rounding onto `high` becomes `low`, as PyTorch
        if dtype != _F32:
            x = x.astype(dtype)
        return x

    def _chunks(self, n, per, fill, out):
        """fill(raw, out[i:i + k]) over blocks of k elements, each from k * per raw draws."""
        for i in range(0, n, _RAW_CHUNK):
            k = min(_RAW_CHUNK, n - i)
            fill(self._bg.random_raw(k * per), out[i:i + k])
        if n:
            self._fresh = False
        return out

    def _unit_f32(self, n):
        """n float32 uniforms in [0, 1): the 24 low bits of each draw times 2^-24."""
        n = int(n)
        kern = _numba(n, "unit_f32")
        out = np.empty(n, _F32)
        for i in range(0, n, _RAW_CHUNK):
            raw = self._bg.random_raw(min(_RAW_CHUNK, n - i))
            if kern is not None:
                kern.unit_f32(raw, out[i:i + raw.size])
            else:
                out[i:i + raw.size] = (raw & _U64(0xffffff)).astype(_F32) * _F32(2.0 ** -24)
        if n:
            self._fresh = False
        return out

    def _scalar_normal(self, mean, std):
        """at::normal_distribution<double>: Box-Muller on two double uniforms, the sine value
        kept for the next call."""
        if self._normal_double is not None:
            z, self._normal_double = self._normal_double, None
            return _fma_scalar(z, std, mean)
        u1, u2 = self.uniform_fill(2, _F64)
        r = math.sqrt(-2.0 * math.log1p(-float(u2)))
        theta = 2.0 * math.pi * float(u1)
        self._normal_double = r * math.sin(theta)
        return _fma_scalar(r * math.cos(theta), std, mean)

    def _scalar_normals(self, n, mean, std):
        """n calls of _scalar_normal, vectorised: the cached value first, then the pairs
        (cos, sin) of Box-Muller on 2 double uniforms each; an odd count leaves a sine cached."""
        n = int(n)
        if n < 4:
            return np.array([self._scalar_normal(mean, std) for _ in range(n)], _F64)
        head = []
        if self._normal_double is not None:
            head, self._normal_double = [self._normal_double], None
        pairs = (n - len(head) + 1) // 2
        u = self.uniform_fill(2 * pairs, _F64)

        def f(name, x):
            return getattr(np, name)(x) if _NUMPY_F64_IS_LIBM else _libm(name, x)
        r = np.sqrt(-2.0 * f("log1p", -u[1::2]))
        theta = (2.0 * math.pi) * u[0::2]
        z = np.empty(2 * pairs, _F64)
        z[0::2], z[1::2] = r * f("cos", theta), r * f("sin", theta)
        z = np.concatenate([np.asarray(head, _F64), z])
        if len(z) > n:
            self._normal_double = float(z[n])
            z = z[:n]
        if std == 1.0 and mean == 0.0:
            return z + 0.0
        return _fma64(z, std, mean) if CONTRACT else z * std + mean

    def normal_fill(self, n, dtype=_F32, mean=0.0, std=1.0, scalar=False):
        """n normals as Tensor.normal_(mean, std) on a contiguous tensor of n elements (scalar:
        on a non-contiguous one, which PyTorch fills element by element)."""
        dtype = np.dtype(dtype)
        n = int(n)
        if n < 16 or scalar:
            return self._scalar_normals(n, float(mean), float(std)).astype(dtype)
        work = _F64 if dtype == _F64 else _F32
        name = "box_muller16_f64" if work == _F64 else \
            "box_muller16_f32" if AVX2 else "box_muller16_f32_portable"
        kern = _numba(n, name)
        if kern is not None:
            fill, m, s = getattr(kern, name), work(mean), work(std)
            out = self._unit_f32(n) if work == _F32 else self.uniform_fill(n, _F64)
            fill(out[:n - n % 16], m, s)
            if n % 16:
                tail = self.uniform_fill(16, work)
                fill(tail, m, s)
                out[n - 16:] = tail
            return out if dtype == work else out.astype(dtype)
        bm = _box_muller16_f64 if work == _F64 else _box_muller16_f32
        m = n // 16
        out = np.empty(n, work)
        done = 0
        while done < n:   # the uniforms come in order: draw and transform cache-sized blocks
            k = min(_CHUNK, n - done)
            out[done:done + k] = self.uniform_fill(k, work)
            done += k
        full = out[:16 * m].reshape(m, 16)
        for i in range(0, m, _CHUNK // 16):
            full[i:i + _CHUNK // 16] = bm(full[i:i + _CHUNK // 16], mean, std)
        if n % 16:
            out[n - 16:] = bm(self.uniform_fill(16, work).reshape(1, 16), mean, std)[0]
        return out if dtype == work else out.astype(dtype)

    def integers_from_to(self, n, low, high):
        """n integers in [low, high) as random_(low, high)/randint: draw % range + low (int64)."""
        rng = int(high) - int(low)
        if rng <= 0:
            raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got "
                               f"from={low} >= to={high}")
        kern = _numba(n, "randint32") if rng < 1 << 28 else None
        if kern is not None:
            out = np.empty(int(n), np.int64)
            return self._chunks(int(n), 1, lambda raw, o: kern.randint32(raw, rng, int(low), o),
                                out)
        if rng >= 1 << 28:
            v = self.raw64(n) % _U64(rng)
        else:
            v = self.raw32(n) % _U32(rng)
        return v.astype(np.int64) + np.int64(low)

    def random_default(self, n, dtype):
        """Tensor.random_() without bounds: [0, 2^mantissa] for floats, [0, max] for ints."""
        dtype = np.dtype(dtype)
        if dtype == np.bool_:
            return (self.raw32(n) & _U32(1)).astype(np.bool_)
        if dtype == _F64:
            return (self.raw64(n) % _U64((1 << 53) + 1)).astype(_F64)
        if dtype == np.int64:
            return (self.raw64(n) % _U64(1 << 63)).astype(np.int64)
        if dtype.kind == "f":
            return (self.raw32(n) % _U32((1 << 24) + 1)).astype(dtype)
        top = np.iinfo(dtype).max + 1
        return (self.raw32(n).astype(_U64) % _U64(top)).astype(dtype)

    def randperm(self, n):
        """torch.randperm(n): Fisher-Yates, swapping i with i + draw % (n - i)."""
        n = int(n)
        if n < 0:
            raise RuntimeError(f"n must be non-negative, got{n}")
        if n >= 1 << 32:
            raise RuntimeError("randperm: n >= 2^32 is not supported")
        if n < 2:
            return np.arange(n, dtype=np.int64)
        offsets = self.raw32(n - 1) % np.arange(n, 1, -1, dtype=_U32)   # vectorised draws
        kern = _numba(n, "fisher_yates")
        if kern is not None:   # the swaps depend on each other: a compiled loop
            perm = np.arange(n, dtype=np.int64)
            kern.fisher_yates(perm, offsets.astype(np.int64))
            return perm
        perm = list(range(n))
        for i, k in enumerate(offsets.tolist()):
            j = i + k
            perm[i], perm[j] = perm[j], perm[i]
        return np.array(perm, np.int64)

    def bernoulli_scalar(self, n, p):
        """n draws of Bernoulli(p) for a float p, as Tensor.bernoulli_(p): double uniforms."""
        return self.uniform_fill(n, _F64) < float(p)

    def bernoulli_tensor(self, p):
        """Bernoulli draws for an array of probabilities p, as torch.bernoulli(p): a double
        uniform for float64 p, a float uniform for float32 p."""
        p = np.asarray(p)
        if np.any((p < 0) | (p > 1)) or np.isnan(p).any():
            raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.")
        if p.dtype == _F64:
            u = self.uniform_fill(p.size, _F64)
        else:
            u = self.uniform_fill(p.size, _F32)
            p = p.astype(_F32, copy=False)
        return (u.reshape(p.shape) < p)

    def dropout_mask(self, shape, p, dtype=_F32):
        """PyTorch's CPU dropout noise for an input of this shape: bernoulli_(1 - p) then
        divided by (1 - p) in the input's dtype; the output is input * noise."""
        dt = np.dtype(dtype)
        keep = self.bernoulli_scalar(math.prod(shape), 1.0 - p).reshape(shape)
        return keep * (dt.type(1) / dt.type(1.0 - p))

    def exponential_fill(self, n, lambd=1.0):
        """Tensor.exponential_(lambd): -1/lambd * log1p(-u) on double uniforms (float64)."""
        return (-1.0 / float(lambd)) * np.log1p(-self.uniform_fill(n, _F64))

    def cauchy(self, n, median=0.0, sigma=1.0):
        u = self.uniform_fill(n, _F64)
        return median + sigma * np.tan(math.pi * (u - 0.5))

    def geometric(self, n, p):
        u = self.uniform_fill(n, _F64)
        return np.ceil(np.log(u) / math.log1p(-float(p)))

    def log_normal(self, n, mean=1.0, std=2.0):
        return np.exp(self._scalar_normals(n, float(mean), float(std)))

    # ----------------------------------------------------------- numpy Generator interface
    @property
    def bit_generator(self):
        return _BitGeneratorView(self)

    def random(self, size=None, dtype=_F64, out=None):
        shape = _shape(size)
        x = self.uniform_fill(math.prod(shape), dtype).reshape(shape)
        if out is not None:
            out[...] = x
            return out
        return x if size is not None else float(x)

    def standard_normal(self, size=None, dtype=_F64, out=None):
        shape = _shape(size)
        x = self.normal_fill(math.prod(shape), dtype).reshape(shape)
        if out is not None:
            out[...] = x
            return out
        return x if size is not None else float(x)

    def normal(self, loc=0.0, scale=1.0, size=None):
        shape = _shape(size)
        x = self.normal_fill(math.prod(shape), _F64, loc, scale).reshape(shape)
        return x if size is not None else float(x)

    def uniform(self, low=0.0, high=1.0, size=None):
        shape = _shape(size)
        x = self.uniform_fill(math.prod(shape), _F64, low, high).reshape(shape)
        return x if size is not None else float(x)

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        if high is None:
            low, high = 0, low
        high = int(high) + (1 if endpoint else 0)
        shape = _shape(size)
        x = self.integers_from_to(math.prod(shape), low, high).astype(dtype).reshape(shape)
        return x if size is not None else x.item()

    def permutation(self, x):
        if isinstance(x, (int, np.integer)):
            return self.randperm(x)
        arr = np.asarray(x)
        return arr[self.randperm(len(arr))]

    def shuffle(self, x):
        x[...] = np.asarray(x)[self.randperm(len(x))]

    def choice(self, a, size=None, replace=True, p=None, shuffle=True):
        pool = np.arange(a) if isinstance(a, (int, np.integer)) else np.asarray(a)
        n = len(pool)
        shape = _shape(size)
        k = math.prod(shape)
        if p is None:
            idx = (self.integers_from_to(k, 0, n) if replace else self.randperm(n)[:k])
        else:
            p = np.asarray(p, _F64)
            if replace:
                cdf = np.cumsum(p)
                idx = np.searchsorted(cdf / cdf[-1], self.uniform_fill(k, _F64), side="right")
                idx = np.minimum(idx, n - 1)
            else:
                keys = p / self.exponential_fill(n)
                idx = np.argsort(-keys, kind="stable")[:k]
        out = pool[idx].reshape(shape)
        return out if size is not None else out.item()

    def exponential(self, scale=1.0, size=None):
        shape = _shape(size)
        x = self.exponential_fill(math.prod(shape), 1.0 / scale).reshape(shape)
        return x if size is not None else float(x)

    # ----------------------------------------------------------- sampling
    def multinomial(self, p, num_samples, replacement):
        """torch.multinomial on rows p (N, C) of float32/float64 weights -> int64 (N, S).
        Without replacement, or for one sample: argmax/top-k of p / q with q ~ Exp(1) in p's
        dtype; with replacement: a double uniform per sample, searched in the row's cumulative
        sums (accumulated in p's dtype, divided by the total, the last set to 1)."""
        n, c = p.shape
        s = int(num_samples)
        if not replacement or s == 1:
            with np.errstate(invalid="ignore"):
                bad = not (np.all(p >= 0) and np.all(p < np.inf))
            if bad:
                raise ValueError("multinomial: probability tensor contains either `inf`, `nan` "
                                 "or element < 0")
            if np.any(p.sum(axis=1) == 0):
                raise ValueError("multinomial: invalid multinomial distribution (sum of "
                                 "probabilities <= 0)")
            q = self.exponential_fill(p.size).astype(p.dtype).reshape(p.shape)
            with np.errstate(divide="ignore", invalid="ignore"):
                q = p / q
            if s == 1:
                return np.argmax(q, axis=1).astype(np.int64)[:, None]
            return np.argsort(-q, axis=1, kind="stable")[:, :s].astype(np.int64)
        if np.any(p < 0):
            raise ValueError("multinomial: invalid multinomial distribution (encountering "
                             "probability entry < 0)")
        if not np.all(np.isfinite(p)):
            raise ValueError("multinomial: invalid multinomial distribution (encountering "
                             "probability entry = infinity or NaN)")
        cum = np.cumsum(p, axis=1, dtype=p.dtype)      # sequential, in p's precision
        total = cum[:, -1:].copy()
        if np.any(total <= 0):
            raise ValueError("multinomial: invalid multinomial distribution (sum of "
                             "probabilities <= 0)")
        cum = (cum / total).astype(_F64)
        cum[:, -1] = 1.0
        u = self.uniform_fill(n * s, _F64).reshape(n, s)
        out = np.empty((n, s), np.int64)
        for r in range(n):
            out[r] = np.searchsorted(cum[r], u[r], side="left")
        return out


class NumpyStream:
    """A numpy Generator passed as `generator=` (fastnn accepts one): the TorchGenerator
    methods on numpy's own draws, with numpy's streams (nothing here matches PyTorch)."""

    def __init__(self, rng):
        self.rng = rng

    def __getattr__(self, name):      # random, integers, permutation, ... : numpy's own
        return getattr(self.rng, name)

    def uniform_fill(self, n, dtype=_F32, low=0.0, high=1.0):
        dt = np.dtype(dtype)
        x = self.rng.random(int(n), dtype=dt if dt in (_F32, _F64) else _F64)
        return (x * (high - low) + low).astype(dt, copy=False)

    def normal_fill(self, n, dtype=_F32, mean=0.0, std=1.0, scalar=False):
        dt = np.dtype(dtype)
        x = self.rng.standard_normal(int(n), dtype=dt if dt in (_F32, _F64) else _F64)
        return (x * std + mean).astype(dt, copy=False)

    def integers_from_to(self, n, low, high):
        return self.rng.integers(low, high, int(n), dtype=np.int64)

    def random_default(self, n, dtype):
        dt = np.dtype(dtype)
        top = 2 if dt == np.bool_ else (1 << np.finfo(dt).nmant + 1) + 1 if dt.kind == "f" \
            else int(np.iinfo(dt).max) + 1
        return self.rng.integers(0, top, int(n), dtype=np.uint64).astype(dt)

    def randperm(self, n):
        return self.rng.permutation(int(n)).astype(np.int64)

    def bernoulli_scalar(self, n, p):
        return self.rng.random(int(n)) < p

    def bernoulli_tensor(self, p):
        p = np.asarray(p)
        return self.rng.random(p.shape) < p

    def exponential_fill(self, n, lambd=1.0):
        return self.rng.exponential(1.0 / lambd, int(n))

    def cauchy(self, n, median=0.0, sigma=1.0):
        return median + sigma * self.rng.standard_cauchy(int(n))

    def geometric(self, n, p):
        return self.rng.geometric(p, int(n)).astype(_F64)

    def log_normal(self, n, mean=1.0, std=2.0):
        return self.rng.lognormal(mean, std, int(n))

    def multinomial(self, p, num_samples, replacement):
        return TorchGenerator.multinomial(self, p, num_samples, replacement)

    def dropout_mask(self, shape, p, dtype=_F32):
        return TorchGenerator.dropout_mask(self, shape, p, dtype)
