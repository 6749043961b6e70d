/*
** ops_math.c: elementwise math (product, exp, log, softplus), row-wise L2
** normalisation and the matrix product of two activations, with their
** backward ops: what the baseline methods' heads and losses are made of.
** Each follows PyTorch's definition (torch.mul, exp, log,
** nn.functional.softplus with beta 1 and threshold 20,
** nn.functional.normalize over dim 1, torch.matmul).
*/
#include "ir/ops_impl.h"
#include "rt_kernels.h"

/* ---- shape rules shared by the elementwise ops ---- */

static bool shape_unary(Node *n) {
    set_shape(n, n->in[0]->rank, n->in[0]->dim);
    return true;
}

static bool shape_binary(Node *n, const char *what, char *err, size_t errlen) {
    if (!same_shape(n->in[0], n->in[1])) SHAPE_FAIL("%s: %s and %s differ", what, shp(n->in[0]), shp(n->in[1]));
    set_shape(n, n->in[0]->rank, n->in[0]->dim);
    return true;
}

/* ---- mul: y = a * b, elementwise ---- */

bool shape_mul(Node *n, char *err, size_t errlen) { return shape_binary(n, "mul", err, errlen); }

void fwd_mul(const Node *n, const double *const *in, double *out) {
    for (int64_t i = 0, e = node_numel(n); i < e; i++) out[i] = in[0][i] * in[1][i];
}

Cost cost_mul(const Node *n) { return cost_elementwise(n, 1); }

void bwd_mul(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_mul(g, dy, n->in[1]);
    if (need & 2) dx[1] = ir_mul(g, dy, n->in[0]);
}

/* ---- exp: y = e^x; dx = dy * y ---- */

bool shape_exp(Node *n, char *err, size_t errlen) {
    (void)err; (void)errlen;
    return shape_unary(n);
}

void fwd_exp(const Node *n, const double *const *in, double *out) {
    for (int64_t i = 0, e = node_numel(n); i < e; i++) out[i] = exp(in[0][i]);
}

Cost cost_exp(const Node *n) { return cost_elementwise(n, 8); }

void bwd_exp(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_mul(g, dy, n);
}

/* ---- log: y = ln x (x <= 0 gives -inf / NaN, as in PyTorch); dx = dy / x ---- */

bool shape_log(Node *n, char *err, size_t errlen) {
    (void)err; (void)errlen;
    return shape_unary(n);
}

void fwd_log(const Node *n, const double *const *in, double *out) {
    for (int64_t i = 0, e = node_numel(n); i < e; i++) out[i] = log(in[0][i]);
}

Cost cost_log(const Node *n) { return cost_elementwise(n, 8); }

void bwd_log(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_log_back(g, dy, n->in[0]);
}

bool shape_log_back(Node *n, char *err, size_t errlen) { return shape_binary(n, "log_back", err, errlen); }

void fwd_log_back(const Node *n, const double *const *in, double *out) {
    for (int64_t i = 0, e = node_numel(n); i < e; i++) out[i] = in[0][i] / in[1][i];
}

Cost cost_log_back(const Node *n) { return cost_elementwise(n, 1); }

/* ---- softplus: y = x > 20 ? x : log(1 + e^x) (PyTorch's beta 1,
   threshold 20); dx = x > 20 ? dy : dy * e^x / (e^x + 1) ---- */

#define SOFTPLUS_THRESHOLD RT_SOFTPLUS_THRESHOLD

bool shape_softplus(Node *n, char *err, size_t errlen) {
    (void)err; (void)errlen;
    return shape_unary(n);
}

void fwd_softplus(const Node *n, const double *const *in, double *out) {
    for (int64_t i = 0, e = node_numel(n); i < e; i++) {
        double x = in[0][i];
        out[i] = x > SOFTPLUS_THRESHOLD ? x : log1p(exp(x));
    }
}

Cost cost_softplus(const Node *n) { return cost_elementwise(n, 16); }

void bwd_softplus(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_softplus_back(g, dy, n->in[0]);
}

bool shape_softplus_back(Node *n, char *err, size_t errlen) { return shape_binary(n, "softplus_back", err, errlen); }

void fwd_softplus_back(const Node *n, const double *const *in, double *out) {
    for (int64_t i = 0, e = node_numel(n); i < e; i++) {
        double x = in[1][i], z = exp(x);
        out[i] = x > SOFTPLUS_THRESHOLD ? in[0][i] : in[0][i] * z / (z + 1);
    }
}

Cost cost_softplus_back(const Node *n) { return cost_elementwise(n, 10); }

/* ---- l2_normalize: x [N, D] -> y[n] = x[n] / max(|x[n]|, eps); fa = eps.
   Backward, r = |x[n]|: dx = (dy - y (y . dy)) / r where r > eps, else
   dy / eps (the clamped denominator is a constant). ---- */

bool shape_l2_normalize(Node *n, char *err, size_t errlen) {
    const Node *x = n->in[0];
    if (x->rank != 2) SHAPE_FAIL("l2_normalize: input must be [N, D] (got %s)", shp(x));
    if (!(n->fa[0] > 0)) SHAPE_FAIL("l2_normalize: eps must be positive (got %g)", n->fa[0]);
    set_shape(n, 2, x->dim);
    return true;
}

static double row_norm(const double *x, int64_t D) {
    double s = 0;
    for (int64_t d = 0; d < D; d++) s += x[d] * x[d];
    return sqrt(s);
}

void fwd_l2_normalize(const Node *n, const double *const *in, double *out) {
    int64_t N = n->dim[0], D = n->dim[1];
    for (int64_t r = 0; r < N; r++) {
        const double *x = in[0] + r * D;
        double den = fmax(row_norm(x, D), n->fa[0]);
        for (int64_t d = 0; d < D; d++) out[r * D + d] = x[d] / den;
    }
}

Cost cost_l2_normalize(const Node *n) { return cost_elementwise(n, 3); }

void bwd_l2_normalize(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_l2_normalize_back(g, dy, n->in[0], n->fa[0]);
}

bool shape_l2_normalize_back(Node *n, char *err, size_t errlen) {
    if (n->in[1]->rank != 2) SHAPE_FAIL("l2_normalize_back: x must be [N, D] (got %s)", shp(n->in[1]));
    return shape_binary(n, "l2_normalize_back", err, errlen);
}

void fwd_l2_normalize_back(const Node *n, const double *const *in, double *out) {
    int64_t N = n->dim[0], D = n->dim[1];
    double eps = n->fa[0];
    for (int64_t r = 0; r < N; r++) {
        const double *dy = in[0] + r * D, *x = in[1] + r * D;
        double norm = row_norm(x, D);
        double *o = out + r * D;
        if (norm <= eps) {
            for (int64_t d = 0; d < D; d++) o[d] = dy[d] / eps;
            continue;
        }
        double ydy = 0;
        for (int64_t d = 0; d < D; d++) ydy += x[d] / norm * dy[d];
        for (int64_t d = 0; d < D; d++) o[d] = (dy[d] - x[d] / norm * ydy) / norm;
    }
}

Cost cost_l2_normalize_back(const Node *n) { return cost_elementwise(n, 5); }

/* ---- matmul: C [M, N] = op(A) op(B), op(A) [M, K], op(B) [K, N]; ia =
   ta, tb: op(X) = X^T when set (A is then stored [K, M], B [N, K]) ---- */

/* op(X)'s rows and columns */
static int64_t op_rows(const Node *x, int64_t t) { return t ? x->dim[1] : x->dim[0]; }
static int64_t op_cols(const Node *x, int64_t t) { return t ? x->dim[0] : x->dim[1]; }

bool shape_matmul(Node *n, char *err, size_t errlen) {
    const Node *a = n->in[0], *b = n->in[1];
    if (a->rank != 2 || b->rank != 2) SHAPE_FAIL("matmul: operands must be matrices (got %s and %s)", shp(a), shp(b));
    if ((n->ia[0] != 0 && n->ia[0] != 1) || (n->ia[1] != 0 && n->ia[1] != 1))
        SHAPE_FAIL("matmul: transpose flags must be 0 or 1 (got %lld, %lld)", (long long)n->ia[0], (long long)n->ia[1]);
    int64_t ta = n->ia[0], tb = n->ia[1];
    if (op_cols(a, ta) != op_rows(b, tb))
        SHAPE_FAIL("matmul: %s%s times %s%s: inner sizes %lld and %lld differ", shp(a), ta ? "^T" : "", shp(b), tb ? "^T" : "",
                   (long long)op_cols(a, ta), (long long)op_rows(b, tb));
    set_shape2(n, op_rows(a, ta), op_cols(b, tb));
    return true;
}

void fwd_matmul(const Node *n, const double *const *in, double *out) {
    const Node *a = n->in[0], *b = n->in[1];
    int64_t ta = n->ia[0], tb = n->ia[1], M = n->dim[0], N = n->dim[1], K = op_cols(a, ta);
    int64_t lda = a->dim[1], ldb = b->dim[1];
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (ta ? in[0][k * lda + i] : in[0][i * lda + k]) * (tb ? in[1][j * ldb + k] : in[1][k * ldb + j]);
            out[i * N + j] = s;
        }
}

Cost cost_matmul(const Node *n) {
    double M = (double)n->dim[0], N = (double)n->dim[1], K = (double)op_cols(n->in[0], n->ia[0]);
    return (Cost){2 * M * N * K, 4.0 * (M * K + K * N + M * N)};
}

/* dA and dB of C = op(A) op(B), as matmuls with transposes:
   ta = 0: dA = dC op(B)^T;   ta = 1: dA = op(B) dC^T
   tb = 0: dB = op(A)^T dC;   tb = 1: dB = dC^T op(A) */
void bwd_matmul(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    Node *a = n->in[0], *b = n->in[1];
    int64_t ta = n->ia[0], tb = n->ia[1];
    if (need & 1) dx[0] = ta ? ir_matmul(g, b, dy, tb, 1) : ir_matmul(g, dy, b, 0, !tb);
    if (need & 2) dx[1] = tb ? ir_matmul(g, dy, a, 1, ta) : ir_matmul(g, a, dy, !ta, 0);
}

/* ---- builders ---- */

Node *ir_mul(Graph *g, Node *a, Node *b) {
    Node *in[] = {a, b};
    return ir_make(g, OP_MUL, in, 2, NULL, 0, NULL, 0);
}

Node *ir_exp(Graph *g, Node *x) { return ir_make(g, OP_EXP, &x, 1, NULL, 0, NULL, 0); }
Node *ir_log(Graph *g, Node *x) { return ir_make(g, OP_LOG, &x, 1, NULL, 0, NULL, 0); }

Node *ir_log_back(Graph *g, Node *dy, Node *x) {
    Node *in[] = {dy, x};
    return ir_make(g, OP_LOG_BACK, in, 2, NULL, 0, NULL, 0);
}

Node *ir_softplus(Graph *g, Node *x) { return ir_make(g, OP_SOFTPLUS, &x, 1, NULL, 0, NULL, 0); }

Node *ir_softplus_back(Graph *g, Node *dy, Node *x) {
    Node *in[] = {dy, x};
    return ir_make(g, OP_SOFTPLUS_BACK, in, 2, NULL, 0, NULL, 0);
}

Node *ir_l2_normalize(Graph *g, Node *x, double eps) { return ir_make(g, OP_L2_NORMALIZE, &x, 1, NULL, 0, &eps, 1); }

Node *ir_l2_normalize_back(Graph *g, Node *dy, Node *x, double eps) {
    Node *in[] = {dy, x};
    return ir_make(g, OP_L2_NORMALIZE_BACK, in, 2, NULL, 0, &eps, 1);
}

Node *ir_matmul(Graph *g, Node *a, Node *b, int64_t ta, int64_t tb) {
    Node *in[] = {a, b};
    int64_t ia[] = {ta, tb};
    return ir_make(g, OP_MATMUL, in, 2, ia, 2, NULL, 0);
}
