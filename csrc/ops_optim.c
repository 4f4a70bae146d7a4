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
#define FNN_ADAM_BODY(gi_expr)                                                  \
    {                                                                            \
        T pi = p[i];                                                             \
        T gi = gi_expr;                                                          \
        if (decoupled) pi *= decay_factor;                                       \
        if (l2) gi += wd * pi;                                                   \
        T mi = beta1 * m[i] + one_minus_beta1 * gi;                              \
        T vi = beta2 * v[i] + one_minus_beta2 * gi * gi;                         \
        m[i] = mi;                                                               \
        v[i] = vi;                                                               \
        p[i] = pi - step_size * mi / (FNN_SQRT(vi) / sqrt_bc2 + eps);            \
    }

static void FN(adam_step)(T *restrict p, const T *restrict g, T *restrict m, T *restrict v,
                          int64_t n, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2,
                          T eps, T wd, int decoupled, T decay_factor, T step_size, T sqrt_bc2)
{
    const int l2 = !decoupled && wd != 0;
    FNN_FOR_SIMD(i, n, FNN_PAR_CHEAP, FNN_ADAM_BODY(g[i]));
}

/* The same update over many tensors: the gradient read as grad_scale * g (clipping folded in;
 * with L2 decay the compiler may fuse grad_scale * g + wd * p, so that case can differ from
 * clipping first by an ulp). One thread team for all of them, the concatenated
 * elements split evenly, so that the many small tensors of a model (norm weights, biases, each
 * under the per-call threading threshold) share the threads too. */
FNN_INLINE void FN(adam_span)(T *const *pp, T *const *gg, T *const *mm, T *const *vv,
                              const int64_t *sizes, int64_t count, int64_t lo, int64_t hi,
                              T beta1, T one_minus_beta1, T beta2, T one_minus_beta2, T eps,
                              T wd, int decoupled, T decay_factor, T step_size, T sqrt_bc2,
                              T grad_scale)
{
    const int l2 = !decoupled && wd != 0;
    int64_t start = 0;  /* where tensor k begins in the concatenation */
    for (int64_t k = 0; k < count && start < hi; start += sizes[k], k++) {
        int64_t a = lo > start ? lo - start : 0;
        int64_t b = hi < start + sizes[k] ? hi - start : sizes[k];
        if (a >= b) continue;
        T *restrict p = pp[k] + a, *restrict m = mm[k] + a, *restrict v = vv[k] + a;
        const T *restrict g = gg[k] + a;
        const int64_t n = b - a;
        if (grad_scale == 1) {  /* adam_step's very loop, so its numbers to the bit */
            _Pragma("omp simd")
            for (int64_t i = 0; i < n; i++) FNN_ADAM_BODY(g[i])
        } else {
            _Pragma("omp simd")
            for (int64_t i = 0; i < n; i++) FNN_ADAM_BODY(grad_scale * g[i])
        }
    }
}

static void FN(adam_multi_step)(T *const *p, T *const *g, T *const *m, T *const *v,
                                const int64_t *sizes, int64_t count, int64_t total, T beta1,
                                T one_minus_beta1, T beta2, T one_minus_beta2, T eps, T wd,
                                int decoupled, T decay_factor, T step_size, T sqrt_bc2,
                                T grad_scale)
{
    if (total > FNN_PAR_CHEAP && fnn_max_threads() > 1) {
#pragma omp parallel num_threads(fnn_max_threads())
        {
            const int64_t nt = fnn_team_size(), t = fnn_thread_id();
            FN(adam_span)(p, g, m, v, sizes, count, total * t / nt, total * (t + 1) / nt, beta1,
                          one_minus_beta1, beta2, one_minus_beta2, eps, wd, decoupled,
                          decay_factor, step_size, sqrt_bc2, grad_scale);
        }
    } else {
        FN(adam_span)(p, g, m, v, sizes, count, 0, total, beta1, one_minus_beta1, beta2,
                      one_minus_beta2, eps, wd, decoupled, decay_factor, step_size, sqrt_bc2,
                      grad_scale);
    }
}
#undef FNN_ADAM_BODY

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
    }                                                                                            \
    void fnn_adam_multi_step_##DT(T **param, T **grad, T **m, T **v, const int64_t *sizes,       \
                                  int64_t count, int64_t step, double lr, double beta1,          \
                                  double beta2, double eps, double weight_decay, int decoupled,  \
                                  double grad_scale)                                             \
    {                                                                                            \
        double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);          \
        int64_t total = 0;                                                                       \
        for (int64_t k = 0; k < count; k++) total += sizes[k];                                   \
        FNN_DISPATCH(adam_multi_step_##DT,                                                       \
                     (param, grad, m, v, sizes, count, total, (T)beta1, (T)(1 - beta1),          \
                      (T)beta2, (T)(1 - beta2), (T)eps, (T)weight_decay, decoupled,              \
                      (T)(1 - lr * weight_decay), (T)(lr / bc1), (T)sqrt(bc2),                   \
                      (T)grad_scale));                                                           \
    }

FNN_ENTRY_POINTS(float, f32)
FNN_ENTRY_POINTS(double, f64)
#endif
