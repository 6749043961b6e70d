/*
** tolerance.h: the two comparison rules of the tests, each defined once.
**
** f32 results against a reference (PyTorch goldens, the double-precision
** reference kernels, the interpreter), per tensor:
**     max|ours - ref| <= TOL_F32_ATOL + TOL_F32_RTOL * max|ref|.
** The relative part covers f32 rounding accumulated over long sums
** (convolutions, BatchNorm statistics) scaled to the tensor's size; atol 1e-6
** covers tensors whose exact value is 0 (e.g. the gradient of a bias followed
** by BatchNorm, where PyTorch leaves ~1e-14 of rounding).
**
** Finite differences in double (tests/ir/test_gradcheck.c), per input tensor:
**     max|numeric - analytic| <= TOL_FD * (1 + max|analytic|),
** with the central difference's step TOL_FD_STEP * max(1, |x|). All in
** double, so the rule is tight: the truncation error of the central
** difference is O(step^2) and the rounding error O(eps / step) ~ 1e-10.
*/
#ifndef RRC_TOLERANCE_H
#define RRC_TOLERANCE_H

#define TOL_F32_ATOL 1e-6
#define TOL_F32_RTOL 1e-4

/* The largest error allowed for an f32 tensor whose reference has
   max|ref| = max_abs_ref. */
static inline double tol_f32(double max_abs_ref) { return TOL_F32_ATOL + TOL_F32_RTOL * max_abs_ref; }

#define TOL_FD 1e-6
#define TOL_FD_STEP 1e-6

/* The largest error allowed for a finite-difference gradient whose analytic
   gradient has max|analytic| = max_abs_analytic. */
static inline double tol_fd(double max_abs_analytic) { return TOL_FD * (1 + max_abs_analytic); }

#endif
