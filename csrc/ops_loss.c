/* Mean squared error and its gradient, in one pass. Semantics: fastnn/backends/reference.py.
 * (cross_entropy, fused with log-softmax, lives with the softmax family in ops_softmax.c.) */
#ifdef FNN_KERNELS  /* ---- kernels: compiled once per dtype and ISA (ops_instantiate.h) ---- */

/* mse_loss:  loss = sum (p - t)^2 / n,  grad = 2 (p - t) / n.
 * The sum is accumulated in double whatever T is. */
static double FN(mse_loss)(const T *restrict pred, const T *restrict target, T *restrict grad,
                           int64_t n)
{
    const T scale = (T)(2.0 / (double)n);
    double sum = 0;
    if (n > FNN_PAR_CHEAP && fnn_max_threads() > 1) {
#pragma omp parallel for simd reduction(+ : sum) schedule(static) num_threads(fnn_max_threads())
        for (int64_t i = 0; i < n; i++) {
            T d = pred[i] - target[i];
            sum += (double)(d * d);
            grad[i] = d * scale;
        }
    } else {
#pragma omp simd reduction(+ : sum)
        for (int64_t i = 0; i < n; i++) {
            T d = pred[i] - target[i];
            sum += (double)(d * d);
            grad[i] = d * scale;
        }
    }
    return sum / (double)n;
}

#else  /* ---- entry points ---- */
#include "ops_common.h"
#define FNN_KERNELS "ops_loss.c"
#include "ops_instantiate.h"

double fnn_mse_loss_f32(const float *pred, const float *target, float *grad, int64_t n)
{
    double loss;
    FNN_DISPATCH_RET(loss, mse_loss_f32, (pred, target, grad, n));
    return loss;
}

double fnn_mse_loss_f64(const double *pred, const double *target, double *grad, int64_t n)
{
    double loss;
    FNN_DISPATCH_RET(loss, mse_loss_f64, (pred, target, grad, n));
    return loss;
}
#endif
