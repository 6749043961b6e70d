/*
** golden_util.h: what the golden tests share: the one comparison rule,
** loading golden files, and binding their tensors to graph leaves.
*/
#ifndef RRC_GOLDEN_UTIL_H
#define RRC_GOLDEN_UTIL_H

#include "ir/ir.h"
#include "rt_safetensors.h"

/* The comparison rule, per tensor: max|ours - ref| <= GOLDEN_ATOL + GOLDEN_RTOL * max|ref|.
   atol 1e-6 covers tensors whose exact value is 0 (e.g. the gradient of a
   bias followed by BatchNorm, where PyTorch leaves ~1e-14 of rounding). */
#define GOLDEN_RTOL 1e-4
#define GOLDEN_ATOL 1e-6

/* Compares n values; on failure records a test failure naming `what`.
   Returns the max error divided by the allowed error (<= 1 passes). */
double golden_compare(const char *what, const double *ours, const double *ref, int64_t n);

/* Reads a golden file; records a failure and returns false if it cannot. */
bool golden_read(const char *path, rt_st_file *f);

/* A tensor of f as double (malloc'd), or NULL with a recorded failure. */
double *golden_tensor(const rt_st_file *f, const char *path, const char *name, int64_t n);

/* Binds every leaf of g whose name is in f (as f32 input); returns the
   number of leaves left unbound. */
int golden_bind(Interp *it, Graph *g, const rt_st_file *f, const char *path);

/* The golden directory: $RRC_GOLDEN_DIR or tests/golden. */
const char *golden_dir(void);

/* The target compiled tests generate code for: the host, or, inside
   test_other_targets, each x86-64 level (x86-64-v2, -v3, -v4) this host
   runs whose ISA differs from the host's, so that every kernel family's
   tiling (4, 8 and 16 lanes; 16 and 32 registers) is tested on one machine.
   Returns how many targets fn ran on. */
const Target *test_target(void);
int test_other_targets(void (*fn)(void));

#endif
