/*
** rt_train.c: the training loop of self-supervised relational reasoning
** (see rt_train.h), over a compiled program.
**
** Determinism: the order of an epoch comes from the generator keyed by
** (seed, epoch), the views of an image from (seed, epoch, image, view), so
** a run resumed from a checkpoint makes the same batches and views as an
** uninterrupted one, whatever the thread counts.
*/
#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rt_checkpoint.h"
#include "rt_file.h"
#include "rt_prof.h"
#include "rt_rng.h"
#include "rt_train.h"

/* ---- the model in memory ---- */

static const rt_entry *entries(const rt_program *p, int i) {
    return i == 0 ? p->train_full : i == 1 ? p->train_last : p->features;
}

/* Zeroed, RT_ALIGN-aligned memory for a region. Regions of several MiB
   (a step's scratch: 21 MiB for conv4, 370 MiB for resnet32) are asked to
   be backed by 2 MiB pages (this machine's transparent huge pages are
   "madvise"): with 4 KiB pages the kernels walking them miss the TLB
   (DECISIONS.md). */
#define HUGE_PAGE ((size_t)2 << 20)

static void *zalloc(int64_t bytes) {
    size_t n = (size_t)(bytes > 0 ? bytes : 0) + RT_ALIGN;
    n = (n + RT_ALIGN - 1) / RT_ALIGN * RT_ALIGN;
    bool huge = n >= 2 * HUGE_PAGE;
    if (huge) n = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *q = aligned_alloc(huge ? HUGE_PAGE : RT_ALIGN, n);
    if (!q) return NULL;
#ifdef MADV_HUGEPAGE
    if (huge) (void)madvise(q, n, MADV_HUGEPAGE);   /* advice only: without it, 4 KiB pages */
#endif
    memset(q, 0, n);
    return q;
}

int rt_model_init(rt_model *m, const rt_program *p, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    m->p = p;
    int64_t io[RT_NREGIONS] = {0};
    for (int i = 0; i < 3; i++) {
        const rt_entry *e = entries(p, i);
        if (!e) continue;
        for (int r = RT_REGION_INPUT; r < RT_NREGIONS; r++)
            if (e->region_bytes[r] > io[r]) io[r] = e->region_bytes[r];
    }
    double need = 3.0 * (double)p->train_full->region_bytes[RT_REGION_PARAM] + (double)p->train_full->region_bytes[RT_REGION_STATE];
    for (int r = RT_REGION_INPUT; r < RT_NREGIONS; r++) need += (double)io[r];
    char what[160];
    snprintf(what, sizeof what, "%s's model and step regions", p->spec_name);
    if (!rt_fits_memory(what, need, err, errlen)) return -1;
    m->params = zalloc(p->train_full->region_bytes[RT_REGION_PARAM]);
    m->state = zalloc(p->train_full->region_bytes[RT_REGION_STATE]);
    m->opt_m = zalloc(p->train_full->region_bytes[RT_REGION_PARAM]);
    m->opt_v = zalloc(p->train_full->region_bytes[RT_REGION_PARAM]);
    bool ok = m->params && m->state && m->opt_m && m->opt_v;
    for (int r = RT_REGION_INPUT; r < RT_NREGIONS; r++) ok = ok && (m->io[r] = zalloc(io[r])) != NULL;
    if (!ok) {
        snprintf(err, errlen, "%s: out of memory for the model's regions", p->spec_name);
        rt_model_free(m);
        return -1;
    }
    return 0;
}

void rt_model_seed(rt_model *m, uint64_t seed) {
    const rt_entry *e = m->p->train_full;
    for (int i = 0; i < e->ntensors; i++) {
        const rt_step_tensor *t = &e->tensors[i];
        if (t->region != RT_REGION_PARAM && t->region != RT_REGION_STATE) continue;
        int64_t n = 1;
        for (int k = 0; k < t->rank; k++) n *= t->dim[k];
        char *base = t->region == RT_REGION_PARAM ? m->params : m->state;
        rt_init_fill((float *)(base + t->offset), n, t->init, seed, t->name);
    }
}

void rt_model_free(rt_model *m) {
    free(m->params);
    free(m->state);
    free(m->opt_m);
    free(m->opt_v);
    for (int r = 0; r < RT_NREGIONS; r++) free(m->io[r]);
    memset(m, 0, sizeof *m);
}

void rt_model_run(rt_model *m, const rt_entry *e) {
    char *regions[RT_NREGIONS] = {m->params, m->state, m->io[RT_REGION_INPUT], m->io[RT_REGION_OUTPUT],
                                  m->io[RT_REGION_SCRATCH]};
    e->fn(regions);
}

static int64_t numel(const rt_step_tensor *t) {
    int64_t n = 1;
    for (int k = 0; k < t->rank; k++) n *= t->dim[k];
    return n;
}

static float *tensor_ptr(rt_model *m, const rt_step_tensor *t) {
    char *base = t->region == RT_REGION_PARAM ? m->params : t->region == RT_REGION_STATE ? m->state : m->io[t->region];
    return (float *)(base + t->offset);
}

/* ---- metrics ---- */

rt_step_metrics rt_pair_metrics(const float *logits, const float *targets, int64_t P, double loss) {
    int64_t pos = 0, neg = 0, pos_ok = 0, neg_ok = 0;
    for (int64_t i = 0; i < P; i++) {
        int pred = logits[i] > 0;   /* round(sigmoid(z)) with round(0.5) = 0 */
        if (targets[i] > 0.5f) { pos++; pos_ok += pred == 1; }
        else { neg++; neg_ok += pred == 0; }
    }
    rt_step_metrics r = {loss, P ? (double)(pos_ok + neg_ok) / (double)P : 0, pos ? (double)pos_ok / (double)pos : 0,
                         neg ? (double)neg_ok / (double)neg : 0};
    return r;
}

/* ---- the optimizer update of one step ---- */

typedef struct Update {
    const rt_step_tensor *grad, *param;   /* grad.<name> in OUTPUT, <name> in PARAM */
} Update;

typedef struct StateCopy {
    const rt_step_tensor *out, *state;    /* state.<name> in OUTPUT, <name> in STATE */
} StateCopy;

typedef struct EntryPlan {
    const rt_entry *e;
    Update *up;
    int nup;
    StateCopy *sc;
    int nsc;
    const rt_step_tensor *x, *loss, *logits, *targets;
} EntryPlan;

static int plan_entry(EntryPlan *pl, const rt_entry *e, char *err, size_t errlen) {
    memset(pl, 0, sizeof *pl);
    pl->e = e;
    pl->up = calloc((size_t)e->ntensors, sizeof *pl->up);
    pl->sc = calloc((size_t)e->ntensors, sizeof *pl->sc);
    if (!pl->up || !pl->sc) { snprintf(err, errlen, "out of memory"); return -1; }
    for (int i = 0; i < e->ntensors; i++) {
        const rt_step_tensor *t = &e->tensors[i];
        if (!strncmp(t->name, "grad.", 5)) {
            const rt_step_tensor *p = rt_entry_tensor(e, t->name + 5);
            if (!p || p->region != RT_REGION_PARAM) { snprintf(err, errlen, "%s: %s has no parameter", e->name, t->name); return -1; }
            pl->up[pl->nup++] = (Update){t, p};
        } else if (!strncmp(t->name, "state.", 6)) {
            const rt_step_tensor *s = rt_entry_tensor(e, t->name + 6);
            if (!s || s->region != RT_REGION_STATE) { snprintf(err, errlen, "%s: %s has no running statistic", e->name, t->name); return -1; }
            pl->sc[pl->nsc++] = (StateCopy){t, s};
        }
    }
    pl->x = rt_entry_tensor(e, "x");
    pl->loss = rt_entry_tensor(e, "loss");
    pl->logits = rt_entry_tensor(e, "logits");
    pl->targets = rt_entry_tensor(e, "targets");
    if (!pl->x || !pl->loss || !pl->logits || !pl->targets) {
        snprintf(err, errlen, "%s: entry lacks x, loss, logits or targets", e->name);
        return -1;
    }
    return 0;
}

static void free_plan(EntryPlan *pl) {
    free(pl->up);
    free(pl->sc);
}

static double sgd_lr(const rt_program *p, int epoch, int epochs) {
    double lr = p->sgd.lr;
    for (int i = 0; i < p->nmilestones; i++)
        if (epoch >= (int)floor(p->milestones[i] * epochs + 0.5)) lr *= p->lr_gamma;
    return lr;
}

static void apply_update(rt_model *m, const EntryPlan *pl, int64_t t, int epoch, int epochs) {
    const rt_program *p = m->p;
    for (int i = 0; i < pl->nup; i++) {
        const Update *u = &pl->up[i];
        float *param = tensor_ptr(m, u->param), *grad = tensor_ptr(m, u->grad);
        float *mm = (float *)((char *)m->opt_m + u->param->offset), *vv = (float *)((char *)m->opt_v + u->param->offset);
        if (p->optim == RT_OPT_ADAM) {
            rt_adam_update(param, grad, mm, vv, numel(u->param), t, &p->adam);
        } else {
            rt_sgd o = p->sgd;
            o.lr = sgd_lr(p, epoch, epochs);
            rt_sgd_update(param, grad, mm, numel(u->param), t, &o);
        }
    }
    for (int i = 0; i < pl->nsc; i++)
        memcpy(tensor_ptr(m, pl->sc[i].state), tensor_ptr(m, pl->sc[i].out), (size_t)numel(pl->sc[i].state) * sizeof(float));
}

/* ---- helpers ---- */

/* On --resume: metrics.csv cut back to the checkpoint's step. A run
   killed after its last checkpoint had written rows past it, which the
   resumed run writes again. *seconds: the `seconds` of the last row kept,
   from which the resumed run's times go on. The file is rewritten under a
   temporary name and renamed, so a failure leaves it as it was. */
static int metrics_resume(const char *path, int64_t step, double *seconds, char *err, size_t errlen) {
    FILE *in = fopen(path, "r");
    if (!in) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    char tmp[4200];
    FILE *out = rt_tmp_path(tmp, sizeof tmp, path) ? fopen(tmp, "w") : NULL;
    if (!out) {
        snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
        fclose(in);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    bool header = true, ok = true;
    ssize_t len;
    while (ok && (len = getline(&line, &cap, in)) > 0) {
        /* a row cut short by a kill ("2,3" of "2,35,...") ends the file and
           has no newline: it is not a row */
        if (line[len - 1] != '\n') break;
        if (!header) {
            /* rows are in step order: the first past the checkpoint ends
               what is kept */
            const char *c = strchr(line, ','), *lastc = strrchr(line, ',');
            if (!c || strtoll(c + 1, NULL, 10) > step) break;
            if (lastc) *seconds = strtod(lastc + 1, NULL);
        }
        header = false;
        ok = fputs(line, out) >= 0;
    }
    free(line);
    ok = ok && !ferror(in);
    fclose(in);
    ok = (fclose(out) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: cannot rewrite for the resumed run: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fmt_duration(char *buf, size_t n, double s) {
    if (s < 0 || !isfinite(s)) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

/* Shuffled order of epoch e: Fisher-Yates with the (seed, epoch) stream. */
static void epoch_order(int64_t *perm, int64_t n, uint64_t seed, int epoch) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    rt_stream s;
    rt_stream_init(&s, seed, RT_DOMAIN_SHUFFLE, (uint32_t)epoch, 0);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = rt_stream_below(&s, (uint32_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static int make_dir(const char *path, char *err, size_t errlen) {
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create the run directory: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* A plot is never worth a hang: gnuplot gets this long. */
#define PLOT_SECONDS 60.0

/* Plots per-epoch mean loss and pair accuracy from metrics.csv: writes the
   gnuplot script RUN/curves.gp (kept, so the plot can be remade with
   `gnuplot RUN/curves.gp`) and runs it. This run's gnuplot draws under a
   temporary name (the script's `out`, given with -e) renamed when it
   succeeds, so a killed or failed gnuplot leaves no half a picture. A
   missing gnuplot or a failed plot is a note, never a failed run. */
static void plot_curves(const char *dir, int quiet) {
    char gp[1024], png[1024], tmp[4200], text[8192], err[1200], setout[4300];
    snprintf(gp, sizeof gp, "%s/curves.gp", dir);
    snprintf(png, sizeof png, "%s/curves.png", dir);
    if (!rt_tmp_path(tmp, sizeof tmp, png) || strpbrk(dir, "'\n")) {
        if (!quiet) fprintf(stderr, "rrc: note: no %s (gnuplot cannot quote the run directory's name)\n", png);
        return;
    }
    int k = snprintf(text, sizeof text,
                     "# made by rrc: per-epoch means of %s/metrics.csv\n"
                     "if (!exists('out')) out = '%s'\n"
                     "set terminal png size 1000,420\n"
                     "set output out\n"
                     "set datafile separator ','\n"
                     "set multiplot layout 1,2\n"
                     "set xlabel 'epoch'\n"
                     "set key off\n"
                     "set grid\n"
                     "set title 'relational loss (mean per epoch)'\n"
                     "plot '%s/metrics.csv' every ::1 using 1:3 smooth unique with linespoints pt 7\n"
                     "set title 'pair accuracy (mean per epoch)'\n"
                     "plot '%s/metrics.csv' every ::1 using 1:4 smooth unique with linespoints pt 7\n"
                     "unset multiplot\n"
                     "set output\n",
                     dir, png, dir, dir);
    if (k < 0 || (size_t)k >= sizeof text) return;
    if (rt_write_atomic(gp, text, (size_t)k, err, sizeof err) != 0) {
        if (!quiet) fprintf(stderr, "rrc: note: no plot: %s\n", err);
        return;
    }
    snprintf(setout, sizeof setout, "out = '%s'", tmp);
    const char *argv[] = {"gnuplot", "-e", setout, gp, NULL};
    int rc = rt_run_bounded(argv, PLOT_SECONDS);
    if (rc == 0 && rename(tmp, png) == 0) return;
    unlink(tmp);
    if (quiet) return;
    if (rc == 127)
        fprintf(stderr, "rrc: gnuplot not found; no %s (apt-get install gnuplot-nox; then gnuplot %s)\n", png, gp);
    else if (rc == -2)
        fprintf(stderr, "rrc: note: gnuplot took longer than %.0f s and was stopped; no %s\n", PLOT_SECONDS, png);
    else
        fprintf(stderr, "rrc: note: gnuplot failed (exit %d); no %s\n", rc, png);
}

/* ---- the loop ---- */

int rt_train(const rt_program *p, const rt_train_opts *o, char *err, size_t errlen) {
    int rc = -1;
    rt_dataset own = {0};
    rt_model m = {0};
    EntryPlan full = {0}, last = {0};
    int64_t *perm = NULL;
    FILE *csv = NULL;
    rt_aug_op *ops = NULL;

    rt_data_opts dopts = {p->in_h, p->in_w, p->in_c, o->seed};
    const rt_dataset *dp = o->dataset;
    if (!dp) {
        if (rt_dataset_load(o->data, RT_SPLIT_TRAIN, &dopts, &own, err, errlen) != 0) goto out;
        dp = &own;
    }
    if (dp->h != p->in_h || dp->w != p->in_w) {
        snprintf(err, errlen, "%s: images are %dx%d, the spec's input is %dx%d", o->data, dp->h, dp->w, p->in_h, p->in_w);
        goto out;
    }
    /* the dataset's own normalisation takes precedence over the spec's */
    ops = malloc((size_t)(p->naug ? p->naug : 1) * sizeof *ops);
    memcpy(ops, p->aug, (size_t)p->naug * sizeof *ops);
    for (int i = 0; i < p->naug; i++)
        if (ops[i].kind == RT_AUG_NORMALIZE && dp->has_norm) {
            memcpy(ops[i].mean, dp->mean, sizeof dp->mean);
            memcpy(ops[i].std, dp->std, sizeof dp->std);
        }
    rt_aug_pipeline pipe = {ops, p->naug, p->in_h, p->in_w};
    if (rt_aug_check(&pipe, dp->h, dp->w, dp->c, p->in_c, err, errlen) != 0) goto out;

    int64_t B = p->batch, n = dp->n, steps_per_epoch = (n + B - 1) / B, Blast = n % B;
    if (n < 2) { snprintf(err, errlen, "%s: needs at least 2 images", o->data); goto out; }
    if (Blast && (!p->train_last || p->train_last->B != Blast)) {
        snprintf(err, errlen, "%s: %lld images leave a last batch of %lld, which this program was not compiled for",
                 o->data, (long long)n, (long long)Blast);
        goto out;
    }
    if (Blast == 1) {
        snprintf(err, errlen, "%s: the last batch would hold 1 image (BatchNorm needs 2); choose another batch size", o->data);
        goto out;
    }
    if (p->train_full->B != B) { snprintf(err, errlen, "program compiled for batch %lld, not %lld", (long long)p->train_full->B, (long long)B); goto out; }
    if (rt_model_init(&m, p, err, errlen) != 0) goto out;
    if (plan_entry(&full, p->train_full, err, errlen) != 0) goto out;
    if (Blast && plan_entry(&last, p->train_last, err, errlen) != 0) goto out;

    if (make_dir(o->out_dir, err, errlen) != 0) goto out;
    rt_clean_stale_tmp(o->out_dir);   /* of runs killed while saving */
    int64_t step = 0, start_epoch = 0;
    char ckpt[1024];
    if (o->resume) {
        snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", o->resume);
        rt_ckpt_run want = {0, 0, o->seed, n}, got;
        int flags = RT_CKPT_REQUIRE_OPTIM | (o->resume_anyway ? 0 : RT_CKPT_SAME_RUN);
        if (rt_checkpoint_load(ckpt, p, m.params, m.state, m.opt_m, m.opt_v, &want, &got, flags, err, errlen) != 0) goto out;
        step = got.step;
        start_epoch = got.epoch;
        if (!o->quiet) fprintf(stderr, "rrc: resuming from %s at epoch %lld, step %lld\n", ckpt, (long long)start_epoch + 1, (long long)step);
    } else {
        rt_model_seed(&m, o->seed);
    }
    char path[1024], csv_path[1024];
    snprintf(csv_path, sizeof csv_path, "%s/metrics.csv", o->out_dir);
    bool fresh = !o->resume || access(csv_path, F_OK) != 0;
    double seconds_before = 0;
    if (!fresh && metrics_resume(csv_path, step, &seconds_before, err, errlen) != 0) goto out;
    csv = fopen(csv_path, fresh ? "w" : "a");
    if (!csv) { snprintf(err, errlen, "%s: cannot write: %s", csv_path, strerror(errno)); goto out; }
    if (fresh) fprintf(csv, "epoch,step,loss,pair_acc,pos_acc,neg_acc,images_per_s,seconds\n");

    perm = malloc((size_t)n * sizeof *perm);
    if (!perm) { snprintf(err, errlen, "out of memory"); goto out; }

    bool tty = isatty(2) && !o->quiet;
    double t_start = now();
    int64_t total_steps = (int64_t)o->epochs * steps_per_epoch, run_steps = 0;
    if (!o->quiet)
        fprintf(stderr, "rrc: training %s on %s (%lld images, %lld steps per epoch, K=%d, B=%lld) for %d epochs, engine %s, run %s\n",
                p->spec_name, dp->name, (long long)n, (long long)steps_per_epoch, p->K, (long long)B, o->epochs,
                o->engine ? o->engine : "?", o->out_dir);
    bool stopped = false;
    for (int epoch = (int)start_epoch; epoch < o->epochs && !stopped; epoch++) {
        epoch_order(perm, n, o->seed, epoch);
        int64_t first = step - (int64_t)epoch * steps_per_epoch;   /* > 0 when resuming mid-epoch */
        if (first < 0) first = 0;
        double ep_loss = 0, ep_acc = 0;
        int64_t ep_n = 0;
        for (int64_t s = first; s < steps_per_epoch; s++) {
            rt_prof_step_begin();   /* --profile: the whole iteration, making the views included */
            double t0 = now();
            int64_t b0 = s * B, bsz = b0 + B <= n ? B : n - b0;
            const EntryPlan *pl = bsz == B ? &full : &last;
            /* the views, straight into the step's input, on all the threads
               the step has (--threads counts every thread the run uses) */
            rt_augment_batch(&pipe, dp->pixels, dp->h, dp->w, dp->c, p->in_c, perm + b0, (int)bsz, p->K, o->seed,
                             (uint32_t)epoch, o->nthreads, tensor_ptr(&m, pl->x));
            rt_model_run(&m, pl->e);
            step++;
            run_steps++;
            apply_update(&m, pl, step, epoch, o->epochs);
            int64_t P = numel(pl->logits);
            rt_step_metrics mt = rt_pair_metrics(tensor_ptr(&m, pl->logits), tensor_ptr(&m, pl->targets), P,
                                                 tensor_ptr(&m, pl->loss)[0]);
            double dt = now() - t0, elapsed = now() - t_start;
            double ips = (double)(p->K * bsz) / (dt > 0 ? dt : 1e-9);
            ep_loss += mt.loss;
            ep_acc += mt.pair_acc;
            ep_n++;
            if (fprintf(csv, "%d,%lld,%.6f,%.6f,%.6f,%.6f,%.1f,%.3f\n", epoch + 1, (long long)step, mt.loss, mt.pair_acc,
                        mt.pos_acc, mt.neg_acc, ips, seconds_before + elapsed) < 0) {
                rt_flush_checked(csv, csv_path, err, errlen);
                goto out;
            }
            if (!isfinite(mt.loss)) {
                snprintf(err, errlen, "step %lld: the loss is not finite (%g); stopping", (long long)step, mt.loss);
                goto out;
            }
            bool last_step = s + 1 == steps_per_epoch || (o->max_steps && run_steps >= o->max_steps);
            if (tty || (!o->quiet && (step % 100 == 0 || last_step))) {
                int64_t left = (o->max_steps ? o->max_steps - run_steps : total_steps - step);
                char eta[32];
                fmt_duration(eta, sizeof eta, elapsed / (double)run_steps * (double)left);
                fprintf(stderr, "%sepoch %d/%d step %lld/%lld loss %.4f acc %.3f (pos %.3f neg %.3f) %.0f img/s ETA %s%s",
                        tty ? "\r" : "", epoch + 1, o->epochs, (long long)(s + 1), (long long)steps_per_epoch, mt.loss,
                        mt.pair_acc, mt.pos_acc, mt.neg_acc, ips, eta, tty ? "\033[K" : "\n");
            }
            rt_prof_step_end();
            if (o->max_steps && run_steps >= o->max_steps) {
                stopped = true;
                /* a mid-epoch stop resumes inside this epoch */
                if (s + 1 < steps_per_epoch) epoch--;
                break;
            }
        }
        if (tty) fputc('\n', stderr);
        /* the rows first: a checkpoint must never be ahead of its log */
        if (rt_flush_checked(csv, csv_path, err, errlen) != 0) goto out;
        int64_t ckpt_epoch = epoch + 1;
        snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", o->out_dir);
        rt_ckpt_run run = {step, ckpt_epoch, o->seed, n};
        if (rt_checkpoint_save(ckpt, p, m.params, m.state, m.opt_m, p->optim == RT_OPT_ADAM ? m.opt_v : NULL, &run, err,
                               errlen) != 0)
            goto out;
        if (o->checkpoint_every && ckpt_epoch % o->checkpoint_every == 0 && !stopped) {
            snprintf(path, sizeof path, "%s/epoch_%lld.safetensors", o->out_dir, (long long)ckpt_epoch);
            if (rt_checkpoint_save(path, p, m.params, m.state, m.opt_m, p->optim == RT_OPT_ADAM ? m.opt_v : NULL, &run, err,
                                   errlen) != 0)
                goto out;
        }
        if (!o->quiet && ep_n && !stopped)
            fprintf(stderr, "rrc: epoch %d: mean loss %.4f, pair accuracy %.4f; checkpoint %s\n", epoch + 1,
                    ep_loss / (double)ep_n, ep_acc / (double)ep_n, ckpt);
    }
    FILE *done = csv;
    csv = NULL;
    if (rt_close_checked(done, csv_path, err, errlen) != 0) goto out;
    plot_curves(o->out_dir, o->quiet);
    if (!o->quiet) fprintf(stderr, "rrc: %lld steps in %.1f s; run directory %s\n", (long long)run_steps, now() - t_start, o->out_dir);
    rc = 0;
out:
    if (csv) fclose(csv);
    free(perm);
    free(ops);
    free_plan(&full);
    free_plan(&last);
    rt_model_free(&m);
    rt_dataset_free(&own);
    return rc;
}

/* ---- evaluation features ---- */

void rt_features(rt_model *m, const rt_dataset *d, const double mean[3], const double std[3], float *out) {
    const rt_entry *e = m->p->features;
    const rt_step_tensor *x = rt_entry_tensor(e, "x"), *f = rt_entry_tensor(e, "features");
    int64_t R = e->B, F = m->p->feat_dim, img = (int64_t)m->p->in_c * m->p->in_h * m->p->in_w;
    float *xp = tensor_ptr(m, x), *fp = tensor_ptr(m, f);
    for (int64_t i0 = 0; i0 < d->n; i0 += R) {
        int64_t rows = i0 + R <= d->n ? R : d->n - i0;
        /* eval-mode BatchNorm treats rows independently: zero rows pad the last chunk */
        memset(xp, 0, (size_t)(R * img) * sizeof(float));
        for (int64_t r = 0; r < rows; r++)
            rt_normalize_image(d->pixels + (size_t)(i0 + r) * (size_t)(d->h * d->w * d->c), d->h, d->w, d->c, m->p->in_c, mean,
                               std, xp + r * img);
        rt_model_run(m, e);
        memcpy(out + i0 * F, fp, (size_t)(rows * F) * sizeof(float));
    }
}
