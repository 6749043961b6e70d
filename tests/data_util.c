/*
** data_util.c: see data_util.h.
*/
#include "data_util.h"

#include <jpeglib.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>


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
