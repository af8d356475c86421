/* BBPM's CPU write: scatter-add of value rows and counts into their slots.
 *
 * Compiled on first use by bbpm/memory/kernels/native.py (plain C99 + pthreads, no torch
 * headers, so it builds in about a second) and called through ctypes, which releases the
 * GIL for the call.
 *
 *   for i in 0..B*M-1 (item b = i / M, slot column j = i % M):
 *       memory[idx[i], :] += values[b, :];   counts[idx[i]] += 1
 *
 * Why not index_add_: torch's CPU index_add_/scatter_add_ sort the indices and reduce
 * segments (bench03 measures them). (No read kernel: the same loop for the read, tried,
 * was not faster than torch's embedding_bag, which already fuses gather and weighting.) Here every slot row is a random 4-cache-line
 * read-modify-write in a table far larger than the caches, so the loop is bound by memory
 * latency; we hide it with software prefetches `PREFETCH` rows ahead.
 *
 * Threads: slot range [0, D) is cut into T contiguous ranges and thread t applies, in the
 * order of i, only the entries whose slot falls in its range. No two threads touch the
 * same row (no atomics, no races), and every slot receives its additions in the order of
 * i whatever T is: the result is bitwise identical for every thread count.
 *
 * bbpm_first_bad_index() is run before any write so that an out-of-range slot id raises
 * in Python with the table untouched.
 */
#include <pthread.h>
#include <stdint.h>

#define PREFETCH 16
#define MAX_THREADS 64

int64_t bbpm_first_bad_index(const int64_t *idx, int64_t n, int64_t D) {
    for (int64_t i = 0; i < n; ++i) {
        if (idx[i] < 0 || idx[i] >= D) return i;
    }
    return -1;
}

static int clamp_threads(int threads) {
    return threads < 1 ? 1 : (threads > MAX_THREADS ? MAX_THREADS : threads);
}

/* work(args + t * arg_size) for t < threads. With OpenMP (the default build) the threads
 * are the OpenMP runtime's, which is torch's own pool when torch's libgomp is already loaded
 * (no thread start-up, no competition with torch's spinning workers); without it, pthreads.
 * Returns the number of threads that ran. */
#ifdef _OPENMP
#include <omp.h>
static int run_threads(void *(*work)(void *), void *args, size_t arg_size, int threads) {
    char *base = (char *)args;
    int ran = 1;
#pragma omp parallel num_threads(threads)
    {
        const int team = omp_get_num_threads();
        if (omp_get_thread_num() == 0) ran = team;
        /* a smaller team than asked for: each thread takes every team-th share */
        for (int t = omp_get_thread_num(); t < threads; t += team) work(base + (size_t)t * arg_size);
    }
    return ran;
}
#else
static int run_threads(void *(*work)(void *), void *args, size_t arg_size, int threads) {
    pthread_t handles[MAX_THREADS];
    char *base = (char *)args;
    int started = 1;
    for (int t = 1; t < threads; ++t, ++started) {
        if (pthread_create(&handles[t], 0, work, base + (size_t)t * arg_size) != 0) break;
    }
    work(base);
    for (int t = started; t < threads; ++t) work(base + (size_t)t * arg_size);
    for (int t = 1; t < started; ++t) pthread_join(handles[t], 0);
    return started;
}
#endif

#define DEFINE_WRITE(NAME, VT, CT)                                                          \
    typedef struct {                                                                        \
        VT *memory;                                                                         \
        CT *counts;                                                                         \
        const VT *values;                                                                   \
        const int64_t *idx;                                                                 \
        int64_t n, M, d, lo, hi;                                                            \
    } NAME##_args;                                                                          \
                                                                                            \
    static void *NAME##_range(void *p) {                                                    \
        const NAME##_args *a = (const NAME##_args *)p;                                      \
        VT *restrict memory = a->memory;                                                    \
        CT *restrict counts = a->counts;                                                    \
        const int64_t *restrict idx = a->idx;                                               \
        const int64_t n = a->n, M = a->M, d = a->d, lo = a->lo, hi = a->hi;                 \
        const int64_t line = 64 / (int64_t)sizeof(VT);                                      \
        const VT *restrict src = a->values;                                                 \
        int64_t j = 0;                                                                      \
        for (int64_t i = 0; i < n; ++i) {                                                   \
            if (i + PREFETCH < n) {                                                         \
                const int64_t ahead = idx[i + PREFETCH];                                    \
                if (ahead >= lo && ahead < hi) {                                            \
                    const VT *row = memory + ahead * d;                                     \
                    for (int64_t o = 0; o < d; o += line) __builtin_prefetch(row + o, 1, 3); \
                    __builtin_prefetch(counts + ahead, 1, 3);                               \
                }                                                                           \
            }                                                                               \
            const int64_t slot = idx[i];                                                    \
            if (slot >= lo && slot < hi) {                                                  \
                VT *restrict dst = memory + slot * d;                                       \
                for (int64_t k = 0; k < d; ++k) dst[k] += src[k];                           \
                counts[slot] += (CT)1;                                                      \
            }                                                                               \
            if (++j == M) {                                                                 \
                j = 0;                                                                      \
                src += d;                                                                   \
            }                                                                               \
        }                                                                                   \
        return 0;                                                                           \
    }                                                                                       \
                                                                                            \
    int NAME(VT *memory, CT *counts, const VT *values, const int64_t *idx, int64_t B,       \
             int64_t M, int64_t d, int64_t D, int threads) {                                \
        NAME##_args args[MAX_THREADS];                                                      \
        threads = clamp_threads(threads);                                                   \
        for (int t = 0; t < threads; ++t) {                                                 \
            NAME##_args a = {memory, counts, values, idx, B * M, M, d, D * t / threads,     \
                             D * (t + 1) / threads};                                        \
            args[t] = a;                                                                    \
        }                                                                                   \
        return run_threads(NAME##_range, args, sizeof(NAME##_args), threads);               \
    }

DEFINE_WRITE(bbpm_write_f32_c32, float, float)
DEFINE_WRITE(bbpm_write_f32_c64, float, double)
DEFINE_WRITE(bbpm_write_f64_c32, double, float)
DEFINE_WRITE(bbpm_write_f64_c64, double, double)
