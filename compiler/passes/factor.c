/*
** factor.c: the relation head's first linear layer per view, not per pair.
**
** With cat aggregation a pair's row is [F_a; F_b], so linear(pairs(F), W) =
** W1 F_a + W2 F_b, where W = [W1 W2] and each half is [H, D]. Every view
** is in 2(K-1) pairs and there are K-1 times as many pairs as views, so
** the layer computes W1 F_v and W2 F_v once per view and adds them per
** pair: linear(F, reshape(W, [2H, D])) gives each view's two products
** interleaved (row 2h of the reshaped W is W1's row h, row 2h+1 is W2's),
** and pair_halves adds the first half of view a to the second of view b.
** The forward and both gradients (autodiff runs after this pass) then do
** K-1 times fewer multiply-adds. Exact in real arithmetic: in f32 only the
** order of the additions differs. The parameter, its name and its
** checkpoint layout stay as they were; the pairs node, now unread, goes
** with dce.
*/
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "rt_kernels.h"

static bool read_once(const Graph *g, const Node *v) {
    int reads = 0;
    for (int i = 0; i < g->nouts; i++) reads += g->outs[i].node == v;
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i]->nin; k++) reads += g->nodes[i]->in[k] == v;
    return reads == 1;
}

/* Moves the nodes from index `first` to the end to just before `at`
   (whose inputs all come before it) and renumbers. */
static void move_before(Graph *g, int first, Node *at) {
    int m = g->nnodes - first, pos = at->id;
    Node **tail = xmalloc((size_t)m * sizeof *tail);
    memcpy(tail, g->nodes + first, (size_t)m * sizeof *tail);
    memmove(g->nodes + pos + m, g->nodes + pos, (size_t)(first - pos) * sizeof *tail);
    memcpy(g->nodes + pos, tail, (size_t)m * sizeof *tail);
    for (int i = pos; i < g->nnodes; i++) g->nodes[i]->id = i;
    free(tail);
}

bool pass_factor(Graph *g, Diag *d) {
    (void)d;
    const char *label = g->label;
    SrcLoc loc = g->loc;
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i], *p = n->op == OP_LINEAR ? n->in[0] : NULL;
        /* K = 2 has as many pairs as views: nothing to save */
        if (!p || p->op != OP_PAIRS || p->ia[1] != RT_AGG_CAT || p->ia[0] < 3 || !read_once(g, p)) continue;
        Node *f = p->in[0], *w = n->in[1];
        int first = g->nnodes;
        int64_t wd[2] = {2 * w->dim[0], f->dim[1]};
        g->label = n->name;
        g->loc = n->loc;
        Node *x = ir_linear(g, f, ir_reshape(g, w, 2, wd));
        RRC_ASSERT(x);   /* the shapes follow from the pairs' and the linear's */
        move_before(g, first, n);
        n->op = OP_PAIR_HALVES;
        n->nin = 1;
        n->in[0] = x;
        n->in[1] = NULL;
        memset(n->ia, 0, sizeof n->ia);
        n->ia[0] = p->ia[0];
        i = n->id;
    }
    g->label = label;
    g->loc = loc;
    return true;
}
