/* Selection and sampling kernels' C entry points (csrc/select.c), called by
 * fastnn/backends/cython/_select.pyx.
 *
 * Semantics: fastnn/kernels/families/select.py (topk's order of ties and NaN; multinomial's
 * inverse CDF in float64); the oracle is fastnn/backends/numpy/select.py. Arrays are
 * C-contiguous and validated in Python: x and p are (n, c), 1 <= k <= c, u is (n, s) in [0, 1),
 * s <= c without replacement. Rows are independent and split across OpenMP threads above a
 * size threshold. Functions return 0, or -1 when a scratch allocation failed.
 */
#ifndef FNN_SELECT_H
#define FNN_SELECT_H

#include <stdint.h>

/* values (n, k), idx (n, k): the k best of each row (largest or smallest), best first
 * (sorted) or in ascending index order (!sorted) */
int fnn_topk_f32(const float *x, float *values, int64_t *idx, int64_t n, int64_t c, int64_t k,
                 int largest, int sorted);
int fnn_topk_f64(const double *x, double *values, int64_t *idx, int64_t n, int64_t c,
                 int64_t k, int largest, int sorted);

/* out (n, s): category indices drawn from the rows of p with the uniforms u (n, s) */
int fnn_multinomial_f32(const float *p, const double *u, int64_t *out, int64_t n, int64_t c,
                        int64_t s, int replacement);
int fnn_multinomial_f64(const double *p, const double *u, int64_t *out, int64_t n, int64_t c,
                        int64_t s, int replacement);

#endif
