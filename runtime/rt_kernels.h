/*
** rt_kernels.h: the f32 kernels that compiled step functions call, one per
** IR op (compiler/ir/ops.def). Each has exactly the semantics of the op's
** double-precision reference kernel (compiler/ir/ops_*.c): the same
** layouts (NCHW activations, [O,C,KH,KW] conv weights, [O,I] linear
** weights), attribute meanings and tie rules. Only the rounding differs.
**
** Conventions, so that generated code can call them without glue:
**   - sizes and attributes are int64_t, float attributes are float;
**   - pointers: outputs first, then inputs, then sizes, then attributes,
**     then (heavy kernels only) a scratch pointer `ws`;
**   - outputs never alias inputs (restrict), except where noted;
**   - a kernel with a `ws` argument needs rt_k_<op>_ws(...) floats of
**     scratch there; kernels never allocate;
**   - every kernel is re-entrant (no static state), so a thread pool may run
**     the *_part variants on disjoint image ranges concurrently, each with
**     its own `ws`.
**
** Reductions (bn_stats, chan_sum, bn_dgamma, the sums of bn_train_dx,
** global_avgpool, the losses) accumulate in double; elementwise arithmetic is
** in float. Convolutions and linear layers use OpenBLAS's cblas_sgemm (link
** with -lopenblas).
*/
#ifndef RT_KERNELS_H
#define RT_KERNELS_H

#include <stdint.h>

#include "rt_pool.h"

/* ---- convolution (rt_kernels_conv.c) ----
   x [N,C,H,W], w [O,C,KH,KW], y [N,O,OH,OW]; stride S, zero padding P;
   OH = (H + 2P - KH)/S + 1, OW likewise (the caller passes both). */

/* Floats of scratch the three conv kernels need (the maximum of them): one
   image's column matrix C*KH*KW x OH*OW (none for a 1x1 stride-1 unpadded
   convolution), plus C*KH*KW x O when C*KH*KW >= O (dw's transposed
   accumulator). Independent of N. */
int64_t rt_k_conv2d_ws(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW,
                       int64_t S, int64_t P, int64_t OH, int64_t OW);

/* y = conv2d(x, w) */
void rt_k_conv2d(float *restrict y, const float *restrict x, const float *restrict w, int64_t N, int64_t C,
                 int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S, int64_t P, int64_t OH,
                 int64_t OW, float *restrict ws);
/* y = conv2d(x, w) and st [2,O] = BatchNorm statistics of y (mean, biased
   variance per channel): the conv_stats fused kernel. Needs
   rt_k_conv2d_stats_ws(...) floats of ws. With fwd, the convolution of
   image n is fwd(fargs, n, n + 1) (a generated direct kernel) instead of
   im2col + sgemm; with nargs > 0 that kernel is called on up to
   RT_CONV_STATS_IMAGES images at a time, fwd(fargs, n0, n1), and writes
   image n's statistics (mean, sum of squared deviations: double [2][O]) at
   (n - n0) * 2 * O doubles into its last argument, which each thread gets
   its own of. */
#define RT_CONV_STATS_IMAGES 32
int64_t rt_k_conv2d_stats_ws(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW,
                             int64_t S, int64_t P, int64_t OH, int64_t OW);
void rt_k_conv2d_stats(float *restrict y, float *restrict st, const float *restrict x, const float *restrict w,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S,
                       int64_t P, int64_t OH, int64_t OW, float *restrict ws, rt_rows_fn fwd, void **fargs,
                       int64_t nargs);
/* the same in one rank's step of a data-parallel run: statistics of every
   rank's (total values per channel) */
void rt_k_conv2d_stats_all(float *restrict y, float *restrict st, const float *restrict x, const float *restrict w,
                           int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S,
                           int64_t P, int64_t OH, int64_t OW, float *restrict ws, rt_rows_fn fwd, void **fargs,
                           int64_t nargs, int64_t total);
/* dw [dwn floats] = the weight gradient summed over N images, from a
   generated kernel fn(args, n0, n1) that writes the sum over [n0, n1) into
   args[1] (args = {dy, dw, what x is computed from...}, nargs of them);
   parts of the pool summed in thread order. */
#define RT_DW_MAX_ARGS 34
void rt_k_conv2d_dw_gen(float *restrict dw, rt_rows_fn fn, void **args, int64_t nargs, int64_t N, int64_t dwn);
/* dx [N,C,H,W] = gradient of the input from dy [N,O,OH,OW] */
void rt_k_conv2d_dx(float *restrict dx, const float *restrict dy, const float *restrict w, int64_t N,
                    int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S, int64_t P,
                    int64_t OH, int64_t OW, float *restrict ws);
/* dw [O,C,KH,KW] = gradient of the weight, summed over the N images */
void rt_k_conv2d_dw(float *restrict dw, const float *restrict dy, const float *restrict x, int64_t N,
                    int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S, int64_t P,
                    int64_t OH, int64_t OW, float *restrict ws);

/* The same on images [n0, n1) only (the pointers are still those of the
   whole batch). Forward and dx write only those images; dw_part writes the
   partial sum over those images into dw (overwriting it), so a pool gives
   each worker its own dw buffer and adds them. Each call needs its own
   rt_k_conv2d_ws(...) floats of `ws`. */
void rt_k_conv2d_part(float *restrict y, const float *restrict x, const float *restrict w, int64_t N,
                      int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S, int64_t P,
                      int64_t OH, int64_t OW, int64_t n0, int64_t n1, float *restrict ws);
void rt_k_conv2d_dx_part(float *restrict dx, const float *restrict dy, const float *restrict w, int64_t N,
                         int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S,
                         int64_t P, int64_t OH, int64_t OW, int64_t n0, int64_t n1, float *restrict ws);
void rt_k_conv2d_dw_part(float *restrict dw, const float *restrict dy, const float *restrict x, int64_t N,
                         int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t S,
                         int64_t P, int64_t OH, int64_t OW, int64_t n0, int64_t n1, float *restrict ws);

/* ---- linear (rt_kernels_conv.c): x [N,In], w [O,In], y [N,O] = x w^T
   (In, not I: <complex.h>, which cblas.h pulls in, defines I) ---- */
void rt_k_linear(float *restrict y, const float *restrict x, const float *restrict w, int64_t N, int64_t In,
                 int64_t O);
/* dx [N,In] = dy [N,O] w */
void rt_k_linear_dx(float *restrict dx, const float *restrict dy, const float *restrict w, int64_t N,
                    int64_t In, int64_t O);
/* dw [O,In] = dy^T x */
void rt_k_linear_dw(float *restrict dw, const float *restrict dy, const float *restrict x, int64_t N,
                    int64_t In, int64_t O);

/* ---- elementwise and broadcast (rt_kernels_elem.c) ----
   [N,C,S] views: S is the product of the dims after the channel axis. */
void rt_k_bias_add(float *restrict y, const float *restrict x, const float *restrict b, int64_t N, int64_t C,
                   int64_t S);
/* out[c] = sum of x over all axes but 1 */
void rt_k_chan_sum(float *restrict out, const float *restrict x, int64_t N, int64_t C, int64_t S);
/* y = x > 0 ? x : 0 */
void rt_k_relu(float *restrict y, const float *restrict x, int64_t n);
/* dx = y > 0 ? dy : 0 (masked by the relu's output, as PyTorch) */
void rt_k_relu_back(float *restrict dx, const float *restrict dy, const float *restrict y, int64_t n);
void rt_k_leaky_relu(float *restrict y, const float *restrict x, int64_t n, float slope);
/* dx = x > 0 ? dy : slope*dy (masked by the input) */
void rt_k_leaky_relu_back(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t n,
                          float slope);
void rt_k_add(float *restrict y, const float *restrict a, const float *restrict b, int64_t n);
/* also the kernel of reshape when it cannot be a view */
void rt_k_copy(float *restrict y, const float *restrict x, int64_t n);
void rt_k_fill(float *restrict y, int64_t n, float v);

/* ---- pooling (rt_kernels_pool.c): NC planes of HxW; square window K,
   stride S, padding P; floor output size OH x OW. Average pooling counts
   the padding (divides by K*K); max pooling takes the first maximum of a
   window in row-major order (a NaN wins), as PyTorch's CPU kernel. */
void rt_k_avgpool2d(float *restrict y, const float *restrict x, int64_t NC, int64_t H, int64_t W, int64_t K,
                    int64_t S, int64_t P, int64_t OH, int64_t OW);
void rt_k_avgpool2d_back(float *restrict dx, const float *restrict dy, int64_t NC, int64_t H, int64_t W,
                         int64_t K, int64_t S, int64_t P, int64_t OH, int64_t OW);
void rt_k_maxpool2d(float *restrict y, const float *restrict x, int64_t NC, int64_t H, int64_t W, int64_t K,
                    int64_t S, int64_t P, int64_t OH, int64_t OW);
/* dx gets each dy at its window's argmax in x (summed where windows overlap) */
void rt_k_maxpool2d_back(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t NC,
                         int64_t H, int64_t W, int64_t K, int64_t S, int64_t P, int64_t OH, int64_t OW);
/* y [NC] = mean over each plane of S values */
void rt_k_global_avgpool(float *restrict y, const float *restrict x, int64_t NC, int64_t S);
void rt_k_global_avgpool_back(float *restrict dx, const float *restrict dy, int64_t NC, int64_t S);

/* ---- batch normalisation (rt_kernels_norm.c); st = [mean[C], var[C]] ---- */
/* st = batch mean and biased variance over N and S */
void rt_k_bn_stats(float *restrict st, const float *restrict x, int64_t N, int64_t C, int64_t S);
/* y = gamma (x - mean) / sqrt(var + eps) + beta */
void rt_k_bn_train(float *restrict y, const float *restrict x, const float *restrict st,
                   const float *restrict gamma, const float *restrict beta, int64_t N, int64_t C, int64_t S,
                   float eps);
/* the full BatchNorm input gradient, through the batch statistics */
void rt_k_bn_train_dx(float *restrict dx, const float *restrict dy, const float *restrict x,
                      const float *restrict st, const float *restrict gamma, int64_t N, int64_t C, int64_t S,
                      float eps);
/* dg[c] = sum dy * xhat */
void rt_k_bn_dgamma(float *restrict dg, const float *restrict dy, const float *restrict x,
                    const float *restrict st, int64_t N, int64_t C, int64_t S, float eps);
/* dgamma and dbeta from per-image sums of dy and dy (x - mean), double
   ws[N][2][C] (made by a generated kernel as it stores dy), added in image
   order */
void rt_k_bn_dx_sums(float *restrict dg, float *restrict db, const double *restrict ws, const float *restrict st,
                     int64_t N, int64_t C, float eps);
/* normalise with given (running) statistics */
void rt_k_bn_eval(float *restrict y, const float *restrict x, const float *restrict mean,
                  const float *restrict var, const float *restrict gamma, const float *restrict beta, int64_t N,
                  int64_t C, int64_t S, float eps);
/* BatchNorm statistics over [N, C] values (rt_k_bn_stats) and the generated
   BatchNorm backward that makes its own sums ([N, C] or planes, cg_fuse.c)
   sum the samples in rt_bn_parts(N) fixed parts, each part's
   double sums to v[part][n], added in part order into v[0][n]
   (rt_k_sum_parts): the parts may run on any threads and every thread count
   gives the same result. */
enum { RT_BN_PARTS = 16 };
static inline int64_t rt_bn_parts(int64_t N) { return N < RT_BN_PARTS ? (N > 0 ? N : 1) : RT_BN_PARTS; }
void rt_k_sum_parts(double *v, int64_t parts, int64_t n);
/* out = (1-momentum) old + momentum stat, stat = mean (which 0) or the
   variance unbiased by n/(n-1) (which 1); n = values per channel. out may
   be old (an in-place update of the running statistic). */
void rt_k_bn_running(float *out, const float *old, const float *restrict st, int64_t C, int64_t which,
                     int64_t n, float momentum);

/* ---- relational reasoning (rt_kernels_rel.c) ----
   F [K*B, D]: view k of image i in row k*B+i. out [B*K*(K-1), D or 2D]. */
enum { RT_AGG_CAT = 0, RT_AGG_SUM = 1, RT_AGG_MEAN = 2, RT_AGG_MAX = 3 };
void rt_k_pairs(float *restrict out, const float *restrict F, int64_t K, int64_t B, int64_t D, int64_t agg);
/* dF [K*B, D] from dP; max sends the gradient to the larger, half to each on a tie */
void rt_k_pairs_back(float *restrict dF, const float *restrict dP, const float *restrict F, int64_t K,
                     int64_t B, int64_t D, int64_t agg);
/* out [P, H] (P = B*K*(K-1)): row p = X[a, 2h] + X[b, 2h+1] over h, with a, b
   the rows rt_k_pairs joins in row p; X [K*B, 2H]; ws: K*B*2H floats of
   workspace (the planned step's); bias [H] or NULL: row p is then
   (X[a, 2h] + X[b, 2h+1]) + bias[h] (a bias_add fused in, KERNEL_PAIR_BIAS) */
void rt_k_pair_halves(float *restrict out, const float *restrict X, int64_t K, int64_t B, int64_t H, float *ws,
                      const float *bias);
/* dX [K*B, 2H] from dY [P, H]: the adjoint of rt_k_pair_halves; ws as there */
void rt_k_pair_halves_back(float *restrict dX, const float *restrict dY, int64_t K, int64_t B, int64_t H, float *ws);
/* y [B*K*(K-1)]: 1 in positive blocks, 0 in negative ones */
void rt_k_pair_targets(float *restrict y, int64_t K, int64_t B);
/* out [1] = mean focal loss of logits z [P] against targets y [P] */
void rt_k_focal_loss(float *restrict out, const float *restrict z, const float *restrict y, int64_t P,
                     float gamma, float alpha);
/* dz [P] from dl [1] */
void rt_k_focal_back(float *restrict dz, const float *restrict dl, const float *restrict z,
                     const float *restrict y, int64_t P, float gamma, float alpha);
void rt_k_bce_loss(float *restrict out, const float *restrict z, const float *restrict y, int64_t P);
void rt_k_bce_back(float *restrict dz, const float *restrict dl, const float *restrict z,
                   const float *restrict y, int64_t P);

/* ---- supervised loss (rt_kernels_ce.c) ----
   out [1] = mean softmax cross-entropy of logits z [N,C] against class
   indices y [N] (floats); dz [N,C] = dl (softmax(z) - onehot(y)) / N */
void rt_k_softmax_ce(float *restrict out, const float *restrict z, const float *restrict y, int64_t N, int64_t C);
void rt_k_softmax_ce_back(float *restrict dz, const float *restrict dl, const float *restrict z,
                          const float *restrict y, int64_t N, int64_t C);

/* ---- math (rt_kernels_math.c; semantics of compiler/ir/ops_math.c) ----
   y = a * b; e^x; ln x; dx = dy / x; softplus (beta 1, threshold 20) and
   its gradient; row-wise L2 normalisation of [N, D] by max(|x|, eps) and
   its gradient; C [M, N] = op(A) op(B) with op(X) = X^T where ta / tb. */
void rt_k_mul(float *restrict y, const float *restrict a, const float *restrict b, int64_t n);
void rt_k_exp(float *restrict y, const float *restrict x, int64_t n);
void rt_k_log(float *restrict y, const float *restrict x, int64_t n);
void rt_k_log_back(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t n);
/* PyTorch softplus's default threshold: above it softplus(x) = x */
#define RT_SOFTPLUS_THRESHOLD 20.0
void rt_k_softplus(float *restrict y, const float *restrict x, int64_t n);
void rt_k_softplus_back(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t n);
void rt_k_l2_normalize(float *restrict y, const float *restrict x, int64_t N, int64_t D, float eps);
void rt_k_l2_normalize_back(float *restrict dx, const float *restrict dy, const float *restrict x, int64_t N, int64_t D,
                            float eps);
void rt_k_matmul(float *restrict c, const float *restrict a, const float *restrict b, int64_t M, int64_t N, int64_t K,
                 int64_t ta, int64_t tb);

/* ---- the baselines (rt_kernels_ssl.c; semantics of compiler/ir/ops_ssl.c) ---- */
/* y [4N,C,S,S] = the four rotations of x [N,C,S,S] (planes = N*C),
   rotation-major; dx = the sum of dy's four blocks rotated back */
void rt_k_rotations(float *restrict y, const float *restrict x, int64_t planes, int64_t S);
void rt_k_rotations_back(float *restrict dx, const float *restrict dy, int64_t planes, int64_t S);
/* y [n] = floor(i / block) */
void rt_k_block_targets(float *restrict y, int64_t n, int64_t block);
/* Deep InfoMax (rt_kernels_dim.c): z [2B, C+F, S] = rows (M_i, y_i) then
   (M_{i+1 mod B}, y_i), y broadcast over the S = H*W positions; the
   gradients dM [B, C, S] and dy [B, F]; rows [start, start+count) of x
   [N, F]; the JSD-estimator loss of scores t [2*half] (positive half
   first) and the prior loss of logits p [2*half] (prior half first), each
   times scale, and their gradients */
void rt_k_local_pairs(float *restrict z, const float *restrict M, const float *restrict y, int64_t B, int64_t C, int64_t F,
                      int64_t S);
void rt_k_local_pairs_dm(float *restrict dM, const float *restrict dz, int64_t B, int64_t C, int64_t F, int64_t S);
void rt_k_local_pairs_dy(float *restrict dy, const float *restrict dz, int64_t B, int64_t C, int64_t F, int64_t S);
void rt_k_slice_rows(float *restrict y, const float *restrict x, int64_t start, int64_t count, int64_t F);
/* y = a's na values, then b's nb */
void rt_k_concat_rows(float *restrict y, const float *restrict a, const float *restrict b, int64_t na, int64_t nb);
void rt_k_jsd_loss(float *restrict out, const float *restrict t, int64_t half, float scale);
void rt_k_jsd_back(float *restrict dt, const float *restrict dl, const float *restrict t, int64_t half, float scale);
void rt_k_prior_loss(float *restrict out, const float *restrict p, int64_t half, float scale);
void rt_k_prior_back(float *restrict dp, const float *restrict dl, const float *restrict p, int64_t half, float scale);
/* DeepCluster's loss out [1] of logits z [N, C], labels y [N] and class
   weights w [C] (sum_i w[y_i] l_i / sum_i w[y_i]), and dz */
void rt_k_weighted_ce(float *restrict out, const float *restrict z, const float *restrict y, const float *restrict w, int64_t N,
                      int64_t C);
void rt_k_weighted_ce_back(float *restrict dz, const float *restrict dl, const float *restrict z, const float *restrict y,
                           const float *restrict w, int64_t N, int64_t C);
/* SimCLR's loss out [1] of embeddings z [N = 2B, D] (view-major), and dz;
   both need rt_k_simclr_ws(N, D) floats of scratch in ws (8-byte aligned) */
int64_t rt_k_simclr_ws(int64_t N, int64_t D);
void rt_k_simclr_loss(float *restrict out, const float *restrict z, int64_t N, int64_t D, float t, float eps,
                      float *restrict ws);
void rt_k_simclr_back(float *restrict dz, const float *restrict dl, const float *restrict z, int64_t N, int64_t D, float t,
                      float eps, float *restrict ws);

/* ---- data-parallel ranks (rt_kernels_dist.c, rt_kernels_norm.c, rt_comm.h);
   with one rank each is the one-process computation. Their buffers sized
   by the channels or ranks come from malloc (the ranks are known only when
   the run starts). ---- */
/* st = the mean and biased variance over `total` values per channel, of
   every rank (x: this rank's N images) */
void rt_k_bn_stats_all(float *restrict st, const float *restrict x, int64_t N, int64_t C, int64_t S, int64_t total);
/* bn_train_dx with the per-channel sums over every rank (`total` values
   per channel) */
void rt_k_bn_train_dx_all(float *restrict dx, const float *restrict dy, const float *restrict x, const float *restrict st,
                          const float *restrict gamma, int64_t N, int64_t C, int64_t S, int64_t total, float eps);
/* v[0..n) = its sum over every rank, in rank order (every rank gets the
   same bits; a copy with one rank): a fused BatchNorm backward's sums */
void rt_k_sum_ranks(double *v, int64_t n);
/* Chan et al.'s combination of each rank's (count, mean[C], var[C]) rows
   (2C+1 values each, in rank order) into the mean and biased variance:
   every rank adds in the same order, so gets the same bits. */
void rt_stats_combine(const double *all, int nranks, int64_t C, double *mean, double *var);
/* loc = this rank's (count, mean[C], var[C]); out = (mean[C], var[C]) of
   every rank's, checked to be over `total` values */
void rt_stats_allreduce(const double *loc, int64_t C, int64_t total, double *out);
/* out [G*B, E] from each rank's x [G*b_r, E]: group g's rows of rank r at
   rows g*B + (rank r's offset); b = this rank's share, checked */
void rt_k_gather_rows(float *restrict out, const float *restrict x, int64_t G, int64_t B, int64_t E, int64_t b);
/* out [G*b, E] = this rank's rows of y [G*B, E] */
void rt_k_local_rows(float *restrict out, const float *restrict y, int64_t G, int64_t B, int64_t E, int64_t b);
/* ends the run: a collective's buffer could not be had */
_Noreturn void rt_k_dist_oom(size_t bytes);

#endif
