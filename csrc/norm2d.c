/* Normalization over channels of (n, c, l) arrays: batch norm (training and eval, running
 * statistics) and group norm, forward and backward. Semantics: fastnn/kernels/families/norm2d.py.
 *
 * Sums accumulate in double whatever T is, in FNN_LANES independent partial sums (one vector
 * accumulator would make the adds' latency, not memory, the limit). The statistics take one pass:
 * sums of d = x - K and d^2 with K the group's first value, var = (sum d^2 - (sum d)^2 / M) / M.
 * Shifted by a value of the data, this cancels only as much as (mean - K)^2 / var, which is
 * small unless K is an outlier; never E[x^2] - E[x]^2, which cancels when |mean| >> std. */
#ifdef FNN_KERNELS  /* ---- kernels: compiled once per dtype and ISA (ops_instantiate.h) ---- */

#ifndef FNN_LANES
#define FNN_LANES 16
#endif

/* *s += sum (x - shift), *q += sum (x - shift)^2 over n values, in double */
FNN_INLINE void FN(shifted_sums)(const T *restrict x, int64_t n, double shift, double *s,
                                 double *q)
{
    double as[FNN_LANES] = {0}, aq[FNN_LANES] = {0}, ts = 0, tq = 0;
    int64_t j = 0;
    for (; j + FNN_LANES <= n; j += FNN_LANES) {
#pragma omp simd
        for (int u = 0; u < FNN_LANES; u++) {
            double d = (double)x[j + u] - shift;
            as[u] += d;
            aq[u] += d * d;
        }
    }
    for (; j < n; j++) {
        double d = (double)x[j] - shift;
        ts += d;
        tq += d * d;
    }
    for (int u = 0; u < FNN_LANES; u++) {
        ts += as[u];
        tq += aq[u];
    }
    *s += ts;
    *q += tq;
}

/* *sd += sum g, *sdx += sum g (x - mu) over n values, in double */
FNN_INLINE void FN(grad_sums)(const T *restrict g, const T *restrict x, int64_t n, T mu,
                              double *sd, double *sdx)
{
    double ad[FNN_LANES] = {0}, ax[FNN_LANES] = {0}, td = 0, tx = 0;
    int64_t j = 0;
    for (; j + FNN_LANES <= n; j += FNN_LANES) {
#pragma omp simd
        for (int u = 0; u < FNN_LANES; u++) {
            ad[u] += g[j + u];
            ax[u] += (double)g[j + u] * (double)(x[j + u] - mu);
        }
    }
    for (; j < n; j++) {
        td += g[j];
        tx += (double)g[j] * (double)(x[j] - mu);
    }
    for (int u = 0; u < FNN_LANES; u++) {
        td += ad[u];
        tx += ax[u];
    }
    *sd += td;
    *sdx += tx;
}

/* ------------------------------------------------------------------ batch norm
 * forward, per channel k over its n * l values (rows x[i, k, :] of l contiguous values):
 *     training: mean, var = biased variance;  running stats (if any) updated in place:
 *               rm = (1 - m) rm + m mean,  rv = (1 - m) rv + m var M / (M - 1)
 *     eval:     mean = rm, var = rv
 *     invstd = 1 / sqrt(var + eps),  y = (x - mean) invstd w + b */
static void FN(bn_channel)(const T *restrict x, const T *restrict w, const T *restrict b,
                           T *restrict rm, T *restrict rv, T *restrict y, T *restrict mean,
                           T *restrict invstd, int64_t n, int64_t c, int64_t l, int64_t k,
                           int training, double momentum, double eps)
{
    const int64_t m = n * l;
    double mu, var;
    if (training) {
        double s = 0, q = 0, shift = (double)x[k * l];
        for (int64_t i = 0; i < n; i++) FN(shifted_sums)(x + (i * c + k) * l, l, shift, &s, &q);
        double ms = s / (double)m;
        mu = shift + ms;
        double ss = q - s * ms;                        /* sum of squared deviations */
        ss = ss > 0 ? ss : 0;
        var = ss / (double)m;
        if (rm) {
            rm[k] = (T)((1 - momentum) * (double)rm[k] + momentum * mu);
            rv[k] = (T)((1 - momentum) * (double)rv[k] + momentum * ss / (double)(m - 1));
        }
    } else {
        mu = rm[k];
        var = rv[k];
    }
    double rs = 1 / sqrt(var + eps);
    mean[k] = (T)mu;
    invstd[k] = (T)rs;
    /* in double: a float32 mean is off by up to half an ulp of |mean|, which is a sizeable
     * error next to a small std */
    const double scale = rs * (double)w[k], shift = (double)b[k];
    for (int64_t i = 0; i < n; i++) {
        const T *xr = x + (i * c + k) * l;
        T *yr = y + (i * c + k) * l;
#pragma omp simd
        for (int64_t j = 0; j < l; j++) yr[j] = (T)(((double)xr[j] - mu) * scale + shift);
    }
}

static void FN(batch_norm)(const T *x, const T *w, const T *b, T *rm, T *rv, T *y, T *mean,
                           T *invstd, int64_t n, int64_t c, int64_t l, int training,
                           double momentum, double eps)
{
    FNN_FOR_ROWS(k, c, n * c * l, FNN_PAR_CHEAP,
                 FN(bn_channel)(x, w, b, rm, rv, y, mean, invstd, n, c, l, k, training,
                                momentum, eps););
}

/* backward, per channel, with xhat = (x - mean) invstd and M = n l:
 *     dbias = sum dy,  dweight = sum dy xhat
 *     training: dx = w invstd (dy - dbias / M - xhat dweight / M)
 *     eval:     dx = w invstd dy   (the statistics were constants) */
static void FN(bn_backward_channel)(const T *restrict dy, const T *restrict x,
                                    const T *restrict w, const T *restrict mean,
                                    const T *restrict invstd, T *restrict dx, T *restrict dw,
                                    T *restrict db, int64_t n, int64_t c, int64_t l, int64_t k,
                                    int training)
{
    const T mu = mean[k];
    const double rs = invstd[k];
    double sd = 0, sdx = 0;
    for (int64_t i = 0; i < n; i++)
        FN(grad_sums)(dy + (i * c + k) * l, x + (i * c + k) * l, l, mu, &sd, &sdx);
    db[k] = (T)sd;
    dw[k] = (T)(sdx * rs);
    const T scale = (T)((double)w[k] * rs);
    const double m = (double)(n * l);
    const T a = (T)(sd / m), bb = (T)(sdx * rs * rs / m);
    for (int64_t i = 0; i < n; i++) {
        const T *g = dy + (i * c + k) * l, *xr = x + (i * c + k) * l;
        T *d = dx + (i * c + k) * l;
        if (training) {
#pragma omp simd
            for (int64_t j = 0; j < l; j++) d[j] = scale * (g[j] - a - (xr[j] - mu) * bb);
        } else {
#pragma omp simd
            for (int64_t j = 0; j < l; j++) d[j] = scale * g[j];
        }
    }
}

static void FN(batch_norm_backward)(const T *dy, const T *x, const T *w, const T *mean,
                                    const T *invstd, T *dx, T *dw, T *db, int64_t n, int64_t c,
                                    int64_t l, int training)
{
    FNN_FOR_ROWS(k, c, n * c * l, FNN_PAR_CHEAP,
                 FN(bn_backward_channel)(dy, x, w, mean, invstd, dx, dw, db, n, c, l, k,
                                         training););
}

/* ------------------------------------------------------------------ group norm
 * Group (i, g) is the contiguous block of channels g cpg .. (g + 1) cpg - 1 of sample i:
 *     mean, rstd = 1 / sqrt(biased var + eps) over its cpg l values,  y = xhat w + b */
static void FN(gn_group)(const T *restrict x, const T *restrict w, const T *restrict b,
                         T *restrict y, T *restrict mean, T *restrict rstd, int64_t c, int64_t l,
                         int64_t groups, int64_t ig, double eps)
{
    const int64_t cpg = c / groups, m = cpg * l, k0 = (ig % groups) * cpg;
    const T *xg = x + ig * m;
    T *yg = y + ig * m;
    double s = 0, q = 0, shift = (double)xg[0];
    FN(shifted_sums)(xg, m, shift, &s, &q);
    const double ms = s / (double)m, mu = shift + ms;
    double ss = q - s * ms;
    ss = ss > 0 ? ss : 0;
    const double rs = 1 / sqrt(ss / (double)m + eps);
    mean[ig] = (T)mu;
    rstd[ig] = (T)rs;
    for (int64_t k = 0; k < cpg; k++) {       /* in double, as in batch norm */
        const double scale = rs * (double)w[k0 + k], shift = (double)b[k0 + k];
        const T *xr = xg + k * l;
        T *yr = yg + k * l;
#pragma omp simd
        for (int64_t j = 0; j < l; j++) yr[j] = (T)(((double)xr[j] - mu) * scale + shift);
    }
}

static void FN(group_norm)(const T *x, const T *w, const T *b, T *y, T *mean, T *rstd,
                           int64_t n, int64_t c, int64_t l, int64_t groups, double eps)
{
    FNN_FOR_ROWS(ig, n * groups, n * c * l, FNN_PAR_CHEAP,
                 FN(gn_group)(x, w, b, y, mean, rstd, c, l, groups, ig, eps););
}

/* backward, per group with g = dy w (per channel) and m = cpg l:
 *     dx = rstd (g - mean(g) - xhat mean(g xhat))
 * One pass gathers each channel's sum dy and sum dy (x - mean) for this sample, which give
 * both the group's two means and the channel's share of dbias and dweight (pdb, pdw: one slot
 * per (sample, channel), added over samples at the end: no races, no atomics). */
static void FN(gn_backward_group)(const T *restrict dy, const T *restrict x, const T *restrict w,
                                  const T *restrict mean, const T *restrict rstd,
                                  T *restrict dx, double *restrict pdw, double *restrict pdb,
                                  int64_t c, int64_t l, int64_t groups, int64_t ig)
{
    const int64_t cpg = c / groups, m = cpg * l, k0 = (ig % groups) * cpg;
    const int64_t base = ig * m, slot = (ig / groups) * c + k0;
    const T mu = mean[ig];
    const double rs = rstd[ig];
    double sg = 0, sgx = 0;
    for (int64_t k = 0; k < cpg; k++) {
        const T *g = dy + base + k * l, *xr = x + base + k * l;
        double sd = 0, sdx = 0;
        FN(grad_sums)(g, xr, l, mu, &sd, &sdx);
        pdb[slot + k] = sd;
        pdw[slot + k] = sdx * rs;
        sg += sd * (double)w[k0 + k];
        sgx += sdx * (double)w[k0 + k];
    }
    const T a = (T)(sg / (double)m), bb = (T)(sgx * rs * rs / (double)m), rs_t = (T)rs;
    for (int64_t k = 0; k < cpg; k++) {
        const T *g = dy + base + k * l, *xr = x + base + k * l;
        T *d = dx + base + k * l;
        const T wk = w[k0 + k];
#pragma omp simd
        for (int64_t j = 0; j < l; j++) d[j] = rs_t * (g[j] * wk - a - (xr[j] - mu) * bb);
    }
}

static int FN(group_norm_backward)(const T *dy, const T *x, const T *w, const T *mean,
                                   const T *rstd, T *dx, T *dw, T *db, int64_t n, int64_t c,
                                   int64_t l, int64_t groups)
{
    double *pdw = malloc((size_t)(2 * n * c) * sizeof(double));
    if (!pdw) return -1;
    double *pdb = pdw + n * c;
    FNN_FOR_ROWS(ig, n * groups, n * c * l, FNN_PAR_CHEAP,
                 FN(gn_backward_group)(dy, x, w, mean, rstd, dx, pdw, pdb, c, l, groups, ig););
    for (int64_t k = 0; k < c; k++) {
        double sw = 0, sb = 0;
        for (int64_t i = 0; i < n; i++) {
            sw += pdw[i * c + k];
            sb += pdb[i * c + k];
        }
        dw[k] = (T)sw;
        db[k] = (T)sb;
    }
    free(pdw);
    return 0;
}

#else  /* ---- entry points ---- */
#include "ops_common.h"
#include "pool.h"
#define FNN_KERNELS "norm2d.c"
#include "ops_instantiate.h"

#define FNN_ENTRY_POINTS(T, DT)                                                                  \
    void fnn_batch_norm_##DT(const T *x, const T *weight, const T *bias, T *running_mean,        \
                             T *running_var, T *y, T *mean, T *invstd, int64_t n, int64_t c,     \
                             int64_t l, int training, double momentum, double eps)               \
    {                                                                                            \
        FNN_DISPATCH(batch_norm_##DT, (x, weight, bias, running_mean, running_var, y, mean,      \
                                       invstd, n, c, l, training, momentum, eps));               \
    }                                                                                            \
    void fnn_batch_norm_backward_##DT(const T *dy, const T *x, const T *weight, const T *mean,   \
                                      const T *invstd, T *dx, T *dweight, T *dbias, int64_t n,   \
                                      int64_t c, int64_t l, int training)                        \
    {                                                                                            \
        FNN_DISPATCH(batch_norm_backward_##DT, (dy, x, weight, mean, invstd, dx, dweight, dbias, \
                                                n, c, l, training));                             \
    }                                                                                            \
    void fnn_group_norm_##DT(const T *x, const T *weight, const T *bias, T *y, T *mean,          \
                             T *rstd, int64_t n, int64_t c, int64_t l, int64_t groups,           \
                             double eps)                                                         \
    {                                                                                            \
        FNN_DISPATCH(group_norm_##DT, (x, weight, bias, y, mean, rstd, n, c, l, groups, eps));   \
    }                                                                                            \
    int fnn_group_norm_backward_##DT(const T *dy, const T *x, const T *weight, const T *mean,    \
                                     const T *rstd, T *dx, T *dweight, T *dbias, int64_t n,      \
                                     int64_t c, int64_t l, int64_t groups)                       \
    {                                                                                            \
        int status;                                                                              \
        FNN_DISPATCH_RET(status, group_norm_backward_##DT, (dy, x, weight, mean, rstd, dx,       \
                                                            dweight, dbias, n, c, l, groups));   \
        return status;                                                                           \
    }

FNN_ENTRY_POINTS(float, f32)
FNN_ENTRY_POINTS(double, f64)
#endif
