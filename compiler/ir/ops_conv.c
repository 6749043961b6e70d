/*
** ops_conv.c: convolution and matrix products (forward, dX, dW).
** Layouts follow PyTorch: x [N,C,H,W], conv weight [O,C,KH,KW], linear
** weight [O,I] (y = x W^T). The reference kernels are plain loops in
** double: readable first, they are the oracle.
*/
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

void fwd_conv2d(const Node *n, const double *const *in, double *out) {
    const Node *x = n->in[0], *w = n->in[1];
    int64_t N = x->dim[0], C = x->dim[1], H = x->dim[2], W = x->dim[3];
    int64_t O = w->dim[0], KH = w->dim[2], KW = w->dim[3];
    int64_t OH = n->dim[2], OW = n->dim[3], S = n->ia[0], P = n->ia[1];
    const double *X = in[0], *Wt = in[1];
    /* Every output sums its terms in (c, kh, kw) order from 0, skipping the
       padding: the loops run that order outermost and the output positions
       innermost (one weight against a row of inputs, no test per term),
       which adds the same terms in the same order as a per-output loop, so
       the values are the same bits, only computed without a branch in the
       innermost loop (rrc check evaluates the forward thousands of times). */
    for (int64_t b = 0; b < N; b++)
        for (int64_t o = 0; o < O; o++) {
            double *y = out + (b * O + o) * OH * OW;
            memset(y, 0, sizeof(double) * (size_t)(OH * OW));
            for (int64_t c = 0; c < C; c++)
                for (int64_t kh = 0; kh < KH; kh++)
                    for (int64_t kw = 0; kw < KW; kw++) {
                        double wv = Wt[((o * C + c) * KH + kh) * KW + kw];
                        /* the output columns whose input column ow*S - P + kw is inside */
                        int64_t lo = P - kw > 0 ? (P - kw + S - 1) / S : 0, hi = (W - 1 + P - kw) / S + 1;
                        if (W - 1 + P - kw < 0) hi = 0;
                        if (hi > OW) hi = OW;
                        for (int64_t oh = 0; oh < OH; oh++) {
                            int64_t ih = oh * S - P + kh;
                            if (ih < 0 || ih >= H) continue;
                            const double *xr = X + ((b * C + c) * H + ih) * W;
                            double *yr = y + oh * OW;
                            for (int64_t ow = lo; ow < hi; ow++) yr[ow] += xr[ow * S - P + kw] * wv;
                        }
                    }
        }
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

void fwd_conv2d_dx(const Node *n, const double *const *in, double *out) {
    const Node *dy = n->in[0], *w = n->in[1];
    int64_t N = n->dim[0], C = n->dim[1], H = n->dim[2], W = n->dim[3];
    int64_t O = w->dim[0], KH = w->dim[2], KW = w->dim[3];
    int64_t OH = dy->dim[2], OW = dy->dim[3], S = n->ia[0], P = n->ia[1];
    const double *DY = in[0], *Wt = in[1];
    memset(out, 0, sizeof(double) * (size_t)node_numel(n));
    for (int64_t b = 0; b < N; b++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double d = DY[((b * O + o) * OH + oh) * OW + ow];
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t kh = 0; kh < KH; kh++) {
                            int64_t ih = oh * S - P + kh;
                            if (ih < 0 || ih >= H) continue;
                            for (int64_t kw = 0; kw < KW; kw++) {
                                int64_t iw = ow * S - P + kw;
                                if (iw < 0 || iw >= W) continue;
                                out[((b * C + c) * H + ih) * W + iw] += d * Wt[((o * C + c) * KH + kh) * KW + kw];
                            }
                        }
                }
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

void fwd_conv2d_dw(const Node *n, const double *const *in, double *out) {
    const Node *dy = n->in[0], *x = n->in[1];
    int64_t N = x->dim[0], C = x->dim[1], H = x->dim[2], W = x->dim[3];
    int64_t O = n->dim[0], KH = n->dim[2], KW = n->dim[3];
    int64_t OH = dy->dim[2], OW = dy->dim[3], S = n->ia[0], P = n->ia[1];
    const double *DY = in[0], *X = in[1];
    for (int64_t o = 0; o < O; o++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t kh = 0; kh < KH; kh++)
                for (int64_t kw = 0; kw < KW; kw++) {
                    double s = 0;
                    for (int64_t b = 0; b < N; b++)
                        for (int64_t oh = 0; oh < OH; oh++) {
                            int64_t ih = oh * S - P + kh;
                            if (ih < 0 || ih >= H) continue;
                            for (int64_t ow = 0; ow < OW; ow++) {
                                int64_t iw = ow * S - P + kw;
                                if (iw < 0 || iw >= W) continue;
                                s += DY[((b * O + o) * OH + oh) * OW + ow] * X[((b * C + c) * H + ih) * W + iw];
                            }
                        }
                    out[((o * C + c) * KH + kh) * KW + kw] = s;
                }
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
