/*
** cg_impl.h: what the codegen files share. Not for use outside codegen/.
*/
#ifndef RRC_CG_IMPL_H
#define RRC_CG_IMPL_H

#include <llvm-c/Core.h>
#include <llvm-c/Orc.h>
#include <llvm-c/TargetMachine.h>

#include "codegen/cg.h"

struct CgModule {
    LLVMOrcThreadSafeContextRef tsc;
    LLVMContextRef ctx;
    LLVMModuleRef mod;        /* NULL once handed to the JIT */
    CgOptions opts;
};

/* The widest vectors of any target (ir/target.h), in f32 lanes: the size of
   the kernels' arrays of lane constants. */
#define CG_MAX_LANES 16
/* The most accumulators of a register tile on any target. */
#define CG_MAX_ACCS 32

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
} CG;

/* o's target, or the host's */
const Target *cg_target(const CgOptions *o);
LLVMTargetMachineRef cg_target_machine(const CgOptions *o, LLVMCodeModel cm);
/* The target's vector width as function fn's preferred one. */
void cg_vector_width(CG *cg, LLVMValueRef fn);
/* Address of a node's value / of the kernel workspace. */
LLVMValueRef cg_ptr(CG *cg, const Node *n);
LLVMValueRef cg_ws(CG *cg);
/* Loops and allocas of generated functions (cg_fuse.c, cg_conv.c): an
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
/* Emits `fn(args)`; fmt: p = pointer (LLVMValueRef), i = int64_t, f = double (as float). */
void cg_call(CG *cg, const char *fn, const char *fmt, ...);
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
/* cg_ops.c: one node; false if the op has no emitter */
bool cg_emit_node(CG *cg, const Node *n);
int64_t cg_workspace(const Node *n);   /* bytes of kernel workspace a node needs */
/* cg_fuse.c: a fused kernel (passes/fuse.c), emitted where its last member
   runs; and the workspace bytes it needs */
void cg_emit_kernel(CG *cg, const Kernel *k);
int64_t cg_kernel_workspace(const Kernel *k);
void cg_fuse_done(CG *cg);
/* cg_fuse.c: the value of node v (recomputed if inlined, else loaded)
   inside a loop built elsewhere. cg_expr_new collects the stored values it
   reads (cg_expr_count / cg_expr_value: the pointers the caller passes to
   cg_expr_begin, in that order); cg_expr_sig describes its structure (for
   sharing functions); cg_expr_at emits the element at flat index idx of
   v's shape, channel c. */
typedef struct CgExpr CgExpr;
CgExpr *cg_expr_new(CG *cg, const Node *v);
int cg_expr_count(const CgExpr *e);
const Node *cg_expr_value(const CgExpr *e, int i);
const char *cg_expr_sig(const CgExpr *e);
bool cg_expr_is_load(const CgExpr *e);
void cg_expr_begin(CgExpr *e, LLVMBuilderRef b, const LLVMValueRef *ptrs);
LLVMValueRef cg_expr_at(CgExpr *e, LLVMValueRef idx, LLVMValueRef c);
/* An epilogue: the value of `root`, an elementwise expression of `acc` (the
   input gradient of a KERNEL_DX_EPI kernel, never stored) and of stored
   values, at flat index idx (channel c) given acc's value there: a float,
   or a vector of consecutive elements, which the expression then is too.
   With sx and sst (a BatchNorm's input and statistics [mean; var]: the
   epilogue kernel makes its sums), *gx is set to root (sx - mean) there. */
CgExpr *cg_epi_new(CG *cg, const Node *root, const Node *acc, const Node *sx, const Node *sst);
LLVMValueRef cg_epi_at(CgExpr *e, LLVMValueRef idx, LLVMValueRef c, LLVMValueRef accv, LLVMValueRef *gx);
void cg_expr_free(CgExpr *e);
/* cg_conv.c: whether conv2d / conv2d_dx node n gets a generated direct
   kernel; its rt_rows_fn wrapper (rows: images), with *args set to an array
   {weight (dy for dw), output, what the input expression reads...} built in
   the step and *nargs to its length. stats (a conv2d of a conv_stats kernel):
   the kernel also writes each image's BatchNorm statistics (mean and sum of
   squared deviations per channel, double [2][Co]) to the array's last
   pointer, which rt_k_conv2d_stats sets per thread. epi (a KERNEL_DX_EPI of
   conv2d_dx n): the kernel stores its epilogue's value, and the array ends
   with what the epilogue reads; with BatchNorm sums (bn_dgamma and
   chan_sum members) then the workspace, where image i's sums of g and
   g (x - mean) go, double [N][2][C]. */
bool cg_conv_direct(const Node *n);
LLVMValueRef cg_conv_direct_fn(CG *cg, const Node *n, LLVMValueRef *args, int *nargs, bool stats, const Kernel *epi);   /* frees what cg_emit_kernel kept */

#endif
