/*
** test_factor.c: the factor pass (passes/factor.c) changes how the relation
** head's first linear layer is computed, not what. A relation head (pairs,
** linear, bias, leaky ReLU, linear, focal loss against the pair targets) is
** built twice from the same leaves; one copy goes through factor before
** autodiff. On the reference interpreter (double) the loss, the logits and
** every gradient must agree to 1e-12 relative (only the order of additions
** differs). The pass must also leave alone what it cannot factor: sum
** aggregation, K = 2 (as many pairs as views: nothing to gain), and pairs
** something else reads too.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "rt_kernels.h"
#include "rt_rng.h"
#include "test.h"

static Node *param(Graph *g, const char *name, int rank, int64_t a, int64_t b) {
    int64_t dim[2] = {a, b};
    return ir_param(g, name, rank, dim, (rt_init){RT_INIT_UNIFORM, 1.0});
}

/* The head on features F [K*B, D]; `extra`: pairs also read by an output. */
static Graph *head(Arena *a, int K, int64_t B, int64_t D, int64_t H, int agg, bool extra) {
    Graph *g = graph_new(a);
    Node *f = param(g, "F", 2, K * B, D);
    Node *p = ir_pairs(g, f, K, agg);
    Node *z = ir_linear(g, p, param(g, "w1", 2, H, p->dim[1]));
    z = ir_leaky_relu(g, ir_bias_add(g, z, param(g, "b1", 1, H, 0)), 0.01);
    z = ir_bias_add(g, ir_linear(g, z, param(g, "w2", 2, 1, H)), param(g, "b2", 1, 1, 0));
    int64_t P = z->dim[0];
    z = ir_reshape(g, z, 1, &P);
    graph_add_output(g, "loss", ir_focal_loss(g, z, ir_pair_targets(g, K, B), 2.0, 0.5));
    graph_add_output(g, "logits", z);
    if (extra) graph_add_output(g, "pairs", p);
    return g;
}

static int count_op(const Graph *g, OpKind op) {
    int n = 0;
    for (int i = 0; i < g->nnodes; i++) n += g->nodes[i]->op == op;
    return n;
}

/* Runs g with every leaf filled from the leaf's name (the same values in
   both graphs); returns the interpreter, outputs kept. */
static void run(Graph *g, Interp *it) {
    interp_init(it, g);
    for (int i = 0; i < g->nnodes; i++) {
        const Node *l = g->nodes[i];
        if (l->op != OP_PARAM) continue;
        rt_stream s;
        rt_stream_init(&s, 7, RT_DOMAIN_TEST, (uint32_t)l->name[0] * 31u + (uint32_t)strlen(l->name), (uint32_t)l->name[1]);
        int64_t e = node_numel(l);
        double *v = malloc(sizeof(double) * (size_t)e);
        for (int64_t k = 0; k < e; k++) v[k] = 2 * rt_stream_uniform(&s) - 1;
        interp_bind(it, l, v);
        free(v);
    }
    interp_run(it);
}

static void check_same(int K, int64_t B, int64_t D, int64_t H) {
    Arena a = {0};
    Diag d = {0};
    Graph *g0 = head(&a, K, B, D, H, RT_AGG_CAT, false), *g1 = head(&a, K, B, D, H, RT_AGG_CAT, false);
    REQUIRE(pass_factor(g1, &d) && graph_verify(g1, "after factor"));
    REQUIRE(pass_autodiff(g0, &d) && pass_dce(g0, &d) && pass_autodiff(g1, &d) && pass_dce(g1, &d));
    CHECKF(count_op(g1, OP_PAIRS) == 0 && count_op(g1, OP_PAIR_HALVES) == 1 && count_op(g1, OP_PAIRS_BACK) == 0,
           "K%d B%lld: pairs %d, pair_halves %d left", K, (long long)B, count_op(g1, OP_PAIRS), count_op(g1, OP_PAIR_HALVES));
    REQUIRE(graph_verify(g1, "after autodiff"));
    Interp i0, i1;
    run(g0, &i0);
    run(g1, &i1);
    REQUIRE(g0->nouts == g1->nouts);
    for (int o = 0; o < g0->nouts; o++) {
        Output *o1 = graph_output(g1, g0->outs[o].name);
        REQUIREF(o1, "output %s missing after factor", g0->outs[o].name);
        const double *v0 = interp_value(&i0, g0->outs[o].node), *v1 = interp_value(&i1, o1->node);
        double err = 0, mag = 0;
        for (int64_t k = 0; k < node_numel(o1->node); k++) {
            err = fmax(err, fabs(v0[k] - v1[k]));
            mag = fmax(mag, fabs(v0[k]));
        }
        CHECKF(err <= 1e-12 * (1 + mag), "K%d B%lld D%lld H%lld: %s differs by %g (of %g)", K, (long long)B, (long long)D,
               (long long)H, g0->outs[o].name, err, mag);
    }
    interp_free(&i0);
    interp_free(&i1);
    arena_free(&a);
}

TEST(factor_pass_keeps_the_head_exact) {
    check_same(3, 3, 4, 5);
    check_same(4, 3, 5, 6);   /* the roll shift wraps */
    check_same(5, 2, 3, 4);
}

TEST(factor_pass_leaves_what_it_cannot_factor) {
    Arena a = {0};
    Diag d = {0};
    Graph *gs[] = {head(&a, 3, 2, 4, 5, RT_AGG_SUM, false), head(&a, 2, 3, 4, 5, RT_AGG_CAT, false),
                   head(&a, 3, 2, 4, 5, RT_AGG_CAT, true)};
    for (int i = 0; i < 3; i++) {
        REQUIRE(pass_factor(gs[i], &d));
        CHECKF(count_op(gs[i], OP_PAIRS) == 1 && count_op(gs[i], OP_PAIR_HALVES) == 0, "case %d factored", i);
    }
    arena_free(&a);
}
