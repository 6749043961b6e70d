/*
** rt_kernels_impl.h: helpers shared by the rt_kernels_*.c files (not part
** of the runtime's interface).
**
** Loops and gcc -O2. gcc 12 at -O2 vectorises under its "very cheap" cost
** model, which leaves every loop of unknown trip count scalar (checked: a
** plain `for (i < n) y[i] = a[i] + b[i]` compiles to addss). Its SLP
** vectoriser does handle a fixed-width inner loop, so the hot loops are
** written with RT_VFOR: blocks of RT_VEC iterations with a constant inner
** trip count, then a scalar tail. Selects are written branch-free over
** unconditionally loaded values (`m > 0 ? g : 0.0f`), which become
** cmpps/andps; a select whose arm has arithmetic (slope * x) stays a branch,
** so leaky ReLU is written as a sum of two masked terms.
**
** Reductions are the exception: at -O2 gcc vectorises no all-double form
** of a long sum of f32 data well; see rt_sum below.
*/
#ifndef RT_KERNELS_IMPL_H
#define RT_KERNELS_IMPL_H

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* sgemm takes int sizes; every size here is per image or per layer, far
   below 2^31, but a wrong call from generated code must not wrap silently. */
static inline blasint rt_bi(int64_t v) {
    if (v < 0 || v > 0x7fffffff) abort();
    return (blasint)v;
}

/* for (int64_t i = 0; i < n; i++) { ... } as a vectorisable block loop.
   The body is the macro's trailing arguments (commas are fine). */
#define RT_VEC 8
#define RT_VFOR(i, n, ...)                                                                   \
    do {                                                                                     \
        int64_t i##_blk = 0;                                                                 \
        for (; i##_blk + RT_VEC <= (n); i##_blk += RT_VEC)                                   \
            for (int i##_j = 0; i##_j < RT_VEC; i##_j++) {                                   \
                const int64_t i = i##_blk + i##_j;                                           \
                __VA_ARGS__                                                                  \
            }                                                                                \
        for (int64_t i = i##_blk; i < (n); i++) {                                            \
            __VA_ARGS__                                                                      \
        }                                                                                    \
    } while (0)

/* The three long reductions (sum; shifted sum and sum of squares; dy and
   dy (x - mean) sums) over a contiguous row.

   With GNU C vector types (gcc, clang) they run in chunks of RT_CHUNK
   elements: f32 lane partial sums (4 elements per lane, then a pairwise
   fold to 4 lanes: each partial covers 16 elements) added into double
   accumulators once per chunk. Measured for the shifted sums on a 1 MiB
   row (Zen 4, gcc 12 -O2, SSE2 baseline): 24 GB/s, against 8-13 GB/s for
   every all-double form
   (named double accumulators, double lane arrays, double vector types: the
   widening converts and, for arrays, store-to-load forwarding bound them).
   The f32 partials add a relative error of a few f32 ulps of a 16-element
   partial, below the f32 rounding of the results; every sum longer than
   16 elements is in double. Other compilers get the plain double loops. */
#define RT_CHUNK 64
#if defined(__GNUC__)
typedef float rt_v4f __attribute__((vector_size(16)));

static inline rt_v4f rt_ld4(const float *p) {
    rt_v4f v;
    memcpy(&v, p, sizeof v);   /* unaligned load */
    return v;
}

/* The four lane partials folded to one double. */
static inline double rt_fold(rt_v4f a0, rt_v4f a1, rt_v4f a2, rt_v4f a3) {
    rt_v4f s = (a0 + a1) + (a2 + a3);
    return ((double)s[0] + (double)s[1]) + ((double)s[2] + (double)s[3]);
}
#define RT_HAVE_VEC 1
#endif

/* sum of x[0..n) */
static inline double rt_sum(const float *restrict x, int64_t n) {
    double s = 0;
    int64_t i = 0;
#ifdef RT_HAVE_VEC
    for (; i + RT_CHUNK <= n; i += RT_CHUNK) {
        rt_v4f a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;
        for (int u = 0; u < RT_CHUNK; u += 16) {
            a0 += rt_ld4(x + i + u);
            a1 += rt_ld4(x + i + u + 4);
            a2 += rt_ld4(x + i + u + 8);
            a3 += rt_ld4(x + i + u + 12);
        }
        s += rt_fold(a0, a1, a2, a3);
    }
#endif
    for (; i < n; i++) s += (double)x[i];
    return s;
}

/* *s1 += sum (x - k), *s2 += sum (x - k)^2 over x[0..n): the shifted sums
   of bn_stats (with k near the mean, E[d^2] - E[d]^2 does not cancel).
   k must be an f32 value. */
static inline void rt_shifted_sums(const float *restrict x, int64_t n, float k, double *s1, double *s2) {
    double t1 = 0, t2 = 0;
    int64_t i = 0;
#ifdef RT_HAVE_VEC
    rt_v4f kk = {k, k, k, k};
    for (; i + RT_CHUNK <= n; i += RT_CHUNK) {
        rt_v4f a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int u = 0; u < RT_CHUNK; u += 16) {
            rt_v4f d0 = rt_ld4(x + i + u) - kk, d1 = rt_ld4(x + i + u + 4) - kk;
            rt_v4f d2 = rt_ld4(x + i + u + 8) - kk, d3 = rt_ld4(x + i + u + 12) - kk;
            a0 += d0; a1 += d1; a2 += d2; a3 += d3;
            b0 += d0 * d0; b1 += d1 * d1; b2 += d2 * d2; b3 += d3 * d3;
        }
        t1 += rt_fold(a0, a1, a2, a3);
        t2 += rt_fold(b0, b1, b2, b3);
    }
#endif
    for (; i < n; i++) {
        double d = (double)x[i] - (double)k;
        t1 += d;
        t2 += d * d;
    }
    *s1 += t1;
    *s2 += t2;
}

/* Chan et al.'s pairwise merge of (count nb, mean mb, sum of squared
   deviations m2b) into a running (na, *mean, *m2). */
static inline void rt_stats_merge(double *mean, double *m2, double na, double mb, double m2b, double nb) {
    double n = na + nb, d = mb - *mean;
    *mean += d * (nb / n);
    *m2 += m2b + d * d * (na * nb / n);
}

/* The mean and sum of squared deviations of one plane p[0..Q), from shifted
   sums (d = p - p[0]: no cancellation of E[p^2] - E[p]^2). */
static inline void rt_plane_stats(const float *restrict p, int64_t Q, double *mean, double *m2) {
    double s1 = 0, s2 = 0;
    rt_shifted_sums(p, Q, p[0], &s1, &s2);
    double q = s2 - s1 * s1 / (double)Q;
    *mean = (double)p[0] + s1 / (double)Q;
    *m2 = q > 0 ? q : 0;
}

/* *sdy += sum dy, *sdyx += sum dy (x - mean) over [0..n); mean an f32 value */
static inline void rt_dy_sums(const float *restrict dy, const float *restrict x, int64_t n, float mean,
                              double *sdy, double *sdyx) {
    double t1 = 0, t2 = 0;
    int64_t i = 0;
#ifdef RT_HAVE_VEC
    rt_v4f mm = {mean, mean, mean, mean};
    for (; i + RT_CHUNK <= n; i += RT_CHUNK) {
        rt_v4f a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int u = 0; u < RT_CHUNK; u += 16) {
            rt_v4f g0 = rt_ld4(dy + i + u), g1 = rt_ld4(dy + i + u + 4);
            rt_v4f g2 = rt_ld4(dy + i + u + 8), g3 = rt_ld4(dy + i + u + 12);
            a0 += g0; a1 += g1; a2 += g2; a3 += g3;
            b0 += g0 * (rt_ld4(x + i + u) - mm);
            b1 += g1 * (rt_ld4(x + i + u + 4) - mm);
            b2 += g2 * (rt_ld4(x + i + u + 8) - mm);
            b3 += g3 * (rt_ld4(x + i + u + 12) - mm);
        }
        t1 += rt_fold(a0, a1, a2, a3);
        t2 += rt_fold(b0, b1, b2, b3);
    }
#endif
    for (; i < n; i++) {
        double g = (double)dy[i];
        t1 += g;
        t2 += g * ((double)x[i] - (double)mean);
    }
    *sdy += t1;
    *sdyx += t2;
}

/* Channel block of the [N, C] (S == 1) reductions: their channels are
   contiguous in a row, so they run over rows with a block of per-channel
   double accumulators on the stack (no allocation in kernels). */
#define RT_CBLK 64

#endif
