/*
** cache.c: the compiled-code cache (see cache.h). One module for both users
** (the JIT's objects, the AOT trainers of rrc grad) so that the key, the
** manifest and the rules for trusting an entry are written once.
*/
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include "cache.h"
#include "codegen/cg_conv.h"
#include "driver.h"
#include "rt_file.h"
#include "target.h"

#define MANIFEST "manifest"

uint64_t cache_fnv64(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

bool cache_file_hash(const char *path, uint64_t *hash, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    uint64_t h = CACHE_FNV_SEED;
    unsigned char buf[1 << 16];
    size_t n;
    *size = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        h = cache_fnv64(h, buf, n);
        *size += (long)n;
    }
    bool ok = !ferror(f);
    fclose(f);
    *hash = h;
    return ok;
}

bool cache_root(char *buf, size_t n) {
    const char *d = getenv("RRC_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (d && !strcmp(d, "off")) return false;
    if (d && *d) snprintf(buf, n, "%s", d);
    else if (x && *x) snprintf(buf, n, "%s/rrc", x);
    else snprintf(buf, n, "%s/.cache/rrc", home && *home ? home : "/tmp");
    return true;
}

bool cache_mkdirs(const char *path) {
    char tmp[2048];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return false;
            *p = '/';
        }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return false;
    struct stat st;
    if (stat(tmp, &st) != 0) return false;
    if (!S_ISDIR(st.st_mode)) { errno = ENOTDIR; return false; }
    return true;
}

/* ---- the key ---- */

static uint64_t hash_i64(uint64_t h, int64_t v) { return cache_fnv64(h, &v, sizeof v); }

/* a string with its length, so that "ab"+"c" and "a"+"bc" differ */
static uint64_t hash_str(uint64_t h, const char *s) {
    if (!s) return hash_i64(h, -1);
    size_t n = strlen(s);
    return cache_fnv64(hash_i64(h, (int64_t)n), s, n);
}

/* The running compiler's bytes: the code it generates depends on them, and
   RRC_VERSION does not change with every build. Hashed once per process. */
static uint64_t self_hash;
static bool self_ok;
static void hash_self(void) {
    long size = 0;
    self_ok = cache_file_hash("/proc/self/exe", &self_hash, &size) && size > 0;
}

/* The graph as codegen reads it: the dump text (names, shapes, attributes,
   fusion, spec lines) and, exactly, what the text rounds or leaves out
   (float attributes, the memory plan, flags, kernel members, region
   sizes). A new Node or Graph field that codegen reads belongs here. */
static uint64_t hash_graph(uint64_t h, const Graph *g) {
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m) RRC_ABORT("open_memstream: %s", strerror(errno));
    graph_dump(m, g);
    fclose(m);
    h = cache_fnv64(h, text, len);
    free(text);
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        h = hash_i64(h, n->op);
        for (int k = 0; k < n->nin; k++) h = hash_i64(h, n->in[k]->id);
        for (int k = 0; k < n->rank; k++) h = hash_i64(h, n->dim[k]);
        for (int k = 0; k < IR_MAX_IA; k++) h = hash_i64(h, n->ia[k]);
        for (int k = 0; k < IR_MAX_FA; k++) h = cache_fnv64(h, &n->fa[k], sizeof n->fa[k]);
        h = hash_i64(h, n->flags);
        h = hash_i64(h, n->region);
        h = hash_i64(h, n->offset);
        h = hash_i64(h, n->inlined);
        const Kernel *k = n->kernel;
        h = hash_i64(h, k ? (int64_t)k->kind : -1);
        for (int j = 0; k && j < k->nmembers; j++) h = hash_i64(h, k->members[j]->id);
    }
    for (int r = 0; r < RT_NREGIONS; r++) h = hash_i64(h, g->region_bytes[r]);
    return h;
}

/* The target the code is generated for (what cg_target_machine uses, and
   every fact of it the kernels are tiled by) and the other options that
   change the code: the profile sites' entry name. */
static uint64_t hash_options(uint64_t h, const CgOptions *o) {
    const Target *t = o && o->target ? o->target : target_host();
    h = hash_str(h, t->triple);
    h = hash_str(h, t->cpu);
    h = hash_str(h, t->features);
    h = hash_str(h, t->isa);
    const int64_t facts[] = {t->lanes, t->vregs, t->fma, t->fma_units, t->fma_latency, t->line, t->l1d, t->l2, t->l3};
    for (size_t i = 0; i < sizeof facts / sizeof *facts; i++) h = hash_i64(h, facts[i]);
    unsigned major, minor, patch;
    LLVMGetVersion(&major, &minor, &patch);
    h = hash_i64(h, major);
    h = hash_i64(h, minor);
    h = hash_i64(h, patch);
    h = hash_i64(h, cg_conv_winograd);   /* switched off by tests to compare */
    return hash_str(h, o ? o->entry : NULL);
}

bool cache_entry(CacheEntry *ce, const Graph *g, const char *kind, const char *fn, const CgOptions *o) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    char root[1024];
    memset(ce, 0, sizeof *ce);
    if (!cache_root(root, sizeof root)) return false;
    pthread_once(&once, hash_self);
    if (!self_ok) return false;
    uint64_t h = hash_str(CACHE_FNV_SEED, "rrc-cache-1");
    h = hash_str(h, kind);
    h = hash_str(h, fn);
    h = hash_str(h, RRC_VERSION);
    h = hash_i64(h, (int64_t)self_hash);
    h = hash_options(h, o);
    ce->key = hash_graph(h, g);
    snprintf(ce->dir, sizeof ce->dir, "%s/%016llx", root, (unsigned long long)ce->key);
    return true;
}

/* ---- entries ---- */

static void entry_path(const CacheEntry *ce, const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", ce->dir, name);
}

/* The manifest's size and hash if it exists; CACHE_BAD if it does not
   name this entry's key. */
static CacheLookup read_manifest(const CacheEntry *ce, long *size, uint64_t *hash) {
    char path[1400], line[256];
    entry_path(ce, MANIFEST, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) return CACHE_MISS;
    unsigned long long k = 0, h = 0;
    bool ok = fgets(line, sizeof line, f) && sscanf(line, "rrc-cache-1 %llx %ld %llx", &k, size, &h) == 3 && k == ce->key;
    fclose(f);
    *hash = h;
    return ok ? CACHE_HIT : CACHE_BAD;
}

CacheLookup cache_check(const CacheEntry *ce, const char *name) {
    long size = -1, got = -2;
    uint64_t hash = 0, h = 1;
    CacheLookup r = read_manifest(ce, &size, &hash);
    if (r != CACHE_HIT) return r;
    char path[1400];
    entry_path(ce, name, path, sizeof path);
    return cache_file_hash(path, &h, &got) && got == size && h == hash ? CACHE_HIT : CACHE_BAD;
}

/* The whole file, malloc'd; NULL if unreadable. */
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = xmalloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = xrealloc(buf, cap *= 2);
    }
    bool ok = !ferror(f);
    fclose(f);
    if (!ok) { free(buf); return NULL; }
    *len = n;
    return buf;
}

CacheLookup cache_load(const CacheEntry *ce, const char *name, char **data, size_t *len) {
    long size = -1;
    uint64_t hash = 0;
    CacheLookup r = read_manifest(ce, &size, &hash);
    if (r != CACHE_HIT) return r;
    char path[1400];
    entry_path(ce, name, path, sizeof path);
    *data = read_file(path, len);
    if (*data && (long)*len == size && cache_fnv64(CACHE_FNV_SEED, *data, *len) == hash) return CACHE_HIT;
    free(*data);
    *data = NULL;
    return CACHE_BAD;
}

/* Writes path atomically: a temporary file in the same directory, renamed
   over path once complete. */
static bool write_atomic(const char *path, const void *data, size_t len) {
    return rt_write_atomic(path, data, len, NULL, 0) == 0;
}

static bool write_manifest(const CacheEntry *ce, long size, uint64_t hash) {
    char path[1400], line[128];
    entry_path(ce, MANIFEST, path, sizeof path);
    int n = snprintf(line, sizeof line, "rrc-cache-1 %016llx %ld %016llx\n", (unsigned long long)ce->key, size,
                     (unsigned long long)hash);
    return write_atomic(path, line, (size_t)n);
}

bool cache_commit(const CacheEntry *ce, const char *name) {
    char path[1400];
    long size = 0;
    uint64_t hash = 0;
    entry_path(ce, name, path, sizeof path);
    return cache_file_hash(path, &hash, &size) && write_manifest(ce, size, hash);
}

bool cache_store(const CacheEntry *ce, const char *name, const void *data, size_t len) {
    static bool noted;
    char path[1400];
    entry_path(ce, name, path, sizeof path);
    /* the file first, its manifest last: a crash in between leaves a
       manifest that does not match (rebuilt) or none (a miss) */
    bool ok = cache_mkdirs(ce->dir) && write_atomic(path, data, len) &&
              write_manifest(ce, (long)len, cache_fnv64(CACHE_FNV_SEED, data, len));
    if (!ok && !noted) {
        fprintf(stderr, "rrc: note: cannot write the compile cache %s (%s); going on without it\n", ce->dir, strerror(errno));
        noted = true;
    }
    return ok;
}
