/*
** rt_kernels_ce.c: softmax cross-entropy for supervised training, the f32
** counterpart of the reference kernels softmax_ce / softmax_ce_back
** (compiler/ir/ops_rel.c). Rows are shifted by their maximum before exp,
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

void rt_k_softmax_ce(float *restrict out, const float *restrict z, const float *restrict y, int64_t N, int64_t C) {
    double s = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t k = (int64_t)y[i];
        if (k < 0) k = 0;
        if (k >= C) k = C - 1;
        s += row_lse(z + i * C, C) - (double)z[i * C + k];
    }
    out[0] = (float)(s / (double)N);
}

void rt_k_softmax_ce_back(float *restrict dz, const float *restrict dl, const float *restrict z,
                          const float *restrict y, int64_t N, int64_t C) {
    double scale = (double)dl[0] / (double)N;
    for (int64_t i = 0; i < N; i++) {
        double lse = row_lse(z + i * C, C);
        int64_t k = (int64_t)y[i];
        for (int64_t c = 0; c < C; c++)
            dz[i * C + c] = (float)(scale * (exp((double)z[i * C + c] - lse) - (c == k ? 1.0 : 0.0)));
    }
}
