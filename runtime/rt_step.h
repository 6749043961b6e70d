/*
** rt_step.h: the step ABI: how compiled training steps (JIT or AOT) and
** the runtime meet. A compiled graph reads and writes tensors at fixed
** byte offsets in five regions that the runtime allocates once:
**
**   PARAM    trainable parameters (read)
**   STATE    BatchNorm running statistics (read)
**   INPUT    the batch of views "x" (read)
**   OUTPUT   named results: loss, logits, targets, grad.<p>, state.<s> (written)
**   SCRATCH  intermediate values and kernel workspace (no meaning between calls)
**
** Every entry point has the signature rt_step_fn: it reads and writes only
** these regions and allocates nothing. The tensor table says where each
** named tensor lives. The same description is compiled into a generated
** header for AOT trainers.
*/
#ifndef RT_STEP_H
#define RT_STEP_H

#include <stdint.h>

#include "rt_init.h"

enum {
    RT_REGION_PARAM = 0,
    RT_REGION_STATE = 1,
    RT_REGION_INPUT = 2,
    RT_REGION_OUTPUT = 3,
    RT_REGION_SCRATCH = 4,
    RT_NREGIONS = 5,
};

#define RT_ALIGN 64   /* every tensor starts at a multiple of this many bytes */

typedef void (*rt_step_fn)(char *const regions[RT_NREGIONS]);

typedef struct rt_step_tensor {
    const char *name;
    int region;
    int64_t offset;        /* bytes from the region's start */
    int rank;
    int64_t dim[4];
    rt_init init;          /* PARAM and STATE: initial value */
    unsigned flags;        /* RT_TENSOR_* */
} rt_step_tensor;

enum {
    /* an output grad.<p> that is one rank's part of the gradient, which the
       runtime sums over the ranks of a data-parallel run (rt_comm.h) */
    RT_TENSOR_PARTIAL = 1u << 0,
};

const char *rt_region_name(int region);

#endif
