/*
** fuzz_cache_manifest.c: libFuzzer target of the compile cache's manifest
** reading (cache_check and cache_load in compiler/cache.c).
**
** Input: the manifest file of one cache entry; the input's bytes after its
** first newline are also the entry's cached file ("obj"), so that a
** manifest can name their true size and hash. The entry's key is fixed
** (FUZZ_KEY, as the seeds write it). A hit must mean exactly that: the
** bytes cache_load returns are the file's, and their size and FNV-1a are
** what the manifest says.
*/
#include "fuzz_common.h"

#include "cache.h"

#define FUZZ_KEY 0x0123456789abcdefULL

static int fuzz_cache_manifest_one(const uint8_t *data, size_t size) {
    CacheEntry ce;
    memset(&ce, 0, sizeof ce);
    ce.key = FUZZ_KEY;
    snprintf(ce.dir, sizeof ce.dir, "%s", fuzz_dir("cache"));
    const uint8_t *nl = memchr(data, '\n', size);
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t blen = (size_t)(data + size - body);
    fuzz_write(fuzz_path(ce.dir, "manifest"), data, size);
    fuzz_write(fuzz_path(ce.dir, "obj"), body, blen);
    char want[128];
    snprintf(want, sizeof want, "rrc-cache-1 %016llx %ld %016llx", (unsigned long long)FUZZ_KEY, (long)blen,
             (unsigned long long)cache_fnv64(CACHE_FNV_SEED, body, blen));

    CacheLookup r1 = cache_check(&ce, "obj");
    char *got = NULL;
    size_t glen = 0;
    CacheLookup r2 = cache_load(&ce, "obj", &got, &glen);
    if (r1 != r2) abort();   /* the two readers of one manifest agree */
    if (r2 == CACHE_HIT) {
        if (!got || glen != blen || (blen && memcmp(got, body, blen) != 0)) abort();
        free(got);
    } else if (got) {
        abort();
    }
    if (r2 == CACHE_MISS) abort();   /* a manifest exists */
    /* the manifest the writer would write is always a hit */
    fuzz_write(fuzz_path(ce.dir, "manifest"), want, strlen(want));
    if (cache_check(&ce, "obj") != CACHE_HIT) abort();
    return r2 == CACHE_HIT ? 0 : -1;
}

#ifndef RRC_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_cache_manifest_one(data, size);
    return 0;
}
#endif
