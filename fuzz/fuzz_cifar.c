/*
** fuzz_cifar.c: libFuzzer target of the CIFAR-10/100 and STL-10 binary
** readers (runtime/rt_data_bin.c) through rt_dataset_load.
**
** Input: byte 0 = mode (low 3 bits: 0 cifar10 TEST, 1 cifar10 TRAIN (the
** same bytes as each of the five batches), 2 cifar100 TEST, 3 cifar100-20
** TRAIN, 4 stl10 TRAIN, 5 stl10 TEST, 6 stl10 UNLABELED, 7 cifar100 TRAIN;
** bit 7: zero-pad the images file up to a whole number of records, so
** that short inputs reach the record loops; STL-10's records are 27 KB);
** for STL-10, bytes 1-2 = little-endian length L of the labels file and the
** next L bytes are that file; the rest is the images (CIFAR: records) file.
*/
#include "fuzz_common.h"

#include "rt_data.h"

#define STL_PIXELS (96 * 96 * 3)
#define PAD_MAX_RECORDS 4

static const char *const cifar10_train[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                            "data_batch_4.bin", "data_batch_5.bin"};

/* Writes p[0..n) to path, zero-padded to a multiple of rec if pad (at most
   PAD_MAX_RECORDS records of padding come from the input's own length). */
static void put_padded(const char *path, const uint8_t *p, size_t n, size_t rec, int pad) {
    if (!pad || n % rec == 0 || n > PAD_MAX_RECORDS * rec) {
        fuzz_write(path, p, n);
        return;
    }
    size_t m = (n / rec + 1) * rec;
    uint8_t *buf = calloc(m, 1);
    if (!buf) abort();
    memcpy(buf, p, n);
    fuzz_write(path, buf, m);
    free(buf);
}

static int fuzz_cifar_one(const uint8_t *data, size_t size, char *err, size_t errlen) {
    if (size < 1) return 0;
    int mode = data[0] & 7, pad = data[0] & 0x80;
    data++;
    size--;
    const char *dir = fuzz_dir("cifar");
    const char *name;
    rt_split split;
    if (mode <= 3 || mode == 7) {
        static const char *const names[] = {"cifar10", "cifar10", "cifar100", "cifar100-20"};
        name = mode == 7 ? "cifar100" : names[mode];
        split = mode == 1 || mode == 3 || mode == 7 ? RT_SPLIT_TRAIN : RT_SPLIT_TEST;
        size_t rec = mode <= 1 ? 3073 : 3074;
        if (mode == 1)
            for (int i = 0; i < 5; i++) put_padded(fuzz_path(dir, cifar10_train[i]), data, size, rec, pad);
        else
            put_padded(fuzz_path(dir, mode == 0 ? "test_batch.bin" : split == RT_SPLIT_TRAIN ? "train.bin" : "test.bin"),
                       data, size, rec, pad);
    } else {
        name = "stl10";
        split = mode == 4 ? RT_SPLIT_TRAIN : mode == 5 ? RT_SPLIT_TEST : RT_SPLIT_UNLABELED;
        const char *pre = mode == 4 ? "train" : mode == 5 ? "test" : "unlabeled";
        size_t yl = 0;
        if (size >= 2) {
            yl = (size_t)data[0] | (size_t)data[1] << 8;
            data += 2;
            size -= 2;
        }
        if (yl > size) yl = size;
        char fn[64];
        snprintf(fn, sizeof fn, "%s_y.bin", pre);
        if (split != RT_SPLIT_UNLABELED) fuzz_write(fuzz_path(dir, fn), data, yl);
        snprintf(fn, sizeof fn, "%s_X.bin", pre);
        put_padded(fuzz_path(dir, fn), data + yl, size - yl, STL_PIXELS, pad);
    }
    char spec[512];
    snprintf(spec, sizeof spec, "%s:%s", name, dir);
    rt_dataset d;
    int rc = rt_dataset_load(spec, split, NULL, &d, err, errlen);
    fuzz_check_err(rc, err);
    if (rc == 0) {
        if (d.n <= 0 || d.c != 3 || (split == RT_SPLIT_UNLABELED) != !d.labels) abort();
        for (int64_t i = 0; d.labels && i < d.n; i++)
            if (d.labels[i] < 0 || d.labels[i] >= d.nclasses) abort();
    }
    rt_dataset_free(&d);
    return rc;
}

#ifndef RRC_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    fuzz_cifar_one(data, size, err, sizeof err);
    return 0;
}
#endif
