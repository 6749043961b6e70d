/*
** ops_rel.c: the relational-reasoning ops: pairs of views (with their
** aggregation), the pair targets, and the focal and BCE losses, exactly as
** METHOD.md describes the reference code.
**
** Pairs: features F[K*B, D] hold view k of image i in row k*B + i. For each
** k1 < k2 in order, a positive block agg(F_k1[i], F_k2[i]) then a negative
** block agg(F_k1[i], F_k2[(i - s) mod B]) (torch.roll by s); s starts at 1,
** grows by one per (k1,k2) and goes back to 1 when it reaches B.
*/
#include "ir/ops_impl.h"
#include "rt_loss.h"

enum { AGG_CAT_, AGG_SUM_, AGG_MEAN_, AGG_MAX_ };  /* ORDER AGG: as spec.h Aggregation */

/* Walks the blocks of pairs in order, calling fn(ctx, pair row, row a,
   row b) for every pair. */
typedef void (*pair_fn)(void *ctx, int64_t p, int64_t ra, int64_t rb);
static void for_each_pair(int64_t K, int64_t B, pair_fn fn, void *ctx) {
    int64_t s = 1, blk = 0;
    for (int64_t k1 = 0; k1 < K; k1++)
        for (int64_t k2 = k1 + 1; k2 < K; k2++) {
            for (int64_t i = 0; i < B; i++) fn(ctx, blk * B + i, k1 * B + i, k2 * B + i);
            blk++;
            for (int64_t i = 0; i < B; i++) fn(ctx, blk * B + i, k1 * B + i, k2 * B + ((i - s) % B + B) % B);
            blk++;
            s++;
            if (s >= B) s = 1;
        }
}

/* ---- pairs(F): ia = K, agg ---- */

bool shape_pairs(Node *n, char *err, size_t errlen) {
    const Node *f = n->in[0];
    int64_t K = n->ia[0];
    if (f->rank != 2) SHAPE_FAIL("pairs: features must be [K*B, D] (got %s); end the backbone with global_avgpool or flatten", shp(f));
    if (K < 2) SHAPE_FAIL("pairs: K must be at least 2 (got %lld)", (long long)K);
    if (f->dim[0] % K != 0 || f->dim[0] == 0)
        SHAPE_FAIL("pairs: %lld feature rows are not K=%lld views of a batch", (long long)f->dim[0], (long long)K);
    if (n->ia[1] < AGG_CAT_ || n->ia[1] > AGG_MAX_) SHAPE_FAIL("pairs: bad aggregation %lld", (long long)n->ia[1]);
    int64_t B = f->dim[0] / K;
    set_shape2(n, B * K * (K - 1), n->ia[1] == AGG_CAT_ ? 2 * f->dim[1] : f->dim[1]);
    return true;
}

typedef struct { const Node *n; const double *F; double *out; int64_t D; } PairCtx;

static void pair_fwd(void *vctx, int64_t p, int64_t ra, int64_t rb) {
    PairCtx *c = vctx;
    const double *a = c->F + ra * c->D, *b = c->F + rb * c->D;
    int64_t W = c->n->dim[1];
    double *o = c->out + p * W;
    for (int64_t d = 0; d < c->D; d++) switch (c->n->ia[1]) {
        case AGG_CAT_: o[d] = a[d]; o[c->D + d] = b[d]; break;
        case AGG_SUM_: o[d] = a[d] + b[d]; break;
        case AGG_MEAN_: o[d] = (a[d] + b[d]) / 2; break;
        default: o[d] = a[d] >= b[d] ? a[d] : b[d]; break;
        }
}

void fwd_pairs(const Node *n, const double *const *in, double *out) {
    PairCtx c = {n, in[0], out, n->in[0]->dim[1]};
    for_each_pair(n->ia[0], n->in[0]->dim[0] / n->ia[0], pair_fwd, &c);
}

Cost cost_pairs(const Node *n) { return (Cost){(double)node_numel(n), 8.0 * (double)node_numel(n)}; }

void bwd_pairs(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_pairs_back(g, dy, n->in[0], (int)n->ia[0], (int)n->ia[1]);
}

/* ---- pairs_back(dP, F): ia = K, agg. max sends the gradient to the larger
   element and half to each on a tie (torch.maximum's rule) ---- */

bool shape_pairs_back(Node *n, char *err, size_t errlen) {
    Node tmp = *n;
    tmp.in[0] = n->in[1];
    if (!shape_pairs(&tmp, err, errlen)) return false;
    if (!same_shape(&tmp, n->in[0])) SHAPE_FAIL("pairs_back: dP %s does not match pairs %s", shp(n->in[0]), shp(&tmp));
    set_shape(n, 2, n->in[1]->dim);
    return true;
}

typedef struct { const Node *n; const double *dP, *F; double *dF; int64_t D; } PairBackCtx;

static void pair_bwd(void *vctx, int64_t p, int64_t ra, int64_t rb) {
    PairBackCtx *c = vctx;
    int64_t W = c->n->in[0]->dim[1], D = c->D;
    const double *d = c->dP + p * W, *a = c->F + ra * D, *b = c->F + rb * D;
    double *da = c->dF + ra * D, *db = c->dF + rb * D;
    for (int64_t k = 0; k < D; k++) switch (c->n->ia[1]) {
        case AGG_CAT_: da[k] += d[k]; db[k] += d[D + k]; break;
        case AGG_SUM_: da[k] += d[k]; db[k] += d[k]; break;
        case AGG_MEAN_: da[k] += d[k] / 2; db[k] += d[k] / 2; break;
        default:
            if (a[k] > b[k]) da[k] += d[k];
            else if (a[k] < b[k]) db[k] += d[k];
            else { da[k] += d[k] / 2; db[k] += d[k] / 2; }
            break;
        }
}

void fwd_pairs_back(const Node *n, const double *const *in, double *out) {
    memset(out, 0, sizeof(double) * (size_t)node_numel(n));
    PairBackCtx c = {n, in[0], in[1], out, n->dim[1]};
    for_each_pair(n->ia[0], n->dim[0] / n->ia[0], pair_bwd, &c);
}

Cost cost_pairs_back(const Node *n) { return (Cost){(double)node_numel(n->in[0]), 12.0 * (double)node_numel(n->in[0])}; }

/* ---- pair_halves(X): ia = K. X [K*B, 2H] holds, per view, the products
   with W1's and W2's rows interleaved (column 2h: W1[h], 2h+1: W2[h]); a
   pair's row is the first half of view a plus the second half of view b,
   which is W [F_a; F_b] ---- */

bool shape_pair_halves(Node *n, char *err, size_t errlen) {
    const Node *x = n->in[0];
    int64_t K = n->ia[0];
    if (x->rank != 2 || x->dim[1] % 2 != 0)
        SHAPE_FAIL("pair_halves: input must be [K*B, 2H] (got %s)", shp(x));
    if (K < 2) SHAPE_FAIL("pair_halves: K must be at least 2 (got %lld)", (long long)K);
    if (x->dim[0] % K != 0 || x->dim[0] == 0)
        SHAPE_FAIL("pair_halves: %lld rows are not K=%lld views of a batch", (long long)x->dim[0], (long long)K);
    set_shape2(n, x->dim[0] / K * K * (K - 1), x->dim[1] / 2);
    return true;
}

typedef struct { const double *x; double *out; int64_t H; } HalvesCtx;

static void halves_fwd(void *vctx, int64_t p, int64_t ra, int64_t rb) {
    HalvesCtx *c = vctx;
    const double *a = c->x + ra * 2 * c->H, *b = c->x + rb * 2 * c->H;
    for (int64_t h = 0; h < c->H; h++) c->out[p * c->H + h] = a[2 * h] + b[2 * h + 1];
}

void fwd_pair_halves(const Node *n, const double *const *in, double *out) {
    HalvesCtx c = {in[0], out, n->dim[1]};
    for_each_pair(n->ia[0], n->in[0]->dim[0] / n->ia[0], halves_fwd, &c);
}

Cost cost_pair_halves(const Node *n) { return (Cost){(double)node_numel(n), 12.0 * (double)node_numel(n)}; }

void bwd_pair_halves(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    int64_t ia[] = {n->ia[0]};
    if (need & 1) dx[0] = ir_make(g, OP_PAIR_HALVES_BACK, &dy, 1, ia, 1, NULL, 0);
}

/* ---- pair_halves_back(dY [P, H]): ia = K -> dX [K*B, 2H]: each pair's
   gradient row added to the first half of view a and the second of b ---- */

bool shape_pair_halves_back(Node *n, char *err, size_t errlen) {
    const Node *d = n->in[0];
    int64_t K = n->ia[0];
    if (d->rank != 2 || K < 2 || d->dim[0] % (K * (K - 1)) != 0 || d->dim[0] == 0)
        SHAPE_FAIL("pair_halves_back: dY %s is not the pairs of K=%lld views", shp(d), (long long)K);
    set_shape2(n, d->dim[0] / (K - 1), 2 * d->dim[1]);
    return true;
}

static void halves_bwd(void *vctx, int64_t p, int64_t ra, int64_t rb) {
    HalvesCtx *c = vctx;   /* x: dY, out: dX */
    double *a = c->out + ra * 2 * c->H, *b = c->out + rb * 2 * c->H;
    for (int64_t h = 0; h < c->H; h++) {
        a[2 * h] += c->x[p * c->H + h];
        b[2 * h + 1] += c->x[p * c->H + h];
    }
}

void fwd_pair_halves_back(const Node *n, const double *const *in, double *out) {
    memset(out, 0, sizeof(double) * (size_t)node_numel(n));
    HalvesCtx c = {in[0], out, n->in[0]->dim[1]};
    for_each_pair(n->ia[0], n->dim[0] / n->ia[0], halves_bwd, &c);
}

Cost cost_pair_halves_back(const Node *n) {
    return (Cost){(double)node_numel(n->in[0]), 4.0 * (double)(3 * node_numel(n->in[0]) + node_numel(n))};
}

/* ---- pair_targets: ia = K, B -> [P], 1 for positive blocks, 0 for negative ---- */

bool shape_pair_targets(Node *n, char *err, size_t errlen) {
    if (n->ia[0] < 2 || n->ia[1] < 1) SHAPE_FAIL("pair_targets: need K >= 2 and B >= 1");
    set_shape1(n, n->ia[1] * n->ia[0] * (n->ia[0] - 1));
    return true;
}

void fwd_pair_targets(const Node *n, const double *const *in, double *out) {
    (void)in;
    int64_t B = n->ia[1];
    for (int64_t p = 0, P = n->dim[0]; p < P; p++) out[p] = (p / B) % 2 == 0 ? 1.0 : 0.0;
}

Cost cost_pair_targets(const Node *n) { return (Cost){0, 4.0 * (double)node_numel(n)}; }

/* ---- losses: z [P], y [P] -> mean over P, shape [1] ---- */

static bool loss_shape(Node *n, const char *op, char *err, size_t errlen) {
    if (n->in[0]->rank != 1 || !same_shape(n->in[0], n->in[1]))
        SHAPE_FAIL("%s: logits %s and targets %s must both be [P]", op, shp(n->in[0]), shp(n->in[1]));
    set_shape1(n, 1);
    return true;
}


/* focal: fa = gamma, alpha */
bool shape_focal_loss(Node *n, char *err, size_t errlen) { return loss_shape(n, "focal_loss", err, errlen); }

void fwd_focal_loss(const Node *n, const double *const *in, double *out) {
    double s = 0;
    int64_t P = n->in[0]->dim[0];
    for (int64_t i = 0; i < P; i++) s += rt_focal_term(in[0][i], in[1][i], n->fa[0], n->fa[1]);
    out[0] = s / (double)P;
}

Cost cost_focal_loss(const Node *n) { return (Cost){30.0 * (double)node_numel(n->in[0]), 8.0 * (double)node_numel(n->in[0])}; }

void bwd_focal_loss(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_focal_back(g, dy, n->in[0], n->in[1], n->fa[0], n->fa[1]);
}

/* focal_back(dl, z, y): d/dz of a_t (1-p_t)^gamma bce, with dp_t/dz =
   (2y-1) p (1-p) and dbce/dz = p - y; the (1-p_t)^gamma factor is not
   detached (as in the reference code). */
bool shape_focal_back(Node *n, char *err, size_t errlen) {
    if (n->in[0]->rank != 1 || n->in[0]->dim[0] != 1) SHAPE_FAIL("focal_back: dl must be [1]");
    if (!same_shape(n->in[1], n->in[2])) SHAPE_FAIL("focal_back: z and y differ");
    set_shape1(n, n->in[1]->dim[0]);
    return true;
}

void fwd_focal_back(const Node *n, const double *const *in, double *out) {
    int64_t P = n->dim[0];
    double scale = in[0][0] / (double)P;
    for (int64_t i = 0; i < P; i++) out[i] = rt_focal_grad(in[1][i], in[2][i], n->fa[0], n->fa[1], scale);
}

Cost cost_focal_back(const Node *n) { return (Cost){40.0 * (double)node_numel(n), 12.0 * (double)node_numel(n)}; }

/* bce */
bool shape_bce_loss(Node *n, char *err, size_t errlen) { return loss_shape(n, "bce_loss", err, errlen); }

void fwd_bce_loss(const Node *n, const double *const *in, double *out) {
    int64_t P = n->in[0]->dim[0];
    double s = 0;
    for (int64_t i = 0; i < P; i++) s += rt_logit(in[0][i], in[1][i]).bce;
    out[0] = s / (double)P;
}

Cost cost_bce_loss(const Node *n) { return (Cost){10.0 * (double)node_numel(n->in[0]), 8.0 * (double)node_numel(n->in[0])}; }

void bwd_bce_loss(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) dx[0] = ir_bce_back(g, dy, n->in[0], n->in[1]);
}

bool shape_bce_back(Node *n, char *err, size_t errlen) { return shape_focal_back(n, err, errlen); }

void fwd_bce_back(const Node *n, const double *const *in, double *out) {
    int64_t P = n->dim[0];
    double scale = in[0][0] / (double)P;
    for (int64_t i = 0; i < P; i++) out[i] = rt_bce_grad(in[1][i], in[2][i], scale);
}

Cost cost_bce_back(const Node *n) { return (Cost){10.0 * (double)node_numel(n), 12.0 * (double)node_numel(n)}; }

/* ---- builders ---- */

Node *ir_pairs(Graph *g, Node *f, int K, int agg) {
    int64_t ia[] = {K, agg};
    return ir_make(g, OP_PAIRS, &f, 1, ia, 2, NULL, 0);
}

Node *ir_pairs_back(Graph *g, Node *dp, Node *f, int K, int agg) {
    Node *in[] = {dp, f};
    int64_t ia[] = {K, agg};
    return ir_make(g, OP_PAIRS_BACK, in, 2, ia, 2, NULL, 0);
}

Node *ir_pair_halves(Graph *g, Node *x, int K) {
    int64_t ia[] = {K};
    return ir_make(g, OP_PAIR_HALVES, &x, 1, ia, 1, NULL, 0);
}

Node *ir_pair_targets(Graph *g, int K, int64_t B) {
    int64_t ia[] = {K, B};
    return ir_make(g, OP_PAIR_TARGETS, NULL, 0, ia, 2, NULL, 0);
}

Node *ir_focal_loss(Graph *g, Node *z, Node *y, double gamma, double alpha) {
    Node *in[] = {z, y};
    double fa[] = {gamma, alpha};
    return ir_make(g, OP_FOCAL_LOSS, in, 2, NULL, 0, fa, 2);
}

Node *ir_focal_back(Graph *g, Node *dl, Node *z, Node *y, double gamma, double alpha) {
    Node *in[] = {dl, z, y};
    double fa[] = {gamma, alpha};
    return ir_make(g, OP_FOCAL_BACK, in, 3, NULL, 0, fa, 2);
}

Node *ir_bce_loss(Graph *g, Node *z, Node *y) {
    Node *in[] = {z, y};
    return ir_make(g, OP_BCE_LOSS, in, 2, NULL, 0, NULL, 0);
}

Node *ir_bce_back(Graph *g, Node *dl, Node *z, Node *y) {
    Node *in[] = {dl, z, y};
    return ir_make(g, OP_BCE_BACK, in, 3, NULL, 0, NULL, 0);
}

/* ---- softmax cross-entropy: z [N,C], y [N] class indices -> [1] ---- */

bool shape_softmax_ce(Node *n, char *err, size_t errlen) {
    const Node *z = n->in[0], *y = n->in[1];
    if (z->rank != 2 || y->rank != 1 || y->dim[0] != z->dim[0])
        SHAPE_FAIL("softmax_ce: logits %s and labels %s must be [N,C] and [N]", shp(z), shp(y));
    set_shape1(n, 1);
    return true;
}

/* log-sum-exp of one row, shifted by its max for stability */
static double row_lse(const double *z, int64_t C) {
    double m = z[0], s = 0;
    for (int64_t c = 1; c < C; c++) m = fmax(m, z[c]);
    for (int64_t c = 0; c < C; c++) s += exp(z[c] - m);
    return m + log(s);
}

/* a class index held as a double */
static int64_t label_of(double y, int64_t C) {
    int64_t k = (int64_t)y;
    RRC_ASSERT(k >= 0 && k < C);
    return k;
}

void fwd_softmax_ce(const Node *n, const double *const *in, double *out) {
    int64_t N = n->in[0]->dim[0], C = n->in[0]->dim[1];
    double s = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t y = label_of(in[1][i], C);
        s += row_lse(in[0] + i * C, C) - in[0][i * C + y];
    }
    out[0] = s / (double)N;
}

Cost cost_softmax_ce(const Node *n) { return (Cost){20.0 * (double)node_numel(n->in[0]), 4.0 * (double)node_numel(n->in[0])}; }

void bwd_softmax_ce(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) {
        Node *in[] = {dy, n->in[0], n->in[1]};
        dx[0] = ir_make(g, OP_SOFTMAX_CE_BACK, in, 3, NULL, 0, NULL, 0);
    }
}

/* softmax_ce_back(dl, z, y) = dl * (softmax(z) - onehot(y)) / N */
bool shape_softmax_ce_back(Node *n, char *err, size_t errlen) {
    if (n->in[0]->rank != 1 || n->in[0]->dim[0] != 1) SHAPE_FAIL("softmax_ce_back: dl must be [1]");
    set_shape(n, 2, n->in[1]->dim);
    return true;
}

void fwd_softmax_ce_back(const Node *n, const double *const *in, double *out) {
    int64_t N = n->dim[0], C = n->dim[1];
    double scale = in[0][0] / (double)N;
    for (int64_t i = 0; i < N; i++) {
        const double *z = in[1] + i * C;
        double lse = row_lse(z, C);
        int64_t y = label_of(in[2][i], C);
        for (int64_t c = 0; c < C; c++) out[i * C + c] = scale * (exp(z[c] - lse) - (c == y ? 1.0 : 0.0));
    }
}

Cost cost_softmax_ce_back(const Node *n) { return (Cost){20.0 * (double)node_numel(n), 8.0 * (double)node_numel(n)}; }

/* ---- weighted_ce: z [N, C], y [N] class indices, w [C] -> [1]:
   sum_i w[y_i] (lse(z_i) - z_i[y_i]) / sum_i w[y_i] (PyTorch's
   CrossEntropyLoss(weight) with reduction "mean") ---- */

bool shape_weighted_ce(Node *n, char *err, size_t errlen) {
    const Node *z = n->in[0], *y = n->in[1], *w = n->in[2];
    if (z->rank != 2 || y->rank != 1 || y->dim[0] != z->dim[0] || w->rank != 1 || w->dim[0] != z->dim[1])
        SHAPE_FAIL("weighted_ce: logits %s, labels %s and class weights %s must be [N,C], [N] and [C]", shp(z), shp(y), shp(w));
    set_shape1(n, 1);
    return true;
}

void fwd_weighted_ce(const Node *n, const double *const *in, double *out) {
    int64_t N = n->in[0]->dim[0], C = n->in[0]->dim[1];
    double s = 0, ws = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t k = label_of(in[1][i], C);
        double w = in[2][k];
        s += w * (row_lse(in[0] + i * C, C) - in[0][i * C + k]);
        ws += w;
    }
    out[0] = s / ws;
}

Cost cost_weighted_ce(const Node *n) { return (Cost){20.0 * (double)node_numel(n->in[0]), 4.0 * (double)node_numel(n->in[0])}; }

void bwd_weighted_ce(Graph *g, Node *n, Node *dy, unsigned need, Node **dx) {
    if (need & 1) {
        Node *in[] = {dy, n->in[0], n->in[1], n->in[2]};
        dx[0] = ir_make(g, OP_WEIGHTED_CE_BACK, in, 4, NULL, 0, NULL, 0);
    }
}

/* weighted_ce_back(dl, z, y, w) = dl w[y_i] (softmax(z_i) - onehot(y_i)) / sum_i w[y_i] */
bool shape_weighted_ce_back(Node *n, char *err, size_t errlen) {
    if (n->in[0]->rank != 1 || n->in[0]->dim[0] != 1) SHAPE_FAIL("weighted_ce_back: dl must be [1]");
    Node tmp = *n;
    tmp.in[0] = n->in[1];
    tmp.in[1] = n->in[2];
    tmp.in[2] = n->in[3];
    if (!shape_weighted_ce(&tmp, err, errlen)) return false;
    set_shape(n, 2, n->in[1]->dim);
    return true;
}

void fwd_weighted_ce_back(const Node *n, const double *const *in, double *out) {
    int64_t N = n->dim[0], C = n->dim[1];
    double ws = 0;
    for (int64_t i = 0; i < N; i++) ws += in[3][label_of(in[2][i], C)];
    for (int64_t i = 0; i < N; i++) {
        const double *z = in[1] + i * C;
        int64_t k = label_of(in[2][i], C);
        double lse = row_lse(z, C), scale = in[0][0] * in[3][k] / ws;
        for (int64_t c = 0; c < C; c++) out[i * C + c] = scale * (exp(z[c] - lse) - (c == k ? 1.0 : 0.0));
    }
}

Cost cost_weighted_ce_back(const Node *n) { return (Cost){20.0 * (double)node_numel(n), 8.0 * (double)node_numel(n)}; }

Node *ir_softmax_ce(Graph *g, Node *z, Node *y) {
    Node *in[] = {z, y};
    return ir_make(g, OP_SOFTMAX_CE, in, 2, NULL, 0, NULL, 0);
}

Node *ir_weighted_ce(Graph *g, Node *z, Node *y, Node *w) {
    Node *in[] = {z, y, w};
    return ir_make(g, OP_WEIGHTED_CE, in, 3, NULL, 0, NULL, 0);
}
