/*
** golden_util.c: see golden_util.h.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "golden_util.h"
#include "target.h"
#include "test.h"

double golden_compare(const char *what, const double *ours, const double *ref, int64_t n) {
    double rmax = 0, err = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) rmax = fmax(rmax, fabs(ref[i]));
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(ours[i] - ref[i]);
        if (!(e <= err)) { err = e; at = i; }   /* NaN counts as the worst */
    }
    double allowed = tol_f32(rmax), ratio = err / allowed;
    if (!(ratio <= 1))
        test_fail(__FILE__, __LINE__, "%s: max|ours - ref| = %.3g at [%lld] (ours %.9g, ref %.9g), allowed %.3g",
                  what, err, (long long)at, ours[at], ref[at], allowed);
    return ratio;
}

bool golden_read(const char *path, rt_st_file *f) {
    char err[512];
    if (rt_st_read(path, f, err, sizeof err) != 0) {
        test_fail(__FILE__, __LINE__, "%s", err);
        return false;
    }
    return true;
}

double *golden_tensor(const rt_st_file *f, const char *path, const char *name, int64_t n) {
    const rt_tensor *t = rt_st_find(f, name);
    if (!t) {
        test_fail(__FILE__, __LINE__, "%s: no tensor '%s'", path, name);
        return NULL;
    }
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    char err[512];
    if (rt_tensor_to_f64(t, v, n, path, err, sizeof err) != 0) {
        test_fail(__FILE__, __LINE__, "%s", err);
        free(v);
        return NULL;
    }
    return v;
}

int golden_bind(Interp *it, Graph *g, const rt_st_file *f, const char *path) {
    int unbound = 0;
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        if (op_table[n->op].fusion != FUSE_LEAF) continue;
        if (!rt_st_find(f, n->name)) { unbound++; continue; }
        double *v = golden_tensor(f, path, n->name, node_numel(n));
        if (!v) { unbound++; continue; }
        interp_bind(it, n, v);
        free(v);
    }
    return unbound;
}

static Spec *load(const char *golden, const char *spec, Arena *a) {
    Diag d = {0};
    Spec *s = spec_load(spec, a, &d);
    if (!s) test_fail(__FILE__, __LINE__, "%s: cannot load %s", golden, spec);
    return s;
}

/* The last linear layer under l, or NULL. */
static Layer *last_linear(Layer *l) {
    if (l->kind == LK_LINEAR) return l;
    Layer *found = NULL;
    for (int i = 0; i < l->nchildren; i++) {
        Layer *c = last_linear(l->children[i]);
        if (c) found = c;
    }
    return found;
}

Spec *golden_spec(const rt_st_file *f, const char *path, Arena *a) {
    const char *model = rt_st_meta(f, "model"), *method = rt_st_meta(f, "method"), *backbone = rt_st_meta(f, "backbone");
    if (!model) {
        test_fail(__FILE__, __LINE__, "%s: no 'model' metadata", path);
        return NULL;
    }
    char spec[512];
    snprintf(spec, sizeof spec, "specs/%s.lua", model);
    Spec *s;
    if (access(spec, F_OK) == 0 || !method || !backbone) {
        s = load(path, spec, a);
    } else {
        snprintf(spec, sizeof spec, "specs/%s_conv4.lua", method);
        s = load(path, spec, a);
        snprintf(spec, sizeof spec, "specs/%s.lua", backbone);
        Spec *b = s ? load(path, spec, a) : NULL;
        if (!b) return NULL;
        s->backbone = b->backbone;
    }
    if (!s) return NULL;
    if (rt_st_meta(f, "K")) s->K = atoi(rt_st_meta(f, "K"));
    if ((rt_st_meta(f, "aggregation") && !aggregation_parse(rt_st_meta(f, "aggregation"), &s->head.aggregation)) ||
        (rt_st_meta(f, "loss") && !loss_parse(rt_st_meta(f, "loss"), &s->loss.kind))) {
        test_fail(__FILE__, __LINE__, "%s: bad aggregation or loss metadata", path);
        return NULL;
    }
    if (rt_st_meta(f, "clusters") && s->method.kind == METHOD_DEEPCLUSTER) {
        /* the goldens use fewer clusters than the spec: its head's last layer narrows with them */
        s->method.clusters = atoi(rt_st_meta(f, "clusters"));
        Layer *l = last_linear(s->method.head);
        if (l) l->out = s->method.clusters;
    }
    if (rt_st_meta(f, "gamma")) s->loss.gamma = atof(rt_st_meta(f, "gamma"));
    if (rt_st_meta(f, "alpha")) s->loss.alpha = atof(rt_st_meta(f, "alpha"));
    if (method && strcmp(method, method_name(s->method.kind)) != 0) {
        test_fail(__FILE__, __LINE__, "%s: made for method %s, but %s trains %s", path, method, spec, method_name(s->method.kind));
        return NULL;
    }
    return s;
}

void golden_view_size(const rt_st_file *f, int64_t *c, int64_t *h, int64_t *w) {
    const rt_tensor *x = rt_st_find(f, "x");
    bool ok = x && x->rank == 4;
    *c = ok ? x->shape[1] : 3;
    *h = ok ? x->shape[2] : 32;
    *w = ok ? x->shape[3] : 32;
}

const char *golden_dir(void) {
    const char *d = getenv("RRC_GOLDEN_DIR");
    return d && *d ? d : "tests/golden";
}

static const Target *cur_target;

const Target *test_target(void) { return cur_target ? cur_target : target_host(); }

int test_other_targets(void (*fn)(void)) {
    static const char *const levels[] = {"x86-64-v2", "x86-64-v3", "x86-64-v4"};
    int n = 0;
    for (size_t i = 0; i < sizeof levels / sizeof *levels; i++) {
        Target t;
        char err[256];
        if (!target_named(levels[i], NULL, NULL, &t, err, sizeof err) || !target_runs_here(&t, err, sizeof err) ||
            !strcmp(t.isa, target_host()->isa))
            continue;
        printf("     on %s (%s, %d lanes, %d registers)\n", t.cpu, t.isa, t.lanes, t.vregs);
        cur_target = &t;
        fn();
        cur_target = NULL;
        n++;
    }
    if (n == 0) test_skip("no other x86-64 level with another ISA runs on this host (%s)", target_host()->isa);
    return n;
}
