/*
** cmd_train.c: `rrc train`, `rrc lineval`, `rrc knn`, `rrc retrieval`,
** `rrc eval` and `rrc finetune` (which
** compiles the spec with --method supervised): the spec is JIT-compiled
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
#include "rt_comm.h"
#include "rt_data.h"

typedef enum { CMD_TRAIN, CMD_LINEVAL, CMD_FINETUNE, CMD_KNN, CMD_RETRIEVAL, CMD_EVAL } Cmd;

/* rrc eval's supervised programs, compiled when fine-tuning asks, one per
   number of training images (the last batch's variant). */
typedef struct SupPrograms {
    Spec *s;
    const CgOptions *co;
    Program pr[4];
    int64_t n[4];
    int count;
} SupPrograms;

static const rt_program *sup_program(void *ctx, int64_t n_train, int classes, char *err, size_t errlen) {
    SupPrograms *sp = ctx;
    for (int i = 0; i < sp->count; i++)
        if (sp->n[i] == n_train) return &sp->pr[i].p;
    if (sp->count == (int)(sizeof sp->pr / sizeof sp->pr[0])) {
        snprintf(err, errlen, "too many label fractions");
        return NULL;
    }
    Program *pr = &sp->pr[sp->count];
    *pr = (Program){.pipe = {.target = sp->co->target}};
    if (!program_build_supervised(pr, sp->s, classes, n_train, 256, sp->co)) {
        snprintf(err, errlen, "the supervised program for %lld images did not compile", (long long)n_train);
        program_free(pr);
        return NULL;
    }
    sp->n[sp->count++] = n_train;
    return &pr->p;
}

static void free_rest(char **rest, int n) {
    for (int i = 0; i < n; i++) free(rest[i]);
    free(rest);
}

static int run(Cmd cmd, int argc, char **argv) {
    static const rt_cli_cmd rcmds[] = {[CMD_TRAIN] = RT_CMD_TRAIN, [CMD_LINEVAL] = RT_CMD_LINEVAL, [CMD_FINETUNE] = RT_CMD_FINETUNE,
                                       [CMD_KNN] = RT_CMD_KNN, [CMD_RETRIEVAL] = RT_CMD_RETRIEVAL, [CMD_EVAL] = RT_CMD_EVAL};
    rt_cli_cmd rcmd = rcmds[cmd];
    const char *name = driver_cmd_name((RrcCmd)rcmd);
    char prog[64];
    snprintf(prog, sizeof prog, "rrc %s", name);
    /* the runtime's flags, and rrc's own of train and lineval (--cpu,
       --verify-each, --dump-after) */
    const rt_flag_table tables[2] = {rt_cli_flags, rrc_flags};
    rt_args a;
    /* every flag and value checked before the spec is loaded, the data
       read or anything compiled */
    if (!rt_flags_parse(tables, 2, (int)rcmd, prog, argc, argv, argc, &a)) return EXIT_USAGE;
    if (a.help || a.npos != 1) {
        if (a.npos > 1) fprintf(stderr, "%s: more than one spec given ('%s', '%s')\n", prog, a.pos[0], a.pos[1]);
        else rt_cli_usage(a.help ? stdout : stderr, rcmd, prog, " SPEC", &tables[1], 1);
        int rc = a.help ? 0 : EXIT_USAGE;
        rt_args_free(&a);
        return rc;
    }
    const char *spec = a.pos[0], *data = NULL, *method = cmd == CMD_FINETUNE ? "supervised" : "relational", *cpu = NULL;
    rt_data_subset part = {0};   /* --classes, --labels: the training set's size decides the last batch's variant */
    long long seed = -1;
    SpecOverrides ov = {.seed = -1};
    PipelineOpts pipe = {0};
    /* the runtime's flags go on to rt_cli as it parses them; those that
       change the graph are also applied here, so that the runtime sees
       them match */
    char **rest = xcalloc((size_t)a.nopts + 1, sizeof *rest);
    int nrest = 0;
    for (int i = 0; i < a.nopts; i++) {
        const rt_opt *o = &a.opts[i];
        switch (o->flag->id) {
        case RRC_F_CPU: cpu = o->value; continue;
        case RRC_F_VERIFY_EACH: pipe.verify_each = true; continue;
        case RRC_F_DUMP_AFTER: pipe.dump_after = o->value; continue;
        case RT_F_K: ov.K = (int)o->ival; break;
        case RT_F_BATCH: ov.batch = (int)o->ival; break;
        case RT_F_AGGREGATION: ov.aggregation = o->value; break;
        case RT_F_LOSS: ov.loss = o->value; break;
        case RT_F_DATA: data = o->value; break;
        case RT_F_METHOD: method = o->value; break;
        case RT_F_CLASSES: part.classes = o->value; break;
        case RT_F_LABELS: part.labels = o->value; break;
        case RT_F_SEED: seed = o->ival; break;
        default: break;
        }
        if (!(rest[nrest++] = rt_opt_text(o))) RRC_ABORT("out of memory");
    }
    rt_args_free(&a);
    bool supervised = !strcmp(method, "supervised");
    if (cmd == CMD_FINETUNE && !supervised) {
        fprintf(stderr, "%s: fine-tuning trains a classifier: it compiles the spec with --method supervised\n", prog);
        free_rest(rest, nrest);
        return EXIT_USAGE;
    }
    if (supervised && !ov.batch) ov.batch = 128;   /* METHOD.md's supervised batch */
    Arena arena = {0};
    Spec *s = driver_load_spec(name, spec, &ov, &arena);
    if (!data) data = s->data;
    /* the size of the training set decides the last batch's variant */
    int64_t n_train = 0;
    int classes = 0;
    bool trains = cmd == CMD_TRAIN || cmd == CMD_FINETUNE;   /* the others judge a frozen backbone */
    if (trains) {
        rt_dataset d = {0};
        rt_data_opts o = {s->in_h, s->in_w, s->in_c, s->seed};
        part.seed = seed >= 0 ? (uint64_t)seed : s->seed;
        if (!supervised) part.labels = NULL;   /* refused by the runtime, with its message */
        char err[1024];
        if (rt_dataset_load_subset(data, RT_SPLIT_TRAIN, &o, &part, &d, err, sizeof err) != 0) {
            fprintf(stderr, "rrc %s: %s\n", name, err);
            free_rest(rest, nrest);
            arena_free(&arena);
            return EXIT_USAGE;
        }
        n_train = d.n;
        classes = d.nclasses;
        pipe.gray_input = d.gray && !supervised;   /* Graph.gray_input: steps of gray images */
        rt_dataset_free(&d);
    }
    Target target;
    /* one rank of a data-parallel run builds the steps of its share */
    const rt_comm *cm = rt_comm_get();
    Program pr = {.pipe = pipe, .ranks = cm->size, .rank = cm->rank};
    CgOptions co = {.debug = rrc_env_debug(), .target = driver_target(name, cpu, NULL, NULL, true, &target)};
    pr.pipe.target = co.target;
    int rc = EXIT_USAGE;
    bool built = supervised ? program_build_supervised(&pr, s, classes, n_train, 256, &co)
                            : program_build(&pr, s, n_train, 256, &co);
    if (built) {
        if (rrc_env_debug() >= 1 || (trains && cm->rank == 0)) {
            char cached[48] = "";
            if (pr.ncached == pr.ncompiled) snprintf(cached, sizeof cached, " (cached)");
            else if (pr.ncached) snprintf(cached, sizeof cached, " (%d of %d cached)", pr.ncached, pr.ncompiled);
            fprintf(stderr, "rrc: compiled %s (%d entries) in %.2f s%s\n", s->name, pr.ncompiled, pr.compile_seconds, cached);
        }
        static int (*const runs[])(const rt_program *, const char *, int, char **) = {
            [CMD_TRAIN] = rt_cli_train, [CMD_LINEVAL] = rt_cli_lineval, [CMD_FINETUNE] = rt_cli_finetune,
            [CMD_KNN] = rt_cli_knn, [CMD_RETRIEVAL] = rt_cli_retrieval};
        if (cmd == CMD_EVAL) {
            SupPrograms sp = {.s = s, .co = &co};
            rt_eval_programs ps = {&pr.p, sup_program, &sp};
            rc = rt_cli_eval(&ps, prog, nrest, rest);
            for (int i = 0; i < sp.count; i++) program_free(&sp.pr[i]);
        } else {
            rc = runs[cmd](&pr.p, prog, nrest, rest);
        }
    }
    program_free(&pr);   /* a failed build keeps what it had made */
    free_rest(rest, nrest);
    arena_free(&arena);
    return rc;
}

int cmd_train(int argc, char **argv) { return run(CMD_TRAIN, argc, argv); }
int cmd_lineval(int argc, char **argv) { return run(CMD_LINEVAL, argc, argv); }
int cmd_finetune(int argc, char **argv) { return run(CMD_FINETUNE, argc, argv); }
int cmd_knn(int argc, char **argv) { return run(CMD_KNN, argc, argv); }
int cmd_retrieval(int argc, char **argv) { return run(CMD_RETRIEVAL, argc, argv); }
int cmd_eval(int argc, char **argv) { return run(CMD_EVAL, argc, argv); }
