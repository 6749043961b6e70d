/*
** rt_pool.h: the fixed thread pool of a step. Kernels split their work
** over images into as many contiguous parts as the pool has threads; part
** t always runs on thread t and partial sums are added in thread order, so
** results are deterministic for a given thread count. Without
** rt_pool_init (tests, rrc grad) everything runs on the calling thread.
** Per-thread scratch is allocated on first use and kept, so steps after
** the first allocate nothing.
*/
#ifndef RT_POOL_H
#define RT_POOL_H

#include <stddef.h>
#include <stdint.h>

/* Starts n - 1 worker threads (n >= 1); again with another n restarts. */
void rt_pool_init(int n);
int rt_pool_threads(void);
/* Runs fn(ctx, t) for t = 0 .. ntasks-1 (ntasks <= rt_pool_threads()), task
   t on thread t (0 = the caller), and returns when all are done. */
void rt_pool_run(int ntasks, void (*fn)(void *ctx, int t), void *ctx);
/* Scratch of thread t of at least n floats (64-byte aligned), kept. */
float *rt_pool_scratch(int t, size_t n);
void rt_pool_shutdown(void);

/* A generated kernel (compiler/codegen/cg_fuse.c): computes rows [r0, r1)
   of its iteration space from the pointers in args. Rows are independent,
   so any split gives the same result. */
typedef void (*rt_rows_fn)(void **args, int64_t r0, int64_t r1);
/* Runs fn on [0, rows) split into contiguous parts over the pool, each
   part at least min_rows rows (fewer parts when rows are few). */
void rt_par_rows(rt_rows_fn fn, void **args, int64_t rows, int64_t min_rows);

#endif
