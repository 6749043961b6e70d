/*
** test_gradcheck.c: finite-difference checks of every backward rule in the
** op table, and the table's own completeness.
**
** Each case builds a small graph around one differentiable op, with its
** differentiable inputs as param leaves holding random values. The op's
** backward rule is applied to a random upstream gradient dy (an input
** leaf), and for every input element the result must match the central
** difference of f = sum(op(inputs) * dy), all in double precision (the
** reference kernels compute in double), so the tolerance can be tight: the
** finite-difference rule of tolerance.h, per input tensor,
** |numeric - analytic| <= 1e-6 * (1 + max|analytic|). Random continuous
** inputs are away from the kinks of ReLU, max pooling and max
** aggregation with probability one; the step (1e-6) is far below the
** distance between distinct values at these sizes. Ties at the kinks are
** checked against PyTorch's rules by the goldens (test_golden_ops.c).
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "rt_rng.h"
#include "test.h"
#include "tolerance.h"

typedef Node *(*build_fn)(Graph *g);

typedef struct GradCase {
    const char *name;
    OpKind op;
    build_fn build;
} GradCase;

static Node *P(Graph *g, const char *name, int rank, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t dim[4] = {a, b, c, d};
    return ir_param(g, name, rank, dim, (rt_init){RT_INIT_UNIFORM, 1.0});
}

static Node *b_conv_s1p1(Graph *g) { return ir_conv2d(g, P(g, "x", 4, 2, 3, 5, 6), P(g, "w", 4, 4, 3, 3, 3), 1, 1); }
static Node *b_conv_s2p1(Graph *g) { return ir_conv2d(g, P(g, "x", 4, 2, 3, 7, 6), P(g, "w", 4, 2, 3, 3, 3), 2, 1); }
static Node *b_conv_k1s2(Graph *g) { return ir_conv2d(g, P(g, "x", 4, 1, 4, 5, 5), P(g, "w", 4, 3, 4, 1, 1), 2, 0); }
static Node *b_conv_k5s1p2(Graph *g) { return ir_conv2d(g, P(g, "x", 4, 1, 2, 6, 6), P(g, "w", 4, 2, 2, 5, 5), 1, 2); }
static Node *b_linear(Graph *g) { return ir_linear(g, P(g, "x", 2, 3, 5, 0, 0), P(g, "w", 2, 4, 5, 0, 0)); }
static Node *b_bias4(Graph *g) { return ir_bias_add(g, P(g, "x", 4, 2, 3, 2, 3), P(g, "b", 1, 3, 0, 0, 0)); }
static Node *b_bias2(Graph *g) { return ir_bias_add(g, P(g, "x", 2, 3, 4, 0, 0), P(g, "b", 1, 4, 0, 0, 0)); }
static Node *b_relu(Graph *g) { return ir_relu(g, P(g, "x", 3, 2, 3, 4, 0)); }
static Node *b_leaky(Graph *g) { return ir_leaky_relu(g, P(g, "x", 2, 4, 5, 0, 0), 0.1); }
static Node *b_add(Graph *g) { return ir_add(g, P(g, "a", 2, 3, 4, 0, 0), P(g, "b", 2, 3, 4, 0, 0)); }
static Node *b_reshape(Graph *g) {
    int64_t d[2] = {2, 12};
    return ir_reshape(g, P(g, "x", 4, 2, 3, 2, 2), 2, d);
}
static Node *b_avg_k2(Graph *g) { return ir_avgpool2d(g, P(g, "x", 4, 2, 2, 6, 6), 2, 2, 0); }
static Node *b_avg_k3p1(Graph *g) { return ir_avgpool2d(g, P(g, "x", 4, 1, 2, 7, 7), 3, 2, 1); }
static Node *b_max_k2(Graph *g) { return ir_maxpool2d(g, P(g, "x", 4, 2, 2, 6, 6), 2, 2, 0); }
static Node *b_max_k3p1(Graph *g) { return ir_maxpool2d(g, P(g, "x", 4, 1, 2, 7, 7), 3, 2, 1); }
static Node *b_gap(Graph *g) { return ir_global_avgpool(g, P(g, "x", 4, 2, 3, 3, 4)); }
static Node *bn(Graph *g, Node *x) {
    int64_t C = x->dim[1];
    Node *gamma = P(g, "gamma", 1, C, 0, 0, 0), *beta = P(g, "beta", 1, C, 0, 0, 0);
    return ir_bn_train(g, x, ir_bn_stats(g, x), gamma, beta, 1e-5);
}
static Node *b_bn2d(Graph *g) { return bn(g, P(g, "x", 4, 3, 4, 3, 3)); }
/* the data-parallel BatchNorm (ops_dist.c) of one rank alone: statistics
   bn_stats_all, its rule's bn_train_dx_all */
static Node *b_bn2d_ranks(Graph *g) {
    Node *x = P(g, "x", 4, 3, 4, 3, 3);
    Node *gamma = P(g, "gamma", 1, 4, 0, 0, 0), *beta = P(g, "beta", 1, 4, 0, 0, 0);
    Node *st = ir_bn_stats_all(g, x, 3 * 3 * 3);
    return ir_bn_train(g, x, st, gamma, beta, 1e-5);
}
/* the features of one rank alone, 3 groups (views) of 2 images */
static Node *b_gather_rows(Graph *g) { return ir_gather_rows(g, P(g, "f", 2, 6, 4, 0, 0), 3, 2); }
static Node *b_bn1d(Graph *g) { return bn(g, P(g, "x", 2, 6, 5, 0, 0)); }
static Node *b_pairs_cat(Graph *g) { return ir_pairs(g, P(g, "f", 2, 9, 4, 0, 0), 3, 0); }
static Node *b_pairs_sum(Graph *g) { return ir_pairs(g, P(g, "f", 2, 9, 4, 0, 0), 3, 1); }
static Node *b_pairs_mean(Graph *g) { return ir_pairs(g, P(g, "f", 2, 8, 3, 0, 0), 4, 2); }
static Node *b_pairs_max(Graph *g) { return ir_pairs(g, P(g, "f", 2, 9, 4, 0, 0), 3, 3); }
static Node *b_pairs_cat_k4b2(Graph *g) { return ir_pairs(g, P(g, "f", 2, 8, 3, 0, 0), 4, 0); }
/* pair_halves: K=3 of B=3 and K=4 of B=2 (the roll shift wraps) */
static Node *b_halves(Graph *g) { return ir_pair_halves(g, P(g, "x", 2, 9, 4, 0, 0), 3); }
static Node *b_halves_k4b2(Graph *g) { return ir_pair_halves(g, P(g, "x", 2, 8, 6, 0, 0), 4); }
static Node *b_focal(Graph *g) {
    Node *z = P(g, "z", 1, 2 * 3 * 2, 0, 0, 0);
    return ir_focal_loss(g, z, ir_pair_targets(g, 3, 2), 2.0, 0.5);
}
static Node *b_focal_g3(Graph *g) {
    Node *z = P(g, "z", 1, 3 * 2 * 1, 0, 0, 0);
    return ir_focal_loss(g, z, ir_pair_targets(g, 2, 3), 3.0, 0.25);
}
static Node *b_bce(Graph *g) {
    Node *z = P(g, "z", 1, 2 * 3 * 2, 0, 0, 0);
    return ir_bce_loss(g, z, ir_pair_targets(g, 3, 2));
}

static Node *b_softmax_ce(Graph *g) {
    /* labels are an input leaf; the harness gives leaves values in [-1, 1),
       so build them as a fixed pattern through pair_targets (0/1) instead */
    Node *z = P(g, "z", 2, 4, 2, 0, 0);
    return ir_softmax_ce(g, z, ir_pair_targets(g, 2, 2));
}
static Node *b_softmax_ce_wide(Graph *g) {
    Node *z = P(g, "z", 2, 6, 5, 0, 0);
    return ir_softmax_ce(g, z, ir_pair_targets(g, 2, 3));
}

static Node *b_mul(Graph *g) { return ir_mul(g, P(g, "a", 2, 3, 4, 0, 0), P(g, "b", 2, 3, 4, 0, 0)); }
static Node *b_exp(Graph *g) { return ir_exp(g, P(g, "x", 3, 2, 3, 4, 0)); }
/* log needs positive inputs ("pos": in [0.5, 2.5)) */
static Node *b_log(Graph *g) { return ir_log(g, P(g, "pos", 2, 4, 5, 0, 0)); }
/* softplus below and past its threshold ("far": in [20, 22)) */
static Node *b_softplus(Graph *g) { return ir_softplus(g, P(g, "x", 2, 4, 5, 0, 0)); }
static Node *b_softplus_far(Graph *g) { return ir_softplus(g, P(g, "far", 2, 4, 5, 0, 0)); }
static Node *b_l2n(Graph *g) { return ir_l2_normalize(g, P(g, "x", 2, 3, 5, 0, 0), 1e-12); }
/* a row below eps: the clamped denominator */
static Node *b_l2n_eps(Graph *g) { return ir_l2_normalize(g, P(g, "x", 2, 3, 4, 0, 0), 10.0); }
static Node *b_mm(Graph *g) { return ir_matmul(g, P(g, "a", 2, 3, 4, 0, 0), P(g, "b", 2, 4, 5, 0, 0), 0, 0); }
static Node *b_mm_ta(Graph *g) { return ir_matmul(g, P(g, "a", 2, 4, 3, 0, 0), P(g, "b", 2, 4, 5, 0, 0), 1, 0); }
static Node *b_mm_tb(Graph *g) { return ir_matmul(g, P(g, "a", 2, 3, 4, 0, 0), P(g, "b", 2, 5, 4, 0, 0), 0, 1); }
static Node *b_mm_tab(Graph *g) { return ir_matmul(g, P(g, "a", 2, 4, 3, 0, 0), P(g, "b", 2, 5, 4, 0, 0), 1, 1); }

/* the baselines' ops (ops_ssl.c) */
static Node *b_rot(Graph *g) { return ir_rotations(g, P(g, "x", 4, 2, 2, 3, 3)); }
static Node *b_rot4(Graph *g) { return ir_rotations(g, P(g, "x", 4, 1, 3, 4, 4)); }
/* RotationNet's loss: 4 rotation classes of 2 images, labels by block */
static Node *b_softmax_ce_blocks(Graph *g) { return ir_softmax_ce(g, P(g, "z", 2, 8, 4, 0, 0), ir_block_targets(g, 8, 2)); }
static Node *b_simclr(Graph *g) { return ir_simclr_loss(g, P(g, "z", 2, 6, 4, 0, 0), 0.5, 1e-8); }
static Node *b_simclr_t(Graph *g) { return ir_simclr_loss(g, P(g, "z", 2, 4, 3, 0, 0), 0.2, 1e-8); }
/* every norm product below eps: the clamped branch (enough rows that the
   column sums stay above exp(1/t) without the unit diagonal) */
static Node *b_simclr_clamp(Graph *g) { return ir_simclr_loss(g, P(g, "z", 2, 12, 3, 0, 0), 0.5, 10.0); }

/* DeepCluster's loss: 3 pseudolabel classes (block targets 0,0,1,1,2,2),
   positive class weights ("pos"; not differentiated) */
static Node *b_weighted_ce(Graph *g) {
    return ir_weighted_ce(g, P(g, "z", 2, 6, 3, 0, 0), ir_block_targets(g, 6, 2), P(g, "pos", 1, 3, 0, 0, 0));
}

/* Deep InfoMax's ops (ops_dim.c) */
static Node *b_local_pairs(Graph *g) { return ir_local_pairs(g, P(g, "M", 4, 3, 2, 2, 3), P(g, "y", 2, 3, 4, 0, 0)); }
static Node *b_concat_rows(Graph *g) { return ir_concat_rows(g, P(g, "a", 2, 2, 3, 0, 0), P(g, "b", 2, 3, 3, 0, 0)); }
static Node *b_jsd(Graph *g) { return ir_jsd_loss(g, P(g, "t", 4, 4, 1, 2, 2), 1.0); }
static Node *b_jsd_scaled(Graph *g) { return ir_jsd_loss(g, P(g, "t", 2, 6, 1, 0, 0), 0.7); }
static Node *b_prior(Graph *g) { return ir_prior_loss(g, P(g, "p", 2, 6, 1, 0, 0), 0.1); }

static const GradCase cases[] = {
    {"local_pairs", OP_LOCAL_PAIRS, b_local_pairs},
    {"concat_rows", OP_CONCAT_ROWS, b_concat_rows},
    {"jsd_loss", OP_JSD_LOSS, b_jsd},
    {"jsd_loss scaled", OP_JSD_LOSS, b_jsd_scaled},
    {"prior_loss", OP_PRIOR_LOSS, b_prior},
    {"weighted_ce", OP_WEIGHTED_CE, b_weighted_ce},
    {"rotations", OP_ROTATIONS, b_rot},
    {"rotations 4x4", OP_ROTATIONS, b_rot4},
    {"softmax_ce on block targets", OP_SOFTMAX_CE, b_softmax_ce_blocks},
    {"simclr_loss", OP_SIMCLR_LOSS, b_simclr},
    {"simclr_loss t=0.2", OP_SIMCLR_LOSS, b_simclr_t},
    {"simclr_loss clamped norms", OP_SIMCLR_LOSS, b_simclr_clamp},
    {"mul", OP_MUL, b_mul},
    {"exp", OP_EXP, b_exp},
    {"log", OP_LOG, b_log},
    {"softplus", OP_SOFTPLUS, b_softplus},
    {"softplus past the threshold", OP_SOFTPLUS, b_softplus_far},
    {"l2_normalize", OP_L2_NORMALIZE, b_l2n},
    {"l2_normalize below eps", OP_L2_NORMALIZE, b_l2n_eps},
    {"matmul", OP_MATMUL, b_mm},
    {"matmul a^T", OP_MATMUL, b_mm_ta},
    {"matmul b^T", OP_MATMUL, b_mm_tb},
    {"matmul a^T b^T", OP_MATMUL, b_mm_tab},
    {"softmax_ce", OP_SOFTMAX_CE, b_softmax_ce},
    {"softmax_ce 5 classes", OP_SOFTMAX_CE, b_softmax_ce_wide},
    {"conv2d s1 p1", OP_CONV2D, b_conv_s1p1},
    {"conv2d s2 p1", OP_CONV2D, b_conv_s2p1},
    {"conv2d k1 s2", OP_CONV2D, b_conv_k1s2},
    {"conv2d k5 p2", OP_CONV2D, b_conv_k5s1p2},
    {"linear", OP_LINEAR, b_linear},
    {"bias_add 4d", OP_BIAS_ADD, b_bias4},
    {"bias_add 2d", OP_BIAS_ADD, b_bias2},
    {"relu", OP_RELU, b_relu},
    {"leaky_relu", OP_LEAKY_RELU, b_leaky},
    {"add", OP_ADD, b_add},
    {"reshape", OP_RESHAPE, b_reshape},
    {"avgpool2d k2", OP_AVGPOOL2D, b_avg_k2},
    {"avgpool2d k3 p1", OP_AVGPOOL2D, b_avg_k3p1},
    {"maxpool2d k2", OP_MAXPOOL2D, b_max_k2},
    {"maxpool2d k3 p1", OP_MAXPOOL2D, b_max_k3p1},
    {"global_avgpool", OP_GLOBAL_AVGPOOL, b_gap},
    {"bn_train 2d", OP_BN_TRAIN, b_bn2d},
    {"bn_train 1d", OP_BN_TRAIN, b_bn1d},
    {"bn_train with statistics of all ranks", OP_BN_TRAIN, b_bn2d_ranks},
    {"gather_rows", OP_GATHER_ROWS, b_gather_rows},
    {"pairs cat", OP_PAIRS, b_pairs_cat},
    {"pairs sum", OP_PAIRS, b_pairs_sum},
    {"pairs mean", OP_PAIRS, b_pairs_mean},
    {"pairs max", OP_PAIRS, b_pairs_max},
    {"pairs cat K4 B2", OP_PAIRS, b_pairs_cat_k4b2},
    {"pair_halves", OP_PAIR_HALVES, b_halves},
    {"pair_halves K4 B2", OP_PAIR_HALVES, b_halves_k4b2},
    {"focal_loss", OP_FOCAL_LOSS, b_focal},
    {"focal_loss gamma 3", OP_FOCAL_LOSS, b_focal_g3},
    {"bce_loss", OP_BCE_LOSS, b_bce},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

/* f = sum(out * dy) at the current leaf values */
static double objective(Graph *g, double **leafvals, const Node *out, const double *dy) {
    Interp it;
    interp_init(&it, g);
    for (int i = 0; i < g->nnodes; i++)
        if (op_table[g->nodes[i]->op].fusion == FUSE_LEAF) interp_bind(&it, g->nodes[i], leafvals[i]);
    interp_run(&it);
    const double *y = interp_value(&it, out);
    double f = 0;
    for (int64_t k = 0; k < node_numel(out); k++) f += y[k] * dy[k];
    interp_free(&it);
    return f;
}

/* Runs one case; returns the ops that appear in its graph through *seen. */
static void run_case(const GradCase *c, bool *seen) {
    Arena a = {0};
    Graph *g = graph_new(&a);
    Node *n = c->build(g);
    REQUIREF(n && n->op == c->op, "%s: builder failed", c->name);
    Node *dy = ir_input(g, "dy", n->rank, n->dim);
    unsigned need = 0;
    for (int k = 0; k < n->nin; k++)
        if ((op_table[n->op].diffmask >> k & 1) && n->in[k]->op == OP_PARAM) need |= 1u << k;
    Node *dx[IR_MAX_IN] = {0};
    op_table[n->op].bwd(g, n, dy, need, dx);
    for (int k = 0; k < n->nin; k++)
        if (need >> k & 1) {
            REQUIREF(dx[k], "%s: no gradient for input %d", c->name, k);
            char name[16];
            snprintf(name, sizeof name, "dx%d", k);
            graph_add_output(g, name, dx[k]);
        }
    graph_add_output(g, "out", n);
    REQUIRE(graph_verify(g, c->name));
    for (int i = 0; i < g->nnodes; i++) seen[g->nodes[i]->op] = true;

    /* random values for every leaf */
    rt_stream rng;
    rt_stream_init(&rng, 42, RT_DOMAIN_TEST, (uint32_t)c->op, 0);
    double **vals = xcalloc((size_t)g->nnodes, sizeof *vals);
    for (int i = 0; i < g->nnodes; i++) {
        Node *l = g->nodes[i];
        if (op_table[l->op].fusion != FUSE_LEAF) continue;
        int64_t e = node_numel(l);
        vals[i] = xmalloc((size_t)e * sizeof(double));
        for (int64_t k = 0; k < e; k++) vals[i][k] = 2 * rt_stream_uniform(&rng) - 1;
        /* leaves named for where their values must lie: "gamma" and "pos"
           away from 0 and positive (BatchNorm scales, log's input), "far"
           past softplus's threshold (20) */
        double shift = l->name && (!strcmp(l->name, "gamma") || !strcmp(l->name, "pos")) ? 1.5
                       : l->name && !strcmp(l->name, "far")                             ? 21.0
                                                                                         : 0.0;
        for (int64_t k = 0; k < e; k++) vals[i][k] += shift;
    }
    /* analytic gradients */
    Interp it;
    interp_init(&it, g);
    for (int i = 0; i < g->nnodes; i++)
        if (vals[i]) interp_bind(&it, g->nodes[i], vals[i]);
    interp_run(&it);
    const double *dyv = vals[dy->id];
    for (int k = 0; k < n->nin; k++) {
        if (!(need >> k & 1)) continue;
        Node *xin = n->in[k];
        int64_t e = node_numel(xin);
        const double *ana = interp_value(&it, dx[k]);
        double amax = 0, worst = 0;
        int64_t worst_i = -1;
        for (int64_t j = 0; j < e; j++) amax = fmax(amax, fabs(ana[j]));
        for (int64_t j = 0; j < e; j++) {
            double *v = &vals[xin->id][j], x0 = *v, h = TOL_FD_STEP * fmax(1.0, fabs(x0));
            *v = x0 + h;
            double fp = objective(g, vals, n, dyv);
            *v = x0 - h;
            double fm = objective(g, vals, n, dyv);
            *v = x0;
            double num = (fp - fm) / (2 * h), err = fabs(num - ana[j]);
            if (!(err <= worst)) { worst = isnan(err) ? INFINITY : err; worst_i = j; }   /* NaN fails */
        }
        CHECKF(worst <= tol_fd(amax), "%s: d/d%s[%lld]: |numeric - analytic| = %.3g (max|analytic| %.3g)", c->name,
               xin->name, (long long)worst_i, worst, amax);
    }
    interp_free(&it);
    for (int i = 0; i < g->nnodes; i++) free(vals[i]);
    free(vals);
    arena_free(&a);
}

TEST(gradcheck_every_case) {
    bool seen[OP_COUNT] = {0};
    for (int i = 0; i < NCASES; i++) run_case(&cases[i], seen);
}

/* Ops that no gradient case makes, and where they are checked instead. */
static const struct { OpKind op; const char *where; } elsewhere[] = {
    {OP_INPUT, "leaf"}, {OP_PARAM, "leaf"}, {OP_STATE, "leaf"},
    {OP_FILL, "autodiff seeds and zero gradients (test_golden_steps.c)"},
    {OP_BN_EVAL, "eval-mode features (test_engines.c)"},
    {OP_BN_RUNNING, "running statistics of golden steps (test_golden_steps.c)"},
};

TEST(op_table_complete) {
    bool seen[OP_COUNT] = {0};
    for (int i = 0; i < NCASES; i++) {
        Arena a = {0};
        Graph *g = graph_new(&a);
        Node *n = cases[i].build(g);
        REQUIRE(n);
        Node *dy = ir_input(g, "dy", n->rank, n->dim);
        unsigned need = op_table[n->op].diffmask;
        for (int k = 0; k < n->nin; k++)
            if (n->in[k]->op != OP_PARAM) need &= ~(1u << k);
        Node *dx[IR_MAX_IN] = {0};
        op_table[n->op].bwd(g, n, dy, need, dx);
        for (int k = 0; k < g->nnodes; k++) seen[g->nodes[k]->op] = true;
        arena_free(&a);
    }
    for (int op = 0; op < OP_COUNT; op++) {
        const OpInfo *o = &op_table[op];
        CHECKF(o->name && o->shape && o->fwd && o->cost, "op %d has an incomplete table entry", op);
        CHECKF(o->diffmask == 0 || o->bwd, "differentiable op %s has no backward rule", o->name);
        bool has_case = false;
        for (int i = 0; i < NCASES; i++) has_case |= cases[i].op == (OpKind)op;
        CHECKF(o->diffmask == 0 || has_case, "differentiable op %s has no gradient test in test_gradcheck.c", o->name);
        bool other = false;
        for (size_t i = 0; i < sizeof elsewhere / sizeof elsewhere[0]; i++) other |= elsewhere[i].op == (OpKind)op;
        CHECKF(seen[op] || other, "op %s is made by no gradient case and not listed as checked elsewhere", o->name);
    }
}

/* The reads column of ops.def: one letter per input or none, and one for
   every input of an op that generated loops compute (its fusion class). */
TEST(op_table_reads_match_fusion) {
    for (int op = 0; op < OP_COUNT; op++) {
        const OpInfo *o = &op_table[op];
        size_t n = strlen(o->reads);
        CHECKF(n == 0 || n == (size_t)o->nin, "op %s: reads \"%s\" has %zu letters for %d inputs", o->name, o->reads, n,
               o->nin);
        CHECKF(strspn(o->reads, "ec") == n, "op %s: reads \"%s\" has a letter other than e and c", o->name, o->reads);
        bool loops = o->fusion == FUSE_ELEMWISE || o->fusion == FUSE_BROADCAST;
        CHECKF(!loops || n == (size_t)o->nin, "op %s of a loop class says nothing of how its inputs are read", o->name);
        CHECKF(!loops || o->reads[0] == 'e', "op %s of a loop class reads its first input per channel", o->name);
    }
}
