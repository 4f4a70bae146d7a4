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

/* ---- data cache sizes, for the GEMM's block sizes (gemm_driver.h) ----
 * sysfs first (per instance: a 32 MiB L3 slice, not the socket's total, which sysconf reports on
 * some AMD parts), then sysconf, then typical x86 values. Read once; FASTNN_GEMM_L1/L2/L3 (bytes)
 * override each, to tune or to test the blocking of another machine. */
#include <stdio.h>
#include <unistd.h>

static int64_t sysfs_cache_size(int level)
{
    for (int index = 0; index < 8; index++) {
        char path[96], text[32];
        int64_t got_level = -1;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", index);
        FILE *f = fopen(path, "r");
        if (!f) break;
        if (fscanf(f, "%ld", &got_level) != 1) got_level = -1;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", index);
        f = fopen(path, "r");
        if (!f) continue;
        int is_instruction = fscanf(f, "%31s", text) == 1 && !strcmp(text, "Instruction");
        fclose(f);
        if (got_level != level || is_instruction) continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", index);
        f = fopen(path, "r");
        if (!f) continue;
        int64_t size = 0;
        char unit = 0;
        int got = fscanf(f, "%ld%c", &size, &unit);
        fclose(f);
        if (got < 1 || size <= 0) continue;
        if (unit == 'K') size <<= 10;
        else if (unit == 'M') size <<= 20;
        return size;
    }
    return 0;
}

static int64_t cache_size(int level, const char *env_name, int64_t fallback)
{
    const char *env = getenv(env_name);
    if (env && atol(env) > 0) return atol(env);
    int64_t size = sysfs_cache_size(level);
#ifdef _SC_LEVEL1_DCACHE_SIZE
    if (size <= 0) {
        const int name = level == 1 ? _SC_LEVEL1_DCACHE_SIZE
                         : level == 2 ? _SC_LEVEL2_CACHE_SIZE : _SC_LEVEL3_CACHE_SIZE;
        size = sysconf(name);
    }
#endif
    return size > 0 ? size : fallback;
}

static int64_t cached_cache[3] = {0, 0, 0};

void fnn_cache_sizes(int64_t *l1d, int64_t *l2, int64_t *l3)
{
    if (!cached_cache[0]) {   /* racing threads compute the same values: a benign repeat */
        cached_cache[2] = cache_size(3, "FASTNN_GEMM_L3", 8 << 20);
        cached_cache[1] = cache_size(2, "FASTNN_GEMM_L2", 512 << 10);
        __atomic_store_n(&cached_cache[0], cache_size(1, "FASTNN_GEMM_L1", 32 << 10),
                         __ATOMIC_RELEASE);
    }
    *l1d = __atomic_load_n(&cached_cache[0], __ATOMIC_ACQUIRE);
    *l2 = cached_cache[1];
    *l3 = cached_cache[2];
}
