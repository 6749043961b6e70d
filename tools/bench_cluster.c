/*
** bench_cluster.c: wall time of DeepCluster's clustering step (rt_cluster.h)
** at CIFAR-10's sizes: PCA whitening + L2 of N x F features, then k-means
** with k clusters, 5 restarts, at most 30 iterations. Not part of the test
** suite. Build and run:
**   gcc -std=c11 -O2 -D_GNU_SOURCE -Iruntime tools/bench_cluster.c runtime/rt_cluster.c runtime/rt_pool.c \
**       runtime/rt_rng.c -o /tmp/bench_cluster -lopenblas -lm -pthread
**   /tmp/bench_cluster [THREADS [N [F [K]]]]   (defaults 2 60000 64 100)
** Runs twice: the pool's THREADS threads with one OpenBLAS thread each (as
** the CLI runs), then one pool thread with THREADS OpenBLAS threads. The
** features are N(0, 1) with a few correlated columns: no cluster
** structure, so Lloyd usually runs its 30 iterations (the slow case).
*/
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

#include "rt_cluster.h"
#include "rt_pool.h"
#include "rt_rng.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int64_t n = argc > 2 ? atoll(argv[2]) : 60000, F = argc > 3 ? atoll(argv[3]) : 64;
    int k = argc > 4 ? atoi(argv[4]) : 100;
    int64_t m = rt_pca_whiten_dim(F);
    float *x = malloc((size_t)(n * F) * sizeof *x), *y = malloc((size_t)(n * m) * sizeof *y);
    float *c = malloc((size_t)k * (size_t)m * sizeof *c);
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    rt_stream s;
    rt_stream_init(&s, 1, RT_DOMAIN_TEST, 0, 0);
    for (int64_t i = 0; i < n * F; i++) x[i] = (float)rt_stream_normal(&s);
    for (int64_t i = 0; i < n; i++)
        for (int64_t f = 0; f < F / 4; f++) x[i * F + f] += 0.5f * x[i * F + F - 1 - f];
    char err[256];
    for (int mode = 0; mode < 2; mode++) {
        rt_pool_init(mode == 0 ? threads : 1);
        openblas_set_num_threads(mode == 0 ? 1 : threads);
        double t0 = now();
        rt_pca_result pr;
        if (rt_pca_whiten(x, n, F, 0, true, y, NULL, &pr, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        double t1 = now();
        rt_kmeans_opts o = rt_kmeans_defaults(k, 1);
        rt_kmeans_result kr;
        if (rt_kmeans(y, n, m, &o, labels, c, &kr, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        double t2 = now();
        printf("%s: whitening %lld x %lld -> %lld: %.3f s; k-means k %d, %d restarts: %.3f s (kept restart %d: %d "
               "iterations, inertia %.2f); total %.3f s\n",
               mode == 0 ? "pool threads" : "OpenBLAS threads", (long long)n, (long long)F, (long long)m, t1 - t0, k,
               o.n_init, t2 - t1, kr.restart, kr.iterations, kr.inertia, t2 - t0);
    }
    rt_pool_shutdown();
    free(x), free(y), free(c), free(labels);
    return 0;
}
