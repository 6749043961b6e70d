/*
** cg_conv.c: generated direct convolutions for 3x3, stride 1, padding 1
** ("same") layers: forward, input gradient and weight gradient, on planes a
** multiple of 16 wide or narrow enough that 16 / W whole rows fill a vector
** (8x8, 4x4). Which layers qualify is decided in passes/fuse.c
** (fuse_conv_direct, which also keeps the stack buffers below 1 MiB); other
** shapes keep im2col + OpenBLAS (runtime/rt_kernels_conv.c).
** docs/DECISIONS.md has the measurements.
**
** Why: im2col writes nine copies of the input and col2im adds nine back,
** so on 16-64 channels about half the time of a BLAS convolution went to
** copying (perf on resnet32). A direct kernel reads each input vector once
** per tap from a zero-padded copy of the image that stays in L1/L2.
**
** A kernel is two functions. The variant (one per input expression) pads
** each image of [n0, n1) (rt_rows_fn: rows are images): a stored input is
** copied, an inlined one (the previous layer's BatchNorm + ReLU, see
** passes/fuse.c) is computed element by element through cg_fuse.c's CgExpr,
** so it is never stored. It then calls the core (one per shape and
** direction) on the padded copy:
**   forward / input gradient: tiles of OB output channels x V vectors of 16
**          pixels (OB*V = 16 accumulators); over input channels, the nine
**          taps unrolled: V loads of shifted input rows, OB weight
**          broadcasts, OB*V fused multiply-adds. The input gradient is the
**          same loop on dy with the weights transposed and flipped:
**          dx[c] = sum_o W[o][c][2-kh][2-kw] * dy_pad[o] shifted;
**   weight gradient: 18 vector partials (2 output channels x 9 taps) per
**          input channel, 4 vector rows per step sharing their input loads,
**          several images per call on small planes; partials summed lane by
**          lane in order at the end.
** Vectors are <16 x float>: zmm registers on AVX-512, two ymm elsewhere.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Core.h>

#include "codegen/cg_impl.h"
#include "rt_kernels.h"

bool cg_conv_direct(const Node *n) { return fuse_conv_direct(n); }

#define MAX_PTRS RT_DW_MAX_ARGS   /* the runtime copies that many argument pointers */

typedef struct CB {
    CG *cg;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    LLVMBasicBlockRef entry;
    LLVMTypeRef vt;   /* <L x float> */
} CB;

static LLVMValueRef I(CB *k, int64_t v) { return LLVMConstInt(k->cg->i64, (unsigned long long)v, 1); }

static LLVMValueRef alloca_entry(CB *k, LLVMTypeRef t, const char *name) {
    return cg_alloca_at_entry(k->cg, k->entry, t, name);
}

typedef CgLoop CLoop;

static LLVMValueRef cloop_open(CB *k, CLoop *L, LLVMValueRef lo, LLVMValueRef hi, const char *name) {
    return cg_loop_open(k->cg, k->b, k->fn, k->entry, L, lo, hi, name);
}

static void cloop_close(CB *k, CLoop *L, int64_t step) { cg_loop_close(k->cg, k->b, L, step); }

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

static void kernel_attrs(CB *k, int np) {
    CG *cg = k->cg;
    LLVMSetLinkage(k->fn, LLVMInternalLinkage);
    unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
    for (unsigned i = 1; i <= (unsigned)np; i++) LLVMAddAttributeAtIndex(k->fn, i, LLVMCreateEnumAttribute(cg->ctx, noalias, 0));
    LLVMAddAttributeAtIndex(k->fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(cg->ctx, LLVMGetEnumAttributeKindForName("noinline", 8), 0));
    if (cg->features && strstr(cg->features, "+avx512f"))
        LLVMAddAttributeAtIndex(k->fn, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(cg->ctx, "prefer-vector-width", 19, "512", 3));
}

/* The padded copy of an image the taps read. Wide planes (W >= 16):
   [C][H+2][W+2] with a zero border; a tap's vector is 16 pixels of one row.
   Narrow planes (W < 16, "packed"): three copies [3][C][H+2][W], copy kw
   holding the padded rows shifted by kw, so a tap's vector (16 / W whole
   rows) is 16 consecutive floats. Borders are zeroed once per call; the
   interior is rewritten per image. */
typedef struct Pad {
    bool packed;
    int64_t C, H, W, PW, plane, rpv;   /* rpv: rows per vector (packed) */
    LLVMValueRef buf;
} Pad;

static void pad_layout(Pad *p, int64_t C, int64_t H, int64_t W) {
    p->packed = W < 16;
    p->C = C;
    p->H = H;
    p->W = W;
    /* wide rows are a whole number of vectors long, and the buffer starts
       15 floats into a 64-byte line, so every row's first interior pixel
       (column 1) is 64-byte aligned: the kw = 1 taps never split a cache
       line (columns past W + 1 are never read) */
    p->PW = fuse_conv_pad_row(W);
    p->plane = (H + 2) * p->PW;
    p->rpv = p->packed ? 16 / W : 1;
}

static void pad_init(CB *k, Pad *p, int64_t C, int64_t H, int64_t W) {
    CG *cg = k->cg;
    pad_layout(p, C, H, W);
    int64_t n = fuse_conv_pad_floats(C, H, W);
    p->buf = alloca_entry(k, LLVMArrayType2(cg->f32, (uint64_t)n), "xpad");
    LLVMSetAlignment(p->buf, 64);
    if (!p->packed) p->buf = fptr(k, p->buf, I(k, 15));
    LLVMValueRef zero8 = LLVMConstInt(cg->i8, 0, 0), zero = LLVMConstReal(cg->f32, 0);
    CLoop Lc, Lh;
    int64_t copies = p->packed ? 3 * C : C;
    LLVMValueRef c = cloop_open(k, &Lc, I(k, 0), I(k, copies), "zc");
    LLVMValueRef base = LLVMBuildNSWMul(k->b, c, I(k, p->plane), "");
    LLVMBuildMemSet(k->b, fptr(k, p->buf, base), zero8, I(k, p->PW * 4), 4);
    LLVMBuildMemSet(k->b, fptr(k, p->buf, LLVMBuildNSWAdd(k->b, base, I(k, (H + 1) * p->PW), "")), zero8, I(k, p->PW * 4), 4);
    LLVMValueRef h = cloop_open(k, &Lh, I(k, 1), I(k, H + 1), "zh");
    LLVMValueRef row = LLVMBuildNSWAdd(k->b, base, LLVMBuildNSWMul(k->b, h, I(k, p->PW), ""), "");
    /* wide: columns 0 and W+1; packed: column 0 of copy 0 and W-1 of copy 2
       (zeroing both columns of every copy is harmless: copy 1 is rewritten) */
    LLVMBuildStore(k->b, zero, fptr(k, p->buf, row));
    LLVMBuildStore(k->b, zero, fptr(k, p->buf, LLVMBuildNSWAdd(k->b, row, I(k, p->packed ? p->PW - 1 : W + 1), "")));
    cloop_close(k, &Lh, 1);
    cloop_close(k, &Lc, 1);
}

/* Buffer channels [bc, bc + nch) = channels [c0, c0 + nch) of image n of
   the input [N][Ctot][H][W], read through e: copied when it is a stored value,
   computed element by element when it is inlined (BatchNorm + ReLU of the
   previous layer: that value is then never stored). rowtmp: W floats. */
static void pad_fill(CB *k, const Pad *p, CgExpr *e, LLVMValueRef x, LLVMValueRef n, LLVMValueRef c0, int64_t Ctot,
                     LLVMValueRef rowtmp, LLVMValueRef bc, int64_t nch) {
    int64_t C = p->C, H = p->H, W = p->W;
    bool load = cg_expr_is_load(e);
    CLoop Lc, Lh, Lw;
    LLVMValueRef c = cloop_open(k, &Lc, I(k, 0), I(k, nch), "pc");
    LLVMValueRef h = cloop_open(k, &Lh, I(k, 0), I(k, H), "ph");
    LLVMValueRef ca = LLVMBuildNSWAdd(k->b, c0, c, "");
    LLVMValueRef sc = LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, n, I(k, Ctot), ""), ca, "");
    LLVMValueRef src = LLVMBuildNSWMul(k->b, LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, sc, I(k, H), ""), h, ""), I(k, W), "");
    LLVMValueRef bch = LLVMBuildNSWAdd(k->b, bc, c, "");   /* the buffer's channel */
    LLVMValueRef row = LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, bch, I(k, p->plane), ""), LLVMBuildNSWMul(k->b, LLVMBuildNSWAdd(k->b, h, I(k, 1), ""), I(k, p->PW), ""), "");
    LLVMValueRef from = load ? fptr(k, x, src) : rowtmp;   /* the W input values of this row */
    if (!load) {
        /* wide planes: straight into the padded row; packed: into rowtmp */
        LLVMValueRef dst = p->packed ? rowtmp : fptr(k, p->buf, LLVMBuildNSWAdd(k->b, row, I(k, 1), ""));
        LLVMValueRef w = cloop_open(k, &Lw, I(k, 0), I(k, W), "pw");
        LLVMValueRef v = cg_expr_at(e, LLVMBuildNSWAdd(k->b, src, w, ""), ca);
        LLVMBuildStore(k->b, v, fptr(k, dst, w));
        cloop_close(k, &Lw, 1);
    }
    if (!p->packed) {
        if (load)
            LLVMBuildMemCpy(k->b, fptr(k, p->buf, LLVMBuildNSWAdd(k->b, row, I(k, 1), "")), 4, from, 4, I(k, W * 4));
    } else {
        int64_t copy = C * p->plane;   /* copy kw at kw * copy: x[w + kw - 1] at column w */
        LLVMBuildMemCpy(k->b, fptr(k, p->buf, LLVMBuildNSWAdd(k->b, row, I(k, 1), "")), 4, from, 4, I(k, (W - 1) * 4));
        LLVMBuildMemCpy(k->b, fptr(k, p->buf, LLVMBuildNSWAdd(k->b, row, I(k, copy), "")), 4, from, 4, I(k, W * 4));
        LLVMBuildMemCpy(k->b, fptr(k, p->buf, LLVMBuildNSWAdd(k->b, row, I(k, 2 * copy), "")), 4, fptr(k, from, I(k, 1)), 4,
                        I(k, (W - 1) * 4));
    }
    cloop_close(k, &Lh, 1);
    cloop_close(k, &Lc, 1);
}

/* The vector of tap (kh, kw) of input channel ci whose first output pixel
   is row `row`, column seg * 16. */
static LLVMValueRef pad_load(CB *k, const Pad *p, LLVMValueRef ci, LLVMValueRef row, int kh, int kw, int64_t seg) {
    LLVMValueRef off;
    if (!p->packed)
        off = LLVMBuildNSWAdd(k->b, LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, ci, I(k, p->plane), ""), LLVMBuildNSWMul(k->b, row, I(k, p->PW), ""), ""),
                              I(k, kh * p->PW + seg * 16 + kw), "");
    else
        off = LLVMBuildNSWAdd(k->b, LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, ci, I(k, p->plane), ""), LLVMBuildNSWMul(k->b, row, I(k, p->PW), ""), ""),
                              I(k, kw * p->C * p->plane + kh * p->PW), "");
    LLVMValueRef ld = LLVMBuildLoad2(k->b, k->vt, fptr(k, p->buf, off), "");
    LLVMSetAlignment(ld, 4);
    return ld;
}

/* The rt_rows_fn wrapper "<name>.rows" of a body (p0 .. p[np-1], n0, n1):
   args = {p0, ..., p[np-1]}. */
static LLVMValueRef rows_wrapper(CB *k, const char *name, LLVMTypeRef body_t, int np) {
    CG *cg = k->cg;
    char wname[300];
    snprintf(wname, sizeof wname, "%s.rows", name);
    LLVMTypeRef wp[3] = {cg->ptr, cg->i64, cg->i64};
    LLVMValueRef wf = LLVMAddFunction(cg->mod, wname, LLVMFunctionType(cg->void_, wp, 3, 0));
    LLVMSetLinkage(wf, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(k->b, LLVMAppendBasicBlockInContext(cg->ctx, wf, "entry"));
    LLVMValueRef a[MAX_PTRS + 2];
    for (int i = 0; i < np; i++) {
        LLVMValueRef ix = I(k, i);
        a[i] = LLVMBuildLoad2(k->b, cg->ptr, LLVMBuildGEP2(k->b, cg->ptr, LLVMGetParam(wf, 0), &ix, 1, ""), "");
    }
    a[np] = LLVMGetParam(wf, 1);
    a[np + 1] = LLVMGetParam(wf, 2);
    LLVMBuildCall2(k->b, body_t, k->fn, a, (unsigned)np + 2, "");
    LLVMBuildRetVoid(k->b);
    return wf;
}

/* The body's type: np pointers, then n0, n1. */
static LLVMTypeRef body_type(CG *cg, int np) {
    LLVMTypeRef ps[MAX_PTRS + 2];
    for (int i = 0; i < np; i++) ps[i] = cg->ptr;
    ps[np] = ps[np + 1] = cg->i64;
    return LLVMFunctionType(cg->void_, ps, (unsigned)np + 2, 0);
}

/* Starts the body of a variant: internal function `name` of np pointers
   (noalias) and n0, n1, the builder at its entry. Returns its type. */
static LLVMTypeRef begin_variant(CB *k, const char *name, int np) {
    CG *cg = k->cg;
    k->vt = LLVMVectorType(cg->f32, 16);
    LLVMTypeRef body_t = body_type(cg, np);
    k->fn = LLVMAddFunction(cg->mod, name, body_t);
    kernel_attrs(k, np);
    k->entry = LLVMAppendBasicBlockInContext(cg->ctx, k->fn, "entry");
    k->b = LLVMCreateBuilderInContext(cg->ctx);
    LLVMPositionBuilderAtEnd(k->b, k->entry);
    return body_t;
}

/* The tiles of one image, from its padded copy: core(xp, w, y, n). One per
   shape and direction, shared by every input expression. `in` [N, Ci, H, W]
   -> `out` [N, Co, H, W] with weights w [O][C][3][3]; transposed: Co = C,
   Ci = O, weight of (co, ci, kh, kw) = w[ci][co][2-kh][2-kw]. */
static LLVMValueRef build_core(CG *cg, const char *name, int64_t Ci, int64_t Co, int64_t H, int64_t W, bool transposed,
                               bool stats) {
    CB k = {.cg = cg};
    /* a tile: V vectors (about 4) of output rows x OB output channels */
    int64_t L = 16, VR, R, V;
    if (W >= L) {   /* VR vectors per row, R rows */
        VR = W / L;
        R = VR >= 4 ? 1 : 4 / VR;
        if (R > H) R = H;
        while (H % R) R--;
        V = R * VR;
    } else {        /* packed: a vector is 16 / W rows */
        int64_t rpv = L / W;
        VR = 0;
        V = H / rpv < 4 ? H / rpv : 4;
        while (H % (V * rpv)) V--;
        R = V * rpv;
    }
    int64_t OB = 16 / V;
    if (OB < 1) OB = 1;
    while (Co % OB) OB--;
    k.vt = LLVMVectorType(cg->f32, (unsigned)L);
    LLVMTypeRef cps[5] = {cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->ptr};
    k.fn = LLVMAddFunction(cg->mod, name, LLVMFunctionType(cg->void_, cps, stats ? 5 : 4, 0));
    kernel_attrs(&k, 3);
    k.entry = LLVMAppendBasicBlockInContext(cg->ctx, k.fn, "entry");
    k.b = LLVMCreateBuilderInContext(cg->ctx);
    LLVMPositionBuilderAtEnd(k.b, k.entry);
    Pad pd;
    pad_layout(&pd, Ci, H, W);
    pd.buf = LLVMGetParam(k.fn, 0);
    LLVMValueRef wt = LLVMGetParam(k.fn, 1), y = LLVMGetParam(k.fn, 2), n = LLVMGetParam(k.fn, 3);
    CLoop Lh, Lo, Li;
    /* statistics of this image's output planes (stats: st = double [2][Co],
       mean and sum of squared deviations per channel): per channel of the
       block, vector sums of d = y - k and d^2 over its tiles, k = the
       plane's first output (the runtime's shift, rt_shifted_sums) */
    LLVMTypeRef f64 = LLVMDoubleTypeInContext(cg->ctx);
    LLVMValueRef kslot[16], s1[16], s2[16];
    if (stats)
        for (int o = 0; o < OB; o++) {
            kslot[o] = alloca_entry(&k, cg->f32, "shift");
            s1[o] = alloca_entry(&k, k.vt, "s1");
            s2[o] = alloca_entry(&k, k.vt, "s2");
        }

    /* tiles: output channel blocks x row blocks */
    LLVMValueRef acc[16];
    for (int a = 0; a < OB * V; a++) acc[a] = alloca_entry(&k, k.vt, "acc");
    LLVMValueRef ob = cloop_open(&k, &Lo, I(&k, 0), I(&k, Co), "ob");
    if (stats)
        for (int o = 0; o < OB; o++) {
            LLVMBuildStore(k.b, LLVMConstNull(k.vt), s1[o]);
            LLVMBuildStore(k.b, LLVMConstNull(k.vt), s2[o]);
        }
    LLVMValueRef h0 = cloop_open(&k, &Lh, I(&k, 0), I(&k, H), "h0");
    for (int a = 0; a < OB * V; a++) LLVMBuildStore(k.b, LLVMConstNull(k.vt), acc[a]);
    LLVMValueRef ci = cloop_open(&k, &Li, I(&k, 0), I(&k, Ci), "ci");
    LLVMValueRef cur[16];
    for (int a = 0; a < OB * V; a++) cur[a] = LLVMBuildLoad2(k.b, k.vt, acc[a], "");
    for (int kh = 0; kh < 3; kh++)
        for (int kw = 0; kw < 3; kw++) {
            LLVMValueRef xin[16];
            for (int v = 0; v < V; v++) {
                int64_t r = VR ? v / VR : v * (L / W), seg = VR ? v % VR : 0;
                xin[v] = pad_load(&k, &pd, ci, LLVMBuildNSWAdd(k.b, h0, I(&k, r), ""), kh, kw, seg);
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
            int64_t r = VR ? v / VR : v * (L / W), seg = VR ? v % VR : 0;
            LLVMValueRef co = LLVMBuildNSWAdd(k.b, ob, I(&k, o), "");
            LLVMValueRef row = LLVMBuildNSWAdd(k.b, h0, I(&k, r), "");
            LLVMValueRef idx = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, n, I(&k, Co), ""), co, ""), I(&k, H), ""), row, ""), I(&k, W), ""), I(&k, seg * L), "");
            LLVMValueRef yv = LLVMBuildLoad2(k.b, k.vt, acc[o * V + v], "");
            LLVMValueRef st = LLVMBuildStore(k.b, yv, fptr(&k, y, idx));
            LLVMSetAlignment(st, 4);
            if (!stats) continue;
            if (v == 0) {   /* the shift: the plane's first value, taken in its first tile */
                LLVMValueRef first = LLVMBuildICmp(k.b, LLVMIntEQ, h0, I(&k, 0), "");
                LLVMValueRef kv = LLVMBuildSelect(k.b, first, LLVMBuildExtractElement(k.b, yv, I(&k, 0), ""),
                                                  LLVMBuildLoad2(k.b, cg->f32, kslot[o], ""), "");
                LLVMBuildStore(k.b, kv, kslot[o]);
            }
            LLVMValueRef ks = LLVMBuildInsertElement(k.b, LLVMGetUndef(k.vt), LLVMBuildLoad2(k.b, cg->f32, kslot[o], ""), I(&k, 0), "");
            ks = LLVMBuildShuffleVector(k.b, ks, LLVMGetUndef(k.vt), LLVMConstNull(LLVMVectorType(LLVMInt32TypeInContext(cg->ctx), (unsigned)L)), "");
            LLVMValueRef d = LLVMBuildFSub(k.b, yv, ks, "");
            LLVMBuildStore(k.b, LLVMBuildFAdd(k.b, LLVMBuildLoad2(k.b, k.vt, s1[o], ""), d, ""), s1[o]);
            LLVMBuildStore(k.b, vfma(&k, d, d, LLVMBuildLoad2(k.b, k.vt, s2[o], "")), s2[o]);
        }
    cloop_close(&k, &Lh, R);
    if (stats) {
        unsigned id = LLVMLookupIntrinsicID("llvm.vector.reduce.fadd", 23);
        LLVMValueRef rf = LLVMGetIntrinsicDeclaration(cg->mod, id, &k.vt, 1);
        LLVMTypeRef rps[2] = {cg->f32, k.vt};
        LLVMTypeRef rft = LLVMFunctionType(cg->f32, rps, 2, 0);
        LLVMValueRef stp = LLVMGetParam(k.fn, 4);
        double Q = (double)(H * W);
        for (int o = 0; o < OB; o++) {
            LLVMValueRef a1[2] = {LLVMConstReal(cg->f32, -0.0), LLVMBuildLoad2(k.b, k.vt, s1[o], "")};
            LLVMValueRef a2[2] = {LLVMConstReal(cg->f32, -0.0), LLVMBuildLoad2(k.b, k.vt, s2[o], "")};
            LLVMValueRef t1 = LLVMBuildFPExt(k.b, LLVMBuildCall2(k.b, rft, rf, a1, 2, ""), f64, "");
            LLVMValueRef t2 = LLVMBuildFPExt(k.b, LLVMBuildCall2(k.b, rft, rf, a2, 2, ""), f64, "");
            LLVMValueRef kd = LLVMBuildFPExt(k.b, LLVMBuildLoad2(k.b, cg->f32, kslot[o], ""), f64, "");
            LLVMValueRef qd = LLVMConstReal(f64, Q);
            LLVMValueRef mean = LLVMBuildFAdd(k.b, kd, LLVMBuildFDiv(k.b, t1, qd, ""), "");
            LLVMValueRef m2 = LLVMBuildFSub(k.b, t2, LLVMBuildFDiv(k.b, LLVMBuildFMul(k.b, t1, t1, ""), qd, ""), "");
            m2 = LLVMBuildSelect(k.b, LLVMBuildFCmp(k.b, LLVMRealOLT, m2, LLVMConstReal(f64, 0), ""), LLVMConstReal(f64, 0), m2, "");
            LLVMValueRef co = LLVMBuildNSWAdd(k.b, ob, I(&k, o), "");
            LLVMValueRef i1 = co, i2 = LLVMBuildNSWAdd(k.b, co, I(&k, Co), "");
            LLVMBuildStore(k.b, mean, LLVMBuildInBoundsGEP2(k.b, f64, stp, &i1, 1, ""));
            LLVMBuildStore(k.b, m2, LLVMBuildInBoundsGEP2(k.b, f64, stp, &i2, 1, ""));
        }
    }
    cloop_close(&k, &Lo, OB);
    LLVMBuildRetVoid(k.b);
    LLVMDisposeBuilder(k.b);
    return k.fn;
}

/* A direct kernel for one input expression: pads each image of [n0, n1)
   through it, then runs the shared core on it. */
static LLVMValueRef build(CG *cg, const char *name, const char *core_name, int64_t Ci, int64_t Co, int64_t H, int64_t W,
                          bool transposed, CgExpr *e, bool stats) {
    LLVMValueRef core = LLVMGetNamedFunction(cg->mod, core_name);
    if (!core) core = build_core(cg, core_name, Ci, Co, H, W, transposed, stats);
    CB k = {.cg = cg};
    /* w, out, what the input expression reads, then (stats) the per-image
       statistics, double [n1 - n0][2][Co] */
    int np = 2 + cg_expr_count(e) + (stats ? 1 : 0);
    LLVMTypeRef body_t = begin_variant(&k, name, np);
    LLVMValueRef wt = LLVMGetParam(k.fn, 0), y = LLVMGetParam(k.fn, 1), ext[MAX_PTRS];
    for (int i = 2; i < 2 + cg_expr_count(e); i++) ext[i - 2] = LLVMGetParam(k.fn, (unsigned)i);
    LLVMValueRef x = ext[0], n0 = LLVMGetParam(k.fn, (unsigned)np), n1 = LLVMGetParam(k.fn, (unsigned)np + 1);
    cg_expr_begin(e, k.b, ext);
    LLVMValueRef rowtmp = alloca_entry(&k, LLVMArrayType2(cg->f32, (uint64_t)W), "rowtmp");
    Pad pd;
    pad_init(&k, &pd, Ci, H, W);
    CLoop Ln;
    LLVMValueRef n = cloop_open(&k, &Ln, n0, n1, "n");
    pad_fill(&k, &pd, e, x, n, I(&k, 0), Ci, rowtmp, I(&k, 0), Ci);
    LLVMTypeRef cps[5] = {cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->ptr};
    LLVMValueRef ca[5] = {pd.buf, wt, y, n, NULL};
    if (stats) {
        LLVMValueRef off = LLVMBuildNSWMul(k.b, LLVMBuildNSWSub(k.b, n, n0, ""), I(&k, 2 * Co), "");
        ca[4] = LLVMBuildInBoundsGEP2(k.b, LLVMDoubleTypeInContext(cg->ctx), LLVMGetParam(k.fn, (unsigned)np - 1), &off, 1, "");
    }
    LLVMBuildCall2(k.b, LLVMFunctionType(cg->void_, cps, stats ? 5 : 4, 0), core, ca, stats ? 5 : 4, "");
    cloop_close(&k, &Ln, 1);
    LLVMBuildRetVoid(k.b);
    LLVMValueRef wf = rows_wrapper(&k, name, body_t, np);
    LLVMDisposeBuilder(k.b);
    return wf;
}

/* Input channels per block of the weight gradient: the vector partials
   (O x block x 9) stay within 256 KB, in L2. */
static int64_t dw_block(int64_t C, int64_t O) {
    int64_t cblk = C;
    while (cblk > 1 && (O * cblk * 9 * 16 * 4 > 262144 || C % cblk)) cblk--;
    return cblk;
}

/* Images per call of the weight gradient's core: small planes take several,
   so that the 18 vector partials loaded and stored per (output pair, input
   channel) serve at least about 64 vectors of the plane. */
static int64_t dw_images(int64_t H, int64_t W) {
    int64_t vecs = H * W / 16, nb = vecs >= 64 ? 1 : 64 / (vecs ? vecs : 1);
    return nb > 8 ? 8 : nb;
}

/* The weight gradient over images [n0, n1), written (not added) to out
   [O][C][3][3]. The core adds the contribution of images [n, n + nb) of one
   input channel block to the vector partials, from their padded copies
   (slot j of the buffer holds image n + j): core(xp, dy, accv, n, nb). Per
   pair of output channels and input channel, 18 vector accumulators (2 x 9
   taps) run over the planes. It is shared by every input expression of the
   shape. The partials live in a [O * block * 9] array across images and are
   summed lane by lane in order at the end (llvm.vector.reduce.fadd without
   reassociation: the same bits whatever the vector unit). */
static LLVMValueRef build_dw_core(CG *cg, const char *name, int64_t C, int64_t O, int64_t H, int64_t W) {
    CB k = {.cg = cg};
    int64_t L = 16, OB = O % 2 ? 1 : 2;
    int64_t nseg = W >= L ? W / L : 1, hstep = W >= L ? 1 : L / W;   /* vectors per row step, rows per step */
    k.vt = LLVMVectorType(cg->f32, (unsigned)L);
    int64_t cblk = dw_block(C, O), NB = dw_images(H, W);
    LLVMTypeRef cps[5] = {cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->i64};
    k.fn = LLVMAddFunction(cg->mod, name, LLVMFunctionType(cg->void_, cps, 5, 0));
    kernel_attrs(&k, 3);
    k.entry = LLVMAppendBasicBlockInContext(cg->ctx, k.fn, "entry");
    k.b = LLVMCreateBuilderInContext(cg->ctx);
    LLVMPositionBuilderAtEnd(k.b, k.entry);
    Pad pd;
    pad_layout(&pd, NB * cblk, H, W);
    pd.buf = LLVMGetParam(k.fn, 0);
    LLVMValueRef dy = LLVMGetParam(k.fn, 1), accv = LLVMGetParam(k.fn, 2), nbase = LLVMGetParam(k.fn, 3);
    LLVMValueRef nb = LLVMGetParam(k.fn, 4);
    CLoop Lo, Lc, Lh, Lj;
    LLVMValueRef o0 = cloop_open(&k, &Lo, I(&k, 0), I(&k, O), "o0");
    LLVMValueRef c = cloop_open(&k, &Lc, I(&k, 0), I(&k, cblk), "c");   /* within the block */
    LLVMValueRef slot[2][9], cur[2][9];
    for (int i = 0; i < OB; i++)
        for (int t = 0; t < 9; t++) {
            /* accv[((o0 + i) * cblk + c) * 9 + t] */
            LLVMValueRef ix = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, o0, I(&k, i), ""), I(&k, cblk), ""), c, ""), I(&k, 9), ""), I(&k, t), "");
            slot[i][t] = LLVMBuildInBoundsGEP2(k.b, k.vt, accv, &ix, 1, "");
            cur[i][t] = LLVMBuildLoad2(k.b, k.vt, slot[i][t], "");
        }
    /* the plane, carried through allocas so the h loop keeps them in registers */
    LLVMValueRef car[2][9];
    for (int i = 0; i < OB; i++)
        for (int t = 0; t < 9; t++) {
            car[i][t] = alloca_entry(&k, k.vt, "a");
            LLVMBuildStore(k.b, cur[i][t], car[i][t]);
        }
    /* RB vector rows per step share their input vectors: the tap (r, kh)
       reads the vector starting at row h + r * hstep + kh, so (r, kh) pairs
       with the same start load it once (wide planes: 3 (RB + 2) x loads
       and 2 RB dy loads for 18 RB FMAs instead of 11 loads per 18) */
    int64_t RB = 4;
    while (H % (RB * hstep)) RB--;
    LLVMValueRef jj = cloop_open(&k, &Lj, I(&k, 0), nb, "j");
    LLVMValueRef n = LLVMBuildNSWAdd(k.b, nbase, jj, "n");
    LLVMValueRef bch = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, jj, I(&k, cblk), ""), c, "");   /* slot j, channel c */
    LLVMValueRef h = cloop_open(&k, &Lh, I(&k, 0), I(&k, H), "h");
    for (int i = 0; i < OB; i++)
        for (int t = 0; t < 9; t++) cur[i][t] = LLVMBuildLoad2(k.b, k.vt, car[i][t], "");
    for (int64_t seg = 0; seg < nseg; seg++) {
        LLVMValueRef d[2][4];
        for (int64_t r = 0; r < RB; r++)
            for (int i = 0; i < OB; i++) {
                /* dy[((n * O + o0 + i) * H + h + r * hstep) * W + seg * L] */
                LLVMValueRef row = LLVMBuildNSWAdd(k.b, h, I(&k, r * hstep), "");
                LLVMValueRef ix = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, n, I(&k, O), ""), LLVMBuildNSWAdd(k.b, o0, I(&k, i), ""), ""), I(&k, H), ""), row, ""), I(&k, W), ""), I(&k, seg * L), "");
                d[i][r] = LLVMBuildLoad2(k.b, k.vt, fptr(&k, dy, ix), "");
                LLVMSetAlignment(d[i][r], 4);
            }
        int64_t last = (RB - 1) * hstep + 2;   /* start rows 0 .. last, relative to h */
        for (int64_t st = 0; st <= last; st++)
            for (int kw = 0; kw < 3; kw++) {
                LLVMValueRef ld = NULL;
                for (int64_t r = 0; r < RB; r++)
                    for (int kh = 0; kh < 3; kh++) {
                        if (r * hstep + kh != st) continue;
                        if (!ld) ld = pad_load(&k, &pd, bch, LLVMBuildNSWAdd(k.b, h, I(&k, r * hstep), ""), kh, kw, seg);
                        for (int i = 0; i < OB; i++) cur[i][kh * 3 + kw] = vfma(&k, d[i][r], ld, cur[i][kh * 3 + kw]);
                    }
            }
    }
    for (int i = 0; i < OB; i++)
        for (int t = 0; t < 9; t++) LLVMBuildStore(k.b, cur[i][t], car[i][t]);
    cloop_close(&k, &Lh, hstep * RB);
    cloop_close(&k, &Lj, 1);
    for (int i = 0; i < OB; i++)
        for (int t = 0; t < 9; t++) LLVMBuildStore(k.b, LLVMBuildLoad2(k.b, k.vt, car[i][t], ""), slot[i][t]);
    cloop_close(&k, &Lc, 1);
    cloop_close(&k, &Lo, OB);
    LLVMBuildRetVoid(k.b);
    LLVMDisposeBuilder(k.b);
    return k.fn;
}

static LLVMValueRef build_dw(CG *cg, const char *name, const char *core_name, int64_t C, int64_t O, int64_t H, int64_t W,
                             CgExpr *e) {
    LLVMValueRef core = LLVMGetNamedFunction(cg->mod, core_name);
    if (!core) core = build_dw_core(cg, core_name, C, O, H, W);
    CB k = {.cg = cg};
    int64_t L = 16;
    int np = 2 + cg_expr_count(e);   /* dy, out, then what the x expression reads */
    LLVMTypeRef body_t = begin_variant(&k, name, np);
    LLVMValueRef dy = LLVMGetParam(k.fn, 0), out = LLVMGetParam(k.fn, 1), ext[MAX_PTRS];
    for (int i = 2; i < np; i++) ext[i - 2] = LLVMGetParam(k.fn, (unsigned)i);
    LLVMValueRef x = ext[0], n0 = LLVMGetParam(k.fn, (unsigned)np), n1 = LLVMGetParam(k.fn, (unsigned)np + 1);
    cg_expr_begin(e, k.b, ext);
    LLVMValueRef rowtmp = alloca_entry(&k, LLVMArrayType2(cg->f32, (uint64_t)W), "rowtmp");
    /* input channels in blocks whose vector partials (O x cblk x 9) stay in L2 */
    int64_t cblk = dw_block(C, O), NB = dw_images(H, W);
    Pad pd;
    pad_init(&k, &pd, NB * cblk, H, W);
    int64_t nacc = O * cblk * 9;
    LLVMValueRef accv = alloca_entry(&k, LLVMArrayType2(k.vt, (uint64_t)nacc), "dwacc");
    LLVMSetAlignment(accv, 64);
    CLoop Lb, Ln;
    LLVMValueRef cb0 = cloop_open(&k, &Lb, I(&k, 0), I(&k, C), "cb0");
    LLVMBuildMemSet(k.b, accv, LLVMConstInt(cg->i8, 0, 0), I(&k, nacc * L * 4), 64);
    LLVMValueRef n = cloop_open(&k, &Ln, n0, n1, "n");
    /* nb = min(NB, n1 - n) images into the buffer's slots */
    LLVMValueRef left = LLVMBuildNSWSub(k.b, n1, n, "");
    LLVMValueRef nb = LLVMBuildSelect(k.b, LLVMBuildICmp(k.b, LLVMIntSLT, left, I(&k, NB), ""), left, I(&k, NB), "nb");
    CLoop Ls;
    LLVMValueRef jj = cloop_open(&k, &Ls, I(&k, 0), nb, "slot");
    pad_fill(&k, &pd, e, x, LLVMBuildNSWAdd(k.b, n, jj, ""), cb0, C, rowtmp, LLVMBuildNSWMul(k.b, jj, I(&k, cblk), ""), cblk);
    cloop_close(&k, &Ls, 1);
    LLVMTypeRef cps[5] = {cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->i64};
    LLVMValueRef ca[5] = {pd.buf, dy, accv, n, nb};
    LLVMBuildCall2(k.b, LLVMFunctionType(cg->void_, cps, 5, 0), core, ca, 5, "");
    cloop_close(&k, &Ln, NB);
    /* out[o][cb0 + c][t] = the lanes of accv[(o * cblk + c) * 9 + t] summed in order */
    CLoop Lj;
    LLVMValueRef j = cloop_open(&k, &Lj, I(&k, 0), I(&k, nacc), "j");
    LLVMValueRef v = LLVMBuildLoad2(k.b, k.vt, LLVMBuildInBoundsGEP2(k.b, k.vt, accv, &j, 1, ""), "");
    unsigned id = LLVMLookupIntrinsicID("llvm.vector.reduce.fadd", 23);
    LLVMValueRef rf = LLVMGetIntrinsicDeclaration(cg->mod, id, &k.vt, 1);
    LLVMTypeRef rps[2] = {cg->f32, k.vt};
    LLVMValueRef rargs[2] = {LLVMConstReal(cg->f32, -0.0), v};
    LLVMValueRef sum = LLVMBuildCall2(k.b, LLVMFunctionType(cg->f32, rps, 2, 0), rf, rargs, 2, "");
    LLVMValueRef o = LLVMBuildSDiv(k.b, j, I(&k, cblk * 9), ""), rest = LLVMBuildSRem(k.b, j, I(&k, cblk * 9), "");
    LLVMValueRef oix = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, o, I(&k, C), ""), cb0, ""), I(&k, 9), ""), rest, "");
    LLVMBuildStore(k.b, sum, fptr(&k, out, oix));
    cloop_close(&k, &Lj, 1);
    cloop_close(&k, &Lb, cblk);
    LLVMBuildRetVoid(k.b);
    LLVMValueRef wf = rows_wrapper(&k, name, body_t, np);
    LLVMDisposeBuilder(k.b);
    return wf;
}

/* The args array {w or dy, out, what the input expression reads...} built
   in the step, and the wrapper for node n (a conv2d, conv2d_dx or
   conv2d_dw with cg_conv_direct(n)); one function per shape, direction and
   input expression in a module. *nargs: the array's length. */
LLVMValueRef cg_conv_direct_fn(CG *cg, const Node *n, LLVMValueRef *args, int *nargs, bool stats) {
    bool tr = n->op == OP_CONV2D_DX, dw = n->op == OP_CONV2D_DW;
    RRC_ASSERT(!stats || n->op == OP_CONV2D);
    const Node *in = dw ? n->in[1] : n->in[0];   /* what is padded: x, or dy for dx */
    int64_t Ci = in->dim[1], Co = dw ? n->dim[0] : n->dim[1], H = in->dim[2], W = in->dim[3];
    CgExpr *e = cg_expr_new(cg, in);
    RRC_ASSERT(cg_expr_count(e) >= 1 && cg_expr_count(e) <= MAX_PTRS - 3);
    /* the input expression's structure, hashed into the name */
    uint64_t hsh = 0xcbf29ce484222325ULL;
    for (const char *p = cg_expr_sig(e); *p; p++) hsh = (hsh ^ (unsigned char)*p) * 0x100000001b3ULL;
    char name[160];
    snprintf(name, sizeof name, "conv3x3.%s.%lldx%lld.%lldx%lld.%s%016llx", dw ? "dw" : tr ? "dx" : stats ? "fwdstats" : "fwd",
             (long long)Ci, (long long)Co, (long long)H, (long long)W, cg_expr_is_load(e) ? "x" : "fused",
             (unsigned long long)hsh);
    char wname[200];
    snprintf(wname, sizeof wname, "%s.rows", name);
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, wname);
    char core[96];
    snprintf(core, sizeof core, "conv3x3.%s.%lldx%lld.%lldx%lld.core", dw ? "dw" : tr ? "dx" : stats ? "fwdstats" : "fwd",
             (long long)Ci, (long long)Co, (long long)H, (long long)W);
    if (!f) f = dw ? build_dw(cg, name, core, Ci, Co, H, W, e) : build(cg, name, core, Ci, Co, H, W, tr, e, stats);
    int np = 2 + cg_expr_count(e);
    LLVMValueRef arr = LLVMBuildArrayAlloca(cg->b, cg->ptr, LLVMConstInt(cg->i64, (unsigned long long)np + 1, 0), "cargs");
    for (int i = 0; i < np; i++) {
        const Node *v = i == 0 ? (dw ? n->in[0] : n->in[1]) : i == 1 ? n : cg_expr_value(e, i - 2);
        LLVMValueRef ix = LLVMConstInt(cg->i64, (unsigned long long)i, 0);
        LLVMBuildStore(cg->b, cg_ptr(cg, v), LLVMBuildGEP2(cg->b, cg->ptr, arr, &ix, 1, ""));
    }
    if (stats) {   /* the statistics buffer: each thread's own, set by the runtime (rt_k_conv2d_stats) */
        LLVMValueRef ix = LLVMConstInt(cg->i64, (unsigned long long)np, 0);
        LLVMBuildStore(cg->b, LLVMConstNull(cg->ptr), LLVMBuildGEP2(cg->b, cg->ptr, arr, &ix, 1, ""));
        np++;
    }
    cg_expr_free(e);
    *args = arr;
    if (nargs) *nargs = np;
    return f;
}
