/*
** rt_kernels_norm.c: batch normalisation kernels; semantics of
** compiler/ir/ops_norm.c (PyTorch's BatchNorm1d/2d in training and eval
** mode, st = [mean[C], biased var[C]]).
**
** The per-channel sums run in double (over f32 partials of 16 elements,
** see rt_kernels_impl.h). bn_stats makes one pass with the data shifted by
** the channel's first value (sum d, sum d^2 with d = x - k), which reads x
** once and still gives the variance without the cancellation of
** E[x^2] - E[x]^2 when |mean| >> std. The per-element work is then an f32
** affine map per channel with coefficients computed in double.
**
** [N, C] inputs (S == 1: BatchNorm1d) have their channels contiguous, so
** their reductions walk rows with a block of RT_CBLK channel accumulators
** instead of striding down each channel.
*/
#include <math.h>

#include "rt_comm.h"
#include "rt_kernels.h"
#include "rt_kernels_impl.h"
#include "rt_pool.h"

static void stats_finish(float *restrict st, int64_t C, int64_t c, double k, double s1, double s2, double M) {
    double m1 = s1 / M;
    double var = s2 / M - m1 * m1;
    st[c] = (float)(k + m1);
    st[C + c] = (float)(var > 0 ? var : 0);
}

enum { RT_ROWBLK = 16, RT_SEG = 512 };

/* p1 += x - k, p2 += (x - k)^2 over one row's block of channels */
static void shifted_row(float *restrict p1, float *restrict p2, const float *restrict xr, const float *restrict k, int64_t n) {
    RT_VFOR(j, n, float d = xr[j] - k[j]; p1[j] += d; p2[j] += d * d;);
}

/* [N, C] (S == 1): part r of rt_bn_parts(N) sums its rows [N r/P, N (r+1)/P)
   of every channel into part[r] (args: part, x, then N, C as int64_t; rows
   are parts), so a thread streams contiguous rows (split by channels
   instead, two threads read alternate halves of every row:
   docs/DECISIONS.md); rt_k_sum_parts adds the parts in order. Sums of
   d = x - k with k the channel's value in row 0, f32 partials over
   RT_ROWBLK rows added in double (the runtime's rule for long sums,
   rt_kernels_impl.h). */
static void part_stats_rows(void **args, int64_t p0, int64_t p1) {
    const float *x = args[1];
    const int64_t *d = args[2];
    int64_t N = d[0], C = d[1], P = rt_bn_parts(N);
    for (int64_t p = p0; p < p1; p++) {
        int64_t r0 = N * p / P, r1 = N * (p + 1) / P;
        double *s1 = (double *)args[0] + p * 2 * C, *s2 = s1 + C;
        for (int64_t c0 = 0; c0 < C; c0 += RT_SEG) {
            int64_t cb = C - c0 < RT_SEG ? C - c0 : RT_SEG;
            float k[RT_SEG];
            for (int64_t i = 0; i < cb; i++) k[i] = x[c0 + i], s1[c0 + i] = 0, s2[c0 + i] = 0;
            for (int64_t rb = r0; rb < r1; rb += RT_ROWBLK) {
                float q1[RT_SEG] = {0}, q2[RT_SEG] = {0};
                for (int64_t r = rb; r < r1 && r < rb + RT_ROWBLK; r++) shifted_row(q1, q2, x + r * C + c0, k, cb);
                for (int64_t i = 0; i < cb; i++) s1[c0 + i] += (double)q1[i], s2[c0 + i] += (double)q2[i];
            }
        }
    }
}

/* [N, C, S] with S > 1: rows are channels (args: st, x, then N, C, S as
   int64_t); each channel's sums run over its planes in order. */
static void stats_rows(void **args, int64_t r0, int64_t r1) {
    float *restrict st = args[0];
    const float *restrict x = args[1];
    const int64_t *d = args[2];
    int64_t N = d[0], C = d[1], S = d[2];
    double M = (double)(N * S);
    for (int64_t c = r0; c < r1; c++) {
        float k = x[c * S];
        double s1 = 0, s2 = 0;
        for (int64_t b = 0; b < N; b++) rt_shifted_sums(x + (b * C + c) * S, S, k, &s1, &s2);
        stats_finish(st, C, c, k, s1, s2, M);
    }
}

void rt_k_bn_stats(float *restrict st, const float *restrict x, int64_t N, int64_t C, int64_t S) {
    if (S == 1) {
        if (N == 0 || C == 0) {   /* no values: the mean and variance of nothing, as the reference */
            for (int64_t c = 0; c < C; c++) stats_finish(st, C, c, 0, 0, 0, 0);
            return;
        }
        int64_t P = rt_bn_parts(N), d[2] = {N, C}, per_part = N / P * C;
        double *part = (double *)rt_pool_scratch(0, (size_t)(4 * C * P));
        /* the parts on the pool's threads, at least 64K values a thread */
        rt_par_rows(part_stats_rows, (void *[]){part, (void *)x, d}, P, per_part >= 65536 ? 1 : (65536 + per_part - 1) / per_part);
        rt_k_sum_parts(part, P, 2 * C);
        for (int64_t c = 0; c < C; c++) stats_finish(st, C, c, (double)x[c], part[c], part[C + c], (double)N);
        return;
    }
    int64_t d[3] = {N, C, S}, per_channel = N * S;
    /* parts of at least 64K values */
    int64_t min_rows = per_channel >= 65536 ? 1 : 65536 / (per_channel > 0 ? per_channel : 1);
    rt_par_rows(stats_rows, (void *[]){st, (void *)x, d}, C, min_rows);
}

void rt_k_sum_parts(double *v, int64_t parts, int64_t n) {
    for (int64_t p = 1; p < parts; p++)
        for (int64_t i = 0; i < n; i++) v[i] += v[p * n + i];
}

/* y = a (x - m) + b on a row of n values. */
static void affine_row(float *restrict y, const float *restrict x, int64_t n, float m, float a, float b) {
    RT_VFOR(i, n, y[i] = a * (x[i] - m) + b;);
}

/* The normalisation shared by training and eval mode. */
static void bn_apply(float *restrict y, const float *restrict x, const float *restrict mean,
                     const float *restrict var, const float *restrict gamma, const float *restrict beta, int64_t N,
                     int64_t C, int64_t S, float eps) {
    if (S == 1) {
        for (int64_t c0 = 0; c0 < C; c0 += RT_CBLK) {
            int64_t cb = C - c0 < RT_CBLK ? C - c0 : RT_CBLK;
            float a[RT_CBLK], m[RT_CBLK], b[RT_CBLK];
            for (int64_t j = 0; j < cb; j++) {
                a[j] = (float)((double)gamma[c0 + j] / sqrt((double)var[c0 + j] + (double)eps));
                m[j] = mean[c0 + j];
                b[j] = beta[c0 + j];
            }
            for (int64_t r = 0; r < N; r++) {
                float *restrict yr = y + r * C + c0;
                const float *restrict xr = x + r * C + c0;
                RT_VFOR(j, cb, yr[j] = a[j] * (xr[j] - m[j]) + b[j];);
            }
        }
        return;
    }
    for (int64_t c = 0; c < C; c++) {
        float a = (float)((double)gamma[c] / sqrt((double)var[c] + (double)eps));
        for (int64_t b = 0; b < N; b++)
            affine_row(y + (b * C + c) * S, x + (b * C + c) * S, S, mean[c], a, beta[c]);
    }
}

void rt_k_bn_train(float *restrict y, const float *restrict x, const float *restrict st,
                   const float *restrict gamma, const float *restrict beta, int64_t N, int64_t C, int64_t S,
                   float eps) {
    bn_apply(y, x, st, st + C, gamma, beta, N, C, S, eps);
}

void rt_k_bn_eval(float *restrict y, const float *restrict x, const float *restrict mean,
                  const float *restrict var, const float *restrict gamma, const float *restrict beta, int64_t N,
                  int64_t C, int64_t S, float eps) {
    bn_apply(y, x, mean, var, gamma, beta, N, C, S, eps);
}

/* The sums of bn_train_dx / bn_dgamma for channels [c0, c0+cb) of an
   [N, C] input: sdy = sum dy, sdyx = sum dy (x - mean) (not yet scaled
   by rstd). */
static void dy_sums_rows(double *restrict sdy, double *restrict sdyx, const float *restrict dy,
                         const float *restrict x, const float *restrict mean, int64_t N, int64_t C, int64_t c0,
                         int64_t cb) {
    double m[RT_CBLK];
    for (int64_t j = 0; j < cb; j++) {
        sdy[j] = sdyx[j] = 0;
        m[j] = (double)mean[c0 + j];
    }
    for (int64_t r = 0; r < N; r++) {
        const float *restrict g = dy + r * C + c0, *restrict xr = x + r * C + c0;
        RT_VFOR(j, cb, double gj = (double)g[j]; sdy[j] += gj; sdyx[j] += gj * ((double)xr[j] - m[j]););
    }
}

/* dx = gamma rstd / M (M dy - sum dy - xhat sum(dy xhat)), written as
   dx = a dy + b + cx (x - mean) with per-channel a, b, cx from the sums. */
typedef struct { float a, b, cx, m; } DxCoef;

static DxCoef dx_coef(double sdy, double sdyx, double mean, double var, double gamma, double eps, double M) {
    double rstd = 1.0 / sqrt(var + eps), k1 = gamma * rstd;
    return (DxCoef){(float)k1, (float)(-k1 * sdy / M), (float)(-k1 * rstd * rstd * sdyx / M), (float)mean};
}

/* The sums of bn_train_dx and bn_dsums for channels [c0, c1):
   sdy[c - c0] = sum dy, sdyx[c - c0] = sum dy (x - mean) (not yet scaled
   by rstd). */
static void dy_sums(double *restrict sdy, double *restrict sdyx, const float *restrict dy, const float *restrict x,
                    const float *restrict mean, int64_t N, int64_t C, int64_t S, int64_t c0, int64_t c1) {
    if (S == 1) {
        for (int64_t c = c0; c < c1; c += RT_CBLK)
            dy_sums_rows(sdy + (c - c0), sdyx + (c - c0), dy, x, mean, N, C, c, c1 - c < RT_CBLK ? c1 - c : RT_CBLK);
        return;
    }
    for (int64_t c = c0; c < c1; c++) {
        sdy[c - c0] = sdyx[c - c0] = 0;
        for (int64_t b = 0; b < N; b++)
            rt_dy_sums(dy + (b * C + c) * S, x + (b * C + c) * S, S, mean[c], &sdy[c - c0], &sdyx[c - c0]);
    }
}

/* dx = a dy + b + cx (x - mean) for channels [c0, c1), from their sums
   (sdyx unscaled) over M values per channel */
static void dx_apply(float *restrict dx, const float *restrict dy, const float *restrict x, const float *restrict st,
                     const float *restrict gamma, const double *sdy, const double *sdyx, int64_t N, int64_t C, int64_t S,
                     float eps, double M, int64_t c0, int64_t c1) {
    if (S == 1) {
        for (int64_t cs = c0; cs < c1; cs += RT_CBLK) {
            int64_t cb = c1 - cs < RT_CBLK ? c1 - cs : RT_CBLK;
            float a[RT_CBLK], b[RT_CBLK], cx[RT_CBLK], m[RT_CBLK];
            for (int64_t j = 0; j < cb; j++) {
                int64_t c = cs + j;
                DxCoef k = dx_coef(sdy[c - c0], sdyx[c - c0], st[c], st[C + c], gamma[c], eps, M);
                a[j] = k.a, b[j] = k.b, cx[j] = k.cx, m[j] = k.m;
            }
            for (int64_t r = 0; r < N; r++) {
                float *restrict o = dx + r * C + cs;
                const float *restrict g = dy + r * C + cs, *restrict xr = x + r * C + cs;
                RT_VFOR(j, cb, o[j] = a[j] * g[j] + b[j] + cx[j] * (xr[j] - m[j]););
            }
        }
        return;
    }
    for (int64_t c = c0; c < c1; c++) {
        DxCoef k = dx_coef(sdy[c - c0], sdyx[c - c0], st[c], st[C + c], gamma[c], eps, M);
        for (int64_t b = 0; b < N; b++) {
            float *restrict o = dx + (b * C + c) * S;
            const float *restrict g = dy + (b * C + c) * S, *restrict xr = x + (b * C + c) * S;
            float ka = k.a, kb = k.b, kcx = k.cx, km = k.m;
            RT_VFOR(i, S, o[i] = ka * g[i] + kb + kcx * (xr[i] - km););
        }
    }
}

/* Channels per block of sums on the stack (the step allocates nothing). */
#define SUMS_BLK 256

void rt_k_bn_train_dx(float *restrict dx, const float *restrict dy, const float *restrict x,
                      const float *restrict st, const float *restrict gamma, int64_t N, int64_t C, int64_t S,
                      float eps) {
    double sdy[SUMS_BLK], sdyx[SUMS_BLK];
    for (int64_t c0 = 0; c0 < C; c0 += SUMS_BLK) {
        int64_t c1 = C - c0 < SUMS_BLK ? C : c0 + SUMS_BLK;
        dy_sums(sdy, sdyx, dy, x, st, N, C, S, c0, c1);
        dx_apply(dx, dy, x, st, gamma, sdy, sdyx, N, C, S, eps, (double)(N * S), c0, c1);
    }
}

void rt_k_bn_train_dx_all(float *restrict dx, const float *restrict dy, const float *restrict x, const float *restrict st,
                          const float *restrict gamma, int64_t N, int64_t C, int64_t S, int64_t total, float eps) {
    /* all channels' sums at once: one collective a layer */
    double stack[2 * SUMS_BLK], *sums = C <= SUMS_BLK ? stack : malloc((size_t)(2 * C) * sizeof *sums);
    if (!sums) rt_k_dist_oom((size_t)(2 * C) * sizeof *sums);
    for (int64_t c0 = 0; c0 < C; c0 += SUMS_BLK) {
        int64_t c1 = C - c0 < SUMS_BLK ? C : c0 + SUMS_BLK;
        dy_sums(sums + c0, sums + C + c0, dy, x, st, N, C, S, c0, c1);
    }
    rt_comm_sum_f64(sums, 2 * C);
    for (int64_t c0 = 0; c0 < C; c0 += SUMS_BLK) {
        int64_t c1 = C - c0 < SUMS_BLK ? C : c0 + SUMS_BLK;
        dx_apply(dx, dy, x, st, gamma, sums + c0, sums + C + c0, N, C, S, eps, (double)total, c0, c1);
    }
    if (sums != stack) free(sums);
}

/* This rank's (mean, M2) of channel c in double, as the fused convolution's
   statistics make them: per image (shifted by its first value), merged in
   image order (Chan et al.). */
static void rank_stats(const float *restrict x, int64_t N, int64_t C, int64_t S, int64_t c, double *mean, double *m2) {
    *mean = *m2 = 0;
    for (int64_t b = 0; b < N; b++) {
        double mi, qi;
        rt_plane_stats(x + (b * C + c) * S, S, &mi, &qi);
        rt_stats_merge(mean, m2, (double)(b * S), mi, qi, (double)S);
    }
}

void rt_k_bn_stats_all(float *restrict st, const float *restrict x, int64_t N, int64_t C, int64_t S, int64_t total) {
    double *loc = malloc((size_t)(4 * C + 1) * sizeof *loc), *out = loc + 2 * C + 1;
    if (!loc) rt_k_dist_oom((size_t)(4 * C + 1) * sizeof *loc);
    double n = (double)(N * S);
    loc[0] = n;
    for (int64_t c = 0; c < C; c++) {
        double m2;
        rank_stats(x, N, C, S, c, &loc[1 + c], &m2);
        loc[1 + C + c] = m2 / n;
    }
    rt_stats_allreduce(loc, C, total, out);
    for (int64_t c = 0; c < C; c++) {
        st[c] = (float)out[c];
        st[C + c] = (float)out[C + c];
    }
    free(loc);
}

void rt_k_bn_dgamma(float *restrict dg, const float *restrict dy, const float *restrict x,
                    const float *restrict st, int64_t N, int64_t C, int64_t S, float eps) {
    if (S == 1) {
        for (int64_t c0 = 0; c0 < C; c0 += RT_CBLK) {
            int64_t cb = C - c0 < RT_CBLK ? C - c0 : RT_CBLK;
            double sdy[RT_CBLK], sdyx[RT_CBLK];
            dy_sums_rows(sdy, sdyx, dy, x, st, N, C, c0, cb);
            for (int64_t j = 0; j < cb; j++)
                dg[c0 + j] = (float)(sdyx[j] / sqrt((double)st[C + c0 + j] + (double)eps));
        }
        return;
    }
    for (int64_t c = 0; c < C; c++) {
        double sdy = 0, sdyx = 0;
        for (int64_t b = 0; b < N; b++)
            rt_dy_sums(dy + (b * C + c) * S, x + (b * C + c) * S, S, st[c], &sdy, &sdyx);
        dg[c] = (float)(sdyx / sqrt((double)st[C + c] + (double)eps));
    }
}

void rt_k_bn_dx_sums(float *restrict dg, float *restrict db, const double *restrict ws, const float *restrict st,
                     int64_t N, int64_t C, float eps) {
    for (int64_t c = 0; c < C; c++) {
        double sdy = 0, sdyx = 0;
        for (int64_t b = 0; b < N; b++) {
            sdy += ws[(2 * b) * C + c];
            sdyx += ws[(2 * b + 1) * C + c];
        }
        db[c] = (float)sdy;
        dg[c] = (float)(sdyx / sqrt((double)st[C + c] + (double)eps));
    }
}

void rt_k_bn_running(float *out, const float *old, const float *restrict st, int64_t C, int64_t which,
                     int64_t n, float momentum) {
    double m = (double)momentum, cnt = (double)n;
    for (int64_t c = 0; c < C; c++) {
        double stat = which == 0 ? (double)st[c] : (double)st[C + c] * cnt / (cnt - 1);
        out[c] = (float)((1 - m) * (double)old[c] + m * stat);
    }
}
