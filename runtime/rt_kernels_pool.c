/*
** rt_kernels_pool.c: average, max and global average pooling and their
** backward kernels; semantics of compiler/ir/ops_pool.c (PyTorch's: floor
** output size, average pooling divides by K*K including the padding, max
** pooling's gradient goes to the first maximum of a window in row-major
** order, a NaN counting as a maximum).
**
** The windows are clipped to the image once per output row and column, so
** the inner loops carry no bounds tests; interior outputs are computed a
** chunk of a row at a time (see sum_chunk).
*/
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "rt_kernels.h"
#include "rt_kernels_impl.h"
#include "rt_pool.h"

/* The window of output o along one axis, clipped to [0, n): [*lo, *hi). */
static void clip(int64_t o, int64_t n, int64_t K, int64_t S, int64_t P, int64_t *lo, int64_t *hi) {
    int64_t a = o * S - P, b = a + K;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
}

/* Pooling runs the windows of a chunk of outputs in one output row side by
   side, a tap (kh, kw) at a time in row-major order over all outputs of the
   chunk: vectorisable across outputs, and each output still sees its taps
   in the reference's order (a window at a time it is a short serial
   chain). Only outputs whose window lies inside the row horizontally
   ([*a, *b)) go this way; the few at the borders go one by one. */
#define RT_POOL_CHUNK 64

static void interior_cols(int64_t OW, int64_t W, int64_t K, int64_t S, int64_t P, int64_t *a, int64_t *b) {
    int64_t lo = (P + S - 1) / S;                           /* ow*S - P >= 0 */
    int64_t hi = W + P - K < 0 ? 0 : (W + P - K) / S + 1;   /* ow*S - P + K <= W */
    if (hi > OW) hi = OW;
    if (lo > hi) lo = hi;
    *a = lo;
    *b = hi;
}

/* out[j] = sum of the (clipped to rows [h0, h1)) windows of outputs
   ow0 + j, j < cnt, all inside the row horizontally */
static void sum_chunk(float *restrict out, const float *restrict plane, int64_t W, int64_t K, int64_t S, int64_t P,
                      int64_t h0, int64_t h1, int64_t ow0, int64_t cnt) {
    int64_t c0 = ow0 * S - P;
    for (int64_t ih = h0; ih < h1; ih++)
        for (int64_t kw = 0; kw < K; kw++) {
            const float *restrict r = plane + ih * W + c0 + kw;
            if (ih == h0 && kw == 0)
                RT_VFOR(j, cnt, out[j] = r[j * S];);
            else
                RT_VFOR(j, cnt, out[j] += r[j * S];);
        }
}

/* Non-overlapping windows that tile the plane exactly (K == S, no padding,
   OH*K == H, OW*K == W: conv4's 2x2 pooling): no clipping, and backward
   writes each input pixel once. Same summation order as the general path
   (rows, then columns within a row). */
static bool tiles_exactly(int64_t H, int64_t W, int64_t K, int64_t S, int64_t P, int64_t OH, int64_t OW) {
    return K == S && P == 0 && OH * K == H && OW * K == W;
}

/* Output rows [r0, r1) of an exactly tiling average pool (rt_rows_fn over
   the pool: rows are independent), forward and backward. */
typedef struct PoolJob {
    float *out;
    const float *in;
    int64_t W, K, OW;
    float inv;
} PoolJob;

static void avgpool_rows(void **arg, int64_t r0, int64_t r1) {
    const PoolJob *j = (const PoolJob *)(void *)arg;
    int64_t W = j->W, K = j->K, OW = j->OW;
    float inv = j->inv;
    for (int64_t r = r0; r < r1; r++) {   /* output row r of plane r / OH */
        const float *restrict in = j->in + r * K * W;
        float *restrict out = j->out + r * OW;
        if (K == 2) {
            for (int64_t ow = 0; ow < OW; ow++)
                out[ow] = (((in[2 * ow] + in[2 * ow + 1]) + in[W + 2 * ow]) + in[W + 2 * ow + 1]) * inv;
            continue;
        }
        for (int64_t ow = 0; ow < OW; ow++) {
            float s = 0;
            for (int64_t ih = 0; ih < K; ih++)
                for (int64_t iw = 0; iw < K; iw++) s += in[ih * W + ow * K + iw];
            out[ow] = s * inv;
        }
    }
}

static void avgpool_back_rows(void **arg, int64_t r0, int64_t r1) {
    const PoolJob *j = (const PoolJob *)(void *)arg;
    int64_t W = j->W, K = j->K, OW = j->OW;
    for (int64_t r = r0; r < r1; r++) {
        const float *restrict g = j->in + r * OW;
        float *restrict out = j->out + r * K * W;
        for (int64_t ih = 0; ih < K; ih++)
            for (int64_t ow = 0; ow < OW; ow++) {
                float d = g[ow] * j->inv;
                for (int64_t iw = 0; iw < K; iw++) out[ih * W + ow * K + iw] = d;
            }
    }
}

void rt_k_avgpool2d(float *restrict y, const float *restrict x, int64_t NC, int64_t H, int64_t W, int64_t K,
                    int64_t S, int64_t P, int64_t OH, int64_t OW) {
    float inv = (float)(1.0 / (double)(K * K));
    if (tiles_exactly(H, W, K, S, P, OH, OW)) {
        PoolJob j = {y, x, W, K, OW, inv};
        rt_par_rows(avgpool_rows, (void **)&j, NC * OH, 4096 / (OW * K * K) + 1);
        return;
    }
    int64_t a, b;
    interior_cols(OW, W, K, S, P, &a, &b);
    for (int64_t c = 0; c < NC; c++) {
        const float *restrict plane = x + c * H * W;
        float *restrict out = y + c * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1;
            clip(oh, H, K, S, P, &h0, &h1);
            for (int64_t ow = 0; ow < OW; ow++) {
                if (ow == a && b > a) {
                    float *restrict o = out + oh * OW + a;
                    sum_chunk(o, plane, W, K, S, P, h0, h1, a, b - a);
                    RT_VFOR(j, b - a, o[j] *= inv;);
                    ow = b - 1;
                    continue;
                }
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
    if (tiles_exactly(H, W, K, S, P, OH, OW)) {
        PoolJob j = {dx, dy, W, K, OW, inv};
        rt_par_rows(avgpool_back_rows, (void **)&j, NC * OH, 4096 / (OW * K * K) + 1);
        return;
    }
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

/* Max pooling the same way: a tap replaces the running maximum when it is
   greater or NaN, the reference's rule. m[j] (and id[j], its plane index,
   when id is not NULL) = the maximum of the window of output ow0 + j,
   j < cnt, rows [h0, h1); m is the output row itself in the forward. */
static void max_chunk(float *restrict m, int32_t *restrict id, const float *restrict plane, int64_t W, int64_t K,
                      int64_t S, int64_t P, int64_t h0, int64_t h1, int64_t ow0, int64_t cnt) {
    int64_t c0 = ow0 * S - P;
    for (int64_t ih = h0; ih < h1; ih++)
        for (int64_t kw = 0; kw < K; kw++) {
            int64_t pos = ih * W + c0 + kw;
            const float *restrict r = plane + pos;
            if (ih == h0 && kw == 0) {
                RT_VFOR(j, cnt, m[j] = r[j * S];);
                if (id) RT_VFOR(j, cnt, id[j] = (int32_t)(pos + j * S););
            } else if (id) {
                RT_VFOR(j, cnt, float v = r[j * S], c = m[j]; int t = (v > c) | (v != v);
                        m[j] = t ? v : c; id[j] = t ? (int32_t)(pos + j * S) : id[j];);
            } else {
                RT_VFOR(j, cnt, float v = r[j * S], c = m[j]; int t = (v > c) | (v != v); m[j] = t ? v : c;);
            }
        }
}

void rt_k_maxpool2d(float *restrict y, const float *restrict x, int64_t NC, int64_t H, int64_t W, int64_t K,
                    int64_t S, int64_t P, int64_t OH, int64_t OW) {
    int64_t a, b;
    interior_cols(OW, W, K, S, P, &a, &b);
    for (int64_t c = 0; c < NC; c++) {
        const float *restrict plane = x + c * H * W;
        float *restrict out = y + c * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1;
            clip(oh, H, K, S, P, &h0, &h1);
            for (int64_t ow = 0; ow < OW; ow++) {
                if (ow == a && b > a) {
                    max_chunk(out + oh * OW + a, NULL, plane, W, K, S, P, h0, h1, a, b - a);
                    ow = b - 1;
                    continue;
                }
                int64_t w0, w1;
                clip(ow, W, K, S, P, &w0, &w1);
                out[oh * OW + ow] = plane[max_index(plane, W, h0, h1, w0, w1)];
            }
        }
    }
}

void rt_k_maxpool2d_back(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t NC,
                         int64_t H, int64_t W, int64_t K, int64_t S, int64_t P, int64_t OH, int64_t OW) {
    int64_t a, b;
    interior_cols(OW, W, K, S, P, &a, &b);
    if (H * W > INT32_MAX) b = a;   /* the chunk's indices are int32 */
    memset(dx, 0, sizeof(float) * (size_t)(NC * H * W));
    for (int64_t c = 0; c < NC; c++) {
        const float *restrict plane = x + c * H * W;
        float *restrict dplane = dx + c * H * W;
        const float *restrict g = dy + c * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1;
            clip(oh, H, K, S, P, &h0, &h1);
            for (int64_t ow = 0; ow < OW; ow++) {
                if (ow == a && b > a) {
                    /* the chunks of the interior, in order: a sum over
                       overlapping windows adds in the reference's order */
                    for (int64_t o0 = a; o0 < b; o0 += RT_POOL_CHUNK) {
                        int64_t cnt = b - o0 < RT_POOL_CHUNK ? b - o0 : RT_POOL_CHUNK;
                        float m[RT_POOL_CHUNK];
                        int32_t id[RT_POOL_CHUNK];
                        max_chunk(m, id, plane, W, K, S, P, h0, h1, o0, cnt);
                        for (int64_t j = 0; j < cnt; j++) dplane[id[j]] += g[oh * OW + o0 + j];
                    }
                    ow = b - 1;
                    continue;
                }
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
        RT_VFOR(k, S, r[k] = d;);
    }
}
