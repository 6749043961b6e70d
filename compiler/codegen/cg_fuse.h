/*
** cg_fuse.h: expressions over the graph's values and the generated
** elementwise, BatchNorm-backward and pooling kernels (cg_fuse.c). Built on
** cg_util only.
*/
#ifndef RRC_CG_FUSE_H
#define RRC_CG_FUSE_H

#include "codegen/cg_util.h"

/* The value of node v (recomputed if inlined, else loaded)
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
/* A generated kernel (KERNEL_EW, KERNEL_BN_DX, KERNEL_POOL), or one of the
   same structure emitted before, and the step's call of it. */
void cg_emit_generated(CG *cg, const Kernel *k);
/* For direct convolution gradient conv whose dy is a BatchNorm backward
   applied in its readers (Kernel.apply_in): that kernel's second phase,
   an rt_rows_fn over samples, and its argument array in the step (nargs
   pointers; slot 0, dx, NULL: the caller's per image). False for other
   nodes. */
bool cg_staged_apply(CG *cg, const Node *conv, LLVMValueRef *fn, LLVMValueRef *args, int *nargs);
/* Whether BatchNorm backward kernel k sums by parts of the samples (then
   its workspace is double [parts][2][C]): [N, C] rows, and planes whose
   sums it makes itself. */
bool cg_bn_by_samples(const Kernel *k);
/* Frees what cg_emit_generated kept for sharing, at the end of a step. */
void cg_fuse_done(CG *cg);

#endif
