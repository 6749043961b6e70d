/*
** cg_conv.c: generated direct convolutions: 3x3 with padding 1 at stride 1
** or 2, and 1x1 without padding at stride 2 (ResNet's projection
** shortcuts); forward, input gradient and weight gradient, on output planes
** a multiple of L wide or narrow enough that L / W whole rows fill a
** vector (8x8 and 4x4 when L = 16), L being the target's f32 lanes. Which
** layers qualify is cg_conv_direct's rule (below; pass_fuse asks it through
** cg_caps and records the answer in Node.direct), which also keeps the stack
** buffers below 1 MiB; other
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
**   forward / stride-1 input gradient: tiles of OB output channels x V
**          vectors of L pixels (OB*V accumulators: tile_accs); over input
**          channels, the taps unrolled: V loads of input rows, OB weight
**          broadcasts, OB*V fused multiply-adds. The stride-1 input
**          gradient is the same loop on dy with the weights transposed and
**          flipped: dx[c] = sum_o W[o][c][2-kh][2-kw] * dy_pad[o] shifted.
**          At stride 2 the padded copy is split by column and row parity
**          (Pad), so a tap still reads whole output rows. A stride-1 input
**          gradient with an epilogue (KERNEL_DX_EPI: one core per
**          epilogue) stores, instead of each tile, the elementwise value
**          computed from it (cg_epi_at: the residual ReLU backward) and may
**          add up that value's BatchNorm sums per image;
**   stride-2 input gradient: each of the four parities of dx's rows and
**          columns is a small convolution of dy; a tile keeps all four
**          and interleaves them into dx rows when it stores;
**   weight gradient: OB x 9 vector partials (OB x 1 for 1x1) per input
**          channel, as many as the registers hold (dw_ob), 4 vector rows
**          per step sharing their input loads,
**          several images per call on small planes; partials summed lane by
**          lane in order at the end.
** A gradient whose dy is a BatchNorm backward applied in its readers
** (Kernel.apply_in: never stored) calls that kernel's second phase for the
** images of each call into a buffer on its stack (Stage), which the core
** then reads as a stored dy.
** Stride-1 3x3 forwards and input gradients with 8 or more input channels
** use Winograd F(2x2, 3x3) instead where their planes fit its vectors
** (build_wino, below; cg_conv_uses_winograd says which).
** Vectors are <L x float>, the target's registers (ir/target.h): 16 lanes
** and 32 registers on AVX-512, 8 and 16 on AVX2, 4 and 32 on NEON. Tiles,
** register blocks, shuffles and cache budgets are computed from it.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Core.h>

#include "codegen/cg_conv.h"
#include "codegen/cg_fuse.h"
#include "rt_kernels.h"

/* The padded copy a direct kernel keeps on its thread's stack, per channel:
   `copies` planes of `rows` x `rowlen` floats, and `slack` floats for the
   whole buffer (alignment). Of x (forward, weight gradient) or of dy (input
   gradient, dy = true) for a K x K convolution at stride S on H x W input
   planes. */
typedef struct ConvPad {
    int64_t copies, rows, rowlen, slack;
} ConvPad;

/* ---- which convolutions get a direct kernel (asked by pass_fuse through
   cg_caps): 3x3 padding 1 at stride 1 or 2, 1x1 without padding at stride
   2, on output planes a multiple of L (the target's lanes) wide or L/W
   whole rows to a vector ---- */
static bool direct_shape(int64_t H, int64_t W, int64_t L) {
    if (W >= L) return W % L == 0 && H % 2 == 0;
    return W >= 4 && L % W == 0 && H % (L / W) == 0;   /* packed: L / W rows per vector */
}

/* K x K, stride S, padding P from H x W to Ho x Wo. Stride 2 needs even
   planes: the taps then read whole rows of the even/odd column copies. */
static bool direct_geom(int64_t K, int64_t S, int64_t P, int64_t H, int64_t W, int64_t Ho, int64_t Wo, int64_t L) {
    if (S == 1) return K == 3 && P == 1 && Ho == H && Wo == W && direct_shape(H, W, L);
    if (S == 2)
        return ((K == 3 && P == 1) || (K == 1 && P == 0)) && H == 2 * Ho && W == 2 * Wo && direct_shape(Ho, Wo, L);
    return false;
}

/* The kernels keep a padded image (and the weight gradient its vector
   partials) on the stack of the thread running them: a limit keeps large
   images (ImageNet-sized planes) on im2col + BLAS rather than overflowing a
   pool thread's stack. */
#define DIRECT_STACK_MAX (1 << 20)

/* Stride 1: narrow planes (W < L) keep three copies of the padded rows, W
   long, shifted by the tap's column; wide rows are a whole number of
   vectors long, with a vector of slack to align their interior. Stride 2
   (forward and weight gradient): a copy per tap column kw and row parity,
   copy (kw, p) row r holding the padded input's row 2r + p at columns kw,
   kw + 2, ...: a tap's output row is then a contiguous row of a copy.
   Stride-2 input gradient: dy and dy shifted left by one column, with a
   zero row below. */
static ConvPad conv_pad(int64_t H, int64_t W, int64_t K, int64_t S, bool dy, int lanes) {
    int64_t L = lanes;
    if (S == 1) {
        if (W < L) return (ConvPad){3, H + 2, W, 0};
        return (ConvPad){1, H + 2, (W + 2 + L - 1) / L * L, L};
    }
    int64_t extra = K > 1 ? 1 : 0;
    if (dy) return (ConvPad){K > 1 ? 2 : 1, H / 2 + extra, W / 2, 0};
    return (ConvPad){K * (K > 1 ? 2 : 1), H / 2 + extra, W / 2, 0};
}

static int64_t conv_pad_floats(ConvPad p, int64_t C) { return p.copies * C * p.rows * p.rowlen + p.slack; }

/* ps: channels of the padded copy; O x K x K vector partials of the weight
   gradient for at least one channel */
static bool fits_stack(int64_t C, int64_t O, int64_t H, int64_t W, int64_t K, int64_t S, bool dy, int L) {
    int64_t dwacc = O * K * K * L * 4;
    return conv_pad_floats(conv_pad(H, W, K, S, dy, L), C) * 4 <= DIRECT_STACK_MAX && dwacc <= DIRECT_STACK_MAX;
}

bool cg_conv_direct(const Node *n, const Target *t) {
    const Node *x, *dy, *w;
    int L = t->lanes;
    switch (n->op) {
    case OP_CONV2D:      /* y [N,O,Ho,Wo] = conv(x [N,C,H,W], w [O,C,K,K]) */
        x = n->in[0], w = n->in[1];
        return w->dim[2] == w->dim[3] &&
               direct_geom(w->dim[2], n->ia[0], n->ia[1], x->dim[2], x->dim[3], n->dim[2], n->dim[3], L) &&
               fits_stack(x->dim[1], n->dim[1], x->dim[2], x->dim[3], w->dim[2], n->ia[0], false, L);
    case OP_CONV2D_DX:   /* dx [N,C,H,W] from dy [N,O,Ho,Wo] and w: pads dy */
        dy = n->in[0], w = n->in[1];
        return w->dim[2] == w->dim[3] &&
               direct_geom(w->dim[2], n->ia[0], n->ia[1], n->dim[2], n->dim[3], dy->dim[2], dy->dim[3], L) &&
               fits_stack(dy->dim[1], n->dim[1], n->dim[2], n->dim[3], w->dim[2], n->ia[0], true, L);
    case OP_CONV2D_DW:   /* dw [O,C,K,K] from dy [N,O,Ho,Wo] and x [N,C,H,W] */
        dy = n->in[0], x = n->in[1];
        return n->dim[2] == n->dim[3] &&
               direct_geom(n->dim[2], n->ia[0], n->ia[1], x->dim[2], x->dim[3], dy->dim[2], dy->dim[3], L) &&
               fits_stack(x->dim[1], n->dim[0], x->dim[2], x->dim[3], n->dim[2], n->ia[0], false, L);
    default: return false;
    }
}

#define MAX_PTRS RT_DW_MAX_ARGS   /* the runtime copies that many argument pointers */

typedef struct CB {
    CG *cg;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    LLVMBasicBlockRef entry;
    LLVMTypeRef vt;   /* <L x float> */
    int64_t L;        /* the target's f32 lanes */
} CB;

/* Accumulators a register tile of V input vectors may keep: enough
   multiply-adds in flight to cover the FMA latency on every pipe twice,
   and no more than the registers left beside the V inputs and one
   broadcast weight. */
static int64_t tile_accs(const Target *t, int64_t V) {
    int64_t want = 2 * (int64_t)t->fma_units * t->fma_latency, room = t->vregs - V - 1;
    return want < room ? want : room;
}

/* A builder of functions for cg's target: vectors of its lanes. */
static CB cb_of(CG *cg) {
    CB k = {.cg = cg, .L = cg->t->lanes};
    k.vt = LLVMVectorType(cg->f32, (unsigned)k.L);
    return k;
}

/* Floats per cache line: the unit of prefetches. */
static int64_t line_floats(const Target *t) { return t->line / 4; }

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
    /* without FMA instructions llvm.fma would be a call of fmaf per lane */
    if (!k->cg->t->fma) return LLVMBuildFAdd(k->b, LLVMBuildFMul(k->b, a, b, ""), c, "");
    unsigned id = LLVMLookupIntrinsicID("llvm.fma", 8);
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(k->cg->mod, id, &k->vt, 1);
    LLVMTypeRef ps[3] = {k->vt, k->vt, k->vt};
    LLVMValueRef args[3] = {a, b, c};
    return LLVMBuildCall2(k->b, LLVMFunctionType(k->vt, ps, 3, 0), f, args, 3, "");
}

/* Lanes [first, first + n) of vector v summed in order
   (llvm.vector.reduce.fadd without reassociation: the same bits whatever
   the vector unit), as a float; lanes_sum: all of them. */
static LLVMValueRef lanes_sum_part(CB *k, LLVMValueRef v, int64_t first, int64_t n) {
    CG *cg = k->cg;
    LLVMTypeRef pt = k->vt;
    if (first != 0 || n != k->L) {
        LLVMTypeRef i32 = LLVMInt32TypeInContext(cg->ctx);
        LLVMValueRef m[CG_MAX_LANES];
        for (int64_t l = 0; l < n; l++) m[l] = LLVMConstInt(i32, (unsigned long long)(first + l), 0);
        v = LLVMBuildShuffleVector(k->b, v, LLVMGetUndef(k->vt), LLVMConstVector(m, (unsigned)n), "");
        pt = LLVMVectorType(cg->f32, (unsigned)n);
    }
    unsigned id = LLVMLookupIntrinsicID("llvm.vector.reduce.fadd", 23);
    LLVMValueRef rf = LLVMGetIntrinsicDeclaration(cg->mod, id, &pt, 1);
    LLVMTypeRef rps[2] = {cg->f32, pt};
    LLVMValueRef args[2] = {LLVMConstReal(cg->f32, -0.0), v};
    return LLVMBuildCall2(k->b, LLVMFunctionType(cg->f32, rps, 2, 0), rf, args, 2, "");
}

static LLVMValueRef lanes_sum(CB *k, LLVMValueRef v) { return lanes_sum_part(k, v, 0, k->L); }

/* An image's BatchNorm statistics of a channel from its shifted sums (t1,
   t2: double sums of d = y - shift and d^2 over the Q values; kd: the
   shift): mean at st[i1], sum of squared deviations (clamped at 0) at
   st[i2]. The direct core's and Winograd's. */
static void stats_store(CB *k, LLVMValueRef t1, LLVMValueRef t2, LLVMValueRef kd, double Q, LLVMValueRef st,
                        LLVMValueRef i1, LLVMValueRef i2) {
    LLVMBuilderRef b = k->b;
    LLVMTypeRef f64 = LLVMDoubleTypeInContext(k->cg->ctx);
    LLVMValueRef qd = LLVMConstReal(f64, Q), zero = LLVMConstReal(f64, 0);
    LLVMValueRef mean = LLVMBuildFAdd(b, kd, LLVMBuildFDiv(b, t1, qd, ""), "");
    LLVMValueRef m2 = LLVMBuildFSub(b, t2, LLVMBuildFDiv(b, LLVMBuildFMul(b, t1, t1, ""), qd, ""), "");
    m2 = LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, m2, zero, ""), zero, m2, "");
    LLVMBuildStore(b, mean, LLVMBuildInBoundsGEP2(b, f64, st, &i1, 1, ""));
    LLVMBuildStore(b, m2, LLVMBuildInBoundsGEP2(b, f64, st, &i2, 1, ""));
}

/* A direct convolution: C input and O output channels, H x W input and
   Ho x Wo output planes, K x K taps at stride S with padding P. */
typedef struct Geo {
    int64_t C, O, H, W, Ho, Wo, K, S, P;
} Geo;

static Geo geo_of(const Node *n) {
    const Node *x, *y;   /* the convolution's input and output shapes */
    int64_t K;
    switch (n->op) {
    case OP_CONV2D: x = n->in[0], y = n, K = n->in[1]->dim[2]; break;
    case OP_CONV2D_DX: x = n, y = n->in[0], K = n->in[1]->dim[2]; break;
    default: x = n->in[1], y = n->in[0], K = n->dim[2]; break;   /* conv2d_dw */
    }
    return (Geo){x->dim[1], y->dim[1], x->dim[2], x->dim[3], y->dim[2], y->dim[3], K, n->ia[0], n->ia[1]};
}

/* The padded copy of an image the taps read (conv_pad has the rule):
   `copies` planes per channel of `rows` x `rowlen` floats, copy q of
   channel c at (q * C + c) * plane.
   - stride 1, wide planes (W >= L): one zero-bordered copy [C][H+2][PW]; a
     tap's vector is L pixels of one row, shifted by the tap's column;
   - stride 1, narrow planes ("packed"): copy kw holds the padded rows W
     long shifted by kw, so a tap's vector (L / W whole rows) is L
     consecutive floats;
   - stride 2, forward and weight gradient: copy (kw, p) row r holds the
     padded input's row 2r + p at columns kw, kw + 2, ...: tap (kh, kw) of
     output row i is row i + kh / 2 of copy (kw, kh % 2), whole output rows
     in a row (so packed planes work as at stride 1);
   - stride 2, input gradient (dy): dy and dy shifted left by one column,
     each with a zero row below and zeros past the right edge.
   Stride 1 zeroes the border once per call and rewrites the interior per
   image; stride 2 zeroes the whole buffer once per call, and the entries
   that are padding are never written. */
typedef struct Pad {
    const Geo *g;
    bool dy;              /* dy of an input gradient */
    int64_t C;            /* channels in the buffer */
    int64_t SH, SW;       /* the planes copied in: x, or dy */
    int64_t copies, rows, rowlen, plane, np;   /* np: row parities of a stride-2 input copy */
    int64_t L;            /* lanes */
    LLVMValueRef buf;
} Pad;

static void pad_layout(Pad *p, const Geo *g, bool dy, int64_t C, int64_t L) {
    ConvPad l = conv_pad(g->H, g->W, g->K, g->S, dy, (int)L);
    p->g = g;
    p->L = L;
    p->dy = dy;
    p->C = C;
    p->SH = dy ? g->Ho : g->H;
    p->SW = dy ? g->Wo : g->W;
    p->copies = l.copies;
    p->rows = l.rows;
    p->rowlen = l.rowlen;
    p->plane = l.rows * l.rowlen;
    p->np = g->K > 1 ? 2 : 1;
}

/* wide stride-1 copy: rows start L - 1 floats into a vector, so every
   row's first interior pixel (column 1) is vector-aligned: the kw = 1
   taps never split a cache line (columns past W + 1 are never read) */
static bool pad_wide1(const Pad *p) { return p->g->S == 1 && p->copies == 1; }

static void pad_init(CB *k, Pad *p, const Geo *g, bool dy, int64_t C) {
    CG *cg = k->cg;
    pad_layout(p, g, dy, C, k->L);
    int64_t n = conv_pad_floats(conv_pad(g->H, g->W, g->K, g->S, dy, (int)k->L), C);
    p->buf = alloca_entry(k, LLVMArrayType2(cg->f32, (uint64_t)n), "xpad");
    LLVMSetAlignment(p->buf, 64);
    LLVMValueRef zero8 = LLVMConstInt(cg->i8, 0, 0), zero = LLVMConstReal(cg->f32, 0);
    if (g->S != 1) {
        LLVMBuildMemSet(k->b, p->buf, zero8, I(k, n * 4), 64);
        return;
    }
    if (pad_wide1(p)) p->buf = fptr(k, p->buf, I(k, k->L - 1));
    int64_t H = p->SH, W = p->SW;
    CLoop Lc, Lh;
    LLVMValueRef c = cloop_open(k, &Lc, I(k, 0), I(k, p->copies * C), "zc");
    LLVMValueRef base = LLVMBuildNSWMul(k->b, c, I(k, p->plane), "");
    LLVMBuildMemSet(k->b, fptr(k, p->buf, base), zero8, I(k, p->rowlen * 4), 4);
    LLVMBuildMemSet(k->b, fptr(k, p->buf, LLVMBuildNSWAdd(k->b, base, I(k, (H + 1) * p->rowlen), "")), zero8, I(k, p->rowlen * 4), 4);
    LLVMValueRef h = cloop_open(k, &Lh, I(k, 1), I(k, H + 1), "zh");
    LLVMValueRef row = LLVMBuildNSWAdd(k->b, base, LLVMBuildNSWMul(k->b, h, I(k, p->rowlen), ""), "");
    /* wide: columns 0 and W+1; packed: column 0 of copy 0 and W-1 of copy 2
       (zeroing both columns of every copy is harmless: copy 1 is rewritten) */
    LLVMBuildStore(k->b, zero, fptr(k, p->buf, row));
    LLVMBuildStore(k->b, zero, fptr(k, p->buf, LLVMBuildNSWAdd(k->b, row, I(k, pad_wide1(p) ? W + 1 : p->rowlen - 1), "")));
    cloop_close(k, &Lh, 1);
    cloop_close(k, &Lc, 1);
}

/* Offset of row `row`, column `col` of copy q of buffer channel ch. */
static LLVMValueRef pad_off(CB *k, const Pad *p, LLVMValueRef ch, LLVMValueRef row, int64_t q, LLVMValueRef col) {
    LLVMValueRef o = LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, ch, I(k, p->plane), ""), LLVMBuildNSWMul(k->b, row, I(k, p->rowlen), ""), "");
    return LLVMBuildNSWAdd(k->b, LLVMBuildNSWAdd(k->b, o, I(k, q * p->C * p->plane), ""), col, "");
}

/* Copies `len` floats from[j * step + first], j < len, to dst (a plain
   copy when step is 1). */
static void copy_strided(CB *k, LLVMValueRef dst, LLVMValueRef from, int64_t first, int64_t step, int64_t len) {
    if (len <= 0) return;
    if (step == 1) {
        LLVMBuildMemCpy(k->b, dst, 4, fptr(k, from, I(k, first)), 4, I(k, len * 4));
        return;
    }
    CLoop Lj;
    LLVMValueRef j = cloop_open(k, &Lj, I(k, 0), I(k, len), "sj");
    LLVMValueRef v = LLVMBuildLoad2(k->b, k->cg->f32, fptr(k, from, LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, j, I(k, step), ""), I(k, first), "")), "");
    LLVMBuildStore(k->b, v, fptr(k, dst, j));
    cloop_close(k, &Lj, 1);
}

/* Writes one source row (`from`: its SW values; source row r) into the
   copies. */
static void pad_row(CB *k, const Pad *p, LLVMValueRef bch, LLVMValueRef r, LLVMValueRef from) {
    const Geo *g = p->g;
    int64_t W = p->SW;
    if (g->S == 1) {
        LLVMValueRef row = LLVMBuildNSWAdd(k->b, r, I(k, 1), "");
        if (pad_wide1(p)) {
            LLVMBuildMemCpy(k->b, fptr(k, p->buf, pad_off(k, p, bch, row, 0, I(k, 1))), 4, from, 4, I(k, W * 4));
            return;
        }
        /* copy kw: x[w + kw - 1] at column w */
        copy_strided(k, fptr(k, p->buf, pad_off(k, p, bch, row, 0, I(k, 1))), from, 0, 1, W - 1);
        copy_strided(k, fptr(k, p->buf, pad_off(k, p, bch, row, 1, I(k, 0))), from, 0, 1, W);
        copy_strided(k, fptr(k, p->buf, pad_off(k, p, bch, row, 2, I(k, 0))), from, 1, 1, W - 1);
        return;
    }
    if (p->dy) {   /* row r of dy and of dy shifted left by one column */
        copy_strided(k, fptr(k, p->buf, pad_off(k, p, bch, r, 0, I(k, 0))), from, 0, 1, W);
        if (p->copies > 1) copy_strided(k, fptr(k, p->buf, pad_off(k, p, bch, r, 1, I(k, 0))), from, 1, 1, W - 1);
        return;
    }
    /* padded row R = r + P: parity R % 2, row R / 2 of the copies (kw, parity),
       column j = padded column 2j + kw = input column 2j + kw - P */
    LLVMValueRef R = LLVMBuildNSWAdd(k->b, r, I(k, g->P), "");
    LLVMValueRef par = LLVMBuildAnd(k->b, R, I(k, 1), ""), half = LLVMBuildAShr(k->b, R, I(k, 1), "");
    LLVMValueRef dst[4];   /* K = 4: Winograd's copy (wino_pad) */
    RRC_ASSERT(g->K <= 4);
    for (int64_t kw = 0; kw < g->K; kw++) {   /* copy kw * np + parity */
        LLVMValueRef base = pad_off(k, p, bch, half, kw * p->np, I(k, 0));
        dst[kw] = fptr(k, p->buf, LLVMBuildNSWAdd(k->b, base, LLVMBuildNSWMul(k->b, par, I(k, p->C * p->plane), ""), ""));
    }
    int64_t L2 = 2 * k->L;   /* a chunk: two vectors of the row, split into one of each parity */
    if (W % L2 && !(W < L2 && L2 % W == 0 && W >= 8)) {   /* columns one by one */
        for (int64_t kw = 0; kw < g->K; kw++) {
            int64_t c0 = kw - g->P, j0 = c0 < 0 ? 1 : 0;   /* column -1 is padding: stays zero */
            int64_t len = (W - 1 - (c0 + 2 * j0)) / 2 + 1;  /* and so is column W */
            copy_strided(k, fptr(k, dst[kw], I(k, j0)), from, c0 + 2 * j0, 2, len < g->Wo - j0 ? len : g->Wo - j0);
        }
        return;
    }
    /* by vectors: each chunk of the row split into its even and odd columns
       (kw - P = 0 and 1); kw - P = -1 is the odd columns moved right by
       one, the previous chunk's last odd column (zero: padding) first */
    int64_t chunk = W < L2 ? W : L2, hc = chunk / 2;
    LLVMTypeRef ct = LLVMVectorType(k->cg->f32, (unsigned)chunk), ht = LLVMVectorType(k->cg->f32, (unsigned)hc);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(k->cg->ctx);
    LLVMValueRef me[CG_MAX_LANES], mo[CG_MAX_LANES], ms[CG_MAX_LANES], mn[CG_MAX_LANES];
    RRC_ASSERT(hc <= CG_MAX_LANES);
    for (int64_t j = 0; j < hc; j++) {
        me[j] = LLVMConstInt(i32, (unsigned long long)(2 * j), 0);
        mo[j] = LLVMConstInt(i32, (unsigned long long)(2 * j + 1), 0);
        ms[j] = LLVMConstInt(i32, (unsigned long long)(hc - 1 + j), 0);
        mn[j] = LLVMConstInt(i32, (unsigned long long)(1 + j), 0);
    }
    /* kw - P = 2 (K = 4): the even columns moved left by one, the next
       chunk's first even column (zero past the row: padding) last; stored
       a chunk late */
    LLVMValueRef prev = LLVMConstNull(ht), prev_ev = NULL;
    int64_t k2 = g->K > 3 ? 3 : -1;
    for (int64_t c = 0; c < W / chunk; c++) {
        LLVMValueRef v = LLVMBuildLoad2(k->b, ct, fptr(k, from, I(k, c * chunk)), "");
        LLVMSetAlignment(v, 4);
        LLVMValueRef ev = LLVMBuildShuffleVector(k->b, v, LLVMGetUndef(ct), LLVMConstVector(me, (unsigned)hc), "");
        LLVMValueRef od = LLVMBuildShuffleVector(k->b, v, LLVMGetUndef(ct), LLVMConstVector(mo, (unsigned)hc), "");
        for (int64_t kw = 0; kw < g->K && kw < 3; kw++) {
            int64_t c0 = kw - g->P;
            LLVMValueRef out = c0 == 0 ? ev : c0 == 1 ? od : LLVMBuildShuffleVector(k->b, prev, od, LLVMConstVector(ms, (unsigned)hc), "");
            LLVMValueRef st = LLVMBuildStore(k->b, out, fptr(k, dst[kw], I(k, c * hc)));
            LLVMSetAlignment(st, 4);
        }
        if (k2 > 0 && prev_ev) {
            LLVMValueRef out = LLVMBuildShuffleVector(k->b, prev_ev, ev, LLVMConstVector(mn, (unsigned)hc), "");
            LLVMSetAlignment(LLVMBuildStore(k->b, out, fptr(k, dst[k2], I(k, (c - 1) * hc))), 4);
        }
        prev = od;
        prev_ev = ev;
    }
    if (k2 > 0) {
        LLVMValueRef out = LLVMBuildShuffleVector(k->b, prev_ev, LLVMConstNull(ht), LLVMConstVector(mn, (unsigned)hc), "");
        LLVMSetAlignment(LLVMBuildStore(k->b, out, fptr(k, dst[k2], I(k, (W / chunk - 1) * hc))), 4);
    }
}

/* Buffer channels [bc, bc + nch) = channels [c0, c0 + nch) of image n of
   the source [N][Ctot][SH][SW], read through e: copied when it is a stored
   value, computed element by element when it is inlined (BatchNorm + ReLU
   of the previous layer: that value is then never stored). rowtmp: SW
   floats. Stride-2 1x1 forward copies skip the odd rows, which no tap
   reads. */
/* Narrow stride-1 planes whose H x W values are whole vectors (8x8, 4x4)
   are copied a plane at a time: each vector of the plane goes to copy 1 as
   it is, and, moved by one lane with zeros in the lanes of column 0 (copy
   0) or of column W - 1 (copy 2), to the other two; their interior rows
   are contiguous. Row by row, the three short copies per row cost more than
   the convolution's arithmetic on these planes. */
#define PLANE_VECS 16   /* the most vectors of a plane copied at once: they stay in registers */

static bool pad_by_plane(const Pad *p) {
    int64_t HW = p->SH * p->SW;
    return p->g->S == 1 && !pad_wide1(p) && HW % p->L == 0 && HW / p->L <= PLANE_VECS;
}

/* Floats of the temporary a padding loop computes an inlined input into. */
static int64_t pad_tmp_floats(const Pad *p) { return pad_by_plane(p) ? p->SH * p->SW : p->SW; }

static void pad_plane(CB *k, const Pad *p, LLVMValueRef bch, LLVMValueRef from) {
    CG *cg = k->cg;
    int64_t L = k->L, W = p->SW, nv = p->SH * W / L;
    LLVMTypeRef i32 = LLVMInt32TypeInContext(cg->ctx), i1 = LLVMInt1TypeInContext(cg->ctx);
    LLVMValueRef v[PLANE_VECS + 1], dst[3];
    for (int64_t q = 0; q < 3; q++) dst[q] = fptr(k, p->buf, pad_off(k, p, bch, I(k, 1), q, I(k, 0)));   /* row 1 */
    for (int64_t j = 0; j < nv; j++) {
        v[j] = LLVMBuildLoad2(k->b, k->vt, fptr(k, from, I(k, j * L)), "");
        LLVMSetAlignment(v[j], 4);
    }
    v[nv] = LLVMConstNull(k->vt);
    LLVMValueRef zero = LLVMConstNull(k->vt), prev = zero;
    LLVMValueRef mr[CG_MAX_LANES], ml[CG_MAX_LANES], c0[CG_MAX_LANES], cl[CG_MAX_LANES];
    RRC_ASSERT(L <= CG_MAX_LANES);
    for (int l = 0; l < L; l++) {
        mr[l] = LLVMConstInt(i32, (unsigned long long)(L - 1 + l), 0);   /* [prev[L-1], v[0..L-2]] */
        ml[l] = LLVMConstInt(i32, (unsigned long long)(1 + l), 0);       /* [v[1..L-1], next[0]] */
        c0[l] = LLVMConstInt(i1, l % W == 0, 0);
        cl[l] = LLVMConstInt(i1, l % W == W - 1, 0);
    }
    for (int64_t j = 0; j < nv; j++) {
        LLVMValueRef r = LLVMBuildShuffleVector(k->b, prev, v[j], LLVMConstVector(mr, (unsigned)L), "");
        LLVMValueRef l = LLVMBuildShuffleVector(k->b, v[j], v[j + 1], LLVMConstVector(ml, (unsigned)L), "");
        LLVMValueRef out[3] = {LLVMBuildSelect(k->b, LLVMConstVector(c0, (unsigned)L), zero, r, ""), v[j],
                               LLVMBuildSelect(k->b, LLVMConstVector(cl, (unsigned)L), zero, l, "")};
        for (int q = 0; q < 3; q++) {
            LLVMValueRef st = LLVMBuildStore(k->b, out[q], fptr(k, dst[q], I(k, j * L)));
            LLVMSetAlignment(st, 4);
        }
        prev = v[j];
    }
}

static void pad_fill(CB *k, const Pad *p, CgExpr *e, LLVMValueRef x, LLVMValueRef n, LLVMValueRef c0, int64_t Ctot,
                     LLVMValueRef rowtmp, LLVMValueRef bc, int64_t nch) {
    int64_t H = p->SH, W = p->SW, rstep = p->g->S == 2 && !p->dy && p->g->K == 1 ? 2 : 1;
    bool load = cg_expr_is_load(e);
    CLoop Lc, Lh, Lw;
    if (pad_by_plane(p)) {
        LLVMValueRef c = cloop_open(k, &Lc, I(k, 0), I(k, nch), "pc");
        LLVMValueRef ca = LLVMBuildNSWAdd(k->b, c0, c, "");
        LLVMValueRef src = LLVMBuildNSWMul(k->b, LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, n, I(k, Ctot), ""), ca, ""), I(k, H * W), "");
        if (!load) {
            LLVMValueRef w = cloop_open(k, &Lw, I(k, 0), I(k, H * W), "pw");
            LLVMBuildStore(k->b, cg_expr_at(e, LLVMBuildNSWAdd(k->b, src, w, ""), ca), fptr(k, rowtmp, w));
            cloop_close(k, &Lw, 1);
        }
        pad_plane(k, p, LLVMBuildNSWAdd(k->b, bc, c, ""), load ? fptr(k, x, src) : rowtmp);
        cloop_close(k, &Lc, 1);
        return;
    }
    LLVMValueRef c = cloop_open(k, &Lc, I(k, 0), I(k, nch), "pc");
    LLVMValueRef h = cloop_open(k, &Lh, I(k, 0), I(k, H), "ph");
    LLVMValueRef ca = LLVMBuildNSWAdd(k->b, c0, c, "");
    LLVMValueRef sc = LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, n, I(k, Ctot), ""), ca, "");
    LLVMValueRef src = LLVMBuildNSWMul(k->b, LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, sc, I(k, H), ""), h, ""), I(k, W), "");
    LLVMValueRef bch = LLVMBuildNSWAdd(k->b, bc, c, "");   /* the buffer's channel */
    LLVMValueRef from = load ? fptr(k, x, src) : rowtmp;   /* the W source values of this row */
    if (!load) {
        /* wide stride-1 planes: straight into the padded row; else into rowtmp */
        LLVMValueRef dst = pad_wide1(p) ? fptr(k, p->buf, pad_off(k, p, bch, LLVMBuildNSWAdd(k->b, h, I(k, 1), ""), 0, I(k, 1))) : rowtmp;
        LLVMValueRef w = cloop_open(k, &Lw, I(k, 0), I(k, W), "pw");
        LLVMValueRef v = cg_expr_at(e, LLVMBuildNSWAdd(k->b, src, w, ""), ca);
        LLVMBuildStore(k->b, v, fptr(k, dst, w));
        cloop_close(k, &Lw, 1);
    }
    if (load || !pad_wide1(p)) pad_row(k, p, bch, h, from);
    cloop_close(k, &Lh, rstep);
    cloop_close(k, &Lc, 1);
}

/* Where tap (kh, kw) of the output vector at row `row`, column seg * L
   (forward, weight gradient; and the stride-1 input gradient, whose dy
   copy has the forward's layout): copy *q, row + *ro, column *col. */
static void pad_tap(const Pad *p, int kh, int kw, int64_t seg, int64_t *q, int64_t *ro, int64_t *col) {
    if (p->g->S == 2) {
        *q = kw * p->np + kh % 2, *ro = kh / 2, *col = seg * p->L;
    } else if (pad_wide1(p)) {
        *q = 0, *ro = kh, *col = seg * p->L + kw;
    } else {
        *q = kw, *ro = kh, *col = 0;
    }
}

/* Alignment of a tap's vector load: stride-2 wide copies are rows of
   whole vectors in a vector-aligned buffer. */
static unsigned pad_align(const Pad *p) {
    return p->g->S == 2 && p->rowlen % p->L == 0 ? (unsigned)(p->L * 4) : 4;
}

/* The vector at row `row`, column col of copy q of buffer channel ch. */
static LLVMValueRef pad_vec(CB *k, const Pad *p, LLVMValueRef ch, LLVMValueRef row, int64_t q, LLVMValueRef col) {
    LLVMValueRef ld = LLVMBuildLoad2(k->b, k->vt, fptr(k, p->buf, pad_off(k, p, ch, row, q, col)), "");
    LLVMSetAlignment(ld, pad_align(p));
    return ld;
}


static LLVMValueRef splat(CB *k, LLVMValueRef s) {
    LLVMValueRef v = LLVMBuildInsertElement(k->b, LLVMGetUndef(k->vt), s, I(k, 0), "");
    LLVMValueRef zeros = LLVMConstNull(LLVMVectorType(LLVMInt32TypeInContext(k->cg->ctx), LLVMGetVectorSize(k->vt)));
    return LLVMBuildShuffleVector(k->b, v, LLVMGetUndef(k->vt), zeros, "");
}

/* Prefetching the next image while the core computes this one: the
   variant passes the next image's planes of up to PF_STREAMS values the
   padding loop reads (x, or the stored inputs of an inlined x), and every
   iteration of the core's innermost tile loop prefetches the next `lpi`
   lines of each, so that the next padding loop reads from L2 rather than
   from memory. An epilogue's inputs of the next image are prefetched the
   same way (pf_init_epi), up to PF_EPI_STREAMS of them. */
#define PF_STREAMS 3
#define PF_EPI_STREAMS 4

typedef struct Pf {
    LLVMValueRef p[PF_EPI_STREAMS];
    int ns;                /* streams */
    LLVMValueRef ctr;      /* iterations so far */
    int64_t lines, lpi;    /* lines per stream, lines per iteration */
    int64_t lfl;           /* floats per line */
} Pf;

/* Streams a core prefetches: the input gradient pads dy, which is always
   stored (passes/fuse.c inlines nothing into conv2d_dx's input), so one;
   the forward may read an inlined input of up to PF_STREAMS. */
static int pf_streams(bool dx) { return dx ? 1 : PF_STREAMS; }

/* params: the core's ns pointer parameters, from index first */
static void pf_init(CB *k, Pf *pf, unsigned first, int ns, int64_t floats, int64_t iters) {
    pf->ns = ns;
    for (int s = 0; s < ns; s++) pf->p[s] = LLVMGetParam(k->fn, first + (unsigned)s);
    pf->lfl = line_floats(k->cg->t);
    pf->lines = (floats + pf->lfl - 1) / pf->lfl;
    pf->lpi = (pf->lines + iters - 1) / iters;
    pf->ctr = alloca_entry(k, k->cg->i64, "pfctr");
    LLVMBuildStore(k->b, I(k, 0), pf->ctr);
}

/* The next image's planes of the output-sized values an epilogue reads (up
   to PF_EPI_STREAMS; image n + 1 even after the last: a prefetch never
   faults), from the core's parameters from `first`, spread over the
   multiply-add loop like the input's. (Prefetching them in bursts where
   each tile stores, the next tile's or a share of the next image's, made
   resnet32's stage-1 epilogues slower: docs/DECISIONS.md.) */
static void pf_init_epi(CB *k, Pf *pf, CgExpr *epi, unsigned first, LLVMValueRef n, int64_t img, int64_t iters) {
    pf_init(k, pf, first, 0, img, iters);
    LLVMValueRef off = LLVMBuildNSWMul(k->b, LLVMBuildNSWAdd(k->b, n, I(k, 1), ""), I(k, img), "");
    for (int i = 0; epi && i < cg_expr_count(epi) && pf->ns < PF_EPI_STREAMS; i++) {
        const Node *v = cg_expr_value(epi, i);
        if (v->rank == 4 && v->dim[1] * v->dim[2] * v->dim[3] == img)
            pf->p[pf->ns++] = fptr(k, LLVMGetParam(k->fn, first + (unsigned)i), off);
    }
}

static void pf_step(CB *k, const Pf *pf) {
    if (!pf->ns) return;
    CG *cg = k->cg;
    LLVMValueRef it = LLVMBuildLoad2(k->b, cg->i64, pf->ctr, "");
    LLVMBuildStore(k->b, LLVMBuildNSWAdd(k->b, it, I(k, 1), ""), pf->ctr);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(cg->ctx), pt = cg->ptr;
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(cg->mod, LLVMLookupIntrinsicID("llvm.prefetch", 13), &pt, 1);
    LLVMTypeRef ps[4] = {cg->ptr, i32, i32, i32};
    for (int64_t u = 0; u < pf->lpi; u++) {
        LLVMValueRef line = LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, it, I(k, pf->lpi), ""), I(k, u), "");
        LLVMValueRef past = LLVMBuildICmp(k->b, LLVMIntSGE, line, I(k, pf->lines), "");
        line = LLVMBuildSelect(k->b, past, I(k, pf->lines - 1), line, "");
        LLVMValueRef off = LLVMBuildNSWMul(k->b, line, I(k, pf->lfl), "");
        for (int s = 0; s < pf->ns; s++) {
            LLVMValueRef a[4] = {fptr(k, pf->p[s], off), LLVMConstInt(i32, 0, 0), LLVMConstInt(i32, 3, 0),
                                 LLVMConstInt(i32, 1, 0)};
            LLVMBuildCall2(k->b, LLVMFunctionType(cg->void_, ps, 4, 0), f, a, 4, "");
        }
    }
}

/* A tile of an H x W output plane in vectors of L: V vectors (about vmax);
   on wide planes (VR vectors per row) R rows of VS vectors, VS = VR unless
   a row has more than vmax vectors (then one row of VS and VR / VS tiles
   across it); on packed ones L / W rows each (VR = 0). */
#define TILE_VECS 4

typedef struct Tile {
    int64_t VR, VS, R, V;
} Tile;

static Tile tile_of(int64_t H, int64_t W, int64_t L, int64_t vmax) {
    Tile t = {0, 1, 1, 1};
    int64_t *VR = &t.VR, *R = &t.R, *V = &t.V;
    if (W >= L) {
        *VR = W / L;
        t.VS = *VR;
        if (*VR > vmax) {
            t.VS = vmax;
            while (*VR % t.VS) t.VS--;
        }
        *R = t.VS >= vmax ? 1 : vmax / t.VS;
        if (*R > H) *R = H;
        while (H % *R) (*R)--;
        *V = *R * t.VS;
    } else {
        int64_t rpv = L / W;
        *VR = 0;
        *V = H / rpv < vmax ? H / rpv : vmax;
        while (H % (*V * rpv)) (*V)--;
        *R = *V * rpv;
    }
    return t;
}

/* Tiles across a row. */
static int64_t tile_groups(const Tile *t) { return t->VR ? t->VR / t->VS : 1; }

/* Row and column segment (within the tile's group) of the tile's vector v. */
static void tile_vec(const Tile *t, int64_t W, int64_t L, int64_t v, int64_t *r, int64_t *seg) {
    *r = t->VR ? v / t->VS : v * (L / W);
    *seg = t->VR ? v % t->VS : 0;
}

/* Output channels of a tile of V vectors: as many as the accumulators
   allow (acc of them in all), dividing Co. */
static int64_t tile_ob(int64_t acc, int64_t V, int64_t Co) {
    int64_t OB = acc / V;
    if (OB < 1) OB = 1;
    while (Co % OB) OB--;
    return OB;
}

/* The body's type: np pointers, then n0, n1. */
static LLVMTypeRef body_type(CG *cg, int np) {
    LLVMTypeRef ps[MAX_PTRS + 2];
    for (int i = 0; i < np; i++) ps[i] = cg->ptr;
    ps[np] = ps[np + 1] = cg->i64;
    return LLVMFunctionType(cg->void_, ps, (unsigned)np + 2, 0);
}

/* Starts function `name` of type ft (cg_fn_attrs: the pointers among the
   first nalias parameters noalias), the builder at its entry. */
static void begin_fn(CB *k, const char *name, LLVMTypeRef ft, int nalias) {
    CG *cg = k->cg;
    k->fn = LLVMAddFunction(cg->mod, name, ft);
    cg_fn_attrs(k->cg, k->fn, nalias);
    k->entry = LLVMAppendBasicBlockInContext(cg->ctx, k->fn, "entry");
    k->b = LLVMCreateBuilderInContext(cg->ctx);
    LLVMPositionBuilderAtEnd(k->b, k->entry);
}

/* A core's type: n parameters, pointers but for nint i64 ones from index 3
   (the image, and the weight gradient's image count). */
static LLVMTypeRef core_type(CG *cg, unsigned n, unsigned nint) {
    LLVMTypeRef ps[5 + MAX_PTRS + PF_STREAMS];
    RRC_ASSERT(n <= sizeof ps / sizeof *ps);
    for (unsigned i = 0; i < n; i++) ps[i] = i >= 3 && i < 3 + nint ? cg->i64 : cg->ptr;
    return LLVMFunctionType(cg->void_, ps, n, 0);
}

/* An epilogue's stored inputs: the core's parameters from `first`. */
static int epi_count(const CgExpr *epi) { return epi ? cg_expr_count(epi) : 0; }

/* Before a tile's stores: the epilogue reads through copies of its
   pointers that LLVM cannot see through (an empty asm volatile), so its
   per-channel terms (BatchNorm scales, means, shifts) are computed with the
   tile instead of hoisted out of the tile loops, where, splatted into
   vector registers for every channel, they pushed the multiply-add loop to
   spill. */
static void epi_tile(CB *k, CgExpr *epi, unsigned first) {
    if (!epi) return;
    LLVMValueRef ep[MAX_PTRS];
    LLVMTypeRef pt = k->cg->ptr, ft = LLVMFunctionType(pt, &pt, 1, 0);
    LLVMValueRef launder = LLVMGetInlineAsm(ft, "", 0, "=r,0", 4, 1, 0, LLVMInlineAsmDialectATT, 0);
    for (int i = 0; i < cg_expr_count(epi); i++) {
        LLVMValueRef a = LLVMGetParam(k->fn, first + (unsigned)i);
        ep[i] = LLVMBuildCall2(k->b, ft, launder, &a, 1, "");
    }
    cg_expr_begin(epi, k->b, ep);
}

/* Flat index of (image n, channel c, row, col) in [N, C, H, W]. */
static LLVMValueRef nchw(CB *k, LLVMValueRef n, int64_t C, int64_t H, int64_t W, LLVMValueRef c, LLVMValueRef row,
                         int64_t col) {
    LLVMBuilderRef b = k->b;
    LLVMValueRef plane = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, n, I(k, C), ""), c, "");
    LLVMValueRef r = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, plane, I(k, H), ""), row, "");
    return LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, r, I(k, W), ""), I(k, col), "");
}

/* FNV-1a of a structure signature (cg_expr_sig), for function names */
static uint64_t sig_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* What build_core's blocks of output channels share. */
typedef struct Core {
    CB *k;
    const Geo *g;
    const Tile *tl;
    Pad *pd;
    Pf *pf, *pfe;
    CgExpr *epi;
    bool transposed, stats, sums;
    int64_t Ci, Co, H, W, NG;
    unsigned nfix;
} Core;

/* The tiles of all output channels in blocks of OB (which divides them):
   over row blocks (and tiles across a row), over input channels, the
   taps' multiply-adds; then the stores, statistics and sums of each block. */
static void core_blocks(const Core *c, int64_t OB) {
    CB k = *c->k;
    CG *cg = k.cg;
    const Geo *g = c->g;
    const Tile tl = *c->tl;
    Pad pd = *c->pd;
    CgExpr *epi = c->epi;
    bool transposed = c->transposed, stats = c->stats, sums = c->sums;
    int64_t Ci = c->Ci, Co = c->Co, H = c->H, W = c->W, NG = c->NG, K = g->K, L = k.L, R = tl.R, V = tl.V;
    unsigned nfix = c->nfix;
    LLVMValueRef wt = LLVMGetParam(k.fn, 1), y = LLVMGetParam(k.fn, 2), n = LLVMGetParam(k.fn, 3);
    RRC_ASSERT(OB * V <= CG_MAX_ACCS && OB <= CG_MAX_ACCS && Co % OB == 0);
    CLoop Lh, Lo, Li, Lg;
    /* statistics of this image's output planes (stats: st = double [2][Co],
       mean and sum of squared deviations per channel): per channel of the
       block, vector sums of d = y - k and d^2 over its tiles, k = the
       plane's first output (the runtime's shift, rt_shifted_sums) */
    LLVMTypeRef f64 = LLVMDoubleTypeInContext(cg->ctx);
    LLVMValueRef kslot[CG_MAX_ACCS], s1[CG_MAX_ACCS], s2[CG_MAX_ACCS];
    if (stats || sums)
        for (int o = 0; o < OB; o++) {
            kslot[o] = alloca_entry(&k, cg->f32, "shift");
            s1[o] = alloca_entry(&k, k.vt, "s1");
            s2[o] = alloca_entry(&k, k.vt, "s2");
        }

    /* tiles: output channel blocks x row blocks */
    LLVMValueRef acc[CG_MAX_ACCS];
    for (int a = 0; a < OB * V; a++) acc[a] = alloca_entry(&k, k.vt, "acc");
    LLVMValueRef ob = cloop_open(&k, &Lo, I(&k, 0), I(&k, Co), "ob");
    if (stats || sums)
        for (int o = 0; o < OB; o++) {
            LLVMBuildStore(k.b, LLVMConstNull(k.vt), s1[o]);
            LLVMBuildStore(k.b, LLVMConstNull(k.vt), s2[o]);
        }
    LLVMValueRef h0 = cloop_open(&k, &Lh, I(&k, 0), I(&k, H), "h0");
    /* the tile's first column: tiles across a row when it has more vectors than a tile */
    LLVMValueRef sg = NG > 1 ? cloop_open(&k, &Lg, I(&k, 0), I(&k, NG), "sg") : NULL;
    LLVMValueRef col0 = sg ? LLVMBuildNSWMul(k.b, sg, I(&k, tl.VS * L), "") : I(&k, 0);
    for (int a = 0; a < OB * V; a++) LLVMBuildStore(k.b, LLVMConstNull(k.vt), acc[a]);
    LLVMValueRef ci = cloop_open(&k, &Li, I(&k, 0), I(&k, Ci), "ci");
    pf_step(&k, c->pf);
    pf_step(&k, c->pfe);
    LLVMValueRef cur[CG_MAX_ACCS];
    for (int a = 0; a < OB * V; a++) cur[a] = LLVMBuildLoad2(k.b, k.vt, acc[a], "");
    /* the tile's addresses from two kinds of base, constant offsets from
       there (the same code as full index arithmetic per tap, in a third of
       the IR to optimise): this channel's padded rows from h0, and each
       output channel's weights of input channel ci, w[co][ci] (forward) or
       w[ci][co] (transposed: taps flipped) */
    LLVMValueRef xbase = fptr(&k, pd.buf, pad_off(&k, &pd, ci, h0, 0, col0)), wrow[CG_MAX_ACCS];
    for (int o = 0; o < OB; o++) {
        LLVMValueRef co = LLVMBuildNSWAdd(k.b, ob, I(&k, o), "");
        LLVMValueRef row = transposed ? LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, ci, I(&k, Co), ""), co, "")
                                      : LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, co, I(&k, Ci), ""), ci, "");
        wrow[o] = fptr(&k, wt, LLVMBuildNSWMul(k.b, row, I(&k, K * K), ""));
    }
    for (int kh = 0; kh < K; kh++)
        for (int kw = 0; kw < K; kw++) {
            LLVMValueRef xin[CG_MAX_ACCS];
            for (int v = 0; v < V; v++) {
                int64_t r, seg, q, ro, col;
                tile_vec(&tl, W, L, v, &r, &seg);
                pad_tap(&pd, kh, kw, seg, &q, &ro, &col);
                xin[v] = LLVMBuildLoad2(k.b, k.vt, fptr(&k, xbase, I(&k, q * pd.C * pd.plane + (r + ro) * pd.rowlen + col)), "");
                LLVMSetAlignment(xin[v], pad_align(&pd));
            }
            int64_t tap = transposed ? (K - 1 - kh) * K + (K - 1 - kw) : kh * K + kw;
            for (int o = 0; o < OB; o++) {
                LLVMValueRef ws = splat(&k, LLVMBuildLoad2(k.b, cg->f32, fptr(&k, wrow[o], I(&k, tap)), ""));
                for (int v = 0; v < V; v++) cur[o * V + v] = vfma(&k, ws, xin[v], cur[o * V + v]);
            }
        }
    for (int a = 0; a < OB * V; a++) LLVMBuildStore(k.b, cur[a], acc[a]);
    cloop_close(&k, &Li, 1);
    epi_tile(&k, epi, 4);
    for (int o = 0; o < OB; o++) {
        LLVMValueRef co = LLVMBuildNSWAdd(k.b, ob, I(&k, o), "");   /* one value: the epilogue's channel terms once */
        for (int v = 0; v < V; v++) {
            int64_t r, seg;
            tile_vec(&tl, W, L, v, &r, &seg);
            LLVMValueRef idx = nchw(&k, n, Co, H, W, co, LLVMBuildNSWAdd(k.b, h0, I(&k, r), ""), seg * L);
            if (sg) idx = LLVMBuildNSWAdd(k.b, idx, col0, "");
            LLVMValueRef yv = LLVMBuildLoad2(k.b, k.vt, acc[o * V + v], "");
            if (epi) {
                LLVMValueRef gx = NULL;
                yv = cg_epi_at(epi, idx, co, yv, sums ? &gx : NULL);
                if (sums) {
                    LLVMBuildStore(k.b, LLVMBuildFAdd(k.b, LLVMBuildLoad2(k.b, k.vt, s1[o], ""), yv, ""), s1[o]);
                    LLVMBuildStore(k.b, LLVMBuildFAdd(k.b, LLVMBuildLoad2(k.b, k.vt, s2[o], ""), gx, ""), s2[o]);
                }
            }
            LLVMValueRef st = LLVMBuildStore(k.b, yv, fptr(&k, y, idx));
            LLVMSetAlignment(st, 4);
            if (!stats) continue;
            if (v == 0) {   /* the shift: the plane's first value, taken in its first tile */
                LLVMValueRef first = LLVMBuildICmp(k.b, LLVMIntEQ, h0, I(&k, 0), "");
                if (sg) first = LLVMBuildAnd(k.b, first, LLVMBuildICmp(k.b, LLVMIntEQ, sg, I(&k, 0), ""), "");
                LLVMValueRef kv = LLVMBuildSelect(k.b, first, LLVMBuildExtractElement(k.b, yv, I(&k, 0), ""),
                                                  LLVMBuildLoad2(k.b, cg->f32, kslot[o], ""), "");
                LLVMBuildStore(k.b, kv, kslot[o]);
            }
            LLVMValueRef d = LLVMBuildFSub(k.b, yv, splat(&k, LLVMBuildLoad2(k.b, cg->f32, kslot[o], "")), "");
            LLVMBuildStore(k.b, LLVMBuildFAdd(k.b, LLVMBuildLoad2(k.b, k.vt, s1[o], ""), d, ""), s1[o]);
            LLVMBuildStore(k.b, vfma(&k, d, d, LLVMBuildLoad2(k.b, k.vt, s2[o], "")), s2[o]);
        }
    }
    if (sg) cloop_close(&k, &Lg, 1);
    cloop_close(&k, &Lh, R);
    if (sums) {   /* ws[n][j][co] */
        LLVMValueRef ws = LLVMGetParam(k.fn, nfix - 1);
        for (int o = 0; o < OB; o++)
            for (int j = 0; j < 2; j++) {
                LLVMValueRef t = LLVMBuildFPExt(k.b, lanes_sum(&k, LLVMBuildLoad2(k.b, k.vt, j ? s2[o] : s1[o], "")), f64, "");
                LLVMValueRef at = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, n, I(&k, 2), ""), I(&k, j), ""), I(&k, Co), ""),
                                                  LLVMBuildNSWAdd(k.b, ob, I(&k, o), ""), "");
                LLVMBuildStore(k.b, t, LLVMBuildInBoundsGEP2(k.b, f64, ws, &at, 1, ""));
            }
    }
    if (stats) {
        LLVMValueRef stp = LLVMGetParam(k.fn, 4);
        for (int o = 0; o < OB; o++) {
            LLVMValueRef t1 = LLVMBuildFPExt(k.b, lanes_sum(&k, LLVMBuildLoad2(k.b, k.vt, s1[o], "")), f64, "");
            LLVMValueRef t2 = LLVMBuildFPExt(k.b, lanes_sum(&k, LLVMBuildLoad2(k.b, k.vt, s2[o], "")), f64, "");
            LLVMValueRef kd = LLVMBuildFPExt(k.b, LLVMBuildLoad2(k.b, cg->f32, kslot[o], ""), f64, "");
            LLVMValueRef co = LLVMBuildNSWAdd(k.b, ob, I(&k, o), "");
            stats_store(&k, t1, t2, kd, (double)(H * W), stp, co, LLVMBuildNSWAdd(k.b, co, I(&k, Co), ""));
        }
    }
    cloop_close(&k, &Lo, OB);
}

/* The tiles of one image, from its padded copy: core(xp, w, y, n). One per
   shape and direction, shared by every input expression. Forward: x ->
   y [N, O, Ho, Wo] with weights w [O][C][K][K], any supported stride;
   stride-1 input gradient (transposed): dy -> dx [N, C, H, W], the weight
   of (c, o, kh, kw) being w[o][c][2-kh][2-kw]. With an epilogue (an input
   gradient of KERNEL_DX_EPI, never stored), y is the epilogue's value:
   core(xp, w, y, n, what the epilogue reads..., [ws,] the next image's
   streams); with sums, the image's sums of the epilogue's value g and of
   g (x - mean) per channel (f32 vector partials over its tiles, in order
   lane by lane at the end, as double) go to ws[n][0][c] and ws[n][1][c]. */
static LLVMValueRef build_core(CG *cg, const char *name, const Geo *g, bool transposed, bool stats, CgExpr *epi,
                               bool sums) {
    CB k = cb_of(cg);
    int64_t Ci = transposed ? g->O : g->C, Co = transposed ? g->C : g->O;
    int64_t H = transposed ? g->H : g->Ho, W = transposed ? g->W : g->Wo;   /* the output planes */
    /* a tile: V vectors (about 4) of output rows x OB output channels (on
       AVX2, 6 x 2 tiles with a narrower last block, 12 accumulators, were
       slower than 2 x 4: docs/DECISIONS.md) */
    int64_t L = k.L;
    Tile tl = tile_of(H, W, L, TILE_VECS);
    int64_t R = tl.R, NG = tile_groups(&tl), OB = tile_ob(tile_accs(cg->t, tl.V), tl.V, Co), blocks = Co / OB;
    /* (xp, w, y, n, [statistics,] [what the epilogue reads,] the next image's streams) */
    RRC_ASSERT(!(stats && epi) && (!sums || epi));
    unsigned nfix = (stats ? 5 : 4) + (unsigned)epi_count(epi) + (sums ? 1 : 0);
    int ns = pf_streams(transposed);
    begin_fn(&k, name, core_type(cg, nfix + (unsigned)ns, 1), (int)nfix);
    Pad pd;
    pad_layout(&pd, g, transposed, Ci, L);
    Pf pf, pfe;
    pf_init(&k, &pf, nfix, ns, Ci * pd.SH * pd.SW, blocks * (H / R) * NG * Ci);
    pf_init_epi(&k, &pfe, epi, 4, LLVMGetParam(k.fn, 3), Co * H * W, blocks * (H / R) * NG * Ci);
    pd.buf = LLVMGetParam(k.fn, 0);
    Core c = {&k, g, &tl, &pd, &pf, &pfe, epi, transposed, stats, sums, Ci, Co, H, W, NG, nfix};
    core_blocks(&c, OB);
    LLVMBuildRetVoid(k.b);
    LLVMDisposeBuilder(k.b);
    return k.fn;
}

/* The stride-2 input gradient of one image, from dy's copies:
   core(dyp, w, dx, n). Row 2a + ph, column 2b + pw of dx takes the taps of
   row parity ph and column parity pw: padded row 2a + ph + P = 2i + kh, so
   kh = ph + P (mod 2), at dy row i = a + (ph + P - kh) / 2 (row a or the
   next), and the same for columns (copy 0 or the copy shifted by one). A
   tile is OB channels of dx x V vectors of dy positions (a, b) x the four
   parities, 4 OB V vector accumulators (tile_accs); each (channel, vector,
   row parity) interleaves its two column parities into 2 L floats of dx
   rows at the end. */
static LLVMValueRef build_dx2_core(CG *cg, const char *name, const Geo *g) {
    CB k = cb_of(cg);
    int64_t O = g->O, C = g->C, Ho = g->Ho, Wo = g->Wo, H = g->H, W = g->W, K = g->K, P = g->P, L = k.L;
    /* accumulators per parity: vectors of dy positions x channels, at most TILE_VECS vectors */
    int64_t acc4 = tile_accs(cg->t, TILE_VECS / 2) / 4;
    Tile tl = tile_of(Ho, Wo, L, acc4 < 1 ? 1 : acc4 > TILE_VECS ? TILE_VECS : acc4);
    int64_t R = tl.R, V = tl.V, NG = tile_groups(&tl);
    int64_t OB = tile_ob(acc4, V, C);
    RRC_ASSERT(4 * OB * V <= CG_MAX_ACCS);
    int ns = pf_streams(true);
    begin_fn(&k, name, core_type(cg, 4 + (unsigned)ns, 1), 4);
    Pad pd;
    pad_layout(&pd, g, true, O, L);
    Pf pf;
    pf_init(&k, &pf, 4, ns, O * Ho * Wo, (C / OB) * (Ho / R) * NG * O);
    pd.buf = LLVMGetParam(k.fn, 0);
    LLVMValueRef wt = LLVMGetParam(k.fn, 1), dx = LLVMGetParam(k.fn, 2), n = LLVMGetParam(k.fn, 3);
    LLVMValueRef acc[CG_MAX_ACCS];   /* [o][v][ph][pw] */
    int na = (int)(OB * V * 4);
    for (int a = 0; a < na; a++) acc[a] = alloca_entry(&k, k.vt, "acc");
    CLoop Lo, Lh, Li, Lg;
    LLVMValueRef ob = cloop_open(&k, &Lo, I(&k, 0), I(&k, C), "ob");
    LLVMValueRef h0 = cloop_open(&k, &Lh, I(&k, 0), I(&k, Ho), "h0");
    LLVMValueRef sg = NG > 1 ? cloop_open(&k, &Lg, I(&k, 0), I(&k, NG), "sg") : NULL;
    LLVMValueRef col0 = sg ? LLVMBuildNSWMul(k.b, sg, I(&k, tl.VS * L), "") : I(&k, 0);   /* in dy */
    for (int a = 0; a < na; a++) LLVMBuildStore(k.b, LLVMConstNull(k.vt), acc[a]);
    LLVMValueRef ci = cloop_open(&k, &Li, I(&k, 0), I(&k, O), "ci");   /* dy's channel */
    pf_step(&k, &pf);
    LLVMValueRef cur[CG_MAX_ACCS];
    for (int a = 0; a < na; a++) cur[a] = LLVMBuildLoad2(k.b, k.vt, acc[a], "");
    /* dy vectors by (row relative to h0, segment, column shift), loaded once */
    struct { int64_t rel, seg, s; LLVMValueRef v; } memo[4 * CG_MAX_ACCS];
    int nm = 0;
    for (int o = 0; o < OB; o++) {
        LLVMValueRef co = LLVMBuildNSWAdd(k.b, ob, I(&k, o), "");
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
                int64_t ph = (kh + P) & 1, dr = (ph + P - kh) / 2, pw = (kw + P) & 1, ds = (pw + P - kw) / 2;
                RRC_ASSERT(dr >= 0 && dr <= 1 && ds >= 0 && ds <= 1);
                /* w[ci][co][kh][kw] */
                LLVMValueRef widx = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, ci, I(&k, C), ""), co, ""), I(&k, K * K), ""), I(&k, kh * K + kw), "");
                LLVMValueRef ws = splat(&k, LLVMBuildLoad2(k.b, cg->f32, fptr(&k, wt, widx), ""));
                for (int v = 0; v < V; v++) {
                    int64_t r, seg;
                    tile_vec(&tl, Wo, L, v, &r, &seg);
                    LLVMValueRef ld = NULL;
                    for (int m = 0; m < nm && !ld; m++)
                        if (memo[m].rel == r + dr && memo[m].seg == seg && memo[m].s == ds) ld = memo[m].v;
                    if (!ld) {
                        RRC_ASSERT(nm < 4 * CG_MAX_ACCS);
                        ld = pad_vec(&k, &pd, ci, LLVMBuildNSWAdd(k.b, h0, I(&k, r + dr), ""), ds,
                                     LLVMBuildNSWAdd(k.b, col0, I(&k, seg * L), ""));
                        memo[nm].rel = r + dr, memo[nm].seg = seg, memo[nm].s = ds, memo[nm].v = ld;
                        nm++;
                    }
                    int a = (int)(((o * V + v) * 2 + ph) * 2 + pw);
                    cur[a] = vfma(&k, ws, ld, cur[a]);
                }
            }
    }
    for (int a = 0; a < na; a++) LLVMBuildStore(k.b, cur[a], acc[a]);
    cloop_close(&k, &Li, 1);
    /* element m of the interleaved (pw = 0, pw = 1) pair is dx column
       2 (b + m / 2) + m % 2: row 2 (a + m / W) + ph, column seg * 2 L + m % W */
    LLVMTypeRef i32 = LLVMInt32TypeInContext(cg->ctx);
    LLVMValueRef mlo[CG_MAX_LANES], mhi[CG_MAX_LANES];
    for (int64_t m = 0; m < L; m++) {
        mlo[m] = LLVMConstInt(i32, (unsigned long long)(m / 2 + (m % 2) * L), 0);
        mhi[m] = LLVMConstInt(i32, (unsigned long long)(L / 2 + m / 2 + (m % 2) * L), 0);
    }
    int64_t cs = W < L ? W : L;   /* floats per store: one dx row's part */
    for (int o = 0; o < OB; o++)
        for (int v = 0; v < V; v++)
            for (int ph = 0; ph < 2; ph++) {
                int64_t r, seg;
                tile_vec(&tl, Wo, L, v, &r, &seg);
                int a0 = (int)(((o * V + v) * 2 + ph) * 2);
                LLVMValueRef e0 = LLVMBuildLoad2(k.b, k.vt, acc[a0], ""), e1 = LLVMBuildLoad2(k.b, k.vt, acc[a0 + 1], "");
                LLVMValueRef half[2] = {LLVMBuildShuffleVector(k.b, e0, e1, LLVMConstVector(mlo, (unsigned)L), ""),
                                        LLVMBuildShuffleVector(k.b, e0, e1, LLVMConstVector(mhi, (unsigned)L), "")};
                LLVMValueRef co = LLVMBuildNSWAdd(k.b, ob, I(&k, o), "");
                for (int64_t m0 = 0; m0 < 2 * L; m0 += cs) {
                    LLVMValueRef val = half[m0 / L];
                    if (cs < L) {
                        LLVMValueRef sel[CG_MAX_LANES];
                        for (int64_t j = 0; j < cs; j++) sel[j] = LLVMConstInt(i32, (unsigned long long)(m0 % L + j), 0);
                        val = LLVMBuildShuffleVector(k.b, val, LLVMGetUndef(k.vt), LLVMConstVector(sel, (unsigned)cs), "");
                    }
                    LLVMValueRef row = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, h0, I(&k, r + m0 / W), ""), I(&k, 2), ""), I(&k, ph), "");
                    LLVMValueRef idx = nchw(&k, n, C, H, W, co, row, seg * 2 * L + m0 % W);
                    if (sg) idx = LLVMBuildNSWAdd(k.b, idx, LLVMBuildNSWMul(k.b, col0, I(&k, 2), ""), "");
                    LLVMValueRef st = LLVMBuildStore(k.b, val, LLVMBuildInBoundsGEP2(k.b, cg->f32, dx, &idx, 1, ""));
                    LLVMSetAlignment(st, 4);
                }
            }
    if (sg) cloop_close(&k, &Lg, 1);
    cloop_close(&k, &Lh, R);
    cloop_close(&k, &Lo, OB);
    LLVMBuildRetVoid(k.b);
    LLVMDisposeBuilder(k.b);
    return k.fn;
}

/* The next image's planes (image n + 1, or n itself for the last one) of
   the values the padding loop streams through (those of the source's
   size): up to PF_STREAMS, the first repeated. */
static void pf_args(CB *k, LLVMValueRef *out, int ns, const Node *in, CgExpr *e, const LLVMValueRef *ext, LLVMValueRef n,
                    LLVMValueRef n1, int64_t img) {
    LLVMValueRef nx = LLVMBuildNSWAdd(k->b, n, I(k, 1), "");
    nx = LLVMBuildSelect(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, nx, n1, ""), nx, n, "");
    LLVMValueRef off = LLVMBuildNSWMul(k->b, nx, I(k, img), "");
    int m = 0;
    for (int i = 0; i < cg_expr_count(e) && m < ns; i++)
        if (node_numel(cg_expr_value(e, i)) == node_numel(in)) out[m++] = fptr(k, ext[i], off);
    RRC_ASSERT(m > 0);
    for (int s = m; s < ns; s++) out[s] = out[0];
}

static int64_t stage_floats(const Geo *g, bool dw, const Target *t);

/* A staged dy (Kernel.apply_in): the BatchNorm backward's second phase
   (an rt_rows_fn over samples), a copy of its `nargs` arguments whose
   slot 0 (dx) each call points into the buffer, and the buffer. */
typedef struct Stage {
    LLVMValueRef fn, args, buf;
    LLVMTypeRef fn_t;
} Stage;

/* From the variant's parameters `first` (the phase, its arguments; the
   third, x, is the caller's to prefetch). */
static Stage stage_init(CB *k, unsigned first, int nargs, int64_t floats) {
    CG *cg = k->cg;
    Stage st;
    LLVMValueRef from = LLVMGetParam(k->fn, first + 1);
    st.fn = LLVMGetParam(k->fn, first);
    LLVMTypeRef at[3] = {cg->ptr, cg->i64, cg->i64};
    st.fn_t = LLVMFunctionType(cg->void_, at, 3, 0);
    st.args = alloca_entry(k, LLVMArrayType2(cg->ptr, (uint64_t)nargs), "aargs");
    for (int i = 1; i < nargs; i++) {
        LLVMValueRef ix = I(k, i);
        LLVMBuildStore(k->b, LLVMBuildLoad2(k->b, cg->ptr, LLVMBuildGEP2(k->b, cg->ptr, from, &ix, 1, ""), ""),
                       LLVMBuildGEP2(k->b, cg->ptr, st.args, &ix, 1, ""));
    }
    st.buf = alloca_entry(k, LLVMArrayType2(cg->f32, (uint64_t)floats), "stage");
    LLVMSetAlignment(st.buf, 64);
    return st;
}

/* Images [n, n + nb) of dx into the buffer; returns where the buffer
   reads as dy does in memory (image n at the buffer's start). */
static LLVMValueRef stage_images(CB *k, const Stage *st, LLVMValueRef n, LLVMValueRef nb, int64_t img) {
    LLVMValueRef back = LLVMBuildNSWMul(k->b, n, I(k, -img), "");
    LLVMValueRef dy = LLVMBuildGEP2(k->b, k->cg->f32, st->buf, &back, 1, "dyst");
    LLVMBuildStore(k->b, dy, st->args);
    LLVMValueRef cargs[3] = {st->args, n, LLVMBuildNSWAdd(k->b, n, nb, "")};
    LLVMBuildCall2(k->b, st->fn_t, st->fn, cargs, 3, "");
    return dy;
}

/* The forward's weights of a gray input, [O][1][K][K]: w[o][0][t] +
   w[o][1][t] + ... in channel order, in f32, into a stack array made once
   per call. */
static LLVMValueRef gray_weights(CB *k, LLVMValueRef w, const Geo *g) {
    int64_t KK = g->K * g->K, O = g->O, C = g->C;
    LLVMValueRef ws = alloca_entry(k, LLVMArrayType2(k->cg->f32, (uint64_t)(O * KK)), "wgray");
    CLoop Lj;
    LLVMValueRef j = cloop_open(k, &Lj, I(k, 0), I(k, O * KK), "wg");
    LLVMValueRef o = LLVMBuildSDiv(k->b, j, I(k, KK), ""), t = LLVMBuildSRem(k->b, j, I(k, KK), "");
    LLVMValueRef base = LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, o, I(k, C * KK), ""), t, ""), s = NULL;
    for (int64_t c = 0; c < C; c++) {
        LLVMValueRef v = LLVMBuildLoad2(k->b, k->cg->f32, fptr(k, w, LLVMBuildNSWAdd(k->b, base, I(k, c * KK), "")), "");
        s = s ? LLVMBuildFAdd(k->b, s, v, "") : v;
    }
    LLVMBuildStore(k->b, s, fptr(k, ws, j));
    cloop_close(k, &Lj, 1);
    return ws;
}

/* A direct kernel for one input expression: pads each image of [n0, n1)
   through it (x for the forward, dy for the input gradient), then runs the
   shared core on it. */
static LLVMValueRef build(CG *cg, const char *name, const char *core_name, const Geo *gx, bool dx, const Node *in, CgExpr *e,
                          bool stats, CgExpr *epi, bool sums, bool gray, int staged) {
    /* gray (forward only): the core convolves channel 0 of x's gx->C with
       the weights summed over them (passes/fuse.c, gray_conv) */
    Geo g1 = *gx;
    if (gray) g1.C = 1;
    const Geo *g = &g1;
    LLVMValueRef core = LLVMGetNamedFunction(cg->mod, core_name);
    if (!core) core = dx && g->S == 2 ? build_dx2_core(cg, core_name, g) : build_core(cg, core_name, g, dx, stats, epi, sums);
    CB k = cb_of(cg);
    int64_t Ci = dx ? g->O : g->C, Co = dx ? g->C : g->O, Cimg = dx ? Ci : gx->C;   /* Cimg: channels of a source image */
    /* w, out, what the input expression reads, then (stats) the per-image
       statistics, double [n1 - n0][2][Co], or what the epilogue reads and
       (sums) the workspace */
    int ne = epi_count(epi) + (sums ? 1 : 0), npv = 2 + cg_expr_count(e) + (stats ? 1 : 0) + ne;
    int np = npv + (staged ? 3 : 0);   /* staged (input gradient): see build_dw */
    LLVMTypeRef body_t = body_type(cg, np);
    begin_fn(&k, name, body_t, npv);
    LLVMValueRef wt = LLVMGetParam(k.fn, 0), y = LLVMGetParam(k.fn, 1), ext[MAX_PTRS];
    for (int i = 2; i < 2 + cg_expr_count(e); i++) ext[i - 2] = LLVMGetParam(k.fn, (unsigned)i);
    LLVMValueRef x = ext[0], n0 = LLVMGetParam(k.fn, (unsigned)np), n1 = LLVMGetParam(k.fn, (unsigned)np + 1);
    cg_expr_begin(e, k.b, ext);
    RRC_ASSERT(!staged || (dx && cg_expr_is_load(e)));
    Stage st = {0};
    if (staged) st = stage_init(&k, (unsigned)npv, staged, stage_floats(g, false, cg->t));
    if (gray) wt = gray_weights(&k, wt, gx);
    Pad pd;
    pad_init(&k, &pd, g, dx, Ci);
    LLVMValueRef rowtmp = alloca_entry(&k, LLVMArrayType2(cg->f32, (uint64_t)pad_tmp_floats(&pd)), "rowtmp");
    CLoop Ln;
    LLVMValueRef n = cloop_open(&k, &Ln, n0, n1, "n");
    LLVMValueRef pfext[MAX_PTRS];   /* staged: prefetch the x dy is made from */
    memcpy(pfext, ext, sizeof pfext);
    if (staged) {
        x = stage_images(&k, &st, n, I(&k, 1), Cimg * pd.SH * pd.SW);
        pfext[0] = LLVMGetParam(k.fn, (unsigned)npv + 2);
    }
    pad_fill(&k, &pd, e, x, n, I(&k, 0), Cimg, rowtmp, I(&k, 0), Ci);
    int ns = pf_streams(dx);
    unsigned nfix = (stats ? 5 : 4) + (unsigned)ne, nca = nfix + (unsigned)ns;
    LLVMValueRef ca[5 + MAX_PTRS + PF_STREAMS] = {pd.buf, wt, y, n, NULL};
    if (stats) {
        LLVMValueRef off = LLVMBuildNSWMul(k.b, LLVMBuildNSWSub(k.b, n, n0, ""), I(&k, 2 * Co), "");
        ca[4] = LLVMBuildInBoundsGEP2(k.b, LLVMDoubleTypeInContext(cg->ctx), LLVMGetParam(k.fn, (unsigned)np - 1), &off, 1, "");
    }
    for (int i = 0; i < ne; i++) ca[4 + i] = LLVMGetParam(k.fn, (unsigned)(npv - ne + i));
    RRC_ASSERT(!dx || cg_expr_is_load(e));   /* pf_streams */
    pf_args(&k, ca + nfix, ns, in, e, pfext, n, n1, Cimg * pd.SH * pd.SW);
    LLVMBuildCall2(k.b, core_type(cg, nca, 1), core, ca, nca, "");
    cloop_close(&k, &Ln, 1);
    LLVMBuildRetVoid(k.b);
    LLVMValueRef wf = cg_rows_wrapper(k.cg, k.b, k.fn, body_t, name, np);
    LLVMDisposeBuilder(k.b);
    return wf;
}

/* How the weight gradient walks the batch: calls of NB images and cblk
   input channels (docs/DECISIONS.md has the measurements).
   - 3x3 taps on planes of DW_ONE_IMAGE pixels or more whose O x C x 9
     vector partials fit in 5/8 of the L2: one image and every input
     channel per call, and the core prefetches the next image's input and
     dy while it computes. The 1x1 projections keep the second plan, which
     was as fast for them.
   - Otherwise blocks of input channels whose partials stay within a
     quarter of the L2, and several images per call on small planes, so
     that the partials loaded and stored per (output channels, input
     channel) serve at least about DW_VECS_PER_PASS vectors of the plane. */
typedef struct DwPlan {
    int64_t cblk, NB;
    bool prefetch;
} DwPlan;

#define DW_ONE_IMAGE 256
#define DW_VECS_PER_PASS 64
#define DW_MAX_IMAGES 8

static DwPlan dw_plan(const Geo *g, const Target *t) {
    int64_t KK = g->K * g->K, L = t->lanes, vecs = g->Ho * g->Wo / L, part = KK * L * 4;   /* bytes per channel pair */
    if (g->K == 3 && g->Ho * g->Wo >= DW_ONE_IMAGE && g->O * g->C * part <= t->l2 * 5 / 8)
        return (DwPlan){g->C, 1, true};
    int64_t cblk = g->C;
    while (cblk > 1 && (g->O * cblk * part > t->l2 / 4 || g->C % cblk)) cblk--;
    int64_t nb = vecs >= DW_VECS_PER_PASS ? 1 : DW_VECS_PER_PASS / (vecs ? vecs : 1);
    if (nb > DW_MAX_IMAGES) nb = DW_MAX_IMAGES;
    return (DwPlan){cblk, nb, nb == 1 && cblk == g->C};
}

/* Vector rows per step of the weight gradient's core (before fitting the
   plane): they share their input loads. */
static int64_t dw_rows(const Geo *g) { return g->K == 1 ? 2 : 4; }

/* Output channels per step of the weight gradient's core: OB x K x K
   accumulators and OB x RB dy vectors, plus one input vector, in the
   registers (2 x 9 for 3x3 and 8 for 1x1 with 32 registers; 1 x 9 and 4
   with 16), at most DW_MAX_OB. */
#define DW_MAX_OB 8
static int64_t dw_ob(const Geo *g, const Target *t) {
    int64_t ob = (t->vregs - 1) / (g->K * g->K + dw_rows(g));
    if (ob > DW_MAX_OB) ob = DW_MAX_OB;
    if (ob < 1) ob = 1;
    while (g->O % ob) ob--;
    return ob;
}

/* The weight gradient over images [n0, n1), written (not added) to out
   [O][C][K][K]. The core adds the contribution of images [n, n + nb) of one
   input channel block to the vector partials, from their padded copies
   (slot j of the buffer holds image n + j): core(xp, dy, accv, n, nb). Per
   OB output channels and input channel, OB x K x K vector accumulators run
   over the dy planes. It is shared by every input expression of the
   shape. The partials live in a [O * block * K * K] array across images
   and are summed lane by lane in order at the end
   (llvm.vector.reduce.fadd without reassociation: the same bits whatever
   the vector unit). */
static LLVMValueRef build_dw_core(CG *cg, const char *name, const Geo *g) {
    CB k = cb_of(cg);
    int64_t C = g->C, O = g->O, H = g->Ho, W = g->Wo, K = g->K, KK = K * K;   /* H, W: dy's planes */
    int64_t L = k.L, OB = dw_ob(g, cg->t);
    int64_t nseg = W >= L ? W / L : 1, hstep = W >= L ? 1 : L / W;   /* vectors per row step, rows per step */
    DwPlan plan = dw_plan(g, cg->t);
    int64_t cblk = plan.cblk, NB = plan.NB;
    /* (xp, dy, accv, n, nb[, the next image's x streams and dy]) */
    bool pf_on = plan.prefetch;
    begin_fn(&k, name, core_type(cg, pf_on ? 5 + PF_STREAMS + 1 : 5, 2), 3);
    Pad pd;
    pad_layout(&pd, g, false, NB * cblk, L);
    /* RB vector rows per step share their input vectors: taps of different
       rows that read the same vector of the padded copy load it once (3x3
       at stride 1, wide planes: 3 (RB + 2) x loads and 2 RB dy loads for
       18 RB FMAs instead of 11 loads per 18) */
    int64_t RB = dw_rows(g);
    while (H % (RB * hstep)) RB--;
    Pf pfx, pfy;
    if (pf_on) {   /* one image per call: the next image's x streams and dy, over the h steps */
        int64_t iters = (O / OB) * cblk * (H / (RB * hstep));
        pf_init(&k, &pfx, 5, PF_STREAMS, C * g->H * g->W, iters);
        pf_init(&k, &pfy, 5 + PF_STREAMS, 1, O * H * W, iters);
    }
    pd.buf = LLVMGetParam(k.fn, 0);
    LLVMValueRef dy = LLVMGetParam(k.fn, 1), accv = LLVMGetParam(k.fn, 2), nbase = LLVMGetParam(k.fn, 3);
    LLVMValueRef nb = LLVMGetParam(k.fn, 4);
    CLoop Lo, Lc, Lh, Lj;
    /* stride 2: input channels outside, so that one channel's six copies stay
       in L1 while every output channel passes over them */
    bool c_out = g->S == 2;
    LLVMValueRef o0, c;
    if (c_out) {
        c = cloop_open(&k, &Lc, I(&k, 0), I(&k, cblk), "c");
        o0 = cloop_open(&k, &Lo, I(&k, 0), I(&k, O), "o0");
    } else {
        o0 = cloop_open(&k, &Lo, I(&k, 0), I(&k, O), "o0");
        c = cloop_open(&k, &Lc, I(&k, 0), I(&k, cblk), "c");   /* within the block */
    }
    enum { MAXA = DW_MAX_OB * 9 > CG_MAX_ACCS ? DW_MAX_OB * 9 : CG_MAX_ACCS };
    RRC_ASSERT(OB * KK <= MAXA);
    LLVMValueRef slot[MAXA], cur[MAXA], car[MAXA];   /* [i * KK + tap] */
    int na = (int)(OB * KK);
    for (int a = 0; a < na; a++) {
        /* accv[((o0 + i) * cblk + c) * KK + t] */
        LLVMValueRef ix = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, LLVMBuildNSWAdd(k.b, o0, I(&k, a / KK), ""), I(&k, cblk), ""), c, ""), I(&k, KK), ""), I(&k, a % KK), "");
        slot[a] = LLVMBuildInBoundsGEP2(k.b, k.vt, accv, &ix, 1, "");
        /* the plane, carried through allocas so the h loop keeps them in registers */
        car[a] = alloca_entry(&k, k.vt, "a");
        LLVMBuildStore(k.b, LLVMBuildLoad2(k.b, k.vt, slot[a], ""), car[a]);
    }
    LLVMValueRef jj = cloop_open(&k, &Lj, I(&k, 0), nb, "j");
    LLVMValueRef n = LLVMBuildNSWAdd(k.b, nbase, jj, "n");
    LLVMValueRef bch = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, jj, I(&k, cblk), ""), c, "");   /* slot j, channel c */
    LLVMValueRef h = cloop_open(&k, &Lh, I(&k, 0), I(&k, H), "h");
    if (pf_on) {
        pf_step(&k, &pfx);
        pf_step(&k, &pfy);
    }
    for (int a = 0; a < na; a++) cur[a] = LLVMBuildLoad2(k.b, k.vt, car[a], "");
    for (int64_t seg = 0; seg < nseg; seg++) {
        LLVMValueRef d[DW_MAX_OB][4];
        for (int64_t r = 0; r < RB; r++)
            for (int i = 0; i < OB; i++) {
                LLVMValueRef ix = nchw(&k, n, O, H, W, LLVMBuildNSWAdd(k.b, o0, I(&k, i), ""),
                                       LLVMBuildNSWAdd(k.b, h, I(&k, r * hstep), ""), seg * L);
                d[i][r] = LLVMBuildLoad2(k.b, k.vt, fptr(&k, dy, ix), "");
                LLVMSetAlignment(d[i][r], 4);
            }
        /* taps (r, kh, kw) by the vector they read: (copy, row r * hstep +
           row offset, column); in order of that row, each vector loaded once */
        int64_t nt = RB * KK, key[4 * 9][3];
        bool done[4 * 9] = {false};
        int64_t maxrel = 0;
        for (int64_t t = 0; t < nt; t++) {
            int64_t r = t / KK, kh = (t % KK) / K, kw = t % K, ro;
            pad_tap(&pd, (int)kh, (int)kw, seg, &key[t][0], &ro, &key[t][2]);
            key[t][1] = r * hstep + ro;
            if (key[t][1] > maxrel) maxrel = key[t][1];
        }
        for (int64_t st = 0; st <= maxrel; st++)
            for (int64_t t = 0; t < nt; t++) {
                if (done[t] || key[t][1] != st) continue;
                int64_t q = key[t][0];
                LLVMValueRef ld = pad_vec(&k, &pd, bch, LLVMBuildNSWAdd(k.b, h, I(&k, st), ""), q, I(&k, key[t][2]));
                for (int64_t u = t; u < nt; u++) {
                    if (done[u] || key[u][0] != q || key[u][1] != st || key[u][2] != key[t][2]) continue;
                    done[u] = true;
                    int64_t ru = u / KK, tap = u % KK;
                    for (int i = 0; i < OB; i++) cur[i * KK + tap] = vfma(&k, d[i][ru], ld, cur[i * KK + tap]);
                }
            }
    }
    for (int a = 0; a < na; a++) LLVMBuildStore(k.b, cur[a], car[a]);
    cloop_close(&k, &Lh, hstep * RB);
    cloop_close(&k, &Lj, 1);
    for (int a = 0; a < na; a++) LLVMBuildStore(k.b, LLVMBuildLoad2(k.b, k.vt, car[a], ""), slot[a]);
    if (c_out) {
        cloop_close(&k, &Lo, OB);
        cloop_close(&k, &Lc, 1);
    } else {
        cloop_close(&k, &Lc, 1);
        cloop_close(&k, &Lo, OB);
    }
    LLVMBuildRetVoid(k.b);
    LLVMDisposeBuilder(k.b);
    return k.fn;
}

/* The floats of the buffer a staged dy takes: dy's image (O x Ho x Wo)
   times the images per call, NB of a weight gradient's (DwPlan), one of an
   input gradient's (build_dw, build). */
static int64_t stage_floats(const Geo *g, bool dw, const Target *t) {
    return (dw ? dw_plan(g, t).NB : 1) * g->O * g->Ho * g->Wo;
}

/* A weight gradient walking its input channels in several blocks would
   make each image's dy once per block: only one block stages. */
bool cg_conv_stages_dy(const Node *n, const Target *t) {
    if ((n->op != OP_CONV2D_DW && n->op != OP_CONV2D_DX) || !n->direct) return false;
    Geo g = geo_of(n);
    if (n->gray_x) g.C = 1;
    bool dw = n->op == OP_CONV2D_DW;
    return (!dw || dw_plan(&g, t).cblk == g.C) && stage_floats(&g, dw, t) * 4 <= DIRECT_STACK_MAX / 4;
}

/* staged > 0: dy is a BatchNorm backward applied here (Kernel.apply_in):
   three more parameters follow the others, that kernel's second phase
   (an rt_rows_fn over samples), its `staged` arguments (slot 0, dx, set
   here) and x, the tensor it reads most (prefetched for the next image).
   Each call's images of dy are made into a buffer on the stack (Stage),
   then read by the core as a stored dy would be. */
static LLVMValueRef build_dw(CG *cg, const char *name, const char *core_name, const Geo *gx, const Node *in, CgExpr *e,
                             bool gray, int staged) {
    /* gray: the gradient of channel 0 of x's gx->C, stored to each of them
       (passes/fuse.c, gray_conv) */
    Geo g1 = *gx;
    if (gray) g1.C = 1;
    const Geo *g = &g1;
    LLVMValueRef core = LLVMGetNamedFunction(cg->mod, core_name);
    if (!core) core = build_dw_core(cg, core_name, g);
    CB k = cb_of(cg);
    int64_t L = k.L, C = g->C, O = g->O, KK = g->K * g->K, Cimg = gx->C;
    int npx = 2 + cg_expr_count(e);   /* dy, out, then what the x expression reads */
    int np = npx + (staged ? 3 : 0);
    LLVMTypeRef body_t = body_type(cg, np);
    begin_fn(&k, name, body_t, npx);
    LLVMValueRef dy = LLVMGetParam(k.fn, 0), out = LLVMGetParam(k.fn, 1), ext[MAX_PTRS];
    for (int i = 2; i < npx; i++) ext[i - 2] = LLVMGetParam(k.fn, (unsigned)i);
    LLVMValueRef x = ext[0], n0 = LLVMGetParam(k.fn, (unsigned)np), n1 = LLVMGetParam(k.fn, (unsigned)np + 1);
    cg_expr_begin(e, k.b, ext);
    int64_t img = O * g->Ho * g->Wo;   /* floats of dy's image */
    Stage st = {0};
    if (staged) st = stage_init(&k, (unsigned)npx, staged, stage_floats(g, true, cg->t));
    /* input channels in blocks whose vector partials (O x cblk x KK) stay in L2 */
    DwPlan plan = dw_plan(g, cg->t);
    int64_t cblk = plan.cblk, NB = plan.NB;
    Pad pd;
    pad_init(&k, &pd, g, false, NB * cblk);
    LLVMValueRef rowtmp = alloca_entry(&k, LLVMArrayType2(cg->f32, (uint64_t)pad_tmp_floats(&pd)), "rowtmp");
    int64_t nacc = O * cblk * KK;
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
    pad_fill(&k, &pd, e, x, LLVMBuildNSWAdd(k.b, n, jj, ""), cb0, Cimg, rowtmp, LLVMBuildNSWMul(k.b, jj, I(&k, cblk), ""), cblk);
    cloop_close(&k, &Ls, 1);
    LLVMValueRef dyc = staged ? stage_images(&k, &st, n, nb, img) : dy;
    LLVMValueRef ca[5 + PF_STREAMS + 1] = {pd.buf, dyc, accv, n, nb};
    unsigned nca = 5;
    if (plan.prefetch) {   /* calls of one image: the next one (staged: the x its dy is made from) */
        pf_args(&k, ca + 5, PF_STREAMS, in, e, ext, n, n1, Cimg * g->H * g->W);
        LLVMValueRef nx = LLVMBuildNSWAdd(k.b, n, I(&k, 1), "");
        nx = LLVMBuildSelect(k.b, LLVMBuildICmp(k.b, LLVMIntSLT, nx, n1, ""), nx, n, "");
        ca[5 + PF_STREAMS] = fptr(&k, staged ? LLVMGetParam(k.fn, (unsigned)npx + 2) : dy, LLVMBuildNSWMul(k.b, nx, I(&k, img), ""));
        nca = 5 + PF_STREAMS + 1;
    }
    LLVMBuildCall2(k.b, core_type(cg, nca, 2), core, ca, nca, "");
    cloop_close(&k, &Ln, NB);
    /* out[o][cb0 + c][t] = the lanes of accv[(o * cblk + c) * KK + t] summed in order */
    CLoop Lj;
    LLVMValueRef j = cloop_open(&k, &Lj, I(&k, 0), I(&k, nacc), "j");
    LLVMValueRef sum = lanes_sum(&k, LLVMBuildLoad2(k.b, k.vt, LLVMBuildInBoundsGEP2(k.b, k.vt, accv, &j, 1, ""), ""));
    LLVMValueRef o = LLVMBuildSDiv(k.b, j, I(&k, cblk * KK), ""), rest = LLVMBuildSRem(k.b, j, I(&k, cblk * KK), "");
    for (int64_t cc = 0; cc < (gray ? Cimg : 1); cc++) {   /* gray: C == 1, the same gradient for every channel */
        LLVMValueRef oc = LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, o, I(&k, gray ? Cimg : C), ""), LLVMBuildNSWAdd(k.b, cb0, I(&k, cc), ""), "");
        LLVMBuildStore(k.b, sum, fptr(&k, out, LLVMBuildNSWAdd(k.b, LLVMBuildNSWMul(k.b, oc, I(&k, KK), ""), rest, "")));
    }
    cloop_close(&k, &Lj, 1);
    cloop_close(&k, &Lb, cblk);
    LLVMBuildRetVoid(k.b);
    LLVMValueRef wf = cg_rows_wrapper(k.cg, k.b, k.fn, body_t, name, np);
    LLVMDisposeBuilder(k.b);
    return wf;
}

/* ---- Winograd F(2x2, 3x3): stride-1 3x3 forwards and input gradients
   (docs/DECISIONS.md, "Where the K=8 step can still get faster";
   bench/winograd_probe.c models it) ----

   A 2x2 output tile of a channel is A^T [sum_c (G g_oc G^T) . (B^T d_c B)] A,
   d_c the 4x4 input patch at the tile's top left in the zero-padded image:
   16 multiply-adds per tile and input channel instead of 36. Vectors are L
   tiles: an image's when it has L or more (T tiles, T a multiple of L),
   else of G = L / T images (4x4 planes at L = 16: 4 images a group, the
   last group of a call masked to the images it has). Per call the weights
   are transformed once, U[e][o][c]; per group:
     - the images are padded into a parity-split copy (wino_pad: the
       stride-2 layout of pad_row with a fourth column copy), where d[r][s]
       of every tile is a run of T floats: copy (s, r % 2), from row r / 2;
     - input transform: V[e][c] = B^T d B, vectors over tiles;
     - 16 products M[e][o] = sum_c U[e][o][c] V[e][c] in register blocks
       of output channels x tile vectors, as the direct core's tiles;
     - output transform Y = A^T M A (2x2 per tile), interleaved by column
       into output rows; with statistics, per image and channel the shifted
       sums of y and y^2 (the shift: the plane's first output) as the
       direct core makes them.
   Numerics: other roundings than the direct kernel (tests compare both with
   the interpreter by tolerance). Stride-1 input gradients are the same
   forward on dy with the weights turned and transposed (wino_fwd_geo),
   when dy is stored (not a BatchNorm backward applied in its readers) and
   no epilogue rides on them. Not for gray first layers (one input
   channel: the transforms would outweigh the saving). */
bool cg_conv_winograd = true;

/* Input channels a Winograd kernel needs: its transforms grow with C + O,
   its products with C x O. Conv-4's layer 2 (8 channels) still gains; the
   gray first layer (1) is left direct; between them nothing was measured. */
#define WINO_MIN_C 8

static void wino_dims(const Geo *g, int64_t L, int64_t *T, int64_t *G, int64_t *NV) {
    *T = (g->H / 2) * (g->W / 2);
    *G = *T >= L ? 1 : L / *T;
    *NV = *T * *G / L;
}

/* The parity-split padded copy: copy (s, p) row i holds padded row 2i + p
   at columns 2j + s, j < W / 2; the layout pad_row makes for a 4-tap
   stride-2 convolution with padding 1. */
static Geo wino_pad(const Geo *g) {
    Geo p = *g;
    p.K = 4, p.S = 2, p.P = 1, p.Ho = g->H / 2, p.Wo = g->W / 2;
    return p;
}

static int64_t wino_floats(const Geo *g, int64_t L) {
    int64_t T, G, NV;
    wino_dims(g, L, &T, &G, &NV);
    Geo p = wino_pad(g);
    return conv_pad_floats(conv_pad(p.H, p.W, p.K, p.S, false, (int)L), G * g->C) + 16 * g->O * g->C +
           16 * (g->C + g->O) * NV * L + g->W;
}

/* The forward a stride-1 input gradient is: dy (O channels) convolved into
   dx (C channels) with the weights flipped and transposed. */
static Geo wino_fwd_geo(const Node *n, const Geo *g) {
    Geo f = *g;
    if (n->op == OP_CONV2D_DX) f.C = g->O, f.O = g->C;
    return f;
}

static bool wino_ok(const Node *n, const Geo *g0, const Target *t, bool gray) {
    int64_t L = t->lanes, T, G, NV;
    Geo f = wino_fwd_geo(n, g0);
    const Geo *g = &f;
    if (!cg_conv_winograd || (n->op != OP_CONV2D && n->op != OP_CONV2D_DX) || gray || g->K != 3 || g->S != 1 ||
        g->P != 1 || g->C < WINO_MIN_C)
        return false;
    if (g->H % 2 || g->W % 2 || g->Ho != g->H || g->Wo != g->W || L > CG_MAX_LANES) return false;
    wino_dims(g, L, &T, &G, &NV);
    /* whole vectors of tiles; output rows of W <= 2L floats, whole in the interleaved pair */
    if ((T >= L ? T % L : L % T) || g->W > 2 * L || (2 * L) % g->W) return false;
    /* the tile vectors' loads, as many accumulators and a broadcast in the registers (AVX2 on 16x16 planes: no) */
    if (2 * NV + 1 > t->vregs || NV > CG_MAX_ACCS / 2) return false;
    return wino_floats(g, L) * 4 <= DIRECT_STACK_MAX;
}

bool cg_conv_uses_winograd(const Node *n, const Target *t) {
    Geo g = geo_of(n);
    return n->direct && wino_ok(n, &g, t, n->gray_x);
}

/* Opens `if (cond)`; wino_endif closes it. */
static LLVMBasicBlockRef wino_if(CB *k, LLVMValueRef cond) {
    LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(k->cg->ctx, k->fn, "then");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(k->cg->ctx, k->fn, "endif");
    LLVMBuildCondBr(k->b, cond, then, done);
    LLVMPositionBuilderAtEnd(k->b, then);
    return done;
}

static void wino_endif(CB *k, LLVMBasicBlockRef done) {
    LLVMBuildBr(k->b, done);
    LLVMPositionBuilderAtEnd(k->b, done);
}

static LLVMValueRef vload(CB *k, LLVMValueRef base, LLVMValueRef idx, unsigned align) {
    LLVMValueRef v = LLVMBuildLoad2(k->b, k->vt, fptr(k, base, idx), "");
    LLVMSetAlignment(v, align);
    return v;
}

static void vstore(CB *k, LLVMValueRef v, LLVMValueRef base, LLVMValueRef idx, unsigned align) {
    LLVMSetAlignment(LLVMBuildStore(k->b, v, fptr(k, base, idx)), align);
}

/* U[e][o][c] = (G g G^T)[e / 4][e % 4] of every weight plane g = w[o][c]
   (w [O][C][3][3]); transposed (an input gradient: w [C][O][3][3]), g =
   w[c][o] turned by 180 degrees. */
static void wino_weights(CB *k, LLVMValueRef w, LLVMValueRef U, int64_t O, int64_t C, bool transposed) {
    LLVMBuilderRef b = k->b;
    LLVMValueRef half = LLVMConstReal(k->cg->f32, 0.5);
    CLoop Lj;
    LLVMValueRef j = cloop_open(k, &Lj, I(k, 0), I(k, O * C), "wu");   /* j = o C + c */
    LLVMValueRef o = LLVMBuildSDiv(b, j, I(k, C), ""), c = LLVMBuildSRem(b, j, I(k, C), "");
    LLVMValueRef plane = transposed ? LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, c, I(k, O), ""), o, "") : j;
    LLVMValueRef gw[9], t[4][3];
    for (int i = 0; i < 9; i++) {
        LLVMValueRef at = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, plane, I(k, 9), ""), I(k, transposed ? 8 - i : i), "");
        gw[i] = LLVMBuildLoad2(b, k->cg->f32, fptr(k, w, at), "");
    }
    for (int col = 0; col < 3; col++) {   /* G g: rows */
        LLVMValueRef g0 = gw[col], g1 = gw[3 + col], g2 = gw[6 + col];
        t[0][col] = g0;
        t[1][col] = LLVMBuildFMul(b, half, LLVMBuildFAdd(b, LLVMBuildFAdd(b, g0, g1, ""), g2, ""), "");
        t[2][col] = LLVMBuildFMul(b, half, LLVMBuildFAdd(b, LLVMBuildFSub(b, g0, g1, ""), g2, ""), "");
        t[3][col] = g2;
    }
    for (int r = 0; r < 4; r++) {   /* (G g) G^T: columns */
        LLVMValueRef g0 = t[r][0], g1 = t[r][1], g2 = t[r][2];
        LLVMValueRef u[4] = {g0, LLVMBuildFMul(b, half, LLVMBuildFAdd(b, LLVMBuildFAdd(b, g0, g1, ""), g2, ""), ""),
                             LLVMBuildFMul(b, half, LLVMBuildFAdd(b, LLVMBuildFSub(b, g0, g1, ""), g2, ""), ""), g2};
        for (int s = 0; s < 4; s++) {
            LLVMValueRef at = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, I(k, (r * 4 + s) * O), o, ""), I(k, C), ""), c, "");
            LLVMBuildStore(b, u[s], fptr(k, U, at));
        }
    }
    cloop_close(k, &Lj, 1);
}

/* d[r][s] of tile vector v of input channel c, from the parity-split copy:
   T floats of each of the group's images. */
static LLVMValueRef wino_d(CB *k, const Pad *pd, LLVMValueRef c, int64_t C, int r, int s, int64_t v, int64_t T, int64_t G) {
    int64_t q = s * 2 + (r & 1);
    if (G == 1) return vload(k, pd->buf, pad_off(k, pd, c, I(k, r >> 1), q, I(k, v * k->L)), 4);
    CG *cg = k->cg;
    LLVMTypeRef i32 = LLVMInt32TypeInContext(cg->ctx);
    LLVMValueRef part[CG_MAX_LANES];
    for (int64_t g = 0; g < G; g++) {
        LLVMValueRef ch = LLVMBuildNSWAdd(k->b, c, I(k, g * C), "");
        part[g] = LLVMBuildLoad2(k->b, LLVMVectorType(cg->f32, (unsigned)T), fptr(k, pd->buf, pad_off(k, pd, ch, I(k, r >> 1), q, I(k, 0))), "");
        LLVMSetAlignment(part[g], 4);
    }
    for (int64_t w = T; w < k->L; w *= 2)   /* concatenate pairwise: widths T, 2T, ... L */
        for (int64_t g = 0; g < k->L / w; g += 2) {
            LLVMValueRef m[CG_MAX_LANES];
            for (int64_t l = 0; l < 2 * w; l++) m[l] = LLVMConstInt(i32, (unsigned long long)l, 0);
            part[g / 2] = LLVMBuildShuffleVector(k->b, part[g], part[g + 1], LLVMConstVector(m, (unsigned)(2 * w)), "");
        }
    return part[0];
}

/* g: the forward's geometry (wino_fwd_geo); transposed: an input gradient
   (g->C: dy's channels, g->O: dx's), no statistics. */
static LLVMValueRef build_wino(CG *cg, const char *name, const Geo *g, bool transposed, CgExpr *e, bool stats) {
    CB k = cb_of(cg);
    LLVMBuilderRef b;
    int64_t L = k.L, C = g->C, O = g->O, H = g->H, W = g->W, TW = W / 2, T, G, NV;
    wino_dims(g, L, &T, &G, &NV);
    int np = 2 + cg_expr_count(e) + (stats ? 1 : 0);
    LLVMTypeRef body_t = body_type(cg, np);
    begin_fn(&k, name, body_t, np);
    b = k.b;
    LLVMValueRef wt = LLVMGetParam(k.fn, 0), y = LLVMGetParam(k.fn, 1), ext[MAX_PTRS];
    for (int i = 2; i < 2 + cg_expr_count(e); i++) ext[i - 2] = LLVMGetParam(k.fn, (unsigned)i);
    LLVMValueRef n0 = LLVMGetParam(k.fn, (unsigned)np), n1 = LLVMGetParam(k.fn, (unsigned)np + 1);
    LLVMValueRef stp = stats ? LLVMGetParam(k.fn, (unsigned)np - 1) : NULL;
    cg_expr_begin(e, b, ext);
    Geo pg = wino_pad(g);
    Pad pd;
    pad_init(&k, &pd, &pg, false, G * C);
    LLVMValueRef rowtmp = alloca_entry(&k, LLVMArrayType2(cg->f32, (uint64_t)W), "rowtmp");
    LLVMValueRef U = alloca_entry(&k, LLVMArrayType2(cg->f32, (uint64_t)(16 * O * C)), "wu");
    LLVMValueRef V = alloca_entry(&k, LLVMArrayType2(cg->f32, (uint64_t)(16 * C * NV * L)), "wv");
    LLVMValueRef M = alloca_entry(&k, LLVMArrayType2(cg->f32, (uint64_t)(16 * O * NV * L)), "wm");
    LLVMSetAlignment(V, 64);
    LLVMSetAlignment(M, 64);
    unsigned va = (unsigned)(L * 4);
    wino_weights(&k, wt, U, O, C, transposed);

    CLoop Ln, Lc, Le, Lo, Li, Lo2;
    LLVMValueRef n = cloop_open(&k, &Ln, n0, n1, "n");
    LLVMValueRef left = LLVMBuildNSWSub(b, n1, n, ""), ngv = NULL;   /* images of this group: min(G, left) */
    if (G > 1) ngv = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, left, I(&k, G), ""), left, I(&k, G), "");
    for (int64_t gi = 0; gi < G; gi++) {
        LLVMBasicBlockRef done = gi ? wino_if(&k, LLVMBuildICmp(b, LLVMIntSLT, I(&k, gi), ngv, "")) : NULL;
        pad_fill(&k, &pd, e, ext[0], LLVMBuildNSWAdd(b, n, I(&k, gi), ""), I(&k, 0), C, rowtmp, I(&k, gi * C), C);
        if (done) wino_endif(&k, done);
    }

    /* input transform: V[e][c][v] */
    LLVMValueRef c = cloop_open(&k, &Lc, I(&k, 0), I(&k, C), "wc");
    for (int64_t v = 0; v < NV; v++) {
        LLVMValueRef d[4][4], q[4][4];
        for (int r = 0; r < 4; r++)
            for (int s = 0; s < 4; s++) d[r][s] = wino_d(&k, &pd, c, C, r, s, v, T, G);
        for (int s = 0; s < 4; s++) {   /* B^T d */
            q[0][s] = LLVMBuildFSub(b, d[0][s], d[2][s], "");
            q[1][s] = LLVMBuildFAdd(b, d[1][s], d[2][s], "");
            q[2][s] = LLVMBuildFSub(b, d[2][s], d[1][s], "");
            q[3][s] = LLVMBuildFSub(b, d[1][s], d[3][s], "");
        }
        for (int r = 0; r < 4; r++) {   /* (B^T d) B */
            LLVMValueRef vv[4] = {LLVMBuildFSub(b, q[r][0], q[r][2], ""), LLVMBuildFAdd(b, q[r][1], q[r][2], ""),
                                  LLVMBuildFSub(b, q[r][2], q[r][1], ""), LLVMBuildFSub(b, q[r][1], q[r][3], "")};
            for (int s = 0; s < 4; s++) {
                LLVMValueRef at = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, I(&k, (r * 4 + s) * C), c, ""), I(&k, NV * L), ""), I(&k, v * L), "");
                vstore(&k, vv[s], V, at, va);
            }
        }
    }
    cloop_close(&k, &Lc, 1);

    /* the 16 products: blocks of OB output channels x NV tile vectors */
    int64_t OB = tile_ob(tile_accs(cg->t, NV), NV, O);
    RRC_ASSERT(OB * NV <= CG_MAX_ACCS);
    LLVMValueRef acc[CG_MAX_ACCS];
    for (int a = 0; a < OB * NV; a++) acc[a] = alloca_entry(&k, k.vt, "wacc");
    LLVMValueRef ev = cloop_open(&k, &Le, I(&k, 0), I(&k, 16), "we");
    LLVMValueRef ob = cloop_open(&k, &Lo, I(&k, 0), I(&k, O), "wo");
    for (int a = 0; a < OB * NV; a++) LLVMBuildStore(b, LLVMConstNull(k.vt), acc[a]);
    LLVMValueRef ci = cloop_open(&k, &Li, I(&k, 0), I(&k, C), "wi");
    LLVMValueRef cur[CG_MAX_ACCS], vin[CG_MAX_ACCS];
    for (int a = 0; a < OB * NV; a++) cur[a] = LLVMBuildLoad2(b, k.vt, acc[a], "");
    LLVMValueRef vbase = LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, ev, I(&k, C), ""), ci, ""), I(&k, NV * L), "");
    for (int64_t v = 0; v < NV; v++) vin[v] = vload(&k, V, LLVMBuildNSWAdd(b, vbase, I(&k, v * L), ""), va);
    LLVMValueRef ubase = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, ev, I(&k, O), ""), ob, ""), I(&k, C), ""), ci, "");
    for (int64_t a = 0; a < OB; a++) {
        LLVMValueRef u = splat(&k, LLVMBuildLoad2(b, cg->f32, fptr(&k, U, LLVMBuildNSWAdd(b, ubase, I(&k, a * C), "")), ""));
        for (int64_t v = 0; v < NV; v++) cur[a * NV + v] = vfma(&k, u, vin[v], cur[a * NV + v]);
    }
    for (int a = 0; a < OB * NV; a++) LLVMBuildStore(b, cur[a], acc[a]);
    cloop_close(&k, &Li, 1);
    LLVMValueRef mbase = LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, ev, I(&k, O), ""), ob, ""), I(&k, NV * L), "");
    for (int64_t a = 0; a < OB; a++)
        for (int64_t v = 0; v < NV; v++)
            vstore(&k, LLVMBuildLoad2(b, k.vt, acc[a * NV + v], ""), M, LLVMBuildNSWAdd(b, mbase, I(&k, (a * NV + v) * L), ""), va);
    cloop_close(&k, &Lo, OB);
    cloop_close(&k, &Le, 1);

    /* output transform, rows, statistics */
    LLVMTypeRef i32 = LLVMInt32TypeInContext(cg->ctx), f64 = LLVMDoubleTypeInContext(cg->ctx);
    LLVMValueRef mi[2 * CG_MAX_LANES], mk[CG_MAX_LANES];
    for (int64_t m = 0; m < 2 * L; m++) mi[m] = LLVMConstInt(i32, (unsigned long long)((m % 2) * L + m / 2), 0);
    for (int64_t l = 0; l < L; l++) mk[l] = LLVMConstInt(i32, (unsigned long long)(l / T * T), 0);
    LLVMValueRef o = cloop_open(&k, &Lo2, I(&k, 0), I(&k, O), "wy");
    LLVMValueRef s1 = LLVMConstNull(k.vt), s2 = s1, kv = NULL;
    for (int64_t v = 0; v < NV; v++) {
        LLVMValueRef m[4][4], q[2][4], Y[2][2];
        for (int e4 = 0; e4 < 16; e4++) {
            LLVMValueRef at = LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, I(&k, e4 * O), o, ""), I(&k, NV * L), ""), I(&k, v * L), "");
            m[e4 / 4][e4 % 4] = vload(&k, M, at, va);
        }
        for (int s = 0; s < 4; s++) {   /* A^T m */
            q[0][s] = LLVMBuildFAdd(b, LLVMBuildFAdd(b, m[0][s], m[1][s], ""), m[2][s], "");
            q[1][s] = LLVMBuildFSub(b, LLVMBuildFSub(b, m[1][s], m[2][s], ""), m[3][s], "");
        }
        for (int a = 0; a < 2; a++) {   /* (A^T m) A */
            Y[a][0] = LLVMBuildFAdd(b, LLVMBuildFAdd(b, q[a][0], q[a][1], ""), q[a][2], "");
            Y[a][1] = LLVMBuildFSub(b, LLVMBuildFSub(b, q[a][1], q[a][2], ""), q[a][3], "");
        }
        if (stats && v == 0)   /* the shift: each image's first output, its tile 0's pixel (0, 0) */
            kv = LLVMBuildShuffleVector(b, Y[0][0], LLVMGetUndef(k.vt), LLVMConstVector(mk, (unsigned)L), "");
        for (int a = 0; a < 2; a++) {
            if (stats)
                for (int bb = 0; bb < 2; bb++) {
                    LLVMValueRef dd = LLVMBuildFSub(b, Y[a][bb], kv, "");
                    s1 = LLVMBuildFAdd(b, s1, dd, "");
                    s2 = vfma(&k, dd, dd, s2);
                }
            /* element m of the pair: tile v L + m / 2, column parity m % 2:
               W floats a row, rows 2i + a of the tiles' images */
            LLVMValueRef pair = LLVMBuildShuffleVector(b, Y[a][0], Y[a][1], LLVMConstVector(mi, (unsigned)(2 * L)), "");
            for (int64_t ck = 0; ck < 2 * L / W; ck++) {
                int64_t tt = v * L + ck * TW, gi = tt / T, i = tt % T / TW;
                LLVMBasicBlockRef done = gi ? wino_if(&k, LLVMBuildICmp(b, LLVMIntSLT, I(&k, gi), ngv, "")) : NULL;
                LLVMValueRef sel[2 * CG_MAX_LANES];
                for (int64_t l = 0; l < W; l++) sel[l] = LLVMConstInt(i32, (unsigned long long)(ck * W + l), 0);
                LLVMValueRef row = LLVMBuildShuffleVector(b, pair, LLVMGetUndef(LLVMTypeOf(pair)), LLVMConstVector(sel, (unsigned)W), "");
                LLVMValueRef idx = nchw(&k, LLVMBuildNSWAdd(b, n, I(&k, gi), ""), O, H, W, o, I(&k, 2 * i + a), 0);
                LLVMSetAlignment(LLVMBuildStore(b, row, fptr(&k, y, idx)), 4);
                if (done) wino_endif(&k, done);
            }
        }
    }
    if (stats) {   /* image n + gi's mean and squared deviations, at its slot of the call's */
        for (int64_t gi = 0; gi < G; gi++) {
            LLVMBasicBlockRef done = gi ? wino_if(&k, LLVMBuildICmp(b, LLVMIntSLT, I(&k, gi), ngv, "")) : NULL;
            int64_t first = G > 1 ? gi * T : 0, cnt = G > 1 ? T : L;
            LLVMValueRef t1 = LLVMBuildFPExt(b, lanes_sum_part(&k, s1, first, cnt), f64, "");
            LLVMValueRef t2 = LLVMBuildFPExt(b, lanes_sum_part(&k, s2, first, cnt), f64, "");
            LLVMValueRef kd = LLVMBuildFPExt(b, LLVMBuildExtractElement(b, kv, I(&k, first), ""), f64, "");
            LLVMValueRef slot = LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, LLVMBuildNSWSub(b, n, n0, ""), I(&k, gi), ""), I(&k, 2 * O), "");
            LLVMValueRef i1 = LLVMBuildNSWAdd(b, slot, o, "");
            stats_store(&k, t1, t2, kd, (double)(H * W), stp, i1, LLVMBuildNSWAdd(b, i1, I(&k, O), ""));
            if (done) wino_endif(&k, done);
        }
    }
    cloop_close(&k, &Lo2, 1);
    cloop_close(&k, &Ln, G);
    LLVMBuildRetVoid(b);
    LLVMValueRef wf = cg_rows_wrapper(cg, b, k.fn, body_t, name, np);
    LLVMDisposeBuilder(b);
    return wf;
}

/* The args array {w or dy, out, what the input expression reads...} built
   in the step, and the wrapper for node n (a conv2d, conv2d_dx or
   conv2d_dw with n->direct); one function per shape, direction and
   input expression in a module. *nargs: the array's length. */
LLVMValueRef cg_conv_direct_fn(CG *cg, const Node *n, LLVMValueRef *args, int *nargs, bool stats, const Kernel *K) {
    bool tr = n->op == OP_CONV2D_DX, dw = n->op == OP_CONV2D_DW;
    RRC_ASSERT(!stats || n->op == OP_CONV2D);
    RRC_ASSERT(!K || (K->kind == KERNEL_DX_EPI && K->members[0] == n && K->epilogue));
    Geo g = geo_of(n);
    bool gray = n->gray_x;
    RRC_ASSERT(!gray || (!tr && !K));
    const Node *in = dw ? n->in[1] : n->in[0];   /* what is padded: x, or dy for dx */
    const Node *epi_root = K ? K->epilogue : NULL;
    const Node *dg = K ? K->sums[0] : NULL;
    CgExpr *e = cg_expr_new(cg, in), *epi = K ? cg_epi_new(cg, epi_root, n, dg ? dg->in[1] : NULL, dg ? dg->in[2] : NULL) : NULL;
    int ne = epi_count(epi);
    LLVMValueRef afn = NULL, aargs = NULL;
    int nap = 0;   /* > 0: dy is a BatchNorm backward applied here, its phase's arguments */
    if ((dw || tr) && !cg_staged_apply(cg, n, &afn, &aargs, &nap)) nap = 0;
    RRC_ASSERT(cg_expr_count(e) >= 1 && cg_expr_count(e) + ne + (nap ? 3 : 0) <= MAX_PTRS - 3);
    /* the input expression's structure, and the epilogue's, hashed into the names */
    uint64_t hsh = sig_hash(cg_expr_sig(e)), ehsh = epi ? sig_hash(cg_expr_sig(epi)) : 0;
    /* Winograd: forwards, and input gradients of a stored dy without an epilogue */
    bool wino = !K && !nap && !dw && (!tr || cg_expr_is_load(e)) && wino_ok(n, &g, cg->t, gray);
    Geo gw = wino_fwd_geo(n, &g);
    char shape[96];
    snprintf(shape, sizeof shape, "conv%lldx%llds%lld%s.%s.%lldx%lld.%lldx%lld", (long long)g.K, (long long)g.K,
             (long long)g.S, wino ? ".wino" : "", dw ? "dw" : tr ? "dx" : stats ? "fwdstats" : "fwd",
             (long long)(gray ? 1 : g.C), (long long)g.O, (long long)g.H, (long long)g.W);
    char epis[24] = "";
    if (epi) snprintf(epis, sizeof epis, ".e%016llx", (unsigned long long)ehsh);
    char stg[16] = "";   /* the variant only: the core reads a staged dy as a stored one */
    if (nap) snprintf(stg, sizeof stg, ".st%d", nap);
    char name[200];
    snprintf(name, sizeof name, "%s.%s%016llx%s%s%s", shape, cg_expr_is_load(e) ? "x" : "fused", (unsigned long long)hsh, epis,
             stg, gray ? ".gray" : "");
    char wname[240];
    snprintf(wname, sizeof wname, "%s.rows", name);
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, wname);
    char core[160];
    snprintf(core, sizeof core, "%s.core%s", shape, epis);
    if (!f)
        f = wino ? build_wino(cg, name, &gw, tr, e, stats)
            : dw ? build_dw(cg, name, core, &g, in, e, gray, nap)
                 : build(cg, name, core, &g, tr, in, e, stats, epi, dg != NULL, gray, nap);
    int np = 2 + cg_expr_count(e);
    LLVMValueRef arr = LLVMBuildArrayAlloca(cg->b, cg->ptr, LLVMConstInt(cg->i64, (unsigned long long)(np + 2 + ne + 3), 0), "cargs");
    for (int i = 0; i < np; i++) {
        const Node *v = i == 0 ? (dw ? n->in[0] : n->in[1]) : i == 1 ? (epi_root ? epi_root : n) : cg_expr_value(e, i - 2);
        LLVMValueRef ix = LLVMConstInt(cg->i64, (unsigned long long)i, 0);
        LLVMBuildStore(cg->b, nap && v == n->in[0] ? LLVMConstNull(cg->ptr) : cg_ptr(cg, v), LLVMBuildGEP2(cg->b, cg->ptr, arr, &ix, 1, ""));
    }
    if (stats) {   /* the statistics buffer: each thread's own, set by the runtime (rt_k_conv2d_stats) */
        LLVMValueRef ix = LLVMConstInt(cg->i64, (unsigned long long)np, 0);
        LLVMBuildStore(cg->b, LLVMConstNull(cg->ptr), LLVMBuildGEP2(cg->b, cg->ptr, arr, &ix, 1, ""));
        np++;
    }
    for (int i = 0; i < ne; i++, np++) {   /* what the epilogue reads */
        LLVMValueRef ix = LLVMConstInt(cg->i64, (unsigned long long)np, 0);
        LLVMBuildStore(cg->b, cg_ptr(cg, cg_expr_value(epi, i)), LLVMBuildGEP2(cg->b, cg->ptr, arr, &ix, 1, ""));
    }
    if (dg) {   /* the sums' workspace */
        LLVMValueRef ix = LLVMConstInt(cg->i64, (unsigned long long)np++, 0);
        LLVMBuildStore(cg->b, cg_ws(cg), LLVMBuildGEP2(cg->b, cg->ptr, arr, &ix, 1, ""));
    }
    if (nap) {   /* the BatchNorm backward's second phase, its arguments, and the x it reads */
        LLVMValueRef extra[3] = {afn, aargs, cg_ptr(cg, n->in[0]->in[1])};
        for (int i = 0; i < 3; i++, np++) {
            LLVMValueRef ix = LLVMConstInt(cg->i64, (unsigned long long)np, 0);
            LLVMBuildStore(cg->b, extra[i], LLVMBuildGEP2(cg->b, cg->ptr, arr, &ix, 1, ""));
        }
    }
    cg_expr_free(e);
    cg_expr_free(epi);
    *args = arr;
    if (nargs) *nargs = np;
    return f;
}
