/*
** rt_data_image.c: decoding of one PNG (libpng) or JPEG (libjpeg-turbo)
** file into 8-bit RGB, for the image-folder reader. It aims at what
** torchvision's ImageFolder gets from PIL's Image.open(p).convert("RGB"):
** gray replicated to R=G=B, alpha (and a palette's transparency) dropped
** rather than composited, no gamma or colour-profile correction, no EXIF
** rotation, libjpeg's default (islow DCT, fancy upsampling) decoding.
**
** Known differences from PIL, all rare in image datasets: 16-bit PNG
** samples keep their high byte (PIL does the same for RGB, but clips 16-bit
** gray); CMYK/YCCK JPEGs are refused (libjpeg does not convert them to RGB);
** GIF/BMP/WebP/TIFF are not read at all.
**
** Both libraries report errors by longjmp. Each decoder keeps everything
** that changes after setjmp in a context owned by its caller (so no local
** of the function holding setjmp is live across the jump), and the caller
** frees the context whether the decode returned or jumped. A truncated
** JPEG is an error (libjpeg would only warn and pad with gray; PIL raises
** "image file is truncated"); library warnings are otherwise silenced.
*/
#include "rt_data_internal.h"

#include <errno.h>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static int size_ok(const char *path, int64_t h, int64_t w, char *err, size_t errlen) {
    if (h < 1 || w < 1 || h > RTD_IMAGE_MAX_SIDE || w > RTD_IMAGE_MAX_SIDE || h * w > RTD_IMAGE_MAX_PIXELS) {
        rtd_err(err, errlen, "%s: image size %lldx%lld is outside the supported range (sides 1..%d, at most %lld pixels)",
                path, (long long)w, (long long)h, RTD_IMAGE_MAX_SIDE, (long long)RTD_IMAGE_MAX_PIXELS);
        return 0;
    }
    return 1;
}

/* ---- PNG --------------------------------------------------------------- */

typedef struct png_ctx {
    png_structp png;
    png_infop info;
    FILE *f;
    const char *path;
    char *err;
    size_t errlen;
    int want_h, want_w;
    int h, w;
    int mismatch;          /* size differs from want_h x want_w */
    uint8_t *rows;         /* decoded image, h rows of rowbytes */
    png_bytep *rowp;
    uint8_t *rgb;          /* the result */
} png_ctx;

static void png_error_cb(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    rtd_err(c->err, c->errlen, "%s: bad PNG: %s", c->path, msg);
    png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static int png_decode_body(png_ctx *c) {
    if (setjmp(png_jmpbuf(c->png))) return -1;
    png_init_io(c->png, c->f);
    png_set_user_limits(c->png, RTD_IMAGE_MAX_SIDE, RTD_IMAGE_MAX_SIDE);
    png_read_info(c->png, c->info);
    c->w = (int)png_get_image_width(c->png, c->info);
    c->h = (int)png_get_image_height(c->png, c->info);
    if (!size_ok(c->path, c->h, c->w, c->err, c->errlen)) return -1;
    if (c->want_h && (c->h != c->want_h || c->w != c->want_w)) {
        c->mismatch = 1;
        return -1;
    }
    png_set_strip_16(c->png);
    png_set_packing(c->png);
    png_set_palette_to_rgb(c->png);
    png_set_expand_gray_1_2_4_to_8(c->png);
    png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);
    /* The transforms above may or may not turn tRNS into an alpha channel
       depending on the colour type; whatever comes out (G, GA, RGB, RGBA
       at 8 bits) is mapped to RGB below, so it does not matter. */
    int ch = png_get_channels(c->png, c->info);
    size_t rowbytes = png_get_rowbytes(c->png, c->info);
    if (ch < 1 || ch > 4 || png_get_bit_depth(c->png, c->info) != 8 || rowbytes != (size_t)c->w * (size_t)ch) {
        rtd_err(c->err, c->errlen, "%s: bad PNG: unsupported pixel layout (%d channels)", c->path, ch);
        return -1;
    }
    size_t hw = (size_t)c->h * (size_t)c->w;
    c->rows = malloc((size_t)c->h * rowbytes);
    c->rowp = malloc((size_t)c->h * sizeof *c->rowp);
    c->rgb = malloc(hw * 3);
    if (!c->rows || !c->rowp || !c->rgb) {
        rtd_err(c->err, c->errlen, "%s: out of memory", c->path);
        return -1;
    }
    for (int y = 0; y < c->h; y++) c->rowp[y] = c->rows + (size_t)y * rowbytes;
    png_read_image(c->png, c->rowp);
    /* The chunks after the image data are not read (PIL does not insist on
       them either): a file whose pixels are complete is accepted. */
    for (size_t p = 0; p < hw; p++) {
        const uint8_t *s = c->rows + p * (size_t)ch;
        uint8_t *d = c->rgb + 3 * p;
        if (ch <= 2) {
            d[0] = d[1] = d[2] = s[0];
        } else {
            d[0] = s[0];
            d[1] = s[1];
            d[2] = s[2];
        }
    }
    return 0;
}

static int decode_png(FILE *f, const char *path, int want_h, int want_w, uint8_t **rgb, int *h, int *w,
                      char *err, size_t errlen) {
    png_ctx c;
    memset(&c, 0, sizeof c);
    c.f = f;
    c.path = path;
    c.err = err;
    c.errlen = errlen;
    c.want_h = want_h;
    c.want_w = want_w;
    c.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, png_error_cb, png_warning_cb);
    if (c.png) c.info = png_create_info_struct(c.png);
    if (!c.png || !c.info) {
        if (c.png) png_destroy_read_struct(&c.png, NULL, NULL);
        rtd_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = png_decode_body(&c);
    png_destroy_read_struct(&c.png, &c.info, NULL);
    free(c.rows);
    free(c.rowp);
    *h = c.h;
    *w = c.w;
    if (rc) {
        free(c.rgb);
        return c.mismatch ? -2 : -1;
    }
    *rgb = c.rgb;
    return 0;
}

/* ---- JPEG -------------------------------------------------------------- */

typedef struct jpg_ctx {
    struct jpeg_decompress_struct ci;
    struct jpeg_error_mgr jerr;   /* first member of the error manager the library sees */
    jmp_buf jb;
    const char *path;
    char *err;
    size_t errlen;
    int want_h, want_w;
    int h, w;
    int mismatch;
    uint8_t *rgb;
} jpg_ctx;

/* The error manager is embedded in the context, so the context is found
   from it (jerr is not the first member, hence the offset). */
static jpg_ctx *jpg_of(j_common_ptr ci) {
    return (jpg_ctx *)(void *)((char *)ci->err - offsetof(jpg_ctx, jerr));
}

static void jpg_error_exit(j_common_ptr ci) {
    jpg_ctx *c = jpg_of(ci);
    char msg[JMSG_LENGTH_MAX];
    ci->err->format_message(ci, msg);
    rtd_err(c->err, c->errlen, "%s: bad JPEG: %s", c->path, msg);
    longjmp(c->jb, 1);
}

static void jpg_emit_message(j_common_ptr ci, int level) {
    /* level -1 is a warning; "premature end of data" means the file is
       truncated, which PIL refuses too. Trace messages (level >= 0) and
       other warnings are dropped. */
    if (level < 0 && ci->err->msg_code == JWRN_JPEG_EOF) jpg_error_exit(ci);
}

static void jpg_output_message(j_common_ptr ci) { (void)ci; }

static int jpg_decode_body(jpg_ctx *c, FILE *f) {
    if (setjmp(c->jb)) return -1;
    jpeg_stdio_src(&c->ci, f);
    jpeg_read_header(&c->ci, TRUE);
    c->w = (int)c->ci.image_width;
    c->h = (int)c->ci.image_height;
    if (!size_ok(c->path, c->h, c->w, c->err, c->errlen)) return -1;
    if (c->want_h && (c->h != c->want_h || c->w != c->want_w)) {
        c->mismatch = 1;
        return -1;
    }
    /* gray is expanded to RGB by libjpeg itself */
    c->ci.out_color_space = JCS_RGB;
    jpeg_start_decompress(&c->ci);
    if (c->ci.output_components != 3 || (int)c->ci.output_width != c->w || (int)c->ci.output_height != c->h) {
        rtd_err(c->err, c->errlen, "%s: bad JPEG: unexpected output layout", c->path);
        return -1;
    }
    c->rgb = malloc((size_t)c->h * (size_t)c->w * 3);
    if (!c->rgb) {
        rtd_err(c->err, c->errlen, "%s: out of memory", c->path);
        return -1;
    }
    while (c->ci.output_scanline < c->ci.output_height) {
        JSAMPROW row = c->rgb + (size_t)c->ci.output_scanline * (size_t)c->w * 3;
        jpeg_read_scanlines(&c->ci, &row, 1);
    }
    /* jpeg_finish_decompress is skipped on purpose: it would only read
       markers after the last scan; the pixels are all there. */
    return 0;
}

static int decode_jpeg(FILE *f, const char *path, int want_h, int want_w, uint8_t **rgb, int *h, int *w,
                       char *err, size_t errlen) {
    jpg_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        rtd_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    c->path = path;
    c->err = err;
    c->errlen = errlen;
    c->want_h = want_h;
    c->want_w = want_w;
    c->ci.err = jpeg_std_error(&c->jerr);
    c->jerr.error_exit = jpg_error_exit;
    c->jerr.emit_message = jpg_emit_message;
    c->jerr.output_message = jpg_output_message;
    volatile int rc = -1;
    if (!setjmp(c->jb)) {   /* jpeg_create_decompress reports running out of memory by error_exit */
        jpeg_create_decompress(&c->ci);
        rc = jpg_decode_body(c, f);
    }
    jpeg_destroy_decompress(&c->ci);
    *h = c->h;
    *w = c->w;
    int mismatch = c->mismatch;
    if (rc == 0)
        *rgb = c->rgb;
    else
        free(c->rgb);
    free(c);
    return rc == 0 ? 0 : mismatch ? -2 : -1;
}

/* ---- dispatch ---------------------------------------------------------- */

int rtd_decode_image(const char *path, int want_h, int want_w, uint8_t **rgb, int *h, int *w, char *err,
                     size_t errlen) {
    *rgb = NULL;
    *h = *w = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rtd_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    unsigned char sig[8];
    size_t k = fread(sig, 1, sizeof sig, f);
    rewind(f);
    int rc;
    if (k == 8 && png_sig_cmp(sig, 0, 8) == 0)
        rc = decode_png(f, path, want_h, want_w, rgb, h, w, err, errlen);
    else if (k >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF)
        rc = decode_jpeg(f, path, want_h, want_w, rgb, h, w, err, errlen);
    else {
        rtd_err(err, errlen, "%s: neither a PNG nor a JPEG file", path);
        rc = -1;
    }
    fclose(f);
    return rc;
}
