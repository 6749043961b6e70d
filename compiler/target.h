/*
** target.h: choosing the Target (ir/target.h) code is generated for.
*/
#ifndef RRC_TARGET_H
#define RRC_TARGET_H

#include <stdio.h>

#include "ir/target.h"

/* The host: LLVM's host triple, CPU and features; vector facts from the
   features; caches from sysfs (the table's defaults where sysfs has none).
   Computed once; safe from any thread. */
const Target *target_host(void);
/* A target by CPU name (LLVM's names of the table: x86-64, x86-64-v2,
   x86-64-v3, x86-64-v4, haswell, skylake, skylake-avx512, icelake-server,
   znver2, znver3, znver4, sapphirerapids, neoverse-n1, neoverse-v1, ...),
   optionally for another triple ("aarch64-linux-gnu"; NULL: the host's) and
   with extra LLVM features (NULL: those the CPU implies). "native" or NULL
   is the host. Cache sizes the table lacks are the host's
   (caches_from_host). False with a one-line reason in err for a name the
   table does not know or a CPU of another architecture than the triple. */
bool target_named(const char *cpu, const char *triple, const char *features, Target *t, char *err, size_t errlen);
/* The target named by RRC_CPU, or the host when it is unset or empty. */
bool target_from_env(Target *t, char *err, size_t errlen);
/* Whether t is of another architecture than the host (its objects cannot
   be linked or run here). */
bool target_foreign(const Target *t);
/* Whether code for t runs on this host; if not, why, in err. */
bool target_runs_here(const Target *t, char *err, size_t errlen);
/* "znver3 (avx2: 8 lanes, 16 registers, 2 FMA x 4 cycles; L1d 32 KiB, L2
   512 KiB, L3 32 MiB, line 64 B; 2 cores)" with ", caches of the host" when
   they are the host's. */
void target_describe(const Target *t, char *buf, size_t len);
/* The CPU names of the table, comma-separated. */
const char *target_names(void);

#endif
