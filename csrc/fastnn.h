/* Shared declarations for fastnn's C kernels.
 *
 * Inputs reach C already validated by fastnn/kernels.py: C-contiguous, one dtype, shapes that
 * agree, indices in range. Kernels trust them and stay simple.
 */
#ifndef FASTNN_H
#define FASTNN_H

#include <stddef.h>
#include <stdint.h>

/* Instruction-set paths, chosen once at run time (cpu.c). FASTNN_ISA=portable|avx2|avx512 in
 * the environment caps the choice, so every path can be tested on an AVX-512 machine. */
enum { FNN_ISA_PORTABLE = 0, FNN_ISA_AVX2 = 1, FNN_ISA_AVX512 = 2 };

int fnn_cpu_isa(void);              /* the path in use (detected, capped by FASTNN_ISA) */
int fnn_cpu_detect(void);           /* what the CPU and OS support */
const char *fnn_isa_name(int isa);
void fnn_set_num_threads(int n);    /* OpenMP threads for every kernel */
int fnn_get_num_threads(void);

#if defined(__x86_64__) || defined(_M_X64)
#define FNN_X86 1
#else
#define FNN_X86 0
#endif

#endif
