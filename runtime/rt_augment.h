/*
** rt_augment.h: the augmentations of METHOD.md in C, on uint8 HWC images
** with PIL's arithmetic (each step rounds/clips to 0..255), so a view
** matches torchvision/PIL on the same parameters within one intensity
** level. The random parameters of a view are drawn from the counter-based
** generator keyed by (seed, epoch, image, view), so views do not depend on
** thread timing or on which other views are made.
*/
#ifndef RT_AUGMENT_H
#define RT_AUGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_rng.h"

typedef enum rt_aug_kind {
    RT_AUG_RANDOM_RESIZED_CROP,  /* size, scale[2], ratio[2]; PIL bilinear resize */
    RT_AUG_HFLIP,                /* p */
    RT_AUG_COLOR_JITTER,         /* brightness, contrast, saturation, hue, p */
    RT_AUG_GRAYSCALE,            /* p */
    RT_AUG_NORMALIZE,            /* mean[3], std[3]: the last step, to float */
    RT_AUG_RANDOM_CROP,          /* size, padding (zero) */
} rt_aug_kind;

typedef struct rt_aug_op {
    rt_aug_kind kind;
    int size;
    double scale[2], ratio[2];
    double p;
    double brightness, contrast, saturation, hue;
    double mean[3], std[3];
    int padding;
} rt_aug_op;

typedef struct rt_aug_pipeline {
    const rt_aug_op *ops;
    int nops;
    int out_h, out_w;            /* size of the views it makes */
    int gray_input;              /* 1: the images' three channels are known equal (rt_dataset.gray),
                                    so a view need not check its image before the gray fast path */
} rt_aug_pipeline;

/* One view of image `img` (h x w x c uint8, HWC; c = 1 or 3) written to out as
   float CHW [c_out, out_h, out_w], normalised by the pipeline's normalize
   step (or x/255 without one). Gray images are treated as 3 equal channels
   when c_out = 3; c = 3 with c_out = 1 gives the L of the view. The
   pipeline must have passed rt_aug_check for this image shape. Aborts with
   a message on stderr if memory runs out (there is no error return). */
void rt_augment_view(const rt_aug_pipeline *p, const uint8_t *img, int h, int w, int c, int c_out,
                     uint64_t seed, uint32_t epoch, uint32_t image, uint32_t view, float *out);

/* K views of the B images idx[0..B) of `pixels` (n x h x w x c), written to
   x [K*B, c_out, out_h, out_w] with view k of image i in row k*B + i, on
   up to nthreads threads of the step's pool (rt_pool.h; 1 = the calling
   thread). Deterministic for any nthreads: the rows are split statically and every view has its own
   random stream. The random key of row k*B + i is (seed, epoch, idx[i], k). */
void rt_augment_batch(const rt_aug_pipeline *p, const uint8_t *pixels, int h, int w, int c, int c_out,
                      const int64_t *idx, int B, int K, uint64_t seed, uint32_t epoch, int nthreads, float *x);

/* Normalise only (evaluation): x/255, then (x - mean)/std per channel, in
   float32 as torchvision's to_tensor + normalize (bit-identical); mean and
   std NULL: x/255 only. Channels as for rt_augment_view. */
void rt_normalize_image(const uint8_t *img, int h, int w, int c, int c_out, const double mean[3],
                        const double std[3], float *out);

/* ---- below: the building blocks of a view, with explicit parameters ----
   rt_augment_view = rt_aug_draw (the random parameters) + rt_aug_apply
   (the pixels). The per-operation functions work on uint8 HWC images with
   c = 1 (PIL mode "L") or c = 3 ("RGB") channels and reproduce Pillow 9.4's
   integer/float arithmetic bit for bit (tests/runtime/test_augment.c checks them
   against tests/golden/aug/, made by PIL + torchvision 0.14). */

/* Checks a pipeline before use: every op's parameters are in range
   (size > 0, 0 < scale[0] <= scale[1], 0 < ratio[0] <= ratio[1],
   p in [0,1], brightness/contrast/saturation >= 0, hue in [0, 0.5],
   std != 0, padding >= 0), c and c_out are 1 or 3, a random crop fits its
   padded input, and a view of an h x w image ends up out_h x out_w.
   Returns 0, or -1 with a one-line message in err. rt_augment_view and
   rt_augment_batch assume a pipeline that passed this check. */
int rt_aug_check(const rt_aug_pipeline *p, int h, int w, int c, int c_out, char *err, size_t errlen);

/* The random parameters one op of a view drew. */
typedef struct rt_aug_params {
    /* RT_AUG_RANDOM_RESIZED_CROP: the crop box in the op's input;
       RT_AUG_RANDOM_CROP: top/left in the zero-padded input, height/width
       = size */
    int top, left, height, width;
    int fallback;          /* RRC: no try was accepted; centre-crop fallback */
    int apply;             /* HFLIP, GRAYSCALE, COLOR_JITTER: the op applies */
    int order[4];          /* COLOR_JITTER: permutation of 0..3 = brightness,
                              contrast, saturation, hue */
    double factor[4];      /* COLOR_JITTER: brightness, contrast, saturation
                              factors and the hue shift */
    unsigned enabled;      /* COLOR_JITTER: bit k set = adjustment k is on
                              (torchvision's None when its range is {1}/{0}) */
} rt_aug_params;

/* Draws the parameters of view `view` of image `image` (h x w) in epoch
   `epoch`: par[k] for op k of p (p->nops entries). Pure function of its
   arguments. The stream layout and the draw order are documented at the
   top of rt_augment.c. */
void rt_aug_draw(const rt_aug_pipeline *p, int h, int w, uint64_t seed, uint32_t epoch, uint32_t image,
                 uint32_t view, rt_aug_params *par);

/* Applies drawn parameters to img (h x w x c) and writes float CHW
   [c_out, out_h, out_w] to out. Returns 0, or -1 when out of memory. */
/* A gray image (1 channel made RGB, or RGB with r = g = b) is worked on as
   one channel, with the same result; false forces the three-channel path
   (tests compare the two). */
extern bool rt_aug_gray_fast;
int rt_aug_apply(const rt_aug_pipeline *p, const rt_aug_params *par, const uint8_t *img, int h, int w, int c,
                 int c_out, float *out);

/* torchvision's RandomResizedCrop.get_params (0.14) on an h x w input,
   drawing from s: sets top, left, height, width and fallback of par. */
void rt_aug_rrc_box(rt_stream *s, int h, int w, const double scale[2], const double ratio[2], rt_aug_params *par);

/* Image.crop((left, top, left+cw, top+ch)).resize((ow, oh), BILINEAR): PIL's
   two-pass convolution resampling (antialiased when reducing), 22-bit
   fixed-point coefficients. The box must lie inside src. dst is
   oh x ow x c. Returns 0, or -1 when out of memory. */
int rt_aug_resized_crop(const uint8_t *src, int h, int w, int c, int top, int left, int ch, int cw, int oh,
                        int ow, uint8_t *dst);

/* Zero-pads src by `pad` on every side and copies the oh x ow window at
   (top, left) of the padded image to dst (torchvision RandomCrop). */
void rt_aug_pad_crop(const uint8_t *src, int h, int w, int c, int pad, int top, int left, int oh, int ow,
                     uint8_t *dst);

/* In place, as torchvision's functional ops on PIL images (ImageEnhance
   blends; factor 1 is the identity). For c = 1 saturation and hue are the
   identity and grayscale does nothing, as on an "L" image. */
void rt_aug_hflip(uint8_t *img, int h, int w, int c);
void rt_aug_brightness(uint8_t *img, int h, int w, int c, double factor);
void rt_aug_contrast(uint8_t *img, int h, int w, int c, double factor);
void rt_aug_saturation(uint8_t *img, int h, int w, int c, double factor);
void rt_aug_hue(uint8_t *img, int h, int w, int c, double hue);          /* hue in [-0.5, 0.5] */
void rt_aug_grayscale(uint8_t *img, int h, int w, int c);
/* The adjustments k = order[0..3] whose bit is set in `enabled`, with
   factor[k] (brightness, contrast, saturation, hue). */
void rt_aug_color_jitter(uint8_t *img, int h, int w, int c, const int order[4], const double factor[4],
                         unsigned enabled);

/* What adjust_hue adds to PIL's 8-bit hue: np.uint8(hue * 255), i.e.
   hue*255 truncated toward zero, modulo 256. */
uint8_t rt_aug_hue_shift(double hue);
/* PIL's luma of an RGB pixel ("L" conversion). */
uint8_t rt_aug_luma(uint8_t r, uint8_t g, uint8_t b);

#endif
