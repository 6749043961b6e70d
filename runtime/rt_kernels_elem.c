/*
** rt_kernels_elem.c: the elementwise and broadcast kernels (bias, channel
** sum, ReLU, leaky ReLU, add, copy, fill); semantics of
** compiler/ir/ops_elem.c. Plain loops over restrict pointers so that gcc -O2
** vectorises them; the channel sum accumulates in double.
*/
#include <string.h>

#include "rt_kernels.h"
#include "rt_kernels_impl.h"

void rt_k_bias_add(float *restrict y, const float *restrict x, const float *restrict b, int64_t N, int64_t C,
                   int64_t S) {
    if (S == 1) {
        /* [N, C]: the channels are the contiguous axis */
        for (int64_t r = 0; r < N; r++) {
            float *restrict yr = y + r * C;
            const float *restrict xr = x + r * C;
            for (int64_t c = 0; c < C; c++) yr[c] = xr[c] + b[c];
        }
        return;
    }
    for (int64_t r = 0; r < N * C; r++) {
        float bc = b[r % C];
        float *restrict yr = y + r * S;
        const float *restrict xr = x + r * S;
        for (int64_t s = 0; s < S; s++) yr[s] = xr[s] + bc;
    }
}

void rt_k_chan_sum(float *restrict out, const float *restrict x, int64_t N, int64_t C, int64_t S) {
    if (S == 1) {
        for (int64_t c0 = 0; c0 < C; c0 += RT_CBLK) {
            int64_t cb = C - c0 < RT_CBLK ? C - c0 : RT_CBLK;
            double acc[RT_CBLK] = {0};
            for (int64_t r = 0; r < N; r++) {
                const float *restrict xr = x + r * C + c0;
                for (int64_t j = 0; j < cb; j++) acc[j] += (double)xr[j];
            }
            for (int64_t j = 0; j < cb; j++) out[c0 + j] = (float)acc[j];
        }
        return;
    }
    for (int64_t c = 0; c < C; c++) {
        double s = 0;
        for (int64_t b = 0; b < N; b++) s += rt_sum(x + (b * C + c) * S, S);
        out[c] = (float)s;
    }
}

void rt_k_relu(float *restrict y, const float *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0.0f;
}

void rt_k_relu_back(float *restrict dx, const float *restrict dy, const float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : 0.0f;
}

void rt_k_leaky_relu(float *restrict y, const float *restrict x, int64_t n, float slope) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : slope * x[i];
}

void rt_k_leaky_relu_back(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t n,
                          float slope) {
    for (int64_t i = 0; i < n; i++) dx[i] = x[i] > 0 ? dy[i] : slope * dy[i];
}

void rt_k_add(float *restrict y, const float *restrict a, const float *restrict b, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void rt_k_copy(float *restrict y, const float *restrict x, int64_t n) {
    if (n > 0) memcpy(y, x, sizeof(float) * (size_t)n);
}

void rt_k_fill(float *restrict y, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++) y[i] = v;
}
