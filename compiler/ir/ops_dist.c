/*
** ops_dist.c: the collectives of data-parallel training (rt_comm.h).
**
** A run over N ranks gives each rank its share of each batch's images
** (rt_comm_share). One rank's training graph is the one-process graph with
** these nodes where the ranks must agree:
**   - BatchNorm of the backbone normalises over all the step's views, so
**     its statistics are every rank's: bn_stats_all (each rank's count,
**     mean and variance in double, combined in rank order); in the
**     backward, bn_train's rule makes bn_train_dx_all, whose two
**     per-channel sums are summed over ranks in double. Both keep double
**     where one process does, so their f32 results are (nearly always)
**     one process's bits: the ranks' forward pass is the one process's;
**   - the backbone's features are gathered (gather_rows) into the whole
**     batch's, in the one-process row order; everything after them (pairs,
**     relation head, loss) is computed by every rank alike, so gather_rows'
**     gradient is the rank's own rows of the (identical) feature gradient,
**     local_rows.
** The parameters before the gather get partial gradients, which the
** runtime sums over ranks in one bucket per step (rt_train.c). Row order
** within a group: rank 0's rows, then rank 1's, ...: one process's order.
**
** The reference kernels call the same collectives in double. With one
** rank (no mpirun, the tests of this file) each op is a copy, and a graph
** built for ranks computes what the one-process graph does.
*/
#include <stdlib.h>

#include "ir/ops_impl.h"
#include "rt_comm.h"
#include "rt_kernels.h"

/* ---- bn_stats_all(x): bn_stats over the values of every rank; ia[0] =
   values per channel in all ranks ---- */

bool shape_bn_stats_all(Node *n, char *err, size_t errlen) {
    const Node *x = n->in[0];
    if (x->rank < 2) SHAPE_FAIL("bn_stats_all: input must be [N,C] or [N,C,H,W] (got %s)", shp(x));
    if (n->ia[0] < per_channel(x))
        SHAPE_FAIL("bn_stats_all: %lld values in all, fewer than this rank's %lld", (long long)n->ia[0], (long long)per_channel(x));
    set_shape2(n, 2, x->dim[1]);
    return true;
}

void fwd_bn_stats_all(const Node *n, const double *const *in, double *out) {
    const rt_comm *cm = rt_comm_get();
    int64_t C = n->dim[1], w = 2 * C + 1;
    double *mine = malloc((size_t)w * sizeof *mine), *all = malloc((size_t)(w * cm->size) * sizeof *all);
    int64_t *counts = malloc((size_t)cm->size * sizeof *counts);
    if (!mine || !all || !counts) RRC_ABORT("out of memory");
    /* this rank's (count, mean, biased var), as bn_stats computes them */
    fwd_bn_stats(n, in, mine + 1);
    mine[0] = (double)per_channel(n->in[0]);
    for (int r = 0; r < cm->size; r++) counts[r] = w;
    rt_comm_allgather_f64(mine, w, all, counts);
    rt_stats_combine(all, cm->size, C, out, out + C);
    free(mine);
    free(all);
    free(counts);
}

Cost cost_bn_stats_all(const Node *n) { return cost_bn_stats(n); }

/* ---- bn_train_dx_all(dy, x, stats, gamma): bn_train_dx with the sums
   of dy and dy*xhat over every rank; ia[0] = values per channel in all
   ranks ---- */

bool shape_bn_train_dx_all(Node *n, char *err, size_t errlen) {
    const Node *dy = n->in[0], *x = n->in[1];
    if (!same_shape(dy, x) || x->rank < 2) SHAPE_FAIL("bn_train_dx_all: dy %s and x %s differ", shp(dy), shp(x));
    int64_t C = x->dim[1];
    if (n->in[2]->rank != 2 || n->in[2]->dim[0] != 2 || n->in[2]->dim[1] != C)
        SHAPE_FAIL("bn_train_dx_all: statistics %s are not [2,%lld]", shp(n->in[2]), (long long)C);
    if (n->in[3]->rank != 1 || n->in[3]->dim[0] != C) SHAPE_FAIL("bn_train_dx_all: weight %s is not [%lld]", shp(n->in[3]), (long long)C);
    if (n->ia[0] < per_channel(x)) SHAPE_FAIL("bn_train_dx_all: %lld values in all, fewer than this rank's", (long long)n->ia[0]);
    set_shape(n, x->rank, x->dim);
    return true;
}

void fwd_bn_train_dx_all(const Node *n, const double *const *in, double *out) {
    bn_dx_reference(n, in, out, (double)n->ia[0], true);
}

Cost cost_bn_train_dx_all(const Node *n) { return cost_bn_train_dx(n); }

/* ---- gather_rows(x): x [G*b, ...] (this rank's b images in each of G
   groups) -> [G*B, ...], ia = G, B: group g's rows are every rank's rows of
   group g in rank order ---- */

static int64_t row_elems(const Node *x) { return x->dim[0] ? node_numel(x) / x->dim[0] : 0; }

bool shape_gather_rows(Node *n, char *err, size_t errlen) {
    const Node *x = n->in[0];
    int64_t G = n->ia[0], B = n->ia[1];
    if (x->rank < 1 || G < 1 || x->dim[0] % G != 0 || x->dim[0] / G > B || B < 1)
        SHAPE_FAIL("gather_rows: %s is not %lld groups of at most %lld rows", shp(x), (long long)G, (long long)B);
    int64_t d[IR_MAX_RANK];
    memcpy(d, x->dim, sizeof d);
    d[0] = G * B;
    set_shape(n, x->rank, d);
    return true;
}

void fwd_gather_rows(const Node *n, const double *const *in, double *out) {
    const rt_comm *cm = rt_comm_get();
    int64_t G = n->ia[0], B = n->ia[1], E = row_elems(n), o;
    int64_t *counts = malloc((size_t)cm->size * sizeof *counts), total = 0;
    if (!counts) RRC_ABORT("out of memory");
    for (int r = 0; r < cm->size; r++) total += counts[r] = G * rt_comm_share(B, r, cm->size, &o) * E;
    if (counts[cm->rank] != node_numel(n->in[0]))
        RRC_ABORT("gather_rows: built for %lld rows a group, rank %d has %lld", (long long)(n->in[0]->dim[0] / G), cm->rank,
                  (long long)(counts[cm->rank] / E / G));
    double *all = malloc((size_t)total * sizeof *all);
    if (!all) RRC_ABORT("out of memory");
    rt_comm_allgather_f64(in[0], node_numel(n->in[0]), all, counts);
    const double *p = all;
    for (int r = 0; r < cm->size; r++) {
        int64_t b = rt_comm_share(B, r, cm->size, &o);
        for (int64_t g = 0; g < G; g++, p += b * E) memcpy(out + (g * B + o) * E, p, (size_t)(b * E) * sizeof *out);
    }
    free(all);
    free(counts);
}

Cost cost_gather_rows(const Node *n) { return (Cost){0, 8.0 * (double)node_numel(n)}; }

void bwd_gather_rows(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    int64_t ia[] = {n->ia[0], n->ia[1], n->in[0]->dim[0] / n->ia[0]};
    if (need & 1) dx[0] = ir_make(g, OP_LOCAL_ROWS, &dy, 1, ia, 3, NULL, 0);
}

/* ---- local_rows(y): y [G*B, ...] -> this rank's rows [G*b, ...], ia = G,
   B, b (the share the graph was built for: the kernel checks that it is
   the running rank's) ---- */

bool shape_local_rows(Node *n, char *err, size_t errlen) {
    const Node *y = n->in[0];
    int64_t G = n->ia[0], B = n->ia[1];
    if (y->rank < 1 || G < 1 || B < 1 || y->dim[0] != G * B || n->ia[2] < 1 || n->ia[2] > B)
        SHAPE_FAIL("local_rows: %s is not %lld groups of %lld rows, or %lld rows a group is not a share of them", shp(y),
                   (long long)G, (long long)B, (long long)n->ia[2]);
    int64_t d[IR_MAX_RANK];
    memcpy(d, y->dim, sizeof d);
    d[0] = G * n->ia[2];
    set_shape(n, y->rank, d);
    return true;
}

void fwd_local_rows(const Node *n, const double *const *in, double *out) {
    const rt_comm *cm = rt_comm_get();
    int64_t G = n->ia[0], B = n->ia[1], E = row_elems(n->in[0]), o;
    int64_t b = rt_comm_share(B, cm->rank, cm->size, &o);
    if (b != n->ia[2]) RRC_ABORT("local_rows: built for %lld rows a group, rank %d has %lld", (long long)n->ia[2], cm->rank, (long long)b);
    for (int64_t g = 0; g < G; g++) memcpy(out + g * b * E, in[0] + (g * B + o) * E, (size_t)(b * E) * sizeof *out);
}

Cost cost_local_rows(const Node *n) { return (Cost){0, 8.0 * (double)node_numel(n)}; }

/* ---- builders ---- */

Node *ir_bn_stats_all(Graph *g, Node *x, int64_t total) { return ir_make(g, OP_BN_STATS_ALL, &x, 1, &total, 1, NULL, 0); }

Node *ir_gather_rows(Graph *g, Node *x, int64_t groups, int64_t total) {
    int64_t ia[] = {groups, total};
    return ir_make(g, OP_GATHER_ROWS, &x, 1, ia, 2, NULL, 0);
}
