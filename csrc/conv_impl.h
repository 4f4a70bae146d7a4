/* The convolution kernels for one dtype: a template, included by conv.c once per dtype after
 * defining
 *   CONV_T          element type (float or double)
 *   CONV_SFX(name)  name-mangling for this dtype's functions
 *   CONV_GEMM(isa)  this dtype's per-ISA GEMM entry (gemm.h), e.g. fnn_sgemm_##isa
 *
 * Shapes (conv view, see conv.h): per group g, with K = (c/groups)*kh*kw and L = oh*ow,
 *   forward          Y[g]  (co/g x L)  = W[g] (co/g x K) @ cols[g] (K x L)
 *   backward-weight  dW[g]^T (K x co/g) += cols[g] (K x L) @ dY[g]^T
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
 * (oy - oy0)*ow + ox; x points at the image's first channel. */
static void CONV_SFX(im2col)(const fnn_conv_t *p, const T *restrict x, int64_t nch, int64_t oy0,
                             int64_t oy1, T *restrict col)
{
    const int64_t L = (oy1 - oy0) * p->ow, ow = p->ow, sw = p->sw;
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
                             int64_t oy1, T *restrict x)
{
    const int64_t L = (oy1 - oy0) * p->ow, ow = p->ow, sw = p->sw;
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
    const int direct = conv_is_pointwise(p);
    const int64_t rows = CONV_SFX(block_rows)(p, direct), bl_max = rows * p->ow;
    const int blocked = rows < p->oh;          /* then y's rows go through a scratch block */
    int per_image;
    const int threads = CONV_SFX(plan)(p, 2.0 * p->n * p->co * K * L, &per_image);
    const int team = per_image ? threads : 1;
    int failed = 0;

    #pragma omp parallel num_threads(team) reduction(|:failed) if(team > 1)
    {
        const int gemm_threads = per_image ? 1 : threads;
        const int64_t col_size = direct ? 0 : G * K * bl_max;
        T *col = direct && !blocked ? NULL
                 : (T *)conv_buffer(sizeof(T) * (col_size + (blocked ? p->co * bl_max : 0)));
        T *tmp = blocked && col ? col + col_size : NULL;
        if ((!direct || blocked) && !col) failed = 1;
        /* images handed out one at a time: a thread that loses its core for a while (a busy
         * machine) does not hold the others up */
        #pragma omp for schedule(dynamic, 1)
        for (int64_t img = 0; img < p->n; img++) {
            if (failed) continue;
            {
                const T *xi = x + img * p->c * HW;
                T *yi = y + img * p->co * L;
                for (int64_t oy0 = 0; oy0 < p->oh; oy0 += rows) {
                    const int64_t oy1 = oy0 + rows < p->oh ? oy0 + rows : p->oh;
                    const int64_t bl = (oy1 - oy0) * p->ow;
                    const T *b = xi;
                    if (!direct) {
                        CONV_SFX(im2col)(p, xi, p->c, oy0, oy1, col);
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
                if (bias)
                    for (int64_t o = 0; o < p->co; o++) {
                        const T bo = bias[o];
                        T *row = yi + o * L;
                        for (int64_t l = 0; l < L; l++) row[l] += bo;
                    }
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
    const int direct = conv_is_pointwise(p);
    const int64_t rows = CONV_SFX(block_rows)(p, direct), bl_max = rows * p->ow;
    const int blocked = rows < p->oh;          /* then dy's rows are copied to a scratch block */
    const double flops = 2.0 * p->n * p->co * K * L * ((dx != NULL) + (dw != NULL))
                         + 1.0 * p->n * p->co * L;
    int per_image;
    const int threads = CONV_SFX(plan)(p, flops, &per_image);
    const int team = per_image ? threads : 1;
    const int64_t col_size = !direct && (dx || dw) ? G * K * bl_max : 0;
    const int64_t tmp_size = blocked && (dx || dw) ? p->co * bl_max : 0;
    /* The images go in `chunks` fixed groups, handed out one at a time (a thread that loses its
     * core for a while does not hold the others up). Each group sums its own partial dw (T) and
     * db (double); the partials are added in order at the end, so the result is the same for
     * any number of threads (unless dw is so large that fewer partials must do). */
    int64_t chunks = p->n;
    if (dw || db) {
        chunks = p->n < CONV_CHUNKS ? p->n : CONV_CHUNKS;
        const int64_t fit = CONV_PARTIAL_BYTES / (int64_t)(sizeof(T) * wsize);
        if (dw && chunks > fit) chunks = fit > team ? fit : team;
    }
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
        const int gemm_threads = per_image ? 1 : threads;
        T *col = col_size + tmp_size ? (T *)conv_buffer(sizeof(T) * (col_size + tmp_size)) : NULL;
        T *tmp = tmp_size && col ? col + col_size : NULL;
        if (col_size + tmp_size && !col) failed = 1;
        #pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < chunks; ch++) {
            if (failed) continue;
            T *dwt = dw ? dw_part + ch * wsize : NULL;
            double *dbt = db ? db_part + ch * p->co : NULL;
            for (int64_t img = p->n * ch / chunks; img < p->n * (ch + 1) / chunks; img++) {
                const T *dyi = dy + img * p->co * L;
                const T *xi = dwt ? x + img * p->c * HW : NULL;
                T *dxi = dx ? dx + img * p->c * HW : NULL;
                if (dbt)
                    for (int64_t o = 0; o < p->co; o++) dbt[o] += CONV_SFX(row_sum)(dyi + o * L, L);
                if (dxi && !direct) memset(dxi, 0, sizeof(T) * p->c * HW);
                for (int64_t oy0 = 0; oy0 < p->oh && (dwt || dxi); oy0 += rows) {
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
                            CONV_SFX(im2col)(p, xi, p->c, oy0, oy1, col);
                            b = col;
                        }
                        /* dW[g]^T (K x co/g) += cols[g] @ dY[g]^T: the long side as the GEMM's
                         * rows measured ~10% faster than dW[g] = dY[g] @ cols[g]^T */
                        for (int64_t g = 0; g < G; g++)
                            gemm(K, cog, bl, 1, b + g * K * bl, 0, dyb + g * cog * bl, 1, 1,
                                 dwt + g * cog * K, gemm_threads);
                    }
                    if (dxi) {
                        T *out = direct ? dxi : col;     /* dcols, or dx itself when 1x1 */
                        for (int64_t g = 0; g < G; g++)
                            gemm(K, bl, cog, 1, w + g * cog * K, 1, dyb + g * cog * bl, 0, 0,
                                 out + g * K * bl, gemm_threads);
                        if (!direct) CONV_SFX(col2im)(p, col, p->c, oy0, oy1, dxi);
                    }
                }
            }
        }
    }
    if (!failed) {
        if (dw) {   /* add up the threads' dW[g]^T and transpose them into dw */
            for (int64_t t = 1; t < chunks; t++)
                for (int64_t e = 0; e < wsize; e++) dw_part[e] += dw_part[t * wsize + e];
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
