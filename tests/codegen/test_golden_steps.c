/*
** test_golden_steps.c: whole training steps of the bundled specs against
** PyTorch (tests/golden/steps/): loss, logits, targets, the gradient of
** every trainable parameter and the updated running statistics, for
** conv4, resnet8 and resnet32 at several B, K, every aggregation and both
** losses; 10 Adam steps on the same views; and `rrc grad` end to end.
*/
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cg.h"
#include "driver.h"
#include "golden_util.h"
#include "frontend/lower.h"
#include "rt_optim.h"
#include "test.h"

typedef struct Step {
    Arena arena;
    Spec *spec;
    Graph *g;
    int64_t B;
} Step;

/* Loads the file's spec (golden_spec) and builds the training graph (with
   gradients) for its batch. */
static bool step_build(Step *st, const rt_st_file *f, const char *path) {
    Diag d = {0};
    st->spec = golden_spec(f, path, &st->arena);
    if (!st->spec) return false;
    Spec *s = st->spec;
    st->B = atoi(rt_st_meta(f, "B"));
    int64_t c, h, w;
    golden_view_size(f, &c, &h, &w);
    st->g = lower_train(s, st->B, c, h, w, &st->arena, &d);
    if (!st->g) { test_fail(__FILE__, __LINE__, "%s: lowering failed", path); return false; }
    PipelineOpts po = {.verify_each = true, .caps = cg_caps()};
    if (!pipeline_run(st->g, &d, &po)) { test_fail(__FILE__, __LINE__, "%s: passes failed", path); return false; }
    return true;
}

static void check_step_file(const char *path) {
    rt_st_file f = {0};
    if (!golden_read(path, &f)) return;
    Step st = {0};
    if (step_build(&st, &f, path)) {
        Graph *g = st.g;
        Interp it;
        interp_init(&it, g);
        int unbound = golden_bind(&it, g, &f, path);
        CHECKF(unbound == 0, "%s: %d leaves of the graph are not in the golden file", path, unbound);
        if (!unbound) {
            interp_run(&it);
            int compared = 0;
            for (int i = 0; i < g->nouts; i++) {
                const Node *n = g->outs[i].node;
                double *ref = golden_tensor(&f, path, g->outs[i].name, node_numel(n));
                if (!ref) continue;
                char what[600];
                snprintf(what, sizeof what, "%s: %s", path, g->outs[i].name);
                golden_compare(what, interp_value(&it, n), ref, node_numel(n));
                free(ref);
                compared++;
            }
            for (int i = 0; i < f.ntensors; i++) {
                const char *tn = f.tensors[i].name;
                if (!strncmp(tn, "grad.", 5) || !strncmp(tn, "state.", 6))
                    CHECKF(graph_output(g, tn), "%s: golden tensor '%s' is not computed", path, tn);
            }
            CHECKF(compared > 10, "%s: only %d outputs compared", path, compared);
        }
        interp_free(&it);
    }
    arena_free(&st.arena);
    rt_st_free(&f);
}

/* Calls fn on every golden of directory `sub` whose name contains `with`
   and not `without`: steps/ (relational reasoning), baselines/. */
static int for_each_in(const char *sub, const char *with, const char *without, void (*fn)(const char *)) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", golden_dir(), sub);
    DIR *dp = opendir(dir);
    if (!dp) { test_fail(__FILE__, __LINE__, "cannot open %s", dir); return 0; }
    char **names = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        size_t len = strlen(e->d_name);
        if (len < 12 || strcmp(e->d_name + len - 12, ".safetensors")) continue;
        if ((with && !strstr(e->d_name, with)) || (without && strstr(e->d_name, without))) continue;
        names = realloc(names, (size_t)(n + 1) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(dp);
    for (int i = 0; i < n; i++) {   /* a fixed order: sorted */
        for (int k = i + 1; k < n; k++)
            if (strcmp(names[k], names[i]) < 0) { char *t = names[i]; names[i] = names[k]; names[k] = t; }
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        fn(path);
        free(names[i]);
    }
    free(names);
    return n;
}

static int for_each_step(const char *with, const char *without, void (*fn)(const char *)) {
    return for_each_in("steps", with, without, fn);
}

TEST(golden_steps_conv4) { CHECK(for_each_step("conv4_B", NULL, check_step_file) >= 10); }
TEST(golden_steps_resnet8) { CHECK(for_each_step("resnet8_B", NULL, check_step_file) >= 5); }
TEST(golden_steps_resnet32) { CHECK(for_each_step("resnet32_B", NULL, check_step_file) >= 1); }

/* 10 Adam steps on the same views: the loss of every step and the final
   parameters and running statistics. */
static void check_adam_file(const char *path) {
    rt_st_file f = {0};
    if (!golden_read(path, &f)) return;
    Step st = {0};
    if (!step_build(&st, &f, path)) goto out;
    Graph *g = st.g;
    int steps = atoi(rt_st_meta(&f, "steps") ? rt_st_meta(&f, "steps") : "10");
    rt_adam o = {atof(rt_st_meta(&f, "lr")), atof(rt_st_meta(&f, "beta1")), atof(rt_st_meta(&f, "beta2")),
                 atof(rt_st_meta(&f, "eps")), atof(rt_st_meta(&f, "weight_decay"))};
    /* f32 storage of every leaf, as a trainer keeps it */
    float **val = calloc((size_t)g->nnodes, sizeof *val), **m = calloc((size_t)g->nnodes, sizeof *m),
          **v = calloc((size_t)g->nnodes, sizeof *v);
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        if (op_table[n->op].fusion != FUSE_LEAF) continue;
        int64_t e = node_numel(n);
        double *d = golden_tensor(&f, path, n->name, e);
        if (!d) goto free_all;
        val[i] = malloc((size_t)e * sizeof(float));
        m[i] = calloc((size_t)e, sizeof(float));
        v[i] = calloc((size_t)e, sizeof(float));
        for (int64_t k = 0; k < e; k++) val[i][k] = (float)d[k];
        free(d);
    }
    double *losses = golden_tensor(&f, path, "losses", steps), *ours = calloc((size_t)steps, sizeof *ours);
    for (int t = 1; losses && t <= steps; t++) {
        Interp it;
        interp_init(&it, g);
        for (int i = 0; i < g->nnodes; i++)
            if (val[i]) interp_bind_f32(&it, g->nodes[i], val[i]);
        interp_run(&it);
        ours[t - 1] = interp_value(&it, graph_output(g, "loss")->node)[0];
        for (int i = 0; i < g->nouts; i++) {
            const Output *out = &g->outs[i];
            bool grad = !strncmp(out->name, "grad.", 5), state = !strncmp(out->name, "state.", 6);
            if (!grad && !state) continue;
            Node *leaf = graph_find_leaf(g, grad ? OP_PARAM : OP_STATE, out->name + (grad ? 5 : 6));
            int64_t e = node_numel(leaf);
            const double *x = interp_value(&it, out->node);
            if (state) {
                for (int64_t k = 0; k < e; k++) val[leaf->id][k] = (float)x[k];
            } else {
                float *gr = malloc((size_t)e * sizeof *gr);
                for (int64_t k = 0; k < e; k++) gr[k] = (float)x[k];
                rt_adam_update(val[leaf->id], gr, m[leaf->id], v[leaf->id], e, t, &o);
                free(gr);
            }
        }
        interp_free(&it);
    }
    if (losses) {
        char what[600];
        snprintf(what, sizeof what, "%s: losses", path);
        golden_compare(what, ours, losses, steps);
    }
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        if (n->op != OP_PARAM && n->op != OP_STATE) continue;
        char name[512], what[700];
        snprintf(name, sizeof name, "final.%s", n->name);
        int64_t e = node_numel(n);
        double *ref = golden_tensor(&f, path, name, e), *mine = malloc((size_t)e * sizeof *mine);
        for (int64_t k = 0; ref && k < e; k++) mine[k] = val[i][k];
        snprintf(what, sizeof what, "%s: %s", path, name);
        if (ref) golden_compare(what, mine, ref, e);
        free(ref);
        free(mine);
    }
    free(losses);
    free(ours);
free_all:
    for (int i = 0; i < g->nnodes; i++) { free(val[i]); free(m[i]); free(v[i]); }
    free(val);
    free(m);
    free(v);
out:
    arena_free(&st.arena);
    rt_st_free(&f);
}

TEST(golden_adam_10_steps) { CHECK(for_each_step("adam10", NULL, check_adam_file) >= 2); }

/* The baselines (tests/golden/baselines/, make_baseline_goldens.py):
   RotationNet, SimCLR, DeepCluster and Deep InfoMax steps on Conv-4 at odd and even B
   and on ResNet-8, and 10 Adam steps of each. */
TEST(golden_steps_rotation) { CHECK(for_each_in("baselines", "rotation_", "adam", check_step_file) >= 4); }
TEST(golden_steps_simclr) { CHECK(for_each_in("baselines", "simclr_", "adam", check_step_file) >= 4); }
TEST(golden_steps_deepcluster) { CHECK(for_each_in("baselines", "deepcluster_", "adam", check_step_file) >= 3); }
TEST(golden_steps_dim) { CHECK(for_each_in("baselines", "dim_", "adam", check_step_file) >= 3); }
TEST(golden_adam_10_steps_baselines) { CHECK(for_each_in("baselines", "adam10", NULL, check_adam_file) >= 4); }
