/*
** ir.c: graph construction (the generic builder and the leaves), outputs,
** and the verifier.
*/
#include <stdio.h>
#include <string.h>

#include "ir/ops_impl.h"

Graph *graph_new(Arena *a) {
    Graph *g = arena_alloc(a, sizeof *g);
    g->arena = a;
    return g;
}

int64_t node_numel(const Node *n) {
    int64_t e = 1;
    for (int i = 0; i < n->rank; i++) e *= n->dim[i];
    return e;
}

const OpInfo *node_info(const Node *n) { return &op_table[n->op]; }

static Node *append(Graph *g, OpKind op) {
    if (g->nnodes == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 256;
        Node **nn = arena_alloc(g->arena, (size_t)g->cap * sizeof *nn);
        if (g->nnodes) memcpy(nn, g->nodes, (size_t)g->nnodes * sizeof *nn);
        g->nodes = nn;
    }
    Node *n = arena_alloc(g->arena, sizeof *n);
    n->id = g->nnodes;
    n->op = op;
    n->loc = g->loc;
    n->name = g->label;
    g->nodes[g->nnodes++] = n;
    return n;
}

/* The most elements a tensor may have: 2^40 floats (4 TiB) is beyond any
   machine and keeps byte counts, multiply-adds and plans far from int64's
   range. False (with the shape in err) past it or on overflow. */
#define IR_MAX_ELEMS ((int64_t)1 << 40)

static bool size_ok(int rank, const int64_t *dim, char *err, size_t errlen) {
    int64_t e = 1;
    bool over = false;
    for (int i = 0; i < rank && !over; i++) over = dim[i] < 0 || __builtin_mul_overflow(e, dim[i], &e) || e > IR_MAX_ELEMS;
    if (!over) return true;
    int n = snprintf(err, errlen, "a tensor of shape [");
    for (int i = 0; i < rank && n > 0 && (size_t)n < errlen; i++)
        n += snprintf(err + n, errlen - (size_t)n, "%s%lld", i ? "," : "", (long long)dim[i]);
    if (n > 0 && (size_t)n < errlen) snprintf(err + n, errlen - (size_t)n, "] is too large (more than 2^40 elements)");
    return false;
}

Node *ir_make(Graph *g, OpKind op, Node *const *in, int nin, const int64_t *ia, int nia, const double *fa, int nfa) {
    const OpInfo *info = &op_table[op];
    RRC_ASSERT(nin == info->nin && nia <= IR_MAX_IA && nfa <= IR_MAX_FA);
    for (int i = 0; i < nin; i++)
        if (!in[i]) return NULL;   /* an earlier error: propagate */
    Node tmp = {.op = op, .nin = nin};
    for (int i = 0; i < nin; i++) tmp.in[i] = in[i];
    for (int i = 0; i < nia; i++) tmp.ia[i] = ia[i];
    for (int i = 0; i < nfa; i++) tmp.fa[i] = fa[i];
    char err[256];
    if (!info->shape(&tmp, err, sizeof err) || !size_ok(tmp.rank, tmp.dim, err, sizeof err)) {
        if (!g->diag) RRC_ABORT("shape rule of %s failed while building: %s", info->name, err);
        if (g->label) diag_error(g->diag, g->loc, "%s: %s", g->label, err);
        else diag_error(g->diag, g->loc, "%s", err);
        return NULL;
    }
    Node *n = append(g, op);
    int id = n->id;
    SrcLoc loc = n->loc;
    const char *name = n->name;
    *n = tmp;
    n->id = id;
    n->loc = loc;
    n->name = name;
    return n;
}

static Node *leaf(Graph *g, OpKind op, const char *name, int rank, const int64_t *dim) {
    RRC_ASSERT(rank >= 0 && rank <= IR_MAX_RANK);
    char err[256];
    if (!size_ok(rank, dim, err, sizeof err)) {
        if (!g->diag) RRC_ABORT("%s: %s", name, err);
        diag_error(g->diag, g->loc, "%s: %s", name, err);
        return NULL;
    }
    Node *n = append(g, op);
    n->name = arena_strdup(g->arena, name);
    n->rank = rank;
    for (int i = 0; i < rank; i++) n->dim[i] = dim[i];
    return n;
}

Node *ir_input(Graph *g, const char *name, int rank, const int64_t *dim) { return leaf(g, OP_INPUT, name, rank, dim); }

Node *ir_param(Graph *g, const char *name, int rank, const int64_t *dim, rt_init init) {
    Node *n = leaf(g, OP_PARAM, name, rank, dim);
    if (!n) return NULL;
    n->init = init;
    n->flags |= NF_TRAINABLE;
    return n;
}

Node *ir_state(Graph *g, const char *name, int rank, const int64_t *dim, rt_init init) {
    Node *n = leaf(g, OP_STATE, name, rank, dim);
    if (!n) return NULL;
    n->init = init;
    return n;
}

Node *graph_find_leaf(Graph *g, OpKind op, const char *name) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == op && strcmp(g->nodes[i]->name, name) == 0) return g->nodes[i];
    return NULL;
}

Output *graph_output(Graph *g, const char *name) {
    for (int i = 0; i < g->nouts; i++)
        if (strcmp(g->outs[i].name, name) == 0) return &g->outs[i];
    return NULL;
}

void graph_add_output(Graph *g, const char *name, Node *n) {
    RRC_ASSERT(n && !graph_output(g, name));
    if (g->nouts == g->capouts) {
        g->capouts = g->capouts ? 2 * g->capouts : 64;
        Output *no = arena_alloc(g->arena, (size_t)g->capouts * sizeof *no);
        if (g->nouts) memcpy(no, g->outs, (size_t)g->nouts * sizeof *no);
        g->outs = no;
    }
    g->outs[g->nouts++] = (Output){arena_strdup(g->arena, name), n};
}

/* ---- verifier ---- */

static int verr(const char *when, const Node *n, const char *msg) {
    const char *op = (unsigned)n->op < OP_COUNT ? op_table[n->op].name : "?";
    fprintf(stderr, "rrc: IR verifier (%s): %%%d %s: %s\n", when, n->id, op, msg);
    return 1;
}

bool graph_verify(Graph *g, const char *when) {
    int bad = 0;
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        if (n->id != i) bad += verr(when, n, "id does not match its position");
        if ((unsigned)n->op >= OP_COUNT) { bad += verr(when, n, "unknown op"); continue; }
        const OpInfo *info = &op_table[n->op];
        if (n->nin != info->nin) bad += verr(when, n, "wrong number of inputs");
        for (int k = 0; k < n->nin; k++) {
            if (!n->in[k]) { bad += verr(when, n, "missing input"); continue; }
            if (n->in[k]->id >= i || g->nodes[n->in[k]->id] != n->in[k])
                bad += verr(when, n, "input is not an earlier node of this graph (order broken)");
        }
        if (info->fusion == FUSE_LEAF && !n->name) bad += verr(when, n, "leaf without a name");
        /* the shape must be what the shape rule says */
        Node tmp = *n;
        char err[256];
        if (!info->shape(&tmp, err, sizeof err)) bad += verr(when, n, err);
        else if (!same_shape(&tmp, n)) bad += verr(when, n, "shape differs from its shape rule");
        /* saved-value edges: bn_train's statistics must be of its own input */
        if (n->op == OP_BN_TRAIN) {
            const Node *st = n->in[1];
            if ((st->op != OP_BN_STATS && st->op != OP_BN_STATS_ALL) || st->in[0] != n->in[0])
                bad += verr(when, n, "input 1 must be bn_stats (or bn_stats_all) of input 0");
        }
    }
    for (int i = 0; i < g->nouts; i++) {
        Node *n = g->outs[i].node;
        if (!n || n->id >= g->nnodes || g->nodes[n->id] != n) {
            fprintf(stderr, "rrc: IR verifier (%s): output %s is not a node of the graph\n", when, g->outs[i].name);
            bad++;
        }
    }
    return bad == 0;
}

/* ---- fused kernels (the decisions pass_fuse records) ---- */

const char *kernel_kind_name(KernelKind k) {
    switch (k) {
    case KERNEL_EW: return "ew";
    case KERNEL_BN_DX: return "bn_dx";
    case KERNEL_CONV_STATS: return "conv_stats";
    case KERNEL_POOL: return "pool";
    case KERNEL_DX_EPI: return "dx_epi";
    case KERNEL_PAIR_BIAS: return "pair_bias";
    }
    return "?";
}

bool node_emits(const Node *n) {
    if (n->inlined || op_table[n->op].fusion == FUSE_LEAF) return false;
    if (!n->kernel) return true;
    return n->kernel->members[n->kernel->nmembers - 1] == n;
}

bool node_unstored(const Node *n) {
    return n->inlined || (n->kernel && n->kernel->apply_in && n->kernel->members[0] == n);
}

const Node *node_runs_at(const Node *n) { return n->kernel ? n->kernel->members[n->kernel->nmembers - 1] : n; }

Cost node_kernel_cost(const Node *n) {
    const Kernel *k = n->kernel;
    Cost c = {0, 0};
    for (int j = 0; j < (k ? k->nmembers : 1); j++) {
        const Node *m = k ? k->members[j] : n;
        Cost cj = op_table[m->op].cost(m);
        c.flops += cj.flops;
        c.bytes += cj.bytes;
    }
    return c;
}

int graph_kernel_count(const Graph *g) {
    int k = 0;
    for (int i = 0; i < g->nnodes; i++) k += node_emits(g->nodes[i]);
    return k;
}
