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
#include "codegen/cg_rtcall.h"
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

/* The scratch a node's runtime kernel needs: the im2col workspace of a
   convolution that runs on the runtime's kernel (a direct one keeps its
   padded copy on its thread's stack), SimCLR's similarity matrices. */
static int64_t node_workspace(const Node *n) {
    const Node *x, *w, *y;
    if (n->direct) return 0;
    switch (n->op) {
    case OP_CONV2D: x = n->in[0]; w = n->in[1]; y = n; break;
    case OP_CONV2D_DX: x = n; w = n->in[1]; y = n->in[0]; break;
    case OP_CONV2D_DW: x = n->in[1]; w = n; y = n->in[0]; break;
    case OP_SIMCLR_LOSS: return 4 * rt_k_simclr_ws(n->in[0]->dim[0], n->in[0]->dim[1]);
    case OP_SIMCLR_BACK: return 4 * rt_k_simclr_ws(n->dim[0], n->dim[1]);
    case OP_PAIR_HALVES: return 4 * node_numel(n->in[0]);   /* the [N][2][H] products, deinterleaved */
    case OP_PAIR_HALVES_BACK: return 4 * node_numel(n);      /* the [N][2][H] sums */
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
            call_rt_par_rows(cg, fn, args, D(n, 0), (int64_t)1);
            return true;
        }
        if (n->op == OP_CONV2D_DX) {
            call_rt_k_conv2d_dx(cg, O, I(0), I(1), CONV_DIMS(n, b, a, n), cg_ws(cg));
            return true;
        }
        call_rt_k_conv2d(cg, O, I(0), I(1), CONV_DIMS(a, b, n, n), cg_ws(cg)); return true;
    case OP_CONV2D_DW:
        if (n->direct) {
            int nargs;
            LLVMValueRef args, fn = cg_conv_direct_fn(cg, n, &args, &nargs, false, NULL);
            call_rt_k_conv2d_dw_gen(cg, O, fn, args, (int64_t)nargs, D(b, 0), node_numel(n));
            return true;
        }
        call_rt_k_conv2d_dw(cg, O, I(0), I(1), CONV_DIMS(b, n, a, n), cg_ws(cg)); return true;
    case OP_LINEAR: call_rt_k_linear(cg, O, I(0), I(1), D(a, 0), D(a, 1), D(b, 0)); return true;
    case OP_LINEAR_DX: call_rt_k_linear_dx(cg, O, I(0), I(1), D(a, 0), D(b, 1), D(b, 0)); return true;
    case OP_LINEAR_DW: call_rt_k_linear_dw(cg, O, I(0), I(1), D(a, 0), D(b, 1), D(a, 1)); return true;
    case OP_BIAS_ADD: call_rt_k_bias_add(cg, O, I(0), I(1), D(n, 0), D(n, 1), spatial_of(n)); return true;
    case OP_CHAN_SUM: call_rt_k_chan_sum(cg, O, I(0), D(a, 0), D(a, 1), spatial_of(a)); return true;
    case OP_RELU: call_rt_k_relu(cg, O, I(0), e); return true;
    case OP_RELU_BACK: call_rt_k_relu_back(cg, O, I(0), I(1), e); return true;
    case OP_LEAKY_RELU: call_rt_k_leaky_relu(cg, O, I(0), e, n->fa[0]); return true;
    case OP_LEAKY_RELU_BACK: call_rt_k_leaky_relu_back(cg, O, I(0), I(1), e, n->fa[0]); return true;
    case OP_ADD: call_rt_k_add(cg, O, I(0), I(1), e); return true;
    case OP_RESHAPE: call_rt_k_copy(cg, O, I(0), e); return true;
    case OP_FILL: call_rt_k_fill(cg, O, e, n->fa[0]); return true;
    case OP_AVGPOOL2D:
        call_rt_k_avgpool2d(cg, O, I(0), D(a, 0) * D(a, 1), D(a, 2), D(a, 3), n->ia[0], n->ia[1], n->ia[2], D(n, 2), D(n, 3));
        return true;
    case OP_AVGPOOL2D_BACK:
        call_rt_k_avgpool2d_back(cg, O, I(0), D(n, 0) * D(n, 1), D(n, 2), D(n, 3), n->ia[0], n->ia[1], n->ia[2], D(a, 2), D(a, 3));
        return true;
    case OP_MAXPOOL2D:
        call_rt_k_maxpool2d(cg, O, I(0), D(a, 0) * D(a, 1), D(a, 2), D(a, 3), n->ia[0], n->ia[1], n->ia[2], D(n, 2), D(n, 3));
        return true;
    case OP_MAXPOOL2D_BACK:
        call_rt_k_maxpool2d_back(cg, O, I(0), I(1), D(n, 0) * D(n, 1), D(n, 2), D(n, 3), n->ia[0], n->ia[1], n->ia[2], D(a, 2), D(a, 3));
        return true;
    case OP_GLOBAL_AVGPOOL: call_rt_k_global_avgpool(cg, O, I(0), D(n, 0) * D(n, 1), spatial_of(a)); return true;
    case OP_GLOBAL_AVGPOOL_BACK: call_rt_k_global_avgpool_back(cg, O, I(0), D(n, 0) * D(n, 1), spatial_of(n)); return true;
    case OP_BN_STATS: call_rt_k_bn_stats(cg, O, I(0), D(a, 0), D(a, 1), spatial_of(a)); return true;
    case OP_BN_TRAIN:
        call_rt_k_bn_train(cg, O, I(0), I(1), I(2), I(3), D(n, 0), D(n, 1), spatial_of(n), n->fa[0]);
        return true;
    case OP_BN_TRAIN_DX:
        call_rt_k_bn_train_dx(cg, O, I(0), I(1), I(2), I(3), D(n, 0), D(n, 1), spatial_of(n), n->fa[0]);
        return true;
    case OP_BN_DGAMMA:
        call_rt_k_bn_dgamma(cg, O, I(0), I(1), I(2), D(b, 0), D(b, 1), spatial_of(b), n->fa[0]);
        return true;
    case OP_BN_EVAL:
        call_rt_k_bn_eval(cg, O, I(0), I(1), I(2), I(3), I(4), D(n, 0), D(n, 1), spatial_of(n), n->fa[0]);
        return true;
    case OP_BN_RUNNING: call_rt_k_bn_running(cg, O, I(0), I(1), D(n, 0), n->ia[0], n->ia[1], n->fa[0]); return true;
    case OP_PAIRS: call_rt_k_pairs(cg, O, I(0), n->ia[0], D(a, 0) / n->ia[0], D(a, 1), n->ia[1]); return true;
    case OP_PAIRS_BACK:
        call_rt_k_pairs_back(cg, O, I(0), I(1), n->ia[0], D(n, 0) / n->ia[0], D(n, 1), n->ia[1]);
        return true;
    case OP_PAIR_HALVES:
        call_rt_k_pair_halves(cg, O, I(0), n->ia[0], D(a, 0) / n->ia[0], D(n, 1), cg_ws(cg), LLVMConstNull(cg->ptr));
        return true;
    case OP_PAIR_HALVES_BACK:
        call_rt_k_pair_halves_back(cg, O, I(0), n->ia[0], D(n, 0) / n->ia[0], D(a, 1), cg_ws(cg));
        return true;
    case OP_PAIR_TARGETS: call_rt_k_pair_targets(cg, O, n->ia[0], n->ia[1]); return true;
    case OP_FOCAL_LOSS: call_rt_k_focal_loss(cg, O, I(0), I(1), D(a, 0), n->fa[0], n->fa[1]); return true;
    case OP_FOCAL_BACK: call_rt_k_focal_back(cg, O, I(0), I(1), I(2), D(n, 0), n->fa[0], n->fa[1]); return true;
    case OP_BCE_LOSS: call_rt_k_bce_loss(cg, O, I(0), I(1), D(a, 0)); return true;
    case OP_BCE_BACK: call_rt_k_bce_back(cg, O, I(0), I(1), I(2), D(n, 0)); return true;
    case OP_SOFTMAX_CE: call_rt_k_softmax_ce(cg, O, I(0), I(1), D(a, 0), D(a, 1)); return true;
    case OP_SOFTMAX_CE_BACK: call_rt_k_softmax_ce_back(cg, O, I(0), I(1), I(2), D(n, 0), D(n, 1)); return true;
    case OP_MUL: call_rt_k_mul(cg, O, I(0), I(1), e); return true;
    case OP_EXP: call_rt_k_exp(cg, O, I(0), e); return true;
    case OP_LOG: call_rt_k_log(cg, O, I(0), e); return true;
    case OP_LOG_BACK: call_rt_k_log_back(cg, O, I(0), I(1), e); return true;
    case OP_SOFTPLUS: call_rt_k_softplus(cg, O, I(0), e); return true;
    case OP_SOFTPLUS_BACK: call_rt_k_softplus_back(cg, O, I(0), I(1), e); return true;
    case OP_L2_NORMALIZE: call_rt_k_l2_normalize(cg, O, I(0), D(n, 0), D(n, 1), n->fa[0]); return true;
    case OP_L2_NORMALIZE_BACK:
        call_rt_k_l2_normalize_back(cg, O, I(0), I(1), D(n, 0), D(n, 1), n->fa[0]);
        return true;
    case OP_MATMUL: {
        int64_t K = n->ia[0] ? D(a, 0) : D(a, 1);
        call_rt_k_matmul(cg, O, I(0), I(1), D(n, 0), D(n, 1), K, n->ia[0], n->ia[1]);
        return true;
    }
    case OP_ROTATIONS: call_rt_k_rotations(cg, O, I(0), D(a, 0) * D(a, 1), D(a, 2)); return true;
    case OP_ROTATIONS_BACK: call_rt_k_rotations_back(cg, O, I(0), D(n, 0) * D(n, 1), D(n, 2)); return true;
    case OP_BLOCK_TARGETS: call_rt_k_block_targets(cg, O, n->ia[0], n->ia[1]); return true;
    case OP_SIMCLR_LOSS: call_rt_k_simclr_loss(cg, O, I(0), D(a, 0), D(a, 1), n->fa[0], n->fa[1], cg_ws(cg)); return true;
    case OP_SIMCLR_BACK:
        call_rt_k_simclr_back(cg, O, I(0), I(1), D(n, 0), D(n, 1), n->fa[0], n->fa[1], cg_ws(cg));
        return true;
    case OP_LOCAL_PAIRS:
        call_rt_k_local_pairs(cg, O, I(0), I(1), D(a, 0), D(a, 1), D(b, 1), D(a, 2) * D(a, 3));
        return true;
    case OP_LOCAL_PAIRS_BACK: {
        /* dZ [2B, C+F, H, W]; b is the input whose gradient this is */
        int64_t B = D(a, 0) / 2, S = D(a, 2) * D(a, 3);
        if (n->ia[0] == 0) call_rt_k_local_pairs_dm(cg, O, I(0), B, D(n, 1), D(a, 1) - D(n, 1), S);
        else call_rt_k_local_pairs_dy(cg, O, I(0), B, D(a, 1) - D(n, 1), D(n, 1), S);
        return true;
    }
    case OP_CONCAT_ROWS: call_rt_k_concat_rows(cg, O, I(0), I(1), node_numel(a), node_numel(b)); return true;
    case OP_SLICE_ROWS: call_rt_k_slice_rows(cg, O, I(0), n->ia[0], n->ia[1], D(n, 1)); return true;
    case OP_JSD_LOSS: call_rt_k_jsd_loss(cg, O, I(0), node_numel(a) / 2, n->fa[0]); return true;
    case OP_JSD_BACK: call_rt_k_jsd_back(cg, O, I(0), I(1), node_numel(n) / 2, n->fa[0]); return true;
    case OP_PRIOR_LOSS: call_rt_k_prior_loss(cg, O, I(0), D(a, 0) / 2, n->fa[0]); return true;
    case OP_PRIOR_BACK: call_rt_k_prior_back(cg, O, I(0), I(1), D(n, 0) / 2, n->fa[0]); return true;
    case OP_WEIGHTED_CE: call_rt_k_weighted_ce(cg, O, I(0), I(1), I(2), D(a, 0), D(a, 1)); return true;
    case OP_WEIGHTED_CE_BACK:
        call_rt_k_weighted_ce_back(cg, O, I(0), I(1), I(2), I(3), D(n, 0), D(n, 1));
        return true;
    case OP_BN_STATS_ALL: call_rt_k_bn_stats_all(cg, O, I(0), D(a, 0), D(a, 1), spatial_of(a), n->ia[0]); return true;
    case OP_BN_TRAIN_DX_ALL:
        call_rt_k_bn_train_dx_all(cg, O, I(0), I(1), I(2), I(3), D(n, 0), D(n, 1), spatial_of(n), n->ia[0], n->fa[0]);
        return true;
    case OP_GATHER_ROWS:
        call_rt_k_gather_rows(cg, O, I(0), n->ia[0], n->ia[1], node_numel(a) / D(a, 0), D(a, 0) / n->ia[0]);
        return true;
    case OP_LOCAL_ROWS: call_rt_k_local_rows(cg, O, I(0), n->ia[0], n->ia[1], node_numel(n) / D(n, 0), n->ia[2]); return true;
    case OP_INPUT: case OP_PARAM: case OP_STATE: case OP_COUNT: break;
    }
    return false;
}

static int64_t kernel_workspace(const Kernel *K) {
    if (K->kind == KERNEL_DX_EPI)   /* BatchNorm sums per image: double [N][2][C] */
        return K->sums[0] ? 16 * K->members[0]->dim[0] * K->members[0]->dim[1] : 0;
    if (cg_bn_by_samples(K))   /* by samples: the parts' sums, double [parts][2][C] */
        return 16 * rt_bn_parts(K->members[0]->dim[0]) * K->members[0]->dim[1];
    if (K->kind == KERNEL_BN_DX)   /* over ranks: the sums, double [2][C] (cg_emit_generated) */
        return K->members[0]->op == OP_BN_TRAIN_DX_ALL ? 16 * K->members[0]->dim[1] : 0;
    if (K->kind == KERNEL_PAIR_BIAS) return node_workspace(K->members[0]);
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
        if (st->op == OP_BN_STATS_ALL)   /* one rank's: combined with every rank's */
            call_rt_k_conv2d_stats_all(cg, cg_ptr(cg, y), cg_ptr(cg, st), x, cg_ptr(cg, y->in[1]),
                    CONV_DIMS(y->in[0], y->in[1], y, y), cg_ws(cg), fn, args, (int64_t)nargs, st->ia[0]);
        else
            call_rt_k_conv2d_stats(cg, cg_ptr(cg, y), cg_ptr(cg, st), x, cg_ptr(cg, y->in[1]),
                    CONV_DIMS(y->in[0], y->in[1], y, y), cg_ws(cg), fn, args, (int64_t)nargs);
        return;
    }
    if (K->kind == KERNEL_DX_EPI) {   /* the direct input gradient, storing its epilogue's value */
        const Node *dx = K->members[0];
        const Node *dg = K->sums[0], *db = K->sums[1];
        LLVMValueRef args, fn = cg_conv_direct_fn(cg, dx, &args, NULL, false, K);
        call_rt_par_rows(cg, fn, args, dx->dim[0], (int64_t)1);
        if (dg)   /* the images' sums in order: dgamma and dbeta */
            call_rt_k_bn_dx_sums(cg, cg_ptr(cg, dg), cg_ptr(cg, db), cg_ws(cg), cg_ptr(cg, dg->in[2]),
                    dx->dim[0], dx->dim[1], dg->fa[0]);
        return;
    }
    if (K->kind == KERNEL_PAIR_BIAS) {   /* the pairs' sums written with the bias added */
        const Node *ph = K->members[0], *b = K->members[1], *x = ph->in[0];
        call_rt_k_pair_halves(cg, cg_ptr(cg, b), cg_ptr(cg, x), ph->ia[0], D(x, 0) / ph->ia[0], D(ph, 1), cg_ws(cg),
                              cg_ptr(cg, b->in[1]));
        return;
    }
    cg_emit_generated(cg, K);
}

/* The workspace of emitting node n's call (BackendCaps.workspace). */
static int64_t workspace(const Node *n) { return n->kernel ? kernel_workspace(n->kernel) : node_workspace(n); }

const BackendCaps *cg_caps(void) {
    static const BackendCaps caps = {cg_conv_direct, workspace, cg_conv_stages_dy};
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
            Cost c = node_kernel_cost(n);
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
