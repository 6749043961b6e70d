/*
** test_engines.c: the compiled engine against the oracle. Every golden
** training step runs through the LLVM JIT (f32, runtime kernels) and must
** match PyTorch's float64 values by the same rule as the interpreter; the
** memory plan never lets two live values share bytes; every op can be
** emitted.
*/
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "engine.h"
#include "golden_util.h"
#include "frontend/lower.h"
#include "program.h"
#include "rt_pool.h"
#include "rt_rng.h"
#include "test.h"

/* Builds the planned training graph of a golden step file. */
static Graph *golden_graph(const rt_st_file *f, const char *path, Arena *a) {
    Diag d = {0};
    Spec *s = golden_spec(f, path, a);
    if (!s) return NULL;
    int64_t c, h, w;
    golden_view_size(f, &c, &h, &w);
    Graph *g = lower_train(s, atoi(rt_st_meta(f, "B")), c, h, w, a, &d);
    PipelineOpts po = {.verify_each = true, .target = test_target(), .caps = cg_caps()};
    if (!g || !pipeline_run(g, &d, &po)) { test_fail(__FILE__, __LINE__, "%s: graph failed", path); return NULL; }
    return g;
}

/* Where node i's reads happen, recomputed here rather than trusted from
   memplan: at its fused kernel's last member, or at the weight gradient a
   BatchNorm backward is applied in (its second phase); an inlined node's
   reads happen wherever a kernel recomputing it runs (the latest of its
   readers'). */
static int *read_positions(const Graph *g) {
    int n = g->nnodes, *at = calloc((size_t)n, sizeof *at);
    for (int i = 0; i < n; i++) {
        const Node *x = g->nodes[i];
        const Kernel *k = x->kernel;
        at[i] = x->inlined ? -1 : node_runs_at(k && k->apply_in ? k->apply_in : x)->id;
    }
    for (int i = n - 1; i >= 0; i--)
        for (int k = 0; k < g->nodes[i]->nin; k++) {
            const Node *p = g->nodes[i]->in[k];
            if (p->inlined && at[i] > at[p->id]) at[p->id] = at[i];
        }
    return at;
}

/* No two values whose lifetimes overlap share a byte of scratch; unstored
   values (inlined, or applied in their reader) take none. */
static void check_plan(const Graph *g, const char *what) {
    int64_t total = 0;
    int n = g->nnodes, *at = read_positions(g), *last = calloc((size_t)n, sizeof *last);
    for (int i = 0; i < n; i++) last[i] = i;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i]->nin; k++) {
            int p = g->nodes[i]->in[k]->id;
            if (at[i] > last[p]) last[p] = at[i];
        }
    for (int i = 0; i < n; i++) {
        const Node *a = g->nodes[i];
        total += node_bytes(a);
        if (node_unstored(a)) {
            CHECKF(a->region < 0, "%s: unstored %%%d has memory", what, i);
            continue;
        }
        CHECKF(a->region >= 0 && a->offset >= 0 && a->offset + node_bytes(a) <= g->region_bytes[a->region],
               "%s: %%%d lies outside its region", what, i);
        for (int k = i + 1; k < n; k++) {
            const Node *b = g->nodes[k];
            if (node_unstored(b) || a->region != b->region) continue;
            bool bytes = a->offset < b->offset + node_bytes(b) && b->offset < a->offset + node_bytes(a);
            bool live = a->region != RT_REGION_SCRATCH || k <= last[i];   /* b made while a still read */
            CHECKF(!(bytes && live), "%s: %%%d and %%%d overlap while both live", what, a->id, b->id);
        }
    }
    CHECKF(g->region_bytes[RT_REGION_SCRATCH] < total, "%s: the plan shares nothing", what);
    /* the most bytes live at once bounds the region from below; the plan
       should come within a few percent of it */
    int64_t peak = 0;
    for (int i = 0; i < n; i++) {
        int64_t live = 0;
        for (int k = 0; k <= i; k++) {
            const Node *b = g->nodes[k];
            if (!node_unstored(b) && b->region == RT_REGION_SCRATCH && last[k] >= i) live += node_bytes(b);
        }
        if (live > peak) peak = live;
    }
    int64_t values = g->region_bytes[RT_REGION_SCRATCH] - g->ws_bytes;   /* the kernel workspace follows them */
    CHECKF(g->ws_offset == values && values >= peak && values <= peak + peak / 20,
           "%s: scratch values %lld bytes against %lld live at the peak (workspace at %lld)", what, (long long)values,
           (long long)peak, (long long)g->ws_offset);
    free(at);
    free(last);
}

static void check_jit_file(const char *path) {
    rt_st_file f = {0};
    if (!golden_read(path, &f)) return;
    Arena a = {0};
    Graph *g = golden_graph(&f, path, &a);
    if (g) {
        check_plan(g, path);
        Engine en;
        CgOptions co = {.target = test_target()};
        if (!engine_init(&en, g, ENGINE_JIT, &co)) {
            test_fail(__FILE__, __LINE__, "%s: JIT failed", path);
        } else {
            for (int i = 0; i < g->nnodes; i++) {
                Node *n = g->nodes[i];
                if (op_table[n->op].fusion != FUSE_LEAF) continue;
                int64_t e = node_numel(n);
                double *v = golden_tensor(&f, path, n->name, e);
                float *fv = malloc((size_t)e * sizeof *fv);
                for (int64_t k = 0; v && k < e; k++) fv[k] = (float)v[k];
                if (v) engine_set(&en, n, fv);
                free(v);
                free(fv);
            }
            engine_run(&en);
            for (int i = 0; i < g->nouts; i++) {
                const Node *n = g->outs[i].node;
                int64_t e = node_numel(n);
                double *ref = golden_tensor(&f, path, g->outs[i].name, e), *ours = malloc((size_t)e * sizeof *ours);
                float *fv = malloc((size_t)e * sizeof *fv);
                engine_get(&en, n, fv);
                for (int64_t k = 0; k < e; k++) ours[k] = fv[k];
                char what[700];
                snprintf(what, sizeof what, "jit %s: %s", path, g->outs[i].name);
                if (ref) golden_compare(what, ours, ref, e);
                free(ref);
                free(ours);
                free(fv);
            }
            engine_free(&en);
        }
    }
    arena_free(&a);
    rt_st_free(&f);
}

static int each_golden_in(const char *sub, const char *with, void (*fn)(const char *)) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", golden_dir(), sub);
    DIR *dp = opendir(dir);
    if (!dp) return 0;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(dp))) {
        if (!strstr(e->d_name, with) || strstr(e->d_name, "adam")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        fn(path);
        n++;
    }
    closedir(dp);
    return n;
}

static int each_golden(const char *with, void (*fn)(const char *)) { return each_golden_in("steps", with, fn); }

TEST(jit_golden_steps_conv4) { CHECK(each_golden("conv4_B", check_jit_file) >= 10); }
TEST(jit_golden_steps_resnet) { CHECK(each_golden("resnet", check_jit_file) >= 6); }

/* The golden steps with the code of the other targets this host runs. */
static void jit_goldens_all(void) {
    test_jit_golden_steps_conv4();
    test_jit_golden_steps_resnet();
}

TEST(jit_golden_steps_baselines) { CHECK(each_golden_in("baselines", "_B", check_jit_file) >= 14); }

TEST(jit_golden_steps_every_target) { test_other_targets(jit_goldens_all); }

/* The JIT against the interpreter on graphs with no PyTorch golden: the
   supervised step (softmax cross-entropy), eval-mode features and the
   eval classifier (bn_eval), with random inputs and parameters. */
static void jit_vs_interp(Graph *g, const char *what) {
    Diag d = {0};
    PipelineOpts po = {.verify_each = true, .caps = cg_caps()};
    REQUIREF(g && pipeline_run(g, &d, &po), "%s: graph failed", what);
    Engine ei, ej;
    CgOptions co = {0};
    REQUIRE(engine_init(&ei, g, ENGINE_INTERP, NULL));
    REQUIREF(engine_init(&ej, g, ENGINE_JIT, &co), "%s: JIT failed", what);
    rt_stream s;
    rt_stream_init(&s, 3, RT_DOMAIN_TEST, 77, 0);
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        if (op_table[n->op].fusion != FUSE_LEAF) continue;
        int64_t e = node_numel(n);
        float *v = malloc((size_t)e * sizeof *v);
        for (int64_t k = 0; k < e; k++) {
            double u = rt_stream_uniform(&s);
            v[k] = !strcmp(n->name, "y") ? (float)(k % 3)                     /* class labels */
                 : strstr(n->name, "running_var") ? (float)(0.5 + u)          /* positive variances */
                 : (float)(2 * u - 1);
        }
        engine_set(&ei, n, v);
        engine_set(&ej, n, v);
        free(v);
    }
    engine_run(&ei);
    engine_run(&ej);
    for (int i = 0; i < g->nouts; i++) {
        const Node *n = g->outs[i].node;
        int64_t e = node_numel(n);
        float *a = malloc((size_t)e * sizeof *a), *b = malloc((size_t)e * sizeof *b);
        double *da = malloc((size_t)e * sizeof *da), *db = malloc((size_t)e * sizeof *db);
        engine_get(&ei, n, a);
        engine_get(&ej, n, b);
        for (int64_t k = 0; k < e; k++) { da[k] = a[k]; db[k] = b[k]; }
        char name[600];
        snprintf(name, sizeof name, "%s: %s (jit vs interp)", what, g->outs[i].name);
        golden_compare(name, db, da, e);
        free(a); free(b); free(da); free(db);
    }
    engine_free(&ei);
    engine_free(&ej);
}

TEST(jit_matches_interp_supervised_and_eval) {
    Arena a = {0};
    Diag d = {0};
    Spec *s = spec_load("specs/conv4.lua", &a, &d);
    REQUIRE(s);
    jit_vs_interp(lower_supervised(s, 6, 3, 3, 32, 32, true, &a, &d), "conv4 supervised step");
    jit_vs_interp(lower_supervised(s, 5, 3, 3, 32, 32, false, &a, &d), "conv4 eval classifier");
    jit_vs_interp(lower_features(s, 4, 3, 32, 32, &a, &d), "conv4 features");
    Spec *r = spec_load("specs/resnet8.lua", &a, &d);
    REQUIRE(r);
    jit_vs_interp(lower_features(r, 3, 3, 16, 16, &a, &d), "resnet8 features 16x16");
    arena_free(&a);
}

/* The data-parallel ops (ops_dist.c) compiled against the interpreter,
   one rank alone: BatchNorm statistics of every rank fused with a
   convolution (rt_k_conv2d_stats_all) and alone on [N, C] (rt_k_bn_stats_all),
   their backward (bn_train_dx_all on planes and rows), the features'
   gather and its gradient (local_rows). */
TEST(jit_matches_interp_rank_collectives) {
    Arena a = {0};
    Graph *g = graph_new(&a);
    rt_init u = {RT_INIT_UNIFORM, 1.0}, one = {RT_INIT_CONST, 1.0};
    int64_t xd[4] = {4, 3, 8, 8}, wd[4] = {8, 3, 3, 3}, c8 = 8, yd = 4;
    Node *x = ir_input(g, "x", 4, xd), *w = ir_param(g, "w", 4, wd, u);
    Node *y = ir_conv2d(g, x, w, 1, 1);
    Node *z = ir_relu(g, ir_bn_train(g, y, ir_bn_stats_all(g, y, 4 * 64), ir_param(g, "g1", 1, &c8, one),
                                     ir_param(g, "b1", 1, &c8, u), 1e-5));
    Node *f = ir_gather_rows(g, ir_global_avgpool(g, z), 2, 2);
    Node *h = ir_bn_train(g, f, ir_bn_stats_all(g, f, 4), ir_param(g, "g2", 1, &c8, one), ir_param(g, "b2", 1, &c8, u), 1e-5);
    graph_add_output(g, "loss", ir_softmax_ce(g, h, ir_input(g, "y", 1, &yd)));
    int fused = 0;
    jit_vs_interp(g, "rank collectives");
    for (int i = 0; i < g->nnodes; i++) fused += g->nodes[i]->op == OP_BN_STATS_ALL && g->nodes[i]->kernel != NULL;
    CHECKF(fused == 1, "%d bn_stats_all fused with their convolution, expected 1", fused);
    int back = 0;
    for (int i = 0; i < g->nnodes; i++) back += g->nodes[i]->op == OP_BN_TRAIN_DX_ALL || g->nodes[i]->op == OP_LOCAL_ROWS;
    CHECKF(back == 3, "%d bn_train_dx_all and local_rows in the backward, expected 3", back);
    /* the planes' BatchNorm backward is generated (this rank's sums, the
       ranks' sum, dx), the rows' one a runtime call */
    int gen = 0;
    for (int i = 0; i < g->nnodes; i++)
        gen += g->nodes[i]->op == OP_BN_TRAIN_DX_ALL && g->nodes[i]->kernel && g->nodes[i]->kernel->kind == KERNEL_BN_DX;
    CHECKF(gen == 1, "%d bn_train_dx_all in generated kernels, expected 1", gen);
    arena_free(&a);
}

/* Whole training steps at K, B and inputs that no golden has (random
   views and parameters): the compiled step against the interpreter. */
TEST(jit_matches_interp_train_steps_off_the_goldens) {
    Arena a = {0};
    Diag d = {0};
    Spec *r = spec_load("specs/resnet8.lua", &a, &d);
    REQUIRE(r);
    r->K = 5;
    jit_vs_interp(lower_train(r, 3, 3, 32, 32, &a, &d), "resnet8 K=5 B=3 step");
    Spec *c = spec_load("specs/conv4.lua", &a, &d);
    REQUIRE(c);
    c->K = 6;
    aggregation_parse("max", &c->head.aggregation);
    jit_vs_interp(lower_train(c, 2, 3, 32, 32, &a, &d), "conv4 K=6 B=2 max step");
    /* 30x30: pooled planes of 15x15 and 7x7 (odd: runtime pooling and
       pooling gradients) beside generated ones, 8x8 and 4x4 not direct */
    c->K = 3;
    jit_vs_interp(lower_train(c, 2, 3, 30, 30, &a, &d), "conv4 K=3 B=2 30x30 step");
    arena_free(&a);
}

/* The convolutions split over a pool of threads (rt_pool.h) still match
   PyTorch; then back to one thread for the other tests. */
TEST(jit_golden_steps_threaded) {
    rt_pool_init(3);
    CHECKF(rt_pool_threads() == 3, "pool has %d threads", rt_pool_threads());
    CHECK(each_golden("conv4_B5", check_jit_file) >= 1);
    CHECK(each_golden("resnet8_B4", check_jit_file) >= 1);
    rt_pool_init(1);
}

/* The plan of a full-size step: resnet32 at K=4, B=64 (planned, not run).
   Its many same-size activations with nested lifetimes are where placing
   values first-come best-fit left a sixth of the region unused (475 MiB
   for 400 live); check_plan holds the region within 5% of the live peak. */
TEST(memplan_resnet32_near_live_peak) {
    Arena a = {0};
    Diag d = {0};
    Spec *s = spec_load("specs/resnet32.lua", &a, &d);
    REQUIRE(s);
    s->K = 4;
    Graph *g = lower_train(s, 64, 3, 32, 32, &a, &d);
    PipelineOpts po = {.caps = cg_caps()};
    REQUIRE(g && pipeline_run(g, &d, &po));
    check_plan(g, "resnet32 K=4 B=64");
    arena_free(&a);
}

/* An AOT program (modules built on two threads after every entry is
   planned) has the JIT program's entries: the same regions, kernel
   workspace included. resnet8 at K=3, B=5 with a last batch of 2: its
   epilogue kernels' BatchNorm sums need workspace. */
TEST(aot_program_regions_match_jit) {
    Arena a = {0};
    Diag d = {0};
    Spec *s = spec_load("specs/resnet8.lua", &a, &d);
    REQUIRE(s);
    s->K = 3;
    s->batch = 5;
    Program jit = {0}, aot = {.aot = true};
    CgOptions co = {0};
    REQUIRE(program_build(&jit, s, 12, 16, &co));
    REQUIRE(program_build(&aot, s, 12, 16, &co));
    for (int i = 0; i < 4; i++) {
        CHECKF(!jit.graph[i] == !aot.graph[i], "entry %d: built by one side only", i);
        if (!jit.graph[i] || !aot.graph[i]) continue;
        CHECKF(aot.cgm[i] != NULL, "entry %d: no AOT module", i);
        for (int r = 0; r < RT_NREGIONS; r++)
            CHECKF(jit.entry[i].region_bytes[r] == aot.entry[i].region_bytes[r],
                   "entry %d region %d: JIT %lld bytes, AOT %lld", i, r, (long long)jit.entry[i].region_bytes[r],
                   (long long)aot.entry[i].region_bytes[r]);
    }
    CHECK(jit.entry[0].region_bytes[RT_REGION_SCRATCH] > jit.graph[0]->scratch_live_peak);   /* workspace planned */
    program_free(&jit);
    program_free(&aot);
    arena_free(&a);
}
