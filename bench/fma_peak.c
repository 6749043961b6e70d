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

/* Twelve named accumulators, not an array: gcc kept an array of __m512 in
   memory, and the loop then measured store-to-load forwarding (81 GFLOP/s
   on a core that sustains 250 in sgemm). */
#define FMA12(m, c)                                                                                    \
    do {                                                                                               \
        a0 = _mm512_fmadd_ps(a0, m, c); a1 = _mm512_fmadd_ps(a1, m, c); a2 = _mm512_fmadd_ps(a2, m, c);    \
        a3 = _mm512_fmadd_ps(a3, m, c); a4 = _mm512_fmadd_ps(a4, m, c); a5 = _mm512_fmadd_ps(a5, m, c);    \
        a6 = _mm512_fmadd_ps(a6, m, c); a7 = _mm512_fmadd_ps(a7, m, c); a8 = _mm512_fmadd_ps(a8, m, c);    \
        a9 = _mm512_fmadd_ps(a9, m, c); a10 = _mm512_fmadd_ps(a10, m, c); a11 = _mm512_fmadd_ps(a11, m, c); \
    } while (0)

static void *run(void *arg) {
    int id = (int)(long)arg;
    __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3);
    __m512 a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5), a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7);
    __m512 a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
    long iters = 0;
    double t0 = now();
    while (now() - t0 < secs) {
        for (int r = 0; r < 1000; r++) FMA12(m, c);
        iters += 1000;
    }
    double dt = now() - t0;
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    float sink = _mm512_reduce_add_ps(s);
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
