/*
** memplan.c: memory planning for compiled steps.
**
** Leaves and outputs get fixed homes: params, running statistics, the
** input batch and every named output each have their region (rt_step.h),
** laid out in node order. Every other value lives in the scratch region
** from the node that makes it to the last node that reads it; a value's
** block is free for reuse once its last reader has run (a reader's output
** never shares memory with its own inputs). Blocks are taken best-fit from
** the freed ones, else from the top; the top is the region's peak.
**
** After fusion (fuse.c) a node's reads happen where its kernel runs: at the
** kernel's last member, or, for an inlined value (never stored), wherever
** each kernel that recomputes it runs; so a value stays alive up to the
** latest of those positions.
*/
#include <stdlib.h>

#include "ir/ir.h"

int64_t node_bytes(const Node *n) {
    int64_t b = node_numel(n) * (int64_t)sizeof(float);
    return (b + RT_ALIGN - 1) / RT_ALIGN * RT_ALIGN;
}

typedef struct Block { int64_t off, size; } Block;

bool pass_memplan(Graph *g, Diag *d) {
    (void)d;
    int n = g->nnodes;
    bool *is_out = xcalloc((size_t)n, sizeof *is_out);
    for (int i = 0; i < g->nouts; i++) is_out[g->outs[i].node->id] = true;
    for (int r = 0; r < RT_NREGIONS; r++) g->region_bytes[r] = 0;
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes[i];
        x->region = -1;
        x->live_end = i;
    }
    /* where each node's reads happen: its kernel's position; for inlined
       nodes the latest position of a kernel reading them (readers first) */
    int *at = xmalloc((size_t)(n ? n : 1) * sizeof *at);
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes[i];
        at[i] = x->kernel ? x->kernel->members[x->kernel->nmembers - 1]->id : i;
        if (x->inlined) at[i] = -1;
    }
    for (int i = n - 1; i >= 0; i--)
        for (int k = 0; k < g->nodes[i]->nin; k++) {
            Node *p = g->nodes[i]->in[k];
            if (p->inlined && at[i] > at[p->id]) at[p->id] = at[i];
        }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i]->nin; k++) {
            Node *p = g->nodes[i]->in[k];
            if (at[i] > p->live_end) p->live_end = at[i];
        }
    free(at);

    /* fixed homes */
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes[i];
        int r = x->op == OP_PARAM ? RT_REGION_PARAM : x->op == OP_STATE ? RT_REGION_STATE
              : x->op == OP_INPUT ? RT_REGION_INPUT : is_out[i] ? RT_REGION_OUTPUT : -1;
        if (r < 0) continue;
        x->region = r;
        x->offset = g->region_bytes[r];
        g->region_bytes[r] += node_bytes(x);
    }

    /* scratch by liveness: free[] holds blocks whose values are dead */
    Block *free_ = xmalloc((size_t)(n + 1) * sizeof *free_);
    int nfree = 0;
    int64_t top = 0;
    Node **live = xmalloc((size_t)(n + 1) * sizeof *live);
    int nlive = 0;
    for (int i = 0; i < n; i++) {
        /* release values whose last reader ran before node i */
        for (int k = 0; k < nlive;) {
            if (live[k]->live_end < i) {
                free_[nfree++] = (Block){live[k]->offset, node_bytes(live[k])};
                live[k] = live[--nlive];
            } else {
                k++;
            }
        }
        Node *x = g->nodes[i];
        if (x->region >= 0 || x->inlined) continue;
        int64_t need = node_bytes(x);
        int best = -1;
        for (int k = 0; k < nfree; k++)
            if (free_[k].size >= need && (best < 0 || free_[k].size < free_[best].size)) best = k;
        x->region = RT_REGION_SCRATCH;
        if (best >= 0) {
            x->offset = free_[best].off;
            if (free_[best].size > need) free_[best] = (Block){free_[best].off + need, free_[best].size - need};
            else free_[best] = free_[--nfree];
        } else {
            x->offset = top;
            top += need;
        }
        live[nlive++] = x;
    }
    g->region_bytes[RT_REGION_SCRATCH] = top;
    g->planned = true;
    free(free_);
    free(live);
    free(is_out);
    return true;
}
