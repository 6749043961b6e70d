/*
** cg_step.c: the step's body: for each node that emits, in order, one call
** into runtime/rt_kernels.h with the node's planned addresses and static
** dimensions as constants (argument order of the kernels: outputs, inputs,
** dims, attributes, workspace), a direct convolution (cg_conv.c), or a
** fused kernel (cg_fuse.c, cg_conv.c), each inside its profile site.
** ORDER OP: emit_node's switch names every op and has no default, so an op
** without an emitter fails the build (-Werror=switch).
*/
#include <stdio.h>
#include <string.h>

#include "codegen/cg_conv.h"
#include "codegen/cg_fuse.h"
#include "codegen/cg_step.h"
#include "rt_kernels.h"

#define O cg_ptr(cg, n)
#define I(k) cg_ptr(cg, n->in[k])
#define D(node, k) ((node)->dim[k])

static int64_t spatial_of(const Node *x) {
    int64_t s = 1;
    for (int i = 2; i < x->rank; i++) s *= x->dim[i];
    return s;
}

/* conv dims: N C H W O KH KW S P OH OW, from input x, weight w, output y
   and the convolution node c (conv2d, conv2d_dx or conv2d_dw: its stride
   and padding) */
#define CONV_DIMS(x, w, y, c) D(x, 0), D(x, 1), D(x, 2), D(x, 3), D(w, 0), D(w, 2), D(w, 3), (c)->ia[0], (c)->ia[1], D(y, 2), D(y, 3)

static int64_t node_workspace(const Node *n) {
    const Node *x, *w, *y;
    switch (n->op) {
    case OP_CONV2D: x = n->in[0]; w = n->in[1]; y = n; break;
    case OP_CONV2D_DX: x = n; w = n->in[1]; y = n->in[0]; break;
    case OP_CONV2D_DW: x = n->in[1]; w = n; y = n->in[0]; break;
    default: return 0;
    }
    return 4 * rt_k_conv2d_ws(CONV_DIMS(x, w, y, n));
}

/* One node as a runtime kernel call, or a direct convolution; false if the
   op has no emitter. */
static bool emit_node(CG *cg, const Node *n) {
    const Node *a = n->nin > 0 ? n->in[0] : NULL, *b = n->nin > 1 ? n->in[1] : NULL;
    int64_t e = node_numel(n);
    switch (n->op) {
    case OP_CONV2D:
    case OP_CONV2D_DX:
        if (n->direct) {
            LLVMValueRef args, fn = cg_conv_direct_fn(cg, n, &args, NULL, false, NULL);
            cg_call(cg, "rt_par_rows", "ppii", fn, args, D(n, 0), (int64_t)1);
            return true;
        }
        if (n->op == OP_CONV2D_DX) {
            cg_call(cg, "rt_k_conv2d_dx", "pppiiiiiiiiiiip", O, I(0), I(1), CONV_DIMS(n, b, a, n), cg_ws(cg));
            return true;
        }
        cg_call(cg, "rt_k_conv2d", "pppiiiiiiiiiiip", O, I(0), I(1), CONV_DIMS(a, b, n, n), cg_ws(cg)); return true;
    case OP_CONV2D_DW:
        if (n->direct) {
            int nargs;
            LLVMValueRef args, fn = cg_conv_direct_fn(cg, n, &args, &nargs, false, NULL);
            cg_call(cg, "rt_k_conv2d_dw_gen", "pppiii", O, fn, args, (int64_t)nargs, D(b, 0), node_numel(n));
            return true;
        }
        cg_call(cg, "rt_k_conv2d_dw", "pppiiiiiiiiiiip", O, I(0), I(1), CONV_DIMS(b, n, a, n), cg_ws(cg)); return true;
    case OP_LINEAR: cg_call(cg, "rt_k_linear", "pppiii", O, I(0), I(1), D(a, 0), D(a, 1), D(b, 0)); return true;
    case OP_LINEAR_DX: cg_call(cg, "rt_k_linear_dx", "pppiii", O, I(0), I(1), D(a, 0), D(b, 1), D(b, 0)); return true;
    case OP_LINEAR_DW: cg_call(cg, "rt_k_linear_dw", "pppiii", O, I(0), I(1), D(a, 0), D(b, 1), D(a, 1)); return true;
    case OP_BIAS_ADD: cg_call(cg, "rt_k_bias_add", "pppiii", O, I(0), I(1), D(n, 0), D(n, 1), spatial_of(n)); return true;
    case OP_CHAN_SUM: cg_call(cg, "rt_k_chan_sum", "ppiii", O, I(0), D(a, 0), D(a, 1), spatial_of(a)); return true;
    case OP_RELU: cg_call(cg, "rt_k_relu", "ppi", O, I(0), e); return true;
    case OP_RELU_BACK: cg_call(cg, "rt_k_relu_back", "pppi", O, I(0), I(1), e); return true;
    case OP_LEAKY_RELU: cg_call(cg, "rt_k_leaky_relu", "ppif", O, I(0), e, n->fa[0]); return true;
    case OP_LEAKY_RELU_BACK: cg_call(cg, "rt_k_leaky_relu_back", "pppif", O, I(0), I(1), e, n->fa[0]); return true;
    case OP_ADD: cg_call(cg, "rt_k_add", "pppi", O, I(0), I(1), e); return true;
    case OP_RESHAPE: cg_call(cg, "rt_k_copy", "ppi", O, I(0), e); return true;
    case OP_FILL: cg_call(cg, "rt_k_fill", "pif", O, e, n->fa[0]); return true;
    case OP_AVGPOOL2D:
        cg_call(cg, "rt_k_avgpool2d", "ppiiiiiiii", O, I(0), D(a, 0) * D(a, 1), D(a, 2), D(a, 3), n->ia[0], n->ia[1], n->ia[2], D(n, 2), D(n, 3));
        return true;
    case OP_AVGPOOL2D_BACK:
        cg_call(cg, "rt_k_avgpool2d_back", "ppiiiiiiii", O, I(0), D(n, 0) * D(n, 1), D(n, 2), D(n, 3), n->ia[0], n->ia[1], n->ia[2], D(a, 2), D(a, 3));
        return true;
    case OP_MAXPOOL2D:
        cg_call(cg, "rt_k_maxpool2d", "ppiiiiiiii", O, I(0), D(a, 0) * D(a, 1), D(a, 2), D(a, 3), n->ia[0], n->ia[1], n->ia[2], D(n, 2), D(n, 3));
        return true;
    case OP_MAXPOOL2D_BACK:
        cg_call(cg, "rt_k_maxpool2d_back", "pppiiiiiiii", O, I(0), I(1), D(n, 0) * D(n, 1), D(n, 2), D(n, 3), n->ia[0], n->ia[1], n->ia[2], D(a, 2), D(a, 3));
        return true;
    case OP_GLOBAL_AVGPOOL: cg_call(cg, "rt_k_global_avgpool", "ppii", O, I(0), D(n, 0) * D(n, 1), spatial_of(a)); return true;
    case OP_GLOBAL_AVGPOOL_BACK: cg_call(cg, "rt_k_global_avgpool_back", "ppii", O, I(0), D(n, 0) * D(n, 1), spatial_of(n)); return true;
    case OP_BN_STATS: cg_call(cg, "rt_k_bn_stats", "ppiii", O, I(0), D(a, 0), D(a, 1), spatial_of(a)); return true;
    case OP_BN_TRAIN:
        cg_call(cg, "rt_k_bn_train", "pppppiiif", O, I(0), I(1), I(2), I(3), D(n, 0), D(n, 1), spatial_of(n), n->fa[0]);
        return true;
    case OP_BN_TRAIN_DX:
        cg_call(cg, "rt_k_bn_train_dx", "pppppiiif", O, I(0), I(1), I(2), I(3), D(n, 0), D(n, 1), spatial_of(n), n->fa[0]);
        return true;
    case OP_BN_DGAMMA:
        cg_call(cg, "rt_k_bn_dgamma", "ppppiiif", O, I(0), I(1), I(2), D(b, 0), D(b, 1), spatial_of(b), n->fa[0]);
        return true;
    case OP_BN_EVAL:
        cg_call(cg, "rt_k_bn_eval", "ppppppiiif", O, I(0), I(1), I(2), I(3), I(4), D(n, 0), D(n, 1), spatial_of(n), n->fa[0]);
        return true;
    case OP_BN_RUNNING: cg_call(cg, "rt_k_bn_running", "pppiiif", O, I(0), I(1), D(n, 0), n->ia[0], n->ia[1], n->fa[0]); return true;
    case OP_PAIRS: cg_call(cg, "rt_k_pairs", "ppiiii", O, I(0), n->ia[0], D(a, 0) / n->ia[0], D(a, 1), n->ia[1]); return true;
    case OP_PAIRS_BACK:
        cg_call(cg, "rt_k_pairs_back", "pppiiii", O, I(0), I(1), n->ia[0], D(n, 0) / n->ia[0], D(n, 1), n->ia[1]);
        return true;
    case OP_PAIR_TARGETS: cg_call(cg, "rt_k_pair_targets", "pii", O, n->ia[0], n->ia[1]); return true;
    case OP_FOCAL_LOSS: cg_call(cg, "rt_k_focal_loss", "pppiff", O, I(0), I(1), D(a, 0), n->fa[0], n->fa[1]); return true;
    case OP_FOCAL_BACK: cg_call(cg, "rt_k_focal_back", "ppppiff", O, I(0), I(1), I(2), D(n, 0), n->fa[0], n->fa[1]); return true;
    case OP_BCE_LOSS: cg_call(cg, "rt_k_bce_loss", "pppi", O, I(0), I(1), D(a, 0)); return true;
    case OP_BCE_BACK: cg_call(cg, "rt_k_bce_back", "ppppi", O, I(0), I(1), I(2), D(n, 0)); return true;
    case OP_SOFTMAX_CE: cg_call(cg, "rt_k_softmax_ce", "pppii", O, I(0), I(1), D(a, 0), D(a, 1)); return true;
    case OP_SOFTMAX_CE_BACK: cg_call(cg, "rt_k_softmax_ce_back", "ppppii", O, I(0), I(1), I(2), D(n, 0), D(n, 1)); return true;
    case OP_MUL: cg_call(cg, "rt_k_mul", "pppi", O, I(0), I(1), e); return true;
    case OP_EXP: cg_call(cg, "rt_k_exp", "ppi", O, I(0), e); return true;
    case OP_LOG: cg_call(cg, "rt_k_log", "ppi", O, I(0), e); return true;
    case OP_LOG_BACK: cg_call(cg, "rt_k_log_back", "pppi", O, I(0), I(1), e); return true;
    case OP_SOFTPLUS: cg_call(cg, "rt_k_softplus", "ppi", O, I(0), e); return true;
    case OP_SOFTPLUS_BACK: cg_call(cg, "rt_k_softplus_back", "pppi", O, I(0), I(1), e); return true;
    case OP_L2_NORMALIZE: cg_call(cg, "rt_k_l2_normalize", "ppiif", O, I(0), D(n, 0), D(n, 1), n->fa[0]); return true;
    case OP_L2_NORMALIZE_BACK:
        cg_call(cg, "rt_k_l2_normalize_back", "pppiif", O, I(0), I(1), D(n, 0), D(n, 1), n->fa[0]);
        return true;
    case OP_MATMUL: {
        int64_t K = n->ia[0] ? D(a, 0) : D(a, 1);
        cg_call(cg, "rt_k_matmul", "pppiiiii", O, I(0), I(1), D(n, 0), D(n, 1), K, n->ia[0], n->ia[1]);
        return true;
    }
    case OP_INPUT: case OP_PARAM: case OP_STATE: case OP_COUNT: break;
    }
    return false;
}

static int64_t kernel_workspace(const Kernel *K) {
    if (K->kind == KERNEL_DX_EPI)   /* BatchNorm sums per image: double [N][2][C] */
        return K->sums[0] ? 16 * K->members[0]->dim[0] * K->members[0]->dim[1] : 0;
    if (K->kind != KERNEL_CONV_STATS) return 0;
    const Node *y = K->members[0];
    return 4 * rt_k_conv2d_stats_ws(CONV_DIMS(y->in[0], y->in[1], y, y));
}

/* A fused kernel, emitted where its last member runs. */
static void emit_kernel(CG *cg, const Kernel *K) {
    if (K->kind == KERNEL_CONV_STATS) {
        const Node *y = K->members[0], *st = K->members[1];
        /* a direct kernel reads its input through args (it may be an
           inlined value, with no address); im2col + BLAS reads x */
        LLVMValueRef fn = LLVMConstNull(cg->ptr), args = LLVMConstNull(cg->ptr), x = LLVMConstNull(cg->ptr);
        int nargs = 0;
        if (y->direct) fn = cg_conv_direct_fn(cg, y, &args, &nargs, true, NULL);
        else x = cg_ptr(cg, y->in[0]);
        cg_call(cg, "rt_k_conv2d_stats", "ppppiiiiiiiiiiipppi", cg_ptr(cg, y), cg_ptr(cg, st), x, cg_ptr(cg, y->in[1]),
                CONV_DIMS(y->in[0], y->in[1], y, y), cg_ws(cg), fn, args, (int64_t)nargs);
        return;
    }
    if (K->kind == KERNEL_DX_EPI) {   /* the direct input gradient, storing its epilogue's value */
        const Node *dx = K->members[0];
        const Node *dg = K->sums[0], *db = K->sums[1];
        LLVMValueRef args, fn = cg_conv_direct_fn(cg, dx, &args, NULL, false, K);
        cg_call(cg, "rt_par_rows", "ppii", fn, args, dx->dim[0], (int64_t)1);
        if (dg)   /* the images' sums in order: dgamma and dbeta */
            cg_call(cg, "rt_k_bn_dx_sums", "ppppiif", cg_ptr(cg, dg), cg_ptr(cg, db), cg_ws(cg), cg_ptr(cg, dg->in[2]),
                    dx->dim[0], dx->dim[1], dg->fa[0]);
        return;
    }
    cg_emit_generated(cg, K);
}

/* The workspace of emitting node n's call (BackendCaps.workspace). */
static int64_t workspace(const Node *n) { return n->kernel ? kernel_workspace(n->kernel) : node_workspace(n); }

const BackendCaps *cg_caps(void) {
    static const BackendCaps caps = {cg_conv_direct, workspace};
    return &caps;
}

bool cg_emit_step(CG *cg) {
    Graph *g = cg->g;
    bool ok = true;
    char label[256];
    for (int i = 0; i < g->nnodes && ok; i++) {
        const Node *n = g->nodes[i];
        if (!node_emits(n)) continue;   /* leaves, inlined values, members emitted with their kernel's last */
        if (n->kernel) {
            const Kernel *k = n->kernel;
            Cost c = {0, 0};
            for (int j = 0; j < k->nmembers; j++) {
                Cost cj = op_table[k->members[j]->op].cost(k->members[j]);
                c.flops += cj.flops;
                c.bytes += cj.bytes;
            }
            size_t len = strlen(cg_node_label(k->members[0], label, sizeof label));
            snprintf(label + len, sizeof label - len, " [%s]", kernel_kind_name(k->kind));
            cg_kernel_begin(cg, label, c);
            emit_kernel(cg, k);
            cg_kernel_end(cg);
            continue;
        }
        cg_kernel_begin(cg, cg_node_label(n, label, sizeof label), op_table[n->op].cost(n));
        ok = emit_node(cg, n);
        cg_kernel_end(cg);
        if (!ok) fprintf(stderr, "rrc: codegen: no emitter for op %s\n", op_table[n->op].name);
    }
    cg_fuse_done(cg);
    return ok;
}
