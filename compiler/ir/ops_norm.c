/*
** ops_norm.c: batch normalisation, as PyTorch's BatchNorm1d/2d.
**
** Training mode is two nodes: bn_stats(x) -> [2,C] (batch mean, biased
** variance over all of N and the spatial axes), and bn_train(x, stats,
** gamma, beta). Input 1 of bn_train is a saved value: it must be
** bn_stats of input 0 (the verifier checks), so bn_train's backward rule
** is the full BatchNorm gradient through the statistics and no gradient
** flows along the stats edge itself. bn_running makes the new running
** statistics (momentum; the variance unbiased by n/(n-1)) as graph
** outputs. bn_eval normalises with given (running) statistics. In a
** graph of one rank of several (ops_dist.c) the statistics are
** bn_stats_all(x), and bn_train's rule sums over ranks too.
*/
#include <stdlib.h>

#include "ir/ops_impl.h"
#include "rt_comm.h"

static bool check_bn_input(const Node *x, const char *op, char *err, size_t errlen) {
    if (x->rank < 2) SHAPE_FAIL("%s: input must be [N,C] or [N,C,H,W] (got %s)", op, shp(x));
    return true;
}

static bool check_vec(const Node *v, int64_t C, const char *what, const char *op, char *err, size_t errlen) {
    if (v->rank != 1 || v->dim[0] != C) SHAPE_FAIL("%s: %s %s does not match %lld channels", op, what, shp(v), (long long)C);
    return true;
}

static bool check_stats(const Node *s, int64_t C, const char *op, char *err, size_t errlen) {
    if (s->rank != 2 || s->dim[0] != 2 || s->dim[1] != C)
        SHAPE_FAIL("%s: statistics %s are not [2,%lld]", op, shp(s), (long long)C);
    return true;
}

/* ---- bn_stats: [N,C,...] -> [2,C] = (mean, biased variance) ---- */

bool shape_bn_stats(Node *n, char *err, size_t errlen) {
    if (!check_bn_input(n->in[0], "bn_stats", err, errlen)) return false;
    set_shape2(n, 2, n->in[0]->dim[1]);
    return true;
}

void fwd_bn_stats(const Node *n, const double *const *in, double *out) {
    const Node *x = n->in[0];
    int64_t N = x->dim[0], C = x->dim[1], S = spatial(x), M = N * S;
    for (int64_t c = 0; c < C; c++) {
        double s = 0, v = 0;
        for (int64_t b = 0; b < N; b++)
            for (int64_t k = 0; k < S; k++) s += in[0][(b * C + c) * S + k];
        double mean = s / (double)M;
        for (int64_t b = 0; b < N; b++)
            for (int64_t k = 0; k < S; k++) {
                double d = in[0][(b * C + c) * S + k] - mean;
                v += d * d;
            }
        out[c] = mean;
        out[C + c] = v / (double)M;
    }
}

Cost cost_bn_stats(const Node *n) { return (Cost){3.0 * (double)node_numel(n->in[0]), 4.0 * (double)node_numel(n->in[0])}; }

/* ---- bn_train(x, stats, gamma, beta); fa = eps ---- */

bool shape_bn_train(Node *n, char *err, size_t errlen) {
    const Node *x = n->in[0];
    if (!check_bn_input(x, "batchnorm", err, errlen)) return false;
    int64_t C = x->dim[1];
    if (per_channel(x) < 2)
        SHAPE_FAIL("batchnorm: training needs more than 1 value per channel (input %s)", shp(x));
    if (!check_stats(n->in[1], C, "batchnorm", err, errlen) || !check_vec(n->in[2], C, "weight", "batchnorm", err, errlen) ||
        !check_vec(n->in[3], C, "bias", "batchnorm", err, errlen))
        return false;
    set_shape(n, x->rank, x->dim);
    return true;
}

void fwd_bn_train(const Node *n, const double *const *in, double *out) {
    int64_t N = n->dim[0], C = n->dim[1], S = spatial(n);
    const double *x = in[0], *st = in[1], *gamma = in[2], *beta = in[3];
    for (int64_t c = 0; c < C; c++) {
        double rstd = 1.0 / sqrt(st[C + c] + n->fa[0]);
        for (int64_t b = 0; b < N; b++)
            for (int64_t k = 0; k < S; k++) {
                int64_t i = (b * C + c) * S + k;
                out[i] = gamma[c] * (x[i] - st[c]) * rstd + beta[c];
            }
    }
}

Cost cost_bn_train(const Node *n) { return cost_elementwise(n, 4); }

void bwd_bn_train(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    double eps = n->fa[0];
    Node *st = n->in[1];
    if ((need & 1) && st->op == OP_BN_STATS_ALL) {
        /* statistics over all ranks: so are the two sums of the gradient */
        Node *in[] = {dy, n->in[0], st, n->in[2]};
        dx[0] = ir_make(g, OP_BN_TRAIN_DX_ALL, in, 4, &st->ia[0], 1, &eps, 1);
    } else if (need & 1) {
        dx[0] = ir_bn_train_dx(g, dy, n->in[0], n->in[1], n->in[2], eps);
    }
    if (need & 4) dx[2] = ir_bn_dgamma(g, dy, n->in[0], n->in[1], eps);
    if (need & 8) dx[3] = ir_chan_sum(g, dy);
}

/* bn_train_dx(dy, x, stats, gamma): with xhat = (x - mean) * rstd and M
   values per channel, dx = gamma*rstd/M * (M*dy - sum(dy) - xhat*sum(dy*xhat)). */
bool shape_bn_train_dx(Node *n, char *err, size_t errlen) {
    const Node *dy = n->in[0], *x = n->in[1];
    if (!same_shape(dy, x)) SHAPE_FAIL("bn_train_dx: dy %s and x %s differ", shp(dy), shp(x));
    if (!check_stats(n->in[2], x->dim[1], "bn_train_dx", err, errlen) ||
        !check_vec(n->in[3], x->dim[1], "weight", "bn_train_dx", err, errlen))
        return false;
    set_shape(n, x->rank, x->dim);
    return true;
}

void bn_dx_reference(const Node *n, const double *const *in, double *out, double M, bool all_ranks) {
    int64_t N = n->dim[0], C = n->dim[1], S = spatial(n);
    const double *dy = in[0], *x = in[1], *st = in[2], *gamma = in[3];
    double *sums = calloc((size_t)(2 * C), sizeof *sums);   /* sum dy, sum dy * xhat */
    if (!sums) RRC_ABORT("out of memory");
    for (int64_t c = 0; c < C; c++) {
        double mean = st[c], rstd = 1.0 / sqrt(st[C + c] + n->fa[0]);
        for (int64_t b = 0; b < N; b++)
            for (int64_t k = 0; k < S; k++) {
                int64_t i = (b * C + c) * S + k;
                sums[c] += dy[i];
                sums[C + c] += dy[i] * (x[i] - mean) * rstd;
            }
    }
    if (all_ranks) rt_comm_sum_f64(sums, 2 * C);
    for (int64_t c = 0; c < C; c++) {
        double mean = st[c], rstd = 1.0 / sqrt(st[C + c] + n->fa[0]), scale = gamma[c] * rstd / M;
        for (int64_t b = 0; b < N; b++)
            for (int64_t k = 0; k < S; k++) {
                int64_t i = (b * C + c) * S + k;
                double xhat = (x[i] - mean) * rstd;
                out[i] = scale * (M * dy[i] - sums[c] - xhat * sums[C + c]);
            }
    }
    free(sums);
}

void fwd_bn_train_dx(const Node *n, const double *const *in, double *out) {
    bn_dx_reference(n, in, out, (double)per_channel(n), false);
}

Cost cost_bn_train_dx(const Node *n) { return cost_elementwise(n, 9); }

/* bn_dgamma(dy, x, stats) -> [C] = sum(dy * xhat) */
bool shape_bn_dgamma(Node *n, char *err, size_t errlen) {
    const Node *dy = n->in[0], *x = n->in[1];
    if (!same_shape(dy, x)) SHAPE_FAIL("bn_dgamma: dy %s and x %s differ", shp(dy), shp(x));
    if (!check_stats(n->in[2], x->dim[1], "bn_dgamma", err, errlen)) return false;
    set_shape1(n, x->dim[1]);
    return true;
}

void fwd_bn_dgamma(const Node *n, const double *const *in, double *out) {
    const Node *x = n->in[1];
    int64_t N = x->dim[0], C = x->dim[1], S = spatial(x);
    for (int64_t c = 0; c < C; c++) {
        double mean = in[2][c], rstd = 1.0 / sqrt(in[2][C + c] + n->fa[0]), s = 0;
        for (int64_t b = 0; b < N; b++)
            for (int64_t k = 0; k < S; k++) {
                int64_t i = (b * C + c) * S + k;
                s += in[0][i] * (in[1][i] - mean) * rstd;
            }
        out[c] = s;
    }
}

Cost cost_bn_dgamma(const Node *n) { return (Cost){4.0 * (double)node_numel(n->in[0]), 8.0 * (double)node_numel(n->in[0])}; }

/* ---- bn_eval(x, mean, var, gamma, beta): normalise with given statistics ---- */

bool shape_bn_eval(Node *n, char *err, size_t errlen) {
    const Node *x = n->in[0];
    if (!check_bn_input(x, "batchnorm", err, errlen)) return false;
    int64_t C = x->dim[1];
    for (int i = 1; i < 5; i++) {
        static const char *what[] = {"", "running_mean", "running_var", "weight", "bias"};
        if (!check_vec(n->in[i], C, what[i], "batchnorm", err, errlen)) return false;
    }
    set_shape(n, x->rank, x->dim);
    return true;
}

void fwd_bn_eval(const Node *n, const double *const *in, double *out) {
    int64_t N = n->dim[0], C = n->dim[1], S = spatial(n);
    for (int64_t c = 0; c < C; c++) {
        double rstd = 1.0 / sqrt(in[2][c] + n->fa[0]);
        for (int64_t b = 0; b < N; b++)
            for (int64_t k = 0; k < S; k++) {
                int64_t i = (b * C + c) * S + k;
                out[i] = in[3][c] * (in[0][i] - in[1][c]) * rstd + in[4][c];
            }
    }
}

Cost cost_bn_eval(const Node *n) { return cost_elementwise(n, 4); }

/* ---- bn_running(old, stats): ia = which (0 mean, 1 var), n; fa = momentum ---- */

bool shape_bn_running(Node *n, char *err, size_t errlen) {
    const Node *old = n->in[0];
    if (old->rank != 1 || !check_stats(n->in[1], old->dim[0], "bn_running", err, errlen)) return false;
    if (n->ia[0] != 0 && n->ia[0] != 1) SHAPE_FAIL("bn_running: which must be 0 or 1");
    if (n->ia[1] < 2) SHAPE_FAIL("bn_running: needs more than 1 value per channel");
    set_shape1(n, old->dim[0]);
    return true;
}

void fwd_bn_running(const Node *n, const double *const *in, double *out) {
    int64_t C = n->dim[0];
    double m = n->fa[0], cnt = (double)n->ia[1];
    for (int64_t c = 0; c < C; c++) {
        double stat = n->ia[0] == 0 ? in[1][c] : in[1][C + c] * cnt / (cnt - 1);
        out[c] = (1 - m) * in[0][c] + m * stat;
    }
}

Cost cost_bn_running(const Node *n) { return cost_elementwise(n, 3); }

/* ---- builders ---- */

Node *ir_bn_stats(Graph *g, Node *x) { return ir_make(g, OP_BN_STATS, &x, 1, NULL, 0, NULL, 0); }

Node *ir_bn_train(Graph *g, Node *x, Node *stats, Node *gamma, Node *beta, double eps) {
    Node *in[] = {x, stats, gamma, beta};
    return ir_make(g, OP_BN_TRAIN, in, 4, NULL, 0, &eps, 1);
}

Node *ir_bn_train_dx(Graph *g, Node *dy, Node *x, Node *stats, Node *gamma, double eps) {
    Node *in[] = {dy, x, stats, gamma};
    return ir_make(g, OP_BN_TRAIN_DX, in, 4, NULL, 0, &eps, 1);
}

Node *ir_bn_dgamma(Graph *g, Node *dy, Node *x, Node *stats, double eps) {
    Node *in[] = {dy, x, stats};
    return ir_make(g, OP_BN_DGAMMA, in, 3, NULL, 0, &eps, 1);
}

Node *ir_bn_eval(Graph *g, Node *x, Node *mean, Node *var, Node *gamma, Node *beta, double eps) {
    Node *in[] = {x, mean, var, gamma, beta};
    return ir_make(g, OP_BN_EVAL, in, 5, NULL, 0, &eps, 1);
}

Node *ir_bn_running(Graph *g, Node *old, Node *stats, int which, double momentum) {
    Node *in[] = {old, stats};
    /* values per channel: all ranks' for combined statistics */
    int64_t n = stats->op == OP_BN_STATS_ALL ? stats->ia[0] : stats->nin ? per_channel(stats->in[0]) : 0;
    int64_t ia[] = {which, n};
    return ir_make(g, OP_BN_RUNNING, in, 2, ia, 2, &momentum, 1);
}
