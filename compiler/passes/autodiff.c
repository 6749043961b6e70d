/*
** autodiff.c: reverse-mode automatic differentiation.
**
** Walks the graph backwards from the output "loss", calling each op's
** backward rule from the op table (rules are builder calls, so gradients
** are ordinary nodes that every later pass and both executors handle).
** Only edges marked differentiable in the op's diffmask carry gradients,
** and only towards values that depend on a trainable parameter. Several
** contributions to one value are summed with `add` in a fixed order (the
** reverse of the graph), so the result is deterministic. Each trainable
** parameter gets an output "grad.<name>" (zeros if the loss does not
** depend on it); an input flagged NF_WANT_GRAD gets "dinput.<name>", which
** no trainer reads (rrc check compares the views' gradient with finite
** differences of the loss).
*/
#include <stdlib.h>

#include "ir/ir.h"

bool pass_autodiff(Graph *g, Diag *d) {
    (void)d;
    Output *lo = graph_output(g, "loss");
    if (!lo) return true;   /* an evaluation graph: nothing to differentiate */
    Node *loss = lo->node;
    if (node_numel(loss) != 1) RRC_ABORT("autodiff: loss is not a scalar");
    SrcLoc saved_loc = g->loc;
    const char *saved_label = g->label;
    g->loc = loss->loc;
    g->label = "grad";
    int64_t one = 1;
    Node *seed = ir_fill(g, 1, &one, 1.0);
    g->loc = saved_loc;
    g->label = saved_label;
    ir_vjp(g, loss, seed);
    return true;
}

static bool wants_grad(const Node *n) {
    return (n->op == OP_PARAM && (n->flags & NF_TRAINABLE)) || (n->op == OP_INPUT && (n->flags & NF_WANT_GRAD));
}

void ir_vjp(Graph *g, Node *y, Node *dy) {
    Node *loss = y;
    int n0 = g->nnodes;
    bool *req = xcalloc((size_t)n0, sizeof *req);
    Node **grad = xcalloc((size_t)n0, sizeof *grad);
    for (int i = 0; i < n0; i++) {
        Node *n = g->nodes[i];
        if (wants_grad(n)) req[i] = true;
        for (int k = 0; k < n->nin; k++)
            if ((op_table[n->op].diffmask >> k & 1) && req[n->in[k]->id]) req[i] = true;
    }
    SrcLoc saved_loc = g->loc;
    const char *saved_label = g->label;
    grad[loss->id] = dy;
    for (int i = loss->id; i >= 0; i--) {
        Node *n = g->nodes[i];
        const OpInfo *info = &op_table[n->op];
        if (!grad[i] || !req[i] || info->fusion == FUSE_LEAF) continue;
        unsigned need = 0;
        for (int k = 0; k < n->nin; k++)
            if ((info->diffmask >> k & 1) && req[n->in[k]->id]) need |= 1u << k;
        if (!need) continue;
        if (!info->bwd) RRC_ABORT("autodiff: op %s has no backward rule", info->name);
        g->loc = n->loc;
        g->label = n->name;
        Node *dx[IR_MAX_IN] = {0};
        ir_backward(g, n, grad[i], need, dx);
        for (int k = 0; k < n->nin; k++) {
            if (!(need >> k & 1)) continue;
            if (!dx[k]) RRC_ABORT("autodiff: backward rule of %s gave no gradient for input %d", info->name, k);
            int j = n->in[k]->id;
            grad[j] = grad[j] ? ir_add(g, grad[j], dx[k]) : dx[k];
        }
    }
    for (int i = 0; i < n0; i++) {
        Node *n = g->nodes[i];
        if (!wants_grad(n)) continue;
        Node *gn = grad[i];
        if (!gn) {
            g->loc = n->loc;
            g->label = n->name;
            gn = ir_fill(g, n->rank, n->dim, 0.0);
        }
        char name[512];
        snprintf(name, sizeof name, "%s.%s", n->op == OP_PARAM ? "grad" : "dinput", n->name);
        graph_add_output(g, name, gn);
    }
    g->loc = saved_loc;
    g->label = saved_label;
    free(req);
    free(grad);
}
