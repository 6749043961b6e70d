/*
** data_util.h: what the dataset tests share (tests/runtime/test_data*.c):
** folders and paths under the test's temporary folder, PNG and JPEG
** writers, the check of a refused load, and the augmentation pipeline of
** METHOD.md (test_augment.c, test_aug_dist.c). Defined in tests/data_util.c.
*/
#ifndef RRC_DATA_UTIL_H
#define RRC_DATA_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rt_augment.h"
#include "rt_data.h"
#include "test.h"

/* test_tmpdir()/name, created; one of 8 static buffers used in turn. */
const char *test_data_dir(const char *name);
/* dir/name; one of 8 static buffers used in turn. */
const char *test_join(const char *dir, const char *name);
/* root/rel and every folder on the way to it. */
void test_mkdirs(const char *root, const char *rel);
/* PNG via libpng's simplified API: format is PNG_FORMAT_GRAY/GA/RGB/RGBA. */
void test_png_write(const char *path, int w, int h, uint32_t format, const uint8_t *pix);
/* JPEG at quality 100, gray (comps 1) or RGB (3). */
void test_jpeg_write(const char *path, int w, int h, int comps, const uint8_t *pix);

/* test_write_file (test_util.h), gzip-compressed. */
bool test_write_gz(const char *path, const void *data, size_t n);
/* The pixel (y, x) of image i of test_idx_write_pair's images. */
uint8_t test_idx_pix(int i, int y, int x);
/* An IDX file: magic, dims (big-endian), data. Returns malloc'd bytes. */
uint8_t *test_idx_make(uint32_t magic, int ndim, const uint32_t *dims, const uint8_t *data, size_t ndata, size_t *len);
/* Writes an MNIST-like pair pre-images/labels (28x28, n images, gzipped
   or plain) into dir. */
void test_idx_write_pair(const char *dir, const char *pre, int n, int gz, uint8_t label_bias);

/* METHOD.md's unsupervised augmentation pipeline at side `size`, as
   specs/lib/augment.lua builds it: random resized crop, flip, colour jitter
   (p 0.8), grayscale (p 0.2), normalisation with mean/std. */
void test_method_pipeline(rt_aug_op ops[5], int size, const double mean[3], const double std[3]);

/* Loads spec expecting an error that mentions `want`, on one line, with
   `out` left empty. Uses the including file's `char errbuf[]`. */
#define CHECK_LOAD_FAILS(spec, split, want)                                                          \
    do {                                                                                             \
        rt_dataset d_;                                                                               \
        errbuf[0] = 0;                                                                               \
        int rc_ = rt_dataset_load((spec), (split), NULL, &d_, errbuf, sizeof errbuf);                \
        CHECKF(rc_ == -1, "%s: expected an error", (spec));                                          \
        CHECKF(rc_ != -1 || strstr(errbuf, (want)), "%s: error \"%s\" lacks \"%s\"", (spec), errbuf, \
               (want));                                                                              \
        CHECKF(rc_ != -1 || (!strchr(errbuf, '\n') && errbuf[0]), "not one line: %s", errbuf);      \
        CHECK(rc_ != -1 || (!d_.pixels && !d_.labels && d_.n == 0));                                 \
        if (rc_ == 0) rt_dataset_free(&d_);                                                          \
    } while (0)

#endif
