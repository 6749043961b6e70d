/*
** rt_kernels_dist.c: the collectives of a data-parallel step; semantics of
** compiler/ir/ops_dist.c. A rank whose share differs from the one its step
** was compiled for is a broken program, not bad input: it aborts.
*/
#include <stdio.h>
#include <string.h>

#include "rt_comm.h"
#include "rt_kernels.h"
#include "rt_kernels_impl.h"

void rt_k_dist_oom(size_t bytes) {
    fprintf(stderr, "rrc: out of memory in a collective (%zu bytes)\n", bytes);
    rt_comm_abort(1);
}

static void *alloc_or_die(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) rt_k_dist_oom(bytes);
    return p;
}

void rt_stats_combine(const double *all, int nranks, int64_t C, double *mean, double *var) {
    for (int64_t c = 0; c < C; c++) {
        double n = 0, m = 0, m2 = 0;
        for (int r = 0; r < nranks; r++) {
            const double *p = all + (size_t)r * (size_t)(2 * C + 1);
            rt_stats_merge(&m, &m2, n, p[1 + c], p[1 + C + c] * p[0], p[0]);
            n += p[0];
        }
        mean[c] = m;
        var[c] = m2 / n;
    }
}

void rt_stats_allreduce(const double *loc, int64_t C, int64_t total, double *out) {
    const rt_comm *cm = rt_comm_get();
    int64_t w = 2 * C + 1;
    double *all = alloc_or_die((size_t)(w * cm->size) * sizeof *all);
    int64_t *counts = alloc_or_die((size_t)cm->size * sizeof *counts);
    for (int r = 0; r < cm->size; r++) counts[r] = w;
    rt_comm_allgather_f64(loc, w, all, counts);
    double got = 0;
    for (int r = 0; r < cm->size; r++) got += all[r * w];
    if (got != (double)total) {
        fprintf(stderr, "rrc: internal error: BatchNorm statistics over %.0f values, the step was compiled for %lld\n", got,
                (long long)total);
        rt_comm_abort(1);
    }
    rt_stats_combine(all, cm->size, C, out, out + C);
    free(counts);
    free(all);
}

void rt_k_sum_ranks(double *v, int64_t n) { rt_comm_sum_f64(v, n); }

/* this rank's share, checked against the compiled one */
static int64_t my_rows(int64_t B, int64_t b, int64_t *offset, const char *what) {
    const rt_comm *cm = rt_comm_get();
    int64_t mine = rt_comm_share(B, cm->rank, cm->size, offset);
    if (mine != b) {
        fprintf(stderr, "rrc: internal error: %s compiled for %lld of %lld images, rank %d of %d has %lld\n", what,
                (long long)b, (long long)B, cm->rank, cm->size, (long long)mine);
        rt_comm_abort(1);
    }
    return mine;
}

void rt_k_gather_rows(float *restrict out, const float *restrict x, int64_t G, int64_t B, int64_t E, int64_t b) {
    const rt_comm *cm = rt_comm_get();
    int64_t o;
    my_rows(B, b, &o, "gather_rows");
    if (cm->size == 1) {
        memcpy(out, x, (size_t)(G * B * E) * sizeof *out);
        return;
    }
    int64_t *counts = alloc_or_die((size_t)cm->size * sizeof *counts);
    for (int r = 0; r < cm->size; r++) counts[r] = G * rt_comm_share(B, r, cm->size, &o) * E;
    float *all = alloc_or_die((size_t)(G * B * E) * sizeof *all);
    rt_comm_allgather_f32(x, G * b * E, all, counts);
    const float *p = all;
    for (int r = 0; r < cm->size; r++) {
        int64_t br = rt_comm_share(B, r, cm->size, &o);
        for (int64_t g = 0; g < G; g++, p += br * E) memcpy(out + (g * B + o) * E, p, (size_t)(br * E) * sizeof *out);
    }
    free(all);
    free(counts);
}

void rt_k_local_rows(float *restrict out, const float *restrict y, int64_t G, int64_t B, int64_t E, int64_t b) {
    int64_t o;
    my_rows(B, b, &o, "local_rows");
    for (int64_t g = 0; g < G; g++) memcpy(out + g * b * E, y + (g * B + o) * E, (size_t)(b * E) * sizeof *out);
}
