/*
** fuzz_tiny.c: libFuzzer target of the tiny-ImageNet reader's text files
** (runtime/rt_data_tiny.c: wnids.txt and val/val_annotations.txt) through
** rt_dataset_load.
**
** Input: byte 0 = split (bit 0: 0 TRAIN, 1 TEST); then wnids.txt up to the
** first NUL byte, and val_annotations.txt after it. The harness makes the
** folders the text names when the names are plain (a line of wnids.txt
** that is "n" and 8 digits gets train/WNID/images/WNID_0.png; a first
** field "val_N.JPEG" of the annotations gets val/images/val_N.JPEG), each
** image a valid 64x64 PNG, so that inputs reach the decoding and the
** checks of agreement between the files and the folders.
*/
#include "fuzz_common.h"

#include <ctype.h>

#include "rt_data.h"

/* A 64x64 RGB PNG of one colour (made by PIL), valid whatever its name. */
static const uint8_t png64[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x40,
    0x00, 0x00, 0x00, 0x40, 0x08, 0x02, 0x00, 0x00, 0x00, 0x25, 0x0b, 0xe6, 0x89, 0x00, 0x00, 0x00, 0x51, 0x49, 0x44, 0x41,
    0x54, 0x78, 0xda, 0xed, 0xcf, 0x31, 0x0d, 0x00, 0x30, 0x08, 0x00, 0x30, 0x98, 0x10, 0x74, 0x22, 0x11, 0x59, 0x53, 0xc1,
    0x41, 0xd2, 0x3a, 0x68, 0x76, 0x4d, 0x5c, 0xf6, 0xe2, 0x38, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x81, 0x7d, 0x1f, 0x39, 0x46,
    0x01, 0xde, 0x49, 0xc7, 0xc4, 0x60, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

#define MAX_MADE 32   /* folders and images the harness makes per input */

static void mk(const char *dir, const char *rel) {
    char p[1400];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    mkdir(p, 0700);
}

/* Whether s[0..n) is "n" and 8 digits. */
static int plain_wnid(const char *s, size_t n) {
    if (n != 9 || s[0] != 'n') return 0;
    for (size_t i = 1; i < 9; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    return 1;
}

/* Whether s[0..n) is "val_" digits ".JPEG" (at most 6 digits). */
static int plain_val(const char *s, size_t n) {
    if (n < 10 || n > 15 || strncmp(s, "val_", 4) != 0 || strncmp(s + n - 5, ".JPEG", 5) != 0) return 0;
    for (size_t i = 4; i < n - 5; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    return 1;
}

static int fuzz_tiny_one(const uint8_t *data, size_t size, char *err, size_t errlen) {
    if (size < 1) return 0;
    rt_split split = data[0] & 1 ? RT_SPLIT_TEST : RT_SPLIT_TRAIN;
    data++;
    size--;
    const char *nul = memchr(data, 0, size);
    size_t nw = nul ? (size_t)(nul - (const char *)data) : size;
    const char *wn = (const char *)data, *ann = nul ? nul + 1 : "";
    size_t na = nul ? size - nw - 1 : 0;
    const char *dir = fuzz_dir("tiny");
    fuzz_rm_tree(dir, 4);   /* the previous input's tree (train/WNID/images/FILE) */
    if (mkdir(dir, 0700) != 0) abort();
    mk(dir, "train");
    mk(dir, "val");
    mk(dir, "val/images");
    fuzz_write(fuzz_path(dir, "wnids.txt"), wn, nw);
    fuzz_write(fuzz_path(dir, "val/val_annotations.txt"), ann, na);
    int made = 0;
    for (size_t i = 0; i < nw && made < MAX_MADE;) {
        size_t e = i;
        while (e < nw && wn[e] != '\n' && wn[e] != '\r') e++;
        if (plain_wnid(wn + i, e - i)) {
            char rel[64];
            snprintf(rel, sizeof rel, "train/%.9s", wn + i);
            mk(dir, rel);
            snprintf(rel, sizeof rel, "train/%.9s/images", wn + i);
            mk(dir, rel);
            snprintf(rel, sizeof rel, "train/%.9s/images/%.9s_0.png", wn + i, wn + i);
            fuzz_write(fuzz_path(dir, rel), png64, sizeof png64);
            made++;
        }
        i = e + 1;
    }
    for (size_t i = 0; i < na && made < MAX_MADE;) {
        size_t e = i;
        while (e < na && ann[e] != '\n') e++;
        size_t f = i;
        while (f < e && ann[f] != '\t') f++;
        if (plain_val(ann + i, f - i)) {
            char rel[64];
            snprintf(rel, sizeof rel, "val/images/%.*s", (int)(f - i), ann + i);
            fuzz_write(fuzz_path(dir, rel), png64, sizeof png64);
            made++;
        }
        i = e + 1;
    }
    char spec[512];
    snprintf(spec, sizeof spec, "tiny-imagenet:%s", dir);
    rt_dataset d;
    int rc = rt_dataset_load(spec, split, NULL, &d, err, errlen);
    fuzz_check_err(rc, err);
    if (rc == 0) {
        if (d.n <= 0 || d.h != 64 || d.w != 64 || d.c != 3 || !d.labels || d.nclasses <= 0) abort();
        for (int64_t i = 0; i < d.n; i++)
            if (d.labels[i] < 0 || d.labels[i] >= d.nclasses) abort();
    }
    rt_dataset_free(&d);
    return rc;
}

#ifndef RRC_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    fuzz_tiny_one(data, size, err, sizeof err);
    return 0;
}
#endif
