/*
** rt_flags.h: command lines from flag tables. A table row says everything
** about one flag: its name, which commands take it, the kind and range of
** its value, and its --help text. One parser (on the C library's
** getopt_long) reads a command line against the rows of a command, checks
** every value before anything runs, and one printer makes --help from the
** same rows. The flags of training and evaluation (rt_cli.c) are one table
** shared by `rrc train`/`rrc lineval` and the AOT trainers; rrc's own
** commands add tables of their own flags.
*/
#ifndef RT_FLAGS_H
#define RT_FLAGS_H

#include <stdbool.h>
#include <stdio.h>

typedef struct rt_flag {
    const char *name;       /* long name, without "--" ("K" is --K); or a short flag
                               with its dash: "-o" (value as "-o V", "-oV" or "-o=V") */
    int id;                 /* what the parser reports for it */
    unsigned cmds;          /* bit c: command c takes it */
    char kind;              /* 0: no value; 's': a string; 'i': an integer in [lo, hi];
                               'c': one of choices */
    long long lo, hi;
    const char *choices;    /* 'c': "a|b|c" */
    const char *why;        /* 'c': said after the choices when one is wrong, or NULL */
    const char *arg;        /* the value's name in --help ("E", "NAME[:PATH]") */
    const char *help;       /* --help text; '\n' starts another line */
} rt_flag;

/* A table: rows[0 .. n). */
typedef struct rt_flag_table {
    const rt_flag *rows;
    int n;
} rt_flag_table;

typedef struct rt_opt {
    const rt_flag *flag;
    const char *value;      /* NULL for a flag without a value */
    long long ival;         /* kind 'i': the value */
} rt_opt;

typedef struct rt_args {
    rt_opt *opts;           /* in command-line order */
    int nopts;
    char **pos;             /* the arguments that are not flags */
    int npos;
    bool help;              /* -h or --help */
} rt_args;

/* Parses argv[0 .. argc) (no program name) against the rows of tables[0 ..
   ntables) whose cmds include bit `cmd`. Flags are "--name value",
   "--name=value" or a unique prefix of a name (getopt_long), and short
   flags "-o value"; "-h" is --help. At most max_pos arguments that are not flags are allowed. On the
   first problem (an unknown flag, a missing value, a value out of range or
   not among the choices, one argument too many) prints one line "prog:
   ..." to stderr, frees what it made and returns false. */
bool rt_flags_parse(const rt_flag_table *tables, int ntables, int cmd, const char *prog, int argc, char **argv,
                    int max_pos, rt_args *out);
void rt_args_free(rt_args *a);

/* The last value of flag id (NULL when absent). */
const rt_opt *rt_args_last(const rt_args *a, int id);

/* Prints the rows of cmd as "  --name ARG   help" (a short flag "  -o ARG"),
   aligned, in table order (tables in order). */
void rt_flags_usage(FILE *f, const rt_flag_table *tables, int ntables, int cmd);

/* What precedes a row's name on a command line: "--", or "" for a short
   flag (its name has the dash). */
const char *rt_flag_dashes(const rt_flag *f);

/* "--name=value" (or "--name"; "-ovalue" for a short flag) of an option, as the parser accepts it:
   how a command passes flags on to another parser. Returns malloc'd text. */
char *rt_opt_text(const rt_opt *o);

#endif
