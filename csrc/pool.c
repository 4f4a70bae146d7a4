/* 2-D pooling over (planes, h, w): max (with PyTorch's argmax indices), average, adaptive
 * average, forward and backward. Semantics: fastnn/kernels/families/pool.py.
 * Planes are independent: threads take runs of whole planes (no races in the backward
 * scatter-adds), and each plane's loops stay in cache. */
#ifdef FNN_KERNELS  /* ---- kernels: compiled once per dtype and ISA (ops_instantiate.h) ---- */

/* Max over each window, scanning row by row as PyTorch does: a tap replaces the running
 * maximum when it is larger or NaN, so the first of equal maxima wins and NaN wins. The window
 * starts at its first tap inside the input; one that lies wholly in the padding (possible with
 * dilation) gives -inf and that start's index, past the plane, as PyTorch's kernel does.
 * The common 2x2 / stride 2 pooling with every window whole takes four taps, no bounds. */
FNN_INLINE int FN(max_pool_is_2x2)(const fnn_pool2d *p)
{
    return p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 && p->ph == 0 && p->pw == 0
           && 2 * p->oh <= p->h && 2 * p->ow <= p->w;
}

/* One output row of the 2x2 case: input rows r0 and r1 = r0 + w, whose first value is at flat
 * index `base` of its plane. */
FNN_INLINE void FN(max_pool_2x2_row)(const T *restrict r0, int64_t w, int64_t ow, int64_t base,
                                     T *restrict yr, int64_t *restrict ir)
{
    const T *r1 = r0 + w;
    for (int64_t j = 0; j < ow; j++) {
        T m = r0[2 * j], v;
        int64_t at = base + 2 * j;
        int take;
        /* selects, not branches: random data mispredicts them */
        v = r0[2 * j + 1];
        take = (v > m) | (v != v);
        m = take ? v : m;
        at = take ? base + 2 * j + 1 : at;
        v = r1[2 * j];
        take = (v > m) | (v != v);
        m = take ? v : m;
        at = take ? base + w + 2 * j : at;
        v = r1[2 * j + 1];
        take = (v > m) | (v != v);
        m = take ? v : m;
        at = take ? base + w + 2 * j + 1 : at;
        yr[j] = m;
        ir[j] = at;
    }
}

static void FN(max_pool_plane)(const T *restrict x, T *restrict y, int64_t *restrict idx,
                               const fnn_pool2d *p)
{
    const int64_t h = p->h, w = p->w, oh = p->oh, ow = p->ow;
    if (FN(max_pool_is_2x2)(p)) {
        for (int64_t i = 0; i < oh; i++)
            FN(max_pool_2x2_row)(x + 2 * i * w, w, ow, 2 * i * w, y + i * ow, idx + i * ow);
        return;
    }
    const int64_t kh = p->kh, kw = p->kw, sh = p->sh, sw = p->sw, ph = p->ph, pw = p->pw;
    const int64_t dh = p->dh, dw = p->dw;
    for (int64_t i = 0; i < oh; i++) {
        int64_t r0 = i * sh - ph;
        int64_t r1 = r0 + (kh - 1) * dh + 1 < h ? r0 + (kh - 1) * dh + 1 : h;
        while (r0 < 0) r0 += dh;
        for (int64_t j = 0; j < ow; j++) {
            int64_t c0 = j * sw - pw;
            int64_t c1 = c0 + (kw - 1) * dw + 1 < w ? c0 + (kw - 1) * dw + 1 : w;
            while (c0 < 0) c0 += dw;
            T m = (T)-INFINITY, s = 0;
            int64_t at = r0 * w + c0;
            /* `v > m` alone compiles to selects; the NaN rule is applied apart, when the taps'
             * sum is NaN (a NaN tap, or rarely inf - inf): the exact scan below */
            for (int64_t r = r0; r < r1; r += dh) {
                const T *xr = x + r * w;
                for (int64_t c = c0; c < c1; c += dw) {
                    T v = xr[c];
                    s += v;
                    at = v > m ? r * w + c : at;
                    m = v > m ? v : m;
                }
            }
            if (s != s) {
                m = (T)-INFINITY;
                at = r0 * w + c0;
                for (int64_t r = r0; r < r1; r += dh)
                    for (int64_t c = c0; c < c1; c += dw) {
                        T v = x[r * w + c];
                        if (v > m || v != v) { m = v; at = r * w + c; }
                    }
            }
            y[i * ow + j] = m;
            idx[i * ow + j] = at;
        }
    }
}

static void FN(max_pool2d)(const T *restrict x, T *restrict y, int64_t *restrict idx,
                           const fnn_pool2d *p)
{
    const int64_t in = p->h * p->w, out = p->oh * p->ow;
    if (FN(max_pool_is_2x2)(p) && p->h == 2 * p->oh) {
        /* the planes stacked are one tall image of planes*oh output rows (output row r reads
         * input rows 2r and 2r+1), so small planes (the 4x4 and 2x2 maps of a small CNN) cost
         * a row each instead of a call and its checks each; the same taps, order and results */
        const int64_t oh = p->oh, w = p->w, ow = p->ow;
        FNN_FOR_ROWS(r, p->planes * oh, p->planes * (in + out * 4), FNN_PAR_CHEAP,
                     FN(max_pool_2x2_row)(x + 2 * r * w, w, ow, 2 * (r % oh) * w, y + r * ow,
                                          idx + r * ow););
        return;
    }
    FNN_FOR_ROWS(b, p->planes, p->planes * (in + out * p->kh * p->kw), FNN_PAR_CHEAP,
                 FN(max_pool_plane)(x + b * in, y + b * out, idx + b * out, p););
}

static void FN(max_pool2d_backward)(const T *restrict dy, const int64_t *restrict idx,
                                    T *restrict dx, const fnn_pool2d *p)
{
    const int64_t in = p->h * p->w, out = p->oh * p->ow;
    FNN_FOR_ROWS(b, p->planes, p->planes * (in + out), FNN_PAR_CHEAP, {
        T *d = dx + b * in;
        const T *g = dy + b * out;
        const int64_t *at = idx + b * out;
        memset(d, 0, (size_t)in * sizeof(T));
        for (int64_t i = 0; i < out; i++)
            if ((uint64_t)at[i] < (uint64_t)in) d[at[i]] += g[i];   /* past the plane: nothing */
    });
}

/* PyTorch's average window along one axis: [*a, *e) clipped to the input; returns the size
 * clipped to the padded input (the count_include_pad divisor). */
FNN_INLINE int64_t FN(avg_window)(int64_t i, int64_t s, int64_t pad, int64_t k, int64_t n,
                                  int64_t *a, int64_t *e)
{
    int64_t start = i * s - pad, end = start + k < n + pad ? start + k : n + pad;
    int64_t padded = end - start;
    *a = start > 0 ? start : 0;
    *e = end < n ? end : n;
    return padded;
}

/* Forward (back = 0): y = window sum / divisor. Backward (back = 1): dx (in x, zeroed here)
 * gets dy / divisor (dy in y) added over each window. A window wholly in the padding gives 0. */
static void FN(avg_pool_plane)(T *restrict x, T *restrict y, const fnn_pool2d *p, int back)
{
    const int64_t h = p->h, w = p->w, oh = p->oh, ow = p->ow;
    if (back) memset(x, 0, (size_t)(h * w) * sizeof(T));
    for (int64_t i = 0; i < oh; i++) {
        int64_t r0, r1;
        int64_t ph_size = FN(avg_window)(i, p->sh, p->ph, p->kh, h, &r0, &r1);
        for (int64_t j = 0; j < ow; j++) {
            int64_t c0, c1;
            int64_t pw_size = FN(avg_window)(j, p->sw, p->pw, p->kw, w, &c0, &c1);
            if (r0 >= r1 || c0 >= c1) {
                if (!back) y[i * ow + j] = 0;
                continue;
            }
            int64_t div = p->divisor ? p->divisor
                          : p->count_include_pad ? ph_size * pw_size : (r1 - r0) * (c1 - c0);
            if (back) {
                T g = y[i * ow + j] / (T)div;
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t c = c0; c < c1; c++) x[r * w + c] += g;
            } else {
                T s = 0;
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t c = c0; c < c1; c++) s += x[r * w + c];
                y[i * ow + j] = s / (T)div;
            }
        }
    }
}

/* Adaptive windows: [floor(i n / o), ceil((i + 1) n / o)); directions as avg_pool_plane. */
static void FN(adaptive_plane)(T *restrict x, T *restrict y, const fnn_pool2d *p, int back)
{
    const int64_t h = p->h, w = p->w, oh = p->oh, ow = p->ow;
    if (back) memset(x, 0, (size_t)(h * w) * sizeof(T));
    for (int64_t i = 0; i < oh; i++) {
        int64_t r0 = i * h / oh, r1 = ((i + 1) * h + oh - 1) / oh;
        for (int64_t j = 0; j < ow; j++) {
            int64_t c0 = j * w / ow, c1 = ((j + 1) * w + ow - 1) / ow;
            T div = (T)((r1 - r0) * (c1 - c0));
            if (back) {
                T g = y[i * ow + j] / div;
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t c = c0; c < c1; c++) x[r * w + c] += g;
            } else {
                T s = 0;
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t c = c0; c < c1; c++) s += x[r * w + c];
                y[i * ow + j] = s / div;
            }
        }
    }
}

static void FN(avg_pool2d)(T *x, T *y, const fnn_pool2d *p, int back, int adaptive)
{
    const int64_t in = p->h * p->w, out = p->oh * p->ow;
    const int64_t taps = adaptive ? 1 + (p->h + p->oh - 1) / p->oh * ((p->w + p->ow - 1) / p->ow)
                                  : p->kh * p->kw;
    FNN_FOR_ROWS(b, p->planes, p->planes * (in + out * taps), FNN_PAR_CHEAP, {
        if (adaptive) FN(adaptive_plane)(x + b * in, y + b * out, p, back);
        else FN(avg_pool_plane)(x + b * in, y + b * out, p, back);
    });
}

#else  /* ---- entry points ---- */
#include "ops_common.h"
#include "pool.h"
#define FNN_KERNELS "pool.c"
#include "ops_instantiate.h"

#define FNN_ENTRY_POINTS(T, DT)                                                                  \
    void fnn_max_pool2d_##DT(const T *x, T *y, int64_t *idx, const fnn_pool2d *p)                \
    {                                                                                            \
        FNN_DISPATCH(max_pool2d_##DT, (x, y, idx, p));                                           \
    }                                                                                            \
    void fnn_max_pool2d_backward_##DT(const T *dy, const int64_t *idx, T *dx,                    \
                                      const fnn_pool2d *p)                                       \
    {                                                                                            \
        FNN_DISPATCH(max_pool2d_backward_##DT, (dy, idx, dx, p));                                \
    }                                                                                            \
    void fnn_avg_pool2d_##DT(const T *x, T *y, const fnn_pool2d *p)                              \
    {                                                                                            \
        FNN_DISPATCH(avg_pool2d_##DT, ((T *)x, y, p, 0, 0));                                     \
    }                                                                                            \
    void fnn_avg_pool2d_backward_##DT(const T *dy, T *dx, const fnn_pool2d *p)                   \
    {                                                                                            \
        FNN_DISPATCH(avg_pool2d_##DT, (dx, (T *)dy, p, 1, 0));                                   \
    }                                                                                            \
    void fnn_adaptive_avg_pool2d_##DT(const T *x, T *y, const fnn_pool2d *p)                     \
    {                                                                                            \
        FNN_DISPATCH(avg_pool2d_##DT, ((T *)x, y, p, 0, 1));                                     \
    }                                                                                            \
    void fnn_adaptive_avg_pool2d_backward_##DT(const T *dy, T *dx, const fnn_pool2d *p)          \
    {                                                                                            \
        FNN_DISPATCH(avg_pool2d_##DT, (dx, (T *)dy, p, 1, 1));                                   \
    }

FNN_ENTRY_POINTS(float, f32)
FNN_ENTRY_POINTS(double, f64)
#endif
