/* The ops kernels' C entry points (csrc/ops_*.c), called by fastnn/backends/_ops.pyx.
 *
 * Semantics: fastnn/backends/reference.py, kernel of the same name. Arrays are C-contiguous and
 * validated by fastnn/kernels.py; row kernels take (rows, cols) matrices; outputs are written,
 * never read (embedding_backward's dweight must arrive zeroed). Each kernel picks its AVX-512,
 * AVX2 or portable variant with fnn_cpu_isa() and threads with OpenMP above a size threshold.
 * Functions returning int give 0, or -1 when a scratch allocation failed.
 */
#ifndef FNN_OPS_H
#define FNN_OPS_H

#include <stdint.h>

/* ops_bias.c */
void fnn_bias_add_f32(const float *x, const float *bias, float *y, int64_t rows, int64_t cols);
void fnn_bias_add_f64(const double *x, const double *bias, double *y, int64_t rows, int64_t cols);
int fnn_bias_grad_f32(const float *dy, float *dbias, int64_t rows, int64_t cols);
int fnn_bias_grad_f64(const double *dy, double *dbias, int64_t rows, int64_t cols);

/* ops_activations.c */
void fnn_relu_f32(const float *x, float *y, int64_t n);
void fnn_relu_f64(const double *x, double *y, int64_t n);
void fnn_relu_backward_f32(const float *dy, const float *x, float *dx, int64_t n);
void fnn_relu_backward_f64(const double *dy, const double *x, double *dx, int64_t n);
void fnn_leaky_relu_f32(const float *x, float *y, int64_t n, double negative_slope);
void fnn_leaky_relu_f64(const double *x, double *y, int64_t n, double negative_slope);
void fnn_leaky_relu_backward_f32(const float *dy, const float *x, float *dx, int64_t n,
                                 double negative_slope);
void fnn_leaky_relu_backward_f64(const double *dy, const double *x, double *dx, int64_t n,
                                 double negative_slope);
void fnn_sigmoid_f32(const float *x, float *y, int64_t n);
void fnn_sigmoid_f64(const double *x, double *y, int64_t n);
void fnn_sigmoid_backward_f32(const float *dy, const float *y, float *dx, int64_t n);
void fnn_sigmoid_backward_f64(const double *dy, const double *y, double *dx, int64_t n);
void fnn_tanh_f32(const float *x, float *y, int64_t n);
void fnn_tanh_f64(const double *x, double *y, int64_t n);
void fnn_tanh_backward_f32(const float *dy, const float *y, float *dx, int64_t n);
void fnn_tanh_backward_f64(const double *dy, const double *y, double *dx, int64_t n);
void fnn_gelu_f32(const float *x, float *y, int64_t n, int approximate);
void fnn_gelu_f64(const double *x, double *y, int64_t n, int approximate);
void fnn_gelu_backward_f32(const float *dy, const float *x, float *dx, int64_t n, int approximate);
void fnn_gelu_backward_f64(const double *dy, const double *x, double *dx, int64_t n,
                           int approximate);
void fnn_clamp_f32(const float *x, float *y, int64_t n, double lo, double hi);
void fnn_clamp_f64(const double *x, double *y, int64_t n, double lo, double hi);
void fnn_clamp_backward_f32(const float *dy, const float *x, float *dx, int64_t n, double lo,
                            double hi);
void fnn_clamp_backward_f64(const double *dy, const double *x, double *dx, int64_t n, double lo,
                            double hi);

/* ops_softmax.c */
void fnn_softmax_f32(const float *x, float *y, int64_t rows, int64_t cols);
void fnn_softmax_f64(const double *x, double *y, int64_t rows, int64_t cols);
void fnn_softmax_backward_f32(const float *dy, const float *y, float *dx, int64_t rows,
                              int64_t cols);
void fnn_softmax_backward_f64(const double *dy, const double *y, double *dx, int64_t rows,
                              int64_t cols);
void fnn_log_softmax_f32(const float *x, float *y, int64_t rows, int64_t cols);
void fnn_log_softmax_f64(const double *x, double *y, int64_t rows, int64_t cols);
void fnn_log_softmax_backward_f32(const float *dy, const float *y, float *dx, int64_t rows,
                                  int64_t cols);
void fnn_log_softmax_backward_f64(const double *dy, const double *y, double *dx, int64_t rows,
                                  int64_t cols);
void fnn_cross_entropy_f32(const float *logits, const int64_t *targets, float *losses,
                           float *dlogits, int64_t rows, int64_t cols, int64_t ignore_index,
                           double grad_scale);
void fnn_cross_entropy_f64(const double *logits, const int64_t *targets, double *losses,
                           double *dlogits, int64_t rows, int64_t cols, int64_t ignore_index,
                           double grad_scale);

/* ops_loss.c */
double fnn_mse_loss_f32(const float *pred, const float *target, float *grad, int64_t n);
double fnn_mse_loss_f64(const double *pred, const double *target, double *grad, int64_t n);

/* ops_layernorm.c */
void fnn_layer_norm_f32(const float *x, const float *weight, const float *bias, float *y,
                        float *mean, float *rstd, int64_t rows, int64_t cols, double eps);
void fnn_layer_norm_f64(const double *x, const double *weight, const double *bias, double *y,
                        double *mean, double *rstd, int64_t rows, int64_t cols, double eps);
int fnn_layer_norm_backward_f32(const float *dy, const float *x, const float *weight,
                                const float *mean, const float *rstd, float *dx, float *dweight,
                                float *dbias, int64_t rows, int64_t cols);
int fnn_layer_norm_backward_f64(const double *dy, const double *x, const double *weight,
                                const double *mean, const double *rstd, double *dx,
                                double *dweight, double *dbias, int64_t rows, int64_t cols);

/* ops_embedding.c */
void fnn_embedding_f32(const float *weight, const int64_t *ids, float *out, int64_t n,
                       int64_t cols);
void fnn_embedding_f64(const double *weight, const int64_t *ids, double *out, int64_t n,
                       int64_t cols);
void fnn_embedding_backward_f32(const float *dout, const int64_t *ids, float *dweight, int64_t n,
                                int64_t cols);
void fnn_embedding_backward_f64(const double *dout, const int64_t *ids, double *dweight, int64_t n,
                                int64_t cols);

/* ops_optim.c */
void fnn_sgd_step_f32(float *param, const float *grad, float *buf, int64_t n, double lr,
                      double momentum, double dampening, int nesterov, double weight_decay,
                      int first);
void fnn_sgd_step_f64(double *param, const double *grad, double *buf, int64_t n, double lr,
                      double momentum, double dampening, int nesterov, double weight_decay,
                      int first);
void fnn_adam_step_f32(float *param, const float *grad, float *m, float *v, int64_t n,
                       int64_t step, double lr, double beta1, double beta2, double eps,
                       double weight_decay, int decoupled);
void fnn_adam_step_f64(double *param, const double *grad, double *m, double *v, int64_t n,
                       int64_t step, double lr, double beta1, double beta2, double eps,
                       double weight_decay, int decoupled);
/* adam_step over `count` tensors of `sizes` elements (arrays of their data pointers) */
void fnn_adam_multi_step_f32(float **param, float **grad, float **m, float **v,
                             const int64_t *sizes, int64_t count, int64_t step,
                             double lr, double beta1, double beta2, double eps,
                             double weight_decay, int decoupled, double grad_scale);
void fnn_adam_multi_step_f64(double **param, double **grad, double **m, double **v,
                             const int64_t *sizes, int64_t count, int64_t step,
                             double lr, double beta1, double beta2, double eps,
                             double weight_decay, int decoupled, double grad_scale);

#endif
