/*
** cmd_compile.c: `rrc compile SPEC [-o DIR]`: ahead-of-time compilation into
** a standalone trainer. Writes DIR/NAME.o (every entry of the program plus
** its description), DIR/NAME.h (the step ABI: regions, tensor offsets,
** entry points), DIR/NAME.*.ll with --emit-llvm, and links DIR/NAME-train
** from NAME.o, the runtime library and the trainer's main
** (runtime/trainer/main.c) with the system C compiler. The trainer has
** rrc train's command line without the spec (see NAME-train help).
*/
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"
#include "target.h"
#include "program.h"
#include "rt_data.h"
#include "rt_file.h"
#include "rt_program_json.h"

/* The entries' objects, DIR/NAME.ENTRY.o, compiled on two threads: the
   first entry (the full-batch training step, the largest) on its own, the
   others after it on the main thread. Each module has its own LLVM
   context, so they compile independently. */
typedef struct ObjJob {
    CgModule *m;
    char path[1400];
    bool ok;
} ObjJob;

static void *write_object_job(void *arg) {
    ObjJob *j = arg;
    j->ok = cg_write_object(j->m, j->path);
    return NULL;
}

static bool write_objects(Program *pr, const char *outdir, const char *name) {
    ObjJob jobs[4];
    int n = 0;
    for (int i = 0; i < 4; i++) {
        if (!pr->cgm[i]) continue;
        jobs[n].m = pr->cgm[i];
        jobs[n].ok = false;
        snprintf(jobs[n].path, sizeof jobs[n].path, "%s/%s.%s.o", outdir, name, program_fn_names[i] + 4);
        n++;
    }
    pthread_t th;
    bool threaded = n > 1 && pthread_create(&th, NULL, write_object_job, &jobs[0]) == 0;
    for (int k = threaded ? 1 : 0; k < n; k++) write_object_job(&jobs[k]);
    if (threaded) pthread_join(th, NULL);
    bool ok = true;
    for (int k = 0; k < n; k++) ok &= jobs[k].ok;
    return ok;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: rrc compile SPEC [-o DIR] [flags]\n"
            "\n"
            "Compiles SPEC's training step ahead of time and links a standalone trainer\n"
            "DIR/NAME-train (default DIR: generated/NAME).\n"
            "\n"
            "  -o DIR              output folder\n"
            "  --emit-llvm         also write the optimised LLVM IR (NAME.<entry>.ll)\n"
            "  --verify-each       verify the IR after every pass\n"
            "  --dump-after PASS   print the IR after PASS (or all) to stderr\n"
            "  --data NAME[:PATH]  the dataset the trainer will train on (its size decides the last\n"
            "                      batch's variant); default: the spec's\n"
            "  --train-size N      the number of training images, instead of --data\n"
            "  --K K, --batch B, --aggregation A, --loss L, --method relational|supervised\n"
            "                      compiled into the step (default: the spec's)\n"
            "  --classes C         supervised: classifier width (default: the dataset's classes or 10)\n"
            "  --cpu NAME          code for CPU NAME (x86-64-v3, znver3, neoverse-n1, ...; default $RRC_CPU or\n"
            "                      this host); the code need not run here\n"
            "  --target TRIPLE     code for another architecture (aarch64-linux-gnu); needs --cpu and --emit-obj\n"
            "  --features F        extra LLVM CPU features (+avx512f,...)\n"
            "  --emit-obj          write the objects and the header only, link no trainer\n");
}

/* Training-set sizes of the datasets a spec names, for when they are not
   at hand (the trainer checks the real size when it loads the data). */
static int64_t known_size(const char *data) {
    static const struct { const char *name; int64_t n; } sizes[] = {
        {"cifar10", 50000}, {"cifar100", 50000}, {"cifar100-20", 50000}, {"fashion-mnist", 60000},
        {"mnist", 60000}, {"stl10", 5000}, {"tiny-imagenet", 100000},
    };
    size_t len = strcspn(data, ":");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (strlen(sizes[i].name) == len && !strncmp(data, sizes[i].name, len)) return sizes[i].n;
    return 0;
}

#ifndef RRC_LINK_SAN
#define RRC_LINK_SAN ""
#endif

static void c_ident(char *out, size_t n, const char *s) {
    size_t k = 0;
    for (; *s && k + 1 < n; s++) out[k++] = (char)((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ? (*s >= 'a' && *s <= 'z' ? *s - 32 : *s) : '_');
    out[k] = 0;
}

/* Written under a temporary name and renamed: a failed write (a full disk)
   leaves no half a header. */
static bool write_header(const char *path, const Program *pr) {
    char tmp[4200], err[4400] = "";
    FILE *f = rt_tmp_path(tmp, sizeof tmp, path) ? fopen(tmp, "w") : NULL;
    if (!f) { fprintf(stderr, "rrc compile: cannot write %s: %s\n", path, strerror(errno)); return false; }
    const rt_program *p = &pr->p;
    char up[128];
    c_ident(up, sizeof up, p->spec_name);
    fprintf(f, "/* %s.h: generated by rrc compile; do not edit.\n"
               "** The step ABI of spec %s (runtime/rt_step.h): every entry reads and writes\n"
               "** tensors at these byte offsets in five regions (param, state, input, output,\n"
               "** scratch) and allocates nothing. */\n"
               "#ifndef RRC_%s_H\n#define RRC_%s_H\n\n#include <stdint.h>\n\n", p->spec_name, p->spec_name, up, up);
    fprintf(f, "#define %s_K %d\n#define %s_BATCH %d\n#define %s_FEATURES %lld\n\n", up, p->K, up, p->batch, up, (long long)p->feat_dim);
    const rt_entry *es[4] = {p->train_full, p->train_last, p->features, p->classify};
    for (int i = 0; i < 4; i++) {
        if (!es[i]) continue;
        const rt_entry *e = es[i];
        fprintf(f, "/* entry %s (B=%lld) */\nvoid %s(char *const regions[5]);\n", e->name, (long long)e->B, program_fn_names[i]);
        static const char *rn[] = {"PARAM", "STATE", "INPUT", "OUTPUT", "SCRATCH"};
        for (int r = 0; r < RT_NREGIONS; r++)
            fprintf(f, "#define %s_%s_%s_BYTES %lldLL\n", up, program_fn_names[i] + 4, rn[r], (long long)e->region_bytes[r]);
        for (int t = 0; t < e->ntensors; t++) {
            char id[300];
            c_ident(id, sizeof id, e->tensors[t].name);
            fprintf(f, "#define %s_%s_%s_OFFSET %lldLL /* %s [", up, program_fn_names[i] + 4, id, (long long)e->tensors[t].offset,
                    rn[e->tensors[t].region]);
            for (int k = 0; k < e->tensors[t].rank; k++) fprintf(f, "%s%lld", k ? "," : "", (long long)e->tensors[t].dim[k]);
            fprintf(f, "] */\n");
        }
        fputc('\n', f);
    }
    fprintf(f, "#endif\n");
    if (rt_close_checked(f, path, err, sizeof err) != 0 || rename(tmp, path) != 0) {
        if (!*err) snprintf(err, sizeof err, "%s: cannot rename into place: %s", path, strerror(errno));
        fprintf(stderr, "rrc compile: %s\n", err);
        unlink(tmp);
        return false;
    }
    return true;
}

static int run_cmd(const char *cmd) {
    if (rrc_env_debug() >= 1) fprintf(stderr, "rrc: %s\n", cmd);
    int st = system(cmd);
    return st;
}

/* What `rrc compile` was asked for. */
typedef struct CompileOpts {
    const char *spec, *dir, *data, *method, *cpu, *triple, *features;
    SpecOverrides ov;
    bool emit_ll, emit_obj, supervised;
    long long train_size;
    int classes;
    PipelineOpts pipe;
} CompileOpts;

/* Phase 1: the command line. Returns -1 to go on, else the exit status. */
static int parse_flags(CompileOpts *c, int argc, char **argv) {
    *c = (CompileOpts){.method = "relational", .ov = {.seed = -1}, .train_size = -1};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (flag_is(a, "--help") || flag_is(a, "-h")) { usage(stdout); return 0; }
        else if (flag_is(a, "-o")) c->dir = flag_value("compile", argc, argv, &i, "-o");
        else if (flag_is(a, "--emit-llvm")) c->emit_ll = true;
        else if (flag_is(a, "--verify-each")) c->pipe.verify_each = true;
        else if (flag_is(a, "--dump-after")) c->pipe.dump_after = flag_value("compile", argc, argv, &i, "--dump-after");
        else if (flag_is(a, "--data")) c->data = flag_value("compile", argc, argv, &i, "--data");
        else if (flag_is(a, "--train-size")) c->train_size = flag_int("compile", "--train-size", flag_value("compile", argc, argv, &i, "--train-size"), 2, 1L << 40);
        else if (flag_is(a, "--K")) c->ov.K = (int)flag_int("compile", "--K", flag_value("compile", argc, argv, &i, "--K"), 2, 1024);
        else if (flag_is(a, "--batch")) c->ov.batch = (int)flag_int("compile", "--batch", flag_value("compile", argc, argv, &i, "--batch"), 2, 1 << 16);
        else if (flag_is(a, "--aggregation")) c->ov.aggregation = flag_value("compile", argc, argv, &i, "--aggregation");
        else if (flag_is(a, "--loss")) c->ov.loss = flag_value("compile", argc, argv, &i, "--loss");
        else if (flag_is(a, "--method")) c->method = flag_value("compile", argc, argv, &i, "--method");
        else if (flag_is(a, "--classes")) c->classes = (int)flag_int("compile", "--classes", flag_value("compile", argc, argv, &i, "--classes"), 2, 100000);
        else if (flag_is(a, "--cpu")) c->cpu = flag_value("compile", argc, argv, &i, "--cpu");
        else if (flag_is(a, "--target")) c->triple = flag_value("compile", argc, argv, &i, "--target");
        else if (flag_is(a, "--features")) c->features = flag_value("compile", argc, argv, &i, "--features");
        else if (flag_is(a, "--emit-obj")) c->emit_obj = true;
        else if (a[0] == '-') { fprintf(stderr, "rrc compile: unknown flag '%s' (see rrc compile --help)\n", a); return EXIT_USAGE; }
        else if (!c->spec) c->spec = a;
        else { fprintf(stderr, "rrc compile: more than one spec given ('%s', '%s')\n", c->spec, a); return EXIT_USAGE; }
    }
    if (!c->spec) { usage(stderr); return EXIT_USAGE; }
    c->supervised = !strcmp(c->method, "supervised");
    if (!c->supervised && strcmp(c->method, "relational")) {
        fprintf(stderr, "rrc compile: --method must be relational or supervised (got \"%s\")\n", c->method);
        return EXIT_USAGE;
    }
    if (c->supervised && !c->ov.batch) c->ov.batch = 128;
    return -1;
}

/* Phase 2: the training set's size (it decides the last batch's entry) and
   classes: --train-size, else the data set read, else a known size. */
static int64_t train_size_of(CompileOpts *c, const Spec *s) {
    int64_t n = c->train_size > 0 ? c->train_size : 0;
    if (c->train_size <= 0) {
        rt_dataset d = {0};
        rt_data_opts o = {s->in_h, s->in_w, s->in_c, s->seed};
        char err[1024];
        if (rt_dataset_load(c->data, RT_SPLIT_TRAIN, &o, &d, err, sizeof err) == 0) {
            n = d.n;
            if (!c->classes) c->classes = d.nclasses;
            rt_dataset_free(&d);
        } else {
            n = known_size(c->data);
        }
    }
    if (!c->classes) c->classes = 10;
    return n;
}

/* Phase 4: the objects of the built entries, the program object, (for the
   host) one relocatable object of them all, and the header. parts gets
   the objects' paths (kept apart for another architecture). */
static bool emit_objects(const CompileOpts *c, Program *pr, const Spec *s, const char *outdir, bool foreign, const CgOptions *co,
                         char *parts, size_t nparts) {
    char path[1400], cmd[12288];
    int fn_index[RT_PROGRAM_SLOTS] = {-1, -1, -1, -1}, nfns = 0;
    const char *fns[4];
    parts[0] = 0;
    if (!write_objects(pr, outdir, s->name)) return false;
    for (int i = 0; i < 4; i++) {
        if (!pr->cgm[i]) continue;
        snprintf(path, sizeof path, "%s/%s.%s.o", outdir, s->name, program_fn_names[i] + 4);
        strncat(parts, " ", nparts - strlen(parts) - 1);
        strncat(parts, path, nparts - strlen(parts) - 1);
        if (c->emit_ll) {
            snprintf(path, sizeof path, "%s/%s.%s.ll", outdir, s->name, program_fn_names[i] + 4);
            if (!cg_write_ll(pr->cgm[i], path)) return false;
        }
        fn_index[i] = nfns;
        fns[nfns++] = program_fn_names[i];
    }
    char *json = rt_program_to_json(&pr->p, fn_index);
    snprintf(path, sizeof path, "%s/%s.program.o", outdir, s->name);
    bool ok = cg_write_program_object(path, json, fns, nfns, co);
    free(json);
    if (!ok) return false;
    strncat(parts, " ", nparts - strlen(parts) - 1);
    strncat(parts, path, nparts - strlen(parts) - 1);
    /* one relocatable object of everything (the host's ld: not for another
       architecture, whose objects stay apart), then the trainer */
    if (!foreign) {
        snprintf(cmd, sizeof cmd, "ld -r -o '%s/%s.o'%s && rm -f%s", outdir, s->name, parts, parts);
        if (run_cmd(cmd) != 0) {
            fprintf(stderr, "rrc compile: combining the objects failed: %s\n", cmd);
            return false;
        }
    }
    snprintf(path, sizeof path, "%s/%s.h", outdir, s->name);
    return write_header(path, pr);
}

/* Phase 5: the trainer, linked with the runtime library. */
static bool link_trainer(const char *outdir, const char *name) {
    char rtdir[1024], path[1100], cmd[8192];
    driver_runtime_dir(rtdir, sizeof rtdir);
    snprintf(path, sizeof path, "%s/librrt.a", rtdir);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "rrc compile: the runtime library %s is missing (build rrc with make, or set RRC_RUNTIME_DIR)\n", path);
        return false;
    }
    snprintf(cmd, sizeof cmd,
             "cc -pthread %s -o '%s/%s-train.tmp' '%s/%s.o' '%s/rrc_trainer_main.o' '%s/librrt.a' -ljansson -lz -lpng -ljpeg"
             " -lopenblas -lm && mv '%s/%s-train.tmp' '%s/%s-train'",
             RRC_LINK_SAN, outdir, name, outdir, name, rtdir, rtdir, outdir, name, outdir, name);
    if (run_cmd(cmd) != 0) {
        fprintf(stderr, "rrc compile: linking the trainer failed: %s\n", cmd);
        return false;
    }
    return true;
}

int cmd_compile(int argc, char **argv) {
    CompileOpts c;
    int status = parse_flags(&c, argc, argv);
    if (status >= 0) return status;
    CgOptions co = {.debug = rrc_env_debug()};
    Target target;
    co.target = driver_target("compile", c.cpu, c.triple, c.features, false, &target);
    c.pipe.target = co.target;
    char tdesc[512];
    target_describe(co.target, tdesc, sizeof tdesc);
    if (rrc_env_debug() < 1) printf("rrc: target %s\n", tdesc);
    bool foreign = target_foreign(co.target);
    if (foreign && !c.emit_obj) {
        fprintf(stderr, "rrc compile: code for %s (%s) cannot run on this %s host: a trainer cannot be linked here; "
                "add --emit-obj for the objects\n", co.target->cpu, co.target->triple, target_host()->triple);
        return EXIT_USAGE;
    }
    double t0 = (double)clock() / CLOCKS_PER_SEC, w0 = wall_seconds();
    Arena arena = {0};
    Spec *s = driver_load_spec("compile", c.spec, &c.ov, &arena);
    if (!c.data) c.data = s->data;
    int64_t n = train_size_of(&c, s);
    /* phase 3: the output directory and the build */
    char outdir[1024];
    if (c.dir) snprintf(outdir, sizeof outdir, "%s", c.dir);
    else {
        mkdir("generated", 0777);
        snprintf(outdir, sizeof outdir, "generated/%s", s->name);
    }
    if (mkdir(outdir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "rrc compile: cannot create %s: %s\n", outdir, strerror(errno));
        arena_free(&arena);
        return EXIT_USAGE;
    }
    Program pr = {.aot = true, .pipe = c.pipe};
    int rc = EXIT_USAGE;
    char parts[4096];
    bool built = c.supervised ? program_build_supervised(&pr, s, c.classes, n, 256, &co) : program_build(&pr, s, n, 256, &co);
    if (!built || !emit_objects(&c, &pr, s, outdir, foreign, &co, parts, sizeof parts)) goto done;
    if (c.emit_obj) {
        printf("rrc: compiled %s for %s in %.2f s: %s%s%s/%s.h\n", s->name, co.target->cpu, wall_seconds() - w0,
               foreign ? parts + 1 : "", foreign ? " and " : "", outdir, s->name);
        if (!foreign) printf("rrc: object %s/%s.o\n", outdir, s->name);
        rc = 0;
        goto done;
    }
    if (!link_trainer(outdir, s->name)) goto done;
    double t1 = (double)clock() / CLOCKS_PER_SEC;
    int64_t peak = 0;
    for (int r = 0; r < RT_NREGIONS; r++) peak += pr.p.train_full->region_bytes[r];
    printf("rrc: compiled %s (%s, K=%d, B=%d%s) in %.2f s (%.2f s of CPU): %s/%s-train; peak step memory %.1f MiB "
           "(scratch %.1f MiB)\n",
           s->name, c.supervised ? "supervised" : "relational", pr.p.K, pr.p.batch, pr.p.train_last ? ", + last batch" : "",
           wall_seconds() - w0, t1 - t0,
           outdir, s->name, (double)peak / (1 << 20), (double)pr.p.train_full->region_bytes[RT_REGION_SCRATCH] / (1 << 20));
    rc = 0;
done:
    program_free(&pr);
    arena_free(&arena);
    return rc;
}
