/*
** ops_conv.c: convolution and matrix products (forward, dX, dW).
** Layouts follow PyTorch: x [N,C,H,W], conv weight [O,C,KH,KW], linear
** weight [O,I] (y = x W^T). The reference kernels are plain loops in
** double: readable first, they are the oracle.
*/
#include <stdlib.h>

#include "ir/ops_impl.h"

static int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t p) { return (in + 2 * p - k) / s + 1; }

/* ---- conv2d ---- */

bool shape_conv2d(Node *n, char *err, size_t errlen) {
    const Node *x = n->in[0], *w = n->in[1];
    int64_t s = n->ia[0], p = n->ia[1];
    if (x->rank != 4) SHAPE_FAIL("conv2d: input must be [N,C,H,W] (got %s)", shp(x));
    if (w->rank != 4) SHAPE_FAIL("conv2d: weight must be [O,C,KH,KW] (got %s)", shp(w));
    if (s < 1 || p < 0) SHAPE_FAIL("conv2d: stride must be >= 1 and padding >= 0");
    if (x->dim[1] != w->dim[1])
        SHAPE_FAIL("conv2d: input has %lld channels but the weight expects %lld (input %s)",
                   (long long)x->dim[1], (long long)w->dim[1], shp(x));
    if (x->dim[2] + 2 * p < w->dim[2] || x->dim[3] + 2 * p < w->dim[3])
        SHAPE_FAIL("conv2d: kernel %lldx%lld is larger than the padded input %s",
                   (long long)w->dim[2], (long long)w->dim[3], shp(x));
    set_shape4(n, x->dim[0], w->dim[0], conv_out(x->dim[2], w->dim[2], s, p),
               conv_out(x->dim[3], w->dim[3], s, p));
    return true;
}

/* Gathers the inputs x a block of output positions [p0, p0 + np) reads as
   rows: value (q, k), k = (c, kh, kw), at col[q * sq + k * sk], zero where
   the kernel reads padding; or, x NULL, adds such rows into dx where they
   were read from. */
static void conv_block_rows(const double *x, double *dx, double *col, int64_t sq, int64_t sk, int64_t p0, int64_t np,
                            int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t OH, int64_t OW, int64_t S,
                            int64_t P) {
    for (int64_t q = 0; q < np; q++) {
        int64_t p = p0 + q, b = p / (OH * OW), oh = p / OW % OH, ow = p % OW;
        for (int64_t c = 0; c < C; c++)
            for (int64_t kh = 0; kh < KH; kh++) {
                int64_t ih = oh * S - P + kh;
                for (int64_t kw = 0; kw < KW; kw++) {
                    int64_t iw = ow * S - P + kw, k = (c * KH + kh) * KW + kw;
                    bool in_plane = ih >= 0 && ih < H && iw >= 0 && iw < W;
                    int64_t at = ((b * C + c) * H + ih) * W + iw;
                    double *v = col + q * sq + k * sk;
                    if (!x) {
                        if (in_plane) dx[at] += *v;
                    } else {
                        *v = in_plane ? x[at] : 0.0;
                    }
                }
            }
    }
}

RRC_HOT_KERNEL void fwd_conv2d(const Node *n, const double *const *in, double *out) {
    const Node *x = n->in[0], *w = n->in[1];
    int64_t N = x->dim[0], C = x->dim[1], H = x->dim[2], W = x->dim[3];
    int64_t O = w->dim[0], KH = w->dim[2], KW = w->dim[3];
    int64_t OH = n->dim[2], OW = n->dim[3], S = n->ia[0], P = n->ia[1];
    const double *X = in[0], *Wt = in[1];
    int64_t K = C * KH * KW, NP = N * OH * OW;
    /* Every output sums its terms in (c, kh, kw) order from 0. The output
       positions of the whole batch are taken in blocks: a block's inputs
       are gathered as rows col[k][p], k = (c, kh, kw), zero where the
       kernel reads padding, and each weight W[o][k] in its own order is
       added times a row into the block's sums. The innermost loop then runs
       over positions, contiguous and free of tests however small the plane
       (ResNet-34's last stage is 1x1 at 32x32) and without transposing the
       weights; a row of zeros (padding) is skipped. A zero term changes no
       sum, so the sums are those of a per-output loop that skips the
       padding, bit for bit. rrc check evaluates the forward thousands of
       times. */
    enum { PB = 64, OB = 4 };
    double *col = xmalloc((size_t)(K * PB) * sizeof *col), acc[OB][PB];
    int64_t *live = xmalloc((size_t)K * sizeof *live);
    for (int64_t p0 = 0; p0 < NP; p0 += PB) {
        int64_t np = NP - p0 < PB ? NP - p0 : PB, nlive = 0;
        conv_block_rows(X, NULL, col, 1, np, p0, np, C, H, W, KH, KW, OH, OW, S, P);
        for (int64_t k = 0; k < K; k++) {
            bool any = false;
            for (int64_t q = 0; q < np; q++) any |= col[k * np + q] != 0;
            if (any) live[nlive++] = k;
        }
        /* OB output channels at a time, so that a row read from memory
           serves several */
        for (int64_t o0 = 0; o0 < O; o0 += OB) {
            int64_t no = O - o0 < OB ? O - o0 : OB;
            memset(acc, 0, sizeof acc);
            for (int64_t l = 0; l < nlive; l++) {
                int64_t k = live[l];
                const double *restrict row = col + k * np;
                if (no == OB) {
                    double w0 = Wt[o0 * K + k], w1 = Wt[(o0 + 1) * K + k], w2 = Wt[(o0 + 2) * K + k],
                           w3 = Wt[(o0 + 3) * K + k];
                    for (int64_t q = 0; q < np; q++) {
                        double r = row[q];
                        acc[0][q] += w0 * r;
                        acc[1][q] += w1 * r;
                        acc[2][q] += w2 * r;
                        acc[3][q] += w3 * r;
                    }
                } else {
                    for (int64_t i = 0; i < no; i++) {
                        double wv = Wt[(o0 + i) * K + k];
                        for (int64_t q = 0; q < np; q++) acc[i][q] += wv * row[q];
                    }
                }
            }
            for (int64_t i = 0; i < no; i++)
                for (int64_t q = 0; q < np; q++) {
                    int64_t p = p0 + q, b = p / (OH * OW), r = p % (OH * OW);
                    out[(b * O + o0 + i) * OH * OW + r] = acc[i][q];
                }
        }
    }
    free(col);
    free(live);
}

Cost cost_conv2d(const Node *n) {
    const Node *w = n->in[1];
    double macs = (double)node_numel(n) * (double)(w->dim[1] * w->dim[2] * w->dim[3]);
    return (Cost){2 * macs, 4.0 * (double)(node_numel(n->in[0]) + node_numel(w) + node_numel(n))};
}

void bwd_conv2d(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    Node *x = n->in[0], *w = n->in[1];
    if (need & 1) dx[0] = ir_conv2d_dx(g, dy, w, (int)n->ia[0], (int)n->ia[1], x->dim[2], x->dim[3]);
    if (need & 2) dx[1] = ir_conv2d_dw(g, dy, x, (int)n->ia[0], (int)n->ia[1], w->dim[2], w->dim[3]);
}

/* ---- conv2d_dx: gradient of the input; ia = stride, pad, H, W ---- */

bool shape_conv2d_dx(Node *n, char *err, size_t errlen) {
    const Node *dy = n->in[0], *w = n->in[1];
    if (dy->rank != 4 || w->rank != 4 || dy->dim[1] != w->dim[0])
        SHAPE_FAIL("conv2d_dx: dy %s does not match weight %s", shp(dy), shp(w));
    if (conv_out(n->ia[2], w->dim[2], n->ia[0], n->ia[1]) != dy->dim[2] ||
        conv_out(n->ia[3], w->dim[3], n->ia[0], n->ia[1]) != dy->dim[3])
        SHAPE_FAIL("conv2d_dx: input size %lldx%lld does not give dy %s", (long long)n->ia[2],
                   (long long)n->ia[3], shp(dy));
    set_shape4(n, dy->dim[0], w->dim[1], n->ia[2], n->ia[3]);
    return true;
}

enum { CONV_PB = 16 };   /* output positions per block of the gradients */

/* The gradient of a block of positions' input rows, sum over o of
   dy[o][q] W[o][:], then added where the rows were read from: the
   innermost loops run over a weight row, contiguous. */
RRC_HOT_KERNEL void fwd_conv2d_dx(const Node *n, const double *const *in, double *out) {
    const Node *dy = n->in[0], *w = n->in[1];
    int64_t N = n->dim[0], C = n->dim[1], H = n->dim[2], W = n->dim[3];
    int64_t O = w->dim[0], KH = w->dim[2], KW = w->dim[3];
    int64_t OH = dy->dim[2], OW = dy->dim[3], S = n->ia[0], P = n->ia[1];
    int64_t K = C * KH * KW, NP = N * OH * OW;
    const double *DY = in[0], *Wt = in[1];
    memset(out, 0, sizeof(double) * (size_t)node_numel(n));
    double *colT = xmalloc((size_t)(CONV_PB * K) * sizeof *colT);
    for (int64_t p0 = 0; p0 < NP; p0 += CONV_PB) {
        int64_t np = NP - p0 < CONV_PB ? NP - p0 : CONV_PB;
        memset(colT, 0, sizeof(double) * (size_t)(np * K));
        for (int64_t q = 0; q < np; q++) {
            int64_t p = p0 + q, b = p / (OH * OW), r = p % (OH * OW);
            double *restrict row = colT + q * K;
            for (int64_t o = 0; o < O; o++) {
                double d = DY[(b * O + o) * OH * OW + r];
                const double *restrict wr = Wt + o * K;
                for (int64_t k = 0; k < K; k++) row[k] += d * wr[k];
            }
        }
        conv_block_rows(NULL, out, colT, K, 1, p0, np, C, H, W, KH, KW, OH, OW, S, P);
    }
    free(colT);
}

Cost cost_conv2d_dx(const Node *n) {
    const Node *dy = n->in[0], *w = n->in[1];
    double macs = (double)node_numel(dy) * (double)(w->dim[1] * w->dim[2] * w->dim[3]);
    return (Cost){2 * macs, 4.0 * (double)(node_numel(dy) + node_numel(w) + node_numel(n))};
}

/* ---- conv2d_dw: gradient of the weight; ia = stride, pad, KH, KW ---- */

bool shape_conv2d_dw(Node *n, char *err, size_t errlen) {
    const Node *dy = n->in[0], *x = n->in[1];
    if (dy->rank != 4 || x->rank != 4 || dy->dim[0] != x->dim[0] ||
        conv_out(x->dim[2], n->ia[2], n->ia[0], n->ia[1]) != dy->dim[2] ||
        conv_out(x->dim[3], n->ia[3], n->ia[0], n->ia[1]) != dy->dim[3])
        SHAPE_FAIL("conv2d_dw: dy %s does not match input %s", shp(dy), shp(x));
    set_shape4(n, dy->dim[1], x->dim[1], n->ia[2], n->ia[3]);
    return true;
}

/* Each weight's gradient sums dy times input over the positions in order
   (as a per-weight loop does, padding adding nothing): position by
   position, dy[o] times the position's input row added into W's row o, the
   innermost loop contiguous. */
RRC_HOT_KERNEL void fwd_conv2d_dw(const Node *n, const double *const *in, double *out) {
    const Node *dy = n->in[0], *x = n->in[1];
    int64_t N = x->dim[0], C = x->dim[1], H = x->dim[2], W = x->dim[3];
    int64_t O = n->dim[0], KH = n->dim[2], KW = n->dim[3];
    int64_t OH = dy->dim[2], OW = dy->dim[3], S = n->ia[0], P = n->ia[1];
    int64_t K = C * KH * KW, NP = N * OH * OW;
    const double *DY = in[0];
    memset(out, 0, sizeof(double) * (size_t)node_numel(n));
    double *colT = xmalloc((size_t)(CONV_PB * K) * sizeof *colT);
    for (int64_t p0 = 0; p0 < NP; p0 += CONV_PB) {
        int64_t np = NP - p0 < CONV_PB ? NP - p0 : CONV_PB;
        conv_block_rows(in[1], NULL, colT, K, 1, p0, np, C, H, W, KH, KW, OH, OW, S, P);
        for (int64_t o = 0; o < O; o++) {
            double *restrict wr = out + o * K;
            for (int64_t q = 0; q < np; q++) {
                int64_t p = p0 + q, b = p / (OH * OW), r = p % (OH * OW);
                double d = DY[(b * O + o) * OH * OW + r];
                const double *restrict row = colT + q * K;
                for (int64_t k = 0; k < K; k++) wr[k] += d * row[k];
            }
        }
    }
    free(colT);
}

Cost cost_conv2d_dw(const Node *n) {
    double macs = (double)node_numel(n->in[0]) * (double)(n->dim[1] * n->dim[2] * n->dim[3]);
    return (Cost){2 * macs, 4.0 * (double)(node_numel(n->in[0]) + node_numel(n->in[1]) + node_numel(n))};
}

/* ---- linear: y[N,O] = x[N,I] W[O,I]^T ---- */

bool shape_linear(Node *n, char *err, size_t errlen) {
    const Node *x = n->in[0], *w = n->in[1];
    if (x->rank != 2) SHAPE_FAIL("linear: input must be [N,features] (got %s); add flatten or global_avgpool first", shp(x));
    if (w->rank != 2 || w->dim[1] != x->dim[1])
        SHAPE_FAIL("linear: input has %lld features but the weight expects %lld", (long long)x->dim[1],
                   (long long)w->dim[1]);
    set_shape2(n, x->dim[0], w->dim[0]);
    return true;
}

void fwd_linear(const Node *n, const double *const *in, double *out) {
    int64_t N = n->dim[0], O = n->dim[1], I = n->in[0]->dim[1];
    for (int64_t r = 0; r < N; r++)
        for (int64_t o = 0; o < O; o++) {
            double s = 0;
            for (int64_t i = 0; i < I; i++) s += in[0][r * I + i] * in[1][o * I + i];
            out[r * O + o] = s;
        }
}

Cost cost_linear(const Node *n) {
    double macs = (double)node_numel(n) * (double)n->in[0]->dim[1];
    return (Cost){2 * macs, 4.0 * (double)(node_numel(n->in[0]) + node_numel(n->in[1]) + node_numel(n))};
}

void bwd_linear(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_linear_dx(g, dy, n->in[1]);
    if (need & 2) dx[1] = ir_linear_dw(g, dy, n->in[0]);
}

/* linear_dx: dx[N,I] = dy[N,O] W[O,I] */
bool shape_linear_dx(Node *n, char *err, size_t errlen) {
    const Node *dy = n->in[0], *w = n->in[1];
    if (dy->rank != 2 || w->rank != 2 || dy->dim[1] != w->dim[0])
        SHAPE_FAIL("linear_dx: dy %s does not match weight %s", shp(dy), shp(w));
    set_shape2(n, dy->dim[0], w->dim[1]);
    return true;
}

void fwd_linear_dx(const Node *n, const double *const *in, double *out) {
    int64_t N = n->dim[0], I = n->dim[1], O = n->in[1]->dim[0];
    for (int64_t r = 0; r < N; r++)
        for (int64_t i = 0; i < I; i++) {
            double s = 0;
            for (int64_t o = 0; o < O; o++) s += in[0][r * O + o] * in[1][o * I + i];
            out[r * I + i] = s;
        }
}

Cost cost_linear_dx(const Node *n) {
    double macs = (double)node_numel(n) * (double)n->in[1]->dim[0];
    return (Cost){2 * macs, 4.0 * (double)(node_numel(n->in[0]) + node_numel(n->in[1]) + node_numel(n))};
}

/* linear_dw: dW[O,I] = dy[N,O]^T x[N,I] */
bool shape_linear_dw(Node *n, char *err, size_t errlen) {
    const Node *dy = n->in[0], *x = n->in[1];
    if (dy->rank != 2 || x->rank != 2 || dy->dim[0] != x->dim[0])
        SHAPE_FAIL("linear_dw: dy %s does not match input %s", shp(dy), shp(x));
    set_shape2(n, dy->dim[1], x->dim[1]);
    return true;
}

void fwd_linear_dw(const Node *n, const double *const *in, double *out) {
    int64_t O = n->dim[0], I = n->dim[1], N = n->in[0]->dim[0];
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++) {
            double s = 0;
            for (int64_t r = 0; r < N; r++) s += in[0][r * O + o] * in[1][r * I + i];
            out[o * I + i] = s;
        }
}

Cost cost_linear_dw(const Node *n) {
    double macs = (double)node_numel(n) * (double)n->in[0]->dim[0];
    return (Cost){2 * macs, 4.0 * (double)(node_numel(n->in[0]) + node_numel(n->in[1]) + node_numel(n))};
}

/* ---- builders ---- */

Node *ir_conv2d(Graph *g, Node *x, Node *w, int stride, int pad) {
    Node *in[] = {x, w};
    int64_t ia[] = {stride, pad};
    return ir_make(g, OP_CONV2D, in, 2, ia, 2, NULL, 0);
}

Node *ir_conv2d_dx(Graph *g, Node *dy, Node *w, int stride, int pad, int64_t h, int64_t w_) {
    Node *in[] = {dy, w};
    int64_t ia[] = {stride, pad, h, w_};
    return ir_make(g, OP_CONV2D_DX, in, 2, ia, 4, NULL, 0);
}

Node *ir_conv2d_dw(Graph *g, Node *dy, Node *x, int stride, int pad, int64_t kh, int64_t kw) {
    Node *in[] = {dy, x};
    int64_t ia[] = {stride, pad, kh, kw};
    return ir_make(g, OP_CONV2D_DW, in, 2, ia, 4, NULL, 0);
}

Node *ir_linear(Graph *g, Node *x, Node *w) {
    Node *in[] = {x, w};
    return ir_make(g, OP_LINEAR, in, 2, NULL, 0, NULL, 0);
}

Node *ir_linear_dx(Graph *g, Node *dy, Node *w) {
    Node *in[] = {dy, w};
    return ir_make(g, OP_LINEAR_DX, in, 2, NULL, 0, NULL, 0);
}

Node *ir_linear_dw(Graph *g, Node *dy, Node *x) {
    Node *in[] = {dy, x};
    return ir_make(g, OP_LINEAR_DW, in, 2, NULL, 0, NULL, 0);
}
