/*
** rt_program.h: a compiled spec as the runtime sees it. A program is a few
** entry points (rt_step.h ABI) plus what the spec says about training:
** views, augmentation, optimizer, loss, data. `rrc train` builds one in
** process from JIT-compiled graphs; an AOT trainer gets one from the
** generated code of `rrc compile`. The training loop, checkpoints and
** linear evaluation work on it and never see the compiler.
**
** All entries of a program share one layout of the PARAM and STATE regions
** (the same tensors at the same offsets), so parameters live in one place.
*/
#ifndef RT_PROGRAM_H
#define RT_PROGRAM_H

#include <stdbool.h>
#include <stdint.h>

#include "rt_augment.h"
#include "rt_optim.h"
#include "rt_step.h"

typedef struct rt_entry {
    const char *name;           /* "train_b64", "train_b32", "features" */
    rt_step_fn fn;
    int64_t region_bytes[RT_NREGIONS];
    const rt_step_tensor *tensors;   /* every named tensor it reads or writes */
    int ntensors;
    int K;                      /* train entries: views per image */
    int64_t B;                  /* train entries: images per batch (of this rank); features: rows */
    int64_t B_total;            /* train entries: the step's images over all ranks (B for one process) */
} rt_entry;

typedef enum rt_optim_kind { RT_OPT_ADAM, RT_OPT_SGD } rt_optim_kind;

/* What train_full/train_last compute: the relational-reasoning step;
   supervised training of the backbone with a linear classifier (METHOD.md's
   upper bound; then `classify` holds the eval-mode classifier); or one of
   the paper's self-supervised baselines (BASELINES.md): RotationNet (its
   step rotates each view four times: outputs logits [4B, 4] and targets),
   SimCLR (two views; output z, the head's embeddings), DeepCluster (one
   view; inputs y, the pseudolabels, and w, the clusters' weights, which the
   runtime computes each epoch; output logits [B, clusters]), Deep InfoMax
   (one view; input u [B, F], uniform samples the runtime draws each step;
   the last partial batch is dropped). */
typedef enum rt_method {
    RT_METHOD_RELATIONAL, RT_METHOD_SUPERVISED, RT_METHOD_ROTATION, RT_METHOD_SIMCLR, RT_METHOD_DEEPCLUSTER, RT_METHOD_DIM
} rt_method;

/* "relational", "supervised", "rotation", "simclr"; and back (false for
   another name). */
const char *rt_method_name(rt_method m);
bool rt_method_parse(const char *s, rt_method *out);


typedef struct rt_program {
    const char *spec_name;
    uint64_t layout_hash;       /* hash of names, shapes and offsets of PARAM and STATE tensors */
    int in_c, in_h, in_w;       /* input images of the backbone */
    int64_t feat_dim;           /* backbone feature width */
    /* entries: training for a full batch, for the last partial batch of an
       epoch (NULL if the dataset size is a multiple of the batch), eval-mode
       features (rows = features->B) */
    const rt_entry *train_full, *train_last, *features;
    rt_method method;
    const rt_entry *classify;   /* supervised: x [rows] -> logits, eval mode */
    int classes;                /* supervised: classifier width */
    int clusters;               /* deepcluster: k */
    int drop_last;              /* the epoch drops its last partial batch (Deep InfoMax) */
    int gray_input;             /* the training steps read channel 0 of their images alone (compiled for a
                                   gray data set): training refuses images whose channels may differ */
    const char *reset_layer;    /* deepcluster: the head's last linear layer ("classifier.linear2"),
                                   its weight ~ N(0, 0.01) and bias 0 at each epoch's start */
    /* what the spec says */
    int K, batch, epochs;
    uint64_t seed;
    const char *data;           /* dataset name of the spec */
    const char *aggregation;    /* "cat", "sum", "mean", "max" (compiled in) */
    const char *loss;           /* "focal", "bce" (compiled in) */
    rt_aug_op *aug;             /* one view's pipeline */
    int naug;
    rt_optim_kind optim;
    rt_adam adam;
    rt_sgd sgd;
    int nmilestones;
    double milestones[8], lr_gamma;
    /* data-parallel: > 1 when compiled for a run over this many ranks
       (rrc compile --ranks N); the steps of one rank's share of a full
       and of the last batch, [0] of the larger share, [1] of the smaller
       (NULL when the shares are equal). rt_program_for_rank makes a rank's
       train_full / train_last of them. */
    int ranks;
    const rt_entry *rank_full[2], *rank_last[2];
    const rt_entry *alone[2];   /* the one-process train_full, train_last that rt_program_for_rank replaced */
} rt_program;

/* Sets train_full and train_last to rank `rank`'s steps of a run over
   `size` ranks (nothing for one). 0, or -1 with a one-line reason (the
   program was compiled for another number of ranks, or for none). */
int rt_program_for_rank(rt_program *p, int rank, int size, char *err, size_t errlen);

/* Images the backbone sees per image of the dataset in a training step:
   the views the runtime makes (K), times 4 rotations for RotationNet. */
int rt_backbone_views(const rt_program *p);

/* The tensor `name` of an entry, or NULL. */
const rt_step_tensor *rt_entry_tensor(const rt_entry *e, const char *name);
/* FNV-1a of s with its NUL (so "ab","c" and "a","bc" differ), continuing
   from h (0: from the start). */
uint64_t rt_hash_text(uint64_t h, const char *s);
/* Computes the layout hash of an entry's PARAM and STATE tensors (FNV-1a
   over name, rank, dims, region and offset). */
uint64_t rt_layout_hash(const rt_entry *e);
/* Whether `bytes` of planned regions fit this machine's physical memory;
   if not, a one-line reason ("WHAT needs X GiB, more than this machine's Y
   GiB of memory") in err. Checked before anything is allocated: a plan
   larger than memory would otherwise be half allocated, swap, or abort. */
bool rt_fits_memory(const char *what, double bytes, char *err, size_t errlen);

#endif
