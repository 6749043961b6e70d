/*
** cmd_plan.c: `rrc plan SPEC`: what a training step will cost at given K
** and B, from the op table's cost rules and the memory plan, without
** running the step:
**   - FLOPs and bytes moved, summed over the kernels the step runs (a
**     fused kernel counts its members), split into backbone (linear in K)
**     and relation head (pairs: K^2);
**   - the peak memory of the step's planned regions (not process RSS);
**   - a time per step: each kernel's cost at the rate this machine showed
**     for kernels of its class (op, fusion kind, and for a convolution its
**     direct or im2col code, window and stride), plus the Adam update at the
**     streaming bandwidth. `rrc plan --calibrate` measures the rates once
**     (kept beside the compile cache): it JIT-compiles bundled specs (conv4
**     and resnet8 at K=4, conv4 at K=16; B=64), profiles their steps on 1
**     thread and on all cores, and keeps per class and run the FLOPs,
**     bytes, seconds and calls (a point); a kernel takes the rate of its
**     class's point nearest its size (bytes a call). A class the
**     calibration did not see falls back to the rate of all its
**     compute-bound points or all its memory-bound ones, whichever bounds
**     the kernel more. How far the estimate is from measured steps is
**     for `make bench` (BENCH_CASES=plan) to report.
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
#include "codegen/cg_util.h"
#include "driver.h"
#include "engine.h"
#include "frontend/lower.h"
#include "rt_file.h"
#include "rt_kernels.h"
#include "rt_pool.h"
#include "rt_prof.h"
#include "rt_rng.h"

/* What the calibration saw of one class of kernels at one thread count:
   their FLOPs, bytes and seconds over the profiled steps. */
typedef struct RateClass {
    char key[96];
    double flops, bytes, seconds, calls;
} RateClass;

#define MAX_CLASSES 192
#define RATES_VERSION 3
#define CALIB_ROUNDS 3
#define CALIB_RETRIES 12   /* disturbed rounds measured again, per spec */
static int calib_disturbed;   /* rounds kept though disturbed: the retries ran out */

typedef struct RateSet {
    int threads;
    int n;
    RateClass c[MAX_CLASSES];
} RateSet;

typedef struct Rates {
    double gbytes;      /* one thread's streaming bandwidth (an add over 3 x 16 MiB): the Adam update */
    int nsets;
    RateSet set[2];     /* 1 thread, and all cores when there are more */
} Rates;

/* Cores' worth of CPU that others took while this process ran a span:
   /proc/stat's busy and steal ticks minus this process's own CPU time,
   over the wall time. A calibration round with more than 0.1 is measured
   again: on a shared machine a round can run 30% slow. */
typedef struct Load {
    double busy, steal, own, wall;
} Load;

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static Load load_now(void) {
    Load l = {0};
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    if (f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
        double hz = (double)sysconf(_SC_CLK_TCK);
        l.busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
        l.steal = (double)v[7] / hz;
    }
    if (f) fclose(f);
    l.own = cpu_seconds();
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    l.wall = (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
    return l;
}

/* others' cores over [a, b] (0 when /proc/stat cannot be read) */
static double others(Load a, Load b) {
    double wall = b.wall - a.wall;
    if (wall <= 0 || (a.busy == 0 && b.busy == 0)) return 0;
    return fmax(0, (b.busy - a.busy) - (b.own - a.own)) / wall + (b.steal - a.steal) / wall;
}

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

static bool conv_op(int op) { return op == OP_CONV2D || op == OP_CONV2D_DX || op == OP_CONV2D_DW; }

/* The class of the kernel node n runs (its kernel's, if fused): the op of
   its root and the fusion kind; for a convolution also direct or im2col,
   the window and the stride, which decide its code and so its rate. */
static void kernel_class(const Node *n, char *buf, size_t len) {
    const Kernel *k = n->kernel;
    const Node *r = k ? k->members[0] : n;
    int m = snprintf(buf, len, "%s", op_table[r->op].name);
    if (conv_op(r->op)) {
        const Node *w = r->op == OP_CONV2D_DW ? r : r->in[1];
        m += snprintf(buf + m, len - (size_t)m, ".%s.%lldx%lld.s%lld", r->direct ? "direct" : "im2col", (long long)w->dim[2],
                      (long long)w->dim[3], (long long)r->ia[0]);
    }
    if (k) snprintf(buf + m, len - (size_t)m, ".%s", kernel_kind_name(k->kind));
}

static RateClass *find_class(RateSet *rs, const char *key, bool add) {
    for (int i = 0; i < rs->n; i++)
        if (!strcmp(rs->c[i].key, key)) return &rs->c[i];
    if (!add || rs->n == MAX_CLASSES) return NULL;
    RateClass *c = &rs->c[rs->n++];
    *c = (RateClass){0};
    snprintf(c->key, sizeof c->key, "%s", key);
    return c;
}

/* Profiles CALIB_ROUNDS rounds of `steps` steps of a bundled spec's
   training step (at K, B=64, JIT, this thread count) and adds each kernel
   class's median round to rs as a point of that class (its rate at its
   size). */
static bool calibrate_spec(const char *name, int K, int steps, RateSet *rs) {
    Arena arena = {0};
    Diag d = {0};
    SpecOverrides ov = {.seed = -1, .K = K, .batch = 64};
    Spec *s = driver_load_spec("plan", name, &ov, &arena);
    Graph *g = lower_train(s, s->batch, s->in_c, s->in_h, s->in_w, &arena, &d);
    PipelineOpts po = {.target = NULL, .caps = cg_caps()};
    if (!g || !pipeline_run(g, &d, &po)) {
        arena_free(&arena);
        return false;
    }
    CgOptions co = {.debug = 0, .target = NULL};
    Engine e;
    if (!engine_init(&e, g, ENGINE_JIT, &co)) {
        arena_free(&arena);
        return false;
    }
    bool initialised;
    float **pv = driver_load_params("plan", g, NULL, 1, &initialised);
    if (!pv) {
        engine_free(&e);
        arena_free(&arena);
        return false;
    }
    rt_stream rng;
    rt_stream_init(&rng, 1, RT_DOMAIN_TEST, 78, 0);
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        if (n->op == OP_INPUT) {   /* views in [-1, 1) */
            int64_t m = node_numel(n);
            pv[i] = xmalloc((size_t)m * sizeof **pv);
            for (int64_t j = 0; j < m; j++) pv[i][j] = (float)(2 * rt_stream_uniform(&rng) - 1);
        }
        if (pv[i]) engine_set(&e, n, pv[i]);
    }
    for (int w = 0; w < 3; w++) engine_run(&e);   /* warm: pages, caches, the pool's scratch */
    /* the emitting nodes, in the order their sites are first called */
    const Node *emit[4096];
    int ne = 0;
    for (int i = 0; i < g->nnodes && ne < 4096; i++)
        if (node_emits(g->nodes[i])) emit[ne++] = g->nodes[i];
    /* rounds of `steps` steps; each class keeps its median round: a round
       slowed by another process or the hypervisor does not count, and
       neither does one luckier than the steps a user will run (the fastest
       round per class predicts short: docs/DECISIONS.md) */
    static RateSet rounds[CALIB_ROUNDS];
    bool ok = true;
    for (int round = 0, tries = 0; round < CALIB_ROUNDS && ok; round++) {
        RateSet *cur_p = &rounds[round];
        *cur_p = (RateSet){0};
        rt_prof_start();
        Load l0 = load_now();
        for (int t = 0; t < steps; t++) {
            rt_prof_step_begin();
            engine_run(&e);
            rt_prof_step_end();
        }
        double other = others(l0, load_now());
        if (other > 0.1 && ++tries <= CALIB_RETRIES) {   /* disturbed: again */
            rt_prof_stop();
            round--;
            continue;
        }
        if (other > 0.1) calib_disturbed++;
        /* the sites, linked as first called: the emitting nodes in reverse order */
        int at = ne;
        for (const rt_prof_site *site = rt_prof_sites(); site && ok; site = site->next) {
            char label[256], key[96];
            const Node *n = --at >= 0 ? emit[at] : NULL;
            if (!n) { ok = false; break; }
            cg_node_label(n->kernel ? n->kernel->members[0] : n, label, sizeof label);
            const char *body = strstr(site->name, ": ");
            body = body ? body + 2 : site->name;
            if (strncmp(body, label, strlen(label)) != 0) ok = false;   /* not the node expected: no guess */
            kernel_class(n, key, sizeof key);
            Cost c = node_kernel_cost(n);
            if (rrc_env_debug() >= 2)
                fprintf(stderr, "rrc plan: %s: %s -> %s, %lld calls, %.3f ms, %.3g flops a call\n", name, site->name, key,
                        (long long)site->calls, 1e-6 * (double)site->ns, c.flops);
            RateClass *rc = find_class(cur_p, key, true);
            if (rc && site->calls > 0) {
                rc->calls += (double)site->calls;
                rc->flops += c.flops * (double)site->calls;
                rc->bytes += c.bytes * (double)site->calls;
                rc->seconds += 1e-9 * (double)site->ns;
            }
        }
        if (at != 0) ok = false;
        rt_prof_stop();
    }
    for (int i = 0; ok && i < rounds[0].n && rs->n < MAX_CLASSES; i++) {   /* each class's median round: a point of its own */
        const RateClass *by[CALIB_ROUNDS];
        for (int q = 0; q < CALIB_ROUNDS; q++) {
            by[q] = find_class(&rounds[q], rounds[0].c[i].key, false);
            if (!by[q]) by[q] = &rounds[0].c[i];
        }
        for (int a = 1; a < CALIB_ROUNDS; a++)   /* sorted by seconds */
            for (int b = a; b > 0 && by[b]->seconds < by[b - 1]->seconds; b--) {
                const RateClass *t = by[b];
                by[b] = by[b - 1];
                by[b - 1] = t;
            }
        rs->c[rs->n++] = *by[CALIB_ROUNDS / 2];
    }
    if (!ok) fprintf(stderr, "rrc plan: internal error: %s's profile does not match its kernels; calibration incomplete\n", name);
    driver_free_params(g, pv);
    engine_free(&e);
    arena_free(&arena);
    return ok;
}

/* The streaming bandwidth of one thread: best of several adds over
   3 x 16 MiB. */
static double stream_gbytes(void) {
    const int64_t E = 4 << 20;
    float *p = calloc((size_t)E, 4), *q = calloc((size_t)E, 4), *z = calloc((size_t)E, 4);
    if (!p || !q || !z) {
        fprintf(stderr, "rrc plan: out of memory while calibrating\n");
        exit(EXIT_USAGE);
    }
    for (int64_t i = 0; i < E; i++) p[i] = q[i] = (float)(i % 5);
    double best = INFINITY;
    for (int r = 0; r < 7; r++) {
        double t0 = now();
        rt_k_add(z, p, q, E);
        best = fmin(best, now() - t0);
    }
    free(p); free(q); free(z);
    return 12.0 * (double)E / best / 1e9;
}

/* The calibration's steps: conv4 and resnet8 at K=4 (their backbones'
   layers), and conv4 at K=16, whose relation head is a third of its step
   and 16 times K=4's: a kernel is predicted from the point of its class
   nearest its own size, so large heads and large memory-bound kernels get
   the rates of large ones. */
static const struct { const char *spec; int K; } calib_runs[] = {{"conv4", 4}, {"resnet8", 4}, {"conv4", 16}};

static bool calibrate(Rates *r) {
    *r = (Rates){0};
    openblas_set_num_threads(1);   /* as the trainers run their products */
    r->gbytes = stream_gbytes();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int counts[2] = {1, cores > 1 ? (int)(cores < 64 ? cores : 64) : 0};
    bool ok = true;
    for (int t = 0; t < 2 && ok; t++) {
        if (!counts[t]) continue;
        RateSet *rs = &r->set[r->nsets++];
        rs->threads = counts[t];
        rt_pool_init(counts[t]);
        for (size_t i = 0; i < sizeof calib_runs / sizeof *calib_runs && ok; i++)
            ok = calibrate_spec(calib_runs[i].spec, calib_runs[i].K, 2, rs);
    }
    rt_pool_shutdown();
    return ok;
}

static bool save_rates(const Rates *r, char *path, size_t n) {
    if (!rates_path(path, n, true)) return false;
    size_t cap = 4096 + (size_t)(r->nsets * MAX_CLASSES) * 200, k = 0;
    char *text = xmalloc(cap), err[1400];
    k += (size_t)snprintf(text + k, cap - k, "rrc-plan-rates %d\ngbytes %.6g\nsets %d\n", RATES_VERSION, r->gbytes, r->nsets);
    for (int i = 0; i < r->nsets; i++) {
        const RateSet *rs = &r->set[i];
        k += (size_t)snprintf(text + k, cap - k, "threads %d classes %d\n", rs->threads, rs->n);
        for (int j = 0; j < rs->n; j++)
            k += (size_t)snprintf(text + k, cap - k, "%s %.9g %.9g %.9g %.9g\n", rs->c[j].key, rs->c[j].flops, rs->c[j].bytes,
                                  rs->c[j].seconds, rs->c[j].calls);
    }
    bool ok = rt_write_atomic(path, text, k, err, sizeof err) == 0;
    free(text);
    return ok;
}

/* false for a missing file, or one of another version or unreadable: then
   the rates are measured again */
static bool load_rates(Rates *r) {
    char path[1200];
    *r = (Rates){0};
    if (!rates_path(path, sizeof path, false)) return false;
    FILE *f = fopen(path, "r");
    if (!f) return false;
    int version = 0;
    bool ok = fscanf(f, "rrc-plan-rates %d\ngbytes %lf\nsets %d\n", &version, &r->gbytes, &r->nsets) == 3 &&
              version == RATES_VERSION && r->gbytes > 0 && r->nsets >= 1 && r->nsets <= 2;
    for (int i = 0; ok && i < r->nsets; i++) {
        RateSet *rs = &r->set[i];
        ok = fscanf(f, "threads %d classes %d\n", &rs->threads, &rs->n) == 2 && rs->threads >= 1 && rs->n >= 1 &&
             rs->n <= MAX_CLASSES;
        for (int j = 0; ok && j < rs->n; j++) {
            RateClass *c = &rs->c[j];
            ok = fscanf(f, "%95s %lf %lf %lf %lf\n", c->key, &c->flops, &c->bytes, &c->seconds, &c->calls) == 5 && c->seconds > 0 &&
                 c->calls >= 1;
        }
    }
    fclose(f);
    return ok;
}

/* The calibrated set for a thread count: its own, or one thread's
   divided by the count (*scale). */
static const RateSet *rates_for(const Rates *r, int threads, double *scale) {
    for (int i = 0; i < r->nsets; i++)
        if (r->set[i].threads == threads) {
            *scale = 1;
            return &r->set[i];
        }
    *scale = 1.0 / threads;
    return &r->set[0];
}

/* A class's work: its FLOPs if the calibration found it compute-bound (4
   FLOPs a byte or more), else its bytes. */
static bool compute_bound(const RateClass *c) { return c->flops >= 4 * c->bytes; }

/* The rates of a set in two figures: its compute-bound points' FLOP/s and
   its memory-bound points' bytes/s, in G. */
static void summary(const RateSet *rs, double *gflops, double *gbytes) {
    double fl = 0, fs = 0, by = 0, bs = 0;
    for (int i = 0; i < rs->n; i++) {
        const RateClass *x = &rs->c[i];
        if (compute_bound(x)) fl += x->flops, fs += x->seconds;
        else by += x->bytes, bs += x->seconds;
    }
    *gflops = fs > 0 ? fl / fs / 1e9 : 0;
    *gbytes = bs > 0 ? by / bs / 1e9 : 0;
}

/* Seconds of the kernel node n runs at the rates of rs. */
static double kernel_seconds(const Node *n, const RateSet *rs) {
    char key[96];
    kernel_class(n, key, sizeof key);
    Cost c = node_kernel_cost(n);
    /* the point of the class whose kernels were nearest this one in bytes a call */
    const RateClass *rc = NULL;
    double best = INFINITY;
    for (int i = 0; i < rs->n; i++) {
        const RateClass *x = &rs->c[i];
        double dist = fabs(log(fmax(x->bytes / x->calls, 1) / fmax(c.bytes, 1)));
        if (!strcmp(x->key, key) && dist < best) best = dist, rc = x;
    }
    if (rc) return compute_bound(rc) ? rc->seconds * c.flops / fmax(rc->flops, 1) : rc->seconds * c.bytes / fmax(rc->bytes, 1);
    /* unseen: every compute-bound point's rate, or every memory-bound
       point's bandwidth, whichever bounds this kernel more */
    double gf, gb;
    summary(rs, &gf, &gb);
    return fmax(gf > 0 ? c.flops / (gf * 1e9) : 0, gb > 0 ? c.bytes / (gb * 1e9) : 0);
}

typedef struct Plan {
    double flops[2], bytes[2], seconds[2];   /* [0] backbone, [1] relation head and loss */
    double update;                           /* the Adam update's seconds */
    int64_t peak, scratch;
    int64_t optim;                           /* the optimizer's state beside the regions */
} Plan;

static bool starts(const char *s, const char *p) { return s && strncmp(s, p, strlen(p)) == 0; }

static bool plan_at(const Spec *s, int K, int B, const Target *t, const Rates *r, int threads, Plan *pl) {
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
    double scale;
    const RateSet *rs = rates_for(r, threads, &scale);
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (!node_emits(n)) continue;
        Cost c = node_kernel_cost(n);
        const char *who = n->kernel ? n->kernel->members[0]->name : n->name;
        int part = starts(who, "backbone") ? 0 : 1;
        pl->flops[part] += c.flops;
        pl->bytes[part] += c.bytes;
        double sec = scale * kernel_seconds(n, rs);
        pl->seconds[part] += sec;
        if (rrc_env_debug() >= 2) {
            char key[96];
            kernel_class(n, key, sizeof key);
            fprintf(stderr, "rrc plan: K=%d %s %s: %.3f ms\n", K, who ? who : "-", key, 1e3 * sec);
        }
    }
    /* Adam reads parameters, gradients and both moments, writes three:
       7 floats a parameter at one thread's streaming bandwidth */
    pl->update = 7.0 * (double)g->region_bytes[RT_REGION_PARAM] / (r->gbytes * 1e9);
    for (int q = 0; q < RT_NREGIONS; q++) pl->peak += g->region_bytes[q];
    pl->scratch = g->region_bytes[RT_REGION_SCRATCH];
    /* the trainer keeps the optimizer's state outside the regions: Adam's
       two moments a parameter, SGD's momentum buffer */
    int per = s->optim.kind == OPT_ADAM ? 2 : s->optim.momentum != 0 ? 1 : 0;
    pl->optim = per * g->region_bytes[RT_REGION_PARAM];
    arena_free(&arena);
    return true;
}

static void usage(FILE *f) {
    driver_usage(f, RRC_CMD_PLAN, "SPEC [--K K] [--batch B] [--threads N] [--input-shape CxHxW] [--sweep K=2,4,8] [--cpu NAME]\n"
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
        case RRC_F_INPUT_SHAPE: ov.input_shape = o->value; break;
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
        printf("rrc plan: calibrating this machine (profiled steps of conv4 and resnet8 at K=4, conv4 at K=16; B=64)...\n");
        fflush(stdout);
        double t0 = now();
        if (!calibrate(&r)) return EXIT_USAGE;
        bool kept = save_rates(&r, path, sizeof path);
        for (int i = 0; i < r.nsets; i++) {
            double gf, gb;
            summary(&r.set[i], &gf, &gb);
            printf("rrc plan: %d thread%s: %d points of kernel classes; convolutions %.1f GFLOP/s, memory-bound kernels %.1f GB/s\n",
                   r.set[i].threads, r.set[i].threads > 1 ? "s" : "", r.set[i].n, gf, gb);
        }
        printf("rrc plan: calibrated in %.1f s (%s%s)\n", now() - t0, kept ? "kept in " : "not kept", kept ? path : "");
        if (calib_disturbed)
            printf("rrc plan: warning: %d calibration round%s ran while other processes or the hypervisor took CPU; the "
                   "rates may be slow (rrc plan --calibrate on a quiet machine)\n", calib_disturbed, calib_disturbed > 1 ? "s" : "");
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
    double scale, gf, gb;
    const RateSet *rs = rates_for(&r, threads, &scale);
    summary(rs, &gf, &gb);
    printf("rrc plan %s: B=%d, %d thread%s, input %dx%dx%d (rates of %d thread%s%s: convolutions %.1f GFLOP/s, memory-bound %.1f GB/s)\n",
           s->name, s->batch, threads, threads > 1 ? "s" : "", s->in_c, s->in_h, s->in_w, rs->threads, rs->threads > 1 ? "s" : "",
           scale != 1 ? ", scaled" : "", gf, gb);
    printf("  %4s %11s %11s %11s %11s %10s %10s %10s %9s %10s\n", "K", "GFLOP", "backbone", rel ? "relation" : "head", "GB moved",
           "peak MiB", "optimizer", "scratch", "ms/step", "images/s");
    int rc = 0;
    double ms[16], ips[16];
    for (int i = 0; i < nK; i++) {
        Plan pl;
        if (!plan_at(s, Ks[i], s->batch, t, &r, threads, &pl)) { rc = EXIT_BADSPEC; break; }
        double sec = pl.seconds[0] + pl.seconds[1] + pl.update;
        /* images through the backbone: K views, RotationNet's 4 rotations of each */
        int views = rel ? Ks[i] : spec_backbone_views(s);
        ms[i] = 1e3 * sec;
        ips[i] = (double)views * s->batch / sec;
        printf("  %4d %11.2f %11.2f %11.2f %11.3f %10.1f %10.1f %10.1f %9.1f %10.0f\n", Ks[i], (pl.flops[0] + pl.flops[1]) / 1e9,
               pl.flops[0] / 1e9, pl.flops[1] / 1e9, (pl.bytes[0] + pl.bytes[1]) / 1e9, (double)pl.peak / (1 << 20),
               (double)pl.optim / (1 << 20), (double)pl.scratch / (1 << 20), ms[i], ips[i]);
    }
    if (rc == 0 && plot && !plot_rows(plot, s->name, threads, Ks, ms, ips, nK)) rc = EXIT_USAGE;
    arena_free(&arena);
    return rc;
}
