/*
** cmd_check.c: `rrc check SPEC`: are the gradients of a spec's training
** step right? At a small size (B = K = 3 by default), with seeded
** parameters and random views, in double precision on the reference
** interpreter:
**   1. every trainable tensor and the views: a random-direction check and
**      k sampled elements, central finite differences of the loss against
**      the step's gradients (the step is built to output the views' too);
**   2. every differentiable node of the forward graph on its own: its
**      backward rule against finite differences of that node alone, so a
**      wrong rule is named with its op and spec line;
**   3. the compiled step (JIT) against the interpreter by the f32 rule, or
**      by how far its outputs move at float's precision if more.
** A difference that the loss's own kink explains (a ReLU, max pooling or
** max aggregation crossed within the stencil) is reported as skipped: for
** a function piecewise smooth along the direction, the error a kink causes
** in the central difference is |f(+h) + f(-h) - 2 f(0)| / 2h, which a
** smooth function keeps near h |f''| / 2.
** Exit status: 0 all passed, 1 a check failed (or bad flags), 2 a bad spec.
*/
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/cg.h"
#include "driver.h"
#include "engine.h"
#include "frontend/lower.h"
#include "rt_rng.h"

#define FD_STEP 1e-6
#define FD_TOL(ana) (1e-6 * (1.0 + fabs(ana)))       /* the finite-difference rule of the tests */
#define F32_TOL(ref) (1e-6 + 1e-4 * (ref))            /* the f32 rule of the tests */
/* A step whose outputs move by d at float's precision (the interpreter
   storing every value in float, its inputs also nudged by a few ulps:
   NOISE_RUNS runs) may differ from the compiled step by more than the f32 rule: a deep
   network whose BatchNorm sees a few values per channel amplifies rounding,
   and one with millions of ReLU inputs flips some of them. The compiled step
   may differ by ROUND_SLACK d (its kernels also round inside their sums;
   docs/DECISIONS.md, "rrc check's compiled-step rule"). */
#define ROUND_SLACK 8.0
#define NOISE_RUNS 4
#define COMPILED_POINTS 3
#define NUDGE 0x1p-20   /* the inputs' relative nudge: 16 float ulps, about what a deep step's own rounding reaches */

typedef struct Check {
    int pass, fail, skip;
} Check;

/* One directional derivative: numeric from f(+h), f(-h) against analytic,
   `kink` the most a kink crossed within the stencil can err (the second
   difference over 2h). Returns 1 ok, 0 skipped (a kink explains it), -1
   failed; *err the absolute error. */
static int judge(double fp, double fm, double h, double ana, double kink, double *err) {
    double num = (fp - fm) / (2 * h);
    *err = fabs(num - ana);
    if (*err <= FD_TOL(ana)) return 1;
    return *err <= 1.01 * kink + FD_TOL(ana) ? 0 : -1;
}

/* ---- 1. the whole step ---- */

/* The stencil points are spread over worker threads, each with its own
   interpreter of the forward graph holding every value of the base point,
   so that a point recomputes only the nodes from the perturbed leaf's first
   reader on. The points and their random draws are made before any runs,
   so the results do not depend on the number of threads. */

typedef struct Tensor {
    const Node *x;
    const double *ana;   /* the step's gradient of x */
    double *d, norm;     /* the random direction, its norm */
    int64_t n;
    int nprobe, done;
} Tensor;

typedef struct Probe {   /* one stencil point: a direction or an element */
    Tensor *t;
    int64_t j;           /* -1: the direction */
    int r;               /* 1 ok, 0 skipped at a kink, -1 failed */
    double a, err;
} Probe;

typedef struct Step {
    Graph *fwd;
    double **vals;       /* leaf values of the base point, by fwd node id */
    const Node *loss;
    int *first;          /* by leaf id: the index of its first reader */
    double f0;
    Probe *probes;
    int nprobes;
    _Atomic int next;    /* the next probe a worker takes */
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* a tensor's probes all done */
} Step;

typedef struct Worker {
    Step *st;
    Interp it;
    double *buf;         /* the perturbed leaf's values */
    const Node *dirty;   /* the leaf bound to other values than the base's */
} Worker;

static int first_reader(const Graph *g, const Node *x) {
    for (int i = x->id + 1; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i]->nin; k++)
            if (g->nodes[i]->in[k] == x) return i;
    return g->nnodes;
}

/* The loss with leaf x at values v and every other leaf at the base */
static double worker_loss(Worker *w, const Node *x, const double *v) {
    Step *st = w->st;
    int first = st->first[x->id];
    if (w->dirty && w->dirty != x) {
        interp_bind(&w->it, w->dirty, st->vals[w->dirty->id]);
        if (st->first[w->dirty->id] < first) first = st->first[w->dirty->id];
    }
    interp_bind(&w->it, x, v);
    w->dirty = x;
    interp_run_from(&w->it, first);
    return interp_value(&w->it, st->loss)[0];
}

static void run_probe(Worker *w, Probe *p) {
    Tensor *t = p->t;
    const double *base = w->st->vals[t->x->id];
    double *v = w->buf, h = FD_STEP;
    memcpy(v, base, (size_t)t->n * sizeof *v);
    if (p->j < 0) {
        p->a = 0;
        for (int64_t q = 0; q < t->n; q++) p->a += t->ana[q] * t->d[q] / t->norm;
    } else {
        p->a = t->ana[p->j];
        h = FD_STEP * fmax(1.0, fabs(base[p->j]));
    }
    int64_t lo = p->j < 0 ? 0 : p->j, hi = p->j < 0 ? t->n : p->j + 1;
    p->r = -1;
    /* a failure is measured again at h/10 and h/100: crossing ReLU kinks
       deep in a network (many of them, on both sides, so the second
       difference need not show them) errs in proportion to h, a wrong rule
       does not */
    for (int refine = 0; refine < 3 && p->r < 0; refine++, h /= 10) {
        for (int64_t q = lo; q < hi; q++) v[q] = base[q] + h * (p->j < 0 ? t->d[q] / t->norm : 1);
        double fp = worker_loss(w, t->x, v);
        for (int64_t q = lo; q < hi; q++) v[q] = base[q] - h * (p->j < 0 ? t->d[q] / t->norm : 1);
        double fm = worker_loss(w, t->x, v);
        p->r = judge(fp, fm, h, p->a, fabs(fp + fm - 2 * w->st->f0) / (2 * h), &p->err);
    }
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    Step *st = w->st;
    for (int i; (i = atomic_fetch_add(&st->next, 1)) < st->nprobes;) {
        run_probe(w, &st->probes[i]);
        pthread_mutex_lock(&st->mu);
        st->probes[i].t->done++;
        pthread_cond_broadcast(&st->cv);
        pthread_mutex_unlock(&st->mu);
    }
    return NULL;
}

/* Prints tensor t's line once its probes are done. */
static void report_tensor(Step *st, Tensor *t, const Probe *p, Check *c) {
    pthread_mutex_lock(&st->mu);
    while (t->done < t->nprobe) pthread_cond_wait(&st->cv, &st->mu);
    pthread_mutex_unlock(&st->mu);
    double worst = 0, worst_rel = 0;
    int ok = 0, skipped = 0, failed = 0;
    for (int i = 0; i < t->nprobe; i++) {
        if (p[i].r > 0) ok++;
        else if (p[i].r == 0) skipped++;
        else failed++;
        if (p[i].r != 0) {
            worst = fmax(worst, p[i].err);
            worst_rel = fmax(worst_rel, p[i].err / fmax(fabs(p[i].a), 1e-12));
        }
    }
    printf("  %-44s %9lld %4d %4d  %9.2e %9.2e  %s\n", t->x->name, (long long)t->n, ok + failed, skipped, worst, worst_rel,
           failed ? "FAIL" : "ok");
    fflush(stdout);
    if (failed) c->fail++;
    else c->pass++;
    c->skip += skipped;
}

/* Part 1 over `threads` workers: tensor i is leaf xs[i] with gradient
   anas[i]; a direction and k sampled elements each (all of them below
   2k). */
static void check_tensors(Step *st, const Node **xs, const double **anas, int nt, int k, int threads, rt_stream *rng,
                          Check *c) {
    Tensor *ts = xcalloc((size_t)(nt ? nt : 1), sizeof *ts);
    int64_t maxn = 1;
    st->nprobes = 0;
    for (int i = 0; i < nt; i++) {
        ts[i].n = node_numel(xs[i]);
        st->nprobes += 1 + (int)(ts[i].n <= 2 * k ? ts[i].n : k);
        if (ts[i].n > maxn) maxn = ts[i].n;
    }
    st->probes = xcalloc((size_t)(st->nprobes ? st->nprobes : 1), sizeof *st->probes);
    Probe **first_probe = xcalloc((size_t)(nt ? nt : 1), sizeof *first_probe);
    int np = 0;
    for (int i = 0; i < nt; i++) {
        Tensor *t = &ts[i];
        t->x = xs[i];
        t->ana = anas[i];
        t->d = xmalloc((size_t)t->n * sizeof *t->d);
        for (int64_t q = 0; q < t->n; q++) {
            t->d[q] = 2 * rt_stream_uniform(rng) - 1;
            t->norm += t->d[q] * t->d[q];
        }
        t->norm = sqrt(t->norm);
        int64_t nel = t->n <= 2 * k ? t->n : k;
        first_probe[i] = &st->probes[np];
        for (int64_t e = -1; e < nel; e++) {
            Probe *p = &st->probes[np++];
            p->t = t;
            p->j = e < 0 ? -1 : t->n <= 2 * k ? e : (int64_t)(rt_stream_uniform(rng) * (double)t->n) % t->n;
            t->nprobe++;
        }
    }
    atomic_store(&st->next, 0);
    Worker *ws = xcalloc((size_t)threads, sizeof *ws);
    pthread_t *th = xcalloc((size_t)threads, sizeof *th);
    for (int i = 0; i < threads; i++) {
        ws[i].st = st;
        ws[i].buf = xmalloc((size_t)maxn * sizeof *ws[i].buf);
        interp_init(&ws[i].it, st->fwd);
        ws[i].it.keep_all = true;   /* a point recomputes from its leaf's first reader on */
        for (int q = 0; q < st->fwd->nnodes; q++)
            if (st->vals[q]) interp_bind(&ws[i].it, st->fwd->nodes[q], st->vals[q]);
        interp_run(&ws[i].it);
    }
    int started = 0;
    while (started < threads && pthread_create(&th[started], NULL, worker_main, &ws[started]) == 0) started++;
    if (!started) worker_main(&ws[0]);   /* no thread could be made: this one does it all */
    for (int i = 0; i < nt; i++) report_tensor(st, &ts[i], first_probe[i], c);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < threads; i++) {
        interp_free(&ws[i].it);
        free(ws[i].buf);
    }
    for (int i = 0; i < nt; i++) free(ts[i].d);
    free(ws);
    free(th);
    free(ts);
    free(first_probe);
    free(st->probes);
}

/* ---- 2. each node on its own ---- */

/* Whether node n's input i is moved off its ties: a differentiable input
   (labels and indices keep their values) */
static bool need_jitter(const Node *n, int i) { return op_table[n->op].diffmask >> i & 1; }

/* Node n (of a graph whose values `in` are its inputs'): its backward rule
   against central differences of sum(op(inputs) * dy), a random direction
   and k elements per differentiable input. Returns false on a failure,
   with *what the input. */
static bool check_node(const Node *n, const double *const *in, int k, rt_stream *rng, int *skipped, int *failed_in) {
    Arena ar = {0};
    Graph *g = graph_new(&ar);
    /* the inputs as leaves; but a saved value made from the others (the
       batch statistics bn_train reads, whose dependence on x its rule
       includes) is made again from those leaves */
    Node *leaves[IR_MAX_IN] = {0}, *args[IR_MAX_IN];
    for (int i = 0; i < n->nin; i++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", i);
        leaves[i] = ir_param(g, arena_strdup(&ar, name), n->in[i]->rank, n->in[i]->dim, (rt_init){RT_INIT_CONST, 0});
        args[i] = leaves[i];
    }
    for (int i = 0; i < n->nin; i++) {
        const Node *p = n->in[i];
        if ((op_table[n->op].diffmask >> i & 1) || op_table[p->op].fusion == FUSE_LEAF) continue;
        Node *pin[IR_MAX_IN];
        bool derived = p->nin > 0;
        for (int q = 0; q < p->nin && derived; q++) {
            derived = false;
            for (int r = 0; r < n->nin; r++)
                if (p->in[q] == n->in[r] && r != i) { pin[q] = leaves[r]; derived = true; }
        }
        if (derived) args[i] = ir_make(g, p->op, pin, p->nin, p->ia, IR_MAX_IA, p->fa, IR_MAX_FA);
    }
    Node *y = ir_make(g, n->op, args, n->nin, n->ia, IR_MAX_IA, n->fa, IR_MAX_FA);
    Node *dy = ir_input(g, "dy", y->rank, y->dim);
    unsigned need = op_table[n->op].diffmask;
    Node *dx[IR_MAX_IN] = {0};
    ir_backward(g, y, dy, need, dx);
    graph_add_output(g, "y", y);
    static const char *const dx_names[] = {"dx0", "dx1", "dx2", "dx3", "dx4"};
    _Static_assert(sizeof dx_names / sizeof dx_names[0] == IR_MAX_IN, "a name per input");
    for (int i = 0; i < n->nin; i++)
        if (dx[i]) graph_add_output(g, dx_names[i], dx[i]);
    int64_t ny = node_numel(y);
    double *dyv = xmalloc((size_t)(ny ? ny : 1) * sizeof *dyv);
    for (int64_t j = 0; j < ny; j++) dyv[j] = 2 * rt_stream_uniform(rng) - 1;
    double **vals = xcalloc((size_t)n->nin, sizeof *vals);
    for (int i = 0; i < n->nin; i++) {
        int64_t e = node_numel(n->in[i]);
        vals[i] = xmalloc((size_t)(e ? e : 1) * sizeof **vals);
        memcpy(vals[i], in[i], (size_t)e * sizeof **vals);
        /* ties broken: ReLU's zeros tie in a max-pooling window at any h,
           and a kink crossed in many windows can hide a wrong rule; moved
           apart by ~1e-3, the stencil's h crosses few of them */
        if (need_jitter(n, i))
            for (int64_t q = 0; q < e; q++) vals[i][q] += 1e-3 * (2 * rt_stream_uniform(rng) - 1) * (1 + fabs(vals[i][q]));
    }
    Interp it;
    interp_init(&it, g);
    interp_bind(&it, dy, dyv);
    bool ok = true;
    /* f = sum(y * dy) at the current input values; y's values into ybuf */
    double *ybuf[3];   /* y at the base point, +h, -h */
    for (int q = 0; q < 3; q++) ybuf[q] = xmalloc((size_t)(ny ? ny : 1) * sizeof *ybuf[q]);
#define OBJ(res, yb)                                                                    \
    do {                                                                                \
        for (int i_ = 0; i_ < n->nin; i_++) interp_bind(&it, leaves[i_], vals[i_]);   \
        interp_run_range(&it, 0, y->id + 1); /* y alone, not its backward */            \
        const double *yv_ = interp_value(&it, y);                                      \
        long double s_ = 0; /* extended: the sum's rounding must stay far below h */   \
        for (int64_t j_ = 0; j_ < ny; j_++) s_ += (long double)yv_[j_] * dyv[j_];      \
        memcpy(yb, yv_, (size_t)ny * sizeof *yv_);                                     \
        (res) = (double)s_;                                                             \
    } while (0)
    double f_base;
    OBJ(f_base, ybuf[0]);   /* for y's values at the base point */
    (void)f_base;
    interp_run(&it);   /* the backward rule's gradients */
    double **ana = xcalloc((size_t)n->nin, sizeof *ana);
    for (int i = 0; i < n->nin; i++) {
        if (!dx[i]) continue;
        int64_t e = node_numel(n->in[i]);
        ana[i] = xmalloc((size_t)(e ? e : 1) * sizeof **ana);
        memcpy(ana[i], interp_value(&it, dx[i]), (size_t)e * sizeof **ana);
    }
    for (int i = 0; i < n->nin && ok; i++) {
        if (!dx[i]) continue;
        int64_t e = node_numel(n->in[i]), nel = e <= 2 * k ? e : k;
        for (int64_t t = -1; t < nel && ok; t++) {
            int64_t j = t < 0 ? -1 : e <= 2 * k ? t : (int64_t)(rt_stream_uniform(rng) * (double)e) % e;
            double *dir = xcalloc((size_t)e, sizeof *dir), norm = 0, a = 0, h = FD_STEP;
            for (int64_t q = 0; q < e; q++) {
                dir[q] = j < 0 ? 2 * rt_stream_uniform(rng) - 1 : q == j;
                norm += dir[q] * dir[q];
            }
            norm = sqrt(norm);
            if (j >= 0) h = FD_STEP * fmax(1.0, fabs(vals[i][j]));
            for (int64_t q = 0; q < e; q++) a += ana[i][q] * dir[q] / norm;
            double *saved = xmalloc((size_t)e * sizeof *saved), fp, fm, err;
            memcpy(saved, vals[i], (size_t)e * sizeof *saved);
            for (int64_t q = 0; q < e; q++) vals[i][q] = saved[q] + h * dir[q] / norm;
            OBJ(fp, ybuf[1]);
            for (int64_t q = 0; q < e; q++) vals[i][q] = saved[q] - h * dir[q] / norm;
            OBJ(fm, ybuf[2]);
            memcpy(vals[i], saved, (size_t)e * sizeof *saved);
            free(saved);
            free(dir);
            /* a kink's bound output by output: a max tie (ReLU's zeros in a
               pooling window) crossed in many windows leaves second
               differences of both signs, which a sum would cancel */
            long double kink = 0;
            for (int64_t q = 0; q < ny; q++)
                kink += fabsl((long double)ybuf[1][q] + ybuf[2][q] - 2.0L * ybuf[0][q]) * fabs(dyv[q]);
            int r = judge(fp, fm, h, a, (double)(kink / (2 * h)), &err);
            if (r == 0) (*skipped)++;
            if (r < 0) {
                ok = false;
                *failed_in = i;
            }
        }
    }
#undef OBJ
    for (int q = 0; q < 3; q++) free(ybuf[q]);
    interp_free(&it);
    for (int i = 0; i < n->nin; i++) {
        free(vals[i]);
        free(ana[i]);
    }
    free(vals);
    free(ana);
    free(dyv);
    arena_free(&ar);
    return ok;
}

/* Part 2 over threads: node i draws from its own stream, so the results do
   not depend on the number of threads. */
typedef struct NodeCheck {
    const Node *n;
    bool ok;
    int skipped, failed_in;
} NodeCheck;

typedef struct NodeChecks {
    const Interp *base;   /* every value of the base point */
    NodeCheck *nodes;
    int n, k;
    uint64_t seed;
    _Atomic int next;
} NodeChecks;

static void *node_worker(void *arg) {
    NodeChecks *nc = arg;
    for (int i; (i = atomic_fetch_add(&nc->next, 1)) < nc->n;) {
        NodeCheck *r = &nc->nodes[i];
        const double *in[IR_MAX_IN] = {0};
        for (int q = 0; q < r->n->nin; q++) in[q] = interp_value(nc->base, r->n->in[q]);
        rt_stream rng;
        rt_stream_init(&rng, nc->seed, RT_DOMAIN_TEST, 78, (uint64_t)i);
        r->failed_in = -1;
        r->ok = check_node(r->n, in, nc->k, &rng, &r->skipped, &r->failed_in);
    }
    return NULL;
}

/* Runs fn(arg) on `threads` threads (on this one if none can be made). */
static void run_workers(void *(*fn)(void *), void *arg, int threads) {
    pthread_t *th = xcalloc((size_t)threads, sizeof *th);
    int started = 0;
    while (started < threads && pthread_create(&th[started], NULL, fn, arg) == 0) started++;
    if (!started) fn(arg);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
}

/* ---- 3. compiled against the interpreter ---- */

/* How far the outputs move at float's precision: the interpreter storing
   every value in float, at the parameters and views as they are (run 0)
   and nudged by up to NUDGE at random (runs 1..NOISE_RUNS-1, a stream
   each); spread[run][o] the most output o moved from `ref`'s. */
typedef struct NoiseRuns {
    const Graph *g;
    float **pv;
    const Interp *ref;
    double *spread;
    _Atomic int next;
} NoiseRuns;

static void *noise_worker(void *arg) {
    NoiseRuns *nr = arg;
    const Graph *g = nr->g;
    for (int run; (run = atomic_fetch_add(&nr->next, 1)) < NOISE_RUNS;) {
        rt_stream nz;
        rt_stream_init(&nz, 1, RT_DOMAIN_TEST, 79, (uint64_t)run);
        Interp rd;
        interp_init(&rd, g);
        rd.round_f32 = true;
        for (int i = 0; i < g->nnodes; i++) {
            if (!nr->pv[i]) continue;
            const Node *l = g->nodes[i];
            bool nudge = run > 0 && (l->op == OP_PARAM || (l->op == OP_INPUT && !strcmp(l->name, "x")));
            const float *p = nr->pv[i];
            int64_t e = node_numel(l);
            float *v = xmalloc((size_t)(e ? e : 1) * sizeof *v);
            for (int64_t j = 0; j < e; j++)
                v[j] = nudge ? (float)((double)p[j] * (1 + NUDGE * (2 * rt_stream_uniform(&nz) - 1))) : p[j];
            interp_bind_f32(&rd, l, v);
            free(v);
        }
        interp_run(&rd);
        for (int o = 0; o < g->nouts; o++) {
            const Node *n = g->outs[o].node;
            const double *r = interp_value(&rd, n), *bd = interp_value(nr->ref, n);
            double m = 0;
            for (int64_t j = 0, e = node_numel(n); j < e; j++) m = fmax(m, fabs(r[j] - (double)(float)bd[j]));
            nr->spread[run * g->nouts + o] = m;
        }
        interp_free(&rd);
    }
    return NULL;
}

/* The JIT's step against `ref`, the interpreter's run of g at pv. */
static bool check_compiled(Graph *g, float **pv, const Interp *ref, const CgOptions *co, int threads, int *nouts, double *worst) {
    Engine ej = {0};
    if (!engine_init(&ej, g, ENGINE_JIT, co)) {
        engine_free(&ej);
        return false;
    }
    for (int i = 0; i < g->nnodes; i++)
        if (pv[i]) engine_set(&ej, g->nodes[i], pv[i]);
    engine_run(&ej);
    NoiseRuns nr = {.g = g, .pv = pv, .ref = ref};
    nr.spread = xcalloc((size_t)(NOISE_RUNS * (g->nouts ? g->nouts : 1)), sizeof *nr.spread);
    run_workers(noise_worker, &nr, threads < NOISE_RUNS ? threads : NOISE_RUNS);
    double *spread = nr.spread;   /* the most over the runs, in run 0's row */
    for (int run = 1; run < NOISE_RUNS; run++)
        for (int o = 0; o < g->nouts; o++) spread[o] = fmax(spread[o], spread[run * g->nouts + o]);
    bool ok = true;
    int nfail = 0;
    *worst = 0;
    *nouts = g->nouts;
    for (int o = 0; o < g->nouts; o++) {
        const Node *n = g->outs[o].node;
        int64_t e = node_numel(n);
        float *a = xmalloc((size_t)(e ? e : 1) * sizeof *a);
        engine_get(&ej, n, a);
        const double *bd = interp_value(ref, n);
        double err = 0, mag = 0, rerr = spread[o];
        for (int64_t j = 0; j < e; j++) {
            double b = (double)(float)bd[j];   /* as the interpreter engine hands it out */
            double dj = fabs((double)a[j] - b);
            err = isnan(dj) ? INFINITY : fmax(err, dj);
            mag = fmax(mag, fabs(b));
        }
        if (rrc_env_debug() >= 1)
            printf("  %s: max|jit - interp| %.3g, f32 rule %.3g, float spread %.3g\n", g->outs[o].name, err, F32_TOL(mag), rerr);
        double allowed = fmax(F32_TOL(mag), ROUND_SLACK * rerr), ratio = err / allowed;
        if (ratio > *worst) *worst = ratio;
        if (ratio > 1 && ++nfail <= 8)   /* the first few: one flipped kink fails every gradient behind it */
            printf("  compiled output %s: max|jit - interp| = %.3g, allowed %.3g: FAIL\n", g->outs[o].name, err, allowed);
        ok = ok && ratio <= 1;
        free(a);
    }
    if (nfail > 8) printf("  ... and %d more outputs\n", nfail - 8);
    free(spread);
    engine_free(&ej);
    return ok;
}

static void usage(FILE *f) {
    driver_usage(f, RRC_CMD_CHECK, "SPEC [--K K] [--batch B] [--seed S] [--input-shape CxHxW] [--threads N] [--elements N] [--engine jit|interp] [--cpu NAME]",
                 "Checks the gradients of SPEC's training step at a small size, in double precision on the\n"
                 "reference interpreter: for every trainable tensor and the views x, a random-direction\n"
                 "check and N sampled elements (every element of tensors below 2N) by central finite\n"
                 "differences of the loss; every differentiable node's backward rule on its own (a wrong\n"
                 "rule is named with its op and spec line); then the compiled step against the\n"
                 "interpreter, repeated at new views if it fails (a kink flipped by rounding). A difference\n"
                 "a kink explains (ReLU, max pooling, max aggregation crossed by the stencil) is skipped.\n");
    fprintf(f, "\nExit status: 0 passed, 1 a check failed, 2 a bad spec.\n");
}

int cmd_check(int argc, char **argv) {
    rt_args a;
    int rc = driver_parse(RRC_CMD_CHECK, argc, argv, 1, usage, &a);
    if (rc >= 0) return rc;
    const char *spec = a.npos ? a.pos[0] : NULL, *engine = "jit", *cpu = NULL;
    SpecOverrides ov = {.seed = -1, .batch = 3};
    bool K_given = false;
    long long seed = 1;
    int k = 8, threads = 0;
    for (int i = 0; i < a.nopts; i++) {
        const rt_opt *o = &a.opts[i];
        switch (o->flag->id) {
        case RRC_F_K: ov.K = (int)o->ival; K_given = true; break;
        case RRC_F_BATCH: ov.batch = (int)o->ival; break;
        case RRC_F_SEED: seed = o->ival; break;
        case RRC_F_ELEMENTS: k = (int)o->ival; break;
        case RRC_F_THREADS: threads = (int)o->ival; break;
        case RRC_F_ENGINE: engine = o->value; break;   /* jit or interp: the row's choices */
        case RRC_F_CPU: cpu = o->value; break;
        case RRC_F_INPUT_SHAPE: ov.input_shape = o->value; break;
        default: break;
        }
    }
    rt_args_free(&a);   /* the values point into argv */
    if (!spec) { usage(stderr); return EXIT_USAGE; }
    ov.seed = seed;
    Target target;
    CgOptions co = {.debug = rrc_env_debug(), .target = driver_target("check", cpu, NULL, NULL, true, &target)};
    Arena arena = {0};
    Spec *s = driver_load_spec("check", spec, &ov, &arena);
    if (!K_given && s->method.kind == METHOD_RELATIONAL) s->K = 3;   /* the check's default; a baseline's views are its own */
    Diag d = {0};
    /* the step (forward, backward, planned) and the forward alone (the loss) */
    Graph *g = lower_train(s, s->batch, s->in_c, s->in_h, s->in_w, &arena, &d);
    PipelineOpts po = {.target = co.target, .caps = cg_caps()};
    /* the step also outputs the views' gradient ("dinput.x"), which part 1
       checks like a parameter's */
    Node *views = g ? graph_find_leaf(g, OP_INPUT, "x") : NULL;
    if (views) views->flags |= NF_WANT_GRAD;
    if (!g || !pipeline_run(g, &d, &po)) { arena_free(&arena); return EXIT_BADSPEC; }
    /* the forward as the step computes it: the passes before autodiff
       rewrite it (factor: the relation head's first layer per view), so
       part 2 checks the rules the step's gradients come from */
    Graph *fwd = lower_train(s, s->batch, s->in_c, s->in_h, s->in_w, &arena, &d);
    PipelineOpts pf = {.target = co.target, .stop_after = "factor"};
    if (!fwd || !pipeline_run(fwd, &d, &pf) || !pass_dce(fwd, &d)) { arena_free(&arena); return EXIT_BADSPEC; }
    bool initialised;
    float **pv = driver_load_params("check", g, NULL, s->seed, &initialised);
    if (!pv) { arena_free(&arena); return EXIT_USAGE; }
    rt_stream rng;
    rt_stream_init(&rng, (uint64_t)seed, RT_DOMAIN_TEST, 77, 0);
    if (threads <= 0) {   /* default: the cores; each keeps its own copy of the forward's values */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores < 1 ? 1 : cores > 64 ? 64 : (int)cores;
    }
    /* every input of the step, valid for what it is: views x in [-1, 1);
       DeepCluster's pseudolabels y (classes of its logits) and cluster
       weights w in [0.5, 1); Deep InfoMax's prior samples u in [0, 1) */
    int64_t classes = 1;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_WEIGHTED_CE) classes = g->nodes[i]->in[0]->dim[1];
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        if (n->op != OP_INPUT) continue;
        int64_t e = node_numel(n);
        pv[i] = xmalloc((size_t)e * sizeof **pv);
        for (int64_t j = 0; j < e; j++) {
            double r = rt_stream_uniform(&rng);
            pv[i][j] = !strcmp(n->name, "y")   ? (float)floor(r * (double)classes)
                       : !strcmp(n->name, "w") ? (float)(0.5 + 0.5 * r)
                       : !strcmp(n->name, "u") ? (float)r
                                               : (float)(2 * r - 1);
        }
    }
    printf("rrc check %s: K=%d B=%d input %dx%dx%d, seed %lld; finite differences in double, h = %g\n", s->name, s->K,
           s->batch, s->in_c, s->in_h, s->in_w, seed, FD_STEP);

    /* analytic gradients: the step on the interpreter */
    Interp it;
    interp_init(&it, g);
    for (int i = 0; i < g->nnodes; i++)
        if (pv[i]) interp_bind_f32(&it, g->nodes[i], pv[i]);
    interp_run(&it);

    /* the forward graph's leaves get the same values, in double */
    Step st = {.fwd = fwd};
    st.vals = xcalloc((size_t)fwd->nnodes, sizeof *st.vals);
    for (int i = 0; i < fwd->nnodes; i++) {
        const Node *l = fwd->nodes[i];
        if (op_table[l->op].fusion != FUSE_LEAF) continue;
        const Node *gl = graph_find_leaf(g, l->op, l->name);
        const float *src = gl ? pv[gl->id] : NULL;
        if (!src) continue;
        int64_t e = node_numel(l);
        st.vals[i] = xmalloc((size_t)e * sizeof **st.vals);
        for (int64_t j = 0; j < e; j++) st.vals[i][j] = (double)src[j];
    }
    for (int o = 0; o < fwd->nouts; o++)
        if (!strcmp(fwd->outs[o].name, "loss")) st.loss = fwd->outs[o].node;
    st.first = xcalloc((size_t)fwd->nnodes, sizeof *st.first);
    for (int i = 0; i < fwd->nnodes; i++) st.first[i] = first_reader(fwd, fwd->nodes[i]);
    pthread_mutex_init(&st.mu, NULL);
    pthread_cond_init(&st.cv, NULL);
    /* the base point, whose every value part 2 reads */
    Interp base;
    interp_init(&base, fwd);
    base.keep_all = true;
    for (int i = 0; i < fwd->nnodes; i++)
        if (st.vals[i]) interp_bind(&base, fwd->nodes[i], st.vals[i]);
    interp_run(&base);
    st.f0 = interp_value(&base, st.loss)[0];

    Check c = {0};
    printf("\n1. the step's gradients against finite differences of the loss (a direction + %d elements, %d thread%s):\n", k,
           threads, threads > 1 ? "s" : "");
    printf("  %-44s %9s %4s %4s  %9s %9s\n", "tensor", "elements", "chk", "skip", "max err", "max rel");
    const Node **xs = xcalloc((size_t)g->nouts + 1, sizeof *xs);
    const double **anas = xcalloc((size_t)g->nouts + 1, sizeof *anas);
    int nt = 0;
    for (int o = 0; o < g->nouts; o++) {
        const char *name = g->outs[o].name;
        bool param = !strncmp(name, "grad.", 5);
        if (!param && strncmp(name, "dinput.", 7)) continue;
        const Node *fl = graph_find_leaf(fwd, param ? OP_PARAM : OP_INPUT, strchr(name, '.') + 1);
        if (!fl || !st.vals[fl->id]) continue;
        xs[nt] = fl;
        anas[nt++] = interp_value(&it, g->outs[o].node);
    }
    check_tensors(&st, xs, anas, nt, k, threads, &rng, &c);
    free(xs);
    free(anas);

    /* 2. each differentiable node of the forward graph, at its values */
    printf("\n2. each node's backward rule on its own:\n");
    NodeChecks nc = {.base = &base, .k = k, .seed = (uint64_t)seed};
    nc.nodes = xcalloc((size_t)fwd->nnodes, sizeof *nc.nodes);
    for (int i = 0; i < fwd->nnodes; i++) {
        const Node *n = fwd->nodes[i];
        if (op_table[n->op].diffmask && op_table[n->op].fusion != FUSE_LEAF) nc.nodes[nc.n++] = (NodeCheck){.n = n};
    }
    run_workers(node_worker, &nc, threads);
    int nodes = nc.n, node_fail = 0, node_skip = 0;
    for (int i = 0; i < nc.n; i++) {
        const NodeCheck *r = &nc.nodes[i];
        const Node *n = r->n;
        node_skip += r->skipped;
        if (r->ok) continue;
        node_fail++;
        printf("  FAIL %s (%s) at %s:%d: the backward rule of op %s gives a wrong gradient for input %d\n",
               n->name ? n->name : "-", op_table[n->op].name, n->loc.file ? n->loc.file : "?", n->loc.line,
               op_table[n->op].name, r->failed_in);
    }
    free(nc.nodes);
    printf("  %d nodes, %d failed, %d directions skipped at kinks\n", nodes, node_fail, node_skip);

    /* 3. compiled against the interpreter */
    bool comp_ok = true;
    if (!strcmp(engine, "jit")) {
        printf("\n3. the JIT-compiled step against the interpreter (allowed: 1e-6 + 1e-4 max|ref|, or %g times how far\n"
               "   an output moves at float's precision, whichever is larger):\n", ROUND_SLACK);
        /* a rounding-level difference can flip a ReLU input's sign in a deep
           step and change every gradient behind it: chance, which another
           point does not repeat, where a wrong kernel fails at every point.
           So a failure is measured again at new views, up to COMPILED_POINTS
           points, and the step fails only if every point does */
        for (int point = 0; point < COMPILED_POINTS; point++) {
            Interp at;
            const Interp *ref = &it;
            if (point > 0) {
                rt_stream vs;
                rt_stream_init(&vs, (uint64_t)seed, RT_DOMAIN_TEST, 80, (uint64_t)point);
                for (int i = 0; i < g->nnodes; i++)
                    if (g->nodes[i]->op == OP_INPUT && !strcmp(g->nodes[i]->name, "x"))
                        for (int64_t j = 0, e = node_numel(g->nodes[i]); j < e; j++)
                            pv[i][j] = (float)(2 * rt_stream_uniform(&vs) - 1);
                interp_init(&at, g);
                for (int i = 0; i < g->nnodes; i++)
                    if (pv[i]) interp_bind_f32(&at, g->nodes[i], pv[i]);
                interp_run(&at);
                ref = &at;
            }
            int nouts = 0;
            double worst = 0;
            comp_ok = check_compiled(g, pv, ref, &co, threads, &nouts, &worst);
            if (point > 0) interp_free(&at);
            printf("  %s%d outputs, worst error %.3f of the allowed: %s\n", point ? "new views: " : "", nouts, worst,
                   comp_ok ? "ok" : "FAIL");
            if (comp_ok) break;
        }
        if (!comp_ok) printf("  the compiled step differs at every one of %d points\n", COMPILED_POINTS);
    }
    bool ok = c.fail == 0 && node_fail == 0 && comp_ok;
    printf("\nrrc check %s: %s (%d tensors checked, %d failed; %d elements skipped at kinks; %d nodes, %d failed)\n",
           s->name, ok ? "passed" : "FAILED", c.pass + c.fail, c.fail, c.skip, nodes, node_fail);
    interp_free(&it);
    interp_free(&base);
    for (int i = 0; i < fwd->nnodes; i++) free(st.vals[i]);
    free(st.vals);
    free(st.first);
    pthread_mutex_destroy(&st.mu);
    pthread_cond_destroy(&st.cv);
    driver_free_params(g, pv);
    arena_free(&arena);
    return ok ? 0 : EXIT_USAGE;
}
