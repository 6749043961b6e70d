/*
** fma_peak.c: the machine's single-precision FMA peak, for `make bench`:
** 12 independent chains of fused multiply-adds per thread (enough to cover
** the FMA latency: 2 pipes of latency 4 want 8), one thread per core asked
** for. Built with -march=native, it measures the widest vectors the compiler
** is allowed: 16-wide __m512 with AVX-512F, else 8-wide __m256 (AVX2 + FMA).
**   fma_peak THREADS SECONDS   prints GFLOP/s
**   fma_peak --isa             prints the ISA measured: avx512 or avx2
*/
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__AVX512F__)
#define ISA "avx512"
#define LANES 16
typedef __m512 vec;
#define VSET(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
static float vsum(vec v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX2__) && defined(__FMA__)
#define ISA "avx2"
#define LANES 8
typedef __m256 vec;
#define VSET(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
static float vsum(vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#else
#error "fma_peak needs AVX2 and FMA, or AVX-512F (built with -march=native)"
#endif

static double secs;
static double flops[64];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Twelve named accumulators, not an array: gcc kept an array of __m512 in
   memory, and the loop then measured store-to-load forwarding (81 GFLOP/s
   on a core that sustains 250 in sgemm). With AVX2's 16 ymm registers the
   twelve, m and c still fit. */
#define FMA12(m, c)                                                                                    \
    do {                                                                                               \
        a0 = VFMA(a0, m, c); a1 = VFMA(a1, m, c); a2 = VFMA(a2, m, c); a3 = VFMA(a3, m, c);             \
        a4 = VFMA(a4, m, c); a5 = VFMA(a5, m, c); a6 = VFMA(a6, m, c); a7 = VFMA(a7, m, c);             \
        a8 = VFMA(a8, m, c); a9 = VFMA(a9, m, c); a10 = VFMA(a10, m, c); a11 = VFMA(a11, m, c);         \
    } while (0)

static void *run(void *arg) {
    int id = (int)(long)arg;
    vec m = VSET(0.999999f), c = VSET(1e-7f);
    vec a0 = VSET(0), a1 = VSET(1), a2 = VSET(2), a3 = VSET(3), a4 = VSET(4), a5 = VSET(5);
    vec a6 = VSET(6), a7 = VSET(7), a8 = VSET(8), a9 = VSET(9), a10 = VSET(10), a11 = VSET(11);
    long iters = 0;
    double t0 = now();
    while (now() - t0 < secs) {
        for (int r = 0; r < 1000; r++) FMA12(m, c);
        iters += 1000;
    }
    double dt = now() - t0;
    vec s = VADD(VADD(VADD(a0, a1), VADD(a2, a3)), VADD(VADD(a4, a5), VADD(a6, a7)));
    s = VADD(s, VADD(VADD(a8, a9), VADD(a10, a11)));
    float sink = vsum(s);
    flops[id] = (double)iters * 12 * LANES * 2 / dt + (sink == 12345.f ? 1 : 0);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--isa") == 0) {
        printf("%s\n", ISA);
        return 0;
    }
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
