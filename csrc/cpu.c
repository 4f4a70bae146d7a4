/* Run-time CPU dispatch and thread control, shared by every fastnn extension module. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "fastnn.h"

int fnn_cpu_detect(void)
{
#if FNN_X86 && defined(__GNUC__)
    __builtin_cpu_init();
    /* GCC's checks include the OS's XSAVE support for the wider registers. */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return FNN_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return FNN_ISA_AVX2;
#endif
    return FNN_ISA_PORTABLE;
}

static int cached_isa = -1;

int fnn_cpu_isa(void)
{
    if (cached_isa < 0) {
        int isa = fnn_cpu_detect();
        const char *env = getenv("FASTNN_ISA");
        if (env) {
            int cap = isa;
            if (!strcmp(env, "portable")) cap = FNN_ISA_PORTABLE;
            else if (!strcmp(env, "avx2")) cap = FNN_ISA_AVX2;
            else if (!strcmp(env, "avx512")) cap = FNN_ISA_AVX512;
            if (cap < isa) isa = cap;   /* never pick a path the CPU lacks */
        }
        cached_isa = isa;
    }
    return cached_isa;
}

const char *fnn_isa_name(int isa)
{
    switch (isa) {
    case FNN_ISA_AVX512: return "avx512";
    case FNN_ISA_AVX2: return "avx2";
    default: return "portable";
    }
}

void fnn_set_num_threads(int n)
{
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#else
    (void)n;
#endif
}

int fnn_get_num_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
