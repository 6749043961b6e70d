/*
** dce.c: dead-node elimination. Keeps every leaf (they are the model's
** named tensors) and every node an output depends on; renumbers the rest
** in their original order, so the graph stays topologically sorted.
*/
#include <stdlib.h>

#include "ir/ir.h"

bool pass_dce(Graph *g, Diag *d) {
    (void)d;
    bool *live = xcalloc((size_t)g->nnodes, sizeof *live);
    for (int i = 0; i < g->nouts; i++) live[g->outs[i].node->id] = true;
    for (int i = g->nnodes - 1; i >= 0; i--) {
        Node *n = g->nodes[i];
        if (op_table[n->op].fusion == FUSE_LEAF) live[i] = true;
        if (!live[i]) continue;
        for (int k = 0; k < n->nin; k++) live[n->in[k]->id] = true;
    }
    int m = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (live[i]) {
            g->nodes[m] = g->nodes[i];
            g->nodes[m]->id = m;
            m++;
        }
    g->nnodes = m;
    free(live);
    return true;
}
