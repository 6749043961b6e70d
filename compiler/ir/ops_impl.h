/*
** ops_impl.h: what the ops_*.c files share: the prototypes the op table
** needs (generated from ops.def, so a missing function fails the link) and
** small helpers for shape rules and kernels. Not for use outside ir/.
*/
#ifndef RRC_OPS_IMPL_H
#define RRC_OPS_IMPL_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/ir.h"

#define OP(E, name, nin, fusion, diffmask, attrs, reads)                         \
    bool shape_##name(Node *n, char *err, size_t errlen);                       \
    void fwd_##name(const Node *n, const double *const *in, double *out);       \
    Cost cost_##name(const Node *n);                                            \
    void bwd_##name(Graph *g, Node *n, Node *dy, unsigned need, Node **dx);
#define OPN(E, name, nin, fusion, attrs, reads)                                 \
    bool shape_##name(Node *n, char *err, size_t errlen);                       \
    void fwd_##name(const Node *n, const double *const *in, double *out);       \
    Cost cost_##name(const Node *n);
#include "ir/ops.def"
#undef OP
#undef OPN

/* The reference kernels rrc check runs thousands of times (convolutions)
   are RRC_HOT_KERNEL: per-CPU clones, the same bits (rt_clones.h). */
#include "rt_clones.h"

/* Shape-rule helpers. SHAPE_FAIL formats the message and returns false. */
#define SHAPE_FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return false; } while (0)
void set_shape(Node *n, int rank, const int64_t *dim);
void set_shape4(Node *n, int64_t a, int64_t b, int64_t c, int64_t d);
void set_shape2(Node *n, int64_t a, int64_t b);
void set_shape1(Node *n, int64_t a);
bool same_shape(const Node *a, const Node *b);
/* "[2,3,4]" of a node (static buffer rotation: valid for a few calls) */
const char *shp(const Node *n);

/* Elements per channel of an [N, C, ...] tensor (N times the rest). */
int64_t per_channel(const Node *x);
/* Size of the trailing dims after the channel axis. */
int64_t spatial(const Node *x);

/* The reference BatchNorm input gradient (bn_train_dx's inputs dy, x,
   stats, gamma) over M values per channel; all_ranks: its two sums over
   every rank (bn_train_dx_all). */
void bn_dx_reference(const Node *n, const double *const *in, double *out, double M, bool all_ranks);
/* Costs */
Cost cost_elementwise(const Node *n, double flops_per_elem);

#endif
