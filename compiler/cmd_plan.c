/*
** cmd_plan.c: `rrc plan SPEC`: what a training step will cost at given K
** and B, from the op table's cost rules and the memory plan, without
** running the step:
**   - FLOPs and bytes moved, summed over the kernels the step runs (a
**     fused kernel counts its members), split into backbone (linear in K)
**     and relation head (pairs: K^2);
**   - the peak memory of the step's planned regions (not process RSS);
**   - a time per step: per kernel the larger of its FLOPs at this
**     machine's convolution rate and its bytes at its memory bandwidth
**     (a roofline), the rates measured once by `rrc plan --calibrate` and
**     kept beside the compile cache. It is an estimate; how far it is from
**     measured steps is for `make bench` to report.
*/
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "cache.h"
#include "codegen/cg.h"
#include "driver.h"
#include "frontend/lower.h"
#include "rt_file.h"
#include "rt_kernels.h"

typedef struct Rates {
    double gflops;      /* one thread's convolution (im2col + sgemm) */
    double gbytes;      /* one thread's streaming bandwidth */
} Rates;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ROOT/plan-rates.txt, ROOT made; false when the cache is off. */
static bool rates_path(char *buf, size_t n, bool make) {
    char root[1024];
    if (!cache_root(root, sizeof root) || (make && !cache_mkdirs(root))) return false;
    return snprintf(buf, n, "%s/plan-rates.txt", root) < (int)n;
}

/* Best of several runs on one thread: a 3x3 convolution of a ResNet stage
   (16 images, 32 -> 32 channels, 16x16: the runtime's im2col + sgemm, the
   rate real layers get rather than a large sgemm's), and an add over
   3 x 16 MiB. */
static Rates calibrate(void) {
    const int64_t N = 16, C = 32, H = 16, W = 16, O = 32, E = 4 << 20;
    int64_t nx = N * C * H * W, nw = O * C * 9, ny = N * O * H * W, nws = rt_k_conv2d_ws(N, C, H, W, O, 3, 3, 1, 1, H, W);
    float *x = calloc((size_t)nx, 4), *w = calloc((size_t)nw, 4), *y = calloc((size_t)ny, 4), *ws = calloc((size_t)nws, 4);
    float *p = calloc((size_t)E, 4), *q = calloc((size_t)E, 4), *z = calloc((size_t)E, 4);
    if (!x || !w || !y || !ws || !p || !q || !z) {
        fprintf(stderr, "rrc plan: out of memory while calibrating\n");
        exit(EXIT_USAGE);
    }
    for (int64_t i = 0; i < nx; i++) x[i] = (float)(i % 7) * 0.125f;
    for (int64_t i = 0; i < nw; i++) w[i] = (float)(i % 5) * 0.125f;
    for (int64_t i = 0; i < E; i++) p[i] = q[i] = (float)(i % 5);
    openblas_set_num_threads(1);   /* one thread's rate, as the steps run their products */
    double best_conv = INFINITY, best_add = INFINITY;
    for (int r = 0; r < 7; r++) {
        double t0 = now();
        rt_k_conv2d(y, x, w, N, C, H, W, O, 3, 3, 1, 1, H, W, ws);
        double t1 = now();
        rt_k_add(z, p, q, E);
        double t2 = now();
        best_conv = fmin(best_conv, t1 - t0);
        best_add = fmin(best_add, t2 - t1);
    }
    Rates r = {2.0 * (double)(ny * C * 9) / best_conv / 1e9, 12.0 * (double)E / best_add / 1e9};
    free(x); free(w); free(y); free(ws); free(p); free(q); free(z);
    return r;
}

static bool load_rates(Rates *r) {
    char path[1200];
    if (!rates_path(path, sizeof path, false)) return false;
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool ok = fscanf(f, "gflops %lf\ngbytes %lf", &r->gflops, &r->gbytes) == 2 && r->gflops > 0 && r->gbytes > 0;
    fclose(f);
    return ok;
}

typedef struct Plan {
    double flops[2], bytes[2], seconds[2];   /* [0] backbone, [1] relation head and loss */
    int64_t peak, scratch;
} Plan;

static bool starts(const char *s, const char *p) { return s && strncmp(s, p, strlen(p)) == 0; }

static bool plan_at(const Spec *s, int K, int B, const Target *t, const Rates *r, Plan *pl) {
    Arena arena = {0};
    Diag d = {0};
    Spec copy = *s;
    copy.K = K;
    Graph *g = lower_train(&copy, B, s->in_c, s->in_h, s->in_w, &arena, &d);
    PipelineOpts po = {.target = t, .caps = cg_caps()};
    if (!g || !pipeline_run(g, &d, &po)) {
        arena_free(&arena);
        return false;
    }
    *pl = (Plan){0};
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (!node_emits(n)) continue;
        Cost c = {0, 0};
        const Kernel *k = n->kernel;
        for (int j = 0; j < (k ? k->nmembers : 1); j++) {
            const Node *m = k ? k->members[j] : n;
            Cost cj = op_table[m->op].cost(m);
            c.flops += cj.flops;
            c.bytes += cj.bytes;
        }
        const char *who = k ? k->members[0]->name : n->name;
        int part = starts(who, "backbone") ? 0 : 1;
        pl->flops[part] += c.flops;
        pl->bytes[part] += c.bytes;
        pl->seconds[part] += fmax(c.flops / (r->gflops * 1e9), c.bytes / (r->gbytes * 1e9));
    }
    for (int q = 0; q < RT_NREGIONS; q++) pl->peak += g->region_bytes[q];
    pl->scratch = g->region_bytes[RT_REGION_SCRATCH];
    arena_free(&arena);
    return true;
}

static void usage(FILE *f) {
    driver_usage(f, RRC_CMD_PLAN, "SPEC [--K K] [--batch B] [--threads N] [--sweep K=2,4,8] [--cpu NAME]\n"
                                  "       rrc plan --calibrate",
                 "Predicts a training step's cost without running it: FLOPs and bytes (the op table's\n"
                 "cost rules over the kernels the step runs; backbone and relation head apart), the peak\n"
                 "memory of its planned regions, and a time per step and images/s from this machine's\n"
                 "calibrated rates (a convolution's FLOP/s, memory bandwidth: `rrc plan --calibrate`, kept beside\n"
                 "the compile cache; made on first use) as a roofline per kernel, divided over N threads.\n");
}

/* --plot: the rows as a PNG (ms/step and images/s against K), through a
   gnuplot script FILE.gp kept beside it; the data is inline, so the script
   remakes the plot alone. gnuplot draws under a temporary name renamed when
   it succeeds: no half a picture. */
static bool plot_rows(const char *png, const char *name, int threads, const int *Ks, const double *ms, const double *ips, int n) {
    size_t len = strlen(png);
    if (len < 5 || strcmp(png + len - 4, ".png") != 0 || strpbrk(png, "'\n")) {
        fprintf(stderr, "rrc plan: --plot needs a FILE.png without quotes (got \"%s\")\n", png);
        return false;
    }
    char gp[4200], tmp[4300], err[4400], setout[4400];
    snprintf(gp, sizeof gp, "%.*s.gp", (int)(len - 4), png);
    if (!rt_tmp_path(tmp, sizeof tmp, png)) {
        fprintf(stderr, "rrc plan: %s: name too long\n", png);
        return false;
    }
    char *text = xmalloc(8192 + (size_t)n * 128);
    int k = snprintf(text, 8192,
                     "# made by rrc plan: the predicted step of %s on %d thread%s\n"
                     "if (!exists('out')) out = '%s'\n"
                     "set terminal png size 1000,420\n"
                     "set output out\n"
                     "set multiplot layout 1,2\n"
                     "set xlabel 'K (views per image)'\n"
                     "set logscale x 2\n"
                     "set key off\n"
                     "set grid\n"
                     "$rows << EOD\n",
                     name, threads, threads > 1 ? "s" : "", png);
    if (k < 0 || k >= 8192) {
        free(text);
        fprintf(stderr, "rrc plan: %s: name too long\n", png);
        return false;
    }
    for (int i = 0; i < n; i++) k += sprintf(text + k, "%d %.6g %.6g\n", Ks[i], ms[i], ips[i]);
    k += sprintf(text + k,
                 "EOD\n"
                 "set title 'predicted time per step (ms)'\n"
                 "plot $rows using 1:2 with linespoints pt 7\n"
                 "set title 'predicted backbone images/s'\n"
                 "plot $rows using 1:3 with linespoints pt 7\n"
                 "unset multiplot\n"
                 "set output\n");
    bool ok = rt_write_atomic(gp, text, (size_t)k, err, sizeof err) == 0;
    free(text);
    if (!ok) {
        fprintf(stderr, "rrc plan: %s\n", err);
        return false;
    }
    snprintf(setout, sizeof setout, "out = '%s'", tmp);
    const char *argv[] = {"gnuplot", "-e", setout, gp, NULL};
    int rc = rt_run_bounded(argv, 60.0);
    if (rc == 0 && rename(tmp, png) == 0) {
        printf("rrc plan: wrote %s (script %s)\n", png, gp);
        return true;
    }
    unlink(tmp);
    if (rc == 127) fprintf(stderr, "rrc plan: gnuplot not found; no %s (apt-get install gnuplot-nox; then gnuplot %s)\n", png, gp);
    else fprintf(stderr, "rrc plan: gnuplot failed (exit %d); no %s (script %s)\n", rc, png, gp);
    return false;
}

int cmd_plan(int argc, char **argv) {
    rt_args a;
    int st = driver_parse(RRC_CMD_PLAN, argc, argv, 1, usage, &a);
    if (st >= 0) return st;
    const char *spec = a.npos ? a.pos[0] : NULL, *cpu = NULL, *sweep = NULL, *plot = NULL;
    SpecOverrides ov = {.seed = -1};
    int threads = 1;
    bool calib = false;
    for (int i = 0; i < a.nopts; i++) {
        const rt_opt *o = &a.opts[i];
        switch (o->flag->id) {
        case RRC_F_K: ov.K = (int)o->ival; break;
        case RRC_F_BATCH: ov.batch = (int)o->ival; break;
        case RRC_F_THREADS: threads = (int)o->ival; break;
        case RRC_F_SWEEP: sweep = o->value; break;
        case RRC_F_PLOT: plot = o->value; break;
        case RRC_F_CPU: cpu = o->value; break;
        case RRC_F_CALIBRATE: calib = true; break;
        default: break;
        }
    }
    rt_args_free(&a);   /* the values point into argv */
    int Ks[16], nK = 0;
    if (sweep) {
        const char *p = sweep;
        if (strncmp(p, "K=", 2) != 0) { fprintf(stderr, "rrc plan: --sweep must be K=2,4,... (got \"%s\")\n", sweep); return EXIT_USAGE; }
        for (p += 2; *p && nK < 16;) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 2 || v > 1024 || (*end && *end != ',')) {
                fprintf(stderr, "rrc plan: --sweep must be K=2,4,... with K in [2, 1024] (got \"%s\")\n", sweep);
                return EXIT_USAGE;
            }
            Ks[nK++] = (int)v;
            p = *end ? end + 1 : end;
        }
    }
    Rates r;
    char path[1200];
    if (calib || !load_rates(&r)) {
        r = calibrate();
        char text[128], err[1400];
        int k = snprintf(text, sizeof text, "gflops %.3f\ngbytes %.3f\n", r.gflops, r.gbytes);
        if (rates_path(path, sizeof path, true) && rt_write_atomic(path, text, (size_t)k, err, sizeof err) == 0)
            printf("rrc plan: calibrated this machine: convolution %.1f GFLOP/s, memory %.1f GB/s on one thread (%s)\n", r.gflops,
                   r.gbytes, path);
        else
            printf("rrc plan: calibrated this machine: convolution %.1f GFLOP/s, memory %.1f GB/s (not kept)\n", r.gflops, r.gbytes);
    }
    if (!spec) {
        if (calib) return 0;
        usage(stderr);
        return EXIT_USAGE;
    }
    Target target;
    const Target *t = driver_target("plan", cpu, NULL, NULL, false, &target);
    Arena arena = {0};
    Spec *s = driver_load_spec("plan", spec, &ov, &arena);
    bool rel = s->method.kind == METHOD_RELATIONAL;
    if (sweep && !rel) {
        fprintf(stderr, "rrc plan: --sweep varies relational reasoning's K, but %s trains %s\n", s->name,
                method_name(s->method.kind));
        arena_free(&arena);
        return EXIT_USAGE;
    }
    if (!nK) Ks[nK++] = s->K;
    printf("rrc plan %s: B=%d, %d thread%s, input %dx%dx%d (rates: convolution %.1f GFLOP/s, memory %.1f GB/s per thread)\n", s->name, s->batch,
           threads, threads > 1 ? "s" : "", s->in_c, s->in_h, s->in_w, r.gflops, r.gbytes);
    printf("  %4s %11s %11s %11s %11s %10s %10s %9s %10s\n", "K", "GFLOP", "backbone", rel ? "relation" : "head", "GB moved",
           "peak MiB", "scratch", "ms/step", "images/s");
    int rc = 0;
    double ms[16], ips[16];
    for (int i = 0; i < nK; i++) {
        Plan pl;
        if (!plan_at(s, Ks[i], s->batch, t, &r, &pl)) { rc = EXIT_BADSPEC; break; }
        double sec = (pl.seconds[0] + pl.seconds[1]) / threads;
        /* images through the backbone: K views, RotationNet's 4 rotations of each */
        int views = rel ? Ks[i] : spec_backbone_views(s);
        ms[i] = 1e3 * sec;
        ips[i] = (double)views * s->batch / sec;
        printf("  %4d %11.2f %11.2f %11.2f %11.3f %10.1f %10.1f %9.1f %10.0f\n", Ks[i], (pl.flops[0] + pl.flops[1]) / 1e9,
               pl.flops[0] / 1e9, pl.flops[1] / 1e9, (pl.bytes[0] + pl.bytes[1]) / 1e9, (double)pl.peak / (1 << 20),
               (double)pl.scratch / (1 << 20), ms[i], ips[i]);
    }
    if (rc == 0 && plot && !plot_rows(plot, s->name, threads, Ks, ms, ips, nK)) rc = EXIT_USAGE;
    arena_free(&arena);
    return rc;
}
