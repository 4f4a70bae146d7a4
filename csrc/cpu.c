/* Run-time CPU dispatch and thread control, shared by every fastnn extension module. */
#define _GNU_SOURCE            /* sched_getaffinity, CPU_ISSET */
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

int fnn_get_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* ---- threads that adapt to the machine's load ----
 * fastnn's OpenMP threads spin briefly after each parallel region (GOMP_SPINCOUNT, set by
 * fastnn/threads.py): waking a sleeping thread costs 50-130 us on this kind of VM, and a training
 * step has ~100 regions. On a busy machine that spin steals time slices from the threads that
 * have work, and a team waits for its slowest member. So every ~100 ms of kernel calls the
 * calling thread reads how much CPU the other processes used on this process's CPUs since the
 * last look (/proc/stat minus our own getrusage), and kernels use only the cores left free:
 * with one busy process on 2 cores, 1 thread, which never forks or spins. Off with
 * FASTNN_ADAPT_THREADS=0 or fnn_set_adaptive(0). Linux only; elsewhere the count stays fixed. */
#if defined(__linux__)
#include <sched.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#define ADAPT_PERIOD_S 0.1      /* sample at most this often */
#define ADAPT_STALE_S 0.3       /* a longer gap: we were idle; start over, optimistic */

static int adapt_on = -1;           /* -1: not read from the environment yet */
static int adapt_cap = 1 << 30;     /* threads the load leaves us */
static int adapt_lock = 0;
static double adapt_t, adapt_busy, adapt_self;   /* the last sample: wall, others' + ours, ours */
static double adapt_others = 0;

static double adapt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* CPU seconds used (not idle) on the CPUs this process may run on, and how many they are */
static int adapt_busy_seconds(double *busy, int *ncpu)
{
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask)) return -1;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    char line[512];
    unsigned long long ticks = 0;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        int cpu;
        unsigned long long v[8] = {0};
        if (strncmp(line, "cpu", 3) || line[3] < '0' || line[3] > '9') {
            if (n) break;          /* the per-CPU lines come together, after the total */
            continue;
        }
        if (sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 9)
            continue;
        if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &mask)) continue;
        /* user nice system [idle iowait] irq softirq steal: steal is the hypervisor giving
         * our virtual CPU to someone else, competition just the same */
        ticks += v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
        n++;
    }
    fclose(f);
    if (!n) return -1;
    *busy = (double)ticks / (double)sysconf(_SC_CLK_TCK);
    *ncpu = n;
    return 0;
}

static double adapt_self_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return 0;
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

void fnn_set_adaptive(int on)
{
    __atomic_store_n(&adapt_on, on ? 1 : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&adapt_cap, 1 << 30, __ATOMIC_RELAXED);
    adapt_t = 0;
}

int fnn_get_adaptive(void)
{
    if (adapt_on < 0) {
        const char *env = getenv("FASTNN_ADAPT_THREADS");
        adapt_on = !(env && !strcmp(env, "0"));
    }
    return adapt_on;
}

/* Forget the load seen so far (e.g. a benchmark turn starting on an idle machine). */
void fnn_reset_load(void)
{
    adapt_t = 0;
    __atomic_store_n(&adapt_cap, 1 << 30, __ATOMIC_RELAXED);
}

/* Other processes' CPU use on our CPUs over the last window, in CPUs (for tests and the bench) */
double fnn_others_load(void) { return adapt_others; }

static int adapt_load_cap(void)
{
    if (!fnn_get_adaptive()) return 1 << 30;
    const double now = adapt_now();
    if (now - adapt_t < ADAPT_PERIOD_S || __atomic_test_and_set(&adapt_lock, __ATOMIC_ACQUIRE))
        return __atomic_load_n(&adapt_cap, __ATOMIC_RELAXED);
    double busy;
    int ncpu;
    if (adapt_busy_seconds(&busy, &ncpu)) {
        adapt_on = 0;              /* no /proc/stat: keep the count fixed */
    } else {
        const double self = adapt_self_seconds();
        const double dt = now - adapt_t;
        if (dt <= ADAPT_STALE_S) {
            double others = ((busy - adapt_busy) - (self - adapt_self)) / dt;
            if (others < 0) others = 0;
            adapt_others = others;
            int cap = (int)(ncpu - others + 0.5);   /* the cores left free, rounded */
            __atomic_store_n(&adapt_cap, cap < 1 ? 1 : cap, __ATOMIC_RELAXED);
        } else {
            __atomic_store_n(&adapt_cap, 1 << 30, __ATOMIC_RELAXED);
        }
        adapt_t = now;
        adapt_busy = busy;
        adapt_self = self;
    }
    __atomic_clear(&adapt_lock, __ATOMIC_RELEASE);
    return __atomic_load_n(&adapt_cap, __ATOMIC_RELAXED);
}
#else
void fnn_set_adaptive(int on) { (void)on; }
int fnn_get_adaptive(void) { return 0; }
void fnn_reset_load(void) {}
double fnn_others_load(void) { return 0; }
static int adapt_load_cap(void) { return 1 << 30; }
#endif

/* Threads a kernel may use now: the count set, fewer when other processes keep cores busy. */
int fnn_get_num_threads(void)
{
#ifdef _OPENMP
    const int n = omp_get_max_threads();
    if (n <= 1 || omp_in_parallel()) return n;
    const int cap = adapt_load_cap();
    return cap < n ? cap : n;
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
