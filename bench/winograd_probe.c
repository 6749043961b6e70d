/*
** bench/winograd_probe.c: how fast Winograd F(2x2, 3x3) can make Conv-4's
** stride-1 3x3 forward convolutions on this CPU: the model measured before
** codegen got the kernel (cg_conv.c, build_wino; issue 17: the step was ~75%
** convolutions at ~88% of the FMA peak, so only fewer multiply-adds could
** make it much faster). The generated kernel's structure in plain C, with
** GCC vector extensions of 16 floats:
**   - lanes over output tiles (2x2 pixels): of one image when it has 16 or
**     more tiles, else of G = 16 / tiles images (4x4 planes: 4 images);
**   - input transform B^T d B per input channel and tile vector, from the
**     zero-padded image (the codegen variant's padded copy);
**   - 16 products M[e][o] = sum_c U[e][o][c] V[e][c] (U = G g G^T, made once);
**   - output transform A^T M A, stored to NCHW rows, with the per-channel
**     sums BatchNorm's statistics need (the direct kernel's epilogue).
** It checks one image against a direct convolution in double and prints
** microseconds per image on one thread, and the rate a direct kernel would
** need for the same time (2 x 9 C O H W flops an image).
**
**   sh bench/winograd_probe.sh     (the three Conv-4 shapes; -march=native)
**
** Compare with `conv4-train bench --threads 1 --profile` of a build whose
** forwards are direct (ms per step for 512 images, K=8): what a new
** layout or CPU could gain before changing codegen. docs/DECISIONS.md has
** the figures measured.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef float v16 __attribute__((vector_size(64)));
#ifndef CI
#define CI 16
#define CO 32
#define HH 8
#endif
#define WW HH
#define TH (HH / 2)
#define TW (WW / 2)
#define T (TH * TW)                    /* tiles of an image */
#define G (T >= 16 ? 1 : 16 / T)       /* images per group */
#define NV (T * G / 16)                /* tile vectors of a group */
#define PW (WW + 2)
#define PL ((HH + 2) * PW)
#define OB (16 / NV > CO ? CO : 16 / NV)   /* output channels per register block */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* U[e][o][c] = (G g G^T)[e / 4][e % 4] */
static void wtrans(const float *w, float *U) {
    for (int o = 0; o < CO; o++)
        for (int c = 0; c < CI; c++) {
            const float *g = w + (o * CI + c) * 9;
            float t[4][3];
            for (int k = 0; k < 3; k++) {
                float g0 = g[k], g1 = g[3 + k], g2 = g[6 + k];
                t[0][k] = g0, t[1][k] = .5f * (g0 + g1 + g2), t[2][k] = .5f * (g0 - g1 + g2), t[3][k] = g2;
            }
            for (int r = 0; r < 4; r++) {
                float g0 = t[r][0], g1 = t[r][1], g2 = t[r][2];
                float u[4] = {g0, .5f * (g0 + g1 + g2), .5f * (g0 - g1 + g2), g2};
                for (int s = 0; s < 4; s++) U[((r * 4 + s) * CO + o) * CI + c] = u[s];
            }
        }
}

/* lane l of tile vector v: image, tile row and column */
static inline void lane(int v, int l, int *g, int *i, int *j) {
    int t = v * 16 + l;
    *g = t / T, t %= T, *i = t / TW, *j = t % TW;
}

/* xp: G padded images [G][CI][HH+2][WW+2]; y: [G][CO][HH][WW]; st: sums of
   y and y^2 per image and channel */
static void wino(const float *restrict xp, const float *restrict U, float *restrict y, double *st) {
    static v16 V[16][CI][NV] __attribute__((aligned(64)));
    static v16 M[16][CO][NV] __attribute__((aligned(64)));
    /* Q[s][p][g][i][j] = padded row 2i + p, column 2j + s of image g: the
       tile rows' inputs by column and row parity, so that every d[r][s] is
       T contiguous floats of an image */
    static float Q[4][2][G][TH + 1][TW] __attribute__((aligned(64)));
    for (int c = 0; c < CI; c++) {
        for (int g = 0; g < G; g++)
            for (int p = 0; p < 2; p++)
                for (int i = 0; i <= TH; i++) {
                    const float *row = xp + (g * CI + c) * PL + (2 * i + p) * PW;
                    for (int s = 0; s < 4; s++)
                        for (int j = 0; j < TW; j++) Q[s][p][g][i][j] = row[2 * j + s];
                }
        for (int v = 0; v < NV; v++) {
            v16 d[4][4], q[4][4];
            for (int r = 0; r < 4; r++)
                for (int s = 0; s < 4; s++)
                    for (int g = 0; g < G; g++)   /* G > 1: T floats of each image; else 16 of the one */
                        memcpy((float *)&d[r][s] + g * T, &Q[s][r & 1][g][r >> 1][0] + v * 16, sizeof(float) * (G > 1 ? T : 16));
            for (int s = 0; s < 4; s++) {
                q[0][s] = d[0][s] - d[2][s], q[1][s] = d[1][s] + d[2][s];
                q[2][s] = d[2][s] - d[1][s], q[3][s] = d[1][s] - d[3][s];
            }
            for (int r = 0; r < 4; r++) {
                V[r * 4 + 0][c][v] = q[r][0] - q[r][2], V[r * 4 + 1][c][v] = q[r][1] + q[r][2];
                V[r * 4 + 2][c][v] = q[r][2] - q[r][1], V[r * 4 + 3][c][v] = q[r][1] - q[r][3];
            }
        }
    }
    for (int e = 0; e < 16; e++) {
        const float *Ue = U + e * CO * CI;
        for (int o0 = 0; o0 < CO; o0 += OB) {
            v16 acc[OB][NV];
            for (int a = 0; a < OB; a++)
                for (int v = 0; v < NV; v++) acc[a][v] = (v16){0};
            for (int c = 0; c < CI; c++)
                for (int a = 0; a < OB; a++) {
                    float u = Ue[(o0 + a) * CI + c];
                    for (int v = 0; v < NV; v++) acc[a][v] += u * V[e][c][v];
                }
            for (int a = 0; a < OB; a++)
                for (int v = 0; v < NV; v++) M[e][o0 + a][v] = acc[a][v];
        }
    }
    for (int o = 0; o < CO; o++) {
        v16 s1 = {0}, s2 = {0};
        for (int v = 0; v < NV; v++) {
            v16 m[4][4], q[2][4], Y[2][2];
            for (int e = 0; e < 16; e++) m[e / 4][e % 4] = M[e][o][v];
            for (int s = 0; s < 4; s++) q[0][s] = m[0][s] + m[1][s] + m[2][s], q[1][s] = m[1][s] - m[2][s] - m[3][s];
            for (int a = 0; a < 2; a++) Y[a][0] = q[a][0] + q[a][1] + q[a][2], Y[a][1] = q[a][1] - q[a][2] - q[a][3];
            for (int a = 0; a < 2; a++) {   /* rows 2i + a: the two columns interleaved */
                float row[32] __attribute__((aligned(64)));
                for (int l = 0; l < 16; l++) row[2 * l] = Y[a][0][l], row[2 * l + 1] = Y[a][1][l];
                for (int b = 0; b < 2; b++) s1 += Y[a][b], s2 += Y[a][b] * Y[a][b];
                for (int k = 0; k < 16 / TW; k++) {   /* lane 16 / TW tile rows of WW pixels */
                    int g, i, j;
                    lane(v, k * TW, &g, &i, &j);
                    memcpy(y + ((g * CO + o) * HH + 2 * i + a) * WW, row + k * WW, sizeof(float) * WW);
                }
            }
        }
        for (int g = 0; g < G; g++) {
            double a = 0, b = 0;
            for (int l = g * T % 16; l < g * T % 16 + (T < 16 ? T : 16); l++) a += s1[l], b += s2[l];
            st[(g * 2) * CO + o] = a, st[(g * 2 + 1) * CO + o] = b;
        }
    }
}

int main(void) {
    enum { N = 256 };
    float *x = malloc(sizeof(float) * N * CI * HH * WW), *w = malloc(sizeof(float) * CO * CI * 9);
    float *y = malloc(sizeof(float) * N * CO * HH * WW), *U = malloc(sizeof(float) * 16 * CO * CI);
    float *xp = calloc((size_t)G * CI * PL, sizeof(float));
    double *st = malloc(sizeof(double) * 2 * G * CO);
    if (!x || !w || !y || !U || !xp || !st) return 1;
    srand(1);
    for (long i = 0; i < (long)N * CI * HH * WW; i++) x[i] = (float)rand() / (float)RAND_MAX - .5f;
    for (int i = 0; i < CO * CI * 9; i++) w[i] = ((float)rand() / (float)RAND_MAX - .5f) * .3f;
    wtrans(w, U);
    double best = 1e9;
    for (int rep = 0; rep < 20; rep++) {
        double t0 = now();
        for (int n = 0; n < N; n += G) {
            for (int g = 0; g < G; g++)
                for (int c = 0; c < CI; c++)
                    for (int h = 0; h < HH; h++)
                        memcpy(xp + (g * CI + c) * PL + (h + 1) * PW + 1, x + (((long)(n + g) * CI + c) * HH + h) * WW,
                               sizeof(float) * WW);
            wino(xp, U, y + (long)n * CO * HH * WW, st);
        }
        double t = now() - t0;
        best = t < best ? t : best;
    }
    double md = 0;   /* image N - 1 (the last group's) against a direct convolution */
    const float *xl = x + (long)(N - 1) * CI * HH * WW, *yl = y + (long)(N - 1) * CO * HH * WW;
    for (int o = 0; o < CO; o++)
        for (int h = 0; h < HH; h++)
            for (int q = 0; q < WW; q++) {
                double s = 0;
                for (int c = 0; c < CI; c++)
                    for (int kh = 0; kh < 3; kh++)
                        for (int kw = 0; kw < 3; kw++) {
                            int ih = h + kh - 1, iw = q + kw - 1;
                            if (ih >= 0 && ih < HH && iw >= 0 && iw < WW)
                                s += (double)xl[(c * HH + ih) * WW + iw] * w[((o * CI + c) * 3 + kh) * 3 + kw];
                        }
                md = fmax(md, fabs(s - yl[(o * HH + h) * WW + q]));
            }
    double flops = 2.0 * 9 * CI * CO * HH * WW;
    printf("%2d -> %2d channels, %2dx%-2d (%d image(s) a group): %5.2f us an image, a direct kernel's %5.1f GFLOP/s; "
           "max |error| %.1e\n", CI, CO, HH, WW, G, best / N * 1e6, flops * N / best / 1e9, md);
    return md < 1e-4 ? 0 : 1;
}
