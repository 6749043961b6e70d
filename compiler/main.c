/*
** main.c: the rrc command line. The whole pipeline in one page:
**
**   spec.lua --spec_load--> Spec --lower_train--> Graph --passes--> Graph
**            --interp (oracle) | codegen (LLVM, to come)--> results
**
** Commands: see usage(). Exit status: 0 ok, 1 bad flags or I/O, 2 bad spec.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cg.h"
#include "driver.h"
#include "frontend/lower.h"
#include "rt_blas.h"


static void usage(FILE *f) {
    fprintf(f,
            "usage: rrc COMMAND [ARGS]\n"
            "\n"
            "rrc compiles a Lua spec of self-supervised relational reasoning into a trainer.\n"
            "\n"
            "commands:\n"
            "  dump-ir SPEC [--after PASS] [--K K] [--batch B] [--input-shape CxHxW] ...\n"
            "                      print the training-step graph (one node per line) and its summary\n"
            "  grad SPEC --input X.safetensors [--params P.safetensors] --out G.safetensors ...\n"
            "                      run one training-mode step (no update) and write loss, logits, gradients\n"
            "  train SPEC [--data D] [--epochs E] [--batch B] [--K K] [--threads N] [--seed S] [--out RUN]\n"
            "                      train with relational reasoning (JIT-compiled step)\n"
            "  compile SPEC [-o DIR] [--emit-llvm]\n"
            "                      ahead-of-time compile into a standalone trainer DIR/NAME-train\n"
            "  lineval SPEC --data D (--checkpoint FILE | --random-init)\n"
            "                      linear evaluation of a backbone\n"
            "  augment-preview SPEC --out views.png [--data D]\n"
            "                      a PNG grid of images and their augmented views\n"
            "  check SPEC [--K K] [--batch B] [--elements N]\n"
            "                      check the step's gradients by finite differences, node by node, and\n"
            "                      the compiled step against the interpreter\n"
            "  plan SPEC [--K K] [--batch B] [--threads N] [--sweep K=2,4,8]\n"
            "                      predict a step's FLOPs, bytes, planned memory and time without running it\n"
            "  specs               the bundled specs, which every command takes by name (rrc compile resnet32)\n"
            "  --version           versions of rrc, LLVM and OpenBLAS, and the JIT's target\n"
            "  help                this text; `rrc COMMAND --help` for a command's flags\n"
            "\n"
            "SPEC is a path, or a bundled spec's name looked up in $RRC_SPEC_PATH, then PREFIX/share/rrc/specs.\n");
}

static void dump_usage(FILE *f) {
    fprintf(f,
            "usage: rrc dump-ir SPEC [flags]\n"
            "\n"
            "Prints the training-step graph of SPEC after a pass, one node per line with its shape\n"
            "and spec line, then the outputs and a summary (parameter counts, multiply-adds).\n"
            "\n"
            "  --after PASS        stop after PASS (one of: %s; default: all)\n"
            "  --K K               views per image (default: the spec's)\n"
            "  --batch B           images per batch (default: the spec's)\n"
            "  --aggregation A     cat | sum | mean | max\n"
            "  --loss L            focal | bce\n"
            "  --input-shape CxHxW image shape (default: the spec's input)\n"
            "  --verify-each       verify the IR after every pass\n"
            "  --cpu NAME          decide for CPU NAME (its vector width; default $RRC_CPU or this host)\n",
            pipeline_pass_names());
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
    const char *spec = NULL, *after = NULL, *cpu = NULL;
    SpecOverrides ov = {.seed = -1};
    bool verify = false;
    int shape[3] = {0, 0, 0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (flag_is(a, "--help") || flag_is(a, "-h")) { dump_usage(stdout); return 0; }
        else if (flag_is(a, "--after")) after = flag_value("dump-ir", argc, argv, &i, "--after");
        else if (flag_is(a, "--K")) ov.K = (int)flag_int("dump-ir", "--K", flag_value("dump-ir", argc, argv, &i, "--K"), 2, 1024);
        else if (flag_is(a, "--batch")) ov.batch = (int)flag_int("dump-ir", "--batch", flag_value("dump-ir", argc, argv, &i, "--batch"), 1, 1 << 20);
        else if (flag_is(a, "--aggregation")) ov.aggregation = flag_value("dump-ir", argc, argv, &i, "--aggregation");
        else if (flag_is(a, "--loss")) ov.loss = flag_value("dump-ir", argc, argv, &i, "--loss");
        else if (flag_is(a, "--verify-each")) verify = true;
        else if (flag_is(a, "--cpu")) cpu = flag_value("dump-ir", argc, argv, &i, "--cpu");
        else if (flag_is(a, "--input-shape")) {
            const char *v = flag_value("dump-ir", argc, argv, &i, "--input-shape");
            char tail;
            long long c, h, w;   /* wider than the result, so that a huge value is refused, not wrapped */
            if (sscanf(v, "%lldx%lldx%lld%c", &c, &h, &w, &tail) != 3 || c < 1 || h < 1 || w < 1 || c > 65536 ||
                h > 65536 || w > 65536) {
                fprintf(stderr, "rrc dump-ir: --input-shape must be CxHxW, each in [1, 65536], e.g. 3x32x32 (got \"%s\")\n", v);
                return EXIT_USAGE;
            }
            shape[0] = (int)c, shape[1] = (int)h, shape[2] = (int)w;
        }
        else if (a[0] == '-') { fprintf(stderr, "rrc dump-ir: unknown flag '%s' (see rrc dump-ir --help)\n", a); return EXIT_USAGE; }
        else if (!spec) spec = a;
        else { fprintf(stderr, "rrc dump-ir: more than one spec given ('%s', '%s')\n", spec, a); return EXIT_USAGE; }
    }
    if (!spec) { dump_usage(stderr); return EXIT_USAGE; }
    Arena arena = {0};
    Spec *s = driver_load_spec("dump-ir", spec, &ov, &arena);
    if (shape[0]) {
        s->in_c = shape[0];
        s->in_h = shape[1];
        s->in_w = shape[2];
    }
    Diag d = {0};
    Graph *g = lower_train(s, s->batch, s->in_c, s->in_h, s->in_w, &arena, &d);
    if (!g) { arena_free(&arena); return EXIT_BADSPEC; }
    Target target;
    PipelineOpts po = {.verify_each = verify, .stop_after = after, .debug = rrc_env_debug(),
                       .target = driver_target("dump-ir", cpu, NULL, NULL, false, &target), .caps = cg_caps()};
    if (!pipeline_run(g, &d, &po)) { arena_free(&arena); return after && !pipeline_has_pass(after) ? EXIT_USAGE : EXIT_BADSPEC; }
    printf("# rrc dump-ir %s after %s: K=%d B=%d input [%d,%d,%d], aggregation %s, loss %s\n", spec, after ? after : "dce",
           s->K, s->batch, s->in_c, s->in_h, s->in_w, aggregation_name(s->head.aggregation), loss_name(s->loss.kind));
    graph_dump(stdout, g);
    GraphStats st = graph_stats(g, (int64_t)s->K * s->batch);
    printf("summary:\n");
    print_count(stdout, "  trainable parameters: backbone ", st.params_backbone);
    print_count(stdout, ", relation ", st.params_relation);
    print_count(stdout, ", total ", st.params_backbone + st.params_relation);
    print_count(stdout, "\n  BatchNorm running statistics (not parameters): backbone ", st.bn_stats_backbone);
    print_count(stdout, ", relation ", st.bn_stats_relation);
    print_count(stdout, "\n  forward multiply-adds per image (backbone convs and linears): ", st.macs_per_image);
    printf(" (%.3f M)", (double)st.macs_per_image / 1e6);
    print_count(stdout, "\n  forward multiply-adds per pair (relation head): ", st.macs_relation_per_pair);
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
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) { usage(stdout); return 0; }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) return cmd_version();
    if (!strcmp(cmd, "specs")) return cmd_specs(argc - 2, argv + 2);
    if (!strcmp(cmd, "check")) return cmd_check(argc - 2, argv + 2);
    if (!strcmp(cmd, "plan")) return cmd_plan(argc - 2, argv + 2);
    if (!strcmp(cmd, "dump-ir")) return cmd_dump_ir(argc - 2, argv + 2);
    if (!strcmp(cmd, "grad")) return cmd_grad(argc - 2, argv + 2);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "compile")) return cmd_compile(argc - 2, argv + 2);
    if (!strcmp(cmd, "augment-preview")) return cmd_augment_preview(argc - 2, argv + 2);
    if (!strcmp(cmd, "lineval")) return cmd_lineval(argc - 2, argv + 2);
    fprintf(stderr, "rrc: unknown command '%s' (see rrc help)\n", cmd);
    return EXIT_USAGE;
}
