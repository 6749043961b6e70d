/*
** driver.c: shared pieces of the rrc commands (see driver.h).
*/
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
