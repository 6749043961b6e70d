/*
** rt_kernels_elem.c: the elementwise and broadcast kernels (bias, channel
** sum, ReLU, leaky ReLU, add, copy, fill); semantics of
** compiler/ir/ops_elem.c. Plain loops over restrict pointers, blocked with
** RT_VFOR so that gcc -O2 vectorises them (rt_kernels_impl.h); the channel
** sum accumulates in double.
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
            RT_VFOR(c, C, yr[c] = xr[c] + b[c];);
        }
        return;
    }
    for (int64_t r = 0; r < N * C; r++) {
        float bc = b[r % C];
        float *restrict yr = y + r * S;
        const float *restrict xr = x + r * S;
        RT_VFOR(s, S, yr[s] = xr[s] + bc;);
    }
}

void rt_k_chan_sum(float *restrict out, const float *restrict x, int64_t N, int64_t C, int64_t S) {
    if (S == 1) {
        for (int64_t c0 = 0; c0 < C; c0 += RT_CBLK) {
            int64_t cb = C - c0 < RT_CBLK ? C - c0 : RT_CBLK;
            double acc[RT_CBLK] = {0};
            for (int64_t r = 0; r < N; r++) {
                const float *restrict xr = x + r * C + c0;
                RT_VFOR(j, cb, acc[j] += (double)xr[j];);
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
    RT_VFOR(i, n, float v = x[i]; y[i] = v > 0 ? v : 0.0f;);
}

void rt_k_relu_back(float *restrict dx, const float *restrict dy, const float *restrict y, int64_t n) {
    RT_VFOR(i, n, float m = y[i], g = dy[i]; dx[i] = m > 0 ? g : 0.0f;);
}

void rt_k_leaky_relu(float *restrict y, const float *restrict x, int64_t n, float slope) {
    /* pos + slope*neg with complementary masks: exactly x or slope*x (a NaN
       goes to the slope term, as in the reference) */
    RT_VFOR(i, n, float v = x[i]; float pos = v > 0 ? v : 0.0f, neg = v > 0 ? 0.0f : v;
            y[i] = pos + slope * neg;);
}

void rt_k_leaky_relu_back(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t n,
                          float slope) {
    RT_VFOR(i, n, float m = x[i], g = dy[i]; float pos = m > 0 ? g : 0.0f, neg = m > 0 ? 0.0f : g;
            dx[i] = pos + slope * neg;);
}

void rt_k_add(float *restrict y, const float *restrict a, const float *restrict b, int64_t n) {
    RT_VFOR(i, n, y[i] = a[i] + b[i];);
}

void rt_k_copy(float *restrict y, const float *restrict x, int64_t n) {
    if (n > 0) memcpy(y, x, sizeof(float) * (size_t)n);
}

void rt_k_fill(float *restrict y, int64_t n, float v) {
    RT_VFOR(i, n, y[i] = v;);
}
