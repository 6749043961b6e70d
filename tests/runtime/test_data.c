/*
** test_data.c: tests of the dataset readers (rt_data.h).
**
** Each reader gets small files written here into the test's temporary
** folder, with pixel patterns that are different in x, y, channel and
** image, so that a transposed, mirrored or channel-swapped conversion
** fails; then damaged variants (truncated, corrupt, wrong sizes, labels
** out of range) must each give a one-line error naming the file, with
** `out` left empty (ASan checks there is no leak or crash). The real
** Fashion-MNIST from Debian's dataset-fashion-mnist is checked against its
** known counts and normalisation constants when it is installed (the test
** is reported skipped when it is not).
*/
#include "test.h"
#include "data_util.h"
#include "test_util.h"

#include "rt_data.h"

#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- helpers ----------------------------------------------------------- */

static char errbuf[1024];



static void truncate_to(const char *path, long n) {
    if (truncate(path, n) != 0) abort();
}


static const uint8_t *px(const rt_dataset *d, int64_t i, int y, int x) {
    return d->pixels + (((size_t)i * (size_t)d->h + (size_t)y) * (size_t)d->w + (size_t)x) * (size_t)d->c;
}

/* ---- IDX --------------------------------------------------------------- */

static void measure_norm(const rt_dataset *d, double *mean, double *std) {
    size_t m = (size_t)d->n * (size_t)d->h * (size_t)d->w * (size_t)d->c;
    double s1 = 0, s2 = 0;
    for (size_t i = 0; i < m; i++) {
        double v = d->pixels[i] / 255.0;
        s1 += v;
        s2 += v * v;
    }
    *mean = s1 / (double)m;
    *std = sqrt(s2 / (double)m - *mean * *mean);
}

TEST(data_idx_gz_and_plain) {
    const char *dir = test_data_dir("idx");
    test_idx_write_pair(dir, "train", 7, 1, 0);   /* gzipped */
    test_idx_write_pair(dir, "t10k", 4, 0, 1);    /* plain */
    char spec[600];
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    rt_dataset d, t;
    int rc = rt_dataset_load(spec, RT_SPLIT_TRAIN, NULL, &d, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(!strcmp(d.name, "mnist"));
    CHECK(d.n == 7 && d.h == 32 && d.w == 32 && d.c == 3 && d.nclasses == 10);
    int bad = 0;
    for (int i = 0; i < 7; i++) {
        CHECK(d.labels[i] == (i * 3) % 10);
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                const uint8_t *p = px(&d, i, y, x);
                int inside = y >= 2 && y < 30 && x >= 2 && x < 30;
                uint8_t want = inside ? test_idx_pix(i, y - 2, x - 2) : 0;
                bad += p[0] != want || p[1] != want || p[2] != want;
            }
    }
    CHECKF(bad == 0, "%d pixels differ", bad);
    CHECK(d.gray == 1);   /* the augmentation may then skip its per-view check */
    /* mnist: constants of the padded train split, computed at load */
    double m, s;
    measure_norm(&d, &m, &s);
    CHECK(d.has_norm);
    for (int ch = 0; ch < 3; ch++) CHECK(fabs(d.mean[ch] - m) < 1e-9 && fabs(d.std[ch] - s) < 1e-9);

    rc = rt_dataset_load(spec, RT_SPLIT_TEST, NULL, &t, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(t.n == 4 && t.labels[0] == 1 && t.labels[3] == 0);
    CHECK(px(&t, 3, 2, 2)[1] == test_idx_pix(3, 0, 0) && px(&t, 3, 29, 29)[2] == test_idx_pix(3, 27, 27));
    /* the test split reports the train split's constants */
    CHECK(t.has_norm && t.mean[0] == d.mean[0] && t.std[2] == d.std[2]);
    rt_dataset_free(&t);
    rt_dataset_free(&d);
    rt_dataset_free(&d);   /* idempotent */

    /* fashion-mnist from a given folder: the fixed constants */
    snprintf(spec, sizeof spec, "fashion-mnist:%s", dir);
    rc = rt_dataset_load(spec, RT_SPLIT_TEST, NULL, &d, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(!strcmp(d.name, "fashion-mnist") && d.n == 4);
    CHECK(d.has_norm && d.mean[1] == 0.2190 && d.std[1] == 0.3318);
    rt_dataset_free(&d);

    /* the "train-images.idx3-ubyte" spelling */
    const char *dir2 = test_data_dir("idx_dot");
    test_idx_write_pair(dir2, "train", 3, 0, 0);
    rename(test_join(dir2, "train-images-idx3-ubyte"), test_join(dir2, "train-images.idx3-ubyte"));
    snprintf(spec, sizeof spec, "mnist:%s", dir2);
    rc = rt_dataset_load(spec, RT_SPLIT_TRAIN, NULL, &d, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(d.n == 3);
    rt_dataset_free(&d);
}

TEST(data_idx_errors) {
    char spec[600];
    const char *dir;
    size_t len;
    uint8_t *b, junk[4096];
    memset(junk, 3, sizeof junk);

    /* truncated gzip image file (cut in the compressed stream) */
    dir = test_data_dir("idx_trunc_gz");
    test_idx_write_pair(dir, "train", 20, 1, 0);
    truncate_to(test_join(dir, "train-images-idx3-ubyte.gz"), test_file_size(test_join(dir, "train-images-idx3-ubyte.gz")) / 2);
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train-images-idx3-ubyte.gz: truncated: expected 15680 bytes of image data, got");

    /* truncated plain image file: exact message */
    dir = test_data_dir("idx_trunc");
    test_idx_write_pair(dir, "train", 3, 0, 0);
    truncate_to(test_join(dir, "train-images-idx3-ubyte"), 16 + 2 * 784 + 100);
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train-images-idx3-ubyte: truncated: expected 2352 bytes of image data, got 1668");

    /* one byte too many */
    dir = test_data_dir("idx_long");
    test_idx_write_pair(dir, "train", 3, 0, 0);
    {
        FILE *f = fopen(test_join(dir, "train-labels-idx1-ubyte"), "ab");
        fputc(0, f);
        fclose(f);
    }
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train-labels-idx1-ubyte: too long");

    /* corrupt gzip stream (bytes flipped in the middle) */
    dir = test_data_dir("idx_corrupt");
    test_idx_write_pair(dir, "train", 20, 1, 0);
    {
        const char *p = test_join(dir, "train-images-idx3-ubyte.gz");
        long n = test_file_size(p);
        FILE *f = fopen(p, "r+b");
        fseek(f, n / 2, SEEK_SET);
        fwrite(junk, 1, 64, f);
        fclose(f);
    }
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train-images-idx3-ubyte.gz: ");

    /* a header that claims 10^9 labels in a 1 KB file: an error, no 1 GB malloc */
    dir = test_data_dir("idx_huge");
    test_idx_write_pair(dir, "train", 3, 0, 0);
    uint32_t dl[1] = {1000000000u};
    b = test_idx_make(0x801, 1, dl, junk, 1024, &len);
    test_write_file(test_join(dir, "train-labels-idx1-ubyte"), b, len);
    free(b);
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train-labels-idx1-ubyte: truncated: expected 1000000000 bytes of label data, got 1024");
    /* ... or 10^9 images with 3 real labels */
    test_idx_write_pair(dir, "train", 3, 0, 0);
    uint32_t di[3] = {1000000000u, 28, 28};
    b = test_idx_make(0x803, 3, di, junk, 1024, &len);
    test_write_file(test_join(dir, "train-images-idx3-ubyte"), b, len);
    free(b);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train-images-idx3-ubyte: 1000000000 images, but");

    /* wrong magic, wrong image size, short header, label out of range */
    dir = test_data_dir("idx_bad");
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    test_idx_write_pair(dir, "train", 3, 0, 0);
    uint32_t d3[3] = {3, 28, 28};
    b = test_idx_make(0x801, 3, d3, junk, 3 * 784, &len);
    test_write_file(test_join(dir, "train-images-idx3-ubyte"), b, len);
    free(b);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train-images-idx3-ubyte: not an IDX image file (magic 0x00000801, want 0x00000803)");
    uint32_t d20[3] = {3, 20, 20};
    b = test_idx_make(0x803, 3, d20, junk, 3 * 400, &len);
    test_write_file(test_join(dir, "train-images-idx3-ubyte"), b, len);
    free(b);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train-images-idx3-ubyte: images are 20x20, expected 28x28");
    test_write_file(test_join(dir, "train-images-idx3-ubyte"), "\0\0\x08\x03\0\0", 6);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train-images-idx3-ubyte: truncated: the IDX header");
    test_idx_write_pair(dir, "train", 3, 0, 0);
    uint8_t labs[3] = {1, 10, 2};
    uint32_t d1[1] = {3};
    b = test_idx_make(0x801, 1, d1, labs, 3, &len);
    test_write_file(test_join(dir, "train-labels-idx1-ubyte"), b, len);
    free(b);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train-labels-idx1-ubyte: label 10 of item 1 is out of range");

    /* missing files and folders, no PATH, no unlabeled split */
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "no t10k-images-idx3-ubyte.gz or t10k-images-idx3-ubyte file");
    snprintf(spec, sizeof spec, "mnist:%s/nonexistent", test_tmpdir());
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "nonexistent: no such folder");
    CHECK_LOAD_FAILS("mnist", RT_SPLIT_TRAIN, "mnist: give the folder as --data mnist:PATH");
    CHECK_LOAD_FAILS("fashion-mnist", RT_SPLIT_UNLABELED, "fashion-mnist has no unlabeled split");
}

/* ---- CIFAR ------------------------------------------------------------- */

static uint8_t cifar_pix(int rec, int c, int y, int x) { return (uint8_t)((rec * 31 + c * 85 + y * 7 + x * 3) & 255); }

/* n records starting at global record number first; nlab label bytes. */
static uint8_t *cifar_make(int first, int n, int nlab, const uint8_t *labs, size_t *len) {
    size_t rec = (size_t)nlab + 3072;
    uint8_t *b = malloc(rec * (size_t)n);
    for (int r = 0; r < n; r++) {
        uint8_t *p = b + rec * (size_t)r;
        for (int k = 0; k < nlab; k++) p[k] = labs[r * nlab + k];
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++) p[nlab + c * 1024 + y * 32 + x] = cifar_pix(first + r, c, y, x);
    }
    *len = rec * (size_t)n;
    return b;
}

static int check_cifar_pixels(const rt_dataset *d) {
    int bad = 0;
    for (int64_t i = 0; i < d->n; i++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                for (int c = 0; c < 3; c++) bad += px(d, i, y, x)[c] != cifar_pix((int)i, c, y, x);
    return bad;
}

TEST(data_cifar10) {
    const char *top = test_data_dir("c10");
    const char *dir = test_data_dir("c10/cifar-10-batches-bin");   /* found by descending */
    int counts[5] = {2, 3, 1, 2, 2}, at = 0;
    for (int f = 0; f < 5; f++) {
        uint8_t labs[8];
        for (int r = 0; r < counts[f]; r++) labs[r] = (uint8_t)((at + r) % 10);
        size_t len;
        uint8_t *b = cifar_make(at, counts[f], 1, labs, &len);
        char name[64];
        snprintf(name, sizeof name, "data_batch_%d.bin", f + 1);
        test_write_file(test_join(dir, name), b, len);
        free(b);
        at += counts[f];
    }
    uint8_t tl[3] = {9, 0, 4};
    size_t len;
    uint8_t *b = cifar_make(0, 3, 1, tl, &len);
    test_write_file(test_join(dir, "test_batch.bin"), b, len);
    free(b);

    char spec[600];
    snprintf(spec, sizeof spec, "cifar10:%s", top);
    rt_dataset d;
    int rc = rt_dataset_load(spec, RT_SPLIT_TRAIN, NULL, &d, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(d.n == 10 && d.h == 32 && d.w == 32 && d.c == 3 && d.nclasses == 10);
    for (int i = 0; i < 10; i++) CHECK(d.labels[i] == i % 10);
    CHECKF(check_cifar_pixels(&d) == 0, "pixels differ");
    CHECK(d.has_norm && d.mean[0] == 0.491 && d.mean[2] == 0.447 && d.std[1] == 0.243 && d.std[2] == 0.262);
    rt_dataset_free(&d);

    snprintf(spec, sizeof spec, "cifar10:%s", dir);
    rc = rt_dataset_load(spec, RT_SPLIT_TEST, NULL, &d, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(d.n == 3 && d.labels[0] == 9 && d.labels[1] == 0 && d.labels[2] == 4);
    CHECK(check_cifar_pixels(&d) == 0);
    rt_dataset_free(&d);

    /* damaged variants */
    CHECK_LOAD_FAILS(spec, RT_SPLIT_UNLABELED, "cifar10 has no unlabeled split");
    CHECK_LOAD_FAILS("cifar10", RT_SPLIT_TRAIN, "cifar10: give the folder as --data cifar10:PATH");
    truncate_to(test_join(dir, "test_batch.bin"), 3 * 3073 - 5);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "test_batch.bin: size 9214 is not a positive multiple of the record size 3073");
    uint8_t l10[2] = {3, 10};
    b = cifar_make(0, 2, 1, l10, &len);
    test_write_file(test_join(dir, "test_batch.bin"), b, len);
    free(b);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "test_batch.bin: record 1: label 10 is out of range [0, 10)");
    unlink(test_join(dir, "data_batch_4.bin"));
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "data_batch_4.bin: cannot open");
    test_write_file(test_join(dir, "data_batch_4.bin"), "", 0);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "data_batch_4.bin: size 0 is not a positive multiple");
}

TEST(data_cifar100) {
    const char *dir = test_data_dir("c100");
    uint8_t labs[8] = {19, 99, 0, 0, 7, 42, 3, 5};   /* (coarse, fine) pairs */
    size_t len;
    uint8_t *b = cifar_make(0, 4, 2, labs, &len);
    test_write_file(test_join(dir, "train.bin"), b, len);
    test_write_file(test_join(dir, "test.bin"), b, 3074);     /* the first record */
    free(b);
    char spec[600];
    rt_dataset d;
    snprintf(spec, sizeof spec, "cifar100:%s", dir);
    int rc = rt_dataset_load(spec, RT_SPLIT_TRAIN, NULL, &d, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(!strcmp(d.name, "cifar100") && d.n == 4 && d.nclasses == 100);
    CHECK(d.labels[0] == 99 && d.labels[1] == 0 && d.labels[2] == 42 && d.labels[3] == 5);
    CHECK(check_cifar_pixels(&d) == 0);
    CHECK(d.has_norm && d.mean[0] == 0.507 && d.mean[1] == 0.487 && d.std[0] == 0.267 && d.std[2] == 0.276);
    rt_dataset_free(&d);

    snprintf(spec, sizeof spec, "cifar100-20:%s", dir);
    rc = rt_dataset_load(spec, RT_SPLIT_TRAIN, NULL, &d, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(d.n == 4 && d.nclasses == 20);
    CHECK(d.labels[0] == 19 && d.labels[1] == 0 && d.labels[2] == 7 && d.labels[3] == 3);
    CHECK(check_cifar_pixels(&d) == 0);
    rt_dataset_free(&d);
    rc = rt_dataset_load(spec, RT_SPLIT_TEST, NULL, &d, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(d.n == 1 && d.labels[0] == 19);
    rt_dataset_free(&d);

    uint8_t badfine[2] = {1, 100}, badcoarse[2] = {20, 1};
    b = cifar_make(0, 1, 2, badfine, &len);
    test_write_file(test_join(dir, "test.bin"), b, len);
    free(b);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "test.bin: record 0: fine label 100 is out of range [0, 100)");
    b = cifar_make(0, 1, 2, badcoarse, &len);
    test_write_file(test_join(dir, "test.bin"), b, len);
    free(b);
    snprintf(spec, sizeof spec, "cifar100:%s", dir);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "test.bin: record 0: coarse label 20 is out of range [0, 20)");
    truncate_to(test_join(dir, "train.bin"), 4 * 3074 - 1);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train.bin: size 12295 is not a positive multiple of the record size 3074");
}

/* ---- STL-10 ------------------------------------------------------------ */

/* The value of pixel (row y, column x, channel c) of image i. */
static uint8_t stl_pix(int i, int c, int y, int x) { return (uint8_t)((i * 29 + c * 70 + y * 3 + x * 5) & 255); }

static void stl_write(const char *dir, const char *pre, int n, int labeled) {
    uint8_t *b = malloc((size_t)n * 27648);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 96; y++)
                for (int x = 0; x < 96; x++)
                    /* column-major: byte [x*96 + y] of the plane */
                    b[(size_t)i * 27648 + (size_t)c * 9216 + (size_t)x * 96 + (size_t)y] = stl_pix(i, c, y, x);
    char name[64];
    snprintf(name, sizeof name, "%s_X.bin", pre);
    test_write_file(test_join(dir, name), b, (size_t)n * 27648);
    if (labeled) {
        for (int i = 0; i < n; i++) b[i] = (uint8_t)(1 + (i * 3) % 10);
        snprintf(name, sizeof name, "%s_y.bin", pre);
        test_write_file(test_join(dir, name), b, (size_t)n);
    }
    free(b);
}

TEST(data_stl10) {
    const char *dir = test_data_dir("stl");
    stl_write(dir, "train", 4, 1);
    stl_write(dir, "test", 2, 1);
    stl_write(dir, "unlabeled", 3, 0);
    char spec[600];
    snprintf(spec, sizeof spec, "stl10:%s", dir);
    rt_dataset d;
    int rc = rt_dataset_load(spec, RT_SPLIT_TRAIN, NULL, &d, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(d.n == 4 && d.h == 96 && d.w == 96 && d.c == 3 && d.nclasses == 10);
    for (int i = 0; i < 4; i++) CHECK(d.labels[i] == (i * 3) % 10);
    int bad = 0;
    for (int i = 0; i < 4; i++)
        for (int y = 0; y < 96; y++)
            for (int x = 0; x < 96; x++)
                for (int c = 0; c < 3; c++) bad += px(&d, i, y, x)[c] != stl_pix(i, c, y, x);
    CHECKF(bad == 0, "%d pixels differ", bad);
    /* a hand-picked pixel: row 1, column 0 of image 0, green = plane byte [0*96 + 1] */
    CHECK(px(&d, 0, 1, 0)[1] == (uint8_t)(70 + 3));
    CHECK(d.has_norm && d.mean[0] == 0.5 && d.std[2] == 0.5);
    rt_dataset_free(&d);

    rc = rt_dataset_load(spec, RT_SPLIT_UNLABELED, NULL, &d, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(d.n == 3 && !d.labels && d.nclasses == 0);
    CHECK(px(&d, 2, 95, 10)[2] == stl_pix(2, 2, 95, 10));
    rt_dataset_free(&d);

    rc = rt_dataset_load(spec, RT_SPLIT_TEST, NULL, &d, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(d.n == 2 && d.labels[1] == 3);
    rt_dataset_free(&d);

    /* damaged variants */
    uint8_t labs[2] = {0, 11};
    test_write_file(test_join(dir, "test_y.bin"), labs, 2);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "test_y.bin: label 0 of image 0 is out of range [1, 10]");
    test_write_file(test_join(dir, "test_y.bin"), labs, 1);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "test_y.bin: 1 labels, but");
    truncate_to(test_join(dir, "train_X.bin"), 4 * 27648 - 1);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train_X.bin: size 110591 is not a positive multiple of the image size 27648");
    unlink(test_join(dir, "unlabeled_X.bin"));
    CHECK_LOAD_FAILS(spec, RT_SPLIT_UNLABELED, "unlabeled_X.bin: cannot open");
    CHECK_LOAD_FAILS("stl10", RT_SPLIT_TRAIN, "stl10: give the folder");
}

/* ---- image folders ----------------------------------------------------- */



enum { FW = 12, FH = 10 };

/* A smooth pattern (JPEG keeps it within a few levels), distinct per image. */
static uint8_t fpix(int img, int y, int x, int c) { return (uint8_t)(40 + img * 20 + y * 4 + x * 3 + c * 30); }

static void make_image(uint8_t *buf, int img, int comps, int alpha) {
    int step = comps + alpha;
    for (int y = 0; y < FH; y++)
        for (int x = 0; x < FW; x++) {
            uint8_t *p = buf + ((size_t)y * FW + (size_t)x) * (size_t)step;
            for (int c = 0; c < comps; c++) p[c] = fpix(img, y, x, c);
            if (alpha) p[comps] = (uint8_t)(x * 20);   /* varied alpha: must be dropped, not composited */
        }
}

/* class "cat": 0.png (RGB), 1.png (RGBA), sub/2.jpg (RGB); class "dog":
   a.PNG (gray), b.jpeg (gray), notes.txt (ignored). */
static void folder_write(const char *root) {
    uint8_t buf[FW * FH * 4];
    char cat[600], dog[600], sub[700];
    snprintf(cat, sizeof cat, "%s/cat", root);
    snprintf(dog, sizeof dog, "%s/dog", root);
    snprintf(sub, sizeof sub, "%s/sub", cat);
    mkdir(root, 0755);
    mkdir(cat, 0755);
    mkdir(dog, 0755);
    mkdir(sub, 0755);
    make_image(buf, 0, 3, 0);
    test_png_write(test_join(cat, "0.png"), FW, FH, PNG_FORMAT_RGB, buf);
    make_image(buf, 1, 3, 1);
    test_png_write(test_join(cat, "1.png"), FW, FH, PNG_FORMAT_RGBA, buf);
    make_image(buf, 2, 3, 0);
    test_jpeg_write(test_join(sub, "2.jpg"), FW, FH, 3, buf);
    make_image(buf, 3, 1, 0);
    test_png_write(test_join(dog, "a.PNG"), FW, FH, PNG_FORMAT_GRAY, buf);
    make_image(buf, 4, 1, 0);
    test_jpeg_write(test_join(dog, "b.jpeg"), FW, FH, 1, buf);
    test_write_file(test_join(dog, "notes.txt"), "hello", 5);
    test_write_file(test_join(dog, ".hidden.png"), "junk", 4);   /* hidden: skipped */
}

TEST(data_folder) {
    const char *root = test_data_dir("imgs");
    folder_write(root);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", root);
    rt_dataset d;
    int rc = rt_dataset_load(spec, RT_SPLIT_TRAIN, NULL, &d, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(!strcmp(d.name, "folder"));
    CHECK(d.n == 5 && d.h == FH && d.w == FW && d.c == 3 && d.nclasses == 2 && !d.has_norm);
    int want_lab[5] = {0, 0, 0, 1, 1};
    for (int i = 0; i < 5; i++) CHECK(d.labels[i] == want_lab[i]);
    int bad_png = 0, worst_jpeg = 0;
    for (int y = 0; y < FH; y++)
        for (int x = 0; x < FW; x++)
            for (int c = 0; c < 3; c++) {
                bad_png += px(&d, 0, y, x)[c] != fpix(0, y, x, c);   /* RGB */
                bad_png += px(&d, 1, y, x)[c] != fpix(1, y, x, c);   /* RGBA: alpha dropped */
                bad_png += px(&d, 3, y, x)[c] != fpix(3, y, x, 0);   /* gray replicated */
                int e2 = abs((int)px(&d, 2, y, x)[c] - (int)fpix(2, y, x, c));
                int e4 = abs((int)px(&d, 4, y, x)[c] - (int)fpix(4, y, x, 0));
                if (e2 > worst_jpeg) worst_jpeg = e2;
                if (e4 > worst_jpeg) worst_jpeg = e4;
                CHECK(px(&d, 4, y, x)[c] == px(&d, 4, y, x)[0]);    /* gray JPEG -> R=G=B */
            }
    CHECKF(bad_png == 0, "%d PNG pixels differ", bad_png);
    CHECKF(worst_jpeg <= 4, "JPEG pixels off by up to %d", worst_jpeg);
    rt_dataset_free(&d);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "no test split");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_UNLABELED, "folder has no unlabeled split");
    CHECK_LOAD_FAILS("folder", RT_SPLIT_TRAIN, "folder: give the folder as --data folder:PATH");

    /* train/ + val/ layout */
    const char *lay = test_data_dir("imgs_split");
    char p[700];
    snprintf(p, sizeof p, "%s/train", lay);
    folder_write(p);
    snprintf(p, sizeof p, "%s/val", lay);
    folder_write(p);
    unlink(test_join(p, "cat/0.png"));
    snprintf(spec, sizeof spec, "folder:%s", lay);
    rc = rt_dataset_load(spec, RT_SPLIT_TEST, NULL, &d, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(d.n == 4 && d.labels[0] == 0 && d.labels[2] == 1 && px(&d, 0, 3, 4)[1] == fpix(1, 3, 4, 1));
    rt_dataset_free(&d);
    rc = rt_dataset_load(spec, RT_SPLIT_TRAIN, NULL, &d, errbuf, sizeof errbuf);
    REQUIREF(rc == 0, "%s", errbuf);
    CHECK(d.n == 5);
    rt_dataset_free(&d);
    snprintf(p, sizeof p, "%s/val/zebra", lay);
    mkdir(p, 0755);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "val: class folders differ from those of");
}

TEST(data_folder_errors) {
    char spec[600], p[700];
    uint8_t buf[FW * FH * 4];

    /* a mismatching size names the file */
    const char *root = test_data_dir("imgs_size");
    folder_write(root);
    make_image(buf, 0, 3, 0);
    test_png_write(test_join(root, "dog/c.png"), FW - 1, FH, PNG_FORMAT_RGB, buf);
    snprintf(spec, sizeof spec, "folder:%s", root);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "dog/c.png: image is 11x10, but");

    /* truncated PNG */
    root = test_data_dir("imgs_tpng");
    folder_write(root);
    truncate_to(test_join(root, "cat/1.png"), test_file_size(test_join(root, "cat/1.png")) - 30);
    snprintf(spec, sizeof spec, "folder:%s", root);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "cat/1.png: bad PNG");

    /* truncated JPEG */
    root = test_data_dir("imgs_tjpg");
    folder_write(root);
    truncate_to(test_join(root, "cat/sub/2.jpg"), test_file_size(test_join(root, "cat/sub/2.jpg")) / 2);
    snprintf(spec, sizeof spec, "folder:%s", root);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "cat/sub/2.jpg: bad JPEG");

    /* corrupt JPEG header, garbage named .png, unsupported format */
    root = test_data_dir("imgs_bad");
    folder_write(root);
    test_write_file(test_join(root, "dog/b.jpeg"), "\xff\xd8\xff\xe0garbage", 11);
    snprintf(spec, sizeof spec, "folder:%s", root);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "dog/b.jpeg: bad JPEG");
    test_write_file(test_join(root, "dog/b.jpeg"), "not an image", 12);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "dog/b.jpeg: neither a PNG nor a JPEG file");
    unlink(test_join(root, "dog/b.jpeg"));
    test_write_file(test_join(root, "dog/x.bmp"), "BM", 2);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "dog/x.bmp: unsupported image format");
    unlink(test_join(root, "dog/x.bmp"));
    static uint8_t wide[20000];   /* wider than the decoder accepts */
    test_png_write(test_join(root, "dog/big.png"), 20000, 1, PNG_FORMAT_GRAY, wide);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "dog/big.png: ");
    unlink(test_join(root, "dog/big.png"));

    /* empty class, no classes, missing folder */
    snprintf(p, sizeof p, "%s/emu", root);
    mkdir(p, 0755);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "emu: no PNG or JPEG images");
    root = test_data_dir("imgs_none");
    test_write_file(test_join(root, "x.png"), "", 0);
    snprintf(spec, sizeof spec, "folder:%s", root);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "imgs_none: no class sub-folders");
    snprintf(spec, sizeof spec, "folder:%s/nope", test_tmpdir());
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "nope: no such folder");
}

/* ImageFolder's order: classes bytewise ("B" < "a"), then os.walk's
   directories sorted as strings ("B" < "B/a" < "B/a-x" < "B/sub"), then
   file names; sorting whole paths would give another order ('-' < '/'). */
TEST(data_folder_order) {
    const char *root = test_data_dir("imgs_order");
    const char *sub[] = {"B", "B/a", "B/a-x", "B/sub", "a"};
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) mkdir(test_join(root, sub[i]), 0755);
    const struct { const char *file; uint8_t v; } files[] = {
        {"B/z.png", 10}, {"B/a/c.png", 20}, {"B/a-x/b.png", 30}, {"B/sub/a.png", 40}, {"a/q.png", 50}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        test_png_write(test_join(root, files[i].file), 1, 1, PNG_FORMAT_GRAY, &files[i].v);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", root);
    rt_dataset d;
    REQUIREF(rt_dataset_load(spec, RT_SPLIT_TRAIN, NULL, &d, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    REQUIRE(d.n == 5 && d.h == 1 && d.w == 1);
    for (int i = 0; i < 5; i++) {
        CHECKF(d.pixels[3 * i] == files[i].v, "image %d is %d, want %d (%s)", i, d.pixels[3 * i], files[i].v,
               files[i].file);
        CHECK(d.labels[i] == (i < 4 ? 0 : 1));
    }
    rt_dataset_free(&d);
}

/* ---- synthetic --------------------------------------------------------- */

TEST(data_synthetic) {
    rt_data_opts o = {.h = 16, .w = 20, .c = 3, .seed = 7};
    rt_dataset a, b, t;
    REQUIREF(rt_dataset_load("synthetic:300", RT_SPLIT_TRAIN, &o, &a, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    CHECK(a.n == 300 && a.h == 16 && a.w == 20 && a.c == 3 && a.nclasses == 10 && !a.has_norm);
    for (int i = 0; i < 300; i++) CHECK(a.labels[i] == i % 10);
    size_t per = 16 * 20 * 3;
    /* deterministic; image i does not depend on N */
    REQUIRE(rt_dataset_load("synthetic:50", RT_SPLIT_TRAIN, &o, &b, errbuf, sizeof errbuf) == 0);
    CHECK(b.n == 50 && memcmp(a.pixels, b.pixels, 50 * per) == 0);
    rt_dataset_free(&b);
    o.seed = 8;
    REQUIRE(rt_dataset_load("synthetic:50", RT_SPLIT_TRAIN, &o, &b, errbuf, sizeof errbuf) == 0);
    CHECK(memcmp(a.pixels, b.pixels, 50 * per) != 0);
    rt_dataset_free(&b);
    o.seed = 7;
    REQUIRE(rt_dataset_load("synthetic:300", RT_SPLIT_TEST, &o, &t, errbuf, sizeof errbuf) == 0);
    CHECK(memcmp(a.pixels, t.pixels, per) != 0);

    /* learnable: nearest class-mean colour, fitted on train, beats chance
       on test by far */
    double mean[10][3] = {{0}};
    for (int64_t i = 0; i < a.n; i++)
        for (size_t p = 0; p < per; p++) mean[a.labels[i]][p % 3] += a.pixels[(size_t)i * per + p];
    for (int k = 0; k < 10; k++)
        for (int c = 0; c < 3; c++) mean[k][c] /= 30.0 * (double)(per / 3);
    int correct = 0;
    for (int64_t i = 0; i < t.n; i++) {
        double m[3] = {0, 0, 0};
        for (size_t p = 0; p < per; p++) m[p % 3] += t.pixels[(size_t)i * per + p] / (double)(per / 3);
        int best = 0;
        double bd = 1e30;
        for (int k = 0; k < 10; k++) {
            double dd = 0;
            for (int c = 0; c < 3; c++) dd += (m[c] - mean[k][c]) * (m[c] - mean[k][c]);
            if (dd < bd) { bd = dd; best = k; }
        }
        correct += best == t.labels[i];
    }
    CHECKF(correct > 150, "nearest-mean accuracy %d/300", correct);
    /* not saturated: some spread of values */
    int lo = 255, hi = 0;
    for (size_t p = 0; p < (size_t)a.n * per; p++) {
        if (a.pixels[p] < lo) lo = a.pixels[p];
        if (a.pixels[p] > hi) hi = a.pixels[p];
    }
    CHECK(hi - lo > 100);
    rt_dataset_free(&t);
    rt_dataset_free(&a);

    /* defaults: 1024 images of 32x32x3 */
    REQUIRE(rt_dataset_load("synthetic", RT_SPLIT_TRAIN, NULL, &a, errbuf, sizeof errbuf) == 0);
    CHECK(a.n == 1024 && a.h == 32 && a.w == 32 && a.c == 3);
    rt_dataset_free(&a);
    rt_data_opts g = {.h = 8, .w = 8, .c = 1, .seed = 1};
    REQUIRE(rt_dataset_load("synthetic:3", RT_SPLIT_TEST, &g, &a, errbuf, sizeof errbuf) == 0);
    CHECK(a.n == 3 && a.c == 1);
    rt_dataset_free(&a);

    CHECK_LOAD_FAILS("synthetic:0", RT_SPLIT_TRAIN, "synthetic: bad image count '0'");
    CHECK_LOAD_FAILS("synthetic:12x", RT_SPLIT_TRAIN, "synthetic: bad image count '12x'");
    CHECK_LOAD_FAILS("synthetic", RT_SPLIT_UNLABELED, "synthetic has no unlabeled split");
    g.c = 5;
    CHECK(rt_dataset_load("synthetic", RT_SPLIT_TRAIN, &g, &a, errbuf, sizeof errbuf) == -1 &&
          strstr(errbuf, "synthetic: bad image shape 8x8x5"));
}

TEST(data_names_and_specs) {
    const char *names = rt_dataset_names();
    CHECK(strstr(names, "fashion-mnist") && strstr(names, "cifar100-20") && strstr(names, "stl10") &&
          strstr(names, "folder:PATH") && strstr(names, "synthetic"));
    CHECK_LOAD_FAILS("imagenet:/x", RT_SPLIT_TRAIN, "imagenet: unknown dataset (known: fashion-mnist");
    CHECK_LOAD_FAILS("", RT_SPLIT_TRAIN, "empty dataset name");
    CHECK_LOAD_FAILS("cifar10:", RT_SPLIT_TRAIN, "cifar10: empty PATH");
    CHECK_LOAD_FAILS("a-very-long-dataset-name-that-goes-on-and-on-and-on-and-on-and-on-and-on", RT_SPLIT_TRAIN,
                     "unknown dataset");
    rt_dataset_free(NULL);
}

/* ---- the real Fashion-MNIST (Debian's dataset-fashion-mnist) ----------- */

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

TEST(data_fashion_mnist_debian) {
    if (access(FASHION_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0)
        SKIP("%s not installed (Debian package dataset-fashion-mnist)", FASHION_DIR);
    rt_split splits[2] = {RT_SPLIT_TRAIN, RT_SPLIT_TEST};
    int64_t want_n[2] = {60000, 10000};
    for (int s = 0; s < 2; s++) {
        rt_dataset d;
        int rc = rt_dataset_load("fashion-mnist", splits[s], NULL, &d, errbuf, sizeof errbuf);
        REQUIREF(rc == 0, "%s", errbuf);
        CHECK(d.n == want_n[s] && d.h == 32 && d.w == 32 && d.c == 3 && d.nclasses == 10);
        int64_t hist[10] = {0};
        for (int64_t i = 0; i < d.n; i++) hist[d.labels[i]]++;
        for (int k = 0; k < 10; k++) CHECKF(hist[k] == d.n / 10, "class %d: %lld", k, (long long)hist[k]);
        int64_t bad_pad = 0, bad_gray = 0;
        for (int64_t i = 0; i < d.n; i++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++) {
                    const uint8_t *p = px(&d, i, y, x);
                    if (y < 2 || y >= 30 || x < 2 || x >= 30) bad_pad += p[0] || p[1] || p[2];
                    bad_gray += p[0] != p[1] || p[1] != p[2];
                }
        CHECKF(bad_pad == 0, "%lld nonzero padding pixels", (long long)bad_pad);
        CHECKF(bad_gray == 0, "%lld pixels not gray", (long long)bad_gray);
        CHECK(d.has_norm && d.mean[0] == 0.2190 && d.std[0] == 0.3318);
        if (splits[s] == RT_SPLIT_TRAIN) {
            double m, sd;
            measure_norm(&d, &m, &sd);
            CHECKF(fabs(m - 0.2190) < 5e-4 && fabs(sd - 0.3318) < 5e-4, "measured mean %.5f std %.5f", m, sd);
        }
        rt_dataset_free(&d);
    }
}

/* ---- subsets: --classes and --labels ----------------------------------- */

static size_t img_bytes(const rt_dataset *d) { return (size_t)d->h * (size_t)d->w * (size_t)d->c; }

TEST(data_subset_classes) {
    rt_data_opts o = {8, 8, 3, 5};
    rt_dataset all, sub;
    REQUIREF(rt_dataset_load("synthetic:400", RT_SPLIT_TRAIN, &o, &all, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    rt_data_subset s = {.classes = "7,2-3"};
    REQUIREF(rt_dataset_load_subset("synthetic:400", RT_SPLIT_TRAIN, &o, &s, &sub, errbuf, sizeof errbuf) == 0, "%s",
             errbuf);
    CHECK(sub.nclasses == 3);
    /* the images of classes 7, 2, 3 in dataset order, relabelled 0, 1, 2 */
    int64_t k = 0;
    const int newlabel[10] = {-1, -1, 1, 2, -1, -1, -1, 0, -1, -1};
    for (int64_t i = 0; i < all.n; i++) {
        int want = newlabel[all.labels[i]];
        if (want < 0) continue;
        REQUIRE(k < sub.n);
        CHECKF(sub.labels[k] == want, "image %lld: label %d, expected %d", (long long)k, sub.labels[k], want);
        CHECKF(memcmp(sub.pixels + (size_t)k * img_bytes(&sub), all.pixels + (size_t)i * img_bytes(&all),
                      img_bytes(&all)) == 0, "image %lld is not image %lld of the whole set", (long long)k, (long long)i);
        k++;
    }
    CHECK(k == sub.n && k > 0);
    rt_dataset_free(&sub);
    static const char *bad[] = {"5-2", "10", "1,1", "0-3,2", "a", "", "1,", "-1", "+1", " 1", "1-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s.classes = bad[i];
        errbuf[0] = 0;
        int rc = rt_dataset_load_subset("synthetic:400", RT_SPLIT_TRAIN, &o, &s, &sub, errbuf, sizeof errbuf);
        CHECKF(rc == -1 && strstr(errbuf, "--classes") && !strchr(errbuf, '\n'), "--classes \"%s\": rc %d, \"%s\"", bad[i],
               rc, errbuf);
        CHECK(rc != -1 || (!sub.pixels && !sub.labels));
        if (rc == 0) rt_dataset_free(&sub);
    }
    rt_dataset_free(&all);
}

TEST(data_subset_labels_balanced_and_seeded) {
    rt_data_opts o = {8, 8, 3, 5};
    rt_dataset all, a, b, c;
    REQUIRE(rt_dataset_load("synthetic:1000", RT_SPLIT_TRAIN, &o, &all, errbuf, sizeof errbuf) == 0);
    int64_t per[10] = {0};
    for (int64_t i = 0; i < all.n; i++) per[all.labels[i]]++;
    rt_data_subset s = {.labels = "10%", .seed = 3};
    REQUIREF(rt_dataset_load_subset("synthetic:1000", RT_SPLIT_TRAIN, &o, &s, &a, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    int64_t got[10] = {0};
    for (int64_t i = 0; i < a.n; i++) got[a.labels[i]]++;
    for (int k = 0; k < 10; k++) {
        int64_t want = per[k] / 10;   /* floor(10% of the class) */
        CHECKF(got[k] == want, "class %d: %lld of %lld images kept, expected %lld", k, (long long)got[k],
               (long long)per[k], (long long)want);
    }
    /* kept in dataset order: each kept image is a later image of the whole set */
    int64_t j = 0;
    for (int64_t i = 0; i < a.n; i++) {
        while (j < all.n && memcmp(all.pixels + (size_t)j * img_bytes(&all), a.pixels + (size_t)i * img_bytes(&a), img_bytes(&a)))
            j++;
        CHECKF(j < all.n, "kept image %lld is not in order", (long long)i);
        j++;
    }
    /* the same seed gives the same subset, another seed another */
    REQUIRE(rt_dataset_load_subset("synthetic:1000", RT_SPLIT_TRAIN, &o, &s, &b, errbuf, sizeof errbuf) == 0);
    CHECK(b.n == a.n && memcmp(a.pixels, b.pixels, (size_t)a.n * img_bytes(&a)) == 0);
    s.seed = 4;
    REQUIRE(rt_dataset_load_subset("synthetic:1000", RT_SPLIT_TRAIN, &o, &s, &c, errbuf, sizeof errbuf) == 0);
    CHECK(c.n == a.n && memcmp(a.pixels, c.pixels, (size_t)a.n * img_bytes(&a)) != 0);
    rt_dataset_free(&b);
    rt_dataset_free(&c);
    /* N per class; the test split is never subset */
    s.labels = "7-per-class";
    REQUIRE(rt_dataset_load_subset("synthetic:1000", RT_SPLIT_TRAIN, &o, &s, &b, errbuf, sizeof errbuf) == 0);
    int64_t n7[10] = {0};
    for (int64_t i = 0; i < b.n; i++) n7[b.labels[i]]++;
    for (int k = 0; k < 10; k++) CHECK(n7[k] == 7);
    rt_dataset_free(&b);
    rt_dataset full_test;
    REQUIRE(rt_dataset_load("synthetic:1000", RT_SPLIT_TEST, &o, &full_test, errbuf, sizeof errbuf) == 0);
    REQUIRE(rt_dataset_load_subset("synthetic:1000", RT_SPLIT_TEST, &o, &s, &b, errbuf, sizeof errbuf) == 0);
    CHECK(b.n == full_test.n);
    rt_dataset_free(&b);
    rt_dataset_free(&full_test);
    static const char *bad[] = {"0%", "101%", "10", "x%", "0-per-class", "2.5-per-class", "100000-per-class", "%", "0.001%"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s.labels = bad[i];
        errbuf[0] = 0;
        int rc = rt_dataset_load_subset("synthetic:1000", RT_SPLIT_TRAIN, &o, &s, &b, errbuf, sizeof errbuf);
        CHECKF(rc == -1 && strstr(errbuf, "--labels") && !strchr(errbuf, '\n'), "--labels \"%s\": rc %d, \"%s\"", bad[i], rc,
               errbuf);
        if (rc == 0) rt_dataset_free(&b);
    }
    rt_dataset_free(&a);
    rt_dataset_free(&all);
}
