/*
** cache.h: rrc's on-disk cache of compiled code: the JIT's step objects
** (engine.c) and the AOT trainers of `rrc grad --engine aot` (cmd_grad.c).
**
** The cache lives in $RRC_CACHE_DIR, else $XDG_CACHE_HOME/rrc, else
** ~/.cache/rrc; RRC_CACHE_DIR=off disables it. An entry is a directory
** ROOT/KEY holding the compiled file and a one-line manifest
** "rrc-cache-1 KEY SIZE HASH" (hex key, byte size, FNV-1a of the bytes).
** The key covers everything the generated code depends on: the planned
** graph (dump text and the exact fields codegen reads), the entry kind and
** function name, the target (triple, CPU, features: the asked-for ones, or
** the host's), rrc's version, LLVM's version and the running compiler
** binary itself (so a rebuilt rrc never loads code an older one made). A
** file is used only if the manifest names its key, size and hash; anything
** else is reported and rebuilt, never executed. Files are written under a
** temporary name and renamed, so a reader never sees half an entry.
*/
#ifndef RRC_CACHE_H
#define RRC_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "codegen/cg.h"
#include "ir/ir.h"

#define CACHE_FNV_SEED 0xcbf29ce484222325ULL
uint64_t cache_fnv64(uint64_t h, const void *p, size_t n);
/* FNV-1a of a file's bytes and its size; false if unreadable. */
bool cache_file_hash(const char *path, uint64_t *hash, long *size);

/* The cache's root directory; false when RRC_CACHE_DIR=off. */
bool cache_root(char *buf, size_t n);
/* mkdir -p (mode 0700 for what it creates); false with errno set. */
bool cache_mkdirs(const char *path);

typedef struct CacheEntry {
    uint64_t key;
    char dir[1200];           /* ROOT/KEY */
} CacheEntry;

/* The entry of code compiled from planned graph g: kind names what is
   cached ("jit", "aot"), fn the function the code defines (NULL: none),
   o the target (NULL: the host). False when the cache is off or the
   compiler's identity cannot be read (then nothing is cached). */
bool cache_entry(CacheEntry *ce, const Graph *g, const char *kind, const char *fn, const CgOptions *o);

typedef enum CacheLookup {
    CACHE_MISS,               /* no manifest: build */
    CACHE_HIT,                /* the manifest names this key, size and hash */
    CACHE_BAD,                /* a manifest that does not match: rebuild, and say so */
} CacheLookup;

/* Checks ce->dir/name in place (for a file that is run, not loaded). */
CacheLookup cache_check(const CacheEntry *ce, const char *name);
/* Reads ce->dir/name into memory and checks the bytes read (so what is
   checked is what is executed); *data is malloc'd on a hit. */
CacheLookup cache_load(const CacheEntry *ce, const char *name, char **data, size_t *len);
/* Writes data as ce->dir/name and then its manifest. On failure (a
   read-only cache) prints one note per process, leaves no entry and
   returns false: callers go on without the cache. */
bool cache_store(const CacheEntry *ce, const char *name, const void *data, size_t len);
/* Writes the manifest of a file already built in ce->dir (by another
   program); false if it cannot. */
bool cache_commit(const CacheEntry *ce, const char *name);

#endif
