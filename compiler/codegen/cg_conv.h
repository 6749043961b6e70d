/*
** cg_conv.h: generated direct convolutions (cg_conv.c). Built on cg_util
** and cg_fuse (their inputs and epilogues are cg_fuse expressions).
*/
#ifndef RRC_CG_CONV_H
#define RRC_CG_CONV_H

#include "codegen/cg_util.h"

/* Whether conv2d / conv2d_dx / conv2d_dw node n gets a generated direct
   kernel on target t (BackendCaps.conv_direct). */
bool cg_conv_direct(const Node *n, const Target *t);
/* Whether direct conv2d_dw / conv2d_dx n can make its dy image by image
   on its thread's stack (BackendCaps.conv_stages_dy). */
bool cg_conv_stages_dy(const Node *n, const Target *t);

/* The rt_rows_fn wrapper of direct convolution n (n->direct: pass_fuse
   decided it gets a generated kernel) (rows: images), with *args set to an array
   {weight (dy for dw), output, what the input expression reads...} built in
   the step and *nargs to its length. stats (a conv2d of a conv_stats kernel):
   the kernel also writes each image's BatchNorm statistics (mean and sum of
   squared deviations per channel, double [2][Co]) to the array's last
   pointer, which rt_k_conv2d_stats sets per thread. epi (a KERNEL_DX_EPI of
   conv2d_dx n): the kernel stores its epilogue's value, and the array ends
   with what the epilogue reads; with BatchNorm sums (bn_dgamma and
   chan_sum members) then the workspace, where image i's sums of g and
   g (x - mean) go, double [N][2][C]. */
/* Whether stride-1 3x3 forwards that qualify use Winograd F(2x2, 3x3)
   (cg_conv.c); true but in tests that compare it with the direct kernel. */
extern bool cg_conv_winograd;
/* Whether direct conv2d / conv2d_dx n qualifies for a Winograd kernel on
   target t by its shape (and cg_conv_winograd). The emission also needs an
   input gradient's dy stored (not a BatchNorm backward applied in its
   readers) and no epilogue on it; this does not look at the kernels. */
bool cg_conv_uses_winograd(const Node *n, const Target *t);
LLVMValueRef cg_conv_direct_fn(CG *cg, const Node *n, LLVMValueRef *args, int *nargs, bool stats, const Kernel *epi);


#endif
