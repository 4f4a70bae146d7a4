/* The convolution kernels for one dtype: a template, included by conv.c once per dtype after
 * defining
 *   CONV_T          element type (float or double)
 *   CONV_SFX(name)  name-mangling for this dtype's functions
 *   CONV_GEMM(isa)  this dtype's per-ISA GEMM entry (gemm.h), e.g. fnn_sgemm_##isa
 *
 * Shapes (conv view, see conv.h): per group g, with K = (c/groups)*kh*kw and L = oh*ow,
 *   forward          Y[g]  (co/g x L)  = W[g] (co/g x K) @ cols[g] (K x L)
 *   backward-weight  dW[g]^T (K x co/g) += cols[g] (K x L) @ dY[g]^T   (large images)
 *                    dW[g] (co/g x K) += dY[g] (co/g x L) @ cols[g]^T   (grouped small images)
 *   backward-data    dcols[g] (K x L)  = W[g]^T @ dY[g], then col2im(dcols) -> dX
 * cols[g] is the im2col of image n's channels of group g: row (c, i, j), column (oy, ox) holds
 * X[c, oy*sh - ph + i*dh, ox*sw - pw + j*dw] (0 outside the image).
 */
#define T CONV_T

typedef void (*CONV_SFX(gemm_fn))(int64_t m, int64_t n, int64_t k, T alpha, const T *a,
                                  int trans_a, const T *b, int trans_b, T beta, T *c,
                                  int max_threads);

static CONV_SFX(gemm_fn) CONV_SFX(pick_gemm)(void)
{
    switch (fnn_cpu_isa()) {
    case FNN_ISA_AVX512: return CONV_GEMM(avx512);
    case FNN_ISA_AVX2: return CONV_GEMM(avx2);
    default: return CONV_GEMM(portable);
    }
}

/* cols of one image's first `nch` channels (see above) for output rows [oy0, oy1): column
 * (oy - oy0)*ow + ox of rows ld apart (ld > the block's width when several images share the
 * column buffer side by side); x points at the image's first channel. */
static void CONV_SFX(im2col)(const fnn_conv_t *p, const T *restrict x, int64_t nch, int64_t oy0,
                             int64_t oy1, T *restrict col, int64_t ld)
{
    const int64_t L = ld, ow = p->ow, sw = p->sw;
    for (int64_t c = 0; c < nch; c++)
        for (int64_t i = 0; i < p->kh; i++)
            for (int64_t j = 0; j < p->kw; j++) {
                T *row = col + ((c * p->kh + i) * p->kw + j) * L;
                const int64_t ix0 = j * p->dw - p->pw;
                int64_t lo, hi;
                conv_valid_range(ix0, sw, p->w, ow, &lo, &hi);
                for (int64_t oy = oy0; oy < oy1; oy++) {
                    T *restrict dst = row + (oy - oy0) * ow;
                    const int64_t iy = oy * p->sh - p->ph + i * p->dh;
                    if (iy < 0 || iy >= p->h) {
                        memset(dst, 0, sizeof(T) * ow);
                        continue;
                    }
                    const T *restrict src = x + (c * p->h + iy) * p->w;
                    for (int64_t ox = 0; ox < lo; ox++) dst[ox] = 0;
                    if (sw == 1)
                        for (int64_t ox = lo; ox < hi; ox++) dst[ox] = src[ox + ix0];
                    else
                        for (int64_t ox = lo; ox < hi; ox++) dst[ox] = src[ox * sw + ix0];
                    for (int64_t ox = hi; ox < ow; ox++) dst[ox] = 0;
                }
            }
}

/* The adjoint of im2col (same row range): x[...] += each column entry, onto the input position
 * it came from. */
static void CONV_SFX(col2im)(const fnn_conv_t *p, const T *restrict col, int64_t nch, int64_t oy0,
                             int64_t oy1, T *restrict x, int64_t ld)
{
    const int64_t L = ld, ow = p->ow, sw = p->sw;
    for (int64_t c = 0; c < nch; c++)
        for (int64_t i = 0; i < p->kh; i++)
            for (int64_t j = 0; j < p->kw; j++) {
                const T *row = col + ((c * p->kh + i) * p->kw + j) * L;
                const int64_t ix0 = j * p->dw - p->pw;
                int64_t lo, hi;
                conv_valid_range(ix0, sw, p->w, ow, &lo, &hi);
                for (int64_t oy = oy0; oy < oy1; oy++) {
                    const int64_t iy = oy * p->sh - p->ph + i * p->dh;
                    if (iy < 0 || iy >= p->h) continue;
                    const T *restrict src = row + (oy - oy0) * ow;
                    T *restrict dst = x + (c * p->h + iy) * p->w;
                    if (sw == 1)
                        for (int64_t ox = lo; ox < hi; ox++) dst[ox + ix0] += src[ox];
                    else
                        for (int64_t ox = lo; ox < hi; ox++) dst[ox * sw + ix0] += src[ox];
                }
            }
}

/* im2col of m images side by side (image i in columns i*L ... of rows ld = m*L apart), the path
 * of small images (group_images). A small image's rows are a few values long, so the per-row
 * bounds checks and clearing of im2col cost more than the copying: here the m images are first
 * copied into zero-padded scratch (conv_padded_dims), and every column row is then one gather
 * of m*L values through a table of offsets, with no checks. scratch: conv_group_scratch(m)
 * values. x points at the first image; all its channels (groups == 1 or not). */
static void CONV_SFX(im2col_group)(const fnn_conv_t *p, const T *restrict x, int64_t m,
                                   T *restrict col, T *restrict scratch)
{
    int64_t PH, PW;
    conv_padded_dims(p, &PH, &PW);
    const int64_t PHW = PH * PW, HW = p->h * p->w, ld = m * p->oh * p->ow, c = p->c;
    T *restrict pad = scratch;
    int64_t *restrict off = (int64_t *)(scratch + ((m * c * PHW + 15) & ~(int64_t)15));
    memset(pad, 0, sizeof(T) * (size_t)(m * c * PHW));
    for (int64_t q = 0; q < m * c; q++)          /* (image, channel) q, in x's order */
        for (int64_t y = 0; y < p->h; y++) {
            T *restrict d = pad + q * PHW + (p->ph + y) * PW + p->pw;
            const T *restrict s = x + q * HW + y * p->w;
            for (int64_t v = 0; v < p->w; v++) d[v] = s[v];
        }
    conv_group_offsets(p, m, c * PHW, PW, off);
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t i = 0; i < p->kh; i++)
            for (int64_t j = 0; j < p->kw; j++) {
                const T *restrict base = pad + ch * PHW + i * p->dh * PW + j * p->dw;
                T *restrict dst = col + ((ch * p->kh + i) * p->kw + j) * ld;
                for (int64_t q = 0; q < ld; q++) dst[q] = base[off[q]];
            }
}

/* The adjoint of im2col_group: dx of the m images (written, not added to) from their columns,
 * summed in the padded scratch in col2im's order (rows c, i, j), so the sums are col2im's to
 * the bit. */
static void CONV_SFX(col2im_group)(const fnn_conv_t *p, const T *restrict col, int64_t m,
                                   T *restrict x, T *restrict scratch)
{
    int64_t PH, PW;
    conv_padded_dims(p, &PH, &PW);
    const int64_t PHW = PH * PW, HW = p->h * p->w, ld = m * p->oh * p->ow, c = p->c;
    T *restrict pad = scratch;
    int64_t *restrict off = (int64_t *)(scratch + ((m * c * PHW + 15) & ~(int64_t)15));
    memset(pad, 0, sizeof(T) * (size_t)(m * c * PHW));
    conv_group_offsets(p, m, c * PHW, PW, off);
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t i = 0; i < p->kh; i++)
            for (int64_t j = 0; j < p->kw; j++) {
                T *restrict base = pad + ch * PHW + i * p->dh * PW + j * p->dw;
                const T *restrict src = col + ((ch * p->kh + i) * p->kw + j) * ld;
                for (int64_t q = 0; q < ld; q++) base[off[q]] += src[q];
            }
    for (int64_t q = 0; q < m * c; q++)
        for (int64_t y = 0; y < p->h; y++) {
            T *restrict d = x + q * HW + y * p->w;
            const T *restrict s = pad + q * PHW + (p->ph + y) * PW + p->pw;
            for (int64_t v = 0; v < p->w; v++) d[v] = s[v];
        }
}

/* sum of row[0:L]: 16 independent lanes (they vectorize), each summing L/16 values, then
 * added up in double */
static double CONV_SFX(row_sum)(const T *restrict row, int64_t L)
{
    T acc[16] = {0};
    int64_t l = 0;
    for (; l + 16 <= L; l += 16)
        for (int u = 0; u < 16; u++) acc[u] += row[l + u];
    double s = 0;
    for (; l < L; l++) s += row[l];
    for (int u = 0; u < 16; u++) s += acc[u];
    return s;
}

/* Output rows per block: the column buffer of one block holds at most CONV_COL_MAX values
 * (a whole image for the usual sizes; large images go in blocks of rows, so memory stays
 * bounded). A 1x1 convolution needs no columns: one block. */
static int64_t CONV_SFX(block_rows)(const fnn_conv_t *p, int direct)
{
    if (direct) return p->oh;
    int64_t rows = CONV_COL_MAX / (p->c * p->kh * p->kw * p->ow);
    return rows < 1 ? 1 : rows > p->oh ? p->oh : rows;
}

/* Images per GEMM: small images (few output positions) go several to a GEMM, side by side in
 * the column buffer, so the GEMM's n is at least ~CONV_GROUP_COLS (a 64-column GEMM per 8x8
 * image runs far below the GEMM's speed). Images in row blocks go one at a time.
 * A batch that would fit one group is split in CONV_SPLIT groups when each still has at least
 * CONV_SPLIT_COLS columns: then the threads take whole groups (im2col, GEMM, col2im and the
 * copies all in parallel, one team wake-up per call) instead of sharing one GEMM while the
 * rest runs on one thread. The rule does not look at the thread count, so the summation order
 * of dweight (and every result bit) is the same for any number of threads. */
static int64_t CONV_SFX(group_images)(const fnn_conv_t *p, int64_t rows)
{
    const int64_t L = p->oh * p->ow;
    if (rows < p->oh || L >= CONV_GROUP_COLS) return 1;
    int64_t nb = (CONV_GROUP_COLS + L - 1) / L;
    const int64_t fit = CONV_COL_MAX / (p->c * p->kh * p->kw * L);
    if (nb > fit) nb = fit;
    if (nb >= p->n) {
        const int64_t part = (p->n + CONV_SPLIT - 1) / CONV_SPLIT;
        nb = part * L >= CONV_SPLIT_COLS ? part : p->n;
    }
    return nb < 1 ? 1 : nb;
}

/* Threads for a problem of `flops`, and whether they split the images (else the GEMMs). */
static int CONV_SFX(plan)(const fnn_conv_t *p, double flops, int *per_image)
{
    int threads = fnn_get_num_threads();
    if (threads < 1 || flops < CONV_PARALLEL_MIN_FLOPS) threads = 1;
    *per_image = threads > 1 && p->n >= threads;
    return threads;
}

static int CONV_SFX(fnn_conv_forward)(const fnn_conv_t *p, const T *x, const T *w,
                                      const T *bias, T *y)
{
    const CONV_SFX(gemm_fn) gemm = CONV_SFX(pick_gemm)();
    const int64_t G = p->groups, cog = p->co / G, K = p->c / G * p->kh * p->kw;
    const int64_t L = p->oh * p->ow, HW = p->h * p->w;
    const int64_t rows = CONV_SFX(block_rows)(p, conv_is_pointwise(p));
    const int64_t nb = CONV_SFX(group_images)(p, rows);
    const int direct = conv_is_pointwise(p) && nb == 1;  /* the image is its own cols */
    const int blocked = rows < p->oh;          /* then y's rows go through a scratch block */
    const int64_t width = blocked ? rows * p->ow : nb * L;   /* columns of one GEMM, at most */
    const int64_t col_size = direct ? 0 : G * K * width;
    const int64_t tmp_size = blocked || nb > 1 ? p->co * width : 0;
    const int64_t grp_size = nb > 1 ? conv_group_scratch(p, nb, sizeof(T)) : 0;
    const int64_t items = (p->n + nb - 1) / nb;
    int per_image;
    const int threads = CONV_SFX(plan)(p, 2.0 * p->n * p->co * K * L, &per_image);
    const int team = per_image && items > 1 ? threads : 1;
    int failed = 0;

    #pragma omp parallel num_threads(team) reduction(|:failed) if(team > 1)
    {
        const int gemm_threads = team > 1 ? 1 : threads;
        const int64_t all = col_size + tmp_size + grp_size;
        T *col = all ? (T *)conv_buffer(sizeof(T) * all) : NULL;
        T *tmp = tmp_size && col ? col + col_size : NULL;
        T *grp = grp_size && col ? col + col_size + tmp_size : NULL;
        if (all && !col) failed = 1;
        /* groups of nb images handed out one at a time: a thread that loses its core for a
         * while (a busy machine) does not hold the others up */
        #pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < items; item++) {
            if (failed) continue;
            const int64_t i0 = item * nb, m = i0 + nb <= p->n ? nb : p->n - i0;
            if (m > 1) {                       /* m images side by side: one GEMM per group */
                const int64_t ld = m * L;
                CONV_SFX(im2col_group)(p, x + i0 * p->c * HW, m, col, grp);
                for (int64_t g = 0; g < G; g++)
                    gemm(cog, ld, K, 1, w + g * cog * K, 0, col + g * K * ld, 0, 0,
                         tmp + g * cog * ld, gemm_threads);
                for (int64_t i = 0; i < m; i++)
                    for (int64_t o = 0; o < p->co; o++)
                        memcpy(y + ((i0 + i) * p->co + o) * L, tmp + o * ld + i * L,
                               sizeof(T) * L);
            } else {                           /* one image, in blocks of output rows */
                const T *xi = x + i0 * p->c * HW;
                T *yi = y + i0 * p->co * L;
                for (int64_t oy0 = 0; oy0 < p->oh; oy0 += rows) {
                    const int64_t oy1 = oy0 + rows < p->oh ? oy0 + rows : p->oh;
                    const int64_t bl = (oy1 - oy0) * p->ow;
                    const T *b = xi;
                    if (!direct) {
                        CONV_SFX(im2col)(p, xi, p->c, oy0, oy1, col, bl);
                        b = col;
                    }
                    T *c = blocked ? tmp : yi;
                    for (int64_t g = 0; g < G; g++)
                        gemm(cog, bl, K, 1, w + g * cog * K, 0, b + g * K * bl, 0, 0,
                             c + g * cog * bl, gemm_threads);
                    if (blocked)
                        for (int64_t o = 0; o < p->co; o++)
                            memcpy(yi + o * L + oy0 * p->ow, tmp + o * bl, sizeof(T) * bl);
                }
            }
            if (bias)
                for (int64_t i = i0; i < i0 + m; i++)
                    for (int64_t o = 0; o < p->co; o++) {
                        const T bo = bias[o];
                        T *row = y + (i * p->co + o) * L;
                        for (int64_t l = 0; l < L; l++) row[l] += bo;
                    }
        }
    }
    return failed ? -1 : 0;
}

static int CONV_SFX(fnn_conv_backward)(const fnn_conv_t *p, const T *dy, const T *x, const T *w,
                                       T *dx, T *dw, T *db)
{
    const CONV_SFX(gemm_fn) gemm = CONV_SFX(pick_gemm)();
    const int64_t G = p->groups, cog = p->co / G, K = p->c / G * p->kh * p->kw;
    const int64_t L = p->oh * p->ow, HW = p->h * p->w, wsize = p->co * K;
    const int64_t rows = CONV_SFX(block_rows)(p, conv_is_pointwise(p));
    const int64_t nb = CONV_SFX(group_images)(p, rows);
    const int direct = conv_is_pointwise(p) && nb == 1;
    const int blocked = rows < p->oh;          /* then dy's rows are copied to a scratch block */
    const int64_t width = blocked ? rows * p->ow : nb * L;
    const int mm = dx || dw;                   /* any GEMM work at all */
    const int64_t col_size = mm && !direct ? G * K * width : 0;
    const int64_t tmp_size = mm && (blocked || nb > 1) ? p->co * width : 0;
    const int64_t grp_size = mm && nb > 1 ? conv_group_scratch(p, nb, sizeof(T)) : 0;
    const double flops = 2.0 * p->n * p->co * K * L * ((dx != NULL) + (dw != NULL))
                         + 1.0 * p->n * p->co * L;
    int per_image;
    const int threads = CONV_SFX(plan)(p, flops, &per_image);
    /* The images go in `chunks` fixed groups, handed out one at a time (a thread that loses its
     * core for a while does not hold the others up). Each group sums its own partial dw (T) and
     * db (double); the partials are added in order at the end, so the result is the same for
     * any number of threads (unless dw is so large that fewer partials must do). */
    const int64_t items = (p->n + nb - 1) / nb;
    int64_t chunks = items;
    if (dw || db) {
        chunks = items < CONV_CHUNKS ? items : CONV_CHUNKS;
        const int64_t fit = CONV_PARTIAL_BYTES / (int64_t)(sizeof(T) * wsize);
        if (dw && chunks > fit) chunks = fit > threads ? fit : threads;
        if (chunks > items) chunks = items;
    }
    const int team = per_image && chunks > 1 ? threads : 1;
    /* Partial dweights as dW[g] (co/g x K) when images are grouped (their GEMMs have a short
     * side either way; no transpose at the end), else as dW[g]^T (K x co/g), see below. */
    const int dw_direct = nb > 1;
    T *dw_part = dw ? (T *)calloc((size_t)(chunks * wsize), sizeof(T)) : NULL;
    double *db_part = db ? (double *)calloc((size_t)(chunks * p->co), sizeof(double)) : NULL;
    if ((dw && !dw_part) || (db && !db_part)) {
        free(dw_part);
        free(db_part);
        return -1;
    }
    int failed = 0;

    #pragma omp parallel num_threads(team) reduction(|:failed) if(team > 1)
    {
        const int gemm_threads = team > 1 ? 1 : threads;
        const int64_t all = col_size + tmp_size + grp_size;
        T *col = all ? (T *)conv_buffer(sizeof(T) * all) : NULL;
        T *tmp = tmp_size && col ? col + col_size : NULL;
        T *grp = grp_size && col ? col + col_size + tmp_size : NULL;
        if (all && !col) failed = 1;
        #pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < chunks; ch++) {
            if (failed) continue;
            T *dwt = dw ? dw_part + ch * wsize : NULL;
            double *dbt = db ? db_part + ch * p->co : NULL;
            /* this chunk's images: whole groups of nb (items ch*items/chunks ...) */
            const int64_t lo = items * ch / chunks * nb;
            const int64_t hi_ = items * (ch + 1) / chunks * nb, hi = hi_ < p->n ? hi_ : p->n;
            if (dbt)
                for (int64_t img = lo; img < hi; img++)
                    for (int64_t o = 0; o < p->co; o++)
                        dbt[o] += CONV_SFX(row_sum)(dy + (img * p->co + o) * L, L);
            for (int64_t i0 = lo; i0 < hi && mm; i0 += nb) {
                const int64_t m = i0 + nb <= hi ? nb : hi - i0;
                if (m > 1) {                   /* m images side by side */
                    const int64_t ld = m * L;
                    for (int64_t i = 0; i < m; i++)     /* dY of the m images: (co x m*L) */
                        for (int64_t o = 0; o < p->co; o++)
                            memcpy(tmp + o * ld + i * L, dy + ((i0 + i) * p->co + o) * L,
                                   sizeof(T) * L);
                    if (dwt) {
                        CONV_SFX(im2col_group)(p, x + i0 * p->c * HW, m, col, grp);
                        for (int64_t g = 0; g < G; g++)   /* dW[g] += dY[g] @ cols[g]^T */
                            gemm(cog, K, ld, 1, tmp + g * cog * ld, 0, col + g * K * ld, 1, 1,
                                 dwt + g * cog * K, gemm_threads);
                    }
                    if (dx) {
                        for (int64_t g = 0; g < G; g++)
                            gemm(K, ld, cog, 1, w + g * cog * K, 1, tmp + g * cog * ld, 0, 0,
                                 col + g * K * ld, gemm_threads);
                        CONV_SFX(col2im_group)(p, col, m, dx + i0 * p->c * HW, grp);
                    }
                    continue;
                }
                /* one image, in blocks of output rows */
                const T *dyi = dy + i0 * p->co * L;
                const T *xi = dwt ? x + i0 * p->c * HW : NULL;
                T *dxi = dx ? dx + i0 * p->c * HW : NULL;
                if (dxi && !direct) memset(dxi, 0, sizeof(T) * p->c * HW);
                for (int64_t oy0 = 0; oy0 < p->oh; oy0 += rows) {
                    const int64_t oy1 = oy0 + rows < p->oh ? oy0 + rows : p->oh;
                    const int64_t bl = (oy1 - oy0) * p->ow;
                    const T *dyb = dyi;                /* this block of dY, (co x bl) */
                    if (blocked) {
                        for (int64_t o = 0; o < p->co; o++)
                            memcpy(tmp + o * bl, dyi + o * L + oy0 * p->ow, sizeof(T) * bl);
                        dyb = tmp;
                    }
                    if (dwt) {
                        const T *b = xi;
                        if (!direct) {
                            CONV_SFX(im2col)(p, xi, p->c, oy0, oy1, col, bl);
                            b = col;
                        }
                        /* dW[g]^T (K x co/g) += cols[g] @ dY[g]^T: the long side as the GEMM's
                         * rows measured ~10% faster than dW[g] = dY[g] @ cols[g]^T */
                        for (int64_t g = 0; g < G; g++)
                            if (dw_direct)   /* the last, single image of a grouped call */
                                gemm(cog, K, bl, 1, dyb + g * cog * bl, 0, b + g * K * bl, 1, 1,
                                     dwt + g * cog * K, gemm_threads);
                            else
                                gemm(K, cog, bl, 1, b + g * K * bl, 0, dyb + g * cog * bl, 1, 1,
                                     dwt + g * cog * K, gemm_threads);
                    }
                    if (dxi) {
                        T *out = direct ? dxi : col;     /* dcols, or dx itself when 1x1 */
                        for (int64_t g = 0; g < G; g++)
                            gemm(K, bl, cog, 1, w + g * cog * K, 1, dyb + g * cog * bl, 0, 0,
                                 out + g * K * bl, gemm_threads);
                        if (!direct) CONV_SFX(col2im)(p, col, p->c, oy0, oy1, dxi, bl);
                    }
                }
            }
        }
    }
    if (!failed) {
        if (dw) {   /* add up the chunks' partials in order (and transpose dW[g]^T into dw) */
            for (int64_t t = 1; t < chunks; t++)
                for (int64_t e = 0; e < wsize; e++) dw_part[e] += dw_part[t * wsize + e];
            if (dw_direct)
                memcpy(dw, dw_part, sizeof(T) * (size_t)wsize);
            else
                for (int64_t g = 0; g < G; g++)
                    for (int64_t o = 0; o < cog; o++)
                        for (int64_t r = 0; r < K; r++)
                            dw[(g * cog + o) * K + r] = dw_part[g * cog * K + r * cog + o];
        }
        if (db)
            for (int64_t o = 0; o < p->co; o++) {
                double s = 0;
                for (int64_t t = 0; t < chunks; t++) s += db_part[t * p->co + o];
                db[o] = (T)s;
            }
    }
    free(dw_part);
    free(db_part);
    return failed ? -1 : 0;
}

static void CONV_SFX(fnn_conv_add_bias)(T *y, const T *bias, int64_t n, int64_t channels, int64_t hw)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < channels; c++) {
            T *row = y + (i * channels + c) * hw;
            const T b = bias[c];
            for (int64_t l = 0; l < hw; l++) row[l] += b;
        }
}

#undef T
#undef CONV_T
#undef CONV_SFX
#undef CONV_GEMM
