/*
** ops_ssl.c: the ops of the paper's self-supervised baselines
** (BASELINES.md): RotationNet's four rotations of a batch and their class
** targets, and SimCLR's loss. (DeepCluster's class-weighted cross-entropy
** is with softmax_ce in ops_rel.c.)
**
** rotations(x): x [N, C, S, S] -> [4N, C, S, S], rotation-major: row r*N+i
** is torch.rot90(x[i], r, dims=(H, W)), counter-clockwise as displayed:
**   r=1: out[h][w] = in[w][S-1-h]
**   r=2: out[h][w] = in[S-1-h][S-1-w]
**   r=3: out[h][w] = in[S-1-w][h]
** The four copies share the one augmentation draw of image i, as in the
** reference's _data_augmentation.
**
** simclr_loss(z): z [N, D], N = 2B rows, view-major (row v*B+i is view v
** of image i, the runtime's layout; the reference interleaves, row 2i+v,
** which permutes the rows and so changes no value but summation order):
**   S_ji = z_j.z_i / max(|z_j| |z_i|, eps)      (the clamp is on the product)
**   E_ji = exp(S_ji / t)
**   den_i = sum_j E_ji - exp(1/t)               (E_ii stays in the sum)
**   r_i = E_{p(i),i} / den_i,  p(i) = (i + B) mod 2B
**   L = -log(mean_i r_i)                        (log of the mean, not mean of logs)
*/
#include <stdlib.h>

#include "ir/ops_impl.h"

/* ---- rotations ---- */

/* Source index in one S x S plane of output position (h, w) of rotation r. */
static int64_t rot_src(int64_t r, int64_t S, int64_t h, int64_t w) {
    switch (r & 3) {
    case 0: return h * S + w;
    case 1: return w * S + (S - 1 - h);
    case 2: return (S - 1 - h) * S + (S - 1 - w);
    default: return (S - 1 - w) * S + h;
    }
}

bool shape_rotations(Node *n, char *err, size_t errlen) {
    const Node *x = n->in[0];
    if (x->rank != 4) SHAPE_FAIL("rotations: input must be [N,C,H,W] (got %s)", shp(x));
    if (x->dim[2] != x->dim[3]) SHAPE_FAIL("rotations: images must be square to rotate by 90 degrees (got %s)", shp(x));
    set_shape4(n, 4 * x->dim[0], x->dim[1], x->dim[2], x->dim[3]);
    return true;
}

void fwd_rotations(const Node *n, const double *const *in, double *out) {
    const Node *x = n->in[0];
    int64_t N = x->dim[0], planes = N * x->dim[1], S = x->dim[2];
    for (int64_t r = 0; r < 4; r++)
        for (int64_t p = 0; p < planes; p++) {
            const double *src = in[0] + p * S * S;
            double *dst = out + (r * planes + p) * S * S;
            for (int64_t h = 0; h < S; h++)
                for (int64_t w = 0; w < S; w++) dst[h * S + w] = src[rot_src(r, S, h, w)];
        }
}

Cost cost_rotations(const Node *n) { return (Cost){0, 8.0 * (double)node_numel(n)}; }

void bwd_rotations(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    (void)n;
    if (need & 1) dx[0] = ir_make(g, OP_ROTATIONS_BACK, &dy, 1, NULL, 0, NULL, 0);
}

/* rotations_back(dy): dy [4N, C, S, S] -> dx [N, C, S, S], the sum of the
   four blocks each rotated back */
bool shape_rotations_back(Node *n, char *err, size_t errlen) {
    const Node *d = n->in[0];
    if (d->rank != 4 || d->dim[0] % 4 != 0 || d->dim[2] != d->dim[3])
        SHAPE_FAIL("rotations_back: dy must be [4N,C,S,S] (got %s)", shp(d));
    set_shape4(n, d->dim[0] / 4, d->dim[1], d->dim[2], d->dim[3]);
    return true;
}

void fwd_rotations_back(const Node *n, const double *const *in, double *out) {
    int64_t planes = n->dim[0] * n->dim[1], S = n->dim[2];
    memset(out, 0, sizeof(double) * (size_t)node_numel(n));
    for (int64_t r = 0; r < 4; r++)
        for (int64_t p = 0; p < planes; p++) {
            const double *d = in[0] + (r * planes + p) * S * S;
            double *dst = out + p * S * S;
            for (int64_t h = 0; h < S; h++)
                for (int64_t w = 0; w < S; w++) dst[rot_src(r, S, h, w)] += d[h * S + w];
        }
}

Cost cost_rotations_back(const Node *n) { return (Cost){4.0 * (double)node_numel(n), 20.0 * (double)node_numel(n)}; }

/* ---- block_targets: ia = n, block -> [n], y[i] = floor(i / block) ---- */

bool shape_block_targets(Node *n, char *err, size_t errlen) {
    if (n->ia[0] < 1 || n->ia[1] < 1) SHAPE_FAIL("block_targets: need n >= 1 and block >= 1");
    set_shape1(n, n->ia[0]);
    return true;
}

void fwd_block_targets(const Node *n, const double *const *in, double *out) {
    (void)in;
    for (int64_t i = 0; i < n->dim[0]; i++) out[i] = (double)(i / n->ia[1]);
}

Cost cost_block_targets(const Node *n) { return (Cost){0, 4.0 * (double)node_numel(n)}; }

/* ---- simclr_loss: z [2B, D] -> [1]; fa = t, eps ---- */

bool shape_simclr_loss(Node *n, char *err, size_t errlen) {
    const Node *z = n->in[0];
    if (z->rank != 2 || z->dim[0] < 2 || z->dim[0] % 2 != 0)
        SHAPE_FAIL("simclr_loss: embeddings must be [2B, D], two views of B images (got %s)", shp(z));
    if (!(n->fa[0] > 0) || !(n->fa[1] > 0)) SHAPE_FAIL("simclr_loss: temperature and eps must be positive");
    set_shape1(n, 1);
    return true;
}

/* What the forward leaves for the backward: row norms, the similarity
   matrix, the column denominators and ratios, and the mean ratio. */
typedef struct SimclrFwd {
    int64_t N, D;
    double t, eps;
    double *norm, *S, *den, *r, mean;
} SimclrFwd;

static void simclr_forward(SimclrFwd *f, const double *z) {
    int64_t N = f->N, D = f->D;
    for (int64_t i = 0; i < N; i++) {
        double s = 0;
        for (int64_t d = 0; d < D; d++) s += z[i * D + d] * z[i * D + d];
        f->norm[i] = sqrt(s);
    }
    for (int64_t j = 0; j < N; j++)
        for (int64_t i = 0; i < N; i++) {
            double p = 0;
            for (int64_t d = 0; d < D; d++) p += z[j * D + d] * z[i * D + d];
            f->S[j * N + i] = p / fmax(f->norm[j] * f->norm[i], f->eps);
        }
    double c = exp(1.0 / f->t), sum = 0;
    for (int64_t i = 0; i < N; i++) {
        double den = 0;
        for (int64_t j = 0; j < N; j++) den += exp(f->S[j * N + i] / f->t);
        f->den[i] = den - c;
        f->r[i] = exp(f->S[((i + N / 2) % N) * N + i] / f->t) / f->den[i];
        sum += f->r[i];
    }
    f->mean = sum / (double)N;
}

static SimclrFwd simclr_alloc(const Node *loss) {
    const Node *z = loss->in[0];
    SimclrFwd f = {z->dim[0], z->dim[1], loss->fa[0], loss->fa[1], NULL, NULL, NULL, NULL, 0};
    f.norm = xcalloc((size_t)(f.N * (f.N + 3)), sizeof(double));
    f.S = f.norm + f.N;
    f.den = f.S + f.N * f.N;
    f.r = f.den + f.N;
    return f;
}

void fwd_simclr_loss(const Node *n, const double *const *in, double *out) {
    SimclrFwd f = simclr_alloc(n);
    simclr_forward(&f, in[0]);
    out[0] = -log(f.mean);
    free(f.norm);
}

Cost cost_simclr_loss(const Node *n) {
    double N = (double)n->in[0]->dim[0], D = (double)n->in[0]->dim[1];
    return (Cost){2 * N * N * D + 20 * N * N, 4.0 * (N * D + N * N)};
}

void bwd_simclr_loss(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) {
        Node *in[] = {dy, n->in[0]};
        dx[0] = ir_make(g, OP_SIMCLR_BACK, in, 2, NULL, 0, n->fa, 2);
    }
}

/* simclr_back(dl, z) = dl * dL/dz. With g_i = -1 / (N mean):
     dL/dE_ji = g_i ([j = p(i)] - r_i) / den_i,   dS_ji = dL/dE_ji E_ji / t
   and S_ji = P_ji / Q_ji (P = z z^T, Q_ji = |z_j||z_i| unless clamped):
     dP_ji = dS_ji / Q_ji;  dQ_ji = -dS_ji S_ji / Q_ji (0 when clamped)
     dz = (dP + dP^T) z + (dn_i / |z_i|) z_i,  dn_j = sum_i dQ_ji |z_i| + dQ_ij |z_i| */
bool shape_simclr_back(Node *n, char *err, size_t errlen) {
    if (n->in[0]->rank != 1 || n->in[0]->dim[0] != 1) SHAPE_FAIL("simclr_back: dl must be [1]");
    Node tmp = *n;
    tmp.in[0] = n->in[1];
    if (!shape_simclr_loss(&tmp, err, errlen)) return false;
    set_shape(n, 2, n->in[1]->dim);
    return true;
}

void fwd_simclr_back(const Node *n, const double *const *in, double *out) {
    Node loss = *n;
    loss.in[0] = n->in[1];
    SimclrFwd f = simclr_alloc(&loss);
    const double *z = in[1];
    simclr_forward(&f, z);
    int64_t N = f.N, D = f.D;
    double *dP = xcalloc((size_t)(N * N + N), sizeof(double)), *dn = dP + N * N;
    for (int64_t i = 0; i < N; i++) {
        double gi = -in[0][0] / ((double)N * f.mean);
        int64_t p = (i + N / 2) % N;
        for (int64_t j = 0; j < N; j++) {
            double S = f.S[j * N + i], E = exp(S / f.t);
            double dS = gi * ((j == p ? 1.0 : 0.0) - f.r[i]) / f.den[i] * E / f.t;
            double Q = f.norm[j] * f.norm[i];
            if (Q > f.eps) {
                dP[j * N + i] += dS / Q;
                double dQ = -dS * S / Q;
                dn[j] += dQ * f.norm[i];
                dn[i] += dQ * f.norm[j];
            } else {
                dP[j * N + i] += dS / f.eps;
            }
        }
    }
    for (int64_t i = 0; i < N; i++)
        for (int64_t d = 0; d < D; d++) {
            double s = 0;
            for (int64_t j = 0; j < N; j++) s += (dP[i * N + j] + dP[j * N + i]) * z[j * D + d];
            if (f.norm[i] > 0) s += dn[i] / f.norm[i] * z[i * D + d];
            out[i * D + d] = s;
        }
    free(dP);
    free(f.norm);
}

Cost cost_simclr_back(const Node *n) {
    double N = (double)n->dim[0], D = (double)n->dim[1];
    return (Cost){4 * N * N * D + 40 * N * N, 4.0 * (2 * N * D + 2 * N * N)};
}

/* ---- builders ---- */

Node *ir_rotations(Graph *g, Node *x) { return ir_make(g, OP_ROTATIONS, &x, 1, NULL, 0, NULL, 0); }

Node *ir_block_targets(Graph *g, int64_t n, int64_t block) {
    int64_t ia[] = {n, block};
    return ir_make(g, OP_BLOCK_TARGETS, NULL, 0, ia, 2, NULL, 0);
}

Node *ir_simclr_loss(Graph *g, Node *z, double t, double eps) {
    double fa[] = {t, eps};
    return ir_make(g, OP_SIMCLR_LOSS, &z, 1, NULL, 0, fa, 2);
}
