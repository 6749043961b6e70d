/*
** fuzz_image.c: libFuzzer target of the PNG/JPEG decoding of the image-
** folder reader (rtd_decode_image in runtime/rt_data_image.c, the function
** rtd_load_folder calls for every file).
**
** Input: the image file. It is decoded with no expected size; when that
** succeeds it is decoded again expecting another size, which must give
** the size-mismatch result (-2) with nothing allocated.
*/
#include "fuzz_common.h"

#include "rt_data_internal.h"

static int fuzz_image_one(const uint8_t *data, size_t size, char *err, size_t errlen) {
    const char *path = fuzz_path(fuzz_dir("image"), "image");
    fuzz_write(path, data, size);
    uint8_t *rgb = NULL;
    int h = 0, w = 0;
    err[0] = 0;
    int rc = rtd_decode_image(path, 0, 0, &rgb, &h, &w, err, errlen);
    fuzz_check_err(rc, err);
    if (rc == 0) {
        if (!rgb || h < 1 || w < 1) abort();
        /* touch every byte (ASan checks the buffer is h*w*3) */
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)h * (size_t)w * 3; i++) sum += rgb[i];
        free(rgb);
        rgb = NULL;
        int h2, w2;
        int rc2 = rtd_decode_image(path, h, w + 1, &rgb, &h2, &w2, err, errlen);
        if (rc2 != -2 || rgb || h2 != h || w2 != w) abort();
        (void)sum;
    } else if (rgb) {
        abort();
    }
    return rc;
}

#ifndef RRC_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    fuzz_image_one(data, size, err, sizeof err);
    return 0;
}
#endif
