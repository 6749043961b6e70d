/*
** rt_train.h: the relational-reasoning training loop and what evaluation
** needs from a program: shuffled epochs (the last partial batch kept, as
** the reference code does), K augmented views per image made on the run's
** threads before each step, the compiled step, the optimizer update, per-step metrics,
** progress, metrics.csv, checkpoints and curves; and eval-mode features.
*/
#ifndef RT_TRAIN_H
#define RT_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "rt_data.h"
#include "rt_program.h"

typedef struct rt_train_opts {
    const char *data;        /* dataset spec, "NAME[:PATH]" */
    const char *out_dir;     /* run directory (created) */
    int epochs;              /* total epochs of the run */
    int64_t max_steps;       /* stop after this many steps in all (0 = no limit) */
    int nthreads;            /* threads making each batch's views (>= 1; the step's pool has as many) */
    uint64_t seed;
    const char *resume;      /* run directory to continue from (its last.safetensors), or NULL */
    int resume_anyway;       /* resume although the checkpoint's seed, K, batch, loss or data set size differ */
    int quiet;               /* no progress line */
    int checkpoint_every;    /* also keep epoch_<e>.safetensors every this many epochs (0 = only last) */
    const char *engine;      /* for the log: "jit", "aot", ... */
    const rt_dataset *dataset;   /* already loaded (else loaded from `data`) */
    rt_data_subset subset;   /* the part of `data` to train on (--classes, --labels; seed: the run's) */
    int monitor_every;       /* --monitor knn: the kNN accuracy every this many epochs and at the end (0: off) */
} rt_train_opts;

/* State of a program in memory: the PARAM and STATE regions and the
   optimizer's buffers (laid out like PARAM). */
typedef struct rt_model {
    const rt_program *p;
    char *params, *state;
    float *opt_m, *opt_v;
    /* per entry: INPUT, OUTPUT and SCRATCH regions (one set, sized for the largest entry) */
    char *io[RT_NREGIONS];
} rt_model;

int rt_model_init(rt_model *m, const rt_program *p, char *err, size_t errlen);
/* Initialises params and running statistics from the seed (rt_init). */
void rt_model_seed(rt_model *m, uint64_t seed);
void rt_model_free(rt_model *m);
/* Runs an entry with the model's regions. */
void rt_model_run(rt_model *m, const rt_entry *e);
/* Where tensor t of an entry of m's program lives in m's regions. */
float *rt_model_tensor(rt_model *m, const rt_step_tensor *t);

/* Trains; returns 0, or -1 with a one-line message in err. */
int rt_train(const rt_program *p, const rt_train_opts *o, char *err, size_t errlen);

/* Eval-mode features of images idx... of a dataset: normalised with
   mean/std (no augmentation), written to out [n, p->feat_dim]. */
void rt_features(rt_model *m, const rt_dataset *d, const double mean[3], const double std[3], float *out);

/* Supervised training (rt_supervised.c): train on `train`, then the
   classifier's test top-1 accuracy on `test` in *test_acc; writes
   metrics.csv and last.safetensors to o->out_dir. */
int rt_train_supervised(const rt_program *p, const rt_train_opts *o, const rt_dataset *train, const rt_dataset *test,
                        double *test_acc, char *err, size_t errlen);
/* The 0-based epoch at which a milestone given as a fraction of the epochs
   starts: the official code's int(fraction * E) (BASELINES.md section 5),
   the product in double and truncated, as Python computes it (so 0.29 of
   100 epochs is 28, as there). */
static inline int milestone_epoch(double fraction, int epochs) { return (int)(fraction * epochs); }

/* Fine-tuning (BASELINES.md section 7) on the supervised program: the
   backbone from a checkpoint (NULL: the seeded initialisation) and a new
   classifier, both trained with Adam; no augmentation unless asked. */
typedef struct rt_finetune_opts {
    const char *checkpoint;
    double lr_backbone, lr_head;   /* official: 1e-3 and 1e-4 */
    double weight_decay;           /* on both groups, coupled (g += wd p); official 1e-5 */
    int augment;                   /* random crop and flip as the supervised recipe */
    int decay_at[4];               /* 0-based epochs where the lr is multiplied by 0.1 */
    int ndecay;                    /* official: 100 and 150, which 100 epochs never reach */
} rt_finetune_opts;
/* The lr of parameter `name` in fine-tuning: the classifier's group for
   "classifier.*", the backbone's for the rest. */
double rt_finetune_lr(const rt_finetune_opts *f, const char *name);
int rt_finetune(const rt_program *p, const rt_train_opts *o, const rt_finetune_opts *f, const rt_dataset *train,
                const rt_dataset *test, double *test_acc, char *err, size_t errlen);
double rt_classify_accuracy(rt_model *m, const rt_dataset *d, const double mean[3], const double std[3]);

/* Metrics of one step: the loss and the accuracy of the method's pretext
   task, NaN where a method has none (metrics.csv leaves it empty):
   relational reasoning's pair accuracy with its positive and negative
   parts (METHOD.md step 7), RotationNet's rotation accuracy (argmax of
   logits [N, C] against class targets [N]), SimCLR's contrastive accuracy
   (the share of the 2B embeddings whose most cosine-similar other row is
   their partner, the other view of their image). */
typedef struct rt_step_metrics {
    double loss, acc, pos_acc, neg_acc;
} rt_step_metrics;
rt_step_metrics rt_pair_metrics(const float *logits, const float *targets, int64_t P, double loss);
rt_step_metrics rt_class_metrics(const float *logits, const float *targets, int64_t N, int64_t C, double loss);
rt_step_metrics rt_contrastive_metrics(const float *z, int64_t N, int64_t D, double loss);
/* The name of the method's accuracy in metrics.csv and the logs:
   pair_acc, rotation_acc, contrastive_acc. */
const char *rt_acc_name(rt_method m);

#endif
