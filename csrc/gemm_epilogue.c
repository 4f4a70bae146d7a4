/* The activations of the GEMM's fused epilogue (gemm.h): the ops family's own ReLU and GELU
 * kernels (ops_activations.c), compiled into this module once per dtype and ISA, so a fused
 * Linear + GELU gives the same values as Linear then gelu. */
#include "ops_common.h"
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"   /* the family's other kernels */
#endif
#define FNN_KERNELS "ops_activations.c"
#include "ops_instantiate.h"
#include "gemm.h"

#if FNN_MULTI_ISA
#define ACT_FOR_ISA(name)                                                                      \
    (fnn_cpu_isa() == FNN_ISA_AVX512 ? name##_avx512                                           \
     : fnn_cpu_isa() == FNN_ISA_AVX2 ? name##_avx2 : name##_portable)
#else
#define ACT_FOR_ISA(name) name##_portable
#endif

#define DEFINE_ACT_LOOKUP(DT)                                                                  \
    fnn_gemm_act_##DT##_fn fnn_gemm_act_##DT(int act)                                          \
    {                                                                                          \
        switch (act) {                                                                         \
        case FNN_GEMM_ACT_RELU: return ACT_FOR_ISA(relu_##DT);                                 \
        case FNN_GEMM_ACT_GELU_TANH: return ACT_FOR_ISA(gelu_tanh_##DT);                       \
        case FNN_GEMM_ACT_GELU_ERF: return ACT_FOR_ISA(gelu_erf_##DT);                         \
        default: return 0;                                                                     \
        }                                                                                      \
    }
DEFINE_ACT_LOOKUP(f32)
DEFINE_ACT_LOOKUP(f64)
