"""CUDA kernels: GEMM (see fastnn/backends/reference.py for the math).

c[z] = alpha * op(a[z]) @ op(b[z]) + beta * c[z], one batch entry z per grid z-slice.

Each block computes a BM x BN tile of c. For every BK-wide slice of the inner dimension the
block copies an A tile and a B tile into shared memory, both stored k-major (tile[k, m]) so the
inner loop reads TM values of A and TN values of B for one k and does TM*TN FMAs on a
register tile. Double buffering: each operand has two shared tiles; while the block computes on
one, each thread's share of the next slice is already loading from global memory into
registers, and is stored into the other tile afterwards (one barrier per slice, not two).
Thread (tx, ty) owns rows ty + i*TY and columns tx + j*TX (i < TM, j < TN): interleaved
ownership keeps a warp's shared-memory reads conflict-free and its stores to c
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
    # Two buffers per operand (double buffering); +1 column of padding: the k-fastest stores of
    # a non-transposed A (and of a transposed B) would otherwise hit one shared-memory bank 16
    # times.
    A_SHAPE = (2, BK, BM + 1)
    B_SHAPE = (2, BK, BN + 1)
    ACC_SHAPE = (TM, TN)
    zero = dtype(0)

    # Two 256-thread blocks per SM need <= 128 registers a thread: ptxas fits the float32 4x4 tile
    # (and its 8 prefetch registers) in that without spilling; the 8x8 tile and float64 would
    # spill, so they keep one block/SM.
    two_blocks_per_sm = TM * TN <= 16 and dtype == np.float32 and NT <= 256

    # Which element of a slice copy r of thread tid moves: e = tid + r * NT, split into a
    # (row, column) of the slice as stored in global memory (`width` contiguous elements a row).
    # When NT is a multiple of the width, the column is the same for every r and the row steps by
    # NT // width: the loads then keep two indices live, not one per copy (registers matter:
    # the prefetched slice already holds A_LOADS + B_LOADS of them).
    def slice_position(width):
        if NT % width == 0:
            step = NT // width

            @cuda.jit(device=True)
            def position(tid, r):
                return tid // width + r * step, tid % width
        else:
            @cuda.jit(device=True)
            def position(tid, r):
                e = tid + r * NT
                return e // width, e % width
        return position

    a_pos = slice_position(BM if trans_a else BK)   # a is (K, M) when trans_a, else (M, K)
    b_pos = slice_position(BK if trans_b else BN)   # b is (N, K) when trans_b, else (K, N)

    @cuda.jit(device=True)
    def load_a(a, z, m0, k0, M, K, tid, regs):
        """This thread's share of the A slice [m0:m0+BM, k0:k0+BK] into registers (0 outside);
        consecutive threads read consecutive addresses in either layout."""
        for r in range(A_LOADS):
            row, col = a_pos(tid, r)
            val = zero
            if trans_a:
                if k0 + row < K and m0 + col < M:
                    val = a[z, k0 + row, m0 + col]
            else:
                if m0 + row < M and k0 + col < K:
                    val = a[z, m0 + row, k0 + col]
            regs[r] = val

    @cuda.jit(device=True)
    def store_a(a_tile, buf, tid, regs):
        for r in range(A_LOADS):
            row, col = a_pos(tid, r)
            if trans_a:
                a_tile[buf, row, col] = regs[r]
            else:
                a_tile[buf, col, row] = regs[r]

    @cuda.jit(device=True)
    def load_b(b, z, n0, k0, N, K, tid, regs):
        for r in range(B_LOADS):
            row, col = b_pos(tid, r)
            val = zero
            if trans_b:
                if n0 + row < N and k0 + col < K:
                    val = b[z, n0 + row, k0 + col]
            else:
                if k0 + row < K and n0 + col < N:
                    val = b[z, k0 + row, n0 + col]
            regs[r] = val

    @cuda.jit(device=True)
    def store_b(b_tile, buf, tid, regs):
        for r in range(B_LOADS):
            row, col = b_pos(tid, r)
            if trans_b:
                b_tile[buf, col, row] = regs[r]
            else:
                b_tile[buf, row, col] = regs[r]

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
        a_next = cuda.local.array(A_LOADS, dtype)   # the next k-slice, in flight in registers
        b_next = cuda.local.array(B_LOADS, dtype)
        for z in range(cuda.blockIdx.z, c.shape[0], cuda.gridDim.z):
            for i in range(TM):
                for j in range(TN):
                    acc[i, j] = zero
            load_a(a, z, m0, 0, M, K, tid, a_next)
            load_b(b, z, n0, 0, N, K, tid, b_next)
            store_a(a_tile, 0, tid, a_next)
            store_b(b_tile, 0, tid, b_next)
            cuda.syncthreads()
            cur = 0
            for k0 in range(0, K, BK):
                # Issue the global loads of slice k0 + BK first: their latency hides behind
                # this slice's FMAs. They land in the other shared buffer, which every thread
                # finished reading before the previous barrier, so one barrier per slice does.
                more = k0 + BK < K          # the same for the whole block: barriers stay uniform
                if more:
                    load_a(a, z, m0, k0 + BK, M, K, tid, a_next)
                    load_b(b, z, n0, k0 + BK, N, K, tid, b_next)
                for kk in range(BK):
                    for i in range(TM):
                        a_frag[i] = a_tile[cur, kk, ty + i * TY]
                    for j in range(TN):
                        b_frag[j] = b_tile[cur, kk, tx + j * TX]
                    for i in range(TM):
                        for j in range(TN):
                            acc[i, j] += a_frag[i] * b_frag[j]
                if more:
                    store_a(a_tile, 1 - cur, tid, a_next)
                    store_b(b_tile, 1 - cur, tid, b_next)
                cuda.syncthreads()
                cur = 1 - cur
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
