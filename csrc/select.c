/* Selection and sampling over rows: topk (a k-entry heap per row) and multinomial (the
 * inverse CDF in float64). Semantics: fastnn/kernels/families/select.py; C entry points:
 * select.h.
 *
 * This file is its own template: the kernel section (FNN_SELECT_KERNELS) is compiled once for
 * float and once for double. No SIMD paths: topk's hot loop is a compare against the heap's
 * worst value, which GCC vectorizes at -O3 (with no-trapping-math, below), and multinomial's
 * sums are sequential by definition (every backend must add in the same order to draw the same
 * samples). */
#ifdef FNN_SELECT_KERNELS /* -------------- kernels, once per dtype: T, FN(name) -------------- */

typedef struct { T v; int64_t i; } FN(pair);

/* a comes before b in topk's order: NaN largest, then by value, then the lower index */
static inline int FN(better)(T av, int64_t ai, T bv, int64_t bi, int largest)
{
    int an = av != av, bn = bv != bv;
    if (an | bn) {
        if (an & bn) return ai < bi;
        return largest ? an : bn;
    }
    if (av != bv) return largest ? av > bv : av < bv;
    return ai < bi;
}

/* heap[0] is the worst kept entry: each parent comes after its children in topk's order */
static void FN(sift_down)(FN(pair) *h, int64_t k, int64_t pos, int largest)
{
    FN(pair) item = h[pos];
    for (;;) {
        int64_t ch = 2 * pos + 1;
        if (ch >= k) break;
        if (ch + 1 < k && FN(better)(h[ch].v, h[ch].i, h[ch + 1].v, h[ch + 1].i, largest))
            ch++;                                   /* the worse child */
        if (!FN(better)(item.v, item.i, h[ch].v, h[ch].i, largest)) break;
        h[pos] = h[ch];
        pos = ch;
    }
    h[pos] = item;
}

static int FN(by_index)(const void *a, const void *b)
{
    int64_t ia = ((const FN(pair) *)a)->i, ib = ((const FN(pair) *)b)->i;
    return (ia > ib) - (ia < ib);
}

#define FNN_TOPK_BLOCK 32

static void FN(topk_row)(const T *restrict x, T *restrict values, int64_t *restrict idx,
                         int64_t c, int64_t k, int largest, int sorted, FN(pair) *restrict h)
{
    for (int64_t i = 0; i < k; i++) {
        h[i].v = x[i];
        h[i].i = i;
    }
    for (int64_t i = k / 2 - 1; i >= 0; i--) FN(sift_down)(h, k, i, largest);
    /* Element i > every kept index beats the worst kept one only if strictly better:
     * largest: !(v <= thr) (greater, or NaN over a number); smallest: v < thr. A block of
     * elements none of which passes that test is skipped with one vectorized pass. */
    int64_t i = k;
    while (i < c) {
        T thr = h[0].v;
        if (thr != thr) {
            if (largest) break;                     /* k NaNs kept: nothing later beats them */
            for (; i < c; i++)                      /* smallest: any number beats a NaN */
                if (FN(better)(x[i], i, h[0].v, h[0].i, 0)) {
                    h[0].v = x[i];
                    h[0].i = i;
                    FN(sift_down)(h, k, 0, 0);
                }
            break;
        }
        int64_t end = i + FNN_TOPK_BLOCK < c ? i + FNN_TOPK_BLOCK : c;
        int hit = 0;
        if (largest) {
            for (int64_t j = i; j < end; j++) hit |= !(x[j] <= thr);
        } else {
            for (int64_t j = i; j < end; j++) hit |= x[j] < thr;
        }
        if (hit) {
            for (int64_t j = i; j < end; j++)
                if (FN(better)(x[j], j, h[0].v, h[0].i, largest)) {
                    h[0].v = x[j];
                    h[0].i = j;
                    FN(sift_down)(h, k, 0, largest);
                }
        }
        i = end;
    }
    if (sorted) {               /* pop the worst to the back: best first */
        for (int64_t n = k; n > 0; n--) {
            values[n - 1] = h[0].v;
            idx[n - 1] = h[0].i;
            h[0] = h[n - 1];
            if (n > 1) FN(sift_down)(h, n - 1, 0, largest);
        }
    } else {
        qsort(h, (size_t)k, sizeof(FN(pair)), FN(by_index));
        for (int64_t n = 0; n < k; n++) {
            values[n] = h[n].v;
            idx[n] = h[n].i;
        }
    }
}

int FN(fnn_topk)(const T *x, T *values, int64_t *idx, int64_t n, int64_t c, int64_t k,
                 int largest, int sorted)
{
    int err = 0;
    if (n * c > FNN_SELECT_PAR && n > 1 && fnn_select_threads() > 1) {
#pragma omp parallel num_threads(fnn_select_threads())
        {
            FN(pair) *h = malloc((size_t)k * sizeof(FN(pair)));
            if (!h) {
#pragma omp atomic write
                err = -1;
            }
#pragma omp for schedule(static)
            for (int64_t r = 0; r < n; r++)
                if (h) FN(topk_row)(x + r * c, values + r * k, idx + r * k, c, k, largest,
                                    sorted, h);
            free(h);
        }
        return err;
    }
    FN(pair) *h = malloc((size_t)k * sizeof(FN(pair)));
    if (!h) return -1;
    for (int64_t r = 0; r < n; r++)
        FN(topk_row)(x + r * c, values + r * k, idx + r * k, c, k, largest, sorted, h);
    free(h);
    return 0;
}

/* ---- multinomial: the first j with cdf[j] > u * total, cdf summed left to right in double */
static int64_t FN(last_positive)(const T *p, int64_t c)
{
    for (int64_t j = c - 1; j > 0; j--)
        if (p[j] > 0) return j;
    return 0;
}

/* with replacement, s samples from one row; cdf: scratch of c doubles. (Storing the cdf and
 * bisecting beats summing the total then scanning again, ~3x at c = 50000, even for one
 * sample.) */
static void FN(sample_row)(const T *restrict p, const double *restrict u, int64_t *restrict out,
                           int64_t c, int64_t s, double *restrict cdf)
{
    double acc = 0.0;
    for (int64_t j = 0; j < c; j++) {
        acc += (double)p[j];
        cdf[j] = acc;
    }
    for (int64_t q = 0; q < s; q++) {
        int64_t j = fnn_bisect_(cdf, c, u[q] * acc);
        out[q] = j < c ? j : FN(last_positive)(p, c);
    }
}

/* without replacement: w, cdf (c doubles each) and taken (c bytes) are scratch */
static void FN(sample_row_distinct)(const T *restrict p, const double *restrict u,
                                    int64_t *restrict out, int64_t c, int64_t s,
                                    double *restrict w, double *restrict cdf,
                                    unsigned char *restrict taken)
{
    for (int64_t j = 0; j < c; j++) {
        w[j] = (double)p[j];
        taken[j] = 0;
    }
    for (int64_t q = 0; q < s; q++) {
        double total = 0.0;
        for (int64_t j = 0; j < c; j++) {
            total += w[j];
            cdf[j] = total;
        }
        int64_t pick;
        if (total > 0) {
            pick = fnn_bisect_(cdf, c, u[q] * total);
            if (pick == c) {
                pick = c - 1;
                while (pick > 0 && !(w[pick] > 0)) pick--;
            }
        } else {                /* only categories of probability 0 left: uniformly */
            int64_t m = c - q;
            int64_t nth = (int64_t)(u[q] * (double)m);
            if (nth > m - 1) nth = m - 1;
            pick = 0;
            for (int64_t j = 0; j < c; j++)
                if (!taken[j] && nth-- == 0) {
                    pick = j;
                    break;
                }
        }
        out[q] = pick;
        w[pick] = 0.0;
        taken[pick] = 1;
    }
}

static int FN(multinomial_rows)(const T *p, const double *u, int64_t *out, int64_t r0,
                                int64_t r1, int64_t c, int64_t s, int replacement)
{
    double *w = malloc((size_t)c * sizeof(double) * (replacement ? 1 : 2));
    unsigned char *taken = replacement ? NULL : malloc((size_t)c);
    if (!w || (!replacement && !taken)) {
        free(w);
        free(taken);
        return -1;
    }
    for (int64_t r = r0; r < r1; r++) {
        if (replacement)
            FN(sample_row)(p + r * c, u + r * s, out + r * s, c, s, w);
        else
            FN(sample_row_distinct)(p + r * c, u + r * s, out + r * s, c, s, w, w + c, taken);
    }
    free(w);
    free(taken);
    return 0;
}

int FN(fnn_multinomial)(const T *p, const double *u, int64_t *out, int64_t n, int64_t c,
                        int64_t s, int replacement)
{
    int64_t work = n * c * (replacement ? 1 : s);
    if (work > FNN_SELECT_PAR && n > 1 && fnn_select_threads() > 1) {
        int err = 0;
#pragma omp parallel num_threads(fnn_select_threads())
        {
#ifdef _OPENMP
            int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
            int nt = 1, t = 0;
#endif
            int64_t r0 = n * t / nt, r1 = n * (t + 1) / nt;
            if (FN(multinomial_rows)(p, u, out, r0, r1, c, s, replacement)) {
#pragma omp atomic write
                err = -1;
            }
        }
        return err;
    }
    return FN(multinomial_rows)(p, u, out, 0, n, c, s, replacement);
}

#else /* ---------------------------------- instantiation ---------------------------------- */

#include <stdint.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fastnn.h"
#include "select.h"

/* No fused multiply-adds, no reordering: the sums must be those of every other backend.
 * no-trapping-math lets GCC vectorize topk's compares (nothing reads the FP flags). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off", "no-trapping-math")
#endif

#define FNN_SELECT_PAR (1 << 16)    /* elements below which one thread does the whole call */

static inline int fnn_select_threads(void) { return fnn_get_num_threads(); }

/* first j with cdf[j] > t in the non-decreasing cdf[0..c), c if none */
static inline int64_t fnn_bisect_(const double *cdf, int64_t c, double t)
{
    int64_t lo = 0, hi = c;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] > t) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

#define FNN_SEL_PASTE_(a, b) a##_##b
#define FNN_SEL_PASTE(a, b) FNN_SEL_PASTE_(a, b)
#define FN(name) FNN_SEL_PASTE(name, FNN_DT)
#define FNN_SELECT_KERNELS

#define T float
#define FNN_DT f32
#include "select.c"
#undef T
#undef FNN_DT

#define T double
#define FNN_DT f64
#include "select.c"
#undef T
#undef FNN_DT

#endif
