/*
** rt_cli.c: `train` and `lineval` command lines over a compiled program
** (see rt_cli.h).
*/
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <jansson.h>

#include "rt_checkpoint.h"
#include "rt_comm.h"
#include "rt_program_json.h"
#include "rt_file.h"
#include "rt_flags.h"
#include "rt_blas.h"
#include "rt_cli.h"
#include "rt_eval.h"
#include "rt_lineval.h"
#include "rt_pool.h"
#include "rt_prof.h"
#include "rt_rng.h"
#include "rt_safetensors.h"
#include "rt_train.h"

static double mono(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- flags ---- */

/* Every flag of every command, once per meaning: its name, which commands
   take it, what its value must be, and its help. Commands parse their whole
   command line against it before they do anything (rt_flags_parse), so a
   typo in the last flag is reported before data is loaded or code compiled;
   `rrc train` parses it the same way before compiling and passes the flags
   on. A flag whose help differs between commands has a row per meaning. */
enum {
    T = 1 << RT_CMD_TRAIN, G = 1 << RT_CMD_GRAD, BE = 1 << RT_CMD_BENCH, FT = 1 << RT_CMD_FINETUNE,
    LV = 1 << RT_CMD_LINEVAL, KN = 1 << RT_CMD_KNN, RE = 1 << RT_CMD_RETRIEVAL, EV = 1 << RT_CMD_EVAL,
    L = LV | KN | RE | EV,   /* the evaluations of a backbone share their flags */
};
#define COMPILED "(compiled in)"
static const rt_flag ROWS[] = {
    {"data", RT_F_DATA, T | L | FT, 's', 0, 0, NULL, NULL, "NAME[:PATH]", "dataset (the list below); default: the spec's"},
    {"checkpoint", RT_F_CHECKPOINT, L | FT, 's', 0, 0, NULL, NULL, "FILE",
     "backbone weights (an rrc checkpoint, or a PyTorch backbone saved\nas safetensors with its bare names)"},
    {"random-init", RT_F_RANDOM_INIT, L | FT, 0, 0, 0, NULL, NULL, NULL, "a randomly initialised backbone (the lower bound)"},
    {"input", RT_F_INPUT, G, 's', 0, 0, NULL, NULL, "X", "the views: tensor 'x' of safetensors file X, of the compiled shape"},
    {"params", RT_F_PARAMS, G, 's', 0, 0, NULL, NULL, "P", "parameters (full names) from safetensors file P; default:\ninitialised from the seed"},
    {"epochs", RT_F_EPOCHS, T, 'i', 1, 100000, NULL, NULL, "E", "epochs (default: the spec's)"},
    {"epochs", RT_F_EPOCHS, EV, 'i', 1, 100000, NULL, NULL, "E", "epochs of the linear classifier and of fine-tuning (default 100)"},
    {"epochs", RT_F_EPOCHS, LV, 'i', 1, 100000, NULL, NULL, "E", "classifier epochs (default 100)"},
    {"epochs", RT_F_EPOCHS, FT, 'i', 1, 100000, NULL, NULL, "E", "epochs (default 100)"},
    {"seed", RT_F_SEED, T, 'i', 0, 0x7fffffffLL, NULL, NULL, "S", "seed of initialisation, shuffling and augmentation"},
    {"seed", RT_F_SEED, L | G | FT, 'i', 0, 0x7fffffffLL, NULL, NULL, "S", "seed (default: the spec's)"},
    {"threads", RT_F_THREADS, T | BE | FT, 'i', 1, 256, NULL, NULL, "N",
     "threads of the step's convolutions (split over images) and of\nthe views' making (default 2); results are deterministic for a\ngiven N"},
    {"threads", RT_F_THREADS, LV, 'i', 1, 256, NULL, NULL, "N", "accepted for symmetry with train; evaluation runs on one thread"},
    {"threads", RT_F_THREADS, KN | RE | EV, 'i', 1, 256, NULL, NULL, "N", "threads of the similarity products (default 2)"},
    {"out", RT_F_OUT, T, 's', 0, 0, NULL, NULL, "RUN", "run directory (default runs/SPECNAME): metrics.csv, curves.png,\nlast.safetensors"},
    {"out", RT_F_OUT, L, 's', 0, 0, NULL, NULL, "DIR",
     "where to write the report, lineval.txt, knn.txt or retrieval.txt\n(default: the checkpoint's folder)"},
    {"protocols", RT_F_PROTOCOLS, EV, 's', 0, 0, NULL, NULL, "LIST",
     "some of linear,finetune,knn,retrieval,fractions (fractions: fine-tuning\non 1%, 10% and 100% of the labels)"},
    {"neighbours", RT_F_NEIGHBOURS, KN | EV, 'i', 1, 100000, NULL, NULL, "N", "the nearest train images that vote (default 200)"},
    {"temperature", RT_F_TEMPERATURE, KN | EV, 's', 0, 0, NULL, NULL, "T", "a neighbour's vote is exp(similarity / T) (default 0.07)"},
    {"out", RT_F_OUT, G, 's', 0, 0, NULL, NULL, "G", "where to write loss, logits, grad.<param>, state.<stat> (F32)"},
    {"out", RT_F_OUT, FT, 's', 0, 0, NULL, NULL, "DIR",
     "where to write finetune.txt, metrics.csv and last.safetensors\n(default: CHECKPOINT's folder/finetune)"},
    {"max-steps", RT_F_MAX_STEPS, T, 'i', 1, 0x7fffffffffffLL, NULL, NULL, "N", "stop after N steps (continue with --resume)"},
    {"resume", RT_F_RESUME, T, 's', 0, 0, NULL, NULL, "RUN",
     "continue the run in RUN from its last.safetensors; refused when\nthe checkpoint's --seed, --K, --batch, --loss, --aggregation or\n"
     "number of training images differ from this run's"},
    {"resume-anyway", RT_F_RESUME_ANYWAY, T, 0, 0, 0, NULL, NULL, NULL,
     "resume all the same, with this run's settings (--threads may\nalways change)"},
    {"checkpoint-every", RT_F_CHECKPOINT_EVERY, T, 'i', 1, 100000, NULL, NULL, "E", "also keep epoch_E.safetensors every E epochs"},
    {"monitor", RT_F_MONITOR, T, 'c', 0, 0, "knn", NULL, "knn",
     "after epochs (--every), the weighted kNN accuracy of the test split\n(as rrc knn): columns knn_top1, knn_top5 of metrics.csv, a panel\nof curves.png"},
    {"every", RT_F_EVERY, T, 'i', 1, 100000, NULL, NULL, "E", "--monitor every E epochs, and after the last (default 1)"},
    {"quiet", RT_F_QUIET, T | FT, 0, 0, 0, NULL, NULL, NULL, "no progress output"},
    {"classes", RT_F_CLASSES, T | L | FT, 's', 0, 0, NULL, NULL, "LIST",
     "only the images of these classes (A,B or A-B, e.g. 0-4), relabelled\n0, 1, ... in that order: train on some classes, evaluate on others"},
    {"labels", RT_F_LABELS, T | L | FT, 's', 0, 0, NULL, NULL, "P%|N-per-class",
     "a class-balanced part of the labelled train split (seeded by\n--seed), e.g. 10% or 100-per-class: fewer labels"},
    {"augment", RT_F_AUGMENT, FT, 0, 0, 0, NULL, NULL, NULL,
     "random crop (4-pixel padding) and flip, as supervised training\n(default: none, the official recipe)"},
    {"decay-at", RT_F_DECAY_AT, FT, 's', 0, 0, NULL, NULL, "LIST",
     "epochs where the lr is multiplied by 0.1, each an epoch or P% of\n--epochs, or none (default 100,150: the official schedule, which\n"
     "100 epochs never reach; 50%,75% is the schedule it meant)"},
    {"steps", RT_F_STEPS, BE, 'i', 1, 1000000, NULL, NULL, "N", "timed steps (default 20)"},
    {"warmup", RT_F_WARMUP, BE, 'i', 0, 1000, NULL, NULL, "W", "untimed steps first (default 3)"},
    {"profile", RT_F_PROFILE, T | BE, 0, 0, 0, NULL, NULL, NULL,
     "time every kernel of the steps; at the end prints the slowest\nkernels (ms per step, share of the step, GFLOP/s) and sums by op\n"
     "and by module, and writes them all to RUN/profile.csv"},
    {"profile-csv", RT_F_PROFILE_CSV, T | BE, 's', 0, 0, NULL, NULL, "FILE", "--profile, with the CSV written to FILE"},
    /* training and the trainer's grad always run the compiled step; the
       flag names it in the log, so only its names are accepted */
    {"engine", RT_F_ENGINE, T | G, 'c', 0, 0, "compiled|jit|aot", ": training runs the compiled step", "E",
     "compiled, jit or aot: named in the log (training runs the compiled step)"},
    /* compiled into the step: must equal what the program was compiled with */
    {"method", RT_F_METHOD, T | L | G | BE, 'c', 0, 0, "relational|supervised", NULL, "M",
     "relational (default) or supervised: the backbone with a linear\nclassifier, SGD 0.1 x0.1 at 50%/75%, batch 128, crop+flip (the upper\n"
     "bound of METHOD.md) " COMPILED},
    {"K", RT_F_K, T | L | G | BE | FT, 'i', 2, 1024, NULL, NULL, "K", "views per image " COMPILED},
    {"batch", RT_F_BATCH, T | G | BE | FT, 'i', 2, 1 << 16, NULL, NULL, "B", "images per step " COMPILED},
    {"batch", RT_F_BATCH, LV, 'i', 2, 1 << 16, NULL, NULL, "B", "the step's batch " COMPILED "; the classifier's batch is 128"},
    {"batch", RT_F_BATCH, KN | RE | EV, 'i', 2, 1 << 16, NULL, NULL, "B", "the step's batch " COMPILED},
    {"aggregation", RT_F_AGGREGATION, T | L | G | BE | FT, 'c', 0, 0, "cat|sum|mean|max", NULL, "A",
     "how the relation head joins two views " COMPILED},
    {"loss", RT_F_LOSS, T | L | G | BE | FT, 'c', 0, 0, "focal|bce", NULL, "L", "the relation loss " COMPILED},
};
#undef COMPILED

const rt_flag_table rt_cli_flags = {ROWS, (int)(sizeof ROWS / sizeof ROWS[0])};

/* The command line of cmd, parsed and checked (one line printed on a
   problem): flags only. */
static bool parse(rt_cli_cmd cmd, const char *prog, int argc, char **argv, rt_args *a) {
    return rt_flags_parse(&rt_cli_flags, 1, (int)cmd, prog, argc, argv, 0, a);
}

/* A compile-time setting given again at run time must match. */
static bool must_match(const char *prog, const char *name, const char *given, const char *compiled) {
    if (strcmp(given, compiled) == 0) return true;
    fprintf(stderr, "%s: this program was compiled with %s %s; %s %s needs a recompile (rrc compile ... %s %s)\n", prog,
            name, compiled, name, given, name, given);
    return false;
}

/* Checks the flags compiled into the step against program p; false
   (printed) on a mismatch. */
static bool compiled_flags_match(const rt_program *p, const char *prog, const rt_args *a) {
    bool ok = true;
    for (int i = 0; i < a->nopts; i++) {
        const rt_opt *o = &a->opts[i];
        char buf[32];
        switch (o->flag->id) {
        case RT_F_K:
            snprintf(buf, sizeof buf, "%d", p->K);
            ok &= must_match(prog, "--K", o->value, buf);
            break;
        case RT_F_BATCH:
            snprintf(buf, sizeof buf, "%d", p->batch);
            ok &= must_match(prog, "--batch", o->value, buf);
            break;
        case RT_F_AGGREGATION: ok &= must_match(prog, "--aggregation", o->value, p->aggregation); break;
        case RT_F_LOSS: ok &= must_match(prog, "--loss", o->value, p->loss); break;
        case RT_F_METHOD:
            ok &= must_match(prog, "--method", o->value, rt_method_name(p->method));
            break;
        default: break;
        }
    }
    return ok;
}

static const char *const SUMMARY[] = {
    [RT_CMD_TRAIN] = "Trains the backbone and relation head with self-supervised relational reasoning.\n",
    [RT_CMD_LINEVAL] = "Linear evaluation (METHOD.md): the backbone frozen in eval mode, features computed once,\n"
                       "a linear classifier trained with Adam (lr 1e-3) and cross-entropy on the train split;\n"
                       "prints the test top-1 accuracy and writes it to OUT/lineval.txt.\n",
    [RT_CMD_GRAD] = "One training-mode step (no update) on the views in tensor 'x' of X, with the\n"
                    "parameters of P (full names) or initialised from the seed; writes loss, logits,\n"
                    "grad.<param>, state.<running stat> (and param.<name> when initialised) as F32.\n",
    [RT_CMD_BENCH] = "Times the compiled training step with its optimizer update on fixed random views (no\n"
                     "augmentation) and prints one line: median seconds per step and backbone images/s.\n",
    [RT_CMD_KNN] = "Weighted kNN classification (InstDisc's monitor): the backbone frozen in eval mode,\n"
                   "features L2-normalised, each test image's 200 nearest train images by cosine\n"
                   "similarity vote for their class with weight exp(similarity / 0.07); prints top-1 and\n"
                   "top-5 test accuracy and writes them to OUT/knn.txt.\n",
    [RT_CMD_RETRIEVAL] = "Retrieval (BASELINES.md section 9): test images query the train images by cosine\n"
                         "similarity of L2-normalised eval-mode features; an item is relevant when it has\n"
                         "the query's class. Prints precision@1/5/10/100 and mAP over the whole ranking and\n"
                         "writes them to OUT/retrieval.txt.\n",
    [RT_CMD_EVAL] = "Every protocol of --protocols on one backbone, one report: linear evaluation, fine-tuning,\n"
                    "the weighted kNN, retrieval and fine-tuning on label fractions, as the commands of the same\n"
                    "names do them, from one pass of feature extraction. Writes OUT/eval.json (each figure with\n"
                    "its protocol, data, split, labels and seed), the commands' own lineval.txt, knn.txt and\n"
                    "retrieval.txt, OUT/eval_map.png (the test features' two principal components, a colour per\n"
                    "class) and prints a table (a random backbone's files end in _random).\n",
    [RT_CMD_FINETUNE] = "Fine-tuning (BASELINES.md section 7): the backbone of CHECKPOINT and a new linear\n"
                        "classifier trained together on the labelled train split, backbone in train mode, Adam\n"
                        "with backbone lr 1e-3 and classifier lr 1e-4, weight decay 1e-5, batch 128, no\n"
                        "augmentation; prints the test top-1 accuracy and writes it to OUT/finetune.txt.\n",
};

static const char *const SYNOPSIS[] = {
    [RT_CMD_TRAIN] = "[flags]",
    [RT_CMD_LINEVAL] = "--data NAME[:PATH] (--checkpoint FILE | --random-init) [flags]",
    [RT_CMD_GRAD] = "--input X --out G [--params P] [flags]",
    [RT_CMD_BENCH] = "[flags]",
    [RT_CMD_FINETUNE] = "--data NAME[:PATH] (--checkpoint FILE | --random-init) [flags]",
    [RT_CMD_KNN] = "--data NAME[:PATH] (--checkpoint FILE | --random-init) [flags]",
    [RT_CMD_EVAL] = "--data NAME[:PATH] (--checkpoint FILE | --random-init) --protocols LIST [flags]",
    [RT_CMD_RETRIEVAL] = "--data NAME[:PATH] (--checkpoint FILE | --random-init) [flags]",
};

void rt_cli_usage(FILE *f, rt_cli_cmd cmd, const char *prog, const char *spec_arg, const rt_flag_table *extra,
                  int nextra) {
    rt_flag_table tables[4] = {rt_cli_flags};
    for (int i = 0; i < nextra && i < 3; i++) tables[1 + i] = extra[i];
    fprintf(f, "usage: %s%s %s\n\n%s\n", prog, spec_arg, SYNOPSIS[cmd], SUMMARY[cmd]);
    rt_flags_usage(f, tables, 1 + (nextra < 3 ? nextra : 3), (int)cmd);
    fprintf(f, "  -h, --help          this text\n\n"
               "(compiled in): the step is compiled with this value: rrc train, lineval and compile\n"
               "take it; a compiled trainer refuses any other.\n");
    if (cmd != RT_CMD_GRAD && cmd != RT_CMD_BENCH)
        fprintf(f, "\ndatasets: %s\n", rt_dataset_names());
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

/* --method supervised (ft NULL) or fine-tuning: train, then the
   classifier's test accuracy, printed and in OUT/supervised.txt or
   OUT/finetune.txt. */
static int train_supervised(const rt_program *p, const char *prog, const rt_train_opts *o, const rt_finetune_opts *ft,
                            double *acc_out) {
    rt_dataset tr = {0}, te = {0};
    rt_data_opts dopts = {p->in_h, p->in_w, p->in_c, o->seed};
    rt_data_subset test_part = {.classes = o->subset.classes};
    double acc = 0;
    int rc = 1;
    char err[2400];
    if (rt_dataset_load_subset(o->data, RT_SPLIT_TRAIN, &dopts, &o->subset, &tr, err, sizeof err) != 0 ||
        rt_dataset_load_subset(o->data, RT_SPLIT_TEST, &dopts, &test_part, &te, err, sizeof err) != 0 ||
        (ft ? rt_finetune(p, o, ft, &tr, &te, &acc, err, sizeof err) : rt_train_supervised(p, o, &tr, &te, &acc, err, sizeof err)) !=
            0) {
        fprintf(stderr, "%s: %s\n", prog, err);
    } else {
        const char *what = ft ? "fine-tuning" : "supervised";
        printf("%s %s%s%s on %s, %d epochs: test top-1 %.2f%%\n", what, p->spec_name, ft ? " from " : "",
               ft ? (ft->checkpoint ? ft->checkpoint : "random init") : "", o->data, o->epochs, 100 * acc);
        char path[1100];
        snprintf(path, sizeof path, "%s/%s.txt", o->out_dir, ft ? "finetune" : "supervised");
        char text[4096], decay[64] = "";
        for (int i = 0; ft && i < ft->ndecay; i++)
            snprintf(decay + strlen(decay), sizeof decay - strlen(decay), "%s%d", i ? "," : "", ft->decay_at[i]);
        int k = snprintf(text, sizeof text, "spec %s\ndata %s\nclasses %s\nlabels %s\ntrain_images %lld\nepochs %d\nbatch %d\n"
                         "seed %llu\n", p->spec_name, o->data, o->subset.classes ? o->subset.classes : "all",
                         o->subset.labels ? o->subset.labels : "all", (long long)tr.n, o->epochs, p->batch,
                         (unsigned long long)o->seed);
        if (ft && k > 0 && (size_t)k < sizeof text)
            k += snprintf(text + k, sizeof text - (size_t)k,
                          "backbone %s\noptimizer adam\nlr_backbone %g\nlr_classifier %g\nweight_decay %g\naugment %s\n"
                          "decay_at %s\n", ft->checkpoint ? ft->checkpoint : "random init", ft->lr_backbone, ft->lr_head,
                          ft->weight_decay, ft->augment ? "crop+flip" : "none", ft->ndecay ? decay : "none");
        if (k > 0 && (size_t)k < sizeof text) k += snprintf(text + k, sizeof text - (size_t)k, "test_top1 %.4f\n", acc);
        if (k < 0 || (size_t)k >= sizeof text) snprintf(err, sizeof err, "%s: the data set's name is too long", path);
        if (k < 0 || (size_t)k >= sizeof text || rt_write_atomic(path, text, (size_t)k, err, sizeof err) != 0)
            fprintf(stderr, "%s: %s\n", prog, err);
        else
            rc = 0;
    }
    if (rc == 0 && acc_out) *acc_out = acc;
    rt_dataset_free(&tr);
    rt_dataset_free(&te);
    return rc;
}

/* What every rank of a data-parallel run must share: its command line and
   its compiled program (but for the steps of its own share of the batch).
   -1 after printing which differs (every rank prints it). */
static int ranks_agree(const rt_program *p, const char *prog, int argc, char **argv) {
    uint64_t h = rt_hash_text(0, "argv");
    for (int i = 0; i < argc; i++) h = rt_hash_text(h, argv[i]);
    char err[512];
    if (rt_comm_agree(h, "the command line", err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return -1;
    }
    rt_program q = *p;
    q.train_full = q.train_last = q.rank_full[0] = q.rank_full[1] = q.rank_last[0] = q.rank_last[1] = NULL;
    int fi[RT_PROGRAM_SLOTS] = {0};
    char *json = rt_program_to_json(&q, fi);
    h = rt_hash_text(rt_hash_text(0, json ? json : ""), p->spec_name);
    free(json);
    h ^= p->layout_hash;
    if (rt_comm_agree(h, "the compiled program (spec, options, parameter layout)", err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return -1;
    }
    return 0;
}

int rt_cli_train(const rt_program *p, const char *prog, int argc, char **argv) {
    const rt_comm *cm = rt_comm_get();
    if (cm->size > 1 && ranks_agree(p, prog, argc, argv) != 0) return 1;
    rt_args a;
    if (!parse(RT_CMD_TRAIN, prog, argc, argv, &a)) return 1;
    if (a.help) {
        rt_cli_usage(stdout, RT_CMD_TRAIN, prog, "", NULL, 0);
        rt_args_free(&a);
        return 0;
    }
    rt_train_opts o = {.data = p->data, .epochs = p->epochs, .nthreads = 2, .seed = p->seed, .engine = "compiled"};
    char outbuf[512], csvbuf[1100];
    int profile = 0, every = 0;
    bool monitor = false, threads_given = false;
    const char *prof_csv = NULL;
    bool ok = compiled_flags_match(p, prog, &a);
    for (int i = 0; i < a.nopts; i++) {
        const rt_opt *x = &a.opts[i];
        switch (x->flag->id) {
        case RT_F_DATA: o.data = x->value; break;
        case RT_F_EPOCHS: o.epochs = (int)x->ival; break;
        case RT_F_SEED: o.seed = (uint64_t)x->ival; break;
        case RT_F_THREADS: o.nthreads = (int)x->ival, threads_given = true; break;
        case RT_F_OUT: o.out_dir = x->value; break;
        case RT_F_MAX_STEPS: o.max_steps = x->ival; break;
        case RT_F_RESUME_ANYWAY: o.resume_anyway = 1; break;
        case RT_F_RESUME: o.resume = x->value; break;
        case RT_F_CHECKPOINT_EVERY: o.checkpoint_every = (int)x->ival; break;
        case RT_F_QUIET: o.quiet = 1; break;
        case RT_F_PROFILE: profile = 1; break;
        case RT_F_PROFILE_CSV: prof_csv = x->value, profile = 1; break;
        case RT_F_ENGINE: o.engine = x->value; break;
        case RT_F_MONITOR: monitor = true; break;
        case RT_F_EVERY: every = (int)x->ival; break;
        case RT_F_CLASSES: o.subset.classes = x->value; break;
        case RT_F_LABELS: o.subset.labels = x->value; break;
        default: break;   /* the compiled flags, checked above */
        }
    }
    rt_args_free(&a);   /* the values point into argv */
    if (!ok || !o.data) return 1;
    if (every && !monitor) {
        fprintf(stderr, "%s: --every goes with --monitor knn\n", prog);
        return 1;
    }
    o.monitor_every = monitor ? (every ? every : 1) : 0;
    o.subset.seed = o.seed;
    if (o.subset.labels && p->method != RT_METHOD_SUPERVISED) {
        fprintf(stderr, "%s: --labels is for training with labels (--method supervised) and for lineval\n", prog);
        return 1;
    }
    if (cm->size > 1) {
        /* a rank's threads: its share of this machine's cores */
        if (!threads_given) {
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            o.nthreads = cores / cm->local_size >= 1 ? (int)(cores / cm->local_size) : 1;
        }
        const char *alone = p->method == RT_METHOD_SUPERVISED ? "supervised training" : profile ? "--profile" : NULL;
        if (alone) {
            if (cm->rank == 0) fprintf(stderr, "%s: %s runs in one process, not under mpirun\n", prog, alone);
            return 1;
        }
        if (cm->rank != 0) o.quiet = 1;
    }
    if (!o.out_dir) {
        if (o.resume) {
            o.out_dir = o.resume;
        } else {
            if (cm->rank == 0) mkdir("runs", 0777);
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
        rc = train_supervised(p, prog, &o, NULL, NULL);
    } else if (rt_train(p, &o, err, sizeof err) != 0) {
        if (cm->size > 1) {
            /* the other ranks wait in a collective: end them all */
            fprintf(stderr, "%s: rank %d: %s\n", prog, cm->rank, err);
            rt_comm_abort(1);
        }
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

static int load_split(const char *prog, const rt_program *p, const char *data, rt_split split, const rt_data_subset *part,
                      rt_dataset *d) {
    char err[1024];
    rt_data_opts o = {p->in_h, p->in_w, p->in_c, part->seed};
    if (rt_dataset_load_subset(data, split, &o, part, d, err, sizeof err) != 0) {
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

/* ---- frozen features: lineval, knn, retrieval ---- */

/* One evaluation of a frozen backbone: its flags, then the eval-mode
   features of both splits. */
typedef struct FrozenEval {
    const char *data, *ckpt, *out;
    rt_data_subset part;
    uint64_t seed;
    int random_init, epochs, neighbours, threads;
    const char *protocols;   /* eval */
    double temperature;
    rt_dataset tr, te;
    float *ftr, *fte;
    int64_t F;
} FrozenEval;

static const char *const FROZEN_FILE[] = {[RT_CMD_LINEVAL] = "lineval", [RT_CMD_KNN] = "knn", [RT_CMD_RETRIEVAL] = "retrieval"};

/* Parses cmd's command line into e; 1 on an error (printed), -1 after
   --help, 0 to go on. */
static int frozen_parse(rt_cli_cmd cmd, const rt_program *p, const char *prog, int argc, char **argv, FrozenEval *e) {
    rt_args a;
    if (!parse(cmd, prog, argc, argv, &a)) return 1;
    if (a.help) {
        rt_cli_usage(stdout, cmd, prog, "", NULL, 0);
        rt_args_free(&a);
        return -1;
    }
    *e = (FrozenEval){.data = p->data, .seed = p->seed, .epochs = 100, .neighbours = RT_KNN_K, .temperature = RT_KNN_T,
                      .threads = 2};
    bool ok = compiled_flags_match(p, prog, &a);
    for (int i = 0; i < a.nopts; i++) {
        const rt_opt *x = &a.opts[i];
        switch (x->flag->id) {
        case RT_F_DATA: e->data = x->value; break;
        case RT_F_CHECKPOINT: e->ckpt = x->value; break;
        case RT_F_RANDOM_INIT: e->random_init = 1; break;
        case RT_F_EPOCHS: e->epochs = (int)x->ival; break;
        case RT_F_SEED: e->seed = (uint64_t)x->ival; break;
        case RT_F_OUT: e->out = x->value; break;
        case RT_F_CLASSES: e->part.classes = x->value; break;
        case RT_F_LABELS: e->part.labels = x->value; break;
        case RT_F_NEIGHBOURS: e->neighbours = (int)x->ival; break;
        case RT_F_PROTOCOLS: e->protocols = x->value; break;
        case RT_F_THREADS: e->threads = (int)x->ival; break;
        case RT_F_TEMPERATURE: {
            char *end;
            e->temperature = strtod(x->value, &end);
            if (*end || !(e->temperature > 0) || !isfinite(e->temperature)) {
                fprintf(stderr, "%s: --temperature must be a positive number (got \"%s\")\n", prog, x->value);
                ok = false;
            }
            break;
        }
        default: break;   /* the compiled flags, checked above; --threads */
        }
    }
    rt_args_free(&a);
    if (!ok || !e->data) return 1;
    e->part.seed = e->seed;
    if (!e->ckpt == !e->random_init) {
        fprintf(stderr, "%s: give exactly one of --checkpoint FILE and --random-init\n", prog);
        return 1;
    }
    return 0;
}

/* The splits, the backbone (checkpoint or seeded) and its eval-mode
   features; 0, or 1 after printing the problem. */
static int frozen_features(const rt_program *p, const char *prog, FrozenEval *e) {
    openblas_set_num_threads(1);   /* see rt_cli_train */
    char err[1024];
    if (load_split(prog, p, e->data, RT_SPLIT_TRAIN, &e->part, &e->tr) != 0 ||
        load_split(prog, p, e->data, RT_SPLIT_TEST, &e->part, &e->te) != 0)
        return 1;
    rt_model m = {0};
    if (rt_model_init(&m, p, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    rt_model_seed(&m, e->seed);
    if (e->ckpt &&
        rt_checkpoint_load(e->ckpt, p, m.params, m.state, NULL, NULL, NULL, NULL, RT_CKPT_BACKBONE_ONLY, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        rt_model_free(&m);
        return 1;
    }
    double mean[3], std[3];
    eval_norm(p, &e->tr, mean, std);
    e->F = p->feat_dim;
    e->ftr = malloc((size_t)(e->tr.n * e->F) * sizeof *e->ftr);
    e->fte = malloc((size_t)(e->te.n * e->F) * sizeof *e->fte);
    if (!e->ftr || !e->fte) {
        fprintf(stderr, "%s: out of memory for features\n", prog);
        rt_model_free(&m);
        return 1;
    }
    rt_features(&m, &e->tr, mean, std, e->ftr);
    rt_features(&m, &e->te, mean, std, e->fte);
    rt_model_free(&m);
    fprintf(stderr, "%s: features of %lld train and %lld test images (%lld-d) computed\n", prog, (long long)e->tr.n,
            (long long)e->te.n, (long long)e->F);
    return 0;
}

static void frozen_free(FrozenEval *e) {
    free(e->ftr);
    free(e->fte);
    rt_dataset_free(&e->tr);
    rt_dataset_free(&e->te);
}

/* Writes OUT/NAME.txt (NAME_random.txt for a random backbone): --out, else
   the checkpoint's folder, else runs/SPEC-random. head: the lines every
   report has; body: the protocol's. 0, or 1 after printing. */
/* The folder of an evaluation's reports (made): --out, else the
   checkpoint's folder, else runs/SPEC-random. 0, or 1 after printing. */
static int frozen_dir(const rt_program *p, const char *prog, const FrozenEval *e, char *dir, size_t n) {
    if (e->out) {
        snprintf(dir, n, "%s", e->out);
    } else if (e->ckpt) {
        snprintf(dir, n, "%s", e->ckpt);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, n, ".");
    } else {
        mkdir("runs", 0777);
        snprintf(dir, n, "runs/%s-random", p->spec_name);
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: %s: cannot create: %s\n", prog, dir, strerror(errno));
        return 1;
    }
    return 0;
}

static int frozen_report(const rt_program *p, const char *prog, const FrozenEval *e, const char *name, const char *body) {
    char dir[1024], path[1100], text[8192], err[1024];
    if (frozen_dir(p, prog, e, dir, sizeof dir) != 0) return 1;
    snprintf(path, sizeof path, "%s/%s%s.txt", dir, name, e->ckpt ? "" : "_random");
    int k = snprintf(text, sizeof text, "spec %s\nbackbone %s\ndata %s\nclasses %s\nlabels %s\ntrain_images %lld\n"
                     "test_images %lld\nseed %llu\n%s",
                     p->spec_name, e->ckpt ? e->ckpt : "random init", e->data, e->part.classes ? e->part.classes : "all",
                     e->part.labels ? e->part.labels : "all", (long long)e->tr.n, (long long)e->te.n,
                     (unsigned long long)e->seed, body);
    if (k < 0 || (size_t)k >= sizeof text) {
        fprintf(stderr, "%s: %s: the checkpoint's or data set's name is too long\n", prog, path);
        return 1;
    }
    if (rt_write_atomic(path, text, (size_t)k, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    fprintf(stderr, "%s: wrote %s\n", prog, path);
    return 0;
}

/* " (classes ..., labels ...: N train images)" when a subset was taken */
static void frozen_scope(const FrozenEval *e, char *buf, size_t n) {
    buf[0] = 0;
    if (e->part.classes || e->part.labels)
        snprintf(buf, n, " (classes %s, labels %s: %lld train images)", e->part.classes ? e->part.classes : "all",
                 e->part.labels ? e->part.labels : "all", (long long)e->tr.n);
}

/* One frozen-feature protocol on e's features: printed, its report's
   lines in body, its headline figures in fig (fig[0]: top-1 or mAP; for
   retrieval fig[1..4] the precisions). 0, or 1 after printing. */
static int frozen_run(rt_cli_cmd cmd, const rt_program *p, const char *prog, const FrozenEval *e, char *body, size_t blen,
                      double fig[5]) {
    const char *what = e->ckpt ? e->ckpt : "random init";
    char scope[256], err[1024];
    frozen_scope(e, scope, sizeof scope);
    int nclasses = e->tr.nclasses > e->te.nclasses ? e->tr.nclasses : e->te.nclasses;
    if (cmd == RT_CMD_LINEVAL) {
        const int batch = 128;   /* METHOD.md's classifier batch */
        ProbeCtx pc = {prog, e->epochs};
        rt_probe_opts po = {.epochs = e->epochs, .batch = batch, .lr = 1e-3, .seed = e->seed, .progress = probe_progress,
                            .ctx = &pc};
        rt_probe_report rep = {0};
        double acc = rt_linear_probe(e->ftr, e->tr.labels, e->tr.n, e->fte, e->te.labels, e->te.n, e->F, nclasses, &po, &rep);
        printf("linear evaluation of %s (%s) on %s%s: test top-1 %.2f%% (train %.2f%%)\n", p->spec_name, what, e->data, scope,
               100 * acc, 100 * rep.train_acc);
        snprintf(body, blen, "epochs %d\nbatch %d\ntest_top1 %.4f\ntrain_top1 %.4f\n", e->epochs, batch, acc, rep.train_acc);
        fig[0] = acc;
        return 0;
    }
    rt_pool_init(e->threads);
    if (cmd == RT_CMD_KNN) {
        rt_knn_result r;
        if (rt_knn_eval(e->ftr, e->tr.labels, e->tr.n, e->fte, e->te.labels, e->te.n, e->F, nclasses, e->neighbours,
                        e->temperature, NULL, &r, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", prog, err);
            return 1;
        }
        printf("kNN of %s (%s) on %s%s: test top-1 %.2f%%, top-5 %.2f%% (k %d, temperature %g, cosine)\n", p->spec_name, what,
               e->data, scope, 100 * r.top1, 100 * r.top5, r.k, e->temperature);
        snprintf(body, blen, "neighbours %d\ntemperature %g\ntest_top1 %.4f\ntest_top5 %.4f\n", r.k, e->temperature, r.top1,
                 r.top5);
        fig[0] = r.top1, fig[1] = r.top5;
        return 0;
    }
    rt_retrieval_result r;
    if (rt_retrieval_eval(e->ftr, e->tr.labels, e->tr.n, e->fte, e->te.labels, e->te.n, e->F, NULL, &r, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    printf("retrieval with %s (%s) on %s%s: %lld test queries, %lld train gallery: P@%d %.2f%%, P@%d %.2f%%, P@%d "
           "%.2f%%, P@%d %.2f%%, mAP %.2f%%\n",
           p->spec_name, what, e->data, scope, (long long)r.queries, (long long)e->tr.n, r.k[0], 100 * r.precision[0], r.k[1],
           100 * r.precision[1], r.k[2], 100 * r.precision[2], r.k[3], 100 * r.precision[3], 100 * r.map);
    int k = 0;
    for (int i = 0; i < RT_RETRIEVAL_NK; i++) {
        k += snprintf(body + k, blen - (size_t)k, "precision_at_%d %.4f\n", r.k[i], r.precision[i]);
        fig[1 + i] = r.precision[i];
    }
    snprintf(body + k, blen - (size_t)k, "map %.4f\nqueries_without_relevant %lld\n", r.map, (long long)r.no_relevant);
    fig[0] = r.map;
    return 0;
}

static int frozen_cmd(rt_cli_cmd cmd, const rt_program *p, const char *prog, int argc, char **argv) {
    FrozenEval e;
    int rc = frozen_parse(cmd, p, prog, argc, argv, &e);
    if (rc) return rc < 0 ? 0 : rc;
    char body[1024];
    double fig[5];
    rc = frozen_features(p, prog, &e);
    if (rc == 0) rc = frozen_run(cmd, p, prog, &e, body, sizeof body, fig);
    if (rc == 0) rc = frozen_report(p, prog, &e, FROZEN_FILE[cmd], body);
    frozen_free(&e);
    return rc;
}

int rt_cli_lineval(const rt_program *p, const char *prog, int argc, char **argv) {
    return frozen_cmd(RT_CMD_LINEVAL, p, prog, argc, argv);
}

int rt_cli_knn(const rt_program *p, const char *prog, int argc, char **argv) {
    return frozen_cmd(RT_CMD_KNN, p, prog, argc, argv);
}

int rt_cli_retrieval(const rt_program *p, const char *prog, int argc, char **argv) {
    return frozen_cmd(RT_CMD_RETRIEVAL, p, prog, argc, argv);
}

/* ---- finetune ---- */

/* --decay-at: "A,B" (epochs, or P% of the run's epochs: int(P/100 E)) or
   "none". */
static bool parse_decay(const char *prog, const char *v, int epochs, rt_finetune_opts *f) {
    f->ndecay = 0;
    if (!strcmp(v, "none")) return true;
    for (const char *q = v;;) {
        char *end;
        errno = 0;
        double x = strtod(q, &end);
        bool pct = *end == '%';
        bool range = !errno && x >= 0 && x <= (pct ? 100 : 1000000);   /* before the conversions */
        long long e = !range ? -1 : pct ? milestone_epoch(x / 100.0, epochs) : (long long)x;
        if (end == q || !range || (!pct && x != (double)e) ||
            f->ndecay == (int)(sizeof f->decay_at / sizeof f->decay_at[0])) {
            fprintf(stderr, "%s: --decay-at must be up to 4 epochs or percentages of --epochs, e.g. 50%%,75%%, or none (got \"%s\")\n",
                    prog, v);
            return false;
        }
        f->decay_at[f->ndecay++] = (int)e;
        q = end + pct;
        if (!*q) return true;
        if (*q != ',') {
            fprintf(stderr, "%s: --decay-at: expected ',' after \"%.*s\" (got \"%s\")\n", prog, (int)(q - v), v, v);
            return false;
        }
        q++;
    }
}

int rt_cli_finetune(const rt_program *p, const char *prog, int argc, char **argv) {
    rt_args a;
    if (!parse(RT_CMD_FINETUNE, prog, argc, argv, &a)) return 1;
    if (a.help) {
        rt_cli_usage(stdout, RT_CMD_FINETUNE, prog, "", NULL, 0);
        rt_args_free(&a);
        return 0;
    }
    rt_train_opts o = {.data = p->data, .epochs = 100, .nthreads = 2, .seed = p->seed, .engine = "compiled"};
    rt_finetune_opts ft = {.lr_backbone = 1e-3, .lr_head = 1e-4, .weight_decay = 1e-5, .decay_at = {100, 150}, .ndecay = 2};
    const char *decay = NULL;
    int random_init = 0;
    bool ok = compiled_flags_match(p, prog, &a);
    for (int i = 0; i < a.nopts; i++) {
        const rt_opt *x = &a.opts[i];
        switch (x->flag->id) {
        case RT_F_DATA: o.data = x->value; break;
        case RT_F_CHECKPOINT: ft.checkpoint = x->value; break;
        case RT_F_RANDOM_INIT: random_init = 1; break;
        case RT_F_EPOCHS: o.epochs = (int)x->ival; break;
        case RT_F_SEED: o.seed = (uint64_t)x->ival; break;
        case RT_F_THREADS: o.nthreads = (int)x->ival; break;
        case RT_F_OUT: o.out_dir = x->value; break;
        case RT_F_QUIET: o.quiet = 1; break;
        case RT_F_CLASSES: o.subset.classes = x->value; break;
        case RT_F_LABELS: o.subset.labels = x->value; break;
        case RT_F_AUGMENT: ft.augment = 1; break;
        case RT_F_DECAY_AT: decay = x->value; break;
        default: break;   /* the compiled flags, checked above */
        }
    }
    rt_args_free(&a);
    if (!ok || !o.data || (decay && !parse_decay(prog, decay, o.epochs, &ft))) return 1;
    if (!ft.checkpoint == !random_init) {
        fprintf(stderr, "%s: give exactly one of --checkpoint FILE and --random-init\n", prog);
        return 1;
    }
    if (p->method != RT_METHOD_SUPERVISED || !p->classify) {
        fprintf(stderr, "%s: fine-tuning needs a program with a classifier (compile with --method supervised)\n", prog);
        return 1;
    }
    o.subset.seed = o.seed;
    char outbuf[1100];
    if (!o.out_dir) {
        if (ft.checkpoint) {
            const char *slash = strrchr(ft.checkpoint, '/');
            snprintf(outbuf, sizeof outbuf, "%.*s%sfinetune", slash ? (int)(slash - ft.checkpoint) : 0, ft.checkpoint,
                     slash ? "/" : "");
        } else {
            mkdir("runs", 0777);
            snprintf(outbuf, sizeof outbuf, "runs/%s-finetune-random", p->spec_name);
        }
        o.out_dir = outbuf;
    }
    openblas_set_num_threads(1);   /* see rt_cli_train */
    rt_pool_init(o.nthreads);
    return train_supervised(p, prog, &o, &ft, NULL);
}

/* ---- eval: every protocol, one report ---- */

enum { P_LINEAR = 1, P_FINETUNE = 2, P_KNN = 4, P_RETRIEVAL = 8, P_FRACTIONS = 16 };
static const char *const PROTOCOLS[] = {"linear", "finetune", "knn", "retrieval", "fractions"};
#define NPROTOCOLS 5

/* "linear,knn,..." into a mask; false (printed) on an unknown or repeated
   name. */
static bool parse_protocols(const char *prog, const char *v, unsigned *mask) {
    *mask = 0;
    for (const char *q = v;;) {
        size_t n = strcspn(q, ",");
        int k = 0;
        while (k < NPROTOCOLS && (strlen(PROTOCOLS[k]) != n || strncmp(PROTOCOLS[k], q, n) != 0)) k++;
        if (k == NPROTOCOLS || (*mask & (1u << k))) {
            fprintf(stderr, "%s: --protocols: %s '%.*s' (the protocols: linear, finetune, knn, retrieval, fractions)\n", prog,
                    k == NPROTOCOLS ? "unknown protocol" : "repeated protocol", (int)n, q);
            return false;
        }
        *mask |= 1u << k;
        if (!q[n]) return true;
        q += n + 1;
    }
}

/* One figure of the report: what it is, of which data, split and seed. */
static void add_figure(json_t *list, FILE *table, const char *protocol, const char *metric, double value, const FrozenEval *e,
                       const char *labels, int64_t train_images, int epochs) {
    json_t *o = json_object();
    json_object_set_new(o, "protocol", json_string(protocol));
    json_object_set_new(o, "metric", json_string(metric));
    json_object_set_new(o, "value", json_real(value));
    json_object_set_new(o, "data", json_string(e->data));
    json_object_set_new(o, "split", json_string("test"));
    json_object_set_new(o, "train_split", json_string("train"));
    json_object_set_new(o, "classes", json_string(e->part.classes ? e->part.classes : "all"));
    json_object_set_new(o, "labels", json_string(labels ? labels : "all"));
    json_object_set_new(o, "train_images", json_integer(train_images));
    json_object_set_new(o, "seed", json_integer((json_int_t)e->seed));
    if (epochs) json_object_set_new(o, "epochs", json_integer(epochs));
    json_array_append_new(list, o);
    char m[64];
    snprintf(m, sizeof m, "%s%s%s", metric, labels ? ", labels " : "", labels ? labels : "");
    fprintf(table, "  %-11s %-26s %7.2f%%   %lld\n", protocol, m, 100 * value, (long long)train_images);
}

int rt_cli_eval(const rt_eval_programs *ps, const char *prog, int argc, char **argv) {
    FrozenEval e;
    const rt_program *p = ps->features;
    int rc = frozen_parse(RT_CMD_EVAL, p, prog, argc, argv, &e);
    if (rc) return rc < 0 ? 0 : rc;
    unsigned mask;
    if (!e.protocols) {
        fprintf(stderr, "%s: give --protocols, e.g. linear,knn,retrieval (or linear,finetune,knn,retrieval,fractions)\n", prog);
        return 1;
    }
    if (!parse_protocols(prog, e.protocols, &mask)) return 1;
    char dir[1024], path[1100], err[1024];
    if (frozen_dir(p, prog, &e, dir, sizeof dir) != 0) return 1;
    json_t *figures = json_array();
    char *tbuf = NULL;
    size_t tlen = 0;
    FILE *table = open_memstream(&tbuf, &tlen);
    if (!figures || !table) {
        fprintf(stderr, "%s: out of memory\n", prog);
        json_decref(figures);
        return 1;
    }
    double t0 = mono();
    if (mask & (P_LINEAR | P_KNN | P_RETRIEVAL)) {
        rc = frozen_features(p, prog, &e);
        static const struct { unsigned bit; rt_cli_cmd cmd; } frozen[] = {
            {P_LINEAR, RT_CMD_LINEVAL}, {P_KNN, RT_CMD_KNN}, {P_RETRIEVAL, RT_CMD_RETRIEVAL}};
        for (int i = 0; i < 3 && rc == 0; i++) {
            if (!(mask & frozen[i].bit)) continue;
            char body[1024];
            double fig[5];
            rc = frozen_run(frozen[i].cmd, p, prog, &e, body, sizeof body, fig);
            if (rc == 0) rc = frozen_report(p, prog, &e, FROZEN_FILE[frozen[i].cmd], body);   /* as the command writes it */
            if (rc) break;
            if (frozen[i].cmd == RT_CMD_LINEVAL) {
                add_figure(figures, table, "linear", "top1", fig[0], &e, e.part.labels, e.tr.n, e.epochs);
            } else if (frozen[i].cmd == RT_CMD_KNN) {
                add_figure(figures, table, "knn", "top1", fig[0], &e, e.part.labels, e.tr.n, 0);
                add_figure(figures, table, "knn", "top5", fig[1], &e, e.part.labels, e.tr.n, 0);
            } else {
                static const char *const pk[] = {"precision@1", "precision@5", "precision@10", "precision@100"};
                for (int k = 0; k < 4; k++) add_figure(figures, table, "retrieval", pk[k], fig[1 + k], &e, e.part.labels, e.tr.n, 0);
                add_figure(figures, table, "retrieval", "mAP", fig[0], &e, e.part.labels, e.tr.n, 0);
            }
        }
        if (rc == 0) {   /* a picture of the test features; a note when it cannot be drawn */
            char png[1100], title[256];
            snprintf(png, sizeof png, "%s/eval_map%s.png", dir, e.ckpt ? "" : "_random");
            snprintf(title, sizeof title, "%s (%s): test features, PCA", p->spec_name, e.ckpt ? "trained" : "random init");
            int nc = e.tr.nclasses > e.te.nclasses ? e.tr.nclasses : e.te.nclasses;
            if (rt_feature_map(e.fte, e.te.labels, e.te.n, e.F, nc, title, png, err, sizeof err) != 0)
                fprintf(stderr, "%s: note: %s\n", prog, err);
            else
                fprintf(stderr, "%s: wrote %s\n", prog, png);
        }
        free(e.ftr), free(e.fte);
        e.ftr = e.fte = NULL;
    }
    /* fine-tuning: 100% of the labels; fractions: 1%, 10% and 100% */
    static const char *const fractions[] = {"1%", "10%", NULL};
    for (int f = 0; f < 3 && rc == 0 && (mask & (P_FINETUNE | P_FRACTIONS)); f++) {
        const char *labels = fractions[f];
        if (labels && !(mask & P_FRACTIONS)) continue;
        if (e.part.labels && labels) continue;   /* --labels given: fine-tune on that part only */
        if (!labels) labels = e.part.labels;
        rt_data_subset part = {e.part.classes, labels, e.seed};
        rt_dataset d = {0};
        rt_data_opts dopts = {p->in_h, p->in_w, p->in_c, e.seed};
        if (rt_dataset_load_subset(e.data, RT_SPLIT_TRAIN, &dopts, &part, &d, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", prog, err);
            rc = 1;
            break;
        }
        int64_t n = d.n;
        int classes = d.nclasses;
        rt_dataset_free(&d);
        const rt_program *sp = ps->supervised ? ps->supervised(ps->ctx, n, classes, err, sizeof err) : NULL;
        if (!sp) {
            fprintf(stderr, "%s: fine-tuning: %s\n", prog, ps->supervised ? err : "this trainer has no supervised program");
            rc = 1;
            break;
        }
        char out[1200];
        snprintf(out, sizeof out, "%s/finetune%s%.8s", dir, labels ? "-" : "", labels ? labels : "");
        rt_train_opts o = {.data = e.data, .out_dir = out, .epochs = e.epochs, .nthreads = e.threads, .seed = e.seed,
                           .quiet = 1, .engine = "compiled", .subset = part};
        rt_finetune_opts ft = {.checkpoint = e.ckpt, .lr_backbone = 1e-3, .lr_head = 1e-4, .weight_decay = 1e-5,
                               .decay_at = {100, 150}, .ndecay = 2};
        rt_pool_init(e.threads);
        double acc = 0;
        if (train_supervised(sp, prog, &o, &ft, &acc) != 0) {
            rc = 1;
            break;
        }
        if (!labels && (mask & P_FINETUNE)) add_figure(figures, table, "finetune", "top1", acc, &e, NULL, n, e.epochs);
        if (mask & P_FRACTIONS) add_figure(figures, table, "fractions", "top1", acc, &e, labels ? labels : "100%", n, e.epochs);
    }
    fclose(table);
    if (rc == 0) {
        json_t *doc = json_object();
        json_object_set_new(doc, "format", json_string("rrc-eval-1"));
        json_object_set_new(doc, "spec", json_string(p->spec_name));
        json_object_set_new(doc, "backbone", json_string(e.ckpt ? e.ckpt : "random init"));
        json_object_set_new(doc, "data", json_string(e.data));
        json_object_set_new(doc, "seed", json_integer((json_int_t)e.seed));
        json_object_set_new(doc, "protocols", json_string(e.protocols));
        json_object_set_new(doc, "seconds", json_real(mono() - t0));
        json_object_set_new(doc, "figures", figures);
        figures = NULL;
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(doc);
        snprintf(path, sizeof path, "%s/eval%s.json", dir, e.ckpt ? "" : "_random");
        if (!text || rt_write_atomic(path, text, strlen(text), err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", prog, text ? err : "out of memory");
            rc = 1;
        } else {
            printf("\n== rrc eval: %s, backbone %s, data %s, seed %llu ==\n  %-11s %-26s %8s   %s\n%s", p->spec_name,
                   e.ckpt ? e.ckpt : "random init", e.data, (unsigned long long)e.seed, "protocol", "figure (test split)", "value",
                   "train images", tbuf);
            fprintf(stderr, "%s: wrote %s (%.1f s)\n", prog, path, mono() - t0);
        }
        free(text);
    }
    json_decref(figures);
    free(tbuf);
    frozen_free(&e);
    return rc;
}

/* ---- grad ---- */

int rt_cli_grad(const rt_program *p, const char *prog, int argc, char **argv) {
    rt_args a;
    if (!parse(RT_CMD_GRAD, prog, argc, argv, &a)) return 1;
    if (a.help) {
        rt_cli_usage(stdout, RT_CMD_GRAD, prog, " grad", NULL, 0);
        rt_args_free(&a);
        return 0;
    }
    const char *input = NULL, *params = NULL, *out = NULL;
    uint64_t seed = p->seed;
    bool ok = compiled_flags_match(p, prog, &a);
    for (int i = 0; i < a.nopts; i++) {
        const rt_opt *x = &a.opts[i];
        switch (x->flag->id) {
        case RT_F_INPUT: input = x->value; break;
        case RT_F_PARAMS: params = x->value; break;
        case RT_F_OUT: out = x->value; break;
        case RT_F_SEED: seed = (uint64_t)x->ival; break;
        default: break;   /* --engine names the compiled step; the compiled flags, checked above */
        }
    }
    rt_args_free(&a);
    if (!ok) return 1;
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
    /* every input of the step: x, and a method's others (DeepCluster's y
       and w, Deep InfoMax's u), each of the compiled shape */
    for (int i = 0; i < e->ntensors; i++) {
        const rt_step_tensor *t = &e->tensors[i];
        if (t->region != RT_REGION_INPUT) continue;
        const rt_tensor *v = rt_st_find(&xf, t->name);
        bool fits = v && v->rank == t->rank;
        int64_t cnt = 1;
        for (int k = 0; k < t->rank; k++) {
            fits = fits && v->shape[k] == t->dim[k];
            cnt *= t->dim[k];
        }
        if (!fits) {
            fprintf(stderr, "%s: %s: %s tensor '%s' of shape [", prog, input, v ? "the" : "no", t->name);
            for (int k = 0; k < t->rank; k++) fprintf(stderr, "%s%lld", k ? "," : "", (long long)t->dim[k]);
            fprintf(stderr, "] (the compiled step's input)\n");
            goto done;
        }
        if (rt_tensor_to_f32(v, (float *)(m.io[RT_REGION_INPUT] + t->offset), cnt, input, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", prog, err);
            goto done;
        }
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


static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int rt_cli_bench(const rt_program *p, const char *prog, int argc, char **argv) {
    rt_args a;
    if (!parse(RT_CMD_BENCH, prog, argc, argv, &a)) return 1;
    if (a.help) {
        rt_cli_usage(stdout, RT_CMD_BENCH, prog, " bench", NULL, 0);
        rt_args_free(&a);
        return 0;
    }
    int steps = 20, warmup = 3, threads = 2, profile = 0;
    const char *prof_csv = NULL;
    bool ok = compiled_flags_match(p, prog, &a);
    for (int i = 0; i < a.nopts; i++) {
        const rt_opt *x = &a.opts[i];
        switch (x->flag->id) {
        case RT_F_STEPS: steps = (int)x->ival; break;
        case RT_F_WARMUP: warmup = (int)x->ival; break;
        case RT_F_THREADS: threads = (int)x->ival; break;
        case RT_F_PROFILE: profile = 1; break;
        case RT_F_PROFILE_CSV: prof_csv = x->value, profile = 1; break;
        default: break;   /* the compiled flags, checked above */
        }
    }
    rt_args_free(&a);
    if (!ok) return 1;
    openblas_set_num_threads(1);
    rt_pool_init(threads);
    rt_model m;
    char err[1024];
    int64_t rss0 = rt_prof_rss();   /* before the model: what the steps make resident is the rest */
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
    /* a method's other inputs, valid as training makes them: DeepCluster's
       pseudolabels and cluster weights, Deep InfoMax's prior samples */
    for (int i = 0; i < e->ntensors; i++) {
        const rt_step_tensor *t = &e->tensors[i];
        if (t->region != RT_REGION_INPUT || !strcmp(t->name, "x")) continue;
        float *v = (float *)(m.io[RT_REGION_INPUT] + t->offset);
        int64_t n = 1;
        for (int k = 0; k < t->rank; k++) n *= t->dim[k];
        for (int64_t j = 0; j < n; j++) {
            double r = rt_stream_uniform(&s);
            v[j] = !strcmp(t->name, "y") ? (float)floor(r * (p->clusters > 1 ? p->clusters : 1))
                   : !strcmp(t->name, "w") ? (float)(0.5 + 0.5 * r) : (float)r;
        }
    }
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
           e->K, (long long)e->B, threads, steps, med, (double)(rt_backbone_views(p) * e->B) / med, rt_blas_core());
    int64_t planned = 0, peak = rt_prof_peak_rss();
    for (int r = 0; r < RT_NREGIONS; r++) planned += e->region_bytes[r];
    if (rss0 >= 0 && peak >= rss0)   /* the model's regions, moments, the pool's and BLAS's buffers */
        printf("bench %s memory: step regions %.1f MiB planned; resident %.1f MiB more at the peak than before the model\n",
               p->spec_name, (double)planned / (1 << 20), (double)(peak - rss0) / (1 << 20));
    free(dt);
    int rc = profile ? prof_finish(prog, 0, prof_csv) : 0;
    rt_model_free(&m);
    return rc;
}
