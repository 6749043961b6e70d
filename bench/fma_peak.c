/*
** fma_peak.c: the machine's single-precision FMA peak, for `make bench`:
** 12 independent chains of 16-wide fused multiply-adds per thread (enough
** to cover the FMA latency), one thread per core asked for.
**   fma_peak THREADS SECONDS   prints GFLOP/s
*/
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double secs;
static double flops[64];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *run(void *arg) {
    int id = (int)(long)arg;
    __m512 a[12], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
    long iters = 0;
    double t0 = now();
    while (now() - t0 < secs) {
        for (int r = 0; r < 1000; r++)
            for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
        iters += 1000;
    }
    double dt = now() - t0;
    float sink = 0;
    for (int i = 0; i < 12; i++) sink += _mm512_reduce_add_ps(a[i]);
    flops[id] = (double)iters * 12 * 16 * 2 / dt + (sink == 12345.f ? 1 : 0);
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    secs = argc > 2 ? atof(argv[2]) : 1.0;
    if (n < 1 || n > 64) return 1;
    pthread_t th[64];
    for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, run, (void *)(long)i);
    double total = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        total += flops[i];
    }
    printf("%.1f\n", total / 1e9);
    return 0;
}
