/*
** cg_step.h: the step function's body (cg_step.c): for every node that
** emits, in order, a runtime kernel call or a generated kernel, each inside
** its profile site. Built on cg_util, cg_fuse and cg_conv.
*/
#ifndef RRC_CG_STEP_H
#define RRC_CG_STEP_H

#include "codegen/cg_util.h"

/* Emits the calls of cg->g's step at cg->b; false after a message. */
bool cg_emit_step(CG *cg);

#endif
