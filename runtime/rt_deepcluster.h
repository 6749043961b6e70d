/*
** rt_deepcluster.h: DeepCluster's per-epoch clustering and its training
** views (BASELINES.md 3; rt_deepcluster.c says how each step follows the
** reference).
*/
#ifndef RT_DEEPCLUSTER_H
#define RT_DEEPCLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "rt_augment.h"
#include "rt_data.h"
#include "rt_train.h"

typedef struct rt_dc {
    int64_t n, F;        /* training images, feature width */
    int k;               /* clusters */
    int32_t *labels;     /* [n] this epoch's pseudolabels */
    float *w;            /* [k] this epoch's loss weights */
    float *feat, *white; /* [n, F] features, [n, whitened width] */
} rt_dc;

/* What an epoch's clustering found, for the log. */
typedef struct rt_dc_report {
    double inertia, nmi;     /* nmi: against the dataset's labels (NaN without labels) */
    int iterations, empty;   /* of the kept k-means run */
    int64_t null_comps, zero_rows;
    double seconds;
} rt_dc_report;

/* Buffers for n images of F features and k clusters; 0, or -1 with a
   message (k outside [2, n], out of memory). */
int rt_dc_init(rt_dc *dc, int64_t n, int64_t F, int k, char *err, size_t errlen);
void rt_dc_free(rt_dc *dc);
/* The start of epoch `epoch`: resets the program's reset_layer, computes
   the features of d's images through `pipe` (view 0) with m's features
   entry, whitens, clusters into dc->labels and computes dc->w. 0, or -1
   with a message. */
int rt_dc_epoch(rt_dc *dc, rt_model *m, const rt_aug_pipeline *pipe, const rt_dataset *d, uint64_t seed, int epoch, int nthreads,
                rt_dc_report *rep, char *err, size_t errlen);
/* torchvision's to_pil_image of a float value: v * 255 in float,
   truncated toward zero, wrapped mod 256 (-433.5 -> 79). */
uint8_t rt_to_pil_byte(float v);
/* The training views of images idx[0..B) of d into x [B, c_out, out_h,
   out_w]: pipe on the image (view 1), to 8 bits as to_pil_image, pipe
   again (view 2), on nthreads threads of the pool. The pipeline must have
   passed rt_aug_check for d's images and for out_h x out_w x c_out ones. */
void rt_dc_views(const rt_aug_pipeline *pipe, const rt_dataset *d, int c_out, const int64_t *idx, int B, uint64_t seed, int epoch,
                 int nthreads, float *x);

#endif
