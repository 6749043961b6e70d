/*
** rt_lineval.c: the linear probe (see rt_lineval.h).
**
** A step on a batch of bs rows: gather the rows (the shuffle is an index
** permutation; the features are not moved), Z = X W^T + b with one sgemm,
** softmax cross-entropy per row with the log-sum-exp taken around the
** row's maximum (no overflow for any logits), dZ = (softmax - onehot) / bs
** (the mean over the batch, as nn.CrossEntropyLoss), dW = dZ^T X with a
** second sgemm, db = column sums of dZ, then one Adam update over weight
** and bias together (they are one array, and Adam is elementwise with the
** same hyperparameters for both, as in the reference's single param group).
**
** The two products are the whole cost (2 * bs * F * classes multiply-adds
** per step), so they go to OpenBLAS; everything else is O(bs * classes).
** The loss is summed in double so the epoch mean does not depend on how
** many batches there are.
*/
#include "rt_lineval.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "rt_init.h"
#include "rt_optim.h"
#include "rt_rng.h"

int64_t rt_argmax(const float *v, int n) {
    if (n < 1) return -1;
    int64_t best = -1;
    for (int i = 0; i < n; i++) {
        if (isnan(v[i])) continue;
        if (best < 0 || v[i] > v[best]) best = i;
    }
    return best < 0 ? 0 : best;
}

/* Z[bs, C] = X[bs, F] W^T + b, W [C, F] row-major as nn.Linear keeps it. */
static void forward(const float *x, int bs, const float *w, const float *b, int F, int C, float *z) {
    for (int i = 0; i < bs; i++) memcpy(z + (size_t)i * (size_t)C, b, (size_t)C * sizeof *z);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bs, C, F, 1.0f, x, F, w, F, 1.0f, z, C);
}

/* Replaces the row's logits by d(loss)/d(logits) * scale, i.e.
   (softmax - onehot(y)) * scale, and returns the row's cross-entropy. */
static double softmax_ce_row(float *z, int C, int y, float scale) {
    float mx = z[0];
    for (int j = 1; j < C; j++) mx = z[j] > mx ? z[j] : mx;
    float zy = z[y];
    double s = 0;
    for (int j = 0; j < C; j++) {
        float e = expf(z[j] - mx);
        z[j] = e;
        s += e;
    }
    float inv = (float)(scale / s);
    for (int j = 0; j < C; j++) z[j] *= inv;
    z[y] -= scale;
    /* -log softmax_y = log sum exp(z - mx) - (z_y - mx) */
    return log(s) - ((double)zy - (double)mx);
}

static bool labels_ok(const int32_t *y, int64_t n, int classes) {
    for (int64_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= classes) return false;
    return true;
}

double rt_linear_probe(const float *train_x, const int32_t *train_y, int64_t ntrain, const float *test_x,
                       const int32_t *test_y, int64_t ntest, int64_t F, int classes, const rt_probe_opts *o,
                       rt_probe_report *rep) {
    rt_probe_opts dflt = {0};
    if (!o) o = &dflt;
    int epochs = o->epochs > 0 ? o->epochs : 100;
    int B = o->batch > 0 ? o->batch : 128;
    double lr = o->lr > 0 ? o->lr : 1e-3;
    if (rep) rep->train_acc = rep->test_acc = rep->final_loss = NAN;

    /* cblas takes int dimensions */
    if (F < 1 || F > INT_MAX / 4 || classes < 1 || ntrain < 0 || ntest < 1 ||
        (int64_t)classes * F > INT_MAX / 2 || (int64_t)B * classes > INT_MAX / 2 ||
        (int64_t)B * F > INT_MAX / 2 || !test_x || !test_y || (ntrain > 0 && (!train_x || !train_y)) ||
        !labels_ok(train_y, ntrain, classes) || !labels_ok(test_y, ntest, classes))
        return NAN;
    if (ntrain > UINT32_MAX) return NAN;   /* rt_stream_below draws below 2^32 */

    int C = classes, Fi = (int)F;
    size_t nw = (size_t)C * (size_t)F + (size_t)C;   /* weight [C, F], then bias [C] */
    float *w = calloc(nw, sizeof *w), *g = calloc(nw, sizeof *g);
    float *m = calloc(nw, sizeof *m), *v = calloc(nw, sizeof *v);
    float *xb = malloc((size_t)B * (size_t)F * sizeof *xb), *z = malloc((size_t)B * (size_t)C * sizeof *z);
    int64_t *perm = malloc((size_t)(ntrain > 0 ? ntrain : 1) * sizeof *perm);
    double result = NAN;
    if (!w || !g || !m || !v || !xb || !z || !perm) goto out;

    /* nn.Linear's reset_parameters: kaiming_uniform(a = sqrt 5) for the
       weight is U(+-1/sqrt(fan_in)), and the bias U(+-1/sqrt(fan_in)). */
    float *bias = w + (size_t)C * (size_t)F, *gbias = g + (size_t)C * (size_t)F;
    rt_init u = {RT_INIT_UNIFORM, 1.0 / sqrt((double)F)};
    rt_init_fill(w, (int64_t)C * F, u, o->seed, "probe.weight");
    rt_init_fill(bias, C, u, o->seed, "probe.bias");
    rt_adam adam = {.lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0};

    int64_t t = 0;
    double ep_loss = 0, ep_acc = 0;
    for (int ep = 0; ep < epochs; ep++) {
        for (int64_t i = 0; i < ntrain; i++) perm[i] = i;
        rt_stream s;
        rt_stream_init(&s, o->seed, RT_DOMAIN_SHUFFLE, (uint32_t)(1000000 + ep), 0);
        for (int64_t i = ntrain - 1; i > 0; i--) {
            int64_t j = rt_stream_below(&s, (uint32_t)(i + 1)), tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        double loss_sum = 0;
        int64_t correct = 0;
        for (int64_t b0 = 0; b0 < ntrain; b0 += B) {
            int bs = (int)(ntrain - b0 < B ? ntrain - b0 : B);
            for (int i = 0; i < bs; i++)
                memcpy(xb + (size_t)i * (size_t)F, train_x + (size_t)perm[b0 + i] * (size_t)F, (size_t)F * sizeof *xb);
            forward(xb, bs, w, bias, Fi, C, z);
            float scale = 1.0f / (float)bs;
            for (int i = 0; i < bs; i++) {
                float *zi = z + (size_t)i * (size_t)C;
                int y = train_y[perm[b0 + i]];
                correct += rt_argmax(zi, C) == y;
                loss_sum += softmax_ce_row(zi, C, y, scale);
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, Fi, bs, 1.0f, z, C, xb, Fi, 0.0f, g, Fi);
            for (int j = 0; j < C; j++) gbias[j] = 0;
            for (int i = 0; i < bs; i++) {
                const float *zi = z + (size_t)i * (size_t)C;
                for (int j = 0; j < C; j++) gbias[j] += zi[j];
            }
            rt_adam_update(w, g, m, v, (int64_t)nw, ++t, &adam);
        }
        ep_loss = ntrain ? loss_sum / (double)ntrain : 0;
        ep_acc = ntrain ? (double)correct / (double)ntrain : 0;
        if (o->progress) o->progress(o->ctx, ep + 1, ep_loss, ep_acc);
    }

    int64_t correct = 0;
    for (int64_t b0 = 0; b0 < ntest; b0 += B) {
        int bs = (int)(ntest - b0 < B ? ntest - b0 : B);
        forward(test_x + (size_t)b0 * (size_t)F, bs, w, bias, Fi, C, z);
        for (int i = 0; i < bs; i++) correct += rt_argmax(z + (size_t)i * (size_t)C, C) == test_y[b0 + i];
    }
    result = (double)correct / (double)ntest;
    if (rep) {
        rep->train_acc = ep_acc;
        rep->test_acc = result;
        rep->final_loss = ep_loss;
    }

out:
    free(w);
    free(g);
    free(m);
    free(v);
    free(xb);
    free(z);
    free(perm);
    return result;
}
