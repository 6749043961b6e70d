/*
** mem_bw.c: one core's memory bandwidth, for `make bench`: the best of
** five passes of a scaled copy b = 2 a over two 256 MiB arrays (far past
** every cache level), counting the bytes read and written.
**   mem_bw   prints GB/s
** The BatchNorm and elementwise kernels of a step stream whole
** activations; this is the rate they can reach on one thread.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void) {
    size_t n = (size_t)64 << 20;   /* floats: 256 MiB per array */
    float *a = aligned_alloc(64, n * sizeof *a), *b = aligned_alloc(64, n * sizeof *b);
    if (!a || !b) {
        fprintf(stderr, "mem_bw: out of memory\n");
        return 1;
    }
    memset(a, 1, n * sizeof *a);
    memset(b, 0, n * sizeof *b);
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        for (size_t i = 0; i < n; i++) b[i] = 2.0f * a[i];
        double t = now() - t0, gbs = 2.0 * (double)(n * sizeof *a) / t / 1e9;
        if (gbs > best) best = gbs;
    }
    printf("%.1f\n", best + 0.0 * (double)b[n / 2]);
    free(a);
    free(b);
    return 0;
}
