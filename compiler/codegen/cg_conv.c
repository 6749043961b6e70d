/*
** cg_conv.c: generated direct convolutions for 3x3, stride 1, padding 1
** ("same") layers with planes at least 16 wide: the forward and the input
** gradient of most of a CIFAR ResNet. Other shapes keep im2col + OpenBLAS
** (runtime/rt_kernels_conv.c); docs/DECISIONS.md has the measurements.
**
** Why: im2col writes nine copies of the input and col2im adds nine back,
** so on 16-32 channels about half the time of a BLAS convolution went to
** copying (perf on resnet32). A direct kernel reads each input vector once
** per tap from a zero-padded copy of the image that stays in L1/L2.
**
** The kernel, for images [n0, n1) (rt_rows_fn: rows are images):
**   pad:   xp[c][H+2][W+2] = x[n][c] with zero borders (the borders are
**          zeroed once per call; only the interior is rewritten per image);
**   tiles: OB output channels x V vectors of L = min(16, W) pixels (rows of
**          the plane, W/L vectors per row), OB*V = 16 accumulators;
**   loop:  over input channels c, the nine taps unrolled: V loads of the
**          shifted input rows, OB weight broadcasts, OB*V fused multiply-adds.
** The input gradient is the same loop on dy with the weights transposed and
** flipped: dx[c] = sum_o W[o][c][2-kh][2-kw] * dy_pad[o] shifted.
** Vectors are <L x float>: zmm registers on AVX-512, two ymm elsewhere.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Core.h>

#include "codegen/cg_impl.h"

/* Whether a [N, C, H, W] -> [N, O, H, W] 3x3 "same" convolution (either
   direction) gets a direct kernel. */
static bool direct_shape(int64_t H, int64_t W) {
    return W >= 16 && W % 16 == 0 && H % 2 == 0;
}

bool cg_conv_direct(const Node *n) {
    const Node *w, *big;
    switch (n->op) {
    case OP_CONV2D: w = n->in[1]; big = n; break;
    case OP_CONV2D_DX: w = n->in[1]; big = n; break;
    default: return false;
    }
    if (w->dim[2] != 3 || w->dim[3] != 3 || n->ia[0] != 1 || n->ia[1] != 1) return false;
    const Node *in = n->op == OP_CONV2D ? n->in[0] : n->in[0];   /* x, or dy */
    return in->dim[2] == big->dim[2] && in->dim[3] == big->dim[3] && direct_shape(big->dim[2], big->dim[3]);
}

typedef struct CB {
    CG *cg;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    LLVMBasicBlockRef entry;
    LLVMTypeRef vt;   /* <L x float> */
} CB;

static LLVMValueRef I(CB *k, int64_t v) { return LLVMConstInt(k->cg->i64, (unsigned long long)v, 1); }

static LLVMValueRef alloca_entry(CB *k, LLVMTypeRef t, const char *name) {
    LLVMBuilderRef e = LLVMCreateBuilderInContext(k->cg->ctx);
    LLVMValueRef first = LLVMGetFirstInstruction(k->entry);
    if (first) LLVMPositionBuilderBefore(e, first);
    else LLVMPositionBuilderAtEnd(e, k->entry);
    LLVMValueRef a = LLVMBuildAlloca(e, t, name);
    LLVMDisposeBuilder(e);
    return a;
}

typedef struct CLoop {
    LLVMValueRef slot, i;
    LLVMBasicBlockRef head, exit;
} CLoop;

static LLVMValueRef cloop_open(CB *k, CLoop *L, LLVMValueRef lo, LLVMValueRef hi, int64_t step, const char *name) {
    L->slot = alloca_entry(k, k->cg->i64, name);
    LLVMBuildStore(k->b, lo, L->slot);
    L->head = LLVMAppendBasicBlockInContext(k->cg->ctx, k->fn, name);
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(k->cg->ctx, k->fn, "body");
    L->exit = LLVMAppendBasicBlockInContext(k->cg->ctx, k->fn, "exit");
    LLVMBuildBr(k->b, L->head);
    LLVMPositionBuilderAtEnd(k->b, L->head);
    L->i = LLVMBuildLoad2(k->b, k->cg->i64, L->slot, name);
    LLVMBuildCondBr(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, L->i, hi, ""), body, L->exit);
    LLVMPositionBuilderAtEnd(k->b, body);
    (void)step;
    return L->i;
}

static void cloop_close(CB *k, CLoop *L, int64_t step) {
    LLVMBuildStore(k->b, LLVMBuildNSWAdd(k->b, L->i, I(k, step), ""), L->slot);
    LLVMBuildBr(k->b, L->head);
    LLVMPositionBuilderAtEnd(k->b, L->exit);
}

static LLVMValueRef fptr(CB *k, LLVMValueRef base, LLVMValueRef idx) {
    return LLVMBuildInBoundsGEP2(k->b, k->cg->f32, base, &idx, 1, "");
}

static LLVMValueRef vfma(CB *k, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
    unsigned id = LLVMLookupIntrinsicID("llvm.fma", 8);
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(k->cg->mod, id, &k->vt, 1);
    LLVMTypeRef ps[3] = {k->vt, k->vt, k->vt};
    LLVMValueRef args[3] = {a, b, c};
    return LLVMBuildCall2(k->b, LLVMFunctionType(k->vt, ps, 3, 0), f, args, 3, "");
}

/* The kernel for one direction: `in` [N, Ci, H, W] -> `out` [N, Co, H, W]
   with weights w [O][C][3][3]; transposed: Co = C, Ci = O, weight of
   (co, ci, kh, kw) = w[ci][co][2-kh][2-kw]. */
static LLVMValueRef build(CG *cg, const char *name, int64_t Ci, int64_t Co, int64_t H, int64_t W, bool transposed) {
    CB k = {.cg = cg};
    int64_t L = 16, VR = W / L, R = VR >= 4 ? 1 : 4 / VR;   /* about 4 vectors per tile */
    if (R > H) R = H;
    while (H % R) R--;
    int64_t V = R * VR, OB = 16 / V;
    if (OB < 1) OB = 1;
    while (Co % OB) OB--;
    int64_t PW = W + 2, PH = H + 2, plane = PH * PW;
    k.vt = LLVMVectorType(cg->f32, (unsigned)L);
    LLVMTypeRef ps[5] = {cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->i64};
    LLVMTypeRef body_t = LLVMFunctionType(cg->void_, ps, 5, 0);
    k.fn = LLVMAddFunction(cg->mod, name, body_t);
    LLVMSetLinkage(k.fn, LLVMInternalLinkage);
    unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
    for (unsigned i = 1; i <= 3; i++) LLVMAddAttributeAtIndex(k.fn, i, LLVMCreateEnumAttribute(cg->ctx, noalias, 0));
    LLVMAddAttributeAtIndex(k.fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(cg->ctx, LLVMGetEnumAttributeKindForName("noinline", 8), 0));
    if (cg->features && strstr(cg->features, "+avx512f"))
        LLVMAddAttributeAtIndex(k.fn, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(cg->ctx, "prefer-vector-width", 19, "512", 3));
    k.entry = LLVMAppendBasicBlockInContext(cg->ctx, k.fn, "entry");
    k.b = LLVMCreateBuilderInContext(cg->ctx);
    LLVMPositionBuilderAtEnd(k.b, k.entry);
    LLVMValueRef x = LLVMGetParam(k.fn, 0), wt = LLVMGetParam(k.fn, 1), y = LLVMGetParam(k.fn, 2);
    LLVMValueRef n0 = LLVMGetParam(k.fn, 3), n1 = LLVMGetParam(k.fn, 4);

    /* the padded image: its border zeroed once per call, its interior
       rewritten per image */
    LLVMValueRef xp = alloca_entry(&k, LLVMArrayType2(cg->f32, (uint64_t)(Ci * plane)), "xpad");
    LLVMSetAlignment(xp, 64);
    CLoop Ln, Lc, Lh, Lo, Li;
    {
        LLVMValueRef c = cloop_open(&k, &Lc, I(&k, 0), I(&k, Ci), 1, "zc");
        LLVMValueRef base = LLVMBuildNSWMul(k.b, c, I(&k, plane), "");
        LLVMValueRef zero8 = LLVMConstInt(cg->i8, 0, 0);
        LLVMBuildMemSet(k.b, fptr(&k, xp, base), zero8, I(&k, PW * 4), 4);
        LLVMBuildMemSet(k.b, fptr(&k, xp, LLVMBuildNSWAdd(k.b, base, I(&k, (PH - 1) * PW), "")), zero8, I(&k, PW * 4), 4);
        LLVMValueRef h = cloop_open(&k, &Lh, I(&k, 1), I(&k, PH - 1), 1, "zh");
        LLVMValueRef row = LLVMBuildNSWAdd(k.b, base, LLVMBuildNSWMul(k.b, h, I(&k, PW), ""), "");
        LLVMBuildStore(k.b, LLVMConstReal(cg->f32, 0), fptr(&k, xp, row));
        LLVMBuildStore(k.b, LLVMConstReal(cg->f32, 0), fptr(&k, xp, LLVMBuildNSWAdd(k.b, row, I(&k, PW - 1), "")));
        cloop_close(&k, &Lh, 1);
        cloop_close(&k, &Lc, 1);
    }

    LLVMValueRef n = cloop_open(&k, &Ln, n0, n1, 1, "n");
    /* interior rows */
    LLVMValueRef c = cloop_open(&k, &Lc, I(&k, 0), I(&k, Ci), 1, "pc");
    LLVMValueRef h = cloop_open(&k, &Lh, I(&k, 0), I(&k, H), 1, "ph");
    LLVMValueRef src = LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, n, I(&k, Ci), ""), c, ""), I(&k, H), ""), h, ""), I(&k, W), "");
    LLVMValueRef dst = LLVMBuildNSWAdd(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, c, I(&k, plane), ""), LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, h, I(&k, 1), ""), I(&k, PW), ""), ""), I(&k, 1), "");
    LLVMBuildMemCpy(k.b, fptr(&k, xp, dst), 4, fptr(&k, x, src), 4, I(&k, W * 4));
    cloop_close(&k, &Lh, 1);
    cloop_close(&k, &Lc, 1);

    /* tiles: output channel blocks x row blocks */
    LLVMValueRef acc[16];
    for (int a = 0; a < OB * V; a++) acc[a] = alloca_entry(&k, k.vt, "acc");
    LLVMValueRef ob = cloop_open(&k, &Lo, I(&k, 0), I(&k, Co), OB, "ob");
    LLVMValueRef h0 = cloop_open(&k, &Lh, I(&k, 0), I(&k, H), R, "h0");
    for (int a = 0; a < OB * V; a++) LLVMBuildStore(k.b, LLVMConstNull(k.vt), acc[a]);
    LLVMValueRef ci = cloop_open(&k, &Li, I(&k, 0), I(&k, Ci), 1, "ci");
    LLVMValueRef pbase = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, ci, I(&k, plane), ""), LLVMBuildNSWMul(k.b, h0, I(&k, PW), ""), "");
    LLVMValueRef cur[16];
    for (int a = 0; a < OB * V; a++) cur[a] = LLVMBuildLoad2(k.b, k.vt, acc[a], "");
    for (int kh = 0; kh < 3; kh++)
        for (int kw = 0; kw < 3; kw++) {
            LLVMValueRef xin[16];
            for (int v = 0; v < V; v++) {
                int64_t r = v / VR, seg = v % VR;
                LLVMValueRef off = LLVMBuildNSWAdd(k.b, pbase, I(&k, (r + kh) * PW + seg * L + kw), "");
                LLVMValueRef ld = LLVMBuildLoad2(k.b, k.vt, fptr(&k, xp, off), "");
                LLVMSetAlignment(ld, 4);
                xin[v] = ld;
            }
            for (int o = 0; o < OB; o++) {
                /* weight of (output channel ob+o, input channel ci, tap) */
                LLVMValueRef co = LLVMBuildNSWAdd(k.b, ob, I(&k, o), "");
                LLVMValueRef widx;
                if (!transposed)   /* w[co][ci][kh][kw] */
                    widx = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, co, I(&k, Ci), ""), ci, ""), I(&k, 9), ""), I(&k, kh * 3 + kw), "");
                else               /* w[ci][co][2-kh][2-kw] */
                    widx = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, ci, I(&k, Co), ""), co, ""), I(&k, 9), ""), I(&k, (2 - kh) * 3 + (2 - kw)), "");
                LLVMValueRef ws = LLVMBuildLoad2(k.b, cg->f32, fptr(&k, wt, widx), "");
                LLVMValueRef splat = LLVMBuildInsertElement(k.b, LLVMGetUndef(k.vt), ws, I(&k, 0), "");
                LLVMValueRef zeros = LLVMConstNull(LLVMVectorType(LLVMInt32TypeInContext(cg->ctx), (unsigned)L));
                splat = LLVMBuildShuffleVector(k.b, splat, LLVMGetUndef(k.vt), zeros, "");
                for (int v = 0; v < V; v++) cur[o * V + v] = vfma(&k, splat, xin[v], cur[o * V + v]);
            }
        }
    for (int a = 0; a < OB * V; a++) LLVMBuildStore(k.b, cur[a], acc[a]);
    cloop_close(&k, &Li, 1);
    for (int o = 0; o < OB; o++)
        for (int v = 0; v < V; v++) {
            int64_t r = v / VR, seg = v % VR;
            LLVMValueRef co = LLVMBuildNSWAdd(k.b, ob, I(&k, o), "");
            LLVMValueRef row = LLVMBuildNSWAdd(k.b, h0, I(&k, r), "");
            LLVMValueRef idx = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, n, I(&k, Co), ""), co, ""), I(&k, H), ""), row, ""), I(&k, W), ""), I(&k, seg * L), "");
            LLVMValueRef st = LLVMBuildStore(k.b, LLVMBuildLoad2(k.b, k.vt, acc[o * V + v], ""), fptr(&k, y, idx));
            LLVMSetAlignment(st, 4);
        }
    cloop_close(&k, &Lh, R);
    cloop_close(&k, &Lo, OB);
    cloop_close(&k, &Ln, 1);
    LLVMBuildRetVoid(k.b);

    /* rt_rows_fn wrapper: args = {in, w, out} */
    char wname[300];
    snprintf(wname, sizeof wname, "%s.rows", name);
    LLVMTypeRef wp[3] = {cg->ptr, cg->i64, cg->i64};
    LLVMValueRef wf = LLVMAddFunction(cg->mod, wname, LLVMFunctionType(cg->void_, wp, 3, 0));
    LLVMSetLinkage(wf, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(k.b, LLVMAppendBasicBlockInContext(cg->ctx, wf, "entry"));
    LLVMValueRef a[5];
    for (int i = 0; i < 3; i++) {
        LLVMValueRef ix = I(&k, i);
        a[i] = LLVMBuildLoad2(k.b, cg->ptr, LLVMBuildGEP2(k.b, cg->ptr, LLVMGetParam(wf, 0), &ix, 1, ""), "");
    }
    a[3] = LLVMGetParam(wf, 1);
    a[4] = LLVMGetParam(wf, 2);
    LLVMBuildCall2(k.b, body_t, k.fn, a, 5, "");
    LLVMBuildRetVoid(k.b);
    LLVMDisposeBuilder(k.b);
    return wf;
}

/* The args array {in, w, out} in the step and the wrapper for node n (a
   conv2d or conv2d_dx with cg_conv_direct(n)); one function per shape and
   direction in a module. */
LLVMValueRef cg_conv_direct_fn(CG *cg, const Node *n, LLVMValueRef *args) {
    const Node *in = n->in[0], *w = n->in[1];
    bool tr = n->op == OP_CONV2D_DX;
    int64_t Ci = in->dim[1], Co = n->dim[1], H = n->dim[2], W = n->dim[3];
    char name[128];
    snprintf(name, sizeof name, "conv3x3.%s.%lldx%lld.%lldx%lld", tr ? "dx" : "fwd", (long long)Ci, (long long)Co,
             (long long)H, (long long)W);
    char wname[160];
    snprintf(wname, sizeof wname, "%s.rows", name);
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, wname);
    if (!f) f = build(cg, name, Ci, Co, H, W, tr);
    LLVMValueRef arr = LLVMBuildArrayAlloca(cg->b, cg->ptr, LLVMConstInt(cg->i64, 3, 0), "cargs");
    const Node *ptrs[3] = {in, w, n};
    for (int i = 0; i < 3; i++) {
        LLVMValueRef ix = LLVMConstInt(cg->i64, (unsigned long long)i, 0);
        LLVMBuildStore(cg->b, cg_ptr(cg, ptrs[i]), LLVMBuildGEP2(cg->b, cg->ptr, arr, &ix, 1, ""));
    }
    *args = arr;
    return f;
}
