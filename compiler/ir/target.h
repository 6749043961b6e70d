/*
** target.h: the machine code is generated for, as data.
**
** Passes (which convolutions get direct kernels, their padded layouts) and
** codegen (vector width, register tiles, cache budgets) read every
** machine-dependent number from a Target; none is written in the kernels.
** compiler/target.c fills one: from the host (the JIT's default: LLVM's
** host CPU and features, cache sizes from sysfs) or from a named CPU of its
** table (`--cpu x86-64-v3`, `RRC_CPU`), whose missing cache facts are the
** host's.
*/
#ifndef RRC_IR_TARGET_H
#define RRC_IR_TARGET_H

#include <stdbool.h>
#include <stdint.h>

typedef struct Target {
    char triple[64];          /* "x86_64-pc-linux-gnu", "aarch64-unknown-linux-gnu" */
    char cpu[64];             /* LLVM's CPU name: "znver3", "x86-64-v3", "neoverse-n1" */
    char features[4096];      /* LLVM feature string ("+avx2,..."); "" when the CPU implies them */
    char isa[16];             /* "avx512", "avx2", "avx", "sse4.2", "sse2", "neon" */
    int lanes;                /* f32 lanes of the vectors the kernels use */
    int vregs;                /* vector registers */
    bool fma;                 /* fused multiply-add instructions */
    int fma_units, fma_latency;   /* FMA pipes and cycles per FMA: accumulators in flight = units x latency */
    int64_t line, l1d, l2, l3;    /* cache line and data cache sizes, bytes (per core for L1/L2) */
    int cores;                /* cores of the machine the caches describe */
    bool host;                /* the host itself (the code may run here) */
    bool caches_from_host;    /* a named CPU whose table entry has no cache sizes */
} Target;

#endif
