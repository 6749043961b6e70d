/*
** engine.c: the interpreter and the JIT behind one interface (engine.h).
** The JIT links an object file: loaded from the compile cache when a valid
** entry exists (a second run of the same step starts at once), otherwise
** built by LLVM and then stored. Both ways run the very same bytes.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "engine.h"

#define STEP_FN "rrc_step"
#define STEP_OBJECT "rrc_step.o"

bool engine_parse(const char *s, EngineKind *k) {
    if (!strcmp(s, "interp")) *k = ENGINE_INTERP;
    else if (!strcmp(s, "jit")) *k = ENGINE_JIT;
    else return false;
    return true;
}

const char *engine_name(EngineKind k) { return k == ENGINE_JIT ? "jit" : "interp"; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Links an object into a new JIT and finds the step in it. */
static bool link_step(Engine *e, const char *obj, size_t len, const CgOptions *o) {
    e->jit = jit_create(obj, len, o);
    e->fn = e->jit ? jit_lookup(e->jit, STEP_FN) : NULL;
    if (!e->fn) {
        jit_free(e->jit);
        e->jit = NULL;
    }
    return e->fn != NULL;
}

/* The step from a valid cache entry; false (g unchanged) if there is none.
   RRC_DEBUG=3 wants the LLVM IR printed, so it always builds. */
static bool load_step(Engine *e, Graph *g, const CacheEntry *ce, const CgOptions *o) {
    if (o && o->debug >= 3) return false;
    char *obj = NULL;
    size_t len = 0;
    CacheLookup r = cache_load(ce, STEP_OBJECT, &obj, &len);
    if (r == CACHE_HIT) {
        int64_t scratch = g->region_bytes[RT_REGION_SCRATCH];
        cg_plan_workspace(g);   /* what cg_build would have added */
        e->cached = link_step(e, obj, len, o);
        free(obj);
        if (e->cached) return true;
        g->region_bytes[RT_REGION_SCRATCH] = scratch;
        fprintf(stderr, "rrc: cache entry %s does not link; rebuilding\n", ce->dir);
    }
    if (r == CACHE_BAD) fprintf(stderr, "rrc: cache entry %s does not match its manifest; rebuilding\n", ce->dir);
    return false;
}

/* Builds the step (LLVM module, O3, object), links it, and stores the
   object once it has linked. */
static bool build_step(Engine *e, Graph *g, const CacheEntry *ce, const CgOptions *o) {
    CgModule *m = cg_build(g, STEP_FN, o);
    if (!m) return false;
    char *obj = NULL;
    size_t len = 0;
    bool ok = cg_emit_jit_object(m, &obj, &len);
    cg_free(m);
    ok = ok && link_step(e, obj, len, o);
    if (ok && ce) cache_store(ce, STEP_OBJECT, obj, len);
    free(obj);
    return ok;
}

bool engine_init(Engine *e, Graph *g, EngineKind k, const CgOptions *o) {
    memset(e, 0, sizeof *e);
    e->kind = k;
    e->g = g;
    if (k == ENGINE_INTERP) {
        interp_init(&e->it, g);
        return true;
    }
    if (!g->planned) RRC_ABORT("engine_init: the JIT needs a planned graph (memplan pass)");
    double t0 = now();
    CacheEntry ce;
    bool use_cache = cache_entry(&ce, g, "jit", STEP_FN, o);
    if (!(use_cache && load_step(e, g, &ce, o)) && !build_step(e, g, use_cache ? &ce : NULL, o)) return false;
    e->compile_seconds = now() - t0;
    if (o && o->debug >= 1 && use_cache) fprintf(stderr, "rrc: compile cache: %s %s\n", e->cached ? "loaded" : "built", ce.dir);
    else if (o && o->debug >= 1) fprintf(stderr, "rrc: compile cache: off\n");
    for (int r = 0; r < RT_NREGIONS; r++) {
        size_t bytes = (size_t)(g->region_bytes[r] + RT_ALIGN);
        bytes = (bytes + RT_ALIGN - 1) / RT_ALIGN * RT_ALIGN;
        e->regions[r] = aligned_alloc(RT_ALIGN, bytes);
        if (!e->regions[r]) RRC_ABORT("out of memory for the %s region (%zu bytes)", rt_region_name(r), bytes);
        memset(e->regions[r], 0, bytes);
    }
    return true;
}

void engine_set(Engine *e, const Node *leaf, const float *data) {
    if (e->kind == ENGINE_INTERP) interp_bind_f32(&e->it, leaf, data);
    else memcpy(e->regions[leaf->region] + leaf->offset, data, (size_t)node_numel(leaf) * sizeof(float));
}

void engine_run(Engine *e) {
    if (e->kind == ENGINE_INTERP) interp_run(&e->it);
    else e->fn(e->regions);
}

void engine_get(const Engine *e, const Node *n, float *out) {
    int64_t k = node_numel(n);
    if (e->kind == ENGINE_INTERP) {
        const double *v = interp_value(&e->it, n);
        RRC_ASSERT(v);
        for (int64_t i = 0; i < k; i++) out[i] = (float)v[i];
    } else {
        memcpy(out, e->regions[n->region] + n->offset, (size_t)k * sizeof(float));
    }
}

void engine_free(Engine *e) {
    if (e->kind == ENGINE_INTERP) interp_free(&e->it);
    jit_free(e->jit);
    for (int r = 0; r < RT_NREGIONS; r++) free(e->regions[r]);
    memset(e, 0, sizeof *e);
}
