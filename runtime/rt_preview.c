/*
** rt_preview.c: augmentation preview grids as PNG (see rt_preview.h).
*/
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_file.h"
#include "rt_preview.h"

int rt_png_write(const char *path, const uint8_t *rgb, int w, int h, char *err, size_t errlen) {
    char tmp[4200];
    FILE *f = rt_tmp_path(tmp, sizeof tmp, path) ? fopen(tmp, "wb") : NULL;
    if (!f) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    if (!png || !info || !rows || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        fclose(f);
        remove(tmp);
        snprintf(err, errlen, "%s: PNG encoding failed", path);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(rgb + (size_t)y * (size_t)w * 3);
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Copies a cell (ch x cw RGB) into the grid at (gy, gx), magnified. */
static void put_cell(uint8_t *grid, int gw, const uint8_t *cell, int ch, int cw, int gy, int gx, int scale) {
    for (int y = 0; y < ch * scale; y++)
        for (int x = 0; x < cw * scale; x++)
            memcpy(grid + ((size_t)(gy + y) * (size_t)gw + (size_t)(gx + x)) * 3, cell + ((size_t)(y / scale) * (size_t)cw + (size_t)(x / scale)) * 3, 3);
}

int rt_augment_preview(const char *path, const rt_aug_pipeline *p, const rt_dataset *d, const int64_t *idx, int n, int K,
                       uint64_t seed, uint32_t epoch, int scale, char *err, size_t errlen) {
    /* the pipeline without normalisation: views come out as x/255 */
    rt_aug_op *ops = malloc((size_t)(p->nops ? p->nops : 1) * sizeof *ops);
    int nops = 0;
    for (int i = 0; i < p->nops; i++)
        if (p->ops[i].kind != RT_AUG_NORMALIZE) ops[nops++] = p->ops[i];
    rt_aug_pipeline q = {ops, nops, p->out_h, p->out_w, p->gray_input};
    int vh = p->out_h, vw = p->out_w, gap = 4;
    int cellh = (vh > d->h ? vh : d->h) * scale, cellw = (vw > d->w ? vw : d->w) * scale;
    int gw = (K + 1) * (cellw + gap) + gap, gh = n * (cellh + gap) + gap;
    uint8_t *grid = malloc((size_t)gw * (size_t)gh * 3), *cell = malloc((size_t)(vh * vw + d->h * d->w) * 3 + 16);
    float *view = malloc((size_t)(3 * vh * vw) * sizeof *view);
    int rc = -1;
    if (!grid || !cell || !view) { snprintf(err, errlen, "out of memory"); goto out; }
    memset(grid, 255, (size_t)gw * (size_t)gh * 3);
    for (int r = 0; r < n; r++) {
        const uint8_t *img = d->pixels + (size_t)idx[r] * (size_t)(d->h * d->w * d->c);
        for (int y = 0; y < d->h * d->w; y++)
            for (int c = 0; c < 3; c++) cell[y * 3 + c] = img[y * d->c + (d->c == 3 ? c : 0)];
        int gy = gap + r * (cellh + gap);
        put_cell(grid, gw, cell, d->h, d->w, gy, gap, scale);
        for (int k = 0; k < K; k++) {
            rt_augment_view(&q, img, d->h, d->w, d->c, 3, seed, epoch, (uint32_t)idx[r], (uint32_t)k, view);
            for (int y = 0; y < vh * vw; y++)
                for (int c = 0; c < 3; c++) {
                    long v = lrintf(view[(size_t)c * (size_t)(vh * vw) + (size_t)y] * 255.0f);
                    cell[y * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            put_cell(grid, gw, cell, vh, vw, gy, gap + (k + 1) * (cellw + gap), scale);
        }
    }
    rc = rt_png_write(path, grid, gw, gh, err, errlen);
out:
    free(grid);
    free(cell);
    free(view);
    free(ops);
    return rc;
}
