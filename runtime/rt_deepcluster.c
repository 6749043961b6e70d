/*
** rt_deepcluster.c: DeepCluster's outer loop (BASELINES.md 3), the part of
** an epoch that happens before its steps, and its views.
**
** At the start of each epoch, in the reference's order:
**   1. the head's last linear layer is reset: weight ~ N(0, 0.01), bias 0
**      (its Adam moments are kept, as the reference keeps them);
**   2. eval-mode backbone features of every training image, each through
**      the spec's (crop-flip) pipeline, as the reference's loader carries
**      the train transform;
**   3. PCA whitening to rt_pca_whiten_dim(F) components and L2
**      normalisation (rt_cluster.c);
**   4. k-means++ with 5 restarts, at most 30 Lloyd iterations each;
**   5. the loss weights w_c = 1 - n_c / N.
** Then the steps train on the pseudolabels with the reference's "reassigned
** dataset" view: the train transform of the image, turned back into an
** 8-bit image as torchvision's to_pil_image does (value * 255 in float,
** truncated toward zero, wrapped mod 256), and the train transform again.
**
** Random streams, all keyed by (seed, epoch): the features' views are view
** 0 of each image (RT_DOMAIN_AUGMENT), the training views' two draws views 1
** and 2, k-means stream `epoch` of RT_CLUSTER_DOMAIN, the reset the init
** stream of the layer's names under a seed mixed with the epoch. So an
** epoch's clustering depends only on the parameters at its start: a run
** resumed from an epoch's checkpoint clusters exactly as the uninterrupted
** run did.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_cluster.h"
#include "rt_deepcluster.h"
#include "rt_init.h"
#include "rt_pool.h"

int rt_dc_init(rt_dc *dc, int64_t n, int64_t F, int k, char *err, size_t errlen) {
    memset(dc, 0, sizeof *dc);
    if (k < 2 || k > n) {
        snprintf(err, errlen, "deepcluster: %d clusters for %lld images (need 2 <= clusters <= images)", k, (long long)n);
        return -1;
    }
    dc->n = n;
    dc->F = F;
    dc->k = k;
    dc->labels = malloc((size_t)n * sizeof *dc->labels);
    dc->w = malloc((size_t)k * sizeof *dc->w);
    dc->feat = malloc((size_t)(n * F) * sizeof *dc->feat);
    dc->white = malloc((size_t)(n * rt_pca_whiten_dim(F)) * sizeof *dc->white);
    if (!dc->labels || !dc->w || !dc->feat || !dc->white) {
        rt_dc_free(dc);
        snprintf(err, errlen, "deepcluster: out of memory for the features of %lld images", (long long)n);
        return -1;
    }
    return 0;
}

void rt_dc_free(rt_dc *dc) {
    free(dc->labels);
    free(dc->w);
    free(dc->feat);
    free(dc->white);
    memset(dc, 0, sizeof *dc);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Step 1: the reset of `layer`.weight and .bias in PARAM. */
static int reset_layer(rt_model *m, const char *layer, uint64_t seed, int epoch, char *err, size_t errlen) {
    const rt_entry *e = m->p->train_full;
    char name[512];
    /* a seed per epoch: the golden ratio's odd multiplier spreads epochs over
       the seed space, so no two epochs (or runs of nearby seeds) share draws */
    uint64_t s = seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(epoch + 1));
    for (int b = 0; b < 2; b++) {
        snprintf(name, sizeof name, "%s.%s", layer, b ? "bias" : "weight");
        const rt_step_tensor *t = rt_entry_tensor(e, name);
        if (!t || t->region != RT_REGION_PARAM) {
            snprintf(err, errlen, "deepcluster: the program has no parameter %s to reset", name);
            return -1;
        }
        int64_t n = 1;
        for (int d = 0; d < t->rank; d++) n *= t->dim[d];
        rt_init_fill(rt_model_tensor(m, t), n, b ? (rt_init){RT_INIT_CONST, 0} : (rt_init){RT_INIT_NORMAL, 0.01}, s, name);
    }
    return 0;
}

/* Step 2: features of every image's view 0 through the features entry. */
static void features(rt_dc *dc, rt_model *m, const rt_aug_pipeline *pipe, const rt_dataset *d, uint64_t seed, int epoch,
                     int nthreads) {
    const rt_entry *e = m->p->features;
    const rt_step_tensor *x = rt_entry_tensor(e, "x"), *f = rt_entry_tensor(e, "features");
    int64_t R = e->B, F = dc->F, img = (int64_t)m->p->in_c * m->p->in_h * m->p->in_w;
    float *xp = rt_model_tensor(m, x), *fp = rt_model_tensor(m, f);
    int64_t *idx = malloc((size_t)R * sizeof *idx);
    if (!idx) abort();
    for (int64_t i0 = 0; i0 < d->n; i0 += R) {
        int64_t rows = i0 + R <= d->n ? R : d->n - i0;
        for (int64_t r = 0; r < rows; r++) idx[r] = i0 + r;
        /* eval-mode BatchNorm treats rows independently: zero rows pad the last chunk */
        memset(xp + rows * img, 0, (size_t)((R - rows) * img) * sizeof(float));
        rt_augment_batch(pipe, d->pixels, d->h, d->w, d->c, m->p->in_c, idx, (int)rows, 1, seed, (uint32_t)epoch, nthreads, xp);
        rt_model_run(m, e);
        memcpy(dc->feat + i0 * F, fp, (size_t)(rows * F) * sizeof(float));
    }
    free(idx);
}

int rt_dc_epoch(rt_dc *dc, rt_model *m, const rt_aug_pipeline *pipe, const rt_dataset *d, uint64_t seed, int epoch, int nthreads,
                rt_dc_report *rep, char *err, size_t errlen) {
    const rt_program *p = m->p;
    double t0 = now();
    memset(rep, 0, sizeof *rep);
    if (reset_layer(m, p->reset_layer, seed, epoch, err, errlen) != 0) return -1;
    features(dc, m, pipe, d, seed, epoch, nthreads);
    int64_t dim = rt_pca_whiten_dim(dc->F);
    rt_pca_result pr;
    if (rt_pca_whiten(dc->feat, dc->n, dc->F, dim, true, dc->white, NULL, &pr, err, errlen) != 0) return -1;
    rep->null_comps = pr.null_comps;
    rep->zero_rows = pr.zero_rows;
    rt_kmeans_opts ko = rt_kmeans_defaults(dc->k, seed);
    ko.stream = (uint32_t)epoch;
    rt_kmeans_result kr;
    float *centres = malloc((size_t)(dc->k * dim) * sizeof *centres);
    if (!centres) {
        snprintf(err, errlen, "deepcluster: out of memory for %d centres", dc->k);
        return -1;
    }
    int rc = rt_kmeans(dc->white, dc->n, dim, &ko, dc->labels, centres, &kr, err, errlen);
    free(centres);
    if (rc != 0) return -1;
    if (rt_cluster_weights(dc->labels, dc->n, dc->k, dc->w, err, errlen) != 0) return -1;
    rep->inertia = kr.inertia;
    rep->iterations = kr.iterations;
    rep->empty = kr.empty;
    rep->nmi = NAN;
    if (d->labels && rt_nmi(dc->labels, d->labels, dc->n, &rep->nmi, err, errlen) != 0) return -1;
    rep->seconds = now() - t0;
    return 0;
}

/* ---- the training views ---- */

uint8_t rt_to_pil_byte(float v) {
    float t = v * 255.0f;   /* mul(255) in float32 */
    /* .byte(): toward zero, then mod 256 (x86's cvttss2si and a wrap; the
       int32 range is clamped first, as C leaves wider values undefined) */
    int32_t q = t >= 2147483520.0f ? INT32_MAX : t <= -2147483648.0f ? INT32_MIN : (int32_t)t;
    return (uint8_t)(uint32_t)q;
}

typedef struct ViewJob {
    const rt_aug_pipeline *pipe;
    const rt_dataset *d;
    int c_out, nthreads, B;
    const int64_t *idx;
    uint64_t seed;
    uint32_t epoch;
    float *x;
} ViewJob;

static void view_rows(void *ctx, int t) {
    const ViewJob *j = ctx;
    int S = j->pipe->out_h, W = j->pipe->out_w, C = j->c_out;
    int64_t plane = (int64_t)S * W, img = C * plane;
    float *tmp = malloc((size_t)img * sizeof *tmp);
    uint8_t *u8 = malloc((size_t)img);
    if (!tmp || !u8) abort();   /* as rt_augment_view: no error return */
    size_t src_bytes = (size_t)j->d->h * (size_t)j->d->w * (size_t)j->d->c;
    for (int i = t; i < j->B; i += j->nthreads) {
        uint32_t id = (uint32_t)j->idx[i];
        rt_augment_view(j->pipe, j->d->pixels + (size_t)j->idx[i] * src_bytes, j->d->h, j->d->w, j->d->c, C, j->seed, j->epoch, id, 1,
                        tmp);
        for (int c = 0; c < C; c++)   /* CHW float -> HWC bytes */
            for (int64_t k = 0; k < plane; k++) u8[k * C + c] = rt_to_pil_byte(tmp[c * plane + k]);
        rt_augment_view(j->pipe, u8, S, W, C, C, j->seed, j->epoch, id, 2, j->x + (int64_t)i * img);
    }
    free(tmp);
    free(u8);
}

void rt_dc_views(const rt_aug_pipeline *pipe, const rt_dataset *d, int c_out, const int64_t *idx, int B, uint64_t seed, int epoch,
                 int nthreads, float *x) {
    ViewJob j = {pipe, d, c_out, nthreads < 1 ? 1 : nthreads, B, idx, seed, (uint32_t)epoch, x};
    if (j.nthreads > rt_pool_threads()) j.nthreads = rt_pool_threads();
    if (j.nthreads > B) j.nthreads = B;
    rt_pool_run(j.nthreads, view_rows, &j);
}
