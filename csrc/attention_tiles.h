/* The attention kernels for one (dtype, instruction set): included by attention.c once per pair,
 * inside that pair's `#pragma GCC target` region, after it defines:
 *
 *   FT            float or double
 *   VEC, VL       the vector type and its lane count (VL = 1 and VEC = FT on the portable path)
 *   V_LOAD(p) V_STORE(p, x) V_SET1(x) V_ZERO() V_FMA(a, b, c) = a*b+c  V_ADD V_SUB V_MUL V_MAX
 *   V_EXP2(x)     2^x per lane, accurate to FT, exactly 0 for x < the smallest normal exponent
 *   NV            vectors per micro-kernel row (the micro-tile is MK_MR rows x NV*VL columns)
 *   SFX(name)     name with this pair's suffix
 *
 * Layout. Every tile keeps its vectors along an axis we pad ourselves (queries in the forward,
 * keys in the backward, D rounded up to VL for dq), so no kernel has a column tail; rows and the
 * reduction length are arbitrary. All products are one shape,
 *     C[m][0:N] (+)= sum_p A(m, p) * B[p][0:N],   A read with strides (a_rs, a_cs),
 * i.e. a small GEMM whose micro-kernel broadcasts an element of A and FMAs it into MK_MR x NV
 * register accumulators (BLIS's micro-kernel with A unpacked: the tiles are small and hot in L1).
 */

/* ---------------------------------------------------------------- micro-kernel and tile GEMM */
/* C[0:m][0:nv*VL] (+)= sum_{p<kdim} A[r*a_rs + p*a_cs] * B[p*ldb + 0:nv*VL]. m and nv are
 * compile-time constants at every call (see tile_gemm's switch), so the accumulators live in
 * registers. */
static FNN_ALWAYS_INLINE void SFX(micro_kernel)(const int m, const int nv, int64_t kdim,
                                                const FT *a, int64_t a_rs, int64_t a_cs,
                                                const FT *b, int64_t ldb, FT *c, int64_t ldc,
                                                int accumulate)
{
    VEC acc[MK_MR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < m; r++)
#pragma GCC unroll 4
        for (int x = 0; x < nv; x++)
            acc[r][x] = accumulate ? V_LOAD(c + r * ldc + x * VL) : V_ZERO();
    for (int64_t p = 0; p < kdim; p++) {
        VEC bv[NV];
#pragma GCC unroll 4
        for (int x = 0; x < nv; x++)
            bv[x] = V_LOAD(b + p * ldb + x * VL);
        const FT *ap = a + p * a_cs;
#pragma GCC unroll 8
        for (int r = 0; r < m; r++) {
            VEC ar = V_SET1(ap[r * a_rs]);
#pragma GCC unroll 4
            for (int x = 0; x < nv; x++)
                acc[r][x] = V_FMA(ar, bv[x], acc[r][x]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < m; r++)
#pragma GCC unroll 4
        for (int x = 0; x < nv; x++)
            V_STORE(c + r * ldc + x * VL, acc[r][x]);
}

#define MK_CASE(M_, NV_)                                                                     \
    case (M_) * 8 + (NV_):                                                                   \
        SFX(micro_kernel)(M_, NV_, kdim, a, a_rs, a_cs, b, ldb, c, ldc, accumulate);          \
        break;
#if NV == 4
#define MK_CASES(M_) MK_CASE(M_, 1) MK_CASE(M_, 2) MK_CASE(M_, 3) MK_CASE(M_, 4)
#elif NV == 2
#define MK_CASES(M_) MK_CASE(M_, 1) MK_CASE(M_, 2)
#else
#error "attention_tiles.h: NV must be 2 or 4"
#endif

static FNN_NOINLINE void SFX(micro_dispatch)(int m, int nv, int64_t kdim, const FT *a,
                                             int64_t a_rs, int64_t a_cs, const FT *b,
                                             int64_t ldb, FT *c, int64_t ldc, int accumulate)
{
    switch (m * 8 + nv) {
        MK_CASES(1) MK_CASES(2) MK_CASES(3) MK_CASES(4) MK_CASES(5) MK_CASES(6)
    default: break;   /* unreachable: 1 <= m <= MK_MR = 6, 1 <= nv <= NV */
    }
}
#undef MK_CASES
#undef MK_CASE

/* C (M x N, row stride ldc) (+)= A (M x kdim, strides a_rs, a_cs) * B (kdim x N, row stride ldb);
 * N is a multiple of VL. */
static void SFX(tile_gemm)(int64_t M, int64_t N, int64_t kdim, const FT *a, int64_t a_rs,
                           int64_t a_cs, const FT *b, int64_t ldb, FT *c, int64_t ldc,
                           int accumulate)
{
    for (int64_t c0 = 0; c0 < N; c0 += NV * VL) {
        int nv = (N - c0) / VL < NV ? (int)((N - c0) / VL) : NV;
        for (int64_t r0 = 0; r0 < M; r0 += MK_MR) {
            int m = M - r0 < MK_MR ? (int)(M - r0) : MK_MR;
            SFX(micro_dispatch)(m, nv, kdim, a + r0 * a_rs, a_rs, a_cs, b + c0, ldb,
                                c + r0 * ldc + c0, ldc, accumulate);
        }
    }
}

/* ---------------------------------------------------------------- forward */
/* One query block [i0, i0+nq) of one head against keys [0, kend), in key tiles of FWD_BK.
 * Scores are kept transposed, st[j][i] (vectors along queries), so the online softmax's running
 * max and sum are per-lane: no horizontal reductions. Scores are in base 2 (q is pre-scaled by
 * scale*log2(e)) so that p = 2^(s - m). */
static void SFX(forward_block)(const FT *q, const FT *k, const FT *v, FT *out, FT *lse,
                               int64_t i0, int64_t nq, int64_t s_len, int64_t d,
                               const int64_t *ld, int causal, FT scale2, FT *qt, FT *st, FT *ot,
                               FT *mrow, FT *lrow)
{
    const FT ninf = -(FT)INFINITY;
    /* qt[dd][i] = q[i][dd] * scale2, zero-padded to FWD_BQ queries. */
    for (int64_t dd = 0; dd < d; dd++) {
        for (int64_t i = 0; i < nq; i++)
            qt[dd * FWD_BQ + i] = q[(i0 + i) * ld[0] + dd] * scale2;
        for (int64_t i = nq; i < FWD_BQ; i++)
            qt[dd * FWD_BQ + i] = 0;
    }
    for (int64_t i = 0; i < FWD_BQ; i++) {
        mrow[i] = ninf;
        lrow[i] = 0;
    }
    /* causal: keys past the block's last query are masked for every row: skip those tiles. */
    const int64_t kend = causal && i0 + nq < s_len ? i0 + nq : s_len;
    for (int64_t j0 = 0; j0 < kend; j0 += FWD_BK) {
        const int64_t nk = kend - j0 < FWD_BK ? kend - j0 : FWD_BK;
        /* st[j][i] = k[j0+j] . qt[:, i] */
        SFX(tile_gemm)(nk, FWD_BQ, d, k + j0 * ld[1], ld[1], 1, qt, FWD_BQ, st, FWD_BQ, 0);
        if (causal && j0 + nk - 1 > i0) {   /* a tile on the diagonal: mask j0+j > i0+i */
            for (int64_t j = 0; j < nk; j++) {
                int64_t iend = j0 + j - i0;   /* rows i < iend are masked */
                if (iend > FWD_BQ) iend = FWD_BQ;
                for (int64_t i = 0; i < iend; i++)
                    st[j * FWD_BQ + i] = ninf;
            }
        }
        /* The first tile holds key 0, which no row masks, so every real row's max is finite
         * from the start and 2^(m_old - m_new) is never inf - inf. Padded rows (i >= nq) score
         * 0 and are never masked, so they stay finite too. */
        for (int64_t i = 0; i < FWD_BQ; i += VL) {
            VEC mold = V_LOAD(mrow + i), mnew = mold;
            for (int64_t j = 0; j < nk; j++)
                mnew = V_MAX(mnew, V_LOAD(st + j * FWD_BQ + i));
            VEC sum = V_ZERO();
            for (int64_t j = 0; j < nk; j++) {
                VEC pj = V_EXP2(V_SUB(V_LOAD(st + j * FWD_BQ + i), mnew));
                V_STORE(st + j * FWD_BQ + i, pj);
                sum = V_ADD(sum, pj);
            }
            VEC alpha = V_EXP2(V_SUB(mold, mnew));   /* 0 on the first tile (mold = -inf) */
            V_STORE(lrow + i, V_FMA(V_LOAD(lrow + i), alpha, sum));
            V_STORE(mrow + i, mnew);
            if (j0 > 0)
                for (int64_t dd = 0; dd < d; dd++)
                    V_STORE(ot + dd * FWD_BQ + i, V_MUL(V_LOAD(ot + dd * FWD_BQ + i), alpha));
        }
        /* ot[dd][i] (+)= sum_j v[j0+j][dd] * p[j][i] */
        SFX(tile_gemm)(d, FWD_BQ, nk, v + j0 * ld[2], 1, ld[2], st, FWD_BQ, ot, FWD_BQ, j0 > 0);
    }
    for (int64_t i = 0; i < nq; i++) {
        FT inv = 1 / lrow[i];
        for (int64_t dd = 0; dd < d; dd++)
            out[(i0 + i) * ld[3] + dd] = ot[dd * FWD_BQ + i] * inv;
        lse[i0 + i] = (FT)(((double)mrow[i] + log2((double)lrow[i])) * FNN_LN2);
    }
}

static int SFX(attention_forward)(const FT *q, const FT *k, const FT *v, FT *out, FT *lse,
                                  int64_t bh, int64_t nh, int64_t t, int64_t s, int64_t d,
                                  const fnn_att_strides *st4, int causal, double scale)
{
    /* st4: q, k, v, out; a unit's head u = (batch u / nh, head u % nh) */
    const int64_t ld[4] = {st4[0].t, st4[1].t, st4[2].t, st4[3].t};
    const int64_t nqb = (t + FWD_BQ - 1) / FWD_BQ;
    const FT scale2 = (FT)(scale * FNN_LOG2E);
    const size_t per_thread = (size_t)(2 * d * FWD_BQ + FWD_BK * FWD_BQ + 2 * FWD_BQ);
    int failed = 0;
    att_scratch_bytes = (int64_t)(per_thread * sizeof(FT)) * fnn_get_num_threads();
#pragma omp parallel num_threads(fnn_get_num_threads())
    {
        FT *buf = (FT *)att_alloc(per_thread * sizeof(FT));
        if (!buf) {
#pragma omp critical
            failed = 1;
        }
        FT *qt = buf, *ot = qt + d * FWD_BQ, *st = ot + d * FWD_BQ;
        FT *mrow = st + FWD_BK * FWD_BQ, *lrow = mrow + FWD_BQ;
        /* causal: the last query blocks see the most keys; hand them out first. */
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < bh * nqb; u++) {
            if (!buf) continue;
            int64_t h = u / nqb, qb = causal ? nqb - 1 - u % nqb : u % nqb;
            int64_t i0 = qb * FWD_BQ, nq = t - i0 < FWD_BQ ? t - i0 : FWD_BQ;
            SFX(forward_block)(q + ATT_HOFF(st4[0], h, nh), k + ATT_HOFF(st4[1], h, nh),
                               v + ATT_HOFF(st4[2], h, nh), out + ATT_HOFF(st4[3], h, nh),
                               lse + h * t, i0, nq, s, d, ld, causal, scale2, qt, st, ot, mrow,
                               lrow);
        }
        att_free(buf);
    }
    return failed ? -1 : 0;
}

/* ---------------------------------------------------------------- backward */
/* One key block [j0, j0+nk) of one head against every query that sees it (FlashAttention-2):
 * per query tile, recompute p = 2^(s2 - lse2) and
 *     dv += p^T dout,  dp = dout v^T,  ds = p * (dp - drow),  dk += ds^T q,  dq += ds k
 * (scales folded into the packed k). Tiles keep vectors along keys: kt, vt are k, v transposed
 * and zero-padded to BWD_BK keys; dkt, dvt accumulate transposed. dq's tile is rows of
 * length dp_len = D rounded up to VL and is added into dq_dst (which this call owns). */
typedef struct {
    FT *kt, *vt, *kp, *dkt, *dvt, *p, *ds, *dqt;
} SFX(bwd_tiles);

static void SFX(backward_block)(const FT *dout, const FT *q, const FT *k, const FT *v,
                                const FT *lse, const FT *drow, FT *dq_dst, FT *dk, FT *dv,
                                int64_t j0, int64_t nk, int64_t t_len, int64_t d, int64_t dp_len,
                                const int64_t *ld, int causal, FT scale, FT scale2,
                                SFX(bwd_tiles) w)
{
    /* row strides: ld[0] dout, [1] q, [2] k, [3] v, [4] dq_dst, [5] dk, [6] dv */
    for (int64_t dd = 0; dd < d; dd++) {
        for (int64_t j = 0; j < nk; j++) {
            w.kt[dd * BWD_BK + j] = k[(j0 + j) * ld[2] + dd] * scale2;
            w.vt[dd * BWD_BK + j] = v[(j0 + j) * ld[3] + dd];
        }
        for (int64_t j = nk; j < BWD_BK; j++)
            w.kt[dd * BWD_BK + j] = w.vt[dd * BWD_BK + j] = 0;
    }
    for (int64_t j = 0; j < BWD_BK; j++)
        for (int64_t dd = 0; dd < dp_len; dd++)
            w.kp[j * dp_len + dd] = j < nk && dd < d ? k[(j0 + j) * ld[2] + dd] * scale : 0;
    for (int64_t x = 0; x < d * BWD_BK; x++)
        w.dkt[x] = w.dvt[x] = 0;

    /* causal: queries before j0 mask the whole block; start the query tiles at j0 so that only
     * the first tile crosses the diagonal. */
    for (int64_t i0 = causal ? j0 : 0; i0 < t_len; i0 += BWD_BQ) {
        const int64_t nq = t_len - i0 < BWD_BQ ? t_len - i0 : BWD_BQ;
        SFX(tile_gemm)(nq, BWD_BK, d, q + i0 * ld[1], ld[1], 1, w.kt, BWD_BK, w.p, BWD_BK, 0);
        SFX(tile_gemm)(nq, BWD_BK, d, dout + i0 * ld[0], ld[0], 1, w.vt, BWD_BK, w.ds, BWD_BK,
                       0);
        for (int64_t i = 0; i < nq; i++) {
            FT *pi = w.p + i * BWD_BK, *dsi = w.ds + i * BWD_BK;
            VEC l2 = V_SET1(lse[i0 + i] * (FT)FNN_LOG2E), dr = V_SET1(drow[i0 + i]);
            for (int64_t j = 0; j < BWD_BK; j += VL) {
                VEC pj = V_EXP2(V_SUB(V_LOAD(pi + j), l2));
                V_STORE(pi + j, pj);
                V_STORE(dsi + j, V_MUL(pj, V_SUB(V_LOAD(dsi + j), dr)));
            }
            /* zero the padded keys (j >= nk) and, on the diagonal, keys j0+j > i0+i */
            int64_t jend = causal && i0 + i - j0 + 1 < nk ? i0 + i - j0 + 1 : nk;
            for (int64_t j = jend; j < BWD_BK; j++)
                pi[j] = dsi[j] = 0;
        }
        /* dvt[dd][j] += sum_i dout[i][dd] p[i][j];  dkt[dd][j] += sum_i q[i][dd] ds[i][j] */
        SFX(tile_gemm)(d, BWD_BK, nq, dout + i0 * ld[0], 1, ld[0], w.p, BWD_BK, w.dvt, BWD_BK,
                       1);
        SFX(tile_gemm)(d, BWD_BK, nq, q + i0 * ld[1], 1, ld[1], w.ds, BWD_BK, w.dkt, BWD_BK, 1);
        /* dq[i][:] += sum_j ds[i][j] kp[j][:] */
        SFX(tile_gemm)(nq, dp_len, nk, w.ds, BWD_BK, 1, w.kp, dp_len, w.dqt, dp_len, 0);
        for (int64_t i = 0; i < nq; i++)
            for (int64_t dd = 0; dd < d; dd++)
                dq_dst[(i0 + i) * ld[4] + dd] += w.dqt[i * dp_len + dd];
    }
    for (int64_t j = 0; j < nk; j++)
        for (int64_t dd = 0; dd < d; dd++) {
            dk[(j0 + j) * ld[5] + dd] = w.dkt[dd * BWD_BK + j] * scale;
            dv[(j0 + j) * ld[6] + dd] = w.dvt[dd * BWD_BK + j];
        }
}

static int SFX(attention_backward)(const FT *dout, const FT *q, const FT *k, const FT *v,
                                   const FT *out, const FT *lse, FT *dq, FT *dk, FT *dv,
                                   int64_t bh, int64_t nh, int64_t t, int64_t s, int64_t d,
                                   const fnn_att_strides *st8, int causal, double scale)
{
    /* st8: dout, q, k, v, out, dq, dk, dv; partial dq buffers are (bh, t, d) contiguous */
    const int64_t nkb = (s + BWD_BK - 1) / BWD_BK;
    const int64_t dp_len = (d + VL - 1) / VL * VL;
    const int nsplit = att_key_splits(bh, nkb);
    const size_t per_thread =
        (size_t)(2 * d * BWD_BK + BWD_BK * dp_len + 2 * d * BWD_BK + 2 * BWD_BQ * BWD_BK +
                 BWD_BQ * dp_len);
    const size_t shared = (size_t)(bh * t) + (size_t)(nsplit - 1) * (size_t)(bh * t * d);
    FT *drow = (FT *)att_alloc(shared * sizeof(FT));
    if (!drow)
        return -1;
    /* Partial dq of key split sp > 0 (split 0 accumulates into dq itself). */
    FT *dq_part = drow + bh * t;
    int failed = 0;
    att_scratch_bytes = (int64_t)(shared * sizeof(FT)) +
                        (int64_t)(per_thread * sizeof(FT)) * fnn_get_num_threads();
#pragma omp parallel num_threads(fnn_get_num_threads())
    {
        /* drow[i] = dout[i] . out[i], the softmax-backward row term; zero every dq buffer. */
#pragma omp for schedule(static)
        for (int64_t r = 0; r < bh * t; r++) {
            const int64_t h = r / t, i = r % t;
            const FT *dor = dout + ATT_HOFF(st8[0], h, nh) + i * st8[0].t;
            const FT *outr = out + ATT_HOFF(st8[4], h, nh) + i * st8[4].t;
            FT *dqr = dq + ATT_HOFF(st8[5], h, nh) + i * st8[5].t;
            FT acc = 0;
            for (int64_t dd = 0; dd < d; dd++)
                acc += dor[dd] * outr[dd];
            drow[r] = acc;
            for (int64_t dd = 0; dd < d; dd++)
                dqr[dd] = 0;
            for (int64_t sp = 1; sp < nsplit; sp++)
                for (int64_t dd = 0; dd < d; dd++)
                    dq_part[((sp - 1) * bh * t + r) * d + dd] = 0;
        }
        FT *buf = (FT *)att_alloc(per_thread * sizeof(FT));
        if (!buf) {
#pragma omp critical
            failed = 1;
        }
        SFX(bwd_tiles) w;
        w.kt = buf;
        w.vt = w.kt + d * BWD_BK;
        w.kp = w.vt + d * BWD_BK;
        w.dkt = w.kp + BWD_BK * dp_len;
        w.dvt = w.dkt + d * BWD_BK;
        w.p = w.dvt + d * BWD_BK;
        w.ds = w.p + BWD_BQ * BWD_BK;
        w.dqt = w.ds + BWD_BQ * BWD_BK;
        /* Unit (head, split) owns its dq buffer, so no two threads ever add into the same dq.
         * Split sp takes key blocks sp, sp + nsplit, ...: early (heavier, causal) blocks are
         * spread over the splits. */
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < bh * nsplit; u++) {
            if (!buf) continue;
            int64_t h = u / nsplit, sp = u % nsplit;
            FT *dq_dst = sp == 0 ? dq + ATT_HOFF(st8[5], h, nh)
                                 : dq_part + ((sp - 1) * bh + h) * t * d;
            const int64_t ld[7] = {st8[0].t, st8[1].t, st8[2].t, st8[3].t,
                                   sp == 0 ? st8[5].t : d, st8[6].t, st8[7].t};
            for (int64_t kb = sp; kb < nkb; kb += nsplit) {
                int64_t j0 = kb * BWD_BK, nk = s - j0 < BWD_BK ? s - j0 : BWD_BK;
                SFX(backward_block)(dout + ATT_HOFF(st8[0], h, nh), q + ATT_HOFF(st8[1], h, nh),
                                    k + ATT_HOFF(st8[2], h, nh), v + ATT_HOFF(st8[3], h, nh),
                                    lse + h * t, drow + h * t, dq_dst,
                                    dk + ATT_HOFF(st8[6], h, nh), dv + ATT_HOFF(st8[7], h, nh),
                                    j0, nk, t, d, dp_len, ld, causal, (FT)scale,
                                    (FT)(scale * FNN_LOG2E), w);
            }
        }
        att_free(buf);
        if (nsplit > 1) {
#pragma omp for schedule(static)
            for (int64_t r = 0; r < bh * t; r++) {
                FT *dqr = dq + ATT_HOFF(st8[5], r / t, nh) + (r % t) * st8[5].t;
                for (int64_t sp = 1; sp < nsplit; sp++)
                    for (int64_t dd = 0; dd < d; dd++)
                        dqr[dd] += dq_part[((sp - 1) * bh * t + r) * d + dd];
            }
        }
    }
    att_free(drow);
    return failed ? -1 : 0;
}
