/*
** ops.c: the op table (generated from ops.def) and the helpers that the
** shape rules and kernels of ops_*.c share.
*/
#include <pthread.h>
#include <stdlib.h>

#include "ir/ops_impl.h"

const OpInfo op_table[OP_COUNT] = {
#define OP(E, nm, nin, fusion, diffmask, attrs, reads) \
    [OP_##E] = {#nm, nin, fusion, diffmask, attrs, reads, shape_##nm, fwd_##nm, bwd_##nm, cost_##nm},
#define OPN(E, nm, nin, fusion, attrs, reads) \
    [OP_##E] = {#nm, nin, fusion, 0, attrs, reads, shape_##nm, fwd_##nm, NULL, cost_##nm},
#include "ir/ops.def"
#undef OP
#undef OPN
};

const char *fusion_class_name(FusionClass f) {
    static const char *names[] = {"leaf", "elemwise", "broadcast", "injective", "reduce",
                                  "out_ewise", "opaque"};
    return (unsigned)f < sizeof names / sizeof names[0] ? names[f] : "?";
}

void set_shape(Node *n, int rank, const int64_t *dim) {
    RRC_ASSERT(rank >= 0 && rank <= IR_MAX_RANK);
    n->rank = rank;
    for (int i = 0; i < IR_MAX_RANK; i++) n->dim[i] = i < rank ? dim[i] : 0;
}

void set_shape4(Node *n, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t dim[4] = {a, b, c, d};
    set_shape(n, 4, dim);
}

void set_shape2(Node *n, int64_t a, int64_t b) {
    int64_t dim[2] = {a, b};
    set_shape(n, 2, dim);
}

void set_shape1(Node *n, int64_t a) { set_shape(n, 1, &a); }

bool same_shape(const Node *a, const Node *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i]) return false;
    return true;
}

const char *shp(const Node *n) {
    static char bufs[4][64];
    static int k;
    char *b = bufs[k++ & 3];
    fmt_shape(b, 64, n);
    return b;
}

int64_t spatial(const Node *x) {
    int64_t s = 1;
    for (int i = 2; i < x->rank; i++) s *= x->dim[i];
    return s;
}

int64_t per_channel(const Node *x) { return x->dim[0] * spatial(x); }

Cost cost_elementwise(const Node *n, double flops_per_elem) {
    double e = (double)node_numel(n);
    double bytes = 4.0 * e;
    for (int i = 0; i < n->nin; i++) bytes += 4.0 * (double)node_numel(n->in[i]);
    return (Cost){flops_per_elem * e, bytes};
}

/* RRC_TEST_WRONG_BACKWARD=<op> (tests only) doubles every gradient that
   op's rule makes, so that a test can see `rrc check` name it. */
static int wrong_op = -1;
static void find_wrong_op(void) {
    const char *e = getenv("RRC_TEST_WRONG_BACKWARD");
    for (int i = 0; e && i < OP_COUNT; i++)
        if (!strcmp(op_table[i].name, e)) wrong_op = i;
}
static int wrong_backward_op(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;   /* rrc check builds rules on several threads */
    pthread_once(&once, find_wrong_op);
    return wrong_op;
}

void ir_backward(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    op_table[n->op].bwd(g, n, dy, need, dx);
    if ((int)n->op != wrong_backward_op()) return;
    for (int k = 0; k < n->nin; k++)
        if ((need >> k & 1) && dx[k]) dx[k] = ir_add(g, dx[k], dx[k]);
}
