/*
** engine.c: the interpreter and the JIT behind one interface (engine.h).
** The JIT links an object file: loaded from the compile cache when a valid
** entry exists (a second run of the same step starts at once), otherwise
** built by LLVM and then stored. Both ways run the very same bytes.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "engine.h"

#define STEP_FN "rrc_step"
#define STEP_OBJECTS "rrc_step.objs"

bool engine_parse(const char *s, EngineKind *k) {
    if (!strcmp(s, "interp")) *k = ENGINE_INTERP;
    else if (!strcmp(s, "jit")) *k = ENGINE_JIT;
    else return false;
    return true;
}

const char *engine_name(EngineKind k) { return k == ENGINE_JIT ? "jit" : "interp"; }

/* Links objects into a new JIT and finds the step in it. */
static bool link_step(Engine *e, const CgObjects *objs, const CgOptions *o) {
    e->jit = jit_create(objs, o);
    e->fn = e->jit ? jit_lookup(e->jit, STEP_FN) : NULL;
    if (!e->fn) {
        jit_free(e->jit);
        e->jit = NULL;
    }
    return e->fn != NULL;
}

/* The cache holds a step's objects as one file: "RRCOBJS1", their count
   and lengths (u64, native order), then the objects back to back. */
static const char objs_magic[8] = {'R', 'R', 'C', 'O', 'B', 'J', 'S', '1'};

static char *pack_objects(const CgObjects *objs, size_t *len) {
    size_t n = 8 + 8 * (size_t)(objs->n + 1);
    for (int k = 0; k < objs->n; k++) n += objs->len[k];
    char *p = xmalloc(n), *w = p;
    uint64_t cnt = (uint64_t)objs->n;
    memcpy(w, objs_magic, 8), w += 8;
    memcpy(w, &cnt, 8), w += 8;
    for (int k = 0; k < objs->n; k++) {
        uint64_t l = objs->len[k];
        memcpy(w, &l, 8), w += 8;
    }
    for (int k = 0; k < objs->n; k++) memcpy(w, objs->data[k], objs->len[k]), w += objs->len[k];
    *len = n;
    return p;
}

/* false if the file is not such a pack (then nothing is allocated) */
static bool unpack_objects(const char *p, size_t len, CgObjects *objs) {
    memset(objs, 0, sizeof *objs);
    uint64_t cnt;
    if (len < 16 || memcmp(p, objs_magic, 8)) return false;
    memcpy(&cnt, p + 8, 8);
    if (cnt < 1 || cnt > CG_JIT_PARTS || len < 16 + 8 * cnt) return false;
    size_t off = 16 + 8 * (size_t)cnt;
    uint64_t l[CG_JIT_PARTS];
    for (uint64_t k = 0; k < cnt; k++) {
        memcpy(&l[k], p + 16 + 8 * k, 8);
        if (l[k] > len - off) return false;
        off += l[k];
    }
    if (off != len) return false;
    off = 16 + 8 * (size_t)cnt;
    objs->n = (int)cnt;
    for (int k = 0; k < objs->n; k++) {
        objs->len[k] = l[k];
        objs->data[k] = xmalloc(l[k] ? l[k] : 1);
        memcpy(objs->data[k], p + off, l[k]);
        off += l[k];
    }
    return true;
}

/* The step from a valid cache entry; false if there is none.
   RRC_DEBUG=3 wants the LLVM IR printed, so it always builds. */
static bool load_step(Engine *e, const CacheEntry *ce, const CgOptions *o) {
    if (o && o->debug >= 3) return false;
    char *data = NULL;
    size_t len = 0;
    CacheLookup r = cache_load(ce, STEP_OBJECTS, &data, &len);
    if (r == CACHE_HIT) {
        CgObjects objs;
        bool packed = unpack_objects(data, len, &objs);
        free(data);
        if (packed) {
            e->cached = link_step(e, &objs, o);
            cg_objects_free(&objs);
            if (e->cached) return true;
        }
        fprintf(stderr, "rrc: cache entry %s does not link; rebuilding\n", ce->dir);
    }
    if (r == CACHE_BAD) fprintf(stderr, "rrc: cache entry %s does not match its manifest; rebuilding\n", ce->dir);
    return false;
}

/* Builds the step (LLVM module, O3, objects), links it, and stores the
   objects once they have linked. */
static bool build_step(Engine *e, Graph *g, const CacheEntry *ce, const CgOptions *o) {
    CgObjects objs;
    if (!cg_jit_objects(g, STEP_FN, o, &objs)) return false;
    bool ok = link_step(e, &objs, o);
    if (ok && ce) {
        size_t len;
        char *pack = pack_objects(&objs, &len);
        cache_store(ce, STEP_OBJECTS, pack, len);
        free(pack);
    }
    cg_objects_free(&objs);
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
    double t0 = wall_seconds();
    CacheEntry ce;
    bool use_cache = cache_entry(&ce, g, "jit", STEP_FN, o);
    if (!(use_cache && load_step(e, &ce, o)) && !build_step(e, g, use_cache ? &ce : NULL, o)) return false;
    e->compile_seconds = wall_seconds() - t0;
    if (o && o->debug >= 1 && use_cache) fprintf(stderr, "rrc: compile cache: %s %s\n", e->cached ? "loaded" : "built", ce.dir);
    else if (o && o->debug >= 1) fprintf(stderr, "rrc: compile cache: off\n");
    for (int r = 0; r < RT_NREGIONS; r++) {
        size_t bytes = (size_t)(g->region_bytes[r] + RT_ALIGN);
        bytes = (bytes + RT_ALIGN - 1) / RT_ALIGN * RT_ALIGN;
        e->regions[r] = aligned_alloc(RT_ALIGN, bytes);
        if (!e->regions[r]) {
            fprintf(stderr, "rrc: out of memory for the step's %s region (%.1f MiB)\n", rt_region_name(r), (double)bytes / (1 << 20));
            engine_free(e);
            return false;
        }
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
