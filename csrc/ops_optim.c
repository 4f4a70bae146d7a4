/* Optimizer updates, in place and fused into one pass over the parameters.
 * Semantics (PyTorch's rules): fastnn/backends/reference.py. */
#ifdef FNN_KERNELS  /* ---- kernels: compiled once per dtype and ISA (ops_instantiate.h) ---- */

/* SGD:  d = g + wd p  (wd != 0)
 *       buf = d (first step) or momentum buf + (1 - dampening) d      (momentum != 0)
 *       d = d + momentum buf (nesterov) or buf                        (momentum != 0)
 *       p -= lr d */
static void FN(sgd_step)(T *restrict p, const T *restrict g, T *restrict buf, int64_t n, T lr,
                         T momentum, T dampening, int nesterov, T wd, int first)
{
    const int decay = wd != 0;
    if (momentum == 0) {  /* buf is empty */
        FNN_FOR_SIMD(i, n, FNN_PAR_CHEAP, {
            T d = decay ? g[i] + wd * p[i] : g[i];
            p[i] -= lr * d;
        });
        return;
    }
    const T keep = 1 - dampening;
    FNN_FOR_SIMD(i, n, FNN_PAR_CHEAP, {
        T d = decay ? g[i] + wd * p[i] : g[i];
        T b = first ? d : momentum * buf[i] + keep * d;
        buf[i] = b;
        d = nesterov ? d + momentum * b : b;
        p[i] -= lr * d;
    });
}

/* Adam / AdamW at step t (bias corrections bc1 = 1 - beta1^t, bc2 = 1 - beta2^t):
 *       p *= 1 - lr wd  (decoupled, AdamW)   or   g = g + wd p  (Adam, wd != 0)
 *       m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2
 *       p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps) */
static void FN(adam_step)(T *restrict p, const T *restrict g, T *restrict m, T *restrict v,
                          int64_t n, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2,
                          T eps, T wd, int decoupled, T decay_factor, T step_size, T sqrt_bc2)
{
    const int l2 = !decoupled && wd != 0;
    FNN_FOR_SIMD(i, n, FNN_PAR_CHEAP, {
        T pi = p[i];
        T gi = g[i];
        if (decoupled) pi *= decay_factor;
        if (l2) gi += wd * pi;
        T mi = beta1 * m[i] + one_minus_beta1 * gi;
        T vi = beta2 * v[i] + one_minus_beta2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * mi / (FNN_SQRT(vi) / sqrt_bc2 + eps);
    });
}

#else  /* ---- entry points ---- */
#include "ops_common.h"
#define FNN_KERNELS "ops_optim.c"
#include "ops_instantiate.h"

#define FNN_ENTRY_POINTS(T, DT)                                                                  \
    void fnn_sgd_step_##DT(T *param, const T *grad, T *buf, int64_t n, double lr,                \
                           double momentum, double dampening, int nesterov, double weight_decay, \
                           int first)                                                            \
    {                                                                                            \
        FNN_DISPATCH(sgd_step_##DT, (param, grad, buf, n, (T)lr, (T)momentum, (T)dampening,      \
                                     nesterov, (T)weight_decay, first));                         \
    }                                                                                            \
    void fnn_adam_step_##DT(T *param, const T *grad, T *m, T *v, int64_t n, int64_t step,        \
                            double lr, double beta1, double beta2, double eps,                   \
                            double weight_decay, int decoupled)                                  \
    {                                                                                            \
        double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);          \
        FNN_DISPATCH(adam_step_##DT,                                                             \
                     (param, grad, m, v, n, (T)beta1, (T)(1 - beta1), (T)beta2, (T)(1 - beta2),  \
                      (T)eps, (T)weight_decay, decoupled, (T)(1 - lr * weight_decay),            \
                      (T)(lr / bc1), (T)sqrt(bc2)));                                             \
    }

FNN_ENTRY_POINTS(float, f32)
FNN_ENTRY_POINTS(double, f64)
#endif
