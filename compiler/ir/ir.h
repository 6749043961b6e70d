/*
** ir.h: the graph IR of rrc.
**
** A Graph is a list of Nodes in topological order (a node's inputs always
** come before it: the builder only appends). Every node has one f32 tensor
** value with a static shape, an op from the op table (ops.def), up to
** IR_MAX_IN inputs, integer and float attributes laid out by the op's
** schema, and the spec line it was built for. Leaves are `input` (data fed
** per step), `param` (trainable), `state` (BatchNorm running statistics):
** they carry a tensor name. Named outputs (loss, logits, grad.<param>,
** state.<name>, features) say what a graph computes.
**
** Sections: types; the op table; graph and builder; verifier and dump;
** passes; the reference interpreter.
*/
#ifndef RRC_IR_H
#define RRC_IR_H

#include <stdio.h>

#include "rt_init.h"
#include "rt_step.h"
#include "util.h"
#include "ir/target.h"

#define IR_MAX_IN 5
#define IR_MAX_RANK 4
#define IR_MAX_IA 8
#define IR_MAX_FA 4

/* ---- the op table (ops.def) ---- */

typedef enum OpKind {
#define OP(E, name, nin, fusion, diffmask, attrs, reads) OP_##E,
#define OPN(E, name, nin, fusion, attrs, reads) OP_##E,
#include "ir/ops.def"
#undef OP
#undef OPN
    OP_COUNT
} OpKind;

/* Fusion classes (as TVM's OpPatternKind): what the fusion pass may merge. */
typedef enum FusionClass {
    FUSE_LEAF,       /* input, param, state: no computation */
    /* FUSE_ELEMWISE and FUSE_BROADCAST ops are computed inside generated
       loops (inlined into their readers or a loop of their own): the pass
       fuses every op of these classes, and codegen must define the op's
       loop body (cg_fuse.c's ew_<name>, from this table: the build fails
       without it). */
    FUSE_ELEMWISE,   /* out[i] = f(in[i]...) on one iteration space */
    FUSE_BROADCAST,  /* elementwise with per-channel operands */
    FUSE_INJECTIVE,  /* each output element from a few input elements (pool, pairs) */
    FUSE_REDUCE,     /* reductions (BN statistics, channel sums, losses) */
    FUSE_OUT_EWISE,  /* conv/matmul: elementwise epilogues may fuse into its output */
    FUSE_OPAQUE,     /* fuses with nothing: a runtime kernel of its own (backward
                        convolutions, fills, the losses' gradients) */
} FusionClass;

typedef struct Cost {
    double flops;    /* floating-point operations (a multiply-add counts 2) */
    double bytes;    /* bytes read + written, at f32, without reuse */
} Cost;

typedef struct Node Node;
typedef struct Graph Graph;

typedef struct OpInfo {
    const char *name;
    int nin;                 /* number of inputs */
    FusionClass fusion;
    unsigned diffmask;       /* bit i: input i is differentiable; 0: op has no gradient */
    const char *attrs;       /* schema: "i:stride i:pad f:eps" -> ia[0], ia[1], fa[0] */
    const char *reads;       /* how a generated loop reads input i: reads[i] is 'e' (at the
                                element it computes) or 'c' (per channel); "" for ops no
                                generated loop computes */
    /* Shape rule: sets n->rank/dim from inputs and attributes; on a user
       error writes a message into err and returns false. */
    bool (*shape)(Node *n, char *err, size_t errlen);
    /* Reference forward kernel, in double: out = op(in...). NULL for leaves. */
    void (*fwd)(const Node *n, const double *const *in, double *out);
    /* Backward rule, as builder calls: given dy (the gradient of n's value),
       sets dx[i] for each input i whose bit is set in `need`. NULL when
       diffmask is 0. */
    void (*bwd)(Graph *g, Node *n, Node *dy, unsigned need, Node **dx);
    Cost (*cost)(const Node *n);
} OpInfo;

extern const OpInfo op_table[OP_COUNT];
/* n's backward rule (op_table[n->op].bwd): what autodiff and `rrc check`
   call, so a test can plant a wrong rule (RRC_TEST_WRONG_BACKWARD=<op>). */
void ir_backward(Graph *g, Node *n, Node *dy, unsigned need, Node **dx);
const char *fusion_class_name(FusionClass f);

/* ---- nodes and graphs ---- */

enum NodeFlags {
    NF_TRAINABLE = 1u << 0,   /* param with a gradient */
    NF_RANK_PARTIAL = 1u << 1,   /* param whose gradient in one rank's graph is that rank's part (ops_dist.c) */
    NF_WANT_GRAD = 1u << 2,   /* input whose gradient autodiff also outputs, as "dinput.<name>" (rrc check's views) */
};

struct Node {
    int id;                   /* index in g->nodes */
    OpKind op;
    int nin;
    Node *in[IR_MAX_IN];
    int rank;
    int64_t dim[IR_MAX_RANK];
    int64_t ia[IR_MAX_IA];
    double fa[IR_MAX_FA];
    const char *name;         /* leaves: tensor name; others: the module path, or NULL */
    SrcLoc loc;
    rt_init init;             /* params and state: initial value */
    unsigned flags;
    /* memory plan (passes/memplan.c): where the value lives in the step ABI */
    int region;               /* RT_REGION_*, or -1 before planning */
    int64_t offset;           /* bytes from the region's start */
    int live_end;             /* index of the last node that reads it (scratch values) */
    /* fusion (passes/fuse.c) */
    struct Kernel *kernel;    /* the fused kernel writing this value, or NULL */
    bool direct;              /* conv2d / conv2d_dx / conv2d_dw with a generated direct kernel (pass_fuse) */
    bool gray_x;              /* direct conv2d / conv2d_dw whose x is the step's input with equal channels
                                 (Graph.gray_input): its kernel reads channel 0 alone (pass_fuse) */
    int64_t ws;               /* emitting nodes: bytes of kernel workspace its call needs (pass_fuse) */
    bool inlined;             /* computed inside its consumers' kernels: never in memory (an elementwise
                                 value recomputed by each reader, or the input gradient of a KERNEL_DX_EPI) */
};

/* A fused kernel (passes/fuse.c): one generated or runtime kernel writing the
   values of several nodes. Its members are contiguous in node order, root
   first; it runs at the position of its last member. Inlined nodes (their
   values recomputed wherever they are read) belong to no kernel, but for
   the inlined members of a KERNEL_DX_EPI, computed in it alone. */
typedef enum KernelKind {
    KERNEL_EW,          /* elementwise map over [N, C, S] with per-channel operands: root is the last op */
    KERNEL_BN_DX,       /* bn_train_dx root + its bn_dgamma / chan_sum siblings: sums, then dx */
    KERNEL_CONV_STATS,  /* conv2d root + bn_stats of its output, accumulated per image */
    KERNEL_POOL,        /* avgpool2d 2x2 / global_avgpool over planes, reading an inlined input */
    KERNEL_DX_EPI,      /* direct conv2d_dx root (inlined: never stored), the inlined ops reading it, and
                           the elementwise op they make (the epilogue; e.g. the residual ReLU backward),
                           computed on each output tile as it is stored; then, if a BatchNorm backward
                           reads the epilogue, its bn_dgamma and chan_sum (see Kernel.given) */
    KERNEL_PAIR_BIAS,   /* pair_halves root (inlined: never stored) + the bias_add reading it: the runtime's
                           pair kernel adds the bias to each row as it writes it */
} KernelKind;

#define KERNEL_MAX_MEMBERS 6
struct Kernel {
    KernelKind kind;
    int nmembers;
    Node *members[KERNEL_MAX_MEMBERS];   /* members[0] is the root */
    /* KERNEL_BN_DX whose sums a KERNEL_DX_EPI makes (as it stores g, the
       epilogue): the bn_dgamma and chan_sum of g, members of that kernel,
       which this one reads instead of summing g and x itself */
    Node *given[2];
    /* KERNEL_DX_EPI: the value it stores (the last member before any
       BatchNorm sums), and the bn_dgamma and chan_sum it makes when a
       BatchNorm backward reads that value (else NULL) */
    Node *epilogue;
    Node *sums[2];
    /* KERNEL_BN_DX by samples whose dx only direct convolution gradients
       read (conv2d_dw, conv2d_dx: as their dy): each of them computes dx
       image by image into its thread's buffer with this kernel's second
       phase, so dx is never stored; this kernel makes the sums alone
       (pass_fuse, phase_staged). The last of those readers, or NULL. */
    Node *apply_in;
};
typedef struct Kernel Kernel;
const char *kernel_kind_name(KernelKind k);

/* What the code generator can do, asked by the passes (pass_fuse), which
   record the answers in the graph; codegen then obeys the graph. So the
   target and codegen's kernels stay out of the passes. codegen/cg.h
   (cg_caps) provides it; a graph planned without (NULL) gets no direct
   convolutions and no workspace, which the interpreter does not need. */
typedef struct BackendCaps {
    /* whether conv2d / conv2d_dx / conv2d_dw node n gets a generated
       direct kernel on target t */
    bool (*conv_direct)(const Node *n, const Target *t);
    /* bytes of workspace the kernel call of emitting node n needs (its
       fused kernel's, when it is a kernel's last member) */
    int64_t (*workspace)(const Node *n);
    /* whether direct conv2d_dw / conv2d_dx node n can make its dy image
       by image in its thread's buffer (Kernel.apply_in) on target t */
    bool (*conv_stages_dy)(const Node *n, const Target *t);
} BackendCaps;
/* For planning and codegen: whether n runs as its own kernel or is the last
   member of a fused one (the node at whose position a kernel is emitted). */
bool node_emits(const Node *n);
/* Whether n's value is made inside its reader's kernel, never in memory:
   inlined, or the dx of a BatchNorm backward applied in the convolution
   gradients reading it (Kernel.apply_in). */
bool node_unstored(const Node *n);
/* The node at whose position n's kernel runs: its fused kernel's last
   member, or n. */
const Node *node_runs_at(const Node *n);
/* The op table's cost of the kernel emitting node n runs: its own, or
   its fused kernel's members' summed. */
Cost node_kernel_cost(const Node *n);
/* Kernels a compiled step runs: nodes that emit (runtime calls and fused kernels). */
int graph_kernel_count(const Graph *g);

typedef struct Output {
    const char *name;         /* "loss", "logits", "grad.<p>", "state.<s>", "features" */
    Node *node;
} Output;

struct Graph {
    Arena *arena;
    Node **nodes;
    int nnodes, cap;
    Output *outs;
    int nouts, capouts;
    /* memory plan: bytes of each region (scratch with the kernel workspace) */
    int64_t region_bytes[RT_NREGIONS];
    int64_t scratch_live_peak;   /* memplan: most scratch bytes live at once (a lower bound) */
    bool planned;
    /* fused kernels (passes/fuse.c) */
    Kernel *kernels;
    int nkernels;
    bool fused;
    const Target *target;     /* the machine the passes decide for (set by pipeline_run) */
    bool gray_input;          /* the input images' channels are equal (a gray data set): convolutions of the
                                 input may read one channel with weights summed over the channels */
    const BackendCaps *caps;  /* what the code generator has kernels for (NULL: nothing special) */
    int64_t ws_offset, ws_bytes;   /* memplan: the kernel workspace, at the end of the scratch region */
    /* builder state: stamped on nodes made from now on */
    SrcLoc loc;
    const char *label;
    Diag *diag;               /* shape errors are reported here (NULL: abort) */
};

Graph *graph_new(Arena *a);
int64_t node_numel(const Node *n);
const OpInfo *node_info(const Node *n);
Node *graph_find_leaf(Graph *g, OpKind op, const char *name);
Output *graph_output(Graph *g, const char *name);   /* NULL if absent */
void graph_add_output(Graph *g, const char *name, Node *n);

/* Generic builder: appends a node after running the op's shape rule. On a
   shape error reports "loc: label: message" to g->diag and returns NULL
   (callers propagate NULL); without g->diag it is an internal error. */
Node *ir_make(Graph *g, OpKind op, Node *const *in, int nin, const int64_t *ia, int nia,
              const double *fa, int nfa);

/* Leaves. */
Node *ir_input(Graph *g, const char *name, int rank, const int64_t *dim);
Node *ir_param(Graph *g, const char *name, int rank, const int64_t *dim, rt_init init);
Node *ir_state(Graph *g, const char *name, int rank, const int64_t *dim, rt_init init);

/* Typed builders, one per op (they all go through ir_make). */
Node *ir_conv2d(Graph *g, Node *x, Node *w, int stride, int pad);
Node *ir_conv2d_dx(Graph *g, Node *dy, Node *w, int stride, int pad, int64_t h, int64_t w_);
Node *ir_conv2d_dw(Graph *g, Node *dy, Node *x, int stride, int pad, int64_t kh, int64_t kw);
Node *ir_linear(Graph *g, Node *x, Node *w);
Node *ir_linear_dx(Graph *g, Node *dy, Node *w);
Node *ir_linear_dw(Graph *g, Node *dy, Node *x);
Node *ir_bias_add(Graph *g, Node *x, Node *b);
Node *ir_chan_sum(Graph *g, Node *x);
Node *ir_relu(Graph *g, Node *x);
Node *ir_relu_back(Graph *g, Node *dy, Node *y);
Node *ir_leaky_relu(Graph *g, Node *x, double slope);
Node *ir_leaky_relu_back(Graph *g, Node *dy, Node *x, double slope);
Node *ir_add(Graph *g, Node *a, Node *b);
Node *ir_avgpool2d(Graph *g, Node *x, int k, int s, int pad);
Node *ir_avgpool2d_back(Graph *g, Node *dy, const Node *x, int k, int s, int pad);
Node *ir_maxpool2d(Graph *g, Node *x, int k, int s, int pad);
Node *ir_maxpool2d_back(Graph *g, Node *dy, Node *x, int k, int s, int pad);
Node *ir_global_avgpool(Graph *g, Node *x);
Node *ir_global_avgpool_back(Graph *g, Node *dy, int64_t h, int64_t w);
Node *ir_reshape(Graph *g, Node *x, int rank, const int64_t *dim);
Node *ir_bn_stats(Graph *g, Node *x);
Node *ir_bn_train(Graph *g, Node *x, Node *stats, Node *gamma, Node *beta, double eps);
Node *ir_bn_train_dx(Graph *g, Node *dy, Node *x, Node *stats, Node *gamma, double eps);
Node *ir_bn_dgamma(Graph *g, Node *dy, Node *x, Node *stats, double eps);
Node *ir_bn_eval(Graph *g, Node *x, Node *mean, Node *var, Node *gamma, Node *beta, double eps);
Node *ir_bn_running(Graph *g, Node *old, Node *stats, int which, double momentum);
Node *ir_pairs(Graph *g, Node *f, int K, int agg);
Node *ir_pairs_back(Graph *g, Node *dp, Node *f, int K, int agg);
Node *ir_pair_halves(Graph *g, Node *x, int K);
Node *ir_pair_targets(Graph *g, int K, int64_t B);
Node *ir_focal_loss(Graph *g, Node *z, Node *y, double gamma, double alpha);
Node *ir_focal_back(Graph *g, Node *dl, Node *z, Node *y, double gamma, double alpha);
Node *ir_bce_loss(Graph *g, Node *z, Node *y);
Node *ir_bce_back(Graph *g, Node *dl, Node *z, Node *y);
Node *ir_softmax_ce(Graph *g, Node *z, Node *y);
Node *ir_fill(Graph *g, int rank, const int64_t *dim, double value);
/* ops_math.c */
Node *ir_mul(Graph *g, Node *a, Node *b);
Node *ir_exp(Graph *g, Node *x);
Node *ir_log(Graph *g, Node *x);
Node *ir_log_back(Graph *g, Node *dy, Node *x);
Node *ir_softplus(Graph *g, Node *x);
Node *ir_softplus_back(Graph *g, Node *dy, Node *x);
Node *ir_l2_normalize(Graph *g, Node *x, double eps);
Node *ir_l2_normalize_back(Graph *g, Node *dy, Node *x, double eps);
/* C = op(a) op(b), op(x) = x^T where ta / tb is 1 */
Node *ir_matmul(Graph *g, Node *a, Node *b, int64_t ta, int64_t tb);
/* ops_ssl.c */
Node *ir_rotations(Graph *g, Node *x);
Node *ir_block_targets(Graph *g, int64_t n, int64_t block);
Node *ir_simclr_loss(Graph *g, Node *z, double t, double eps);
Node *ir_weighted_ce(Graph *g, Node *z, Node *y, Node *w);
/* ops_dim.c */
Node *ir_local_pairs(Graph *g, Node *M, Node *y);
Node *ir_concat_rows(Graph *g, Node *a, Node *b);
Node *ir_jsd_loss(Graph *g, Node *t, double scale);
Node *ir_prior_loss(Graph *g, Node *p, double scale);
/* ops_dist.c: data-parallel ranks. bn_stats_all: bn_stats over the
   `total` values per channel of all ranks (x: this rank's);
   gather_rows: x [G*b, ...], this rank's b of `total` images in each of G
   groups -> [G*total, ...] in one process's row order. */
Node *ir_bn_stats_all(Graph *g, Node *x, int64_t total);
Node *ir_gather_rows(Graph *g, Node *x, int64_t groups, int64_t total);

/* ---- verifier and dump ---- */

/* Checks the graph's invariants (topological order, arity, shapes agree
   with the shape rules, saved-value edges, outputs). Returns true if all
   hold; otherwise prints each violation and returns false. */
bool graph_verify(Graph *g, const char *when);

/* Writes the stable text form: one node per line with shape and spec line,
   then outputs and a summary. */
typedef struct GraphStats {
    int64_t params_backbone, params_relation;     /* relation: every tensor not the backbone's (the head's) */
    int64_t bn_stats_backbone, bn_stats_relation;
    int64_t macs_per_image;      /* convs and linears of the backbone, forward */
    int64_t macs_relation_per_pair;   /* as the graph computes them: a layer the factor pass runs per view counts its share */
    int nnodes;
} GraphStats;
GraphStats graph_stats(const Graph *g, int64_t images);
void graph_dump(FILE *f, const Graph *g);
void fmt_shape(char *buf, size_t n, const Node *node);

/* ---- passes (passes/) ---- */

/* The cat-aggregated pairs' linear layer per view (passes/factor.c). */
bool pass_factor(Graph *g, Diag *d);
/* Reverse-mode autodiff: adds the gradient of output `loss` with respect to
   every trainable param as output "grad.<name>". */
bool pass_autodiff(Graph *g, Diag *d);
/* The vector-Jacobian product behind it: with dy the gradient of y, adds
   "grad.<name>" = dy . dy/dparam for every trainable param. */
void ir_vjp(Graph *g, Node *y, Node *dy);
/* Exact algebraic simplifications (passes/simplify.c). */
bool pass_simplify(Graph *g, Diag *d);
/* Removes nodes that no output depends on; renumbers. */
bool pass_dce(Graph *g, Diag *d);
/* Groups nodes into fused kernels and marks values computed inside their
   consumers (passes/fuse.c); reorders so every kernel's members are
   contiguous. */
bool pass_fuse(Graph *g, Diag *d);
/* Whether direct conv2d_dx node n can end in an epilogue (KERNEL_DX_EPI). */
bool fuse_dx_epilogue(const Node *n);
/* Ops that generated elementwise kernels compute (cg_fuse.c emits them). */
bool fuse_ew_op(OpKind op);
/* Pooling with a generated kernel (KERNEL_POOL): 2x2 stride-2 average
   pooling without padding of even planes, and global average pooling. */
bool fuse_pool_op(const Node *n);
/* Pooling gradients that generated plane loops compute inline: the
   avgpool2d_back of fuse_pool_op's 2x2 pooling (a quarter of its window's
   gradient per element) and global_avgpool_back (1/S of the plane's). */
bool fuse_unpool_op(const Node *n);
/* The input gradient of a one-output linear layer (the relation head's
   score), an outer product dy[n] w[c]: generated [N, C] loops compute it
   inline, as they compute its readers. */
bool fuse_outer_op(const Node *n);
/* Assigns every value a region and offset (rt_step.h): leaves and outputs
   get fixed homes, intermediates share the scratch region by liveness. */
bool pass_memplan(Graph *g, Diag *d);
int64_t node_bytes(const Node *n);   /* f32 bytes rounded up to RT_ALIGN */

/* ---- the reference interpreter (ir/interp.c) ---- */

/* Values of a graph run, in double: vals[node id]. Leaves must be bound
   (interp_bind) before interp_run; intermediate values no output needs are
   freed as soon as their last user has run. */
typedef struct Interp {
    const Graph *g;
    double **vals;
    bool *owned;
    bool keep_all;            /* keep every value after interp_run (else outputs and leaves only) */
    bool round_f32;           /* round every node's values to float, as a float evaluation stores them */
} Interp;
void interp_init(Interp *it, const Graph *g);
void interp_bind(Interp *it, const Node *leaf, const double *data);      /* copies */
void interp_bind_f32(Interp *it, const Node *leaf, const float *data);   /* converts */
void interp_run(Interp *it);
/* Recomputes the nodes from index `first` on (keep_all: the values before
   it are those of the last run), after a leaf read only from there on
   changed. */
void interp_run_from(Interp *it, int first);
/* Runs the nodes of index [first, end) only: from 0, the values up to a
   node without what comes after it. */
void interp_run_range(Interp *it, int first, int end);
const double *interp_value(const Interp *it, const Node *n);
void interp_free(Interp *it);

#endif
