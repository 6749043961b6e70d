/*
** rt_lineval.h: the linear probe of METHOD.md "Linear evaluation": one
** Linear(F -> classes) with PyTorch's default initialisation trained on
** frozen features with softmax cross-entropy and Adam, batch 128
** reshuffled every epoch (the last partial batch kept), no augmentation;
** the result is the test top-1 accuracy after the last epoch.
**
** Randomness comes from the project's streams only: the weight and bias
** from rt_stream_init(seed, RT_DOMAIN_INIT, rt_hash32("probe.weight" /
** "probe.bias"), 0) (via rt_init_fill), epoch e's order (e from 0) from
** rt_stream_init(seed, RT_DOMAIN_SHUFFLE, 1000000 + e, 0) (offset so it
** never coincides with the pretraining's epoch orders). Same inputs and
** seed give the same result bit for bit on one build and thread count.
*/
#ifndef RT_LINEVAL_H
#define RT_LINEVAL_H

#include <stdint.h>

typedef struct rt_probe_opts {
    int epochs;        /* 100 (<= 0: 100) */
    int batch;         /* 128 (<= 0: 128) */
    double lr;         /* Adam, 1e-3 (<= 0: 1e-3); betas (0.9, 0.999), eps 1e-8 */
    uint64_t seed;
    /* after each epoch (from 1): the epoch's mean loss and its running
       training accuracy (each batch scored before its update); may be NULL */
    void (*progress)(void *ctx, int epoch, double loss, double train_acc);
    void *ctx;
} rt_probe_opts;

typedef struct rt_probe_report {
    double train_acc;    /* running accuracy over the last epoch, as training logs report it */
    double test_acc;     /* top-1 on the test split after the last epoch (the return value) */
    double final_loss;   /* mean cross-entropy over the last epoch */
} rt_probe_report;

/* Trains the probe on train_x [ntrain, F] (row-major) with labels in
   [0, classes) and returns its top-1 accuracy on test_x [ntest, F] in
   [0, 1]. o may be NULL (defaults, seed 0), rep may be NULL. Returns NaN
   (and NaNs in rep) for invalid arguments (a label out of range, F or
   classes < 1, no test rows) or when memory runs out. */
double rt_linear_probe(const float *train_x, const int32_t *train_y, int64_t ntrain, const float *test_x,
                       const int32_t *test_y, int64_t ntest, int64_t F, int classes, const rt_probe_opts *o,
                       rt_probe_report *rep);

/* Index of the first largest value of v[0..n), NaNs skipped (0 if all are
   NaN); -1 for n < 1. */
int64_t rt_argmax(const float *v, int n);

#endif
