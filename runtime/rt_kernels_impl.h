/*
** rt_kernels_impl.h: helpers shared by the rt_kernels_*.c files (not part
** of the runtime's interface).
**
** The reductions accumulate f32 data in double, as the brief of the kernels
** asks, but a single double accumulator is a serial dependency chain that
** gcc may not reorder (no -ffast-math). Eight independent accumulators,
** written as a fixed-width inner loop, let gcc -O2 vectorise the widening
** adds; the lanes are combined once at the end. The order of additions
** differs from a plain left-to-right sum only by that regrouping, which in
** double is far below f32 resolution.
*/
#ifndef RT_KERNELS_IMPL_H
#define RT_KERNELS_IMPL_H

#include <stdint.h>

#define RT_LANES 8

/* Combines the lanes pairwise. */
static inline double rt_lanes_total(const double *a) {
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* sum of x[0..n) */
static inline double rt_sum(const float *restrict x, int64_t n) {
    double a[RT_LANES] = {0};
    int64_t i = 0;
    for (; i + RT_LANES <= n; i += RT_LANES)
        for (int j = 0; j < RT_LANES; j++) a[j] += (double)x[i + j];
    double s = 0;
    for (; i < n; i++) s += (double)x[i];
    return rt_lanes_total(a) + s;
}

/* *s1 += sum (x - k), *s2 += sum (x - k)^2 over x[0..n): the shifted sums
   of bn_stats (with k near the mean, E[d^2] - E[d]^2 does not cancel). */
static inline void rt_shifted_sums(const float *restrict x, int64_t n, double k, double *s1, double *s2) {
    double a[RT_LANES] = {0}, b[RT_LANES] = {0};
    int64_t i = 0;
    for (; i + RT_LANES <= n; i += RT_LANES)
        for (int j = 0; j < RT_LANES; j++) {
            double d = (double)x[i + j] - k;
            a[j] += d;
            b[j] += d * d;
        }
    double ta = 0, tb = 0;
    for (; i < n; i++) {
        double d = (double)x[i] - k;
        ta += d;
        tb += d * d;
    }
    *s1 += rt_lanes_total(a) + ta;
    *s2 += rt_lanes_total(b) + tb;
}

/* *sdy += sum dy, *sdyx += sum dy (x - mean) over [0..n) */
static inline void rt_dy_sums(const float *restrict dy, const float *restrict x, int64_t n, double mean,
                              double *sdy, double *sdyx) {
    double a[RT_LANES] = {0}, b[RT_LANES] = {0};
    int64_t i = 0;
    for (; i + RT_LANES <= n; i += RT_LANES)
        for (int j = 0; j < RT_LANES; j++) {
            double g = (double)dy[i + j];
            a[j] += g;
            b[j] += g * ((double)x[i + j] - mean);
        }
    double ta = 0, tb = 0;
    for (; i < n; i++) {
        double g = (double)dy[i];
        ta += g;
        tb += g * ((double)x[i] - mean);
    }
    *sdy += rt_lanes_total(a) + ta;
    *sdyx += rt_lanes_total(b) + tb;
}

/* Channel block of the [N, C] (S == 1) reductions: their channels are
   contiguous in a row, so they run over rows with a block of per-channel
   double accumulators on the stack (no allocation in kernels). */
#define RT_CBLK 64

#endif
