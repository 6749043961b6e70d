/*
** golden_util.h: what the golden tests share: the comparison by the one
** f32 rule (tolerance.h), loading golden files, and binding their tensors
** to graph leaves.
*/
#ifndef RRC_GOLDEN_UTIL_H
#define RRC_GOLDEN_UTIL_H

#include "frontend/spec.h"
#include "ir/ir.h"
#include "rt_safetensors.h"
#include "tolerance.h"

/* Compares n values by the f32 rule of tolerance.h (tol_f32 of max|ref|);
   on failure records a test failure naming `what`. NaN in ours counts as
   the worst error. Returns the max error divided by the allowed error
   (<= 1 passes). */
double golden_compare(const char *what, const double *ours, const double *ref, int64_t n);

/* Reads a golden file; records a failure and returns false if it cannot. */
bool golden_read(const char *path, rt_st_file *f);

/* A tensor of f as double (malloc'd), or NULL with a recorded failure. */
double *golden_tensor(const rt_st_file *f, const char *path, const char *name, int64_t n);

/* Binds every leaf of g whose name is in f (as f32 input); returns the
   number of leaves left unbound. */
int golden_bind(Interp *it, Graph *g, const rt_st_file *f, const char *path);

/* The spec a whole-step golden was made for, from its metadata:
   specs/<model>.lua with the file's K, aggregation and loss where it has
   them; a baseline's file (metadata method and backbone, e.g.
   rotation_resnet8) with no spec of its own is specs/<method>_conv4.lua
   with the backbone of specs/<backbone>.lua, which proves the method on
   another backbone without a bundled spec for every pair. NULL after a
   recorded failure. */
Spec *golden_spec(const rt_st_file *f, const char *path, Arena *a);

/* The view size of a golden's input x [rows, C, H, W] (*h = *w = 32 when
   it has none). */
void golden_view_size(const rt_st_file *f, int64_t *c, int64_t *h, int64_t *w);

/* The golden directory: $RRC_GOLDEN_DIR or tests/golden. */
const char *golden_dir(void);

/* The target compiled tests generate code for: the host, or, inside
   test_other_targets, each x86-64 level (x86-64-v2, -v3, -v4) this host
   runs whose ISA differs from the host's, so that every kernel family's
   tiling (4, 8 and 16 lanes; 16 and 32 registers) is tested on one machine.
   Returns how many targets fn ran on; when none, the current test is
   marked skipped (test_skip), so call it last in a test. */
const Target *test_target(void);
int test_other_targets(void (*fn)(void));

#endif
