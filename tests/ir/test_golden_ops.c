/*
** test_golden_ops.c: every layer alone against PyTorch (tests/golden/ops/):
** forward output, gradients of inputs and parameters (the vector-Jacobian
** product with the file's dy, through autodiff), and BatchNorm's running
** statistics. Layers are built by the same lowering as specs (lower.c).
*/
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/spec.h"
#include "golden_util.h"
#include "frontend/lower.h"
#include "test.h"

static int meta_int(const rt_st_file *f, const char *k, int dflt) {
    const char *v = rt_st_meta(f, k);
    return v ? atoi(v) : dflt;
}

static double meta_num(const rt_st_file *f, const char *k, double dflt) {
    const char *v = rt_st_meta(f, k);
    return v ? atof(v) : dflt;
}

static Node *leaf_like(Graph *g, const rt_st_file *f, const char *name, bool trainable) {
    const rt_tensor *t = rt_st_find(f, name);
    if (!t) return NULL;
    int64_t dim[IR_MAX_RANK];
    for (int i = 0; i < t->rank; i++) dim[i] = t->shape[i];
    return trainable ? ir_param(g, name, t->rank, dim, (rt_init){0}) : ir_input(g, name, t->rank, dim);
}

/* Builds the layer the file describes; NULL (with a failure) if unknown. */
static Node *build(Graph *g, const rt_st_file *f, const char *path) {
    const char *layer = rt_st_meta(f, "layer");
    if (!layer) { test_fail(__FILE__, __LINE__, "%s: no 'layer' metadata", path); return NULL; }
    Node *x = leaf_like(g, f, "in0", true);
    Layer ly = {.loc = {path, 0}};
    if (!strcmp(layer, "conv2d")) {
        ly.kind = LK_CONV2D;
        ly.out = meta_int(f, "out_channels", 0);
        ly.kernel = meta_int(f, "kernel", 0);
        ly.stride = meta_int(f, "stride", 1);
        ly.padding = meta_int(f, "padding", 0);
        ly.bias = meta_int(f, "bias", 0);
    } else if (!strcmp(layer, "linear")) {
        ly.kind = LK_LINEAR;
        ly.out = meta_int(f, "out_features", 0);
        ly.bias = meta_int(f, "bias", 0);
    } else if (!strcmp(layer, "batchnorm2d") || !strcmp(layer, "batchnorm1d")) {
        ly.kind = LK_BATCHNORM;
        ly.dims = layer[9] == '2' ? 2 : 1;
        ly.eps = meta_num(f, "eps", 1e-5);
        ly.momentum = meta_num(f, "momentum", 0.1);
    } else if (!strcmp(layer, "relu")) {
        ly.kind = LK_RELU;
    } else if (!strcmp(layer, "leaky_relu")) {
        ly.kind = LK_LEAKY_RELU;
        ly.slope = meta_num(f, "negative_slope", 0.01);
    } else if (!strcmp(layer, "avgpool2d") || !strcmp(layer, "maxpool2d")) {
        ly.kind = layer[0] == 'a' ? LK_AVGPOOL2D : LK_MAXPOOL2D;
        ly.kernel = meta_int(f, "kernel", 0);
        ly.stride = meta_int(f, "stride", ly.kernel);
        ly.padding = meta_int(f, "padding", 0);
    } else if (!strcmp(layer, "global_avgpool")) {
        ly.kind = LK_GLOBAL_AVGPOOL;
    } else if (!strcmp(layer, "flatten")) {
        ly.kind = LK_FLATTEN;
    } else if (!strcmp(layer, "add")) {
        return ir_add(g, x, leaf_like(g, f, "in1", true));
    } else if (!strcmp(layer, "pairs")) {
        Aggregation agg;
        if (!aggregation_parse(rt_st_meta(f, "aggregation"), &agg)) return NULL;
        Node *t = ir_pair_targets(g, meta_int(f, "K", 0), meta_int(f, "B", 0));
        graph_add_output(g, "targets", t);
        return ir_pairs(g, x, meta_int(f, "K", 0), (int)agg);
    } else if (!strcmp(layer, "focal")) {
        return ir_focal_loss(g, x, leaf_like(g, f, "in1", false), meta_num(f, "gamma", 2), meta_num(f, "alpha", 0.5));
    } else if (!strcmp(layer, "bce")) {
        return ir_bce_loss(g, x, leaf_like(g, f, "in1", false));
    } else {
        test_fail(__FILE__, __LINE__, "%s: unknown layer '%s'", path, layer);
        return NULL;
    }
    return lower_module(g, &ly, x, "m", true);
}

/* The file's name for one of our tensors: "m.weight" -> "weight". */
static const char *file_name(const char *ours) { return strncmp(ours, "m.", 2) == 0 ? ours + 2 : ours; }

static void check_file(const char *path) {
    rt_st_file f = {0};
    if (!golden_read(path, &f)) return;
    Arena a = {0};
    Diag d = {0};
    Graph *g = graph_new(&a);
    g->diag = &d;
    Node *y = build(g, &f, path);
    if (!y) { test_fail(__FILE__, __LINE__, "%s: could not build the layer", path); goto out; }
    graph_add_output(g, "out", y);
    ir_vjp(g, y, ir_input(g, "dy", y->rank, y->dim));
    if (!graph_verify(g, path)) { test_fail(__FILE__, __LINE__, "%s: graph does not verify", path); goto out; }
    Interp it;
    interp_init(&it, g);
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        if (op_table[n->op].fusion != FUSE_LEAF) continue;
        double *v = golden_tensor(&f, path, file_name(n->name), node_numel(n));
        if (v) interp_bind(&it, n, v);
        free(v);
    }
    if (!test_failed_now()) {
        interp_run(&it);
        int compared = 0;
        for (int i = 0; i < g->nouts; i++) {
            const char *on = g->outs[i].name;
            char fname[256];
            if (!strncmp(on, "grad.", 5)) snprintf(fname, sizeof fname, "grad.%s", file_name(on + 5));
            else if (!strncmp(on, "state.", 6)) snprintf(fname, sizeof fname, "state.%s", file_name(on + 6));
            else snprintf(fname, sizeof fname, "%s", on);
            if (!rt_st_find(&f, fname)) {
                if (!strncmp(on, "grad.in", 7) && !strcmp(on, "grad.in1")) continue;
                test_fail(__FILE__, __LINE__, "%s: golden has no '%s'", path, fname);
                continue;
            }
            const Node *n = g->outs[i].node;
            double *ref = golden_tensor(&f, path, fname, node_numel(n));
            if (!ref) continue;
            char what[1400];
            snprintf(what, sizeof what, "%s: %s", path, fname);
            golden_compare(what, interp_value(&it, n), ref, node_numel(n));
            free(ref);
            compared++;
        }
        /* every expected tensor of the file was produced */
        for (int i = 0; i < f.ntensors; i++) {
            const char *tn = f.tensors[i].name;
            if (strncmp(tn, "grad.", 5) && strncmp(tn, "state.", 6) && strcmp(tn, "out")) continue;
            bool found = false;
            for (int k = 0; k < g->nouts && !found; k++) {
                const char *on = g->outs[k].name;
                const char *base = !strncmp(on, "grad.", 5) ? on + 5 : !strncmp(on, "state.", 6) ? on + 6 : on;
                const char *fb = !strncmp(tn, "grad.", 5) ? tn + 5 : !strncmp(tn, "state.", 6) ? tn + 6 : tn;
                found = strncmp(on, tn, 4) == 0 && strcmp(file_name(base), fb) == 0;
            }
            CHECKF(found, "%s: expected tensor '%s' was not computed", path, tn);
        }
        CHECKF(compared >= 2, "%s: only %d tensors compared", path, compared);
    }
    interp_free(&it);
out:
    arena_free(&a);
    rt_st_free(&f);
}

TEST(golden_ops) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ops", golden_dir());
    DIR *dp = opendir(dir);
    REQUIREF(dp, "cannot open %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        size_t len = strlen(e->d_name);
        if (len < 12 || strcmp(e->d_name + len - 12, ".safetensors")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        check_file(path);
        n++;
    }
    closedir(dp);
    CHECKF(n >= 40, "only %d op goldens found in %s", n, dir);
}

/* The reference convolution runs its loops output-position-innermost (for
   speed); each output must still be the per-output sum in (c, kh, kw)
   order, bit for bit, at strides and paddings of every kind. */
TEST(interp_conv2d_is_the_per_output_sum) {
    static const int cases[][7] = {   /* N C H W O K S P */
        {2, 3, 7, 6, 4, 3, 1}, {1, 2, 8, 8, 3, 3, 2}, {2, 4, 5, 5, 2, 1, 2}, {1, 2, 9, 7, 2, 5, 3},
    };
    static const int pads[] = {1, 1, 0, 2};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int N = cases[i][0], C = cases[i][1], H = cases[i][2], W = cases[i][3], O = cases[i][4], K = cases[i][5], S = cases[i][6],
            P = pads[i];
        Arena a = {0};
        Graph *g = graph_new(&a);
        int64_t xd[] = {N, C, H, W}, wd[] = {O, C, K, K};
        Node *x = ir_input(g, "x", 4, xd), *w = ir_input(g, "w", 4, wd), *y = ir_conv2d(g, x, w, S, P);
        REQUIRE(y);
        int64_t nx = node_numel(x), nw = node_numel(w), ny = node_numel(y);
        double *X = malloc(sizeof(double) * (size_t)nx), *Wt = malloc(sizeof(double) * (size_t)nw),
               *got = malloc(sizeof(double) * (size_t)ny);
        for (int64_t k = 0; k < nx; k++) X[k] = sin(0.37 * (double)k + 0.1);
        for (int64_t k = 0; k < nw; k++) Wt[k] = cos(0.91 * (double)k);
        const double *in[] = {X, Wt};
        op_table[OP_CONV2D].fwd(y, in, got);
        int64_t OH = y->dim[2], OW = y->dim[3], bad = 0;
        for (int b = 0; b < N; b++)
            for (int o = 0; o < O; o++)
                for (int64_t oh = 0; oh < OH; oh++)
                    for (int64_t ow = 0; ow < OW; ow++) {
                        double s = 0;
                        for (int c = 0; c < C; c++)
                            for (int kh = 0; kh < K; kh++)
                                for (int kw = 0; kw < K; kw++) {
                                    int64_t ih = oh * S - P + kh, iw = ow * S - P + kw;
                                    if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                    s += X[((b * C + c) * H + ih) * W + iw] * Wt[((o * C + c) * K + kh) * K + kw];
                                }
                        bad += memcmp(&s, &got[((b * O + o) * OH + oh) * OW + ow], sizeof s) != 0;
                    }
        CHECKF(bad == 0, "case %zu: %lld outputs differ from the per-output sum", i, (long long)bad);
        free(X);
        free(Wt);
        free(got);
        arena_free(&a);
    }
}
