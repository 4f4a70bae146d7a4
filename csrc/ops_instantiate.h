/* Compiles a family's kernel section once per dtype and instruction set.
 *
 * A family file (csrc/ops_<family>.c) has two sections:
 *
 *     #ifdef FNN_KERNELS        kernels written once with T, FN(name), FNN_F32 (1 for float),
 *                               FNN_EXP / FNN_SQRT (fnn_expf or fnn_exp, sqrtf or sqrt)
 *     ...
 *     #else                     entry points: fnn_<kernel>_f32/_f64 (ops.h), via FNN_DISPATCH
 *     #include "ops_common.h"
 *     #define FNN_KERNELS "ops_<family>.c"
 *     #include "ops_instantiate.h"     <- includes the file's kernel section 6 times
 *     ...
 *     #endif
 *
 * The AVX2 and AVX-512 copies sit under `#pragma GCC target`, so the loops (and the OpenMP
 * regions outlined from them) vectorize for that ISA; nothing else in the build uses -march.
 */
#ifndef FNN_KERNELS
#error "define FNN_KERNELS as the family's file name before including ops_instantiate.h"
#endif

/* Without this, GCC treats the clamps and selects of the math (x > hi ? hi : x) as branches
 * around possibly-trapping float operations and vectorizes them only where AVX-512 masks can
 * guard them. No kernel reads the floating-point exception flags. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#define FNN_ISA portable
#define T float
#define FNN_DT f32
#define FNN_F32 1
#define FNN_EXP fnn_expf
#define FNN_SQRT sqrtf
#include FNN_KERNELS
#undef T
#undef FNN_DT
#undef FNN_F32
#undef FNN_EXP
#undef FNN_SQRT
#define T double
#define FNN_DT f64
#define FNN_F32 0
#define FNN_EXP fnn_exp
#define FNN_SQRT sqrt
#include FNN_KERNELS
#undef T
#undef FNN_DT
#undef FNN_F32
#undef FNN_EXP
#undef FNN_SQRT
#undef FNN_ISA

#if FNN_MULTI_ISA
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define FNN_ISA avx2
#define T float
#define FNN_DT f32
#define FNN_F32 1
#define FNN_EXP fnn_expf
#define FNN_SQRT sqrtf
#include FNN_KERNELS
#undef T
#undef FNN_DT
#undef FNN_F32
#undef FNN_EXP
#undef FNN_SQRT
#define T double
#define FNN_DT f64
#define FNN_F32 0
#define FNN_EXP fnn_exp
#define FNN_SQRT sqrt
#include FNN_KERNELS
#undef T
#undef FNN_DT
#undef FNN_F32
#undef FNN_EXP
#undef FNN_SQRT
#undef FNN_ISA
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512")
#define FNN_ISA avx512
#define T float
#define FNN_DT f32
#define FNN_F32 1
#define FNN_EXP fnn_expf
#define FNN_SQRT sqrtf
#include FNN_KERNELS
#undef T
#undef FNN_DT
#undef FNN_F32
#undef FNN_EXP
#undef FNN_SQRT
#define T double
#define FNN_DT f64
#define FNN_F32 0
#define FNN_EXP fnn_exp
#define FNN_SQRT sqrt
#include FNN_KERNELS
#undef T
#undef FNN_DT
#undef FNN_F32
#undef FNN_EXP
#undef FNN_SQRT
#undef FNN_ISA
#pragma GCC pop_options
#endif
