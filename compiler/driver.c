/*
** driver.c: shared pieces of the rrc commands (see driver.h).
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "rt_init.h"
#include "target.h"

bool flag_is(const char *arg, const char *name) {
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == 0 || arg[n] == '=');
}

const char *flag_value(const char *cmd, int argc, char **argv, int *i, const char *name) {
    const char *a = argv[*i], *eq = strchr(a, '=');
    if (eq) return eq + 1;
    if (*i + 1 >= argc) {
        fprintf(stderr, "rrc %s: flag %s needs a value\n", cmd, name);
        exit(EXIT_USAGE);
    }
    (*i)++;
    return argv[*i];
}

long flag_int(const char *cmd, const char *name, const char *v, long lo, long hi) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "rrc %s: %s must be an integer in [%ld, %ld] (got \"%s\")\n", cmd, name, lo, hi, v);
        exit(EXIT_USAGE);
    }
    return x;
}

Spec *driver_load_spec(const char *cmd, const char *path, const SpecOverrides *ov, Arena *a) {
    Diag d = {0};
    Spec *s = spec_load(path, a, &d);
    if (!s) exit(EXIT_BADSPEC);
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
