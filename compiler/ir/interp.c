/*
** interp.c: the reference interpreter, the oracle of rrc.
**
** It runs any graph node by node with the op table's reference kernels, in
** double precision (inputs and parameters are f32 values widened exactly),
** so compiled f32 code and PyTorch's float64 goldens can both be checked
** against it. No fusion, no reuse beyond freeing a value after its last
** user: clarity over speed.
*/
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

void interp_init(Interp *it, const Graph *g) {
    it->g = g;
    it->vals = xcalloc((size_t)g->nnodes, sizeof *it->vals);
    it->owned = xcalloc((size_t)g->nnodes, sizeof *it->owned);
    it->keep_all = false;
    it->round_f32 = false;
}

void interp_bind(Interp *it, const Node *leaf, const double *data) {
    size_t n = (size_t)node_numel(leaf);
    RRC_ASSERT(leaf->id < it->g->nnodes && it->g->nodes[leaf->id] == leaf);
    free(it->vals[leaf->id]);
    it->vals[leaf->id] = xmalloc(n * sizeof(double));
    memcpy(it->vals[leaf->id], data, n * sizeof(double));
    it->owned[leaf->id] = true;
}

void interp_bind_f32(Interp *it, const Node *leaf, const float *data) {
    size_t n = (size_t)node_numel(leaf);
    free(it->vals[leaf->id]);
    double *v = xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) v[i] = (double)data[i];
    it->vals[leaf->id] = v;
    it->owned[leaf->id] = true;
}

void interp_run(Interp *it) { interp_run_from(it, 0); }

void interp_run_from(Interp *it, int first) { interp_run_range(it, first, it->g->nnodes); }

void interp_run_range(Interp *it, int first, int end) {
    const Graph *g = it->g;
    RRC_ASSERT(first == 0 || it->keep_all);
    RRC_ASSERT(end <= g->nnodes);
    int *last = xmalloc((size_t)g->nnodes * sizeof *last);
    bool *keep = xcalloc((size_t)g->nnodes, sizeof *keep);
    for (int i = 0; i < g->nnodes; i++) last[i] = -1;
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i]->nin; k++) last[g->nodes[i]->in[k]->id] = i;
    for (int i = 0; i < g->nouts; i++) keep[g->outs[i].node->id] = true;
    for (int i = 0; i < g->nnodes && it->keep_all; i++) keep[i] = true;

    for (int i = first; i < end; i++) {
        const Node *n = g->nodes[i];
        const OpInfo *info = &op_table[n->op];
        if (info->fusion == FUSE_LEAF) {
            if (!it->vals[i]) RRC_ABORT("interp: leaf %%%d \"%s\" is not bound", i, n->name);
            continue;
        }
        const double *in[IR_MAX_IN];
        for (int k = 0; k < n->nin; k++) {
            in[k] = it->vals[n->in[k]->id];
            RRC_ASSERT(in[k]);
        }
        free(it->vals[i]);
        it->vals[i] = xmalloc((size_t)node_numel(n) * sizeof(double));
        it->owned[i] = true;
        info->fwd(n, in, it->vals[i]);
        if (it->round_f32)
            for (int64_t j = 0, e = node_numel(n); j < e; j++) it->vals[i][j] = (double)(float)it->vals[i][j];
        /* free inputs (not leaves, not outputs) whose last user this was */
        for (int k = 0; k < n->nin; k++) {
            int j = n->in[k]->id;
            if (last[j] == i && !keep[j] && op_table[g->nodes[j]->op].fusion != FUSE_LEAF && it->vals[j]) {
                free(it->vals[j]);
                it->vals[j] = NULL;
            }
        }
    }
    free(last);
    free(keep);
}

const double *interp_value(const Interp *it, const Node *n) { return it->vals[n->id]; }

void interp_free(Interp *it) {
    if (!it->vals) return;
    for (int i = 0; i < it->g->nnodes; i++)
        if (it->owned[i]) free(it->vals[i]);
    free(it->vals);
    free(it->owned);
    it->vals = NULL;
    it->owned = NULL;
}
