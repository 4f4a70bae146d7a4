/* The GEMM driver: five loops around a register-tiled micro-kernel (GotoBLAS / BLIS).
 *
 * A template: gemm_<isa>.c includes it once per dtype after defining
 *   GEMM_T                    element type (float or double)
 *   GEMM_MR, GEMM_NR          micro-tile: the micro-kernel computes an MR x NR block of c
 *   GEMM_KC, GEMM_MC, GEMM_NC block sizes for a CPU whose cache sizes cannot be read: the
 *                             blocking normally comes from the caches (choose_blocks):
 *                             KC  depth of one packed panel: an NR x KC sliver of B in half of L1d
 *                             MC  rows of A packed at once: MC x KC in half of L2
 *                             NC  columns of B packed at once: KC x NC in half of L3 (shared)
 *   GEMM_UKR                  the micro-kernel, see below
 *   GEMM_ENTRY                the name of the function this file defines
 *   GEMM_SFX(name)            name-mangling for the static helpers (two dtypes share one file)
 *   GEMM_VEC_BYTES            vector width of the ISA, for the skinny kernels
 *
 * The micro-kernel computes c[0:MR, 0:NR] = alpha * Ap @ Bp + beta * c, where Ap is a packed
 * MR x kc sliver of A stored column by column (Ap[p*MR + i]) and Bp a packed kc x NR sliver of B
 * stored row by row (Bp[p*NR + j]); with beta == 0 it must not read c:
 *   void GEMM_UKR(int64_t kc, const T *Ap, const T *Bp, T *c, int64_t ldc,
 *                 const T *alpha, const T *beta);
 *
 * Loops, outermost first (jc, pc, ic, jr, ir):
 *   for jc in n step NC:            B columns for this block
 *     for pc in k step KC:          pack B[pc:pc+KC, jc:jc+NC] (each thread its own columns)
 *       for ic in m step MC:        pack A[ic:ic+MC, pc:pc+KC] (each thread its own rows)
 *         for jr in nc step NR:
 *           for ir in mc step MR:   micro-kernel
 * Transposes are absorbed by packing: op(A)[i, p] = a[i*rs_a + p*cs_a], op(B)[p, j] = b[p*rs_b + j*cs_b].
 * Panels are zero-padded to whole MR / NR slivers, so the micro-kernel always runs full tiles;
 * a tile that sticks out of c is computed into a scratch tile and only its valid part stored.
 *
 * Threads (OpenMP): the rows and columns of c are split ways_m x ways_n (choose_ways), and each
 * thread packs the rows of A and columns of B of its own rectangle: no barrier inside a call.
 * alpha and beta are applied when the micro-kernel stores c.
 * Products with m or n <= GEMM_SKINNY, or both <= 2 * GEMM_SKINNY, skip all this (gemm_skinny).
 */
#ifndef FNN_GEMM_DRIVER_ONCE
#define FNN_GEMM_DRIVER_ONCE
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif
#endif

#define T GEMM_T
#define MR GEMM_MR
#define NR GEMM_NR
#define KC (job->kc_blk)       /* the run-time blocking of this call (choose_blocks) */
#define MC (job->mc_blk)
#define NC (job->nc_blk)
/* Multiply-adds (the whole call) that make a second thread worth waking. Under
 * OMP_WAIT_POLICY=passive (fastnn's default) the fork and join on sleeping threads cost
 * 12-18 us each here (AMD EPYC VM); a call has one of each (no barrier inside, see
 * gemm_thread), so a thread must save ~40 us: ~1.5 M multiply-adds at ~35 GMAC/s, doubled for
 * the noise (64x128x128, 1 M, took 30 us on one thread, 45 us on two). The small MLP's GEMMs
 * stay on one thread; the MLP's and GPT's large ones (>= 12 M) take two. */
#ifndef GEMM_PARALLEL_MIN_MNK
#define GEMM_PARALLEL_MIN_MNK (128 * 128 * 192)
#endif
#ifndef GEMM_SKINNY            /* m or n up to this takes the skinny path (no packing) */
#define GEMM_SKINNY 8
#endif

/* Everything the threads share for one call. */
typedef struct {
    int64_t m, n, k;
    const T *a; int64_t rs_a, cs_a;
    const T *b; int64_t rs_b, cs_b;
    T *c; int64_t ldc;
    T alpha, beta;
    T *b_packed;            /* KC x NC per thread, b_stride apart */
    int64_t b_stride;
    T *a_packed;            /* MC x KC per thread */
    int64_t kc_blk, mc_blk, nc_blk;
    /* fused epilogue (gemm.h), applied to each MC x NC block after its last slice of k */
    int epilogue;                                   /* any of the next four */
    const T *bias, *residual;
    T *preact;
    void (*act)(const T *, T *, int64_t);
    T *sum_a, *sum_b;                               /* bias gradient: sums over k */
} GEMM_SFX(gemm_job);

/* Block sizes from the data caches (see the top of this file), rounded to whole slivers;
 * GEMM_KC/MC/NC where the sizes are unknown. */
static void GEMM_SFX(choose_blocks)(int64_t *kc, int64_t *mc, int64_t *nc)
{
    int64_t l1, l2, l3;
    fnn_cache_sizes(&l1, &l2, &l3);
    const int64_t sz = (int64_t)sizeof(T);
    int64_t k_ = l1 > 0 ? l1 / 2 / (GEMM_NR * sz) / 16 * 16 : GEMM_KC;
    k_ = k_ < 64 ? 64 : k_ > 512 ? 512 : k_;
    int64_t m_ = l2 > 0 ? l2 / 2 / (k_ * sz) / GEMM_MR * GEMM_MR : GEMM_MC;
    m_ = m_ < 4 * GEMM_MR ? 4 * GEMM_MR : m_ > 512 ? 512 / GEMM_MR * GEMM_MR : m_;
    int64_t n_ = l3 > 0 ? l3 / 2 / (k_ * sz) / GEMM_NR * GEMM_NR : GEMM_NC;
    n_ = n_ < 16 * GEMM_NR ? 16 * GEMM_NR : n_ > 8192 ? 8192 : n_;
    *kc = k_;
    *mc = m_;
    *nc = n_;
}

static inline int64_t GEMM_SFX(min64)(int64_t x, int64_t y) { return x < y ? x : y; }

/* ------------------------------------------------------------------ packing */

/* Pack op(A)[0:mr, 0:kc] (mr <= MR) into an MR-wide sliver: dst[p*MR + i]; rows >= mr are zero.
 * op(A) is either a (rows contiguous, cs_a == 1) or a^T (columns contiguous, rs_a == 1). */
static void GEMM_SFX(pack_a_sliver)(int64_t mr, int64_t kc, const T *a, int64_t rs_a,
                                     int64_t cs_a, T *restrict dst)
{
    if (cs_a == 1 && mr == MR) {            /* a not transposed: MR row streams, written in
                                             * order (row by row scattered every store) */
        const T *rows[MR];
        for (int64_t i = 0; i < MR; i++) rows[i] = a + i * rs_a;
        for (int64_t p = 0; p < kc; p++)
            for (int64_t i = 0; i < MR; i++) dst[p * MR + i] = rows[i][p];
    } else if (cs_a == 1) {
        for (int64_t i = 0; i < MR; i++) {
            const T *restrict row = a + i * rs_a;
            if (i < mr)
                for (int64_t p = 0; p < kc; p++) dst[p * MR + i] = row[p];
            else
                for (int64_t p = 0; p < kc; p++) dst[p * MR + i] = 0;
        }
    } else if (mr == MR) {                  /* a transposed: MR contiguous values per step of k */
        for (int64_t p = 0; p < kc; p++)
            for (int64_t i = 0; i < MR; i++) dst[p * MR + i] = a[p * cs_a + i];
    } else {
        for (int64_t p = 0; p < kc; p++) {
            for (int64_t i = 0; i < mr; i++) dst[p * MR + i] = a[p * cs_a + i];
            for (int64_t i = mr; i < MR; i++) dst[p * MR + i] = 0;
        }
    }
}

/* Pack op(B)[0:kc, 0:nr] (nr <= NR) into an NR-wide sliver: dst[p*NR + j]; columns >= nr are
 * zero. op(B) is either b (rows contiguous, cs_b == 1) or b^T (columns contiguous, rs_b == 1). */
static void GEMM_SFX(pack_b_sliver)(int64_t kc, int64_t nr, const T *b, int64_t rs_b,
                                     int64_t cs_b, T *restrict dst)
{
    if (cs_b != 1) {                        /* b transposed: read column by column */
        for (int64_t j = 0; j < NR; j++) {
            const T *restrict col = b + j * cs_b;
            if (j < nr)
                for (int64_t p = 0; p < kc; p++) dst[p * NR + j] = col[p];
            else
                for (int64_t p = 0; p < kc; p++) dst[p * NR + j] = 0;
        }
    } else if (nr == NR) {                  /* b not transposed: NR contiguous values per row */
        for (int64_t p = 0; p < kc; p++)
            for (int64_t j = 0; j < NR; j++) dst[p * NR + j] = b[p * rs_b + j];
    } else {
        for (int64_t p = 0; p < kc; p++) {
            for (int64_t j = 0; j < nr; j++) dst[p * NR + j] = b[p * rs_b + j];
            for (int64_t j = nr; j < NR; j++) dst[p * NR + j] = 0;
        }
    }
}

/* ------------------------------------------------------------------ one tile */

static inline void GEMM_SFX(tile)(const GEMM_SFX(gemm_job) *job, int64_t mr, int64_t nr,
                                  int64_t kc, const T *ap, const T *bp, T *c, T beta)
{
    if (mr == MR && nr == NR) {
        GEMM_UKR(kc, ap, bp, c, job->ldc, &job->alpha, &beta);
        return;
    }
    /* Edge tile: full MR x NR into scratch, then store the valid part. */
    T tmp[MR * NR] __attribute__((aligned(64)));
    const T zero = 0;
    GEMM_UKR(kc, ap, bp, tmp, NR, &job->alpha, &zero);
    for (int64_t i = 0; i < mr; i++) {
        T *crow = c + i * job->ldc;
        if (beta == 0)
            for (int64_t j = 0; j < nr; j++) crow[j] = tmp[i * NR + j];
        else
            for (int64_t j = 0; j < nr; j++) crow[j] = tmp[i * NR + j] + beta * crow[j];
    }
}

/* ------------------------------------------------------------------ fused epilogue */

/* c[i0:i0+rows, j0:j0+cols] (already alpha * AB + beta * c) += bias; preact = it; c = act(it)
 * + residual. Row pieces of at most 512 go through a stack buffer: the activation kernels want
 * distinct input and output (and run serially at that length, inside the GEMM's threads). */
static void GEMM_SFX(epilogue)(const GEMM_SFX(gemm_job) *job, int64_t i0, int64_t j0,
                               int64_t rows, int64_t cols)
{
    T buf[512] __attribute__((aligned(64)));
    const int64_t ldc = job->ldc;
    for (int64_t i = i0; i < i0 + rows; i++) {
        for (int64_t j = j0; j < j0 + cols; j += 512) {
            const int64_t w = GEMM_SFX(min64)(512, j0 + cols - j);
            T *restrict cr = job->c + i * ldc + j;
            if (job->bias) {
                const T *restrict br = job->bias + j;
                for (int64_t l = 0; l < w; l++) cr[l] += br[l];
            }
            if (job->preact) memcpy(job->preact + i * ldc + j, cr, w * sizeof(T));
            if (job->act) {
                memcpy(buf, cr, w * sizeof(T));
                job->act(buf, cr, w);
            }
            if (job->residual) {
                const T *restrict rr = job->residual + i * ldc + j;
                for (int64_t l = 0; l < w; l++) cr[l] += rr[l];
            }
        }
    }
}

/* sums[0:n] += alpha * (sums over the kc steps of a packed sliver with `width` lanes); the
 * sliver was just written, so this reads L1. */
static void GEMM_SFX(sum_sliver)(const T *restrict packed, int64_t kc, int width, int64_t n,
                                 T alpha, T *restrict sums)
{
    T acc[GEMM_MR > GEMM_NR ? GEMM_MR : GEMM_NR] = {0};
    for (int64_t p = 0; p < kc; p++)
        for (int l = 0; l < width; l++) acc[l] += packed[p * width + l];
    for (int64_t l = 0; l < n; l++) sums[l] += alpha * acc[l];
}

/* ------------------------------------------------------------------ the five loops */

/* Split `threads` into ways_m x ways_n. Each thread packs the rows of A and the columns of B its
 * own rectangle of c needs (no sharing, so no barrier inside a call), so its cost is its share of
 * c plus the perimeter it packs, weighted by what packing an element costs in multiply-adds. */
#define GEMM_PACK_WEIGHT 4
static void GEMM_SFX(choose_ways)(int64_t m, int64_t n, int64_t nc_blk, int threads,
                                  int *ways_m, int *ways_n)
{
    const int64_t m_tiles = (m + MR - 1) / MR;
    const int64_t n_tiles = (GEMM_SFX(min64)(n, nc_blk) + NR - 1) / NR;
    int64_t best = -1;
    for (int wn = 1; wn <= threads; wn++) {
        if (threads % wn) continue;
        const int wm = threads / wn;
        const int64_t rows = (m_tiles + wm - 1) / wm * MR, cols = (n_tiles + wn - 1) / wn * NR;
        const int64_t cost = rows * cols + GEMM_PACK_WEIGHT * (rows + cols);
        if (best < 0 || cost < best) {
            best = cost;
            *ways_m = wm;
            *ways_n = wn;
        }
    }
}

/* Thread `tid` of the team multiplies its own rectangle of c (ways_m x ways_n grid, boundaries on
 * MR / NR multiples), packing the slivers of A and B it needs into its own buffers.
 * Why not share one packed B block between the threads (BLIS's way)? Sharing needs two barriers
 * per KC x NC slice, and under OMP_WAIT_POLICY=passive (fastnn's default, see threads.py) a
 * thread that reaches a barrier first sleeps and is woken by a futex: 2-thread GEMMs of the GPT
 * step's shapes ran at 50-73 GFLOP/s so, 85-121 spinning. Packing B twice when rows are split
 * costs k x n element copies per thread against m/2 x n x k multiply-adds: small for m >= 64. */
static void GEMM_SFX(gemm_thread)(const GEMM_SFX(gemm_job) *job, int tid, int nthreads)
{
    const int64_t m = job->m, n = job->n, k = job->k;
    int ways_m = nthreads, ways_n = 1;
    GEMM_SFX(choose_ways)(m, n, NC, nthreads, &ways_m, &ways_n);
    const int tm = tid / ways_n, tn = tid % ways_n;
    T *a_packed = job->a_packed + (int64_t)tid * MC * KC;
    T *b_packed = job->b_packed + (int64_t)tid * job->b_stride;

    /* this thread's rows of c */
    const int64_t m_tiles = (m + MR - 1) / MR;
    const int64_t m_lo = GEMM_SFX(min64)(m, m_tiles * tm / ways_m * MR);
    const int64_t m_hi = GEMM_SFX(min64)(m, m_tiles * (tm + 1) / ways_m * MR);

    for (int64_t jc = 0; jc < n; jc += NC) {                      /* loop 5: NC columns */
        const int64_t nc = GEMM_SFX(min64)(NC, n - jc);
        const int64_t n_tiles = (nc + NR - 1) / NR;
        const int64_t n_lo = GEMM_SFX(min64)(nc, n_tiles * tn / ways_n * NR);
        const int64_t n_hi = GEMM_SFX(min64)(nc, n_tiles * (tn + 1) / ways_n * NR);

        for (int64_t pc = 0; pc < k; pc += KC) {                  /* loop 4: KC deep */
            const int64_t kc = GEMM_SFX(min64)(KC, k - pc);
            const T beta = pc == 0 ? job->beta : (T)1;            /* later slices accumulate */
            const int last = pc + kc >= k;                       /* c final after this slice */

            /* pack this thread's columns of B[pc:pc+kc, jc:jc+nc] */
            for (int64_t j = n_lo; j < n_hi; j += NR) {
                GEMM_SFX(pack_b_sliver)(kc, GEMM_SFX(min64)(NR, nc - j),
                                        job->b + pc * job->rs_b + (jc + j) * job->cs_b,
                                        job->rs_b, job->cs_b, b_packed + j * kc);
                /* (the threads of one column share pack the same slivers: one of them sums) */
                if (job->sum_b && tm == 0)
                    GEMM_SFX(sum_sliver)(b_packed + j * kc, kc, NR, GEMM_SFX(min64)(NR, nc - j),
                                         job->alpha, job->sum_b + jc + j);
            }

            for (int64_t ic = m_lo; ic < m_hi; ic += MC) {        /* loop 3: MC rows */
                const int64_t mc = GEMM_SFX(min64)(MC, m_hi - ic);
                for (int64_t i = 0; i < mc; i += MR) {
                    GEMM_SFX(pack_a_sliver)(GEMM_SFX(min64)(MR, mc - i), kc,
                                            job->a + (ic + i) * job->rs_a + pc * job->cs_a,
                                            job->rs_a, job->cs_a, a_packed + i * kc);
                    /* rows are packed again per NC block and per column share: sum once */
                    if (job->sum_a && jc == 0 && tn == 0)
                        GEMM_SFX(sum_sliver)(a_packed + i * kc, kc, MR,
                                             GEMM_SFX(min64)(MR, mc - i), job->alpha,
                                             job->sum_a + ic + i);
                }

                for (int64_t jr = n_lo; jr < n_hi; jr += NR) {    /* loop 2: NR columns */
                    const int64_t nr = GEMM_SFX(min64)(NR, nc - jr);
                    for (int64_t ir = 0; ir < mc; ir += MR) {     /* loop 1: MR rows */
                        const int64_t mr = GEMM_SFX(min64)(MR, mc - ir);
                        GEMM_SFX(tile)(job, mr, nr, kc, a_packed + ir * kc, b_packed + jr * kc,
                                       job->c + (ic + ir) * job->ldc + jc + jr, beta);
                    }
                }
                /* this thread's MC x (its columns of NC) block of c is final: one epilogue
                 * pass while it is still in L2 (per tile, the calls on 16-wide row pieces
                 * cost more than the pass they save) */
                if (last && job->epilogue && n_hi > n_lo)
                    GEMM_SFX(epilogue)(job, ic, jc + n_lo, mc, n_hi - n_lo);
            }
        }
    }
}

/* ------------------------------------------------------------------ skinny products
 * When m (or n, by transposing the problem) is tiny, packing the big operand costs as much as
 * the whole product: each of its elements is used m times only. These kernels read it in place
 * and pack only the small operand. Written with GCC vector extensions, so each ISA's copy of
 * this template gets its own vector width (GEMM_VEC_BYTES). c[i, j] is c[i*rs_c + j*cs_c]. */
#define VL (GEMM_VEC_BYTES / (int)sizeof(T))        /* lanes per vector */
typedef T GEMM_SFX(vec) __attribute__((vector_size(GEMM_VEC_BYTES)));

static inline GEMM_SFX(vec) GEMM_SFX(loadu)(const T *p)
{
    GEMM_SFX(vec) v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void GEMM_SFX(store_scaled)(T *c, T value, T alpha, T beta)
{
    *c = beta == 0 ? alpha * value : alpha * value + beta * *c;
}

/* Rows kernel, op(B) rows contiguous: c[0:R, j:j+w] for w <= 2*VL (one strip of columns).
 * Per step of k: two vectors of a row of B, R broadcasts of A, 2R FMAs. ap is R x k, row-major. */
static inline __attribute__((always_inline)) void
GEMM_SFX(skinny_rows)(const int R, int64_t k, const T *ap, const T *b, int64_t rs_b, int64_t w,
                      T *c, int64_t rs_c, int64_t cs_c, T alpha, T beta)
{
    GEMM_SFX(vec) acc[8][2] = {{{0}}};
    T row[2 * VL] __attribute__((aligned(64))) = {0};
    for (int64_t p = 0; p < k; p++) {
        const T *bp = b + p * rs_b;
        GEMM_SFX(vec) b0, b1 = {0};
        if (w == 2 * VL) {
            b0 = GEMM_SFX(loadu)(bp);
            b1 = GEMM_SFX(loadu)(bp + VL);
        } else if (w == VL) {
            b0 = GEMM_SFX(loadu)(bp);
        } else {                               /* last strip: copy the row into zero padding */
            for (int64_t j = 0; j < w; j++) row[j] = bp[j];
            b0 = GEMM_SFX(loadu)(row);
            b1 = GEMM_SFX(loadu)(row + VL);
        }
        for (int r = 0; r < R; r++) {
            const T ar = ap[r * k + p];
            acc[r][0] += ar * b0;
            acc[r][1] += ar * b1;
        }
    }
    for (int r = 0; r < R; r++) {
        T out[2 * VL];
        memcpy(out, acc[r], sizeof out);
        for (int64_t j = 0; j < w; j++)
            GEMM_SFX(store_scaled)(c + r * rs_c + j * cs_c, out[j], alpha, beta);
    }
}

/* Dots kernel, op(B) columns contiguous: c[0:R, 0:C] as R x C dot products of length k between
 * rows of ap (R x k, row-major) and columns of B (b + j*cs_b). */
static inline __attribute__((always_inline)) void
GEMM_SFX(skinny_dots)(const int R, const int C, int64_t k, const T *ap, const T *b, int64_t cs_b,
                      T *c, int64_t rs_c, int64_t cs_c, T alpha, T beta)
{
    GEMM_SFX(vec) acc[2][4] = {{{0}}};
    const int64_t k_vec = k - k % VL;
    for (int64_t p = 0; p < k_vec; p += VL) {
        GEMM_SFX(vec) av[2], bv[4];
        for (int r = 0; r < R; r++) av[r] = GEMM_SFX(loadu)(ap + r * k + p);
        for (int j = 0; j < C; j++) bv[j] = GEMM_SFX(loadu)(b + j * cs_b + p);
        for (int r = 0; r < R; r++)
            for (int j = 0; j < C; j++) acc[r][j] += av[r] * bv[j];
    }
    for (int r = 0; r < R; r++)
        for (int j = 0; j < C; j++) {
            T sum = 0;
            for (int l = 0; l < VL; l++) sum += acc[r][j][l];
            for (int64_t p = k_vec; p < k; p++) sum += ap[r * k + p] * b[j * cs_b + p];
            GEMM_SFX(store_scaled)(c + r * rs_c + j * cs_c, sum, alpha, beta);
        }
}

/* One share of columns [j0, j1) of the skinny product, all m rows. */
static void GEMM_SFX(skinny_columns)(int64_t m, int64_t j0, int64_t j1, int64_t k, const T *ap,
                                     const T *b, int64_t rs_b, int64_t cs_b, T *c, int64_t rs_c,
                                     int64_t cs_c, T alpha, T beta)
{
    if (cs_b == 1) {                         /* rows of op(B) contiguous: strips of 2 vectors */
        for (int64_t j = j0; j < j1; j += 2 * VL) {
            const int64_t w = GEMM_SFX(min64)(2 * VL, j1 - j);
            int64_t i = 0;
            /* the constant R of each call lets the compiler keep acc in registers */
            for (; i + 8 <= m; i += 8)
                GEMM_SFX(skinny_rows)(8, k, ap + i * k, b + j, rs_b, w, c + i * rs_c + j * cs_c, rs_c, cs_c, alpha, beta);
            if (i + 4 <= m) {
                GEMM_SFX(skinny_rows)(4, k, ap + i * k, b + j, rs_b, w, c + i * rs_c + j * cs_c, rs_c, cs_c, alpha, beta);
                i += 4;
            }
            if (i + 2 <= m) {
                GEMM_SFX(skinny_rows)(2, k, ap + i * k, b + j, rs_b, w, c + i * rs_c + j * cs_c, rs_c, cs_c, alpha, beta);
                i += 2;
            }
            if (i < m)
                GEMM_SFX(skinny_rows)(1, k, ap + i * k, b + j, rs_b, w, c + i * rs_c + j * cs_c, rs_c, cs_c, alpha, beta);
        }
    } else {                                 /* columns of op(B) contiguous (rs_b == 1) */
        for (int64_t i = 0; i < m; i += 2) {
            const int R = m - i >= 2 ? 2 : 1;
            int64_t j = j0;
            for (; j + 4 <= j1; j += 4) {
                if (R == 2)
                    GEMM_SFX(skinny_dots)(2, 4, k, ap + i * k, b + j * cs_b, cs_b, c + i * rs_c + j * cs_c, rs_c, cs_c, alpha, beta);
                else
                    GEMM_SFX(skinny_dots)(1, 4, k, ap + i * k, b + j * cs_b, cs_b, c + i * rs_c + j * cs_c, rs_c, cs_c, alpha, beta);
            }
            for (; j < j1; j++) {
                if (R == 2)
                    GEMM_SFX(skinny_dots)(2, 1, k, ap + i * k, b + j * cs_b, cs_b, c + i * rs_c + j * cs_c, rs_c, cs_c, alpha, beta);
                else
                    GEMM_SFX(skinny_dots)(1, 1, k, ap + i * k, b + j * cs_b, cs_b, c + i * rs_c + j * cs_c, rs_c, cs_c, alpha, beta);
            }
        }
    }
}

/* c = alpha * op(A) @ op(B) + beta * c for small m: op(A) packed to m x k row-major (unless it
 * already is), op(B) read in place, columns split among threads. When n is small too (less than
 * one vector), op(B)^T is packed as well and every c[i, j] is a dot product
 * of two contiguous rows, vectorized along k. */
static void GEMM_SFX(gemm_skinny)(int64_t m, int64_t n, int64_t k, T alpha, const T *a,
                                  int64_t rs_a, int64_t cs_a, const T *b, int64_t rs_b,
                                  int64_t cs_b, T beta, T *c, int64_t rs_c, int64_t cs_c,
                                  int max_threads)
{
    if (n == 1)
        cs_b = k;                            /* one column of op(B) is contiguous either way */
    const int pack_a = !(cs_a == 1 && rs_a == k);
    const int pack_bt = cs_b == 1 && n < VL;
    T *ws = NULL;
    if (pack_a || pack_bt) {
        ws = (T *)fnn_gemm_workspace(sizeof(T) * ((pack_a ? m * k : 0) + (pack_bt ? n * k : 0)));
        if (!ws) return;
    }
    const T *ap = a;
    if (pack_a) {
        for (int64_t i = 0; i < m; i++)
            for (int64_t p = 0; p < k; p++) ws[i * k + p] = a[i * rs_a + p * cs_a];
        ap = ws;
        ws += m * k;
    }
    if (pack_bt) {                           /* op(B)^T: n x k, row j = column j of op(B) */
        for (int64_t j = 0; j < n; j++)      /* (writes in order: rows k apart alias in L1) */
            for (int64_t p = 0; p < k; p++) ws[j * k + p] = b[p * rs_b + j];
        b = ws;
        rs_b = 1;
        cs_b = k;
    }
    const int64_t unit = cs_b == 1 ? 2 * VL : 4;                /* columns per kernel call */
    const int64_t units = (n + unit - 1) / unit;
    int threads = (int)GEMM_SFX(min64)(GEMM_SFX(min64)(max_threads, units),
                                       1 + m * n * k / GEMM_PARALLEL_MIN_MNK);
    if (threads <= 1) {
        GEMM_SFX(skinny_columns)(m, 0, n, k, ap, b, rs_b, cs_b, c, rs_c, cs_c, alpha, beta);
        return;
    }
    #pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int64_t j0 = GEMM_SFX(min64)(n, units * t / nt * unit);
        const int64_t j1 = GEMM_SFX(min64)(n, units * (t + 1) / nt * unit);
        GEMM_SFX(skinny_columns)(m, j0, j1, k, ap, b, rs_b, cs_b, c, rs_c, cs_c, alpha, beta);
    }
}
#undef VL


/* The sums of the bias gradient on the skinny path (no packed panels there): direct loops. */
static void GEMM_SFX(sums_direct)(int64_t rows, int64_t k, const T *x, int64_t rs, int64_t cs,
                                  T alpha, T *sums)
{
    for (int64_t i = 0; i < rows; i++) {
        T acc = 0;
        for (int64_t p = 0; p < k; p++) acc += x[i * rs + p * cs];
        sums[i] += alpha * acc;
    }
}

#define GEMM_CAT_(x, y) x##y
#define GEMM_CAT(x, y) GEMM_CAT_(x, y)

void GEMM_CAT(GEMM_ENTRY, _ex)(int64_t m, int64_t n, int64_t k, T alpha, const T *a,
                               int trans_a, const T *b, int trans_b, T beta, T *c,
                               int max_threads, const fnn_gemm_epilogue *ep)
{
    const int64_t rs_a = trans_a ? 1 : k, cs_a = trans_a ? m : 1;  /* op(A)[i,p] = a[i*rs_a + p*cs_a] */
    const int64_t rs_b = trans_b ? 1 : n, cs_b = trans_b ? k : 1;  /* op(B)[p,j] = b[p*rs_b + j*cs_b] */
    GEMM_SFX(gemm_job) job_ = {
        .m = m, .n = n, .k = k, .a = a, .b = b, .c = c, .ldc = n, .alpha = alpha, .beta = beta,
        .rs_a = rs_a, .cs_a = cs_a, .rs_b = rs_b, .cs_b = cs_b,
    };
    GEMM_SFX(gemm_job) *job = &job_;
    if (ep) {
        job->bias = (const T *)ep->bias;
        job->residual = (const T *)ep->residual;
        job->preact = (T *)ep->preact;
        job->act = _Generic((T)0, float: fnn_gemm_act_f32, double: fnn_gemm_act_f64)(ep->act);
        job->epilogue = job->bias || job->residual || job->preact || job->act;
        if (ep->sum) {
            T *sums = (T *)ep->sum;
            const int64_t len = ep->sum_of_b ? n : m;
            for (int64_t i = 0; i < len; i++) sums[i] = beta == 0 ? 0 : beta * sums[i];
            if (ep->sum_of_b) job->sum_b = sums;
            else job->sum_a = sums;
        }
    }

    if (m <= GEMM_SKINNY || (m <= 2 * GEMM_SKINNY && n <= 2 * GEMM_SKINNY) || n <= GEMM_SKINNY) {
        if (job->sum_a) GEMM_SFX(sums_direct)(m, k, a, rs_a, cs_a, alpha, job->sum_a);
        if (job->sum_b) GEMM_SFX(sums_direct)(n, k, b, cs_b, rs_b, alpha, job->sum_b);
        if (m <= GEMM_SKINNY || (m <= 2 * GEMM_SKINNY && n <= 2 * GEMM_SKINNY))
            GEMM_SFX(gemm_skinny)(m, n, k, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, n, 1,
                                  max_threads);
        else      /* c^T = op(B)^T @ op(A)^T, c^T[j, i] at c[i*n + j] */
            GEMM_SFX(gemm_skinny)(n, m, k, alpha, b, cs_b, rs_b, a, cs_a, rs_a, beta, c, 1, n,
                                  max_threads);
        if (job->epilogue) GEMM_SFX(epilogue)(job, 0, 0, m, n);
        return;
    }

    GEMM_SFX(choose_blocks)(&job->kc_blk, &job->mc_blk, &job->nc_blk);
    /* each thread needs ~GEMM_PARALLEL_MIN_MNK multiply-adds to repay its fork and join */
    int threads = (int)GEMM_SFX(min64)(max_threads, 1 + m * n * k / GEMM_PARALLEL_MIN_MNK);
    if (threads < 1) threads = 1;

    const int64_t kc_max = GEMM_SFX(min64)(KC, k);
    const int64_t nc_max = (GEMM_SFX(min64)(NC, n) + NR - 1) / NR * NR;
    const int64_t b_size = (kc_max * nc_max + 15) & ~(int64_t)15;     /* keep a_packed aligned */
    /* (KC is a multiple of 16, so every thread's MC x KC panel stays 64-byte aligned) */
    T *ws = (T *)fnn_gemm_workspace(sizeof(T) * (int64_t)threads * (b_size + MC * KC));
    if (!ws) return;   /* out of memory: nothing sensible to do in a void kernel */
    job->b_packed = ws;
    job->b_stride = b_size;
    job->a_packed = ws + (int64_t)threads * b_size;

    if (threads == 1) {
        GEMM_SFX(gemm_thread)(job, 0, 1);
    } else {
        /* the team may be smaller than asked (nested parallelism, thread limits) */
        #pragma omp parallel num_threads(threads)
        GEMM_SFX(gemm_thread)(job, omp_get_thread_num(), omp_get_num_threads());
    }
}

/* The micro-tile and block sizes this path uses here: {MR, NR, KC, MC, NC}. */
void GEMM_CAT(GEMM_ENTRY, _blocks)(int64_t out[5])
{
    out[0] = MR;
    out[1] = NR;
    GEMM_SFX(choose_blocks)(&out[2], &out[3], &out[4]);
}

void GEMM_ENTRY(int64_t m, int64_t n, int64_t k, T alpha, const T *a, int trans_a, const T *b,
                int trans_b, T beta, T *c, int max_threads)
{
    GEMM_CAT(GEMM_ENTRY, _ex)(m, n, k, alpha, a, trans_a, b, trans_b, beta, c, max_threads, 0);
}
#undef GEMM_CAT
#undef GEMM_CAT_

#undef T
#undef MR
#undef NR
#undef KC
#undef MC
#undef NC
#undef GEMM_T
#undef GEMM_MR
#undef GEMM_NR
#undef GEMM_KC
#undef GEMM_MC
#undef GEMM_NC
#undef GEMM_UKR
#undef GEMM_ENTRY
#undef GEMM_SFX
#undef GEMM_VEC_BYTES
#undef GEMM_SKINNY
#undef GEMM_PARALLEL_MIN_MNK
