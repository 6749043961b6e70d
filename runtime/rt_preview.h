/*
** rt_preview.h: a picture of what augmentation does: a grid with one row
** per image (the original, then its K views, without normalisation),
** written as a PNG for a person to look at (rrc augment-preview).
*/
#ifndef RT_PREVIEW_H
#define RT_PREVIEW_H

#include <stddef.h>
#include <stdint.h>

#include "rt_augment.h"
#include "rt_data.h"

/* Writes an RGB image (h x w x 3 bytes) as PNG, atomically (temporary file
   and rename). Returns 0, or -1 with "PATH: problem" in err. */
int rt_png_write(const char *path, const uint8_t *rgb, int w, int h, char *err, size_t errlen);

/* The grid of images idx[0..n) of d and K views each (epoch, seed as in
   training), each cell magnified `scale` times; written to path. */
int rt_augment_preview(const char *path, const rt_aug_pipeline *p, const rt_dataset *d, const int64_t *idx, int n, int K,
                       uint64_t seed, uint32_t epoch, int scale, char *err, size_t errlen);

#endif
