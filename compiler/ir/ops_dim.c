/*
** ops_dim.c: the ops of Deep InfoMax (BASELINES.md 4; methods/deepinfomax.py).
**
** local_pairs(M, y): M [B, C, H, W] (the map after the backbone's first
** ReLU), y [B, F] (the features) -> [2B, C+F, H, W], the local
** discriminator's input for both its terms in one batch:
**   row i      = cat(M_i, y_i broadcast over H x W)            (T+)
**   row B + i  = cat(M_{(i+1) mod B}, y_i broadcast)            (T-)
** M's channels first, as torch.cat((M, y_expanded), dim=1); M' = M rolled
** by -1 along the batch, as torch.cat([M[1:], M[0:1]]). The discriminator
** has only 1x1 convolutions and ReLUs (no BatchNorm), so running both
** halves as one batch gives each row exactly what two calls would.
**
** concat_rows(a, b): [Na, F], [Nb, F] -> [Na+Nb, F] (the prior
** discriminator's batch: the uniform samples u, then y).
**
** jsd_loss(T): T [2N, ...] -> [1] = scale * (mean over the first half of
** softplus(-T) + mean over the second half of softplus(T)): LOCAL = beta *
** (Em - Ej), Ej = -softplus(-T+).mean(), Em = softplus(T-).mean().
**
** prior_loss(p): p [2N, 1], the prior discriminator's logits -> [1] =
** -scale * (mean_first log sigmoid(p) + mean_second log(1 - sigmoid(p))):
** PRIOR = -gamma (log D(u).mean() + log(1 - D(y)).mean()). The logs are
** taken as -softplus(-p) and -softplus(p), the same values without the
** reference's float overflow to -inf when sigmoid saturates.
*/
#include "ir/ops_impl.h"
#include "rt_kernels.h"

/* softplus as PyTorch and the softplus op (ops_math.c): x past the
   threshold is x itself */
static double softplus(double x) { return x > RT_SOFTPLUS_THRESHOLD ? x : log1p(exp(x)); }
static double sigmoid(double x) { return 1 / (1 + exp(-x)); }
/* its derivative, 1 past the threshold as PyTorch's softplus_backward */
static double dsoftplus(double x) { return x > RT_SOFTPLUS_THRESHOLD ? 1 : sigmoid(x); }

/* ---- local_pairs ---- */

bool shape_local_pairs(Node *n, char *err, size_t errlen) {
    const Node *M = n->in[0], *y = n->in[1];
    if (M->rank != 4 || y->rank != 2 || M->dim[0] != y->dim[0])
        SHAPE_FAIL("local_pairs: the map %s and the features %s must be [B,C,H,W] and [B,F]", shp(M), shp(y));
    set_shape4(n, 2 * M->dim[0], M->dim[1] + y->dim[1], M->dim[2], M->dim[3]);
    return true;
}

void fwd_local_pairs(const Node *n, const double *const *in, double *out) {
    const Node *M = n->in[0];
    int64_t B = M->dim[0], C = M->dim[1], F = n->in[1]->dim[1], S = M->dim[2] * M->dim[3];
    for (int64_t r = 0; r < 2 * B; r++) {
        int64_t i = r % B, src = r < B ? i : (i + 1) % B;
        double *o = out + r * (C + F) * S;
        memcpy(o, in[0] + src * C * S, sizeof(double) * (size_t)(C * S));
        for (int64_t f = 0; f < F; f++)
            for (int64_t s = 0; s < S; s++) o[(C + f) * S + s] = in[1][i * F + f];
    }
}

Cost cost_local_pairs(const Node *n) { return (Cost){0, 8.0 * (double)node_numel(n)}; }

void bwd_local_pairs(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    for (int k = 0; k < 2; k++)
        if (need & (1u << k)) {
            Node *in[] = {dy, n->in[k]};
            int64_t which = k;
            dx[k] = ir_make(g, OP_LOCAL_PAIRS_BACK, in, 2, &which, 1, NULL, 0);
        }
}

/* local_pairs_back(dZ, like): which = 0: dM [B,C,H,W] (each M_j is read by
   row j and by row B + (j-1 mod B)); which = 1: dy [B,F] (summed over both
   rows of image i and over H x W) */
bool shape_local_pairs_back(Node *n, char *err, size_t errlen) {
    const Node *d = n->in[0], *like = n->in[1];
    if (d->rank != 4 || d->dim[0] % 2 != 0 || d->dim[0] / 2 != like->dim[0])
        SHAPE_FAIL("local_pairs_back: dZ %s does not match %s", shp(d), shp(like));
    if (n->ia[0] != 0 && n->ia[0] != 1) SHAPE_FAIL("local_pairs_back: which must be 0 or 1");
    set_shape(n, like->rank, like->dim);
    return true;
}

void fwd_local_pairs_back(const Node *n, const double *const *in, double *out) {
    const Node *d = n->in[0];
    int64_t B = d->dim[0] / 2, W = d->dim[1], S = d->dim[2] * d->dim[3];
    if (n->ia[0] == 0) {
        int64_t C = n->dim[1];
        for (int64_t j = 0; j < B; j++) {
            const double *a = in[0] + j * W * S, *b = in[0] + (B + (j + B - 1) % B) * W * S;
            for (int64_t k = 0; k < C * S; k++) out[j * C * S + k] = a[k] + b[k];
        }
    } else {
        int64_t F = n->dim[1], C = W - F;
        for (int64_t i = 0; i < B; i++)
            for (int64_t f = 0; f < F; f++) {
                double s = 0;
                for (int64_t h = 0; h < 2; h++) {
                    const double *p = in[0] + ((h * B + i) * W + C + f) * S;
                    for (int64_t k = 0; k < S; k++) s += p[k];
                }
                out[i * F + f] = s;
            }
    }
}

Cost cost_local_pairs_back(const Node *n) { return (Cost){(double)node_numel(n->in[0]), 4.0 * (double)node_numel(n->in[0])}; }

/* ---- concat_rows ---- */

bool shape_concat_rows(Node *n, char *err, size_t errlen) {
    const Node *a = n->in[0], *b = n->in[1];
    if (a->rank != 2 || b->rank != 2 || a->dim[1] != b->dim[1])
        SHAPE_FAIL("concat_rows: %s and %s must be matrices of one width", shp(a), shp(b));
    set_shape2(n, a->dim[0] + b->dim[0], a->dim[1]);
    return true;
}

void fwd_concat_rows(const Node *n, const double *const *in, double *out) {
    size_t na = (size_t)node_numel(n->in[0]), nb = (size_t)node_numel(n->in[1]);
    memcpy(out, in[0], na * sizeof(double));
    memcpy(out + na, in[1], nb * sizeof(double));
}

Cost cost_concat_rows(const Node *n) { return (Cost){0, 8.0 * (double)node_numel(n)}; }

void bwd_concat_rows(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    for (int k = 0; k < 2; k++)
        if (need & (1u << k)) {
            int64_t ia[] = {k ? n->in[0]->dim[0] : 0, n->in[k]->dim[0]};
            dx[k] = ir_make(g, OP_SLICE_ROWS, &dy, 1, ia, 2, NULL, 0);
        }
}

/* slice_rows(x): ia = start, count -> rows [start, start+count) of x [N, F] */
bool shape_slice_rows(Node *n, char *err, size_t errlen) {
    const Node *x = n->in[0];
    if (x->rank != 2 || n->ia[0] < 0 || n->ia[1] < 1 || n->ia[0] + n->ia[1] > x->dim[0])
        SHAPE_FAIL("slice_rows: rows [%lld, +%lld) of %s", (long long)n->ia[0], (long long)n->ia[1], shp(x));
    set_shape2(n, n->ia[1], x->dim[1]);
    return true;
}

void fwd_slice_rows(const Node *n, const double *const *in, double *out) {
    memcpy(out, in[0] + n->ia[0] * n->dim[1], sizeof(double) * (size_t)node_numel(n));
}

Cost cost_slice_rows(const Node *n) { return (Cost){0, 8.0 * (double)node_numel(n)}; }

/* ---- jsd_loss: T [2N, ...] -> [1]; fa = scale ---- */

bool shape_jsd_loss(Node *n, char *err, size_t errlen) {
    const Node *t = n->in[0];
    if (t->rank < 1 || t->dim[0] < 2 || t->dim[0] % 2 != 0)
        SHAPE_FAIL("jsd_loss: scores must be [2N, ...], N positive then N negative rows (got %s)", shp(t));
    set_shape1(n, 1);
    return true;
}

void fwd_jsd_loss(const Node *n, const double *const *in, double *out) {
    int64_t half = node_numel(n->in[0]) / 2;
    double sp = 0, sn = 0;
    for (int64_t k = 0; k < half; k++) sp += softplus(-in[0][k]);
    for (int64_t k = 0; k < half; k++) sn += softplus(in[0][half + k]);
    out[0] = n->fa[0] * (sp / (double)half + sn / (double)half);
}

Cost cost_jsd_loss(const Node *n) { return cost_elementwise(n->in[0], 20); }

void bwd_jsd_loss(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) {
        Node *in[] = {dy, n->in[0]};
        dx[0] = ir_make(g, OP_JSD_BACK, in, 2, NULL, 0, n->fa, 1);
    }
}

/* jsd_back(dl, T) = dl scale / half * (-softplus'(-t) | softplus'(t)) */
bool shape_jsd_back(Node *n, char *err, size_t errlen) {
    if (n->in[0]->rank != 1 || n->in[0]->dim[0] != 1) SHAPE_FAIL("jsd_back: dl must be [1]");
    set_shape(n, n->in[1]->rank, n->in[1]->dim);
    return true;
}

void fwd_jsd_back(const Node *n, const double *const *in, double *out) {
    int64_t half = node_numel(n) / 2;
    double k = in[0][0] * n->fa[0] / (double)half;
    for (int64_t i = 0; i < half; i++) out[i] = -k * dsoftplus(-in[1][i]);
    for (int64_t i = half; i < 2 * half; i++) out[i] = k * dsoftplus(in[1][i]);
}

Cost cost_jsd_back(const Node *n) { return cost_elementwise(n, 20); }

/* ---- prior_loss: p [2N, 1] -> [1]; fa = scale ---- */

bool shape_prior_loss(Node *n, char *err, size_t errlen) {
    const Node *p = n->in[0];
    if (p->rank != 2 || p->dim[1] != 1 || p->dim[0] < 2 || p->dim[0] % 2 != 0)
        SHAPE_FAIL("prior_loss: logits must be [2N, 1], N of the prior then N of the features (got %s)", shp(p));
    set_shape1(n, 1);
    return true;
}

void fwd_prior_loss(const Node *n, const double *const *in, double *out) {
    int64_t half = n->in[0]->dim[0] / 2;
    double a = 0, b = 0;
    for (int64_t i = 0; i < half; i++) a += -softplus(-in[0][i]);      /* log sigmoid(p) */
    for (int64_t i = 0; i < half; i++) b += -softplus(in[0][half + i]);  /* log (1 - sigmoid(p)) */
    out[0] = -n->fa[0] * (a / (double)half + b / (double)half);
}

Cost cost_prior_loss(const Node *n) { return cost_elementwise(n->in[0], 20); }

void bwd_prior_loss(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) {
        Node *in[] = {dy, n->in[0]};
        dx[0] = ir_make(g, OP_PRIOR_BACK, in, 2, NULL, 0, n->fa, 1);
    }
}

/* prior_back(dl, p) = -dl scale / half * (softplus'(-p) | -softplus'(p)) */
bool shape_prior_back(Node *n, char *err, size_t errlen) {
    if (n->in[0]->rank != 1 || n->in[0]->dim[0] != 1) SHAPE_FAIL("prior_back: dl must be [1]");
    set_shape(n, n->in[1]->rank, n->in[1]->dim);
    return true;
}

void fwd_prior_back(const Node *n, const double *const *in, double *out) {
    int64_t half = n->dim[0] / 2;
    double k = -in[0][0] * n->fa[0] / (double)half;
    for (int64_t i = 0; i < half; i++) out[i] = k * dsoftplus(-in[1][i]);
    for (int64_t i = half; i < 2 * half; i++) out[i] = -k * dsoftplus(in[1][i]);
}

Cost cost_prior_back(const Node *n) { return cost_elementwise(n, 20); }

/* ---- builders ---- */

Node *ir_local_pairs(Graph *g, Node *M, Node *y) {
    Node *in[] = {M, y};
    return ir_make(g, OP_LOCAL_PAIRS, in, 2, NULL, 0, NULL, 0);
}

Node *ir_concat_rows(Graph *g, Node *a, Node *b) {
    Node *in[] = {a, b};
    return ir_make(g, OP_CONCAT_ROWS, in, 2, NULL, 0, NULL, 0);
}

Node *ir_jsd_loss(Graph *g, Node *t, double scale) { return ir_make(g, OP_JSD_LOSS, &t, 1, NULL, 0, &scale, 1); }

Node *ir_prior_loss(Graph *g, Node *p, double scale) { return ir_make(g, OP_PRIOR_LOSS, &p, 1, NULL, 0, &scale, 1); }
