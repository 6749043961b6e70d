/*
** rt_checkpoint.h: checkpoints of a program as safetensors files.
**
** A checkpoint holds every PARAM and STATE tensor of the program under its
** full PyTorch name (backbone.layer1.conv.weight, relation.bn1.running_var,
** ...) as F32 with its shape, the optimizer's buffers laid out like PARAM
** (optim.m.<name> and optim.v.<name> for Adam, optim.momentum.<name> for
** SGD), and __metadata__:
**   format "rrc-checkpoint-1", spec, step, epoch, seed (the run's --seed),
**   layout_hash (16 hex digits), optimizer ("adam" / "sgd"), and the
**   settings a resumed run must share: method, K, batch, loss,
**   aggregation, images (training images per epoch; absent if unknown).
** Tensors are matched by name and shape, never by offset, so a checkpoint
** moves between programs of the same spec compiled for other batch sizes,
** and to and from PyTorch state dicts (torch.load(safetensors) by name).
**
** Saving is atomic (rt_st_write: temporary file, fsync, rename): a crash or
** a failed save leaves the previous file at PATH as it was. Loading checks
** the whole file against the program before it writes a single byte into
** the caller's regions, so a refused file leaves them untouched.
** Errors are one line, "PATH: problem", in the caller's buffer.
*/
#ifndef RT_CHECKPOINT_H
#define RT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "rt_program.h"

#define RT_CKPT_FORMAT "rrc-checkpoint-1"

enum {
    /* Load only backbone.* tensors (linear evaluation): the relation head,
       the optimizer state and other tensors outside backbone.* in the file
       are ignored, the regions' relation tensors stay as they are. A file
       in which no tensor starts with "backbone." is taken as a bare
       PyTorch backbone state dict (layer1.conv.weight, conv1.weight, ...):
       every name gets the prefix, and a name that then is not a backbone
       tensor of the spec (fc.weight) is an error. */
    RT_CKPT_BACKBONE_ONLY = 1 << 0,
    /* Resuming: a file without optimizer state (or without step and epoch)
       is an error. */
    RT_CKPT_REQUIRE_OPTIM = 1 << 1,
    /* Resuming: the file's seed, images, K, batch, loss, aggregation and
       method must equal the resuming run's (`want` and p); the first that
       differs is named. A setting the file does not record is not
       compared. */
    RT_CKPT_SAME_RUN = 1 << 2,
};

/* Where a run stands, and what it is: saved with a checkpoint; on --resume
   compared with the resuming run (RT_CKPT_SAME_RUN). */
typedef struct rt_ckpt_run {
    int64_t step, epoch;   /* steps and epochs done */
    uint64_t seed;         /* the run's --seed */
    int64_t images;        /* training images per epoch; 0: not known */
} rt_ckpt_run;

/* Writes PATH. params/state are the PARAM and STATE regions; opt_m/opt_v
   are laid out like PARAM (same byte offsets) or NULL (not saved). For SGD
   pass the momentum buffer as opt_m (opt_v is ignored). Tensor locations
   come from p->train_full's table; K, batch, loss, aggregation and method
   come from p, the rest of the metadata from run. Returns 0, or -1 with a
   message. */
int rt_checkpoint_save(const char *path, const rt_program *p, const char *params, const char *state,
                       const float *opt_m, const float *opt_v, const rt_ckpt_run *run, char *err, size_t errlen);

/* Reads PATH into the regions (see the flags). Every PARAM tensor of the
   program (of the backbone, with RT_CKPT_BACKBONE_ONLY) must be in the
   file with its shape; running statistics may be absent (the current
   values stay); num_batches_tracked is ignored; a tensor the program does
   not have is an error. opt_m/opt_v (may be NULL) are filled when the file
   has optimizer state for the spec's optimizer, else left as they are
   (opt_v is not touched for SGD). want: the resuming run, compared with
   RT_CKPT_SAME_RUN (else may be NULL). got (may be NULL) gets the
   metadata's step, epoch, seed and images, 0 when absent. Returns 0, or -1
   with a message and nothing written. */
int rt_checkpoint_load(const char *path, const rt_program *p, char *params, char *state, float *opt_m, float *opt_v,
                       const rt_ckpt_run *want, rt_ckpt_run *got, int flags, char *err, size_t errlen);

#endif
