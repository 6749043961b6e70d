/*
** rt_cli.h: the command lines of training and linear evaluation over a
** compiled program, shared by `rrc train` / `rrc lineval` (JIT) and the
** AOT trainers that `rrc compile` links (generated/NAME/NAME-train).
** Flags that change the compiled graph (--K, --batch, --aggregation,
** --loss) must equal what the program was compiled with: rrc compiles
** with them, an AOT trainer refuses others with a clear error.
*/
#ifndef RT_CLI_H
#define RT_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "rt_program.h"

#include "rt_flags.h"

typedef enum {
    RT_CMD_TRAIN, RT_CMD_LINEVAL, RT_CMD_GRAD, RT_CMD_BENCH, RT_CMD_FINETUNE, RT_CMD_KNN, RT_CMD_RETRIEVAL, RT_CMD_EVAL,
    RT_CMD_END
} rt_cli_cmd;

/* The ids of rt_cli_flags' rows. */
enum {
    RT_F_DATA = 1, RT_F_CHECKPOINT, RT_F_RANDOM_INIT, RT_F_INPUT, RT_F_PARAMS, RT_F_EPOCHS, RT_F_SEED,
    RT_F_THREADS, RT_F_OUT, RT_F_MAX_STEPS, RT_F_RESUME, RT_F_RESUME_ANYWAY, RT_F_CHECKPOINT_EVERY,
    RT_F_QUIET, RT_F_STEPS, RT_F_WARMUP, RT_F_PROFILE, RT_F_PROFILE_CSV, RT_F_ENGINE, RT_F_CLASSES, RT_F_LABELS,
    RT_F_AUGMENT, RT_F_DECAY_AT, RT_F_NEIGHBOURS, RT_F_TEMPERATURE, RT_F_MONITOR,
    RT_F_EVERY, RT_F_PROTOCOLS,
    /* compiled into the step */
    RT_F_METHOD, RT_F_K, RT_F_BATCH, RT_F_AGGREGATION, RT_F_LOSS,
    RT_F_FIRST_FREE   /* the first id other tables may use */
};

/* THE flags of the train, lineval, grad and bench commands (their cmds
   bits are 1 << rt_cli_cmd). `rrc train` and `rrc lineval` parse their
   command line against it (with rrc's own flags as a second table) before
   they compile, and pass its flags on to rt_cli_train/rt_cli_lineval. */
extern const rt_flag_table rt_cli_flags;

/* --help of command cmd: synopsis, summary, every flag of rt_cli_flags
   and of extra[0 .. nextra) (at most 3) that cmd takes. spec_arg follows
   prog in the synopsis (" SPEC" for rrc). */
void rt_cli_usage(FILE *f, rt_cli_cmd cmd, const char *prog, const char *spec_arg, const rt_flag_table *extra,
                  int nextra);

/* argv holds flags only (no program or spec name). `prog` names the
   command in messages ("rrc train", "conv4-train"). Returns an exit status. */
int rt_cli_train(const rt_program *p, const char *prog, int argc, char **argv);
int rt_cli_lineval(const rt_program *p, const char *prog, int argc, char **argv);
int rt_cli_grad(const rt_program *p, const char *prog, int argc, char **argv);
/* Frozen eval-mode features of a backbone judged by a weighted kNN
   classifier (`knn`) or by retrieval (`retrieval`), as lineval judges
   them by a linear classifier. */
int rt_cli_knn(const rt_program *p, const char *prog, int argc, char **argv);
int rt_cli_retrieval(const rt_program *p, const char *prog, int argc, char **argv);
/* `eval`: every protocol of --protocols, one report (eval.json). The
   frozen evaluations run on `features` (a program with a features entry);
   fine-tuning needs a supervised program compiled for its number of
   training images, which `supervised` makes or finds (NULL with a
   one-line reason in err when it cannot). */
typedef struct rt_eval_programs {
    const rt_program *features;
    const rt_program *(*supervised)(void *ctx, int64_t n_train, int classes, char *err, size_t errlen);
    void *ctx;
} rt_eval_programs;
int rt_cli_eval(const rt_eval_programs *ps, const char *prog, int argc, char **argv);
/* Fine-tuning of a checkpoint's backbone with a new classifier, on a
   program compiled with --method supervised: `finetune`. */
int rt_cli_finetune(const rt_program *p, const char *prog, int argc, char **argv);
/* Times the training step (with its update) on fixed views: `bench`. */
int rt_cli_bench(const rt_program *p, const char *prog, int argc, char **argv);

#endif
