/*
** data_util.c: see data_util.h.
*/
#include "data_util.h"
#include "test_util.h"

#include <jpeglib.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <zlib.h>


const char *test_data_dir(const char *name) {
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", test_tmpdir(), name);
    mkdir(p, 0755);
    return p;
}

const char *test_join(const char *dir, const char *name) {
    static char buf[8][2048];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

void test_mkdirs(const char *root, const char *rel) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    for (char *q = p + strlen(root) + 1; *q; q++)
        if (*q == '/') {
            *q = 0;
            mkdir(p, 0755);
            *q = '/';
        }
    mkdir(p, 0755);
}

void test_png_write(const char *path, int w, int h, uint32_t format, const uint8_t *pix) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = format;
    if (!png_image_write_to_file(&im, path, 0, pix, 0, NULL)) {
        fprintf(stderr, "%s: %s\n", path, im.message);
        abort();
    }
}

void test_jpeg_write(const char *path, int w, int h, int comps, const uint8_t *pix) {
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 100, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(pix + (size_t)ci.next_scanline * (size_t)w * (size_t)comps);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
}

void test_method_pipeline(rt_aug_op ops[5], int size, const double mean[3], const double std[3]) {
    memset(ops, 0, 5 * sizeof *ops);
    ops[0].kind = RT_AUG_RANDOM_RESIZED_CROP;
    ops[0].size = size;
    ops[0].scale[0] = 0.08, ops[0].scale[1] = 1.0;
    ops[0].ratio[0] = 3.0 / 4.0, ops[0].ratio[1] = 4.0 / 3.0;
    ops[1].kind = RT_AUG_HFLIP;
    ops[1].p = 0.5;
    ops[2].kind = RT_AUG_COLOR_JITTER;
    ops[2].p = 0.8;
    ops[2].brightness = ops[2].contrast = ops[2].saturation = 0.8;
    ops[2].hue = 0.2;
    ops[3].kind = RT_AUG_GRAYSCALE;
    ops[3].p = 0.2;
    ops[4].kind = RT_AUG_NORMALIZE;
    memcpy(ops[4].mean, mean, 3 * sizeof *mean);
    memcpy(ops[4].std, std, 3 * sizeof *std);
}

/* ---- IDX (MNIST, Fashion-MNIST) ---- */

/* test_write_file (util.h), gzip-compressed. */
bool test_write_gz(const char *path, const void *data, size_t n) {
    gzFile f = gzopen(path, "wb");
    bool ok = f && (n == 0 || gzwrite(f, data, (unsigned)n) == (int)n);
    if (f && gzclose(f) != Z_OK) ok = false;
    if (!ok) test_fail(__FILE__, __LINE__, "cannot write %s", path);
    return ok;
}

uint8_t test_idx_pix(int i, int y, int x) { return (uint8_t)(1 + ((i * 37 + y * 5 + x * 11) % 250)); }

/* An IDX file: magic, dims (big-endian), data. Returns malloc'd bytes. */
uint8_t *test_idx_make(uint32_t magic, int ndim, const uint32_t *dims, const uint8_t *data, size_t ndata,
                         size_t *len) {
    size_t hl = 4 + 4 * (size_t)ndim;
    uint8_t *b = malloc(hl + ndata + 1);
    uint32_t words[4] = {magic, dims[0], ndim > 1 ? dims[1] : 0, ndim > 2 ? dims[2] : 0};
    for (int w = 0; w <= ndim; w++) {
        b[4 * w] = (uint8_t)(words[w] >> 24);
        b[4 * w + 1] = (uint8_t)(words[w] >> 16);
        b[4 * w + 2] = (uint8_t)(words[w] >> 8);
        b[4 * w + 3] = (uint8_t)words[w];
    }
    if (ndata) memcpy(b + hl, data, ndata);
    *len = hl + ndata;
    return b;
}

/* Writes an MNIST-like pair prefix-images/labels into dir. */
void test_idx_write_pair(const char *dir, const char *pre, int n, int gz, uint8_t label_bias) {
    uint8_t *img = malloc((size_t)n * 784), *lab = malloc((size_t)n + 1);
    for (int i = 0; i < n; i++) {
        lab[i] = (uint8_t)((i * 3 + label_bias) % 10);
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) img[(size_t)i * 784 + (size_t)y * 28 + (size_t)x] = test_idx_pix(i, y, x);
    }
    char name[128];
    size_t len;
    uint32_t di[3] = {(uint32_t)n, 28, 28}, dl[1] = {(uint32_t)n};
    uint8_t *b = test_idx_make(0x803, 3, di, img, (size_t)n * 784, &len);
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", pre, gz ? ".gz" : "");
    (gz ? test_write_gz : test_write_file)(test_join(dir, name), b, len);
    free(b);
    b = test_idx_make(0x801, 1, dl, lab, (size_t)n, &len);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", pre, gz ? ".gz" : "");
    (gz ? test_write_gz : test_write_file)(test_join(dir, name), b, len);
    free(b);
    free(img);
    free(lab);
}

