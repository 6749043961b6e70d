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

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rt_checkpoint.h"
#include "rt_comm.h"
#include "rt_eval.h"
#include "rt_file.h"
#include "rt_prof.h"
#include "rt_rng.h"
#include "rt_deepcluster.h"
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

float *rt_model_tensor(rt_model *m, const rt_step_tensor *t) {
    char *base = t->region == RT_REGION_PARAM ? m->params : t->region == RT_REGION_STATE ? m->state : m->io[t->region];
    return (float *)(base + t->offset);
}

static float *tensor_ptr(rt_model *m, const rt_step_tensor *t) { return rt_model_tensor(m, t); }

/* ---- metrics ---- */

/* A metrics.csv field: empty for a metric the method does not have. */
static void fmt_metric(char *buf, size_t n, double v) {
    if (isnan(v)) buf[0] = 0;
    else snprintf(buf, n, "%.6f", v);
}

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

rt_step_metrics rt_class_metrics(const float *logits, const float *targets, int64_t N, int64_t C, double loss) {
    int64_t ok = 0;
    for (int64_t i = 0; i < N; i++) {
        const float *z = logits + i * C;
        int64_t best = 0;   /* the first maximum, as torch.argmax */
        for (int64_t c = 1; c < C; c++)
            if (z[c] > z[best]) best = c;
        ok += best == (int64_t)targets[i];
    }
    return (rt_step_metrics){loss, N ? (double)ok / (double)N : 0, NAN, NAN};
}

rt_step_metrics rt_contrastive_metrics(const float *z, int64_t N, int64_t D, double loss) {
    /* on every step, so the O(N^2 D) products go to one sgemm; ranking row
       i's neighbours needs only their norms, not row i's */
    float *gram = N >= 2 ? malloc((size_t)(N * N + N) * sizeof *gram) : NULL;
    if (!gram) return (rt_step_metrics){loss, NAN, NAN, NAN};
    float *norm = gram + N * N;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)N, (blasint)N, (blasint)D, 1.0f, z, (blasint)D, z, (blasint)D,
                0.0f, gram, (blasint)N);
    for (int64_t i = 0; i < N; i++) norm[i] = sqrtf(gram[i * N + i]) > 1e-8f ? sqrtf(gram[i * N + i]) : 1e-8f;
    int64_t ok = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t best = -1;
        float bs = -INFINITY;
        for (int64_t j = 0; j < N; j++) {
            float s = gram[i * N + j] / norm[j];
            if (j != i && s > bs) { bs = s; best = j; }
        }
        ok += best == (i + N / 2) % N;   /* rows are view-major: the partner is B rows away */
    }
    free(gram);
    return (rt_step_metrics){loss, (double)ok / (double)N, NAN, NAN};
}

const char *rt_acc_name(rt_method m) {
    switch (m) {
    case RT_METHOD_ROTATION: return "rotation_acc";
    case RT_METHOD_SIMCLR: return "contrastive_acc";
    case RT_METHOD_DEEPCLUSTER: return "pseudolabel_acc";
    case RT_METHOD_DIM: return "acc";   /* none: the column stays empty */
    case RT_METHOD_RELATIONAL: case RT_METHOD_SUPERVISED: break;
    }
    return "pair_acc";
}

/* The metrics of the step an entry just ran, by the outputs it has. */
static rt_step_metrics step_metrics(const rt_step_tensor *logits, const float *lv, const float *tv, const float *zv,
                                    const rt_step_tensor *z, double loss) {
    if (logits && logits->rank == 1) return rt_pair_metrics(lv, tv, logits->dim[0], loss);
    if (logits && logits->rank == 2) return rt_class_metrics(lv, tv, logits->dim[0], logits->dim[1], loss);
    if (z && z->rank == 2) return rt_contrastive_metrics(zv, z->dim[0], z->dim[1], loss);
    return (rt_step_metrics){loss, NAN, NAN, NAN};
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
    const rt_step_tensor *x, *loss, *logits, *targets, *z;   /* logits and targets, or z, or none */
    const rt_step_tensor *y, *w;   /* DeepCluster's inputs: the batch's pseudolabels, the clusters' weights */
    const rt_step_tensor *u;       /* Deep InfoMax's input: samples of the prior, U[0, 1) */
    int64_t npartial;              /* elements of the gradients that are a rank's part (RT_TENSOR_PARTIAL) */
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
            if (t->flags & RT_TENSOR_PARTIAL) pl->npartial += numel(t);
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
    pl->z = rt_entry_tensor(e, "z");
    pl->y = rt_entry_tensor(e, "y");
    pl->w = rt_entry_tensor(e, "w");
    pl->u = rt_entry_tensor(e, "u");
    if (!pl->targets && pl->y) pl->targets = pl->y;   /* DeepCluster: the pseudolabels it was given */
    if (!pl->y != !pl->w) {
        snprintf(err, errlen, "%s: entry has one of the inputs y and w without the other", e->name);
        return -1;
    }
    if (!pl->x || !pl->loss || !pl->logits != !pl->targets) {
        snprintf(err, errlen, "%s: entry lacks x, loss, or one of logits and targets", e->name);
        return -1;
    }
    return 0;
}

static void free_plan(EntryPlan *pl) {
    free(pl->up);
    free(pl->sc);
}

/* The gradients that are this rank's part, summed over the ranks in one
   collective (the bucket: they are copied together, summed, copied back);
   the others (the relation head's, computed alike by every rank) are
   whole already. */
static void sum_partial_grads(rt_model *m, const EntryPlan *pl, float *bucket) {
    if (!pl->npartial || rt_comm_get()->size == 1) return;
    for (int back = 0; back < 2; back++) {   /* into the bucket, summed, back */
        if (back) rt_comm_sum_f32(bucket, pl->npartial);
        float *b = bucket;
        for (int i = 0; i < pl->nup; i++) {
            if (!(pl->up[i].grad->flags & RT_TENSOR_PARTIAL)) continue;
            float *g = tensor_ptr(m, pl->up[i].grad);
            size_t bytes = (size_t)numel(pl->up[i].grad) * sizeof *b;
            memcpy(back ? g : b, back ? b : g, bytes);
            b += numel(pl->up[i].grad);
        }
    }
}

static double sgd_lr(const rt_program *p, int epoch, int epochs) {
    double lr = p->sgd.lr;
    for (int i = 0; i < p->nmilestones; i++)
        if (epoch >= milestone_epoch(p->milestones[i], epochs)) lr *= p->lr_gamma;
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

/* metrics.csv: a row per step, and with --monitor knn a row per monitored
   epoch (at that epoch's last step, its step columns empty) with the kNN
   accuracies of the test split. */
#define METRICS_HEADER "epoch,step,loss,%s,pos_acc,neg_acc,images_per_s,seconds,knn_top1,knn_top5\n"
#define METRICS_SECONDS_COL 7   /* 0-based */

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
            const char *c = strchr(line, ','), *sec = line;
            if (!c || strtoll(c + 1, NULL, 10) > step) break;
            for (int k = 0; k < METRICS_SECONDS_COL && sec; k++) sec = strchr(sec + 1, ',');
            if (sec) *seconds = strtod(sec + 1, NULL);
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
static void plot_curves(const char *dir, int quiet, bool knn, rt_method method) {
    char label[64];   /* "pair_acc" -> "pair accuracy" (an underscore would be a gnuplot subscript) */
    snprintf(label, sizeof label, "%.*s accuracy", (int)strcspn(rt_acc_name(method), "_"), rt_acc_name(method));
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
                     "set terminal png size %d,420\n"
                     "set output out\n"
                     "set datafile separator ','\n"
                     "set multiplot layout 1,%d\n"
                     "set xlabel 'epoch'\n"
                     "set key off\n"
                     "set grid\n"
                     "set title '%s loss (mean per epoch)'\n"
                     "plot '%s/metrics.csv' every ::1 using 1:3 smooth unique with linespoints pt 7\n"
                     "set title '%s (mean per epoch)'\n"
                     "plot '%s/metrics.csv' every ::1 using 1:4 smooth unique with linespoints pt 7\n"
                     "%s%s%s"
                     "unset multiplot\n"
                     "set output\n",
                     dir, png, knn ? 1500 : 1000, knn ? 3 : 2, rt_method_name(method), dir, label, dir,
                     knn ? "set title 'kNN top-1 on the test split (--monitor knn)'\nplot '" : "", knn ? dir : "",
                     knn ? "/metrics.csv' every ::1 using 1:9 with linespoints pt 7\n" : "");
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

/* A training run: what its phases share. */
typedef struct Run {
    const rt_program *p;
    const rt_train_opts *o;
    char *err;
    size_t errlen;
    rt_dataset own;            /* the data set, when the run loaded it */
    const rt_dataset *dp;
    rt_aug_op *ops;
    rt_aug_pipeline pipe;
    int64_t B, n, steps_per_epoch, Blast;
    rt_model m;
    EntryPlan full, last;
    int64_t *perm;
    int64_t step, start_epoch, run_steps, total_steps;
    FILE *csv;
    char csv_path[1024], ckpt[1024];
    rt_dataset test;           /* --monitor knn: the test split */
    float *ftr, *fte;          /* and the features of both splits */
    double mean[3], std[3];    /* the normalisation of evaluation */
    double seconds_before, t_start;
    bool tty, stopped;
    rt_dc dc;                  /* DeepCluster: this epoch's pseudolabels and weights */
    /* data-parallel (rt_comm.h): this rank makes the views of its share of
       each batch; rank 0 alone writes (metrics, checkpoints, progress) */
    const rt_comm *cm;
    bool io;                   /* this rank writes */
    float *bucket;             /* the partial gradients, summed over ranks */
    double comm_before;        /* rt_comm_seconds() at the run's start */
} Run;

/* A program compiled for gray images (rt_program.gray_input) convolves
   channel 0 of each view alone: its views must have equal channels. They
   do when the data set is gray (rt_dataset.gray: the augmentations keep
   r = g = b) and every normalisation treats the channels alike. */
static bool gray_views(Run *r, const rt_dataset *dp) {
    const char *why = !dp->gray ? "its images have colour" : NULL;
    for (int i = 0; i < r->pipe.nops && !why; i++) {
        const rt_aug_op *op = &r->pipe.ops[i];
        if (op->kind == RT_AUG_NORMALIZE && (op->mean[1] != op->mean[0] || op->mean[2] != op->mean[0] ||
                                             op->std[1] != op->std[0] || op->std[2] != op->std[0]))
            why = "its normalisation differs between channels";
    }
    if (why)
        snprintf(r->err, r->errlen, "%s: %s, but this trainer was compiled for gray images (their first channel alone): "
                 "compile the spec for this data (rrc compile SPEC --data %s)", r->o->data, why, r->o->data);
    return !why;
}

/* Phase 1: the data set, checked against the program; the views'
   augmentation pipeline. */
static int run_data(Run *r) {
    const rt_program *p = r->p;
    const rt_train_opts *o = r->o;
    rt_data_opts dopts = {p->in_h, p->in_w, p->in_c, o->seed};
    r->dp = o->dataset;
    if (!r->dp) {
        if (rt_dataset_load_subset(o->data, RT_SPLIT_TRAIN, &dopts, &o->subset, &r->own, r->err, r->errlen) != 0) return -1;
        r->dp = &r->own;
    }
    const rt_dataset *dp = r->dp;
    if (dp->h != p->in_h || dp->w != p->in_w) {
        snprintf(r->err, r->errlen, "%s: images are %dx%d, the spec's input is %dx%d", o->data, dp->h, dp->w, p->in_h, p->in_w);
        return -1;
    }
    /* the dataset's own normalisation takes precedence over the spec's */
    r->ops = malloc((size_t)(p->naug ? p->naug : 1) * sizeof *r->ops);
    if (!r->ops) { snprintf(r->err, r->errlen, "out of memory"); return -1; }
    memcpy(r->ops, p->aug, (size_t)p->naug * sizeof *r->ops);
    for (int i = 0; i < p->naug; i++)
        if (r->ops[i].kind == RT_AUG_NORMALIZE && dp->has_norm) {
            memcpy(r->ops[i].mean, dp->mean, sizeof dp->mean);
            memcpy(r->ops[i].std, dp->std, sizeof dp->std);
        }
    r->pipe = (rt_aug_pipeline){r->ops, p->naug, p->in_h, p->in_w, dp->gray};
    if (rt_aug_check(&r->pipe, dp->h, dp->w, dp->c, p->in_c, r->err, r->errlen) != 0) return -1;
    if (p->gray_input && !gray_views(r, dp)) return -1;
    r->B = p->batch;
    r->n = dp->n;
    r->steps_per_epoch = p->drop_last ? r->n / r->B : (r->n + r->B - 1) / r->B;
    r->Blast = p->drop_last ? 0 : r->n % r->B;
    if (r->steps_per_epoch < 1) {
        snprintf(r->err, r->errlen, "%s: %lld images do not fill one batch of %lld, and %s drops a partial one", o->data,
                 (long long)r->n, (long long)r->B, rt_method_name(p->method));
        return -1;
    }
    r->total_steps = (int64_t)o->epochs * r->steps_per_epoch;
    if (o->monitor_every <= 0) return 0;
    /* --monitor knn: the test split (of the same classes), the
       normalisation of evaluation, room for the features */
    if (!p->features || !dp->labels) {
        snprintf(r->err, r->errlen, "--monitor knn needs %s", !p->features ? "a program with a features entry" : "labels");
        return -1;
    }
    rt_data_subset part = {.classes = o->subset.classes};
    if (rt_dataset_load_subset(o->data, RT_SPLIT_TEST, &dopts, &part, &r->test, r->err, r->errlen) != 0) return -1;
    if (!r->test.labels) {
        snprintf(r->err, r->errlen, "%s: --monitor knn needs a labelled test split", o->data);
        return -1;
    }
    for (int c = 0; c < 3; c++) r->mean[c] = 0, r->std[c] = 1;
    for (int i = 0; i < p->naug; i++)
        if (r->ops[i].kind == RT_AUG_NORMALIZE) {
            memcpy(r->mean, r->ops[i].mean, sizeof r->mean);
            memcpy(r->std, r->ops[i].std, sizeof r->std);
        }
    r->ftr = malloc((size_t)(dp->n * p->feat_dim) * sizeof *r->ftr);
    r->fte = malloc((size_t)(r->test.n * p->feat_dim) * sizeof *r->fte);
    if (!r->ftr || !r->fte) {
        snprintf(r->err, r->errlen, "out of memory for the monitor's features");
        return -1;
    }
    return 0;
}

/* Phase 2: the program's entries for a full and the last batch, checked
   against the data set's size; the model's memory. */
static int run_model(Run *r) {
    const rt_program *p = r->p;
    const char *data = r->o->data;
    if (r->n < 2) { snprintf(r->err, r->errlen, "%s: needs at least 2 images", data); return -1; }
    if (r->Blast && (!p->train_last || p->train_last->B_total != r->Blast)) {
        snprintf(r->err, r->errlen, "%s: %lld images leave a last batch of %lld, which this program was not compiled for", data,
                 (long long)r->n, (long long)r->Blast);
        return -1;
    }
    if (r->Blast == 1) {
        snprintf(r->err, r->errlen, "%s: the last batch would hold 1 image (BatchNorm needs 2); choose another batch size", data);
        return -1;
    }
    if (p->train_full->B_total != r->B) {
        snprintf(r->err, r->errlen, "program compiled for batch %lld, not %lld", (long long)p->train_full->B_total, (long long)r->B);
        return -1;
    }
    if (r->cm->size > 1 && r->o->monitor_every) {
        snprintf(r->err, r->errlen, "--monitor knn runs in one process; evaluate the run's checkpoints after it");
        return -1;
    }
    if (rt_model_init(&r->m, p, r->err, r->errlen) != 0) return -1;
    if (plan_entry(&r->full, p->train_full, r->err, r->errlen) != 0) return -1;
    if (r->Blast && plan_entry(&r->last, p->train_last, r->err, r->errlen) != 0) return -1;
    int64_t nb = r->full.npartial > r->last.npartial ? r->full.npartial : r->last.npartial;
    if (nb && r->cm->size > 1 && !(r->bucket = malloc((size_t)nb * sizeof *r->bucket))) {
        snprintf(r->err, r->errlen, "out of memory");
        return -1;
    }
    r->perm = malloc((size_t)r->n * sizeof *r->perm);
    if (!r->perm) { snprintf(r->err, r->errlen, "out of memory"); return -1; }
    if (p->method == RT_METHOD_DEEPCLUSTER) {
        if (!r->full.y || !p->features) {
            snprintf(r->err, r->errlen, "deepcluster: the program lacks the pseudolabel inputs or the features entry");
            return -1;
        }
        /* the training views go through the pipeline twice, the second time
           from an 8-bit view of the first */
        if (rt_aug_check(&r->pipe, p->in_h, p->in_w, p->in_c, p->in_c, r->err, r->errlen) != 0) return -1;
        if (rt_dc_init(&r->dc, r->n, p->feat_dim, p->clusters, r->err, r->errlen) != 0) return -1;
    }
    return 0;
}

/* Phase 3: the run directory (stale temporary files removed); the
   parameters, seeded or resumed from a checkpoint of the same run; and
   metrics.csv, fresh or cut back to the checkpoint. */
static int run_start_io(Run *r) {
    const rt_program *p = r->p;
    const rt_train_opts *o = r->o;
    rt_model *m = &r->m;
    if (make_dir(o->out_dir, r->err, r->errlen) != 0) return -1;
    rt_clean_stale_tmp(o->out_dir);   /* of runs killed while saving */
    if (o->resume) {
        snprintf(r->ckpt, sizeof r->ckpt, "%s/last.safetensors", o->resume);
        rt_ckpt_run want = {0, 0, o->seed, r->n}, got;
        int flags = RT_CKPT_REQUIRE_OPTIM | (o->resume_anyway ? 0 : RT_CKPT_SAME_RUN);
        if (rt_checkpoint_load(r->ckpt, p, m->params, m->state, m->opt_m, m->opt_v, &want, &got, flags, r->err, r->errlen) != 0)
            return -1;
        r->step = got.step;
        r->start_epoch = got.epoch;
        if (!o->quiet)
            fprintf(stderr, "rrc: resuming from %s at epoch %lld, step %lld\n", r->ckpt, (long long)r->start_epoch + 1,
                    (long long)r->step);
    } else {
        rt_model_seed(m, o->seed);
    }
    snprintf(r->csv_path, sizeof r->csv_path, "%s/metrics.csv", o->out_dir);
    bool fresh = !o->resume || access(r->csv_path, F_OK) != 0;
    if (!fresh && metrics_resume(r->csv_path, r->step, &r->seconds_before, r->err, r->errlen) != 0) return -1;
    r->csv = fopen(r->csv_path, fresh ? "w" : "a");
    if (!r->csv) { snprintf(r->err, r->errlen, "%s: cannot write: %s", r->csv_path, strerror(errno)); return -1; }
    if (fresh) fprintf(r->csv, METRICS_HEADER, rt_acc_name(p->method));
    return 0;
}

/* Phase 3: rank 0 makes the run directory (stale temporary files
   removed), seeds the parameters or resumes them from a checkpoint of the
   same run, and opens metrics.csv, fresh or cut back to the checkpoint;
   then every rank gets its model, optimizer state and position (the ranks
   need no shared file system). */
static int run_start(Run *r) {
    int32_t status = r->io ? run_start_io(r) : 0;
    if (r->cm->size == 1) return status;
    rt_comm_bcast(&status, sizeof status, 0);
    if (status != 0) {
        if (!r->io) snprintf(r->err, r->errlen, "rank 0 could not start the run (it says why)");
        return -1;
    }
    const rt_entry *e = r->p->train_full;
    size_t pb = (size_t)e->region_bytes[RT_REGION_PARAM], sb = (size_t)e->region_bytes[RT_REGION_STATE];
    rt_comm_bcast(r->m.params, pb, 0);
    rt_comm_bcast(r->m.state, sb, 0);
    rt_comm_bcast(r->m.opt_m, pb, 0);
    rt_comm_bcast(r->m.opt_v, pb, 0);
    int64_t pos[2] = {r->step, r->start_epoch};
    rt_comm_bcast(pos, sizeof pos, 0);
    r->step = pos[0], r->start_epoch = pos[1];
    return 0;
}

/* One step of batch s of an epoch: the views, the compiled step, the
   update, a metrics row and the progress line. */
static int run_step(Run *r, int epoch, int64_t s, double *ep_loss, double *ep_acc) {
    const rt_program *p = r->p;
    const rt_train_opts *o = r->o;
    rt_model *m = &r->m;
    rt_prof_step_begin();   /* --profile: the whole iteration, making the views included */
    double t0 = now();
    int64_t b0 = s * r->B, bsz = b0 + r->B <= r->n ? r->B : r->n - b0;
    const EntryPlan *pl = bsz == r->B ? &r->full : &r->last;
    /* this rank's images of the batch: the one-process views of each, from
       the same (seed, epoch, image, view) streams */
    int64_t off, mine = rt_comm_share(bsz, r->cm->rank, r->cm->size, &off);
    /* the views, straight into the step's input, on all the threads the
       step has (--threads counts every thread the run uses) */
    if (p->method == RT_METHOD_DEEPCLUSTER) {
        rt_dc_views(&r->pipe, r->dp, p->in_c, r->perm + b0, (int)bsz, o->seed, epoch, o->nthreads, tensor_ptr(m, pl->x));
        float *y = tensor_ptr(m, pl->y);
        for (int64_t i = 0; i < bsz; i++) y[i] = (float)r->dc.labels[r->perm[b0 + i]];
        memcpy(tensor_ptr(m, pl->w), r->dc.w, (size_t)r->dc.k * sizeof(float));
    } else {
        rt_augment_batch(&r->pipe, r->dp->pixels, r->dp->h, r->dp->w, r->dp->c, p->in_c, r->perm + b0 + off, (int)mine, p->K,
                         o->seed, (uint32_t)epoch, o->nthreads, tensor_ptr(m, pl->x));
    }
    if (pl->u) {   /* torch.rand_like(y): one stream per step of the run */
        rt_stream st;
        rt_stream_init(&st, o->seed, RT_DOMAIN_PRIOR, (uint32_t)epoch, (uint32_t)s);
        float *u = tensor_ptr(m, pl->u);
        for (int64_t i = 0, nu = numel(pl->u); i < nu; i++) u[i] = (float)rt_stream_uniform(&st);
    }
    rt_model_run(m, pl->e);
    sum_partial_grads(m, pl, r->bucket);
    r->step++;
    r->run_steps++;
    apply_update(m, pl, r->step, epoch, o->epochs);
    rt_step_metrics mt = step_metrics(pl->logits, pl->logits ? tensor_ptr(m, pl->logits) : NULL,
                                      pl->targets ? tensor_ptr(m, pl->targets) : NULL, pl->z ? tensor_ptr(m, pl->z) : NULL, pl->z,
                                      tensor_ptr(m, pl->loss)[0]);
    double dt = now() - t0, elapsed = now() - r->t_start;
    double ips = (double)(rt_backbone_views(p) * bsz) / (dt > 0 ? dt : 1e-9);
    *ep_loss += mt.loss;
    *ep_acc += mt.acc;
    char acc[3][32];
    fmt_metric(acc[0], sizeof acc[0], mt.acc);
    fmt_metric(acc[1], sizeof acc[1], mt.pos_acc);
    fmt_metric(acc[2], sizeof acc[2], mt.neg_acc);
    if (r->csv && fprintf(r->csv, "%d,%lld,%.6f,%s,%s,%s,%.1f,%.3f,,\n", epoch + 1, (long long)r->step, mt.loss, acc[0], acc[1],
                          acc[2], ips, r->seconds_before + elapsed) < 0) {
        rt_flush_checked(r->csv, r->csv_path, r->err, r->errlen);
        return -1;
    }
    if (!isfinite(mt.loss)) {
        snprintf(r->err, r->errlen, "step %lld: the loss is not finite (%g); stopping", (long long)r->step, mt.loss);
        return -1;
    }
    bool last_step = s + 1 == r->steps_per_epoch || (o->max_steps && r->run_steps >= o->max_steps);
    if (r->io && (r->tty || (!o->quiet && (r->step % 100 == 0 || last_step)))) {
        int64_t left = (o->max_steps ? o->max_steps - r->run_steps : r->total_steps - r->step);
        char eta[32];
        fmt_duration(eta, sizeof eta, elapsed / (double)r->run_steps * (double)left);
        char accs[64] = "";
        if (!isnan(mt.pos_acc))
            snprintf(accs, sizeof accs, " acc %.3f (pos %.3f neg %.3f)", mt.acc, mt.pos_acc, mt.neg_acc);
        else if (!isnan(mt.acc))
            snprintf(accs, sizeof accs, " acc %.3f", mt.acc);
        fprintf(stderr, "%sepoch %d/%d step %lld/%lld loss %.4f%s %.0f img/s ETA %s%s", r->tty ? "\r" : "", epoch + 1, o->epochs,
                (long long)(s + 1), (long long)r->steps_per_epoch, mt.loss, accs, ips, eta, r->tty ? "\033[K" : "\n");
    }
    rt_prof_step_end();
    return 0;
}

/* The checkpoint at the end of an epoch (or of a --max-steps stop): the
   rows first, so a checkpoint is never ahead of its log. */
static int run_checkpoint(Run *r, int64_t ckpt_epoch) {
    const rt_program *p = r->p;
    const rt_train_opts *o = r->o;
    rt_model *m = &r->m;
    if (!r->io) return 0;
    if (rt_flush_checked(r->csv, r->csv_path, r->err, r->errlen) != 0) return -1;
    snprintf(r->ckpt, sizeof r->ckpt, "%s/last.safetensors", o->out_dir);
    rt_ckpt_run run = {r->step, ckpt_epoch, o->seed, r->n};
    const float *v = p->optim == RT_OPT_ADAM ? m->opt_v : NULL;
    if (rt_checkpoint_save(r->ckpt, p, m->params, m->state, m->opt_m, v, &run, r->err, r->errlen) != 0) return -1;
    if (o->checkpoint_every && ckpt_epoch % o->checkpoint_every == 0 && !r->stopped) {
        char path[1100];
        snprintf(path, sizeof path, "%s/epoch_%lld.safetensors", o->out_dir, (long long)ckpt_epoch);
        if (rt_checkpoint_save(path, p, m->params, m->state, m->opt_m, v, &run, r->err, r->errlen) != 0) return -1;
    }
    return 0;
}

/* --monitor knn at the end of an epoch: eval-mode features of both splits,
   the weighted kNN's accuracy on the test split, a metrics row. */
static int run_monitor(Run *r, int epoch) {
    const rt_program *p = r->p;
    double t0 = now();
    rt_features(&r->m, r->dp, r->mean, r->std, r->ftr);
    rt_features(&r->m, &r->test, r->mean, r->std, r->fte);
    int classes = r->dp->nclasses > r->test.nclasses ? r->dp->nclasses : r->test.nclasses;
    rt_knn_result k;
    if (rt_knn_eval(r->ftr, r->dp->labels, r->dp->n, r->fte, r->test.labels, r->test.n, p->feat_dim, classes, RT_KNN_K,
                    RT_KNN_T, NULL, &k, r->err, r->errlen) != 0)
        return -1;
    if (fprintf(r->csv, "%d,%lld,,,,,,%.3f,%.6f,%.6f\n", epoch + 1, (long long)r->step,
                r->seconds_before + (now() - r->t_start), k.top1, k.top5) < 0 ||
        rt_flush_checked(r->csv, r->csv_path, r->err, r->errlen) != 0) {
        if (!r->err[0]) snprintf(r->err, r->errlen, "%s: cannot write", r->csv_path);
        return -1;
    }
    if (!r->o->quiet)
        fprintf(stderr, "rrc: epoch %d: kNN top-1 %.2f%%, top-5 %.2f%% on the test split (%.1f s)\n", epoch + 1, 100 * k.top1,
                100 * k.top5, now() - t0);
    return 0;
}

/* DeepCluster's clustering at the start of an epoch (also of one resumed
   in the middle: then from the parameters of the checkpoint, so such a run
   differs from an uninterrupted one; one resumed at an epoch's start does
   not). */
static int run_cluster(Run *r, int epoch) {
    rt_dc_report rep;
    if (rt_dc_epoch(&r->dc, &r->m, &r->pipe, r->dp, r->o->seed, epoch, r->o->nthreads, &rep, r->err, r->errlen) != 0) return -1;
    if (!r->o->quiet) {
        char nmi[64] = "";
        if (!isnan(rep.nmi)) snprintf(nmi, sizeof nmi, ", NMI with the labels %.4f", rep.nmi);
        fprintf(stderr, "rrc: epoch %d: k-means of %lld features into %d clusters: inertia %.1f after %d iterations%s%s (%.1f s)\n",
                epoch + 1, (long long)r->n, r->dc.k, rep.inertia, rep.iterations, nmi, rep.empty ? ", some clusters empty" : "",
                rep.seconds);
        if (rep.null_comps || rep.zero_rows)
            fprintf(stderr, "rrc: note: whitening: %lld components without variance, %lld zero rows (set to 0)\n",
                    (long long)rep.null_comps, (long long)rep.zero_rows);
    }
    return 0;
}

/* Phase 4: epochs from where the run stands, each ending in a checkpoint;
   --max-steps stops early (a mid-epoch stop resumes inside that epoch). */
static int run_epochs(Run *r) {
    const rt_train_opts *o = r->o;
    r->tty = isatty(2) && !o->quiet && r->io;
    r->t_start = now();
    r->comm_before = rt_comm_seconds();
    if (!o->quiet && r->io && r->cm->size > 1) {
        int64_t off, lo = rt_comm_share(r->B, r->cm->size - 1, r->cm->size, &off), hi = rt_comm_share(r->B, 0, r->cm->size, &off);
        char share[64];
        if (lo == hi) snprintf(share, sizeof share, "%lld", (long long)hi);
        else snprintf(share, sizeof share, "%lld-%lld", (long long)lo, (long long)hi);
        fprintf(stderr, "rrc: data-parallel over %d ranks: %s of each batch's %lld images a rank, %d thread%s each\n",
                r->cm->size, share, (long long)r->B, o->nthreads, o->nthreads > 1 ? "s" : "");
    }
    if (!o->quiet && r->io)
        fprintf(stderr, "rrc: training %s (%s) on %s (%lld images, %lld steps per epoch, K=%d, B=%lld) for %d epochs, engine %s, run %s\n",
                r->p->spec_name, rt_method_name(r->p->method), r->dp->name, (long long)r->n, (long long)r->steps_per_epoch, r->p->K,
                (long long)r->B,
                o->epochs, o->engine ? o->engine : "?", o->out_dir);
    for (int epoch = (int)r->start_epoch; epoch < o->epochs && !r->stopped; epoch++) {
        epoch_order(r->perm, r->n, o->seed, epoch);
        int64_t first = r->step - (int64_t)epoch * r->steps_per_epoch;   /* > 0 when resuming mid-epoch */
        if (first < 0) first = 0;
        double ep_loss = 0, ep_acc = 0;
        int64_t ep_n = 0;
        if (r->p->method == RT_METHOD_DEEPCLUSTER && run_cluster(r, epoch) != 0) return -1;
        for (int64_t s = first; s < r->steps_per_epoch; s++) {
            if (run_step(r, epoch, s, &ep_loss, &ep_acc) != 0) return -1;
            ep_n++;
            if (o->max_steps && r->run_steps >= o->max_steps) {
                r->stopped = true;
                if (s + 1 < r->steps_per_epoch) epoch--;
                break;
            }
        }
        if (r->tty) fputc('\n', stderr);
        if (run_checkpoint(r, epoch + 1) != 0) return -1;
        if (!o->quiet && r->io && ep_n && !r->stopped)
            fprintf(stderr, "rrc: epoch %d: mean loss %.4f, mean %s %.4f; checkpoint %s\n", epoch + 1, ep_loss / (double)ep_n,
                    rt_acc_name(r->p->method), ep_acc / (double)ep_n, r->ckpt);
        bool whole = !r->stopped || r->step == (int64_t)(epoch + 1) * r->steps_per_epoch;   /* not a mid-epoch stop */
        if (o->monitor_every > 0 && whole && ((epoch + 1) % o->monitor_every == 0 || epoch + 1 == o->epochs) &&
            run_monitor(r, epoch) != 0)
            return -1;
    }
    return 0;
}

/* Phase 5: metrics.csv closed (checked), the curves plotted. */
static int run_finish(Run *r) {
    if (!r->io) return 0;
    FILE *done = r->csv;
    r->csv = NULL;
    if (rt_close_checked(done, r->csv_path, r->err, r->errlen) != 0) return -1;
    plot_curves(r->o->out_dir, r->o->quiet, r->o->monitor_every > 0, r->p->method);
    double t = now() - r->t_start;
    if (!r->o->quiet)
        fprintf(stderr, "rrc: %lld steps in %.1f s; run directory %s\n", (long long)r->run_steps, t, r->o->out_dir);
    if (!r->o->quiet && r->cm->size > 1) {
        double c = rt_comm_seconds() - r->comm_before;
        fprintf(stderr, "rrc: rank 0 spent %.2f s in collectives (%.1f%% of the run, %.2f ms a step)\n", c, 100 * c / (t > 0 ? t : 1),
                r->run_steps ? 1e3 * c / (double)r->run_steps : 0.0);
    }
    return 0;
}

static void run_free(Run *r) {
    if (r->csv) fclose(r->csv);
    rt_dataset_free(&r->test);
    free(r->ftr);
    free(r->fte);
    free(r->perm);
    free(r->ops);
    free_plan(&r->full);
    free_plan(&r->last);
    free(r->bucket);
    rt_model_free(&r->m);
    rt_dataset_free(&r->own);
    rt_dc_free(&r->dc);
}

int rt_train(const rt_program *p, const rt_train_opts *o, char *err, size_t errlen) {
    Run r = {.p = p, .o = o, .err = err, .errlen = errlen, .cm = rt_comm_get()};
    r.io = r.cm->rank == 0;
    int rc = run_data(&r) || run_model(&r) || run_start(&r) || run_epochs(&r) || run_finish(&r) ? -1 : 0;
    run_free(&r);
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
