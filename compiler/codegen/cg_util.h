/*
** cg_util.h: the bottom layer of codegen, which every other codegen file
** builds on. Codegen's files call each other one way only:
**
**   cg_util  <-  cg_fuse (expressions; elementwise, BatchNorm and pooling
**                kernels)  <-  cg_conv (direct convolutions)  <-  cg_step
**                (the step: one call or kernel per emitting node)  <-
**                cg_llvm (module, target, optimisation, emission)  <-
**                cg_jit (in-process linking)
**
** tools/layering.sh (run by `make test`) checks it on the objects' symbols.
** Not for use outside codegen/.
*/
#ifndef RRC_CG_UTIL_H
#define RRC_CG_UTIL_H

#include <llvm-c/Core.h>

#include "codegen/cg.h"

/* The widest vectors of any target (ir/target.h), in f32 lanes: the size of
   the kernels' arrays of lane constants. */
#define CG_MAX_LANES 16
/* The most accumulators of a register tile on any target. */
#define CG_MAX_ACCS 32
/* BatchNorm backwards waiting for the readers they are applied in, at once. */
#define CG_MAX_STAGED 8

typedef struct CG {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef ptr, i8, i64, f32, void_;
    LLVMValueRef base[RT_NREGIONS];   /* region base pointers, loaded at entry */
    int64_t ws_offset;                /* kernel workspace, in the scratch region */
    Graph *g;
    const Target *t;                  /* the target: vector lanes, registers, caches (ir/target.h) */
    struct CgShared *shared;          /* generated kernels by structure (cg_fuse.c), shared by same-shape layers */
    int nshared, capshared;
    const char *entry;                /* prefix of profile site names */
    LLVMTypeRef prof_ty;              /* rt_prof_site (runtime/rt_prof.h) */
    LLVMValueRef prof_site;           /* the site of the kernel being emitted */
    int nsites;
    /* the second phases of BatchNorm backwards applied in their readers
       (Kernel.apply_in), from their emission to their last reader's (cg_fuse.c) */
    struct CgStaged {
        const struct Kernel *K;
        LLVMValueRef fn, args;
        int nargs;
    } staged[CG_MAX_STAGED];
    int nstaged;
} CG;

/* The most pointers an rt_rows_fn wrapper passes on to its body. */
#define CG_MAX_ROWS_ARGS 64

/* The target's vector width as function fn's preferred one. */
void cg_vector_width(CG *cg, LLVMValueRef fn);
/* Address of a node's value / of the kernel workspace. */
LLVMValueRef cg_ptr(CG *cg, const Node *n);
LLVMValueRef cg_ws(CG *cg);
/* Loops and allocas of generated functions: an
   alloca in the function's entry block (where mem2reg promotes it), and a
   counted loop for i in [lo, hi) whose counter lives in such an alloca. */
LLVMValueRef cg_alloca_at_entry(CG *cg, LLVMBasicBlockRef entry, LLVMTypeRef t, const char *name);
typedef struct CgLoop {
    LLVMValueRef slot, i;
    LLVMBasicBlockRef head, exit;
} CgLoop;
LLVMValueRef cg_loop_open(CG *cg, LLVMBuilderRef b, LLVMValueRef fn, LLVMBasicBlockRef entry, CgLoop *L, LLVMValueRef lo,
                          LLVMValueRef hi, const char *name);
void cg_loop_close(CG *cg, LLVMBuilderRef b, CgLoop *L, int64_t step);
/* Brackets the emission of one kernel call (of a node, or of a fused group
   of nodes): a global rt_prof_site named "ENTRY: LABEL" with the kernel's
   cost, and calls of rt_prof_begin/end around the call (runtime/rt_prof.h).
   LABEL is "MODULE OP" (cg_node_label): the profile sums by what follows
   the first space (the op, or a fused kernel's description) and by the
   module path's first component. */
void cg_kernel_begin(CG *cg, const char *label, Cost c);
void cg_kernel_end(CG *cg);
/* "MODULE OP" of a node ("backbone.layer1.conv conv2d", "- fill"), in buf. */
const char *cg_node_label(const Node *n, char *buf, size_t len);
/* A generated kernel's function: internal, noinline, the target's vector
   width, and its pointer parameters among the first nalias noalias. */
void cg_fn_attrs(CG *cg, LLVMValueRef fn, int nalias);
/* The rt_rows_fn wrapper "<name>.rows" (args, n0, n1) of body (p0 ..
   p[np-1], n0, n1) of type body_t, which loads p0 .. p[np-1] from args;
   built with b, left at its end. */
LLVMValueRef cg_rows_wrapper(CG *cg, LLVMBuilderRef b, LLVMValueRef body, LLVMTypeRef body_t, const char *name, int np);

#endif
