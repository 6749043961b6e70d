/*
** rt_data_idx.c: MNIST and Fashion-MNIST in IDX format (LeCun et al.),
** gzipped or plain: zlib's gzopen/gzread read both, so one code path
** serves the Debian package's .gz files and unpacked copies.
**
** File names tried in PATH, in order: train-images-idx3-ubyte.gz,
** train-images-idx3-ubyte, train-images.idx3-ubyte (the name some unpacking
** tools produce); the same for train-labels (idx1) and t10k-*.
**
** Validation: magic 0x00000803 (uint8, 3 dims) for images and 0x00000801
** for labels, 28x28 images, equal counts, labels < 10, and the data exactly
** as long as the header says (a short file is "truncated: expected N bytes
** of image data, got M"; a long one is an error too). Nothing is allocated
** from a header's word alone: the labels are read in growing chunks, so a
** header claiming 10^9 labels in a 1 KB file costs 1 KB, and the image array
** is allocated only once the labels file has proved that many images exist.
**
** The protocol of rrc (METHOD.md, TOOLCHAIN.md section 7): each 28x28 image
** is zero-padded by 2 pixels on every side to 32x32 and its gray value
** replicated to 3 channels while loading, so the CIFAR networks apply
** unchanged. The normalisation constants are those of the padded images:
**   fashion-mnist  mean 0.2190, std 0.3318 (fixed, as in TOOLCHAIN.md; the
**                  unpadded 0.2860/0.3530 scaled to the padded area)
**   mnist          computed exactly from the TRAIN split's pixel histogram
**                  at load time (loading the test split therefore also
**                  reads train-images once), so any MNIST-format data set
**                  given as mnist:PATH (KMNIST, EMNIST, ...) gets its own
**                  constants; for real MNIST they are 0.1000 / 0.2752.
** Population std (divide by the pixel count), as numpy's .std() computes.
*/
#include "rt_data_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_SIDE 28
#define IDX_PAD 2
#define IDX_OUT (IDX_SIDE + 2 * IDX_PAD)
#define IDX_CLASSES 10
#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_DEFAULT_FASHION "/usr/share/datasets/fashion-mnist"
#define IDX_CHUNK_IMAGES 512

/* Reads up to n bytes; returns the count (short only at end of data) or -1
   on a read or decompression error. gzread takes an unsigned length, so
   large reads go in pieces. */
static int64_t gz_read(gzFile f, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got;
        if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
        int k = gzread(f, (char *)buf + got, (unsigned)want);
        if (k < 0) return -1;
        if (k == 0) break;
        got += (size_t)k;
    }
    return (int64_t)got;
}

/* The message for a failed gzread: a corrupt stream, or an I/O error. */
static void gz_fail(gzFile f, const char *path, char *err, size_t errlen) {
    int zerr = 0;
    const char *msg = gzerror(f, &zerr);
    if (zerr == Z_ERRNO)
        rtd_err(err, errlen, "%s: read error: %s", path, strerror(errno));
    else {
        /* zlib prefixes its message with the path given to gzopen */
        size_t pl = strlen(path);
        if (msg && !strncmp(msg, path, pl) && !strncmp(msg + pl, ": ", 2)) msg += pl + 2;
        rtd_err(err, errlen, "%s: corrupt gzip data (%s)", path, msg ? msg : "?");
    }
}

/* After a short read: a gzip stream cut off mid-way reads as a short read
   plus Z_BUF_ERROR, which is also truncation; other errors are corruption. */
static int gz_short_is_corrupt(gzFile f) {
    int zerr = 0;
    gzerror(f, &zerr);
    return zerr != Z_OK && zerr != Z_BUF_ERROR;
}

/* Counts the bytes left after the expected data (0 if none); -1 on error. */
static int64_t gz_count_rest(gzFile f) {
    char buf[1 << 14];
    int64_t total = 0;
    for (;;) {
        int k = gzread(f, buf, sizeof buf);
        if (k < 0) return -1;
        if (k == 0) return total;
        total += k;
    }
}

/* Finds STEM's file in dir (".gz" first, then plain). */
static int idx_find(const char *dir, const char *stem, int ndim, char *path, size_t pathlen, char *err,
                    size_t errlen) {
    char name[64];
    /* separator between stem and "idxN", and suffix, of the three names */
    static const char *const seps[] = {"-", "-", "."}, *const sufs[] = {".gz", "", ""};
    for (size_t i = 0; i < sizeof seps / sizeof seps[0]; i++) {
        snprintf(name, sizeof name, "%s%sidx%d-ubyte%s", stem, seps[i], ndim, sufs[i]);
        if (rtd_join(path, pathlen, dir, name, err, errlen)) return -1;
        if (rtd_is_file(path)) return 0;
    }
    if (!rtd_is_dir(dir))
        rtd_err(err, errlen, "%s: no such folder", dir);
    else
        rtd_err(err, errlen, "%s: no %s-idx%d-ubyte.gz or %s-idx%d-ubyte file", dir, stem, ndim, stem, ndim);
    return -1;
}

/* Opens an IDX file and reads its header: magic, then ndim big-endian
   uint32 dimensions. */
static gzFile idx_open(const char *path, uint32_t magic, int ndim, uint32_t dims[3], char *err,
                       size_t errlen) {
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        rtd_err(err, errlen, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(f, 1u << 17);
    unsigned char hdr[16];
    size_t hl = 4 + 4 * (size_t)ndim;
    int64_t k = gz_read(f, hdr, hl);
    if (k < 0) {
        gz_fail(f, path, err, errlen);
        gzclose(f);
        return NULL;
    }
    if ((size_t)k < hl) {
        rtd_err(err, errlen, "%s: truncated: the IDX header needs %zu bytes, got %lld", path, hl, (long long)k);
        gzclose(f);
        return NULL;
    }
    uint32_t m = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (m != magic) {
        rtd_err(err, errlen, "%s: not an IDX %s file (magic 0x%08x, want 0x%08x)", path,
                ndim == 3 ? "image" : "label", (unsigned)m, (unsigned)magic);
        gzclose(f);
        return NULL;
    }
    for (int i = 0; i < ndim; i++) {
        const unsigned char *p = hdr + 4 + 4 * i;
        dims[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    }
    return f;
}

/* Reads a labels file whole. The buffer grows with the data actually read,
   never to the header's count up front. */
static int idx_read_labels(const char *path, uint8_t **labels, int64_t *n, char *err, size_t errlen) {
    uint32_t dims[3];
    gzFile f = idx_open(path, IDX_MAGIC_LABELS, 1, dims, err, errlen);
    if (!f) return -1;
    int64_t want = dims[0], got = 0, cap = 0;
    uint8_t *buf = NULL;
    for (;;) {
        if (got == cap) {
            if (cap == want) break;
            int64_t ncap = cap ? 2 * cap : 1 << 16;
            if (ncap > want) ncap = want;
            uint8_t *nb = realloc(buf, (size_t)ncap ? (size_t)ncap : 1);
            if (!nb) {
                rtd_err(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        int64_t k = gz_read(f, buf + got, (size_t)(cap - got));
        if (k < 0) {
            gz_fail(f, path, err, errlen);
            goto fail;
        }
        got += k;
        if (got < cap) break;   /* end of data */
    }
    if (got < want) {
        if (gz_short_is_corrupt(f))
            gz_fail(f, path, err, errlen);
        else
            rtd_err(err, errlen, "%s: truncated: expected %lld bytes of label data, got %lld", path,
                    (long long)want, (long long)got);
        goto fail;
    }
    int64_t rest = gz_count_rest(f);
    if (rest < 0) {
        gz_fail(f, path, err, errlen);
        goto fail;
    }
    if (rest > 0) {
        rtd_err(err, errlen, "%s: too long: expected %lld bytes of label data, got %lld", path, (long long)want,
                (long long)(want + rest));
        goto fail;
    }
    for (int64_t i = 0; i < want; i++)
        if (buf[i] >= IDX_CLASSES) {
            rtd_err(err, errlen, "%s: label %d of item %lld is out of range [0, %d)", path, buf[i], (long long)i,
                    IDX_CLASSES);
            goto fail;
        }
    gzclose(f);
    *labels = buf;
    *n = want;
    return 0;
fail:
    free(buf);
    gzclose(f);
    return -1;
}

/* Reads the images of an open IDX file (header already read: n images of
   28x28). Writes them padded to 32x32x3 into out (if not NULL) and counts
   their pixel values into hist (if not NULL). */
static int idx_read_images(gzFile f, const char *path, int64_t n, uint8_t *out, uint64_t hist[256], char *err,
                           size_t errlen) {
    const size_t per = IDX_SIDE * IDX_SIDE;
    uint8_t *buf = malloc(per * IDX_CHUNK_IMAGES);
    if (!buf) {
        rtd_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int64_t done = 0;
    while (done < n) {
        int64_t m = n - done < IDX_CHUNK_IMAGES ? n - done : IDX_CHUNK_IMAGES;
        size_t bytes = (size_t)m * per;
        int64_t k = gz_read(f, buf, bytes);
        if (k < 0) {
            gz_fail(f, path, err, errlen);
            free(buf);
            return -1;
        }
        if ((size_t)k < bytes) {
            if (gz_short_is_corrupt(f))
                gz_fail(f, path, err, errlen);
            else
                rtd_err(err, errlen, "%s: truncated: expected %lld bytes of image data, got %lld", path,
                        (long long)n * (long long)per, (long long)done * (long long)per + k);
            free(buf);
            return -1;
        }
        for (int64_t j = 0; j < m; j++) {
            const uint8_t *src = buf + (size_t)j * per;
            if (hist)
                for (size_t p = 0; p < per; p++) hist[src[p]]++;
            if (!out) continue;
            uint8_t *dst = out + (size_t)(done + j) * (IDX_OUT * IDX_OUT * 3);
            for (int y = 0; y < IDX_SIDE; y++)
                for (int x = 0; x < IDX_SIDE; x++) {
                    uint8_t v = src[y * IDX_SIDE + x];
                    uint8_t *d = dst + ((y + IDX_PAD) * IDX_OUT + (x + IDX_PAD)) * 3;
                    d[0] = d[1] = d[2] = v;
                }
        }
        done += m;
    }
    free(buf);
    int64_t rest = gz_count_rest(f);
    if (rest < 0) {
        gz_fail(f, path, err, errlen);
        return -1;
    }
    if (rest > 0) {
        rtd_err(err, errlen, "%s: too long: expected %lld bytes of image data, got %lld", path,
                (long long)n * (long long)per, (long long)n * (long long)per + rest);
        return -1;
    }
    return 0;
}

static gzFile idx_open_images(const char *path, int64_t *n, char *err, size_t errlen) {
    uint32_t dims[3];
    gzFile f = idx_open(path, IDX_MAGIC_IMAGES, 3, dims, err, errlen);
    if (!f) return NULL;
    if (dims[1] != IDX_SIDE || dims[2] != IDX_SIDE) {
        rtd_err(err, errlen, "%s: images are %ux%u, expected %dx%d (MNIST format)", path, (unsigned)dims[1],
                (unsigned)dims[2], IDX_SIDE, IDX_SIDE);
        gzclose(f);
        return NULL;
    }
    *n = dims[0];
    return f;
}

/* mean/std of x/255 over the padded images, from the histogram of the
   unpadded pixels of n images. */
static void hist_norm(uint64_t hist[256], int64_t n, double *mean, double *std) {
    hist[0] += (uint64_t)n * (IDX_OUT * IDX_OUT - IDX_SIDE * IDX_SIDE);
    uint64_t cnt = 0, s1 = 0, s2 = 0;   /* exact: s2 < 2^16 * 2^36 */
    for (int v = 0; v < 256; v++) {
        cnt += hist[v];
        s1 += hist[v] * (uint64_t)v;
        s2 += hist[v] * (uint64_t)(v * v);
    }
    if (!cnt) {
        *mean = 0;
        *std = 1;
        return;
    }
    double m = (double)s1 / (double)cnt, var = (double)s2 / (double)cnt - m * m;
    *mean = m / 255.0;
    *std = sqrt(var > 0 ? var : 0) / 255.0;
    if (*std == 0) *std = 1;   /* a constant data set: avoid dividing by 0 */
}

/* Scans train-images of dir for the mnist constants (test split loads). */
static int idx_train_norm(const char *dir, double *mean, double *std, char *err, size_t errlen) {
    char path[RTD_PATH_MAX];
    if (idx_find(dir, "train-images", 3, path, sizeof path, err, errlen)) return -1;
    int64_t n;
    gzFile f = idx_open_images(path, &n, err, errlen);
    if (!f) return -1;
    uint64_t hist[256] = {0};
    int rc = idx_read_images(f, path, n, NULL, hist, err, errlen);
    gzclose(f);
    if (rc) return -1;
    hist_norm(hist, n, mean, std);
    return 0;
}

int rtd_load_idx(const char *name, const char *dir, rt_split split, rt_dataset *out, char *err,
                 size_t errlen) {
    int fashion = !strcmp(name, "fashion-mnist");
    if (!dir) {
        if (!fashion) {
            rtd_err(err, errlen, "%s: give the folder as --data %s:PATH", name, name);
            return -1;
        }
        dir = IDX_DEFAULT_FASHION;
    }
    if (split == RT_SPLIT_UNLABELED) {
        rtd_err(err, errlen, "%s has no unlabeled split", name);
        return -1;
    }
    const char *pre = split == RT_SPLIT_TRAIN ? "train" : "t10k";
    char stem[32], ipath[RTD_PATH_MAX], lpath[RTD_PATH_MAX];
    snprintf(stem, sizeof stem, "%s-images", pre);
    if (idx_find(dir, stem, 3, ipath, sizeof ipath, err, errlen)) return -1;
    snprintf(stem, sizeof stem, "%s-labels", pre);
    if (idx_find(dir, stem, 1, lpath, sizeof lpath, err, errlen)) return -1;

    uint8_t *lab = NULL;
    int64_t nl = 0, ni = 0;
    if (idx_read_labels(lpath, &lab, &nl, err, errlen)) return -1;
    gzFile f = idx_open_images(ipath, &ni, err, errlen);
    if (!f) {
        free(lab);
        return -1;
    }
    if (ni != nl) {
        rtd_err(err, errlen, "%s: %lld images, but %s has %lld labels", ipath, (long long)ni, lpath, (long long)nl);
        goto fail;
    }
    /* nl labels were really read, so this allocation is backed by data */
    if (rtd_alloc(out, ni, IDX_OUT, IDX_OUT, 3, 1, ipath, err, errlen)) goto fail;
    uint64_t hist[256] = {0};
    int want_hist = !fashion && split == RT_SPLIT_TRAIN;
    if (idx_read_images(f, ipath, ni, out->pixels, want_hist ? hist : NULL, err, errlen)) goto fail;
    gzclose(f);
    f = NULL;
    for (int64_t i = 0; i < nl; i++) out->labels[i] = lab[i];
    free(lab);
    lab = NULL;
    out->nclasses = IDX_CLASSES;

    double mean, std;
    if (fashion) {
        mean = 0.2190;
        std = 0.3318;
    } else if (split == RT_SPLIT_TRAIN) {
        hist_norm(hist, ni, &mean, &std);
    } else if (idx_train_norm(dir, &mean, &std, err, errlen)) {
        return -1;
    }
    const double m3[3] = {mean, mean, mean}, s3[3] = {std, std, std};
    rtd_set_norm(out, m3, s3);
    out->gray = 1;   /* replicated to 3 channels by idx_read_images */
    return 0;
fail:
    free(lab);
    if (f) gzclose(f);
    return -1;
}
