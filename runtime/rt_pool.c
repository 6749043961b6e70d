/*
** rt_pool.c: the step's thread pool (see rt_pool.h). A step runs a few
** dozen kernels back to back, each split over the pool, so handing out a
** job must cost well under a kernel: workers first spin on the job
** counter (generation) for a while after each job, and only then sleep on
** a condition variable; the caller likewise spins before it sleeps waiting
** for the job to finish. Waking a sleeping thread takes tens of
** microseconds on this kind of machine, and with sleeping alone conv4's
** step on two threads was 23% slower than its kernels' sum (DECISIONS.md).
** The spin is bounded (SPIN_NS) so that an idle pool, and the
** augmentation thread running beside a step, get the CPU back.
*/
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_pool.h"

#define MAX_THREADS 256
#define SPIN_NS 100000   /* 0.1 ms */

static int nthreads = 1;
static pthread_t workers[MAX_THREADS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv_start = PTHREAD_COND_INITIALIZER, cv_done = PTHREAD_COND_INITIALIZER;
/* the job: written by the caller before it bumps generation (release),
   read by workers after they see the new generation (acquire) */
static void (*job_fn)(void *, int);
static void *job_ctx;
static int job_tasks;
static atomic_ulong generation;
static atomic_int pending, sleepers, quitting;
static unsigned long start_generation;
static float *scratch[MAX_THREADS];
static size_t scratch_cap[MAX_THREADS];

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Spins until *v != old (or quitting) for at most SPIN_NS; whether it changed. */
static bool spin_while_ulong(atomic_ulong *v, unsigned long old) {
    int64_t t0 = 0;
    for (int i = 0;; i++) {
        if (atomic_load_explicit(v, memory_order_acquire) != old || atomic_load(&quitting)) return true;
        cpu_relax();
        if ((i & 63) == 63) {
            int64_t t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) return false;
        }
    }
}

static void *worker_main(void *arg) {
    int id = (int)(intptr_t)arg;
    /* the generation when the pool was made, not when this thread first
       runs: a job posted before then is still this worker's to do */
    unsigned long seen = start_generation;
    for (;;) {
        if (!spin_while_ulong(&generation, seen)) {
            pthread_mutex_lock(&mu);
            atomic_fetch_add(&sleepers, 1);
            while (atomic_load(&generation) == seen && !atomic_load(&quitting)) pthread_cond_wait(&cv_start, &mu);
            atomic_fetch_sub(&sleepers, 1);
            pthread_mutex_unlock(&mu);
        }
        if (atomic_load(&quitting)) break;
        seen = atomic_load_explicit(&generation, memory_order_acquire);
        if (id < job_tasks) job_fn(job_ctx, id);
        if (atomic_fetch_sub_explicit(&pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&mu);
            pthread_cond_signal(&cv_done);
            pthread_mutex_unlock(&mu);
        }
    }
    return NULL;
}

void rt_pool_shutdown(void) {
    pthread_mutex_lock(&mu);
    atomic_store(&quitting, 1);
    pthread_cond_broadcast(&cv_start);
    pthread_mutex_unlock(&mu);
    for (int i = 1; i < nthreads; i++) pthread_join(workers[i], NULL);
    for (int i = 0; i < MAX_THREADS; i++) {
        free(scratch[i]);
        scratch[i] = NULL;
        scratch_cap[i] = 0;
    }
    nthreads = 1;
    atomic_store(&quitting, 0);
}

void rt_pool_init(int n) {
    static int registered;
    if (n < 1) n = 1;
    if (n > MAX_THREADS) n = MAX_THREADS;
    if (n == nthreads) return;
    rt_pool_shutdown();
    start_generation = atomic_load(&generation);
    int started = 1;
    for (int i = 1; i < n; i++) {
        if (pthread_create(&workers[i], NULL, worker_main, (void *)(intptr_t)i) != 0) break;
        started++;
    }
    nthreads = started;
    if (!registered) {
        atexit(rt_pool_shutdown);
        registered = 1;
    }
}

int rt_pool_threads(void) { return nthreads; }

void rt_pool_run(int ntasks, void (*fn)(void *ctx, int t), void *ctx) {
    if (ntasks > nthreads) ntasks = nthreads;
    if (ntasks <= 1) {
        if (ntasks == 1) fn(ctx, 0);
        return;
    }
    job_fn = fn;
    job_ctx = ctx;
    job_tasks = ntasks;
    atomic_store(&pending, nthreads - 1);
    atomic_fetch_add_explicit(&generation, 1, memory_order_seq_cst);
    /* a worker that went to sleep is woken under the mutex: it either saw
       the new generation before waiting or is in the wait */
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&mu);
        pthread_cond_broadcast(&cv_start);
        pthread_mutex_unlock(&mu);
    }
    fn(ctx, 0);
    int64_t t0 = 0;
    for (int i = 0; atomic_load_explicit(&pending, memory_order_acquire) > 0; i++) {
        cpu_relax();
        if ((i & 63) == 63) {
            int64_t t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) {
                pthread_mutex_lock(&mu);
                while (atomic_load(&pending) > 0) pthread_cond_wait(&cv_done, &mu);
                pthread_mutex_unlock(&mu);
                break;
            }
        }
    }
}

float *rt_pool_scratch(int t, size_t n) {
    if (n > scratch_cap[t]) {
        free(scratch[t]);
        size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
        scratch[t] = aligned_alloc(64, bytes);
        scratch_cap[t] = scratch[t] ? n : 0;
        if (!scratch[t]) abort();   /* out of memory for a kernel's scratch: nothing sensible to do */
    }
    return scratch[t];
}

/* ---- rows of a generated kernel over the pool ---- */

typedef struct RowsJob {
    rt_rows_fn fn;
    void **args;
    int64_t rows;
    int parts;
} RowsJob;

static void rows_task(void *ctx, int t) {
    const RowsJob *j = ctx;
    int64_t r0 = j->rows * t / j->parts, r1 = j->rows * (t + 1) / j->parts;
    if (r1 > r0) j->fn(j->args, r0, r1);
}

void rt_par_rows(rt_rows_fn fn, void **args, int64_t rows, int64_t min_rows) {
    int T = nthreads;
    if (min_rows < 1) min_rows = 1;
    if (T > 1 && rows / min_rows < T) T = (int)(rows / min_rows);
    if (T <= 1) {
        if (rows > 0) fn(args, 0, rows);
        return;
    }
    RowsJob j = {fn, args, rows, T};
    rt_pool_run(T, rows_task, &j);
}
