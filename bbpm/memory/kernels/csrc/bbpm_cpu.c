/* BBPM's CPU kernels, called through ctypes from bbpm/memory/kernels/native.py (which
 * compiles this file on first use: plain C99, OpenMP or pthreads, no torch headers, about
 * a second to build). ctypes releases the GIL for each call. Four kernels:
 *
 * 1. The write: scatter-add of value rows and counts into their slots,
 *      for i in 0..B*M-1 (item b = i / M):  memory[idx[i], :] += values[b, :];  counts[idx[i]] += step
 *    (step = 1, or the write weight of a decayed memory)
 *    torch's CPU index_add_/scatter_add_ sort the indices and reduce segments (bench03 times
 *    them); here every slot row is a random 4-cache-line read-modify-write in a table far
 *    larger than the caches, so the loop is bound by memory latency, hidden with software
 *    prefetches PREFETCH entries ahead. Threads: the slot range [0, D) is cut into T
 *    contiguous ranges and thread t applies, in the order of i, only the entries whose slot
 *    falls in its range. No two threads touch the same row (no atomics, no races), and every
 *    slot receives its additions in the order of i whatever T is: the result is bitwise
 *    identical for every thread count.
 * 2. The read weights 1 / ((counts[idx] + eps) * M) for torch's embedding_bag read, which
 *    fuses the gather and the weighting itself (there is no read kernel here).
 * 3. The read-rule weights of the "mean" and "inverse_noise" reads (same use).
 * 4. The fly-hash encoder of the exp08 baseline (bottom of the file).
 *
 * bbpm_first_bad_index() runs before any of them so that an out-of-range slot id raises in
 * Python with the table untouched.
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
        CT step;                                                                            \
    } NAME##_args;                                                                          \
                                                                                            \
    static void *NAME##_range(void *p) {                                                    \
        const NAME##_args *a = (const NAME##_args *)p;                                      \
        VT *restrict memory = a->memory;                                                    \
        CT *restrict counts = a->counts;                                                    \
        const int64_t *restrict idx = a->idx;                                               \
        const int64_t n = a->n, M = a->M, d = a->d, lo = a->lo, hi = a->hi;                 \
        const CT step = a->step;                                                            \
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
                counts[slot] += step;                                                       \
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
             int64_t M, int64_t d, int64_t D, int threads, double step) {                   \
        NAME##_args args[MAX_THREADS];                                                      \
        threads = clamp_threads(threads);                                                   \
        for (int t = 0; t < threads; ++t) {                                                 \
            NAME##_args a = {memory, counts, values, idx, B * M, M, d, D * t / threads,     \
                             D * (t + 1) / threads, (CT)step};                              \
            args[t] = a;                                                                    \
        }                                                                                   \
        return run_threads(NAME##_range, args, sizeof(NAME##_args), threads);               \
    }

DEFINE_WRITE(bbpm_write_f32_c32, float, float)
DEFINE_WRITE(bbpm_write_f32_c64, float, double)
DEFINE_WRITE(bbpm_write_f64_c32, double, float)
DEFINE_WRITE(bbpm_write_f64_c64, double, double)

/* Read weights for torch's embedding_bag read: w[i] = 1 / ((counts[idx[i]] + eps) * M),
 * the count debias and the mean in one prefetching pass (torch's index_select + add + mul
 * + reciprocal make four passes); the same float operations in the same order, so the
 * same bits. Slot ids must be in range (checked with bbpm_first_bad_index first). */
#define DEFINE_WEIGHTS(NAME, T)                                                             \
    void NAME(const T *counts, const int64_t *idx, T *weights, int64_t n, int64_t M,        \
              double eps, int threads) {                                                    \
        const T e = (T)eps, slots = (T)M;                                                   \
        (void)threads;                                                                      \
        _Pragma("omp parallel for num_threads(clamp_threads(threads)) schedule(static)")    \
        for (int64_t i = 0; i < n; ++i) {                                                   \
            if (i + PREFETCH < n) __builtin_prefetch(counts + idx[i + PREFETCH], 0, 3);     \
            weights[i] = (T)1 / ((counts[idx[i]] + e) * slots);                             \
        }                                                                                   \
    }

DEFINE_WEIGHTS(bbpm_slot_weights_f32, float)
DEFINE_WEIGHTS(bbpm_slot_weights_f64, double)

/* Multiplicity of each slot id within one row of M ids: m[j] = entries equal to row[j].
 * Rows of up to MULT_TABLE / 2 ids use a small open-addressing table (O(M)); longer rows
 * compare every pair. */
#define MULT_TABLE 512
static void row_multiplicity(const int64_t *row, int64_t M, int32_t *m) {
    if (M > MULT_TABLE / 2) {
        for (int64_t j = 0; j < M; ++j) {
            int32_t hits = 0;
            for (int64_t k = 0; k < M; ++k) hits += (row[k] == row[j]);
            m[j] = hits;
        }
        return;
    }
    int bits = 1;
    while ((INT64_C(1) << bits) < 2 * M) ++bits;
    const uint64_t mask = (UINT64_C(1) << bits) - 1;
    int64_t keys[MULT_TABLE];
    int32_t count[MULT_TABLE];
    int32_t where[MULT_TABLE / 2];
    for (uint64_t t = 0; t <= mask; ++t) {
        keys[t] = -1; /* slot ids are >= 0 */
        count[t] = 0;
    }
    for (int64_t j = 0; j < M; ++j) {
        uint64_t h = ((uint64_t)row[j] * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - bits);
        while (keys[h] != -1 && keys[h] != row[j]) h = (h + 1) & mask;
        keys[h] = row[j];
        count[h] += 1;
        where[j] = (int32_t)h;
    }
    for (int64_t j = 0; j < M; ++j) m[j] = count[where[j]];
}

/* Read-rule weights (bbpm/memory/read_rules.py) for the "mean" (rule 1) and
 * "inverse_noise" (rule 2) reads, one item (row of M slot ids) at a time:
 *   m_j = entries of the row equal to idx_j (row_multiplicity),
 *   n_j = max(counts[idx_j] - m_j, 0) (writes of other items in the slot),
 *   mean:           w_j = 1 / sum_k m_k
 *   inverse_noise:  w_j = [n_j = 0] / sum_k m_k [n_k = 0]   when some slot is clean,
 *                   w_j = (1 / n_j) / sum_k (m_k / n_k)    otherwise.
 * Sums in double. Slot ids must be in range (checked with bbpm_first_bad_index first). */
#define DEFINE_RULE_WEIGHTS(NAME, T)                                                        \
    void NAME(const T *counts, const int64_t *idx, T *weights, int64_t B, int64_t M,        \
              int rule, int threads) {                                                      \
        (void)threads;                                                                      \
        _Pragma("omp parallel for num_threads(clamp_threads(threads)) schedule(static)")    \
        for (int64_t b = 0; b < B; ++b) {                                                   \
            const int64_t *row = idx + b * M;                                               \
            T *w = weights + b * M;                                                         \
            int32_t mult[M];                                                                \
            row_multiplicity(row, M, mult);                                                 \
            double clean_total = 0.0, noisy_total = 0.0, mult_total = 0.0;                  \
            for (int64_t j = 0; j < M; ++j) {                                               \
                if (b * M + j + PREFETCH < B * M)                                           \
                    __builtin_prefetch(counts + row[j + PREFETCH], 0, 3);                   \
                const double m = (double)mult[j];                                           \
                double others = (double)counts[row[j]] - m;                                 \
                if (others < 0.5) others = 0.0;                                             \
                mult_total += m;                                                            \
                if (others == 0.0) clean_total += m;                                        \
                else noisy_total += m / others;                                             \
                w[j] = (T)others;                                                           \
            }                                                                               \
            for (int64_t j = 0; j < M; ++j) {                                               \
                double others = (double)w[j];                                               \
                if (rule == 1) w[j] = (T)(1.0 / mult_total);                                \
                else if (clean_total > 0.0) w[j] = (T)(others == 0.0 ? 1.0 / clean_total : 0.0); \
                else w[j] = (T)(1.0 / (others * noisy_total));                              \
            }                                                                               \
        }                                                                                   \
    }

DEFINE_RULE_WEIGHTS(bbpm_rule_weights_f32, float)
DEFINE_RULE_WEIGHTS(bbpm_rule_weights_f64, double)

/* ------------------------------------------------------------------------------------
 * Fly-hash encoder for bbpm.baselines.flyhash: the k winners of m units, unit u summing
 * the fan_in key-pattern entries inputs[u, :] (the sparse random projection), per key.
 *
 *   activation[b, u] = ((x[b, in_0] + x[b, in_1]) + x[b, in_2]) + ...   (this order)
 *   out[b, :] = ids of the k largest activations (any order; a tie keeps the lower id)
 *
 * Keys go through in lanes of FLY_LANES: the lane block of x is transposed so that one
 * unit's activations for all lanes are fan_in contiguous vector adds, and a lane's top-k
 * list is only touched when some lane beats its current k-th best (rare after the first
 * units). Nothing of size m is stored: O(m * fan_in) adds per key and O(k) memory, where a
 * matmul with the dense 0/1 projection does O(m * key_dim) and writes m activations.
 * ------------------------------------------------------------------------------------ */
#include <math.h>
#include <stdlib.h>

#define FLY_LANES 16
/* GCC/Clang vector extensions: one value per lane, lowered to the target's SIMD width
 * (aligned(4): loads from any float address) */
typedef float fly_lanes __attribute__((vector_size(FLY_LANES * sizeof(float)), aligned(4)));

typedef struct {
    const float *x;
    const int32_t *inputs;
    int64_t *out;
    int64_t B, key_dim, m, fan_in, k;
    int failed;
} fly_args;

/* fan_in is an argument so that the calls below with a literal fan_in get the unit loop
 * unrolled (about 3x faster than a run-time fan_in) */
static inline __attribute__((always_inline)) void fly_block_fan(const fly_args *a,
                                                                int64_t first, float *xt,
                                                                float *top_value,
                                                                int64_t *top_id,
                                                                const int64_t fan_in) {
    const int64_t lanes = a->B - first < FLY_LANES ? a->B - first : FLY_LANES;
    const int64_t key_dim = a->key_dim, k = a->k, m = a->m;
    const int32_t *inputs = a->inputs;
    fly_lanes threshold;
    int64_t filled[FLY_LANES], weakest[FLY_LANES];
    for (int64_t i = 0; i < key_dim; ++i) {
        for (int64_t l = 0; l < FLY_LANES; ++l) {
            xt[i * FLY_LANES + l] = l < lanes ? a->x[(first + l) * key_dim + i] : 0.0f;
        }
    }
    for (int64_t l = 0; l < FLY_LANES; ++l) {
        /* unused lanes never pass: +inf threshold */
        threshold[l] = l < lanes ? -INFINITY : INFINITY;
        filled[l] = 0;
        weakest[l] = 0;
    }
    for (int64_t u = 0; u < m; ++u) {
        const int32_t *in = inputs + u * fan_in;
        fly_lanes act = *(const fly_lanes *)(xt + (int64_t)in[0] * FLY_LANES);
        for (int64_t f = 1; f < fan_in; ++f) act += *(const fly_lanes *)(xt + (int64_t)in[f] * FLY_LANES);
        /* cheap filter: does any lane reach its threshold? (>= 0 keeps it a superset of
         * act > threshold even where tiny differences flush to zero) */
        const fly_lanes margin = act - threshold;
        float best = margin[0];
        for (int64_t l = 1; l < FLY_LANES; ++l) best = margin[l] > best ? margin[l] : best;
        if (!(best >= 0.0f)) continue;
        for (int64_t l = 0; l < lanes; ++l) {
            if (!(act[l] > threshold[l])) continue;
            float *value = top_value + l * k;
            int64_t *id = top_id + l * k;
            if (filled[l] < k) {
                value[filled[l]] = act[l];
                id[filled[l]] = u;
                if (++filled[l] < k) continue;
            } else {
                value[weakest[l]] = act[l];
                id[weakest[l]] = u;
            }
            /* full: the threshold is the weakest kept activation (lowest value; among
             * equal values the highest id, so that a tie keeps the lower ids) */
            int64_t w = 0;
            for (int64_t j = 1; j < k; ++j) {
                if (value[j] < value[w] || (value[j] == value[w] && id[j] > id[w])) w = j;
            }
            weakest[l] = w;
            threshold[l] = value[w];
        }
    }
    for (int64_t l = 0; l < lanes; ++l) {
        for (int64_t j = 0; j < k; ++j) a->out[(first + l) * k + j] = top_id[l * k + j];
    }
}

static void fly_block(const fly_args *a, int64_t first, float *xt, float *top_value,
                      int64_t *top_id) {
    switch (a->fan_in) {
        case 4: fly_block_fan(a, first, xt, top_value, top_id, 4); break;
        case 6: fly_block_fan(a, first, xt, top_value, top_id, 6); break;
        case 8: fly_block_fan(a, first, xt, top_value, top_id, 8); break;
        default: fly_block_fan(a, first, xt, top_value, top_id, a->fan_in);
    }
}

static void *fly_work(void *p) {
    fly_args *a = (fly_args *)p;
    const int64_t blocks = (a->B + FLY_LANES - 1) / FLY_LANES;
    float *xt = (float *)malloc(sizeof(float) * (size_t)(a->key_dim * FLY_LANES));
    float *top_value = (float *)malloc(sizeof(float) * (size_t)(a->k * FLY_LANES));
    int64_t *top_id = (int64_t *)malloc(sizeof(int64_t) * (size_t)(a->k * FLY_LANES));
    const int ok = xt && top_value && top_id;
    if (!ok) a->failed = 1;
    /* every thread of the team must reach the worksharing loop, buffers or not */
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (int64_t block = 0; block < blocks; ++block) {
        if (ok) fly_block(a, block * FLY_LANES, xt, top_value, top_id);
    }
    free(xt);
    free(top_value);
    free(top_id);
    return 0;
}

/* Returns 0, or -1 if memory for the per-thread buffers could not be allocated. */
int bbpm_flyhash_topk(const float *x, const int32_t *inputs, int64_t *out, int64_t B,
                      int64_t key_dim, int64_t m, int64_t fan_in, int64_t k, int threads) {
    fly_args a = {x, inputs, out, B, key_dim, m, fan_in, k, 0};
#ifdef _OPENMP
#pragma omp parallel num_threads(clamp_threads(threads))
    {
        fly_args mine = a;
        fly_work(&mine);
        if (mine.failed) {
#pragma omp atomic write
            a.failed = 1;
        }
    }
#else
    (void)threads;
    fly_work(&a);
#endif
    return a.failed ? -1 : 0;
}
