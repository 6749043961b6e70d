/*
** rt_kernels_pool.c: average, max and global average pooling and their
** backward kernels; semantics of compiler/ir/ops_pool.c (PyTorch's: floor
** output size, average pooling divides by K*K including the padding, max
** pooling's gradient goes to the first maximum of a window in row-major
** order, a NaN counting as a maximum).
**
** The windows are clipped to the image once per output row and column, so
** the inner loops carry no bounds tests.
*/
#include <math.h>
#include <string.h>

#include "rt_kernels.h"
#include "rt_kernels_impl.h"

/* The window of output o along one axis, clipped to [0, n): [*lo, *hi). */
static void clip(int64_t o, int64_t n, int64_t K, int64_t S, int64_t P, int64_t *lo, int64_t *hi) {
    int64_t a = o * S - P, b = a + K;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
}

void rt_k_avgpool2d(float *restrict y, const float *restrict x, int64_t NC, int64_t H, int64_t W, int64_t K,
                    int64_t S, int64_t P, int64_t OH, int64_t OW) {
    float inv = (float)(1.0 / (double)(K * K));
    for (int64_t c = 0; c < NC; c++) {
        const float *restrict plane = x + c * H * W;
        float *restrict out = y + c * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1;
            clip(oh, H, K, S, P, &h0, &h1);
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0, w1;
                clip(ow, W, K, S, P, &w0, &w1);
                float s = 0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) s += plane[ih * W + iw];
                out[oh * OW + ow] = s * inv;
            }
        }
    }
}

void rt_k_avgpool2d_back(float *restrict dx, const float *restrict dy, int64_t NC, int64_t H, int64_t W,
                         int64_t K, int64_t S, int64_t P, int64_t OH, int64_t OW) {
    float inv = (float)(1.0 / (double)(K * K));
    memset(dx, 0, sizeof(float) * (size_t)(NC * H * W));
    for (int64_t c = 0; c < NC; c++) {
        float *restrict plane = dx + c * H * W;
        const float *restrict g = dy + c * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1;
            clip(oh, H, K, S, P, &h0, &h1);
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0, w1;
                clip(ow, W, K, S, P, &w0, &w1);
                float d = g[oh * OW + ow] * inv;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) plane[ih * W + iw] += d;
            }
        }
    }
}

/* Index in the plane of the first maximum of the clipped window
   [h0,h1) x [w0,w1), exactly as the reference: start at the first element,
   move on a strictly greater value or on any NaN. The window is never
   empty (the shape rule keeps 2P <= K). */
static int64_t max_index(const float *restrict plane, int64_t W, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
    int64_t best = h0 * W + w0;
    float bv = -INFINITY;
    for (int64_t ih = h0; ih < h1; ih++)
        for (int64_t iw = w0; iw < w1; iw++) {
            float v = plane[ih * W + iw];
            if (v > bv || isnan(v)) {
                best = ih * W + iw;
                bv = v;
            }
        }
    return best;
}

void rt_k_maxpool2d(float *restrict y, const float *restrict x, int64_t NC, int64_t H, int64_t W, int64_t K,
                    int64_t S, int64_t P, int64_t OH, int64_t OW) {
    for (int64_t c = 0; c < NC; c++) {
        const float *restrict plane = x + c * H * W;
        float *restrict out = y + c * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1;
            clip(oh, H, K, S, P, &h0, &h1);
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0, w1;
                clip(ow, W, K, S, P, &w0, &w1);
                out[oh * OW + ow] = plane[max_index(plane, W, h0, h1, w0, w1)];
            }
        }
    }
}

void rt_k_maxpool2d_back(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t NC,
                         int64_t H, int64_t W, int64_t K, int64_t S, int64_t P, int64_t OH, int64_t OW) {
    memset(dx, 0, sizeof(float) * (size_t)(NC * H * W));
    for (int64_t c = 0; c < NC; c++) {
        const float *restrict plane = x + c * H * W;
        float *restrict dplane = dx + c * H * W;
        const float *restrict g = dy + c * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1;
            clip(oh, H, K, S, P, &h0, &h1);
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0, w1;
                clip(ow, W, K, S, P, &w0, &w1);
                dplane[max_index(plane, W, h0, h1, w0, w1)] += g[oh * OW + ow];
            }
        }
    }
}

void rt_k_global_avgpool(float *restrict y, const float *restrict x, int64_t NC, int64_t S) {
    for (int64_t c = 0; c < NC; c++) y[c] = (float)(rt_sum(x + c * S, S) / (double)S);
}

void rt_k_global_avgpool_back(float *restrict dx, const float *restrict dy, int64_t NC, int64_t S) {
    for (int64_t c = 0; c < NC; c++) {
        float d = (float)((double)dy[c] / (double)S);
        float *restrict r = dx + c * S;
        for (int64_t k = 0; k < S; k++) r[k] = d;
    }
}
