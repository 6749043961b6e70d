/*
** fuzz_cache_stubs.c: the symbols compiler/cache.c references only from
** cache_entry (the key of a compiled graph: LLVM's version, the host
** target, the IR dump), which the manifest fuzz target never calls. They
** stand in for libLLVM and the IR so that the target links without LLVM;
** reaching one is a harness bug.
*/
#include <stdio.h>
#include <stdlib.h>

#include "ir/ir.h"
#include "target.h"

void LLVMGetVersion(unsigned *major, unsigned *minor, unsigned *patch);
void LLVMGetVersion(unsigned *major, unsigned *minor, unsigned *patch) {
    (void)major, (void)minor, (void)patch;
    abort();
}

const Target *target_host(void) { abort(); }

void graph_dump(FILE *f, const Graph *g) {
    (void)f, (void)g;
    abort();
}
