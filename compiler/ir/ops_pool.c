/*
** ops_pool.c: average, max and global average pooling and their backward
** ops, with PyTorch's semantics: floor output size, average pooling counts
** the zero padding (count_include_pad=True), max pooling pads with -inf and
** sends the gradient to the first maximum of a window in row-major order
** (ties go to the earliest element, as PyTorch's CPU kernel does).
*/
#include "ir/ops_impl.h"

static bool pool_shape(Node *n, const Node *x, const char *op, char *err, size_t errlen) {
    int64_t k = n->ia[0], s = n->ia[1], p = n->ia[2];
    if (x->rank != 4) SHAPE_FAIL("%s: input must be [N,C,H,W] (got %s)", op, shp(x));
    if (k < 1 || s < 1 || p < 0) SHAPE_FAIL("%s: kernel and stride must be >= 1, padding >= 0", op);
    if (2 * p > k) SHAPE_FAIL("%s: padding %lld is more than half the kernel %lld", op, (long long)p, (long long)k);
    if (x->dim[2] + 2 * p < k || x->dim[3] + 2 * p < k)
        SHAPE_FAIL("%s: kernel %lld is larger than the padded input %s", op, (long long)k, shp(x));
    set_shape4(n, x->dim[0], x->dim[1], (x->dim[2] + 2 * p - k) / s + 1, (x->dim[3] + 2 * p - k) / s + 1);
    return true;
}

/* ---- avgpool2d; ia = k, stride, pad ---- */

bool shape_avgpool2d(Node *n, char *err, size_t errlen) { return pool_shape(n, n->in[0], "avgpool2d", err, errlen); }

void fwd_avgpool2d(const Node *n, const double *const *in, double *out) {
    const Node *x = n->in[0];
    int64_t NC = x->dim[0] * x->dim[1], H = x->dim[2], W = x->dim[3], OH = n->dim[2], OW = n->dim[3];
    int64_t K = n->ia[0], S = n->ia[1], P = n->ia[2];
    for (int64_t c = 0; c < NC; c++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                double s = 0;
                for (int64_t kh = 0; kh < K; kh++)
                    for (int64_t kw = 0; kw < K; kw++) {
                        int64_t ih = oh * S - P + kh, iw = ow * S - P + kw;
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W) s += in[0][(c * H + ih) * W + iw];
                    }
                out[(c * OH + oh) * OW + ow] = s / (double)(K * K);
            }
}

Cost cost_avgpool2d(const Node *n) { return (Cost){(double)(node_numel(n) * n->ia[0] * n->ia[0]), 4.0 * (double)(node_numel(n) + node_numel(n->in[0]))}; }

void bwd_avgpool2d(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_avgpool2d_back(g, dy, n->in[0], (int)n->ia[0], (int)n->ia[1], (int)n->ia[2]);
}

/* avgpool2d_back: ia = k, stride, pad, H, W */
bool shape_avgpool2d_back(Node *n, char *err, size_t errlen) {
    const Node *dy = n->in[0];
    int64_t k = n->ia[0], s = n->ia[1], p = n->ia[2], H = n->ia[3], W = n->ia[4];
    if (dy->rank != 4 || (H + 2 * p - k) / s + 1 != dy->dim[2] || (W + 2 * p - k) / s + 1 != dy->dim[3])
        SHAPE_FAIL("avgpool2d_back: dy %s does not come from a %lldx%lld input", shp(dy), (long long)H, (long long)W);
    set_shape4(n, dy->dim[0], dy->dim[1], H, W);
    return true;
}

void fwd_avgpool2d_back(const Node *n, const double *const *in, double *out) {
    const Node *dy = n->in[0];
    int64_t NC = n->dim[0] * n->dim[1], H = n->dim[2], W = n->dim[3], OH = dy->dim[2], OW = dy->dim[3];
    int64_t K = n->ia[0], S = n->ia[1], P = n->ia[2];
    memset(out, 0, sizeof(double) * (size_t)node_numel(n));
    for (int64_t c = 0; c < NC; c++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                double d = in[0][(c * OH + oh) * OW + ow] / (double)(K * K);
                for (int64_t kh = 0; kh < K; kh++)
                    for (int64_t kw = 0; kw < K; kw++) {
                        int64_t ih = oh * S - P + kh, iw = ow * S - P + kw;
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W) out[(c * H + ih) * W + iw] += d;
                    }
            }
}

Cost cost_avgpool2d_back(const Node *n) { return (Cost){(double)(node_numel(n->in[0]) * n->ia[0] * n->ia[0]), 4.0 * (double)(node_numel(n) + node_numel(n->in[0]))}; }

/* ---- maxpool2d; ia = k, stride, pad ---- */

bool shape_maxpool2d(Node *n, char *err, size_t errlen) { return pool_shape(n, n->in[0], "maxpool2d", err, errlen); }

/* Index (within the image plane) of the first maximum of window (oh, ow). */
static int64_t max_index(const double *plane, int64_t H, int64_t W, int64_t K, int64_t S, int64_t P, int64_t oh, int64_t ow) {
    int64_t ih0 = oh * S - P, iw0 = ow * S - P;
    int64_t best = -1;
    double bv = -INFINITY;
    for (int64_t ih = ih0; ih < ih0 + K; ih++) {
        if (ih < 0 || ih >= H) continue;
        for (int64_t iw = iw0; iw < iw0 + K; iw++) {
            if (iw < 0 || iw >= W) continue;
            double v = plane[ih * W + iw];
            if (best < 0) best = ih * W + iw;   /* PyTorch starts at the first element inside */
            if (v > bv || isnan(v)) {
                best = ih * W + iw;
                bv = v;
            }
        }
    }
    return best;
}

void fwd_maxpool2d(const Node *n, const double *const *in, double *out) {
    const Node *x = n->in[0];
    int64_t NC = x->dim[0] * x->dim[1], H = x->dim[2], W = x->dim[3], OH = n->dim[2], OW = n->dim[3];
    for (int64_t c = 0; c < NC; c++) {
        const double *plane = in[0] + c * H * W;
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++)
                out[(c * OH + oh) * OW + ow] = plane[max_index(plane, H, W, n->ia[0], n->ia[1], n->ia[2], oh, ow)];
    }
}

Cost cost_maxpool2d(const Node *n) { return cost_avgpool2d(n); }

void bwd_maxpool2d(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_maxpool2d_back(g, dy, n->in[0], (int)n->ia[0], (int)n->ia[1], (int)n->ia[2]);
}

/* maxpool2d_back(dy, x): ia = k, stride, pad */
bool shape_maxpool2d_back(Node *n, char *err, size_t errlen) {
    Node tmp = *n;
    tmp.nin = 1;
    tmp.in[0] = n->in[1];
    if (!pool_shape(&tmp, n->in[1], "maxpool2d_back", err, errlen)) return false;
    if (!same_shape(&tmp, n->in[0])) SHAPE_FAIL("maxpool2d_back: dy %s does not match x %s", shp(n->in[0]), shp(n->in[1]));
    set_shape(n, 4, n->in[1]->dim);
    return true;
}

void fwd_maxpool2d_back(const Node *n, const double *const *in, double *out) {
    const Node *dy = n->in[0];
    int64_t NC = n->dim[0] * n->dim[1], H = n->dim[2], W = n->dim[3], OH = dy->dim[2], OW = dy->dim[3];
    memset(out, 0, sizeof(double) * (size_t)node_numel(n));
    for (int64_t c = 0; c < NC; c++) {
        const double *plane = in[1] + c * H * W;
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++)
                out[c * H * W + max_index(plane, H, W, n->ia[0], n->ia[1], n->ia[2], oh, ow)] +=
                    in[0][(c * OH + oh) * OW + ow];
    }
}

Cost cost_maxpool2d_back(const Node *n) { return (Cost){(double)(node_numel(n->in[0]) * n->ia[0] * n->ia[0]), 4.0 * (double)(2 * node_numel(n) + node_numel(n->in[0]))}; }

/* ---- global_avgpool: [N,C,H,W] -> [N,C] ---- */

bool shape_global_avgpool(Node *n, char *err, size_t errlen) {
    const Node *x = n->in[0];
    if (x->rank != 4) SHAPE_FAIL("global_avgpool: input must be [N,C,H,W] (got %s)", shp(x));
    set_shape2(n, x->dim[0], x->dim[1]);
    return true;
}

void fwd_global_avgpool(const Node *n, const double *const *in, double *out) {
    int64_t NC = n->dim[0] * n->dim[1], S = spatial(n->in[0]);
    for (int64_t c = 0; c < NC; c++) {
        double s = 0;
        for (int64_t k = 0; k < S; k++) s += in[0][c * S + k];
        out[c] = s / (double)S;
    }
}

Cost cost_global_avgpool(const Node *n) { return (Cost){(double)node_numel(n->in[0]), 4.0 * (double)(node_numel(n) + node_numel(n->in[0]))}; }

void bwd_global_avgpool(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_global_avgpool_back(g, dy, n->in[0]->dim[2], n->in[0]->dim[3]);
}

/* global_avgpool_back: ia = H, W */
bool shape_global_avgpool_back(Node *n, char *err, size_t errlen) {
    const Node *dy = n->in[0];
    if (dy->rank != 2 || n->ia[0] < 1 || n->ia[1] < 1) SHAPE_FAIL("global_avgpool_back: bad dy %s", shp(dy));
    set_shape4(n, dy->dim[0], dy->dim[1], n->ia[0], n->ia[1]);
    return true;
}

void fwd_global_avgpool_back(const Node *n, const double *const *in, double *out) {
    int64_t NC = n->dim[0] * n->dim[1], S = n->dim[2] * n->dim[3];
    for (int64_t c = 0; c < NC; c++)
        for (int64_t k = 0; k < S; k++) out[c * S + k] = in[0][c] / (double)S;
}

Cost cost_global_avgpool_back(const Node *n) { return (Cost){(double)node_numel(n), 4.0 * (double)(node_numel(n) + node_numel(n->in[0]))}; }

/* ---- builders ---- */

static Node *pool(Graph *g, OpKind op, Node *x, int k, int s, int pad) {
    int64_t ia[] = {k, s, pad};
    return ir_make(g, op, &x, 1, ia, 3, NULL, 0);
}

Node *ir_avgpool2d(Graph *g, Node *x, int k, int s, int pad) { return pool(g, OP_AVGPOOL2D, x, k, s, pad); }
Node *ir_maxpool2d(Graph *g, Node *x, int k, int s, int pad) { return pool(g, OP_MAXPOOL2D, x, k, s, pad); }

Node *ir_avgpool2d_back(Graph *g, Node *dy, const Node *x, int k, int s, int pad) {
    int64_t ia[] = {k, s, pad, x->dim[2], x->dim[3]};
    return ir_make(g, OP_AVGPOOL2D_BACK, &dy, 1, ia, 5, NULL, 0);
}

Node *ir_maxpool2d_back(Graph *g, Node *dy, Node *x, int k, int s, int pad) {
    Node *in[] = {dy, x};
    int64_t ia[] = {k, s, pad};
    return ir_make(g, OP_MAXPOOL2D_BACK, in, 2, ia, 3, NULL, 0);
}

Node *ir_global_avgpool(Graph *g, Node *x) { return ir_make(g, OP_GLOBAL_AVGPOOL, &x, 1, NULL, 0, NULL, 0); }

Node *ir_global_avgpool_back(Graph *g, Node *dy, int64_t h, int64_t w) {
    int64_t ia[] = {h, w};
    return ir_make(g, OP_GLOBAL_AVGPOOL_BACK, &dy, 1, ia, 2, NULL, 0);
}
