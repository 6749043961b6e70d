/*
** rt_data_bin.c: the "binary versions" of CIFAR-10, CIFAR-100 and STL-10,
** read from their fixed-size records into uint8 HWC images.
**
** CIFAR-10  (cifar-10-batches-bin): data_batch_1..5.bin = train,
**           test_batch.bin = test; a record is 1 label byte + 3072 bytes:
**           the R, G and B planes of 32x32, each row-major.
** CIFAR-100 (cifar-100-binary): train.bin, test.bin; a record is 2 label
**           bytes (coarse, fine) + the same 3072 bytes. `cifar100` uses the
**           fine labels (100 classes), `cifar100-20` the coarse ones (20);
**           both label bytes are range-checked either way.
** STL-10    (stl10_binary): train_X.bin/train_y.bin, test_X.bin/test_y.bin,
**           unlabeled_X.bin; an image is 3 planes of 96x96 stored
**           column-major (plane byte [x*96 + y] is the pixel at row y,
**           column x: the official stl10_input.py reshapes to (-1,3,96,96)
**           and transposes by (0,3,2,1)); labels are separate bytes 1..10,
**           returned as 0..9.
**
** PATH is the folder holding the files; if they are not there but the
** archive's own sub-folder is (cifar-10-batches-bin, cifar-100-binary,
** stl10_binary), that is used. Sizes are checked against the record size
** from the file system before anything is allocated, and every label byte
** is range-checked. Not read: the python/matlab versions, batches.meta.txt
** and class-name files (labels are indices only).
*/
#include "rt_data_internal.h"

#include <stdlib.h>
#include <string.h>

#define CIFAR_SIDE 32
#define CIFAR_PLANE (CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_PIXELS (3 * CIFAR_PLANE)
#define STL_SIDE 96
#define STL_PLANE (STL_SIDE * STL_SIDE)
#define STL_PIXELS (3 * STL_PLANE)
#define STL_CLASSES 10
#define CHUNK_RECORDS 256

/* PATH, or PATH/SUB when PATH lacks `probe` but PATH/SUB is a folder. */
static int pick_dir(const char *dir, const char *sub, const char *probe, char *buf, size_t n, char *err,
                    size_t errlen) {
    char p[RTD_PATH_MAX];
    if (rtd_join(p, sizeof p, dir, probe, err, errlen)) return -1;
    if (!rtd_is_file(p)) {
        if (rtd_join(p, sizeof p, dir, sub, err, errlen)) return -1;
        if (rtd_is_dir(p)) dir = p;
    }
    if (strlen(dir) >= n) {
        rtd_err(err, errlen, "%s: path too long", dir);
        return -1;
    }
    memcpy(buf, dir, strlen(dir) + 1);
    return 0;
}

/* Reads exactly n bytes or reports why not. */
static int read_exact(FILE *f, void *buf, size_t n, const char *path, char *err, size_t errlen) {
    size_t k = fread(buf, 1, n, f);
    if (k == n) return 0;
    if (ferror(f))
        rtd_err(err, errlen, "%s: read error", path);
    else
        rtd_err(err, errlen, "%s: truncated while reading (the file shrank?)", path);
    return -1;
}

/* ---- CIFAR ------------------------------------------------------------- */

#define CIFAR_MAX_FILES 5

int rtd_load_cifar(const char *name, const char *dir, rt_split split, rt_dataset *out, char *err,
                   size_t errlen) {
    int is10 = !strcmp(name, "cifar10"), coarse = !strcmp(name, "cifar100-20");
    if (!dir) {
        rtd_err(err, errlen, "%s: give the folder as --data %s:PATH", name, name);
        return -1;
    }
    if (split == RT_SPLIT_UNLABELED) {
        rtd_err(err, errlen, "%s has no unlabeled split", name);
        return -1;
    }
    const char *files10[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                             "data_batch_5.bin"};
    const char *test10[] = {"test_batch.bin"}, *train100[] = {"train.bin"}, *test100[] = {"test.bin"};
    const char **files;
    int nfiles;
    if (is10) {
        files = split == RT_SPLIT_TRAIN ? files10 : test10;
        nfiles = split == RT_SPLIT_TRAIN ? 5 : 1;
    } else {
        files = split == RT_SPLIT_TRAIN ? train100 : test100;
        nfiles = 1;
    }
    const int nlab = is10 ? 1 : 2;        /* label bytes per record */
    const size_t rec = (size_t)nlab + CIFAR_PIXELS;
    const int nclasses = is10 ? 10 : coarse ? 20 : 100;

    char base[RTD_PATH_MAX];
    if (pick_dir(dir, is10 ? "cifar-10-batches-bin" : "cifar-100-binary", files[0], base, sizeof base, err,
                 errlen))
        return -1;
    if (!rtd_is_dir(base)) {
        rtd_err(err, errlen, "%s: no such folder", base);
        return -1;
    }

    FILE *fs[CIFAR_MAX_FILES] = {0};
    int64_t counts[CIFAR_MAX_FILES];
    char paths[CIFAR_MAX_FILES][RTD_PATH_MAX];
    uint8_t *buf = NULL;
    int64_t total = 0;
    int rc = -1;
    for (int i = 0; i < nfiles; i++) {
        int64_t size;
        if (rtd_join(paths[i], sizeof paths[i], base, files[i], err, errlen)) goto done;
        if (rtd_open_sized(paths[i], &fs[i], &size, err, errlen)) goto done;
        if (size == 0 || size % (int64_t)rec) {
            rtd_err(err, errlen,
                    "%s: size %lld is not a positive multiple of the record size %zu (%d label byte%s + %d pixel "
                    "bytes)",
                    paths[i], (long long)size, rec, nlab, nlab > 1 ? "s" : "", CIFAR_PIXELS);
            goto done;
        }
        counts[i] = size / (int64_t)rec;
        total += counts[i];
    }
    if (rtd_alloc(out, total, CIFAR_SIDE, CIFAR_SIDE, 3, 1, name, err, errlen)) goto done;
    out->nclasses = nclasses;
    buf = malloc(rec * CHUNK_RECORDS);
    if (!buf) {
        rtd_err(err, errlen, "%s: out of memory", name);
        goto done;
    }
    int64_t at = 0;
    for (int i = 0; i < nfiles; i++) {
        for (int64_t r = 0; r < counts[i];) {
            int64_t m = counts[i] - r < CHUNK_RECORDS ? counts[i] - r : CHUNK_RECORDS;
            if (read_exact(fs[i], buf, (size_t)m * rec, paths[i], err, errlen)) goto done;
            for (int64_t j = 0; j < m; j++, r++, at++) {
                const uint8_t *src = buf + (size_t)j * rec;
                const char *bad = NULL;   /* which label byte is out of range */
                int bv = 0, lim = 0;
                if (src[0] >= (is10 ? 10 : 20)) {
                    bad = is10 ? "label" : "coarse label";
                    bv = src[0];
                    lim = is10 ? 10 : 20;
                } else if (!is10 && src[1] >= 100) {
                    bad = "fine label";
                    bv = src[1];
                    lim = 100;
                }
                if (bad) {
                    rtd_err(err, errlen, "%s: record %lld: %s %d is out of range [0, %d)", paths[i], (long long)r,
                            bad, bv, lim);
                    goto done;
                }
                int lab = is10 || coarse ? src[0] : src[1];
                out->labels[at] = lab;
                const uint8_t *px = src + nlab;
                uint8_t *dst = out->pixels + (size_t)at * CIFAR_PIXELS;
                /* CHW planes -> HWC */
                for (int p = 0; p < CIFAR_PLANE; p++) {
                    dst[3 * p + 0] = px[p];
                    dst[3 * p + 1] = px[CIFAR_PLANE + p];
                    dst[3 * p + 2] = px[2 * CIFAR_PLANE + p];
                }
            }
        }
    }
    static const double m10[3] = {0.491, 0.482, 0.447}, s10[3] = {0.247, 0.243, 0.262};
    static const double m100[3] = {0.507, 0.487, 0.441}, s100[3] = {0.267, 0.256, 0.276};
    rtd_set_norm(out, is10 ? m10 : m100, is10 ? s10 : s100);
    rc = 0;
done:
    free(buf);
    for (int i = 0; i < nfiles; i++)
        if (fs[i]) fclose(fs[i]);
    return rc;
}

/* ---- STL-10 ------------------------------------------------------------ */

int rtd_load_stl10(const char *name, const char *dir, rt_split split, rt_dataset *out, char *err,
                   size_t errlen) {
    if (!dir) {
        rtd_err(err, errlen, "%s: give the folder as --data %s:PATH", name, name);
        return -1;
    }
    const char *pre = split == RT_SPLIT_TRAIN ? "train" : split == RT_SPLIT_TEST ? "test" : "unlabeled";
    int labeled = split != RT_SPLIT_UNLABELED;
    char xname[32], yname[32], base[RTD_PATH_MAX], xpath[RTD_PATH_MAX], ypath[RTD_PATH_MAX];
    snprintf(xname, sizeof xname, "%s_X.bin", pre);
    snprintf(yname, sizeof yname, "%s_y.bin", pre);
    if (pick_dir(dir, "stl10_binary", xname, base, sizeof base, err, errlen)) return -1;
    if (!rtd_is_dir(base)) {
        rtd_err(err, errlen, "%s: no such folder", base);
        return -1;
    }
    if (rtd_join(xpath, sizeof xpath, base, xname, err, errlen)) return -1;
    if (rtd_join(ypath, sizeof ypath, base, yname, err, errlen)) return -1;

    FILE *fx = NULL, *fy = NULL;
    uint8_t *buf = NULL;
    int rc = -1;
    int64_t xsize, ysize = 0;
    if (rtd_open_sized(xpath, &fx, &xsize, err, errlen)) goto done;
    if (xsize == 0 || xsize % STL_PIXELS) {
        rtd_err(err, errlen, "%s: size %lld is not a positive multiple of the image size %d (96x96x3)", xpath,
                (long long)xsize, STL_PIXELS);
        goto done;
    }
    int64_t n = xsize / STL_PIXELS;
    if (labeled) {
        if (rtd_open_sized(ypath, &fy, &ysize, err, errlen)) goto done;
        if (ysize != n) {
            rtd_err(err, errlen, "%s: %lld labels, but %s has %lld images", ypath, (long long)ysize, xpath,
                    (long long)n);
            goto done;
        }
    }
    if (rtd_alloc(out, n, STL_SIDE, STL_SIDE, 3, labeled, name, err, errlen)) goto done;
    /* unlabeled: no labels and no classes (nclasses = 0) */
    out->nclasses = labeled ? STL_CLASSES : 0;
    if (labeled) {
        buf = malloc((size_t)n);
        if (!buf) {
            rtd_err(err, errlen, "%s: out of memory", ypath);
            goto done;
        }
        if (read_exact(fy, buf, (size_t)n, ypath, err, errlen)) goto done;
        for (int64_t i = 0; i < n; i++) {
            if (buf[i] < 1 || buf[i] > STL_CLASSES) {
                rtd_err(err, errlen, "%s: label %d of image %lld is out of range [1, %d]", ypath, buf[i],
                        (long long)i, STL_CLASSES);
                goto done;
            }
            out->labels[i] = buf[i] - 1;
        }
        free(buf);
        buf = NULL;
    }
    buf = malloc((size_t)STL_PIXELS * CHUNK_RECORDS);
    if (!buf) {
        rtd_err(err, errlen, "%s: out of memory", xpath);
        goto done;
    }
    for (int64_t i = 0; i < n;) {
        int64_t m = n - i < CHUNK_RECORDS ? n - i : CHUNK_RECORDS;
        if (read_exact(fx, buf, (size_t)m * STL_PIXELS, xpath, err, errlen)) goto done;
        for (int64_t j = 0; j < m; j++, i++) {
            const uint8_t *src = buf + (size_t)j * STL_PIXELS;
            uint8_t *dst = out->pixels + (size_t)i * STL_PIXELS;
            for (int ch = 0; ch < 3; ch++) {
                const uint8_t *plane = src + ch * STL_PLANE;
                /* column-major plane: walk it in storage order (x outer) */
                for (int x = 0; x < STL_SIDE; x++)
                    for (int y = 0; y < STL_SIDE; y++)
                        dst[(y * STL_SIDE + x) * 3 + ch] = plane[x * STL_SIDE + y];
            }
        }
    }
    static const double half[3] = {0.5, 0.5, 0.5};
    rtd_set_norm(out, half, half);
    rc = 0;
done:
    free(buf);
    if (fx) fclose(fx);
    if (fy) fclose(fy);
    return rc;
}
