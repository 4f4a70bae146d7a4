"""Numba kernels: fused flash-style attention (see fastnn/backends/reference.py for the math and
csrc/attention.c for the C version these loops mirror).

No T x S matrix is ever formed. Forward: prange over (head, query block); each block streams the
key tiles with an online softmax (running max m and sum l, the partial output rescaled by
exp(m_old - m_new) when the max grows) and keeps only the log-sum-exp for the backward.
Backward (FlashAttention-2): p is recomputed from lse, D_i = dout_i . out_i, and
    dv_j = sum_i p_ij dout_i,  ds_ij = p_ij (dout_i . v_j - D_i),
    dk_j = scale sum_i ds_ij q_i,  dq_i = scale sum_j ds_ij k_j,
in two race-free passes: prange over (head, key block) for dk, dv, then over (head, query block)
for dq (which recomputes p and ds rather than sharing dq between threads).
Tiles keep their inner loops along a contiguous axis so LLVM vectorizes them.
"""
import math

import numba
import numpy as np
from numba import prange


BQ = 64  # queries per tile
BK = 64  # keys per tile

# Reassociation lets LLVM vectorize the sums; no 'ninf'/'nnan' (masks and the running max start
# at -inf, and NaN inputs must propagate as in the reference).
_jit = numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract", "nsz"})


@_jit
def _forward(q, k, v, out, lse, causal, scale):
    bh, t, d = q.shape
    s = k.shape[1]
    nqb = (t + BQ - 1) // BQ
    for u in prange(bh * nqb):
        h = u // nqb
        qb = nqb - 1 - u % nqb if causal else u % nqb   # causal: the heaviest blocks first
        i0 = qb * BQ
        nq = min(BQ, t - i0)
        # Scores are kept transposed, st[j, i], so the softmax statistics are per query lane.
        qt = np.zeros((d, BQ), q.dtype)
        for i in range(nq):
            for dd in range(d):
                qt[dd, i] = q[h, i0 + i, dd] * scale
        st = np.empty((BK, BQ), q.dtype)
        ot = np.zeros((d, BQ), q.dtype)
        m = np.full(BQ, -np.inf, q.dtype)
        m_new = np.empty(BQ, q.dtype)
        l = np.zeros(BQ, q.dtype)
        rowsum = np.empty(BQ, q.dtype)
        alpha = np.empty(BQ, q.dtype)
        kend = min(s, i0 + nq) if causal else s   # later keys are masked for the whole block
        for j0 in range(0, kend, BK):
            nk = min(BK, kend - j0)
            for j in range(nk):
                for i in range(BQ):
                    st[j, i] = 0
                for dd in range(d):
                    kjd = k[h, j0 + j, dd]
                    for i in range(BQ):
                        st[j, i] += kjd * qt[dd, i]
            if causal and j0 + nk - 1 > i0:   # on the diagonal: mask key j0+j > query i0+i
                for j in range(nk):
                    for i in range(min(BQ, j0 + j - i0)):
                        st[j, i] = -np.inf
            # The first tile holds key 0, which no query masks: m_new is finite from the start.
            for i in range(BQ):
                m_new[i] = m[i]
                rowsum[i] = 0
            for j in range(nk):
                for i in range(BQ):
                    m_new[i] = max(m_new[i], st[j, i])
            for j in range(nk):
                for i in range(BQ):
                    p = math.exp(st[j, i] - m_new[i])
                    st[j, i] = p
                    rowsum[i] += p
            for i in range(BQ):
                alpha[i] = math.exp(m[i] - m_new[i])   # 0 on the first tile (m = -inf)
                l[i] = l[i] * alpha[i] + rowsum[i]
                m[i] = m_new[i]
            for dd in range(d):
                for i in range(BQ):
                    ot[dd, i] *= alpha[i]
            for j in range(nk):
                for dd in range(d):
                    vjd = v[h, j0 + j, dd]
                    for i in range(BQ):
                        ot[dd, i] += vjd * st[j, i]
        for i in range(nq):
            inv = 1 / l[i]
            for dd in range(d):
                out[h, i0 + i, dd] = ot[dd, i] * inv
            lse[h, i0 + i] = m[i] + math.log(l[i])


@_jit
def _backward_dkdv(dout, q, k, v, lse, drow, dk, dv, causal, scale):
    bh, t, d = q.shape
    s = k.shape[1]
    nkb = (s + BK - 1) // BK
    for u in prange(bh * nkb):
        h = u // nkb
        j0 = (u % nkb) * BK
        nk = min(BK, s - j0)
        # Vectors along keys: k, v transposed and zero-padded to BK keys.
        kt = np.zeros((d, BK), q.dtype)
        vt = np.zeros((d, BK), q.dtype)
        for j in range(nk):
            for dd in range(d):
                kt[dd, j] = k[h, j0 + j, dd] * scale
                vt[dd, j] = v[h, j0 + j, dd]
        dkt = np.zeros((d, BK), q.dtype)
        dvt = np.zeros((d, BK), q.dtype)
        # Two query rows at a time: each pass over dkt, dvt (d x BK) adds two rank-1 updates.
        p0 = np.empty(BK, q.dtype)
        p1 = np.empty(BK, q.dtype)
        ds0 = np.empty(BK, q.dtype)
        ds1 = np.empty(BK, q.dtype)
        # causal: queries before j0 mask the whole key block.
        for i0 in range(j0 if causal else 0, t, 2):
            i1 = i0 + 1 if i0 + 1 < t else i0   # a lone last row pairs with itself, weight 0
            for j in range(BK):
                p0[j] = 0
                p1[j] = 0
                ds0[j] = 0
                ds1[j] = 0
            for dd in range(d):
                qa = q[h, i0, dd]
                qb = q[h, i1, dd]
                da = dout[h, i0, dd]
                db = dout[h, i1, dd]
                for j in range(BK):
                    p0[j] += qa * kt[dd, j]      # scores until the exp below
                    p1[j] += qb * kt[dd, j]
                    ds0[j] += da * vt[dd, j]     # dout . v until the exp below
                    ds1[j] += db * vt[dd, j]
            jend0 = min(nk, i0 - j0 + 1) if causal else nk
            jend1 = 0 if i1 == i0 else (min(nk, i1 - j0 + 1) if causal else nk)
            for j in range(BK):
                if j < jend0:
                    p = math.exp(p0[j] - lse[h, i0])
                    p0[j] = p
                    ds0[j] = p * (ds0[j] - drow[h, i0])
                else:
                    p0[j] = 0
                    ds0[j] = 0
                if j < jend1:
                    p = math.exp(p1[j] - lse[h, i1])
                    p1[j] = p
                    ds1[j] = p * (ds1[j] - drow[h, i1])
                else:
                    p1[j] = 0
                    ds1[j] = 0
            for dd in range(d):
                qa = q[h, i0, dd]
                qb = q[h, i1, dd]
                da = dout[h, i0, dd]
                db = dout[h, i1, dd]
                for j in range(BK):
                    dvt[dd, j] += da * p0[j] + db * p1[j]
                    dkt[dd, j] += qa * ds0[j] + qb * ds1[j]
        for j in range(nk):
            for dd in range(d):
                dk[h, j0 + j, dd] = dkt[dd, j] * scale
                dv[h, j0 + j, dd] = dvt[dd, j]


@_jit
def _backward_dq(dout, q, k, v, lse, drow, dq, causal, scale):
    bh, t, d = q.shape
    s = k.shape[1]
    nqb = (t + BQ - 1) // BQ
    for u in prange(bh * nqb):
        h = u // nqb
        qb = nqb - 1 - u % nqb if causal else u % nqb
        i0 = qb * BQ
        nq = min(BQ, t - i0)
        kt = np.empty((d, BK), q.dtype)
        vt = np.empty((d, BK), q.dtype)
        acc = np.zeros((BQ, d), q.dtype)
        sc = np.empty(BK, q.dtype)
        dp = np.empty(BK, q.dtype)
        kend = min(s, i0 + nq) if causal else s
        for j0 in range(0, kend, BK):
            nk = min(BK, kend - j0)
            for dd in range(d):
                for j in range(BK):
                    kt[dd, j] = k[h, j0 + j, dd] * scale if j < nk else 0
                    vt[dd, j] = v[h, j0 + j, dd] if j < nk else 0
            for i in range(nq):
                row = i0 + i
                jend = min(nk, row - j0 + 1) if causal else nk
                if jend <= 0:
                    continue
                for j in range(BK):
                    sc[j] = 0
                    dp[j] = 0
                for dd in range(d):
                    qid = q[h, row, dd]
                    doid = dout[h, row, dd]
                    for j in range(BK):
                        sc[j] += qid * kt[dd, j]
                        dp[j] += doid * vt[dd, j]
                for j in range(jend):
                    dsj = math.exp(sc[j] - lse[h, row]) * (dp[j] - drow[h, row])
                    for dd in range(d):
                        acc[i, dd] += dsj * k[h, j0 + j, dd]
        for i in range(nq):
            for dd in range(d):
                dq[h, i0 + i, dd] = acc[i, dd] * scale


@_jit
def _row_dot(a, b, res):
    """res[h, i] = a[h, i, :] . b[h, i, :]"""
    bh, t, d = a.shape
    for u in prange(bh * t):
        h = u // t
        i = u % t
        acc = a[h, i, 0] * 0   # zero of a's dtype (d >= 1 here)
        for dd in range(d):
            acc += a[h, i, dd] * b[h, i, dd]
        res[h, i] = acc


def attention(q, k, v, causal, scale):
    b, h, t, d = q.shape
    s = k.shape[2]
    out = np.empty_like(q)
    lse = np.empty((b, h, t), q.dtype)
    _forward(q.reshape(b * h, t, d), k.reshape(b * h, s, d), v.reshape(b * h, s, d),
             out.reshape(b * h, t, d), lse.reshape(b * h, t), bool(causal), q.dtype.type(scale))
    return out, lse


def attention_backward(dout, q, k, v, out, lse, causal, scale):
    b, h, t, d = q.shape
    s = k.shape[2]
    dout3, q3, out3 = (x.reshape(b * h, t, d) for x in (dout, q, out))
    k3, v3 = k.reshape(b * h, s, d), v.reshape(b * h, s, d)
    lse2 = lse.reshape(b * h, t)
    causal = bool(causal)
    scale = q.dtype.type(scale)
    drow = np.empty((b * h, t), q.dtype)
    _row_dot(dout3, out3, drow)
    dq = np.empty_like(q)
    dk = np.empty_like(k)
    dv = np.empty_like(v)
    _backward_dkdv(dout3, q3, k3, v3, lse2, drow, dk.reshape(b * h, s, d),
                   dv.reshape(b * h, s, d), causal, scale)
    _backward_dq(dout3, q3, k3, v3, lse2, drow, dq.reshape(b * h, t, d), causal, scale)
    return dq, dk, dv
