/*
** rt_prof.h: `--profile`: where the time of a training step goes, kernel
** by kernel.
**
** Compiled code (compiler/codegen/cg_llvm.c, cg_kernel_begin/end) gives
** every kernel call of a step one mutable global rt_prof_site, initialised
** with its name and the op table's cost of one call, and calls
** rt_prof_begin/rt_prof_end around the call. They return at once unless
** profiling is on and a step is being timed (rt_prof_step_begin/end), so
** a trainer without --profile pays two calls per kernel (a few hundred
** per step; measured in the noise of `bench`), and kernels run outside the
** timed steps (evaluation features) are not counted. A site is linked into
** the list of the report the first time it records a call.
**
** The step function runs on the calling thread (the pool only runs parts
** of a kernel), so the time between begin and end is the kernel's wall
** time, pool included. Not thread-safe: one thread runs the timed steps.
**
** Sites live in the compiled code's memory (JIT or AOT): rt_prof_stop
** unlinks them all and must be called before that code is freed.
*/
#ifndef RT_PROF_H
#define RT_PROF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* LAYOUT: cg_llvm.c builds this struct as an LLVM constant
   {ptr, double, double, i64, i64, i64, ptr, i64}; change both together. */
typedef struct rt_prof_site {
    const char *name;              /* "ENTRY: MODULE OP", e.g. "train_b64: backbone.layer1.0.conv1 conv2d"
                                      (MODULE has no space; OP is the rest) */
    double flops, bytes;           /* one call's cost (the op table's) */
    int64_t calls;
    int64_t ns;                    /* time inside the kernel, nanoseconds */
    int64_t t0;                    /* start of the current call */
    struct rt_prof_site *next;     /* the report's list */
    int64_t linked;
} rt_prof_site;

void rt_prof_begin(rt_prof_site *s);
void rt_prof_end(rt_prof_site *s);

/* Clears the counters and turns profiling on / unlinks every site and
   turns it off. */
void rt_prof_start(void);
void rt_prof_stop(void);
/* Brackets one profiled step: kernels count only inside, and the step's
   wall time is what the shares are of. */
void rt_prof_step_begin(void);
void rt_prof_step_end(void);

/* The sites that recorded a call since rt_prof_start, the last called
   first (follow ->next): `rrc plan --calibrate` reads them. */
const rt_prof_site *rt_prof_sites(void);

/* Prints the table of the profiled steps to f (the `top` slowest kernels,
   then the rest in one line, the total, "other", and summaries by op and
   by top-level module); when csv_path is not NULL writes every kernel and
   summary as CSV there. Returns 0, or -1 with a message in err if the CSV
   cannot be written. */
int rt_prof_report(FILE *f, int top, const char *csv_path, char *err, size_t errlen);

/* The process's resident memory now and its peak so far (bytes, from
   /proc/self; -1 where that cannot be read): `bench` reports what a step
   made resident against the planned regions. */
int64_t rt_prof_rss(void);
int64_t rt_prof_peak_rss(void);

#endif
