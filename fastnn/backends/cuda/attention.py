"""CUDA kernels: attention forward (flash-style) and backward (see reference.py for the math).

Layout: q (B, H, T, D), k and v (B, H, S, D), viewed as (B*H, T or S, D). A block works on
consecutive rows (grid y) of one batch*head (grid x).

Forward: each query row gets KS threads (attn_key_split); each keeps the row (pre-scaled), an
output accumulator and the running max m and sum l of its share of the row's softmax in
registers. The block walks the keys in tiles copied to shared memory; thread `lane` of a row
takes keys lane, lane + KS, ... of each tile and updates its online softmax:
    s = q.k;  if s > m: acc, l *= exp(m - s); m = s;   p = exp(s - m);  l += p;  acc += p v
so the T x S score matrix is never stored. At the end the KS partial (m, l, acc) of a row are
rescaled to the row's max and added: out = acc / l and lse = m + log(l). Splitting keys gives
KS times more threads than one per row, which small B*H*T needs to fill the GPU.

Backward, with P recomputed from lse (P = exp(s - lse)) and delta_i = sum_d dout_i out_i:
    dS = P * (dout v^T - delta),  dq = dS k * scale,  dk = dS^T q * scale,  dv = P^T dout.
  - attention_delta: one thread per query row;
  - attention_backward_dq: one thread per query row, key/value tiles in shared memory;
  - attention_backward_dkdv: one thread per key row, query/dout tiles in shared memory.
No atomics, so the gradients are deterministic.

D is padded to a compile-time DP (a multiple of 16) so the per-thread loops over D have fixed
trip counts and unroll into registers; padded lanes hold zeros and are never written out.
"""
import functools
import math

import numpy as np
from numba import cuda

from .common import device_empty, launch, launch_config, scalar, to_device, to_host



def _padded_head_dim(d):
    return (d + 15) // 16 * 16


@functools.cache
def _forward_kernel(dtype, DP, BQ, KS, BK):
    """BQ query rows per block, KS threads per row; each thread takes every KS-th key."""
    zero, one = dtype(0), dtype(1)
    neg_inf = dtype(-np.inf)
    NT = BQ * KS
    # +1 column: the KS threads of a row read KS different key rows at once; unpadded, those
    # rows (DP apart) would fall into one shared-memory bank.
    TILE = (BK, DP + 1)
    COMBINE = (BQ, DP) if KS > 1 else (1, 1)

    @cuda.jit
    def attention_forward(q, k, v, out, lse, causal, scale):
        bh = cuda.blockIdx.x
        t = cuda.threadIdx.x
        row = t // KS                      # query row within the block
        lane = t - row * KS                # which of the row's KS key subsets
        # last query blocks first: under the causal mask they have the most keys to visit
        q0 = (cuda.gridDim.y - 1 - cuda.blockIdx.y) * BQ
        i = q0 + row
        T = q.shape[1]
        S = k.shape[1]
        D = q.shape[2]
        k_tile = cuda.shared.array(TILE, dtype)
        v_tile = cuda.shared.array(TILE, dtype)
        combine = cuda.shared.array(COMBINE, dtype)
        row_max = cuda.shared.array(NT, dtype)
        row_sum = cuda.shared.array(NT, dtype)
        q_row = cuda.local.array(DP, dtype)
        acc = cuda.local.array(DP, dtype)
        active = i < T
        for d in range(DP):
            q_row[d] = q[bh, i, d] * scale if active and d < D else zero
            acc[d] = zero
        m = neg_inf
        l = zero
        key_end = min(S, q0 + BQ) if causal else S   # later keys are masked for every row here
        for k0 in range(0, key_end, BK):
            n_keys = min(BK, S - k0)
            for e in range(t, BK * DP, NT):
                r = e // DP
                d = e - r * DP
                inside = r < n_keys and d < D
                k_tile[r, d] = k[bh, k0 + r, d] if inside else zero
                v_tile[r, d] = v[bh, k0 + r, d] if inside else zero
            cuda.syncthreads()
            if active:
                last = min(n_keys, i - k0 + 1) if causal else n_keys   # key j <= query i
                for r in range(lane, last, KS):
                    s0 = s1 = s2 = s3 = zero       # 4 chains: FMA latency, not one serial sum
                    for d in range(0, DP, 4):
                        s0 += q_row[d] * k_tile[r, d]
                        s1 += q_row[d + 1] * k_tile[r, d + 1]
                        s2 += q_row[d + 2] * k_tile[r, d + 2]
                        s3 += q_row[d + 3] * k_tile[r, d + 3]
                    s = (s0 + s1) + (s2 + s3)
                    if s > m:                  # new running max: rescale what was summed so far
                        corr = math.exp(m - s)
                        l *= corr
                        for d in range(DP):
                            acc[d] *= corr
                        m = s
                    p = math.exp(s - m)
                    l += p
                    for d in range(DP):
                        acc[d] += p * v_tile[r, d]
            cuda.syncthreads()
        # Merge the KS partial softmaxes of each row: rescale each to the row's max, add up.
        row_max[t] = m
        row_sum[t] = l
        cuda.syncthreads()
        first = row * KS
        mx = neg_inf
        for u in range(KS):
            mx = max(mx, row_max[first + u])
        total = zero
        for u in range(KS):
            if row_sum[first + u] != zero:     # a lane that saw no key has m = -inf, l = 0
                total += row_sum[first + u] * math.exp(row_max[first + u] - mx)
        factor = math.exp(m - mx) if l != zero else zero
        for d in range(DP):
            acc[d] *= factor
        for u in range(1, KS):                 # lane u hands its sums to lane 0, one at a time
            if lane == u:
                for d in range(DP):
                    combine[row, d] = acc[d]
            cuda.syncthreads()
            if lane == 0:
                for d in range(DP):
                    acc[d] += combine[row, d]
            cuda.syncthreads()
        if active and lane == 0:
            inv = one / total
            for d in range(D):
                out[bh, i, d] = acc[d] * inv
            lse[bh, i] = mx + math.log(total)

    return attention_forward


@functools.cache
def _backward_kernels(dtype, DP, BQ, KS, BK):
    """dq: BQ query rows per block, KS threads per row splitting the keys; dk, dv: BQ key rows
    per block, KS threads per row splitting the queries. Partial sums meet in `combine`."""
    zero = dtype(0)
    NT = BQ * KS
    TILE = (BK, DP + 1)                        # +1: see _forward_kernel
    COMBINE = (BQ, DP) if KS > 1 else (1, 1)

    @cuda.jit(device=True)
    def merge_lanes(acc, combine, row, lane):
        """Sum acc over the KS lanes of each row into lane 0's acc (all threads must call)."""
        for u in range(1, KS):
            if lane == u:
                for d in range(DP):
                    combine[row, d] = acc[d]
            cuda.syncthreads()
            if lane == 0:
                for d in range(DP):
                    acc[d] += combine[row, d]
            cuda.syncthreads()

    @cuda.jit
    def attention_delta(dout, out, delta):
        """delta[bh, i] = sum_d dout[bh, i, d] * out[bh, i, d]."""
        i = cuda.blockIdx.y * NT + cuda.threadIdx.x
        bh = cuda.blockIdx.x
        if i < out.shape[1]:
            acc = zero
            for d in range(out.shape[2]):
                acc += dout[bh, i, d] * out[bh, i, d]
            delta[bh, i] = acc

    @cuda.jit
    def attention_backward_dq(dout, q, k, v, lse, delta, dq, causal, scale):
        bh = cuda.blockIdx.x
        t = cuda.threadIdx.x
        row = t // KS
        lane = t - row * KS
        # last query blocks first: under the causal mask they have the most keys to visit
        q0 = (cuda.gridDim.y - 1 - cuda.blockIdx.y) * BQ
        i = q0 + row
        T = q.shape[1]
        S = k.shape[1]
        D = q.shape[2]
        k_tile = cuda.shared.array(TILE, dtype)
        v_tile = cuda.shared.array(TILE, dtype)
        combine = cuda.shared.array(COMBINE, dtype)
        q_row = cuda.local.array(DP, dtype)
        do_row = cuda.local.array(DP, dtype)
        acc = cuda.local.array(DP, dtype)
        active = i < T
        for d in range(DP):
            inside = active and d < D
            q_row[d] = q[bh, i, d] * scale if inside else zero
            do_row[d] = dout[bh, i, d] if inside else zero
            acc[d] = zero
        row_lse = lse[bh, i] if active else zero
        row_delta = delta[bh, i] if active else zero
        key_end = min(S, q0 + BQ) if causal else S
        for k0 in range(0, key_end, BK):
            n_keys = min(BK, S - k0)
            for e in range(t, BK * DP, NT):
                r = e // DP
                d = e - r * DP
                inside = r < n_keys and d < D
                k_tile[r, d] = k[bh, k0 + r, d] if inside else zero
                v_tile[r, d] = v[bh, k0 + r, d] if inside else zero
            cuda.syncthreads()
            if active:
                last = min(n_keys, i - k0 + 1) if causal else n_keys
                for r in range(lane, last, KS):
                    s0 = s1 = dp0 = dp1 = zero     # 2 chains each: shorter FMA dependencies
                    for d in range(0, DP, 2):
                        s0 += q_row[d] * k_tile[r, d]
                        s1 += q_row[d + 1] * k_tile[r, d + 1]
                        dp0 += do_row[d] * v_tile[r, d]
                        dp1 += do_row[d + 1] * v_tile[r, d + 1]
                    ds = math.exp((s0 + s1) - row_lse) * ((dp0 + dp1) - row_delta)
                    for d in range(DP):
                        acc[d] += ds * k_tile[r, d]
            cuda.syncthreads()
        merge_lanes(acc, combine, row, lane)
        if active and lane == 0:
            for d in range(D):
                dq[bh, i, d] = acc[d] * scale

    @cuda.jit
    def attention_backward_dkdv(dout, q, k, v, lse, delta, dk, dv, causal, scale):
        bh = cuda.blockIdx.x
        t = cuda.threadIdx.x
        row = t // KS
        lane = t - row * KS
        j0 = cuda.blockIdx.y * BQ              # this block's first key row
        j = j0 + row
        T = q.shape[1]
        S = k.shape[1]
        D = q.shape[2]
        q_tile = cuda.shared.array(TILE, dtype)     # q * scale
        do_tile = cuda.shared.array(TILE, dtype)
        lse_tile = cuda.shared.array(BK, dtype)
        delta_tile = cuda.shared.array(BK, dtype)
        combine = cuda.shared.array(COMBINE, dtype)
        k_row = cuda.local.array(DP, dtype)
        v_row = cuda.local.array(DP, dtype)
        dk_acc = cuda.local.array(DP, dtype)
        dv_acc = cuda.local.array(DP, dtype)
        active = j < S
        for d in range(DP):
            inside = active and d < D
            k_row[d] = k[bh, j, d] if inside else zero
            v_row[d] = v[bh, j, d] if inside else zero
            dk_acc[d] = zero
            dv_acc[d] = zero
        # causal: query i sees key j only when i >= j, so queries before j0 add nothing here
        query_start = j0 if causal else 0
        for i0 in range(query_start, T, BK):
            n_queries = min(BK, T - i0)
            for e in range(t, BK * DP, NT):
                r = e // DP
                d = e - r * DP
                inside = r < n_queries and d < D
                q_tile[r, d] = q[bh, i0 + r, d] * scale if inside else zero
                do_tile[r, d] = dout[bh, i0 + r, d] if inside else zero
            for r in range(t, BK, NT):
                lse_tile[r] = lse[bh, i0 + r] if r < n_queries else zero
                delta_tile[r] = delta[bh, i0 + r] if r < n_queries else zero
            cuda.syncthreads()
            if active:
                first = max(0, j - i0) if causal else 0
                for r in range(first + lane, n_queries, KS):
                    s0 = s1 = dp0 = dp1 = zero
                    for d in range(0, DP, 2):
                        s0 += q_tile[r, d] * k_row[d]
                        s1 += q_tile[r, d + 1] * k_row[d + 1]
                        dp0 += do_tile[r, d] * v_row[d]
                        dp1 += do_tile[r, d + 1] * v_row[d + 1]
                    p = math.exp((s0 + s1) - lse_tile[r])
                    ds = p * ((dp0 + dp1) - delta_tile[r])
                    for d in range(DP):
                        dv_acc[d] += p * do_tile[r, d]
                        dk_acc[d] += ds * q_tile[r, d]
            cuda.syncthreads()
        merge_lanes(dk_acc, combine, row, lane)
        merge_lanes(dv_acc, combine, row, lane)
        if active and lane == 0:
            for d in range(D):
                dk[bh, j, d] = dk_acc[d]
                dv[bh, j, d] = dv_acc[d]

    return attention_delta, attention_backward_dq, attention_backward_dkdv


def _split_setup(q, tiles):
    """(DP, BQ rows per block, KS threads per row, BK tile rows) for kernels that keep `tiles`
    shared arrays of BK x (DP + 1) plus a BQ x DP merge buffer within the shared-memory budget."""
    cfg = launch_config()
    dp = _padded_head_dim(q.shape[3])
    item = q.dtype.itemsize
    bq, ks = cfg.attn_queries, cfg.attn_key_split
    merge = bq * dp * item if ks > 1 else 0
    if merge > cfg.attn_smem_bytes // 2:       # very wide heads: no room to merge the splits
        bq, ks, merge = bq * ks, 1, 0
    # per tile row: the tiles, plus the backward's lse and delta entries (and slack for the
    # forward's per-thread max and sum arrays)
    rows = (cfg.attn_smem_bytes - merge - 2 * bq * ks * item) // ((tiles * (dp + 1) + 2) * item)
    return dp, bq, ks, max(1, min(64, rows))


def _forward_setup(q):
    dp, bq, ks, bk = _split_setup(q, tiles=2)                      # K and V tiles
    return bq, ks, _forward_kernel(q.dtype.type, dp, bq, ks, bk)


def _backward_setup(q):
    dp, bq, ks, bk = _split_setup(q, tiles=2)                      # Q and dout (or K and V)
    return bq, ks, _backward_kernels(q.dtype.type, dp, bq, ks, bk)


def attention_device(q, k, v, causal, scale):
    """q (B, H, T, D), k and v (B, H, S, D) on the device -> (out, lse) on the device."""
    b, h, t, d = q.shape
    s = k.shape[2]
    q3, k3, v3 = q.reshape(b * h, t, d), k.reshape(b * h, s, d), v.reshape(b * h, s, d)
    out = device_empty((b * h, t, d), q.dtype)
    lse = device_empty((b * h, t), q.dtype)
    bq, ks, forward = _forward_setup(q)
    launch(forward, (b * h, (t + bq - 1) // bq), bq * ks, q3, k3, v3, out, lse, bool(causal),
           scalar(q.dtype, scale))
    return out.reshape(b, h, t, d), lse.reshape(b, h, t)


def attention_backward_device(dout, q, k, v, out, lse, causal, scale):
    b, h, t, d = q.shape
    s = k.shape[2]
    q3, k3, v3 = q.reshape(b * h, t, d), k.reshape(b * h, s, d), v.reshape(b * h, s, d)
    dout3, out3, lse2 = dout.reshape(b * h, t, d), out.reshape(b * h, t, d), lse.reshape(b * h, t)
    bq, ks, (delta_kernel, dq_kernel, dkdv_kernel) = _backward_setup(q)
    sc = scalar(q.dtype, scale)
    delta = device_empty((b * h, t), q.dtype)
    dq = device_empty((b * h, t, d), q.dtype)
    dk = device_empty((b * h, s, d), q.dtype)
    dv = device_empty((b * h, s, d), q.dtype)
    threads = bq * ks
    launch(delta_kernel, (b * h, (t + threads - 1) // threads), threads, dout3, out3, delta)
    launch(dq_kernel, (b * h, (t + bq - 1) // bq), threads, dout3, q3, k3, v3, lse2, delta, dq,
           bool(causal), sc)
    launch(dkdv_kernel, (b * h, (s + bq - 1) // bq), threads, dout3, q3, k3, v3, lse2, delta,
           dk, dv, bool(causal), sc)
    return dq.reshape(b, h, t, d), dk.reshape(b, h, s, d), dv.reshape(b, h, s, d)


def attention(q, k, v, causal, scale):
    out, lse = attention_device(to_device(q), to_device(k), to_device(v), causal, scale)
    return to_host(out), to_host(lse)


def attention_backward(dout, q, k, v, out, lse, causal, scale):
    grads = attention_backward_device(*(to_device(x) for x in (dout, q, k, v, out, lse)),
                                      causal, scale)
    return tuple(to_host(g) for g in grads)
