/*
** test_aug_dist.c: the random parameters of rrc's augmentation views are
** drawn from the same distributions as torchvision's (METHOD.md
** "Augmentations"; runtime/rt_augment.c), and augmented views of fixed
** images have the same per-pixel mean and variance.
**
** The reference is tests/golden/aug_dist/ (made by make_aug_dist_goldens.py
** with torchvision 0.14's own code: RandomResizedCrop.get_params,
** RandomHorizontalFlip / RandomApply / RandomGrayscale forward,
** ColorJitter.get_params, the full Compose for the pixels): histograms of
** 200,000 draws with fixed bin edges, and per-pixel moments over 2,000
** views of 8 images. Here rrc draws as many (rt_aug_draw, rt_augment_batch),
** bins them with the same edges and compares:
**
**   histograms   two-sample chi-square (unequal sizes: sum over groups of
**                (sqrt(Nt/Nr) r - sqrt(Nr/Nt) t)^2 / (r + t), dof = groups
**                - 1). Adjacent bins are merged until a group holds at
**                least MIN_GROUP draws of the two samples together, so the
**                chi-square approximation holds (and a bin torchvision never
**                fills but rrc fills MIN_GROUP times stands alone and fails).
**                Fails when p < P_FAIL = 1e-4.
**   pixels       per pixel and channel, z of the difference of the means
**                (s.e. from both variances) and of the variances (s.e. from
**                both fourth central moments); fails when any |z| exceeds
**                the two-sided Bonferroni bound for P_FAIL over all 49,152
**                of them (|z| > 6.00). And per image and channel, averaged
**                over the 1,024 pixels: the mean and the variance, with
**                standard errors from the spread over the views of each
**                view's spatial mean (spatial mean squared deviation), which
**                holds the strong correlation between pixels; fails when
**                |z| exceeds the Bonferroni bound over those 48 (4.75).
**
** rrc's draws are deterministic (fixed seeds), so a pass stays a pass; the
** false-alarm rate P_FAIL only matters when the generator's stream layout
** changes. tests/golden/README.md records the thresholds and the measured
** statistics.
*/
#include "data_util.h"
#include "golden_util.h"
#include "test.h"

#include "rt_augment.h"
#include "rt_pool.h"
#include "rt_safetensors.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define P_FAIL 1e-4
#define MIN_GROUP 20
#define N_PIX_VIEWS 2000
#define SEED 1

/* ---- statistics -------------------------------------------------------- */

/* Regularised upper incomplete gamma Q(a, x) (Numerical Recipes' gammq:
   series below a + 1, Lentz's continued fraction above). */
static double gamma_q(double a, double x) {
    if (x <= 0) return 1.0;
    double lg = lgamma(a);
    if (x < a + 1) {
        double ap = a, sum = 1.0 / a, del = sum;
        for (int n = 0; n < 10000; n++) {
            ap += 1;
            del *= x / ap;
            sum += del;
            if (fabs(del) < fabs(sum) * 1e-15) break;
        }
        return 1.0 - sum * exp(-x + a * log(x) - lg);
    }
    double b = x + 1 - a, c = 1.0 / 1e-300, d = 1.0 / b, h = d;
    for (int i = 1; i < 10000; i++) {
        double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < 1e-300) d = 1e-300;
        c = b + an / c;
        if (fabs(c) < 1e-300) c = 1e-300;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) < 1e-15) break;
    }
    return exp(-x + a * log(x) - lg) * h;
}

/* The two-sided normal bound z with P(|Z| > z) = alpha. */
static double normal_bound(double alpha) {
    double lo = 0, hi = 40;
    for (int i = 0; i < 200; i++) {
        double mid = 0.5 * (lo + hi);
        if (erfc(mid / sqrt(2.0)) > alpha) lo = mid;
        else hi = mid;
    }
    return hi;
}

/* ---- the reference histograms ----------------------------------------- */

typedef struct hist {
    const char *name;
    int nedges;            /* nedges + 1 counts: below, nedges - 1 bins, at/above */
    double *edges;
    int64_t *ref, *ours;
    int64_t nref, nours;
} hist;

static json_t *params_json(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/aug_dist/params.json", golden_dir());
    json_error_t e;
    json_t *root = json_load_file(path, 0, &e);
    if (!root) test_fail(__FILE__, __LINE__, "%s: %s (line %d); run make goldens", path, e.text, e.line);
    return root;
}

/* meta.<key> of params.json: how many draws the reference made (rrc makes
   as many), or 0 with a recorded failure. */
static uint32_t meta_count(json_t *root, const char *key) {
    json_int_t n = json_integer_value(json_object_get(json_object_get(root, "meta"), key));
    if (n <= 0 || n > 100000000) {
        test_fail(__FILE__, __LINE__, "params.json: bad meta.%s", key);
        return 0;
    }
    return (uint32_t)n;
}

static void hist_free(hist *h) {
    free(h->edges);
    free(h->ref);
    free(h->ours);
    memset(h, 0, sizeof *h);
}

/* The reference histogram `name` of root, with zeroed counts of ours. */
static bool hist_load(json_t *root, const char *name, hist *h) {
    memset(h, 0, sizeof *h);
    h->name = name;
    json_t *o = json_object_get(json_object_get(root, "hists"), name);
    json_t *edges = json_object_get(o, "edges"), *counts = json_object_get(o, "counts");
    if (!json_is_array(edges) || !json_is_array(counts) || json_array_size(edges) < 2 ||
        json_array_size(counts) != json_array_size(edges) + 1) {
        test_fail(__FILE__, __LINE__, "params.json: no histogram '%s'", name);
        return false;
    }
    h->nedges = (int)json_array_size(edges);
    h->edges = malloc((size_t)h->nedges * sizeof *h->edges);
    h->ref = calloc((size_t)h->nedges + 1, sizeof *h->ref);
    h->ours = calloc((size_t)h->nedges + 1, sizeof *h->ours);
    if (!h->edges || !h->ref || !h->ours) {
        hist_free(h);
        test_fail(__FILE__, __LINE__, "out of memory");
        return false;
    }
    for (int i = 0; i < h->nedges; i++) h->edges[i] = json_number_value(json_array_get(edges, (size_t)i));
    for (int i = 0; i <= h->nedges; i++) {
        h->ref[i] = (int64_t)json_integer_value(json_array_get(counts, (size_t)i));
        h->nref += h->ref[i];
    }
    int64_t n = (int64_t)json_integer_value(json_object_get(o, "n"));
    if (n != h->nref) test_fail(__FILE__, __LINE__, "params.json: '%s' counts sum to %lld, n = %lld", name,
                                (long long)h->nref, (long long)n);
    return true;
}

/* numpy.searchsorted(edges, v, side="right"): the number of edges <= v */
static void hist_add(hist *h, double v) {
    int lo = 0, hi = h->nedges;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (h->edges[mid] <= v) lo = mid + 1;
        else hi = mid;
    }
    h->ours[lo]++;
    h->nours++;
}

/* The two-sample chi-square of ref and ours (see the top); prints it and
   fails the test when p < P_FAIL. Groups: consecutive bins until the two
   samples together hold MIN_GROUP draws; a short remainder joins the last
   group. */
static void hist_compare(const hist *h) {
    if (h->nref <= 0 || h->nours <= 0) {
        test_fail(__FILE__, __LINE__, "%s: empty sample (%lld, %lld)", h->name, (long long)h->nref,
                  (long long)h->nours);
        return;
    }
    int64_t *gr = calloc((size_t)h->nedges + 1, sizeof *gr), *go = calloc((size_t)h->nedges + 1, sizeof *go);
    if (!gr || !go) {
        free(gr);
        free(go);
        test_fail(__FILE__, __LINE__, "out of memory");
        return;
    }
    int groups = 0;
    for (int i = 0; i <= h->nedges; i++) {
        gr[groups] += h->ref[i];
        go[groups] += h->ours[i];
        if (gr[groups] + go[groups] >= MIN_GROUP) groups++;
    }
    if (gr[groups] + go[groups] > 0) {
        if (groups == 0) groups = 1;
        else {
            gr[groups - 1] += gr[groups];
            go[groups - 1] += go[groups];
        }
    }
    double kr = sqrt((double)h->nours / (double)h->nref), ko = sqrt((double)h->nref / (double)h->nours);
    double chi2 = 0;
    for (int g = 0; g < groups; g++) {
        double d = kr * (double)gr[g] - ko * (double)go[g];
        chi2 += d * d / (double)(gr[g] + go[g]);
    }
    free(gr);
    free(go);
    int dof = groups - 1;
    double p = dof > 0 ? gamma_q(dof / 2.0, chi2 / 2.0) : 1.0;
    printf("    %-22s n %6lld/%6lld  groups %4d  chi2 %8.2f  dof %4d  p %.3g\n", h->name, (long long)h->nref,
           (long long)h->nours, groups, chi2, dof, p);
    CHECKF(p >= P_FAIL, "%s: rrc's distribution differs from torchvision's: chi2 %.2f, dof %d, p %.3g < %g",
           h->name, chi2, dof, p, P_FAIL);
}

/* ---- rrc's draws --------------------------------------------------------- */


static const double FASHION_MEAN[3] = {0.2190, 0.2190, 0.2190}, FASHION_STD[3] = {0.3318, 0.3318, 0.3318};
static const double CIFAR_MEAN[3] = {0.491, 0.482, 0.447}, CIFAR_STD[3] = {0.247, 0.243, 0.262};

/* View v of the sample: keyed as in training with K = 4 views per image,
   over several epochs. */
static void draw_view(const rt_aug_pipeline *p, int h, int w, uint32_t v, rt_aug_params *par) {
    rt_aug_draw(p, h, w, SEED, v / 50000, (v / 4) % 12500, v % 4, par);
}

/* Crop boxes of an h x w image: the histograms `prefix`.{area, log_ratio,
   height, width, top, left, hw, fallback}. */
static void crop_case(json_t *root, const char *prefix, int H, int W, uint32_t n) {
    static const char *what[8] = {"area", "log_ratio", "height", "width", "top", "left", "hw", "fallback"};
    hist hs[8];
    char names[8][64];
    int ok = 1;
    for (int k = 0; k < 8; k++) {
        snprintf(names[k], sizeof names[k], "%s.%s", prefix, what[k]);
        ok &= hist_load(root, names[k], &hs[k]);
    }
    if (ok) {
        rt_aug_op ops[5];
        test_method_pipeline(ops, 32, CIFAR_MEAN, CIFAR_STD);
        rt_aug_pipeline p = {ops, 1, 32, 32, 0};      /* the crop alone */
        for (uint32_t v = 0; v < n; v++) {
            rt_aug_params par;
            draw_view(&p, H, W, v, &par);
            int h = par.height, w = par.width;
            hist_add(&hs[0], (double)(h * w) / (double)(H * W));
            hist_add(&hs[1], log((double)w / (double)h));
            hist_add(&hs[2], h);
            hist_add(&hs[3], w);
            hist_add(&hs[4], par.top);
            hist_add(&hs[5], par.left);
            hist_add(&hs[6], (double)((h - 1) * W + (w - 1)));
            hist_add(&hs[7], par.fallback);
        }
        for (int k = 0; k < 8; k++) hist_compare(&hs[k]);
    }
    for (int k = 0; k < 8; k++) hist_free(&hs[k]);
}

TEST(aug_dist_crop_boxes) {
    json_t *root = params_json();
    REQUIRE(root);
    uint32_t n = meta_count(root, "n_views"), nt = meta_count(root, "n_thin");
    crop_case(root, "crop32", 32, 32, n);        /* METHOD.md: 32x32 inputs */
    crop_case(root, "crop10x40", 10, 40, nt);    /* ten failed tries for ~9%: the fallback, */
    crop_case(root, "crop40x10", 40, 10, nt);    /* both of its branches */
    json_decref(root);
}

/* Lexicographic rank of a permutation of 0..3 (as the golden script). */
static int perm_rank(const int o[4]) {
    int r = 0;
    for (int i = 0; i < 4; i++) {
        int smaller = 0;
        for (int j = i + 1; j < 4; j++) smaller += o[j] < o[i];
        r = r * (4 - i) + smaller;
    }
    return r;
}

TEST(aug_dist_flip_jitter_grayscale) {
    enum { NH = 11 };
    static const char *names[NH] = {"flip", "jitter_apply", "gray", "apply_joint", "jitter.order", "jitter.first",
                                    "jitter.brightness", "jitter.contrast", "jitter.saturation", "jitter.hue",
                                    "jitter.hue_shift"};
    json_t *root = params_json();
    REQUIRE(root);
    hist hs[NH];
    int ok = 1;
    for (int k = 0; k < NH; k++) ok &= hist_load(root, names[k], &hs[k]);
    if (ok) {
        rt_aug_op ops[5];
        test_method_pipeline(ops, 32, CIFAR_MEAN, CIFAR_STD);
        rt_aug_pipeline p = {ops, 5, 32, 32, 0};
        uint32_t n = meta_count(root, "n_views"), off = 0;
        for (uint32_t v = 0; v < n; v++) {
            rt_aug_params par[5];
            draw_view(&p, 32, 32, v, par);
            int fl = par[1].apply != 0, jt = par[2].apply != 0, gr = par[3].apply != 0;
            hist_add(&hs[0], fl);
            hist_add(&hs[1], jt);
            hist_add(&hs[2], gr);
            hist_add(&hs[3], fl + 2 * jt + 4 * gr);
            if (!jt) continue;                   /* torchvision draws them only then */
            off += par[2].enabled != 0xfu;       /* every adjustment is on */
            hist_add(&hs[4], perm_rank(par[2].order));
            hist_add(&hs[5], par[2].order[0]);
            for (int j = 0; j < 4; j++) hist_add(&hs[6 + j], par[2].factor[j]);
            hist_add(&hs[10], (int)(par[2].factor[3] * 255.0));   /* np.uint8's truncation, signed */
        }
        CHECKF(off == 0, "%u jittered views with an adjustment off", off);
        for (int k = 0; k < NH; k++) hist_compare(&hs[k]);
    }
    for (int k = 0; k < NH; k++) hist_free(&hs[k]);
    json_decref(root);
}

/* ---- per-pixel moments of views ---------------------------------------------- */

/* The 8 source images of make_aug_dist_goldens.py (source_image), 32x32x3:
   0..3 gray Fashion-MNIST-like shapes zero-padded from 28x28, 4..7 colour. */
static void source_image(int k, uint8_t *a) {
    memset(a, 0, 32 * 32 * 3);
    if (k < 4) {
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) {
                int X = 2 * x - 27, Y = 2 * y - 27, inside;
                if (k == 0) inside = (abs(X) <= 20 && abs(Y) <= 24) || (abs(Y + 18) <= 6 && abs(X) <= 26);
                else if (k == 1) inside = X * X + 2 * Y * Y <= 700;
                else if (k == 2)
                    inside = (abs(X - 9) <= 6 || abs(X + 9) <= 6 || Y <= -17) && abs(Y) <= 25 && abs(X) <= 16;
                else inside = abs(X) + abs(Y) <= 30;
                if (inside) {
                    int v = 40 + (x * 7 + y * 11 + k * 40) % 160 + ((x * y + k) % 5) * 10;
                    uint8_t *px = a + ((size_t)(y + 2) * 32 + (size_t)(x + 2)) * 3;
                    px[0] = px[1] = px[2] = (uint8_t)v;
                }
            }
        return;
    }
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            int r = (x * 8 + k * 37) & 255, g = (y * 8 + x * 3 + k * 53) & 255, b = ((x ^ y) * 8 + k * 71) & 255;
            if (k == 6 && x + y < 20) r = g = b = (r + g + b) / 3;
            if (k == 7) {
                if (((x / 4) + (y / 4)) & 1) r = 230, g = 40 + (x * y * 7) % 23, b = 60;
                else r = 20, g = 200, b = 240 - (x * y * 7) % 23;
            }
            uint8_t *px = a + ((size_t)y * 32 + (size_t)x) * 3;
            px[0] = (uint8_t)r, px[1] = (uint8_t)g, px[2] = (uint8_t)b;
        }
}

static uint32_t fnv1a32(const uint8_t *p, size_t n) {
    uint32_t h = UINT32_C(2166136261);
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * UINT32_C(16777619);
    return h;
}

static bool f32_tensor(const rt_st_file *f, const char *name, size_t n, float *out) {
    const rt_tensor *t = rt_st_find(f, name);
    if (!t || t->dtype != RT_F32 || t->nbytes != n * sizeof(float)) {
        test_fail(__FILE__, __LINE__, "pixels.safetensors: no F32 tensor '%s' of %zu values", name, n);
        return false;
    }
    memcpy(out, t->data, n * sizeof(float));
    return true;
}

TEST(aug_dist_pixel_moments) {
    enum { NIMG = 8, PLANE = 3 * 32 * 32, NPX = 32 * 32 };
    const size_t nall = (size_t)NIMG * PLANE;
    char path[1024];
    snprintf(path, sizeof path, "%s/aug_dist/pixels.safetensors", golden_dir());
    rt_st_file f;
    REQUIRE(golden_read(path, &f));
    float *tm = malloc(nall * sizeof *tm), *tv = malloc(nall * sizeof *tv), *t4 = malloc(nall * sizeof *t4);
    float tvm[NIMG * 3], tvq[NIMG * 3];
    float *x = malloc((size_t)N_PIX_VIEWS * PLANE * sizeof *x);
    uint8_t *src = malloc((size_t)NIMG * PLANE);
    double *m = malloc(PLANE * sizeof *m), *var = malloc(PLANE * sizeof *var);
    const rt_tensor *sums = rt_st_find(&f, "fnv1a");
    bool ok = tm && tv && t4 && x && src && m && var && f32_tensor(&f, "mean", nall, tm) &&
              f32_tensor(&f, "var", nall, tv) && f32_tensor(&f, "m4", nall, t4) &&
              f32_tensor(&f, "view_mean_var", NIMG * 3, tvm) && f32_tensor(&f, "view_sq_var", NIMG * 3, tvq) && sums &&
              sums->dtype == RT_I64 && sums->nbytes == 8 * NIMG;
    CHECK(ok);
    /* per pixel: Bonferroni over every z; pixel-averaged: over 8 x 3 x 2 */
    const double zpix = normal_bound(P_FAIL / (2.0 * (double)nall)), zavg = normal_bound(P_FAIL / (NIMG * 3 * 2));
    const double n = N_PIX_VIEWS;
    for (int k = 0; ok && k < NIMG; k++) {
        uint8_t *img = src + (size_t)k * PLANE;
        source_image(k, img);
        int64_t want;
        memcpy(&want, (const char *)sums->data + 8 * k, 8);
        CHECKF((int64_t)fnv1a32(img, PLANE) == want, "image %d differs from the golden script's", k);
        rt_aug_op ops[5];
        test_method_pipeline(ops, 32, k < 4 ? FASHION_MEAN : CIFAR_MEAN, k < 4 ? FASHION_STD : CIFAR_STD);
        rt_aug_pipeline p = {ops, 5, 32, 32, 0};
        char err[256];
        REQUIREF(rt_aug_check(&p, 32, 32, 3, 3, err, sizeof err) == 0, "%s", err);
        /* views 0..N-1 of image k, made as in training (B = 1, K = N) */
        const int64_t idx[1] = {k};
        rt_augment_batch(&p, src, 32, 32, 3, 3, idx, 1, N_PIX_VIEWS, SEED, 0, 2, x);
        /* per pixel: z of the means (s.e. from both variances) and of the
           variances (s.e. from both fourth central moments) */
        double zmax[2] = {0, 0};
        int zi[2] = {0, 0};
        for (int i = 0; i < PLANE; i++) {
            double s = 0;
            for (int v = 0; v < N_PIX_VIEWS; v++) s += x[(size_t)v * PLANE + (size_t)i];
            double mi = s / n, s2 = 0, s4 = 0;
            for (int v = 0; v < N_PIX_VIEWS; v++) {
                double d = x[(size_t)v * PLANE + (size_t)i] - mi;
                s2 += d * d;
                s4 += d * d * d * d;
            }
            m[i] = mi;
            var[i] = s2 / (n - 1);
            double m4 = s4 / n;
            size_t g = (size_t)k * PLANE + (size_t)i;
            double gm = tm[g], gv = tv[g], g4 = t4[g];
            double se_m = sqrt(var[i] / n + gv / n);
            double se_v = sqrt(fmax(m4 - var[i] * var[i], 0) / n + fmax(g4 - gv * gv, 0) / n);
            if (se_m == 0 || se_v == 0) {
                /* constant in both samples: the same constant */
                CHECKF(fabs(mi - gm) < 1e-5 && fabs(var[i] - gv) < 1e-5, "image %d value %d: constant %g vs %g", k, i,
                       mi, gm);
                continue;
            }
            double z[2] = {(mi - gm) / se_m, (var[i] - gv) / se_v};
            for (int j = 0; j < 2; j++)
                if (fabs(z[j]) > zmax[j]) zmax[j] = fabs(z[j]), zi[j] = i;
        }
        static const char *what[2] = {"mean", "variance"};
        for (int j = 0; j < 2; j++)
            CHECKF(zmax[j] <= zpix, "image %d: per-pixel %s differs from torchvision's: |z| %.2f > %.2f at ch %d y %d x %d",
                   k, what[j], zmax[j], zpix, zi[j] / NPX, zi[j] / 32 % 32, zi[j] % 32);
        /* per channel, averaged over the pixels: the s.e. comes from the
           spread over the views of each view's spatial mean (and spatial
           mean squared deviation), so the pixels' correlation is in it */
        double za[2][3];
        for (int c = 0; c < 3; c++) {
            double am = 0, av = 0, gam = 0, gav = 0;
            for (int i = c * NPX; i < (c + 1) * NPX; i++) {
                am += m[i], av += var[i];
                gam += tm[(size_t)k * PLANE + (size_t)i], gav += tv[(size_t)k * PLANE + (size_t)i];
            }
            am /= NPX, av /= NPX, gam /= NPX, gav /= NPX;
            double sm = 0, ssm = 0, sq = 0, ssq = 0;
            for (int v = 0; v < N_PIX_VIEWS; v++) {
                const float *xv = x + (size_t)v * PLANE;
                double a = 0, q = 0;
                for (int i = c * NPX; i < (c + 1) * NPX; i++) {
                    a += xv[i];
                    q += (xv[i] - m[i]) * (xv[i] - m[i]);
                }
                a /= NPX, q /= NPX;
                sm += a, ssm += a * a, sq += q, ssq += q * q;
            }
            double vm = (ssm - sm * sm / n) / (n - 1), vq = (ssq - sq * sq / n) / (n - 1);
            za[0][c] = (am - gam) / sqrt(vm / n + tvm[k * 3 + c] / n);
            za[1][c] = (av - gav) / sqrt(vq / n + tvq[k * 3 + c] / n);
            for (int j = 0; j < 2; j++)
                CHECKF(fabs(za[j][c]) <= zavg, "image %d channel %d: pixel-averaged %s differs from torchvision's: "
                       "z %.2f, |z| > %.2f", k, c, what[j], za[j][c], zavg);
        }
        printf("    image %d  per pixel max|z| mean %.2f var %.2f   channel-averaged z mean %+.2f %+.2f %+.2f"
               "  var %+.2f %+.2f %+.2f\n", k, zmax[0], zmax[1], za[0][0], za[0][1], za[0][2], za[1][0], za[1][1],
               za[1][2]);
    }
    printf("    bounds: per pixel |z| <= %.2f (Bonferroni over %zu), channel-averaged |z| <= %.2f (over %d)\n", zpix,
           2 * nall, zavg, NIMG * 3 * 2);
    free(tm);
    free(tv);
    free(t4);
    free(x);
    free(src);
    free(m);
    free(var);
    rt_st_free(&f);
}
