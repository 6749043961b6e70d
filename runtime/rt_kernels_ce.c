/*
** rt_kernels_ce.c: softmax cross-entropy for supervised training and
** DeepCluster's class-weighted one, the f32 counterparts of the reference
** kernels softmax_ce(_back) and weighted_ce(_back) (compiler/ir/ops_rel.c). Rows are shifted by their maximum before exp,
** and sums run in double.
*/
#include <math.h>

#include "rt_kernels.h"

static double row_lse(const float *z, int64_t C) {
    float m = z[0];
    for (int64_t c = 1; c < C; c++) m = z[c] > m ? z[c] : m;
    double s = 0;
    for (int64_t c = 0; c < C; c++) s += exp((double)z[c] - (double)m);
    return (double)m + log(s);
}

/* a label outside [0, C) (a corrupt input) is clamped rather than read
   out of bounds */
static inline int64_t label_of(float y, int64_t C) {
    int64_t k = (int64_t)y;
    return k < 0 ? 0 : k >= C ? C - 1 : k;
}

void rt_k_softmax_ce(float *restrict out, const float *restrict z, const float *restrict y, int64_t N, int64_t C) {
    double s = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t k = label_of(y[i], C);
        s += row_lse(z + i * C, C) - (double)z[i * C + k];
    }
    out[0] = (float)(s / (double)N);
}

void rt_k_softmax_ce_back(float *restrict dz, const float *restrict dl, const float *restrict z,
                          const float *restrict y, int64_t N, int64_t C) {
    double scale = (double)dl[0] / (double)N;
    for (int64_t i = 0; i < N; i++) {
        double lse = row_lse(z + i * C, C);
        int64_t k = label_of(y[i], C);
        for (int64_t c = 0; c < C; c++)
            dz[i * C + c] = (float)(scale * (exp((double)z[i * C + c] - lse) - (c == k ? 1.0 : 0.0)));
    }
}

/* ---- DeepCluster's weighted cross-entropy ---- */

void rt_k_weighted_ce(float *restrict out, const float *restrict z, const float *restrict y, const float *restrict w, int64_t N,
                      int64_t C) {
    double s = 0, ws = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t k = label_of(y[i], C);
        s += (double)w[k] * (row_lse(z + i * C, C) - (double)z[i * C + k]);
        ws += (double)w[k];
    }
    out[0] = (float)(s / ws);
}

void rt_k_weighted_ce_back(float *restrict dz, const float *restrict dl, const float *restrict z, const float *restrict y,
                           const float *restrict w, int64_t N, int64_t C) {
    double ws = 0;
    for (int64_t i = 0; i < N; i++) ws += (double)w[label_of(y[i], C)];
    for (int64_t i = 0; i < N; i++) {
        int64_t k = label_of(y[i], C);
        double lse = row_lse(z + i * C, C), scale = (double)dl[0] * (double)w[k] / ws;
        for (int64_t c = 0; c < C; c++)
            dz[i * C + c] = (float)(scale * (exp((double)z[i * C + c] - lse) - (c == k ? 1.0 : 0.0)));
    }
}
