/*
** rt_data.h: datasets, loaded whole into memory as uint8 images in HWC
** layout (as PIL holds them), with integer labels. Every reader validates
** its files (magic numbers, sizes, label ranges) before trusting them and
** reports a one-line error naming the file.
**
** Names (`--data NAME[:PATH]`):
**   fashion-mnist, mnist     IDX files, gzipped or not; default folder for
**                            fashion-mnist: /usr/share/datasets/fashion-mnist
**                            (Debian's dataset-fashion-mnist). Loaded 28x28
**                            images are zero-padded to 32x32 and gray is
**                            replicated to 3 channels (METHOD.md protocol).
**   cifar10, cifar100, cifar100-20  the binary versions (cifar100-20: coarse labels)
**   stl10                    binary version (96x96x3, column-major on disk)
**   tiny-imagenet:PATH       the unpacked tiny-imagenet-200 folder: classes
**                            in wnids.txt's order, TRAIN from
**                            train/WNID/images/, TEST from val/images/ with
**                            the labels of val/val_annotations.txt (the
**                            usual practice: test/ has no labels and is not
**                            read); 64x64 JPEGs, gray ones made RGB
**   slimagenet64:PATH        an image folder as folder:PATH, but with
**                            PATH/train and PATH/test (or val) required and
**                            every image 64x64 (Antoniou et al. 2020)
**   folder:PATH              one sub-folder per class of PNG/JPEG images
**   synthetic[:N]            N seeded random images (default 1024) of the
**                            size the caller asks for, 10 classes
**
** Splits: TRAIN and TEST everywhere (folder:PATH needs PATH/train plus
** PATH/test or PATH/val for TEST); UNLABELED only for stl10, where labels
** is NULL and nclasses 0. Normalisation constants: METHOD.md's for CIFAR
** and STL-10; for the padded MNIST-format sets fashion-mnist's fixed
** 0.2190/0.3318 and mnist's computed from its train split at load; the
** official code's mean 0.5 / std 0.25 per channel for tiny-imagenet and
** slimagenet64; none (has_norm = 0) for folder and synthetic. Details in
** rt_data*.c (tiny-imagenet and slimagenet64: rt_data_tiny.c).
*/
#ifndef RT_DATA_H
#define RT_DATA_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum rt_split { RT_SPLIT_TRAIN, RT_SPLIT_TEST, RT_SPLIT_UNLABELED } rt_split;

typedef struct rt_dataset {
    char name[64];           /* e.g. "fashion-mnist" */
    int64_t n;               /* number of images */
    int h, w, c;             /* image shape after loading (HWC) */
    uint8_t *pixels;         /* n * h * w * c bytes, image i at i*h*w*c */
    int32_t *labels;         /* n labels in [0, nclasses), or NULL (unlabeled) */
    int nclasses;
    /* the dataset's own normalisation constants (mean/std of x/255 per
       channel), when known; has_norm = 0 otherwise */
    int has_norm;
    double mean[3], std[3];
    /* 1: every image's channels are equal because the loader made them so
       (a gray data set replicated to 3 channels); 0: not known */
    int gray;
} rt_dataset;

/* Options for datasets whose shape the caller chooses (synthetic). */
typedef struct rt_data_opts {
    int h, w, c;             /* synthetic image shape */
    uint64_t seed;           /* synthetic content */
} rt_data_opts;

/* A part of a split (rt_dataset_load_subset). */
typedef struct rt_data_subset {
    /* --classes: keep the images of these classes, "A,B" or "A-B" or a mix
       ("0-4", "1,3,5"), relabelled 0, 1, ... in the order given (NULL: all) */
    const char *classes;
    /* --labels, TRAIN split only: a class-balanced subset, "P%" of each
       class (floor(P/100 * N_c) images) or "N-per-class", drawn by a
       seeded shuffle of each class (seed) and kept in dataset order (NULL:
       all) */
    const char *labels;
    uint64_t seed;
} rt_data_subset;

/* Loads split `split` of dataset `spec` ("NAME" or "NAME:PATH"). Returns 0,
   or -1 with a one-line message ("PATH: problem") in err. */
int rt_dataset_load(const char *spec, rt_split split, const rt_data_opts *opts, rt_dataset *out, char *err,
                    size_t errlen);
/* rt_dataset_load, then the subset sub (NULL: the whole split). Errors in
   the subset's spelling or size are one line in err, as the loaders'. */
int rt_dataset_load_subset(const char *spec, rt_split split, const rt_data_opts *opts, const rt_data_subset *sub,
                           rt_dataset *out, char *err, size_t errlen);
void rt_dataset_free(rt_dataset *d);

/* "fashion-mnist, mnist, cifar10, ..." for help texts */
const char *rt_dataset_names(void);
/* Whether dataset `spec` ("NAME" or "NAME:PATH") is one whose loader makes
   it gray (rt_dataset.gray: the IDX sets, MNIST and Fashion-MNIST), for
   when it is not at hand to load. */
bool rt_dataset_gray_name(const char *spec);

#endif
