/*
** rt_pool.c: the step's thread pool (see rt_pool.h): workers wait on a
** condition variable for a new generation of work, run their task, and
** report back; the caller runs task 0 itself.
*/
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rt_pool.h"

#define MAX_THREADS 256

static int nthreads = 1;
static pthread_t workers[MAX_THREADS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv_start = PTHREAD_COND_INITIALIZER, cv_done = PTHREAD_COND_INITIALIZER;
static void (*job_fn)(void *, int);
static void *job_ctx;
static int job_tasks, pending, quitting;
static unsigned long generation, start_generation;
static float *scratch[MAX_THREADS];
static size_t scratch_cap[MAX_THREADS];

static void *worker_main(void *arg) {
    int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&mu);
    /* the generation when the pool was made, not when this thread first
       runs: a job posted before then is still this worker's to do */
    unsigned long seen = start_generation;
    for (;;) {
        while (generation == seen && !quitting) pthread_cond_wait(&cv_start, &mu);
        if (quitting) break;
        seen = generation;
        void (*fn)(void *, int) = job_fn;
        void *ctx = job_ctx;
        int tasks = job_tasks;
        pthread_mutex_unlock(&mu);
        if (id < tasks) fn(ctx, id);
        pthread_mutex_lock(&mu);
        if (--pending == 0) pthread_cond_signal(&cv_done);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

void rt_pool_shutdown(void) {
    pthread_mutex_lock(&mu);
    quitting = 1;
    pthread_cond_broadcast(&cv_start);
    pthread_mutex_unlock(&mu);
    for (int i = 1; i < nthreads; i++) pthread_join(workers[i], NULL);
    for (int i = 0; i < MAX_THREADS; i++) {
        free(scratch[i]);
        scratch[i] = NULL;
        scratch_cap[i] = 0;
    }
    nthreads = 1;
    quitting = 0;
}

void rt_pool_init(int n) {
    static int registered;
    if (n < 1) n = 1;
    if (n > MAX_THREADS) n = MAX_THREADS;
    if (n == nthreads) return;
    rt_pool_shutdown();
    start_generation = generation;
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
    pthread_mutex_lock(&mu);
    job_fn = fn;
    job_ctx = ctx;
    job_tasks = ntasks;
    pending = nthreads - 1;
    generation++;
    pthread_cond_broadcast(&cv_start);
    pthread_mutex_unlock(&mu);
    fn(ctx, 0);
    pthread_mutex_lock(&mu);
    while (pending > 0) pthread_cond_wait(&cv_done, &mu);
    pthread_mutex_unlock(&mu);
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
