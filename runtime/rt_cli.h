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

#include <stdio.h>

#include "rt_program.h"

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
