"""Numba kernels: fused flash-style attention (see fastnn/backends/reference.py for the math and
csrc/attention.c for the C version these loops mirror).

No T x S matrix is ever formed. Forward: prange over (head, query block); each block streams the
key tiles with an online softmax (running max m and sum l, the partial output rescaled by
exp(m_old - m_new) when the max grows) and keeps only the log-sum-exp for the backward.
Backward (FlashAttention-2): p is recomputed from lse, D_i = dout_i . out_i, and
    dv_j = sum_i p_ij dout_i,  ds_ij = p_ij (dout_i . v_j - D_i),
    dk_j = scale sum_i ds_ij q_i,  dq_i = scale sum_j ds_ij k_j,
in one pass, as in csrc/attention.c: prange over (head, key split); a key block owns its dk, dv
and walks the query tiles, computing p and ds once per tile for all three products, and dq is
added into a buffer the unit owns. (Two passes, dk/dv then dq, computed q k^T, dout v^T and the
exps twice: 7 tile products per tile pair instead of 5.)
Tiles keep their inner loops along a contiguous axis so LLVM vectorizes them, and every exp is
ops._exp (a polynomial LLVM vectorizes): math.exp is a scalar libm call per score, which took
most of the time (4096 calls per 64 x 64 tile against ~64K cycles of FMAs).
"""
import math

import numba
import numpy as np
from llvmlite import ir
from numba import carray, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .ops import _exp


BQ = 64  # queries per tile, forward
BK = 64  # keys per tile, forward
BWD_BQ = 64   # queries per tile, backward
BWD_BK = 64   # keys per tile, backward



@intrinsic
def _stack_tile(typingctx, x):
    """Pointer to a 4 x 16 tile of x's dtype on the stack: accumulators that LLVM keeps in
    vector registers across a reduction loop (a register-blocked micro-kernel, as in gemm.py).
    The same accumulators in a numpy array are loaded and stored at every step (LLVM cannot
    prove they do not alias the arrays read)."""
    dt = x.dtype

    def codegen(context, builder, sig, args):
        elt = context.get_value_type(dt)
        tile = cgutils.alloca_once(builder, ir.ArrayType(elt, 64))
        return builder.bitcast(tile, elt.as_pointer())
    return types.CPointer(dt)(x), codegen


# Reassociation lets LLVM vectorize the sums; no 'ninf'/'nnan' (masks and the running max start
# at -inf, and NaN inputs must propagate as in the reference).
_jit = numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract", "nsz"})


# The two products of the forward pass as register-blocked micro-kernels: each accumulates a
# 4 x 16 tile in registers over the reduction, like gemm.py's. They are separate functions on
# purpose: LLVM promotes the stack tile to registers while optimizing the small callee, before
# inlining it; written inline in the big prange body, the tile stayed in memory (a load and a
# store around every FMA).
@intrinsic
def _noinline(typingctx):
    """Keep the calling micro-kernel a function of its own: inlined into a bigger loop nest, its
    stack tile was no longer promoted to registers."""
    def codegen(context, builder, sig, args):
        builder.function.attributes.add("noinline")
        return context.get_dummy_value()
    return types.none(), codegen


_micro = numba.njit(cache=True, fastmath={"reassoc", "contract", "nsz"})


@_micro
def _mk_rows(a4, b, out4, accumulate):
    """out4[r, c] (+)= sum_p a4[r, p] * b[p, c] for the 4 rows of a4; b's columns in blocks of
    16 (a 4 x 16 tile in registers over p), then the leftover columns."""
    _noinline()
    pn = a4.shape[1]
    n = b.shape[1]
    n16 = n - n % 16
    for cb in range(0, n16, 16):
        acc = carray(_stack_tile(out4), (4, 16))
        for c in range(16):
            for r in range(4):
                acc[r, c] = out4[r, cb + c] if accumulate else 0
        for p in range(pn):
            a0 = a4[0, p]
            a1 = a4[1, p]
            a2 = a4[2, p]
            a3 = a4[3, p]
            brow = b[p, cb:cb + 16]
            for c in range(16):
                bc = brow[c]
                acc[0, c] += a0 * bc
                acc[1, c] += a1 * bc
                acc[2, c] += a2 * bc
                acc[3, c] += a3 * bc
        for r in range(4):
            for c in range(16):
                out4[r, cb + c] = acc[r, c]
    if n16 < n:
        _mk_rows_scalar(a4, b[:, n16:], out4[:, n16:], accumulate)


@_micro
def _mk_rows_scalar(a, b, out, accumulate):
    """out[r, c] (+)= sum_p a[r, p] * b[p, c], plain loops: edges of the tiles."""
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            acc = out[r, c] if accumulate else out.dtype.type(0)
            for p in range(a.shape[1]):
                acc += a[r, p] * b[p, c]
            out[r, c] = acc


@_micro
def _mk_rows_any(a, b, out, accumulate):
    """out (+)= a @ b for any number of rows: 4 at a time on the micro-kernel."""
    m = a.shape[0]
    m4 = m - m % 4
    for rb in range(0, m4, 4):
        _mk_rows(a[rb:rb + 4], b, out[rb:rb + 4], accumulate)
    if m4 < m:
        _mk_rows_scalar(a[m4:], b, out[m4:], accumulate)


@_micro
def _pv_4rows(v4, st, alpha, ot4):
    """ot4[r, i] = alpha[i] * ot4[r, i] + sum_j st[j, i] * v4[j, r] for 4 dims r of v."""
    _noinline()
    nk = v4.shape[0]
    for ib in range(0, BQ, 16):
        acc = carray(_stack_tile(ot4), (4, 16))
        for c in range(16):
            al = alpha[ib + c]
            acc[0, c] = ot4[0, ib + c] * al
            acc[1, c] = ot4[1, ib + c] * al
            acc[2, c] = ot4[2, ib + c] * al
            acc[3, c] = ot4[3, ib + c] * al
        for j in range(nk):
            a0 = v4[j, 0]
            a1 = v4[j, 1]
            a2 = v4[j, 2]
            a3 = v4[j, 3]
            prow = st[j, ib:ib + 16]
            for c in range(16):
                b = prow[c]
                acc[0, c] += a0 * b
                acc[1, c] += a1 * b
                acc[2, c] += a2 * b
                acc[3, c] += a3 * b
        for r in range(4):
            for c in range(16):
                ot4[r, ib + c] = acc[r, c]


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
            # st[j, :] = scale * q_block . k_j: 4 keys x 16 queries at a time, accumulated in
            # registers over d (8 ymm); leftover keys one by one.
            nk4 = nk - nk % 4
            for jb in range(0, nk4, 4):
                _mk_rows(k[h, j0 + jb:j0 + jb + 4], qt, st[jb:jb + 4], False)
            for j in range(nk4, nk):
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
                    p = _exp(st[j, i] - m_new[i])
                    st[j, i] = p
                    rowsum[i] += p
            for i in range(BQ):
                alpha[i] = _exp(m[i] - m_new[i])   # 0 on the first tile (m = -inf)
                l[i] = l[i] * alpha[i] + rowsum[i]
                m[i] = m_new[i]
            # ot[dd, :] = alpha * ot[dd, :] + p . v[:, dd]: 4 dims x 16 queries at a time, as
            # above; leftover dims one by one.
            d4 = d - d % 4
            for db in range(0, d4, 4):
                _pv_4rows(v[h, j0:j0 + nk, db:db + 4], st, alpha, ot[db:db + 4])
            for dd in range(d4, d):
                for i in range(BQ):
                    ot[dd, i] *= alpha[i]
                for j in range(nk):
                    vjd = v[h, j0 + j, dd]
                    for i in range(BQ):
                        ot[dd, i] += vjd * st[j, i]
        for i in range(nq):
            inv = 1 / l[i]
            for dd in range(d):
                out[h, i0 + i, dd] = ot[dd, i] * inv
            lse[h, i0 + i] = m[i] + math.log(l[i])


@_micro
def _probs_tile(st, dpt, lrow, rrow, i0, j0, nk, causal):
    """Turn a tile's scores st[j, i] into p = exp(s - lse_i) and its dout.v products dpt[j, i]
    into ds = p (dpt - D_i), in place. lrow, rrow: lse and D per query lane (lse = +inf on padded
    lanes, so p = 0 there); causally masked entries give 0 by selects, so the loop and its exps
    vectorize."""
    zero = st.dtype.type(0)
    for j in range(nk):
        first = j0 + j - i0 if causal else 0    # lanes i >= first are kept
        for i in range(st.shape[1]):
            p = _exp(st[j, i] - lrow[i])
            ds = p * (dpt[j, i] - rrow[i])
            st[j, i] = p if i >= first else zero
            dpt[j, i] = ds if i >= first else zero


@_micro
def _load_lanes(lse, drow, h, i0, nq, lrow, rrow):
    for i in range(lrow.size):
        lrow[i] = lse[h, i0 + i] if i < nq else np.inf
        rrow[i] = drow[h, i0 + i] if i < nq else 0


@_micro
def _load_block_t(x, h, i0, nq, scale, xt):
    """xt[dd, i] = scale * x[h, i0 + i, dd] for i < nq, 0 for the padded lanes."""
    d = x.shape[2]
    for dd in range(d):
        for i in range(xt.shape[1]):
            xt[dd, i] = 0
    for i in range(nq):
        for dd in range(d):
            xt[dd, i] = x[h, i0 + i, dd] * scale


@_micro
def _scores_and_dp(q, k, v, dout, h, j0, nk, qt, dot, st, dpt):
    """st[j, i] = k_j . (scale q_i) and dpt[j, i] = v_j . dout_i for the tile's nk keys."""
    nk4 = nk - nk % 4
    for jb in range(0, nk4, 4):
        _mk_rows(k[h, j0 + jb:j0 + jb + 4], qt, st[jb:jb + 4], False)
        _mk_rows(v[h, j0 + jb:j0 + jb + 4], dot, dpt[jb:jb + 4], False)
    if nk4 < nk:
        _mk_rows_scalar(k[h, j0 + nk4:j0 + nk], qt, st[nk4:nk], False)
        _mk_rows_scalar(v[h, j0 + nk4:j0 + nk], dot, dpt[nk4:nk], False)


@_jit
def _backward(dout, q, k, v, lse, drow, dq, dq_part, dk, dv, nsplit, causal, scale):
    """One pass, as csrc/attention.c: per (head, key split), each key block owns its dk, dv
    and walks the query tiles that see it, recomputing p and ds once per tile for all three
    products (dv += p^T dout, dk += ds^T q, dq += ds k). The unit adds into its own dq buffer,
    dq[h] for split 0 and dq_part[sp - 1, h] for split sp (summed by _dq_finish), so no two
    threads write the same dq. Unscaled: dk is scaled here, dq in _dq_finish."""
    bh, t, d = q.shape
    s = k.shape[1]
    nkb = (s + BWD_BK - 1) // BWD_BK
    for u in prange(bh * nsplit):
        h = u // nsplit
        sp = u % nsplit
        dq_dst = dq[h] if sp == 0 else dq_part[sp - 1, h]
        dq_dst[:, :] = 0
        qt = np.empty((d, BWD_BQ), q.dtype)
        dot = np.empty((d, BWD_BQ), q.dtype)
        st = np.empty((BWD_BK, BWD_BQ), q.dtype)
        dpt = np.empty((BWD_BK, BWD_BQ), q.dtype)
        lrow = np.empty(BWD_BQ, q.dtype)
        rrow = np.empty(BWD_BQ, q.dtype)
        dkacc = np.empty((BWD_BK, d), q.dtype)
        dvacc = np.empty((BWD_BK, d), q.dtype)
        # Split sp takes key blocks sp, sp + nsplit, ...: the heavier early (causal) blocks
        # are spread over the splits.
        for kb in range(sp, nkb, nsplit):
            j0 = kb * BWD_BK
            nk = min(BWD_BK, s - j0)
            dkacc[:, :] = 0
            dvacc[:, :] = 0
            # causal: queries before j0 see none of the block's keys; starting the query tiles
            # at j0 leaves only the first one crossing the diagonal.
            first = j0 if causal else 0
            for i0 in range(first, t, BWD_BQ):
                nq = min(BWD_BQ, t - i0)
                _load_block_t(q, h, i0, nq, scale, qt)
                _load_block_t(dout, h, i0, nq, q.dtype.type(1), dot)
                _load_lanes(lse, drow, h, i0, nq, lrow, rrow)
                _scores_and_dp(q, k, v, dout, h, j0, nk, qt, dot, st, dpt)
                _probs_tile(st, dpt, lrow, rrow, i0, j0, nk, causal)
                _mk_rows_any(st[:nk, :nq], dout[h, i0:i0 + nq], dvacc[:nk], True)
                _mk_rows_any(dpt[:nk, :nq], q[h, i0:i0 + nq], dkacc[:nk], True)
                # ds^T as the micro-kernel's rows: it reads one scalar per row anyway.
                _mk_rows_any(dpt[:nk, :nq].T, k[h, j0:j0 + nk], dq_dst[i0:i0 + nq], True)
            for j in range(nk):
                for dd in range(d):
                    dk[h, j0 + j, dd] = dkacc[j, dd] * scale
                    dv[h, j0 + j, dd] = dvacc[j, dd]


@_jit
def _dq_finish(dq, dq_part, scale):
    """dq = scale * (dq + the other splits' partial sums)."""
    bh, t, d = dq.shape
    for u in prange(bh * t):
        h = u // t
        i = u % t
        for dd in range(d):
            acc = dq[h, i, dd]
            for sp in range(dq_part.shape[0]):
                acc += dq_part[sp, h, i, dd]
            dq[h, i, dd] = acc * scale


def _key_splits(bh, s):
    """Key splits per head: 1 when there are heads enough for ~2 units per thread (dq is then
    accumulated in place), else enough splits for that, each with its own partial dq."""
    want = 2 * numba.get_num_threads()
    if bh >= want:
        return 1
    return max(1, min(-(-want // bh), -(-s // BWD_BK)))


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
    # Units handed out one at a time, as the C kernel's schedule(dynamic, 1): with prange's
    # default equal shares, a thread that loses its core to another process holds up the call.
    with numba.parallel_chunksize(1):
        _forward(q.reshape(b * h, t, d), k.reshape(b * h, s, d), v.reshape(b * h, s, d),
                 out.reshape(b * h, t, d), lse.reshape(b * h, t), bool(causal),
                 q.dtype.type(scale))
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
    nsplit = _key_splits(b * h, s)
    dq3 = dq.reshape(b * h, t, d)
    dq_part = np.empty((nsplit - 1, b * h, t, d), q.dtype)
    with numba.parallel_chunksize(1):   # as in attention()
        _backward(dout3, q3, k3, v3, lse2, drow, dq3, dq_part, dk.reshape(b * h, s, d),
                  dv.reshape(b * h, s, d), nsplit, causal, scale)
    _dq_finish(dq3, dq_part, scale)
    return dq, dk, dv
