/*
** rt_kernels_rel.c: the relational-reasoning kernels (pairs of views and
** their backward, pair targets, focal and BCE losses); semantics of
** compiler/ir/ops_rel.c.
**
** Pairs: for each k1 < k2 in order, a positive block pairs row i of view k1
** with row i of view k2, then a negative block pairs it with row (i - s)
** mod B of view k2 (torch.roll by s); s starts at 1, grows by one per
** (k1, k2) and goes back to 1 when it reaches B. The blocks are copies of
** whole feature rows, so the kernels are row loops.
**
** The losses work in double per element: P (the number of pairs) is small
** next to the backbone's tensors, and exp/log1p/pow in double keep them as
** close to the reference as the f32 inputs allow.
*/
#include <math.h>
#include <string.h>

#include "rt_kernels.h"
#include "rt_kernels_impl.h"
#include "rt_loss.h"
#include "rt_pool.h"

/* Row of view k2 paired with row i of view k1 in a negative block. */
static int64_t rolled(int64_t i, int64_t s, int64_t B) { return ((i - s) % B + B) % B; }

/* Calls fn(ctx, pair row, row a, row b) for every pair of blocks [blk0,
   blk1), block by block (see the top of this file). Block 2q is the
   positive and 2q + 1 the negative block of the q-th (k1, k2), whose shift
   is 1 + q mod (B - 1). */
typedef void (*pair_row_fn)(void *ctx, int64_t p, int64_t ra, int64_t rb);
static void each_pair_blocks(int64_t K, int64_t B, int64_t blk0, int64_t blk1, pair_row_fn fn, void *ctx) {
    int64_t q = 0;
    for (int64_t k1 = 0; k1 < K; k1++)
        for (int64_t k2 = k1 + 1; k2 < K; k2++, q++) {
            int64_t s = B > 1 ? 1 + q % (B - 1) : 1;
            for (int neg = 0; neg < 2; neg++) {
                int64_t blk = 2 * q + neg;
                if (blk < blk0 || blk >= blk1) continue;
                for (int64_t i = 0; i < B; i++) fn(ctx, blk * B + i, k1 * B + i, k2 * B + (neg ? rolled(i, s, B) : i));
            }
        }
}

static void each_pair(int64_t K, int64_t B, pair_row_fn fn, void *ctx) { each_pair_blocks(K, B, 0, K * (K - 1), fn, ctx); }

static void pair_row(float *restrict o, const float *restrict a, const float *restrict b, int64_t D, int64_t agg) {
    switch (agg) {
    case RT_AGG_CAT:
        memcpy(o, a, sizeof(float) * (size_t)D);
        memcpy(o + D, b, sizeof(float) * (size_t)D);
        break;
    case RT_AGG_SUM:
        RT_VFOR(d, D, o[d] = a[d] + b[d];);
        break;
    case RT_AGG_MEAN:
        /* (a+b)/2 as the reference; halving is exact */
        RT_VFOR(d, D, o[d] = (a[d] + b[d]) * 0.5f;);
        break;
    default:
        RT_VFOR(d, D, float p = a[d], q = b[d]; o[d] = p >= q ? p : q;);
        break;
    }
}

typedef struct { float *out; const float *F, *dP; int64_t D, Wd, agg; } PairsCtx;

static void pairs_row(void *vctx, int64_t p, int64_t ra, int64_t rb) {
    const PairsCtx *c = vctx;
    pair_row(c->out + p * c->Wd, c->F + ra * c->D, c->F + rb * c->D, c->D, c->agg);
}

void rt_k_pairs(float *restrict out, const float *restrict F, int64_t K, int64_t B, int64_t D, int64_t agg) {
    PairsCtx c = {out, F, NULL, D, agg == RT_AGG_CAT ? 2 * D : D, agg};
    each_pair(K, B, pairs_row, &c);
}

/* Accumulates the gradient of one pair row d into rows da (view k1) and db
   (view k2); a and b are the features (max's routing). */
static void pair_row_back(float *restrict da, float *restrict db, const float *restrict d, const float *restrict a,
                          const float *restrict b, int64_t D, int64_t agg) {
    switch (agg) {
    case RT_AGG_CAT:
        RT_VFOR(k, D, da[k] += d[k];);
        RT_VFOR(k, D, db[k] += d[D + k];);
        break;
    case RT_AGG_SUM:
        RT_VFOR(k, D, da[k] += d[k];);
        RT_VFOR(k, D, db[k] += d[k];);
        break;
    case RT_AGG_MEAN:
        RT_VFOR(k, D, da[k] += d[k] * 0.5f;);
        RT_VFOR(k, D, db[k] += d[k] * 0.5f;);
        break;
    default:
        /* torch.maximum: the larger gets it all, a tie splits it in half */
        /* written as masked terms (one of ga, gb, th is nonzero) so it
           vectorises; "neither greater nor less" includes a NaN, which the
           reference also splits */
        RT_VFOR(k, D, float p = a[k], q = b[k], g = d[k], h = g * 0.5f;
                float ga = p > q ? g : 0.0f, gb = p < q ? g : 0.0f, th = (p > q || p < q) ? 0.0f : h;
                da[k] += ga + th; db[k] += gb + th;);
        break;
    }
}

static void pairs_back_row(void *vctx, int64_t p, int64_t ra, int64_t rb) {
    const PairsCtx *c = vctx;   /* out: dF */
    int64_t D = c->D;
    pair_row_back(c->out + ra * D, c->out + rb * D, c->dP + p * c->Wd, c->F + ra * D, c->F + rb * D, D, c->agg);
}

void rt_k_pairs_back(float *restrict dF, const float *restrict dP, const float *restrict F, int64_t K,
                     int64_t B, int64_t D, int64_t agg) {
    memset(dF, 0, sizeof(float) * (size_t)(K * B * D));
    PairsCtx c = {dF, F, dP, D, agg == RT_AGG_CAT ? 2 * D : D, agg};
    each_pair(K, B, pairs_back_row, &c);
}

/* pair_halves and its backward work on whole contiguous rows (restrict
   parameters, so they vectorise), with the per-view products laid out
   [N][2][H] in the step's workspace: the forward deinterleaves X once, then adds two
   rows per pair; the backward adds each pair's row into two rows, then
   interleaves once. */
typedef struct { float *out; const float *in, *bias; int64_t H, K, B, v0, v1; } Halves;

static void add_rows(float *restrict o, const float *restrict a, const float *restrict b, int64_t n) {
    RT_VFOR(h, n, o[h] = a[h] + b[h];);
}

static void add_rows_bias(float *restrict o, const float *restrict a, const float *restrict b,
                          const float *restrict bias, int64_t n) {
    RT_VFOR(h, n, o[h] = (a[h] + b[h]) + bias[h];);
}

static void acc_row(float *restrict o, const float *restrict d, int64_t n) { RT_VFOR(h, n, o[h] += d[h];); }

static void halves_row(void *vctx, int64_t p, int64_t ra, int64_t rb) {
    const Halves *c = vctx;   /* in: the [N][2][H] products */
    int64_t H = c->H;
    if (c->bias) add_rows_bias(c->out + p * H, c->in + ra * 2 * H, c->in + rb * 2 * H + H, c->bias, H);
    else add_rows(c->out + p * H, c->in + ra * 2 * H, c->in + rb * 2 * H + H, H);
}

/* Only the rows of views [v0, v1): a thread owns those rows of the sums,
   and adds into each in pair order as one thread would. */
static void halves_back_row(void *vctx, int64_t p, int64_t ra, int64_t rb) {
    const Halves *c = vctx;   /* in: dY, out: the [N][2][H] sums */
    int64_t H = c->H;
    if (ra >= c->v0 && ra < c->v1) acc_row(c->out + ra * 2 * H, c->in + p * H, H);
    if (rb >= c->v0 && rb < c->v1) acc_row(c->out + rb * 2 * H + H, c->in + p * H, H);
}

static void deinterleave(float *restrict a, float *restrict b, const float *restrict x, int64_t n) {
    RT_VFOR(h, n, a[h] = x[2 * h]; b[h] = x[2 * h + 1];);
}

static void interleave(float *restrict x, const float *restrict a, const float *restrict b, int64_t n) {
    RT_VFOR(h, n, x[2 * h] = a[h]; x[2 * h + 1] = b[h];);
}

/* args: out, X, prod, Halves; rows are views */
static void deinterleave_rows(void **args, int64_t v0, int64_t v1) {
    const float *X = args[1];
    float *prod = args[2];
    int64_t H = ((const Halves *)args[3])->H;
    for (int64_t v = v0; v < v1; v++) deinterleave(prod + v * 2 * H, prod + v * 2 * H + H, X + v * 2 * H, H);
}

/* rows are blocks of B pairs */
static void halves_rows(void **args, int64_t b0, int64_t b1) {
    Halves *c = args[3];
    each_pair_blocks(c->K, c->B, b0, b1, halves_row, c);
}

/* args: dX, dY, sums, Halves; rows are views: each part walks every pair
   but adds only into its views' rows, then interleaves them */
static void halves_back_rows(void **args, int64_t v0, int64_t v1) {
    float *dX = args[0], *sums = args[2];
    Halves c = *(const Halves *)args[3];
    int64_t H = c.H;
    c.v0 = v0, c.v1 = v1;
    memset(sums + v0 * 2 * H, 0, sizeof(float) * (size_t)((v1 - v0) * 2 * H));
    each_pair(c.K, c.B, halves_back_row, &c);
    for (int64_t v = v0; v < v1; v++) interleave(dX + v * 2 * H, sums + v * 2 * H, sums + v * 2 * H + H, H);
}

/* On the pool's threads: the forward by views, then by blocks of pairs;
   the backward by views, each sum made in pair order, so any split gives
   the same result. (Split by column slices instead, both ran slower than
   on one thread: docs/DECISIONS.md.) */
void rt_k_pair_halves(float *restrict out, const float *restrict X, int64_t K, int64_t B, int64_t H, float *prod,
                      const float *bias) {
    int64_t N = K * B;
    Halves c = {out, prod, bias, H, K, B, 0, N};
    void *args[4] = {out, (void *)X, prod, &c};
    rt_par_rows(deinterleave_rows, args, N, 16);
    rt_par_rows(halves_rows, args, K * (K - 1), 2);
}

void rt_k_pair_halves_back(float *restrict dX, const float *restrict dY, int64_t K, int64_t B, int64_t H, float *sums) {
    int64_t N = K * B;
    Halves c = {sums, dY, NULL, H, K, B, 0, N};
    rt_par_rows(halves_back_rows, (void *[]){dX, (void *)dY, sums, &c}, N, 16);
}

void rt_k_pair_targets(float *restrict y, int64_t K, int64_t B) {
    int64_t P = B * K * (K - 1);
    for (int64_t p = 0; p < P; p++) y[p] = (p / B) % 2 == 0 ? 1.0f : 0.0f;
}

/* ---- losses (double per element, rt_loss.h) ---- */

void rt_k_focal_loss(float *restrict out, const float *restrict z, const float *restrict y, int64_t P,
                     float gamma, float alpha) {
    double s = 0;
    for (int64_t i = 0; i < P; i++) s += rt_focal_term((double)z[i], (double)y[i], (double)gamma, (double)alpha);
    out[0] = (float)(s / (double)P);
}

/* args: dz, dl, z, y, then P, gamma, alpha as double; rows are pairs */
static void focal_back_rows(void **args, int64_t i0, int64_t i1) {
    float *dz = args[0];
    const float *dl = args[1], *z = args[2], *y = args[3];
    const double *a = args[4];
    double scale = (double)dl[0] / a[0];
    for (int64_t i = i0; i < i1; i++) dz[i] = (float)rt_focal_grad((double)z[i], (double)y[i], a[1], a[2], scale);
}

/* elementwise: the pool's threads take ranges of pairs */
void rt_k_focal_back(float *restrict dz, const float *restrict dl, const float *restrict z,
                     const float *restrict y, int64_t P, float gamma, float alpha) {
    double a[3] = {(double)P, (double)gamma, (double)alpha};
    rt_par_rows(focal_back_rows, (void *[]){dz, (void *)dl, (void *)z, (void *)y, a}, P, 1024);
}

void rt_k_bce_loss(float *restrict out, const float *restrict z, const float *restrict y, int64_t P) {
    double s = 0;
    for (int64_t i = 0; i < P; i++) s += rt_logit((double)z[i], (double)y[i]).bce;
    out[0] = (float)(s / (double)P);
}

void rt_k_bce_back(float *restrict dz, const float *restrict dl, const float *restrict z,
                   const float *restrict y, int64_t P) {
    double scale = (double)dl[0] / (double)P;
    for (int64_t i = 0; i < P; i++) dz[i] = (float)rt_bce_grad((double)z[i], (double)y[i], scale);
}
