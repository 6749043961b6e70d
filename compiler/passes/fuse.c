/*
** fuse.c: the fusion pass. Groups nodes into kernels that read their
** inputs once and write only what leaves them (see Kernel in ir/ir.h):
**
**  - elementwise chains: an elementwise or per-channel op (fuse_ew_op) whose
**    every reader computes it in a generated loop (such an op reading it
**    elementwise, a BatchNorm backward, a pooling kernel, or a direct
**    convolution reading it as its input, in its padding loop: prologue
**    fusion), and which is not
**    an output, is INLINED: its value is recomputed inside each reader's
**    kernel and never stored. What is left is one generated loop per
**    remaining op, with its inlined producers in the loop body
**    (bn_train -> add -> relu is one kernel, or none when convolutions read
**    it). A value read by several kernels stays inlined only while
**    recomputing it loads at most two stored values (three where direct
**    convolutions read it);
**  - BatchNorm backward: bn_train_dx(g, x, st, gamma) is a KERNEL_BN_DX with
**    the bn_dgamma(g, x, st) and chan_sum(g) of the same g as members: one
**    kernel makes the per-channel sums once and writes dx, dgamma and dbeta;
**    the relu_back (and residual add) making g is inlined into it. Over
**    ranks, bn_train_dx_all on planes is one too: its codegen makes this
**    rank's sums, sums them over ranks, then writes dx;
**  - pooling gradients: the 2x2 avgpool2d_back and global_avgpool_back of
**    a stored gradient (fuse_unpool_op) are inlined like elementwise ops
**    where only elementwise and BatchNorm-backward plane loops compute them
**    (Conv-4's pool -> ReLU -> BatchNorm backward is one kernel); so is the
**    outer product dy[n] w[c] of a one-output linear layer's input gradient
**    (fuse_outer_op: the relation head's score) in [N, C] loops;
**  - BatchNorm backward applied in its readers: a by-samples bn_train_dx
**    whose dx only direct convolution gradients read (Conv-4's first two
**    layers) makes its sums alone; each reader makes dx image by image
**    with the kernel's second phase into its thread's buffer
**    (Kernel.apply_in), so dx is never stored;
**  - pairs with a bias: pair_halves read only by a bias_add is one runtime
**    kernel adding the bias as it writes (KERNEL_PAIR_BIAS);
**  - convolution + BatchNorm statistics: bn_stats of a conv2d's output is
**    accumulated per image while the image's output is in cache
**    (KERNEL_CONV_STATS);
**  - input gradient + epilogue: a planes kernel of elementwise ops reading a
**    direct conv2d_dx that nothing else reads (a residual block's
**    relu_back(dx + shortcut gradient)) becomes KERNEL_DX_EPI: the
**    convolution computes the ops on each output tile before storing it,
**    so its own value is never stored (marked inlined) and the epilogue's
**    other inputs are read while the tile is in registers. A BatchNorm
**    backward reading the epilogue's value as g (or an inlined g that only
**    it reads and that can be an epilogue, which is then stored) hands its
**    bn_dgamma and chan_sum to the epilogue kernel (Kernel.given), which
**    sums g per image as it stores it;
**  - pooling: 2x2 average pooling and global average pooling are generated
**    kernels (KERNEL_POOL) reading their input through its expression, so
**    BatchNorm + ReLU before a pool is never stored.
** Members of a kernel are moved next to their root (they read only what
** the root reads, or the root's value; an epilogue kernel's convolution
** moves to its epilogue instead, a pair kernel's pair_halves to its
** bias_add), so every kernel runs at the position of its last member;
** memplan keeps a kernel's inputs, and the inputs of everything inlined
** into it, alive up to there (a BatchNorm backward applied in its
** readers: up to the last of them).
**
** The pass changes no value: the interpreter runs the fused graph node by
** node as before, and the compiled kernels are tested against it.
*/
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

/* Stride 1 only: a stride-2 input gradient has half the multiply-adds per
   element to hide the epilogue's loads behind, and resnet32's were slower
   with the epilogue than with a separate ReLU-backward kernel
   (docs/DECISIONS.md, "Figures that left the code's comments"). */
static bool dx_epilogue(const Node *n) { return n->op == OP_CONV2D_DX && n->direct && n->ia[0] == 1; }

/* A KERNEL_DX_EPI's epilogue: the value it stores (the last member before
   any BatchNorm sums). */
static Node *kernel_epilogue(const Kernel *k) {
    RRC_ASSERT(k->kind == KERNEL_DX_EPI);
    int i = k->nmembers - 1;
    while (k->members[i]->op == OP_BN_DGAMMA || k->members[i]->op == OP_CHAN_SUM) i--;
    return k->members[i];
}

/* The bn_dgamma and chan_sum a KERNEL_DX_EPI makes, if it makes a
   BatchNorm backward's sums (both NULL if not: returns false). */
static bool kernel_epilogue_sums(const Kernel *k, Node **dg, Node **db) {
    bool sums = k->members[k->nmembers - 1] != kernel_epilogue(k);   /* then the last two, added together */
    *dg = sums ? k->members[k->nmembers - 2] : NULL;
    *db = sums ? k->members[k->nmembers - 1] : NULL;
    RRC_ASSERT(!sums || ((*dg)->op == OP_BN_DGAMMA && (*db)->op == OP_CHAN_SUM));
    return sums;
}

/* Ops computed in generated loops: their fusion class says so (ops.def),
   and codegen has a loop body for each. */
bool fuse_ew_op(OpKind op) {
    FusionClass f = op_table[op].fusion;
    return f == FUSE_ELEMWISE || f == FUSE_BROADCAST;
}

static bool even_planes(const Node *x) {
    return x->rank == 4 && x->dim[2] % 2 == 0 && x->dim[3] % 2 == 0 && x->dim[2] * x->dim[3] > 1;
}

bool fuse_pool_op(const Node *n) {
    if (n->op == OP_GLOBAL_AVGPOOL) return n->in[0]->rank == 4;
    return n->op == OP_AVGPOOL2D && n->ia[0] == 2 && n->ia[1] == 2 && n->ia[2] == 0 && even_planes(n->in[0]);
}

bool fuse_unpool_op(const Node *n) {
    if (n->op == OP_GLOBAL_AVGPOOL_BACK) return n->rank == 4 && n->dim[2] * n->dim[3] > 1;
    /* the generated loop upsamples a plane into a stack buffer of H*W floats */
    return n->op == OP_AVGPOOL2D_BACK && n->ia[0] == 2 && n->ia[1] == 2 && n->ia[2] == 0 && even_planes(n) &&
           n->dim[2] * n->dim[3] <= 16384;
}

bool fuse_outer_op(const Node *n) {
    return n->op == OP_LINEAR_DX && n->rank == 2 && n->in[1]->rank == 2 && n->in[1]->dim[0] == 1;
}

/* Whether a generated loop computing n reads its input k elementwise (same
   shape and index as n's value) rather than per channel: ops.def's reads. */
static bool reads_elementwise(const Node *n, int k) {
    const char *r = op_table[n->op].reads;
    return k < (int)strlen(r) && r[k] == 'e';
}

static bool same_shape(const Node *a, const Node *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i]) return false;
    return true;
}

/* [N, C, spatial...] values of rank 2..4: what generated kernels iterate. */
static bool nc_shape(const Node *n) { return n->rank >= 2 && n->rank <= 4; }

typedef struct Uses {
    int *start, *list;   /* readers of node i: list[start[i] .. start[i+1]) (node ids) */
} Uses;

static Uses uses_of(const Graph *g) {
    Uses u;
    u.start = xcalloc((size_t)g->nnodes + 1, sizeof *u.start);
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i]->nin; k++) u.start[g->nodes[i]->in[k]->id + 1]++;
    for (int i = 0; i < g->nnodes; i++) u.start[i + 1] += u.start[i];
    int *fill = xcalloc((size_t)g->nnodes, sizeof *fill);
    u.list = xcalloc((size_t)u.start[g->nnodes] + 1, sizeof *u.list);
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i]->nin; k++) {
            int p = g->nodes[i]->in[k]->id;
            u.list[u.start[p] + fill[p]++] = i;
        }
    free(fill);
    return u;
}

static Kernel *new_kernel(Graph *g, KernelKind kind, Node *root) {
    RRC_ASSERT(g->nkernels < g->nnodes);
    Kernel *k = &g->kernels[g->nkernels++];
    *k = (Kernel){0};
    k->kind = kind;
    k->nmembers = 1;
    k->members[0] = root;
    root->kernel = k;
    return k;
}

static void add_member(Kernel *k, Node *n) {
    RRC_ASSERT(k->nmembers < KERNEL_MAX_MEMBERS && !n->kernel);
    k->members[k->nmembers++] = n;
    n->kernel = k;
}

static bool is_output(const Graph *g, const Node *n) {
    for (int i = 0; i < g->nouts; i++)
        if (g->outs[i].node == n) return true;
    return false;
}

/* Whether every inlined op in v's expression is elementwise or a global
   average pooling's gradient (a 2x2 one is upsampled per plane): an
   epilogue computes it on vectors. */
static bool ew_only(const Node *v) {
    if (!fuse_ew_op(v->op) && v->op != OP_GLOBAL_AVGPOOL_BACK) return false;
    for (int k = 0; k < v->nin; k++)
        if (v->in[k]->inlined && !ew_only(v->in[k])) return false;
    return true;
}

#define EPI_PATH_MAX 2   /* inlined ops between a convolution and its epilogue (members) */

/* The direct conv2d_dx that elementwise kernel root e can take as its
   epilogue's input: a stored value read elementwise in e's expression (v's
   inputs, walking inlined ops) and by nothing else, every inlined op on the
   way read only there too; NULL if none. path[0 .. *np): those ops, v's
   input first (they move with the kernel). */
static Node *epilogue_conv(const Graph *g, const Uses *u, const Node *e, const Node *v, Node **path, int *np) {
    for (int k = 0; k < v->nin; k++) {
        Node *x = v->in[k];
        if (!reads_elementwise(v, k) || u->start[x->id + 1] - u->start[x->id] != 1) continue;
        if (x->inlined) {
            if (*np == EPI_PATH_MAX) continue;
            path[(*np)++] = x;
            Node *d = epilogue_conv(g, u, e, x, path, np);
            if (d) return d;
            (*np)--;
        } else if (dx_epilogue(x) && !is_output(g, x) && same_shape(x, e)) {
            return x;
        }
    }
    return NULL;
}

/* Makes e the epilogue of the direct conv2d_dx its expression reads, if
   there is one (epilogue_conv): the kernel k (e's elementwise kernel, or a
   new one for an inlined e, which is then stored) becomes a KERNEL_DX_EPI
   of the convolution, the inlined ops reading it (in order) and e. */
static bool make_epilogue(Graph *g, const Uses *u, Node *e, Kernel *k) {
    Node *path[EPI_PATH_MAX];
    int np = 0;
    Node *dx = epilogue_conv(g, u, e, e, path, &np);
    if (!dx) return false;
    if (k) {
        k->nmembers = 0;
        e->kernel = NULL;
        add_member(k, dx);
    } else {
        k = new_kernel(g, KERNEL_DX_EPI, dx);
    }
    k->kind = KERNEL_DX_EPI;
    dx->inlined = true;
    e->inlined = false;
    for (int j = np - 1; j >= 0; j--) add_member(k, path[j]);
    add_member(k, e);
    return true;
}

/* ---- the phases of pass_fuse, in order ---- */

/* A convolution (forward or weight gradient) of the step's input with more
   than one channel: on gray images (Graph.gray_input) every channel is the
   same plane, so sum_c W[o][c] * x[c] = (sum_c W[o][c]) * x[0] and the
   weight gradient of channel c is that of channel 0. Its direct kernel
   then reads channel 0 alone: a third of the multiply-adds on RGB-shaped
   gray images. The values are those of the whole convolution on such
   inputs (the interpreter computes every channel; the kernel tests compare
   the two on gray inputs), so the graph is unchanged. */
static bool gray_conv(const Node *n) {
    const Node *x = n->op == OP_CONV2D ? n->in[0] : n->op == OP_CONV2D_DW ? n->in[1] : NULL;
    return x && x->op == OP_INPUT && x->rank == 4 && x->dim[1] > 1;
}

/* Clears earlier decisions; asks codegen which convolutions get direct
   kernels (BackendCaps). */
static void phase_reset(Graph *g) {
    int n = g->nnodes;
    g->kernels = arena_alloc(g->arena, (size_t)(n ? n : 1) * sizeof *g->kernels);
    g->nkernels = 0;
    for (int i = 0; i < n; i++) {
        g->nodes[i]->kernel = NULL;
        g->nodes[i]->inlined = false;
        g->nodes[i]->direct = g->caps && g->caps->conv_direct(g->nodes[i], g->target);
        g->nodes[i]->gray_x = g->gray_input && g->nodes[i]->direct && gray_conv(g->nodes[i]);
    }
}

/* BatchNorm backward: bn_train_dx with its siblings. */
static void phase_bn_dx(Graph *g) {
    int n = g->nnodes;
    for (int i = 0; i < n; i++) {
        Node *dx = g->nodes[i];
        /* over ranks: planes only (two generated kernels around the
           ranks' sum; the [N, C] rows kernel keeps its sums in registers) */
        bool all_ranks = dx->op == OP_BN_TRAIN_DX_ALL && dx->rank > 2 && node_numel(dx) > dx->dim[0] * dx->dim[1];
        if ((dx->op != OP_BN_TRAIN_DX && !all_ranks) || !nc_shape(dx)) continue;
        Kernel *k = new_kernel(g, KERNEL_BN_DX, dx);
        Node *dg = NULL, *db = NULL;
        for (int j = i + 1; j < n && (!dg || !db); j++) {
            Node *s = g->nodes[j];
            if (s->kernel) continue;
            if (!dg && s->op == OP_BN_DGAMMA && s->in[0] == dx->in[0] && s->in[1] == dx->in[1] && s->in[2] == dx->in[2] &&
                s->fa[0] == dx->fa[0])
                dg = s;
            else if (!db && s->op == OP_CHAN_SUM && s->in[0] == dx->in[0])
                db = s;
        }
        if (dg) add_member(k, dg);
        if (db) add_member(k, db);
    }
}

/* A convolution with the statistics of its output; pooling kernels. */
static void phase_conv_stats_and_pool(Graph *g) {
    int n = g->nnodes;
    for (int i = 0; i < n; i++) {
        Node *st = g->nodes[i], *y = st->nin ? st->in[0] : NULL;
        /* bn_stats_all too: the rank's statistics as one process makes them,
           then every rank's */
        bool stats = st->op == OP_BN_STATS || st->op == OP_BN_STATS_ALL;
        if (!stats || !y || y->op != OP_CONV2D || y->kernel || y->rank != 4) continue;
        Kernel *k = new_kernel(g, KERNEL_CONV_STATS, y);
        add_member(k, st);
    }

    for (int i = 0; i < n; i++)
        if (fuse_pool_op(g->nodes[i])) new_kernel(g, KERNEL_POOL, g->nodes[i]);
}

/* Inlining, readers first: a value is inlined when every reader computes
   it in a generated loop (an elementwise op, itself inlined or a root, or
   a BN_DX member) reading it elementwise. */
static void phase_inline(Graph *g, const Uses *uses) {
    int n = g->nnodes;
    Uses u = *uses;
    /* in_loops[i]: every kernel computing node i is an elementwise or
       BatchNorm-backward plane loop, the loops that can evaluate a pooling
       gradient (fuse_unpool_op) at the element they are at */
    bool *in_loops = xcalloc((size_t)(n ? n : 1), sizeof *in_loops);
    for (int i = n - 1; i >= 0; i--) {
        Node *x = g->nodes[i];
        bool unpool = fuse_unpool_op(x) && !fuse_ew_op(x->in[0]->op);   /* reading a stored value */
        bool outer = fuse_outer_op(x);   /* loops only, like unpool */
        if ((!fuse_ew_op(x->op) && !unpool && !outer) || !nc_shape(x) || x->kernel || is_output(g, x) ||
            u.start[i] == u.start[i + 1])
            continue;
        bool ok = true, loops = true;
        for (int p = u.start[i]; p < u.start[i + 1] && ok; p++) {
            Node *r = g->nodes[u.list[p]];
            /* a direct convolution computes its input x while padding it,
               a pooling kernel its input while summing windows */
            if ((r->direct && r->op != OP_CONV2D_DX) || fuse_pool_op(r)) {
                int xin = r->op == OP_CONV2D || fuse_pool_op(r) ? 0 : 1;
                for (int k = 0; k < r->nin && ok; k++)
                    if (r->in[k] == x && k != xin) ok = false;
                loops = false;
                continue;
            }
            bool generated = fuse_ew_op(r->op) || (r->kernel && r->kernel->kind == KERNEL_BN_DX);
            const Node *space = r->op == OP_BN_DGAMMA || r->op == OP_CHAN_SUM ? r->in[0] : r;   /* what r iterates */
            ok = generated && nc_shape(space) && same_shape(space, x);
            for (int k = 0; k < r->nin && ok; k++)
                if (r->in[k] == x && !reads_elementwise(r, k)) ok = false;
            if (r->inlined && !in_loops[r->id]) loops = false;
        }
        x->inlined = ok && (loops || (!unpool && !outer));
        in_loops[i] = loops;
    }
    free(in_loops);
}

/* Recomputation has a price: a value read by several kernels is
   recomputed in each, from everything it is made of. Walking producers
   first, such a value stays inlined only if recomputing it loads at
   most two stored values (relu_back(dy, y) into a BatchNorm backward
   and its siblings is one kernel reading it; relu(bn_train(x)) read by
   the next convolution, its weight gradient and a ReLU backward loads
   x alone); otherwise it is stored once. This stops a chain of residual
   gradients from being recomputed block after block back to the end of
   a stage. Where direct convolutions read the value, their arithmetic
   hides the loads of their padding loops, and three are allowed: a
   residual block's output relu(bn(conv) + shortcut) is then stored
   every third block instead of every other (resnet32 K=4 B=64: 373 MiB
   of scratch instead of 400 at the same step time). */
static void phase_recompute_limit(Graph *g, const Uses *uses) {
    int n = g->nnodes;
    Uses u = *uses;
    int *cost = xcalloc((size_t)(n ? n : 1), sizeof *cost);
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes[i];
        cost[i] = 1;
        if (!x->inlined) continue;
        int c = 0, readers = 0;
        for (int k = 0; k < x->nin; k++) {
            if (!reads_elementwise(x, k) && !fuse_unpool_op(x)) continue;
            c += x->in[k]->inlined ? cost[x->in[k]->id] : 1;
        }
        const Kernel *seen = NULL;
        bool conv_reads = false;
        for (int p = u.start[i]; p < u.start[i + 1]; p++) {
            const Node *r = g->nodes[u.list[p]];
            conv_reads |= r->direct;
            if (r->kernel && r->kernel == seen) continue;   /* members of one kernel read it once */
            seen = r->kernel;
            readers++;
        }
        if (readers > 1 && c > (conv_reads ? 3 : 2)) x->inlined = false;
        else cost[i] = c;
    }
    free(cost);
}

/* The relation head's first layer per view: pair_halves read by a
   bias_add alone (rows [P, H] plus a bias per column) is one runtime
   kernel writing (a + b) + bias, the same sums as the two ops'. */
static void phase_pair_bias(Graph *g, const Uses *u) {
    int n = g->nnodes;
    for (int i = 0; i < n; i++) {
        Node *ph = g->nodes[i];
        if (ph->op != OP_PAIR_HALVES || ph->kernel || ph->inlined || is_output(g, ph) || u->start[i + 1] - u->start[i] != 1)
            continue;
        Node *b = g->nodes[u->list[u->start[i]]];
        if (b->op != OP_BIAS_ADD || b->in[0] != ph || b->in[1] == ph || b->kernel || b->inlined || b->rank != 2) continue;
        Kernel *k = new_kernel(g, KERNEL_PAIR_BIAS, ph);
        add_member(k, b);
        ph->inlined = true;
    }
}

/* Every other generated op is a kernel of its own. */
static void phase_ew_kernels(Graph *g) {
    int n = g->nnodes;
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes[i];
        if (fuse_ew_op(x->op) && nc_shape(x) && !x->inlined && !x->kernel) new_kernel(g, KERNEL_EW, x);
    }
}

/* Input gradients with an epilogue: a planes kernel of elementwise ops
   whose expression reads a direct conv2d_dx, and nothing else reads it, is
   computed on the convolution's output tiles. */
static void phase_epilogues(Graph *g, const Uses *u) {
    int n = g->nnodes;
    for (int i = 0; i < n; i++) {
        Node *e = g->nodes[i];
        if (e->kernel && e->kernel->kind == KERNEL_EW && e->rank == 4 && ew_only(e)) make_epilogue(g, u, e, e->kernel);
    }
}

/* BatchNorm backward sums in the epilogue: a planes bn_train_dx whose g
   is an epilogue's value, or an inlined value that can be one and that
   only this BatchNorm backward reads (then stored), gets its bn_dgamma
   and chan_sum of g made by the epilogue kernel, which sums each image
   as it stores g; the BatchNorm backward then reads g and x once
   instead of twice */
static void phase_epilogue_sums(Graph *g, const Uses *uses) {
    int n = g->nnodes;
    Uses u = *uses;
    for (int i = 0; i < n; i++) {
        Node *bx = g->nodes[i];
        Kernel *kb = bx->kernel;
        if (!kb || kb->kind != KERNEL_BN_DX || kb->members[0] != bx || kb->nmembers != 3 || bx->rank != 4) continue;
        if (bx->op != OP_BN_TRAIN_DX) continue;   /* over ranks: the sums are summed over ranks first */
        Node *gv = bx->in[0], *dg = kb->members[1], *db = kb->members[2];
        if (dg->op != OP_BN_DGAMMA || db->op != OP_CHAN_SUM || !is_output(g, dg) || !is_output(g, db)) continue;
        bool only_here = true;
        for (int p = u.start[gv->id]; p < u.start[gv->id + 1]; p++)
            only_here &= g->nodes[u.list[p]]->kernel == kb;
        Kernel *ke = gv->kernel && gv->kernel->kind == KERNEL_DX_EPI && kernel_epilogue(gv->kernel) == gv ? gv->kernel : NULL;
        if (!ke && gv->inlined && only_here && gv->rank == 4 && ew_only(gv) && make_epilogue(g, &u, gv, NULL)) ke = gv->kernel;
        if (!ke || ke->nmembers + 2 > KERNEL_MAX_MEMBERS) continue;
        kb->nmembers = 1;
        kb->given[0] = dg;
        kb->given[1] = db;
        dg->kernel = db->kernel = NULL;
        add_member(ke, dg);
        add_member(ke, db);
    }
}

/* BatchNorm backward applied in its readers: a by-samples bn_train_dx
   (planes, its own sums) whose dx only direct convolution gradients read
   as their dy (conv2d_dw; conv2d_dx), and whose dgamma / dbeta members
   nothing in the step reads (they are written when the second phase
   runs). Each reader then computes dx per image, with the kernel's second
   phase, into its thread's buffer: dx (a [N, C, H, W] tensor) is neither
   written nor read back, and its inputs are read once per reader instead.
   The same code makes the same values as storing dx. */
static void phase_staged(Graph *g, const Uses *u) {
    if (!g->caps || !g->caps->conv_stages_dy) return;
    for (int i = 0; i < g->nkernels; i++) {
        Kernel *k = &g->kernels[i];
        Node *dx = k->members[0];
        if (k->kind != KERNEL_BN_DX || dx->kernel != k || k->given[0] || dx->op != OP_BN_TRAIN_DX || dx->rank != 4 ||
            is_output(g, dx) || u->start[dx->id + 1] == u->start[dx->id])
            continue;
        bool ok = true;
        Node *last = NULL;
        for (int p = u->start[dx->id]; p < u->start[dx->id + 1] && ok; p++) {
            Node *r = g->nodes[u->list[p]];
            ok = (r->op == OP_CONV2D_DW || r->op == OP_CONV2D_DX) && r->direct && r->in[0] == dx && r->in[1] != dx &&
                 g->caps->conv_stages_dy(r, g->target);
            if (!last || r->id > last->id) last = r;
        }
        for (int j = 1; j < k->nmembers; j++) {
            const Node *m = k->members[j];
            ok &= is_output(g, m) && u->start[m->id] == u->start[m->id + 1];
        }
        if (ok) k->apply_in = last;
    }
}

/* Members next to their root (an epilogue kernel: next to its epilogue,
   which may read values made after the convolution). */
static void phase_order(Graph *g) {
    int n = g->nnodes;
    Node **order = xmalloc((size_t)(n ? n : 1) * sizeof *order);
    int m = 0;
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes[i];
        const Kernel *k = x->kernel;
        if (!k) {
            order[m++] = x;
            continue;
        }
        /* a pair kernel at its bias_add: after the bias it reads */
        const Node *anchor = k->kind == KERNEL_DX_EPI ? kernel_epilogue(k)
                           : k->kind == KERNEL_PAIR_BIAS ? k->members[k->nmembers - 1] : k->members[0];
        if (x != anchor) continue;   /* placed with the others */
        for (int j = 0; j < k->nmembers; j++) order[m++] = k->members[j];
    }
    RRC_ASSERT(m == n);
    for (int i = 0; i < n; i++) {
        g->nodes[i] = order[i];
        g->nodes[i]->id = i;
    }
    free(order);
}

/* The decisions codegen obeys: what each epilogue kernel stores and sums,
   and the workspace of every kernel call. */
static void phase_record(Graph *g) {
    int n = g->nnodes;
    for (int i = 0; i < g->nkernels; i++) {
        Kernel *k = &g->kernels[i];
        if (k->kind != KERNEL_DX_EPI) continue;
        k->epilogue = kernel_epilogue(k);
        kernel_epilogue_sums(k, &k->sums[0], &k->sums[1]);
    }
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes[i];
        x->ws = g->caps && node_emits(x) ? g->caps->workspace(x) : 0;
    }
    /* a BatchNorm backward applied in its readers: the last of them to run
       in the final order (an epilogue kernel runs at its epilogue's place) */
    for (int i = 0; i < n; i++) {
        Node *r = g->nodes[i];
        Kernel *k = r->nin > 0 && r->in[0]->kernel && r->in[0]->kernel->members[0] == r->in[0] ? r->in[0]->kernel : NULL;
        if (k && k->apply_in && node_runs_at(r)->id > node_runs_at(k->apply_in)->id) k->apply_in = r;
    }
    /* its readers read its sums from the workspace: no call from the
       kernel to the last reader may use the workspace (an epilogue kernel
       summing for the next BatchNorm would) */
    for (int i = 0; i < g->nkernels; i++) {
        Kernel *k = &g->kernels[i];
        if (!k->apply_in) continue;
        int last = node_runs_at(k->apply_in)->id;
        for (int j = k->members[k->nmembers - 1]->id + 1; j <= last && k->apply_in; j++)
            if (g->nodes[j]->ws) k->apply_in = NULL;
    }
}

bool pass_fuse(Graph *g, Diag *d) {
    (void)d;
    RRC_ASSERT(g->target);
    phase_reset(g);
    phase_bn_dx(g);
    phase_conv_stats_and_pool(g);
    Uses u = uses_of(g);
    phase_inline(g, &u);
    phase_recompute_limit(g, &u);
    phase_pair_bias(g, &u);
    phase_ew_kernels(g);
    phase_epilogues(g, &u);
    phase_epilogue_sums(g, &u);
    phase_staged(g, &u);
    free(u.start);
    free(u.list);
    phase_order(g);
    phase_record(g);
    g->fused = true;
    return true;
}
