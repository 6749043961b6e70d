/*
** rt_kernels_conv.c: conv2d (forward, dX, dW) and linear (forward, dX, dW)
** in f32 on OpenBLAS's sgemm (see rt_kernels.h for the layouts).
**
** Convolution is lowered to GEMM one image at a time, never for the whole
** batch at once: one image's column matrix (C*KH*KW x OH*OW; 0.56 MiB for
** a ResNet stage-1 layer) stays in L2 between im2col and the GEMM, while a
** whole-batch column matrix streams from DRAM and halves sgemm throughput
** (/work/shared/TOOLCHAIN.md section 4). Per image, with K = C*KH*KW and
** Q = OH*OW:
**   forward  y_n [O,Q]   = W [O,K]  x col_n [K,Q]            (NN)
**   dX       col [K,Q]   = W^T [K,O] x dy_n [O,Q]; col2im     (TN)
**   dW       dW^T [K,O] += col_n [K,Q] x dy_n^T [Q,O]         (NT, beta 1)
**            (or dW [O,K] += dy_n x col_n^T when K < O; see dw_transposed)
** A 1x1 stride-1 unpadded convolution is already a GEMM on the image
** (col_n = x_n), so it skips im2col / col2im.
**
** im2col and col2im work a tap (c, kh, kw) at a time; for the common
** stride-1 "same"-width case a tap is the image plane shifted, one long
** copy or add instead of OH short ones (stage-1 dX gained a third with
** that: docs/DECISIONS.md). Single-thread figures: tools/bench_kernels.c.
*/
#include <cblas.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rt_kernels.h"
#include "rt_kernels_impl.h"
#include "rt_pool.h"

static int is_pointwise(int64_t KH, int64_t KW, int64_t S, int64_t P) {
    return KH == 1 && KW == 1 && S == 1 && P == 0;
}

/* The output columns ow whose input column ow*S - P + kw lies in [0, W):
   [*lo, *hi). Computing the range once per kernel column keeps the inner
   copy loops free of bounds tests. */
static void valid_range(int64_t OW, int64_t W, int64_t S, int64_t P, int64_t kw, int64_t *lo, int64_t *hi) {
    int64_t a = P - kw;                      /* need ow*S >= a */
    int64_t l = a <= 0 ? 0 : (a + S - 1) / S;
    int64_t b = W - 1 + P - kw;              /* need ow*S <= b */
    int64_t h = b < 0 ? 0 : b / S + 1;
    if (h > OW) h = OW;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* Tap (kh, kw) of one channel's im2col: row [OH*OW] of the column matrix
   from plane [H*W]; padding reads as 0. */
static void im2col_tap(float *restrict row, const float *restrict plane, int64_t H, int64_t W, int64_t S,
                       int64_t P, int64_t OH, int64_t OW, int64_t kh, int64_t kw) {
    int64_t r0, r1, lo, hi;
    valid_range(OH, H, S, P, kh, &r0, &r1);
    valid_range(OW, W, S, P, kw, &lo, &hi);
    if (r1 <= r0 || hi <= lo) {
        memset(row, 0, sizeof(float) * (size_t)(OH * OW));
        return;
    }
    memset(row, 0, sizeof(float) * (size_t)(r0 * OW));
    memset(row + r1 * OW, 0, sizeof(float) * (size_t)((OH - r1) * OW));
    if (S == 1 && OW == W) {
        /* "Same"-width stride-1 convolution: the tap is the plane shifted
           by d, so one long copy from the first valid element to the last
           replaces OH short ones; the elements it wraps into the padding
           columns are zeroed after. */
        int64_t d = (kh - P) * W + (kw - P), j0 = r0 * OW + lo, j1 = (r1 - 1) * OW + hi;
        memcpy(row + j0, plane + (j0 + d), sizeof(float) * (size_t)(j1 - j0));
        for (int64_t oh = r0; oh < r1; oh++) {
            float *restrict r = row + oh * OW;
            for (int64_t ow = 0; ow < lo; ow++) r[ow] = 0;
            for (int64_t ow = hi; ow < OW; ow++) r[ow] = 0;
        }
        return;
    }
    for (int64_t oh = r0; oh < r1; oh++) {
        float *restrict r = row + oh * OW;
        /* plane index of output column ow is base + ow*S (>= 0 from lo on) */
        int64_t base = (oh * S - P + kh) * W - P + kw;
        for (int64_t ow = 0; ow < lo; ow++) r[ow] = 0;
        if (S == 1)
            memcpy(r + lo, plane + (base + lo), sizeof(float) * (size_t)(hi - lo));
        else
            RT_VFOR(ow, hi - lo, r[lo + ow] = plane[base + (lo + ow) * S];);
        for (int64_t ow = hi; ow < OW; ow++) r[ow] = 0;
    }
}

/* Stride 2: input column 2 ow + d of a tap is column ow + floor(d / 2) of
   the plane's even (d even) or odd (d odd) columns. With the plane split
   into those two half-width planes once (split: [H][W2] even, then [H][W2]
   odd, W2 = ceil(W / 2)), every tap row is a contiguous copy, as in the
   stride-1 path, instead of OW strided loads. */
static int64_t floor_div2(int64_t d) { return d >= 0 ? d / 2 : -((1 - d) / 2); }

/* Tap (kh, kw) with stride 2: its source half plane and the range of
   output columns [lo, hi) that read inside it, at column ow + shift. */
static const float *s2_tap(const float *split, int64_t H, int64_t W, int64_t P, int64_t OW, int64_t kw,
                           int64_t *shift, int64_t *lo, int64_t *hi) {
    int64_t W2 = (W + 1) / 2, d = kw - P, odd = d & 1, ncols = odd ? W / 2 : W2;
    *shift = floor_div2(d);
    *lo = *shift < 0 ? -*shift : 0;
    *hi = ncols - *shift < OW ? ncols - *shift : OW;
    if (*hi < *lo) *hi = *lo;
    return split + (odd ? H * W2 : 0);
}

static void im2col_s2(float *restrict col, const float *restrict x, int64_t C, int64_t H, int64_t W, int64_t KH,
                      int64_t KW, int64_t P, int64_t OH, int64_t OW, float *restrict split) {
    int64_t W2 = (W + 1) / 2;
    for (int64_t c = 0; c < C; c++) {
        const float *restrict plane = x + c * H * W;
        for (int64_t h = 0; h < H; h++) {
            const float *restrict in = plane + h * W;
            float *restrict ev = split + h * W2, *restrict od = split + (H + h) * W2;
            for (int64_t j = 0; j < W / 2; j++) {
                ev[j] = in[2 * j];
                od[j] = in[2 * j + 1];
            }
            if (W & 1) ev[W2 - 1] = in[W - 1];
        }
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                float *restrict row = col + ((c * KH + kh) * KW + kw) * OH * OW;
                int64_t shift, lo, hi;
                const float *src = s2_tap(split, H, W, P, OW, kw, &shift, &lo, &hi);
                for (int64_t oh = 0; oh < OH; oh++) {
                    float *restrict r = row + oh * OW;
                    int64_t ih = 2 * oh - P + kh;
                    if (ih < 0 || ih >= H) {
                        memset(r, 0, sizeof(float) * (size_t)OW);
                        continue;
                    }
                    for (int64_t ow = 0; ow < lo; ow++) r[ow] = 0;
                    memcpy(r + lo, src + ih * W2 + lo + shift, sizeof(float) * (size_t)(hi - lo));
                    for (int64_t ow = hi; ow < OW; ow++) r[ow] = 0;
                }
            }
    }
}

/* col [C*KH*KW, OH*OW] of one image x [C,H,W]; split: H*W floats of
   scratch for stride 2 */
static void im2col(float *restrict col, const float *restrict x, int64_t C, int64_t H, int64_t W, int64_t KH,
                   int64_t KW, int64_t S, int64_t P, int64_t OH, int64_t OW, float *restrict split) {
    if (S == 2) {
        im2col_s2(col, x, C, H, W, KH, KW, P, OH, OW, split);
        return;
    }
    for (int64_t c = 0; c < C; c++)
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++)
                im2col_tap(col + ((c * KH + kh) * KW + kw) * OH * OW, x + c * H * W, H, W, S, P, OH, OW, kh, kw);
}

/* The adjoint of im2col_tap: dplane += row scattered back to its input
   pixels, padding positions dropped. Clobbers the padding entries of row
   (scratch the caller owns). */
static void col2im_tap(float *restrict dplane, float *restrict row, int64_t H, int64_t W, int64_t S, int64_t P,
                       int64_t OH, int64_t OW, int64_t kh, int64_t kw) {
    int64_t r0, r1, lo, hi;
    valid_range(OH, H, S, P, kh, &r0, &r1);
    valid_range(OW, W, S, P, kw, &lo, &hi);
    if (r1 <= r0 || hi <= lo) return;
    if (S == 1 && OW == W) {
        /* one long shifted add, as in im2col_tap; zeroing the padding
           columns first makes the wrapped elements add exactly 0 */
        for (int64_t oh = r0; oh < r1; oh++) {
            float *restrict r = row + oh * OW;
            for (int64_t ow = 0; ow < lo; ow++) r[ow] = 0;
            for (int64_t ow = hi; ow < OW; ow++) r[ow] = 0;
        }
        int64_t d = (kh - P) * W + (kw - P), j0 = r0 * OW + lo, n = (r1 - 1) * OW + hi - j0;
        float *restrict dd = dplane + (j0 + d);
        const float *restrict rr = row + j0;
        RT_VFOR(i, n, dd[i] += rr[i];);
        return;
    }
    for (int64_t oh = r0; oh < r1; oh++) {
        const float *restrict r = row + oh * OW;
        int64_t base = (oh * S - P + kh) * W - P + kw;
        if (S == 1) {
            float *restrict dd = dplane + (base + lo);
            const float *restrict rr = r + lo;
            RT_VFOR(i, hi - lo, dd[i] += rr[i];);
        } else {
            for (int64_t ow = lo; ow < hi; ow++) dplane[base + ow * S] += r[ow];
        }
    }
}

/* dx [C,H,W] += col2im(col); stride 2 through the split half planes (the
   adjoint of im2col_s2: each tap adds a contiguous range, in the same
   order as the direct path, then the halves interleave into dx) */
static void col2im(float *restrict dx, float *restrict col, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                   int64_t S, int64_t P, int64_t OH, int64_t OW, float *restrict split) {
    if (S == 2) {
        int64_t W2 = (W + 1) / 2;
        for (int64_t c = 0; c < C; c++) {
            memset(split, 0, sizeof(float) * (size_t)(2 * H * W2));
            for (int64_t kh = 0; kh < KH; kh++)
                for (int64_t kw = 0; kw < KW; kw++) {
                    const float *restrict row = col + ((c * KH + kh) * KW + kw) * OH * OW;
                    int64_t shift, lo, hi;
                    float *dst = (float *)s2_tap(split, H, W, P, OW, kw, &shift, &lo, &hi);
                    for (int64_t oh = 0; oh < OH; oh++) {
                        int64_t ih = 2 * oh - P + kh;
                        if (ih < 0 || ih >= H) continue;
                        float *restrict dd = dst + ih * W2 + lo + shift;
                        const float *restrict rr = row + oh * OW + lo;
                        RT_VFOR(i, hi - lo, dd[i] += rr[i];);
                    }
                }
            float *restrict plane = dx + c * H * W;
            for (int64_t h = 0; h < H; h++) {
                float *restrict out = plane + h * W;
                const float *restrict ev = split + h * W2, *restrict od = split + (H + h) * W2;
                for (int64_t j = 0; j < W / 2; j++) {
                    out[2 * j] += ev[j];
                    out[2 * j + 1] += od[j];
                }
                if (W & 1) out[W - 1] += ev[W2 - 1];
            }
        }
        return;
    }
    for (int64_t c = 0; c < C; c++)
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++)
                col2im_tap(dx + c * H * W, col + ((c * KH + kh) * KW + kw) * OH * OW, H, W, S, P, OH, OW, kh, kw);
}

/* dW = sum dy_n col_n^T is faster computed transposed, dW^T = sum col_n
   dy_n^T (M = C*KH*KW, N = O), when C*KH*KW >= O: OpenBLAS's kernel then gets
   the long side as M (faster on ResNet-32's shapes; the 1x1 stride-2
   projection, with C*KH*KW < O, is the other way round:
   docs/DECISIONS.md). The transposed sum is kept in scratch after the
   column matrix and transposed once into dw at the end. */
static int dw_transposed(int64_t K, int64_t O) { return K >= O; }

/* The workspace is [column matrix K*Q][dW^T accumulator K*O, when
   dw_transposed][stride 2: the split half planes of one channel] */
static int64_t split_floats(int64_t H, int64_t W, int64_t S) { return S == 2 ? 2 * H * ((W + 1) / 2) : 0; }

static float *split_of(float *ws, int64_t K, int64_t Q, int64_t O, int pw) {
    return ws + (pw ? 0 : K * Q) + (dw_transposed(K, O) ? K * O : 0);
}

int64_t rt_k_conv2d_ws(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW,
                       int64_t S, int64_t P, int64_t OH, int64_t OW) {
    (void)N; (void)H; (void)W;
    /* all three kernels use the column matrix of one image; dw may add its
       transposed accumulator */
    int64_t K = C * KH * KW;
    return (is_pointwise(KH, KW, S, P) ? 0 : K * OH * OW) + (dw_transposed(K, O) ? K * O : 0) + split_floats(H, W, S);
}

void rt_k_conv2d_part(float *restrict y, const float *restrict x, const float *restrict w, int64_t N,
                      int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S, int64_t P,
                      int64_t OH, int64_t OW, int64_t n0, int64_t n1, float *restrict ws) {
    (void)N;
    int64_t K = C * KH * KW, Q = OH * OW;
    int pw = is_pointwise(KH, KW, S, P);
    for (int64_t n = n0; n < n1; n++) {
        const float *xn = x + n * C * H * W;
        const float *col = xn;
        if (!pw) {
            im2col(ws, xn, C, H, W, KH, KW, S, P, OH, OW, split_of(ws, K, Q, O, pw));
            col = ws;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rt_bi(O), rt_bi(Q), rt_bi(K), 1.0f, w, rt_bi(K), col, rt_bi(Q),
                    0.0f, y + n * O * Q, rt_bi(Q));
    }
}

/* ---- over the thread pool: images split into contiguous parts, part t on
   thread t with its own scratch; dW parts summed in thread order ---- */

/* Floats of a thread's statistics: its (mean, m2) and, for a generated
   forward, those of each image of a call, double [2][O] each. */
#define STATS_FLOATS(O) (4 * (O) * (1 + RT_CONV_STATS_IMAGES))

typedef struct ConvJob {
    int kind;                    /* 0 fwd, 1 dx, 2 dw, 3 fwd + BatchNorm statistics */
    float *out;
    const float *a, *b;
    int64_t N, C, H, W, O, KH, KW, S, P, OH, OW;
    float *ws;                   /* the planned scratch, for thread 0 */
    int64_t wsn;
    float *partial[64];          /* dw: partial sums of threads 1..; stats: (mean, m2) of every thread */
    int parts;
    rt_rows_fn fwd;              /* stats: a generated per-image forward, or NULL for im2col + BLAS */
    void **fargs;
    int64_t nargs;               /* > 0: fwd also writes each image's statistics to its last argument */
    void *targs[64][RT_DW_MAX_ARGS];   /* fargs of each thread, with its own statistics buffer */
} ConvJob;

/* ---- forward + BatchNorm statistics of the output (the conv_stats fused
   kernel): each image's output [O, Q] is reduced right after its GEMM,
   while it is in cache. Per image and channel, the mean and the sum of
   squared deviations come from one pass of shifted sums (d = y - y[0],
   rt_shifted_sums: f32 partials of 16, double totals; the shift avoids the
   cancellation of E[y^2] - E[y]^2), then are merged
   into the running (mean, m2) by Chan et al.'s pairwise formula, images in
   order; the pool's parts merge in thread order. ---- */

static void stats_image(double *restrict acc, double cnt, const float *restrict yn, int64_t O, int64_t Q) {
    for (int64_t o = 0; o < O; o++) {
        double mi, q;
        rt_plane_stats(yn + o * Q, Q, &mi, &q);
        if (cnt == 0) {
            acc[o] = mi;
            acc[O + o] = q;
        } else {
            rt_stats_merge(&acc[o], &acc[O + o], cnt, mi, q, (double)Q);
        }
    }
}

static void conv_stats_part(ConvJob *j, int t, int64_t n0, int64_t n1, float *ws, double *acc) {
    int64_t Q = j->OH * j->OW;
    if (j->nargs > 0) {
        /* the generated kernel makes each image's (mean, m2) itself, for
           RT_CONV_STATS_IMAGES images a call (a Winograd kernel works on
           groups of images), merged here image by image in order */
        for (int64_t c0 = n0; c0 < n1; c0 += RT_CONV_STATS_IMAGES) {
            int64_t c1 = n1 - c0 < RT_CONV_STATS_IMAGES ? n1 : c0 + RT_CONV_STATS_IMAGES;
            j->fwd(j->targs[t], c0, c1);
            for (int64_t n = c0; n < c1; n++) {
                const double *im = (const double *)j->targs[t][j->nargs - 1] + (n - c0) * 2 * j->O;
                for (int64_t o = 0; o < j->O; o++) {
                    if (n == n0) {
                        acc[o] = im[o];
                        acc[j->O + o] = im[j->O + o];
                    } else {
                        rt_stats_merge(&acc[o], &acc[j->O + o], (double)((n - n0) * Q), im[o], im[j->O + o], (double)Q);
                    }
                }
            }
        }
        return;
    }
    for (int64_t n = n0; n < n1; n++) {
        if (j->fwd)
            j->fwd(j->fargs, n, n + 1);
        else
            rt_k_conv2d_part(j->out, j->a, j->b, j->N, j->C, j->H, j->W, j->O, j->KH, j->KW, j->S, j->P, j->OH, j->OW, n,
                             n + 1, ws);
        stats_image(acc, (double)((n - n0) * Q), j->out + n * j->O * Q, j->O, Q);
    }
}

static void conv_task(void *vctx, int t) {
    ConvJob *j = vctx;
    int64_t n0 = j->N * t / j->parts, n1 = j->N * (t + 1) / j->parts;
    float *ws = t == 0 ? j->ws : rt_pool_scratch(t, (size_t)j->wsn);
    if (j->kind == 3)
        conv_stats_part(j, t, n0, n1, ws, (double *)(void *)j->partial[t]);
    else if (j->kind == 0)
        rt_k_conv2d_part(j->out, j->a, j->b, j->N, j->C, j->H, j->W, j->O, j->KH, j->KW, j->S, j->P, j->OH, j->OW, n0, n1, ws);
    else if (j->kind == 1)
        rt_k_conv2d_dx_part(j->out, j->a, j->b, j->N, j->C, j->H, j->W, j->O, j->KH, j->KW, j->S, j->P, j->OH, j->OW, n0, n1,
                            ws);
    else
        rt_k_conv2d_dw_part(t == 0 ? j->out : j->partial[t], j->a, j->b, j->N, j->C, j->H, j->W, j->O, j->KH, j->KW, j->S,
                            j->P, j->OH, j->OW, n0, n1, ws);
}

/* Runs a convolution kernel over the pool; false if it should run alone. */
static bool conv_parallel(int kind, float *out, const float *a, const float *b, int64_t N, int64_t C, int64_t H,
                          int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S, int64_t P, int64_t OH, int64_t OW,
                          float *ws) {
    int T = rt_pool_threads();
    if (T > 64) T = 64;
    if (T < 2 || N < 2) return false;
    if (T > N) T = (int)N;
    ConvJob j = {kind, out, a, b, N, C, H, W, O, KH, KW, S, P, OH, OW, ws,
                 rt_k_conv2d_ws(N, C, H, W, O, KH, KW, S, P, OH, OW), {0}, T, NULL, NULL, 0, {{0}}};
    int64_t dwn = O * C * KH * KW;
    if (kind == 2)   /* scratch and partial sum share thread t's buffer: size it once, before the tasks */
        for (int t = 1; t < T; t++) j.partial[t] = rt_pool_scratch(t, (size_t)(j.wsn + dwn)) + j.wsn;
    rt_pool_run(T, conv_task, &j);
    if (kind == 2)
        for (int t = 1; t < T; t++)
            for (int64_t i = 0; i < dwn; i++) out[i] += j.partial[t][i];
    return true;
}

int64_t rt_k_conv2d_stats_ws(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW,
                             int64_t S, int64_t P, int64_t OH, int64_t OW) {
    /* the convolution's, then thread 0's (mean, m2) and those of the
       images of a call, in double, 64-byte aligned */
    int64_t ws = rt_k_conv2d_ws(N, C, H, W, O, KH, KW, S, P, OH, OW);
    return (ws + 15) / 16 * 16 + STATS_FLOATS(O);
}

/* total > 0: one rank's share of a data-parallel step, its statistics
   combined with every rank's (total values per channel) */
static void conv2d_stats(float *restrict y, float *restrict st, const float *restrict x, const float *restrict w,
                         int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S,
                         int64_t P, int64_t OH, int64_t OW, float *restrict ws, rt_rows_fn fwd, void **fargs,
                         int64_t nargs, int64_t total) {
    int T = rt_pool_threads();
    if (T > 64) T = 64;
    if (T > N) T = (int)N;
    if (T < 1) T = 1;
    int64_t wsn = rt_k_conv2d_ws(N, C, H, W, O, KH, KW, S, P, OH, OW), off = (wsn + 15) / 16 * 16;
    ConvJob job = {3, y, x, w, N, C, H, W, O, KH, KW, S, P, OH, OW, ws, wsn, {0}, T, fwd, fargs, 0, {{0}}}, *j = &job;
    if (nargs > RT_DW_MAX_ARGS) abort();   /* generated code passes at most RT_DW_MAX_ARGS */
    j->nargs = fwd ? nargs : 0;
    j->partial[0] = ws + off;
    for (int t = 1; t < T; t++) j->partial[t] = rt_pool_scratch(t, (size_t)(off + STATS_FLOATS(O))) + off;
    for (int t = 0; t < T && j->nargs > 0; t++) {
        for (int64_t i = 0; i < nargs; i++) j->targs[t][i] = fargs[i];
        j->targs[t][nargs - 1] = j->partial[t] + 4 * O;   /* after the thread's (mean, m2) */
    }
    if (T > 1) rt_pool_run(T, conv_task, j);
    else conv_stats_part(j, 0, 0, N, ws, (double *)(void *)j->partial[0]);
    double *acc = (double *)(void *)j->partial[0], Q = (double)(OH * OW);
    for (int t = 1; t < T; t++) {
        double na = (double)(N * t / T) * Q, nb = (double)(N * (t + 1) / T - N * t / T) * Q;
        const double *p = (const double *)(void *)j->partial[t];
        if (nb == 0) continue;
        for (int64_t o = 0; o < O; o++) rt_stats_merge(&acc[o], &acc[O + o], na, p[o], p[O + o], nb);
    }
    double M = (double)N * Q;
    if (total) {   /* (count, mean, var) of this rank, in double, then of all */
        double *loc = malloc((size_t)(4 * O + 1) * sizeof *loc), *all = loc + 2 * O + 1;
        if (!loc) rt_k_dist_oom((size_t)(4 * O + 1) * sizeof *loc);
        loc[0] = M;
        for (int64_t o = 0; o < O; o++) loc[1 + o] = acc[o], loc[1 + O + o] = acc[O + o] / M;
        rt_stats_allreduce(loc, O, total, all);
        for (int64_t o = 0; o < 2 * O; o++) st[o] = (float)all[o];
        free(loc);
        return;
    }
    for (int64_t o = 0; o < O; o++) {
        st[o] = (float)acc[o];
        st[O + o] = (float)(acc[O + o] / M);
    }
}

void rt_k_conv2d_stats(float *restrict y, float *restrict st, const float *restrict x, const float *restrict w,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S,
                       int64_t P, int64_t OH, int64_t OW, float *restrict ws, rt_rows_fn fwd, void **fargs,
                       int64_t nargs) {
    conv2d_stats(y, st, x, w, N, C, H, W, O, KH, KW, S, P, OH, OW, ws, fwd, fargs, nargs, 0);
}

void rt_k_conv2d_stats_all(float *restrict y, float *restrict st, const float *restrict x, const float *restrict w,
                           int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S,
                           int64_t P, int64_t OH, int64_t OW, float *restrict ws, rt_rows_fn fwd, void **fargs,
                           int64_t nargs, int64_t total) {
    conv2d_stats(y, st, x, w, N, C, H, W, O, KH, KW, S, P, OH, OW, ws, fwd, fargs, nargs, total);
}

void rt_k_conv2d(float *restrict y, const float *restrict x, const float *restrict w, int64_t N, int64_t C,
                 int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S, int64_t P, int64_t OH,
                 int64_t OW, float *restrict ws) {
    if (conv_parallel(0, y, x, w, N, C, H, W, O, KH, KW, S, P, OH, OW, ws)) return;
    rt_k_conv2d_part(y, x, w, N, C, H, W, O, KH, KW, S, P, OH, OW, 0, N, ws);
}

void rt_k_conv2d_dx_part(float *restrict dx, const float *restrict dy, const float *restrict w, int64_t N,
                         int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S,
                         int64_t P, int64_t OH, int64_t OW, int64_t n0, int64_t n1, float *restrict ws) {
    (void)N;
    int64_t K = C * KH * KW, Q = OH * OW;
    int pw = is_pointwise(KH, KW, S, P);
    for (int64_t n = n0; n < n1; n++) {
        float *dxn = dx + n * C * H * W;
        const float *dyn = dy + n * O * Q;
        if (pw) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rt_bi(K), rt_bi(Q), rt_bi(O), 1.0f, w, rt_bi(K), dyn, rt_bi(Q),
                        0.0f, dxn, rt_bi(Q));
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rt_bi(K), rt_bi(Q), rt_bi(O), 1.0f, w, rt_bi(K), dyn, rt_bi(Q), 0.0f,
                    ws, rt_bi(Q));
        /* Input pixels that no window covers (stride > kernel, or the
           right/bottom remainder of a floor-sized output) get no gradient:
           zero the image first, then accumulate. */
        memset(dxn, 0, sizeof(float) * (size_t)(C * H * W));
        col2im(dxn, ws, C, H, W, KH, KW, S, P, OH, OW, split_of(ws, K, Q, O, pw));
    }
}

void rt_k_conv2d_dx(float *restrict dx, const float *restrict dy, const float *restrict w, int64_t N,
                    int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S, int64_t P,
                    int64_t OH, int64_t OW, float *restrict ws) {
    if (conv_parallel(1, dx, dy, w, N, C, H, W, O, KH, KW, S, P, OH, OW, ws)) return;
    rt_k_conv2d_dx_part(dx, dy, w, N, C, H, W, O, KH, KW, S, P, OH, OW, 0, N, ws);
}

void rt_k_conv2d_dw_part(float *restrict dw, const float *restrict dy, const float *restrict x, int64_t N,
                         int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S,
                         int64_t P, int64_t OH, int64_t OW, int64_t n0, int64_t n1, float *restrict ws) {
    (void)N;
    int64_t K = C * KH * KW, Q = OH * OW;
    int pw = is_pointwise(KH, KW, S, P);
    if (n1 <= n0) {
        memset(dw, 0, sizeof(float) * (size_t)(O * K));
        return;
    }
    int tr = dw_transposed(K, O);
    float *colbuf = ws, *acc = tr ? ws + (pw ? 0 : K * Q) : dw;
    for (int64_t n = n0; n < n1; n++) {
        const float *xn = x + n * C * H * W;
        const float *col = xn;
        if (!pw) {
            im2col(colbuf, xn, C, H, W, KH, KW, S, P, OH, OW, split_of(ws, K, Q, O, pw));
            col = colbuf;
        }
        /* the first image overwrites the accumulator, the others add to it */
        float beta = n == n0 ? 0.0f : 1.0f;
        if (tr)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rt_bi(K), rt_bi(O), rt_bi(Q), 1.0f, col, rt_bi(Q),
                        dy + n * O * Q, rt_bi(Q), beta, acc, rt_bi(O));
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rt_bi(O), rt_bi(K), rt_bi(Q), 1.0f, dy + n * O * Q, rt_bi(Q),
                        col, rt_bi(Q), beta, acc, rt_bi(K));
    }
    if (tr)
        for (int64_t o = 0; o < O; o++)
            for (int64_t k = 0; k < K; k++) dw[o * K + k] = acc[k * O + o];
}

void rt_k_conv2d_dw(float *restrict dw, const float *restrict dy, const float *restrict x, int64_t N,
                    int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S, int64_t P,
                    int64_t OH, int64_t OW, float *restrict ws) {
    if (conv_parallel(2, dw, dy, x, N, C, H, W, O, KH, KW, S, P, OH, OW, ws)) return;
    rt_k_conv2d_dw_part(dw, dy, x, N, C, H, W, O, KH, KW, S, P, OH, OW, 0, N, ws);
}

/* ---- the weight gradient of a generated direct kernel: images split over
   the pool, each part written into its own buffer by fn (args {dy, out,
   x's inputs...}: the output is args[1]), the parts summed in thread order
   into dw ---- */

typedef struct DwJob {
    rt_rows_fn fn;
    void *args[64][RT_DW_MAX_ARGS];
    int64_t N;
    int parts;
} DwJob;

static void dw_task(void *ctx, int t) {
    DwJob *j = ctx;
    j->fn(j->args[t], j->N * t / j->parts, j->N * (t + 1) / j->parts);
}

void rt_k_conv2d_dw_gen(float *restrict dw, rt_rows_fn fn, void **args, int64_t nargs, int64_t N, int64_t dwn) {
    int T = rt_pool_threads();
    if (T > 64) T = 64;
    if (T > N) T = (int)N;
    if (T <= 1 || nargs > RT_DW_MAX_ARGS) {
        fn(args, 0, N);
        return;
    }
    DwJob j = {.fn = fn, .N = N, .parts = T};
    for (int t = 0; t < T; t++) {
        for (int64_t i = 0; i < nargs; i++) j.args[t][i] = args[i];
        j.args[t][1] = t == 0 ? (void *)dw : (void *)rt_pool_scratch(t, (size_t)dwn);
    }
    rt_pool_run(T, dw_task, &j);
    for (int t = 1; t < T; t++) {
        const float *p = j.args[t][1];
        for (int64_t i = 0; i < dwn; i++) dw[i] += p[i];
    }
}

/* ---- linear: one GEMM each; the batch is the GEMM's M (or K for dW).
   One output (the relation head's score) is a matrix-vector product and
   its input gradient an outer product, which sgemm runs far below the
   memory's speed: sgemv and a row loop instead ---- */

static void scaled_row(float *restrict o, const float *restrict w, float a, int64_t n) { RT_VFOR(i, n, o[i] = a * w[i];); }

/* args: dx, dy, w, &In; rows n of dx = dy[n] w */
static void outer_rows(void **args, int64_t n0, int64_t n1) {
    float *dx = args[0];
    const float *dy = args[1], *w = args[2];
    int64_t In = *(const int64_t *)args[3];
    for (int64_t n = n0; n < n1; n++) scaled_row(dx + n * In, w, dy[n], In);
}

/* C [M, N] = op(A) op(B), row-major; A is [M, K] (ta: stored [K, M]), B
   [K, N] (tb: stored [N, K]). */
typedef struct {
    bool ta, tb;
    int64_t M, N, K, lda, ldb;
    const float *a, *b;
    float *c;
} Gemm;

/* rows [r0, r1) of C: a GEMM of their own */
static void gemm_rows(void **args, int64_t r0, int64_t r1) {
    const Gemm *g = args[0];
    const float *a = g->ta ? g->a + r0 : g->a + r0 * g->lda;
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, rt_bi(r1 - r0), rt_bi(g->N),
                rt_bi(g->K), 1.0f, a, rt_bi(g->lda), g->b, rt_bi(g->ldb), 0.0f, g->c + r0 * g->N, rt_bi(g->N));
}

/* OpenBLAS runs on one thread inside a step (rt_cli.c), so a linear
   layer's GEMM (the relation head's first layer, the batch's classifier)
   would leave the pool's other threads waiting: its C is split by rows
   over the pool, parts of at least about 2^21 multiply-adds (the split
   depends only on the thread count, like every kernel's). */
static void par_sgemm(Gemm g) {
    int64_t per_row = g.N * g.K, min_rows = per_row >= (1 << 21) ? 1 : (1 << 21) / (per_row ? per_row : 1);
    rt_par_rows(gemm_rows, (void *[]){&g}, g.M, min_rows);
}

void rt_k_linear(float *restrict y, const float *restrict x, const float *restrict w, int64_t N, int64_t In,
                 int64_t O) {
    if (N == 0 || O == 0) return;
    if (In == 0) {
        memset(y, 0, sizeof(float) * (size_t)(N * O));
        return;
    }
    if (O == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, rt_bi(N), rt_bi(In), 1.0f, x, rt_bi(In), w, 1, 0.0f, y, 1);
        return;
    }
    par_sgemm((Gemm){false, true, N, O, In, In, In, x, w, y});
}

void rt_k_linear_dx(float *restrict dx, const float *restrict dy, const float *restrict w, int64_t N,
                    int64_t In, int64_t O) {
    if (N == 0 || In == 0) return;
    if (O == 0) {
        memset(dx, 0, sizeof(float) * (size_t)(N * In));
        return;
    }
    if (O == 1) {   /* an outer product, by rows over the pool */
        rt_par_rows(outer_rows, (void *[]){dx, (void *)dy, (void *)w, &In}, N, In >= 16384 ? 1 : 16384 / In);
        return;
    }
    par_sgemm((Gemm){false, false, N, In, O, O, In, dy, w, dx});
}

void rt_k_linear_dw(float *restrict dw, const float *restrict dy, const float *restrict x, int64_t N,
                    int64_t In, int64_t O) {
    if (O == 0 || In == 0) return;
    if (N == 0) {
        memset(dw, 0, sizeof(float) * (size_t)(O * In));
        return;
    }
    if (O == 1) {
        cblas_sgemv(CblasRowMajor, CblasTrans, rt_bi(N), rt_bi(In), 1.0f, x, rt_bi(In), dy, 1, 0.0f, dw, 1);
        return;
    }
    par_sgemm((Gemm){true, false, O, In, N, O, In, dy, x, dw});
}
