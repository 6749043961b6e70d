/*
** cg_fuse.c: the generated kernels of fused groups (passes/fuse.c).
**
** A kernel is two LLVM functions: the body, named after the spec layer and
** op it serves (e.g. "backbone.layer1.0.relu#34"), taking one `noalias`
** pointer per value it reads or writes and a row range [r0, r1); and a
** wrapper "<body>.rows" with the uniform signature of rt_rows_fn (pointers in
** an array) that the step calls through rt_par_rows, which splits the rows
** over the thread pool. Rows are independent, so every split gives the
** same bits. Loops are plain counted loops on static shapes; LLVM's loop
** vectoriser turns them into vector code of the target's width
** (cg_vector_width), and the per-channel terms are hoisted out of the inner
** loops by LICM, which the noalias parameters make legal.
**
** Iteration spaces, for values [N, C, S] (S = the spatial size, 1 for [N, C]):
**  - KERNEL_EW, S > 1: rows are the N*C planes, the inner loop runs over S;
**    S == 1: rows are the N samples, the inner loop runs over C;
**  - KERNEL_BN_DX making its own sums (bn_by_samples): two kernels. Rows
**    are rt_bn_parts(N) fixed parts of the samples, each keeping double
**    sums per channel while walking its samples along memory (S > 1: a
**    plane's f32 vector partials added in double, the runtime's rule; S ==
**    1: each value in double) into the workspace, double [parts][2][C];
**    the parts are added in part order (rt_k_sum_parts); then rows are
**    samples and each writes its dx. With sums given by an epilogue, rows
**    are channels and each writes its dx planes. A bn_train_dx_all (over
**    ranks, planes) is two kernels by channels around the ranks' sum of
**    the sums (workspace, double [2][C]): one process's sums code for the
**    rank's planes, then one process's dx code from the every-rank sums.
** An inlined value is recomputed from its inputs wherever it is read
** (val()); everything else is loaded from its planned address. CgExpr
** exposes val() to the direct convolutions (cg_conv.c), whose padding loops
** compute their inlined inputs.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Core.h>

#include "codegen/cg_fuse.h"
#include "codegen/cg_rtcall.h"
#include "rt_kernels.h"

#define MAX_EXT 32
#define MAX_UNPOOL 4

typedef struct KB {
    CG *cg;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    LLVMBasicBlockRef entry;
    LLVMTypeRef f64;
    const Node *ext[MAX_EXT];   /* values in memory the kernel reads or writes */
    LLVMValueRef p[MAX_EXT];    /* their pointers: the body's parameters */
    int next;
    LLVMValueRef *memo;         /* element values in the loop body being emitted, by node id */
    LLVMValueRef idx, c;        /* element and channel index of that body */
    LLVMValueRef row;           /* [N, C] loops: the sample n of idx (else NULL) */
    LLVMValueRef plane, s;      /* plane loops: the plane's index n*C + c, the element's index in it */
    const Node *unpool[MAX_UNPOOL];   /* inlined 2x2 avgpool2d_back: each upsampled per plane into */
    LLVMValueRef unbuf[MAX_UNPOOL];   /* a buffer of S floats */
    int nunpool;
    LLVMValueRef *scale;        /* by node id: an inlined BatchNorm's per-channel gamma / sqrt(var + eps), made before the rows */
    int64_t C;
    /* an epilogue (cg_epi_new): the elements are vectors of `lanes` floats
       along memory, the value of node `acc` (a convolution's input
       gradient, never stored) is the one the caller computed, and `root`
       (stored by the caller) is computed from its inputs */
    unsigned lanes;
    const Node *acc, *root;
    LLVMValueRef *cmemo, cmemo_c;   /* per-channel terms of the epilogue's channel cmemo_c, by node id x CMEMO */
    const Node *sx, *sst;       /* with BatchNorm sums: their x and statistics */
    /* a BatchNorm backward over every rank (bn_train_dx_all) is two
       kernels around the ranks' sum: BN_SUMS writes this rank's sums to
       the workspace (and its bn_dgamma / chan_sum members, which are this
       rank's), BN_APPLY writes dx from the every-rank sums there; one by
       samples is two kernels around the sum of its parts' sums (BN_SUMS
       by parts of the samples, BN_APPLY by samples) */
    enum { BN_WHOLE, BN_SUMS, BN_APPLY } bn_phase;
    LLVMValueRef ws;            /* then: the workspace (double [2][C], or [parts][2][C] by samples), the parameter after the values */
} KB;

/* ---- small builders ---- */

static LLVMValueRef i64c(KB *k, int64_t v) { return LLVMConstInt(k->cg->i64, (unsigned long long)v, 1); }
static LLVMValueRef f32c(KB *k, double v) { return LLVMConstReal(k->cg->f32, v); }
static LLVMValueRef f64c(KB *k, double v) { return LLVMConstReal(k->f64, v); }

static LLVMValueRef entry_alloca(KB *k, LLVMTypeRef t, const char *name) {
    return cg_alloca_at_entry(k->cg, k->entry, t, name);
}

static LLVMValueRef gep(KB *k, LLVMTypeRef t, LLVMValueRef p, LLVMValueRef i) {
    return LLVMBuildInBoundsGEP2(k->b, t, p, &i, 1, "");
}

static LLVMValueRef loadf(KB *k, LLVMValueRef p, LLVMValueRef i) {
    return LLVMBuildLoad2(k->b, k->cg->f32, gep(k, k->cg->f32, p, i), "");
}

static void storef(KB *k, LLVMValueRef v, LLVMValueRef p, LLVMValueRef i) {
    LLVMBuildStore(k->b, v, gep(k, k->cg->f32, p, i));
}

/* An element of the body being emitted: a float, or in an epilogue a
   vector of k->lanes floats; el() makes one of a per-channel scalar. */
static LLVMTypeRef el_type(KB *k) { return k->lanes > 1 ? LLVMVectorType(k->cg->f32, k->lanes) : k->cg->f32; }

static LLVMValueRef el(KB *k, LLVMValueRef s) {
    if (k->lanes <= 1) return s;
    LLVMTypeRef vt = el_type(k);
    LLVMValueRef v = LLVMBuildInsertElement(k->b, LLVMGetPoison(vt), s, LLVMConstInt(k->cg->i64, 0, 0), "");
    return LLVMBuildShuffleVector(k->b, v, LLVMGetPoison(vt), LLVMConstNull(LLVMVectorType(LLVMInt32TypeInContext(k->cg->ctx), k->lanes)), "");
}

static LLVMValueRef elc(KB *k, double v) {
    LLVMValueRef c = LLVMConstReal(k->cg->f32, v), cs[64];
    if (k->lanes <= 1) return c;
    RRC_ASSERT(k->lanes <= 64);
    for (unsigned i = 0; i < k->lanes; i++) cs[i] = c;
    return LLVMConstVector(cs, k->lanes);
}

/* the element at flat index i of a stored value (unaligned vector loads) */
static LLVMValueRef load_el(KB *k, LLVMValueRef p, LLVMValueRef i) {
    LLVMValueRef v = LLVMBuildLoad2(k->b, el_type(k), gep(k, k->cg->f32, p, i), "");
    LLVMSetAlignment(v, 4);
    return v;
}

static LLVMValueRef intrinsic(KB *k, const char *name, LLVMTypeRef t, LLVMValueRef *args, unsigned n) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(k->cg->mod, id, &t, 1);
    LLVMTypeRef ps[3] = {t, t, t};
    return LLVMBuildCall2(k->b, LLVMFunctionType(t, ps, n, 0), f, args, n, "");
}

static LLVMValueRef fma_(KB *k, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
    LLVMValueRef args[3] = {a, b, c};
    return intrinsic(k, "llvm.fmuladd", LLVMTypeOf(a), args, 3);
}

/* a + b, reassociable: what lets the vectoriser split a sum into lanes */
static LLVMValueRef fadd_reassoc(KB *k, LLVMValueRef a, LLVMValueRef b) {
    LLVMValueRef v = LLVMBuildFAdd(k->b, a, b, "");
    LLVMSetFastMathFlags(v, LLVMFastMathAllowReassoc);
    return v;
}

typedef CgLoop Loop;

static LLVMValueRef loop_open(KB *k, Loop *L, LLVMValueRef lo, LLVMValueRef hi, const char *name) {
    return cg_loop_open(k->cg, k->b, k->fn, k->entry, L, lo, hi, name);
}

static void loop_close(KB *k, Loop *L) { cg_loop_close(k->cg, k->b, L, 1); }

/* An accumulator in an alloca (type t), set to zero here. */
static LLVMValueRef acc_new(KB *k, LLVMTypeRef t, const char *name) {
    LLVMValueRef a = entry_alloca(k, t, name);
    LLVMBuildStore(k->b, LLVMConstReal(t, 0), a);
    return a;
}

static void acc_add(KB *k, LLVMValueRef acc, LLVMTypeRef t, LLVMValueRef v) {
    LLVMBuildStore(k->b, fadd_reassoc(k, LLVMBuildLoad2(k->b, t, acc, ""), v), acc);
}

/* ---- the values a kernel touches ---- */

static int ext_slot(KB *k, const Node *v) {
    for (int i = 0; i < k->next; i++)
        if (k->ext[i] == v) return i;
    RRC_ASSERT(k->next < MAX_EXT);
    k->ext[k->next] = v;
    return k->next++;
}

/* Every value in memory an expression reads: inlined nodes are walked
   through. */
static bool computed(const KB *k, const Node *v) { return v->inlined || v == k->root; }

static void collect(KB *k, const Node *v) {
    if (v == k->acc) return;
    if (!computed(k, v)) {
        ext_slot(k, v);
        return;
    }
    for (int i = 0; i < v->nin; i++) collect(k, v->in[i]);
}

static LLVMValueRef ptr_of(KB *k, const Node *v) { return k->p[ext_slot(k, v)]; }

#define CMEMO 16   /* per node: 2 per input (plain, offset), the BatchNorm scale last */

/* Per-channel operand (input i of v, at channel c, plus `off` channels:
   bn statistics hold the variance at C + c). An epilogue's stores are one
   straight run of code, so it computes a channel's terms once for all its
   vectors (cmemo). */
static LLVMValueRef chan(KB *k, const Node *v, int i, int64_t off) {
    LLVMValueRef *m = k->cmemo && k->cmemo_c == k->c ? &k->cmemo[v->id * CMEMO + i * 2 + (off != 0)] : NULL;
    if (m && *m) return *m;
    LLVMValueRef c = off ? LLVMBuildNSWAdd(k->b, k->c, i64c(k, off), "") : k->c;
    LLVMValueRef x = loadf(k, ptr_of(k, v->in[i]), c);
    if (m) *m = x;
    return x;
}

/* f32 gamma / sqrt(var + eps), computed in double (the runtime's rule) */
static LLVMValueRef bn_scale(KB *k, LLVMValueRef gamma, LLVMValueRef var, double eps) {
    LLVMValueRef vd = LLVMBuildFPExt(k->b, var, k->f64, ""), gd = LLVMBuildFPExt(k->b, gamma, k->f64, "");
    LLVMValueRef s = LLVMBuildFAdd(k->b, vd, f64c(k, (double)(float)eps), "");
    s = intrinsic(k, "llvm.sqrt", k->f64, &s, 1);
    return LLVMBuildFPTrunc(k->b, LLVMBuildFDiv(k->b, gd, s, ""), k->cg->f32, "");
}

static LLVMValueRef val(KB *k, const Node *v);

static LLVMValueRef gt0(KB *k, LLVMValueRef x) { return LLVMBuildFCmp(k->b, LLVMRealOGT, x, LLVMConstNull(LLVMTypeOf(x)), ""); }

/* ---- the loop bodies of the ops computed in generated loops: one per op
   of fusion class FUSE_ELEMWISE or FUSE_BROADCAST (ops.def), each the op on
   the current element (k->idx, channel k->c); inputs come through val()
   (an inlined producer's body, or a load) and chan() (per channel) ---- */

typedef LLVMValueRef (*EwBody)(KB *k, const Node *v);

static LLVMValueRef ew_relu(KB *k, const Node *v) {
    LLVMValueRef x = val(k, v->in[0]);
    return LLVMBuildSelect(k->b, gt0(k, x), x, elc(k, 0), "");
}

static LLVMValueRef ew_relu_back(KB *k, const Node *v) {
    return LLVMBuildSelect(k->b, gt0(k, val(k, v->in[1])), val(k, v->in[0]), elc(k, 0), "");
}

static LLVMValueRef ew_leaky_relu(KB *k, const Node *v) {
    LLVMValueRef x = val(k, v->in[0]);
    return LLVMBuildSelect(k->b, gt0(k, x), x, LLVMBuildFMul(k->b, elc(k, v->fa[0]), x, ""), "");
}

static LLVMValueRef ew_leaky_relu_back(KB *k, const Node *v) {
    LLVMValueRef dy = val(k, v->in[0]);
    return LLVMBuildSelect(k->b, gt0(k, val(k, v->in[1])), dy, LLVMBuildFMul(k->b, elc(k, v->fa[0]), dy, ""), "");
}

static LLVMValueRef ew_add(KB *k, const Node *v) { return LLVMBuildFAdd(k->b, val(k, v->in[0]), val(k, v->in[1]), ""); }

static LLVMValueRef ew_bias_add(KB *k, const Node *v) {
    return LLVMBuildFAdd(k->b, val(k, v->in[0]), el(k, chan(k, v, 1, 0)), "");
}

static LLVMValueRef ew_bn_train(KB *k, const Node *v) {   /* in: x, st [mean; var], gamma, beta */
    LLVMValueRef *am = k->cmemo && k->cmemo_c == k->c ? &k->cmemo[v->id * CMEMO + CMEMO - 1] : NULL;
    LLVMValueRef a = am && *am ? *am
                     : k->scale && k->scale[v->id] ? loadf(k, k->scale[v->id], k->c)
                                                   : bn_scale(k, chan(k, v, 2, 0), chan(k, v, 1, k->C), v->fa[0]);
    if (am) *am = a;
    LLVMValueRef d = LLVMBuildFSub(k->b, val(k, v->in[0]), el(k, chan(k, v, 1, 0)), "");
    return fma_(k, el(k, a), d, el(k, chan(k, v, 3, 0)));
}

static LLVMValueRef ew_bn_eval(KB *k, const Node *v) {    /* in: x, mean, var, gamma, beta */
    LLVMValueRef a = k->scale && k->scale[v->id] ? loadf(k, k->scale[v->id], k->c)
                                                 : bn_scale(k, chan(k, v, 3, 0), chan(k, v, 2, 0), v->fa[0]);
    LLVMValueRef d = LLVMBuildFSub(k->b, val(k, v->in[0]), el(k, chan(k, v, 1, 0)), "");
    return fma_(k, el(k, a), d, el(k, chan(k, v, 4, 0)));
}

static LLVMValueRef ew_mul(KB *k, const Node *v) { return LLVMBuildFMul(k->b, val(k, v->in[0]), val(k, v->in[1]), ""); }

static LLVMValueRef unary(KB *k, const char *name, LLVMValueRef x) { return intrinsic(k, name, LLVMTypeOf(x), &x, 1); }

static LLVMValueRef ew_exp(KB *k, const Node *v) { return unary(k, "llvm.exp", val(k, v->in[0])); }

static LLVMValueRef ew_log(KB *k, const Node *v) { return unary(k, "llvm.log", val(k, v->in[0])); }

static LLVMValueRef ew_log_back(KB *k, const Node *v) { return LLVMBuildFDiv(k->b, val(k, v->in[0]), val(k, v->in[1]), ""); }

/* log1p(z) without a libm call per lane: log(u) * z / (u - 1) with u = 1 + z
   corrects the rounding of u (Goldberg), and is z itself where u == 1 */
static LLVMValueRef log1p_(KB *k, LLVMValueRef z) {
    LLVMValueRef u = LLVMBuildFAdd(k->b, elc(k, 1), z, ""), um1 = LLVMBuildFSub(k->b, u, elc(k, 1), "");
    LLVMValueRef r = LLVMBuildFDiv(k->b, LLVMBuildFMul(k->b, unary(k, "llvm.log", u), z, ""), um1, "");
    return LLVMBuildSelect(k->b, LLVMBuildFCmp(k->b, LLVMRealOEQ, um1, elc(k, 0), ""), z, r, "");
}

/* PyTorch's softplus (beta 1): x above the threshold, else log1p(e^x) */
static LLVMValueRef ew_softplus(KB *k, const Node *v) {
    LLVMValueRef x = val(k, v->in[0]);
    LLVMValueRef big = LLVMBuildFCmp(k->b, LLVMRealOGT, x, elc(k, RT_SOFTPLUS_THRESHOLD), "");
    return LLVMBuildSelect(k->b, big, x, log1p_(k, unary(k, "llvm.exp", x)), "");
}

static LLVMValueRef ew_softplus_back(KB *k, const Node *v) {   /* dy * e^x / (e^x + 1) */
    LLVMValueRef dy = val(k, v->in[0]), x = val(k, v->in[1]), z = unary(k, "llvm.exp", x);
    LLVMValueRef s = LLVMBuildFDiv(k->b, LLVMBuildFMul(k->b, dy, z, ""), LLVMBuildFAdd(k->b, z, elc(k, 1), ""), "");
    LLVMValueRef big = LLVMBuildFCmp(k->b, LLVMRealOGT, x, elc(k, RT_SOFTPLUS_THRESHOLD), "");
    return LLVMBuildSelect(k->b, big, dy, s, "");
}

/* The body of every op, from ops.def: an op of a loop class without its
   ew_<name> above is an undeclared identifier here. */
#define EW_BODY_FUSE_LEAF(nm) NULL
#define EW_BODY_FUSE_ELEMWISE(nm) ew_##nm
#define EW_BODY_FUSE_BROADCAST(nm) ew_##nm
#define EW_BODY_FUSE_INJECTIVE(nm) NULL
#define EW_BODY_FUSE_REDUCE(nm) NULL
#define EW_BODY_FUSE_OUT_EWISE(nm) NULL
#define EW_BODY_FUSE_OPAQUE(nm) NULL
static const EwBody ew_body[OP_COUNT] = {
#define OP(E, nm, nin, fusion, diffmask, attrs, reads) [OP_##E] = EW_BODY_##fusion(nm),
#define OPN(E, nm, nin, fusion, attrs, reads) [OP_##E] = EW_BODY_##fusion(nm),
#include "ir/ops.def"
#undef OP
#undef OPN
};

/* The pooling gradients that plane loops compute inline (fuse_unpool_op). */
static LLVMValueRef unpool_value(KB *k, const Node *v) {
    if (v->op == OP_AVGPOOL2D_BACK) {   /* a quarter of the window's gradient, upsampled per plane */
        RRC_ASSERT(k->lanes <= 1);
        for (int i = 0; i < k->nunpool; i++)
            if (k->unpool[i] == v) return loadf(k, k->unbuf[i], k->s);
        RRC_ABORT("cg_fuse: avgpool2d_back outside a plane loop");
    }
    RRC_ASSERT(v->op == OP_GLOBAL_AVGPOOL_BACK);
    /* the plane's gradient / S, in double (the runtime's rule); an
       epilogue's vector lies in one plane: its index / S */
    LLVMValueRef plane = k->plane ? k->plane : LLVMBuildSDiv(k->b, k->idx, i64c(k, v->dim[2] * v->dim[3]), "");
    LLVMValueRef d = LLVMBuildFPExt(k->b, loadf(k, ptr_of(k, v->in[0]), plane), k->f64, "");
    d = LLVMBuildFDiv(k->b, d, f64c(k, (double)(v->ia[0] * v->ia[1])), "");
    return el(k, LLVMBuildFPTrunc(k->b, d, k->cg->f32, ""));
}

/* The outer product dy[n] w[c] of a one-output linear layer's input
   gradient (fuse_outer_op) at the current element of an [N, C] loop: the
   runtime's product (outer_rows), in f32. */
static LLVMValueRef outer_value(KB *k, const Node *v) {
    RRC_ASSERT(k->lanes <= 1 && v->rank == 2);
    LLVMValueRef n = k->row ? k->row : LLVMBuildSDiv(k->b, k->idx, i64c(k, v->dim[1]), "");
    return LLVMBuildFMul(k->b, loadf(k, ptr_of(k, v->in[0]), n), loadf(k, ptr_of(k, v->in[1]), k->c), "");
}

/* One op on the current element. */
static LLVMValueRef op_value(KB *k, const Node *v) {
    if (ew_body[v->op]) return ew_body[v->op](k, v);
    if (v->op == OP_LINEAR_DX) return outer_value(k, v);
    if (v->op == OP_AVGPOOL2D_BACK || v->op == OP_GLOBAL_AVGPOOL_BACK) return unpool_value(k, v);
    RRC_ABORT("cg_fuse: op %s has no loop body", op_table[v->op].name);
}

static LLVMValueRef val(KB *k, const Node *v) {
    if (k->memo[v->id]) return k->memo[v->id];
    RRC_ASSERT(v != k->acc);   /* the caller sets its value */
    LLVMValueRef x = computed(k, v) ? op_value(k, v) : load_el(k, ptr_of(k, v), k->idx);
    k->memo[v->id] = x;
    return x;
}

static void nc_dims(const Node *v, int64_t *N, int64_t *C, int64_t *S) {
    *N = v->dim[0];
    *C = v->dim[1];
    *S = 1;
    for (int i = 2; i < v->rank; i++) *S *= v->dim[i];
}

/* Sets the element being emitted: clears the values of the previous body. */
static void at_element(KB *k, LLVMValueRef idx, LLVMValueRef c) {
    memset(k->memo, 0, (size_t)k->cg->g->nnodes * sizeof *k->memo);
    k->idx = idx;
    k->c = c;
    k->row = NULL;
}

/* The same in a loop over the channels of [N, C] row n. */
static void at_row_element(KB *k, LLVMValueRef idx, LLVMValueRef c, LLVMValueRef n) {
    at_element(k, idx, c);
    k->row = n;
}

/* A kernel would compute each inlined BatchNorm's scale gamma / sqrt(var +
   eps) (a double square root and division) once per plane, or once per
   element of [N, C] rows (where it also keeps the channels' loop from
   vectorising); it is made once per channel into an array before the row
   loop instead (the same operations, so the same bits). */
static void precompute_scales(KB *k, const Node *v) {
    if (!v->inlined) return;
    for (int i = 0; i < v->nin; i++) precompute_scales(k, v->in[i]);
    if ((v->op != OP_BN_TRAIN && v->op != OP_BN_EVAL) || k->scale[v->id]) return;
    int64_t C = k->C;
    LLVMValueRef arr = entry_alloca(k, LLVMArrayType2(k->cg->f32, (uint64_t)C), "bnscale");
    Loop L;
    LLVMValueRef c = loop_open(k, &L, i64c(k, 0), i64c(k, C), "sc");
    LLVMValueRef saved = k->c;
    k->c = c;
    LLVMValueRef a = v->op == OP_BN_TRAIN ? bn_scale(k, chan(k, v, 2, 0), chan(k, v, 1, C), v->fa[0])
                                          : bn_scale(k, chan(k, v, 3, 0), chan(k, v, 2, 0), v->fa[0]);
    storef(k, a, arr, c);
    k->c = saved;
    loop_close(k, &L);
    k->scale[v->id] = arr;
}

/* The inlined avgpool2d_back nodes of v's expression, once each. */
static void find_unpool2(KB *k, const Node *v) {
    if (!v->inlined) return;
    if (v->op == OP_AVGPOOL2D_BACK) {
        for (int i = 0; i < k->nunpool; i++)
            if (k->unpool[i] == v) return;
        RRC_ASSERT(k->nunpool < MAX_UNPOOL);
        k->unpool[k->nunpool++] = v;
        return;
    }
    for (int i = 0; i < v->nin; i++) find_unpool2(k, v->in[i]);
}

/* Upsampling of one plane of a 2x2 average-pool gradient u into the
   kernel's buffer: each value times 1/4 (the runtime's product), repeated
   over its window. Explicit vectors: a chunk of a half-size row is loaded,
   scaled, interleaved with itself by a shuffle and stored to both rows. */
static void unpool2_plane(KB *k, int i, LLVMValueRef plane) {
    const Node *u = k->unpool[i];
    int64_t H = u->dim[2], W = u->dim[3], hw = W / 2;
    int64_t chunk = hw <= 8 ? hw : hw % 8 == 0 ? 8 : hw % 4 == 0 ? 4 : hw % 2 == 0 ? 2 : 1;
    LLVMBuilderRef b = k->b;
    LLVMTypeRef f32 = k->cg->f32, vs = LLVMVectorType(f32, (unsigned)chunk);
    LLVMValueRef mask[32], quarter[16];
    for (int64_t j = 0; j < 2 * chunk; j++) mask[j] = LLVMConstInt(LLVMInt32TypeInContext(k->cg->ctx), (unsigned long long)(j / 2), 0);
    for (int64_t j = 0; j < chunk; j++) quarter[j] = f32c(k, (float)(1.0 / 4.0));
    LLVMValueRef shuf = LLVMConstVector(mask, (unsigned)(2 * chunk)), q = LLVMConstVector(quarter, (unsigned)chunk);
    Loop Lh, Lw;
    LLVMValueRef hh = loop_open(k, &Lh, i64c(k, 0), i64c(k, H / 2), "uh");
    LLVMValueRef w = loop_open(k, &Lw, i64c(k, 0), i64c(k, hw / chunk), "uw");
    LLVMValueRef src = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, plane, i64c(k, (H / 2) * hw), ""),
                                       LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, hh, i64c(k, hw), ""),
                                                       LLVMBuildNSWMul(b, w, i64c(k, chunk), ""), ""), "");
    LLVMValueRef ld = LLVMBuildLoad2(b, vs, gep(k, f32, ptr_of(k, u->in[0]), src), "");
    LLVMSetAlignment(ld, 4);
    LLVMValueRef v = LLVMBuildFMul(b, ld, q, "");
    v = LLVMBuildShuffleVector(b, v, LLVMGetPoison(vs), shuf, "");
    LLVMValueRef dst = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, hh, i64c(k, 2 * W), ""), LLVMBuildNSWMul(b, w, i64c(k, 2 * chunk), ""), "");
    for (int r = 0; r < 2; r++) {
        LLVMValueRef at = r ? LLVMBuildNSWAdd(b, dst, i64c(k, W), "") : dst;
        LLVMValueRef st = LLVMBuildStore(b, v, gep(k, f32, k->unbuf[i], at));
        LLVMSetAlignment(st, 4);
    }
    loop_close(k, &Lw);
    loop_close(k, &Lh);
}

/* Opens the loop over the elements of one plane (index `plane`, first
   element `base`); returns the element's index. A kernel reading inlined
   pooling gradients first makes the plane's upsampled 2x2 gradients
   (unpool2_plane), so the loop reads them contiguously like any value. */
static LLVMValueRef plane_open(KB *k, Loop *L, const Node *shape, LLVMValueRef base, LLVMValueRef plane, const char *name) {
    int64_t N, C, S;
    nc_dims(shape, &N, &C, &S);
    k->plane = plane;
    for (int i = 0; i < k->nunpool; i++) unpool2_plane(k, i, plane);
    k->s = loop_open(k, L, i64c(k, 0), i64c(k, S), name);
    return LLVMBuildNSWAdd(k->b, base, k->s, "");
}

/* ---- kernels ---- */

static void ew_kernel(KB *k, const Node *root, LLVMValueRef r0, LLVMValueRef r1) {
    int64_t N, C, S;
    nc_dims(root, &N, &C, &S);
    (void)N;
    LLVMValueRef out = ptr_of(k, root);
    /* S > 1: rows are planes (n, c), the inner loop runs over S;
       S == 1: rows are samples n, the inner loop runs over the channels */
    int64_t inner = S > 1 ? S : C;
    Loop R, I;
    for (int i = 0; i < root->nin; i++) precompute_scales(k, root->in[i]);
    LLVMValueRef r = loop_open(k, &R, r0, r1, S > 1 ? "plane" : "n");
    LLVMValueRef base = LLVMBuildNSWMul(k->b, r, i64c(k, inner), "");
    if (S > 1) {
        LLVMValueRef pc = LLVMBuildSRem(k->b, r, i64c(k, C), "c");
        LLVMValueRef idx = plane_open(k, &I, root, base, r, "s");
        at_element(k, idx, pc);
        storef(k, op_value(k, root), out, idx);
        loop_close(k, &I);
    } else {
        LLVMValueRef i = loop_open(k, &I, i64c(k, 0), i64c(k, inner), "c");
        LLVMValueRef idx = LLVMBuildNSWAdd(k->b, base, i, "");
        at_row_element(k, idx, i, r);
        storef(k, op_value(k, root), out, idx);
        loop_close(k, &I);
    }
    loop_close(k, &R);
}

/* Pooling over planes (KERNEL_POOL; rows are the input's N*C planes), its
   input x computed through val(): 2x2 windows summed in the runtime's
   order, ((x00 + x01) + x10) + x11, times 1/4; or the plane's sum (f32
   vector partials) / S in double. */
static void pool_kernel(KB *k, const Node *y, LLVMValueRef r0, LLVMValueRef r1) {
    const Node *x = y->in[0];
    int64_t C = x->dim[1], H = x->dim[2], W = x->dim[3], S = H * W;
    LLVMBuilderRef b = k->b;
    Loop R, A, B;
    precompute_scales(k, x);
    LLVMValueRef p = loop_open(k, &R, r0, r1, "plane");
    LLVMValueRef c = LLVMBuildSRem(b, p, i64c(k, C), "c"), base = LLVMBuildNSWMul(b, p, i64c(k, S), "");
    if (y->op == OP_GLOBAL_AVGPOOL) {
        LLVMValueRef acc = acc_new(k, k->cg->f32, "sum");
        LLVMValueRef s = loop_open(k, &A, i64c(k, 0), i64c(k, S), "s");
        at_element(k, LLVMBuildNSWAdd(b, base, s, ""), c);
        acc_add(k, acc, k->cg->f32, val(k, x));
        loop_close(k, &A);
        LLVMValueRef v = LLVMBuildFPExt(b, LLVMBuildLoad2(b, k->cg->f32, acc, ""), k->f64, "");
        v = LLVMBuildFPTrunc(b, LLVMBuildFDiv(b, v, f64c(k, (double)S), ""), k->cg->f32, "");
        storef(k, v, ptr_of(k, y), p);
    } else {
        LLVMValueRef oh = loop_open(k, &A, i64c(k, 0), i64c(k, H / 2), "oh");
        LLVMValueRef ow = loop_open(k, &B, i64c(k, 0), i64c(k, W / 2), "ow");
        LLVMValueRef i0 = LLVMBuildNSWAdd(b, base, LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, oh, i64c(k, 2 * W), ""),
                                                                  LLVMBuildNSWMul(b, ow, i64c(k, 2), ""), ""), "");
        const int64_t off[4] = {0, 1, W, W + 1};
        LLVMValueRef sum = NULL;
        for (int t = 0; t < 4; t++) {
            at_element(k, t ? LLVMBuildNSWAdd(b, i0, i64c(k, off[t]), "") : i0, c);
            LLVMValueRef v = val(k, x);
            sum = sum ? LLVMBuildFAdd(b, sum, v, "") : v;
        }
        LLVMValueRef o = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, p, i64c(k, S / 4), ""),
                                         LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, oh, i64c(k, W / 2), ""), ow, ""), "");
        storef(k, LLVMBuildFMul(b, sum, f32c(k, (float)(1.0 / 4.0)), ""), ptr_of(k, y), o);
        loop_close(k, &B);
        loop_close(k, &A);
    }
    loop_close(k, &R);
}

/* sqrt(var + eps) in double, var the f32 biased variance */
static LLVMValueRef bn_sq(KB *k, const Node *dx, LLVMValueRef var32) {
    LLVMValueRef sq = LLVMBuildFAdd(k->b, LLVMBuildFPExt(k->b, var32, k->f64, ""), f64c(k, (double)(float)dx->fa[0]), "");
    return intrinsic(k, "llvm.sqrt", k->f64, &sq, 1);
}

/* Whether BatchNorm backward K goes by samples: [N, C] rows, and the
   planes of a one-process bn_train_dx whose sums it makes itself. Walking
   by channels, a thread reads one plane of each sample, C * S apart: runs
   of 64 bytes to 4 KB, each a new stream for the hardware prefetchers.
   By samples, each part of the samples (then each sample) is one run
   along memory; a plane is still one channel's, summed in f32 and added
   in double (docs/DECISIONS.md has the figures). Sums given by an
   epilogue, or summed over ranks, keep the channels' walk. */
static bool bn_by_samples(const Kernel *K) {
    const Node *dx = K->members[0];
    return dx->rank == 2 || (dx->rank == 4 && dx->op == OP_BN_TRAIN_DX && !K->given[0]);
}

bool cg_bn_by_samples(const Kernel *K) { return K->kind == KERNEL_BN_DX && bn_by_samples(K); }

/* The kernel's bn_dgamma (sdyx / sq) and chan_sum (sdy) members at channel c. */
static void bn_store_sums(KB *k, const Kernel *K, LLVMValueRef sdy, LLVMValueRef sdyx, LLVMValueRef sq, LLVMValueRef c) {
    for (int i = 1; i < K->nmembers; i++) {
        const Node *m = K->members[i];
        LLVMValueRef v = m->op == OP_BN_DGAMMA ? LLVMBuildFDiv(k->b, sdyx, sq, "") : sdy;
        storef(k, LLVMBuildFPTrunc(k->b, v, k->cg->f32, ""), ptr_of(k, m), c);
    }
}

/* dx = a g + b + cx (x - m) with per-channel f32 coefficients from the
   double sums (rt_kernels_norm.c's dx_coef); dgamma = sdyx / sqrt(var +
   eps); dbeta = sdy. Writes the coefficients into the given slots, and
   one process's kernel (BN_WHOLE) also its dgamma / dbeta members. */
static void bn_dx_coef(KB *k, const Kernel *K, LLVMValueRef sdy, LLVMValueRef sdyx, LLVMValueRef var32,
                       LLVMValueRef gamma32, double M, LLVMValueRef c, LLVMValueRef *ka, LLVMValueRef *kb,
                       LLVMValueRef *kcx) {
    LLVMBuilderRef b = k->b;
    LLVMValueRef gamma = LLVMBuildFPExt(b, gamma32, k->f64, "");
    LLVMValueRef sq = bn_sq(k, K->members[0], var32);
    if (K->given[0]) {   /* made by the epilogue kernel (rt_k_bn_dx_sums): dbeta = sdy, dgamma = sdyx / sq */
        sdy = LLVMBuildFPExt(b, loadf(k, ptr_of(k, K->given[1]), c), k->f64, "");
        sdyx = LLVMBuildFMul(b, LLVMBuildFPExt(b, loadf(k, ptr_of(k, K->given[0]), c), k->f64, ""), sq, "");
    }
    LLVMValueRef rstd = LLVMBuildFDiv(b, f64c(k, 1), sq, ""), k1 = LLVMBuildFMul(b, gamma, rstd, "");
    *ka = LLVMBuildFPTrunc(b, k1, k->cg->f32, "");
    LLVMValueRef t = LLVMBuildFDiv(b, LLVMBuildFMul(b, k1, sdy, ""), f64c(k, M), "");
    *kb = LLVMBuildFPTrunc(b, LLVMBuildFNeg(b, t, ""), k->cg->f32, "");
    t = LLVMBuildFDiv(b, LLVMBuildFMul(b, LLVMBuildFMul(b, LLVMBuildFMul(b, k1, rstd, ""), rstd, ""), sdyx, ""), f64c(k, M), "");
    *kcx = LLVMBuildFPTrunc(b, LLVMBuildFNeg(b, t, ""), k->cg->f32, "");
    if (k->bn_phase == BN_WHOLE) bn_store_sums(k, K, sdy, sdyx, sq, c);
}

static LLVMValueRef dx_value(KB *k, const Node *dx, LLVMValueRef ka, LLVMValueRef kb, LLVMValueRef kcx, LLVMValueRef m) {
    LLVMValueRef g = val(k, dx->in[0]), xv = val(k, dx->in[1]);
    LLVMValueRef t = fma_(k, ka, g, kb);
    return fma_(k, kcx, LLVMBuildFSub(k->b, xv, m, ""), t);
}

static void bn_dx_kernel(KB *k, const Kernel *K, LLVMValueRef r0, LLVMValueRef r1) {
    const Node *dx = K->members[0];
    int64_t N, C, S;
    nc_dims(dx, &N, &C, &S);
    /* values per channel: bn_train_dx_all's are every rank's */
    double M = dx->op == OP_BN_TRAIN_DX_ALL ? (double)dx->ia[0] : (double)N * (double)S;
    LLVMTypeRef f32 = k->cg->f32, f64 = k->f64;
    LLVMValueRef out = ptr_of(k, dx), st = ptr_of(k, dx->in[2]), gm = ptr_of(k, dx->in[3]);
    Loop Lc, Ln;
    precompute_scales(k, dx->in[0]);
    precompute_scales(k, dx->in[1]);
    if (!bn_by_samples(K)) {   /* sums given, or over ranks: rows are channels; per channel its sums (unless given), then dx */
        Loop Ls;
        LLVMValueRef c = loop_open(k, &Lc, r0, r1, "c");
        LLVMValueRef m = loadf(k, st, c), var = loadf(k, st, LLVMBuildNSWAdd(k->b, c, i64c(k, C), ""));
        LLVMValueRef sdy = acc_new(k, f64, "sdy"), sdyx = acc_new(k, f64, "sdyx"), n, plane, base;
        LLVMValueRef wsy = k->ws ? gep(k, f64, k->ws, c) : NULL;
        LLVMValueRef wsyx = k->ws ? gep(k, f64, k->ws, LLVMBuildNSWAdd(k->b, c, i64c(k, C), "")) : NULL;
        if (k->bn_phase == BN_APPLY) {
            LLVMBuildStore(k->b, LLVMBuildLoad2(k->b, f64, wsy, ""), sdy);
            LLVMBuildStore(k->b, LLVMBuildLoad2(k->b, f64, wsyx, ""), sdyx);
        } else if (!K->given[0]) {
            n = loop_open(k, &Ln, i64c(k, 0), i64c(k, N), "n");
            plane = LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, n, i64c(k, C), ""), c, "");
            base = LLVMBuildNSWMul(k->b, plane, i64c(k, S), "");
            LLVMValueRef f1 = acc_new(k, f32, "p1"), f2 = acc_new(k, f32, "p2");
            at_element(k, plane_open(k, &Ls, dx, base, plane, "s"), c);
            LLVMValueRef g = val(k, dx->in[0]), xv = val(k, dx->in[1]);
            acc_add(k, f1, f32, g);
            acc_add(k, f2, f32, LLVMBuildFMul(k->b, g, LLVMBuildFSub(k->b, xv, m, ""), ""));
            loop_close(k, &Ls);
            acc_add(k, sdy, f64, LLVMBuildFPExt(k->b, LLVMBuildLoad2(k->b, f32, f1, ""), f64, ""));
            acc_add(k, sdyx, f64, LLVMBuildFPExt(k->b, LLVMBuildLoad2(k->b, f32, f2, ""), f64, ""));
            loop_close(k, &Ln);
        }
        if (k->bn_phase == BN_SUMS) {   /* this rank's sums, summed over ranks before BN_APPLY */
            LLVMValueRef y = LLVMBuildLoad2(k->b, f64, sdy, ""), yx = LLVMBuildLoad2(k->b, f64, sdyx, "");
            LLVMBuildStore(k->b, y, wsy);
            LLVMBuildStore(k->b, yx, wsyx);
            bn_store_sums(k, K, y, yx, bn_sq(k, dx, var), c);
            loop_close(k, &Lc);
            return;
        }
        LLVMValueRef ka, kb, kcx;
        k->c = c;
        bn_dx_coef(k, K, LLVMBuildLoad2(k->b, f64, sdy, ""), LLVMBuildLoad2(k->b, f64, sdyx, ""), var, loadf(k, gm, c), M, c,
                   &ka, &kb, &kcx);
        n = loop_open(k, &Ln, i64c(k, 0), i64c(k, N), "n2");
        plane = LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, n, i64c(k, C), ""), c, "");
        base = LLVMBuildNSWMul(k->b, plane, i64c(k, S), "");
        LLVMValueRef idx = plane_open(k, &Ls, dx, base, plane, "s2");
        at_element(k, idx, c);
        storef(k, dx_value(k, dx, ka, kb, kcx, m), out, idx);
        loop_close(k, &Ls);
        loop_close(k, &Ln);
        loop_close(k, &Lc);
        return;
    }
    /* by samples ([N, C] rows or planes): always two phases (cg_emit_generated) */
    RRC_ASSERT(!K->given[0] && k->bn_phase != BN_WHOLE);
    LLVMTypeRef af = LLVMArrayType2(f32, (uint64_t)C);
    LLVMValueRef n, c, idx;
    if (k->bn_phase == BN_SUMS) {
        /* rows are the rt_bn_parts(N) parts of the samples; part r adds up
           its double sums per channel in the workspace's [r][2][C], walking
           each sample's channels along memory */
        Loop Lr;
        LLVMValueRef r = loop_open(k, &Lr, r0, r1, "part"), parts = i64c(k, rt_bn_parts(N));
        LLVMValueRef n0 = LLVMBuildSDiv(k->b, LLVMBuildNSWMul(k->b, r, i64c(k, N), ""), parts, "");
        LLVMValueRef n1 = LLVMBuildSDiv(k->b, LLVMBuildNSWMul(k->b, LLVMBuildNSWAdd(k->b, r, i64c(k, 1), ""), i64c(k, N), ""), parts, "");
        LLVMValueRef A1 = gep(k, f64, k->ws, LLVMBuildNSWMul(k->b, r, i64c(k, 2 * C), "")), A2 = gep(k, f64, A1, i64c(k, C));
        c = loop_open(k, &Lc, i64c(k, 0), i64c(k, C), "c0");
        LLVMBuildStore(k->b, f64c(k, 0), gep(k, f64, A1, c));
        LLVMBuildStore(k->b, f64c(k, 0), gep(k, f64, A2, c));
        loop_close(k, &Lc);
        n = loop_open(k, &Ln, n0, n1, "n");
        c = loop_open(k, &Lc, i64c(k, 0), i64c(k, C), "c");
        LLVMValueRef p1 = gep(k, f64, A1, c), p2 = gep(k, f64, A2, c);
        if (S == 1) {   /* each value added in double */
            at_row_element(k, LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, n, i64c(k, C), ""), c, ""), c, n);
            LLVMValueRef g = LLVMBuildFPExt(k->b, val(k, dx->in[0]), f64, "");
            LLVMValueRef xv = LLVMBuildFPExt(k->b, val(k, dx->in[1]), f64, ""), m = LLVMBuildFPExt(k->b, loadf(k, st, c), f64, "");
            LLVMBuildStore(k->b, LLVMBuildFAdd(k->b, LLVMBuildLoad2(k->b, f64, p1, ""), g, ""), p1);
            LLVMBuildStore(k->b, fma_(k, g, LLVMBuildFSub(k->b, xv, m, ""), LLVMBuildLoad2(k->b, f64, p2, "")), p2);
        } else {   /* a plane's f32 partials (as by channels), added in double */
            Loop Ls;
            LLVMValueRef plane = LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, n, i64c(k, C), ""), c, "");
            LLVMValueRef m = loadf(k, st, c), f1 = acc_new(k, f32, "p1"), f2 = acc_new(k, f32, "p2");
            at_element(k, plane_open(k, &Ls, dx, LLVMBuildNSWMul(k->b, plane, i64c(k, S), ""), plane, "s"), c);
            LLVMValueRef g = val(k, dx->in[0]), xv = val(k, dx->in[1]);
            acc_add(k, f1, f32, g);
            acc_add(k, f2, f32, LLVMBuildFMul(k->b, g, LLVMBuildFSub(k->b, xv, m, ""), ""));
            loop_close(k, &Ls);
            LLVMBuildStore(k->b, LLVMBuildFAdd(k->b, LLVMBuildLoad2(k->b, f64, p1, ""),
                                               LLVMBuildFPExt(k->b, LLVMBuildLoad2(k->b, f32, f1, ""), f64, ""), ""), p1);
            LLVMBuildStore(k->b, LLVMBuildFAdd(k->b, LLVMBuildLoad2(k->b, f64, p2, ""),
                                               LLVMBuildFPExt(k->b, LLVMBuildLoad2(k->b, f32, f2, ""), f64, ""), ""), p2);
        }
        loop_close(k, &Lc);
        loop_close(k, &Ln);
        loop_close(k, &Lr);
        return;
    }
    /* BN_APPLY: rows are samples; the parts' sums, added in part order
       (rt_k_sum_parts), are the workspace's first [2][C]. The part with
       sample 0 writes the dgamma / dbeta members. */
    LLVMValueRef Ka = entry_alloca(k, af, "ka"), Kb = entry_alloca(k, af, "kb"), Kc = entry_alloca(k, af, "kcx");
    LLVMValueRef first = LLVMBuildICmp(k->b, LLVMIntEQ, r0, i64c(k, 0), "");
    c = loop_open(k, &Lc, i64c(k, 0), i64c(k, C), "c1");
    k->c = c;
    LLVMValueRef ka, kb, kcx, var = loadf(k, st, LLVMBuildNSWAdd(k->b, c, i64c(k, C), ""));
    LLVMValueRef sdy = LLVMBuildLoad2(k->b, f64, gep(k, f64, k->ws, c), "");
    LLVMValueRef sdyx = LLVMBuildLoad2(k->b, f64, gep(k, f64, k->ws, LLVMBuildNSWAdd(k->b, c, i64c(k, C), "")), "");
    bn_dx_coef(k, K, sdy, sdyx, var, loadf(k, gm, c), M, c, &ka, &kb, &kcx);
    LLVMBuildStore(k->b, ka, gep(k, f32, Ka, c));
    LLVMBuildStore(k->b, kb, gep(k, f32, Kb, c));
    LLVMBuildStore(k->b, kcx, gep(k, f32, Kc, c));
    LLVMBasicBlockRef bs = LLVMAppendBasicBlockInContext(k->cg->ctx, k->fn, "sums"), bn = LLVMAppendBasicBlockInContext(k->cg->ctx, k->fn, "nosums");
    LLVMBuildCondBr(k->b, first, bs, bn);
    LLVMPositionBuilderAtEnd(k->b, bs);
    bn_store_sums(k, K, sdy, sdyx, bn_sq(k, dx, var), c);
    LLVMBuildBr(k->b, bn);
    LLVMPositionBuilderAtEnd(k->b, bn);
    loop_close(k, &Lc);
    n = loop_open(k, &Ln, r0, r1, "n2");
    c = loop_open(k, &Lc, i64c(k, 0), i64c(k, C), "c2");
    idx = LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, n, i64c(k, C), ""), c, "");
    LLVMValueRef ca = LLVMBuildLoad2(k->b, f32, gep(k, f32, Ka, c), ""), cb = LLVMBuildLoad2(k->b, f32, gep(k, f32, Kb, c), "");
    LLVMValueRef cc = LLVMBuildLoad2(k->b, f32, gep(k, f32, Kc, c), ""), m = loadf(k, st, c);
    Loop Ls;
    if (S > 1) idx = plane_open(k, &Ls, dx, LLVMBuildNSWMul(k->b, idx, i64c(k, S), ""), idx, "s2");
    if (S > 1) at_element(k, idx, c);
    else at_row_element(k, idx, c, n);
    storef(k, dx_value(k, dx, ca, cb, cc, m), out, idx);
    if (S > 1) loop_close(k, &Ls);
    loop_close(k, &Lc);
    loop_close(k, &Ln);
}

/* "backbone.layer1.0" + "relu" + id: the body's name */
static void kernel_name(char *buf, size_t n, const Node *root) {
    snprintf(buf, n, "%s%s%s#%d", root->name ? root->name : "", root->name ? "." : "", op_table[root->op].name, root->id);
}


/* ---- sharing: kernels of the same structure (ops, attributes, shapes,
   and which value goes where) are one function; residual stages repeat the
   same blocks, so ResNet-32's ~190 fused kernels need ~20 functions ---- */

struct CgShared {
    char *sig;
    LLVMValueRef wrapper;
};

typedef struct Sig {
    char *buf;
    size_t len, cap;
} Sig;

static void sig_put(Sig *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sig_put(Sig *s, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (s->len + (size_t)n + 1 > s->cap) {
        s->cap = 2 * (s->len + (size_t)n + 1);
        s->buf = xrealloc(s->buf, s->cap);
    }
    memcpy(s->buf + s->len, tmp, (size_t)n + 1);
    s->len += (size_t)n;
}

static void sig_node(Sig *s, KB *k, const Node *v) {
    if (v == k->acc) {
        sig_put(s, "acc");
        return;
    }
    if (!computed(k, v)) {
        sig_put(s, "e%d", ext_slot(k, v));
        return;
    }
    sig_put(s, "%s(", op_table[v->op].name);
    for (int i = 0; i < v->nin; i++) {
        sig_node(s, k, v->in[i]);
        sig_put(s, ",");
    }
    for (int i = 0; i < IR_MAX_FA; i++) sig_put(s, "%.17g,", v->fa[i]);
    for (int i = 0; i < IR_MAX_IA; i++) sig_put(s, "%lld,", (long long)v->ia[i]);
    sig_put(s, ")");
}

/* The structure of kernel K: kind, members with their shapes and
   attributes, and the expressions of the root's inputs. */
static char *kernel_sig(KB *k, const Kernel *K) {
    Sig s = {0};
    sig_put(&s, "%s", kernel_kind_name(K->kind));
    for (int i = 0; i < K->nmembers; i++) {
        const Node *m = K->members[i];
        sig_put(&s, " %s[", op_table[m->op].name);
        for (int d = 0; d < m->rank; d++) sig_put(&s, "%lld,", (long long)m->dim[d]);
        for (int a = 0; a < IR_MAX_FA; a++) sig_put(&s, "%.17g,", m->fa[a]);
        for (int a = 0; a < IR_MAX_IA; a++) sig_put(&s, "%lld,", (long long)m->ia[a]);
        sig_put(&s, "]");
    }
    const Node *root = K->members[0];
    for (int i = 0; i < root->nin; i++) {
        sig_put(&s, " ");
        sig_node(&s, k, root->in[i]);
    }
    if (K->given[0]) sig_put(&s, " given e%d e%d", ext_slot(k, K->given[0]), ext_slot(k, K->given[1]));
    if (k->bn_phase != BN_WHOLE) sig_put(&s, " phase %s", k->bn_phase == BN_SUMS ? "sums" : "apply");
    for (int i = 0; i < k->next; i++) {   /* the shapes of the values in memory (a pool's input) */
        sig_put(&s, " e%d[", i);
        for (int d = 0; d < k->ext[i]->rank; d++) sig_put(&s, "%lld,", (long long)k->ext[i]->dim[d]);
        sig_put(&s, "]");
    }
    return s.buf;
}

/* The body and the rows wrapper of a kernel; returns the wrapper. */
static LLVMValueRef build_kernel(CG *cg, KB *k, const Kernel *K, const Node *root) {
    LLVMValueRef w;
    LLVMTypeRef params[MAX_EXT + 3];
    int np = k->next + (k->bn_phase != BN_WHOLE);   /* pointers: the values, then the workspace */
    for (int i = 0; i < np; i++) params[i] = cg->ptr;
    params[np] = params[np + 1] = cg->i64;
    char name[256];
    kernel_name(name, sizeof name, root);
    if (k->bn_phase != BN_WHOLE) strncat(name, k->bn_phase == BN_SUMS ? ".sums" : ".apply", sizeof name - strlen(name) - 1);
    LLVMTypeRef ft = LLVMFunctionType(cg->void_, params, (unsigned)np + 2, 0);
    k->fn = LLVMAddFunction(cg->mod, name, ft);
    cg_fn_attrs(cg, k->fn, np);
    for (int i = 0; i < k->next; i++) k->p[i] = LLVMGetParam(k->fn, (unsigned)i);
    if (k->bn_phase != BN_WHOLE) k->ws = LLVMGetParam(k->fn, (unsigned)k->next);
    k->entry = LLVMAppendBasicBlockInContext(cg->ctx, k->fn, "entry");
    k->b = LLVMCreateBuilderInContext(cg->ctx);
    LLVMPositionBuilderAtEnd(k->b, k->entry);
    LLVMValueRef r0 = LLVMGetParam(k->fn, (unsigned)np), r1 = LLVMGetParam(k->fn, (unsigned)np + 1);
    for (int i = 0; i < root->nin; i++) find_unpool2(k, root->in[i]);
    for (int i = 0; i < k->nunpool; i++) {
        int64_t S = k->unpool[i]->dim[2] * k->unpool[i]->dim[3];
        k->unbuf[i] = entry_alloca(k, LLVMArrayType2(cg->f32, (uint64_t)S), "unpool");
        LLVMSetAlignment(k->unbuf[i], 64);
    }
    if (K->kind == KERNEL_BN_DX) bn_dx_kernel(k, K, r0, r1);
    else if (K->kind == KERNEL_POOL) pool_kernel(k, root, r0, r1);
    else ew_kernel(k, root, r0, r1);
    LLVMBuildRetVoid(k->b);

    w = cg_rows_wrapper(cg, k->b, k->fn, ft, name, np);
    LLVMDisposeBuilder(k->b);

    return w;
}

/* ---- an inlined value computed inside another generator's loops (the
   direct convolutions read their input through one: cg_conv.c) ---- */

struct CgExpr {
    KB k;
    const Node *v;
    char *sig;
};

static CgExpr *expr_new(CG *cg, const Node *v, const Node *acc, const Node *sx, const Node *sst) {
    CgExpr *e = xcalloc(1, sizeof *e);
    e->v = v;
    e->k.cg = cg;
    e->k.f64 = LLVMDoubleTypeInContext(cg->ctx);
    e->k.memo = xcalloc((size_t)cg->g->nnodes, sizeof *e->k.memo);
    e->k.C = v->rank >= 2 ? v->dim[1] : 1;
    e->k.acc = acc;
    e->k.root = acc ? v : NULL;
    collect(&e->k, v);
    if (sx) {
        e->k.sx = sx;
        e->k.sst = sst;
        collect(&e->k, sx);
        ext_slot(&e->k, sst);
    }
    Sig s = {0};
    sig_node(&s, &e->k, v);
    if (sx) {
        sig_put(&s, " sums ");
        sig_node(&s, &e->k, sx);
        sig_put(&s, " e%d", ext_slot(&e->k, sst));
    }
    e->sig = s.buf;
    return e;
}

CgExpr *cg_expr_new(CG *cg, const Node *v) { return expr_new(cg, v, NULL, NULL, NULL); }

CgExpr *cg_epi_new(CG *cg, const Node *root, const Node *acc, const Node *sx, const Node *sst) {
    return expr_new(cg, root, acc, sx, sst);
}

int cg_expr_count(const CgExpr *e) { return e->k.next; }
const Node *cg_expr_value(const CgExpr *e, int i) { return e->k.ext[i]; }
const char *cg_expr_sig(const CgExpr *e) { return e->sig; }
bool cg_expr_is_load(const CgExpr *e) { return !e->v->inlined; }

void cg_expr_begin(CgExpr *e, LLVMBuilderRef b, const LLVMValueRef *ptrs) {
    e->k.b = b;
    e->k.cmemo_c = NULL;   /* new pointers: no channel terms yet */
    for (int i = 0; i < e->k.next; i++) e->k.p[i] = ptrs[i];
}

LLVMValueRef cg_expr_at(CgExpr *e, LLVMValueRef idx, LLVMValueRef c) {
    at_element(&e->k, idx, c);
    return val(&e->k, e->v);
}

LLVMValueRef cg_epi_at(CgExpr *e, LLVMValueRef idx, LLVMValueRef c, LLVMValueRef accv, LLVMValueRef *gx) {
    KB *k = &e->k;
    LLVMTypeRef t = LLVMTypeOf(accv);
    k->lanes = LLVMGetTypeKind(t) == LLVMVectorTypeKind ? LLVMGetVectorSize(t) : 1;
    if (!k->cmemo) k->cmemo = xcalloc((size_t)k->cg->g->nnodes * CMEMO, sizeof *k->cmemo);
    if (c != k->cmemo_c) memset(k->cmemo, 0, (size_t)k->cg->g->nnodes * CMEMO * sizeof *k->cmemo);
    k->cmemo_c = c;
    at_element(k, idx, c);
    k->memo[k->acc->id] = accv;
    LLVMValueRef g = val(k, e->v);
    if (gx) {   /* g (x - mean): the bn_dgamma term */
        RRC_ASSERT(k->sx);
        LLVMValueRef m = el(k, loadf(k, ptr_of(k, k->sst), c));
        *gx = LLVMBuildFMul(k->b, g, LLVMBuildFSub(k->b, val(k, k->sx), m, ""), "");
    }
    return g;
}

void cg_expr_free(CgExpr *e) {
    if (!e) return;
    free(e->k.memo);
    free(e->k.cmemo);
    free(e->sig);
    free(e);
}

void cg_fuse_done(CG *cg) {
    for (int i = 0; i < cg->nshared; i++) free(cg->shared[i].sig);
    free(cg->shared);
    cg->shared = NULL;
    cg->nshared = cg->capshared = 0;
}

/* Emits kernel K (in phase `phase` of a BatchNorm backward over ranks)
   as a function over rows, or finds one of the same structure, and the
   step's call to it through rt_par_rows. */
/* Builds (or finds) the rows function of kernel K's phase and its
   argument array in the step: the values' pointers, the workspace last.
   *rows, *min_rows: its rows and the fewest per thread. A dx applied in
   its readers (Kernel.apply_in) has no address: its slot (0) is NULL, set
   by each reader per call. */
static LLVMValueRef rows_fn(CG *cg, const Kernel *K, int phase, LLVMValueRef *args, int *nargs, int64_t *nrows,
                            int64_t *min_rows) {
    const Node *root = K->members[0];
    KB k = {.cg = cg, .f64 = LLVMDoubleTypeInContext(cg->ctx), .bn_phase = phase};
    k.memo = xcalloc((size_t)cg->g->nnodes, sizeof *k.memo);
    k.scale = xcalloc((size_t)cg->g->nnodes, sizeof *k.scale);
    /* the values in memory: outputs first, then what the expressions read */
    for (int i = 0; i < K->nmembers; i++) ext_slot(&k, K->members[i]);
    for (int i = 0; i < root->nin; i++) collect(&k, root->in[i]);
    for (int i = 0; i < 2; i++)
        if (K->given[i]) ext_slot(&k, K->given[i]);
    int64_t N, C, S;
    nc_dims(root, &N, &C, &S);
    k.C = C;
    int64_t rows, per_row;
    if (K->kind == KERNEL_BN_DX && bn_by_samples(K)) {   /* parts of the samples, then samples */
        rows = phase == BN_SUMS ? rt_bn_parts(N) : N;
        per_row = phase == BN_SUMS ? N / rt_bn_parts(N) * C * S : C * S;
    } else if (K->kind == KERNEL_BN_DX) {
        rows = C;
        per_row = N * S;
    } else if (K->kind == KERNEL_POOL) {
        nc_dims(root->in[0], &N, &C, &S);
        rows = N * C;
        per_row = S;
    } else {
        rows = S > 1 ? N * C : N;
        per_row = S > 1 ? S : C;
    }
    char *sig = kernel_sig(&k, K);
    LLVMValueRef w = NULL;
    for (int i = 0; i < cg->nshared && !w; i++)
        if (!strcmp(cg->shared[i].sig, sig)) w = cg->shared[i].wrapper;
    if (w) {
        free(sig);
    } else {
        w = build_kernel(cg, &k, K, root);
        if (cg->nshared == cg->capshared) {
            cg->capshared = cg->capshared ? 2 * cg->capshared : 32;
            cg->shared = xrealloc(cg->shared, (size_t)cg->capshared * sizeof *cg->shared);
        }
        cg->shared[cg->nshared++] = (struct CgShared){sig, w};
    }

    /* the step: pointers into an array (the workspace last) */
    int np = k.next + (phase != BN_WHOLE);
    LLVMValueRef arr = LLVMBuildArrayAlloca(cg->b, cg->ptr, LLVMConstInt(cg->i64, (unsigned long long)np, 0), "args");
    for (int i = 0; i < np; i++) {
        LLVMValueRef ix = LLVMConstInt(cg->i64, (unsigned long long)i, 0);
        LLVMValueRef p = i >= k.next ? cg_ws(cg) : node_unstored(k.ext[i]) ? LLVMConstNull(cg->ptr) : cg_ptr(cg, k.ext[i]);
        LLVMBuildStore(cg->b, p, LLVMBuildGEP2(cg->b, cg->ptr, arr, &ix, 1, ""));
    }
    *args = arr;
    *nargs = np;
    *nrows = rows;
    *min_rows = per_row >= 16384 ? 1 : 16384 / (per_row ? per_row : 1);
    free(k.memo);
    free(k.scale);
    return w;
}

/* Kernel K's phase over its rows on the pool (rt_par_rows). */
static void emit_rows(CG *cg, const Kernel *K, int phase) {
    LLVMValueRef args;
    int nargs;
    int64_t rows, min_rows;
    LLVMValueRef w = rows_fn(cg, K, phase, &args, &nargs, &rows, &min_rows);
    call_rt_par_rows(cg, w, args, rows, min_rows);
}

bool cg_staged_apply(CG *cg, const Node *conv, LLVMValueRef *fn, LLVMValueRef *args, int *nargs) {
    const Kernel *K = conv->in[0]->kernel;
    if (!K || !K->apply_in || K->members[0] != conv->in[0]) return false;
    for (int i = 0; i < cg->nstaged; i++)
        if (cg->staged[i].K == K) {
            *fn = cg->staged[i].fn;
            *args = cg->staged[i].args;
            *nargs = cg->staged[i].nargs;
            if (conv == K->apply_in) cg->staged[i] = cg->staged[--cg->nstaged];   /* its last reader */
            return true;
        }
    RRC_ABORT("cg_fuse: %%%d before the BatchNorm backward it applies", conv->id);
}

void cg_emit_generated(CG *cg, const Kernel *K) {
    const Node *root = K->members[0];
    if (K->kind == KERNEL_BN_DX && bn_by_samples(K)) {
        /* by samples ([N, C] rows or planes): the sums of parts of the samples (each
           part along memory), added in part order, then dx by samples: two
           threads never read alternate halves of the same rows */
        emit_rows(cg, K, BN_SUMS);
        call_rt_k_sum_parts(cg, cg_ws(cg), rt_bn_parts(root->dim[0]), 2 * root->dim[1]);
        if (K->apply_in) {   /* applied image by image in its readers */
            int64_t rows, min_rows;
            RRC_ASSERT(cg->nstaged < CG_MAX_STAGED);
            struct CgStaged *st = &cg->staged[cg->nstaged++];
            st->K = K;
            st->fn = rows_fn(cg, K, BN_APPLY, &st->args, &st->nargs, &rows, &min_rows);
            return;
        }
        emit_rows(cg, K, BN_APPLY);
        return;
    }
    if (K->kind != KERNEL_BN_DX || root->op != OP_BN_TRAIN_DX_ALL) {
        emit_rows(cg, K, BN_WHOLE);
        return;
    }
    /* this rank's sums per channel with one process's code (its planes'
       f32 partials added in double), summed over ranks in double in rank
       order, then dx from them: one process's arithmetic but for the
       order of adding the planes' double sums */
    emit_rows(cg, K, BN_SUMS);
    call_rt_k_sum_ranks(cg, cg_ws(cg), 2 * root->dim[1]);
    emit_rows(cg, K, BN_APPLY);
}
