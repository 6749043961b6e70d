/*
** program.h: a spec compiled into a runtime program (rt_program.h) by the
** JIT: the training step for a full batch, for the last partial batch of
** the dataset, and the eval-mode features, each lowered, passed, planned
** and JIT-compiled in this process.
*/
#ifndef RRC_PROGRAM_H
#define RRC_PROGRAM_H

#include "engine.h"
#include "frontend/spec.h"
#include "rt_program.h"

/* Entry slots, as rt_program_json's: train_full, train_last, features,
   classify, then a rank's steps (rank_full[0..1], rank_last[0..1]). */
#define PROGRAM_SLOTS 8

typedef struct Program {
    rt_program p;
    rt_entry entry[PROGRAM_SLOTS];
    Engine eng[PROGRAM_SLOTS];
    Graph *graph[PROGRAM_SLOTS];
    Arena arena;
    double compile_seconds;
    int ncompiled, ncached;   /* JIT entries built, and how many of them came from the cache */
    bool aot;                 /* build LLVM modules only (cgm), no JIT */
    PipelineOpts pipe;        /* --verify-each, --dump-after (debug comes from CgOptions) */
    CgModule *cgm[PROGRAM_SLOTS];
    CgOptions aot_opts[PROGRAM_SLOTS];   /* AOT: each entry's code-generation options (entry: its name) */
    /* data-parallel (set before program_build, kept by it): ranks > 1 adds
       the steps of a rank's share of the batch (ops_dist.c); rank >= 0
       builds only that rank's (rrc train under mpirun: the JIT of one
       rank), -1 every share's and the one-process steps (rrc compile
       --ranks: a trainer that runs alone or under mpirun -np ranks) */
    int ranks, rank;
} Program;

/* n_train: images in the training set (decides the last batch; 0 = none);
   features_rows: rows of the features entry. Prints and returns false on
   error. */
bool program_build(Program *pr, Spec *s, int64_t n_train, int64_t features_rows, const CgOptions *co);
/* Function names of the entries in AOT objects, by slot. */
extern const char *const program_fn_names[PROGRAM_SLOTS];
/* The supervised program: training steps of backbone + linear classifier
   (classes wide) for batch s->batch and the last partial batch, eval
   features and the eval classifier. */
bool program_build_supervised(Program *pr, Spec *s, int classes, int64_t n_train, int64_t rows, const CgOptions *co);
void program_free(Program *pr);

/* A spec's augmentation step as the runtime's. */
rt_aug_op convert_aug(const AugOp *a);

/* The step table of a planned graph: every leaf and output. */
rt_step_tensor *program_tensor_table(Graph *g, Arena *a, int *n);

#endif
