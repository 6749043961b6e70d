/*
** test_augment.c: tests of the augmentations (runtime/rt_augment.c).
**
** Pixels: every operation at fixed parameters against the PIL/torchvision
** goldens in tests/golden/aug/ (made by make_aug_goldens.py). METHOD.md's
** bar is one intensity level per pixel; each test also prints the largest
** difference and how many values differ (0 and 0 is what the transcription
** of Pillow's arithmetic should give). Parameters: the crop boxes drawn
** from our generator obey torchvision's rules (area, ratio, inside the
** image, centre-crop fallback with Python's half-to-even round), a view is
** a pure function of (seed, epoch, image, view), and a batch is the same
** for any number of threads. Statistical checks allow many standard
** errors: they catch a wrong rule, not an unlucky seed.
*/
#include "golden_util.h"
#include "data_util.h"
#include "test.h"

#include "rt_augment.h"
#include "rt_pool.h"
#include "rt_rng.h"
#include "rt_safetensors.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- golden files ------------------------------------------------------ */

/* Reads golden_dir()/aug/NAME.safetensors (its path into path). */
static bool aug_read(const char *name, rt_st_file *f, char *path, size_t pathlen) {
    snprintf(path, pathlen, "%s/aug/%s.safetensors", golden_dir(), name);
    return golden_read(path, f);
}

/* A tensor of dtype dt and rank `rank` (shape checked by the caller), or
   NULL with a recorded failure. */
static const rt_tensor *aug_tensor(const rt_st_file *f, const char *path, const char *name, rt_dtype dt, int rank) {
    const rt_tensor *t = rt_st_find(f, name);
    if (!t) {
        test_fail(__FILE__, __LINE__, "%s: no tensor '%s'", path, name);
        return NULL;
    }
    if (t->dtype != dt || t->rank != rank) {
        test_fail(__FILE__, __LINE__, "%s: tensor '%s' is %s rank %d, want %s rank %d", path, name,
                  rt_dtype_name(t->dtype), t->rank, rt_dtype_name(dt), rank);
        return NULL;
    }
    return t;
}

static int64_t i64_at(const rt_tensor *t, int64_t i) {
    int64_t v;
    memcpy(&v, (const char *)t->data + 8 * i, 8);
    return v;
}

static double f64_at(const rt_tensor *t, int64_t i) {
    double v;
    memcpy(&v, (const char *)t->data + 8 * i, 8);
    return v;
}

/* Per-op difference statistics over uint8 values. */
typedef struct diffstat { int64_t n, ndiff; int maxd; } diffstat;

static void diff_u8(diffstat *d, const uint8_t *ours, const uint8_t *ref, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int e = abs((int)ours[i] - (int)ref[i]);
        if (e) d->ndiff++;
        if (e > d->maxd) d->maxd = e;
    }
    d->n += (int64_t)n;
}

static void diff_report(const char *what, const diffstat *d) {
    printf("    %-13s %7lld values, max diff %d, %lld differ\n", what, (long long)d->n, d->maxd,
           (long long)d->ndiff);
    CHECKF(d->maxd <= 1, "%s: max difference %d intensity levels (bar: 1)", what, d->maxd);
    CHECKF(d->n > 0, "%s: nothing compared", what);
}

/* Calls fn(name, src tensor) for every "src.<name>" of f. */
typedef void (*src_fn)(const rt_st_file *f, const char *path, const char *name, const rt_tensor *src, void *ctx);

static void for_sources(const rt_st_file *f, const char *path, src_fn fn, void *ctx) {
    for (int i = 0; i < f->ntensors; i++) {
        const rt_tensor *t = &f->tensors[i];
        if (strncmp(t->name, "src.", 4) != 0) continue;
        if (t->dtype != RT_U8 || t->rank != 3 || t->shape[2] != 3) {
            test_fail(__FILE__, __LINE__, "%s: bad source tensor %s", path, t->name);
            continue;
        }
        fn(f, path, t->name + 4, t, ctx);
    }
}

/* ---- pixels at fixed parameters vs PIL ---------------------------------- */

static void crop_one(const rt_st_file *f, const char *path, const char *name, const rt_tensor *src, void *ctx) {
    diffstat *d = ctx;
    char bn[128], on[128];
    snprintf(bn, sizeof bn, "boxes.%s", name);
    snprintf(on, sizeof on, "out.%s", name);
    const rt_tensor *boxes = aug_tensor(f, path, bn, RT_I64, 2), *out = aug_tensor(f, path, on, RT_U8, 4);
    if (!boxes || !out) return;
    int h = (int)src->shape[0], w = (int)src->shape[1];
    int n = (int)boxes->shape[0], oh = (int)out->shape[1], ow = (int)out->shape[2];
    if (boxes->shape[1] != 4 || out->shape[0] != n || out->shape[3] != 3) {
        test_fail(__FILE__, __LINE__, "%s: shapes of %s / %s", path, bn, on);
        return;
    }
    uint8_t *mine = malloc((size_t)oh * (size_t)ow * 3);
    if (!mine) return;
    for (int k = 0; k < n; k++) {
        int top = (int)i64_at(boxes, 4 * k), left = (int)i64_at(boxes, 4 * k + 1);
        int bh = (int)i64_at(boxes, 4 * k + 2), bw = (int)i64_at(boxes, 4 * k + 3);
        CHECK(rt_aug_resized_crop(src->data, h, w, 3, top, left, bh, bw, oh, ow, mine) == 0);
        const uint8_t *ref = (const uint8_t *)out->data + (size_t)k * (size_t)oh * (size_t)ow * 3;
        diffstat one = {0, 0, 0};
        diff_u8(&one, mine, ref, (size_t)oh * (size_t)ow * 3);
        CHECKF(one.maxd <= 1, "%s box (%d,%d,%d,%d) of %dx%d -> %dx%d: max diff %d", name, top, left, bh, bw, h, w,
               oh, ow, one.maxd);
        d->n += one.n;
        d->ndiff += one.ndiff;
        if (one.maxd > d->maxd) d->maxd = one.maxd;
    }
    free(mine);
}

TEST(aug_golden_resized_crop) {
    rt_st_file f;
    char path[600];
    if (!aug_read("resized_crop", &f, path, sizeof path)) return;
    diffstat d = {0, 0, 0};
    for_sources(&f, path, crop_one, &d);
    diff_report("resized_crop", &d);
    rt_st_free(&f);
}

typedef void (*pix_fn)(uint8_t *img, int h, int w, int c, double factor);

typedef struct factor_ctx { pix_fn fn; const rt_tensor *factors; diffstat d; } factor_ctx;

static void factor_one(const rt_st_file *f, const char *path, const char *name, const rt_tensor *src, void *ctx) {
    factor_ctx *fc = ctx;
    char on[128];
    snprintf(on, sizeof on, "out.%s", name);
    const rt_tensor *out = aug_tensor(f, path, on, RT_U8, 4);
    if (!out) return;
    int h = (int)src->shape[0], w = (int)src->shape[1];
    size_t n = (size_t)h * (size_t)w * 3;
    if (out->shape[0] != fc->factors->shape[0] || out->shape[1] != h || out->shape[2] != w) {
        test_fail(__FILE__, __LINE__, "%s: shape of %s", path, on);
        return;
    }
    uint8_t *mine = malloc(n);
    if (!mine) return;
    for (int64_t k = 0; k < out->shape[0]; k++) {
        memcpy(mine, src->data, n);
        double fac = f64_at(fc->factors, k);
        fc->fn(mine, h, w, 3, fac);
        diffstat one = {0, 0, 0};
        diff_u8(&one, mine, (const uint8_t *)out->data + (size_t)k * n, n);
        CHECKF(one.maxd <= 1, "%s: %s factor %g: max diff %d (%lld values differ)", path, name, fac, one.maxd,
               (long long)one.ndiff);
        fc->d.n += one.n;
        fc->d.ndiff += one.ndiff;
        if (one.maxd > fc->d.maxd) fc->d.maxd = one.maxd;
    }
    free(mine);
}

static void run_factor_file(const char *file, pix_fn fn) {
    rt_st_file f;
    char path[600];
    if (!aug_read(file, &f, path, sizeof path)) return;
    factor_ctx fc = {fn, aug_tensor(&f, path, "factors", RT_F64, 1), {0, 0, 0}};
    if (fc.factors) {
        for_sources(&f, path, factor_one, &fc);
        diff_report(file, &fc.d);
    }
    rt_st_free(&f);
}

TEST(aug_golden_brightness) { run_factor_file("brightness", rt_aug_brightness); }
TEST(aug_golden_contrast) { run_factor_file("contrast", rt_aug_contrast); }
TEST(aug_golden_saturation) { run_factor_file("saturation", rt_aug_saturation); }
TEST(aug_golden_hue) { run_factor_file("hue", rt_aug_hue); }

TEST(aug_hue_shift_uint8) {
    rt_st_file f;
    char path[600];
    if (!aug_read("hue", &f, path, sizeof path)) return;
    const rt_tensor *fac = aug_tensor(&f, path, "factors", RT_F64, 1);
    const rt_tensor *sh = aug_tensor(&f, path, "shift", RT_U8, 1);
    if (fac && sh && fac->shape[0] == sh->shape[0])
        for (int64_t k = 0; k < fac->shape[0]; k++) {
            uint8_t want = ((const uint8_t *)sh->data)[k];
            CHECKF(rt_aug_hue_shift(f64_at(fac, k)) == want, "hue %g: shift %d, numpy %d", f64_at(fac, k),
                   rt_aug_hue_shift(f64_at(fac, k)), want);
        }
    rt_st_free(&f);
    /* METHOD.md: truncated toward zero, a negative value wraps */
    CHECK(rt_aug_hue_shift(-0.2) == 205);
    CHECK(rt_aug_hue_shift(-0.05) == 244);
    CHECK(rt_aug_hue_shift(0.1) == 25);
    CHECK(rt_aug_hue_shift(-0.001) == 0);
    CHECK(rt_aug_hue_shift(0.5) == 127);
    CHECK(rt_aug_hue_shift(-0.5) == 129);
}

typedef void (*plain_fn)(uint8_t *img, int h, int w, int c);

static void plain_one(const rt_st_file *f, const char *path, const char *name, const rt_tensor *src, void *ctx) {
    const void **pc = ctx;
    plain_fn fn = *(const plain_fn *)pc[0];
    diffstat *d = (diffstat *)pc[1];
    char on[128];
    snprintf(on, sizeof on, "out.%s", name);
    const rt_tensor *out = aug_tensor(f, path, on, RT_U8, 3);
    if (!out) return;
    int h = (int)src->shape[0], w = (int)src->shape[1];
    size_t n = (size_t)h * (size_t)w * 3;
    if (out->nbytes != n) {
        test_fail(__FILE__, __LINE__, "%s: size of %s", path, on);
        return;
    }
    uint8_t *mine = malloc(n);
    if (!mine) return;
    memcpy(mine, src->data, n);
    fn(mine, h, w, 3);
    diff_u8(d, mine, out->data, n);
    free(mine);
}

static void run_plain_file(const char *file, plain_fn fn) {
    rt_st_file f;
    char path[600];
    if (!aug_read(file, &f, path, sizeof path)) return;
    diffstat d = {0, 0, 0};
    const void *pc[2] = {(const void *)&fn, (const void *)&d};
    for_sources(&f, path, plain_one, pc);
    diff_report(file, &d);
    rt_st_free(&f);
}

TEST(aug_golden_grayscale) { run_plain_file("grayscale", rt_aug_grayscale); }
TEST(aug_golden_hflip) { run_plain_file("hflip", rt_aug_hflip); }

static void jitter_one(const rt_st_file *f, const char *path, const char *name, const rt_tensor *src, void *ctx) {
    diffstat *d = ctx;
    char on[128];
    snprintf(on, sizeof on, "out.%s", name);
    const rt_tensor *out = aug_tensor(f, path, on, RT_U8, 4);
    const rt_tensor *order = aug_tensor(f, path, "order", RT_I64, 2);
    const rt_tensor *fac = aug_tensor(f, path, "factors", RT_F64, 2);
    if (!out || !order || !fac) return;
    int h = (int)src->shape[0], w = (int)src->shape[1];
    size_t n = (size_t)h * (size_t)w * 3;
    uint8_t *mine = malloc(n);
    if (!mine) return;
    for (int64_t k = 0; k < out->shape[0]; k++) {
        int ord[4];
        double fa[4];
        for (int j = 0; j < 4; j++) {
            ord[j] = (int)i64_at(order, 4 * k + j);
            fa[j] = f64_at(fac, 4 * k + j);
        }
        memcpy(mine, src->data, n);
        rt_aug_color_jitter(mine, h, w, 3, ord, fa, 0xfu);
        diffstat one = {0, 0, 0};
        diff_u8(&one, mine, (const uint8_t *)out->data + (size_t)k * n, n);
        CHECKF(one.maxd <= 1, "%s case %lld: max diff %d", name, (long long)k, one.maxd);
        d->n += one.n;
        d->ndiff += one.ndiff;
        if (one.maxd > d->maxd) d->maxd = one.maxd;
    }
    free(mine);
}

TEST(aug_golden_color_jitter) {
    rt_st_file f;
    char path[600];
    if (!aug_read("color_jitter", &f, path, sizeof path)) return;
    diffstat d = {0, 0, 0};
    for_sources(&f, path, jitter_one, &d);
    diff_report("color_jitter", &d);
    rt_st_free(&f);
}

static void pad_one(const rt_st_file *f, const char *path, const char *name, const rt_tensor *src, void *ctx) {
    diffstat *d = ctx;
    char on[128];
    snprintf(on, sizeof on, "out.%s", name);
    const rt_tensor *out = aug_tensor(f, path, on, RT_U8, 4);
    const rt_tensor *corners = aug_tensor(f, path, "corners", RT_I64, 2);
    const char *pad = rt_st_meta(f, "padding");
    if (!out || !corners || !pad) return;
    int h = (int)src->shape[0], w = (int)src->shape[1], oh = (int)out->shape[1], ow = (int)out->shape[2];
    size_t n = (size_t)oh * (size_t)ow * 3;
    uint8_t *mine = malloc(n);
    if (!mine) return;
    for (int64_t k = 0; k < out->shape[0]; k++) {
        rt_aug_pad_crop(src->data, h, w, 3, atoi(pad), (int)i64_at(corners, 2 * k), (int)i64_at(corners, 2 * k + 1),
                        oh, ow, mine);
        diff_u8(d, mine, (const uint8_t *)out->data + (size_t)k * n, n);
    }
    free(mine);
}

TEST(aug_golden_random_crop) {
    rt_st_file f;
    char path[600];
    if (!aug_read("random_crop", &f, path, sizeof path)) return;
    diffstat d = {0, 0, 0};
    for_sources(&f, path, pad_one, &d);
    diff_report("random_crop", &d);
    rt_st_free(&f);
}

/* Float outputs (normalised): the difference in intensity levels is
   |ours - ref| * 255 * std. */
typedef struct fdiff { int64_t n, ndiff; double maxabs, maxlev; } fdiff;

static void diff_f32(fdiff *d, const float *ours, const float *ref, size_t n, size_t plane, const double *std) {
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)ours[i] - (double)ref[i]);
        double lev = e * 255.0 * (std ? std[(i / plane) % 3] : 1.0);
        if (e > 0) d->ndiff++;
        if (e > d->maxabs) d->maxabs = e;
        if (lev > d->maxlev) d->maxlev = lev;
    }
    d->n += (int64_t)n;
}

static void fdiff_report(const char *what, const fdiff *d) {
    printf("    %-13s %7lld values, max diff %.3g (%.3g levels), %lld differ\n", what, (long long)d->n, d->maxabs,
           d->maxlev, (long long)d->ndiff);
    CHECKF(d->maxlev <= 1.0 + 1e-3, "%s: max difference %g intensity levels", what, d->maxlev);
    CHECKF(d->n > 0, "%s: nothing compared", what);
}

typedef struct norm_ctx { double mean[3], std[3]; fdiff d; } norm_ctx;

static void norm_one(const rt_st_file *f, const char *path, const char *name, const rt_tensor *src, void *ctx) {
    norm_ctx *nc = ctx;
    char on[128];
    snprintf(on, sizeof on, "out.%s", name);
    const rt_tensor *out = aug_tensor(f, path, on, RT_F32, 3);
    if (!out) return;
    int h = (int)src->shape[0], w = (int)src->shape[1];
    size_t n = (size_t)h * (size_t)w * 3;
    float *mine = malloc(n * sizeof *mine), *ref = malloc(n * sizeof *ref);
    char err[256];
    if (mine && ref && rt_tensor_to_f32(out, ref, (int64_t)n, path, err, sizeof err) == 0) {
        rt_normalize_image(src->data, h, w, 3, 3, nc->mean, nc->std, mine);
        diff_f32(&nc->d, mine, ref, n, (size_t)h * (size_t)w, nc->std);
        /* torchvision's float32 arithmetic, reproduced: bit-identical */
        CHECKF(memcmp(mine, ref, n * sizeof *mine) == 0, "%s: normalize not bit-identical", name);
    }
    free(mine);
    free(ref);
}

static bool read_mean_std(const rt_st_file *f, const char *path, double mean[3], double std[3]) {
    const rt_tensor *m = aug_tensor(f, path, "mean", RT_F64, 1), *s = aug_tensor(f, path, "std", RT_F64, 1);
    if (!m || !s || m->shape[0] != 3 || s->shape[0] != 3) return false;
    for (int j = 0; j < 3; j++) {
        mean[j] = f64_at(m, j);
        std[j] = f64_at(s, j);
    }
    return true;
}

TEST(aug_golden_normalize) {
    rt_st_file f;
    char path[600];
    if (!aug_read("normalize", &f, path, sizeof path)) return;
    norm_ctx nc;
    memset(&nc, 0, sizeof nc);
    if (read_mean_std(&f, path, nc.mean, nc.std)) {
        for_sources(&f, path, norm_one, &nc);
        fdiff_report("normalize", &nc.d);
    }
    rt_st_free(&f);
}

/* Whole views at fixed parameters: resized crop 32 -> flip -> colour
   jitter -> grayscale -> normalise, through rt_aug_apply. */
TEST(aug_golden_pipeline) {
    rt_st_file f;
    char path[600];
    if (!aug_read("pipeline", &f, path, sizeof path)) return;
    const rt_tensor *cases = aug_tensor(&f, path, "cases", RT_I64, 2), *out = aug_tensor(&f, path, "out", RT_F32, 4);
    const char *srcs = rt_st_meta(&f, "sources");
    double mean[3], std[3];
    if (!cases || !out || !srcs || !read_mean_std(&f, path, mean, std) || cases->shape[1] != 12) {
        test_fail(__FILE__, __LINE__, "%s: layout", path);
        rt_st_free(&f);
        return;
    }
    /* the source names, in the order the case rows index them */
    char names[8][64];
    int nn = 0;
    for (const char *s = srcs; *s && nn < 8;) {
        size_t l = strcspn(s, ",");
        snprintf(names[nn++], sizeof names[0], "src.%.*s", (int)l, s);
        s += l + (s[l] == ',');
    }
    int size = (int)out->shape[2];
    rt_aug_op ops[5];
    test_method_pipeline(ops, size, mean, std);
    rt_aug_pipeline p = {ops, 5, size, size, 0};
    size_t n = 3 * (size_t)size * (size_t)size;
    float *mine = malloc(n * sizeof *mine), *ref = malloc(n * sizeof *ref);
    fdiff d;
    memset(&d, 0, sizeof d);
    for (int64_t k = 0; mine && ref && k < cases->shape[0]; k++) {
        int64_t cs[12];   /* src, top, left, height, width, flip, jitter, order[4], gray */
        for (int j = 0; j < 12; j++) cs[j] = i64_at(cases, 12 * k + j);
        REQUIRE(cs[0] >= 0 && cs[0] < nn);
        const rt_tensor *src = aug_tensor(&f, path, names[cs[0]], RT_U8, 3);
        char fn[32];
        snprintf(fn, sizeof fn, "factors.%lld", (long long)k);
        const rt_tensor *fac = aug_tensor(&f, path, fn, RT_F64, 1);
        if (!src || !fac) break;
        rt_aug_params par[5];
        memset(par, 0, sizeof par);
        par[0].top = (int)cs[1], par[0].left = (int)cs[2], par[0].height = (int)cs[3], par[0].width = (int)cs[4];
        par[1].apply = (int)cs[5];
        par[2].apply = (int)cs[6];
        for (int j = 0; j < 4; j++) {
            par[2].order[j] = (int)cs[7 + j];
            par[2].factor[j] = f64_at(fac, j);
        }
        par[2].enabled = 0xf;
        par[3].apply = (int)cs[11];
        REQUIRE(rt_aug_apply(&p, par, src->data, (int)src->shape[0], (int)src->shape[1], 3, 3, mine) == 0);
        memcpy(ref, (const char *)out->data + (size_t)k * n * sizeof *ref, n * sizeof *ref);
        diff_f32(&d, mine, ref, n, (size_t)size * (size_t)size, std);
    }
    fdiff_report("pipeline", &d);
    free(mine);
    free(ref);
    rt_st_free(&f);
}

/* ---- parameters drawn from our generator ---------------------------------- */

/* The METHOD.md unsupervised pipeline (CIFAR-10 constants). */
static void standard_ops(rt_aug_op ops[5], int size) {
    static const double mean[3] = {0.491, 0.482, 0.447}, std[3] = {0.247, 0.243, 0.262};
    test_method_pipeline(ops, size, mean, std);
}

TEST(aug_rrc_box_statistics) {
    /* 10k draws on 32x32 with METHOD.md's ranges. A box satisfies
       torchvision's rules up to the rounding of w and h to integers. */
    const double scale[2] = {0.08, 1.0}, ratio[2] = {3.0 / 4.0, 4.0 / 3.0};
    const int H = 32, W = 32, N = 10000;
    rt_stream s;
    rt_stream_init(&s, 12345, RT_DOMAIN_TEST, 1, 2);
    double sum_frac = 0, sum_logr = 0, sum_top = 0;
    int nfall = 0, ntop = 0, bad = 0;
    for (int k = 0; k < N; k++) {
        rt_aug_params par;
        memset(&par, 0, sizeof par);
        rt_aug_rrc_box(&s, H, W, scale, ratio, &par);
        int h = par.height, w = par.width;
        if (!(h > 0 && w > 0 && par.top >= 0 && par.left >= 0 && par.top + h <= H && par.left + w <= W)) bad++;
        double frac = (double)h * w / (H * W);
        if (frac > 1.0 || (h + 0.5) * (w + 0.5) < scale[0] * H * W) bad++;
        if ((w + 0.5) / (h - 0.5) < ratio[0] || (w - 0.5) / (h + 0.5) > ratio[1]) bad++;
        nfall += par.fallback;
        sum_frac += frac;
        sum_logr += log((double)w / h);
        if (H > h) {
            sum_top += (double)par.top / (H - h);
            ntop++;
        }
    }
    CHECKF(bad == 0, "%d boxes break the rules", bad);
    /* a square image falls back only after 10 rejections (too large a box
       in one dimension), which is rare */
    CHECKF(nfall < N / 100, "%d fallbacks of %d", nfall, N);
    /* torchvision's get_params on 32x32 (50k draws): mean area fraction
       0.4897 (s.e. 0.0011); ours over 10k draws has s.e. ~0.0024 */
    double mf = sum_frac / N;
    CHECKF(fabs(mf - 0.4897) < 0.015, "mean area fraction %.4f, torchvision 0.4897", mf);
    CHECKF(fabs(sum_logr / N) < 0.02, "mean log aspect ratio %.4f (symmetric range)", sum_logr / N);
    CHECKF(fabs(sum_top / ntop - 0.5) < 0.03, "mean relative top %.4f (uniform corner)", sum_top / ntop);
}

TEST(aug_rrc_fallback) {
    const double scale[2] = {0.08, 1.0}, ratio[2] = {3.0 / 4.0, 4.0 / 3.0};
    rt_stream s;
    rt_stream_init(&s, 7, RT_DOMAIN_TEST, 0, 0);
    for (int k = 0; k < 200; k++) {
        rt_aug_params par;
        /* 4 x 200: every box of area >= 64 with ratio <= 4/3 is taller than
           4, so all 10 tries fail; centre crop h = 4, w = round(4 * 4/3) = 5 */
        rt_aug_rrc_box(&s, 4, 200, scale, ratio, &par);
        CHECK(par.fallback == 1);
        CHECK(par.height == 4 && par.width == 5 && par.top == 0 && par.left == 97);
        /* and the tall one: w = 4, h = round(4 / (3/4)) = 5 */
        rt_aug_rrc_box(&s, 200, 4, scale, ratio, &par);
        CHECK(par.fallback == 1);
        CHECK(par.height == 5 && par.width == 4 && par.top == 97 && par.left == 0);
    }
    /* Python's round is half to even: h = 5, ratio up to 2.5 gives
       w = round(12.5) = 12 (not 13); torchvision returns (0, 94, 5, 12) */
    const double r2[2] = {0.5, 2.5};
    rt_aug_params par;
    rt_aug_rrc_box(&s, 5, 200, scale, r2, &par);
    CHECK(par.fallback == 1 && par.height == 5 && par.width == 12 && par.top == 0 && par.left == 94);
    /* within the ratio range: the whole image */
    const double wide[2] = {0.5, 3.0};
    for (int k = 0; k < 20; k++) {
        rt_aug_rrc_box(&s, 4, 10, (const double[2]){0.99, 1.0}, wide, &par);
        if (par.fallback) CHECK(par.height == 4 && par.width == 10 && par.top == 0 && par.left == 0);
    }
}

/* Field by field: struct padding is not part of the value. */
static bool params_equal(const rt_aug_params *a, const rt_aug_params *b, int n) {
    for (int k = 0; k < n; k++) {
        const rt_aug_params *x = &a[k], *y = &b[k];
        if (x->top != y->top || x->left != y->left || x->height != y->height || x->width != y->width ||
            x->fallback != y->fallback || x->apply != y->apply || x->enabled != y->enabled)
            return false;
        for (int j = 0; j < 4; j++)
            if (x->order[j] != y->order[j] || x->factor[j] != y->factor[j]) return false;
    }
    return true;
}

TEST(aug_draw_determinism_and_keys) {
    rt_aug_op ops[5];
    standard_ops(ops, 32);
    rt_aug_pipeline p = {ops, 5, 32, 32, 0};
    rt_aug_params a[5], b[5];
    /* same key: same parameters */
    rt_aug_draw(&p, 32, 32, 99, 3, 17, 2, a);
    rt_aug_draw(&p, 32, 32, 99, 3, 17, 2, b);
    CHECK(params_equal(a, b, 5));
    /* changing any key component changes the view: count collisions of the
       crop box (about 1/2000 by chance) and of the jitter factors (never) */
    int same_box[4] = {0, 0, 0, 0}, same_fac[4] = {0, 0, 0, 0};
    for (uint32_t t = 0; t < 200; t++) {
        rt_aug_params base[5], other[5];
        rt_aug_draw(&p, 32, 32, 5, 1, t, 0, base);
        for (int which = 0; which < 4; which++) {
            uint64_t seed = 5 + (which == 0);
            uint32_t ep = 1 + (which == 1), im = t + 1000 * (which == 2), vw = (which == 3);
            rt_aug_draw(&p, 32, 32, seed, ep, im, vw, other);
            same_box[which] += base[0].top == other[0].top && base[0].left == other[0].left &&
                               base[0].height == other[0].height && base[0].width == other[0].width;
            same_fac[which] += base[2].factor[0] == other[2].factor[0];
        }
    }
    static const char *what[4] = {"seed", "epoch", "image", "view"};
    for (int which = 0; which < 4; which++) {
        CHECKF(same_box[which] <= 5, "%s: %d of 200 crop boxes unchanged", what[which], same_box[which]);
        CHECKF(same_fac[which] == 0, "%s: %d of 200 brightness factors unchanged", what[which], same_fac[which]);
    }
    /* per-op streams: an op's draws do not depend on the ops before it */
    rt_aug_op ops2[5];
    memcpy(ops2, ops, sizeof ops2);
    ops2[0].scale[0] = 0.9;                    /* other tries, other boxes */
    ops2[1].p = 1.0;
    rt_aug_pipeline p2 = {ops2, 5, 32, 32, 0};
    for (uint32_t v = 0; v < 50; v++) {
        rt_aug_draw(&p, 32, 32, 1, 0, 4, v, a);
        rt_aug_draw(&p2, 32, 32, 1, 0, 4, v, b);
        CHECK(b[1].apply == 1);
        CHECK(params_equal(&a[2], &b[2], 2));
    }
}

TEST(aug_draw_rates_and_ranges) {
    rt_aug_op ops[5];
    standard_ops(ops, 32);
    rt_aug_pipeline p = {ops, 5, 32, 32, 0};
    const int N = 20000;
    int nflip = 0, njit = 0, ngray = 0, perm_seen[256] = {0}, bad = 0;
    for (int v = 0; v < N; v++) {
        rt_aug_params par[5];
        rt_aug_draw(&p, 32, 32, 2024, 0, (uint32_t)(v / 8), (uint32_t)(v % 8), par);
        nflip += par[1].apply;
        njit += par[2].apply;
        ngray += par[3].apply;
        int code = 0, mask = 0;
        for (int j = 0; j < 4; j++) {
            code = code * 4 + par[2].order[j];
            mask |= 1 << par[2].order[j];
        }
        if (mask != 0xf) bad++;
        perm_seen[code & 255] = 1;
        for (int j = 0; j < 3; j++)
            if (!(par[2].factor[j] >= 0.2 - 1e-12 && par[2].factor[j] < 1.8)) bad++;
        if (!(par[2].factor[3] >= -0.2 && par[2].factor[3] < 0.2)) bad++;
        if (par[2].enabled != 0xf) bad++;
    }
    CHECKF(bad == 0, "%d bad jitter parameters", bad);
    /* binomial s.e. for N = 20000: <= 0.0036; allow 5 s.e. */
    CHECKF(fabs((double)nflip / N - 0.5) < 0.018, "flip rate %.4f", (double)nflip / N);
    CHECKF(fabs((double)njit / N - 0.8) < 0.015, "jitter rate %.4f", (double)njit / N);
    CHECKF(fabs((double)ngray / N - 0.2) < 0.015, "grayscale rate %.4f", (double)ngray / N);
    int nperm = 0;
    for (int i = 0; i < 256; i++) nperm += perm_seen[i];
    CHECKF(nperm == 24, "%d distinct jitter orders (want all 24)", nperm);
    /* a zero strength turns an adjustment off, as torchvision's None */
    ops[2].contrast = 0;
    ops[2].hue = 0;
    rt_aug_params par[5];
    rt_aug_draw(&p, 32, 32, 1, 1, 1, 1, par);
    CHECK(par[2].enabled == 0x5u);
    CHECK(par[2].factor[1] == 1.0 && par[2].factor[3] == 0.0);
}

/* ---- views and batches ---------------------------------------------------- */

static uint8_t *test_images(int n, int h, int w, int c, uint64_t seed) {
    uint8_t *px = malloc((size_t)n * (size_t)h * (size_t)w * (size_t)c);
    if (!px) return NULL;
    rt_stream s;
    rt_stream_init(&s, seed, RT_DOMAIN_TEST, 9, 9);
    for (size_t i = 0; i < (size_t)n * (size_t)h * (size_t)w * (size_t)c; i++) px[i] = (uint8_t)rt_stream_u32(&s);
    return px;
}

TEST(aug_batch_thread_count_invariant) {
    rt_aug_op ops[5];
    standard_ops(ops, 32);
    rt_aug_pipeline p = {ops, 5, 32, 32, 0};
    char err[256];
    REQUIREF(rt_aug_check(&p, 32, 32, 3, 3, err, sizeof err) == 0, "%s", err);
    const int n = 20, B = 7, K = 3;
    const int64_t idx[7] = {3, 19, 0, 5, 5, 11, 2};
    uint8_t *px = test_images(n, 32, 32, 3, 1);
    size_t row = 3 * 32 * 32, total = (size_t)K * B * row;
    float *x[4] = {malloc(total * sizeof(float)), malloc(total * sizeof(float)), malloc(total * sizeof(float)),
                   malloc(total * sizeof(float))};
    float *one = malloc(row * sizeof(float));
    REQUIRE(px && x[0] && x[1] && x[2] && x[3] && one);
    const int nth[4] = {1, 2, 3, 64};
    for (int t = 0; t < 4; t++) {   /* the views are made on the pool's threads */
        rt_pool_init(nth[t]);
        rt_augment_batch(&p, px, 32, 32, 3, 3, idx, B, K, 42, 7, nth[t], x[t]);
    }
    rt_pool_init(1);
    for (int t = 1; t < 4; t++)
        CHECKF(memcmp(x[0], x[t], total * sizeof(float)) == 0, "%d threads differ from 1", nth[t]);
    /* row k*B + i is view k of image idx[i], the same as a lone view */
    for (int k = 0; k < K; k++)
        for (int i = 0; i < B; i++) {
            rt_augment_view(&p, px + (size_t)idx[i] * 32 * 32 * 3, 32, 32, 3, 3, 42, 7, (uint32_t)idx[i],
                            (uint32_t)k, one);
            CHECKF(memcmp(one, x[0] + ((size_t)k * B + (size_t)i) * row, row * sizeof(float)) == 0,
                   "row %d*B+%d differs from its view", k, i);
        }
    /* image 5 appears twice in the batch: identical views (same key) */
    CHECK(memcmp(x[0] + 3 * row, x[0] + 4 * row, row * sizeof(float)) == 0);
    /* different views of one image differ */
    CHECK(memcmp(x[0], x[0] + (size_t)B * row, row * sizeof(float)) != 0);
    /* another epoch gives another batch */
    rt_augment_batch(&p, px, 32, 32, 3, 3, idx, B, K, 42, 8, 2, x[1]);
    CHECK(memcmp(x[0], x[1], total * sizeof(float)) != 0);
    for (int t = 0; t < 4; t++) free(x[t]);
    free(one);
    free(px);
}

TEST(aug_view_shape_and_normalisation) {
    /* no normalize step: values are v/255 exactly, in [0, 1] */
    rt_aug_op ops[5];
    standard_ops(ops, 24);
    rt_aug_pipeline p = {ops, 4, 24, 24, 0};      /* without the normalize op */
    uint8_t *px = test_images(1, 28, 30, 3, 3);
    const size_t row = 3 * 24 * 24;
    float *out = malloc((3 * 28 * 28 + 8) * sizeof(float));   /* >= row + 8 */
    REQUIRE(px && out);
    for (int i = 0; i < 8; i++) out[row + i] = -12345.0f;     /* canaries */
    char err[256];
    REQUIREF(rt_aug_check(&p, 28, 30, 3, 3, err, sizeof err) == 0, "%s", err);
    int offgrid = 0;
    for (uint32_t v = 0; v < 20; v++) {
        rt_augment_view(&p, px, 28, 30, 3, 3, 1, 0, 0, v, out);
        for (size_t i = 0; i < row; i++) {
            float lv = out[i] * 255.0f;
            if (!(out[i] >= 0 && out[i] <= 1) || (float)(uint8_t)(lv + 0.5f) / 255.0f != out[i]) offgrid++;
        }
    }
    CHECKF(offgrid == 0, "%d values are not v/255", offgrid);
    for (int i = 0; i < 8; i++) CHECK(out[row + i] == -12345.0f);

    /* with normalize: (x*std + mean)*255 is an integer level */
    p.nops = 5;
    REQUIREF(rt_aug_check(&p, 28, 30, 3, 3, err, sizeof err) == 0, "%s", err);
    double worst = 0;
    for (uint32_t v = 0; v < 20; v++) {
        rt_augment_view(&p, px, 28, 30, 3, 3, 1, 0, 0, v, out);
        for (size_t i = 0; i < row; i++) {
            int ch = (int)(i / (24 * 24));
            double lv = ((double)out[i] * ops[4].std[ch] + ops[4].mean[ch]) * 255.0;
            double e = fabs(lv - nearbyint(lv));
            if (e > worst) worst = e;
        }
    }
    CHECKF(worst < 1e-3, "normalised values off the level grid by %g", worst);

    /* a gray image (c = 1) as 3 equal channels; and c_out = 1 */
    uint8_t *g = test_images(1, 28, 28, 1, 4);
    REQUIRE(g);
    ops[2].hue = 0.3;                          /* irrelevant on gray */
    REQUIREF(rt_aug_check(&p, 28, 28, 1, 3, err, sizeof err) == 0, "%s", err);
    int unequal = 0;
    for (uint32_t v = 0; v < 10; v++) {
        rt_augment_view(&p, g, 28, 28, 1, 3, 5, 0, 0, v, out);
        for (size_t i = 0; i < 24 * 24; i++) {
            /* equal levels; floats differ only through per-channel mean/std */
            double l0 = ((double)out[i] * ops[4].std[0] + ops[4].mean[0]) * 255.0;
            double l1 = ((double)out[i + 576] * ops[4].std[1] + ops[4].mean[1]) * 255.0;
            double l2 = ((double)out[i + 1152] * ops[4].std[2] + ops[4].mean[2]) * 255.0;
            if (nearbyint(l0) != nearbyint(l1) || nearbyint(l0) != nearbyint(l2)) unequal++;
        }
    }
    CHECKF(unequal == 0, "%d gray pixels with unequal channels", unequal);
    REQUIREF(rt_aug_check(&p, 28, 30, 3, 1, err, sizeof err) == 0, "%s", err);
    out[576] = -12345.0f;
    rt_augment_view(&p, px, 28, 30, 3, 1, 1, 0, 0, 0, out);
    CHECK(out[576] == -12345.0f);              /* one plane written */

    /* rt_normalize_image on a gray image to 3 channels */
    const double mean[3] = {0.5, 0.5, 0.5}, std[3] = {0.5, 0.5, 0.5};
    rt_normalize_image(g, 28, 28, 1, 3, mean, std, out);
    CHECK(out[0] == out[784] && out[0] == out[1568]);
    CHECK(out[0] == ((float)g[0] / 255.0f - 0.5f) / 0.5f);
    free(g);
    free(out);
    free(px);
}

TEST(aug_random_crop_view) {
    /* the supervised pipeline: random crop 32 with 4-pixel zero padding +
       flip; its boxes lie in [0, 8] and the padding shows up as zeros */
    rt_aug_op ops[3];
    memset(ops, 0, sizeof ops);
    ops[0].kind = RT_AUG_RANDOM_CROP;
    ops[0].size = 32;
    ops[0].padding = 4;
    ops[1].kind = RT_AUG_HFLIP;
    ops[1].p = 0.5;
    rt_aug_pipeline p = {ops, 2, 32, 32, 0};
    char err[256];
    REQUIREF(rt_aug_check(&p, 32, 32, 3, 3, err, sizeof err) == 0, "%s", err);
    int seen[9][9];
    memset(seen, 0, sizeof seen);
    for (uint32_t v = 0; v < 2000; v++) {
        rt_aug_params par[2];
        rt_aug_draw(&p, 32, 32, 3, 0, 1, v, par);
        REQUIRE(par[0].top >= 0 && par[0].top <= 8 && par[0].left >= 0 && par[0].left <= 8);
        seen[par[0].top][par[0].left]++;
    }
    int empty = 0;
    for (int i = 0; i < 9; i++)
        for (int j = 0; j < 9; j++) empty += seen[i][j] == 0;
    CHECKF(empty == 0, "%d of 81 corners never drawn in 2000 views", empty);
    uint8_t img[32 * 32 * 3];
    memset(img, 200, sizeof img);
    rt_aug_params par[2];
    memset(par, 0, sizeof par);
    par[0].top = 0, par[0].left = 8, par[0].height = par[0].width = 32;
    float out[3 * 32 * 32];
    REQUIRE(rt_aug_apply(&p, par, img, 32, 32, 3, 3, out) == 0);
    CHECK(out[0] == 0.0f && out[3 * 32 + 31] == 0.0f);    /* top rows: padding */
    CHECK(out[4 * 32 + 0] == 200.0f / 255.0f && out[4 * 32 + 27] == 200.0f / 255.0f);
    CHECK(out[4 * 32 + 28] == 0.0f);                         /* right padding */
}

TEST(aug_check_rejects) {
    rt_aug_op ops[5];
    char err[256];
    struct { int field; double v; const char *want; } cases[] = {
        {0, -1, "size"}, {1, 0, "scale"}, {2, 0, "ratio"}, {3, 1.5, "p ="}, {4, -0.1, "strength"},
        {5, 0.6, "hue"}, {6, 0, "normalize"}, {7, 28, "not the pipeline's"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        standard_ops(ops, 32);
        rt_aug_pipeline p = {ops, 5, 32, 32, 0};
        switch (cases[k].field) {
        case 0: ops[0].size = (int)cases[k].v; break;
        case 1: ops[0].scale[0] = cases[k].v; break;
        case 2: ops[0].ratio[0] = cases[k].v; break;
        case 3: ops[1].p = cases[k].v; break;
        case 4: ops[2].contrast = cases[k].v; break;
        case 5: ops[2].hue = cases[k].v; break;
        case 6: ops[4].std[1] = cases[k].v; break;
        default: p.out_h = (int)cases[k].v; break;
        }
        err[0] = 0;
        CHECKF(rt_aug_check(&p, 32, 32, 3, 3, err, sizeof err) == -1, "case %zu accepted", k);
        CHECKF(strstr(err, cases[k].want) != NULL, "case %zu: message '%s'", k, err);
        CHECKF(strchr(err, '\n') == NULL, "case %zu: not one line", k);
    }
    standard_ops(ops, 32);
    rt_aug_pipeline p = {ops, 5, 32, 32, 0};
    CHECK(rt_aug_check(&p, 32, 32, 2, 3, err, sizeof err) == -1);
    CHECK(rt_aug_check(&p, 96, 96, 3, 3, err, sizeof err) == 0);
    rt_aug_op rc = {.kind = RT_AUG_RANDOM_CROP, .size = 40, .padding = 2};
    rt_aug_pipeline q = {&rc, 1, 40, 40, 0};
    CHECK(rt_aug_check(&q, 32, 32, 3, 3, err, sizeof err) == -1);
    CHECK(rt_aug_check(&q, 36, 36, 3, 3, err, sizeof err) == 0);
}

/* Gray images (1 channel made RGB, RGB with r = g = b) go through the
   pipeline as one channel (rt_aug_gray_fast): the same bytes as the
   three-channel path, over many views, with and without normalisation,
   to 3 and to 1 output channels, and when the pipeline is told the images
   are gray (gray_input, as a gray data set's loader says); and an RGB image
   with one coloured pixel is not taken for gray. */
TEST(aug_gray_fast_path_is_exact) {
    enum { H = 32, W = 32 };
    rt_aug_op ops[5];
    standard_ops(ops, H);
    rt_stream s;
    rt_stream_init(&s, 11, 0, 0, 0);
    static uint8_t g1[H * W], g3[H * W * 3];
    static float a[3 * H * W], b[3 * H * W];
    int differ = 0, cases = 0;
    for (int img = 0; img < 40; img++) {
        for (int i = 0; i < H * W; i++) {
            int v = (i / W) % 7 == 0 ? 0 : (int)rt_stream_below(&s, 256);   /* some zero rows, as padded digits */
            g1[i] = (uint8_t)v;
            g3[3 * i] = g3[3 * i + 1] = g3[3 * i + 2] = (uint8_t)v;
        }
        if (img == 39) g3[3 * 100 + 1] ^= 1;   /* no longer gray */
        for (int np = 4; np <= 5; np++)
            for (int c_out = 1; c_out <= 3; c_out += 2)
                for (uint32_t v = 0; v < 12; v++) {
                    rt_aug_pipeline p = {ops, np, H, W, 0};
                    rt_aug_params par[5];
                    rt_aug_draw(&p, H, W, 5, 0, (uint32_t)img, v, par);
                    for (int in_c = 1; in_c <= 3; in_c += 2) {
                        const uint8_t *src = in_c == 1 ? g1 : g3;
                        if (in_c == 1 && c_out == 1) continue;
                        rt_aug_gray_fast = true;
                        REQUIRE(rt_aug_apply(&p, par, src, H, W, in_c, c_out, a) == 0);
                        rt_aug_gray_fast = false;
                        REQUIRE(rt_aug_apply(&p, par, src, H, W, in_c, c_out, b) == 0);
                        rt_aug_gray_fast = true;
                        cases++;
                        differ += memcmp(a, b, sizeof(float) * (size_t)(c_out * H * W)) != 0;
                        if (in_c == 3 && img != 39) {   /* the loader's word that it is gray: no check */
                            p.gray_input = 1;
                            REQUIRE(rt_aug_apply(&p, par, src, H, W, in_c, c_out, a) == 0);
                            p.gray_input = 0;
                            cases++;
                            differ += memcmp(a, b, sizeof(float) * (size_t)(c_out * H * W)) != 0;
                        }
                    }
                }
    }
    CHECKF(differ == 0, "%d of %d views differ between the gray and the RGB path", differ, cases);
}
