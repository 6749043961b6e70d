/*
** cg_ops.c: how each op is emitted. For now every op is one call into
** runtime/rt_kernels.h with the node's planned addresses and its static
** dimensions as constants (argument order of the kernels: outputs, inputs,
** dims, attributes, workspace). ORDER OP: the switch covers every non-leaf
** op; tests/test_engines.c checks cg_op_supported for all of them.
*/
#include "codegen/cg_impl.h"
#include "rt_kernels.h"

#define O cg_ptr(cg, n)
#define I(k) cg_ptr(cg, n->in[k])
#define D(node, k) ((node)->dim[k])

static int64_t spatial_of(const Node *x) {
    int64_t s = 1;
    for (int i = 2; i < x->rank; i++) s *= x->dim[i];
    return s;
}

/* conv dims: N C H W O KH KW S P OH OW, from input x, weight w, output y */
#define CONV_DIMS(x, w, y) D(x, 0), D(x, 1), D(x, 2), D(x, 3), D(w, 0), D(w, 2), D(w, 3), n->ia[0], n->ia[1], D(y, 2), D(y, 3)

int64_t cg_workspace(const Node *n) {
    const Node *x, *w, *y;
    switch (n->op) {
    case OP_CONV2D: x = n->in[0]; w = n->in[1]; y = n; break;
    case OP_CONV2D_DX: x = n; w = n->in[1]; y = n->in[0]; break;
    case OP_CONV2D_DW: x = n->in[1]; w = n; y = n->in[0]; break;
    default: return 0;
    }
    return 4 * rt_k_conv2d_ws(CONV_DIMS(x, w, y));
}

bool cg_op_supported(OpKind op) {
    switch (op) {
    case OP_INPUT: case OP_PARAM: case OP_STATE: return false;
    default: return true;
    }
}

bool cg_emit_node(CG *cg, const Node *n) {
    const Node *a = n->nin > 0 ? n->in[0] : NULL, *b = n->nin > 1 ? n->in[1] : NULL;
    int64_t e = node_numel(n);
    switch (n->op) {
    case OP_CONV2D:
    case OP_CONV2D_DX:
        if (cg_conv_direct(n)) {
            LLVMValueRef args, fn = cg_conv_direct_fn(cg, n, &args, NULL, false, NULL);
            cg_call(cg, "rt_par_rows", "ppii", fn, args, D(n, 0), (int64_t)1);
            return true;
        }
        if (n->op == OP_CONV2D_DX) {
            cg_call(cg, "rt_k_conv2d_dx", "pppiiiiiiiiiiip", O, I(0), I(1), CONV_DIMS(n, b, a), cg_ws(cg));
            return true;
        }
        cg_call(cg, "rt_k_conv2d", "pppiiiiiiiiiiip", O, I(0), I(1), CONV_DIMS(a, b, n), cg_ws(cg)); return true;
    case OP_CONV2D_DW:
        if (cg_conv_direct(n)) {
            int nargs;
            LLVMValueRef args, fn = cg_conv_direct_fn(cg, n, &args, &nargs, false, NULL);
            cg_call(cg, "rt_k_conv2d_dw_gen", "pppiii", O, fn, args, (int64_t)nargs, D(b, 0), node_numel(n));
            return true;
        }
        cg_call(cg, "rt_k_conv2d_dw", "pppiiiiiiiiiiip", O, I(0), I(1), CONV_DIMS(b, n, a), cg_ws(cg)); return true;
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
    case OP_INPUT: case OP_PARAM: case OP_STATE: case OP_COUNT: break;
    }
    return false;
}
