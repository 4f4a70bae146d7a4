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
int fnn_get_max_threads(void);      /* the count set */
int fnn_get_num_threads(void);     /* that count, fewer while other processes take cores */
void fnn_set_adaptive(int on);      /* fewer threads under load (on by default) */
int fnn_get_adaptive(void);
void fnn_reset_load(void);          /* forget the load seen so far */
double fnn_others_load(void);       /* other processes' CPU use at the last look, in CPUs */

#if defined(__x86_64__) || defined(_M_X64)
#define FNN_X86 1
#else
#define FNN_X86 0
#endif

#endif
