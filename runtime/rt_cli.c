/*
** rt_cli.c: `train` and `lineval` command lines over a compiled program
** (see rt_cli.h).
*/
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cblas.h>

#include "rt_checkpoint.h"
#include "rt_file.h"
#include "rt_blas.h"
#include "rt_cli.h"
#include "rt_lineval.h"
#include "rt_pool.h"
#include "rt_prof.h"
#include "rt_rng.h"
#include "rt_safetensors.h"
#include "rt_train.h"

/* ---- flags ---- */

/* Every flag of every command, once: its name, which commands take it, and
   what its value must be. Commands check their whole command line against
   this table before they do anything (rt_cli_check), so a typo in the last
   flag is reported before data is loaded or code compiled; `rrc train`
   checks it before compiling, and learns from it which flags take values. */
enum { T = 1 << RT_CMD_TRAIN, L = 1 << RT_CMD_LINEVAL, G = 1 << RT_CMD_GRAD, BE = 1 << RT_CMD_BENCH };
typedef struct FlagDef {
    const char *name;
    unsigned cmds;
    char kind;              /* 0: no value, 's': any string, 'i': integer in [lo, hi], 'c': one of choices */
    long long lo, hi;
    const char *choices;    /* 'c': "a|b|c" */
    const char *why;        /* 'c': said after the choices when one is wrong, or "" */
} FlagDef;

static const FlagDef FLAG_TABLE[] = {
    {"--help", T | L | G | BE, 0, 0, 0, NULL, NULL},
    {"-h", T | L | G | BE, 0, 0, 0, NULL, NULL},
    /* compiled into the step: must equal what the program was compiled with */
    {"--K", T | L | G | BE, 'i', 2, 1024, NULL, NULL},
    {"--batch", T | L | G | BE, 'i', 2, 1 << 16, NULL, NULL},
    {"--aggregation", T | L | G | BE, 'c', 0, 0, "cat|sum|mean|max", ""},
    {"--loss", T | L | G | BE, 'c', 0, 0, "focal|bce", ""},
    {"--method", T | L | G | BE, 'c', 0, 0, "relational|supervised", ""},
    /* run time */
    {"--data", T | L, 's', 0, 0, NULL, NULL},
    {"--epochs", T | L, 'i', 1, 100000, NULL, NULL},
    {"--seed", T | L | G, 'i', 0, 0x7fffffffLL, NULL, NULL},
    {"--threads", T | L | BE, 'i', 1, 256, NULL, NULL},
    {"--out", T | L | G, 's', 0, 0, NULL, NULL},
    {"--max-steps", T, 'i', 1, 0x7fffffffffffLL, NULL, NULL},
    {"--resume", T, 's', 0, 0, NULL, NULL},
    {"--resume-anyway", T, 0, 0, 0, NULL, NULL},
    {"--checkpoint-every", T, 'i', 1, 100000, NULL, NULL},
    {"--quiet", T, 0, 0, 0, NULL, NULL},
    {"--profile", T | BE, 0, 0, 0, NULL, NULL},
    {"--profile-csv", T | BE, 's', 0, 0, NULL, NULL},
    /* training and the trainer's grad always run the compiled step; the
       flag names it in the log, so only its names are accepted */
    {"--engine", T | G, 'c', 0, 0, "compiled|jit|aot", ": training runs the compiled step"},
    {"--checkpoint", L, 's', 0, 0, NULL, NULL},
    {"--random-init", L, 0, 0, 0, NULL, NULL},
    {"--input", G, 's', 0, 0, NULL, NULL},
    {"--params", G, 's', 0, 0, NULL, NULL},
    {"--steps", BE, 'i', 1, 1000000, NULL, NULL},
    {"--warmup", BE, 'i', 0, 1000, NULL, NULL},
};

static bool is_flag(const char *a, const char *name) {
    size_t n = strlen(name);
    return strncmp(a, name, n) == 0 && (a[n] == 0 || a[n] == '=');
}

static const FlagDef *flag_def(rt_cli_cmd cmd, const char *a) {
    for (size_t i = 0; i < sizeof FLAG_TABLE / sizeof FLAG_TABLE[0]; i++)
        if ((FLAG_TABLE[i].cmds & (1u << cmd)) && is_flag(a, FLAG_TABLE[i].name)) return &FLAG_TABLE[i];
    return NULL;
}

int rt_cli_flag_arity(rt_cli_cmd cmd, const char *arg) {
    const FlagDef *d = flag_def(cmd, arg);
    return !d ? -1 : d->kind && !strchr(arg, '=') ? 1 : 0;
}

/* "a, b or c" from "a|b|c" */
static void choices_text(char *buf, size_t n, const char *choices) {
    size_t k = 0;
    buf[0] = 0;
    for (const char *c = choices; *c && k + 6 < n; c++) {
        if (*c != '|') { buf[k++] = *c; continue; }
        const char *more = strchr(c + 1, '|');
        k += (size_t)snprintf(buf + k, n - k, more ? ", " : " or ");
    }
    buf[k < n ? k : n - 1] = 0;
}

static bool choice_ok(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *c = choices; c; c = strchr(c, '|') ? strchr(c, '|') + 1 : NULL)
        if (strncmp(c, v, n) == 0 && (c[n] == 0 || c[n] == '|')) return n > 0;
    return false;
}

/* One flag's value against its definition; prints the error. */
static bool value_ok(const char *prog, const FlagDef *d, const char *v) {
    if (d->kind == 'i') {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < d->lo || x > d->hi) {
            fprintf(stderr, "%s: %s must be an integer in [%lld, %lld] (got \"%s\")\n", prog, d->name, d->lo, d->hi, v);
            return false;
        }
    } else if (d->kind == 'c' && !choice_ok(d->choices, v)) {
        char text[128];
        choices_text(text, sizeof text, d->choices);
        fprintf(stderr, "%s: %s must be %s (got \"%s\")%s\n", prog, d->name, text, v, d->why);
        return false;
    }
    return true;
}

bool rt_cli_check(rt_cli_cmd cmd, const char *prog, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const FlagDef *d = flag_def(cmd, a);
        if (!d) {
            if (a[0] == '-')
                fprintf(stderr, "%s: unknown flag '%s' (see --help)\n", prog, a);
            else
                fprintf(stderr, "%s: unexpected argument '%s' (flags only; see --help)\n", prog, a);
            return false;
        }
        const char *eq = strchr(a, '=');
        if (!d->kind) {
            if (eq) { fprintf(stderr, "%s: flag %s takes no value\n", prog, d->name); return false; }
            continue;
        }
        const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!v) { fprintf(stderr, "%s: flag %s needs a value\n", prog, d->name); return false; }
        if (!value_ok(prog, d, v)) return false;
    }
    return true;
}

/* The loops below read values of a command line rt_cli_check has passed. */
typedef struct Flags {
    const char *prog;
    int argc;
    char **argv;
    int i;
    int bad;            /* an error was printed */
} Flags;

static const char *value(Flags *f, const char *name) {
    (void)name;
    const char *a = f->argv[f->i], *eq = strchr(a, '=');
    return eq ? eq + 1 : f->argv[++f->i];
}

static long long int_value(Flags *f, const char *name) { return strtoll(value(f, name), NULL, 10); }

/* A compile-time setting given again at run time must match. */
static void must_match(Flags *f, const char *name, const char *given, const char *compiled) {
    if (given && strcmp(given, compiled) != 0) {
        fprintf(stderr, "%s: this program was compiled with %s %s; %s %s needs a recompile (rrc compile ... %s %s)\n",
                f->prog, name, compiled, name, given, name, given);
        f->bad = 1;
    }
}

static bool compiled_flag(Flags *f, const rt_program *p) {
    const char *a = f->argv[f->i];
    char buf[32];
    if (is_flag(a, "--K")) {
        snprintf(buf, sizeof buf, "%d", p->K);
        must_match(f, "--K", value(f, "--K"), buf);
    } else if (is_flag(a, "--batch")) {
        snprintf(buf, sizeof buf, "%d", p->batch);
        must_match(f, "--batch", value(f, "--batch"), buf);
    } else if (is_flag(a, "--aggregation")) {
        must_match(f, "--aggregation", value(f, "--aggregation"), p->aggregation);
    } else if (is_flag(a, "--loss")) {
        must_match(f, "--loss", value(f, "--loss"), p->loss);
    } else if (is_flag(a, "--method")) {
        must_match(f, "--method", value(f, "--method"), p->method == RT_METHOD_SUPERVISED ? "supervised" : "relational");
    } else {
        return false;
    }
    return true;
}

/* ---- --profile ---- */

#define PROF_TOP 30   /* kernels in the printed table; the CSV has them all */

/* After a profiled command: the table on stdout and the CSV (when csv is
   not NULL) if the command succeeded; profiling off in any case, before
   the compiled code that holds the sites can go away. */
static int prof_finish(const char *prog, int rc, const char *csv) {
    char err[1024];
    if (rc == 0) {
        fflush(stdout);
        int bad = rt_prof_report(stdout, PROF_TOP, csv, err, sizeof err);
        fflush(stdout);
        if (bad) {
            fprintf(stderr, "%s: %s\n", prog, err);
            rc = 1;
        } else if (csv) {
            fprintf(stderr, "%s: wrote the profile to %s\n", prog, csv);
        }
    }
    rt_prof_stop();
    return rc;
}

/* ---- train ---- */

void rt_cli_train_usage(FILE *f, const char *prog, const char *spec_arg) {
    fprintf(f,
            "usage: %s%s [flags]\n"
            "\n"
            "Trains the backbone and relation head with self-supervised relational reasoning.\n"
            "\n"
            "  --data NAME[:PATH]  dataset (%s); default: the spec's\n"
            "  --epochs E          epochs (default: the spec's)\n"
            "  --seed S            seed of initialisation, shuffling and augmentation\n"
            "  --threads N         threads of the step's convolutions (split over images) and of\n"
            "                      the views' making (default 2); results are deterministic for a\n"
            "                      given N\n"
            "  --out RUN           run directory (default runs/SPECNAME): metrics.csv, curves.png,\n"
            "                      last.safetensors\n"
            "  --max-steps N       stop after N steps (continue with --resume)\n"
            "  --resume RUN        continue the run in RUN from its last.safetensors; refused when\n"
            "                      the checkpoint's --seed, --K, --batch, --loss, --aggregation or\n"
            "                      number of training images differ from this run's\n"
            "  --resume-anyway     resume all the same, with this run's settings (--threads may\n"
            "                      always change)\n"
            "  --checkpoint-every E  also keep epoch_E.safetensors every E epochs\n"
            "  --quiet             no progress output\n"
            "  --profile           time every kernel of the steps; at the end prints the slowest\n"
            "                      kernels (ms per step, share of the step, GFLOP/s) and sums by op\n"
            "                      and by module, and writes them all to RUN/profile.csv\n"
            "  --profile-csv FILE  --profile, with the CSV written to FILE\n"
            "  --method M          relational (default) or supervised: the backbone with a linear\n"
            "                      classifier, SGD 0.1 x0.1 at 50%%/75%%, batch 128, crop+flip (the upper\n"
            "                      bound of METHOD.md); prints the classifier's test accuracy\n"
            "  --K K, --batch B, --aggregation A, --loss L, --method M   compiled into the step\n",
            prog, spec_arg, rt_dataset_names());
}

/* --method supervised: train, then the classifier's test accuracy (printed and in OUT/supervised.txt). */
static int train_supervised(const rt_program *p, const char *prog, const rt_train_opts *o) {
    rt_dataset tr = {0}, te = {0};
    rt_data_opts dopts = {p->in_h, p->in_w, p->in_c, o->seed};
    double acc = 0;
    int rc = 1;
    char err[2400];
    if (rt_dataset_load(o->data, RT_SPLIT_TRAIN, &dopts, &tr, err, sizeof err) != 0 ||
        rt_dataset_load(o->data, RT_SPLIT_TEST, &dopts, &te, err, sizeof err) != 0 ||
        rt_train_supervised(p, o, &tr, &te, &acc, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
    } else {
        printf("supervised %s on %s, %d epochs: test top-1 %.2f%%\n", p->spec_name, o->data, o->epochs, 100 * acc);
        char path[1100];
        snprintf(path, sizeof path, "%s/supervised.txt", o->out_dir);
        char text[2048];
        int k = snprintf(text, sizeof text, "spec %s\ndata %s\nepochs %d\nbatch %d\nseed %llu\ntest_top1 %.4f\n", p->spec_name,
                         o->data, o->epochs, p->batch, (unsigned long long)o->seed, acc);
        if (k < 0 || (size_t)k >= sizeof text) snprintf(err, sizeof err, "%s: the data set's name is too long", path);
        if (k < 0 || (size_t)k >= sizeof text || rt_write_atomic(path, text, (size_t)k, err, sizeof err) != 0)
            fprintf(stderr, "%s: %s\n", prog, err);
        else
            rc = 0;
    }
    rt_dataset_free(&tr);
    rt_dataset_free(&te);
    return rc;
}

int rt_cli_train(const rt_program *p, const char *prog, int argc, char **argv) {
    if (!rt_cli_check(RT_CMD_TRAIN, prog, argc, argv)) return 1;
    Flags f = {prog, argc, argv, 0, 0};
    rt_train_opts o = {.data = p->data, .epochs = p->epochs, .nthreads = 2, .seed = p->seed, .engine = "compiled"};
    char outbuf[512], csvbuf[1100];
    int profile = 0;
    const char *prof_csv = NULL;
    for (f.i = 0; f.i < argc && !f.bad; f.i++) {
        const char *a = argv[f.i];
        if (is_flag(a, "--help") || is_flag(a, "-h")) { rt_cli_train_usage(stdout, prog, ""); return 0; }
        else if (compiled_flag(&f, p)) continue;
        else if (is_flag(a, "--data")) o.data = value(&f, "--data");
        else if (is_flag(a, "--epochs")) o.epochs = (int)int_value(&f, "--epochs");
        else if (is_flag(a, "--seed")) o.seed = (uint64_t)int_value(&f, "--seed");
        else if (is_flag(a, "--threads")) o.nthreads = (int)int_value(&f, "--threads");
        else if (is_flag(a, "--out")) o.out_dir = value(&f, "--out");
        else if (is_flag(a, "--max-steps")) o.max_steps = int_value(&f, "--max-steps");
        else if (is_flag(a, "--resume-anyway")) o.resume_anyway = 1;
        else if (is_flag(a, "--resume")) o.resume = value(&f, "--resume");
        else if (is_flag(a, "--checkpoint-every")) o.checkpoint_every = (int)int_value(&f, "--checkpoint-every");
        else if (is_flag(a, "--quiet")) o.quiet = 1;
        else if (is_flag(a, "--profile")) profile = 1;
        else if (is_flag(a, "--profile-csv")) { prof_csv = value(&f, "--profile-csv"); profile = 1; }
        else if (is_flag(a, "--engine")) o.engine = value(&f, "--engine");
        else { fprintf(stderr, "%s: internal error: flag '%s' is not handled\n", prog, a); return 1; }
    }
    if (f.bad || !o.data) return 1;
    if (!o.out_dir) {
        if (o.resume) {
            o.out_dir = o.resume;
        } else {
            mkdir("runs", 0777);
            snprintf(outbuf, sizeof outbuf, "runs/%s", p->spec_name);
            o.out_dir = outbuf;
        }
    }
    /* OpenBLAS threads on the per-image GEMMs of a step cost more in
       synchronisation than they gain (docs/DECISIONS.md); the step runs on
       one thread, the other cores make views. */
    openblas_set_num_threads(1);
    rt_pool_init(o.nthreads);
    char err[1024];
    if (profile) rt_prof_start();
    int rc = 0;
    if (p->method == RT_METHOD_SUPERVISED) {
        rc = train_supervised(p, prog, &o);
    } else if (rt_train(p, &o, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        rc = 1;
    }
    if (profile) {
        if (!prof_csv) {
            snprintf(csvbuf, sizeof csvbuf, "%s/profile.csv", o.out_dir);
            prof_csv = csvbuf;
        }
        rc = prof_finish(prog, rc, prof_csv);
    }
    return rc;
}

/* ---- lineval ---- */

void rt_cli_lineval_usage(FILE *f, const char *prog, const char *spec_arg) {
    fprintf(f,
            "usage: %s%s --data NAME[:PATH] (--checkpoint FILE | --random-init) [flags]\n"
            "\n"
            "Linear evaluation (METHOD.md): the backbone frozen in eval mode, features computed once,\n"
            "a linear classifier trained with Adam (lr 1e-3) and cross-entropy on the train split;\n"
            "prints the test top-1 accuracy and writes it to OUT/lineval.txt.\n"
            "\n"
            "  --checkpoint FILE   backbone weights (an rrc checkpoint, or a PyTorch backbone saved\n"
            "                      as safetensors with its bare names)\n"
            "  --random-init       a randomly initialised backbone (the lower bound)\n"
            "  --epochs E          classifier epochs (default 100)\n"
            "  --batch B           classifier batch (default 128)\n"
            "  --seed S            seed (default: the spec's)\n"
            "  --threads N         accepted for symmetry with train; evaluation runs on one thread\n"
            "  --out DIR           where to write lineval.txt (default: the checkpoint's folder)\n",
            prog, spec_arg);
}

/* The normalisation of evaluation: the dataset's own constants, else the
   spec's normalize step, else none. */
static void eval_norm(const rt_program *p, const rt_dataset *d, double mean[3], double std[3]) {
    for (int c = 0; c < 3; c++) { mean[c] = 0; std[c] = 1; }
    if (d->has_norm) {
        memcpy(mean, d->mean, 3 * sizeof *mean);
        memcpy(std, d->std, 3 * sizeof *std);
        return;
    }
    for (int i = 0; i < p->naug; i++)
        if (p->aug[i].kind == RT_AUG_NORMALIZE) {
            memcpy(mean, p->aug[i].mean, 3 * sizeof *mean);
            memcpy(std, p->aug[i].std, 3 * sizeof *std);
        }
}

typedef struct ProbeCtx { const char *prog; int epochs; } ProbeCtx;

static void probe_progress(void *vctx, int epoch, double loss, double acc) {
    ProbeCtx *c = vctx;
    if (epoch == 1 || epoch % 10 == 0 || epoch == c->epochs)
        fprintf(stderr, "%s: classifier epoch %d/%d: loss %.4f, train accuracy %.4f\n", c->prog, epoch, c->epochs, loss, acc);
}

static int load_split(const char *prog, const rt_program *p, const char *data, rt_split split, uint64_t seed, rt_dataset *d) {
    char err[1024];
    rt_data_opts o = {p->in_h, p->in_w, p->in_c, seed};
    if (rt_dataset_load(data, split, &o, d, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return -1;
    }
    if (d->h != p->in_h || d->w != p->in_w) {
        fprintf(stderr, "%s: %s: images are %dx%d, %s expects %dx%d\n", prog, data, d->h, d->w, p->spec_name, p->in_h, p->in_w);
        return -1;
    }
    if (!d->labels) {
        fprintf(stderr, "%s: %s has no labels\n", prog, data);
        return -1;
    }
    return 0;
}

int rt_cli_lineval(const rt_program *p, const char *prog, int argc, char **argv) {
    if (!rt_cli_check(RT_CMD_LINEVAL, prog, argc, argv)) return 1;
    Flags f = {prog, argc, argv, 0, 0};
    const char *data = p->data, *ckpt = NULL, *out = NULL;
    int random_init = 0, epochs = 100, batch = 128, threads = 2;
    uint64_t seed = p->seed;
    for (f.i = 0; f.i < argc && !f.bad; f.i++) {
        const char *a = argv[f.i];
        if (is_flag(a, "--help") || is_flag(a, "-h")) { rt_cli_lineval_usage(stdout, prog, ""); return 0; }
        else if (compiled_flag(&f, p)) continue;
        else if (is_flag(a, "--data")) data = value(&f, "--data");
        else if (is_flag(a, "--checkpoint")) ckpt = value(&f, "--checkpoint");
        else if (is_flag(a, "--random-init")) random_init = 1;
        else if (is_flag(a, "--epochs")) epochs = (int)int_value(&f, "--epochs");
        else if (is_flag(a, "--seed")) seed = (uint64_t)int_value(&f, "--seed");
        else if (is_flag(a, "--threads")) threads = (int)int_value(&f, "--threads");
        else if (is_flag(a, "--out")) out = value(&f, "--out");
        else { fprintf(stderr, "%s: internal error: flag '%s' is not handled\n", prog, a); return 1; }
    }
    if (f.bad || !data) return 1;
    if ((!ckpt && !random_init) || (ckpt && random_init)) {
        fprintf(stderr, "%s: give exactly one of --checkpoint FILE and --random-init\n", prog);
        return 1;
    }
    (void)threads;
    openblas_set_num_threads(1);   /* see rt_cli_train */
    int rc = 1;
    rt_dataset tr = {0}, te = {0};
    rt_model m = {0};
    float *ftr = NULL, *fte = NULL;
    char err[1024];
    if (load_split(prog, p, data, RT_SPLIT_TRAIN, seed, &tr) != 0 || load_split(prog, p, data, RT_SPLIT_TEST, seed, &te) != 0)
        goto done;
    if (rt_model_init(&m, p, err, sizeof err) != 0) { fprintf(stderr, "%s: %s\n", prog, err); goto done; }
    rt_model_seed(&m, seed);
    if (ckpt && rt_checkpoint_load(ckpt, p, m.params, m.state, NULL, NULL, NULL, NULL, RT_CKPT_BACKBONE_ONLY, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        goto done;
    }
    double mean[3], std[3];
    eval_norm(p, &tr, mean, std);
    int64_t F = p->feat_dim;
    ftr = malloc((size_t)(tr.n * F) * sizeof *ftr);
    fte = malloc((size_t)(te.n * F) * sizeof *fte);
    if (!ftr || !fte) { fprintf(stderr, "%s: out of memory for features\n", prog); goto done; }
    rt_features(&m, &tr, mean, std, ftr);
    rt_features(&m, &te, mean, std, fte);
    fprintf(stderr, "%s: features of %lld train and %lld test images (%lld-d) computed\n", prog, (long long)tr.n,
            (long long)te.n, (long long)F);
    int nclasses = tr.nclasses > te.nclasses ? tr.nclasses : te.nclasses;
    ProbeCtx pc = {prog, epochs};
    rt_probe_opts po = {.epochs = epochs, .batch = batch, .lr = 1e-3, .seed = seed, .progress = probe_progress, .ctx = &pc};
    rt_probe_report rep = {0};
    double acc = rt_linear_probe(ftr, tr.labels, tr.n, fte, te.labels, te.n, F, nclasses, &po, &rep);
    const char *what = ckpt ? ckpt : "random init";
    printf("linear evaluation of %s (%s) on %s: test top-1 %.2f%% (train %.2f%%)\n", p->spec_name, what, data, 100 * acc,
           100 * rep.train_acc);
    char dir[1024], path[1100];
    if (out) {
        snprintf(dir, sizeof dir, "%s", out);
        mkdir(dir, 0777);
    } else if (ckpt) {
        snprintf(dir, sizeof dir, "%s", ckpt);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else strcpy(dir, ".");
    } else {
        mkdir("runs", 0777);
        snprintf(dir, sizeof dir, "runs/%s-random", p->spec_name);
        mkdir(dir, 0777);
    }
    snprintf(path, sizeof path, "%s/lineval%s.txt", dir, ckpt ? "" : "_random");
    char text[4096];
    int k = snprintf(text, sizeof text, "spec %s\nbackbone %s\ndata %s\nepochs %d\nbatch %d\nseed %llu\ntest_top1 %.4f\ntrain_top1 %.4f\n",
                     p->spec_name, what, data, epochs, batch, (unsigned long long)seed, acc, rep.train_acc);
    if (k < 0 || (size_t)k >= sizeof text) {
        fprintf(stderr, "%s: %s: the checkpoint's or data set's name is too long\n", prog, path);
        goto done;
    }
    if (rt_write_atomic(path, text, (size_t)k, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        goto done;
    }
    fprintf(stderr, "%s: wrote %s\n", prog, path);
    rc = 0;
done:
    free(ftr);
    free(fte);
    rt_model_free(&m);
    rt_dataset_free(&tr);
    rt_dataset_free(&te);
    return rc;
}

/* ---- grad ---- */

static void grad_usage(FILE *f, const char *prog) {
    fprintf(f,
            "usage: %s grad --input X.safetensors --out G.safetensors [--params P.safetensors] [--seed S]\n"
            "\n"
            "One training-mode step (no update) on the views in tensor 'x' of X, with the\n"
            "parameters of P (full names) or initialised from the seed; writes loss, logits,\n"
            "grad.<param>, state.<running stat> (and param.<name> when initialised) as F32.\n"
            "x must have the shape this trainer was compiled for.\n",
            prog);
}

int rt_cli_grad(const rt_program *p, const char *prog, int argc, char **argv) {
    if (!rt_cli_check(RT_CMD_GRAD, prog, argc, argv)) return 1;
    Flags f = {prog, argc, argv, 0, 0};
    const char *input = NULL, *params = NULL, *out = NULL;
    uint64_t seed = p->seed;
    for (f.i = 0; f.i < argc && !f.bad; f.i++) {
        const char *a = argv[f.i];
        if (is_flag(a, "--help") || is_flag(a, "-h")) { grad_usage(stdout, prog); return 0; }
        else if (compiled_flag(&f, p)) continue;
        else if (is_flag(a, "--input")) input = value(&f, "--input");
        else if (is_flag(a, "--params")) params = value(&f, "--params");
        else if (is_flag(a, "--out")) out = value(&f, "--out");
        else if (is_flag(a, "--seed")) seed = (uint64_t)int_value(&f, "--seed");
        else if (is_flag(a, "--engine")) value(&f, "--engine");
        else { fprintf(stderr, "%s: internal error: flag '%s' is not handled\n", prog, a); return 1; }
    }
    if (f.bad) return 1;
    if (!input || !out) { fprintf(stderr, "%s: grad needs --input and --out\n", prog); return 1; }
    const rt_entry *e = p->train_full;
    const rt_step_tensor *xt = rt_entry_tensor(e, "x");
    rt_st_file xf = {0};
    rt_model m = {0};
    char err[1024];
    int rc = 1;
    if (rt_st_read(input, &xf, err, sizeof err) != 0) { fprintf(stderr, "%s: %s\n", prog, err); return 1; }
    const rt_tensor *x = rt_st_find(&xf, "x");
    bool same = x && x->rank == xt->rank;
    for (int k = 0; same && k < xt->rank; k++) same = x->shape[k] == xt->dim[k];
    if (!same) {
        fprintf(stderr, "%s: %s: 'x' must be [%lld,%lld,%lld,%lld]: this trainer was compiled for K=%d, B=%lld\n", prog, input,
                (long long)xt->dim[0], (long long)xt->dim[1], (long long)xt->dim[2], (long long)xt->dim[3], e->K, (long long)e->B);
        goto done;
    }
    if (rt_model_init(&m, p, err, sizeof err) != 0) { fprintf(stderr, "%s: %s\n", prog, err); goto done; }
    rt_model_seed(&m, seed);
    if (params && rt_checkpoint_load(params, p, m.params, m.state, NULL, NULL, NULL, NULL, 0, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        goto done;
    }
    int64_t xn = 1;
    for (int k = 0; k < xt->rank; k++) xn *= xt->dim[k];
    if (rt_tensor_to_f32(x, (float *)(m.io[RT_REGION_INPUT] + xt->offset), xn, input, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        goto done;
    }
    rt_model_run(&m, e);
    rt_tensor *ts = calloc((size_t)(2 * e->ntensors), sizeof *ts);
    char **names = calloc((size_t)(2 * e->ntensors), sizeof *names);
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < e->ntensors; i++) {
            const rt_step_tensor *t = &e->tensors[i];
            bool output = t->region == RT_REGION_OUTPUT && strcmp(t->name, "targets") != 0;
            bool param = !params && (t->region == RT_REGION_PARAM || t->region == RT_REGION_STATE);
            if (pass == 0 ? !output : !param) continue;
            size_t len = strlen(t->name) + 8;
            names[n] = malloc(len);
            snprintf(names[n], len, "%s%s", pass ? "param." : "", t->name);
            int64_t cnt = 1;
            for (int k = 0; k < t->rank; k++) cnt *= t->dim[k];
            char *base = t->region == RT_REGION_PARAM ? m.params : t->region == RT_REGION_STATE ? m.state : m.io[t->region];
            ts[n] = (rt_tensor){.name = names[n], .dtype = RT_F32, .rank = t->rank, .data = base + t->offset,
                                .nbytes = (size_t)cnt * sizeof(float)};
            for (int k = 0; k < t->rank; k++) ts[n].shape[k] = t->dim[k];
            n++;
        }
    const char *mk[] = {"format", "engine"}, *mv[] = {"rrc-grad-1", "aot"};
    if (rt_st_write(out, ts, n, mk, mv, 2, err, sizeof err) != 0) fprintf(stderr, "%s: %s\n", prog, err);
    else rc = 0;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(ts);
done:
    rt_model_free(&m);
    rt_st_free(&xf);
    return rc;
}

/* ---- bench: the training step alone (no augmentation) ---- */

static double mono(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int rt_cli_bench(const rt_program *p, const char *prog, int argc, char **argv) {
    if (!rt_cli_check(RT_CMD_BENCH, prog, argc, argv)) return 1;
    Flags f = {prog, argc, argv, 0, 0};
    int steps = 20, warmup = 3, threads = 2, profile = 0;
    const char *prof_csv = NULL;
    for (f.i = 0; f.i < argc && !f.bad; f.i++) {
        const char *a = argv[f.i];
        if (is_flag(a, "--help") || is_flag(a, "-h")) {
            printf("usage: %s bench [--steps N] [--warmup W] [--threads T] [--profile] [--profile-csv FILE]\n\n"
                   "Times the compiled training step with its optimizer update on fixed random views (no\n"
                   "augmentation) and prints one line: median seconds per step and backbone images/s.\n"
                   "--profile also times every kernel of the timed steps and prints the slowest (ms per\n"
                   "step, share of the step, GFLOP/s) and sums by op and by module; --profile-csv FILE\n"
                   "writes them all as CSV.\n",
                   prog);
            return 0;
        } else if (compiled_flag(&f, p)) continue;
        else if (is_flag(a, "--steps")) steps = (int)int_value(&f, "--steps");
        else if (is_flag(a, "--warmup")) warmup = (int)int_value(&f, "--warmup");
        else if (is_flag(a, "--threads")) threads = (int)int_value(&f, "--threads");
        else if (is_flag(a, "--profile")) profile = 1;
        else if (is_flag(a, "--profile-csv")) { prof_csv = value(&f, "--profile-csv"); profile = 1; }
        else { fprintf(stderr, "%s: internal error: flag '%s' is not handled\n", prog, a); return 1; }
    }
    if (f.bad) return 1;
    openblas_set_num_threads(1);
    rt_pool_init(threads);
    rt_model m;
    char err[1024];
    if (rt_model_init(&m, p, err, sizeof err) != 0) { fprintf(stderr, "%s: %s\n", prog, err); return 1; }
    rt_model_seed(&m, p->seed);
    const rt_entry *e = p->train_full;
    const rt_step_tensor *x = rt_entry_tensor(e, "x");
    int64_t xn = 1;
    for (int k = 0; k < x->rank; k++) xn *= x->dim[k];
    rt_stream s;
    rt_stream_init(&s, p->seed, RT_DOMAIN_TEST, 1, 0);
    float *xv = (float *)(m.io[RT_REGION_INPUT] + x->offset);
    for (int64_t i = 0; i < xn; i++) xv[i] = (float)rt_stream_normal(&s);
    double *dt = malloc((size_t)steps * sizeof *dt);
    if (profile) rt_prof_start();
    for (int t = 0; t < warmup + steps; t++) {
        if (t >= warmup) rt_prof_step_begin();   /* the timed steps only */
        double t0 = mono();
        rt_model_run(&m, e);
        for (int i = 0; i < e->ntensors; i++) {   /* the update, as in training */
            const rt_step_tensor *g = &e->tensors[i];
            if (strncmp(g->name, "grad.", 5)) continue;
            const rt_step_tensor *w = rt_entry_tensor(e, g->name + 5);
            int64_t n = 1;
            for (int k = 0; k < w->rank; k++) n *= w->dim[k];
            rt_adam_update((float *)(m.params + w->offset), (const float *)(m.io[RT_REGION_OUTPUT] + g->offset),
                           (float *)((char *)m.opt_m + w->offset), (float *)((char *)m.opt_v + w->offset), n, t + 1, &p->adam);
        }
        if (t >= warmup) dt[t - warmup] = mono() - t0;
        rt_prof_step_end();
    }
    qsort(dt, (size_t)steps, sizeof *dt, cmp_double);
    double med = dt[steps / 2];
    printf("bench %s K=%d B=%lld threads=%d steps=%d: median %.6f s/step, %.1f images/s (BLAS kernels %s)\n", p->spec_name,
           e->K, (long long)e->B, threads, steps, med, (double)(e->K * e->B) / med, rt_blas_core());
    free(dt);
    int rc = profile ? prof_finish(prog, 0, prof_csv) : 0;
    rt_model_free(&m);
    return rc;
}
