/*
** cmd_train.c: `rrc train` and `rrc lineval`: the spec is JIT-compiled
** into a runtime program (program.c) with the flags that change the graph
** (--K, --batch, --aggregation, --loss) applied, then the runtime's command
** line (runtime/rt_cli.c, the same one AOT trainers run) does the rest.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "program.h"
#include "rt_cli.h"
#include "rt_data.h"

typedef enum { CMD_TRAIN, CMD_LINEVAL } Cmd;

static int run(Cmd cmd, int argc, char **argv) {
    const char *name = cmd == CMD_TRAIN ? "train" : "lineval";
    rt_cli_cmd rcmd = cmd == CMD_TRAIN ? RT_CMD_TRAIN : RT_CMD_LINEVAL;
    const char *spec = NULL, *data = NULL, *method = "relational", *cpu = NULL;
    SpecOverrides ov = {.seed = -1};
    char **rest = xcalloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    PipelineOpts pipe = {0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (flag_is(a, "--help") || flag_is(a, "-h")) {
            if (cmd == CMD_TRAIN) rt_cli_train_usage(stdout, "rrc train", " SPEC");
            else rt_cli_lineval_usage(stdout, "rrc lineval", " SPEC");
            printf("\nrrc %s also takes:\n"
                   "  --cpu NAME          generate code for CPU NAME (x86-64-v3, znver3, ...; default $RRC_CPU or\n"
                   "                      this host); one this host cannot run is refused\n", name);
            free(rest);
            return 0;
        }
        if (a[0] != '-') {
            if (spec) {
                fprintf(stderr, "rrc %s: more than one spec given ('%s', '%s')\n", name, spec, a);
                free(rest);
                return EXIT_USAGE;
            }
            spec = a;
            continue;
        }
        if (flag_is(a, "--verify-each")) { pipe.verify_each = true; continue; }
        if (flag_is(a, "--cpu")) { cpu = flag_value(name, argc, argv, &i, "--cpu"); continue; }
        if (flag_is(a, "--dump-after")) { pipe.dump_after = flag_value(name, argc, argv, &i, "--dump-after"); continue; }
        /* the runtime's flags (its table says which take a value) go on to
           rt_cli; those that change the graph are also applied here, so
           that the runtime sees them match */
        int arity = rt_cli_flag_arity(rcmd, a);
        if (arity < 0) {
            fprintf(stderr, "rrc %s: unknown flag '%s' (see rrc %s --help)\n", name, a, name);
            free(rest);
            return EXIT_USAGE;
        }
        rest[nrest++] = argv[i];
        if (arity == 0 && !strchr(a, '=')) continue;
        int at = i;
        const char *v = flag_value(name, argc, argv, &i, a);
        if (i != at) rest[nrest++] = argv[i];
        if (flag_is(a, "--K")) ov.K = (int)flag_int(name, "--K", v, 2, 1024);
        else if (flag_is(a, "--batch")) ov.batch = (int)flag_int(name, "--batch", v, 2, 1 << 16);
        else if (flag_is(a, "--aggregation")) ov.aggregation = v;
        else if (flag_is(a, "--loss")) ov.loss = v;
        else if (flag_is(a, "--data")) data = v;
        else if (flag_is(a, "--method")) method = v;
    }
    /* every flag and value checked before the spec is loaded, the data
       read or anything compiled */
    char prog[64];
    snprintf(prog, sizeof prog, "rrc %s", name);
    if (!rt_cli_check(rcmd, prog, nrest, rest)) {
        free(rest);
        return EXIT_USAGE;
    }
    if (!spec) {
        if (cmd == CMD_TRAIN) rt_cli_train_usage(stderr, "rrc train", " SPEC");
        else rt_cli_lineval_usage(stderr, "rrc lineval", " SPEC");
        free(rest);
        return EXIT_USAGE;
    }
    bool supervised = !strcmp(method, "supervised");
    if (!supervised && strcmp(method, "relational") != 0) {
        fprintf(stderr, "rrc %s: --method must be relational or supervised (got \"%s\")\n", name, method);
        free(rest);
        return EXIT_USAGE;
    }
    if (supervised && !ov.batch) ov.batch = 128;   /* METHOD.md's supervised batch */
    Arena arena = {0};
    Spec *s = driver_load_spec(name, spec, &ov, &arena);
    if (!data) data = s->data;
    /* the size of the training set decides the last batch's variant */
    int64_t n_train = 0;
    int classes = 0;
    if (cmd == CMD_TRAIN) {
        rt_dataset d = {0};
        rt_data_opts o = {s->in_h, s->in_w, s->in_c, s->seed};
        char err[1024];
        if (rt_dataset_load(data, RT_SPLIT_TRAIN, &o, &d, err, sizeof err) != 0) {
            fprintf(stderr, "rrc %s: %s\n", name, err);
            free(rest);
            arena_free(&arena);
            return EXIT_USAGE;
        }
        n_train = d.n;
        classes = d.nclasses;
        rt_dataset_free(&d);
    }
    Target target;
    Program pr = {.pipe = pipe};
    CgOptions co = {.debug = rrc_env_debug(), .target = driver_target(name, cpu, NULL, NULL, true, &target)};
    pr.pipe.target = co.target;
    int rc = EXIT_USAGE;
    bool built = supervised ? program_build_supervised(&pr, s, classes, n_train, 256, &co)
                            : program_build(&pr, s, n_train, 256, &co);
    if (built) {
        if (rrc_env_debug() >= 1 || cmd == CMD_TRAIN) {
            char cached[48] = "";
            if (pr.ncached == pr.ncompiled) snprintf(cached, sizeof cached, " (cached)");
            else if (pr.ncached) snprintf(cached, sizeof cached, " (%d of %d cached)", pr.ncached, pr.ncompiled);
            fprintf(stderr, "rrc: compiled %s (%d entries) in %.2f s%s\n", s->name, pr.ncompiled, pr.compile_seconds, cached);
        }
        rc = cmd == CMD_TRAIN ? rt_cli_train(&pr.p, prog, nrest, rest) : rt_cli_lineval(&pr.p, prog, nrest, rest);
    }
    program_free(&pr);   /* a failed build keeps what it had made */
    free(rest);
    arena_free(&arena);
    return rc;
}

int cmd_train(int argc, char **argv) { return run(CMD_TRAIN, argc, argv); }
int cmd_lineval(int argc, char **argv) { return run(CMD_LINEVAL, argc, argv); }
