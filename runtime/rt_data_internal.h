/*
** rt_data_internal.h: what the dataset readers (rt_data*.c) share, and
** nothing else includes: the error formatter, path helpers, the allocation
** of a dataset's arrays, and one loader per file format. Not a public API:
** callers use rt_data.h.
**
** Conventions of every loader here: `out` arrives zeroed with its name set;
** the loader fills it; on error it frees its own temporaries, writes one
** line "PATH: problem" to err and returns -1, and rt_dataset_load frees
** whatever the loader already attached to `out`.
*/
#ifndef RT_DATA_INTERNAL_H
#define RT_DATA_INTERNAL_H

#include "rt_data.h"

#include <stdint.h>
#include <stdio.h>

/* Longest path the readers build (directory + file name). */
#define RTD_PATH_MAX 4096

/* Largest side of a decoded PNG/JPEG and largest pixel count: a 1 KB file
   may legitimately decode to a huge image, so this cap (PIL warns about
   "decompression bombs" at 89M pixels) is what bounds the allocation. */
#define RTD_IMAGE_MAX_SIDE (1 << 14)
#define RTD_IMAGE_MAX_PIXELS ((int64_t)1 << 26)

/* rt_data_subset.c: rt_data_opts' classes and labels, applied to a
   loaded split. */
int rtd_filter_classes(rt_dataset *d, const char *spec, char *err, size_t errlen);
int rtd_label_subset(rt_dataset *d, const char *spec, uint64_t seed, char *err, size_t errlen);

void rtd_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* dir + "/" + name into buf; -1 with "DIR: path too long" if it does not fit. */
int rtd_join(char *buf, size_t n, const char *dir, const char *name, char *err, size_t errlen);
int rtd_is_dir(const char *path);
int rtd_is_file(const char *path);

/* Opens a regular file for reading and returns its size; -1 with
   "PATH: cannot open: REASON" or "PATH: not a regular file". */
int rtd_open_sized(const char *path, FILE **f, int64_t *size, char *err, size_t errlen);

/* Allocates d->pixels (n*h*w*c bytes, zeroed) and, if labeled, d->labels,
   and sets n/h/w/c. `what` names the data in the out-of-memory message. */
int rtd_alloc(rt_dataset *d, int64_t n, int h, int w, int c, int labeled, const char *what, char *err,
              size_t errlen);

void rtd_set_norm(rt_dataset *d, const double mean[3], const double std[3]);

/* The formats. `dir` is the PATH part of the spec (may be NULL where the
   format has a default). */
int rtd_load_idx(const char *name, const char *dir, rt_split split, rt_dataset *out, char *err,
                 size_t errlen);
int rtd_load_cifar(const char *name, const char *dir, rt_split split, rt_dataset *out, char *err,
                   size_t errlen);
int rtd_load_stl10(const char *name, const char *dir, rt_split split, rt_dataset *out, char *err,
                   size_t errlen);
int rtd_load_folder(const char *dir, rt_split split, rt_dataset *out, char *err, size_t errlen);
/* rt_data_tiny.c: tiny-imagenet (its own layout) and slimagenet64 (an
   image folder at 64x64); dir must not be NULL. */
int rtd_load_tiny_imagenet(const char *dir, rt_split split, rt_dataset *out, char *err, size_t errlen);
int rtd_load_slimagenet64(const char *dir, rt_split split, rt_dataset *out, char *err, size_t errlen);

/* rt_data_folder.c: what the image-folder readers share.
   rtd_load_image_folder reads split `split` of the image-folder tree dir
   as folder:PATH does (rt_data_folder.c), `name` being the dataset named in
   messages. need_split: dir must have the train/ + test/|val/ layout (else
   a flat dir is TRAIN's class root). side > 0: every image must be
   side x side (else all images must have the first one's size).
   rtd_list_names: the names in dir, hidden ones (".x") excluded, sorted
   bytewise; free with rtd_names_free. rtd_image_kind: 1 for a name the
   readers decode (*.png, *.jpg, *.jpeg, any case), 2 for another image
   format (an error where found), 0 for other files (ignored). */
int rtd_load_image_folder(const char *name, const char *dir, rt_split split, int need_split, int side,
                          rt_dataset *out, char *err, size_t errlen);
int rtd_list_names(const char *dir, char ***out, size_t *nout, char *err, size_t errlen);
void rtd_names_free(char **v, size_t n);
int rtd_image_kind(const char *name);

/* Decodes one PNG or JPEG (chosen by the file's first bytes, not by its
   name) into a malloc'd h*w*3 RGB buffer: gray is replicated, alpha
   dropped, 16-bit samples keep their high byte. If want_h/want_w are
   nonzero and the image has another size, returns -2 with *h, *w set and
   nothing allocated (the caller names both files in its message). */
int rtd_decode_image(const char *path, int want_h, int want_w, uint8_t **rgb, int *h, int *w, char *err,
                     size_t errlen);

#endif
