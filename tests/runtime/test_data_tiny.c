/*
** test_data_tiny.c: tests of the 64x64 datasets of the paper,
** tiny-imagenet:PATH and slimagenet64:PATH (runtime/rt_data_tiny.c).
**
** Small copies of each layout are written here into the test's temporary
** folder: tiny-ImageNet's wnids.txt (in an order that is not sorted, with
** a CRLF line and a trailing blank line), train/WNID/images/ (JPEGs, a
** gray JPEG and a PNG, names whose bytewise order is not their numeric
** order, the WNID_boxes.txt files, hidden files and folders named like
** images), val/images/ with val_annotations.txt in an order that is not
** the files', and test/ (no labels, not read);
** SlimageNet64's train/ and test/ (or val/) class folders of PNGs and
** JPEGs. JPEG images are solid colours (decoded within a few levels), PNGs
** carry a pattern that differs in x, y, channel and image (checked exactly).
** Counts, labels, class order, shapes and the normalisation constants are
** checked, then every damaged variant must give a one-line error naming
** the file, rc -1 and an empty `out` (ASan checks there is no leak).
*/
#include "test.h"
#include "data_util.h"
#include "test_util.h"

#include "rt_data.h"

#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------- */

enum { S = 64 };   /* the side of every image of both datasets */

static char errbuf[1024];




static void write_text(const char *path, const char *text) { test_write_file(path, text, strlen(text)); }




/* The colour of solid image `id` (distinct per id and channel). */
static uint8_t col(int id, int c) { return (uint8_t)(30 + (id * 37 + c * 71) % 200); }

/* The pattern of PNG image `id`. */
static uint8_t pat(int id, int y, int x, int c) { return (uint8_t)((id * 50 + y * 3 + x * 2 + c * 70) & 255); }

/* A solid JPEG of colour id (gray: channel 0's value), w x h. */
static void solid_jpeg(const char *path, int id, int gray, int w, int h) {
    static uint8_t buf[4 * S * S * 3];
    int comps = gray ? 1 : 3;
    for (int p = 0; p < w * h; p++)
        for (int c = 0; c < comps; c++) buf[(size_t)p * (size_t)comps + (size_t)c] = col(id, c);
    test_jpeg_write(path, w, h, comps, buf);
}

static void pattern_png(const char *path, int id, int w, int h) {
    static uint8_t buf[4 * S * S * 3];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) buf[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] = pat(id, y, x, c);
    test_png_write(path, w, h, PNG_FORMAT_RGB, buf);
}

/* The largest difference of image i of d from solid colour id (gray: every
   channel is col(id, 0)); -1 if a gray image does not have R = G = B. */
static int solid_err(const rt_dataset *d, int64_t i, int id, int gray) {
    const uint8_t *p = d->pixels + (size_t)i * S * S * 3;
    int worst = 0;
    for (int q = 0; q < S * S; q++)
        for (int c = 0; c < 3; c++) {
            if (gray && p[3 * q + c] != p[3 * q]) return -1;
            int e = abs((int)p[3 * q + c] - (int)col(id, gray ? 0 : c));
            if (e > worst) worst = e;
        }
    return worst;
}

static int pattern_bad(const rt_dataset *d, int64_t i, int id) {
    const uint8_t *p = d->pixels + (size_t)i * S * S * 3;
    int bad = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++) bad += p[((size_t)y * S + (size_t)x) * 3 + (size_t)c] != pat(id, y, x, c);
    return bad;
}

static void check_norm(const rt_dataset *d) {
    CHECK(d->has_norm == 1);
    for (int c = 0; c < 3; c++) CHECK(d->mean[c] == 0.5 && d->std[c] == 0.25);
}

/* ---- tiny-ImageNet ----------------------------------------------------- */

/* wnids.txt's order (line k), which is not the sorted order; classes are
   numbered in sorted order (ImageFolder's): class L is line KOF[L], and
   line k is class RANK[k]. */
static const char *const WNID[3] = {"n03000003", "n01000001", "n02000002"};
static const int KOF[3] = {1, 2, 0}, RANK[3] = {2, 0, 1};
/* The train images of each class: numbers j, written in this order, read
   in bytewise name order (0, 1, 10, 2). Image (k, j) has colour id
   10 * k + j, except class 1's j = 2 (a gray JPEG) and class 2's j = 10
   (a PNG with pattern id 10 * k + j). */
static const int TJ[4] = {0, 1, 2, 10};
static const int TJ_READ[4] = {0, 1, 10, 2};
/* val/images/val_I.JPEG, colour id 100 + I, class VCLS[I]; val_4 is gray;
   the annotation file lists them in the order VORDER. */
static const int VCLS[5] = {2, 0, 1, 1, 0};
static const int VORDER[5] = {3, 0, 4, 1, 2};

static int tiny_gray(int k, int j) { return k == 1 && j == 2; }
static int tiny_png(int k, int j) { return k == 2 && j == 10; }

static void tiny_write(const char *root) {
    mkdir(root, 0755);
    write_text(test_join(root, "wnids.txt"), "n03000003\nn01000001\r\nn02000002\n\n");
    write_text(test_join(root, "words.txt"), "n01000001\tsomething\n");
    char rel[256], name[256];
    for (int k = 0; k < 3; k++) {
        snprintf(rel, sizeof rel, "train/%s/images", WNID[k]);
        test_mkdirs(root, rel);
        const char *img = test_join(root, rel);
        char imgdir[1024];
        snprintf(imgdir, sizeof imgdir, "%s", img);
        for (int t = 0; t < 4; t++) {
            int j = TJ[t];
            if (tiny_png(k, j)) {
                snprintf(name, sizeof name, "%s_%d.png", WNID[k], j);
                pattern_png(test_join(imgdir, name), 10 * k + j, S, S);
            } else {
                snprintf(name, sizeof name, "%s_%d.JPEG", WNID[k], j);
                solid_jpeg(test_join(imgdir, name), 10 * k + j, tiny_gray(k, j), S, S);
            }
        }
        test_write_file(test_join(imgdir, "._junk.JPEG"), "junk", 4);   /* hidden: skipped */
        mkdir(test_join(imgdir, "folder.JPEG"), 0755);                   /* not a file: skipped */
        snprintf(rel, sizeof rel, "train/%s/%s_boxes.txt", WNID[k], WNID[k]);
        write_text(test_join(root, rel), "x\t0\t0\t10\t10\n");
    }
    test_mkdirs(root, "val/images");
    test_mkdirs(root, "val/images/folder.JPEG");   /* not a file: skipped */
    char ann[2048] = "";
    for (int t = 0; t < 5; t++) {
        int i = VORDER[t];
        snprintf(name, sizeof name, "val_%d.JPEG", i);
        char vdir[1024];
        snprintf(vdir, sizeof vdir, "%s/val/images", root);
        solid_jpeg(test_join(vdir, name), 100 + i, i == 4, S, S);
        char line[400];
        snprintf(line, sizeof line, "%s\t%s\t%d\t%d\t62\t63\n", name, WNID[VCLS[i]], i, 2 * i);
        strcat(ann, line);
    }
    write_text(test_join(root, "val/val_annotations.txt"), ann);
    test_mkdirs(root, "test/images");
    solid_jpeg(test_join(root, "test/images/test_0.JPEG"), 7, 0, 8, 8);   /* not read (and not 64x64) */
}

TEST(data_tiny_imagenet) {
    const char *root = test_data_dir("tiny_ok");
    tiny_write(root);
    char spec[600];
    snprintf(spec, sizeof spec, "tiny-imagenet:%s", root);

    rt_dataset d;
    REQUIREF(rt_dataset_load(spec, RT_SPLIT_TRAIN, NULL, &d, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    CHECK(!strcmp(d.name, "tiny-imagenet"));
    CHECK(d.n == 12 && d.h == S && d.w == S && d.c == 3 && d.nclasses == 3);
    check_norm(&d);
    int worst = 0;
    for (int L = 0; L < 3 && d.n == 12; L++)
        for (int t = 0; t < 4; t++) {
            int k = KOF[L], i = 4 * L + t, j = TJ_READ[t];
            CHECKF(d.labels[i] == L, "train image %d: label %d, want %d", i, d.labels[i], L);
            if (tiny_png(k, j)) {
                int bad = pattern_bad(&d, i, 10 * k + j);
                CHECKF(bad == 0, "train image %d (PNG): %d pixels differ", i, bad);
                continue;
            }
            int e = solid_err(&d, i, 10 * k + j, tiny_gray(k, j));
            CHECKF(e >= 0, "train image %d: gray JPEG not R=G=B", i);
            if (e > worst) worst = e;
        }
    CHECKF(worst <= 4, "train JPEG pixels off by up to %d", worst);
    rt_dataset_free(&d);

    REQUIREF(rt_dataset_load(spec, RT_SPLIT_TEST, NULL, &d, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    CHECK(d.n == 5 && d.h == S && d.w == S && d.c == 3 && d.nclasses == 3);
    check_norm(&d);
    worst = 0;
    for (int t = 0; t < 5 && d.n == 5; t++) {
        int i = VORDER[t];
        CHECKF(d.labels[t] == RANK[VCLS[i]], "val image %d (val_%d): label %d, want %d", t, i, d.labels[t], RANK[VCLS[i]]);
        int e = solid_err(&d, t, 100 + i, i == 4);
        CHECKF(e >= 0, "val image %d: gray JPEG not R=G=B", t);
        if (e > worst) worst = e;
    }
    CHECKF(worst <= 4, "val JPEG pixels off by up to %d", worst);
    rt_dataset_free(&d);

    CHECK_LOAD_FAILS(spec, RT_SPLIT_UNLABELED, "tiny-imagenet has no unlabeled split");
    CHECK_LOAD_FAILS("tiny-imagenet", RT_SPLIT_TRAIN, "tiny-imagenet: give the folder as --data tiny-imagenet:PATH");
    const char *names = rt_dataset_names();
    CHECK(strstr(names, "tiny-imagenet:PATH") && strstr(names, "slimagenet64:PATH"));
}

/* A fresh copy of the tiny-ImageNet layout in test_data_dir(name); spec gets its spec. */
static const char *tiny_fresh(const char *name, char *spec, size_t n) {
    const char *root = test_data_dir(name);
    tiny_write(root);
    snprintf(spec, n, "tiny-imagenet:%s", root);
    return root;
}

TEST(data_tiny_imagenet_errors) {
    char spec[600], rel[256];
    const char *root;

    /* wnids.txt: missing, empty, a bad id, a repeated id */
    root = tiny_fresh("tiny_nownids", spec, sizeof spec);
    unlink(test_join(root, "wnids.txt"));
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "tiny_nownids/wnids.txt: cannot open");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "tiny_nownids/wnids.txt: cannot open");
    write_text(test_join(root, "wnids.txt"), "\n\r\n");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "wnids.txt: no class ids");
    write_text(test_join(root, "wnids.txt"), "n03000003\nn01000001 n02000002\n");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "wnids.txt: line 2: bad class id 'n01000001 n02000002'");
    write_text(test_join(root, "wnids.txt"), "n03000003\n../etc\n");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "wnids.txt: line 2: bad class id");
    write_text(test_join(root, "wnids.txt"), "n03000003\nn01000001\nn02000002\nn01000001\n");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "wnids.txt: line 4: class id n01000001 repeats line 2");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "wnids.txt: line 4: class id n01000001 repeats line 2");

    /* train/: a class of wnids.txt without its folder, a folder not in
       wnids.txt, a class without images/, an empty class, a bad image */
    root = tiny_fresh("tiny_train", spec, sizeof spec);
    write_text(test_join(root, "wnids.txt"), "n03000003\nn01000001\nn02000002\nn04000004\n");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train/n04000004: no such folder (class n04000004, line 4 of");
    write_text(test_join(root, "wnids.txt"), "n03000003\nn01000001\n");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train/n02000002: class folder not listed in");
    write_text(test_join(root, "wnids.txt"), "n03000003\nn01000001\nn02000002\nn04000004\n");
    test_mkdirs(root, "train/n04000004");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train/n04000004/images: no such folder");
    test_mkdirs(root, "train/n04000004/images");
    write_text(test_join(root, "train/n04000004/images/notes.txt"), "not an image");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train/n04000004/images: no JPEG or PNG images in this class folder");
    test_write_file(test_join(root, "train/n04000004/images/a.gif"), "GIF89a", 6);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "n04000004/images/a.gif: unsupported image format");
    unlink(test_join(root, "train/n04000004/images/a.gif"));
    solid_jpeg(test_join(root, "train/n04000004/images/n04000004_0.JPEG"), 1, 0, S / 2, S);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN,
                     "n04000004/images/n04000004_0.JPEG: image is 32x64, tiny-imagenet images must be 64x64");
    pattern_png(test_join(root, "train/n04000004/images/n04000004_0.JPEG"), 1, S, S / 2);   /* a PNG named .JPEG */
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "n04000004_0.JPEG: image is 64x32, tiny-imagenet images must be 64x64");
    test_write_file(test_join(root, "train/n04000004/images/n04000004_0.JPEG"), "\xff\xd8\xff\xe0garbage", 11);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "n04000004/images/n04000004_0.JPEG: bad JPEG");
    pattern_png(test_join(root, "train/n04000004/images/n04000004_0.JPEG"), 1, S, S);
    /* now whole again, with a fourth class: loads */
    rt_dataset d;
    REQUIREF(rt_dataset_load(spec, RT_SPLIT_TRAIN, NULL, &d, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    CHECK(d.n == 13 && d.nclasses == 4 && d.labels[12] == 3 && pattern_bad(&d, 12, 1) == 0);
    rt_dataset_free(&d);
    snprintf(rel, sizeof rel, "%s/train", root);
    CHECK(rename(rel, test_join(root, "training")) == 0);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "tiny_train/train: no such folder");

    /* val/: the annotation file's damage, each naming its line */
    root = tiny_fresh("tiny_val", spec, sizeof spec);
    const char *ann = test_join(root, "val/val_annotations.txt");
    char annp[1024];
    snprintf(annp, sizeof annp, "%s", ann);
    write_text(annp, "val_0.JPEG\tn02000002\t0\t0\t62\t63\nval_1.JPEG\tn09999999\t0\t0\t62\t63\n");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "val_annotations.txt: line 2: class id n09999999 is not in");
    const char *bad_lines[] = {
        "val_2.JPEG\tn01000001\t0\t0\t62\n",            /* 5 fields */
        "val_2.JPEG\tn01000001\t0\t0\t62\t63\t1\n",     /* 7 fields */
        "val_2.JPEG n01000001 0 0 62 63\n",             /* spaces, not tabs */
        "val_2.JPEG\tn01000001\t0\tx\t62\t63\n",        /* not a number */
        "val_2.JPEG\tn01000001\t0\t-1\t62\t63\n",       /* negative */
        "\tn01000001\t0\t0\t62\t63\n",                  /* no file name */
        "../val_2.JPEG\tn01000001\t0\t0\t62\t63\n",     /* a path */
        "val_2.JPEG\t\t0\t0\t62\t63\n",                 /* no wnid */
    };
    for (size_t b = 0; b < sizeof bad_lines / sizeof bad_lines[0]; b++) {
        char text[512];
        snprintf(text, sizeof text, "val_0.JPEG\tn02000002\t0\t0\t62\t63\r\n\nval_1.JPEG\tn03000003\t0\t0\t62\t63\n%s",
                 bad_lines[b]);
        write_text(annp, text);
        CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "val_annotations.txt: line 4: malformed");
    }
    write_text(annp, "val_0.JPEG\tn02000002\t0\t0\t62\t63\nval_1.JPEG\tn03000003\t0\t0\t62\t63\n"
                     "val_0.JPEG\tn03000003\t0\t0\t62\t63\n");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "line 3: val_0.JPEG is listed again (first on line 1)");
    write_text(annp, "\n");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "val_annotations.txt: no images listed");
    /* annotations and images disagree */
    write_text(annp, "val_0.JPEG\tn02000002\t0\t0\t62\t63\nval_1.JPEG\tn03000003\t0\t0\t62\t63\n");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "val/images/val_2.JPEG: not listed in");
    write_text(annp, "val_0.JPEG\tn02000002\t0\t0\t62\t63\nval_1.JPEG\tn03000003\t0\t0\t62\t63\n"
                     "val_2.JPEG\tn01000001\t0\t0\t62\t63\nval_3.JPEG\tn01000001\t0\t0\t62\t63\n"
                     "val_4.JPEG\tn01000001\t0\t0\t62\t63\nval_5.JPEG\tn01000001\t0\t0\t62\t63\n");
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "val/images/val_5.JPEG: missing (listed on line 6 of");
    write_text(annp, "val_0.JPEG\tn02000002\t0\t0\t62\t63\nval_1.JPEG\tn03000003\t0\t0\t62\t63\n"
                     "val_2.JPEG\tn01000001\t0\t0\t62\t63\nval_3.JPEG\tn01000001\t0\t0\t62\t63\n"
                     "val_4.JPEG\tn01000001\t0\t0\t62\t63\n");
    REQUIREF(rt_dataset_load(spec, RT_SPLIT_TEST, NULL, &d, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    CHECK(d.n == 5 && d.labels[0] == 1 && d.labels[1] == 2 && d.labels[4] == 0);   /* sorted wnids */
    rt_dataset_free(&d);
    /* a val image of the wrong size, a truncated one, another format */
    solid_jpeg(test_join(root, "val/images/val_3.JPEG"), 3, 1, S, S + 1);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "val/images/val_3.JPEG: image is 64x65, tiny-imagenet images must be 64x64");
    solid_jpeg(test_join(root, "val/images/val_3.JPEG"), 3, 0, S, S);
    if (truncate(test_join(root, "val/images/val_3.JPEG"), test_file_size(test_join(root, "val/images/val_3.JPEG")) / 2))
        abort();
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "val/images/val_3.JPEG: bad JPEG");
    solid_jpeg(test_join(root, "val/images/val_3.JPEG"), 3, 0, S, S);
    test_write_file(test_join(root, "val/images/val_9.bmp"), "BM", 2);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "val/images/val_9.bmp: unsupported image format");
    unlink(test_join(root, "val/images/val_9.bmp"));
    /* missing annotation file, val/images, val/ */
    unlink(annp);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "val/val_annotations.txt: cannot open");
    write_text(annp, "val_0.JPEG\tn02000002\t0\t0\t62\t63\n");
    snprintf(rel, sizeof rel, "%s/val/images", root);
    CHECK(rename(rel, test_join(root, "val/imgs")) == 0);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "val/images: no such folder");
    snprintf(rel, sizeof rel, "%s/val", root);
    CHECK(rename(rel, test_join(root, "validation")) == 0);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "tiny_val/val: no such folder");
    /* the train split does not need val/ */
    REQUIREF(rt_dataset_load(spec, RT_SPLIT_TRAIN, NULL, &d, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    CHECK(d.n == 12);
    rt_dataset_free(&d);

    snprintf(spec, sizeof spec, "tiny-imagenet:%s/nope", test_tmpdir());
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "nope: no such folder");
}

/* ---- SlimageNet64 ------------------------------------------------------ */

/* Classes in bytewise order: "Zebra" < "apple" < "banana". */
static const char *const SCLS[3] = {"Zebra", "apple", "banana"};

/* SPLIT/CLASS/ with n images: even ones PNG (pattern id), odd ones JPEG
   (solid colour id), id = base + 10 * k + i; banana's image 1 is a gray
   JPEG in a sub-folder (ImageFolder reads class folders recursively). */
static void slim_write(const char *root, const char *split, int n, int base) {
    char rel[256], name[256];
    for (int k = 0; k < 3; k++) {
        snprintf(rel, sizeof rel, "%s/%s/deep", split, SCLS[k]);
        test_mkdirs(root, rel);
        for (int i = 0; i < n; i++) {
            int id = base + 10 * k + i;
            if (i % 2 == 0) {
                snprintf(name, sizeof name, "%s/%s/img%d.png", split, SCLS[k], i);
                pattern_png(test_join(root, name), id, S, S);
            } else {
                int gray = k == 2 && i == 1;
                snprintf(name, sizeof name, "%s/%s/%simg%d.jpg", split, SCLS[k], gray ? "deep/" : "", i);
                solid_jpeg(test_join(root, name), id, gray, S, S);
            }
        }
    }
}

/* Image t of class k of a split written with n images per class, in
   ImageFolder's order: files of the class folder, then of deep/ (banana's
   image 1). */
static int slim_img(int k, int t, int n) {
    if (k != 2 || n < 2) return t;
    if (t == n - 1) return 1;
    return t == 0 ? 0 : t + 1;
}

static void slim_check(const rt_dataset *d, int n, int base) {
    REQUIRE(d->n == 3 * n && d->h == S && d->w == S && d->c == 3 && d->nclasses == 3);
    check_norm(d);
    int worst = 0;
    for (int k = 0; k < 3; k++)
        for (int t = 0; t < n; t++) {
            int64_t j = (int64_t)k * n + t;
            int i = slim_img(k, t, n), id = base + 10 * k + i;
            CHECKF(d->labels[j] == k, "image %lld: label %d, want %d", (long long)j, d->labels[j], k);
            if (i % 2 == 0) {
                int bad = pattern_bad(d, j, id);
                CHECKF(bad == 0, "image %lld (PNG %s/img%d): %d pixels differ", (long long)j, SCLS[k], i, bad);
            } else {
                int e = solid_err(d, j, id, k == 2 && i == 1);
                CHECKF(e >= 0, "image %lld: gray JPEG not R=G=B", (long long)j);
                if (e > worst) worst = e;
            }
        }
    CHECKF(worst <= 4, "JPEG pixels off by up to %d", worst);
}

TEST(data_slimagenet64) {
    const char *root = test_data_dir("slim_ok");
    slim_write(root, "train", 4, 0);
    slim_write(root, "test", 2, 100);
    char spec[600];
    snprintf(spec, sizeof spec, "slimagenet64:%s", root);
    rt_dataset d;
    REQUIREF(rt_dataset_load(spec, RT_SPLIT_TRAIN, NULL, &d, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    CHECK(!strcmp(d.name, "slimagenet64"));
    slim_check(&d, 4, 0);
    rt_dataset_free(&d);
    REQUIREF(rt_dataset_load(spec, RT_SPLIT_TEST, NULL, &d, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    slim_check(&d, 2, 100);
    rt_dataset_free(&d);

    /* val/ instead of test/ */
    root = test_data_dir("slim_val");
    slim_write(root, "train", 2, 0);
    slim_write(root, "val", 3, 50);
    snprintf(spec, sizeof spec, "slimagenet64:%s", root);
    REQUIREF(rt_dataset_load(spec, RT_SPLIT_TEST, NULL, &d, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    slim_check(&d, 3, 50);
    rt_dataset_free(&d);

    CHECK_LOAD_FAILS(spec, RT_SPLIT_UNLABELED, "slimagenet64 has no unlabeled split");
    CHECK_LOAD_FAILS("slimagenet64", RT_SPLIT_TRAIN, "slimagenet64: give the folder as --data slimagenet64:PATH");
}

TEST(data_slimagenet64_errors) {
    char spec[600], p[700];

    /* a flat class folder is not SlimageNet64's layout (folder: accepts it) */
    const char *root = test_data_dir("slim_flat");
    slim_write(root, ".", 2, 0);
    snprintf(spec, sizeof spec, "slimagenet64:%s", root);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "slim_flat: no train/ folder (slimagenet64 wants PATH/train and");
    snprintf(spec, sizeof spec, "folder:%s", root);
    rt_dataset d;
    REQUIREF(rt_dataset_load(spec, RT_SPLIT_TRAIN, NULL, &d, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    CHECK(d.n == 6 && !d.has_norm);
    rt_dataset_free(&d);

    /* train/ but no test/ or val/ */
    root = test_data_dir("slim_notest");
    slim_write(root, "train", 2, 0);
    snprintf(spec, sizeof spec, "slimagenet64:%s", root);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "slim_notest: has train/ but no test/ or val/ folder");

    /* a test class that train does not have */
    slim_write(root, "test", 1, 0);
    snprintf(p, sizeof p, "%s/test/cherry", root);
    mkdir(p, 0755);
    pattern_png(test_join(p, "a.png"), 1, S, S);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "test: class folders differ from those of");

    /* images not 64x64 (even when they all share a size), an empty class */
    root = test_data_dir("slim_size");
    slim_write(root, "train", 2, 0);
    slim_write(root, "test", 1, 0);
    snprintf(spec, sizeof spec, "slimagenet64:%s", root);
    solid_jpeg(test_join(root, "train/apple/img1.jpg"), 1, 0, S / 2, S / 2);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train/apple/img1.jpg: image is 32x32, slimagenet64 images must be 64x64");
    pattern_png(test_join(root, "test/Zebra/img0.png"), 1, S + 2, S);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TEST, "test/Zebra/img0.png: image is 66x64, slimagenet64 images must be 64x64");
    snprintf(p, sizeof p, "%s/train/empty", root);
    mkdir(p, 0755);
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "train/empty: no PNG or JPEG images in this class folder");

    snprintf(spec, sizeof spec, "slimagenet64:%s/nope", test_tmpdir());
    CHECK_LOAD_FAILS(spec, RT_SPLIT_TRAIN, "nope: no such folder");
}
