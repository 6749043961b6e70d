/*
** test_lineval.c: the linear probe (rt_lineval).
**
** Behaviour on data whose answer is known: separable blobs are learnt,
** random labels are not (test accuracy stays at chance even though the
** probe can fit some of the training set). A straightforward double
** precision restatement of the algorithm (same initialisation, shuffles and
** Adam) pins the fast BLAS path: the per-epoch losses must agree by the
** f32 rule of tolerance.h. Runs with one seed are identical bit for bit.
** The full-size test trains the METHOD.md protocol (100 epochs, batch 128)
** on 60000 x 64 features and prints its time (it asserts none).
*/
#include "golden_util.h"
#include "test.h"

#include "rt_init.h"
#include "rt_lineval.h"
#include "rt_optim.h"
#include "rt_rng.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

typedef struct Data {
    float *x;
    int32_t *y;
    int64_t n;
} Data;

static void data_free(Data *d) {
    free(d->x);
    free(d->y);
}

/* n points around `classes` centres in F dims: centre c ~ N(0, spread^2),
   noise N(0, 1); labels the centre, or uniform random if random_labels. */
static Data blobs(int64_t n, int64_t F, int classes, double spread, int random_labels, uint32_t which) {
    Data d = {malloc((size_t)(n * F) * sizeof(float)), malloc((size_t)n * sizeof(int32_t)), n};
    rt_stream cs, s;
    rt_stream_init(&cs, 99, RT_DOMAIN_TEST, 1, 0);   /* the centres: the same for train and test */
    double *ctr = malloc((size_t)(classes * F) * sizeof *ctr);
    for (int64_t i = 0; i < classes * F; i++) ctr[i] = spread * rt_stream_normal(&cs);
    rt_stream_init(&s, 99, RT_DOMAIN_TEST, 2, which);
    for (int64_t i = 0; i < n; i++) {
        int c = (int)rt_stream_below(&s, (uint32_t)classes);
        for (int64_t j = 0; j < F; j++) d.x[i * F + j] = (float)(ctr[c * F + j] + rt_stream_normal(&s));
        d.y[i] = random_labels ? (int32_t)rt_stream_below(&s, (uint32_t)classes) : c;
    }
    free(ctr);
    return d;
}

typedef struct Log {
    int calls, last_epoch;
    double loss[256], acc[256];
} Log;

static void log_progress(void *ctx, int epoch, double loss, double acc) {
    Log *l = ctx;
    if (epoch >= 1 && epoch <= 256) { l->loss[epoch - 1] = loss; l->acc[epoch - 1] = acc; }
    l->calls++;
    l->last_epoch = epoch;
}

TEST(probe_argmax) {
    float v[] = {1, 3, -2, 3, 0};
    CHECK(rt_argmax(v, 5) == 1);   /* the first of equal maxima, as torch.argmax */
    CHECK(rt_argmax(v, 1) == 0);
    CHECK(rt_argmax(v, 0) == -1);
    float w[] = {NAN, -1, NAN, 2, 1};
    CHECK(rt_argmax(w, 5) == 3);
    float z[] = {NAN, NAN};
    CHECK(rt_argmax(z, 2) == 0);
    float neg[] = {-5, -4, -7};
    CHECK(rt_argmax(neg, 3) == 1);
}

TEST(probe_separable_blobs) {
    Data tr = blobs(2000, 16, 4, 1.5, 0, 1), te = blobs(1000, 16, 4, 1.5, 0, 2);
    Log lg = {0};
    rt_probe_opts o = {.epochs = 100, .batch = 128, .lr = 1e-3, .seed = 3, .progress = log_progress, .ctx = &lg};
    rt_probe_report rep;
    double acc = rt_linear_probe(tr.x, tr.y, tr.n, te.x, te.y, te.n, 16, 4, &o, &rep);
    CHECKF(acc >= 0.95, "test accuracy %.4f", acc);
    CHECKF(rep.train_acc >= 0.95, "train accuracy %.4f", rep.train_acc);
    CHECK(rep.test_acc == acc);
    CHECK(lg.calls == 100 && lg.last_epoch == 100);
    CHECK(rep.final_loss == lg.loss[99] && rep.train_acc == lg.acc[99]);
    CHECKF(lg.loss[99] < 0.5 * lg.loss[0], "loss %.4f -> %.4f", lg.loss[0], lg.loss[99]);
    /* the 4 blobs are not found by chance: an untrained probe is far off */
    rt_probe_opts o1 = {.epochs = 1, .seed = 3};
    double acc1 = rt_linear_probe(tr.x, tr.y, tr.n, te.x, te.y, te.n, 16, 4, &o1, NULL);
    CHECKF(acc1 < acc, "1 epoch %.4f, 100 epochs %.4f", acc1, acc);
    data_free(&tr);
    data_free(&te);
}

TEST(probe_random_labels_at_chance) {
    Data tr = blobs(3000, 64, 10, 0, 1, 1), te = blobs(3000, 64, 10, 0, 1, 2);
    rt_probe_opts o = {.epochs = 30, .seed = 5};
    rt_probe_report rep;
    double acc = rt_linear_probe(tr.x, tr.y, tr.n, te.x, te.y, te.n, 64, 10, &o, &rep);
    /* chance is 0.1; the standard error on 3000 points is 0.0055 */
    CHECKF(acc > 0.07 && acc < 0.13, "test accuracy %.4f on random labels", acc);
    /* it does memorise a little of the training set */
    CHECKF(rep.train_acc > acc, "train %.4f, test %.4f", rep.train_acc, acc);
    data_free(&tr);
    data_free(&te);
}

TEST(probe_deterministic) {
    Data tr = blobs(1000, 32, 10, 0.4, 0, 3), te = blobs(700, 32, 10, 0.4, 0, 4);
    rt_probe_opts o = {.epochs = 20, .batch = 64, .seed = 11};
    rt_probe_report r1, r2, r3;
    double a1 = rt_linear_probe(tr.x, tr.y, tr.n, te.x, te.y, te.n, 32, 10, &o, &r1);
    double a2 = rt_linear_probe(tr.x, tr.y, tr.n, te.x, te.y, te.n, 32, 10, &o, &r2);
    CHECK(memcmp(&a1, &a2, sizeof a1) == 0);
    CHECK(memcmp(&r1, &r2, sizeof r1) == 0);
    CHECK(a1 > 0.3 && a1 <= 1);
    /* another seed: another initialisation and order, another loss */
    o.seed = 12;
    rt_linear_probe(tr.x, tr.y, tr.n, te.x, te.y, te.n, 32, 10, &o, &r3);
    CHECK(r3.final_loss != r1.final_loss);
    data_free(&tr);
    data_free(&te);
}

/* The algorithm restated plainly in double (one row at a time), sharing
   only the generator, rt_init_fill and rt_adam_update with the probe. */
static void reference_probe(const Data *tr, int64_t F, int C, int epochs, int B, uint64_t seed, double *losses) {
    int64_t nw = C * F + C;
    float *w = calloc((size_t)nw, sizeof *w), *g = calloc((size_t)nw, sizeof *g);
    float *m = calloc((size_t)nw, sizeof *m), *v = calloc((size_t)nw, sizeof *v);
    int64_t *perm = malloc((size_t)tr->n * sizeof *perm);
    double *z = malloc((size_t)C * sizeof *z);
    rt_init u = {RT_INIT_UNIFORM, 1 / sqrt((double)F)};
    rt_init_fill(w, C * F, u, seed, "probe.weight");
    rt_init_fill(w + C * F, C, u, seed, "probe.bias");
    rt_adam adam = {1e-3, 0.9, 0.999, 1e-8, 0};
    int64_t t = 0;
    for (int ep = 0; ep < epochs; ep++) {
        for (int64_t i = 0; i < tr->n; i++) perm[i] = i;
        rt_stream s;
        rt_stream_init(&s, seed, RT_DOMAIN_SHUFFLE, (uint32_t)(1000000 + ep), 0);
        for (int64_t i = tr->n - 1; i > 0; i--) {
            int64_t j = rt_stream_below(&s, (uint32_t)(i + 1)), k = perm[i];
            perm[i] = perm[j];
            perm[j] = k;
        }
        double total = 0;
        for (int64_t b0 = 0; b0 < tr->n; b0 += B) {
            int64_t bs = tr->n - b0 < B ? tr->n - b0 : B;
            double *gd = calloc((size_t)nw, sizeof *gd);
            for (int64_t r = 0; r < bs; r++) {
                const float *x = tr->x + perm[b0 + r] * F;
                int y = tr->y[perm[b0 + r]];
                double mx = -INFINITY, se = 0;
                for (int c = 0; c < C; c++) {
                    z[c] = w[C * F + c];
                    for (int64_t j = 0; j < F; j++) z[c] += (double)w[c * F + j] * x[j];
                    mx = fmax(mx, z[c]);
                }
                for (int c = 0; c < C; c++) se += exp(z[c] - mx);
                total += log(se) + mx - z[y];
                for (int c = 0; c < C; c++) {
                    double d = (exp(z[c] - mx) / se - (c == y)) / (double)bs;
                    for (int64_t j = 0; j < F; j++) gd[c * F + j] += d * x[j];
                    gd[C * F + c] += d;
                }
            }
            for (int64_t i = 0; i < nw; i++) g[i] = (float)gd[i];
            free(gd);
            rt_adam_update(w, g, m, v, nw, ++t, &adam);
        }
        losses[ep] = total / (double)tr->n;
    }
    free(w);
    free(g);
    free(m);
    free(v);
    free(perm);
    free(z);
}

TEST(probe_matches_plain_reference) {
    /* F != classes and a last partial batch, so a transposed product or a
       wrong batch mean would show */
    Data tr = blobs(1000, 24, 7, 0.5, 0, 5), te = blobs(100, 24, 7, 0.5, 0, 6);
    double ref[8];
    reference_probe(&tr, 24, 7, 8, 96, 21, ref);
    Log lg = {0};
    rt_probe_opts o = {.epochs = 8, .batch = 96, .seed = 21, .progress = log_progress, .ctx = &lg};
    rt_linear_probe(tr.x, tr.y, tr.n, te.x, te.y, te.n, 24, 7, &o, NULL);
    CHECK(lg.calls == 8);
    golden_compare("per-epoch losses", lg.loss, ref, 8);   /* the 8 losses as one tensor */
    data_free(&tr);
    data_free(&te);
}

TEST(probe_invalid_arguments) {
    float x[8] = {0};
    int32_t y[2] = {0, 3}, yok[2] = {0, 1};
    rt_probe_report rep = {0};
    CHECK(isnan(rt_linear_probe(x, y, 2, x, yok, 2, 4, 3, NULL, &rep)));   /* label 3 of 3 classes */
    CHECK(isnan(rep.test_acc) && isnan(rep.train_acc));
    CHECK(isnan(rt_linear_probe(x, yok, 2, x, y, 2, 4, 3, NULL, NULL)));
    CHECK(isnan(rt_linear_probe(x, yok, 2, x, yok, 2, 0, 3, NULL, NULL)));
    CHECK(isnan(rt_linear_probe(x, yok, 2, x, yok, 0, 4, 3, NULL, NULL)));
    /* no training rows: the untrained probe is still evaluated */
    rt_probe_opts o = {.epochs = 2};
    double a = rt_linear_probe(NULL, NULL, 0, x, yok, 2, 4, 3, &o, &rep);
    CHECK(a >= 0 && a <= 1 && rep.final_loss == 0);
}

TEST(probe_full_size_60000x64) {
    /* METHOD.md's protocol on features the size of Fashion-MNIST with
       Conv-4: 60000 x 64, 10 classes, 100 epochs of batch 128, one thread.
       It runs to the end with an accuracy in [0, 1]; the time is printed,
       not checked (speed is `make bench`'s job). */
    int64_t n = 60000, F = 64;
    Data tr = {malloc((size_t)(n * F) * sizeof(float)), malloc((size_t)n * sizeof(int32_t)), n};
    rt_stream s;
    rt_stream_init(&s, 1, RT_DOMAIN_TEST, 3, 0);
    for (int64_t i = 0; i < n * F; i++) tr.x[i] = (float)rt_stream_normal(&s);
    for (int64_t i = 0; i < n; i++) tr.y[i] = (int32_t)rt_stream_below(&s, 10);
    int threads = openblas_get_num_threads();   /* restored after: later tests share the process */
    openblas_set_num_threads(1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rt_probe_opts o = {.epochs = 100, .batch = 128, .lr = 1e-3, .seed = 1};
    double acc = rt_linear_probe(tr.x, tr.y, n, tr.x, tr.y, 10000, F, 10, &o, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    openblas_set_num_threads(threads);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("    linear probe, 100 epochs on 60000 x 64 (10 classes), 1 thread: %.2f s\n", sec);
    CHECKF(acc >= 0 && acc <= 1, "accuracy %g", acc);
    data_free(&tr);
}
