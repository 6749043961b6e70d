/*
** test_fuse.c: the fusion pass (passes/fuse.c) and its generated kernels
** (codegen/cg_fuse.c).
**
** Each case builds a small graph, runs fuse + memplan, checks how many
** kernels a step runs and which values were inlined, then runs the graph on
** the JIT and on the reference interpreter with the same random leaves and
** compares every output (the fused kernels against the oracle, on both
** iteration spaces: [N, C, H, W] planes and [N, C] rows). A last test looks
** for 512-bit vector code in a generated kernel's assembly.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include "codegen/cg.h"
#include "codegen/cg_conv.h"
#include "engine.h"
#include "ir/ir.h"
#include "rt_rng.h"
#include "golden_util.h"
#include "rt_pool.h"
#include "target.h"
#include "test.h"

static Node *leaf(Graph *g, bool param, const char *name, int rank, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t dim[4] = {a, b, c, d};
    return param ? ir_param(g, name, rank, dim, (rt_init){RT_INIT_UNIFORM, 1.0}) : ir_input(g, name, rank, dim);
}

static Graph *new_graph(Arena *a) {
    Graph *g = graph_new(a);
    g->target = test_target();
    g->caps = cg_caps();
    return g;
}

static void plan(Graph *g) {
    Diag d = {0};
    REQUIRE(pass_fuse(g, &d) && pass_memplan(g, &d) && graph_verify(g, "fuse test"));
}

static int count_kind(const Graph *g, KernelKind k) {
    int n = 0;
    for (int i = 0; i < g->nkernels; i++) n += g->kernels[i].kind == k;
    return n;
}

/* Every leaf of g, the same values in e1 and (unless NULL) e2: uniform in
   [-1, 1], but BatchNorm statistics "st" ([mean; var]: variances in
   [0.5, 1.5]), "wide" values (times 40) and "xgray" images (channel 0's
   values in every channel). */
static void set_leaves(Graph *g, Engine *e1, Engine *e2) {
    rt_stream s;
    rt_stream_init(&s, 7, 1, 2, 3);
    for (int i = 0; i < g->nnodes; i++) {
        Node *x = g->nodes[i];
        if (op_table[x->op].fusion != FUSE_LEAF) continue;
        int64_t n = node_numel(x);
        float *v = malloc((size_t)n * sizeof *v);
        for (int64_t j = 0; j < n; j++) v[j] = (float)(2 * rt_stream_uniform(&s) - 1);
        if (x->name && !strcmp(x->name, "st"))
            for (int64_t j = n / 2; j < n; j++) v[j] = 0.5f + fabsf(v[j]);
        if (x->name && !strcmp(x->name, "wide"))   /* past softplus's threshold and e^x's underflow of 1 + e^x */
            for (int64_t j = 0; j < n; j++) v[j] *= 40;
        if (x->name && !strcmp(x->name, "xgray")) {
            int64_t C = x->dim[1], S = x->dim[2] * x->dim[3];
            for (int64_t j = 0; j < n; j++) v[j] = v[(j / (C * S)) * C * S + j % S];
        }
        engine_set(e1, x, v);
        if (e2) engine_set(e2, x, v);
        free(v);
    }
}

/* Runs g on the JIT and the interpreter with the same leaves (set_leaves)
   and compares every
   output by the f32 rule of tolerance.h, the interpreter (double, rounded to
   f32) as the reference: max |jit - interp| <= 1e-6 + 1e-4 max |interp|. */
static bool engines_agree(Graph *g, const char *what, bool report);

static void compare_engines(Graph *g, const char *what) { engines_agree(g, what, true); }

/* The same comparison; report = false only says whether they agree. */
static bool engines_agree(Graph *g, const char *what, bool report) {
    Engine ej, ei;
    bool agree = true;
    CgOptions co = {.target = test_target()};
    if (!engine_init(&ej, g, ENGINE_JIT, &co)) {
        CHECKF(false, "%s: JIT build failed", what);
        return false;
    }
    if (!engine_init(&ei, g, ENGINE_INTERP, NULL)) {
        CHECKF(false, "%s: interpreter init failed", what);
        engine_free(&ej);
        return false;
    }
    set_leaves(g, &ej, &ei);
    engine_run(&ej);
    engine_run(&ei);
    for (int o = 0; o < g->nouts; o++) {
        const Node *x = g->outs[o].node;
        int64_t n = node_numel(x);
        float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
        engine_get(&ej, x, a);
        engine_get(&ei, x, b);
        double err = 0, ref = 0;
        for (int64_t j = 0; j < n; j++) {
            double e = fabs((double)a[j] - (double)b[j]);
            if (!(e <= err)) err = isnan(e) ? INFINITY : e;   /* NaN on either side fails */
            ref = fmax(ref, fabs((double)b[j]));
        }
        agree &= err <= tol_f32(ref);
        if (report)
            CHECKF(err <= tol_f32(ref), "%s: output %s: max|jit - interp| = %.3g (max|interp| %.3g, allowed %.3g)", what,
                   g->outs[o].name, err, ref, tol_f32(ref));
        free(a);
        free(b);
    }
    engine_free(&ej);
    engine_free(&ei);
    return agree;
}

/* conv -> BatchNorm (batch statistics) -> ReLU: conv and statistics in one
   kernel, normalisation and ReLU in another. */
TEST(fuse_conv_bn_relu_two_kernels) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    Node *x = leaf(g, false, "x", 4, 3, 2, 7, 6), *w = leaf(g, true, "w", 4, 5, 2, 3, 3);
    Node *y = ir_conv2d(g, x, w, 1, 1), *st = ir_bn_stats(g, y);
    Node *z = ir_relu(g, ir_bn_train(g, y, st, leaf(g, true, "gamma", 1, 5, 0, 0, 0), leaf(g, true, "beta", 1, 5, 0, 0, 0), 1e-5));
    graph_add_output(g, "features", z);
    plan(g);
    CHECKF(graph_kernel_count(g) <= 2, "conv -> bn -> relu runs %d kernels", graph_kernel_count(g));
    CHECK(count_kind(g, KERNEL_CONV_STATS) == 1 && count_kind(g, KERNEL_EW) == 1);
    compare_engines(g, "conv-bn-relu");
    arena_free(&a);
}

/* BatchNorm -> + shortcut -> ReLU of a residual block: one kernel after the
   statistics, the normalisation and the sum inlined. */
TEST(fuse_residual_tail_one_kernel) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    Node *x = leaf(g, false, "x", 4, 2, 3, 4, 5), *r = leaf(g, false, "r", 4, 2, 3, 4, 5);
    Node *st = ir_bn_stats(g, x);
    Node *bn = ir_bn_train(g, x, st, leaf(g, true, "gamma", 1, 3, 0, 0, 0), leaf(g, true, "beta", 1, 3, 0, 0, 0), 1e-5);
    Node *sum = ir_add(g, bn, r), *z = ir_relu(g, sum);
    graph_add_output(g, "features", z);
    plan(g);
    CHECK(graph_kernel_count(g) == 2 && count_kind(g, KERNEL_EW) == 1);   /* statistics, then the rest */
    CHECK(bn->inlined && sum->inlined && !z->inlined);
    compare_engines(g, "residual tail");
    arena_free(&a);
}

/* The compiled graph's outputs on one thread and on two, bit for bit:
   kernels that split sums over the pool do so in fixed parts. */
static void check_threads_bitwise(Graph *g, const char *what) {
    Engine e;
    CgOptions co = {.target = test_target()};
    REQUIREF(engine_init(&e, g, ENGINE_JIT, &co), "%s: JIT build failed", what);
    set_leaves(g, &e, NULL);
    float *out[2][8] = {{0}};
    REQUIRE(g->nouts <= 8);
    for (int t = 0; t < 2; t++) {
        rt_pool_init(t + 1);
        engine_run(&e);
        for (int o = 0; o < g->nouts; o++) {
            out[t][o] = malloc((size_t)node_numel(g->outs[o].node) * sizeof(float));
            engine_get(&e, g->outs[o].node, out[t][o]);
        }
    }
    rt_pool_init(1);
    for (int o = 0; o < g->nouts; o++) {
        CHECKF(!memcmp(out[0][o], out[1][o], (size_t)node_numel(g->outs[o].node) * sizeof(float)),
               "%s: output %s differs between one and two threads", what, g->outs[o].name);
        free(out[0][o]), free(out[1][o]);
    }
    engine_free(&e);
}

/* ReLU backward -> BatchNorm backward (dx, dgamma, dbeta): one kernel (two
   phases by samples: the parts' sums, then dx). */
static void bn_backward_case(int rank, int64_t N, int64_t H, int64_t W, const char *what) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    int64_t C = 4;
    Node *dy = leaf(g, false, "dy", rank, N, C, H, W), *y = leaf(g, false, "y", rank, N, C, H, W);
    Node *x = leaf(g, false, "x", rank, N, C, H, W), *st = leaf(g, false, "st", 2, 2, C, 0, 0);
    Node *gamma = leaf(g, true, "gamma", 1, C, 0, 0, 0);
    Node *gr = ir_relu_back(g, dy, y);
    Node *dx = ir_bn_train_dx(g, gr, x, st, gamma, 1e-5), *dg = ir_bn_dgamma(g, gr, x, st, 1e-5), *db = ir_chan_sum(g, gr);
    graph_add_output(g, "dx", dx);
    graph_add_output(g, "dgamma", dg);
    graph_add_output(g, "dbeta", db);
    plan(g);
    CHECKF(graph_kernel_count(g) == 1, "%s: %d kernels", what, graph_kernel_count(g));
    CHECK(gr->inlined && dx->kernel && dx->kernel->kind == KERNEL_BN_DX && dx->kernel->nmembers == 3);
    compare_engines(g, what);
    if (N >= 32) check_threads_bitwise(g, what);
    arena_free(&a);
}

TEST(fuse_bn_backward_one_kernel_planes) {
    bn_backward_case(4, 3, 5, 3, "bn backward [N,C,H,W]");
    bn_backward_case(4, 40, 8, 8, "bn backward [40,C,8,8]");     /* 16 parts of 2-3 samples */
    bn_backward_case(4, 37, 16, 16, "bn backward [37,C,16,16]");   /* both phases split over two threads */
}
TEST(fuse_bn_backward_one_kernel_rows) {
    bn_backward_case(2, 3, 0, 0, "bn backward [N,C]");
    bn_backward_case(2, 9000, 0, 0, "bn backward [9000,C]");   /* both phases split over two threads */
}

/* A residual gradient relu_back(a + b, y) read by two BatchNorm backwards
   (a block's bn2 and its shortcut's): recomputing it in both would load
   three tensors twice per pass, so it is stored once; the sum inside it
   stays inlined. */
TEST(fuse_stores_values_costly_to_recompute) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    Node *da = leaf(g, false, "da", 4, 2, 3, 4, 4), *db = leaf(g, false, "db", 4, 2, 3, 4, 4);
    Node *y = leaf(g, false, "y", 4, 2, 3, 4, 4), *x1 = leaf(g, false, "x1", 4, 2, 3, 4, 4), *x2 = leaf(g, false, "x2", 4, 2, 3, 4, 4);
    Node *sum = ir_add(g, da, db), *gr = ir_relu_back(g, sum, y);
    Node *g1 = leaf(g, true, "g1", 1, 3, 0, 0, 0), *g2 = leaf(g, true, "g2", 1, 3, 0, 0, 0);
    Node *st1 = ir_bn_stats(g, x1), *st2 = ir_bn_stats(g, x2);
    graph_add_output(g, "dx1", ir_bn_train_dx(g, gr, x1, st1, g1, 1e-5));
    graph_add_output(g, "dx2", ir_bn_train_dx(g, gr, x2, st2, g2, 1e-5));
    plan(g);
    CHECK(!gr->inlined && gr->region >= 0 && sum->inlined);
    compare_engines(g, "stored residual gradient");
    arena_free(&a);
}

/* Conv-4's block tail: BatchNorm -> ReLU -> 2x2 average pool, and a
   global average pool of the same values. The pools are generated kernels
   computing BatchNorm + ReLU as they read, so nothing else runs after the
   statistics. Widths 8 (a vector's half) and 6 (no vector multiple). */
static void pool_case(int64_t H, int64_t W) {
    char what[64];
    snprintf(what, sizeof what, "bn-relu-pool %lldx%lld", (long long)H, (long long)W);
    Arena a = {0};
    Graph *g = new_graph(&a);
    Node *x = leaf(g, false, "x", 4, 3, 5, H, W), *st = ir_bn_stats(g, x);
    Node *z = ir_relu(g, ir_bn_train(g, x, st, leaf(g, true, "gamma", 1, 5, 0, 0, 0), leaf(g, true, "beta", 1, 5, 0, 0, 0), 1e-5));
    Node *p = ir_avgpool2d(g, z, 2, 2, 0), *gp = ir_global_avgpool(g, z);
    graph_add_output(g, "pooled", p);
    graph_add_output(g, "features", gp);
    plan(g);
    CHECKF(graph_kernel_count(g) == 3, "%s: %d kernels", what, graph_kernel_count(g));   /* statistics, two pools */
    CHECK(z->inlined && p->kernel && p->kernel->kind == KERNEL_POOL && gp->kernel && gp->kernel->kind == KERNEL_POOL);
    compare_engines(g, what);
    arena_free(&a);
}

TEST(fuse_pool_reads_bn_relu) {
    pool_case(8, 8);
    pool_case(4, 6);
}

/* The pooling gradients of Conv-4's backward: avgpool2d_back (or
   global_avgpool_back) -> ReLU backward -> BatchNorm backward is one
   kernel, the gradient upsampled per plane inside it; widths whose half
   rows are 16, 10 (two-float chunks) and 3 floats; and an elementwise root
   reading an upsampled gradient. */
static void unpool_case(int64_t H, int64_t W, bool global) {
    char what[64];
    snprintf(what, sizeof what, "%s -> bn backward %lldx%lld", global ? "global unpool" : "unpool", (long long)H, (long long)W);
    Arena a = {0};
    Graph *g = new_graph(&a);
    int64_t N = 2, C = 3;
    Node *y = leaf(g, false, "y", 4, N, C, H, W), *x = leaf(g, false, "x", 4, N, C, H, W);
    Node *st = leaf(g, false, "st", 2, 2, C, 0, 0), *gamma = leaf(g, true, "gamma", 1, C, 0, 0, 0);
    Node *up = global ? ir_global_avgpool_back(g, leaf(g, false, "d", 2, N, C, 0, 0), H, W)
                      : ir_avgpool2d_back(g, leaf(g, false, "d", 4, N, C, H / 2, W / 2), x, 2, 2, 0);
    Node *gr = ir_relu_back(g, up, y);
    graph_add_output(g, "dx", ir_bn_train_dx(g, gr, x, st, gamma, 1e-5));
    graph_add_output(g, "dgamma", ir_bn_dgamma(g, gr, x, st, 1e-5));
    graph_add_output(g, "dbeta", ir_chan_sum(g, gr));
    Node *up2 = global ? ir_global_avgpool_back(g, leaf(g, false, "d2", 2, N, C, 0, 0), H, W)
                       : ir_avgpool2d_back(g, leaf(g, false, "d2", 4, N, C, H / 2, W / 2), x, 2, 2, 0);
    graph_add_output(g, "masked", ir_relu_back(g, up2, y));
    plan(g);
    CHECKF(graph_kernel_count(g) == 2, "%s: %d kernels", what, graph_kernel_count(g));
    CHECK(up->inlined && gr->inlined && up2->inlined);
    compare_engines(g, what);
    arena_free(&a);
}

TEST(fuse_unpool_into_bn_backward) {
    unpool_case(4, 32, false);
    unpool_case(6, 20, false);
    unpool_case(2, 6, false);
    unpool_case(4, 4, true);
    unpool_case(3, 5, true);
}

/* An upsampled gradient read by a convolution cannot be computed in its
   padding loop: it is stored (the runtime's avgpool2d_back). */
TEST(fuse_unpool_stored_for_other_readers) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    Node *d = leaf(g, false, "d", 4, 2, 4, 4, 4), *x = leaf(g, false, "x", 4, 2, 4, 8, 8);
    Node *up = ir_avgpool2d_back(g, d, x, 2, 2, 0);
    graph_add_output(g, "dw", ir_conv2d_dw(g, up, x, 1, 1, 3, 3));
    plan(g);
    CHECK(!up->inlined && up->region >= 0);
    compare_engines(g, "unpool read by a weight gradient");
    arena_free(&a);
}

/* The relation head's forward shape: [N, C] BatchNorm -> LeakyReLU. */
TEST(fuse_rows_bn_leaky_relu) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    Node *x = leaf(g, false, "x", 2, 7, 19, 0, 0), *st = ir_bn_stats(g, x);
    Node *bn = ir_bn_train(g, x, st, leaf(g, true, "gamma", 1, 19, 0, 0, 0), leaf(g, true, "beta", 1, 19, 0, 0, 0), 1e-5);
    Node *z = ir_leaky_relu(g, bn, 0.01);
    graph_add_output(g, "features", z);
    plan(g);
    CHECK(graph_kernel_count(g) == 2 && count_kind(g, KERNEL_EW) == 1 && bn->inlined);
    compare_engines(g, "rows bn leaky_relu");
    arena_free(&a);
}

/* The relation head's backward from its score: the one-output linear
   layer's input gradient (an outer product dy[n] w[c]) -> leaky ReLU
   backward -> BatchNorm backward, one kernel; the outer product is never
   stored (the same f32 products as the runtime's outer_rows), and one and
   two threads agree bit for bit. N 9000: both phases split. */
static void outer_case(int64_t N, int64_t C) {
    char what[64];
    snprintf(what, sizeof what, "outer -> leaky -> bn backward [%lld,%lld]", (long long)N, (long long)C);
    Arena a = {0};
    Graph *g = new_graph(&a);
    Node *x = leaf(g, false, "x", 2, N, C, 0, 0), *st = ir_bn_stats(g, x);
    Node *gamma = leaf(g, true, "gamma", 1, C, 0, 0, 0);
    Node *bn = ir_bn_train(g, x, st, gamma, leaf(g, true, "beta", 1, C, 0, 0, 0), 1e-5);
    Node *dy = leaf(g, false, "dy", 2, N, 1, 0, 0), *w = leaf(g, true, "w2", 2, 1, C, 0, 0);
    Node *outer = ir_linear_dx(g, dy, w), *gr = ir_leaky_relu_back(g, outer, bn, 0.01);
    graph_add_output(g, "dx", ir_bn_train_dx(g, gr, x, st, gamma, 1e-5));
    graph_add_output(g, "dgamma", ir_bn_dgamma(g, gr, x, st, 1e-5));
    graph_add_output(g, "dbeta", ir_chan_sum(g, gr));
    graph_add_output(g, "masked", ir_leaky_relu_back(g, ir_linear_dx(g, dy, w), bn, 0.01));
    plan(g);
    /* the statistics, the BatchNorm backward, the masked outer product */
    CHECKF(outer->inlined && gr->inlined && graph_kernel_count(g) == 3, "%s: %d kernels, outer %sinlined", what,
           graph_kernel_count(g), outer->inlined ? "" : "not ");
    compare_engines(g, what);
    check_threads_bitwise(g, what);
    arena_free(&a);
}

TEST(fuse_outer_product_into_bn_backward) {
    outer_case(7, 19);
    outer_case(9000, 16);
}

/* The relation head's first layer per view: pair_halves -> bias_add is one
   runtime kernel adding the bias as it writes the pairs' sums (pair_halves
   never stored); a pair_halves read by anything else stays a kernel. */
TEST(fuse_pair_halves_with_bias) {
    for (int other = 0; other < 2; other++) {
        Arena a = {0};
        Graph *g = new_graph(&a);
        int64_t K = 3, B = 5, H = 12;
        Node *x = leaf(g, false, "x", 2, K * B, 2 * H, 0, 0), *bias = leaf(g, true, "bias", 1, H, 0, 0, 0);
        Node *ph = ir_pair_halves(g, x, (int)K), *y = ir_bias_add(g, ph, bias);
        graph_add_output(g, "h", y);
        if (other) graph_add_output(g, "relu", ir_relu(g, ph));
        plan(g);
        bool fused = ph->kernel && ph->kernel->kind == KERNEL_PAIR_BIAS && y->kernel == ph->kernel && ph->inlined &&
                     ph->region < 0;
        CHECKF(fused == !other, "pair_halves %s: %sfused with its bias", other ? "read twice" : "read once", fused ? "" : "not ");
        compare_engines(g, other ? "pair_halves read twice" : "pair_halves + bias");
        arena_free(&a);
    }
}

/* A value read outside generated kernels is stored, not inlined. */
TEST(fuse_keeps_values_read_by_other_kernels) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    Node *x = leaf(g, false, "x", 4, 2, 3, 4, 4), *w = leaf(g, true, "w", 4, 3, 3, 1, 1);
    Node *r = ir_relu(g, x), *y = ir_conv2d(g, r, w, 1, 0), *z = ir_add(g, r, y);
    graph_add_output(g, "features", z);
    plan(g);
    CHECK(!r->inlined && r->region >= 0);
    compare_engines(g, "relu read by conv");
    arena_free(&a);
}

/* Direct convolutions (codegen/cg_conv.c), forward and both gradients, on
   shapes that exercise the tiling: channel counts that the output block
   does not divide, planes of one and of three vectors per row, narrow
   planes packed two and four rows to a vector; 3x3 at stride 1 and 2, 1x1
   at stride 2. */
static void direct_conv_case(int64_t N, int64_t C, int64_t O, int64_t H, int64_t W, int K, int S) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    int P = K / 2;
    int64_t Ho = (H + 2 * P - K) / S + 1, Wo = (W + 2 * P - K) / S + 1;
    Node *x = leaf(g, false, "x", 4, N, C, H, W), *w = leaf(g, true, "w", 4, O, C, K, K);
    Node *dy = leaf(g, false, "dy", 4, N, O, Ho, Wo);
    Node *y = ir_conv2d(g, x, w, S, P), *dx = ir_conv2d_dx(g, dy, w, S, P, H, W), *dw = ir_conv2d_dw(g, dy, x, S, P, K, K);
    graph_add_output(g, "y", y);
    graph_add_output(g, "dx", dx);
    graph_add_output(g, "dw", dw);
    plan(g);
    char what[96];
    snprintf(what, sizeof what, "direct conv%dx%d/%d N%lld C%lld O%lld %lldx%lld", K, K, S, (long long)N, (long long)C,
             (long long)O, (long long)H, (long long)W);
    CHECKF(y->direct && dx->direct && dw->direct, "%s: not direct", what);
    compare_engines(g, what);
    arena_free(&a);
}

/* Gray inputs (Graph.gray_input): the forward and weight gradient of a
   convolution of the step's input read its channel 0 alone, with the
   weights summed over channels, and match the interpreter's whole
   convolution on images whose channels are equal; on other images they
   must not (the kernels really skip channels 1 and 2). A convolution of
   an inner value and the input gradient stay whole. */
static void gray_case(int64_t N, int64_t C, int64_t O, int64_t H, int64_t W, int S, bool gray_x) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    g->gray_input = true;
    int64_t Ho = (H + 2 - 3) / S + 1, Wo = (W + 2 - 3) / S + 1;
    Node *x = leaf(g, false, gray_x ? "xgray" : "x", 4, N, C, H, W), *w = leaf(g, true, "w", 4, O, C, 3, 3);
    Node *dy = leaf(g, false, "dy", 4, N, O, Ho, Wo);
    Node *y = ir_conv2d(g, x, w, S, 1), *dw = ir_conv2d_dw(g, dy, x, S, 1, 3, 3);
    Node *w2 = leaf(g, true, "w2", 4, O, O, 3, 3), *y2 = ir_conv2d(g, y, w2, 1, 1);
    graph_add_output(g, "y", y);
    graph_add_output(g, "dw", dw);
    graph_add_output(g, "y2", y2);
    plan(g);
    char what[96];
    snprintf(what, sizeof what, "gray conv3x3/%d N%lld C%lld O%lld %lldx%lld", S, (long long)N, (long long)C, (long long)O,
             (long long)H, (long long)W);
    CHECKF(y->gray_x && dw->gray_x && !y2->gray_x, "%s: gray_x %d %d %d", what, y->gray_x, dw->gray_x, y2->gray_x);
    if (gray_x) compare_engines(g, what);
    else CHECKF(!engines_agree(g, what, false), "%s: colour inputs matched the whole convolution", what);
    arena_free(&a);
}

TEST(fuse_direct_conv_gray_input) {
    gray_case(3, 3, 8, 32, 32, 1, true);    /* Conv-4's first layer */
    gray_case(2, 3, 16, 16, 16, 1, true);
    gray_case(2, 3, 6, 8, 8, 1, true);      /* packed planes */
    gray_case(2, 3, 16, 32, 32, 2, true);   /* strided */
    gray_case(2, 3, 8, 32, 32, 1, false);
    /* without Graph.gray_input nothing is gray */
    Arena a = {0};
    Graph *g = new_graph(&a);
    Node *y = ir_conv2d(g, leaf(g, false, "x", 4, 2, 3, 16, 16), leaf(g, true, "w", 4, 8, 3, 3, 3), 1, 1);
    graph_add_output(g, "y", y);
    plan(g);
    CHECK(y->direct && !y->gray_x);
    arena_free(&a);
}

/* Planes too large for a padded copy on a thread's stack stay on im2col +
   BLAS (ImageNet-sized layers), as do odd strided planes and 5x5 taps; the
   CIFAR ones are direct. */
TEST(fuse_direct_conv_only_where_it_fits) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    Node *big = ir_conv2d(g, leaf(g, false, "x", 4, 1, 64, 128, 128), leaf(g, true, "w", 4, 64, 64, 3, 3), 1, 1);
    Node *small = ir_conv2d(g, leaf(g, false, "x2", 4, 1, 64, 32, 32), leaf(g, true, "w2", 4, 64, 64, 3, 3), 1, 1);
    Node *strided = ir_conv2d(g, leaf(g, false, "x3", 4, 1, 16, 32, 32), leaf(g, true, "w3", 4, 32, 16, 3, 3), 2, 1);
    Node *odd = ir_conv2d(g, leaf(g, false, "x4", 4, 1, 16, 30, 30), leaf(g, true, "w4", 4, 32, 16, 3, 3), 2, 1);
    Node *k5 = ir_conv2d(g, leaf(g, false, "x5", 4, 1, 16, 32, 32), leaf(g, true, "w5", 4, 32, 16, 5, 5), 1, 2);
    const Target *t = target_host();
    CHECK(!cg_caps()->conv_direct(big, t) && cg_caps()->conv_direct(small, t) && cg_caps()->conv_direct(strided, t) &&
          !cg_caps()->conv_direct(odd, t) && !cg_caps()->conv_direct(k5, t));
    arena_free(&a);
}

TEST(fuse_direct_conv_matches_interpreter) {
    direct_conv_case(2, 3, 5, 6, 16, 3, 1);
    direct_conv_case(3, 16, 16, 32, 32, 3, 1);
    direct_conv_case(1, 7, 6, 4, 48, 3, 1);
    direct_conv_case(3, 5, 6, 8, 8, 3, 1);     /* packed: two rows per vector */
    direct_conv_case(2, 4, 8, 4, 4, 3, 1);     /* packed: four rows per vector */
}

TEST(fuse_direct_strided_conv_matches_interpreter) {
    direct_conv_case(3, 16, 32, 32, 32, 3, 2);   /* resnet32's stage 2 entry */
    direct_conv_case(2, 5, 7, 12, 96, 3, 2);     /* three vectors per row, odd channel counts */
    direct_conv_case(3, 32, 64, 16, 16, 3, 2);   /* stage 3 entry: packed output, two rows per vector */
    direct_conv_case(2, 3, 4, 8, 8, 3, 2);       /* packed, four rows per vector */
    direct_conv_case(3, 16, 32, 32, 32, 1, 2);   /* the projection shortcuts */
    direct_conv_case(2, 5, 12, 16, 16, 1, 2);
}

/* Prologue fusion: relu(bn_train(x)) read by a direct convolution, its
   weight gradient and a ReLU backward is never stored; the convolutions
   compute it while padding their input (wide and packed planes). */
static void prologue_case(int64_t H, int64_t W) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    int64_t N = 2, C = 5, O = 4;
    Node *x = leaf(g, false, "x", 4, N, C, H, W), *st = ir_bn_stats(g, x);
    Node *bn = ir_bn_train(g, x, st, leaf(g, true, "gamma", 1, C, 0, 0, 0), leaf(g, true, "beta", 1, C, 0, 0, 0), 1e-5);
    Node *y = ir_relu(g, bn), *w = leaf(g, true, "w", 4, O, C, 3, 3);
    Node *z = ir_conv2d(g, y, w, 1, 1);
    Node *dz = leaf(g, false, "dz", 4, N, O, H, W), *dy = leaf(g, false, "dy", 4, N, C, H, W);
    graph_add_output(g, "z", z);
    graph_add_output(g, "dw", ir_conv2d_dw(g, dz, y, 1, 1, 3, 3));
    graph_add_output(g, "dx", ir_relu_back(g, dy, y));
    plan(g);
    char what[64];
    snprintf(what, sizeof what, "prologue fusion %lldx%lld", (long long)H, (long long)W);
    CHECKF(y->inlined && bn->inlined && y->region < 0, "%s: relu(bn) is stored", what);
    compare_engines(g, what);
    arena_free(&a);
}

TEST(fuse_bn_relu_into_direct_conv_input) {
    prologue_case(16, 16);
    prologue_case(8, 8);
}

/* Epilogue fusion (KERNEL_DX_EPI): a residual block's output gradient
   relu_back(shortcut gradient + conv2d_dx(dy, w), relu(bn(x) + s)) is one
   kernel, the input gradient never stored: the direct convolution computes
   the ReLU backward on each tile (wide and packed planes; a stride-2 input
   gradient keeps two kernels: fuse_dx_epilogue). */
static void epilogue_case(int64_t N, int64_t C, int64_t O, int64_t H, int64_t W, int K, int S, bool pooled) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    int P = K / 2;
    int64_t Ho = (H + 2 * P - K) / S + 1, Wo = (W + 2 * P - K) / S + 1;
    Node *x = leaf(g, false, "x", 4, N, C, H, W), *st = ir_bn_stats(g, x), *s = leaf(g, false, "s", 4, N, C, H, W);
    Node *bn = ir_bn_train(g, x, st, leaf(g, true, "gamma", 1, C, 0, 0, 0), leaf(g, true, "beta", 1, C, 0, 0, 0), 1e-5);
    Node *y = ir_relu(g, ir_add(g, bn, s));
    Node *dy = leaf(g, false, "dy", 4, N, O, Ho, Wo), *w = leaf(g, true, "w", 4, O, C, K, K);
    Node *dx = ir_conv2d_dx(g, dy, w, S, P, H, W);
    /* the shortcut gradient: stored, or (the last block) a global average pool's gradient */
    Node *gs = pooled ? ir_global_avgpool_back(g, leaf(g, false, "gp", 2, N, C, 0, 0), H, W) : leaf(g, false, "gs", 4, N, C, H, W);
    Node *r = ir_relu_back(g, ir_add(g, gs, dx), y);
    graph_add_output(g, "r", r);
    plan(g);
    char what[96];
    snprintf(what, sizeof what, "epilogue conv%dx%d/%d N%lld C%lld O%lld %lldx%lld%s", K, K, S, (long long)N, (long long)C,
             (long long)O, (long long)H, (long long)W, pooled ? " pooled" : "");
    bool fused = S == 1;
    CHECKF(dx->direct, "%s: not direct", what);
    if (fused)
        CHECKF(r->kernel && r->kernel->kind == KERNEL_DX_EPI && dx->kernel == r->kernel && dx->inlined && dx->region < 0 &&
               graph_kernel_count(g) == 2, "%s: not bn_stats + one epilogue kernel (%d kernels)", what, graph_kernel_count(g));
    else
        CHECKF(!dx->inlined && dx->region >= 0 && count_kind(g, KERNEL_DX_EPI) == 0, "%s: fused", what);
    compare_engines(g, what);
    arena_free(&a);
}

TEST(fuse_dx_epilogue_matches_interpreter) {
    epilogue_case(3, 16, 16, 32, 32, 3, 1, false);
    epilogue_case(2, 5, 7, 6, 16, 3, 1, false);       /* odd channel counts */
    epilogue_case(3, 8, 6, 8, 8, 3, 1, false);        /* packed: two rows per vector */
    epilogue_case(2, 64, 64, 8, 8, 3, 1, false);      /* resnet32's stage 3 */
    epilogue_case(2, 64, 64, 8, 8, 3, 1, true);       /* its last block */
    epilogue_case(2, 6, 5, 4, 16, 3, 1, true);
    epilogue_case(3, 16, 32, 32, 32, 3, 2, false);    /* stride 2: not fused */
}

/* BatchNorm sums in the epilogue: the backward of conv -> BatchNorm ->
   ReLU -> conv. g = relu_back(conv2d_dx(dy, w), relu(bn(x))), read only by
   the BatchNorm backward, is made (and stored) by the input gradient's
   epilogue, which also sums it per image for bn_dgamma and chan_sum; the
   BatchNorm backward then only writes dx. (The statistics are a leaf: a
   bn_stats of x would be a kernel of its own.) */
static void epilogue_sums_case(int64_t N, int64_t C, int64_t O, int64_t H, int64_t W) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    Node *x = leaf(g, false, "x", 4, N, C, H, W), *st = leaf(g, false, "st", 2, 2, C, 0, 0);
    Node *gamma = leaf(g, true, "gamma", 1, C, 0, 0, 0);
    Node *y = ir_relu(g, ir_bn_train(g, x, ir_bn_stats(g, x), gamma, leaf(g, true, "beta", 1, C, 0, 0, 0), 1e-5));
    /* the statistics the backward reads: given, like the forward's saved ones */
    Node *dy = leaf(g, false, "dy", 4, N, O, H, W), *w = leaf(g, true, "w", 4, O, C, 3, 3);
    Node *dxc = ir_conv2d_dx(g, dy, w, 1, 1, H, W), *gr = ir_relu_back(g, dxc, y);
    Node *dx = ir_bn_train_dx(g, gr, x, st, gamma, 1e-5), *dg = ir_bn_dgamma(g, gr, x, st, 1e-5), *db = ir_chan_sum(g, gr);
    graph_add_output(g, "dx", dx);
    graph_add_output(g, "dgamma", dg);
    graph_add_output(g, "dbeta", db);
    plan(g);
    char what[96];
    snprintf(what, sizeof what, "epilogue sums N%lld C%lld O%lld %lldx%lld", (long long)N, (long long)C, (long long)O,
             (long long)H, (long long)W);
    const Kernel *ke = dxc->kernel, *kb = dx->kernel;
    CHECKF(ke && ke->kind == KERNEL_DX_EPI && ke->epilogue == gr && dg->kernel == ke && db->kernel == ke &&
           !gr->inlined && gr->region >= 0, "%s: no epilogue kernel making g and its sums", what);
    CHECKF(kb && kb->kind == KERNEL_BN_DX && kb->nmembers == 1 && kb->given[0] == dg && kb->given[1] == db,
           "%s: the BatchNorm backward makes its own sums", what);
    compare_engines(g, what);
    arena_free(&a);
}

TEST(fuse_dx_epilogue_bn_sums_match_interpreter) {
    epilogue_sums_case(3, 16, 16, 32, 32);
    epilogue_sums_case(5, 6, 5, 4, 16);    /* odd channels: tiles of fewer output channels */
    epilogue_sums_case(3, 8, 8, 8, 8);     /* packed planes */
}

/* A block's backward: the 2x2 pooling gradient -> ReLU backward ->
   BatchNorm backward -> the direct weight gradient (and, unless it is the
   first layer, the direct input gradient). Its dx, read by those alone,
   is applied in each of them image by image (Kernel.apply_in) and never
   stored; dgamma and dbeta are written by that second phase. stage false:
   the same graph with that decision undone and dx planned into memory. */
static Graph *block_backward(Arena *a, int64_t N, int64_t C, int64_t O, int64_t H, int64_t W, bool first, bool stage) {
    Graph *g = new_graph(a);
    Node *x = leaf(g, false, "x", 4, N, C, H, W), *w = leaf(g, true, "w", 4, O, C, 3, 3);
    Node *y = ir_conv2d(g, x, w, 1, 1), *st = ir_bn_stats(g, y), *gamma = leaf(g, true, "gamma", 1, O, 0, 0, 0);
    Node *z = ir_relu(g, ir_bn_train(g, y, st, gamma, leaf(g, true, "beta", 1, O, 0, 0, 0), 1e-5));
    Node *up = ir_avgpool2d_back(g, leaf(g, false, "d", 4, N, O, H / 2, W / 2), z, 2, 2, 0);
    Node *gr = ir_relu_back(g, up, z);
    Node *dx = ir_bn_train_dx(g, gr, y, st, gamma, 1e-5);
    graph_add_output(g, "dgamma", ir_bn_dgamma(g, gr, y, st, 1e-5));
    graph_add_output(g, "dbeta", ir_chan_sum(g, gr));
    graph_add_output(g, "dw", ir_conv2d_dw(g, dx, x, 1, 1, 3, 3));
    graph_add_output(g, "pooled", ir_avgpool2d(g, z, 2, 2, 0));
    if (!first) graph_add_output(g, "dinput", ir_conv2d_dx(g, dx, w, 1, 1, H, W));
    plan(g);
    if (!stage && dx->kernel) {
        Diag d = {0};
        dx->kernel->apply_in = NULL;
        CHECK(pass_memplan(g, &d));
    }
    return g;
}

/* The outputs of g compiled (a malloc'd array each) on `threads` threads. */
static void run_jit(Graph *g, int threads, float **out) {
    Engine e;
    CgOptions co = {.target = test_target()};
    REQUIRE(engine_init(&e, g, ENGINE_JIT, &co));
    set_leaves(g, &e, NULL);
    rt_pool_init(threads);
    engine_run(&e);
    rt_pool_init(1);
    for (int o = 0; o < g->nouts; o++) {
        out[o] = malloc((size_t)node_numel(g->outs[o].node) * sizeof(float));
        engine_get(&e, g->outs[o].node, out[o]);
    }
    engine_free(&e);
}

static void staged_case(int64_t N, int64_t C, int64_t O, int64_t H, int64_t W, bool first) {
    char what[96];
    snprintf(what, sizeof what, "bn backward applied in dw%s N%lld C%lld O%lld %lldx%lld", first ? "" : " and dx",
             (long long)N, (long long)C, (long long)O, (long long)H, (long long)W);
    Arena a = {0}, b = {0};
    Graph *g = block_backward(&a, N, C, O, H, W, first, true), *h = block_backward(&b, N, C, O, H, W, first, false);
    const Node *dw = g->outs[2].node, *dx = dw->in[0], *hdx = h->outs[2].node->in[0];
    const Node *last = first ? dw : g->outs[4].node;
    CHECKF(dw->direct && last->direct && dx->op == OP_BN_TRAIN_DX && dx->kernel && dx->kernel->apply_in == last &&
           dx->region < 0, "%s: dx is stored, not applied in its readers", what);
    REQUIRE(hdx->kernel && !hdx->kernel->apply_in && hdx->region >= 0);
    compare_engines(g, what);
    /* the same code: the same bits as storing dx, whatever the threads
       (direct kernels on both sides: a stored dy's input gradient would
       otherwise be Winograd's) */
    cg_conv_winograd = false;
    for (int t = 1; t <= 2; t++) {
        float *og[8], *oh[8];
        run_jit(g, t, og);
        run_jit(h, t, oh);
        for (int o = 0; o < g->nouts; o++) {
            CHECKF(!memcmp(og[o], oh[o], (size_t)node_numel(g->outs[o].node) * sizeof(float)),
                   "%s, %d thread(s): output %s differs from the stored dx's", what, t, g->outs[o].name);
            free(og[o]), free(oh[o]);
        }
    }
    cg_conv_winograd = true;
    arena_free(&a);
    arena_free(&b);
}

TEST(fuse_bn_backward_applied_in_its_readers) {
    staged_case(37, 3, 8, 32, 32, true);     /* Conv-4's first layer: one image per core call; both phases on two threads */
    staged_case(40, 4, 8, 8, 8, true);       /* packed planes: several images per call */
    staged_case(37, 8, 16, 16, 16, false);   /* Conv-4's second layer: the input gradient too */
    staged_case(40, 4, 8, 8, 8, false);
}

/* The direct kernels, their prologues and epilogues on the other targets
   this host runs (tiles of other vector widths and register counts). */
static void test_fuse_winograd_conv_matches_interpreter(void);

static void direct_kernels_all(void) {
    test_fuse_winograd_conv_matches_interpreter();
    test_fuse_direct_conv_matches_interpreter();
    test_fuse_direct_conv_gray_input();
    test_fuse_direct_strided_conv_matches_interpreter();
    test_fuse_bn_relu_into_direct_conv_input();
    test_fuse_dx_epilogue_matches_interpreter();
    test_fuse_dx_epilogue_bn_sums_match_interpreter();
    test_fuse_bn_backward_applied_in_its_readers();
}

TEST(fuse_direct_kernels_every_target) { test_other_targets(direct_kernels_all); }

/* 512-bit vectors in a generated kernel, on a host that has them. */
TEST(fuse_generated_code_uses_zmm) {
    char *feat = LLVMGetHostCPUFeatures();
    bool avx512 = strstr(feat, "+avx512f") != NULL;
    LLVMDisposeMessage(feat);
    if (!avx512) SKIP("host without AVX-512");
    Arena a = {0};
    Graph *g = new_graph(&a);
    Node *x = leaf(g, false, "x", 4, 8, 16, 32, 32), *r = leaf(g, false, "r", 4, 8, 16, 32, 32);
    graph_add_output(g, "features", ir_relu(g, ir_add(g, x, r)));
    plan(g);
    CgModule *m = cg_build(g, "zmm_probe", NULL);
    REQUIRE(m);
    char *asm_text = cg_assembly(m);
    REQUIRE(asm_text);
    CHECKF(strstr(asm_text, "%zmm") != NULL, "no zmm register in the generated kernel");
    free(asm_text);
    cg_free(m);
    arena_free(&a);
}

/* The math ops compiled against the interpreter: a SimCLR-like head
   (projection, normalisation, similarity matrix: runtime kernels) with exp,
   softplus and log of it, and each backward op (generated loops). */
TEST(compiled_math_ops_match_interpreter) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    Node *x = leaf(g, true, "x", 2, 6, 5, 0, 0), *w = leaf(g, true, "w", 2, 4, 5, 0, 0);
    Node *s2 = leaf(g, false, "s2", 2, 6, 6, 0, 0), *dy66 = leaf(g, false, "dy", 2, 6, 6, 0, 0);
    Node *dy64 = leaf(g, false, "dz", 2, 6, 4, 0, 0);
    Node *h = ir_matmul(g, x, w, 0, 1), *z = ir_l2_normalize(g, h, 1e-12), *s = ir_matmul(g, z, z, 0, 1);
    Node *m = ir_mul(g, s, s2), *sp = ir_softplus(g, m);
    graph_add_output(g, "s", s);
    graph_add_output(g, "exp", ir_exp(g, m));
    graph_add_output(g, "log", ir_log(g, sp));
    graph_add_output(g, "log_back", ir_log_back(g, dy66, sp));
    graph_add_output(g, "softplus_back", ir_softplus_back(g, dy66, m));
    graph_add_output(g, "l2_normalize_back", ir_l2_normalize_back(g, dy64, h, 1e-12));
    graph_add_output(g, "matmul a^T", ir_matmul(g, h, x, 1, 0));
    graph_add_output(g, "matmul a^T b^T", ir_matmul(g, x, s, 1, 1));
    plan(g);
    CHECK(m->inlined && sp->inlined && count_kind(g, KERNEL_EW) == 4);
    compare_engines(g, "math ops");
    arena_free(&a);
}

/* The elementwise math ops' loop bodies over [-40, 40] (both sides of
   softplus's threshold, and e^x far below 1's rounding), vectorised on a
   4-d value, and the same ops on a 1-d value (runtime kernels). */
TEST(fused_math_bodies_match_interpreter) {
    Arena a = {0};
    Graph *g = new_graph(&a);
    Node *w = leaf(g, false, "wide", 4, 2, 3, 4, 8), *x = leaf(g, false, "x", 4, 2, 3, 4, 8);
    Node *dy = leaf(g, false, "dy", 4, 2, 3, 4, 8), *v = leaf(g, false, "wide", 1, 37, 0, 0, 0);
    Node *m = ir_mul(g, w, ir_relu(g, x)), *sp = ir_softplus(g, w);
    graph_add_output(g, "exp", ir_exp(g, m));
    graph_add_output(g, "log softplus", ir_log(g, sp));
    graph_add_output(g, "log_back", ir_log_back(g, dy, sp));
    graph_add_output(g, "softplus_back", ir_softplus_back(g, dy, w));
    Node *v1 = ir_softplus(g, v);
    graph_add_output(g, "1-d", ir_log(g, ir_exp(g, v1)));
    plan(g);
    CHECK(m->inlined && sp->inlined && !v1->inlined && !v1->kernel);
    CHECK(count_kind(g, KERNEL_EW) == 4);
    compare_engines(g, "elementwise math");
    arena_free(&a);
}

/* The same loop bodies on the other x86-64 levels this host runs (their
   vector widths: 4 lanes for x86-64-v2, 16 for -v4). */
TEST(fused_math_bodies_every_target) { test_other_targets(test_fused_math_bodies_match_interpreter); }

/* Winograd forwards (cg_conv.c, build_wino): y = conv(relu(bn(x))) with
   its BatchNorm statistics (the previous layer's BatchNorm + ReLU inlined
   into the padding), y2 = conv(x) without, and the input gradient of a
   stored dy (dx: the forward with turned, transposed weights), on Conv-4's stride-1 layers,
   a 32x32 plane, and N not a multiple of a group (4x4 planes: L / 4 images
   a vector). Against the interpreter; against the direct kernels, which
   round otherwise (equal bits would mean Winograd did not run); and on one
   and two threads bit for bit: an image's outputs do not depend on the
   images beside it in a group or a call. */
static Graph *wino_graph(Arena *a, int64_t N, int64_t C, int64_t O, int64_t H, int64_t W) {
    Graph *g = new_graph(a);
    Node *x = leaf(g, false, "x", 4, N, C, H, W), *st = ir_bn_stats(g, x);
    Node *bn = ir_bn_train(g, x, st, leaf(g, true, "gamma", 1, C, 0, 0, 0), leaf(g, true, "beta", 1, C, 0, 0, 0), 1e-5);
    Node *w = leaf(g, true, "w", 4, O, C, 3, 3), *y = ir_conv2d(g, ir_relu(g, bn), w, 1, 1);
    graph_add_output(g, "y", y);
    graph_add_output(g, "ystats", ir_bn_stats(g, y));
    graph_add_output(g, "y2", ir_conv2d(g, x, leaf(g, true, "w2", 4, O, C, 3, 3), 1, 1));
    graph_add_output(g, "dx", ir_conv2d_dx(g, leaf(g, false, "dy", 4, N, O, H, W), w, 1, 1, H, W));
    plan(g);
    return g;
}

static void wino_case(int64_t N, int64_t C, int64_t O, int64_t H, int64_t W) {
    char what[96];
    snprintf(what, sizeof what, "winograd conv3x3 N%lld C%lld O%lld %lldx%lld", (long long)N, (long long)C, (long long)O,
             (long long)H, (long long)W);
    Arena a = {0};
    Graph *g = wino_graph(&a, N, C, O, H, W);
    compare_engines(g, what);
    float *one[8], *two[8], *direct[8];
    int wino = 0;
    run_jit(g, 1, one);
    run_jit(g, 2, two);
    cg_conv_winograd = false;
    run_jit(g, 1, direct);
    compare_engines(g, what);
    cg_conv_winograd = true;
    for (int o = 0; o < g->nouts; o++) {
        size_t bytes = (size_t)node_numel(g->outs[o].node) * sizeof(float);
        if (strcmp(g->outs[o].name, "ystats"))   /* the statistics merge threads' parts in their order */
            CHECKF(!memcmp(one[o], two[o], bytes), "%s: output %s differs between one and two threads", what, g->outs[o].name);
        const Node *conv = g->outs[o].node->op == OP_BN_STATS ? g->outs[o].node->in[0] : g->outs[o].node;
        if (cg_conv_uses_winograd(conv, test_target()))
            CHECKF(memcmp(one[o], direct[o], bytes), "%s: output %s is the direct kernel's, bit for bit", what, g->outs[o].name);
        else   /* a plane too wide for the target's vectors: the direct kernel either way */
            CHECKF(!memcmp(one[o], direct[o], bytes), "%s: output %s is not the direct kernel's", what, g->outs[o].name);
        wino += cg_conv_uses_winograd(conv, test_target());
        free(one[o]), free(two[o]), free(direct[o]);
    }
    /* Conv-4's layers 3 and 4 get Winograd kernels on every target */
    CHECKF(wino > 0 || H > 8, "%s: no Winograd kernel", what);
    arena_free(&a);
}

TEST(fuse_winograd_conv_matches_interpreter) {
    wino_case(5, 32, 64, 4, 4);     /* Conv-4's layer 4: groups of images, the last one partial */
    wino_case(3, 16, 32, 8, 8);     /* layer 3 */
    wino_case(2, 8, 16, 16, 16);    /* layer 2 (direct on AVX2: its 8 tile vectors and their sums fill the registers) */
    wino_case(2, 8, 12, 32, 32);    /* several tile vectors an image; output channels the block does not divide */
    wino_case(33, 32, 64, 4, 4);    /* more images than a call of the statistics' kernel */
}
