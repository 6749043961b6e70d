/*
** driver.h: what the rrc commands share: their command lines (one table
** of rrc's own flags, parsed with rt_flags), loading a spec with
** command-line overrides, binding parameters from files or initialising
** them, and running the pass pipeline.
*/
#ifndef RRC_DRIVER_H
#define RRC_DRIVER_H

#include <stdio.h>

#include "frontend/spec.h"
#include "ir/ir.h"
#include "passes/pipeline.h"
#include "rt_cli.h"
#include "rt_safetensors.h"

/* ---- command lines ---- */

/* rrc's commands, as the bits of rrc_flags' rows (row.cmds bit c: command
   c takes the flag). train and lineval are the runtime's (they parse
   rt_cli_flags and rrc_flags together); the others come after the
   runtime's commands. */
typedef enum {
    RRC_CMD_TRAIN = RT_CMD_TRAIN,
    RRC_CMD_LINEVAL = RT_CMD_LINEVAL,
    RRC_CMD_FINETUNE = RT_CMD_FINETUNE,
    RRC_CMD_KNN = RT_CMD_KNN,
    RRC_CMD_RETRIEVAL = RT_CMD_RETRIEVAL,
    RRC_CMD_EVAL = RT_CMD_EVAL,
    RRC_CMD_COMPILE = RT_CMD_END,
    RRC_CMD_GRAD,
    RRC_CMD_DUMP_IR,
    RRC_CMD_PREVIEW,   /* augment-preview */
    RRC_CMD_CHECK,
    RRC_CMD_PLAN,
    RRC_CMD_SPECS,
    RRC_CMD_END
} RrcCmd;

/* The ids of rrc_flags' rows (after the runtime's). */
enum {
    RRC_F_CPU = RT_F_FIRST_FREE, RRC_F_VERIFY_EACH, RRC_F_DUMP_AFTER, RRC_F_OUTDIR, RRC_F_EMIT_LLVM, RRC_F_EMIT_OBJ,
    RRC_F_DATA, RRC_F_TRAIN_SIZE, RRC_F_K, RRC_F_BATCH, RRC_F_AGGREGATION, RRC_F_LOSS, RRC_F_METHOD, RRC_F_CLASSES,
    RRC_F_TARGET, RRC_F_FEATURES, RRC_F_AFTER, RRC_F_INPUT_SHAPE, RRC_F_INPUT, RRC_F_PARAMS, RRC_F_OUT, RRC_F_SEED,
    RRC_F_ENGINE, RRC_F_ELEMENTS, RRC_F_THREADS, RRC_F_SWEEP, RRC_F_PLOT, RRC_F_CALIBRATE, RRC_F_IMAGES, RRC_F_EPOCH, RRC_F_SCALE,
    RRC_F_RANKS,
};

/* THE flags of rrc's commands, once per meaning (a flag whose range or
   help differs between commands has a row per meaning). Row "-o" is a
   short flag: "-o DIR" (or "-o=DIR"). */
extern const rt_flag_table rrc_flags;

/* "dump-ir", "augment-preview", ...; NULL for a number that is no rrc
   command. */
const char *driver_cmd_name(RrcCmd cmd);

/* Parses the command line of `rrc NAME` (argv[0 .. argc): what follows
   the command's name) against rrc_flags' rows of cmd, every value checked
   (rt_flags_parse). max_pos is 0 (no argument) or 1 (at most one SPEC).
   Returns -1 to go on with *a (rt_args_free it; its values point into
   argv), else the exit status, *a freed: EXIT_USAGE after a one-line error
   (two SPECs: "more than one spec given ('A', 'B')"), 0 after --help
   printed by usage(stdout). */
int driver_parse(RrcCmd cmd, int argc, char **argv, int max_pos, void (*usage)(FILE *), rt_args *a);

/* --help of `rrc NAME`: "usage: rrc NAME synopsis", the summary (lines
   ending in '\n'), every flag of cmd in rrc_flags (rt_flags_usage), and
   -h, --help. The caller prints anything after that. */
void driver_usage(FILE *f, RrcCmd cmd, const char *synopsis, const char *summary);

/* Overrides that every command accepts. */
typedef struct SpecOverrides {
    int K;                 /* 0: keep */
    const char *aggregation, *loss;
    long long seed;        /* -1: keep */
    int batch;             /* 0: keep */
    int epochs;            /* 0: keep */
    const char *input_shape;   /* "CxHxW", NULL: keep the spec's input */
} SpecOverrides;

/* Loads the spec and applies overrides; on error prints and exits with 2
   (bad spec) or 1 (bad flag). `arg` is found by driver_find_spec. */
Spec *driver_load_spec(const char *cmd, const char *arg, const SpecOverrides *ov, Arena *a);
/* A spec argument: a path that exists (or any with a '/') as it is; a bare
   name (resnet32 or resnet32.lua) looked up in $RRC_SPEC_PATH (colon-
   separated), then the installed specs (PREFIX/share/rrc/specs), then the
   source tree's specs/ when run from a build. false after a one-line error
   naming every place looked in. */
bool driver_find_spec(const char *cmd, const char *arg, char *out, size_t n);
/* PREFIX/share/rrc/specs of this rrc (which may not exist). */
const char *driver_installed_specs(void);
/* Where the runtime library and trainer main are: $RRC_RUNTIME_DIR, else
   PREFIX/lib/rrc of an installed rrc, else the build folder. */
void driver_runtime_dir(char *buf, size_t n);

/* The values of every param and state leaf of g, indexed by node id (NULL
   for other nodes): from `file` when given (all trainable tensors must be
   there with the right shapes; running statistics optional;
   num_batches_tracked ignored; anything else is an error), otherwise
   initialised from the seed. Returns NULL after printing a one-line error.
   *initialised is set when values were made here. */
float **driver_load_params(const char *cmd, Graph *g, const char *file, uint64_t seed, bool *initialised);
void driver_free_params(const Graph *g, float **vals);

int rrc_env_debug(void);

/* The target code is generated for: the named CPU (and triple, features)
   when any is given, else $RRC_CPU, else the host; kept in *store. With
   run (code the command executes), a target this host cannot execute is
   refused. A bad name or refusal prints one line and exits with 1.
   RRC_DEBUG >= 1 prints the choice. */
const Target *driver_target(const char *cmd, const char *cpu, const char *triple, const char *features, bool run,
                            Target *store);

#define RRC_VERSION "0.1.0"

/* the commands (cmd_*.c) */
int cmd_grad(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_lineval(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_knn(int argc, char **argv);
int cmd_retrieval(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_compile(int argc, char **argv);
int cmd_augment_preview(int argc, char **argv);
int cmd_specs(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_version(void);

#endif
