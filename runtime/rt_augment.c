/*
** rt_augment.c: the augmentations of METHOD.md ("Augmentations") on uint8
** HWC images, reproducing what torchvision 0.14 does on PIL images with
** Pillow 9.4's own arithmetic (see rt_augment.h).
**
** Fidelity to PIL. Every pixel operation below is a transcription of the
** Pillow C code the reference pipeline runs, with the same types:
**   - resize: libImaging/Resample.c (precompute_coeffs, the 8bpc
**     horizontal then vertical passes, PRECISION_BITS = 22 fixed point,
**     clip8), as reached by Image.crop(box).resize(size, BILINEAR);
**   - brightness/contrast/saturation: ImageEnhance = Image.blend, i.e.
**     libImaging/Blend.c in single-precision float with truncation and
**     clipping;
**   - hue: libImaging/Convert.c rgb2hsv_row / hsv2rgb, whose float locals
**     meet double literals (2.0, 6.0, 255.0): most of that arithmetic is
**     double, rounded to float only at the assignments, and the one
**     float*float product (fs * f) stays float. The casts below keep
**     exactly that;
**   - L: (19595 R + 38470 G + 7471 B + 0x8000) >> 16 (Convert.c L24).
** Float expressions must not be contracted into fused multiply-adds, or a
** value at a rounding boundary moves (measured: -std=gnu11 -march=native
** without the pragma below puts colour jitter up to 8 levels off). ISO C
** mode (-std=c11) already disables contraction; the pragma keeps it off in
** GNU mode too (only clang's explicit -ffp-contract=fast overrides it).
** Pillow's own x86-64 build has no FMA; a Pillow built with FMA
** contraction (e.g. GCC on aarch64) may itself differ from these goldens.
**
** Randomness. A view's parameters come from the counter-based generator
** (rt_rng.h), so they are a pure function of (seed, epoch, image, view)
** and of the pipeline, never of the thread that makes the view. For op k
** of the pipeline (0-based) the stream is
**     rt_stream_init(&s, seed, RT_DOMAIN_AUGMENT, epoch, image);
**     s.ctr[3] = view;                 high word of the block counter
**     s.ctr[2] = (uint32_t)k << 16;    op k starts at block k * 65536
** so every op of every view has its own run of counters (an op uses a few
** blocks, far from the 65536 = 2^18 words of its run) and an op's draws
** do not shift when
** an earlier op takes a different number of tries. Draw order within an
** op (u = rt_stream_uniform, below(n) = rt_stream_below):
**   RANDOM_RESIZED_CROP  up to 10 tries of { u -> area fraction
**                        U(scale), u -> log aspect ratio U(log ratio) };
**                        on the first accepted box: below(H-h+1) -> top,
**                        below(W-w+1) -> left. No draws for the fallback.
**   HFLIP                u -> applies if u < p
**   COLOR_JITTER         u -> applies if u < p; the order: Fisher-Yates on
**                        (0,1,2,3), for k = 3,2,1: j = below(k+1), swap
**                        positions k and j; then u -> brightness,
**                        u -> contrast, u -> saturation, u -> hue. All are
**                        drawn even when the op does not apply or a range
**                        is off, so the count does not depend on them.
**   GRAYSCALE            u -> applies if u < p
**   RANDOM_CROP          below(Hp-size+1) -> top, below(Wp-size+1) -> left
**                        (Hp, Wp: padded size)
**   NORMALIZE            nothing
** torchvision draws the same quantities in the same order from torch's
** generator; only the source of the uniforms differs.
**
** Memory. A view needs a few buffers (ping-pong images, the resize's
** intermediate and coefficients); they live in a per-thread workspace that
** grows on demand and is reused across the views of a batch. When an
** allocation fails, rt_augment_view / rt_augment_batch (which return
** nothing) print one line to stderr and abort; the explicit-parameter
** functions return -1 instead.
*/
#include "rt_augment.h"
#include "rt_pool.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* No fused multiply-adds in this file (see the top): ISO C mode already
   says so, this keeps it under -std=gnu11 -march=native too. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* ---- workspace ------------------------------------------------------------ */

/* A resize's coefficients along one axis (coeffs): they depend only on the
   input and output sizes, and a batch's crops repeat a few dozen sizes, so
   a workspace keeps them by (in, out), direct-mapped. */
#define COEF_SLOTS 64
typedef struct coef_set {
    int in, out, ksize;          /* in = 0: empty */
    int *bounds;                 /* [out][2] */
    int32_t *ik;                 /* [out][ksize] */
} coef_set;

typedef struct aug_ws {
    void *img[2], *tmp, *dk;
    size_t img_cap[2], tmp_cap, dk_cap;   /* bytes */
    coef_set coef[COEF_SLOTS];
    /* to_float's value tables, made for the views' (mean, std, c_out) once */
    float tf[3][256];
    const double *tf_mean, *tf_std;
    int tf_c;                                                 /* c_out; 0: none made */
} aug_ws;

/* Makes *p at least `need` bytes; keeps the old block if realloc fails. */
static int grow(void **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    void *q = realloc(*p, need);
    if (!q) return -1;
    *p = q;
    *cap = need;
    return 0;
}

static void ws_free(aug_ws *ws) {
    free(ws->img[0]);
    free(ws->img[1]);
    free(ws->tmp);
    free(ws->dk);
    for (int i = 0; i < COEF_SLOTS; i++) {
        free(ws->coef[i].bounds);
        free(ws->coef[i].ik);
    }
    memset(ws, 0, sizeof *ws);
}

static void die_oom(void) {
    fputs("rt_augment: out of memory\n", stderr);
    abort();
}

/* ---- PIL's resampling (libImaging/Resample.c, BILINEAR) ------------------- */

#define PRECISION_BITS (32 - 8 - 2)

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

/* precompute_coeffs' scale for an input span of in_size pixels (the box
   is (0, in_size) in PIL's float box: the crop came first). */
static double coeff_scale(int in_size, int out_size) {
    float in0 = 0.0f, in1 = (float)in_size;
    return (double)(in1 - in0) / out_size;
}

static int coeff_ksize(int in_size, int out_size) {
    double filterscale = coeff_scale(in_size, out_size);
    if (filterscale < 1.0) filterscale = 1.0;
    double support = 1.0 * filterscale;           /* BILINEAR support = 1 */
    return (int)ceil(support) * 2 + 1;
}

/* precompute_coeffs + normalize_coeffs_8bpc: for every output pixel xx
   its first input pixel bounds[2xx], the number of inputs bounds[2xx+1],
   and ksize fixed-point weights ik[xx*ksize ...]. dk is double scratch. */
static void coeffs(int in_size, int out_size, int ksize, int *bounds, double *dk, int32_t *ik) {
    double scale = coeff_scale(in_size, out_size), filterscale = scale;
    if (filterscale < 1.0) filterscale = 1.0;
    double support = 1.0 * filterscale;
    for (int xx = 0; xx < out_size; xx++) {
        double center = 0.0 + (xx + 0.5) * scale;   /* in0 + ..., in0 = 0 */
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);    /* PIL: truncation */
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = &dk[(size_t)xx * (size_t)ksize];
        int x;
        for (x = 0; x < xmax; x++) {
            double wt = bilinear_filter((x + xmin - center + 0.5) * ss);
            k[x] = wt;
            ww += wt;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        bounds[xx * 2 + 0] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * (size_t)ksize; i++) {
        if (dk[i] < 0) ik[i] = (int32_t)(-0.5 + dk[i] * (1 << PRECISION_BITS));
        else ik[i] = (int32_t)(0.5 + dk[i] * (1 << PRECISION_BITS));
    }
}

/* clip8: PIL looks (ss >> 22) up in a table clamping to 0..255. The
   bilinear weights are non-negative, so ss >= 0 and the shift is exact. */
static uint8_t clip8(int64_t ss) {
    int64_t v = ss >> PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* ImagingResampleHorizontal_8bpc on `rows` rows of `in` (row stride
   in_stride bytes, pixel 0 of each row at in), ow outputs per row; 32-bit
   sums as PIL's (see vpass), the channels of a pixel together. */
static void hpass(const uint8_t *in, size_t in_stride, int rows, int c, int ow, int ksize, const int *bounds,
                  const int32_t *ik, uint8_t *out) {
    for (int yy = 0; yy < rows; yy++) {
        const uint8_t *row = in + (size_t)yy * in_stride;
        uint8_t *o = out + (size_t)yy * (size_t)ow * (size_t)c;
        for (int xx = 0; xx < ow; xx++) {
            int xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
            const int32_t *k = &ik[(size_t)xx * (size_t)ksize];
            const uint8_t *p = row + (size_t)xmin * (size_t)c;
            uint8_t *q = o + (size_t)xx * (size_t)c;
            if (c == 3) {
                int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                for (int x = 0; x < xmax; x++) {
                    s0 += (int32_t)p[3 * x] * k[x];
                    s1 += (int32_t)p[3 * x + 1] * k[x];
                    s2 += (int32_t)p[3 * x + 2] * k[x];
                }
                q[0] = clip8(s0);
                q[1] = clip8(s1);
                q[2] = clip8(s2);
                continue;
            }
            for (int ch = 0; ch < c; ch++) {
                int32_t ss = 1 << (PRECISION_BITS - 1);
                for (int x = 0; x < xmax; x++) ss += (int32_t)p[(size_t)x * (size_t)c + (size_t)ch] * k[x];
                q[ch] = clip8(ss);
            }
        }
    }
}

/* ImagingResampleVertical_8bpc: oh output rows of `width` pixels; the
   input rows named by bounds are shifted down by yshift (PIL shifts them
   when the input is the horizontal pass's partial image). PIL's 32-bit
   accumulators suffice: the weights are non-negative and sum to
   2^PRECISION_BITS, so a sum stays below 256 << 22. The sums run over a
   chunk of the row at a time, input row by input row, so the inner loop is
   contiguous (and vectorises). */
static void vpass(const uint8_t *in, size_t in_stride, int width, int c, int oh, int ksize, const int *bounds,
                  int yshift, const int32_t *ik, uint8_t *out) {
    enum { CHUNK = 256 };
    int32_t acc[CHUNK];
    size_t rowlen = (size_t)width * (size_t)c;
    for (int yy = 0; yy < oh; yy++) {
        int ymin = bounds[yy * 2] - yshift, ymax = bounds[yy * 2 + 1];
        const int32_t *k = &ik[(size_t)yy * (size_t)ksize];
        uint8_t *o = out + (size_t)yy * rowlen;
        for (size_t x0 = 0; x0 < rowlen; x0 += CHUNK) {
            size_t n = rowlen - x0 < CHUNK ? rowlen - x0 : CHUNK;
            for (size_t i = 0; i < n; i++) acc[i] = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) {
                const uint8_t *r = in + (size_t)(y + ymin) * in_stride + x0;
                int32_t ky = k[y];
                for (size_t i = 0; i < n; i++) acc[i] += (int32_t)r[i] * ky;
            }
            for (size_t i = 0; i < n; i++) o[x0 + i] = clip8(acc[i]);
        }
    }
}

/* The coefficients of a resize from in to out pixels along an axis: the
   workspace's, made by coeffs the first time. NULL when out of memory. */
static const coef_set *coef_of(aug_ws *ws, int in, int out) {
    coef_set *s = &ws->coef[((unsigned)in * 31u + (unsigned)out) % COEF_SLOTS];
    if (s->in == in && s->out == out) return s;
    int ksize = coeff_ksize(in, out);
    size_t n = (size_t)out * (size_t)ksize;
    int *b = realloc(s->bounds, 2 * (size_t)out * sizeof *b);
    if (b) s->bounds = b;
    int32_t *k = b ? realloc(s->ik, n * sizeof *k) : NULL;
    if (k) s->ik = k;
    s->in = 0;   /* empty until made */
    if (!b || !k || grow(&ws->dk, &ws->dk_cap, n * sizeof(double))) return NULL;
    coeffs(in, out, ksize, s->bounds, ws->dk, s->ik);
    s->in = in, s->out = out, s->ksize = ksize;
    return s;
}

/* ImagingResampleInner on the crop (top, left, ch, cw) of src. */
static int resized_crop_ws(aug_ws *ws, const uint8_t *src, int w, int c, int top, int left, int ch, int cw,
                           int oh, int ow, uint8_t *dst) {
    size_t stride = (size_t)w * (size_t)c;
    const uint8_t *base = src + (size_t)top * stride + (size_t)left * (size_t)c;
    int need_h = ow != cw, need_v = oh != ch;
    if (!need_h && !need_v) {                    /* PIL: ImagingCopy */
        for (int y = 0; y < oh; y++)
            memcpy(dst + (size_t)y * (size_t)ow * (size_t)c, base + (size_t)y * stride, (size_t)ow * (size_t)c);
        return 0;
    }
    const coef_set *v = coef_of(ws, ch, oh), *hz = need_h ? coef_of(ws, cw, ow) : NULL;
    if (!v || (need_h && !hz)) return -1;
    /* first and one past the last input row the vertical pass reads */
    int yfirst = v->bounds[0], ylast = v->bounds[oh * 2 - 2] + v->bounds[oh * 2 - 1];
    if (!need_h) {
        vpass(base, stride, ow, c, oh, v->ksize, v->bounds, 0, v->ik, dst);
        return 0;
    }
    int rows = ylast - yfirst;
    if (!need_v) {
        /* identity vertical coefficients read every row: rows == ch == oh */
        hpass(base, stride, oh, c, ow, hz->ksize, hz->bounds, hz->ik, dst);
        return 0;
    }
    if (grow(&ws->tmp, &ws->tmp_cap, (size_t)rows * (size_t)ow * (size_t)c)) return -1;
    uint8_t *tmp = ws->tmp;
    hpass(base + (size_t)yfirst * stride, stride, rows, c, ow, hz->ksize, hz->bounds, hz->ik, tmp);
    vpass(tmp, (size_t)ow * (size_t)c, ow, c, oh, v->ksize, v->bounds, yfirst, v->ik, dst);
    return 0;
}

int rt_aug_resized_crop(const uint8_t *src, int h, int w, int c, int top, int left, int ch, int cw, int oh,
                        int ow, uint8_t *dst) {
    (void)h;
    aug_ws ws;
    memset(&ws, 0, sizeof ws);
    int rc = resized_crop_ws(&ws, src, w, c, top, left, ch, cw, oh, ow, dst);
    ws_free(&ws);
    return rc;
}

void rt_aug_pad_crop(const uint8_t *src, int h, int w, int c, int pad, int top, int left, int oh, int ow,
                     uint8_t *dst) {
    for (int y = 0; y < oh; y++) {
        int sy = top + y - pad;
        for (int x = 0; x < ow; x++) {
            int sx = left + x - pad;
            uint8_t *o = dst + ((size_t)y * (size_t)ow + (size_t)x) * (size_t)c;
            if (sy < 0 || sy >= h || sx < 0 || sx >= w) memset(o, 0, (size_t)c);
            else memcpy(o, src + ((size_t)sy * (size_t)w + (size_t)sx) * (size_t)c, (size_t)c);
        }
    }
}

/* ---- pixel operations ------------------------------------------------------ */

uint8_t rt_aug_luma(uint8_t r, uint8_t g, uint8_t b) {
    return (uint8_t)(((uint32_t)r * 19595u + (uint32_t)g * 38470u + (uint32_t)b * 7471u + 0x8000u) >> 16);
}

/* libImaging/Blend.c, one value: im1 + alpha * (im2 - im1) in float, then
   truncated (alpha in [0, 1]) or clipped (extrapolation). Both of PIL's
   branches and its alpha = 0 / 1 shortcuts give this same value. */
static uint8_t blend8(int in1, int in2, float alpha) {
    float t = (float)in1 + alpha * (float)(in2 - in1);
    if (t <= 0.0f) return 0;
    if (t >= 255.0f) return 255;
    return (uint8_t)t;
}

void rt_aug_hflip(uint8_t *img, int h, int w, int c) {
    for (int y = 0; y < h; y++) {
        uint8_t *row = img + (size_t)y * (size_t)w * (size_t)c;
        for (int a = 0, b = w - 1; a < b; a++, b--)
            for (int ch = 0; ch < c; ch++) {
                uint8_t t = row[(size_t)a * (size_t)c + (size_t)ch];
                row[(size_t)a * (size_t)c + (size_t)ch] = row[(size_t)b * (size_t)c + (size_t)ch];
                row[(size_t)b * (size_t)c + (size_t)ch] = t;
            }
    }
}

/* ImageEnhance.Brightness: blend(black, img, factor). */
/* A blend with a constant first image depends on the pixel value alone:
   its 256 results, computed by blend8 itself, replace it per pixel. */
static void blend_table(uint8_t t[256], int in1, float alpha) {
    for (int v = 0; v < 256; v++) t[v] = blend8(in1, v, alpha);
}

void rt_aug_brightness(uint8_t *img, int h, int w, int c, double factor) {
    uint8_t t[256];
    blend_table(t, 0, (float)factor);            /* PIL passes alpha as float */
    size_t n = (size_t)h * (size_t)w * (size_t)c;
    for (size_t i = 0; i < n; i++) img[i] = t[img[i]];
}

/* ImageEnhance.Contrast: blend(grey, img, factor), grey = int(mean of the
   L image + 0.5) (ImageStat's mean: the exact sum over the count). */
void rt_aug_contrast(uint8_t *img, int h, int w, int c, double factor) {
    size_t np = (size_t)h * (size_t)w;
    if (np == 0) return;
    uint64_t sum = 0;
    if (c == 1)   /* its own loop: it vectorises */
        for (size_t i = 0; i < np; i++) sum += img[i];
    else
        for (size_t i = 0; i < np; i++) {
            const uint8_t *px = img + i * (size_t)c;
            sum += c == 3 ? rt_aug_luma(px[0], px[1], px[2]) : px[0];
        }
    int grey = (int)((double)sum / (double)np + 0.5);
    uint8_t t[256];
    blend_table(t, grey, (float)factor);
    for (size_t i = 0; i < np * (size_t)c; i++) img[i] = t[img[i]];
}

/* ImageEnhance.Color: blend(img.convert("L").convert(mode), img, factor).
   On an L image the degenerate is the image itself: the identity. */
void rt_aug_saturation(uint8_t *img, int h, int w, int c, double factor) {
    if (c != 3) return;
    float alpha = (float)factor;
    size_t np = (size_t)h * (size_t)w;
    for (size_t i = 0; i < np; i++) {
        uint8_t *px = img + 3 * i;
        int l = rt_aug_luma(px[0], px[1], px[2]);
        px[0] = blend8(l, px[0], alpha);
        px[1] = blend8(l, px[1], alpha);
        px[2] = blend8(l, px[2], alpha);
    }
}

#define CLIP8(v) ((v) <= 0 ? 0 : (v) < 256 ? (v) : 255)

/* Every quotient the HSV conversions divide: quot[a][b] = (float)a /
   (float)b for bytes a, b (b > 0), and per byte h of hsv2rgb its sector
   (float)h * 6.0 / 255.0, floored and remainder, and s / 255.0: the same
   IEEE operations, looked up instead of divided per pixel. */
static float hsv_quot[256][256];
static int hsv_sector[256];
static float hsv_frac[256], hsv_sat[256];
static pthread_once_t hsv_once = PTHREAD_ONCE_INIT;

static void hsv_tables(void) {
    for (int a = 0; a < 256; a++)
        for (int b = 1; b < 256; b++) hsv_quot[a][b] = (float)a / (float)b;
    for (int h = 0; h < 256; h++) {
        hsv_sector[h] = (int)((float)h * 6.0 / 255.0);   /* floor: the value is >= 0 */
        hsv_frac[h] = (float)((float)h * 6.0 / 255.0 - (float)hsv_sector[h]);
        hsv_sat[h] = (float)(((float)h) / 255.0);
    }
}

/* Convert.c rgb2hsv_row, with its float locals and double literals. */
static void rgb2hsv_px(const uint8_t *in, uint8_t *out) {
    uint8_t r = in[0], g = in[1], b = in[2];
    uint8_t maxc = r > g ? r : g, minc = r < g ? r : g;
    if (b > maxc) maxc = b;
    if (b < minc) minc = b;
    uint8_t uh, us;
    if (minc == maxc) {
        uh = 0;
        us = 0;
    } else {
        float hh, s, rc, gc, bc;
        int cr = maxc - minc;
        s = hsv_quot[cr][maxc];
        rc = hsv_quot[maxc - r][cr];
        gc = hsv_quot[maxc - g][cr];
        bc = hsv_quot[maxc - b][cr];
        /* the three candidates, then a select: which channel is the max
           is a coin toss on colour images, and branches on it mispredict */
        float hr = bc - gc, hg = (float)(2.0 + rc - bc), hb = (float)(4.0 + gc - rc);
        hh = r == maxc ? hr : g == maxc ? hg : hb;
        /* fmod(hh / 6 + 1, 1): the sum lies in [5/6, 11/6], where
           subtracting 1 is exact (Sterbenz), so no libm call */
        double y = hh / 6.0 + 1.0;
        hh = (float)(y >= 1.0 ? y - 1.0 : y);
        int ih = (int)(hh * 255.0), is = (int)(s * 255.0);
        uh = (uint8_t)CLIP8(ih);
        us = (uint8_t)CLIP8(is);
    }
    out[0] = uh;
    out[1] = us;
    out[2] = maxc;
}

/* C's round() (half away from zero) of x >= 0, without the libm call:
   x - trunc(x) is exact. */
static inline int round_pos(double x) {
    int r = (int)x;
    return x - (double)r >= 0.5 ? r + 1 : r;
}

/* Convert.c hsv2rgb, one pixel. */
static void hsv2rgb_px(const uint8_t *in, uint8_t *out) {
    uint8_t h = in[0], s = in[1], v = in[2];
    if (s == 0) {
        out[0] = out[1] = out[2] = v;
        return;
    }
    int i = hsv_sector[h];                                     /* 0 - 6 */
    float f = hsv_frac[h];                                     /* 0-1 : remainder */
    float fs = hsv_sat[s];
    int p = round_pos((float)v * (1.0 - fs));
    int q = round_pos((float)v * (1.0 - fs * f));             /* fs * f: a float product */
    int t = round_pos((float)v * (1.0 - fs * (1.0 - f)));
    /* Convert.c's switch on i % 6 as a table of which of (v, p, q, t) goes
       to r, g, b: the sector is as unpredictable as the hue */
    static const uint8_t pick[6][3] = {{0, 3, 1}, {2, 0, 1}, {1, 0, 3}, {1, 2, 0}, {3, 1, 0}, {0, 1, 2}};
    const uint8_t vals[4] = {v, (uint8_t)CLIP8(p), (uint8_t)CLIP8(q), (uint8_t)CLIP8(t)};
    const uint8_t *k = pick[i % 6];
    out[0] = vals[k[0]];
    out[1] = vals[k[1]];
    out[2] = vals[k[2]];
}

uint8_t rt_aug_hue_shift(double hue) {
    /* np.uint8(x) of a float: C's conversion to an integer (truncation
       toward zero), then modulo 256; |hue * 255| <= 127.5 fits an int. */
    int t = (int)(hue * 255.0);
    return (uint8_t)(t & 0xff);
}

/* torchvision adjust_hue on PIL: to HSV, H += uint8(hue*255) with
   wrap-around, back to RGB. An L image is returned unchanged. */
void rt_aug_hue(uint8_t *img, int h, int w, int c, double hue) {
    if (c != 3) return;
    uint8_t shift = rt_aug_hue_shift(hue);
    pthread_once(&hsv_once, hsv_tables);
    size_t np = (size_t)h * (size_t)w;
    for (size_t i = 0; i < np; i++) {
        uint8_t hsv[3];
        rgb2hsv_px(img + 3 * i, hsv);
        hsv[0] = (uint8_t)(hsv[0] + shift);
        hsv2rgb_px(hsv, img + 3 * i);
    }
}

/* rgb_to_grayscale(num_output_channels=3): L copied to the three channels. */
void rt_aug_grayscale(uint8_t *img, int h, int w, int c) {
    if (c != 3) return;
    size_t np = (size_t)h * (size_t)w;
    for (size_t i = 0; i < np; i++) {
        uint8_t *px = img + 3 * i;
        px[0] = px[1] = px[2] = rt_aug_luma(px[0], px[1], px[2]);
    }
}

void rt_aug_color_jitter(uint8_t *img, int h, int w, int c, const int order[4], const double factor[4],
                         unsigned enabled) {
    for (int k = 0; k < 4; k++) {
        int op = order[k];
        if (op < 0 || op > 3 || !(enabled & (1u << op))) continue;
        switch (op) {
        case 0: rt_aug_brightness(img, h, w, c, factor[0]); break;
        case 1: rt_aug_contrast(img, h, w, c, factor[1]); break;
        case 2: rt_aug_saturation(img, h, w, c, factor[2]); break;
        default: rt_aug_hue(img, h, w, c, factor[3]); break;
        }
    }
}

/* to_tensor + normalize as torchvision computes them, in float32:
   x = v / 255 (a float division), then (x - mean) / std with mean and std
   rounded to float. Without mean/std: x only. Channels: the image's, or
   gray replicated (c = 1, c_out = 3), or the L of RGB (c = 3, c_out = 1). */
static void float_tables(float t[3][256], int c_out, const double *mean, const double *std) {
    for (int oc = 0; oc < c_out; oc++) {
        float m = mean ? (float)mean[oc] : 0.0f, s = std ? (float)std[oc] : 1.0f;
        for (int v = 0; v < 256; v++) {   /* the same float operations, once per value */
            float x = (float)v / 255.0f;
            t[oc][v] = mean ? (x - m) / s : x;
        }
    }
}

static void to_float(const uint8_t *img, int h, int w, int c, int c_out, const float t[3][256], float *out) {
    size_t np = (size_t)h * (size_t)w;
    for (int oc = 0; oc < c_out; oc++) {
        const float *tt = t[oc];
        float *o = out + (size_t)oc * np;
        /* a gray image under one (mean, std) for every channel (Fashion-MNIST):
           the same floats as the channel before */
        if (oc > 0 && c == 1 && memcmp(t[oc], t[oc - 1], sizeof t[oc]) == 0) {
            memcpy(o, o - np, np * sizeof *o);
            continue;
        }
        if (c == c_out || c == 1) {
            const uint8_t *px = img + (c == 1 ? 0 : oc);
            for (size_t i = 0; i < np; i++) o[i] = tt[px[i * (size_t)c]];
        } else {
            for (size_t i = 0; i < np; i++) {
                const uint8_t *px = img + i * (size_t)c;
                o[i] = tt[rt_aug_luma(px[0], px[1], px[2])];
            }
        }
    }
}

void rt_normalize_image(const uint8_t *img, int h, int w, int c, int c_out, const double mean[3],
                        const double std[3], float *out) {
    float t[3][256];
    float_tables(t, c_out, mean, std);
    to_float(img, h, w, c, c_out, (const float(*)[256])t, out);
}

/* ---- parameters ------------------------------------------------------------ */

void rt_aug_rrc_box(rt_stream *s, int h, int w, const double scale[2], const double ratio[2], rt_aug_params *par) {
    double area = (double)h * (double)w;
    double lr0 = log(ratio[0]), lr1 = log(ratio[1]);
    par->fallback = 0;
    for (int t = 0; t < 10; t++) {
        double target = area * (scale[0] + (scale[1] - scale[0]) * rt_stream_uniform(s));
        double aspect = exp(lr0 + (lr1 - lr0) * rt_stream_uniform(s));
        /* Python's round(): half to even, which nearbyint does in the
           default rounding mode */
        double cw = nearbyint(sqrt(target * aspect)), chh = nearbyint(sqrt(target / aspect));
        if (cw > 0 && cw <= w && chh > 0 && chh <= h) {
            int bw = (int)cw, bh = (int)chh;
            par->top = (int)rt_stream_below(s, (uint32_t)(h - bh + 1));
            par->left = (int)rt_stream_below(s, (uint32_t)(w - bw + 1));
            par->height = bh;
            par->width = bw;
            return;
        }
    }
    /* centre crop, clamped to the ratio range */
    double in_ratio = (double)w / (double)h;
    int bw, bh;
    if (in_ratio < ratio[0]) {
        bw = w;
        bh = (int)nearbyint(bw / ratio[0]);
    } else if (in_ratio > ratio[1]) {
        bh = h;
        bw = (int)nearbyint(bh * ratio[1]);
    } else {
        bw = w;
        bh = h;
    }
    par->fallback = 1;
    par->top = (h - bh) / 2;
    par->left = (w - bw) / 2;
    par->height = bh;
    par->width = bw;
}

void rt_aug_draw(const rt_aug_pipeline *p, int h, int w, uint64_t seed, uint32_t epoch, uint32_t image,
                 uint32_t view, rt_aug_params *par) {
    int ch = h, cw = w;                          /* size of the op's input */
    for (int k = 0; k < p->nops; k++) {
        const rt_aug_op *op = &p->ops[k];
        rt_aug_params *q = &par[k];
        memset(q, 0, sizeof *q);
        for (int j = 0; j < 4; j++) q->order[j] = j;
        q->factor[0] = q->factor[1] = q->factor[2] = 1.0;
        rt_stream s;
        rt_stream_init(&s, seed, RT_DOMAIN_AUGMENT, epoch, image);
        s.ctr[3] = view;
        s.ctr[2] = (uint32_t)k << 16;
        switch (op->kind) {
        case RT_AUG_RANDOM_RESIZED_CROP:
            rt_aug_rrc_box(&s, ch, cw, op->scale, op->ratio, q);
            ch = cw = op->size;
            break;
        case RT_AUG_HFLIP:
        case RT_AUG_GRAYSCALE:
            q->apply = rt_stream_uniform(&s) < op->p;
            break;
        case RT_AUG_COLOR_JITTER: {
            q->apply = rt_stream_uniform(&s) < op->p;
            for (int j = 3; j > 0; j--) {
                int r = (int)rt_stream_below(&s, (uint32_t)(j + 1));
                int t = q->order[j];
                q->order[j] = q->order[r];
                q->order[r] = t;
            }
            /* torchvision's ranges: [max(0, 1-b), 1+b] and so on; a zero
               strength gives the range {1} ({0} for hue), i.e. None */
            const double str[3] = {op->brightness, op->contrast, op->saturation};
            for (int j = 0; j < 3; j++) {
                double lo = 1.0 - str[j] > 0.0 ? 1.0 - str[j] : 0.0, hi = 1.0 + str[j];
                q->factor[j] = lo + (hi - lo) * rt_stream_uniform(&s);
                if (str[j] != 0.0) q->enabled |= 1u << j;
            }
            q->factor[3] = -op->hue + 2.0 * op->hue * rt_stream_uniform(&s);
            if (op->hue != 0.0) q->enabled |= 1u << 3;
            break;
        }
        case RT_AUG_RANDOM_CROP: {
            int hp = ch + 2 * op->padding, wp = cw + 2 * op->padding;
            q->top = (int)rt_stream_below(&s, (uint32_t)(hp - op->size + 1));
            q->left = (int)rt_stream_below(&s, (uint32_t)(wp - op->size + 1));
            q->height = q->width = op->size;
            ch = cw = op->size;
            break;
        }
        case RT_AUG_NORMALIZE:
            break;
        }
    }
}

/* ---- a view ------------------------------------------------------------------ */

/* The pixels of a view: img -> working uint8 image (gray replicated when
   c = 1 and c_out = 3) -> every op -> float CHW. The normalize op only
   records its constants; it is applied at the end, as the float step. */
bool rt_aug_gray_fast = true;

static int apply_ws(aug_ws *ws, const rt_aug_pipeline *p, const rt_aug_params *par, const uint8_t *img, int h,
                    int w, int c, int c_out, float *out) {
    int wc = (c == 1 && c_out == 3) ? 3 : c;     /* working channels */
    size_t n = (size_t)h * (size_t)w;
    /* A gray image in RGB (r = g = b everywhere: Fashion-MNIST, MNIST, a
       1-channel input made RGB) stays gray through every op, and each op
       gives its three channels the same bytes: crops and flips act per
       channel, brightness and contrast blend per channel with a constant
       (contrast's grey is the mean luma, and luma(v, v, v) = v),
       saturation blends with the luma (= v: the identity), hue keeps a
       zero saturation (the identity), grayscale writes the luma. So one
       channel is worked on and replicated by to_float, with the same
       result bytes (tests/runtime/test_augment.c checks it). */
    bool gray = rt_aug_gray_fast && wc == 3;
    if (gray && c == 3 && !p->gray_input)   /* else the loader replicated a gray image */
        for (size_t i = 0; i < n && gray; i++) gray = img[3 * i] == img[3 * i + 1] && img[3 * i] == img[3 * i + 2];
    if (gray) wc = 1;
    if (grow(&ws->img[0], &ws->img_cap[0], n * (size_t)wc + 1)) return -1;
    uint8_t *cur = ws->img[0];
    int cur_i = 0;
    if (gray && c == 1)
        memcpy(cur, img, n);
    else if (gray)
        for (size_t i = 0; i < n; i++) cur[i] = img[(size_t)c * i];
    else if (wc == c)
        memcpy(cur, img, n * (size_t)c);
    else
        for (size_t i = 0; i < n; i++) cur[3 * i] = cur[3 * i + 1] = cur[3 * i + 2] = img[i];
    const double *mean = NULL, *std = NULL;
    int ch = h, cw = w;
    for (int k = 0; k < p->nops; k++) {
        const rt_aug_op *op = &p->ops[k];
        const rt_aug_params *q = &par[k];
        switch (op->kind) {
        case RT_AUG_RANDOM_RESIZED_CROP:
        case RT_AUG_RANDOM_CROP: {
            int o = 1 - cur_i, sz = op->size;
            if (grow(&ws->img[o], &ws->img_cap[o], (size_t)sz * (size_t)sz * (size_t)wc + 1)) return -1;
            uint8_t *dst = ws->img[o];
            if (op->kind == RT_AUG_RANDOM_CROP)
                rt_aug_pad_crop(cur, ch, cw, wc, op->padding, q->top, q->left, sz, sz, dst);
            else if (resized_crop_ws(ws, cur, cw, wc, q->top, q->left, q->height, q->width, sz, sz, dst))
                return -1;
            cur = dst;
            cur_i = o;
            ch = cw = sz;
            break;
        }
        case RT_AUG_HFLIP:
            if (q->apply) rt_aug_hflip(cur, ch, cw, wc);
            break;
        case RT_AUG_COLOR_JITTER:
            if (q->apply) rt_aug_color_jitter(cur, ch, cw, wc, q->order, q->factor, q->enabled);
            break;
        case RT_AUG_GRAYSCALE:
            if (q->apply) rt_aug_grayscale(cur, ch, cw, wc);
            break;
        case RT_AUG_NORMALIZE:
            mean = op->mean;
            std = op->std;
            break;
        }
    }
    if (ws->tf_c != c_out || ws->tf_mean != mean || ws->tf_std != std) {
        float_tables(ws->tf, c_out, mean, std);
        ws->tf_c = c_out, ws->tf_mean = mean, ws->tf_std = std;
    }
    to_float(cur, ch, cw, wc, c_out, (const float(*)[256])ws->tf, out);
    return 0;
}

int rt_aug_apply(const rt_aug_pipeline *p, const rt_aug_params *par, const uint8_t *img, int h, int w, int c,
                 int c_out, float *out) {
    aug_ws ws;
    memset(&ws, 0, sizeof ws);
    int rc = apply_ws(&ws, p, par, img, h, w, c, c_out, out);
    ws_free(&ws);
    return rc;
}

static void view_ws(aug_ws *ws, rt_aug_params *par, const rt_aug_pipeline *p, const uint8_t *img, int h, int w,
                    int c, int c_out, uint64_t seed, uint32_t epoch, uint32_t image, uint32_t view, float *out) {
    rt_aug_draw(p, h, w, seed, epoch, image, view, par);
    if (apply_ws(ws, p, par, img, h, w, c, c_out, out)) die_oom();
}

void rt_augment_view(const rt_aug_pipeline *p, const uint8_t *img, int h, int w, int c, int c_out,
                     uint64_t seed, uint32_t epoch, uint32_t image, uint32_t view, float *out) {
    aug_ws ws;
    memset(&ws, 0, sizeof ws);
    rt_aug_params *par = malloc((size_t)(p->nops > 0 ? p->nops : 1) * sizeof *par);
    if (!par) die_oom();
    view_ws(&ws, par, p, img, h, w, c, c_out, seed, epoch, image, view, out);
    free(par);
    ws_free(&ws);
}

/* ---- a batch ------------------------------------------------------------------ */

typedef struct batch_job {
    const rt_aug_pipeline *p;
    const uint8_t *pixels;
    int h, w, c, c_out, B;
    const int64_t *idx;
    uint64_t seed;
    uint32_t epoch;
    int64_t row0, row1;                          /* rows [row0, row1) of x */
    float *x;
} batch_job;

/* Rows are independent (each view has its own stream), so any partition
   of the rows over threads gives the same x. */
static void batch_worker(const batch_job *j) {
    size_t img_bytes = (size_t)j->h * (size_t)j->w * (size_t)j->c;
    size_t row_floats = (size_t)j->c_out * (size_t)j->p->out_h * (size_t)j->p->out_w;
    aug_ws ws;
    memset(&ws, 0, sizeof ws);
    rt_aug_params *par = malloc((size_t)(j->p->nops > 0 ? j->p->nops : 1) * sizeof *par);
    if (!par) die_oom();
    for (int64_t r = j->row0; r < j->row1; r++) {
        int64_t k = r / j->B, i = r % j->B;
        int64_t im = j->idx[i];
        view_ws(&ws, par, j->p, j->pixels + (size_t)im * img_bytes, j->h, j->w, j->c, j->c_out, j->seed, j->epoch,
                (uint32_t)im, (uint32_t)k, j->x + (size_t)r * row_floats);
    }
    free(par);
    ws_free(&ws);
}

static void batch_task(void *ctx, int t) { batch_worker((const batch_job *)ctx + t); }

void rt_augment_batch(const rt_aug_pipeline *p, const uint8_t *pixels, int h, int w, int c, int c_out,
                      const int64_t *idx, int B, int K, uint64_t seed, uint32_t epoch, int nthreads, float *x) {
    int64_t n = (int64_t)K * B;
    if (n <= 0) return;
    /* the step's pool threads (rt_pool.h), as many as asked and it has */
    int nt = nthreads < 1 ? 1 : nthreads;
    if (nt > rt_pool_threads()) nt = rt_pool_threads();
    if (nt > n) nt = (int)n;
    batch_job *jobs = malloc((size_t)nt * sizeof *jobs);
    if (!jobs) die_oom();
    /* static partition: task t makes rows [n*t/nt, n*(t+1)/nt) */
    for (int t = 0; t < nt; t++)
        jobs[t] = (batch_job){p, pixels, h, w, c, c_out, B, idx, seed, epoch, n * t / nt, n * (t + 1) / nt, x};
    rt_pool_run(nt, batch_task, jobs);
    free(jobs);
}

/* ---- checking a pipeline ------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static int check_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int rt_aug_check(const rt_aug_pipeline *p, int h, int w, int c, int c_out, char *err, size_t errlen) {
    if (c != 1 && c != 3) return check_fail(err, errlen, "augment: %d input channels (need 1 or 3)", c);
    if (c_out != 1 && c_out != 3) return check_fail(err, errlen, "augment: %d output channels (need 1 or 3)", c_out);
    if (h <= 0 || w <= 0) return check_fail(err, errlen, "augment: empty %dx%d input image", h, w);
    if (p->nops < 0 || (p->nops > 0 && !p->ops)) return check_fail(err, errlen, "augment: no ops");
    if (p->nops > 65536) return check_fail(err, errlen, "augment: %d ops (at most 65536)", p->nops);
    int ch = h, cw = w;
    for (int k = 0; k < p->nops; k++) {
        const rt_aug_op *op = &p->ops[k];
        switch (op->kind) {
        case RT_AUG_RANDOM_RESIZED_CROP:
            if (op->size <= 0) return check_fail(err, errlen, "augment op %d: resized crop size %d", k, op->size);
            if (!(op->scale[0] > 0 && op->scale[0] <= op->scale[1] && isfinite(op->scale[1])))
                return check_fail(err, errlen, "augment op %d: scale range [%g, %g]", k, op->scale[0], op->scale[1]);
            if (!(op->ratio[0] > 0 && op->ratio[0] <= op->ratio[1] && isfinite(op->ratio[1])))
                return check_fail(err, errlen, "augment op %d: ratio range [%g, %g]", k, op->ratio[0], op->ratio[1]);
            ch = cw = op->size;
            break;
        case RT_AUG_HFLIP:
        case RT_AUG_GRAYSCALE:
            if (!(op->p >= 0 && op->p <= 1)) return check_fail(err, errlen, "augment op %d: p = %g", k, op->p);
            break;
        case RT_AUG_COLOR_JITTER:
            if (!(op->p >= 0 && op->p <= 1)) return check_fail(err, errlen, "augment op %d: p = %g", k, op->p);
            if (!(op->brightness >= 0 && op->contrast >= 0 && op->saturation >= 0) || !isfinite(op->brightness) ||
                !isfinite(op->contrast) || !isfinite(op->saturation))
                return check_fail(err, errlen, "augment op %d: negative colour jitter strength", k);
            if (!(op->hue >= 0 && op->hue <= 0.5))
                return check_fail(err, errlen, "augment op %d: hue %g not in [0, 0.5]", k, op->hue);
            break;
        case RT_AUG_NORMALIZE:
            for (int j = 0; j < 3; j++)
                if (!(op->std[j] != 0) || !isfinite(op->std[j]) || !isfinite(op->mean[j]))
                    return check_fail(err, errlen, "augment op %d: normalize mean/std %d", k, j);
            break;
        case RT_AUG_RANDOM_CROP:
            if (op->size <= 0 || op->padding < 0)
                return check_fail(err, errlen, "augment op %d: random crop size %d padding %d", k, op->size, op->padding);
            if (op->size > ch + 2 * op->padding || op->size > cw + 2 * op->padding)
                return check_fail(err, errlen, "augment op %d: random crop %d larger than its padded %dx%d input", k,
                                op->size, ch + 2 * op->padding, cw + 2 * op->padding);
            ch = cw = op->size;
            break;
        default:
            return check_fail(err, errlen, "augment op %d: unknown kind %d", k, (int)op->kind);
        }
    }
    if (ch != p->out_h || cw != p->out_w)
        return check_fail(err, errlen, "augment: views of a %dx%d image are %dx%d, not the pipeline's %dx%d", h, w, ch,
                        cw, p->out_h, p->out_w);
    return 0;
}
