/*
** ops_elem.c: leaves, constants and the elementwise / broadcast ops
** (bias, ReLU, leaky ReLU, residual add, reshape) with their backward ops.
*/
#include "ir/ops_impl.h"

/* ---- leaves: their shape is set when they are made; no kernel ---- */

#define LEAF_OP(name)                                                                  \
    bool shape_##name(Node *n, char *err, size_t errlen) {                             \
        (void)err; (void)errlen;                                                       \
        return n->rank >= 0;                                                           \
    }                                                                                  \
    void fwd_##name(const Node *n, const double *const *in, double *out) {             \
        (void)in; (void)out;                                                           \
        RRC_ABORT("leaf %%%d (%s) has no kernel: it must be bound", n->id, #name);     \
    }                                                                                  \
    Cost cost_##name(const Node *n) { (void)n; return (Cost){0, 0}; }
LEAF_OP(input)
LEAF_OP(param)
LEAF_OP(state)

/* ---- fill: a constant tensor; ia = rank, dims; fa = value ---- */

bool shape_fill(Node *n, char *err, size_t errlen) {
    if (n->ia[0] < 0 || n->ia[0] > IR_MAX_RANK) SHAPE_FAIL("fill: bad rank %lld", (long long)n->ia[0]);
    set_shape(n, (int)n->ia[0], &n->ia[1]);
    return true;
}

void fwd_fill(const Node *n, const double *const *in, double *out) {
    (void)in;
    for (int64_t i = 0, e = node_numel(n); i < e; i++) out[i] = n->fa[0];
}

Cost cost_fill(const Node *n) { return (Cost){0, 4.0 * (double)node_numel(n)}; }

/* ---- bias_add: y[n,c,...] = x[n,c,...] + b[c] ---- */

bool shape_bias_add(Node *n, char *err, size_t errlen) {
    const Node *x = n->in[0], *b = n->in[1];
    if (x->rank < 2) SHAPE_FAIL("bias_add: input must have a channel axis (got %s)", shp(x));
    if (b->rank != 1 || b->dim[0] != x->dim[1])
        SHAPE_FAIL("bias_add: bias %s does not match %lld channels", shp(b), (long long)x->dim[1]);
    set_shape(n, x->rank, x->dim);
    return true;
}

void fwd_bias_add(const Node *n, const double *const *in, double *out) {
    int64_t N = n->dim[0], C = n->dim[1], S = spatial(n);
    for (int64_t b = 0; b < N; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t s = 0; s < S; s++) out[(b * C + c) * S + s] = in[0][(b * C + c) * S + s] + in[1][c];
}

Cost cost_bias_add(const Node *n) { return cost_elementwise(n, 1); }

void bwd_bias_add(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    (void)n;
    if (need & 1) dx[0] = dy;
    if (need & 2) dx[1] = ir_chan_sum(g, dy);
}

/* ---- chan_sum: out[c] = sum over all but axis 1 ---- */

bool shape_chan_sum(Node *n, char *err, size_t errlen) {
    const Node *x = n->in[0];
    if (x->rank < 2) SHAPE_FAIL("chan_sum: input must have a channel axis (got %s)", shp(x));
    set_shape1(n, x->dim[1]);
    return true;
}

void fwd_chan_sum(const Node *n, const double *const *in, double *out) {
    const Node *x = n->in[0];
    int64_t N = x->dim[0], C = x->dim[1], S = spatial(x);
    for (int64_t c = 0; c < C; c++) {
        double s = 0;
        for (int64_t b = 0; b < N; b++)
            for (int64_t k = 0; k < S; k++) s += in[0][(b * C + c) * S + k];
        out[c] = s;
    }
}

Cost cost_chan_sum(const Node *n) { return (Cost){(double)node_numel(n->in[0]), 4.0 * (double)node_numel(n->in[0])}; }

/* ---- relu: y = max(x, 0); its gradient is masked by y > 0 (PyTorch's
   threshold_backward on the result: no gradient at exactly 0) ---- */

bool shape_relu(Node *n, char *err, size_t errlen) {
    (void)err; (void)errlen;
    set_shape(n, n->in[0]->rank, n->in[0]->dim);
    return true;
}

void fwd_relu(const Node *n, const double *const *in, double *out) {
    for (int64_t i = 0, e = node_numel(n); i < e; i++) out[i] = in[0][i] > 0 ? in[0][i] : 0;
}

Cost cost_relu(const Node *n) { return cost_elementwise(n, 1); }

void bwd_relu(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_relu_back(g, dy, n);
}

bool shape_relu_back(Node *n, char *err, size_t errlen) {
    if (!same_shape(n->in[0], n->in[1])) SHAPE_FAIL("relu_back: dy %s and y %s differ", shp(n->in[0]), shp(n->in[1]));
    set_shape(n, n->in[0]->rank, n->in[0]->dim);
    return true;
}

void fwd_relu_back(const Node *n, const double *const *in, double *out) {
    for (int64_t i = 0, e = node_numel(n); i < e; i++) out[i] = in[1][i] > 0 ? in[0][i] : 0;
}

Cost cost_relu_back(const Node *n) { return cost_elementwise(n, 1); }

/* ---- leaky_relu: y = x > 0 ? x : slope*x; fa = slope ---- */

bool shape_leaky_relu(Node *n, char *err, size_t errlen) { return shape_relu(n, err, errlen); }

void fwd_leaky_relu(const Node *n, const double *const *in, double *out) {
    double a = n->fa[0];
    for (int64_t i = 0, e = node_numel(n); i < e; i++) out[i] = in[0][i] > 0 ? in[0][i] : a * in[0][i];
}

Cost cost_leaky_relu(const Node *n) { return cost_elementwise(n, 2); }

void bwd_leaky_relu(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_leaky_relu_back(g, dy, n->in[0], n->fa[0]);
}

bool shape_leaky_relu_back(Node *n, char *err, size_t errlen) {
    if (!same_shape(n->in[0], n->in[1]))
        SHAPE_FAIL("leaky_relu_back: dy %s and x %s differ", shp(n->in[0]), shp(n->in[1]));
    set_shape(n, n->in[0]->rank, n->in[0]->dim);
    return true;
}

void fwd_leaky_relu_back(const Node *n, const double *const *in, double *out) {
    double a = n->fa[0];
    for (int64_t i = 0, e = node_numel(n); i < e; i++) out[i] = in[1][i] > 0 ? in[0][i] : a * in[0][i];
}

Cost cost_leaky_relu_back(const Node *n) { return cost_elementwise(n, 2); }

/* ---- add: the residual sum ---- */

bool shape_add(Node *n, char *err, size_t errlen) {
    if (!same_shape(n->in[0], n->in[1]))
        SHAPE_FAIL("add: shapes %s and %s differ (a residual needs a projection shortcut?)", shp(n->in[0]),
                   shp(n->in[1]));
    set_shape(n, n->in[0]->rank, n->in[0]->dim);
    return true;
}

void fwd_add(const Node *n, const double *const *in, double *out) {
    for (int64_t i = 0, e = node_numel(n); i < e; i++) out[i] = in[0][i] + in[1][i];
}

Cost cost_add(const Node *n) { return cost_elementwise(n, 1); }

void bwd_add(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    (void)g; (void)n;
    if (need & 1) dx[0] = dy;
    if (need & 2) dx[1] = dy;
}

/* ---- reshape: same data, new shape; ia = rank, dims ---- */

bool shape_reshape(Node *n, char *err, size_t errlen) {
    int64_t e = 1;
    if (n->ia[0] < 0 || n->ia[0] > IR_MAX_RANK) SHAPE_FAIL("reshape: bad rank %lld", (long long)n->ia[0]);
    for (int i = 0; i < n->ia[0]; i++) e *= n->ia[1 + i];
    if (e != node_numel(n->in[0])) SHAPE_FAIL("reshape: %s has %lld elements, not %lld", shp(n->in[0]),
                                             (long long)node_numel(n->in[0]), (long long)e);
    set_shape(n, (int)n->ia[0], &n->ia[1]);
    return true;
}

void fwd_reshape(const Node *n, const double *const *in, double *out) {
    memcpy(out, in[0], sizeof(double) * (size_t)node_numel(n));
}

Cost cost_reshape(const Node *n) { (void)n; return (Cost){0, 0}; }

void bwd_reshape(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_reshape(g, dy, n->in[0]->rank, n->in[0]->dim);
}

/* ---- builders ---- */

Node *ir_fill(Graph *g, int rank, const int64_t *dim, double value) {
    int64_t ia[1 + IR_MAX_RANK] = {rank};
    for (int i = 0; i < rank; i++) ia[1 + i] = dim[i];
    return ir_make(g, OP_FILL, NULL, 0, ia, 1 + IR_MAX_RANK, &value, 1);
}

Node *ir_bias_add(Graph *g, Node *x, Node *b) {
    Node *in[] = {x, b};
    return ir_make(g, OP_BIAS_ADD, in, 2, NULL, 0, NULL, 0);
}

Node *ir_chan_sum(Graph *g, Node *x) { return ir_make(g, OP_CHAN_SUM, &x, 1, NULL, 0, NULL, 0); }
Node *ir_relu(Graph *g, Node *x) { return ir_make(g, OP_RELU, &x, 1, NULL, 0, NULL, 0); }

Node *ir_relu_back(Graph *g, Node *dy, Node *y) {
    Node *in[] = {dy, y};
    return ir_make(g, OP_RELU_BACK, in, 2, NULL, 0, NULL, 0);
}

Node *ir_leaky_relu(Graph *g, Node *x, double slope) { return ir_make(g, OP_LEAKY_RELU, &x, 1, NULL, 0, &slope, 1); }

Node *ir_leaky_relu_back(Graph *g, Node *dy, Node *x, double slope) {
    Node *in[] = {dy, x};
    return ir_make(g, OP_LEAKY_RELU_BACK, in, 2, NULL, 0, &slope, 1);
}

Node *ir_add(Graph *g, Node *a, Node *b) {
    Node *in[] = {a, b};
    return ir_make(g, OP_ADD, in, 2, NULL, 0, NULL, 0);
}

Node *ir_reshape(Graph *g, Node *x, int rank, const int64_t *dim) {
    int64_t ia[1 + IR_MAX_RANK] = {rank};
    for (int i = 0; i < rank; i++) ia[1 + i] = dim[i];
    return ir_make(g, OP_RESHAPE, &x, 1, ia, 1 + IR_MAX_RANK, NULL, 0);
}
