/*
** driver.h: what the rrc commands share: flag parsing, loading a spec with
** command-line overrides, binding parameters from files or initialising
** them, and running the pass pipeline.
*/
#ifndef RRC_DRIVER_H
#define RRC_DRIVER_H

#include "frontend/spec.h"
#include "ir/ir.h"
#include "passes/pipeline.h"
#include "rt_safetensors.h"

/* Flag parsing: argv[*i] is "--name" or "--name=value". */
bool flag_is(const char *arg, const char *name);
/* The value of flag `name` at argv[*i] ("--name V" or "--name=V"); advances
   *i past it. Exits with status 1 and a message if the value is missing. */
const char *flag_value(const char *cmd, int argc, char **argv, int *i, const char *name);
long flag_int(const char *cmd, const char *name, const char *v, long lo, long hi);

/* Overrides that every command accepts. */
typedef struct SpecOverrides {
    int K;                 /* 0: keep */
    const char *aggregation, *loss;
    long long seed;        /* -1: keep */
    int batch;             /* 0: keep */
    int epochs;            /* 0: keep */
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
int cmd_compile(int argc, char **argv);
int cmd_augment_preview(int argc, char **argv);
int cmd_specs(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_version(void);

#endif
