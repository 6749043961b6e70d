/*
** driver.c: shared pieces of the rrc commands (see driver.h).
*/
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver.h"
#include "rt_init.h"
#include "target.h"

/* ---- command lines ---- */

enum {
    TR = 1u << RRC_CMD_TRAIN | 1u << RRC_CMD_FINETUNE,   /* finetune compiles and trains as train does */
    LI = 1u << RRC_CMD_LINEVAL | 1u << RRC_CMD_KNN | 1u << RRC_CMD_RETRIEVAL | 1u << RRC_CMD_EVAL,   /* compile as lineval */ CO = 1u << RRC_CMD_COMPILE, GR = 1u << RRC_CMD_GRAD,
    DU = 1u << RRC_CMD_DUMP_IR, PR = 1u << RRC_CMD_PREVIEW, CH = 1u << RRC_CMD_CHECK, PL = 1u << RRC_CMD_PLAN,
};
#define SEED_MAX 0x7fffffffLL
static const rt_flag ROWS[] = {
    {"-o", RRC_F_OUTDIR, CO, 's', 0, 0, NULL, NULL, "DIR", "output folder (default: generated/NAME)"},
    {"input", RRC_F_INPUT, GR, 's', 0, 0, NULL, NULL, "X", "the views (required)"},
    {"params", RRC_F_PARAMS, GR, 's', 0, 0, NULL, NULL, "P", "parameters by full name (backbone.*, relation.*); default: seeded init"},
    {"out", RRC_F_OUT, GR, 's', 0, 0, NULL, NULL, "G", "where to write the results (required)"},
    {"after", RRC_F_AFTER, DU, 's', 0, 0, NULL, NULL, "PASS", "stop after PASS (one of the passes below; default: all)"},
    {"data", RRC_F_DATA, CO, 's', 0, 0, NULL, NULL, "NAME[:PATH]",
     "the dataset the trainer will train on (its size decides the last\nbatch's variant); default: the spec's"},
    {"data", RRC_F_DATA, PR, 's', 0, 0, NULL, NULL, "NAME[:PATH]", "dataset (default: the spec's)"},
    {"out", RRC_F_OUT, PR, 's', 0, 0, NULL, NULL, "FILE", "the PNG to write (required)"},
    {"images", RRC_F_IMAGES, PR, 'i', 1, 256, NULL, NULL, "N", "rows (default 8): the first N training images"},
    {"train-size", RRC_F_TRAIN_SIZE, CO, 'i', 2, 1LL << 40, NULL, NULL, "N", "the number of training images, instead of --data"},
    {"K", RRC_F_K, DU | GR | PL, 'i', 2, 1024, NULL, NULL, "K", "views per image (default: the spec's)"},
    {"K", RRC_F_K, CO, 'i', 2, 1024, NULL, NULL, "K", "views per image, compiled into the step (default: the spec's)"},
    {"K", RRC_F_K, CH, 'i', 2, 64, NULL, NULL, "K", "views per image (default 3)"},
    {"K", RRC_F_K, PR, 'i', 1, 64, NULL, NULL, "K", "views per image (default: the spec's)"},
    {"epoch", RRC_F_EPOCH, PR, 'i', 0, 1000000, NULL, NULL, "E", "epoch whose views to show (default 0)"},
    {"batch", RRC_F_BATCH, DU, 'i', 1, 1 << 20, NULL, NULL, "B", "images per batch (default: the spec's)"},
    {"batch", RRC_F_BATCH, CO, 'i', 2, 1 << 16, NULL, NULL, "B",
     "images per step, compiled into the step (default: the spec's;\nsupervised: 128)"},
    {"batch", RRC_F_BATCH, CH, 'i', 2, 256, NULL, NULL, "B", "images (default 3)"},
    {"batch", RRC_F_BATCH, PL, 'i', 2, 1 << 16, NULL, NULL, "B", "images per step (default: the spec's)"},
    {"threads", RRC_F_THREADS, CH, 'i', 1, 64, NULL, NULL, "N",
     "threads of the finite differences (default: the cores); each keeps\na copy of the forward's values"},
    {"threads", RRC_F_THREADS, PL, 'i', 1, 256, NULL, NULL, "N", "threads the predicted time is divided over (default 1)"},
    {"sweep", RRC_F_SWEEP, PL, 's', 0, 0, NULL, NULL, "K=2,4,8", "a row per K in the list, each in [2, 1024] (default: the spec's K)"},
    {"plot", RRC_F_PLOT, PL, 's', 0, 0, NULL, NULL, "FILE.png",
     "also draw the rows (time per step and images/s against K) with gnuplot;\nits script is FILE.gp"},
    {"aggregation", RRC_F_AGGREGATION, DU | GR, 'c', 0, 0, "cat|sum|mean|max", NULL, "A",
     "cat | sum | mean | max (default: the spec's)"},
    {"aggregation", RRC_F_AGGREGATION, CO, 'c', 0, 0, "cat|sum|mean|max", NULL, "A",
     "cat | sum | mean | max, compiled into the step (default: the spec's)"},
    {"loss", RRC_F_LOSS, DU | GR, 'c', 0, 0, "focal|bce", NULL, "L", "focal | bce (default: the spec's)"},
    {"loss", RRC_F_LOSS, CO, 'c', 0, 0, "focal|bce", NULL, "L", "focal | bce, compiled into the step (default: the spec's)"},
    {"method", RRC_F_METHOD, CO, 'c', 0, 0, "relational|supervised", NULL, "M",
     "relational (default) or supervised, compiled into the step"},
    {"classes", RRC_F_CLASSES, CO, 'i', 2, 100000, NULL, NULL, "C",
     "supervised: classifier width (default: the dataset's classes or 10)"},
    {"input-shape", RRC_F_INPUT_SHAPE, DU | CH | PL, 's', 0, 0, NULL, NULL, "CxHxW", "image shape (default: the spec's input)"},
    {"seed", RRC_F_SEED, GR, 'i', 0, SEED_MAX, NULL, NULL, "S", "seed of the initialisation (default: the spec's)"},
    {"seed", RRC_F_SEED, CH, 'i', 0, SEED_MAX, NULL, NULL, "S", "seed of parameters, views and directions (default 1)"},
    {"seed", RRC_F_SEED, PR, 'i', 0, SEED_MAX, NULL, NULL, "S", "seed (default: the spec's)"},
    {"elements", RRC_F_ELEMENTS, CH, 'i', 0, 100000, NULL, NULL, "N", "sampled elements per tensor (default 8)"},
    {"scale", RRC_F_SCALE, PR, 'i', 1, 16, NULL, NULL, "X", "magnification (default 3)"},
    {"engine", RRC_F_ENGINE, GR, 'c', 0, 0, "interp|jit|aot", NULL, "E",
     "interp (the reference interpreter, in double; default), jit (LLVM,\ncompiled in-process) or aot (an AOT trainer, built "
     "by rrc compile\ninto the compile cache $RRC_CACHE_DIR (default ~/.cache/rrc) and reused)"},
    {"engine", RRC_F_ENGINE, CH, 'c', 0, 0, "jit|interp", NULL, "E",
     "jit (default): also compare the JIT-compiled step; interp: skip that"},
    /* code the command runs; code it only plans for; code for elsewhere */
    {"cpu", RRC_F_CPU, TR | LI | GR | CH, 's', 0, 0, NULL, NULL, "NAME",
     "generate code for CPU NAME (x86-64-v3, znver3, ...; default\n$RRC_CPU or this host); one this host cannot run is refused"},
    {"cpu", RRC_F_CPU, DU | PL, 's', 0, 0, NULL, NULL, "NAME",
     "decide for CPU NAME (its vector width; default $RRC_CPU or this host)"},
    {"cpu", RRC_F_CPU, CO, 's', 0, 0, NULL, NULL, "NAME",
     "code for CPU NAME (x86-64-v3, znver3, neoverse-n1, ...; default\n$RRC_CPU or this host); the code need not run here"},
    {"target", RRC_F_TARGET, CO, 's', 0, 0, NULL, NULL, "TRIPLE",
     "code for another architecture (aarch64-linux-gnu); needs --cpu\nand --emit-obj"},
    {"features", RRC_F_FEATURES, CO, 's', 0, 0, NULL, NULL, "F", "extra LLVM CPU features (+avx512f,...)"},
    {"ranks", RRC_F_RANKS, CO, 'i', 2, 4096, NULL, NULL, "N",
     "also compile the steps of data-parallel training over N ranks\n(mpirun -np N DIR/NAME-train train)"},
    {"ranks", RRC_F_RANKS, DU, 'i', 1, 4096, NULL, NULL, "N",
     "the step of rank 0 of a data-parallel run over N ranks (default 1)"},
    {"emit-obj", RRC_F_EMIT_OBJ, CO, 0, 0, 0, NULL, NULL, NULL, "write the objects and the header only, link no trainer"},
    {"emit-llvm", RRC_F_EMIT_LLVM, CO, 0, 0, 0, NULL, NULL, NULL, "also write the optimised LLVM IR (NAME.<entry>.ll)"},
    {"verify-each", RRC_F_VERIFY_EACH, TR | LI | CO | DU, 0, 0, 0, NULL, NULL, NULL, "verify the IR after every pass"},
    {"dump-after", RRC_F_DUMP_AFTER, TR | LI | CO, 's', 0, 0, NULL, NULL, "PASS", "print the IR after PASS (or all) to stderr"},
    {"calibrate", RRC_F_CALIBRATE, PL, 0, 0, 0, NULL, NULL, NULL,
     "measure this machine's rates again (without SPEC: only that)"},
};
#undef SEED_MAX

const rt_flag_table rrc_flags = {ROWS, (int)(sizeof ROWS / sizeof ROWS[0])};

static const char *const CMD_NAMES[RRC_CMD_END] = {
    [RRC_CMD_TRAIN] = "train", [RRC_CMD_LINEVAL] = "lineval", [RRC_CMD_FINETUNE] = "finetune", [RRC_CMD_KNN] = "knn",
    [RRC_CMD_RETRIEVAL] = "retrieval", [RRC_CMD_EVAL] = "eval", [RRC_CMD_COMPILE] = "compile", [RRC_CMD_GRAD] = "grad",
    [RRC_CMD_DUMP_IR] = "dump-ir", [RRC_CMD_PREVIEW] = "augment-preview", [RRC_CMD_CHECK] = "check",
    [RRC_CMD_PLAN] = "plan", [RRC_CMD_SPECS] = "specs",
};

const char *driver_cmd_name(RrcCmd cmd) { return (unsigned)cmd < RRC_CMD_END ? CMD_NAMES[cmd] : NULL; }

int driver_parse(RrcCmd cmd, int argc, char **argv, int max_pos, void (*usage)(FILE *), rt_args *a) {
    char prog[64];
    snprintf(prog, sizeof prog, "rrc %s", driver_cmd_name(cmd));
    /* every SPEC is taken, so that a second one is named */
    bool ok = rt_flags_parse(&rrc_flags, 1, (int)cmd, prog, argc, argv, max_pos ? argc : 0, a);
    int rc = -1;
    if (!ok) {
        return EXIT_USAGE;
    } else if (a->help) {
        usage(stdout);
        rc = 0;
    } else if (a->npos > 1) {
        fprintf(stderr, "%s: more than one spec given ('%s', '%s')\n", prog, a->pos[0], a->pos[1]);
        rc = EXIT_USAGE;
    }
    if (rc >= 0) rt_args_free(a);
    return rc;
}

void driver_usage(FILE *f, RrcCmd cmd, const char *synopsis, const char *summary) {
    fprintf(f, "usage: rrc %s%s%s\n\n%s\n", driver_cmd_name(cmd), *synopsis ? " " : "", synopsis, summary);
    rt_flags_usage(f, &rrc_flags, 1, (int)cmd);
    fprintf(f, "  -h, --help          this text\n");
}

/* ---- where rrc's own files are ---- */

/* The directory of the running rrc, or "." if unknown. */
static const char *exe_dir(void) {
    static char dir[PATH_MAX];
    if (!dir[0]) {
        char exe[PATH_MAX];
        ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (k <= 0) return strcpy(dir, ".");
        exe[k] = 0;
        snprintf(dir, sizeof dir, "%s", dirname(exe));
    }
    return dir;
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* An installed rrc is PREFIX/bin/rrc with PREFIX/share/rrc/specs and
   PREFIX/lib/rrc; one run from its source tree is ./rrc beside specs/ and
   build/. Found from the executable's place, so an installation can move. */
const char *driver_installed_specs(void) {
    static char p[PATH_MAX + 32];
    if (!p[0]) {
        char raw[PATH_MAX + 32];
        snprintf(raw, sizeof raw, "%s/../share/rrc/specs", exe_dir());
        if (!realpath(raw, p)) snprintf(p, sizeof p, "%s", raw);
    }
    return p;
}

/* ./rrc beside specs/, or a sanitizer build's build-asan/rrc one level
   below them */
static const char *source_specs(void) {
    static char p[PATH_MAX + 16];
    if (!p[0]) {
        snprintf(p, sizeof p, "%s/specs", exe_dir());
        if (!is_dir(p)) snprintf(p, sizeof p, "%s/../specs", exe_dir());
    }
    return p;
}

void driver_runtime_dir(char *buf, size_t n) {
    const char *env = getenv("RRC_RUNTIME_DIR");
    if (env && *env) { snprintf(buf, n, "%s", env); return; }
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof probe, "%s/../lib/rrc/librrt.a", exe_dir());
    if (is_file(probe)) { snprintf(buf, n, "%s/../lib/rrc", exe_dir()); return; }   /* installed */
    snprintf(probe, sizeof probe, "%s/librrt.a", exe_dir());
    if (is_file(probe)) snprintf(buf, n, "%s", exe_dir());   /* rrc inside its build folder */
    else snprintf(buf, n, "%s/build", exe_dir());           /* ./rrc of the source tree */
}

/* The spec search path: $RRC_SPEC_PATH's directories, then the installed
   specs, then the source tree's (only those that exist); also where
   rr.include looks after the spec's own directory. */
#define MAX_SEARCH 32
static const char *search[MAX_SEARCH];
static int nsearch = -1;

static int search_path(void) {
    if (nsearch >= 0) return nsearch;
    nsearch = 0;
    const char *env = getenv("RRC_SPEC_PATH");
    if (env && *env) {
        char *copy = strdup(env);
        for (char *save = NULL, *tok = strtok_r(copy, ":", &save); tok && nsearch < MAX_SEARCH - 2;
             tok = strtok_r(NULL, ":", &save))
            if (*tok) search[nsearch++] = tok;   /* copy lives as long as the process */
    }
    if (is_dir(driver_installed_specs())) search[nsearch++] = driver_installed_specs();
    if (is_dir(source_specs())) search[nsearch++] = source_specs();
    spec_set_search_path(search, nsearch);
    return nsearch;
}

bool driver_find_spec(const char *cmd, const char *arg, char *out, size_t n) {
    int ns = search_path();
    /* a path that exists is used as it is; so is anything with a '/' (its
       loader says what is wrong) */
    struct stat st;
    if (stat(arg, &st) == 0 || strchr(arg, '/')) {
        snprintf(out, n, "%s", arg);
        return true;
    }
    size_t len = strlen(arg);
    bool lua = len > 4 && strcmp(arg + len - 4, ".lua") == 0;
    char tried[4096];
    int k = snprintf(tried, sizeof tried, "./%s", arg);
    for (int i = 0; i < ns; i++) {
        snprintf(out, n, "%s/%s%s", search[i], arg, lua ? "" : ".lua");
        if (is_file(out)) return true;
        if (k > 0 && (size_t)k < sizeof tried) k += snprintf(tried + k, sizeof tried - (size_t)k, ", %s", out);
    }
    fprintf(stderr, "rrc %s: no spec '%s': looked in %s%s\n", cmd, arg, tried,
            getenv("RRC_SPEC_PATH") && *getenv("RRC_SPEC_PATH") ? "" : " ($RRC_SPEC_PATH is not set)");
    return false;
}

Spec *driver_load_spec(const char *cmd, const char *arg, const SpecOverrides *ov, Arena *a) {
    Diag d = {0};
    char found[PATH_MAX + 64];
    if (!driver_find_spec(cmd, arg, found, sizeof found)) exit(EXIT_BADSPEC);
    Spec *s = spec_load(arena_strdup(a, found), a, &d);
    if (!s) exit(EXIT_BADSPEC);
    if (s->method.kind != METHOD_RELATIONAL && (ov->K || ov->aggregation || ov->loss)) {
        fprintf(stderr, "rrc %s: --%s is an option of relational reasoning, but %s trains %s\n", cmd,
                ov->K ? "K" : ov->aggregation ? "aggregation" : "loss", found, method_name(s->method.kind));
        exit(EXIT_USAGE);
    }
    if (ov->K) s->K = ov->K;
    if (ov->aggregation && !aggregation_parse(ov->aggregation, &s->head.aggregation)) {
        fprintf(stderr, "rrc %s: --aggregation must be cat, sum, mean or max (got \"%s\")\n", cmd, ov->aggregation);
        exit(EXIT_USAGE);
    }
    if (ov->loss && !loss_parse(ov->loss, &s->loss.kind)) {
        fprintf(stderr, "rrc %s: --loss must be focal or bce (got \"%s\")\n", cmd, ov->loss);
        exit(EXIT_USAGE);
    }
    if (ov->seed >= 0) s->seed = (uint64_t)ov->seed;
    if (ov->batch) s->batch = ov->batch;
    if (ov->epochs) s->epochs = ov->epochs;
    if (ov->input_shape) {
        char tail;
        long long c, h, w;   /* wider than the result, so that a huge value is refused, not wrapped */
        if (sscanf(ov->input_shape, "%lldx%lldx%lld%c", &c, &h, &w, &tail) != 3 || c < 1 || h < 1 || w < 1 || c > 65536 ||
            h > 65536 || w > 65536) {
            fprintf(stderr, "rrc %s: --input-shape must be CxHxW, each in [1, 65536], e.g. 3x32x32 (got \"%s\")\n", cmd,
                    ov->input_shape);
            exit(EXIT_USAGE);
        }
        s->in_c = (int)c, s->in_h = (int)h, s->in_w = (int)w;
    }
    return s;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

float **driver_load_params(const char *cmd, Graph *g, const char *file, uint64_t seed, bool *initialised) {
    rt_st_file f = {0};
    char err[512];
    *initialised = file == NULL;
    if (file && rt_st_read(file, &f, err, sizeof err) != 0) {
        fprintf(stderr, "rrc %s: %s\n", cmd, err);
        return NULL;
    }
    float **vals = xcalloc((size_t)g->nnodes, sizeof *vals);
    bool ok = true;
    for (int i = 0; i < g->nnodes && ok; i++) {
        Node *n = g->nodes[i];
        if (n->op != OP_PARAM && n->op != OP_STATE) continue;
        int64_t e = node_numel(n);
        float *v = xmalloc((size_t)e * sizeof *v);
        vals[i] = v;
        const rt_tensor *t = file ? rt_st_find(&f, n->name) : NULL;
        if (t) {
            bool shape_ok = t->rank == n->rank;
            for (int k = 0; shape_ok && k < n->rank; k++) shape_ok = t->shape[k] == n->dim[k];
            if (!shape_ok) {
                char want[64], got[64] = "[";
                fmt_shape(want, sizeof want, n);
                for (int k = 0; k < t->rank; k++)
                    snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", k ? "," : "", (long long)t->shape[k]);
                strncat(got, "]", sizeof got - strlen(got) - 1);
                fprintf(stderr, "rrc %s: %s: tensor '%s' has shape %s, the spec needs %s\n", cmd, file, n->name, got, want);
                ok = false;
            } else if (rt_tensor_to_f32(t, v, e, file, err, sizeof err) != 0) {
                fprintf(stderr, "rrc %s: %s\n", cmd, err);
                ok = false;
            }
        } else if (file && n->op == OP_PARAM) {
            fprintf(stderr, "rrc %s: %s: missing trainable tensor '%s'\n", cmd, file, n->name);
            ok = false;
        } else {
            rt_init_fill(v, e, n->init, seed, n->name);
        }
    }
    /* anything in the file that the graph does not know is an error */
    for (int i = 0; file && ok && i < f.ntensors; i++) {
        const char *name = f.tensors[i].name;
        if (ends_with(name, ".num_batches_tracked")) continue;
        if (!graph_find_leaf(g, OP_PARAM, name) && !graph_find_leaf(g, OP_STATE, name)) {
            fprintf(stderr, "rrc %s: %s: unknown tensor '%s' (not a parameter or running statistic of this spec)\n", cmd,
                    file, name);
            ok = false;
        }
    }
    if (file) rt_st_free(&f);
    if (!ok) {
        driver_free_params(g, vals);
        return NULL;
    }
    return vals;
}

void driver_free_params(const Graph *g, float **vals) {
    if (!vals) return;
    for (int i = 0; i < g->nnodes; i++) free(vals[i]);
    free(vals);
}

int rrc_env_debug(void) {
    const char *d = getenv("RRC_DEBUG");
    return d ? atoi(d) : 0;
}

const Target *driver_target(const char *cmd, const char *cpu, const char *triple, const char *features, bool run,
                            Target *store) {
    char err[512];
    bool ok = cpu || triple || features ? target_named(cpu, triple, features, store, err, sizeof err)
                                        : target_from_env(store, err, sizeof err);
    if (!ok) {
        fprintf(stderr, "rrc %s: %s\n", cmd, err);
        exit(EXIT_USAGE);
    }
    if (run && !target_runs_here(store, err, sizeof err)) {
        fprintf(stderr, "rrc %s: %s\n", cmd, err);
        exit(EXIT_USAGE);
    }
    if (rrc_env_debug() >= 1) {
        char d[512];
        target_describe(store, d, sizeof d);
        fprintf(stderr, "rrc: target %s\n", d);
    }
    return store;
}
