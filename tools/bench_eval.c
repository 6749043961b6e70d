/*
** bench_eval.c: wall time of rt_retrieval_eval and rt_knn_eval at
** Fashion-MNIST's sizes (10,000 queries, 60,000 gallery rows, 10 classes)
** on synthetic features. Not part of the test suite. Build and run:
**   gcc -std=c11 -O2 -D_GNU_SOURCE -Iruntime tools/bench_eval.c runtime/rt_eval.c runtime/rt_pool.c \
**       runtime/rt_rng.c -o /tmp/bench_eval -lopenblas -lm -pthread
**   /tmp/bench_eval [THREADS [F [NQUERY [NGALLERY [NOISE]]]]]   (defaults 2 64 10000 60000 3)
** OpenBLAS gets one thread per call (the pool's threads call it), as in
** the CLI. The features are 10 class centres ~ N(0, 1) plus N(0, NOISE^2)
** noise: with NOISE 3 kNN top-1 and mAP are near a trained backbone's on
** Fashion-MNIST (neither random nor perfectly sorted).
*/
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

#include "rt_eval.h"
#include "rt_pool.h"
#include "rt_rng.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void make(float *x, int32_t *y, int64_t n, int64_t F, const float *centres, int classes, double noise,
                 uint32_t split) {
    rt_stream s;
    rt_stream_init(&s, 7, RT_DOMAIN_TEST, split, 0);
    for (int64_t i = 0; i < n; i++) {
        int c = (int)rt_stream_below(&s, (uint32_t)classes);
        y[i] = c;
        for (int64_t f = 0; f < F; f++) x[i * F + f] = centres[c * F + f] + (float)(noise * rt_stream_normal(&s));
    }
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int64_t F = argc > 2 ? atoll(argv[2]) : 64, nq = argc > 3 ? atoll(argv[3]) : 10000,
            ng = argc > 4 ? atoll(argv[4]) : 60000;
    double noise = argc > 5 ? atof(argv[5]) : 3.0;
    int classes = 10;
    float *centres = malloc(sizeof(float) * (size_t)(classes * F));
    float *g = malloc(sizeof(float) * (size_t)(ng * F)), *q = malloc(sizeof(float) * (size_t)(nq * F));
    int32_t *gy = malloc(sizeof(int32_t) * (size_t)ng), *qy = malloc(sizeof(int32_t) * (size_t)nq);
    if (!centres || !g || !q || !gy || !qy) return 1;
    rt_stream s;
    rt_stream_init(&s, 7, RT_DOMAIN_TEST, 0, 0);
    for (int64_t i = 0; i < classes * F; i++) centres[i] = (float)rt_stream_normal(&s);
    make(g, gy, ng, F, centres, classes, noise, 1);
    make(q, qy, nq, F, centres, classes, noise, 2);

    openblas_set_num_threads(1);
    rt_pool_init(threads);
    char err[256];
    rt_retrieval_result rr;
    double t0 = now();
    if (rt_retrieval_eval(g, gy, ng, q, qy, nq, F, NULL, &rr, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double t1 = now();
    printf("retrieval %lld queries x %lld gallery x %lld-d, %d thread(s): %.2f s\n", (long long)nq, (long long)ng,
           (long long)F, threads, t1 - t0);
    printf("  P@1 %.4f  P@5 %.4f  P@10 %.4f  P@100 %.4f  mAP %.4f\n", rr.precision[0], rr.precision[1],
           rr.precision[2], rr.precision[3], rr.map);
    rt_knn_result kr;
    t0 = now();
    if (rt_knn_eval(g, gy, ng, q, qy, nq, F, classes, RT_KNN_K, RT_KNN_T, NULL, &kr, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    t1 = now();
    printf("kNN k=%d T=%g, %d thread(s): %.2f s\n  top-1 %.4f  top-5 %.4f\n", kr.k, RT_KNN_T, threads, t1 - t0,
           kr.top1, kr.top5);
    rt_pool_shutdown();
    free(centres);
    free(g);
    free(q);
    free(gy);
    free(qy);
    return 0;
}
