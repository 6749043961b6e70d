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

typedef enum { RT_CMD_TRAIN, RT_CMD_LINEVAL, RT_CMD_GRAD, RT_CMD_BENCH } rt_cli_cmd;

/* Checks a command line (flags only) against the command's flag table:
   unknown flags, missing values, integers out of range, values not among
   a flag's choices. Prints one line at the first problem and returns
   false. Every rt_cli_* command runs it first; `rrc train` runs it before
   it compiles. */
bool rt_cli_check(rt_cli_cmd cmd, const char *prog, int argc, char **argv);

/* 1 if arg ("--data" or "--data=x") is a flag of cmd followed by its value
   in the next argument, 0 if it is a flag that takes none there, -1 if cmd
   has no such flag. */
int rt_cli_flag_arity(rt_cli_cmd cmd, const char *arg);

/* argv holds flags only (no program or spec name). `prog` names the
   command in messages ("rrc train", "conv4-train"). Returns an exit status. */
int rt_cli_train(const rt_program *p, const char *prog, int argc, char **argv);
int rt_cli_lineval(const rt_program *p, const char *prog, int argc, char **argv);
int rt_cli_grad(const rt_program *p, const char *prog, int argc, char **argv);
/* Times the training step (with its update) on fixed views: `bench`. */
int rt_cli_bench(const rt_program *p, const char *prog, int argc, char **argv);
void rt_cli_train_usage(FILE *f, const char *prog, const char *spec_arg);
void rt_cli_lineval_usage(FILE *f, const char *prog, const char *spec_arg);

#endif
