/*
** rt_kernels_math.c: elementwise math, row-wise L2 normalisation and the
** matrix product of two activations; semantics of compiler/ir/ops_math.c.
** Transcendentals are libm's f32 functions; the normalisation's sums
** accumulate in double, as the channel sums do; the product is OpenBLAS's
** sgemm.
*/
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "rt_kernels.h"
#include "rt_kernels_impl.h"

#define SOFTPLUS_THRESHOLD ((float)RT_SOFTPLUS_THRESHOLD)

void rt_k_mul(float *restrict y, const float *restrict a, const float *restrict b, int64_t n) {
    RT_VFOR(i, n, y[i] = a[i] * b[i];);
}

void rt_k_exp(float *restrict y, const float *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

void rt_k_log(float *restrict y, const float *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = logf(x[i]);
}

void rt_k_log_back(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t n) {
    RT_VFOR(i, n, dx[i] = dy[i] / x[i];);
}

void rt_k_softplus(float *restrict y, const float *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > SOFTPLUS_THRESHOLD ? x[i] : log1pf(expf(x[i]));
}

void rt_k_softplus_back(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float z = expf(x[i]);
        dx[i] = x[i] > SOFTPLUS_THRESHOLD ? dy[i] : dy[i] * z / (z + 1.0f);
    }
}

static double row_norm(const float *restrict x, int64_t D) {
    double s = 0;
    for (int64_t d = 0; d < D; d++) s += (double)x[d] * (double)x[d];
    return sqrt(s);
}

void rt_k_l2_normalize(float *restrict y, const float *restrict x, int64_t N, int64_t D, float eps) {
    for (int64_t r = 0; r < N; r++) {
        double norm = row_norm(x + r * D, D);
        float inv = (float)(1.0 / (norm > eps ? norm : (double)eps));
        float *restrict yr = y + r * D;
        const float *restrict xr = x + r * D;
        RT_VFOR(d, D, yr[d] = xr[d] * inv;);
    }
}

void rt_k_l2_normalize_back(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t N, int64_t D,
                            float eps) {
    for (int64_t r = 0; r < N; r++) {
        const float *restrict dyr = dy + r * D, *restrict xr = x + r * D;
        float *restrict o = dx + r * D;
        double norm = row_norm(xr, D);
        if (norm <= eps) {
            float inv = 1.0f / eps;
            RT_VFOR(d, D, o[d] = dyr[d] * inv;);
            continue;
        }
        double xdy = 0;
        for (int64_t d = 0; d < D; d++) xdy += (double)xr[d] * (double)dyr[d];
        /* dx = (dy - y (y . dy)) / |x| with y = x / |x| */
        float inv = (float)(1.0 / norm), c = (float)(xdy / (norm * norm * norm));
        RT_VFOR(d, D, o[d] = dyr[d] * inv - xr[d] * c;);
    }
}

void rt_k_matmul(float *restrict c, const float *restrict a, const float *restrict b, int64_t M, int64_t N, int64_t K,
                 int64_t ta, int64_t tb) {
    if (M == 0 || N == 0) return;
    if (K == 0) {
        memset(c, 0, sizeof(float) * (size_t)(M * N));
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, rt_bi(M), rt_bi(N), rt_bi(K), 1.0f, a,
                rt_bi(ta ? M : K), b, rt_bi(tb ? K : N), 0.0f, c, rt_bi(N));
}
