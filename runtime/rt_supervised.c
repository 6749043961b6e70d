/*
** rt_supervised.c: training a backbone with a linear classifier on labels,
** two recipes on one loop:
**  - the supervised upper bound of METHOD.md: SGD (lr 0.1, momentum 0.9,
**    x0.1 at 50% and 75% of the epochs), batch 128, random crop with
**    4-pixel zero padding and horizontal flip, normalisation;
**  - fine-tuning (BASELINES.md section 7): a trained backbone and a new
**    classifier, Adam with two parameter groups (backbone lr 1e-3,
**    classifier lr 1e-4, weight decay 1e-5 on both, PyTorch's coupled L2),
**    no augmentation, lr x0.1 at epochs 100 and 150 (the official
**    schedule of a nominal 200 epochs: in 100 epochs it never fires).
** At the end, the classifier's top-1 accuracy on the test split (BatchNorm
** in eval mode).
*/
#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rt_checkpoint.h"
#include "rt_file.h"
#include "rt_prof.h"
#include "rt_rng.h"
#include "rt_train.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int64_t numel(const rt_step_tensor *t) {
    int64_t n = 1;
    for (int k = 0; k < t->rank; k++) n *= t->dim[k];
    return n;
}

static float *at(rt_model *m, const rt_step_tensor *t) {
    char *base = t->region == RT_REGION_PARAM ? m->params : t->region == RT_REGION_STATE ? m->state : m->io[t->region];
    return (float *)(base + t->offset);
}

/* How parameters are updated: SGD (the upper bound), or Adam with one lr
   for the backbone and one for the classifier (fine-tuning). */
typedef struct Recipe {
    const rt_finetune_opts *ft;   /* NULL: the supervised upper bound */
    double scale;                 /* the schedule's factor this epoch */
} Recipe;

double rt_finetune_lr(const rt_finetune_opts *f, const char *name) {
    return strncmp(name, "classifier.", 11) == 0 ? f->lr_head : f->lr_backbone;
}

/* One training step of entry e on images idx[0..B) and their labels. */
static double sup_step(rt_model *m, const rt_entry *e, const rt_aug_pipeline *pipe, const rt_dataset *d, const int64_t *idx,
                       int64_t B, uint64_t seed, int epoch, int nthreads, int64_t t, const Recipe *rc, double *acc) {
    const rt_program *p = m->p;
    const rt_step_tensor *x = rt_entry_tensor(e, "x"), *y = rt_entry_tensor(e, "y"), *loss = rt_entry_tensor(e, "loss"),
                         *logits = rt_entry_tensor(e, "logits");
    rt_augment_batch(pipe, d->pixels, d->h, d->w, d->c, p->in_c, idx, (int)B, 1, seed, (uint32_t)epoch, nthreads, at(m, x));
    float *yv = at(m, y);
    for (int64_t i = 0; i < B; i++) yv[i] = (float)d->labels[idx[i]];
    rt_model_run(m, e);
    /* update every grad.<name>; copy running statistics */
    rt_sgd o = p->sgd;
    o.lr *= rc->scale;
    for (int i = 0; i < e->ntensors; i++) {
        const rt_step_tensor *g = &e->tensors[i];
        if (!strncmp(g->name, "grad.", 5)) {
            const rt_step_tensor *w = rt_entry_tensor(e, g->name + 5);
            float *mb = (float *)((char *)m->opt_m + w->offset);
            if (rc->ft) {
                const rt_finetune_opts *f = rc->ft;
                rt_adam a = {rt_finetune_lr(f, w->name) * rc->scale, 0.9, 0.999, 1e-8, f->weight_decay};
                rt_adam_update(at(m, w), at(m, g), mb, (float *)((char *)m->opt_v + w->offset), numel(w), t, &a);
            } else {
                rt_sgd_update(at(m, w), at(m, g), mb, numel(w), t, &o);
            }
        } else if (!strncmp(g->name, "state.", 6)) {
            const rt_step_tensor *s = rt_entry_tensor(e, g->name + 6);
            memcpy(at(m, s), at(m, g), (size_t)numel(s) * sizeof(float));
        }
    }
    const float *z = at(m, logits);
    int C = p->classes, ok = 0;
    for (int64_t i = 0; i < B; i++) {
        int best = 0;
        for (int c = 1; c < C; c++)
            if (z[i * C + c] > z[i * C + best]) best = c;
        ok += best == d->labels[idx[i]];
    }
    *acc = (double)ok / (double)B;
    return at(m, loss)[0];
}

double rt_classify_accuracy(rt_model *m, const rt_dataset *d, const double mean[3], const double std[3]) {
    const rt_program *p = m->p;
    const rt_entry *e = p->classify;
    const rt_step_tensor *x = rt_entry_tensor(e, "x"), *lg = rt_entry_tensor(e, "logits");
    int64_t R = e->B, img = (int64_t)p->in_c * p->in_h * p->in_w, ok = 0;
    int C = p->classes;
    for (int64_t i0 = 0; i0 < d->n; i0 += R) {
        int64_t rows = i0 + R <= d->n ? R : d->n - i0;
        float *xp = at(m, x);
        memset(xp, 0, (size_t)(R * img) * sizeof(float));
        for (int64_t r = 0; r < rows; r++)
            rt_normalize_image(d->pixels + (size_t)(i0 + r) * (size_t)(d->h * d->w * d->c), d->h, d->w, d->c, p->in_c, mean, std,
                               xp + r * img);
        rt_model_run(m, e);
        const float *z = at(m, lg);
        for (int64_t r = 0; r < rows; r++) {
            int best = 0;
            for (int c = 1; c < C; c++)
                if (z[r * C + c] > z[r * C + best]) best = c;
            ok += best == d->labels[i0 + r];
        }
    }
    return d->n ? (double)ok / (double)d->n : 0;
}

/* The lr factor of epoch (0-based): x0.1 at each milestone passed. */
static double lr_scale(const rt_program *p, const rt_finetune_opts *ft, int epoch, int epochs) {
    double s = 1;
    if (ft) {
        for (int i = 0; i < ft->ndecay; i++)
            if (epoch >= ft->decay_at[i]) s *= 0.1;
    } else {
        for (int i = 0; i < p->nmilestones; i++)
            if (epoch >= milestone_epoch(p->milestones[i], epochs)) s *= p->lr_gamma;
    }
    return s;
}

static int run_supervised(const rt_program *p, const rt_train_opts *o, const rt_finetune_opts *ft, const rt_dataset *train,
                          const rt_dataset *test, double *test_acc, char *err, size_t errlen) {
    int rc = -1;
    rt_model m = {0};
    int64_t *perm = NULL;
    FILE *csv = NULL;
    if (!train->labels || !test->labels) { snprintf(err, errlen, "%s: supervised training needs labels", o->data); return -1; }
    if (train->nclasses > p->classes || test->nclasses > p->classes) {
        snprintf(err, errlen, "%s has %d classes, the classifier was compiled for %d", o->data, train->nclasses, p->classes);
        return -1;
    }
    double mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
    if (train->has_norm) {
        memcpy(mean, train->mean, sizeof mean);
        memcpy(std, train->std, sizeof std);
    } else {
        for (int i = 0; i < p->naug; i++)
            if (p->aug[i].kind == RT_AUG_NORMALIZE) {
                memcpy(mean, p->aug[i].mean, sizeof mean);
                memcpy(std, p->aug[i].std, sizeof std);
            }
    }
    /* crop + flip + normalisation; fine-tuning: the normalisation alone
       (lineval's transform) unless asked */
    rt_aug_op ops[3] = {{.kind = RT_AUG_RANDOM_CROP, .size = p->in_h, .padding = 4},
                        {.kind = RT_AUG_HFLIP, .p = 0.5},
                        {.kind = RT_AUG_NORMALIZE}};
    memcpy(ops[2].mean, mean, sizeof mean);
    memcpy(ops[2].std, std, sizeof std);
    bool aug = !ft || ft->augment;
    rt_aug_pipeline pipe = {aug ? ops : ops + 2, aug ? 3 : 1, p->in_h, p->in_w, train->gray};
    int64_t B = p->batch, n = train->n, steps = (n + B - 1) / B, Blast = n % B;
    if (Blast && (!p->train_last || p->train_last->B != Blast)) {
        snprintf(err, errlen, "%s: a last batch of %lld images was not compiled", o->data, (long long)Blast);
        return -1;
    }
    if (rt_model_init(&m, p, err, errlen) != 0) return -1;
    rt_model_seed(&m, o->seed);
    if (ft && ft->checkpoint &&
        rt_checkpoint_load(ft->checkpoint, p, m.params, m.state, NULL, NULL, NULL, NULL, RT_CKPT_BACKBONE_ONLY, err, errlen) != 0)
        goto out;
    if (mkdir(o->out_dir, 0777) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create: %s", o->out_dir, strerror(errno));
        goto out;
    }
    rt_clean_stale_tmp(o->out_dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/metrics.csv", o->out_dir);
    csv = fopen(path, "w");
    perm = malloc((size_t)n * sizeof *perm);
    if (!csv) { snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno)); goto out; }
    if (!perm) { snprintf(err, errlen, "out of memory"); goto out; }
    fprintf(csv, "epoch,step,loss,train_acc,lr,images_per_s,seconds\n");
    double t0 = now();
    int64_t t = 0;
    const char *what = ft ? "fine-tuning" : "supervised training";
    if (!o->quiet)
        fprintf(stderr, "rrc: %s of %s on %s (%lld images, %lld steps per epoch, batch %lld) for %d epochs\n", what,
                p->spec_name, train->name, (long long)n, (long long)steps, (long long)B, o->epochs);
    for (int epoch = 0; epoch < o->epochs; epoch++) {
        Recipe rc_ = {ft, lr_scale(p, ft, epoch, o->epochs)};
        double lr = ft ? ft->lr_backbone * rc_.scale : p->sgd.lr * rc_.scale;   /* the log's (the backbone's) */
        for (int64_t i = 0; i < n; i++) perm[i] = i;
        rt_stream s;
        rt_stream_init(&s, o->seed, RT_DOMAIN_SHUFFLE, (uint32_t)epoch, 1);
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = rt_stream_below(&s, (uint32_t)(i + 1)), tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        double ep_loss = 0, ep_acc = 0;
        for (int64_t st = 0; st < steps; st++) {
            rt_prof_step_begin();   /* --profile: views, step and update */
            double ts = now();
            int64_t b0 = st * B, bsz = b0 + B <= n ? B : n - b0;
            double acc;
            double loss = sup_step(&m, bsz == B ? p->train_full : p->train_last, &pipe, train, perm + b0, bsz, o->seed, epoch,
                                   o->nthreads, ++t, &rc_, &acc);
            if (!isfinite(loss)) { snprintf(err, errlen, "step %lld: the loss is not finite", (long long)t); goto out; }
            ep_loss += loss;
            ep_acc += acc;
            double dt = now() - ts;
            rt_prof_step_end();
            if (fprintf(csv, "%d,%lld,%.6f,%.6f,%g,%.1f,%.3f\n", epoch + 1, (long long)t, loss, acc, lr,
                        (double)bsz / (dt > 0 ? dt : 1e-9), now() - t0) < 0) {
                rt_flush_checked(csv, path, err, errlen);
                goto out;
            }
        }
        if (rt_flush_checked(csv, path, err, errlen) != 0) goto out;
        if (!o->quiet)
            fprintf(stderr, "rrc: %s epoch %d/%d: loss %.4f, train accuracy %.4f, lr %g\n", ft ? "fine-tuning" : "supervised",
                    epoch + 1, o->epochs, ep_loss / (double)steps, ep_acc / (double)steps, lr);
    }
    FILE *done = csv;
    csv = NULL;
    if (rt_close_checked(done, path, err, errlen) != 0) goto out;
    *test_acc = rt_classify_accuracy(&m, test, mean, std);
    snprintf(path, sizeof path, "%s/last.safetensors", o->out_dir);
    /* fine-tuning's Adam state is not the program's (SGD) optimizer's: not saved */
    if (rt_checkpoint_save(path, p, m.params, m.state, ft ? NULL : m.opt_m, NULL, &(rt_ckpt_run){t, o->epochs, o->seed, n}, err,
                           errlen) != 0)
        goto out;
    rc = 0;
out:
    if (csv) fclose(csv);
    free(perm);
    rt_model_free(&m);
    return rc;
}

int rt_train_supervised(const rt_program *p, const rt_train_opts *o, const rt_dataset *train, const rt_dataset *test,
                        double *test_acc, char *err, size_t errlen) {
    return run_supervised(p, o, NULL, train, test, test_acc, err, errlen);
}

int rt_finetune(const rt_program *p, const rt_train_opts *o, const rt_finetune_opts *f, const rt_dataset *train,
                const rt_dataset *test, double *test_acc, char *err, size_t errlen) {
    return run_supervised(p, o, f, train, test, test_acc, err, errlen);
}
