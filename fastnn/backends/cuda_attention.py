"""CUDA kernels: attention forward (flash-style) and backward (see reference.py for the math).

Layout: q (B, H, T, D), k and v (B, H, S, D), viewed as (B*H, T or S, D). Each block owns
`attn_queries` consecutive rows (grid y), one per thread, of one batch*head (grid x).

Forward: each thread keeps its query row (pre-scaled), an output accumulator and the running
max m and sum l of its row's softmax in registers; the block walks the keys in tiles copied to
shared memory, and for every key updates the online softmax:
    s = q.k;  if s > m: acc, l *= exp(m - s); m = s;   p = exp(s - m);  l += p;  acc += p v
so the T x S score matrix is never stored. out = acc / l and lse = m + log(l).

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

from .cuda_common import device_empty, launch, launch_config, scalar, to_device, to_host

__all__ = ["attention", "attention_backward"]


def _padded_head_dim(d):
    return (d + 15) // 16 * 16


def _tile_rows(dp, itemsize):
    """Rows of one shared-memory tile (DP wide) that fit the configured byte budget."""
    return max(1, min(64, launch_config().attn_tile_bytes // (dp * itemsize)))


@functools.cache
def _kernels(dtype, DP, BQ, BK):
    zero, one = dtype(0), dtype(1)
    neg_inf = dtype(-np.inf)
    TILE = (BK, DP)

    @cuda.jit
    def attention_forward(q, k, v, out, lse, causal, scale):
        bh = cuda.blockIdx.x
        t = cuda.threadIdx.x
        # last query blocks first: under the causal mask they have the most keys to visit
        q0 = (cuda.gridDim.y - 1 - cuda.blockIdx.y) * BQ
        i = q0 + t
        T = q.shape[1]
        S = k.shape[1]
        D = q.shape[2]
        k_tile = cuda.shared.array(TILE, dtype)
        v_tile = cuda.shared.array(TILE, dtype)
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
            for e in range(t, BK * DP, BQ):
                r = e // DP
                d = e - r * DP
                inside = r < n_keys and d < D
                k_tile[r, d] = k[bh, k0 + r, d] if inside else zero
                v_tile[r, d] = v[bh, k0 + r, d] if inside else zero
            cuda.syncthreads()
            if active:
                last = min(n_keys, i - k0 + 1) if causal else n_keys   # key j <= query i
                for r in range(last):
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
        if active:
            inv_l = one / l
            for d in range(D):
                out[bh, i, d] = acc[d] * inv_l
            lse[bh, i] = m + math.log(l)

    @cuda.jit
    def attention_delta(dout, out, delta):
        """delta[bh, i] = sum_d dout[bh, i, d] * out[bh, i, d]."""
        i = cuda.blockIdx.y * BQ + cuda.threadIdx.x
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
        # last query blocks first: under the causal mask they have the most keys to visit
        q0 = (cuda.gridDim.y - 1 - cuda.blockIdx.y) * BQ
        i = q0 + t
        T = q.shape[1]
        S = k.shape[1]
        D = q.shape[2]
        k_tile = cuda.shared.array(TILE, dtype)
        v_tile = cuda.shared.array(TILE, dtype)
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
            for e in range(t, BK * DP, BQ):
                r = e // DP
                d = e - r * DP
                inside = r < n_keys and d < D
                k_tile[r, d] = k[bh, k0 + r, d] if inside else zero
                v_tile[r, d] = v[bh, k0 + r, d] if inside else zero
            cuda.syncthreads()
            if active:
                last = min(n_keys, i - k0 + 1) if causal else n_keys
                for r in range(last):
                    s0 = s1 = dp0 = dp1 = zero     # 2 chains each: shorter FMA dependencies
                    for d in range(0, DP, 2):
                        s0 += q_row[d] * k_tile[r, d]
                        s1 += q_row[d + 1] * k_tile[r, d + 1]
                        dp0 += do_row[d] * v_tile[r, d]
                        dp1 += do_row[d + 1] * v_tile[r, d + 1]
                    s = s0 + s1
                    dp = dp0 + dp1
                    ds = math.exp(s - row_lse) * (dp - row_delta)
                    for d in range(DP):
                        acc[d] += ds * k_tile[r, d]
            cuda.syncthreads()
        if active:
            for d in range(D):
                dq[bh, i, d] = acc[d] * scale

    @cuda.jit
    def attention_backward_dkdv(dout, q, k, v, lse, delta, dk, dv, causal, scale):
        bh = cuda.blockIdx.x
        t = cuda.threadIdx.x
        j0 = cuda.blockIdx.y * BQ              # this block's first key row
        j = j0 + t
        T = q.shape[1]
        S = k.shape[1]
        D = q.shape[2]
        q_tile = cuda.shared.array(TILE, dtype)     # q * scale
        do_tile = cuda.shared.array(TILE, dtype)
        lse_tile = cuda.shared.array(BK, dtype)
        delta_tile = cuda.shared.array(BK, dtype)
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
            for e in range(t, BK * DP, BQ):
                r = e // DP
                d = e - r * DP
                inside = r < n_queries and d < D
                q_tile[r, d] = q[bh, i0 + r, d] * scale if inside else zero
                do_tile[r, d] = dout[bh, i0 + r, d] if inside else zero
            for r in range(t, BK, BQ):
                lse_tile[r] = lse[bh, i0 + r] if r < n_queries else zero
                delta_tile[r] = delta[bh, i0 + r] if r < n_queries else zero
            cuda.syncthreads()
            if active:
                first = max(0, j - i0) if causal else 0
                for r in range(first, n_queries):
                    s0 = s1 = dp0 = dp1 = zero
                    for d in range(0, DP, 2):
                        s0 += q_tile[r, d] * k_row[d]
                        s1 += q_tile[r, d + 1] * k_row[d + 1]
                        dp0 += do_tile[r, d] * v_row[d]
                        dp1 += do_tile[r, d + 1] * v_row[d + 1]
                    s = s0 + s1
                    dp = dp0 + dp1
                    p = math.exp(s - lse_tile[r])
                    ds = p * (dp - delta_tile[r])
                    for d in range(DP):
                        dv_acc[d] += p * do_tile[r, d]
                        dk_acc[d] += ds * q_tile[r, d]
            cuda.syncthreads()
        if active:
            for d in range(D):
                dk[bh, j, d] = dk_acc[d]
                dv[bh, j, d] = dv_acc[d]

    return attention_forward, attention_delta, attention_backward_dq, attention_backward_dkdv


def _setup(q):
    dp = _padded_head_dim(q.shape[3])
    bq = launch_config().attn_queries
    bk = _tile_rows(dp, q.dtype.itemsize)
    return bq, _kernels(q.dtype.type, dp, bq, bk)


def attention_device(q, k, v, causal, scale):
    """q (B, H, T, D), k and v (B, H, S, D) on the device -> (out, lse) on the device."""
    b, h, t, d = q.shape
    s = k.shape[2]
    q3, k3, v3 = q.reshape(b * h, t, d), k.reshape(b * h, s, d), v.reshape(b * h, s, d)
    out = device_empty((b * h, t, d), q.dtype)
    lse = device_empty((b * h, t), q.dtype)
    bq, (forward, _, _, _) = _setup(q)
    launch(forward, (b * h, (t + bq - 1) // bq), bq, q3, k3, v3, out, lse, bool(causal),
           scalar(q.dtype, scale))
    return out.reshape(b, h, t, d), lse.reshape(b, h, t)


def attention_backward_device(dout, q, k, v, out, lse, causal, scale):
    b, h, t, d = q.shape
    s = k.shape[2]
    q3, k3, v3 = q.reshape(b * h, t, d), k.reshape(b * h, s, d), v.reshape(b * h, s, d)
    dout3, out3, lse2 = dout.reshape(b * h, t, d), out.reshape(b * h, t, d), lse.reshape(b * h, t)
    bq, (_, delta_kernel, dq_kernel, dkdv_kernel) = _setup(q)
    sc = scalar(q.dtype, scale)
    delta = device_empty((b * h, t), q.dtype)
    dq = device_empty((b * h, t, d), q.dtype)
    dk = device_empty((b * h, s, d), q.dtype)
    dv = device_empty((b * h, s, d), q.dtype)
    q_blocks = (b * h, (t + bq - 1) // bq)
    launch(delta_kernel, q_blocks, bq, dout3, out3, delta)
    launch(dq_kernel, q_blocks, bq, dout3, q3, k3, v3, lse2, delta, dq, bool(causal), sc)
    launch(dkdv_kernel, (b * h, (s + bq - 1) // bq), bq, dout3, q3, k3, v3, lse2, delta, dk, dv,
           bool(causal), sc)
    return dq.reshape(b, h, t, d), dk.reshape(b, h, s, d), dv.reshape(b, h, s, d)


def attention(q, k, v, causal, scale):
    out, lse = attention_device(to_device(q), to_device(k), to_device(v), causal, scale)
    return to_host(out), to_host(lse)


def attention_backward(dout, q, k, v, out, lse, causal, scale):
    grads = attention_backward_device(*(to_device(x) for x in (dout, q, k, v, out, lse)),
                                      causal, scale)
    return tuple(to_host(g) for g in grads)
