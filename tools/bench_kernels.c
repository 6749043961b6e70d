/*
** bench_kernels.c: single-thread throughput of the runtime's conv2d
** kernels (forward, dX, dW) on the ResNet-32 (CIFAR) layer shapes, and of
** a few memory-bound kernels. Not part of the test suite. Build and run:
**   gcc -std=c11 -O2 -D_GNU_SOURCE -Iruntime tools/bench_kernels.c runtime/rt_kernels_*.c \
**       -o /tmp/bench_kernels -lopenblas -lm
**   OPENBLAS_NUM_THREADS=1 /tmp/bench_kernels [N]
** Each figure is the best of several repetitions of about 0.3 s.
*/
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rt_kernels.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *rnd(int64_t n) {
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!p) abort();
    for (int64_t i = 0; i < n; i++) p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

typedef struct { int64_t N, C, H, W, O, K, S, P; const char *name; } Shape;

enum { FWD, DX, DW };

static void run(int which, const Shape *s, float *y, float *x, float *w, float *dy, float *dx, float *dw,
                float *ws, int64_t OH, int64_t OW) {
    if (which == FWD) rt_k_conv2d(y, x, w, s->N, s->C, s->H, s->W, s->O, s->K, s->K, s->S, s->P, OH, OW, ws);
    else if (which == DX) rt_k_conv2d_dx(dx, dy, w, s->N, s->C, s->H, s->W, s->O, s->K, s->K, s->S, s->P, OH, OW, ws);
    else rt_k_conv2d_dw(dw, dy, x, s->N, s->C, s->H, s->W, s->O, s->K, s->K, s->S, s->P, OH, OW, ws);
}

static double best_seconds(int which, const Shape *s, float *y, float *x, float *w, float *dy, float *dx, float *dw,
                           float *ws, int64_t OH, int64_t OW) {
    run(which, s, y, x, w, dy, dx, dw, ws, OH, OW);   /* warm-up */
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        int iters = 0;
        double t0 = now(), t;
        do {
            run(which, s, y, x, w, dy, dx, dw, ws, OH, OW);
            iters++;
            t = now() - t0;
        } while (t < 0.3);
        if (t / iters < best) best = t / iters;
    }
    return best;
}

/* ---- memory-bound kernels: GB/s of the tensors read and written ---- */

typedef struct { const char *name; int tensors; } Ew;

static void ew_run(int k, float *a, float *b, float *c, float *st, float *g, int64_t N, int64_t C, int64_t S) {
    int64_t n = N * C * S;
    switch (k) {
    case 0: rt_k_relu(a, b, n); break;
    case 1: rt_k_relu_back(a, b, c, n); break;
    case 2: rt_k_add(a, b, c, n); break;
    case 3: rt_k_leaky_relu_back(a, b, c, n, 0.01f); break;
    case 4: rt_k_bias_add(a, b, g, N, C, S); break;
    case 5: rt_k_chan_sum(st, b, N, C, S); break;
    case 6: rt_k_bn_stats(st, b, N, C, S); break;
    case 7: rt_k_bn_train(a, b, st, g, g, N, C, S, 1e-5f); break;
    case 8: rt_k_bn_train_dx(a, b, c, st, g, N, C, S, 1e-5f); break;
    case 9: rt_k_bn_dgamma(st, b, c, st + 2 * C, N, C, S, 1e-5f); break;
    case 10: rt_k_maxpool2d(a, b, N * C, 32, S / 32, 2, 2, 0, 16, S / 64); break;
    case 11: rt_k_maxpool2d_back(a, b, c, N * C, 32, S / 32, 2, 2, 0, 16, S / 64); break;
    case 12: rt_k_global_avgpool(a, b, N * C, S); break;
    case 13: rt_k_avgpool2d(a, b, N * C, 32, S / 32, 2, 2, 0, 16, S / 64); break;
    case 14: rt_k_bn_eval(a, b, st, st + C, g, g, N, C, S, 1e-5f); break;
    default: break;
    }
}

static void ew_bench(int64_t N) {
    static const Ew ks[] = {{"relu", 2}, {"relu_back", 3}, {"add", 3}, {"leaky_relu_back", 3}, {"bias_add", 2},
                            {"chan_sum", 1}, {"bn_stats", 1}, {"bn_train", 2}, {"bn_train_dx", 5},
                            {"bn_dgamma", 2}, {"maxpool2d 2x2", 1}, {"maxpool2d_back 2x2", 3},
                            {"global_avgpool", 1}, {"avgpool2d 2x2", 1}, {"bn_eval", 2}};
    int64_t C = 16, S = 32 * 32, n = N * C * S;
    float *a = rnd(n), *b = rnd(n), *c = rnd(n), *st = rnd(4 * C), *g = rnd(C);
    for (int64_t i = 0; i < C; i++) st[C + i] = 1.0f;
    printf("\n[%lld,16,32,32] (%.1f MiB per tensor)       GB/s\n", (long long)N, (double)n * 4 / 1048576);
    for (int k = 0; k < (int)(sizeof ks / sizeof ks[0]); k++) {
        ew_run(k, a, b, c, st, g, N, C, S);
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            int iters = 0;
            double t0 = now(), t;
            do {
                ew_run(k, a, b, c, st, g, N, C, S);
                iters++;
                t = now() - t0;
            } while (t < 0.1);
            if (t / iters < best) best = t / iters;
        }
        printf("%-28s %8.1f\n", ks[k].name, (double)ks[k].tensors * (double)n * 4 / best * 1e-9);
    }
    free(a); free(b); free(c); free(st); free(g);
}

int main(int argc, char **argv) {
    int64_t N = argc > 1 ? atoll(argv[1]) : 16;
    Shape shapes[] = {
        {N, 16, 32, 32, 16, 3, 1, 1, "stage1 16->16 32x32 k3s1"},
        {N, 16, 32, 32, 32, 3, 2, 1, "stage2 entry 16->32 k3s2"},
        {N, 32, 16, 16, 32, 3, 1, 1, "stage2 32->32 16x16 k3s1"},
        {N, 32, 16, 16, 64, 3, 2, 1, "stage3 entry 32->64 k3s2"},
        {N, 64, 8, 8, 64, 3, 1, 1, "stage3 64->64 8x8 k3s1"},
        {N, 3, 32, 32, 16, 3, 1, 1, "stem 3->16 32x32 k3s1"},
        {N, 16, 32, 32, 32, 1, 2, 0, "proj 16->32 k1s2"},
        {N, 64, 8, 8, 64, 1, 1, 0, "pointwise 64->64 8x8"},
    };
    printf("N = %lld; GFLOP/s (2 flops per multiply-add)\n", (long long)N);
    printf("%-28s %8s %8s %8s\n", "shape", "fwd", "dx", "dw");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const Shape *s = &shapes[i];
        int64_t OH = (s->H + 2 * s->P - s->K) / s->S + 1, OW = (s->W + 2 * s->P - s->K) / s->S + 1;
        float *x = rnd(s->N * s->C * s->H * s->W), *w = rnd(s->O * s->C * s->K * s->K);
        float *dy = rnd(s->N * s->O * OH * OW), *y = rnd(s->N * s->O * OH * OW);
        float *dx = rnd(s->N * s->C * s->H * s->W), *dw = rnd(s->O * s->C * s->K * s->K);
        float *ws = rnd(rt_k_conv2d_ws(s->N, s->C, s->H, s->W, s->O, s->K, s->K, s->S, s->P, OH, OW));
        double flops = 2.0 * (double)(s->N * s->O * OH * OW) * (double)(s->C * s->K * s->K);
        printf("%-28s", s->name);
        for (int which = FWD; which <= DW; which++)
            printf(" %8.1f", flops / best_seconds(which, s, y, x, w, dy, dx, dw, ws, OH, OW) * 1e-9);
        printf("\n");
        free(x); free(w); free(dy); free(y); free(dx); free(dw); free(ws);
    }
    ew_bench(N);
    return 0;
}
