/*
** lower.c: builds IR graphs from a model description.
**
** Parameter names follow PyTorch's state dicts: a module's name is one
** component of the path, an unnamed module adds none; specs name modules
** as PyTorch does ("layer1.0.conv1.weight", "downsample.1.running_var",
** with nn.Sequential's index names written out). Two tensors with one
** name are an error at the second layer's line. The backbone's tensors are prefixed "backbone.",
** the relation head's "relation."; a baseline's head is named by its own
** name ("classifier.weight", "head.linear1.weight").
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "frontend/lower.h"

typedef struct Lower {
    Graph *g;
    const Spec *s;
    bool train;
    Node *first_relu;   /* the backbone's first ReLU output (Deep InfoMax's M) */
    /* one rank of a data-parallel run (ops_dist.c): its b of the step's B
       images; b == B: one process, no collectives */
    int64_t B, b;
    bool in_backbone;   /* lowering the backbone: BatchNorm over all ranks */
} Lower;

static bool ranked(const Lower *L) { return L->b != L->B; }

rt_init init_conv_weight(int64_t out, int64_t k) {
    return (rt_init){RT_INIT_NORMAL, sqrt(2.0 / (double)(k * k * out))};
}

rt_init init_linear(int64_t fan_in) { return (rt_init){RT_INIT_UNIFORM, 1.0 / sqrt((double)fan_in)}; }

/* prefix.name; a baseline's head starts from the empty prefix (its own
   name is the first component, as its module's key in the reference) */
static const char *join(Lower *L, const char *prefix, const char *name) {
    if (!*prefix) return arena_strdup(L->g->arena, name);
    return arena_printf(L->g->arena, "%s.%s", prefix, name);
}

static bool name_taken(Lower *L, const char *name) {
    if (graph_find_leaf(L->g, OP_PARAM, name) || graph_find_leaf(L->g, OP_STATE, name)) {
        diag_error(L->g->diag, L->g->loc, "parameter name '%s' is used twice (give the layer a distinct name)", name);
        return true;
    }
    return false;
}

static Node *param(Lower *L, const char *path, const char *what, int rank, const int64_t *dim, rt_init init) {
    const char *name = join(L, path, what);
    return name_taken(L, name) ? NULL : ir_param(L->g, name, rank, dim, init);
}

static Node *state(Lower *L, const char *path, const char *what, int64_t C, double value) {
    const char *name = join(L, path, what);
    return name_taken(L, name) ? NULL : ir_state(L->g, name, 1, &C, (rt_init){RT_INIT_CONST, value});
}

static Node *lower_layer(Lower *L, const Layer *ly, Node *x, const char *path);

static Node *lower_batchnorm(Lower *L, const Layer *ly, Node *x, const char *path) {
    Graph *g = L->g;
    int want = ly->dims == 1 ? 2 : 4;
    if (x->rank != want) {
        char sh[64];
        fmt_shape(sh, sizeof sh, x);
        diag_error(g->diag, ly->loc, "%s: batchnorm%dd: expects a %s input (got %s)", path, ly->dims == 1 ? 1 : 2,
                   ly->dims == 1 ? "[N,C]" : "[N,C,H,W]", sh);
        return NULL;
    }
    int64_t C = x->dim[1];
    Node *gamma = param(L, path, "weight", 1, &C, (rt_init){RT_INIT_CONST, 1});
    Node *beta = param(L, path, "bias", 1, &C, (rt_init){RT_INIT_CONST, 0});
    Node *rm = state(L, path, "running_mean", C, 0), *rv = state(L, path, "running_var", C, 1);
    if (!gamma || !beta || !rm || !rv) return NULL;
    if (!L->train) return ir_bn_eval(g, x, rm, rv, gamma, beta, ly->eps);
    /* over all the step's views: every rank's */
    Node *st = ranked(L) && L->in_backbone ? ir_bn_stats_all(g, x, node_numel(x) / x->dim[1] / L->b * L->B) : ir_bn_stats(g, x);
    Node *y = ir_bn_train(g, x, st, gamma, beta, ly->eps);
    if (!y) return NULL;
    graph_add_output(g, arena_printf(g->arena, "state.%s", rm->name), ir_bn_running(g, rm, st, 0, ly->momentum));
    graph_add_output(g, arena_printf(g->arena, "state.%s", rv->name), ir_bn_running(g, rv, st, 1, ly->momentum));
    return y;
}

static Node *lower_layer(Lower *L, const Layer *ly, Node *x, const char *path) {
    Graph *g = L->g;
    if (!x) return NULL;
    if (ly->name) path = join(L, path, ly->name);
    g->loc = ly->loc;
    g->label = path;
    switch (ly->kind) {
    case LK_SEQUENTIAL:
        for (int i = 0; i < ly->nchildren && x; i++) {
            x = lower_layer(L, ly->children[i], x, path);
        }
        return x;
    case LK_CONV2D: {
        if (x->rank != 4) {
            char sh[64];
            fmt_shape(sh, sizeof sh, x);
            diag_error(g->diag, ly->loc, "%s: conv2d: input must be [N,C,H,W] (got %s)", path, sh);
            return NULL;
        }
        int64_t C = x->dim[1], wd[4] = {ly->out, C, ly->kernel, ly->kernel};
        Node *w = param(L, path, "weight", 4, wd, init_conv_weight(ly->out, ly->kernel));
        Node *y = ir_conv2d(g, x, w, ly->stride, ly->padding);
        if (y && ly->bias) {
            int64_t o = ly->out;
            y = ir_bias_add(g, y, param(L, path, "bias", 1, &o, init_linear(C * ly->kernel * ly->kernel)));
        }
        return y;
    }
    case LK_LINEAR: {
        if (x->rank != 2) {
            char sh[64];
            fmt_shape(sh, sizeof sh, x);
            diag_error(g->diag, ly->loc, "%s: linear: input must be [N,features] (got %s); add flatten or global_avgpool first",
                       path, sh);
            return NULL;
        }
        int64_t I = x->dim[1], wd[2] = {ly->out, I}, o = ly->out;
        Node *y = ir_linear(g, x, param(L, path, "weight", 2, wd, init_linear(I)));
        if (y && ly->bias) y = ir_bias_add(g, y, param(L, path, "bias", 1, &o, init_linear(I)));
        return y;
    }
    case LK_BATCHNORM: return lower_batchnorm(L, ly, x, path);
    case LK_RELU: {
        Node *r = ir_relu(g, x);
        if (!L->first_relu) L->first_relu = r;
        return r;
    }
    case LK_LEAKY_RELU: return ir_leaky_relu(g, x, ly->slope);
    case LK_AVGPOOL2D: return ir_avgpool2d(g, x, ly->kernel, ly->stride, ly->padding);
    case LK_MAXPOOL2D: return ir_maxpool2d(g, x, ly->kernel, ly->stride, ly->padding);
    case LK_GLOBAL_AVGPOOL: return ir_global_avgpool(g, x);
    case LK_FLATTEN: {
        int64_t d[2] = {x->dim[0], x->rank ? node_numel(x) / x->dim[0] : 1};
        return ir_reshape(g, x, 2, d);
    }
    case LK_RESIDUAL: {
        Node *y = lower_layer(L, ly->body, x, path);
        Node *sc = ly->shortcut ? lower_layer(L, ly->shortcut, x, path) : x;
        g->loc = ly->loc;
        g->label = path;
        return ir_add(g, y, sc);
    }
    }
    RRC_ABORT("unknown layer kind %d", (int)ly->kind);
}

/* The backbone on this rank's views; on one rank of several, its
   parameters get partial gradients (NF_RANK_PARTIAL: the runtime sums them
   over ranks) and the features of all ranks are gathered. */
static Node *lower_backbone(Lower *L, Node *x) {
    int first = L->g->nnodes;
    L->in_backbone = true;
    Node *f = lower_layer(L, L->s->backbone, x, "backbone");
    L->in_backbone = false;
    if (f && f->rank != 2) {
        char sh[64];
        fmt_shape(sh, sizeof sh, f);
        diag_error(L->g->diag, L->s->backbone->loc,
                   "backbone: its output must be [N, features] (got %s); end it with global_avgpool or flatten", sh);
        return NULL;
    }
    if (!f || !ranked(L)) return f;
    for (int i = first; i < L->g->nnodes; i++)
        if (L->g->nodes[i]->op == OP_PARAM) L->g->nodes[i]->flags |= NF_RANK_PARTIAL;
    L->g->loc = L->s->backbone->loc;
    L->g->label = "backbone.gather";
    return ir_gather_rows(L->g, f, f->dim[0] / L->b, L->B);
}

static Node *relation_head(Lower *L, Node *pairs) {
    const RelationHead *h = &L->s->head;
    Graph *g = L->g;
    if (!pairs) return NULL;
    g->loc = h->loc;
    g->label = "relation.linear1";
    int64_t I = pairs->dim[1], hid = h->hidden, w1[2] = {hid, I}, w2[2] = {1, hid}, one = 1;
    Node *z = ir_linear(g, pairs, ir_param(g, "relation.linear1.weight", 2, w1, init_linear(I)));
    z = ir_bias_add(g, z, ir_param(g, "relation.linear1.bias", 1, &hid, init_linear(I)));
    g->label = "relation.bn1";
    Layer bn = {.kind = LK_BATCHNORM, .loc = h->loc, .dims = 1, .eps = h->bn_eps, .momentum = h->bn_momentum};
    z = lower_batchnorm(L, &bn, z, "relation.bn1");
    g->loc = h->loc;
    g->label = "relation.leaky_relu";
    z = ir_leaky_relu(g, z, h->slope);
    g->label = "relation.linear2";
    z = ir_linear(g, z, ir_param(g, "relation.linear2.weight", 2, w2, init_linear(hid)));
    z = ir_bias_add(g, z, ir_param(g, "relation.linear2.bias", 1, &one, init_linear(hid)));
    if (!z) return NULL;
    int64_t P = z->dim[0];
    return ir_reshape(g, z, 1, &P);
}

Node *lower_module(Graph *g, const Layer *ly, Node *x, const char *path, bool train) {
    Lower L = {g, NULL, train, NULL, 1, 1, false};
    return lower_layer(&L, ly, x, path);
}

/* A baseline's head on the features f, with a shape check of its output:
   [rows, want] (want 0: any width). */
static Node *method_head(Lower *L, Node *f, int64_t want) {
    const Method *m = &L->s->method;
    Graph *g = L->g;
    Node *z = lower_layer(L, m->head, f, "");
    if (!z) return NULL;
    if (z->rank != 2 || (want && z->dim[1] != want)) {
        char sh[64], w[32] = "[N, D]";
        fmt_shape(sh, sizeof sh, z);
        if (want) snprintf(w, sizeof w, "[%lld, %lld]", (long long)z->dim[0], (long long)want);
        diag_error(g->diag, m->loc, "%s: the head's output must be %s (got %s)", method_name(m->kind), w, sh);
        return NULL;
    }
    return z;
}

/* RotationNet (BASELINES.md 2): x [B] -> its four rotations [4B] -> backbone
   -> head -> 4 logits, cross-entropy against the rotation. */
static bool lower_rotation(Lower *L, Node *x, int64_t B) {
    Graph *g = L->g;
    g->loc = L->s->method.loc;
    g->label = "rotations";
    Node *f = lower_backbone(L, ir_rotations(g, x));
    Node *z = f ? method_head(L, f, 4) : NULL;
    if (!z) return false;
    g->loc = L->s->method.loc;
    g->label = "loss";
    Node *y = ir_block_targets(g, 4 * B, B);
    graph_add_output(g, "loss", ir_softmax_ce(g, z, y));
    graph_add_output(g, "logits", z);
    graph_add_output(g, "targets", y);
    return true;
}

/* SimCLR (BASELINES.md 1): two views [2B] -> backbone -> head -> the
   contrastive loss; the reference's clamp eps on the norm product. */
static bool lower_simclr(Lower *L, Node *x) {
    Graph *g = L->g;
    Node *f = lower_backbone(L, x);
    Node *z = f ? method_head(L, f, 0) : NULL;
    if (!z) return false;
    g->loc = L->s->method.loc;
    g->label = "loss";
    graph_add_output(g, "loss", ir_simclr_loss(g, z, L->s->method.temperature, 1e-8));
    graph_add_output(g, "z", z);
    return true;
}

int spec_backbone_views(const Spec *s) { return s->method.kind == METHOD_ROTATION ? 4 * s->K : s->K; }

/* DeepCluster (BASELINES.md 3): one view [B] -> backbone -> head ->
   [B, clusters] logits; cross-entropy against the pseudolabels y [B],
   weighted per cluster by w [clusters] (inputs the runtime fills each
   epoch from its k-means). */
static bool lower_deepcluster(Lower *L, Node *x, int64_t B) {
    Graph *g = L->g;
    const Method *m = &L->s->method;
    if (!m->reset) {
        diag_error(g->diag, m->loc, "deepcluster: the head has no linear layer (its last one is reset each epoch)");
        return false;
    }
    Node *f = lower_backbone(L, x);
    Node *z = f ? method_head(L, f, m->clusters) : NULL;
    if (!z) return false;
    g->loc = m->loc;
    g->label = "loss";
    int64_t k = m->clusters;
    Node *y = ir_input(g, "y", 1, &B), *w = ir_input(g, "w", 1, &k);
    graph_add_output(g, "loss", ir_weighted_ce(g, z, y, w));
    graph_add_output(g, "logits", z);
    return true;
}

/* Deep InfoMax (BASELINES.md 4, alpha = 0): y = the backbone's features,
   M = the map after its first ReLU; the local discriminator scores (M_i,
   y_i) and (M_{i+1}, y_i) in one batch (no BatchNorm in it, so batching
   changes nothing), the JSD-estimator loss times beta; the prior
   discriminator scores uniform samples u [B, F] (an input the runtime
   draws) and y, the prior loss times gamma. Both discriminators' parameters
   are under "loss_fn.", the reference's checkpoint key. */
static bool lower_dim(Lower *L, Node *x, int64_t B) {
    Graph *g = L->g;
    const Method *m = &L->s->method;
    Node *y = lower_backbone(L, x);
    if (!y) return false;
    Node *M = L->first_relu;
    if (!M || M->rank != 4) {
        diag_error(g->diag, m->loc, "dim: the backbone has no ReLU on a feature map [B,C,H,W] (its first one is M)");
        return false;
    }
    g->loc = m->loc;
    g->label = "local_pairs";
    Node *T = lower_layer(L, m->head, ir_local_pairs(g, M, y), "loss_fn");
    if (!T) return false;
    if (T->rank != 4 || T->dim[1] != 1) {
        char sh[64];
        fmt_shape(sh, sizeof sh, T);
        diag_error(g->diag, m->loc, "dim: local_d's output must be [2B, 1, H, W] (got %s)", sh);
        return false;
    }
    g->loc = m->loc;
    g->label = "loss";
    Node *loss = ir_jsd_loss(g, T, m->beta);
    if (m->gamma > 0) {
        int64_t ud[2] = {B, y->dim[1]};
        g->label = "prior";
        Node *p = lower_layer(L, m->prior, ir_concat_rows(g, ir_input(g, "u", 2, ud), y), "loss_fn");
        if (!p) return false;
        if (p->rank != 2 || p->dim[1] != 1) {
            char sh[64];
            fmt_shape(sh, sizeof sh, p);
            diag_error(g->diag, m->loc, "dim: prior_d's output must be [2B, 1] (got %s)", sh);
            return false;
        }
        g->loc = m->loc;
        g->label = "loss";
        loss = ir_add(g, loss, ir_prior_loss(g, p, m->gamma));
    }
    graph_add_output(g, "loss", loss);
    return true;
}

Graph *lower_train(const Spec *s, int64_t B, int64_t C, int64_t H, int64_t W, Arena *a, Diag *d) {
    return lower_train_rank(s, B, B, C, H, W, a, d);
}

Graph *lower_train_rank(const Spec *s, int64_t B, int64_t b, int64_t C, int64_t H, int64_t W, Arena *a, Diag *d) {
    Graph *g = graph_new(a);
    g->diag = d;
    Lower L = {g, s, true, NULL, B, b, false};
    int errors = d->nerrors;
    if (b != B && (s->method.kind == METHOD_DIM || s->method.kind == METHOD_DEEPCLUSTER)) {
        diag_error(d, s->method.loc, "%s: not yet trained data-parallel (relational reasoning, rotation and simclr are)",
                   method_name(s->method.kind));
        return NULL;
    }
    if (b < 1 || b > B) {
        diag_error(d, s->backbone->loc, "a rank's share of %lld images is %lld; use at most %lld ranks", (long long)B, (long long)b,
                   (long long)B);
        return NULL;
    }
    int64_t xd[4] = {s->K * b, C, H, W};
    Node *x = ir_input(g, "x", 4, xd);
    bool ok = true;
    switch (s->method.kind) {
    case METHOD_ROTATION: ok = lower_rotation(&L, x, B); break;
    case METHOD_SIMCLR: ok = lower_simclr(&L, x); break;
    case METHOD_DEEPCLUSTER: ok = lower_deepcluster(&L, x, B); break;
    case METHOD_DIM: ok = lower_dim(&L, x, B); break;
    case METHOD_RELATIONAL: {
        Node *f = lower_backbone(&L, x);
        g->loc = s->head.loc;
        g->label = "pairs";
        Node *p = f ? ir_pairs(g, f, s->K, (int)s->head.aggregation) : NULL;
        Node *z = relation_head(&L, p);
        if (!z || d->nerrors > errors) return NULL;
        g->loc = s->loss.loc;
        g->label = "loss";
        Node *y = ir_pair_targets(g, s->K, B);
        Node *loss = s->loss.kind == LOSS_FOCAL ? ir_focal_loss(g, z, y, s->loss.gamma, s->loss.alpha) : ir_bce_loss(g, z, y);
        graph_add_output(g, "loss", loss);
        graph_add_output(g, "logits", z);
        graph_add_output(g, "targets", y);
        break;
    }
    }
    if (!ok || d->nerrors > errors) return NULL;
    g->loc = (SrcLoc){0};
    g->label = NULL;
    return g;
}

Graph *lower_features(const Spec *s, int64_t N, int64_t C, int64_t H, int64_t W, Arena *a, Diag *d) {
    Graph *g = graph_new(a);
    g->diag = d;
    Lower L = {g, s, false, NULL, N, N, false};
    int errors = d->nerrors;
    int64_t xd[4] = {N, C, H, W};
    Node *f = lower_backbone(&L, ir_input(g, "x", 4, xd));
    if (!f || d->nerrors > errors) return NULL;
    graph_add_output(g, "features", f);
    g->loc = (SrcLoc){0};
    g->label = NULL;
    return g;
}

Graph *lower_supervised(const Spec *s, int64_t B, int64_t classes, int64_t C, int64_t H, int64_t W, bool train, Arena *a,
                        Diag *d) {
    Graph *g = graph_new(a);
    g->diag = d;
    Lower L = {g, s, train, NULL, B, B, false};
    int errors = d->nerrors;
    int64_t xd[4] = {B, C, H, W};
    Node *f = lower_backbone(&L, ir_input(g, "x", 4, xd));
    if (!f || d->nerrors > errors) return NULL;
    g->loc = s->backbone->loc;
    g->label = "classifier";
    int64_t F = f->dim[1], wd[2] = {classes, F};
    Node *z = ir_linear(g, f, ir_param(g, "classifier.weight", 2, wd, init_linear(F)));
    z = ir_bias_add(g, z, ir_param(g, "classifier.bias", 1, &classes, init_linear(F)));
    if (!z) return NULL;
    graph_add_output(g, "logits", z);
    if (train) {
        Node *y = ir_input(g, "y", 1, &B);
        g->label = "loss";
        graph_add_output(g, "loss", ir_softmax_ce(g, z, y));
    }
    g->loc = (SrcLoc){0};
    g->label = NULL;
    return g;
}
