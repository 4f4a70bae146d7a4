"""CUDA kernels: GEMM (see fastnn/backends/reference.py for the math).

c[z] = alpha * op(a[z]) @ op(b[z]) + beta * c[z], one batch entry z per grid z-slice.

Each block computes a BM x BN tile of c. For every BK-wide slice of the inner dimension the
block copies an A tile and a B tile into shared memory, both stored k-major (tile[k, m]) so the
inner loop reads TM values of A and TN values of B for one k and does TM*TN FMAs on a
register tile. Thread (tx, ty) owns rows ty + i*TY and columns tx + j*TX (i < TM, j < TN):
interleaved ownership keeps a warp's shared-memory reads conflict-free and its stores to c
coalesced. The transposes only change how tiles are loaded: each variant is compiled
separately, so the inner loop is the same for all four.

Tile sizes come from common.py's launch config: 64x64 blocks with 4x4 per thread, or 128x128
with 8x8 (half the shared-memory reads per FMA) once the 128x128 tiles alone fill every SM.
Grid x walks M (limit 2^31 - 1), y walks N, z the batch (a grid-stride loop past 65535).
"""
import functools

import numpy as np
from numba import cuda

from .common import (device_empty, jit_kernel, launch, launch_config, scalar, sm_count,
                          to_device, to_host)


_MAX_GRID_Z = 65535


@functools.cache
def _gemm_kernel(dtype, trans_a, trans_b, tile):
    BM, BN, BK, TM, TN = tile
    TX = BN // TN                      # threads along n
    TY = BM // TM                      # threads along m
    NT = TX * TY
    A_LOADS = BM * BK // NT            # elements of the A tile each thread copies
    B_LOADS = BN * BK // NT
    assert BM % TM == 0 and BN % TN == 0 and A_LOADS * NT == BM * BK and B_LOADS * NT == BN * BK
    # +1 column of padding: the k-fastest stores of a non-transposed A (and of a transposed B)
    # would otherwise hit one shared-memory bank 16 times.
    A_SHAPE = (BK, BM + 1)
    B_SHAPE = (BK, BN + 1)
    ACC_SHAPE = (TM, TN)
    zero = dtype(0)

    # Two 256-thread blocks per SM need <= 128 registers a thread: ptxas fits the float32 4x4 tile
    # in that without spilling; the 8x8 tile and float64 would spill, so they keep one block/SM.
    two_blocks_per_sm = TM * TN <= 16 and dtype == np.float32 and NT <= 256

    @jit_kernel(max_registers=128 if two_blocks_per_sm else None)
    def gemm_tiled(a, b, c, alpha, beta):
        M = c.shape[1]
        N = c.shape[2]
        K = a.shape[1] if trans_a else a.shape[2]
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * TX + tx
        m0 = cuda.blockIdx.x * BM
        n0 = cuda.blockIdx.y * BN
        a_tile = cuda.shared.array(A_SHAPE, dtype)
        b_tile = cuda.shared.array(B_SHAPE, dtype)
        acc = cuda.local.array(ACC_SHAPE, dtype)
        a_frag = cuda.local.array(TM, dtype)
        b_frag = cuda.local.array(TN, dtype)
        for z in range(cuda.blockIdx.z, c.shape[0], cuda.gridDim.z):
            for i in range(TM):
                for j in range(TN):
                    acc[i, j] = zero
            for k0 in range(0, K, BK):
                for r in range(A_LOADS):
                    e = tid + r * NT
                    if trans_a:        # a is (K, M): consecutive threads read consecutive m
                        kk = e // BM
                        mm = e - kk * BM
                        val = zero
                        if k0 + kk < K and m0 + mm < M:
                            val = a[z, k0 + kk, m0 + mm]
                    else:              # a is (M, K): consecutive threads read consecutive k
                        mm = e // BK
                        kk = e - mm * BK
                        val = zero
                        if m0 + mm < M and k0 + kk < K:
                            val = a[z, m0 + mm, k0 + kk]
                    a_tile[kk, mm] = val
                for r in range(B_LOADS):
                    e = tid + r * NT
                    if trans_b:        # b is (N, K)
                        nn = e // BK
                        kk = e - nn * BK
                        val = zero
                        if n0 + nn < N and k0 + kk < K:
                            val = b[z, n0 + nn, k0 + kk]
                    else:              # b is (K, N)
                        kk = e // BN
                        nn = e - kk * BN
                        val = zero
                        if k0 + kk < K and n0 + nn < N:
                            val = b[z, k0 + kk, n0 + nn]
                    b_tile[kk, nn] = val
                cuda.syncthreads()
                for kk in range(BK):
                    for i in range(TM):
                        a_frag[i] = a_tile[kk, ty + i * TY]
                    for j in range(TN):
                        b_frag[j] = b_tile[kk, tx + j * TX]
                    for i in range(TM):
                        for j in range(TN):
                            acc[i, j] += a_frag[i] * b_frag[j]
                cuda.syncthreads()
            for i in range(TM):
                row = m0 + ty + i * TY
                if row < M:
                    for j in range(TN):
                        col = n0 + tx + j * TX
                        if col < N:
                            if beta == zero:   # BLAS rule: c is not read, so NaN there is dropped
                                c[z, row, col] = alpha * acc[i, j]
                            else:
                                c[z, row, col] = alpha * acc[i, j] + beta * c[z, row, col]

    return gemm_tiled


def gemm_device(d_a, d_b, d_c, trans_a, trans_b, alpha, beta):
    """The GEMM on device arrays, c (Z, M, N) updated in place;
    a is (Z, M, K) or (Z, K, M) when trans_a, b is (Z, K, N) or (Z, N, K) when trans_b."""
    dtype = d_c.dtype.type
    z, m, n = d_c.shape
    cfg = launch_config()
    tile = cfg.gemm_tile_large
    BM, BN = tile[:2]
    if z * ((m + BM - 1) // BM) * ((n + BN - 1) // BN) < sm_count():
        tile = cfg.gemm_tile        # too few large tiles to keep every SM busy
    BM, BN, BK, TM, TN = tile
    kernel = _gemm_kernel(dtype, bool(trans_a), bool(trans_b), tile)
    grid = ((m + BM - 1) // BM, (n + BN - 1) // BN, min(z, _MAX_GRID_Z))
    launch(kernel, grid, (BN // TN, BM // TM), d_a, d_b, d_c, scalar(dtype, alpha),
           scalar(dtype, beta))


def gemm_batched(a, b, c, trans_a, trans_b, alpha, beta):
    d_c = to_device(c) if beta != 0 else device_empty(c.shape, c.dtype)
    gemm_device(to_device(a), to_device(b), d_c, trans_a, trans_b, alpha, beta)
    to_host(d_c, c)


def gemm(a, b, c, trans_a, trans_b, alpha, beta):
    # reshape, not a[np.newaxis]: the new axis would get stride 0, and numba then copies such a
    # non-standard layout between host and device element by element (seconds for 1024^2 on H200)
    one = lambda x: x.reshape((1,) + x.shape)  # noqa: E731
    gemm_batched(one(a), one(b), one(c), trans_a, trans_b, alpha, beta)
