/*
** rt_kernels_ssl.c: the baselines' kernels (semantics of
** compiler/ir/ops_ssl.c): RotationNet's rotations of a batch and their
** targets, SimCLR's loss and its gradient.
*/
#include <math.h>

#include "rt_kernels.h"
#include "rt_kernels_impl.h"

/* Source index in one S x S plane of output (h, w) of rotation r
   (torch.rot90 over (H, W), counter-clockwise as displayed). */
static inline int64_t rot_src(int64_t r, int64_t S, int64_t h, int64_t w) {
    switch (r) {
    case 0: return h * S + w;
    case 1: return w * S + (S - 1 - h);
    case 2: return (S - 1 - h) * S + (S - 1 - w);
    default: return (S - 1 - w) * S + h;
    }
}

void rt_k_rotations(float *restrict y, const float *restrict x, int64_t planes, int64_t S) {
    for (int64_t r = 0; r < 4; r++)
        for (int64_t p = 0; p < planes; p++) {
            const float *src = x + p * S * S;
            float *dst = y + (r * planes + p) * S * S;
            for (int64_t h = 0; h < S; h++)
                for (int64_t w = 0; w < S; w++) dst[h * S + w] = src[rot_src(r, S, h, w)];
        }
}

void rt_k_rotations_back(float *restrict dx, const float *restrict dy, int64_t planes, int64_t S) {
    memcpy(dx, dy, sizeof(float) * (size_t)(planes * S * S));
    for (int64_t r = 1; r < 4; r++)
        for (int64_t p = 0; p < planes; p++) {
            const float *d = dy + (r * planes + p) * S * S;
            float *dst = dx + p * S * S;
            for (int64_t h = 0; h < S; h++)
                for (int64_t w = 0; w < S; w++) dst[rot_src(r, S, h, w)] += d[h * S + w];
        }
}

void rt_k_block_targets(float *restrict y, int64_t n, int64_t block) {
    for (int64_t i = 0; i < n; i++) y[i] = (float)(i / block);
}

/* ---- SimCLR ----
   Scratch (rt_k_simclr_ws floats), all double: norm, den, r, dn [N], z as
   double [N, D], P = z z^T [N, N], the gradient's dP + dP^T [N, N] and
   its product with z [N, D].
   Everything is in double (dgemm for the products): the loss subtracts the
   constant exp(1/t) from column sums that hold exp(S_ii / t) = exp(1/t)
   up to rounding, so float's rounding of |z_i|^2 would be amplified by
   exp(1/t) / (the rest of the column) (docs/DECISIONS.md has the effect).
   The cost, O(N^2 D), is small beside the backbone's. */

int64_t rt_k_simclr_ws(int64_t N, int64_t D) { return 2 * (4 * N + 2 * N * D + 2 * N * N); }

typedef struct Simclr {
    int64_t N, D;
    double t, eps, mean;
    double *norm, *den, *r, *dn, *z, *P, *A, *Az;
} Simclr;

static Simclr simclr_setup(float *ws, const float *z, int64_t N, int64_t D, float t, float eps) {
    double *d = (double *)(void *)ws;
    double *z2 = d + 4 * N, *P = z2 + N * D, *A = P + N * N, *Az = A + N * N;
    Simclr s = {N, D, (double)t, (double)eps, 0, d, d + N, d + 2 * N, d + 3 * N, z2, P, A, Az};
    for (int64_t k = 0; k < N * D; k++) s.z[k] = (double)z[k];
    return s;
}

static inline double simclr_S(const Simclr *s, int64_t j, int64_t i) {
    return s->P[j * s->N + i] / fmax(s->norm[j] * s->norm[i], s->eps);
}

static void simclr_forward(Simclr *s) {
    int64_t N = s->N, D = s->D;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rt_bi(N), rt_bi(N), rt_bi(D), 1.0, s->z, rt_bi(D), s->z, rt_bi(D), 0.0,
                s->P, rt_bi(N));
    for (int64_t i = 0; i < N; i++) s->norm[i] = sqrt(s->P[i * N + i]);
    double c = exp(1.0 / s->t), sum = 0;
    for (int64_t i = 0; i < N; i++) s->den[i] = -c;
    for (int64_t j = 0; j < N; j++)   /* row by row: the column sums in one pass over P */
        for (int64_t i = 0; i < N; i++) s->den[i] += exp(simclr_S(s, j, i) / s->t);
    for (int64_t i = 0; i < N; i++) {
        s->r[i] = exp(simclr_S(s, (i + N / 2) % N, i) / s->t) / s->den[i];
        sum += s->r[i];
    }
    s->mean = sum / (double)N;
}

void rt_k_simclr_loss(float *restrict out, const float *restrict z, int64_t N, int64_t D, float t, float eps,
                      float *restrict ws) {
    Simclr s = simclr_setup(ws, z, N, D, t, eps);
    simclr_forward(&s);
    out[0] = (float)-log(s.mean);
}

void rt_k_simclr_back(float *restrict dz, const float *restrict dl, const float *restrict z, int64_t N, int64_t D, float t,
                      float eps, float *restrict ws) {
    Simclr s = simclr_setup(ws, z, N, D, t, eps);
    simclr_forward(&s);
    double g = -(double)dl[0] / ((double)N * s.mean), *A = s.A;
    memset(s.dn, 0, sizeof(double) * (size_t)N);
    memset(A, 0, sizeof(double) * (size_t)(N * N));
    for (int64_t j = 0; j < N; j++)
        for (int64_t i = 0; i < N; i++) {
            double S = simclr_S(&s, j, i), E = exp(S / s.t);
            double dS = g * ((j == (i + N / 2) % N ? 1.0 : 0.0) - s.r[i]) / s.den[i] * E / s.t;
            double Q = s.norm[j] * s.norm[i];
            double dP = Q > s.eps ? dS / Q : dS / s.eps;
            A[j * N + i] += dP;   /* A = dP + dP^T */
            A[i * N + j] += dP;
            if (Q > s.eps) {
                double dQ = -dS * S / Q;
                s.dn[j] += dQ * s.norm[i];
                s.dn[i] += dQ * s.norm[j];
            }
        }
    /* dz = A z + (dn_i / |z_i|) z_i */
    double *out = s.Az;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rt_bi(N), rt_bi(D), rt_bi(N), 1.0, A, rt_bi(N), s.z, rt_bi(D), 0.0, out,
                rt_bi(D));
    for (int64_t i = 0; i < N; i++) {
        double k = s.norm[i] > 0 ? s.dn[i] / s.norm[i] : 0;
        for (int64_t d = 0; d < D; d++) dz[i * D + d] = (float)(out[i * D + d] + k * s.z[i * D + d]);
    }
}
