/*
** fuzz_idx.c: libFuzzer target of the IDX reader (runtime/rt_data_idx.c)
** through rt_dataset_load("mnist:DIR" / "fashion-mnist:DIR").
**
** Input: byte 0 = flags (bit 0: fashion-mnist instead of mnist, bit 1: the
** TEST split (t10k-*; mnist's test split also reads train-images for its
** constants, so the images are written under both names), bit 2: gzip the
** labels file, bit 3: gzip the images file); bytes 1-2 = little-endian
** length L of the labels file; the next L bytes = the labels file; the
** rest = the images file.
*/
#include "fuzz_common.h"

#include "rt_data.h"

#include <zlib.h>

static void idx_put(const char *dir, const char *stem, int ndim, int gz, const uint8_t *p, size_t n) {
    char name[64];
    snprintf(name, sizeof name, "%s-idx%d-ubyte.gz", stem, ndim);
    const char *gzpath = fuzz_path(dir, name);
    snprintf(name, sizeof name, "%s-idx%d-ubyte", stem, ndim);
    const char *plain = fuzz_path(dir, name);
    unlink(gzpath);
    unlink(plain);
    if (!gz) {
        fuzz_write(plain, p, n);
        return;
    }
    gzFile f = gzopen(gzpath, "wb1");
    if (!f) abort();
    if (n && gzwrite(f, p, (unsigned)n) != (int)n) abort();
    if (gzclose(f) != Z_OK) abort();
}

static int fuzz_idx_one(const uint8_t *data, size_t size, char *err, size_t errlen) {
    if (size < 3) return 0;
    int flags = data[0];
    size_t ll = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (ll > size) ll = size;
    const char *dir = fuzz_dir("idx");
    int test = flags & 2;
    idx_put(dir, test ? "t10k-labels" : "train-labels", 1, flags & 4, data, ll);
    idx_put(dir, test ? "t10k-images" : "train-images", 3, flags & 8, data + ll, size - ll);
    if (test) idx_put(dir, "train-images", 3, flags & 8, data + ll, size - ll);
    char spec[512];
    snprintf(spec, sizeof spec, "%s:%s", flags & 1 ? "fashion-mnist" : "mnist", dir);
    rt_dataset d;
    int rc = rt_dataset_load(spec, test ? RT_SPLIT_TEST : RT_SPLIT_TRAIN, NULL, &d, err, errlen);
    fuzz_check_err(rc, err);
    if (rc == 0) {
        if (d.n < 0 || d.h != 32 || d.w != 32 || d.c != 3 || !d.labels) abort();
        for (int64_t i = 0; i < d.n; i++)
            if (d.labels[i] < 0 || d.labels[i] >= d.nclasses) abort();
    }
    rt_dataset_free(&d);
    return rc;
}

#ifndef RRC_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    fuzz_idx_one(data, size, err, sizeof err);
    return 0;
}
#endif
