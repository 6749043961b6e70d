/*
** cmd_check.c: `rrc check SPEC`: are the gradients of a spec's training
** step right? At a small size (B = K = 3 by default), with seeded
** parameters and random views, in double precision on the reference
** interpreter:
**   1. every trainable tensor and the views: a random-direction check and
**      k sampled elements, central finite differences of the loss against
**      the step's gradients;
**   2. every differentiable node of the forward graph on its own: its
**      backward rule against finite differences of that node alone, so a
**      wrong rule is named with its op and spec line;
**   3. the compiled step (JIT) against the interpreter by the f32 rule.
** A difference that the loss's own kink explains (a ReLU, max pooling or
** max aggregation crossed within the stencil) is reported as skipped: for
** a function piecewise smooth along the direction, the error a kink causes
** in the central difference is |f(+h) + f(-h) - 2 f(0)| / 2h, which a
** smooth function keeps near h |f''| / 2.
** Exit status: 0 all passed, 1 a check failed (or bad flags), 2 a bad spec.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cg.h"
#include "driver.h"
#include "engine.h"
#include "frontend/lower.h"
#include "rt_rng.h"

#define FD_STEP 1e-6
#define FD_TOL(ana) (1e-6 * (1.0 + fabs(ana)))       /* the finite-difference rule of the tests */
#define F32_TOL(ref) (1e-6 + 1e-4 * (ref))            /* the f32 rule of the tests */

typedef struct Check {
    int pass, fail, skip;
} Check;

/* One directional derivative: numeric from f(+h), f(-h), f(0) against
   analytic. Returns 1 ok, 0 skipped (a kink explains it), -1 failed; *err
   the absolute error. */
static int judge(double fp, double fm, double f0, double h, double ana, double *err) {
    double num = (fp - fm) / (2 * h);
    *err = fabs(num - ana);
    if (*err <= FD_TOL(ana)) return 1;
    double kink = fabs(fp + fm - 2 * f0) / (2 * h);
    return *err <= 1.01 * kink + FD_TOL(ana) ? 0 : -1;
}

/* ---- 1. the whole step ---- */

typedef struct Step {
    Graph *fwd;          /* forward graph: the loss */
    Interp it;
    double **vals;       /* leaf values by fwd node id */
    const Node *loss;
} Step;

/* The loss after leaf x changed (NULL: all leaves); only the nodes from
   x's first reader on are recomputed. */
static double loss_at(Step *st, const Node *x) {
    int first = 0;
    if (x) {
        interp_bind(&st->it, x, st->vals[x->id]);
        first = st->fwd->nnodes;
        for (int i = x->id + 1; i < st->fwd->nnodes && first == st->fwd->nnodes; i++)
            for (int k = 0; k < st->fwd->nodes[i]->nin; k++)
                if (st->fwd->nodes[i]->in[k] == x) first = i;
    } else {
        for (int i = 0; i < st->fwd->nnodes; i++)
            if (st->vals[i]) interp_bind(&st->it, st->fwd->nodes[i], st->vals[i]);
    }
    interp_run_from(&st->it, first);
    return interp_value(&st->it, st->loss)[0];
}

/* Checks the gradient `ana` (analytic, n values) of leaf `x` of st->fwd:
   a random direction, then `k` sampled elements (all of them below 2k).
   Prints one line. */
static void check_tensor(Step *st, const Node *x, const double *ana, int k, double f0, rt_stream *rng, Check *c) {
    int64_t n = node_numel(x);
    double *v = st->vals[x->id], *d = xmalloc((size_t)n * sizeof *d);
    double worst = 0, worst_rel = 0, norm = 0, amax = 0;
    int ok = 0, skipped = 0, failed = 0;
    for (int64_t j = 0; j < n; j++) {
        d[j] = 2 * rt_stream_uniform(rng) - 1;
        norm += d[j] * d[j];
        amax = fmax(amax, fabs(ana[j]));
    }
    norm = sqrt(norm);
    int64_t nel = n <= 2 * k ? n : k;
    for (int64_t t = -1; t < nel; t++) {
        int64_t j = t < 0 ? -1 : n <= 2 * k ? t : (int64_t)(rt_stream_uniform(rng) * (double)n) % n;
        double a = 0, h = FD_STEP;
        if (j < 0) {
            for (int64_t q = 0; q < n; q++) a += ana[q] * d[q] / norm;
        } else {
            a = ana[j];
            h = FD_STEP * fmax(1.0, fabs(v[j]));
        }
        double *saved = xmalloc((size_t)n * sizeof *saved);
        memcpy(saved, v, (size_t)n * sizeof *v);
        double err;
        int r = -1;
        /* a failure is measured again at h/10 and h/100: crossing ReLU kinks
           deep in a network (many of them, on both sides, so the second
           difference need not show them) errs in proportion to h, a wrong
           rule does not */
        for (int refine = 0; refine < 3 && r < 0; refine++, h /= 10) {
            for (int64_t q = 0; q < n; q++)
                if (j < 0 || q == j) v[q] = saved[q] + h * (j < 0 ? d[q] / norm : 1);
            double fp = loss_at(st, x);
            for (int64_t q = 0; q < n; q++)
                if (j < 0 || q == j) v[q] = saved[q] - h * (j < 0 ? d[q] / norm : 1);
            double fm = loss_at(st, x);
            memcpy(v, saved, (size_t)n * sizeof *v);
            r = judge(fp, fm, f0, h, a, &err);
        }
        free(saved);
        if (r > 0) ok++;
        else if (r == 0) skipped++;
        else failed++;
        if (r != 0 && err > worst) worst = err;
        if (r != 0) worst_rel = fmax(worst_rel, err / fmax(fabs(a), 1e-12));
    }
    free(d);
    loss_at(st, x);   /* every value back at the base point, for the next tensor and part 2 */
    printf("  %-44s %9lld %4d %4d  %9.2e %9.2e  %s\n", x->name, (long long)n, ok + failed, skipped, worst, worst_rel,
           failed ? "FAIL" : "ok");
    if (failed) c->fail++;
    else c->pass++;
    c->skip += skipped;
}

/* ---- 2. each node on its own ---- */

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
    }
    Interp it;
    interp_init(&it, g);
    interp_bind(&it, dy, dyv);
    bool ok = true;
    /* f = sum(y * dy) at the current input values */
#define OBJ(res)                                                                        \
    do {                                                                                \
        for (int i_ = 0; i_ < n->nin; i_++) interp_bind(&it, leaves[i_], vals[i_]);   \
        interp_run(&it);                                                                \
        const double *yv_ = interp_value(&it, y);                                      \
        long double s_ = 0; /* extended: the sum's rounding must stay far below h */   \
        for (int64_t j_ = 0; j_ < ny; j_++) s_ += (long double)yv_[j_] * dyv[j_];      \
        (res) = (double)s_;                                                             \
    } while (0)
    double f0;
    OBJ(f0);
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
            OBJ(fp);
            for (int64_t q = 0; q < e; q++) vals[i][q] = saved[q] - h * dir[q] / norm;
            OBJ(fm);
            memcpy(vals[i], saved, (size_t)e * sizeof *saved);
            free(saved);
            free(dir);
            int r = judge(fp, fm, f0, h, a, &err);
            if (r == 0) (*skipped)++;
            if (r < 0) {
                ok = false;
                *failed_in = i;
            }
        }
    }
#undef OBJ
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

/* ---- 3. compiled against the interpreter ---- */

static bool check_compiled(Graph *g, float **pv, const CgOptions *co, int *nouts, double *worst) {
    Engine ej = {0}, ei = {0};
    if (!engine_init(&ej, g, ENGINE_JIT, co) || !engine_init(&ei, g, ENGINE_INTERP, NULL)) {
        engine_free(&ej);
        engine_free(&ei);
        return false;
    }
    for (int i = 0; i < g->nnodes; i++)
        if (pv[i]) {
            engine_set(&ej, g->nodes[i], pv[i]);
            engine_set(&ei, g->nodes[i], pv[i]);
        }
    engine_run(&ej);
    engine_run(&ei);
    bool ok = true;
    *worst = 0;
    *nouts = g->nouts;
    for (int o = 0; o < g->nouts; o++) {
        const Node *n = g->outs[o].node;
        int64_t e = node_numel(n);
        float *a = xmalloc((size_t)(e ? e : 1) * sizeof *a), *b = xmalloc((size_t)(e ? e : 1) * sizeof *b);
        engine_get(&ej, n, a);
        engine_get(&ei, n, b);
        double err = 0, ref = 0;
        for (int64_t j = 0; j < e; j++) {
            double dj = fabs((double)a[j] - (double)b[j]);
            err = isnan(dj) ? INFINITY : fmax(err, dj);
            ref = fmax(ref, fabs((double)b[j]));
        }
        double ratio = err / F32_TOL(ref);
        if (ratio > *worst) *worst = ratio;
        if (ratio > 1) {
            printf("  compiled output %s: max|jit - interp| = %.3g, allowed %.3g: FAIL\n", g->outs[o].name, err, F32_TOL(ref));
            ok = false;
        }
        free(a);
        free(b);
    }
    engine_free(&ej);
    engine_free(&ei);
    return ok;
}

static void usage(FILE *f) {
    driver_usage(f, RRC_CMD_CHECK, "SPEC [--K K] [--batch B] [--seed S] [--elements N] [--engine jit|interp] [--cpu NAME]",
                 "Checks the gradients of SPEC's training step at a small size, in double precision on the\n"
                 "reference interpreter: for every trainable tensor and the views, a random-direction check\n"
                 "and N sampled elements (every element of tensors below 2N) by central finite differences\n"
                 "of the loss; every differentiable node's backward rule on its own (a wrong rule is named\n"
                 "with its op and spec line); then the compiled step against the interpreter. A difference\n"
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
    int k = 8;
    for (int i = 0; i < a.nopts; i++) {
        const rt_opt *o = &a.opts[i];
        switch (o->flag->id) {
        case RRC_F_K: ov.K = (int)o->ival; K_given = true; break;
        case RRC_F_BATCH: ov.batch = (int)o->ival; break;
        case RRC_F_SEED: seed = o->ival; break;
        case RRC_F_ELEMENTS: k = (int)o->ival; break;
        case RRC_F_ENGINE: engine = o->value; break;   /* jit or interp: the row's choices */
        case RRC_F_CPU: cpu = o->value; break;
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
    if (!g || !pipeline_run(g, &d, &po)) { arena_free(&arena); return EXIT_BADSPEC; }
    Graph *fwd = lower_train(s, s->batch, s->in_c, s->in_h, s->in_w, &arena, &d);
    if (!fwd) { arena_free(&arena); return EXIT_BADSPEC; }
    bool initialised;
    float **pv = driver_load_params("check", g, NULL, s->seed, &initialised);
    if (!pv) { arena_free(&arena); return EXIT_USAGE; }
    rt_stream rng;
    rt_stream_init(&rng, (uint64_t)seed, RT_DOMAIN_TEST, 77, 0);
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
    interp_init(&st.it, fwd);
    st.it.keep_all = true;   /* part 2 reads every node's inputs */
    double f0 = loss_at(&st, NULL);

    Check c = {0};
    printf("\n1. the step's gradients against finite differences of the loss (a direction + %d elements):\n", k);
    printf("  %-44s %9s %4s %4s  %9s %9s\n", "tensor", "elements", "chk", "skip", "max err", "max rel");
    for (int o = 0; o < g->nouts; o++) {
        const char *name = g->outs[o].name;
        if (strncmp(name, "grad.", 5)) continue;
        const Node *fl = graph_find_leaf(fwd, OP_PARAM, name + 5);
        if (!fl || !st.vals[fl->id]) continue;
        check_tensor(&st, fl, interp_value(&it, g->outs[o].node), k, f0, &rng, &c);
    }

    /* 2. each differentiable node of the forward graph, at its values */
    printf("\n2. each node's backward rule on its own:\n");
    int nodes = 0, node_fail = 0, node_skip = 0;
    for (int i = 0; i < fwd->nnodes; i++) {
        const Node *n = fwd->nodes[i];
        if (!op_table[n->op].diffmask || op_table[n->op].fusion == FUSE_LEAF) continue;
        const double *in[IR_MAX_IN] = {0};
        for (int q = 0; q < n->nin; q++) in[q] = interp_value(&st.it, n->in[q]);
        int failed_in = -1;
        nodes++;
        if (!check_node(n, in, k, &rng, &node_skip, &failed_in)) {
            node_fail++;
            printf("  FAIL %s (%s) at %s:%d: the backward rule of op %s gives a wrong gradient for input %d\n",
                   n->name ? n->name : "-", op_table[n->op].name, n->loc.file ? n->loc.file : "?", n->loc.line,
                   op_table[n->op].name, failed_in);
        }
    }
    printf("  %d nodes, %d failed, %d directions skipped at kinks\n", nodes, node_fail, node_skip);

    /* 3. compiled against the interpreter */
    bool comp_ok = true;
    if (!strcmp(engine, "jit")) {
        printf("\n3. the JIT-compiled step against the interpreter (f32 rule: 1e-6 + 1e-4 max|ref|):\n");
        int nouts = 0;
        double worst = 0;
        comp_ok = check_compiled(g, pv, &co, &nouts, &worst);
        printf("  %d outputs, worst error %.3f of the allowed: %s\n", nouts, worst, comp_ok ? "ok" : "FAIL");
    }
    bool ok = c.fail == 0 && node_fail == 0 && comp_ok;
    printf("\nrrc check %s: %s (%d tensors checked, %d failed; %d elements skipped at kinks; %d nodes, %d failed)\n",
           s->name, ok ? "passed" : "FAILED", c.pass + c.fail, c.fail, c.skip, nodes, node_fail);
    interp_free(&it);
    interp_free(&st.it);
    for (int i = 0; i < fwd->nnodes; i++) free(st.vals[i]);
    free(st.vals);
    driver_free_params(g, pv);
    arena_free(&arena);
    return ok ? 0 : EXIT_USAGE;
}
