/*
** main.c: the rrc command line. The whole pipeline in one page:
**
**   spec.lua --spec_load--> Spec --lower_train--> Graph --passes--> Graph
**            --interp (oracle) | codegen (LLVM, to come)--> results
**
** Commands: see COMMANDS. Exit status: 0 ok, 1 bad flags or I/O, 2 bad spec.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cg.h"
#include "driver.h"
#include "rt_comm.h"
#include "frontend/lower.h"
#include "rt_blas.h"

static int cmd_dump_ir(int argc, char **argv);
static int cmd_help(int argc, char **argv);
static int run_version(int argc, char **argv) { (void)argc, (void)argv; return cmd_version(); }

/* The commands: how `rrc help` shows them (args after the name, and what
   it does; '\n' starts another line) and what runs them. Each command's
   flags are rrc_flags' rows (driver.c) and its --help. */
static const struct {
    RrcCmd cmd;           /* RRC_CMD_END: not an rrc_flags command */
    const char *name;     /* when cmd is RRC_CMD_END */
    int (*run)(int argc, char **argv);
    const char *args, *what;
} COMMANDS[] = {
    {RRC_CMD_DUMP_IR, NULL, cmd_dump_ir, "SPEC [--after PASS] [--K K] [--batch B] [--input-shape CxHxW] ...",
     "print the training-step graph (one node per line) and its summary"},
    {RRC_CMD_GRAD, NULL, cmd_grad, "SPEC --input X.safetensors [--params P.safetensors] --out G.safetensors ...",
     "run one training-mode step (no update) and write loss, logits, gradients"},
    {RRC_CMD_TRAIN, NULL, cmd_train, "SPEC [--data D] [--epochs E] [--batch B] [--K K] [--threads N] [--seed S] [--out RUN]",
     "train with relational reasoning (JIT-compiled step)"},
    {RRC_CMD_COMPILE, NULL, cmd_compile, "SPEC [-o DIR] [--emit-llvm]",
     "ahead-of-time compile into a standalone trainer DIR/NAME-train"},
    {RRC_CMD_LINEVAL, NULL, cmd_lineval, "SPEC --data D (--checkpoint FILE | --random-init)", "linear evaluation of a backbone"},
    {RRC_CMD_KNN, NULL, cmd_knn, "SPEC --data D (--checkpoint FILE | --random-init)",
     "weighted kNN evaluation of a backbone (200 neighbours, cosine, exp(s/0.07))"},
    {RRC_CMD_RETRIEVAL, NULL, cmd_retrieval, "SPEC --data D (--checkpoint FILE | --random-init)",
     "retrieval evaluation of a backbone: precision@1/5/10/100 and mAP"},
    {RRC_CMD_EVAL, NULL, cmd_eval, "SPEC --data D (--checkpoint FILE | --random-init) --protocols LIST",
     "every protocol of LIST (linear,finetune,knn,retrieval,fractions): eval.json,\na table and a PCA map of the features"},
    {RRC_CMD_FINETUNE, NULL, cmd_finetune, "SPEC --data D (--checkpoint FILE | --random-init)",
     "fine-tune a backbone with a new linear classifier (BASELINES.md's recipe)"},
    {RRC_CMD_PREVIEW, NULL, cmd_augment_preview, "SPEC --out views.png [--data D]",
     "a PNG grid of images and their augmented views"},
    {RRC_CMD_CHECK, NULL, cmd_check, "SPEC [--K K] [--batch B] [--elements N]",
     "check the step's gradients by finite differences, node by node, and\nthe compiled step against the interpreter"},
    {RRC_CMD_PLAN, NULL, cmd_plan, "SPEC [--K K] [--batch B] [--threads N] [--sweep K=2,4,8]",
     "predict a step's FLOPs, bytes, planned memory and time without running it"},
    {RRC_CMD_SPECS, NULL, cmd_specs, NULL, "the bundled specs, which every command takes by name (rrc compile resnet32)"},
    {RRC_CMD_END, "--version", run_version, NULL, "versions of rrc, LLVM and OpenBLAS, and the JIT's target"},
    {RRC_CMD_END, "help", cmd_help, NULL, "this text; `rrc COMMAND --help` for a command's flags"},
};
#define NCOMMANDS (int)(sizeof COMMANDS / sizeof COMMANDS[0])
#define WHAT_COL 22   /* where a command's description starts */

static const char *command_name(int i) {
    return COMMANDS[i].cmd == RRC_CMD_END ? COMMANDS[i].name : driver_cmd_name(COMMANDS[i].cmd);
}

static void usage(FILE *f) {
    fprintf(f, "usage: rrc COMMAND [ARGS]\n\n"
               "rrc compiles a Lua spec of self-supervised relational reasoning into a trainer.\n\n"
               "commands:\n");
    for (int i = 0; i < NCOMMANDS; i++) {
        const char *args = COMMANDS[i].args;
        int w = fprintf(f, "  %s%s%s", command_name(i), args ? " " : "", args ? args : "");
        if (w < WHAT_COL) fprintf(f, "%*s", WHAT_COL - w, "");
        else fprintf(f, "\n%*s", WHAT_COL, "");
        for (const char *h = COMMANDS[i].what; *h; h++) {
            fputc(*h, f);
            if (*h == '\n') fprintf(f, "%*s", WHAT_COL, "");
        }
        fputc('\n', f);
    }
    fprintf(f, "\nSPEC is a path, or a bundled spec's name looked up in $RRC_SPEC_PATH, then PREFIX/share/rrc/specs.\n");
}

static int cmd_help(int argc, char **argv) {
    (void)argc, (void)argv;
    usage(stdout);
    return 0;
}

static void dump_usage(FILE *f) {
    driver_usage(f, RRC_CMD_DUMP_IR, "SPEC [flags]",
                 "Prints the training-step graph of SPEC after a pass, one node per line with its shape\n"
                 "and spec line, then the outputs and a summary (parameter counts, multiply-adds).\n");
    fprintf(f, "\npasses: %s\n", pipeline_pass_names());
}

static void print_count(FILE *f, const char *label, int64_t v) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)v), k = 0;
    char out[48];
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) out[k++] = ',';
        out[k++] = buf[i];
    }
    out[k] = 0;
    fprintf(f, "%s%s", label, out);
}

static int cmd_dump_ir(int argc, char **argv) {
    rt_args a;
    int rc = driver_parse(RRC_CMD_DUMP_IR, argc, argv, 1, dump_usage, &a);
    if (rc >= 0) return rc;
    const char *spec = a.npos ? a.pos[0] : NULL, *after = NULL, *cpu = NULL;
    SpecOverrides ov = {.seed = -1};
    bool verify = false;
    int ranks = 1;
    for (int i = 0; i < a.nopts && rc < 0; i++) {
        const rt_opt *o = &a.opts[i];
        switch (o->flag->id) {
        case RRC_F_AFTER: after = o->value; break;
        case RRC_F_K: ov.K = (int)o->ival; break;
        case RRC_F_BATCH: ov.batch = (int)o->ival; break;
        case RRC_F_AGGREGATION: ov.aggregation = o->value; break;
        case RRC_F_LOSS: ov.loss = o->value; break;
        case RRC_F_VERIFY_EACH: verify = true; break;
        case RRC_F_CPU: cpu = o->value; break;
        case RRC_F_RANKS: ranks = (int)o->ival; break;
        case RRC_F_INPUT_SHAPE: ov.input_shape = o->value; break;
        default: break;
        }
    }
    rt_args_free(&a);   /* the values point into argv */
    if (rc >= 0) return rc;
    if (!spec) { dump_usage(stderr); return EXIT_USAGE; }
    if (after && !pipeline_has_pass(after)) {   /* the pipeline's words, before anything is loaded */
        fprintf(stderr, "rrc: unknown pass '%s' (passes: %s)\n", after, pipeline_pass_names());
        return EXIT_USAGE;
    }
    Arena arena = {0};
    Spec *s = driver_load_spec("dump-ir", spec, &ov, &arena);
    Diag d = {0};
    int64_t off, mine = rt_comm_share(s->batch, 0, ranks, &off);   /* rank 0's share */
    if (ranks > s->batch) {
        fprintf(stderr, "rrc dump-ir: a batch of %d images cannot be split over %d ranks\n", s->batch, ranks);
        arena_free(&arena);
        return EXIT_USAGE;
    }
    Graph *g = lower_train_rank(s, s->batch, mine, s->in_c, s->in_h, s->in_w, &arena, &d);
    if (!g) { arena_free(&arena); return EXIT_BADSPEC; }
    Target target;
    PipelineOpts po = {.verify_each = verify, .stop_after = after, .debug = rrc_env_debug(),
                       .target = driver_target("dump-ir", cpu, NULL, NULL, false, &target), .caps = cg_caps()};
    if (!pipeline_run(g, &d, &po)) { arena_free(&arena); return EXIT_BADSPEC; }
    bool rel = s->method.kind == METHOD_RELATIONAL;
    if (rel)
        printf("# rrc dump-ir %s after %s: K=%d B=%d input [%d,%d,%d], aggregation %s, loss %s\n", spec, after ? after : "dce",
               s->K, s->batch, s->in_c, s->in_h, s->in_w, aggregation_name(s->head.aggregation), loss_name(s->loss.kind));
    else
        printf("# rrc dump-ir %s after %s: method %s, %d view%s per image, B=%d input [%d,%d,%d]\n", spec, after ? after : "dce",
               method_name(s->method.kind), s->K, s->K > 1 ? "s" : "", s->batch, s->in_c, s->in_h, s->in_w);
    if (ranks > 1)
        printf("# rank 0 of %d: %lld of the batch's %d images; collectives bn_stats_all, bn_train_dx_all, gather_rows\n", ranks,
               (long long)mine, s->batch);
    graph_dump(stdout, g);
    GraphStats st = graph_stats(g, (int64_t)spec_backbone_views(s) * s->batch);
    const char *head = rel ? "relation" : "head";
    printf("summary:\n");
    print_count(stdout, "  trainable parameters: backbone ", st.params_backbone);
    printf(", %s", head);
    print_count(stdout, " ", st.params_relation);
    print_count(stdout, ", total ", st.params_backbone + st.params_relation);
    print_count(stdout, "\n  BatchNorm running statistics (not parameters): backbone ", st.bn_stats_backbone);
    printf(", %s", head);
    print_count(stdout, " ", st.bn_stats_relation);
    print_count(stdout, "\n  forward multiply-adds per image (backbone convs and linears): ", st.macs_per_image);
    printf(" (%.3f M)", (double)st.macs_per_image / 1e6);
    if (rel) print_count(stdout, "\n  forward multiply-adds per pair (relation head): ", st.macs_relation_per_pair);
    printf("\n  nodes: %d\n", st.nnodes);
    if (g->planned) {
        printf("  memory plan (bytes):");
        for (int r = 0; r < RT_NREGIONS; r++) {
            print_count(stdout, r ? ", " : " ", g->region_bytes[r]);
            printf(" %s", rt_region_name(r));
        }
        print_count(stdout, " (the last ", g->ws_bytes);
        printf(" of scratch: kernel workspace)");
        int64_t all = 0;
        for (int i = 0; i < g->nnodes; i++) all += node_bytes(g->nodes[i]);
        print_count(stdout, "\n  all values unshared would take ", all);
        printf(" bytes\n");
    }
    arena_free(&arena);
    return 0;
}

int main(int argc, char **argv) {
    rt_blas_select(argv);
    if (argc < 2) { usage(stderr); return EXIT_USAGE; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) cmd = "help";
    if (!strcmp(cmd, "version")) cmd = "--version";
    for (int i = 0; i < NCOMMANDS; i++) {
        if (strcmp(cmd, command_name(i))) continue;
        /* under mpirun: one rank of a data-parallel run (rt_comm.h); only
           training is split over ranks */
        if (rt_comm_launched()) {
            char err[512];
            if (rt_comm_init(err, sizeof err) != 0) {
                fprintf(stderr, "rrc: %s\n", err);
                return EXIT_USAGE;
            }
            if (rt_comm_get()->size > 1 && strcmp(cmd, "train")) {
                if (rt_comm_get()->rank == 0)
                    fprintf(stderr, "rrc %s: runs in one process; only rrc train runs over several ranks (mpirun -np %d)\n", cmd,
                            rt_comm_get()->size);
                rt_comm_finalize();
                return EXIT_USAGE;
            }
        }
        int rc = COMMANDS[i].run(argc - 2, argv + 2);
        rt_comm_finalize();
        return rc;
    }
    fprintf(stderr, "rrc: unknown command '%s' (see rrc help)\n", cmd);
    return EXIT_USAGE;
}
