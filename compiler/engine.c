/*
** engine.c: the interpreter and the JIT behind one interface (engine.h).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"

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
    CgModule *m = cg_build(g, "rrc_step", o);
    if (!m) return false;
    e->jit = jit_create(m);
    cg_free(m);
    if (!e->jit) return false;
    e->fn = jit_lookup(e->jit, "rrc_step");
    if (!e->fn) return false;
    e->compile_seconds = now() - t0;
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
