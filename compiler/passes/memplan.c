/*
** memplan.c: memory planning for compiled steps.
**
** Leaves and outputs get fixed homes: params, running statistics, the
** input batch and every named output each have their region (rt_step.h),
** laid out in node order. Every other value lives in the scratch region
** from the node that makes it to the last node that reads it; values whose
** lifetimes do not meet may share bytes (a reader's output never shares
** memory with its own inputs). Offsets are chosen largest value first, each
** at the lowest offset free for its whole lifetime.
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

static int by_size_then_start(const void *a, const void *b) {
    const Node *x = *(Node *const *)a, *y = *(Node *const *)b;
    int64_t sx = node_bytes(x), sy = node_bytes(y);
    if (sx != sy) return sx > sy ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int by_offset(const void *a, const void *b) {
    const Block *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

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
        at[i] = node_runs_at(x)->id;
        if (x->kernel && x->kernel->apply_in) at[i] = node_runs_at(x->kernel->apply_in)->id;   /* its second phase's last run */
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

    /* scratch: each value lives from the node that makes it to its last
       read, both ends included. The most bytes live at once is a lower bound
       for the region; placing the largest values first, each at the lowest
       offset clear of every placed value whose lifetime meets its own
       ("greedy by size"), comes close to it where first-come best-fit
       fragments (resnet32 K=4 B=64: 400 MiB live, 475 best-fit). */
    Node **vals = xmalloc((size_t)(n + 1) * sizeof *vals);
    int nvals = 0;
    int64_t *delta = xcalloc((size_t)n + 1, sizeof *delta);
    for (int i = 0; i < n; i++) {
        Node *x = g->nodes[i];
        if (x->region >= 0 || node_unstored(x)) continue;
        x->region = RT_REGION_SCRATCH;
        vals[nvals++] = x;
        delta[i] += node_bytes(x);
        delta[x->live_end + 1] -= node_bytes(x);
    }
    g->scratch_live_peak = 0;
    int64_t live = 0;
    for (int i = 0; i < n; i++) {
        live += delta[i];
        if (live > g->scratch_live_peak) g->scratch_live_peak = live;
    }
    qsort(vals, (size_t)nvals, sizeof *vals, by_size_then_start);
    Block *taken = xmalloc((size_t)(n + 1) * sizeof *taken);
    int64_t top = 0;
    for (int v = 0; v < nvals; v++) {
        Node *x = vals[v];
        int nt = 0;
        for (int u = 0; u < v; u++) {   /* placed values alive at the same time */
            Node *y = vals[u];
            if (y->id <= x->live_end && x->id <= y->live_end) taken[nt++] = (Block){y->offset, node_bytes(y)};
        }
        qsort(taken, (size_t)nt, sizeof *taken, by_offset);
        int64_t off = 0, need = node_bytes(x);
        for (int t = 0; t < nt && taken[t].off < off + need; t++)
            if (taken[t].off + taken[t].size > off) off = taken[t].off + taken[t].size;
        x->offset = off;
        if (off + need > top) top = off + need;
    }
    /* the kernel workspace (pass_fuse recorded each call's), after the
       values: one block, as kernel calls never overlap */
    int64_t ws = 0;
    for (int i = 0; i < n; i++) ws = g->nodes[i]->ws > ws ? g->nodes[i]->ws : ws;
    g->ws_offset = top;
    g->ws_bytes = (ws + RT_ALIGN - 1) / RT_ALIGN * RT_ALIGN;
    g->region_bytes[RT_REGION_SCRATCH] = top + g->ws_bytes;
    g->planned = true;
    free(vals);
    free(delta);
    free(taken);
    free(is_out);
    return true;
}
