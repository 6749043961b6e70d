/*
** rt_kernels_dim.c: Deep InfoMax's kernels (semantics of
** compiler/ir/ops_dim.c): the discriminators' batches and the two losses.
*/
#include <math.h>

#include "rt_kernels.h"
#include "rt_kernels_impl.h"

void rt_k_local_pairs(float *restrict z, const float *restrict M, const float *restrict y, int64_t B, int64_t C, int64_t F,
                      int64_t S) {
    for (int64_t r = 0; r < 2 * B; r++) {
        int64_t i = r % B, src = r < B ? i : (i + 1) % B;
        float *o = z + r * (C + F) * S;
        memcpy(o, M + src * C * S, sizeof(float) * (size_t)(C * S));
        for (int64_t f = 0; f < F; f++) {
            float v = y[i * F + f];
            RT_VFOR(s, S, o[(C + f) * S + s] = v;);
        }
    }
}

void rt_k_local_pairs_dm(float *restrict dM, const float *restrict dz, int64_t B, int64_t C, int64_t F, int64_t S) {
    int64_t W = C + F;
    for (int64_t j = 0; j < B; j++) {
        const float *a = dz + j * W * S, *b = dz + (B + (j + B - 1) % B) * W * S;
        float *o = dM + j * C * S;
        RT_VFOR(k, C * S, o[k] = a[k] + b[k];);
    }
}

void rt_k_local_pairs_dy(float *restrict dy, const float *restrict dz, int64_t B, int64_t C, int64_t F, int64_t S) {
    int64_t W = C + F;
    for (int64_t i = 0; i < B; i++)
        for (int64_t f = 0; f < F; f++) {
            double s = 0;
            for (int64_t h = 0; h < 2; h++) {
                const float *p = dz + ((h * B + i) * W + C + f) * S;
                for (int64_t k = 0; k < S; k++) s += (double)p[k];
            }
            dy[i * F + f] = (float)s;
        }
}

void rt_k_slice_rows(float *restrict y, const float *restrict x, int64_t start, int64_t count, int64_t F) {
    memcpy(y, x + start * F, sizeof(float) * (size_t)(count * F));
}

void rt_k_concat_rows(float *restrict y, const float *restrict a, const float *restrict b, int64_t na, int64_t nb) {
    memcpy(y, a, sizeof(float) * (size_t)na);
    memcpy(y + na, b, sizeof(float) * (size_t)nb);
}

static inline double softplus_d(double x) { return x > RT_SOFTPLUS_THRESHOLD ? x : log1p(exp(x)); }
static inline double dsoftplus_d(double x) { return x > RT_SOFTPLUS_THRESHOLD ? 1 : 1 / (1 + exp(-x)); }

void rt_k_jsd_loss(float *restrict out, const float *restrict t, int64_t half, float scale) {
    double a = 0, b = 0;
    for (int64_t k = 0; k < half; k++) a += softplus_d(-(double)t[k]);
    for (int64_t k = 0; k < half; k++) b += softplus_d((double)t[half + k]);
    out[0] = (float)((double)scale * (a / (double)half + b / (double)half));
}

void rt_k_jsd_back(float *restrict dt, const float *restrict dl, const float *restrict t, int64_t half, float scale) {
    double k = (double)dl[0] * (double)scale / (double)half;
    for (int64_t i = 0; i < half; i++) dt[i] = (float)(-k * dsoftplus_d(-(double)t[i]));
    for (int64_t i = half; i < 2 * half; i++) dt[i] = (float)(k * dsoftplus_d((double)t[i]));
}

void rt_k_prior_loss(float *restrict out, const float *restrict p, int64_t half, float scale) {
    double a = 0, b = 0;
    for (int64_t i = 0; i < half; i++) a -= softplus_d(-(double)p[i]);
    for (int64_t i = 0; i < half; i++) b -= softplus_d((double)p[half + i]);
    out[0] = (float)(-(double)scale * (a / (double)half + b / (double)half));
}

void rt_k_prior_back(float *restrict dp, const float *restrict dl, const float *restrict p, int64_t half, float scale) {
    double k = -(double)dl[0] * (double)scale / (double)half;
    for (int64_t i = 0; i < half; i++) dp[i] = (float)(k * dsoftplus_d(-(double)p[i]));
    for (int64_t i = half; i < 2 * half; i++) dp[i] = (float)(-k * dsoftplus_d((double)p[i]));
}
