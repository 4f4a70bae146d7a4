"""Random numbers generated on the device: counter-based, so a step needs no host data.

Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
keyed bijection of 128-bit counters. Block b of a call maps counter (offset + b, 0) under key
`seed` to four 32-bit words; each thread computes its blocks independently, so the numbers are
the same for any launch configuration, and a (seed, offset) pair names a stream: the same pair
gives the same numbers, and calls whose offsets are at least n apart never share a block.

Per block: 4 float32 uniforms or normals, 2 float64 ones, 2 integers (64 bits each). A caller
that draws n numbers and advances its offset by n (or more) never reuses a block.

Uniforms are in [0, 1) with 24 (float32) or 53 (float64) random bits; normals come from the
Box-Muller transform of two uniforms, the first taken in (0, 1] so the logarithm is finite.
"""
import functools
import math

import numpy as np
from numba import cuda

from .array_kernels import grid_1d
from .common import launch

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@cuda.jit(device=True)
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Ten Philox rounds on a counter (c0..c3) with key (k0, k1), 32-bit values held in uint64
    (the products of two 32-bit words need the 64 bits)."""
    for _ in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        n0 = ((p1 >> _S32) ^ c1 ^ k0) & _MASK
        n2 = ((p0 >> _S32) ^ c3 ^ k1) & _MASK
        c0, c1, c2, c3 = n0, p1 & _MASK, n2, p0 & _MASK
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return c0, c1, c2, c3


PER_BLOCK = {("uniform", 4): 4, ("uniform", 8): 2, ("normal", 4): 4, ("normal", 8): 2,
             ("integer", 1): 2, ("integer", 2): 2, ("integer", 4): 2, ("integer", 8): 2}


@functools.cache
def _kernel(kind, dtype):
    dtype = np.dtype(dtype)
    out_t = dtype.type
    per = PER_BLOCK[(kind, dtype.itemsize)]
    f24 = np.float32(2.0 ** -24)
    f53 = np.float64(2.0 ** -53)
    two_pi32 = np.float32(2 * math.pi)
    two_pi64 = np.float64(2 * math.pi)
    m2_32 = np.float32(-2.0)
    m2_64 = np.float64(-2.0)
    s8, s5, s6 = np.uint64(8), np.uint64(5), np.uint64(6)
    one = np.uint64(1)
    f26 = np.float64(67108864.0)

    @cuda.jit(device=True)
    def unit24(w):                      # [0, 1) from the top 24 bits of a word
        return np.float32(w >> s8) * f24

    @cuda.jit(device=True)
    def unit24_open0(w):                # (0, 1]
        return np.float32((w >> s8) + one) * f24

    @cuda.jit(device=True)
    def unit53(wa, wb):
        return (np.float64(wa >> s5) * f26 + np.float64(wb >> s6)) * f53

    @cuda.jit(device=True)
    def unit53_open0(wa, wb):
        return (np.float64(wa >> s5) * f26 + np.float64(wb >> s6) + np.float64(1.0)) * f53

    @cuda.jit
    def generate(out, n, seed_lo, seed_hi, offset, low, span):
        nblocks = (n + per - 1) // per
        for b in range(cuda.grid(1), nblocks, cuda.gridsize(1)):
            ctr = np.uint64(offset) + np.uint64(b)
            w0, w1, w2, w3 = philox4x32(ctr & _MASK, ctr >> _S32, np.uint64(0), np.uint64(0),
                                        seed_lo, seed_hi)
            i = b * per
            if kind == "uniform" and per == 4:
                if i < n:
                    out[i] = out_t(unit24(w0))
                if i + 1 < n:
                    out[i + 1] = out_t(unit24(w1))
                if i + 2 < n:
                    out[i + 2] = out_t(unit24(w2))
                if i + 3 < n:
                    out[i + 3] = out_t(unit24(w3))
            elif kind == "uniform":
                if i < n:
                    out[i] = out_t(unit53(w0, w1))
                if i + 1 < n:
                    out[i + 1] = out_t(unit53(w2, w3))
            elif kind == "normal" and per == 4:
                r = math.sqrt(m2_32 * math.log(unit24_open0(w0)))
                t = two_pi32 * unit24(w1)
                r2 = math.sqrt(m2_32 * math.log(unit24_open0(w2)))
                t2 = two_pi32 * unit24(w3)
                if i < n:
                    out[i] = out_t(r * math.cos(t))
                if i + 1 < n:
                    out[i + 1] = out_t(r * math.sin(t))
                if i + 2 < n:
                    out[i + 2] = out_t(r2 * math.cos(t2))
                if i + 3 < n:
                    out[i + 3] = out_t(r2 * math.sin(t2))
            elif kind == "normal":
                r = math.sqrt(m2_64 * math.log(unit53_open0(w0, w1)))
                t = two_pi64 * unit53(w2, w3)
                if i < n:
                    out[i] = out_t(r * math.cos(t))
                if i + 1 < n:
                    out[i + 1] = out_t(r * math.sin(t))
            else:
                a = (w0 << _S32) | w1
                c = (w2 << _S32) | w3
                if i < n:
                    out[i] = out_t(low + np.int64(a % span))
                if i + 1 < n:
                    out[i + 1] = out_t(low + np.int64(c % span))
    return generate


def _seed_words(seed):
    seed = int(seed) % (1 << 64)
    return np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32)


def generate(kind, out_buf, n, seed, offset, low=0, high=1):
    """Fill the first n items of the flat device buffer out_buf."""
    if n == 0:
        return
    dtype = out_buf.dtype
    per = PER_BLOCK[(kind, dtype.itemsize)]
    nblocks = (n + per - 1) // per
    blocks, threads = grid_1d(nblocks)
    lo, hi = _seed_words(seed)
    launch(_kernel(kind, dtype), blocks, threads, out_buf, np.int64(n), lo, hi,
           np.uint64(int(offset) % (1 << 64)), np.int64(low), np.uint64(high - low))
